"""The Square adapter over mocked HTTP: the real SDK, an ``httpx.MockTransport`` underneath.

Request and answer bodies are validated against Square's OpenAPI spec by the fixtures in
``tests.test_square_spec`` (where the reference is present).
"""

# ruff: noqa: F811  (the shared fixtures are imported from tests.test_square_spec)
from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import paygate
from paygate import (
    AuthenticationError,
    CardDeclined,
    CheckoutStatus,
    ConfigurationError,
    DisputeStatus,
    IdempotencyConflict,
    InvalidRequest,
    InvoiceStatus,
    LineItem,
    Money,
    NotFound,
    PaymentStatus,
    ProviderUnavailable,
    RateLimited,
    RefundStatus,
    SubscriptionStatus,
    ValidationError,
)
from paygate.provider import Capability, PaymentProvider, implements
from paygate.providers._square_mock import DECLINING_SOURCES, PENDING_SOURCE, SquareMockAPI
from paygate.providers.square import (
    DECLINE_CODES,
    IDEMPOTENCY_KEY_MAX,
    SquareProvider,
    payment_from_square,
    square_idempotency_key,
)
from tests.test_square_spec import ACCESS_TOKEN, SIGNATURE_KEY, square, square_api  # noqa: F401

USD = "USD"
OK = "cnon:card-nonce-ok"


def _pay(provider: SquareProvider, order_id: str = "ord_1", amount: str = "19.99", **kw: object):
    return provider.create_payment(
        order_id=order_id,
        amount=Money.of(amount, USD),
        payment_method=kw.pop("payment_method", OK),  # type: ignore[arg-type]
        idempotency_key=kw.pop("idempotency_key", f"{order_id}:create:{amount}"),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


# -- configuration -----------------------------------------------------------------------------


def test_sandbox_is_the_default_and_production_must_be_named() -> None:
    sandbox = SquareProvider(access_token="t", location_id="L")
    assert sandbox.settings.api_base_url == "https://connect.squareupsandbox.com"
    production = SquareProvider(access_token="t", location_id="L", environment=" PRODUCTION ")
    assert production.settings.api_base_url == "https://connect.squareup.com"
    custom = SquareProvider(access_token="t", location_id="L", base_url="http://127.0.0.1:9/")
    assert custom.settings.api_base_url == "http://127.0.0.1:9"
    with pytest.raises(ConfigurationError, match="environment"):
        SquareProvider(access_token="t", location_id="L", environment="live")
    for provider in (sandbox, production, custom):
        provider.close()


@pytest.mark.parametrize(
    "base_url",
    ["http://proxy.example", "http://10.0.0.5:8080", "ftp://connect.squareup.com", "https://", "x"],
)
def test_base_url_must_be_https_except_to_this_machine(base_url: str) -> None:
    # the access token travels in every request's Authorization header
    with pytest.raises(ConfigurationError, match="base_url") as info:
        SquareProvider(access_token="EAAAsecret-token", location_id="L", base_url=base_url)
    assert "EAAAsecret-token" not in str(info.value)


def test_base_url_https_proxy_and_loopback_fakes_are_accepted() -> None:
    for base_url, expected in [
        ("https://square-proxy.example/", "https://square-proxy.example"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://[::1]:9", "http://[::1]:9"),
    ]:
        provider = SquareProvider(access_token="t", location_id="L", base_url=base_url)
        assert provider.settings.api_base_url == expected
        provider.close()


def test_requests_go_to_the_sandbox_host_by_default() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(
            404, json={"errors": [{"category": "INVALID_REQUEST_ERROR", "code": "NOT_FOUND"}]}
        )

    provider = SquareProvider(
        access_token="t",
        location_id="L",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    with pytest.raises(NotFound):
        provider.get_payment("nope")
    assert hosts == ["connect.squareupsandbox.com"]


def test_settings_from_environment_strings_are_coerced() -> None:
    provider = SquareProvider(
        access_token="t", location_id="L", timeout="12.5", max_retries="3", invoice_due_days="7"
    )
    assert provider.settings.timeout == 12.5
    assert provider.max_retries == 3
    assert SquareProvider(access_token="t", location_id="L").max_retries is None
    provider.close()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"location_id": "L"}, "access_token"),
        ({"access_token": "  ", "location_id": "L"}, "access_token"),
        ({"access_token": ACCESS_TOKEN}, "location_id"),
        ({"access_token": ACCESS_TOKEN, "location_id": "L", "timeout": "-1"}, "timeout"),
        ({"access_token": ACCESS_TOKEN, "location_id": "L", "max_retries": "lots"}, "max_retries"),
        ({"access_token": ACCESS_TOKEN, "location_id": "L", "api_key": "x"}, "api_key"),
    ],
)
def test_bad_settings_name_the_setting_never_the_secret(
    settings: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named) as caught:
        SquareProvider(**settings)
    assert ACCESS_TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None  # pydantic's error (which echoes inputs) is not chained


def test_repr_and_settings_never_show_secrets(square: SquareProvider) -> None:
    text = repr(square) + repr(square.settings) + str(square.settings.model_dump())
    assert ACCESS_TOKEN not in text and SIGNATURE_KEY not in text
    assert "LOC1" in repr(square)


def test_registry_and_protocol(square: SquareProvider) -> None:
    assert paygate.provider.load_provider_class("square") is SquareProvider
    assert implements(square, PaymentProvider)
    assert square.name == "square"
    assert Capability.MANUAL_CAPTURE in square.capabilities


def test_access_token_is_sent_as_bearer(square_api: SquareMockAPI) -> None:
    captured: list[httpx.Request] = []

    def spy(request: httpx.Request) -> httpx.Response:
        captured.append(request)
        return square_api.handle(request)

    provider = SquareProvider(
        access_token=ACCESS_TOKEN,
        location_id="LOC1",
        http_client=httpx.Client(transport=httpx.MockTransport(spy)),
    )
    _pay(provider)
    assert captured[0].headers["authorization"] == f"Bearer {ACCESS_TOKEN}"


# -- idempotency keys --------------------------------------------------------------------------


@given(st.text(min_size=1, max_size=400))
def test_idempotency_key_is_short_and_deterministic(key: str) -> None:
    derived = square_idempotency_key(key)
    assert 1 <= len(derived) <= IDEMPOTENCY_KEY_MAX
    assert derived == square_idempotency_key(key)
    assert derived != square_idempotency_key(key + "x")
    assert derived != square_idempotency_key(key, part="order")


def test_a_long_gateway_key_is_hashed_into_the_body(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    long_key = "order-" + "x" * 190 + ":create:1999USD"
    _pay(square, idempotency_key=long_key)
    sent = square_api.calls[-1].body["idempotency_key"]
    assert len(sent) <= 45 and sent == square_idempotency_key(long_key)
    assert long_key not in json.dumps(square_api.calls[-1].body)


def test_same_key_twice_is_one_payment(square: SquareProvider, square_api: SquareMockAPI) -> None:
    first = _pay(square)
    second = _pay(square)
    assert first.id == second.id
    assert len(square_api.payments) == 1


def test_reused_key_with_another_body_is_an_idempotency_conflict(square: SquareProvider) -> None:
    _pay(square, idempotency_key="same")
    with pytest.raises(IdempotencyConflict) as caught:
        _pay(square, amount="5.00", idempotency_key="same")
    assert caught.value.code == "IDEMPOTENCY_KEY_REUSED" and caught.value.http_status == 400
    assert not caught.value.retryable


# -- retries: exactly one layer ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "category", "error"),
    [
        (500, "INTERNAL_SERVER_ERROR", "API_ERROR", ProviderUnavailable),
        (503, "SERVICE_UNAVAILABLE", "API_ERROR", ProviderUnavailable),
        (429, "RATE_LIMITED", "RATE_LIMIT_ERROR", RateLimited),
        (408, "REQUEST_TIMEOUT", "API_ERROR", ProviderUnavailable),
    ],
)
def test_sdk_does_not_retry_and_the_error_is_retryable(
    square: SquareProvider,
    square_api: SquareMockAPI,
    status: int,
    code: str,
    category: str,
    error: type,
) -> None:
    square_api.fail_next(status, code, category, headers={"retry-after": "0"}, times=3)
    with pytest.raises(error) as caught:
        _pay(square)
    assert len(square_api.calls) == 1  # the SDK's default would have sent 3
    assert caught.value.retryable is True
    assert caught.value.request_id == "req-1"
    assert caught.value.http_status == status


def test_retry_with_the_same_key_after_a_5xx_charges_once(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    square_api.fail_next(502, "BAD_GATEWAY", "API_ERROR")
    with pytest.raises(ProviderUnavailable):
        _pay(square)
    payment = _pay(square)  # what the Gateway's RetryPolicy does: same call, same key
    assert payment.status is PaymentStatus.SUCCEEDED
    assert len(square_api.payments) == 1
    keys = {call.body["idempotency_key"] for call in square_api.calls}
    assert len(keys) == 1


@pytest.mark.parametrize(
    "exception", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError]
)
def test_network_failures_are_provider_unavailable(
    square: SquareProvider, square_api: SquareMockAPI, exception: type[Exception]
) -> None:
    square_api.fail_next(exception=exception)
    with pytest.raises(ProviderUnavailable) as caught:
        square.get_payment("anything")
    assert caught.value.retryable and caught.value.provider == "square"


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "square_code"), sorted(DECLINING_SOURCES.items()))
def test_declines_map_to_card_declined_with_standard_codes(
    square: SquareProvider, source: str, square_code: str
) -> None:
    with pytest.raises(CardDeclined) as caught:
        _pay(square, payment_method=source)
    assert caught.value.code == square_code
    assert caught.value.decline_code == DECLINE_CODES[square_code]
    assert caught.value.http_status == 402 and not caught.value.retryable
    assert caught.value.decline_code in paygate.errors.DECLINE_CODES


def test_every_decline_code_is_a_standard_one() -> None:
    assert set(DECLINE_CODES.values()) <= paygate.errors.DECLINE_CODES
    assert DECLINE_CODES["GENERIC_DECLINE"] == "card_declined"
    assert DECLINE_CODES["CVV_FAILURE"] == "incorrect_cvc"
    assert DECLINE_CODES["INSUFFICIENT_FUNDS"] == "insufficient_funds"
    assert DECLINE_CODES["CARD_EXPIRED"] == "expired_card"


@pytest.mark.parametrize(
    ("status", "code", "category", "error"),
    [
        (401, "UNAUTHORIZED", "AUTHENTICATION_ERROR", AuthenticationError),
        (401, "ACCESS_TOKEN_EXPIRED", "AUTHENTICATION_ERROR", AuthenticationError),
        (403, "INSUFFICIENT_SCOPES", "AUTHENTICATION_ERROR", AuthenticationError),
        (404, "NOT_FOUND", "INVALID_REQUEST_ERROR", NotFound),
        (400, "INVALID_VALUE", "INVALID_REQUEST_ERROR", InvalidRequest),
        (400, "SOMETHING_NEW", "PAYMENT_METHOD_ERROR", CardDeclined),
        (400, "SOMETHING_NEW", "AUTHENTICATION_ERROR", AuthenticationError),
        (418, None, "UNKNOWN_CATEGORY", InvalidRequest),
        (500, "TEMPORARY_ERROR", "PAYMENT_METHOD_ERROR", ProviderUnavailable),
    ],
)
def test_error_codes_and_categories_map(
    square: SquareProvider,
    square_api: SquareMockAPI,
    status: int,
    code: str | None,
    category: str,
    error: type,
) -> None:
    square_api.fail_next(status, code, category)
    with pytest.raises(error) as caught:
        square.get_payment("p")
    assert type(caught.value) is error
    assert caught.value.provider == "square" and caught.value.http_status == status
    assert caught.value.request_id == "req-1"


def test_a_non_json_5xx_is_provider_unavailable(square_api: SquareMockAPI) -> None:
    provider = SquareProvider(
        access_token="t",
        location_id="L",
        http_client=httpx.Client(
            transport=httpx.MockTransport(lambda r: httpx.Response(502, text="<html>bad gateway"))
        ),
    )
    with pytest.raises(ProviderUnavailable) as caught:
        provider.get_payment("p")
    assert caught.value.http_status == 502


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (404, NotFound), (400, InvalidRequest), (429, RateLimited)],
)
def test_a_non_json_4xx_is_mapped_by_its_status(status: int, error: type) -> None:
    provider = SquareProvider(
        access_token="t",
        location_id="L",
        http_client=httpx.Client(
            transport=httpx.MockTransport(lambda r: httpx.Response(status, text="<html>no"))
        ),
    )
    with pytest.raises(error) as caught:
        provider.get_payment("p")
    assert type(caught.value) is error and caught.value.http_status == status


def test_error_messages_and_logs_never_carry_the_token(
    square: SquareProvider, square_api: SquareMockAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    square_api.fail_next(401, "UNAUTHORIZED", "AUTHENTICATION_ERROR")
    with pytest.raises(AuthenticationError) as caught:
        square.get_payment("p")
    assert ACCESS_TOKEN not in str(caught.value) + repr(caught.value) + caplog.text
    assert caught.value.__cause__ is None  # the SDK's ApiError (headers and all) is not chained


# -- payments ----------------------------------------------------------------------------------


def test_automatic_capture_succeeds_with_order_reference(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    payment = _pay(square, description="Tee", customer_id="CUST1")
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.amount == Money(1999, USD) and payment.amount_captured == Money(1999, USD)
    assert payment.order_id == "ord_1" and payment.provider == "square"
    assert payment.created_at is not None and payment.created_at.tzinfo is not None
    body = square_api.calls[-1].body
    assert body["amount_money"] == {"amount": 1999, "currency": "USD"}
    assert body["reference_id"] == "ord_1" and body["autocomplete"] is True
    assert (
        body["location_id"] == "LOC1" and body["note"] == "Tee" and body["customer_id"] == "CUST1"
    )


def test_zero_decimal_currency_amounts_pass_unchanged(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    payment = square.create_payment(
        order_id="jp1", amount=Money.of("500", "JPY"), payment_method=OK, idempotency_key="jp1"
    )
    assert square_api.calls[-1].body["amount_money"] == {"amount": 500, "currency": "JPY"}
    assert payment.amount == Money(500, "JPY")


def test_manual_capture_authorizes_then_completes(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    authorized = _pay(square, capture="manual")
    assert authorized.status is PaymentStatus.AUTHORIZED
    assert authorized.amount_captured == Money(0, USD)
    assert square_api.calls[-1].body["autocomplete"] is False
    captured = square.capture_payment(authorized.id, idempotency_key="cap")
    assert captured.status is PaymentStatus.SUCCEEDED and captured.amount_captured == Money(
        1999, USD
    )
    assert square_api.calls[-1].path == f"/v2/payments/{authorized.id}/complete"


def test_partial_capture_lowers_the_amount_first(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    authorized = _pay(square, capture="manual")
    captured = square.capture_payment(
        authorized.id, amount=Money.of("15.00", USD), idempotency_key="cap"
    )
    assert captured.amount_captured == Money(1500, USD)
    methods = [(c.method, c.path) for c in square_api.calls[-2:]]
    assert methods == [
        ("PUT", f"/v2/payments/{authorized.id}"),
        ("POST", f"/v2/payments/{authorized.id}/complete"),
    ]
    with pytest.raises(ValidationError, match="at most"):
        other = _pay(square, order_id="ord_2", capture="manual")
        square.capture_payment(other.id, amount=Money.of("20.00", USD), idempotency_key="cap2")


def test_cancel_an_authorization(square: SquareProvider) -> None:
    authorized = _pay(square, capture="manual")
    canceled = square.cancel_payment(authorized.id, idempotency_key="cancel")
    assert canceled.status is PaymentStatus.CANCELED
    assert square.get_payment(authorized.id).status is PaymentStatus.CANCELED


def test_pending_bank_payment_is_processing(square: SquareProvider) -> None:
    assert _pay(square, payment_method=PENDING_SOURCE).status is PaymentStatus.PROCESSING


def test_cancel_after_capture_is_an_invalid_request_not_a_decline(square: SquareProvider) -> None:
    payment = _pay(square)
    with pytest.raises(InvalidRequest) as caught:
        square.cancel_payment(payment.id, idempotency_key="late-cancel")
    assert (
        type(caught.value) is InvalidRequest and caught.value.code == "DELAYED_TRANSACTION_CAPTURED"
    )


def test_get_unknown_payment_is_not_found(square: SquareProvider) -> None:
    with pytest.raises(NotFound) as caught:
        square.get_payment("missing")
    assert caught.value.code == "NOT_FOUND" and caught.value.http_status == 404


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"payment_method": None}, "source_id"),
        ({"order_id": "o" * 41}, "at most 40"),
        ({"amount": "0"}, "positive"),
        ({"capture": "later"}, "capture"),
    ],
)
def test_bad_payment_input_is_refused_before_sending(
    square: SquareProvider, square_api: SquareMockAPI, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        _pay(square, **kwargs)
    assert square_api.calls == []


# -- refunds -----------------------------------------------------------------------------------


def test_partial_then_full_refund(square: SquareProvider, square_api: SquareMockAPI) -> None:
    payment = _pay(square)
    partial = square.refund_payment(
        payment.id, amount=Money.of("5.00", USD), reason="damaged", idempotency_key="r1"
    )
    assert partial.status is RefundStatus.PENDING  # Square settles refunds asynchronously
    assert partial.amount == Money(500, USD) and partial.payment_id == payment.id
    assert partial.reason == "damaged" and partial.order_id == "ord_1"
    square_api.complete_refund(partial.id)
    assert square.get_payment(payment.id).status is PaymentStatus.PARTIALLY_REFUNDED
    rest = square.refund_payment(payment.id, idempotency_key="r2")  # None = the rest
    assert rest.amount == Money(1499, USD)
    assert square_api.calls[-1].body["amount_money"] == {"amount": 1499, "currency": "USD"}
    square_api.complete_refund(rest.id)
    refunded = square.get_payment(payment.id)
    assert refunded.status is PaymentStatus.REFUNDED and refunded.amount_refunded == Money(
        1999, USD
    )


def test_refund_beyond_the_captured_amount_is_refused(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    payment = _pay(square)
    sent = len(square_api.calls)
    with pytest.raises(ValidationError, match="refundable"):
        square.refund_payment(payment.id, amount=Money.of("20.00", USD), idempotency_key="r")
    assert [c.method for c in square_api.calls[sent:]] == ["GET"]


def test_refund_of_an_authorization_is_refused(square: SquareProvider) -> None:
    payment = _pay(square, capture="manual")
    with pytest.raises(ValidationError):
        square.refund_payment(payment.id, idempotency_key="r")


# -- hosted checkout (payment links) ----------------------------------------------------------


def _checkout(square: SquareProvider):
    return square.create_checkout_session(
        order_id="ord_co",
        line_items=[
            LineItem("Tee", Money.of("10.00", USD), quantity=2),
            LineItem("Cap", Money.of("5.50", USD)),
        ],
        success_url="https://shop.example/ok",
        cancel_url="https://shop.example/cancel",
        idempotency_key="ord_co:checkout",
    )


def test_checkout_creates_a_payment_link(square: SquareProvider, square_api: SquareMockAPI) -> None:
    session = _checkout(square)
    assert session.status is CheckoutStatus.OPEN
    assert session.url is not None and session.url.startswith("https://square.link/")
    assert session.order_id == "ord_co" and session.amount_total == Money(2550, USD)
    body = square_api.calls[-1].body
    assert body["checkout_options"] == {"redirect_url": "https://shop.example/ok"}
    assert body["order"]["reference_id"] == "ord_co" and body["order"]["location_id"] == "LOC1"
    assert body["order"]["line_items"][0]["quantity"] == "2"
    assert body["payment_note"] == "paygate-order:ord_co"


def test_checkout_paid_then_return_looks_the_payment_up(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    session = _checkout(square)
    assert square.get_checkout_session(session.id).status is CheckoutStatus.OPEN
    query = square_api.pay_link(session.id)
    finished = square.get_checkout_session(session.id)
    assert finished.status is CheckoutStatus.COMPLETE and finished.payment_id is not None
    assert finished.order_id == "ord_co"
    payment = square.complete_return({**query, "status": "whatever"}, idempotency_key="ret")
    assert payment.id == finished.payment_id
    assert payment.status is PaymentStatus.SUCCEEDED and payment.order_id == "ord_co"
    by_link = square.complete_return({"checkoutId": query["checkoutId"]}, idempotency_key="ret")
    assert by_link.id == payment.id and by_link.order_id == "ord_co"


def test_return_never_trusts_the_query_string(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    session = _checkout(square)
    unpaid_order = square_api.links[session.id]["order_id"]
    with pytest.raises(NotFound, match="no payment"):
        square.complete_return(
            {"orderId": unpaid_order, "status": "COMPLETED", "paid": "true"}, idempotency_key="r"
        )
    with pytest.raises(ValidationError, match="orderId"):
        square.complete_return({"status": "COMPLETED"}, idempotency_key="r")
    with pytest.raises(NotFound):
        square.complete_return({"payment_id": "forged"}, idempotency_key="r")


def test_subscription_checkout_is_not_supported(square: SquareProvider) -> None:
    with pytest.raises(paygate.NotSupported):
        square.create_checkout_session(
            order_id="o",
            line_items=[LineItem("x", Money(100, USD))],
            success_url="u",
            cancel_url="c",
            idempotency_key="k",
            mode="subscription",
        )


# -- customers, subscriptions, invoices, disputes ---------------------------------------------


def test_customer_round_trip(square: SquareProvider, square_api: SquareMockAPI) -> None:
    customer = square.create_customer(
        email="ada@example.com", name="Ada Lovelace", idempotency_key="c1", metadata={"crm": "42"}
    )
    assert customer.email == "ada@example.com" and customer.name == "Ada Lovelace"
    assert customer.metadata == {"crm": "42"}
    body = square_api.calls[-1].body
    assert body["given_name"] == "Ada" and body["family_name"] == "Lovelace"
    with pytest.raises(ValidationError):
        square.create_customer(email=None, name=None, idempotency_key="c2")


def test_subscription_create_get_cancel(square: SquareProvider, square_api: SquareMockAPI) -> None:
    customer = square.create_customer(email="a@example.com", name=None, idempotency_key="c")
    sub = square.create_subscription(
        customer_id=customer.id,
        price_id="PLANVAR1",
        idempotency_key="s",
        metadata={"card_id": "ccof:1"},
    )
    assert sub.status is SubscriptionStatus.ACTIVE and sub.price_id == "PLANVAR1"
    assert sub.customer_id == customer.id and sub.current_period_end is not None
    body = square_api.calls[-1].body
    assert (
        body["plan_variation_id"] == "PLANVAR1"
        and body["location_id"] == "LOC1"
        and body["card_id"] == "ccof:1"
    )
    assert square.get_subscription(sub.id).id == sub.id
    canceled = square.cancel_subscription(sub.id, at_period_end=True)
    assert canceled.status is SubscriptionStatus.ACTIVE and canceled.cancel_at_period_end
    square_api.end_billing_period(sub.id)
    final = square.get_subscription(sub.id)
    assert final.status is SubscriptionStatus.CANCELED and not final.cancel_at_period_end


def test_immediate_cancel_of_a_pending_subscription(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    customer = square.create_customer(email="a@example.com", name=None, idempotency_key="c")
    sub = square.create_subscription(customer_id=customer.id, price_id="P", idempotency_key="s")
    square_api.subscriptions[sub.id]["status"] = "PENDING"
    assert square.cancel_subscription(sub.id).status is SubscriptionStatus.CANCELED


def test_invoice_for_an_order_then_published(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    customer = square.create_customer(email="a@example.com", name=None, idempotency_key="c")
    items = [LineItem("Consulting", Money.of("100.00", USD), quantity=3)]
    draft = square.create_invoice(
        customer_id=customer.id, line_items=items, idempotency_key="i1", order_id="ord_inv"
    )
    assert draft.status is InvoiceStatus.DRAFT and draft.amount_due == Money(30000, USD)
    assert draft.order_id == "ord_inv" and draft.customer_id == customer.id
    sent = square.create_invoice(
        customer_id=customer.id,
        line_items=items,
        idempotency_key="i2",
        send=True,
        description="thanks",
    )
    assert sent.status is InvoiceStatus.OPEN and sent.hosted_url and sent.number
    paths = [c.path for c in square_api.calls[-3:]]
    assert paths[0] == "/v2/orders" and paths[1] == "/v2/invoices" and paths[2].endswith("/publish")
    keys = [c.body["idempotency_key"] for c in square_api.calls[-3:]]
    assert len(set(keys)) == 3 and all(len(k) <= 45 for k in keys)


def test_dispute_is_normalized(square: SquareProvider, square_api: SquareMockAPI) -> None:
    payment = _pay(square)
    raw = square_api.open_dispute(payment.id)
    dispute = square.get_dispute(raw["id"])
    assert dispute.status is DisputeStatus.OPEN and dispute.payment_id == payment.id
    assert dispute.amount == Money(1999, USD) and dispute.evidence_due_by is not None
    square_api.set_dispute_state(raw["id"], "PROCESSING")
    assert square.get_dispute(raw["id"]).status is DisputeStatus.UNDER_REVIEW


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2020-02-06T21:27:34.308Z", datetime(2020, 2, 6, 21, 27, 34, 308000, tzinfo=timezone.utc)),
        (
            "2024-01-02T03:04:05.123456789Z",
            datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc),
        ),
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=timezone.utc)),
        ("yesterday", None),
    ],
)
def test_square_timestamps_become_utc(stamp: str, expected: datetime | None) -> None:
    payment = payment_from_square(
        {
            "id": "p",
            "status": "COMPLETED",
            "amount_money": {"amount": 1, "currency": "USD"},
            "created_at": stamp,
        }
    )
    assert payment.created_at == expected
    if expected is not None:
        assert payment.created_at is not None and payment.created_at.utcoffset() == timedelta(0)


def test_the_sdk_modules_are_imported_at_construction_not_in_the_first_request() -> None:
    """squareup imports an API's modules the first time it is touched: that belongs to
    construction (startup), not to the first payment's retry budget (seen in a fresh CI
    venv: compiling them made a first create_payment overrun its budget)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from paygate.providers.square import SquareProvider\n"
        "assert 'square.payments.client' not in sys.modules\n"
        "SquareProvider(access_token='EAAA_test', location_id='L1',\n"
        "               webhook_signature_key='k', webhook_url='https://shop.test/hook').close()\n"
        "missing = [m for m in ('square.payments.client', 'square.refunds.client',\n"
        "           'square.checkout.payment_links.client', 'square.cards.client')\n"
        "           if m not in sys.modules]\n"
        "assert not missing, missing\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
