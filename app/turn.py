"""TURN credentials in coturn's shared-secret scheme (the "TURN REST API").

coturn is started with ``use-auth-secret`` and ``static-auth-secret=<KONSIL_TURN_SECRET>``. It
accepts a username ``"<unix expiry>:<anything>"`` whose password is
``base64(HMAC-SHA1(secret, username))`` until the expiry has passed; no database is shared. We put
the appointment id after the colon, so each credential names its appointment in coturn's log.
coturn checks only the HMAC and the expiry, so what bounds a leaked credential is its lifetime
(``turn_ttl_seconds``); Konsil hands credentials only to the participants of an open room.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from app.settings import Settings


def turn_credentials(
    secret: str, appointment_id: int, ttl: int, now: float | None = None
) -> tuple[str, str]:
    """``(username, credential)`` valid for ``ttl`` seconds from ``now`` (default: the clock)."""
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    expiry = int(now if now is not None else time.time()) + ttl
    username = f"{expiry}:{appointment_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    settings: Settings, appointment_id: int, now: float | None = None
) -> list[dict[str, Any]]:
    """The ``iceServers`` list for an ``RTCPeerConnection`` of this appointment.

    STUN URLs go out as they are; TURN URLs (when configured) carry credentials that expire after
    ``settings.turn_ttl_seconds``. An empty list means host candidates only (development).
    """
    servers: list[dict[str, Any]] = []
    if settings.stun_urls:
        servers.append({"urls": list(settings.stun_urls)})
    if settings.turn_urls and settings.turn_secret is not None:
        username, credential = turn_credentials(
            settings.turn_secret.get_secret_value(),
            appointment_id,
            settings.turn_ttl_seconds,
            now,
        )
        servers.append(
            {"urls": list(settings.turn_urls), "username": username, "credential": credential}
        )
    return servers
