"""What each ``fnotify`` command does: client commands talk to the daemon over its socket, local
commands (run, check, tui) run here.

Exit status: 0 on success, 1 when the daemon refused the request or a notification ended
badly under ``--wait``, 2 on usage or configuration errors, 3 when the daemon is not reachable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from daemon.blocking_client import BlockingClient
from daemon.cli import groups, render
from daemon.protocol import (
    FINAL_STATUSES,
    SUCCESS_STATUSES,
    DaemonUnavailable,
    RemoteError,
    visible,
)
from daemon.protocol.text import sms_summary

TYPE_CHECKING = False  # typing is for mypy only: a CLI process does not import it (~3 ms; issue 14)
if TYPE_CHECKING:  # annotations only: importing it at run time would load every TypedDict (issue 14)
    from typing import Any, TextIO

    from daemon.protocol import NotificationJSON

EXIT_REFUSED, EXIT_USAGE, EXIT_UNAVAILABLE = 1, 2, 3


class CliError(Exception):
    def __init__(self, message: str, status: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.status = status


def _print_json(value: Any) -> None:
    print(render.json_text(value))


def say(text: str, *, file: TextIO | None = None) -> None:
    """Print human output; any text in it may come from an API client, so it is made ``visible``."""
    print(visible(text, keep_newlines=True), file=file)


# -- commands that talk to the daemon ----------------------------------------------------------

def cmd_send(client: BlockingClient, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"message": args.message}
    for key, value in (("subject", args.subject), ("chain", args.chain), ("idempotency_key", args.key),
                       ("ack_timeout", args.ack_timeout), ("expires_in", args.expires_in),
                       ("priority", args.priority)):
        if value is not None:
            params[key] = value
    if args.to_group is not None:
        return groups.send_to_group(client, args, params, _wait_final)
    result = client.call("send", recipient_id=args.to, **params)
    if args.wait:
        result = _wait_final(client, result["id"], args.timeout)
    if args.json:
        _print_json(result)
    elif args.wait:
        say(render.notification(result))
    else:
        note = "" if result.get("created", True) else " (already sent with this key)"
        say(f"notification {result['id']} {result['status']}{note}")
    return 0 if not args.wait or result["status"] in SUCCESS_STATUSES else EXIT_REFUSED


def _wait_final(client: BlockingClient, notification_id: int, timeout: float) -> NotificationJSON:
    """Block until the notification is final, following the event stream rather than polling.

    The subscription is acknowledged before the first read, so a change after that read always
    arrives as an event; once one says final, the notification is read again for its attempt log."""
    try:
        with client.subscribe(["notification.status"], timeout=timeout) as stream:
            current: NotificationJSON = client.call("show", id=notification_id)
            if current["status"] in FINAL_STATUSES:
                return current
            for event in stream:
                if (event["event"] == "notification.status" and event["data"]["id"] == notification_id
                        and event["data"]["status"] in FINAL_STATUSES):
                    final: NotificationJSON = client.call("show", id=notification_id)
                    return final
    except TimeoutError:
        raise CliError(f"notification {notification_id} is still not final after {timeout:g} s") from None
    # the daemon ends a stream only when it stops, or when this reader fell 10,000 events behind
    raise CliError(f"the daemon ended the event stream before notification {notification_id} was final; "
                   f"`fnotify show {notification_id}` tells where it stands", EXIT_UNAVAILABLE)


def cmd_show(client: BlockingClient, args: argparse.Namespace) -> int:
    if args.batch is not None:
        if args.id is not None:
            raise CliError("give a NOTIFICATION_ID or --batch BATCH_ID, not both", EXIT_USAGE)
        return groups.cmd_show_batch(client, args)
    if args.id is None:
        raise CliError("give a NOTIFICATION_ID (or --batch BATCH_ID)", EXIT_USAGE)
    result = client.call("show", id=args.id)
    _print_json(result) if args.json else say(render.notification(result))
    return 0


def cmd_list(client: BlockingClient, args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("status", args.status), ("recipient_id", args.recipient),
                                ("limit", args.limit)) if v is not None}
    result = client.call("list", **params)
    _print_json(result) if args.json else say(render.notification_list(result))
    return 0


def cmd_cancel(client: BlockingClient, args: argparse.Namespace) -> int:
    result = client.call("cancel", id=args.id)
    _print_json(result) if args.json else say(f"notification {result['id']} {result['status']}")
    return 0


def cmd_retry(client: BlockingClient, args: argparse.Namespace) -> int:
    result = client.call("retry", id=args.id)
    _print_json(result) if args.json else say(f"notification {result['id']} {result['status']} again")
    return 0


def cmd_pause(client: BlockingClient, args: argparse.Namespace) -> int:
    client.call("pause")
    print("delivery paused: sends are stored, nothing is attempted until `fnotify resume`")
    return 0


def cmd_resume(client: BlockingClient, args: argparse.Namespace) -> int:
    client.call("resume")
    print("delivery resumed")
    return 0


def cmd_backup(client: BlockingClient, args: argparse.Namespace) -> int:
    # the daemon writes the file: give it an absolute path, since its working directory is not ours;
    # without one it picks a new file in its own backups directory
    params = {"path": os.path.realpath(args.path)} if args.path else {}
    result = client.call("backup", **params)
    say(f"backed up to {result['path']} ({result['bytes']} bytes)")
    return 0


def cmd_status(client: BlockingClient, args: argparse.Namespace) -> int:
    result = client.call("status")
    if args.json:
        _print_json(result)
    else:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result["counts"].items())) or "none yet"
        enabled = ", ".join(k for k, v in result["channels"].items() if v) or "none"
        say(f"failover-notify {result['version']}, up {result['uptime_s']:.0f} s")
        paused = " (PAUSED: `fnotify resume` to deliver)" if result.get("paused") else ""
        say(f"  queue depth {result['queue_depth']}, in flight {result['in_flight']}{paused}")
        say(f"  notifications: {counts}")
        say(f"  channels enabled: {enabled}")
        if "storage" in result:
            say(f"  storage: {result['storage']}")
        if "sms" in result:  # the caps in force and what SMS cost today (UTC), every daemon together
            say(f"  sms: {'; '.join(sms_summary(result['sms']))}")
        for m in result.get("members", []):  # the daemons sharing the database
            roles = "".join(f", leads {r}" for r in m["leads"])
            say(f"  member {m['id']}{' (this one)' if m['self'] else ''}: host {m['host']}, pid {m['pid']},"
                f" last heartbeat {m['heartbeat_at']}{roles}")
    return 0


def cmd_watch(client: BlockingClient, args: argparse.Namespace) -> int:
    with client.subscribe() as stream:
        for event in stream:
            print(render.json_text(event, indent=None), flush=True)
    return 0


def _recipient_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The recipient fields given on the command line (``recipient add`` and ``update``)."""
    given = {"name": args.name, "email": args.email, "phone": args.phone, "telegram_chat_id": args.telegram_chat_id,
             "timezone": args.timezone, "quiet_hours": args.quiet_hours}
    return {k: v for k, v in given.items() if v is not None}


def cmd_recipient_add(client: BlockingClient, args: argparse.Namespace) -> int:
    result = client.call("recipient.add", **_recipient_fields(args))
    _print_json(result) if args.json else say(f"recipient {result['id']} added: {visible(result['name'])}")
    return 0


def cmd_recipient_update(client: BlockingClient, args: argparse.Namespace) -> int:
    params = _recipient_fields(args)
    if args.opt_out is not None:
        params["opt_out"] = [c for c in args.opt_out.split(",") if c]
    result = client.call("recipient.update", id=args.id, **params)
    _print_json(result) if args.json else say(f"recipient {result['id']} updated")
    return 0


def cmd_recipient_list(client: BlockingClient, args: argparse.Namespace) -> int:
    result = client.call("recipient.list")
    _print_json(result) if args.json else say(render.recipient_list(result))
    return 0


def cmd_recipient_remove(client: BlockingClient, args: argparse.Namespace) -> int:
    client.call("recipient.remove", id=args.id)
    print(f"recipient {args.id} removed")
    return 0


def cmd_recipient_link(client: BlockingClient, args: argparse.Namespace) -> int:
    result = client.call("recipient.link", id=args.id)
    if args.json:
        _print_json(result)
    else:
        say(f"{visible(result['url'])}\n(single use, expires {result['expires_at']})")
    return 0


# -- wiring ------------------------------------------------------------------------------------

Command = Callable[[BlockingClient, argparse.Namespace], int]


def run_client_command(func: Command, args: argparse.Namespace, socket: str) -> int:
    try:
        with BlockingClient(socket, timeout=args.request_timeout) as client:
            return func(client, args)
    except DaemonUnavailable as exc:
        raise CliError(str(exc), EXIT_UNAVAILABLE) from None
    except RemoteError as exc:
        raise CliError(str(exc)) from None


CLIENT_COMMANDS: dict[str, Command] = {
    "send": cmd_send,
    "show": cmd_show,
    "list": cmd_list,
    "cancel": cmd_cancel,
    "retry": cmd_retry,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "backup": cmd_backup,
    "status": cmd_status,
    "watch": cmd_watch,
    "recipient_add": cmd_recipient_add,
    "recipient_update": cmd_recipient_update,
    "recipient_list": cmd_recipient_list,
    "recipient_remove": cmd_recipient_remove,
    "recipient_link": cmd_recipient_link,
    **groups.GROUP_COMMANDS,
}
