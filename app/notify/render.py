"""Renders a message from its typed context with Jinja2: plain text and HTML, German or English.

``MailContext`` is all a template can see, and it has no field for health data (no patient
name, specialty, clinical question or report): a template cannot leak what it is never given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from babel.dates import format_datetime
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from app.notify.models import LINK_KINDS, Kind

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("de", "en")
_WHEN = {"de": "EEEE, d. MMMM y 'um' HH:mm 'Uhr'", "en": "EEEE, d MMMM y 'at' HH:mm"}
_SHORT = {"de": "dd.MM.y, HH:mm 'Uhr'", "en": "d MMM y, HH:mm"}
_TIME = "HH:mm"


@dataclass(frozen=True)
class MailContext:
    """What a message may say. Times are local (the deployment's zone)."""

    kind: Kind
    starts_at: datetime
    practice_name: str | None = None
    practice_phone: str | None = None
    # Link messages: the patient's join link and from when it opens.
    join_url: str | None = None
    opens_at: datetime | None = None
    # The GP's message: where to read the report, and the booking's number.
    booking_url: str | None = None
    booking_id: int | None = None
    # A late notice: about how many minutes late, and when the consultation may now begin.
    delay_minutes: int | None = None
    expected_at: datetime | None = None


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str


def template_names(kind: Kind, language: str) -> tuple[str, str]:
    base = "link" if kind in LINK_KINDS else kind.value
    return f"{base}.{language}.txt", f"{base}.{language}.html"


def render(context: MailContext, language: str) -> Mail:
    """The subject, text and HTML of ``context.kind`` in ``language`` (German if unknown)."""
    language = language if language in LANGUAGES else "de"
    text_name, html_name = template_names(context.kind, language)
    env = _environment(language)
    values = {"m": context, "lang": language}
    text = env.get_template(text_name)
    subject = _block(text, "subject", values).strip()
    return Mail(
        subject=" ".join(subject.split()),
        text=_block(text, "body", values).strip() + "\n",
        html=env.get_template(html_name).render(values),
    )


def _block(template: Template, name: str, values: dict[str, object]) -> str:
    return "".join(template.blocks[name](template.new_context(values)))


@cache
def _environment(language: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = lambda value: format_datetime(value, _WHEN[language], locale=language)
    env.filters["short"] = lambda value: format_datetime(value, _SHORT[language], locale=language)
    env.filters["time"] = lambda value: format_datetime(value, _TIME, locale=language)
    return env
