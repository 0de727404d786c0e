"""Residents paying through the sandbox, end to end against a running API (issue 4, item 5).

The sandbox's trigger CLI (`python -m sandbox pay --household …`, `python -m sandbox scenario
district …`) plays residents: it logs in with a sandbox login code, binds with a roster
member's ID number and name, chooses pension tiers, orders, pays through the sandbox's control
API (with faults) and checks what the API ended with. Like the rest of `sandbox/`, nothing here
imports `api/`: the API is reached over HTTP and, for its jobs (reconcile-open, process-refunds,
demo export-roster), through its `flask` command in a subprocess.

Modules: `roster` (who lives where, from a roster file), `api_client` (the API's HTTP
contract), `journey` (one resident's path), `plan` (the district's mix), `jobs` (the API's
`flask` commands), `district` (many households at once), `checks` (discrepancies), `report`.
"""
