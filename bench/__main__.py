"""``python -m bench`` (``make bench``): measure the daemon against loopback simulators.

Prints a table and writes ``bench/results/<timestamp>.json``. Every loop is bounded; nothing
leaves 127.0.0.1. Each figure is printed beside a reference measured in the same run and the
ratio, with its target. ``--only PART`` runs one part (repeatable); the parts are the modules
listed in ``PARTS``, each with ``run(ctx) -> dict`` (merged into the results) and ``rows(results)``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import cli, cluster, e2e, enqueue, smtp, startup
from bench.common import Row
from bench.procs import Simulators

RESULTS = Path(__file__).resolve().parent / "results"
PARTS: dict[str, ModuleType] = {"enqueue": enqueue, "e2e": e2e, "smtp": smtp, "startup": startup, "cli": cli,
                               "cluster": cluster}
"""Run in this order; a part is any module with ``run(ctx)`` and ``rows(results)``."""


@dataclass
class Context:
    """What every part gets: the arguments, a scratch directory, the running simulators and their config."""

    args: argparse.Namespace
    work: Path
    sims: Simulators
    channels: str


async def run(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Run the parts; ``out`` is rewritten after each, so a run cut short keeps what it measured."""
    work = Path(tempfile.mkdtemp(prefix="fnb-", dir="/tmp"))
    sims = Simulators()
    channels = await sims.start()
    ctx = Context(args, work, sims, channels)
    results: dict[str, Any] = {"when": datetime.now().isoformat(timespec="seconds"), "parts": {}}
    try:
        for name in args.only or list(PARTS):
            began = time.perf_counter()
            part = await PARTS[name].run(ctx)
            results.update(part)
            results["parts"][name] = round(time.perf_counter() - began, 1)
            for key, value in part.items():
                print(f"  {key}: {json.dumps(value, default=lambda f: round(f, 2))}", flush=True)
            out.write_text(json.dumps(results, indent=2))
    finally:
        await sims.stop()
        shutil.rmtree(work, ignore_errors=True)
    return results


def table(results: dict[str, Any]) -> str:
    rows: list[Row] = [row for part in PARTS.values() for row in part.rows(results)]
    head = Row("row", "figure", "reference (same run)", "ratio", "target", "detail")
    cols = ("name", "figure", "reference", "ratio", "target", "detail")
    width = {c: max(len(getattr(r, c)) for r in (head, *rows)) for c in cols[:-1]}
    return "\n".join("| " + " | ".join(f"{getattr(r, c):<{width[c]}}" if c in width else getattr(r, c)
                                       for c in cols) + " |" for r in (head, *rows))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", action="append", choices=list(PARTS), help="run this part only (repeatable)")
    parser.add_argument("--enqueue", type=int, default=6400, help="sends per enqueue run")
    parser.add_argument("--raw-sqlite", type=int, default=3000, help="rows for the raw SQLite reference")
    parser.add_argument("--e2e", type=int, default=5000, help="notifications per end-to-end run")
    parser.add_argument("--smtp", type=int, default=2000, help="notifications over SMTP (and for its reference)")
    parser.add_argument("--failover", type=int, default=1000, help="notifications for failover latency")
    parser.add_argument("--backlog", type=int, default=100_000, help="backlog size")
    parser.add_argument("--drain-window", type=float, default=30.0, help="seconds to measure the drain")
    parser.add_argument("--ready-runs", type=int, default=3, help="starts timed on the backlog (the median)")
    parser.add_argument("--reference", type=int, default=3000, help="requests per bare httpx loop")
    parser.add_argument("--cli-runs", type=int, default=30, help="fnotify send processes timed (the median)")
    parser.add_argument("--table", type=Path, metavar="JSON", help="print the table of a results file, run nothing")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
        # an installed package has its bytecode compiled (pip does it at install); without caches every
        # process the bench times (daemon start, CLI send) would compile the project's modules again
        print("bench: PYTHONDONTWRITEBYTECODE is set here; unset for the processes the bench starts")
    began = time.perf_counter()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.now():%Y%m%dT%H%M%S}.json"
    results = asyncio.run(run(args, out))
    print()
    print(table(results))
    print(f"\nwritten {out} ({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
