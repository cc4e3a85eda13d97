"""SMART v2 scope letters mean what they say: ``c`` books (``$book``), ``u`` cancels
(``PATCH``), ``r`` reads an Appointment by id, ``s`` searches; the v1 ``read`` (= ``rs``),
``write`` (= ``cud``) and ``*`` go on working. A client may ask for less than it is
registered with."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest
from joserfc.jwk import RSAKey

from app.fhir import smart
from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import FHIR_JSON, assert_outcome, free_slots, parameters
from tests.fhir.smart_client import TOKEN_URL, ask_token, assertion, authorized, register

ClientFactory = Callable[[], httpx2.AsyncClient]
CANCEL = [{"op": "replace", "path": "/status", "value": "cancelled"}]
PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "praxis-2026", "alg": "RS384"})


@pytest.mark.parametrize(
    ("scope", "allowed"),
    [
        ("system/Appointment.read", "rs"),
        ("system/Appointment.write", "cud"),
        ("system/Appointment.*", "cruds"),
        ("system/Appointment.c", "c"),
        ("system/Appointment.ru", "ru"),
        ("system/Appointment.cruds", "cruds"),
        ("system/*.s", "s"),
    ],
)
def test_smart_scope_letters_allow_exactly_their_actions(scope: str, allowed: str) -> None:
    assert [a for a in "cruds" if smart.permits(scope, "Appointment", a)] == list(allowed)


def test_smart_scopes_out_of_order_or_of_other_kinds_are_unknown() -> None:
    for text in ("system/Appointment.sc", "system/Appointment.x", "patient/Appointment.r"):
        assert smart.parse_scope(text) is None


def test_smart_grant_gives_what_the_registration_covers() -> None:
    registered = "system/Appointment.cruds system/Slot.read"
    assert smart.grant("system/Appointment.rs system/Slot.s", registered) == (
        "system/Appointment.rs system/Slot.s"
    )
    assert smart.grant("system/Slot.rs system/Slot.c", registered) == "system/Slot.rs"
    assert smart.grant("system/Slot.read", "system/*.read") == "system/Slot.read"
    with pytest.raises(smart.Refused):
        smart.grant("system/*.read", "system/Slot.read")  # a wildcard only by a wildcard
    with pytest.raises(smart.Refused):
        smart.grant("system/Appointment.c", "system/Appointment.read")


async def test_create_books_update_cancels_read_reads_search_searches(
    client_factory: ClientFactory, demo: Demo, settings: Settings, rsa_key: RSAKey
) -> None:
    async with (
        client_factory() as doctor,
        client_factory() as creator,
        client_factory() as updater,
        client_factory() as reader,
    ):
        await login(doctor, demo.gp)
        slots = await free_slots(doctor, settings, demo.specialist)
        await authorized(creator, doctor, rsa_key, settings, ["system/Appointment.c"])
        await authorized(updater, doctor, rsa_key, settings, ["system/Appointment.u"])
        await authorized(reader, doctor, rsa_key, settings, ["system/Appointment.r"])

        booked = await creator.post(
            "/fhir/R4/Appointment/$book",
            json=parameters(f"Slot/{slots[0]['id']}"),
            headers={"Content-Type": FHIR_JSON},
        )
        assert booked.status_code == 201, booked.text
        path = f"/fhir/R4/Appointment/{booked.json()['id']}"
        refusals = [
            (await creator.patch(path, json=CANCEL, headers=PATCH), "system/Appointment.u"),
            (await creator.get(path), "system/Appointment.r"),
            (await reader.get("/fhir/R4/Appointment"), "system/Appointment.s"),
            (
                await updater.post(
                    "/fhir/R4/Appointment/$book",
                    json=parameters(f"Slot/{slots[1]['id']}"),
                    headers={"Content-Type": FHIR_JSON},
                ),
                "system/Appointment.c",
            ),
        ]
        for refused, lacking in refusals:
            diagnostics = assert_outcome(refused, 403).issue[0].diagnostics or ""
            assert lacking in diagnostics
            assert f'scope="{lacking}"' in refused.headers["www-authenticate"]
        assert "SMART v1: system/Appointment.write" in (
            assert_outcome(refusals[0][0], 403).issue[0].diagnostics or ""
        )

        read = await reader.get(path)
        assert (read.status_code, read.json()["status"]) == (200, "booked")
        cancelled = await updater.patch(path, json=CANCEL, headers=PATCH)
        assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")


async def test_a_client_asks_for_less_than_it_is_registered_with(
    client_factory: ClientFactory, demo: Demo, settings: Settings, rsa_key: RSAKey
) -> None:
    audience = settings.base_url.rstrip("/") + TOKEN_URL
    async with client_factory() as doctor, client_factory() as system:
        await login(doctor, demo.gp)
        registered = await register(
            doctor, [rsa_key.as_dict(private=False)], ["system/Appointment.*"]
        )
        answer = await ask_token(
            system, assertion(rsa_key, registered["client_id"], audience), "system/Appointment.s"
        )
        assert (answer.status_code, answer.json()["scope"]) == (200, "system/Appointment.s")
        system.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        assert (await system.get("/fhir/R4/Appointment")).status_code == 200
        assert_outcome(await system.get("/fhir/R4/Appointment/1"), 403)
