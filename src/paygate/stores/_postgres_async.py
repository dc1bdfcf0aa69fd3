"""`PostgresStore` on psycopg's ``AsyncConnectionPool``: the same store, run on the event loop.

[`AsyncStore`][paygate.stores.aio.AsyncStore] runs a `PostgresStore`'s methods here by
default. Nothing of the store's logic is copied: `AsyncPostgresStore` IS a
`PostgresStore` (its statements, single-statement ingest, ``SKIP LOCKED`` fact claims,
asynchronous finish, error mapping, statement bounds and watchdog), whose methods run in
a greenlet (`paygate.stores._greenlet`) and whose pool is psycopg's async one. What
differs is only where a connection comes from and how a transaction and a statement wait:
the three adapters below, each call of which is one ``await_only`` -- a real ``await`` on
psycopg's ``AsyncConnection`` by the task that called the store. No thread runs a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from time import monotonic
from typing import Any

import psycopg
from greenlet import getcurrent
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from paygate.errors import ConfigurationError
from paygate.stores._greenlet import await_only, greenlet_spawn
from paygate.stores.postgres import _OPEN, PostgresStore, _used_recently

__all__ = ["AsyncPostgresStore"]


class _GreenCursor:
    """An ``AsyncCursor`` that looks like a sync DB-API cursor to `SQLStore`: each call
    awaits the async one through `await_only`."""

    __slots__ = ("_cur",)

    def __init__(self, cur: psycopg.AsyncCursor[Any]) -> None:
        self._cur = cur

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    @property
    def closed(self) -> bool:
        return self._cur.closed

    def execute(
        self, query: Any, params: Any = None, /, *, prepare: bool | None = None
    ) -> _GreenCursor:
        await_only(self._cur.execute(query, params, prepare=prepare))
        return self

    def fetchone(self) -> Any:
        return await_only(self._cur.fetchone())

    def fetchall(self) -> Any:
        return await_only(self._cur.fetchall())


class _GreenTransaction:
    """``AsyncConnection.transaction()`` as a sync ``with`` block (BEGIN ... COMMIT, or
    ROLLBACK on any exception, a task's cancellation included)."""

    __slots__ = ("_tx",)

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._tx = conn.transaction()

    def __enter__(self) -> None:
        await_only(self._tx.__aenter__())

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        return bool(await_only(self._tx.__aexit__(exc_type, exc, tb)))


class _GreenPipeline:
    """``AsyncConnection.pipeline()`` as a sync ``with`` block with a ``sync()``."""

    __slots__ = ("_cm", "_pipeline")

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._cm = conn.pipeline()
        self._pipeline: Any = None

    def __enter__(self) -> _GreenPipeline:
        self._pipeline = await_only(self._cm.__aenter__())
        return self

    def sync(self) -> None:
        await_only(self._pipeline.sync())

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        return bool(await_only(self._cm.__aexit__(exc_type, exc, tb)))


class _AsyncConnection(psycopg.AsyncConnection[Any]):
    """The async pool's connection: `paygate.stores.postgres._Connection`'s attributes
    (one kept cursor, when last used, given up by the watchdog), sync-looking faces."""

    _paygate_cursor: _GreenCursor | None = None
    _paygate_used = 0.0
    _paygate_expired = False
    _paygate_poller: Any = None

    def paygate_cursor(self) -> _GreenCursor:
        cur = self._paygate_cursor
        if cur is None or cur.closed:
            cur = self._paygate_cursor = _GreenCursor(self.cursor())
        return cur

    def paygate_transaction(self) -> _GreenTransaction:
        return _GreenTransaction(self)

    def paygate_pipeline(self) -> _GreenPipeline:
        return _GreenPipeline(self)

    def paygate_new_cursor(self) -> _GreenCursor:
        return _GreenCursor(self.cursor())

    def paygate_abandon(self) -> None:
        if self.info.transaction_status in _OPEN:
            with contextlib.suppress(psycopg.Error):
                await_only(self.rollback())


class _PerGreenlet:
    """The ``active`` flag `PostgresStore` keeps in a ``threading.local`` while it upgrades
    the schema, kept per greenlet: every call of the twin runs on the loop's one thread,
    each in its own greenlet, and an upgrade must not unbound the others' statements."""

    __slots__ = ("_on",)

    def __init__(self) -> None:
        self._on: set[Any] = set()

    @property
    def active(self) -> bool:
        return getcurrent() in self._on

    @active.setter
    def active(self, value: bool) -> None:
        if value:
            self._on.add(getcurrent())
        else:
            self._on.discard(getcurrent())


def _expire(waiter: asyncio.Future[None], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(PoolTimeout(f"couldn't get a connection after {timeout:.2f} sec"))


class _Gate:
    """Lets at most the pool's ``max_size`` checkouts in at once, the others waiting their
    turn here, first come first served, each on a bare future (and a timer for the
    pool's ``timeout``).

    The pool's own queue costs a waiter far more: an ``asyncio.Condition``, a task and a
    timer for ``asyncio.wait_for``, and three turns of the loop to hand it a connection,
    every turn with the connection idle in its hands (issue 18: with 500 calls on 40
    connections, 96% of the checkouts queued, and the queue's hand-offs were a tenth of the
    client's CPU). Behind the gate a checkout finds a connection ready, except while the
    pool grows or replaces a broken connection (it then waits in the pool's queue as
    before). A slot is handed to the next waiter when a connection goes back to the pool,
    and passed on by a waiter cancelled or timed out after it was handed one.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    def enter_now(self) -> bool:
        """Take a slot if one is free and nobody waits for one (no ``await``)."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def enter(self, timeout: float) -> None:
        """Wait for a slot, at most ``timeout`` seconds (then `PoolTimeout`)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, _expire, waiter, timeout)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.leave()  # handed a slot, then cancelled before taking it: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise
        finally:
            timer.cancel()

    def leave(self) -> None:
        """Give a slot back: to the first waiter still waiting, else to the free ones."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class _GreenPool:
    """``AsyncConnectionPool`` with the sync pool's methods that `PostgresStore` calls,
    its checkouts admitted by a `_Gate`."""

    __slots__ = ("_gate", "_pool")

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._gate = _Gate(pool.max_size)

    @property
    def min_size(self) -> int:
        return self._pool.min_size

    @property
    def max_size(self) -> int:
        return self._pool.max_size

    def getconn(self) -> _AsyncConnection:
        gate = self._gate
        if gate.enter_now():
            try:
                conn: _AsyncConnection = await_only(self._pool.getconn())
            except BaseException:
                gate.leave()
                raise
            return conn
        return await_only(self._queued())

    async def _queued(self) -> _AsyncConnection:
        """A checkout that waits at the gate first (one ``await_only`` for both waits)."""
        started = monotonic()
        timeout = self._pool.timeout
        await self._gate.enter(timeout)
        try:
            conn: _AsyncConnection = await self._pool.getconn(
                max(0.0, timeout - (monotonic() - started))
            )
        except BaseException:
            self._gate.leave()
            raise
        return conn

    def putconn(self, conn: _AsyncConnection) -> None:
        try:
            await_only(self._pool.putconn(conn))
        finally:
            self._gate.leave()

    def check_connection(self, conn: _AsyncConnection) -> None:
        await_only(AsyncConnectionPool.check_connection(conn))

    def drain(self) -> None:
        await_only(self._pool.drain())

    def close(self) -> None:
        await_only(self._pool.close())


class AsyncPostgresStore(PostgresStore):
    """A `PostgresStore`'s twin on psycopg's ``AsyncConnectionPool`` (see the module).

    Made by `twin` from an open `PostgresStore`, whose settings, schema check, watchdog
    and cache of recent payment rows it shares; its own pool is opened by `open`, on the
    loop that will use it. Its methods must run under
    `paygate.stores._greenlet.greenlet_spawn`, as `AsyncStore` runs them.
    """

    _opened = False
    _opening: asyncio.Lock

    @classmethod
    def twin(cls, store: PostgresStore) -> AsyncPostgresStore:
        """The async twin of ``store`` (not yet open)."""
        new = cls.__new__(cls)
        new.__dict__.update(store.__dict__)
        new._pool = None
        new._closed = False
        new._close_lock = threading.Lock()
        new._unbounded = _PerGreenlet()
        new._opening = asyncio.Lock()
        return new

    def __repr__(self) -> str:
        return f"AsyncPostgresStore({self._display!r})"

    async def open(self) -> None:
        """Open the async pool (once; concurrent callers wait for the first)."""
        if self._opened:
            return
        async with self._opening:
            if self._opened:
                return
            if self._closed:
                raise ConfigurationError("this PostgresStore is closed")
            pool_min, pool_max = self._pool_sizes
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                self._conninfo,
                min_size=pool_min,
                max_size=pool_max,
                kwargs=self._connect_kwargs,
                connection_class=_AsyncConnection,
                timeout=self.timeout,
                check=self._check_async,
                open=False,
                name="paygate-async",
            )
            try:
                await pool.open(wait=True, timeout=self.timeout)
            except (PoolTimeout, psycopg.Error) as exc:
                await pool.close()
                raise self._pool_failed(exc) from None
            self._pool = _GreenPool(pool)
            self._opened = True

    async def _check_async(self, conn: _AsyncConnection) -> None:
        # the pool's check= is a coroutine function: the shared sync check, bridged; a
        # connection it takes as it is (used within the last second) needs no greenlet
        if not _used_recently(conn):
            await greenlet_spawn(self._check, conn)

    def close(self) -> None:
        """Close the async pool (the twin's store, the watchdog's owner, closes the rest).
        Runs under ``greenlet_spawn``."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._pool is not None:
            self._pool.close()
