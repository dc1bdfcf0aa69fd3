"""The shared result dataclasses: frozen, slotted, hashable, secrets and raw out of repr."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

import pytest

from paygate import (
    CheckoutSession,
    CheckoutStatus,
    Customer,
    Dispute,
    DisputeStatus,
    EventType,
    Invoice,
    InvoiceStatus,
    LineItem,
    Money,
    Payment,
    PaymentFailure,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
    ValidationError,
    WebhookDelivery,
    WebhookEvent,
)

USD = Money(1999, "USD")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
RAW = {"id": "pi_1", "client_secret": "pi_1_secret_DO_NOT_LOG", "api_key": "sk_test_DO_NOT_LOG"}


def payment(**overrides: Any) -> Payment:
    fields: dict[str, Any] = {
        "id": "pay_1",
        "provider": "fake",
        "order_id": "order-1",
        "amount": USD,
        "status": PaymentStatus.SUCCEEDED,
        "client_secret": "pi_1_secret_DO_NOT_LOG",
        "metadata": {"cart": "42"},
        "raw": RAW,
    }
    fields.update(overrides)
    return Payment(**fields)


def instances() -> list[Any]:
    """One fully populated instance of every model."""
    refund = Refund("re_1", "fake", "pay_1", Money(500, "USD"), RefundStatus.SUCCEEDED, raw=RAW)
    return [
        Customer("cus_1", "fake", email="a@example.com", metadata={"k": "v"}, raw=RAW),
        payment(failure=PaymentFailure("card_declined", "no", "insufficient_funds")),
        refund,
        LineItem("Widget", Money(250, "USD"), quantity=3),
        CheckoutSession(
            "cs_1",
            "fake",
            "http://127.0.0.1/pay/cs_1",
            CheckoutStatus.OPEN,
            order_id="order-1",
            amount_total=USD,
            expires_at=WHEN,
            raw=RAW,
        ),
        Subscription("sub_1", "fake", "cus_1", "price_1", SubscriptionStatus.ACTIVE, WHEN, raw=RAW),
        Invoice("in_1", "fake", "cus_1", InvoiceStatus.OPEN, USD, raw=RAW),
        Dispute("dp_1", "fake", "pay_1", USD, DisputeStatus.OPEN, raw=RAW),
        WebhookEvent(
            "evt_1", "fake", EventType.REFUND_SUCCEEDED, WHEN, refund, "refund.updated", raw=RAW
        ),
        PaymentFailure("card_declined"),
        WebhookDelivery(b"{}", {"Paygate-Signature": "t=1,v1=ab"}),
    ]


MODELS = instances()
IDS = [type(m).__name__ for m in MODELS]


@pytest.mark.parametrize("obj", MODELS, ids=IDS)
def test_frozen_and_slotted(obj: Any) -> None:
    assert dataclasses.is_dataclass(obj)
    first = dataclasses.fields(obj)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, first, "changed")
    assert "__slots__" in type(obj).__dict__
    assert not hasattr(obj, "__dict__")
    with pytest.raises((AttributeError, TypeError)):
        obj.not_a_field = 1


@pytest.mark.parametrize("obj", [m for m in MODELS if not isinstance(m, WebhookDelivery)])
def test_hashable_despite_metadata_dicts(obj: Any) -> None:
    copy = dataclasses.replace(obj)
    assert copy == obj
    assert hash(copy) == hash(obj)
    assert len({obj, copy}) == 1


@pytest.mark.parametrize("obj", [m for m in MODELS if hasattr(m, "raw")])
def test_raw_kept_but_out_of_repr_and_equality(obj: Any) -> None:
    assert obj.raw is RAW
    text = repr(obj)
    assert "raw=" not in text
    assert "DO_NOT_LOG" not in text
    assert dataclasses.replace(obj, raw={"other": 1}) == obj


def test_client_secret_not_in_repr_but_kept() -> None:
    pay = payment()
    assert pay.client_secret == "pi_1_secret_DO_NOT_LOG"
    assert "client_secret" not in repr(pay)
    assert "DO_NOT_LOG" not in repr(pay) and "DO_NOT_LOG" not in str(pay)
    # the order and amount do show, so a log line is still useful
    assert "order-1" in repr(pay) and "1999" in repr(pay)


def test_metadata_not_part_of_the_hash_but_of_equality() -> None:
    a, b = payment(metadata={"x": "1"}), payment(metadata={"x": "2"})
    assert hash(a) == hash(b)
    assert a != b


def test_payment_amounts_default_to_zero_in_its_currency() -> None:
    pay = payment(amount=Money(500, "JPY"))
    assert pay.amount_captured == Money(0, "JPY")
    assert pay.amount_refunded == Money(0, "JPY")
    pay = payment(amount_captured=Money(1000, "USD"))
    assert pay.amount_captured == Money(1000, "USD")
    assert payment().metadata == {"cart": "42"}
    assert payment(metadata={}).metadata == {}


def test_webhook_event_payment_and_order_ids() -> None:
    pay = payment()
    refund = Refund("re_1", "fake", "pay_9", Money(5, "USD"), RefundStatus.PENDING, order_id="o9")
    dispute = Dispute("dp_1", "fake", "pay_8", USD, DisputeStatus.OPEN)
    session = CheckoutSession(
        "cs_1", "fake", None, CheckoutStatus.COMPLETE, order_id="o7", payment_id="pay_7"
    )
    sub = Subscription("sub_1", "fake", "cus_1", "price_1", SubscriptionStatus.ACTIVE)

    def event(obj: Any) -> WebhookEvent:
        return WebhookEvent("evt", "fake", EventType.UNKNOWN, WHEN, obj)

    assert (event(pay).payment_id, event(pay).order_id) == ("pay_1", "order-1")
    assert (event(refund).payment_id, event(refund).order_id) == ("pay_9", "o9")
    assert (event(dispute).payment_id, event(dispute).order_id) == ("pay_8", None)
    assert (event(session).payment_id, event(session).order_id) == ("pay_7", "o7")
    assert (event(sub).payment_id, event(sub).order_id) == (None, None)
    assert (event(None).payment_id, event(None).order_id) == (None, None)


# -- LineItem validation -----------------------------------------------------------------


def test_line_item_total() -> None:
    item = LineItem("Widget", Money.of("2.50", "USD"), quantity=3)
    assert item.total == Money(750, "USD")
    assert LineItem("Free sample", Money(0, "EUR")).total == Money(0, "EUR")


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"name": ""}, "''"),
        ({"name": "   "}, "'   '"),
        ({"name": None}, "None"),
        ({"unit_amount": 250}, "int"),
        ({"unit_amount": 2.5}, "float"),
        ({"unit_amount": "2.50"}, "str"),
        ({"unit_amount": Money(-1, "USD")}, "-0.01 USD"),
        ({"quantity": 0}, "0"),
        ({"quantity": -2}, "-2"),
        ({"quantity": 1.5}, "1.5"),
        ({"quantity": True}, "True"),
        ({"quantity": "2"}, "'2'"),
    ],
)
def test_line_item_validation(kwargs: dict[str, Any], named: str) -> None:
    fields: dict[str, Any] = {"name": "Widget", "unit_amount": Money(250, "USD"), "quantity": 1}
    fields.update(kwargs)
    with pytest.raises(ValidationError) as caught:
        LineItem(**fields)
    assert named in str(caught.value)
    assert isinstance(caught.value, ValueError)


# -- the status vocabularies ----------------------------------------------------------------


def test_payment_status_keeps_the_seed_values() -> None:
    for value in ("pending", "succeeded", "failed", "refunded"):
        assert PaymentStatus(value).value == value
    required = {
        "pending",
        "requires_action",
        "processing",
        "authorized",
        "succeeded",
        "failed",
        "canceled",
        "partially_refunded",
        "refunded",
        "disputed",
    }
    assert required <= {s.value for s in PaymentStatus}


def test_statuses_are_str_enums() -> None:
    assert PaymentStatus.SUCCEEDED == "succeeded"
    assert str(PaymentStatus.SUCCEEDED) == "succeeded"
    assert f"{RefundStatus.PENDING}" == "pending"
    assert PaymentStatus("requires_action") is PaymentStatus.REQUIRES_ACTION
    with pytest.raises(ValueError):
        PaymentStatus("paid")


@pytest.mark.parametrize(
    ("enum", "required"),
    [
        (
            SubscriptionStatus,
            {"trialing", "active", "past_due", "paused", "canceled", "unpaid", "incomplete"},
        ),
        (DisputeStatus, {"open", "under_review", "won", "lost"}),
        (RefundStatus, {"pending", "succeeded", "failed"}),
        (CheckoutStatus, {"open", "complete", "expired"}),
        (InvoiceStatus, {"draft", "open", "paid", "void", "uncollectible"}),
    ],
)
def test_enums_have_the_required_members(enum: Any, required: set[str]) -> None:
    assert required <= {member.value for member in enum}


def test_event_type_vocabulary() -> None:
    required = {
        f"payment.{s}"
        for s in (
            "created",
            "action_required",
            "processing",
            "authorized",
            "succeeded",
            "failed",
            "canceled",
        )
    }
    required |= {"refund.created", "refund.succeeded", "refund.failed"}
    required |= {f"dispute.{s}" for s in ("opened", "updated", "won", "lost")}
    required |= {f"subscription.{s}" for s in ("created", "updated", "canceled", "payment_failed")}
    required |= {"invoice.created", "invoice.paid", "invoice.payment_failed"}
    # beyond the list: PayPal, Square and Stripe all report voided and refunded invoices
    required |= {"invoice.voided", "invoice.refunded"}
    required |= {"checkout.completed", "checkout.expired", "unknown"}
    # the subscription facts (issue 20: paygate.subscription_state)
    required |= {
        f"subscription.{s}"
        for s in ("trial_will_end", "activated", "renewed", "plan_changed", "past_due",
                  "unpaid", "recovered", "paused", "resumed", "cancel_scheduled",
                  "cancel_unscheduled", "expired")
    } | {"invoice.upcoming"}  # fmt: skip
    required |= {f"customer.{s}" for s in ("created", "updated", "deleted")}
    required |= {f"payment_method.{s}" for s in ("attached", "updated", "detached")}
    required |= {"setup.succeeded", "setup.failed"}
    assert {e.value for e in EventType} == required


def test_payment_method_and_setup_session_keep_secrets_out_of_repr() -> None:
    from paygate.models import PaymentMethod, PaymentMethodKind, SetupSession, SetupStatus

    method = PaymentMethod(
        id="pm_1", provider="fake", customer_id="cus_1", kind=PaymentMethodKind.CARD,
        brand="visa", last4="4242", exp_month=12, exp_year=2030, raw={"secret": "x"},
    )  # fmt: skip
    assert "4242" in repr(method) and "secret" not in repr(method)
    assert method == PaymentMethod(
        id="pm_1", provider="fake", customer_id="cus_1", kind=PaymentMethodKind.CARD,
        brand="visa", last4="4242", exp_month=12, exp_year=2030,
    )  # fmt: skip
    setup = SetupSession(
        id="seti_1", provider="fake", status=SetupStatus.REQUIRES_ACTION,
        client_secret="seti_1_secret_abc",
    )  # fmt: skip
    assert "seti_1_secret_abc" not in repr(setup)
    assert setup.usage == "off_session"
