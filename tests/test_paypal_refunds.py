"""PayPal: refunds listed on the order's answer (each by id), get_refund, refund events by
the refund's status, void without a body, a draft invoice whose amount has no value.

Bodies are shaped like PayPal's OpenAPI specs and checked against them where
../shared/reference is present (``PayPalMock``'s schemas).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import responses

from paygate import EventType, Money, NotFound, PaymentStatus, Refund, RefundStatus
from paygate.models import InvoiceStatus, LineItem
from paygate.providers.paypal import PayPalProvider
from paygate.state import PaymentState, Trigger, apply_all, events_for_answer
from tests.paypal_support import (
    INVOICING,
    ORDERS,
    PAYMENTS,
    PayPalMock,
    authorization_json,
    capture_json,
    event_json,
    money,
    order_json,
    provider_settings,
    refund_json,
    sign,
    validate,
)

ORDER = "5O190127TN364715T"
CAPTURE = "3C679366HH908993F"
AUTHORIZATION = "0VF52814937998046"


@pytest.fixture
def paypal() -> Iterator[PayPalMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock = PayPalMock(rsps)
        mock.token()
        yield mock
        mock.assert_all_called()


@pytest.fixture
def provider() -> PayPalProvider:
    return PayPalProvider(**provider_settings())


# -- refunds on the order's answer -------------------------------------------------------------


def test_get_payment_lists_the_orders_refunds(paypal: PayPalMock, provider: PayPalProvider) -> None:
    refunds = [
        refund_json("1AAAAAAAAAAAAAAAA", value="5.00"),
        refund_json("1BBBBBBBBBBBBBBBB", value="3.00", status="PENDING"),
        refund_json("1CCCCCCCCCCCCCCCC", value="2.00", status="FAILED"),
    ]
    order = order_json(
        status="COMPLETED",
        captures=[capture_json(status="PARTIALLY_REFUNDED")],
        refunds=refunds,
    )
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", order, response_schema=(ORDERS, "order"))
    payment = provider.get_payment(ORDER)
    assert [(r.id, r.status, r.amount) for r in payment.refunds] == [
        ("1AAAAAAAAAAAAAAAA", RefundStatus.SUCCEEDED, Money.of("5.00", "USD")),
        ("1BBBBBBBBBBBBBBBB", RefundStatus.PENDING, Money.of("3.00", "USD")),
        ("1CCCCCCCCCCCCCCCC", RefundStatus.FAILED, Money.of("2.00", "USD")),
    ]
    # each names the order (Payment.id), as the refund webhooks do once resolved
    assert {r.payment_id for r in payment.refunds} == {ORDER}
    assert {r.order_id for r in payment.refunds} == {"ord_1"}
    assert payment.amount_refunded == Money.of("5.00", "USD")
    assert payment.status is PaymentStatus.PARTIALLY_REFUNDED

    # what the Gateway's sync learns from it: the refund it missed, once, by id, and the
    # failed one recorded as failed (never counted: its late success would be stale)
    stored = PaymentState(PaymentStatus.SUCCEEDED, amount=1999, captured=1999)
    learned = events_for_answer(stored, payment)
    assert [(e.trigger, e.ref) for e in learned if e.ref] == [
        (Trigger.REFUNDED, "1AAAAAAAAAAAAAAAA"),
        (Trigger.REFUND_REVERSED, "1CCCCCCCCCCCCCCCC"),
    ]
    assert apply_all(stored, learned).refunded == 500


def test_an_order_without_refunds_lists_none(paypal: PayPalMock, provider: PayPalProvider) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", captures=[capture_json()]))  # fmt: skip
    assert provider.get_payment(ORDER).refunds == ()


# -- get_refund ----------------------------------------------------------------------------------


def test_get_refund_names_the_captures_order(paypal: PayPalMock, provider: PayPalProvider) -> None:
    refund = refund_json("1JU08902781691411", value="5.00", status="FAILED")
    refund["status_details"] = {"reason": "ECHECK"}
    paypal.on("GET", "/v2/payments/refunds/1JU08902781691411", refund,
              response_schema=(PAYMENTS, "refund"))  # fmt: skip
    # the refund names its capture ("up" link): the capture names its order
    paypal.on("GET", f"/v2/payments/captures/{CAPTURE}", capture_json(),
              response_schema=(PAYMENTS, "capture-2"))  # fmt: skip
    fetched = provider.get_refund("1JU08902781691411")
    assert fetched.id == "1JU08902781691411"
    assert fetched.payment_id == ORDER
    assert fetched.status is RefundStatus.FAILED
    assert fetched.failure_reason == "ECHECK"
    assert fetched.amount == Money.of("5.00", "USD")
    assert paypal.last("/v2/payments/refunds/1JU08902781691411").method == "GET"


def test_get_missing_refund(paypal: PayPalMock, provider: PayPalProvider) -> None:
    missing = {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist.",
               "details": [{"issue": "INVALID_RESOURCE_ID"}], "debug_id": "d1"}  # fmt: skip
    paypal.on("GET", "/v2/payments/refunds/1MISSING00000000", missing, status=404)
    with pytest.raises(NotFound):
        provider.get_refund("1MISSING00000000")


# -- refund events by the refund's status -----------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "status", "expected"),
    [
        ("PAYMENT.CAPTURE.REFUNDED", "COMPLETED", EventType.REFUND_SUCCEEDED),
        ("PAYMENT.CAPTURE.REFUNDED", "PENDING", EventType.REFUND_CREATED),
        ("PAYMENT.CAPTURE.REFUNDED", "FAILED", EventType.REFUND_FAILED),
        ("PAYMENT.CAPTURE.REFUNDED", "CANCELLED", EventType.REFUND_FAILED),
        ("PAYMENT.CAPTURE.REVERSED", "COMPLETED", EventType.REFUND_SUCCEEDED),
    ],
)
def test_refund_events_follow_the_refunds_status(
    paypal: PayPalMock, provider: PayPalProvider, event_type: str, status: str, expected: EventType
) -> None:
    resource = refund_json(status=status)
    if paypal.validate_bodies:
        validate(PAYMENTS, "refund", resource)
    paypal.on("GET", f"/v2/payments/captures/{CAPTURE}", capture_json())
    body = json.dumps(event_json(event_type, resource, resource_type="refund")).encode()
    event = provider.parse_webhook(body, sign(body))
    assert event.type is expected
    assert isinstance(event.object, Refund)
    assert event.object.id == "1JU08902781691411" and event.object.payment_id == ORDER
    if expected is EventType.REFUND_FAILED:
        assert event.object.status in (RefundStatus.FAILED, RefundStatus.CANCELED)


# -- void without a body -------------------------------------------------------------------------


def test_void_sends_no_body(paypal: PayPalMock, provider: PayPalProvider) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", intent="AUTHORIZE",
                         authorizations=[authorization_json()]))  # fmt: skip
    paypal.on("POST", f"/v2/payments/authorizations/{AUTHORIZATION}/void",
              authorization_json(status="VOIDED"),
              response_schema=(PAYMENTS, "authorization-2"))  # fmt: skip
    payment = provider.cancel_payment(ORDER, idempotency_key="k")
    assert payment.status is PaymentStatus.CANCELED
    raw = next(
        c.request for c in paypal.rsps.calls if c.request.url.endswith(f"{AUTHORIZATION}/void")
    )
    assert raw.body is None  # no "{}": PayPal's void has no request body
    assert paypal.last(f"/v2/payments/authorizations/{AUTHORIZATION}/void").body is None


def test_void_answered_204_without_a_body(paypal: PayPalMock, provider: PayPalProvider) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", intent="AUTHORIZE",
                         authorizations=[authorization_json()]))  # fmt: skip
    paypal.on("POST", f"/v2/payments/authorizations/{AUTHORIZATION}/void", None, status=204)
    assert provider.cancel_payment(ORDER, idempotency_key="k").status is PaymentStatus.CANCELED


# -- a draft invoice whose amount has no value --------------------------------------------------


DRAFT = {
    "id": "INV2-AAAA-BBBB-CCCC-DDDD",
    "status": "DRAFT",
    "detail": {"currency_code": "USD", "reference": "ord_7",
               "metadata": {"create_time": "2026-11-22T00:00:00Z"}},
    "primary_recipients": [{"billing_info": {"email_address": "bill-me@example.com"}}],
    "items": [{"name": "Consulting", "quantity": "2", "unit_amount": money("10.00")}],
    # Invoicing v2's amount_summary_detail: value is optional, a draft may leave it out
    "amount": {"currency_code": "USD"},
    "links": [],
}  # fmt: skip


def test_draft_invoice_amount_without_value_uses_the_total(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("POST", "/v2/invoicing/invoices", DRAFT, status=201,
              request_schema=(INVOICING, "invoice"), response_schema=(INVOICING, "invoice"))  # fmt: skip
    invoice = provider.create_invoice(
        customer_id="bill-me@example.com",
        line_items=[LineItem(name="Consulting", unit_amount=Money.of("10", "USD"), quantity=2)],
        idempotency_key="k-draft",
        order_id="ord_7",
    )
    assert invoice.status is InvoiceStatus.DRAFT
    assert invoice.amount_due == Money.of("20.00", "USD")
    assert invoice.order_id == "ord_7"
