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
from paygate.stores._sql import Cursor, Dialect, SQLStore

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


class SQLiteStore(SQLStore):
    """The Store protocol on one SQLite database file.

    ``synchronous``: SQLite's durability setting. ``FULL`` (the default) syncs the WAL on
    every commit; ``NORMAL`` is faster and can lose the last transactions on power loss
    (never corrupts). ``timeout``: seconds a writer waits for the lock.
    """

    dialect = SQLITE

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = _DEFAULT_TIMEOUT,
        synchronous: str = "FULL",
        migrate: bool = True,
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
        unknown = set(options) - {"synchronous", "timeout"}
        if unknown:
            raise ConfigurationError(f"unknown SQLite store options: {', '.join(sorted(unknown))}")
        try:
            timeout = float(options.get("timeout", _DEFAULT_TIMEOUT))
        except ValueError:
            raise ConfigurationError(
                f"timeout must be seconds, got {options['timeout']!r}"
            ) from None
        return cls(path, timeout=timeout, synchronous=options.get("synchronous", "FULL"))

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

    @contextlib.contextmanager
    def _write(self) -> Iterator[Cursor]:
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

    @contextlib.contextmanager
    def _write_bookkeeping(self) -> Iterator[Cursor]:
        """A write transaction committed with ``synchronous=NORMAL`` (WAL: no fsync at
        this commit; a killed process still never loses it, only a power cut could),
        when the store runs ``FULL``; the setting is restored after the commit."""
        if self.synchronous != "FULL" or self._memory:
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
