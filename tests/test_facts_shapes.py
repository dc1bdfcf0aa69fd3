"""Property, end to end: for every payment shape the fake provider scripts, its signed
webhook deliveries in any order, some delivered again, mixed with ``get_payment`` calls --
the handlers hear each fact exactly once, the capture before any refund or dispute of it,
and the store ends where the provider's own final answer is.

Shapes: 3-D Secure failing, processing then failing, refunds (one failing after it had
succeeded, one pending then failing), disputes won and lost, two disputes on one payment
(won, then lost). The fake's clock steps a second per call, so each event carries its own
provider time, as real events do. On MemoryStore, SQLite and PostgreSQL (skipped without
a server).
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import paygate
from paygate import EventType, Money, PaymentStatus
from paygate._facts import FACT_TYPES, Fact
from paygate.gateway import Gateway
from paygate.models import WebhookDelivery
from paygate.providers.fake import FakeProvider
from paygate.stores import open_store
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

E = EventType
SECRET = "whsec_facts_shapes_only"
#: facts about the money (told once each whatever the channel), by webhook type
MONEY = {E.REFUND_SUCCEEDED, E.REFUND_FAILED, E.DISPUTE_OPENED, E.DISPUTE_WON, E.DISPUTE_LOST}


@dataclass(frozen=True)
class Shape:
    provider: FakeProvider
    payment_id: str
    deliveries: list[WebhookDelivery]
    #: the webhook types delivered, in the provider's order
    kinds: list[str]


def _script(name: str, run: Callable[[FakeProvider, paygate.Gateway], str]) -> Shape:
    ticks = itertools.count(1_700_000_000)
    provider = FakeProvider(
        seed=len(name), webhook_secret=SECRET, webhook_tolerance=10**10,
        clock=lambda: float(next(ticks)),
    )  # fmt: skip
    side = paygate.connect(provider, store="memory://")
    payment_id = run(provider, side)
    deliveries = provider.take_webhooks()
    kinds = [json.loads(d.body)["type"] for d in deliveries]
    return Shape(provider, payment_id, deliveries, kinds)


def _pay(gw: paygate.Gateway, method: str = "tok_visa") -> str:
    return gw.create_payment(
        order_id="ord_shape", amount=Money.of("20", "USD"), payment_method=method
    ).id


def _three_ds_failing(fake: FakeProvider, gw: paygate.Gateway) -> str:
    pid = _pay(gw, "tok_3ds")
    fake.authenticate(pid, success=False)
    return pid


def _processing_failing(fake: FakeProvider, gw: paygate.Gateway) -> str:
    pid = _pay(gw, "tok_processing")
    fake.settle(pid, success=False)
    return pid


def _refund_failing(fake: FakeProvider, gw: paygate.Gateway) -> str:
    pid = _pay(gw)
    gw.refund(pid, amount=Money.of("5", "USD"))
    failed = gw.refund(pid, amount=Money.of("7", "USD"))
    fake.fail_refund(failed.id)
    return pid


def _pending_refund_failing(fake: FakeProvider, gw: paygate.Gateway) -> str:
    pid = _pay(gw, "tok_refund_pending")
    pending = gw.refund(pid, amount=Money.of("5", "USD"))
    fake.fail_refund(pending.id)
    return pid


def _dispute(won: bool) -> Callable[[FakeProvider, paygate.Gateway], str]:
    def run(fake: FakeProvider, gw: paygate.Gateway) -> str:
        pid = _pay(gw)
        gw.refund(pid, amount=Money.of("3", "USD"))
        fake.resolve_dispute(fake.open_dispute(pid).id, won=won)
        return pid

    return run


def _two_disputes(fake: FakeProvider, gw: paygate.Gateway) -> str:
    pid = _pay(gw)
    fake.resolve_dispute(fake.open_dispute(pid).id, won=True)
    fake.resolve_dispute(fake.open_dispute(pid).id, won=False)
    return pid


SHAPES = {
    name: _script(name, run)
    for name, run in {
        "3-D Secure failing": _three_ds_failing,
        "processing then failing": _processing_failing,
        "a refund failing after it succeeded": _refund_failing,
        "a pending refund failing": _pending_refund_failing,
        "dispute won": _dispute(won=True),
        "dispute lost": _dispute(won=False),
        "two disputes, won then lost": _two_disputes,
    }.items()
}


def test_the_shapes_are_what_they_say() -> None:
    kinds = {name: shape.kinds for name, shape in SHAPES.items()}
    assert kinds["3-D Secure failing"][-2:] == ["payment.action_required", "payment.failed"]
    assert kinds["processing then failing"][-2:] == ["payment.processing", "payment.failed"]
    assert kinds["a refund failing after it succeeded"][-1] == "refund.failed"
    assert "refund.succeeded" in kinds["a refund failing after it succeeded"]
    assert kinds["a pending refund failing"][-1] == "refund.failed"
    assert kinds["dispute won"][-2:] == ["dispute.opened", "dispute.won"]
    assert kinds["dispute lost"][-2:] == ["dispute.opened", "dispute.lost"]
    assert kinds["two disputes, won then lost"][-4:] == [
        "dispute.opened", "dispute.won", "dispute.opened", "dispute.lost",
    ]  # fmt: skip


@st.composite
def plans(draw: st.DrawFn) -> tuple[str, list[Any]]:
    """A shape, and its stream: the deliveries in any order, some again, with syncs."""
    name = draw(st.sampled_from(sorted(SHAPES)))
    deliveries = SHAPES[name].deliveries
    order = draw(st.permutations(range(len(deliveries))))
    again = draw(st.lists(st.sampled_from(range(len(deliveries))), max_size=3))
    stream: list[Any] = [("webhook", i) for i in [*order, *again]]
    for position in draw(st.lists(st.integers(0, len(stream)), max_size=3)):
        stream.insert(position, ("sync", None))
    return name, stream


def _run(gw: Gateway, name: str, stream: list[Any]) -> list[Fact]:
    shape = SHAPES[name]
    heard: list[Fact] = []
    gw.on(*FACT_TYPES)(heard.append)
    for kind, i in stream:
        if kind == "sync":
            gw.get_payment(shape.payment_id)
        else:
            delivery = shape.deliveries[i]
            gw.handle_webhook(delivery.body, delivery.headers)
    return heard


def _check(gw: Gateway, name: str, heard: list[Fact]) -> None:
    shape = SHAPES[name]
    truth = shape.provider.get_payment(shape.payment_id)
    ids = [fact.id for fact in heard]
    assert [i for i, n in Counter(ids).items() if n > 1] == [], f"{name}: a fact told twice"
    assert set(ids) == {fact.id for fact in gw.store.list_facts()}, f"{name}: a fact untold"
    assert gw.store.list_facts(pending=True) == []
    types = [fact.type for fact in heard]
    # causal order: the capture before any news of its refunds and disputes
    if any(t in MONEY for t in types):
        assert E.PAYMENT_SUCCEEDED in types, name
        assert types.index(E.PAYMENT_SUCCEEDED) < min(
            i for i, t in enumerate(types) if t in MONEY
        ), (name, types)
    # the store ends where the provider is
    stored = gw.store.get_payment(shape.payment_id)
    assert stored is not None
    assert (stored.status, stored.state.captured, stored.state.refunded) == (
        truth.status,
        truth.amount_captured.amount if truth.amount_captured else 0,
        truth.amount_refunded.amount if truth.amount_refunded else 0,
    ), (name, types)
    # what the application was told adds up to the provider's final word
    if truth.status is PaymentStatus.FAILED:
        assert types[-1] is E.PAYMENT_FAILED, (name, types)
        assert E.PAYMENT_SUCCEEDED not in types, (name, types)
    if truth.status is PaymentStatus.CHARGED_BACK:
        assert E.DISPUTE_LOST in types, (name, types)
    for refund in truth.refunds:
        told = {fact.type for fact in heard if fact.refund_id == refund.id}
        if refund.status.value in ("failed", "canceled"):
            assert E.REFUND_FAILED in told, (name, refund.id, types)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans())
def test_every_shape_memory(plan: tuple[str, list[Any]]) -> None:
    name, stream = plan
    gw = Gateway(SHAPES[name].provider, open_store("memory://"))
    _check(gw, name, _run(gw, name, stream))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans())
def test_every_shape_sqlite(plan: tuple[str, list[Any]]) -> None:
    name, stream = plan
    with tempfile.TemporaryDirectory() as tmp:
        gw = Gateway(SHAPES[name].provider, open_store(f"sqlite:///{Path(tmp) / 'p.db'}"))
        try:
            _check(gw, name, _run(gw, name, stream))
        finally:
            gw.close()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plan=plans())
def test_every_shape_postgresql(pg_url: str, plan: tuple[str, list[Any]]) -> None:  # noqa: F811
    name, stream = plan
    store = open_store(pg_url)
    try:
        with store._write() as cur:  # type: ignore[attr-defined]  # a clean slate per example
            for table in ("facts", "transitions", "events", "payments", "operations"):
                cur.execute(f"DELETE FROM paygate_{table}")
        gw = Gateway(SHAPES[name].provider, store)
        _check(gw, name, _run(gw, name, stream))
    finally:
        store.close()


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_shape_in_the_providers_order(name: str) -> None:
    """The plain case first: every delivery once, in order, no sync."""
    shape = SHAPES[name]
    gw = Gateway(shape.provider, open_store("memory://"))
    stream = [("webhook", i) for i in range(len(shape.deliveries))]
    _check(gw, name, _run(gw, name, stream))
