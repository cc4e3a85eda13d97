"""Renders a message from its typed context with Jinja2: an e-mail's plain text and HTML, or an
SMS's text, German or English.

``MailContext`` is all a template can see, and it has no field for health data (no patient
name, specialty, clinical question or report): a template cannot leak what it is never given.
SMS templates (``templates/sms``) are written in GSM-7 and short enough for one SMS with a
base URL of about 30 characters and a practice's name of about 20 (``tests/notify``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path

from babel.dates import format_datetime
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape

from app.notify import gsm
from app.notify.models import LINK_KINDS, Kind

TEMPLATES = Path(__file__).parent / "templates"
LANGUAGES = ("de", "en")
_WHEN = {"de": "EEEE, d. MMMM y 'um' HH:mm 'Uhr'", "en": "EEEE, d MMMM y 'at' HH:mm"}
_SHORT = {"de": "dd.MM.y, HH:mm 'Uhr'", "en": "d MMM y, HH:mm"}
_TIME = "HH:mm"
_SMS_WHEN = {"de": "EEE dd.MM., HH:mm 'Uhr'", "en": "EEE d MMM, HH:mm"}
_CLOCK = {"de": "HH:mm 'Uhr'", "en": "HH:mm"}


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
    # The GP's messages: the booking's (or on-call request's) page, and its number.
    booking_url: str | None = None
    booking_id: int | None = None
    # A late notice: about how many minutes late, and when the consultation may now begin.
    delay_minutes: int | None = None
    expected_at: datetime | None = None
    # A reminder: due this many minutes before the start.
    reminder_minutes: int | None = None


@dataclass(frozen=True)
class Mail:
    subject: str
    text: str
    html: str


# Kinds that have an SMS template (the GP's messages go by e-mail only).
SMS_KINDS = frozenset(Kind) - {
    Kind.REPORT_READY,
    Kind.ON_CALL_UNCLAIMED,
    Kind.QUESTION_ASKED,
    Kind.DECLINED,
}


def _base(kind: Kind) -> str:
    return "link" if kind in LINK_KINDS - {Kind.REMINDER} else kind.value


def template_names(kind: Kind, language: str) -> tuple[str, str]:
    return f"{_base(kind)}.{language}.txt", f"{_base(kind)}.{language}.html"


def sms_template_name(kind: Kind, language: str) -> str:
    return f"sms/{_base(kind)}.{language}.txt"


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


def render_sms(context: MailContext, language: str) -> str:
    """The SMS text of ``context.kind`` in ``language`` (German if unknown): the template's
    lines without indentation or blank lines, in GSM-7 where the values allow it."""
    language = language if language in LANGUAGES else "de"
    template = _environment(language).get_template(sms_template_name(context.kind, language))
    rendered = template.render({"m": context, "lang": language})
    lines = (line.strip() for line in rendered.splitlines())
    return gsm.plain("\n".join(line for line in lines if line))


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
    env.filters["sms_when"] = lambda value: format_datetime(
        value, _SMS_WHEN[language], locale=language
    )
    env.filters["clock"] = lambda value: format_datetime(value, _CLOCK[language], locale=language)
    return env
