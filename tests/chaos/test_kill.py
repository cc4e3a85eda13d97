"""kill -9 of one instance holding half the calls: the participants it held resume on the
other instance, and the peers there are told within the resume window; a participant that
does not come back is shown reconnecting, then reported gone (``peer_left``, reason ``lost``):
the surviving instance notices the death (``app.signaling.liveness``) and ends the seat. A
patient waiting alone on the killed instance (a room no survivor has a replica of) who does
not come back leaves the waiting room all the same (``app.signaling.orphans``). Hostile
clients (``tests/chaos/hostile.py``) act throughout the first kill."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from app.scheduling.models import Appointment, RoomState
from app.signaling.liveness import ALIVE_SECONDS, BEAT_SECONDS, DEAD_AFTER_SECONDS
from tests.chaos.calls import Scene, frames_now, media_again, start_consultations, start_waiting
from tests.chaos.harness import Cluster, cluster
from tests.chaos.hostile import ANSWERS, PAUSE, WAIT, Event, hostile_clients, said
from tests.chaos.participants import Participant, percentile
from tests.chaos.report import seconds, write_section
from tests.waiting import until

pytestmark = [pytest.mark.chaos, pytest.mark.postgres]

CONSULTATIONS = 6
# The resume window of the default settings: everything must have happened within it.
WINDOW = 30.0
# A shorter window for the participant who does not come back (keeps the run short). The
# survivor notices the death when the killed instance's liveness key has expired and stayed
# missing (``app.signaling.liveness``), then holds the seat for the window; then some margin.
RESUME_SECONDS = 10
NOTICED_WITHIN = ALIVE_SECONDS + BEAT_SECONDS + DEAD_AFTER_SECONDS + BEAT_SECONDS
LOST_WITHIN = NOTICED_WITHIN + RESUME_SECONDS + 10


def killed_it(victim: str, killing: float) -> Callable[[Event], bool]:
    """What the hostile clients may get for the kill itself, told apart by time and instance:
    a connection whose handshake the killed instance had answered before the kill ends
    without a close frame (`close none`: HAProxy just closes the client's side when its
    instance's socket dies), and a handshake on its way through the proxy at the moment of
    the kill is answered by HAProxy itself with 502. Anything else, and either of these on
    the survivor or before the kill, is not the kill's."""

    def excused(e: Event) -> bool:
        if e.what == "close none":
            return e.instance == victim and e.opened is not None and e.opened < killing <= e.at
        if e.what == "proxy 502":
            return e.instance is None and e.started < killing <= e.at
        return False

    return excused


async def test_kill_9_participants_resume_on_the_survivor(tmp_path: Path) -> None:
    async with cluster(tmp_path) as konsil:
        scene = Scene()
        try:
            await start_consultations(konsil, scene, CONSULTATIONS)
            victim = konsil.instances[0]
            survivor = konsil.instances[1]
            on_victim = [p for p in scene.everybody if p.instance == victim.name]
            split = [c for c in scene.consultations if c.patient.instance != c.specialist.instance]
            # In each split call, the side on the surviving instance waits for the other.
            stayers = [next(p for p in c.sides if p.instance == survivor.name) for c in split]
            async with hostile_clients(konsil) as hostile:
                # At least one of them holds a connection on the instance to be killed that
                # cannot be closing at that moment: the garbage sender's (it stays), or one
                # opened less than half its pause before acting ago.
                await until(
                    lambda: any(
                        i == victim.name and (k == "garbage" or time.monotonic() - at < PAUSE / 2)
                        for k, (i, at) in hostile.open.items()
                    ),
                    WAIT,
                    "a hostile client on the victim",
                )
                cut = sorted(k for k, (i, _) in hostile.open.items() if i == victim.name)
                before = frames_now(scene)
                killing = time.monotonic()
                victim.kill()
                killed_at = time.monotonic()
                await victim.stopped(10)
                await until(
                    lambda: all(p.back for p in on_victim), WINDOW, "resumed on the survivor"
                )
                kept = await media_again(scene, before, limit=WINDOW)
                # Told: the peer's `renegotiate` (reason resumed) or `peer_state` after the
                # kill. (Media runs peer to peer and may never have stopped: the news of a
                # resume can still be on its way when the media check is done, so wait for
                # it, bounded.)
                with contextlib.suppress(TimeoutError):
                    await until(
                        lambda: all(_first_after(s, killed_at) is not None for s in stayers),
                        WINDOW,
                        "peers told",
                    )
                told = [_first_after(stayer, killed_at) for stayer in stayers]
                # Each hostile client acts on the survivor too, and gets its own answer there.
                with contextlib.suppress(TimeoutError):
                    await until(
                        lambda: (
                            _answered_after(hostile.events, survivor.name, killing) == set(ANSWERS)
                        ),
                        WAIT,
                        "hostile clients answered by the survivor",
                    )
            answered = _answered_after(hostile.events, survivor.name, killing)
            reconnects = [r for p in on_victim for r in p.reconnects]
            times = [r.seconds for r in reconnects if r.seconds is not None]
            not_resumed = [p.name for p in on_victim for r in p.reconnects if r.resumed is False]
            gone = [(p.name, m) for p in scene.everybody for m in p.peer_left]
        finally:
            await scene.close()
        tracebacks = konsil.tracebacks()

    told_times = [t for t in told if t is not None]
    excused = killed_it(victim.name, killing)
    by_kill = Counter(e.what for e in hostile.events if excused(e))
    after_kill = [e for e in hostile.events if e.at >= killing and not excused(e)]
    write_section(
        "kill",
        [
            f"- Injected: SIGKILL to instance {victim.name}, which held {len(on_victim)} of "
            f"{len(scene.everybody)} participants ({CONSULTATIONS} calls, {len(split)} of them "
            f"across both instances).",
            f"- Calls with media again: {len(kept)} of {CONSULTATIONS}; resumed on "
            f"{survivor.name}: {len(times)} of {len(on_victim)}, not resumed: "
            f"{len(not_resumed)}; reconnect p50 {seconds(percentile(times, 0.5))}, "
            f"p95 {seconds(percentile(times, 0.95))}.",
            f"- Peers on {survivor.name} told (`renegotiate` with reason `resumed`): "
            f"{len(told_times)} of {len(told)}, p95 {seconds(percentile(told_times, 0.95))} "
            f"after the kill; participants shown as gone: {len(gone)}.",
            "- Hostile clients from before the kill until each got its own answer from "
            f"{survivor.name}, each a patient in a room of its own through the proxy, acting "
            "every second and reconnecting when closed (a flooder of 600 `media_state`, a "
            "sender of a 100 KB frame, a sender of text that is not JSON on one connection); "
            f"on {victim.name} when it was killed: {', '.join(cut)}; what they got:",
            *(f"  - {line}" for line in hostile.lines()),
            f"- Of that, the kill's (a connection {victim.name} held cut without a close frame, "
            f"a handshake on its way answered 502 by the proxy): {said(by_kill)}; after the "
            + "kill otherwise: "
            + "; ".join(
                f"{kind} {said(Counter(e.what for e in after_kill if e.kind == kind))}"
                for kind in ANSWERS
            )
            + ".",
            f"- Tracebacks in the instances' logs: {len(tracebacks)}"
            + "".join(f"; {t}" for t in sorted(set(tracebacks)))
            + ".",
        ],
    )
    assert len(kept) == CONSULTATIONS
    assert not_resumed == []
    assert len(times) == len(on_victim)
    assert split
    assert len(told_times) == len(told)
    assert gone == []
    assert hostile.unexpected(excused=excused) == {}
    # The kill cut what the victim held of them, and the survivor answered each of them.
    assert by_kill["close none"] > 0
    assert answered == set(ANSWERS)
    assert tracebacks == []


async def test_kill_9_a_participant_who_does_not_come_back_is_reported_gone(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, ws_resume_seconds=str(RESUME_SECONDS)) as konsil:
        scene = Scene()
        try:
            await start_consultations(konsil, scene, 1)
            (call,) = scene.consultations
            call.patient.resume = False  # its device is gone with the instance
            victim = next(i for i in konsil.instances if i.name == call.patient.instance)
            peer = call.specialist
            assert peer.instance != victim.name
            victim.kill()
            killed_at = time.monotonic()
            await victim.stopped(10)
            try:
                await until(lambda: bool(peer.peer_left), LOST_WITHIN, "peer_left lost")
                lost_told = time.monotonic() - killed_at
            except TimeoutError:
                lost_told = None
            reasons = [m.get("reason") for m in peer.peer_left]
            away = [
                at - killed_at
                for at, state in peer.peer_states
                if at > killed_at and state.get("connection") == "reconnecting"
            ]
        finally:
            await scene.close()

    write_section(
        "kill_lost",
        [
            f"- Injected: SIGKILL to the instance holding a patient in a call, the patient "
            f"does not come back; `KONSIL_WS_RESUME_SECONDS={RESUME_SECONDS}`.",
            f"- The specialist on the other instance saw the patient as reconnecting after "
            f"{seconds(away[0] if away else None)} (the survivor noticed the death: liveness "
            f"key {ALIVE_SECONDS} s, beat {BEAT_SECONDS:g} s, dead after "
            f"{DEAD_AFTER_SECONDS:g} s missing) and got `peer_left` {reasons or 'never'} after "
            f"{seconds(lost_told)} (waited {LOST_WITHIN:g} s).",
        ],
    )
    assert reasons == ["lost"]
    assert away  # shown as reconnecting first, as for any connection that dropped


async def test_kill_9_a_patient_waiting_alone_who_does_not_come_back_leaves_the_queue(
    tmp_path: Path,
) -> None:
    async with cluster(tmp_path, ws_resume_seconds=str(RESUME_SECONDS)) as konsil:
        scene = Scene()
        try:
            await start_waiting(konsil, scene, 1)
            (patient,) = scene.waiting
            patient.resume = False  # the browser was closed at the same moment
            victim = next(i for i in konsil.instances if i.name == patient.instance)
            assert await _room_state(konsil, patient.appointment) is RoomState.WAITING
            victim.kill()
            killed_at = time.monotonic()
            await victim.stopped(10)

            async def left() -> bool:
                return await _room_state(konsil, patient.appointment) is not RoomState.WAITING

            try:
                await until(left, LOST_WITHIN, "the room no longer waiting", step=0.2)
                left_after = time.monotonic() - killed_at
            except TimeoutError:
                left_after = None
            state = await _room_state(konsil, patient.appointment)
        finally:
            await scene.close()

    write_section(
        "kill_alone",
        [
            f"- Injected: SIGKILL to the instance holding a patient waiting alone in the waiting "
            f"room (nobody on the other instance in that room), the patient does not come "
            f"back; `KONSIL_WS_RESUME_SECONDS={RESUME_SECONDS}`.",
            f"- The room left the waiting room (now `{state.value}`, so the specialist's queue "
            f"no longer shows the patient) after {seconds(left_after)} (detection: liveness key "
            f"{ALIVE_SECONDS} s, beat {BEAT_SECONDS:g} s, dead after {DEAD_AFTER_SECONDS:g} s "
            f"missing; then the window; waited {LOST_WITHIN:g} s).",
        ],
    )
    assert state is RoomState.SCHEDULED


async def _room_state(konsil: Cluster, appointment_id: int) -> RoomState:
    async with konsil.sessions() as session:
        appointment = await session.get(Appointment, appointment_id, populate_existing=True)
        assert appointment is not None
        return appointment.room_state


def _answered_after(events: list[Event], instance: str, moment: float) -> set[str]:
    """The kinds of hostile client that got their own answer on ``instance`` after
    ``moment``."""
    return {
        e.kind
        for e in events
        if e.at > moment and e.instance == instance and e.what == ANSWERS[e.kind]
    }


def _first_after(participant: Participant, moment: float) -> float | None:
    heard = [t for t in participant.renegotiated_at if t > moment]
    heard += [t for t, _ in participant.peer_states if t > moment]
    return min(heard) - moment if heard else None
