"""Two-factor sign-in, setting up and managing second factors, re-auth, and the staff member's
own sessions (JSON API). docs/api.md, "Two-factor authentication" and "Sessions".

After the password, a session is at ``SessionStage.SECOND_FACTOR`` (it may only call
``/auth/second-factor``) or, for an account that must set one up first, at ``ENROL`` (it may
only set one up). Finishing either replaces the session by a fully signed-in one with a new
token.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.accounts import factors, oidc
from app.accounts import service as accounts
from app.accounts.models import FactorKind, Role, SessionKind, SessionStage, User
from app.accounts.routes import MeOut, me_out
from app.accounts.service import Principal
from app.accounts.web import (
    clear_session_cookie,
    client_ip,
    require_recent_auth,
    require_signing_in,
    require_staff,
    set_session_cookie,
)
from app.api import api_route, parse_json, path_id, respond
from app.audit import service as audit
from app.db import unit_of_work, utcnow
from app.errors import InvalidCode, InvalidInput, NotFound, ReauthAtProvider
from app.resources import db, resources
from app.schemas import Out, Schema
from app.throttle import Budget
from app.tokens import session_key

SIGNING_IN = (SessionStage.SECOND_FACTOR,)
ENROLLING = (SessionStage.ENROL, SessionStage.FULL)
MAX_CREDENTIAL_KEYS = 16


class CodeIn(Schema):
    """A 6-digit code from the authenticator app, a recovery code, or a WebAuthn assertion
    (``PublicKeyCredential.toJSON()``)."""

    code: str | None = Field(default=None, min_length=1, max_length=64)
    credential: dict[str, Any] | None = Field(default=None, max_length=MAX_CREDENTIAL_KEYS)


class ReauthIn(CodeIn):
    password: str | None = Field(default=None, min_length=1, max_length=1024)


class FactorOut(Out):
    id: int
    kind: FactorKind
    label: str
    created_at: datetime
    last_used_at: datetime | None


class FactorsOut(Out):
    factors: list[FactorOut]
    recovery_codes_left: int
    required: bool


class TotpStartOut(Out):
    id: int
    secret: str
    uri: str
    qr: str  # an SVG data URI


class ConfirmIn(Schema):
    code: str = Field(min_length=1, max_length=64)
    label: str = Field(default="Authenticator-App", min_length=1, max_length=100)


class PasskeyIn(Schema):
    credential: dict[str, Any] = Field(max_length=MAX_CREDENTIAL_KEYS)
    label: str = Field(default="Passkey", min_length=1, max_length=100)


class EnrolledOut(Out):
    """Recovery codes (shown once) when the first factor was set up."""

    recovery_codes: list[str] | None
    signed_in: bool


class RecoveryCodesOut(Out):
    recovery_codes: list[str]


class SessionOut(Out):
    key: str
    created_at: datetime
    last_seen_at: datetime
    user_agent: str
    ip: str
    current: bool


async def check_second_factor(request: Request, who: Principal, body: CodeIn) -> str:
    """Checks a code or passkey assertion of ``who``'s account (throttled, audited); returns
    which kind passed or raises ``InvalidCode``."""
    res = resources(request)
    assert who.user_id is not None
    if body.code is None and body.credential is None:
        raise InvalidInput("Bitte geben Sie den Code ein.")
    reservation = await res.throttle.reserve(code_budgets(request, who.user_id))
    secret = res.settings.secret_key.get_secret_value()
    now = utcnow()
    passed: str | None = None
    async with unit_of_work(res.sessions) as session:
        if body.credential is not None:
            # One answer per challenge, even to two requests at once.
            challenge = await factors.take_challenge(session, who.session_id)
            if await factors.check_passkey(
                session,
                settings=res.settings,
                user_id=who.user_id,
                credential=body.credential,
                challenge=challenge,
                now=now,
            ):
                passed = "webauthn"
        elif body.code is not None:
            if await factors.check_totp(
                session, secret_key=secret, user_id=who.user_id, code=body.code, now=now
            ):
                passed = "totp"
            elif factors.looks_like_recovery_code(body.code) and await factors.use_recovery_code(
                session, secret_key=secret, user_id=who.user_id, code=body.code, now=now
            ):
                passed = "recovery_code"
        audit.record(
            session,
            action="second_factor.success" if passed else "second_factor.failure",
            actor_kind="staff",
            actor_id=who.user_id,
            method=passed or ("webauthn" if body.credential is not None else "code"),
        )
    if passed is None:
        raise InvalidCode()
    await reservation.succeeded()
    return passed


def code_budgets(request: Request, user_id: int) -> list[Budget]:
    """Code (or re-auth password) guesses for this account from this address."""
    cfg = resources(request).settings
    return accounts.code_budgets(cfg, user_id=user_id, ip=client_ip(request))


async def complete_sign_in(request: Request) -> Response:
    who = await require_signing_in(request, *SIGNING_IN)
    body = await parse_json(request, CodeIn)
    await check_second_factor(request, who, body)
    return await _promoted(request, who)


async def _promoted(request: Request, who: Principal, payload: Out | None = None) -> Response:
    """Replaces ``who``'s session by a fully signed-in one and sets its cookie."""
    res = resources(request)
    async with unit_of_work(res.sessions) as session:
        new = await accounts.promote(session, settings=res.settings, who=who)
        audit.record(session, action="login.success", actor_kind="staff", actor_id=who.user_id)
    body = payload.model_dump(mode="json") if payload else await me_out(request, new.principal)
    response = JSONResponse(body)
    set_session_cookie(request, response, new)
    return response


async def webauthn_sign_in_options(request: Request) -> Response:
    """Options for ``navigator.credentials.get``: to sign in, or to re-authenticate."""
    who = await require_signing_in(request, SessionStage.SECOND_FACTOR, SessionStage.FULL)
    assert who.user_id is not None
    res = resources(request)
    async with unit_of_work(res.sessions) as session:
        passkeys = [
            f
            for f in await factors.confirmed(session, who.user_id)
            if f.kind is FactorKind.WEBAUTHN
        ]
        if not passkeys:
            raise NotFound("Für dieses Konto ist kein Passkey eingerichtet.")
        options, challenge = factors.authentication_options(res.settings, passkeys)
        await factors.set_challenge(session, who.session_id, challenge)
    return Response(options, media_type="application/json")


async def reauth(request: Request) -> Response:
    """Shows the second factor (or, for an account without one, the password) again. An
    account with neither (single sign-on only) is sent to the provider (409)."""
    who = await require_staff(request)
    body = await parse_json(request, ReauthIn)
    assert who.user_id is not None
    res = resources(request)
    async with db(request)() as session:
        user = await session.get(User, who.user_id)
        has_factor = await factors.has_factor(session, who.user_id)
    assert user is not None
    if has_factor:
        await check_second_factor(request, who, body)
    elif user.password_hash is None:
        raise ReauthAtProvider(url=oidc.REAUTH_PATH)
    else:
        if body.password is None:
            raise InvalidInput("Bitte geben Sie Ihr Passwort ein.")
        reservation = await res.throttle.reserve(code_budgets(request, who.user_id))
        if not await res.passwords.verify(user.password_hash, body.password):
            raise InvalidCode("Das Passwort ist falsch.")
        await reservation.succeeded()
    async with unit_of_work(res.sessions) as session:
        await accounts.mark_verified(session, session_id=who.session_id)
    return Response(status_code=204)


async def list_factors(request: Request) -> Response:
    who = await require_signing_in(request, *ENROLLING)
    assert who.user_id is not None
    assert who.role is not None
    async with db(request)() as session:
        rows = await factors.confirmed(session, who.user_id)
        left = await factors.recovery_codes_left(session, who.user_id)
    required = resources(request).settings.second_factor_required(who.role.value)
    return respond(
        FactorsOut(
            factors=[FactorOut.model_validate(f) for f in rows],
            recovery_codes_left=left,
            required=required,
        )
    )


async def start_totp(request: Request) -> Response:
    who = await require_signing_in(request, *ENROLLING)
    require_recent_auth(request, who)
    res = resources(request)
    async with unit_of_work(res.sessions) as session:
        user = await session.get(User, who.user_id)
        assert user is not None
        enrolment = await factors.start_totp(
            session, secret_key=res.settings.secret_key.get_secret_value(), user=user
        )
    return respond(
        TotpStartOut(
            id=enrolment.factor_id, secret=enrolment.secret, uri=enrolment.uri, qr=enrolment.qr
        ),
        status=201,
    )


async def confirm_totp(request: Request) -> Response:
    who = await require_signing_in(request, *ENROLLING)
    require_recent_auth(request, who)
    factor_id = path_id(request)
    body = await parse_json(request, ConfirmIn)
    assert who.user_id is not None
    res = resources(request)
    reservation = await res.throttle.reserve(code_budgets(request, who.user_id))
    async with unit_of_work(res.sessions) as session:
        codes = await factors.confirm_totp(
            session,
            secret_key=res.settings.secret_key.get_secret_value(),
            user_id=who.user_id,
            factor_id=factor_id,
            code=body.code,
            label=body.label,
            now=utcnow(),
        )
        audit.record(
            session, action="second_factor.added", actor_kind="staff", actor_id=who.user_id
        )
    await reservation.succeeded()
    return await _enrolled(request, who, codes)


async def _enrolled(request: Request, who: Principal, codes: list[str] | None) -> Response:
    if who.stage is SessionStage.ENROL:
        return await _promoted(request, who, EnrolledOut(recovery_codes=codes, signed_in=True))
    return respond(EnrolledOut(recovery_codes=codes, signed_in=False))


async def passkey_options(request: Request) -> Response:
    """Options for ``navigator.credentials.create`` (adding a passkey)."""
    who = await require_signing_in(request, *ENROLLING)
    require_recent_auth(request, who)
    res = resources(request)
    async with unit_of_work(res.sessions) as session:
        user = await session.get(User, who.user_id)
        assert user is not None
        assert user.id is not None
        existing = await factors.confirmed(session, user.id)
        options, challenge = factors.registration_options(res.settings, user, existing)
        await factors.set_challenge(session, who.session_id, challenge)
    return Response(options, media_type="application/json")


async def add_passkey(request: Request) -> Response:
    who = await require_signing_in(request, *ENROLLING)
    require_recent_auth(request, who)
    body = await parse_json(request, PasskeyIn)
    assert who.user_id is not None
    res = resources(request)
    async with unit_of_work(res.sessions) as session:
        challenge = await factors.take_challenge(session, who.session_id)
    async with unit_of_work(res.sessions) as session:
        codes = await factors.add_passkey(
            session,
            settings=res.settings,
            user_id=who.user_id,
            credential=body.credential,
            challenge=challenge,
            label=body.label,
            now=utcnow(),
        )
        audit.record(
            session, action="second_factor.added", actor_kind="staff", actor_id=who.user_id
        )
    return await _enrolled(request, who, codes)


async def remove_factor(request: Request) -> Response:
    who = await require_staff(request)
    require_recent_auth(request, who)
    factor_id = path_id(request)
    assert who.user_id is not None
    assert who.role is not None
    required = resources(request).settings.second_factor_required(who.role.value)
    async with unit_of_work(db(request)) as session:
        await factors.remove(session, user_id=who.user_id, factor_id=factor_id, required=required)
        audit.record(
            session, action="second_factor.removed", actor_kind="staff", actor_id=who.user_id
        )
    return Response(status_code=204)


async def new_recovery_codes(request: Request) -> Response:
    who = await require_staff(request)
    require_recent_auth(request, who)
    assert who.user_id is not None
    res = resources(request)
    async with unit_of_work(res.sessions) as session:
        if not await factors.has_factor(session, who.user_id):
            raise InvalidInput("Richten Sie zuerst einen zweiten Faktor ein.")
        codes = await factors.replace_recovery_codes(
            session, secret_key=res.settings.secret_key.get_secret_value(), user_id=who.user_id
        )
        audit.record(
            session, action="recovery_codes.replaced", actor_kind="staff", actor_id=who.user_id
        )
    return respond(RecoveryCodesOut(recovery_codes=codes), status=201)


async def reset_second_factor(request: Request) -> Response:
    """An admin removes every second factor of an account (lost phone) and ends its sessions;
    its next sign-in sets one up again where the role requires it."""
    who = await require_staff(request, Role.ADMIN)
    require_recent_auth(request, who)
    user_id = path_id(request)
    async with unit_of_work(db(request)) as session:
        if await session.get(User, user_id) is None:
            raise NotFound("Dieses Konto gibt es nicht.")
        await factors.reset(session, user_id=user_id)
        await accounts.end_sessions_of(session, user_id=user_id)
        audit.record(
            session,
            action="second_factor.reset",
            actor_kind="staff",
            actor_id=who.user_id,
            target=user_id,
        )
    return Response(status_code=204)


async def list_sessions(request: Request) -> Response:
    who = await require_staff(request)
    res = resources(request)
    idle = timedelta(minutes=res.settings.session_idle_minutes)
    async with db(request)() as session:
        rows = await accounts.own_sessions(session, who=who, idle=idle)
    return respond([SessionOut.model_validate(r) for r in rows])


async def end_session(request: Request) -> Response:
    who = await require_staff(request)
    key = request.path_params["key"]
    async with unit_of_work(db(request)) as session:
        await accounts.end_own_session(session, who=who, key=key)
        audit.record(session, action="session.ended", actor_kind="staff", actor_id=who.user_id)
    response = Response(status_code=204)
    if session_key(who.session_id) == key:
        clear_session_cookie(request, response, SessionKind.STAFF)
    return response


routes = [
    api_route(
        "/api/v1/auth/second-factor",
        complete_sign_in,
        method="POST",
        summary="Finish signing in with a code, a recovery code or a passkey",
        tags=["auth"],
        body=CodeIn,
        response=MeOut,
        errors=[401, 403, 422, 429],
    ),
    api_route(
        "/api/v1/auth/second-factor/webauthn-options",
        webauthn_sign_in_options,
        method="POST",
        summary="Passkey challenge (navigator.credentials.get options) to sign in or re-auth",
        tags=["auth"],
        errors=[401, 403, 404],
    ),
    api_route(
        "/api/v1/auth/reauth",
        reauth,
        method="POST",
        summary="Confirm a sensitive action: second factor, or password without one",
        tags=["auth"],
        body=ReauthIn,
        status=204,
        errors=[401, 403, 409, 422, 429],
    ),
    api_route(
        "/api/v1/auth/sessions",
        list_sessions,
        summary="The signed-in staff member's open sessions",
        tags=["auth"],
        response=SessionOut,
        many=True,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/auth/sessions/{key}",
        end_session,
        method="DELETE",
        summary="End one of one's own sessions (the current one logs out)",
        tags=["auth"],
        status=204,
        errors=[401, 403, 404],
    ),
    api_route(
        "/api/v1/account/second-factors",
        list_factors,
        summary="One's second factors and recovery codes left",
        tags=["auth"],
        response=FactorsOut,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/account/second-factors/totp",
        start_totp,
        method="POST",
        summary="Start setting up an authenticator app (secret and QR code)",
        tags=["auth"],
        response=TotpStartOut,
        status=201,
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/account/second-factors/totp/{id:int}/confirm",
        confirm_totp,
        method="POST",
        summary="Confirm the authenticator app with its first code",
        tags=["auth"],
        body=ConfirmIn,
        response=EnrolledOut,
        errors=[401, 403, 404, 422, 429],
    ),
    api_route(
        "/api/v1/account/second-factors/webauthn-options",
        passkey_options,
        method="POST",
        summary="Passkey registration options (navigator.credentials.create)",
        tags=["auth"],
        errors=[401, 403],
    ),
    api_route(
        "/api/v1/account/second-factors/webauthn",
        add_passkey,
        method="POST",
        summary="Add a passkey or security key",
        tags=["auth"],
        body=PasskeyIn,
        response=EnrolledOut,
        errors=[401, 403, 409, 422],
    ),
    api_route(
        "/api/v1/account/second-factors/{id:int}",
        remove_factor,
        method="DELETE",
        summary="Remove a second factor (not the last one where the role requires one)",
        tags=["auth"],
        status=204,
        errors=[401, 403, 404, 409],
    ),
    api_route(
        "/api/v1/account/recovery-codes",
        new_recovery_codes,
        method="POST",
        summary="Replace the recovery codes (the old ones stop working)",
        tags=["auth"],
        response=RecoveryCodesOut,
        status=201,
        errors=[401, 403, 422],
    ),
    api_route(
        "/api/v1/admin/users/{id:int}/second-factor-reset",
        reset_second_factor,
        method="POST",
        summary="Remove every second factor of an account and end its sessions",
        tags=["admin"],
        status=204,
        errors=[401, 403, 404],
    ),
]
