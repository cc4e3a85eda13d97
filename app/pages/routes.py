"""HTML pages for patients, GPs and specialists, their static files and the JS catalog.

Pages are thin shells: they render the layout, the labels and a few ``data-`` attributes; the
page modules in ``frontend/static`` talk to the JSON API. Staff pages check the session and
the role here, so a wrong role gets a clear page instead of a half-working one.
"""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from app.accounts import service as accounts
from app.accounts.models import Role, SessionKind, SessionStage
from app.accounts.service import Principal
from app.accounts.web import principal
from app.api import path_id
from app.billing.ebm import recent_quarters
from app.db import utcnow
from app.pages import i18n, sso
from app.pages.errors import error_page
from app.pages.legal import routes as legal_routes
from app.pages.navigation import HOME_BY_ROLE, safe_next
from app.pages.security import allow_screen_capture
from app.pages.static import file_exists, static_mount
from app.pages.templating import render, static_version
from app.resources import db, resources, settings
from app.rooms.state import BEGUN


async def staff_page(request: Request, role: Role) -> Principal | Response:
    """The logged-in staff member with ``role``, or the response to send instead."""
    who = await principal(request, SessionKind.STAFF)
    if who is None:
        return login_redirect(request)
    if who.role is not role:
        return error_page(request, 403)
    return who


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


async def reauth_kind(request: Request, session: AsyncSession, user_id: int | None) -> str:
    """How the page's re-auth dialog (reauth.js) confirms: ``"provider"`` for an account that
    signs in only at the hospital's OpenID provider, else "" (a code, a passkey, a password)."""
    if user_id is None or resources(request).oidc is None:
        return ""
    return "provider" if await accounts.confirms_at_provider(session, user_id=user_id) else ""


def billing_export(request: Request) -> dict[str, object]:
    """What the EBM download form needs (``_billing_export.html``): this quarter and the four
    before it (older ones are mostly deleted by retention), and the retention period."""
    cfg = settings(request)
    today = utcnow().astimezone(cfg.tz).date()
    return {
        "billing_quarters": [str(q) for q in recent_quarters(today, 5)],
        "retention_days": cfg.retention_metadata_days,
    }


def page(request: Request, name: str, who: Principal, nav: str, **context: object) -> Response:
    values = {"principal": who, "csrf_token": who.csrf_token, "nav": nav, **context}
    return render(request, name, values)


async def home(request: Request) -> Response:
    who = await principal(request, SessionKind.STAFF)
    if who is not None and who.role in HOME_BY_ROLE:
        return RedirectResponse(HOME_BY_ROLE[who.role], status_code=303)
    return render(request, "home.html", {"principal": who})


async def login_page(request: Request) -> Response:
    who = await principal(request, SessionKind.STAFF, signing_in=True)
    next_url = safe_next(request.query_params.get("next"))
    if who is not None and who.stage is SessionStage.ENROL:
        return RedirectResponse(f"/account?next={quote(next_url or '/', safe='')}", 303)
    if who is not None and who.stage is SessionStage.FULL and who.role in HOME_BY_ROLE:
        return RedirectResponse(next_url or HOME_BY_ROLE[who.role], status_code=303)
    # Signed in with the password or the hospital's provider, waiting for the second factor:
    # the page opens at that step.
    waiting = who is not None and who.stage is SessionStage.SECOND_FACTOR
    return render(
        request,
        "login.html",
        {
            "next_url": next_url or "",
            "sso": sso.login_button(request, next_url),
            "second_factor": waiting,
            "csrf_token": who.csrf_token if who is not None and waiting else "",
        },
    )


async def account_page(request: Request) -> Response:
    """Second factors and sessions; right after the password also the compulsory set-up."""
    who = await principal(request, SessionKind.STAFF, signing_in=True)
    if who is None or who.stage is SessionStage.SECOND_FACTOR:
        return login_redirect(request)
    next_url = safe_next(request.query_params.get("next")) or ""
    async with db(request)() as session:
        reauth = await reauth_kind(request, session, who.user_id)
    return page(request, "account.html", who, "account", next_url=next_url, reauth=reauth)


async def join_page(request: Request) -> Response:
    # The connection check module ships separately; the page works without it.
    share = settings(request).patient_screen_share
    response = render(
        request,
        "join.html",
        {"nav": "join", "precheck": file_exists("precheck.js"), "screen_share": share},
    )
    return allow_screen_capture(response) if share else response


async def guest_page(request: Request) -> Response:
    """The invited guest's page (interpreter, carer); the link's token is in the fragment."""
    return render(request, "guest.html", {"nav": "join"})


async def catalog(request: Request) -> Response:
    lang = request.path_params["lang"]
    if lang not in i18n.LANGUAGES:
        return JSONResponse({"error": {"code": "not_found", "message": "Nicht gefunden."}}, 404)
    versioned = request.query_params.get("v") == static_version()
    return JSONResponse(
        i18n.js_catalog(lang),
        headers={
            "Cache-Control": "public, max-age=31536000, immutable" if versioned else "no-cache"
        },
    )


async def gp_search(request: Request) -> Response:
    who = await staff_page(request, Role.GP)
    if isinstance(who, Response):
        return who
    config = settings(request)
    return page(
        request,
        "gp/search.html",
        who,
        "gp",
        mail_configured=config.mail_configured,
        sms_configured=config.sms_configured,
        reminders=[f"{m // 60} h" if m % 60 == 0 else f"{m} min" for m in config.reminders],
        on_call_claim_minutes=config.on_call_claim_minutes,
    )


async def gp_appointments(request: Request) -> Response:
    who = await staff_page(request, Role.GP)
    if isinstance(who, Response):
        return who
    return page(request, "gp/appointments.html", who, "gp-appointments", **billing_export(request))


async def gp_appointment(request: Request) -> Response:
    who = await staff_page(request, Role.GP)
    if isinstance(who, Response):
        return who
    appointment_id = path_id(request, "appointment_id")
    return page(
        request, "gp/appointment.html", who, "gp-appointments", appointment_id=appointment_id
    )


async def specialist_queue(request: Request) -> Response:
    who = await staff_page(request, Role.SPECIALIST)
    if isinstance(who, Response):
        return who
    return page(request, "specialist/queue.html", who, "specialist")


async def specialist_availability(request: Request) -> Response:
    who = await staff_page(request, Role.SPECIALIST)
    if isinstance(who, Response):
        return who
    return page(
        request,
        "specialist/availability.html",
        who,
        "specialist-availability",
        **billing_export(request),
    )


async def specialist_appointment(request: Request) -> Response:
    who = await staff_page(request, Role.SPECIALIST)
    if isinstance(who, Response):
        return who
    appointment_id = path_id(request, "appointment_id")
    return page(
        request,
        "specialist/appointment.html",
        who,
        "specialist",
        appointment_id=appointment_id,
        begun_states=" ".join(sorted(BEGUN)),
    )


async def staff_call(request: Request) -> Response:
    """The call page for the appointment's specialist or booking GP (the API checks which)."""
    who = await principal(request, SessionKind.STAFF)
    if who is None:
        return login_redirect(request)
    if who.role not in (Role.GP, Role.SPECIALIST):
        return error_page(request, 403)
    nav = "specialist" if who.role is Role.SPECIALIST else "gp-appointments"
    appointment_id = path_id(request, "appointment_id")
    response = page(request, "call.html", who, nav, appointment_id=appointment_id)
    return allow_screen_capture(response)


routes: list[BaseRoute] = [
    Route("/", home),
    Route("/login", login_page),
    Route("/account", account_page),
    *sso.routes,
    Route("/join", join_page),
    Route("/guest", guest_page),
    Route("/i18n/{lang}.json", catalog),
    Route("/gp", gp_search),
    Route("/gp/appointments", gp_appointments),
    Route("/gp/appointments/{appointment_id:int}", gp_appointment),
    Route("/specialist", specialist_queue),
    Route("/specialist/availability", specialist_availability),
    Route("/specialist/appointments/{appointment_id:int}", specialist_appointment),
    Route("/call/{appointment_id:int}", staff_call),
    *legal_routes,
    static_mount(),
]
