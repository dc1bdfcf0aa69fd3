"""A delivery of an event another worker holds right now is answered 409, never 2xx.

These events are ones whose handlers run from the delivery itself (``payment.created``
here; subscriptions, invoices, ...). A payment fact's event is finished in the
transaction that records its facts: its handlers run from the outbox, and a redelivery
meanwhile is a plain duplicate (tests/test_facts.py).

A 2xx would tell the provider the event was handled; if the worker holding it then dies,
nobody ever finishes it. The 409 makes the provider deliver it again later: that delivery
finds it processed (a duplicate, 200) or, once the lease has run out, takes it over.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import EventType, Money, PaymentStatus, WebhookEvent
from paygate.gateway import WebhookResult
from paygate.models import WebhookDelivery
from paygate.providers.fake import FakeProvider

# the PostgreSQL fixtures (skip with the reason when no server is reachable)
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

S = PaymentStatus
LEASE = 30.0


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return f"sqlite:///{tmp_path / 'p.db'}"


def succeeded_delivery(provider: FakeProvider, order_id: str = "ord_1") -> WebhookDelivery:
    """The signed ``payment.created`` delivery of a payment made at the provider (not a
    payment fact: its handlers run from the delivery)."""
    side = paygate.connect(provider)  # a throw-away gateway, only to drive the provider
    side.create_payment(order_id=order_id, amount=Money.of("12.50", "USD"),
                        payment_method="tok_visa")  # fmt: skip
    (delivery,) = [d for d in provider.take_webhooks() if b'"payment.created"' in d.body]
    return delivery


def test_a_redelivery_while_the_first_runs_is_answered_409_and_changes_nothing(
    store_url: str,
) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=store_url)
    delivery = succeeded_delivery(provider)
    inner: list[WebhookResult] = []
    handled: list[str] = []

    @gw.on(EventType.PAYMENT_CREATED)
    def fulfil(event: WebhookEvent) -> None:
        handled.append(event.id)
        if len(inner) == 0:  # the provider retries while this worker is still busy
            again = provider.redeliver(delivery)
            inner.append(gw.handle_webhook(again.body, again.headers))

    first = gw.handle_webhook(delivery.body, delivery.headers)
    (busy,) = inner
    assert busy.in_progress and busy.duplicate and not busy.changed
    assert not busy.acknowledged and busy.http_status == 409
    assert busy.handlers_run == 0
    assert first.changed and first.acknowledged and first.http_status == 200
    assert handled == [first.event.id]  # the busy delivery ran no handler
    pid = first.event.payment_id
    assert pid is not None
    assert [t.new_status for t in gw.history(pid)] == [S.PENDING]

    # the provider's retry of the 409, after the first worker finished: a plain duplicate
    later = provider.redeliver(delivery)
    done = gw.handle_webhook(later.body, later.headers)
    assert done.duplicate and not done.in_progress
    assert done.acknowledged and done.http_status == 200
    assert handled == [first.event.id]
    assert len(gw.history(pid)) == 1
    record = gw.store.get_event("fake", first.event.id)
    assert record is not None and record.processed


def test_two_gateways_on_one_sqlite_file_a_blocked_worker_makes_the_other_answer_409(
    tmp_path: Path,
) -> None:
    provider = FakeProvider(seed=2)
    db = f"sqlite:///{tmp_path / 'p.db'}"
    gw_a = paygate.connect(provider, store=db)
    gw_b = paygate.connect(provider, store=db)
    delivery = succeeded_delivery(provider)
    entered, release = threading.Event(), threading.Event()
    handled: list[str] = []

    @gw_a.on(EventType.PAYMENT_CREATED)
    def slow(event: WebhookEvent) -> None:
        handled.append(f"a:{event.id}")
        entered.set()
        assert release.wait(10), "the test never released the worker"

    gw_b.on(EventType.PAYMENT_CREATED)(lambda event: handled.append(f"b:{event.id}"))
    results: list[WebhookResult] = []
    worker = threading.Thread(
        target=lambda: results.append(gw_a.handle_webhook(delivery.body, delivery.headers))
    )
    worker.start()
    try:
        assert entered.wait(10)
        retry = provider.redeliver(delivery)
        busy = gw_b.handle_webhook(retry.body, retry.headers)
    finally:
        release.set()
        worker.join(10)
    assert busy.in_progress and busy.http_status == 409 and busy.handlers_run == 0
    (first,) = results
    assert first.changed and first.http_status == 200
    pid = first.event.payment_id
    assert pid is not None

    retry = provider.redeliver(delivery)
    done = gw_b.handle_webhook(retry.body, retry.headers)
    assert done.duplicate and not done.in_progress and done.http_status == 200
    assert handled == [f"a:{first.event.id}"]
    assert [t.new_status for t in gw_b.history(pid)] == [S.PENDING]
    gw_a.close()
    gw_b.close()


def _die_in_the_handler(db: str, body: bytes, headers: dict[str, str]) -> None:
    """A worker killed after applying the transition, before its handlers finished."""
    gw = paygate.connect(FakeProvider(), store=db, webhook_lease=LEASE)
    gw.on(EventType.PAYMENT_CREATED)(lambda event: os._exit(3))
    gw.handle_webhook(body, headers)
    os._exit(0)  # not reached: the handler killed the process


def test_a_dead_workers_event_is_answered_409_then_taken_over_after_the_lease(
    sql_url: str,
) -> None:
    provider = FakeProvider(seed=3)
    db = sql_url
    delivery = succeeded_delivery(provider)
    # spawn, not fork: a clean interpreter, like a real worker process
    child = multiprocessing.get_context("spawn").Process(
        target=_die_in_the_handler, args=(db, delivery.body, dict(delivery.headers))
    )
    child.start()
    child.join(60)
    assert child.exitcode == 3

    offset = [0.0]
    gw = paygate.connect(provider, store=db, webhook_lease=LEASE,
                         clock=lambda: time.time() + offset[0])  # fmt: skip
    handled: list[str] = []
    gw.on(EventType.PAYMENT_CREATED)(lambda event: handled.append(event.id))
    event = provider.parse_webhook(delivery.body, delivery.headers)
    assert event.payment_id is not None
    stored = gw.store.get_payment(event.payment_id)
    assert stored is not None and stored.status is S.PENDING  # applied before it died
    record = gw.store.get_event("fake", event.id)
    assert record is not None and not record.processed

    # the provider retries while the dead worker's lease still runs: 409, so it retries again
    retry = provider.redeliver(delivery)
    busy = gw.handle_webhook(retry.body, retry.headers)
    assert busy.in_progress and busy.http_status == 409 and handled == []

    offset[0] = LEASE + 1  # the lease ran out: the next retry takes the event over
    retry = provider.redeliver(delivery)
    taken = gw.handle_webhook(retry.body, retry.headers)
    assert not taken.duplicate and not taken.in_progress and taken.http_status == 200
    assert taken.handlers_run == 1 and handled == [event.id]
    assert [t.new_status for t in gw.history(event.payment_id)] == [S.PENDING]
    record = gw.store.get_event("fake", event.id)
    assert record is not None and record.processed

    retry = provider.redeliver(delivery)
    done = gw.handle_webhook(retry.body, retry.headers)
    assert done.duplicate and done.http_status == 200 and handled == [event.id]
    gw.close()


def test_every_finished_outcome_is_acknowledged_with_200(store_url: str) -> None:
    provider = FakeProvider(seed=4)
    gw = paygate.connect(provider, store=store_url)
    answers: dict[str, Any] = {}
    unknown = provider.sign_webhook({"id": "evt_new_kind", "type": "brand.new_thing",
                                     "created": 1, "data": {"object": {}}})  # fmt: skip
    result = gw.handle_webhook(unknown.body, unknown.headers)
    answers["unknown"] = (result.outcome, result.http_status, result.acknowledged)

    canceled = gw.create_payment(order_id="ord_c", amount=Money.of("3", "USD"),
                                 payment_method="tok_visa", capture="manual")  # fmt: skip
    gw.cancel(canceled.id)
    other = gw.create_payment(order_id="ord_o", amount=Money.of("3", "USD"),
                              payment_method="tok_visa")  # fmt: skip
    provider.take_webhooks()
    # a success for a canceled payment: impossible, recorded, answered 2xx so that the
    # provider stops redelivering an event that can never apply
    forged = {**provider._objects[other.id], "id": canceled.id, "order_id": "ord_c"}
    impossible = provider.sign_webhook({"id": "evt_impossible", "type": "payment.succeeded",
                                        "created": 1, "data": {"object": forged}})  # fmt: skip
    result = gw.handle_webhook(impossible.body, impossible.headers)
    answers["rejected"] = (result.outcome, result.http_status, result.acknowledged)
    again = gw.handle_webhook(*_resigned(provider, impossible))
    answers["rejected again"] = (again.outcome, again.http_status, again.duplicate)

    assert answers == {
        "unknown": ("unknown", 200, True),
        "rejected": ("rejected", 200, True),
        "rejected again": ("rejected", 200, True),
    }
    gw.close()


def _resigned(provider: FakeProvider, delivery: WebhookDelivery) -> tuple[bytes, Any]:
    again = provider.redeliver(delivery)
    return again.body, again.headers
