"""Where pages send people: each role's home page, and the rule for ``next`` targets."""

from __future__ import annotations

from app.accounts.models import Role

HOME_BY_ROLE = {Role.GP: "/gp", Role.SPECIALIST: "/specialist", Role.ADMIN: "/admin"}


def safe_next(value: str | None) -> str | None:
    """Only local paths: ``next`` must never become an open redirect."""
    # Browsers drop tabs and newlines from URLs and read "\\" as "/", so "/\t/evil.example"
    # would leave the site: refuse control characters and backslashes outright.
    if (
        not value
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return None
    return value
