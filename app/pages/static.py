"""Static files (plain ES modules, CSS, icons) with cache headers.

Templates link ``/static/<version>/...`` where the version is a hash of the static files, so
those responses are immutable and cached for a year; relative imports between modules stay
under the same versioned prefix. Anything else (unversioned, or a version from an older
deployment) is served too but must be revalidated (ETag / Last-Modified).
"""

from __future__ import annotations

import os

from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from app.pages.templating import STATIC, static_version

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
VERSION_PREFIX = "v-"


class _Files(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            response.headers["Cache-Control"] = scope.get("konsil.cache_control", REVALIDATE)
        return response


class VersionedStatic:
    """Strips a leading ``v-<hash>/`` segment and picks the cache policy from it."""

    def __init__(self) -> None:
        self.files = _Files(directory=STATIC)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rest = scope["path"][len(scope.get("root_path", "")) :].lstrip("/")
        first, _, tail = rest.partition("/")
        if first.startswith(VERSION_PREFIX) and tail:
            current = first == static_version()
            scope = {
                **scope,
                "root_path": scope.get("root_path", "") + "/" + first,
                "konsil.cache_control": IMMUTABLE if current else REVALIDATE,
            }
        await self.files(scope, receive, send)


def static_mount() -> Mount:
    return Mount("/static", app=VersionedStatic(), name="static")


def file_exists(path: str) -> bool:
    """Whether ``frontend/static/<path>`` exists (for optional modules)."""
    return os.path.isfile(STATIC / path)
