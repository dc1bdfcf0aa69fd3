"""The SQL stores' one-transaction first delivery (``SQLStore.ingest_event``), on SQLite
and PostgreSQL: how many write transactions an event costs, and that every way out of
the transaction before its commit leaves nothing written. PostgreSQL's one-statement
version also gets the races its statement must survive."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import EventType, PaymentStatus
from paygate.providers.fake import FakeProvider
from paygate.stores import StoreConflict, open_store
from paygate.stores._records import EventPlan
from paygate.stores._sql import SQLStore

# the PostgreSQL fixtures (skip with the reason when no server is reachable)
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401
from tests.test_gateway_webhooks import paid_payment_events

S = PaymentStatus


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ingest.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(sql_url: str) -> Iterator[SQLStore]:
    s = open_store(sql_url)
    assert isinstance(s, SQLStore)
    yield s
    s.close()


def count_writes(store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the write transactions (and single-statement writes) ``store`` opens."""
    opened: list[str] = []
    inside = [False]  # SQLite's _write_one() is a _write(): count it once
    for name in ("_write", "_write_one"):
        original = getattr(store, name)

        def counted(original: Callable[[], Any] = original, name: str = name) -> Any:
            if inside[0]:
                return original()
            opened.append(name)
            inside[0] = True
            try:
                return original()
            finally:
                inside[0] = False

        monkeypatch.setattr(store, name, counted)
    return opened


def ingest(store: SQLStore, decide: Callable[[Any], EventPlan | None], event_id: str = "evt_1"):  # type: ignore[no-untyped-def]
    return store.ingest_event(
        "fake", event_id, event_type="payment.created", provider_type="payment.created",
        payment_id="pay_1", payload={"id": event_id}, occurred_at=None, now=100.0,
        lease_seconds=30.0, decide=decide,
    )  # fmt: skip


def test_a_first_delivery_without_handlers_is_one_write_transaction(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=sql_url)
    assert isinstance(gw.store, SQLStore)
    pid, deliveries = paid_payment_events(provider)
    writes = count_writes(gw.store, monkeypatch)
    result = gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    assert result.outcome == "applied" and result.status is S.PENDING
    # claim, payment, transition, processed: one commit (a transaction on SQLite, one
    # statement on PostgreSQL)
    assert len(writes) == 1
    event = gw.store.get_event("fake", json.loads(deliveries[0].body)["id"])
    assert event is not None and event.processed_at is not None and event.outcome == "applied"
    assert event.lease_until is None and event.deliveries == 1
    assert [t.new_status for t in gw.history(pid)] == [S.PENDING]
    gw.close()


def test_with_a_handler_the_finish_is_one_more_write_after_it(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=sql_url)
    assert isinstance(gw.store, SQLStore)
    _pid, deliveries = paid_payment_events(provider)
    writes = count_writes(gw.store, monkeypatch)
    states: list[tuple[list[str], Any]] = []

    @gw.on(EventType.PAYMENT_CREATED)
    def handler(event: Any) -> None:
        # runs after the transaction committed: the event is applied, not yet processed
        assert isinstance(gw.store, SQLStore)
        states.append((list(writes), gw.store.get_event("fake", event.id)))

    gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    (writes_then, event_then), = states  # fmt: skip
    assert len(writes_then) == 1
    assert event_then.applied_at is not None and event_then.processed_at is None
    assert event_then.lease_until is not None  # leased to this worker until it finishes
    assert writes == [*writes_then, "_write_one"]  # then the finish
    event = gw.store.get_event("fake", event_then.event_id)
    assert event is not None and event.processed_at is not None
    gw.close()


def test_a_failing_handler_on_the_first_delivery_is_rerun_without_a_second_transition(
    sql_url: str,
) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=sql_url)
    pid, deliveries = paid_payment_events(provider)
    calls: list[str] = []

    @gw.on(EventType.PAYMENT_CREATED)
    def flaky(event: Any) -> None:
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("handler bug")

    with pytest.raises(RuntimeError):
        gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    event = gw.store.get_event("fake", calls[0])
    assert event is not None and event.applied_at is not None and event.processed_at is None
    again = gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    assert not again.duplicate and again.handlers_run == 1 and len(calls) == 2
    assert len(gw.history(pid)) == 1  # the transition happened once
    assert gw.handle_webhook(deliveries[0].body, deliveries[0].headers).duplicate
    gw.close()


def test_a_redelivery_is_left_to_the_general_path(store: SQLStore) -> None:
    plan = EventPlan("no_transition", finish=True)
    first = ingest(store, lambda current: plan)
    assert first is not None and first[1] is plan and first[2] is None
    # decided before the event's row is tried, and rolled back with it
    assert ingest(store, lambda current: EventPlan("unknown", finish=False)) is None
    event = store.get_event("fake", "evt_1")
    assert event is not None and event.deliveries == 1 and event.outcome == "no_transition"
    assert event.processed_at is not None and event.lease_until is None


def test_a_plan_that_needs_io_first_leaves_nothing_written(store: SQLStore) -> None:
    assert ingest(store, lambda current: None) is None
    assert store.get_event("fake", "evt_1") is None


def test_a_worker_dying_inside_the_transaction_leaves_nothing(store: SQLStore) -> None:
    def die(current: Any) -> EventPlan:
        raise KeyboardInterrupt  # the process being stopped between read and write

    with pytest.raises(KeyboardInterrupt):
        ingest(store, die)
    assert store.get_event("fake", "evt_1") is None
    # the next delivery finds the event new
    assert ingest(store, lambda current: EventPlan("unknown", finish=True)) is not None


def test_a_lost_compare_and_set_rolls_the_claim_back(store: SQLStore, sql_url: str) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=sql_url)
    pid, deliveries = paid_payment_events(provider)
    gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    current = store.get_payment(pid)
    assert current is not None
    stale = EventPlan("applied", finish=True, record=current, expected_version=current.version + 5)
    with pytest.raises(StoreConflict):
        ingest(store, lambda read: stale, event_id="evt_lost")
    assert store.get_event("fake", "evt_lost") is None
    after = store.get_payment(pid)
    assert after is not None and after.version == current.version
    gw.close()


# -- PostgreSQL's one-statement ingest: the races -----------------------------------------


def applied_plan(store: SQLStore, pid: str, event_id: str) -> EventPlan:
    """A plan that moves ``pid`` one version on, as the Gateway would plan it."""
    from paygate.stores._records import TransitionRecord

    current = store.get_payment(pid)
    assert current is not None
    record = current.__class__.build(
        current.payment, current.state, version=current.version + 1, updated_at=200.0
    )
    transition = TransitionRecord(
        payment_id=pid, provider="fake", trigger="payment.processing",
        previous_status=current.status, new_status=current.status, currency="USD",
        amount=None, captured=0, refunded=0, source="webhook", event_id=event_id,
        event_type="payment.processing", recorded_at=200.0,
    )  # fmt: skip
    return EventPlan(
        "applied", finish=True, record=record, expected_version=current.version,
        transition=transition,
    )  # fmt: skip


def connect_to_schema(url: str) -> Any:
    """A connection of its own (another worker) in the test's schema, in a transaction."""
    import psycopg

    schema = url.split("schema=")[1].split("&")[0]
    return psycopg.connect(url.split("?")[0], options=f"-c search_path={schema}")


def wait_until_blocked(url: str) -> None:
    """Until an ingest statement waits on a row lock another connection holds."""
    import time

    import psycopg

    with psycopg.connect(url.split("?")[0], autocommit=True) as watcher:
        for _ in range(500):
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'WITH pay AS%%'"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    pytest.fail("the ingest statement never waited on the other worker's row")


def test_postgres_an_event_claimed_by_the_general_path_is_not_applied_again(
    pg_url: str,  # noqa: F811
) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=pg_url)
    store = gw.store
    assert isinstance(store, SQLStore)
    pid, deliveries = paid_payment_events(provider)
    gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    before = store.get_payment(pid)
    # another worker claimed evt_x on the general path and has not applied it yet
    store.claim_event(
        "fake", "evt_x", event_type="payment.processing", provider_type="payment.processing",
        payment_id=pid, payload={}, occurred_at=None, now=100.0, lease_seconds=30.0,
    )  # fmt: skip
    plan = applied_plan(store, pid, "evt_x")
    assert ingest(store, lambda current: plan, event_id="evt_x") is None
    after = store.get_payment(pid)
    assert before is not None and after is not None and after.version == before.version
    assert [t.event_id for t in store.history(pid)] == [json.loads(deliveries[0].body)["id"]]
    gw.close()


def test_postgres_a_first_delivery_committed_meanwhile_rolls_the_statement_back(
    pg_url: str,  # noqa: F811
) -> None:
    """The other worker's INSERT of the event is uncommitted when the statement starts
    (so it looks new), then commits: the statement's own INSERT of the event fails and
    its payment update is rolled back with it."""
    import threading

    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=pg_url)
    store = gw.store
    assert isinstance(store, SQLStore)
    pid, deliveries = paid_payment_events(provider)
    gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    before = store.get_payment(pid)
    assert before is not None
    plan = applied_plan(store, pid, "evt_race")
    other = connect_to_schema(pg_url)
    other.execute(
        "INSERT INTO paygate_events (provider, event_id, event_type, provider_type, "
        "payload, received_at, deliveries) VALUES ('fake', 'evt_race', 'x', 'x', '{}', 1, 1)"
    )
    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(ingest(store, lambda current: plan, event_id="evt_race"))
    )
    worker.start()
    wait_until_blocked(pg_url)
    other.commit()
    other.close()
    worker.join(timeout=10)
    assert results == [None]  # rolled back: the general path takes the redelivery
    after = store.get_payment(pid)
    assert after is not None and after.version == before.version
    assert all(t.event_id != "evt_race" for t in store.history(pid))
    gw.close()


def test_postgres_a_payment_created_meanwhile_is_a_conflict_then_read(pg_url: str) -> None:  # noqa: F811
    """An event that would create its payment is tried as the payment's first; another
    worker inserts the payment (uncommitted) first, then commits: the statement writes
    nothing and says conflict; the Gateway's retry reads the row and applies on top."""
    import threading

    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=pg_url)
    store = gw.store
    assert isinstance(store, SQLStore)
    pid, deliveries = paid_payment_events(provider)
    created = provider.parse_webhook(deliveries[0].body, deliveries[0].headers)
    other = connect_to_schema(pg_url)
    payment = created.object
    other.execute(
        "INSERT INTO paygate_payments (id, provider, order_id, currency, amount, status, "
        "captured, refunded, refund_ids, before_dispute, data, version, created_at, "
        "updated_at) VALUES (%s, 'fake', 'ord_p', 'USD', 2000, 'pending', 0, 0, '[]', NULL, "
        "%s, 1, 1, 1)",
        (pid, _codec_dumps(payment)),
    )
    results: list[Any] = []
    errors: list[BaseException] = []
    conflicts: list[str] = []
    real_write = store._write_event  # type: ignore[attr-defined]

    def spied_write(*args: Any, **kwargs: Any) -> Any:
        wrote, known, row = real_write(*args, **kwargs)
        if kwargs.get("probe") and not wrote and not known and row is None:
            conflicts.append(kwargs["probe"])
        return wrote, known, row

    store._write_event = spied_write  # type: ignore[attr-defined]

    def deliver() -> None:
        try:
            results.append(gw.handle_webhook(deliveries[0].body, deliveries[0].headers))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=deliver)
    worker.start()
    wait_until_blocked(pg_url)
    other.commit()
    other.close()
    worker.join(timeout=10)
    assert errors == []
    (result,) = results
    # decided again on top of the other worker's row (already pending: nothing to
    # change), never inserted over it
    assert conflicts == [pid]
    assert result.outcome == "unchanged" and result.status is S.PENDING
    record = store.get_payment(pid)
    assert record is not None and record.version == 1 and gw.history(pid) == []
    event = store.get_event("fake", created.id)
    assert event is not None and event.deliveries == 1 and event.applied_at is not None
    gw.close()


def _codec_dumps(value: Any) -> str:
    from paygate.stores import _codec

    return _codec.dumps(value)
