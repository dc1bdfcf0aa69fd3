"""Round trips to PostgreSQL per payment call: each is a wait of the network's latency.

The PostgreSQL store writes a call's two transactions (the pending idempotency record, the
provider's answer) as ONE statement each, in autocommit: one round trip each. A
``create_payment`` waits 2 times; it waited 3 times when each transaction was sent in
psycopg's pipeline mode (BEGIN ... COMMIT, the answer's COMMIT waiting on the
compare-and-set's row count), and 12 times when every statement, BEGIN and COMMIT
included, waited for its answer, and the payment was read between the two.

A round trip is counted in libpq's protocol trace of the pooled connection as a switch
from what the client sent (``F`` lines) to what the server answered (``B`` lines).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import Money
from paygate.providers.fake import FakeProvider
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401
from tests.test_durable_commits import _PostgresCommits

AMOUNT = Money.of("12.34", "USD")
#: psycopg prepares a statement on its 5th execution (a Parse with its own Sync): the
#: counts below are taken after that, as a long-running process sees them
WARM_UP = 6


class _Trips(_PostgresCommits):
    """libpq traces of the pooled connections (as the durable-commit counter takes
    them), read for round trips and statements."""

    def _lines(self) -> Iterator[str]:
        for f in self.files:
            f.flush()
            yield from Path(f.name).read_text().splitlines()

    def count(self) -> int:
        trips = 0
        for f in self.files:
            f.flush()
            last = ""
            for line in Path(f.name).read_text().splitlines():
                direction = line[:1]
                if direction == "B" and last == "F":
                    trips += 1
                if direction in ("B", "F"):
                    last = direction
        return trips

    def executions(self) -> int:
        """Statements run so far: each an Execute (extended protocol) or a Query."""
        return sum(1 for line in self._lines() if re.match(r"F\t\d+\t(Execute|Query)\t", line))


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_Trips]:
    from paygate.stores import _postgres_async, postgres

    counter = _Trips(tmp_path)
    connect = postgres._Connection.connect.__func__  # type: ignore[attr-defined]
    connect_async = _postgres_async._AsyncConnection.connect.__func__  # type: ignore[attr-defined]

    def connect_traced(cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = connect(cls, *args, **kwargs)
        counter.trace(conn)
        return conn

    async def connect_async_traced(cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = await connect_async(cls, *args, **kwargs)
        counter.trace(conn)
        return conn

    monkeypatch.setattr(postgres._Connection, "connect", classmethod(connect_traced))
    monkeypatch.setattr(
        _postgres_async._AsyncConnection, "connect", classmethod(connect_async_traced)
    )
    yield counter
    counter.close()


def _one_connection(url: str) -> str:
    return url.replace("pool_max=4", "pool_min=1&pool_max=1")


def test_create_payment_waits_on_postgres_twice(pg_url: str, trips: _Trips) -> None:  # noqa: F811
    with paygate.connect(FakeProvider(), _one_connection(pg_url)) as gw:
        for i in range(WARM_UP):
            gw.create_payment(order_id=f"warm-{i}", amount=AMOUNT, payment_method="tok_visa")
        before, ran = trips.count(), trips.executions()
        gw.create_payment(order_id="ord_1", amount=AMOUNT, payment_method="tok_visa")
        # a create_payment: begin_operation 1, save_answer 1 (3 when pipelined)
        assert trips.count() - before == 2
        # ... each ONE statement, its own transaction: no BEGIN, SET LOCAL or COMMIT
        # (10 statements when pipelined)
        assert trips.executions() - ran == 2


def test_the_native_async_path_waits_twice_too(pg_url: str, trips: _Trips) -> None:  # noqa: F811
    from paygate.stores.aio import AsyncStore
    from paygate.stores.postgres import PostgresStore

    async def main() -> int:
        store = AsyncStore(PostgresStore.from_url(_one_connection(pg_url)), threads=0)
        async with paygate.connect_async(FakeProvider(), store) as agw:
            for i in range(WARM_UP):
                await agw.create_payment(
                    order_id=f"warm-{i}", amount=AMOUNT, payment_method="tok_visa"
                )
            before = trips.count()
            await agw.create_payment(order_id="ord_1", amount=AMOUNT, payment_method="tok_visa")
            return trips.count() - before

    assert asyncio.run(main()) == 2


def test_an_answer_whose_transition_an_event_made_writes_nothing(
    pg_url: str,  # noqa: F811
) -> None:
    """The answer is one statement: a transition already recorded (its event applied)
    fails it after the payment's insert, and it is rolled back whole."""
    from paygate.stores._records import ClaimLost, OperationFinish, OperationStatus, PaymentWrite
    from paygate.stores.postgres import PostgresStore
    from tests.test_store import op, record, transition

    store = PostgresStore.from_url(pg_url)
    try:
        store.save_payment(
            record(pid="pay_0"), expected_version=None, transition=transition("pay_0", "evt_1")
        )
        store.begin_operation(op())
        finish = OperationFinish("create_payment:ord_1", 1, OperationStatus.SUCCEEDED, "pay_1",
                                 {"a": 1}, None, 5.0)  # fmt: skip
        again = PaymentWrite(record(), None, transition(event_id="evt_1"), ())
        with pytest.raises(ClaimLost, match="evt_1"):
            store.save_answer([again], finish=finish)
        assert store.get_payment("pay_1") is None
        pending = store.get_operation("create_payment:ord_1")
        assert pending is not None and pending.status is OperationStatus.PENDING
        # the connection came back clean: the next call on it works
        store.save_answer([PaymentWrite(record(), None, transition(), ())], finish=finish)
        assert store.get_payment("pay_1") is not None
    finally:
        store.close()


# -- the answer and the pending record as one statement each: what they guarantee ----------


def _fact(write_record: Any, kind: Any, *, at: float) -> Any:
    from paygate._facts import Fact

    payment = write_record.payment
    return Fact(id=f"fake:{payment.id}:{kind.value}", type=kind, provider="fake",
                payment_id=payment.id, order_id=payment.order_id, payment=payment,
                source="api", recorded_at=at)  # fmt: skip


def test_a_lost_compare_and_set_in_the_one_statement_answer_writes_nothing(
    pg_url: str,  # noqa: F811
    trips: _Trips,
) -> None:
    """The payment's write comes first; the attempt's end, the transition and the fact are
    written only if it wrote: a stale version writes none of them."""
    from paygate import EventType, PaymentStatus
    from paygate.state import PaymentState
    from paygate.stores import StoreConflict
    from paygate.stores._records import OperationFinish, OperationStatus, PaymentWrite
    from paygate.stores.postgres import PostgresStore
    from tests.test_store import op, record, transition

    S = PaymentStatus
    store = PostgresStore.from_url(pg_url)
    try:
        store.save_answer([PaymentWrite(record(), None, transition(), ())])
        store.begin_operation(op())
        finish = OperationFinish("create_payment:ord_1", 1, OperationStatus.SUCCEEDED,
                                 "pay_1", {"a": 1}, None, 5.0)  # fmt: skip
        paid = record(version=3, state=PaymentState(S.SUCCEEDED, 1999, 1999), now=200.0)
        stale = PaymentWrite(paid, 2, transition(new=S.SUCCEEDED, previous=S.PENDING),
                             (_fact(paid, EventType.PAYMENT_SUCCEEDED, at=200.0),))  # fmt: skip
        ran = trips.executions()
        with pytest.raises(StoreConflict, match="version 2 expected"):
            store.save_answer([stale], finish=finish)
        assert trips.executions() - ran == 1  # one statement, no ROLLBACK needed
        stored = store.get_payment("pay_1")
        assert stored is not None and (stored.version, stored.status) == (1, S.PENDING)
        assert [t.new_status for t in store.history("pay_1")] == [S.PENDING]
        assert store.list_facts(payment_id="pay_1") == []
        pending = store.get_operation("create_payment:ord_1")
        assert pending is not None and pending.status is OperationStatus.PENDING
        # on the version read: all of it
        store.save_answer([dataclasses.replace(stale, expected_version=1)], finish=finish)
        stored = store.get_payment("pay_1")
        assert stored is not None and (stored.version, stored.status) == (3, S.SUCCEEDED)
        assert [f.type for f in store.list_facts(payment_id="pay_1")] == [
            EventType.PAYMENT_SUCCEEDED
        ]
        done = store.get_operation("create_payment:ord_1")
        assert done is not None and done.status is OperationStatus.SUCCEEDED
    finally:
        store.close()


def test_a_chain_of_one_payments_writes_is_one_statement_with_the_same_rows(
    pg_url: str,  # noqa: F811
    trips: _Trips,
) -> None:
    """Writes of one payment, each on the version the previous one wrote, are written as
    the last row on the first one's version (insert here): created when the first was
    written, every transition and fact in order."""
    from paygate import EventType, PaymentStatus
    from paygate.state import PaymentState
    from paygate.stores._records import PaymentWrite
    from paygate.stores.postgres import PostgresStore
    from tests.test_store import record, transition

    S = PaymentStatus
    store = PostgresStore.from_url(pg_url)
    try:
        first = record(now=100.0)
        authorized = record(version=2, state=PaymentState(S.AUTHORIZED, 1999), now=150.0)
        paid = record(version=3, state=PaymentState(S.SUCCEEDED, 1999, 1999), now=200.0)
        writes = [
            PaymentWrite(first, None, transition(), ()),
            PaymentWrite(authorized, 1, transition(new=S.AUTHORIZED, previous=S.PENDING),
                         (_fact(authorized, EventType.PAYMENT_AUTHORIZED, at=150.0),)),
            PaymentWrite(paid, 2, transition(new=S.SUCCEEDED, previous=S.AUTHORIZED),
                         (_fact(paid, EventType.PAYMENT_SUCCEEDED, at=200.0),)),
        ]  # fmt: skip
        ran = trips.executions()
        store.save_answer(writes)
        assert trips.executions() - ran == 1
        stored = store.get_payment("pay_1")
        assert stored is not None and (stored.version, stored.status) == (3, S.SUCCEEDED)
        assert (stored.created_at, stored.updated_at) == (100.0, 200.0)
        assert [t.new_status for t in store.history("pay_1")] == [
            S.PENDING, S.AUTHORIZED, S.SUCCEEDED
        ]  # fmt: skip
        facts = store.list_facts(payment_id="pay_1")
        assert [(f.type, f.recorded_at) for f in facts] == [
            (EventType.PAYMENT_AUTHORIZED, 150.0), (EventType.PAYMENT_SUCCEEDED, 200.0)
        ]  # fmt: skip
    finally:
        store.close()


def test_the_pending_record_commits_asynchronously_for_its_own_transaction_only(
    pg_url: str,  # noqa: F811
) -> None:
    from paygate.stores._sql import operation_params
    from paygate.stores.postgres import _BEGIN_OPERATION, PostgresStore
    from tests.test_store import op

    store = PostgresStore.from_url(_one_connection(pg_url))  # its connection is ours below
    try:
        assert store.begin_operation(op()) == op()
        assert store.begin_operation(op(fingerprint="other")) == op()  # the stored one
        with store._connection() as conn:
            # the setting did not outlive the statement's transaction
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
            # inside a transaction the statement does switch it off (set_config is evaluated)
            with conn.transaction(force_rollback=True):
                another = dataclasses.replace(op(), key="create_payment:ord_2")
                conn.execute(_BEGIN_OPERATION[True], (*operation_params(another), another.key))
                assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
    finally:
        store.close()


def test_a_pending_record_inserted_meanwhile_by_another_call_is_the_one_returned(
    pg_url: str,  # noqa: F811
    pg_database: str,  # noqa: F811
    pg_schema: str,  # noqa: F811
) -> None:
    """The insert waits on a concurrent insert of the same key, which then commits: newer
    than the statement's snapshot, that row is not in its result (no row), so it is read
    again -- the other call's record is returned, as a transaction of two statements did."""
    import psycopg

    from paygate.stores._sql import operation_params
    from paygate.stores.postgres import _BEGIN_OPERATION, PostgresStore
    from tests.test_store import op

    store = PostgresStore.from_url(pg_url)
    theirs = op(fingerprint="theirs")
    result: list[Any] = []
    try:
        with (
            psycopg.connect(pg_database) as other,
            psycopg.connect(pg_database, autocommit=True) as look,
        ):
            other.execute(f'SET search_path = "{pg_schema}"')
            other.execute(_BEGIN_OPERATION[False], (*operation_params(theirs), theirs.key))
            worker = threading.Thread(target=lambda: result.append(store.begin_operation(op())))
            worker.start()
            waiting = 0
            deadline = time.monotonic() + 10
            while not waiting and time.monotonic() < deadline:  # until ours waits on theirs
                time.sleep(0.01)
                row = look.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'WITH ins AS (INSERT INTO paygate_operations%%'"
                ).fetchone()
                waiting = 0 if row is None else int(row[0])
            assert waiting == 1
            other.commit()
            worker.join(10)
        assert result == [theirs]
    finally:
        store.close()


def test_the_native_path_runs_a_store_call_in_one_greenlet(
    pg_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pool's check of a connection used within the last second is taken on the loop
    (no greenlet of its own): one greenlet per store call, two per create_payment."""
    from paygate.stores import _greenlet
    from paygate.stores.aio import AsyncStore
    from paygate.stores.postgres import PostgresStore

    spawned: list[int] = []

    class Counted(_greenlet._Bridged):
        __slots__ = ()

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            spawned.append(1)

    async def main() -> int:
        store = AsyncStore(PostgresStore.from_url(_one_connection(pg_url)), threads=0)
        async with paygate.connect_async(FakeProvider(), store) as agw:
            await agw.create_payment(order_id="warm", amount=AMOUNT, payment_method="tok_visa")
            monkeypatch.setattr(_greenlet, "_Bridged", Counted)
            await agw.create_payment(order_id="ord_1", amount=AMOUNT, payment_method="tok_visa")
            monkeypatch.undo()
            return len(spawned)

    assert asyncio.run(main()) == 2  # begin_operation, save_answer


# -- a payment call's statements are prepared on a connection's first execution ---------------


def _prepared_statements(store: Any) -> list[str]:
    with store._read() as cur:  # the pool's one connection
        cur.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cur.fetchall()]


def test_a_payment_calls_statements_are_prepared_at_their_first_execution(
    pg_url: str,  # noqa: F811
) -> None:
    """psycopg prepares a statement at its sixth execution on a connection: until then the
    server parses and plans it every time, on each connection a pool opens. The two
    statements of a payment call are prepared at once (``prepare=True``)."""
    from paygate.stores.postgres import PostgresStore

    store = PostgresStore.from_url(_one_connection(pg_url))
    try:
        with paygate.connect(FakeProvider(), store) as gw:
            gw.create_payment(order_id="ord_1", amount=AMOUNT, payment_method="tok_visa")
            prepared = _prepared_statements(store)
    finally:
        store.close()
    assert any("INSERT INTO paygate_operations" in s for s in prepared), prepared
    assert any("INSERT INTO paygate_payments" in s for s in prepared), prepared


def test_the_native_async_path_prepares_them_at_once_too(pg_url: str) -> None:  # noqa: F811
    from paygate.stores._greenlet import greenlet_spawn
    from paygate.stores.aio import AsyncStore
    from paygate.stores.postgres import PostgresStore

    async def main() -> list[str]:
        store = AsyncStore(PostgresStore.from_url(_one_connection(pg_url)), threads=0)
        async with paygate.connect_async(FakeProvider(), store) as agw:
            await agw.create_payment(order_id="ord_1", amount=AMOUNT, payment_method="tok_visa")
            return await greenlet_spawn(_prepared_statements, store._native)

    prepared = asyncio.run(main())
    assert any("INSERT INTO paygate_operations" in s for s in prepared), prepared
    assert any("INSERT INTO paygate_payments" in s for s in prepared), prepared


def test_prepare_threshold_none_still_prepares_nothing(
    pg_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection told to prepare nothing (a pooler that cannot keep prepared
    statements) is obeyed: ``prepare=True`` does not override ``prepare_threshold=None``."""
    from paygate.stores import postgres
    from paygate.stores.postgres import PostgresStore

    connect = postgres._Connection.connect.__func__  # type: ignore[attr-defined]

    def unprepared(cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = connect(cls, *args, **kwargs)
        conn.prepare_threshold = None
        return conn

    monkeypatch.setattr(postgres._Connection, "connect", classmethod(unprepared))
    store = PostgresStore.from_url(_one_connection(pg_url))
    try:
        with paygate.connect(FakeProvider(), store) as gw:
            gw.create_payment(order_id="ord_1", amount=AMOUNT, payment_method="tok_visa")
            assert _prepared_statements(store) == []
    finally:
        store.close()
