"""The Gateway after the first charge, on the fake provider: the SaaS walk-through of
docs/subscriptions.md (trial, activation, upgrade with proration, failed card, dunning,
recovered), subscription webhooks in any order heard once as facts, the store kept, and
disputes answered through the gateway."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

import pytest

import paygate
from paygate import DisputeEvidence, EventType, EvidenceFile, Money
from paygate._facts import FACT_TYPES, Fact
from paygate.errors import NotSupported, ValidationError
from paygate.models import DisputeStatus, InvoiceStatus, SubscriptionStatus
from paygate.providers.fake import FakeProvider

E = EventType
S = SubscriptionStatus


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _setup(store: str = "memory://") -> tuple[FakeProvider, paygate.Gateway, Clock, list[Fact]]:
    clock = Clock()
    fake = FakeProvider(seed=7, clock=clock, webhook_tolerance=10**9)
    fake.define_price("price_basic", Money.of("10", "USD"))
    fake.define_price("price_pro", Money.of("30", "USD"))
    gw = paygate.connect(fake, store=store, clock=clock)
    heard: list[Fact] = []
    gw.on(*FACT_TYPES)(heard.append)
    return fake, gw, clock, heard


def _deliver(fake: FakeProvider, gw: paygate.Gateway, *, shuffle: int | None = None) -> None:
    deliveries = fake.take_webhooks()
    if shuffle is not None:
        deliveries = deliveries + deliveries[::2]  # some twice
        random.Random(shuffle).shuffle(deliveries)
    for delivery in deliveries:
        result = gw.handle_webhook(delivery.body, delivery.headers)
        assert result.acknowledged, result


def test_the_saas_walk_through() -> None:
    fake, gw, clock, heard = _setup()
    customer = gw.create_customer(email="ada@example.com", name="Ada")
    sub = gw.create_subscription(customer_id=customer.id, price_id="price_basic", trial_days=14)
    assert sub.status is S.TRIALING
    record = gw.store.get_subscription(sub.id)  # type: ignore[attr-defined]
    assert record is not None and record.status is S.TRIALING
    fake.notify_trial_will_end(sub.id)
    clock.now += 14 * 86_400
    fake.end_trial(sub.id)
    _deliver(fake, gw)
    assert gw.get_subscription(sub.id).status is S.ACTIVE
    clock.now += 15 * 86_400
    upgraded = gw.change_subscription(sub.id, price_id="price_pro")
    assert upgraded.price_id == "price_pro"
    again = gw.change_subscription(sub.id, price_id="price_pro")  # same arguments: replayed
    assert again.price_id == "price_pro" and fake.calls["change_subscription"] == 1
    fake.set_billing_token(customer.id, "tok_declined")
    clock.now += 15 * 86_400
    fake.bill_period(sub.id)
    _deliver(fake, gw, shuffle=3)
    assert gw.store.get_subscription(sub.id).status is S.PAST_DUE  # type: ignore[attr-defined]
    fake.set_billing_token(customer.id, "tok_visa")
    invoice = fake.get_subscription(sub.id).raw["latest_invoice"]
    paid = gw.retry_invoice(invoice)
    assert paid.status is InvoiceStatus.PAID
    _deliver(fake, gw, shuffle=4)  # the webhooks of what the gateway already learned
    # trial notice, first period paid, upgrade, failed renewal, dunning, recovered
    assert [f.type for f in heard] == [
        E.SUBSCRIPTION_TRIAL_WILL_END, E.INVOICE_PAID, E.SUBSCRIPTION_ACTIVATED,
        E.SUBSCRIPTION_PLAN_CHANGED, E.INVOICE_PAYMENT_FAILED, E.SUBSCRIPTION_PAST_DUE,
        E.INVOICE_PAID, E.SUBSCRIPTION_RECOVERED, E.SUBSCRIPTION_RENEWED,
    ]  # fmt: skip
    assert len({f.id for f in heard}) == len(heard)  # each fact once
    assert all(f.subscription is not None and f.subscription_id == sub.id for f in heard)
    record = gw.store.get_subscription(sub.id)  # type: ignore[attr-defined]
    assert record.status is S.ACTIVE and record.subscription.price_id == "price_pro"
    history = gw.store.subscription_history(sub.id)  # type: ignore[attr-defined]
    assert history[0].previous_status is None and history[-1].new_status is S.ACTIVE
    gw.close()


def test_pause_resume_cancel_and_undo_through_the_gateway() -> None:
    fake, gw, _clock, heard = _setup()
    customer = gw.create_customer(email="b@example.com", name=None)
    sub = gw.create_subscription(customer_id=customer.id, price_id="price_basic")
    assert gw.pause_subscription(sub.id).status is S.PAUSED
    assert gw.resume_subscription(sub.id).status is S.ACTIVE
    assert gw.cancel_subscription(sub.id, at_period_end=True).cancel_at_period_end
    assert not gw.undo_cancel_subscription(sub.id).cancel_at_period_end
    assert [s.id for s in gw.list_subscriptions(customer_id=customer.id)] == [sub.id]
    _deliver(fake, gw, shuffle=1)
    # the answers taught the gateway first; the webhooks add only the invoice's news
    assert [f.type for f in heard] == [
        E.SUBSCRIPTION_ACTIVATED, E.SUBSCRIPTION_PAUSED, E.SUBSCRIPTION_RESUMED,
        E.SUBSCRIPTION_CANCEL_SCHEDULED, E.SUBSCRIPTION_CANCEL_UNSCHEDULED, E.INVOICE_PAID,
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="proration must be"):
        gw.change_subscription(sub.id, quantity=2, proration="later")  # type: ignore[arg-type]
    gw.close()


def test_subscription_webhooks_in_any_order_are_heard_once() -> None:
    for seed in range(5):
        fake, gw, clock, heard = _setup()
        customer = gw.create_customer(email="c@example.com", name=None)
        sub = fake.create_subscription(customer_id=customer.id, price_id="price_basic",
                                       idempotency_key=f"s{seed}")  # fmt: skip
        clock.now += 31 * 86_400
        fake.bill_period(sub.id)
        fake.cancel_subscription(sub.id)
        _deliver(fake, gw, shuffle=seed)
        record = gw.store.get_subscription(sub.id)  # type: ignore[attr-defined]
        provider_side = dataclasses.replace(fake.get_subscription(sub.id), raw=None)
        assert record.subscription == provider_side and record.status is S.CANCELED
        ids = [f.id for f in heard]
        assert len(ids) == len(set(ids))
        assert Counter(f.type for f in heard)[E.SUBSCRIPTION_CANCELED] == 1
        assert Counter(f.type for f in heard)[E.INVOICE_PAID] == 2
        gw.close()


def test_disputes_through_the_gateway() -> None:
    fake, gw, _clock, heard = _setup()
    paid = gw.create_payment(order_id="o1", amount=Money.of("50", "USD"), payment_method="tok_visa")
    dispute = fake.open_dispute(paid.id, reason="product_not_received")
    _deliver(fake, gw)
    assert gw.get_dispute(dispute.id).status is DisputeStatus.OPEN
    assert [d.id for d in gw.list_disputes(payment_id=paid.id)] == [dispute.id]
    evidence = DisputeEvidence(explanation="Signed for.", tracking_number="1Z9",
                               files=(EvidenceFile("pod.pdf", b"%PDF pod"),))  # fmt: skip
    assert gw.submit_dispute_evidence(dispute.id, evidence).status is DisputeStatus.UNDER_REVIEW
    fake.decide_dispute(dispute.id)
    _deliver(fake, gw)
    assert gw.get_payment(paid.id).status.value == "succeeded"
    assert [f.type for f in heard if f.type.value.startswith("dispute")] == [
        E.DISPUTE_OPENED, E.DISPUTE_WON,
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="DisputeEvidence"):
        gw.submit_dispute_evidence(dispute.id, {"explanation": "x"})  # type: ignore[arg-type]
    gw.close()


def test_a_provider_without_proration_says_so_through_the_gateway() -> None:
    class NoProration(FakeProvider):
        def change_subscription(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def,override]
            raise NotSupported("square cannot prorate", provider="fake", code="not_supported")

    gw = paygate.connect(NoProration(seed=1), store="memory://")
    with pytest.raises(NotSupported, match="cannot prorate"):
        gw.change_subscription("sub_x", price_id="price_pro")
    gw.close()


def test_the_docs_walk_through_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    import re
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "subscriptions.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", page, re.S))
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/subscriptions.md", "exec"), namespace)  # our own docs page
    out = capsys.readouterr().out
    assert "email: please update your card for sub_" in out
    assert "welcome back sub_" in out
    assert "active price_pro" in out
    assert "past_due -> active ('subscription.recovered', 'subscription.renewed')" in out
    gw = namespace["gw"]
    gw.close()  # type: ignore[attr-defined]


def test_a_store_without_subscriptions_keeps_the_old_behaviour() -> None:
    """A custom store that predates subscriptions: subscription events reach their
    handlers as events (as before), the calls work, nothing is kept."""
    from paygate.stores.memory import MemoryStore

    class PaymentsOnly(MemoryStore):
        save_subscription = None  # type: ignore[assignment]

    fake = FakeProvider(seed=3)
    gw = paygate.connect(fake, store=PaymentsOnly())
    events: list[object] = []
    gw.on(E.SUBSCRIPTION_CREATED, E.INVOICE_PAID)(events.append)
    customer = gw.create_customer(email="d@example.com", name=None)
    sub = gw.create_subscription(customer_id=customer.id, price_id="price_basic")
    assert gw.get_subscription(sub.id).status is S.ACTIVE
    results = [gw.handle_webhook(d.body, d.headers) for d in fake.take_webhooks()]
    assert {r.outcome for r in results} == {"no_transition"}
    assert [type(e).__name__ for e in events] == ["WebhookEvent", "WebhookEvent"]
    gw.close()
