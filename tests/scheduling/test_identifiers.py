"""The identifiers of a Telekonsil request: KVNR, LANR and BSNR with their check digits, and the
form of an ICD-10-GM code."""

from __future__ import annotations

import pytest

from app.scheduling import identifiers as ids


@pytest.mark.parametrize(
    "kvnr",
    [
        "X110411675",  # gematik's test insured person
        "A123456780",
        "a 123 456 780",  # as typed from the card: capitals and no spaces afterwards
    ],
)
def test_valid_kvnr_is_accepted_in_its_canonical_form(kvnr: str) -> None:
    assert ids.normalise_kvnr(kvnr) == kvnr.replace(" ", "").upper()


@pytest.mark.parametrize(
    ("kvnr", "message"),
    [
        ("X110411676", "Prüfziffer"),  # one digit off
        ("A123456708", "Prüfziffer"),  # two digits swapped
        ("1234567890", "Buchstaben"),
        ("A12345678", "Buchstaben"),
        ("ÄA23456780", "Buchstaben"),
    ],
)
def test_invalid_kvnr_is_refused_with_a_reason(kvnr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ids.normalise_kvnr(kvnr)


def test_kvnr_check_digit_follows_the_letter_as_two_digits_and_weights_one_two() -> None:
    # X = 24: 2 4 1 1 0 4 1 1 6 7, weighted 1 2 1 2 …: 2+8+1+2+0+8+1+2+6+(1+4) = 35.
    assert ids.kvnr_check_digit("X11041167") == 5


def test_lanr_check_digit_weights_four_and_nine() -> None:
    # 1·4 + 2·9 + 3·4 + 4·9 + 5·4 + 6·9 = 144: 10 − 4 = 6.
    assert ids.lanr_check_digit("123456") == 6
    # A sum ending in 0 gives 0, not 10.
    assert ids.lanr_check_digit("000000") == 0
    assert ids.normalise_lanr("123456 6 01") == "123456601"
    with pytest.raises(ValueError, match="Prüfziffer"):
        ids.normalise_lanr("123456701")
    with pytest.raises(ValueError, match="neun Ziffern"):
        ids.normalise_lanr("12345660")


def test_bsnr_is_nine_digits() -> None:
    assert ids.normalise_bsnr("72 123 4500") == "721234500"
    with pytest.raises(ValueError, match="neun Ziffern"):
        ids.normalise_bsnr("72-1234500")


@pytest.mark.parametrize(
    ("code", "canonical"),
    [
        ("I48.0", "I48.0"),
        ("r07.4", "R07.4"),
        ("U07.1", "U07.1"),
        ("E11", "E11"),
        ("M54.16", "M54.16"),
    ],
)
def test_icd10_gm_codes_in_their_form(code: str, canonical: str) -> None:
    assert ids.normalise_icd10(code) == canonical


@pytest.mark.parametrize("code", ["I48.", "I4", "148.0", "I48.012", "I48.0G", "E11.-", ""])
def test_icd10_gm_codes_out_of_form_are_refused(code: str) -> None:
    with pytest.raises(ValueError, match="ICD-10-GM"):
        ids.normalise_icd10(code)
