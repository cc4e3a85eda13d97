"""Staff accounts, practices, sessions (staff and patient) and authentication."""
