"""The base of every request model, and the one way to refuse a field from a check across fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError


class Request(BaseModel):
    """Base of every request: an unknown field is refused by name, and a validated request is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def field_error(model: type[Request], field: str, message: str, kind: str = "invalid") -> ValidationError:
    """A refusal of ``field`` raised from a model validator (whose own errors name no field)."""
    return ValidationError.from_exception_data(model.__name__, [InitErrorDetails(
        type=PydanticCustomError(kind, message), loc=(field,), input=None)])
