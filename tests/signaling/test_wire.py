"""Messages between server processes: parsed strictly, applied purely to a room replica."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from app.broker.memory import MemoryBroker
from app.errors import WS_FORBIDDEN, WS_ROOM_CLOSED, WS_UNAUTHENTICATED
from app.metrics import REGISTRY
from app.scheduling.models import GuestKind, RoomState
from app.signaling import messages as m
from app.signaling import replicas as replicas_module
from app.signaling import resume, wire
from app.signaling.envelope import received
from app.signaling.replicas import Replicas
from app.signaling.session import Close, Member, Room, Send

EV = "0" * 32


def member(
    pid: str, role: str = "specialist", *, key: str = "", user_id: int | None = None
) -> Member:
    return Member(
        id=pid,
        role=role,  # type: ignore[arg-type]
        name="",
        session_key=key or f"s_{pid}",
        conn=f"c_{pid}",
        user_id=user_id,
    )


def admitted_room() -> Room:
    room = Room(appointment_id=1, state=RoomState.ADMITTED)
    wire.apply(room, wire.Add(member=member("p_specialist1", user_id=3)))
    wire.apply(room, wire.Add(member=member("p_patient0001", "patient", key="pat")))
    return room


def test_wire_round_trip_keeps_the_type_and_the_relayed_client_message() -> None:
    sent = wire.Relay(
        o="o_1",
        s=4,
        sender="p_specialist1",
        msg=m.Chat(type="chat", text="Guten Tag"),
        at=datetime(2026, 12, 4, 12, tzinfo=UTC),
    )
    back = wire.parse(wire.ROOM, sent.model_dump_json().encode())
    assert back == sent
    assert b'"from":"p_specialist1"' in sent.model_dump_json().encode()


def test_wire_parse_drops_malformed_and_unknown_messages() -> None:
    for raw in (
        b"not json",
        b"[]",
        b'{"o": "o_1", "s": 1, "e": "explode"}',
        b'{"o": "o_1", "s": 1, "e": "leave"}',  # no pid
        b'{"o": "o_1", "s": 1, "e": "leave", "pid": "p_x", "extra": 1}',
        b'{"o": "o_1", "s": 1, "e": "state", "ev": "x", "state": "waiting"}',  # bad event id
        b"\xff\xfe",
    ):
        assert wire.parse(wire.ROOM, raw) is None


def test_wire_apply_add_introduces_members_in_call() -> None:
    room = Room(appointment_id=1, state=RoomState.ADMITTED)
    wire.apply(room, wire.Add(member=member("p_specialist1")))
    outs = wire.apply(room, wire.Add(member=member("p_patient0001", "patient")))
    assert {type(o.message).__name__ for o in outs if isinstance(o, Send)} == {"PeerJoined"}
    assert len(outs) == 2


def test_wire_apply_state_is_not_sent_again_to_members_who_heard_it() -> None:
    room = admitted_room()
    first = wire.apply(room, wire.State(ev=EV, state=RoomState.IN_CALL))
    assert [o.to for o in first if isinstance(o, Send)] == ["p_specialist1", "p_patient0001"]
    assert wire.apply(room, wire.State(ev="9" * 32, state=RoomState.IN_CALL)) == []


def test_wire_apply_ignores_a_redelivered_event_after_a_newer_one() -> None:
    room = admitted_room()
    admitted_again = wire.State(ev="1" * 32, state=RoomState.ADMITTED)
    in_call = wire.State(ev="2" * 32, state=RoomState.IN_CALL)
    wire.apply(room, admitted_again)
    wire.apply(room, in_call)
    assert wire.apply(room, admitted_again) == []
    assert room.state is RoomState.IN_CALL
    revoke = wire.RevokePatients(ev="3" * 32, keep="pat")
    wire.apply(room, revoke)
    # The patient redeemed the link again (new session "pat2"); the old event comes back.
    wire.apply(room, wire.Add(member=member("p_patient0002", "patient", key="pat2")))
    assert wire.apply(room, revoke) == []
    assert "p_patient0002" in room.members


def test_wire_apply_closed_state_closes_every_connection() -> None:
    room = admitted_room()
    outs = wire.apply(room, wire.State(ev=EV, state=RoomState.ENDED))
    closes = [o for o in outs if isinstance(o, Close)]
    assert {c.conn for c in closes} == {"c_p_specialist1", "c_p_patient0001"}
    assert {c.code for c in closes} == {WS_ROOM_CLOSED}


def test_wire_apply_revoke_closes_the_transferred_specialist_only() -> None:
    room = admitted_room()
    outs = wire.apply(room, wire.Revoke(ev=EV, user_id=3))
    assert Close("c_p_specialist1", WS_FORBIDDEN, "transferred") in outs
    assert set(room.members) == {"p_patient0001"}


def test_wire_apply_revoke_patients_keeps_the_named_session() -> None:
    room = admitted_room()
    assert wire.apply(room, wire.RevokePatients(ev=EV, keep="pat")) == []
    outs = wire.apply(room, wire.RevokePatients(ev="9" * 32))
    assert Close("c_p_patient0001", WS_UNAUTHENTICATED, "session ended") in outs
    assert set(room.members) == {"p_specialist1"}


def test_wire_apply_leave_tells_the_peers() -> None:
    room = admitted_room()
    outs = wire.apply(room, wire.Leave(pid="p_patient0001"))
    assert outs == [Send("p_specialist1", m.PeerLeft(peer_id="p_patient0001"))]


def test_wire_apply_relay_reaches_only_partners() -> None:
    room = admitted_room()
    at = datetime(2026, 12, 4, 12, tzinfo=UTC)
    outs = wire.apply(
        room, wire.Relay(sender="p_specialist1", msg=m.Chat(type="chat", text="Hallo"), at=at)
    )
    assert outs == [Send("p_patient0001", m.ChatFrom(sender="p_specialist1", text="Hallo", at=at))]


def test_wire_member_keeps_its_media_and_connection_between_processes() -> None:
    held = replace(
        member("p_patient0001", "patient", key="pat"),
        media=m.Media(muted=True, screen_sharing=True),
        connection="reconnecting",
        detail="Praxis",
        detail_en="",
        lang="en",
    )
    sent = wire.Present(o="o_1", s=2, member=held, partners=["p_specialist1"])
    back = wire.parse(wire.ROOM, sent.model_dump_json().encode())
    assert isinstance(back, wire.Present)
    assert back.member == held


def test_wire_apply_media_and_away_reach_the_partners() -> None:
    room = admitted_room()
    outs = wire.apply(room, wire.MediaChanged(pid="p_patient0001", media=m.Media(muted=True)))
    (state,) = [o.message for o in outs if isinstance(o, Send) and o.to == "p_specialist1"]
    assert isinstance(state, m.PeerState)
    assert (state.muted, state.connection) == (True, "connected")
    outs = wire.apply(room, wire.Away(pid="p_patient0001", conn="c_p_patient0001"))
    (state,) = [o.message for o in outs if isinstance(o, Send)]
    assert isinstance(state, m.PeerState)
    assert (state.muted, state.connection) == (True, "reconnecting")


def test_wire_parse_drops_malformed_media() -> None:
    for raw in (
        b'{"e": "media", "pid": "p_x", "media": {"muted": "yes"}}',
        b'{"e": "media", "pid": "p_x", "media": {"loud": true}}',
        b'{"e": "away", "pid": "p_x"}',  # which connection dropped
        b'{"e": "leave", "pid": "p_x", "reason": "sent_back"}',  # a room state, not a leave
    ):
        assert wire.parse(wire.ROOM, raw) is None


def test_wire_apply_leave_after_the_resume_window_says_lost() -> None:
    room = admitted_room()
    outs = wire.apply(room, wire.Leave(pid="p_patient0001", reason="lost"))
    assert outs == [Send("p_specialist1", m.PeerLeft(peer_id="p_patient0001", reason="lost"))]


async def test_a_subscription_yields_valid_messages_and_counts_the_rest() -> None:
    def dropped() -> float:
        value = REGISTRY.get_sample_value(
            "konsil_broker_messages_dropped_total", {"channel": "queue"}
        )
        return value or 0.0

    async def raw() -> AsyncIterator[bytes]:
        for item in (
            b"not json",
            wire.QueueChanged(o="x", s=1, ev="a" * 32).model_dump_json().encode(),
            b'{"e":"?"}',
        ):
            yield item

    before = dropped()
    got = [message async for message in received(raw(), wire.QUEUE, "queue")]
    assert len(got) == 1
    assert dropped() - before == 2


def test_resume_record_keeps_the_member_and_reads_an_older_one() -> None:
    held = replace(member("p_patient0001", "patient", key="pat"), media=m.Media(muted=True))
    assert resume.unpack(resume.pack(7, held), 7, "pat") == held
    assert resume.unpack(resume.pack(7, held), 8, "pat") is None  # another room
    older = json.dumps(
        {
            "appointment_id": 7,
            "member": {
                "id": "p_patient0001",
                "role": "patient",
                "name": "",
                "session_key": "pat",
                "conn": "c1",
                "user_id": None,
            },
        }
    ).encode()
    back = resume.unpack(older, 7, "pat")
    assert back is not None
    assert (back.media, back.connection) == (m.Media(), "connected")
    broken = json.dumps({"appointment_id": 7, "member": {"id": "p_x"}}).encode()
    assert resume.unpack(broken, 7, "pat") is None


# ---------------------------------------------------------------- a process's own relays


def own_relays() -> list[wire.Relay]:
    """Relays as ``Hub.relay`` makes them from validated client messages."""
    to = "p_patient0001"
    ice = {
        "candidate": "candidate:1 1 udp 1 192.0.2.1 5 typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "u",
    }
    sent = [
        {"type": "candidate", "to": to, "candidate": ice},
        {"type": "candidate", "to": to, "candidate": None},
        {"type": "offer", "to": to, "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"},
        {"type": "chat", "text": 'Grüße \u2603 "zitiert" </script>'},
    ]
    return [
        wire.Relay(
            sender="p_specialist1",
            msg=m.CLIENT_MESSAGES.validate_json(json.dumps(message)),
            at=datetime.now(UTC),
        )
        for message in sent
    ]


def own_members() -> list[wire.Add | wire.Resumed]:
    """The members this process announces (a join, a resume), with every field set."""
    plain = Member(id="p_patient0001", role="patient", name="", session_key="k", conn="c_1")
    full = Member(
        id="p_guest0001",
        role="guest",
        name='Dolmetscherin "Ana" \u2603',
        session_key="k2",
        conn="c_2",
        user_id=None,
        detail="Innere Medizin",
        detail_en="Internal medicine",
        lang="ar",
        media=m.Media(muted=True, camera_off=True, screen_sharing=True),
        connection="reconnecting",
        kind=GuestKind.INTERPRETER,
        origin="o_abcdefghijkl",
        record="konsil:resume:1:abc",
    )
    staff = replace(plain, id="p_specialist1", role="specialist", user_id=7, name="Dr. A")
    return [
        wire.Add(member=plain),
        wire.Add(member=full, partners=["p_specialist1"]),
        wire.Resumed(member=staff),
        wire.Resumed(member=full),
    ]


async def test_what_the_process_gets_back_byte_for_byte_is_the_model_parsing_gives() -> None:
    """The room listener takes its own relays and members back without parsing them: only
    sound if parsing the very bytes gives an equal model, for every kind of relay and member."""
    broker = MemoryBroker()
    reps = Replicas(broker=broker, sessions=None, tasks=None)  # type: ignore[arg-type]
    mine: list[wire.Relay | wire.Add | wire.Resumed] = [*own_relays(), *own_members()]
    async with broker.subscribe("konsil:room:1") as events:
        for message in mine:
            await reps.publish("konsil:room:1", message)
        await reps.publish("konsil:room:1", wire.Leave(pid="p_patient0001"))
        raws = [await anext(events) for _ in range(len(mine) + 1)]
    for raw, message in zip(raws, mine, strict=False):
        kept = reps._own.pop(raw, None)
        assert kept is not None
        model, seq = kept
        # Kept as published (unstamped) with its number: stamped, it is what parsing gives.
        assert model is message
        stamped = model.model_copy(update={"o": reps.origin, "s": seq})
        assert stamped == wire.parse(wire.ROOM, raw)
        assert stamped.model_dump_json().encode() == raw
        assert raw not in reps._own  # taken once
    assert raws[-1] not in reps._own  # only relays and members are kept


def test_stamped_json_is_the_stamped_copy_dumped() -> None:
    at = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    member = Member(id="p_patient0001", role="patient", name="", session_key="k", conn="c")
    messages: list[wire.Wire] = [
        *own_relays(),
        wire.Leave(pid="p_patient0001", reason="lost"),
        wire.Add(member=member, partners=["p_specialist1"]),
        wire.State(ev="a" * 32, state=RoomState.WAITING, waiting_since=at),
        wire.QueueChanged(ev="b" * 32),
        wire.Leave(o="o_before", s=3, pid="p_patient0001"),  # stamped already
    ]
    for message in messages:
        for origin, seq in (("o_abcdefghijkl", 1), ("o_-_x", 1_000_000)):
            copy = message.model_copy(update={"o": origin, "s": seq})
            assert wire.stamped_json(message, origin, seq) == copy.model_dump_json().encode()


async def test_own_relays_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Relays that never come back (a released room, a lost broker message) do not pile up."""
    monkeypatch.setattr(replicas_module, "OWN_KEPT", 3)
    reps = Replicas(broker=MemoryBroker(), sessions=None, tasks=None)  # type: ignore[arg-type]
    for _ in range(10):
        await reps.publish("konsil:room:1", own_relays()[0])
    assert len(reps._own) == 3


async def test_received_takes_a_known_message_as_it_is_and_parses_the_rest() -> None:
    known = wire.QueueChanged(o="me", s=1, ev="a" * 32)
    mine = known.model_dump_json().encode()
    theirs = wire.QueueChanged(o="other", s=1, ev="b" * 32).model_dump_json().encode()

    async def raw() -> AsyncIterator[bytes]:
        for item in (mine, theirs, b"not json"):
            yield item

    table = {mine: known}
    got = [message async for message in received(raw(), wire.QUEUE, "queue", table.get)]
    assert got[0] is known
    assert got[1] == wire.QueueChanged(o="other", s=1, ev="b" * 32)
    assert len(got) == 2
