"""The fake provider: scripted outcomes, rules, idempotency, webhooks, failure injection."""

from __future__ import annotations

import inspect
import json
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from paygate import (
    CardDeclined,
    CheckoutStatus,
    ConfigurationError,
    DisputeStatus,
    EventType,
    IdempotencyConflict,
    InvalidRequest,
    InvalidSignature,
    InvoiceStatus,
    LineItem,
    MalformedPayload,
    MissingSignature,
    Money,
    NotFound,
    NotSupported,
    Payment,
    PaymentProvider,
    PaymentStatus,
    ProviderUnavailable,
    Refund,
    RefundStatus,
    SubscriptionStatus,
    TimestampOutsideTolerance,
    ValidationError,
    WebhookDelivery,
    WebhookEvent,
    create_provider,
)
from paygate.provider import Capability
from paygate.providers.fake import DECLINES, SIGNATURE_HEADER, FakeProvider
from paygate.state import apply, event_from_webhook, state_of
from paygate.testing import FakeClock

USD = "USD"


def usd(value: str) -> Money:
    return Money.of(value, USD)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000)


@pytest.fixture
def fake(clock: FakeClock) -> FakeProvider:
    return FakeProvider(seed=1, clock=clock)


def pay(fake: FakeProvider, token: str | None = "tok_visa", **kwargs: Any) -> Payment:
    args: dict[str, Any] = {
        "order_id": "ord_1",
        "amount": usd("19.99"),
        "payment_method": token,
        "idempotency_key": f"key-{token}-{kwargs.get('order_id', 'ord_1')}",
    }
    args.update(kwargs)
    return fake.create_payment(**args)


def events(fake: FakeProvider) -> list[WebhookEvent]:
    return [fake.parse_webhook(d.body, d.headers) for d in fake.take_webhooks()]


def types(fake: FakeProvider) -> list[str]:
    return [e.type.value for e in events(fake)]


# -- construction and settings -----------------------------------------------------------------


def test_is_a_payment_provider_with_every_capability() -> None:
    provider = FakeProvider()
    assert isinstance(provider, PaymentProvider)
    assert provider.name == "fake"
    assert provider.capabilities == frozenset(Capability)


def test_created_through_the_registry_with_env_strings() -> None:
    provider = create_provider(
        "fake", seed="7", webhook_tolerance="60", max_retries="2", base_url="http://localhost:9/"
    )
    assert isinstance(provider, FakeProvider)
    assert provider.settings.seed == 7
    assert provider.settings.webhook_tolerance == 60
    assert provider.max_retries == 2
    assert provider.settings.base_url == "http://localhost:9"


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"bogus": "1"}, "bogus"),
        ({"seed": "not-a-number"}, "seed"),
        ({"base_url": "ftp://x"}, "base_url"),
        ({"webhook_tolerance": "-1"}, "webhook_tolerance"),
        ({"webhook_secret": ""}, "webhook_secret"),
    ],
)
def test_bad_settings_are_configuration_errors(settings: dict[str, Any], names: str) -> None:
    with pytest.raises(ConfigurationError, match=names):
        FakeProvider(**settings)


def test_secret_never_in_repr_or_settings_errors() -> None:
    secret = "whsec_do_not_leak_123"
    provider = FakeProvider(webhook_secret=secret)
    assert secret not in repr(provider)
    assert secret not in repr(provider.settings)
    with pytest.raises(ConfigurationError) as info:
        FakeProvider(webhook_secret=secret, seed="x")
    assert secret not in str(info.value)


def test_same_seed_same_ids_different_seed_different_ids() -> None:
    def run(seed: int) -> list[str]:
        provider = FakeProvider(seed=seed)
        p = pay(provider)
        r = provider.refund_payment(p.id, amount=usd("1"), idempotency_key="r")
        c = provider.create_customer(email=None, name=None, idempotency_key="c")
        return [p.id, r.id, c.id] + [json.loads(d.body)["id"] for d in provider.take_webhooks()]

    assert run(0) == run(0)
    assert run(0) != run(1)
    assert run(0)[0].startswith("pay_")


# -- payments ------------------------------------------------------------------------------------


def test_successful_payment(fake: FakeProvider) -> None:
    p = pay(fake, metadata={"cart": "42"}, description="2 tees")
    assert p.status is PaymentStatus.SUCCEEDED
    assert p.amount == usd("19.99")
    assert p.amount_captured == usd("19.99")
    assert p.amount_refunded == usd("0")
    assert p.order_id == "ord_1"
    assert p.metadata == {"cart": "42"}
    assert p.provider == "fake"
    assert p.created_at is not None and p.created_at.timestamp() == 1_700_000_000
    assert fake.get_payment(p.id) == p
    assert types(fake) == ["payment.created", "payment.succeeded"]


@pytest.mark.parametrize("token", sorted(DECLINES))
def test_declines_raise_and_record_a_failed_payment(fake: FakeProvider, token: str) -> None:
    with pytest.raises(CardDeclined) as info:
        pay(fake, token)
    exc = info.value
    assert exc.decline_code == DECLINES[token][0]
    assert exc.provider == "fake"
    assert exc.retryable is False
    failed = fake.get_payment(exc.payment_id)  # type: ignore[attr-defined]
    assert failed.status is PaymentStatus.FAILED
    assert failed.failure is not None and failed.failure.decline_code == exc.decline_code
    evs = events(fake)
    assert [e.type for e in evs] == [EventType.PAYMENT_CREATED, EventType.PAYMENT_FAILED]
    assert isinstance(evs[1].object, Payment) and evs[1].object.order_id == "ord_1"


def test_unknown_token_is_refused_without_echo_and_without_records(fake: FakeProvider) -> None:
    with pytest.raises(InvalidRequest) as info:
        pay(fake, "4242424242424242")
    assert "4242" not in str(info.value)
    assert fake.payments() == []
    assert fake.take_webhooks() == []


@pytest.mark.parametrize(
    "amount", [Money(0, USD), Money(-5, USD), Money(100_000_000, USD), "19.99"]
)
def test_bad_amounts_are_invalid_requests(fake: FakeProvider, amount: Any) -> None:
    with pytest.raises(InvalidRequest):
        pay(fake, amount=amount)
    assert fake.payments() == []


def test_unknown_customer_is_not_found(fake: FakeProvider) -> None:
    with pytest.raises(NotFound, match="customer"):
        pay(fake, customer_id="cus_nope")


def test_get_unknown_or_wrong_kind_is_not_found(fake: FakeProvider) -> None:
    c = fake.create_customer(email="a@example.com", name="A", idempotency_key="c")
    for bad in ["pay_missing", c.id, ""]:
        with pytest.raises(NotFound) as info:
            fake.get_payment(bad)
        assert info.value.http_status == 404


def test_3ds_requires_action_until_authenticated(fake: FakeProvider) -> None:
    p = pay(fake, "tok_3ds")
    assert p.status is PaymentStatus.REQUIRES_ACTION
    assert p.redirect_url == f"https://fake.paygate.local/authenticate/{p.id}"
    done = fake.authenticate(p.id)
    assert done.status is PaymentStatus.SUCCEEDED and done.redirect_url is None
    assert types(fake) == ["payment.created", "payment.action_required", "payment.succeeded"]
    with pytest.raises(InvalidRequest):
        fake.authenticate(p.id)


def test_3ds_failed_authentication(fake: FakeProvider) -> None:
    p = fake.authenticate(pay(fake, "tok_3ds").id, success=False)
    assert p.status is PaymentStatus.FAILED
    assert p.failure is not None and p.failure.decline_code == "authentication_required"


def test_3ds_with_manual_capture_authorizes(fake: FakeProvider) -> None:
    p = pay(fake, "tok_3ds", capture="manual")
    assert fake.authenticate(p.id).status is PaymentStatus.AUTHORIZED


def test_processing_until_settled(fake: FakeProvider) -> None:
    p = pay(fake, "tok_processing")
    assert p.status is PaymentStatus.PROCESSING
    assert fake.settle(p.id).status is PaymentStatus.SUCCEEDED
    q = pay(fake, "tok_processing", order_id="ord_2")
    assert fake.settle(q.id, success=False).status is PaymentStatus.FAILED
    with pytest.raises(InvalidRequest):
        fake.settle(p.id)


def test_pending_payment_confirmed_later(fake: FakeProvider) -> None:
    p = pay(fake, None)
    assert p.status is PaymentStatus.PENDING
    with pytest.raises(CardDeclined):
        fake.confirm_payment(p.id, "tok_declined")
    # a failed attempt can be retried on the same payment, as Stripe retries one intent
    assert fake.confirm_payment(p.id, "tok_visa").status is PaymentStatus.SUCCEEDED
    assert types(fake) == ["payment.created", "payment.failed", "payment.succeeded"]


def test_manual_capture_partial(fake: FakeProvider) -> None:
    p = pay(fake, capture="manual")
    assert p.status is PaymentStatus.AUTHORIZED
    assert p.amount_captured == usd("0")
    with pytest.raises(InvalidRequest, match="exceeds"):
        fake.capture_payment(p.id, amount=usd("20.00"), idempotency_key="cap")
    with pytest.raises(InvalidRequest):
        fake.capture_payment(p.id, amount=Money(500, "EUR"), idempotency_key="cap")
    captured = fake.capture_payment(p.id, amount=usd("10.00"), idempotency_key="cap")
    assert captured.status is PaymentStatus.SUCCEEDED
    assert captured.amount_captured == usd("10.00")
    with pytest.raises(InvalidRequest, match="authorized"):
        fake.capture_payment(p.id, idempotency_key="cap-again")
    # a refund is limited by what was captured, not by the authorized amount
    with pytest.raises(InvalidRequest, match="exceeds"):
        fake.refund_payment(p.id, amount=usd("10.01"), idempotency_key="r")
    assert types(fake) == ["payment.created", "payment.authorized", "payment.succeeded"]


def test_cancel(fake: FakeProvider) -> None:
    p = pay(fake, capture="manual")
    canceled = fake.cancel_payment(p.id, idempotency_key="cancel")
    assert canceled.status is PaymentStatus.CANCELED
    with pytest.raises(InvalidRequest):
        fake.capture_payment(p.id, idempotency_key="cap")
    done = pay(fake, order_id="ord_2")
    with pytest.raises(InvalidRequest, match="can no longer be canceled"):
        fake.cancel_payment(done.id, idempotency_key="cancel-2")
    assert types(fake)[-3] == "payment.canceled"


def test_refunds_full_partial_and_over(fake: FakeProvider) -> None:
    p = pay(fake)
    first = fake.refund_payment(
        p.id, amount=usd("5.00"), reason="requested_by_customer", idempotency_key="r1"
    )
    assert isinstance(first, Refund)
    assert (first.payment_id, first.amount, first.status) == (
        p.id,
        usd("5.00"),
        RefundStatus.SUCCEEDED,
    )
    assert first.order_id == "ord_1" and first.reason == "requested_by_customer"
    assert fake.get_payment(p.id).status is PaymentStatus.PARTIALLY_REFUNDED
    with pytest.raises(InvalidRequest, match="exceeds"):
        fake.refund_payment(p.id, amount=usd("15.00"), idempotency_key="r2")
    assert fake.get_payment(p.id).amount_refunded == usd("5.00")  # nothing half-written
    rest = fake.refund_payment(p.id, idempotency_key="r3")
    assert rest.amount == usd("14.99")
    after = fake.get_payment(p.id)
    assert (after.status, after.amount_refunded) == (PaymentStatus.REFUNDED, usd("19.99"))
    with pytest.raises(InvalidRequest):
        fake.refund_payment(p.id, amount=usd("0.01"), idempotency_key="r4")
    refund_events = [e for e in events(fake) if e.type is EventType.REFUND_SUCCEEDED]
    assert [e.object for e in refund_events] == [first, rest]


def test_refund_of_unpaid_or_missing_payment(fake: FakeProvider) -> None:
    with pytest.raises(NotFound):
        fake.refund_payment("pay_missing", idempotency_key="r")
    with pytest.raises(CardDeclined) as info:
        pay(fake, "tok_declined")
    with pytest.raises(InvalidRequest, match="failed"):
        fake.refund_payment(info.value.payment_id, idempotency_key="r")  # type: ignore[attr-defined]


# -- disputes ------------------------------------------------------------------------------------


def test_dispute_token_opens_a_dispute_and_it_is_lost(fake: FakeProvider) -> None:
    p = pay(fake, "tok_dispute")
    assert p.status is PaymentStatus.DISPUTED
    evs = events(fake)
    assert [e.type.value for e in evs] == ["payment.created", "payment.succeeded", "dispute.opened"]
    dispute = evs[-1].object
    assert dispute is not None and dispute.payment_id == p.id
    assert fake.get_dispute(dispute.id) == dispute
    assert dispute.status is DisputeStatus.OPEN and dispute.amount == usd("19.99")
    with pytest.raises(InvalidRequest, match="disputed"):
        fake.refund_payment(p.id, idempotency_key="r")
    lost = fake.resolve_dispute(dispute.id, won=False)
    assert lost.status is DisputeStatus.LOST
    assert fake.get_payment(p.id).status is PaymentStatus.CHARGED_BACK
    assert types(fake) == ["dispute.lost"]
    with pytest.raises(InvalidRequest):
        fake.resolve_dispute(dispute.id, won=True)


def test_dispute_won_returns_payment_to_its_prior_status(fake: FakeProvider) -> None:
    p = pay(fake)
    fake.refund_payment(p.id, amount=usd("1.00"), idempotency_key="r")
    dispute = fake.open_dispute(p.id, reason="product_not_received")
    assert fake.get_payment(p.id).status is PaymentStatus.DISPUTED
    assert fake.resolve_dispute(dispute.id).status is DisputeStatus.WON
    assert fake.get_payment(p.id).status is PaymentStatus.PARTIALLY_REFUNDED
    with pytest.raises(NotFound):
        fake.get_dispute("dp_missing")


# -- idempotency ---------------------------------------------------------------------------------


def test_same_key_same_request_returns_the_same_payment_once(fake: FakeProvider) -> None:
    first = pay(fake, idempotency_key="k")
    again = pay(fake, idempotency_key="k")
    assert again == first
    assert len(fake.payments()) == 1
    assert types(fake) == ["payment.created", "payment.succeeded"]


@pytest.mark.parametrize(
    "change",
    [
        {"amount": Money(1998, USD)},
        {"amount": Money(1999, "EUR")},
        {"order_id": "other"},
        {"payment_method": "tok_3ds"},
        {"capture": "manual"},
        {"metadata": {"a": "b"}},
    ],
)
def test_same_key_different_request_conflicts(fake: FakeProvider, change: dict[str, Any]) -> None:
    pay(fake, idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        pay(fake, idempotency_key="k", **change)
    assert len(fake.payments()) == 1


def test_same_key_across_operations_conflicts(fake: FakeProvider) -> None:
    p = pay(fake, idempotency_key="k")
    with pytest.raises(IdempotencyConflict):
        fake.refund_payment(p.id, idempotency_key="k")


def test_declined_answer_is_replayed_without_a_second_attempt(fake: FakeProvider) -> None:
    with pytest.raises(CardDeclined) as first:
        pay(fake, "tok_insufficient_funds", idempotency_key="k")
    with pytest.raises(CardDeclined) as second:
        pay(fake, "tok_insufficient_funds", idempotency_key="k")
    assert second.value.decline_code == "insufficient_funds"
    assert second.value.payment_id == first.value.payment_id  # type: ignore[attr-defined]
    assert len(fake.payments()) == 1


def test_refused_request_stores_no_idempotency_answer(fake: FakeProvider) -> None:
    with pytest.raises(InvalidRequest):
        pay(fake, idempotency_key="k", amount=Money(0, USD))
    assert pay(fake, idempotency_key="k").status is PaymentStatus.SUCCEEDED


def test_idempotency_key_shape(fake: FakeProvider) -> None:
    for key in ["", "x" * 256]:
        with pytest.raises(InvalidRequest, match="idempotency_key"):
            pay(fake, idempotency_key=key)
    assert pay(fake, idempotency_key="x" * 255).status is PaymentStatus.SUCCEEDED


def test_refund_replay_returns_the_same_refund(fake: FakeProvider) -> None:
    p = pay(fake)
    r1 = fake.refund_payment(p.id, amount=usd("2"), idempotency_key="r")
    r2 = fake.refund_payment(p.id, amount=usd("2"), idempotency_key="r")
    assert r1 == r2
    assert fake.get_payment(p.id).amount_refunded == usd("2")


# -- failure injection ---------------------------------------------------------------------------


def test_fail_next_before_commit_leaves_nothing(fake: FakeProvider) -> None:
    fake.fail_next("create_payment", ProviderUnavailable("boom", provider="fake"))
    with pytest.raises(ProviderUnavailable):
        pay(fake, idempotency_key="k")
    assert fake.payments() == [] and fake.take_webhooks() == []
    assert pay(fake, idempotency_key="k").status is PaymentStatus.SUCCEEDED
    assert fake.calls["create_payment"] == 2


def test_fail_next_after_commit_simulates_a_lost_response(fake: FakeProvider) -> None:
    fake.fail_next("create_payment", ProviderUnavailable("lost"), after_commit=True)
    with pytest.raises(ProviderUnavailable):
        pay(fake, idempotency_key="k")
    assert len(fake.payments()) == 1  # the charge happened
    retried = pay(fake, idempotency_key="k")
    assert [p.id for p in fake.payments()] == [retried.id]  # and happened once
    assert fake.calls["create_payment"] == 2


def test_fail_next_times_and_validation(fake: FakeProvider) -> None:
    fake.fail_next("get_payment", NotFound("gone"), times=2)
    p = pay(fake)
    for _ in range(2):
        with pytest.raises(NotFound):
            fake.get_payment(p.id)
    assert fake.get_payment(p.id) == p
    with pytest.raises(ValidationError, match="unknown operation"):
        fake.fail_next("charge", ProviderUnavailable("x"))


# -- checkout ------------------------------------------------------------------------------------


def checkout(fake: FakeProvider, **kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "order_id": "ord_c",
        "line_items": [LineItem("Tee", usd("10.00"), 2), LineItem("Cap", usd("5.50"))],
        "success_url": "https://shop.example/ok",
        "cancel_url": "https://shop.example/cancel",
        "idempotency_key": "cs-1",
    }
    args.update(kwargs)
    return fake.create_checkout_session(**args)


def test_checkout_completes_with_a_payment(fake: FakeProvider) -> None:
    session = checkout(fake)
    assert session.status is CheckoutStatus.OPEN
    assert session.url == f"https://fake.paygate.local/checkout/{session.id}"
    assert session.amount_total == usd("25.50")
    assert fake.get_checkout_session(session.id) == session
    assert checkout(fake) == session  # idempotent
    done = fake.complete_checkout(session.id)
    assert done.status is CheckoutStatus.COMPLETE and done.payment_id is not None
    payment = fake.get_payment(done.payment_id)
    assert (payment.order_id, payment.amount, payment.status) == (
        "ord_c",
        usd("25.50"),
        PaymentStatus.SUCCEEDED,
    )
    evs = events(fake)
    assert [e.type.value for e in evs] == [
        "payment.created",
        "payment.succeeded",
        "checkout.completed",
    ]
    assert evs[-1].payment_id == payment.id and evs[-1].order_id == "ord_c"
    with pytest.raises(InvalidRequest, match="not open"):
        fake.complete_checkout(session.id)


def test_checkout_decline_then_retry_uses_one_payment(fake: FakeProvider) -> None:
    session = checkout(fake)
    with pytest.raises(CardDeclined):
        fake.complete_checkout(session.id, payment_method="tok_declined")
    assert fake.get_checkout_session(session.id).status is CheckoutStatus.OPEN
    done = fake.complete_checkout(session.id, payment_method="tok_visa")
    assert done.status is CheckoutStatus.COMPLETE
    assert len(fake.payments()) == 1
    assert types(fake) == [
        "payment.created",
        "payment.failed",
        "payment.succeeded",
        "checkout.completed",
    ]


def test_checkout_with_3ds_completes_on_authentication(fake: FakeProvider) -> None:
    session = checkout(fake)
    waiting = fake.complete_checkout(session.id, payment_method="tok_3ds")
    assert waiting.status is CheckoutStatus.OPEN and waiting.payment_id is not None
    fake.authenticate(waiting.payment_id)
    assert fake.get_checkout_session(session.id).status is CheckoutStatus.COMPLETE
    assert types(fake)[-1] == "checkout.completed"


def test_checkout_expires(fake: FakeProvider) -> None:
    session = checkout(fake)
    expired = fake.expire_checkout(session.id)
    assert expired.status is CheckoutStatus.EXPIRED and expired.url is None
    assert types(fake) == ["checkout.expired"]
    with pytest.raises(InvalidRequest):
        fake.complete_checkout(session.id)


def test_checkout_expires_by_itself_after_a_day(fake: FakeProvider, clock: FakeClock) -> None:
    session = checkout(fake)
    assert session.expires_at is not None
    assert session.expires_at.timestamp() == clock() + 86_400
    clock.advance(86_399)
    assert fake.get_checkout_session(session.id).status is CheckoutStatus.OPEN
    clock.advance(1)
    with pytest.raises(InvalidRequest, match="expired"):
        fake.complete_checkout(session.id)
    assert fake.get_checkout_session(session.id).status is CheckoutStatus.EXPIRED
    assert types(fake) == ["checkout.expired"]  # once


@pytest.mark.parametrize(
    "change",
    [
        {"line_items": []},
        {"line_items": [LineItem("A", usd("1")), LineItem("B", Money(1, "EUR"))]},
        {"success_url": "javascript:alert(1)"},
        {"mode": "setup"},
        {"mode": "subscription"},
        {"order_id": ""},
    ],
)
def test_checkout_validation(fake: FakeProvider, change: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        checkout(fake, **change)


def test_complete_return_reads_the_fakes_own_records(fake: FakeProvider) -> None:
    session = checkout(fake)
    with pytest.raises(InvalidRequest, match="no payment yet"):
        fake.complete_return({"session_id": session.id}, idempotency_key="ret")
    with pytest.raises(CardDeclined):
        fake.complete_checkout(session.id, payment_method="tok_declined")
    # the query string claims success; the fake's record says failed, and wins
    p = fake.complete_return({"session_id": session.id, "status": "succeeded"}, idempotency_key="r")
    assert p.status is PaymentStatus.FAILED
    assert fake.complete_return({"payment_id": p.id}, idempotency_key="r") == p
    with pytest.raises(InvalidRequest, match="neither"):
        fake.complete_return({"redirect_status": "succeeded"}, idempotency_key="r")
    with pytest.raises(NotFound):
        fake.complete_return({"session_id": "cs_forged"}, idempotency_key="r")


def test_subscription_checkout(fake: FakeProvider) -> None:
    fake.define_price("price_pro", usd("49.00"))
    session = checkout(fake, mode="subscription", price_id="price_pro", line_items=[])
    assert session.amount_total == usd("49.00")
    with pytest.raises(CardDeclined):
        fake.complete_checkout(session.id, payment_method="tok_expired_card")
    assert fake.payments() == []
    done = fake.complete_checkout(session.id)
    assert done.status is CheckoutStatus.COMPLETE
    assert done.subscription_id is not None and done.customer_id is not None
    sub = fake.get_subscription(done.subscription_id)
    assert sub.status is SubscriptionStatus.ACTIVE and sub.price_id == "price_pro"
    assert fake.get_payment(done.payment_id or "").amount == usd("49.00")


# -- customers, subscriptions, invoices ------------------------------------------------------------


def test_customer(fake: FakeProvider) -> None:
    c = fake.create_customer(
        email="ada@example.com", name="Ada", idempotency_key="c", metadata={"tier": "gold"}
    )
    assert (c.email, c.name, c.metadata, c.provider) == (
        "ada@example.com",
        "Ada",
        {"tier": "gold"},
        "fake",
    )
    with pytest.raises(InvalidRequest, match="email"):
        fake.create_customer(email="not-an-email", name=None, idempotency_key="c2")


def test_subscription_lifecycle(fake: FakeProvider, clock: FakeClock) -> None:
    c = fake.create_customer(email=None, name=None, idempotency_key="c")
    assert [e.type.value for e in events(fake)] == ["customer.created"]
    sub = fake.create_subscription(customer_id=c.id, price_id="price_basic", idempotency_key="s")
    assert sub.status is SubscriptionStatus.ACTIVE
    assert sub.current_period_end is not None
    assert sub.current_period_end.timestamp() == 1_700_000_000 + 30 * 86_400
    evs = events(fake)
    assert [e.type.value for e in evs] == [
        "subscription.created",
        "invoice.created",
        "invoice.paid",
        "subscription.updated",
    ]
    invoice = evs[2].object
    assert invoice is not None and invoice.status is InvoiceStatus.PAID  # type: ignore[union-attr]
    assert invoice.amount_paid == usd("10.00")  # type: ignore[union-attr]
    assert fake.get_payment(invoice.payment_id or "").status is PaymentStatus.SUCCEEDED

    renewed = fake.renew_subscription(sub.id, success=False)
    assert renewed.status is SubscriptionStatus.PAST_DUE
    assert types(fake)[-2:] == ["invoice.payment_failed", "subscription.payment_failed"]
    renewed = fake.renew_subscription(sub.id)
    assert renewed.status is SubscriptionStatus.ACTIVE

    pending = fake.cancel_subscription(sub.id, at_period_end=True)
    assert pending.cancel_at_period_end and pending.status is SubscriptionStatus.ACTIVE
    assert fake.renew_subscription(sub.id).status is SubscriptionStatus.CANCELED
    with pytest.raises(InvalidRequest, match="already canceled"):
        fake.cancel_subscription(sub.id)
    assert types(fake)[-2:] == ["subscription.updated", "subscription.canceled"]


def test_subscription_declined_price_and_unknowns(fake: FakeProvider) -> None:
    c = fake.create_customer(email=None, name=None, idempotency_key="c")
    sub = fake.create_subscription(customer_id=c.id, price_id="price_declined", idempotency_key="s")
    assert sub.status is SubscriptionStatus.INCOMPLETE
    assert "invoice.payment_failed" in types(fake)
    with pytest.raises(NotFound, match="price"):
        fake.create_subscription(customer_id=c.id, price_id="basic", idempotency_key="s2")
    with pytest.raises(NotFound, match="customer"):
        fake.create_subscription(customer_id="cus_x", price_id="price_a", idempotency_key="s3")
    now = fake.cancel_subscription(sub.id)
    assert now.status is SubscriptionStatus.CANCELED
    with pytest.raises(NotFound):
        fake.get_subscription("sub_missing")


def test_invoices(fake: FakeProvider) -> None:
    c = fake.create_customer(email="b@example.com", name=None, idempotency_key="c")
    fake.take_webhooks()  # customer.created
    lines = [LineItem("Consulting", usd("100.00"), 3)]
    draft = fake.create_invoice(customer_id=c.id, line_items=lines, idempotency_key="i1")
    assert draft.status is InvoiceStatus.DRAFT and draft.hosted_url is None
    sent = fake.create_invoice(
        customer_id=c.id, line_items=lines, idempotency_key="i2", order_id="ord_inv", send=True
    )
    assert sent.status is InvoiceStatus.OPEN and sent.amount_due == usd("300.00")
    assert sent.hosted_url == f"https://fake.paygate.local/invoices/{sent.id}"
    with pytest.raises(CardDeclined):
        fake.pay_invoice(sent.id, payment_method="tok_declined")
    assert fake.get_invoice(sent.id).status is InvoiceStatus.OPEN
    paid = fake.pay_invoice(sent.id)
    assert paid.status is InvoiceStatus.PAID and paid.amount_paid == usd("300.00")
    assert fake.get_payment(paid.payment_id or "").order_id == "ord_inv"
    assert types(fake) == [
        "invoice.created",
        "invoice.created",
        "invoice.payment_failed",
        "invoice.paid",
    ]
    with pytest.raises(InvalidRequest):
        fake.pay_invoice(sent.id)
    with pytest.raises(InvalidRequest):
        fake.create_invoice(customer_id=c.id, line_items=[], idempotency_key="i3")


# -- webhooks ------------------------------------------------------------------------------------


def test_deliveries_are_signed_and_never_carry_the_client_secret(fake: FakeProvider) -> None:
    p = pay(fake)
    assert p.client_secret
    deliveries = fake.take_webhooks()
    assert fake.take_webhooks() == []
    for delivery in deliveries:
        assert isinstance(delivery, WebhookDelivery)
        assert delivery.headers[SIGNATURE_HEADER].startswith("t=1700000000,v1=")
        assert p.client_secret.encode() not in delivery.body
        event = json.loads(delivery.body)
        assert set(event) >= {"id", "type", "created", "data"}


def test_parse_webhook_normalizes_payment_events(fake: FakeProvider) -> None:
    p = pay(fake)
    created, succeeded = events(fake)
    assert succeeded.type is EventType.PAYMENT_SUCCEEDED
    assert succeeded.provider == "fake" and succeeded.provider_type == "payment.succeeded"
    assert succeeded.occurred_at is not None and succeeded.occurred_at.tzinfo is not None
    # the webhook copy is the API's, minus the client secret
    assert succeeded.object == replace(fake.get_payment(p.id), client_secret=None)
    assert succeeded.payment_id == p.id and succeeded.order_id == "ord_1"
    assert created.object.status is PaymentStatus.PENDING  # type: ignore[union-attr]


def test_webhooks_are_signed_when_taken_with_the_time_they_were_sent(
    fake: FakeProvider, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake signs an event only when a test takes it (most never read most events),
    and the signature still carries the time the event was sent, not the time it was
    taken."""
    import paygate._signing as signing

    signed: list[int] = []
    real_sign = signing.sign

    def counting_sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
        signed.append(timestamp)
        return real_sign(secret, body, timestamp)

    monkeypatch.setattr(signing, "sign", counting_sign)
    sent_at = int(clock())
    for n in range(3):
        pay(fake, order_id=f"ord_{n}")
    assert signed == []  # nothing signed while nobody reads the events
    clock.advance(120)
    deliveries = fake.take_webhooks()
    assert len(deliveries) == 6 and signed == [sent_at] * 6
    for delivery in deliveries:  # still verifiable, and stamped with the sending time
        assert fake.parse_webhook(delivery.body, delivery.headers).type in {
            EventType.PAYMENT_CREATED,
            EventType.PAYMENT_SUCCEEDED,
        }
        assert delivery.headers[SIGNATURE_HEADER].startswith(f"t={sent_at},")


def test_tampered_missing_and_stale_webhooks_are_rejected(
    fake: FakeProvider, clock: FakeClock
) -> None:
    pay(fake)
    delivery = fake.take_webhooks()[-1]
    tampered = delivery.body.replace(b"1999", b"1")
    with pytest.raises(InvalidSignature):
        fake.parse_webhook(tampered, delivery.headers)
    with pytest.raises(MissingSignature):
        fake.parse_webhook(delivery.body, {"Content-Type": "application/json"})
    other = FakeProvider(webhook_secret="whsec_other")
    with pytest.raises(InvalidSignature):
        other.parse_webhook(delivery.body, delivery.headers)
    clock.advance(301)
    with pytest.raises(TimestampOutsideTolerance):
        fake.parse_webhook(delivery.body, delivery.headers)
    fresh = fake.redeliver(delivery)
    assert fake.parse_webhook(fresh.body, fresh.headers).type is EventType.PAYMENT_SUCCEEDED


def test_headers_match_case_insensitively_and_str_bodies_are_accepted(fake: FakeProvider) -> None:
    pay(fake)
    delivery = fake.take_webhooks()[0]
    lowered = {k.lower(): v for k, v in delivery.headers.items()}
    assert fake.parse_webhook(delivery.body, lowered).type is EventType.PAYMENT_CREATED
    text: Any = delivery.body.decode()
    assert fake.parse_webhook(text, delivery.headers).type is EventType.PAYMENT_CREATED


def _event(type_: str, obj: Any) -> dict[str, Any]:
    return {"id": "evt_1", "type": type_, "created": 1_700_000_000, "data": {"object": obj}}


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps({"type": "payment.succeeded"}).encode(),
        json.dumps(_event("payment.succeeded", None)).encode(),
        json.dumps({**_event("payment.succeeded", {}), "created": "yesterday"}).encode(),
        json.dumps(_event("payment.succeeded", {"object": "refund", "id": "re_1"})).encode(),
        json.dumps(_event("payment.succeeded", {"object": "payment", "id": "pay_1"})).encode(),
        json.dumps(
            _event(
                "payment.succeeded",
                {
                    "object": "payment",
                    "id": "p",
                    "amount": 1.5,
                    "currency": "USD",
                    "amount_captured": 0,
                    "amount_refunded": 0,
                    "status": "succeeded",
                },
            )
        ).encode(),
        json.dumps(
            _event(
                "refund.succeeded",
                {
                    "object": "refund",
                    "id": "re_1",
                    "payment_id": "p",
                    "amount": 5,
                    "currency": "XYZ",
                    "status": "succeeded",
                },
            )
        ).encode(),
    ],
)
def test_signed_but_malformed_payloads(fake: FakeProvider, payload: bytes) -> None:
    delivery = fake.sign_webhook(payload)
    with pytest.raises(MalformedPayload):
        fake.parse_webhook(delivery.body, delivery.headers)


def test_unknown_event_types_are_kept(fake: FakeProvider) -> None:
    delivery = fake.sign_webhook(_event("payout.paid", {"object": "payout", "id": "po_1"}))
    event = fake.parse_webhook(delivery.body, delivery.headers)
    assert event.type is EventType.UNKNOWN and event.object is None
    assert event.provider_type == "payout.paid" and event.raw["data"]["object"]["id"] == "po_1"


def test_webhooks_drive_the_state_machine_to_the_providers_status(fake: FakeProvider) -> None:
    """Every event the fake emits is one the state machine accepts, ending where the fake is."""
    p = pay(fake)
    fake.refund_payment(p.id, amount=usd("4.00"), idempotency_key="r1")
    d = fake.open_dispute(p.id)
    fake.resolve_dispute(d.id, won=True)
    fake.refund_payment(p.id, idempotency_key="r2")
    evs = events(fake)
    first = evs[0].object
    assert isinstance(first, Payment)
    state = state_of(first)
    for event in evs[1:]:
        step_input = event_from_webhook(event)
        if step_input is not None:
            state = apply(state, step_input).state
    final = fake.get_payment(p.id)
    assert state.status is final.status is PaymentStatus.REFUNDED
    assert state.refunded == final.amount_refunded.amount  # type: ignore[union-attr]


# -- capabilities and concurrency ------------------------------------------------------------------


class _NoRefunds(FakeProvider):
    capabilities = frozenset(Capability) - {Capability.REFUNDS, Capability.PARTIAL_CAPTURE}


def test_undeclared_capabilities_raise_not_supported() -> None:
    provider = _NoRefunds(seed=0)
    p = pay(provider)
    with pytest.raises(NotSupported):
        provider.refund_payment(p.id, idempotency_key="r")
    auth = pay(provider, capture="manual", order_id="ord_2")
    with pytest.raises(NotSupported):
        provider.capture_payment(auth.id, amount=usd("1.00"), idempotency_key="c")
    assert provider.capture_payment(auth.id, idempotency_key="c2").status is PaymentStatus.SUCCEEDED


def test_concurrent_calls_with_one_key_charge_once() -> None:
    provider = FakeProvider(seed=0)
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        for n in range(20):
            results.append(pay(provider, idempotency_key="same").id)
            pay(provider, idempotency_key=f"own-{i}-{n}", order_id=f"o-{i}-{n}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert len(provider.payments()) == 1 + 8 * 20
    assert provider.calls["create_payment"] == 2 * 8 * 20
    assert len(provider.take_webhooks()) == 2 * len(provider.payments())


def test_plugin_fixtures(fake_provider: FakeProvider, fake_clock: FakeClock) -> None:
    assert isinstance(fake_provider, FakeProvider) and fake_provider.settings.seed == 0
    assert fake_clock() == 1_700_000_000
    assert fake_clock.advance(5) == 1_700_000_005


def test_fake_gateway_fixture_runs_over_the_fake_provider(
    fake_gateway: Any, fake_provider: FakeProvider
) -> None:
    payment = fake_gateway.create_payment(
        order_id="ord_gw", amount=usd("12.34"), payment_method="tok_3ds"
    )
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert fake_provider.calls["create_payment"] == 1
    fake_provider.authenticate(payment.id)
    results = [
        fake_gateway.handle_webhook(d.body, d.headers) for d in fake_provider.take_webhooks()
    ]
    assert results[-1].status is PaymentStatus.SUCCEEDED
    assert fake_gateway.get_payment(payment.id).status is PaymentStatus.SUCCEEDED


# -- the docs page's examples run ---------------------------------------------------------------

DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS_PAGE.read_text(encoding="utf-8"), re.S)


def test_docs_testing_page_has_examples() -> None:
    assert len(_python_blocks()) >= 4


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_docs_testing_examples_run(index: int) -> None:
    """Each example runs as written; its test functions are called with the fixtures."""
    import paygate

    namespace: dict[str, Any] = {"__name__": f"docs_testing_{index}"}
    exec(compile(_python_blocks()[index], f"docs/testing.md[{index}]", "exec"), namespace)
    for name, func in list(namespace.items()):
        if name.startswith("test_") and callable(func):
            provider = FakeProvider(seed=0)
            fixtures = {
                "fake_provider": provider,
                "fake_gateway": paygate.connect(provider, store="memory://"),
                "fake_clock": FakeClock(),
            }
            func(**{arg: fixtures[arg] for arg in inspect.signature(func).parameters})
