"""Request and response bodies of the presence API (also the websocket ``presence`` message)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.presence.models import Chosen
from app.presence.rules import Presence
from app.schemas import Out, Schema


class PresenceIn(Schema):
    """The specialist's own presence: ``on_duty`` (available for consultations now) or
    ``away``. "In a consultation" is never set: it follows from the rooms."""

    status: Chosen

    @field_validator("status", mode="wrap")
    @classmethod
    def _status(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError(
                "invalid", "Bitte „on_duty“ (im Dienst) oder „away“ (abwesend) angeben."
            ) from None


class PresenceOut(Out):
    """A specialist's own presence now."""

    status: Presence = Field(
        description="What GPs see counted: on_duty (available now), in_call (a consultation is "
        "going on, whatever the toggle) or away."
    )
    on_duty: bool = Field(
        description="The toggle as it counts now: set on duty by a session that is still live "
        "(false after a logout or a timeout, until set again)."
    )
    updated_at: datetime | None = Field(description="When the toggle was last set (null: never).")


class SpecialtyPresence(BaseModel):
    """One specialty's specialists right now, counted: never who, never with whom."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specialty_id: int
    slug: str
    name_de: str
    name_en: str
    on_duty: int = Field(ge=0, description="Specialists on duty and free now.")
    in_call: int = Field(ge=0, description="Specialists in a consultation now.")
