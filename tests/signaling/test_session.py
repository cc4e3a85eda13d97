"""Pure room logic: introductions, who offers, relays stay inside pairs, resume, replacement."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.errors import (
    WS_FORBIDDEN,
    WS_REPLACED,
    WS_ROOM_CLOSED,
    WS_UNAUTHENTICATED,
    ProtocolError,
    ScreenShareNotAllowed,
)
from app.scheduling.models import RoomState
from app.signaling import messages as m
from app.signaling.session import Close, Member, Out, Room, Send, check_media

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SDP = "v=0\r\n"


def member(
    pid: str, role: m.Role, *, session: str | None = None, user: int | None = None
) -> Member:
    return Member(
        id=pid, role=role, name="", session_key=session or pid, conn=f"c-{pid}", user_id=user
    )


PATIENT = member("p_patient000", "patient")
SPECIALIST = member("p_special000", "specialist", user=10)
GP = member("p_gpgpgpgp00", "gp", user=20)


def sent(outs: list[Out], to: str) -> list[object]:
    return [o.message for o in outs if isinstance(o, Send) and o.to == to]


def admitted_room() -> Room:
    room = Room(appointment_id=1, state=RoomState.WAITING, waiting_since=AT)
    room.add(SPECIALIST)
    room.add(PATIENT)
    room.set_state(RoomState.ADMITTED, None)
    return room


def test_session_waiting_patient_is_not_introduced() -> None:
    room = Room(appointment_id=1, state=RoomState.WAITING, waiting_since=AT)
    outs = room.add(SPECIALIST) + room.add(PATIENT)
    assert outs == []
    assert room.pairs == set()


def test_session_admit_introduces_and_specialist_offers() -> None:
    room = Room(appointment_id=1, state=RoomState.WAITING, waiting_since=AT)
    room.add(SPECIALIST)
    room.add(PATIENT)
    outs = room.set_state(RoomState.ADMITTED, None)
    to_specialist = sent(outs, SPECIALIST.id)
    to_patient = sent(outs, PATIENT.id)
    assert m.PeerJoined(peer=room.peer(PATIENT, SPECIALIST), offer=True) in to_specialist
    assert m.PeerJoined(peer=room.peer(SPECIALIST, PATIENT), offer=False) in to_patient
    assert m.RoomStateChanged(state=RoomState.ADMITTED) in to_patient


def test_session_three_way_rank_decides_offers() -> None:
    room = admitted_room()
    outs = room.add(GP)
    assert m.PeerJoined(peer=room.peer(SPECIALIST, GP), offer=False) in sent(outs, GP.id)
    assert m.PeerJoined(peer=room.peer(PATIENT, GP), offer=True) in sent(outs, GP.id)
    assert m.PeerJoined(peer=room.peer(GP, SPECIALIST), offer=True) in sent(outs, SPECIALIST.id)


def test_session_staff_talk_before_admission() -> None:
    room = Room(appointment_id=1, state=RoomState.WAITING, waiting_since=AT)
    room.add(SPECIALIST)
    outs = room.add(GP)
    assert len(sent(outs, GP.id)) == 1


def test_session_waiting_patient_cannot_relay() -> None:
    room = Room(appointment_id=1, state=RoomState.WAITING, waiting_since=AT)
    room.add(SPECIALIST)
    room.add(PATIENT)
    with pytest.raises(ProtocolError) as err:
        room.check(PATIENT.id, m.Chat(type="chat", text="hallo"))
    assert err.value.code == "not_in_call"


def test_session_staff_cannot_reach_waiting_patient() -> None:
    room = Room(appointment_id=1, state=RoomState.WAITING, waiting_since=AT)
    room.add(SPECIALIST)
    room.add(PATIENT)
    offer = m.Offer(type="offer", to=PATIENT.id, sdp=SDP)
    with pytest.raises(ProtocolError) as err:
        room.check(SPECIALIST.id, offer)
    assert err.value.code == "not_in_call"
    assert room.relay(SPECIALIST.id, offer, AT) == []


def test_session_unknown_peer_is_refused() -> None:
    room = admitted_room()
    with pytest.raises(ProtocolError) as err:
        room.check(SPECIALIST.id, m.Offer(type="offer", to="p_elsewhere00", sdp=SDP))
    assert err.value.code == "unknown_peer"


def test_session_relay_names_the_real_sender() -> None:
    room = admitted_room()
    outs = room.relay(PATIENT.id, m.Answer(type="answer", to=SPECIALIST.id, sdp=SDP), AT)
    assert outs == [Send(SPECIALIST.id, m.AnswerFrom(sender=PATIENT.id, sdp=SDP))]


def test_session_relay_to_foreign_id_is_dropped() -> None:
    room = admitted_room()
    candidate = m.Candidate(type="candidate", to="p_otherroom0", candidate=None)
    assert room.relay(SPECIALIST.id, candidate, AT) == []


def test_session_chat_reaches_every_partner_but_not_the_sender() -> None:
    room = admitted_room()
    room.add(GP)
    outs = room.relay(PATIENT.id, m.Chat(type="chat", text="Guten Tag"), AT)
    assert {o.to for o in outs if isinstance(o, Send)} == {SPECIALIST.id, GP.id}


def test_session_answer_from_patient_starts_the_call() -> None:
    room = admitted_room()
    answer = m.Answer(type="answer", to=SPECIALIST.id, sdp=SDP)
    assert room.starts_call(PATIENT.id, answer)
    room.add(GP)
    assert not room.starts_call(GP.id, m.Answer(type="answer", to=SPECIALIST.id, sdp=SDP))


def test_session_leave_tells_partners() -> None:
    room = admitted_room()
    outs = room.remove(PATIENT.id)
    assert outs == [Send(SPECIALIST.id, m.PeerLeft(peer_id=PATIENT.id))]


def test_session_resume_asks_offerer_to_restart_ice() -> None:
    room = admitted_room()
    outs = room.resumed(replace(PATIENT, conn="c-new"))
    assert Close(PATIENT.conn, WS_REPLACED, "resumed on a newer connection") in outs
    assert sent(outs, SPECIALIST.id) == [m.Renegotiate(peer_id=PATIENT.id, reason="resumed")]
    assert room.members[PATIENT.id].conn == "c-new"


def test_session_resume_onto_a_replica_without_the_member_takes_it_quietly() -> None:
    room = Room(appointment_id=1, state=RoomState.ADMITTED)
    back = replace(PATIENT, conn="c-new")
    assert room.resumed(back) == []
    assert room.members == {PATIENT.id: back}


def test_session_present_with_partners_pairs_without_introducing() -> None:
    room = Room(appointment_id=1, state=RoomState.ADMITTED)
    room.resumed(replace(PATIENT, conn="c-new"))
    outs = room.add(SPECIALIST, [PATIENT.id])
    assert outs == []
    assert room.partners(PATIENT.id) == [SPECIALIST.id]


def test_session_present_with_partners_introduces_a_member_held_here_that_never_heard() -> None:
    """Two processes: the patient's applied "admitted" (and introduced the pair to its patient)
    before its ``present`` reached the specialist's, which had applied "admitted" with nobody
    to introduce. The specialist held here hears ``peer_joined`` now; the patient is not told
    again (its process told it, and the send to it goes nowhere from this replica anyway)."""
    room = Room(appointment_id=1, state=RoomState.WAITING, waiting_since=AT)
    room.add(SPECIALIST)
    assert sent(room.set_state(RoomState.ADMITTED, None), SPECIALIST.id) == [
        m.RoomStateChanged(state=RoomState.ADMITTED)
    ]
    outs = room.add(PATIENT, [SPECIALIST.id])
    assert outs == [
        Send(SPECIALIST.id, m.PeerJoined(peer=room.peer(PATIENT, SPECIALIST), offer=True))
    ]
    assert room.partners(SPECIALIST.id) == [PATIENT.id]


def test_session_present_asks_a_resumed_offerer_to_restart_ice() -> None:
    room = Room(appointment_id=1, state=RoomState.ADMITTED)
    room.resumed(replace(SPECIALIST, conn="c-new"))
    outs = room.add(PATIENT, [SPECIALIST.id])
    assert outs == [Send(SPECIALIST.id, m.Renegotiate(peer_id=PATIENT.id, reason="resumed"))]


def test_session_second_connection_of_same_session_replaces_first() -> None:
    room = admitted_room()
    again = member("p_patient111", "patient", session=PATIENT.session_key)
    outs = room.add(again)
    assert Close(PATIENT.conn, WS_REPLACED, "replaced by a newer connection") in outs
    assert m.PeerLeft(peer_id=PATIENT.id) in sent(outs, SPECIALIST.id)
    assert m.PeerJoined(peer=room.peer(again, SPECIALIST), offer=True) in sent(outs, SPECIALIST.id)


def test_session_room_end_closes_everyone_with_4410() -> None:
    room = admitted_room()
    outs = room.set_state(RoomState.ENDED, None)
    closes = {o.conn: o.code for o in outs if isinstance(o, Close)}
    assert closes == {PATIENT.conn: WS_ROOM_CLOSED, SPECIALIST.conn: WS_ROOM_CLOSED}


def test_session_revoke_closes_the_transferred_specialist() -> None:
    room = Room(appointment_id=1, state=RoomState.WAITING, waiting_since=AT)
    room.add(SPECIALIST)
    outs = room.revoke(10)
    assert Close(SPECIALIST.conn, WS_FORBIDDEN, "transferred") in outs
    assert SPECIALIST.id not in room.members


def test_session_revoke_patients_closes_only_the_patient() -> None:
    room = admitted_room()
    outs = room.revoke_patients()
    assert Close(PATIENT.conn, WS_UNAUTHENTICATED, "session ended") in outs
    assert Send(SPECIALIST.id, m.PeerLeft(peer_id=PATIENT.id)) in outs
    assert set(room.members) == {SPECIALIST.id}


def test_session_gap_renegotiates_every_pair_from_the_offerer() -> None:
    room = admitted_room()
    assert room.gap() == [Send(SPECIALIST.id, m.Renegotiate(peer_id=PATIENT.id, reason="gap"))]


def test_session_core_imports_no_web_framework() -> None:
    # The pure cores (room replica, wire messages, state machine) run without Starlette.
    code = (
        "import sys, app.signaling.session, app.signaling.wire, app.rooms.state; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn'}))"
    )
    root = Path(__file__).resolve().parents[2]
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert found.stdout.strip() == "[]"


# ---------------------------------------------------------------- who is who, media, send back

MUTED = m.Media(muted=True, camera_off=True)


def test_session_peer_shows_the_patients_name_to_staff_only() -> None:
    room = admitted_room()
    room.patient_name = "Erika Mustermann"
    assert room.peer(PATIENT, SPECIALIST).name == "Erika Mustermann"
    assert room.peer(PATIENT, GP).name == "Erika Mustermann"
    assert room.peer(PATIENT, replace(PATIENT, id="p_patient222")).name == ""


def test_session_peer_detail_follows_the_viewers_language() -> None:
    room = admitted_room()
    cardiologist = replace(SPECIALIST, name="Dr. S", detail="Kardiologie", detail_en="Cardiology")
    practice = replace(GP, detail="Praxis Lehmann")
    english = replace(PATIENT, lang="en")
    assert room.peer(cardiologist, PATIENT).detail == "Kardiologie"
    assert room.peer(cardiologist, english).detail == "Cardiology"
    assert room.peer(practice, english).detail == "Praxis Lehmann"  # one name for both
    assert room.peer(PATIENT, SPECIALIST).detail == ""


def test_session_media_reaches_the_partners_but_not_the_sender() -> None:
    room = admitted_room()
    room.add(GP)
    outs = room.media(PATIENT.id, MUTED)
    state = m.PeerState(
        peer_id=PATIENT.id,
        muted=True,
        camera_off=True,
        audio_only=False,
        screen_sharing=False,
        connection="connected",
    )
    assert sorted(outs, key=lambda o: getattr(o, "to", "")) == sorted(
        [Send(SPECIALIST.id, state), Send(GP.id, state)], key=lambda o: o.to
    )
    assert room.media(PATIENT.id, MUTED) == []  # unchanged: nothing to say


def test_session_media_of_a_waiting_patient_is_kept_for_peer_joined() -> None:
    room = Room(appointment_id=1, state=RoomState.WAITING, waiting_since=AT)
    room.add(SPECIALIST)
    room.add(PATIENT)
    assert room.media(PATIENT.id, MUTED) == []  # nobody to tell in the waiting room
    outs = room.set_state(RoomState.ADMITTED, None)
    (joined,) = [o for o in sent(outs, SPECIALIST.id) if isinstance(o, m.PeerJoined)]
    assert joined.peer.state == m.PeerStatus(muted=True, camera_off=True)


def test_session_late_joiner_sees_the_state_in_peer_joined() -> None:
    room = admitted_room()
    room.media(SPECIALIST.id, m.Media(screen_sharing=True))
    outs = room.add(GP)
    (joined,) = [
        o for o in sent(outs, GP.id) if isinstance(o, m.PeerJoined) and o.peer.id == SPECIALIST.id
    ]
    assert joined.peer.state.screen_sharing is True


def test_session_away_then_resumed_says_reconnecting_then_connected() -> None:
    room = admitted_room()
    outs = room.away(PATIENT.id, PATIENT.conn)
    assert [(o.to, o.message) for o in outs if isinstance(o, Send)] == [
        (SPECIALIST.id, room.members[PATIENT.id].peer_state())
    ]
    assert room.members[PATIENT.id].connection == "reconnecting"
    assert room.away(PATIENT.id, PATIENT.conn) == []  # said once
    back = room.resumed(replace(PATIENT, conn="c-new"))
    states = [o for o in sent(back, SPECIALIST.id) if isinstance(o, m.PeerState)]
    assert [s.connection for s in states] == ["connected"]


def test_session_away_of_an_old_connection_after_a_resume_is_ignored() -> None:
    # The resume reached this replica before the old process said the connection dropped.
    room = admitted_room()
    room.resumed(replace(PATIENT, conn="c-new"))
    assert room.away(PATIENT.id, PATIENT.conn) == []
    assert room.members[PATIENT.id].connection == "connected"


def test_session_resume_onto_an_open_connection_says_no_state() -> None:
    room = admitted_room()
    outs = room.resumed(replace(PATIENT, conn="c-new"))
    assert not [o for o in sent(outs, SPECIALIST.id) if isinstance(o, m.PeerState)]


def test_session_remove_carries_the_reason() -> None:
    room = admitted_room()
    assert room.remove(PATIENT.id, "lost") == [
        Send(SPECIALIST.id, m.PeerLeft(peer_id=PATIENT.id, reason="lost"))
    ]


def in_call_three_way() -> Room:
    room = admitted_room()
    room.add(GP)
    room.set_state(RoomState.IN_CALL, None)
    return room


def test_session_send_back_parts_the_patient_from_staff_only() -> None:
    room = in_call_three_way()
    outs = room.set_state(RoomState.WAITING, AT)
    waiting = m.RoomStateChanged(state=RoomState.WAITING, waiting_since=AT)
    assert sent(outs, SPECIALIST.id) == [
        m.PeerLeft(peer_id=PATIENT.id, reason="sent_back"),
        waiting,
    ]
    assert sent(outs, GP.id) == [m.PeerLeft(peer_id=PATIENT.id, reason="sent_back"), waiting]
    assert sent(outs, PATIENT.id) == [waiting]
    assert not [o for o in outs if isinstance(o, Close)]  # everybody stays connected
    assert room.partners(PATIENT.id) == []
    assert room.partners(SPECIALIST.id) == [GP.id]  # staff talk on


def test_session_sent_back_patient_can_no_longer_relay() -> None:
    room = in_call_three_way()
    room.set_state(RoomState.WAITING, AT)
    with pytest.raises(ProtocolError):
        room.check(PATIENT.id, m.Chat(type="chat", text="Hallo?"))
    offer = m.Offer(type="offer", to=PATIENT.id, sdp=SDP)
    assert room.relay(SPECIALIST.id, offer, AT) == []


def test_session_admit_after_send_back_introduces_again() -> None:
    room = in_call_three_way()
    room.set_state(RoomState.WAITING, AT)
    outs = room.set_state(RoomState.ADMITTED, None)
    assert m.PeerJoined(peer=room.peer(PATIENT, SPECIALIST), offer=True) in sent(
        outs, SPECIALIST.id
    )
    assert m.PeerJoined(peer=room.peer(SPECIALIST, PATIENT), offer=False) in sent(outs, PATIENT.id)
    assert m.PeerJoined(peer=room.peer(GP, PATIENT), offer=False) in sent(outs, PATIENT.id)


def test_session_end_tells_everybody_peer_left_ended_before_closing() -> None:
    room = in_call_three_way()
    outs = room.set_state(RoomState.ENDED, None)
    to_patient = sent(outs, PATIENT.id)
    assert m.PeerLeft(peer_id=SPECIALIST.id, reason="ended") in to_patient
    assert m.PeerLeft(peer_id=GP.id, reason="ended") in to_patient
    assert m.PeerLeft(peer_id=PATIENT.id, reason="ended") in sent(outs, GP.id)
    assert isinstance(outs[-1], Close)
    assert room.pairs == set()


def media_state(*, screen_sharing: bool) -> m.MediaState:
    return m.MediaState(
        type="media_state",
        muted=False,
        camera_off=False,
        audio_only=False,
        screen_sharing=screen_sharing,
    )


def test_session_patient_screen_sharing_is_refused_by_default() -> None:
    with pytest.raises(ScreenShareNotAllowed) as refused:
        check_media("patient", media_state(screen_sharing=True), patient_screen_share=False)
    assert refused.value.code == "screen_share_not_allowed"
    # Stopping (or never sharing) is always fine.
    check_media("patient", media_state(screen_sharing=False), patient_screen_share=False)


@pytest.mark.parametrize("role", ["specialist", "gp"])
def test_session_staff_may_share_the_screen(role: m.Role) -> None:
    check_media(role, media_state(screen_sharing=True), patient_screen_share=False)


def test_session_patient_screen_sharing_when_the_operator_allows_it() -> None:
    check_media("patient", media_state(screen_sharing=True), patient_screen_share=True)


@pytest.mark.parametrize("allowed", [False, True])
def test_session_a_guest_never_shares_the_screen(allowed: bool) -> None:
    with pytest.raises(ScreenShareNotAllowed):
        check_media("guest", media_state(screen_sharing=True), patient_screen_share=allowed)
    check_media("guest", media_state(screen_sharing=False), patient_screen_share=allowed)
