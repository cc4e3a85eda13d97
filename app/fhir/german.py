"""The German FHIR conventions Konsil uses for a Telekonsil request's particulars (pure), in
both directions: the insurance number (KVNR) as a Patient identifier, the sex as
``Patient.gender`` (``other`` qualified by the ``gender-amtlich-de`` extension: D "divers",
X "unbestimmt"), the diagnosis as an ICD-10-GM coding with its
Diagnosesicherheit (HL7 Deutschland's Basisprofile, KBV's code system for the certainty)."""

from __future__ import annotations

from typing import Any

from app.scheduling.models import PatientSex

KVID_SYSTEM = "http://fhir.de/sid/gkv/kvid-10"
IDENTIFIER_TYPE_SYSTEM = "http://fhir.de/CodeSystem/identifier-type-de-basis"
ICD10GM_SYSTEM = "http://fhir.de/CodeSystem/bfarm/icd-10-gm"
CERTAINTY_EXTENSION = "http://fhir.de/StructureDefinition/icd-10-gm-diagnosesicherheit"
CERTAINTY_SYSTEM = "https://fhir.kbv.de/CodeSystem/KBV_CS_SFHIR_ICD_DIAGNOSESICHERHEIT"
GENDER_EXTENSION = "http://fhir.de/StructureDefinition/gender-amtlich-de"
GENDER_SYSTEM = "http://fhir.de/CodeSystem/gender-amtlich-de"

_GENDER = {
    PatientSex.FEMALE: "female",
    PatientSex.MALE: "male",
    PatientSex.DIVERSE: "other",
    PatientSex.UNKNOWN: "unknown",
}


def kvnr_identifier(kvnr: str) -> dict[str, Any]:
    return {
        "use": "official",
        "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": "KVZ10"}]},
        "system": KVID_SYSTEM,
        "value": kvnr,
    }


LANR_SYSTEM = "https://fhir.kbv.de/NamingSystem/KBV_NS_Base_ANR"


def lanr_identifier(lanr: str) -> dict[str, Any]:
    return {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "LANR"}]
        },
        "system": LANR_SYSTEM,
        "value": lanr,
    }


def gender_of(sex: PatientSex) -> dict[str, Any]:
    """``gender`` and, for "divers", the official German value in its extension (``other``
    must carry one). "unknown" is FHIR's own ``unknown``: Konsil does not store whether a
    sex is unknown or officially "unbestimmt" (X), so it claims no X."""
    data: dict[str, Any] = {"gender": _GENDER[sex]}
    if sex is PatientSex.DIVERSE:
        data["_gender"] = {
            "extension": [
                {"url": GENDER_EXTENSION, "valueCoding": {"system": GENDER_SYSTEM, "code": "D"}}
            ]
        }
    return data


# What ``other`` means with each code of gender-amtlich-de (without one: "divers", as before
# the extension was read).
_AMTLICH = {"D": PatientSex.DIVERSE, "X": PatientSex.UNKNOWN, None: PatientSex.DIVERSE}


class UnknownGender(ValueError):
    """A ``gender`` or ``gender-amtlich-de`` code Konsil does not know (the message says
    which it does)."""


def sex_from(gender: str | None, amtlich: str | None = None) -> str | None:
    """Konsil's sex for a FHIR ``gender`` and its ``gender-amtlich-de`` code, if any:
    ``other`` with D (or none) is "divers", with X ("unbestimmt") "unknown"; the code
    qualifies ``other`` only and is ignored beside another gender."""
    if gender == "other":
        if amtlich not in _AMTLICH:
            raise UnknownGender(
                "gender-amtlich-de kennt hier nur die Codes D (divers) und X (unbestimmt)."
            )
        return _AMTLICH[amtlich].value
    if gender is None:
        return None
    found = {v: k for k, v in _GENDER.items()}.get(gender)
    if found is None:  # AdministrativeGender is a required binding
        raise UnknownGender("gender ist female, male, other oder unknown.")
    return found.value


def diagnosis_concept(code: str | None, certainty: str | None, text: str | None) -> dict[str, Any]:
    """A reason: the ICD-10-GM coding (with its certainty) and the diagnosis in words."""
    concept: dict[str, Any] = {}
    if code:
        coding: dict[str, Any] = {"system": ICD10GM_SYSTEM, "code": code}
        if certainty:
            coding["extension"] = [
                {
                    "url": CERTAINTY_EXTENSION,
                    "valueCoding": {"system": CERTAINTY_SYSTEM, "code": certainty},
                }
            ]
        concept["coding"] = [coding]
    if text:
        concept["text"] = text
    return concept


def is_icd10gm(concept: dict[str, Any]) -> bool:
    return any(c.get("system") == ICD10GM_SYSTEM for c in concept.get("coding") or [])


def diagnosis_from(concept: dict[str, Any]) -> dict[str, Any]:
    """The request's diagnosis fields from a reason with an ICD-10-GM coding."""
    coding = next(c for c in concept.get("coding") or [] if c.get("system") == ICD10GM_SYSTEM)
    certainty = next(
        (
            (e.get("valueCoding") or {}).get("code")
            for e in coding.get("extension") or []
            if e.get("url") == CERTAINTY_EXTENSION
        ),
        None,
    )
    return {
        "diagnosis_code": coding.get("code"),
        "diagnosis_certainty": certainty,
        "diagnosis_text": concept.get("text"),
    }
