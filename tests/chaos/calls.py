"""Consultations and waiting patients on a ``Cluster``, through its proxy."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import httpx2

from app.accounts.models import User
from app.db import utcnow
from app.seed import DEMO_PASSWORD
from tests.chaos.harness import Cluster
from tests.chaos.participants import Participant
from tests.factories import make_appointment, patient_token
from tests.waiting import until

LOGIN_TIMEOUT = 30.0
SETUP_TIMEOUT = 90.0


async def staff_cookie(cluster: Cluster, user: User) -> str:
    async with httpx2.AsyncClient(base_url=cluster.proxy.url, timeout=LOGIN_TIMEOUT) as client:
        response = await client.post(
            "/api/v1/auth/login", json={"email": user.email, "password": DEMO_PASSWORD}
        )
        assert response.status_code == 200, response.text
        return f"konsil_staff={client.cookies['konsil_staff']}"


@dataclass
class Consultation:
    appointment: int
    patient: Participant
    specialist: Participant

    @property
    def sides(self) -> tuple[Participant, Participant]:
        return self.patient, self.specialist


@dataclass
class Scene:
    """Everybody a scenario started; ``close`` ends them all."""

    consultations: list[Consultation] = field(default_factory=list)
    waiting: list[Participant] = field(default_factory=list)

    @property
    def everybody(self) -> list[Participant]:
        return [p for c in self.consultations for p in c.sides] + self.waiting

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.everybody), return_exceptions=True)


async def patient(cluster: Cluster, name: str, appointment_id: int, *, media: bool) -> Participant:
    from app.scheduling.models import Appointment

    async with cluster.sessions() as session:
        appointment = await session.get(Appointment, appointment_id)
    assert appointment is not None
    token = await patient_token(cluster.sessions, cluster.settings, appointment)
    return Participant(
        name=name,
        ws_url=cluster.proxy.ws,
        origin=cluster.proxy.url,
        appointment=appointment_id,
        role="patient",
        cookie=f"konsil_patient={token}",
        media=media,
    )


async def start_consultations(cluster: Cluster, scene: Scene, count: int) -> None:
    """``count`` calls, alternately with the two demo cardiologists; each patient waits, is
    admitted and has video both ways before the next call starts."""
    specialists = [cluster.demo.specialist, cluster.demo.other_specialist]
    cookies = [await staff_cookie(cluster, user) for user in specialists]
    for n in range(count):
        specialist = specialists[n % 2]
        appointment = await make_appointment(
            cluster.sessions, cluster.demo, specialist_id=specialist.id
        )
        assert appointment.id is not None
        p = await patient(cluster, f"patient-{n}", appointment.id, media=True)
        s = Participant(
            name=f"specialist-{n}",
            ws_url=cluster.proxy.ws,
            origin=cluster.proxy.url,
            appointment=appointment.id,
            role="staff",
            cookie=cookies[n % 2],
            media=True,
        )
        scene.consultations.append(Consultation(appointment.id, p, s))
        p.start()
        await asyncio.wait_for(p.joined.wait(), SETUP_TIMEOUT)
        s.start()
        await asyncio.wait_for(s.joined.wait(), SETUP_TIMEOUT)
        assert await s.send(type="admit")
        # One pair at a time: forty ICE checks and DTLS handshakes at once on a busy 2-core
        # machine can outlast aioice's check timeouts, and setting up is not what is tested.
        call = scene.consultations[-1]
        await until(
            partial(_has_video, call),
            SETUP_TIMEOUT,
            f"consultation {n} has video both ways",
            step=0.05,
        )


async def start_waiting(cluster: Cluster, scene: Scene, count: int) -> None:
    """``count`` patients of the first cardiologist in the waiting room, nobody admits them;
    their slots an hour ahead, a minute apart, so their places are 0, 1, 2, ..."""
    start = utcnow().replace(microsecond=0) + timedelta(hours=1)
    for n in range(count):
        appointment = await make_appointment(
            cluster.sessions, cluster.demo, starts_at=start + timedelta(minutes=n)
        )
        assert appointment.id is not None
        p = await patient(cluster, f"waiting-{n}", appointment.id, media=False)
        scene.waiting.append(p)
        p.start()
        await asyncio.wait_for(p.joined.wait(), SETUP_TIMEOUT)
    await until(
        lambda: (
            [p.positions[-1] if p.positions else None for p in scene.waiting] == list(range(count))
        ),
        SETUP_TIMEOUT,
        "waiting patients told their places",
        step=0.1,
    )


def _has_video(call: Consultation) -> bool:
    return all(side.frames > 0 for side in call.sides)


def frames_now(scene: Scene) -> dict[str, int]:
    return {p.name: p.frames for c in scene.consultations for p in c.sides}


async def media_again(scene: Scene, since: dict[str, int], limit: float) -> list[Consultation]:
    """Waits (bounded) until both sides of every call received frames after ``since``; the
    calls that did."""

    def fresh(c: Consultation) -> bool:
        return all(p.frames > since[p.name] + 5 for p in c.sides)

    with contextlib.suppress(TimeoutError):
        await until(lambda: all(fresh(c) for c in scene.consultations), limit, "media again")
    return [c for c in scene.consultations if fresh(c)]
