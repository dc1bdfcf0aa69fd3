"""tests/test_facts.py on the async face (AsyncGateway through ``faces_support``), on
memory, SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faces_support import face_patch, loop_thread  # noqa: F401
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401
from tests.test_facts import *  # noqa: F403


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"


# The sync face's refusal of async handlers does not apply here: the async face awaits
# them (tests/test_async_gateway.py checks that instead).
del test_an_async_handler_is_refused_at_registration  # noqa: F821
del test_a_handler_returning_an_awaitable_fails_without_a_warning  # noqa: F821
