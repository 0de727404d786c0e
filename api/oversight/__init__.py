"""Oversight 督导: progress against the year's targets (征缴进度), its charts and export, and
the auditor's read-only view (审计). Reads other packages only through their service functions."""
