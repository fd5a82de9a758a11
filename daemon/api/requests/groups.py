"""Requests about recipient groups and batch sends: a group's name, its members, and the ``group.*`` and
``batch.show`` models (``send`` with ``group`` is ``SendRequest``, in ``models``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, model_validator

from daemon.api.requests.base import Request, field_error
from daemon.api.requests.rules import INT64_MAX, Integer, Rule, _as_int, _is_int, invalid, wrong_type
from daemon.core.groups import GROUP_NAME, MAX_MEMBERS


@dataclass(frozen=True, slots=True)
class GroupName(Rule):
    """A group's name: ``[a-z0-9][a-z0-9_.-]{0,63}``."""

    optional: bool = False

    def check(self, value: Any, strict: bool) -> str:
        if not isinstance(value, str):
            raise wrong_type("must be a string")
        if not GROUP_NAME.fullmatch(value):
            raise invalid("a group name is 1 to 64 of a-z 0-9 _ . - (lower case), starting with a letter or digit")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^{GROUP_NAME.pattern}$", "maxLength": 64}


@dataclass(frozen=True, slots=True)
class Members(Rule):
    """Recipient ids (lax: also ``"1,3,4"``, as the CLI sends them); repeats count once."""

    optional: bool = False

    def check(self, value: Any, strict: bool) -> tuple[int, ...]:
        if isinstance(value, str) and not strict:
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            raise wrong_type("must be a list of recipient ids")
        ids: list[int] = []
        for item in value:
            item = _as_int(item, strict)
            if not _is_int(item):
                raise wrong_type(f"{item!r} is not a recipient id (an integer)")
            if not 1 <= item <= INT64_MAX:
                raise invalid(f"{item} is not a recipient id (1 to {INT64_MAX})")
            ids.append(int(item))
        if len(set(ids)) > MAX_MEMBERS:
            raise invalid(f"a group holds at most {MAX_MEMBERS} recipients ({len(set(ids))} given)")
        return tuple(sorted(set(ids)))

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
                "maxItems": MAX_MEMBERS}


Name = Annotated[str, GroupName()]


class ByName(Request):
    """One group, by name (``group.show``, ``group.remove``)."""

    name: Name = Field(description="The group's name.")


class GroupCreate(Request):
    """Add a group."""

    name: Name = Field(description="The group's name: 1 to 64 of a-z 0-9 _ . -, starting with a letter or digit.")
    members: Annotated[tuple[int, ...], Members()] = Field(
        (), description="Recipient ids; each must exist. Default: none (a send to an empty group is refused).")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class GroupChanges(Request):
    """Change a group: rename it, replace its members, or add and remove some."""

    rename: Annotated[str | None, GroupName(optional=True)] = Field(
        None, description="A new name for the group.", json_schema_extra=_no_default)
    members: Annotated[tuple[int, ...] | None, Members(optional=True)] = Field(
        None, description="The new members, replacing the old; not with add or remove.")
    add: Annotated[tuple[int, ...], Members()] = Field((), description="Recipient ids to add; each must exist.")
    remove: Annotated[tuple[int, ...], Members()] = Field((), description="Recipient ids to take out.")

    @model_validator(mode="after")
    def _members_or_changes(self) -> GroupChanges:
        if self.members is not None and (self.add or self.remove):
            raise field_error(type(self), "members", "give either members (the whole list) or add / remove")
        return self


class GroupUpdate(GroupChanges):
    """Change a group (socket ``group.update``: the name with the changes)."""

    name: Name = Field(description="The group's current name.")

    @classmethod
    def of(cls, name: str, changes: GroupChanges) -> GroupUpdate:
        """From a name and changes already validated apart (the HTTP API's path and body)."""
        return cls.model_construct(_fields_set={"name", *changes.model_fields_set}, name=name,
                                   **{field: getattr(changes, field) for field in GroupChanges.model_fields})


class ByBatch(Request):
    """One batch (a send to a group), by id."""

    id: Annotated[int, Integer()] = Field(description="The batch's id (batch_id).")
