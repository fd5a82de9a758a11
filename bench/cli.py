"""``--only cli``: "CLI send, whole process": the median wall time of ``RUNS`` ``fnotify send``
processes against the running daemon, beside ``python -c pass`` (same interpreter, same run).

Two installs are timed. The venv's own is editable (``pip install -e``): its import finder costs
tens of milliseconds at every start. The regular one is what ``pip install .`` lays down (the
packages copied into a site-packages directory, the console script beside the interpreter), built
here in a temporary venv whose dependencies come from this venv (a ``.pth`` line: that directory's
own ``.pth`` files, the editable finder among them, are not processed). Target: median < 80 ms.
"""

from __future__ import annotations

import asyncio
import compileall
import resource
import shutil
import statistics
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

from bench.common import Row, add_recipients, verdict
from bench.procs import REPO, DaemonProc
from daemon.client import DaemonClient

TARGET_MS = 80.0
PACKAGES = ("daemon", "bot", "tui")
SCRIPT = """#!{python}
import sys
from daemon.cli.main import main
if __name__ == "__main__":
    sys.exit(main())
"""


def regular_install(where: Path) -> Path:
    """A venv at ``where`` with the project copied in (not editable); returns its ``fnotify``."""
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(where)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(where), "platbase": str(where)}))
    for package in PACKAGES:
        shutil.copytree(REPO / package, site / package, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    (site / "bench-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    for package in PACKAGES:  # what pip does at install: the bytecode is there before the first run
        compileall.compile_dir(site / package, quiet=1)
    script = where / "bin" / "fnotify"
    script.write_text(SCRIPT.format(python=where / "bin" / "python"))
    script.chmod(0o755)
    return script


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def timed(argv: list[str], runs: int) -> dict[str, float]:
    """Median wall time and CPU time (ms) of ``runs`` processes, one after another, after one untimed
    warm-up that writes the bytecode caches; run outside the repository, so its packages are not on
    the path. CPU time counts only finished children: the daemon and the simulators still run."""
    wall, cpu = [], []
    for i in range(runs + 1):
        began, cpu0 = time.perf_counter(), _children_cpu()
        proc = await asyncio.create_subprocess_exec(*argv, cwd="/", stdout=asyncio.subprocess.DEVNULL)
        if await proc.wait() != 0:
            raise RuntimeError(f"{argv} exited with {proc.returncode}")
        if i:
            wall.append((time.perf_counter() - began) * 1000)
            cpu.append((_children_cpu() - cpu0) * 1000)
    return {"wall_ms": statistics.median(wall), "cpu_ms": statistics.median(cpu)}


async def run(ctx: Any) -> dict[str, Any]:
    daemon = DaemonProc(ctx.work / "cli", ctx.channels)
    await daemon.start()
    try:
        recipient = (await add_recipients(daemon))[0]
        async with DaemonClient(daemon.socket) as client:
            await client.call("pause")
        send = ["--socket", str(daemon.socket), "send", "--to", str(recipient), "-m", "bench"]
        runs = ctx.args.cli_runs
        editable = Path(sys.executable).parent / "fnotify"
        regular = regular_install(ctx.work / "regular-venv")
        out = {"runs": runs, "python_pass": await timed([sys.executable, "-c", "pass"], runs),
               "editable": await timed([str(editable), *send], runs),
               "regular": await timed([str(regular), *send], runs)}
    finally:
        await daemon.stop()
    return {"cli": out}


def rows(r: dict[str, Any]) -> list[Row]:
    if "cli" not in r:
        return []
    c = r["cli"]
    ref = c["python_pass"]
    return [Row(f"CLI send, whole process, {kind} install (median of {c['runs']})", f"{c[kind]['wall_ms']:.0f} ms",
                f"python -c pass {ref['wall_ms']:.0f} ms", f"{c[kind]['wall_ms'] / ref['wall_ms']:.1f}x",
                f"< {TARGET_MS:.0f} ms: {verdict(c[kind]['wall_ms'] < TARGET_MS)}",
                f"CPU {c[kind]['cpu_ms']:.0f} ms, python -c pass {ref['cpu_ms']:.0f} ms")
            for kind in ("regular", "editable")]
