"""``fnotify migrate --to postgresql://...``: move an install from SQLite to PostgreSQL.

The source is the SQLite database of the config (``[daemon] state_dir``), or ``--from PATH``; the target
``--to``, else the config's ``[storage] url``. The work is ``daemon.storage.transfer``'s; this module
resolves the arguments, prints what was copied, and keeps the password out of everything it prints
(the URL is shown as ``PostgresUrl.display``, and every message passes a ``Redactor`` that knows it).

Exit status: 0 copied (with ``--dry-run``: would copy, nothing written), 2 bad input or a refusal
(nothing written), 1 an unexpected failure (the target's one transaction rolled back).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from pathlib import Path

from daemon.cli.commands import EXIT_REFUSED, EXIT_USAGE, CliError, say
from daemon.cli.render import table
from daemon.core.redact import Redactor
from daemon.database_url import EXAMPLE, PostgresUrl, parse_postgres_url
from daemon.storage.schema import latest_version
from daemon.storage.transfer import LEFT_OUT, Copied, Source, TransferFailed, TransferRefused

__all__ = ["cmd_migrate"]


def cmd_migrate(args: argparse.Namespace) -> int:
    redact = Redactor()
    try:
        source, target = _resolve(args)
        redact.update(s for s in (target.password, target.dsn) if s)
        return asyncio.run(_migrate(source, target, args.dry_run, redact))
    except CliError as exc:
        raise CliError(redact(str(exc)), exc.status) from None
    except TransferRefused as exc:
        raise CliError(redact(f"migrate refused, nothing was written: {exc}"), EXIT_USAGE) from None
    except TransferFailed as exc:
        raise CliError(redact(f"migrate failed, nothing was written (rolled back): {exc}"), EXIT_REFUSED) from None
    except Exception as exc:  # a driver or server error mid-copy: the transaction is gone, and so is the copy
        raise CliError(redact(f"migrate failed, nothing was written (rolled back): {type(exc).__name__}: {exc}"),
                       EXIT_REFUSED) from None


def _resolve(args: argparse.Namespace) -> tuple[Path, PostgresUrl]:
    """The source database and the target URL, from the options or else the config."""
    target: PostgresUrl | None = None
    if args.to is not None:
        try:
            target = parse_postgres_url(args.to)
        except ValueError as exc:  # says what is wrong, never quotes the URL
            raise CliError(f"--to: {exc}", EXIT_USAGE) from None
    source = Path(args.source) if args.source is not None else None
    if source is None or target is None:
        from daemon.config import load_config

        config = load_config(args.config, client=True)  # ConfigError: exit 2 in cli.main
        source = source or config.daemon.database
        target = target or config.storage.postgres
    if target is None:
        raise CliError(f"--to: required (the PostgreSQL database to copy into, {EXAMPLE}), unless the config's"
                       " [storage] url names it", EXIT_USAGE)
    return source, target


async def _migrate(path: Path, target: PostgresUrl, dry_run: bool, redact: Redactor) -> int:
    import asyncpg

    from daemon.storage import postgres_schema, transfer

    with transfer.locked(path):
        source = transfer.open_source(path, dry_run=dry_run)
        try:
            try:
                conn = await asyncpg.connect(target.dsn, timeout=postgres_schema.CONNECT_TIMEOUT,
                                             server_settings=postgres_schema.server_settings(None, "fnotify migrate"))
            except (*postgres_schema.DRIVER_ERRORS, ValueError) as exc:
                raise CliError(f"--to: cannot connect to PostgreSQL at {target.display}: "
                               f"{postgres_schema.describe(exc)}", EXIT_USAGE) from None
            try:
                copied = await transfer.transfer(source, conn, target.display, datetime.now(UTC), dry_run=dry_run)
            finally:
                await conn.close()
        finally:
            source.conn.close()
    say(redact(report(source, target.display, copied, dry_run)))
    return 0


def report(source: Source, target: str, copied: Copied, dry_run: bool) -> str:
    """What was copied, for people: a line per step, a table of rows per table, what was left out."""
    lines = [f"SQLite {source.path} (schema version {source.version}) -> PostgreSQL {target}"]
    if source.upgraded_from is not None:
        done = "upgraded a copy in memory" if dry_run else "upgraded it"
        lines.append(f"  the SQLite schema was version {source.upgraded_from}: {done} to {source.version} first,"
                     " as `fnotify run` would")
    if copied.created_schema is not None:
        what = "created" if copied.created_schema == 0 else f"upgraded from version {copied.created_schema}"
        lines.append(f"  the PostgreSQL schema: {'would be ' if dry_run else ''}{what}, version"
                     f" {latest_version('postgres')}, by the daemon's own migrations")
    lines += ["", table(["table", "rows"], [[name, str(rows)] for name, rows in copied.tables.items()]), ""]
    for name, why in LEFT_OUT.items():
        lines.append(f"left out: {name} ({copied.left_out.get(name, 0)} rows): {why}")
    if copied.released:
        lines.append(f"claims of the stopped daemon released: {copied.released} notification(s) due again,"
                     f" {copied.interrupted} open attempt(s) recorded interrupted (as a restart does)")
    if copied.escaped:
        lines.append(f"{copied.escaped} text value(s) held a NUL character, which PostgreSQL cannot store:"
                     " written as the four characters \\x00")
    total = sum(copied.tables.values())
    if dry_run:
        lines.append(f"dry run: would copy {total} rows in {len(copied.tables)} tables; the counts matched, and"
                     " the copy was rolled back: nothing was written")
    else:
        lines.append(f"copied {total} rows in {len(copied.tables)} tables in {copied.seconds:.1f} s; the counts"
                     " match. Next: set [storage] url to this database and start the daemons (docs/cluster.md)")
    return "\n".join(lines)
