"""``/fhir/R4`` Slot search, Appointment ``$book``, read, search and cancel (``PATCH``):
thin calls into the scheduling services the JSON API uses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from app.accounts.models import Role
from app.accounts.service import Principal
from app.api import validate
from app.db import unit_of_work, utcnow
from app.errors import KonsilError, NotFound
from app.fhir import directory, jobs, patients, smart
from app.fhir import resources as build
from app.fhir.auth import caller, granted, require_scope
from app.fhir.booking import appointment_of, book_request, cancel_patch
from app.fhir.outcome import FhirError, fhir_response, from_domain, information
from app.fhir.routes import (
    FHIR_JSON,
    Handler,
    base_url,
    bundle,
    params,
    read_json,
    required_id,
    routes_for,
)
from app.fhir.routes_patient import PATIENT
from app.fhir.routes_telekonsil import TELEKONSIL
from app.fhir.search import Bounds, date_bounds, is_async, reference_id, token_code
from app.resources import db, resources, settings
from app.scheduling import service
from app.scheduling.availability import free_slots
from app.scheduling.models import AppointmentKind
from app.scheduling.routes import REPLAYED_HEADER, created_once
from app.scheduling.schemas import AppointmentOut, AppointmentsQuery, BookingIn, BookingOut

STAFF = (Role.GP, Role.SPECIALIST)
JSON_PATCH = ("application/json-patch+json",)
DEFAULT_SLOT_DAYS = 7
MAX_SLOT_DAYS = 31
MAX_APPOINTMENTS = 500
JOBS = "/_jobs"  # the status URLs of asynchronous requests


async def search_slots(request: Request) -> Response:
    """Free slots computed now from the specialists' hours (nothing stored)."""
    await caller(request)
    cfg = settings(request)
    query = params(request, ["schedule", "service-type", "start", "status"])
    schedules = query.all("schedule")
    types = query.all("service-type")
    if not schedules and not types:
        raise FhirError(400, "Slot-Suche braucht schedule oder service-type.")
    now = utcnow()
    bounds = date_bounds(query.all("start"), cfg.tz, "start")
    lower = max(bounds.lower or now, now)
    upper = bounds.upper or lower + timedelta(days=DEFAULT_SLOT_DAYS)
    if upper - lower > timedelta(days=MAX_SLOT_DAYS):
        raise FhirError(400, f"Der Zeitraum darf höchstens {MAX_SLOT_DAYS} Tage umfassen.")
    statuses = {token_code(s) for v in query.all("status") for s in v.split(",")}
    if upper <= lower or (statuses and "free" not in statuses):
        return bundle(request, [])  # only free slots are computed
    async with db(request)() as session:
        entries = await _slots(session, request, schedules, types, Bounds(lower, upper), now=now)
    return bundle(request, entries)


async def _slots(
    session: AsyncSession,
    request: Request,
    schedules: list[str],
    types: list[str],
    bounds: Bounds,
    *,
    now: datetime,
) -> list[dict[str, Any]]:
    cfg = settings(request)
    specialty_id = None
    if types:
        found = await directory.specialty(session, token_code(types[0]))
        if found is None:
            return []
        specialty_id = found.id
    ids = None
    if schedules:
        ids = [reference_id(schedules[0], "Schedule")]
        if ids[0] is None:
            return []
    people = await directory.specialists(
        session, ids=[i for i in ids or [] if i is not None] or None, specialty_id=specialty_id
    )
    lower, upper = bounds.lower or now, bounds.upper or now
    first = lower.astimezone(cfg.tz).date()
    last = (upper - timedelta(microseconds=1)).astimezone(cfg.tz).date()
    entries = []
    for user, specialty in people:
        assert user.id is not None
        try:
            found_slots = await free_slots(
                session, settings=cfg, specialist=user.id, first_day=first, last_day=last, now=now
            )
        except NotFound:  # deactivated meanwhile
            continue
        entries += [
            build.slot(user.id, specialty, s.starts_at, s.ends_at)
            for s in found_slots
            if bounds.admits(s.starts_at)
        ]
    return sorted(entries, key=lambda e: (e["start"], e["id"]))


async def book(request: Request) -> Response:
    """``$book``: the booking service with its conflict safety, retry-safe with an
    ``Idempotency-Key``; answers the Appointment without the patient's join link. With
    ``Prefer: respond-async``: 202 and the job's status URL (``book_later``)."""
    who = await caller(request, Role.GP)
    asked = book_request(appointment_of(await read_json(request, FHIR_JSON)))
    fields = asked.fields
    if asked.patient_id is not None:
        fields = {**fields, **await _created_patient(request, who, asked.patient_id)}
    body = validate(
        BookingIn, {"specialist_id": asked.specialist_id, "starts_at": asked.starts_at, **fields}
    )
    cfg = settings(request)
    if is_async(request.headers.get("prefer")):
        return await book_later(request, who, body)

    async def create(session: AsyncSession) -> BookingOut:
        return await service.book(session, settings=cfg, who=who, details=body)

    answer = await created_once(request, f"fhir-booking:gp:{who.user_id}", body, create)
    booked = BookingOut.model_validate(json.loads(bytes(answer.body)))
    headers = {"Location": f"{base_url(request)}/Appointment/{booked.appointment.id}"}
    if REPLAYED_HEADER in answer.headers:
        headers[REPLAYED_HEADER] = "true"
    return fhir_response(build.appointment(booked.appointment), 201, headers)


async def _created_patient(request: Request, who: Principal, patient_id: int) -> dict[str, Any]:
    """The booking fields of the GP's created Patient a ``$book`` references: reading it
    needs ``system/Patient.r`` (the answer carries it); another's is as unknown as none."""
    require_scope(request, ("Patient", "r"))
    async with db(request)() as session:
        found = await patients.find(session, patient_id, owner_id=_user(who))
    if found is None:
        raise FhirError(422, "Diesen Patient gibt es nicht.", code="not-found")
    return patients.fields_of(found)


async def book_later(request: Request, who: Principal, body: BookingIn) -> Response:
    """Opens a job, books in a task of the lifespan's group and answers 202 at once; what
    the request itself breaks (not a resource, not a valid patient) was answered before."""
    cfg = settings(request)
    sessions = db(request)
    now = utcnow()
    async with unit_of_work(sessions) as session:
        await jobs.purge(session, before=now - jobs.KEEP)
        job_id, token = await jobs.open_job(
            session,
            owner_id=_user(who),
            now=now,
            limit=cfg.fhir_async_jobs_per_gp,
            fhir_client=who.fhir_client,
        )

    async def run() -> None:
        try:
            async with unit_of_work(sessions) as session:
                booked = await service.book(session, settings=cfg, who=who, details=body)
                done = jobs.Outcome(201, appointment_id=booked.appointment.id)
                if not await jobs.finish(session, job_id, done, now=utcnow()):
                    raise _GivenUp  # a poll said "nothing booked": roll the booking back
        except _GivenUp:
            return
        except KonsilError as exc:
            await _fail(sessions, job_id, from_domain(exc))
        except Exception:
            await _fail(sessions, job_id, FhirError(500, "Die Buchung ist fehlgeschlagen."))
            raise  # logged by the task group, by type only

    resources(request).tasks.spawn("fhir.book", run)
    location = f"{base_url(request)}{JOBS}/{token}"
    accepted = information("Die Buchung ist angenommen; ihr Ergebnis steht unter Content-Location.")
    return fhir_response(accepted, 202, {"Content-Location": location})


def _user(who: Principal) -> int:
    assert who.user_id is not None  # staff sessions always have one
    return who.user_id


class _GivenUp(Exception):
    """The job was ended by a poll before its booking committed."""


async def _fail(sessions: async_sessionmaker[AsyncSession], job_id: int, error: FhirError) -> None:
    failed = jobs.Outcome(error.status, issue_code=error.code, diagnostics=error.diagnostics)
    async with unit_of_work(sessions) as session:
        await jobs.finish(session, job_id, failed, now=utcnow())


async def poll_job(request: Request) -> Response:
    """An asynchronous ``$book``'s status: 202 while it runs; then 200 with a
    ``batch-response`` Bundle holding the Appointment, or the error as an OperationOutcome
    with its status. Only the GP who asked sees it; a system client needs
    ``system/Appointment.r`` (``.read``), or for a job it opened itself the scope that booked
    it (``.c``, ``.write``)."""
    who = await caller(request, Role.GP, scoped=False)
    scope = granted(request)
    if scope is not None and not smart.permits(scope, "Appointment", "c"):
        require_scope(request, ("Appointment", "r"))
    token = str(request.path_params["token"])
    now = utcnow()
    async with unit_of_work(db(request)) as session:
        job = await jobs.find(session, token, owner_id=_user(who))
        if job is None:
            raise FhirError(404, "Diesen Auftrag gibt es nicht (mehr).")
        if job.fhir_client is None or job.fhir_client != who.fhir_client:
            require_scope(request, ("Appointment", "r"))
        assert job.id is not None
        if jobs.overdue(job, now):
            lost = jobs.Outcome(503, issue_code="incomplete", diagnostics=jobs.LOST)
            await jobs.finish(session, job.id, lost, now=now)
            await session.refresh(job)
    if job.finished_at is None:
        return fhir_response(
            information("Die Buchung läuft noch."),
            202,
            {"Retry-After": "1", "X-Progress": "in Bearbeitung"},
        )
    if job.status != 201 or job.appointment_id is None:
        raise FhirError(job.status or 500, job.diagnostics or "", code=job.issue_code)
    async with db(request)() as session:
        found = await service.booking_detail(session, who=who, appointment_id=job.appointment_id)
    return fhir_response(
        build.batch_response(
            build.appointment(found), location=f"Appointment/{found.id}", status="201 Created"
        )
    )


async def read_appointment(request: Request) -> Response:
    who = await caller(request, *STAFF)
    appointment_id = required_id(request)
    async with db(request)() as session:
        found = await service.booking_detail(session, who=who, appointment_id=appointment_id)
    _not_written(found)
    return fhir_response(build.appointment(found))


def _not_written(found: AppointmentOut) -> None:
    """A written Telekonsil has no time and nobody meets: in FHIR it is a ServiceRequest only."""
    if found.kind is AppointmentKind.WRITTEN:
        message = f"Ein schriftliches Telekonsil ist kein Termin: ServiceRequest/{found.id}."
        raise FhirError(404, message)


async def search_appointments(request: Request) -> Response:
    """The caller's own appointments (the JSON API's list), filtered by date, status, actor."""
    who = await caller(request, *STAFF)
    cfg = settings(request)
    query = params(request, ["date", "status", "actor"])
    bounds = date_bounds(query.all("date"), cfg.tz, "date")
    listing: dict[str, Any] = {"limit": MAX_APPOINTMENTS}
    if bounds.lower is not None:
        listing["from"] = bounds.lower.astimezone(cfg.tz).date()
    if bounds.upper is not None:
        listing["to"] = (bounds.upper - timedelta(microseconds=1)).astimezone(cfg.tz).date()
    if "from" in listing and "to" in listing and listing["to"] < listing["from"]:
        return bundle(request, [])
    async with db(request)() as session:
        found = await service.list_bookings(
            session, settings=cfg, who=who, query=AppointmentsQuery.model_validate(listing)
        )
    statuses = {token_code(s) for v in query.all("status") for s in v.split(",")}
    actors = {
        reference_id(a, "Practitioner", "PractitionerRole")
        for v in query.all("actor")
        for a in v.split(",")
    }
    entries = [
        build.appointment(a)
        for a in found
        if a.kind is not AppointmentKind.WRITTEN
        and bounds.admits(a.starts_at.astimezone(UTC))
        and _actor_matches(a, actors)
    ]
    return bundle(request, [e for e in entries if not statuses or e["status"] in statuses])


def _actor_matches(found: AppointmentOut, actors: set[int | None]) -> bool:
    return not actors or found.specialist_id in actors


async def patch_appointment(request: Request) -> Response:
    """Cancels, through the JSON API's cancel; nothing else of an Appointment changes."""
    who = await caller(request, *STAFF)
    appointment_id = required_id(request)
    cancel_patch(await read_json(request, JSON_PATCH))
    async with unit_of_work(db(request)) as session:
        found = await service.booking_detail(session, who=who, appointment_id=appointment_id)
        _not_written(found)
        cancelled = await service.cancel(session, who=who, appointment_id=appointment_id)
    return fhir_response(build.appointment(cancelled))


BOOKING: list[tuple[str, dict[str, Handler]]] = [
    ("/Slot", {"GET": search_slots}),
    ("/Appointment", {"GET": search_appointments}),
    ("/Appointment/$book", {"POST": book}),
    ("/Appointment/{id}", {"GET": read_appointment, "PATCH": patch_appointment}),
    (JOBS + "/{token}", {"GET": poll_job}),
]

routes: list[BaseRoute] = routes_for(BOOKING + PATIENT + TELEKONSIL)
