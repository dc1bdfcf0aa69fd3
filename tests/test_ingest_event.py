"""The SQL stores' one-transaction first delivery (``SQLStore.ingest_event``), on SQLite
and PostgreSQL: how many write transactions an event costs, and that every way out of
the transaction before its commit leaves nothing written."""

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
    assert writes == ["_write"]  # claim, payment, transition, processed: one commit
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
    assert writes_then == ["_write"]
    assert event_then.applied_at is not None and event_then.processed_at is None
    assert event_then.lease_until is not None  # leased to this worker until it finishes
    assert writes == ["_write", "_write_one"]  # then the finish
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
