"""``fnotify check`` (alias ``doctor``): is the config valid, and can each enabled channel be reached?

Runs in the CLI process; no daemon needed. The config was validated by loading it (a bad file
exits 2 in ``cli.main`` before this runs). With ``[storage] url`` set, the PostgreSQL server is reached
and its schema version read. Each enabled channel's adapter is then built from it and
its ``check()`` called, all at once, each under a time limit: Telegram ``getMe``, SMTP EHLO and
login, the SMS provider's account resource. Nothing is sent to anyone. A table (or ``--json``)
shows one row per channel, OK / FAILED / off with the reason; the exit status is 1 if any is FAILED.

Under systemd the secrets live in the unit's credentials, not in your shell: run it as
``sudo CREDENTIALS_DIRECTORY=/etc/credstore fnotify --config ... check`` (see docs/install.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass

from daemon.channels import ChannelAdapter, build_channels
from daemon.cli.render import table
from daemon.config import SECRET_SOURCES, Config
from daemon.core.errors import ChannelError, FnotifyError
from daemon.core.models import Channel
from daemon.core.redact import Redactor
from daemon.credentials import credentials_directory, read_credential
from daemon.runtime.reload import close_adapters

OK, FAILED, OFF = "OK", "FAILED", "off"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One row of the report."""

    name: str
    status: str  # OK, FAILED or off
    detail: str

    @property
    def failed(self) -> bool:
        return self.status == FAILED


async def check_channel(adapter: ChannelAdapter, limit: float) -> CheckResult:
    """Call ``adapter.check()`` within ``limit`` seconds; any error becomes a FAILED row."""
    name = str(adapter.name)
    started = time.monotonic()
    try:
        async with asyncio.timeout(limit):
            detail = await adapter.check()
    except TimeoutError:
        return CheckResult(name, FAILED, f"no answer within {limit:g} s")
    except ChannelError as exc:
        return CheckResult(name, FAILED, str(exc))
    except Exception as exc:  # an adapter bug is still a failed check, not a traceback
        return CheckResult(name, FAILED, f"unexpected {type(exc).__name__}: {exc}")
    return CheckResult(name, OK, f"{detail} ({(time.monotonic() - started) * 1000:.0f} ms)")


async def run_checks(config: Config, limit: float = 15.0) -> list[CheckResult]:
    """Every row of the report, in a fixed order: config, credentials, storage (PostgreSQL only), telegram,
    email, sms.

    Raises ConfigError when an adapter refuses its settings (same as the daemon would at start).
    """
    rows = [CheckResult("config", OK, str(config.source or "no file: built-in defaults"))]
    if (credentials := _credentials_row()) is not None:
        rows.append(credentials)
    if config.storage.postgres is not None:
        rows.append(await check_storage(config, limit))
    channels = build_channels(config)
    try:
        results = await asyncio.gather(*(check_channel(a, limit) for a in channels.values()))
    finally:
        await close_adapters(channels.values())
    by_name = {r.name: r for r in results}
    for channel in Channel:
        if channel in channels:
            rows.append(by_name[str(channel)])
        else:
            in_chain = channel in config.chain.default
            rows.append(CheckResult(str(channel), OFF, "disabled" + (
                " (in [chain] default: its attempts will be skipped)" if in_chain else "")))
    if not channels:
        rows.append(CheckResult("channels", FAILED, "none enabled: set enabled = true in [telegram], "
                                                    "[email] or [sms]"))
    redact = Redactor(config.secrets())
    return [CheckResult(r.name, r.status, redact(r.detail)) for r in rows]


async def check_storage(config: Config, limit: float) -> CheckResult:
    """The PostgreSQL of ``[storage] url``: reachable, and its schema version (nothing is written)."""
    from daemon.storage.postgres_schema import probe  # asyncpg only when PostgreSQL is configured

    assert config.storage.postgres is not None
    try:
        async with asyncio.timeout(limit):
            return CheckResult("storage", OK, await probe(config.storage.postgres))
    except TimeoutError:
        return CheckResult("storage", FAILED, f"no answer within {limit:g} s")
    except FnotifyError as exc:
        return CheckResult("storage", FAILED, f"{config.storage.postgres.display}: {exc}")


def _credentials_row() -> CheckResult | None:
    directory = credentials_directory()
    if directory is None:
        return None
    names = [cred for _, cred in SECRET_SOURCES.values() if read_credential(cred) is not None]
    if not directory.is_dir():
        return CheckResult("credentials", FAILED, f"$CREDENTIALS_DIRECTORY={directory} is not a directory")
    return CheckResult("credentials", OK, f"{directory}: " + (", ".join(names) or "none of ours"))


def render(rows: list[CheckResult]) -> str:
    return table(["check", "result", "detail"], [[r.name, r.status, r.detail] for r in rows])


def cmd_check(args: argparse.Namespace, config: Config) -> int:
    """``fnotify check``: print the report; 0 when nothing FAILED, else 1."""
    rows = asyncio.run(run_checks(config, args.timeout))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2, ensure_ascii=False))
    else:
        print(render(rows))
    return 1 if any(r.failed for r in rows) else 0
