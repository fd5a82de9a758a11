"""The group-commit writer: ops of unrelated requests share one transaction, and whatever one op raises
rolls back that op alone (a savepoint each); only a fault of the database fails the whole batch."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.core.errors import NotFound, StorageError
from daemon.storage.writer import GroupCommitWriter, OneStatement, WriteConnection, apply_batch


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    raw = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    raw.execute("CREATE TABLE t (name TEXT NOT NULL, n INTEGER)")
    yield raw
    raw.close()


def insert(name: str, n: object = 0) -> Any:
    def op(raw: sqlite3.Connection) -> int:
        return raw.execute("INSERT INTO t (name, n) VALUES (?, ?)", (name, n)).lastrowid or 0

    return op


def insert_then_raise(name: str, exc: Exception) -> Any:
    def op(raw: sqlite3.Connection) -> None:
        raw.execute("INSERT INTO t (name) VALUES (?)", (name,))  # written, then the op fails
        raise exc

    return op


def names(raw: sqlite3.Connection) -> list[str]:
    return [row[0] for row in raw.execute("SELECT name FROM t ORDER BY rowid")]


def test_an_op_raising_anything_rolls_back_only_its_own_writes(conn: sqlite3.Connection) -> None:
    ops = [
        insert("first"),
        insert("too big", 2**64),  # OverflowError while binding
        insert_then_raise("half-done", RuntimeError("a bug in one op")),
        insert("\ud800"),  # UnicodeEncodeError while binding
        insert_then_raise("refused", NotFound("no such recipient")),
        insert("last"),
    ]
    outcomes = apply_batch(conn, ops)
    assert names(conn) == ["first", "last"]  # committed; nothing of the failed ops, not even half of one
    errors = [type(error).__name__ if error else None for _, error in outcomes]
    assert errors == [None, "OverflowError", "RuntimeError", "UnicodeEncodeError", "NotFound", None]
    assert not conn.in_transaction


def test_an_op_that_fails_with_a_write_statement_still_in_progress_rolls_back_alone(conn: sqlite3.Connection) -> None:
    apply_batch(conn, [insert("a"), insert("b")])

    def half_read_update(raw: sqlite3.Connection) -> None:
        cursor = raw.execute("UPDATE t SET n = n + 1 RETURNING n")
        cursor.fetchone()  # one row of two: the UPDATE is still in progress
        raise RuntimeError("gave up halfway")

    outcomes = apply_batch(conn, [insert("before"), half_read_update, insert("after")])
    assert [type(error).__name__ if error else None for _, error in outcomes] == [None, "RuntimeError", None]
    assert names(conn) == ["a", "b", "before", "after"]
    assert [row[0] for row in conn.execute("SELECT n FROM t WHERE name IN ('a', 'b')")] == [0, 0]


def test_a_constraint_violation_is_its_ops_own_outcome(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE UNIQUE INDEX t_name ON t (name)")
    outcomes = apply_batch(conn, [insert("a"), insert("a"), insert("b")])
    assert names(conn) == ["a", "b"]
    assert isinstance(outcomes[1][1], sqlite3.IntegrityError)


def test_one_statement_ops_skip_the_savepoint_and_a_failed_one_still_leaves_nothing(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE UNIQUE INDEX t_name ON t (name)")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    outcomes = apply_batch(conn, [
        OneStatement(insert("a")),
        OneStatement(insert("a")),  # the UNIQUE index refuses it: SQLite undoes the statement alone
        OneStatement(insert("too big", 2**64)),  # OverflowError while binding: nothing ran
        insert("b"),  # an ordinary op keeps its savepoint
        OneStatement(insert("c")),
    ])
    conn.set_trace_callback(None)
    assert names(conn) == ["a", "b", "c"]
    assert [type(error).__name__ if error else None for _, error in outcomes] == [
        None, "IntegrityError", "OverflowError", None, None]
    assert [s for s in statements if s.startswith(("SAVEPOINT", "RELEASE"))] == ["SAVEPOINT op", "RELEASE op"]
    assert not conn.in_transaction


def test_a_full_disk_fails_a_batch_of_one_statement_ops_too(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA max_page_count = 2")
    with pytest.raises(sqlite3.OperationalError, match="full"):
        apply_batch(conn, [OneStatement(insert("small")), OneStatement(insert("x" * 10_000))])
    assert names(conn) == [] and not conn.in_transaction


def test_a_full_disk_fails_the_whole_batch(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA max_page_count = 2")  # as small as the file already is: the next page is refused
    big = "x" * 10_000
    with pytest.raises(sqlite3.OperationalError, match="full"):
        apply_batch(conn, [insert("small"), insert(big), insert("after")])
    assert names(conn) == [] and not conn.in_transaction  # no false acknowledgement for anyone


def test_a_read_only_database_fails_the_whole_batch(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only = ON")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        apply_batch(conn, [insert("a"), insert("b")])
    conn.execute("PRAGMA query_only = OFF")
    assert names(conn) == [] and not conn.in_transaction


async def test_the_writer_answers_each_caller_with_its_own_outcome(tmp_path: Path) -> None:
    db = await WriteConnection.open(tmp_path / "w.db", lambda raw: None)
    try:
        await db.run(lambda raw: raw.execute("CREATE TABLE t (name TEXT NOT NULL, n INTEGER)"))
        writer = GroupCommitWriter(db)
        writer.start()
        good = [writer.submit(insert(f"good {i}")) for i in range(50)]
        poison = [writer.submit(insert("poison", 2**64)), writer.submit(insert("\udfff"))]
        results = await asyncio.gather(*good, *poison, return_exceptions=True)
        await writer.close()
        assert all(isinstance(r, int) for r in results[:50])
        assert [type(r) for r in results[50:]] == [OverflowError, UnicodeEncodeError]
        assert await db.run(lambda raw: raw.execute("SELECT count(*) FROM t").fetchone()[0]) == 50
        with pytest.raises(StorageError, match="closed"):
            await writer.submit(insert("late"))
    finally:
        await db.close()
