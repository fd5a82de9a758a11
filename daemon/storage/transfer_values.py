"""``fnotify migrate``'s value conversions: a SQLite value in the type PostgreSQL declares for its column.

The two schemas (``migrations/sqlite`` and ``migrations/postgres``) hold the same facts in different
types: times are REAL epoch seconds in SQLite and ``timestamptz`` in PostgreSQL, flags 0/1 and
``boolean``, channel lists comma-separated text and ``text[]``. The conversion is chosen by the
PostgreSQL column's type alone, so a table added later with columns of these types is carried without
code; a type with no rule here is refused before anything is written. Pure functions, no I/O.

``release_claims`` is what a restart does to the rows a stopped daemon held (``sqlite_claims.recover``):
the claim is dropped and the row due again, its open attempts recorded ``interrupted``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from daemon.core.models import FINAL_STATUSES, Outcome
from daemon.storage.sqlite_claims import STOPPED

__all__ = ["Converter", "converter", "release_claims"]

Converter = Callable[[Any], Any]


def _timestamptz(value: Any) -> datetime:
    if isinstance(value, bool):
        raise TypeError("a flag is not a time")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)  # OverflowError / ValueError out of range
    if isinstance(value, str):  # an ISO 8601 text column: naive means UTC, as everywhere in the daemon
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    raise TypeError(f"{type(value).__name__} is not a time")


def _timestamp(value: Any) -> datetime:
    return _timestamptz(value).astimezone(UTC).replace(tzinfo=None)


def _boolean(value: Any) -> bool:
    if value in (0, 1):  # SQLite stores flags as integers; True == 1 and False == 0 pass too
        return bool(value)
    raise ValueError("a flag must be 0 or 1")


def _integer(value: Any) -> int:
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"{type(value).__name__} is not an integer")


def _float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not a number")


def _numeric(value: Any) -> Decimal:
    return Decimal(str(_float(value)) if isinstance(value, float) else str(_integer(value)))


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):  # SQLite's dynamic typing lets a number into a TEXT column
        return str(value)
    raise TypeError(f"{type(value).__name__} is not text")


def _items(value: Any) -> list[Any]:
    """A list column: a JSON array, or comma-separated text (our convention; '' is the empty list)."""
    if isinstance(value, str):
        if value.startswith("["):
            items = json.loads(value)
            if not isinstance(items, list):
                raise ValueError("not a JSON array")
            return items
        return [item for item in value.split(",") if item]
    raise TypeError(f"{type(value).__name__} is not a list")


def _json(value: Any) -> str:
    if isinstance(value, str):
        json.loads(value)  # refuse malformed JSON here, naming the row, rather than in the middle of COPY
        return value
    return json.dumps(value)


def _bytea(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"{type(value).__name__} is not bytes")


_SCALARS: dict[str, Converter] = {
    "timestamp with time zone": _timestamptz,
    "timestamp without time zone": _timestamp,
    "boolean": _boolean,
    "bigint": _integer,
    "integer": _integer,
    "smallint": _integer,
    "double precision": _float,
    "real": _float,
    "numeric": _numeric,
    "text": _text,
    "character varying": _text,
    "jsonb": _json,
    "json": _json,
    "bytea": _bytea,
}


def converter(pg_type: str) -> Converter | None:
    """The conversion into ``pg_type`` (as ``format_type`` spells it), None when there is no rule for it.
    NULL stays NULL; that is the caller's, so every function here sees a value."""
    base = pg_type.split("(")[0].strip()  # character varying(40), numeric(10,2)
    if base.endswith("[]"):
        element = _SCALARS.get(base.removesuffix("[]").strip())
        if element is None:
            return None
        return lambda value: [None if item is None else element(item) for item in _items(value)]
    return _SCALARS.get(base)


def release_claims(table: str, row: dict[str, Any], claimed: set[int], now: float) -> None:
    """Drop a stopped daemon's claim on a ``notifications`` row and close the open ``attempts`` of the
    rows it held, in place, as ``sqlite_claims.release`` does at the next start: the row is due ``now``
    unless final, the attempt ``interrupted`` (at least once: the provider may have taken it)."""
    if table == "notifications" and row.get("claimed_by") is not None:
        row.update(claimed_by=None, lease_until=None, updated_at=now)
        if row.get("status") not in FINAL_STATUSES:
            row["next_attempt_at"] = now
    elif table == "attempts" and row.get("notification_id") in claimed and row.get("finished_at") is None:
        row.update(outcome=str(Outcome.INTERRUPTED), finished_at=now, error=STOPPED)
