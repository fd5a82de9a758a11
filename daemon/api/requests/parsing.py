"""From untrusted parameters to a request model, or ``InvalidRequest`` naming every bad field.

The socket API replies with the first problem (``{"code": "invalid", "field": ..., "message": ...}``);
the HTTP API lists them all, 400 when any is a wrong JSON type and 422 otherwise.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic

from daemon.api.requests.base import Request
from daemon.api.requests.rules import INTEGER_TEXT
from daemon.core.errors import ValidationError

R = TypeVar("R", bound=Request)


@dataclass(frozen=True, slots=True)
class Problem:
    """One refused field (None: the request as a whole); ``wrong_type`` problems are answered 400."""

    field: str | None
    message: str
    wrong_type: bool = False


class InvalidRequest(ValidationError):
    """Request parameters refused: ``problems`` lists every one, ``field`` and ``reason`` are the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        first = problems[0]
        super().__init__(first.field or "params", first.message)
        self.problems = tuple(problems)


def parse(model: type[R], params: Mapping[str, Any], *, strict: bool = False) -> R:
    """``params`` as a ``model``; ``strict``: JSON types exactly as its schema says (the HTTP API),
    else with the socket's conveniences (see ``daemon.api.requests.rules``)."""
    params = _readable_keys(model, params)
    try:
        return model.model_validate(params, context={"strict": strict})
    except pydantic.ValidationError as exc:
        raise InvalidRequest(_problems(model, exc)) from None


def parse_query(model: type[R], given: Mapping[str, Sequence[str]]) -> R:
    """Path or query parameters (each name with every value sent) as a ``model``, strictly: a name given
    twice is refused, and a value for an integer parameter is read from its digits."""
    repeated = [Problem(name, "give it once", wrong_type=True) for name, values in given.items() if len(values) > 1]
    integers = _integer_fields(model)
    values = {name: int(sent[0]) if name in integers and INTEGER_TEXT.fullmatch(sent[0]) else sent[0]
              for name, sent in given.items() if len(sent) == 1}
    try:
        parsed = parse(model, values, strict=True)
    except InvalidRequest as exc:
        raise InvalidRequest([*repeated, *exc.problems]) from None
    if repeated:
        raise InvalidRequest(repeated)
    return parsed


@functools.cache
def _integer_fields(model: type[Request]) -> frozenset[str]:
    properties: dict[str, Any] = model.model_json_schema()["properties"]
    return frozenset(name for name, schema in properties.items() if "integer" in str(schema.get("type")))


def _escaped(name: str) -> str:
    """A field name as it can be shown: an empty key is still a key the sender should see named, a
    broken one (a lone surrogate) is named escaped."""
    return name.encode("utf-8", "backslashreplace").decode() or '""'


def _is_unicode(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unknown(model: type[Request]) -> str:
    return f"unknown field (allowed: {', '.join(sorted(model.model_fields))})"


def _readable_keys(model: type[Request], params: Mapping[str, Any]) -> Mapping[str, Any]:
    """pydantic cannot read a key that is not valid Unicode (it fails the whole request, naming no field):
    such a key is never a field of ours, so it is refused as unknown (or dropped, where unknown is ignored)."""
    broken = [key for key in params if isinstance(key, str) and not _is_unicode(key)]
    if not broken:
        return params
    if model.model_config.get("extra") == "forbid":
        raise InvalidRequest([Problem(_escaped(broken[0]), _unknown(model))])
    return {key: value for key, value in params.items() if key not in broken}


def _problems(model: type[Request], exc: pydantic.ValidationError) -> list[Problem]:
    """pydantic's errors in our words: unknown fields first (a typo explains the rest), then by field."""
    unknown: list[Problem] = []
    found: list[Problem] = []
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        field = _escaped(str(error["loc"][0])) if error["loc"] else None
        kind = error["type"]
        if kind == "extra_forbidden":
            unknown.append(Problem(field, _unknown(model)))
        elif kind == "missing":
            found.append(Problem(field, "required"))
        elif field is None:  # not an object at all (callers pass mappings; kept for safety)
            found.append(Problem(None, "must be a JSON object", wrong_type=True))
        else:
            found.append(Problem(field, error["msg"], wrong_type=kind == "wrong_type"))
    return [*unknown, *found]
