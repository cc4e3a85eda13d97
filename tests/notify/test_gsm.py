"""How long an SMS is (GSM-7 septets, UCS-2 code units, parts), and that every SMS template
fits one SMS in German and English for a typical deployment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.notify import gsm
from app.notify.models import Kind
from app.notify.render import LANGUAGES, SMS_KINDS, MailContext, render_sms

BERLIN = ZoneInfo("Europe/Berlin")
# A typical deployment: a base URL of 26 characters, a practice's name and its number.
JOIN_URL = "https://konsil.klinikum.de/join#" + "Glz5qzpml83tqoi1iPfpR1mODtpE1m2J7-AuSRR32M0"
PRACTICE, PHONE = "Praxis Dr. Lehmann", "+4935631234567"


def context(kind: Kind, when: datetime, practice: str = PRACTICE) -> MailContext:
    return MailContext(
        kind=kind,
        starts_at=when.astimezone(BERLIN),
        practice_name=practice,
        practice_phone=PHONE,
        join_url=JOIN_URL,
        opens_at=when.astimezone(BERLIN),
        reminder_minutes=15,
        delay_minutes=15 if kind is Kind.DELAY else None,
        expected_at=(when + timedelta(minutes=15)).astimezone(BERLIN),
    )


def test_gsm_basic_table_has_its_127_characters_and_the_german_letters() -> None:
    assert len(gsm.BASIC) == 127
    assert set("äöüÄÖÜß@_#:/.-") <= gsm.BASIC
    assert not set("€[]{}") & gsm.BASIC
    assert gsm.is_gsm7("Grüße aus Spremberg, 14:30 Uhr")
    assert not gsm.is_gsm7("Praxis „Am Markt“")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", gsm.Length("gsm7", 0, 0)),
        ("a" * 160, gsm.Length("gsm7", 160, 1)),
        ("a" * 161, gsm.Length("gsm7", 161, 2)),
        ("a" * 306, gsm.Length("gsm7", 306, 2)),
        ("a" * 307, gsm.Length("gsm7", 307, 3)),
        ("€" * 80, gsm.Length("gsm7", 160, 1)),  # the extension table: two septets each
        ("a" * 159 + "€", gsm.Length("gsm7", 161, 2)),
        # An escape pair is not split: 152 + 2 does not fit the first part of 153.
        ("a" * 152 + "€" + "a" * 152, gsm.Length("gsm7", 306, 3)),
        ("ł" * 70, gsm.Length("ucs2", 70, 1)),
        ("ł" * 71, gsm.Length("ucs2", 71, 2)),
        ("ł" * 134, gsm.Length("ucs2", 134, 2)),
        ("ł" * 135, gsm.Length("ucs2", 135, 3)),
        ("🙂" * 35, gsm.Length("ucs2", 70, 1)),  # a surrogate pair: two code units
        # A surrogate pair is not split: 66 + 2 does not fit the first part of 67.
        ("a" * 66 + "🙂" + "a" * 66, gsm.Length("ucs2", 134, 3)),
    ],
)
def test_gsm_measure_counts_units_and_parts(text: str, expected: gsm.Length) -> None:
    assert gsm.measure(text) == expected


def test_gsm_plain_replaces_typography_gsm7_lacks() -> None:
    assert (
        gsm.plain("Praxis „Am Markt“ – Dr. Lehmann’s…") == 'Praxis "Am Markt" - Dr. Lehmann\'s...'
    )
    assert gsm.is_gsm7(gsm.plain("„“”‚‘’–—\u00a0\u202f…"))


# A Monday in winter and a Wednesday in summer time: the local time and weekday are rendered.
WHEN = [datetime(2026, 12, 14, 13, 30, tzinfo=UTC), datetime(2026, 9, 30, 13, 30, tzinfo=UTC)]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", sorted(SMS_KINDS))
@pytest.mark.parametrize("when", WHEN)
def test_sms_templates_fit_one_gsm7_sms(language: str, kind: Kind, when: datetime) -> None:
    text = render_sms(context(kind, when), language)
    assert gsm.measure(text).encoding == "gsm7"
    assert gsm.measure(text).units <= 160, text
    assert f"{PRACTICE}, {PHONE}" in text
    assert (JOIN_URL in text) is (kind not in (Kind.CANCELLED, Kind.DELAY))
    local = when.astimezone(BERLIN)
    assert f"{local:%H:%M}" in text


def test_sms_time_and_weekday_are_local_in_each_language() -> None:
    de = render_sms(context(Kind.INVITATION, WHEN[0]), "de")
    en = render_sms(context(Kind.INVITATION, WHEN[1]), "en")
    assert de.startswith("Ihr Video-Termin Mo. 14.12., 14:30 Uhr:\n")
    assert en.startswith("Your video appointment Wed 30 Sep, 15:30:\n")


def test_sms_a_long_or_foreign_practice_name_is_counted_right() -> None:
    long_name = "Gemeinschaftspraxis Dr. med. Anna Lehmann und Kollegen"
    text = render_sms(context(Kind.REMINDER, WHEN[0], long_name), "de")
    assert gsm.measure(text) == gsm.Length("gsm7", len(text), 2)
    quoted = render_sms(context(Kind.INVITATION, WHEN[0], "Praxis „Am Markt“"), "de")
    assert 'Praxis "Am Markt"' in quoted
    assert gsm.measure(quoted).encoding == "gsm7"
    polish = render_sms(context(Kind.INVITATION, WHEN[0], "Praxis Dr. Łukasz Wójcik"), "de")
    assert gsm.measure(polish) == gsm.Length("ucs2", len(polish), 3)
