"""TURN REST API credentials (coturn's use-auth-secret scheme)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from app.settings import Settings
from app.turn import ice_servers, turn_credentials

NOW = 1_700_000_000


def test_turn_credentials_username_is_expiry_and_appointment() -> None:
    username, _ = turn_credentials("north", 42, 3600, now=NOW)
    assert username == "1700003600:42"


def test_turn_credentials_match_an_independent_hmac_sha1() -> None:
    # Known answer computed with: printf '1700003600:42' | openssl dgst -sha1 -hmac north -binary
    # | base64 (coturn verifies the same construction).
    _, credential = turn_credentials("north", 42, 3600, now=NOW)
    assert credential == "WO3ZFttCQxBYtA2Ohz7jjGcQStA="


def test_turn_credentials_differ_per_appointment_and_secret() -> None:
    _, a = turn_credentials("north", 42, 3600, now=NOW)
    _, b = turn_credentials("north", 43, 3600, now=NOW)
    _, c = turn_credentials("south", 42, 3600, now=NOW)
    assert len({a, b, c}) == 3


def test_turn_credentials_are_base64_of_a_sha1_digest() -> None:
    username, credential = turn_credentials("s3cret", 7, 60, now=NOW)
    expected = hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()
    assert base64.b64decode(credential) == expected
    assert len(base64.b64decode(credential)) == 20


def test_turn_credentials_reject_a_non_positive_ttl() -> None:
    with pytest.raises(ValueError, match="ttl"):
        turn_credentials("north", 1, 0, now=NOW)


def test_ice_servers_without_turn_lists_only_stun(make_settings: Callable[..., Settings]) -> None:
    cfg = make_settings(stun_urls=["stun:turn.example.org:3478"])
    assert ice_servers(cfg, 5, now=NOW) == [{"urls": ["stun:turn.example.org:3478"]}]


def test_ice_servers_with_turn_carry_appointment_credentials(
    make_settings: Callable[..., Settings],
) -> None:
    cfg = make_settings(
        turn_urls=["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
        turn_secret="north",
        turn_ttl_seconds=3600,
    )
    [turn] = ice_servers(cfg, 42, now=NOW)
    assert turn == {
        "urls": ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
        "username": "1700003600:42",
        "credential": "WO3ZFttCQxBYtA2Ohz7jjGcQStA=",
    }


def test_ice_servers_empty_in_development(make_settings: Callable[..., Settings]) -> None:
    assert ice_servers(make_settings(), 1) == []


def test_settings_blank_secrets_count_as_unset(make_settings: Callable[..., Settings]) -> None:
    assert make_settings(metrics_token="  ").metrics_token is None
    with pytest.raises(ValidationError, match="KONSIL_TURN_SECRET is required"):
        make_settings(turn_urls=["turn:turn.example.org:3478"], turn_secret="")
