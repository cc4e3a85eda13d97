"""Bases of the JSON bodies the API reads and writes (no web framework here, so the pure cores
that share these models stay free of it)."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# Row ids are 32-bit integer columns (PostgreSQL ``integer``): a larger number names nothing.
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_day(value: object) -> object:
    # Without this pydantic also takes a number ("0", 0) as a Unix time: 1970-01-01.
    if isinstance(value, date) or (isinstance(value, str) and _ISO_DAY.fullmatch(value)):
        return value
    raise ValueError("Datum im Format JJJJ-MM-TT erwartet")


Day = Annotated[date, BeforeValidator(_iso_day)]
"""A calendar day, given as YYYY-MM-DD (JSON schema: string, format date)."""


class Schema(BaseModel):
    """Base of request bodies: unknown fields are an error, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(from_attributes=True)
