"""[`Gateway`][paygate.gateway.Gateway]: the synchronous face. What most users touch.

Each public method checks nothing and decides nothing itself: it runs the operation's
flow (``GatewayFlows``) through the blocking driver (``_sansio.run_sync``), which calls the
store and the provider adapter directly. The async face (``AsyncGateway``) runs the very
same flows through the async driver.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from typing_extensions import TypeVar as TypeVarDefault

from paygate._facts import Fact
from paygate._retry import RetryPolicy
from paygate.errors import ConfigurationError
from paygate.gateway._base import is_async
from paygate.gateway._flows import GatewayFlows
from paygate.gateway._payment_methods import require_payment_methods
from paygate.gateway._results import DispatchSummary, WebhookResult
from paygate.gateway._sansio import Flow, handler_name, run_sync
from paygate.models import (
    CaptureMethod,
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
    WebhookEvent,
)
from paygate.money import Money
from paygate.provider import PaymentProvider, Proration, create_provider, implements
from paygate.stores import Store, TransitionRecord, default_store_url, open_store

if TYPE_CHECKING:
    from paygate._config import GatewaySettings

__all__ = ["Gateway"]

T = TypeVar("T")
#: the Gateway's provider type; the default keeps a bare ``Gateway`` annotation valid
#: (covariant: a ``Gateway[FakeProvider]`` is a ``Gateway``)
P = TypeVarDefault("P", bound=PaymentProvider, default=PaymentProvider, covariant=True)
H = TypeVar("H", bound=Callable[..., Any])


class Gateway(GatewayFlows, Generic[P]):
    """One provider, one store, and the policies around them.

    * **Order first, idempotent.** Every creating call derives its provider idempotency
      key from the order id, the operation, the attempt and the amount, and writes an
      idempotency record to the store *before* calling the provider: the same call twice
      returns the same result and charges once; the same order with a different amount
      raises [`IdempotencyConflict`][paygate.errors.IdempotencyConflict] before anything
      is sent.
    * **Validation first.** Amounts, currencies, capture and refund limits are checked
      against the stored state before the provider hears of them.
    * **One retry layer** ([`RetryPolicy`][paygate.gateway.RetryPolicy]) for errors marked
      ``retryable``, always with the same idempotency key.
    * **Webhook pipeline:** verify and parse → claim the event id → apply the pure state
      transition ([`paygate.state`][paygate.state]) to the stored payment, in one
      transaction with the transition log and the facts it established (the outbox) →
      mark the event processed.
    * **Facts, told once:** whichever channel moves a payment (a webhook, an API answer,
      the customer's return, reconciliation), each fact it establishes is recorded in
      that transaction; the dispatcher then hands every recorded fact to the handlers of
      its type once, in order per payment, under a lease.

    Thread-safe: the gateway keeps no per-request state; the store serializes what must
    be. Build it with [`connect`][paygate.gateway.connect],
    [`from_config`][paygate.gateway.Gateway.from_config] or
    [`from_env`][paygate.gateway.Gateway.from_env]. For asyncio applications,
    ``paygate.AsyncGateway`` has the same operations as coroutines.

    Args:
        provider: the adapter ([`PaymentProvider`][paygate.provider.PaymentProvider]).
        store: where payments, events and idempotency records live. Without it:
            ``$PAYGATE_STORE_URL``, else SQLite at ``./paygate.db`` (see
            ``paygate.stores.default_store_url``).
        retry: defaults to ``provider.max_retries + 1`` attempts when the provider sets
            that.
        currencies: the currencies payments may use (``None``: all).
        webhook_lease: how long (seconds) a worker owns a webhook event (or a fact whose
            handlers it runs) before another may take it over.
        clock: Unix seconds; for tests.

    Raises:
        ConfigurationError: ``provider`` is not a payment provider, or a policy is
            invalid.
    """

    def __init__(
        self,
        provider: P,
        store: Store | None = None,
        *,
        retry: RetryPolicy | None = None,
        currencies: Iterable[str] | None = None,
        webhook_lease: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not implements(provider, PaymentProvider):
            raise ConfigurationError(
                f"provider must implement paygate.PaymentProvider, got {type(provider).__name__}"
            )
        self.provider: P = provider
        self.store: Store = (
            store if store is not None else open_store(default_store_url(provider=provider.name))
        )
        self._configure(
            provider, self.store, retry=retry, currencies=currencies,
            webhook_lease=webhook_lease, clock=clock,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"Gateway(provider={self.provider.name!r}, store={self.store!r})"

    def _run(self, flow: Flow[T]) -> T:
        """Run one operation's flow with blocking calls (the sync driver)."""
        return run_sync(flow, store=self.store, provider=self.provider, sleep=self.retry.sleep)

    # -- construction ---------------------------------------------------------------------

    # cls: type[Gateway[Any]]: the provider is named by configuration, known at run time only
    @classmethod
    def _from_settings(
        cls: type[Gateway[Any]], settings: GatewaySettings, **overrides: Any
    ) -> Gateway:
        provider = create_provider(settings.provider, **settings.settings)
        url = settings.store.get_secret_value() if settings.store is not None else ""
        store = open_store(url or default_store_url(provider=provider.name))
        kwargs = _settings_kwargs(settings, provider)
        kwargs.update(overrides)
        return cls(provider, store, **kwargs)

    @classmethod
    def from_config(cls: type[Gateway[Any]], config: Mapping[str, Any]) -> Gateway:
        """A gateway from a mapping.

        Example:
            ```python
            Gateway.from_config({"provider": "stripe", "store": "sqlite:///paygate.db",
                                 "stripe": {"api_key": "sk_test_..."},
                                 "currencies": ["USD", "EUR"], "retry": {"attempts": 4}})
            ```
        """
        from paygate._config import settings_from_mapping

        return cls._from_settings(settings_from_mapping(config))

    @classmethod
    def from_env(cls: type[Gateway[Any]], environ: Mapping[str, str] | None = None) -> Gateway:
        """A gateway from the environment.

        Reads ``PAYGATE_PROVIDER``, ``PAYGATE_STORE_URL`` (default: SQLite at
        ``./paygate.db``, as [`connect`][paygate.gateway.connect]), ``PAYGATE_CURRENCIES``
        (``USD,EUR``), ``PAYGATE_RETRY_ATTEMPTS``, ``PAYGATE_WEBHOOK_LEASE`` and
        ``PAYGATE_<PROVIDER>_<SETTING>`` (passed to the provider as ``<setting>=``,
        lower-cased: ``PAYGATE_STRIPE_API_KEY`` → ``api_key``).

        Args:
            environ: instead of ``os.environ``.
        """
        from paygate._config import settings_from_env

        return cls._from_settings(settings_from_env(environ))

    def close(self) -> None:
        """Close the store and the provider's connections."""
        self.store.close()
        close = getattr(self.provider, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> Gateway[P]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- payments ---------------------------------------------------------------------------

    def create_payment(
        self,
        *,
        order_id: str,
        amount: Money,
        payment_method: str | None = None,
        customer_id: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        capture: CaptureMethod = "automatic",
        return_url: str | None = None,
        off_session: bool = False,
    ) -> Payment:
        """Pay for ``order_id``.

        Idempotent per order: the same call again returns the same payment without a
        second charge; the same order with another amount or currency raises
        [`IdempotencyConflict`][paygate.errors.IdempotencyConflict] before reaching the
        provider. After a decline (or once the payment failed or was canceled) a new call
        starts the next attempt, with any payment method.

        Args:
            order_id: your order's id: the idempotency scope.
            amount: what to charge ([`Money`][paygate.money.Money]).
            payment_method: the provider's payment method token, if any.
            customer_id: the provider's customer.
            description: shown to the customer where the provider shows one.
            metadata: stored with the payment at the provider.
            capture: ``"manual"`` only authorizes (capture later with
                [`capture`][paygate.gateway.Gateway.capture]).
            return_url: where the provider sends the customer back after a redirect.
            off_session: a merchant-initiated charge of a saved ``payment_method`` of
                ``customer_id``, without the customer (a renewal, a reorder).

        Returns:
            The payment as stored (with the provider's ``client_secret``, never stored).

        Raises:
            ValidationError: a bad argument, before anything is sent.
            IdempotencyConflict: the order was paid with other parameters.
            CardDeclined: the provider declined (the next call starts a new attempt).
            AuthenticationRequired: off session, the bank wants the customer to
                authenticate; bring them back to confirm ``payment_id``.
            ProviderError: the provider failed; retryable ones were retried first.
        """
        return self._run(
            self._create_payment(
                order_id=order_id,
                amount=amount,
                payment_method=payment_method,
                customer_id=customer_id,
                description=description,
                metadata=metadata,
                capture=capture,
                return_url=return_url,
                off_session=off_session,
            )
        )

    def get_payment(self, payment_id: str) -> Payment:
        """The payment, refreshed from the provider into the store (through the state
        machine), as the store now has it."""
        return self._run(self._get_payment(payment_id))

    def payment_for_order(self, order_id: str) -> Payment | None:
        """The latest payment attempt for ``order_id``, the one the provider created
        last (store only, no provider call), or ``None``."""
        return self._run(self._payment_for_order(order_id))

    def history(self, payment_id: str) -> list[TransitionRecord]:
        """Every transition of the payment, oldest first: trigger, previous and new status,
        amounts, the event (or Gateway call) that caused it, and when."""
        return self._run(self._history(payment_id))

    def capture(self, payment_id: str, amount: Money | None = None) -> Payment:
        """Capture an authorized payment, all of it (``amount=None``) or part."""
        return self._run(self._capture(payment_id, amount))

    def cancel(self, payment_id: str) -> Payment:
        """Cancel a payment that has not settled (pending, requires action, processing,
        authorized, failed)."""
        return self._run(self._cancel(payment_id))

    def refund(
        self,
        payment_id: str,
        amount: Money | None = None,
        reason: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Refund:
        """Refund ``amount`` (``None``: everything not yet refunded).

        Idempotent per (payment, amount refunded so far, amount): a double click sends
        one refund; a second refund after the first completed is a new refund.

        Args:
            payment_id: the payment to refund.
            amount: how much; ``None``: the rest.
            reason: passed to the provider.
            idempotency_key: decide yourself what counts as the same refund.
        """
        return self._run(self._refund(payment_id, amount, reason, idempotency_key=idempotency_key))

    def handle_return(self, params: Mapping[str, str]) -> Payment:
        """The customer's redirect back from the provider's page.

        The payment is looked up at the provider (and finished, where the provider needs
        that); the query string's own words are never trusted.
        """
        return self._run(self._handle_return(params))

    # -- checkout, customers, subscriptions, invoices ----------------------------------------

    def create_checkout(
        self,
        *,
        order_id: str,
        line_items: Sequence[LineItem],
        success_url: str,
        cancel_url: str,
        customer_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        mode: str = "payment",
        price_id: str | None = None,
    ) -> CheckoutSession:
        """A hosted payment page for ``order_id``; send the customer to ``session.url``.
        Idempotent per order like [`create_payment`][paygate.gateway.Gateway.create_payment]."""
        return self._run(
            self._create_checkout(
                order_id=order_id,
                line_items=line_items,
                success_url=success_url,
                cancel_url=cancel_url,
                customer_id=customer_id,
                metadata=metadata,
                mode=mode,
                price_id=price_id,
            )
        )

    def create_customer(
        self,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Customer:
        """A customer at the provider.

        Each call creates one customer (retries inside the call send the same key, so a
        lost answer never makes two); two calls make two customers, even with the same
        details (two anonymous customers are two people). Pass ``idempotency_key`` to
        make calls with that key create one customer.
        """
        return self._run(
            self._create_customer(
                email=email, name=name, metadata=metadata, idempotency_key=idempotency_key
            )
        )

    def create_subscription(
        self,
        *,
        customer_id: str,
        price_id: str,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        trial_days: int | None = None,
        trial_end: datetime | None = None,
        quantity: int = 1,
    ) -> Subscription:
        """Subscribe ``customer_id`` to ``price_id``. Idempotent while the subscription
        lives; once it is canceled, the same call starts a new one.

        ``trial_days`` / ``trial_end``: start in a free trial (``trialing``; nothing is
        billed until it ends); ``quantity``: seats. Providers whose plans carry their
        trials (PayPal, Square) raise [`NotSupported`][paygate.errors.NotSupported]. The
        subscription is kept in the store (see ``docs/subscriptions.md``).
        """
        return self._run(
            self._kept(
                self._create_subscription(
                    customer_id=customer_id,
                    price_id=price_id,
                    metadata=metadata,
                    idempotency_key=idempotency_key,
                    trial_days=trial_days,
                    trial_end=trial_end,
                    quantity=quantity,
                )
            )
        )

    def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        """Cancel now, or at the end of the paid period (undo that with
        [`undo_cancel_subscription`][paygate.gateway.Gateway.undo_cancel_subscription])."""
        return self._run(
            self._kept(self._cancel_subscription(subscription_id, at_period_end=at_period_end))
        )

    # -- after the first charge: subscriptions, dunning, disputes ------------------------------

    def get_subscription(self, subscription_id: str) -> Subscription:
        """The subscription as the provider holds it now; the store learns it too (its
        facts, if any, are told once)."""
        return self._run(self._get_subscription(subscription_id))

    def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        """The customer's subscriptions at the provider (PayPal, which cannot list: those
        the store holds)."""
        return self._run(self._list_subscriptions(customer_id))

    def change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        idempotency_key: str | None = None,
    ) -> Subscription:
        """Move to another price and/or quantity.

        ``proration``: ``"create_prorations"`` credits the unused time and charges the new
        price for it on the next invoice, ``"always_invoice"`` invoices that now,
        ``"none"`` bills the new price from the next period. PayPal and Square take only
        ``"none"`` (others raise [`NotSupported`][paygate.errors.NotSupported] naming
        them). Idempotent per ``idempotency_key`` (default: the arguments).
        """
        return self._run(
            self._change_subscription(
                subscription_id, price_id=price_id, quantity=quantity, proration=proration,
                idempotency_key=idempotency_key,
            )
        )  # fmt: skip

    def pause_subscription(self, subscription_id: str) -> Subscription:
        """Stop billing until resumed (``paused``)."""
        return self._run(self._pause_subscription(subscription_id))

    def resume_subscription(self, subscription_id: str) -> Subscription:
        """Bill again after a pause."""
        return self._run(self._resume_subscription(subscription_id))

    def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        """Take back a cancel scheduled for the period's end, before the period ends."""
        return self._run(self._undo_cancel_subscription(subscription_id))

    def retry_invoice(self, invoice_id: str, *, idempotency_key: str | None = None) -> Invoice:
        """Collect a past-due subscription's open invoice again (after the customer fixed
        their card); a paid retry makes the subscription active again. PayPal: pass the
        subscription's id (its outstanding balance is charged)."""
        return self._run(self._retry_invoice(invoice_id, idempotency_key=idempotency_key))

    def get_dispute(self, dispute_id: str) -> Dispute:
        """The dispute as the provider holds it (status, reason, evidence due date)."""
        return self._run(self._get_dispute(dispute_id))

    def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        """The account's disputes, or one payment's."""
        return self._run(self._list_disputes(payment_id))

    def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """Answer a dispute with [`DisputeEvidence`][paygate.models.DisputeEvidence];
        ``submit=False`` stages it where the provider allows (Stripe, Square)."""
        return self._run(self._submit_dispute_evidence(dispute_id, evidence, submit=submit))

    def accept_dispute(self, dispute_id: str) -> Dispute:
        """Concede a dispute: the money stays with the cardholder."""
        return self._run(self._accept_dispute(dispute_id))

    def create_invoice(
        self,
        *,
        customer_id: str,
        line_items: Sequence[LineItem],
        order_id: str | None = None,
        description: str | None = None,
        send: bool = False,
    ) -> Invoice:
        """An invoice for ``customer_id``; idempotent per ``order_id`` when given (else per
        customer and lines)."""
        return self._run(
            self._create_invoice(
                customer_id=customer_id,
                line_items=line_items,
                order_id=order_id,
                description=description,
                send=send,
            )
        )

    # -- customers and saved payment methods --------------------------------------------------

    def get_customer(self, customer_id: str) -> Customer:
        """The customer as the provider holds it now.

        Raises:
            NotFound: no such customer (or it was deleted).
            NotSupported: the provider has no customer objects (PayPal).
        """
        require_payment_methods(self.provider, "get_customer")
        return self._run(self._get_customer(customer_id))

    def update_customer(
        self,
        customer_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        """Change what is given (``None`` leaves a field as it is; metadata keys merge)."""
        require_payment_methods(self.provider, "update_customer")
        return self._run(
            self._update_customer(customer_id, email=email, name=name, metadata=metadata)
        )

    def list_customers(
        self, *, email: str | None = None, page_size: int = 100
    ) -> Iterator[Customer]:
        """Every customer (with ``email``: those with that address), a page per request
        as the iterator is consumed."""
        require_payment_methods(self.provider, "list_customers")
        return self._run(self._list_customers(email=email, page_size=page_size))

    def delete_customer(self, customer_id: str) -> None:
        """Delete the customer at the provider (its saved methods go with it)."""
        require_payment_methods(self.provider, "delete_customer")
        self._run(self._delete_customer(customer_id))

    def create_setup(
        self,
        customer_id: str,
        *,
        return_url: str | None = None,
        cancel_url: str | None = None,
        usage: SetupUsage = "off_session",
        payment_method: str | None = None,
        verification_token: str | None = None,
        idempotency_key: str | None = None,
    ) -> SetupSession:
        """Start saving a payment method for ``customer_id``.

        Each call is its own setup (retries inside it send the same key); pass
        ``idempotency_key`` to make calls with that key one setup. See
        ``docs/payment-methods.md`` for each provider's flow.

        Args:
            customer_id: the provider's customer (PayPal: your own id for the buyer).
            return_url: where the customer comes back after their step at the provider.
            cancel_url: where they go if they give up (default: ``return_url``).
            usage: ``"off_session"`` (charged later without the customer) or
                ``"on_session"``.
            payment_method: a front-end token to save at once (a Square card nonce, a
                Stripe ``pm_...``), instead of the customer's step at the provider.
            verification_token: Square's buyer verification (SCA) for that nonce.
            idempotency_key: makes calls with the same key one setup.

        Returns:
            The [`SetupSession`][paygate.models.SetupSession]: its ``url`` or
            ``client_secret`` for the customer's step, or ``payment_method_id`` once saved.

        Raises:
            CardDeclined: the card was refused while being saved.
            NotSupported: the provider cannot save payment methods.
        """
        require_payment_methods(self.provider, "create_setup")
        return self._run(
            self._create_setup(
                customer_id=customer_id,
                return_url=return_url,
                cancel_url=cancel_url,
                usage=usage,
                payment_method=payment_method,
                verification_token=verification_token,
                idempotency_key=idempotency_key,
            )
        )

    def complete_setup(self, params: Mapping[str, str]) -> SetupSession:
        """The customer came back from saving a method with ``params`` (the query string):
        the setup is looked up (and finished, PayPal) at the provider, never read from the
        query string's words. The same return twice saves one method."""
        require_payment_methods(self.provider, "complete_setup")
        return self._run(self._complete_setup(params))

    def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        """The customer's saved payment methods."""
        require_payment_methods(self.provider, "list_payment_methods")
        return self._run(self._list_payment_methods(customer_id))

    def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        """One saved payment method (``customer_id`` is ``None`` once detached)."""
        require_payment_methods(self.provider, "get_payment_method")
        return self._run(self._get_payment_method(payment_method_id))

    def set_default_payment_method(self, customer_id: str, payment_method_id: str) -> Customer:
        """Make a saved method the customer's default (Stripe, the fake; others raise
        [`NotSupported`][paygate.errors.NotSupported])."""
        require_payment_methods(self.provider, "set_default_payment_method")
        return self._run(self._set_default_payment_method(customer_id, payment_method_id))

    def detach_payment_method(self, payment_method_id: str) -> None:
        """Remove a saved method: charging it afterwards is refused with a typed error."""
        require_payment_methods(self.provider, "detach_payment_method")
        self._run(self._detach_payment_method(payment_method_id))

    # -- webhooks and facts -------------------------------------------------------------------

    def on(self, *event_types: EventType | str) -> Callable[[H], H]:
        """Register a handler for these event types (none given: every event).

        Example:
            ```python
            @gw.on(EventType.PAYMENT_SUCCEEDED)
            def fulfil(fact): ...
            ```

        Payment facts (``payment.succeeded``, ``refund.failed``, ``dispute.lost``, ...:
        ``paygate.FACT_TYPES``) reach their handlers as a
        [`Fact`][paygate._facts.Fact], once per fact whichever channel established it
        (webhook, API answer, the customer's return, reconciliation), in order per
        payment, from the store's outbox. Other events (subscriptions, invoices,
        checkout, unknown) reach theirs as the
        [`WebhookEvent`][paygate.models.WebhookEvent], once per new event id. Several
        handlers may share a type; they run in registration order (all again if one of
        them raised).

        Raises:
            ConfigurationError: the handler is not callable, or is a coroutine function
                (``async def``, or a partial or callable object around one): this
                Gateway runs handlers synchronously (``AsyncGateway`` awaits them).
        """
        types = tuple(EventType(t) for t in event_types)

        def register(handler: H) -> H:
            if not callable(handler):
                raise ConfigurationError(f"webhook handler must be callable, got {handler!r}")
            if is_async(handler):
                raise ConfigurationError(
                    f"handler {handler_name(handler)} is a coroutine function, but this Gateway "
                    "runs handlers synchronously and would never await it (the order would "
                    "never be fulfilled). Register a plain function; to call async code from "
                    "it, use asyncio.run(...) (or your framework's async_to_sync); or use "
                    "paygate.AsyncGateway"
                )
            self._register(types, handler)
            return handler

        return register

    def channel(self, source: str) -> contextlib.AbstractContextManager[None]:
        """Label the transitions and facts recorded inside the block with ``source``
        (``"reconcile"``, ``"return"``, ``"api"``): reconciliation's ``--apply`` syncs
        through [`get_payment`][paygate.gateway.Gateway.get_payment] and
        [`refund`][paygate.gateway.Gateway.refund] inside ``channel("reconcile")``.

        Raises:
            ValidationError: another label.
        """
        return self._channel(source)

    def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        """Verify, record, apply and dispatch one webhook delivery.

        A payment fact's event records the facts it establishes in the transaction that
        applies it; their handlers then run from the outbox, and a handler that raises
        leaves the fact pending for a retry without failing the delivery (see
        [`WebhookResult`][paygate.gateway.WebhookResult]). For other events
        (subscriptions, invoices, ...) a handler's exception is re-raised after giving the
        event up, so that the provider's redelivery runs the handlers again (answer 5xx);
        the state transition is never applied twice. Otherwise answer the result's
        [`http_status`][paygate.gateway.WebhookResult.http_status] (409 while another
        worker holds the event).

        Raises:
            WebhookVerificationError: the delivery is not authentic (answer 400).
        """
        return self._run(self._handle_webhook(body, headers))

    def dispatch_pending(self, *, limit: int = 1000) -> DispatchSummary:
        """Run the handlers of every pending fact (up to ``limit``).

        Failed ones are included (whatever their backoff), in order per payment, each
        once under a lease: for a cron job or worker, and after fixing a handler. A
        gateway with no handler registered at all dispatches nothing (it would mark facts
        done unheard).
        """
        return self._run(self._dispatch_pending(limit=limit))

    def pending_facts(
        self, *, payment_id: str | None = None, limit: int | None = None
    ) -> list[Fact]:
        """Facts whose handlers have not all run yet (pending or failed), oldest first;
        ``Fact.attempts`` and ``Fact.last_error`` say what happened so far."""
        return self._run(self._pending_facts(payment_id=payment_id, limit=limit))

    def facts(self, payment_id: str) -> list[Fact]:
        """Every fact recorded for the payment, in causal order (done or not)."""
        return self._run(self._facts(payment_id))

    def replay(
        self,
        *,
        since: float | Any | None = None,
        payment_id: str | None = None,
        store: Store | None = None,
        dry_run: bool = False,
    ) -> list[WebhookEvent]:
        """Run the registered handlers again for recorded events, oldest received first,
        never applying a transition again (for a handler bug fixed after the fact).

        Only events of this gateway's provider whose transition step is done and whose
        handlers ran (or would have): not stale, rejected or never-applied ones. A handler
        that raises stops the replay and propagates.

        Args:
            since: received at or after (Unix seconds or an aware ``datetime``).
            payment_id: that payment's events.
            store: read the events from another store (``paygate events replay --store``).
            dry_run: select, run nothing.

        Returns:
            The events replayed (those with at least one handler).
        """
        return self._run(
            self._replay(since=since, payment_id=payment_id, source=store, dry_run=dry_run)
        )


def _settings_kwargs(settings: GatewaySettings, provider: Any) -> dict[str, Any]:
    """The policies of a configuration, as keyword arguments of either face."""
    from paygate._config import RetrySettings

    r: RetrySettings = settings.retry
    attempts = r.attempts
    if attempts is None:
        max_retries = getattr(provider, "max_retries", None)
        attempts = max_retries + 1 if max_retries is not None else 3
    retry = RetryPolicy(attempts=attempts, base_delay=r.base_delay, max_delay=r.max_delay,
                        total_budget=r.total_budget, jitter=r.jitter)  # fmt: skip
    return {
        "retry": retry,
        "currencies": settings.currencies,
        "webhook_lease": settings.webhook_lease,
    }
