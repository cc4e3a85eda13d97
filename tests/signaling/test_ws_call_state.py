"""Who is who and what happens in the call, over a real websocket: names and details in
``peer_joined``, ``media_state`` → ``peer_state``, reconnecting / connected, why a peer left,
and sending the patient back to the waiting room (websocket and HTTP) and admitting again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts.models import Practice, User
from app.audit.models import AuditEvent
from app.scheduling.models import Appointment, RoomState
from app.settings import Settings
from tests.factories import Demo, make_appointment, patient_token
from tests.live import Live, live_server
from tests.services import REDIS_URL, require_redis
from tests.signaling.test_ws_resume import call_in_progress
from tests.signaling.wsclient import Client, staff_api, staff_cookie, ws_connect

MEDIA = {"muted": False, "camera_off": False, "audio_only": False, "screen_sharing": False}
QUIET = ("room_state", "queue", "position", "delay")  # the noise, without peer_state


async def next_loud(client: Client) -> dict[str, Any]:
    """The next message that is not waiting-room or queue status (peer_state counts)."""
    while (message := await client.recv())["type"] in QUIET:
        pass
    return message


async def until_state(client: Client, state: str) -> dict[str, Any]:
    """The first ``room_state`` with ``state``, skipping earlier ones (and the noise)."""
    while (message := await client.expect("room_state"))["state"] != state:
        pass
    return message


async def peers_by_role(client: Client, count: int) -> dict[str, dict[str, Any]]:
    """The peers of the next ``count`` ``peer_joined`` messages, by role."""
    peers = [(await client.expect("peer_joined"))["peer"] for _ in range(count)]
    return {peer["role"]: peer for peer in peers}


async def gp_practice(sessions: async_sessionmaker[AsyncSession], gp: User) -> str:
    async with sessions() as session:
        assert gp.practice_id is not None
        practice = await session.get(Practice, gp.practice_id)
    assert practice is not None
    return practice.name


@dataclass
class Room:
    """A room with the specialist, the booking GP and the patient connected and joined."""

    appointment: Appointment
    specialist: Client
    gp: Client
    patient: Client
    ids: dict[str, str]  # role -> participant id


@asynccontextmanager
async def three_in_a_room(
    live: Live,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    gp_lang: str = "de",
) -> AsyncIterator[Room]:
    """Everybody joined, the patient still in the waiting room."""
    appointment = await make_appointment(sessions, demo)
    room = f"appointment={appointment.id}"
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    specialist = await staff_cookie(live, demo.specialist)
    gp = f"{await staff_cookie(live, demo.gp)}; konsil_lang={gp_lang}"
    async with AsyncExitStack() as stack:
        p = await stack.enter_async_context(ws_connect(live, f"as=patient&{room}", patient))
        await p.send(type="join")
        ids = {"patient": (await p.expect("joined"))["participant_id"]}
        s = await stack.enter_async_context(ws_connect(live, f"as=staff&{room}", specialist))
        await s.send(type="join")
        ids["specialist"] = (await s.expect("joined"))["participant_id"]
        g = await stack.enter_async_context(ws_connect(live, f"as=staff&{room}", gp))
        await g.send(type="join")
        ids["gp"] = (await g.expect("joined"))["participant_id"]
        await s.expect("peer_joined")  # staff talk before the patient is admitted
        await g.expect("peer_joined")
        yield Room(appointment, s, g, p, ids)


async def admit_into_call(room: Room) -> None:
    """Admits the patient; the specialist's offer and the patient's answer start the call."""
    await room.specialist.send(type="admit")
    joined = await room.specialist.expect("peer_joined")
    assert joined["peer"]["id"] == room.ids["patient"]
    await room.gp.expect("peer_joined")
    for _ in range(2):
        await room.patient.expect("peer_joined")
    await room.specialist.send(type="offer", to=room.ids["patient"], sdp="v=0\r\n")
    offer = await room.patient.expect("offer")
    await room.patient.send(type="answer", to=offer["from"], sdp="v=0\r\n")
    await room.specialist.expect("answer")
    for client in (room.specialist, room.gp, room.patient):
        await until_state(client, "in_call")


# ---------------------------------------------------------------- who is who


async def test_ws_peer_joined_names_and_details_for_each_viewer(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    practice = await gp_practice(sessions, demo.gp)
    default = {**MEDIA, "connection": "connected"}
    async with three_in_a_room(live, demo, settings, sessions, gp_lang="en") as room:
        await room.specialist.send(type="admit")
        to_specialist = (await room.specialist.expect("peer_joined"))["peer"]
        to_gp = (await room.gp.expect("peer_joined"))["peer"]
        to_patient = await peers_by_role(room.patient, 2)
    patient_seen = {"id": room.ids["patient"], "role": "patient", "state": default}
    assert to_specialist == {**patient_seen, "name": "Erika Mustermann", "detail": ""}
    assert to_gp == {**patient_seen, "name": "Erika Mustermann", "detail": ""}
    assert to_patient["specialist"] == {
        "id": room.ids["specialist"],
        "role": "specialist",
        "name": demo.specialist.display_name,
        "detail": "Kardiologie",
        "state": default,
    }
    assert to_patient["gp"]["name"] == demo.gp.display_name
    assert to_patient["gp"]["detail"] == practice


async def test_ws_staff_see_each_others_details_in_their_language(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    query = f"as=staff&appointment={appointment.id}"
    specialist = await staff_cookie(live, demo.specialist)
    gp = f"{await staff_cookie(live, demo.gp)}; konsil_lang=en"
    async with ws_connect(live, query, specialist) as s, ws_connect(live, query, gp) as g:
        await s.send(type="join")
        await s.expect("joined")
        await g.send(type="join")
        await g.expect("joined")
        seen_by_gp = (await g.expect("peer_joined"))["peer"]
        seen_by_specialist = (await s.expect("peer_joined"))["peer"]
    assert (seen_by_gp["name"], seen_by_gp["detail"]) == (
        demo.specialist.display_name,
        "Cardiology",
    )
    assert seen_by_specialist["detail"] == await gp_practice(sessions, demo.gp)


# ---------------------------------------------------------------- media state


async def test_ws_media_state_reaches_the_others_and_is_not_echoed(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with three_in_a_room(live, demo, settings, sessions) as room:
        await admit_into_call(room)
        await room.patient.send(type="media_state", **{**MEDIA, "muted": True})
        expected = {
            "type": "peer_state",
            "peer_id": room.ids["patient"],
            **MEDIA,
            "muted": True,
            "connection": "connected",
        }
        assert await next_loud(room.specialist) == expected
        assert await next_loud(room.gp) == expected
        # The room's messages keep their order: an echo would come before this chat line.
        await room.specialist.send(type="chat", text="Sie sind stumm geschaltet.")
        chat = await next_loud(room.patient)
        assert (chat["type"], chat["from"]) == ("chat", room.ids["specialist"])


async def test_ws_media_state_of_a_waiting_patient_and_for_a_late_joiner(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    appointment = await make_appointment(sessions, demo)
    room = f"appointment={appointment.id}"
    patient = f"konsil_patient={await patient_token(sessions, settings, appointment)}"
    specialist = await staff_cookie(live, demo.specialist)
    gp = await staff_cookie(live, demo.gp)
    async with (
        ws_connect(live, f"as=patient&{room}", patient) as p,
        ws_connect(live, f"as=staff&{room}", specialist) as s,
    ):
        await p.send(type="join")
        await p.expect("joined")
        # In the waiting room already: nobody hears it yet, but it is kept.
        await p.send(type="media_state", **{**MEDIA, "camera_off": True})
        # A socket's messages are handled in order: once this chat is refused (not in the call
        # yet), the media state is on its way to the room, ahead of the admission below.
        await p.send(type="chat", text="Hallo?")
        assert (await p.expect("error"))["code"] == "not_in_call"
        await s.send(type="join")
        await s.expect("joined")
        await s.send(type="admit")
        peer = (await s.expect("peer_joined"))["peer"]
        assert peer["state"]["camera_off"] is True
        await p.expect("peer_joined")
        await s.send(type="media_state", **{**MEDIA, "screen_sharing": True})
        assert (await p.expect("peer_state"))["screen_sharing"] is True
        async with ws_connect(live, f"as=staff&{room}", gp) as g:
            await g.send(type="join")
            await g.expect("joined")
            late = await peers_by_role(g, 2)
        assert late["specialist"]["state"]["screen_sharing"] is True
        assert late["patient"]["state"]["camera_off"] is True


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "media_state", "muted": True},
        {"type": "media_state", **MEDIA, "muted": "yes"},
        {"type": "media_state", **MEDIA, "connection": "reconnecting"},
    ],
)
async def test_ws_bad_media_state_is_refused_and_changes_nothing(
    live: Live,
    demo: Demo,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    bad: dict[str, Any],
) -> None:
    async with call_in_progress(live, demo, settings, sessions) as call:
        await call.patient.send(**bad)
        error = await call.patient.expect("error")
        assert error["code"] == "invalid_message"
        # Still open, and the peer heard nothing: the next thing it hears is this chat.
        await call.patient.send(type="chat", text="Noch da.")
        chat = await next_loud(call.specialist)
        assert (chat["type"], chat["text"]) == ("chat", "Noch da.")


async def test_ws_patient_screen_sharing_is_refused_and_not_relayed(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with call_in_progress(live, demo, settings, sessions) as call:
        await call.patient.send(type="media_state", **{**MEDIA, "screen_sharing": True})
        error = await call.patient.expect("error")
        assert (error["code"], error["ref"]) == ("screen_share_not_allowed", "media_state")
        # Still open, and the specialist heard nothing: the next thing it hears is this chat.
        await call.patient.send(type="chat", text="Noch da.")
        chat = await next_loud(call.specialist)
        assert (chat["type"], chat["text"]) == ("chat", "Noch da.")


async def test_ws_patient_screen_sharing_when_the_operator_allows_it(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    cfg = make_settings(patient_screen_share=True)
    async with live_server(cfg) as live, call_in_progress(live, demo, cfg, sessions) as call:
        await call.patient.send(type="media_state", **{**MEDIA, "screen_sharing": True})
        state = await call.specialist.expect("peer_state")
        assert (state["peer_id"], state["screen_sharing"]) == (
            call.joined["participant_id"],
            True,
        )


# ---------------------------------------------------------------- connection and leaving


async def test_ws_dropped_peer_is_reconnecting_then_connected_after_resume(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with call_in_progress(live, demo, settings, sessions) as call:
        await call.patient.send(type="media_state", **{**MEDIA, "muted": True})
        assert (await call.specialist.expect("peer_state"))["muted"] is True
        await call.patient.ws.close()  # the network went, no "leave"
        away = await call.specialist.expect("peer_state")
        assert (away["peer_id"], away["connection"], away["muted"]) == (
            call.joined["participant_id"],
            "reconnecting",
            True,
        )
        async with ws_connect(live, call.query, call.cookie) as again:
            await again.send(type="join", resume=call.joined["resume_id"])
            assert (await again.expect("joined"))["resumed"] is True
            back = await next_loud(call.specialist)
            assert (back["type"], back["connection"], back["muted"]) == (
                "peer_state",
                "connected",
                True,
            )
            assert (await next_loud(call.specialist))["type"] == "renegotiate"


async def test_ws_peer_not_back_within_the_window_left_with_reason_lost(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    cfg = make_settings(ws_resume_seconds=1)
    async with live_server(cfg) as live, call_in_progress(live, demo, cfg, sessions) as call:
        await call.patient.ws.close()
        assert (await next_loud(call.specialist))["connection"] == "reconnecting"
        left = await next_loud(call.specialist)
        assert left == {
            "type": "peer_left",
            "peer_id": call.joined["participant_id"],
            "reason": "lost",
        }


async def test_ws_leave_tells_the_peer_reason_left(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with call_in_progress(live, demo, settings, sessions) as call:
        await call.patient.send(type="leave")
        assert await call.patient.closed_with() == 1000
        left = await next_loud(call.specialist)  # no "reconnecting" first
        assert left == {
            "type": "peer_left",
            "peer_id": call.joined["participant_id"],
            "reason": "left",
        }


# ---------------------------------------------------------------- send back


async def sent_back_everywhere(room: Room) -> None:
    """What everybody hears when the patient is sent back; the patient stays connected."""
    for staff in (room.specialist, room.gp):
        left = await staff.expect("peer_left")
        assert left == {"type": "peer_left", "peer_id": room.ids["patient"], "reason": "sent_back"}
        assert (await until_state(staff, "waiting"))["waiting_since"] is not None
    # The room's state and the place in line come on their own ways, in either order.
    heard: dict[str, dict[str, Any]] = {}
    while len(heard) < 2:
        message = await room.patient.recv()
        waiting = message["type"] == "room_state" and message["state"] == "waiting"
        if message["type"] == "position" or waiting:
            heard[message["type"]] = message
        else:
            assert message["type"] in QUIET, message
    assert heard["room_state"]["waiting_since"] is not None
    assert heard["position"]["ahead"] == 0
    # Back in the waiting room: no more signalling, but the connection stays open.
    await room.patient.send(type="chat", text="Hallo?")
    assert (await room.patient.expect("error"))["code"] == "not_in_call"


async def admitted_again(room: Room) -> None:
    """A new admission introduces the patient to both staff members again."""
    staff_side = await room.specialist.expect("peer_joined")
    assert (staff_side["peer"]["id"], staff_side["offer"]) == (room.ids["patient"], True)
    assert (await room.gp.expect("peer_joined"))["peer"]["id"] == room.ids["patient"]
    ids = {(await room.patient.expect("peer_joined"))["peer"]["id"] for _ in range(2)}
    assert ids == {room.ids["specialist"], room.ids["gp"]}
    # And the call works again: the answer starts it.
    await room.specialist.send(type="offer", to=room.ids["patient"], sdp="v=0\r\n")
    offer = await room.patient.expect("offer")
    await room.patient.send(type="answer", to=offer["from"], sdp="v=0\r\n")
    assert (await room.specialist.expect("answer"))["from"] == room.ids["patient"]
    await until_state(room.specialist, "in_call")


async def audit_actions(sessions: async_sessionmaker[AsyncSession], room: Room) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(
            select(AuditEvent.action)
            .where(col(AuditEvent.appointment_id) == room.appointment.id)
            .order_by(col(AuditEvent.id))
        )
    return list(rows.scalars())


async def test_ws_send_back_and_admit_again(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    specialist = await staff_cookie(live, demo.specialist)
    async with three_in_a_room(live, demo, settings, sessions) as room:
        await admit_into_call(room)
        async with ws_connect(live, "as=staff", specialist) as dashboard:
            assert (await dashboard.expect("queue"))["waiting"] == []  # in the call
            await room.specialist.send(type="send_back")
            await sent_back_everywhere(room)
            while not (queue := await dashboard.expect("queue"))["waiting"]:
                pass
        assert [e["appointment_id"] for e in queue["waiting"]] == [room.appointment.id]
        await room.specialist.send(type="admit")
        await admitted_again(room)
    assert (await audit_actions(sessions, room))[-3:] == [
        "room.send_back",
        "room.admit",
        "room.start_call",
    ]


async def test_ws_send_back_over_http_and_admit_again(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with (
        three_in_a_room(live, demo, settings, sessions) as room,
        staff_api(live, demo.specialist) as http,
    ):
        await admit_into_call(room)
        sent = await http.post(f"/api/v1/rooms/{room.appointment.id}/send-back")
        assert sent.status_code == 200, sent.text
        assert sent.json()["room_state"] == "waiting"
        await sent_back_everywhere(room)
        again = await http.post(f"/api/v1/rooms/{room.appointment.id}/admit")
        assert again.status_code == 200, again.text
        await admitted_again(room)


async def test_ws_send_back_is_for_the_specialist_only(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with three_in_a_room(live, demo, settings, sessions) as room:
        await admit_into_call(room)
        for client in (room.gp, room.patient):
            await client.send(type="send_back")
            error = await client.expect("error")
            assert (error["code"], error["ref"]) == ("forbidden", "send_back")
        # Nothing changed: the call goes on.
        await room.patient.send(type="chat", text="Wir sind noch da.")
        assert (await room.specialist.expect("chat"))["text"] == "Wir sind noch da."
    async with sessions() as session:
        stored = await session.get(Appointment, room.appointment.id)
    assert stored is not None
    assert stored.room_state is RoomState.IN_CALL


async def test_ws_send_back_with_nobody_in_the_call_is_refused(
    live: Live, demo: Demo, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with three_in_a_room(live, demo, settings, sessions) as room:
        await room.specialist.send(type="send_back")  # the patient still waits
        error = await room.specialist.expect("error")
        assert (error["code"], error["ref"]) == ("invalid_transition", "send_back")
        await room.specialist.send(type="admit")  # the socket is still open
        assert (await room.specialist.expect("peer_joined"))["peer"]["id"] == room.ids["patient"]


# ---------------------------------------------------------------- two server processes


@pytest.mark.redis
async def test_ws_peer_state_crosses_server_processes(
    make_settings: Callable[..., Settings],
    demo: Demo,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    require_redis()
    cfg = make_settings(broker_url=REDIS_URL)
    async with (
        live_server(cfg) as first,
        live_server(cfg) as second,
        call_in_progress(first, demo, cfg, sessions, patient_server=second) as call,
    ):
        await call.patient.send(type="media_state", **{**MEDIA, "audio_only": True})
        state = await call.specialist.expect("peer_state")
        assert (state["peer_id"], state["audio_only"]) == (call.joined["participant_id"], True)
        await call.specialist.send(type="media_state", **{**MEDIA, "muted": True})
        assert (await call.patient.expect("peer_state"))["muted"] is True
        # A late joiner on the patient's process learns the specialist's state with the room.
        gp = await staff_cookie(second, demo.gp)
        query = f"as=staff&appointment={call.appointment.id}"
        async with ws_connect(second, query, gp) as g:
            await g.send(type="join")
            await g.expect("joined")
            peers = await peers_by_role(g, 2)
            assert peers["specialist"]["state"]["muted"] is True
            assert peers["patient"]["state"]["audio_only"] is True
            assert (await call.specialist.expect("peer_joined"))["peer"]["role"] == "gp"
            # The patient's process says "reconnecting" when its socket drops.
            await call.patient.ws.close()
            for staff in (call.specialist, g):
                away = await staff.expect("peer_state")
                assert (away["peer_id"], away["connection"]) == (
                    call.joined["participant_id"],
                    "reconnecting",
                )
