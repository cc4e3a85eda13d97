"""The seats a dead process leaves in rooms that no other process has a replica of.

``Seats.adopt`` ends the seats of a dead process only in the rooms the survivor shares with it
(its replicas know their members). A room whose participants were all on the dead process has
nobody to do so: a patient who does not come back would stay in the waiting room for good. So
every process files the resume records of the seats it holds in its own index in the broker
(``env.seats_key``: a hash of record keys, written only when a seat is taken, resumed or given
up, never per message), and registers its origin in the registry of the service's processes
(``env.processes_key``), so that the others learn of it even if they share no room with it.

When ``liveness`` finds a registered process dead, one survivor (a broker hold on
``env.orphans_key``) waits the resume window and then takes each record in the dead process's
index that is still there: whoever takes a record owns the participant, so a seat resumed
elsewhere meanwhile (its record taken by the resume) or ended by an adopting survivor is left
alone, and each seat is ended exactly once. A record it takes is ended as an expiry would:
``leave`` (lost) on the room's channel, and a patient's room goes back to ``scheduled``. Then
the index and the registry entry go. A process that only stalled (its liveness key is back)
is left alone. If ending a seat fails (the broker or the database out of reach), its record
goes back and the hold is given up: the next beat's claim, here or elsewhere, tries again.

The registry is one per database (``scope``): services, or test runs, that share a Redis but
not a database never end each other's seats.
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from functools import partial

import anyio

from app.broker import UNAVAILABLE, Broker
from app.logging import get_logger
from app.settings import Settings
from app.signaling import envelope as env
from app.signaling import resume as records
from app.signaling.replicas import Replicas
from app.signaling.seats import RESUME_RECORD_MARGIN_SECONDS, Seats
from app.tasks import Task

log = get_logger("konsil.signaling")

# How long the registry lives without a process filing itself again (each does so at the
# first beat that misses it, e.g. after a broker restart).
REGISTRY_SECONDS = 24 * 3600
# The hold of the survivor that ends a dead process's seats outlives the window by this much;
# if that survivor dies meanwhile, another takes over once the hold has expired.
HOLD_MARGIN_SECONDS = 60


def scope(settings: Settings) -> str:
    """The registry's name for the service: its database, hashed (the URL may hold a secret)."""
    return hashlib.sha256(settings.database_url.encode()).hexdigest()[:16]


class Orphans:
    """The registry of processes, and the ending of a dead one's seats."""

    def __init__(self, *, settings: Settings, broker: Broker, replicas: Replicas, seats: Seats):
        self.settings = settings
        self.broker = broker
        self.replicas = replicas
        self.seats = seats
        self.registry = env.processes_key(scope(settings))
        self._next_try: dict[str, float] = {}  # dead processes held by another survivor
        self._ending: dict[str, Task] = {}

    async def registered(self) -> set[str]:
        """The other registered processes; files this one if it is missing (one broker call
        at each beat, two when it was missing)."""
        found = await self.broker.filed(self.registry)
        origin = self.replicas.origin
        if origin not in found:
            await self.broker.file(self.registry, origin, b"1", REGISTRY_SECONDS)
        self._next_try = {o: t for o, t in self._next_try.items() if o in found}
        return set(found) - {origin}

    async def claim(self, origin: str) -> None:
        """``origin`` is dead (``liveness``): if no other survivor does, this process ends its
        seats after the resume window. Tried again at the beats after a hold elsewhere ends."""
        now = anyio.current_time()
        if origin in self._ending or now < self._next_try.get(origin, 0.0):
            return
        hold = self.settings.ws_resume_seconds + HOLD_MARGIN_SECONDS
        remaining = await self.broker.hold(env.orphans_key(origin), hold)
        self._next_try[origin] = now + (remaining or hold)
        if remaining:
            return
        self._ending[origin] = self.replicas.tasks.spawn(
            "signaling.orphans", partial(self._end, origin)
        )

    async def stop(self) -> None:
        """Stops the endings under way (their holds expire; another survivor takes over)."""
        for task in list(self._ending.values()):
            await task.stop()
        self._ending.clear()

    async def _end(self, origin: str) -> None:
        try:
            await self._end_seats(origin)
        except Exception as exc:  # the broker or the database is down: tried again later
            log.warning("signaling.orphans_failed", origin=origin, error=type(exc).__name__)
            # At the next beat, by whichever survivor claims the dead process first.
            self._next_try.pop(origin, None)
            with suppress(*UNAVAILABLE):
                await self.broker.forget(env.orphans_key(origin))
        finally:
            self._ending.pop(origin, None)

    async def _end_seats(self, origin: str) -> None:
        window = self.settings.ws_resume_seconds
        index = env.seats_key(origin)
        keys = sorted(await self.broker.filed(index))
        # Each record outlives the window from now (one in its resume window already when the
        # process died would otherwise expire before it is taken), and this survivor's hold:
        # if it dies too, the next one to claim the dead process still finds the records.
        keep = window + HOLD_MARGIN_SECONDS + RESUME_RECORD_MARGIN_SECONDS
        for key in keys:
            await self.broker.extend(key, keep)
        await anyio.sleep(window)
        if await self.broker.exists(env.alive_key(origin)):
            log.info("signaling.orphans_alive", origin=origin)  # it only stalled
            return
        ended = [await self._end_seat(key, keep) for key in keys].count(True)
        await self.broker.forget(index)
        await self.broker.unfile(self.registry, origin)
        log.info("signaling.orphans_ended", origin=origin, seats=len(keys), ended=ended)

    async def _end_seat(self, key: str, keep: int) -> bool:
        """Ends the seat of record ``key`` if the record is still there: whether it was."""
        raw = await self.broker.take(key)
        if raw is None:  # resumed elsewhere, or ended already
            return False
        seat = records.parse(raw)
        if seat is None:
            return False
        try:
            await self.seats.end(*seat)
        except BaseException:
            # Not ended (a failure, or this process stopping): the record goes back, for the
            # next claim to end the seat. (The broker may be out of reach itself: then the
            # record is lost, as it would expire.)
            with anyio.CancelScope(shield=True), suppress(*UNAVAILABLE):
                await self.broker.put(key, raw, keep)
            raise
        return True
