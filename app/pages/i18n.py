"""Translations for pages and page scripts: German by default, other languages on request.

Message ids are English; ``app/pages/locale/<lang>/LC_MESSAGES/messages.po`` holds the
translations and is read at runtime with Babel (no compile step). The language comes from
``?lang=`` (which also sets the cookie), then the ``konsil_lang`` cookie, then German:
patients are German first, so the browser's Accept-Language does not override that.

Patient pages (``PATIENT_TEMPLATES``: the join page with its consent, checks, waiting room,
call and link problems, the invited guest's page (an interpreter often speaks the patient's
language), and the error page) offer the patients' languages; every other page
(staff pages, the start page, the legal texts) German and English only, and German when
another language is asked for or remembered.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from starlette.requests import HTTPConnection

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LANGUAGE = "de"
# Staff pages: German and English. Patients: also the languages patients in the regions speak
# most. Each language is named in itself (the switch shows these names).
STAFF_LANGUAGES = ("de", "en")
PATIENT_LANGUAGES = ("de", "en", "tr", "ar", "uk", "pl")
LANGUAGES = PATIENT_LANGUAGES  # every language with a catalog (and /i18n/<lang>.json)
NAMES = {
    "de": "Deutsch",
    "en": "English",
    "tr": "Türkçe",
    "ar": "العربية",
    "uk": "Українська",
    "pl": "Polski",
}
RTL = frozenset({"ar"})
# The templates of the patient's pages; app/pages/messages.py finds their messages from here.
PATIENT_TEMPLATES = ("join.html", "guest.html", "error.html")
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


def offered(template: str) -> tuple[str, ...]:
    """The languages the page rendered from ``template`` offers."""
    return PATIENT_LANGUAGES if template in PATIENT_TEMPLATES else STAFF_LANGUAGES


def direction(lang: str) -> str:
    return "rtl" if lang in RTL else "ltr"


def wanted_language(conn: HTTPConnection) -> str | None:
    """The language the visitor chose: ``?lang=`` if it is one we have, else the cookie's."""
    asked = conn.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    cookie = conn.cookies.get(COOKIE)
    return cookie if cookie in LANGUAGES else None


def requested_language(
    conn: HTTPConnection, languages: tuple[str, ...] = STAFF_LANGUAGES
) -> str | None:
    """The language asked for in ``?lang=`` if the page offers it (then it is remembered)."""
    asked = conn.query_params.get("lang")
    return asked if asked in languages else None


def language(conn: HTTPConnection, languages: tuple[str, ...] = STAFF_LANGUAGES) -> str:
    """The language to answer ``conn`` in, on a page that offers ``languages``: the chosen
    one if the page has it, else German (also when the choice is a patient language that a
    staff page does not offer)."""
    chosen = wanted_language(conn)
    return chosen if chosen in languages else DEFAULT_LANGUAGE


def unavailable_choice(conn: HTTPConnection, languages: tuple[str, ...]) -> str | None:
    """The visitor's chosen language if this page does not offer it (the page then says so,
    in that language), else None."""
    chosen = wanted_language(conn)
    return chosen if chosen is not None and chosen not in languages else None


def js_catalog(lang: str) -> dict[str, str]:
    """The messages page scripts need (all of them: the catalog is small)."""
    return dict(translations(lang).messages)


def N_(message: str) -> str:
    """Marks ``message`` for extraction; it is translated where it is shown."""
    return message


# Shown (in the visitor's language) on a page that does not offer the language they chose.
ONLY_GERMAN_AND_ENGLISH = N_("This page is available in German and English only.")
