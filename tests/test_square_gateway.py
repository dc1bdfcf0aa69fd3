"""The Gateway's whole flow on Square, over mocked HTTP (the in-memory Square API behind an
``httpx.MockTransport``) and webhooks signed as Square signs them.

Order first and idempotent, retries in exactly one layer with the same key, webhooks
delivered twice, refunds that Square settles asynchronously, a dispute, manual capture,
a payment link paid and returned from, and a payment first met through its webhook.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import paygate
from paygate import (
    CardDeclined,
    CheckoutStatus,
    EventType,
    IdempotencyConflict,
    InvoiceStatus,
    LineItem,
    Money,
    PaymentStatus,
    ProviderUnavailable,
    RefundStatus,
    SubscriptionStatus,
    WebhookEvent,
)
from paygate.gateway import Gateway, RetryPolicy, WebhookResult
from paygate.providers._square_mock import SquareMockAPI
from paygate.providers.square import SquareProvider
from tests.test_square_spec import ACCESS_TOKEN, SIGNATURE_KEY, SPEC_PATH, WEBHOOK_URL, check_call

USD = "USD"


@pytest.fixture
def api() -> SquareMockAPI:
    api = SquareMockAPI(webhook_signature_key=SIGNATURE_KEY, webhook_url=WEBHOOK_URL)
    if SPEC_PATH.is_file():
        api.observers.append(check_call)
    return api


@pytest.fixture(params=["memory", "sqlite"])
def gw(api: SquareMockAPI, request: pytest.FixtureRequest, tmp_path: object) -> Iterator[Gateway]:
    provider = SquareProvider(
        access_token=ACCESS_TOKEN,
        location_id="LOC1",
        webhook_signature_key=SIGNATURE_KEY,
        webhook_url=WEBHOOK_URL,
        max_retries=2,
        http_client=api.http_client(),
    )
    store = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/square.db"
    gateway = paygate.connect(provider, store=store)
    assert gateway.retry.attempts == 3  # the provider's max_retries sets the Gateway's count
    gateway.retry = RetryPolicy(attempts=3, sleep=lambda _: None)
    yield gateway
    gateway.close()


def deliver(gw: Gateway, api: SquareMockAPI, *, twice: bool = False) -> list[WebhookResult]:
    results = []
    for delivery in api.take_webhooks():
        results.append(gw.handle_webhook(delivery.body, delivery.headers))
        if twice:
            again = gw.handle_webhook(delivery.body, delivery.headers)
            assert again.duplicate and not again.changed
    return results


def creates(api: SquareMockAPI) -> list[str]:
    return [
        c.body["idempotency_key"]
        for c in api.calls
        if (c.method, c.path) == ("POST", "/v2/payments")
    ]


def test_pay_webhooks_twice_refund_partial_then_full(
    gw: Gateway, api: SquareMockAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    succeeded: list[WebhookEvent] = []
    gw.on(EventType.PAYMENT_SUCCEEDED)(succeeded.append)
    payment = gw.create_payment(
        order_id="ord_1", amount=Money.of("19.99", USD), payment_method="cnon:card-nonce-ok"
    )
    assert payment.status is PaymentStatus.SUCCEEDED and payment.order_id == "ord_1"
    # the same call again: the same payment, no second charge, not even a second request
    assert (
        gw.create_payment(
            order_id="ord_1", amount=Money.of("19.99", USD), payment_method="cnon:card-nonce-ok"
        ).id
        == payment.id
    )
    assert len(api.payments) == 1 and len(creates(api)) == 1
    # the same order with another amount never reaches Square
    with pytest.raises(IdempotencyConflict):
        gw.create_payment(
            order_id="ord_1", amount=Money.of("20.00", USD), payment_method="cnon:card-nonce-ok"
        )
    assert len(creates(api)) == 1
    assert gw.payment_for_order("ord_1").id == payment.id  # type: ignore[union-attr]

    results = deliver(gw, api, twice=True)
    assert [r.event.type for r in results] == [EventType.PAYMENT_SUCCEEDED]
    assert len(succeeded) == 1  # the handler ran once for two deliveries

    refund = gw.refund(payment.id, amount=Money.of("5.00", USD), reason="damaged")
    assert refund.status is RefundStatus.PENDING
    assert gw.get_payment(payment.id).status is PaymentStatus.SUCCEEDED  # not settled yet
    results = deliver(gw, api)  # refund.created (PENDING): recorded, moves nothing
    assert [r.event.type for r in results] == [EventType.REFUND_CREATED] and not results[0].changed
    api.complete_refund(refund.id)
    results = deliver(gw, api, twice=True)  # refund.updated COMPLETED + payment.updated
    assert [r.event.type for r in results] == [
        EventType.REFUND_SUCCEEDED,
        EventType.PAYMENT_SUCCEEDED,
    ]
    assert results[0].status is PaymentStatus.PARTIALLY_REFUNDED and results[0].changed
    assert not results[1].changed  # the payment.updated after it is stale, never a regression
    stored = gw.get_payment(payment.id)
    assert stored.status is PaymentStatus.PARTIALLY_REFUNDED and stored.amount_refunded == Money(
        500, USD
    )

    rest = gw.refund(payment.id)  # None = the rest
    assert rest.amount == Money(1499, USD)
    api.complete_refund(rest.id)
    deliver(gw, api)
    final = gw.get_payment(payment.id)
    assert final.status is PaymentStatus.REFUNDED and final.amount_refunded == Money(1999, USD)
    # nothing of the configuration's secrets in any log line of the whole flow
    assert caplog.records and ACCESS_TOKEN not in caplog.text and SIGNATURE_KEY not in caplog.text
    assert [t.new_status for t in gw.history(payment.id)] == [
        PaymentStatus.SUCCEEDED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
    ]


def test_retries_happen_once_in_the_gateway_with_the_same_key(
    gw: Gateway, api: SquareMockAPI
) -> None:
    api.fail_next(503, "SERVICE_UNAVAILABLE", "API_ERROR")
    payment = gw.create_payment(
        order_id="ord_r", amount=Money(1000, USD), payment_method="cnon:card-nonce-ok"
    )
    assert payment.status is PaymentStatus.SUCCEEDED
    keys = creates(api)
    assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) <= 45  # one retry, same key
    assert len(api.payments) == 1

    api.fail_next(500, "INTERNAL_SERVER_ERROR", "API_ERROR", times=10)
    with pytest.raises(ProviderUnavailable):
        gw.create_payment(
            order_id="ord_r2", amount=Money(1000, USD), payment_method="cnon:card-nonce-ok"
        )
    # 3 attempts by the Gateway, none by the SDK (its default would make it 9)
    assert len(creates(api)) == 2 + 3


def test_declines_are_not_retried(gw: Gateway, api: SquareMockAPI) -> None:
    with pytest.raises(CardDeclined) as caught:
        gw.create_payment(
            order_id="ord_d",
            amount=Money(1000, USD),
            payment_method="cnon:card-nonce-insufficient-funds",
        )
    assert caught.value.decline_code == "insufficient_funds"
    assert len(creates(api)) == 1
    # a new card starts the order's next attempt
    payment = gw.create_payment(
        order_id="ord_d", amount=Money(1000, USD), payment_method="cnon:card-nonce-ok"
    )
    assert payment.status is PaymentStatus.SUCCEEDED


def test_manual_capture_and_dispute(gw: Gateway, api: SquareMockAPI) -> None:
    authorized = gw.create_payment(
        order_id="ord_m",
        amount=Money(5000, USD),
        payment_method="cnon:card-nonce-ok",
        capture="manual",
    )
    assert authorized.status is PaymentStatus.AUTHORIZED
    captured = gw.capture(authorized.id)
    assert captured.status is PaymentStatus.SUCCEEDED and captured.amount_captured == Money(
        5000, USD
    )
    results = deliver(gw, api)  # payment.created (APPROVED) then payment.updated (COMPLETED)
    assert [r.event.type for r in results] == [
        EventType.PAYMENT_AUTHORIZED,
        EventType.PAYMENT_SUCCEEDED,
    ]
    assert not any(r.changed for r in results)  # the API answers already moved it

    dispute = api.open_dispute(authorized.id)
    (opened,) = deliver(gw, api)
    assert opened.event.type is EventType.DISPUTE_OPENED and opened.status is PaymentStatus.DISPUTED
    api.set_dispute_state(dispute["id"], "WON")
    (won,) = deliver(gw, api)
    assert won.event.type is EventType.DISPUTE_WON and won.status is PaymentStatus.SUCCEEDED


def test_cancel_an_authorization(gw: Gateway, api: SquareMockAPI) -> None:
    authorized = gw.create_payment(
        order_id="ord_c",
        amount=Money(700, USD),
        payment_method="cnon:card-nonce-ok",
        capture="manual",
    )
    assert gw.cancel(authorized.id).status is PaymentStatus.CANCELED
    deliver(gw, api)
    assert gw.get_payment(authorized.id).status is PaymentStatus.CANCELED


def test_payment_link_paid_then_returned(gw: Gateway, api: SquareMockAPI) -> None:
    session = gw.create_checkout(
        order_id="ord_co",
        line_items=[LineItem("Tee", Money.of("10.00", USD), quantity=2)],
        success_url="https://shop.example/ok",
        cancel_url="https://shop.example/cancel",
    )
    assert (
        session.status is CheckoutStatus.OPEN
        and session.url
        and session.amount_total == Money(2000, USD)
    )
    query = api.pay_link(session.id)
    payment = gw.handle_return({**query, "status": "COMPLETED"})
    assert payment.status is PaymentStatus.SUCCEEDED and payment.order_id == "ord_co"
    assert gw.payment_for_order("ord_co").id == payment.id  # type: ignore[union-attr]
    (created,) = deliver(gw, api)
    assert created.event.type is EventType.PAYMENT_SUCCEEDED and not created.changed


def test_a_payment_first_met_through_its_webhook(gw: Gateway, api: SquareMockAPI) -> None:
    session = gw.create_checkout(
        order_id="ord_hook",
        line_items=[LineItem("Mug", Money.of("12.50", USD))],
        success_url="https://shop.example/ok",
        cancel_url="https://shop.example/cancel",
    )
    api.pay_link(session.id)  # the customer pays and closes the tab: no return
    (result,) = deliver(gw, api)
    assert result.changed and result.status is PaymentStatus.SUCCEEDED
    found = gw.payment_for_order("ord_hook")  # the order id came from the payment note
    assert found is not None and found.amount == Money(1250, USD)


def test_subscription_and_invoice(gw: Gateway, api: SquareMockAPI) -> None:
    customer = gw.create_customer(email="ada@example.com", name="Ada Lovelace")
    subscription = gw.create_subscription(customer_id=customer.id, price_id="PLANVAR1")
    assert subscription.status is SubscriptionStatus.ACTIVE
    assert (
        gw.create_subscription(customer_id=customer.id, price_id="PLANVAR1").id == subscription.id
    )
    assert len(api.subscriptions) == 1
    canceled = gw.cancel_subscription(subscription.id, at_period_end=True)
    assert canceled.cancel_at_period_end
    results = deliver(gw, api)
    assert [r.event.type for r in results] == [
        EventType.SUBSCRIPTION_CREATED,
        EventType.SUBSCRIPTION_UPDATED,
    ]
    invoice = gw.create_invoice(
        customer_id=customer.id, line_items=[LineItem("Setup", Money(9900, USD))]
    )
    assert invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.OPEN)
    assert invoice.amount_due == Money(9900, USD)


def test_the_docs_testing_example_runs() -> None:
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "providers" / "square.md"
    blocks = page.read_text(encoding="utf-8").split("```python\n")[1:]
    (example,) = [block.split("```")[0] for block in blocks if "SquareMockAPI(" in block]
    namespace: dict[str, object] = {}
    exec(compile(example, str(page), "exec"), namespace)
    assert namespace["payment"].order_id == "ord_1"  # type: ignore[attr-defined]


def test_gateway_from_env_builds_a_sandbox_square_provider() -> None:
    gateway = Gateway.from_env(
        {
            "PAYGATE_PROVIDER": "square",
            "PAYGATE_SQUARE_ACCESS_TOKEN": ACCESS_TOKEN,
            "PAYGATE_SQUARE_LOCATION_ID": "LOC1",
            "PAYGATE_SQUARE_MAX_RETRIES": "4",
            "PAYGATE_SQUARE_TIMEOUT": "7.5",
        }
    )
    provider = gateway.provider
    assert isinstance(provider, SquareProvider)
    assert provider.settings.api_base_url == "https://connect.squareupsandbox.com"
    assert provider.max_retries == 4 and gateway.retry.attempts == 5
    assert provider.settings.timeout == 7.5
    assert ACCESS_TOKEN not in repr(gateway) + repr(provider)
    gateway.close()
