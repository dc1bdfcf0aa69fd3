"""``paygate db``: a store's schema.

``paygate db upgrade --store URL`` creates the tables of an empty database or migrates an
older schema to this paygate's version, in one transaction, and says which it did
("created at version Y", "upgraded from version X to Y", "already at version Y"); a
database written by a newer paygate is refused with nothing changed. ``paygate db version
--store URL`` only reports.
The URL may also come from ``PAYGATE_STORE_URL``. A PostgreSQL store that cannot be
reached fails at once with one line naming the host, the database and the server's reason
(exit code 2).
"""

from __future__ import annotations

import argparse
import os
import sys

from paygate.errors import PaygateError
from paygate.stores import Store, StoreError, _redact, open_store
from paygate.stores._sql import SCHEMA_VERSION, SchemaVersionError

__all__ = ["add_arguments", "check_connect", "run"]

# a command line waits this long for a server, not the pool's retry-for-a-while timeout
_CLI_CONNECT_TIMEOUT = "5"


def check_connect(url: str) -> None:
    """Raise [`StoreUnavailable`][paygate.stores.StoreUnavailable] with one line (host, database,
    the server's reason; never the password) when ``url`` is a PostgreSQL store that cannot be
    connected to.

    The store's pool retries a failed connection until its timeout, logging each attempt,
    and ends in a bare ``PoolTimeout``: right for a server that restarts under a running
    app, not for a person at a prompt who mistyped a database name. So the command line
    tries one direct connection first. Other stores are left to
    [`open_store`][paygate.stores.open_store].
    """
    scheme = url.partition("://")[0].lower().split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        return
    import psycopg
    import psycopg.conninfo

    from paygate.stores.postgres import _split_url, connect_failure

    conninfo, _ = _split_url(url)
    try:
        given = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error:
        return  # malformed: the store's own parser explains it without quoting a secret
    secrets = [str(given[k]) for k in ("password", "sslpassword") if given.get(k)]
    try:
        if "connect_timeout" not in given:
            conninfo = psycopg.conninfo.make_conninfo(
                conninfo, connect_timeout=_CLI_CONNECT_TIMEOUT
            )
        psycopg.connect(conninfo, autocommit=True).close()
    except psycopg.Error as exc:
        raise connect_failure(given, exc, tuple(secrets)) from None


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=os.environ.get("PAYGATE_STORE_URL"),
        help="store URL: sqlite:///paygate.db, postgresql://user@host/db "
        "(default: $PAYGATE_STORE_URL)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    upgrade = sub.add_parser("upgrade", help="create or migrate the store's tables")
    add_store_argument(upgrade)
    version = sub.add_parser("version", help="print the store's schema version")
    add_store_argument(version)


def _open_unmigrated(url: str) -> Store:
    """The store at ``url``, its schema left as it is (a SQL store whose schema is older
    than this paygate's raises [`SchemaVersionError`][paygate.stores._sql.SchemaVersionError] saying
    so)."""
    scheme = url.partition("://")[0].lower().split("+", 1)[0]
    if scheme in ("postgresql", "postgres"):
        from paygate.stores.postgres import PostgresStore

        return PostgresStore.from_url(url, migrate=False)
    if scheme == "sqlite":
        from paygate.stores.sqlite import SQLiteStore

        # SQLiteStore.from_url migrates on open; its path rule: sqlite:///<path>
        rest = url.split("://", 1)[1].partition("?")[0]
        if not rest.startswith("/") or rest in ("/:memory:",):
            return open_store(url)  # let from_url explain a bad URL; :memory: is empty
        if not os.path.exists(rest[1:]):  # sqlite3 would create an empty file
            raise StoreError(f"no SQLite database at {rest[1:]!r}")
        store: Store = SQLiteStore(rest[1:], migrate=False)
        return store
    return open_store(url)


def _schema_version(store: Store) -> int | None:
    version = getattr(store, "schema_version", None)
    return int(version()) if callable(version) else None


def run(args: argparse.Namespace) -> int:
    url: str | None = args.store
    if not url:
        print("paygate db: give --store URL or set PAYGATE_STORE_URL", file=sys.stderr)
        return 2
    shown = _redact(url)
    try:
        check_connect(url)
        if args.db_command == "version":
            store = _open_unmigrated(url)
            found = _schema_version(store)
            store.close()
            if found is None:
                print(f"{shown}: no schema (an in-memory store)")
            else:
                print(f"{shown}: schema version {found} (this paygate: {SCHEMA_VERSION})")
            return 0
        # opening a SQL store creates or migrates its schema, under the store's own lock,
        # and says what it found there
        store = open_store(url)
        found = _schema_version(store)
        upgraded_from: int | None = getattr(store, "upgraded_from", None)
        store.close()
    except SchemaVersionError as exc:
        print(f"paygate db {args.db_command}: {shown}: {exc}", file=sys.stderr)
        return 1
    except PaygateError as exc:
        print(f"paygate db {args.db_command}: {exc}", file=sys.stderr)
        return 2
    if found is None:
        print(f"{shown}: an in-memory store has no schema to upgrade")
    elif upgraded_from is None:
        print(f"{shown}: schema already at version {found}")
    elif upgraded_from == 0:
        print(f"{shown}: schema created at version {found}")
    else:
        print(f"{shown}: schema upgraded from version {upgraded_from} to {found}")
    return 0
