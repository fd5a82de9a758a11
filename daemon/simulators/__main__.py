"""``python -m daemon.simulators``: run the three simulators on loopback until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from daemon.simulators.suite import SimulatorSuite


async def _main(args: argparse.Namespace) -> None:
    ports = {"telegram": args.telegram_port, "smtp": args.smtp_port, "sms": args.sms_port,
             "control": args.control_port}
    suite = await SimulatorSuite().start(ports)
    try:
        print(f"# simulators on loopback; fault control API at {suite.control_url}")
        print(suite.config_toml(), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await suite.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m daemon.simulators", description=__doc__)
    for name in ("telegram", "smtp", "sms", "control"):
        parser.add_argument(f"--{name}-port", type=int, default=0, help=f"{name} port (default: any free)")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
