"""Random tokens and their hashes: the database only ever sees the SHA-256."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


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


def keyed_hash(secret: str, purpose: str, value: str) -> str:
    """HMAC-SHA256 of ``value`` under a key for ``purpose`` (recovery codes, subjects)."""
    key = hashlib.sha256(f"{purpose}\0{secret}".encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def derived_key(secret: str, purpose: bytes) -> bytes:
    """32 bytes derived from ``KONSIL_SECRET_KEY`` for one purpose (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


def fernet(secret: str, purpose: bytes) -> Fernet:
    """Symmetric encryption with a key derived from ``KONSIL_SECRET_KEY`` for one purpose."""
    return Fernet(base64.urlsafe_b64encode(derived_key(secret, purpose)))
