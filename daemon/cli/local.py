"""The commands that run here rather than ask the daemon: ``run``, ``check``, ``tui`` and ``migrate``.

Kept apart from ``daemon.cli.commands`` so that a client command (``send``, ``show``...) imports none
of what these need: the config models (pydantic), the runtime, the providers, Textual.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from daemon.cli.locate import client_socket_path


def cmd_run(args: argparse.Namespace) -> int:
    from daemon.config import load_config
    from daemon.runtime.runner import run_daemon

    return run_daemon(load_config(args.config))


def cmd_check(args: argparse.Namespace) -> int:
    from daemon.cli.doctor import cmd_check as check
    from daemon.config import load_config

    return check(args, load_config(args.config))


def cmd_tui(args: argparse.Namespace) -> int:
    """The terminal UI; it waits (and keeps retrying) when the daemon is not up yet. Like the client
    commands it needs only the socket path from the config."""
    from tui.app import FnotifyApp  # imported here: nothing in daemon/ needs textual otherwise

    FnotifyApp(client_socket_path(args.socket, args.config)).run()
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from daemon.cli.migrate import cmd_migrate as migrate  # asyncpg and the stores only when invoked

    return migrate(args)


LOCAL_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "check": cmd_check,
    "tui": cmd_tui,
    "migrate": cmd_migrate,
}
