"""A PostgreSQL store URL that cannot work fails at once, in one typed line.

A wrong database name or a closed port is the server's (or the kernel's) immediate answer:
``PostgresStore.from_url``, ``open_store``, ``paygate.connect`` and ``Gateway`` raise
``StoreUnavailable`` naming the host, the database and the reason within 5 s, instead of
the pool retrying until its timeout and ending in a bare ``PoolTimeout``; the password
never appears.
"""

from __future__ import annotations

import logging
import socket
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

pytest.importorskip("psycopg")
pytest.importorskip("psycopg_pool")

import paygate
from paygate.stores import StoreTimeout, StoreUnavailable, open_store
from paygate.stores.postgres import PostgresStore
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401 (fixtures)

PASSWORD = "s3cret-Pw-9f2c"


def _with(url: str, *, port: int | None = None, database: str | None = None) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = f"{parts.hostname}:{port or parts.port or 5432}"
    path = f"/{database}" if database else parts.path
    return urlunsplit((parts.scheme, f"{user}:{PASSWORD}@{host}", path, parts.query, ""))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there now


def _assert_one_clear_line(error: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    text = str(error)
    assert "\n" not in text
    for shown in (text, repr(error), caplog.text):
        assert PASSWORD not in shown
    assert "PoolTimeout" not in text
    # the pool's retry log lines ("error connecting in 'pool-1'...") never started
    assert "error connecting" not in caplog.text
    return text


def test_a_wrong_database_name_fails_at_once(
    pg_database: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = _with(pg_database, database="paygate_no_such_db")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        PostgresStore.from_url(url)
    assert time.monotonic() - started <= 5.0
    assert not isinstance(info.value, StoreTimeout)
    text = _assert_one_clear_line(info.value, caplog)
    host = urlsplit(pg_database).hostname
    assert f"cannot connect to PostgreSQL at {host}:" in text
    assert "database 'paygate_no_such_db'" in text
    assert 'database "paygate_no_such_db" does not exist' in text  # the server's reason


def test_a_closed_port_fails_at_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    port = _closed_port()
    url = f"postgresql://shop:{PASSWORD}@127.0.0.1:{port}/shopdb"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as info:
        open_store(url)
    assert time.monotonic() - started <= 5.0
    text = _assert_one_clear_line(info.value, caplog)
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}, database 'shopdb'" in text
    assert "Connection refused" in text


def test_connect_and_gateway_fail_the_same_way(
    pg_database: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = _with(pg_database, database="paygate_no_such_db")
    for open_gateway in (
        lambda: paygate.connect("fake", store=url),
        lambda: paygate.Gateway.from_config({"provider": "fake", "store": url}),
    ):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as info:
            open_gateway()
        assert time.monotonic() - started <= 5.0
        assert "does not exist" in _assert_one_clear_line(info.value, caplog)


def test_a_good_url_still_opens(pg_url: str) -> None:  # noqa: F811
    store = PostgresStore.from_url(pg_url)
    try:
        assert store.get_payment("pay_nothing") is None
    finally:
        store.close()
