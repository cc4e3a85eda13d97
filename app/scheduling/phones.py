"""Patients' mobile numbers for SMS: parsed with Google's libphonenumber (``phonenumbers``) and
kept in E.164 (``+4915112345678``), so that a number typed in any spelling reaches the gateway
in the one form every gateway takes. A national number is read as German unless it starts
with ``+`` or ``00`` and a country code."""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberType

from app.accounts.phones import DEFAULT_REGION, e164, parsed

# What can receive an SMS: a mobile number, or one the numbering plan does not tell apart
# (the USA and Canada, for instance).
_SMS_CAPABLE = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})

INVALID = (
    "Die Mobilnummer ist ungültig. Bitte mit Vorwahl angeben, z. B. 0151 23456789 oder "
    "+49 151 23456789."
)
NOT_MOBILE = "Das ist keine Mobilnummer: SMS können nur an ein Handy gesendet werden."


def mobile_e164(text: str, *, region: str = DEFAULT_REGION) -> str:
    """``text`` as an E.164 mobile number; ``ValueError`` (with the German message to show)
    for anything else."""
    number = parsed(text.strip(), region=region)
    if number is None:
        raise ValueError(INVALID)
    if phonenumbers.number_type(number) not in _SMS_CAPABLE:
        raise ValueError(NOT_MOBILE)
    return e164(number)
