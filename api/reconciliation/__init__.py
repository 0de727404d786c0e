"""Reconciliation (对账): channel bills matched against our books; see docs/reconciliation.md."""
