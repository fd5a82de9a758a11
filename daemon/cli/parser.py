"""The argument parser of ``fnotify``: every command, option and help text in one place.

Each sub-command sets ``command`` (a key of ``daemon.cli.commands.CLIENT_COMMANDS`` or
``LOCAL_COMMANDS``); the parser imports no command code, so it loads fast and has no cycle."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence

from daemon import __version__

TYPE_CHECKING = False  # typing is for mypy only: a CLI process does not import it (~3 ms; issue 14)
if TYPE_CHECKING:
    from typing import Any


def _terminal_width() -> int:
    """What ``shutil.get_terminal_size()`` tells argparse: ``$COLUMNS``, else the terminal's width, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    """argparse's own formatter, sized without importing ``shutil``: argparse builds one formatter per
    ``add_argument`` (to check the metavar), and the first one would import shutil with bz2 and lzma,
    a few ms of every CLI process (issue 14) for a width only ``--help`` and usage errors show."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         _terminal_width() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help uses ``_Formatter``; its sub-command parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def seconds(text: str) -> float:
    """A finite number of seconds, more than 0: ``inf``, ``nan`` and ``1e400`` are usage errors here
    (float() takes them all) rather than a request the daemon has to refuse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number of seconds, more than 0")
    return value


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _local(p: argparse.ArgumentParser, command: str) -> None:
    p.set_defaults(command=command, local=True)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv``, only the sub-command it names gets its parser built.

    Building all of them costs a CLI process ~10-20 ms (argparse looks up gettext catalogues on disk
    for every sub-parser) of its 80 ms budget (issue 14), and one command needs one. ``--help``, no
    command or an unknown one still get every command, so help and "invalid choice" stay complete.
    """
    parser: argparse.ArgumentParser = _Parser(
        prog="fnotify",
        description="failover-notify: deliver a message along Telegram -> email -> SMS, whichever is up.",
        epilog="Config: --config PATH, else $FNOTIFY_CONFIG, else ./fnotify.toml. See README.md.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", metavar="PATH", help="TOML config file")
    parser.add_argument("--socket", metavar="PATH", help="daemon socket (default from config, or $FNOTIFY_SOCKET)")
    parser.add_argument("--request-timeout", type=seconds, default=30.0, metavar="S", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    wanted = _command_in(argv) if argv is not None else None
    if wanted in COMMANDS:
        COMMANDS[wanted](sub)
    else:
        for build in dict.fromkeys(COMMANDS.values()):  # each once, in the order of the help
            build(sub)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names: its first word that is neither an option nor an option's value."""
    args = iter(argv)
    for arg in args:
        if arg in _GLOBAL_WITH_VALUE:
            next(args, None)
        elif arg in ("-h", "--help", "--version"):
            return None
        elif not arg.startswith("-"):
            return arg
    return None


_GLOBAL_WITH_VALUE = ("--config", "--socket", "--request-timeout")


def _run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the daemon in the foreground, logging to stderr")
    _local(p, "run")


def _check_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check", aliases=["doctor"], help="validate the config and reach each enabled "
                       "channel without sending anything (no daemon needed)")
    p.add_argument("--timeout", type=seconds, default=15.0, metavar="S", help="limit per channel (default 15)")
    _json(p)
    _local(p, "check")


def _send_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("send", help="queue a notification for a recipient, or for each member of a group")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to", type=int, metavar="RECIPIENT_ID", help="recipient id")
    to.add_argument("--to-group", metavar="GROUP", help="a group's name: one notification per member (a batch)")
    p.add_argument("--message", "-m", required=True, help="the text to deliver")
    p.add_argument("--subject", help="email subject (default: the first line of the message)")
    p.add_argument("--chain", help="channels in order, e.g. telegram,email,sms (default from config)")
    p.add_argument("--key", metavar="IDEMPOTENCY_KEY", help="a second send with the same key sends nothing")
    p.add_argument("--ack-timeout", type=seconds, metavar="SECONDS",
                   help="ask for an acknowledgement in Telegram; escalate if none within SECONDS (at most ten years)")
    p.add_argument("--expires-in", type=seconds, metavar="SECONDS",
                   help="give up if not delivered within SECONDS (at most ten years)")
    p.add_argument("--priority", choices=["low", "normal", "high", "critical"],
                   help="default normal; high and critical are not held by the recipient's quiet hours")
    p.add_argument("--wait", action="store_true", help="block until the notification is final")
    p.add_argument("--timeout", type=seconds, default=600.0, metavar="S", help="with --wait: give up after S seconds")
    _json(p)
    p.set_defaults(command="send")


def _show_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("show", help="a notification and its attempt log, or a batch (--batch) and its members")
    p.add_argument("id", type=int, nargs="?", metavar="NOTIFICATION_ID")
    p.add_argument("--batch", type=int, metavar="BATCH_ID", help="a send to a group: each member's status")
    _json(p)
    p.set_defaults(command="show")


def _list_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("list", help="recent notifications, newest first")
    p.add_argument("--status", help="queued, sending, held, delivered, failed, cancelled, ...")
    p.add_argument("--recipient", type=int, metavar="ID", help="only this recipient's")
    p.add_argument("--limit", type=int, default=None, help="how many (default 50)")
    _json(p)
    p.set_defaults(command="list")


def _cancel_retry_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, func, text in (("cancel", "cancel", "cancel a notification that is not final yet"),
                             ("retry", "retry", "redrive a failed notification from the start of its chain")):
        p = sub.add_parser(name, help=text)
        p.add_argument("id", type=int, metavar="NOTIFICATION_ID")
        _json(p)
        p.set_defaults(command=func)


def _pause_resume_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("pause", help="hold delivery (sends are still accepted and stored)")
    p.set_defaults(command="pause")
    p = sub.add_parser("resume", help="resume delivery after `pause`")
    p.set_defaults(command="resume")


def _backup_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("backup", help="a consistent online copy of the database, made by the running daemon")
    p.add_argument("path", nargs="?", help="the new file (never overwritten); relative to the current directory; "
                   "default: a new file in <state_dir>/backups")
    p.set_defaults(command="backup")


def _migrate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("migrate", help="copy a stopped daemon's SQLite database into an empty PostgreSQL "
                       "database (ids and attempt logs kept); see docs/cluster.md",
                       description="Copy the SQLite database of the config ([daemon] state_dir), or --from PATH, "
                       "into an empty PostgreSQL database, in one transaction: recipients, notifications with "
                       "their attempt logs, link tokens and the rest, ids preserved, counts checked. The daemon "
                       "using the SQLite database must be stopped. Exit status: 0 copied, 2 refused or bad "
                       "input (nothing written), 1 failed (rolled back, nothing written).")
    p.add_argument("--to", metavar="URL", help="postgresql://user:password@host:port/dbname (default: the "
                   "config's [storage] url); the password is never printed")
    p.add_argument("--from", dest="source", metavar="PATH", help="the SQLite database file (default: fnotify.db "
                   "in the config's [daemon] state_dir)")
    p.add_argument("--dry-run", action="store_true", help="copy and check the counts, then roll back: "
                   "print what would be copied, write nothing")
    _local(p, "migrate")


def _status_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="daemon status: queue depth, counts, channels")
    _json(p)
    p.set_defaults(command="status")


def _watch_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("watch", help="print live events (one JSON object per line) until interrupted")
    p.set_defaults(command="watch")


def _tui_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tui", help="the terminal UI: send, watch deliveries live, inspect attempts")
    _local(p, "tui")


def _quiet_hours_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timezone", metavar="ZONE", help="IANA time zone quiet hours are read in, e.g. Europe/Moscow "
                   "(default UTC)")
    p.add_argument("--quiet-hours", metavar="HH:MM-HH:MM", help="hold below-high notifications in this daily "
                   "window, e.g. 22:00-07:00 (may cross midnight); off for none")


def _recipient_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rp = sub.add_parser("recipient", help="manage recipients (add, list, update, remove, link)")
    rsub = rp.add_subparsers(title="recipient commands", metavar="COMMAND")

    p = rsub.add_parser("add", help="add a recipient")
    p.add_argument("--name", required=True)
    p.add_argument("--email")
    p.add_argument("--phone", help="E.164, e.g. +14155550100")
    p.add_argument("--telegram-chat-id", type=int, metavar="CHAT_ID")
    _quiet_hours_options(p)
    _json(p)
    p.set_defaults(command="recipient_add")

    p = rsub.add_parser("list", help="list recipients with their channels and Telegram state")
    _json(p)
    p.set_defaults(command="recipient_list")

    p = rsub.add_parser("update", help="change a recipient's fields")
    p.add_argument("id", type=int, metavar="RECIPIENT_ID")
    p.add_argument("--name")
    p.add_argument("--email")
    p.add_argument("--phone")
    p.add_argument("--telegram-chat-id", type=int, metavar="CHAT_ID")
    p.add_argument("--opt-out", metavar="CHANNELS", help="comma-separated channels to skip ('' for none)")
    _quiet_hours_options(p)
    _json(p)
    p.set_defaults(command="recipient_update")

    p = rsub.add_parser("remove", help="remove a recipient (refused while it has unfinished notifications)")
    p.add_argument("id", type=int, metavar="RECIPIENT_ID")
    p.set_defaults(command="recipient_remove")

    p = rsub.add_parser("link", help="make a single-use Telegram opt-in link for a recipient")
    p.add_argument("id", type=int, metavar="RECIPIENT_ID")
    _json(p)
    p.set_defaults(command="recipient_link")


def _group_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``fnotify group add|list|show|update|remove``."""
    gp = sub.add_parser("group", help="manage recipient groups (add, list, show, update, remove)")
    gsub = gp.add_subparsers(title="group commands", metavar="COMMAND")
    ids = "comma-separated recipient ids, e.g. 1,3,4"

    p = gsub.add_parser("add", help="add a group; `fnotify send --to-group NAME` sends to each member")
    p.add_argument("name", metavar="NAME", help="lower case a-z 0-9 _ . -, at most 64")
    p.add_argument("--members", metavar="IDS", help=ids)
    _json(p)
    p.set_defaults(command="group_add")

    p = gsub.add_parser("list", help="list groups with their members")
    _json(p)
    p.set_defaults(command="group_list")

    p = gsub.add_parser("show", help="a group and its members")
    p.add_argument("name", metavar="NAME")
    _json(p)
    p.set_defaults(command="group_show")

    p = gsub.add_parser("update", help="rename a group, replace its members, or add and remove some")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--rename", metavar="NEW_NAME")
    p.add_argument("--members", metavar="IDS", help=f"the new members, replacing the old: {ids}")
    p.add_argument("--add", metavar="IDS", help=f"members to add: {ids}")
    p.add_argument("--remove", metavar="IDS", help=f"members to take out: {ids}")
    _json(p)
    p.set_defaults(command="group_update")

    p = gsub.add_parser("remove", help="remove a group (the batches sent to it stay)")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(command="group_remove")


COMMANDS: dict[str, Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = {
    "run": _run_parser, "check": _check_parser, "doctor": _check_parser, "send": _send_parser,
    "show": _show_parser, "list": _list_parser, "cancel": _cancel_retry_parser, "retry": _cancel_retry_parser,
    "pause": _pause_resume_parser, "resume": _pause_resume_parser, "backup": _backup_parser,
    "migrate": _migrate_parser, "status": _status_parser, "watch": _watch_parser, "tui": _tui_parser,
    "recipient": _recipient_parsers, "group": _group_parsers,
}
"""Each sub-command's parser builder, in the order ``fnotify --help`` lists them."""
