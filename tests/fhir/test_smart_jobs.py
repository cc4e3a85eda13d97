"""A system client polls the asynchronous ``$book`` it sent with the scope that booked
(``system/Appointment.write``); another's job (the GP's own, another client's) needs
``system/Appointment.read``; a token with no Appointment scope learns nothing of any job."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
import pytest
from joserfc.jwk import RSAKey

from app.settings import Settings
from tests.factories import Demo, login
from tests.fhir.helpers import assert_outcome, free_slots, kick_off, poll
from tests.fhir.smart_client import authorized

ClientFactory = Callable[[], httpx2.AsyncClient]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], database_url: str) -> Settings:
    return make_settings(database_url=database_url)


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "praxis-2026", "alg": "RS384"})


async def test_a_write_only_client_polls_its_own_job_only(
    client_factory: ClientFactory, demo: Demo, settings: Settings, rsa_key: RSAKey
) -> None:
    async with (
        client_factory() as doctor,
        client_factory() as writer,
        client_factory() as other_writer,
        client_factory() as reader,
        client_factory() as directory,
    ):
        await login(doctor, demo.gp)
        slots = await free_slots(doctor, settings, demo.specialist)
        await authorized(writer, doctor, rsa_key, settings, ["system/Appointment.write"])
        await authorized(other_writer, doctor, rsa_key, settings, ["system/Appointment.write"])
        await authorized(reader, doctor, rsa_key, settings, ["system/Appointment.read"])
        await authorized(directory, doctor, rsa_key, settings, ["system/Slot.read"])

        own = await kick_off(writer, slots[0]["id"])
        done = await poll(writer, own)
        assert done.status_code == 200, done.text
        assert done.json()["entry"][0]["resource"]["status"] == "booked"

        by_session = await kick_off(doctor, slots[1]["id"])
        assert (await poll(doctor, by_session)).status_code == 200
        for path in (by_session, own):
            refused = await other_writer.get(path)
            assert "system/Appointment.read" in (
                assert_outcome(refused, 403).issue[0].diagnostics or ""
            )
            assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]
        assert (await poll(reader, by_session)).status_code == 200
        assert (await poll(reader, own)).status_code == 200
        assert_outcome(await directory.get(own), 403)
        assert_outcome(await directory.get("/fhir/R4/_jobs/not-a-job-of-anybody-at-all"), 403)
        assert_outcome(await writer.get("/fhir/R4/_jobs/not-a-job-of-anybody-at-all"), 404)
