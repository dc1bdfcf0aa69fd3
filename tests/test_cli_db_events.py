"""``paygate db upgrade|version`` and ``paygate events list|replay``, and Gateway.replay."""

from __future__ import annotations

import json
import os
import sqlite3
import textwrap
import uuid
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pytest

import paygate
from paygate import EventType
from paygate.__main__ import main
from paygate.providers.fake import FakeProvider
from paygate.stores import open_store
from paygate.stores._sql import SCHEMA_VERSION
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401
from tests.test_gateway_webhooks import paid_payment_events


def _tables(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn, conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return sorted(name for (name,) in rows if name.startswith("paygate_"))


def test_db_upgrade_creates_a_sqlite_schema_and_version_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "p.db"
    assert main(["db", "version", "--store", f"sqlite:///{db}"]) == 2
    assert "no SQLite database" in capsys.readouterr().err
    assert not db.exists()  # asking the version created nothing
    assert main(["db", "upgrade", "--store", f"sqlite:///{db}"]) == 0
    assert capsys.readouterr().out == (
        f"sqlite:///{db}: schema created at version {SCHEMA_VERSION}\n"
    )
    assert _tables(db) == ["paygate_events", "paygate_facts", "paygate_meta",
                           "paygate_operations", "paygate_payments",
                           "paygate_subscription_transitions", "paygate_subscriptions",
                           "paygate_transitions"]  # fmt: skip
    assert main(["db", "upgrade", "--store", f"sqlite:///{db}"]) == 0  # again: a no-op
    assert capsys.readouterr().out == (
        f"sqlite:///{db}: schema already at version {SCHEMA_VERSION}\n"
    )
    assert main(["db", "version", "--store", f"sqlite:///{db}"]) == 0
    assert f"schema version {SCHEMA_VERSION} (this paygate: {SCHEMA_VERSION})" in (
        capsys.readouterr().out
    )


def a_next_schema_version(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pretend this paygate writes one schema version more, adding a table."""
    from paygate.stores import _sql

    target = SCHEMA_VERSION + 1
    monkeypatch.setattr(_sql, "SCHEMA_VERSION", target)
    monkeypatch.setattr(
        _sql, "MIGRATIONS",
        {**_sql.MIGRATIONS, target: ("CREATE TABLE paygate_next (id TEXT PRIMARY KEY)",)},
    )  # fmt: skip
    return target


def test_db_upgrade_reports_the_version_it_migrated_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "p.db"
    assert main(["db", "upgrade", "--store", f"sqlite:///{db}"]) == 0
    capsys.readouterr()
    target = a_next_schema_version(monkeypatch)
    assert main(["db", "upgrade", "--store", f"sqlite:///{db}"]) == 0
    assert capsys.readouterr().out == (
        f"sqlite:///{db}: schema upgraded from version {SCHEMA_VERSION} to {target}\n"
    )
    assert "paygate_next" in _tables(db)
    assert main(["db", "upgrade", "--store", f"sqlite:///{db}"]) == 0
    assert capsys.readouterr().out == f"sqlite:///{db}: schema already at version {target}\n"


def test_db_upgrade_refuses_a_newer_schema_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "p.db"
    assert main(["db", "upgrade", "--store", f"sqlite:///{db}"]) == 0
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE paygate_meta SET value = ?", (str(SCHEMA_VERSION + 1),))
    before = db.read_bytes()
    capsys.readouterr()
    assert main(["db", "upgrade", "--store", f"sqlite:///{db}"]) == 1
    assert "newer than this paygate" in capsys.readouterr().err
    assert main(["db", "version", "--store", f"sqlite:///{db}"]) == 1
    assert db.read_bytes() == before


def test_db_version_of_an_empty_database_asks_for_an_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    assert main(["db", "version", "--store", f"sqlite:///{db}"]) == 1
    assert "run `paygate db upgrade`" in capsys.readouterr().err
    assert _tables(db) == []


def test_db_upgrade_on_postgres(
    pg_url: str,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["db", "version", "--store", pg_url]) == 1
    assert "run `paygate db upgrade`" in capsys.readouterr().err
    assert main(["db", "upgrade", "--store", pg_url]) == 0
    assert f": schema created at version {SCHEMA_VERSION}\n" in capsys.readouterr().out
    assert main(["db", "version", "--store", pg_url]) == 0
    assert main(["db", "upgrade", "--store", pg_url]) == 0
    assert f": schema already at version {SCHEMA_VERSION}\n" in capsys.readouterr().out
    target = a_next_schema_version(monkeypatch)
    assert main(["db", "upgrade", "--store", pg_url]) == 0
    assert f": schema upgraded from version {SCHEMA_VERSION} to {target}\n" in (
        capsys.readouterr().out
    )


def test_db_needs_a_store_and_hides_passwords(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PAYGATE_STORE_URL", raising=False)
    assert main(["db", "upgrade"]) == 2
    assert "--store" in capsys.readouterr().err
    assert main(["db", "upgrade", "--store", "redis://u:hunter2@h/0"]) == 2
    err = capsys.readouterr().err
    assert "unknown store scheme" in err and "hunter2" not in err


# -- events ------------------------------------------------------------------------------------

APP = """
import json, os
import paygate
from paygate import EventType
from paygate.providers.fake import FakeProvider

LOG = os.environ["PAYGATE_TEST_HANDLER_LOG"]

def make_gateway():
    gw = paygate.connect(FakeProvider(seed=1), store=os.environ["PAYGATE_TEST_APP_STORE"])

    @gw.on(EventType.PAYMENT_SUCCEEDED, EventType.REFUND_SUCCEEDED)
    def fulfil(event):
        with open(LOG, "a") as f:
            f.write(json.dumps([event.id, event.type.value, event.payment_id]) + "\\n")

    return gw
"""


def _app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> tuple[str, Path]:
    name = f"shop_app_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(APP))
    log = tmp_path / "handled.log"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PAYGATE_TEST_HANDLER_LOG", str(log))
    monkeypatch.setenv("PAYGATE_TEST_APP_STORE", store_url)
    return f"{name}:make_gateway", log


def _ingest(store_url: str) -> tuple[str, list[str]]:
    """A payment's five events handled by a gateway with no handlers (as if the handler
    had a bug that did nothing); returns the payment id and the event ids."""
    provider = FakeProvider(seed=4)
    pid, deliveries = paid_payment_events(provider)
    gw = paygate.connect(provider, store=store_url)
    ids = [gw.handle_webhook(d.body, d.headers).event.id for d in deliveries]
    gw.close()
    return pid, ids


@pytest.fixture(params=["sqlite", "postgres"])
def events_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def test_events_replay_reruns_handlers_without_new_transitions(
    events_store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pid, ids = _ingest(events_store)
    store = open_store(events_store)
    history_before = store.history(pid)
    events_before = store.list_events()
    app, log = _app(tmp_path, monkeypatch, "memory://")  # events come from --store

    assert main(["events", "list", "--store", events_store]) == 0
    listing = capsys.readouterr().out
    assert "5 event(s)" in listing and all(i in listing for i in ids)

    assert main(["events", "replay", "--app", app, "--store", events_store, "--dry-run"]) == 0
    assert "3 event(s) would replay" in capsys.readouterr().out
    assert not log.exists()

    assert main(["events", "replay", "--app", app, "--store", events_store]) == 0
    assert "3 event(s) replayed" in capsys.readouterr().out
    handled = [line.split('"')[3] for line in log.read_text().splitlines()]
    assert handled == ["payment.succeeded", "refund.succeeded", "refund.succeeded"]
    # nothing applied again, nothing about the events changed
    assert store.history(pid) == history_before
    assert store.list_events() == events_before

    log.unlink()
    assert main(["events", "replay", "--app", app, "--store", events_store,
                 "--payment", "pay_nobody"]) == 0  # fmt: skip
    assert "0 event(s) replayed" in capsys.readouterr().out
    future = datetime(2100, 1, 1, tzinfo=timezone.utc).isoformat()
    assert main(["events", "replay", "--app", app, "--store", events_store,
                 "--since", future]) == 0  # fmt: skip
    assert "0 event(s) replayed" in capsys.readouterr().out
    assert not log.exists()
    store.close()


def test_events_replay_reads_the_apps_own_store_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    pid, _ = _ingest(url)
    app, log = _app(tmp_path, monkeypatch, url)
    monkeypatch.delenv("PAYGATE_STORE_URL", raising=False)
    assert main(["events", "replay", "--app", app, "--payment", pid]) == 0
    assert "3 event(s) replayed from the app's store" in capsys.readouterr().out
    assert len(log.read_text().splitlines()) == 3


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("no_colon", "must look like"),
        ("no_such_module_xyz:gw", "cannot import"),
        ("json:no_such_attr", "has no 'no_such_attr'"),
        ("json:JSONDecoder", "not a paygate.Gateway"),
    ],
)
def test_events_replay_explains_a_bad_app(
    app: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["events", "replay", "--app", app, "--store", "memory://"]) == 2
    assert message in capsys.readouterr().err


def test_events_bad_since(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "list", "--store", "memory://", "--since", "yesterday"]) == 2
    assert "--since must be an ISO 8601 time" in capsys.readouterr().err


def test_gateway_replay_api_skips_stale_and_rejected_and_propagates_a_handler_error(
    tmp_path: Path,
) -> None:
    provider = FakeProvider(seed=5)
    pid, deliveries = paid_payment_events(provider)
    gw = paygate.connect(provider, store=f"sqlite:///{tmp_path / 'p.db'}")
    for d in [deliveries[2], deliveries[0]]:  # succeeded, then the late (stale) created
        gw.handle_webhook(d.body, d.headers)
    outcomes = {e.event_type: e.outcome for e in gw.store.list_events()}
    assert outcomes == {"payment.succeeded": "applied", "payment.created": "stale"}
    seen: list[str] = []
    gw.on()(lambda event: seen.append(event.type.value))  # every type
    replayed = gw.replay()
    assert [e.type for e in replayed] == [EventType.PAYMENT_SUCCEEDED]
    assert seen == ["payment.succeeded"]
    assert gw.replay(since=datetime(2100, 1, 1, tzinfo=timezone.utc)) == []
    assert [e.payment_id for e in gw.replay(payment_id=pid, dry_run=True)] == [pid]
    assert seen == ["payment.succeeded"]  # dry run ran nothing

    def broken(event: object) -> None:
        raise RuntimeError("still broken")

    gw.on(EventType.PAYMENT_SUCCEEDED)(broken)
    with pytest.raises(RuntimeError, match="still broken"):
        gw.replay()
    assert len(gw.history(pid)) == 1
    gw.close()


def test_events_facts_lists_pending_facts_and_dispatch_runs_them_once(
    events_store: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pid, _ = _ingest(events_store)  # recorded by a gateway with no handler: all pending
    app, log = _app(tmp_path, monkeypatch, events_store)
    assert main(["events", "facts", "--store", events_store]) == 0
    listing = capsys.readouterr().out
    assert "4 fact(s) pending or failed" in listing
    for kind in ("payment.processing", "payment.succeeded", "refund.succeeded"):
        assert f"{kind}  ord_p  webhook  pending" in listing
    assert main(["events", "dispatch", "--app", app]) == 0
    assert "4 fact(s) done, 0 failed (3 handler run(s))" in capsys.readouterr().out
    handled = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(kind, payment) for _, kind, payment in handled] == [
        ("payment.succeeded", pid), ("refund.succeeded", pid), ("refund.succeeded", pid),
    ]  # fmt: skip
    assert main(["events", "dispatch", "--app", app]) == 0  # nothing left: nothing runs
    assert "0 fact(s) done" in capsys.readouterr().out
    assert len(log.read_text().splitlines()) == 3
    assert main(["events", "facts", "--store", events_store, "--payment", pid, "--all"]) == 0
    assert capsys.readouterr().out.count("  done\n") == 4


def test_events_list_and_facts_print_a_header_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    pid, ids = _ingest(url)
    assert main(["events", "list", "--store", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["received_at", "provider", "event_id", "event_type",
                                "payment_id", "outcome", "state", "deliveries"]  # fmt: skip
    assert len(lines) == 1 + len(ids) + 1  # header, one per event, the count
    assert main(["events", "list", "--store", url, "--json"]) == 0
    events = json.loads(capsys.readouterr().out)  # one document, nothing else printed
    assert [e["event_id"] for e in events] == ids
    assert {tuple(e) for e in events} == {(
        "received_at", "provider", "event_id", "event_type", "payment_id", "outcome",
        "state", "deliveries",
    )}  # fmt: skip
    assert {e["payment_id"] for e in events} == {pid}
    assert all(e["provider"] == "fake" and e["deliveries"] == 1 for e in events)
    assert "payload" not in json.dumps(events)
    assert main(["events", "list", "--store", url, "--json", "--payment", "pay_nobody"]) == 0
    assert json.loads(capsys.readouterr().out) == []

    assert main(["events", "facts", "--store", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["recorded_at", "id", "type", "order_id", "source", "state"]
    assert main(["events", "facts", "--store", url, "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert len(facts) == 4 == len(lines) - 2
    assert {tuple(f) for f in facts} == {(
        "recorded_at", "id", "type", "payment_id", "order_id", "source", "state",
        "attempts", "last_error",
    )}  # fmt: skip
    assert [f["type"] for f in facts][-1] == "refund.succeeded"
    assert all(f["state"] == "pending" and f["payment_id"] == pid for f in facts)


@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "version"], ["events", "list"]])
def test_a_store_that_cannot_connect_fails_fast_with_one_line(
    pg_database: str, command: list[str]  # noqa: F811
) -> None:
    import subprocess
    import sys
    import time
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(pg_database)
    netloc = f"{parts.username or 'postgres'}:hunter2@{parts.hostname}:{parts.port or 5432}"
    url = urlunsplit((parts.scheme, netloc, "/no_such_db_xyz", "", ""))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "paygate", *command, "--store", url],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(paygate.__file__).parents[1])},
    )  # fmt: skip
    assert time.monotonic() - started <= 5
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr  # one line, no pool retry log lines
    assert f"cannot connect to PostgreSQL at {parts.hostname}:" in done.stderr
    assert "database 'no_such_db_xyz'" in done.stderr
    assert 'database "no_such_db_xyz" does not exist' in done.stderr  # the server's reason
    assert "hunter2" not in done.stderr and "PoolTimeout" not in done.stderr
