"""The native async PostgreSQL store: ``AsyncStore(PostgresStore(...), threads=0)`` runs the store's
own methods on the event loop, in a greenlet, each round trip an ``await`` on psycopg's
``AsyncConnectionPool`` (``paygate.stores._postgres_async``).

The store contract (``tests/test_store.py``) runs on that path through a blocking facade;
then what only the async path has: no thread runs a call, a task cancelled in the middle
of a transaction rolls it back and returns its connection clean, the error mapping and
bounds are the sync store's, and without ``threads=0`` the thread path runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest

from paygate import PaymentStatus
from paygate.state import PaymentState
from paygate.stores import StoreTimeout, StoreUnavailable, open_store
from paygate.stores._greenlet import await_only, greenlet_spawn, in_greenlet
from paygate.stores.aio import AsyncStore
from paygate.stores.postgres import PostgresStore
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401
from tests.test_store import (  # noqa: F401
    claim,
    record,
    test_claim_lifecycle,
    test_expired_lease_is_taken_over_and_the_old_owner_cannot_write,
    test_finish_in_the_same_transaction,
    test_history_keeps_order_and_fields,
    test_insert_twice_conflicts,
    test_iter_payments_lists_every_payment_once_in_id_order,
    test_list_events_filters,
    test_list_operations_by_key_prefix_oldest_first,
    test_operations_insert_once_then_compare_and_set,
    test_payment_round_trip_never_keeps_raw_or_client_secret,
    test_payments_for_order_oldest_first,
    test_released_event_is_reclaimed_with_its_applied_flag,
    test_update_is_compare_and_set_and_a_lost_race_writes_nothing,
    transition,
)

S = PaymentStatus


class BlockingStore:
    """A sync Store face over an ``AsyncStore``: each call a coroutine run to completion
    on the facade's own loop (the one the native pool is opened on)."""

    def __init__(self, astore: AsyncStore) -> None:
        self.astore = astore
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.astore, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.run(method(*args, **kwargs))

        return call

    def close(self) -> None:
        try:
            self.run(self.astore.aclose())
        finally:
            self.loop.close()


@pytest.fixture
def store(pg_url: str) -> Iterator[BlockingStore]:  # noqa: F811
    astore = AsyncStore(open_store(pg_url), threads=0)
    assert astore.threads == 0 and astore._native is not None  # the native path
    facade = BlockingStore(astore)
    yield facade
    facade.close()


def test_without_greenlet_a_postgres_store_runs_on_two_threads(
    pg_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from paygate.stores import aio

    monkeypatch.setattr(aio, "_native_postgres", lambda: None)
    astore = AsyncStore(open_store(pg_url))
    try:
        # never 0: with no native twin, a call "on the loop" would block it
        assert astore.threads == 2 and astore._native is None
    finally:
        asyncio.run(astore.aclose())


def test_a_postgres_store_runs_natively_by_default_and_on_threads_when_asked(
    pg_url: str,  # noqa: F811
) -> None:
    native = AsyncStore(open_store(pg_url))
    threaded = AsyncStore(open_store(pg_url), threads=2)
    assert native.threads == 0 and native._native is not None
    assert threaded.threads == 2 and threaded._native is None
    assert "threads=2" in repr(threaded) and "threads=0" in repr(native)

    async def both() -> None:
        await native.save_payment(record("pay_n"), expected_version=None)
        got = await threaded.get_payment("pay_n")  # the same database, either path
        assert got is not None and got.version == 1
        await native.aclose()
        await threaded.aclose()

    asyncio.run(both())


def test_no_thread_runs_a_store_call(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Every connection the store borrows is borrowed on the loop's thread, in a greenlet,
    and 50 concurrent calls start no thread."""
    seen: list[tuple[int, bool]] = []
    borrow = PostgresStore._connection

    def recording(self: PostgresStore, *, cursor: bool = False) -> Any:
        seen.append((threading.get_ident(), in_greenlet()))
        return borrow(self, cursor=cursor)

    monkeypatch.setattr(PostgresStore, "_connection", recording)
    astore = AsyncStore(open_store(pg_url + "&pool_max=4"), threads=0)

    async def main() -> tuple[int, int]:
        await astore.get_payment("pay_0")  # opens the pool: its connections are made now
        await asyncio.sleep(0.1)
        before = threading.active_count()
        await asyncio.gather(
            *(astore.save_payment(record(f"pay_{i}"), expected_version=None) for i in range(25)),
            *(astore.get_payment(f"pay_{i}") for i in range(25)),
        )
        during = threading.active_count()
        await astore.aclose()
        return before, during

    loop_thread = threading.get_ident()
    seen.clear()
    before, during = asyncio.run(main())
    assert during == before
    assert len(seen) >= 51
    assert set(seen) == {(loop_thread, True)}


def test_a_task_cancelled_inside_a_transaction_rolls_it_back_and_frees_its_connection(
    pg_url: str,  # noqa: F811
    pg_database: str,  # noqa: F811
    pg_schema: str,  # noqa: F811
) -> None:
    """A save blocked on a row lock (so cancelled while its transaction is open, between
    BEGIN and COMMIT): the task ends cancelled, nothing of it is written, and the pool's
    only connection comes back idle -- the next calls run on it."""
    import psycopg

    astore = AsyncStore(open_store(pg_url + "&pool_min=1&pool_max=1"), threads=0)
    moved = record(version=2, state=PaymentState(S.PROCESSING, 1999), now=101.0)

    async def main() -> None:
        await astore.save_payment(record(), expected_version=None, transition=transition())
        locker = await psycopg.AsyncConnection.connect(pg_database)
        try:
            await locker.execute(f'SET search_path = "{pg_schema}"')
            async with locker.transaction():
                await locker.execute("SELECT 1 FROM paygate_payments WHERE id = 'pay_1' FOR UPDATE")
                task = asyncio.create_task(
                    astore.save_payment(moved, expected_version=1, transition=transition())
                )
                await asyncio.sleep(0.3)  # inside its transaction, waiting for the lock
                assert not task.done()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            # the lock is released: a save that had gone on would commit now
            await asyncio.sleep(0.2)
        finally:
            await locker.close()
        pool = astore._native._pool._pool
        conn = await asyncio.wait_for(pool.getconn(), 2)  # the one connection, returned
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        await pool.putconn(conn)
        got = await astore.get_payment("pay_1")
        assert got is not None and got.version == 1 and got.status is S.PENDING
        assert [t.new_status for t in await astore.history("pay_1")] == [S.PENDING]
        await astore.save_payment(moved, expected_version=1, transition=transition())
        got = await astore.get_payment("pay_1")
        assert got is not None and got.version == 2
        await astore.aclose()

    asyncio.run(main())


def test_a_task_cancelled_waiting_for_a_connection_takes_none(pg_url: str) -> None:  # noqa: F811
    astore = AsyncStore(open_store(pg_url + "&pool_min=1&pool_max=1"), threads=0)

    async def main() -> None:
        await astore.get_payment("pay_1")
        native = astore._native
        holding, release = asyncio.Event(), asyncio.Event()

        def hold() -> None:
            with native._read() as cur:  # the pool's one connection
                cur.execute("SELECT 1")
                holding.set()
                await_only(release.wait())

        held = asyncio.create_task(greenlet_spawn(hold))
        await holding.wait()
        waiting = asyncio.create_task(astore.get_payment("pay_1"))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # in the pool's queue
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        await held
        assert await astore.get_payment("pay_1") is None  # the one connection is free
        await astore.aclose()

    asyncio.run(main())


def test_checkouts_beyond_the_pools_size_wait_at_the_gate_not_in_its_queue(
    pg_url: str,  # noqa: F811
) -> None:
    """The pool's own queue costs each waiter a Condition, a task and a timer, and three
    turns of the loop per hand-off; the gate in front of it lets in only as many
    checkouts as the pool has connections, so none of them queues there."""
    astore = AsyncStore(open_store(pg_url + "&pool_min=2&pool_max=2"), threads=0)

    async def main() -> dict[str, int]:
        await astore.get_payment("pay_1")
        pool = astore._native._pool._pool
        pool.pop_stats()
        found = await asyncio.gather(*(astore.get_payment(f"pay_{i}") for i in range(50)))
        assert found == [None] * 50
        stats: dict[str, int] = pool.pop_stats()
        await astore.aclose()
        return stats

    stats = asyncio.run(main())
    assert stats["requests_num"] == 50
    assert stats.get("requests_queued", 0) == 0


def test_a_gate_slot_handed_to_a_cancelled_waiter_goes_to_the_next() -> None:
    from paygate.stores._postgres_async import _Gate

    async def main() -> None:
        gate = _Gate(1)
        assert gate.enter_now()
        first = asyncio.create_task(gate.enter(10))
        second = asyncio.create_task(gate.enter(10))
        await asyncio.sleep(0)  # both wait
        assert not gate.enter_now()
        gate.leave()  # the slot goes to ``first`` ...
        first.cancel()  # ... cancelled before it could run: it passes the slot on
        with pytest.raises(asyncio.CancelledError):
            await first
        await asyncio.wait_for(second, 1)
        gate.leave()
        assert gate.enter_now()  # one slot, not two, nor none
        assert not gate.enter_now()

    asyncio.run(main())


def test_a_gate_waiter_cancelled_before_its_turn_takes_no_slot() -> None:
    from psycopg_pool import PoolTimeout

    from paygate.stores._postgres_async import _Gate

    async def main() -> None:
        gate = _Gate(1)
        assert gate.enter_now()
        gone = asyncio.create_task(gate.enter(10))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        with pytest.raises(PoolTimeout):  # nobody gave the slot back
            await gate.enter(0.01)
        gate.leave()
        assert gate.enter_now()

    asyncio.run(main())


def test_a_dropped_connection_is_a_store_error_and_the_pool_replaces_it(
    pg_url: str,  # noqa: F811
) -> None:
    astore = AsyncStore(open_store(pg_url + "&pool_min=1&pool_max=1"), threads=0)

    def kill() -> None:
        with astore._native._read() as cur:
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    async def main() -> None:
        await astore.get_payment("pay_1")  # open
        with pytest.raises(StoreUnavailable, match="AdminShutdown"):
            await greenlet_spawn(kill)
        assert await astore.get_payment("pay_1") is None  # a fresh connection
        await astore.aclose()

    asyncio.run(main())


def test_a_statement_past_statement_timeout_is_a_store_timeout(pg_url: str) -> None:  # noqa: F811
    astore = AsyncStore(open_store(pg_url + "&statement_timeout=0.2"), threads=0)

    def slow() -> None:
        with astore._native._read() as cur:
            cur.execute("SELECT pg_sleep(2)")

    async def main() -> None:
        await astore.get_payment("pay_1")
        with pytest.raises(StoreTimeout, match="canceled by the server"):
            await greenlet_spawn(slow)
        assert await astore.get_payment("pay_1") is None
        await astore.aclose()

    asyncio.run(main())


def test_no_free_connection_within_the_timeout_is_a_store_timeout(pg_url: str) -> None:  # noqa: F811
    astore = AsyncStore(open_store(pg_url + "&pool_min=1&pool_max=1&timeout=0.2"), threads=0)

    def hold_and_call() -> None:
        with astore._native._read():
            astore._native.get_payment("pay_1")

    async def main() -> None:
        await astore.get_payment("pay_1")
        with pytest.raises(StoreTimeout, match=r"no free connection within 0\.2s"):
            await greenlet_spawn(hold_and_call)
        assert await astore.get_payment("pay_1") is None
        await astore.aclose()

    asyncio.run(main())


# -- the bridge --------------------------------------------------------------------------


def test_await_only_outside_greenlet_spawn_is_refused() -> None:
    async def answer() -> int:
        return 42

    with pytest.raises(RuntimeError, match="outside greenlet_spawn"):
        await_only(answer())


def test_greenlet_spawn_passes_results_and_exceptions_both_ways() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("inner")

    def sync_code(x: int) -> tuple[int, str]:
        doubled = await_only(asyncio.sleep(0, x * 2))
        try:
            await_only(fails())
        except KeyError as exc:
            return doubled, str(exc)
        raise AssertionError("not raised")

    async def main() -> tuple[int, str]:
        return await greenlet_spawn(sync_code, 21)

    assert asyncio.run(main()) == (42, "'inner'")

    def raises() -> None:
        raise ValueError("out")

    async def outer() -> None:
        await greenlet_spawn(raises)

    with pytest.raises(ValueError, match="out"):
        asyncio.run(outer())


def test_an_upgrade_unbounds_its_own_statements_only(pg_url: str) -> None:  # noqa: F811
    """The upgrade's "no statement bound" flag is per greenlet on the async path (every
    call runs on the loop's one thread): a call running beside it keeps its bound."""
    astore = AsyncStore(open_store(pg_url), threads=0)
    native = astore._native
    seen: dict[str, bool] = {}

    def upgrading(started: asyncio.Event) -> None:
        native._unbounded.active = True
        try:
            seen["upgrade"] = native._connection()._bound is None
            await_only(started.wait())
        finally:
            native._unbounded.active = False

    def beside() -> None:
        seen["beside"] = native._connection()._bound is None

    async def main() -> None:
        started = asyncio.Event()
        upgrade = asyncio.create_task(greenlet_spawn(upgrading, started))
        await asyncio.sleep(0.01)
        await greenlet_spawn(beside)
        started.set()
        await upgrade
        assert await astore.upgrade() >= 1  # and the real one runs on the async path
        await astore.aclose()

    asyncio.run(main())
    assert seen == {"upgrade": True, "beside": False}


def test_sync_code_in_greenlet_spawn_sees_the_tasks_context_variables() -> None:
    """As in the task itself: a log field or a trace span set by the caller reaches the
    store's code (a fresh greenlet would start from an empty context)."""
    import contextvars

    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    def read() -> str:
        await_only(asyncio.sleep(0))
        return var.get()

    async def main() -> str:
        var.set("from the task")
        return await greenlet_spawn(read)

    assert asyncio.run(main()) == "from the task"
