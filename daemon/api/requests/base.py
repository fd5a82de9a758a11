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


def with_error(model: type[Request], exc: ValidationError, field: str, message: str, kind: str) -> ValidationError:
    """``exc`` with a refusal of ``field`` added in field order (unless ``field`` is refused already)."""
    found = exc.errors(include_url=False)
    if any(error["loc"][:1] == (field,) for error in found):
        return exc
    mine = InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=None)
    order = list(model.model_fields)
    details = [InitErrorDetails(type=PydanticCustomError(e["type"], e["msg"]), loc=e["loc"], input=e.get("input"))
               for e in found]
    position = next((i for i, e in enumerate(found) if e["loc"][:1] and str(e["loc"][0]) in order
                     and order.index(str(e["loc"][0])) > order.index(field)), len(found))
    details.insert(position, mine)
    return ValidationError.from_exception_data(model.__name__, details)
