"""The signalling websocket ``/ws``: only I/O. Rules live in the hub and in ``session.Room``.

Origin, session cookie and room membership are checked before ``accept()``. A wrong Origin is
refused at the HTTP level (403); any other refusal is accepted only to deliver its precise close
code (see docs/protocol.md), and no message is read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from functools import cache, partial
from typing import Any, Literal

import anyio
from prometheus_client import Counter
from pydantic import Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.accounts import service as accounts
from app.accounts.models import Role, SessionKind
from app.accounts.service import Principal
from app.accounts.web import check_origin, principal
from app.api import validate
from app.broker import UNAVAILABLE
from app.db import unit_of_work, unreachable, utcnow
from app.errors import (
    WS_FORBIDDEN,
    WS_INTERNAL_ERROR,
    WS_MESSAGE_TOO_BIG,
    WS_NORMAL,
    WS_POLICY_VIOLATION,
    WS_RATE_LIMITED,
    WS_SLOW_CONSUMER,
    WS_TRY_AGAIN_LATER,
    WS_UNAUTHENTICATED,
    AlreadyJoined,
    Forbidden,
    JoinFirst,
    KonsilError,
    NotAuthenticated,
    NotInRoom,
    NotYourRoom,
    RoomClosed,
    RoomFull,
)
from app.logging import get_logger
from app.metrics import WS_CONNECTIONS, WS_ERRORS, WS_MESSAGES
from app.pages.i18n import language
from app.resources import db, settings
from app.rooms import service as rooms
from app.rooms.state import IN_CONSULTATION, Action, Actor, is_closed
from app.schemas import Schema
from app.signaling import messages as m
from app.signaling.connection import Connection, TokenBucket
from app.signaling.ended import REASON as ENDED
from app.signaling.hub import Hub, hub
from app.signaling.seats import Seat
from app.signaling.session import check_media

# Made once (see ``session.TO_ONE_PEER``): ``_dispatch`` checks this for every message.
ROOM_ACTIONS = (m.Admit, m.SendBack)
CLOSE_GRACE_SECONDS = 2.0
ACTIVITY_EVERY_SECONDS = 60.0

log = get_logger("konsil.signaling")


class WsQuery(Schema):
    as_: Literal["patient", "staff", "guest"] = Field(alias="as")
    appointment: int | None = Field(default=None, gt=0, lt=2**31)


@dataclass(slots=True)
class Target:
    """What an authorised connection is for: a room (with the caller's role) or a dashboard.
    ``lang``: the language of the caller's page (which details of staff a room shows it)."""

    who: Principal
    appointment_id: int | None
    actor: Actor | None
    lang: str = "de"

    @property
    def role(self) -> str:
        return self.actor.value if self.actor else "dashboard"


async def signaling(websocket: WebSocket) -> None:
    target = await _checked(websocket)
    if target is None:
        return
    ended = hub(websocket).ended
    session_id = target.who.session_id
    # Counted before the first await after the check, so parallel handshakes cannot slip past.
    if not ended.admit(session_id, settings(websocket).ws_max_per_session):
        WS_ERRORS.labels(code=str(WS_RATE_LIMITED)).inc()
        await websocket.accept()
        await websocket.close(WS_RATE_LIMITED, "too many connections")
        return
    try:
        await websocket.accept()
        WS_CONNECTIONS.labels(role=target.role).inc()
        try:
            await serve(websocket, target)
        finally:
            WS_CONNECTIONS.labels(role=target.role).dec()
    finally:
        ended.leave(session_id)


async def _checked(websocket: WebSocket) -> Target | None:
    """What the connection is for, once Origin, session and room are checked; None once a
    refusal was delivered.

    The checks read the headers, cookies and query string through a view of their own, which
    goes with what it parsed when this returns: the ``WebSocket`` would keep its parses for as
    long as the socket is open (docs/performance.md, memory)."""
    handshake = HTTPConnection(websocket.scope)
    try:
        check_origin(handshake)
    except Forbidden:
        WS_ERRORS.labels(code="http_403").inc()
        await websocket.close(WS_FORBIDDEN)  # before accept: the handshake gets HTTP 403
        return None
    try:
        return await authorize(handshake)
    except KonsilError as exc:
        WS_ERRORS.labels(code=str(exc.ws_close)).inc()
        await websocket.accept()
        await websocket.close(exc.ws_close, exc.code)
        return None
    except Exception as exc:
        if not unreachable(exc):
            raise
        # The database (sessions, rooms) cannot be reached for a moment: try again shortly.
        log.warning("signaling.database_unreachable", error=type(exc).__name__)
        WS_ERRORS.labels(code=str(WS_TRY_AGAIN_LATER)).inc()
        await websocket.accept()
        await websocket.close(WS_TRY_AGAIN_LATER, "unavailable")
        return None


async def authorize(handshake: HTTPConnection) -> Target:
    """Who is connecting and to which room; raises the domain error that names the close code."""
    query = validate(WsQuery, dict(handshake.query_params))
    if query.as_ in ("patient", "guest"):
        # A guest's session opens its own appointment's call and nothing else.
        kind = SessionKind.PATIENT if query.as_ == "patient" else SessionKind.GUEST
        who = await principal(handshake, kind)
        if who is None:
            raise NotAuthenticated()
        if query.appointment is None or who.appointment_id != query.appointment:
            raise NotYourRoom()
    else:
        who = await principal(handshake, SessionKind.STAFF)
        if who is None:
            raise NotAuthenticated()
        if query.appointment is None:
            # Specialists: their queue; GPs: the presence counts per specialty.
            if who.role not in (Role.SPECIALIST, Role.GP):
                raise Forbidden(
                    "Die Live-Ansicht gibt es nur für Fachärztinnen, Fachärzte, Hausärztinnen "
                    "und Hausärzte."
                )
            return Target(who=who, appointment_id=None, actor=None)
    async with db(handshake)() as session:
        appointment = await rooms.load(session, query.appointment)
    actor = rooms.actor_for(appointment, who)
    if is_closed(appointment.room_state):
        raise RoomClosed()
    lang = language(handshake)
    return Target(who=who, appointment_id=query.appointment, actor=actor, lang=lang)


@dataclass(slots=True)
class Link:
    """One connection's state while it is served."""

    websocket: WebSocket
    conn: Connection
    target: Target
    hub: Hub
    seat: Seat | None = None
    joining: bool = False
    left: bool = False
    active_at: float = 0.0  # monotonic time of the last activity written to the session
    staff: bool = False  # a staff session's (whose activity is written): ``target.who.is_staff``


async def serve(websocket: WebSocket, target: Target) -> None:
    cfg = settings(websocket)
    link = Link(
        websocket, Connection(limit=cfg.ws_send_queue, role=target.role), target, hub(websocket)
    )
    link.staff = target.who.is_staff
    dashboard = target.actor is None
    specialist = target.who.user_id if dashboard and target.who.role is Role.SPECIALIST else None
    gp_dashboard = dashboard and target.who.role is Role.GP
    link.hub.ended.track(link.conn, session_id=target.who.session_id, user_id=target.who.user_id)
    try:
        if specialist is not None:
            await link.hub.watch_queue(link.conn, specialist)
        if gp_dashboard:
            await link.hub.presence.watch(link.conn)
        try:
            await _run(link, cfg.ws_join_timeout_seconds)
        except Exception as exc:  # a fault of this server's: the client is told, and resumes
            log.error("signaling.connection_failed", role=target.role, exc_info=exc)
            WS_ERRORS.labels(code=str(WS_INTERNAL_ERROR)).inc()
            if link.conn.close_code is None:
                link.conn.close(WS_INTERNAL_ERROR, "internal error")
        if link.conn.close_code is not None:
            grace = CLOSE_GRACE_SECONDS
            if link.conn.close_code == WS_SLOW_CONSUMER:
                # The socket's buffers are full: the close frame can only follow what is in
                # them, once the client reads again. The room need not wait for that: the seat
                # is given up first, and the frame waits as long as a resume could come.
                with anyio.CancelScope(shield=True):
                    await _give_up_seat(link)
                grace = max(grace, cfg.ws_resume_seconds)
            with (
                anyio.move_on_after(grace),
                suppress(OSError, RuntimeError, WebSocketDisconnect),
            ):
                await websocket.close(link.conn.close_code, link.conn.close_reason)
    finally:
        link.hub.ended.untrack(link.conn)
        with anyio.CancelScope(shield=True):
            await _give_up_seat(link)
            if specialist is not None:
                await link.hub.unwatch_queue(link.conn, specialist)
            if gp_dashboard:
                await link.hub.presence.unwatch(link.conn)


async def _run(link: Link, join_timeout: float) -> None:
    """Reads in this task and writes in one task of its own until either ends, or until a
    requested close has had ``CLOSE_GRACE_SECONDS`` to be written.

    Not an anyio task group: each waiting patient holds this for long, and a task group with
    its tasks' handles, scopes and events takes several KiB more per connection than one
    cancel scope and one plain task (docs/performance.md, memory). The writer is still owned
    here: cancelled and awaited before this returns, and its failure raised here; and the
    failure of either task ends the connection at once, as in a task group."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    failures: list[BaseException | None] = []
    join_deadline: asyncio.TimerHandle | None = None
    with anyio.CancelScope() as scope:

        def closing() -> None:
            # A writer stuck on a full socket buffer must not delay the close for long.
            scope.deadline = min(scope.deadline, anyio.current_time() + CLOSE_GRACE_SECONDS)

        try:
            link.conn.on_close = closing
            if link.conn.close_code is not None:
                closing()
            tasks.append(loop.create_task(_writer(link, scope)))
            if link.target.actor is not None:
                # Timers, not tasks: every waiting patient holds this connection for long.
                join_deadline = loop.call_later(join_timeout, _join_deadline, link)
                if link.target.who.is_staff:
                    tasks.append(loop.create_task(_in_call(link)))
            for task in tasks:  # one failing ends the connection, as in a task group
                task.add_done_callback(partial(_cancel_on_failure, scope))
            # The reader is this task itself. When it ends with the client still there (a
            # close was requested), the writer has the rest of the grace to write what is queued.
            await _reader(link, scope)
            await asyncio.wait(tasks[:1])
        finally:
            link.conn.on_close = None
            if join_deadline is not None:
                join_deadline.cancel()
            for task in tasks:
                task.cancel()
            # They end before this does, also when this was cancelled or failed (shielded:
            # a cancelled task takes a loop iteration or two), as in a task group.
            if tasks:
                with anyio.CancelScope(shield=True):
                    await asyncio.wait(tasks)
            failures = [t.exception() for t in tasks if not t.cancelled()]
    # A failure of theirs is raised here (once this one did not fail itself).
    for failure in failures:
        if failure is not None:
            raise failure


def _cancel_on_failure(scope: anyio.CancelScope, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        scope.cancel()


async def _give_up_seat(link: Link) -> None:
    """The connection ended (or will): its seat is held for a resume, or given up (once)."""
    seat, link.seat = link.seat, None
    if seat is not None:
        await link.hub.seats.disconnect(link.conn, seat, left=link.left)


async def _writer(link: Link, scope: anyio.CancelScope) -> None:
    with suppress(OSError, RuntimeError, WebSocketDisconnect):
        while (frame := await link.conn.next()) is not None:
            await link.websocket.send_text(frame)
    scope.cancel()


def _join_deadline(link: Link) -> None:
    # A room connection that never joins would hold a socket and its tasks until the client
    # goes away; dashboards need no join and are exempt.
    if link.seat is None and not link.joining:
        link.conn.close(WS_POLICY_VIOLATION, "join timeout")


async def _in_call(link: Link) -> None:
    # Being in a consultation is activity for the staff session's idle timeout, even when
    # nobody clicks for half an hour; sitting in a room nobody was admitted to is not.
    while True:
        await anyio.sleep(ACTIVITY_EVERY_SECONDS)
        if _in_consultation(link):
            await _activity(link)


def _in_consultation(link: Link) -> bool:
    """Whether this connection's room has admitted the patient or is in the call."""
    if link.seat is None:
        return False
    local = link.hub.replicas.rooms.get(link.seat.appointment_id)
    return local is not None and local.room.state in IN_CONSULTATION


def _activity_due(link: Link) -> bool:
    """Whether ``_activity`` would write now (a staff session, a minute after the last)."""
    return link.staff and time.monotonic() - link.active_at >= ACTIVITY_EVERY_SECONDS


async def _activity(link: Link) -> bool:
    """Counts as activity of a staff session (idle timeout), written at most once a minute.

    A session that has ended or timed out meanwhile is not revived: the connection is closed
    as that of an ended session (4401) and False returned."""
    now = time.monotonic()
    if not link.target.who.is_staff or now - link.active_at < ACTIVITY_EVERY_SECONDS:
        return True
    link.active_at = now
    idle = timedelta(minutes=settings(link.websocket).session_idle_minutes)
    live = True
    # Signalling must not fail with the database: a missed write only shortens the idle time.
    with suppress(SQLAlchemyError, OSError):
        async with unit_of_work(db(link.websocket)) as session:
            live = await accounts.touch(
                session, session_id=link.target.who.session_id, now=utcnow(), idle=idle
            )
    if not live:
        link.conn.close(WS_UNAUTHENTICATED, ENDED)
    return live


async def _reader(link: Link, scope: anyio.CancelScope) -> None:
    cfg = settings(link.websocket)
    bucket = TokenBucket(rate=cfg.ws_rate_per_second, burst=cfg.ws_rate_burst, now=time.monotonic())
    with suppress(OSError, RuntimeError, WebSocketDisconnect):
        while link.conn.close_code is None:
            frame = await link.websocket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            data = frame.get("text") or frame.get("bytes") or ""
            size = len(data)
            if isinstance(data, str) and size * 4 > cfg.ws_max_frame_bytes:
                # UTF-8 takes at most 4 bytes a character: only a text this long can be over.
                size = len(data.encode())
            if size > cfg.ws_max_frame_bytes:
                link.conn.close(WS_MESSAGE_TOO_BIG, "frame too large")
            elif not bucket.take(time.monotonic()):
                link.conn.close(WS_RATE_LIMITED, "rate limited")
            else:
                await _handle(link, data)
    if link.conn.close_code is None:
        scope.cancel()  # the client went away: stop writing


async def _handle(link: Link, data: str | bytes) -> None:
    try:
        message = m.CLIENT_MESSAGES.validate_json(data)
    except ValidationError:
        _error(link, "invalid_message", "Die Nachricht ist ungültig.", None)
        return
    _counter(message.type).inc()
    if isinstance(message, m.Ping):
        # The client's liveness check: answered at once through the outbox like anything
        # else. Not the user's activity (a staff session idles out as before), nor a join.
        link.conn.send(m.Pong())
        return
    try:
        # (Checked here first: the write is due at most once a minute, the check per message.)
        if _activity_due(link) and not await _activity(link):
            return  # the session is over: nothing more from this connection
        await _dispatch(link, message)
    except KonsilError as exc:  # a refusal (ProtocolError and the domain's): the socket stays
        _error(link, exc.code, exc.message, message.type)
    except Exception as exc:
        if not (isinstance(exc, UNAVAILABLE) or unreachable(exc)):
            raise
        # The broker (Redis) or the database is down: the message reached nobody. The socket
        # stays, so a running call keeps its seat (its media is peer to peer); the client is
        # told. A join cannot be seated without them: 1013, and the page tries again shortly.
        log.warning("signaling.unavailable", message=message.type, error=type(exc).__name__)
        _error(link, "unavailable", UNAVAILABLE_TEXT, message.type)
        if isinstance(message, m.Join) and link.seat is None:
            link.conn.close(WS_TRY_AGAIN_LATER, "signalling unavailable")


@cache
def _counter(kind: str) -> Counter:
    """The per-type child of ``konsil_ws_messages_total``, looked up once per type (``labels``
    takes a lock and builds a key on every call). Types are the protocol's, a closed set."""
    return WS_MESSAGES.labels(type=kind)


async def _dispatch(link: Link, message: m.ClientMessage) -> None:
    target = link.target
    if isinstance(message, m.Leave):
        link.left = True
        link.conn.close(WS_NORMAL, "bye")
    elif target.appointment_id is None or target.actor is None:
        raise NotInRoom()
    elif isinstance(message, m.Join):
        if link.seat is not None:
            raise AlreadyJoined()
        link.joining = True  # the join deadline must not cut a join in progress
        try:
            # A join is not cut short either: the connection is in the room (and its client
            # told ``joined``) before the join returns, so a close meanwhile (a resume taking
            # the seat over, 4409) must wait for the seat, or ``disconnect`` would never give
            # it up and the room would hold the dead connection.
            with anyio.CancelScope(shield=True):
                link.seat = await _join(link, message)
        finally:
            link.joining = False
    elif link.seat is None:
        raise JoinFirst()
    elif isinstance(message, ROOM_ACTIONS):
        if target.actor in (Actor.PATIENT, Actor.GUEST):
            raise Forbidden()
        # The state machine refuses the GP a send_back (forbidden), and both when the room's
        # state does not allow them (invalid_transition).
        action = Action.ADMIT if isinstance(message, m.Admit) else Action.SEND_BACK
        await link.hub.act(link.seat, action, target.who)
    elif isinstance(message, m.AdmitGuest):
        # The specialist only (the service refuses anyone else with forbidden).
        await link.hub.admit_guest(link.seat, target.who)
    elif isinstance(message, m.MediaState):
        allowed = settings(link.websocket).patient_screen_share
        check_media(link.seat.member.role, message, patient_screen_share=allowed)
        await link.hub.media(link.seat, message)
    else:
        await link.hub.relay(link.seat, message)


async def _join(link: Link, message: m.Join) -> Seat | None:
    """Seats the connection; a full room refuses it: ``error`` ``room_full``, then 4419."""
    target = link.target
    assert target.appointment_id is not None
    assert target.actor is not None
    try:
        return await link.hub.seats.join(
            link.conn,
            appointment_id=target.appointment_id,
            actor=target.actor,
            who=target.who,
            resume=message.resume,
            lang=target.lang,
        )
    except RoomFull as exc:
        _error(link, exc.code, exc.message, message.type)
        link.conn.close(exc.ws_close, "room full")
        return None


UNAVAILABLE_TEXT = (
    "Der Server ist gerade nicht vollständig erreichbar. Bitte gleich noch einmal versuchen."
)


def _error(link: Link, code: str, text: str, ref: str | None) -> None:
    WS_ERRORS.labels(code=code).inc()
    link.conn.send(m.Error(code=code, message=text, ref=ref))


def asgi(scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
    """``/ws`` as an ASGI app of its own, for ``app.main.Konsil`` to serve ahead of Starlette's
    middleware and exception chain: each layer of that chain would be a coroutine frame held
    for as long as the socket is open (docs/performance.md, memory per waiting patient).

    Nothing of the chain is missed: Konsil's middlewares hand websockets on untouched, and this
    endpoint answers its own refusals and faults with close codes. An error it does not handle
    (a bug) goes to the server: uvicorn logs it, redacted, and answers the handshake with 500
    or drops the open socket. (Through the chain, a database error of that kind before the
    handshake was answered would have been logged as ``request.failed`` and answered with a
    JSON 500; an error after it went to uvicorn as well.)"""
    return signaling(WebSocket(scope, receive, send))


routes: list[BaseRoute] = [WebSocketRoute("/ws", signaling)]
# Served by ``app.main.Konsil`` before the chain; ``routes`` names the same path for the rest.
DIRECT = {"/ws": asgi}
