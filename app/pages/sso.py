"""Single sign-on in the browser: ``/auth/oidc/login``, ``/auth/oidc/reauth`` and
``/auth/oidc/callback``.

The login sends the browser to the provider with ``state``, ``nonce`` and a PKCE challenge.
What the callback needs (nonce, code verifier, where to go afterwards) waits in the broker
under the state for ten minutes and is taken exactly once; it is bound to the browser that
started the login by a random value in a short-lived HttpOnly, SameSite=Lax cookie (only its
hash is stored; a new value for every start, deleted at the callback; ``__Host-`` over HTTPS
like the session cookies). A callback that fails for any reason gets a page that says what to
do (4xx, or 503 if the provider cannot be reached) and one audit row with the reason and no
personal data.

The re-authentication of an account that signs in only through the provider (no password, no
second factor of its own) is the same flow with ``prompt=login`` and ``max_age=0``: the
provider must ask again, its id_token's ``auth_time`` must be after the flow began, and the
person must be the one bound to the signed-in account. Then the session counts as freshly
confirmed (``require_recent_auth``).

Every start takes an attempt from the address's budget (``app.throttle``), and so does every
callback that belongs to no flow of this browser: a stranger cannot flood the provider and the
broker through Konsil (429 and a page that says so). A completed sign-in gives its attempt
back, so staff behind one hospital address do not run the budget down.
"""

from __future__ import annotations

import math
import time
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from app.accounts import oidc
from app.accounts import service as accounts
from app.accounts.models import SessionKind, SessionStage, User
from app.accounts.oidc_client import OidcClient, new_secret
from app.accounts.service import NewSession
from app.accounts.web import client_ip, principal, set_session_cookie
from app.audit import service as audit
from app.db import unit_of_work
from app.errors import SsoFailed, SsoRefused, SsoUnavailable, TooManyAttempts
from app.logging import get_logger
from app.pages.errors import error_page
from app.pages.i18n import N_, translations
from app.pages.i18n import language as page_language
from app.pages.navigation import HOME_BY_ROLE, safe_next
from app.pages.templating import render
from app.resources import Resources, resources
from app.scheduling import availability
from app.settings import Settings
from app.throttle import Budget, OnSuccess
from app.tokens import new_token, same, session_key, token_hash

log = get_logger("konsil.oidc")

LOGIN_PATH = "/auth/oidc/login"
REAUTH_PATH = oidc.REAUTH_PATH
CALLBACK_PATH = "/auth/oidc/callback"
FLOW_COOKIE = "konsil_oidc"
FLOW_SECONDS = 600
MAX_PARAM = 4096

# Page texts by failure reason (message ids, translated when rendered).
FAILED = N_("Sign-in with the hospital account failed")
REFUSED = N_("No access with this hospital account")
UNREACHABLE = N_("Hospital sign-in not reachable")
TOO_MANY = N_("Too many sign-ins")
CONFIRM_FAILED = N_("Confirmation with the hospital account failed")
BUTTON = N_("Log in with hospital account")
TEXTS: dict[str, str] = {
    "state": N_(
        "This sign-in has already been used, has expired or was started in another browser. "
        "Please start the sign-in again."
    ),
    "provider_error": N_("The sign-in at the hospital was cancelled or refused."),
    "code_rejected": N_(
        "The hospital's sign-in service did not accept the sign-in code (it may have been used "
        "already). Please start the sign-in again."
    ),
    "token": N_(
        "The hospital's sign-in could not be verified. Please start the sign-in again; if this "
        "happens again, please tell your IT department."
    ),
    "role": N_(
        "Your hospital account has no role in Konsil. Please ask your IT department for access."
    ),
    "role_ambiguous": N_(
        "Your hospital account has more than one role in Konsil. Please ask your IT department "
        "to leave only one."
    ),
    "role_mismatch": N_(
        "The role of your hospital account does not match your Konsil account. Please contact "
        "the Konsil administration."
    ),
    "inactive": N_("Your Konsil account is deactivated. Please contact the Konsil administration."),
    "no_account": N_(
        "There is no Konsil account for your hospital account. Please ask the Konsil "
        "administration to create one."
    ),
    "email_unverified": N_(
        "Your hospital account has no confirmed e-mail address, so it cannot be linked to a "
        "Konsil account."
    ),
    "identity_conflict": N_(
        "This Konsil account is already linked to another hospital account. Please contact the "
        "Konsil administration."
    ),
    "practice": N_(
        "Your hospital account names no known practice; GP accounts need one. Please contact "
        "your IT department."
    ),
    "specialty": N_(
        "Your hospital account names no known specialty; specialist accounts need one. Please "
        "contact your IT department."
    ),
    "assurance": N_(
        "Konsil requires a sign-in with a second factor at the hospital. Please sign in again "
        "with your second factor."
    ),
    "unavailable": N_(
        "The hospital's sign-in service cannot be reached right now. Please try again later or "
        "log in with your password."
    ),
    "too_many": N_(
        "Too many sign-ins were started from your network and not completed. Please wait a few "
        "minutes and try again."
    ),
    "reauth": N_(
        "The hospital's sign-in did not confirm that you signed in again just now. Please try "
        "again; if this happens again, please tell your IT department."
    ),
    "reauth_session": N_("Your Konsil session has ended meanwhile. Please sign in again."),
    "not_linked": N_(
        "Your Konsil account is not linked to a hospital account. Please confirm with your "
        "password or second factor."
    ),
}


class Flow(BaseModel):
    """What the callback of one login needs, kept in the broker under its state."""

    nonce: str
    verifier: str
    browser: str  # hash of the flow cookie's value
    next: str
    # A re-authentication: the session key of the session to confirm (else a login).
    reauth: str | None = None
    started: float = 0.0  # when the flow began (seconds since the epoch): auth_time after it


def flow_cookie_name(cfg: Settings) -> str:
    """The flow cookie's name: ``__Host-`` over HTTPS, as the session cookies."""
    return f"__Host-{FLOW_COOKIE}" if cfg.cookie_secure else FLOW_COOKIE


def sso_budgets(cfg: Settings, request: Request) -> list[Budget]:
    """Single sign-ons started or called back from this address (login throttle numbers)."""
    policy = accounts.login_policy(
        cfg, "sso-address", cfg.login_free_attempts_shared, OnSuccess.REFUND
    )
    return [Budget(policy, client_ip(request) or "unknown")]


def callback_url(settings: Settings) -> str:
    return settings.base_url.rstrip("/") + CALLBACK_PATH


def login_url(next_url: str | None) -> str:
    """The login button's target."""
    return LOGIN_PATH + (f"?{urlencode({'next': next_url})}" if next_url else "")


def _flow_key(state: str) -> str:
    return f"konsil:oidc:flow:{token_hash(state)}"


def login_button(request: Request, next_url: str | None) -> dict[str, str] | None:
    """The login page's single sign-on button (label and target), None without SSO."""
    cfg = resources(request).settings
    if not cfg.oidc_enabled:
        return None
    label = cfg.oidc_button_label or translations(page_language(request)).gettext(BUTTON)
    return {"label": label, "href": login_url(next_url)}


async def sso_login(request: Request) -> Response:
    """Starts a single sign-on: to the provider, with state, nonce and PKCE."""
    res = resources(request)
    if res.oidc is None:
        return error_page(request, 404)
    next_url = safe_next(request.query_params.get("next")) or ""
    return await _start(request, res, res.oidc, Flow(next=next_url, **_secrets()))


async def sso_reauth(request: Request) -> Response:
    """Confirms a sensitive action of an account that signs in through the provider: a new
    sign-in there, whatever session the provider still has."""
    res = resources(request)
    if res.oidc is None:
        return error_page(request, 404)
    next_url = safe_next(request.query_params.get("next")) or "/account"
    who = await principal(request, SessionKind.STAFF)
    if who is None:
        return RedirectResponse(f"/login?next={quote(next_url, safe='')}", status_code=303)
    async with res.sessions() as session:
        user = await session.get(User, who.user_id)
    if user is None or user.oidc_issuer is None or user.oidc_issuer.rstrip("/") != res.oidc.issuer:
        return _page(request, CONFIRM_FAILED, TEXTS["not_linked"], 409)
    flow = Flow(next=next_url, reauth=session_key(who.session_id), **_secrets())
    return await _start(request, res, res.oidc, flow)


def _secrets() -> dict[str, Any]:
    return {"nonce": new_secret(), "verifier": new_secret(), "browser": "", "started": time.time()}


async def _start(request: Request, res: Resources, client: OidcClient, flow: Flow) -> Response:
    budgets = sso_budgets(res.settings, request)
    try:
        reservation = await res.throttle.reserve(budgets)
    except TooManyAttempts as exc:
        return _too_many(request, exc)
    # A fresh value for every flow: no two flows share a cookie, and an old one is worthless.
    browser = new_token()
    flow = flow.model_copy(update={"browser": token_hash(browser)})
    state = new_secret()
    try:
        url = await client.authorization_url(
            redirect_uri=callback_url(res.settings),
            state=state,
            nonce=flow.nonce,
            code_verifier=flow.verifier,
            fresh_login=flow.reauth is not None,
        )
    except SsoFailed as exc:
        await reservation.release()  # nothing was started
        return await _failed(request, exc)
    # The attempt stays taken until the callback completes the sign-in and gives it back.
    await res.broker.put(_flow_key(state), flow.model_dump_json().encode(), FLOW_SECONDS)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        flow_cookie_name(res.settings),
        browser,
        max_age=FLOW_SECONDS,
        path="/",
        secure=res.settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


async def sso_callback(request: Request) -> Response:
    """The provider sends the browser back here with a code (or an error)."""
    res = resources(request)
    if res.oidc is None:
        return error_page(request, 404)
    budgets = sso_budgets(res.settings, request)
    try:
        reservation = await res.throttle.reserve(budgets)
    except TooManyAttempts as exc:
        return _forget_flow(request, _too_many(request, exc))
    try:
        flow = await _take_flow(request, res)
        # A callback of a flow this browser started: the flow's attempt is the one that counts.
        await reservation.release()
        claims = await _claims(request, res, res.oidc, flow)
        if flow.reauth is not None:
            response = await _confirmed(request, res, flow, claims)
        else:
            response = await _signed_in(request, res, flow, claims)
    except SsoFailed as exc:
        return _forget_flow(request, await _failed(request, exc))
    await res.throttle.give_back(budgets)  # completed: the flow's attempt comes back
    return _forget_flow(request, response)


async def _signed_in(
    request: Request, res: Resources, flow: Flow, claims: dict[str, Any]
) -> Response:
    new = await _sign_in(res, claims)
    home = HOME_BY_ROLE.get(new.principal.role, "/") if new.principal.role else "/"
    target = flow.next or home
    if new.principal.stage is SessionStage.SECOND_FACTOR:
        target = f"/login?next={quote(target, safe='')}"
    elif new.principal.stage is SessionStage.ENROL:
        target = f"/account?next={quote(target, safe='')}"
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, new)
    return response


def _forget_flow(request: Request, response: Response) -> Response:
    cfg = resources(request).settings
    response.delete_cookie(
        flow_cookie_name(cfg), path="/", secure=cfg.cookie_secure, httponly=True, samesite="lax"
    )
    return response


async def _take_flow(request: Request, res: Resources) -> Flow:
    """The flow this callback completes, started by this browser (taken: used once)."""
    state = request.query_params.get("state", "")
    if not state or len(state) > MAX_PARAM:
        raise SsoFailed("state")
    raw = await res.broker.take(_flow_key(state))  # single use, whatever happens next
    if raw is None:
        raise SsoFailed("state")
    flow = Flow.model_validate_json(raw)
    cookie = request.cookies.get(flow_cookie_name(res.settings), "")
    if not same(token_hash(cookie), flow.browser):
        raise SsoFailed("browser")
    return flow


async def _claims(
    request: Request, res: Resources, client: OidcClient, flow: Flow
) -> dict[str, Any]:
    """The validated claims of the id_token that the callback's code is exchanged for."""
    params = request.query_params
    if "error" in params:
        raise SsoFailed("provider_error")
    # RFC 9207: a provider that names itself must be ours (mix-up attacks).
    if "iss" in params and params["iss"].rstrip("/") != client.issuer:
        raise SsoFailed("issuer")
    code = params.get("code", "")
    if not code or len(code) > MAX_PARAM:
        raise SsoFailed("code_missing")
    redirect_uri = callback_url(res.settings)
    token = await client.exchange(code=code, code_verifier=flow.verifier, redirect_uri=redirect_uri)
    return await client.id_token_claims(
        token["id_token"], nonce=flow.nonce, access_token=token.get("access_token")
    )


async def _sign_in(res: Resources, claims: dict[str, Any]) -> NewSession:
    person = oidc.identity(claims, res.settings)
    async with unit_of_work(res.sessions) as session:
        specialties = {s.slug: s.id for s in await availability.list_specialties(session)}
        new, action = await oidc.sign_in(
            session, settings=res.settings, person=person, specialties=specialties
        )
        audit.record(
            session,
            action="sso.login.success",
            actor_kind="staff",
            actor_id=new.principal.user_id,
            how=action.value,
        )
    return new


async def _confirmed(
    request: Request, res: Resources, flow: Flow, claims: dict[str, Any]
) -> Response:
    """A re-authentication at the provider: fresh, by the account's own person, for the session
    that asked. The session then counts as confirmed just now."""
    who = await principal(request, SessionKind.STAFF)
    if who is None or not same(session_key(who.session_id), flow.reauth or ""):
        raise SsoFailed("reauth_session")
    auth_time = claims.get("auth_time")
    leeway = res.settings.oidc_clock_leeway_seconds
    if (
        isinstance(auth_time, bool)
        or not isinstance(auth_time, int | float)
        or not math.isfinite(auth_time)
        or auth_time < flow.started - leeway
    ):
        raise SsoFailed("auth_time")  # the provider did not ask again
    async with unit_of_work(res.sessions) as session:
        user = await session.get(User, who.user_id)
        if user is None or (user.oidc_issuer, user.oidc_subject) != (
            str(claims["iss"]),
            str(claims["sub"]),
        ):
            raise SsoRefused("reauth_identity")
        await accounts.mark_verified(session, session_id=who.session_id)
        audit.record(
            session, action="reauth.success", actor_kind="staff", actor_id=who.user_id, how="sso"
        )
    return RedirectResponse(flow.next or "/account", status_code=303)


def _too_many(request: Request, exc: TooManyAttempts) -> Response:
    log.info("oidc.throttled")
    response = _page(request, TOO_MANY, TEXTS["too_many"], 429)
    response.headers["Retry-After"] = str(exc.detail.get("retry_after", 60))
    return response


def _page(request: Request, title: str, text: str, status: int) -> Response:
    return render(request, "sso_error.html", {"title": title, "text": text}, status=status)


async def _failed(request: Request, exc: SsoFailed) -> Response:
    log.info("oidc.login_failed", reason=exc.reason)
    async with unit_of_work(resources(request).sessions) as session:
        audit.record(session, action="sso.login.failure", actor_kind="anonymous", reason=exc.reason)
    if isinstance(exc, SsoUnavailable):
        title, text = UNREACHABLE, TEXTS["unavailable"]
    elif exc.reason in ("auth_time", "reauth_identity", "reauth_session"):
        title = CONFIRM_FAILED
        text = TEXTS["reauth_session" if exc.reason == "reauth_session" else "reauth"]
    else:
        title = REFUSED if isinstance(exc, SsoRefused) else FAILED
        text = TEXTS.get(_page_reason(exc.reason), TEXTS["token"])
    return _page(request, title, text, exc.status)


def _page_reason(reason: str) -> str:
    if reason in ("browser",):
        return "state"
    if reason in ("token_response", "code_missing"):
        return "code_rejected"
    return reason


routes: list[BaseRoute] = [
    Route(LOGIN_PATH, sso_login),
    Route(REAUTH_PATH, sso_reauth),
    Route(CALLBACK_PATH, sso_callback),
]
