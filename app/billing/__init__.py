"""The EBM billing helper: which billable events Konsil knows, per quarter, as a CSV for the
practice's own billing system (ebm.py: the pure rules; export.py: the file; service.py: the
staff member's rows and the specialist's identity check; routes.py: the JSON API)."""
