"""PayPal adapter: settings, amounts, Orders v2 flow, refunds, checkout, subscriptions,
disputes, invoices and error mapping, over ``responses`` (OAuth token call mocked too).

Request and response bodies are checked against PayPal's OpenAPI specs in
../shared/reference/paypal when that directory exists (see ``tests/paypal_support.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import responses
from hypothesis import given
from hypothesis import strategies as st

from paygate import Money
from paygate.errors import (
    AuthenticationError,
    CardDeclined,
    ConfigurationError,
    IdempotencyConflict,
    InvalidAmount,
    InvalidRequest,
    NotFound,
    NotSupported,
    ProviderUnavailable,
    RateLimited,
    ValidationError,
)
from paygate.models import (
    CheckoutStatus,
    DisputeStatus,
    InvoiceStatus,
    LineItem,
    PaymentStatus,
    RefundStatus,
    SubscriptionStatus,
)
from paygate.provider import Capability, create_provider
from paygate.providers.paypal import (
    PAYPAL_CURRENCIES,
    PAYPAL_WHOLE_UNIT_CURRENCIES,
    PayPalProvider,
    _money_field,
    translate_error,
)
from tests.paypal_support import (
    ACCESS_TOKEN,
    API,
    CLIENT_SECRET,
    DISPUTES,
    INVOICING,
    ORDERS,
    PAYMENTS,
    SUBSCRIPTIONS,
    PayPalMock,
    authorization_json,
    capture_json,
    money,
    order_json,
    provider_settings,
    refund_json,
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


# -- settings ----------------------------------------------------------------------------------


def test_settings_from_environment_strings() -> None:
    provider = PayPalProvider(
        client_id="id", client_secret="s3cr3t", timeout="5", max_retries="2", mode="live"
    )
    assert provider.settings.timeout == 5.0
    assert provider.max_retries == 2
    assert provider.settings.mode == "live"
    assert provider.settings.verification == "offline"
    assert "s3cr3t" not in repr(provider) and "s3cr3t" not in repr(provider.settings)


def test_max_retries_defaults_to_none_and_registry_builds_it() -> None:
    provider = create_provider("paypal", **provider_settings())
    assert isinstance(provider, PayPalProvider)
    assert provider.max_retries is None
    assert provider.name == "paypal"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"client_id": "id"}, "client_secret"),
        ({"client_secret": "x"}, "client_id"),
        ({"client_id": "id", "client_secret": ""}, "client_secret"),
        ({"client_id": "id", "client_secret": "x", "mode": "production"}, "mode"),
        ({"client_id": "id", "client_secret": "x", "timeout": "0"}, "timeout"),
        ({"client_id": "id", "client_secret": "x", "max_retries": "-1"}, "max_retries"),
        ({"client_id": "id", "client_secret": "x", "verification": "none"}, "verification"),
        ({"client_id": "id", "client_secret": "x", "base_url": "ftp://x"}, "base_url"),
        ({"client_id": "id", "client_secret": "x", "base_url": "http://proxy.example"}, "base_url"),
        ({"client_id": "id", "client_secret": "x", "api_key": "sk"}, "api_key"),
    ],
)
def test_bad_settings_are_configuration_errors(settings: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        PayPalProvider(**settings)


def test_settings_error_never_echoes_the_secret() -> None:
    with pytest.raises(ConfigurationError) as info:
        PayPalProvider(client_id="", client_secret=CLIENT_SECRET, mode="bogus")
    assert CLIENT_SECRET not in str(info.value)
    assert "client_id" in str(info.value) and "mode" in str(info.value)


def test_capabilities_and_undeclared_operation(provider: PayPalProvider) -> None:
    assert Capability.CUSTOMERS not in provider.capabilities
    with pytest.raises(NotSupported):
        provider.create_customer(email="a@example.com", name="A", idempotency_key="k")


# -- amounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "value"),
    [
        (Money.of("19.99", "USD"), "19.99"),
        (Money.of("0.01", "EUR"), "0.01"),
        (Money.of("1000", "JPY"), "1000"),
        (Money.of("10.00", "HUF"), "10"),
        (Money.of("1234567.80", "GBP"), "1234567.80"),
    ],
)
def test_amount_sent_as_paypal_decimal_string(
    paypal: PayPalMock, provider: PayPalProvider, amount: Money, value: str
) -> None:
    paypal.on(
        "POST",
        "/v2/checkout/orders",
        order_json(value=value, currency=amount.currency),
        request_schema=(ORDERS, "order_request"),
        response_schema=(ORDERS, "order"),
    )
    payment = provider.create_payment(
        order_id="ord_1", amount=amount, payment_method=None, idempotency_key="k1"
    )
    sent = paypal.last("/v2/checkout/orders").body["purchase_units"][0]["amount"]
    assert sent == {"currency_code": amount.currency, "value": value}
    assert payment.amount == amount  # parsed back exactly


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        (Money.of("10.50", "HUF"), InvalidAmount),  # PayPal takes HUF/TWD in whole units
        (Money.of("10.5", "TWD"), InvalidAmount),
        (Money.of("1.000", "KWD"), ValidationError),  # not a PayPal currency
        (Money(0, "USD"), InvalidAmount),
        (Money(-100, "USD"), InvalidAmount),
    ],
)
def test_amounts_paypal_cannot_take_are_refused_before_sending(
    provider: PayPalProvider, amount: Money, error: type[Exception]
) -> None:
    with responses.RequestsMock() as rsps:  # any request would fail this test
        with pytest.raises(error, match=amount.currency):
            provider.create_payment(
                order_id="ord_1", amount=amount, payment_method=None, idempotency_key="k"
            )
        assert not rsps.calls


def test_payment_method_must_be_paypal_or_a_vault_id(provider: PayPalProvider) -> None:
    with responses.RequestsMock() as rsps:
        for bad in ("tok visa", "4242-4242/4242", "x" * 256):
            with pytest.raises(ValidationError, match="vault id"):
                provider.create_payment(
                    order_id="o", amount=Money.of("1", "USD"), payment_method=bad,
                    idempotency_key="k",
                )  # fmt: skip
        assert not rsps.calls


def test_vaulted_wallet_is_charged_at_once(paypal: PayPalMock, provider: PayPalProvider) -> None:
    paypal.on(
        "POST", "/v2/checkout/orders",
        order_json(status="COMPLETED", captures=[capture_json()]), status=201,
        request_schema=(ORDERS, "order_request"), response_schema=(ORDERS, "order"),
    )  # fmt: skip
    payment = provider.create_payment(
        order_id="ord_1", amount=Money.of("19.99", "USD"), payment_method="8kk8451t",
        idempotency_key="k", return_url="https://shop.example/return",
    )  # fmt: skip
    assert paypal.last("/v2/checkout/orders").body["payment_source"] == {
        "paypal": {"vault_id": "8kk8451t"}
    }
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.charge_id == CAPTURE


def test_refund_over_what_is_left_is_refused_before_sending(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", captures=[capture_json(status="PARTIALLY_REFUNDED")],
                         refunds=[refund_json(value="15.00")]))  # fmt: skip
    with pytest.raises(ValidationError, match="exceeds"):
        provider.refund_payment(ORDER, amount=Money.of("5.00", "USD"), idempotency_key="k")
    assert [c.path for c in paypal.calls] == [f"/v2/checkout/orders/{ORDER}"]


# -- Orders v2 ---------------------------------------------------------------------------------


def test_create_payment_builds_the_order(paypal: PayPalMock, provider: PayPalProvider) -> None:
    paypal.on(
        "POST",
        "/v2/checkout/orders",
        order_json(),
        status=201,
        request_schema=(ORDERS, "order_request"),
        response_schema=(ORDERS, "order"),
    )
    payment = provider.create_payment(
        order_id="ord_1",
        amount=Money.of("19.99", "USD"),
        payment_method=None,
        idempotency_key="paygate:ord_1:create:1999USD",
        description="Two tees",
        return_url="https://shop.example/return",
    )
    call = paypal.last("/v2/checkout/orders")
    assert call.headers["PayPal-Request-Id"] == "paygate:ord_1:create:1999USD"
    assert call.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert call.body["intent"] == "CAPTURE"
    unit = call.body["purchase_units"][0]
    assert unit["custom_id"] == unit["invoice_id"] == "ord_1"
    assert unit["description"] == "Two tees"
    context = call.body["payment_source"]["paypal"]["experience_context"]
    assert context["return_url"] == "https://shop.example/return"
    assert payment.id == ORDER
    assert payment.order_id == "ord_1"
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert payment.redirect_url == f"https://www.sandbox.paypal.com/checkoutnow?token={ORDER}"
    assert payment.metadata["paypal_order_id"] == ORDER
    assert payment.charge_id is None


def test_manual_capture_creates_an_authorize_order(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on(
        "POST", "/v2/checkout/orders", order_json(intent="AUTHORIZE"),
        request_schema=(ORDERS, "order_request"), response_schema=(ORDERS, "order"),
    )  # fmt: skip
    provider.create_payment(
        order_id="ord_1", amount=Money.of("5", "USD"), payment_method="paypal",
        idempotency_key="k", capture="manual",
    )  # fmt: skip
    assert paypal.last("/v2/checkout/orders").body["intent"] == "AUTHORIZE"


def test_long_idempotency_key_is_hashed_deterministically(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    for _ in range(2):
        paypal.on("POST", "/v2/checkout/orders", order_json())
    key = "paygate:" + "x" * 190
    for _ in range(2):
        provider.create_payment(
            order_id="ord_1", amount=Money.of("1", "USD"), payment_method=None,
            idempotency_key=key,
        )  # fmt: skip
    sent = [c.headers["PayPal-Request-Id"] for c in paypal.calls]
    assert sent[0] == sent[1] and len(sent[0]) <= 108 and sent[0] != key


def test_complete_return_captures_the_approved_order(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", order_json(status="APPROVED"),
              response_schema=(ORDERS, "order"))  # fmt: skip
    paypal.on(
        "POST",
        f"/v2/checkout/orders/{ORDER}/capture",
        order_json(status="COMPLETED", captures=[capture_json()]),
        status=201,
        request_schema=(ORDERS, "order_capture_request"),
        response_schema=(ORDERS, "order"),
    )
    payment = provider.complete_return(
        {"token": ORDER, "PayerID": "QYR5Z8XDVJNXQ", "status": "succeeded"},
        idempotency_key="paygate:ord_1:capture",
    )
    assert (
        paypal.last(f"/v2/checkout/orders/{ORDER}/capture").headers["PayPal-Request-Id"]
        == "paygate:ord_1:capture"
    )
    assert payment.id == ORDER
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.charge_id == CAPTURE
    assert payment.amount_captured == Money.of("19.99", "USD")
    assert payment.metadata["paypal_capture_id"] == CAPTURE
    assert payment.redirect_url is None


def test_complete_return_trusts_paypal_not_the_query_string(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", order_json(status="PAYER_ACTION_REQUIRED"))
    payment = provider.complete_return({"token": ORDER, "status": "COMPLETED"}, idempotency_key="k")
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert [c.path for c in paypal.calls] == [f"/v2/checkout/orders/{ORDER}"]  # no capture


def test_complete_return_twice_does_not_capture_again(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", captures=[capture_json()]))  # fmt: skip
    payment = provider.complete_return({"token": ORDER}, idempotency_key="k")
    assert payment.status is PaymentStatus.SUCCEEDED
    assert len(paypal.calls) == 1


def test_complete_return_without_token(provider: PayPalProvider) -> None:
    with pytest.raises(ValidationError, match="token"):
        provider.complete_return({"PayerID": "X"}, idempotency_key="k")


def test_declined_capture_raises_card_declined(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", order_json(status="APPROVED"))
    paypal.on(
        "POST",
        f"/v2/checkout/orders/{ORDER}/capture",
        {
            "name": "UNPROCESSABLE_ENTITY",
            "details": [
                {
                    "issue": "INSTRUMENT_DECLINED",
                    "description": "The instrument presented was either declined by the processor or bank, or it can't be used for this payment.",
                }
            ],
            "message": "The requested action could not be performed.",
            "debug_id": "f8b6c3e9a1d2",
        },
        status=422,
        headers={"PayPal-Debug-Id": "f8b6c3e9a1d2"},
    )
    with pytest.raises(CardDeclined) as info:
        provider.complete_return({"token": ORDER}, idempotency_key="k")
    assert info.value.decline_code == "card_declined"
    assert info.value.code == "INSTRUMENT_DECLINED"
    assert info.value.request_id == "f8b6c3e9a1d2"
    assert info.value.http_status == 422
    assert not info.value.retryable


def test_authorize_then_partial_capture(paypal: PayPalMock, provider: PayPalProvider) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="APPROVED", intent="AUTHORIZE"))  # fmt: skip
    authorized = order_json(status="COMPLETED", intent="AUTHORIZE",
                            authorizations=[authorization_json()])  # fmt: skip
    paypal.on(
        "POST", f"/v2/checkout/orders/{ORDER}/authorize", authorized,
        request_schema=(ORDERS, "order_authorize_request"),
        response_schema=(ORDERS, "order_authorize_response"),
    )  # fmt: skip
    payment = provider.complete_return({"token": ORDER}, idempotency_key="k-auth")
    assert payment.status is PaymentStatus.AUTHORIZED
    assert payment.metadata["paypal_authorization_id"] == AUTHORIZATION
    assert (
        paypal.last(f"/v2/checkout/orders/{ORDER}/authorize").headers["PayPal-Request-Id"]
        == "k-auth"
    )

    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", authorized)
    paypal.on(
        "POST", f"/v2/payments/authorizations/{AUTHORIZATION}/capture",
        capture_json(value="15.00", authorization_id=AUTHORIZATION), status=201,
        request_schema=(PAYMENTS, "capture_request"), response_schema=(PAYMENTS, "capture-2"),
    )  # fmt: skip
    captured = provider.capture_payment(
        ORDER, amount=Money.of("15.00", "USD"), idempotency_key="k-capture"
    )
    call = paypal.last(f"/v2/payments/authorizations/{AUTHORIZATION}/capture")
    assert call.body == {"final_capture": True, "amount": money("15.00")}
    assert call.headers["PayPal-Request-Id"] == "k-capture"
    assert captured.status is PaymentStatus.SUCCEEDED
    assert captured.amount == Money.of("19.99", "USD")
    assert captured.amount_captured == Money.of("15.00", "USD")
    assert captured.charge_id == CAPTURE


def test_cancel_voids_the_authorization(paypal: PayPalMock, provider: PayPalProvider) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", intent="AUTHORIZE",
                         authorizations=[authorization_json()]))  # fmt: skip
    paypal.on("POST", f"/v2/payments/authorizations/{AUTHORIZATION}/void",
              authorization_json(status="VOIDED"),
              response_schema=(PAYMENTS, "authorization-2"))  # fmt: skip
    payment = provider.cancel_payment(ORDER, idempotency_key="k")
    assert payment.status is PaymentStatus.CANCELED


def test_cancel_without_authorization_is_refused(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", captures=[capture_json()]))  # fmt: skip
    with pytest.raises(InvalidRequest, match="no open authorization"):
        provider.cancel_payment(ORDER, idempotency_key="k")
    assert len(paypal.calls) == 1


@pytest.mark.parametrize("partial", [True, False])
def test_refund_the_capture(paypal: PayPalMock, provider: PayPalProvider, partial: bool) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", captures=[capture_json()]))  # fmt: skip
    value = "5.00" if partial else "19.99"
    paypal.on(
        "POST", f"/v2/payments/captures/{CAPTURE}/refund", refund_json(value=value), status=201,
        request_schema=(PAYMENTS, "refund_request"), response_schema=(PAYMENTS, "refund"),
    )  # fmt: skip
    refund = provider.refund_payment(
        ORDER,
        amount=Money.of("5.00", "USD") if partial else None,
        reason="Damaged",
        idempotency_key="k-refund",
    )
    call = paypal.last(f"/v2/payments/captures/{CAPTURE}/refund")
    assert call.headers["PayPal-Request-Id"] == "k-refund"
    assert call.body.get("amount") == (money("5.00") if partial else None)
    assert call.body["note_to_payer"] == "Damaged"
    assert refund.payment_id == ORDER
    assert refund.order_id == "ord_1"
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.amount == Money.of(value, "USD")


def test_refund_minimal_answer_uses_the_requested_amount(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", captures=[capture_json(status="PARTIALLY_REFUNDED")],
                         refunds=[refund_json(refund_id="1AAAAAAAAAAAAAAAA", value="4.99")]))  # fmt: skip
    minimal = {"id": "1JU08902781691411", "status": "PENDING", "links": []}
    paypal.on("POST", f"/v2/payments/captures/{CAPTURE}/refund", minimal, status=201)
    refund = provider.refund_payment(ORDER, idempotency_key="k")
    assert refund.amount == Money.of("15.00", "USD")  # the rest: 19.99 - 4.99
    assert refund.status is RefundStatus.PENDING


def test_refund_of_an_uncaptured_order_is_refused(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", order_json(status="APPROVED"))
    with pytest.raises(InvalidRequest, match="no completed capture"):
        provider.refund_payment(ORDER, idempotency_key="k")


@pytest.mark.parametrize(
    ("captures", "refunds", "status", "refunded"),
    [
        ([capture_json(status="PENDING")], [], PaymentStatus.PROCESSING, "0"),
        ([capture_json(status="DECLINED")], [], PaymentStatus.FAILED, "0"),
        ([capture_json(status="PARTIALLY_REFUNDED")], [refund_json(value="5.00")],
         PaymentStatus.PARTIALLY_REFUNDED, "5.00"),
        ([capture_json(status="REFUNDED")], [refund_json(value="19.99")],
         PaymentStatus.REFUNDED, "19.99"),
        ([capture_json(status="REFUNDED")], [], PaymentStatus.REFUNDED, "19.99"),
    ],
)  # fmt: skip
def test_get_payment_reads_captures_and_refunds(
    paypal: PayPalMock,
    provider: PayPalProvider,
    captures: list[dict[str, object]],
    refunds: list[dict[str, object]],
    status: PaymentStatus,
    refunded: str,
) -> None:
    paypal.on(
        "GET", f"/v2/checkout/orders/{ORDER}",
        order_json(status="COMPLETED", captures=captures, refunds=refunds),
        response_schema=(ORDERS, "order"),
    )  # fmt: skip
    payment = provider.get_payment(ORDER)
    assert payment.status is status
    assert payment.amount_refunded == Money.of(refunded, "USD")
    if status is PaymentStatus.FAILED:
        assert payment.failure is not None and payment.failure.decline_code == "card_declined"


@pytest.mark.parametrize(
    ("order_status", "expected"),
    [
        ("CREATED", PaymentStatus.REQUIRES_ACTION),
        ("PAYER_ACTION_REQUIRED", PaymentStatus.REQUIRES_ACTION),
        ("APPROVED", PaymentStatus.PROCESSING),
        ("VOIDED", PaymentStatus.CANCELED),
        ("SAVED", PaymentStatus.PENDING),
    ],
)
def test_order_status_table(
    paypal: PayPalMock, provider: PayPalProvider, order_status: str, expected: PaymentStatus
) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", order_json(status=order_status))
    assert provider.get_payment(ORDER).status is expected


# -- checkout, subscriptions, disputes, invoices ------------------------------------------------


def test_checkout_session_is_an_order_with_items(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("POST", "/v2/checkout/orders", order_json(ref="ord_2", value="20.00"),
              request_schema=(ORDERS, "order_request"))  # fmt: skip
    session = provider.create_checkout_session(
        order_id="ord_2",
        line_items=[LineItem(name="Tee", unit_amount=Money.of("10", "USD"), quantity=2)],
        success_url="https://shop.example/ok",
        cancel_url="https://shop.example/cancel",
        idempotency_key="k",
    )
    unit = paypal.last("/v2/checkout/orders").body["purchase_units"][0]
    assert unit["amount"] == {**money("20.00"), "breakdown": {"item_total": money("20.00")}}
    assert unit["items"] == [{"name": "Tee", "quantity": "2", "unit_amount": money("10.00")}]
    assert session.id == session.payment_id == ORDER
    assert session.status is CheckoutStatus.OPEN
    assert session.url and session.url.startswith("https://www.sandbox.paypal.com/")
    assert session.amount_total == Money.of("20.00", "USD")
    with pytest.raises(NotSupported):
        provider.create_checkout_session(
            order_id="o", line_items=[], success_url="u", cancel_url="c",
            idempotency_key="k", mode="subscription",
        )  # fmt: skip


SUBSCRIPTION = {
    "id": "I-BW452GLLEP1G",
    "plan_id": "P-5ML4271244454362WXNWU5NQ",
    "status": "APPROVAL_PENDING",
    "custom_id": "cus_1",
    "create_time": "2026-11-22T00:00:00Z",
    "links": [
        {
            "href": "https://www.sandbox.paypal.com/webapps/billing/subscriptions?ba_token=BA-2M539689T3856352J",
            "rel": "approve",
            "method": "GET",
        },
        {"href": f"{API}/v1/billing/subscriptions/I-BW452GLLEP1G", "rel": "self", "method": "GET"},
    ],
}


def test_subscription_create_get_cancel(paypal: PayPalMock, provider: PayPalProvider) -> None:
    paypal.on("POST", "/v1/billing/subscriptions", SUBSCRIPTION, status=201,
              request_schema=(SUBSCRIPTIONS, "subscription_request_post"),
              response_schema=(SUBSCRIPTIONS, "subscription"))  # fmt: skip
    subscription = provider.create_subscription(
        customer_id="cus_1", price_id="P-5ML4271244454362WXNWU5NQ", idempotency_key="k-sub"
    )
    call = paypal.last("/v1/billing/subscriptions")
    assert call.body == {"plan_id": "P-5ML4271244454362WXNWU5NQ", "custom_id": "cus_1"}
    assert call.headers["PayPal-Request-Id"] == "k-sub"
    assert subscription.status is SubscriptionStatus.PENDING
    assert subscription.redirect_url and "ba_token" in subscription.redirect_url
    assert subscription.customer_id == "cus_1"

    path = "/v1/billing/subscriptions/I-BW452GLLEP1G"
    active = {**SUBSCRIPTION, "status": "ACTIVE",
              "billing_info": {"outstanding_balance": money("0.00"), "failed_payments_count": 0,
                               "next_billing_time": "2026-12-22T10:00:00Z"}}  # fmt: skip
    paypal.on("GET", path, active, response_schema=(SUBSCRIPTIONS, "subscription"))
    fetched = provider.get_subscription("I-BW452GLLEP1G")
    assert fetched.status is SubscriptionStatus.ACTIVE
    assert fetched.current_period_end is not None and fetched.current_period_end.month == 12
    assert fetched.redirect_url is None

    paypal.on("POST", f"{path}/cancel", None, status=204,
              request_schema=(SUBSCRIPTIONS, "subscription_cancel_request"))  # fmt: skip
    paypal.on("GET", path, {**SUBSCRIPTION, "status": "CANCELLED"})
    assert provider.cancel_subscription("I-BW452GLLEP1G").status is SubscriptionStatus.CANCELED
    with pytest.raises(NotSupported):
        provider.cancel_subscription("I-BW452GLLEP1G", at_period_end=True)


@pytest.mark.parametrize(
    ("paypal_status", "expected"),
    [("APPROVAL_PENDING", SubscriptionStatus.PENDING), ("APPROVED", SubscriptionStatus.INCOMPLETE),
     ("ACTIVE", SubscriptionStatus.ACTIVE), ("SUSPENDED", SubscriptionStatus.PAUSED),
     ("CANCELLED", SubscriptionStatus.CANCELED), ("EXPIRED", SubscriptionStatus.CANCELED)],
)  # fmt: skip
def test_subscription_status_table(
    paypal: PayPalMock, provider: PayPalProvider, paypal_status: str, expected: SubscriptionStatus
) -> None:
    paypal.on("GET", "/v1/billing/subscriptions/I-1", {**SUBSCRIPTION, "id": "I-1",
                                                        "status": paypal_status})  # fmt: skip
    assert provider.get_subscription("I-1").status is expected


def dispute_json(status: str = "OPEN", outcome: str | None = None) -> dict[str, object]:
    dispute: dict[str, object] = {
        "dispute_id": "PP-D-27803",
        "create_time": "2026-11-22T01:00:00.000Z",
        "update_time": "2026-11-22T01:00:00.000Z",
        "disputed_transactions": [
            {"seller_transaction_id": CAPTURE, "custom": "ord_1",
             "gross_amount": money("19.99")}
        ],
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
        "status": status,
        "dispute_amount": money("19.99"),
        "seller_response_due_date": "2026-12-02T01:00:00.000Z",
        "dispute_life_cycle_stage": "CHARGEBACK",
        "links": [{"href": f"{API}/v1/customer/disputes/PP-D-27803", "rel": "self", "method": "GET"}],
    }  # fmt: skip
    if outcome:
        dispute["dispute_outcome"] = {"outcome_code": outcome, "amount_refunded": money("19.99")}
    return dispute


@pytest.mark.parametrize(
    ("status", "outcome", "expected"),
    [
        ("OPEN", None, DisputeStatus.OPEN),
        ("WAITING_FOR_SELLER_RESPONSE", None, DisputeStatus.OPEN),
        ("UNDER_REVIEW", None, DisputeStatus.UNDER_REVIEW),
        ("RESOLVED", "RESOLVED_SELLER_FAVOUR", DisputeStatus.WON),
        ("RESOLVED", "RESOLVED_BUYER_FAVOUR", DisputeStatus.LOST),
        ("RESOLVED", "NONE", DisputeStatus.CLOSED),
    ],
)
def test_get_dispute(
    paypal: PayPalMock,
    provider: PayPalProvider,
    status: str,
    outcome: str | None,
    expected: DisputeStatus,
) -> None:
    paypal.on("GET", "/v1/customer/disputes/PP-D-27803", dispute_json(status, outcome),
              response_schema=(DISPUTES, "dispute"))  # fmt: skip
    paypal.on("GET", f"/v2/payments/captures/{CAPTURE}", capture_json(),
              response_schema=(PAYMENTS, "capture-2"))  # fmt: skip
    dispute = provider.get_dispute("PP-D-27803")
    assert dispute.status is expected
    assert dispute.payment_id == ORDER  # the disputed capture's order: the Payment's id
    assert dispute.order_id == "ord_1"
    assert dispute.amount == Money.of("19.99", "USD")
    assert dispute.evidence_due_by is not None


INVOICE = {
    "id": "INV2-Z56S-5LLA-Q52L-CPZ5",
    "status": "DRAFT",
    "detail": {
        "invoice_number": "0001",
        "reference": "ord_9",
        "currency_code": "USD",
        "metadata": {"create_time": "2026-11-22T00:00:00Z",
                     "recipient_view_url": "https://www.sandbox.paypal.com/invoice/p/#Z56S5LLAQ52LCPZ5"},
    },
    "primary_recipients": [{"billing_info": {"email_address": "bill-me@example.com"}}],
    "items": [{"name": "Consulting", "quantity": "2", "unit_amount": money("10.00")}],
    "amount": money("20.00"),
    "links": [],
}  # fmt: skip


def test_invoice_create_and_send(paypal: PayPalMock, provider: PayPalProvider) -> None:
    paypal.on("POST", "/v2/invoicing/invoices", INVOICE, status=201,
              request_schema=(INVOICING, "invoice"), response_schema=(INVOICING, "invoice"))  # fmt: skip
    path = "/v2/invoicing/invoices/INV2-Z56S-5LLA-Q52L-CPZ5"
    paypal.on("POST", f"{path}/send", {"href": "https://www.sandbox.paypal.com/invoice/p/#Z56S5LLAQ52LCPZ5", "rel": "payer-view", "method": "GET"},
              request_schema=(INVOICING, "notification"))  # fmt: skip
    paypal.on("GET", path, {**INVOICE, "status": "SENT"})
    invoice = provider.create_invoice(
        customer_id="bill-me@example.com",
        line_items=[LineItem(name="Consulting", unit_amount=Money.of("10", "USD"), quantity=2)],
        idempotency_key="k-inv",
        order_id="ord_9",
        description="November",
        send=True,
    )
    created = paypal.last("/v2/invoicing/invoices")
    assert created.body["detail"] == {
        "currency_code": "USD",
        "reference": "ord_9",
        "note": "November",
    }
    assert (
        created.body["primary_recipients"][0]["billing_info"]["email_address"]
        == "bill-me@example.com"
    )
    assert created.headers["PayPal-Request-Id"] == "k-inv"
    assert paypal.last(f"{path}/send").body == {"send_to_recipient": True}
    assert invoice.status is InvoiceStatus.OPEN
    assert invoice.amount_due == Money.of("20.00", "USD")
    assert invoice.order_id == "ord_9"
    assert invoice.customer_id == "bill-me@example.com"


def test_invoice_needs_an_email(provider: PayPalProvider) -> None:
    with pytest.raises(ValidationError, match="email"):
        provider.create_invoice(
            customer_id="cus_1", line_items=[LineItem("x", Money.of("1", "USD"))],
            idempotency_key="k",
        )  # fmt: skip


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error", "retryable"),
    [
        (404, {"name": "RESOURCE_NOT_FOUND", "details": [{"issue": "INVALID_RESOURCE_ID"}]}, NotFound, False),
        (422, {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "ORDER_NOT_APPROVED"}]}, InvalidRequest, False),
        (422, {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "DUPLICATE_INVOICE_ID"}]}, IdempotencyConflict, False),
        (422, {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "TRANSACTION_REFUSED"}]}, CardDeclined, False),
        (429, {"name": "RATE_LIMIT_REACHED"}, RateLimited, True),
        (500, {"name": "INTERNAL_SERVER_ERROR"}, ProviderUnavailable, True),
        (503, {"name": "SERVICE_UNAVAILABLE"}, ProviderUnavailable, True),
        (403, {"name": "NOT_AUTHORIZED"}, AuthenticationError, False),
        (400, {"name": "INVALID_REQUEST", "details": [{"issue": "INVALID_PARAMETER_VALUE"}]}, InvalidRequest, False),
    ],
)  # fmt: skip
def test_http_errors_map_to_paygate_errors(
    paypal: PayPalMock,
    provider: PayPalProvider,
    status: int,
    body: dict[str, object],
    error: type[Exception],
    retryable: bool,
) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", {**body, "debug_id": "abc123"},
              status=status, headers={"PayPal-Debug-Id": "abc123"})  # fmt: skip
    with pytest.raises(error) as info:
        provider.get_payment(ORDER)
    assert type(info.value) is error
    assert info.value.retryable is retryable  # type: ignore[attr-defined]
    assert info.value.http_status == status  # type: ignore[attr-defined]
    assert info.value.request_id == "abc123"  # type: ignore[attr-defined]


def test_network_failure_is_retryable_unavailable(provider: PayPalProvider) -> None:
    with responses.RequestsMock() as rsps:
        mock = PayPalMock(rsps)
        mock.token()
        rsps.add(responses.GET, f"{API}/v2/checkout/orders/{ORDER}",
                 body=requests.ConnectionError("connection reset"))  # fmt: skip
        with pytest.raises(ProviderUnavailable) as info:
            provider.get_payment(ORDER)
    assert info.value.retryable


def test_translate_error_uses_issue_codes() -> None:
    error = translate_error(
        422, {"details": [{"issue": "CARD_EXPIRED", "description": "Card expired."}]}, None
    )
    assert isinstance(error, CardDeclined) and error.decline_code == "expired_card"
    assert "Card expired." in str(error)
    assert isinstance(translate_error(502, None, None), ProviderUnavailable)
    assert isinstance(translate_error(418, None, None), InvalidRequest)


# -- spec conformance of the fixtures themselves ---------------------------------------------


def test_fixtures_match_paypal_specs(reference_dir: object) -> None:
    from tests.paypal_support import validate

    validate(ORDERS, "order", order_json(status="COMPLETED", captures=[capture_json()],
                                         refunds=[refund_json()]))  # fmt: skip
    validate(PAYMENTS, "capture-2", capture_json())
    validate(PAYMENTS, "refund", refund_json())
    validate(PAYMENTS, "authorization-2", authorization_json())
    validate(SUBSCRIPTIONS, "subscription", SUBSCRIPTION)
    validate(DISPUTES, "dispute", dispute_json("RESOLVED", "RESOLVED_BUYER_FAVOUR"))
    validate(INVOICING, "invoice", INVOICE)
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):  # the validator does bite
        validate(ORDERS, "order_request", {"intent": "SELL", "purchase_units": []})


def test_return_after_another_request_captured_the_order(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", order_json(status="APPROVED"))
    paypal.on(
        "POST",
        f"/v2/checkout/orders/{ORDER}/capture",
        {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "ORDER_ALREADY_CAPTURED"}]},
        status=422,
    )
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", captures=[capture_json()]))  # fmt: skip
    payment = provider.complete_return({"token": ORDER}, idempotency_key="k")
    assert payment.status is PaymentStatus.SUCCEEDED and payment.charge_id == CAPTURE


def test_2xx_body_that_is_not_json_is_unavailable(provider: PayPalProvider) -> None:
    with responses.RequestsMock() as rsps:
        PayPalMock(rsps).token()
        rsps.add(responses.GET, f"{API}/v2/checkout/orders/{ORDER}", body="<html>proxy</html>")
        with pytest.raises(ProviderUnavailable, match="not JSON") as info:
            provider.get_payment(ORDER)
    assert info.value.retryable


@given(
    currency=st.sampled_from(sorted(PAYPAL_CURRENCIES)),
    minor=st.integers(min_value=1, max_value=10**17),
)
def test_amounts_round_trip_exactly_for_every_paypal_currency(currency: str, minor: int) -> None:
    amount = Money(minor, currency)
    whole_units_only = currency in PAYPAL_WHOLE_UNIT_CURRENCIES and amount.exponent > 0
    if whole_units_only and minor % 10**amount.exponent:
        with pytest.raises(InvalidAmount):
            _money_field(amount)
        return
    field = _money_field(amount)
    assert field["currency_code"] == currency
    assert "e" not in field["value"].lower() and "-" not in field["value"]
    if whole_units_only:
        assert "." not in field["value"]
    assert Money.of(field["value"], currency) == amount
