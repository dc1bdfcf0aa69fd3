"""Group commit on the async SQLite path (issues 18 and 21).

``AsyncStore`` runs a ``SQLiteStore``'s calls on one thread; the calls queued together
run in ONE transaction with one ``COMMIT`` (``paygate.stores._sqlite_batch``). Commits are
counted where SQLite sees them (the connections' trace callback). Batches are made
deterministic by holding the store's thread on a gate while the calls queue up.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import Money
from paygate.providers.fake import FakeProvider
from paygate.stores import (
    ClaimLost,
    ClaimStatus,
    EventClaim,
    OperationRecord,
    PaymentRecord,
    StoreError,
)
from paygate.stores._sqlite_batch import BatchExecutor
from paygate.stores.aio import AsyncStore
from paygate.stores.sqlite import SQLiteStore
from tests.test_store import record


class _Trace:
    """Every statement of the store's connections, in order."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.lock = threading.Lock()

    def add(self, statement: str) -> None:
        with self.lock:
            self.statements.append(statement.strip().upper())

    def commits(self) -> int:
        with self.lock:
            return sum(s == "COMMIT" for s in self.statements)


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> _Trace:
    seen = _Trace()
    opened = SQLiteStore._open

    def open_traced(store: SQLiteStore) -> sqlite3.Connection:
        conn = opened(store)
        conn.set_trace_callback(seen.add)
        return conn

    monkeypatch.setattr(SQLiteStore, "_open", open_traced)
    return seen


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "store.db")


@pytest.fixture
def store(db: str) -> Iterator[SQLiteStore]:
    s = SQLiteStore(db)
    yield s
    s.close()


def _op(key: str) -> OperationRecord:
    return OperationRecord(key=key, operation="create_payment", fingerprint="fp",
                           provider_key=f"pk-{key}", created_at=1.0, updated_at=1.0)  # fmt: skip


def _keys(db: str) -> set[str]:
    """The operation keys committed (read on a connection of its own)."""
    with closing(sqlite3.connect(db)) as conn:
        return {row[0] for row in conn.execute("SELECT key FROM paygate_operations")}


def _payments(db: str) -> set[str]:
    with closing(sqlite3.connect(db)) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM paygate_payments")}


async def _gated(astore: AsyncStore, calls: list[Callable[[], Any]]) -> list[Any]:
    """Start ``calls`` (coroutines of ``astore``) while its thread is held, so they are
    all queued when it takes the next one; their outcomes (results or exceptions)."""
    gate = threading.Event()
    executor = astore._executor
    assert isinstance(executor, BatchExecutor)
    held = executor.submit(gate.wait)  # not a store method: runs alone
    tasks = [asyncio.ensure_future(call()) for call in calls]
    await asyncio.sleep(0)  # every task submits its call
    gate.set()
    await asyncio.wrap_future(held)
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def test_an_async_sqlite_store_runs_on_the_batch_executor(store: SQLiteStore) -> None:
    assert isinstance(AsyncStore(store)._executor, BatchExecutor)
    # more than one thread: no group commit (each thread its own connection)
    assert not isinstance(AsyncStore(store, threads=2)._executor, BatchExecutor)


def test_concurrent_create_payments_share_durable_commits(db: str, trace: _Trace) -> None:
    """Two commits per create_payment one by one (the pending record, then the answer);
    far fewer when 60 run at once."""
    calls = 60

    async def main() -> int:
        provider = FakeProvider(seed=7)
        async with paygate.connect_async(provider, SQLiteStore(db)) as agw:
            await agw.create_payment(order_id="warm", amount=Money(100, "EUR"),
                                     payment_method="tok_visa")  # fmt: skip
            before = trace.commits()
            payments = await asyncio.gather(*(
                agw.create_payment(order_id=f"o{i}", amount=Money(100 + i, "EUR"),
                                   payment_method="tok_visa")
                for i in range(calls)
            ))  # fmt: skip
            assert len({p.id for p in payments}) == calls
            return trace.commits() - before

    commits = asyncio.run(main())
    assert commits <= calls // 2, commits  # one by one: 2 * calls
    assert len(_payments(db)) == calls + 1  # every payment committed


def test_one_commit_per_batch_and_results_only_after_it(
    db: str, store: SQLiteStore, trace: _Trace
) -> None:
    keys = [f"k{i}" for i in range(8)]
    seen_at_result: list[tuple[int, bool]] = []

    async def begin(key: str) -> OperationRecord:
        result: OperationRecord = await astore.begin_operation(_op(key))
        # the caller learns of its write only once it is committed (another connection
        # sees it)
        seen_at_result.append((trace.commits() - before, key in _keys(db)))
        return result

    astore = AsyncStore(store)
    before = trace.commits()
    outcomes = asyncio.run(_gated(astore, [lambda k=k: begin(k) for k in keys]))  # type: ignore[misc]
    assert [o.key for o in outcomes] == keys
    assert trace.commits() - before == 1
    assert seen_at_result == [(1, True)] * len(keys)
    # the writes were statements of one transaction (begin_operation's one statement is
    # all or nothing without a savepoint), no sync setting changed inside it
    batch = trace.statements[trace.statements.index("BEGIN IMMEDIATE") :]
    assert batch[-1] == "COMMIT"
    assert sum(s.startswith("INSERT INTO PAYGATE_OPERATIONS") for s in batch) == len(keys)
    assert not any(s.startswith("SAVEPOINT") for s in batch)
    assert not any(s.startswith("PRAGMA") for s in batch)


def test_a_batch_wakes_the_loop_once(store: SQLiteStore) -> None:
    """The answers of a batch reach the event loop in one ``call_soon_threadsafe`` (one
    wake-up), not one per call as ``run_in_executor``'s chained futures do (issue 18:
    the hand-off cost several times the CPU of the call itself)."""
    astore = AsyncStore(store)
    keys = [f"k{i}" for i in range(10)]

    async def main() -> tuple[list[Any], int]:
        loop = asyncio.get_running_loop()
        wakeups = 0
        threadsafe = loop.call_soon_threadsafe

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal wakeups
            wakeups += 1
            return threadsafe(*args, **kwargs)

        gate = threading.Event()
        executor = astore._executor
        assert isinstance(executor, BatchExecutor)
        held = executor.submit(gate.wait)  # not awaited through the loop: no wake-up
        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        tasks = [asyncio.ensure_future(astore.begin_operation(_op(k))) for k in keys]
        await asyncio.sleep(0)  # every task queued its call
        gate.set()
        outcomes = await asyncio.gather(*tasks)
        assert held.done()
        return outcomes, wakeups

    outcomes, wakeups = asyncio.run(main())
    assert [o.key for o in outcomes] == keys
    assert wakeups == 1


def test_a_shutdown_cancelling_queued_calls_cancels_their_awaiting_tasks(
    store: SQLiteStore,
) -> None:
    astore = AsyncStore(store)

    async def main() -> tuple[bool, bool]:
        gate, holding = threading.Event(), threading.Event()
        executor = astore._executor
        assert isinstance(executor, BatchExecutor)

        def hold() -> None:
            holding.set()
            gate.wait()

        held = executor.submit(hold)
        assert await asyncio.to_thread(holding.wait, 10)  # the thread took it: not queued
        queued = asyncio.ensure_future(astore.begin_operation(_op("never")))
        await asyncio.sleep(0)
        executor.shutdown(wait=False, cancel_futures=True)
        gate.set()
        outcome = await asyncio.gather(queued, return_exceptions=True)
        await asyncio.wrap_future(held)
        return isinstance(outcome[0], asyncio.CancelledError), queued.cancelled()

    assert asyncio.run(main()) == (True, True)
    assert store.get_operation("never") is None


def test_later_calls_of_a_batch_see_the_earlier_ones(store: SQLiteStore) -> None:
    """As a serial execution would: the second begin_operation of a key finds the first's
    record, the compare-and-set on a payment sees the version just written."""
    astore = AsyncStore(store)
    first = record("pay_cas", version=1)
    second = record("pay_cas", version=2, now=200.0)
    stale = record("pay_cas", version=3, now=300.0)
    outcomes = asyncio.run(
        _gated(
            astore,
            [
                lambda: astore.begin_operation(_op("same")),
                lambda: astore.begin_operation(
                    OperationRecord(
                        key="same",
                        operation="create_payment",
                        fingerprint="other",
                        provider_key="pk-other",
                    )
                ),
                lambda: astore.save_payment(first, expected_version=None),
                lambda: astore.save_payment(second, expected_version=1),
                lambda: astore.save_payment(stale, expected_version=1),  # lost the race
                lambda: astore.get_payment("pay_cas"),
            ],
        )
    )
    assert outcomes[0].fingerprint == "fp" and outcomes[1].fingerprint == "fp"
    assert outcomes[2] is None and outcomes[3] is None
    assert type(outcomes[4]).__name__ == "StoreConflict"
    assert isinstance(outcomes[5], PaymentRecord) and outcomes[5].version == 2


def test_a_call_that_raises_is_rolled_back_alone(
    db: str, store: SQLiteStore, trace: _Trace
) -> None:
    astore = AsyncStore(store)
    # inserts its payment, then fails on the claim (no such event): half a write
    half = record("pay_half")
    bad_claim = EventClaim("fake", "evt_none", ClaimStatus.CLAIMED, "token")
    before = trace.commits()
    outcomes = asyncio.run(
        _gated(
            astore,
            [
                lambda: astore.begin_operation(_op("a")),
                lambda: astore.save_payment(half, expected_version=None, claim=bad_claim),
                lambda: astore.save_payment(record("pay_ok"), expected_version=None),
                lambda: astore.begin_operation(_op("b")),
            ],
        )
    )
    assert isinstance(outcomes[1], ClaimLost)
    assert [type(o).__name__ for o in (outcomes[0], outcomes[2], outcomes[3])] == [
        "OperationRecord", "NoneType", "OperationRecord",
    ]  # fmt: skip
    assert trace.commits() - before == 1
    assert _keys(db) == {"a", "b"}
    assert _payments(db) == {"pay_ok"}  # nothing of the failed call


def _poison(db: str) -> None:
    """A write of the operation key 'poison' makes the COMMIT of its transaction fail
    (a deferred foreign key, checked at commit)."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.executescript(
            """
            CREATE TABLE parent (id TEXT PRIMARY KEY);
            CREATE TABLE child (
                pid TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
            );
            CREATE TRIGGER poison AFTER INSERT ON paygate_operations
            WHEN NEW.key = 'poison' BEGIN INSERT INTO child VALUES ('missing'); END;
            """
        )


def test_a_failed_commit_fails_every_call_of_the_batch(db: str, store: SQLiteStore) -> None:
    _poison(db)
    astore = AsyncStore(store)
    outcomes = asyncio.run(
        _gated(
            astore,
            [
                lambda: astore.begin_operation(_op("a")),
                lambda: astore.save_payment(record("pay_x"), expected_version=None),
                lambda: astore.begin_operation(_op("poison")),
                lambda: astore.get_operation("a"),  # read what was never committed
                lambda: astore.begin_operation(_op("b")),
            ],
        )
    )
    assert all(isinstance(o, StoreError) for o in outcomes), outcomes
    assert len({id(o) for o in outcomes}) == len(outcomes)  # one exception each
    assert all("group commit failed" in str(o) for o in outcomes)
    assert _keys(db) == set() and _payments(db) == set()  # the database unchanged
    # the store goes on: the next calls commit
    assert asyncio.run(_gated(astore, [lambda: astore.begin_operation(_op("c"))]))[0].key == "c"
    assert _keys(db) == {"c"}


def test_a_cancelled_call_does_not_break_its_batch(db: str, store: SQLiteStore) -> None:
    astore = AsyncStore(store)
    started, go_on = threading.Event(), threading.Event()

    def decide(current: PaymentRecord | None) -> None:
        started.set()  # the call runs: its task is cancelled now
        assert go_on.wait(10)
        return None  # nothing to apply: the store falls back, writing nothing

    async def main() -> list[Any]:
        gate = threading.Event()
        executor = astore._executor
        assert isinstance(executor, BatchExecutor)
        held = executor.submit(gate.wait)
        before_run = asyncio.ensure_future(astore.begin_operation(_op("never")))
        t1 = asyncio.ensure_future(astore.begin_operation(_op("a")))
        running = asyncio.ensure_future(
            astore.ingest_event(
                "fake",
                "evt_1",
                event_type="payment.created",
                provider_type="x",
                payment_id="pay_1",
                payload={},
                occurred_at=None,
                now=1.0,
                lease_seconds=60.0,
                decide=decide,
            )
        )
        t2 = asyncio.ensure_future(astore.begin_operation(_op("b")))
        await asyncio.sleep(0)
        before_run.cancel()  # still queued: never runs
        await asyncio.wait([before_run])  # the cancel has reached the thread's future
        gate.set()
        await asyncio.wrap_future(held)
        assert await asyncio.to_thread(started.wait, 10)
        running.cancel()  # already running: it completes, its result is dropped
        await asyncio.sleep(0)
        go_on.set()
        return list(await asyncio.gather(before_run, t1, running, t2, return_exceptions=True))

    outcomes = asyncio.run(main())
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert outcomes[1].key == "a" and outcomes[3].key == "b"
    assert _keys(db) == {"a", "b"}


def test_close_and_unknown_callables_run_alone(store: SQLiteStore, trace: _Trace) -> None:
    """Only the audited store methods share a transaction."""
    astore = AsyncStore(store)
    seen: list[bool] = []

    def outside() -> None:  # any other callable: never inside a batch's transaction
        seen.append(store._open_batch() is None)

    async def main() -> None:
        executor = astore._executor
        assert isinstance(executor, BatchExecutor)
        gate = threading.Event()
        held = executor.submit(gate.wait)
        a = asyncio.ensure_future(astore.begin_operation(_op("a")))
        await asyncio.sleep(0)  # a is queued
        other = asyncio.wrap_future(executor.submit(outside))
        b = asyncio.ensure_future(astore.begin_operation(_op("b")))
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(asyncio.wrap_future(held), a, other, b)
        await astore.aclose()

    asyncio.run(main())
    assert seen == [True]
    assert trace.commits() == 2  # a and b each alone: the other callable split them


def test_an_in_memory_store_batches_on_its_shared_connection(trace: _Trace) -> None:
    store = SQLiteStore(":memory:")
    try:
        astore = AsyncStore(store)
        outcomes = asyncio.run(
            _gated(astore, [lambda k=k: astore.begin_operation(_op(k)) for k in "abc"])  # type: ignore[misc]
        )
        assert [o.key for o in outcomes] == ["a", "b", "c"]
        assert trace.statements.count("COMMIT") == 1 + 1  # the schema's, then the batch's
        assert {o.key for o in store.list_operations("")} == {"a", "b", "c"}
    finally:
        store.close()


def test_each_caller_gets_its_own_copy_of_a_commit_failure() -> None:
    from paygate.stores import StoreTimeout
    from paygate.stores._sqlite_batch import _fresh

    original = StoreTimeout("no lock", what="lock", seconds=3.0)
    copy = _fresh(original)
    assert copy is not original and isinstance(copy, StoreTimeout)
    assert (copy.args, copy.what, copy.seconds) == (original.args, "lock", 3.0)
    assert copy.__cause__ is original


# -- the sync store under many threads (opt-in group_commit) -------------------------------


def test_group_commit_is_a_url_option(db: str) -> None:
    from paygate.errors import ConfigurationError
    from paygate.stores import open_store

    on = open_store(f"sqlite:///{db}?group_commit=on")
    off = open_store(f"sqlite:///{db}")
    try:
        assert isinstance(on, SQLiteStore) and on.group_commit
        assert isinstance(off, SQLiteStore) and not off.group_commit
    finally:
        on.close()
        off.close()
    with pytest.raises(ConfigurationError, match="group_commit must be on or off"):
        open_store(f"sqlite:///{db}?group_commit=maybe")


def _threads_queued_behind(store: SQLiteStore, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads while another thread holds the shared writer (a write
    that waits, writing nothing), so all of them queue for it; their outcomes, and the
    holder's (``None``: its write returned)."""
    group = store._group
    assert group is not None
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._write():
            holding.set()
            assert release.wait(10)

    outcomes: list[Any] = [None] * (len(calls) + 1)

    def run(i: int, call: Callable[[], Any]) -> None:
        try:
            outcomes[i] = call()
        except Exception as exc:
            outcomes[i] = exc

    holder = threading.Thread(target=run, args=(len(calls), hold))
    holder.start()
    assert holding.wait(10)
    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for _ in range(1000):  # every thread waits for its turn
        if group._waiting == len(calls):
            break
        threading.Event().wait(0.01)
    assert group._waiting == len(calls)
    release.set()
    for t in [holder, *threads]:
        t.join(10)
    return outcomes


def test_sync_writes_queued_together_share_one_commit(db: str, trace: _Trace) -> None:
    store = SQLiteStore(db, group_commit=True)
    try:
        before = trace.commits()
        outcomes = _threads_queued_behind(
            store,
            [
                lambda: store.begin_operation(_op("a")),
                lambda: store.save_payment(record("pay_1"), expected_version=None),
                lambda: store.begin_operation(_op("b")),
            ],
        )
        assert outcomes[-1] is None  # the holder's write returned
        assert [type(o).__name__ for o in outcomes[:3]] == [
            "OperationRecord", "NoneType", "OperationRecord",
        ]  # fmt: skip
        assert trace.commits() - before == 1
        assert _keys(db) == {"a", "b"} and _payments(db) == {"pay_1"}
        # alone, a write commits at once (nobody to wait for)
        store.begin_operation(_op("c"))
        assert trace.commits() - before == 2 and "c" in _keys(db)
    finally:
        store.close()


def test_sync_a_raising_write_is_undone_alone(db: str) -> None:
    store = SQLiteStore(db, group_commit=True)
    bad_claim = EventClaim("fake", "evt_none", ClaimStatus.CLAIMED, "token")
    try:
        outcomes = _threads_queued_behind(
            store,
            [
                lambda: store.begin_operation(_op("a")),
                lambda: store.save_payment(
                    record("pay_half"), expected_version=None, claim=bad_claim
                ),
                lambda: store.begin_operation(_op("b")),
            ],
        )
        assert isinstance(outcomes[1], ClaimLost)
        assert _keys(db) == {"a", "b"} and _payments(db) == set()
    finally:
        store.close()


def test_sync_a_failed_group_commit_fails_every_write_of_it(db: str) -> None:
    store = SQLiteStore(db, group_commit=True)
    _poison(db)
    try:
        outcomes = _threads_queued_behind(
            store,
            [
                lambda: store.begin_operation(_op("a")),
                lambda: store.save_payment(record("pay_x"), expected_version=None),
                lambda: store.begin_operation(_op("poison")),
            ],
        )
        assert all(isinstance(o, StoreError) for o in outcomes), outcomes  # the holder's too
        assert len({id(o) for o in outcomes}) == 4
        assert _keys(db) == set() and _payments(db) == set()
        assert store.begin_operation(_op("c")).key == "c"  # the store goes on
        assert _keys(db) == {"c"}
    finally:
        store.close()


def test_sync_gateway_threads_share_durable_commits(db: str, trace: _Trace) -> None:
    from concurrent.futures import ThreadPoolExecutor

    calls = 60
    provider = FakeProvider(seed=7)
    with paygate.connect(provider, SQLiteStore(db, group_commit=True)) as gw:
        gw.create_payment(order_id="warm", amount=Money(100, "EUR"), payment_method="tok_visa")
        before = trace.commits()
        with ThreadPoolExecutor(max_workers=20) as pool:
            payments = list(pool.map(
                lambda i: gw.create_payment(order_id=f"o{i}", amount=Money(100 + i, "EUR"),
                                            payment_method="tok_visa"),
                range(calls),
            ))  # fmt: skip
        commits = trace.commits() - before
    assert len({p.id for p in payments}) == calls
    assert len(_payments(db)) == calls + 1
    assert commits < 3 * calls, commits  # one by one: 3 per call


def test_sync_group_commit_loses_no_compare_and_set_under_threads(db: str) -> None:
    """8 threads moving one payment by compare-and-set, each on its own reads: every
    successful write is one version, none lost, none doubled."""
    from paygate.stores import StoreConflict

    store = SQLiteStore(db, group_commit=True)
    store.save_payment(record("pay_cas", version=1), expected_version=None)
    done = [0] * 8

    def bump(worker: int) -> None:
        while done[worker] < 25:
            current = store.get_payment("pay_cas")
            assert current is not None
            try:
                store.save_payment(record("pay_cas", version=current.version + 1),
                                   expected_version=current.version)  # fmt: skip
            except StoreConflict:
                continue
            done[worker] += 1

    try:
        threads = [threading.Thread(target=bump, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        final = store.get_payment("pay_cas")
        assert final is not None and final.version == 1 + 8 * 25
    finally:
        store.close()
