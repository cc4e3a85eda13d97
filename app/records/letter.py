"""The specialist's report as a German doctor's letter (Arztbrief): an A4 PDF with fpdf2.

The layout follows a German letter (DIN 5008 in spirit): the sender's letterhead, a return
line above the recipient (the requesting GP and practice), an information block with the
date, the subject "Telekonsil vom …" with the patient's identifiers, what the GP asked
(diagnosis with its ICD-10-GM code and certainty in words, the question, the deadline, the
medication), the video consultation if there was one, the report ("Beurteilung") with its
paragraphs and line breaks as written, the signature, and on every page "Seite x von y" and a
note that Konsil made it. Later pages repeat the patient in a header line.

Pure: a ``Letter`` in, PDF bytes out. Times are local (the deployment's zone). Fonts: a subset
of DejaVu in ``fonts/`` (Latin, Greek, Cyrillic, arrows, mathematical signs); any other
character is printed as U+FFFD, never dropped unseen.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import TTFFont

from app.scheduling.identifiers import Certainty
from app.scheduling.models import AppointmentKind, PatientSex

FONTS = Path(__file__).parent / "fonts"
LEFT, RIGHT, TOP, BOTTOM = 25.0, 20.0, 18.0, 22.0  # mm
ADDRESS_TOP = 45.0  # the window of a DL envelope
INFO_LEFT = 125.0
SIGNATURE_BLOCK = 42.0  # mm the closing needs; it never starts at the foot of a page
INK = (20, 20, 20)
QUIET = (95, 95, 95)

# The German words for the diagnostic certainty (as the KBV names them on a referral).
CERTAINTY_WORDS = {
    Certainty.CONFIRMED: "gesicherte Diagnose",
    Certainty.SUSPECTED: "Verdachtsdiagnose",
    Certainty.STATE_AFTER: "Zustand nach",
    Certainty.EXCLUDED: "ausgeschlossene Diagnose",
}
SEX_WORDS = {
    PatientSex.FEMALE: "weiblich",
    PatientSex.MALE: "männlich",
    PatientSex.DIVERSE: "divers",
    PatientSex.UNKNOWN: "unbekannt",
}


@dataclass(frozen=True)
class Call:
    """The video consultation: from the patient's admission to the end, if it ended."""

    started: datetime
    ended: datetime | None = None


@dataclass(frozen=True)
class Particulars:
    """The Telekonsil request's particulars the GP gave (each optional)."""

    patient_sex: PatientSex | None = None
    insurance_number: str | None = None
    diagnosis_code: str | None = None
    diagnosis_certainty: Certainty | None = None
    diagnosis_text: str | None = None
    medication: str | None = None
    answer_by: date | None = None
    consent_recorded_at: datetime | None = None


def consulted_at(
    kind: AppointmentKind, admitted_at: datetime | None, starts_at: datetime, answered_at: datetime
) -> datetime:
    """The Telekonsil's moment a letter is dated by (the PDF and the FHIR document alike): the
    call's, a written one's first answer (``answered_at``), else the slot's."""
    if admitted_at is not None:
        return admitted_at
    return answered_at if kind is AppointmentKind.WRITTEN else starts_at


@dataclass(frozen=True)
class Letter:
    """What the letter says. Optional fields the GP or the operator left out are not printed."""

    appointment_id: int
    written_at: datetime  # the report's last change: the letter's date
    requested_at: datetime  # when the GP asked
    consulted_on: (
        date  # the Telekonsil's day: the call's, else the appointment's (written: the answer's)
    )
    specialist_name: str
    gp_name: str
    patient_name: str
    patient_birth_date: date
    question: str
    report: str
    specialty: str | None = None
    hospital: str | None = None
    hospital_address: str | None = None
    practice_name: str | None = None
    practice_town: str | None = None
    # The doctor numbers where the admin recorded them.
    specialist_lanr: str | None = None
    gp_lanr: str | None = None
    practice_bsnr: str | None = None
    particulars: Particulars = Particulars()
    call: Call | None = None
    # A written Telekonsil: answered without a video consultation.
    written: bool = False


def day(value: date) -> str:
    return value.strftime("%d.%m.%Y")


def download_name(letter: Letter) -> str:
    """The download's name: the letter's date and the appointment, never the patient."""
    return f"Arztbrief-{letter.written_at.date().isoformat()}-{letter.appointment_id}.pdf"


def diagnosis_line(given: Particulars) -> str | None:
    """``I48.0 V – Vorhofflimmern (Verdachtsdiagnose)``; None without a code or a text."""
    if not (given.diagnosis_code or given.diagnosis_text):
        return None
    code = given.diagnosis_code or ""
    if code and given.diagnosis_certainty is not None:
        code = f"{code} {given.diagnosis_certainty.value}"
    line = " – ".join(part for part in (code, given.diagnosis_text) if part)
    if given.diagnosis_certainty is not None:
        line += f" ({CERTAINTY_WORDS[given.diagnosis_certainty]})"
    return line


def call_line(call: Call) -> str:
    """``am 24.11.2026, 10:03–10:25 Uhr (Dauer 22 Minuten)``."""
    start = call.started
    if call.ended is None or call.ended < start:
        return f"am {day(start)} ab {start:%H:%M} Uhr"
    minutes = max(1, round((call.ended - start).total_seconds() / 60))
    length = "1 Minute" if minutes == 1 else f"{minutes} Minuten"
    if call.ended.date() == start.date():
        return f"am {day(start)}, {start:%H:%M}–{call.ended:%H:%M} Uhr (Dauer {length})"
    return (
        f"vom {day(start)}, {start:%H:%M} Uhr bis {day(call.ended)}, {call.ended:%H:%M} Uhr "
        f"(Dauer {length})"
    )


def patient_noun(sex: PatientSex | None) -> str:
    if sex is PatientSex.FEMALE:
        return "Patientin"
    return "Patient" if sex is PatientSex.MALE else "Patient/in"


def patient_line(letter: Letter) -> str:
    parts = [letter.patient_name, f"geb. {day(letter.patient_birth_date)}"]
    if letter.particulars.patient_sex is not None:
        parts.append(SEX_WORDS[letter.particulars.patient_sex])
    return ", ".join(parts)


@cache
def _glyphs() -> frozenset[int]:
    """The characters both letter fonts can print (read once per process)."""
    probe = FPDF()
    probe.add_font("Sans", "", FONTS / "DejaVuSans.ttf")
    probe.add_font("Sans", "B", FONTS / "DejaVuSans-Bold.ttf")
    fonts = [font for font in probe.fonts.values() if isinstance(font, TTFFont)]
    maps = [set(font.cmap) for font in fonts]
    for font in fonts:
        font.ttfont.close()  # a document closes its fonts when it is output; this one is not
    return frozenset(set.intersection(*maps))


def printable(text: str) -> str:
    """``text`` as the fonts can print it: NFC, lines ending in ``\\n``, tabs as spaces, no
    other control characters, and U+FFFD for a character the fonts lack (emoji, CJK)."""
    glyphs = _glyphs()
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    out = []
    for char in text.replace("\t", "    "):
        if char == "\n" or (ord(char) in glyphs and unicodedata.category(char) != "Cc"):
            out.append(char)
        elif unicodedata.category(char) not in ("Cc", "Cf"):
            out.append("\ufffd")
    return "".join(out)


class _Document(FPDF):
    """A4 with the repeated parts: the patient on later pages, the footer on all."""

    def __init__(self, letter: Letter) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.letter = letter
        self.set_margins(LEFT, TOP, RIGHT)
        self.set_auto_page_break(auto=True, margin=BOTTOM)
        self.add_font("Sans", "", FONTS / "DejaVuSans.ttf")
        self.add_font("Sans", "B", FONTS / "DejaVuSans-Bold.ttf")
        self.set_title(f"Arztbrief – Telekonsil Nr. {letter.appointment_id}")
        self.set_author(printable(letter.specialist_name))
        self.set_creator("Konsil")
        self.set_lang("de")
        self.set_creation_date(letter.written_at)
        self.alias_nb_pages()

    @property
    def width(self) -> float:
        return self.w - LEFT - RIGHT

    def header(self) -> None:
        if self.page_no() == 1:
            return
        self.set_text_color(*QUIET)
        self.set_font("Sans", "", 8.5)
        line = (
            f"{printable(patient_line(self.letter))} · "
            f"Telekonsil vom {day(self.letter.consulted_on)} · "
            f"{printable(self.letter.specialist_name)}"
        )
        self.multi_cell(self.width, 4.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(*QUIET)
        self.line(LEFT + self.c_margin, self.get_y() + 1, self.w - RIGHT, self.get_y() + 1)
        self.ln(6)
        self.set_text_color(*INK)

    def footer(self) -> None:
        self.set_y(-15)
        self.set_text_color(*QUIET)
        self.set_font("Sans", "", 8)
        note = f"Erstellt mit Konsil · Telekonsil Nr. {self.letter.appointment_id}"
        self.cell(self.width / 2, 5, note, align="L")
        self.cell(self.width / 2, 5, f"Seite {self.page_no()} von {{nb}}", align="R")
        self.set_text_color(*INK)

    def para(self, text: str, size: float = 10.5, style: str = "", height: float = 5.2) -> None:
        self.set_font("Sans", style, size)
        self.multi_cell(
            self.width, height, printable(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L"
        )

    def labelled(self, label: str, value: str) -> None:
        """A short particular on one line: the label in bold, the value after it."""
        self.set_font("Sans", "B", 10.5)
        self.write(5.2, f"{label}: ")
        self.set_font("Sans", "", 10.5)
        self.write(5.2, printable(value))
        self.ln(5.2)

    def section(self, title: str, body: str) -> None:
        self.ln(2.5)
        self.para(title, style="B")
        self.ln(0.6)
        self.para(body)


def letter_pdf(letter: Letter) -> bytes:
    """The doctor's letter as an A4 PDF."""
    pdf = _Document(letter)
    pdf.add_page()
    pdf.set_text_color(*INK)
    _letterhead(pdf, letter)
    top, bottom = _address(pdf, letter)
    _information(pdf, letter, top=top, bottom=bottom)
    _subject(pdf, letter)
    _request(pdf, letter)
    _report(pdf, letter)
    _closing(pdf, letter)
    return bytes(pdf.output())


def _sender_name(letter: Letter) -> str:
    return letter.hospital or letter.specialty or letter.specialist_name


def _letterhead(pdf: _Document, letter: Letter) -> None:
    pdf.set_xy(LEFT, TOP)
    pdf.para(_sender_name(letter), size=14, style="B", height=6.5)
    if letter.hospital and letter.specialty:
        pdf.para(letter.specialty, size=11, height=5.5)
    if letter.hospital_address:
        pdf.set_text_color(*QUIET)
        pdf.para(letter.hospital_address, size=9, height=4.5)
        pdf.set_text_color(*INK)


def _address(pdf: _Document, letter: Letter) -> tuple[float, float]:
    """The return line and the recipient, in the envelope's window; where they begin and end."""
    top = max(ADDRESS_TOP, pdf.get_y() + 4)
    pdf.set_xy(LEFT, top)
    back = " · ".join(
        part for part in (letter.specialist_name, letter.specialty, letter.hospital) if part
    )
    pdf.set_text_color(*QUIET)
    pdf.set_font("Sans", "", 7)
    pdf.cell(INFO_LEFT - LEFT - 8, 4, printable(back), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*INK)
    pdf.ln(2)
    lines = [letter.gp_name, letter.practice_name, letter.practice_town]
    pdf.set_font("Sans", "", 11)
    for line in filter(None, lines):
        pdf.multi_cell(
            INFO_LEFT - LEFT - 8, 5.5, printable(line), new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
    return top, pdf.get_y()


def _information(pdf: _Document, letter: Letter, *, top: float, bottom: float) -> None:
    """Beside the address: the date and what the letter answers."""
    rows = [
        ("Datum", day(letter.written_at)),
        ("Ihre Anfrage vom", day(letter.requested_at)),
        ("Telekonsil-Nr.", str(letter.appointment_id)),
    ]
    if letter.specialty:
        rows.append(("Fachgebiet", letter.specialty))
    if letter.gp_lanr:
        rows.append(("Ihre LANR", letter.gp_lanr))
    if letter.practice_bsnr:
        rows.append(("Ihre BSNR", letter.practice_bsnr))
    y = top
    for label, value in rows:
        pdf.set_xy(INFO_LEFT, y)
        pdf.set_text_color(*QUIET)
        pdf.set_font("Sans", "", 8.5)
        pdf.cell(30, 5, label)
        pdf.set_text_color(*INK)
        pdf.set_font("Sans", "", 9.5)
        pdf.multi_cell(pdf.w - RIGHT - INFO_LEFT - 30, 5, printable(value))
        y = pdf.get_y()
    pdf.set_xy(LEFT, max(y, bottom, ADDRESS_TOP + 45))


def _subject(pdf: _Document, letter: Letter) -> None:
    pdf.para(f"Betreff: Telekonsil vom {day(letter.consulted_on)}", size=11.5, style="B", height=6)
    pdf.labelled(patient_noun(letter.particulars.patient_sex), patient_line(letter))
    if letter.particulars.insurance_number:
        pdf.labelled("Versichertennummer (KVNR)", letter.particulars.insurance_number)
    pdf.ln(5)
    pdf.para("Sehr geehrte Kollegin, sehr geehrter Kollege,")
    pdf.ln(2)
    pdf.para(
        "vielen Dank für Ihre Anfrage zum Telekonsil. "
        "Zu Ihrer Fragestellung nehme ich wie folgt Stellung."
    )


def _request(pdf: _Document, letter: Letter) -> None:
    given = letter.particulars
    diagnosis = diagnosis_line(given)
    if diagnosis:
        pdf.section("Diagnose (laut Anfrage)", diagnosis)
    pdf.section("Fragestellung", letter.question)
    if given.medication:
        pdf.section("Medikation (laut Anfrage)", given.medication)
    pdf.ln(2.5)
    if given.answer_by:
        pdf.labelled("Antwort erbeten bis", day(given.answer_by))
    if given.consent_recorded_at:
        pdf.labelled(
            "Einverständnis zum Telekonsil", f"dokumentiert am {day(given.consent_recorded_at)}"
        )
    if letter.call:
        pdf.labelled("Videokonsultation", call_line(letter.call))
    elif letter.written:
        pdf.labelled("Form", "schriftliches Telekonsil, ohne Videokonsultation")


def _report(pdf: _Document, letter: Letter) -> None:
    pdf.section("Beurteilung", letter.report.strip("\n"))


def _closing(pdf: _Document, letter: Letter) -> None:
    pdf.ln(6)
    if pdf.will_page_break(SIGNATURE_BLOCK):
        pdf.add_page()
    pdf.para("Mit freundlichen kollegialen Grüßen")
    pdf.ln(14)
    pdf.set_draw_color(*INK)
    pdf.line(LEFT + pdf.c_margin, pdf.get_y(), LEFT + 70, pdf.get_y())
    pdf.ln(1.5)
    pdf.para(letter.specialist_name, style="B")
    if letter.specialty:
        pdf.para(letter.specialty, size=9.5)
    if letter.specialist_lanr:
        pdf.para(f"LANR {letter.specialist_lanr}", size=9.5)
    pdf.ln(2)
    pdf.set_text_color(*QUIET)
    when = letter.written_at
    pdf.para(f"Bericht zuletzt geändert am {day(when)} um {when:%H:%M} Uhr", size=8.5)
    pdf.set_text_color(*INK)
