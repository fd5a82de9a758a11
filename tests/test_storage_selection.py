"""``[storage] url`` picks the store: unset is SQLite in state_dir, a PostgreSQL URL is PostgreSQL. A bad
URL or a server that cannot be reached stops ``fnotify run`` with exit status 2 and a message naming the
key; the password is a secret everywhere (errors, logs, ``status``)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli.doctor import OK, CheckResult, run_checks
from daemon.config import load_config
from daemon.core.errors import ConfigError
from daemon.simulators.suite import SimulatorSuite
from daemon.storage.postgres import PostgresStore
from daemon.storage.sqlite import SqliteStore
from tests.conftest import make_config, start_daemon, stop_daemon
from tests.daemon_process import REPO
from tests.pg import free_port

SECRET = "Sup3r-S3cret-pw"


def run(config: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", "--config", str(config), "run"], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def write(path: Path, storage: str) -> Path:
    path.write_text(f'[daemon]\nstate_dir = "{path.parent}"\n[storage]\n{storage}\n')
    return path


@pytest.mark.parametrize(("url", "reason"), [
    (f"mysql://fn:{SECRET}@db/fnotify", "must be a PostgreSQL URL"),
    (f"postgresql://fn:{SECRET}@db:port/fnotify", "the port must be a number"),
    (f"postgresql://fn:{SECRET}@db:5432/", "names no database"),
    (f"postgresql://fn:{SECRET}#x@db/fnotify", "'#' must be percent-encoded"),
])
def test_a_malformed_storage_url_is_a_config_error_naming_the_key_never_the_password(
    short_tmp: Path, url: str, reason: str
) -> None:
    path = write(short_tmp / "fnotify.toml", f'url = "{url}"')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}: [storage] url: " in str(err.value) and reason in str(err.value)
    assert SECRET not in str(err.value)
    result = run(path)
    assert result.returncode == 2 and "[storage] url" in result.stderr and SECRET not in result.stderr


@pytest.mark.parametrize("lease", ["0", "0.1", "nan", "inf", "-inf", "1e9", '"thirty"'])
def test_the_lease_must_be_a_finite_number_of_seconds_in_range(short_tmp: Path, lease: str) -> None:
    with pytest.raises(ConfigError, match=r"\[storage\] lease"):
        load_config(write(short_tmp / "fnotify.toml", f"lease = {lease}"))


def test_storage_defaults_to_sqlite_in_state_dir_and_the_url_can_come_from_env_or_a_credential(
    short_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(short_tmp / "fnotify.toml", "")
    config = load_config(path)
    assert config.storage.url is None and config.storage.lease == 30
    from daemon.storage.factory import make_store

    assert isinstance(make_store(config), SqliteStore)

    credentials = short_tmp / "creds"
    credentials.mkdir()
    (credentials / "storage_url").write_text(f"postgresql://fn:{SECRET}@db.internal:5433/fnotify\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = load_config(path)
    assert isinstance(make_store(config), PostgresStore)
    assert config.storage.postgres is not None and config.storage.postgres.display == \
        "postgresql://fn@db.internal:5433/fnotify"
    assert SECRET in config.secrets()  # so the redactor masks it
    assert SECRET not in repr(config) and SECRET not in str(config.model_dump())

    monkeypatch.setenv("FNOTIFY_STORAGE_URL", "postgres://other@db2/alerts")  # the environment comes first
    assert load_config(path).storage.postgres.display == "postgresql://other@db2/alerts"  # type: ignore[union-attr]


def test_fnotify_run_exits_2_naming_the_key_when_the_server_cannot_be_reached(short_tmp: Path) -> None:
    closed = free_port()  # nothing listens there
    path = write(short_tmp / "fnotify.toml", f'url = "postgresql://fn:{SECRET}@127.0.0.1:{closed}/fnotify"')
    result = run(path)
    assert result.returncode == 2, result.stderr
    assert f"cannot start: [storage] url: cannot connect to PostgreSQL at postgresql://fn@127.0.0.1:{closed}/fnotify" \
        in result.stderr
    assert SECRET not in result.stderr and "Traceback" not in result.stderr


def test_fnotify_run_exits_2_when_postgres_refuses_the_password(short_tmp: Path, pg_database: str) -> None:
    wrong = pg_database.replace("postgresql://postgres:", f"postgresql://postgres:{SECRET}")
    result = run(write(short_tmp / "fnotify.toml", f'url = "{wrong}"'))
    assert result.returncode == 2, result.stderr
    assert "[storage] url: cannot connect" in result.stderr and "password authentication failed" in result.stderr
    assert SECRET not in result.stderr


async def test_a_daemon_on_postgres_delivers_and_shows_the_url_without_its_password(
    short_tmp: Path, pg_database: str, suite: SimulatorSuite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    password = pg_database.split(":")[2].split("@")[0]
    config = make_config(short_tmp, storage={"url": pg_database}, **suite.config_sections())
    daemon = await start_daemon(config)
    try:
        ann = await daemon.call("recipient.add", name="Ann", email="ann@example.com")
        sent = await daemon.call("send", recipient_id=ann["id"], message="via postgres", chain=["email"])
        assert (await daemon.wait_final(sent["id"]))["status"] == "delivered"
        status = await daemon.call("status")
    finally:
        await stop_daemon(daemon)
    display = config.storage.postgres.display  # type: ignore[union-attr]
    assert status["storage"] == display and password not in display
    assert f"database {display}" in caplog.text
    assert not (short_tmp / "fnotify.db").exists()  # nothing went to SQLite
    assert len(suite.smtp.received) == 1


async def test_fnotify_check_reaches_postgres_and_reads_its_schema_version_without_writing(
    short_tmp: Path, pg_database: str
) -> None:
    def storage_row(rows: list[CheckResult]) -> CheckResult:
        return next(r for r in rows if r.name == "storage")

    config = make_config(short_tmp, storage={"url": pg_database})
    row = storage_row(await run_checks(config))
    assert row.status == OK and "no schema yet (fnotify run creates it)" in row.detail
    assert storage_row(await run_checks(config)).detail == row.detail  # the check created nothing
    store = PostgresStore(config.storage.postgres)  # type: ignore[arg-type]
    await store.open()
    await store.close()
    assert storage_row(await run_checks(config)).detail.endswith(", schema version 2")

    closed = make_config(short_tmp, storage={"url": f"postgresql://fn:{SECRET}@127.0.0.1:{free_port()}/x"})
    row = storage_row(await run_checks(closed))
    assert row.failed and "cannot connect" in row.detail and SECRET not in row.detail
    sqlite_rows = await run_checks(make_config(short_tmp))
    assert "storage" not in {r.name for r in sqlite_rows}  # nothing to reach on SQLite
