"""A patient who waits in the room of an on-call request before anybody takes it: no place in
line while nobody has (no specialist's line to be in), then, once a specialist takes it, the
place in that specialist's line, live."""

from __future__ import annotations

import asyncio

import httpx2

from tests.factories import Demo, login
from tests.live import Live
from tests.scheduling.test_on_call import on_call_body, token_of
from tests.signaling.wsclient import LOGIN_TIMEOUT, ORIGIN, ws_connect


async def test_ws_patient_waiting_before_the_claim_gets_a_place_after_it(
    live: Live, demo: Demo
) -> None:
    headers = {"Origin": ORIGIN}
    async with (
        httpx2.AsyncClient(base_url=live.url, headers=headers, timeout=LOGIN_TIMEOUT) as gp,
        httpx2.AsyncClient(base_url=live.url, headers=headers, timeout=LOGIN_TIMEOUT) as doctor,
        httpx2.AsyncClient(base_url=live.url, headers=headers) as patient,
    ):
        await login(gp, demo.gp)
        await login(doctor, demo.specialist)
        asked = await gp.post("/api/v1/on-call", json=on_call_body(demo.cardiology))
        assert asked.status_code == 201, asked.text
        appointment_id = asked.json()["appointment"]["id"]
        token = token_of(asked.json()["link"]["join_url"])
        redeemed = await patient.post("/api/v1/patient/session", json={"token": token})
        assert redeemed.status_code == 200, redeemed.text
        cookie = f"konsil_patient={patient.cookies['konsil_patient']}"
        async with ws_connect(live, f"as=patient&appointment={appointment_id}", cookie) as p:
            await p.send(type="join")
            await p.expect("joined")
            assert (await p.expect("room_state"))["state"] == "waiting"
            # Nobody's line yet: nothing but the room's state.
            try:
                extra = await asyncio.wait_for(p.recv(), 0.5)
            except TimeoutError:
                extra = None
            assert extra is None or extra["type"] not in ("position", "delay"), extra

            claimed = await doctor.post(f"/api/v1/on-call/{appointment_id}/claim")
            assert claimed.status_code == 200, claimed.text
            position = await p.expect("position")
            assert position["ahead"] == 0
