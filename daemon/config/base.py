"""What every config section shares: the base model, the bounds, ``host:port`` parsing."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_TIMEOUT = 600.0
"""The longest network timeout accepted (seconds): a provider that takes longer is down."""
MAX_LINK_TTL = 365 * 86_400.0
Id32 = Annotated[int, Field(ge=0, le=2**32 - 1)]  # a uid or gid


class Section(BaseModel):
    # TOML has inf and nan literals: every number here must be finite (a nan compares false with
    # every bound, and an infinite timeout or ttl overflows the datetime arithmetic it feeds)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


MIN_HTTP_TOKEN = 16


def split_listen(value: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:8080"`` for IPv6) -> ``(host, port)``; ValueError says what is wrong."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. \"127.0.0.1:8080\"; port 0 picks a free one)")
    return host, int(port)
