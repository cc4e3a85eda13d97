"""The printed invitation: one A4 page (PDF) for patients without e-mail or a mobile phone.

Large type, the appointment's time, a QR code of the join link (``segno``), the link spelt out
for typing, what the patient needs and the practice's phone number. Like the e-mails it says
nothing about health: no name, no specialty, no question. Pure: data in, PDF bytes out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import segno
from babel.dates import format_datetime
from fpdf import FPDF
from fpdf.enums import XPos, YPos

FONTS = Path(__file__).parent / "fonts"
LANGUAGES = ("de", "en")
_WHEN = {"de": "EEEE, d. MMMM y", "en": "EEEE, d MMMM y"}
_TIME = {"de": "HH:mm 'Uhr'", "en": "HH:mm"}

MARGIN = 20.0  # mm
QR_SIZE = 62.0  # mm: scannable from arm's length by an old phone camera
INK = (20, 20, 20)
QUIET = (90, 90, 90)


@dataclass(frozen=True)
class PrintedInvitation:
    """What the page may say. Times are local (the deployment's zone)."""

    starts_at: datetime
    opens_at: datetime
    join_url: str
    practice_name: str | None = None
    practice_phone: str | None = None  # as people read it (``app.accounts.phones.display``)


_TEXT: dict[str, dict[str, str]] = {
    "de": {
        "title": "Einladung zur Video-Sprechstunde",
        "from": "{practice} hat für Sie einen Termin vereinbart.",
        "from_unknown": "Ihre Hausarztpraxis hat für Sie einen Termin vereinbart.",
        "when": "Ihr Termin",
        "at": "um",
        "how": "So nehmen Sie teil",
        "step1": "Ab {opens}: Halten Sie die Kamera Ihres Smartphones auf den Code "
        "und tippen Sie auf den Link, der erscheint.",
        "step2": "Erlauben Sie Kamera und Mikrofon, wenn Sie gefragt werden.",
        "step3": "Sie kommen ins Wartezimmer. Die Ärztin oder der Arzt holt Sie dort ab.",
        "type": "Ohne Code: Geben Sie diese Adresse im Browser ein:",
        "need": "Was Sie brauchen",
        "need1": "Smartphone, Tablet oder Computer mit Kamera und Mikrofon",
        "need2": "Internet, am besten WLAN",
        "need3": "einen ruhigen, hellen Platz",
        "need4": "kein Programm, kein Konto, kein Passwort",
        "private": "Dieser Zettel ist Ihr persönlicher Zugang. Bitte geben Sie ihn nicht weiter.",
        "call": "Fragen, oder Sie können den Termin nicht wahrnehmen? Rufen Sie Ihre Praxis an:",
        "call_practice": "Fragen, oder Sie können den Termin nicht wahrnehmen? "
        "Wenden Sie sich bitte an Ihre Praxis.",
        "subject": "Einladung zur Video-Sprechstunde",
    },
    "en": {
        "title": "Invitation to a video consultation",
        "from": "{practice} has booked an appointment for you.",
        "from_unknown": "Your GP practice has booked an appointment for you.",
        "when": "Your appointment",
        "at": "at",
        "how": "How to take part",
        "step1": "From {opens}: point your smartphone's camera at the code "
        "and tap the link that appears.",
        "step2": "Allow the camera and microphone when you are asked.",
        "step3": "You will be in the waiting room. The doctor will let you in from there.",
        "type": "Without the code: type this address into your browser:",
        "need": "What you need",
        "need1": "a smartphone, tablet or computer with a camera and microphone",
        "need2": "internet, Wi-Fi if possible",
        "need3": "a quiet, well-lit place",
        "need4": "no app, no account, no password",
        "private": "This sheet is your personal access. Please do not pass it on.",
        "call": "Questions, or you cannot make it? Call your practice:",
        "call_practice": "Questions, or you cannot make it? Please contact your practice.",
        "subject": "Invitation to a video consultation",
    },
}


def invitation_pdf(invitation: PrintedInvitation, language: str) -> bytes:
    """The invitation as an A4 PDF in ``language`` (German if unknown)."""
    language = language if language in LANGUAGES else "de"
    text = _TEXT[language]
    pdf = _document(language, text["subject"])
    width = pdf.w - 2 * MARGIN

    pdf.set_text_color(*INK)
    _font(pdf, "B", 24)
    pdf.multi_cell(width, 11, text["title"], new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
    pdf.ln(2)
    _font(pdf, "", 14)
    if invitation.practice_name:
        intro = text["from"].format(practice=invitation.practice_name)
    else:
        intro = text["from_unknown"]
    pdf.multi_cell(width, 7, intro, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")

    _heading(pdf, text["when"], width)
    _font(pdf, "B", 22)
    day = format_datetime(invitation.starts_at, _WHEN[language], locale=language)
    time = format_datetime(invitation.starts_at, _TIME[language], locale=language)
    pdf.multi_cell(width, 10, day, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
    pdf.multi_cell(
        width, 10, f"{text['at']} {time}", new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L"
    )

    _heading(pdf, text["how"], width)
    top = pdf.get_y()
    _qr(pdf, invitation.join_url, x=MARGIN, y=top, size=QR_SIZE)
    steps_x = MARGIN + QR_SIZE + 8
    steps_width = pdf.w - MARGIN - steps_x
    opens = format_datetime(invitation.opens_at, _TIME[language], locale=language)
    pdf.set_xy(steps_x, top)
    _font(pdf, "", 14)
    for number, step in enumerate(
        (text["step1"].format(opens=opens), text["step2"], text["step3"]), start=1
    ):
        pdf.set_x(steps_x)
        _font(pdf, "B", 14)
        pdf.cell(8, 7, f"{number}.")
        _font(pdf, "", 14)
        pdf.multi_cell(steps_width - 8, 7, step, new_x=XPos.LEFT, new_y=YPos.NEXT, align="L")
        pdf.ln(2)
    pdf.set_y(max(pdf.get_y(), top + QR_SIZE) + 4)
    pdf.set_x(MARGIN)
    _font(pdf, "", 12)
    pdf.multi_cell(width, 6, text["type"], new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
    pdf.set_font("Mono", "", 11)
    pdf.multi_cell(width, 6, invitation.join_url, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")

    _heading(pdf, text["need"], width)
    _font(pdf, "", 14)
    for need in (text["need1"], text["need2"], text["need3"], text["need4"]):
        pdf.cell(7, 7, "●")
        pdf.multi_cell(width - 7, 7, need, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")

    pdf.ln(5)
    _font(pdf, "B", 13)
    pdf.multi_cell(width, 6.5, text["private"], new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
    pdf.ln(3)
    _font(pdf, "", 13)
    if invitation.practice_phone:
        pdf.multi_cell(width, 6.5, text["call"], new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
        _font(pdf, "B", 16)
        line = invitation.practice_phone
        if invitation.practice_name:
            line = f"{invitation.practice_name}: {line}"
        pdf.multi_cell(width, 8, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
    else:
        pdf.multi_cell(
            width, 6.5, text["call_practice"], new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L"
        )
    return bytes(pdf.output())


def _document(language: str, title: str) -> FPDF:
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(auto=True, margin=MARGIN)
    pdf.add_font("Sans", "", FONTS / "DejaVuSans.ttf")
    pdf.add_font("Sans", "B", FONTS / "DejaVuSans-Bold.ttf")
    pdf.add_font("Mono", "", FONTS / "DejaVuSansMono.ttf")
    pdf.set_title(title)
    pdf.set_creator("Konsil")
    pdf.set_lang(language)
    pdf.add_page()
    return pdf


def _font(pdf: FPDF, style: str, size: float) -> None:
    pdf.set_font("Sans", style, size)


def _heading(pdf: FPDF, title: str, width: float) -> None:
    pdf.ln(6)
    pdf.set_text_color(*QUIET)
    _font(pdf, "B", 13)
    pdf.cell(width, 7, title.upper(), new_x=XPos.LMARGIN, new_y=YPos.NEXT, align="L")
    pdf.set_text_color(*INK)
    pdf.ln(1)


def _qr(pdf: FPDF, url: str, *, x: float, y: float, size: float) -> None:
    """The link as a QR code drawn in vectors (sharp on any printer), with its quiet zone
    inside ``size``; runs of dark modules in a row are one rectangle each."""
    code = segno.make(url, error="m", micro=False)
    rows = [list(row) for row in code.matrix_iter(scale=1, border=4)]
    module = size / len(rows)
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        c = 0
        while c < len(row):
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                pdf.rect(
                    x + start * module, y + r * module, (c - start) * module, module, style="F"
                )
            else:
                c += 1
