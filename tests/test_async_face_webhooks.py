"""tests/test_gateway_webhooks.py on the async face (AsyncGateway through ``faces_support``), on
memory, SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faces_support import face_patch, loop_thread  # noqa: F401
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401
from tests.test_gateway_webhooks import *  # noqa: F403


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"
