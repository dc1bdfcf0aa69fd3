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
  (group commit, `paygate.stores._sqlite_batch`).
* ``PostgresStore``: on two threads, each on psycopg's proven sync path (its watchdog,
  timeouts and error mapping included), statements in flight while the loop runs. Not
  more by default: a thread running psycopg's Python code holds the GIL for up to the
  switch interval (5 ms), and with many such threads busy the loop waits its turn behind
  all of them (measured: loop callbacks stretched past 20 ms with 8 threads, none with
  2, ``tests/test_async_loop_lag.py``). ``AsyncStore(store, threads=8)`` buys throughput
  (about 2x on ``bench/bench_async.py``) for those stalls. Not psycopg's
  ``AsyncConnectionPool``: that would mean a second, async copy of the ~1,100 lines of
  ``PostgresStore``, the two-copies problem the Gateway's sans-I/O core exists to avoid.
* any other store: one dedicated thread (safe whatever its thread-safety).

A cancelled call (the awaiting task cancelled) cannot stop a statement already running
in its thread: it completes or fails there, on its own, and its result is dropped. The
Gateway's flows are written so that either outcome is safe (an idempotency record is
written before the provider is called, and a retry sends the same key).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from paygate.stores import Store
from paygate.stores._sqlite_batch import batch_executor

__all__ = ["AsyncStore", "threads_for"]


def threads_for(store: Store) -> int:
    """How many threads run ``store``'s calls (0: on the event loop)."""
    kind = type(store).__name__
    if kind == "MemoryStore":
        return 0
    if kind == "PostgresStore":
        # two (see the module), fewer when the pool has one connection (pool_max=1)
        return max(1, min(2, int(getattr(getattr(store, "_pool", None), "max_size", 2))))
    return 1


class AsyncStore:
    """A [`Store`][paygate.stores.Store] whose methods are coroutines (see the module).

    Every method of the wrapped store, including ones this class does not know of (a
    plugin store's, or added later), is available as ``await astore.method(...)``.

    Args:
        store: the synchronous store; closed by
            [`aclose`][paygate.stores.aio.AsyncStore.aclose].
        threads: how many threads run its calls; default:
            ``threads_for(store)``. ``0`` runs them on the loop.
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

    def __repr__(self) -> str:
        return f"AsyncStore({self.store!r}, threads={self.threads})"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self.store, name)
        if not callable(method):
            raise AttributeError(f"{type(self.store).__name__}.{name} is not a method")
        wrapped = self._wrap(method)
        self._methods[name] = wrapped
        self.__dict__[name] = wrapped  # found without __getattr__ next time
        return wrapped

    def _wrap(self, method: Callable[..., Any]) -> Callable[..., Any]:
        executor = self._executor
        if executor is None:

            async def inline(*args: Any, **kwargs: Any) -> Any:
                return method(*args, **kwargs)

            return inline

        async def threaded(*args: Any, **kwargs: Any) -> Any:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(executor, functools.partial(method, *args, **kwargs))

        return threaded

    async def aclose(self) -> None:
        """Close the store (in its thread) and stop the threads."""
        try:
            if self._executor is None:
                self.store.close()
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._executor, self.store.close)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
