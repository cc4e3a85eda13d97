"""Pure room logic with a guest (interpreter, carer): waits until the specialist admits it and
the patient is in the call, lowest rank, sees the patient as "Patient" only, the mesh of four."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from app.errors import WS_REPLACED
from app.scheduling.models import GuestKind, RoomState
from app.signaling import messages as m
from app.signaling import wire
from app.signaling.session import Close, Member, Out, Room, Send, offers

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EV = "a" * 32


def member(pid: str, role: m.Role, name: str = "", **extra: object) -> Member:
    return Member(id=pid, role=role, name=name, session_key=pid, conn=f"c-{pid}", **extra)  # type: ignore[arg-type]


PATIENT = member("p_patient000", "patient")
SPECIALIST = member("p_special000", "specialist", "Prof. Dr. Maria Schulz", user_id=10)
GP = member("p_gpgpgpgp00", "gp", "Dr. Anna Lehmann", user_id=20)
GUEST = member("p_guestguest", "guest", "Ayşe Demir", kind=GuestKind.INTERPRETER)


def sent(outs: list[Out], to: str) -> list[object]:
    return [o.message for o in outs if isinstance(o, Send) and o.to == to]


def of_type(outs: list[Out], to: str, kind: type[object]) -> list[object]:
    return [message for message in sent(outs, to) if isinstance(message, kind)]


def full_room() -> tuple[Room, list[Out]]:
    """Patient, specialist, GP and guest joined; the patient waiting, the guest not admitted."""
    room = Room(appointment_id=1, state=RoomState.WAITING, waiting_since=AT, patient_name="Erika")
    outs: list[Out] = []
    for one in (SPECIALIST, GP, PATIENT, GUEST):
        outs += room.add(one)
    return room, outs


def test_guest_waits_and_staff_hear_it_is_waiting() -> None:
    room, outs = full_room()
    assert not room.in_call(GUEST)
    assert all(GUEST.id not in pair for pair in room.pairs)
    waiting = m.GuestStatus(state="waiting", name="Ayşe Demir", kind=GuestKind.INTERPRETER)
    assert waiting in sent(outs, SPECIALIST.id)
    assert waiting in sent(outs, GP.id)
    assert waiting in sent(outs, GUEST.id)
    assert of_type(outs, PATIENT.id, m.GuestStatus) == []


def test_guest_admitted_before_the_patient_joins_the_call_with_the_patient() -> None:
    room, _ = full_room()
    outs = room.set_guest(True)
    assert of_type(outs, GUEST.id, m.PeerJoined) == []  # the patient is still waiting
    admitted = m.GuestStatus(state="admitted", name="Ayşe Demir", kind=GuestKind.INTERPRETER)
    assert admitted in sent(outs, SPECIALIST.id)
    outs = room.set_state(RoomState.ADMITTED, None)
    joined = of_type(outs, GUEST.id, m.PeerJoined)
    assert {p.peer.role for p in joined} == {"patient", "specialist", "gp"}  # type: ignore[attr-defined]
    assert all(p.offer is False for p in joined)  # type: ignore[attr-defined]
    for other in (PATIENT, SPECIALIST, GP):
        (to_other,) = [p for p in of_type(outs, other.id, m.PeerJoined) if p.peer.id == GUEST.id]  # type: ignore[attr-defined]
        assert to_other.offer is True  # type: ignore[attr-defined]
        assert offers(other, GUEST)


def test_who_sees_which_name() -> None:
    room, _ = full_room()
    as_guest = room.peer(PATIENT, GUEST)
    assert (as_guest.name, as_guest.role) == ("", "patient")
    assert room.peer(PATIENT, SPECIALIST).name == "Erika"
    for viewer in (PATIENT, SPECIALIST, GP):
        seen = room.peer(GUEST, viewer)
        assert (seen.name, seen.kind, seen.detail) == ("Ayşe Demir", GuestKind.INTERPRETER, "")
    assert room.peer(SPECIALIST, GUEST).name == "Prof. Dr. Maria Schulz"
    assert room.peer(SPECIALIST, GUEST).kind is None


def test_no_message_to_the_guest_carries_the_patients_name() -> None:
    room, outs = full_room()
    outs += room.set_guest(True) + room.set_state(RoomState.ADMITTED, None)
    outs += room.set_state(RoomState.IN_CALL, None) + room.media(PATIENT.id, m.Media(muted=True))
    outs += room.set_state(RoomState.WAITING, AT) + room.set_state(RoomState.ADMITTED, None)
    to_guest = sent(outs, GUEST.id)
    assert len(to_guest) > 5
    for message in to_guest:
        assert "Erika" not in m.encode(message)  # type: ignore[arg-type]


def test_sent_back_takes_the_guest_out_and_admitting_again_brings_it_back() -> None:
    room, _ = full_room()
    room.set_guest(True)
    room.set_state(RoomState.ADMITTED, None)
    assert room.in_call(GUEST)
    outs = room.set_state(RoomState.WAITING, AT)
    assert not room.in_call(GUEST)
    assert m.PeerLeft(peer_id=GUEST.id, reason="sent_back") in sent(outs, SPECIALIST.id)
    assert of_type(outs, GUEST.id, m.RoomStateChanged)
    outs = room.set_state(RoomState.ADMITTED, None)
    assert len(of_type(outs, GUEST.id, m.PeerJoined)) == 3


def test_revoking_the_admission_takes_the_guest_out_of_the_call() -> None:
    room, _ = full_room()
    room.set_guest(True)
    room.set_state(RoomState.IN_CALL, None)
    outs = room.set_guest(False)
    assert m.PeerLeft(peer_id=GUEST.id, reason="left") in sent(outs, PATIENT.id)
    assert all(GUEST.id not in pair for pair in room.pairs)


def test_guest_leaving_tells_staff_it_is_absent() -> None:
    room, _ = full_room()
    outs = room.remove(GUEST.id)
    assert m.GuestStatus(state="absent") in sent(outs, SPECIALIST.id)
    assert m.GuestStatus(state="absent") in sent(outs, GP.id)


def test_the_mesh_holds_four_one_seat_per_role() -> None:
    room, _ = full_room()
    assert not room.full_for("gp", GP.session_key, GP.user_id)  # a reload replaces it
    assert not room.full_for("specialist", "tablet", SPECIALIST.user_id)  # another device
    assert room.full_for("specialist", "someone-else", 99)  # another specialist
    assert not room.full_for("patient", "someone-else", None)
    assert not room.full_for("guest", "someone-else", None)
    room.remove(GP.id)
    assert not room.full_for("gp", "someone-else", 20)


def test_the_patient_is_never_refused_and_a_second_device_takes_the_seat_over() -> None:
    room = Room(appointment_id=1, state=RoomState.WAITING, waiting_since=AT)
    tablet = replace(SPECIALIST, id="p_tablet0000", session_key="tablet", conn="c-tablet")
    for one in (SPECIALIST, GP, GUEST):
        room.add(one)
    assert not room.full_for("specialist", tablet.session_key, tablet.user_id)
    outs = room.add(tablet)
    assert Close(SPECIALIST.conn, WS_REPLACED, "replaced by a newer connection") in outs
    assert not room.full_for("patient", PATIENT.session_key, None)
    room.add(PATIENT)
    assert {mb.id for mb in room.members.values()} == {tablet.id, GP.id, GUEST.id, PATIENT.id}
    # The link opened on a phone: never refused; the earlier session ended and its connection
    # goes with ``revoke_patients``.
    phone = replace(PATIENT, id="p_patient111", session_key="phone", conn="c-phone")
    assert not room.full_for("patient", phone.session_key, None)
    room.add(phone)
    room.revoke_patients(keep=phone.session_key)
    assert len(room.members) == m.MAX_PARTICIPANTS


def test_an_answer_between_patient_and_guest_does_not_start_the_call() -> None:
    room, _ = full_room()
    room.set_guest(True)
    room.set_state(RoomState.ADMITTED, None)
    to_patient = m.Answer(type="answer", to=PATIENT.id, sdp="v=0\r\n")
    assert not room.starts_call(GUEST.id, to_patient)
    assert room.starts_call(SPECIALIST.id, to_patient)


def test_a_redelivered_guest_event_changes_nothing() -> None:
    room, _ = full_room()
    assert wire.apply(room, wire.Guest(ev=EV, admitted=True))
    room.set_guest(False)
    assert wire.apply(room, wire.Guest(ev=EV, admitted=True)) == []
    assert not room.guest_admitted


def test_a_guest_member_travels_between_processes_with_its_kind() -> None:
    raw = wire.Add(member=replace(GUEST, conn="c-x")).model_dump_json().encode()
    back = wire.parse(wire.ROOM, raw)
    assert isinstance(back, wire.Add)
    assert back.member.kind is GuestKind.INTERPRETER


def test_staff_back_from_a_dropped_connection_hear_the_guests_status_again() -> None:
    room, _ = full_room()
    room.away(GP.id, GP.conn)
    room.remove(GUEST.id)  # "absent" went to the GP's dead connection
    outs = room.resumed(replace(GP, conn="c-gp-new"))
    assert of_type(outs, GP.id, m.GuestStatus) == [m.GuestStatus(state="absent")]
    assert of_type(room.resumed(replace(PATIENT, conn="c-p-new")), PATIENT.id, m.GuestStatus) == []
