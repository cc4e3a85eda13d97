"""The sex in HL7 Deutschland's conventions: ``gender`` ``other`` is qualified by the
``gender-amtlich-de`` extension, D "divers" and X "unbestimmt" (Konsil's "unknown")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from app.fhir import german
from app.scheduling.models import PatientSex
from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import FHIR_JSON, assert_outcome, free_slots, parameters
from tests.fhir.test_written import service_request


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


def amtlich(*codes: str) -> dict[str, Any]:
    return {
        "extension": [
            {
                "url": german.GENDER_EXTENSION,
                "valueCoding": {"system": german.GENDER_SYSTEM, "code": c},
            }
            for c in codes
        ]
    }


@pytest.mark.parametrize(
    ("gender", "code", "sex"),
    [
        ("other", "D", "diverse"),
        ("other", "X", "unknown"),
        ("other", None, "diverse"),
        ("female", None, "female"),
        ("male", "D", "male"),  # the code qualifies "other" only
        ("unknown", None, "unknown"),
        (None, None, None),
    ],
)
def test_german_sex_from_gender_and_its_official_code(
    gender: str | None, code: str | None, sex: str | None
) -> None:
    assert german.sex_from(gender, code) == sex


def test_german_an_unknown_gender_or_official_code_is_refused() -> None:
    for gender, code in (("other", "M"), ("divers", None), ("", None)):
        with pytest.raises(german.UnknownGender):
            german.sex_from(gender, code)


def test_german_gender_written_with_the_official_code_only_for_divers() -> None:
    assert german.gender_of(PatientSex.DIVERSE) == {"gender": "other", "_gender": amtlich("D")}
    assert german.gender_of(PatientSex.UNKNOWN) == {"gender": "unknown"}
    assert german.gender_of(PatientSex.FEMALE) == {"gender": "female"}


async def test_book_reads_unbestimmt_as_unknown_and_refuses_other_codes(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    await login(client, demo.gp)
    slots = await free_slots(client, settings, demo.specialist)
    patient = parameters("x")["parameter"][0]["resource"]["contained"][0]

    def book(slot: dict[str, Any], **gender: Any) -> dict[str, Any]:
        return parameters(f"Slot/{slot['id']}", contained=[{**patient, **gender}])

    booked = await client.post(
        "/fhir/R4/Appointment/$book",
        json=book(slots[0], gender="other", _gender=amtlich("X")),
        headers={"Content-Type": FHIR_JSON},
    )
    assert booked.status_code == 201, booked.text
    shown = (await client.get(f"/api/v1/appointments/{booked.json()['id']}")).json()
    assert shown["patient_sex"] == "unknown"
    (contained,) = booked.json()["contained"]
    assert contained["gender"] == "unknown"
    assert "_gender" not in contained

    for wrong in (amtlich("M"), amtlich("D", "X")):
        refused = await client.post(
            "/fhir/R4/Appointment/$book",
            json=book(slots[1], gender="other", _gender=wrong),
            headers={"Content-Type": FHIR_JSON},
        )
        assert "gender-amtlich-de" in (assert_outcome(refused, 400).issue[0].diagnostics or "")


async def test_a_written_request_reads_the_sex_like_book(
    client: httpx2.AsyncClient, demo: Demo
) -> None:
    await login(client, demo.gp)
    body = service_request()
    patient = {**body["contained"][0], "gender": "other", "_gender": amtlich("X")}
    sent = await client.post(
        "/fhir/R4/ServiceRequest",
        json={**body, "contained": [patient, body["contained"][1]]},
        headers={"Content-Type": FHIR_JSON},
    )
    assert sent.status_code == 201, sent.text
    shown = (await client.get(f"/api/v1/appointments/{sent.json()['id']}")).json()
    assert shown["patient_sex"] == "unknown"
    wrong = {**patient, "_gender": amtlich("M")}
    refused = await client.post(
        "/fhir/R4/ServiceRequest",
        json={**body, "contained": [wrong, body["contained"][1]]},
        headers={"Content-Type": FHIR_JSON},
    )
    assert "gender-amtlich-de" in (assert_outcome(refused, 400).issue[0].diagnostics or "")
