"""Stores for [`AsyncGateway`][paygate.gateway.AsyncGateway]: every store method as a
coroutine, without blocking the event loop.

[`AsyncStore`][paygate.stores.aio.AsyncStore] wraps any [`Store`][paygate.stores.Store]
and runs its calls where they cannot stall the loop:

* ``MemoryStore``: on the loop itself. A call is a dict lookup under a lock held for
  microseconds; a hop to a thread would cost more than the call.
* ``SQLiteStore``: on one dedicated thread per store. SQLite lets one writer in at a time
  anyway, so one thread loses no concurrency, and it never waits on SQLite's busy lock
  behind the gateway's own other calls. ``aiosqlite`` does the same (one thread per
  connection) but would need a second copy of the store's SQL transaction logic.
  Calls queued together run in one transaction with one commit, answered after it
  (group commit, `paygate.stores._sqlite_batch`), all of a batch's answers handed to
  the loop in one callback (one wake-up per batch, not one per call).
* ``PostgresStore``: natively on the loop. Its own methods (one copy of the store's
  logic) run in a greenlet, and each database round trip is a real ``await`` on
  psycopg's ``AsyncConnection`` from an ``AsyncConnectionPool`` opened on the loop at
  the first call (`paygate.stores._greenlet` bridges sync code to the awaiting task, as
  SQLAlchemy's asyncio extension does; `paygate.stores._postgres_async` is the store on
  the async pool). No thread runs a call, as many statements are in flight as the pool
  has connections, and a cancelled call has its statement cancelled at the server and
  its transaction rolled back before the ``CancelledError`` reaches the caller.
  ``AsyncStore(store, threads=N)`` runs it on ``N`` threads over psycopg's sync pool
  instead (the default before, and without ``greenlet``: two). Two threads hold two
  statements in flight: with the database 2.9 ms away they served 190 ``create_payment``
  a second where the native pool served 441 and the sync Gateway's 40 threads 410
  (docs/stores.md); on 127.0.0.1 the two paths are close. More threads cost the loop:
  a thread running psycopg's Python code holds the GIL for up to the switch interval
  (5 ms), and with eight such threads the loop's callbacks stretched past 20 ms.
* any other store: one dedicated thread (safe whatever its thread-safety).

A cancelled call on a thread (the awaiting task cancelled) cannot stop a statement
already running there: it completes or fails there, on its own, and its result is
dropped. The Gateway's flows are written so that either outcome is safe (an idempotency
record is written before the provider is called, and a retry sends the same key).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from types import GeneratorType
from typing import Any

from paygate.stores import Store
from paygate.stores._sqlite_batch import BatchExecutor, batch_executor

__all__ = ["AsyncStore", "threads_for"]


def threads_for(store: Store) -> int:
    """How many threads run ``store``'s calls (0: on the event loop)."""
    kind = type(store).__name__
    if kind == "MemoryStore":
        return 0
    if kind == "PostgresStore":
        if _native_postgres() is not None:
            return 0  # natively on the loop (see the module)
        # without greenlet: two threads, fewer when the pool has one connection
        return max(1, min(2, int(getattr(getattr(store, "_pool", None), "max_size", 2))))
    return 1


def _native_postgres() -> Any:
    """The native async PostgreSQL store's class, or ``None`` without ``greenlet``."""
    try:
        from paygate.stores._postgres_async import AsyncPostgresStore
    except ModuleNotFoundError:  # pragma: no cover - greenlet is in the postgres extra
        return None
    return AsyncPostgresStore


class AsyncStore:
    """A [`Store`][paygate.stores.Store] whose methods are coroutines (see the module).

    Every method of the wrapped store, including ones this class does not know of (a
    plugin store's, or added later), is available as ``await astore.method(...)``.

    Args:
        store: the synchronous store; closed by
            [`aclose`][paygate.stores.aio.AsyncStore.aclose].
        threads: how many threads run its calls; default:
            ``threads_for(store)``. ``0`` runs them on the loop (a ``PostgresStore``:
            natively, on psycopg's async pool).
    """

    def __init__(self, store: Store, *, threads: int | None = None) -> None:
        self.store = store
        count = threads_for(store) if threads is None else threads
        if count < 0:
            raise ValueError(f"threads must be >= 0, got {count}")
        self.threads = count
        # SQLite's one thread runs queued calls in one transaction (group commit)
        self._executor: Executor | None = (
            batch_executor(store, count)
            or ThreadPoolExecutor(max_workers=count, thread_name_prefix="paygate-store")
            if count
            else None
        )
        self._methods: dict[str, Callable[..., Any]] = {}
        #: per event loop, where the threads leave their answers (see `_Inbox`)
        self._inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox] = (
            weakref.WeakKeyDictionary()
        )
        #: PostgreSQL on the loop: the store's async twin, its calls run by greenlet_spawn
        self._native: Any = None
        if count == 0 and type(store).__name__ == "PostgresStore":
            native = _native_postgres()
            if native is not None:
                self._native = native.twin(store)

    def __repr__(self) -> str:
        return f"AsyncStore({self.store!r}, threads={self.threads})"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self.store if self._native is None else self._native, name)
        if not callable(method):
            raise AttributeError(f"{type(self.store).__name__}.{name} is not a method")
        wrapped = self._wrap(method)
        self._methods[name] = wrapped
        self.__dict__[name] = wrapped  # found without __getattr__ next time
        return wrapped

    def _wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        executor = self._executor
        if self._native is not None:
            return _bridged(self._native, method)
        if executor is None:

            async def inline(*args: Any, **kwargs: Any) -> Any:
                return method(*args, **kwargs)

            return inline
        if isinstance(executor, BatchExecutor):
            # answered on the loop a batch at a time (``submit_async``): no per-call
            # chaining of a thread's future to the loop's, one wake-up per batch
            batched = executor.batchable(method)

            async def grouped(*args: Any, **kwargs: Any) -> Any:
                return await executor.submit_async(method, batched, args, kwargs)

            return grouped

        inboxes = self._inboxes

        async def threaded(*args: Any, **kwargs: Any) -> Any:
            loop = asyncio.get_running_loop()
            inbox = inboxes.get(loop)
            if inbox is None:
                inbox = inboxes[loop] = _Inbox(loop)
            waiter = loop.create_future()
            executor.submit(_answered, inbox, waiter, method, args, kwargs)
            return await waiter

        return threaded

    async def aclose(self) -> None:
        """Close the store (in its thread) and stop the threads."""
        try:
            if self._native is not None:
                from paygate.stores._greenlet import greenlet_spawn

                try:
                    await greenlet_spawn(self._native.close)
                finally:
                    self.store.close()  # its sync pool (idle) and the watchdog
            elif self._executor is None:
                self.store.close()
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self.store.close)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=False)


class _Inbox:
    """Where the store's threads leave their answers for one event loop.

    ``loop.run_in_executor`` chains a thread's future to a loop future per call, and
    each answer wakes the loop on its own (``call_soon_threadsafe``: a write to its
    self-pipe, a turn of the loop). Here a thread appends its answer, and only the first
    answer since the loop last drained the inbox schedules a drain: the answers that
    arrive before the loop runs it share that one wake-up (issue 18: the hand-off cost
    more CPU than a PostgreSQL call's own Python).
    """

    __slots__ = ("answers", "lock", "loop", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.answers: list[tuple[asyncio.Future[Any], bool, Any]] = []
        self.scheduled = False

    def post(self, waiter: asyncio.Future[Any], ok: bool, value: Any) -> None:
        """From a thread: ``waiter``'s answer, delivered on the loop."""
        with self.lock:
            self.answers.append((waiter, ok, value))
            if self.scheduled:
                return  # the drain already scheduled takes it
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody awaits the answers
            with self.lock:
                self.answers.clear()
                self.scheduled = False

    def _drain(self) -> None:
        with self.lock:
            answers, self.answers = self.answers, []
            self.scheduled = False
        for waiter, ok, value in answers:
            if waiter.done():  # cancelled meanwhile: the answer is dropped
                continue
            if ok:
                waiter.set_result(value)
            else:
                waiter.set_exception(value)


def _answered(
    inbox: _Inbox,
    waiter: asyncio.Future[Any],
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """On a store thread: run the call unless its caller was cancelled while it was
    queued (then it never runs, as ``run_in_executor``'s), answer through ``inbox``."""
    if waiter.done():
        return
    try:
        result = method(*args, **kwargs)
    except BaseException as exc:  # delivered to the caller, as a thread pool does
        inbox.post(waiter, False, exc)
    else:
        inbox.post(waiter, True, result)


def _bridged(native: Any, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of a native async store as a coroutine: run under ``greenlet_spawn``
    on the loop, each round trip awaited (a generator's rows are read there too)."""
    from paygate.stores._greenlet import greenlet_spawn

    def whole(*args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        return list(result) if isinstance(result, GeneratorType) else result

    async def bridged(*args: Any, **kwargs: Any) -> Any:
        if not native._opened:  # the pool opens at the first call (no await after that)
            await native.open()
        return await greenlet_spawn(whole, *args, **kwargs)

    return bridged
