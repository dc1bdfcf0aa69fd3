"""Square: a payment's refunds fetched by id (GetPaymentRefund for each of its
``refund_ids``), get_refund, refund failures, dispute events naming their dispute.

The real adapter and SDK run against ``SquareMockAPI``; every call is validated against
Square's OpenAPI spec by the shared fixtures (where the reference is present).
"""

# ruff: noqa: F811  (the shared fixtures are imported from tests.test_square_spec)
from __future__ import annotations

import pytest

from paygate import EventType, MalformedPayload, Money, NotFound, PaymentStatus, RefundStatus
from paygate.providers._square_mock import SquareMockAPI
from paygate.providers.square import SquareProvider, normalize_event
from paygate.state import PaymentState, Trigger, apply_all, events_for_answer
from tests.test_square_spec import square, square_api  # noqa: F401


def _paid(square: SquareProvider, amount: str = "40.00") -> str:
    payment = square.create_payment(
        order_id="ord_1",
        amount=Money.of(amount, "USD"),
        payment_method="cnon:card-nonce-ok",
        idempotency_key="ord_1:create",
    )
    return payment.id


def _refund_gets(api: SquareMockAPI) -> list[str]:
    return [c.path for c in api.calls if c.method == "GET" and c.path.startswith("/v2/refunds/")]


def test_get_payment_lists_each_refund_by_id(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    payment_id = _paid(square)
    pending = square.refund_payment(
        payment_id, amount=Money.of("10.00", "USD"), idempotency_key="r1"
    )
    done = square.refund_payment(payment_id, amount=Money.of("5.00", "USD"), idempotency_key="r2")
    square_api.complete_refund(done.id)

    seen = square.get_payment(payment_id)
    assert _refund_gets(square_api) == [f"/v2/refunds/{pending.id}", f"/v2/refunds/{done.id}"]
    assert [(r.id, r.status) for r in seen.refunds] == [
        (pending.id, RefundStatus.PENDING),
        (done.id, RefundStatus.SUCCEEDED),
    ]
    assert all(r.payment_id == payment_id and r.order_id == "ord_1" for r in seen.refunds)
    # the completed refund only: the pending one may still be rejected
    assert seen.amount_refunded == Money.of("5.00", "USD")
    assert seen.status is PaymentStatus.PARTIALLY_REFUNDED

    stored = PaymentState(PaymentStatus.SUCCEEDED, amount=4000, captured=4000)
    learned = events_for_answer(stored, seen)
    assert [(e.trigger, e.ref) for e in learned if e.ref] == [(Trigger.REFUNDED, done.id)]
    assert apply_all(stored, learned).refunded == 500


def test_a_completed_refund_that_fails_is_learned(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    payment_id = _paid(square)
    refund = square.refund_payment(payment_id, idempotency_key="r1")
    square_api.complete_refund(refund.id)
    counted = PaymentState(
        PaymentStatus.REFUNDED,
        amount=4000,
        captured=4000,
        refunded=4000,
        refund_ids=frozenset({refund.id}),
    )
    square_api.complete_refund(refund.id, "FAILED")
    seen = square.get_payment(payment_id)
    assert seen.status is PaymentStatus.SUCCEEDED
    assert seen.amount_refunded == Money.of("0", "USD")
    assert seen.refunds[0].status is RefundStatus.FAILED
    learned = events_for_answer(counted, seen)
    assert [(e.trigger, e.ref) for e in learned if e.ref] == [(Trigger.REFUND_REVERSED, refund.id)]
    assert apply_all(counted, learned).status is PaymentStatus.SUCCEEDED
    # and its webhook says so
    deliveries = square_api.take_webhooks()
    last = square.parse_webhook(deliveries[-2].body, deliveries[-2].headers)
    assert last.type is EventType.REFUND_FAILED
    assert last.object.status is RefundStatus.FAILED  # type: ignore[union-attr]


def test_an_unrefunded_payment_costs_one_request(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    payment_id = _paid(square)
    before = len(square_api.calls)
    assert square.get_payment(payment_id).refunds == ()
    assert len(square_api.calls) == before + 1


def test_get_refund(square: SquareProvider, square_api: SquareMockAPI) -> None:
    payment_id = _paid(square)
    refund = square.refund_payment(payment_id, amount=Money.of("1.00", "USD"), idempotency_key="r")
    square_api.complete_refund(refund.id, "REJECTED")
    fetched = square.get_refund(refund.id)
    assert (fetched.id, fetched.payment_id, fetched.amount) == (
        refund.id,
        payment_id,
        Money.of("1.00", "USD"),
    )
    assert fetched.status is RefundStatus.FAILED
    assert fetched.failure_reason == "REJECTED"
    with pytest.raises(NotFound):
        square.get_refund("NoSuchRefund")


def test_dispute_events_name_their_dispute() -> None:
    dispute = {
        "state": "WON",
        "amount_money": {"amount": 2000, "currency": "USD"},
        "disputed_payment": {"payment_id": "PAY1"},
    }
    event = {
        "merchant_id": "M1",
        "type": "dispute.state.updated",
        "event_id": "evt-1",
        "created_at": "2026-01-01T00:00:00Z",
        "data": {"type": "dispute", "id": "DSP1", "object": {"object": dispute}},
    }
    # the object without its own id: the event's data.id names it
    normalized = normalize_event(event)
    assert normalized.type is EventType.DISPUTE_WON
    assert normalized.object.id == "DSP1"  # type: ignore[union-attr]
    with_own = {**dispute, "id": "DSP2"}
    event["data"] = {"type": "dispute", "id": "DSP2", "object": {"object": with_own}}
    assert normalize_event(event).object.id == "DSP2"  # type: ignore[union-attr]
    event["data"] = {"type": "dispute", "object": {"object": dispute}}
    with pytest.raises(MalformedPayload, match="without an id"):
        normalize_event(event)
