"""The EBM export as a CSV file for German spreadsheets: UTF-8 with a byte order mark, ``;``
between cells, CRLF, dates as ``TT.MM.JJJJ``. Its first line says what the file is (a helper,
no billing file), its second names the columns. Cells a spreadsheet would run as a formula are
made inert as in the audit export (a leading ``'``). Pure."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime

from app.audit.export import cell
from app.billing.ebm import TITLES, Quarter, Row, Side

BOM = "\ufeff"
NOTICE = "Abrechnungshilfe – keine Abrechnungsdatei"
COLUMNS = (
    "Datum",
    "Patient",
    "Geburtsdatum",
    "Versichertennummer",
    "GOP",
    "Leistung",
    "Anzahl",
    "Minuten",
    "Termin",
    "Hinweis",
)
WHOSE = {Side.ASKING: "Einholende Ärztin/Arzt", Side.ANSWERING: "Konsiliarärztin/-arzt"}


def filename(quarter: Quarter) -> str:
    return f"konsil-ebm-{quarter}.csv"


def document(
    rows: Iterable[Row], *, quarter: Quarter, side: Side, staff_name: str, created: datetime
) -> str:
    """The whole file as text (BOM first). ``created``: local time of the download."""
    heading = [
        NOTICE,
        f"Quartal {quarter}",
        f"{WHOSE[side]}: {staff_name}",
        f"Erstellt {created:%d.%m.%Y %H:%M}",
    ]
    return BOM + _lines([heading, COLUMNS, *(_cells(row) for row in rows)])


def _cells(row: Row) -> list[object]:
    return [
        f"{row.day:%d.%m.%Y}",
        row.patient_name,
        f"{row.patient_birth_date:%d.%m.%Y}",
        row.insurance_number,
        row.gop.value,
        TITLES[row.gop],
        row.count,
        row.minutes,
        row.appointment_id,
        row.note,
    ]


def _lines(rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return buffer.getvalue()
