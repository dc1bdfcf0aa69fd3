"""PayPal webhooks: offline verification (local CA and certificate), forged deliveries,
``verification="api"``, and the event-type mapping into paygate's vocabulary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import responses

from paygate import Money
from paygate.errors import (
    ConfigurationError,
    InvalidSignature,
    MalformedPayload,
    MissingSignature,
    TimestampOutsideTolerance,
)
from paygate.models import (
    Dispute,
    DisputeStatus,
    EventType,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
)
from paygate.providers.paypal import PayPalProvider
from paygate.state import T, event_from_webhook
from tests.paypal_support import (
    CERT_URL,
    WEBHOOK_ID,
    WEBHOOKS,
    CertServer,
    PayPalMock,
    authorization_json,
    capture_json,
    event_json,
    identity,
    money,
    order_json,
    paypal_time,
    provider_settings,
    refund_json,
    sign,
    validate,
)

ORDER = "5O190127TN364715T"
CAPTURE = "3C679366HH908993F"


def _body(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


CAPTURE_EVENT = _body(event_json("PAYMENT.CAPTURE.COMPLETED", capture_json()))


@pytest.fixture(autouse=True)
def paypal() -> Iterator[PayPalMock]:
    """PayPal's API, for the capture -> order lookups of refund and dispute events (and
    for verification="api"); any other request fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock = PayPalMock(rsps)
        mock.token()
        mock.on("GET", f"/v2/payments/captures/{CAPTURE}", capture_json(order_id=ORDER))
        yield mock


@pytest.fixture
def certs() -> CertServer:
    return CertServer()


@pytest.fixture
def provider(certs: CertServer) -> PayPalProvider:
    return PayPalProvider(**provider_settings(cert_fetcher=certs))


# -- a genuine delivery ----------------------------------------------------------------------


def test_signed_capture_event_is_verified_and_normalized(provider: PayPalProvider) -> None:
    event = provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT))
    assert event.id == "WH-2WR32451HC0233532-67976317FL4543714"
    assert event.provider == "paypal"
    assert event.type is EventType.PAYMENT_SUCCEEDED
    assert event.provider_type == "PAYMENT.CAPTURE.COMPLETED"
    assert event.occurred_at == datetime(2026, 11, 22, 0, 2, tzinfo=timezone.utc)
    payment = event.object
    assert isinstance(payment, Payment)
    # the same id the Gateway stored from create_payment / complete_return: the order id
    assert payment.id == ORDER and event.payment_id == ORDER
    assert payment.order_id == "ord_1" == event.order_id
    assert payment.charge_id == CAPTURE
    assert payment.amount_captured == Money.of("19.99", "USD")
    assert event.raw["resource"]["id"] == CAPTURE
    transition = event_from_webhook(event)
    assert transition is not None and transition.trigger is T.SUCCEEDED
    assert transition.amount == 1999


def test_headers_match_case_insensitively(provider: PayPalProvider) -> None:
    headers = {name.lower(): value for name, value in sign(CAPTURE_EVENT).items()}
    assert provider.parse_webhook(CAPTURE_EVENT, headers).type is EventType.PAYMENT_SUCCEEDED


def test_certificate_is_fetched_once_and_cached(
    provider: PayPalProvider, certs: CertServer
) -> None:
    for _ in range(3):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT))
    assert certs.calls == [CERT_URL]


# -- forged deliveries ---------------------------------------------------------------------------


def test_tampered_body_is_rejected(provider: PayPalProvider) -> None:
    headers = sign(CAPTURE_EVENT)
    tampered = CAPTURE_EVENT.replace(b'"19.99"', b'"1999.00"')
    assert tampered != CAPTURE_EVENT
    with pytest.raises(InvalidSignature, match="does not match"):
        provider.parse_webhook(tampered, headers)


def test_signature_for_another_webhook_id_is_rejected(provider: PayPalProvider) -> None:
    with pytest.raises(InvalidSignature, match="does not match"):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT, webhook_id="1JE4291016473214C"))


def test_signature_by_another_key_is_rejected(certs: CertServer) -> None:
    certs.certificates[CERT_URL] = identity("other_key").pem
    provider = PayPalProvider(**provider_settings(cert_fetcher=certs))
    with pytest.raises(InvalidSignature, match="does not match"):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT))


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/v1/notifications/certs/CERT-1",
        "http://api.paypal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
        "https://evil.example@api.paypal.com/v1/notifications/certs/CERT-1",
        "https://api.paypal.com:8443/v1/notifications/certs/CERT-1",
        "https://api.paypal.com/v1/oauth2/token",
        "file:///etc/ssl/cert.pem",
    ],
)
def test_off_domain_cert_url_is_rejected_before_any_fetch(
    provider: PayPalProvider, certs: CertServer, url: str
) -> None:
    with pytest.raises(InvalidSignature, match="refusing PAYPAL-CERT-URL"):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT, cert_url=url))
    assert certs.calls == []


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("expired", "not valid now"),
        ("not_yet_valid", "not valid now"),
        ("not_paypal", "not PayPal's"),
    ],
)
def test_unacceptable_certificates_are_rejected(certs: CertServer, kind: str, message: str) -> None:
    certs.certificates[CERT_URL] = identity(kind).pem
    provider = PayPalProvider(**provider_settings(cert_fetcher=certs))
    with pytest.raises(InvalidSignature, match=message):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT))


def test_certificate_not_issued_by_its_chain_is_rejected(certs: CertServer) -> None:
    leaf = identity().pem.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    other_leaf = identity("other_key").pem.split(b"-----END CERTIFICATE-----")[0]
    # chain = leaf followed by a certificate that did not issue it
    certs.certificates[CERT_URL] = leaf + other_leaf + b"-----END CERTIFICATE-----\n"
    provider = PayPalProvider(**provider_settings(cert_fetcher=certs))
    with pytest.raises(InvalidSignature, match="not issued by its chain"):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT))


def test_fetch_failure_means_unverified(certs: CertServer) -> None:
    def broken(url: str) -> bytes:
        raise OSError("connection refused")

    provider = PayPalProvider(**provider_settings(cert_fetcher=broken))
    with pytest.raises(InvalidSignature, match="could not fetch"):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT))


@pytest.mark.parametrize(
    "missing",
    [
        "PAYPAL-TRANSMISSION-ID",
        "PAYPAL-TRANSMISSION-TIME",
        "PAYPAL-TRANSMISSION-SIG",
        "PAYPAL-CERT-URL",
        "PAYPAL-AUTH-ALGO",
    ],
)
def test_missing_header_is_rejected(provider: PayPalProvider, missing: str) -> None:
    headers = sign(CAPTURE_EVENT)
    del headers[missing]
    with pytest.raises(MissingSignature, match=missing):
        provider.parse_webhook(CAPTURE_EVENT, headers)


def test_no_headers_at_all(provider: PayPalProvider) -> None:
    with pytest.raises(MissingSignature):
        provider.parse_webhook(CAPTURE_EVENT, {})


@pytest.mark.parametrize("skew", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_transmission_time_outside_tolerance(provider: PayPalProvider, skew: timedelta) -> None:
    sent = paypal_time(datetime.now(timezone.utc) + skew)
    with pytest.raises(TimestampOutsideTolerance):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT, transmission_time=sent))


def test_tolerance_is_configurable(certs: CertServer) -> None:
    provider = PayPalProvider(**provider_settings(cert_fetcher=certs, webhook_tolerance=3600))
    sent = paypal_time(datetime.now(timezone.utc) - timedelta(minutes=30))
    event = provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT, transmission_time=sent))
    assert event.type is EventType.PAYMENT_SUCCEEDED


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        ("PAYPAL-AUTH-ALGO", "SHA1withRSA", "unsupported PAYPAL-AUTH-ALGO"),
        ("PAYPAL-TRANSMISSION-SIG", "not base64!!", "not base64"),
        ("PAYPAL-TRANSMISSION-TIME", "yesterday", "not an ISO 8601 time"),
    ],
)
def test_malformed_signature_headers(
    provider: PayPalProvider, header: str, value: str, message: str
) -> None:
    headers = {**sign(CAPTURE_EVENT), header: value}
    with pytest.raises(InvalidSignature, match=message):
        provider.parse_webhook(CAPTURE_EVENT, headers)


def test_webhook_id_is_required(certs: CertServer) -> None:
    provider = PayPalProvider(**provider_settings(cert_fetcher=certs, webhook_id=None))
    with pytest.raises(ConfigurationError, match="webhook_id"):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT))


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"event_type": "PAYMENT.CAPTURE.COMPLETED"}).encode(),  # no id
        json.dumps({"id": "WH-1", "event_type": "PAYMENT.CAPTURE.COMPLETED"}).encode(),
        _body(event_json("PAYMENT.CAPTURE.COMPLETED", {"id": "X", "status": "COMPLETED"})),
        _body(
            event_json("PAYMENT.CAPTURE.COMPLETED", {**capture_json(), "amount": money("1.999")})
        ),
    ],
)
def test_signed_but_unusable_body_is_malformed(provider: PayPalProvider, body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        provider.parse_webhook(body, sign(body))


# -- event mapping ---------------------------------------------------------------------------------


def _dispute(status: str, outcome: str | None = None) -> dict[str, Any]:
    dispute: dict[str, Any] = {
        "dispute_id": "PP-D-4012",
        "create_time": "2026-11-22T01:00:00.000Z",
        "disputed_transactions": [{"seller_transaction_id": CAPTURE, "custom": "ord_1"}],
        "reason": "UNAUTHORISED",
        "status": status,
        "dispute_amount": money("19.99"),
    }
    if outcome:
        dispute["dispute_outcome"] = {"outcome_code": outcome}
    return dispute


SUBSCRIPTION = {"id": "I-BW452GLLEP1G", "plan_id": "P-5ML4271244454362WXNWU5NQ",
                "status": "ACTIVE", "custom_id": "cus_1"}  # fmt: skip
INVOICE = {"id": "INV2-Z56S-5LLA-Q52L-CPZ5", "status": "PAID", "detail": {"currency_code": "USD", "reference": "ord_9"},
           "amount": money("20.00"), "payments": {"paid_amount": money("20.00")}}  # fmt: skip

MAPPING = [
    ("CHECKOUT.ORDER.APPROVED", order_json(status="APPROVED"), EventType.PAYMENT_PROCESSING, Payment),
    ("CHECKOUT.ORDER.COMPLETED", order_json(status="COMPLETED", captures=[capture_json()]), EventType.PAYMENT_SUCCEEDED, Payment),
    ("CHECKOUT.ORDER.COMPLETED", order_json(status="COMPLETED", captures=[capture_json(status="PENDING")]), EventType.PAYMENT_PROCESSING, Payment),
    ("CHECKOUT.ORDER.COMPLETED", order_json(status="COMPLETED", intent="AUTHORIZE", authorizations=[authorization_json()]), EventType.PAYMENT_AUTHORIZED, Payment),
    ("PAYMENT.CAPTURE.PENDING", capture_json(status="PENDING"), EventType.PAYMENT_PROCESSING, Payment),
    ("PAYMENT.CAPTURE.DENIED", capture_json(status="DECLINED"), EventType.PAYMENT_FAILED, Payment),
    ("PAYMENT.CAPTURE.DECLINED", capture_json(status="DECLINED"), EventType.PAYMENT_FAILED, Payment),
    ("PAYMENT.CAPTURE.REFUNDED", refund_json(), EventType.REFUND_SUCCEEDED, Refund),
    ("PAYMENT.CAPTURE.REVERSED", refund_json(value="19.99"), EventType.REFUND_SUCCEEDED, Refund),
    ("PAYMENT.AUTHORIZATION.CREATED", authorization_json(), EventType.PAYMENT_AUTHORIZED, Payment),
    ("PAYMENT.AUTHORIZATION.VOIDED", authorization_json(status="VOIDED"), EventType.PAYMENT_CANCELED, Payment),
    ("BILLING.SUBSCRIPTION.CREATED", {**SUBSCRIPTION, "status": "APPROVAL_PENDING"}, EventType.SUBSCRIPTION_CREATED, Subscription),
    ("BILLING.SUBSCRIPTION.ACTIVATED", SUBSCRIPTION, EventType.SUBSCRIPTION_UPDATED, Subscription),
    ("BILLING.SUBSCRIPTION.CANCELLED", {**SUBSCRIPTION, "status": "CANCELLED"}, EventType.SUBSCRIPTION_CANCELED, Subscription),
    ("BILLING.SUBSCRIPTION.PAYMENT.FAILED", SUBSCRIPTION, EventType.SUBSCRIPTION_PAYMENT_FAILED, Subscription),
    ("CUSTOMER.DISPUTE.CREATED", _dispute("OPEN"), EventType.DISPUTE_OPENED, Dispute),
    ("CUSTOMER.DISPUTE.UPDATED", _dispute("UNDER_REVIEW"), EventType.DISPUTE_UPDATED, Dispute),
    ("CUSTOMER.DISPUTE.RESOLVED", _dispute("RESOLVED", "RESOLVED_SELLER_FAVOUR"), EventType.DISPUTE_WON, Dispute),
    ("CUSTOMER.DISPUTE.RESOLVED", _dispute("RESOLVED", "RESOLVED_BUYER_FAVOUR"), EventType.DISPUTE_LOST, Dispute),
    ("CUSTOMER.DISPUTE.RESOLVED", _dispute("RESOLVED", "NONE"), EventType.DISPUTE_UPDATED, Dispute),
    ("INVOICING.INVOICE.PAID", INVOICE, EventType.INVOICE_PAID, Invoice),
    ("INVOICING.INVOICE.CANCELLED", {**INVOICE, "status": "CANCELLED"}, EventType.INVOICE_VOIDED, Invoice),
    ("INVOICING.INVOICE.REFUNDED", {**INVOICE, "status": "REFUNDED"}, EventType.INVOICE_REFUNDED, Invoice),
]  # fmt: skip


@pytest.mark.parametrize(("event_type", "resource", "expected", "object_type"), MAPPING)
def test_event_mapping(
    provider: PayPalProvider,
    event_type: str,
    resource: dict[str, Any],
    expected: EventType,
    object_type: type,
) -> None:
    body = _body(event_json(event_type, resource))
    event = provider.parse_webhook(body, sign(body))
    assert event.type is expected
    assert isinstance(event.object, object_type)
    assert event.provider_type == event_type
    if isinstance(event.object, (Payment, Refund, Dispute)):
        assert event.order_id == "ord_1"  # recovered from custom_id / invoice_id


def test_capture_and_authorization_events_carry_the_order_id_as_payment_id(
    provider: PayPalProvider,
) -> None:
    for resource, name in [(authorization_json(), "PAYMENT.AUTHORIZATION.CREATED"),
                           (capture_json(status="DECLINED"), "PAYMENT.CAPTURE.DECLINED")]:  # fmt: skip
        body = _body(event_json(name, resource))
        event = provider.parse_webhook(body, sign(body))
        assert event.payment_id == ORDER
    body = _body(event_json("PAYMENT.CAPTURE.DECLINED", capture_json(status="DECLINED")))
    payment = provider.parse_webhook(body, sign(body)).object
    assert isinstance(payment, Payment) and payment.status is PaymentStatus.FAILED
    assert payment.failure is not None


def test_refund_event_moves_the_payment_once_succeeded(provider: PayPalProvider) -> None:
    body = _body(
        event_json("PAYMENT.CAPTURE.REFUNDED", refund_json(value="5.00"), resource_type="refund")
    )
    event = provider.parse_webhook(body, sign(body))
    refund = event.object
    assert isinstance(refund, Refund)
    assert refund.status is RefundStatus.SUCCEEDED
    assert refund.amount == Money.of("5.00", "USD")
    # PayPal names only the capture ("up" link); its order is looked up: the Payment's id
    assert refund.payment_id == ORDER
    assert refund.order_id == "ord_1"
    transition = event_from_webhook(event)
    assert transition is not None
    assert (transition.trigger, transition.amount, transition.ref) == (T.REFUNDED, 500, refund.id)


def test_dispute_and_subscription_objects(provider: PayPalProvider) -> None:
    body = _body(event_json("CUSTOMER.DISPUTE.RESOLVED", _dispute("RESOLVED", "ACCEPTED")))
    dispute = provider.parse_webhook(body, sign(body)).object
    assert isinstance(dispute, Dispute) and dispute.status is DisputeStatus.LOST
    assert dispute.payment_id == ORDER
    body = _body(
        event_json("BILLING.SUBSCRIPTION.SUSPENDED", {**SUBSCRIPTION, "status": "SUSPENDED"})
    )
    subscription = provider.parse_webhook(body, sign(body)).object
    assert isinstance(subscription, Subscription)
    assert subscription.status is SubscriptionStatus.PAUSED and subscription.customer_id == "cus_1"
    body = _body(event_json("INVOICING.INVOICE.PAID", INVOICE))
    invoice = provider.parse_webhook(body, sign(body)).object
    assert isinstance(invoice, Invoice) and invoice.status is InvoiceStatus.PAID
    assert invoice.amount_paid == Money.of("20.00", "USD") and invoice.order_id == "ord_9"


def test_unknown_event_type_is_kept(provider: PayPalProvider) -> None:
    body = _body(event_json("MERCHANT.ONBOARDING.COMPLETED", {"merchant_id": "X"}))
    event = provider.parse_webhook(body, sign(body))
    assert event.type is EventType.UNKNOWN
    assert event.object is None
    assert event.provider_type == "MERCHANT.ONBOARDING.COMPLETED"
    assert event.raw["resource"] == {"merchant_id": "X"}


def test_event_fixtures_match_the_webhook_spec(reference_dir: object) -> None:
    for event_type, resource, *_ in MAPPING:
        validate(WEBHOOKS, "event", event_json(event_type, resource))


# -- verification="api" -------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "accepted"), [("SUCCESS", True), ("FAILURE", False)])
def test_api_verification_trusts_only_success(
    paypal: PayPalMock, answer: str, accepted: bool
) -> None:
    paypal.on(
        "POST", "/v1/notifications/verify-webhook-signature", {"verification_status": answer},
        request_schema=(WEBHOOKS, "verify_webhook_signature"),
        response_schema=(WEBHOOKS, "verify_webhook_signature_response"),
    )  # fmt: skip
    certs = CertServer()
    provider = PayPalProvider(**provider_settings(verification="api", cert_fetcher=certs))
    headers = sign(CAPTURE_EVENT)
    if accepted:
        assert provider.parse_webhook(CAPTURE_EVENT, headers).type is EventType.PAYMENT_SUCCEEDED
    else:
        with pytest.raises(InvalidSignature, match="FAILURE"):
            provider.parse_webhook(CAPTURE_EVENT, headers)
    sent = paypal.last("/v1/notifications/verify-webhook-signature").body
    assert sent["webhook_id"] == WEBHOOK_ID
    assert sent["transmission_sig"] == headers["PAYPAL-TRANSMISSION-SIG"]
    assert sent["cert_url"] == CERT_URL
    assert sent["webhook_event"] == json.loads(CAPTURE_EVENT)
    assert certs.calls == []  # PayPal checks the certificate itself in this mode


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_api_verification_refuses_a_stale_or_future_transmission_before_calling(
    paypal: PayPalMock, offset: timedelta
) -> None:
    """PayPal's verify endpoint answers SUCCESS for an old, genuine delivery: the
    webhook_tolerance applies in api mode too, and no request is made."""
    provider = PayPalProvider(**provider_settings(verification="api", webhook_tolerance=300))
    when = paypal_time(datetime.now(timezone.utc) + offset)
    with pytest.raises(TimestampOutsideTolerance, match="300s"):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT, transmission_time=when))
    assert paypal.calls == []


def test_api_verification_needs_the_headers_before_calling(paypal: PayPalMock) -> None:
    provider = PayPalProvider(**provider_settings(verification="api"))
    with pytest.raises(MissingSignature):
        provider.parse_webhook(CAPTURE_EVENT, {})
    with pytest.raises(InvalidSignature, match="not JSON"):
        provider.parse_webhook(b"\x00garbage", sign(b"\x00garbage"))
    assert paypal.calls == []


def test_capture_links_seen_by_this_provider_need_no_lookup(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("GET", "/v2/checkout/orders/7ORDER00000000001",
              order_json("7ORDER00000000001", status="COMPLETED",
                         captures=[capture_json("7CAPTURE000000001", order_id="7ORDER00000000001")]))  # fmt: skip
    provider.get_payment("7ORDER00000000001")
    body = _body(
        event_json("PAYMENT.CAPTURE.REFUNDED", refund_json(capture_id="7CAPTURE000000001"))
    )
    refund = provider.parse_webhook(body, sign(body)).object
    assert isinstance(refund, Refund) and refund.payment_id == "7ORDER00000000001"
    assert not any(call.path.startswith("/v2/payments/captures/") for call in paypal.calls)


def test_capture_unknown_to_paypal_keeps_its_own_id(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("GET", "/v2/payments/captures/9UNKNOWN000000000",
              {"name": "RESOURCE_NOT_FOUND", "details": [{"issue": "INVALID_RESOURCE_ID"}]},
              status=404)  # fmt: skip
    body = _body(
        event_json("PAYMENT.CAPTURE.REFUNDED", refund_json(capture_id="9UNKNOWN000000000"))
    )
    refund = provider.parse_webhook(body, sign(body)).object
    assert isinstance(refund, Refund) and refund.payment_id == "9UNKNOWN000000000"


def test_capture_event_without_related_ids_is_resolved_to_its_order(
    provider: PayPalProvider,
) -> None:
    resource = capture_json(order_id=None)
    assert "supplementary_data" not in resource
    body = _body(event_json("PAYMENT.CAPTURE.COMPLETED", resource))
    payment = provider.parse_webhook(body, sign(body)).object
    assert isinstance(payment, Payment)
    assert payment.id == ORDER and payment.charge_id == CAPTURE
    assert payment.metadata["paypal_order_id"] == ORDER


def test_default_fetcher_downloads_over_https_without_redirects(paypal: PayPalMock) -> None:
    provider = PayPalProvider(**provider_settings(cert_fetcher=None))
    paypal.rsps.add(responses.GET, CERT_URL, body=identity().pem)
    assert provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT)).object is not None

    moved = CERT_URL + "-moved"
    paypal.rsps.add(
        responses.GET, moved, status=302, headers={"Location": "https://evil.example/c"}
    )
    with pytest.raises(InvalidSignature, match="HTTP 302"):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT, cert_url=moved))

    huge = CERT_URL + "-huge"
    paypal.rsps.add(responses.GET, huge, body=b"x" * (64 * 1024 + 1))
    with pytest.raises(InvalidSignature, match="too large"):
        provider.parse_webhook(CAPTURE_EVENT, sign(CAPTURE_EVENT, cert_url=huge))
    assert not any("evil.example" in call.request.url for call in paypal.rsps.calls)
