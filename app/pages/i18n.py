"""Translations for pages and page scripts: German by default, English on request.

Message ids are English; ``app/pages/locale/<lang>/LC_MESSAGES/messages.po`` holds the
translations and is read at runtime with Babel (no compile step). The language comes from
``?lang=`` (which also sets the cookie), then the ``konsil_lang`` cookie, then German:
patients are German first, so the browser's Accept-Language does not override that.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from starlette.requests import HTTPConnection

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
COOKIE = "konsil_lang"


@dataclass(frozen=True)
class Translations:
    """The messages of one language; English is the identity (ids are English)."""

    lang: str
    messages: dict[str, str]

    def gettext(self, message: str) -> str:
        return self.messages.get(message) or message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.gettext(singular if n == 1 else plural)


@cache
def translations(lang: str) -> Translations:
    """The (cached) translations of ``lang``; unknown languages fall back to German."""
    if lang not in LANGUAGES:
        lang = DEFAULT_LANGUAGE
    catalog = read_catalog(lang)
    messages: dict[str, str] = {}
    if catalog is not None:
        for entry in catalog:
            text = entry.string
            if isinstance(entry.id, str) and isinstance(text, str) and text and not entry.fuzzy:
                messages[entry.id] = text
    return Translations(lang=lang, messages=messages)


def read_catalog(lang: str) -> Catalog | None:
    path = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return None
    with path.open("rb") as f:
        return read_po(f, locale=lang)


def requested_language(conn: HTTPConnection) -> str | None:
    """The language asked for in ``?lang=`` if it is one we have."""
    asked = conn.query_params.get("lang")
    return asked if asked in LANGUAGES else None


def language(conn: HTTPConnection) -> str:
    """The language to answer ``conn`` in."""
    asked = requested_language(conn)
    if asked:
        return asked
    cookie = conn.cookies.get(COOKIE)
    return cookie if cookie in LANGUAGES else DEFAULT_LANGUAGE


def js_catalog(lang: str) -> dict[str, str]:
    """The messages page scripts need (all of them: the catalog is small)."""
    return dict(translations(lang).messages)


def N_(message: str) -> str:
    """Marks ``message`` for extraction; it is translated where it is shown."""
    return message
