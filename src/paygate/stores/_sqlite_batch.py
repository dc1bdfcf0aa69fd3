"""Group commit for [`AsyncStore`][paygate.stores.aio.AsyncStore] on a ``SQLiteStore``.

The store's calls run on one dedicated thread (see `paygate.stores.aio`). Under load many
of them are queued at once, and run one by one each write is a durable commit of its own:
an fsync each (``synchronous=FULL``), the one thread waiting on the disk for every one.
`BatchExecutor` is that thread: it takes the first queued call, and with it whatever
else is queued at that moment (up to ``limit``), runs them in queue order inside ONE
transaction (`SQLiteStore._batch`: each write a savepoint -- a write of one statement,
all or nothing by itself, needs none -- so a call that raises has
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

import asyncio
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
    """A queued call, answered through a thread-safe ``future`` (``submit``) or, for a
    coroutine awaiting on an event loop, through ``waiter``, that loop's future
    (``submit_async``: resolved on the loop, a batch's answers in one callback)."""

    __slots__ = ("batched", "fn", "future", "loop", "waiter")

    def __init__(
        self,
        fn: Callable[[], Any],
        future: Future[Any] | None,
        batched: bool,
        waiter: asyncio.Future[Any] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.fn = fn
        self.future = future
        self.batched = batched
        self.waiter = waiter
        self.loop = loop

    def start(self) -> bool:
        """Whether the call is to run: not cancelled while it was queued. A ``waiter``'s
        cancellation is set on its loop; read here it is either seen (the call never
        runs) or not yet (the call runs and its answer is dropped, as for a call
        cancelled once running)."""
        if self.future is not None:
            return self.future.set_running_or_notify_cancel()
        assert self.waiter is not None
        return not self.waiter.done()


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
                self._start()
            self._queue.put(_Call(call, future, _batchable(self.store, fn)))
        return future

    def batchable(self, fn: Callable[..., Any]) -> bool:
        """Whether ``fn`` may share a transaction (for ``submit_async``'s ``batched``)."""
        return _batchable(self.store, fn)

    def submit_async(
        self, fn: Callable[..., Any], batched: bool, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Future[Any]:
        """``fn(*args, **kwargs)`` queued as ``submit`` does, answered on the running
        loop: the returned future is resolved there after the call's commit.

        What ``loop.run_in_executor`` would do, without its two futures chained per
        call: a batch's answers reach the loop in ONE ``call_soon_threadsafe`` (one
        wake-up of the loop per batch, not one per call). ``batched`` is
        [`batchable`][paygate.stores._sqlite_batch.BatchExecutor.batchable]``(fn)``,
        computed once by the caller. Cancelling the future before the thread takes the
        call means it never runs; after, it runs and its answer is dropped.
        """
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        call = functools.partial(fn, *args, **kwargs) if args or kwargs else fn
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            if self._thread is None:
                self._start()
            self._queue.put(_Call(call, None, batched, waiter, loop))
        return waiter

    def _start(self) -> None:
        """Start the thread (under ``_lock``). It holds no reference to this executor:
        dropped unclosed, the executor wakes the thread to end it."""
        weakref.finalize(self, self._queue.put, None)
        self._thread = threading.Thread(
            target=_work,
            args=(self._queue, self.store, self.limit),
            name="paygate-store-batch",
            daemon=True,
        )
        self._thread.start()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        queued = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if queued is not None and queued.future is not None:
                        queued.future.cancel()
                    elif queued is not None:
                        assert queued.loop is not None and queued.waiter is not None
                        with contextlib.suppress(RuntimeError):  # its loop is closed
                            queued.loop.call_soon_threadsafe(queued.waiter.cancel)
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


#: an answer to a call: the call, whether it returned, its result or exception
Outcome = tuple[_Call, bool, Any]


def _run_alone(call: _Call) -> None:
    if not call.start():
        return
    try:
        result = call.fn()
    except BaseException as exc:  # delivered to the caller, as a thread pool does
        _answer([(call, False, exc)])
    else:
        _answer([(call, True, result)])


def _run_batch(store: SQLiteStore, batch: list[_Call]) -> None:
    """Run the calls in one transaction; resolve their futures after its commit."""
    running = [call for call in batch if call.start()]
    outcomes: list[Outcome] = []
    try:
        with store._batch():
            for call in running:
                try:
                    outcomes.append((call, True, call.fn()))
                except BaseException as exc:  # its writes were undone (savepoints)
                    outcomes.append((call, False, exc))
    except BaseException as failed:  # the commit failed: nothing of the batch stands
        failures = [(call, False, _fresh(failed) if ok else value) for call, ok, value in outcomes]
        never_ran = running[len(outcomes) :]  # empty: each call appended its outcome
        failures += [(call, False, _fresh(failed)) for call in never_ran]
        _answer(failures)
        return
    _answer(outcomes)


def _answer(outcomes: list[Outcome]) -> None:
    """Resolve the calls' futures: a ``submit``'s here, a ``submit_async``'s on their
    loop, all of a loop's in one callback (one wake-up)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        call, ok, value = outcome
        if call.future is not None:
            if ok:
                call.future.set_result(value)
            else:
                call.future.set_exception(value)
        else:
            assert call.loop is not None
            by_loop.setdefault(call.loop, []).append(outcome)
    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits
            loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[Outcome]) -> None:
    """On the loop: each waiter its answer (one cancelled meanwhile drops it)."""
    for call, ok, value in answers:
        waiter = call.waiter
        assert waiter is not None
        if waiter.done():
            continue
        if ok:
            waiter.set_result(value)
        else:
            waiter.set_exception(value)


def _fresh(exc: BaseException) -> BaseException:
    """A copy of ``exc`` for one caller (one instance raised by several tasks would
    collect all their tracebacks), caused by the original."""
    with contextlib.suppress(Exception):
        twin = copy.copy(exc)
        if type(twin) is type(exc):
            twin.__cause__ = exc.__cause__ or exc
            return twin
    return exc  # pragma: no cover - an exception that cannot be copied
