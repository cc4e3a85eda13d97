"""Closing the websockets of sessions that ended elsewhere: a staff logout, a deactivated
account. One broker channel, ``konsil:sessions``, that every process listens on.

Connections are authorised once, before ``accept()``; without this an open socket would
outlive the session that opened it.
"""

from __future__ import annotations

from anyio.abc import TaskStatus

from app.broker import Broker
from app.errors import WS_UNAUTHENTICATED
from app.signaling import wire
from app.signaling.connection import Connection
from app.signaling.envelope import received
from app.tasks import Task, Tasks
from app.tokens import session_key

CHANNEL = "konsil:sessions"
REASON = "session ended"


class EndedSessions:
    """This process's open connections by session and by user, closed when either ends."""

    def __init__(self, *, broker: Broker, origin: str) -> None:
        self.broker = broker
        self.origin = origin
        self._conns: dict[Connection, tuple[str, int | None]] = {}
        self._open: dict[str, int] = {}  # websockets per session key, from admit to leave
        self._seq = 0
        self._task: Task | None = None

    async def start(self, tasks: Tasks) -> None:
        self._task = await tasks.start("signaling.ended_sessions", self._listen)

    async def stop(self) -> None:
        if self._task is not None:
            await self._task.stop()

    def admit(self, session_id: str, limit: int) -> bool:
        """Counts one more websocket of this session, unless it already holds ``limit``."""
        key = session_key(session_id)
        if self._open.get(key, 0) >= limit:
            return False
        self._open[key] = self._open.get(key, 0) + 1
        return True

    def leave(self, session_id: str) -> None:
        key = session_key(session_id)
        left = self._open.get(key, 0) - 1
        if left > 0:
            self._open[key] = left
        else:
            self._open.pop(key, None)

    def track(self, conn: Connection, *, session_id: str, user_id: int | None) -> None:
        self._conns[conn] = (session_key(session_id), user_id)

    def untrack(self, conn: Connection) -> None:
        self._conns.pop(conn, None)

    async def end(self, *, ev: str, session: str | None = None, user_id: int | None = None) -> None:
        """Closes, on every process, the connections of session key ``session`` or of this
        user (for domain event ``ev``)."""
        self._seq += 1
        message = wire.SessionsEnd(
            o=self.origin, s=self._seq, ev=ev, session=session, user_id=user_id
        )
        await self.broker.publish(CHANNEL, message.model_dump_json().encode())

    async def _listen(self, *, task_status: TaskStatus[None]) -> None:
        async with self.broker.subscribe(CHANNEL) as events:
            task_status.started()
            async for message in received(events, wire.SESSIONS, "sessions"):
                self._close(message.session, message.user_id)

    def _close(self, session: str | None, user_id: int | None) -> None:
        for conn, (key, uid) in list(self._conns.items()):
            if (session is not None and key == session) or (user_id is not None and uid == user_id):
                conn.close(WS_UNAUTHENTICATED, REASON)
