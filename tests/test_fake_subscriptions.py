"""The fake provider after the first charge: trials, plan changes with proration, pauses,
cancel at period end and its undo, dunning, disputes answered with evidence -- and its
webhooks into the store through the subscription state machine."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from paygate._subscriptions import news_from_webhook, record_news
from paygate.errors import ProviderError, ValidationError
from paygate.models import (
    DisputeEvidence,
    DisputeReason,
    DisputeStatus,
    EventType,
    EvidenceFile,
    InvoiceStatus,
    PaymentStatus,
    SubscriptionStatus,
)
from paygate.money import Money
from paygate.providers.fake import FakeProvider
from paygate.stores.memory import MemoryStore

S = SubscriptionStatus
E = EventType


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock) -> FakeProvider:
    provider = FakeProvider(seed=20, clock=clock, webhook_tolerance=10**9)
    provider.define_price("price_basic", Money.of("10", "USD"))
    provider.define_price("price_pro", Money.of("30", "USD"))
    return provider


def _customer(fake: FakeProvider) -> str:
    return fake.create_customer(email="a@example.com", name="A", idempotency_key="c1").id


def _drain(fake: FakeProvider, store: MemoryStore, now: float) -> list[EventType]:
    """Deliver the fake's webhooks to the store; the facts recorded, in order."""
    before = len(store.list_facts())
    for delivery in fake.take_webhooks():
        event = fake.parse_webhook(delivery.body, delivery.headers)
        news = news_from_webhook(event)
        if news is not None:
            record_news(store, news, source="webhook", now=now, event=event,
                        fetch=fake.get_subscription)  # fmt: skip
    return [f.type for f in store.list_facts()[before:]]


def test_the_saas_walk_through(fake: FakeProvider, clock: Clock) -> None:
    store = MemoryStore()
    customer = _customer(fake)
    sub = fake.create_subscription(customer_id=customer, price_id="price_basic",
                                   idempotency_key="s1", trial_days=14)  # fmt: skip
    assert sub.status is S.TRIALING and sub.trial_end is not None
    assert _drain(fake, store, clock.now) == []  # created: the app's own doing
    fake.notify_trial_will_end(sub.id)
    assert _drain(fake, store, clock.now) == [E.SUBSCRIPTION_TRIAL_WILL_END]
    clock.now += 14 * 86_400
    active = fake.end_trial(sub.id)
    assert active.status is S.ACTIVE
    assert _drain(fake, store, clock.now) == [E.INVOICE_PAID, E.SUBSCRIPTION_ACTIVATED]
    # upgrade halfway through the period: half of the difference on the next invoice
    clock.now += 15 * 86_400
    upgraded = fake.change_subscription(sub.id, price_id="price_pro",
                                        idempotency_key="up1")  # fmt: skip
    assert upgraded.price_id == "price_pro"
    assert fake._objects[sub.id]["pending_proration"] == 1000  # (30 - 10) x 1/2
    assert _drain(fake, store, clock.now) == [E.SUBSCRIPTION_PLAN_CHANGED]
    # the card fails at renewal: past due, then the customer fixes it and the retry pays
    fake.set_billing_token(customer, "tok_declined")
    clock.now += 15 * 86_400
    assert fake.bill_period(sub.id).status is S.PAST_DUE
    assert _drain(fake, store, clock.now) == [E.INVOICE_PAYMENT_FAILED, E.SUBSCRIPTION_PAST_DUE]
    invoice_id = fake._objects[sub.id]["latest_invoice"]
    assert fake.get_invoice(invoice_id).amount_due == Money.of("40", "USD")  # 30 + 10 prorated
    fake.set_billing_token(customer, "tok_visa")
    paid = fake.retry_invoice(invoice_id, idempotency_key="retry1")
    assert paid.status is InvoiceStatus.PAID and paid.attempt_count == 2
    assert fake.get_subscription(sub.id).status is S.ACTIVE
    assert _drain(fake, store, clock.now) == [
        E.INVOICE_PAID, E.SUBSCRIPTION_RECOVERED, E.SUBSCRIPTION_RENEWED,
    ]  # fmt: skip
    record = store.get_subscription(sub.id)
    assert record is not None
    assert record.subscription == dataclasses.replace(fake.get_subscription(sub.id), raw=None)
    assert record.status is S.ACTIVE and record.subscription.price_id == "price_pro"


def test_pause_resume_cancel_at_period_end_and_undo(fake: FakeProvider, clock: Clock) -> None:
    store = MemoryStore()
    sub = fake.create_subscription(customer_id=_customer(fake), price_id="price_basic",
                                   idempotency_key="s2")  # fmt: skip
    _drain(fake, store, clock.now)
    assert fake.pause_subscription(sub.id).status is S.PAUSED
    assert fake.resume_subscription(sub.id).status is S.ACTIVE
    assert fake.cancel_subscription(sub.id, at_period_end=True).cancel_at_period_end
    assert not fake.undo_cancel_subscription(sub.id).cancel_at_period_end
    fake.cancel_subscription(sub.id, at_period_end=True)
    assert _drain(fake, store, clock.now) == [
        E.SUBSCRIPTION_PAUSED, E.SUBSCRIPTION_RESUMED, E.SUBSCRIPTION_CANCEL_SCHEDULED,
        E.SUBSCRIPTION_CANCEL_UNSCHEDULED, E.SUBSCRIPTION_CANCEL_SCHEDULED,
    ]  # fmt: skip
    clock.now += 31 * 86_400
    assert fake.bill_period(sub.id).status is S.CANCELED
    assert _drain(fake, store, clock.now) == [E.SUBSCRIPTION_CANCELED]
    with pytest.raises(ProviderError, match="canceled"):
        fake.resume_subscription(sub.id)
    assert [s.id for s in fake.list_subscriptions(customer_id=sub.customer_id)] == [sub.id]


def test_always_invoice_bills_the_difference_now_and_none_bills_nothing(
    fake: FakeProvider, clock: Clock
) -> None:
    sub = fake.create_subscription(customer_id=_customer(fake), price_id="price_basic",
                                   idempotency_key="s3")  # fmt: skip
    first_invoice = fake._objects[sub.id]["latest_invoice"]
    clock.now += 15 * 86_400
    fake.change_subscription(sub.id, quantity=3, proration="always_invoice", idempotency_key="q")
    prorated = fake.get_invoice(fake._objects[sub.id]["latest_invoice"])
    assert prorated.id != first_invoice and prorated.amount_paid == Money.of("10", "USD")
    fake.change_subscription(sub.id, quantity=1, proration="none", idempotency_key="q2")
    assert fake._objects[sub.id]["pending_proration"] == 0
    with pytest.raises(ValidationError, match="proration must be"):
        fake.change_subscription(sub.id, quantity=2, proration="later",  # type: ignore[arg-type]
                                 idempotency_key="q3")  # fmt: skip
    with pytest.raises(ValidationError, match="price_id or quantity"):
        fake.change_subscription(sub.id, idempotency_key="q4")


def test_trial_arguments_are_checked(fake: FakeProvider, clock: Clock) -> None:
    customer = _customer(fake)
    with pytest.raises(ValidationError, match="not both"):
        fake.create_subscription(customer_id=customer, price_id="price_basic", idempotency_key="t",
                                 trial_days=3, trial_end=datetime.now(timezone.utc))  # fmt: skip
    past = datetime.fromtimestamp(clock.now, tz=timezone.utc) - timedelta(days=1)
    with pytest.raises(ValidationError, match="not in the future"):
        fake.create_subscription(customer_id=customer, price_id="price_basic",
                                 idempotency_key="t2", trial_end=past)  # fmt: skip


def _disputed(fake: FakeProvider) -> tuple[str, str]:
    paid = fake.create_payment(order_id="o1", amount=Money.of("50", "USD"),
                               payment_method="tok_visa", idempotency_key="p1")  # fmt: skip
    dispute = fake.open_dispute(paid.id, reason="product_not_received")
    assert dispute.reason_code is DisputeReason.PRODUCT_NOT_RECEIVED
    assert dispute.evidence_due_by is not None
    return paid.id, dispute.id


def test_a_dispute_answered_with_evidence_is_won(fake: FakeProvider) -> None:
    payment_id, dispute_id = _disputed(fake)
    evidence = DisputeEvidence(
        explanation="Delivered on 3 May, signed for.",
        shipping_carrier="UPS", tracking_number="1Z999",
        files=(EvidenceFile("pod.pdf", b"%PDF-1.4 proof", kind="shipping_documentation"),),
    )  # fmt: skip
    staged = fake.submit_dispute_evidence(dispute_id, evidence, submit=False)
    assert staged.status is DisputeStatus.OPEN and not staged.evidence_submitted
    sent = fake.submit_dispute_evidence(dispute_id, evidence)
    assert sent.status is DisputeStatus.UNDER_REVIEW and sent.evidence_submitted
    assert fake.decide_dispute(dispute_id).status is DisputeStatus.WON
    assert fake.get_payment(payment_id).status is PaymentStatus.SUCCEEDED
    assert [d.id for d in fake.list_disputes(payment_id=payment_id)] == [dispute_id]


def test_a_dispute_without_proof_is_lost_and_an_accepted_one_too(fake: FakeProvider) -> None:
    payment_id, dispute_id = _disputed(fake)
    fake.submit_dispute_evidence(dispute_id, DisputeEvidence(explanation="We think it arrived."))
    assert fake.decide_dispute(dispute_id).status is DisputeStatus.LOST
    assert fake.get_payment(payment_id).status is PaymentStatus.CHARGED_BACK
    other = fake.create_payment(order_id="o2", amount=Money.of("5", "USD"),
                                payment_method="tok_visa", idempotency_key="p2")  # fmt: skip
    accepted = fake.accept_dispute(fake.open_dispute(other.id).id)
    assert accepted.status is DisputeStatus.LOST
    with pytest.raises(ProviderError, match="takes no more answers"):
        fake.accept_dispute(accepted.id)


def test_evidence_is_checked_before_anything_is_sent(fake: FakeProvider) -> None:
    with pytest.raises(ValidationError, match="empty"):
        DisputeEvidence()
    with pytest.raises(ValidationError, match="content_type"):
        EvidenceFile("x.exe", b"MZ", content_type="application/octet-stream")
    with pytest.raises(ValidationError, match="non-empty str"):
        DisputeEvidence(explanation="  ")
    assert "secret-bytes" not in repr(EvidenceFile("a.pdf", b"secret-bytes"))


def test_renewals_charge_a_saved_default_payment_method(fake: FakeProvider, clock: Clock) -> None:
    """A customer's default set with set_default_payment_method (a saved pm_ id, issue 19)
    pays the subscription's periods as the card it was saved from (issue 20)."""
    customer = _customer(fake)
    saved = fake.create_setup(customer_id=customer, idempotency_key="s1", payment_method="tok_visa")
    assert saved.payment_method_id is not None
    fake.set_default_payment_method(customer, saved.payment_method_id)
    sub = fake.create_subscription(customer_id=customer, price_id="price_basic",
                                   idempotency_key="sub-saved")  # fmt: skip
    assert sub.status is SubscriptionStatus.ACTIVE
    clock.now += 30 * 86_400
    renewed = fake.bill_period(sub.id)
    assert renewed.status is SubscriptionStatus.ACTIVE
    invoice = fake.get_invoice(fake._objects[sub.id]["latest_invoice"])
    assert invoice.status is InvoiceStatus.PAID
