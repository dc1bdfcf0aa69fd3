"""The whole Gateway flow on the real Stripe adapter, with only the sandbox running.

Webhooks travel over HTTP from the sandbox to a local endpoint that feeds them to
``gateway.handle_webhook`` (which verifies the Stripe-Signature with the secret the sandbox
prints); the customer's steps (hosted Checkout, 3-D Secure) are HTTP form posts.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

import paygate
from paygate import CardDeclined, EventType, LineItem, Money, PaymentStatus
from paygate.gateway import Gateway
from paygate.sandbox import Sandbox
from paygate.testing.sandbox import Delivery, WebhookReceiver, complete_challenge, pay_checkout

pytest.importorskip("stripe")


@pytest.fixture
def gateway(sandbox: Sandbox) -> Iterator[Gateway]:
    gw = paygate.connect(
        "stripe",
        api_key="sk_test_sandbox",
        webhook_secret=sandbox.stripe.webhook_secret,
        base_url=sandbox.base_url,
        store="memory://",
    )
    yield gw
    gw.close()


@pytest.fixture
def endpoint(sandbox: Sandbox, gateway: Gateway) -> Iterator[WebhookReceiver]:
    """The shop's webhook endpoint: verifies and applies each delivery."""

    def handle(delivery: Delivery) -> int:
        return gateway.handle_webhook(delivery.body, delivery.headers).http_status

    with WebhookReceiver(handle) as receiver:
        sandbox.bus.forward_to.append(receiver.url)
        yield receiver


def _types(receiver: WebhookReceiver) -> list[str]:
    import json

    return [json.loads(d.body)["type"] for d in receiver.deliveries]


def _settled(sandbox: Sandbox, receiver: WebhookReceiver) -> list[str]:
    """Every delivery made and answered; each answered 2xx (verified by paygate)."""
    assert sandbox.bus.wait_idle(20)
    for event in sandbox.bus.events("stripe", limit=1000):
        attempts = sandbox.bus.attempts(event.id)
        assert attempts and attempts[-1].ok, (event.type, [a.excerpt for a in attempts])
    return _types(receiver)


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def test_checkout_pay_on_the_hosted_page_then_partial_refunds(
    sandbox: Sandbox, gateway: Gateway, endpoint: WebhookReceiver
) -> None:
    session = gateway.create_checkout(
        order_id="order-1",
        line_items=[LineItem(name="Mug", unit_amount=Money(1250, "USD"), quantity=2)],
        success_url="http://shop.test/thanks?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://shop.test/cart",
    )
    assert session.url and session.url.startswith(sandbox.base_url + "/checkout/cs_")
    assert session.amount_total == Money(2500, "USD")
    next_url = pay_checkout(session.url, "4242 4242 4242 4242")
    assert next_url == f"http://shop.test/thanks?session_id={session.id}"
    payment = gateway.handle_return(_query(next_url))
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.amount_captured == Money(2500, "USD")
    assert "checkout.session.completed" in _settled(sandbox, endpoint)

    gateway.refund(payment.id, Money(500, "USD"))
    gateway.refund(payment.id, Money(700, "USD"))
    _settled(sandbox, endpoint)
    after = gateway.get_payment(payment.id)
    assert after.status is PaymentStatus.PARTIALLY_REFUNDED
    assert after.amount_refunded == Money(1200, "USD")
    gateway.refund(payment.id)  # the rest
    types = _settled(sandbox, endpoint)
    assert gateway.get_payment(payment.id).status is PaymentStatus.REFUNDED
    assert types.count("charge.refunded") == 3


def test_three_d_secure_on_checkout_and_on_a_direct_payment(
    sandbox: Sandbox, gateway: Gateway, endpoint: WebhookReceiver
) -> None:
    session = gateway.create_checkout(
        order_id="order-3ds",
        line_items=[LineItem(name="Lamp", unit_amount=Money(4000, "USD"))],
        success_url="http://shop.test/thanks?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="http://shop.test/cart",
    )
    assert session.url
    challenge = pay_checkout(session.url, "4000002500003155")
    assert challenge.startswith(sandbox.base_url + "/3ds/pi_")
    back = complete_challenge(challenge)
    assert gateway.handle_return(_query(back)).status is PaymentStatus.SUCCEEDED

    payment = gateway.create_payment(
        order_id="order-direct-3ds",
        amount=Money(990, "EUR"),
        payment_method="pm_card_authenticationRequired",
        return_url="http://shop.test/return",
    )
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert payment.redirect_url
    back = complete_challenge(payment.redirect_url)
    params = _query(back)
    assert back.startswith("http://shop.test/return?") and params["redirect_status"] == "succeeded"
    assert gateway.handle_return(params).status is PaymentStatus.SUCCEEDED

    failed = gateway.create_payment(
        order_id="order-3ds-fails",
        amount=Money(990, "EUR"),
        payment_method="pm_card_authenticationRequired",
        return_url="http://shop.test/return",
    )
    assert failed.redirect_url
    params = _query(complete_challenge(failed.redirect_url, success=False))
    assert params["redirect_status"] == "failed"
    assert gateway.handle_return(params).status is PaymentStatus.FAILED
    types = _settled(sandbox, endpoint)
    assert "payment_intent.requires_action" in types and "payment_intent.payment_failed" in types


def test_declines_on_the_api_and_on_the_hosted_page(
    sandbox: Sandbox, gateway: Gateway, endpoint: WebhookReceiver
) -> None:
    with pytest.raises(CardDeclined) as declined:
        gateway.create_payment(
            order_id="order-declined",
            amount=Money(2000, "USD"),
            payment_method="pm_card_chargeDeclinedInsufficientFunds",
        )
    assert declined.value.decline_code == "insufficient_funds"
    session = gateway.create_checkout(
        order_id="order-page-declined",
        line_items=[LineItem(name="Hat", unit_amount=Money(1500, "USD"))],
        success_url="http://shop.test/thanks",
        cancel_url="http://shop.test/cart",
    )
    assert session.url
    assert pay_checkout(session.url, "4000 0000 0000 0002").endswith("?error=card_declined")
    assert pay_checkout(session.url, "1234").endswith("?error=incorrect_number")
    assert pay_checkout(session.url, "4242424242424242").startswith("http://shop.test/thanks?")
    _settled(sandbox, endpoint)
    assert gateway.payment_for_order("order-page-declined").status is PaymentStatus.SUCCEEDED


def test_manual_capture_partial_and_cancel(
    sandbox: Sandbox, gateway: Gateway, endpoint: WebhookReceiver
) -> None:
    held = gateway.create_payment(
        order_id="order-hold",
        amount=Money(5000, "USD"),
        payment_method="pm_card_visa",
        capture="manual",
    )
    assert held.status is PaymentStatus.AUTHORIZED
    captured = gateway.capture(held.id, Money(3000, "USD"))
    assert captured.status is PaymentStatus.SUCCEEDED
    assert captured.amount_captured == Money(3000, "USD")
    other = gateway.create_payment(
        order_id="order-hold-2",
        amount=Money(800, "USD"),
        payment_method="pm_card_visa",
        capture="manual",
    )
    assert gateway.cancel(other.id).status is PaymentStatus.CANCELED
    types = _settled(sandbox, endpoint)
    assert {"payment_intent.amount_capturable_updated", "payment_intent.canceled"} <= set(types)
    assert gateway.get_payment(held.id).status is PaymentStatus.SUCCEEDED


def test_subscription_invoice_and_dispute(
    sandbox: Sandbox, gateway: Gateway, endpoint: WebhookReceiver
) -> None:
    import stripe

    client = stripe.StripeClient(
        "sk_test_sandbox", base_addresses={"api": sandbox.base_url}, max_network_retries=0
    )
    price = client.v1.prices.create(
        params={
            "currency": "usd",
            "unit_amount": 1500,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Pro plan"},
        }
    )
    customer = gateway.create_customer(email="ada@example.com", name="Ada")
    subscription = gateway.create_subscription(customer_id=customer.id, price_id=price.id)
    assert subscription.status.value == "active"
    invoice = gateway.create_invoice(
        customer_id=customer.id,
        line_items=[LineItem(name="Setup", unit_amount=Money(9900, "USD"))],
        order_id="order-invoice",
    )
    assert invoice.status.value == "paid" and invoice.amount_paid == Money(9900, "USD")
    sent = gateway.create_invoice(
        customer_id=customer.id,
        line_items=[LineItem(name="Consulting", unit_amount=Money(20000, "USD"), quantity=3)],
        order_id="order-invoice-2",
        send=True,
    )
    assert sent.status.value == "open" and sent.hosted_url
    assert sent.amount_due == Money(60000, "USD")
    assert gateway.cancel_subscription(subscription.id).status.value == "canceled"

    disputed = gateway.create_payment(
        order_id="order-dispute", amount=Money(3000, "USD"), payment_method="pm_card_createDispute"
    )
    types = _settled(sandbox, endpoint)
    assert gateway.get_payment(disputed.id).status is PaymentStatus.DISPUTED
    dispute_id = next(
        e.payload()["data"]["object"]["id"]
        for e in sandbox.bus.events("stripe", 1000)
        if e.type == "charge.dispute.created"
    )
    client.v1.disputes.close(dispute_id)
    types = _settled(sandbox, endpoint)
    assert gateway.get_payment(disputed.id).status is PaymentStatus.CHARGED_BACK
    for expected in (
        "customer.subscription.created",
        "customer.subscription.deleted",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "charge.dispute.created",
        "charge.dispute.closed",
    ):
        assert expected in types
    gw_event_types = {
        r.event.type
        for r in [gateway.handle_webhook(d.body, d.headers) for d in endpoint.deliveries]
    }
    assert EventType.DISPUTE_LOST in gw_event_types


def test_reconcile_from_api_reads_the_sandbox_balance_transactions(
    sandbox: Sandbox,
    gateway: Gateway,
    tmp_path: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json
    from pathlib import Path

    from paygate.__main__ import main

    for order, minor in (("ord-match", 2500), ("ord-mismatch", 1200), ("ord-orphan", 700)):
        gateway.create_payment(
            order_id=order, amount=Money(minor, "USD"), payment_method="pm_card_visa"
        )
    refunded = gateway.create_payment(
        order_id="ord-refunded", amount=Money(3000, "USD"), payment_method="pm_card_visa"
    )
    gateway.refund(refunded.id, Money(1000, "USD"))
    gateway.create_payment(
        order_id="ord-disputed", amount=Money(900, "USD"), payment_method="pm_card_createDispute"
    )
    folder = Path(str(tmp_path))
    books = folder / "orders.csv"
    books.write_text(
        "order_id,amount,currency,status\nord-match,25.00,USD,paid\nord-mismatch,10.00,USD,paid\n"
        "ord-refunded,30.00,USD,paid\nord-disputed,9.00,USD,paid\n"
    )
    out = folder / "report.json"
    monkeypatch.setenv("PAYGATE_STRIPE_API_KEY", "sk_test_sandbox")
    monkeypatch.setenv("PAYGATE_STRIPE_BASE_URL", sandbox.base_url)
    monkeypatch.delenv("PAYGATE_PROVIDER", raising=False)
    code = main(
        [
            "reconcile",
            "--provider",
            "stripe",
            "--from-api",
            "--orders",
            str(books),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    report = json.loads(out.read_text())
    # the refund and the dispute are found by their charge's order id (data.source.charge)
    assert report["counts"] == {
        "matched": 1,
        "amount_mismatch": 1,
        "orphan": 1,
        "unknown_refund": 1,
        "unknown_dispute": 1,
    }
    assert code == 1


def test_a_processing_checkout_settles_later_with_the_async_session_event(
    sandbox: Sandbox, gateway: Gateway, endpoint: WebhookReceiver
) -> None:
    from paygate.sandbox.stripe import to_engine_id

    session = gateway.create_checkout(
        order_id="order-processing",
        line_items=[LineItem(name="Bank transfer", unit_amount=Money(7000, "USD"))],
        success_url="http://shop.test/thanks",
        cancel_url="http://shop.test/cart",
    )
    assert session.url
    back = pay_checkout(session.url, "4000 0000 0000 0077")
    payment = gateway.handle_return(_query(back))
    assert payment.status is PaymentStatus.PROCESSING
    with sandbox.state.transaction("stripe") as engine:  # the dashboard's "settle"
        engine.settle(to_engine_id(payment.id))
    types = _settled(sandbox, endpoint)
    assert "checkout.session.async_payment_succeeded" in types
    assert gateway.get_payment(payment.id).status is PaymentStatus.SUCCEEDED


def test_deliveries_verify_with_the_stripe_package_too(
    sandbox: Sandbox, gateway: Gateway, endpoint: WebhookReceiver
) -> None:
    import stripe

    gateway.create_payment(
        order_id="o-sig", amount=Money(100, "USD"), payment_method="pm_card_visa"
    )
    _settled(sandbox, endpoint)
    for delivery in endpoint.deliveries:
        event = stripe.Webhook.construct_event(
            delivery.body, delivery.headers["Stripe-Signature"], sandbox.stripe.webhook_secret
        )
        assert event.type.startswith(("payment_intent.", "charge."))


def test_one_idempotency_key_from_many_threads_makes_one_payment(sandbox: Sandbox) -> None:
    import threading

    import httpx

    answers: list[httpx.Response] = []

    def post() -> None:
        answers.append(
            httpx.post(
                sandbox.base_url + "/v1/payment_intents",
                data={
                    "amount": "500",
                    "currency": "usd",
                    "payment_method": "pm_card_visa",
                    "confirm": "true",
                },
                headers={"Authorization": "Bearer sk_test_x", "Idempotency-Key": "same"},
            )
        )

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["id"] for a in answers}) == 1
    assert len(sandbox.state.engine("stripe").payments()) == 1


def test_dispute_evidence_wins_as_in_stripes_test_mode(
    sandbox: Sandbox, gateway: Gateway, endpoint: WebhookReceiver
) -> None:
    import stripe

    client = stripe.StripeClient(
        "sk_test_sandbox", base_addresses={"api": sandbox.base_url}, max_network_retries=0
    )
    payment = gateway.create_payment(
        order_id="order-won", amount=Money(4200, "USD"), payment_method="pm_card_createDispute"
    )
    (dispute,) = client.v1.disputes.list(params={"payment_intent": payment.id}).data
    assert dispute.status == "needs_response"
    won = client.v1.disputes.update(
        dispute.id, params={"evidence": {"uncategorized_text": "winning_evidence"}}
    )
    assert won.status == "won"
    _settled(sandbox, endpoint)
    assert gateway.get_payment(payment.id).status is PaymentStatus.SUCCEEDED


def test_subscription_checkout_paid_on_the_hosted_page(
    sandbox: Sandbox, gateway: Gateway, endpoint: WebhookReceiver
) -> None:
    import json

    session = gateway.create_checkout(
        order_id="order-sub",
        line_items=[],
        success_url="http://shop.test/welcome",
        cancel_url="http://shop.test/plans",
        mode="subscription",
        price_id="price_monthly",
    )
    assert session.url and session.amount_total == Money(1000, "USD")
    assert pay_checkout(session.url, "pm_card_visa").startswith("http://shop.test/welcome?")
    _settled(sandbox, endpoint)
    completed = next(
        json.loads(d.body)["data"]["object"]
        for d in endpoint.deliveries
        if json.loads(d.body)["type"] == "checkout.session.completed"
    )
    assert completed["mode"] == "subscription" and completed["subscription"].startswith("sub_")
    assert completed["payment_intent"] is None and completed["payment_status"] == "paid"
    assert {"customer.subscription.created", "invoice.paid"} <= set(_types(endpoint))
