"""The Gateway's whole flow on Stripe, over mocked HTTP (responses) and signed webhooks.

Order first, idempotent creation, retries with the same key, webhooks delivered twice,
partial then full refunds reported by both the API and webhooks, a dispute, manual capture,
a 3-D Secure return and a checkout whose payment first shows up through a webhook.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses

import paygate
from paygate import CardDeclined, EventType, LineItem, Money, PaymentStatus
from paygate.gateway import Gateway, RetryPolicy
from paygate.providers._stripe_webhook import sign
from paygate.providers.stripe import StripeProvider
from tests.fixtures.stripe import event_body, resource

API = "https://api.stripe.com/v1"
SECRET = "whsec_gateway_flow"
KEY = "sk_test_gateway_flow"


@pytest.fixture
def api(reference_dir: Path) -> Iterator[responses.RequestsMock]:
    # The bodies come from the reference fixtures: skip before any response is registered,
    # or the "all requests fired" check would turn a skip into an error.
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def gw() -> Gateway:
    provider = StripeProvider(api_key=KEY, webhook_secret=SECRET, max_retries=2)
    gateway = paygate.connect(provider, store="memory://")
    # the provider's max_retries sets the attempts; no real sleeping in tests
    assert gateway.retry.attempts == 3
    gateway.retry = RetryPolicy(attempts=3, sleep=lambda _: None)
    return gateway


def intent(pid: str = "pi_flow_1", order: str = "ord_1", **fields: Any) -> dict[str, Any]:
    base = {
        "id": pid,
        "amount": 1999,
        "currency": "usd",
        "status": "succeeded",
        "amount_received": 1999,
        "amount_capturable": 0,
        "last_payment_error": None,
        "next_action": None,
        "metadata": {"order_id": order},
    }
    return resource("payment_intent", **{**base, **fields})


def refund(rid: str, amount: int, pid: str = "pi_flow_1", **fields: Any) -> dict[str, Any]:
    base = {
        "id": rid,
        "amount": amount,
        "currency": "usd",
        "payment_intent": pid,
        "status": "succeeded",
    }
    return resource("refund", **{**base, **fields})


def webhook(event_type: str, obj: dict[str, Any], event_id: str) -> tuple[bytes, dict[str, str]]:
    now = int(time.time())
    body = event_body(event_type, obj, event_id=event_id, created=now)
    return body, {"Stripe-Signature": sign(body, SECRET, now), "Content-Type": "application/json"}


def fields(call: Any) -> dict[str, str]:
    body = call.request.body or ""
    return dict(parse_qsl(body.decode() if isinstance(body, bytes) else body))


def test_pay_webhook_twice_refund_partial_then_full(
    gw: Gateway, api: responses.RequestsMock
) -> None:
    seen: list[Any] = []
    gw.on(EventType.PAYMENT_SUCCEEDED)(seen.append)

    api.post(f"{API}/payment_intents", json=intent())
    payment = gw.create_payment(
        order_id="ord_1", amount=Money.of("19.99", "USD"), payment_method="pm_card_visa"
    )
    assert payment.status is PaymentStatus.SUCCEEDED and payment.order_id == "ord_1"
    create = api.calls[0]
    key = create.request.headers["Idempotency-Key"]
    assert key and len(key) <= 255  # derived by the Gateway from the order; sent as is
    assert fields(create)["metadata[order_id]"] == "ord_1"
    assert fields(create)["amount"] == "1999"

    # the same call again: no second request, no second charge
    again = gw.create_payment(
        order_id="ord_1", amount=Money.of("19.99", "USD"), payment_method="pm_card_visa"
    )
    assert again.id == payment.id and len(api.calls) == 1
    with pytest.raises(paygate.IdempotencyConflict):
        gw.create_payment(
            order_id="ord_1", amount=Money.of("20.00", "USD"), payment_method="pm_card_visa"
        )
    assert len(api.calls) == 1

    # the handler was told the fact once, by the API answer; the webhook arrives twice: the
    # first finds the payment already succeeded (nothing new to tell), the second is a
    # duplicate
    assert [(f.id, f.source) for f in seen] == [("stripe:pi_flow_1:payment.succeeded", "api")]
    body, headers = webhook("payment_intent.succeeded", intent(), "evt_succ")
    first = gw.handle_webhook(body, headers)
    second = gw.handle_webhook(body, headers)
    assert not first.duplicate and first.status is PaymentStatus.SUCCEEDED
    assert second.duplicate and not second.changed
    assert len(seen) == 1

    # partial refund through the API, then its webhooks (refund.created and charge.refunded)
    api.post(f"{API}/refunds", json=refund("re_1", 500))
    r1 = gw.refund(payment.id, amount=Money.of("5.00", "USD"))
    assert fields(api.calls[1]) == {"payment_intent": "pi_flow_1", "amount": "500"}
    assert api.calls[1].request.headers["Idempotency-Key"]
    assert r1.id == "re_1"
    assert gw.payment_for_order("ord_1").status is PaymentStatus.PARTIALLY_REFUNDED  # type: ignore[union-attr]

    created = gw.handle_webhook(*webhook("refund.created", refund("re_1", 500), "evt_re1"))
    assert created.outcome == "unchanged"  # counted once: the API answer already did
    charge = resource(
        "charge",
        id="ch_1",
        payment_intent="pi_flow_1",
        amount=1999,
        amount_captured=1999,
        amount_refunded=500,
        currency="usd",
    )
    informed = gw.handle_webhook(*webhook("charge.refunded", charge, "evt_ch1"))
    assert informed.outcome == "no_transition"
    stored = gw.payment_for_order("ord_1")
    assert stored is not None and stored.amount_refunded == Money(500, "USD")

    # the rest: a refund first reported pending, then succeeded by webhook
    api.post(f"{API}/refunds", json=refund("re_2", 1499, status="pending"))
    r2 = gw.refund(payment.id)  # None = the rest
    # the rest as the Gateway counted it, sent explicitly: the same body on every retry
    assert fields(api.calls[2]) == {"payment_intent": "pi_flow_1", "amount": "1499"}
    assert r2.status.value == "pending"
    assert gw.payment_for_order("ord_1").status is PaymentStatus.PARTIALLY_REFUNDED  # type: ignore[union-attr]
    done = gw.handle_webhook(*webhook("refund.updated", refund("re_2", 1499), "evt_re2"))
    assert done.changed and done.status is PaymentStatus.REFUNDED
    assert [t.new_status for t in gw.history(payment.id)][-1] is PaymentStatus.REFUNDED


def test_retry_uses_the_same_idempotency_key(gw: Gateway, api: responses.RequestsMock) -> None:
    api.post(
        f"{API}/payment_intents",
        status=503,
        json={"error": {"type": "api_error", "message": "try later"}},
    )
    api.post(
        f"{API}/payment_intents",
        status=429,
        json={
            "error": {"type": "invalid_request_error", "code": "rate_limit", "message": "slow down"}
        },
    )
    api.post(f"{API}/payment_intents", json=intent("pi_flow_2", "ord_2"))
    payment = gw.create_payment(
        order_id="ord_2", amount=Money.of("19.99", "USD"), payment_method="pm_card_visa"
    )
    assert payment.status is PaymentStatus.SUCCEEDED
    keys = {c.request.headers["Idempotency-Key"] for c in api.calls}
    assert len(api.calls) == 3 and len(keys) == 1


def test_decline_is_not_retried(gw: Gateway, api: responses.RequestsMock) -> None:
    api.post(
        f"{API}/payment_intents",
        status=402,
        json={
            "error": {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "no funds",
            }
        },
    )
    with pytest.raises(CardDeclined) as info:
        gw.create_payment(
            order_id="ord_3",
            amount=Money.of("19.99", "USD"),
            payment_method="pm_card_chargeDeclinedInsufficientFunds",
        )
    assert info.value.decline_code == "insufficient_funds"
    assert len(api.calls) == 1


def test_manual_capture_then_dispute_won(gw: Gateway, api: responses.RequestsMock) -> None:
    authorized = intent(
        "pi_flow_4", "ord_4", status="requires_capture", amount_received=0, amount_capturable=1999
    )
    api.post(f"{API}/payment_intents", json=authorized)
    payment = gw.create_payment(
        order_id="ord_4",
        amount=Money.of("19.99", "USD"),
        payment_method="pm_card_visa",
        capture="manual",
    )
    assert payment.status is PaymentStatus.AUTHORIZED
    assert fields(api.calls[0])["capture_method"] == "manual"
    dup = gw.handle_webhook(
        *webhook("payment_intent.amount_capturable_updated", authorized, "evt_auth")
    )
    assert dup.outcome == "unchanged"

    api.post(
        f"{API}/payment_intents/pi_flow_4/capture",
        json=intent("pi_flow_4", "ord_4", amount_received=1500),
    )
    captured = gw.capture(payment.id, amount=Money.of("15.00", "USD"))
    assert fields(api.calls[1]) == {"amount_to_capture": "1500"}
    assert captured.status is PaymentStatus.SUCCEEDED
    assert captured.amount_captured == Money(1500, "USD")

    dispute = resource(
        "dispute",
        id="dp_4",
        payment_intent="pi_flow_4",
        amount=1500,
        currency="usd",
        status="needs_response",
    )
    opened = gw.handle_webhook(*webhook("charge.dispute.created", dispute, "evt_dp_open"))
    assert opened.changed and opened.status is PaymentStatus.DISPUTED
    won = gw.handle_webhook(
        *webhook("charge.dispute.closed", {**dispute, "status": "won"}, "evt_dp_won")
    )
    assert won.changed and won.status is PaymentStatus.SUCCEEDED


def test_three_d_secure_return_looks_the_payment_up(
    gw: Gateway, api: responses.RequestsMock
) -> None:
    action = {
        "type": "redirect_to_url",
        "redirect_to_url": {"url": "https://hooks.stripe.com/3ds/x", "return_url": "r"},
    }
    api.post(
        f"{API}/payment_intents",
        json=intent(
            "pi_flow_5", "ord_5", status="requires_action", amount_received=0, next_action=action
        ),
    )
    payment = gw.create_payment(
        order_id="ord_5",
        amount=Money.of("19.99", "USD"),
        payment_method="pm_card_threeDSecure2Required",
        return_url="https://shop.example/return",
    )
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert payment.redirect_url == "https://hooks.stripe.com/3ds/x"
    api.get(f"{API}/payment_intents/pi_flow_5", json=intent("pi_flow_5", "ord_5"))
    back = gw.handle_return({"payment_intent": "pi_flow_5", "redirect_status": "failed"})
    assert back.status is PaymentStatus.SUCCEEDED  # Stripe's answer, not the query string


def test_checkout_payment_first_seen_through_a_webhook(
    gw: Gateway, api: responses.RequestsMock
) -> None:
    session = resource(
        "checkout.session",
        id="cs_flow",
        url="https://checkout.stripe.com/c/pay/cs_flow",
        status="open",
        mode="payment",
        client_reference_id="ord_6",
        amount_total=2000,
        currency="usd",
        payment_intent=None,
        metadata={"order_id": "ord_6"},
    )
    api.post(f"{API}/checkout/sessions", json=session)
    created = gw.create_checkout(
        order_id="ord_6",
        line_items=[LineItem("Tee", Money.of("10", "USD"), 2)],
        success_url="https://shop.example/ok",
        cancel_url="https://shop.example/cancel",
    )
    assert created.url == "https://checkout.stripe.com/c/pay/cs_flow"
    assert fields(api.calls[0])["client_reference_id"] == "ord_6"

    completed = {**session, "status": "complete", "payment_intent": "pi_flow_6"}
    result = gw.handle_webhook(*webhook("checkout.session.completed", completed, "evt_cs"))
    assert result.outcome == "no_transition"
    # an async payment method settles later; the Gateway has never seen pi_flow_6 and
    # looks it up at Stripe before applying the event
    api.get(
        f"{API}/payment_intents/pi_flow_6",
        json=intent("pi_flow_6", "ord_6", status="processing", amount=2000, amount_received=0),
    )
    settled = gw.handle_webhook(
        *webhook("checkout.session.async_payment_succeeded", completed, "evt_cs_paid")
    )
    assert settled.changed and settled.status is PaymentStatus.SUCCEEDED
    stored = gw.payment_for_order("ord_6")
    assert stored is not None and stored.id == "pi_flow_6"


def test_forged_webhook_changes_nothing(gw: Gateway, api: responses.RequestsMock) -> None:
    body, headers = webhook("payment_intent.succeeded", intent("pi_forged", "ord_x"), "evt_f")
    with pytest.raises(paygate.InvalidSignature):
        gw.handle_webhook(body.replace(b"1999", b"9999"), headers)
    assert gw.payment_for_order("ord_x") is None
    assert len(api.calls) == 0


def test_a_restarted_gateway_sends_the_same_key(api: responses.RequestsMock) -> None:
    """Even with its store lost, the same order asks Stripe with the same key: Stripe
    replays the first answer instead of charging again."""
    for _ in range(2):
        provider = StripeProvider(api_key=KEY, webhook_secret=SECRET)
        api.post(f"{API}/payment_intents", json=intent("pi_flow_7", "ord_7"))
        paygate.connect(provider, store="memory://").create_payment(
            order_id="ord_7", amount=Money.of("19.99", "USD"), payment_method="pm_card_visa"
        )
    first, second = (c.request.headers["Idempotency-Key"] for c in api.calls)
    assert first == second
