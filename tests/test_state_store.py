"""Every PaymentState field survives every store; a version-1 database upgrades to
the current version (``paygate db upgrade``) and its payments read back unchanged."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from paygate import DisputeStatus, Money, Payment, PaymentStatus
from paygate.__main__ import main
from paygate.state import PaymentState
from paygate.stores import MemoryStore, PaymentRecord, Store, open_store
from paygate.stores._records import EventPlan
from paygate.stores._sql import MIGRATIONS, SCHEMA_VERSION, SQLStore, _codec
from paygate.stores.sqlite import SQLITE
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

S = PaymentStatus

#: a state with every field away from its default
RICH = PaymentState(
    S.DISPUTED,
    2000,
    captured=1500,
    refunded=300,
    refund_ids=frozenset({"re_1", "re_2"}),
    before_dispute=S.PARTIALLY_REFUNDED,
    as_of=1_767_225_600.25,
    capture_implied=True,
    reversed_refund_ids=frozenset({"re_3"}),
    disputes=(("", DisputeStatus.WON), ("dp_1", DisputeStatus.OPEN), ("dp_2", DisputeStatus.LOST)),
)
#: what a version-1 row held (the new fields at their defaults)
PLAIN = PaymentState(
    S.PARTIALLY_REFUNDED, 2000, captured=2000, refunded=500, refund_ids=frozenset({"re_1"})
)


def payment(pid: str = "pay_1") -> Payment:
    return Payment(pid, "fake", "ord_1", Money(2000, "USD"), S.PENDING)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        s: Store = MemoryStore()
    elif request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'paygate.db'}")
    else:
        s = open_store(request.getfixturevalue("pg_url"))
    yield s
    s.close()


@pytest.mark.parametrize(
    "state", [RICH, PLAIN, PaymentState(S.PENDING, 2000)], ids=["rich", "plain", "new"]
)
def test_every_state_field_round_trips(store: Store, state: PaymentState) -> None:
    first = PaymentRecord.build(payment(), PaymentState(S.PENDING, 2000), updated_at=1.0)
    store.save_payment(first, expected_version=None)
    moved = PaymentRecord.build(payment(), state, version=2, updated_at=2.0)
    store.save_payment(moved, expected_version=1)  # the update statement
    got = store.get_payment("pay_1")
    assert got is not None and got.state == state
    store.save_payment(PaymentRecord.build(payment("pay_2"), state, updated_at=3.0),
                       expected_version=None)  # the insert statement  # fmt: skip
    again = store.get_payment("pay_2")
    assert again is not None and again.state == state


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_state_field_round_trips_through_the_one_statement_ingest(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A webhook's first delivery writes its payment in the ingest statement (PostgreSQL's
    is its own: created_at sent once), its later ones by compare-and-set."""
    url = (
        f"sqlite:///{tmp_path / 'ingest.db'}" if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )  # fmt: skip
    store = open_store(url)
    assert isinstance(store, SQLStore)
    try:
        inserted = PaymentRecord.build(payment(), RICH, updated_at=7.0)
        ingest(store, "evt_1", lambda current: EventPlan("applied", finish=True, record=inserted))
        got = store.get_payment("pay_1")
        assert got is not None and got.state == RICH
        assert (got.created_at, got.updated_at) == (7.0, 7.0)
        updated = PaymentRecord.build(payment(), PLAIN, version=2, updated_at=8.0)
        ingest(store, "evt_2", lambda current: EventPlan(
            "applied", finish=True, record=updated, expected_version=1))  # fmt: skip
        got = store.get_payment("pay_1")
        assert got is not None and got.state == PLAIN and got.created_at == 7.0
    finally:
        store.close()


def ingest(store: SQLStore, event_id: str, decide: Callable[[Any], EventPlan | None]) -> None:
    store.ingest_event(
        "fake", event_id, event_type="payment.created", provider_type="payment.created",
        payment_id="pay_1", payload={"id": event_id}, occurred_at=None, now=100.0,
        lease_seconds=30.0, decide=decide,
    )  # fmt: skip


def v1_row(pid: str, state: PaymentState) -> tuple[Any, ...]:
    """A payments row as paygate wrote it at schema version 1."""
    return (
        pid, "fake", "ord_1", "USD", state.amount, state.status.value, state.captured,
        state.refunded, _codec.encode_json(sorted(state.refund_ids)),
        state.before_dispute.value if state.before_dispute else None,
        _codec.dumps(PaymentRecord.build(payment(pid), state).payment), 3, 10.0, 20.0,
    )  # fmt: skip


V1_INSERT = (
    "INSERT INTO paygate_payments (id, provider, order_id, currency, amount, status, "
    "captured, refunded, refund_ids, before_dispute, data, version, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
V1_STATES = {
    "pay_1": PLAIN,
    "pay_2": PaymentState(S.DISPUTED, 2000, captured=2000, before_dispute=S.SUCCEEDED),
    "pay_3": PaymentState(S.CHARGED_BACK, 2000, captured=2000),
    "pay_4": PaymentState(S.FAILED, 2000),
}


def test_a_version_1_sqlite_database_upgrades_and_reads_back_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert SCHEMA_VERSION == 4  # 2: the ordering column; 3: the facts outbox; 4: subscriptions
    path = tmp_path / "v1.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        for statement in MIGRATIONS[1]:
            conn.execute(SQLITE.ddl(statement))
        conn.execute("INSERT INTO paygate_meta (key, value) VALUES ('schema_version', '1')")
        for pid, state in V1_STATES.items():
            conn.execute(V1_INSERT, v1_row(pid, state))
    url = f"sqlite:///{path}"
    assert main(["db", "upgrade", "--store", url]) == 0
    assert "schema upgraded from version 1 to 4" in capsys.readouterr().out
    check_read_back(open_store(url))


def test_a_version_1_postgres_database_upgrades_and_reads_back_unchanged(
    pg_url: str,  # noqa: F811
    pg_database: str,  # noqa: F811
    pg_schema: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    import psycopg

    from paygate.stores.postgres import POSTGRES

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{pg_schema}"')
        conn.execute(f'SET search_path TO "{pg_schema}"')
        for statement in MIGRATIONS[1]:
            conn.execute(POSTGRES.ddl(statement))
        conn.execute("INSERT INTO paygate_meta (key, value) VALUES ('schema_version', '1')")
        for pid, state in V1_STATES.items():
            conn.execute(POSTGRES.sql(V1_INSERT), v1_row(pid, state))
    assert main(["db", "upgrade", "--store", pg_url]) == 0
    assert "schema upgraded from version 1 to 4" in capsys.readouterr().out
    check_read_back(open_store(pg_url))


def check_read_back(store: Store) -> None:
    try:
        for pid, state in V1_STATES.items():
            record = store.get_payment(pid)
            assert record is not None
            assert record.state == state, pid
            assert (record.version, record.created_at, record.updated_at) == (3, 10.0, 20.0)
        # an upgraded row takes the new fields: write one back and read it
        old = store.get_payment("pay_2")
        assert old is not None
        richer = PaymentRecord.build(old.payment, RICH, version=4, updated_at=30.0)
        store.save_payment(richer, expected_version=3)
        got = store.get_payment("pay_2")
        assert got is not None and got.state == RICH
    finally:
        store.close()
