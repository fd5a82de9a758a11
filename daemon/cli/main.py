"""``fnotify``: run the daemon, or talk to it over its Unix socket.

Exit status: 0 on success, 1 when the daemon refused the request or a notification ended
badly under ``--wait``, 2 on usage or configuration errors, 3 when the daemon is not reachable.
"""

from __future__ import annotations

import sys

from daemon.cli.commands import (
    CLIENT_COMMANDS,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    run_client_command,
    say,
)
from daemon.cli.locate import client_socket_path
from daemon.cli.parser import build_parser
from daemon.core.errors import ConfigError, FnotifyError
from daemon.protocol import visible


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        if getattr(args, "local", False):  # run, check, tui: their imports are theirs alone
            from daemon.cli.local import LOCAL_COMMANDS

            return int(LOCAL_COMMANDS[args.command](args))
        socket = client_socket_path(args.socket, args.config)
        return run_client_command(CLIENT_COMMANDS[args.command], args, socket)
    except ConfigError as exc:
        say(f"fnotify: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as exc:
        # the daemon's refusals quote the values they refuse: one line, nothing raw
        say(f"fnotify: {visible(str(exc))}", file=sys.stderr)
        return exc.status
    except FnotifyError as exc:
        say(f"fnotify: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
