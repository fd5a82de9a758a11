"""``[storage] url``: which store the daemon uses, parsed without ever echoing the password.

Unset means SQLite in ``[daemon] state_dir``; ``postgresql://user:password@host:port/dbname`` (or
``postgres://``, libpq's other spelling) means a PostgreSQL database that several daemons can share.
The URL is passed to asyncpg as it is, so libpq's query parameters (``?sslmode=require``) work;
what is checked here is only what would otherwise fail later with a less helpful message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

SCHEMES = ("postgresql", "postgres")
EXAMPLE = "postgresql://user:password@host:port/dbname"
ENCODE = "in a user name or password, percent-encode ':' '/' '?' '#' '@' and '%'"


@dataclass(frozen=True, slots=True)
class PostgresUrl:
    """A parsed ``[storage] url``. ``dsn`` and ``password`` are secret; ``display`` is not."""

    dsn: str = field(repr=False)
    password: str | None = field(repr=False)
    user: str | None
    host: str | None
    port: int | None
    database: str

    @property
    def display(self) -> str:
        """The URL without its password (and without query parameters, which may hold one too)."""
        user = f"{self.user}@" if self.user else ""
        host = self.host or ""
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        port = f":{self.port}" if self.port is not None else ""
        return f"postgresql://{user}{host}{port}/{self.database}"


def parse_postgres_url(raw: str) -> PostgresUrl:
    """Parse ``raw``; ValueError says what is wrong and never quotes the URL (it holds the password)."""
    parts = urlsplit(raw.strip())
    if parts.scheme.lower() not in SCHEMES:
        raise ValueError(
            f"must be a PostgreSQL URL: {EXAMPLE} (postgres:// works too); leave it unset for SQLite in"
            " [daemon] state_dir"
        )
    if parts.fragment:
        raise ValueError(f"not a valid URL: a '#' must be percent-encoded (%23) ({ENCODE})")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"not a valid URL: the port must be a number from 1 to 65535 ({ENCODE})")
    database = unquote(parts.path.removeprefix("/"))
    if not database:
        raise ValueError(f"names no database: {EXAMPLE}")
    if "/" in database:
        raise ValueError(f"the database name may not contain '/': {EXAMPLE}")
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and (in_query := parse_qs(parts.query).get("password")):
        password = in_query[-1]  # libpq's ?password= form
    return PostgresUrl(
        dsn=raw.strip(),
        password=password,
        user=unquote(parts.username) if parts.username else None,
        host=parts.hostname,
        port=port,
        database=database,
    )
