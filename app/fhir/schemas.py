"""Request and response bodies of the FHIR client registration (the admin's JSON API)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from app.fhir import smart
from app.schemas import Out, Schema


class FhirClientIn(Schema):
    """A system client a doctor registers for their own account: its name, the scopes it may
    be granted (``system/<type>.read|write|*`` or SMART v2 ``.cruds``) and its public keys."""

    name: str = Field(min_length=2, max_length=200)
    scopes: list[str] = Field(min_length=1, max_length=20)
    jwks: dict[str, Any]

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str]) -> list[str]:
        for scope in value:
            if smart.parse_scope(scope) is None:
                raise PydanticCustomError(
                    "invalid", f"Unbekannter Scope: {scope[:80]} (erwartet: system/<Typ>.read)"
                )
        return list(dict.fromkeys(value))

    @field_validator("jwks")
    @classmethod
    def _public_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > 20_000:
            raise PydanticCustomError("invalid", "jwks ist zu groß.")
        try:
            smart.public_keys(value)
        except smart.Refused as exc:
            raise PydanticCustomError("invalid", str(exc)) from None
        return value


class FhirClientOut(Out):
    id: int
    client_id: str
    name: str
    account_id: int
    role: str
    scopes: list[str]
    active: bool
    created_at: datetime
    last_used_at: datetime | None

    @field_validator("scopes", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return value.split() if isinstance(value, str) else value
