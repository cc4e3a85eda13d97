"""Phone numbers of practices: parsed with Google's libphonenumber (``phonenumbers``), stored
in E.164 (``+493563123456``), so every number has one spelling whatever was typed."""

from __future__ import annotations

import phonenumbers

from app.errors import InvalidInput

DEFAULT_REGION = "DE"
MAX_INPUT_LENGTH = 40


def normalise(
    value: str | None, *, region: str = DEFAULT_REGION, field: str = "phone"
) -> str | None:
    """``value`` in E.164; None for an empty value. A national number (``03563 12 34 56``) is
    read as one of ``region``. Raises ``InvalidInput`` for anything that is not a valid number."""
    text = (value or "").strip()
    if not text:
        return None
    number = parsed(text, region=region)
    if number is None:
        raise _invalid(field)
    return e164(number)


def parsed(text: str, *, region: str = DEFAULT_REGION) -> phonenumbers.PhoneNumber | None:
    """The valid number ``text`` spells (a national one read as ``region``'s), or None."""
    if len(text) > MAX_INPUT_LENGTH:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_valid_number(number) else None


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _invalid(field: str) -> InvalidInput:
    message = (
        "Die Telefonnummer ist ungültig. Bitte mit Vorwahl angeben, "
        "z. B. 03563 123456 oder +49 3563 123456."
    )
    return InvalidInput(message, fields=[{"field": field, "message": message}])


def display(e164: str, *, region: str = DEFAULT_REGION) -> str:
    """A stored number as people read it: national within ``region`` (``03563 123456``),
    international otherwise (``+48 22 123 45 67``)."""
    try:
        number = phonenumbers.parse(e164, region)
    except phonenumbers.NumberParseException:
        return e164
    same = phonenumbers.region_code_for_number(number) == region
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if same
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(number, style)
