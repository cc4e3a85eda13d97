"""The admin's pages: accounts, practices, specialties and the audit log. Thin shells like the
other pages: the page scripts (``frontend/static/admin-*.js``) call the JSON API."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from app.accounts import factors
from app.accounts.models import Role
from app.pages.routes import page, reauth_kind, staff_page
from app.resources import db

PAGES = {
    "/admin": ("admin/index.html", "admin"),
    "/admin/accounts": ("admin/accounts.html", "admin-accounts"),
    "/admin/practices": ("admin/practices.html", "admin-practices"),
    "/admin/specialties": ("admin/specialties.html", "admin-specialties"),
    "/admin/audit": ("admin/audit.html", "admin-audit"),
}


async def admin_page(request: Request) -> Response:
    who = await staff_page(request, Role.ADMIN)
    if isinstance(who, Response):
        return who
    template, nav = PAGES[request.url.path]
    assert who.user_id is not None
    async with db(request)() as session:
        kinds = {f.kind.value for f in await factors.confirmed(session, who.user_id)}
        reauth = await reauth_kind(request, session, who.user_id)
    # The re-auth dialog (reauth.js) asks for what the admin has: a code, a passkey or,
    # without a second factor, the password (or a new sign-in at the hospital's provider).
    return page(request, template, who, nav, factor_kinds=" ".join(sorted(kinds)), reauth=reauth)


routes: list[BaseRoute] = [Route(path, admin_page) for path in PAGES]
