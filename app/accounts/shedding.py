"""Load shedding for the login: while the password workers are saturated, or as many logins as
they could take are already under way, a login is refused before its body is read, routed or
parsed.

Under a flood of bogus logins almost every request is such a refusal, so its cost decides how
much of the event loop is left for everybody else (issue 9, docs/performance.md "Login flood").
The refusal is the same ``503`` with ``Retry-After`` the route would give, paced like every
refusal (``app.throttle.paced_refusals``).
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.accounts.web import LOGIN_PATH
from app.api import konsil_error_handler
from app.errors import Unavailable
from app.resources import Resources
from app.throttle import paced_refusals


class LoginShedding:
    """Inside the security headers (the refusal carries them), outside routing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # (No frame of its own around other requests: see ``RequestMetricsMiddleware``.)
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == LOGIN_PATH:
            res: Resources | None = getattr(scope["app"].state, "resources", None)
            if res is not None:
                return self._login(res, scope, receive, send)
        return self.app(scope, receive, send)

    async def _login(self, res: Resources, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with paced_refusals(res.settings.login_refusal_pace_seconds):
                res.passwords.enter_login()
        except Unavailable as refusal:
            response = await konsil_error_handler(Request(scope), refusal)
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            res.passwords.leave_login()
