"""The identifiers a Telekonsil request carries (Telekonsilien-Vereinbarung § 3), checked as
the German health system defines them: pure functions, no I/O.

- **KVNR**, the unchangeable part of the health insurance number: a capital letter, eight
  digits and a check digit. The letter becomes its two-digit place in the alphabet (A = 01 …
  Z = 26); the ten digits before the check digit are weighted 1, 2, 1, 2, …; a product above 9
  counts as the sum of its digits; the sum modulo 10 is the check digit.
- **LANR**, the doctor's lifelong number (lebenslange Arztnummer): nine digits, six of them the
  doctor's number, then a check digit, then two for the specialty group. The check digit: the
  first six digits weighted 4, 9, 4, 9, 4, 9; ten minus the sum modulo 10 (0 for 10).
- **BSNR**, the practice's number (Betriebsstättennummer): nine digits, the first two the
  Kassenärztliche Vereinigung's region; no check digit.
- **ICD-10-GM codes**: a letter, two digits, and optionally a dot with one or two more digits
  (``I48.0``, ``R07.4``, ``U07.1``); a three-character code may end in ``.-`` in lists, never
  on a request. The diagnostic certainty (G confirmed, V suspected, Z state after, A
  excluded) is a field of its own, not part of the code.

Each ``normalise_*`` returns the canonical form (capitals, no spaces) or raises ``ValueError``
with a German message for the form.
"""

from __future__ import annotations

import re
from enum import StrEnum

_KVNR = re.compile(r"[A-Z][0-9]{9}")
_NINE_DIGITS = re.compile(r"[0-9]{9}")
_ICD10 = re.compile(r"[A-Z][0-9]{2}(\.[0-9]{1,2})?")
_LANR_WEIGHTS = (4, 9, 4, 9, 4, 9)


class Certainty(StrEnum):
    """Diagnosesicherheit, as on a German referral or bill."""

    CONFIRMED = "G"
    SUSPECTED = "V"
    STATE_AFTER = "Z"
    EXCLUDED = "A"


def _compact(value: str) -> str:
    return re.sub(r"\s+", "", value).upper()


def kvnr_check_digit(first_nine: str) -> int:
    """The check digit of a KVNR's letter and first eight digits."""
    digits = f"{ord(first_nine[0]) - ord('A') + 1:02d}" + first_nine[1:]
    total = 0
    for position, digit in enumerate(digits):
        product = int(digit) * (1 if position % 2 == 0 else 2)
        total += product // 10 + product % 10
    return total % 10


def normalise_kvnr(value: str) -> str:
    kvnr = _compact(value)
    if not _KVNR.fullmatch(kvnr):
        raise ValueError(
            "Die Versichertennummer hat einen Buchstaben und neun Ziffern (z. B. A123456780)."
        )
    if kvnr_check_digit(kvnr[:9]) != int(kvnr[9]):
        raise ValueError("Die Versichertennummer ist nicht gültig (Prüfziffer).")
    return kvnr


def lanr_check_digit(doctor_number: str) -> int:
    """The check digit of a LANR's first six digits."""
    total = sum(int(d) * w for d, w in zip(doctor_number, _LANR_WEIGHTS, strict=True))
    return (10 - total % 10) % 10


def normalise_lanr(value: str) -> str:
    lanr = _compact(value)
    if not _NINE_DIGITS.fullmatch(lanr):
        raise ValueError("Die LANR hat neun Ziffern.")
    if lanr_check_digit(lanr[:6]) != int(lanr[6]):
        raise ValueError("Die LANR ist nicht gültig (Prüfziffer).")
    return lanr


def normalise_bsnr(value: str) -> str:
    bsnr = _compact(value)
    if not _NINE_DIGITS.fullmatch(bsnr):
        raise ValueError("Die BSNR hat neun Ziffern.")
    return bsnr


def normalise_icd10(value: str) -> str:
    code = _compact(value)
    if not _ICD10.fullmatch(code):
        raise ValueError("Der ICD-10-GM-Code hat die Form Buchstabe, zwei Ziffern, z. B. I48.0.")
    return code
