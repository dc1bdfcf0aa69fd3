"""Where the PostgreSQL tests find a server, and a private schema per test.

``PAYGATE_TEST_POSTGRES_URL`` (``.ci/run`` creates a throw-away database and exports it)
names the database. Without it, a throw-away database is created on 127.0.0.1:5432 if a
server answers there, and dropped at the end of the session. Where no server is reachable
the PostgreSQL tests skip with the reason. Each test gets its own PostgreSQL schema
(``?schema=paygate_t_<random>``), dropped afterwards, so parallel runs never collide.

Use ``from tests.postgres_support import pg_url`` and ask for the ``pg_url`` fixture.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

ENV = "PAYGATE_TEST_POSTGRES_URL"
FALLBACK_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _with_db(url: str, dbname: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, ""))


def _add_option(url: str, option: str) -> str:
    return url + ("&" if "?" in url else "?") + option


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A libpq URL of a database the tests may create schemas in, or a skip."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ModuleNotFoundError as exc:
        pytest.skip(f"PostgreSQL tests need paygate[postgres]: {exc.name} is not installed")
    configured = os.environ.get(ENV)
    if configured:
        try:
            psycopg.connect(configured, connect_timeout=5).close()
        except psycopg.Error as exc:
            pytest.skip(f"{ENV} is set but its server is not reachable: {type(exc).__name__}")
        yield configured
        return
    try:
        admin = psycopg.connect(FALLBACK_SERVER, connect_timeout=2, autocommit=True)
    except psycopg.Error:
        pytest.skip(f"no PostgreSQL server: {ENV} unset and none answers at 127.0.0.1:5432")
    dbname = f"paygate_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin:
        try:
            admin.execute(f'CREATE DATABASE "{dbname}"')
        except psycopg.Error as exc:
            pytest.skip(f"cannot create a throw-away database on 127.0.0.1:5432 ({exc}); "
                        f"set {ENV}")  # fmt: skip
    try:
        yield _with_db(FALLBACK_SERVER, dbname)
    finally:
        with psycopg.connect(FALLBACK_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture
def pg_schema(pg_database: str) -> Iterator[str]:
    """A fresh schema name in ``pg_database``; dropped (with its tables) afterwards."""
    import psycopg

    schema = f"paygate_t_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_url(pg_database: str, pg_schema: str) -> str:
    """A ``postgresql://`` store URL private to this test (its own schema)."""
    return _add_option(pg_database, f"schema={pg_schema}&pool_max=4")
