"""The specialist's report as a German doctor's letter (Arztbrief PDF): what the rendered PDF
says, read back with pypdfium2; who may download it (the same rule as the report itself);
its headers and its audit row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import pypdfium2
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from app.accounts.models import User
from app.audit.models import AuditEvent
from app.db import unit_of_work
from app.records.letter import (
    CERTAINTY_WORDS,
    SEX_WORDS,
    Call,
    Letter,
    Particulars,
    call_line,
    download_name,
    letter_pdf,
    printable,
)
from app.records.models import Report
from app.scheduling.identifiers import Certainty
from app.scheduling.models import PatientSex
from app.settings import Settings
from tests.factories import Demo, login, make_appointment, patient_token
from tests.records.test_records import start_appointment
from tests.scheduling.helpers import ClientFactory, book

BERLIN = ZoneInfo("Europe/Berlin")
PARAGRAPHS = [
    "Echokardiographie: normale Pumpfunktion (EF 55 %), keine relevante Klappenerkrankung.\n"
    "Blutdruck ≥ 140/90 mmHg → Ramipril auf 5 mg steigern.",
    "Übelkeit und Schwindel sind am ehesten medikamentös bedingt; Kontrolle in 3 Monaten.",
    "Bei erneutem Vorhofflimmern bitte Wiedervorstellung.",
]
QUESTION = "Neu aufgetretenes Vorhofflimmern im EKG. Antikoagulation nötig?"


def full_letter(report: str = "\n\n".join(PARAGRAPHS)) -> Letter:
    return Letter(
        appointment_id=7,
        written_at=datetime(2026, 11, 24, 8, 41, tzinfo=BERLIN),
        requested_at=datetime(2026, 11, 20, 9, 5, tzinfo=BERLIN),
        consulted_on=date(2026, 11, 24),
        specialist_name="Dr. Minh Nguyen",
        gp_name="Dr. Jörg Lehmann",
        patient_name="Jürgen Größler-Łukasiewicz",
        patient_birth_date=date(1956, 4, 12),
        question=QUESTION,
        report=report,
        specialty="Kardiologie",
        hospital="Carl-Thiem-Klinikum Cottbus",
        hospital_address="Thiemstraße 111, 03048 Cottbus",
        practice_name="Hausarztpraxis Spremberg",
        practice_town="Spremberg",
        specialist_lanr="987654402",
        gp_lanr="123456601",
        practice_bsnr="721234500",
        particulars=Particulars(
            patient_sex=PatientSex.MALE,
            insurance_number="X110411675",
            diagnosis_code="I48.0",
            diagnosis_certainty=Certainty.SUSPECTED,
            diagnosis_text="Vorhofflimmern, paroxysmal",
            medication="Bisoprolol 2,5 mg 1-0-0\nApixaban 5 mg 1-0-1",
            answer_by=date(2026, 11, 30),
            consent_recorded_at=datetime(2026, 11, 20, 9, 4, tzinfo=BERLIN),
        ),
        call=Call(
            started=datetime(2026, 11, 24, 10, 3, tzinfo=BERLIN),
            ended=datetime(2026, 11, 24, 10, 25, tzinfo=BERLIN),
        ),
    )


def pages(pdf: bytes) -> list[str]:
    """Each page's text, lines joined by ``\\n``."""
    document = pypdfium2.PdfDocument(pdf)
    try:
        texts = [page.get_textpage().get_text_range() for page in document]
    finally:
        document.close()
    return [text.replace("\r\n", "\n").replace("\r", "\n") for text in texts]


def flat(text: str) -> str:
    return " ".join(text.split())


def test_letter_says_who_writes_to_whom_about_whom_and_what_was_asked() -> None:
    texts = pages(letter_pdf(full_letter()))
    page = "\n".join(texts)
    text = flat(page)
    for expected in (
        "Carl-Thiem-Klinikum Cottbus",
        "Thiemstraße 111, 03048 Cottbus",
        "Dr. Jörg Lehmann",
        "Hausarztpraxis Spremberg",
        "Ihre LANR 123456601",
        "Ihre BSNR 721234500",
        "LANR 987654402",
        "Datum 24.11.2026",
        "Ihre Anfrage vom 20.11.2026",
        "Betreff: Telekonsil vom 24.11.2026",
        "Patient: Jürgen Größler-Łukasiewicz, geb. 12.04.1956, männlich",
        "Versichertennummer (KVNR): X110411675",
        "I48.0 V – Vorhofflimmern, paroxysmal (Verdachtsdiagnose)",
        f"Fragestellung {QUESTION}",
        "Antwort erbeten bis: 30.11.2026",
        "Einverständnis zum Telekonsil: dokumentiert am 20.11.2026",
        "Videokonsultation: am 24.11.2026, 10:03–10:25 Uhr (Dauer 22 Minuten)",
        "Beurteilung",
        "Mit freundlichen kollegialen Grüßen",
        "Bericht zuletzt geändert am 24.11.2026 um 08:41 Uhr",
        "Erstellt mit Konsil",
        f"Seite 1 von {len(texts)}",
    ):
        assert expected in text, expected
    # The medication and the report keep their line breaks and paragraphs.
    assert "Bisoprolol 2,5 mg 1-0-0\nApixaban 5 mg 1-0-1" in page
    assert "\nBlutdruck ≥ 140/90 mmHg → Ramipril auf 5 mg steigern." in page
    for paragraph in PARAGRAPHS:
        assert flat(paragraph) in text
    assert text.index("Beurteilung") < text.index(PARAGRAPHS[0][:20])
    assert text.index(PARAGRAPHS[-1]) < text.index("Mit freundlichen")


def test_letter_leaves_out_what_the_gp_did_not_give() -> None:
    bare = replace(
        full_letter(),
        particulars=Particulars(),
        call=None,
        hospital=None,
        hospital_address=None,
        specialist_lanr=None,
        gp_lanr=None,
        practice_bsnr=None,
    )
    [page] = pages(letter_pdf(bare))
    text = flat(page)
    assert "Patient/in: Jürgen Größler-Łukasiewicz, geb. 12.04.1956" in text
    for absent in (
        "Versichertennummer",
        "Diagnose",
        "Medikation",
        "Antwort erbeten",
        "Einverständnis",
        "Videokonsultation",
        "LANR",
        "BSNR",
        "männlich",
        "Klinikum",
    ):
        assert absent not in text, absent
    assert text.startswith("Kardiologie")  # the specialty heads the letter without a hospital


def test_a_long_report_breaks_into_numbered_pages_that_name_the_patient() -> None:
    paragraph = "Befund mit Erläuterung der Größenverhältnisse und Übelkeit. " * 12
    report = "\n\n".join(f"{n}. {paragraph}" for n in range(1, 31))
    texts = pages(letter_pdf(full_letter(report)))
    count = len(texts)
    assert count >= 3
    for number, page in enumerate(texts, start=1):
        assert f"Seite {number} von {count}" in flat(page)
    for page in texts[1:]:
        assert "Jürgen Größler-Łukasiewicz, geb. 12.04.1956" in page  # the header line
    everything = flat(" ".join(texts))
    for n in range(1, 31):
        assert f"{n}. Befund mit" in everything
    assert "Dr. Minh Nguyen" in texts[-1]
    assert "Bericht zuletzt geändert" in texts[-1]


def test_letter_prints_what_its_fonts_lack_as_replacement_characters() -> None:
    assert printable("a\r\nb\rc\td\x00e\x07\u2067") == "a\nb\nc    de"
    assert printable("Ü") == "Ü"  # decomposed, as some keyboards send it
    assert printable("Ω Ж ≤ 🙂 中") == "Ω Ж ≤ \ufffd \ufffd"
    letter = full_letter("Олена Шевченко: Zustand gut 🙂")
    assert "Олена Шевченко: Zustand gut \ufffd" in pages(letter_pdf(letter))[0]


def test_letter_says_the_call_in_words() -> None:
    start = datetime(2026, 12, 31, 23, 50, tzinfo=BERLIN)
    assert call_line(Call(start, start + timedelta(seconds=40))) == (
        "am 31.12.2026, 23:50–23:50 Uhr (Dauer 1 Minute)"
    )
    assert call_line(Call(start, start + timedelta(minutes=25))) == (
        "vom 31.12.2026, 23:50 Uhr bis 01.01.2027, 00:15 Uhr (Dauer 25 Minuten)"
    )
    assert call_line(Call(start)) == "am 31.12.2026 ab 23:50 Uhr"


def test_every_certainty_and_sex_has_german_words() -> None:
    assert set(CERTAINTY_WORDS) == set(Certainty)
    assert set(SEX_WORDS) == set(PatientSex)


def test_the_file_name_has_the_date_and_the_id_but_not_the_patient() -> None:
    assert download_name(full_letter()) == "Arztbrief-2026-11-24-7.pdf"


# Through the API.

PARTICULARS: dict[str, Any] = {
    "patient_name": "Jürgen Größler",
    "patient_insurance_number": "X110411675",
    "patient_sex": "male",
    "diagnosis_code": "I48.0",
    "diagnosis_certainty": "G",
    "diagnosis_text": "Vorhofflimmern",
    "consent_recorded": True,
}
REPORT = "Erster Absatz: keine Antikoagulation nötig.\n\nZweiter Absatz: Kontrolle in 1 Jahr."


async def reported(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[int, dict[str, Any]]:
    """A booking with particulars whose specialist has written the report (client: its GP)."""
    await login(client, demo.gp)
    appointment_id: int = (await book(client, demo.specialist, **PARTICULARS))["appointment"]["id"]
    await start_appointment(sessions, appointment_id)
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        written = await specialist.put(
            f"/api/v1/appointments/{appointment_id}/report", json={"body": REPORT}
        )
        assert written.status_code == 200, written.text
    report: dict[str, Any] = written.json()
    return appointment_id, report


async def test_the_gp_and_the_specialist_download_the_letter(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment_id, report = await reported(client, demo, client_factory, sessions)
    written = datetime.fromisoformat(report["updated_at"]).astimezone(BERLIN)
    path = f"/api/v1/appointments/{appointment_id}/report.pdf"
    name = f"Arztbrief-{written.date().isoformat()}-{appointment_id}.pdf"
    async with client_factory() as specialist:
        await login(specialist, demo.specialist)
        for who in (client, specialist):
            response = await who.get(path)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/pdf"
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
            [page] = pages(response.content)
            text = flat(page)
            for expected in (
                "Patient: Jürgen Größler, geb. 12.04.1956, männlich",
                "Versichertennummer (KVNR): X110411675",
                "I48.0 G – Vorhofflimmern (gesicherte Diagnose)",
                "Belastungsdyspnoe seit drei Wochen",
                "Erster Absatz: keine Antikoagulation nötig.",
                "Zweiter Absatz: Kontrolle in 1 Jahr.",
                demo.specialist.display_name,
                demo.gp.display_name,
                demo.practice.name,
                "Kardiologie",
                f"Bericht zuletzt geändert am {written:%d.%m.%Y} um {written:%H:%M} Uhr",
                "Seite 1 von 1",
            ):
                assert expected in text, expected
    async with sessions() as session:
        rows = (
            (
                await session.execute(
                    select(AuditEvent).where(col(AuditEvent.action) == "report.downloaded")
                )
            )
            .scalars()
            .all()
        )
    assert sorted(row.actor_id or 0 for row in rows) == sorted(
        [demo.gp.id or 0, demo.specialist.id or 0]
    )
    assert all(row.appointment_id == appointment_id for row in rows)
    assert all("Absatz" not in str(row.model_dump()) for row in rows)


async def test_the_letter_is_refused_to_whoever_may_not_read_the_report(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
) -> None:
    appointment_id, _ = await reported(client, demo, client_factory, sessions)
    one = f"/api/v1/appointments/{appointment_id}"
    appointment = await make_appointment(sessions, demo)  # a patient session needs one
    patient_cookie = await patient_token(sessions, settings, appointment)
    callers: list[tuple[str, User | None, int]] = [
        ("another GP", demo.other_gp, 404),
        ("another specialist", demo.other_specialist, 404),
        ("admin", demo.admin, 403),
        ("anonymous", None, 401),
        ("patient", None, 401),
    ]
    for caller, user, expected in callers:
        async with client_factory() as who:
            if caller == "patient":
                who.cookies.set("konsil_patient", patient_cookie)
            if user is not None:
                await login(who, user)
            letter = await who.get(f"{one}/report.pdf")
            text = await who.get(f"{one}/report")
        assert (letter.status_code, text.status_code) == (expected, expected), caller
        assert letter.headers["content-type"].startswith("application/json")
        assert b"%PDF" not in letter.content


async def test_no_report_no_letter(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await login(client, demo.gp)
    appointment_id = (await book(client, demo.specialist))["appointment"]["id"]
    missing = await client.get(f"/api/v1/appointments/{appointment_id}/report.pdf")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Es gibt noch keinen Bericht."
    unknown = await client.get("/api/v1/appointments/999999/report.pdf")
    assert unknown.status_code == 404

    appointment_id, _ = await reported(client, demo, client_factory, sessions)
    async with unit_of_work(sessions) as session:
        await session.execute(delete(Report).where(col(Report.appointment_id) == appointment_id))
    deleted = await client.get(f"/api/v1/appointments/{appointment_id}/report.pdf")
    assert deleted.status_code == 404
    assert deleted.json()["error"]["code"] == "records_deleted"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """The operator's name heads the letter."""
    return make_settings(
        operator_name="Carl-Thiem-Klinikum Cottbus", operator_address="Thiemstraße 111, Cottbus"
    )


async def test_the_operator_heads_the_letter(
    client: httpx2.AsyncClient,
    demo: Demo,
    client_factory: ClientFactory,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    appointment_id, _ = await reported(client, demo, client_factory, sessions)
    response = await client.get(f"/api/v1/appointments/{appointment_id}/report.pdf")
    text = flat(pages(response.content)[0])
    assert text.startswith("Carl-Thiem-Klinikum Cottbus Kardiologie Thiemstraße 111, Cottbus")
