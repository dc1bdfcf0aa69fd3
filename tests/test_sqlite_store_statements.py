"""The statements a SQLite store runs per ``create_payment`` write (issue 18: CPU per
call), counted where SQLite sees them (the connection's trace callback)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from paygate.stores import OperationRecord, OperationStatus, StoreError
from paygate.stores.sqlite import SQLiteStore


class _Traced(SQLiteStore):
    """A SQLite store keeping every statement its connections run."""

    statements: list[str]

    def _open(self) -> sqlite3.Connection:
        conn = super()._open()
        conn.set_trace_callback(self.statements.append)
        return conn


@pytest.fixture
def store(tmp_path: Path) -> Iterator[_Traced]:
    _Traced.statements = []
    s = _Traced(str(tmp_path / "s.db"))
    yield s
    s.close()


def _op(key: str, *, fingerprint: str = "fp") -> OperationRecord:
    return OperationRecord(key=key, operation="create_payment", fingerprint=fingerprint,
                           provider_key=f"pk-{key}", order_id="o1", created_at=1.0,
                           updated_at=1.0)  # fmt: skip


def _data_statements(statements: list[str]) -> list[str]:
    """The INSERT/SELECT/UPDATE statements (not BEGIN, COMMIT, PRAGMA, SAVEPOINT)."""
    return [s.split()[0].upper() for s in statements
            if s.split()[0].upper() in ("INSERT", "SELECT", "UPDATE")]  # fmt: skip


def test_begin_operation_inserting_does_not_read_the_record_back(store: _Traced) -> None:
    store.statements.clear()
    got = store.begin_operation(_op("create_payment:o1"))
    assert _data_statements(store.statements) == ["INSERT"]
    assert got == _op("create_payment:o1")
    assert store.get_operation("create_payment:o1") == got  # what the store holds


def test_begin_operation_on_an_existing_key_returns_the_stored_record(store: _Traced) -> None:
    first = store.begin_operation(_op("create_payment:o1"))
    store.finish_operation("create_payment:o1", attempt=1, status=OperationStatus.SUCCEEDED,
                           result_id="pay_1", result={"a": [1]}, error_code=None,
                           now=2.0)  # fmt: skip
    store.statements.clear()
    again = store.begin_operation(_op("create_payment:o1", fingerprint="other"))
    assert _data_statements(store.statements) == ["INSERT", "SELECT"]
    assert again != first
    assert again.fingerprint == "fp" and again.status is OperationStatus.SUCCEEDED
    assert again.result == {"a": [1]} and again.result_id == "pay_1"
    assert again == store.get_operation("create_payment:o1")


def test_begin_operation_with_a_result_reads_it_back_as_stored(store: _Traced) -> None:
    """A result goes through JSON (a tuple comes back a list): the store's copy."""
    record = OperationRecord(key="k:1", operation="x", fingerprint="fp", provider_key="pk",
                             result={"a": (1, 2)}, created_at=1.0, updated_at=1.0)  # fmt: skip
    store.statements.clear()
    got = store.begin_operation(record)
    assert _data_statements(store.statements) == ["INSERT"]
    assert got.result == {"a": [1, 2]}
    assert got == store.get_operation("k:1")


def _kinds(statements: list[str]) -> list[str]:
    return [s.split()[0].upper() for s in statements]


def _keys(db: str) -> set[str]:
    with closing(sqlite3.connect(db)) as conn:
        return {row[0] for row in conn.execute("SELECT key FROM paygate_operations")}


def test_begin_operation_in_a_group_commit_runs_no_savepoint(store: _Traced) -> None:
    """In a batch (`SQLiteStore._batch`, the async face's group commit) each write is a
    savepoint, but begin_operation's one statement is all or nothing by itself: no
    SAVEPOINT/RELEASE pair around it (two statements less per create_payment)."""
    store.statements.clear()
    with store._batch():
        store.begin_operation(_op("create_payment:o1"))
        store.begin_operation(_op("create_payment:o1", fingerprint="other"))  # exists
        store.finish_operation("create_payment:o1", attempt=1, status=OperationStatus.FAILED,
                               result_id=None, result=None, error_code="x",
                               now=2.0)  # fmt: skip
    assert _kinds(store.statements) == [
        "BEGIN", "INSERT", "INSERT", "SELECT",
        "SAVEPOINT", "UPDATE", "RELEASE",  # other writes keep theirs
        "COMMIT",
    ]  # fmt: skip
    assert store.get_operation("create_payment:o1").status is OperationStatus.FAILED  # type: ignore[union-attr]


def _refuse(db: str, how: str) -> None:
    """An insert of the operation key 'bad' writes a row elsewhere, then fails: with
    ``RAISE(ABORT)`` SQLite undoes the statement (its trigger's row too) and keeps the
    transaction; with ``RAISE(ROLLBACK)`` it rolls the whole transaction back."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.executescript(
            f"""
            CREATE TABLE side (note TEXT);
            CREATE TRIGGER refuse BEFORE INSERT ON paygate_operations
            WHEN NEW.key = 'bad' BEGIN
                INSERT INTO side VALUES ('half');
                SELECT RAISE({how}, 'refused');
            END;
            """
        )


def test_a_failing_begin_operation_in_a_batch_is_undone_alone(
    store: _Traced, tmp_path: Path
) -> None:
    db = str(tmp_path / "s.db")
    _refuse(db, "ABORT")
    with store._batch():
        store.begin_operation(_op("a"))
        with pytest.raises(sqlite3.IntegrityError, match="refused"):
            store.begin_operation(_op("bad"))
        store.begin_operation(_op("b"))
        assert store.get_operation("b") is not None
    assert _keys(db) == {"a", "b"}
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM side").fetchone() == (0,)  # nothing of it


def test_a_begin_operation_that_loses_the_transaction_fails_the_batch(
    store: _Traced, tmp_path: Path
) -> None:
    """SQLite rolled the whole transaction back: nothing of the batch is committed, and
    the batch's later writes and its end say so (as when a savepoint could not be
    rolled back to)."""
    db = str(tmp_path / "s.db")
    _refuse(db, "ROLLBACK")
    with pytest.raises(StoreError, match="nothing of it"), store._batch():
        store.begin_operation(_op("a"))
        with pytest.raises(sqlite3.IntegrityError, match="refused"):
            store.begin_operation(_op("bad"))
        with pytest.raises(StoreError, match="lost its transaction"):
            store.begin_operation(_op("b"))
    assert _keys(db) == set()
    store.begin_operation(_op("c"))  # the store goes on
    assert _keys(db) == {"c"}
