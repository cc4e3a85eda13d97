"""How long an SMS is: the GSM 03.38 alphabet (GSM-7) and UCS-2, and their segments. Pure.

A text of GSM-7 characters goes as 7-bit septets: 160 in one SMS, 153 per part of a longer one
(the rest holds the header that joins the parts). The characters of the extension table (``€``,
``[``, ``{``, …) take two septets, and an escape pair is never split between parts. One
character outside GSM-7 turns the whole text into UCS-2: 70 UTF-16 code units in one SMS, 67
per part, and a surrogate pair (an emoji) is never split either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The basic table, in code order (0x1B, the escape to the extension table, left out).
BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
) - {"\x1b"}
EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE = {"gsm7": 160, "ucs2": 70}
PART = {"gsm7": 153, "ucs2": 67}

# Typography a template variable may bring (a practice's name) that GSM-7 lacks, and the plain
# character that says the same: one such quote would otherwise make the SMS UCS-2.
_PLAIN = str.maketrans(
    {
        "\u201e": '"',  # „
        "\u201c": '"',  # “
        "\u201d": '"',  # ”
        "\u201a": "'",  # ‚
        "\u2018": "'",  # ‘
        "\u2019": "'",  # ’
        "\u00b4": "'",  # ´
        "\u2013": "-",  # –
        "\u2014": "-",  # —
        "\u2010": "-",  # ‐
        "\u2011": "-",  # non-breaking hyphen
        "\u00a0": " ",  # no-break space
        "\u202f": " ",  # narrow no-break space
        "\u2009": " ",  # thin space
        "\u2026": "...",  # …
    }
)

Encoding = Literal["gsm7", "ucs2"]


@dataclass(frozen=True)
class Length:
    """An SMS text's encoding, its length in that encoding's units, and how many SMS it takes."""

    encoding: Encoding
    units: int
    segments: int


def plain(text: str) -> str:
    """``text`` with typographic quotes, dashes and spaces replaced by GSM-7 ones."""
    return text.translate(_PLAIN)


def is_gsm7(text: str) -> bool:
    return all(c in BASIC or c in EXTENSION for c in text)


def measure(text: str) -> Length:
    """The encoding ``text`` needs and the number of SMS it takes."""
    if is_gsm7(text):
        units = [2 if c in EXTENSION else 1 for c in text]
        encoding: Encoding = "gsm7"
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in text]  # UTF-16 code units
        encoding = "ucs2"
    total = sum(units)
    if total <= SINGLE[encoding]:
        return Length(encoding, total, 1 if total else 0)
    return Length(encoding, total, _parts(units, PART[encoding]))


def _parts(units: list[int], size: int) -> int:
    """How many parts of ``size`` units hold the characters, none split between two."""
    parts, used = 1, 0
    for unit in units:
        if used + unit > size:
            parts, used = parts + 1, 0
        used += unit
    return parts
