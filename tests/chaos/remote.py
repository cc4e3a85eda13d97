"""A patient in another network namespace: ``Participant`` (tests/chaos/participants.py) in a
process of its own, started with ``ip netns exec``, so that its signalling and its media
cross the test's veth pair (tests/netns.py) and a cut of that link hits only it.

The child (``python -m tests.chaos.remote``, configured by ``KONSIL_REMOTE_*`` variables) writes
what its participant saw as one JSON line every ``REPORT_SECONDS`` on stdout and sends the
messages it reads as JSON lines on stdin (or drops its websocket on ``DROP``); it ends when
stdin closes. Times are
``time.monotonic()``, the same clock in both processes. ``RemotePatient`` is the parent's side:
it keeps the latest report and records nothing as a failure itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.participants import Participant, Reconnect

REPORT_SECONDS = 0.1
# Not a message for the server: the child drops its websocket (no close frame) and reconnects
# with ``resume``, as a phone does that came back on another network.
DROP = {"drop": True}


# --- the child, inside the namespace -------------------------------------------------------


@dataclass
class PagePatient(Participant):
    """Also notes the room states it is told (``joined``, ``room_state``): what its page would
    show, e.g. the waiting room again after a resume that came too late."""

    room_states: list[str] = field(default_factory=list)

    async def _on(self, message: dict[str, Any], pending: Reconnect | None) -> None:
        if message["type"] == "joined":
            self.room_states.append(str(message.get("room_state")))
        elif message["type"] == "room_state":
            self.room_states.append(str(message.get("state")))
        await super()._on(message, pending)


def _report(patient: PagePatient) -> dict[str, Any]:
    return {
        "at": time.monotonic(),
        "participant_id": patient.participant_id,
        "joined": patient.joined.is_set(),
        "instance": patient.instance,
        "frames": patient.frames,
        "reconnects": [
            {
                "code": r.code,
                "closed_at": r.closed_at,
                "joined_at": r.joined_at,
                "resumed": r.resumed,
            }
            for r in patient.reconnects
        ],
        "closes": patient.closes,
        "errors": patient.errors,
        "peer_left": patient.peer_left,
        "stopped_with": patient.stopped_with,
        "room_states": patient.room_states,
    }


async def _child() -> None:
    patient = PagePatient(
        name="patient",
        ws_url=os.environ["KONSIL_REMOTE_WS"],
        origin=os.environ["KONSIL_REMOTE_ORIGIN"],
        appointment=int(os.environ["KONSIL_REMOTE_APPOINTMENT"]),
        role="patient",
        cookie=os.environ["KONSIL_REMOTE_COOKIE"],
        media=True,
    )
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)

    async def report() -> None:
        while True:
            print(json.dumps(_report(patient)), flush=True)
            await asyncio.sleep(REPORT_SECONDS)

    patient.start()
    reporter = asyncio.create_task(report())
    try:
        while line := await commands.readline():
            message = json.loads(line)
            if message == DROP:
                await patient.drop()
            else:
                await patient.send(**message)
    finally:
        reporter.cancel()
        await patient.close()
        print(json.dumps(_report(patient)), flush=True)


# --- the parent ----------------------------------------------------------------------------


@dataclass
class RemotePatient:
    """The parent's view of the child: the latest report, and ``send`` for its messages."""

    command_prefix: list[str]
    env: dict[str, str]
    log: Path
    report: dict[str, Any] = field(default_factory=dict)
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    _process: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None

    @property
    def frames(self) -> int:
        return int(self.report.get("frames", 0))

    @property
    def instance(self) -> str | None:
        return self.report.get("instance")

    @property
    def reconnects(self) -> list[dict[str, Any]]:
        return list(self.report.get("reconnects", []))

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.report.get("errors", []))

    @property
    def peer_left(self) -> list[dict[str, Any]]:
        return list(self.report.get("peer_left", []))

    @property
    def room_states(self) -> list[str]:
        return list(self.report.get("room_states", []))

    @property
    def participant_id(self) -> str | None:
        return self.report.get("participant_id")

    async def start(self) -> None:
        # Not at the top: the child needs none of the harness (the database, the test app).
        from tests.chaos.harness import _die_with_parent
        from tests.live import ROOT

        with self.log.open("ab") as errors:
            # Forked on the event loop's thread (see harness.spawn): killed if we die.
            self._process = await asyncio.create_subprocess_exec(
                *self.command_prefix,
                sys.executable,
                "-m",
                "tests.chaos.remote",
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
                preexec_fn=_die_with_parent,
            )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        while line := await self._process.stdout.readline():
            with contextlib.suppress(ValueError):
                self.report = json.loads(line)
            if self.report.get("joined"):
                self.joined.set()

    def drop(self) -> None:
        """The child drops its websocket and reconnects with ``resume`` (``DROP``)."""
        self.send(**DROP)

    def send(self, **message: Any) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message).encode() + b"\n")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def close(self) -> None:
        """Ends the child (stdin closed: it closes its participant and reports a last time);
        SIGKILL if it does not go within 10 s."""
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(_child())
