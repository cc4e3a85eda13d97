"""Error pages: HTML for people in browsers, the JSON error shape for the API.

Wraps the JSON handlers of ``app.errors``: anything under ``/api/`` (and any client that asks
for JSON only) keeps ``{"error": {...}}``; a browser gets a page in its language.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app import errors
from app.pages.i18n import N_
from app.pages.templating import render

Handler = Callable[[Request, Exception], Awaitable[Response]]

JSON_PREFIXES = ("/api/", "/ws", "/openapi.json", "/healthz", "/readyz", "/metrics")
# status -> (title, explanation); message ids, translated when rendered.
PAGES: dict[int, tuple[str, str]] = {
    403: (N_("Access denied"), N_("You are not allowed to open this page.")),
    404: (N_("Page not found"), N_("This page does not exist. Please check the address.")),
    405: (N_("Page not found"), N_("This page does not exist. Please check the address.")),
    410: (N_("Link expired"), N_("This link is no longer valid.")),
    500: (N_("Something went wrong"), N_("An internal error occurred. Please try again later.")),
    # The database could not be reached for a moment (a restart): try again.
    503: (N_("Something went wrong"), N_("An internal error occurred. Please try again later.")),
}


def wants_html(request: Request) -> bool:
    if request.url.path.startswith(JSON_PREFIXES) or request.url.path == "/api":
        return False
    accept = request.headers.get("accept", "")
    return not ("application/json" in accept and "text/html" not in accept)


def error_page(request: Request, status: int) -> Response:
    title, text = PAGES.get(status, PAGES[500])
    return render(request, "error.html", {"title": title, "text": text}, status=status)


def _html_or(json_handler: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        if not wants_html(request):
            return await json_handler(request, exc)
        if isinstance(exc, HTTPException):
            status = exc.status_code
        elif isinstance(exc, errors.KonsilError):
            status = exc.status
        else:
            # The JSON handler logs what it must (a database error's traceback).
            status = (await json_handler(request, exc)).status_code
        return error_page(request, status if status in PAGES else 500)

    return handle


def exception_handlers(
    base: Mapping[type[Exception], Handler],
) -> dict[type[Exception], Handler]:
    """``app.api.EXCEPTION_HANDLERS`` with HTML pages for browsers on non-API paths.

    Validation errors stay JSON: only API endpoints parse request bodies.
    """
    return {
        exc_type: handler if issubclass(exc_type, ValidationError) else _html_or(handler)
        for exc_type, handler in base.items()
    }
