"""The whole Gateway flow on PayPal over mocked HTTP: create → approve (at PayPal) → return
→ capture, the capture webhook (twice), a partial refund and its webhook, a retry after a
5xx with the same ``PayPal-Request-Id``, and a log capture at DEBUG free of secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import responses

import paygate
from paygate import Money
from paygate.gateway import RetryPolicy
from paygate.models import EventType, PaymentStatus, RefundStatus
from paygate.providers.paypal import PayPalProvider
from tests.paypal_support import (
    ACCESS_TOKEN,
    CLIENT_SECRET,
    ORDERS,
    PAYMENTS,
    PayPalMock,
    capture_json,
    event_json,
    order_json,
    provider_settings,
    refund_json,
    sign,
)

ORDER = "5O190127TN364715T"
CAPTURE = "3C679366HH908993F"
REFUND = "1JU08902781691411"


@pytest.fixture
def paypal() -> Iterator[PayPalMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock = PayPalMock(rsps)
        mock.token()
        yield mock
        mock.assert_all_called()


def _delivery(
    event_type: str, resource: dict[str, Any], event_id: str
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event_json(event_type, resource, event_id=event_id)).encode()
    return body, sign(body)


def test_approve_return_capture_refund_with_webhooks(
    paypal: PayPalMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = paygate.connect(PayPalProvider(**provider_settings()))
    seen: list[EventType] = []
    gw.on(EventType.PAYMENT_SUCCEEDED, EventType.REFUND_SUCCEEDED)(lambda e: seen.append(e.type))

    # 1. create: the order waits for the buyer's approval
    paypal.on("POST", "/v2/checkout/orders", order_json(), status=201,
              request_schema=(ORDERS, "order_request"), response_schema=(ORDERS, "order"))  # fmt: skip
    payment = gw.create_payment(
        order_id="ord_1", amount=Money.of("19.99", "USD"), return_url="https://shop.example/back"
    )
    assert payment.id == ORDER
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert payment.redirect_url == f"https://www.sandbox.paypal.com/checkoutnow?token={ORDER}"
    create_key = paypal.last("/v2/checkout/orders").headers["PayPal-Request-Id"]
    # the same call again: the Gateway replays it, PayPal is not asked twice
    assert gw.create_payment(order_id="ord_1", amount=Money.of("19.99", "USD")).id == ORDER
    assert sum(1 for c in paypal.calls if c.path == "/v2/checkout/orders") == 1

    # 2. the buyer approved at PayPal and comes back: the Gateway looks up and captures
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", order_json(status="APPROVED"))
    paypal.on(
        "POST", f"/v2/checkout/orders/{ORDER}/capture",
        order_json(status="COMPLETED", captures=[capture_json()]), status=201,
        request_schema=(ORDERS, "order_capture_request"), response_schema=(ORDERS, "order"),
    )  # fmt: skip
    returned = gw.handle_return({"token": ORDER, "PayerID": "QYR5Z8XDVJNXQ"})
    assert returned.status is PaymentStatus.SUCCEEDED
    assert returned.charge_id == CAPTURE
    capture_key = paypal.last(f"/v2/checkout/orders/{ORDER}/capture").headers["PayPal-Request-Id"]
    assert capture_key and capture_key != create_key
    stored = gw.payment_for_order("ord_1")
    assert stored is not None and stored.id == ORDER and stored.status is PaymentStatus.SUCCEEDED

    # 3. PayPal's capture webhook names the same payment; delivered twice, applied at most once
    body, headers = _delivery("PAYMENT.CAPTURE.COMPLETED", capture_json(), "WH-CAPTURE-1")
    first = gw.handle_webhook(body, headers)
    assert first.event.payment_id == ORDER and first.status is PaymentStatus.SUCCEEDED
    assert not first.duplicate
    again = gw.handle_webhook(body, headers)
    assert again.duplicate and not again.changed

    # 4. a partial refund through the Gateway, refunding PayPal's capture
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", captures=[capture_json()]))  # fmt: skip
    paypal.on("POST", f"/v2/payments/captures/{CAPTURE}/refund", refund_json(value="5.00"),
              status=201, request_schema=(PAYMENTS, "refund_request"),
              response_schema=(PAYMENTS, "refund"))  # fmt: skip
    refund = gw.refund(ORDER, Money.of("5.00", "USD"))
    assert refund.status is RefundStatus.SUCCEEDED and refund.payment_id == ORDER
    assert paypal.last(f"/v2/payments/captures/{CAPTURE}/refund").body["amount"] == {
        "currency_code": "USD", "value": "5.00"
    }  # fmt: skip
    after_refund = gw.payment_for_order("ord_1")
    assert after_refund is not None
    assert after_refund.status is PaymentStatus.PARTIALLY_REFUNDED
    assert after_refund.amount_refunded == Money.of("5.00", "USD")

    # 5. the refund's webhook names only the capture; it reaches the same payment, counted once
    body, headers = _delivery("PAYMENT.CAPTURE.REFUNDED", refund_json(value="5.00"), "WH-REFUND-1")
    result = gw.handle_webhook(body, headers)
    assert result.event.payment_id == ORDER
    assert result.status is PaymentStatus.PARTIALLY_REFUNDED
    assert not result.changed  # the API answer already counted this refund id
    final = gw.payment_for_order("ord_1")
    assert final is not None and final.amount_refunded == Money.of("5.00", "USD")
    assert EventType.REFUND_SUCCEEDED in seen

    # nothing secret reached a log line at DEBUG
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert ORDER in text
    assert CLIENT_SECRET not in text and ACCESS_TOKEN not in text


def test_gateway_retries_a_5xx_with_the_same_request_id(paypal: PayPalMock) -> None:
    gw = paygate.connect(
        PayPalProvider(**provider_settings(max_retries=2)),
        retry=RetryPolicy(attempts=3, base_delay=0, max_delay=0, sleep=lambda _: None),
    )
    paypal.on("POST", "/v2/checkout/orders", {"name": "INTERNAL_SERVER_ERROR"}, status=500)
    paypal.on("POST", "/v2/checkout/orders", order_json(), status=201)
    payment = gw.create_payment(order_id="ord_1", amount=Money.of("19.99", "USD"))
    assert payment.id == ORDER
    keys = [c.headers["PayPal-Request-Id"] for c in paypal.calls if c.path == "/v2/checkout/orders"]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_connect_by_name_builds_the_paypal_adapter() -> None:
    gw = paygate.connect("paypal", **provider_settings(max_retries="4"))
    assert isinstance(gw.provider, PayPalProvider)
    assert gw.provider.max_retries == 4


def test_gateway_from_env_builds_paypal() -> None:
    gw = paygate.Gateway.from_env(
        {
            "PAYGATE_PROVIDER": "paypal",
            "PAYGATE_PAYPAL_CLIENT_ID": "env-client",
            "PAYGATE_PAYPAL_CLIENT_SECRET": CLIENT_SECRET,
            "PAYGATE_PAYPAL_WEBHOOK_ID": "8PT597110X687430LKGECATA",
            "PAYGATE_PAYPAL_MODE": "live",
            "PAYGATE_PAYPAL_TIMEOUT": "12.5",
            "PAYGATE_PAYPAL_MAX_RETRIES": "1",
            "PAYGATE_PAYPAL_VERIFICATION": "api",
        }
    )
    provider = gw.provider
    assert isinstance(provider, PayPalProvider)
    assert provider.settings.mode == "live" and provider.settings.timeout == 12.5
    assert provider.settings.verification == "api" and provider.max_retries == 1
    assert CLIENT_SECRET not in repr(gw) and CLIENT_SECRET not in repr(provider)
