"""The fake provider's refund lifecycle (pending, settled, failed after success), its answers
listing refunds, and disputes told apart by their own ids."""

from __future__ import annotations

import random
from typing import Any

import pytest

from paygate import (
    DisputeStatus,
    EventType,
    InvalidRequest,
    Money,
    NotFound,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    WebhookEvent,
)
from paygate.providers.fake import TOKEN_OUTCOMES, FakeProvider
from paygate.state import Trigger, apply_all, event_from_webhook, events_for_answer, state_of
from paygate.testing import FakeClock


def usd(value: str) -> Money:
    return Money.of(value, "USD")


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(seed=7, clock=FakeClock(1_700_000_000))


def pay(fake: FakeProvider, token: str = "tok_visa", amount: str = "40.00") -> Payment:
    return fake.create_payment(
        order_id=f"ord_{token}",
        amount=usd(amount),
        payment_method=token,
        idempotency_key=f"key-{token}",
    )


def events(fake: FakeProvider) -> list[WebhookEvent]:
    return [fake.parse_webhook(d.body, d.headers) for d in fake.take_webhooks()]


def test_the_pending_refund_token_is_documented() -> None:
    assert TOKEN_OUTCOMES["tok_refund_pending"] == "refund_pending"
    import paygate.providers.fake as module

    assert module.__doc__ is not None and "tok_refund_pending" in module.__doc__


def test_a_pending_refund_holds_its_amount_until_settled(fake: FakeProvider) -> None:
    payment = pay(fake, "tok_refund_pending")
    assert payment.status is PaymentStatus.SUCCEEDED
    fake.take_webhooks()
    refund = fake.refund_payment(payment.id, amount=usd("15.00"), idempotency_key="r1")
    assert refund.status is RefundStatus.PENDING
    [created] = events(fake)
    assert created.type is EventType.REFUND_CREATED
    assert isinstance(created.object, Refund) and created.object.status is RefundStatus.PENDING
    assert event_from_webhook(created) is None  # a pending refund moves nothing

    seen = fake.get_payment(payment.id)
    assert seen.status is PaymentStatus.SUCCEEDED  # not counted while pending
    assert seen.amount_refunded == usd("0")
    assert [(r.id, r.status) for r in seen.refunds] == [(refund.id, RefundStatus.PENDING)]
    # the pending amount is held: only 25.00 is left to refund
    with pytest.raises(InvalidRequest):
        fake.refund_payment(payment.id, amount=usd("25.01"), idempotency_key="r2")
    assert fake.get_refund(refund.id).status is RefundStatus.PENDING

    settled = fake.settle_refund(refund.id)
    assert settled.status is RefundStatus.SUCCEEDED
    [succeeded] = events(fake)
    assert succeeded.type is EventType.REFUND_SUCCEEDED
    assert isinstance(succeeded.object, Refund) and succeeded.object.id == refund.id
    after = fake.get_payment(payment.id)
    assert after.status is PaymentStatus.PARTIALLY_REFUNDED
    assert after.amount_refunded == usd("15.00")
    assert fake.get_refund(refund.id).status is RefundStatus.SUCCEEDED
    with pytest.raises(InvalidRequest, match="not pending"):
        fake.settle_refund(refund.id)


def test_a_refund_that_fails_after_succeeding_gives_the_money_back(fake: FakeProvider) -> None:
    payment = pay(fake)
    first = fake.refund_payment(payment.id, amount=usd("10.00"), idempotency_key="r1")
    second = fake.refund_payment(payment.id, idempotency_key="r2")  # the other 30.00
    assert fake.get_payment(payment.id).status is PaymentStatus.REFUNDED
    fake.take_webhooks()

    failed = fake.fail_refund(second.id, reason="expired_or_canceled_card")
    assert failed.status is RefundStatus.FAILED
    assert failed.failure_reason == "expired_or_canceled_card"
    [event] = events(fake)
    assert event.type is EventType.REFUND_FAILED
    assert isinstance(event.object, Refund)
    assert (event.object.id, event.object.status) == (second.id, RefundStatus.FAILED)
    assert event.object.amount == usd("30.00")

    now = fake.get_payment(payment.id)
    assert now.status is PaymentStatus.PARTIALLY_REFUNDED
    assert now.amount_refunded == usd("10.00")
    assert {r.id: r.status for r in now.refunds} == {
        first.id: RefundStatus.SUCCEEDED,
        second.id: RefundStatus.FAILED,
    }
    # the returned amount can be refunded again
    again = fake.refund_payment(payment.id, amount=usd("30.00"), idempotency_key="r3")
    assert again.status is RefundStatus.SUCCEEDED
    with pytest.raises(InvalidRequest, match="cannot be failed"):
        fake.fail_refund(second.id)


def test_the_state_machine_follows_the_fakes_refund_webhooks(fake: FakeProvider) -> None:
    """Folding the fake's own webhooks gives the fake's own final state."""
    payment = pay(fake)
    refund = fake.refund_payment(payment.id, idempotency_key="r1")
    fake.fail_refund(refund.id)
    steps = [event_from_webhook(e) for e in events(fake)]
    state = apply_all(state_of(payment), [s for s in steps if s is not None])
    final = fake.get_payment(payment.id)
    assert state.status is final.status is PaymentStatus.SUCCEEDED
    assert state.refunded == final.amount_refunded.amount == 0  # type: ignore[union-attr]
    assert Trigger.REFUND_REVERSED in [s.trigger for s in steps if s is not None]


def test_a_pending_refund_can_fail_or_be_canceled(fake: FakeProvider) -> None:
    payment = pay(fake, "tok_refund_pending")
    one = fake.refund_payment(payment.id, amount=usd("5.00"), idempotency_key="r1")
    two = fake.refund_payment(payment.id, amount=usd("5.00"), idempotency_key="r2")
    fake.take_webhooks()
    assert fake.fail_refund(one.id).status is RefundStatus.FAILED
    canceled = fake.fail_refund(two.id, canceled=True)
    assert canceled.status is RefundStatus.CANCELED and canceled.failure_reason is None
    reported = events(fake)
    assert [e.type for e in reported] == [EventType.REFUND_FAILED, EventType.REFUND_FAILED]
    assert [e.object.status for e in reported] == [  # type: ignore[union-attr]
        RefundStatus.FAILED,
        RefundStatus.CANCELED,
    ]
    # nothing was ever counted: the payment is as it was, all of it refundable again
    assert fake.get_payment(payment.id).amount_refunded == usd("0")
    settled = fake.refund_payment(payment.id, idempotency_key="r3")
    assert settled.amount == usd("40.00")


def test_a_succeeded_refund_cannot_be_canceled(fake: FakeProvider) -> None:
    payment = pay(fake)
    refund = fake.refund_payment(payment.id, idempotency_key="r1")
    with pytest.raises(InvalidRequest, match="cannot be canceled"):
        fake.fail_refund(refund.id, canceled=True)


def test_get_refund(fake: FakeProvider) -> None:
    payment = pay(fake)
    refund = fake.refund_payment(payment.id, amount=usd("1.00"), idempotency_key="r1")
    fetched = fake.get_refund(refund.id)
    assert fetched == refund
    assert fake.calls["get_refund"] == 1
    with pytest.raises(NotFound):
        fake.get_refund("re_nope")
    with pytest.raises(NotFound):
        fake.get_refund(payment.id)  # a payment id names no refund


def test_answers_list_refunds_so_a_missed_webhook_is_learned(fake: FakeProvider) -> None:
    payment = pay(fake)
    stored = state_of(payment)  # what the application knew before the refund
    refund = fake.refund_payment(payment.id, amount=usd("15.00"), idempotency_key="r1")
    fake.take_webhooks()  # the refund webhook is lost
    answer = fake.get_payment(payment.id)
    learned = events_for_answer(stored, answer)
    assert [(e.trigger, e.amount, e.ref) for e in learned if e.trigger is Trigger.REFUNDED] == [
        (Trigger.REFUNDED, 1500, refund.id)
    ]
    assert apply_all(stored, learned).status is PaymentStatus.PARTIALLY_REFUNDED


def test_a_refund_failing_during_a_dispute_counts_when_it_is_won(fake: FakeProvider) -> None:
    payment = pay(fake)
    refund = fake.refund_payment(payment.id, amount=usd("10.00"), idempotency_key="r1")
    dispute = fake.open_dispute(payment.id)
    fake.fail_refund(refund.id)
    assert fake.get_payment(payment.id).status is PaymentStatus.DISPUTED
    fake.resolve_dispute(dispute.id, won=True)
    back = fake.get_payment(payment.id)
    assert back.status is PaymentStatus.SUCCEEDED  # by its amounts: nothing refunded now
    assert back.amount_refunded == usd("0")


@pytest.mark.parametrize("seed", range(5))
def test_two_disputes_on_one_payment_in_any_order(fake: FakeProvider, seed: int) -> None:
    """A dispute won, then a second one lost: each webhook names its own dispute, so the
    deliveries can be told apart whatever order they arrive in."""
    payment = pay(fake)
    fake.take_webhooks()
    first = fake.open_dispute(payment.id, reason="product_not_received")
    fake.resolve_dispute(first.id, won=True)
    assert fake.get_payment(payment.id).status is PaymentStatus.SUCCEEDED
    second = fake.open_dispute(payment.id, reason="fraudulent", amount=usd("25.00"))
    fake.resolve_dispute(second.id, won=False)
    assert first.id != second.id
    assert fake.get_payment(payment.id).status is PaymentStatus.CHARGED_BACK

    deliveries = fake.take_webhooks()
    random.Random(seed).shuffle(deliveries)
    seen: dict[str, list[tuple[EventType, DisputeStatus]]] = {}
    for delivery in deliveries:
        event = fake.parse_webhook(delivery.body, delivery.headers)
        dispute: Any = event.object
        assert dispute.payment_id == payment.id
        seen.setdefault(dispute.id, []).append((event.type, dispute.status))
    assert sorted(seen[first.id]) == sorted(
        [(EventType.DISPUTE_OPENED, DisputeStatus.OPEN), (EventType.DISPUTE_WON, DisputeStatus.WON)]
    )
    assert sorted(seen[second.id]) == sorted(
        [
            (EventType.DISPUTE_OPENED, DisputeStatus.OPEN),
            (EventType.DISPUTE_LOST, DisputeStatus.LOST),
        ]
    )
    assert fake.get_dispute(second.id).amount == usd("25.00")
