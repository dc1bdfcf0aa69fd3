"""PostgresStore under network and server faults (issue 15): every wait is bounded and
typed, a restarted database costs no failed call, and no password is ever shown.

A TCP proxy on 127.0.0.1 (tests/pg_proxy.py) stands between the store and PostgreSQL and
black-holes or cuts the traffic. Skips with the reason where no PostgreSQL server is
reachable (tests/postgres_support.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from paygate.errors import ConfigurationError
from paygate.stores import Store, StoreError, StoreTimeout, StoreUnavailable, open_store
from tests.pg_proxy import TcpProxy
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

pytest.importorskip("psycopg_pool", reason="the PostgreSQL store needs paygate[postgres]")

PASSWORD = "hunter2-never-shown"


@pytest.fixture
def proxy(pg_database: str) -> Iterator[TcpProxy]:  # noqa: F811
    parts = urlsplit(pg_database)
    if not parts.hostname or parts.hostname.startswith("/"):
        pytest.skip("the database URL names no TCP host to put a proxy in front of")
    p = TcpProxy(parts.hostname, parts.port or 5432)
    yield p
    p.close()


def _through(proxy: TcpProxy, url: str, options: str) -> str:
    """``url`` (a pg_url) through the proxy, with a password (trust auth ignores it)."""
    parts = urlsplit(url)
    user = parts.username or "postgres"
    netloc = f"{user}@127.0.0.1:{proxy.port}"
    query = f"{parts.query}&password={PASSWORD}&{options}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _app_name() -> str:
    return f"paygate_proxy_{uuid.uuid4().hex[:8]}"


def _backends(pg_database: str, app: str) -> int:  # noqa: F811
    import psycopg

    with psycopg.connect(pg_database, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text, text


# -- (a) a black-holed network: the call fails within its bound, typed ---------------------


def test_blackholed_database_fails_within_the_statement_bound(
    proxy: TcpProxy,
    pg_url: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = open_store(
        _through(proxy, pg_url, "statement_timeout=1&timeout=1&connect_timeout=2&pool_max=1")
    )
    try:
        assert store.get_payment("pay_1") is None  # works through the proxy
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(StoreTimeout) as info:
            store.get_payment("pay_1")
        elapsed = time.monotonic() - started
        # statement_timeout=1 plus the client's 1 s grace; the watchdog ticks every 0.2 s
        assert 1.5 <= elapsed < 3.5, elapsed
        assert info.value.retryable and isinstance(info.value, StoreUnavailable)
        assert info.value.what in ("statement", "pool")
        # while it stays black-holed, the next call waits for the pool at most timeout=1
        started = time.monotonic()
        with pytest.raises(StoreTimeout) as again:
            store.payments_for_order("ord_1")
        assert time.monotonic() - started < 3.5
        _no_secret(str(info.value), repr(info.value), str(again.value), caplog.text)
        proxy.restore()
        deadline = time.monotonic() + 15
        while True:  # the pool reconnects in the background
            try:
                assert store.get_payment("pay_1") is None
                break
            except StoreError:
                assert time.monotonic() < deadline, "the store never recovered"
                time.sleep(0.2)
    finally:
        proxy.restore()
        store.close()


def test_blackholed_query_on_a_just_used_connection_is_a_statement_timeout(
    proxy: TcpProxy,
    pg_url: str,  # noqa: F811
) -> None:
    """A connection used a moment ago goes out unchecked: the watchdog ends the call."""
    store = open_store(_through(proxy, pg_url, "statement_timeout=1&timeout=5&pool_max=1"))
    try:
        store.get_payment("pay_1")
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(StoreTimeout) as info:
            store.get_payment("pay_1")
        assert time.monotonic() - started < 3.5
        assert info.value.what == "statement" and info.value.seconds == 2.0
        assert "no answer within 2s" in str(info.value)
    finally:
        proxy.restore()
        store.close()


def test_blackholed_connect_fails_within_the_pool_timeout(
    proxy: TcpProxy,
    pg_url: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy.blackhole()
    started = time.monotonic()
    with pytest.raises(StoreTimeout) as info:
        open_store(_through(proxy, pg_url, "timeout=1&connect_timeout=2"))
    assert time.monotonic() - started < 3.5
    assert info.value.what == "connect"
    _no_secret(str(info.value), repr(info.value), caplog.text)
    # one line: where, which database, and that the server never answered
    assert "cannot connect to PostgreSQL at 127.0.0.1:" in str(info.value)
    assert "timeout expired" in str(info.value)


# -- (b) connections cut, then the database is back: no failed call ------------------------


def test_cut_connections_cost_no_failed_call(
    proxy: TcpProxy,
    pg_url: str,  # noqa: F811
) -> None:
    store = open_store(_through(proxy, pg_url, "pool_min=3&pool_max=3&statement_timeout=5"))
    try:
        for _ in range(3):
            store.get_payment("pay_1")
        proxy.cut()  # every pooled connection is dead now; new ones get through
        time.sleep(0.2)
        started = time.monotonic()
        for _ in range(10):
            assert store.get_payment("pay_1") is None  # none of them fails
        # the dead ones were replaced together, not one per call after a back-off
        assert time.monotonic() - started < 2.0
    finally:
        store.close()


def test_cut_connections_idle_for_a_while_cost_no_failed_call(
    proxy: TcpProxy,
    pg_url: str,  # noqa: F811
) -> None:
    store = open_store(_through(proxy, pg_url, "pool_min=2&pool_max=2"))
    try:
        store.get_payment("pay_1")
        time.sleep(1.2)  # past the window in which a returned connection goes unchecked
        proxy.cut()
        time.sleep(0.1)
        assert store.get_payment("pay_1") is None
        assert store.payments_for_order("ord_1") == []
    finally:
        store.close()


def test_a_restarted_server_costs_no_failed_call(
    pg_url: str,  # noqa: F811
    pg_database: str,  # noqa: F811
) -> None:
    """The server ends every connection of the store (what a restart does to them)."""
    import psycopg

    app = _app_name()
    store = open_store(f"{pg_url}&pool_min=3&pool_max=3&application_name={app}")
    try:
        store.get_payment("pay_1")
        assert _backends(pg_database, app) == 3
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (app,),
            )
        time.sleep(0.2)
        started = time.monotonic()
        for _ in range(5):
            assert store.get_payment("pay_1") is None
        assert time.monotonic() - started < 2.0
    finally:
        store.close()


# -- (c) a statement running past statement_timeout ----------------------------------------


def test_statement_past_statement_timeout_is_a_typed_timeout(pg_url: str) -> None:  # noqa: F811
    store = open_store(f"{pg_url}&statement_timeout=0.5&pool_max=1")
    try:
        started = time.monotonic()
        with pytest.raises(StoreTimeout) as info, store._read() as cur:  # type: ignore[attr-defined]
            cur.execute("SELECT pg_sleep(5)")
        assert time.monotonic() - started < 1.5  # the server canceled it at 0.5 s
        assert info.value.what == "statement" and info.value.seconds == 0.5
        assert "canceled by the server" in str(info.value)
        assert store.get_payment("pay_1") is None  # the connection is fine afterwards
    finally:
        store.close()


def test_statement_timeout_in_a_transaction_rolls_it_back(pg_url: str) -> None:  # noqa: F811
    store = open_store(f"{pg_url}&statement_timeout=0.5&pool_max=1")
    try:
        with pytest.raises(StoreTimeout), store._write() as cur:  # type: ignore[attr-defined]
            cur.execute("INSERT INTO paygate_meta (key, value) VALUES ('probe', 'x')")
            cur.execute("SELECT pg_sleep(5)")
        with store._read() as cur:  # type: ignore[attr-defined]
            cur.execute("SELECT count(*) FROM paygate_meta WHERE key = 'probe'")
            assert cur.fetchone()[0] == 0  # nothing half-written
    finally:
        store.close()


def test_the_timeouts_reach_the_server(pg_url: str) -> None:  # noqa: F811
    store = open_store(f"{pg_url}&statement_timeout=7&pool_max=1")
    try:
        with store._connection() as conn:  # type: ignore[attr-defined]
            statement = conn.execute("SELECT current_setting('statement_timeout')").fetchone()
            client = conn.info.get_parameters()  # libpq's settings of this connection
        assert statement == ("7s",)
        assert client["connect_timeout"] == "5"
        assert client["keepalives_idle"] == "30" and client["keepalives_count"] == "3"
        assert client["tcp_user_timeout"] == "8000"  # statement_timeout + 1 s
    finally:
        store.close()


def test_statement_timeout_zero_is_no_limit(pg_url: str) -> None:  # noqa: F811
    store = open_store(f"{pg_url}&statement_timeout=0&pool_max=1")
    try:
        with store._read() as cur:  # type: ignore[attr-defined]
            cur.execute("SELECT current_setting('statement_timeout'), pg_sleep(0.1)")
            assert cur.fetchone()[0] == "0"
        assert store._bound is None  # type: ignore[attr-defined]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("statement_timeout=soon", "statement_timeout must be seconds"),
        ("statement_timeout=-1", "statement_timeout must be seconds >= 0"),
        ("timeout=nan", "timeout must be seconds >= 0"),
        ("timeout=inf", "timeout must be seconds >= 0"),
    ],
)
def test_bad_timeout_options(option: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_store(f"postgresql://h/db?{option}")


# -- passwords: never in a repr, an error or a log line ------------------------------------


def test_repr_and_errors_never_show_a_query_password(
    pg_url: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    store = open_store(f"{pg_url}&password={PASSWORD}&statement_timeout=0.5&pool_max=1")
    try:
        assert "password=***" in repr(store)
        with pytest.raises(StoreTimeout) as info, store._read() as cur:  # type: ignore[attr-defined]
            cur.execute("SELECT pg_sleep(2)")
        _no_secret(repr(store), str(info.value), repr(info.value), caplog.text)
    finally:
        store.close()


@pytest.mark.parametrize(
    "target",
    [
        f"postgresql://shop:{PASSWORD}@127.0.0.1:1/db?timeout=1&connect_timeout=1",
        f"postgresql://127.0.0.1:1/db?password={PASSWORD}&timeout=1&connect_timeout=1",
        f"postgresql://shop@127.0.0.1:1/db?timeout=1&password={PASSWORD}&connect_timeout=1",
    ],
)
def test_unreachable_url_errors_never_show_the_password(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # nothing listens on port 1: refused at once, said in one line without the password
    with pytest.raises(StoreUnavailable) as info:
        open_store(target)
    assert "cannot connect to PostgreSQL at 127.0.0.1:1, database" in str(info.value)
    assert "Connection refused" in str(info.value)
    _no_secret(str(info.value), repr(info.value), caplog.text)


@pytest.mark.parametrize(
    "conninfo",
    [
        f"host=127.0.0.1 port=1 password={PASSWORD} connect_timeout=1",
        f"host=127.0.0.1 port=1 password='{PASSWORD} x' connect_timeout=1",
    ],
)
def test_key_value_conninfo_errors_never_show_the_password(
    conninfo: str, caplog: pytest.LogCaptureFixture
) -> None:
    from paygate.stores.postgres import PostgresStore

    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreUnavailable) as info:
        PostgresStore(conninfo, timeout=1)
    _no_secret(str(info.value), repr(info.value), caplog.text)


@pytest.mark.parametrize(
    "conninfo",
    [
        f"host=127.0.0.1 password {PASSWORD}",  # libpq quotes the bad part in its message
        f"postgresql://127.0.0.1/db?pasword={PASSWORD}",
    ],
)
def test_malformed_conninfo_is_a_configuration_error_without_the_password(
    conninfo: str,
) -> None:
    from paygate.stores.postgres import PostgresStore

    with pytest.raises(ConfigurationError, match="connection string is not valid") as info:
        PostgresStore(conninfo, timeout=1)
    _no_secret(str(info.value), repr(info.value))
    with pytest.raises(ConfigurationError, match="connection string is not valid") as info:
        open_store(f"postgresql://127.0.0.1/db?timeout=1&pasword={PASSWORD}")
    _no_secret(str(info.value), repr(info.value))


def test_store_errors_are_retryable_only_when_the_database_may_come_back() -> None:
    assert StoreTimeout("x", what="pool").retryable
    assert StoreUnavailable("x").retryable
    assert not StoreError("x").retryable


def test_sqlite_lock_wait_is_a_typed_timeout(tmp_path: object) -> None:
    import sqlite3
    from pathlib import Path

    path = Path(str(tmp_path)) / "p.db"
    open_store(f"sqlite:///{path}").close()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    store: Store = open_store(f"sqlite:///{path}?timeout=0.1")
    try:
        from tests.test_store import record

        started = time.monotonic()
        with pytest.raises(StoreTimeout) as info:
            store.save_payment(record(), expected_version=None)
        assert time.monotonic() - started < 2
        assert info.value.what == "lock" and info.value.seconds == 0.1
    finally:
        blocker.rollback()
        blocker.close()
        store.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///x.db?timeout=-1", "timeout must be seconds >= 0"),
        ("sqlite://x.db?password=hunter2", "three slashes"),
    ],
)
def test_bad_sqlite_urls_never_show_a_password(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        open_store(url)
    assert "hunter2" not in str(info.value)


def test_store_timeout_survives_pickling() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(StoreTimeout("no answer", what="pool", seconds=2.5)))
    assert (str(error), error.what, error.seconds) == ("no answer", "pool", 2.5)
