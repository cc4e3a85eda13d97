"""The typed protocol: discriminated on type, unknown fields rejected, aliases on the wire."""

from __future__ import annotations

import json
import typing

import pytest
from pydantic import ValidationError

from app.rooms.state import Actor
from app.scheduling.models import RoomState
from app.signaling import messages as m

MEDIA = ("muted", "camera_off", "audio_only", "screen_sharing")


def parse(data: object) -> m.ClientMessage:
    return m.CLIENT_MESSAGES.validate_json(json.dumps(data))


def test_messages_parse_each_client_type() -> None:
    pid = "p_abcdefgh1234"
    cases = [
        ({"type": "join"}, m.Join),
        ({"type": "join", "resume": "x" * 43}, m.Join),
        ({"type": "admit"}, m.Admit),
        ({"type": "offer", "to": pid, "sdp": "v=0"}, m.Offer),
        ({"type": "answer", "to": pid, "sdp": "v=0"}, m.Answer),
        ({"type": "candidate", "to": pid, "candidate": None}, m.Candidate),
        ({"type": "chat", "text": "Hallo"}, m.Chat),
        ({"type": "leave"}, m.Leave),
        (
            {
                "type": "media_state",
                "muted": True,
                "camera_off": False,
                "audio_only": False,
                "screen_sharing": False,
            },
            m.MediaState,
        ),
        ({"type": "send_back"}, m.SendBack),
        ({"type": "ping"}, m.Ping),
    ]
    for data, model in cases:
        assert type(parse(data)) is model


@pytest.mark.parametrize(
    "data",
    [
        {"type": "chat", "text": "hi", "from": "p_abcdefgh1234"},  # sender is never taken
        {"type": "shout", "text": "hi"},
        {"text": "hi"},
        {"type": "offer", "to": "42", "sdp": "v=0"},  # participant ids are opaque p_ ids
        {"type": "chat", "text": ""},
        {"type": "chat", "text": "x" * 2001},
        {"type": "candidate", "to": "p_abcdefgh1234", "candidate": {"candidate": "c", "x": 1}},
        {"type": "media_state", "muted": True},  # every field, every time
        {"type": "media_state", **dict.fromkeys(MEDIA, False), "muted": "yes"},
        {"type": "media_state", **dict.fromkeys(MEDIA, False), "muted": 1},
        {"type": "media_state", **dict.fromkeys(MEDIA, False), "connection": "connected"},
        {"type": "send_back", "to": "p_abcdefgh1234"},
        {"type": "ping", "id": 1},  # a bare ping: nothing to echo
    ],
)
def test_messages_reject_bad_client_messages(data: object) -> None:
    with pytest.raises(ValidationError):
        parse(data)


def test_messages_candidate_uses_browser_field_names() -> None:
    msg = parse(
        {
            "type": "candidate",
            "to": "p_abcdefgh1234",
            "candidate": {"candidate": "candidate:1", "sdpMid": "0", "sdpMLineIndex": 0},
        }
    )
    assert isinstance(msg, m.Candidate)
    assert msg.candidate is not None
    out = json.loads(m.encode(m.CandidateFrom(sender="p_abcdefgh1234", candidate=msg.candidate)))
    assert out["from"] == "p_abcdefgh1234"
    assert out["candidate"]["sdpMLineIndex"] == 0


def test_messages_server_messages_round_trip() -> None:
    msg = m.ChatFrom(sender="p_abcdefgh1234", text="Hallo", at="2026-03-02T09:00:00Z")
    again = m.SERVER_MESSAGES.validate_json(m.encode(msg))
    assert again == msg


def test_messages_pong_is_bare() -> None:
    assert json.loads(m.encode(m.Pong())) == {"type": "pong"}


def test_messages_ice_servers_omit_absent_credentials() -> None:
    stun = m.IceServer(urls=["stun:stun.example.org:3478"])
    turn = m.IceServer(urls=["turn:turn.example.org:3478"], username="1:42", credential="c2VjcmV0")
    joined = m.Joined(
        participant_id="p_abcdefgh1234",
        role="gp",
        resume_id="r" * 43,
        resume_seconds=30,
        room_state=RoomState.SCHEDULED,
        ice_servers=[stun, turn],
        ice_ttl=3600,
    )
    assert json.loads(m.encode(joined))["ice_servers"] == [
        {"urls": ["stun:stun.example.org:3478"]},
        {"urls": ["turn:turn.example.org:3478"], "username": "1:42", "credential": "c2VjcmV0"},
    ]


def test_messages_participant_roles_are_the_room_actors_but_the_server() -> None:
    assert set(m.PARTICIPANT_ROLES) == {a.value for a in Actor} - {Actor.SYSTEM.value}
    assert set(m.PARTICIPANT_ROLES.values()) == set(typing.get_args(m.Role))


def test_messages_peer_state_and_peer_left_as_documented() -> None:
    state = m.PeerState(
        peer_id="p_abcdefgh1234",
        muted=True,
        camera_off=False,
        audio_only=False,
        screen_sharing=False,
        connection="reconnecting",
    )
    assert json.loads(m.encode(state)) == {
        "type": "peer_state",
        "peer_id": "p_abcdefgh1234",
        "muted": True,
        "camera_off": False,
        "audio_only": False,
        "screen_sharing": False,
        "connection": "reconnecting",
    }
    left = json.loads(m.encode(m.PeerLeft(peer_id="p_abcdefgh1234", reason="sent_back")))
    assert left == {"type": "peer_left", "peer_id": "p_abcdefgh1234", "reason": "sent_back"}
    peer = json.loads(m.encode(m.Peer(id="p_abcdefgh1234", role="gp")))
    assert peer["state"] == {
        "muted": False,
        "camera_off": False,
        "audio_only": False,
        "screen_sharing": False,
        "connection": "connected",
    }
