"""Specialties, specialists, consultation hours and free slots (JSON API)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.accounts.models import Role
from app.accounts.web import require_staff
from app.api import api_route, parse_json, parse_query, path_id, respond
from app.db import unit_of_work
from app.resources import db, settings
from app.scheduling import availability
from app.scheduling.schemas import (
    ExceptionIn,
    ExceptionOut,
    RuleOut,
    RulesIn,
    SlotOut,
    SlotsQuery,
    SpecialistOut,
    SpecialistsQuery,
    SpecialtyIn,
    SpecialtyOut,
    SpecialtyPatch,
)


async def list_specialties(request: Request) -> Response:
    await require_staff(request)
    async with db(request)() as session:
        return respond(await availability.list_specialties(session))


async def create_specialty(request: Request) -> Response:
    who = await require_staff(request, Role.ADMIN)
    body = await parse_json(request, SpecialtyIn)
    async with unit_of_work(db(request)) as session:
        created = await availability.create_specialty(session, who=who, data=body)
    return respond(created, status=201)


async def rename_specialty(request: Request) -> Response:
    who = await require_staff(request, Role.ADMIN)
    specialty_id = path_id(request)
    body = await parse_json(request, SpecialtyPatch)
    async with unit_of_work(db(request)) as session:
        renamed = await availability.rename_specialty(
            session, who=who, specialty_id=specialty_id, data=body
        )
    return respond(renamed)


async def list_specialists(request: Request) -> Response:
    await require_staff(request)
    query = parse_query(request, SpecialistsQuery)
    async with db(request)() as session:
        return respond(await availability.list_specialists(session, specialty=query.specialty))


async def list_slots(request: Request) -> Response:
    await require_staff(request)
    query = parse_query(request, SlotsQuery)
    async with db(request)() as session:
        found = await availability.free_slots(
            session,
            settings=settings(request),
            specialist=query.specialist,
            specialty=query.specialty,
            first_day=query.first_day,
            last_day=query.last_day,
        )
    return respond(found)


async def get_rules(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    async with db(request)() as session:
        return respond(await availability.get_rules(session, who=who))


async def put_rules(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    body = await parse_json(request, RulesIn)
    async with unit_of_work(db(request)) as session:
        rules = await availability.replace_rules(session, who=who, rules=body.rules)
    return respond(rules)


async def list_exceptions(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    async with db(request)() as session:
        return respond(await availability.list_exceptions(session, who=who))


async def add_exception(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    body = await parse_json(request, ExceptionIn)
    async with unit_of_work(db(request)) as session:
        created = await availability.add_exception(
            session, who=who, settings=settings(request), data=body
        )
    return respond(created, status=201)


async def delete_exception(request: Request) -> Response:
    who = await require_staff(request, Role.SPECIALIST)
    exception_id = path_id(request)
    async with unit_of_work(db(request)) as session:
        await availability.delete_exception(session, who=who, exception_id=exception_id)
    return Response(status_code=204)


TAGS = ["availability"]
routes: list[Route] = [
    api_route(
        "/api/v1/specialties",
        create_specialty,
        method="POST",
        summary="Create a specialty (admin)",
        tags=["admin"],
        body=SpecialtyIn,
        response=SpecialtyOut,
        status=201,
        errors=[401, 403, 409],
    ),
    api_route(
        "/api/v1/specialties/{id:int}",
        rename_specialty,
        method="PATCH",
        summary="Rename a specialty (admin; the slug stays)",
        tags=["admin"],
        body=SpecialtyPatch,
        response=SpecialtyOut,
        errors=[401, 403, 404],
    ),
    api_route(
        "/api/v1/specialties",
        list_specialties,
        summary="List specialties",
        tags=TAGS,
        response=SpecialtyOut,
        many=True,
        errors=[401],
    ),
    api_route(
        "/api/v1/specialists",
        list_specialists,
        summary="List active specialists, optionally of one specialty",
        tags=TAGS,
        response=SpecialistOut,
        many=True,
        errors=[401, 404, 422],
        query=SpecialistsQuery,
    ),
    api_route(
        "/api/v1/slots",
        list_slots,
        summary="Free slots of a specialist or of all specialists of a specialty",
        tags=TAGS,
        response=SlotOut,
        many=True,
        errors=[401, 404, 422],
        query=SlotsQuery,
    ),
    api_route(
        "/api/v1/availability/rules",
        get_rules,
        summary="The specialist's own weekly consultation hours",
        tags=TAGS,
        response=RuleOut,
        many=True,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/availability/rules",
        put_rules,
        method="PUT",
        summary="Replace the specialist's weekly consultation hours",
        tags=TAGS,
        body=RulesIn,
        response=RuleOut,
        many=True,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/availability/exceptions",
        list_exceptions,
        summary="The specialist's upcoming absences and extra hours",
        tags=TAGS,
        response=ExceptionOut,
        many=True,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/availability/exceptions",
        add_exception,
        method="POST",
        summary="Add an absence (available=false) or extra hours (available=true)",
        tags=TAGS,
        body=ExceptionIn,
        response=ExceptionOut,
        status=201,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/availability/exceptions/{id:int}",
        delete_exception,
        method="DELETE",
        summary="Delete one of the specialist's exceptions",
        tags=TAGS,
        status=204,
        errors=[401, 403, 404],
    ),
]
