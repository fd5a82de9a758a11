"""``make demo``: the failover walkthrough on loopback, end to end.

Starts the three simulators in this process and the real daemon as a child process, then drives
it with the real ``fnotify`` CLI, printing each command and what it answered:

1. a recipient without a Telegram chat whose mail server rejects the address:
   Telegram skipped -> email failed -> SMS delivered (the seed's user 1);
2. a recipient with a Telegram chat: a clean delivery;
3. Telegram answering 500 twice: retried with backoff on the same channel, then delivered;
4. Ivan linking his Telegram chat through the bot's deep link, then a delivery through Telegram.

It exits 0 once it has shown that; ``--keep-running`` leaves the daemon and simulators up so a
second terminal can run ``fnotify --config <path> tui`` against them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import shutil
import signal
import socket
import sys
from pathlib import Path

from daemon.simulators.suite import SimulatorSuite

BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


class DemoError(Exception):
    pass


async def fnotify(config: Path, *args: str, show: bool = True) -> str:
    if show:
        print(f"\n{BOLD}$ fnotify {' '.join(_quote(a) for a in args)}{RESET}", flush=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    text = out.decode()
    if show:
        print(text.rstrip(), flush=True)
    if proc.returncode not in (0, 1):
        raise DemoError(f"fnotify {args[0]} exited {proc.returncode}: {text.strip()}")
    return text


def _quote(arg: str) -> str:
    return f'"{arg}"' if (" " in arg or not arg) else arg


async def start_daemon(config: Path, log_path: Path) -> asyncio.subprocess.Process:
    log_file = log_path.open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "--config", str(config), "run", stderr=log_file,
    )
    log_file.close()
    for _ in range(100):  # up to 10 s
        if proc.returncode is not None:
            raise DemoError(f"the daemon exited at start:\n{log_path.read_text()}")
        with contextlib.suppress(DemoError):  # exit status 3 until the socket is up
            if (await fnotify(config, "status", show=False)).startswith("failover-notify"):
                return proc
        await asyncio.sleep(0.1)
    proc.kill()
    raise DemoError(f"the daemon did not come up in 10 s:\n{log_path.read_text()}")


async def run_demo(state: Path, keep_running: bool) -> None:
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    suite = await SimulatorSuite().start()
    config = state / "fnotify.toml"
    port = _free_port()
    # SMS delivery receipts by Twilio's status callback, which the simulator posts to the HTTP listener
    receipts = (f'receipts = "callback"\nstatus_callback_url = "http://127.0.0.1:{port}/api/v1/twilio/status"\n'
                "receipt_timeout = 60\n")
    config.write_text(
        f'[daemon]\nstate_dir = "{state}"\nlog_level = "INFO"\n\n'
        "[retry]\nattempts_per_channel = 3\nbackoff_initial = 0.5\nbackoff_max = 2.0\n\n"
        f'[http]\nenabled = true\nlisten = "127.0.0.1:{port}"\ntokens = ["{secrets.token_hex(16)}"]\n\n'
        + suite.config_toml().replace("[sms]\n", "[sms]\n" + receipts)
    )
    print(f"{BOLD}failover-notify demo{RESET}: simulators on loopback "
          f"(Telegram {suite.telegram_url}, SMTP 127.0.0.1:{suite.smtp_port}, Twilio {suite.sms_url})")
    daemon = await start_daemon(config, state / "daemon.log")
    print(f"daemon running (pid {daemon.pid}), config {config}, log {state / 'daemon.log'}")
    try:
        await _scenarios(config, suite)
        print(f"\n{BOLD}The daemon's log (one line per attempt):{RESET}")
        for line in (state / "daemon.log").read_text().splitlines():
            if "daemon.core.engine" in line:
                print(f"{DIM}{line}{RESET}")
        if keep_running:
            print(f"\n{BOLD}Still running.{RESET} In another terminal:\n"
                  f"  .venv/bin/fnotify --config {config} tui\n"
                  f"  .venv/bin/fnotify --config {config} send --to 2 -m hello --wait\n"
                  f"Fault control: curl -X POST {suite.control_url}/smtp/faults -d '{{\"kind\":\"error\"}}'\n"
                  "Press Ctrl-C to stop.")
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
    finally:
        if daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
            await daemon.wait()
        await suite.stop()


async def _scenarios(config: Path, suite: SimulatorSuite) -> None:
    print(f"\n{BOLD}== Two recipients: Ivan has no Telegram chat (like the old service's user 1), "
          f"Maria has one{RESET}")
    await fnotify(config, "recipient", "add", "--name", "Ivan", "--email", "ivan@example.com",
                  "--phone", "+14155550101")
    await fnotify(config, "recipient", "add", "--name", "Maria", "--email", "maria@example.com",
                  "--phone", "+14155550102", "--telegram-chat-id", "1001")
    await fnotify(config, "recipient", "list")

    print(f"\n{BOLD}== 1. Failover: no Telegram chat -> the mail server rejects the address (550) "
          f"-> SMS{RESET}")
    suite.smtp.faults.inject("permanent", target="ivan@example.com")
    out = await fnotify(config, "send", "--to", "1", "--message", "Test message with channel failover",
                        "--chain", "telegram,email,sms", "--wait")
    _expect(out, ["DELIVERED", "telegram  skipped", "email     failed", "sms       delivered"])
    suite.smtp.faults.clear()

    print(f"\n{BOLD}== 2. A clean delivery through Telegram{RESET}")
    out = await fnotify(config, "send", "--to", "2", "--message", "Backup finished ✅", "--wait")
    _expect(out, ["DELIVERED", "telegram  delivered"])

    print(f"\n{BOLD}== 3. Telegram answers 500 twice: retried with backoff, then delivered{RESET}")
    suite.telegram.faults.inject("error", count=2)
    out = await fnotify(config, "send", "--to", "2", "--message", "Disk 91% full on db-1", "--wait")
    _expect(out, ["DELIVERED", "telegram  retry", "telegram  delivered"])

    print(f"\n{BOLD}== 4. Ivan links his Telegram chat through the bot's single-use deep link{RESET}")
    link = json.loads(await fnotify(config, "recipient", "link", "1", "--json"))
    print(f"{DIM}(Ivan opens the link: his Telegram app sends /start <token> to the bot){RESET}")
    suite.telegram.user_sends(2002, f"/start {link['token']}", first_name="Ivan")
    for _ in range(300):  # the bot comes up after READY (aiogram's import), then its long poll picks the update up
        if suite.telegram.messages_to(2002):  # the bot's answer (the row is linked before it is sent)
            break
        await asyncio.sleep(0.1)
    else:
        raise SystemExit("demo: the bot did not answer Ivan's /start within 30 s; see the daemon's log")
    print(f"bot -> Ivan: {suite.telegram.messages_to(2002)[-1].text}")
    await fnotify(config, "recipient", "list")
    out = await fnotify(config, "send", "--to", "1", "--message", "Now straight to Telegram", "--wait")
    _expect(out, ["DELIVERED", "telegram  delivered"])

    print(f"\n{BOLD}== 5. The carrier drops an SMS (delivery receipt: undelivered 30005): on to email{RESET}")
    suite.sms.receipt_for("+14155550101", "undelivered", 30005)
    out = await fnotify(config, "send", "--to", "1", "--message", "Replica lag 40 s on db-2",
                        "--chain", "sms,email", "--wait")
    _expect(out, ["DELIVERED", "sms      undelivered", "undelivered 30005: unknown destination handset",
                  "email    delivered"])

    print(f"\n{BOLD}== What the providers received{RESET}")
    for m in suite.telegram.messages:
        print(f"  telegram chat {m.chat_id}: {m.text}")
    for e in suite.smtp.received:
        print(f"  email to {', '.join(e.rcpt_tos)}: {e.subject}")
    for s in suite.sms.messages:
        print(f"  sms to {s.to}: {s.body}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _expect(output: str, needles: list[str]) -> None:
    missing = [n for n in needles if n not in output]
    if missing:
        raise DemoError(f"the demo did not go as expected: missing {missing} in:\n{output}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m daemon.simulators.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, default=Path(".fnotify/demo"), help="demo state directory")
    parser.add_argument("--keep-running", action="store_true", help="leave daemon and simulators up")
    args = parser.parse_args()
    try:
        asyncio.run(run_demo(args.state.resolve(), args.keep_running))
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
