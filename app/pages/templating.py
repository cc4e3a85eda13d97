"""Jinja2 templates from ``frontend/templates`` (autoescaped), translated per request."""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, pass_context
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from app.pages import i18n
from app.resources import settings

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
TEMPLATES = FRONTEND / "templates"
STATIC = FRONTEND / "static"


@cache
def static_version() -> str:
    """A short hash of every static file: versioned URLs can be cached forever."""
    digest = hashlib.sha256()
    for path in sorted(STATIC.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(STATIC).as_posix().encode())
            digest.update(path.read_bytes())
    return "v-" + digest.hexdigest()[:12]


@pass_context
def _gettext(context: Context, message: str, **values: Any) -> str:
    text = i18n.translations(context["lang"]).gettext(message)
    return text % values if values else text


def _gettext_in(lang: str, message: str) -> str:
    """``message`` in ``lang``, whatever the page's language (the note about a language the
    page does not offer is written in that language)."""
    return i18n.translations(lang).gettext(message)


@pass_context
def _static_url(context: Context, path: str) -> str:
    return f"/static/{static_version()}/{path}"


@pass_context
def _lang_url(context: Context, lang: str) -> str:
    """The current page in another language (the fragment, if any, stays in the browser)."""
    request: Request = context["request"]
    query = {k: v for k, v in request.query_params.items() if k != "lang"}
    query["lang"] = lang
    return f"{request.url.path}?{urlencode(query)}"


@pass_context
def _local_time(context: Context, value: datetime, fmt: str = "%d.%m.%Y %H:%M") -> str:
    tz = settings(context["request"]).tz
    return value.astimezone(tz).strftime(fmt)


def _templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    templates = Jinja2Templates(env=env)
    env.globals.update(
        _=_gettext,
        gettext_in=_gettext_in,
        static=_static_url,
        lang_url=_lang_url,
        language_names=i18n.NAMES,
        direction=i18n.direction,
    )
    env.filters["local_time"] = _local_time
    return templates


templates = _templates()


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    """Renders a page in the request's language (among those the page offers: patient pages
    more than staff pages); ``?lang=`` also remembers the choice."""
    languages = i18n.offered(name)
    lang = i18n.language(request, languages)
    cfg = settings(request)
    values: dict[str, Any] = {
        "lang": lang,
        "languages": languages,
        "unavailable_choice": i18n.unavailable_choice(request, languages),
        "only_german_and_english": i18n.ONLY_GERMAN_AND_ENGLISH,
        "timezone": cfg.timezone,
        "idle_minutes": cfg.session_idle_minutes,
        "principal": None,
        "csrf_token": "",
        "nav": "",
    }
    values.update(context or {})
    response = templates.TemplateResponse(request, name, values, status_code=status)
    if i18n.requested_language(request, languages):
        response.set_cookie(
            i18n.COOKIE,
            lang,
            max_age=365 * 24 * 3600,
            path="/",
            secure=cfg.cookie_secure,
            httponly=False,
            samesite="lax",
        )
    return response
