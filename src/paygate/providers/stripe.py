"""Stripe adapter: PaymentIntents, Refunds, Checkout, Billing and verified webhooks.

Built on the official ``stripe`` SDK (``StripeClient`` and its ``v1`` services). The module
reads top to bottom as: mapping tables (data), currency rules, settings, translation from
Stripe's JSON objects into paygate's dataclasses, then
[`StripeProvider`][paygate.providers.stripe.StripeProvider], which only does the HTTP calls. Webhook
signature checking lives in `._stripe_webhook`.

Everything Stripe returns is translated from plain dicts: API answers through
``StripeObject.to_dict()``, webhook bodies straight from one ``json.loads`` (no
``StripeObject`` is built on the webhook path, which is what makes it fast).
"""

from __future__ import annotations

import functools
import hashlib
import io
import ipaddress
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final, TypeAlias, TypeVar
from urllib.parse import quote_plus, urlsplit

import requests
import stripe
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic import ValidationError as PydanticValidationError

from paygate import errors
from paygate._config import settings_error
from paygate._iso4217 import EXPONENTS
from paygate._json import load_object
from paygate._observe import fields
from paygate._redact import redact_card_numbers
from paygate._retry import RetryPolicy, attempt_timeout, call_with
from paygate.errors import ConfigurationError, InvalidAmount, MalformedPayload, ValidationError
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
    EvidenceFile,
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
)
from paygate.money import Money
from paygate.provider import BaseProvider, Capability, Proration
from paygate.providers._http_faults import requests_failure, retry_after_from, unexpected_response
from paygate.providers._stripe_webhook import find_signature_header, verify_signature
from paygate.providers._window import check_page_size, check_window

__all__ = [
    "CHECKOUT_STATUS",
    "DECLINE_CODES",
    "DISPUTE_STATUS",
    "BALANCE_TRANSACTIONS_EXPAND",
    "BALANCE_TRANSACTIONS_MAX_PAGE",
    "ERRORS",
    "EVENT_TYPES",
    "INVOICE_STATUS",
    "MAX_AMOUNT_DIGITS",
    "PAYMENT_INTENT_STATUS",
    "REFUND_STATUS",
    "STATUS_ERRORS",
    "SUBSCRIPTION_STATUS",
    "StripeProvider",
    "StripeSettings",
    "from_stripe_amount",
    "stripe_exponent",
    "to_stripe_amount",
]

logger = logging.getLogger("paygate.providers.stripe")


# The async face lives in its own module, imported on first use (__getattr__); type
# checkers see it here. (A local TYPE_CHECKING, which mypy and pyright recognize by name,
# leaves this module's imports as they were.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from paygate.providers._stripe_async import AsyncStripeProvider as AsyncStripeProvider


def __getattr__(name: str) -> Any:
    if name == "AsyncStripeProvider":
        from paygate.providers._stripe_async import AsyncStripeProvider

        return AsyncStripeProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


PROVIDER = "stripe"

# == mapping tables ============================================================================

#: PaymentIntent.status -> PaymentStatus. ``requires_payment_method`` after a failed attempt
#: (``last_payment_error`` set) is ``failed``: Stripe sends the intent back there on a decline.
PAYMENT_INTENT_STATUS: Final[Mapping[str, PaymentStatus]] = {
    "requires_payment_method": PaymentStatus.PENDING,
    "requires_confirmation": PaymentStatus.PENDING,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "processing": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.AUTHORIZED,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}

#: Refund.status -> RefundStatus
REFUND_STATUS: Final[Mapping[str, RefundStatus]] = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.REQUIRES_ACTION,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}

#: Subscription.status -> SubscriptionStatus (Stripe's set is paygate's set)
SUBSCRIPTION_STATUS: Final[Mapping[str, SubscriptionStatus]] = {
    "incomplete": SubscriptionStatus.INCOMPLETE,
    "incomplete_expired": SubscriptionStatus.INCOMPLETE_EXPIRED,
    "trialing": SubscriptionStatus.TRIALING,
    "active": SubscriptionStatus.ACTIVE,
    "past_due": SubscriptionStatus.PAST_DUE,
    "paused": SubscriptionStatus.PAUSED,
    "canceled": SubscriptionStatus.CANCELED,
    "unpaid": SubscriptionStatus.UNPAID,
}

#: Invoice.status -> InvoiceStatus
INVOICE_STATUS: Final[Mapping[str, InvoiceStatus]] = {
    "draft": InvoiceStatus.DRAFT,
    "open": InvoiceStatus.OPEN,
    "paid": InvoiceStatus.PAID,
    "uncollectible": InvoiceStatus.UNCOLLECTIBLE,
    "void": InvoiceStatus.VOID,
}

#: Dispute.status -> DisputeStatus. ``warning_*`` are inquiries (no money moved yet);
#: ``prevented`` was stopped before becoming a chargeback.
DISPUTE_STATUS: Final[Mapping[str, DisputeStatus]] = {
    "warning_needs_response": DisputeStatus.OPEN,
    "needs_response": DisputeStatus.OPEN,
    "warning_under_review": DisputeStatus.UNDER_REVIEW,
    "under_review": DisputeStatus.UNDER_REVIEW,
    "won": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
    "warning_closed": DisputeStatus.CLOSED,
    "prevented": DisputeStatus.CLOSED,
}

#: Dispute.reason -> DisputeReason
DISPUTE_REASONS: Final[Mapping[str, DisputeReason]] = {
    "fraudulent": DisputeReason.FRAUDULENT,
    "unrecognized": DisputeReason.UNRECOGNIZED,
    "duplicate": DisputeReason.DUPLICATE,
    "subscription_canceled": DisputeReason.SUBSCRIPTION_CANCELED,
    "product_not_received": DisputeReason.PRODUCT_NOT_RECEIVED,
    "product_unacceptable": DisputeReason.PRODUCT_UNACCEPTABLE,
    "credit_not_processed": DisputeReason.CREDIT_NOT_PROCESSED,
    "incorrect_account_details": DisputeReason.INCORRECT_AMOUNT,
    "insufficient_funds": DisputeReason.GENERAL,
    "bank_cannot_process": DisputeReason.GENERAL,
    "check_returned": DisputeReason.GENERAL,
    "customer_initiated": DisputeReason.GENERAL,
    "debit_not_authorized": DisputeReason.FRAUDULENT,
    "general": DisputeReason.GENERAL,
    "noncompliant": DisputeReason.GENERAL,
}

#: checkout.Session.status -> CheckoutStatus
CHECKOUT_STATUS: Final[Mapping[str, CheckoutStatus]] = {
    "open": CheckoutStatus.OPEN,
    "complete": CheckoutStatus.COMPLETE,
    "expired": CheckoutStatus.EXPIRED,
}

#: Stripe event type -> paygate EventType. ``None`` means "decided by the object's status"
#: (see ``_STATUS_DEPENDENT_EVENTS``). Anything not listed is ``EventType.UNKNOWN``.
EVENT_TYPES: Final[Mapping[str, EventType | None]] = {
    "payment_intent.created": EventType.PAYMENT_CREATED,
    "payment_intent.requires_action": EventType.PAYMENT_ACTION_REQUIRED,
    "payment_intent.processing": EventType.PAYMENT_PROCESSING,
    "payment_intent.amount_capturable_updated": EventType.PAYMENT_AUTHORIZED,
    "payment_intent.succeeded": EventType.PAYMENT_SUCCEEDED,
    "payment_intent.payment_failed": EventType.PAYMENT_FAILED,
    "payment_intent.canceled": EventType.PAYMENT_CANCELED,
    # charge.refunded: the charge's newest refund when Stripe includes the list, see
    # _charge_refunded_object; refund.*: the Refund, moved by its status.
    "charge.refunded": None,
    "refund.created": EventType.REFUND_CREATED,
    "refund.updated": None,
    "refund.failed": EventType.REFUND_FAILED,
    # the older name some payment methods still send for a refund changing status
    "charge.refund.updated": None,
    "charge.dispute.created": EventType.DISPUTE_OPENED,
    "charge.dispute.updated": EventType.DISPUTE_UPDATED,
    "charge.dispute.closed": None,
    "charge.dispute.funds_withdrawn": EventType.DISPUTE_UPDATED,
    "charge.dispute.funds_reinstated": EventType.DISPUTE_UPDATED,
    "customer.subscription.created": EventType.SUBSCRIPTION_CREATED,
    "customer.subscription.updated": EventType.SUBSCRIPTION_UPDATED,
    "customer.subscription.paused": EventType.SUBSCRIPTION_UPDATED,
    "customer.subscription.resumed": EventType.SUBSCRIPTION_UPDATED,
    "customer.subscription.deleted": EventType.SUBSCRIPTION_CANCELED,
    "customer.subscription.trial_will_end": EventType.SUBSCRIPTION_TRIAL_WILL_END,
    "invoice.upcoming": EventType.INVOICE_UPCOMING,
    "invoice.created": EventType.INVOICE_CREATED,
    # paygate has no "finalized" type: a finalized invoice is the one the customer sees
    # (status open); provider_type keeps the distinction.
    "invoice.finalized": EventType.INVOICE_CREATED,
    "invoice.paid": EventType.INVOICE_PAID,
    "invoice.payment_failed": EventType.INVOICE_PAYMENT_FAILED,
    "invoice.voided": EventType.INVOICE_VOIDED,
    "checkout.session.completed": EventType.CHECKOUT_COMPLETED,
    # delayed payment methods (SEPA, ...): the session's payment settles later
    "checkout.session.async_payment_succeeded": EventType.PAYMENT_SUCCEEDED,
    "checkout.session.async_payment_failed": EventType.PAYMENT_FAILED,
    "checkout.session.expired": EventType.CHECKOUT_EXPIRED,
    "customer.created": EventType.CUSTOMER_CREATED,
    "customer.updated": EventType.CUSTOMER_UPDATED,
    "customer.deleted": EventType.CUSTOMER_DELETED,
    "payment_method.attached": EventType.PAYMENT_METHOD_ATTACHED,
    "payment_method.updated": EventType.PAYMENT_METHOD_UPDATED,
    # the card network's account updater renewed the card (new expiry or number)
    "payment_method.automatically_updated": EventType.PAYMENT_METHOD_UPDATED,
    "payment_method.detached": EventType.PAYMENT_METHOD_DETACHED,
    "setup_intent.succeeded": EventType.SETUP_SUCCEEDED,
    "setup_intent.setup_failed": EventType.SETUP_FAILED,
}

#: SetupIntent.status -> SetupStatus: before it succeeds, a setup waits on the customer
SETUP_INTENT_STATUS: Final[Mapping[str, SetupStatus]] = {
    "requires_payment_method": SetupStatus.REQUIRES_ACTION,
    "requires_confirmation": SetupStatus.REQUIRES_ACTION,
    "requires_action": SetupStatus.REQUIRES_ACTION,
    "processing": SetupStatus.PROCESSING,
    "succeeded": SetupStatus.SUCCEEDED,
    "canceled": SetupStatus.CANCELED,
}

#: checkout.Session.status in setup mode -> SetupStatus
CHECKOUT_SETUP_STATUS: Final[Mapping[str, SetupStatus]] = {
    "open": SetupStatus.REQUIRES_ACTION,
    "complete": SetupStatus.SUCCEEDED,
    "expired": SetupStatus.CANCELED,
}

#: a Checkout Session in setup mode saves a payment method: its events are setup events
#: (with a [`SetupSession`][paygate.models.SetupSession]), not checkout ones
CHECKOUT_SETUP_EVENTS: Final[Mapping[str, EventType]] = {
    "checkout.session.completed": EventType.SETUP_SUCCEEDED,
    "checkout.session.expired": EventType.SETUP_FAILED,
}

#: PaymentMethod.type -> PaymentMethodKind; any other type is ``other``
PAYMENT_METHOD_KINDS: Final[Mapping[str, PaymentMethodKind]] = {
    "card": PaymentMethodKind.CARD,
    "paypal": PaymentMethodKind.PAYPAL,
    "us_bank_account": PaymentMethodKind.BANK_ACCOUNT,
    "sepa_debit": PaymentMethodKind.BANK_ACCOUNT,
    "bacs_debit": PaymentMethodKind.BANK_ACCOUNT,
    "au_becs_debit": PaymentMethodKind.BANK_ACCOUNT,
    "acss_debit": PaymentMethodKind.BANK_ACCOUNT,
    "nz_bank_account": PaymentMethodKind.BANK_ACCOUNT,
    "link": PaymentMethodKind.WALLET,
    "cashapp": PaymentMethodKind.WALLET,
    "amazon_pay": PaymentMethodKind.WALLET,
    "revolut_pay": PaymentMethodKind.WALLET,
    "kakao_pay": PaymentMethodKind.WALLET,
    "naver_pay": PaymentMethodKind.WALLET,
}

#: Stripe's largest ``limit`` for GET /v1/customers
CUSTOMERS_MAX_PAGE: Final = 100

#: refund.updated / charge.refunded: the event type follows the refund's status
REFUND_EVENT_BY_STATUS: Final[Mapping[RefundStatus, EventType]] = {
    RefundStatus.PENDING: EventType.REFUND_CREATED,
    RefundStatus.REQUIRES_ACTION: EventType.REFUND_CREATED,
    RefundStatus.SUCCEEDED: EventType.REFUND_SUCCEEDED,
    RefundStatus.FAILED: EventType.REFUND_FAILED,
    RefundStatus.CANCELED: EventType.REFUND_FAILED,
}

#: What a charge's disputes make of a captured payment's status (``get_payment``): one
#: lost is a chargeback, one still open holds the payment disputed, and won or closed ones
#: leave it as its refunds say.
DISPUTE_PAYMENT_STATUS: Final[Mapping[DisputeStatus, PaymentStatus | None]] = {
    DisputeStatus.LOST: PaymentStatus.CHARGED_BACK,
    DisputeStatus.OPEN: PaymentStatus.DISPUTED,
    DisputeStatus.UNDER_REVIEW: PaymentStatus.DISPUTED,
    DisputeStatus.WON: None,
    DisputeStatus.CLOSED: None,
}

#: GET /v1/payment_intents/{id} (``get_payment``): the charge with its refunds, in one
#: request. Since API 2022-11-15 a charge lists its refunds only when asked to.
PAYMENT_EXPAND: Final = ("latest_charge", "latest_charge.refunds")

#: charge.dispute.closed: won / lost, and an inquiry closed without a chargeback puts the
#: payment back where it was, like a won dispute (Dispute.status says ``closed``).
DISPUTE_CLOSED_EVENT: Final[Mapping[DisputeStatus, EventType]] = {
    DisputeStatus.WON: EventType.DISPUTE_WON,
    DisputeStatus.CLOSED: EventType.DISPUTE_WON,
    DisputeStatus.LOST: EventType.DISPUTE_LOST,
    DisputeStatus.OPEN: EventType.DISPUTE_UPDATED,
    DisputeStatus.UNDER_REVIEW: EventType.DISPUTE_UPDATED,
}

#: stripe exception class -> paygate error class (most specific first; walked by MRO)
ERRORS: Final[Mapping[type[Exception], type[errors.ProviderError]]] = {
    stripe.CardError: errors.CardDeclined,
    stripe.RateLimitError: errors.RateLimited,
    stripe.AuthenticationError: errors.AuthenticationError,
    stripe.PermissionError: errors.AuthenticationError,
    stripe.APIConnectionError: errors.ProviderUnavailable,
    stripe.IdempotencyError: errors.IdempotencyConflict,
    stripe.InvalidRequestError: errors.InvalidRequest,
    stripe.APIError: errors.ProviderUnavailable,
    stripe.StripeError: errors.ProviderError,
}

#: 4xx status -> error class, for the answers the SDK raises as a bare ``APIError`` (405,
#: 409, 410, ...); any other 4xx is ``InvalidRequest``: only 429 and 408 are retried
STATUS_ERRORS: Final[Mapping[int, type[errors.ProviderError]]] = {
    401: errors.AuthenticationError,
    403: errors.AuthenticationError,
    404: errors.NotFound,
    408: errors.ProviderUnavailable,
    409: errors.IdempotencyConflict,
    429: errors.RateLimited,
}

#: InvalidRequestError codes that mean "no such object"
NOT_FOUND_CODES: Final = frozenset({"resource_missing"})

#: Stripe decline_code / error code -> paygate's standard decline code
DECLINE_CODES: Final[Mapping[str, str]] = {
    "card_declined": "card_declined",
    "generic_decline": "card_declined",
    "insufficient_funds": "insufficient_funds",
    "expired_card": "expired_card",
    "incorrect_cvc": "incorrect_cvc",
    "invalid_cvc": "incorrect_cvc",
    "incorrect_number": "incorrect_number",
    "invalid_number": "incorrect_number",
    "incorrect_zip": "incorrect_zip",
    "processing_error": "processing_error",
    "lost_card": "lost_card",
    "stolen_card": "stolen_card",
    "fraudulent": "fraudulent",
    "merchant_blacklist": "fraudulent",
    "do_not_honor": "do_not_honor",
    "card_not_supported": "card_not_supported",
    "currency_not_supported": "currency_not_supported",
    "authentication_required": "authentication_required",
    "try_again_later": "try_again_later",
    "approve_with_id": "try_again_later",
    "issuer_not_available": "try_again_later",
    "card_velocity_exceeded": "limit_exceeded",
    "withdrawal_count_limit_exceeded": "limit_exceeded",
}

#: GET /v1/balance_transactions (``iter_balance_transactions``): what is expanded so that each
#: row carries its order id the way ``paygate.reconcile.StripeBalanceTransactions`` reads it -
#: ``source`` (the charge, with the metadata paygate sets), and ``source.charge`` for refunds
#: and disputes, whose own metadata does not hold the order id. Stripe applies a nested
#: expansion only to the sources that have the field (a charge has no ``charge``).
BALANCE_TRANSACTIONS_EXPAND: Final = ("data.source", "data.source.charge")
#: Stripe's largest ``limit`` for a list call
BALANCE_TRANSACTIONS_MAX_PAGE: Final = 100

#: refund reasons Stripe accepts as ``reason``; any other reason goes into metadata
REFUND_REASONS: Final = frozenset({"duplicate", "fraudulent", "requested_by_customer"})

# == currency rules =============================================================================
# Stripe amounts are integers in the currency's minor unit *as Stripe defines it*, which is
# not always ISO 4217's (https://docs.stripe.com/currencies):
# * zero-decimal: the amount is whole units (¥500 -> 500);
# * three-decimal: BHD JOD KWD OMR TND, and the last digit must be 0 (5.124 KWD is refused:
#   Stripe asks integrations to round, paygate refuses rather than move money silently);
# * ISK: ISO has no minor unit, Stripe keeps it two-decimal in the API for backwards
#   compatibility and requires amounts divisible by 100 (5 ISK -> 500);
# * HUF, TWD: two-decimal for charges (as ISO); only *payouts* must be whole units, and
#   paygate makes no payouts, so charges convert one to one;
# * UGX: zero-decimal at Stripe, as in ISO;
# * every other currency is two-decimal at Stripe;
# * an amount has at most 8 digits (99999999 in Stripe's minor unit).

# fmt: off
ZERO_DECIMAL: Final = frozenset({
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
    "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
})
# fmt: on
THREE_DECIMAL: Final = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
#: currency -> the multiple every Stripe amount in it must be
AMOUNT_STEP: Final[Mapping[str, int]] = {
    **dict.fromkeys(THREE_DECIMAL, 10),
    "ISK": 100,
}
MAX_AMOUNT_DIGITS: Final = 8
_MAX_AMOUNT: Final = 10**MAX_AMOUNT_DIGITS - 1


def stripe_exponent(currency: str) -> int:
    """Digits after the decimal point in Stripe's API amounts for ``currency`` (upper-case)."""
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def to_stripe_amount(money: Money) -> tuple[int, str]:
    """``(amount, currency)`` as Stripe's API wants them, or
    [`InvalidAmount`][paygate.errors.InvalidAmount].

    Exact: an amount Stripe cannot represent (a fraction of a zero-decimal unit, a
    three-decimal amount not ending in 0, more than 8 digits, a negative amount) is
    refused, never rounded.
    """
    currency = money.currency
    shift = stripe_exponent(currency) - EXPONENTS[currency]
    if shift >= 0:
        amount = money.amount * 10**shift
    else:
        amount, remainder = divmod(money.amount, 10**-shift)
        if remainder:
            raise InvalidAmount(
                f"{money} cannot be charged through Stripe: {currency} is zero-decimal there, "
                "so the amount must be whole units"
            )
    if amount < 0:
        raise InvalidAmount(f"{money}: Stripe amounts cannot be negative")
    step = AMOUNT_STEP.get(currency)
    if step and amount % step:
        raise InvalidAmount(
            f"{money} cannot be charged through Stripe: {currency} amounts must be a "
            f"multiple of {step} in Stripe's minor unit (got {amount}); paygate does not round"
        )
    if amount > _MAX_AMOUNT:
        raise InvalidAmount(
            f"{money} is too large for Stripe: at most {MAX_AMOUNT_DIGITS} digits "
            f"({_MAX_AMOUNT} in {currency}'s Stripe minor unit)"
        )
    return amount, currency.lower()


def from_stripe_amount(amount: int, currency: str) -> Money:
    """The [`Money`][paygate.money.Money] of a Stripe ``amount`` in ``currency`` (any case)."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount(f"Stripe amount must be an int, got {amount!r}")
    if not isinstance(currency, str):
        raise errors.UnknownCurrency(f"Stripe currency must be a str, got {currency!r}")
    code = currency.upper()
    if code not in EXPONENTS:
        raise errors.UnknownCurrency(f"unknown currency {currency!r} in a Stripe object")
    shift = EXPONENTS[code] - stripe_exponent(code)
    if shift >= 0:
        return Money(amount * 10**shift, code)
    whole, remainder = divmod(amount, 10**-shift)
    if remainder:
        # e.g. a fractional-króna ISK charge made before Stripe made ISK whole-unit only
        raise InvalidAmount(
            f"Stripe amount {amount} {code} has a fraction of a unit that ISO 4217 {code} "
            "does not have"
        )
    return Money(whole, code)


# == settings ===================================================================================

_KEY_PREFIXES: Final = ("sk_test_", "sk_live_", "rk_test_", "rk_live_")
_TEST_ENVIRONMENTS: Final = frozenset({"test", "testing", "ci", "dev", "development", "local"})
#: API keys, webhook secrets, and the ``client_secret`` of PaymentIntents, SetupIntents and
#: Checkout Sessions (``pi_..._secret_...``): the SDK logs whole response bodies at DEBUG
_SECRET_PATTERN: Final = re.compile(
    r"\b(?:sk|rk|pk|whsec)_[A-Za-z0-9_*]+|\b[A-Za-z0-9_]+_secret_[A-Za-z0-9_*]+"
)


class StripeSettings(BaseModel):
    """Validated adapter settings; strings (from the environment) are coerced.

    ``webhook_secret`` takes one secret or several (a list, or a comma-separated string
    such as ``PAYGATE_STRIPE_WEBHOOK_SECRET=whsec_new,whsec_old``) for rotation.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    api_key: SecretStr
    webhook_secret: tuple[SecretStr, ...] = ()
    webhook_tolerance: int = Field(default=300, gt=0)
    api_version: str | None = None
    base_url: str | None = None
    #: seconds one request may take; the Gateway's retry budget (a deadline) cuts it further
    timeout: float = Field(default=10.0, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    #: declare this a test deployment: a live key is then refused
    test_mode: bool = False

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _split_secrets(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an http(s) URL such as http://localhost:12111")
        if parts.scheme == "http" and not _is_local_url(value):
            # the API key is the bearer token of every request: plain http only to a local
            # stripe-mock / fake (localhost, stripe-mock, *.local, private addresses)
            raise ValueError("base_url must be https unless it points at a local server")
        return value.rstrip("/")

    @property
    def secrets_bytes(self) -> tuple[bytes, ...]:
        return tuple(s.get_secret_value().encode("utf-8") for s in self.webhook_secret)


def _is_local_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "stripe-mock") or host.endswith((".localhost", ".local", ".test")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def _load_settings(settings: Mapping[str, Any]) -> StripeSettings:
    values = dict(settings)
    if values.get("api_key") in (None, ""):
        raise ConfigurationError(
            "stripe: api_key is missing (pass api_key=... or set PAYGATE_STRIPE_API_KEY)"
        )
    try:
        parsed = StripeSettings(**values)
    except PydanticValidationError as exc:
        raise settings_error(exc, "Stripe settings", env_prefix="PAYGATE_STRIPE_") from None
    key = parsed.api_key.get_secret_value()
    if not key.startswith(_KEY_PREFIXES):
        raise ConfigurationError(
            "stripe: api_key must be a secret or restricted key (sk_test_..., sk_live_..., "
            "rk_...); a publishable key (pk_...) cannot make server-side calls"
        )
    if "_live_" in key[:8]:
        reason = _test_setting(parsed)
        if reason:
            raise ConfigurationError(
                f"stripe: a live API key (sk_live_/rk_live_) in a test setting ({reason}); "
                "use a test key (sk_test_...)"
            )
    return parsed


def _test_setting(settings: StripeSettings) -> str | None:
    """Why this configuration is obviously a test one, or None."""
    if settings.test_mode:
        return "test_mode=True"
    env = os.environ.get("PAYGATE_ENV", "").strip().lower()
    if env in _TEST_ENVIRONMENTS:
        return f"PAYGATE_ENV={env}"
    if settings.base_url and _is_local_url(settings.base_url):
        return "base_url points at a local server"
    return None


# == translation: Stripe JSON -> paygate ========================================================


def _ts(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):  # beyond the calendar: as unusable as a str
        return None


def _id_of(value: Any) -> str | None:
    """An expandable field: an id string, an expanded object, or null."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        ident = value.get("id")
        return ident if isinstance(ident, str) else None
    return None


def _metadata(obj: Mapping[str, Any]) -> dict[str, str]:
    meta = obj.get("metadata")
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, Mapping) else {}


def _money(obj: Mapping[str, Any], field: str = "amount") -> Money:
    return from_stripe_amount(obj.get(field) or 0, obj["currency"])


def _decline_code(code: str | None) -> str:
    return DECLINE_CODES.get(code or "", "card_declined")


def _redirect_url(intent: Mapping[str, Any]) -> str | None:
    action = intent.get("next_action")
    if not isinstance(action, Mapping):
        return None
    redirect = action.get("redirect_to_url")
    if isinstance(redirect, Mapping) and isinstance(redirect.get("url"), str):
        return str(redirect["url"])
    return None


def _listed_refunds(
    charge: Mapping[str, Any], payment_intent: str | None
) -> list[Mapping[str, Any]] | None:
    """The charge's refunds when it lists all of them (``refunds`` expanded, no more pages)."""
    listing = charge.get("refunds")
    if not isinstance(listing, Mapping) or listing.get("has_more"):
        return None
    data = listing.get("data")
    if not isinstance(data, list):
        return None
    return [
        {**r, "payment_intent": payment_intent} if payment_intent and not r.get("payment_intent")
        else r
        for r in data
    ]  # fmt: skip


def _refunded_by_amounts(charge: Mapping[str, Any], currency: str) -> Money:
    """What a charge without its refund list says was refunded: ``amount_refunded`` less
    the uncaptured remainder of a partial capture, which Stripe releases and counts in
    ``amount_refunded`` too (amount 20675, amount_captured 20300: 375 released, not
    refunded)."""
    refunded = charge.get("amount_refunded") or 0
    if charge.get("captured"):
        released = max((charge.get("amount") or 0) - (charge.get("amount_captured") or 0), 0)
        refunded = max(refunded - released, 0)
    return from_stripe_amount(refunded, currency)


def payment_from_stripe(
    intent: Mapping[str, Any],
    *,
    refunds: Sequence[Mapping[str, Any]] | None = None,
    disputes: Sequence[Mapping[str, Any]] | None = None,
) -> Payment:
    """A PaymentIntent (with ``latest_charge`` expanded or not) as a
    [`Payment`][paygate.models.Payment].

    The refunded amount is the sum of the succeeded refunds: those ``refunds`` names, else
    the ones the expanded charge lists (``latest_charge.refunds``), each kept on
    ``Payment.refunds``. Only a charge that lists none falls back on its amounts, less the
    released remainder of a partial capture. ``disputes``: the charge's disputes, when it
    is ``disputed`` (a lost one is a chargeback, a won one leaves the payment as it was);
    without them a disputed charge reads as ``disputed``.
    """
    status = PAYMENT_INTENT_STATUS.get(intent.get("status", ""), PaymentStatus.PENDING)
    error = intent.get("last_payment_error")
    failure = None
    if isinstance(error, Mapping) and error:
        decline = error.get("decline_code") or error.get("code")
        failure = PaymentFailure(
            code=str(error.get("code") or error.get("type") or "payment_failed"),
            message=str(error.get("message") or ""),
            decline_code=_decline_code(decline) if error.get("type") == "card_error" else None,
        )
        if intent.get("status") == "requires_payment_method":
            status = PaymentStatus.FAILED
    currency = intent["currency"]
    amount = from_stripe_amount(intent["amount"], currency)
    # the captured amount: a partial capture's uncaptured remainder is released, not refunded
    captured = from_stripe_amount(intent.get("amount_received") or 0, currency)
    refunded = Money(0, amount.currency)
    listed: tuple[Refund, ...] = ()
    charge = intent.get("latest_charge")
    if isinstance(charge, Mapping):  # expanded: refunds and disputes show on the charge
        raw_refunds = refunds if refunds is not None else _listed_refunds(charge, intent["id"])
        if raw_refunds is not None:
            listed = tuple(refund_from_stripe(r) for r in raw_refunds)
            for refund in listed:
                if refund.status is RefundStatus.SUCCEEDED:
                    refunded += refund.amount
        else:
            refunded = _refunded_by_amounts(charge, currency)
        if status is PaymentStatus.SUCCEEDED:
            status = _captured_status(captured, refunded, charge, disputes)
    metadata = _metadata(intent)
    return Payment(
        id=intent["id"],
        provider=PROVIDER,
        order_id=metadata.get("order_id"),
        amount=amount,
        status=status,
        amount_captured=captured,
        amount_refunded=refunded,
        customer_id=_id_of(intent.get("customer")),
        client_secret=intent.get("client_secret"),
        redirect_url=_redirect_url(intent),
        failure=failure,
        created_at=_ts(intent.get("created")),
        charge_id=_id_of(charge),
        metadata=metadata,
        refunds=listed,
        raw=intent,
    )


def _captured_status(
    captured: Money,
    refunded: Money,
    charge: Mapping[str, Any],
    disputes: Sequence[Mapping[str, Any]] | None,
) -> PaymentStatus:
    """A captured payment's status from its refunds and its charge's disputes."""
    if charge.get("disputed"):
        if disputes is None:
            return PaymentStatus.DISPUTED  # disputed, outcome unknown without the disputes
        outcomes = {DISPUTE_STATUS.get(d.get("status") or "", DisputeStatus.OPEN) for d in disputes}
        for dispute_status in (DisputeStatus.LOST, DisputeStatus.OPEN, DisputeStatus.UNDER_REVIEW):
            held = DISPUTE_PAYMENT_STATUS[dispute_status]
            if dispute_status in outcomes and held is not None:
                return held
    if refunded.amount and refunded >= captured:
        return PaymentStatus.REFUNDED
    if refunded.amount:
        return PaymentStatus.PARTIALLY_REFUNDED
    return PaymentStatus.SUCCEEDED


def refund_from_stripe(refund: Mapping[str, Any]) -> Refund:
    metadata = _metadata(refund)
    payment_id = _id_of(refund.get("payment_intent")) or _id_of(refund.get("charge")) or ""
    return Refund(
        id=refund["id"],
        provider=PROVIDER,
        payment_id=payment_id,
        amount=_money(refund),
        status=REFUND_STATUS.get(refund.get("status") or "", RefundStatus.PENDING),
        reason=refund.get("reason") or metadata.get("reason"),
        order_id=metadata.get("order_id"),
        created_at=_ts(refund.get("created")),
        failure_reason=refund.get("failure_reason"),
        raw=refund,
    )


def customer_from_stripe(customer: Mapping[str, Any]) -> Customer:
    settings = customer.get("invoice_settings")
    default = settings.get("default_payment_method") if isinstance(settings, Mapping) else None
    return Customer(
        id=customer["id"],
        provider=PROVIDER,
        email=customer.get("email"),
        name=customer.get("name"),
        metadata=_metadata(customer),
        raw=customer,
        default_payment_method_id=_id_of(default),
    )


def subscription_from_stripe(sub: Mapping[str, Any]) -> Subscription:
    items = sub.get("items")
    first: Mapping[str, Any] = {}
    if isinstance(items, Mapping) and items.get("data"):
        first = items["data"][0]
    price = first.get("price")
    # current_period_end moved from the subscription to its items in API 2025-03-31
    period_end = sub.get("current_period_end") or first.get("current_period_end")
    period_start = sub.get("current_period_start") or first.get("current_period_start")
    pause = sub.get("pause_collection")
    return Subscription(
        id=sub["id"],
        provider=PROVIDER,
        customer_id=_id_of(sub.get("customer")),
        price_id=_id_of(price),
        status=_subscription_status(sub),
        current_period_end=_ts(period_end),
        cancel_at_period_end=bool(sub.get("cancel_at_period_end")),
        raw=sub,
        quantity=int(first.get("quantity") or sub.get("quantity") or 1),
        current_period_start=_ts(period_start),
        trial_end=_ts(sub.get("trial_end")),
        resumes_at=_ts(pause.get("resumes_at")) if isinstance(pause, Mapping) else None,
    )


def _subscription_status(sub: Mapping[str, Any]) -> SubscriptionStatus:
    """Stripe's status, except that a subscription whose collection is paused
    (``pause_collection``, what ``pause_subscription`` sets) reads as paused: Stripe keeps
    it ``active`` and bills nothing until it resumes."""
    status = SUBSCRIPTION_STATUS.get(sub.get("status") or "", SubscriptionStatus.INCOMPLETE)
    if status is SubscriptionStatus.ACTIVE and isinstance(sub.get("pause_collection"), Mapping):
        return SubscriptionStatus.PAUSED
    return status


#: API versions from 2025-03-31 name an invoice's PaymentIntent only in its ``payments``
#: list, which Stripe includes only when asked (``expand[]=payments``)
INVOICE_PAYMENTS_SINCE = "2025-03-31"


def invoice_read_params(api_version: str | None) -> dict[str, Any]:
    """Parameters for a call answering with an invoice, so that
    ``Invoice.payment_id`` is known: ``expand[]=payments`` on API versions that have the
    list (``None``: the SDK's own version, which does); nothing on older ones, where the
    field does not exist and asking for it is an error."""
    if api_version is not None and api_version[:10] < INVOICE_PAYMENTS_SINCE:
        return {}
    return {"expand": ["payments"]}


def _invoice_payment_id(invoice: Mapping[str, Any]) -> str | None:
    legacy = _id_of(invoice.get("payment_intent"))  # API versions before 2025-03-31
    if legacy:
        return legacy
    payments = invoice.get("payments")
    if isinstance(payments, Mapping):
        for entry in payments.get("data") or ():
            payment = entry.get("payment") if isinstance(entry, Mapping) else None
            if isinstance(payment, Mapping):
                ident = _id_of(payment.get("payment_intent"))
                if ident:
                    return ident
    return None


def _invoice_subscription_id(invoice: Mapping[str, Any]) -> str | None:
    legacy = _id_of(invoice.get("subscription"))  # API versions before 2025-03-31
    if legacy:
        return legacy
    parent = invoice.get("parent")
    details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
    return _id_of(details.get("subscription")) if isinstance(details, Mapping) else None


def _invoice_id(invoice: Mapping[str, Any]) -> str:
    """The invoice's id; an upcoming invoice (``invoice.upcoming``) has none yet: its
    subscription and the period it bills name it."""
    if invoice.get("id"):
        return str(invoice["id"])
    subscription = _invoice_subscription_id(invoice) or "none"
    return f"upcoming_{subscription}_{invoice.get('period_end') or invoice.get('created')}"


def invoice_from_stripe(invoice: Mapping[str, Any]) -> Invoice:
    currency = invoice["currency"]
    metadata = _metadata(invoice)
    return Invoice(
        id=_invoice_id(invoice),
        provider=PROVIDER,
        customer_id=_id_of(invoice.get("customer")),
        status=INVOICE_STATUS.get(invoice.get("status") or "", InvoiceStatus.DRAFT),
        amount_due=from_stripe_amount(invoice.get("amount_due") or 0, currency),
        amount_paid=from_stripe_amount(invoice.get("amount_paid") or 0, currency),
        order_id=metadata.get("order_id"),
        number=invoice.get("number"),
        hosted_url=invoice.get("hosted_invoice_url"),
        payment_id=_invoice_payment_id(invoice),
        due_at=_ts(invoice.get("due_date")),
        created_at=_ts(invoice.get("created")),
        raw=invoice,
        subscription_id=_invoice_subscription_id(invoice),
        attempt_count=int(invoice.get("attempt_count") or 0),
        billing_reason=invoice.get("billing_reason"),
    )


def dispute_from_stripe(dispute: Mapping[str, Any]) -> Dispute:
    details = dispute.get("evidence_details")
    due_by = details.get("due_by") if isinstance(details, Mapping) else None
    return Dispute(
        id=dispute["id"],
        provider=PROVIDER,
        payment_id=_id_of(dispute.get("payment_intent")) or _id_of(dispute.get("charge")),
        amount=_money(dispute),
        status=DISPUTE_STATUS.get(dispute.get("status") or "", DisputeStatus.OPEN),
        reason=dispute.get("reason"),
        order_id=_metadata(dispute).get("order_id"),
        evidence_due_by=_ts(due_by),
        created_at=_ts(dispute.get("created")),
        reason_code=DISPUTE_REASONS.get(dispute.get("reason") or "", DisputeReason.GENERAL),
        evidence_submitted=bool(details.get("submission_count"))
        if isinstance(details, Mapping)
        else False,
        raw=dispute,
    )


def checkout_from_stripe(session: Mapping[str, Any]) -> CheckoutSession:
    metadata = _metadata(session)
    currency = session.get("currency")
    total = session.get("amount_total")
    return CheckoutSession(
        id=session["id"],
        provider=PROVIDER,
        url=session.get("url"),
        status=CHECKOUT_STATUS.get(session.get("status") or "", CheckoutStatus.OPEN),
        order_id=session.get("client_reference_id") or metadata.get("order_id"),
        payment_id=_id_of(session.get("payment_intent")),
        amount_total=from_stripe_amount(total, currency)
        if currency and total is not None
        else None,
        expires_at=_ts(session.get("expires_at")),
        mode="subscription" if session.get("mode") == "subscription" else "payment",
        customer_id=_id_of(session.get("customer")),
        subscription_id=_id_of(session.get("subscription")),
        raw=session,
    )


def payment_method_from_stripe(method: Mapping[str, Any]) -> PaymentMethod:
    """A PaymentMethod: a card's display details only (Stripe never returns the number)."""
    kind_name = method.get("type") or ""
    card = method.get("card") if kind_name == "card" else None
    card = card if isinstance(card, Mapping) else {}
    billing = method.get("billing_details")
    email = billing.get("email") if isinstance(billing, Mapping) else None
    return PaymentMethod(
        id=method["id"],
        provider=PROVIDER,
        customer_id=_id_of(method.get("customer")),
        kind=PAYMENT_METHOD_KINDS.get(kind_name, PaymentMethodKind.OTHER),
        brand=card.get("brand"),
        last4=card.get("last4"),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        fingerprint=card.get("fingerprint"),
        email=email if kind_name == "paypal" else None,
        created_at=_ts(method.get("created")),
        raw=method,
    )


def _setup_failure(intent: Mapping[str, Any]) -> PaymentFailure | None:
    error = intent.get("last_setup_error")
    if not isinstance(error, Mapping) or not error:
        return None
    decline = error.get("decline_code") or error.get("code")
    return PaymentFailure(
        code=str(error.get("code") or error.get("type") or "setup_failed"),
        message=str(error.get("message") or ""),
        decline_code=_decline_code(decline) if error.get("type") == "card_error" else None,
    )


def setup_from_stripe(intent: Mapping[str, Any]) -> SetupSession:
    """A SetupIntent. Back at ``requires_payment_method`` after an attempt (an error
    recorded) it has failed: Stripe waits for another method, paygate reports the failure."""
    status = SETUP_INTENT_STATUS.get(intent.get("status") or "", SetupStatus.REQUIRES_ACTION)
    failure = _setup_failure(intent)
    if failure is not None and intent.get("status") == "requires_payment_method":
        status = SetupStatus.FAILED
    return SetupSession(
        id=intent["id"],
        provider=PROVIDER,
        status=status,
        customer_id=_id_of(intent.get("customer")),
        client_secret=intent.get("client_secret"),
        url=_redirect_url(intent),
        payment_method_id=_id_of(intent.get("payment_method"))
        if status is SetupStatus.SUCCEEDED
        else None,
        usage="on_session" if intent.get("usage") == "on_session" else "off_session",
        failure=failure,
        created_at=_ts(intent.get("created")),
        raw=intent,
    )


def setup_from_checkout(session: Mapping[str, Any]) -> SetupSession:
    """A Checkout Session in setup mode; its SetupIntent, when expanded, names the method."""
    status = CHECKOUT_SETUP_STATUS.get(session.get("status") or "", SetupStatus.REQUIRES_ACTION)
    intent = session.get("setup_intent")
    method_id = None
    if isinstance(intent, Mapping):
        inner = setup_from_stripe(intent)
        method_id = inner.payment_method_id
        if status is SetupStatus.SUCCEEDED:
            status = inner.status  # complete, but a bank account may still be verifying
    return SetupSession(
        id=session["id"],
        provider=PROVIDER,
        status=status,
        customer_id=_id_of(session.get("customer")),
        url=session.get("url") if status is SetupStatus.REQUIRES_ACTION else None,
        payment_method_id=method_id,
        created_at=_ts(session.get("created")),
        raw=session,
    )


def _charge_refunded_object(charge: Mapping[str, Any]) -> tuple[EventType, Refund | Payment]:
    """``charge.refunded``: the newest refund when the charge lists them, else the payment.

    Stripe also sends ``refund.created``/``refund.updated`` for the same refund; with the
    refund's own id the state machine counts it once. When the list is absent (the default
    since API 2022-11-15) no refund id is known, so the event carries the charge's payment
    with its cumulative ``amount_refunded``: informative, and it moves no state (the
    ``refund.*`` events do that), so nothing is ever counted twice.
    """
    refunds = charge.get("refunds")
    listed = refunds.get("data") if isinstance(refunds, Mapping) else None
    if listed:
        newest = max(listed, key=lambda r: r.get("created") or 0)
        if not newest.get("payment_intent") and charge.get("payment_intent"):
            newest = {**newest, "payment_intent": charge["payment_intent"]}
        refund = refund_from_stripe(newest)
        return REFUND_EVENT_BY_STATUS[refund.status], refund
    currency = charge["currency"]
    amount = from_stripe_amount(charge["amount"], currency)
    captured = from_stripe_amount(charge.get("amount_captured") or 0, currency)
    refunded = _refunded_by_amounts(charge, currency)
    metadata = _metadata(charge)
    payment = Payment(
        id=_id_of(charge.get("payment_intent")) or charge["id"],
        provider=PROVIDER,
        order_id=metadata.get("order_id"),
        amount=amount,
        status=PaymentStatus.REFUNDED
        if charge.get("refunded") or (refunded.amount and refunded >= captured)
        else PaymentStatus.PARTIALLY_REFUNDED,
        amount_captured=captured,
        amount_refunded=refunded,
        customer_id=_id_of(charge.get("customer")),
        created_at=_ts(charge.get("created")),
        charge_id=charge["id"],
        metadata=metadata,
        raw=charge,
    )
    return EventType.REFUND_SUCCEEDED, payment


_OBJECT_TRANSLATORS: Final[Mapping[str, Callable[[Mapping[str, Any]], Any]]] = {
    "payment_intent": payment_from_stripe,
    "refund": refund_from_stripe,
    "dispute": dispute_from_stripe,
    "subscription": subscription_from_stripe,
    "invoice": invoice_from_stripe,
    "checkout.session": checkout_from_stripe,
    "customer": customer_from_stripe,
    "payment_method": payment_method_from_stripe,
    "setup_intent": setup_from_stripe,
}


def event_from_stripe(event: Mapping[str, Any]) -> WebhookEvent:
    """A parsed Stripe event (a dict) as a [`WebhookEvent`][paygate.models.WebhookEvent]."""
    try:
        provider_type = event["type"]
        event_id = event["id"]
        data = event["data"]["object"]
        if not isinstance(provider_type, str) or not isinstance(event_id, str):
            raise TypeError("type and id must be strings")
        if not isinstance(data, Mapping):
            raise TypeError("data.object must be an object")
    except (KeyError, TypeError) as exc:
        raise MalformedPayload(f"Stripe event is missing or has a bad field: {exc}") from None
    occurred_at = _ts(event.get("created"))
    if provider_type not in EVENT_TYPES:
        return WebhookEvent(
            id=event_id,
            provider=PROVIDER,
            type=EventType.UNKNOWN,
            occurred_at=occurred_at,
            object=None,
            provider_type=provider_type,
            raw=event,
        )
    try:
        event_type, obj = _translate_event_object(provider_type, data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # ValueError covers paygate's ValidationError (bad amount/currency) too;
        # AttributeError: a nested list entry that is not an object (``items.data[0]``)
        raise MalformedPayload(
            f"Stripe event {event_id} ({provider_type}) has an unusable object: {exc}"
        ) from None
    return WebhookEvent(
        id=event_id,
        provider=PROVIDER,
        type=event_type,
        occurred_at=occurred_at,
        object=obj,
        provider_type=provider_type,
        raw=event,
    )


def _translate_event_object(provider_type: str, data: Mapping[str, Any]) -> tuple[EventType, Any]:
    if provider_type == "charge.refunded":
        return _charge_refunded_object(data)
    if data.get("mode") == "setup" and provider_type in CHECKOUT_SETUP_EVENTS:
        return CHECKOUT_SETUP_EVENTS[provider_type], setup_from_checkout(data)
    translate = _OBJECT_TRANSLATORS.get(data.get("object", ""))
    if translate is None:
        raise TypeError(f"unexpected object type {data.get('object')!r}")
    obj = translate(data)
    fixed = EVENT_TYPES[provider_type]
    if fixed is not None:
        return fixed, obj
    if isinstance(obj, Refund):  # refund.updated
        return REFUND_EVENT_BY_STATUS[obj.status], obj
    if isinstance(obj, Dispute):  # charge.dispute.closed
        return DISPUTE_CLOSED_EVENT[obj.status], obj
    raise TypeError(f"{provider_type} carries a {data.get('object')!r}")  # pragma: no cover


# == errors ======================================================================================


def _scrub(text: str) -> str:
    """Stripe messages can quote part of a key ("Invalid API Key provided: sk_test_***"),
    or a card number pasted as a payment method ("No such PaymentMethod: '4242 ...'")."""
    return redact_card_numbers(_SECRET_PATTERN.sub("[redacted]", text))


class _RedactStripeLog(logging.Filter):
    """Scrub key-like strings from the SDK's own log lines (it logs error messages and, at
    DEBUG, response bodies, which can quote the API key and carry client secrets). Set on
    the ``stripe`` logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and _SECRET_PATTERN.search(record.msg):
            record.msg = _scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub(a) if isinstance(a, str) else a for a in record.args)
        return True


_STRIPE_LOGGER = logging.getLogger("stripe")
if not any(isinstance(f, _RedactStripeLog) for f in _STRIPE_LOGGER.filters):
    _STRIPE_LOGGER.addFilter(_RedactStripeLog())


def translate_error(exc: stripe.StripeError, operation: str = "request") -> errors.ProviderError:
    """The paygate error for a stripe exception, keeping code, HTTP status, request id and
    ``Retry-After``. A failure after the request was sent is ``OutcomeUnknown``; an answer
    that is not Stripe's JSON is classified by its status alone (``_http_faults``); no 4xx
    but 429 (and 409 ``idempotency_key_in_use``: the same key still in flight) is retried."""
    status = exc.http_status
    wait = retry_after_from(exc.headers)
    if isinstance(exc, stripe.APIConnectionError):
        # the SDK keeps requests' exception as __cause__: it tells "never sent" (connect)
        # from "sent, answer lost" (reset, read timeout, cut body)
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        if type(cause).__module__.partition(".")[0] == "httpx":  # the async face's client
            from paygate.providers._http_faults import httpx_failure

            return httpx_failure(PROVIDER, "Stripe", operation, cause)
        return requests_failure(PROVIDER, "Stripe", operation, cause)
    body = exc.json_body
    if type(exc) is stripe.APIError and not (
        isinstance(body, Mapping) and isinstance(body.get("error"), Mapping)
    ):
        # the SDK's "Invalid response body/object from API": its message quotes the body
        # (and its json_body is then the headers: the SDK passes them in that place)
        return unexpected_response(
            PROVIDER, "Stripe", operation, status, request_id=exc.request_id,
            retry_after=wait, not_json=not _is_json(exc.http_body),
        )  # fmt: skip
    target: type[errors.ProviderError] = errors.ProviderError
    for cls in type(exc).__mro__:
        if cls in ERRORS:
            target = ERRORS[cls]
            break
    detail = exc.error
    code = exc.code or (detail.type if detail is not None else None)
    if target is errors.InvalidRequest and (status == 404 or code in NOT_FOUND_CODES):
        target = errors.NotFound
    if target in (errors.ProviderError, errors.ProviderUnavailable) and status is not None:
        # APIError covers every status the SDK has no class for (405, 409, 410, 5xx, ...)
        if status == 409 and "idempotency_key_in_use" in (code, getattr(detail, "code", None)):
            target = errors.OutcomeUnknown  # another request with this key is in flight
        elif 400 <= status < 500:
            target = STATUS_ERRORS.get(status, errors.InvalidRequest)
        elif status >= 500:
            target = errors.ProviderUnavailable
    message = _scrub(exc.user_message or getattr(exc, "_message", None) or type(exc).__name__)
    kwargs: dict[str, Any] = {
        "provider": PROVIDER,
        "code": code,
        "http_status": status,
        "request_id": exc.request_id,
        "retry_after": wait,
    }
    if target is errors.CardDeclined:
        decline = (detail.decline_code if detail is not None else None) or exc.code
        # the PaymentIntent the decline left (requires_payment_method), when Stripe names it
        error_body = body.get("error") if isinstance(body, Mapping) else None
        intent = error_body.get("payment_intent") if isinstance(error_body, Mapping) else None
        if "authentication_required" in (decline, exc.code):
            # an off-session charge the bank wants the customer for; that PaymentIntent
            # stays for the customer to confirm on session
            return errors.AuthenticationRequired(message, payment_id=_id_of(intent), **kwargs)
        return errors.CardDeclined(
            message, decline_code=_decline_code(decline), payment_id=_id_of(intent), **kwargs
        )
    return target(message, **kwargs)


def _is_json(body: object) -> bool:
    try:
        json.loads(body)  # type: ignore[arg-type]  # str or bytes, or None (TypeError)
    except (TypeError, ValueError, RecursionError):  # a proxy's page, or absurdly deep
        return False
    return True


def _failed(operation: str, exc: stripe.StripeError) -> errors.ProviderError:
    """``translate_error``, logged without the message (it may quote what was sent)."""
    error = translate_error(exc, operation)
    logger.info(
        "stripe %s failed: %s (code=%s, request_id=%s)",
        operation,
        type(error).__name__,
        error.code,
        error.request_id,
        extra=fields(provider="stripe", operation=operation, outcome="error",
                     error_type=type(error).__name__,
                     decline_code=getattr(error, "decline_code", None)),
    )  # fmt: skip
    return error


def _answer(operation: str, result: Any) -> dict[str, Any]:
    data: dict[str, Any] = result.to_dict()
    logger.debug(
        "stripe %s -> %s",
        operation,
        data.get("id"),
        extra=fields(provider="stripe", operation=operation, outcome="ok"),
    )
    return data


def parse_webhook(
    settings: StripeSettings,
    secrets: tuple[bytes, ...],
    now: float,
    body: bytes,
    headers: Mapping[str, str],
) -> WebhookEvent:
    """Verify ``Stripe-Signature`` over the raw body, then parse it once (both faces)."""
    if not secrets:
        raise ConfigurationError(
            "stripe: webhook_secret is not set (PAYGATE_STRIPE_WEBHOOK_SECRET)"
        )
    if isinstance(body, str):
        body = body.encode("utf-8")
    verify_signature(
        body,
        find_signature_header(headers),
        secrets,
        tolerance=settings.webhook_tolerance,
        now=now,
    )
    event = load_object(body, MalformedPayload, "Stripe webhook body")
    if event.get("object", "event") != "event":
        raise MalformedPayload("Stripe webhook body is not an event object")
    return event_from_stripe(event)


class _DeadlineRequestsClient(stripe.RequestsClient):
    """The SDK's requests client, its timeout cut to the time left in the Gateway's retry
    budget (``paygate._retry.attempt_timeout``): the SDK reads ``self._timeout`` on every
    request, so a property is the one seam that needs no copy of the SDK's request code."""

    @property
    def _timeout(self) -> float:
        return attempt_timeout(self._paygate_timeout)

    @_timeout.setter
    def _timeout(self, value: float) -> None:
        self._paygate_timeout = value

    # Each thread's ``requests.Session`` with ``trust_env`` off: the SDK builds one per
    # thread from ``self._session`` (``None``: a default Session), and a default Session
    # looks up the environment's proxies on every request (``should_bypass_proxies``:
    # about a fifth of a call's instructions). The environment is read once instead, in
    # ``__init__`` (`_environment_proxies`): its proxies are passed as the SDK's ``proxy``.
    # (The SDK passes ``verify`` on every request, so no CA bundle is read from the
    # environment either way.)
    @property
    def _session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        return session

    @_session.setter
    def _session(self, value: object) -> None:
        if value is not None:  # pragma: no cover - paygate never passes one
            raise ValueError("the Stripe adapter makes its own sessions")


def _environment_proxies(url: str) -> dict[str, str] | None:
    """The proxies ``requests`` would take from the environment for ``url`` (``HTTPS_PROXY``,
    ``NO_PROXY``, ...), decided once: ``None`` when there are none."""
    proxies = requests.utils.get_environ_proxies(url)
    chosen: dict[str, str] = {
        scheme: proxies[scheme] for scheme in ("http", "https") if scheme in proxies
    }
    if not chosen and "all" in proxies:
        chosen = {"http": proxies["all"], "https": proxies["all"]}
    return chosen or None


# == the adapter =================================================================================

_IDEMPOTENCY_KEY_MAX = 255  # Stripe's limit


def _path(template: str, *ids: str) -> str:
    """``template`` with each ``{}`` an id, quoted as the SDK's services quote them
    (``quote_plus``: an id cannot reach another path)."""
    return template.format(*(quote_plus(i) for i in ids))


#: ``raw_request``'s own keywords for a ``/v1/files`` upload, as ``v1.files.create`` sends
#: it: multipart/form-data, to the files host (``base_address="files"``)
_MULTIPART_TO_FILES: Final[Mapping[str, str]] = {
    "content_type": "multipart/form-data",
    "base": "files",
}
#: top-level names ``raw_request`` takes as its own (request options, ``base``, its
#: telemetry ``usage``) instead of sending them: a request with such a parameter (a
#: SetupIntent's ``usage``) cannot go through it
_RAW_RESERVED: Final = frozenset(
    ("api_key", "stripe_version", "stripe_account", "stripe_context", "max_network_retries",
     "idempotency_key", "content_type", "headers", "base", "usage")
)  # fmt: skip


def _plain(value: Any) -> Any:
    """``value`` with every ``OrderedDict`` (how the SDK parses JSON) a plain ``dict``:
    what ``iter_balance_transactions`` promises its callers."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _stripe_key(key: str) -> str:
    """The idempotency key as sent: unchanged when Stripe accepts it, else its hash."""
    if not isinstance(key, str) or not key:
        raise ValidationError("idempotency_key must be a non-empty str")
    if len(key) <= _IDEMPOTENCY_KEY_MAX:
        return key
    return "paygate-" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _positive(money: Money, what: str) -> tuple[int, str]:
    if not isinstance(money, Money):
        raise ValidationError(f"{what} must be Money, got {type(money).__name__}")
    if money.amount <= 0:
        raise ValidationError(f"{what} must be positive, got {money}")
    return to_stripe_amount(money)


def _with_session_placeholder(success_url: str) -> str:
    """``success_url`` asking Stripe to name the session on the way back.

    Stripe only puts the session id on the return URL when the URL holds the literal
    ``{CHECKOUT_SESSION_ID}``; without it ``complete_return`` would have nothing to look
    up, so paygate adds ``session_id={CHECKOUT_SESSION_ID}`` unless the URL already asks.
    """
    if "{CHECKOUT_SESSION_ID}" in success_url:
        return success_url
    base, hash_mark, fragment = success_url.partition("#")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}session_id={{CHECKOUT_SESSION_ID}}{hash_mark}{fragment}"


# == requests: the parameters each operation sends (shared by both faces) ====================


def payment_intent_params(
    order_id: str,
    amount: Money,
    payment_method: str | None,
    customer_id: str | None,
    description: str | None,
    metadata: Mapping[str, str] | None,
    capture: CaptureMethod,
    return_url: str | None,
    *,
    off_session: bool = False,
) -> dict[str, Any]:
    """``POST /v1/payment_intents`` for ``create_payment``."""
    value, currency = _positive(amount, "amount")
    if off_session and not (payment_method and customer_id):
        raise ValidationError(
            "an off-session charge needs the saved payment_method and its customer_id"
        )
    if capture not in ("automatic", "manual"):
        raise ValidationError(f"capture must be 'automatic' or 'manual', got {capture!r}")
    params: dict[str, Any] = {
        "amount": value,
        "currency": currency,
        "capture_method": capture,
        "metadata": {**(metadata or {}), "order_id": order_id},
    }
    if customer_id:
        params["customer"] = customer_id
    if description:
        params["description"] = description
    if payment_method:
        params["payment_method"] = payment_method
        params["confirm"] = True
        if off_session:  # merchant-initiated: Stripe asks no one to authenticate
            params["off_session"] = True
        if return_url:
            params["return_url"] = return_url
        else:
            # without a return URL nothing may redirect; 3-D Secure still works in-page
            params["automatic_payment_methods"] = {
                "enabled": True,
                "allow_redirects": "never",
            }
    return params


def capture_params(amount: Money | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if amount is not None:
        params["amount_to_capture"] = _positive(amount, "capture amount")[0]
    return params


def refund_params(payment_id: str, amount: Money | None, reason: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"payment_intent": payment_id}
    if amount is not None:
        params["amount"] = _positive(amount, "refund amount")[0]
    if reason:
        if reason in REFUND_REASONS:
            params["reason"] = reason
        else:
            params["metadata"] = {"reason": reason}
    return params


def checkout_params(
    order_id: str,
    line_items: Sequence[LineItem],
    success_url: str,
    cancel_url: str,
    mode: CheckoutMode,
    customer_id: str | None,
    price_id: str | None,
    metadata: Mapping[str, str] | None,
) -> dict[str, Any]:
    meta = {**(metadata or {}), "order_id": order_id}
    params: dict[str, Any] = {
        "mode": mode,
        "success_url": _with_session_placeholder(success_url),
        "cancel_url": cancel_url,
        "client_reference_id": order_id,
        "metadata": meta,
    }
    if customer_id:
        params["customer"] = customer_id
    if mode == "subscription":
        if not price_id:
            raise ValidationError("a subscription checkout needs price_id")
        params["line_items"] = [{"price": price_id, "quantity": 1}]
        params["subscription_data"] = {"metadata": meta}
    elif mode == "payment":
        if not line_items:
            raise ValidationError("a payment checkout needs at least one line item")
        params["line_items"] = [_checkout_line(item) for item in line_items]
        params["payment_intent_data"] = {"metadata": meta}
    else:
        raise ValidationError(f"mode must be 'payment' or 'subscription', got {mode!r}")
    return params


def _checkout_line(item: LineItem) -> dict[str, Any]:
    unit, currency = to_stripe_amount(item.unit_amount)
    product: dict[str, Any] = {"name": item.name}
    if item.description:
        product["description"] = item.description
    return {
        "price_data": {"currency": currency, "unit_amount": unit, "product_data": product},
        "quantity": item.quantity,
    }


def customer_params(
    email: str | None, name: str | None, metadata: Mapping[str, str] | None
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if email:
        params["email"] = email
    if name:
        params["name"] = name
    if metadata:
        params["metadata"] = dict(metadata)
    return params


def subscription_params(
    customer_id: str,
    price_id: str,
    metadata: Mapping[str, str] | None,
    *,
    quantity: int = 1,
    trial_days: int | None = None,
    trial_end: datetime | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"customer": customer_id, "items": [{"price": price_id}]}
    if metadata:
        params["metadata"] = dict(metadata)
    if quantity != 1:
        params["items"][0].update(_change_item(None, quantity, "none"))
    params.update(stripe_trial(trial_days, trial_end))
    return params


def invoice_params(
    customer_id: str,
    line_items: Sequence[LineItem],
    order_id: str | None,
    description: str | None,
    send: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The draft invoice's parameters, and each invoice item's (less ``invoice``, the
    draft's id, known once it exists)."""
    if not line_items:
        raise ValidationError("an invoice needs at least one line item")
    lines = [(item, *to_stripe_amount(item.unit_amount)) for item in line_items]
    currencies = {currency for _, _, currency in lines}
    if len(currencies) != 1:
        raise ValidationError(f"invoice line items mix currencies: {sorted(currencies)}")
    params: dict[str, Any] = {
        "customer": customer_id,
        "currency": currencies.pop(),
        "auto_advance": False,
        "pending_invoice_items_behavior": "exclude",
        "collection_method": "send_invoice" if send else "charge_automatically",
    }
    if send:
        params["days_until_due"] = 30
    if description:
        params["description"] = description
    if order_id:
        params["metadata"] = {"order_id": order_id}
    items = [
        {
            "customer": customer_id,
            "currency": currency,
            "unit_amount_decimal": str(unit),
            "quantity": item.quantity,
            "description": item.description or item.name,
        }
        for item, unit, currency in lines
    ]
    return params, items


# == operations: each call sequence written once, for both faces (sans-I/O) ===================
#
# An operation is a generator (`Flow`) that does no I/O: it ``yield``s each request it needs
# as a `StripeCall` and is sent the JSON the SDK parsed (an error is raised by the driver,
# the flow does not see it); what it returns is the operation's answer. The sync adapter
# runs flows with ``StripeClient.raw_request`` (`StripeProvider._run`), the async one with
# ``raw_request_async`` (`AsyncStripeProvider._run`): the paths, parameters, idempotency
# keys, step order and translation are written here once, as the Gateway writes its flows
# once (``paygate.gateway._sansio``).


@dataclass(frozen=True, slots=True)
class StripeCall:
    """One request of an operation: ``method`` on ``path`` with ``params`` under
    ``idempotency_key`` (none: the SDK's own for a POST), answered with the parsed JSON.

    ``upload``: multipart/form-data to the files host, as ``v1.files.create`` sends it.
    ``service``: sent on the SDK's typed service of that name instead (``"setup_intents.
    create"``; the ``_async`` method on the async face): only where ``raw_request`` cannot
    send the parameters (`_RAW_RESERVED`).
    """

    operation: str
    method: str
    path: str
    params: Mapping[str, Any]
    idempotency_key: str | None = None
    upload: bool = False
    service: str | None = None


R = TypeVar("R")
#: an operation: yields its requests, is sent their answers, returns the result
Flow: TypeAlias = Generator[StripeCall, dict[str, Any], R]


def _raw_options(
    operation: str, params: Mapping[str, Any], idempotency_key: str | None, upload: bool
) -> dict[str, Any]:
    """``raw_request``'s own keywords for one request; a parameter it would take as its
    own (`_RAW_RESERVED`) is refused: it would not be sent."""
    if not _RAW_RESERVED.isdisjoint(params):
        raise TypeError(
            f"stripe {operation}: raw_request would not send "
            f"{sorted(_RAW_RESERVED.intersection(params))} (use the SDK's service)"
        )
    options: dict[str, Any] = {} if idempotency_key is None else _options(idempotency_key)
    if upload:
        options.update(_MULTIPART_TO_FILES)
    return options


def _raw_answer(operation: str, response: Any) -> dict[str, Any]:
    """The JSON object ``raw_request`` parsed (no ``StripeObject`` built)."""
    data = response.data
    if not isinstance(data, dict):
        raise unexpected_response(PROVIDER, "Stripe", operation, response.code, not_json=False)
    logger.debug(
        "stripe %s -> %s",
        operation,
        data.get("id"),
        extra=fields(provider="stripe", operation=operation, outcome="ok"),
    )
    return data


def _options(idempotency_key: str) -> dict[str, Any]:
    return {"idempotency_key": _stripe_key(idempotency_key)}


def _service(v1: Any, call: StripeCall, suffix: str) -> tuple[Any, dict[str, Any]]:
    """The SDK's typed method for ``call.service`` (``suffix``: ``""`` or ``"_async"``)
    and its keyword arguments."""
    group, _, name = (call.service or "").rpartition(".")
    method = getattr(getattr(v1, group), name + suffix)
    kwargs: dict[str, Any] = {"params": dict(call.params)}
    if call.idempotency_key is not None:
        kwargs["options"] = _options(call.idempotency_key)
    return method, kwargs


def _page(
    operation: str, path: str, query: dict[str, Any]
) -> Flow[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
    """One page of a Stripe list: its rows, and the next page's query (``None``: none)."""
    page = yield StripeCall(operation, "get", path, query)
    rows: list[dict[str, Any]] = page.get("data") or []
    if not page.get("has_more") or not rows:
        return rows, None
    return rows, {**query, "starting_after": rows[-1]["id"]}


def _all_pages(operation: str, path: str, query: dict[str, Any]) -> Flow[list[dict[str, Any]]]:
    """Every item of a Stripe list at ``path``, one request per page."""
    items: list[dict[str, Any]] = []
    next_query: dict[str, Any] | None = query
    while next_query is not None:
        rows, next_query = yield from _page(operation, path, next_query)
        items.extend(rows)
    return items


class StripeFlows:
    """Each operation of the Stripe adapter as a ``Flow``,
    named as the operation, with its arguments (positional) and its answer; both faces
    run these."""

    @staticmethod
    def create_payment(
        order_id: str, amount: Money, payment_method: str | None, idempotency_key: str,
        customer_id: str | None, description: str | None, metadata: Mapping[str, str] | None,
        capture: CaptureMethod, return_url: str | None, off_session: bool,
    ) -> Flow[Payment]:  # fmt: skip
        params = payment_intent_params(
            order_id, amount, payment_method, customer_id, description, metadata, capture,
            return_url, off_session=off_session,
        )  # fmt: skip
        data = yield StripeCall(
            "create_payment", "post", "/v1/payment_intents", params, idempotency_key
        )
        return payment_from_stripe(data)

    @staticmethod
    def get_payment(payment_id: str) -> Flow[Payment]:
        data = yield StripeCall(
            "get_payment", "get", _path("/v1/payment_intents/{}", payment_id),
            {"expand": list(PAYMENT_EXPAND)},
        )  # fmt: skip
        charge = data.get("latest_charge")
        refunds: list[dict[str, Any]] | None = None
        disputes: list[dict[str, Any]] | None = None
        if isinstance(charge, Mapping):
            listing = charge.get("refunds")
            if isinstance(listing, Mapping) and listing.get("has_more"):
                refunds = yield from _all_pages(
                    "get_payment", "/v1/refunds", {"charge": charge["id"], "limit": 100}
                )
            if charge.get("disputed"):
                disputes = yield from _all_pages(
                    "get_payment", "/v1/disputes", {"payment_intent": data["id"], "limit": 100}
                )
        return payment_from_stripe(data, refunds=refunds, disputes=disputes)

    @staticmethod
    def capture_payment(
        payment_id: str, amount: Money | None, idempotency_key: str
    ) -> Flow[Payment]:
        data = yield StripeCall(
            "capture_payment", "post", _path("/v1/payment_intents/{}/capture", payment_id),
            capture_params(amount), idempotency_key,
        )  # fmt: skip
        return payment_from_stripe(data)

    @staticmethod
    def cancel_payment(payment_id: str, idempotency_key: str) -> Flow[Payment]:
        data = yield StripeCall(
            "cancel_payment", "post", _path("/v1/payment_intents/{}/cancel", payment_id), {},
            idempotency_key,
        )  # fmt: skip
        return payment_from_stripe(data)

    @staticmethod
    def refund_payment(
        payment_id: str, amount: Money | None, reason: str | None, idempotency_key: str
    ) -> Flow[Refund]:
        params = refund_params(payment_id, amount, reason)
        data = yield StripeCall("refund_payment", "post", "/v1/refunds", params, idempotency_key)
        return refund_from_stripe(data)

    @staticmethod
    def get_refund(refund_id: str) -> Flow[Refund]:
        data = yield StripeCall("get_refund", "get", _path("/v1/refunds/{}", refund_id), {})
        return refund_from_stripe(data)

    @staticmethod
    def complete_return(params: Mapping[str, str]) -> Flow[Payment]:
        session_id = params.get("session_id")
        payment_id = params.get("payment_intent")
        if session_id:
            session = yield from StripeFlows.get_checkout_session(session_id)
            if not session.payment_id:
                raise ValidationError(
                    f"checkout session {session_id} has no payment (mode {session.mode})"
                )
            payment_id = session.payment_id
        if not payment_id:
            raise ValidationError("return parameters carry neither session_id nor payment_intent")
        return (yield from StripeFlows.get_payment(payment_id))

    @staticmethod
    def create_checkout_session(
        order_id: str, line_items: Sequence[LineItem], success_url: str, cancel_url: str,
        idempotency_key: str, mode: CheckoutMode, customer_id: str | None,
        price_id: str | None, metadata: Mapping[str, str] | None,
    ) -> Flow[CheckoutSession]:  # fmt: skip
        params = checkout_params(
            order_id, line_items, success_url, cancel_url, mode, customer_id, price_id, metadata
        )
        data = yield StripeCall(
            "create_checkout_session", "post", "/v1/checkout/sessions", params, idempotency_key
        )
        return checkout_from_stripe(data)

    @staticmethod
    def get_checkout_session(session_id: str) -> Flow[CheckoutSession]:
        data = yield StripeCall(
            "get_checkout_session", "get", _path("/v1/checkout/sessions/{}", session_id), {}
        )
        return checkout_from_stripe(data)

    @staticmethod
    def create_customer(
        email: str | None, name: str | None, idempotency_key: str,
        metadata: Mapping[str, str] | None,
    ) -> Flow[Customer]:  # fmt: skip
        params = customer_params(email, name, metadata)
        data = yield StripeCall("create_customer", "post", "/v1/customers", params, idempotency_key)
        return customer_from_stripe(data)

    @staticmethod
    def create_subscription(
        customer_id: str, price_id: str, idempotency_key: str,
        metadata: Mapping[str, str] | None, trial_days: int | None, trial_end: datetime | None,
        quantity: int,
    ) -> Flow[Subscription]:  # fmt: skip
        params = subscription_params(
            customer_id, price_id, metadata, quantity=quantity, trial_days=trial_days,
            trial_end=trial_end,
        )  # fmt: skip
        data = yield StripeCall(
            "create_subscription", "post", "/v1/subscriptions", params, idempotency_key
        )
        return subscription_from_stripe(data)

    @staticmethod
    def get_subscription(subscription_id: str) -> Flow[Subscription]:
        data = yield StripeCall(
            "get_subscription", "get", _path("/v1/subscriptions/{}", subscription_id), {}
        )
        return subscription_from_stripe(data)

    @staticmethod
    def cancel_subscription(subscription_id: str, at_period_end: bool) -> Flow[Subscription]:
        path = _path("/v1/subscriptions/{}", subscription_id)
        if at_period_end:
            call = StripeCall("cancel_subscription", "post", path, {"cancel_at_period_end": True})
        else:
            call = StripeCall("cancel_subscription", "delete", path, {})
        return subscription_from_stripe((yield call))

    @staticmethod
    def create_invoice(
        customer_id: str, line_items: Sequence[LineItem], idempotency_key: str,
        order_id: str | None, description: str | None, send: bool, api_version: str | None,
    ) -> Flow[Invoice]:  # fmt: skip
        params, items = invoice_params(customer_id, line_items, order_id, description, send)
        draft = yield StripeCall(
            "create_invoice", "post", "/v1/invoices", params, f"{idempotency_key}:invoice"
        )
        for index, item in enumerate(items):
            yield StripeCall(
                "create_invoice_item", "post", "/v1/invoiceitems",
                {**item, "invoice": draft["id"]}, f"{idempotency_key}:item:{index}",
            )  # fmt: skip
        yield StripeCall(
            "finalize_invoice", "post", _path("/v1/invoices/{}/finalize", draft["id"]), {},
            f"{idempotency_key}:finalize",
        )  # fmt: skip
        step = "send" if send else "pay"
        data = yield StripeCall(
            f"{step}_invoice", "post", _path(f"/v1/invoices/{{}}/{step}", draft["id"]),
            invoice_read_params(api_version), f"{idempotency_key}:{step}",
        )  # fmt: skip
        return invoice_from_stripe(data)

    @staticmethod
    def get_dispute(dispute_id: str) -> Flow[Dispute]:
        data = yield StripeCall("get_dispute", "get", _path("/v1/disputes/{}", dispute_id), {})
        return dispute_from_stripe(data)

    # -- after the first charge: subscriptions, dunning, disputes (issue 20) ------------------

    @staticmethod
    def list_subscriptions(customer_id: str | None) -> Flow[list[Subscription]]:
        params = subscription_list_params(customer_id)
        page = yield StripeCall("list_subscriptions", "get", "/v1/subscriptions", params)
        return [subscription_from_stripe(sub) for sub in page.get("data") or ()]

    @staticmethod
    def change_subscription(
        subscription_id: str, price_id: str | None, quantity: int | None, proration: str,
        idempotency_key: str,
    ) -> Flow[Subscription]:  # fmt: skip
        """Read the one item, then update it under the caller's key."""
        item = _change_item(price_id, quantity, proration)
        path = _path("/v1/subscriptions/{}", subscription_id)
        current = yield StripeCall("get_subscription", "get", path, {})
        item["id"] = single_item_id(current, subscription_id)
        data = yield StripeCall(
            "change_subscription", "post", path,
            {"items": [item], "proration_behavior": proration}, idempotency_key,
        )  # fmt: skip
        return subscription_from_stripe(data)

    @staticmethod
    def update_subscription(
        operation: str, subscription_id: str, params: dict[str, Any]
    ) -> Flow[Subscription]:
        """pause (``pause_collection[behavior]=void``), resume (``pause_collection``
        unset: an empty value), undo a cancel (``cancel_at_period_end=false``)."""
        path = _path("/v1/subscriptions/{}", subscription_id)
        return subscription_from_stripe((yield StripeCall(operation, "post", path, params)))

    @staticmethod
    def retry_invoice(
        invoice_id: str, idempotency_key: str, api_version: str | None
    ) -> Flow[Invoice]:
        data = yield StripeCall(
            "retry_invoice", "post", _path("/v1/invoices/{}/pay", invoice_id),
            invoice_read_params(api_version), idempotency_key,
        )  # fmt: skip
        return invoice_from_stripe(data)

    @staticmethod
    def list_disputes(payment_id: str | None) -> Flow[list[Dispute]]:
        params = dispute_list_params(payment_id)
        page = yield StripeCall("list_disputes", "get", "/v1/disputes", params)
        return [dispute_from_stripe(d) for d in page.get("data") or ()]

    @staticmethod
    def submit_dispute_evidence(
        dispute_id: str, evidence: DisputeEvidence, submit: bool
    ) -> Flow[Dispute]:
        check_evidence(evidence)
        evidence_fields = stripe_evidence_fields(evidence)
        for field_name, evidence_file in stripe_evidence_files(evidence):
            uploaded = yield StripeCall(
                "upload_dispute_evidence", "post", "/v1/files",
                evidence_upload_params(evidence_file), upload=True,
            )  # fmt: skip
            evidence_fields[field_name] = uploaded["id"]
        data = yield StripeCall(
            "submit_dispute_evidence", "post", _path("/v1/disputes/{}", dispute_id),
            {"evidence": evidence_fields, "submit": bool(submit)},
        )  # fmt: skip
        return dispute_from_stripe(data)

    @staticmethod
    def accept_dispute(dispute_id: str) -> Flow[Dispute]:
        path = _path("/v1/disputes/{}/close", dispute_id)
        return dispute_from_stripe((yield StripeCall("accept_dispute", "post", path, {})))

    # -- customers and saved payment methods (issue 19) --------------------------------------

    @staticmethod
    def get_customer(customer_id: str) -> Flow[Customer]:
        path = _path("/v1/customers/{}", customer_id)
        data = yield StripeCall("get_customer", "get", path, {})
        return live_customer_from_stripe(data, customer_id)

    @staticmethod
    def update_customer(
        customer_id: str, email: str | None, name: str | None, metadata: Mapping[str, str] | None
    ) -> Flow[Customer]:
        params = customer_update_params(email, name, metadata)
        path = _path("/v1/customers/{}", customer_id)
        return customer_from_stripe((yield StripeCall("update_customer", "post", path, params)))

    @staticmethod
    def customer_page(
        query: dict[str, Any],
    ) -> Flow[tuple[list[Customer], dict[str, Any] | None]]:
        """One page of ``GET /v1/customers`` (newest first) and the next one's query."""
        rows, next_query = yield from _page("list_customers", "/v1/customers", query)
        return [customer_from_stripe(row) for row in rows], next_query

    @staticmethod
    def delete_customer(customer_id: str) -> Flow[None]:
        yield StripeCall("delete_customer", "delete", _path("/v1/customers/{}", customer_id), {})

    @staticmethod
    def create_setup(
        customer_id: str, idempotency_key: str, return_url: str | None, cancel_url: str | None,
        usage: str, payment_method: str | None, verification_token: str | None,
    ) -> Flow[SetupSession]:  # fmt: skip
        kind, params = setup_request(
            customer_id, return_url, cancel_url, usage, payment_method, verification_token
        )
        if kind == "setup_intent":
            # on the SDK's service: raw_request would take ``usage`` as its own telemetry
            data = yield StripeCall(
                "create_setup", "post", "/v1/setup_intents", params, idempotency_key,
                service="setup_intents.create",
            )  # fmt: skip
            return setup_from_stripe(data)
        data = yield StripeCall(
            "create_setup", "post", "/v1/checkout/sessions", params, idempotency_key
        )
        return setup_from_checkout(data)

    @staticmethod
    def complete_setup(params: Mapping[str, str]) -> Flow[SetupSession]:
        session_id = params.get("session_id")
        if session_id:
            data = yield StripeCall(
                "complete_setup", "get", _path("/v1/checkout/sessions/{}", session_id),
                {"expand": ["setup_intent"]},
            )  # fmt: skip
            return setup_from_checkout(data)
        setup_id = params.get("setup_intent")
        if not setup_id:
            raise ValidationError("return parameters carry neither session_id nor setup_intent")
        path = _path("/v1/setup_intents/{}", setup_id)
        return setup_from_stripe((yield StripeCall("complete_setup", "get", path, {})))

    @staticmethod
    def list_payment_methods(customer_id: str) -> Flow[list[PaymentMethod]]:
        path = _path("/v1/customers/{}/payment_methods", customer_id)
        rows = yield from _all_pages("list_payment_methods", path, {"limit": 100})
        return [payment_method_from_stripe(row) for row in rows]

    @staticmethod
    def get_payment_method(payment_method_id: str) -> Flow[PaymentMethod]:
        path = _path("/v1/payment_methods/{}", payment_method_id)
        return payment_method_from_stripe((yield StripeCall("get_payment_method", "get", path, {})))

    @staticmethod
    def set_default_payment_method(customer_id: str, payment_method_id: str) -> Flow[Customer]:
        data = yield StripeCall(
            "set_default_payment_method", "post", _path("/v1/customers/{}", customer_id),
            default_method_params(payment_method_id),
        )  # fmt: skip
        return customer_from_stripe(data)

    @staticmethod
    def detach_payment_method(payment_method_id: str) -> Flow[None]:
        path = _path("/v1/payment_methods/{}/detach", payment_method_id)
        yield StripeCall("detach_payment_method", "post", path, {})


_flows = StripeFlows


class StripeProvider(BaseProvider):
    """[`PaymentProvider`][paygate.provider.PaymentProvider] on Stripe.

    Settings (keyword arguments, or ``PAYGATE_STRIPE_<NAME>`` through the Gateway):
    ``api_key`` (required), ``webhook_secret`` (one or several), ``webhook_tolerance``
    (300 s), ``api_version``, ``base_url`` (stripe-mock, a proxy), ``timeout`` (10 s),
    ``max_retries`` (the Gateway's retry count for Stripe), ``test_mode``.

    Each operation is a flow of ``StripeFlows`` (this module) run by
    `_run` (its requests on ``StripeClient.raw_request``); the async face runs the same
    flows.
    """

    name = PROVIDER
    capabilities = frozenset(Capability)

    def __init__(self, **settings: Any) -> None:
        self.settings = _load_settings(settings)
        self.max_retries: int | None = self.settings.max_retries
        self._secrets = self.settings.secrets_bytes
        self._clock: Callable[[], float] = time.time
        base_addresses: dict[str, str] = {}
        if self.settings.base_url:
            base_addresses = {"api": self.settings.base_url, "files": self.settings.base_url}
        self._client = stripe.StripeClient(
            self.settings.api_key.get_secret_value(),
            stripe_version=self.settings.api_version,
            base_addresses=base_addresses,  # type: ignore[arg-type]
            # one retry layer only: the Gateway's RetryPolicy, with the same idempotency key
            max_network_retries=0,
            http_client=_DeadlineRequestsClient(
                timeout=self.settings.timeout,
                proxy=_environment_proxies(  # type: ignore[arg-type]
                    self.settings.base_url or stripe.DEFAULT_API_BASE
                ),
            ),
        )
        self._v1 = self._client.v1

    def __repr__(self) -> str:
        key = self.settings.api_key.get_secret_value()
        mode = "live" if "_live_" in key[:8] else "test"
        where = f", base_url={self.settings.base_url!r}" if self.settings.base_url else ""
        return f"StripeProvider(mode={mode}{where})"

    # -- plumbing: the driver of the flows ---------------------------------------------------

    def _run(self, flow: Flow[R]) -> R:
        """Send each request ``flow`` yields, answer it, and return its result."""
        try:
            call = next(flow)
            while True:
                call = flow.send(self._send(call))
        except StopIteration as done:
            result: R = done.value
            return result

    def _send(self, call: StripeCall) -> dict[str, Any]:
        if call.service is None:
            return self._raw(call.operation, call.method, call.path, call.params,
                             call.idempotency_key, upload=call.upload)  # fmt: skip
        method, kwargs = _service(self._v1, call, "")
        return self._call(call.operation, method, **kwargs)

    def _call(
        self, operation: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """Run one call on the SDK's services (a ``StripeObject``, ``to_dict()``ed): only
        where ``_raw`` cannot send the request (``_RAW_RESERVED``)."""
        try:
            result = fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _failed(operation, exc) from None
        return _answer(operation, result)

    def _raw(
        self, operation: str, method: str, path: str, params: Mapping[str, Any],
        idempotency_key: str | None = None, *, upload: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """One SDK request answered as the JSON the SDK parsed, no ``StripeObject`` built
        (``StripeClient.raw_request``: the same auth, headers, telemetry, form encoding
        and error types as the ``v1`` services; building the objects only to
        ``to_dict()`` them was about a third of a call's instructions).

        ``upload``: multipart/form-data to the files host, as ``v1.files.create``. A
        parameter ``raw_request`` would take as its own (``_RAW_RESERVED``) is refused:
        it would not be sent.
        """
        options = _raw_options(operation, params, idempotency_key, upload)
        try:
            response = self._client.raw_request(method, path, **params, **options)
        except stripe.StripeError as exc:
            raise _failed(operation, exc) from None
        return _raw_answer(operation, response)

    def _page(
        self, operation: str, path: str, query: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of a list, run on its own (each retry of it a new flow)."""
        return self._run(_page(operation, path, query))

    _options = staticmethod(_options)

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
        return self._run(_flows.create_payment(
            order_id, amount, payment_method, idempotency_key, customer_id, description,
            metadata, capture, return_url, off_session,
        ))  # fmt: skip

    def get_payment(self, payment_id: str) -> Payment:
        """The PaymentIntent with its charge and the charge's refunds, in one request.

        A second request only where the answer needs it: the rest of the refunds of a
        charge with more than one page of them, and the disputes of a disputed charge
        (the charge says only that it was disputed, not whether the dispute was won).
        """
        return self._run(_flows.get_payment(payment_id))

    def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment:
        return self._run(_flows.capture_payment(payment_id, amount, idempotency_key))

    def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment:
        return self._run(_flows.cancel_payment(payment_id, idempotency_key))

    def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund:
        return self._run(_flows.refund_payment(payment_id, amount, reason, idempotency_key))

    def get_refund(self, refund_id: str) -> Refund:
        return self._run(_flows.get_refund(refund_id))

    def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        """Back from Checkout (``session_id``) or a 3-D Secure redirect (``payment_intent``).

        Only ids are read from the query string; ``redirect_status`` is ignored and the
        payment is fetched from Stripe.
        """
        return self._run(_flows.complete_return(params))

    # -- checkout ---------------------------------------------------------------------------

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
        return self._run(_flows.create_checkout_session(
            order_id, line_items, success_url, cancel_url, idempotency_key, mode, customer_id,
            price_id, metadata,
        ))  # fmt: skip

    def get_checkout_session(self, session_id: str) -> CheckoutSession:
        return self._run(_flows.get_checkout_session(session_id))

    # -- customers, subscriptions -------------------------------------------------------------

    def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        return self._run(_flows.create_customer(email, name, idempotency_key, metadata))

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
        return self._run(_flows.create_subscription(
            customer_id, price_id, idempotency_key, metadata, trial_days, trial_end, quantity
        ))  # fmt: skip

    def get_subscription(self, subscription_id: str) -> Subscription:
        return self._run(_flows.get_subscription(subscription_id))

    def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        return self._run(_flows.cancel_subscription(subscription_id, at_period_end))

    # -- invoices, disputes --------------------------------------------------------------------

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
        """Create a draft, add the items, finalize, then send it (``send``) or charge it.

        Each step has its own key derived from ``idempotency_key``, so a retried call
        replays the steps already done instead of repeating them.
        """
        return self._run(_flows.create_invoice(
            customer_id, line_items, idempotency_key, order_id, description, send,
            self.settings.api_version,
        ))  # fmt: skip

    def get_dispute(self, dispute_id: str) -> Dispute:
        return self._run(_flows.get_dispute(dispute_id))

    # -- reconciliation ----------------------------------------------------------------------

    def iter_balance_transactions(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = BALANCE_TRANSACTIONS_MAX_PAGE,
        retry: RetryPolicy | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The account's Balance Transactions created in ``[since, until)``, newest first, as
        plain dicts, each with its ``source`` (and a refund's or dispute's ``source.charge``)
        expanded: what
        [`paygate.reconcile.StripeBalanceTransactions`][paygate.reconcile.StripeBalanceTransactions]
        reads.

        Lazy: one ``GET /v1/balance_transactions`` of ``page_size`` (<= 100) rows at a time,
        the next page (``starting_after`` the last id) only once this one is consumed.
        ``since``/``until`` must be timezone-aware; the arguments are checked now, the first
        request is sent on the first ``next()``.

        ``retry``: each page request goes through this policy (operation
        ``list_balance_transactions``): a retryable error (network, 5xx, 429) sends the same
        request again (same ``starting_after``), nothing yielded is yielded twice. ``None``
        (the default): no retry, the first error is raised.
        """
        check_window(since, until)
        params: dict[str, Any] = {
            "limit": check_page_size(page_size, BALANCE_TRANSACTIONS_MAX_PAGE),
            "expand": list(BALANCE_TRANSACTIONS_EXPAND),
        }
        created: dict[str, int] = {}
        # ``created`` is whole seconds: created >= t  <=>  created >= ceil(t), same for <
        if since is not None:
            created["gte"] = math.ceil(since.timestamp())
        if until is not None:
            created["lt"] = math.ceil(until.timestamp())
        if created:
            params["created"] = created
        return self._balance_transaction_pages(params, retry)

    def _balance_transaction_pages(
        self, params: dict[str, Any] | None, retry: RetryPolicy | None
    ) -> Iterator[dict[str, Any]]:
        operation = "list_balance_transactions"
        while params is not None:
            rows, params = call_with(
                retry,
                operation,
                functools.partial(self._page, operation, "/v1/balance_transactions", params),
            )
            yield from map(_plain, rows)

    # -- webhooks ----------------------------------------------------------------------------

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify ``Stripe-Signature`` over the raw body, then parse it once."""
        return parse_webhook(self.settings, self._secrets, self._clock(), body, headers)

    def close(self) -> None:
        """The SDK's requests session closes with the process; nothing to release here."""

    # -- after the first charge: subscriptions, dunning, disputes (issue 20) ---------------------

    def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        """Every status (Stripe lists only live ones unless asked), up to 100: the first
        page (a customer rarely has more)."""
        return self._run(_flows.list_subscriptions(customer_id))

    def change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        idempotency_key: str,
    ) -> Subscription:
        """Swap the subscription's (single) item to ``price_id`` / ``quantity``;
        ``proration`` is Stripe's ``proration_behavior``, as is."""
        return self._run(_flows.change_subscription(
            subscription_id, price_id, quantity, proration, idempotency_key
        ))  # fmt: skip

    def pause_subscription(self, subscription_id: str) -> Subscription:
        """Pause collection (``pause_collection[behavior]=void``): Stripe keeps the
        subscription ``active`` and voids its invoices until resumed; paygate reads it as
        ``paused``."""
        return self._run(_flows.update_subscription(
            "pause_subscription", subscription_id, {"pause_collection": {"behavior": "void"}}
        ))  # fmt: skip

    def resume_subscription(self, subscription_id: str) -> Subscription:
        """Unset ``pause_collection`` (Stripe's way to resume collection)."""
        return self._run(_flows.update_subscription(
            "resume_subscription", subscription_id, {"pause_collection": ""}
        ))  # fmt: skip

    def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        return self._run(_flows.update_subscription(
            "undo_cancel_subscription", subscription_id, {"cancel_at_period_end": False}
        ))  # fmt: skip

    def retry_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        """``POST /v1/invoices/{id}/pay``: charge the customer's default payment method now.
        A decline raises [`CardDeclined`][paygate.errors.CardDeclined] and leaves the invoice
        open."""
        return self._run(
            _flows.retry_invoice(invoice_id, idempotency_key, self.settings.api_version)
        )

    def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        return self._run(_flows.list_disputes(payment_id))

    def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """Upload each file (``purpose=dispute_evidence``), then update the dispute's
        ``evidence`` (fields named in [`DisputeEvidence`][paygate.models.DisputeEvidence]) with
        ``submit``: ``submit=False`` stages it, Stripe's own default."""
        return self._run(_flows.submit_dispute_evidence(dispute_id, evidence, submit))

    def accept_dispute(self, dispute_id: str) -> Dispute:
        """``POST /v1/disputes/{id}/close``: concede; the dispute is lost."""
        return self._run(_flows.accept_dispute(dispute_id))

    def get_customer(self, customer_id: str) -> Customer:
        return self._run(_flows.get_customer(customer_id))

    def update_customer(
        self,
        customer_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        return self._run(_flows.update_customer(customer_id, email, name, metadata))

    def list_customers(
        self, *, email: str | None = None, page_size: int = CUSTOMERS_MAX_PAGE
    ) -> Iterator[Customer]:
        """Every customer (Stripe's order: newest first), a page per request as consumed."""
        return self._customer_pages(customer_list_query(email, page_size))

    def _customer_pages(self, query: dict[str, Any] | None) -> Iterator[Customer]:
        while query is not None:
            customers, query = self._run(_flows.customer_page(query))
            yield from customers

    def delete_customer(self, customer_id: str) -> None:
        self._run(_flows.delete_customer(customer_id))

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
        """A SetupIntent (its ``client_secret`` for Stripe.js, or confirmed at once with a
        ``payment_method``), or with only a ``return_url`` a Checkout Session in setup
        mode (its ``url``: the customer enters a card on Stripe's page)."""
        return self._run(_flows.create_setup(
            customer_id, idempotency_key, return_url, cancel_url, usage, payment_method,
            verification_token,
        ))  # fmt: skip

    def complete_setup(self, params: Mapping[str, str], *, idempotency_key: str) -> SetupSession:
        """Back from Checkout in setup mode (``session_id``) or from Stripe.js's
        ``confirmSetup`` redirect (``setup_intent``); only the ids are read, and the setup
        is fetched from Stripe (``redirect_status`` is ignored)."""
        return self._run(_flows.complete_setup(params))

    def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        return self._run(_flows.list_payment_methods(customer_id))

    def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        return self._run(_flows.get_payment_method(payment_method_id))

    def set_default_payment_method(self, customer_id: str, payment_method_id: str) -> Customer:
        """The customer's ``invoice_settings.default_payment_method``: what invoices and
        subscriptions charge."""
        return self._run(_flows.set_default_payment_method(customer_id, payment_method_id))

    def detach_payment_method(self, payment_method_id: str) -> None:
        self._run(_flows.detach_payment_method(payment_method_id))


#: DisputeEvidence's text fields -> Stripe's ``evidence`` fields
STRIPE_EVIDENCE_TEXT: Final[Mapping[str, str]] = {
    "explanation": "uncategorized_text",
    "product_description": "product_description",
    "customer_name": "customer_name",
    "customer_email": "customer_email_address",
    "shipping_carrier": "shipping_carrier",
    "tracking_number": "shipping_tracking_number",
    "service_date": "service_date",
    "refund_policy": "refund_policy_disclosure",
    "cancellation_policy": "cancellation_policy_disclosure",
}
#: EvidenceFile.kind -> Stripe's ``evidence`` file field
STRIPE_EVIDENCE_FILES: Final[Mapping[str, str]] = {
    "receipt": "receipt",
    "customer_communication": "customer_communication",
    "shipping_documentation": "shipping_documentation",
    "service_documentation": "service_documentation",
    "refund_policy": "refund_policy",
    "cancellation_policy": "cancellation_policy",
    "other": "uncategorized_file",
}


def stripe_evidence_fields(evidence: DisputeEvidence) -> dict[str, Any]:
    """The text part of Stripe's ``evidence`` hash."""
    return {
        stripe_name: getattr(evidence, name)
        for name, stripe_name in STRIPE_EVIDENCE_TEXT.items()
        if getattr(evidence, name) is not None
    }


def stripe_evidence_files(evidence: DisputeEvidence) -> list[tuple[str, EvidenceFile]]:
    """Each file with the ``evidence`` field it goes to: its kind's, or
    ``uncategorized_file`` when that is taken; Stripe holds one file per field."""
    placed: dict[str, EvidenceFile] = {}
    for evidence_file in evidence.files:
        field_name = STRIPE_EVIDENCE_FILES[evidence_file.kind]
        if field_name in placed:
            field_name = "uncategorized_file"
        if field_name in placed:
            raise ValidationError(
                f"stripe: too many evidence files: {evidence_file.name!r} has no free field "
                "(one per kind, plus one uncategorized)"
            )
        placed[field_name] = evidence_file
    return [(name, f) for name, f in placed.items()]


def _change_item(price_id: str | None, quantity: int | None, proration: str) -> dict[str, Any]:
    if price_id is None and quantity is None:
        raise ValidationError("change_subscription needs price_id or quantity")
    if proration not in ("create_prorations", "none", "always_invoice"):
        raise ValidationError(
            f"proration must be 'create_prorations', 'none' or 'always_invoice', got {proration!r}"
        )
    item: dict[str, Any] = {}
    if price_id is not None:
        item["price"] = price_id
    if quantity is not None:
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise ValidationError(f"quantity must be an int >= 1, got {quantity!r}")
        item["quantity"] = quantity
    return item


def stripe_trial(trial_days: Any, trial_end: Any) -> dict[str, int]:
    """``trial_period_days`` or ``trial_end`` (Unix seconds), checked."""
    if trial_days is not None and trial_end is not None:
        raise ValidationError("give trial_days or trial_end, not both")
    if trial_days is not None:
        if isinstance(trial_days, bool) or not isinstance(trial_days, int) or trial_days < 1:
            raise ValidationError(f"trial_days must be an int >= 1, got {trial_days!r}")
        return {"trial_period_days": trial_days}
    if trial_end is not None:
        if not isinstance(trial_end, datetime) or trial_end.tzinfo is None:
            raise ValidationError(f"trial_end must be a timezone-aware datetime, got {trial_end!r}")
        return {"trial_end": int(trial_end.timestamp())}
    return {}


# -- request builders of issues 19 and 20, shared with the async twin ------------------------


def subscription_list_params(customer_id: str | None) -> dict[str, Any]:
    """Every status (Stripe lists only live ones unless asked), up to 100."""
    params: dict[str, Any] = {"status": "all", "limit": 100}
    if customer_id is not None:
        params["customer"] = customer_id
    return params


def single_item_id(current: Mapping[str, Any], subscription_id: str) -> str:
    """The id of the subscription's one item (what ``change_subscription`` swaps)."""
    items = (current.get("items") or {}).get("data") or []
    if len(items) != 1:
        raise ValidationError(
            f"stripe: subscription {subscription_id} has {len(items)} items; "
            "change_subscription changes a one-item subscription"
        )
    item_id: str = items[0]["id"]
    return item_id


def dispute_list_params(payment_id: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": 100}
    if payment_id is not None:
        params["payment_intent"] = payment_id
    return params


def check_evidence(evidence: Any) -> None:
    if not isinstance(evidence, DisputeEvidence):
        raise ValidationError(f"evidence must be a DisputeEvidence, got {type(evidence).__name__}")


def evidence_upload_params(evidence_file: EvidenceFile) -> dict[str, Any]:
    """``POST /v1/files`` for one evidence file."""
    upload = io.BytesIO(evidence_file.content)
    upload.name = evidence_file.name  # the multipart encoder sends it as the filename
    return {"purpose": "dispute_evidence", "file": upload}


def live_customer_from_stripe(data: Mapping[str, Any], customer_id: str) -> Customer:
    """The customer, or [`NotFound`][paygate.errors.NotFound] for the stub Stripe still
    answers with for a deleted one."""
    if data.get("deleted"):
        raise errors.NotFound(
            f"customer {customer_id} was deleted",
            provider=PROVIDER,
            code="resource_missing",
            http_status=404,
        )
    return customer_from_stripe(data)


def customer_update_params(
    email: str | None, name: str | None, metadata: Mapping[str, str] | None
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if email is not None:
        params["email"] = email
    if name is not None:
        params["name"] = name
    if metadata:
        params["metadata"] = dict(metadata)
    return params


def customer_list_query(email: str | None, page_size: int) -> dict[str, Any]:
    check_page_size(page_size, CUSTOMERS_MAX_PAGE)
    query: dict[str, Any] = {"limit": page_size}
    if email is not None:
        query["email"] = email
    return query


def setup_request(
    customer_id: str,
    return_url: str | None,
    cancel_url: str | None,
    usage: str,
    payment_method: str | None,
    verification_token: str | None,
) -> tuple[str, dict[str, Any]]:
    """What ``create_setup`` asks, as (``"setup_intent"`` or ``"checkout"``, params): a
    SetupIntent (confirmed at once with a ``payment_method``), or with only a
    ``return_url`` a Checkout Session in setup mode."""
    if usage not in ("off_session", "on_session"):
        raise ValidationError(f"usage must be 'off_session' or 'on_session', got {usage!r}")
    if not isinstance(customer_id, str) or not customer_id:
        raise ValidationError("create_setup needs the customer_id to save the method for")
    if verification_token is not None:
        raise ValidationError("verification_token is Square's; Stripe authenticates itself")
    if payment_method or not return_url:
        params: dict[str, Any] = {"customer": customer_id, "usage": usage}
        if payment_method:
            params["payment_method"] = payment_method
            params["confirm"] = True
            if return_url:
                params["return_url"] = return_url
            else:  # nothing may redirect; 3-D Secure still runs in-page with Stripe.js
                params["automatic_payment_methods"] = {
                    "enabled": True,
                    "allow_redirects": "never",
                }
        else:
            params["automatic_payment_methods"] = {"enabled": True}
        return "setup_intent", params
    return "checkout", {
        "mode": "setup",
        "customer": customer_id,
        # setup mode needs the method types (or a currency, which a setup has none of)
        "allowed_payment_method_types": ["card"],
        "success_url": _with_session_placeholder(return_url),
        "cancel_url": cancel_url or return_url,
    }


def default_method_params(payment_method_id: str) -> dict[str, Any]:
    """The customer's ``invoice_settings.default_payment_method``."""
    return {"invoice_settings": {"default_payment_method": payment_method_id}}
