"""FHIR errors as ``OperationOutcome`` and the ``application/fhir+json`` answers (pure)."""

from __future__ import annotations

import json
from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.resource import Resource
from starlette.responses import Response

from app.errors import InvalidInput, KonsilError, SlotUnavailable

MEDIA_TYPE = "application/fhir+json; charset=utf-8"

# The issue type (http://hl7.org/fhir/issue-type) for each status Konsil answers.
ISSUE_TYPES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "business-rule",
    429: "throttled",
    503: "transient",
}


class FhirError(Exception):
    """An error of the FHIR layer itself: answered as an OperationOutcome with ``status``."""

    def __init__(
        self,
        status: int,
        diagnostics: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code or ISSUE_TYPES.get(status, "processing")
        self.headers = headers


def outcome(status: int, diagnostics: str, *, code: str | None = None) -> dict[str, Any]:
    """An OperationOutcome with one error issue."""
    issue = {
        "severity": "error",
        "code": code or ISSUE_TYPES.get(status, "processing"),
        "diagnostics": diagnostics,
    }
    return dump(OperationOutcome.model_validate({"issue": [issue]}))


def information(diagnostics: str) -> dict[str, Any]:
    """An OperationOutcome that only informs (an asynchronous request's progress)."""
    issue = {"severity": "information", "code": "informational", "diagnostics": diagnostics}
    return dump(OperationOutcome.model_validate({"issue": [issue]}))


def from_domain(exc: KonsilError) -> FhirError:
    """A domain error as FHIR sees it: Konsil's status, except that a slot that is not
    offered or outside the booking window breaks a business rule (422, as ISiK's $book asks
    for otherwise invalid appointments), and invalid input is 422 with its fields named."""
    status = 422 if isinstance(exc, SlotUnavailable) else exc.status
    message = exc.message
    if isinstance(exc, InvalidInput) and exc.detail.get("fields"):
        fields = "; ".join(f"{f['field']}: {f['message']}" for f in exc.detail["fields"])
        message = f"{message} ({fields})"
    return FhirError(status, message)


def dump(resource: Resource) -> dict[str, Any]:
    """The resource as FHIR JSON (no nulls)."""
    data: dict[str, Any] = resource.model_dump(mode="json", exclude_none=True)
    return data


def fhir_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


def error_response(error: FhirError, headers: dict[str, str] | None = None) -> Response:
    return fhir_response(
        outcome(error.status, error.diagnostics, code=error.code), error.status, headers
    )
