"""Human-readable rendering of notifications, attempts and recipients for the CLI.

Every text here may come from an API client (a message, a subject, a recipient's name, a provider's
error echoing them), so it goes through ``terminal.visible`` before it is printed; ``json_text``
keeps JSON exact and terminal-safe too.
"""

from __future__ import annotations

import json

from daemon.protocol import UNSAFE_IN_JSON, visible

TYPE_CHECKING = False  # typing is for mypy only: a CLI process does not import it (~3 ms; issue 14)
if TYPE_CHECKING:
    from typing import Any


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as JSON that decodes to exactly ``value`` and is safe to print to a terminal."""
    dumped = json.dumps(value, ensure_ascii=False, indent=indent)
    return UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)


def _time(value: str | None) -> str:
    if not value:
        return "-"
    from datetime import datetime  # only the commands that print times pay for it

    return datetime.fromisoformat(value).astimezone().strftime("%H:%M:%S.%f")[:-3]


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns; every cell is made ``visible`` (a newline in a name cannot fake a row)."""
    rows = [[visible(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def attempt_log(attempts: list[dict[str, Any]]) -> str:
    rows = []
    for i, a in enumerate(attempts, 1):
        duration = f"{a['duration_ms']:.0f} ms" if a.get("duration_ms") is not None else "in flight"
        detail = a.get("error") or (f"id {a['provider_message_id']}" if a.get("provider_message_id") else "")
        if a.get("retry_at"):
            detail += f" (retry at {_time(a['retry_at'])})"
        rows.append([str(i), _time(a["started_at"]), a["channel"], a.get("outcome") or "sending", duration, detail])
    return table(["#", "started", "channel", "outcome", "took", "detail"], rows)


def notification(n: dict[str, Any]) -> str:
    lines = [
        f"notification {n['id']} -> recipient {n['recipient_id']}: {n['status'].upper()}",
        f"  chain:   {' -> '.join(n['chain'])}",
        f"  priority: {n.get('priority', 'normal')}",
        f"  created: {n['created_at']}",
    ]
    if n.get("subject"):
        lines.append(f"  subject: {visible(n['subject'])}")
    if n.get("idempotency_key"):
        lines.append(f"  key:     {visible(n['idempotency_key'])}")
    if n.get("batch_id") is not None:
        lines.append(f"  batch:   {n['batch_id']} (fnotify show --batch {n['batch_id']})")
    if n.get("next_attempt_at") and n["status"] == "held":
        lines.append(f"  held until: {n['next_attempt_at']} (the recipient's quiet hours)")
    elif n.get("next_attempt_at") and n["status"] in ("queued", "sending"):
        lines.append(f"  next attempt: {n['next_attempt_at']}")
    # a multi-line message keeps its lines, indented, so none of them can pass for a line of ours
    lines.append("  message: " + "\n           ".join(visible(line) for line in n["text"].split("\n")))
    if n.get("attempts"):
        lines += ["", attempt_log(n["attempts"])]
    return "\n".join(lines)


def notification_list(items: list[dict[str, Any]]) -> str:
    rows = [
        [str(n["id"]), _time(n["created_at"]), str(n["recipient_id"]), n["status"], n.get("priority", "normal"),
         n.get("channel") or "-",
         str(n.get("attempt_count", len(n.get("attempts", [])))), n["text"].splitlines()[0][:40] if n["text"] else ""]
        for n in items
    ]
    return table(["id", "time", "to", "status", "priority", "channel", "tries", "message"], rows)


def recipient_list(items: list[dict[str, Any]]) -> str:
    rows = [
        [str(r["id"]), r["name"], r.get("email") or "-", r.get("phone") or "-",
         str(r["telegram_chat_id"]) if r.get("telegram_chat_id") is not None else "-", r["telegram_state"],
         ",".join(r.get("opt_out") or []) or "-",
         f"{r['quiet_hours']} {r.get('timezone', 'UTC')}" if r.get("quiet_hours") else "-"]
        for r in items
    ]
    return table(["id", "name", "email", "phone", "telegram chat", "telegram", "opted out", "quiet hours"], rows)


def batch(b: dict[str, Any]) -> str:
    """A send to a group: the batch, its counts by status, and each member's notification."""
    key = f", key {visible(b['idempotency_key'])}" if b.get("idempotency_key") else ""
    counts = ", ".join(f"{status} {n}" for status, n in sorted(b["counts"].items())) or "no notifications left"
    rows = [[str(n["id"]), str(n["recipient_id"]), n.get("recipient_name") or "(removed)", n["status"],
             n.get("channel") or "-", str(n["attempt_count"])] for n in b["notifications"]]
    return "\n".join([f"batch {b['batch_id']} -> group {visible(b['group'])}{key}", f"  created: {b['created_at']}",
                      f"  status:  {counts}", "",
                      table(["notification", "recipient", "name", "status", "channel", "tries"], rows)])


def group_list(groups: list[dict[str, Any]], names: dict[int, str]) -> str:
    """Groups with their members, each as ``id name`` (``names``: recipient id -> name)."""
    rows = [[g["name"], str(len(g["members"])),
             ", ".join(f"{m} {names.get(m, '?')}" for m in g["members"]) or "-"] for g in groups]
    return table(["group", "members", "recipients"], rows)
