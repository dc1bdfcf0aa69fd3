"""The ``PaymentProvider`` protocol every adapter implements, and the lazy registry.

An adapter translates in both directions and nothing else: paygate's arguments → SDK call
→ provider object → paygate dataclass. Operations it cannot do are left out of
``capabilities`` and raise [`NotSupported`][paygate.errors.NotSupported] (see
[`BaseProvider`][paygate.provider.BaseProvider]).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, NoReturn, Protocol, runtime_checkable

from typing_extensions import Self

from paygate._compat import StrEnum
from paygate.errors import ConfigurationError, NotSupported, ProviderNotInstalled
from paygate.models import (
    CaptureMethod,
    CheckoutMode,
    CheckoutSession,
    Customer,
    Dispute,
    DisputeEvidence,
    Invoice,
    LineItem,
    Payment,
    PaymentMethod,
    Refund,
    SetupSession,
    SetupUsage,
    Subscription,
    WebhookEvent,
)
from paygate.money import Money

__all__ = [
    "AsyncBaseProvider",
    "AsyncPaymentProvider",
    "BaseProvider",
    "Capability",
    "PaymentMethodsProvider",
    "PaymentProvider",
    "Proration",
    "ProviderSpec",
    "SubscriptionProvider",
    "available_providers",
    "async_provider_for",
    "create_async_provider",
    "create_provider",
    "load_provider_class",
    "register_provider",
]


class Capability(StrEnum):
    PAYMENTS = "payments"
    MANUAL_CAPTURE = "manual_capture"
    PARTIAL_CAPTURE = "partial_capture"
    REFUNDS = "refunds"
    PARTIAL_REFUNDS = "partial_refunds"
    CHECKOUT = "checkout"
    CUSTOMERS = "customers"
    SUBSCRIPTIONS = "subscriptions"
    INVOICES = "invoices"
    DISPUTES = "disputes"
    WEBHOOKS = "webhooks"
    #: change a subscription's price or quantity with proration
    SUBSCRIPTION_PRORATION = "subscription_proration"
    #: pause and resume a subscription
    SUBSCRIPTION_PAUSE = "subscription_pause"
    #: start a subscription in a free trial (``trial_days=`` / ``trial_end=``)
    SUBSCRIPTION_TRIALS = "subscription_trials"
    #: answer a dispute with evidence, or accept it
    DISPUTE_EVIDENCE = "dispute_evidence"
    #: save a payment method for a customer (``create_setup``), list, read and remove it,
    #: and charge it without the customer (``create_payment(..., off_session=True)``)
    PAYMENT_METHODS = "payment_methods"
    #: a customer's default payment method (``set_default_payment_method``)
    DEFAULT_PAYMENT_METHOD = "default_payment_method"


@runtime_checkable
class PaymentProvider(Protocol):
    """What the Gateway needs from a provider adapter.

    Every creating call takes ``idempotency_key``: the Gateway derives it from the order id
    and the operation, and sends the same key on every retry.
    """

    @property
    def name(self) -> str:
        """The registry name ("stripe"); adapters usually set it as a class attribute."""
        ...

    @property
    def capabilities(self) -> frozenset[Capability]: ...

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
        """Charge ``payment_method``: a token from the provider's front end, or with
        ``customer_id`` the id of a method saved for that customer.

        ``off_session=True``: the merchant charges a saved method without the customer
        present (a renewal, a reorder); a bank that demands authentication answers with
        [`AuthenticationRequired`][paygate.errors.AuthenticationRequired].
        """
        ...

    def get_payment(self, payment_id: str) -> Payment: ...

    def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment: ...

    def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment: ...

    def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund: ...

    def get_refund(self, refund_id: str) -> Refund:
        """A refund as the provider holds it now: a pending one may have succeeded since,
        a succeeded one may have failed (and its money come back to the merchant)."""
        ...

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
    ) -> CheckoutSession: ...

    def get_checkout_session(self, session_id: str) -> CheckoutSession: ...

    def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        """The customer came back from the provider's page with ``params`` (the query string).

        Look the payment up at the provider (never trust the query string's words), finish
        it where the provider needs a call for that (PayPal captures the approved order),
        and return it.
        """
        ...

    def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer: ...

    def create_subscription(
        self,
        *,
        customer_id: str,
        price_id: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Subscription: ...

    def get_subscription(self, subscription_id: str) -> Subscription: ...

    def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription: ...

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
        """Invoice ``customer_id`` for ``line_items``.

        ``send=True`` delivers the invoice to the customer to pay. ``send=False`` is the
        provider's own default, and they differ: Stripe finalizes the invoice and charges
        the customer's default payment method at once (the "invoice on purchase" flow);
        PayPal, Square and the fake provider leave a draft. Each adapter's docs page says so.
        """
        ...

    def get_dispute(self, dispute_id: str) -> Dispute: ...

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify ``body`` with the provider's scheme, then normalize it. Verify first."""
        ...


Proration = Literal["create_prorations", "none", "always_invoice"]


@runtime_checkable
class SubscriptionProvider(Protocol):
    """What the Gateway needs from an adapter for subscriptions and disputes after the
    first charge. Every built-in adapter implements it; an operation its provider lacks
    raises [NotSupported][paygate.errors.NotSupported] naming the provider."""

    def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        """The customer's subscriptions (every one the account has, without a customer)."""
        ...

    def change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        idempotency_key: str,
    ) -> Subscription:
        """Move to another price and/or quantity.

        ``proration``: ``"create_prorations"`` credits the unused time and charges the
        new price's on the next invoice; ``"always_invoice"`` invoices that difference
        now; ``"none"`` changes the price from the next period on, without credit.
        """
        ...

    def pause_subscription(self, subscription_id: str) -> Subscription:
        """Stop billing until resumed (the subscription reads ``paused``)."""
        ...

    def resume_subscription(self, subscription_id: str) -> Subscription:
        """Bill again after a pause."""
        ...

    def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        """Take back a cancel scheduled for the period's end, before the period ends."""
        ...

    def retry_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        """Try to collect an open invoice again (a past-due subscription's)."""
        ...

    def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        """The account's disputes (of one payment)."""
        ...

    def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """Answer a dispute with ``evidence``; ``submit=False`` stages it where the
        provider allows, for a later call with ``submit=True``."""
        ...

    def accept_dispute(self, dispute_id: str) -> Dispute:
        """Concede the dispute: the money stays with the cardholder."""
        ...


@runtime_checkable
class PaymentMethodsProvider(PaymentProvider, Protocol):
    """A provider that also reads and manages customers and their saved payment methods
    (``Capability.CUSTOMERS``, ``PAYMENT_METHODS``, ``DEFAULT_PAYMENT_METHOD``).

    Its own protocol, so that an adapter written before these operations still satisfies
    [`PaymentProvider`][paygate.provider.PaymentProvider]; every
    [`BaseProvider`][paygate.provider.BaseProvider] satisfies both (what it does not
    declare raises [`NotSupported`][paygate.errors.NotSupported]).
    """

    def get_customer(self, customer_id: str) -> Customer: ...

    def update_customer(
        self,
        customer_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        """Change what is given; ``None`` leaves a field as it is."""
        ...

    def list_customers(
        self, *, email: str | None = None, page_size: int = 100
    ) -> Iterator[Customer]:
        """Every customer (with ``email``, only those), fetched a page at a time as the
        iterator is consumed."""
        ...

    def delete_customer(self, customer_id: str) -> None: ...

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
        """Start saving a payment method for ``customer_id``.

        ``payment_method``: a token from the provider's front end (Square's card nonce,
        a Stripe ``pm_...``) to save at once; ``verification_token``: Square's buyer
        verification (SCA) for that nonce. Otherwise the customer's step is on the
        returned session (``url`` or ``client_secret``), and ``complete_setup`` reads the
        outcome when they come back to ``return_url``.
        """
        ...

    def complete_setup(self, params: Mapping[str, str], *, idempotency_key: str) -> SetupSession:
        """The customer came back from saving a method: look the setup up at the provider
        (never trust the query string's words), finish it where the provider needs a call
        for that (PayPal turns the approved setup token into a payment token)."""
        ...

    def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]: ...

    def get_payment_method(self, payment_method_id: str) -> PaymentMethod: ...

    def set_default_payment_method(self, customer_id: str, payment_method_id: str) -> Customer:
        """Make a saved method the customer's default (Capability.DEFAULT_PAYMENT_METHOD)."""
        ...

    def detach_payment_method(self, payment_method_id: str) -> None:
        """Remove a saved method: it can no longer be charged."""
        ...


class BaseProvider:
    """Optional base class: every operation raises [`NotSupported`][paygate.errors.NotSupported]
    until overridden.

    Subclasses set ``name`` and ``capabilities`` and override what they support; the
    conformance tests check that an undeclared capability raises ``NotSupported``.
    """

    name: ClassVar[str] = "base"
    capabilities: frozenset[Capability] = frozenset()

    # The defaults take ``*args, **kwargs`` so that each adapter can declare the protocol's
    # exact signature without mypy override errors; the protocol is the typed contract.

    def _unsupported(self, operation: str) -> NoReturn:
        raise NotSupported(
            f"{self.name} does not support {operation}", provider=self.name, code="not_supported"
        )

    def require(self, capability: Capability, operation: str) -> None:
        if capability not in self.capabilities:
            self._unsupported(operation)

    def aio(self) -> AsyncPaymentProvider:
        """The async twin of this adapter (same settings, its own async HTTP client; the
        fake shares its state). Built-in adapters have one; others raise
        `NotSupported` unless they override this."""
        spec = _ASYNC_BUILTIN.get(self.name)
        if spec is None:
            self._unsupported("aio")
        twin_class: Any = _load_spec(self.name, spec)  # each twin has from_sync(provider)
        twin: AsyncPaymentProvider = twin_class.from_sync(self)
        return twin

    def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        self._unsupported("create_payment")

    def get_payment(self, *args: Any, **kwargs: Any) -> Payment:
        self._unsupported("get_payment")

    def capture_payment(self, *args: Any, **kwargs: Any) -> Payment:
        self._unsupported("capture_payment")

    def cancel_payment(self, *args: Any, **kwargs: Any) -> Payment:
        self._unsupported("cancel_payment")

    def refund_payment(self, *args: Any, **kwargs: Any) -> Refund:
        self._unsupported("refund_payment")

    def get_refund(self, *args: Any, **kwargs: Any) -> Refund:
        self._unsupported("get_refund")

    def create_checkout_session(self, *args: Any, **kwargs: Any) -> CheckoutSession:
        self._unsupported("create_checkout_session")

    def get_checkout_session(self, *args: Any, **kwargs: Any) -> CheckoutSession:
        self._unsupported("get_checkout_session")

    def complete_return(self, *args: Any, **kwargs: Any) -> Payment:
        self._unsupported("complete_return")

    def create_customer(self, *args: Any, **kwargs: Any) -> Customer:
        self._unsupported("create_customer")

    def create_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("create_subscription")

    def get_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("get_subscription")

    def cancel_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("cancel_subscription")

    def create_invoice(self, *args: Any, **kwargs: Any) -> Invoice:
        self._unsupported("create_invoice")

    def get_dispute(self, *args: Any, **kwargs: Any) -> Dispute:
        self._unsupported("get_dispute")

    def parse_webhook(self, *args: Any, **kwargs: Any) -> WebhookEvent:
        self._unsupported("parse_webhook")

    def get_customer(self, *args: Any, **kwargs: Any) -> Customer:
        self._unsupported("get_customer")

    def update_customer(self, *args: Any, **kwargs: Any) -> Customer:
        self._unsupported("update_customer")

    def list_customers(self, *args: Any, **kwargs: Any) -> Iterator[Customer]:
        self._unsupported("list_customers")

    def delete_customer(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("delete_customer")

    def create_setup(self, *args: Any, **kwargs: Any) -> SetupSession:
        self._unsupported("create_setup")

    def complete_setup(self, *args: Any, **kwargs: Any) -> SetupSession:
        self._unsupported("complete_setup")

    def list_payment_methods(self, *args: Any, **kwargs: Any) -> list[PaymentMethod]:
        self._unsupported("list_payment_methods")

    def get_payment_method(self, *args: Any, **kwargs: Any) -> PaymentMethod:
        self._unsupported("get_payment_method")

    def set_default_payment_method(self, *args: Any, **kwargs: Any) -> Customer:
        self._unsupported("set_default_payment_method")

    def detach_payment_method(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("detach_payment_method")

    def close(self) -> None:
        """Release connections; the default has none."""

    # -- after the first charge (issue 20): subscriptions, invoices, disputes ----------------

    def list_subscriptions(self, *args: Any, **kwargs: Any) -> list[Subscription]:
        self._unsupported("list_subscriptions")

    def change_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("change_subscription")

    def pause_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("pause_subscription")

    def resume_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("resume_subscription")

    def undo_cancel_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("undo_cancel_subscription")

    def retry_invoice(self, *args: Any, **kwargs: Any) -> Invoice:
        self._unsupported("retry_invoice")

    def list_disputes(self, *args: Any, **kwargs: Any) -> list[Dispute]:
        self._unsupported("list_disputes")

    def submit_dispute_evidence(self, *args: Any, **kwargs: Any) -> Dispute:
        self._unsupported("submit_dispute_evidence")

    def accept_dispute(self, *args: Any, **kwargs: Any) -> Dispute:
        self._unsupported("accept_dispute")


# -- registry ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Where an adapter lives and what to install for it (fsspec-style lazy registry)."""

    target: str  # "module:Class"
    extra: str | None = None  # pip extra: paygate-payments[extra]
    requires: tuple[str, ...] = ()  # top-level modules the adapter imports


_BUILTIN: dict[str, ProviderSpec] = {
    "fake": ProviderSpec("paygate.providers.fake:FakeProvider"),
    "stripe": ProviderSpec("paygate.providers.stripe:StripeProvider", "stripe", ("stripe",)),
    "paypal": ProviderSpec(
        "paygate.providers.paypal:PayPalProvider", "paypal", ("paypalrestsdk", "cryptography")
    ),
    # the Square adapter imports httpx (squareup's own HTTP client) before square itself
    "square": ProviderSpec(
        "paygate.providers.square:SquareProvider", "square", ("httpx", "square")
    ),
}
_registry: dict[str, ProviderSpec | Callable[..., Any]] = dict(_BUILTIN)
_ENTRY_POINT_GROUP = "paygate.providers"
_entry_points_loaded = False


def register_provider(
    name: str, target: str | Callable[..., Any], *, extra: str | None = None
) -> None:
    """Register an adapter: ``"module:Class"`` (imported lazily) or a class/factory."""
    _registry[name] = ProviderSpec(target, extra) if isinstance(target, str) else target


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    # Imported on first use, not at the top: importlib.metadata (email, zipfile, csv, ...)
    # would otherwise cost more than the rest of ``import paygate`` together.
    from importlib import metadata as importlib_metadata

    for ep in importlib_metadata.entry_points(group=_ENTRY_POINT_GROUP):
        _registry.setdefault(ep.name, ProviderSpec(ep.value))


def available_providers() -> list[str]:
    _load_entry_points()
    return sorted(_registry)


def load_provider_class(name: str) -> Callable[..., Any]:
    """The adapter class for ``name``, importing it (and its SDK) only now."""
    if name not in _registry:
        _load_entry_points()
    try:
        entry = _registry[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown provider {name!r}; available: {', '.join(available_providers())}"
        ) from None
    if not isinstance(entry, ProviderSpec):
        return entry
    return _load_spec(name, entry)


def _load_spec(name: str, entry: ProviderSpec) -> Callable[..., Any]:
    """Import ``entry.target``; a missing SDK becomes `ProviderNotInstalled`."""
    module_name, _, attr = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if entry.extra and (missing.split(".")[0] in entry.requires or not entry.requires):
            raise ProviderNotInstalled(
                f"provider {name!r} needs the {missing!r} package: "
                f"pip install 'paygate-payments[{entry.extra}]'"
            ) from None
        raise
    cls: Callable[..., Any] = getattr(module, attr)
    return cls


def create_provider(name: str, **settings: Any) -> PaymentProvider:
    """An adapter instance from its name and settings (``api_key=...`` etc.)."""
    cls = load_provider_class(name)
    provider: PaymentProvider = cls(**settings)
    return provider


# -- the async face ------------------------------------------------------------------------


@runtime_checkable
class AsyncPaymentProvider(Protocol):
    """`PaymentProvider` as coroutines, for `paygate.AsyncGateway`.

    The same operations, names, arguments, results and errors, each an ``async def`` that
    never blocks the event loop (the adapters use their SDK's async client, or
    ``httpx.AsyncClient``); ``parse_webhook`` too, running the sync adapter's verification
    and parsing (PayPal's may need the network). `aclose` releases the HTTP
    connections.
    """

    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    async def create_payment(
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
    ) -> Payment: ...

    async def get_payment(self, payment_id: str) -> Payment: ...

    async def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment: ...

    async def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment: ...

    async def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund: ...

    async def get_refund(self, refund_id: str) -> Refund: ...

    async def create_checkout_session(
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
    ) -> CheckoutSession: ...

    async def get_checkout_session(self, session_id: str) -> CheckoutSession: ...

    async def complete_return(
        self, params: Mapping[str, str], *, idempotency_key: str
    ) -> Payment: ...

    async def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer: ...

    async def create_subscription(
        self,
        *,
        customer_id: str,
        price_id: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Subscription: ...

    async def get_subscription(self, subscription_id: str) -> Subscription: ...

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription: ...

    async def create_invoice(
        self,
        *,
        customer_id: str,
        line_items: Sequence[LineItem],
        idempotency_key: str,
        order_id: str | None = None,
        description: str | None = None,
        send: bool = False,
    ) -> Invoice: ...

    async def get_dispute(self, dispute_id: str) -> Dispute: ...

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """The sync adapter's verification and parsing (the same shared functions). A
        coroutine because it may need the network: PayPal's asks PayPal to verify
        (``verification="api"``), fetches its signing certificate once, and looks up the
        order of a capture it has not seen; Stripe's, Square's and the fake's do no I/O."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP client; the adapter is unusable afterwards."""
        ...


class AsyncBaseProvider:
    """`BaseProvider` for the async face: every operation raises
    `NotSupported` until overridden; `aclose` releases nothing."""

    name: ClassVar[str] = "base"
    capabilities: frozenset[Capability] = frozenset()

    def _unsupported(self, operation: str) -> NoReturn:
        raise NotSupported(
            f"{self.name} does not support {operation}", provider=self.name, code="not_supported"
        )

    def require(self, capability: Capability, operation: str) -> None:
        if capability not in self.capabilities:
            self._unsupported(operation)

    async def create_payment(self, *args: Any, **kwargs: Any) -> Payment:
        self._unsupported("create_payment")

    async def get_payment(self, *args: Any, **kwargs: Any) -> Payment:
        self._unsupported("get_payment")

    async def capture_payment(self, *args: Any, **kwargs: Any) -> Payment:
        self._unsupported("capture_payment")

    async def cancel_payment(self, *args: Any, **kwargs: Any) -> Payment:
        self._unsupported("cancel_payment")

    async def refund_payment(self, *args: Any, **kwargs: Any) -> Refund:
        self._unsupported("refund_payment")

    async def get_refund(self, *args: Any, **kwargs: Any) -> Refund:
        self._unsupported("get_refund")

    async def create_checkout_session(self, *args: Any, **kwargs: Any) -> CheckoutSession:
        self._unsupported("create_checkout_session")

    async def get_checkout_session(self, *args: Any, **kwargs: Any) -> CheckoutSession:
        self._unsupported("get_checkout_session")

    async def complete_return(self, *args: Any, **kwargs: Any) -> Payment:
        self._unsupported("complete_return")

    async def create_customer(self, *args: Any, **kwargs: Any) -> Customer:
        self._unsupported("create_customer")

    async def create_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("create_subscription")

    async def get_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("get_subscription")

    async def cancel_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("cancel_subscription")

    async def create_invoice(self, *args: Any, **kwargs: Any) -> Invoice:
        self._unsupported("create_invoice")

    async def get_dispute(self, *args: Any, **kwargs: Any) -> Dispute:
        self._unsupported("get_dispute")

    async def parse_webhook(self, *args: Any, **kwargs: Any) -> WebhookEvent:
        self._unsupported("parse_webhook")

    # -- customers and saved payment methods (issue 19) ------------------------------------

    async def get_customer(self, *args: Any, **kwargs: Any) -> Customer:
        self._unsupported("get_customer")

    async def update_customer(self, *args: Any, **kwargs: Any) -> Customer:
        self._unsupported("update_customer")

    async def list_customers(self, *args: Any, **kwargs: Any) -> list[Customer]:
        self._unsupported("list_customers")

    async def delete_customer(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("delete_customer")

    async def create_setup(self, *args: Any, **kwargs: Any) -> SetupSession:
        self._unsupported("create_setup")

    async def complete_setup(self, *args: Any, **kwargs: Any) -> SetupSession:
        self._unsupported("complete_setup")

    async def list_payment_methods(self, *args: Any, **kwargs: Any) -> list[PaymentMethod]:
        self._unsupported("list_payment_methods")

    async def get_payment_method(self, *args: Any, **kwargs: Any) -> PaymentMethod:
        self._unsupported("get_payment_method")

    async def set_default_payment_method(self, *args: Any, **kwargs: Any) -> Customer:
        self._unsupported("set_default_payment_method")

    async def detach_payment_method(self, *args: Any, **kwargs: Any) -> None:
        self._unsupported("detach_payment_method")

    # -- after the first charge (issue 20): subscriptions, invoices, disputes ----------------

    async def list_subscriptions(self, *args: Any, **kwargs: Any) -> list[Subscription]:
        self._unsupported("list_subscriptions")

    async def change_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("change_subscription")

    async def pause_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("pause_subscription")

    async def resume_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("resume_subscription")

    async def undo_cancel_subscription(self, *args: Any, **kwargs: Any) -> Subscription:
        self._unsupported("undo_cancel_subscription")

    async def retry_invoice(self, *args: Any, **kwargs: Any) -> Invoice:
        self._unsupported("retry_invoice")

    async def list_disputes(self, *args: Any, **kwargs: Any) -> list[Dispute]:
        self._unsupported("list_disputes")

    async def submit_dispute_evidence(self, *args: Any, **kwargs: Any) -> Dispute:
        self._unsupported("submit_dispute_evidence")

    async def accept_dispute(self, *args: Any, **kwargs: Any) -> Dispute:
        self._unsupported("accept_dispute")

    async def aclose(self) -> None:
        """Release connections; the default has none."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


#: the async twin of each built-in adapter (same settings, same extra)
_ASYNC_BUILTIN: dict[str, ProviderSpec] = {
    "fake": ProviderSpec("paygate.providers._fake_async:AsyncFakeProvider"),
    "stripe": ProviderSpec(
        "paygate.providers._stripe_async:AsyncStripeProvider", "stripe", ("stripe", "httpx")
    ),
    "paypal": ProviderSpec(
        "paygate.providers._paypal_aio:AsyncPayPalProvider",
        "paypal",
        ("paypalrestsdk", "cryptography", "httpx"),
    ),
    "square": ProviderSpec(
        "paygate.providers._square_async:AsyncSquareProvider", "square", ("httpx", "square")
    ),
}


def create_async_provider(name: str, **settings: Any) -> AsyncPaymentProvider:
    """The async adapter for ``name`` from its settings, as `create_provider` builds
    the sync one: a built-in twin, else the sync adapter's own ``aio()`` (a third-party
    adapter registered under ``name`` that offers one)."""
    spec = _ASYNC_BUILTIN.get(name)
    if spec is not None and _registry.get(name) == _BUILTIN.get(name):
        cls = _load_spec(name, spec)
        provider: AsyncPaymentProvider = cls(**settings)
        return provider
    return async_provider_for(create_provider(name, **settings))


def async_provider_for(provider: PaymentProvider | AsyncPaymentProvider) -> AsyncPaymentProvider:
    """The async twin of a configured adapter: ``provider.aio()`` (every built-in adapter
    has one: same settings, its own async HTTP client), or ``provider`` itself when it is
    async already. Anything else: `ConfigurationError`."""
    import inspect

    if inspect.iscoroutinefunction(getattr(provider, "get_payment", None)):
        already_async: AsyncPaymentProvider = provider  # type: ignore[assignment]
        return already_async
    aio = getattr(provider, "aio", None)
    if not callable(aio):
        raise ConfigurationError(
            f"provider {getattr(provider, 'name', type(provider).__name__)!r} has no async "
            "twin: give it an aio() method returning an AsyncPaymentProvider"
        )
    twin: AsyncPaymentProvider = aio()
    return twin


def implements(obj: object, protocol: type) -> bool:
    """Whether ``obj`` has every member of the runtime-checkable ``protocol``, looked up as
    a call would (`getattr`, so an adapter or facade that forwards with ``__getattr__``
    counts). Written by hand because ``isinstance`` changed in Python 3.12: it now looks
    members up statically (``inspect.getattr_static``), which misses forwarded ones."""
    from typing_extensions import get_protocol_members

    return all(hasattr(obj, member) for member in get_protocol_members(protocol))
