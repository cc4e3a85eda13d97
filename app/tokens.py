"""Random tokens and their hashes: the database only ever sees the SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_token() -> str:
    """256 bits of randomness, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def session_key(session_id: str) -> str:
    """A session's fingerprint for events and broker messages (never the session id itself)."""
    return token_hash(session_id)[:32]
