"""The shared, provider-agnostic results every adapter returns.

All are frozen, slotted dataclasses. ``raw`` keeps the provider's original object (a dict,
or the SDK object) for anything paygate does not normalize; it is left out of ``repr`` and
of equality because it can be large and can hold client secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from paygate._compat import StrEnum
from paygate.errors import ValidationError
from paygate.money import Money

__all__ = [
    "CaptureMethod",
    "CheckoutMode",
    "CheckoutSession",
    "CheckoutStatus",
    "Customer",
    "Dispute",
    "DisputeEvidence",
    "DisputeReason",
    "DisputeStatus",
    "EventType",
    "EvidenceFile",
    "Invoice",
    "InvoiceStatus",
    "LineItem",
    "Payment",
    "PaymentFailure",
    "PaymentMethod",
    "PaymentMethodKind",
    "PaymentStatus",
    "Refund",
    "RefundStatus",
    "SetupSession",
    "SetupStatus",
    "SetupUsage",
    "Subscription",
    "SubscriptionStatus",
    "WebhookDelivery",
    "WebhookEvent",
]

CaptureMethod = Literal["automatic", "manual"]
CheckoutMode = Literal["payment", "subscription"]


class PaymentStatus(StrEnum):
    """One payment's state. See [`paygate.state`][paygate.state] for how it may move."""

    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    #: a dispute was lost: the money went back to the cardholder. Terminal.
    CHARGED_BACK = "charged_back"


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REQUIRES_ACTION = "requires_action"


class SubscriptionStatus(StrEnum):
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    #: waiting for the customer to approve it at the provider (PayPal APPROVAL_PENDING)
    PENDING = "pending"


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"
    REFUNDED = "refunded"


class DisputeStatus(StrEnum):
    #: the merchant is asked to respond (Stripe needs_response, warning_needs_response)
    OPEN = "open"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    #: closed without a ruling (accepted, withdrawn, warning closed)
    CLOSED = "closed"


class DisputeReason(StrEnum):
    """Why the cardholder disputed, in one vocabulary (each adapter maps its provider's
    reason codes here; [`Dispute.reason`][paygate.models.Dispute] keeps the provider's own)."""

    FRAUDULENT = "fraudulent"
    UNRECOGNIZED = "unrecognized"
    DUPLICATE = "duplicate"
    SUBSCRIPTION_CANCELED = "subscription_canceled"
    PRODUCT_NOT_RECEIVED = "product_not_received"
    PRODUCT_UNACCEPTABLE = "product_unacceptable"
    CREDIT_NOT_PROCESSED = "credit_not_processed"
    INCORRECT_AMOUNT = "incorrect_amount"
    GENERAL = "general"


class CheckoutStatus(StrEnum):
    OPEN = "open"
    COMPLETE = "complete"
    EXPIRED = "expired"


class EventType(StrEnum):
    """One webhook vocabulary for all providers. Unknown types are kept, never dropped."""

    PAYMENT_CREATED = "payment.created"
    PAYMENT_ACTION_REQUIRED = "payment.action_required"
    PAYMENT_PROCESSING = "payment.processing"
    PAYMENT_AUTHORIZED = "payment.authorized"
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_CANCELED = "payment.canceled"
    REFUND_CREATED = "refund.created"
    REFUND_SUCCEEDED = "refund.succeeded"
    REFUND_FAILED = "refund.failed"
    DISPUTE_OPENED = "dispute.opened"
    DISPUTE_UPDATED = "dispute.updated"
    DISPUTE_WON = "dispute.won"
    DISPUTE_LOST = "dispute.lost"
    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_UPDATED = "subscription.updated"
    SUBSCRIPTION_CANCELED = "subscription.canceled"
    SUBSCRIPTION_PAYMENT_FAILED = "subscription.payment_failed"
    INVOICE_CREATED = "invoice.created"
    INVOICE_PAID = "invoice.paid"
    INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
    INVOICE_VOIDED = "invoice.voided"
    INVOICE_REFUNDED = "invoice.refunded"
    CHECKOUT_COMPLETED = "checkout.completed"
    CHECKOUT_EXPIRED = "checkout.expired"
    CUSTOMER_CREATED = "customer.created"
    CUSTOMER_UPDATED = "customer.updated"
    CUSTOMER_DELETED = "customer.deleted"
    #: a payment method was saved for a customer (Stripe attached, PayPal payment token
    #: created, Square card created)
    PAYMENT_METHOD_ATTACHED = "payment_method.attached"
    #: its details changed, the card network's account updater included (Stripe
    #: ``payment_method.automatically_updated``, Square ``card.automatically_updated``)
    PAYMENT_METHOD_UPDATED = "payment_method.updated"
    #: removed from the customer (detached, deleted, disabled)
    PAYMENT_METHOD_DETACHED = "payment_method.detached"
    SETUP_SUCCEEDED = "setup.succeeded"
    SETUP_FAILED = "setup.failed"
    UNKNOWN = "unknown"
    # subscription facts (paygate.subscription_state): what a subscription's handlers hear,
    # once each, whichever channel taught it
    SUBSCRIPTION_TRIAL_WILL_END = "subscription.trial_will_end"
    SUBSCRIPTION_ACTIVATED = "subscription.activated"
    SUBSCRIPTION_RENEWED = "subscription.renewed"
    SUBSCRIPTION_PLAN_CHANGED = "subscription.plan_changed"
    SUBSCRIPTION_PAST_DUE = "subscription.past_due"
    SUBSCRIPTION_UNPAID = "subscription.unpaid"
    SUBSCRIPTION_RECOVERED = "subscription.recovered"
    SUBSCRIPTION_PAUSED = "subscription.paused"
    SUBSCRIPTION_RESUMED = "subscription.resumed"
    SUBSCRIPTION_CANCEL_SCHEDULED = "subscription.cancel_scheduled"
    SUBSCRIPTION_CANCEL_UNSCHEDULED = "subscription.cancel_unscheduled"
    SUBSCRIPTION_EXPIRED = "subscription.expired"
    INVOICE_UPCOMING = "invoice.upcoming"


def _no_hash() -> Any:
    return field(default_factory=dict, hash=False)


def _raw() -> Any:
    return field(default=None, repr=False, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class PaymentFailure:
    """Why a payment failed: the provider's ``code``, a message, a standard decline code."""

    code: str
    message: str = ""
    decline_code: str | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    provider: str
    email: str | None = None
    name: str | None = None
    metadata: Mapping[str, str] = _no_hash()
    raw: Any = _raw()
    #: the saved payment method charged when none is named, where the provider keeps one
    default_payment_method_id: str | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment attempt for one order.

    ``charge_id`` is the provider's id of the money movement when it differs from ``id``
    (Stripe's charge, PayPal's capture): refunds and reconciliation use it.
    ``client_secret`` is hidden from ``repr``.
    """

    id: str
    provider: str
    order_id: str | None
    amount: Money
    status: PaymentStatus
    amount_captured: Money | None = None
    amount_refunded: Money | None = None
    customer_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    redirect_url: str | None = None
    failure: PaymentFailure | None = None
    created_at: datetime | None = None
    charge_id: str | None = None
    metadata: Mapping[str, str] = _no_hash()
    #: the refunds the provider's answer lists for this payment (each by id), where it
    #: lists them; the state machine counts each once
    refunds: tuple[Refund, ...] = ()
    raw: Any = _raw()

    def __post_init__(self) -> None:
        if type(self.refunds) is not tuple:  # a list from a store's JSON, or a caller
            object.__setattr__(self, "refunds", tuple(self.refunds))
        # a zero only when one is missing: a webhook builds several payments, all with both
        if self.amount_captured is None or self.amount_refunded is None:
            zero = Money(0, self.amount.currency)
            if self.amount_captured is None:
                object.__setattr__(self, "amount_captured", zero)
            if self.amount_refunded is None:
                object.__setattr__(self, "amount_refunded", zero)


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    provider: str
    payment_id: str
    amount: Money
    status: RefundStatus
    reason: str | None = None
    order_id: str | None = None
    created_at: datetime | None = None
    failure_reason: str | None = None
    raw: Any = _raw()


@dataclass(frozen=True, slots=True)
class LineItem:
    """One line of a checkout or invoice: ``unit_amount`` × ``quantity``."""

    name: str
    unit_amount: Money
    quantity: int = 1
    description: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError(f"LineItem.name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.unit_amount, Money):
            raise ValidationError(
                f"LineItem.unit_amount must be Money, got {type(self.unit_amount).__name__}"
            )
        if self.unit_amount.amount < 0:
            raise ValidationError(
                f"LineItem {self.name!r}: negative unit_amount {self.unit_amount}"
            )
        if (
            isinstance(self.quantity, bool)
            or not isinstance(self.quantity, int)
            or self.quantity < 1
        ):
            raise ValidationError(
                f"LineItem {self.name!r}: quantity must be an int >= 1, got {self.quantity!r}"
            )

    @property
    def total(self) -> Money:
        return self.unit_amount * self.quantity


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    """A hosted payment page; send the customer to ``url``."""

    id: str
    provider: str
    url: str | None
    status: CheckoutStatus
    order_id: str | None = None
    payment_id: str | None = None
    amount_total: Money | None = None
    expires_at: datetime | None = None
    mode: CheckoutMode = "payment"
    customer_id: str | None = None
    subscription_id: str | None = None
    raw: Any = _raw()


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    provider: str
    customer_id: str | None
    price_id: str | None
    status: SubscriptionStatus
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    #: where the customer approves it, for providers that need that (PayPal)
    redirect_url: str | None = None
    raw: Any = _raw()
    quantity: int = 1
    current_period_start: datetime | None = None
    trial_end: datetime | None = None
    #: the provider's own version of the object where it keeps one (Square's ``version``):
    #: a higher one is newer
    version: int | None = None
    #: when the provider last changed it, where it says (PayPal's ``update_time``)
    updated_at: datetime | None = None
    #: when a paused subscription resumes by itself, where the provider says
    resumes_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Invoice:
    id: str
    provider: str
    customer_id: str | None
    status: InvoiceStatus
    amount_due: Money
    amount_paid: Money | None = None
    order_id: str | None = None
    number: str | None = None
    hosted_url: str | None = None
    payment_id: str | None = None
    due_at: datetime | None = None
    created_at: datetime | None = None
    raw: Any = _raw()
    #: the subscription this invoice bills, where it bills one
    subscription_id: str | None = None
    #: how many times the provider tried to collect it (Stripe's ``attempt_count``)
    attempt_count: int = 0
    #: ``"subscription_cycle"``, ``"subscription_create"``, ``"subscription_update"``,
    #: ``"manual"`` (Stripe's ``billing_reason``), where known
    billing_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Dispute:
    id: str
    provider: str
    payment_id: str | None
    amount: Money
    status: DisputeStatus
    reason: str | None = None
    order_id: str | None = None
    evidence_due_by: datetime | None = None
    created_at: datetime | None = None
    raw: Any = _raw()
    #: the reason in one vocabulary for every provider (``reason`` keeps the provider's)
    reason_code: DisputeReason | None = None
    #: evidence was submitted and the provider is deciding
    evidence_submitted: bool = False


# -- saved payment methods -------------------------------------------------------------------

#: what a saved payment method will be used for: charges without the customer present
#: (renewals, reorders), or only with them
SetupUsage = Literal["off_session", "on_session"]


class PaymentMethodKind(StrEnum):
    """What a saved payment method is."""

    CARD = "card"
    PAYPAL = "paypal"
    BANK_ACCOUNT = "bank_account"
    #: Apple Pay, Google Pay, Venmo, Cash App and other wallets
    WALLET = "wallet"
    OTHER = "other"


class SetupStatus(StrEnum):
    """Where saving a payment method stands."""

    #: waiting for the customer: to enter or approve the method, or to authenticate
    REQUIRES_ACTION = "requires_action"
    #: the provider is still verifying the method (bank accounts)
    PROCESSING = "processing"
    #: saved: ``SetupSession.payment_method_id`` names it
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    """A payment method saved for a customer, to charge later with its ``id``.

    Only what a receipt may show: a card's ``brand``, ``last4`` and expiry, and the
    provider's ``fingerprint`` (the same card saved twice has the same one) where the
    provider gives one. Never a card number or security code: paygate never sees them.
    """

    id: str
    provider: str
    customer_id: str | None
    kind: PaymentMethodKind
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    fingerprint: str | None = None
    #: the payer's email for a PayPal account
    email: str | None = None
    created_at: datetime | None = None
    raw: Any = _raw()


@dataclass(frozen=True, slots=True)
class SetupSession:
    """The provider's flow to save a payment method for ``customer_id``.

    The customer's step is either ``url`` (send them there: Stripe Checkout in setup
    mode, PayPal's approval page) or ``client_secret`` (hand it to the provider's
    front-end library: a Stripe SetupIntent). ``client_secret`` is hidden from ``repr``.
    ``payment_method_id`` is set once ``status`` is ``succeeded``.
    """

    id: str
    provider: str
    status: SetupStatus
    customer_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    url: str | None = None
    payment_method_id: str | None = None
    usage: SetupUsage = "off_session"
    failure: PaymentFailure | None = None
    created_at: datetime | None = None
    raw: Any = _raw()


WebhookObject = (
    Payment
    | Refund
    | Dispute
    | Subscription
    | Invoice
    | CheckoutSession
    | Customer
    | PaymentMethod
    | SetupSession
)


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A verified, normalized webhook event.

    ``object`` is the normalized object the event is about (``None`` for types paygate does
    not normalize); ``provider_type`` is the provider's own event name
    (``payment_intent.succeeded``), kept for ``EventType.UNKNOWN`` events in particular.
    """

    id: str
    provider: str
    type: EventType
    occurred_at: datetime | None
    object: WebhookObject | None
    provider_type: str = ""
    raw: Any = _raw()

    @property
    def payment_id(self) -> str | None:
        """The payment this event concerns, when it concerns one."""
        obj = self.object
        if isinstance(obj, Payment):
            return obj.id
        if isinstance(obj, (Refund, Dispute)):
            return obj.payment_id
        if isinstance(obj, (CheckoutSession, Invoice)):
            return obj.payment_id
        return None

    @property
    def order_id(self) -> str | None:
        obj = self.object
        return getattr(obj, "order_id", None) if obj is not None else None


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """An HTTP webhook request as a provider would send it: raw body and headers."""

    body: bytes
    headers: dict[str, str]


EvidenceKind = Literal[
    "receipt",
    "customer_communication",
    "shipping_documentation",
    "service_documentation",
    "refund_policy",
    "cancellation_policy",
    "other",
]


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    """A document answering a dispute: a receipt, a signed delivery slip, an email thread.

    Attributes:
        name: The file name the provider shows (``receipt-1042.pdf``).
        content: The file's bytes.
        content_type: ``application/pdf``, ``image/png`` or ``image/jpeg`` (what all three
            providers accept).
        kind: What it proves; each adapter files it under its provider's matching category.
    """

    name: str
    content: bytes = field(repr=False)
    content_type: str = "application/pdf"
    kind: EvidenceKind = "other"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError(f"EvidenceFile.name must be a non-empty str, got {self.name!r}")
        if not isinstance(self.content, bytes) or not self.content:
            raise ValidationError(f"EvidenceFile {self.name!r}: content must be non-empty bytes")
        if self.content_type not in ("application/pdf", "image/png", "image/jpeg"):
            raise ValidationError(
                f"EvidenceFile {self.name!r}: content_type must be application/pdf, image/png "
                f"or image/jpeg, got {self.content_type!r}"
            )


@dataclass(frozen=True, slots=True)
class DisputeEvidence:
    """The merchant's answer to a dispute, in one shape for every provider.

    Every field is optional; give what the dispute's reason calls for (a delivery for
    "not received", the refund policy for "credit not processed", the cancellation policy
    for "subscription canceled"). Each adapter maps the fields onto its provider:

    * Stripe: each text field goes to its ``evidence`` field (``explanation`` to
      ``uncategorized_text``, ``customer_email`` to ``customer_email_address``,
      ``tracking_number`` to ``shipping_tracking_number``, the policies to
      ``refund_policy_disclosure`` / ``cancellation_policy_disclosure``); each file is
      uploaded (``purpose=dispute_evidence``) and named in the field of its ``kind``.
    * PayPal: ``provide-evidence`` with the text fields as the evidence's ``notes``, the
      carrier and tracking number as ``PROOF_OF_FULFILLMENT`` tracking info, the files as
      its documents.
    * Square: one evidence text per field (``TRACKING_NUMBER``, ``REFUND_POLICY``,
      ``CANCELLATION_OR_REFUND_DOCUMENTATION``, else ``GENERIC_EVIDENCE``), one evidence
      file per file.

    Attributes:
        explanation: Your account of what happened, in plain words.
        product_description: What was sold.
        customer_name: The customer's name as you know it.
        customer_email: The customer's email address.
        shipping_carrier: The carrier that delivered.
        tracking_number: The carrier's tracking number.
        service_date: When the service was provided (``YYYY-MM-DD``).
        refund_policy: The refund policy the customer was shown.
        cancellation_policy: The cancellation policy the customer was shown.
        files: Documents (receipts, correspondence, delivery proof).
    """

    explanation: str | None = None
    product_description: str | None = None
    customer_name: str | None = None
    customer_email: str | None = None
    shipping_carrier: str | None = None
    tracking_number: str | None = None
    service_date: str | None = None
    refund_policy: str | None = None
    cancellation_policy: str | None = None
    files: tuple[EvidenceFile, ...] = ()

    def __post_init__(self) -> None:
        if type(self.files) is not tuple:
            object.__setattr__(self, "files", tuple(self.files))
        for name in self.text_fields():
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValidationError(f"DisputeEvidence.{name} must be a non-empty str or None")
        if any(not isinstance(f, EvidenceFile) for f in self.files):
            raise ValidationError("DisputeEvidence.files must hold EvidenceFile objects")
        if not self.files and all(getattr(self, n) is None for n in self.text_fields()):
            raise ValidationError("DisputeEvidence is empty: give at least one field or file")

    @staticmethod
    def text_fields() -> tuple[str, ...]:
        """The text fields, in the order adapters write them."""
        return (
            "explanation",
            "product_description",
            "customer_name",
            "customer_email",
            "shipping_carrier",
            "tracking_number",
            "service_date",
            "refund_policy",
            "cancellation_policy",
        )

    def summary(self) -> str:
        """The text fields as labelled lines, for providers that take one free text."""
        lines = []
        for name in self.text_fields():
            value = getattr(self, name)
            if value is not None:
                lines.append(f"{name.replace('_', ' ').capitalize()}: {value}")
        return "\n".join(lines)
