"""The guest (interpreter, carer) over a real websocket: waits until the specialist admits it,
then a four-way mesh; never hears the patient's name; a fifth connection is refused; the
admission crosses server processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.errors import WS_FORBIDDEN, WS_REPLACED, WS_UNAUTHENTICATED
from app.scheduling.models import Appointment
from app.settings import Settings
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Listening, Live, live_server
from tests.scheduling.helpers import token_of
from tests.services import REDIS_URL, require_redis
from tests.signaling.test_ws_call_state import until_state
from tests.signaling.test_ws_resume import connections_in_room
from tests.signaling.wsclient import ORIGIN, TIMEOUT, Client, staff_api, staff_cookie, ws_connect

PATIENT_NAME = "Erika Mustermann"


async def guest_cookie(live: Live, demo: Demo, appointment: Appointment) -> str:
    """Invites a guest (as the GP) and redeems the link: the guest's cookie."""
    async with staff_api(live, demo.gp) as gp:
        issued = await gp.post(
            f"/api/v1/appointments/{appointment.id}/guest",
            json={"name": "Ayşe Demir", "kind": "interpreter"},
        )
        assert issued.status_code == 201, issued.text
    async with httpx2.AsyncClient(base_url=live.url, headers={"Origin": ORIGIN}) as browser:
        redeemed = await browser.post(
            "/api/v1/guest/session", json={"token": token_of(issued.json()["guest_url"])}
        )
        assert redeemed.status_code == 200, redeemed.text
        return f"konsil_guest={browser.cookies['konsil_guest']}"


class Recording(Client):
    """A client that keeps every message it received (to search them afterwards)."""

    seen: list[str]

    async def recv(self) -> dict[str, Any]:
        message = await super().recv()
        self.seen.append(str(message))
        return message


async def until(client: Client, kind: str) -> dict[str, Any]:
    """The next message of type ``kind``, skipping whatever comes before it."""
    while (message := await client.recv())["type"] != kind:
        pass
    return message


@asynccontextmanager
async def joined(live: Listening, query: str, cookie: str) -> AsyncIterator[Client]:
    async with ws_connect(live, query, cookie) as client:
        await client.send(type="join")
        await client.expect("joined")
        yield client


async def test_ws_guest_waits_is_admitted_and_joins_a_four_way_mesh(
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    make_settings: Callable[..., Settings],
) -> None:
    async with live_server(settings) as live, AsyncExitStack() as stack:
        appointment = await make_appointment(sessions, demo, patient_name=PATIENT_NAME)
        room = f"appointment={appointment.id}"
        guest_login = await guest_cookie(live, demo, appointment)
        s = await stack.enter_async_context(
            joined(live, f"as=staff&{room}", await staff_cookie(live, demo.specialist))
        )
        g = await stack.enter_async_context(
            joined(live, f"as=staff&{room}", await staff_cookie(live, demo.gp))
        )
        patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
        p = await stack.enter_async_context(joined(live, f"as=patient&{room}", patient))
        raw = await stack.enter_async_context(ws_connect(live, f"as=guest&{room}", guest_login))
        guest = Recording(raw.ws)
        guest.seen = []
        await guest.send(type="join")
        me = await guest.expect("joined")
        assert me["role"] == "guest"
        assert (await guest.expect("guest_status"))["state"] == "waiting"
        for staff in (s, g):
            status = await until(staff, "guest_status")
            assert (status["state"], status["name"], status["kind"]) == (
                "waiting",
                "Ayşe Demir",
                "interpreter",
            )
        # Only the specialist lets the guest in; the guest cannot admit anyone.
        await g.send(type="admit_guest")
        assert (await g.expect("error"))["code"] == "forbidden"
        await guest.send(type="admit")
        assert (await guest.expect("error"))["code"] == "forbidden"

        await s.send(type="admit")
        await s.send(type="admit_guest")
        peers: dict[str, dict[str, Any]] = {}
        admission: str | None = None
        while len(peers) < 3 or admission is None:
            message = await guest.recv()
            if message["type"] == "guest_status":
                admission = message["state"]
            elif message["type"] == "peer_joined":
                assert message["offer"] is False  # the others offer to the guest
                peers[message["peer"]["role"]] = message["peer"]
        assert admission == "admitted"
        assert peers["patient"]["name"] == ""
        assert peers["specialist"]["name"] == demo.specialist.display_name
        for client in (s, g, p):
            while (message := await until(client, "peer_joined"))["peer"]["role"] != "guest":
                pass
            seen = message["peer"]
            assert (seen["name"], seen["kind"], message["offer"]) == (
                "Ayşe Demir",
                "interpreter",
                True,
            )
        # The guest relays like everybody else, and chat reaches it.
        await s.send(type="offer", to=me["participant_id"], sdp="v=0\r\n")
        offer = await guest.expect("offer")
        await guest.send(type="answer", to=offer["from"], sdp="v=0\r\n")
        await until(s, "answer")
        await p.send(type="chat", text="Hallo")
        assert (await guest.expect("chat"))["text"] == "Hallo"

        # Sent back: the guest is out of the call too.
        await s.send(type="send_back")
        await until_state(guest, "waiting")
        left = [await until(s, "peer_left") for _ in range(2)]
        assert me["participant_id"] in {m["peer_id"] for m in left}
        assert PATIENT_NAME not in " ".join(guest.seen)


async def test_ws_guest_cookie_opens_only_its_own_room_as_guest(
    demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with live_server(settings) as live:
        appointment = await make_appointment(sessions, demo)
        other = await make_appointment(sessions, demo)
        cookie = await guest_cookie(live, demo, appointment)
        async with ws_connect(live, f"as=guest&appointment={other.id}", cookie) as wrong:
            assert await wrong.closed_with() == WS_FORBIDDEN
        async with ws_connect(live, f"as=patient&appointment={appointment.id}", cookie) as w:
            assert await w.closed_with() == WS_UNAUTHENTICATED
        async with ws_connect(live, "as=staff", cookie) as dashboard:
            assert await dashboard.closed_with() == WS_UNAUTHENTICATED
        async with joined(live, f"as=guest&appointment={appointment.id}", cookie) as guest:
            # Revoking the invitation ends the guest's session: its socket closes.
            async with staff_api(live, demo.gp) as gp:
                revoked = await gp.delete(f"/api/v1/appointments/{appointment.id}/guest")
                assert revoked.status_code == 204
            assert await guest.closed_with() == WS_UNAUTHENTICATED


@pytest.mark.redis
async def test_ws_guest_admission_crosses_server_processes(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    require_redis()
    cfg = make_settings(broker_url=REDIS_URL)
    async with (
        live_server(cfg) as first,
        live_server(cfg) as second,
        AsyncExitStack() as stack,
    ):
        appointment = await make_appointment(sessions, demo)
        room = f"appointment={appointment.id}"
        s = await stack.enter_async_context(
            joined(first, f"as=staff&{room}", await staff_cookie(first, demo.specialist))
        )
        patient = f"konsil_patient={await patient_token(sessions, cfg, appointment)}"
        p = await stack.enter_async_context(joined(first, f"as=patient&{room}", patient))
        await s.send(type="admit")
        await s.expect("peer_joined")
        await p.expect("peer_joined")
        guest = await stack.enter_async_context(
            joined(second, f"as=guest&{room}", await guest_cookie(second, demo, appointment))
        )
        assert (await until(s, "guest_status"))["state"] == "waiting"
        async with staff_api(first, demo.specialist) as http:
            admitted = await http.post(f"/api/v1/rooms/{appointment.id}/guest/admit")
            assert admitted.status_code == 200, admitted.text
        roles = {(await until(guest, "peer_joined"))["peer"]["role"] for _ in range(2)}
        assert roles == {"patient", "specialist"}
        assert (await until(s, "peer_joined"))["peer"]["role"] == "guest"
        assert (await until(p, "peer_joined"))["peer"]["name"] == "Ayşe Demir"


async def test_ws_guest_admitted_while_its_connection_was_gone_hears_it_on_resume(
    live: Live, demo: Demo, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    assert appointment.id is not None
    room = f"appointment={appointment.id}"
    cookie = await guest_cookie(live, demo, appointment)
    async with joined(
        live, f"as=staff&{room}", await staff_cookie(live, demo.specialist)
    ) as specialist:
        async with ws_connect(live, f"as=guest&{room}", cookie) as guest:
            await guest.send(type="join")
            first = await guest.expect("joined")
            assert (await guest.expect("guest_status"))["state"] == "waiting"
            assert (await until(specialist, "guest_status"))["state"] == "waiting"
        # The guest's network dropped (no "leave"); the specialist lets it in meanwhile.
        await asyncio.wait_for(connections_in_room(live, appointment.id, 1), TIMEOUT)
        async with staff_api(live, demo.specialist) as http:
            admitted = await http.post(f"/api/v1/rooms/{appointment.id}/guest/admit")
            assert admitted.status_code == 200, admitted.text
        assert (await until(specialist, "guest_status"))["state"] == "admitted"
        async with ws_connect(live, f"as=guest&{room}", cookie) as again:
            await again.send(type="join", resume=first["resume_id"])
            assert (await again.expect("joined"))["resumed"] is True
            assert (await until(again, "guest_status"))["state"] == "admitted"


async def test_ws_the_patient_joins_whoever_else_is_there_and_a_second_device_takes_over(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with AsyncExitStack() as stack:
        appointment = await make_appointment(sessions, demo)
        room = f"appointment={appointment.id}"
        guest_login = await guest_cookie(live, demo, appointment)
        desk = await stack.enter_async_context(
            joined(live, f"as=staff&{room}", await staff_cookie(live, demo.specialist))
        )
        await stack.enter_async_context(
            joined(live, f"as=staff&{room}", await staff_cookie(live, demo.gp))
        )
        guest = await stack.enter_async_context(joined(live, f"as=guest&{room}", guest_login))
        assert (await guest.expect("guest_status"))["state"] == "waiting"
        # The specialist opens the call on a tablet too: it takes the desk's seat over.
        tablet = await stack.enter_async_context(
            joined(live, f"as=staff&{room}", await staff_cookie(live, demo.specialist))
        )
        assert await desk.closed_with() == WS_REPLACED
        patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
        async with ws_connect(live, f"as=patient&{room}", patient) as p:
            await p.send(type="join")
            assert (await p.expect("joined"))["role"] == "patient"
            await tablet.send(type="admit")
            roles = {(await until(p, "peer_joined"))["peer"]["role"] for _ in range(2)}
            assert roles == {"specialist", "gp"}
