"""Stripe webhooks: signature vectors both ways with the SDK, forged variants, event mapping."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe

from paygate import (
    ConfigurationError,
    Dispute,
    EventType,
    InvalidSignature,
    Invoice,
    MalformedPayload,
    MissingSignature,
    Money,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
    TimestampOutsideTolerance,
    WebhookVerificationError,
)
from paygate.models import (
    CheckoutSession,
    Customer,
    DisputeStatus,
    PaymentMethod,
    SetupSession,
    SetupStatus,
)
from paygate.providers._stripe_webhook import sign
from paygate.providers.stripe import EVENT_TYPES, StripeProvider
from paygate.state import PaymentEvent, PaymentState, Trigger, apply, event_from_webhook
from tests.fixtures.stripe import event_body, resource

SECRET = "whsec_test_primary_secret"
OLD_SECRET = "whsec_test_rotated_out"
NOW = 1_700_000_000


@pytest.fixture
def provider() -> StripeProvider:
    p = StripeProvider(api_key="sk_test_webhooks", webhook_secret=[SECRET, OLD_SECRET])
    p._clock = lambda: float(NOW)
    return p


def intent(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "pi_wh_1",
        "amount": 2500,
        "currency": "eur",
        "status": "succeeded",
        "amount_received": 2500,
        "last_payment_error": None,
        "metadata": {"order_id": "ord_wh"},
    }
    return resource("payment_intent", **{**base, **fields})


def deliver(provider: StripeProvider, event_type: str, obj: dict[str, Any], **kw: Any) -> Any:
    body = event_body(event_type, obj, created=NOW, **kw)
    return provider.parse_webhook(body, {"Stripe-Signature": sign(body, SECRET, NOW)})


# -- vectors both ways -----------------------------------------------------------------------


def test_paygate_signature_verifies_with_the_sdk() -> None:
    body = event_body("payment_intent.succeeded", intent())
    header = sign(body, SECRET, NOW)
    assert stripe.WebhookSignature.verify_header(body, header, SECRET, tolerance=None) is True
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(body + b" ", header, SECRET, tolerance=None)


def test_sdk_signature_verifies_with_paygate(provider: StripeProvider) -> None:
    body = event_body("payment_intent.succeeded", intent())
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, timestamp=NOW)
    event = provider.parse_webhook(body, {"Stripe-Signature": header})
    sdk_event = stripe.Webhook.construct_event(body, header, SECRET, tolerance=None)
    assert event.id == sdk_event.id and event.provider_type == sdk_event.type
    assert event.type is EventType.PAYMENT_SUCCEEDED
    assert isinstance(event.object, Payment) and event.object.id == sdk_event.data.object.id


def test_non_ascii_body_is_signed_over_raw_bytes(provider: StripeProvider) -> None:
    body = event_body("payment_intent.succeeded", intent(description="Café ☕ crème"))
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, timestamp=NOW)
    assert provider.parse_webhook(body, {"stripe-signature": header}).object is not None


def test_header_name_is_case_insensitive_and_rotation_works(provider: StripeProvider) -> None:
    body = event_body("payment_intent.canceled", intent(status="canceled"))
    for name in ("Stripe-Signature", "stripe-signature", "STRIPE-SIGNATURE"):
        assert provider.parse_webhook(body, {name: sign(body, SECRET, NOW)}).id == "evt_test_1"
    # signed with the older secret still in our configured list
    event = provider.parse_webhook(body, {"Stripe-Signature": sign(body, OLD_SECRET, NOW)})
    assert event.type is EventType.PAYMENT_CANCELED


def test_several_v1_entries_one_valid_and_a_v0_ignored(provider: StripeProvider) -> None:
    body = event_body("payment_intent.created", intent(status="requires_payment_method"))
    good = sign(body, SECRET, NOW).split(",")[1]
    header = f"t={NOW},v1={'0' * 64},{good},v0={'f' * 64}"
    assert provider.parse_webhook(body, {"Stripe-Signature": header}).type is (
        EventType.PAYMENT_CREATED
    )


def test_tolerance_window_edges(provider: StripeProvider) -> None:
    body = event_body("payment_intent.processing", intent(status="processing"))
    for t in (NOW - 300, NOW + 300):
        provider.parse_webhook(body, {"Stripe-Signature": sign(body, SECRET, t)})
    for t in (NOW - 301, NOW + 301):
        with pytest.raises(TimestampOutsideTolerance):
            provider.parse_webhook(body, {"Stripe-Signature": sign(body, SECRET, t)})


# -- forged variants ---------------------------------------------------------------------------


def _forgeries() -> list[tuple[str, Any, type[WebhookVerificationError]]]:
    def tampered(b: bytes) -> tuple[bytes, dict[str, str]]:
        return b.replace(b"2500", b"9999"), {"Stripe-Signature": sign(b, SECRET, NOW)}

    def wrong_secret(b: bytes) -> tuple[bytes, dict[str, str]]:
        return b, {"Stripe-Signature": sign(b, "whsec_attacker", NOW)}

    def stale(b: bytes) -> tuple[bytes, dict[str, str]]:
        return b, {"Stripe-Signature": sign(b, SECRET, NOW - 3600)}

    def future(b: bytes) -> tuple[bytes, dict[str, str]]:
        return b, {"Stripe-Signature": sign(b, SECRET, NOW + 3600)}

    def v0_only(b: bytes) -> tuple[bytes, dict[str, str]]:
        digest = sign(b, SECRET, NOW).split("v1=")[1]
        return b, {"Stripe-Signature": f"t={NOW},v0={digest}"}

    def no_header(b: bytes) -> tuple[bytes, dict[str, str]]:
        return b, {"Content-Type": "application/json"}

    def empty_header(b: bytes) -> tuple[bytes, dict[str, str]]:
        return b, {"Stripe-Signature": ""}

    def garbage_header(b: bytes) -> tuple[bytes, dict[str, str]]:
        return b, {"Stripe-Signature": "garbage;;;not=a,header"}

    def bad_timestamp(b: bytes) -> tuple[bytes, dict[str, str]]:
        digest = sign(b, SECRET, NOW).split("v1=")[1]
        return b, {"Stripe-Signature": f"t=-{NOW},v1={digest}"}

    def retimed(b: bytes) -> tuple[bytes, dict[str, str]]:
        digest = sign(b, SECRET, NOW - 3600).split("v1=")[1]  # old signature, fresh t
        return b, {"Stripe-Signature": f"t={NOW},v1={digest}"}

    def non_json(b: bytes) -> tuple[bytes, dict[str, str]]:
        junk = b"<html>not json</html>"
        return junk, {"Stripe-Signature": sign(junk, SECRET, NOW)}

    def not_utf8(b: bytes) -> tuple[bytes, dict[str, str]]:
        junk = b"\xff\xfe{"
        return junk, {"Stripe-Signature": sign(junk, SECRET, NOW)}

    def json_not_event(b: bytes) -> tuple[bytes, dict[str, str]]:
        other = b'{"object": "payment_intent", "id": "pi_1"}'
        return other, {"Stripe-Signature": sign(other, SECRET, NOW)}

    def event_without_data(b: bytes) -> tuple[bytes, dict[str, str]]:
        other = b'{"object": "event", "id": "evt_1", "type": "payment_intent.succeeded"}'
        return other, {"Stripe-Signature": sign(other, SECRET, NOW)}

    return [
        ("tampered body", tampered, InvalidSignature),
        ("wrong secret", wrong_secret, InvalidSignature),
        ("stale timestamp", stale, TimestampOutsideTolerance),
        ("future timestamp", future, TimestampOutsideTolerance),
        ("v0 only", v0_only, InvalidSignature),
        ("no header", no_header, MissingSignature),
        ("empty header", empty_header, MissingSignature),
        ("garbage header", garbage_header, InvalidSignature),
        ("negative timestamp", bad_timestamp, InvalidSignature),
        ("old signature with fresh t", retimed, InvalidSignature),
        ("non-JSON body after a good signature", non_json, MalformedPayload),
        ("non-UTF-8 body after a good signature", not_utf8, MalformedPayload),
        ("JSON that is not an event", json_not_event, MalformedPayload),
        ("event without data.object", event_without_data, MalformedPayload),
    ]


@pytest.mark.parametrize(
    ("name", "forge", "expected"), _forgeries(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_forged_variants_are_rejected(
    provider: StripeProvider, name: str, forge: Any, expected: type[Exception]
) -> None:
    body, headers = forge(event_body("payment_intent.succeeded", intent()))
    with pytest.raises(expected) as info:
        provider.parse_webhook(body, headers)
    assert type(info.value) is expected
    assert SECRET not in str(info.value) and OLD_SECRET not in str(info.value)


def test_sdk_only_checks_the_past_paygate_checks_both(provider: StripeProvider) -> None:
    now = int(time.time())
    provider._clock = lambda: float(now)
    body = event_body("payment_intent.succeeded", intent())
    header = sign(body, SECRET, now + 3600)  # an hour ahead of both clocks
    assert stripe.WebhookSignature.verify_header(body, header, SECRET, tolerance=300) is True
    with pytest.raises(TimestampOutsideTolerance):
        provider.parse_webhook(body, {"Stripe-Signature": header})


def test_no_webhook_secret_configured() -> None:
    provider = StripeProvider(api_key="sk_test_x")
    with pytest.raises(ConfigurationError, match="webhook_secret"):
        provider.parse_webhook(b"{}", {"Stripe-Signature": "t=1,v1=00"})


# -- event mapping -----------------------------------------------------------------------------


def _obj(name: str, **fields: Any) -> dict[str, Any]:
    return resource(name, **fields)


def refund_obj(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "re_1",
        "amount": 1000,
        "currency": "eur",
        "payment_intent": "pi_wh_1",
        "status": "succeeded",
    }
    return _obj("refund", **{**base, **fields})


def dispute_obj(**fields: Any) -> dict[str, Any]:
    base = {"id": "dp_1", "amount": 2500, "currency": "eur", "payment_intent": "pi_wh_1"}
    return _obj("dispute", **{**base, **fields})


def session_obj(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "cs_1",
        "payment_intent": "pi_wh_1",
        "client_reference_id": "ord_wh",
        "status": "complete",
        "amount_total": 2500,
        "currency": "eur",
    }
    return _obj("checkout.session", **{**base, **fields})


CASES: list[tuple[str, Any, EventType, type]] = [
    (
        "payment_intent.created",
        lambda: intent(status="requires_payment_method"),
        EventType.PAYMENT_CREATED,
        Payment,
    ),
    (
        "payment_intent.processing",
        lambda: intent(status="processing"),
        EventType.PAYMENT_PROCESSING,
        Payment,
    ),
    (
        "payment_intent.requires_action",
        lambda: intent(status="requires_action"),
        EventType.PAYMENT_ACTION_REQUIRED,
        Payment,
    ),
    (
        "payment_intent.amount_capturable_updated",
        lambda: intent(status="requires_capture"),
        EventType.PAYMENT_AUTHORIZED,
        Payment,
    ),
    ("payment_intent.succeeded", intent, EventType.PAYMENT_SUCCEEDED, Payment),
    (
        "payment_intent.payment_failed",
        lambda: intent(
            status="requires_payment_method",
            last_payment_error={
                "type": "card_error",
                "code": "card_declined",
                "decline_code": "stolen_card",
            },
        ),
        EventType.PAYMENT_FAILED,
        Payment,
    ),
    (
        "payment_intent.canceled",
        lambda: intent(status="canceled"),
        EventType.PAYMENT_CANCELED,
        Payment,
    ),
    (
        "charge.refunded",
        lambda: _obj(
            "charge",
            payment_intent="pi_wh_1",
            amount=2500,
            amount_captured=2500,
            amount_refunded=1000,
            currency="eur",
            refunds={"object": "list", "data": [refund_obj()]},
        ),
        EventType.REFUND_SUCCEEDED,
        Refund,
    ),
    (
        "charge.refunded",
        lambda: _obj(
            "charge",
            payment_intent="pi_wh_1",
            amount=2500,
            amount_captured=2500,
            amount_refunded=2500,
            refunded=True,
            currency="eur",
            refunds=None,
        ),
        EventType.REFUND_SUCCEEDED,
        Payment,
    ),
    ("refund.created", refund_obj, EventType.REFUND_CREATED, Refund),
    ("refund.updated", refund_obj, EventType.REFUND_SUCCEEDED, Refund),
    ("refund.updated", lambda: refund_obj(status="pending"), EventType.REFUND_CREATED, Refund),
    ("refund.updated", lambda: refund_obj(status="canceled"), EventType.REFUND_FAILED, Refund),
    ("refund.failed", lambda: refund_obj(status="failed"), EventType.REFUND_FAILED, Refund),
    (
        "charge.refund.updated",
        # failure_reason: set on failed refunds only (Stripe's example refund has none)
        lambda: {**refund_obj(status="failed"), "failure_reason": "expired_or_canceled_card"},
        EventType.REFUND_FAILED,
        Refund,
    ),
    ("charge.refund.updated", refund_obj, EventType.REFUND_SUCCEEDED, Refund),
    (
        "charge.dispute.created",
        lambda: dispute_obj(status="needs_response"),
        EventType.DISPUTE_OPENED,
        Dispute,
    ),
    (
        "charge.dispute.updated",
        lambda: dispute_obj(status="under_review"),
        EventType.DISPUTE_UPDATED,
        Dispute,
    ),
    ("charge.dispute.closed", lambda: dispute_obj(status="won"), EventType.DISPUTE_WON, Dispute),
    ("charge.dispute.closed", lambda: dispute_obj(status="lost"), EventType.DISPUTE_LOST, Dispute),
    (
        "charge.dispute.closed",
        lambda: dispute_obj(status="warning_closed"),
        EventType.DISPUTE_WON,
        Dispute,
    ),
    (
        "charge.dispute.funds_withdrawn",
        lambda: dispute_obj(status="needs_response"),
        EventType.DISPUTE_UPDATED,
        Dispute,
    ),
    (
        "charge.dispute.funds_reinstated",
        lambda: dispute_obj(status="won"),
        EventType.DISPUTE_UPDATED,
        Dispute,
    ),
    (
        "customer.subscription.created",
        lambda: _obj("subscription", status="incomplete"),
        EventType.SUBSCRIPTION_CREATED,
        Subscription,
    ),
    (
        "customer.subscription.updated",
        lambda: _obj("subscription", status="active"),
        EventType.SUBSCRIPTION_UPDATED,
        Subscription,
    ),
    (
        "customer.subscription.paused",
        lambda: _obj("subscription", status="paused"),
        EventType.SUBSCRIPTION_UPDATED,
        Subscription,
    ),
    (
        "customer.subscription.resumed",
        lambda: _obj("subscription", status="active"),
        EventType.SUBSCRIPTION_UPDATED,
        Subscription,
    ),
    (
        "customer.subscription.deleted",
        lambda: _obj("subscription", status="canceled"),
        EventType.SUBSCRIPTION_CANCELED,
        Subscription,
    ),
    (
        "invoice.created",
        lambda: _obj("invoice", status="draft"),
        EventType.INVOICE_CREATED,
        Invoice,
    ),
    (
        "invoice.finalized",
        lambda: _obj("invoice", status="open"),
        EventType.INVOICE_CREATED,
        Invoice,
    ),
    (
        "invoice.paid",
        lambda: _obj("invoice", status="paid", amount_paid=1000),
        EventType.INVOICE_PAID,
        Invoice,
    ),
    (
        "invoice.payment_failed",
        lambda: _obj("invoice", status="open"),
        EventType.INVOICE_PAYMENT_FAILED,
        Invoice,
    ),
    ("invoice.voided", lambda: _obj("invoice", status="void"), EventType.INVOICE_VOIDED, Invoice),
    (
        "customer.subscription.trial_will_end",
        lambda: _obj("subscription", status="trialing"),
        EventType.SUBSCRIPTION_TRIAL_WILL_END,
        Subscription,
    ),
    # an upcoming invoice has no id yet: its subscription and period name it
    ("invoice.upcoming", lambda: _obj("invoice", id=None), EventType.INVOICE_UPCOMING, Invoice),
    ("checkout.session.completed", session_obj, EventType.CHECKOUT_COMPLETED, CheckoutSession),
    (
        "checkout.session.async_payment_succeeded",
        session_obj,
        EventType.PAYMENT_SUCCEEDED,
        CheckoutSession,
    ),
    (
        "checkout.session.async_payment_failed",
        session_obj,
        EventType.PAYMENT_FAILED,
        CheckoutSession,
    ),
    (
        "checkout.session.expired",
        lambda: session_obj(status="expired", payment_intent=None),
        EventType.CHECKOUT_EXPIRED,
        CheckoutSession,
    ),
]

# customers, saved payment methods and setups (issue 19)
CASES += [
    ("customer.created", lambda: _obj("customer", id="cus_wh"), EventType.CUSTOMER_CREATED, Customer),
    ("customer.updated", lambda: _obj("customer", id="cus_wh"), EventType.CUSTOMER_UPDATED, Customer),
    ("customer.deleted", lambda: _obj("customer", id="cus_wh"), EventType.CUSTOMER_DELETED, Customer),
    (
        "payment_method.attached",
        lambda: _obj("payment_method", customer="cus_wh"),
        EventType.PAYMENT_METHOD_ATTACHED,
        PaymentMethod,
    ),
    (
        "payment_method.updated",
        lambda: _obj("payment_method", customer="cus_wh"),
        EventType.PAYMENT_METHOD_UPDATED,
        PaymentMethod,
    ),
    (
        "payment_method.automatically_updated",
        lambda: _obj("payment_method", customer="cus_wh"),
        EventType.PAYMENT_METHOD_UPDATED,
        PaymentMethod,
    ),
    (
        "payment_method.detached",
        lambda: _obj("payment_method", customer=None),
        EventType.PAYMENT_METHOD_DETACHED,
        PaymentMethod,
    ),
    (
        "setup_intent.succeeded",
        lambda: _obj(
            "setup_intent", status="succeeded", payment_method="pm_wh", last_setup_error=None
        ),
        EventType.SETUP_SUCCEEDED,
        SetupSession,
    ),
    (
        "setup_intent.setup_failed",
        lambda: _obj(
            "setup_intent",
            status="requires_payment_method",
            last_setup_error={"type": "card_error", "code": "card_declined"},
        ),
        EventType.SETUP_FAILED,
        SetupSession,
    ),
]  # fmt: skip


def test_saved_method_events_carry_their_objects(provider: StripeProvider) -> None:
    updated = deliver(
        provider,
        "payment_method.automatically_updated",
        _obj("payment_method", customer="cus_wh"),
    )
    method = updated.object
    assert isinstance(method, PaymentMethod)
    assert (method.customer_id, method.brand, method.last4) == ("cus_wh", "visa", "4242")
    assert (method.exp_month, method.exp_year, method.fingerprint) == (8, 2030, "AOB934RVNwzk6xtn")
    succeeded = deliver(
        provider,
        "setup_intent.succeeded",
        _obj("setup_intent", status="succeeded", payment_method="pm_wh", last_setup_error=None),
    ).object
    assert isinstance(succeeded, SetupSession)
    assert (succeeded.status, succeeded.payment_method_id) == (SetupStatus.SUCCEEDED, "pm_wh")
    failed = deliver(
        provider,
        "setup_intent.setup_failed",
        _obj(
            "setup_intent",
            status="requires_payment_method",
            last_setup_error={"type": "card_error", "code": "card_declined"},
        ),
    ).object
    assert isinstance(failed, SetupSession) and failed.status is SetupStatus.FAILED
    assert failed.failure is not None and failed.failure.decline_code == "card_declined"
    assert failed.payment_method_id is None


@pytest.mark.parametrize(
    ("stripe_type", "make", "expected", "cls"),
    CASES,
    ids=[f"{c[0]}->{c[2].value}:{c[3].__name__}" for c in CASES],
)
def test_event_mapping(
    provider: StripeProvider, stripe_type: str, make: Any, expected: EventType, cls: type
) -> None:
    event = deliver(provider, stripe_type, make(), event_id="evt_map")
    assert event.type is expected
    assert isinstance(event.object, cls)
    assert event.provider == "stripe" and event.provider_type == stripe_type
    assert event.id == "evt_map"
    assert event.occurred_at is not None and event.occurred_at.tzinfo is not None
    assert event.occurred_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert int(event.occurred_at.timestamp()) == NOW
    assert event.raw["type"] == stripe_type


def test_every_listed_stripe_type_is_covered() -> None:
    assert {c[0] for c in CASES} == set(EVENT_TYPES)


def test_unknown_event_kept_with_raw(provider: StripeProvider) -> None:
    plan = resource("event")["data"]["object"]
    event = deliver(provider, "plan.created", plan)
    assert event.type is EventType.UNKNOWN
    assert event.object is None
    assert event.provider_type == "plan.created"
    assert event.raw["data"]["object"]["id"] == plan["id"]
    assert event_from_webhook(event) is None


def test_known_type_with_unusable_object_is_malformed(provider: StripeProvider) -> None:
    with pytest.raises(MalformedPayload, match="evt_bad"):
        deliver(provider, "payment_intent.succeeded", intent(currency="zzz"), event_id="evt_bad")


@pytest.mark.parametrize("entry", [None, "si_1", 1.5, True, []])
def test_list_entry_that_is_not_an_object_is_malformed(
    provider: StripeProvider, entry: object
) -> None:
    """A signed body whose nested list holds a non-object is MalformedPayload, not an
    AttributeError escaping the adapter."""
    subscription = resource("subscription")
    subscription["items"] = {**subscription["items"], "data": [entry]}
    with pytest.raises(MalformedPayload, match="evt_items"):
        deliver(provider, "customer.subscription.updated", subscription, event_id="evt_items")


def test_payment_event_carries_order_and_capture(provider: StripeProvider) -> None:
    event = deliver(provider, "payment_intent.succeeded", intent(amount_received=2000))
    assert event.order_id == "ord_wh" and event.payment_id == "pi_wh_1"
    assert event.occurred_at is not None  # the event's created: the state machine's order
    assert event_from_webhook(event) == PaymentEvent(
        Trigger.SUCCEEDED, amount=2000, at=event.occurred_at.timestamp()
    )


def test_failed_payment_event_has_standard_decline_code(provider: StripeProvider) -> None:
    error = {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "generic_decline",
        "message": "Your card was declined.",
    }
    event = deliver(
        provider,
        "payment_intent.payment_failed",
        intent(status="requires_payment_method", amount_received=0, last_payment_error=error),
    )
    assert isinstance(event.object, Payment)
    assert event.object.status is PaymentStatus.FAILED
    assert event.object.failure is not None and event.object.failure.decline_code == "card_declined"


def test_refund_events_drive_the_state_machine_once(provider: StripeProvider) -> None:
    """refund.created + charge.refunded (+ a replay) of one refund count it once."""
    state = PaymentState(PaymentStatus.PENDING, amount=2500)
    succeeded = deliver(provider, "payment_intent.succeeded", intent())
    state = apply(state, event_from_webhook(succeeded)).state  # type: ignore[arg-type]

    pending = deliver(provider, "refund.created", refund_obj(status="pending"))
    assert event_from_webhook(pending) is None  # a pending refund moves nothing

    done = deliver(provider, "refund.updated", refund_obj())
    step = apply(state, event_from_webhook(done))  # type: ignore[arg-type]
    assert step.result == "applied" and step.state.status is PaymentStatus.PARTIALLY_REFUNDED
    state = step.state

    charge = _obj(
        "charge",
        payment_intent="pi_wh_1",
        amount=2500,
        amount_captured=2500,
        amount_refunded=1000,
        currency="eur",
        refunds={"object": "list", "data": [refund_obj()]},
    )
    again = deliver(provider, "charge.refunded", charge)
    assert isinstance(again.object, Refund) and again.object.id == "re_1"
    assert apply(state, event_from_webhook(again)).result == "duplicate"  # type: ignore[arg-type]

    # without the refunds list, charge.refunded informs but moves nothing
    bare = deliver(provider, "charge.refunded", {**charge, "refunds": None})
    assert isinstance(bare.object, Payment)
    assert bare.object.amount_refunded == Money(1000, "EUR")
    assert bare.object.status is PaymentStatus.PARTIALLY_REFUNDED
    assert event_from_webhook(bare) is None

    rest = deliver(provider, "refund.created", refund_obj(id="re_2", amount=1500))
    assert isinstance(rest.object, Refund) and rest.object.status is RefundStatus.SUCCEEDED
    final = apply(state, event_from_webhook(rest))  # type: ignore[arg-type]
    assert final.state.status is PaymentStatus.REFUNDED and final.state.refunded == 2500


def test_dispute_lifecycle_through_the_state_machine(provider: StripeProvider) -> None:
    state = PaymentState(PaymentStatus.SUCCEEDED, amount=2500, captured=2500)
    opened = deliver(provider, "charge.dispute.created", dispute_obj(status="needs_response"))
    assert isinstance(opened.object, Dispute) and opened.payment_id == "pi_wh_1"
    state = apply(state, event_from_webhook(opened)).state  # type: ignore[arg-type]
    assert state.status is PaymentStatus.DISPUTED
    withdrawn = deliver(
        provider, "charge.dispute.funds_withdrawn", dispute_obj(status="needs_response")
    )
    assert event_from_webhook(withdrawn) is None
    won = deliver(provider, "charge.dispute.closed", dispute_obj(status="won"))
    assert isinstance(won.object, Dispute) and won.object.status is DisputeStatus.WON
    assert apply(state, event_from_webhook(won)).state.status is PaymentStatus.SUCCEEDED  # type: ignore[arg-type]


def test_checkout_event_points_at_its_payment(provider: StripeProvider) -> None:
    event = deliver(provider, "checkout.session.completed", session_obj())
    assert event.order_id == "ord_wh" and event.payment_id == "pi_wh_1"
    assert isinstance(event.object, CheckoutSession)
    assert event.object.amount_total == Money(2500, "EUR")


def test_body_is_parsed_once_into_plain_dicts(
    provider: StripeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No StripeObject on the webhook path: raw is the dict json.loads produced."""
    calls: list[int] = []
    real_loads = json.loads

    def counting_loads(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real_loads(*args, **kwargs)

    monkeypatch.setattr("paygate._json.json.loads", counting_loads)
    event = deliver(provider, "payment_intent.succeeded", intent())
    assert len(calls) == 1
    assert type(event.raw) is dict and type(event.object.raw) is dict  # type: ignore[union-attr]
    assert not isinstance(event.raw["data"]["object"], stripe.StripeObject)


@pytest.mark.parametrize(
    ("stripe_type", "status", "expected", "setup_status"),
    [
        ("checkout.session.completed", "complete", EventType.SETUP_SUCCEEDED, SetupStatus.SUCCEEDED),
        ("checkout.session.expired", "expired", EventType.SETUP_FAILED, SetupStatus.CANCELED),
    ],
)
def test_checkout_in_setup_mode_is_a_setup_event(
    provider: StripeProvider,
    stripe_type: str,
    status: str,
    expected: EventType,
    setup_status: SetupStatus,
) -> None:
    session = session_obj(
        mode="setup", status=status, payment_intent=None, amount_total=None, currency=None,
        customer="cus_wh", setup_intent="seti_wh",
    )  # fmt: skip
    event = deliver(provider, stripe_type, session)
    assert event.type is expected
    assert isinstance(event.object, SetupSession)
    assert (event.object.id, event.object.status, event.object.customer_id) == (
        "cs_1",
        setup_status,
        "cus_wh",
    )
    assert event.payment_id is None
