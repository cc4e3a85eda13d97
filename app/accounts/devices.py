"""Known browsers ("device cookies"): a browser that has logged in to an account before.

After a successful login the browser gets a signed token for that login name; up to five live
in one cookie (a shared practice PC with several staff). A login attempt that shows a valid
token for its login name is throttled on that browser's own budget only, so nobody guessing at
the account from elsewhere, and nobody behind the same address, can lock its owner out. A
stolen token only buys its own budget, which backs off like any other.

Pure functions; the cookie is set and read in ``app.accounts.routes``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

COOKIE = "konsil_device"
MAX_TOKENS = 5
LIFETIME = timedelta(days=180)


def _mac(secret: str, subject: str, nonce: str, issued: int) -> str:
    message = f"device|{subject}|{nonce}|{issued}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def issue(secret: str, subject: str, now: datetime, nonce: str | None = None) -> str:
    """A token saying: this browser logged in as ``subject`` (a keyed hash of the login name)."""
    nonce = nonce or secrets.token_urlsafe(12)
    issued = int(now.timestamp())
    return f"{nonce}.{issued}.{_mac(secret, subject, nonce, issued)}"


def known(secret: str, subject: str, cookie: str | None, now: datetime) -> str | None:
    """The browser id (nonce) of a valid, unexpired token for ``subject`` in ``cookie``."""
    for token in _tokens(cookie):
        nonce, issued, mac = token
        if now.timestamp() - issued > LIFETIME.total_seconds():
            continue
        if hmac.compare_digest(mac, _mac(secret, subject, nonce, issued)):
            return nonce
    return None


def remember(cookie: str | None, token: str, now: datetime) -> str:
    """The cookie with ``token`` first, then up to four other unexpired tokens (newest first;
    one with the same browser id is replaced)."""
    nonce = token.split(".", 1)[0]
    others = [
        t
        for t in _tokens(cookie)
        if t[0] != nonce and now.timestamp() - t[1] <= LIFETIME.total_seconds()
    ]
    others.sort(key=lambda t: t[1], reverse=True)
    kept = [".".join((n, str(i), m)) for n, i, m in others[: MAX_TOKENS - 1]]
    return "~".join([token, *kept])


def _tokens(cookie: str | None) -> list[tuple[str, int, str]]:
    found = []
    for raw in (cookie or "").split("~")[: MAX_TOKENS * 2]:
        parts = raw.split(".")
        if len(parts) == 3 and parts[1].isdigit() and len(parts[0]) <= 32:
            found.append((parts[0], int(parts[1]), parts[2]))
    return found
