"""The daemon's files are private whatever the umask; a world-readable config file holding secrets is
warned about; a string a client sent cannot forge a log line."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.client import DaemonClient
from daemon.config import exposed_secrets, load_config
from daemon.core.redact import Redactor
from daemon.runtime.logs import setup_logging
from daemon.storage import SqliteStore
from tests.daemon_process import DaemonProcess, write_config

TOKEN = "plain-http-token-000000001"


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


async def test_the_database_and_its_wal_and_shm_are_0600_in_a_0700_directory_under_umask_022(
    short_tmp: Path, umask_022: None
) -> None:
    store = SqliteStore(short_tmp / "state" / "fnotify.db")
    await store.open()
    try:
        await store.add_recipient("Ann", None, None, None)  # a write: the -wal and -shm exist now
        modes = {p.name: p.stat().st_mode & 0o777 for p in (short_tmp / "state").iterdir()}
    finally:
        await store.close()
    assert (short_tmp / "state").stat().st_mode & 0o777 == 0o700
    # the .lock file: held (flock) while a store is open, so a restarted daemon knows its predecessor is gone
    assert modes == {"fnotify.db": 0o600, "fnotify.db-wal": 0o600, "fnotify.db-shm": 0o600, "fnotify.db.lock": 0o600}


def test_the_warning_names_the_secrets_and_only_when_others_can_read_the_file(short_tmp: Path) -> None:
    path = short_tmp / "fnotify.toml"
    secrets = f'[email]\npassword = "smtp-password-1"\n[http]\ntokens = ["{TOKEN}"]\n'
    path.write_text(secrets)
    path.chmod(0o644)
    warning = exposed_secrets(load_config(path))
    assert warning is not None and "([email] password, [http] tokens)" in warning and "(mode 0644)" in warning
    assert TOKEN not in warning and "smtp-password-1" not in warning
    path.chmod(0o640)
    assert exposed_secrets(load_config(path)) is None
    path.write_text('[http]\ntokens = ["sha256:' + "ab" * 32 + '"]\n')
    path.chmod(0o644)
    assert exposed_secrets(load_config(path)) is None  # a token's digest is no secret


async def test_the_daemon_warns_about_a_readable_config_and_logs_a_path_with_a_newline_on_one_line(
    short_tmp: Path, umask_022: None
) -> None:
    path = write_config(short_tmp / "fnotify.toml", short_tmp, {"email": {"password": "smtp-password-1"}})
    assert path.stat().st_mode & 0o777 == 0o644
    daemon = DaemonProcess(path, short_tmp / "fnotify.sock", short_tmp / "daemon.log")
    await daemon.start()
    try:
        evil = short_tmp / "evil\nERROR daemon.engine: forged.db"
        async with DaemonClient(daemon.socket_path) as client:
            assert (await client.call("backup", path=str(evil)))["path"] == str(evil)
    finally:
        await daemon.terminate()
    log = daemon.log()
    assert re.search(r"WARNING .*fnotify\.toml holds secrets \(\[email\] password\) and every user can read it", log)
    assert "evil\\nERROR daemon.engine: forged.db" in log
    assert not [line for line in log.splitlines() if line.startswith("ERROR daemon.engine")]


def test_no_control_character_reaches_the_log_unescaped(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", Redactor())
        logging.getLogger("daemon.api.http_api").info("%s GET %s 404", "127.0.0.1",
                                                  "/x\r\nERROR daemon.engine: forged\x1b[2K\u2028more")
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "/x\\r\\nERROR daemon.engine: forged\\x1b[2K\\u2028more 404" in err


async def test_backups_and_the_database_stay_private_under_a_lax_umask(short_tmp: Path) -> None:
    """The umask the operator's shell had does not reach the files (the backup is made by the daemon)."""
    old = os.umask(0o000)
    try:
        store = SqliteStore(short_tmp / "lax" / "fnotify.db")
        await store.open()
        try:
            size = await store.backup(short_tmp / "copy.db")
        finally:
            await store.close()
    finally:
        os.umask(old)
    assert size > 0
    assert (short_tmp / "copy.db").stat().st_mode & 0o777 == 0o600
    assert (short_tmp / "lax").stat().st_mode & 0o777 == 0o700
    assert (short_tmp / "lax" / "fnotify.db").stat().st_mode & 0o777 == 0o600
