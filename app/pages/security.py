"""Security headers on every response: a strict Content-Security-Policy and friends.

Pure ASGI (no BaseHTTPMiddleware): it only adds headers to ``http.response.start`` and never
buffers bodies, so websockets and streaming responses pass through untouched. Pages carry no
inline script or style, so the policy needs neither nonces nor ``'unsafe-inline'``.

``Cache-Control: no-store`` is the default: API answers and pages can carry health data, so no
route has to remember it. Only responses that set their own (static assets, the translation
catalogue) opt out.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings


def content_security_policy(settings: Settings) -> str:
    """The policy; websockets may only go back to our own origin (from ``base_url``)."""
    scheme, _, rest = settings.base_url.partition("://")
    host = rest.split("/", 1)[0]
    ws_origin = ("wss://" if scheme == "https" else "ws://") + host
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            "media-src 'self' blob:",
            f"connect-src 'self' {ws_origin}",
            "font-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


def permissions_policy(*, display_capture: bool = False) -> str:
    """Camera and microphone for our own pages. Screen capture is denied everywhere except on
    the pages that offer screen sharing (the staff call page; the patient's with
    ``KONSIL_PATIENT_SCREEN_SHARE``): their routes set ``display_capture=True`` themselves."""
    capture = "(self)" if display_capture else "()"
    return (
        f"camera=(self), microphone=(self), display-capture={capture}, geolocation=(), "
        "payment=(), usb=(), interest-cohort=()"
    )


def allow_screen_capture(response: Response) -> Response:
    """This page may call ``getDisplayMedia``; the middleware keeps a header a route set."""
    response.headers["Permissions-Policy"] = permissions_policy(display_capture=True)
    return response


def security_headers(settings: Settings) -> list[tuple[str, str]]:
    headers = [
        ("Content-Security-Policy", content_security_policy(settings)),
        # The patient's join link is a bearer secret: it must never leave in a Referer.
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Cache-Control", "no-store"),
        ("Permissions-Policy", permissions_policy()),
    ]
    if settings.base_url.startswith("https://"):
        headers.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    return headers


class SecurityHeadersMiddleware:
    """Adds ``security_headers(settings)`` to every HTTP response that lacks them."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = security_headers(settings)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # (No frame of its own around a websocket: see ``RequestMetricsMiddleware``.)
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
