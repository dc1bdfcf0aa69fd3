"""The fake provider's wire format → paygate's dataclasses (its "transformers").

The fake keeps every object as the JSON-shaped dict its API would return and its webhooks
carry; these functions are the one place that turns such a dict into a model, used both for
API answers and for `FakeProvider.parse_webhook`, so the two can never disagree.
They raise ``KeyError``/``TypeError``/``ValueError`` (or a ``paygate.ValidationError``) on a
malformed dict; the webhook parser turns those into ``MalformedPayload``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from paygate.models import (
    CheckoutSession,
    CheckoutStatus,
    Customer,
    Dispute,
    DisputeReason,
    DisputeStatus,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentFailure,
    PaymentMethod,
    PaymentMethodKind,
    PaymentStatus,
    Refund,
    RefundStatus,
    SetupSession,
    SetupStatus,
    Subscription,
    SubscriptionStatus,
    WebhookObject,
)
from paygate.money import Money

PROVIDER: Final = "fake"

JSON = dict[str, Any]


def snapshot(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars).

    Hand-written because ``copy.deepcopy``'s memo bookkeeping made it most of the fake's
    per-call cost; JSON data has no cycles or shared objects to remember.
    """
    if isinstance(value, dict):
        return {key: snapshot(item) for key, item in value.items()}
    if isinstance(value, list):
        return [snapshot(item) for item in value]
    return value


def timestamp(value: Any) -> datetime | None:
    """Unix seconds → tz-aware UTC datetime (``None`` stays ``None``).

    ``ValueError`` for seconds beyond the calendar (``datetime`` raises ``OverflowError``
    or ``OSError`` there, which the webhook parser would not recognize as malformed).
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected unix seconds as int, got {type(value).__name__}")
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"unix seconds {value} are out of range") from None


def _money(data: Mapping[str, Any], key: str, currency_key: str = "currency") -> Money:
    return Money(data[key], data[currency_key])


def _opt_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string or null, got {type(value).__name__}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {value!r:.40}")
    return value


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("metadata must be an object")
    return {str(k): str(v) for k, v in value.items()}


def payment(data: JSON) -> Payment:
    failure_data = data.get("failure")
    failure = (
        PaymentFailure(
            code=_str(failure_data["code"]),
            message=str(failure_data.get("message") or ""),
            decline_code=_opt_str(failure_data.get("decline_code")),
        )
        if failure_data
        else None
    )
    return Payment(
        id=_str(data["id"]),
        provider=PROVIDER,
        order_id=_opt_str(data.get("order_id")),
        amount=_money(data, "amount"),
        status=PaymentStatus(data["status"]),
        amount_captured=_money(data, "amount_captured"),
        amount_refunded=_money(data, "amount_refunded"),
        customer_id=_opt_str(data.get("customer_id")),
        client_secret=_opt_str(data.get("client_secret")),
        redirect_url=_opt_str(data.get("redirect_url")),
        failure=failure,
        created_at=timestamp(data.get("created")),
        charge_id=_opt_str(data.get("charge_id")),
        metadata=_metadata(data.get("metadata")),
        refunds=tuple(refund(item) for item in _list(data.get("refunds"))),
        raw=data,
    )


def _list(value: Any) -> list[JSON]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise TypeError("expected a list of objects")
    return value


def refund(data: JSON) -> Refund:
    return Refund(
        id=_str(data["id"]),
        provider=PROVIDER,
        payment_id=_str(data["payment_id"]),
        amount=_money(data, "amount"),
        status=RefundStatus(data["status"]),
        reason=_opt_str(data.get("reason")),
        order_id=_opt_str(data.get("order_id")),
        created_at=timestamp(data.get("created")),
        failure_reason=_opt_str(data.get("failure_reason")),
        raw=data,
    )


def dispute(data: JSON) -> Dispute:
    return Dispute(
        id=_str(data["id"]),
        provider=PROVIDER,
        payment_id=_opt_str(data.get("payment_id")),
        amount=_money(data, "amount"),
        status=DisputeStatus(data["status"]),
        reason=_opt_str(data.get("reason")),
        order_id=_opt_str(data.get("order_id")),
        evidence_due_by=timestamp(data.get("evidence_due_by")),
        created_at=timestamp(data.get("created")),
        raw=data,
        reason_code=_reason_code(data.get("reason")),
        evidence_submitted=bool(data.get("evidence_submitted")),
    )


def _reason_code(reason: Any) -> DisputeReason | None:
    """The fake's reasons are paygate's own vocabulary; anything else is ``general``."""
    if reason is None:
        return None
    try:
        return DisputeReason(reason)
    except ValueError:
        return DisputeReason.GENERAL


def customer(data: JSON) -> Customer:
    return Customer(
        id=_str(data["id"]),
        provider=PROVIDER,
        email=_opt_str(data.get("email")),
        name=_opt_str(data.get("name")),
        metadata=_metadata(data.get("metadata")),
        raw=data,
        default_payment_method_id=_opt_str(data.get("default_payment_method")),
    )


def _opt_int(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"expected an int or null, got {type(value).__name__}")
    return value


def payment_method(data: JSON) -> PaymentMethod:
    card = data.get("card") or {}
    if not isinstance(card, dict):
        raise TypeError("card must be an object")
    return PaymentMethod(
        id=_str(data["id"]),
        provider=PROVIDER,
        customer_id=_opt_str(data.get("customer_id")),
        kind=PaymentMethodKind(data["kind"]),
        brand=_opt_str(card.get("brand")),
        last4=_opt_str(card.get("last4")),
        exp_month=_opt_int(card.get("exp_month")),
        exp_year=_opt_int(card.get("exp_year")),
        fingerprint=_opt_str(card.get("fingerprint")),
        email=_opt_str(data.get("email")),
        created_at=timestamp(data.get("created")),
        raw=data,
    )


def setup_session(data: JSON) -> SetupSession:
    failure_data = data.get("failure")
    usage = data.get("usage", "off_session")
    if usage not in ("off_session", "on_session"):
        raise ValueError(f"unknown setup usage {usage!r:.40}")
    return SetupSession(
        id=_str(data["id"]),
        provider=PROVIDER,
        status=SetupStatus(data["status"]),
        customer_id=_opt_str(data.get("customer_id")),
        client_secret=_opt_str(data.get("client_secret")),
        url=_opt_str(data.get("url")),
        payment_method_id=_opt_str(data.get("payment_method_id")),
        usage=usage,
        failure=PaymentFailure(
            code=_str(failure_data["code"]),
            message=str(failure_data.get("message") or ""),
            decline_code=_opt_str(failure_data.get("decline_code")),
        )
        if failure_data
        else None,
        created_at=timestamp(data.get("created")),
        raw=data,
    )


def subscription(data: JSON) -> Subscription:
    return Subscription(
        id=_str(data["id"]),
        provider=PROVIDER,
        customer_id=_opt_str(data.get("customer_id")),
        price_id=_opt_str(data.get("price_id")),
        status=SubscriptionStatus(data["status"]),
        current_period_end=timestamp(data.get("current_period_end")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end", False)),
        raw=data,
        quantity=int(data.get("quantity") or 1),
        current_period_start=timestamp(data.get("current_period_start")),
        trial_end=timestamp(data.get("trial_end")),
        # the fake orders its changes like Square: one version per change
        version=data.get("version"),
        resumes_at=timestamp(data.get("resumes_at")),
    )


def invoice(data: JSON) -> Invoice:
    return Invoice(
        id=_str(data["id"]),
        provider=PROVIDER,
        customer_id=_opt_str(data.get("customer_id")),
        status=InvoiceStatus(data["status"]),
        amount_due=_money(data, "amount_due"),
        amount_paid=_money(data, "amount_paid"),
        order_id=_opt_str(data.get("order_id")),
        number=_opt_str(data.get("number")),
        hosted_url=_opt_str(data.get("hosted_url")),
        payment_id=_opt_str(data.get("payment_id")),
        due_at=timestamp(data.get("due_at")),
        created_at=timestamp(data.get("created")),
        raw=data,
        subscription_id=_opt_str(data.get("subscription_id")),
        attempt_count=int(data.get("attempt_count") or 0),
    )


def checkout_session(data: JSON) -> CheckoutSession:
    return CheckoutSession(
        id=_str(data["id"]),
        provider=PROVIDER,
        url=_opt_str(data.get("url")),
        status=CheckoutStatus(data["status"]),
        order_id=_opt_str(data.get("order_id")),
        payment_id=_opt_str(data.get("payment_id")),
        amount_total=_money(data, "amount_total"),
        expires_at=timestamp(data.get("expires_at")),
        mode=data.get("mode", "payment"),
        customer_id=_opt_str(data.get("customer_id")),
        subscription_id=_opt_str(data.get("subscription_id")),
        raw=data,
    )


#: the ``object`` field of a fake object → its normalizer
DECODERS: Final[Mapping[str, Callable[[JSON], WebhookObject]]] = {
    "payment": payment,
    "refund": refund,
    "dispute": dispute,
    "customer": customer,
    "subscription": subscription,
    "invoice": invoice,
    "checkout_session": checkout_session,
    "payment_method": payment_method,
    "setup_session": setup_session,
}


def decode(data: JSON) -> WebhookObject:
    """Any fake object, by its ``object`` field."""
    kind = data["object"]
    decoder = DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise ValueError(f"unknown fake object kind {kind!r:.40}")
    return decoder(data)
