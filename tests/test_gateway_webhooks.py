"""The webhook pipeline: verify → claim → transition once → handlers → processed."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import EventType, Money, PaymentStatus, WebhookEvent
from paygate.errors import InvalidSignature
from paygate.gateway import WebhookResult
from paygate.models import WebhookDelivery
from paygate.providers.fake import FakeProvider
from paygate.state import PaymentState, apply_all, event_from_webhook
from paygate.stores import ClaimStatus

S = PaymentStatus


def usd(value: str) -> Money:
    return Money.of(value, "USD")


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"


def paid_payment_events(provider: FakeProvider) -> tuple[str, list[WebhookDelivery]]:
    """A payment made directly at the provider (the gateway never saw it): created,
    processing, succeeded, then two partial refunds."""
    side = paygate.connect(provider)  # a throw-away gateway, only to drive the provider
    p = side.create_payment(order_id="ord_p", amount=usd("20"), payment_method="tok_processing")
    provider.settle(p.id)
    side.get_payment(p.id)  # the side gateway learns of the settlement
    side.refund(p.id, amount=usd("5"))
    side.refund(p.id, amount=usd("7"))
    deliveries = provider.take_webhooks()
    types = [json.loads(d.body)["type"] for d in deliveries]
    assert types == ["payment.created", "payment.processing", "payment.succeeded",
                     "refund.succeeded", "refund.succeeded"]  # fmt: skip
    return p.id, deliveries


def test_a_duplicate_delivery_changes_nothing(store_url: str) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=store_url)
    seen: list[str] = []
    gw.on(EventType.PAYMENT_SUCCEEDED)(lambda event: seen.append(event.id))
    pid, deliveries = paid_payment_events(provider)
    succeeded = deliveries[2]
    first = gw.handle_webhook(succeeded.body, succeeded.headers)
    assert first.changed and not first.duplicate and first.outcome == "applied"
    assert (first.previous_status, first.status) == (None, S.SUCCEEDED)
    assert first.handlers_run == 1
    again = provider.redeliver(succeeded)
    second = gw.handle_webhook(again.body, again.headers)
    assert second.duplicate and not second.changed and second.outcome == "applied"
    assert second.status is S.SUCCEEDED and second.handlers_run == 0
    # the handler heard the fact (once), which names the delivery that brought it
    (fact,) = first.facts
    assert seen == [fact.id] and fact.event is not None and fact.event.id == first.event.id
    assert len(gw.history(pid)) == 1
    event = gw.store.get_event("fake", first.event.id)
    assert event is not None and event.processed and event.deliveries == 2


def test_a_failing_fact_handler_stays_pending_and_is_retried_without_a_second_transition(
    store_url: str,
) -> None:
    provider = FakeProvider(seed=2)
    gw = paygate.connect(provider, store=store_url)
    runs: list[str] = []

    @gw.on(EventType.PAYMENT_SUCCEEDED)
    def flaky(event: Any) -> None:
        runs.append(event.id)
        if len(runs) == 1:
            raise RuntimeError("mail server down")

    also: list[str] = []
    gw.on(EventType.PAYMENT_SUCCEEDED)(lambda event: also.append(event.id))
    pid, deliveries = paid_payment_events(provider)
    # the fact is durable: the delivery is done (200) and says its handler failed
    first = gw.handle_webhook(deliveries[2].body, deliveries[2].headers)
    assert first.changed and first.http_status == 200 and first.handlers_failed
    assert first.handler_errors == (f"{runs[0]}: RuntimeError: mail server down",)
    stored = gw.store.get_payment(pid)
    assert stored is not None and stored.status is S.SUCCEEDED  # the transition stays
    record = gw.store.get_event("fake", first.event.id)
    assert record is not None and record.processed
    (pending,) = gw.pending_facts()
    assert pending.id == runs[0] and pending.attempts == 1
    assert pending.last_error == "RuntimeError: mail server down"
    # a redelivery is a duplicate: the fact is known, nothing runs from the delivery
    retry = provider.redeliver(deliveries[2])
    assert gw.handle_webhook(retry.body, retry.headers).duplicate
    assert runs == [runs[0]] and also == []
    summary = gw.dispatch_pending()
    assert (summary.done, summary.failed, summary.handlers_run) == (1, 0, 2)
    assert runs == [runs[0], runs[0]] and also == [runs[0]]
    assert len(gw.history(pid)) == 1 and gw.pending_facts() == []
    assert gw.dispatch_pending().handlers_run == 0
    assert len(runs) == 2


def test_every_permutation_of_one_payments_events_ends_in_the_same_state() -> None:
    provider = FakeProvider(seed=3)
    pid, deliveries = paid_payment_events(provider)
    events = [provider.parse_webhook(d.body, d.headers) for d in deliveries]
    in_order = apply_all(PaymentState(S.PENDING, 2000),
                         [e for e in map(event_from_webhook, events) if e is not None])  # fmt: skip
    assert (in_order.status, in_order.captured, in_order.refunded) == (
        S.PARTIALLY_REFUNDED, 2000, 1200,
    )  # fmt: skip
    finals: Counter[tuple[Any, ...]] = Counter()
    for order in itertools.permutations(range(len(deliveries))):
        gw = paygate.connect(provider)
        for i in order:
            gw.handle_webhook(deliveries[i].body, deliveries[i].headers)
        record = gw.store.get_payment(pid)
        assert record is not None
        state = record.state
        finals[(state.status, state.captured, state.refunded, state.refund_ids)] += 1
        # one transition per event that moved it, never a regression
        log = gw.history(pid)
        assert len({t.event_id for t in log}) == len(log)
        assert log[-1].new_status is S.PARTIALLY_REFUNDED
    assert len(finals) == 1
    ((status, captured, refunded, refund_ids),) = finals
    assert (status, captured, refunded) == (in_order.status, in_order.captured, in_order.refunded)
    assert len(refund_ids) == 2
    assert sum(finals.values()) == 120


def test_stale_events_are_recorded_and_ignored(store_url: str) -> None:
    provider = FakeProvider(seed=4)
    gw = paygate.connect(provider, store=store_url)
    handled: list[str] = []
    gw.on(EventType.PAYMENT_PROCESSING)(lambda e: handled.append(e.id))
    _, deliveries = paid_payment_events(provider)
    gw.handle_webhook(deliveries[2].body, deliveries[2].headers)  # succeeded
    late = gw.handle_webhook(deliveries[1].body, deliveries[1].headers)  # processing
    assert late.outcome == "stale" and late.status is S.SUCCEEDED and late.handlers_run == 0
    assert handled == []
    event = gw.store.get_event("fake", late.event.id)
    assert event is not None and event.outcome == "stale" and event.processed


def test_an_unseen_payment_is_created_from_a_refund_event(store_url: str) -> None:
    provider = FakeProvider(seed=5)
    gw = paygate.connect(provider, store=store_url)
    pid, deliveries = paid_payment_events(provider)
    result = gw.handle_webhook(deliveries[4].body, deliveries[4].headers)
    assert result.changed and result.status is S.PARTIALLY_REFUNDED
    record = gw.store.get_payment(pid)
    assert record is not None and record.order_id == "ord_p"
    assert (record.state.captured, record.state.refunded) == (2000, 700)


def test_unknown_event_types_are_recorded_and_reported(store_url: str) -> None:
    provider = FakeProvider(seed=6)
    gw = paygate.connect(provider, store=store_url)
    every: list[EventType] = []
    gw.on()(lambda e: every.append(e.type))
    delivery = provider.sign_webhook({"id": "evt_odd", "type": "payout.paid", "created": 1,
                                      "data": {"object": {"object": "payout"}}})  # fmt: skip
    result = gw.handle_webhook(delivery.body, delivery.headers)
    assert result.unknown and not result.duplicate and result.status is None
    assert result.event.provider_type == "payout.paid"
    assert every == [EventType.UNKNOWN]
    event = gw.store.get_event("fake", "evt_odd")
    assert event is not None and event.outcome == "unknown" and event.provider_type == "payout.paid"


def test_an_impossible_event_is_rejected_and_not_applied(store_url: str) -> None:
    provider = FakeProvider(seed=7)
    gw = paygate.connect(provider, store=store_url)
    handled: list[str] = []
    gw.on(EventType.PAYMENT_SUCCEEDED)(lambda e: handled.append(e.id))
    canceled = gw.create_payment(order_id="ord_c", amount=usd("3"), payment_method="tok_visa",
                                 capture="manual")  # fmt: skip
    gw.cancel(canceled.id)
    other = gw.create_payment(order_id="ord_o", amount=usd("3"), payment_method="tok_visa")
    provider.take_webhooks()
    forged_payment = {**provider._objects[other.id], "id": canceled.id, "order_id": "ord_c"}
    delivery = provider.sign_webhook({"id": "evt_impossible", "type": "payment.succeeded",
                                      "created": 1, "data": {"object": forged_payment}})  # fmt: skip
    result = gw.handle_webhook(delivery.body, delivery.headers)
    assert result.rejected and result.status is S.CANCELED and result.handlers_run == 0
    assert result.error and "succeeded cannot happen to a canceled payment" in result.error
    assert handled == [f"fake:{other.id}:payment.succeeded"]  # the other's, from the API
    assert gw.store.get_payment(canceled.id).status is S.CANCELED  # type: ignore[union-attr]
    assert gw.store.get_event("fake", "evt_impossible").outcome == "rejected"  # type: ignore[union-attr]


def test_a_forged_delivery_is_refused_and_nothing_is_recorded(store_url: str) -> None:
    provider = FakeProvider(seed=8)
    gw = paygate.connect(provider, store=store_url)
    _, deliveries = paid_payment_events(provider)
    tampered = deliveries[2].body.replace(b'"amount":2000', b'"amount":1')
    with pytest.raises(InvalidSignature):
        gw.handle_webhook(tampered, deliveries[2].headers)
    assert gw.store.list_events() == []


def test_a_dead_workers_claim_is_taken_over_after_its_lease() -> None:
    now = [1_000.0]
    provider = FakeProvider(seed=9)
    gw = paygate.connect(provider, webhook_lease=30.0, clock=lambda: now[0])
    pid, deliveries = paid_payment_events(provider)
    event = provider.parse_webhook(deliveries[2].body, deliveries[2].headers)
    dead = gw.store.claim_event("fake", event.id, event_type=event.type.value,
                                provider_type=event.provider_type, payment_id=pid, payload={},
                                occurred_at=None, now=now[0], lease_seconds=30.0)  # fmt: skip
    assert dead.status is ClaimStatus.CLAIMED  # ... and then the worker was killed
    now[0] += 10
    busy = gw.handle_webhook(deliveries[2].body, deliveries[2].headers)
    assert busy.duplicate and busy.in_progress
    assert gw.store.get_payment(pid) is None
    now[0] += 25  # the lease ran out
    taken = gw.handle_webhook(deliveries[2].body, deliveries[2].headers)
    assert taken.changed and taken.status is S.SUCCEEDED
    assert len(gw.history(pid)) == 1


def test_the_same_event_from_8_threads_moves_the_payment_once(tmp_path: Path) -> None:
    provider = FakeProvider(seed=10)
    gw = paygate.connect(provider, store=f"sqlite:///{tmp_path / 'p.db'}")
    handled: list[str] = []
    gw.on(EventType.PAYMENT_SUCCEEDED)(lambda e: handled.append(e.id))
    pid, deliveries = paid_payment_events(provider)
    barrier = threading.Barrier(8)
    results: list[WebhookResult] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        r = gw.handle_webhook(deliveries[2].body, deliveries[2].headers)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert sum(not r.duplicate for r in results) == 1
    assert len(handled) == 1
    assert [t.new_status for t in gw.history(pid)] == [S.SUCCEEDED]


def test_different_events_of_one_payment_from_threads_are_all_applied(tmp_path: Path) -> None:
    provider = FakeProvider(seed=11)
    gw = paygate.connect(provider, store=f"sqlite:///{tmp_path / 'p.db'}")
    pid, deliveries = paid_payment_events(provider)
    barrier = threading.Barrier(len(deliveries))

    def worker(d: WebhookDelivery) -> None:
        barrier.wait()
        gw.handle_webhook(d.body, d.headers)

    threads = [threading.Thread(target=worker, args=(d,)) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    record = gw.store.get_payment(pid)
    assert record is not None
    assert (record.status, record.state.captured, record.state.refunded) == (
        S.PARTIALLY_REFUNDED, 2000, 1200,
    )  # fmt: skip
    assert all(gw.store.get_event("fake", e.event_id).processed for e in gw.store.list_events())  # type: ignore[union-attr]


def _process_worker(db: str, body: bytes, headers: dict[str, str], start: Any, out: Any) -> None:
    gw = paygate.connect(FakeProvider(), store=f"sqlite:///{db}")
    start.wait()
    result = gw.handle_webhook(body, headers)
    out.put((result.duplicate, result.outcome))
    gw.close()


@pytest.mark.slow
def test_the_same_event_from_4_processes_moves_the_payment_once(tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    provider = FakeProvider(seed=12)
    pid, deliveries = paid_payment_events(provider)
    paygate.connect(provider, store=f"sqlite:///{db}").close()  # create the schema first
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_process_worker,
                         args=(db, deliveries[2].body, deliveries[2].headers, start, out))
             for _ in range(4)]  # fmt: skip
    for p in procs:
        p.start()
    start.set()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    winners = [outcome for duplicate, outcome in results if not duplicate]
    assert winners == ["applied"]  # one process applied it, three saw a duplicate
    store = paygate.open_store(f"sqlite:///{db}")
    log = store.history(pid)
    assert [t.new_status for t in log] == [S.SUCCEEDED] and log[0].source == "webhook"
    event = store.get_event("fake", log[0].event_id or "")
    assert event is not None and event.processed and event.deliveries == 4
    store.close()


# -- property: any delivery order, any duplicates ------------------------------------------

_SCENARIO: dict[str, Any] = {}


def _scenario() -> tuple[FakeProvider, list[WebhookDelivery], list[WebhookEvent]]:
    """Three payments' webhooks (made once): paid + two partial refunds; failed to settle,
    then canceled; 3-D Secure, then fully refunded."""
    if not _SCENARIO:
        provider = FakeProvider(seed=13, webhook_tolerance=86_400)
        side = paygate.connect(provider)
        a = side.create_payment(order_id="a", amount=usd("30"), payment_method="tok_visa")
        side.refund(a.id, amount=usd("10"))
        side.refund(a.id, amount=usd("5"))
        b = side.create_payment(order_id="b", amount=usd("8"), payment_method="tok_processing")
        provider.settle(b.id, success=False)
        side.get_payment(b.id)
        side.cancel(b.id)
        c = side.create_payment(order_id="c", amount=usd("12"), payment_method="tok_3ds")
        provider.authenticate(c.id)
        side.get_payment(c.id)
        side.refund(c.id)
        deliveries = provider.take_webhooks()
        events = [provider.parse_webhook(d.body, d.headers) for d in deliveries]
        _SCENARIO.update(provider=provider, deliveries=deliveries, events=events)
    return _SCENARIO["provider"], _SCENARIO["deliveries"], _SCENARIO["events"]


def _expected(events: list[WebhookEvent], order: list[int]) -> dict[str, PaymentState]:
    """The pure state machine over the first delivery of each event, in delivery order."""
    states: dict[str, PaymentState] = {}
    seen: set[int] = set()
    for i in order:
        if i in seen:
            continue
        seen.add(i)
        event = events[i]
        change = event_from_webhook(event)
        pid = event.payment_id
        if change is None or pid is None:
            continue
        if pid not in states:
            amount = {"a": 3000, "b": 800, "c": 1200}[event.order_id or ""]
            states[pid] = PaymentState(S.PENDING, amount)
        states[pid] = apply_all(states[pid], [change])
    return states


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_any_order_with_duplicates_matches_the_pure_state_machine(
    store_kind: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    provider, deliveries, events = _scenario()
    n = len(deliveries)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.permutations(range(n)), st.lists(st.integers(0, n - 1), max_size=n))
    def check(order: list[int], repeats: list[int]) -> None:
        deliveries_order = list(order)
        for position, index in enumerate(repeats):  # duplicates, spread through the run
            deliveries_order.insert((position * 7) % (len(deliveries_order) + 1), index)
        url = "memory://" if store_kind == "memory" else (
            f"sqlite:///{tmp_path_factory.mktemp('prop') / 'p.db'}?synchronous=OFF"
        )  # fmt: skip
        gw = paygate.connect(provider, store=url)
        results = [gw.handle_webhook(deliveries[i].body, deliveries[i].headers)
                   for i in deliveries_order]  # fmt: skip
        assert sum(not r.duplicate for r in results) == n  # each event processed once
        for pid, state in _expected(events, deliveries_order).items():
            record = gw.store.get_payment(pid)
            assert record is not None
            assert (record.status, record.state.captured, record.state.refunded) == (
                state.status, state.captured, state.refunded,
            )  # fmt: skip
            log = gw.history(pid)
            assert len({t.event_id for t in log}) == len(log)  # no event moved it twice
        gw.close()

    check()
