"""``fnotify group ...``, ``fnotify send --to-group`` and ``fnotify show --batch``: recipient groups and
the batches a send to a group makes. Client commands: they talk to the daemon over its socket only."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from daemon.blocking_client import BlockingClient
from daemon.cli import render
from daemon.protocol import SUCCESS_STATUSES, visible

TYPE_CHECKING = False  # typing is for mypy only: a CLI process does not import it (~3 ms; issue 14)
if TYPE_CHECKING:
    from typing import Any


def _print(args: argparse.Namespace, value: Any, text: str) -> None:
    print(render.json_text(value) if args.json else visible(text, keep_newlines=True))


def send_to_group(client: BlockingClient, args: argparse.Namespace, params: dict[str, Any],
                  wait_final: Callable[[BlockingClient, int, float], object]) -> int:
    """``send --to-group``: one notification per member; with ``--wait`` until each is final."""
    result = client.call("send", group=args.to_group, **params)
    if args.wait:
        deadline = time.monotonic() + args.timeout
        for member in result["notifications"]:
            wait_final(client, member["id"], max(deadline - time.monotonic(), 0.001))
        result = {**client.call("batch.show", id=result["batch_id"]), "created": result["created"]}
    note = "" if result.get("created", True) else " (already sent with this key)"
    ids = ", ".join(f"{n['id']} -> {n['recipient_id']}" for n in result["notifications"])
    text = render.batch(result) if args.wait else (
        f"batch {result['batch_id']} to group {result['group']}: {len(result['notifications'])} notification(s)"
        f"{note}\n  {ids}")
    _print(args, result, text)
    ok = all(n["status"] in SUCCESS_STATUSES for n in result["notifications"])
    return 0 if not args.wait or ok else 1


def cmd_show_batch(client: BlockingClient, args: argparse.Namespace) -> int:
    result = client.call("batch.show", id=args.batch)
    _print(args, result, render.batch(result))
    return 0


def cmd_group_add(client: BlockingClient, args: argparse.Namespace) -> int:
    params = {"members": args.members} if args.members is not None else {}
    result = client.call("group.add", name=args.name, **params)
    _print(args, result, f"group {result['name']} added: {len(result['members'])} member(s)")
    return 0


def cmd_group_list(client: BlockingClient, args: argparse.Namespace) -> int:
    groups = client.call("group.list")
    if args.json:
        _print(args, groups, "")
        return 0
    names = {r["id"]: r["name"] for r in client.call("recipient.list")}
    _print(args, groups, render.group_list(groups, names))
    return 0


def cmd_group_show(client: BlockingClient, args: argparse.Namespace) -> int:
    group = client.call("group.show", name=args.name)
    if args.json:
        _print(args, group, "")
        return 0
    names = {r["id"]: r["name"] for r in client.call("recipient.list")}
    _print(args, group, render.group_list([group], names))
    return 0


def cmd_group_update(client: BlockingClient, args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("rename", args.rename), ("members", args.members), ("add", args.add),
                                ("remove", args.remove)) if v is not None}
    result = client.call("group.update", name=args.name, **params)
    _print(args, result, f"group {result['name']} updated: {len(result['members'])} member(s)")
    return 0


def cmd_group_remove(client: BlockingClient, args: argparse.Namespace) -> int:
    client.call("group.remove", name=args.name)
    print(f"group {visible(args.name)} removed")
    return 0


GROUP_COMMANDS = {
    "show_batch": cmd_show_batch,
    "group_add": cmd_group_add,
    "group_list": cmd_group_list,
    "group_show": cmd_group_show,
    "group_update": cmd_group_update,
    "group_remove": cmd_group_remove,
}
