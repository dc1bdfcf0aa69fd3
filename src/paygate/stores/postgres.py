"""``PostgresStore``: the store for several app servers sharing one PostgreSQL database.

Needs ``pip install 'paygate[postgres]'`` (psycopg 3 and psycopg-pool). Open it with
``open_store("postgresql://user@host:5432/dbname")``; paygate's own options travel in the
query string next to libpq's:

* ``schema=NAME``: keep paygate's tables in this PostgreSQL schema (created by the
  upgrade), e.g. one per environment or per test run in a shared database;
* ``pool_min=N`` / ``pool_max=N``: connections kept open / at most (default 1 / 8);
* ``timeout=SECONDS``: how long a call waits for a free pool connection (default 30).

The schema and every statement are :mod:`paygate.stores._sql`'s, shared with SQLite; the
PostgreSQL differences are the :data:`POSTGRES` dialect below and ``CREATE SCHEMA``.

Concurrency (READ COMMITTED, PostgreSQL's default): every write is one transaction. A
payment update is ``UPDATE ... WHERE id = ? AND version = ?``: a second writer of the same
row waits for the first to commit, re-evaluates ``version`` against the committed row and
updates nothing, so the Gateway re-reads and applies on top -- the same compare-and-set as
on SQLite, with PostgreSQL's row lock doing the queueing (no ``SELECT ... FOR UPDATE``
round trip needed). Event claims are conditional ``UPDATE``s on the event row, and the
transition log's ``UNIQUE (provider, event_id)`` is the last line of defence.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from paygate.errors import ConfigurationError
from paygate.stores import _redact
from paygate.stores._records import StoreError
from paygate.stores._sql import Cursor, Dialect, SQLStore

try:
    import psycopg
    import psycopg.conninfo
    import psycopg.errors
    from psycopg import sql as pgsql
    from psycopg_pool import ConnectionPool, PoolTimeout
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "the PostgreSQL store needs psycopg 3 and psycopg-pool: pip install 'paygate[postgres]'",
        name=exc.name,
    ) from None

__all__ = ["POSTGRES", "PostgresStore"]

#: any constant: the key of the advisory lock that queues concurrent ``db upgrade``s
_MIGRATION_LOCK_KEY = 0x70617967  # "payg"

POSTGRES = Dialect(
    name="postgresql",
    paramstyle="format",
    bigint="BIGINT",
    double="DOUBLE PRECISION",
    serial_primary_key="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    # current_schema(): the first schema of search_path (the ``schema=`` option)
    table_exists=(
        "SELECT 1 FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name = ?"
    ),
    integrity_errors=(psycopg.errors.UniqueViolation,),
    # CREATE TABLE IF NOT EXISTS is not safe against a concurrent identical CREATE:
    # upgraders take turns on a transaction-scoped advisory lock
    migration_lock=f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})",
)

#: paygate's own options in the URL's query string (the rest go to libpq)
_OPTIONS = ("schema", "pool_min", "pool_max", "timeout")


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without paygate's options (and ``+psycopg``), and those options."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"not a PostgreSQL URL: {_redact(url)!r}")
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTIONS:
            ours[key] = value
        else:
            theirs.append((key, value))
    conninfo = urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(theirs, quote_via=quote), "")
    )
    return conninfo, ours


def _int_option(options: dict[str, str], name: str, default: int) -> int:
    try:
        value = int(options.get(name, default))
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {options[name]!r}") from None
    if value < 0:
        raise ConfigurationError(f"{name} must be >= 0, got {value}")
    return value


class PostgresStore(SQLStore):
    """The Store protocol on a PostgreSQL database, through a psycopg connection pool.

    ``conninfo``: a libpq URL or key/value string (a password in it never appears in a
    repr, log line or error message). ``migrate=False`` refuses to create or migrate the
    schema (run ``paygate db upgrade``) instead of doing it on open.
    """

    dialect = POSTGRES

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str | None = None,
        pool_min: int = 1,
        pool_max: int = 8,
        timeout: float = 30.0,
        migrate: bool = True,
        display: str | None = None,
    ) -> None:
        if pool_max < 1 or pool_min > pool_max:
            raise ConfigurationError(
                f"need 1 <= pool_max and pool_min <= pool_max, got {pool_min}/{pool_max}"
            )
        if schema is not None and not schema.strip():
            raise ConfigurationError("schema must not be empty")
        self.schema = schema
        self.timeout = float(timeout)
        self._display = display or _redact(conninfo)
        kwargs: dict[str, Any] = {"autocommit": True}
        if schema is not None:
            # quoted as an identifier; a schema that does not exist yet is skipped by
            # PostgreSQL, and the upgrade creates it
            ident = '"' + schema.replace('"', '""') + '"'
            search_path = "-c search_path=" + ident.replace("\\", "\\\\").replace(" ", "\\ ")
            # keep libpq ``options`` given in the URL (-c synchronous_commit=off, ...)
            given = psycopg.conninfo.conninfo_to_dict(conninfo).get("options")
            kwargs["options"] = f"{given} {search_path}" if given else search_path
        self._pool = ConnectionPool(
            conninfo,
            min_size=pool_min,
            max_size=pool_max,
            kwargs=kwargs,
            timeout=self.timeout,
            open=False,
            name="paygate",
        )
        self._closed = False
        self._close_lock = threading.Lock()
        try:
            self._pool.open(wait=True, timeout=self.timeout)
        except (PoolTimeout, psycopg.Error) as exc:
            self._pool.close()
            raise StoreError(
                f"cannot connect to PostgreSQL store {self._display}: {type(exc).__name__}"
            ) from None
        try:
            self.ensure_schema(migrate=migrate)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True) -> PostgresStore:
        """``postgresql://user:password@host:5432/db?schema=paygate&pool_max=16``."""
        conninfo, options = _split_url(url)
        try:
            timeout = float(options.get("timeout", 30.0))
        except ValueError:
            raise ConfigurationError(
                f"timeout must be seconds, got {options['timeout']!r}"
            ) from None
        return cls(
            conninfo,
            schema=options.get("schema") or None,
            pool_min=_int_option(options, "pool_min", 1),
            pool_max=_int_option(options, "pool_max", 8),
            timeout=timeout,
            migrate=migrate,
            display=_redact(url),
        )

    def __repr__(self) -> str:
        return f"PostgresStore({self._display!r})"

    # -- connections ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise ConfigurationError("this PostgresStore is closed")
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout:
            raise StoreError(
                f"PostgreSQL store {self._display}: no free connection within {self.timeout}s"
            ) from None
        except psycopg.OperationalError as exc:
            # a dropped connection, a server shutting down: the pool replaces the
            # connection; the transaction was rolled back by the server
            raise StoreError(
                f"PostgreSQL store {self._display}: {type(exc).__name__}: {exc}"
            ) from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    @contextlib.contextmanager
    def _write_one(self) -> Iterator[Cursor]:
        # one statement on an autocommit connection is its own transaction: no BEGIN and
        # COMMIT round trips (a redelivery's claim; the finish after an event's handlers)
        with self._connection() as conn, conn.cursor() as cur:
            yield cur

    @contextlib.contextmanager
    def _read(self) -> Iterator[Cursor]:
        # autocommit: a single SELECT needs no BEGIN/COMMIT round trips
        with self._connection() as conn, conn.cursor() as cur:
            yield cur

    # -- schema -----------------------------------------------------------------------------

    def upgrade(self) -> int:
        if self.schema is not None:
            # under the migration lock too: concurrent CREATE SCHEMA IF NOT EXISTS race
            with self._connection() as conn, conn.transaction():
                conn.execute(str(self.dialect.migration_lock))
                conn.execute(
                    pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        pgsql.Identifier(self.schema)
                    )
                )
        return super().upgrade()

    def close(self) -> None:
        """Close the pool's connections."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._pool.close()
