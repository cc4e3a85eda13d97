"""Which server processes are alive, so that the seats of one that died still end.

A seat's expiry timer runs on the process that held its connection (``seats``). Killed with it
(SIGKILL, out of memory, the machine gone), nobody would end the seat: its peers would show the
participant connected for good and a patient's room would stay in the waiting room. So every
process keeps a liveness key in the broker (``konsil:alive:<origin>``, written every
``BEAT_SECONDS``, living ``ALIVE_SECONDS``) and, at each beat, looks at the keys of the other
processes: those that hold participants of its rooms and those in the registry of the
service's processes (``orphans``), with one broker call for all of them. One whose key stayed
missing for ``DEAD_AFTER_SECONDS`` while this process reached the broker all along is dead:
this process takes its seats in the rooms they share over (``Seats.adopt``) and ends them after
the resume window unless they are resumed; and one survivor ends its other seats, in rooms
nobody else has a replica of, after the window (``Orphans.claim``). Several survivors may
adopt a seat at once; whoever takes the resume record wins, as ever.

The thresholds leave room for a broker restart (which loses every key: a live process writes
its key again at its next beat) and for a stalled event loop: a process that merely stalled and
finds its participants marked away tells the room they are connected (``Replicas``), and an
adopted seat is not ended while its process's key is back.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import suppress

import anyio
from anyio.abc import TaskStatus

from app.broker import UNAVAILABLE, Broker
from app.logging import get_logger
from app.signaling import envelope as env
from app.signaling.orphans import Orphans
from app.signaling.replicas import Replicas
from app.signaling.seats import Seats
from app.tasks import Task, Tasks

log = get_logger("konsil.signaling")

BEAT_SECONDS = 2.0
ALIVE_SECONDS = 8
DEAD_AFTER_SECONDS = 6.0


class Deaths:
    """Pure: which processes count as dead, from what the beats saw. No I/O, no clock."""

    def __init__(self, dead_after: float) -> None:
        self.dead_after = dead_after
        self._missing_since: dict[str, float] = {}

    def saw(self, alive: Mapping[str, bool], now: float) -> set[str]:
        """``alive``: for each process of interest, whether its key was there at ``now``.
        Returns those missing for at least ``dead_after``; a process no longer of interest,
        or seen alive, starts afresh."""
        self._missing_since = {
            origin: self._missing_since.get(origin, now)
            for origin, there in alive.items()
            if not there
        }
        return {o for o, since in self._missing_since.items() if now - since >= self.dead_after}

    def blind(self) -> None:
        """The broker could not be asked: what was missing before proves nothing."""
        self._missing_since.clear()


class Liveness:
    """This process's liveness key, and the watch over the processes its rooms share."""

    def __init__(self, *, broker: Broker, replicas: Replicas, seats: Seats) -> None:
        self.broker = broker
        self.replicas = replicas
        self.seats = seats
        self.deaths = Deaths(DEAD_AFTER_SECONDS)
        self.orphans = Orphans(
            settings=seats.settings, broker=broker, replicas=replicas, seats=seats
        )
        self._task: Task | None = None

    async def start(self, tasks: Tasks) -> None:
        self._task = await tasks.start("signaling.liveness", self._run)

    async def stop(self) -> None:
        """Ends the beats and removes the key: the others notice the sooner."""
        if self._task is not None:
            await self._task.stop()
            self._task = None
        await self.orphans.stop()
        with suppress(*UNAVAILABLE):  # (if not, it expires by itself)
            await self.broker.forget(env.alive_key(self.replicas.origin))

    async def _run(self, *, task_status: TaskStatus[None]) -> None:
        task_status.started()
        while True:
            try:
                await self.beat()
            except Exception as exc:  # never the end of the watch
                log.warning("signaling.liveness_failed", error=type(exc).__name__)
            await anyio.sleep(BEAT_SECONDS)

    async def beat(self) -> None:
        """Writes this process's key, then looks at the others'; adopts the seats of the dead
        in this process's rooms, and claims the ending of their other seats."""
        try:
            await self.broker.put(env.alive_key(self.replicas.origin), b"1", ALIVE_SECONDS)
            registered = await self.orphans.registered()
            sharing = self.replicas.remote_origins()
            watched = sorted(registered | sharing)
            there = await self.broker.present(*(env.alive_key(o) for o in watched))
        except UNAVAILABLE:
            self.deaths.blind()
            return
        alive = dict(zip(watched, there, strict=True))
        for origin in sorted(self.deaths.saw(alive, anyio.current_time())):
            if origin in sharing:
                await self.seats.adopt(origin)
            if origin in registered:
                await self.orphans.claim(origin)
