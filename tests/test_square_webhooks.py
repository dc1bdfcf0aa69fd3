"""Square webhooks: signature verification first, then one parse into paygate's vocabulary."""

# ruff: noqa: F811  (the shared fixtures are imported from tests.test_square_spec)
from __future__ import annotations

import json
from datetime import timezone
from typing import Any

import pytest

from paygate import (
    ConfigurationError,
    Dispute,
    DisputeStatus,
    EventType,
    Invoice,
    InvoiceStatus,
    MalformedPayload,
    MissingSignature,
    Money,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
    WebhookVerificationError,
)
from paygate.errors import InvalidSignature
from paygate.providers._square_mock import SquareMockAPI
from paygate.providers._square_webhook import sign
from paygate.providers.square import SquareProvider
from paygate.state import Trigger, event_from_webhook
from tests.test_square_spec import (  # noqa: F401
    SIGNATURE_KEY,
    WEBHOOK_URL,
    _spec,
    square,
    square_api,
    unknown_fields,
    validate,
)

HEADER = "x-square-hmacsha256-signature"


def _payment(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "PAY1",
        "status": status,
        "amount_money": {"amount": 2500, "currency": "USD"},
        "total_money": {"amount": 2500, "currency": "USD"},
        "reference_id": "ord_7",
        "created_at": "2026-03-01T10:00:00.123Z",
        **extra,
    }


def _deliver(api: SquareMockAPI, square_type: str, kind: str, obj: dict[str, Any]):
    return api.delivery(api.event(square_type, kind, obj))


# -- verification ------------------------------------------------------------------------------


def test_a_valid_signature_parses(square: SquareProvider, square_api: SquareMockAPI) -> None:
    delivery = _deliver(square_api, "payment.updated", "payment", _payment("COMPLETED"))
    event = square.parse_webhook(delivery.body, delivery.headers)
    assert event.provider == "square" and event.provider_type == "payment.updated"
    assert event.id.startswith("evt-") and event.type is EventType.PAYMENT_SUCCEEDED


def test_header_name_is_matched_case_insensitively(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    delivery = _deliver(square_api, "payment.updated", "payment", _payment("COMPLETED"))
    headers = {"X-Square-HmacSha256-Signature": delivery.headers[HEADER]}
    assert square.parse_webhook(delivery.body, headers).type is EventType.PAYMENT_SUCCEEDED


def test_signature_is_base64_hmac_of_url_plus_body() -> None:
    import base64
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = base64.b64encode(
        hmac.new(b"key", b"https://x.example/hook" + body, hashlib.sha256).digest()
    ).decode()
    assert sign(body, signature_key="key", notification_url="https://x.example/hook") == expected


@pytest.mark.parametrize("headers", [{}, {HEADER: ""}, {"x-square-signature": "abc"}])
def test_missing_signature(
    square: SquareProvider, square_api: SquareMockAPI, headers: dict[str, str]
) -> None:
    delivery = _deliver(square_api, "payment.updated", "payment", _payment("COMPLETED"))
    with pytest.raises(MissingSignature):
        square.parse_webhook(delivery.body, headers)


def _forged(body: bytes, *, key: str = SIGNATURE_KEY, url: str = WEBHOOK_URL) -> dict[str, str]:
    return {HEADER: sign(body, signature_key=key, notification_url=url)}


@pytest.mark.parametrize(
    "forge",
    [
        lambda body: (body, _forged(body, key="another-key")),  # wrong key
        lambda body: (body, _forged(body, url=WEBHOOK_URL + "/")),  # wrong URL
        lambda body: (body, _forged(body, url=WEBHOOK_URL.replace("https", "http"))),
        lambda body: (body.replace(b"2500", b"9500"), _forged(body)),  # tampered body
        lambda body: (body + b" ", _forged(body)),  # even whitespace counts
        lambda body: (body, {HEADER: "bm90IGEgc2lnbmF0dXJl"}),  # garbage
        lambda body: (body, {HEADER: "é"}),  # not even ASCII
    ],
    ids=[
        "wrong-key",
        "wrong-url",
        "wrong-scheme",
        "tampered",
        "whitespace",
        "garbage",
        "non-ascii",
    ],
)
def test_bad_signatures_are_rejected(
    square: SquareProvider, square_api: SquareMockAPI, forge: Any
) -> None:
    delivery = _deliver(square_api, "payment.updated", "payment", _payment("COMPLETED"))
    body, headers = forge(delivery.body)
    with pytest.raises(InvalidSignature) as caught:
        square.parse_webhook(body, headers)
    assert not isinstance(caught.value, MissingSignature)
    assert SIGNATURE_KEY not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"type": "payment.updated"}',
        b'{"event_id": "e", "type": "payment.updated"}',
        json.dumps(
            {
                "event_id": "e",
                "type": "payment.updated",
                "data": {"object": {"payment": _payment("WEIRD")}},
            }
        ).encode(),
        *(
            json.dumps(
                {
                    "event_id": "e",
                    "type": "payment.updated",
                    "data": {
                        "object": {
                            "payment": _payment(
                                "COMPLETED", amount_money={"amount": bad, "currency": "USD"}
                            )
                        }
                    },
                }
            ).encode()
            # a float would be truncated (19.99 -> 19 cents), a bool counted as 1
            for bad in (19.99, "abc", True)
        ),
    ],
    ids=[
        "not-json",
        "array",
        "no-event-id",
        "no-data",
        "unknown-status",
        "float-amount",
        "text-amount",
        "bool-amount",
    ],
)
def test_signed_but_malformed_bodies(square: SquareProvider, body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        square.parse_webhook(body, _forged(body))


@pytest.mark.parametrize(
    ("square_type", "kind", "obj"),
    [
        ("payment.updated", "payment", _payment("COMPLETED", amount_money=5)),
        ("payment.updated", "payment", _payment("COMPLETED", refunded_money="x")),
        (
            "payment.updated",
            "payment",
            _payment("COMPLETED", amount_money={"amount": 1, "currency": "ZZZ"}),
        ),
        ("refund.updated", "refund", {"id": "R1", "status": "COMPLETED", "amount_money": True}),
        ("dispute.state.updated", "dispute", {"id": "D1", "state": "LOST", "amount_money": []}),
        ("invoice.payment_made", "invoice", {"id": "I1", "status": "PAID", "payment_requests": 7}),
        (
            "invoice.payment_made",
            "invoice",
            {"id": "I1", "status": "PAID", "payment_requests": [None]},
        ),
    ],
    ids=[
        "amount-int",
        "refunded-str",
        "currency",
        "refund-bool",
        "dispute-list",
        "requests-int",
        "request-null",
    ],
)
def test_signed_fields_of_the_wrong_shape_are_malformed(
    square: SquareProvider, square_type: str, kind: str, obj: dict[str, Any]
) -> None:
    """A signed body with a field of the wrong shape raises MalformedPayload naming the
    event, never an AttributeError/TypeError from inside the adapter."""
    body = json.dumps(
        {
            "event_id": "evt-shape",
            "type": square_type,
            "data": {"type": kind, "object": {kind: obj}},
        }
    ).encode()
    with pytest.raises(MalformedPayload, match="Square"):
        square.parse_webhook(body, _forged(body))


def test_webhooks_need_the_key_and_the_url() -> None:
    provider = SquareProvider(access_token="t", location_id="L", webhook_url=WEBHOOK_URL)
    with pytest.raises(ConfigurationError, match="webhook_signature_key"):
        provider.parse_webhook(b"{}", {HEADER: "x"})
    provider.close()


def test_verification_errors_are_webhook_errors() -> None:
    assert issubclass(MissingSignature, WebhookVerificationError)
    assert issubclass(MalformedPayload, WebhookVerificationError)


# -- event types derived from the object's status ----------------------------------------------


@pytest.mark.parametrize(
    ("square_type", "status", "expected", "payment_status"),
    [
        ("payment.created", "APPROVED", EventType.PAYMENT_AUTHORIZED, PaymentStatus.AUTHORIZED),
        ("payment.created", "COMPLETED", EventType.PAYMENT_SUCCEEDED, PaymentStatus.SUCCEEDED),
        ("payment.created", "PENDING", EventType.PAYMENT_PROCESSING, PaymentStatus.PROCESSING),
        ("payment.updated", "COMPLETED", EventType.PAYMENT_SUCCEEDED, PaymentStatus.SUCCEEDED),
        ("payment.updated", "CANCELED", EventType.PAYMENT_CANCELED, PaymentStatus.CANCELED),
        ("payment.updated", "FAILED", EventType.PAYMENT_FAILED, PaymentStatus.FAILED),
    ],
)
def test_payment_events_by_status(
    square: SquareProvider,
    square_api: SquareMockAPI,
    square_type: str,
    status: str,
    expected: EventType,
    payment_status: PaymentStatus,
) -> None:
    delivery = _deliver(square_api, square_type, "payment", _payment(status))
    event = square.parse_webhook(delivery.body, delivery.headers)
    assert event.type is expected
    assert isinstance(event.object, Payment) and event.object.status is payment_status
    assert (
        event.object.order_id == "ord_7"
        and event.order_id == "ord_7"
        and event.payment_id == "PAY1"
    )
    assert event.occurred_at is not None and event.occurred_at.tzinfo is timezone.utc
    change = event_from_webhook(event)
    assert change is not None and change.trigger.value == payment_status.value
    if expected is EventType.PAYMENT_SUCCEEDED:
        assert change.amount == 2500


def test_refunded_payment_update_keeps_succeeded_type_with_refund_amounts(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    delivery = _deliver(
        square_api,
        "payment.updated",
        "payment",
        _payment("COMPLETED", refunded_money={"amount": 500, "currency": "USD"}),
    )
    event = square.parse_webhook(delivery.body, delivery.headers)
    assert event.type is EventType.PAYMENT_SUCCEEDED
    assert isinstance(event.object, Payment)
    assert event.object.status is PaymentStatus.PARTIALLY_REFUNDED
    assert event.object.amount_refunded == Money(500, "USD")


def test_order_id_from_the_payment_link_note(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    obj = _payment("COMPLETED", note="paygate-order:ord_link")
    del obj["reference_id"]
    delivery = _deliver(square_api, "payment.created", "payment", obj)
    assert square.parse_webhook(delivery.body, delivery.headers).order_id == "ord_link"


def _refund(status: str) -> dict[str, Any]:
    return {
        "id": "RF1",
        "status": status,
        "payment_id": "PAY1",
        "amount_money": {"amount": 700, "currency": "USD"},
        "created_at": "2026-03-02T00:00:00Z",
    }


@pytest.mark.parametrize(
    ("square_type", "status", "expected", "refund_status", "moves"),
    [
        ("refund.created", "PENDING", EventType.REFUND_CREATED, RefundStatus.PENDING, False),
        ("refund.created", "COMPLETED", EventType.REFUND_CREATED, RefundStatus.SUCCEEDED, True),
        ("refund.updated", "PENDING", EventType.REFUND_CREATED, RefundStatus.PENDING, False),
        ("refund.updated", "COMPLETED", EventType.REFUND_SUCCEEDED, RefundStatus.SUCCEEDED, True),
        ("refund.updated", "REJECTED", EventType.REFUND_FAILED, RefundStatus.FAILED, False),
        ("refund.updated", "FAILED", EventType.REFUND_FAILED, RefundStatus.FAILED, False),
        ("refund.created", "FAILED", EventType.REFUND_FAILED, RefundStatus.FAILED, False),
    ],
)
def test_refund_events(
    square: SquareProvider,
    square_api: SquareMockAPI,
    square_type: str,
    status: str,
    expected: EventType,
    refund_status: RefundStatus,
    moves: bool,
) -> None:
    delivery = _deliver(square_api, square_type, "refund", _refund(status))
    event = square.parse_webhook(delivery.body, delivery.headers)
    assert event.type is expected
    assert isinstance(event.object, Refund)
    assert event.object.status is refund_status and event.object.payment_id == "PAY1"
    assert event.payment_id == "PAY1"
    change = event_from_webhook(event)
    if moves:
        assert change is not None and change.trigger is Trigger.REFUNDED
        assert change.amount == 700 and change.ref == "RF1"
    elif refund_status in (RefundStatus.FAILED, RefundStatus.CANCELED):
        # takes the refund back if it was counted (a no-op for one never counted)
        assert change is not None and change.trigger is Trigger.REFUND_REVERSED
        assert change.amount == 700 and change.ref == "RF1"
    else:
        assert change is None


def _dispute(state: str) -> dict[str, Any]:
    return {
        "id": "DSP1",
        "state": state,
        "amount_money": {"amount": 2500, "currency": "USD"},
        "reason": "FRAUD",
        "disputed_payment": {"payment_id": "PAY1"},
        "due_at": "2026-04-01T00:00:00.000Z",
    }


@pytest.mark.parametrize(
    ("square_type", "state", "expected", "status"),
    [
        ("dispute.created", "EVIDENCE_REQUIRED", EventType.DISPUTE_OPENED, DisputeStatus.OPEN),
        (
            "dispute.created",
            "INQUIRY_EVIDENCE_REQUIRED",
            EventType.DISPUTE_OPENED,
            DisputeStatus.OPEN,
        ),
        (
            "dispute.state.updated",
            "PROCESSING",
            EventType.DISPUTE_UPDATED,
            DisputeStatus.UNDER_REVIEW,
        ),
        ("dispute.state.updated", "WON", EventType.DISPUTE_WON, DisputeStatus.WON),
        ("dispute.state.updated", "INQUIRY_CLOSED", EventType.DISPUTE_WON, DisputeStatus.CLOSED),
        ("dispute.state.updated", "LOST", EventType.DISPUTE_LOST, DisputeStatus.LOST),
        ("dispute.state.updated", "ACCEPTED", EventType.DISPUTE_LOST, DisputeStatus.CLOSED),
        ("dispute.state.changed", "WON", EventType.DISPUTE_WON, DisputeStatus.WON),
    ],
)
def test_dispute_events(
    square: SquareProvider,
    square_api: SquareMockAPI,
    square_type: str,
    state: str,
    expected: EventType,
    status: DisputeStatus,
) -> None:
    delivery = _deliver(square_api, square_type, "dispute", _dispute(state))
    event = square.parse_webhook(delivery.body, delivery.headers)
    assert event.type is expected
    assert isinstance(event.object, Dispute) and event.object.status is status
    assert event.payment_id == "PAY1" and event.object.amount == Money(2500, "USD")


def _subscription(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "SUB1",
        "status": status,
        "customer_id": "C1",
        "plan_variation_id": "PV1",
        "location_id": "L",
        "charged_through_date": "2026-05-01",
        **extra,
    }


@pytest.mark.parametrize(
    ("square_type", "obj", "expected", "status"),
    [
        (
            "subscription.created",
            _subscription("ACTIVE"),
            EventType.SUBSCRIPTION_CREATED,
            SubscriptionStatus.ACTIVE,
        ),
        (
            "subscription.created",
            _subscription("PENDING"),
            EventType.SUBSCRIPTION_CREATED,
            SubscriptionStatus.PENDING,
        ),
        (
            "subscription.updated",
            _subscription("ACTIVE", canceled_date="2026-05-01"),
            EventType.SUBSCRIPTION_UPDATED,
            SubscriptionStatus.ACTIVE,
        ),
        (
            "subscription.updated",
            _subscription("PAUSED"),
            EventType.SUBSCRIPTION_UPDATED,
            SubscriptionStatus.PAUSED,
        ),
        (
            "subscription.updated",
            _subscription("CANCELED"),
            EventType.SUBSCRIPTION_CANCELED,
            SubscriptionStatus.CANCELED,
        ),
        (
            "subscription.updated",
            _subscription("DEACTIVATED"),
            EventType.SUBSCRIPTION_CANCELED,
            SubscriptionStatus.CANCELED,
        ),
    ],
)
def test_subscription_events(
    square: SquareProvider,
    square_api: SquareMockAPI,
    square_type: str,
    obj: dict[str, Any],
    expected: EventType,
    status: SubscriptionStatus,
) -> None:
    delivery = _deliver(square_api, square_type, "subscription", obj)
    event = square.parse_webhook(delivery.body, delivery.headers)
    assert event.type is expected
    assert isinstance(event.object, Subscription) and event.object.status is status
    assert event.object.price_id == "PV1" and event.object.customer_id == "C1"
    assert event.object.cancel_at_period_end is (
        "canceled_date" in obj and status is SubscriptionStatus.ACTIVE
    )
    assert event_from_webhook(event) is None


def _invoice(status: str) -> dict[str, Any]:
    return {
        "id": "inv:1",
        "status": status,
        "location_id": "L",
        "order_id": "SQORD",
        "primary_recipient": {"customer_id": "C1"},
        "payment_requests": [
            {
                "request_type": "BALANCE",
                "due_date": "2026-06-01",
                "computed_amount_money": {"amount": 9900, "currency": "USD"},
                "total_completed_amount_money": {
                    "amount": 9900 if status == "PAID" else 0,
                    "currency": "USD",
                },
            }
        ],
    }


@pytest.mark.parametrize(
    ("square_type", "status", "expected", "invoice_status"),
    [
        ("invoice.payment_made", "PAID", EventType.INVOICE_PAID, InvoiceStatus.PAID),
        (
            "invoice.scheduled_charge_failed",
            "UNPAID",
            EventType.INVOICE_PAYMENT_FAILED,
            InvoiceStatus.OPEN,
        ),
        ("invoice.created", "DRAFT", EventType.INVOICE_CREATED, InvoiceStatus.DRAFT),
        ("invoice.published", "UNPAID", EventType.INVOICE_CREATED, InvoiceStatus.OPEN),
        ("invoice.canceled", "CANCELED", EventType.INVOICE_VOIDED, InvoiceStatus.VOID),
        ("invoice.refunded", "REFUNDED", EventType.INVOICE_REFUNDED, InvoiceStatus.REFUNDED),
    ],
)
def test_invoice_events(
    square: SquareProvider,
    square_api: SquareMockAPI,
    square_type: str,
    status: str,
    expected: EventType,
    invoice_status: InvoiceStatus,
) -> None:
    delivery = _deliver(square_api, square_type, "invoice", _invoice(status))
    event = square.parse_webhook(delivery.body, delivery.headers)
    assert event.type is expected
    assert isinstance(event.object, Invoice) and event.object.status is invoice_status
    assert event.object.amount_due == Money(9900, "USD") and event.object.customer_id == "C1"


@pytest.mark.parametrize(
    "square_type", ["team_member.created", "order.updated", "invoice.reminder_sent"]
)
def test_events_without_a_paygate_type_are_kept_as_unknown(
    square: SquareProvider, square_api: SquareMockAPI, square_type: str
) -> None:
    event_body = square_api.event(
        square_type, square_type.split(".")[0], {"id": "X1", "status": "CANCELED"}
    )
    delivery = square_api.delivery(event_body)
    event = square.parse_webhook(delivery.body, delivery.headers)
    assert event.type is EventType.UNKNOWN and event.object is None
    assert event.provider_type == square_type and event.raw == event_body


# -- Square's own examples from the specification ----------------------------------------------

SPEC_EVENTS = {
    "PaymentCreatedEvent": EventType.PAYMENT_AUTHORIZED,  # the example is APPROVED
    "PaymentUpdatedEvent": EventType.PAYMENT_SUCCEEDED,
    "RefundCreatedEvent": EventType.REFUND_CREATED,
    "RefundUpdatedEvent": EventType.REFUND_SUCCEEDED,
    "DisputeCreatedEvent": EventType.DISPUTE_OPENED,
    "DisputeStateUpdatedEvent": EventType.DISPUTE_WON,
    "DisputeStateChangedEvent": EventType.DISPUTE_WON,
    "SubscriptionCreatedEvent": EventType.SUBSCRIPTION_CREATED,
    "SubscriptionUpdatedEvent": EventType.SUBSCRIPTION_UPDATED,
    "InvoiceCreatedEvent": EventType.INVOICE_CREATED,
    "InvoicePublishedEvent": EventType.INVOICE_CREATED,
    "InvoicePaymentMadeEvent": EventType.INVOICE_PAID,
    "InvoiceScheduledChargeFailedEvent": EventType.INVOICE_PAYMENT_FAILED,
    "InvoiceCanceledEvent": EventType.INVOICE_VOIDED,
    "InvoiceRefundedEvent": EventType.INVOICE_REFUNDED,
    "CustomerCreatedEvent": EventType.CUSTOMER_CREATED,
    "CustomerUpdatedEvent": EventType.CUSTOMER_UPDATED,
    "CustomerDeletedEvent": EventType.CUSTOMER_DELETED,
    "CardCreatedEvent": EventType.PAYMENT_METHOD_ATTACHED,
    "CardUpdatedEvent": EventType.PAYMENT_METHOD_UPDATED,
    "CardAutomaticallyUpdatedEvent": EventType.PAYMENT_METHOD_UPDATED,
    "CardDisabledEvent": EventType.PAYMENT_METHOD_DETACHED,
    "CardForgottenEvent": EventType.PAYMENT_METHOD_DETACHED,
    "TeamMemberCreatedEvent": EventType.UNKNOWN,
}


@pytest.mark.parametrize(("schema_name", "expected"), sorted(SPEC_EVENTS.items()))
def test_square_spec_example_events_parse(
    square: SquareProvider, schema_name: str, expected: EventType
) -> None:
    example = _spec()["components"]["schemas"][schema_name]["example"]
    body = json.dumps(example, indent=2).encode()  # any formatting: the raw bytes are signed
    event = square.parse_webhook(body, _forged(body))
    assert event.id == example["event_id"] and event.provider_type == example["type"]
    # the examples' own statuses decide these (e.g. RefundUpdatedEvent's is COMPLETED)
    assert event.type is expected, (schema_name, event.type)
    assert event.occurred_at is not None and event.occurred_at.tzinfo is timezone.utc
    assert event.raw == example
    if expected is not EventType.UNKNOWN:
        inner = example["data"]["object"][example["data"]["type"]]
        inner_id = inner.get("id") or inner["dispute_id"]  # older disputes: dispute_id
        assert event.object is not None and event.object.id == inner_id


def _schema_for(square_type: str) -> str:
    return "".join(part.capitalize() for part in square_type.replace(".", "_").split("_")) + "Event"


def test_mock_events_follow_the_spec(square: SquareProvider, square_api: SquareMockAPI) -> None:
    """Every event the mock API emits in a full scenario is valid under Square's schema."""
    payment = square.create_payment(
        order_id="o1",
        amount=Money(1000, "USD"),
        payment_method="cnon:card-nonce-ok",
        idempotency_key="o1",
        capture="manual",
    )
    square.capture_payment(payment.id, idempotency_key="c")
    refund = square.refund_payment(payment.id, amount=Money(300, "USD"), idempotency_key="r")
    square_api.complete_refund(refund.id)
    dispute = square_api.open_dispute(payment.id)
    square_api.set_dispute_state(dispute["id"], "WON")
    customer = square.create_customer(email="a@example.com", name=None, idempotency_key="c1")
    sub = square.create_subscription(customer_id=customer.id, price_id="PV", idempotency_key="s")
    square.cancel_subscription(sub.id, at_period_end=True)
    deliveries = square_api.take_webhooks()
    kinds = set()
    for delivery in deliveries:
        body = json.loads(delivery.body)
        kinds.add(body["type"])
        schema = _schema_for(body["type"])
        if body["type"].startswith("dispute."):
            # the spec's schema calls the key data.object.object, its own examples (and
            # Square) send data.object.dispute: check the dispute itself
            validate(body["data"]["object"]["dispute"], "Dispute")
        else:
            validate(body, schema)
        event = square.parse_webhook(delivery.body, delivery.headers)
        assert event.type is not EventType.UNKNOWN
    assert kinds == {
        "payment.created",
        "payment.updated",
        "refund.created",
        "refund.updated",
        "dispute.created",
        "dispute.state.updated",
        "subscription.created",
        "subscription.updated",
    }
    assert unknown_fields({"event_id": "x"}, "PaymentUpdatedEvent") == []
