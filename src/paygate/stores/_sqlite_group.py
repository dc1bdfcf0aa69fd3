"""Group commit for the sync ``SQLiteStore`` under many threads (opt-in: the URL's
``group_commit=on``, the constructor's ``group_commit=True``).

Without it every thread writes on its own connection, and every write is a transaction
of its own: SQLite lets one writer in at a time, so N threads writing queue for the
write lock and pay one durable commit (one sync of the WAL) each, one after the other.
With it, the writes of all threads go through ONE writer connection, taken in turn:

* the first write opens a transaction (``BEGIN IMMEDIATE``); every write, that one
  included, is a ``SAVEPOINT`` released when its block ends and rolled back to when it
  raises (its writes undone, its exception raised; the transaction goes on);
* a writer that finishes while other threads wait for the connection leaves the
  transaction open for them; the writer that finishes with nobody waiting (or the
  ``LIMIT``-th write) commits it, for all;
* every write returns only once the commit of its transaction has returned (it waits
  for it), and raises when that commit failed -- so, as without group commit, no caller
  learns of a write before it is durable under the store's ``synchronous``, and a failed
  commit leaves none of that transaction's writes.

A write sees the writes made before it in the same transaction by other threads'
calls, not yet committed: exactly what it would have seen had they committed one by one
before it (nobody else writes in between: the transaction holds the write lock). Reads
keep to each thread's own connection and see committed data only. A method made of
several writes (``claim_event``) waits for each one's commit in turn, as before.
``_write_bookkeeping``'s writes (``relaxed``) open a transaction committed with
``synchronous=NORMAL`` when they find none open (set before its ``BEGIN``: the setting
cannot change inside a transaction), and join an open one whatever its setting (synced
with it: never less durable). A durable write that finds a relaxed transaction open
commits it first (without a sync) and opens its own: so a lone worker's handled marks
cost no sync with group commit either, and a durable write is never committed relaxed.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

#: ``SQLiteStore._translate``: a driver error as the store's error
Translate = Callable[[sqlite3.OperationalError, str], Exception]

__all__ = ["LIMIT", "WriteGroup"]

#: the most writes one transaction takes (how long the first waits for the last)
LIMIT = 64


class WriteGroup:
    """The shared writer connection of one ``SQLiteStore`` and its open transaction."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = None
        #: held by the thread writing on the connection
        self._turn = threading.Lock()
        #: guards the counters below; writers wait on it for their commit
        self._state = threading.Condition(threading.Lock())
        self._waiting = 0  # threads waiting for their turn
        self._open = False  # a transaction is open on the connection
        self._writes = 0  # turns taken in it
        self._generation = 0  # the open (or last) transaction's number
        self._committed = 0  # the last transaction whose commit returned (or failed)
        self._failures: dict[int, BaseException] = {}  # recent failed commits
        self._relaxed = False  # the open transaction commits with synchronous=NORMAL
        #: the store's ``synchronous`` to restore while the connection is left at NORMAL
        #: by a relaxed transaction (restored when a durable write opens the next one)
        self._restore: str | None = None

    @contextlib.contextmanager
    def write(self, translate: Translate, *, relaxed: str | None = None) -> Iterator[Any]:
        """One write of the shared transaction (see the module). ``relaxed``: bookkeeping,
        to commit without a sync when it opens the transaction -- the store's own
        ``synchronous`` setting, restored before a durable write opens one."""
        with self._state:
            self._waiting += 1
        try:
            self._turn.acquire()
        finally:  # taken, or interrupted (KeyboardInterrupt): no longer waiting either way
            with self._state:
                self._waiting -= 1
        mine: int | None = None
        failed = True
        try:
            conn = self._connection()
            cur = conn.cursor()
            try:
                if self._open and self._relaxed and relaxed is None:
                    self._commit(conn, translate)  # bookkeeping only: never this durable write
                if not self._open:
                    if relaxed is not None and self._restore is None:
                        cur.execute("PRAGMA synchronous=NORMAL")  # outside any transaction
                        self._restore = relaxed
                    elif relaxed is None and self._restore is not None:
                        cur.execute(f"PRAGMA synchronous={self._restore}")
                        self._restore = None
                    try:
                        cur.execute("BEGIN IMMEDIATE")
                    except sqlite3.OperationalError as exc:
                        raise translate(exc, "no write lock") from None
                    self._open = True
                    self._relaxed = relaxed is not None
                    self._writes = 0
                    with self._state:
                        self._generation += 1
                elif not conn.in_transaction:  # a statement error rolled it all back
                    raise translate(
                        sqlite3.OperationalError("the group commit's transaction was lost"),
                        "a write",
                    )
                mine = self._generation
                cur.execute("SAVEPOINT paygate_write")
                try:
                    yield cur
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        cur.execute("ROLLBACK TO paygate_write")
                        cur.execute("RELEASE paygate_write")
                    raise
                cur.execute("RELEASE paygate_write")
                failed = False
            finally:
                cur.close()
        finally:
            self._end_turn(translate, failed)
        self._wait_for(mine)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _end_turn(self, translate: Translate, failed: bool) -> None:
        """Commit the open transaction unless others wait to add to it, then give the
        turn. A write that raised commits it too: it may have failed on what the open
        transaction wrote (a compare-and-set on a version its caller read before that
        version was committed), and its caller's retry must read it committed -- else
        callers retrying on their own reads could keep the transaction open forever."""
        try:
            if not self._open:
                return
            self._writes += 1
            with self._state:
                keep_open = not failed and self._waiting > 0 and self._writes < LIMIT
            conn = self._connection()
            if keep_open and conn.in_transaction:
                return
            self._commit(conn, translate)
        finally:
            self._turn.release()

    def _commit(self, conn: sqlite3.Connection, translate: Translate) -> None:
        """Commit the open transaction (the turn held) and wake its writers."""
        failure: BaseException | None = None
        if not conn.in_transaction:
            failure = translate(
                sqlite3.OperationalError("SQLite rolled back the group's transaction"),
                "the group commit failed",
            )
        else:
            try:
                conn.commit()
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
                if not isinstance(exc, sqlite3.OperationalError):
                    exc = sqlite3.OperationalError(str(exc))  # a StoreError all the same
                failure = translate(exc, "the group commit failed")
        self._open = False
        with self._state:
            if failure is not None:
                self._failures[self._generation] = failure
                for old in [g for g in self._failures if g < self._generation - 1024]:
                    del self._failures[old]
            self._committed = self._generation
            self._state.notify_all()

    def _wait_for(self, generation: int | None) -> None:
        """Return once ``generation``'s commit has returned; raise if it failed."""
        if generation is None:
            return
        with self._state:
            while self._committed < generation:
                self._state.wait()
            failure = self._failures.get(generation)
        if failure is not None:
            twin = copy.copy(failure)
            raise twin from failure

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    @property
    def pid(self) -> int:
        return self._pid
