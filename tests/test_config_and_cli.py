"""Config loading and the CLI's edges: bad configs are refused with file, key and reason."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import load_config
from daemon.core.errors import ConfigError


def fnotify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True, text=True, timeout=30,
                          env=env)


def test_a_bad_config_names_the_file_the_key_and_the_reason(short_tmp: Path) -> None:
    path = short_tmp / "bad.toml"
    path.write_text('[retry]\nattempts_per_channel = 0\ncolour = "red"\n[chain]\ndefault = "telegram,fax"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert f"{path}: [retry] attempts_per_channel: Input should be greater than or equal to 1" in message
    assert f"{path}: [retry] colour: unknown key" in message
    assert "[chain] default" in message and "'telegram', 'email' or 'sms'" in message


def test_fnotify_run_refuses_a_bad_config_with_exit_status_2(short_tmp: Path) -> None:
    path = short_tmp / "bad.toml"
    path.write_text("[daemon\n")
    result = fnotify("--config", str(path), "run")
    assert result.returncode == 2
    assert "not valid TOML" in result.stderr and "Traceback" not in result.stderr


def test_client_commands_only_need_the_daemon_section(short_tmp: Path) -> None:
    path = short_tmp / "service.toml"  # the service's own file: its token lives in a credential
    path.write_text(f'[daemon]\nsocket = "{short_tmp}/none.sock"\n[telegram]\nenabled = true\n')
    result = fnotify("--config", str(path), "status")
    assert result.returncode == 3
    assert f"cannot reach the daemon at {short_tmp}/none.sock" in result.stderr
    assert "fnotify run" in result.stderr


def test_a_missing_explicit_config_is_an_error(short_tmp: Path) -> None:
    result = fnotify("--config", str(short_tmp / "nope.toml"), "list")
    assert result.returncode == 2 and "no such file" in result.stderr


def test_relative_state_dir_is_taken_from_the_config_files_directory(short_tmp: Path) -> None:
    path = short_tmp / "fnotify.toml"
    path.write_text('[daemon]\nstate_dir = "state"\n')
    assert load_config(path).daemon.database == short_tmp.resolve() / "state" / "fnotify.db"


def test_secrets_come_from_the_environment_and_never_print(short_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = short_tmp / "fnotify.toml"
    path.write_text("[telegram]\nenabled = true\n")
    monkeypatch.setenv("FNOTIFY_TELEGRAM_TOKEN", "123456:ENV-TOKEN-abcdefghijklmnopqrst")
    config = load_config(path)
    assert config.telegram.token is not None
    assert config.telegram.token.get_secret_value() == "123456:ENV-TOKEN-abcdefghijklmnopqrst"
    assert "ENV-TOKEN" not in repr(config) and "ENV-TOKEN" not in str(config.model_dump())


def test_a_client_command_imports_neither_the_config_models_nor_any_server_code() -> None:
    """`fnotify send` is run once per alert by scripts: it reads the socket path and nothing more
    (issue 14). The import contracts check the modules; this checks what really gets loaded."""
    code = ("import sys, daemon.cli.main, daemon.cli.commands\n"
            "heavy = ('pydantic', 'daemon.config', 'aiogram', 'aiohttp', 'httpx', 'textual', 'apscheduler', 'orjson',"
            " 'daemon.api', 'daemon.storage', 'daemon.runtime', 'asyncio',"
            # what a process that only sends cannot afford either: dataclasses pulls in inspect and ast
            # (~10 ms), the protocol's TypedDicts take ~5 ms to build and are only named in annotations;
            # tomllib (~9 ms) only when a config file is read (not with --socket), datetime only to print times
            " 'dataclasses', 'inspect', 'daemon.protocol.shapes', 'daemon.protocol.group_shapes', 'tomllib',"
            " 'datetime')\n"
            "print(sorted(m for m in sys.modules if m.startswith(heavy)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_a_whole_send_with_socket_loads_neither_typing_nor_pathlib_nor_shutil() -> None:
    """A regular install (``python -S``: no site, so no editable-install finder that loads pathlib
    itself) running a whole ``send`` with ``--socket``: typing, pathlib and shutil (with bz2 and lzma)
    cost ~8 ms of the 80 ms budget (issue 14) and the command needs none of them."""
    repo = str(Path(__file__).resolve().parent.parent)
    code = (f"import sys; sys.path.insert(0, {repo!r}); import daemon.cli.main as m\n"
            "status = m.main(['--socket', '/nonexistent/fnotify.sock', 'send', '--to', '1', '-m', 'hi'])\n"
            "print(status, sorted(n for n in sys.modules if n.split('.')[0] in ('typing', 'pathlib', 'shutil')))")
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "3 []", result.stdout
    assert "cannot reach the daemon at /nonexistent/fnotify.sock" in result.stderr


def test_client_commands_find_the_socket_relative_to_the_config_file(short_tmp: Path) -> None:
    path = short_tmp / "fnotify.toml"
    path.write_text('[daemon]\nstate_dir = "state"\n[sms]\nenabled = "not a bool"\n')  # the daemon would refuse [sms]
    result = fnotify("--config", str(path), "status")
    assert result.returncode == 3
    assert f"cannot reach the daemon at {short_tmp.resolve()}/state/fnotify.sock" in result.stderr
    path.write_text('[daemon]\nstate_dir = "state"\n')  # the daemon's own reading agrees
    assert load_config(path).daemon.socket_path == short_tmp.resolve() / "state" / "fnotify.sock"
