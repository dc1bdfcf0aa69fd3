"""``FakeProvider``: a real, in-memory adapter for offline tests and demos.

It is not a mock: it keeps payments, refunds, customers, subscriptions, invoices, disputes
and checkout sessions as its own records, enforces the same rules a real provider does
(idempotency keys, capture and refund limits, typed errors) and reports every state change
as a webhook delivery signed with its own timestamped HMAC scheme, which
[`FakeProvider.parse_webhook`][paygate.providers.fake.FakeProvider.parse_webhook] verifies like any
real provider's.

Outcomes are scripted by the payment method token (see ``TOKEN_OUTCOMES`` below):

=========================  ==========================================================
``tok_visa`` (``_mastercard``, ``_amex``)  succeeds (``authorized`` with ``capture="manual"``)
``tok_declined``            raises ``CardDeclined`` (decline_code ``card_declined``)
``tok_insufficient_funds``  raises ``CardDeclined`` (``insufficient_funds``)
``tok_expired_card``        raises ``CardDeclined`` (``expired_card``)
``tok_incorrect_cvc``       raises ``CardDeclined`` (``incorrect_cvc``)
``tok_processing_error``    raises ``CardDeclined`` (``processing_error``)
``tok_3ds``                 ``requires_action`` until
[`FakeProvider.authenticate`][paygate.providers.fake.FakeProvider.authenticate] ``tok_processing``
``processing`` until [`FakeProvider.settle`][paygate.providers.fake.FakeProvider.settle]
``tok_dispute`` succeeds, then a dispute opens (``dispute.opened``) ``tok_refund_pending``
succeeds; its refunds stay ``pending`` until
                            [`FakeProvider.settle_refund`][paygate.providers.fake.FakeProvider.settle_refund]
                            (or ``fail_refund``)
``tok_later_declined``      saves (``create_setup``), then every charge declines
``tok_authentication_required``  saves; on session ``requires_action``, off session
                            raises ``AuthenticationRequired``
``tok_expiring``            saves a card expiring this month; the network renews it with
                            ``network_update_card``
``None``                    ``pending`` (no method yet;
[`FakeProvider.confirm_payment`][paygate.providers.fake.FakeProvider.confirm_payment])
=========================  ==========================================================

Any refund can later fail with
[`FakeProvider.fail_refund`][paygate.providers.fake.FakeProvider.fail_refund] (a pending one, or one
that succeeded: its amount comes back to the payment), each step with its signed webhook
(``refund.succeeded``, ``refund.failed``). `FakeProvider.get_payment` lists the payment's refunds in
``Payment.refunds``; payment webhooks do not carry them.

A declined ``create_payment`` raises [`CardDeclined`][paygate.errors.CardDeclined] *and* keeps the
failed payment (as Stripe keeps the PaymentIntent), emitting ``payment.failed``; the failed
payment's id is on the exception as ``payment_id``. The same idempotency key replays the
same answer (the same ``Payment`` snapshot, or the same decline) and charges nothing again.

Saved payment methods (``Capability.PAYMENT_METHODS``): ``create_setup`` with a token saves
it at once (``tok_3ds`` first waits for ``authenticate_setup``; a
declining token fails the setup), without one the customer's step waits for
``approve_setup``. A saved method's ``pm_...`` id is charged with its
``customer_id`` (``off_session=True`` for merchant-initiated charges); each change is a
signed ``customer.*``, ``payment_method.*`` or ``setup.*`` webhook.

Settings (keyword-only, strings from the environment accepted): ``webhook_secret``,
``seed`` (same seed + same calls → same ids; default: random), ``clock`` (unix seconds),
``base_url`` (of the local hosted pages), ``webhook_tolerance`` (seconds), ``max_retries``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Concatenate, Final, Literal, ParamSpec, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic import ValidationError as PydanticValidationError

from paygate import _signing
from paygate._json import load_object
from paygate.errors import (
    AuthenticationRequired,
    CardDeclined,
    ConfigurationError,
    IdempotencyConflict,
    InvalidRequest,
    MalformedPayload,
    NotFound,
    ProviderError,
    ValidationError,
)
from paygate.models import (
    CaptureMethod,
    CheckoutMode,
    CheckoutSession,
    Customer,
    Dispute,
    DisputeEvidence,
    EventType,
    Invoice,
    LineItem,
    Payment,
    PaymentMethod,
    Refund,
    SetupSession,
    SetupUsage,
    Subscription,
    WebhookDelivery,
    WebhookEvent,
)
from paygate.money import Money
from paygate.provider import BaseProvider, Capability, Proration
from paygate.providers import _fake_codec as codec

__all__ = [
    "DECLINES",
    "DEFAULT_WEBHOOK_SECRET",
    "OPERATIONS",
    "SIGNATURE_HEADER",
    "TOKEN_OUTCOMES",
    "FakeProvider",
    "FakeSettings",
]

# The async face lives in its own module, imported on first use (__getattr__); type
# checkers see it here. (A local TYPE_CHECKING, which mypy and pyright recognize by name,
# leaves this module's imports as they were.)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from paygate.providers._fake_async import AsyncFakeProvider as AsyncFakeProvider


def __getattr__(name: str) -> Any:
    if name == "AsyncFakeProvider":
        from paygate.providers._fake_async import AsyncFakeProvider

        return AsyncFakeProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- mapping tables --------------------------------------------------------------------------

Outcome = Literal["succeed", "decline", "require_action", "processing", "dispute", "refund_pending"]

#: payment method token → what happens when it is used
TOKEN_OUTCOMES: Final[Mapping[str, Outcome]] = {
    "tok_visa": "succeed",
    "tok_mastercard": "succeed",
    "tok_amex": "succeed",
    "tok_declined": "decline",
    "tok_insufficient_funds": "decline",
    "tok_expired_card": "decline",
    "tok_incorrect_cvc": "decline",
    "tok_processing_error": "decline",
    "tok_3ds": "require_action",
    "tok_processing": "processing",
    "tok_dispute": "dispute",
    "tok_refund_pending": "refund_pending",
    "tok_later_declined": "decline",
    "tok_authentication_required": "require_action",
    "tok_expiring": "succeed",
}

#: declining token → (standard decline code, the message a card network would give)
DECLINES: Final[Mapping[str, tuple[str, str]]] = {
    "tok_declined": ("card_declined", "Your card was declined."),
    "tok_insufficient_funds": ("insufficient_funds", "Your card has insufficient funds."),
    "tok_expired_card": ("expired_card", "Your card has expired."),
    "tok_incorrect_cvc": ("incorrect_cvc", "Your card's security code is incorrect."),
    "tok_processing_error": (
        "processing_error",
        "An error occurred while processing your card. Try again later.",
    ),
    "tok_later_declined": ("card_declined", "Your card was declined."),
}

#: what saving a token does (``create_setup``): anything not listed saves at once, except
#: the tokens that decline, whose setup fails
SETUP_OUTCOMES: Final[Mapping[str, Literal["succeed", "decline", "require_action"]]] = {
    "tok_3ds": "require_action",
    "tok_later_declined": "succeed",  # as Stripe's 4000000000000341: attaches, charges fail
    "tok_authentication_required": "succeed",  # as 4000002760003184
}
#: a saved method's charges run as this token: 3-D Secure done at setup covers them
SAVED_CHARGES_AS: Final[Mapping[str, str]] = {"tok_3ds": "tok_visa"}
#: tokens whose saved card expires in the month it is saved
EXPIRES_THIS_MONTH: Final = frozenset({"tok_expiring"})
#: token → (card brand, last four digits) of the card it stands for
CARDS: Final[Mapping[str, tuple[str, str]]] = {
    "tok_visa": ("visa", "4242"),
    "tok_mastercard": ("mastercard", "4444"),
    "tok_amex": ("amex", "8431"),
    "tok_3ds": ("visa", "3155"),
    "tok_later_declined": ("visa", "0341"),
    "tok_authentication_required": ("visa", "3184"),
    "tok_expiring": ("visa", "1881"),
}

#: the price id whose invoices always fail (any other ``price_*`` id is a valid price)
DECLINED_PRICE: Final = "price_declined"
#: what a ``price_*`` id costs per period unless
#: [`FakeProvider.define_price`][paygate.providers.fake.FakeProvider.define_price] says else
DEFAULT_PRICE: Final = Money(1000, "USD")

#: the fake's event types are paygate's own vocabulary, one for one
EVENT_TYPES: Final[Mapping[str, EventType]] = {
    t.value: t for t in EventType if t is not EventType.UNKNOWN
}
#: event type prefix → the ``object`` kind its ``data.object`` must be
EVENT_OBJECT_KINDS: Final[Mapping[str, str]] = {
    "payment": "payment",
    "refund": "refund",
    "dispute": "dispute",
    "subscription": "subscription",
    "invoice": "invoice",
    "checkout": "checkout_session",
    "customer": "customer",
    "payment_method": "payment_method",
    "setup": "setup_session",
}

SIGNATURE_HEADER: Final = "Paygate-Signature"
#: a fixed, obviously fake default so that tests sign and verify without configuration
DEFAULT_WEBHOOK_SECRET: Final = "whsec_fake_paygate_test_secret"  # noqa: S105 - public, fake

#: the protocol operations (``calls`` keys, ``fail_next`` targets)
OPERATIONS: Final = frozenset(
    {
        "create_payment",
        "get_payment",
        "capture_payment",
        "cancel_payment",
        "refund_payment",
        "get_refund",
        "create_checkout_session",
        "get_checkout_session",
        "complete_return",
        "create_customer",
        "create_subscription",
        "get_subscription",
        "cancel_subscription",
        "create_invoice",
        "get_dispute",
        "parse_webhook",
        "get_customer",
        "update_customer",
        "list_customers",
        "delete_customer",
        "create_setup",
        "complete_setup",
        "list_payment_methods",
        "get_payment_method",
        "set_default_payment_method",
        "detach_payment_method",
    }
)

_DAY = 86_400
_MAX_AMOUNT = 99_999_999  # minor units, as Stripe's amount_too_large limit
_MAX_KEY_LENGTH = 255
_CANCELABLE = frozenset({"pending", "requires_action", "authorized", "failed"})
_REFUNDABLE = frozenset({"succeeded", "partially_refunded"})
#: ``json.dumps(event, separators=(",", ":"), sort_keys=True)`` without building a new
#: encoder per event (json.dumps does unless all its options are the defaults)
_encode_json = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
_DISPUTABLE = frozenset({"succeeded", "partially_refunded", "refunded"})

JSON = dict[str, Any]
P = ParamSpec("P")
R = TypeVar("R")


# -- settings ----------------------------------------------------------------------------------


class FakeSettings(BaseModel):
    """The fake provider's settings; env strings are coerced (``PAYGATE_FAKE_SEED=0``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    webhook_secret: SecretStr = SecretStr(DEFAULT_WEBHOOK_SECRET)
    seed: int | None = None
    clock: Callable[[], float] = time.time
    base_url: str = "https://fake.paygate.local"
    webhook_tolerance: int = Field(default=_signing.DEFAULT_TOLERANCE, ge=0)
    max_retries: int | None = Field(default=None, ge=0)

    @field_validator("webhook_secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


def _settings_error(exc: PydanticValidationError) -> ConfigurationError:
    # loc and msg only: pydantic's input_value could be the secret itself
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
        for error in exc.errors()
    )
    return ConfigurationError(f"invalid fake provider settings: {problems}")


# -- helpers -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Failure:
    error: BaseException
    after_commit: bool


@dataclass(frozen=True, slots=True)
class _IdempotencyRecord:
    fingerprint: tuple[Any, ...]
    result: Any
    error: ProviderError | None


def _operation(
    capability: Capability,
) -> Callable[
    [Callable[Concatenate[FakeProvider, P], R]], Callable[Concatenate[FakeProvider, P], R]
]:
    """Wrap a protocol operation: lock, count the call, check the capability, inject failures."""

    def decorate(
        func: Callable[Concatenate[FakeProvider, P], R],
    ) -> Callable[Concatenate[FakeProvider, P], R]:
        name = func.__name__

        @functools.wraps(func)
        def wrapper(self: FakeProvider, /, *args: P.args, **kwargs: P.kwargs) -> R:
            with self._lock:
                self.calls[name] += 1
                self.require(capability, name)
                failure = self._next_failure(name)
                if failure is not None and not failure.after_commit:
                    raise failure.error
                result = func(self, *args, **kwargs)
                if failure is not None:  # the work is done, but the caller never hears
                    raise failure.error
                return result

        return wrapper

    return decorate


def _error(kind: type[ProviderError], message: str, code: str, status: int) -> ProviderError:
    return kind(message, provider="fake", code=code, http_status=status)


def _declined(payment_method: str, payment_id: str | None = None) -> CardDeclined:
    """The decline a token scripts (``tok_declined``'s for tokens that do not decline)."""
    decline_code, message = DECLINES.get(payment_method, DECLINES["tok_declined"])
    return CardDeclined(
        message,
        decline_code=decline_code,
        payment_id=payment_id,
        provider="fake",
        code="card_declined",
        http_status=402,
    )


def _invalid(message: str, code: str = "parameter_invalid") -> ProviderError:
    return _error(InvalidRequest, message, code, 400)


def _fingerprint_metadata(metadata: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((metadata or {}).items()))


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise _invalid(f"metadata must be a mapping of str to str, got {type(metadata).__name__}")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise _invalid(f"metadata {key!r}: keys and values must be str")
    return dict(metadata)


def _check_money(amount: Any, what: str) -> Money:
    if not isinstance(amount, Money):
        raise _invalid(f"{what} must be paygate.Money, got {type(amount).__name__}")
    if amount.amount <= 0:
        raise _invalid(f"{what} must be positive, got {amount}", "amount_too_small")
    if amount.amount > _MAX_AMOUNT:
        raise _invalid(f"{what} {amount} is above the fake's limit", "amount_too_large")
    return amount


def _line_items_total(line_items: Sequence[LineItem], what: str) -> Money:
    if isinstance(line_items, (str, bytes)) or not line_items:
        raise _invalid(f"{what} needs at least one LineItem")
    if not all(isinstance(item, LineItem) for item in line_items):
        raise _invalid(f"{what}: every line item must be a paygate.LineItem")
    currencies = {item.unit_amount.currency for item in line_items}
    if len(currencies) != 1:
        raise _invalid(f"{what}: line items mix currencies {sorted(currencies)}")
    total = Money.zero(currencies.pop())
    for item in line_items:
        total += item.total
    return _check_money(total, f"{what} total")


def _line_json(item: LineItem) -> JSON:
    return {
        "name": item.name,
        "unit_amount": item.unit_amount.amount,
        "currency": item.unit_amount.currency,
        "quantity": item.quantity,
        "description": item.description,
    }


def _line_fingerprint(line_items: Sequence[LineItem]) -> tuple[Any, ...]:
    return tuple(
        (i.name, i.unit_amount.amount, i.unit_amount.currency, i.quantity, i.description)
        for i in line_items
    )


# -- the provider --------------------------------------------------------------------------------


class FakeProvider(BaseProvider):
    """An in-memory provider with scripted outcomes, signed webhooks and test helpers.

    Thread-safe: every operation and helper runs under one re-entrant lock.
    """

    name: ClassVar[str] = "fake"
    capabilities: frozenset[Capability] = frozenset(Capability)

    def __init__(self, **settings: Any) -> None:
        try:
            self.settings = FakeSettings(**settings)
        except PydanticValidationError as exc:
            raise _settings_error(exc) from None
        self.max_retries: int | None = self.settings.max_retries
        #: how often each protocol operation was called (failed calls included)
        self.calls: Counter[str] = Counter()
        self._lock = threading.RLock()
        # a seeded Random gives the same ids for the same calls; None seeds from the OS
        self._rng = random.Random(self.settings.seed)  # ids, not secrets
        self._objects: dict[str, JSON] = {}
        self._idempotency: dict[str, _IdempotencyRecord] = {}
        # (body, timestamp) of each emitted event: serialized at once (a snapshot), signed
        # only when taken, since most callers of a fake never read most of its webhooks
        self._pending: list[tuple[bytes, int]] = []
        self._failures: dict[str, deque[_Failure]] = {}
        self._prices: dict[str, Money] = {}
        self._invoice_numbers = 0

    def __repr__(self) -> str:
        return f"FakeProvider(seed={self.settings.seed!r}, base_url={self.settings.base_url!r})"

    # -- plumbing ----------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self.settings.clock())

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{self._rng.getrandbits(96):024x}"

    def _get(self, kind: str, object_id: Any) -> JSON:
        record = self._objects.get(object_id) if isinstance(object_id, str) else None
        if record is None or record["object"] != kind:
            raise _error(NotFound, f"no such {kind}: {object_id!r:.80}", "resource_missing", 404)
        return record

    def _next_failure(self, operation: str) -> _Failure | None:
        queue = self._failures.get(operation)
        return queue.popleft() if queue else None

    def _idempotent(
        self,
        key: str,
        operation: str,
        fingerprint: tuple[Any, ...],
        action: Callable[[], R],
    ) -> R:
        """Run ``action`` once per key; replay its answer (or its decline) for the same key.

        Like Stripe, only answers the provider committed to are replayed: a success or a
        decline. A request refused as invalid stored nothing, so it may be retried.
        """
        if not isinstance(key, str) or not key.strip():
            raise _invalid("idempotency_key must be a non-empty str", "idempotency_key_invalid")
        if len(key) > _MAX_KEY_LENGTH:
            raise _invalid(
                f"idempotency_key is {len(key)} characters, over {_MAX_KEY_LENGTH}",
                "idempotency_key_invalid",
            )
        full_fingerprint = (operation, *fingerprint)
        record = self._idempotency.get(key)
        if record is not None:
            if record.fingerprint != full_fingerprint:
                raise _error(
                    IdempotencyConflict,
                    f"idempotency key already used for a different {record.fingerprint[0]} request",
                    "idempotency_key_in_use",
                    409,
                )
            if record.error is not None:
                raise copy.copy(record.error)
            result: R = record.result
            return result
        try:
            result = action()
        except CardDeclined as exc:
            self._idempotency[key] = _IdempotencyRecord(full_fingerprint, None, exc)
            raise
        self._idempotency[key] = _IdempotencyRecord(full_fingerprint, result, None)
        return result

    def _event_body(self, event_type: EventType, obj: JSON) -> bytes:
        # serialized at once, so no copy is needed: later changes cannot reach the body
        snapshot = {k: v for k, v in obj.items() if k != "client_secret"}
        event = {
            "id": self._new_id("evt"),
            "object": "event",
            "type": event_type.value,
            "created": self._now(),
            "livemode": False,
            "data": {"object": snapshot},
        }
        return _encode_json(event).encode("utf-8")

    def _emit(self, event_type: EventType, obj: JSON) -> None:
        if obj.get("object") == "subscription":  # ordered like Square's: a version per change
            obj["version"] = int(obj.get("version") or 0) + 1
        self._pending.append((self._event_body(event_type, obj), self._now()))

    def _signed(self, body: bytes, timestamp: int) -> WebhookDelivery:
        secret = self.settings.webhook_secret.get_secret_value()
        return WebhookDelivery(
            body=body,
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: _signing.sign(secret, body, timestamp),
            },
        )

    @staticmethod
    def _check_token(payment_method: Any) -> Outcome:
        if not isinstance(payment_method, str) or payment_method not in TOKEN_OUTCOMES:
            # the value is not echoed: a careless caller might pass a card number here
            raise _invalid(
                "unknown fake payment method; use one of: " + ", ".join(sorted(TOKEN_OUTCOMES)),
                "payment_method_invalid",
            )
        return TOKEN_OUTCOMES[payment_method]

    # -- payments ------------------------------------------------------------------------------

    def _payment_model(self, record: JSON) -> Payment:
        """The API's answer about a payment: with its refunds listed, as Stripe lists a
        charge's (webhooks carry the payment record alone)."""
        data = codec.snapshot(record)
        data["refunds"] = [codec.snapshot(refund) for refund in self._refunds_of(record)]
        return codec.payment(data)

    def _new_payment(
        self,
        *,
        order_id: str | None,
        amount: Money,
        customer_id: str | None,
        description: str | None,
        metadata: dict[str, str],
        capture: str,
        return_url: str | None,
        emit: bool = True,
    ) -> JSON:
        payment_id = self._new_id("pay")
        record: JSON = {
            "object": "payment",
            "id": payment_id,
            "order_id": order_id,
            "amount": amount.amount,
            "currency": amount.currency,
            "amount_captured": 0,
            "amount_refunded": 0,
            "status": "pending",
            "capture_method": capture,
            "payment_method": None,
            "customer_id": customer_id,
            "description": description,
            "return_url": return_url,
            "redirect_url": None,
            "client_secret": f"{payment_id}_secret_{self._rng.getrandbits(64):016x}",
            "charge_id": None,
            "failure": None,
            "created": self._now(),
            "metadata": metadata,
            "checkout_session_id": None,
            "invoice_id": None,
            "status_before_dispute": None,
            "refund_ids": [],
        }
        self._objects[payment_id] = record
        if emit:
            self._emit(EventType.PAYMENT_CREATED, record)
        return record

    def _attempt(
        self, record: JSON, payment_method: str, *, emit: bool = True, off_session: bool = False
    ) -> None:
        """Use ``payment_method`` on a payment; a decline is recorded, emitted, then raised.

        Off session, a method that needs 3-D Secure cannot ask the absent customer: the
        payment fails with ``authentication_required`` (as Stripe's does).
        """
        outcome = self._check_token(payment_method)
        record.update(payment_method=payment_method, failure=None, redirect_url=None)
        if outcome == "decline":
            decline_code, message = DECLINES[payment_method]
            self._fail(record, "card_declined", message, decline_code, emit=emit)
            raise _declined(payment_method, record["id"])
        if outcome == "require_action" and off_session:
            message = "The card's bank requires the customer to authenticate this payment."
            self._fail(
                record, "authentication_required", message, "authentication_required", emit=emit
            )
            raise AuthenticationRequired(
                message,
                payment_id=record["id"],
                provider="fake",
                code="authentication_required",
                http_status=402,
            )
        if outcome == "require_action":
            record.update(
                status="requires_action",
                redirect_url=f"{self.settings.base_url}/authenticate/{record['id']}",
            )
            if emit:
                self._emit(EventType.PAYMENT_ACTION_REQUIRED, record)
        elif outcome == "processing":
            record["status"] = "processing"
            if emit:
                self._emit(EventType.PAYMENT_PROCESSING, record)
        else:
            self._authorize_or_capture(record, emit=emit)

    def _fail(
        self, record: JSON, code: str, message: str, decline_code: str | None, *, emit: bool
    ) -> None:
        record.update(
            status="failed",
            redirect_url=None,
            failure={"code": code, "message": message, "decline_code": decline_code},
        )
        if emit:
            self._emit(EventType.PAYMENT_FAILED, record)

    def _authorize_or_capture(self, record: JSON, *, emit: bool = True) -> None:
        if record["capture_method"] == "manual":
            record["status"] = "authorized"
            if emit:
                self._emit(EventType.PAYMENT_AUTHORIZED, record)
            return
        self._capture(record, record["amount"], emit=emit)

    def _capture(self, record: JSON, amount: int, *, emit: bool = True) -> None:
        record.update(
            status="succeeded",
            amount_captured=amount,
            charge_id=record["charge_id"] or self._new_id("ch"),
            redirect_url=None,
        )
        if emit:
            self._emit(EventType.PAYMENT_SUCCEEDED, record)
        if record["payment_method"] == "tok_dispute":
            self._open_dispute(record, reason="fraudulent")
        self._after_payment_settled(record)

    def _after_payment_settled(self, record: JSON) -> None:
        """A checkout waiting on this payment (3-D Secure) completes now."""
        session_id = record.get("checkout_session_id")
        if session_id is not None:
            session = self._objects[session_id]
            if session["status"] == "open":
                self._complete_session(session)

    @_operation(Capability.PAYMENTS)
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
        fingerprint = (
            order_id,
            getattr(amount, "amount", amount),
            getattr(amount, "currency", None),
            payment_method,
            customer_id,
            description,
            _fingerprint_metadata(metadata),
            capture,
            return_url,
            off_session,
        )

        def create() -> Payment:
            if not isinstance(order_id, str) or not order_id:
                raise _invalid("order_id must be a non-empty str")
            _check_money(amount, "amount")
            if capture not in ("automatic", "manual"):
                raise _invalid(f"capture must be 'automatic' or 'manual', got {capture!r}")
            if capture == "manual":
                self.require(Capability.MANUAL_CAPTURE, "create_payment(capture='manual')")
            charge_token = None
            if payment_method is not None or off_session:
                charge_token = self._charge_token(payment_method, customer_id, off_session)
            if customer_id is not None:
                self._get("customer", customer_id)
            record = self._new_payment(
                order_id=order_id,
                amount=amount,
                customer_id=customer_id,
                description=description,
                metadata=_check_metadata(metadata),
                capture=capture,
                return_url=return_url,
            )
            if charge_token is not None:
                self._attempt(record, charge_token, off_session=off_session)
            return self._payment_model(record)

        return self._idempotent(idempotency_key, "create_payment", fingerprint, create)

    @_operation(Capability.PAYMENTS)
    def get_payment(self, payment_id: str) -> Payment:
        return self._payment_model(self._get("payment", payment_id))

    @_operation(Capability.MANUAL_CAPTURE)
    def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment:
        fingerprint = (payment_id, getattr(amount, "amount", amount))

        def capture() -> Payment:
            record = self._get("payment", payment_id)
            if record["status"] != "authorized":
                raise _invalid(
                    f"payment {payment_id} is {record['status']}, only an authorized payment "
                    "can be captured",
                    "payment_unexpected_state",
                )
            to_capture = record["amount"]
            if amount is not None:
                _check_money(amount, "capture amount")
                if amount.currency != record["currency"]:
                    raise _invalid(
                        f"capture amount {amount} is not in the payment's {record['currency']}"
                    )
                if amount.amount > record["amount"]:
                    raise _invalid(
                        f"capture amount {amount} exceeds the authorized "
                        f"{Money(record['amount'], record['currency'])}",
                        "amount_too_large",
                    )
                if amount.amount < record["amount"]:
                    self.require(Capability.PARTIAL_CAPTURE, "capture_payment")
                to_capture = amount.amount
            self._capture(record, to_capture)
            return self._payment_model(record)

        return self._idempotent(idempotency_key, "capture_payment", fingerprint, capture)

    @_operation(Capability.PAYMENTS)
    def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment:
        def cancel() -> Payment:
            record = self._get("payment", payment_id)
            if record["status"] not in _CANCELABLE:
                raise _invalid(
                    f"payment {payment_id} is {record['status']} and can no longer be canceled",
                    "payment_unexpected_state",
                )
            record.update(status="canceled", redirect_url=None)
            self._emit(EventType.PAYMENT_CANCELED, record)
            return self._payment_model(record)

        return self._idempotent(idempotency_key, "cancel_payment", (payment_id,), cancel)

    @_operation(Capability.REFUNDS)
    def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund:
        fingerprint = (
            payment_id,
            getattr(amount, "amount", amount),
            getattr(amount, "currency", None),
            reason,
        )

        def refund() -> Refund:
            record = self._get("payment", payment_id)
            if record["status"] == "disputed":
                raise _invalid(f"payment {payment_id} is disputed", "charge_disputed")
            if record["status"] not in _REFUNDABLE:
                raise _invalid(
                    f"payment {payment_id} is {record['status']}: only a captured payment "
                    "can be refunded",
                    "payment_unexpected_state",
                )
            # a pending refund holds its amount: it may still succeed
            held_back = self._pending_refunds(record)
            remaining = record["amount_captured"] - record["amount_refunded"] - held_back
            to_refund = remaining
            if amount is not None:
                _check_money(amount, "refund amount")
                if amount.currency != record["currency"]:
                    raise _invalid(
                        f"refund amount {amount} is not in the payment's {record['currency']}"
                    )
                if amount.amount > remaining:
                    raise _invalid(
                        f"refund of {amount} exceeds the {Money(remaining, amount.currency)} "
                        f"left to refund on payment {payment_id}",
                        "amount_too_large",
                    )
                if amount.amount < remaining:
                    self.require(Capability.PARTIAL_REFUNDS, "refund_payment")
                to_refund = amount.amount
            if reason is not None and not isinstance(reason, str):
                raise _invalid("reason must be a str")
            if to_refund <= 0:
                raise _invalid(
                    f"payment {payment_id} has nothing left to refund", "amount_too_large"
                )
            held = record["payment_method"] == "tok_refund_pending"
            refund_record: JSON = {
                "object": "refund",
                "id": self._new_id("re"),
                "payment_id": payment_id,
                "order_id": record["order_id"],
                "amount": to_refund,
                "currency": record["currency"],
                "status": "pending" if held else "succeeded",
                "reason": reason,
                "failure_reason": None,
                "created": self._now(),
            }
            self._objects[refund_record["id"]] = refund_record
            record["refund_ids"].append(refund_record["id"])
            if held:
                self._emit(EventType.REFUND_CREATED, refund_record)
            else:
                self._count_refund(record, refund_record)
            return codec.refund(codec.snapshot(refund_record))

        return self._idempotent(idempotency_key, "refund_payment", fingerprint, refund)

    def _pending_refunds(self, record: JSON) -> int:
        return sum(
            refund["amount"] for refund in self._refunds_of(record) if refund["status"] == "pending"
        )

    def _refunds_of(self, record: JSON) -> list[JSON]:
        return [self._objects[refund_id] for refund_id in record["refund_ids"]]

    def _count_refund(self, record: JSON, refund: JSON) -> None:
        """A refund succeeded: the payment counts it, ``refund.succeeded`` is emitted."""
        refund["status"] = "succeeded"
        record["amount_refunded"] += refund["amount"]
        self._settle_status(record)
        self._emit(EventType.REFUND_SUCCEEDED, refund)

    @staticmethod
    def _settle_status(record: JSON) -> None:
        """A captured payment's status from its amounts; a disputed or charged-back payment
        keeps its status (a disputed one returns to this status if the dispute is won)."""
        refunded, captured = record["amount_refunded"], record["amount_captured"]
        settled = (
            "succeeded"
            if refunded <= 0
            else "refunded"
            if refunded >= captured
            else "partially_refunded"
        )
        if record["status"] == "disputed":
            record["status_before_dispute"] = settled
        elif record["status"] in ("succeeded", "partially_refunded", "refunded"):
            record["status"] = settled

    @_operation(Capability.REFUNDS)
    def get_refund(self, refund_id: str) -> Refund:
        return codec.refund(codec.snapshot(self._get("refund", refund_id)))

    def settle_refund(self, refund_id: str) -> Refund:
        """A ``pending`` refund succeeds (``refund.succeeded``): the payment counts it."""
        with self._lock:
            refund = self._get("refund", refund_id)
            if refund["status"] != "pending":
                raise _invalid(
                    f"refund {refund_id} is {refund['status']}, not pending",
                    "refund_unexpected_state",
                )
            self._count_refund(self._objects[refund["payment_id"]], refund)
            return codec.refund(codec.snapshot(refund))

    def fail_refund(
        self, refund_id: str, *, reason: str = "declined", canceled: bool = False
    ) -> Refund:
        """A refund fails (``refund.failed``): a pending one, or one that had succeeded,
        whose amount then comes back to the payment (as Stripe and PayPal report a refund
        the card network returned). ``canceled=True``: a pending refund is canceled instead
        (status ``canceled``, the same event type). ``reason`` is its ``failure_reason``.
        """
        with self._lock:
            refund = self._get("refund", refund_id)
            allowed = ("pending",) if canceled else ("pending", "succeeded")
            if refund["status"] not in allowed:
                raise _invalid(
                    f"refund {refund_id} is {refund['status']} and cannot be "
                    f"{'canceled' if canceled else 'failed'}",
                    "refund_unexpected_state",
                )
            record = self._objects[refund["payment_id"]]
            if refund["status"] == "succeeded":
                record["amount_refunded"] -= refund["amount"]
                self._settle_status(record)
            refund.update(
                status="canceled" if canceled else "failed",
                failure_reason=None if canceled else reason,
            )
            self._emit(EventType.REFUND_FAILED, refund)
            return codec.refund(codec.snapshot(refund))

    @_operation(Capability.PAYMENTS)
    def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        """The payment behind a redirect back, from the fake's own records.

        ``params`` must name a ``session_id`` (from a checkout) or a ``payment_id`` (from a
        3-D Secure return); any status words in it are ignored. The fake needs no call to
        finish a payment, so ``idempotency_key`` is only checked for shape.
        """
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise _invalid("idempotency_key must be a non-empty str", "idempotency_key_invalid")
        if params.get("session_id"):
            session = self._session(params["session_id"])
            if session["payment_id"] is None:
                raise _invalid(
                    f"checkout session {session['id']} has no payment yet "
                    f"(status {session['status']})",
                    "checkout_unpaid",
                )
            return self._payment_model(self._objects[session["payment_id"]])
        if params.get("payment_id"):
            return self._payment_model(self._get("payment", params["payment_id"]))
        raise _invalid("return parameters name neither a session_id nor a payment_id")

    # -- test helpers: drive payments -----------------------------------------------------------

    def confirm_payment(self, payment_id: str, payment_method: str = "tok_visa") -> Payment:
        """Attach a method to a ``pending`` or ``failed`` payment and run its outcome.

        Raises [`CardDeclined`][paygate.errors.CardDeclined] for a declining token (after recording
        the failure).
        """
        with self._lock:
            record = self._get("payment", payment_id)
            if record["status"] not in ("pending", "failed", "requires_action"):
                raise _invalid(
                    f"payment {payment_id} is {record['status']} and cannot be confirmed",
                    "payment_unexpected_state",
                )
            self._attempt(record, payment_method)
            return self._payment_model(record)

    def authenticate(self, payment_id: str, *, success: bool = True) -> Payment:
        """The customer finishes (or fails) 3-D Secure for a ``requires_action`` payment."""
        with self._lock:
            record = self._get("payment", payment_id)
            if record["status"] != "requires_action":
                raise _invalid(
                    f"payment {payment_id} is {record['status']}, not requires_action",
                    "payment_unexpected_state",
                )
            if success:
                self._authorize_or_capture(record)
            else:
                self._fail(
                    record,
                    "authentication_failed",
                    "The customer failed 3-D Secure authentication.",
                    "authentication_required",
                    emit=True,
                )
            return self._payment_model(record)

    def settle(self, payment_id: str, *, success: bool = True) -> Payment:
        """A ``processing`` payment settles (succeeds) or fails."""
        with self._lock:
            record = self._get("payment", payment_id)
            if record["status"] != "processing":
                raise _invalid(
                    f"payment {payment_id} is {record['status']}, not processing",
                    "payment_unexpected_state",
                )
            if success:
                self._authorize_or_capture(record)
            else:
                self._fail(
                    record,
                    "payment_failed",
                    "The payment failed to settle.",
                    "processing_error",
                    emit=True,
                )
            return self._payment_model(record)

    def payments(self) -> list[Payment]:
        """Every payment the fake holds, oldest first (for counting charges in tests)."""
        with self._lock:
            return [
                self._payment_model(obj)
                for obj in self._objects.values()
                if obj["object"] == "payment"
            ]

    # -- disputes ------------------------------------------------------------------------------

    def _open_dispute(self, record: JSON, *, reason: str, amount: int | None = None) -> JSON:
        dispute: JSON = {
            "object": "dispute",
            "id": self._new_id("dp"),
            "payment_id": record["id"],
            "order_id": record["order_id"],
            "amount": amount if amount is not None else record["amount_captured"],
            "currency": record["currency"],
            "status": "open",
            "reason": reason,
            "evidence_due_by": self._now() + 7 * _DAY,
            "created": self._now(),
        }
        self._objects[dispute["id"]] = dispute
        record.update(status_before_dispute=record["status"], status="disputed")
        self._emit(EventType.DISPUTE_OPENED, dispute)
        return dispute

    def open_dispute(
        self, payment_id: str, *, reason: str = "fraudulent", amount: Money | None = None
    ) -> Dispute:
        """The cardholder disputes a captured payment (``dispute.opened``)."""
        with self._lock:
            record = self._get("payment", payment_id)
            if record["status"] not in _DISPUTABLE:
                raise _invalid(
                    f"payment {payment_id} is {record['status']} and cannot be disputed",
                    "payment_unexpected_state",
                )
            minor = None
            if amount is not None:
                _check_money(amount, "dispute amount")
                if amount.currency != record["currency"] or (
                    amount.amount > record["amount_captured"]
                ):
                    raise _invalid(f"dispute amount {amount} does not fit payment {payment_id}")
                minor = amount.amount
            return codec.dispute(
                codec.snapshot(self._open_dispute(record, reason=reason, amount=minor))
            )

    def resolve_dispute(self, dispute_id: str, *, won: bool = True) -> Dispute:
        """Close an open dispute: won (the payment returns to its prior status) or lost."""
        with self._lock:
            dispute = self._get("dispute", dispute_id)
            if dispute["status"] not in ("open", "under_review"):
                raise _invalid(
                    f"dispute {dispute_id} is already {dispute['status']}",
                    "dispute_unexpected_state",
                )
            payment = self._objects[dispute["payment_id"]]
            if won:
                dispute["status"] = "won"
                payment["status"] = payment["status_before_dispute"] or "succeeded"
            else:
                dispute["status"] = "lost"
                payment["status"] = "charged_back"
            payment["status_before_dispute"] = None
            self._emit(EventType.DISPUTE_WON if won else EventType.DISPUTE_LOST, dispute)
            return codec.dispute(codec.snapshot(dispute))

    @_operation(Capability.DISPUTES)
    def get_dispute(self, dispute_id: str) -> Dispute:
        return codec.dispute(codec.snapshot(self._get("dispute", dispute_id)))

    # -- checkout ------------------------------------------------------------------------------

    @_operation(Capability.CHECKOUT)
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
        fingerprint = (
            order_id,
            _line_fingerprint(line_items) if isinstance(line_items, Sequence) else line_items,
            success_url,
            cancel_url,
            mode,
            customer_id,
            price_id,
            _fingerprint_metadata(metadata),
        )

        def create() -> CheckoutSession:
            if not isinstance(order_id, str) or not order_id:
                raise _invalid("order_id must be a non-empty str")
            for label, url in (("success_url", success_url), ("cancel_url", cancel_url)):
                if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                    raise _invalid(f"{label} must be an http(s) URL")
            if customer_id is not None:
                self._get("customer", customer_id)
            if mode == "payment":
                total = _line_items_total(line_items, "checkout session")
            elif mode == "subscription":
                if not price_id:
                    raise _invalid("a subscription checkout needs a price_id")
                total = self._price(price_id)
            else:
                raise _invalid(f"mode must be 'payment' or 'subscription', got {mode!r}")
            session_id = self._new_id("cs")
            now = self._now()
            session: JSON = {
                "object": "checkout_session",
                "id": session_id,
                "url": f"{self.settings.base_url}/checkout/{session_id}",
                "status": "open",
                "mode": mode,
                "order_id": order_id,
                "payment_id": None,
                "subscription_id": None,
                "customer_id": customer_id,
                "price_id": price_id,
                "amount_total": total.amount,
                "currency": total.currency,
                "line_items": [_line_json(item) for item in line_items or ()],
                "success_url": success_url,
                "cancel_url": cancel_url,
                "metadata": _check_metadata(metadata),
                "expires_at": now + _DAY,
                "created": now,
            }
            self._objects[session_id] = session
            return codec.checkout_session(codec.snapshot(session))

        return self._idempotent(idempotency_key, "create_checkout_session", fingerprint, create)

    @_operation(Capability.CHECKOUT)
    def get_checkout_session(self, session_id: str) -> CheckoutSession:
        return codec.checkout_session(codec.snapshot(self._session(session_id)))

    def _session(self, session_id: Any) -> JSON:
        """A checkout session; an open one past its ``expires_at`` expires now (lazily)."""
        session = self._get("checkout_session", session_id)
        if session["status"] == "open" and self._now() >= session["expires_at"]:
            self._expire(session)
        return session

    def _expire(self, session: JSON) -> None:
        session.update(status="expired", url=None)
        self._emit(EventType.CHECKOUT_EXPIRED, session)

    def _complete_session(self, session: JSON) -> None:
        session["status"] = "complete"
        self._emit(EventType.CHECKOUT_COMPLETED, session)

    def complete_checkout(
        self, session_id: str, *, payment_method: str = "tok_visa"
    ) -> CheckoutSession:
        """The customer pays on the hosted page.

        Payment mode: the session's payment is created (or, after a decline, retried on the
        same payment, as Stripe retries one PaymentIntent) and the session completes with
        ``checkout.completed`` once the payment succeeded, was authorized or is processing.
        A declining token raises [`CardDeclined`][paygate.errors.CardDeclined] and leaves the
        session open; with ``tok_3ds`` the session completes when
        [`authenticate`][paygate.providers.fake.FakeProvider.authenticate] succeeds.

        Subscription mode: a declining token raises [`CardDeclined`][paygate.errors.CardDeclined]
        before anything is created; any other token starts the subscription (creating a customer if
        the session has none) with its first invoice paid.
        """
        with self._lock:
            session = self._session(session_id)
            if session["status"] != "open":
                raise _invalid(
                    f"checkout session {session_id} is {session['status']}, not open",
                    "checkout_unexpected_state",
                )
            outcome = self._check_token(payment_method)
            if session["mode"] == "subscription":
                self._complete_subscription_checkout(session, payment_method, outcome)
                return codec.checkout_session(codec.snapshot(session))
            if session["payment_id"] is None:
                record = self._new_payment(
                    order_id=session["order_id"],
                    amount=Money(session["amount_total"], session["currency"]),
                    customer_id=session["customer_id"],
                    description=None,
                    metadata=dict(session["metadata"]),
                    capture="automatic",
                    return_url=session["success_url"],
                )
                record["checkout_session_id"] = session_id
                session["payment_id"] = record["id"]
            else:
                record = self._objects[session["payment_id"]]
            self._attempt(record, payment_method)  # a decline raises here, session stays open
            if record["status"] in ("processing", "authorized") and session["status"] == "open":
                self._complete_session(session)
            # succeeded: _capture already completed it; requires_action: authenticate() will
            return codec.checkout_session(codec.snapshot(session))

    def _complete_subscription_checkout(
        self, session: JSON, payment_method: str, outcome: Outcome
    ) -> None:
        if outcome == "decline":
            raise _declined(payment_method)
        customer_id = session["customer_id"]
        if customer_id is None:
            customer_id = self._new_customer(None, None, {})["id"]
            session["customer_id"] = customer_id
        subscription = self._start_subscription(
            customer_id, session["price_id"], dict(session["metadata"]), "tok_visa"
        )
        invoice = self._objects[subscription["latest_invoice"]]
        session.update(subscription_id=subscription["id"], payment_id=invoice["payment_id"])
        self._complete_session(session)

    def expire_checkout(self, session_id: str) -> CheckoutSession:
        """The hosted page times out unpaid (``checkout.expired``)."""
        with self._lock:
            session = self._session(session_id)
            if session["status"] != "open":
                raise _invalid(
                    f"checkout session {session_id} is {session['status']}, not open",
                    "checkout_unexpected_state",
                )
            self._expire(session)
            return codec.checkout_session(codec.snapshot(session))

    # -- customers -----------------------------------------------------------------------------

    def _new_customer(self, email: str | None, name: str | None, metadata: dict[str, str]) -> JSON:
        customer: JSON = {
            "object": "customer",
            "id": self._new_id("cus"),
            "email": email,
            "name": name,
            "metadata": metadata,
            "created": self._now(),
            "default_payment_method": None,
        }
        self._objects[customer["id"]] = customer
        return customer

    @_operation(Capability.CUSTOMERS)
    def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        """A customer record (``customer.created``)."""

        def create() -> Customer:
            if email is not None and (not isinstance(email, str) or "@" not in email):
                raise _invalid("email is not a valid address", "email_invalid")
            if name is not None and not isinstance(name, str):
                raise _invalid("name must be a str")
            customer = self._new_customer(email, name, _check_metadata(metadata))
            self._emit(EventType.CUSTOMER_CREATED, customer)
            return codec.customer(codec.snapshot(customer))

        fingerprint = (email, name, _fingerprint_metadata(metadata))
        return self._idempotent(idempotency_key, "create_customer", fingerprint, create)

    # -- subscriptions and invoices --------------------------------------------------------------

    def define_price(self, price_id: str, amount: Money) -> None:
        """Set what ``price_id`` costs per period (other ``price_*`` ids cost 10.00 USD)."""
        if not isinstance(price_id, str) or not price_id.startswith("price_"):
            raise ValidationError(f"fake price ids start with 'price_', got {price_id!r}")
        if not isinstance(amount, Money) or amount.amount <= 0:
            raise ValidationError(f"a price must be positive Money, got {amount!r}")
        with self._lock:
            self._prices[price_id] = amount

    def _price(self, price_id: Any) -> Money:
        if not isinstance(price_id, str) or not price_id.startswith("price_"):
            raise _error(
                NotFound, f"no such price: {price_id!r:.80} (use a price_* id)",
                "resource_missing", 404,
            )  # fmt: skip
        return self._prices.get(price_id, DEFAULT_PRICE)

    def _new_invoice(
        self,
        *,
        customer_id: str,
        lines: list[JSON],
        total: Money,
        order_id: str | None,
        description: str | None,
        subscription_id: str | None,
        finalize: bool,
    ) -> JSON:
        invoice_id = self._new_id("in")
        invoice: JSON = {
            "object": "invoice",
            "id": invoice_id,
            "customer_id": customer_id,
            "subscription_id": subscription_id,
            "status": "draft",
            "amount_due": total.amount,
            "amount_paid": 0,
            "currency": total.currency,
            "order_id": order_id,
            "description": description,
            "number": None,
            "hosted_url": None,
            "payment_id": None,
            "lines": lines,
            "due_at": None,
            "created": self._now(),
        }
        if finalize:
            self._finalize(invoice)
        self._objects[invoice_id] = invoice
        self._emit(EventType.INVOICE_CREATED, invoice)
        return invoice

    def _finalize(self, invoice: JSON) -> None:
        self._invoice_numbers += 1
        invoice.update(
            status="open",
            number=f"FAKE-{self._invoice_numbers:06d}",
            hosted_url=f"{self.settings.base_url}/invoices/{invoice['id']}",
            due_at=self._now() + 30 * _DAY,
        )

    def _pay_invoice(self, invoice: JSON, payment_method: str) -> bool:
        """Charge an invoice; invoice payments are reported by invoice events only."""
        if invoice["status"] == "draft":
            self._finalize(invoice)
        record = self._new_payment(
            order_id=invoice["order_id"],
            amount=Money(invoice["amount_due"], invoice["currency"]),
            customer_id=invoice["customer_id"],
            description=invoice["description"],
            metadata={},
            capture="automatic",
            return_url=None,
            emit=False,
        )
        record["invoice_id"] = invoice["id"]
        invoice["payment_id"] = record["id"]
        declines = self._check_token(payment_method) == "decline" or (
            invoice.get("price_id") == DECLINED_PRICE
        )
        if declines:
            decline_code, message = DECLINES.get(payment_method, DECLINES["tok_declined"])
            self._fail(record, "card_declined", message, decline_code, emit=False)
            self._emit(EventType.INVOICE_PAYMENT_FAILED, invoice)
            return False
        # 3-D Secure and delayed methods are treated as paying at once for invoices
        record["payment_method"] = payment_method
        self._capture(record, record["amount"], emit=False)
        invoice.update(status="paid", amount_paid=invoice["amount_due"])
        self._emit(EventType.INVOICE_PAID, invoice)
        return True

    def _start_subscription(
        self, customer_id: str, price_id: str, metadata: dict[str, str], payment_method: str
    ) -> JSON:
        price = self._price(price_id)
        now = self._now()
        subscription: JSON = {
            "object": "subscription",
            "id": self._new_id("sub"),
            "customer_id": customer_id,
            "price_id": price_id,
            "status": "incomplete",
            "current_period_start": now,
            "current_period_end": now + 30 * _DAY,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "latest_invoice": None,
            "metadata": metadata,
            "created": now,
        }
        self._objects[subscription["id"]] = subscription
        self._emit(EventType.SUBSCRIPTION_CREATED, subscription)
        if self._bill_period(subscription, price, payment_method):
            subscription["status"] = "active"
            self._emit(EventType.SUBSCRIPTION_UPDATED, subscription)
        return subscription

    def _bill_period(self, subscription: JSON, price: Money, payment_method: str) -> bool:
        invoice = self._new_invoice(
            customer_id=subscription["customer_id"],
            lines=[
                {
                    "name": subscription["price_id"],
                    "unit_amount": price.amount,
                    "currency": price.currency,
                    "quantity": 1,
                    "description": None,
                }
            ],
            total=price,
            order_id=None,
            description=f"subscription {subscription['id']}",
            subscription_id=subscription["id"],
            finalize=True,
        )
        invoice["price_id"] = subscription["price_id"]
        subscription["latest_invoice"] = invoice["id"]
        return self._pay_invoice(invoice, payment_method)

    @_operation(Capability.SUBSCRIPTIONS)
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
        """Start a subscription; the first invoice is charged at once.

        With ``price_declined`` the charge fails and the subscription is returned
        ``incomplete`` (Stripe's default ``allow_incomplete`` behaviour), not raised.
        With ``trial_days`` or ``trial_end`` it starts ``trialing`` and bills nothing
        until [`end_trial`][paygate.providers.fake.FakeProvider.end_trial].
        """
        trial_until = _trial_until(self._now(), trial_days, trial_end)
        _check_quantity(quantity)

        def create() -> Subscription:
            self._get("customer", customer_id)
            self._price(price_id)
            if trial_until is not None or quantity != 1:
                subscription = self._start_trial_or_quantity(
                    customer_id, price_id, _check_metadata(metadata), trial_until, quantity
                )
                return codec.subscription(codec.snapshot(subscription))
            subscription = self._start_subscription(
                customer_id, price_id, _check_metadata(metadata), "tok_visa"
            )
            return codec.subscription(codec.snapshot(subscription))

        fingerprint = (
            customer_id, price_id, _fingerprint_metadata(metadata), trial_days,
            trial_end.timestamp() if isinstance(trial_end, datetime) else trial_end, quantity,
        )  # fmt: skip
        return self._idempotent(idempotency_key, "create_subscription", fingerprint, create)

    @_operation(Capability.SUBSCRIPTIONS)
    def get_subscription(self, subscription_id: str) -> Subscription:
        return codec.subscription(codec.snapshot(self._get("subscription", subscription_id)))

    @_operation(Capability.SUBSCRIPTIONS)
    def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        subscription = self._get("subscription", subscription_id)
        if subscription["status"] in ("canceled", "incomplete_expired"):
            raise _invalid(
                f"subscription {subscription_id} is already {subscription['status']}",
                "subscription_unexpected_state",
            )
        if at_period_end:
            if not subscription["cancel_at_period_end"]:
                subscription["cancel_at_period_end"] = True
                self._emit(EventType.SUBSCRIPTION_UPDATED, subscription)
        else:
            subscription.update(status="canceled", canceled_at=self._now())
            self._emit(EventType.SUBSCRIPTION_CANCELED, subscription)
        return codec.subscription(codec.snapshot(subscription))

    def renew_subscription(self, subscription_id: str, *, success: bool = True) -> Subscription:
        """The billing period ends: bill the next one (or end a cancel-at-period-end one).

        A failed renewal makes the subscription ``past_due`` and emits
        ``invoice.payment_failed`` and ``subscription.payment_failed``.
        """
        with self._lock:
            subscription = self._get("subscription", subscription_id)
            if subscription["status"] not in ("active", "past_due", "trialing"):
                raise _invalid(
                    f"subscription {subscription_id} is {subscription['status']}, not renewable",
                    "subscription_unexpected_state",
                )
            if subscription["cancel_at_period_end"]:
                subscription.update(status="canceled", canceled_at=self._now())
                self._emit(EventType.SUBSCRIPTION_CANCELED, subscription)
                return codec.subscription(codec.snapshot(subscription))
            price = self._price(subscription["price_id"])
            method = "tok_visa" if success else "tok_declined"
            if self._bill_period(subscription, price, method):
                start = subscription["current_period_end"]
                subscription.update(
                    status="active",
                    current_period_start=start,
                    current_period_end=start + 30 * _DAY,
                )
                self._emit(EventType.SUBSCRIPTION_UPDATED, subscription)
            else:
                subscription["status"] = "past_due"
                self._emit(EventType.SUBSCRIPTION_PAYMENT_FAILED, subscription)
            return codec.subscription(codec.snapshot(subscription))

    @_operation(Capability.INVOICES)
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
        """A ``draft`` invoice, or with ``send=True`` an ``open`` one with a hosted page."""
        fingerprint = (
            customer_id,
            _line_fingerprint(line_items) if isinstance(line_items, Sequence) else line_items,
            order_id,
            description,
            send,
        )

        def create() -> Invoice:
            self._get("customer", customer_id)
            total = _line_items_total(line_items, "invoice")
            invoice = self._new_invoice(
                customer_id=customer_id,
                lines=[_line_json(item) for item in line_items],
                total=total,
                order_id=order_id,
                description=description,
                subscription_id=None,
                finalize=bool(send),
            )
            return codec.invoice(codec.snapshot(invoice))

        return self._idempotent(idempotency_key, "create_invoice", fingerprint, create)

    def pay_invoice(self, invoice_id: str, *, payment_method: str = "tok_visa") -> Invoice:
        """The customer pays an open (or draft) invoice: ``invoice.paid``.

        A declining token records the failed attempt, emits ``invoice.payment_failed`` and
        raises [`CardDeclined`][paygate.errors.CardDeclined]; the invoice stays open.
        """
        with self._lock:
            invoice = self._get("invoice", invoice_id)
            if invoice["status"] not in ("draft", "open"):
                raise _invalid(
                    f"invoice {invoice_id} is {invoice['status']} and cannot be paid",
                    "invoice_unexpected_state",
                )
            if not self._pay_invoice(invoice, payment_method):
                raise _declined(payment_method, invoice["payment_id"])
            return codec.invoice(codec.snapshot(invoice))

    def get_invoice(self, invoice_id: str) -> Invoice:
        """Look an invoice up (a helper: not part of the provider protocol)."""
        with self._lock:
            return codec.invoice(codec.snapshot(self._get("invoice", invoice_id)))

    # -- webhooks ------------------------------------------------------------------------------

    def take_webhooks(self) -> list[WebhookDelivery]:
        """Return the deliveries emitted since the last call, oldest first, and forget them."""
        with self._lock:
            pending, self._pending = self._pending, []
        return [self._signed(body, timestamp) for body, timestamp in pending]

    def sign_webhook(
        self, payload: bytes | Mapping[str, Any], *, timestamp: int | None = None
    ) -> WebhookDelivery:
        """A delivery of ``payload`` (an event dict or raw bytes) signed with the fake's secret.

        For tests of hand-made events: unknown types, old timestamps, malformed bodies.
        """
        body = (
            payload
            if isinstance(payload, bytes)
            else json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
        )
        with self._lock:
            return self._signed(body, self._now() if timestamp is None else timestamp)

    def redeliver(
        self, delivery: WebhookDelivery, *, timestamp: int | None = None
    ) -> WebhookDelivery:
        """The same event sent again, freshly signed (as a provider's retry is)."""
        return self.sign_webhook(delivery.body, timestamp=timestamp)

    @_operation(Capability.WEBHOOKS)
    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify the ``Paygate-Signature`` header, then normalize the event."""
        if isinstance(body, str):  # some frameworks hand over text; the signature is on bytes
            body = body.encode("utf-8")
        _signing.verify(
            _signing.find_header(headers, SIGNATURE_HEADER),
            body,
            [self.settings.webhook_secret.get_secret_value()],
            tolerance=self.settings.webhook_tolerance,
            now=self.settings.clock(),
        )
        return _parse_event(load_object(body, MalformedPayload, "webhook body"))

    # -- failure injection -----------------------------------------------------------------------

    def fail_next(
        self,
        operation: str,
        error: BaseException,
        *,
        after_commit: bool = False,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``operation`` raise ``error``.

        With ``after_commit=True`` the operation does its work first (records, webhooks,
        the idempotency answer) and *then* raises, as when a response is lost on the way
        back: a retry with the same idempotency key must then get the original answer.
        """
        if operation not in OPERATIONS:
            raise ValidationError(
                f"unknown operation {operation!r}; expected one of {sorted(OPERATIONS)}"
            )
        if not isinstance(error, BaseException):
            raise ValidationError(f"error must be an exception instance, got {error!r}")
        with self._lock:
            queue = self._failures.setdefault(operation, deque())
            queue.extend(_Failure(error, after_commit) for _ in range(times))

    # -- customers and saved payment methods ------------------------------------------------------

    def _charge_token(self, payment_method: Any, customer_id: Any, off_session: bool) -> str:
        """The token a charge runs as: a saved ``pm_`` id's own (it must belong to
        ``customer_id``), or a one-off token; off session needs a saved method."""
        if isinstance(payment_method, str) and payment_method.startswith("pm_"):
            self.require(Capability.PAYMENT_METHODS, "create_payment(saved payment method)")
            method = self._get("payment_method", payment_method)
            if not isinstance(customer_id, str) or not customer_id:
                raise _invalid(
                    f"payment method {payment_method} is saved for a customer: pass its "
                    "customer_id",
                    "customer_required",
                )
            if method["customer_id"] != customer_id:
                raise _invalid(
                    f"payment method {payment_method} is not attached to customer "
                    f"{customer_id!r:.60} (detached, or another customer's)",
                    "payment_method_unavailable",
                )
            charges_as: str = method["charges_as"]
            return charges_as
        if off_session:
            self.require(Capability.PAYMENT_METHODS, "create_payment(off_session=True)")
            raise _invalid(
                "an off-session charge needs a saved payment method (pm_...) and its customer_id",
                "payment_method_required",
            )
        self._check_token(payment_method)
        token: str = payment_method
        return token

    def _customer_record(self, customer_id: Any) -> JSON:
        return self._get("customer", customer_id)

    @_operation(Capability.CUSTOMERS)
    def get_customer(self, customer_id: str) -> Customer:
        return codec.customer(codec.snapshot(self._customer_record(customer_id)))

    @_operation(Capability.CUSTOMERS)
    def update_customer(
        self,
        customer_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        """Change what is given (``customer.updated``); metadata keys are merged."""
        customer = self._customer_record(customer_id)
        if email is not None and (not isinstance(email, str) or "@" not in email):
            raise _invalid("email is not a valid address", "email_invalid")
        if name is not None and not isinstance(name, str):
            raise _invalid("name must be a str")
        changes = _check_metadata(metadata)
        if email is not None:
            customer["email"] = email
        if name is not None:
            customer["name"] = name
        customer["metadata"] = {**customer["metadata"], **changes}
        self._emit(EventType.CUSTOMER_UPDATED, customer)
        return codec.customer(codec.snapshot(customer))

    @_operation(Capability.CUSTOMERS)
    def list_customers(
        self, *, email: str | None = None, page_size: int = 100
    ) -> Iterator[Customer]:
        """The customers, oldest first (those with ``email`` only, when given)."""
        if (
            isinstance(page_size, bool)
            or not isinstance(page_size, int)
            or not (1 <= page_size <= 100)
        ):
            raise _invalid(f"page_size must be an int from 1 to 100, got {page_size!r}")
        found = [
            codec.customer(codec.snapshot(obj))
            for obj in self._objects.values()
            if obj["object"] == "customer" and (email is None or obj["email"] == email)
        ]
        return iter(found)

    @_operation(Capability.CUSTOMERS)
    def delete_customer(self, customer_id: str) -> None:
        """Delete a customer and detach its saved methods (``customer.deleted``)."""
        customer = self._customer_record(customer_id)
        for method in self._methods_of(customer_id):
            self._detach(method)
        del self._objects[customer_id]
        self._emit(EventType.CUSTOMER_DELETED, customer)

    def _methods_of(self, customer_id: str) -> list[JSON]:
        return [
            obj
            for obj in self._objects.values()
            if obj["object"] == "payment_method" and obj["customer_id"] == customer_id
        ]

    def _setup_record(self, setup_id: Any) -> JSON:
        return self._get("setup_session", setup_id)

    @_operation(Capability.PAYMENT_METHODS)
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
        """Save a method for ``customer_id``: at once from a token, or after the
        customer's step at ``url`` (``approve_setup`` plays the customer)."""
        fingerprint = (customer_id, return_url, cancel_url, usage, payment_method)

        def create() -> SetupSession:
            self._customer_record(customer_id)
            if usage not in ("off_session", "on_session"):
                raise _invalid(f"usage must be 'off_session' or 'on_session', got {usage!r}")
            if payment_method is not None:
                self._check_token(payment_method)
            setup_id = self._new_id("seti")
            setup: JSON = {
                "object": "setup_session",
                "id": setup_id,
                "customer_id": customer_id,
                "status": "requires_action",
                "client_secret": f"{setup_id}_secret_{self._rng.getrandbits(64):016x}",
                "url": f"{self.settings.base_url}/setup/{setup_id}",
                "return_url": return_url,
                "payment_method_id": None,
                "usage": usage,
                "failure": None,
                "token": None,
                "created": self._now(),
            }
            self._objects[setup_id] = setup
            if payment_method is not None:
                self._enter_method(setup, payment_method)
            return codec.setup_session(codec.snapshot(setup))

        return self._idempotent(idempotency_key, "create_setup", fingerprint, create)

    def _enter_method(self, setup: JSON, token: str) -> None:
        """The customer's card reaches the setup: saved, declined, or 3-D Secure first."""
        outcome = SETUP_OUTCOMES.get(token) or (
            "decline" if self._check_token(token) == "decline" else "succeed"
        )
        setup["token"] = token
        if outcome == "decline":
            decline_code, message = DECLINES[token]
            setup.update(
                status="failed",
                url=None,
                failure={"code": "card_declined", "message": message, "decline_code": decline_code},
            )
            self._emit(EventType.SETUP_FAILED, setup)
            raise _declined(token)
        if outcome == "require_action":
            return  # stays requires_action until authenticate_setup
        self._save(setup)

    def _save(self, setup: JSON) -> None:
        token: str = setup["token"]
        brand, last4 = CARDS.get(token, ("visa", "4242"))
        year, month = time.gmtime(self._now())[:2]
        if token not in EXPIRES_THIS_MONTH:
            year += 3
        method: JSON = {
            "object": "payment_method",
            "id": self._new_id("pm"),
            "customer_id": setup["customer_id"],
            "kind": "card",
            "card": {
                "brand": brand,
                "last4": last4,
                "exp_month": month,
                "exp_year": year,
                "fingerprint": "fp_" + hashlib.sha256(token.encode()).hexdigest()[:16],
            },
            "charges_as": SAVED_CHARGES_AS.get(token, token),
            "created": self._now(),
        }
        self._objects[method["id"]] = method
        setup.update(status="succeeded", url=None, payment_method_id=method["id"])
        self._emit(EventType.PAYMENT_METHOD_ATTACHED, method)
        self._emit(EventType.SETUP_SUCCEEDED, setup)

    @_operation(Capability.PAYMENT_METHODS)
    def complete_setup(self, params: Mapping[str, str], *, idempotency_key: str) -> SetupSession:
        """The setup named by ``params["setup_id"]``, from the fake's own records."""
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise _invalid("idempotency_key must be a non-empty str", "idempotency_key_invalid")
        setup_id = params.get("setup_id")
        if not setup_id:
            raise _invalid("return parameters name no setup_id")
        return codec.setup_session(codec.snapshot(self._setup_record(setup_id)))

    @_operation(Capability.PAYMENT_METHODS)
    def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        self._customer_record(customer_id)
        return [codec.payment_method(codec.snapshot(m)) for m in self._methods_of(customer_id)]

    @_operation(Capability.PAYMENT_METHODS)
    def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        return codec.payment_method(codec.snapshot(self._get("payment_method", payment_method_id)))

    @_operation(Capability.DEFAULT_PAYMENT_METHOD)
    def set_default_payment_method(self, customer_id: str, payment_method_id: str) -> Customer:
        customer = self._customer_record(customer_id)
        method = self._get("payment_method", payment_method_id)
        if method["customer_id"] != customer_id:
            raise _invalid(
                f"payment method {payment_method_id} is not attached to customer {customer_id}",
                "payment_method_unavailable",
            )
        customer["default_payment_method"] = payment_method_id
        self._emit(EventType.CUSTOMER_UPDATED, customer)
        return codec.customer(codec.snapshot(customer))

    @_operation(Capability.PAYMENT_METHODS)
    def detach_payment_method(self, payment_method_id: str) -> None:
        method = self._get("payment_method", payment_method_id)
        if method["customer_id"] is None:
            raise _invalid(
                f"payment method {payment_method_id} is not attached to a customer",
                "payment_method_unavailable",
            )
        self._detach(method)

    def _detach(self, method: JSON) -> None:
        customer = self._objects.get(method["customer_id"])
        if customer is not None and customer.get("default_payment_method") == method["id"]:
            customer["default_payment_method"] = None
        method["customer_id"] = None
        self._emit(EventType.PAYMENT_METHOD_DETACHED, method)

    # -- test helpers: drive setups and saved methods ----------------------------------------------

    def approve_setup(self, setup_id: str, *, payment_method: str = "tok_visa") -> SetupSession:
        """The customer enters ``payment_method`` on the setup page: saved, declined
        (raises [`CardDeclined`][paygate.errors.CardDeclined]), or waiting for
        ``authenticate_setup``."""
        with self._lock:
            setup = self._setup_record(setup_id)
            if setup["status"] != "requires_action" or setup["token"] is not None:
                raise _invalid(
                    f"setup {setup_id} is {setup['status']} and takes no payment method now",
                    "setup_unexpected_state",
                )
            self._enter_method(setup, payment_method)
            return codec.setup_session(codec.snapshot(setup))

    def authenticate_setup(self, setup_id: str, *, success: bool = True) -> SetupSession:
        """The customer finishes (or fails) 3-D Secure for a setup waiting on it."""
        with self._lock:
            setup = self._setup_record(setup_id)
            if setup["status"] != "requires_action" or setup["token"] is None:
                raise _invalid(
                    f"setup {setup_id} is not waiting for authentication",
                    "setup_unexpected_state",
                )
            if success:
                self._save(setup)
            else:
                setup.update(
                    status="failed",
                    url=None,
                    failure={
                        "code": "authentication_failed",
                        "message": "The customer failed 3-D Secure authentication.",
                        "decline_code": "authentication_required",
                    },
                )
                self._emit(EventType.SETUP_FAILED, setup)
            return codec.setup_session(codec.snapshot(setup))

    def network_update_card(
        self, payment_method_id: str, *, exp_month: int | None = None, exp_year: int | None = None
    ) -> PaymentMethod:
        """The card network's account updater renews a saved card (by default: the same
        month, two years on), emitting ``payment_method.updated`` as Stripe's
        ``payment_method.automatically_updated``."""
        with self._lock:
            method = self._get("payment_method", payment_method_id)
            card = method["card"]
            card["exp_month"] = exp_month if exp_month is not None else card["exp_month"]
            card["exp_year"] = exp_year if exp_year is not None else card["exp_year"] + 2
            if not 1 <= card["exp_month"] <= 12:
                raise _invalid(f"exp_month must be 1..12, got {card['exp_month']}")
            self._emit(EventType.PAYMENT_METHOD_UPDATED, method)
            return codec.payment_method(codec.snapshot(method))

    # -- persistence (used by ``paygate sandbox --store sqlite:///...``) -------------------------

    def export_state(self) -> JSON:
        """The engine's records as JSON-ready data, for `restore_state` in a new process.

        Idempotency answers, scripted failures and call counts are not included: a restored
        engine starts with none (the sandbox keeps its own wire-level idempotency records).
        """
        with self._lock:
            version, internal, gauss = self._rng.getstate()
            return {
                "objects": codec.snapshot(self._objects),
                "prices": {k: [v.amount, v.currency] for k, v in self._prices.items()},
                "invoice_numbers": self._invoice_numbers,
                "rng": [version, list(internal), gauss],
            }

    def restore_state(self, state: Mapping[str, Any]) -> None:
        """Replace the engine's records with ones from `export_state`."""
        with self._lock:
            self._objects = codec.snapshot(dict(state["objects"]))
            self._prices = {k: Money(v[0], v[1]) for k, v in state["prices"].items()}
            self._invoice_numbers = int(state["invoice_numbers"])
            version, internal, gauss = state["rng"]
            self._rng.setstate((version, tuple(internal), gauss))
            self._pending = []

    # -- after the first charge: trials, plan changes, pauses, dunning, disputes ----------------

    def _start_trial_or_quantity(
        self,
        customer_id: str,
        price_id: str,
        metadata: dict[str, str],
        trial_until: int | None,
        quantity: int,
    ) -> JSON:
        """A subscription in a free trial (nothing billed until it ends), or one of
        several seats billed at once."""
        now = self._now()
        subscription: JSON = {
            "object": "subscription",
            "id": self._new_id("sub"),
            "customer_id": customer_id,
            "price_id": price_id,
            "quantity": quantity,
            "status": "trialing" if trial_until is not None else "incomplete",
            "current_period_start": now,
            "current_period_end": trial_until if trial_until is not None else now + 30 * _DAY,
            "trial_end": trial_until,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "latest_invoice": None,
            "pending_proration": 0,
            "metadata": metadata,
            "created": now,
        }
        self._objects[subscription["id"]] = subscription
        self._emit(EventType.SUBSCRIPTION_CREATED, subscription)
        if trial_until is None and self._bill(subscription, self._period_charge(subscription)):
            subscription["status"] = "active"
            self._emit(EventType.SUBSCRIPTION_UPDATED, subscription)
        return subscription

    def _period_charge(self, subscription: JSON) -> Money:
        """A period of the price times the quantity, with the pending proration."""
        price = self._price(subscription["price_id"])
        total = price.amount * int(subscription.get("quantity") or 1)
        total += int(subscription.get("pending_proration") or 0)
        return Money(max(total, 0), price.currency)

    def _bill(self, subscription: JSON, amount: Money, method: str | None = None) -> bool:
        """Invoice ``amount`` for the subscription and charge the customer's card."""
        customer = self._get("customer", subscription["customer_id"])
        invoice = self._new_invoice(
            customer_id=subscription["customer_id"],
            lines=[{"name": subscription["price_id"], "unit_amount": amount.amount,
                    "currency": amount.currency, "quantity": 1, "description": None}],
            total=amount,
            order_id=None,
            description=f"subscription {subscription['id']}",
            subscription_id=subscription["id"],
            finalize=True,
        )  # fmt: skip
        invoice["price_id"] = subscription["price_id"]
        invoice["attempt_count"] = 1
        subscription["latest_invoice"] = invoice["id"]
        subscription["pending_proration"] = 0
        default = method or customer.get("default_payment_method") or "tok_visa"
        # a saved method (set_default_payment_method) is charged as its own token
        token = self._charge_token(default, subscription["customer_id"], False)
        return self._pay_invoice(invoice, token)

    def set_billing_token(self, customer_id: str, payment_method: str) -> None:
        """The card the customer's subscriptions are billed with from now on (a test
        helper: ``tok_declined`` makes renewals fail, ``tok_visa`` lets a retry succeed)."""
        with self._lock:
            self._check_token(payment_method)
            self._get("customer", customer_id)["default_payment_method"] = payment_method

    def notify_trial_will_end(self, subscription_id: str) -> Subscription:
        """The trial ends soon: ``subscription.trial_will_end`` (Stripe sends it 3 days
        before)."""
        with self._lock:
            subscription = self._get("subscription", subscription_id)
            if subscription["status"] != "trialing":
                raise _invalid(
                    f"subscription {subscription_id} is {subscription['status']}, not trialing",
                    "subscription_unexpected_state",
                )
            self._pending.append(
                (self._event_body(EventType.SUBSCRIPTION_TRIAL_WILL_END, subscription), self._now())
            )
            return codec.subscription(codec.snapshot(subscription))

    def end_trial(self, subscription_id: str) -> Subscription:
        """The trial is over: bill the first period with the customer's card (``active``,
        or ``past_due`` if the card declines)."""
        with self._lock:
            subscription = self._get("subscription", subscription_id)
            if subscription["status"] != "trialing":
                raise _invalid(
                    f"subscription {subscription_id} is {subscription['status']}, not trialing",
                    "subscription_unexpected_state",
                )
            self._advance_period(subscription)
            return codec.subscription(codec.snapshot(subscription))

    def _advance_period(self, subscription: JSON) -> None:
        """Start the next period: bill it; ``active`` if paid, else ``past_due``."""
        start = subscription["current_period_end"]
        subscription.update(current_period_start=start, current_period_end=start + 30 * _DAY)
        if self._bill(subscription, self._period_charge(subscription)):
            subscription["status"] = "active"
            self._emit(EventType.SUBSCRIPTION_UPDATED, subscription)
        else:
            subscription["status"] = "past_due"
            self._emit(EventType.SUBSCRIPTION_PAYMENT_FAILED, subscription)

    def bill_period(self, subscription_id: str) -> Subscription:
        """The period ends: renew with the customer's default card (see
        ``set_billing_token``); a cancel scheduled for now takes effect."""
        with self._lock:
            subscription = self._get("subscription", subscription_id)
            if subscription["status"] not in ("active", "past_due"):
                raise _invalid(
                    f"subscription {subscription_id} is {subscription['status']}, not renewable",
                    "subscription_unexpected_state",
                )
            if subscription["cancel_at_period_end"]:
                subscription.update(status="canceled", canceled_at=self._now())
                self._emit(EventType.SUBSCRIPTION_CANCELED, subscription)
            else:
                self._advance_period(subscription)
            return codec.subscription(codec.snapshot(subscription))

    @_operation(Capability.SUBSCRIPTIONS)
    def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        return [
            codec.subscription(codec.snapshot(obj))
            for obj in self._objects.values()
            if obj["object"] == "subscription"
            and (customer_id is None or obj["customer_id"] == customer_id)
        ]

    def _live(self, subscription_id: str) -> JSON:
        subscription = self._get("subscription", subscription_id)
        if subscription["status"] in ("canceled", "incomplete_expired"):
            raise _invalid(
                f"subscription {subscription_id} is {subscription['status']}",
                "subscription_unexpected_state",
            )
        return subscription

    @_operation(Capability.SUBSCRIPTION_PRORATION)
    def change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        idempotency_key: str,
    ) -> Subscription:
        """Another price or quantity. The unused part of the period is credited and the
        new price charged for it, by the second: on the next invoice
        (``create_prorations``), on an invoice now (``always_invoice``), or not at all
        (``none``)."""
        if price_id is None and quantity is None:
            raise ValidationError("change_subscription needs price_id or quantity")
        if proration not in ("create_prorations", "none", "always_invoice"):
            raise ValidationError(
                "proration must be 'create_prorations', 'none' or 'always_invoice', "
                f"got {proration!r}"
            )
        if quantity is not None:
            _check_quantity(quantity)

        def change() -> Subscription:
            subscription = self._live(subscription_id)
            new_price = price_id or subscription["price_id"]
            new_quantity = quantity or int(subscription.get("quantity") or 1)
            old_total = self._price(subscription["price_id"]).amount * int(
                subscription.get("quantity") or 1
            )
            new_total = self._price(new_price).amount * new_quantity
            start, end = subscription["current_period_start"], subscription["current_period_end"]
            left = max(end - self._now(), 0) / max(end - start, 1)
            # integer minor units: the unused share of the period, rounded to the unit
            difference = round((new_total - old_total) * left)
            subscription.update(price_id=new_price, quantity=new_quantity)
            if proration == "create_prorations":
                subscription["pending_proration"] = (
                    int(subscription.get("pending_proration") or 0) + difference
                )
            elif proration == "always_invoice" and difference > 0:
                currency = self._price(new_price).currency
                self._bill(subscription, Money(difference, currency))
            self._emit(EventType.SUBSCRIPTION_UPDATED, subscription)
            return codec.subscription(codec.snapshot(subscription))

        fingerprint = (subscription_id, price_id, quantity, proration)
        return self._idempotent(idempotency_key, "change_subscription", fingerprint, change)

    @_operation(Capability.SUBSCRIPTION_PAUSE)
    def pause_subscription(self, subscription_id: str) -> Subscription:
        subscription = self._live(subscription_id)
        if subscription["status"] != "paused":
            subscription["status_before_pause"] = subscription["status"]
            subscription["status"] = "paused"
            self._emit(EventType.SUBSCRIPTION_UPDATED, subscription)
        return codec.subscription(codec.snapshot(subscription))

    @_operation(Capability.SUBSCRIPTION_PAUSE)
    def resume_subscription(self, subscription_id: str) -> Subscription:
        subscription = self._live(subscription_id)
        if subscription["status"] == "paused":
            subscription["status"] = subscription.pop("status_before_pause", None) or "active"
            self._emit(EventType.SUBSCRIPTION_UPDATED, subscription)
        return codec.subscription(codec.snapshot(subscription))

    @_operation(Capability.SUBSCRIPTIONS)
    def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        subscription = self._live(subscription_id)
        if subscription["cancel_at_period_end"]:
            subscription["cancel_at_period_end"] = False
            self._emit(EventType.SUBSCRIPTION_UPDATED, subscription)
        return codec.subscription(codec.snapshot(subscription))

    @_operation(Capability.INVOICES)
    def retry_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        """Charge an open invoice again with the customer's default card; a paid retry
        of a past-due subscription's invoice makes it ``active`` again."""

        def retry() -> Invoice:
            invoice = self._get("invoice", invoice_id)
            if invoice["status"] != "open":
                raise _invalid(
                    f"invoice {invoice_id} is {invoice['status']}, not open",
                    "invoice_unexpected_state",
                )
            customer = self._get("customer", invoice["customer_id"])
            invoice["attempt_count"] = int(invoice.get("attempt_count") or 1) + 1
            default = customer.get("default_payment_method") or "tok_visa"
            token = self._charge_token(default, invoice["customer_id"], False)
            if not self._pay_invoice(invoice, token):
                return codec.invoice(codec.snapshot(invoice))
            sub_id = invoice.get("subscription_id")
            subscription = self._objects.get(sub_id) if sub_id else None
            if subscription is not None and subscription["status"] in ("past_due", "unpaid"):
                subscription["status"] = "active"
                self._emit(EventType.SUBSCRIPTION_UPDATED, subscription)
            return codec.invoice(codec.snapshot(invoice))

        return self._idempotent(idempotency_key, "retry_invoice", (invoice_id,), retry)

    @_operation(Capability.DISPUTES)
    def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        return [
            codec.dispute(codec.snapshot(obj))
            for obj in self._objects.values()
            if obj["object"] == "dispute"
            and (payment_id is None or obj["payment_id"] == payment_id)
        ]

    def _open_for_answer(self, dispute_id: str) -> JSON:
        dispute = self._get("dispute", dispute_id)
        if dispute["status"] != "open":
            raise _invalid(
                f"dispute {dispute_id} is {dispute['status']}: it takes no more answers",
                "dispute_unexpected_state",
            )
        if self._now() > dispute["evidence_due_by"]:
            raise _invalid(f"dispute {dispute_id}: evidence was due before now", "dispute_expired")
        return dispute

    @_operation(Capability.DISPUTE_EVIDENCE)
    def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """Stage the evidence, and with ``submit=True`` send it: the dispute goes
        ``under_review`` until
        [`decide_dispute`][paygate.providers.fake.FakeProvider.decide_dispute]."""
        if not isinstance(evidence, DisputeEvidence):
            raise ValidationError(
                f"evidence must be a DisputeEvidence, got {type(evidence).__name__}"
            )
        dispute = self._open_for_answer(dispute_id)
        dispute["evidence"] = {
            "text": evidence.summary(),
            "files": [f.name for f in evidence.files],
            "tracking_number": evidence.tracking_number,
        }
        if submit:
            dispute.update(status="under_review", evidence_submitted=True)
            self._emit(EventType.DISPUTE_UPDATED, dispute)
        return codec.dispute(codec.snapshot(dispute))

    def decide_dispute(self, dispute_id: str) -> Dispute:
        """The card network rules (a test helper). Scripted: evidence with a document or
        a tracking number wins; evidence without either loses; so does no evidence."""
        with self._lock:
            dispute = self._get("dispute", dispute_id)
            if dispute["status"] not in ("open", "under_review"):
                raise _invalid(
                    f"dispute {dispute_id} is already {dispute['status']}",
                    "dispute_unexpected_state",
                )
            evidence = dispute.get("evidence") or {}
            won = dispute["status"] == "under_review" and bool(
                evidence.get("files") or evidence.get("tracking_number")
            )
            return self.resolve_dispute(dispute_id, won=won)

    @_operation(Capability.DISPUTE_EVIDENCE)
    def accept_dispute(self, dispute_id: str) -> Dispute:
        self._open_for_answer(dispute_id)
        return self.resolve_dispute(dispute_id, won=False)


def _parse_event(event: Any) -> WebhookEvent:
    """A verified event dict → [`WebhookEvent`][paygate.models.WebhookEvent]; wrong shapes are
    ``MalformedPayload``."""
    if not isinstance(event, dict):
        raise MalformedPayload("webhook body is not a JSON object")
    event_id, type_name, created = event.get("id"), event.get("type"), event.get("created")
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(event_id, str) or not event_id:
        raise MalformedPayload("webhook event has no id")
    if not isinstance(type_name, str) or not type_name:
        raise MalformedPayload(f"webhook event {event_id} has no type")
    try:
        occurred_at = codec.timestamp(created)
    except (TypeError, ValueError):
        occurred_at = None
    if occurred_at is None:
        raise MalformedPayload(f"webhook event {event_id} has no integer 'created' in range")
    if not isinstance(obj, dict):
        raise MalformedPayload(f"webhook event {event_id} has no data.object")
    event_type = EVENT_TYPES.get(type_name, EventType.UNKNOWN)
    normalized = None
    if event_type is not EventType.UNKNOWN:
        expected_kind = EVENT_OBJECT_KINDS[type_name.split(".", 1)[0]]
        if obj.get("object") != expected_kind:
            raise MalformedPayload(
                f"webhook event {event_id} ({type_name}) carries a {obj.get('object')!r:.40} "
                f"object, expected {expected_kind!r}"
            )
        try:
            normalized = codec.decode(obj)
        except (KeyError, TypeError, ValueError) as exc:  # paygate.ValidationError is one
            raise MalformedPayload(
                f"webhook event {event_id} has a malformed {expected_kind}: "
                f"{type(exc).__name__} {exc}"
            ) from None
    return WebhookEvent(
        id=event_id,
        provider="fake",
        type=event_type,
        occurred_at=occurred_at,
        object=normalized,
        provider_type=type_name,
        raw=event,
    )


def _trial_until(now: int, trial_days: Any, trial_end: Any) -> int | None:
    """The trial's end (Unix seconds) from ``trial_days`` or ``trial_end``, checked."""
    if trial_days is not None and trial_end is not None:
        raise ValidationError("give trial_days or trial_end, not both")
    if trial_days is not None:
        if isinstance(trial_days, bool) or not isinstance(trial_days, int) or trial_days < 1:
            raise ValidationError(f"trial_days must be an int >= 1, got {trial_days!r}")
        return now + trial_days * _DAY
    if trial_end is not None:
        if not isinstance(trial_end, datetime) or trial_end.tzinfo is None:
            raise ValidationError(f"trial_end must be a timezone-aware datetime, got {trial_end!r}")
        end = int(trial_end.timestamp())
        if end <= now:
            raise ValidationError(f"trial_end {trial_end.isoformat()} is not in the future")
        return end
    return None


def _check_quantity(quantity: Any) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValidationError(f"quantity must be an int >= 1, got {quantity!r}")
