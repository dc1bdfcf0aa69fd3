"""``SQLiteStore``: the embedded default store (stdlib `sqlite3`).

Safe for several threads and several processes on one database file:

* WAL journal, so readers never block the writer and the writer never blocks readers;
* every write is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front,
  so two writers queue (``busy_timeout``) instead of deadlocking on a lock upgrade;
* one connection per thread (and per process: a forked child opens its own).

``sqlite://:memory:`` gives a private in-memory database; there one connection is shared
by all threads under a lock, since each connection to ``:memory:`` is its own database.

The schema and statements are `paygate.stores._sql`'s, shared with PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

from paygate._redact import redact_dsn
from paygate.errors import ConfigurationError
from paygate.stores._records import EventClaim, StoreError, StoreTimeout
from paygate.stores._sql import Cursor, Dialect, RecentPayments, SQLStore
from paygate.stores._sqlite_group import WriteGroup

__all__ = ["SQLITE", "SQLiteStore"]

SQLITE = Dialect(
    name="sqlite",
    paramstyle="qmark",
    bigint="INTEGER",
    double="REAL",
    serial_primary_key="INTEGER PRIMARY KEY AUTOINCREMENT",
    table_exists="SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
    integrity_errors=(sqlite3.IntegrityError,),
)

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
#: the busy timeout unless the URL's ``timeout=`` says otherwise: how long a writer waits
#: for another's write lock (SQLite's writers take turns)
_DEFAULT_TIMEOUT = 30.0


def _busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: the busy timeout ran out."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED (named in 3.11+)
    return "locked" in str(exc)  # pragma: no cover - Python 3.10


class _Batch:
    """A group commit open on one thread (`SQLiteStore._batch`)."""

    __slots__ = ("began", "broken", "conn", "depth")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        #: its transaction began (at the first write)
        self.began = False
        #: SQLite rolled the transaction back under it: nothing of it may be committed
        self.broken = False
        #: savepoints open
        self.depth = 0

    def rollback(self) -> None:
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.rollback()


class SQLiteStore(SQLStore):
    """The Store protocol on one SQLite database file.

    ``synchronous``: SQLite's durability setting. ``FULL`` (the default) syncs the WAL on
    every commit; ``NORMAL`` is faster and can lose the last transactions on power loss
    (never corrupts). ``timeout``: seconds a writer waits for the lock.
    ``group_commit`` (opt-in; URL ``?group_commit=on``): the writes of all threads share
    transactions on one connection, one commit for the writes that queued together,
    each write returning once that commit has (`paygate.stores._sqlite_group`).
    """

    dialect = SQLITE

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = _DEFAULT_TIMEOUT,
        synchronous: str = "FULL",
        migrate: bool = True,
        group_commit: bool = False,
    ) -> None:
        self.path = str(path)
        self.timeout = float(timeout)
        if not 0 <= self.timeout < float("inf"):
            raise ConfigurationError(f"timeout must be seconds >= 0, got {timeout!r}")
        self.synchronous = synchronous.upper()
        if self.synchronous not in _SYNCHRONOUS:
            raise ConfigurationError(
                f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}"
            )
        self._memory = self.path == ":memory:"
        self._local = threading.local()
        self._shared: sqlite3.Connection | None = None
        # in-memory: one connection for everyone, so calls take turns on it
        self._lock: contextlib.AbstractContextManager[object] = (
            threading.RLock() if self._memory else contextlib.nullcontext()
        )
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        # opt-in: all threads' writes share transactions on one connection (see
        # paygate.stores._sqlite_group); an in-memory database has one connection anyway
        self.group_commit = bool(group_commit) and not self._memory
        self._group: WriteGroup | None = WriteGroup(self._open) if self.group_commit else None
        #: the payments last written or read by an event (`SQLStore._payment_in`)
        self._recent = RecentPayments()
        if not self._memory:
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise ConfigurationError(f"SQLite store directory {str(parent)!r} does not exist")
        self.ensure_schema(migrate=migrate)

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite://:memory:``;
        options as a query string: ``?synchronous=NORMAL&timeout=10``."""
        rest = url.split("://", 1)[1]
        rest, _, query = rest.partition("?")
        if rest in (":memory:", "/:memory:", ""):
            path = ":memory:"
        elif rest.startswith("/"):
            path = rest[1:]
        else:
            raise ConfigurationError(
                f"SQLite URL must be sqlite:///path.db (three slashes), got {redact_dsn(url)!r}"
            )
        options = {k: v[-1] for k, v in parse_qs(query).items()}
        unknown = set(options) - {"synchronous", "timeout", "group_commit"}
        if unknown:
            raise ConfigurationError(f"unknown SQLite store options: {', '.join(sorted(unknown))}")
        try:
            timeout = float(options.get("timeout", _DEFAULT_TIMEOUT))
        except ValueError:
            raise ConfigurationError(
                f"timeout must be seconds, got {options['timeout']!r}"
            ) from None
        group = options.get("group_commit", "off").lower()
        if group not in ("on", "off"):
            raise ConfigurationError(f"group_commit must be on or off, got {group!r}")
        return cls(
            path,
            timeout=timeout,
            synchronous=options.get("synchronous", "FULL"),
            group_commit=group == "on",
        )

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- connections ------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self._closed:
            raise ConfigurationError("this SQLiteStore is closed")
        # isolation_level=None: no implicit transactions; paygate issues BEGIN IMMEDIATE
        # and COMMIT itself so every write transaction is explicit
        conn = sqlite3.connect(
            self.path,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,  # connections are per thread by construction
        )
        if not self._memory:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._memory:
            if self._shared is None:
                self._shared = self._open()
            return self._shared
        pid = os.getpid()
        cached: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        if cached is None or cached[0] != pid:
            # a new thread, or a forked child: never share a connection across either
            cached = (pid, self._open())
            self._local.conn = cached
        return cached[1]

    def _recent_payments(self) -> RecentPayments | None:
        """Not inside a group commit's batch (`_batch`): a write there is not committed
        when its block ends, so what it wrote could still be undone."""
        return self._recent if self._open_batch() is None else None

    # -- group commit ---------------------------------------------------------------------

    def _open_batch(self) -> _Batch | None:
        """The batch open on this thread (see `_batch`), if any."""
        batch: _Batch | None = getattr(self._local, "batch", None)
        return batch

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        """Run the calls made on this thread inside the block as ONE transaction with one
        ``COMMIT`` (group commit; `paygate.stores._sqlite_batch` is its user).

        The transaction opens (``BEGIN IMMEDIATE``) at the block's first write; every
        ``_write()`` in the block is a ``SAVEPOINT`` released when its block ends and
        rolled back to when it raises, so each write is all or nothing as it is outside
        a batch, and a call's failure undoes only its own writes (a write of one
        statement, `_write_bookkeeping_one`, is all or nothing without one). Reads see the writes
        made before them in the block, as they would have once those committed. The
        block's exit commits: nothing written in it is durable, nor may anyone act on a
        result read in it, before that commit returns. When the commit fails (or a
        statement error made SQLite roll the transaction back), the exit raises and none
        of the block's writes stands. Re-entrant: an inner block joins the outer one.
        """
        if self._open_batch() is not None:
            yield
            return
        with self._lock:  # in-memory: nobody else on the shared connection till the commit
            batch = _Batch(self._connection())
            self._local.batch = batch
            try:
                yield
            except BaseException:
                batch.rollback()
                raise
            finally:
                self._local.batch = None
            self._end_batch(batch)

    def _end_batch(self, batch: _Batch) -> None:
        """Commit the batch's transaction, or say why none of it stands."""
        conn = batch.conn
        if batch.broken:
            batch.rollback()
            raise StoreError(
                f"SQLite store {self.path!r}: SQLite rolled back a group commit's "
                "transaction after a statement failed; nothing of it was committed"
            )
        if not batch.began:
            return
        if not conn.in_transaction:  # pragma: no cover - caught by _write_in_batch
            raise StoreError(f"SQLite store {self.path!r}: a group commit lost its transaction")
        try:
            conn.commit()
        except sqlite3.Error as exc:
            batch.rollback()
            if isinstance(exc, sqlite3.OperationalError):
                raise self._translate(exc, "the group commit failed") from exc
            raise StoreError(f"SQLite store {self.path!r}: the group commit failed: {exc}") from exc

    @contextlib.contextmanager
    def _write_in_batch(self, batch: _Batch, *, savepoint: bool = True) -> Iterator[Cursor]:
        """``_write()`` inside `_batch`: a savepoint of the batch's transaction.

        ``savepoint=False`` (`_write_bookkeeping_one`): a block that changes the database
        with one statement at most and raises only before it or from it. A statement
        that raises has changed nothing: SQLite undoes a failed statement's changes
        (triggers' included) and keeps the transaction -- or rolls the whole
        transaction back (a full disk, an I/O error), which breaks the batch, as a
        failed ``ROLLBACK TO`` does. So the block is all or nothing without the
        ``SAVEPOINT``/``RELEASE`` pair (two statements less per ``begin_operation``).
        """
        if batch.broken:
            raise StoreError(
                f"SQLite store {self.path!r}: an earlier write of this group commit lost "
                "its transaction; nothing of it will be committed"
            )
        conn = batch.conn
        cur = conn.cursor()
        try:
            if not batch.began:
                try:
                    cur.execute("BEGIN IMMEDIATE")  # waits up to `timeout` for the write lock
                except sqlite3.OperationalError as exc:
                    raise self._translate(exc, "no write lock") from None
                batch.began = True
            elif not conn.in_transaction:  # a statement error rolled all of it back
                batch.broken = True
                raise StoreError(
                    f"SQLite store {self.path!r}: SQLite rolled back a group commit's "
                    "transaction; nothing of it will be committed"
                )
            if not savepoint:
                try:
                    yield cur
                except BaseException:
                    if not conn.in_transaction:  # SQLite rolled the whole transaction back
                        batch.broken = True
                    raise
                return
            batch.depth += 1
            name = f"paygate_write_{batch.depth}"
            try:
                cur.execute(f"SAVEPOINT {name}")
                try:
                    yield cur
                except BaseException:
                    try:
                        cur.execute(f"ROLLBACK TO {name}")
                        cur.execute(f"RELEASE {name}")
                    except sqlite3.Error:
                        batch.broken = True  # SQLite rolled the whole transaction back
                    raise
                try:
                    cur.execute(f"RELEASE {name}")
                except sqlite3.Error as exc:
                    batch.broken = True
                    raise StoreError(f"SQLite store {self.path!r}: {exc}") from None
            finally:
                batch.depth -= 1
        finally:
            cur.close()

    # -- transactions -----------------------------------------------------------------------

    def _write_group(self) -> WriteGroup | None:
        """The shared writer of ``group_commit`` (a forked child starts its own)."""
        group = self._group
        if group is not None and group.pid != os.getpid():
            group = self._group = WriteGroup(self._open)
        return group

    @contextlib.contextmanager
    def _write(self) -> Iterator[Cursor]:
        batch = self._open_batch()
        if batch is not None:
            with self._write_in_batch(batch) as cur:
                yield cur
            return
        group = self._write_group()
        if group is not None:
            with group.write(self._translate) as cur:
                yield cur
            return
        with self._lock:
            conn = self._connection()
            cur = conn.cursor()
            try:
                try:
                    cur.execute("BEGIN IMMEDIATE")  # waits up to `timeout` for the write lock
                except sqlite3.OperationalError as exc:
                    raise self._translate(exc, "no write lock") from None
                try:
                    yield cur
                except BaseException:
                    conn.rollback()
                    raise
                try:
                    conn.commit()
                except sqlite3.OperationalError as exc:
                    conn.rollback()
                    raise self._translate(exc, "the commit could not take its lock") from None
            finally:
                cur.close()

    def _write_bookkeeping_one(self) -> contextlib.AbstractContextManager[Cursor]:
        """In a group commit's batch, the block's one statement without a savepoint
        (`_write_in_batch`); else `_write_bookkeeping`."""
        batch = self._open_batch()
        if batch is not None:
            return self._write_in_batch(batch, savepoint=False)
        return self._write_bookkeeping()

    @contextlib.contextmanager
    def _write_bookkeeping(self) -> Iterator[Cursor]:
        """A write transaction committed with ``synchronous=NORMAL`` (WAL: no fsync at
        this commit; a killed process still never loses it, only a power cut could),
        when the store runs ``FULL``; the setting is restored after the commit."""
        if self.synchronous == "FULL" and self._open_batch() is None:
            group = self._write_group()
            if group is not None:
                # group commit: a transaction of its own committed without a sync, or a
                # savepoint of the open one, synced with it (never less durable)
                with group.write(self._translate, relaxed=self.synchronous) as cur:
                    yield cur
                return
        if (
            self.synchronous != "FULL"
            or self._memory
            or self._open_batch() is not None
            or self._group is not None
        ):
            # in a batch: a savepoint committed with the batch (the setting cannot
            # change inside a transaction), so synced with it, never less durable
            with self._write() as cur:
                yield cur
            return
        with self._lock:
            conn = self._connection()
            conn.execute("PRAGMA synchronous=NORMAL")  # outside any transaction
            try:
                with self._write() as cur:
                    yield cur
            finally:
                conn.execute("PRAGMA synchronous=FULL")

    def finish_event(self, claim: EventClaim, *, now: float) -> bool:
        """The "handled" mark after an event's handlers, committed without a sync of its
        own (``_write_bookkeeping``): the event's transition, claim and facts were
        committed durably before the handlers ran, and this mark reaches the disk with
        the next durable commit (or checkpoint). A power cut before then loses only the
        mark: the event stays applied and leased, and after the lease a redelivery runs
        its handlers once more -- never its transition."""
        with self._write_bookkeeping() as cur:
            return self._finish(cur, claim, now)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Cursor]:
        with self._lock:
            cur = self._connection().cursor()
            try:
                yield cur
            except sqlite3.OperationalError as exc:
                if not _busy(exc):
                    raise
                raise self._translate(exc, "the database stayed locked") from None
            finally:
                cur.close()

    def _translate(self, exc: sqlite3.OperationalError, what: str) -> StoreError:
        """A lock wait that ran out (SQLITE_BUSY after ``timeout``) is a StoreTimeout."""
        if _busy(exc):
            return StoreTimeout(
                f"SQLite store {self.path!r}: {what} within {self.timeout:g}s "
                f"(the store URL's timeout=; {exc})",
                what="lock",
                seconds=self.timeout,
            )
        return StoreError(f"SQLite store {self.path!r}: {what}: {exc}")

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        self._closed = True
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._shared = None
        if self._group is not None:
            self._group = WriteGroup(self._open)  # its connection was closed above
