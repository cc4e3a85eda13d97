"""Closing the websockets of sessions that ended elsewhere: a staff logout, a deactivated
account. One broker channel, ``konsil:sessions``, that every process listens on.

Connections are authorised once, before ``accept()``; without this an open socket would
outlive the session that opened it.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress

from app.errors import WS_UNAUTHENTICATED
from app.signaling import envelope as env
from app.signaling.broker import Broker
from app.signaling.connection import Connection
from app.signaling.resume import session_key

CHANNEL = "konsil:sessions"
REASON = "session ended"


class EndedSessions:
    """This process's open connections by session and by user, closed when either ends."""

    def __init__(self, *, broker: Broker, origin: str) -> None:
        self.broker = broker
        self.origin = origin
        self._conns: dict[Connection, tuple[str, int | None]] = {}
        self._seq = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._listen(ready))
        await asyncio.wait_for(ready.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    def track(self, conn: Connection, *, session_id: str, user_id: int | None) -> None:
        self._conns[conn] = (session_key(session_id), user_id)

    def untrack(self, conn: Connection) -> None:
        self._conns.pop(conn, None)

    async def end(self, *, session_id: str | None = None, user_id: int | None = None) -> None:
        """Closes, on every process, the connections of this session or of this user."""
        self._seq += 1
        fields: dict[str, object] = {}
        if session_id is not None:
            fields["session"] = session_key(session_id)
        if user_id is not None:
            fields["user_id"] = user_id
        await self.broker.publish(CHANNEL, env.pack(self.origin, self._seq, "end", **fields))

    async def _listen(self, ready: asyncio.Event) -> None:
        async with self.broker.subscribe(CHANNEL) as events:
            ready.set()
            async for raw in events:
                data = env.unpack(raw)
                if data is None or data["e"] != "end":
                    continue
                self._close(data.get("session"), data.get("user_id"))

    def _close(self, session: object, user_id: object) -> None:
        for conn, (key, uid) in list(self._conns.items()):
            if (session is not None and key == session) or (user_id is not None and uid == user_id):
                conn.close(WS_UNAUTHENTICATED, REASON)
