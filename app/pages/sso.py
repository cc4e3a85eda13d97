"""Single sign-on in the browser: ``/auth/oidc/login`` and ``/auth/oidc/callback``.

The login sends the browser to the provider with ``state``, ``nonce`` and a PKCE challenge.
What the callback needs (nonce, code verifier, where to go afterwards) waits in the broker
under the state for ten minutes and is taken exactly once; it is bound to the browser that
started the login by a random value in a short-lived HttpOnly, SameSite=Lax cookie (only its
hash is stored). A callback that fails for any reason gets a page that says what to do (4xx,
or 503 if the provider cannot be reached) and one audit row with the reason and no personal
data.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from app.accounts import oidc
from app.accounts.models import SessionStage
from app.accounts.oidc_client import OidcClient, new_secret
from app.accounts.service import NewSession
from app.accounts.web import set_session_cookie
from app.audit import service as audit
from app.db import unit_of_work
from app.errors import SsoFailed, SsoRefused, SsoUnavailable
from app.logging import get_logger
from app.pages.errors import error_page
from app.pages.i18n import N_, translations
from app.pages.i18n import language as page_language
from app.pages.navigation import HOME_BY_ROLE, safe_next
from app.pages.templating import render
from app.resources import Resources, resources
from app.scheduling import availability
from app.settings import Settings
from app.tokens import new_token, same, token_hash

log = get_logger("konsil.oidc")

LOGIN_PATH = "/auth/oidc/login"
CALLBACK_PATH = "/auth/oidc/callback"
FLOW_COOKIE = "konsil_oidc"
FLOW_COOKIE_PATH = "/auth/oidc/"
FLOW_SECONDS = 600
MAX_PARAM = 4096

# Page texts by failure reason (message ids, translated when rendered).
FAILED = N_("Sign-in with the hospital account failed")
REFUSED = N_("No access with this hospital account")
UNREACHABLE = N_("Hospital sign-in not reachable")
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
}


class Flow(BaseModel):
    """What the callback of one login needs, kept in the broker under its state."""

    nonce: str
    verifier: str
    browser: str  # hash of the flow cookie's value
    next: str


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
    browser = request.cookies.get(FLOW_COOKIE, "")
    if not (20 <= len(browser) <= 64 and browser.replace("-", "").replace("_", "").isalnum()):
        browser = new_token()
    state, flow = (
        new_secret(),
        Flow(
            nonce=new_secret(),
            verifier=new_secret(),
            browser=token_hash(browser),
            next=safe_next(request.query_params.get("next")) or "",
        ),
    )
    try:
        url = await res.oidc.authorization_url(
            redirect_uri=callback_url(res.settings),
            state=state,
            nonce=flow.nonce,
            code_verifier=flow.verifier,
        )
    except SsoFailed as exc:
        return await _failed(request, exc)
    await res.broker.put(_flow_key(state), flow.model_dump_json().encode(), FLOW_SECONDS)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLOW_COOKIE,
        browser,
        max_age=FLOW_SECONDS,
        path=FLOW_COOKIE_PATH,
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
    try:
        new, next_url = await _complete(request, res, res.oidc)
    except SsoFailed as exc:
        return await _failed(request, exc)
    home = HOME_BY_ROLE.get(new.principal.role, "/") if new.principal.role else "/"
    target = next_url or home
    if new.principal.stage is SessionStage.SECOND_FACTOR:
        target = f"/login?next={quote(target, safe='')}"
    elif new.principal.stage is SessionStage.ENROL:
        target = f"/account?next={quote(target, safe='')}"
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, new)
    response.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH, httponly=True, samesite="lax")
    return response


async def _complete(request: Request, res: Resources, client: OidcClient) -> tuple[NewSession, str]:
    params = request.query_params
    state = params.get("state", "")
    if not state or len(state) > MAX_PARAM:
        raise SsoFailed("state")
    raw = await res.broker.take(_flow_key(state))  # single use, whatever happens next
    if raw is None:
        raise SsoFailed("state")
    flow = Flow.model_validate_json(raw)
    if not same(token_hash(request.cookies.get(FLOW_COOKIE, "")), flow.browser):
        raise SsoFailed("browser")
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
    claims = await client.id_token_claims(
        token["id_token"], nonce=flow.nonce, access_token=token.get("access_token")
    )
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
    return new, flow.next


async def _failed(request: Request, exc: SsoFailed) -> Response:
    log.info("oidc.login_failed", reason=exc.reason)
    async with unit_of_work(resources(request).sessions) as session:
        audit.record(session, action="sso.login.failure", actor_kind="anonymous", reason=exc.reason)
    if isinstance(exc, SsoUnavailable):
        title, text = UNREACHABLE, TEXTS["unavailable"]
    else:
        title = REFUSED if isinstance(exc, SsoRefused) else FAILED
        text = TEXTS.get(_page_reason(exc.reason), TEXTS["token"])
    return render(
        request,
        "sso_error.html",
        {"title": title, "text": text},
        status=exc.status,
    )


def _page_reason(reason: str) -> str:
    if reason in ("browser",):
        return "state"
    if reason in ("token_response", "code_missing"):
        return "code_rejected"
    return reason


routes: list[BaseRoute] = [
    Route(LOGIN_PATH, sso_login),
    Route(CALLBACK_PATH, sso_callback),
]
