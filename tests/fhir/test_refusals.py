"""What /fhir/R4 refuses: every refusal an OperationOutcome with a precise 4xx, nothing
changed, no traceback; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest

from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import FHIR_JSON, assert_outcome, free_slots, parameters

HUGE = ("2147483648", "99999999999999999999999999", "abc", "0", "-1")
PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


async def book(client: httpx2.AsyncClient, body: object) -> httpx2.Response:
    return await client.post(
        "/fhir/R4/Appointment/$book", json=body, headers={"Content-Type": FHIR_JSON}
    )


@pytest.mark.parametrize(
    "path",
    ["/fhir/R4/HealthcareService", "/fhir/R4/Schedule/1", "/fhir/R4/Slot", "/fhir/R4/Appointment"],
)
async def test_fhir_anonymous_gets_401_outcome(client: httpx2.AsyncClient, path: str) -> None:
    assert assert_outcome(await client.get(path), 401).issue[0].code == "login"


async def test_fhir_bad_books_are_refused_and_book_nothing(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, settings, demo.specialist))[0]
    good = parameters(f"Slot/{slot['id']}")
    appointment = good["parameter"][0]["resource"]
    cases: list[tuple[object, int]] = [
        ({"resourceType": "Patient"}, 400),
        ([1, 2], 400),
        (parameters(f"Slot/{slot['id']}", slot=[]), 400),
        (parameters("Slot/garbage"), 422),
        (parameters("Slot/2147483648-1"), 422),
        (parameters(f"Slot/{demo.specialist.id}-60"), 422),  # 1970: not bookable
        (parameters(f"Slot/{slot['id']}", status="booked"), 400),
        (parameters(f"Slot/{slot['id']}", contained=[]), 400),
        (parameters(f"Slot/{slot['id']}", comment="?"), 422),  # too short for a question
        ({**appointment, "status": "nonsense"}, 400),
    ]
    for body, status in cases:
        assert_outcome(await book(client, body), status)
    wrong_type = await client.post(
        "/fhir/R4/Appointment/$book", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert_outcome(wrong_type, 415)
    assert slot["id"] in [s["id"] for s in await free_slots(client, settings, demo.specialist)]
    # The specialist may read but not book.
    client.cookies.clear()
    await login(client, demo.specialist)
    assert_outcome(await book(client, good), 403)


async def test_fhir_ids_that_name_nothing_are_404(
    client: httpx2.AsyncClient, demo: Demo, caplog: pytest.LogCaptureFixture
) -> None:
    await login(client, demo.gp)
    for kind in (
        "Appointment",
        "HealthcareService",
        "Practitioner",
        "PractitionerRole",
        "Schedule",
    ):
        for value in HUGE:
            assert_outcome(await client.get(f"/fhir/R4/{kind}/{value}"), 404)
            patched = await client.patch(f"/fhir/R4/{kind}/{value}", content=b"[]", headers=PATCH)
            assert patched.status_code in (400, 404, 405), patched.text
    assert_outcome(await client.get("/fhir/R4/Observation"), 404)
    assert_outcome(await client.delete("/fhir/R4/Slot"), 405)
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_fhir_patch_of_anything_but_status_changes_nothing(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, settings, demo.specialist))[0]
    booked = await book(client, parameters(f"Slot/{slot['id']}"))
    path = f"/fhir/R4/Appointment/{booked.json()['id']}"
    for patch in (
        b'[{"op": "replace", "path": "/start", "value": "2030-01-01T10:00:00Z"}]',
        b'[{"op": "replace", "path": "/status", "value": "cancelled"},'
        b' {"op": "remove", "path": "/participant/0"}]',
        b'[{"op": "replace", "path": "/status", "value": "fulfilled"}]',
        b"{}",
        b"not json",
    ):
        assert_outcome(await client.patch(path, content=patch, headers=PATCH), 400)
    assert (await client.get(path)).json() == booked.json()
    # Another GP does not see it: 404, as for an id that does not exist.
    client.cookies.clear()
    await login(client, demo.other_gp)
    cancel = b'[{"op": "replace", "path": "/status", "value": "cancelled"}]'
    assert_outcome(await client.patch(path, content=cancel, headers=PATCH), 404)


async def test_fhir_slot_search_rules(client: httpx2.AsyncClient, demo: Demo) -> None:
    await login(client, demo.gp)
    assert_outcome(await client.get("/fhir/R4/Slot"), 400)  # neither schedule nor service-type
    too_wide = {"schedule": f"Schedule/{demo.specialist.id}", "start": "le2099-01-01"}
    assert_outcome(await client.get("/fhir/R4/Slot", params=too_wide), 400)
    naive = {"schedule": f"Schedule/{demo.specialist.id}", "start": "ge2030-01-01T10:00:00"}
    assert_outcome(await client.get("/fhir/R4/Slot", params=naive), 400)
    unknown = {"schedule": "Schedule/2147483648", "foo": "bar"}
    lenient = await client.get("/fhir/R4/Slot", params=unknown)
    assert lenient.status_code == 200
    assert lenient.json()["total"] == 0
    strict = await client.get(
        "/fhir/R4/Slot", params=unknown, headers={"Prefer": "handling=strict"}
    )
    assert_outcome(strict, 400)


async def test_fhir_writes_need_the_csrf_token_like_the_json_api(
    client: httpx2.AsyncClient, demo: Demo, settings: Settings
) -> None:
    await login(client, demo.gp)
    slot = (await free_slots(client, settings, demo.specialist))[0]
    token = client.headers.pop("X-CSRF-Token")
    assert_outcome(await book(client, parameters(f"Slot/{slot['id']}")), 403)
    client.headers["X-CSRF-Token"] = token
    foreign = await client.post(
        "/fhir/R4/Appointment/$book",
        json=parameters(f"Slot/{slot['id']}"),
        headers={"Content-Type": FHIR_JSON, "Origin": "https://evil.example"},
    )
    assert_outcome(foreign, 403)
    assert slot["id"] in [s["id"] for s in await free_slots(client, settings, demo.specialist)]
