"""StripeProvider operations over mocked HTTP (responses): every outgoing request asserted.

Response bodies are Stripe's own example objects (fixtures3.json) with a few fields set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses
import stripe

from paygate import (
    AuthenticationError,
    CardDeclined,
    CheckoutStatus,
    DisputeStatus,
    IdempotencyConflict,
    InvalidAmount,
    InvalidRequest,
    LineItem,
    Money,
    NotFound,
    PaymentStatus,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RefundStatus,
    SubscriptionStatus,
    ValidationError,
)
from paygate.providers.stripe import (
    DISPUTE_STATUS,
    INVOICE_STATUS,
    PAYMENT_INTENT_STATUS,
    SUBSCRIPTION_STATUS,
    StripeProvider,
    dispute_from_stripe,
    invoice_from_stripe,
    payment_from_stripe,
    subscription_from_stripe,
)
from tests.fixtures.stripe import resource, resources

API = "https://api.stripe.com/v1"
KEY = "sk_test_api_tests_key"


@pytest.fixture
def provider() -> StripeProvider:
    return StripeProvider(api_key=KEY, webhook_secret="whsec_api")


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def form(call: Any) -> dict[str, str]:
    """The form fields of a recorded request (Stripe's bracket notation kept flat)."""
    body = call.request.body or ""
    if isinstance(body, bytes):
        body = body.decode()
    return dict(parse_qsl(body, keep_blank_values=True))


def query(call: Any) -> dict[str, str]:
    return dict(parse_qsl(call.request.url.partition("?")[2]))


def intent(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "pi_test_1",
        "amount": 1999,
        "currency": "usd",
        "status": "succeeded",
        "amount_received": 1999,
        "last_payment_error": None,
        "next_action": None,
        "metadata": {"order_id": "ord_1"},
    }
    return resource("payment_intent", **{**base, **fields})


# -- payments ------------------------------------------------------------------------------


def test_create_payment_confirmed(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.post(f"{API}/payment_intents", json=intent(customer="cus_1", description="Tee"))
    payment = provider.create_payment(
        order_id="ord_1",
        amount=Money.of("19.99", "USD"),
        payment_method="pm_card_visa",
        idempotency_key="ord_1:create:1999USD",
        customer_id="cus_1",
        description="Tee",
        metadata={"cart": "c9"},
    )
    call = api.calls[0]
    assert call.request.method == "POST"
    assert call.request.headers["Idempotency-Key"] == "ord_1:create:1999USD"
    assert form(call) == {
        "amount": "1999",
        "currency": "usd",
        "capture_method": "automatic",
        "metadata[cart]": "c9",
        "metadata[order_id]": "ord_1",
        "customer": "cus_1",
        "description": "Tee",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "automatic_payment_methods[enabled]": "true",
        "automatic_payment_methods[allow_redirects]": "never",
    }
    assert payment.id == "pi_test_1" and payment.provider == "stripe"
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.order_id == "ord_1"
    assert payment.amount == Money(1999, "USD") == payment.amount_captured
    assert payment.customer_id == "cus_1"
    assert payment.client_secret == resources()["payment_intent"]["client_secret"]
    assert payment.client_secret not in repr(payment)


def test_create_payment_manual_capture_with_return_url(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.post(
        f"{API}/payment_intents",
        json=intent(status="requires_capture", amount_received=0, amount_capturable=1999),
    )
    payment = provider.create_payment(
        order_id="ord_1",
        amount=Money(1999, "USD"),
        payment_method="pm_card_visa",
        idempotency_key="k-manual",
        capture="manual",
        return_url="https://shop.example/return",
    )
    fields = form(api.calls[0])
    assert fields["capture_method"] == "manual"
    assert fields["return_url"] == "https://shop.example/return"
    assert "automatic_payment_methods[allow_redirects]" not in fields
    assert payment.status is PaymentStatus.AUTHORIZED
    assert payment.amount_captured == Money(0, "USD")


def test_create_payment_without_method_is_not_confirmed(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.post(f"{API}/payment_intents", json=intent(status="requires_payment_method"))
    payment = provider.create_payment(
        order_id="ord_2", amount=Money.of("500", "JPY"), payment_method=None, idempotency_key="k2"
    )
    fields = form(api.calls[0])
    assert fields["amount"] == "500" and fields["currency"] == "jpy"
    assert "confirm" not in fields and "payment_method" not in fields
    assert payment.status is PaymentStatus.PENDING


def test_requires_action_exposes_client_secret_and_redirect(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    next_action = {
        "type": "redirect_to_url",
        "redirect_to_url": {"url": "https://hooks.stripe.com/3d_secure/abc", "return_url": "x"},
    }
    api.post(
        f"{API}/payment_intents",
        json=intent(status="requires_action", amount_received=0, next_action=next_action),
    )
    payment = provider.create_payment(
        order_id="ord_1",
        amount=Money(1999, "USD"),
        payment_method="pm_card_threeDSecure2Required",
        idempotency_key="k3",
        return_url="https://shop.example/return",
    )
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert payment.redirect_url == "https://hooks.stripe.com/3d_secure/abc"
    assert payment.client_secret and payment.client_secret.startswith("pi_")


def test_amount_refused_before_any_request(provider: StripeProvider) -> None:
    with responses.RequestsMock() as api:  # no request registered: any request fails
        with pytest.raises(InvalidAmount, match="multiple of 10"):
            provider.create_payment(
                order_id="o", amount=Money(5124, "KWD"), payment_method=None, idempotency_key="k"
            )
        with pytest.raises(ValidationError, match="positive"):
            provider.create_payment(
                order_id="o", amount=Money(0, "USD"), payment_method=None, idempotency_key="k"
            )
        assert len(api.calls) == 0


def test_long_idempotency_key_is_hashed_deterministically(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.post(f"{API}/payment_intents", json=intent())
    api.post(f"{API}/payment_intents", json=intent())
    long_key = "ord_" + "x" * 300
    for _ in range(2):
        provider.create_payment(
            order_id="o", amount=Money(1999, "USD"), payment_method=None, idempotency_key=long_key
        )
    sent = [c.request.headers["Idempotency-Key"] for c in api.calls]
    assert sent[0] == sent[1] and len(sent[0]) <= 255 and sent[0].startswith("paygate-")


def test_get_payment_expands_charge_and_sees_refunds(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    refund = resource("refund", id="re_1", amount=500, currency="usd", charge="ch_1")
    charge = resource(
        "charge",
        id="ch_1",
        amount=1999,
        amount_captured=1999,
        amount_refunded=500,
        captured=True,
        currency="usd",
        refunds={"object": "list", "data": [refund], "has_more": False},
    )
    api.get(f"{API}/payment_intents/pi_test_1", json=intent(latest_charge=charge))
    payment = provider.get_payment("pi_test_1")
    assert query(api.calls[0]) == {
        "expand[0]": "latest_charge",
        "expand[1]": "latest_charge.refunds",
    }
    assert payment.status is PaymentStatus.PARTIALLY_REFUNDED
    assert payment.amount_refunded == Money(500, "USD")
    assert payment.charge_id == "ch_1"
    assert [(r.id, r.payment_id) for r in payment.refunds] == [("re_1", "pi_test_1")]


def test_capture_partial(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.post(f"{API}/payment_intents/pi_test_1/capture", json=intent(amount_received=1000))
    payment = provider.capture_payment(
        "pi_test_1", amount=Money.of("10.00", "USD"), idempotency_key="ord_1:capture"
    )
    call = api.calls[0]
    assert form(call) == {"amount_to_capture": "1000"}
    assert call.request.headers["Idempotency-Key"] == "ord_1:capture"
    assert payment.amount_captured == Money(1000, "USD")
    assert payment.status is PaymentStatus.SUCCEEDED


def test_cancel(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.post(f"{API}/payment_intents/pi_test_1/cancel", json=intent(status="canceled"))
    payment = provider.cancel_payment("pi_test_1", idempotency_key="ord_1:cancel")
    assert api.calls[0].request.headers["Idempotency-Key"] == "ord_1:cancel"
    assert form(api.calls[0]) == {}
    assert payment.status is PaymentStatus.CANCELED


def test_declined_attempt_maps_to_failed_with_failure() -> None:
    error = {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
    }
    payment = payment_from_stripe(
        intent(status="requires_payment_method", amount_received=0, last_payment_error=error)
    )
    assert payment.status is PaymentStatus.FAILED
    assert payment.failure is not None
    assert payment.failure.decline_code == "insufficient_funds"
    assert payment.failure.code == "card_declined"


@pytest.mark.parametrize("status", sorted(PAYMENT_INTENT_STATUS))
def test_every_payment_intent_status_maps(status: str) -> None:
    payment = payment_from_stripe(intent(status=status, last_payment_error=None))
    assert payment.status is PAYMENT_INTENT_STATUS[status]


# -- refunds -------------------------------------------------------------------------------


def test_refund_partial_with_reason(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.post(
        f"{API}/refunds",
        json=resource(
            "refund", id="re_1", amount=500, payment_intent="pi_test_1", reason="duplicate"
        ),
    )
    refund = provider.refund_payment(
        "pi_test_1",
        amount=Money.of("5.00", "USD"),
        reason="duplicate",
        idempotency_key="ord_1:refund:500",
    )
    assert form(api.calls[0]) == {
        "payment_intent": "pi_test_1",
        "amount": "500",
        "reason": "duplicate",
    }
    assert api.calls[0].request.headers["Idempotency-Key"] == "ord_1:refund:500"
    assert refund.id == "re_1" and refund.payment_id == "pi_test_1"
    assert refund.amount == Money(500, "USD") and refund.status is RefundStatus.SUCCEEDED


def test_refund_full_with_free_text_reason(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.post(
        f"{API}/refunds",
        json=resource(
            "refund",
            id="re_2",
            amount=1999,
            payment_intent="pi_test_1",
            status="pending",
            metadata={"reason": "damaged in transit"},
        ),
    )
    refund = provider.refund_payment("pi_test_1", reason="damaged in transit", idempotency_key="k")
    assert form(api.calls[0]) == {
        "payment_intent": "pi_test_1",
        "metadata[reason]": "damaged in transit",
    }
    assert refund.status is RefundStatus.PENDING
    assert refund.reason == "damaged in transit"


# -- errors --------------------------------------------------------------------------------


def _error(status: int, **error: Any) -> dict[str, Any]:
    return {"status": status, "json": {"error": error}, "headers": {"Request-Id": "req_123"}}


ERROR_CASES = [
    (
        _error(
            402,
            type="card_error",
            code="card_declined",
            decline_code="insufficient_funds",
            message="Your card has insufficient funds.",
        ),
        CardDeclined,
        False,
    ),
    (
        _error(429, type="invalid_request_error", code="rate_limit", message="Too many"),
        RateLimited,
        True,
    ),
    (
        _error(401, type="invalid_request_error", message="Invalid API Key provided: sk_test_****"),
        AuthenticationError,
        False,
    ),
    (
        _error(
            400,
            type="idempotency_error",
            message="Keys for idempotent requests can only be used with the same parameters",
        ),
        IdempotencyConflict,
        False,
    ),
    (
        _error(
            400,
            type="invalid_request_error",
            code="parameter_invalid_integer",
            message="Invalid integer",
        ),
        InvalidRequest,
        False,
    ),
    (
        _error(
            404,
            type="invalid_request_error",
            code="resource_missing",
            message="No such payment_intent",
        ),
        NotFound,
        False,
    ),
    (_error(500, type="api_error", message="Something went wrong"), ProviderUnavailable, True),
    (_error(503, type="api_error", message="Unavailable"), ProviderUnavailable, True),
]


@pytest.mark.parametrize(
    ("reply", "expected", "retryable"),
    ERROR_CASES,
    ids=[e[1].__name__ + str(e[0]["status"]) for e in ERROR_CASES],
)
def test_error_table(
    provider: StripeProvider,
    api: responses.RequestsMock,
    reply: dict[str, Any],
    expected: type[ProviderError],
    retryable: bool,
) -> None:
    api.post(f"{API}/payment_intents", **reply)
    with pytest.raises(expected) as info:
        provider.create_payment(
            order_id="o", amount=Money(100, "USD"), payment_method="pm_x", idempotency_key="k"
        )
    error = info.value
    assert type(error) is expected
    assert error.provider == "stripe"
    assert error.request_id == "req_123"
    assert error.http_status == reply["status"]
    assert error.retryable is retryable
    assert len(api.calls) == 1  # the SDK never retried on its own
    if expected is CardDeclined:
        assert error.decline_code == "insufficient_funds"  # type: ignore[attr-defined]
        assert error.code == "card_declined"


def test_network_error_is_retryable_unavailable(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    import requests

    api.post(f"{API}/payment_intents", body=requests.ConnectionError("connection reset"))
    with pytest.raises(ProviderUnavailable) as info:
        provider.create_payment(
            order_id="o", amount=Money(100, "USD"), payment_method=None, idempotency_key="k"
        )
    assert info.value.retryable is True
    assert len(api.calls) == 1


def test_error_table_covers_the_sdk_classes() -> None:
    from paygate.providers.stripe import ERRORS

    for cls in (
        stripe.CardError,
        stripe.RateLimitError,
        stripe.AuthenticationError,
        stripe.APIConnectionError,
        stripe.IdempotencyError,
        stripe.InvalidRequestError,
        stripe.APIError,
        stripe.PermissionError,
    ):
        assert cls in ERRORS


# -- checkout ------------------------------------------------------------------------------


def session(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "cs_test_1",
        "url": "https://checkout.stripe.com/c/pay/cs_test_1",
        "status": "open",
        "client_reference_id": "ord_2",
        "amount_total": 2000,
        "currency": "usd",
        "payment_intent": None,
        "mode": "payment",
        "metadata": {"order_id": "ord_2"},
    }
    return resource("checkout.session", **{**base, **fields})


def test_checkout_payment_mode(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.post(f"{API}/checkout/sessions", json=session())
    result = provider.create_checkout_session(
        order_id="ord_2",
        line_items=[
            LineItem(name="Tee", unit_amount=Money.of("10", "USD"), quantity=2, description="Blue")
        ],
        success_url="https://shop.example/ok?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="https://shop.example/cancel",
        idempotency_key="ord_2:checkout",
    )
    call = api.calls[0]
    assert call.request.headers["Idempotency-Key"] == "ord_2:checkout"
    assert form(call) == {
        "mode": "payment",
        "success_url": "https://shop.example/ok?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.example/cancel",
        "client_reference_id": "ord_2",
        "metadata[order_id]": "ord_2",
        "line_items[0][price_data][currency]": "usd",
        "line_items[0][price_data][unit_amount]": "1000",
        "line_items[0][price_data][product_data][name]": "Tee",
        "line_items[0][price_data][product_data][description]": "Blue",
        "line_items[0][quantity]": "2",
        "payment_intent_data[metadata][order_id]": "ord_2",
    }
    assert result.url == "https://checkout.stripe.com/c/pay/cs_test_1"
    assert result.status is CheckoutStatus.OPEN
    assert result.order_id == "ord_2" and result.amount_total == Money(2000, "USD")


def test_checkout_subscription_mode(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.post(f"{API}/checkout/sessions", json=session(mode="subscription", subscription="sub_9"))
    result = provider.create_checkout_session(
        order_id="ord_3",
        line_items=[],
        success_url="https://s/ok",
        cancel_url="https://s/no",
        idempotency_key="ord_3:checkout",
        mode="subscription",
        customer_id="cus_1",
        price_id="price_basic",
    )
    fields = form(api.calls[0])
    assert fields["mode"] == "subscription"
    assert fields["line_items[0][price]"] == "price_basic"
    assert fields["line_items[0][quantity]"] == "1"
    assert fields["customer"] == "cus_1"
    assert fields["subscription_data[metadata][order_id]"] == "ord_3"
    assert result.mode == "subscription" and result.subscription_id == "sub_9"


def test_checkout_validation(provider: StripeProvider) -> None:
    with pytest.raises(ValidationError, match="price_id"):
        provider.create_checkout_session(
            order_id="o",
            line_items=[],
            success_url="u",
            cancel_url="c",
            idempotency_key="k",
            mode="subscription",
        )
    with pytest.raises(ValidationError, match="line item"):
        provider.create_checkout_session(
            order_id="o", line_items=[], success_url="u", cancel_url="c", idempotency_key="k"
        )


def test_complete_return_from_checkout_looks_payment_up(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.get(
        f"{API}/checkout/sessions/cs_test_1",
        json=session(status="complete", payment_intent="pi_test_1"),
    )
    api.get(f"{API}/payment_intents/pi_test_1", json=intent())
    payment = provider.complete_return(
        {"session_id": "cs_test_1", "redirect_status": "failed"}, idempotency_key="k"
    )
    assert payment.status is PaymentStatus.SUCCEEDED  # the query string's words are ignored
    assert [c.request.url.split("?")[0] for c in api.calls] == [
        f"{API}/checkout/sessions/cs_test_1",
        f"{API}/payment_intents/pi_test_1",
    ]


def test_complete_return_from_3ds_redirect(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.get(f"{API}/payment_intents/pi_test_1", json=intent(status="processing"))
    payment = provider.complete_return(
        {"payment_intent": "pi_test_1", "redirect_status": "succeeded"}, idempotency_key="k"
    )
    assert payment.status is PaymentStatus.PROCESSING


def test_complete_return_without_ids(provider: StripeProvider) -> None:
    with pytest.raises(ValidationError, match="neither"):
        provider.complete_return({"redirect_status": "succeeded"}, idempotency_key="k")


# -- customers, subscriptions --------------------------------------------------------------


def test_create_customer(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.post(
        f"{API}/customers", json=resource("customer", id="cus_1", email="a@example.com", name="Ada")
    )
    customer = provider.create_customer(
        email="a@example.com",
        name="Ada",
        idempotency_key="cust:a@example.com",
        metadata={"tier": "gold"},
    )
    assert form(api.calls[0]) == {"email": "a@example.com", "name": "Ada", "metadata[tier]": "gold"}
    assert api.calls[0].request.headers["Idempotency-Key"] == "cust:a@example.com"
    assert (customer.id, customer.email, customer.name) == ("cus_1", "a@example.com", "Ada")


def test_subscription_create_get_cancel(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    sub = resources()["subscription"]
    # pause_collection unset: Stripe's example has it set, which reads as paused
    api.post(
        f"{API}/subscriptions",
        json=resource("subscription", status="active", pause_collection=None),
    )
    api.get(f"{API}/subscriptions/{sub['id']}", json=resource("subscription", status="past_due"))
    api.post(
        f"{API}/subscriptions/{sub['id']}",
        json=resource("subscription", status="active", cancel_at_period_end=True),
    )
    api.delete(f"{API}/subscriptions/{sub['id']}", json=resource("subscription", status="canceled"))

    created = provider.create_subscription(
        customer_id="cus_QXg1o8vcGmoR32",
        price_id="price_1PgafmB7WZ01zgkW6dKueIc5",
        idempotency_key="sub:cus:price",
    )
    assert form(api.calls[0]) == {
        "customer": "cus_QXg1o8vcGmoR32",
        "items[0][price]": "price_1PgafmB7WZ01zgkW6dKueIc5",
    }
    assert api.calls[0].request.headers["Idempotency-Key"] == "sub:cus:price"
    assert created.status is SubscriptionStatus.ACTIVE
    assert created.price_id == "price_1PgafmB7WZ01zgkW6dKueIc5"
    assert created.customer_id == "cus_QXg1o8vcGmoR32"
    # current_period_end lives on the item in current API versions
    assert created.current_period_end is not None
    assert (
        int(created.current_period_end.timestamp()) == sub["items"]["data"][0]["current_period_end"]
    )

    assert provider.get_subscription(sub["id"]).status is SubscriptionStatus.PAST_DUE
    later = provider.cancel_subscription(sub["id"], at_period_end=True)
    assert form(api.calls[2]) == {"cancel_at_period_end": "true"}
    assert later.cancel_at_period_end is True
    now = provider.cancel_subscription(sub["id"])
    assert api.calls[3].request.method == "DELETE"
    assert now.status is SubscriptionStatus.CANCELED


@pytest.mark.parametrize("status", sorted(SUBSCRIPTION_STATUS))
def test_every_subscription_status_maps(status: str) -> None:
    assert (
        # pause_collection unset: Stripe's example has it set, which reads as paused
        subscription_from_stripe(
            resource("subscription", status=status, pause_collection=None)
        ).status
        is (SUBSCRIPTION_STATUS[status])
    )


# -- invoices ------------------------------------------------------------------------------


@pytest.mark.parametrize("send", [False, True])
def test_invoice_on_purchase_flow(
    provider: StripeProvider, api: responses.RequestsMock, send: bool
) -> None:
    inv = resources()["invoice"]
    api.post(f"{API}/invoices", json=resource("invoice", status="draft"))
    api.post(f"{API}/invoiceitems", json=resource("invoiceitem"))
    api.post(f"{API}/invoiceitems", json=resource("invoiceitem"))
    api.post(f"{API}/invoices/{inv['id']}/finalize", json=resource("invoice", status="open"))
    final_status = "open" if send else "paid"
    api.post(
        f"{API}/invoices/{inv['id']}/{'send' if send else 'pay'}",
        json=resource(
            "invoice",
            status=final_status,
            amount_paid=0 if send else 1000,
            metadata={"order_id": "ord_9"},
        ),
    )
    invoice = provider.create_invoice(
        customer_id="cus_QXg1o8vcGmoR32",
        line_items=[
            LineItem(name="Setup", unit_amount=Money.of("5", "USD")),
            LineItem(name="Seat", unit_amount=Money.of("2.50", "USD"), quantity=2),
        ],
        idempotency_key="ord_9:invoice",
        order_id="ord_9",
        description="Order 9",
        send=send,
    )
    draft = form(api.calls[0])
    assert draft["customer"] == "cus_QXg1o8vcGmoR32"
    assert draft["currency"] == "usd"
    assert draft["collection_method"] == ("send_invoice" if send else "charge_automatically")
    assert draft["metadata[order_id]"] == "ord_9"
    assert draft["pending_invoice_items_behavior"] == "exclude"
    assert ("days_until_due" in draft) is send
    assert form(api.calls[1]) == {
        "customer": "cus_QXg1o8vcGmoR32",
        "invoice": inv["id"],
        "currency": "usd",
        "unit_amount_decimal": "500",
        "quantity": "1",
        "description": "Setup",
    }
    assert form(api.calls[2])["unit_amount_decimal"] == "250"
    assert form(api.calls[2])["quantity"] == "2"
    keys = [c.request.headers["Idempotency-Key"] for c in api.calls]
    assert keys == [
        "ord_9:invoice:invoice",
        "ord_9:invoice:item:0",
        "ord_9:invoice:item:1",
        "ord_9:invoice:finalize",
        f"ord_9:invoice:{'send' if send else 'pay'}",
    ]
    assert invoice.status is INVOICE_STATUS[final_status]
    assert invoice.order_id == "ord_9"
    assert invoice.amount_due == Money(1000, "USD")


def test_invoice_mixed_currencies_refused(provider: StripeProvider) -> None:
    with pytest.raises(ValidationError, match="mix currencies"):
        provider.create_invoice(
            customer_id="c",
            idempotency_key="k",
            line_items=[
                LineItem(name="a", unit_amount=Money(100, "USD")),
                LineItem(name="b", unit_amount=Money(100, "EUR")),
            ],
        )


@pytest.mark.parametrize("status", sorted(INVOICE_STATUS))
def test_every_invoice_status_maps(status: str) -> None:
    assert invoice_from_stripe(resource("invoice", status=status)).status is INVOICE_STATUS[status]


# -- disputes ------------------------------------------------------------------------------


def test_get_dispute(provider: StripeProvider, api: responses.RequestsMock) -> None:
    dp = resources()["dispute"]
    api.get(f"{API}/disputes/{dp['id']}", json=resource("dispute", payment_intent="pi_test_1"))
    dispute = provider.get_dispute(dp["id"])
    assert dispute.payment_id == "pi_test_1"
    assert dispute.status is DisputeStatus.OPEN  # warning_needs_response
    assert dispute.amount == Money(1000, "USD")
    assert dispute.reason == "general"
    assert dispute.evidence_due_by is not None
    assert int(dispute.evidence_due_by.timestamp()) == dp["evidence_details"]["due_by"]


@pytest.mark.parametrize("status", sorted(DISPUTE_STATUS))
def test_every_dispute_status_maps(status: str) -> None:
    assert dispute_from_stripe(resource("dispute", status=status)).status is DISPUTE_STATUS[status]


def test_base_url_points_the_sdk_elsewhere(api: responses.RequestsMock) -> None:
    provider = StripeProvider(api_key=KEY, base_url="http://localhost:12111/")
    api.get("http://localhost:12111/v1/disputes/dp_1", json=resource("dispute", id="dp_1"))
    assert provider.get_dispute("dp_1").id == "dp_1"


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("https://s/ok", "https://s/ok?session_id={CHECKOUT_SESSION_ID}"),
        ("https://s/ok?o=1", "https://s/ok?o=1&session_id={CHECKOUT_SESSION_ID}"),
        ("https://s/ok#top", "https://s/ok?session_id={CHECKOUT_SESSION_ID}#top"),
        ("https://s/ok?sid={CHECKOUT_SESSION_ID}", "https://s/ok?sid={CHECKOUT_SESSION_ID}"),
    ],
)
def test_checkout_success_url_asks_for_the_session_id(
    provider: StripeProvider, api: responses.RequestsMock, given: str, sent: str
) -> None:
    # without the placeholder Stripe's redirect carries no id for complete_return to look up
    api.post(f"{API}/checkout/sessions", json=session(mode="subscription", subscription="sub_9"))
    provider.create_checkout_session(
        order_id="ord_4",
        line_items=[],
        success_url=given,
        cancel_url="https://s/no",
        idempotency_key="ord_4:checkout",
        mode="subscription",
        price_id="price_basic",
    )
    assert form(api.calls[0])["success_url"] == sent
