"""Shared test fixtures.

``reference_dir`` points at the providers' official specs and example objects in
``../shared/reference`` (beside the checkout, as in CI); tests that need it skip with a
reason where it is absent. Nothing from there is copied into the repository.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  # before any gc.freeze: see _heap_of_earlier_modules_frozen
import pytest

_REPO = Path(__file__).resolve().parent.parent
REFERENCE_DIR = Path(
    os.environ.get("PAYGATE_REFERENCE_DIR", _REPO.parent / "shared" / "reference")
)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE_DIR.is_dir():
        pytest.skip(f"provider reference material not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


def load_reference_json(*parts: str) -> Any:
    """Load a JSON file under the reference dir, or skip the calling test with a reason."""
    path = REFERENCE_DIR.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"provider reference file not found: {path}")
    return json.loads(path.read_text(encoding="utf-8"))

# A Gateway built without a store (paygate.connect(provider), Gateway.from_env()) uses
# $PAYGATE_STORE_URL, else SQLite at ./paygate.db: the tests keep everything in memory
# and never write a database file into the checkout.
os.environ.setdefault("PAYGATE_STORE_URL", "memory://")

@pytest.fixture(scope="module", autouse=True)
def _heap_of_earlier_modules_frozen() -> None:
    """Each test module starts with what earlier modules left alive collected once and
    frozen (``gc.freeze``): the garbage collector's full passes then walk only what this
    module makes. Deep into the suite the live heap holds millions of objects (7.7 M
    counted at 40 %), and a full pass over them took 0.5-5.5 s at load 14, inside whatever
    test triggered it: a fault-injection cell timed against its retry budget failed two
    CI runs that way. Garbage is still collected (and an unclosed resource still warns)
    at every module's start. Hypothesis is imported above, before any freeze: on import
    it checks with ``gc.get_referrers`` that a registered PRNG is referenced, and that
    does not see frozen referrers (a warning, an error here, in runs of files that do
    not import it)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _close_sqlite_stores(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every SQLiteStore a test opens is closed when the test ends.

    Python 3.13 reports a SQLite connection collected unclosed (``ResourceWarning``, an
    error here); many tests build gateways on a store they never close. Closing them here
    keeps such a leak from failing whichever later test the garbage collector runs in. A
    store whose constructor raised (a refused schema) is closed too: the caller never got
    it to close. Raw ``sqlite3`` connections in tests are closed by the tests themselves
    (``contextlib.closing``: ``with sqlite3.connect(...)`` only commits)."""
    from paygate.stores.sqlite import SQLiteStore

    # strong references: a store the test dropped must not be collected, unclosed, before
    # the end of the test
    opened: list[SQLiteStore] = []
    init = SQLiteStore.__init__

    def tracked_init(self: SQLiteStore, *args: Any, **kwargs: Any) -> None:
        opened.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(SQLiteStore, "__init__", tracked_init)
    yield
    for store in opened:
        # a constructor that raised early left no connection, and no attribute to close
        with contextlib.suppress(AttributeError):
            store.close()
