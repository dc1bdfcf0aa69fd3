"""Square adapter on the official ``squareup`` SDK (``square.Square``, httpx-based).

The mapping tables (Square status → paygate status, Square event → ``EventType``, Square
error code → paygate error) are the data at the top of this module; below them the
translation functions (Square JSON → paygate dataclasses), then
[`SquareProvider`][paygate.providers.square.SquareProvider], which makes the SDK calls.

Square specifics worth knowing:

* amounts are already integer minor units (``amount_money``), so they map 1:1 to
  [`Money`][paygate.money.Money];
* idempotency keys are body fields of at most 45 characters: the Gateway's key is hashed
  into one (`square_idempotency_key`), the same key always giving the same hash;
* the order id travels as the payment's ``reference_id`` (at most 40 characters), and on
  hosted checkout (payment links) as the Square order's ``reference_id`` and the payment
  note ``paygate-order:<order id>``;
* the SDK retries POSTs itself by default: every call here passes ``max_retries=0`` so the
  Gateway is the one layer that retries, with the same key;
* there is no "payment failed" or "subscription canceled" event: the event type is derived
  from the status of the object the event carries.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import operator
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Final, TypeAlias, TypeVar

import httpx
from square import Square
from square.core.api_error import ApiError
from square.core.request_options import RequestOptions

from paygate._json import load_object
from paygate._observe import fields
from paygate._retry import RetryPolicy, attempt_timeout, call_with
from paygate.errors import (
    AuthenticationError,
    AuthenticationRequired,
    CardDeclined,
    ConfigurationError,
    IdempotencyConflict,
    InvalidRequest,
    MalformedPayload,
    NotFound,
    NotSupported,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    ValidationError,
)
from paygate.models import (
    CaptureMethod,
    CheckoutMode,
    CheckoutSession,
    CheckoutStatus,
    Customer,
    Dispute,
    DisputeEvidence,
    DisputeReason,
    DisputeStatus,
    EventType,
    Invoice,
    InvoiceStatus,
    LineItem,
    Payment,
    PaymentFailure,
    PaymentMethod,
    PaymentMethodKind,
    PaymentStatus,
    Refund,
    RefundStatus,
    SetupSession,
    SetupStatus,
    SetupUsage,
    Subscription,
    SubscriptionStatus,
    WebhookEvent,
    WebhookObject,
)
from paygate.money import Money
from paygate.provider import BaseProvider, Capability, Proration
from paygate.providers import _square_webhook
from paygate.providers._flow import run as run_flow
from paygate.providers._http_faults import httpx_failure, retry_after_from, unexpected_response
from paygate.providers._square_settings import SquareSettings, load_settings
from paygate.providers._window import check_page_size, check_window, rfc3339

__all__ = ["SquareProvider", "square_idempotency_key"]

logger = logging.getLogger("paygate.providers.square")


# The async face lives in its own module, imported on first use (__getattr__); type
# checkers see it here. (A local TYPE_CHECKING, which mypy and pyright recognize by name,
# leaves this module's imports as they were.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from paygate.providers._square_async import AsyncSquareProvider as AsyncSquareProvider


def __getattr__(name: str) -> Any:
    if name == "AsyncSquareProvider":
        from paygate.providers._square_async import AsyncSquareProvider

        return AsyncSquareProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- mapping tables ----------------------------------------------------------------------------

#: Payment.status → PaymentStatus. Refunds do not change a Square payment's status (it stays
#: COMPLETED with ``refunded_money``); `payment_from_square` derives the refund states.
PAYMENT_STATUS: Final[Mapping[str, PaymentStatus]] = {
    "APPROVED": PaymentStatus.AUTHORIZED,  # authorized, waiting for CompletePayment
    "PENDING": PaymentStatus.PROCESSING,  # e.g. ACH bank transfers settling
    "COMPLETED": PaymentStatus.SUCCEEDED,
    "CANCELED": PaymentStatus.CANCELED,
    "FAILED": PaymentStatus.FAILED,
}

#: PaymentRefund.status → RefundStatus
REFUND_STATUS: Final[Mapping[str, RefundStatus]] = {
    "PENDING": RefundStatus.PENDING,
    "COMPLETED": RefundStatus.SUCCEEDED,
    "REJECTED": RefundStatus.FAILED,
    "FAILED": RefundStatus.FAILED,
}

#: Subscription.status → SubscriptionStatus
SUBSCRIPTION_STATUS: Final[Mapping[str, SubscriptionStatus]] = {
    "PENDING": SubscriptionStatus.PENDING,  # starts on a future start_date
    "ACTIVE": SubscriptionStatus.ACTIVE,
    "PAUSED": SubscriptionStatus.PAUSED,
    "CANCELED": SubscriptionStatus.CANCELED,
    "DEACTIVATED": SubscriptionStatus.CANCELED,  # stopped by Square, no longer billed
}

#: Invoice.status → InvoiceStatus
INVOICE_STATUS: Final[Mapping[str, InvoiceStatus]] = {
    "DRAFT": InvoiceStatus.DRAFT,
    "UNPAID": InvoiceStatus.OPEN,
    "SCHEDULED": InvoiceStatus.OPEN,
    "PARTIALLY_PAID": InvoiceStatus.OPEN,
    "PAYMENT_PENDING": InvoiceStatus.OPEN,
    "PAID": InvoiceStatus.PAID,
    "PARTIALLY_REFUNDED": InvoiceStatus.PAID,
    "REFUNDED": InvoiceStatus.REFUNDED,
    "CANCELED": InvoiceStatus.VOID,
    "FAILED": InvoiceStatus.UNCOLLECTIBLE,
}

#: Dispute.state → DisputeStatus
DISPUTE_STATUS: Final[Mapping[str, DisputeStatus]] = {
    "INQUIRY_EVIDENCE_REQUIRED": DisputeStatus.OPEN,
    "EVIDENCE_REQUIRED": DisputeStatus.OPEN,
    "INQUIRY_PROCESSING": DisputeStatus.UNDER_REVIEW,
    "PROCESSING": DisputeStatus.UNDER_REVIEW,
    "WON": DisputeStatus.WON,
    "LOST": DisputeStatus.LOST,
    "ACCEPTED": DisputeStatus.CLOSED,  # the seller accepted: the cardholder keeps the money
    "INQUIRY_CLOSED": DisputeStatus.CLOSED,  # the inquiry ended without a chargeback
}

#: Order.state → CheckoutStatus, for payment links (a paid order is COMPLETE whatever its
#: state: see `checkout_from_square`)
CHECKOUT_STATUS: Final[Mapping[str, CheckoutStatus]] = {
    "DRAFT": CheckoutStatus.OPEN,
    "OPEN": CheckoutStatus.OPEN,
    "COMPLETED": CheckoutStatus.COMPLETE,
    "CANCELED": CheckoutStatus.EXPIRED,
}

#: payment.created / payment.updated: the event type follows the payment's status
PAYMENT_EVENT_BY_STATUS: Final[Mapping[str, EventType]] = {
    "APPROVED": EventType.PAYMENT_AUTHORIZED,
    "PENDING": EventType.PAYMENT_PROCESSING,
    "COMPLETED": EventType.PAYMENT_SUCCEEDED,
    "CANCELED": EventType.PAYMENT_CANCELED,
    "FAILED": EventType.PAYMENT_FAILED,
}

#: refund.updated: by the refund's status (refund.created is always REFUND_CREATED)
REFUND_EVENT_BY_STATUS: Final[Mapping[str, EventType]] = {
    "PENDING": EventType.REFUND_CREATED,
    "COMPLETED": EventType.REFUND_SUCCEEDED,
    "REJECTED": EventType.REFUND_FAILED,
    "FAILED": EventType.REFUND_FAILED,
}

#: dispute.state.updated (and its older name dispute.state.changed): by the new state
DISPUTE_EVENT_BY_STATE: Final[Mapping[str, EventType]] = {
    "WON": EventType.DISPUTE_WON,
    "INQUIRY_CLOSED": EventType.DISPUTE_WON,  # no chargeback: the payment is as it was
    "LOST": EventType.DISPUTE_LOST,
    "ACCEPTED": EventType.DISPUTE_LOST,  # accepted = the funds go back to the cardholder
}

#: Dispute.reason -> DisputeReason
DISPUTE_REASONS: Final[Mapping[str, DisputeReason]] = {
    "AMOUNT_DIFFERS": DisputeReason.INCORRECT_AMOUNT,
    "CANCELLED": DisputeReason.SUBSCRIPTION_CANCELED,
    "DUPLICATE": DisputeReason.DUPLICATE,
    "NO_KNOWLEDGE": DisputeReason.UNRECOGNIZED,
    "NOT_AS_DESCRIBED": DisputeReason.PRODUCT_UNACCEPTABLE,
    "NOT_RECEIVED": DisputeReason.PRODUCT_NOT_RECEIVED,
    "PAID_BY_OTHER_MEANS": DisputeReason.DUPLICATE,
    "CUSTOMER_REQUESTS_CREDIT": DisputeReason.CREDIT_NOT_PROCESSED,
    "EMV_LIABILITY_SHIFT": DisputeReason.FRAUDULENT,
}

#: Square event types whose EventType does not depend on the object's status
EVENT_TYPES: Final[Mapping[str, EventType]] = {
    "dispute.created": EventType.DISPUTE_OPENED,
    "subscription.created": EventType.SUBSCRIPTION_CREATED,
    "invoice.created": EventType.INVOICE_CREATED,
    "invoice.published": EventType.INVOICE_CREATED,
    "invoice.payment_made": EventType.INVOICE_PAID,
    "invoice.scheduled_charge_failed": EventType.INVOICE_PAYMENT_FAILED,
    "invoice.canceled": EventType.INVOICE_VOIDED,
    "invoice.refunded": EventType.INVOICE_REFUNDED,
    "customer.created": EventType.CUSTOMER_CREATED,
    "customer.updated": EventType.CUSTOMER_UPDATED,
    "customer.deleted": EventType.CUSTOMER_DELETED,
    "card.created": EventType.PAYMENT_METHOD_ATTACHED,
    "card.updated": EventType.PAYMENT_METHOD_UPDATED,
    # the card network's account updater renewed the card on file
    "card.automatically_updated": EventType.PAYMENT_METHOD_UPDATED,
    "card.disabled": EventType.PAYMENT_METHOD_DETACHED,
    # the seller forgot the card at the buyer's request (GDPR)
    "card.forgotten": EventType.PAYMENT_METHOD_DETACHED,
}

#: Card.card_brand -> the brand name paygate reports (Stripe's spelling where it has one)
CARD_BRANDS: Final[Mapping[str, str]] = {
    "VISA": "visa",
    "MASTERCARD": "mastercard",
    "AMERICAN_EXPRESS": "amex",
    "DISCOVER": "discover",
    "DISCOVER_DINERS": "diners",
    "JCB": "jcb",
    "CHINA_UNIONPAY": "unionpay",
    "INTERAC": "interac",
    "EFTPOS": "eftpos",
    "FELICA": "felica",
    "EBT": "ebt",
    "SQUARE_GIFT_CARD": "square_gift_card",
    "SQUARE_CAPITAL_CARD": "square_capital_card",
    "OTHER_BRAND": "other",
}

#: Square error code → standard decline code (category PAYMENT_METHOD_ERROR → CardDeclined)
DECLINE_CODES: Final[Mapping[str, str]] = {
    "GENERIC_DECLINE": "card_declined",
    "CARD_DECLINED": "card_declined",
    "READER_DECLINED": "card_declined",
    "RESERVATION_DECLINED": "card_declined",
    "BUYER_REFUSED_PAYMENT": "card_declined",
    "ACCOUNT_UNUSABLE": "card_declined",
    "CARDHOLDER_INSUFFICIENT_PERMISSIONS": "card_declined",
    "ALLOWABLE_PIN_TRIES_EXCEEDED": "card_declined",
    "INVALID_PIN": "card_declined",
    "MISSING_PIN": "card_declined",
    "CHIP_INSERTION_REQUIRED": "card_declined",
    "CVV_FAILURE": "incorrect_cvc",
    "VERIFY_CVV_FAILURE": "incorrect_cvc",
    "ADDRESS_VERIFICATION_FAILURE": "incorrect_zip",
    "VERIFY_AVS_FAILURE": "incorrect_zip",
    "INVALID_POSTAL_CODE": "incorrect_zip",
    "INSUFFICIENT_FUNDS": "insufficient_funds",
    "GIFT_CARD_AVAILABLE_AMOUNT": "insufficient_funds",
    "CARD_EXPIRED": "expired_card",
    "EXPIRATION_FAILURE": "expired_card",
    "INVALID_EXPIRATION": "expired_card",
    "INVALID_EXPIRATION_YEAR": "expired_card",
    "INVALID_EXPIRATION_DATE": "expired_card",
    "BAD_EXPIRATION": "expired_card",
    "INVALID_ACCOUNT": "incorrect_number",
    "INVALID_CARD": "incorrect_number",
    "INVALID_CARD_DATA": "incorrect_number",
    "INVALID_ENCRYPTED_CARD": "incorrect_number",
    "PAN_FAILURE": "incorrect_number",
    "CARD_NOT_SUPPORTED": "card_not_supported",
    "UNSUPPORTED_CARD_BRAND": "card_not_supported",
    "UNSUPPORTED_ENTRY_METHOD": "card_not_supported",
    "MANUALLY_ENTERED_PAYMENT_NOT_SUPPORTED": "card_not_supported",
    "CARD_PRESENCE_REQUIRED": "card_not_supported",
    "TRANSACTION_LIMIT": "limit_exceeded",
    "PAYMENT_LIMIT_EXCEEDED": "limit_exceeded",
    "AMOUNT_TOO_HIGH": "limit_exceeded",
    "VOICE_FAILURE": "do_not_honor",
    "CARD_DECLINED_CALL_ISSUER": "do_not_honor",
    "CARD_DECLINED_VERIFICATION_REQUIRED": "authentication_required",
}

#: Square error code → paygate error class (codes not listed fall back on the category)
ERROR_CODES: Final[Mapping[str, type[ProviderError]]] = {
    "UNAUTHORIZED": AuthenticationError,
    "ACCESS_TOKEN_EXPIRED": AuthenticationError,
    "ACCESS_TOKEN_REVOKED": AuthenticationError,
    "CLIENT_DISABLED": AuthenticationError,
    "FORBIDDEN": AuthenticationError,
    "INSUFFICIENT_SCOPES": AuthenticationError,
    "APPLICATION_DISABLED": AuthenticationError,
    "V1_APPLICATION": AuthenticationError,
    "V1_ACCESS_TOKEN": AuthenticationError,
    "RATE_LIMITED": RateLimited,
    "IDEMPOTENCY_KEY_REUSED": IdempotencyConflict,
    "NOT_FOUND": NotFound,
    "CUSTOMER_NOT_FOUND": NotFound,
    "INTERNAL_SERVER_ERROR": ProviderUnavailable,
    "SERVICE_UNAVAILABLE": ProviderUnavailable,
    "BAD_GATEWAY": ProviderUnavailable,
    "GATEWAY_TIMEOUT": ProviderUnavailable,
    "REQUEST_TIMEOUT": ProviderUnavailable,
    "TEMPORARY_ERROR": ProviderUnavailable,  # "safely retry with the same idempotency key"
    # the request does not fit the payment's state or reuses a spent source: not a decline
    "DELAYED_TRANSACTION_EXPIRED": InvalidRequest,
    "DELAYED_TRANSACTION_CANCELED": InvalidRequest,
    "DELAYED_TRANSACTION_CAPTURED": InvalidRequest,
    "DELAYED_TRANSACTION_FAILED": InvalidRequest,
    "CARD_TOKEN_EXPIRED": InvalidRequest,
    "CARD_TOKEN_USED": InvalidRequest,
    "SOURCE_USED": InvalidRequest,
    "SOURCE_EXPIRED": InvalidRequest,
}

#: ErrorCategory → paygate error class, when the code is not in ERROR_CODES/DECLINE_CODES
ERROR_CATEGORIES: Final[Mapping[str, type[ProviderError]]] = {
    "AUTHENTICATION_ERROR": AuthenticationError,
    "RATE_LIMIT_ERROR": RateLimited,
    "PAYMENT_METHOD_ERROR": CardDeclined,
    "API_ERROR": ProviderUnavailable,
    "EXTERNAL_VENDOR_ERROR": ProviderUnavailable,
    "INVALID_REQUEST_ERROR": InvalidRequest,
    "REFUND_ERROR": InvalidRequest,
    "MERCHANT_SUBSCRIPTION_ERROR": InvalidRequest,
}

#: response headers that may carry Square's request id, first match wins
REQUEST_ID_HEADERS: Final = ("square-request-id", "x-request-id", "x-b3-traceid")

#: where paygate writes the order id on payments made through a payment link
ORDER_NOTE_PREFIX: Final = "paygate-order:"

#: Square's limits (CreatePaymentRequest.idempotency_key, Payment.reference_id)
IDEMPOTENCY_KEY_MAX: Final = 45
REFERENCE_ID_MAX: Final = 40
#: the largest page the list endpoints (ListPayments, ListPayouts, ...) answer
LIST_PAGE_MAX: Final = 100

PROVIDER = "square"


# -- small helpers -----------------------------------------------------------------------------


def square_idempotency_key(key: str, *, part: str = "") -> str:
    """Square's ≤45-character idempotency key for the Gateway's ``key``.

    A SHA-256 digest, so the same Gateway key (the same order and operation) always gives
    the same Square key; ``part`` separates the several requests one operation makes.
    """
    if not isinstance(key, str) or not key:
        raise ValidationError("idempotency_key must be a non-empty str")
    digest = hashlib.sha256(f"{key}\x1f{part}".encode()).hexdigest()
    return f"pg{digest}"[:IDEMPOTENCY_KEY_MAX]


def _money(data: Mapping[str, Any] | None, fallback_currency: str | None = None) -> Money | None:
    if not data or data.get("amount") is None:
        return None
    currency = data.get("currency") or fallback_currency
    if not isinstance(currency, str):
        return None
    amount = data["amount"]
    # Square sends integer minor units; ``int()`` would truncate a float (19.99 -> 19) or
    # accept a bool, so anything but an int is refused
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MalformedPayload(f"Square amount must be an integer of minor units, got {amount!r}")
    return Money(amount, currency)


def _money_param(money: Money) -> dict[str, Any]:
    return {"amount": money.amount, "currency": money.currency}


def _time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (or a YYYY-MM-DD date) as a tz-aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=timezone.utc)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        head, dot, rest = text.partition(".")
        if dot:  # Python < 3.11 reads at most 6 fractional digits
            digits = len(rest) - len(rest.lstrip("0123456789"))
            rest = rest[:digits][:6].ljust(6, "0") + rest[digits:]
            text = f"{head}.{rest}"
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00:00+01:00
        return None


def _window(since: datetime | None, until: datetime | None) -> dict[str, str]:
    """``begin_time``/``end_time`` of a list request; checks the window makes sense."""
    check_window(since, until)
    query = {}
    if since is not None:
        query["begin_time"] = rfc3339(since)
    if until is not None:
        query["end_time"] = rfc3339(until)
    return query


def order_id_of_payment(data: Mapping[str, Any]) -> str | None:
    """The paygate order id a Square ``Payment`` carries: ``reference_id``, or the
    ``paygate-order:`` note of a payment made through a payment link."""
    reference = data.get("reference_id")
    if isinstance(reference, str) and reference:
        return reference
    return _order_id_from_note(data.get("note"))


def _order_id_from_note(note: Any) -> str | None:
    if isinstance(note, str) and note.startswith(ORDER_NOTE_PREFIX):
        return note[len(ORDER_NOTE_PREFIX) :] or None
    return None


def _check_reference(order_id: str) -> str:
    if not isinstance(order_id, str) or not order_id:
        raise ValidationError("order_id must be a non-empty str")
    if len(order_id) > REFERENCE_ID_MAX:
        raise ValidationError(
            f"Square keeps the order id in reference_id, at most {REFERENCE_ID_MAX} "
            f"characters: {order_id!r} has {len(order_id)}"
        )
    return order_id


# -- translation: Square JSON → paygate dataclasses --------------------------------------------


def payment_from_square(
    data: Mapping[str, Any],
    *,
    order_id: str | None = None,
    refunds: Sequence[Mapping[str, Any]] | None = None,
) -> Payment:
    """A Square ``Payment`` object as a paygate [`Payment`][paygate.models.Payment].

    ``refunds``: the payment's ``PaymentRefund`` objects (its ``refund_ids`` fetched). With
    them the refunded amount is the sum of the COMPLETED ones, each kept on
    ``Payment.refunds``; without them it is Square's ``refunded_money``.
    """
    amount = _money(data.get("amount_money")) or _money(data.get("total_money"))
    if amount is None:
        raise MalformedPayload(f"Square payment {data.get('id')!r} has no amount_money")
    square_status = str(data.get("status") or "")
    status = PAYMENT_STATUS.get(square_status)
    if status is None:
        raise MalformedPayload(f"unknown Square payment status {square_status!r}")
    zero = Money(0, amount.currency)
    reference = order_id or data.get("reference_id") or _order_id_from_note(data.get("note"))
    listed = tuple(refund_from_square(r, order_id=reference) for r in refunds or ())
    if refunds is not None:
        refunded = zero
        for refund in listed:
            if refund.status is RefundStatus.SUCCEEDED:
                refunded += refund.amount
    else:
        refunded = _money(data.get("refunded_money"), amount.currency) or zero
    captured = amount if status is PaymentStatus.SUCCEEDED else zero
    if status is PaymentStatus.SUCCEEDED and refunded.amount > 0:
        status = (
            PaymentStatus.REFUNDED if refunded >= captured else PaymentStatus.PARTIALLY_REFUNDED
        )
    failure = None
    if status is PaymentStatus.FAILED:
        card_status = (data.get("card_details") or {}).get("status")
        failure = PaymentFailure(code=str(card_status or "FAILED"), message="payment failed")
    return Payment(
        id=str(data.get("id") or ""),
        provider=PROVIDER,
        order_id=reference,
        amount=amount,
        status=status,
        amount_captured=captured,
        amount_refunded=refunded,
        customer_id=data.get("customer_id"),
        failure=failure,
        created_at=_time(data.get("created_at")),
        refunds=listed,
        raw=dict(data),
    )


def refund_from_square(data: Mapping[str, Any], *, order_id: str | None = None) -> Refund:
    amount = _money(data.get("amount_money"))
    if amount is None:
        raise MalformedPayload(f"Square refund {data.get('id')!r} has no amount_money")
    square_status = str(data.get("status") or "PENDING")
    status = REFUND_STATUS.get(square_status)
    if status is None:
        raise MalformedPayload(f"unknown Square refund status {square_status!r}")
    return Refund(
        id=str(data.get("id") or ""),
        provider=PROVIDER,
        payment_id=str(data.get("payment_id") or ""),
        amount=amount,
        status=status,
        reason=data.get("reason"),
        order_id=order_id,
        created_at=_time(data.get("created_at")),
        failure_reason=square_status if status is RefundStatus.FAILED else None,
        raw=dict(data),
    )


def dispute_from_square(data: Mapping[str, Any], *, dispute_id: str | None = None) -> Dispute:
    """A Square ``Dispute``; ``dispute_id`` (an event's ``data.id``) when the object has no
    id of its own: every dispute event must name its dispute, two of one payment apart."""
    amount = _money(data.get("amount_money"))
    if amount is None:
        raise MalformedPayload(f"Square dispute {data.get('id')!r} has no amount_money")
    state = str(data.get("state") or "")
    status = DISPUTE_STATUS.get(state)
    if status is None:
        raise MalformedPayload(f"unknown Square dispute state {state!r}")
    disputed = data.get("disputed_payment") or {}
    own_id = data.get("id") or data.get("dispute_id") or dispute_id
    if not own_id:
        raise MalformedPayload("Square dispute without an id")
    return Dispute(
        id=str(own_id),
        provider=PROVIDER,
        payment_id=disputed.get("payment_id"),
        amount=amount,
        status=status,
        reason=data.get("reason"),
        evidence_due_by=_time(data.get("due_at")),
        created_at=_time(data.get("created_at")),
        raw=dict(data),
        reason_code=DISPUTE_REASONS.get(str(data.get("reason")), DisputeReason.GENERAL),
        evidence_submitted=state in ("PROCESSING", "INQUIRY_PROCESSING"),
    )


def subscription_from_square(data: Mapping[str, Any]) -> Subscription:
    square_status = str(data.get("status") or "")
    status = SUBSCRIPTION_STATUS.get(square_status)
    if status is None:
        raise MalformedPayload(f"unknown Square subscription status {square_status!r}")
    # CancelSubscription schedules the cancel for the end of the billing period: the
    # subscription stays ACTIVE with a canceled_date until then
    scheduled_cancel = bool(data.get("canceled_date")) and status is not SubscriptionStatus.CANCELED
    return Subscription(
        id=str(data.get("id") or ""),
        provider=PROVIDER,
        customer_id=data.get("customer_id"),
        price_id=data.get("plan_variation_id"),
        status=status,
        current_period_end=_time(data.get("charged_through_date")),
        cancel_at_period_end=scheduled_cancel,
        raw=dict(data),
        # Square names the date paid through, not the period's start: renewals are told
        # by their invoices (invoice.paid); changes are ordered by ``version``
        version=int(data["version"]) if data.get("version") is not None else None,
    )


def invoice_from_square(
    data: Mapping[str, Any], *, order_id: str | None = None, fallback_amount: Money | None = None
) -> Invoice:
    square_status = str(data.get("status") or "")
    status = INVOICE_STATUS.get(square_status)
    if status is None:
        raise MalformedPayload(f"unknown Square invoice status {square_status!r}")
    requests = data.get("payment_requests") or []
    first = requests[0] if requests else {}
    amount_due = _money(first.get("computed_amount_money")) or fallback_amount
    if amount_due is None:
        raise MalformedPayload(f"Square invoice {data.get('id')!r} has no computed amount")
    paid = _money(first.get("total_completed_amount_money"), amount_due.currency)
    recipient = data.get("primary_recipient") or {}
    return Invoice(
        id=str(data.get("id") or ""),
        provider=PROVIDER,
        customer_id=recipient.get("customer_id"),
        status=status,
        amount_due=amount_due,
        amount_paid=paid,
        order_id=order_id,
        number=data.get("invoice_number"),
        hosted_url=data.get("public_url"),
        due_at=_time(first.get("due_date")),
        created_at=_time(data.get("created_at")),
        raw=dict(data),
        subscription_id=data.get("subscription_id"),
    )


def customer_from_square(data: Mapping[str, Any]) -> Customer:
    name = " ".join(part for part in (data.get("given_name"), data.get("family_name")) if part)
    metadata: dict[str, str] = {}
    note = data.get("note")
    if isinstance(note, str) and note.startswith("{"):
        try:
            decoded = json.loads(note)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict):
            metadata = {str(k): str(v) for k, v in decoded.items()}
    return Customer(
        id=str(data.get("id") or ""),
        provider=PROVIDER,
        email=data.get("email_address"),
        name=name or None,
        metadata=metadata,
        raw=dict(data),
    )


def payment_method_from_square(card: Mapping[str, Any]) -> PaymentMethod:
    """A card on file. A disabled card (DisableCard, ``card.disabled``) belongs to no one
    any more: its ``customer_id`` is reported as ``None``."""
    brand = card.get("card_brand")
    enabled = card.get("enabled", True) is not False
    return PaymentMethod(
        id=str(card.get("id") or ""),
        provider=PROVIDER,
        customer_id=card.get("customer_id") if enabled else None,
        kind=PaymentMethodKind.CARD,
        brand=CARD_BRANDS.get(str(brand), "other") if brand else None,
        last4=card.get("last_4"),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        fingerprint=card.get("fingerprint"),
        created_at=_time(card.get("created_at")),
        raw=dict(card),
    )


def checkout_from_square(
    link: Mapping[str, Any], order: Mapping[str, Any] | None, *, order_id: str | None = None
) -> CheckoutSession:
    """A payment link (and its Square order, when known) as a
    [`CheckoutSession`][paygate.models.CheckoutSession]."""
    order = order or {}
    tenders = [t for t in order.get("tenders") or [] if t.get("payment_id")]
    if tenders:
        status = CheckoutStatus.COMPLETE  # paid, whatever fulfilment state the order is in
    else:
        status = CHECKOUT_STATUS.get(str(order.get("state") or "OPEN"), CheckoutStatus.OPEN)
    return CheckoutSession(
        id=str(link.get("id") or ""),
        provider=PROVIDER,
        url=link.get("url") or link.get("long_url"),
        status=status,
        order_id=order_id
        or order.get("reference_id")
        or _order_id_from_note(link.get("payment_note")),
        payment_id=tenders[0]["payment_id"] if tenders else None,
        amount_total=_money(order.get("total_money")),
        mode="payment",
        customer_id=order.get("customer_id"),
        raw={"payment_link": dict(link), "order": dict(order)},
    )


# -- webhook events ----------------------------------------------------------------------------


def _event_object(square_type: str, data: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """(kind, object) of an event's ``data.object``, e.g. ("payment", {...})."""
    container = data.get("object")
    if not isinstance(container, Mapping):
        raise MalformedPayload(f"Square {square_type} event without data.object")
    kind = square_type.split(".", 1)[0]
    obj = container.get(kind)
    if obj is None and kind == "dispute":  # the spec's schema names it "object"
        obj = container.get("object")
    if not isinstance(obj, Mapping):
        raise MalformedPayload(f"Square {square_type} event without data.object.{kind}")
    return kind, obj


def normalize_event(payload: Mapping[str, Any]) -> WebhookEvent:
    """A verified Square event body (parsed JSON) as a
    [`WebhookEvent`][paygate.models.WebhookEvent]."""
    square_type = payload.get("type")
    event_id = payload.get("event_id")
    if not isinstance(square_type, str) or not isinstance(event_id, str) or not event_id:
        raise MalformedPayload("Square event without a type or an event_id")
    occurred_at = _time(payload.get("created_at"))
    kind = square_type.split(".", 1)[0]
    obj: WebhookObject | None = None
    event_type = EventType.UNKNOWN
    data = payload.get("data")
    if kind in ("payment", "refund", "dispute", "subscription", "invoice", "customer", "card"):
        if not isinstance(data, Mapping):
            raise MalformedPayload(f"Square {square_type} event without data")
        try:
            kind, raw_object = _event_object(square_type, data)
            data_id = data.get("id")
            event_type, obj = _normalize_object(
                square_type, kind, raw_object, data_id if isinstance(data_id, str) else None
            )
        except MalformedPayload:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # a field of the wrong shape (``amount_money: 5``); ValueError covers paygate's
            # ValidationError (an unknown currency) too
            raise MalformedPayload(
                f"Square {square_type} event {event_id} has an unusable {kind} "
                f"({type(exc).__name__}: {exc})"
            ) from None
    return WebhookEvent(
        id=event_id,
        provider=PROVIDER,
        type=event_type,
        occurred_at=occurred_at,
        object=obj,
        provider_type=square_type,
        raw=dict(payload),
    )


def _normalize_object(
    square_type: str, kind: str, data: Mapping[str, Any], event_data_id: str | None = None
) -> tuple[EventType, WebhookObject | None]:
    status = str(data.get("status") or data.get("state") or "")
    if kind == "payment" and square_type in ("payment.created", "payment.updated"):
        return PAYMENT_EVENT_BY_STATUS.get(status, EventType.UNKNOWN), payment_from_square(data)
    if kind == "refund" and square_type in ("refund.created", "refund.updated"):
        refund = refund_from_square(data)
        if square_type == "refund.created" and refund.status is not RefundStatus.FAILED:
            return EventType.REFUND_CREATED, refund
        return REFUND_EVENT_BY_STATUS.get(status or "PENDING", EventType.UNKNOWN), refund
    if kind == "dispute" and square_type in (
        "dispute.created",
        "dispute.state.updated",
        "dispute.state.changed",
    ):
        dispute = dispute_from_square(data, dispute_id=event_data_id)
        if square_type == "dispute.created":
            return EventType.DISPUTE_OPENED, dispute
        return DISPUTE_EVENT_BY_STATE.get(status, EventType.DISPUTE_UPDATED), dispute
    if kind == "subscription" and square_type in ("subscription.created", "subscription.updated"):
        subscription = subscription_from_square(data)
        if square_type == "subscription.created":
            return EventType.SUBSCRIPTION_CREATED, subscription
        if subscription.status is SubscriptionStatus.CANCELED:
            return EventType.SUBSCRIPTION_CANCELED, subscription
        return EventType.SUBSCRIPTION_UPDATED, subscription
    if kind == "invoice" and square_type in EVENT_TYPES:
        return EVENT_TYPES[square_type], invoice_from_square(data)
    if kind == "customer" and square_type in EVENT_TYPES:
        return EVENT_TYPES[square_type], customer_from_square(data)
    if kind == "card" and square_type in EVENT_TYPES:
        return EVENT_TYPES[square_type], payment_method_from_square(data)
    return EventType.UNKNOWN, None


# -- operations: each call sequence written once, for both faces (sans-I/O) ---------------------
#
# An operation is a generator (`Flow`) that does no I/O: it ``yield``s each SDK call as a
# `SquareCall` and is sent the JSON answer; a call that fails is thrown into it at that
# ``yield`` (`paygate.providers._flow`), so its own ``except`` runs the same on both faces.
# `SquareProvider._run` makes the calls on ``square.Square``, `AsyncSquareProvider._run`
# on ``square.AsyncSquare`` (the same method names): arguments, idempotency keys, step
# order and translation are written here once.


@dataclasses.dataclass(frozen=True, slots=True)
class SquareCall:
    """One SDK call of an operation: ``method`` (``"payments.create"``: the API and its
    method, the same on ``Square`` and ``AsyncSquare``) with ``kwargs``, answered with the
    JSON body; with ``items``, a list endpoint read to its last page, answered with its
    pages (`_page_dict`, ``items`` the key of their rows)."""

    operation: str
    method: str
    kwargs: Mapping[str, Any]
    items: str | None = None


R = TypeVar("R")
#: an operation: yields its calls, is sent their answers, returns the result
Flow: TypeAlias = Generator[SquareCall, Any, R]


def _payment_data(payment_id: str) -> Flow[dict[str, Any]]:
    body = yield SquareCall("get_payment", "payments.get", {"payment_id": payment_id})
    payment: dict[str, Any] = body["payment"]
    return payment


def _get_order(square_order_id: str) -> Flow[dict[str, Any]]:
    body = yield SquareCall("get_order", "orders.get", {"order_id": square_order_id})
    order: dict[str, Any] = body["order"]
    return order


def _subscription_call(
    operation: str, method: str, kwargs: Mapping[str, Any]
) -> Flow[Subscription]:
    body = yield SquareCall(operation, method, kwargs)
    return subscription_from_square(body["subscription"])


class SquareFlows:
    """Each operation of the Square adapter as a `Flow`, named as the operation, with
    its arguments (positional) and its answer; both faces run these, on their settings."""

    def __init__(self, settings: SquareSettings) -> None:
        self.settings = settings

    # -- payments ----------------------------------------------------------------------------

    def create_payment(
        self, order_id: str, amount: Money, payment_method: str | None, idempotency_key: str,
        customer_id: str | None, description: str | None, metadata: Mapping[str, str] | None,
        capture: CaptureMethod, off_session: bool,
    ) -> Flow[Payment]:  # fmt: skip
        kwargs = payment_request(
            self.settings.location_id, order_id, amount, payment_method, idempotency_key,
            customer_id, description, capture, off_session=off_session,
        )  # fmt: skip
        body = yield SquareCall("create_payment", "payments.create", kwargs)
        payment = payment_from_square(body["payment"], order_id=order_id)
        return _with_metadata(payment, metadata)

    def get_payment(self, payment_id: str) -> Flow[Payment]:
        data = yield from _payment_data(payment_id)
        refunds = []
        for refund_id in data.get("refund_ids") or []:
            if isinstance(refund_id, str) and refund_id:
                body = yield SquareCall("get_payment", "refunds.get", {"refund_id": refund_id})
                refunds.append(body["refund"])
        return payment_from_square(data, refunds=refunds)

    def get_refund(self, refund_id: str) -> Flow[Refund]:
        body = yield SquareCall("get_refund", "refunds.get", {"refund_id": refund_id})
        return refund_from_square(body["refund"])

    def capture_payment(
        self, payment_id: str, amount: Money | None, idempotency_key: str
    ) -> Flow[Payment]:
        if amount is not None:
            current = payment_from_square((yield from _payment_data(payment_id)))
            if _partial_capture(current, amount):
                # Square completes the whole amount: lower an APPROVED payment first
                yield SquareCall("capture_payment", "payments.update", {
                    "payment_id": payment_id,
                    "idempotency_key": square_idempotency_key(idempotency_key, part="update"),
                    "payment": {"amount_money": _money_param(amount)},
                })  # fmt: skip
        return (yield from self._settle(payment_id, "capture_payment", "complete", "COMPLETED"))

    def cancel_payment(self, payment_id: str) -> Flow[Payment]:
        return (yield from self._settle(payment_id, "cancel_payment", "cancel", "CANCELED"))

    @staticmethod
    def _settle(payment_id: str, operation: str, action: str, done: str) -> Flow[Payment]:
        """CompletePayment / CancelPayment: they take no idempotency key, and Square's spec
        has them act on an APPROVED payment only. A retry whose first answer was lost
        (OutcomeUnknown) may find the payment already ``done``: when Square refuses the
        repeat, the payment is read, and ``done`` is the answer (the same end state)."""
        try:
            body = yield SquareCall(operation, f"payments.{action}", {"payment_id": payment_id})
        except ProviderError as exc:
            if exc.retryable:
                raise
            current = yield from _payment_data(payment_id)
            if current.get("status") != done:
                raise
            return payment_from_square(current)
        return payment_from_square(body["payment"])

    def refund_payment(
        self, payment_id: str, amount: Money | None, reason: str | None, idempotency_key: str
    ) -> Flow[Refund]:
        # Square's refunded_money: what Square itself checks the new refund against
        payment = payment_from_square((yield from _payment_data(payment_id)))
        kwargs = refund_request(payment, amount, reason, idempotency_key)
        body = yield SquareCall("refund_payment", "refunds.refund_payment", kwargs)
        return refund_from_square(body["refund"], order_id=payment.order_id)

    # -- hosted checkout (payment links) -----------------------------------------------------

    def create_checkout_session(
        self, order_id: str, line_items: Sequence[LineItem], success_url: str,
        idempotency_key: str, mode: CheckoutMode, customer_id: str | None,
    ) -> Flow[CheckoutSession]:  # fmt: skip
        # Square payment links have a redirect URL for after payment but no cancel URL: the
        # customer who leaves just closes the page
        if mode != "payment":
            raise NotSupported(
                "Square payment links are created for payments here; create subscriptions "
                "with create_subscription",
                provider=PROVIDER,
                code="not_supported",
            )
        _check_reference(order_id)
        order = square_order(self.settings.location_id, order_id, line_items, customer_id)
        total = _line_items_total(line_items)
        body = yield SquareCall("create_checkout_session", "checkout.payment_links.create", {
            "idempotency_key": square_idempotency_key(idempotency_key),
            "order": order,
            "checkout_options": {"redirect_url": success_url},
            "payment_note": f"{ORDER_NOTE_PREFIX}{order_id}",
        })  # fmt: skip
        related = (body.get("related_resources") or {}).get("orders") or []
        session = checkout_from_square(
            body["payment_link"], related[0] if related else None, order_id=order_id
        )
        if session.amount_total is None:
            session = _replace_total(session, total)
        return session

    def get_checkout_session(self, session_id: str) -> Flow[CheckoutSession]:
        body = yield SquareCall(
            "get_checkout_session", "checkout.payment_links.get", {"id": session_id}
        )
        link = body["payment_link"]
        order = (yield from _get_order(link["order_id"])) if link.get("order_id") else None
        return checkout_from_square(link, order)

    def complete_return(self, params: Mapping[str, str]) -> Flow[Payment]:
        payment_id = params.get("payment_id") or params.get("paymentId")
        if payment_id:
            return (yield from self.get_payment(payment_id))
        square_order_id = params.get("orderId") or params.get("transactionId")
        if not square_order_id and params.get("checkoutId"):
            body = yield SquareCall(
                "complete_return", "checkout.payment_links.get", {"id": params["checkoutId"]}
            )
            square_order_id = body["payment_link"].get("order_id")
        if not square_order_id:
            raise ValidationError(
                "Square return without orderId, transactionId, checkoutId or payment_id "
                "in the query"
            )
        order = yield from _get_order(square_order_id)
        payment = yield from self.get_payment(_paid_payment_id(square_order_id, order))
        return _with_order_reference(payment, order)

    # -- customers, subscriptions, invoices, disputes ----------------------------------------

    def create_customer(
        self, email: str | None, name: str | None, idempotency_key: str,
        metadata: Mapping[str, str] | None,
    ) -> Flow[Customer]:  # fmt: skip
        kwargs = customer_request(email, name, metadata, idempotency_key)
        body = yield SquareCall("create_customer", "customers.create", kwargs)
        return customer_from_square(body["customer"])

    def create_subscription(
        self, customer_id: str, price_id: str, idempotency_key: str,
        metadata: Mapping[str, str] | None, trial_days: int | None,
        trial_end: datetime | None, quantity: int,
    ) -> Flow[Subscription]:  # fmt: skip
        check_plan_only(trial_days, trial_end, quantity)
        kwargs = subscription_request(
            self.settings.location_id, customer_id, price_id, metadata, idempotency_key
        )
        return (yield from _subscription_call("create_subscription", "subscriptions.create",
                                              kwargs))  # fmt: skip

    def get_subscription(self, subscription_id: str) -> Flow[Subscription]:
        return (yield from _subscription_call(
            "get_subscription", "subscriptions.get", {"subscription_id": subscription_id}
        ))  # fmt: skip

    def cancel_subscription(self, subscription_id: str, at_period_end: bool) -> Flow[Subscription]:
        subscription = yield from _subscription_call(
            "cancel_subscription", "subscriptions.cancel", {"subscription_id": subscription_id}
        )
        if not at_period_end and subscription.status is not SubscriptionStatus.CANCELED:
            logger.warning(
                "square subscription %s: cancel scheduled for the end of the billing period "
                "(Square has no immediate cancel)",
                subscription_id,
                extra=fields(provider="square", operation="cancel_subscription"),
            )
        return subscription

    def create_invoice(
        self, customer_id: str, line_items: Sequence[LineItem], idempotency_key: str,
        order_id: str | None, description: str | None, send: bool,
    ) -> Flow[Invoice]:  # fmt: skip
        if order_id is not None:
            _check_reference(order_id)
        total = _line_items_total(line_items)
        order = square_order(self.settings.location_id, order_id, line_items, customer_id)
        body = yield SquareCall("create_invoice", "orders.create", {
            "order": order,
            "idempotency_key": square_idempotency_key(idempotency_key, part="order"),
        })  # fmt: skip
        invoice = invoice_request(self.settings, body["order"]["id"], customer_id, description)
        body = yield SquareCall("create_invoice", "invoices.create", {
            "invoice": invoice,
            "idempotency_key": square_idempotency_key(idempotency_key, part="invoice"),
        })  # fmt: skip
        created = body["invoice"]
        if send:
            body = yield SquareCall("create_invoice", "invoices.publish", {
                "invoice_id": created["id"],
                "version": created.get("version", 0),
                "idempotency_key": square_idempotency_key(idempotency_key, part="publish"),
            })  # fmt: skip
            created = body["invoice"]
        return invoice_from_square(created, order_id=order_id, fallback_amount=total)

    def get_dispute(self, dispute_id: str) -> Flow[Dispute]:
        body = yield SquareCall("get_dispute", "disputes.get", {"dispute_id": dispute_id})
        return dispute_from_square(body["dispute"])

    # -- after the first charge: subscriptions, disputes (issue 20) --------------------------

    def list_subscriptions(self, customer_id: str | None) -> Flow[list[Subscription]]:
        query = subscription_search_query(self.settings.location_id, customer_id)
        found: list[Subscription] = []
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {"query": query}
            if cursor:
                kwargs["cursor"] = cursor
            body = yield SquareCall("list_subscriptions", "subscriptions.search", kwargs)
            found += [subscription_from_square(sub) for sub in body.get("subscriptions") or ()]
            cursor = body.get("cursor")
            if not cursor:
                return found

    def change_subscription(
        self, subscription_id: str, price_id: str | None, quantity: int | None,
        proration: Proration,
    ) -> Flow[Subscription]:  # fmt: skip
        new_plan = checked_swap(price_id, quantity, proration)
        return (yield from _subscription_call(
            "change_subscription", "subscriptions.swap_plan",
            {"subscription_id": subscription_id, "new_plan_variation_id": new_plan},
        ))  # fmt: skip

    def pause_subscription(self, subscription_id: str) -> Flow[Subscription]:
        return (yield from _subscription_call(
            "pause_subscription", "subscriptions.pause",
            {"subscription_id": subscription_id, "pause_reason": PAUSE_REASON},
        ))  # fmt: skip

    def resume_subscription(self, subscription_id: str) -> Flow[Subscription]:
        return (yield from _subscription_call(
            "resume_subscription", "subscriptions.resume",
            {"subscription_id": subscription_id, "resume_change_timing": "IMMEDIATE"},
        ))  # fmt: skip

    def undo_cancel_subscription(self, subscription_id: str) -> Flow[Subscription]:
        body = yield SquareCall("undo_cancel_subscription", "subscriptions.get", {
            "subscription_id": subscription_id, "include": "actions",
        })  # fmt: skip
        subscription = body["subscription"]
        cancels = cancel_action_ids(subscription)
        if not cancels:
            return subscription_from_square(subscription)
        for action_id in cancels:
            body = yield SquareCall("undo_cancel_subscription", "subscriptions.delete_action", {
                "subscription_id": subscription_id, "action_id": action_id,
            })  # fmt: skip
        return subscription_from_square(body["subscription"])

    def list_disputes(self, payment_id: str | None) -> Flow[list[Dispute]]:
        pages = yield SquareCall(
            "list_disputes", "disputes.list", {"location_id": self.settings.location_id},
            items="disputes",
        )  # fmt: skip
        found = [dispute_from_square(d) for page in pages for d in page.get("disputes") or ()]
        return [d for d in found if payment_id is None or d.payment_id == payment_id]

    def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, submit: bool
    ) -> Flow[Dispute]:
        texts, files = evidence_requests(dispute_id, evidence)
        for text_request in texts:
            yield SquareCall(
                "submit_dispute_evidence", "disputes.create_evidence_text", text_request
            )
        for file_request in files:
            yield SquareCall(
                "submit_dispute_evidence", "disputes.create_evidence_file", file_request
            )
        if submit:
            body = yield SquareCall(
                "submit_dispute_evidence", "disputes.submit_evidence", {"dispute_id": dispute_id}
            )
            return dispute_from_square(body["dispute"])
        return (yield from self.get_dispute(dispute_id))

    def accept_dispute(self, dispute_id: str) -> Flow[Dispute]:
        body = yield SquareCall("accept_dispute", "disputes.accept", {"dispute_id": dispute_id})
        return dispute_from_square(body["dispute"])

    # -- customers and saved cards (Cards API) -----------------------------------------------

    def get_customer(self, customer_id: str) -> Flow[Customer]:
        body = yield SquareCall("get_customer", "customers.get", {"customer_id": customer_id})
        return customer_from_square(body["customer"])

    def update_customer(
        self, customer_id: str, email: str | None, name: str | None,
        metadata: Mapping[str, str] | None,
    ) -> Flow[Customer]:  # fmt: skip
        # the metadata lives as JSON in the note (see create_customer): merged, so a key
        # not named keeps its value
        current = (yield from self.get_customer(customer_id)).metadata if metadata else {}
        kwargs = customer_update_request(customer_id, email, name, metadata, current)
        body = yield SquareCall("update_customer", "customers.update", kwargs)
        return customer_from_square(body["customer"])

    def delete_customer(self, customer_id: str) -> Flow[None]:
        yield SquareCall("delete_customer", "customers.delete", {"customer_id": customer_id})

    def create_setup(
        self, customer_id: str, idempotency_key: str, usage: SetupUsage,
        payment_method: str | None, verification_token: str | None,
    ) -> Flow[SetupSession]:  # fmt: skip
        kwargs = card_request(
            customer_id, idempotency_key, usage, payment_method, verification_token
        )
        body = yield SquareCall("create_setup", "cards.create", kwargs)
        return setup_from_card(body["card"], customer_id, usage)

    def list_payment_methods(self, customer_id: str) -> Flow[list[PaymentMethod]]:
        pages = yield SquareCall(
            "list_payment_methods", "cards.list", {"customer_id": customer_id}, items="cards"
        )
        return [payment_method_from_square(card) for page in pages for card in page["cards"]]

    def get_payment_method(self, payment_method_id: str) -> Flow[PaymentMethod]:
        body = yield SquareCall("get_payment_method", "cards.get", {"card_id": payment_method_id})
        return payment_method_from_square(body["card"])

    def detach_payment_method(self, payment_method_id: str) -> Flow[None]:
        yield SquareCall("detach_payment_method", "cards.disable", {"card_id": payment_method_id})


# -- the adapter -------------------------------------------------------------------------------


class SquareProvider(BaseProvider):
    """paygate's Square adapter.

    ``SquareProvider(access_token=..., location_id=..., webhook_signature_key=...,
    webhook_url=...)``; ``environment`` is ``"sandbox"`` unless ``"production"`` is given.
    ``http_client`` (an `httpx.Client`) replaces the SDK's transport, e.g. with an
    ``httpx.MockTransport`` in tests.
    """

    name = PROVIDER
    capabilities = frozenset(
        {
            Capability.PAYMENTS,
            Capability.MANUAL_CAPTURE,
            Capability.PARTIAL_CAPTURE,
            Capability.REFUNDS,
            Capability.PARTIAL_REFUNDS,
            Capability.CHECKOUT,
            Capability.CUSTOMERS,
            Capability.SUBSCRIPTIONS,
            Capability.INVOICES,
            Capability.DISPUTES,
            Capability.WEBHOOKS,
            # no proration (a swapped plan bills from the next cycle), no trials outside
            # the plan's phases: those are left out
            Capability.SUBSCRIPTION_PAUSE,
            Capability.DISPUTE_EVIDENCE,
            Capability.PAYMENT_METHODS,
        }
    )

    def __init__(self, *, http_client: httpx.Client | None = None, **settings: Any) -> None:
        self.settings: SquareSettings = load_settings(settings)
        #: the Gateway's retry count for this provider (None: the Gateway's default)
        self.max_retries: int | None = self.settings.max_retries
        self._owns_http_client = http_client is None
        self._http = http_client or httpx.Client(timeout=self.settings.timeout)
        self._client = Square(
            base_url=self.settings.api_base_url,
            token=self.settings.access_token.get_secret_value(),
            timeout=self.settings.timeout,
            httpx_client=self._http,
        )
        # paygate retries in one layer, the Gateway's: the SDK's own retries stay off
        self._request_options: RequestOptions = {"max_retries": 0}
        # squareup imports each API's modules on first access (~0.6 s of pydantic models,
        # seconds on a fresh install compiling them): here, at construction, not inside the
        # first request, whose retry budget it would spend
        for api in ("payments", "refunds", "orders", "customers", "subscriptions", "invoices",
                    "disputes", "cards"):  # fmt: skip
            getattr(self._client, api)
        getattr(self._client.checkout, "payment_links")  # noqa: B009  # an import, by access
        self._flows = SquareFlows(self.settings)

    def __repr__(self) -> str:
        return (
            f"SquareProvider(environment={self.settings.environment!r}, "
            f"location_id={self.settings.location_id!r})"
        )

    @property
    def client(self) -> Square:
        """The underlying ``square.Square`` client, for calls paygate does not wrap."""
        return self._client

    def close(self) -> None:
        if self._owns_http_client:
            self._http.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _call(self, operation: str, method: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        """Call one SDK method with retries off; the answer as JSON-shaped dict."""
        return _checked(operation, self._send(operation, method, **kwargs).dict())

    def _send(self, operation: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        """One SDK call with the SDK's retries off and its errors mapped to paygate's; its
        timeout is cut to the time left in the Gateway's retry budget."""

        def call() -> Any:
            options: RequestOptions = {
                **self._request_options,
                # the SDK hands this to httpx, which takes float seconds (typed int there)
                "timeout_in_seconds": attempt_timeout(self.settings.timeout),
            }
            return method(**kwargs, request_options=options)

        return self._guarded(operation, call)

    def _guarded(self, operation: str, call: Callable[[], Any]) -> Any:
        """Run ``call`` (one request), raising the SDK's and httpx's errors as paygate's."""
        try:
            return call()
        except ApiError as exc:
            raise _error_from_api(operation, exc) from None
        except httpx.InvalidURL:  # an id the SDK leaves unescaped ("\x00"): nothing was sent
            raise ValidationError(
                f"Square {operation}: an id in the request cannot be put in a URL"
            ) from None
        except httpx.RequestError as exc:
            # never sent (ProviderUnavailable), or sent and the answer lost (OutcomeUnknown)
            raise httpx_failure(PROVIDER, "Square", operation, exc) from None

    def _run(self, flow: Flow[R]) -> R:
        """Make each SDK call ``flow`` yields (a failure thrown into it); its result."""
        return run_flow(flow, self._answer)

    def _answer(self, call: SquareCall) -> Any:
        method = operator.attrgetter(call.method)(self._client)
        if call.items is None:
            return self._call(call.operation, method, **call.kwargs)
        return list(self._pages(call.operation, method, dict(call.kwargs), call.items, None))

    # -- payments ------------------------------------------------------------------------------

    def create_payment(
        self,
        *,
        order_id: str,
        amount: Money,
        payment_method: str | None,
        idempotency_key: str,
        customer_id: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        capture: CaptureMethod = "automatic",
        return_url: str | None = None,
        off_session: bool = False,
    ) -> Payment:
        """A payment from ``payment_method``: a Web Payments SDK token, or a saved card's
        id with its ``customer_id``. Square takes no off-session flag: a card on file
        charged without the buyer is simply one without a verification token; a bank that
        wants the buyer answers ``CARD_DECLINED_VERIFICATION_REQUIRED``
        ([`AuthenticationRequired`][paygate.errors.AuthenticationRequired])."""
        return self._run(self._flows.create_payment(
            order_id, amount, payment_method, idempotency_key, customer_id, description,
            metadata, capture, off_session,
        ))  # fmt: skip

    def get_payment(self, payment_id: str) -> Payment:
        """The payment with its refunds: GetPayment, then GetPaymentRefund for each of its
        ``refund_ids`` (Square lists refunds by id only, and ListPaymentRefunds cannot ask
        for one payment's). One request more per refund, none for an unrefunded payment:
        the price of knowing each refund by id, so a missed refund webhook is learned
        here and nothing is counted twice."""
        return self._run(self._flows.get_payment(payment_id))

    def get_refund(self, refund_id: str) -> Refund:
        return self._run(self._flows.get_refund(refund_id))

    def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment:
        """CompletePayment, after UpdatePayment lowering the amount of a partial capture.
        A repeat Square refuses of a payment already captured answers the payment."""
        return self._run(self._flows.capture_payment(payment_id, amount, idempotency_key))

    def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment:
        return self._run(self._flows.cancel_payment(payment_id))

    def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund:
        return self._run(self._flows.refund_payment(payment_id, amount, reason, idempotency_key))

    # -- hosted checkout (payment links) -------------------------------------------------------

    def create_checkout_session(
        self,
        *,
        order_id: str,
        line_items: Sequence[LineItem],
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
        mode: CheckoutMode = "payment",
        customer_id: str | None = None,
        price_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CheckoutSession:
        return self._run(self._flows.create_checkout_session(
            order_id, line_items, success_url, idempotency_key, mode, customer_id
        ))  # fmt: skip

    def get_checkout_session(self, session_id: str) -> CheckoutSession:
        return self._run(self._flows.get_checkout_session(session_id))

    def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        """The customer's redirect back from a payment link.

        Square adds ``orderId`` (and ``transactionId``, the same order in v1 terms, and
        ``checkoutId``) to the redirect URL; ``payment_id`` is accepted too. Only the ids are
        read: the order, its payment and the payment's status come from Square's API.
        """
        return self._run(self._flows.complete_return(params))

    # -- customers, subscriptions, invoices, disputes ------------------------------------------

    def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        return self._run(self._flows.create_customer(email, name, idempotency_key, metadata))

    def create_subscription(
        self,
        *,
        customer_id: str,
        price_id: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
        trial_days: int | None = None,
        trial_end: datetime | None = None,
        quantity: int = 1,
    ) -> Subscription:
        """``price_id`` is the subscription plan variation id; ``metadata["card_id"]``, a
        card on file, is charged (without it Square emails an invoice each period)."""
        return self._run(self._flows.create_subscription(
            customer_id, price_id, idempotency_key, metadata, trial_days, trial_end, quantity
        ))  # fmt: skip

    def get_subscription(self, subscription_id: str) -> Subscription:
        return self._run(self._flows.get_subscription(subscription_id))

    def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        """Square's CancelSubscription ends an active subscription at the end of the paid
        period (a pending one at once); there is no immediate cancel of an active one. The
        returned [`Subscription`][paygate.models.Subscription] says which happened
        (``cancel_at_period_end``)."""
        return self._run(self._flows.cancel_subscription(subscription_id, at_period_end))

    def create_invoice(
        self,
        *,
        customer_id: str,
        line_items: Sequence[LineItem],
        idempotency_key: str,
        order_id: str | None = None,
        description: str | None = None,
        send: bool = False,
    ) -> Invoice:
        """A Square invoice bills an order: the order is created first, then the invoice
        (a draft), then published when ``send`` is true."""
        return self._run(self._flows.create_invoice(
            customer_id, line_items, idempotency_key, order_id, description, send
        ))  # fmt: skip

    def get_dispute(self, dispute_id: str) -> Dispute:
        return self._run(self._flows.get_dispute(dispute_id))

    # -- listings, for reconciliation ----------------------------------------------------------

    def iter_payment_pages(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = LIST_PAGE_MAX,
        retry: RetryPolicy | None = None,
    ) -> Iterator[dict[str, Any]]:
        """ListPayments of the configured location created in ``[since, until)``, page by page.

        Each page is a dict shaped like Square's ``ListPaymentsResponse``
        (``{"payments": [...], "cursor": ...}``, ``payments`` always present), which
        [`paygate.reconcile.SquarePayments`][paygate.reconcile.SquarePayments] reads as it is. Pages
        are fetched lazily, one request when the previous page has been consumed, oldest payments
        first. ``since``/``until`` must be timezone-aware (sent as RFC 3339 ``begin_time`` and
        ``end_time``; Square's defaults apply when left out: the last year). Errors are the
        adapter's usual ones (``AuthenticationError``, ``ProviderUnavailable``, ...), raised when
        the failing page is reached.

        ``retry``: each page request goes through this policy (operation
        ``list_payments``): a retryable error (network, 5xx, 429) sends the same request
        again (same window and ``cursor``), nothing yielded is yielded twice. ``None`` (the
        default): no retry, the first error is raised.
        """
        query = self._list_query(since, until, page_size)
        return self._pages("list_payments", self._client.payments.list, query, "payments", retry)

    def iter_payout_entry_pages(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = LIST_PAGE_MAX,
        retry: RetryPolicy | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The payout entries of the configured location's payouts created in
        ``[since, until)``: ListPayouts (paged), then ListPayoutEntries of each payout
        (paged), lazily.

        Each page is a dict shaped like Square's ``ListPayoutEntriesResponse``
        (``{"payout_entries": [...], "cursor": ...}``), read by
        [`paygate.reconcile.SquarePayoutEntries`][paygate.reconcile.SquarePayoutEntries]. The window
        selects payouts, by their ``created_at``; a payout's entries may be older (the charges it
        pays out). ``SIMPLE`` payouts have no entries (they show up as an entry of a later ``BATCH``
        payout) and are not asked for any. Only one page of payouts and one page of entries are held
        at a time.

        ``retry``: each page request (``list_payouts``, ``list_payout_entries``) goes through
        this policy, as for
        [`iter_payment_pages`][paygate.providers.square.SquareProvider.iter_payment_pages]. ``None``
        (the default): no retry.
        """
        query = self._list_query(since, until, page_size)
        return self._payout_entry_pages(query, query["limit"], retry)

    def _list_query(
        self, since: datetime | None, until: datetime | None, page_size: int
    ) -> dict[str, Any]:
        """The query of a list request over ``[since, until)`` of the configured location,
        oldest first; the arguments are checked here, before any request."""
        return {
            **_window(since, until),
            "location_id": self.settings.location_id,
            "sort_order": "ASC",
            "limit": check_page_size(page_size, LIST_PAGE_MAX),
        }

    def _payout_entry_pages(
        self, query: dict[str, Any], limit: int, retry: RetryPolicy | None
    ) -> Iterator[dict[str, Any]]:
        payout_pages = self._pages(
            "list_payouts", self._client.payouts.list, query, "payouts", retry
        )
        for payouts_page in payout_pages:
            for payout in payouts_page["payouts"]:
                if payout.get("type") == "SIMPLE":
                    continue
                yield from self._pages(
                    "list_payout_entries",
                    self._client.payouts.list_entries,
                    {"payout_id": payout["id"], "sort_order": "ASC", "limit": limit},
                    "payout_entries",
                    retry,
                )

    def _pages(
        self,
        operation: str,
        method: Callable[..., Any],
        query: dict[str, Any],
        items: str,
        retry: RetryPolicy | None,
    ) -> Iterator[dict[str, Any]]:
        """The pages of a list endpoint, one request per page, lazily.

        The SDK answers with a pager whose ``get_next`` asks for the next ``cursor`` with
        the same parameters (and ``max_retries=0``). It is called here, inside the error
        mapping, rather than through the pager's own iteration, which would raise the
        SDK's errors and stop at the first empty page. Each request (and the check of its
        answer) goes through ``retry``: calling ``get_next`` again repeats the same cursor.
        """
        fetch: Callable[[], Any] = functools.partial(self._send, operation, method, **query)
        while True:
            pager, page = call_with(
                retry, operation, functools.partial(_fetched, operation, fetch, items)
            )
            if pager is None:
                return
            yield page
            if not pager.has_next or pager.get_next is None:
                return
            fetch = functools.partial(self._guarded, operation, pager.get_next)

    # -- webhooks ------------------------------------------------------------------------------

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        return parse_webhook(self.settings, body, headers)

    # -- after the first charge: subscriptions, disputes (issue 20) ------------------------------

    def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        """SearchSubscriptions at this location (of ``customer_id``), every page."""
        return self._run(self._flows.list_subscriptions(customer_id))

    def change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        idempotency_key: str,
    ) -> Subscription:
        """SwapPlan to the plan variation ``price_id``. Square has no proration: the new
        plan bills from the next billing cycle, so only ``proration="none"`` says what
        happens; Square subscriptions have no quantity."""
        return self._run(
            self._flows.change_subscription(subscription_id, price_id, quantity, proration)
        )

    def pause_subscription(self, subscription_id: str) -> Subscription:
        """PauseSubscription from the next billing date (Square's earliest), until resumed."""
        return self._run(self._flows.pause_subscription(subscription_id))

    def resume_subscription(self, subscription_id: str) -> Subscription:
        return self._run(self._flows.resume_subscription(subscription_id))

    def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        """Delete the scheduled ``CANCEL`` action (DeleteSubscriptionAction)."""
        return self._run(self._flows.undo_cancel_subscription(subscription_id))

    def retry_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        raise no_invoice_retry()

    def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        """ListDisputes at this location, every page; of one payment: filtered here (Square
        filters by state and location only)."""
        return self._run(self._flows.list_disputes(payment_id))

    def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """One CreateDisputeEvidenceText per text field, one CreateDisputeEvidenceFile per
        file, then SubmitEvidence unless ``submit=False`` (Square keeps the evidence until
        it is submitted)."""
        return self._run(self._flows.submit_dispute_evidence(dispute_id, evidence, submit))

    def accept_dispute(self, dispute_id: str) -> Dispute:
        """AcceptDispute: the cardholder keeps the money (``ACCEPTED``, read ``closed``;
        its ``dispute.state.updated`` webhook is ``dispute.lost``)."""
        return self._run(self._flows.accept_dispute(dispute_id))

    # -- customers and saved cards (Cards API) -------------------------------------------------

    def get_customer(self, customer_id: str) -> Customer:
        return self._run(self._flows.get_customer(customer_id))

    def update_customer(
        self,
        customer_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        return self._run(self._flows.update_customer(customer_id, email, name, metadata))

    def list_customers(
        self, *, email: str | None = None, page_size: int = LIST_PAGE_MAX
    ) -> Iterator[Customer]:
        """ListCustomers, or with ``email`` SearchCustomers on the exact address; a page
        per request as the iterator is consumed."""
        check_page_size(page_size, LIST_PAGE_MAX)
        if email is None:
            pages = self._pages(
                "list_customers",
                self._client.customers.list,
                {"limit": page_size},
                "customers",
                None,
            )
            return (customer_from_square(row) for page in pages for row in page["customers"])
        return self._customer_search(email, page_size)

    def _customer_search(self, email: str, page_size: int) -> Iterator[Customer]:
        query = customer_search_query(email, page_size)
        while True:
            body = self._call("list_customers", self._client.customers.search, **query)
            for row in body.get("customers") or []:
                yield customer_from_square(row)
            cursor = body.get("cursor")
            if not cursor:
                return
            query = {**query, "cursor": cursor}

    def delete_customer(self, customer_id: str) -> None:
        self._run(self._flows.delete_customer(customer_id))

    def create_setup(
        self,
        *,
        customer_id: str,
        idempotency_key: str,
        return_url: str | None = None,
        cancel_url: str | None = None,
        usage: SetupUsage = "off_session",
        payment_method: str | None = None,
        verification_token: str | None = None,
    ) -> SetupSession:
        """CreateCard: a card on file for ``customer_id`` from a Web Payments SDK token
        (``payment_method``), with the buyer's ``verification_token`` where the bank
        wants Strong Customer Authentication. Square has no hosted step: the card is saved
        at once (the session's id is the card's), and the URLs are not used."""
        return self._run(self._flows.create_setup(
            customer_id, idempotency_key, usage, payment_method, verification_token
        ))  # fmt: skip

    def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        """The customer's enabled cards on file (ListCards)."""
        return self._run(self._flows.list_payment_methods(customer_id))

    def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        return self._run(self._flows.get_payment_method(payment_method_id))

    def detach_payment_method(self, payment_method_id: str) -> None:
        """DisableCard: Square keeps the card, disabled; it can no longer be charged."""
        self._run(self._flows.detach_payment_method(payment_method_id))


def _line_items_total(line_items: Sequence[LineItem]) -> Money:
    if not line_items:
        raise ValidationError("at least one line item is needed")
    total = line_items[0].total
    for item in line_items[1:]:
        total = total + item.total  # different currencies raise CurrencyMismatch
    return total


# -- requests: what each operation sends (shared by both faces) ---------------------------------


def payment_request(
    location_id: str,
    order_id: str,
    amount: Money,
    payment_method: str | None,
    idempotency_key: str,
    customer_id: str | None,
    description: str | None,
    capture: CaptureMethod,
    *,
    off_session: bool = False,
) -> dict[str, Any]:
    """CreatePayment's arguments for ``create_payment``."""
    _check_reference(order_id)
    if not isinstance(amount, Money) or amount.amount <= 0:
        raise ValidationError(f"amount must be positive Money, got {amount!r}")
    if off_session and not (payment_method and customer_id):
        raise ValidationError(
            "an off-session charge needs the saved card's id as payment_method and its customer_id"
        )
    if not payment_method:
        raise ValidationError(
            "Square needs payment_method: a source_id (a Web Payments SDK token or a "
            "card on file id)"
        )
    if capture not in ("automatic", "manual"):
        raise ValidationError(f"capture must be 'automatic' or 'manual', got {capture!r}")
    kwargs: dict[str, Any] = {
        "source_id": payment_method,
        "idempotency_key": square_idempotency_key(idempotency_key),
        "amount_money": _money_param(amount),
        "autocomplete": capture == "automatic",
        "reference_id": order_id,
        "location_id": location_id,
    }
    if customer_id:
        kwargs["customer_id"] = customer_id
    if description:
        kwargs["note"] = description[:500]
    return kwargs


def _partial_capture(current: Payment, amount: Money) -> bool:
    """Check a capture ``amount`` against the authorization; true when it is a part of it
    (Square completes the whole amount: the payment is lowered first)."""
    if amount.currency != current.amount.currency or not 0 < amount.amount <= current.amount.amount:
        raise ValidationError(
            f"capture amount {amount} must be positive and at most the authorized {current.amount}"
        )
    return amount != current.amount


def refund_request(
    payment: Payment, amount: Money | None, reason: str | None, idempotency_key: str
) -> dict[str, Any]:
    """RefundPayment's arguments, checked against ``payment`` as Square holds it now."""
    assert payment.amount_captured is not None and payment.amount_refunded is not None
    refundable = payment.amount_captured - payment.amount_refunded
    if amount is None:
        amount = refundable
        limit = refundable
    else:
        # an explicit amount is checked against the capture, not against what is left: a
        # retry whose first answer was lost (OutcomeUnknown) finds its own refund already
        # counted, and Square answers the same idempotency key with that refund (a new
        # refund over the rest Square refuses itself)
        limit = payment.amount_captured
    if amount.currency != limit.currency or not 0 < amount.amount <= limit.amount:
        raise ValidationError(
            f"refund amount {amount} must be positive and at most the refundable {limit}"
        )
    kwargs: dict[str, Any] = {
        "idempotency_key": square_idempotency_key(idempotency_key),
        "amount_money": _money_param(amount),
        "payment_id": payment.id,
    }
    if reason:
        kwargs["reason"] = reason[:192]
    return kwargs


def square_order(
    location_id: str,
    order_id: str | None,
    line_items: Sequence[LineItem],
    customer_id: str | None,
) -> dict[str, Any]:
    """The Square order a payment link or an invoice bills."""
    if not line_items:
        raise ValidationError("at least one line item is needed")
    order: dict[str, Any] = {
        "location_id": location_id,
        "line_items": [
            {
                "name": item.name,
                "quantity": str(item.quantity),  # Square quantities are decimal strings
                "base_price_money": _money_param(item.unit_amount),
                **({"note": item.description} if item.description else {}),
            }
            for item in line_items
        ],
    }
    if order_id:
        order["reference_id"] = order_id
    if customer_id:
        order["customer_id"] = customer_id
    return order


def customer_request(
    email: str | None, name: str | None, metadata: Mapping[str, str] | None, idempotency_key: str
) -> dict[str, Any]:
    if not email and not name:
        raise ValidationError("Square needs an email or a name to create a customer")
    kwargs: dict[str, Any] = {"idempotency_key": square_idempotency_key(idempotency_key)}
    if email:
        kwargs["email_address"] = email
    if name:
        given, _, family = name.strip().partition(" ")
        kwargs["given_name"] = given
        if family:
            kwargs["family_name"] = family
    if metadata:
        # Square customers have no metadata map: kept as JSON in the customer's note
        kwargs["note"] = json.dumps(dict(metadata), sort_keys=True)
    return kwargs


def subscription_request(
    location_id: str,
    customer_id: str,
    price_id: str,
    metadata: Mapping[str, str] | None,
    idempotency_key: str,
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "location_id": location_id,
        "customer_id": customer_id,
        "idempotency_key": square_idempotency_key(idempotency_key),
        "plan_variation_id": price_id,
    }
    if metadata and metadata.get("card_id"):
        kwargs["card_id"] = metadata["card_id"]
    return kwargs


def invoice_request(
    settings: SquareSettings, square_order_id: str, customer_id: str, description: str | None
) -> dict[str, Any]:
    """CreateInvoice's ``invoice`` for the order created for it."""
    due = datetime.now(timezone.utc).date() + timedelta(days=settings.invoice_due_days)
    invoice: dict[str, Any] = {
        "location_id": settings.location_id,
        "order_id": square_order_id,
        "primary_recipient": {"customer_id": customer_id},
        "payment_requests": [{"request_type": "BALANCE", "due_date": due.isoformat()}],
        "delivery_method": "EMAIL",
        "accepted_payment_methods": {"card": True},
    }
    if description:
        invoice["description"] = description
    return invoice


def _paid_payment_id(square_order_id: str, order: Mapping[str, Any]) -> str:
    """The payment of a paid order (a payment link's), else ``NotFound``."""
    paid = [t["payment_id"] for t in order.get("tenders") or [] if t.get("payment_id")]
    if not paid:
        raise NotFound(
            f"Square order {square_order_id!r} has no payment yet",
            provider=PROVIDER,
            code="NOT_FOUND",
        )
    payment_id: str = paid[0]
    return payment_id


def _with_order_reference(payment: Payment, order: Mapping[str, Any]) -> Payment:
    """``payment`` with the order id its Square order carries, when it has none itself."""
    if payment.order_id is None and order.get("reference_id"):
        return payment_from_square(
            payment.raw,
            order_id=order["reference_id"],
            refunds=[refund.raw for refund in payment.refunds],
        )
    return payment


def parse_webhook(
    settings: SquareSettings, body: bytes, headers: Mapping[str, str]
) -> WebhookEvent:
    """Verify the signature over the notification URL and body, then normalize (both faces)."""
    key = settings.webhook_signature_key
    url = settings.webhook_url
    if key is None or not url:
        raise ConfigurationError(
            "Square webhooks need webhook_signature_key and webhook_url "
            "(PAYGATE_SQUARE_WEBHOOK_SIGNATURE_KEY, PAYGATE_SQUARE_WEBHOOK_URL)"
        )
    if not isinstance(body, (bytes, bytearray)):
        raise MalformedPayload(f"webhook body must be bytes, got {type(body).__name__}")
    _square_webhook.verify(
        bytes(body), headers, signature_key=key.get_secret_value(), notification_url=url
    )
    return normalize_event(load_object(bytes(body), MalformedPayload, "Square webhook body"))


def _replace_total(session: CheckoutSession, total: Money) -> CheckoutSession:
    return dataclasses.replace(session, amount_total=total)


def _with_metadata(payment: Payment, metadata: Mapping[str, str] | None) -> Payment:
    # Square payments have no metadata field; the caller's metadata is returned as given
    if not metadata:
        return payment
    return dataclasses.replace(payment, metadata=dict(metadata))


# -- errors ------------------------------------------------------------------------------------


def _fetched(operation: str, fetch: Callable[[], Any], items: str) -> tuple[Any, dict[str, Any]]:
    """One page request: the SDK's pager and its page as a dict (``None, {}``: no page)."""
    pager = fetch()
    return (None, {}) if pager is None else (pager, _page_dict(operation, pager, items))


def _page_dict(operation: str, pager: Any, items: str) -> dict[str, Any]:
    """A pager's page as the list response's JSON (``items`` always present)."""
    response = getattr(pager, "response", None)  # older SDK pagers keep only the items
    body = {} if response is None else _checked(operation, response.dict())
    if not body.get(items):
        body[items] = [item.dict() for item in pager.items or []]
    return body


def _checked(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    errors = body.get("errors")
    if errors:  # Square may answer 200 with errors on some endpoints
        raise _error_from_codes(operation, errors, http_status=200, request_id=None)
    return body


def _request_id(headers: Mapping[str, str] | None) -> str | None:
    if not headers:
        return None
    for name in REQUEST_ID_HEADERS:
        value = _square_webhook.header(headers, name)
        if value:
            return value
    return None


def _error_from_api(operation: str, exc: ApiError) -> ProviderError:
    body = exc.body if isinstance(exc.body, Mapping) else {}
    errors = body.get("errors")
    request_id = _request_id(exc.headers)
    wait = retry_after_from(exc.headers)
    if not isinstance(errors, list) or not errors:
        # not Square's JSON error shape (a cut-off 200, a proxy's HTML page): the status
        # decides; a 2xx is OutcomeUnknown (Square may have charged), no 4xx but 429 retries
        return unexpected_response(
            PROVIDER, "Square", operation, exc.status_code, request_id=request_id,
            retry_after=wait, not_json=not isinstance(exc.body, Mapping),
        )  # fmt: skip
    error = _error_from_codes(operation, errors, http_status=exc.status_code, request_id=request_id)
    error.retry_after = wait
    return error


def _error_from_codes(
    operation: str,
    errors: Sequence[Any],
    *,
    http_status: int | None,
    request_id: str | None,
) -> ProviderError:
    first = errors[0] if errors and isinstance(errors[0], Mapping) else {}
    code = str(first.get("code") or "Unknown")
    category = str(first.get("category") or "")
    detail = first.get("detail")
    message = f"Square {operation} failed: {code}" + (f" ({detail})" if detail else "")
    common: dict[str, Any] = {
        "provider": PROVIDER,
        "code": code,
        "http_status": http_status,
        "request_id": request_id,
    }
    if code in DECLINE_CODES:
        if DECLINE_CODES[code] == "authentication_required":
            # Square keeps no payment to confirm later: payment_id stays None
            return AuthenticationRequired(message, **common)
        return CardDeclined(message, decline_code=DECLINE_CODES[code], **common)
    error_class = ERROR_CODES.get(code) or ERROR_CATEGORIES.get(category)
    if error_class is None:
        error_class = _error_class_for_status(http_status)
    if error_class is CardDeclined:
        return CardDeclined(message, decline_code="card_declined", **common)
    return error_class(message, **common)


def _error_class_for_status(http_status: int | None) -> type[ProviderError]:
    if http_status is None or http_status >= 500 or http_status == 408:
        return ProviderUnavailable
    if http_status in (401, 403):
        return AuthenticationError
    if http_status == 404:
        return NotFound
    if http_status == 429:
        return RateLimited
    return InvalidRequest


#: DisputeEvidence's text fields -> Square's evidence type for that text
SQUARE_EVIDENCE_TEXT_TYPES: Final[Mapping[str, str]] = {
    "explanation": "REBUTTAL_EXPLANATION",
    "product_description": "PRODUCT_OR_SERVICE_DESCRIPTION",
    "customer_name": "CARDHOLDER_INFORMATION",
    "customer_email": "CARDHOLDER_INFORMATION",
    "shipping_carrier": "PROOF_OF_DELIVERY_DOCUMENTATION",
    "tracking_number": "TRACKING_NUMBER",
    "service_date": "SERVICE_RECEIVED_DOCUMENTATION",
    "refund_policy": "CANCELLATION_OR_REFUND_DOCUMENTATION",
    "cancellation_policy": "CANCELLATION_OR_REFUND_DOCUMENTATION",
}
#: EvidenceFile.kind -> Square's evidence type
SQUARE_EVIDENCE_FILE_TYPES: Final[Mapping[str, str]] = {
    "receipt": "RECEIPT",
    "customer_communication": "CARDHOLDER_COMMUNICATION",
    "shipping_documentation": "PROOF_OF_DELIVERY_DOCUMENTATION",
    "service_documentation": "SERVICE_RECEIVED_DOCUMENTATION",
    "refund_policy": "CANCELLATION_OR_REFUND_DOCUMENTATION",
    "cancellation_policy": "CANCELLATION_OR_REFUND_DOCUMENTATION",
    "other": "GENERIC_EVIDENCE",
}


def square_evidence_texts(evidence: DisputeEvidence) -> list[tuple[str, str]]:
    """(evidence type, text) per text field given, labelled (two fields may share a type)."""
    texts = []
    for name in evidence.text_fields():
        value = getattr(evidence, name)
        if value is not None:
            label = name.replace("_", " ").capitalize()
            texts.append((SQUARE_EVIDENCE_TEXT_TYPES[name], f"{label}: {value}"[:500]))
    return texts


# -- request builders of issues 19 and 20, shared with the async twin ------------------------


def check_plan_only(trial_days: Any, trial_end: Any, quantity: Any) -> None:
    """Square's trials and quantities are the plan's: refuse them on ``create_subscription``."""
    if trial_days is not None or trial_end is not None or quantity != 1:
        raise NotSupported(
            "square: trials and quantities belong to the plan (a plan phase); "
            "create_subscription takes neither trial_days, trial_end nor quantity",
            provider=PROVIDER,
            code="not_supported",
        )


def subscription_search_query(location_id: str, customer_id: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {"filter": {"location_ids": [location_id]}}
    if customer_id is not None:
        query["filter"]["customer_ids"] = [customer_id]
    return query


def checked_swap(price_id: str | None, quantity: int | None, proration: str) -> str:
    """The plan variation to swap to; Square neither prorates nor counts seats."""
    if proration != "none":
        raise NotSupported(
            f"square cannot prorate (proration={proration!r}): a swapped plan bills from "
            "the next billing cycle; pass proration='none'",
            provider=PROVIDER,
            code="not_supported",
        )
    if quantity is not None:
        raise NotSupported(
            "square subscriptions have no quantity", provider=PROVIDER, code="not_supported"
        )
    if not isinstance(price_id, str) or not price_id:
        raise ValidationError("change_subscription needs price_id (a plan variation id)")
    return price_id


#: PauseSubscription's reason, as paygate sends it
PAUSE_REASON: Final = "Paused by the merchant"


def cancel_action_ids(subscription: Mapping[str, Any]) -> list[str]:
    """The ids of the subscription's scheduled ``CANCEL`` actions."""
    return [a["id"] for a in subscription.get("actions") or () if a.get("type") == "CANCEL"]


def no_invoice_retry() -> NotSupported:
    return NotSupported(
        "square has no call to charge an invoice again: the customer pays it at its "
        "public_url (Invoice.hosted_url), or Square retries the card on file itself",
        provider=PROVIDER,
        code="not_supported",
    )


def evidence_requests(
    dispute_id: str, evidence: Any
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """CreateDisputeEvidenceText and CreateDisputeEvidenceFile arguments, one per text field
    and per file, each with an idempotency key of its own content."""
    if not isinstance(evidence, DisputeEvidence):
        raise ValidationError(f"evidence must be a DisputeEvidence, got {type(evidence).__name__}")
    texts = [
        {
            "dispute_id": dispute_id,
            "idempotency_key": square_idempotency_key(f"{dispute_id}:text:{index}:{text}"),
            "evidence_type": evidence_type,
            "evidence_text": text,
        }
        for index, (evidence_type, text) in enumerate(square_evidence_texts(evidence))
    ]
    files = [
        {
            "dispute_id": dispute_id,
            "request": {
                "idempotency_key": square_idempotency_key(
                    f"{dispute_id}:file:{index}:{evidence_file.name}"
                ),
                "evidence_type": SQUARE_EVIDENCE_FILE_TYPES[evidence_file.kind],
                "content_type": evidence_file.content_type,
            },
            "image_file": (evidence_file.name, evidence_file.content, evidence_file.content_type),
        }
        for index, evidence_file in enumerate(evidence.files)
    ]
    return texts, files


def customer_update_request(
    customer_id: str,
    email: str | None,
    name: str | None,
    metadata: Mapping[str, str] | None,
    current_metadata: Mapping[str, str],
) -> dict[str, Any]:
    """UpdateCustomer's arguments; ``metadata`` merged into ``current_metadata`` (the note)."""
    kwargs: dict[str, Any] = {"customer_id": customer_id}
    if email is not None:
        kwargs["email_address"] = email
    if name is not None:
        given, _, family = name.strip().partition(" ")
        kwargs["given_name"] = given
        kwargs["family_name"] = family or None
    if metadata:
        kwargs["note"] = json.dumps({**current_metadata, **metadata}, sort_keys=True)
    return kwargs


def customer_search_query(email: str, page_size: int) -> dict[str, Any]:
    return {"query": {"filter": {"email_address": {"exact": email}}}, "limit": page_size}


def card_request(
    customer_id: str,
    idempotency_key: str,
    usage: str,
    payment_method: str | None,
    verification_token: str | None,
) -> dict[str, Any]:
    """CreateCard's arguments (a card on file from a Web Payments SDK token)."""
    if not isinstance(customer_id, str) or not customer_id:
        raise ValidationError("create_setup needs the customer_id to save the card for")
    if not payment_method:
        raise ValidationError(
            "Square saves a card from a Web Payments SDK token: pass it as "
            "payment_method (and the buyer's verification_token where SCA applies)"
        )
    if usage not in ("off_session", "on_session"):
        raise ValidationError(f"usage must be 'off_session' or 'on_session', got {usage!r}")
    kwargs: dict[str, Any] = {
        "idempotency_key": square_idempotency_key(idempotency_key),
        "source_id": payment_method,
        "card": {"customer_id": customer_id},
    }
    if verification_token:
        kwargs["verification_token"] = verification_token
    return kwargs


def setup_from_card(card: dict[str, Any], customer_id: str, usage: SetupUsage) -> SetupSession:
    """The (already finished) setup of a card saved by CreateCard."""
    method = payment_method_from_square(card)
    return SetupSession(
        id=method.id,
        provider=PROVIDER,
        status=SetupStatus.SUCCEEDED,
        customer_id=customer_id,
        payment_method_id=method.id,
        usage=usage,
        created_at=method.created_at,
        raw=card,
    )
