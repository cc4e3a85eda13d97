"""Messages between server processes: parsed strictly, applied purely to a room replica."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from app.errors import WS_FORBIDDEN, WS_ROOM_CLOSED, WS_UNAUTHENTICATED
from app.metrics import REGISTRY
from app.scheduling.models import RoomState
from app.signaling import messages as m
from app.signaling import wire
from app.signaling.envelope import received
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
