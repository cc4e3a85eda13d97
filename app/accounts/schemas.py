"""Request and response bodies of the admin's account and practice endpoints
(``app.accounts.routes_admin``), shared with the service (``app.accounts.admin``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, model_validator
from pydantic_core import PydanticCustomError

from app.accounts.models import Role
from app.scheduling import identifiers
from app.schemas import Id, Out, Schema


def _invalid(message: str) -> PydanticCustomError:
    """A field error whose message is shown as is (no "Value error, " prefix)."""
    return PydanticCustomError("invalid", message)


NOTHING_TO_CHANGE = "Bitte geben Sie an, was sich ändern soll."


def _require_some(model: Schema, not_null: tuple[str, ...]) -> None:
    """A PATCH body: at least one field, and null only where it means "none"."""
    if not model.model_fields_set:
        raise _invalid(NOTHING_TO_CHANGE)
    for name in not_null:
        if name in model.model_fields_set and getattr(model, name) is None:
            raise _invalid(f"{name} darf nicht leer sein.")


def _number(normalise: Callable[[str], str]) -> Callable[[str | None], str | None]:
    """A doctor number's check: empty means none, else normalised or a clear error."""

    def check(value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return normalise(value)
        except ValueError as exc:
            raise _invalid(str(exc)) from None

    return check


# The Lebenslange Arztnummer of a GP or specialist, the Betriebsstättennummer of a practice.
Lanr = Annotated[
    str | None, Field(max_length=20), AfterValidator(_number(identifiers.normalise_lanr))
]
Bsnr = Annotated[
    str | None, Field(max_length=20), AfterValidator(_number(identifiers.normalise_bsnr))
]


class UserIn(Schema):
    email: EmailStr
    password: str = Field(min_length=10, max_length=1024)
    display_name: str = Field(min_length=1, max_length=200)
    role: Role
    practice_id: Id | None = None
    specialty_id: Id | None = None
    # The doctor's LANR (GPs and specialists; none for admins).
    lanr: Lanr = None


class UserOut(Out):
    id: int
    email: str
    display_name: str
    role: Role
    practice_id: int | None
    specialty_id: int | None
    lanr: str | None = None
    is_active: bool
    # Whether the account has set up a second factor (app or passkey).
    second_factor: bool = False
    # Whether the account is bound to a single sign-on identity.
    single_sign_on: bool = False


class UserPatch(Schema):
    """Only the fields sent change. ``practice_id``/``specialty_id`` may be null (none)."""

    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    practice_id: Id | None = None
    specialty_id: Id | None = None
    is_active: bool | None = None
    # null or "" removes the number.
    lanr: Lanr = None

    @model_validator(mode="after")
    def _not_null(self) -> UserPatch:
        _require_some(self, ("display_name", "role", "is_active"))
        return self


class PracticeIn(Schema):
    name: str = Field(min_length=1, max_length=200)
    town: str = Field(min_length=1, max_length=120)
    # Any usual spelling; stored in E.164 (a national number is read as German).
    phone: str | None = Field(default=None, max_length=40)
    bsnr: Bsnr = None


class PracticePatch(Schema):
    """Only the fields sent change; ``phone`` null or empty removes the number."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    town: str | None = Field(default=None, min_length=1, max_length=120)
    phone: str | None = Field(default=None, max_length=40)
    # null or "" removes the number.
    bsnr: Bsnr = None

    @model_validator(mode="after")
    def _not_null(self) -> PracticePatch:
        _require_some(self, ("name", "town"))
        return self


class PracticeOut(Out):
    id: int
    name: str
    town: str
    phone: str | None
    bsnr: str | None = None
