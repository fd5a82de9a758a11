"""Is a process of this machine gone? For the PostgreSQL store, which otherwise learns that a daemon
died only when its leases run out (SQLite learns it at once from its lock file).

A member row records the daemon's pid, its start (``started_at``) and its node (``node_id``: kernel boot
id and pid namespace). A pid is only compared on the same node. It is gone when no process has it, or
when the process that has it is a zombie or started after the member did (the pid was reused). Anything
unreadable counts as alive: a wrong "alive" costs a lease of waiting, a wrong "gone" a duplicate.
Linux only (/proc); elsewhere ``node_id`` is None and nothing is ever judged gone.
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import cache
from pathlib import Path

PROC = Path("/proc")
START_SLACK = 1.0  # seconds: /proc/stat's btime is whole seconds, so a start read back may be late by < 1 s


@cache
def node_id() -> str | None:
    """``<boot id>/<pid namespace>`` of this process, or None where /proc does not tell."""
    try:
        boot = (PROC / "sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink(PROC / "self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return None
    return f"{boot}/{namespace}" if boot and namespace else None


def process_start(pid: int) -> float | None:
    """Epoch seconds when process ``pid`` started (0.0 for a zombie: dead, not reaped yet); None when
    unreadable (no such process, or hidden by /proc's hidepid)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        boot = next(int(line.split()[1]) for line in (PROC / "stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3, starttime field 22
    if fields[0] in ("Z", "X"):
        return 0.0
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def gone(pid: int, started_at: datetime) -> bool:
    """True when the process of a member that recorded ``pid`` and ``started_at`` on this node is surely gone."""
    try:
        os.kill(pid, 0)  # no signal sent: ESRCH says no such process, even where /proc hides others'
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, another user's: look at its start below
    start = process_start(pid)
    if start is None:
        return False  # cannot tell: alive
    # the member wrote started_at after its process started, so its own process started before that
    return start == 0.0 or start > started_at.timestamp() + START_SLACK
