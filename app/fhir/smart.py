"""SMART Backend Services for ``/fhir/R4`` (pure): a system client proves itself with a JWT
signed by one of its registered keys (``private_key_jwt``) and gets a short-lived access
token for the scopes it asked for and was registered with.

What is checked of a client assertion (SMART App Launch 2.x, "Backend Services"): signed with
RS384 or ES384 by a registered key (by ``kid``); ``iss`` and ``sub`` are the client id; ``aud``
is the token endpoint's URL; ``exp`` is in the future and at most five minutes away; ``jti``
is there (the caller refuses one seen before). Access tokens are JWTs signed with a key derived
from ``KONSIL_SECRET_KEY`` (HS256), valid ``TOKEN_SECONDS``; the client's registration is
read again on every request, so deactivating a client ends its tokens at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey
from joserfc.jws import extract_compact

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SIGNING_ALGS = ("RS384", "ES384")
MAX_ASSERTION_SECONDS = 300
TOKEN_SECONDS = 300
LEEWAY_SECONDS = 30
MAX_KEYS = 5
MIN_RSA_BITS = 2048
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
RESOURCES = frozenset(
    {
        "HealthcareService",
        "Practitioner",
        "PractitionerRole",
        "Schedule",
        "Slot",
        "Appointment",
        "Patient",
        "ServiceRequest",
        "Consent",
        "DocumentReference",
        "Binary",
        "DiagnosticReport",
        "Composition",
    }
)
# SMART v1 (read, write, *) and v2 (any of c r u d s, in that order) permissions.
_SCOPE = re.compile(r"^system/(\*|[A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)$")
# The v2 letters: create, read (by id), update, delete, search.
ACTIONS = "cruds"
# What the v1 permissions mean in v2 letters (SMART App Launch 2.x, "Scopes for requesting
# FHIR resources": read = rs, write = cud).
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": frozenset(ACTIONS)}


class Refused(Exception):
    """A client assertion, token or registration Konsil does not accept; the message says
    why (German, shown to the client's operator, never a secret)."""


@dataclass(frozen=True)
class Scope:
    resource: str  # a resource type or "*"
    actions: frozenset[str]  # of the letters in ACTIONS

    def permits(self, resource: str, action: str) -> bool:
        return self.resource in ("*", resource) and action in self.actions

    def covered_by(self, others: list[Scope]) -> bool:
        """Whether ``others`` allow all this scope allows (a wildcard only by a wildcard)."""
        return all(
            any(o.resource in ("*", self.resource) and action in o.actions for o in others)
            for action in self.actions
        )


def parse_scope(text: str) -> Scope | None:
    """A ``system/`` scope, or None for anything else (patient/user scopes, unknown types)."""
    found = _SCOPE.fullmatch(text)
    if found is None or (found[1] != "*" and found[1] not in RESOURCES) or not found[2]:
        return None
    return Scope(found[1], _V1.get(found[2], frozenset(found[2])))


def permits(scopes: str, resource: str, action: str) -> bool:
    """Whether any of the space-separated ``scopes`` allows ``action`` (a letter of
    ``ACTIONS``) on ``resource``."""
    return any(
        (scope := parse_scope(s)) is not None and scope.permits(resource, action)
        for s in scopes.split()
    )


def scope_names(resource: str, action: str) -> tuple[str, str]:
    """The v2 scope that allows ``action`` on ``resource``, and the v1 scope that does."""
    v1 = next(name for name, letters in _V1.items() if action in letters)
    return f"system/{resource}.{action}", f"system/{resource}.{v1}"


def grant(requested: str, registered: str) -> str:
    """The requested scopes the client's registered ones allow (the same or narrower, say
    ``.rs`` of a registered ``.read`` or ``.cruds``), in the order asked; refused if one is not
    a system scope Konsil knows or none is allowed."""
    asked = requested.split()
    if not asked:
        raise Refused("scope fehlt.")
    unknown = [s for s in asked if parse_scope(s) is None]
    if unknown:
        raise Refused(f"Unbekannter Scope: {unknown[0][:80]}")
    allowed = [scope for s in registered.split() if (scope := parse_scope(s)) is not None]
    granted = [s for s in asked if (scope := parse_scope(s)) and scope.covered_by(allowed)]
    if not granted:
        raise Refused("Keiner der Scopes ist für diesen Client registriert.")
    return " ".join(dict.fromkeys(granted))


def public_keys(jwks: Any) -> KeySet:
    """A client's registered JWKS: 1–5 public RSA (≥ 2048 bits) or EC P-384 keys, each with a
    distinct ``kid``; private key material is refused (it must never leave the client)."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYS:
        raise Refused(f"jwks braucht 1 bis {MAX_KEYS} Schlüssel in keys.")
    kids = set()
    for key in keys:
        if not isinstance(key, dict):
            raise Refused("Jeder Schlüssel ist ein JSON-Objekt (JWK).")
        if PRIVATE_MEMBERS & set(key):
            raise Refused(
                "Nur öffentliche Schlüssel registrieren: der private Teil bleibt beim Client."
            )
        kid = key.get("kid")
        if not isinstance(kid, str) or not 1 <= len(kid) <= 100 or kid in kids:
            raise Refused("Jeder Schlüssel braucht eine eigene kid (1–100 Zeichen).")
        kids.add(kid)
        if key.get("kty") == "EC" and key.get("crv") != "P-384":
            raise Refused("EC-Schlüssel müssen die Kurve P-384 haben (ES384).")
        if key.get("kty") not in ("RSA", "EC"):
            raise Refused("Nur RSA- (RS384) und EC-Schlüssel (ES384) werden angenommen.")
        if key.get("kty") == "RSA" and _modulus_bits(key.get("n")) < MIN_RSA_BITS:
            raise Refused(f"RSA-Schlüssel brauchen mindestens {MIN_RSA_BITS} Bit.")
    try:
        found = KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError, KeyError):
        raise Refused("jwks enthält einen ungültigen Schlüssel.") from None
    if not all(isinstance(imported, RSAKey | ECKey) for imported in found.keys):
        raise Refused("Nur RSA- und EC-Schlüssel werden angenommen.")
    return found


def _modulus_bits(n: Any) -> int:
    """The bit length of an RSA JWK's modulus (0 if it is not base64url)."""
    if not isinstance(n, str) or len(n) > 2048:
        return 0
    try:
        raw = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
    except (ValueError, binascii.Error):
        return 0
    return int.from_bytes(raw, "big").bit_length()


def unverified_issuer(assertion: str) -> str:
    """The ``iss`` of a compact JWT, read before its signature is checked: only to find the
    client whose keys then check it."""
    try:
        payload = json.loads(extract_compact(assertion.encode()).payload)
    except (JoseError, ValueError, TypeError, UnicodeError, RecursionError):
        raise Refused("client_assertion ist kein gültiges JWT.") from None
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    if not isinstance(issuer, str) or not 1 <= len(issuer) <= 64:
        raise Refused("client_assertion braucht iss (die client_id).")
    return issuer


@dataclass(frozen=True)
class Assertion:
    jti: str
    expires_at: int


def check_assertion(
    assertion: str, *, client_id: str, keys: KeySet, audience: str, now: int
) -> Assertion:
    """The assertion's ``jti`` and expiry if it is the client's own, for this endpoint, now."""
    try:
        token = jwt.decode(assertion, keys, algorithms=SIGNING_ALGS)
    except (JoseError, ValueError, TypeError, RecursionError):
        raise Refused(
            "Die client_assertion wurde nicht angenommen (Client, Schlüssel oder Signatur)."
        ) from None
    claims = token.claims
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise Refused("iss und sub der client_assertion müssen die client_id sein.")
    audiences = claims.get("aud")
    if audience not in (audiences if isinstance(audiences, list) else [audiences]):
        raise Refused("aud der client_assertion muss die URL des Token-Endpunkts sein.")
    expires = claims.get("exp")
    if not isinstance(expires, int) or isinstance(expires, bool):
        raise Refused("client_assertion braucht exp.")
    if expires + LEEWAY_SECONDS <= now:
        raise Refused("Die client_assertion ist abgelaufen.")
    if expires > now + MAX_ASSERTION_SECONDS + LEEWAY_SECONDS:
        raise Refused(f"exp liegt mehr als {MAX_ASSERTION_SECONDS} Sekunden in der Zukunft.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= 255:
        raise Refused("client_assertion braucht jti.")
    return Assertion(jti, expires)


def issue_token(key: bytes, *, issuer: str, client_id: str, scope: str, now: int) -> str:
    claims = {
        "iss": issuer,
        "sub": client_id,
        "scope": scope,
        "iat": now,
        "exp": now + TOKEN_SECONDS,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode({"alg": "HS256", "typ": "at+jwt"}, claims, OctKey.import_key(key))


@dataclass(frozen=True)
class Grant:
    client_id: str
    scope: str


def read_token(key: bytes, token: str, *, issuer: str, now: int) -> Grant:
    """The client and scopes an access token of this server grants, if it is still valid."""
    try:
        decoded = jwt.decode(token, OctKey.import_key(key), algorithms=["HS256"])
    except (JoseError, ValueError, TypeError, RecursionError):
        raise Refused("Das Zugriffstoken ist ungültig.") from None
    claims = decoded.claims
    expires, client_id, scope = claims.get("exp"), claims.get("sub"), claims.get("scope")
    if claims.get("iss") != issuer or not isinstance(expires, int) or expires <= now:
        raise Refused("Das Zugriffstoken ist abgelaufen oder nicht von diesem Server.")
    if not isinstance(client_id, str) or not isinstance(scope, str):
        raise Refused("Das Zugriffstoken ist ungültig.")
    return Grant(client_id, scope)
