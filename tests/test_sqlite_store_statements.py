"""The statements a SQLite store runs per ``create_payment`` write (issue 18: CPU per
call), counted where SQLite sees them (the connection's trace callback)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from paygate.stores import OperationRecord, OperationStatus
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
    got = store.begin_operation(record)
    assert got.result == {"a": [1, 2]}
    assert got == store.get_operation("k:1")
