"""Group commit for [`AsyncStore`][paygate.stores.aio.AsyncStore] on a ``SQLiteStore``.

The store's calls run on one dedicated thread (see `paygate.stores.aio`). Under load many
of them are queued at once, and run one by one each write is a durable commit of its own:
an fsync each (``synchronous=FULL``), the one thread waiting on the disk for every one.
`BatchExecutor` is that thread: it takes the first queued call, and with it whatever
else is queued at that moment (up to ``limit``), runs them in queue order inside ONE
transaction (`SQLiteStore._batch`: each write a savepoint, so a call that raises has
its own writes undone and gets its exception, the others proceed), commits once, and
only then resolves the calls' futures. So:

* durability is unchanged: no caller learns a result -- of a write, or of a read that
  saw a write of the batch -- before the commit that makes it durable (under the
  store's ``synchronous``) has returned;
* a failed commit fails every call of the batch (none of its writes stands; a call that
  had raised keeps its own exception);
* a call cancelled while still queued never runs; one cancelled after the thread took
  it into a batch runs there, commits with the others, and its result is dropped (as
  with a thread pool, once a call is running).

Which calls share a transaction: the store's own methods in `BATCHED`, audited to be
correct there. Calls in a batch run serially on one connection, so each sees the writes
of the calls before it, uncommitted yet: exactly what it would have seen had they run
one by one and committed, since nobody else writes between them (the batch holds the
write lock from its first write to its commit). That covers the methods that read what
they check and then write (compare-and-set on a payment's ``version``,
``begin_operation``'s insert-or-read, ``replace_operation``'s compare on the attempt,
``claim_event``/``ingest_event``'s insert-or-redeliver, ``claim_facts``), and those made
of several transactions (``claim_event``: each becomes a savepoint, each still all or
nothing). Leases compare the caller's ``now``, not the clock of the commit. No method in
the list sleeps or waits on another call. ``_write_bookkeeping``'s relaxed commit does
not apply inside a batch (the setting cannot change within a transaction): those
writes are synced with the batch. Everything else runs alone, in its own transaction(s),
between batches: ``close``, migrations (``upgrade``, ``ensure_schema``: DDL and the
schema check want a transaction of their own), ``iter_payments`` (a generator: its reads
happen where it is iterated), a subclass's override of a listed method, and any other
callable.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from paygate.stores.sqlite import SQLiteStore

__all__ = ["BATCHED", "DEFAULT_LIMIT", "BatchExecutor", "batch_executor"]

#: the most calls one transaction takes: bounds how long the write lock is held and how
#: long the first call of a batch waits for the last
DEFAULT_LIMIT = 64

#: the store methods that may share a transaction (see the module)
BATCHED = frozenset(
    {
        "get_payment",
        "payments_for_order",
        "save_payment",
        "save_answer",  # one _write(): its compare-and-sets raise, undoing its savepoint
        "history",
        "claim_event",
        "ingest_event",
        "record_outcome",
        "finish_event",
        "release_event",
        "get_event",
        "list_events",
        "has_due_facts",
        "claim_facts",
        "finish_fact",
        "fail_fact",
        "list_facts",
        "get_operation",
        "begin_operation",
        "replace_operation",
        "finish_operation",
        "list_operations",
        "get_subscription",
        "list_subscriptions",
        "save_subscription",
        "subscription_history",
        "schema_version",
    }
)


def batch_executor(store: object, threads: int) -> BatchExecutor | None:
    """The group-commit executor for ``store``'s one thread; ``None`` when it does not
    apply (not a ``SQLiteStore``, or not one thread)."""
    if isinstance(store, SQLiteStore) and threads == 1:
        return BatchExecutor(store)
    return None


class _Call:
    __slots__ = ("batched", "fn", "future")

    def __init__(self, fn: Callable[[], Any], future: Future[Any], batched: bool) -> None:
        self.fn = fn
        self.future = future
        self.batched = batched


def _batchable(store: SQLiteStore, fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` is one of ``store``'s own methods listed in `BATCHED`, as the
    store classes define it (not a subclass's override)."""
    target = fn.func if isinstance(fn, functools.partial) else fn
    name = getattr(target, "__name__", "")
    if getattr(target, "__self__", None) is not store or name not in BATCHED:
        return False
    return getattr(type(store), name, None) is getattr(SQLiteStore, name, None)


class BatchExecutor(Executor):
    """One thread running a ``SQLiteStore``'s calls, queued ones together (see the
    module). An [`Executor`][concurrent.futures.Executor], for ``loop.run_in_executor``.

    Args:
        store: the store whose methods are submitted.
        limit: the most calls in one transaction.
    """

    def __init__(self, store: SQLiteStore, *, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.store = store
        self.limit = limit
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._shutdown = False
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        call = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            if self._thread is None:
                # the thread holds no reference to this executor: dropped unclosed, it
                # wakes the thread to end it
                weakref.finalize(self, self._queue.put, None)
                self._thread = threading.Thread(
                    target=_work,
                    args=(self._queue, self.store, self.limit),
                    name="paygate-store-batch",
                    daemon=True,
                )
                self._thread.start()
            self._queue.put(_Call(call, future, _batchable(self.store, fn)))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        queued = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if queued is not None:
                        queued.future.cancel()
            self._queue.put(None)
            thread = self._thread
        if wait and thread is not None:
            thread.join()


def _work(calls: queue.SimpleQueue[_Call | None], store: SQLiteStore, limit: int) -> None:
    """The thread: take a call and whatever else is queued, run them, repeat."""
    held: list[_Call | None] = []  # taken from the queue, not batchable with the last batch
    while True:
        first = held.pop() if held else calls.get()
        if first is None:
            return
        if not first.batched:
            _run_alone(first)
            continue
        batch = [first]
        while len(batch) < limit:
            try:
                more = calls.get_nowait()
            except queue.Empty:
                break
            if more is None or not more.batched:
                held.append(more)
                break
            batch.append(more)
        if len(batch) == 1:
            _run_alone(first)  # its own transaction(s), as without batching
        else:
            _run_batch(store, batch)


def _run_alone(call: _Call) -> None:
    if not call.future.set_running_or_notify_cancel():
        return
    try:
        result = call.fn()
    except BaseException as exc:  # delivered to the caller, as a thread pool does
        call.future.set_exception(exc)
    else:
        call.future.set_result(result)


def _run_batch(store: SQLiteStore, batch: list[_Call]) -> None:
    """Run the calls in one transaction; resolve their futures after its commit."""
    running = [call for call in batch if call.future.set_running_or_notify_cancel()]
    outcomes: list[tuple[_Call, bool, Any]] = []
    try:
        with store._batch():
            for call in running:
                try:
                    outcomes.append((call, True, call.fn()))
                except BaseException as exc:  # its writes were undone (savepoints)
                    outcomes.append((call, False, exc))
    except BaseException as failed:  # the commit failed: nothing of the batch stands
        for call, ok, value in outcomes:
            if ok:
                call.future.set_exception(_fresh(failed))
            else:
                call.future.set_exception(value)
        for call in running[len(outcomes) :]:
            call.future.set_exception(_fresh(failed))  # pragma: no cover - never ran
        return
    for call, ok, value in outcomes:
        if ok:
            call.future.set_result(value)
        else:
            call.future.set_exception(value)


def _fresh(exc: BaseException) -> BaseException:
    """A copy of ``exc`` for one caller (one instance raised by several tasks would
    collect all their tracebacks), caused by the original."""
    with contextlib.suppress(Exception):
        twin = copy.copy(exc)
        if type(twin) is type(exc):
            twin.__cause__ = exc.__cause__ or exc
            return twin
    return exc  # pragma: no cover - an exception that cannot be copied
