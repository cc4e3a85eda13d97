"""The CapabilityStatement: exactly what ``/fhir/R4`` serves (pure)."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from app.fhir.outcome import dump
from app.fhir.resources import BOOK_OPERATION, PROFILE_APPOINTMENT, PROFILE_SLOT

SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"

# (type, interactions, search parameters (name, type), supported ISiK profile, operations)
RESOURCES: tuple[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...], str | None], ...] = (
    ("HealthcareService", ("read", "search-type"), (("_id", "token"),), None),
    ("Practitioner", ("read", "search-type"), (("_id", "token"),), None),
    (
        "PractitionerRole",
        ("read", "search-type"),
        (("_id", "token"), ("specialty", "token"), ("practitioner", "reference")),
        None,
    ),
    (
        "Schedule",
        ("read", "search-type"),
        (("_id", "token"), ("actor", "reference"), ("service-type", "token")),
        None,
    ),
    (
        "Slot",
        ("search-type",),
        (
            ("schedule", "reference"),
            ("service-type", "token"),
            ("start", "date"),
            ("status", "token"),
        ),
        PROFILE_SLOT,
    ),
    (
        "Appointment",
        ("read", "search-type", "patch"),
        (("date", "date"), ("status", "token"), ("actor", "reference")),
        PROFILE_APPOINTMENT,
    ),
    ("Patient", ("read", "create"), (), None),
    ("ServiceRequest", ("read", "create"), (), None),
    ("Consent", ("read",), (), None),
    ("DocumentReference", ("read", "search-type"), (("related", "reference"),), None),
    ("Binary", ("read",), (), None),
    ("DiagnosticReport", ("read",), (), None),
    ("Composition", (), (), None),
)


def capability_statement(*, base: str, token_endpoint: str, published: str) -> dict[str, Any]:
    """What the server does, for ``base`` (``…/fhir/R4``)."""
    resources = []
    for kind, interactions, params, profile in RESOURCES:
        entry: dict[str, Any] = {
            "type": kind,
            "interaction": [{"code": code} for code in interactions],
            "searchParam": [{"name": name, "type": kind_} for name, kind_ in params],
        }
        if profile is not None:
            entry["supportedProfile"] = [profile]
        if kind == "Appointment":
            entry["operation"] = [
                {
                    "name": "book",
                    "definition": BOOK_OPERATION,
                    "documentation": "Synchron (201) oder mit Prefer: respond-async "
                    "(202, Content-Location mit dem Ergebnis).",
                }
            ]
        if kind == "Composition":
            entry["operation"] = [
                {
                    "name": "document",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Composition-document",
                    "documentation": "Der Bericht als Arztbrief: ein document-Bundle.",
                }
            ]
        resources.append(entry)
    return dump(
        CapabilityStatement.model_validate(
            {
                "status": "active",
                "date": published,
                "kind": "instance",
                "name": "KonsilFhirServer",
                "title": "Konsil FHIR R4",
                "software": {"name": "Konsil"},
                "implementation": {"description": "Konsil Telekonsil-Terminplanung", "url": base},
                "fhirVersion": "4.0.1",
                "format": ["application/fhir+json"],
                "patchFormat": ["application/json-patch+json"],
                "rest": [
                    {
                        "mode": "server",
                        "documentation": "SMART Backend Services (Bearer token from "
                        "/oauth/token, private_key_jwt) or a staff session cookie (login at "
                        "/api/v1/auth/login; writes need the X-CSRF-Token header). See "
                        "docs/fhir.md.",
                        "security": {
                            "cors": False,
                            "service": [
                                {
                                    "coding": [
                                        {
                                            "system": SECURITY_SERVICE,
                                            "code": "SMART-on-FHIR",
                                        }
                                    ]
                                }
                            ],
                            "extension": [
                                {
                                    "url": OAUTH_URIS,
                                    "extension": [{"url": "token", "valueUri": token_endpoint}],
                                }
                            ],
                        },
                        "resource": resources,
                    }
                ],
            }
        )
    )
