"""PayPal adapter: Orders v2, Payments v2 refunds, Subscriptions, Disputes, Invoicing v2.

``paypalrestsdk`` serves as the OAuth and HTTP transport only (its resource classes speak
the deprecated v1 Payments API); see `paygate.providers._paypal_http` for the SDK
quirks paygate neutralizes and `paygate.providers._paypal_verify` for the offline
webhook verification that replaces the SDK's.

Ids: ``Payment.id`` is the PayPal **order** id (what the buyer approves, and the ``token``
PayPal appends to the return URL). ``Payment.charge_id`` is the **capture** id once the order
is captured; ``Payment.metadata`` keeps ``paypal_order_id``, ``paypal_capture_id`` and
``paypal_authorization_id``. ``get_payment``, ``capture_payment``, ``cancel_payment`` and
``refund_payment`` take the order id. The application's order id travels as the purchase
unit's ``custom_id`` and ``invoice_id`` and comes back as ``Payment.order_id``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Final, Literal, TypeAlias, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from paygate._config import settings_error
from paygate._json import load_object
from paygate._observe import fields
from paygate._retry import RetryPolicy, call_with
from paygate.errors import (
    AuthenticationError,
    AuthenticationRequired,
    CardDeclined,
    ConfigurationError,
    IdempotencyConflict,
    InvalidAmount,
    InvalidRequest,
    InvalidSignature,
    MalformedPayload,
    NotFound,
    NotSupported,
    PaygateError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    TimestampOutsideTolerance,
    ValidationError,
)
from paygate.models import (
    CaptureMethod,
    CheckoutMode,
    CheckoutSession,
    CheckoutStatus,
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
from paygate.providers._flow import run as run_flow
from paygate.providers._paypal_http import PayPalTransport
from paygate.providers._paypal_verify import (
    CertFetcher,
    OfflineVerifier,
    fetch_certificate,
    parse_transmission_time,
    read_headers,
)
from paygate.providers._window import aware, check_page_size, check_window, rfc3339

__all__ = ["PayPalProvider", "PayPalSettings"]

log = logging.getLogger("paygate.providers.paypal")


# The async face lives in its own module, imported on first use (__getattr__); type
# checkers see it here. (A local TYPE_CHECKING, which mypy and pyright recognize by name,
# leaves this module's imports as they were.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from paygate.providers._paypal_aio import AsyncPayPalProvider as AsyncPayPalProvider


def __getattr__(name: str) -> Any:
    if name == "AsyncPayPalProvider":
        from paygate.providers._paypal_aio import AsyncPayPalProvider

        return AsyncPayPalProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ==========================================================================================
# Mapping tables: PayPal's words -> paygate's. Data first, code below.
# ==========================================================================================

#: Orders v2 ``order.status`` (used when the order has no capture or authorization yet)
ORDER_STATUS: Final[Mapping[str, PaymentStatus]] = {
    "CREATED": PaymentStatus.REQUIRES_ACTION,  # waiting for the buyer to approve
    "PAYER_ACTION_REQUIRED": PaymentStatus.REQUIRES_ACTION,
    "SAVED": PaymentStatus.PENDING,
    "APPROVED": PaymentStatus.PROCESSING,  # approved by the buyer, not yet captured by us
    "VOIDED": PaymentStatus.CANCELED,
    "COMPLETED": PaymentStatus.SUCCEEDED,
}

#: Payments v2 ``capture.status``
CAPTURE_STATUS: Final[Mapping[str, PaymentStatus]] = {
    "COMPLETED": PaymentStatus.SUCCEEDED,
    "PENDING": PaymentStatus.PROCESSING,
    "DECLINED": PaymentStatus.FAILED,
    "FAILED": PaymentStatus.FAILED,
    "PARTIALLY_REFUNDED": PaymentStatus.PARTIALLY_REFUNDED,
    "REFUNDED": PaymentStatus.REFUNDED,
}

#: Payments v2 ``authorization.status``
AUTHORIZATION_STATUS: Final[Mapping[str, PaymentStatus]] = {
    "CREATED": PaymentStatus.AUTHORIZED,
    "PENDING": PaymentStatus.PROCESSING,
    "DENIED": PaymentStatus.FAILED,
    "VOIDED": PaymentStatus.CANCELED,
    "CAPTURED": PaymentStatus.SUCCEEDED,
    "PARTIALLY_CAPTURED": PaymentStatus.SUCCEEDED,
}

#: Payments v2 ``refund.status``
REFUND_STATUS: Final[Mapping[str, RefundStatus]] = {
    "COMPLETED": RefundStatus.SUCCEEDED,
    "PENDING": RefundStatus.PENDING,
    "FAILED": RefundStatus.FAILED,
    "CANCELLED": RefundStatus.CANCELED,
}

#: Subscriptions v1 ``subscription.status``
SUBSCRIPTION_STATUS: Final[Mapping[str, SubscriptionStatus]] = {
    "APPROVAL_PENDING": SubscriptionStatus.PENDING,
    "APPROVED": SubscriptionStatus.INCOMPLETE,  # approved, not yet active (first payment)
    "ACTIVE": SubscriptionStatus.ACTIVE,
    "SUSPENDED": SubscriptionStatus.PAUSED,
    "CANCELLED": SubscriptionStatus.CANCELED,
    "EXPIRED": SubscriptionStatus.CANCELED,
}

#: Disputes v1 ``dispute.status`` (``RESOLVED`` is decided by `DISPUTE_OUTCOME`)
DISPUTE_STATUS: Final[Mapping[str, DisputeStatus]] = {
    "OPEN": DisputeStatus.OPEN,
    "WAITING_FOR_SELLER_RESPONSE": DisputeStatus.OPEN,
    "WAITING_FOR_BUYER_RESPONSE": DisputeStatus.UNDER_REVIEW,
    "UNDER_REVIEW": DisputeStatus.UNDER_REVIEW,
    "OTHER": DisputeStatus.UNDER_REVIEW,
}

#: Disputes v1 ``reason`` -> DisputeReason
DISPUTE_REASONS: Final[Mapping[str, DisputeReason]] = {
    "MERCHANDISE_OR_SERVICE_NOT_RECEIVED": DisputeReason.PRODUCT_NOT_RECEIVED,
    "MERCHANDISE_OR_SERVICE_NOT_AS_DESCRIBED": DisputeReason.PRODUCT_UNACCEPTABLE,
    "UNAUTHORISED": DisputeReason.FRAUDULENT,
    "CREDIT_NOT_PROCESSED": DisputeReason.CREDIT_NOT_PROCESSED,
    "DUPLICATE_TRANSACTION": DisputeReason.DUPLICATE,
    "INCORRECT_AMOUNT": DisputeReason.INCORRECT_AMOUNT,
    "PAYMENT_BY_OTHER_MEANS": DisputeReason.DUPLICATE,
    "CANCELED_RECURRING_BILLING": DisputeReason.SUBSCRIPTION_CANCELED,
    "PROBLEM_WITH_REMITTANCE": DisputeReason.GENERAL,
    "OTHER": DisputeReason.GENERAL,
}

#: Disputes v1 ``dispute_outcome.outcome_code`` of a ``RESOLVED`` dispute
DISPUTE_OUTCOME: Final[Mapping[str, DisputeStatus]] = {
    "RESOLVED_SELLER_FAVOUR": DisputeStatus.WON,
    "DENIED": DisputeStatus.WON,
    "CANCELED_BY_BUYER": DisputeStatus.WON,  # the merchant keeps the money
    "RESOLVED_BUYER_FAVOUR": DisputeStatus.LOST,
    "ACCEPTED": DisputeStatus.LOST,  # the merchant accepted the claim
    "RESOLVED_WITH_PAYOUT": DisputeStatus.LOST,
    "NONE": DisputeStatus.CLOSED,
}

#: Invoicing v2 ``invoice.status``
INVOICE_STATUS: Final[Mapping[str, InvoiceStatus]] = {
    "DRAFT": InvoiceStatus.DRAFT,
    "SENT": InvoiceStatus.OPEN,
    "SCHEDULED": InvoiceStatus.OPEN,
    "UNPAID": InvoiceStatus.OPEN,
    "PARTIALLY_PAID": InvoiceStatus.OPEN,
    "PAYMENT_PENDING": InvoiceStatus.OPEN,
    "PAID": InvoiceStatus.PAID,
    "MARKED_AS_PAID": InvoiceStatus.PAID,
    "CANCELLED": InvoiceStatus.VOID,
    "REFUNDED": InvoiceStatus.REFUNDED,
    "PARTIALLY_REFUNDED": InvoiceStatus.REFUNDED,
    "MARKED_AS_REFUNDED": InvoiceStatus.REFUNDED,
}

#: Webhook ``event_type`` -> (paygate event type, kind of ``resource``). ``None`` as the type
#: means "decided by the resource": a completed order by its payment's status
#: (`PAYMENT_STATUS_EVENTS`), a resolved dispute by its outcome.
EVENT_TYPES: Final[Mapping[str, tuple[EventType | None, str]]] = {
    "CHECKOUT.ORDER.APPROVED": (EventType.PAYMENT_PROCESSING, "order"),
    # completed = all captures made, but a capture may still be PENDING: by the order's status
    "CHECKOUT.ORDER.COMPLETED": (None, "order"),
    "CHECKOUT.ORDER.VOIDED": (EventType.PAYMENT_CANCELED, "order"),
    "PAYMENT.CAPTURE.COMPLETED": (EventType.PAYMENT_SUCCEEDED, "capture"),
    "PAYMENT.CAPTURE.PENDING": (EventType.PAYMENT_PROCESSING, "capture"),
    "PAYMENT.CAPTURE.DENIED": (EventType.PAYMENT_FAILED, "capture"),
    "PAYMENT.CAPTURE.DECLINED": (EventType.PAYMENT_FAILED, "capture"),
    # the resource is the refund: its status decides (`REFUND_STATUS_EVENTS`), so a
    # refund PayPal reports FAILED or CANCELLED is a failed refund, not a counted one
    "PAYMENT.CAPTURE.REFUNDED": (None, "refund"),
    # a reversal takes the money back like a refund (the resource is a refund object)
    "PAYMENT.CAPTURE.REVERSED": (None, "refund"),
    "PAYMENT.AUTHORIZATION.CREATED": (EventType.PAYMENT_AUTHORIZED, "authorization"),
    "PAYMENT.AUTHORIZATION.VOIDED": (EventType.PAYMENT_CANCELED, "authorization"),
    "BILLING.SUBSCRIPTION.CREATED": (EventType.SUBSCRIPTION_CREATED, "subscription"),
    "BILLING.SUBSCRIPTION.ACTIVATED": (EventType.SUBSCRIPTION_UPDATED, "subscription"),
    "BILLING.SUBSCRIPTION.UPDATED": (EventType.SUBSCRIPTION_UPDATED, "subscription"),
    "BILLING.SUBSCRIPTION.RE-ACTIVATED": (EventType.SUBSCRIPTION_UPDATED, "subscription"),
    "BILLING.SUBSCRIPTION.SUSPENDED": (EventType.SUBSCRIPTION_UPDATED, "subscription"),
    "BILLING.SUBSCRIPTION.EXPIRED": (EventType.SUBSCRIPTION_CANCELED, "subscription"),
    "BILLING.SUBSCRIPTION.CANCELLED": (EventType.SUBSCRIPTION_CANCELED, "subscription"),
    "BILLING.SUBSCRIPTION.PAYMENT.FAILED": (EventType.SUBSCRIPTION_PAYMENT_FAILED, "subscription"),
    # a subscription's payment (PayPal bills a cycle as a sale of its billing agreement)
    "PAYMENT.SALE.COMPLETED": (EventType.INVOICE_PAID, "sale"),
    "CUSTOMER.DISPUTE.CREATED": (EventType.DISPUTE_OPENED, "dispute"),
    "CUSTOMER.DISPUTE.UPDATED": (EventType.DISPUTE_UPDATED, "dispute"),
    "CUSTOMER.DISPUTE.RESOLVED": (None, "dispute"),
    "INVOICING.INVOICE.CREATED": (EventType.INVOICE_CREATED, "invoice"),
    "INVOICING.INVOICE.PAID": (EventType.INVOICE_PAID, "invoice"),
    "INVOICING.INVOICE.CANCELLED": (EventType.INVOICE_VOIDED, "invoice"),
    "INVOICING.INVOICE.REFUNDED": (EventType.INVOICE_REFUNDED, "invoice"),
    "VAULT.PAYMENT-TOKEN.CREATED": (EventType.PAYMENT_METHOD_ATTACHED, "payment_token"),
    "VAULT.PAYMENT-TOKEN.DELETED": (EventType.PAYMENT_METHOD_DETACHED, "payment_token"),
}

#: Vault v3 setup token status -> SetupStatus. APPROVED still needs paygate's call that
#: makes the payment token (``complete_setup``); VAULTED/TOKENIZED have one.
SETUP_TOKEN_STATUS: Final[Mapping[str, SetupStatus]] = {
    "CREATED": SetupStatus.REQUIRES_ACTION,
    "PAYER_ACTION_REQUIRED": SetupStatus.REQUIRES_ACTION,
    "APPROVED": SetupStatus.REQUIRES_ACTION,
    "VAULTED": SetupStatus.SUCCEEDED,
    "TOKENIZED": SetupStatus.SUCCEEDED,
}

#: Vault v3 payment token ``payment_source`` key -> PaymentMethodKind
VAULT_SOURCE_KINDS: Final[Mapping[str, PaymentMethodKind]] = {
    "paypal": PaymentMethodKind.PAYPAL,
    "card": PaymentMethodKind.CARD,
    "venmo": PaymentMethodKind.WALLET,
    "apple_pay": PaymentMethodKind.WALLET,
    "bank": PaymentMethodKind.BANK_ACCOUNT,
}

#: GET /v3/vault/payment-tokens: tokens per page (PayPal's own maximum is 20)
VAULT_PAGE_SIZE: Final = 20

#: How a completed order's payment status reads as an event.
PAYMENT_STATUS_EVENTS: Final[Mapping[PaymentStatus, EventType]] = {
    PaymentStatus.SUCCEEDED: EventType.PAYMENT_SUCCEEDED,
    PaymentStatus.PARTIALLY_REFUNDED: EventType.PAYMENT_SUCCEEDED,
    PaymentStatus.REFUNDED: EventType.PAYMENT_SUCCEEDED,
    PaymentStatus.PROCESSING: EventType.PAYMENT_PROCESSING,
    PaymentStatus.AUTHORIZED: EventType.PAYMENT_AUTHORIZED,
    PaymentStatus.FAILED: EventType.PAYMENT_FAILED,
    PaymentStatus.CANCELED: EventType.PAYMENT_CANCELED,
}

#: How a refund event reads by the refund's status (PayPal names no separate event for a
#: refund that fails: the refund resource's ``status`` says so).
REFUND_STATUS_EVENTS: Final[Mapping[RefundStatus, EventType]] = {
    RefundStatus.SUCCEEDED: EventType.REFUND_SUCCEEDED,
    RefundStatus.PENDING: EventType.REFUND_CREATED,
    RefundStatus.FAILED: EventType.REFUND_FAILED,
    RefundStatus.CANCELED: EventType.REFUND_FAILED,
}

#: How a resolved dispute's status reads as an event.
DISPUTE_RESOLUTION_EVENTS: Final[Mapping[DisputeStatus, EventType]] = {
    DisputeStatus.WON: EventType.DISPUTE_WON,
    DisputeStatus.LOST: EventType.DISPUTE_LOST,
}

#: Error ``details[].issue`` codes that mean the buyer's funding was declined.
DECLINE_ISSUES: Final[Mapping[str, str]] = {
    "INSTRUMENT_DECLINED": "card_declined",
    "TRANSACTION_REFUSED": "card_declined",
    "PAYER_CANNOT_PAY": "card_declined",
    "PAYER_ACCOUNT_RESTRICTED": "card_declined",
    "PAYER_ACCOUNT_LOCKED_OR_CLOSED": "card_declined",
    "CARD_CLOSED": "card_declined",
    "CARD_EXPIRED": "expired_card",
    "INVALID_SECURITY_CODE_LENGTH": "incorrect_cvc",
    "CARD_TYPE_NOT_SUPPORTED": "card_not_supported",
    "CURRENCY_NOT_SUPPORTED_FOR_CARD_TYPE": "currency_not_supported",
    "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED": "limit_exceeded",
    "TRANSACTION_LIMIT_EXCEEDED": "limit_exceeded",
    "COMPLIANCE_VIOLATION": "do_not_honor",
    "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING": "card_declined",
}

#: Issue codes that mean "this id or key was already used for something else".
CONFLICT_ISSUES: Final[frozenset[str]] = frozenset(
    {"DUPLICATE_INVOICE_ID", "DUPLICATE_REQUEST_ID", "DUPLICATE_INVOICE_NUMBER"}
)

#: Issue codes of a capture/authorize that another request already did: not an error on return.
_ALREADY_DONE_ISSUES: Final[frozenset[str]] = frozenset(
    {"ORDER_ALREADY_CAPTURED", "ORDER_ALREADY_AUTHORIZED"}
)

#: HTTP status -> error class (5xx not listed -> ProviderUnavailable, other 4xx -> InvalidRequest;
#: only 5xx, 429 and 408, a request the server did not wait for, are retried)
HTTP_ERRORS: Final[Mapping[int, type[ProviderError]]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFound,
    408: ProviderUnavailable,
    409: IdempotencyConflict,
    422: InvalidRequest,
    429: RateLimited,
}

#: Currencies PayPal's REST API accepts, and those it takes without decimals although ISO
#: 4217 gives them two (HUF, TWD): PayPal refuses "10.50 HUF", so paygate does too, early.
PAYPAL_CURRENCIES: Final[frozenset[str]] = frozenset(
    {
        "AUD", "BRL", "CAD", "CNY", "CZK", "DKK", "EUR", "HKD", "HUF", "ILS", "JPY", "MYR",
        "MXN", "TWD", "NZD", "NOK", "PHP", "PLN", "GBP", "SGD", "SEK", "CHF", "THB", "USD",
    }
)  # fmt: skip
PAYPAL_WHOLE_UNIT_CURRENCIES: Final[frozenset[str]] = frozenset({"HUF", "JPY", "TWD"})

_API_HOSTS: Final[Mapping[str, str]] = {
    "sandbox": "https://api-m.sandbox.paypal.com",
    "live": "https://api-m.paypal.com",
}
_MAX_REQUEST_ID = 108  # PayPal-Request-Id maxLength in the Orders v2 spec
_MAX_REFERENCE = 127  # custom_id / invoice_id maxLength
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_CAPTURE_LINKS_KEPT = 4096  # capture id -> order id links remembered per provider

#: Transaction Search (``iter_transaction_pages``): the path, the fixed query parameters,
#: PayPal's largest page and its longest date range for one request
TRANSACTION_SEARCH_PATH: Final = "/v1/reporting/transactions"
TRANSACTION_SEARCH_QUERY: Final[Mapping[str, str]] = {"fields": "all"}
TRANSACTION_SEARCH_MAX_PAGE: Final = 500
TRANSACTION_SEARCH_MAX_RANGE: Final = timedelta(days=31)
_VAULT_ID = re.compile(r"[0-9a-zA-Z_-]{1,255}")  # the Orders v2 spec's vault_id pattern
#: the Vault v3 spec's merchant_partner_customer_id
_VAULT_CUSTOMER_ID = re.compile(r"[0-9a-zA-Z_-]{1,22}")


# ==========================================================================================
# Settings
# ==========================================================================================


class PayPalSettings(BaseModel):
    """Validated adapter settings (``PAYGATE_PAYPAL_<NAME>`` in the environment)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, hide_input_in_errors=True
    )

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    webhook_id: str | None = None
    mode: Literal["sandbox", "live"] = "sandbox"
    #: override the API host (a local fake or a proxy); http is allowed for 127.0.0.1 fakes
    base_url: str | None = None
    #: seconds one request may take; the Gateway's retry budget (a deadline) cuts it further
    timeout: float = Field(default=10.0, gt=0)
    #: how many times the Gateway retries a retryable error (the adapter never retries)
    max_retries: int | None = Field(default=None, ge=0)
    #: "offline": verify signatures locally with the certificate; "api": ask PayPal
    verification: Literal["offline", "api"] = "offline"
    #: seconds a webhook's transmission time may differ from now
    webhook_tolerance: int = Field(default=300, gt=0)
    #: url -> certificate PEM; tests inject a local one. Only PayPal's hosts are ever asked.
    cert_fetcher: Callable[[str], bytes] | None = None

    @field_validator("client_secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            # the client secret travels in the token request: plain http only to this machine
            raise ValueError("must be an https URL (http only for localhost/127.0.0.1 fakes)")
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https URL")
        return value


# ==========================================================================================
# Translation helpers (pure)
# ==========================================================================================


def _money_field(amount: Money) -> dict[str, str]:
    """``{"currency_code", "value"}`` as PayPal wants it; refuses what PayPal would refuse."""
    if not isinstance(amount, Money):
        raise InvalidAmount(f"amount must be Money, got {type(amount).__name__}")
    if amount.currency not in PAYPAL_CURRENCIES:
        raise ValidationError(f"PayPal does not accept {amount.currency} ({amount})")
    value = amount.to_decimal()
    if amount.currency in PAYPAL_WHOLE_UNIT_CURRENCIES:
        if value != value.to_integral_value():
            raise InvalidAmount(f"PayPal takes {amount.currency} in whole units only, got {amount}")
        value = value.quantize(1)
    return {"currency_code": amount.currency, "value": f"{value:f}"}


def _parse_money(field: Any, what: str) -> Money:
    if not isinstance(field, Mapping) or "value" not in field or "currency_code" not in field:
        raise MalformedPayload(f"PayPal {what} has no amount")
    return Money.of(str(field["value"]), str(field["currency_code"]))


def _positive(amount: Money, what: str) -> dict[str, str]:
    if isinstance(amount, Money) and amount.amount <= 0:
        raise InvalidAmount(f"{what} must be positive, got {amount}")
    return _money_field(amount)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00:00+01:00
        return None


def _search_slices(since: datetime, until: datetime) -> Iterator[tuple[datetime, datetime]]:
    """``[since, until)`` as consecutive slices of at most 31 days, in order."""
    start = since
    while start < until:
        end = min(start + TRANSACTION_SEARCH_MAX_RANGE, until)
        yield start, end
        start = end


def _total_pages(page: Mapping[str, Any]) -> int:
    value = page.get("total_pages", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProviderUnavailable(
            f"PayPal Transaction Search answered with total_pages={value!r}",
            provider="paypal",
            code="invalid_response",
        )
    return value


def _transaction_id(detail: Any) -> Any:
    info = detail.get("transaction_info") if isinstance(detail, Mapping) else None
    return info.get("transaction_id") if isinstance(info, Mapping) else None


def _ids_dated_from(details: Sequence[Any], cut: datetime) -> Iterator[str]:
    """Ids of the transactions dated (initiated or updated) at ``cut`` or later: the only
    ones the next slice, which starts at ``cut``, can list again."""
    for detail in details:
        info = detail.get("transaction_info") if isinstance(detail, Mapping) else None
        if not isinstance(info, Mapping) or not info.get("transaction_id"):
            continue
        dates = (
            _parse_time(info.get("transaction_initiation_date")),
            _parse_time(info.get("transaction_updated_date")),
        )
        if any(d is not None and d >= cut for d in dates):
            yield str(info["transaction_id"])


def _link(resource: Mapping[str, Any], *rels: str) -> str | None:
    for link in resource.get("links") or ():
        if isinstance(link, Mapping) and link.get("rel") in rels:
            href = link.get("href")
            return str(href) if href else None
    return None


def _request_id(idempotency_key: str) -> str:
    """PayPal-Request-Id from the Gateway's key: as is when it fits, else a stable hash."""
    if not isinstance(idempotency_key, str) or not idempotency_key:
        raise ValidationError("idempotency_key must be a non-empty str")
    if len(idempotency_key) <= _MAX_REQUEST_ID and idempotency_key.isascii():
        return idempotency_key
    return "pg-" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def _check_reference(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_REFERENCE:
        raise ValidationError(
            f"{what} must be a non-empty str of at most {_MAX_REFERENCE} characters for PayPal, "
            f"got {value!r}"
        )
    return value


def _path_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty str, got {value!r}")
    return quote(value, safe="")


def _related_ids(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    supplementary = resource.get("supplementary_data") or {}
    related = supplementary.get("related_ids") if isinstance(supplementary, Mapping) else None
    return related if isinstance(related, Mapping) else {}


def _order_reference(resource: Mapping[str, Any]) -> str | None:
    value = resource.get("custom_id") or resource.get("invoice_id")
    return str(value) if value else None


def _failure(resource: Mapping[str, Any], status: PaymentStatus) -> PaymentFailure | None:
    if status is not PaymentStatus.FAILED:
        return None
    details = resource.get("status_details") or {}
    reason = str(details.get("reason") or resource.get("status") or "DECLINED")
    return PaymentFailure(code=reason, message=f"PayPal: {reason}", decline_code="card_declined")


def _payment_from_order(order: Mapping[str, Any]) -> Payment:
    """An Orders v2 order (with its captures, authorizations, refunds) as a Payment."""
    order_id = str(order["id"])
    units = order.get("purchase_units") or [{}]
    unit: Mapping[str, Any] = units[0]
    amount = _parse_money(unit.get("amount"), f"order {order_id}")
    payments = unit.get("payments") or {}
    captures = list(payments.get("captures") or [])
    authorizations = list(payments.get("authorizations") or [])
    refunds = list(payments.get("refunds") or [])
    zero = Money(0, amount.currency)
    captured = refunded = zero
    charge: Mapping[str, Any] | None = None
    authorization = authorizations[-1] if authorizations else None
    failure: PaymentFailure | None = None
    if captures:
        settled = [
            c
            for c in captures
            if CAPTURE_STATUS.get(c.get("status", ""))
            in (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
        ]
        charge = settled[-1] if settled else captures[-1]
        for capture in settled:
            captured += _parse_money(capture.get("amount"), f"capture {capture.get('id')}")
        for refund in refunds:
            if REFUND_STATUS.get(refund.get("status", "")) is RefundStatus.SUCCEEDED:
                refunded += _parse_money(refund.get("amount"), f"refund {refund.get('id')}")
        if settled:
            if refunded.amount == 0 and any(c.get("status") == "REFUNDED" for c in settled):
                refunded = captured  # fully refunded but the order omits the refund list
            status = (
                PaymentStatus.SUCCEEDED
                if refunded.amount == 0
                else PaymentStatus.REFUNDED
                if refunded >= captured
                else PaymentStatus.PARTIALLY_REFUNDED
            )
        else:
            status = CAPTURE_STATUS.get(str(charge.get("status")), PaymentStatus.PROCESSING)
            failure = _failure(charge, status)
    elif authorization is not None:
        status = AUTHORIZATION_STATUS.get(str(authorization.get("status")), PaymentStatus.PENDING)
        failure = _failure(authorization, status)
    else:
        status = ORDER_STATUS.get(str(order.get("status")), PaymentStatus.PENDING)
    metadata = {"paypal_order_id": order_id}
    if order.get("intent"):
        metadata["paypal_intent"] = str(order["intent"])
    reference = _order_reference(unit)
    listed = tuple(
        _refund_from(refund, payment_id=order_id, order_id=reference)
        for refund in refunds
        if isinstance(refund, Mapping) and refund.get("id")
    )
    if charge is not None:
        metadata["paypal_capture_id"] = str(charge["id"])
    if authorization is not None:
        metadata["paypal_authorization_id"] = str(authorization["id"])
    redirect = (
        _link(order, "approve", "payer-action") if status is PaymentStatus.REQUIRES_ACTION else None
    )
    return Payment(
        id=order_id,
        provider="paypal",
        order_id=reference,
        amount=amount,
        status=status,
        amount_captured=captured,
        amount_refunded=refunded,
        redirect_url=redirect,
        failure=failure,
        created_at=_parse_time(order.get("create_time")),
        charge_id=str(charge["id"]) if charge is not None else None,
        metadata=metadata,
        refunds=listed,
        raw=order,
    )


def _payment_from_capture(capture: Mapping[str, Any]) -> Payment:
    """A capture resource (webhook) as a Payment whose id is its order's id when known."""
    capture_id = str(capture["id"])
    amount = _parse_money(capture.get("amount"), f"capture {capture_id}")
    status = CAPTURE_STATUS.get(str(capture.get("status")), PaymentStatus.PROCESSING)
    related = _related_ids(capture)
    paypal_order = str(related.get("order_id") or capture_id)
    settled = status in (
        PaymentStatus.SUCCEEDED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
    )
    metadata = {"paypal_order_id": paypal_order, "paypal_capture_id": capture_id}
    if related.get("authorization_id"):
        metadata["paypal_authorization_id"] = str(related["authorization_id"])
    return Payment(
        id=paypal_order,
        provider="paypal",
        order_id=_order_reference(capture),
        amount=amount,
        status=status,
        amount_captured=amount if settled else None,
        failure=_failure(capture, status),
        created_at=_parse_time(capture.get("create_time")),
        charge_id=capture_id,
        metadata=metadata,
        raw=capture,
    )


def _payment_from_authorization(authorization: Mapping[str, Any]) -> Payment:
    authorization_id = str(authorization["id"])
    amount = _parse_money(authorization.get("amount"), f"authorization {authorization_id}")
    status = AUTHORIZATION_STATUS.get(str(authorization.get("status")), PaymentStatus.PENDING)
    related = _related_ids(authorization)
    paypal_order = str(related.get("order_id") or authorization_id)
    return Payment(
        id=paypal_order,
        provider="paypal",
        order_id=_order_reference(authorization),
        amount=amount,
        status=status,
        failure=_failure(authorization, status),
        created_at=_parse_time(authorization.get("create_time")),
        metadata={"paypal_order_id": paypal_order, "paypal_authorization_id": authorization_id},
        raw=authorization,
    )


def _capture_id_from_links(refund: Mapping[str, Any]) -> str | None:
    href = _link(refund, "up")
    if href and "/captures/" in href:
        return href.rstrip("/").rsplit("/", 1)[-1]
    return None


def _refund_from(
    refund: Mapping[str, Any],
    *,
    payment_id: str | None = None,
    order_id: str | None = None,
    fallback_amount: Money | None = None,
    reason: str | None = None,
) -> Refund:
    refund_id = str(refund["id"])
    if refund.get("amount") is not None:
        amount = abs(_parse_money(refund.get("amount"), f"refund {refund_id}"))
    elif fallback_amount is not None:
        amount = fallback_amount
    else:
        raise MalformedPayload(f"PayPal refund {refund_id} has no amount")
    related = _related_ids(refund)
    owner = payment_id or related.get("order_id") or _capture_id_from_links(refund)
    if not owner:
        raise MalformedPayload(f"PayPal refund {refund_id} names no capture or order")
    details = refund.get("status_details") or {}
    return Refund(
        id=refund_id,
        provider="paypal",
        payment_id=str(owner),
        amount=amount,
        status=REFUND_STATUS.get(str(refund.get("status")), RefundStatus.PENDING),
        reason=reason or refund.get("note_to_payer"),
        order_id=order_id or _order_reference(refund),
        created_at=_parse_time(refund.get("create_time")),
        failure_reason=details.get("reason"),
        raw=refund,
    )


def _subscription_from(subscription: Mapping[str, Any]) -> Subscription:
    status = SUBSCRIPTION_STATUS.get(str(subscription.get("status")), SubscriptionStatus.INCOMPLETE)
    billing = subscription.get("billing_info") or {}
    if status is SubscriptionStatus.ACTIVE and _owes(billing):
        # PayPal keeps a subscription ACTIVE while it retries a failed payment: past due
        status = SubscriptionStatus.PAST_DUE
    last_payment = billing.get("last_payment") or {}
    return Subscription(
        id=str(subscription["id"]),
        provider="paypal",
        customer_id=subscription.get("custom_id"),
        price_id=subscription.get("plan_id"),
        status=status,
        current_period_end=_parse_time(billing.get("next_billing_time")),
        redirect_url=_link(subscription, "approve")
        if status is SubscriptionStatus.PENDING
        else None,
        raw=subscription,
        quantity=int(subscription.get("quantity") or 1),
        # the last payment starts the period it paid for (PayPal names no period start)
        current_period_start=_parse_time(last_payment.get("time")),
        updated_at=_parse_time(subscription.get("status_update_time"))
        if subscription.get("update_time") is None
        else _parse_time(subscription.get("update_time")),
    )


def _owes(billing: Mapping[str, Any]) -> bool:
    """A failed payment not yet made good: ``failed_payments_count`` with a balance."""
    balance = (billing.get("outstanding_balance") or {}).get("value") or "0"
    try:
        owed = float(balance) > 0  # a sign test only; amounts are never read as floats
    except ValueError:
        owed = False
    return bool(billing.get("failed_payments_count")) and owed


def _dispute_status(dispute: Mapping[str, Any]) -> DisputeStatus:
    status = str(dispute.get("status"))
    if status == "RESOLVED":
        outcome = (dispute.get("dispute_outcome") or {}).get("outcome_code", "NONE")
        return DISPUTE_OUTCOME.get(str(outcome), DisputeStatus.CLOSED)
    return DISPUTE_STATUS.get(status, DisputeStatus.OPEN)


def _dispute_from(dispute: Mapping[str, Any]) -> Dispute:
    dispute_id = str(dispute["dispute_id"])
    transactions = dispute.get("disputed_transactions") or [{}]
    transaction: Mapping[str, Any] = transactions[0]
    order_ref = transaction.get("custom") or transaction.get("invoice_number")
    return Dispute(
        id=dispute_id,
        provider="paypal",
        # PayPal names the disputed capture (seller_transaction_id), not the order
        payment_id=transaction.get("seller_transaction_id"),
        amount=_parse_money(dispute.get("dispute_amount"), f"dispute {dispute_id}"),
        status=_dispute_status(dispute),
        reason=dispute.get("reason"),
        order_id=str(order_ref) if order_ref else None,
        evidence_due_by=_parse_time(dispute.get("seller_response_due_date")),
        created_at=_parse_time(dispute.get("create_time")),
        raw=dispute,
        reason_code=DISPUTE_REASONS.get(str(dispute.get("reason")), DisputeReason.GENERAL),
        evidence_submitted=any(
            isinstance(e, Mapping) and e.get("source") == "SUBMITTED_BY_SELLER"
            for e in dispute.get("evidences") or ()
        ),
    )


def _invoice_from(invoice: Mapping[str, Any], *, fallback_total: Money | None = None) -> Invoice:
    invoice_id = str(invoice["id"])
    detail = invoice.get("detail") or {}
    amount = invoice.get("amount")
    # a draft's amount summary may carry only its currency (``value`` is optional in
    # Invoicing v2's amount_summary_detail): then the total the caller knows stands
    if isinstance(amount, Mapping) and amount.get("value") is not None:
        total = _parse_money(amount, f"invoice {invoice_id}")
    elif fallback_total is not None:
        total = fallback_total
    else:
        raise MalformedPayload(f"PayPal invoice {invoice_id} has no amount")
    paid_field = (invoice.get("payments") or {}).get("paid_amount")
    recipients = invoice.get("primary_recipients") or [{}]
    email = (recipients[0].get("billing_info") or {}).get("email_address")
    reference = detail.get("reference")
    metadata = detail.get("metadata") or {}
    return Invoice(
        id=invoice_id,
        provider="paypal",
        customer_id=email,
        status=INVOICE_STATUS.get(str(invoice.get("status")), InvoiceStatus.DRAFT),
        amount_due=total,
        amount_paid=_parse_money(paid_field, f"invoice {invoice_id}") if paid_field else None,
        order_id=str(reference) if reference else None,
        number=detail.get("invoice_number"),
        hosted_url=metadata.get("recipient_view_url"),
        due_at=_parse_time((detail.get("payment_term") or {}).get("due_date")),
        created_at=_parse_time(metadata.get("create_time")),
        raw=invoice,
    )


def _check_vault_customer(customer_id: str) -> str:
    if not isinstance(customer_id, str) or not _VAULT_CUSTOMER_ID.fullmatch(customer_id):
        raise ValidationError(
            "customer_id must be the merchant's id for the buyer as PayPal's vault takes it: "
            f"1 to 22 characters of [0-9a-zA-Z_-], got {customer_id!r:.40}"
        )
    return customer_id


def payment_method_from_paypal(token: Mapping[str, Any]) -> PaymentMethod:
    """A Vault v3 payment token: a PayPal wallet (the payer's email), a card (brand, last
    digits, expiry ``YYYY-MM``), Venmo, Apple Pay or a bank account."""
    source = token.get("payment_source")
    source = source if isinstance(source, Mapping) else {}
    name = next((key for key in source if key in VAULT_SOURCE_KINDS), None)
    details = source.get(name) if name else None
    details = details if isinstance(details, Mapping) else {}
    customer = token.get("customer")
    customer_id = customer.get("id") if isinstance(customer, Mapping) else None
    brand = last4 = None
    exp_month = exp_year = None
    if name == "card":
        raw_brand = details.get("brand")
        brand = str(raw_brand).lower() if raw_brand else None
        last4 = details.get("last_digits")
        expiry = details.get("expiry")
        if isinstance(expiry, str) and re.fullmatch(r"\d{4}-\d{2}", expiry):
            exp_year, exp_month = int(expiry[:4]), int(expiry[5:])
    return PaymentMethod(
        id=str(token["id"]),
        provider="paypal",
        customer_id=customer_id,
        kind=VAULT_SOURCE_KINDS[name] if name else PaymentMethodKind.OTHER,
        brand=brand,
        last4=last4,
        exp_month=exp_month,
        exp_year=exp_year,
        email=details.get("email_address") if name in ("paypal", "venmo") else None,
        raw=dict(token),
    )


def _setup_from_token(
    token: Mapping[str, Any], *, customer_id: str | None, usage: SetupUsage = "off_session"
) -> SetupSession:
    status = SETUP_TOKEN_STATUS.get(str(token.get("status") or ""), SetupStatus.REQUIRES_ACTION)
    return SetupSession(
        id=str(token["id"]),
        provider="paypal",
        status=status,
        customer_id=customer_id,
        url=_link(token, "approve", "payer-action")
        if status is SetupStatus.REQUIRES_ACTION
        else None,
        usage=usage,
        raw=dict(token),
    )


_NORMALIZERS: Final[Mapping[str, Callable[[Mapping[str, Any]], WebhookObject]]] = {
    "order": _payment_from_order,
    "capture": _payment_from_capture,
    "authorization": _payment_from_authorization,
    "refund": lambda resource: _refund_from(resource),
    "subscription": _subscription_from,
    "dispute": _dispute_from,
    "invoice": lambda resource: _invoice_from(resource),
    "sale": lambda resource: _invoice_from_sale(resource),
    "payment_token": lambda resource: payment_method_from_paypal(resource),
}


def _invoice_from_sale(sale: Mapping[str, Any]) -> Invoice:
    """A subscription cycle's payment (``PAYMENT.SALE.COMPLETED``) as its paid invoice:
    PayPal has no invoice object for subscription cycles; the sale's id names it."""
    amount = sale.get("amount") or {}
    total = Money.of(str(amount["total"]), str(amount["currency"]))
    return Invoice(
        id=str(sale["id"]),
        provider="paypal",
        customer_id=sale.get("custom"),
        status=InvoiceStatus.PAID,
        amount_due=total,
        amount_paid=total,
        created_at=_parse_time(sale.get("create_time")),
        raw=sale,
        subscription_id=sale.get("billing_agreement_id"),
        billing_reason="subscription_cycle",
    )


def translate_error(
    status: int, payload: Mapping[str, Any] | None, debug_id: str | None
) -> ProviderError:
    """A PayPal error answer as a paygate error (message from PayPal's own words)."""
    body = payload or {}
    details = [d for d in body.get("details") or () if isinstance(d, Mapping)]
    issues = [str(d.get("issue")) for d in details if d.get("issue")]
    # OAuth errors are {"error": ..., "error_description": ...}
    name = str(body.get("name") or body.get("error") or f"HTTP_{status}")
    description = (
        (details[0].get("description") if details else None)
        or body.get("message")
        or body.get("error_description")
        or name
    )
    code = issues[0] if issues else name
    common: dict[str, Any] = {
        "provider": "paypal",
        "code": code,
        "http_status": status,
        "request_id": debug_id,
    }
    message = f"PayPal: {description}"
    for issue in issues:
        if issue in DECLINE_ISSUES:
            return CardDeclined(
                message, decline_code=DECLINE_ISSUES[issue], **{**common, "code": issue}
            )
        if issue in CONFLICT_ISSUES:
            return IdempotencyConflict(message, **{**common, "code": issue})
    error_class = HTTP_ERRORS.get(status)
    if error_class is None:
        error_class = ProviderUnavailable if status >= 500 or status == 0 else InvalidRequest
    return error_class(message, **common)


# ==========================================================================================
# Operations: each call sequence written once, for both faces (sans-I/O)
# ==========================================================================================
#
# An operation is a generator (`Flow`) that does no I/O: it ``yield``s each request as a
# `PayPalCall` and is sent the JSON answer; a request that fails is thrown into it at that
# ``yield`` (`paygate.providers._flow`), so its own ``except`` runs the same on both faces.
# The sync adapter runs flows on `PayPalTransport` (`PayPalProvider._run`), the async one
# on `AsyncPayPalTransport` (`AsyncPayPalProvider._run`): paths, bodies,
# ``PayPal-Request-Id``s, step order and translation are written here once.

#: multipart parts: ``(field, (filename, content, content type))``
Files = Sequence[tuple[str, tuple[str | None, bytes, str]]]


@dataclasses.dataclass(frozen=True, slots=True)
class PayPalCall:
    """One request of an operation: ``method`` (``GET``, ``POST``, ``DELETE``) on ``path``
    with the JSON ``body`` (``None``: no body) under ``PayPal-Request-Id: request_id``
    (``None``: no such header), or, with ``files``, a multipart POST of those parts;
    answered with the JSON object (``{}`` for none)."""

    method: str
    path: str
    body: Mapping[str, Any] | None = None
    request_id: str | None = None
    files: Files | None = None


R = TypeVar("R")
#: an operation: yields its requests, is sent their answers, returns the result
Flow: TypeAlias = Generator[PayPalCall, dict[str, Any], R]


def _get(path: str) -> PayPalCall:
    return PayPalCall("GET", path)


def _get_order(order_id: str) -> Flow[dict[str, Any]]:
    return (yield _get(f"/v2/checkout/orders/{_path_id(order_id, 'payment id')}"))


def _get_subscription(path: str) -> Flow[Subscription]:
    return _subscription_from((yield _get(f"/v1/billing/subscriptions/{path}")))


class PayPalFlows:
    """Each operation of the PayPal adapter as a `Flow`, named as the operation, with
    its arguments (positional) and its answer; both faces run these. One per adapter: it
    keeps the capture -> order links of the orders it saw (`payment`)."""

    def __init__(self) -> None:
        self._capture_orders: OrderedDict[str, str] = OrderedDict()
        self._links_lock = threading.Lock()

    # -- the capture -> order links ---------------------------------------------------------

    def payment(self, order: Mapping[str, Any]) -> Payment:
        """Normalize an order and remember its capture -> order link."""
        payment = _payment_from_order(order)
        if payment.charge_id:
            self._remember(payment.charge_id, payment.id)
        return payment

    def _remember(self, capture_id: str, order_id: str) -> None:
        with self._links_lock:
            self._capture_orders[capture_id] = order_id
            self._capture_orders.move_to_end(capture_id)
            while len(self._capture_orders) > _CAPTURE_LINKS_KEPT:
                self._capture_orders.popitem(last=False)

    def order_of_capture(self, capture_id: str) -> Flow[str]:
        """The PayPal order a capture belongs to, so refund and dispute events name the
        same ``payment_id`` as the Payment the Gateway stored (the order id).

        PayPal's refund and dispute resources name only the capture; the link comes from
        this adapter's own captures, else from ``GET /v2/payments/captures/{id}``. A
        capture PayPal does not know (made outside Orders v2) keeps its own id.
        """
        with self._links_lock:
            known = self._capture_orders.get(capture_id)
        if known is not None:
            return known
        try:
            capture = yield _get(f"/v2/payments/captures/{_path_id(capture_id, 'capture id')}")
        except NotFound:
            return capture_id
        order_id = _related_ids(capture).get("order_id")
        if not order_id:
            return capture_id
        self._remember(capture_id, str(order_id))
        return str(order_id)

    # -- payments ---------------------------------------------------------------------------

    def create_payment(
        self, order_id: str, amount: Money, payment_method: str | None, idempotency_key: str,
        description: str | None, capture: CaptureMethod, return_url: str | None,
        off_session: bool,
    ) -> Flow[Payment]:  # fmt: skip
        body = order_request(
            order_id, amount, payment_method, description, capture, return_url,
            off_session=off_session,
        )  # fmt: skip
        order = yield PayPalCall("POST", "/v2/checkout/orders", body, _request_id(idempotency_key))
        payment = self.payment(order)
        log.info("paypal order %s created for %s: %s", payment.id, order_id, amount,
                 extra=fields(provider="paypal", operation="create_payment",
                              order_id=order_id, payment_id=payment.id))  # fmt: skip
        if off_session and payment.status is PaymentStatus.REQUIRES_ACTION:
            # a vaulted card whose bank wants 3-D Secure: PayPal holds the order at
            # PAYER_ACTION_REQUIRED, which no one is there to answer
            raise AuthenticationRequired(
                "PayPal: the payer must authenticate this charge (PAYER_ACTION_REQUIRED)",
                payment_id=payment.id,
                provider="paypal",
                code="PAYER_ACTION_REQUIRED",
            )
        return payment

    def get_payment(self, payment_id: str) -> Flow[Payment]:
        return self.payment((yield from _get_order(payment_id)))

    def complete_return(self, params: Mapping[str, str], idempotency_key: str) -> Flow[Payment]:
        token = _return_token(params)
        order = yield from _get_order(token)
        if order.get("status") == "APPROVED":
            try:
                order = yield PayPalCall(
                    "POST", _approval_path(order), {}, _request_id(idempotency_key)
                )
            except InvalidRequest as exc:
                if exc.code not in _ALREADY_DONE_ISSUES:
                    raise
                # another request (a second tab, the webhook handler) finished it first
                order = yield from _get_order(token)
        payment = self.payment(order)
        log.info("paypal order %s after return: %s", payment.id, payment.status,
                 extra=fields(provider="paypal", operation="complete_return",
                              payment_id=payment.id))  # fmt: skip
        return payment

    def capture_payment(
        self, payment_id: str, amount: Money | None, idempotency_key: str
    ) -> Flow[Payment]:
        order = yield from _get_order(payment_id)
        # A retry whose first answer was lost (OutcomeUnknown) finds the authorization already
        # CAPTURED: the capture is sent again with the same PayPal-Request-Id, which PayPal
        # answers with the capture that request made (one made by another request it refuses
        # itself, 422), so the retry succeeds instead of being refused here.
        authorization = open_authorization(order, "capture", done="CAPTURED")
        body = capture_request(amount)
        authorization_path = _path_id(str(authorization["id"]), "authorization id")
        capture = yield PayPalCall(
            "POST", f"/v2/payments/authorizations/{authorization_path}/capture", body,
            _request_id(idempotency_key),
        )  # fmt: skip
        _payments_of(order)["captures"] = [capture]
        return self.payment(order)

    def cancel_payment(self, payment_id: str) -> Flow[Payment]:
        order = yield from _get_order(payment_id)
        if _voided(order):
            # already voided: a retry whose first answer was lost (the void takes no
            # PayPal-Request-Id to replay it), or a void from elsewhere -- the same end state
            return self.payment(order)
        authorization = open_authorization(order, "cancel")
        authorization_path = _path_id(str(authorization["id"]), "authorization id")
        # the void takes no request body (PayPal's spec has none): send none, not "{}"
        voided = yield PayPalCall(
            "POST", f"/v2/payments/authorizations/{authorization_path}/void", None
        )
        _payments_of(order)["authorizations"] = [voided or {**authorization, "status": "VOIDED"}]
        return self.payment(order)

    def refund_payment(
        self, payment_id: str, amount: Money | None, reason: str | None, idempotency_key: str
    ) -> Flow[Refund]:
        order = yield from _get_order(payment_id)
        payment = self.payment(order)
        path, body, refundable = refund_request(order, payment, amount, reason)
        refund = yield PayPalCall("POST", path, body, _request_id(idempotency_key))
        return _refund_from(
            refund,
            payment_id=payment.id,
            order_id=payment.order_id,
            fallback_amount=amount or refundable,
            reason=reason,
        )

    def get_refund(self, refund_id: str) -> Flow[Refund]:
        path = _path_id(refund_id, "refund_id")
        refund = _refund_from((yield _get(f"/v2/payments/refunds/{path}")))
        if not _related_ids(refund.raw).get("order_id"):
            order_id = yield from self.order_of_capture(refund.payment_id)
            refund = replace(refund, payment_id=order_id)
        return refund

    # -- checkout, subscriptions, invoices, disputes ------------------------------------------

    def create_checkout_session(
        self, order_id: str, line_items: Sequence[LineItem], success_url: str,
        cancel_url: str, idempotency_key: str, mode: CheckoutMode,
    ) -> Flow[CheckoutSession]:  # fmt: skip
        body = checkout_request(order_id, line_items, success_url, cancel_url, mode)
        order = yield PayPalCall("POST", "/v2/checkout/orders", body, _request_id(idempotency_key))
        return _checkout_from_order(order)

    def get_checkout_session(self, session_id: str) -> Flow[CheckoutSession]:
        return _checkout_from_order((yield from _get_order(session_id)))

    def create_subscription(
        self, customer_id: str, price_id: str, idempotency_key: str, trial_days: int | None,
        trial_end: datetime | None, quantity: int,
    ) -> Flow[Subscription]:  # fmt: skip
        check_plan_only(trial_days, trial_end, quantity)
        subscription = yield PayPalCall(
            "POST", "/v1/billing/subscriptions", subscription_request(customer_id, price_id),
            _request_id(idempotency_key),
        )  # fmt: skip
        return _subscription_from(subscription)

    def get_subscription(self, subscription_id: str) -> Flow[Subscription]:
        return (yield from _get_subscription(_path_id(subscription_id, "subscription_id")))

    def cancel_subscription(self, subscription_id: str, at_period_end: bool) -> Flow[Subscription]:
        path = _cancel_subscription_path(subscription_id, at_period_end)
        yield PayPalCall(
            "POST", f"/v1/billing/subscriptions/{path}/cancel",
            {"reason": "Canceled by the merchant"},
        )  # fmt: skip
        return (yield from _get_subscription(path))

    def change_subscription(
        self, subscription_id: str, price_id: str | None, quantity: int | None,
        proration: Proration, idempotency_key: str,
    ) -> Flow[Subscription]:  # fmt: skip
        body = revise_request(price_id, quantity, proration)
        path = _path_id(subscription_id, "subscription_id")
        revised = yield PayPalCall(
            "POST", f"/v1/billing/subscriptions/{path}/revise", body,
            _request_id(idempotency_key),
        )  # fmt: skip
        current = yield from _get_subscription(path)
        return with_approval(current, revised)

    def pause_subscription(self, subscription_id: str) -> Flow[Subscription]:
        return (yield from _subscription_action(subscription_id, "suspend", PAUSE_BODY))

    def resume_subscription(self, subscription_id: str) -> Flow[Subscription]:
        return (yield from _subscription_action(subscription_id, "activate", RESUME_BODY))

    def create_invoice(
        self, customer_id: str, line_items: Sequence[LineItem], idempotency_key: str,
        order_id: str | None, description: str | None, send: bool,
    ) -> Flow[Invoice]:  # fmt: skip
        body, total = invoice_request(customer_id, line_items, order_id, description)
        invoice = yield PayPalCall(
            "POST", "/v2/invoicing/invoices", body, _request_id(idempotency_key)
        )
        if "id" not in invoice:
            raise ProviderUnavailable(
                "PayPal created an invoice but did not return it", provider="paypal"
            )
        if send:
            path = _path_id(str(invoice["id"]), "invoice id")
            yield PayPalCall(
                "POST", f"/v2/invoicing/invoices/{path}/send", {"send_to_recipient": True},
                _request_id(idempotency_key + ":send"),
            )  # fmt: skip
            invoice = yield _get(f"/v2/invoicing/invoices/{path}")
        return _invoice_from(invoice, fallback_total=total)

    def retry_invoice(self, invoice_id: str, idempotency_key: str) -> Flow[Invoice]:
        path = _path_id(invoice_id, "invoice_id (the PayPal subscription id)")
        subscription = yield _get(f"/v1/billing/subscriptions/{path}")
        owed, body = outstanding_capture_request(invoice_id, subscription)
        transaction = yield PayPalCall(
            "POST", f"/v1/billing/subscriptions/{path}/capture", body,
            _request_id(idempotency_key),
        )  # fmt: skip
        return invoice_from_capture(transaction, subscription, owed, path)

    def get_dispute(self, dispute_id: str) -> Flow[Dispute]:
        path = _path_id(dispute_id, "dispute_id")
        dispute = _dispute_from((yield _get(f"/v1/customer/disputes/{path}")))
        if dispute.payment_id:
            order_id = yield from self.order_of_capture(dispute.payment_id)
            dispute = replace(dispute, payment_id=order_id)
        return dispute

    def list_disputes(self, payment_id: str | None) -> Flow[list[Dispute]]:
        capture = None
        if payment_id is not None:
            capture = self.payment((yield from _get_order(payment_id))).charge_id
            if capture is None:
                return []  # never captured: nothing to dispute
        page = yield _get(dispute_list_path(capture))
        disputes = []
        for item in page.get("items") or ():
            disputes.append((yield from self.get_dispute(str(item["dispute_id"]))))
        return disputes

    def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, submit: bool
    ) -> Flow[Dispute]:
        parts = evidence_parts(evidence, submit)
        path = _path_id(dispute_id, "dispute_id")
        yield PayPalCall("POST", f"/v1/customer/disputes/{path}/provide-evidence", files=parts)
        return (yield from self.get_dispute(dispute_id))

    def accept_dispute(self, dispute_id: str) -> Flow[Dispute]:
        path = _path_id(dispute_id, "dispute_id")
        yield PayPalCall(
            "POST", f"/v1/customer/disputes/{path}/accept-claim", files=accept_claim_parts()
        )
        return (yield from self.get_dispute(dispute_id))

    # -- saved payment methods (Vault v3) ---------------------------------------------------

    def create_setup(
        self, customer_id: str, idempotency_key: str, return_url: str | None,
        cancel_url: str | None, usage: SetupUsage, payment_method: str | None,
        verification_token: str | None,
    ) -> Flow[SetupSession]:  # fmt: skip
        body = setup_token_request(
            customer_id, return_url, cancel_url, usage, payment_method, verification_token
        )
        token = yield PayPalCall(
            "POST", "/v3/vault/setup-tokens", body, _request_id(idempotency_key)
        )
        return _setup_from_token(token, customer_id=customer_id, usage=usage)

    def complete_setup(self, params: Mapping[str, str], idempotency_key: str) -> Flow[SetupSession]:
        path = setup_token_path(params)
        token = yield _get(f"/v3/vault/setup-tokens/{path}")
        if token.get("status") != "APPROVED":
            return _setup_from_token(token, customer_id=_token_customer(token))
        saved = yield PayPalCall(
            "POST", "/v3/vault/payment-tokens", payment_token_request(token),
            _request_id(idempotency_key),
        )  # fmt: skip
        return setup_from_payment_token(token, saved)

    def list_payment_methods(self, customer_id: str) -> Flow[list[PaymentMethod]]:
        _check_vault_customer(customer_id)
        methods: list[PaymentMethod] = []
        page = 1
        while True:
            listing = yield _get(vault_page_path(customer_id, page))
            found, last = vault_page_methods(listing, page)
            methods.extend(found)
            if last:
                return methods
            page += 1

    def get_payment_method(self, payment_method_id: str) -> Flow[PaymentMethod]:
        path = _path_id(payment_method_id, "payment token id")
        return payment_method_from_paypal((yield _get(f"/v3/vault/payment-tokens/{path}")))

    def detach_payment_method(self, payment_method_id: str) -> Flow[None]:
        path = _path_id(payment_method_id, "payment token id")
        yield PayPalCall("DELETE", f"/v3/vault/payment-tokens/{path}")

    # -- webhooks ---------------------------------------------------------------------------

    def verify_by_api(
        self, settings: PayPalSettings, body: bytes, headers: Mapping[str, str]
    ) -> Flow[None]:
        answer = yield PayPalCall(
            "POST", "/v1/notifications/verify-webhook-signature",
            verification_request(settings, body, headers),
        )  # fmt: skip
        _check_verification(answer)

    def webhook_event(self, body: bytes) -> Flow[WebhookEvent]:
        """The verified ``body`` normalized, its capture's order named."""
        event = _event_from(body)
        capture_id = _capture_named(event)
        if capture_id is None:
            return event
        return _with_order(event, (yield from self.order_of_capture(capture_id)))


def _subscription_action(
    subscription_id: str, action: str, body: Mapping[str, Any]
) -> Flow[Subscription]:
    """``POST /v1/billing/subscriptions/{id}/{action}``, then the subscription read."""
    path = _path_id(subscription_id, "subscription_id")
    yield PayPalCall("POST", f"/v1/billing/subscriptions/{path}/{action}", body)
    return (yield from _get_subscription(path))


# ==========================================================================================
# The adapter
# ==========================================================================================


class PayPalProvider(BaseProvider):
    """PayPal on Orders v2 with an approval redirect; see the module docstring for ids.

    Each operation is a flow of `PayPalFlows` (this module) run by `_run` (its requests
    on `PayPalTransport`); the async face runs the same flows.
    """

    name = "paypal"
    capabilities = frozenset(
        {
            Capability.PAYMENTS,
            Capability.MANUAL_CAPTURE,
            Capability.PARTIAL_CAPTURE,
            Capability.REFUNDS,
            Capability.PARTIAL_REFUNDS,
            Capability.CHECKOUT,
            Capability.SUBSCRIPTIONS,
            Capability.INVOICES,
            Capability.DISPUTES,
            Capability.WEBHOOKS,
            # no proration (a revised plan bills from the next cycle), no trials outside
            # the plan: those are left out
            Capability.SUBSCRIPTION_PAUSE,
            Capability.DISPUTE_EVIDENCE,
            Capability.PAYMENT_METHODS,
        }
    )

    def __init__(self, **settings: Any) -> None:
        try:
            self.settings = PayPalSettings(**settings)
        except pydantic.ValidationError as exc:
            raise settings_error(exc, "PayPal settings", env_prefix="PAYGATE_PAYPAL_") from None
        config = self.settings
        #: the Gateway's retry count for this provider (the adapter itself never retries)
        self.max_retries: int | None = config.max_retries
        self._http = PayPalTransport(
            client_id=config.client_id,
            client_secret=config.client_secret.get_secret_value(),
            mode=config.mode,
            base_url=config.base_url or _API_HOSTS[config.mode],
            timeout=config.timeout,
            translate_error=translate_error,
        )
        fetcher: CertFetcher = config.cert_fetcher or (
            lambda url: fetch_certificate(url, timeout=config.timeout)
        )
        self._verifier = (
            OfflineVerifier(
                webhook_id=config.webhook_id,
                fetch=fetcher,
                tolerance=timedelta(seconds=config.webhook_tolerance),
                local_cert_prefix=_local_cert_prefix(config.base_url),
            )
            if config.webhook_id
            else None
        )
        self._flows = PayPalFlows()

    def __repr__(self) -> str:
        return f"PayPalProvider(mode={self.settings.mode!r}, endpoint={self._http.endpoint!r})"

    # -- plumbing: the driver of the flows ---------------------------------------------------

    def _run(self, flow: Flow[R]) -> R:
        """Send each request ``flow`` yields (a failure thrown into it) and return its result."""
        return run_flow(flow, self._send)

    def _send(self, call: PayPalCall) -> dict[str, Any]:
        if call.files is not None:
            return self._http.post_files(call.path, call.files)
        return self._http.request(call.method, call.path, call.body, call.request_id)

    # -- payments ---------------------------------------------------------------------------

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
        """Create an order.

        ``payment_method=None`` (or ``"paypal"``): the buyer approves the order at
        ``Payment.redirect_url`` (status ``requires_action``) and ``complete_return``
        captures it. Any other value is a PayPal **vault id** (a returning buyer's saved
        PayPal wallet, ``payment_source.paypal.vault_id``): PayPal charges it at once and the
        order comes back captured (or authorized for ``capture="manual"``).
        ``customer_id`` and ``metadata`` have no place on a PayPal order and are not sent.
        """
        return self._run(self._flows.create_payment(
            order_id, amount, payment_method, idempotency_key, description, capture,
            return_url, off_session,
        ))  # fmt: skip

    def get_payment(self, payment_id: str) -> Payment:
        return self._run(self._flows.get_payment(payment_id))

    def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        """The buyer came back with ``?token=<PayPal order id>``: capture (or authorize) it.

        The query string is only used for the order id; the order's status is read from
        PayPal. An order that is not approved is returned as it is, untouched; one that
        another request (a second tab, the webhook handler) captured first is read again.
        """
        return self._run(self._flows.complete_return(params, idempotency_key))

    def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment:
        """Capture an authorized order (all of it, or ``amount``); a retry whose first
        answer was lost replays the capture under the same ``PayPal-Request-Id``."""
        return self._run(self._flows.capture_payment(payment_id, amount, idempotency_key))

    def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment:
        """Void an authorized order. PayPal has no call to cancel an unapproved order (it
        expires); a captured one is refunded instead."""
        return self._run(self._flows.cancel_payment(payment_id))

    def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund:
        """Refund the order's capture, fully (``amount=None``) or partly."""
        return self._run(self._flows.refund_payment(payment_id, amount, reason, idempotency_key))

    def get_refund(self, refund_id: str) -> Refund:
        """A refund (Payments v2 ``GET /v2/payments/refunds/{id}``), its ``payment_id`` the
        refunded capture's order (``Payment.id``), as for refund webhooks."""
        return self._run(self._flows.get_refund(refund_id))

    # -- hosted checkout (an order with line items) -------------------------------------------

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
        """PayPal's hosted page is the order approval: a checkout is an order with items.

        Its id is the PayPal order id, which is also the id of the Payment that
        ``complete_return`` gives back.
        """
        return self._run(self._flows.create_checkout_session(
            order_id, line_items, success_url, cancel_url, idempotency_key, mode
        ))  # fmt: skip

    def get_checkout_session(self, session_id: str) -> CheckoutSession:
        return self._run(self._flows.get_checkout_session(session_id))

    # -- subscriptions ------------------------------------------------------------------------

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
        """Subscribe to the billing plan ``price_id``; the buyer approves at ``redirect_url``.

        PayPal has no customer objects: ``customer_id`` travels as the subscription's
        ``custom_id`` and comes back as ``Subscription.customer_id``.
        """
        return self._run(self._flows.create_subscription(
            customer_id, price_id, idempotency_key, trial_days, trial_end, quantity
        ))  # fmt: skip

    def get_subscription(self, subscription_id: str) -> Subscription:
        return self._run(self._flows.get_subscription(subscription_id))

    def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        return self._run(self._flows.cancel_subscription(subscription_id, at_period_end))

    # -- invoices and disputes ----------------------------------------------------------------

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
        """A draft invoice (sent when ``send``). ``customer_id`` is the recipient's email:
        PayPal invoices people, it has no customer objects."""
        return self._run(self._flows.create_invoice(
            customer_id, line_items, idempotency_key, order_id, description, send
        ))  # fmt: skip

    def get_dispute(self, dispute_id: str) -> Dispute:
        """The dispute, with ``payment_id`` the disputed capture's order (``Payment.id``)."""
        return self._run(self._flows.get_dispute(dispute_id))

    # -- reconciliation ---------------------------------------------------------------------

    def iter_transaction_pages(
        self,
        *,
        since: datetime,
        until: datetime,
        page_size: int = TRANSACTION_SEARCH_MAX_PAGE,
        retry: RetryPolicy | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Transaction Search (``GET /v1/reporting/transactions``) response pages for
        ``[since, until)``, as dicts: what
        [`paygate.reconcile.PayPalTransactionSearch`][paygate.reconcile.PayPalTransactionSearch]
        reads.

        PayPal answers at most 31 days per request, so a longer window is cut into slices of
        31 days (the last one shorter), read in order, each page 1 to ``total_pages``
        (``page_size`` <= 500, ``fields=all``). Lazy: a request is sent only when the pages
        before it are consumed; the arguments (timezone-aware datetimes) are checked now.
        A transaction PayPal lists in two slices (one dated exactly at the cut) is kept in the
        first only. PayPal's data lags up to three hours behind.

        ``retry``: each page request goes through this policy (operation
        ``list_transactions``): a retryable error (network, 5xx, 429) sends the same request
        again (same dates and ``page``), nothing yielded is yielded twice. ``None`` (the
        default): no retry, the first error is raised.
        """
        if since is None or until is None:
            raise ValidationError("PayPal Transaction Search needs both since and until")
        check_window(aware(since, "since"), aware(until, "until"))
        size = check_page_size(page_size, TRANSACTION_SEARCH_MAX_PAGE)
        return self._transaction_pages(_search_slices(since, until), size, retry)

    def _transaction_pages(
        self,
        slices: Iterator[tuple[datetime, datetime]],
        page_size: int,
        retry: RetryPolicy | None,
    ) -> Iterator[dict[str, Any]]:
        seen_at_cut: set[str] = set()
        for start, end in slices:
            at_cut: set[str] = set()
            number, total_pages = 1, 1
            while number <= total_pages:
                query = {
                    "start_date": rfc3339(start),
                    "end_date": rfc3339(end),
                    **TRANSACTION_SEARCH_QUERY,
                    "page_size": str(page_size),
                    "page": str(number),
                }
                path = f"{TRANSACTION_SEARCH_PATH}?{urlencode(query)}"
                page = call_with(
                    retry, "list_transactions", functools.partial(self._http.get, path)
                )
                total_pages = _total_pages(page)
                details = page.get("transaction_details")
                if details is None and total_pages == 0:
                    page = {**page, "transaction_details": []}  # nothing in this slice
                elif isinstance(details, list):
                    kept = [d for d in details if _transaction_id(d) not in seen_at_cut]
                    at_cut.update(_ids_dated_from(kept, end))
                    if len(kept) != len(details):
                        page = {**page, "transaction_details": kept}
                yield page
                number += 1
            seen_at_cut = at_cut

    # -- webhooks ---------------------------------------------------------------------------

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify the PayPal signature (offline or by PayPal's API), then normalize."""
        _check_webhook_settings(self.settings, body)
        if self.settings.verification == "api":
            self._run(self._flows.verify_by_api(self.settings, body, headers))
        else:
            assert self._verifier is not None
            self._verifier.verify(body, headers)
        return self._run(self._flows.webhook_event(body))

    # -- after the first charge (issue 20) ----------------------------------------------------

    def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        raise no_subscription_listing()

    def change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        idempotency_key: str,
    ) -> Subscription:
        """``POST /v1/billing/subscriptions/{id}/revise``: PayPal has no proration. The
        new plan or quantity is billed from the next billing cycle, so only
        ``proration="none"`` says what happens; a plan change needs the buyer's consent at
        the returned ``redirect_url`` (the subscription stays on its plan until then)."""
        return self._run(self._flows.change_subscription(
            subscription_id, price_id, quantity, proration, idempotency_key
        ))  # fmt: skip

    def pause_subscription(self, subscription_id: str) -> Subscription:
        """``suspend``: PayPal's paused subscription (``SUSPENDED``)."""
        return self._run(self._flows.pause_subscription(subscription_id))

    def resume_subscription(self, subscription_id: str) -> Subscription:
        """``activate`` a suspended subscription."""
        return self._run(self._flows.resume_subscription(subscription_id))

    def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        raise no_undo_cancel()

    def retry_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        """PayPal bills a subscription's cycles without invoice objects: ``invoice_id`` is
        the past-due subscription's id, and its outstanding balance is charged now
        (``POST /v1/billing/subscriptions/{id}/capture``, ``OUTSTANDING_BALANCE``)."""
        return self._run(self._flows.retry_invoice(invoice_id, idempotency_key))

    def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        """``GET /v1/customer/disputes``; of one payment (its order id, paygate's PayPal
        ``Payment.id``): of the order's capture (``disputed_transaction_id``). The list's
        items are summaries, each read in full."""
        return self._run(self._flows.list_disputes(payment_id))

    def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """``provide-evidence`` (multipart: an ``input`` JSON part listing the evidence,
        one ``evidence-file`` part per file). PayPal has no draft evidence: ``submit=False``
        is not available."""
        return self._run(self._flows.submit_dispute_evidence(dispute_id, evidence, submit))

    def accept_dispute(self, dispute_id: str) -> Dispute:
        """``accept-claim``: the buyer keeps the refund; the dispute is lost."""
        return self._run(self._flows.accept_dispute(dispute_id))

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
        """A Vault v3 setup token for the buyer's PayPal wallet: the buyer approves it at
        ``SetupSession.url`` and comes back to ``return_url``, where ``complete_setup``
        turns it into a payment token (the saved method). ``customer_id`` is the
        merchant's own id for the buyer (PayPal keeps the wallets under it)."""
        return self._run(self._flows.create_setup(
            customer_id, idempotency_key, return_url, cancel_url, usage, payment_method,
            verification_token,
        ))  # fmt: skip

    def complete_setup(self, params: Mapping[str, str], *, idempotency_key: str) -> SetupSession:
        """The buyer came back with ``?approval_token_id=<setup token>``: the setup token is
        read from PayPal and, once approved, exchanged for a payment token (POST
        /v3/vault/payment-tokens, idempotent by ``idempotency_key``)."""
        return self._run(self._flows.complete_setup(params, idempotency_key))

    def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        """The customer's payment tokens, every page (PayPal pages by number)."""
        return self._run(self._flows.list_payment_methods(customer_id))

    def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        return self._run(self._flows.get_payment_method(payment_method_id))

    def detach_payment_method(self, payment_method_id: str) -> None:
        """Delete the payment token: PayPal forgets the vaulted wallet."""
        self._run(self._flows.detach_payment_method(payment_method_id))


# ==========================================================================================
# Requests: what each operation sends, checked first (shared by both faces)
# ==========================================================================================


def order_request(
    order_id: str,
    amount: Money,
    payment_method: str | None,
    description: str | None,
    capture: CaptureMethod,
    return_url: str | None,
    *,
    off_session: bool = False,
) -> dict[str, Any]:
    """``POST /v2/checkout/orders`` for ``create_payment``."""
    _check_reference(order_id, "order_id")
    vault_id = None if payment_method in (None, "paypal") else payment_method
    if vault_id is not None and not (isinstance(vault_id, str) and _VAULT_ID.fullmatch(vault_id)):
        raise ValidationError(
            "payment_method must be None, 'paypal' or a PayPal vault id "
            "([0-9a-zA-Z_-], at most 255 characters); the value given is not repeated "
            "here (it may be a card number pasted by mistake)"
        )
    if capture not in ("automatic", "manual"):
        raise ValidationError(f"capture must be 'automatic' or 'manual', got {capture!r}")
    if off_session and vault_id is None:
        # a charge without the buyer needs a vaulted wallet (complete_setup's payment
        # token); a vault id is charged without the buyer anyway
        raise ValidationError("an off-session charge needs a PayPal vault id as payment_method")
    unit: dict[str, Any] = {
        "custom_id": order_id,
        "invoice_id": order_id,
        "amount": _positive(amount, "amount"),
    }
    if description:
        unit["description"] = description[:127]
    body: dict[str, Any] = {
        "intent": "CAPTURE" if capture == "automatic" else "AUTHORIZE",
        "purchase_units": [unit],
    }
    if vault_id is not None:
        body["payment_source"] = {"paypal": {"vault_id": vault_id}}
    elif return_url:
        body["payment_source"] = {"paypal": {"experience_context": {
            "return_url": return_url,
            "cancel_url": return_url,  # complete_return looks the order up either way
            "user_action": "PAY_NOW",
        }}}  # fmt: skip
    return body


def _return_token(params: Mapping[str, str]) -> str:
    token = params.get("token") if isinstance(params, Mapping) else None
    if not token:
        raise ValidationError("the PayPal return has no 'token' parameter (the order id)")
    return token


def _approval_path(order: Mapping[str, Any]) -> str:
    """Where an APPROVED order is captured (or authorized, for ``capture="manual"``)."""
    path = _path_id(str(order["id"]), "order id")
    action = "authorize" if order.get("intent") == "AUTHORIZE" else "capture"
    return f"/v2/checkout/orders/{path}/{action}"


def capture_request(amount: Money | None) -> dict[str, Any]:
    body: dict[str, Any] = {"final_capture": True}
    if amount is not None:
        body["amount"] = _positive(amount, "capture amount")
    return body


def _voided(order: Mapping[str, Any]) -> bool:
    last = (_payments_of(order).get("authorizations") or [{}])[-1]
    return isinstance(last, Mapping) and last.get("status") == "VOIDED"


def refund_request(
    order: Mapping[str, Any], payment: Payment, amount: Money | None, reason: str | None
) -> tuple[str, dict[str, Any], Money]:
    """The capture's refund path, the body, and what was left to refund."""
    # A retry whose first answer was lost (OutcomeUnknown) finds its own refund already
    # made: REFUNDED is let through, and an amount over what is left passes when a refund
    # of exactly that amount exists, for PayPal answers the same PayPal-Request-Id with
    # that refund (a new refund over the rest PayPal refuses itself, 422).
    if payment.charge_id is None or payment.status not in (
        PaymentStatus.SUCCEEDED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
    ):
        raise InvalidRequest(
            f"PayPal order {payment.id} has no completed capture to refund "
            f"(status {payment.status})", provider="paypal", code="not_captured",
        )  # fmt: skip
    assert payment.amount_captured is not None and payment.amount_refunded is not None
    refundable = payment.amount_captured - payment.amount_refunded
    body: dict[str, Any] = {}
    if amount is not None:
        body["amount"] = _positive(amount, "refund amount")
        if amount.currency != refundable.currency or (
            amount > refundable and not _has_refund_of(order, amount)
        ):
            raise ValidationError(
                f"refund of {amount} exceeds what PayPal order {payment.id} has left to "
                f"refund ({refundable})"
            )
    if reason:
        body["note_to_payer"] = reason[:255]
    path = f"/v2/payments/captures/{_path_id(payment.charge_id, 'capture id')}/refund"
    return path, body, refundable


def checkout_request(
    order_id: str,
    line_items: Sequence[LineItem],
    success_url: str,
    cancel_url: str,
    mode: CheckoutMode,
) -> dict[str, Any]:
    """``POST /v2/checkout/orders`` for ``create_checkout_session``: an order with items."""
    if mode != "payment":
        raise NotSupported(
            "PayPal checkout sessions are for payments; use create_subscription, whose "
            "Subscription.redirect_url is the approval page",
            provider="paypal",
            code="not_supported",
        )
    _check_reference(order_id, "order_id")
    if not line_items:
        raise ValidationError("a checkout needs at least one line item")
    currency = line_items[0].unit_amount.currency
    if any(item.unit_amount.currency != currency for item in line_items):
        raise ValidationError("all line items of a PayPal checkout must share one currency")
    total = Money(sum(item.total.amount for item in line_items), currency)
    items = [
        {
            "name": item.name[:127],
            "quantity": str(item.quantity),
            "unit_amount": _money_field(item.unit_amount),
            **({"description": item.description[:127]} if item.description else {}),
        }
        for item in line_items
    ]
    amount = _positive(total, "checkout total")
    body = {
        "intent": "CAPTURE",
        "purchase_units": [{
            "custom_id": order_id,
            "invoice_id": order_id,
            "amount": {**amount, "breakdown": {"item_total": amount}},
            "items": items,
        }],
        "payment_source": {"paypal": {"experience_context": {
            "return_url": success_url, "cancel_url": cancel_url, "user_action": "PAY_NOW",
        }}},
    }  # fmt: skip
    return body


def subscription_request(customer_id: str, price_id: str) -> dict[str, Any]:
    _check_reference(customer_id, "customer_id")
    if not isinstance(price_id, str) or not 3 <= len(price_id) <= 50:
        raise ValidationError(f"price_id must be a PayPal plan id, got {price_id!r}")
    return {"plan_id": price_id, "custom_id": customer_id}


def _cancel_subscription_path(subscription_id: str, at_period_end: bool) -> str:
    """The subscription id as a path segment; an end-of-period cancel is refused first."""
    if at_period_end:
        raise NotSupported(
            "PayPal cancels subscriptions at once; at_period_end=True is not available",
            provider="paypal",
            code="not_supported",
        )
    return _path_id(subscription_id, "subscription_id")


def invoice_request(
    customer_id: str,
    line_items: Sequence[LineItem],
    order_id: str | None,
    description: str | None,
) -> tuple[dict[str, Any], Money]:
    """``POST /v2/invoicing/invoices``'s body, and the invoice's total."""
    if not isinstance(customer_id, str) or "@" not in customer_id:
        raise ValidationError(
            f"PayPal invoices are addressed by email: customer_id must be an email "
            f"address, got {customer_id!r}"
        )
    if not line_items:
        raise ValidationError("an invoice needs at least one line item")
    currency = line_items[0].unit_amount.currency
    if any(item.unit_amount.currency != currency for item in line_items):
        raise ValidationError("all line items of a PayPal invoice must share one currency")
    total = Money(sum(item.total.amount for item in line_items), currency)
    _positive(total, "invoice total")
    detail: dict[str, Any] = {"currency_code": currency}
    if order_id:
        detail["reference"] = _check_reference(order_id, "order_id")
    if description:
        detail["note"] = description[:4000]
    body = {
        "detail": detail,
        "primary_recipients": [{"billing_info": {"email_address": customer_id}}],
        "items": [
            {
                "name": item.name[:200],
                "quantity": str(item.quantity),
                "unit_amount": _money_field(item.unit_amount),
                **({"description": item.description[:1000]} if item.description else {}),
            }
            for item in line_items
        ],
    }
    return body, total


def open_authorization(
    order: Mapping[str, Any], operation: str, *, done: str | None = None
) -> Mapping[str, Any]:
    """The order's open authorization; with ``done``, one in that state too when no
    authorization is open (the retry of a request whose answer was lost)."""
    payments = _payments_of(order)
    every: list[Mapping[str, Any]] = list(payments.get("authorizations") or ())
    authorizations = [
        a for a in every if a.get("status") in ("CREATED", "PENDING", "PARTIALLY_CAPTURED")
    ]
    if not authorizations and done is not None:
        authorizations = [a for a in every if a.get("status") == done]
    if not authorizations:
        raise InvalidRequest(
            f"cannot {operation} PayPal order {order.get('id')}: it has no open "
            f"authorization (order status {order.get('status')})",
            provider="paypal",
            code="no_authorization",
        )
    return authorizations[-1]


def verification_request(
    settings: PayPalSettings, body: bytes, headers: Mapping[str, str]
) -> dict[str, Any]:
    """``POST /v1/notifications/verify-webhook-signature``'s body (``verification="api"``),
    after the checks that need no request."""
    signature = read_headers(headers)
    # PayPal's answer says only whether the signature holds, not how old the delivery
    # is: webhook_tolerance bounds replays here as in offline mode (before any request)
    sent_at = parse_transmission_time(signature.transmission_time)
    tolerance = settings.webhook_tolerance
    if abs(datetime.now(timezone.utc) - sent_at) > timedelta(seconds=tolerance):
        raise TimestampOutsideTolerance(
            f"PAYPAL-TRANSMISSION-TIME {signature.transmission_time} is more than "
            f"{tolerance}s from now"
        )
    event = _json_object(body, InvalidSignature)
    return {
        "auth_algo": signature.auth_algo,
        "cert_url": signature.cert_url,
        "transmission_id": signature.transmission_id,
        "transmission_sig": signature.transmission_sig,
        "transmission_time": signature.transmission_time,
        "webhook_id": settings.webhook_id,
        "webhook_event": event,
    }


def _check_verification(answer: Mapping[str, Any]) -> None:
    # PayPal answers 200 whether or not the signature holds: only SUCCESS counts
    if answer.get("verification_status") != "SUCCESS":
        raise InvalidSignature(
            f"PayPal did not verify the webhook (verification_status="
            f"{answer.get('verification_status')!r})"
        )


def _check_webhook_settings(settings: PayPalSettings, body: bytes) -> None:
    if not settings.webhook_id:
        raise ConfigurationError("PayPal webhooks need the webhook_id setting")
    if not isinstance(body, bytes):
        raise MalformedPayload("a webhook body must be the raw request bytes")


def _capture_named(event: WebhookEvent) -> str | None:
    """The capture id an event's object names where paygate wants the order's: PayPal's
    refund and dispute resources name the capture, not the order (and older capture
    resources carry no supplementary_data with their order). ``None``: nothing to resolve."""
    obj = event.object
    if isinstance(obj, Refund) and not _related_ids(obj.raw).get("order_id"):
        return obj.payment_id
    if isinstance(obj, Dispute) and obj.payment_id:
        return obj.payment_id
    if (
        event.provider_type.startswith("PAYMENT.CAPTURE.")
        and isinstance(obj, Payment)
        and obj.id == obj.charge_id
    ):
        return obj.id
    return None


def _with_order(event: WebhookEvent, order_id: str) -> WebhookEvent:
    """``event`` naming the PayPal order ``order_id`` instead of its capture."""
    obj = event.object
    resolved: WebhookObject
    if isinstance(obj, Payment):
        metadata = {**obj.metadata, "paypal_order_id": order_id}
        resolved = replace(obj, id=order_id, metadata=metadata)
    else:
        assert isinstance(obj, (Refund, Dispute)) and obj.payment_id
        resolved = replace(obj, payment_id=order_id)
    return replace(event, object=resolved)

    # -- saved payment methods (Vault v3) --------------------------------------------------------


def _local_cert_prefix(base_url: str | None) -> str | None:
    """Where a local sandbox (``paygate sandbox``: a ``base_url`` on this machine) serves
    the certificate it signs webhooks with; ``None`` for PayPal's own hosts."""
    if base_url is None or urlsplit(base_url).hostname not in _LOOPBACK_HOSTS:
        return None
    return base_url.rstrip("/") + "/v1/notifications/certs/"

    # -- after the first charge: subscriptions, dunning, disputes (issue 20) ---------------------


def _has_refund_of(order: Mapping[str, Any], amount: Money) -> bool:
    """Whether the order already holds a refund of exactly ``amount`` (perhaps the one a
    retried request made before its answer was lost)."""
    for refund in _payments_of(order).get("refunds") or ():
        try:
            if isinstance(refund, Mapping) and _parse_money(refund.get("amount"), "") == amount:
                return True
        except (ValidationError, MalformedPayload):
            continue
    return False


def _payments_of(order: Mapping[str, Any]) -> dict[str, Any]:
    units = order.get("purchase_units") or [{}]
    unit = units[0]
    payments = unit.setdefault("payments", {})
    assert isinstance(payments, dict)
    return payments


def _checkout_from_order(order: Mapping[str, Any]) -> CheckoutSession:
    payment = _payment_from_order(order)
    status = (
        CheckoutStatus.COMPLETE
        if payment.status
        in (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
        else CheckoutStatus.EXPIRED
        if payment.status is PaymentStatus.CANCELED
        else CheckoutStatus.OPEN
    )
    return CheckoutSession(
        id=payment.id,
        provider="paypal",
        url=_link(order, "approve", "payer-action"),
        status=status,
        order_id=payment.order_id,
        payment_id=payment.id,
        amount_total=payment.amount,
        raw=order,
    )


def _json_object(body: bytes, error: type[PaygateError]) -> dict[str, Any]:
    return load_object(body, error, "the PayPal webhook body")


def _event_from(body: bytes) -> WebhookEvent:
    raw = _json_object(body, MalformedPayload)
    event_id, provider_type = raw.get("id"), raw.get("event_type")
    if not isinstance(event_id, str) or not isinstance(provider_type, str):
        raise MalformedPayload("the PayPal webhook has no id or event_type")
    occurred_at = _parse_time(raw.get("create_time"))
    mapped = EVENT_TYPES.get(provider_type)
    if mapped is None:
        return WebhookEvent(
            event_id, "paypal", EventType.UNKNOWN, occurred_at, None, provider_type, raw
        )
    event_type, kind = mapped
    resource = raw.get("resource")
    if not isinstance(resource, dict):
        raise MalformedPayload(f"PayPal {provider_type} event {event_id} has no resource")
    try:
        obj = _NORMALIZERS[kind](resource)
    except PaygateError as exc:
        raise MalformedPayload(f"PayPal {provider_type} event {event_id}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise MalformedPayload(
            f"PayPal {provider_type} event {event_id} has an unusable resource "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if event_type is None and isinstance(obj, Refund):  # by the refund's status
        event_type = REFUND_STATUS_EVENTS.get(obj.status, EventType.REFUND_CREATED)
    elif event_type is None and isinstance(obj, Dispute):  # won or lost by its outcome
        event_type = DISPUTE_RESOLUTION_EVENTS.get(obj.status, EventType.DISPUTE_UPDATED)
    elif event_type is None and isinstance(obj, Payment):  # by the order's payment status
        event_type = PAYMENT_STATUS_EVENTS.get(obj.status, EventType.PAYMENT_PROCESSING)
    assert event_type is not None, provider_type
    return WebhookEvent(event_id, "paypal", event_type, occurred_at, obj, provider_type, raw)


#: EvidenceFile.kind -> PayPal's evidence_type for a document of that kind
PAYPAL_EVIDENCE_TYPES: Final[Mapping[str, str]] = {
    "receipt": "PROOF_OF_RECEIPT_COPY",
    "customer_communication": "OTHER",
    "shipping_documentation": "PROOF_OF_DELIVERY_SIGNATURE",
    "service_documentation": "OTHER",
    "refund_policy": "RETURN_POLICY",
    "cancellation_policy": "BILLING_AGREEMENT",
    "other": "OTHER",
}
#: carriers PayPal names (tracking_info.carrier_name); any other is OTHER + its name
PAYPAL_CARRIERS: Final = frozenset({"UPS", "USPS", "FEDEX", "DHL", "TNT", "ROYAL_MAIL"})


def paypal_evidence(evidence: DisputeEvidence) -> dict[str, Any]:
    """The ``input`` part of ``provide-evidence``: a tracked shipment as
    ``PROOF_OF_FULFILLMENT``, the text fields as the notes of one evidence, each file a
    document of the evidence type its kind maps to."""
    items: list[dict[str, Any]] = []
    if evidence.tracking_number:
        carrier = (evidence.shipping_carrier or "OTHER").upper().replace(" ", "_")
        tracking: dict[str, Any] = {"tracking_number": evidence.tracking_number[:255]}
        if carrier in PAYPAL_CARRIERS:
            tracking["carrier_name"] = carrier
        else:
            tracking.update(carrier_name="OTHER", carrier_name_other=carrier[:255])
        items.append(
            {
                "evidence_type": "PROOF_OF_FULFILLMENT",
                "evidence_info": {"tracking_info": [tracking]},
            }
        )
    by_type: dict[str, list[str]] = {}
    for evidence_file in evidence.files:
        by_type.setdefault(PAYPAL_EVIDENCE_TYPES[evidence_file.kind], []).append(evidence_file.name)
    notes = evidence.summary()
    if notes and "OTHER" not in by_type:
        by_type["OTHER"] = []
    for evidence_type, names in by_type.items():
        item: dict[str, Any] = {"evidence_type": evidence_type}
        if names:
            item["documents"] = [{"name": name} for name in names]
        if evidence_type == "OTHER" and notes:
            item["notes"] = notes[:2000]
        items.append(item)
    return {"evidences": items}


# -- request builders of issues 19 and 20, shared with the async twin ------------------------


def check_plan_only(trial_days: Any, trial_end: Any, quantity: Any) -> None:
    """PayPal's trials and quantities are the plan's: refuse them on ``create_subscription``."""
    if trial_days is not None or trial_end is not None or quantity != 1:
        raise NotSupported(
            "paypal: trials and quantities belong to the plan (a TRIAL billing cycle); "
            "create_subscription takes neither trial_days, trial_end nor quantity",
            provider="paypal",
            code="not_supported",
        )


def no_subscription_listing() -> NotSupported:
    return NotSupported(
        "paypal has no API listing subscriptions; the Gateway lists those its store "
        "holds (gw.list_subscriptions reads the store for PayPal)",
        provider="paypal",
        code="not_supported",
    )


def no_undo_cancel() -> NotSupported:
    return NotSupported(
        "paypal cancels subscriptions at once: there is no scheduled cancel to undo",
        provider="paypal",
        code="not_supported",
    )


def revise_request(price_id: str | None, quantity: int | None, proration: str) -> dict[str, Any]:
    """The ``revise`` body; PayPal has no proration (``"none"`` only)."""
    if proration != "none":
        raise NotSupported(
            f"paypal cannot prorate (proration={proration!r}): it revises the plan from "
            "the next billing cycle; pass proration='none'",
            provider="paypal",
            code="not_supported",
        )
    body: dict[str, Any] = {}
    if price_id is not None:
        if not isinstance(price_id, str) or not 3 <= len(price_id) <= 50:
            raise ValidationError(f"price_id must be a PayPal plan id, got {price_id!r}")
        body["plan_id"] = price_id
    if quantity is not None:
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise ValidationError(f"quantity must be an int >= 1, got {quantity!r}")
        body["quantity"] = str(quantity)
    if not body:
        raise ValidationError("change_subscription needs price_id or quantity")
    return body


def with_approval(current: Subscription, revised: Mapping[str, Any]) -> Subscription:
    """The subscription, with the revision's ``approve`` link where the buyer must consent."""
    approve = _link(revised, "approve")
    return dataclasses.replace(current, redirect_url=approve) if approve else current


#: ``suspend`` and ``activate`` bodies
PAUSE_BODY: Final[Mapping[str, str]] = {"reason": "Paused by the merchant"}
RESUME_BODY: Final[Mapping[str, str]] = {"reason": "Resumed by the merchant"}


def outstanding_capture_request(
    invoice_id: str, subscription: Mapping[str, Any]
) -> tuple[Money, dict[str, Any]]:
    """What a past-due subscription owes, and the ``capture`` body that charges it."""
    balance = (subscription.get("billing_info") or {}).get("outstanding_balance")
    owed = _parse_money(balance, f"subscription {invoice_id} outstanding balance")
    if owed.amount <= 0:
        raise InvalidRequest(
            f"paypal subscription {invoice_id} owes nothing: nothing to retry",
            provider="paypal",
            code="nothing_outstanding",
        )
    body = {
        "note": "Retrying the failed payment",
        "capture_type": "OUTSTANDING_BALANCE",
        "amount": _money_field(owed),
    }
    return owed, body


def invoice_from_capture(
    transaction: Mapping[str, Any], subscription: Mapping[str, Any], owed: Money, path: str
) -> Invoice:
    """The retried cycle as an [`Invoice`][paygate.models.Invoice]."""
    completed = str(transaction.get("status")) == "COMPLETED"
    return Invoice(
        id=str(transaction.get("id") or f"cycle@{path}"),
        provider="paypal",
        customer_id=subscription.get("custom_id"),
        status=InvoiceStatus.PAID if completed else InvoiceStatus.OPEN,
        amount_due=owed,
        amount_paid=owed if completed else Money(0, owed.currency),
        created_at=_parse_time(transaction.get("time")),
        raw=dict(transaction),
        subscription_id=path,
        billing_reason="subscription_cycle",
    )


def dispute_list_path(capture_id: str | None) -> str:
    """``GET /v1/customer/disputes``, of one capture when given."""
    path = "/v1/customer/disputes?page_size=50"
    if capture_id is not None:
        path += f"&disputed_transaction_id={_path_id(capture_id, 'capture id')}"
    return path


def evidence_parts(evidence: Any, submit: bool) -> list[tuple[str, tuple[str | None, bytes, str]]]:
    """``provide-evidence``'s multipart parts: the ``input`` JSON and one ``evidence-file``
    per file. PayPal has no draft evidence: ``submit=False`` is refused."""
    if not submit:
        raise NotSupported(
            "paypal sends evidence at once: submit=False (staging) is not available",
            provider="paypal",
            code="not_supported",
        )
    if not isinstance(evidence, DisputeEvidence):
        raise ValidationError(f"evidence must be a DisputeEvidence, got {type(evidence).__name__}")
    parts: list[tuple[str, tuple[str | None, bytes, str]]] = [
        ("input", (None, json.dumps(paypal_evidence(evidence)).encode(), "application/json"))
    ]
    parts += [("evidence-file", (f.name, f.content, f.content_type)) for f in evidence.files]
    return parts


def accept_claim_parts() -> list[tuple[str, tuple[str | None, bytes, str]]]:
    note = {"note": "The merchant accepts the claim."}
    return [("input", (None, json.dumps(note).encode(), "application/json"))]


def setup_token_request(
    customer_id: str,
    return_url: str | None,
    cancel_url: str | None,
    usage: str,
    payment_method: str | None,
    verification_token: str | None,
) -> dict[str, Any]:
    """``POST /v3/vault/setup-tokens``: the buyer's PayPal wallet, approved at PayPal."""
    _check_vault_customer(customer_id)
    if payment_method is not None or verification_token is not None:
        raise ValidationError(
            "PayPal saves a wallet after the buyer approves it at PayPal: call "
            "create_setup without payment_method or verification_token"
        )
    if not return_url:
        raise ValidationError("PayPal needs return_url: the buyer comes back there")
    if usage not in ("off_session", "on_session"):
        raise ValidationError(f"usage must be 'off_session' or 'on_session', got {usage!r}")
    return {
        "payment_source": {"paypal": {
            "usage_type": "MERCHANT",
            "customer_type": "CONSUMER",
            "experience_context": {
                "return_url": return_url,
                "cancel_url": cancel_url or return_url,
                "shipping_preference": "NO_SHIPPING",
                "vault_instruction": "ON_PAYER_APPROVAL",
            },
        }},
        "customer": {"id": customer_id},
    }  # fmt: skip


def setup_token_path(params: Mapping[str, str]) -> str:
    """The setup token of the buyer's return (``?approval_token_id=``), as a path id."""
    setup_id = params.get("approval_token_id") if isinstance(params, Mapping) else None
    if not setup_id:
        raise ValidationError("the PayPal return has no 'approval_token_id' parameter")
    return _path_id(setup_id, "setup token id")


def _token_customer(token: Mapping[str, Any]) -> str | None:
    customer = token.get("customer")
    return customer.get("id") if isinstance(customer, Mapping) else None


def payment_token_request(token: Mapping[str, Any]) -> dict[str, Any]:
    # SETUP_TOKEN: PayPal's current token_id_request (the older published Vault v3 file
    # lists only BILLING_AGREEMENT)
    return {"payment_source": {"token": {"id": str(token["id"]), "type": "SETUP_TOKEN"}}}


def setup_from_payment_token(token: Mapping[str, Any], saved: Mapping[str, Any]) -> SetupSession:
    """The finished setup: the approved setup token exchanged for ``saved``."""
    method = payment_method_from_paypal(saved)
    return SetupSession(
        id=str(token["id"]),
        provider="paypal",
        status=SetupStatus.SUCCEEDED,
        customer_id=method.customer_id or _token_customer(token),
        payment_method_id=method.id,
        raw={"setup_token": token, "payment_token": saved},
    )


def vault_page_path(customer_id: str, page: int) -> str:
    query = urlencode({"customer_id": customer_id, "page_size": VAULT_PAGE_SIZE, "page": page})
    return f"/v3/vault/payment-tokens?{query}"


def vault_page_methods(listing: Mapping[str, Any], page: int) -> tuple[list[PaymentMethod], bool]:
    """The payment methods of one page of tokens, and whether it was the last page."""
    tokens = listing.get("payment_tokens") or []
    methods = [
        payment_method_from_paypal({"customer": listing.get("customer"), **token})
        for token in tokens
        if isinstance(token, Mapping)
    ]
    return methods, not tokens or page >= int(listing.get("total_pages") or 1)
