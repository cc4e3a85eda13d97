"""A software passkey for API tests: answers WebAuthn registration and authentication options
as an authenticator does (P-256, "none" attestation), so a test can send real credentials
without a browser. (The browser tests use Chromium's virtual authenticator instead.)"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

USER_PRESENT, USER_VERIFIED, ATTESTED = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class SoftKey:
    rp_id: str
    origin: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=_new_key)
    credential_id: bytes = field(default_factory=lambda: os.urandom(16))

    def register(self, options: dict[str, Any]) -> dict[str, Any]:
        """The ``PublicKeyCredential.toJSON()`` of ``navigator.credentials.create(options)``."""
        public = self.key.public_key().public_numbers()
        cose_key = cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: public.x.to_bytes(32, "big"), -3: public.y.to_bytes(32, "big")}
        )
        auth_data = (
            self._rp_hash()
            + bytes([USER_PRESENT | USER_VERIFIED | ATTESTED])
            + struct.pack(">I", 0)
            + bytes(16)  # AAGUID
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + cose_key
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"])
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def assertion(self, options: dict[str, Any]) -> dict[str, Any]:
        """The ``PublicKeyCredential.toJSON()`` of ``navigator.credentials.get(options)``."""
        # A counter of 0 throughout, as many platform authenticators keep it.
        auth_data = self._rp_hash() + bytes([USER_PRESENT | USER_VERIFIED]) + struct.pack(">I", 0)
        client_data = self._client_data("webauthn.get", options["challenge"])
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": None,
            },
            "clientExtensionResults": {},
        }

    def _rp_hash(self) -> bytes:
        return hashlib.sha256(self.rp_id.encode()).digest()

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": False}
        ).encode()
