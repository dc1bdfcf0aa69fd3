"""[`AsyncGateway`][paygate.gateway.AsyncGateway]: the asyncio face.

The same operations as [`Gateway`][paygate.gateway.Gateway], with the same names,
arguments, results, errors and guarantees, as coroutines. Each runs the very flow the
sync face runs (``GatewayFlows``), through the async driver (``_sansio.run_async``):
provider calls are awaited on the adapter's async client, store calls on an
[`AsyncStore`][paygate.stores.aio.AsyncStore], retries pause with ``asyncio.sleep``, and
handlers may be ``async def``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from typing_extensions import TypeVar as TypeVarDefault

from paygate._facts import Fact
from paygate._observe import fields
from paygate._retry import RetryPolicy
from paygate.errors import ConfigurationError, NotSupported, PaygateError, ProviderNotInstalled
from paygate.gateway._flows import GatewayFlows
from paygate.gateway._payment_methods import require_payment_methods
from paygate.gateway._results import DispatchSummary, WebhookResult
from paygate.gateway._sansio import Flow, run_async
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
from paygate.provider import (
    AsyncPaymentProvider,
    PaymentProvider,
    Proration,
    async_provider_for,
    create_async_provider,
    create_provider,
    implements,
)
from paygate.stores import Store, TransitionRecord, default_store_url, open_store
from paygate.stores.aio import AsyncStore

if TYPE_CHECKING:
    from paygate._config import GatewaySettings

__all__ = ["AsyncGateway"]

_log = logging.getLogger("paygate")
T = TypeVar("T")
#: the AsyncGateway's provider type (covariant, defaulted like ``Gateway``'s)
AP = TypeVarDefault("AP", bound=AsyncPaymentProvider, default=AsyncPaymentProvider, covariant=True)
H = TypeVar("H", bound=Callable[..., Any])


#: ``RetryPolicy``'s default pause (``time.sleep``): replaced by ``asyncio.sleep`` here
_BLOCKING_SLEEP = RetryPolicy.__dataclass_fields__["sleep"].default


class _ThreadedProvider:
    """A sync adapter with no async twin, each call run in a worker thread
    (``asyncio.to_thread``): never blocks the loop, but holds a thread per call in
    flight. Built-in adapters have native async twins and never land here."""

    def __init__(self, provider: PaymentProvider) -> None:
        self.sync = provider

    @property
    def name(self) -> str:
        return self.sync.name

    @property
    def capabilities(self) -> Any:
        return self.sync.capabilities

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.sync, name)
        if name.startswith("_") or not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(attr, *args, **kwargs)

        return call

    async def aclose(self) -> None:
        close = getattr(self.sync, "close", None)
        if callable(close):
            await asyncio.to_thread(close)


def _async_provider(provider: Any) -> Any:
    """``provider`` as an async adapter: itself, its ``aio()`` twin, or, for a sync adapter
    with no twin (a plugin's, or a built-in one whose twin is not there), its calls in
    worker threads."""
    if inspect.iscoroutinefunction(getattr(provider, "get_payment", None)):
        return provider
    if not implements(provider, PaymentProvider):
        raise ConfigurationError(
            "provider must implement paygate.provider.AsyncPaymentProvider (or "
            f"PaymentProvider), got {type(provider).__name__}"
        )
    try:
        return async_provider_for(provider)
    except (PaygateError, ImportError, AttributeError) as exc:  # no aio(), or no twin
        _log.info(
            "provider %s has no async twin (%s): its calls run in worker threads",
            provider.name, type(exc).__name__,
            extra=fields(provider=provider.name, error_type=type(exc).__name__),
        )  # fmt: skip
        return _ThreadedProvider(provider)


def _async_provider_from_settings(name: str, settings: dict[str, Any]) -> Any:
    """The async adapter ``name`` from its settings: its async twin, else the sync adapter
    in worker threads."""
    try:
        return create_async_provider(name, **settings)
    except ProviderNotInstalled:
        raise
    except (NotSupported, ImportError, AttributeError):  # no twin for this adapter
        return _async_provider(create_provider(name, **settings))


class AsyncGateway(GatewayFlows, Generic[AP]):
    """One provider, one store, and the policies around them, for asyncio.

    Every operation of [`Gateway`][paygate.gateway.Gateway] as a coroutine, run by the
    same flows: order-first idempotency, retries with the same key, validation before
    the provider, facts delivered once, exactly-once webhooks across workers (a sync
    Gateway and an AsyncGateway may share a store). Build it with
    [`connect_async`][paygate.gateway.connect_async],
    [`from_config`][paygate.gateway.AsyncGateway.from_config] or
    [`from_env`][paygate.gateway.AsyncGateway.from_env]; use it as ``async with`` (or
    call [`aclose`][paygate.gateway.AsyncGateway.aclose]).

    Cancelling a call (a client that disconnects, ``asyncio.timeout``) is safe at any
    await: the idempotency record is written before the provider is asked and names the
    key the provider will see again, so the next call for the order charges at most
    once; a webhook cancelled mid-way is redelivered and applied once.

    Args:
        provider: an async adapter
            ([`AsyncPaymentProvider`][paygate.provider.AsyncPaymentProvider]); a sync
            adapter is accepted too and replaced by its ``aio()`` twin (sharing its
            settings and, for the fake, its engine), or run in worker threads when it
            has none.
        store: a [`Store`][paygate.stores.Store] or an
            [`AsyncStore`][paygate.stores.aio.AsyncStore]; without it, as
            [`Gateway`][paygate.gateway.Gateway]. A store is wrapped in an ``AsyncStore``
            (on the loop for memory, a dedicated thread for SQLite, a thread per pooled
            connection for PostgreSQL).
        retry: as [`Gateway`][paygate.gateway.Gateway]; its pauses are
            ``asyncio.sleep`` (a policy given its own ``sleep`` uses that, awaited if it
            returns an awaitable).
        currencies: as [`Gateway`][paygate.gateway.Gateway].
        webhook_lease: as [`Gateway`][paygate.gateway.Gateway].
        clock: as [`Gateway`][paygate.gateway.Gateway].
    """

    def __init__(
        self,
        provider: AP,
        store: Store | AsyncStore | None = None,
        *,
        retry: RetryPolicy | None = None,
        currencies: Iterable[str] | None = None,
        webhook_lease: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        adapter = _async_provider(provider)
        self.provider: AP = adapter
        if store is None:
            store = open_store(default_store_url(provider=adapter.name))
        self.astore: AsyncStore = store if isinstance(store, AsyncStore) else AsyncStore(store)
        #: the synchronous store underneath (its methods block: for tools and tests)
        self.store: Store = self.astore.store
        self._configure(
            adapter, self.store, retry=retry, currencies=currencies,
            webhook_lease=webhook_lease, clock=clock,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"AsyncGateway(provider={self.provider.name!r}, store={self.store!r})"

    async def _sleep(self, seconds: float) -> None:
        pause = self.retry.sleep
        if pause is _BLOCKING_SLEEP:  # the policy's default: wait on the loop instead
            await asyncio.sleep(seconds)
            return
        result = pause(seconds)  # a test's own sleep
        if inspect.isawaitable(result):
            await result

    async def _run(self, flow: Flow[T]) -> T:
        """Run one operation's flow, awaiting each effect (the async driver)."""
        return await run_async(
            flow, store=self.astore, provider=self.provider, sleep=self._sleep,
            other_store=_other_store,
        )  # fmt: skip

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def _from_settings(
        cls: type[AsyncGateway[Any]], settings: GatewaySettings, **overrides: Any
    ) -> AsyncGateway:
        from paygate.gateway._facade import _settings_kwargs

        provider = _async_provider_from_settings(settings.provider, dict(settings.settings))
        url = settings.store.get_secret_value() if settings.store is not None else ""
        store = open_store(url or default_store_url(provider=provider.name))
        kwargs = _settings_kwargs(settings, provider)
        kwargs.update(overrides)
        return cls(provider, store, **kwargs)

    @classmethod
    def from_config(cls: type[AsyncGateway[Any]], config: Mapping[str, Any]) -> AsyncGateway:
        """An async gateway from a mapping, read as
        [`Gateway.from_config`][paygate.gateway.Gateway.from_config] reads it."""
        from paygate._config import settings_from_mapping

        return cls._from_settings(settings_from_mapping(config))

    @classmethod
    def from_env(
        cls: type[AsyncGateway[Any]], environ: Mapping[str, str] | None = None
    ) -> AsyncGateway:
        """An async gateway from the environment, read as
        [`Gateway.from_env`][paygate.gateway.Gateway.from_env] reads it."""
        from paygate._config import settings_from_env

        return cls._from_settings(settings_from_env(environ))

    async def aclose(self) -> None:
        """Close the store and the provider's connections."""
        try:
            await self.astore.aclose()
        finally:
            aclose = getattr(self.provider, "aclose", None)
            if callable(aclose):
                await aclose()

    async def __aenter__(self) -> AsyncGateway[AP]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- payments ---------------------------------------------------------------------------

    async def create_payment(
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
        """[`Gateway.create_payment`][paygate.gateway.Gateway.create_payment], awaited."""
        return await self._run(
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

    async def get_payment(self, payment_id: str) -> Payment:
        """[`Gateway.get_payment`][paygate.gateway.Gateway.get_payment], awaited."""
        return await self._run(self._get_payment(payment_id))

    async def payment_for_order(self, order_id: str) -> Payment | None:
        """[`Gateway.payment_for_order`][paygate.gateway.Gateway.payment_for_order], awaited."""
        return await self._run(self._payment_for_order(order_id))

    async def history(self, payment_id: str) -> list[TransitionRecord]:
        """[`Gateway.history`][paygate.gateway.Gateway.history], awaited."""
        return await self._run(self._history(payment_id))

    async def capture(self, payment_id: str, amount: Money | None = None) -> Payment:
        """[`Gateway.capture`][paygate.gateway.Gateway.capture], awaited."""
        return await self._run(self._capture(payment_id, amount))

    async def cancel(self, payment_id: str) -> Payment:
        """[`Gateway.cancel`][paygate.gateway.Gateway.cancel], awaited."""
        return await self._run(self._cancel(payment_id))

    async def refund(
        self,
        payment_id: str,
        amount: Money | None = None,
        reason: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Refund:
        """[`Gateway.refund`][paygate.gateway.Gateway.refund], awaited."""
        return await self._run(
            self._refund(payment_id, amount, reason, idempotency_key=idempotency_key)
        )

    async def handle_return(self, params: Mapping[str, str]) -> Payment:
        """[`Gateway.handle_return`][paygate.gateway.Gateway.handle_return], awaited."""
        return await self._run(self._handle_return(params))

    # -- checkout, customers, subscriptions, invoices ----------------------------------------

    async def create_checkout(
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
        """[`Gateway.create_checkout`][paygate.gateway.Gateway.create_checkout], awaited."""
        return await self._run(
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

    async def create_customer(
        self,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Customer:
        """[`Gateway.create_customer`][paygate.gateway.Gateway.create_customer], awaited."""
        return await self._run(
            self._create_customer(
                email=email, name=name, metadata=metadata, idempotency_key=idempotency_key
            )
        )

    async def create_subscription(
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
        """[`Gateway.create_subscription`][paygate.gateway.Gateway.create_subscription],
        awaited."""
        return await self._run(
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

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        """[`Gateway.cancel_subscription`][paygate.gateway.Gateway.cancel_subscription],
        awaited."""
        return await self._run(
            self._kept(self._cancel_subscription(subscription_id, at_period_end=at_period_end))
        )

    # -- after the first charge: subscriptions, dunning, disputes ------------------------------

    async def get_subscription(self, subscription_id: str) -> Subscription:
        """[`Gateway.get_subscription`][paygate.gateway.Gateway.get_subscription], awaited."""
        return await self._run(self._get_subscription(subscription_id))

    async def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        """[`Gateway.list_subscriptions`][paygate.gateway.Gateway.list_subscriptions],
        awaited."""
        return await self._run(self._list_subscriptions(customer_id))

    async def change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        idempotency_key: str | None = None,
    ) -> Subscription:
        """[`Gateway.change_subscription`][paygate.gateway.Gateway.change_subscription],
        awaited."""
        return await self._run(
            self._change_subscription(
                subscription_id, price_id=price_id, quantity=quantity, proration=proration,
                idempotency_key=idempotency_key,
            )
        )  # fmt: skip

    async def pause_subscription(self, subscription_id: str) -> Subscription:
        """[`Gateway.pause_subscription`][paygate.gateway.Gateway.pause_subscription],
        awaited."""
        return await self._run(self._pause_subscription(subscription_id))

    async def resume_subscription(self, subscription_id: str) -> Subscription:
        """[`Gateway.resume_subscription`][paygate.gateway.Gateway.resume_subscription],
        awaited."""
        return await self._run(self._resume_subscription(subscription_id))

    async def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        """[`Gateway.undo_cancel_subscription`][paygate.gateway.Gateway.undo_cancel_subscription],
        awaited."""
        return await self._run(self._undo_cancel_subscription(subscription_id))

    async def retry_invoice(
        self, invoice_id: str, *, idempotency_key: str | None = None
    ) -> Invoice:
        """[`Gateway.retry_invoice`][paygate.gateway.Gateway.retry_invoice], awaited."""
        return await self._run(self._retry_invoice(invoice_id, idempotency_key=idempotency_key))

    async def get_dispute(self, dispute_id: str) -> Dispute:
        """[`Gateway.get_dispute`][paygate.gateway.Gateway.get_dispute], awaited."""
        return await self._run(self._get_dispute(dispute_id))

    async def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        """[`Gateway.list_disputes`][paygate.gateway.Gateway.list_disputes], awaited."""
        return await self._run(self._list_disputes(payment_id))

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """[`Gateway.submit_dispute_evidence`][paygate.gateway.Gateway.submit_dispute_evidence],
        awaited."""
        return await self._run(self._submit_dispute_evidence(dispute_id, evidence, submit=submit))

    async def accept_dispute(self, dispute_id: str) -> Dispute:
        """[`Gateway.accept_dispute`][paygate.gateway.Gateway.accept_dispute], awaited."""
        return await self._run(self._accept_dispute(dispute_id))

    async def create_invoice(
        self,
        *,
        customer_id: str,
        line_items: Sequence[LineItem],
        order_id: str | None = None,
        description: str | None = None,
        send: bool = False,
    ) -> Invoice:
        """[`Gateway.create_invoice`][paygate.gateway.Gateway.create_invoice], awaited."""
        return await self._run(
            self._create_invoice(
                customer_id=customer_id,
                line_items=line_items,
                order_id=order_id,
                description=description,
                send=send,
            )
        )

    # -- customers and saved payment methods --------------------------------------------------

    async def get_customer(self, customer_id: str) -> Customer:
        """[`Gateway.get_customer`][paygate.gateway.Gateway.get_customer], awaited."""
        require_payment_methods(self.provider, "get_customer")
        return await self._run(self._get_customer(customer_id))

    async def update_customer(
        self,
        customer_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        """[`Gateway.update_customer`][paygate.gateway.Gateway.update_customer], awaited."""
        require_payment_methods(self.provider, "update_customer")
        return await self._run(
            self._update_customer(customer_id, email=email, name=name, metadata=metadata)
        )

    async def list_customers(
        self, *, email: str | None = None, page_size: int = 100
    ) -> list[Customer]:
        """[`Gateway.list_customers`][paygate.gateway.Gateway.list_customers], awaited: every
        page, as a list (a sync adapter's lazy pages are read in a worker thread)."""
        require_payment_methods(self.provider, "list_customers")
        pages: Any = await self._run(self._list_customers(email=email, page_size=page_size))
        if isinstance(pages, list):
            return pages
        if hasattr(pages, "__aiter__"):
            return [customer async for customer in pages]
        return await asyncio.to_thread(list, pages)

    async def delete_customer(self, customer_id: str) -> None:
        """[`Gateway.delete_customer`][paygate.gateway.Gateway.delete_customer], awaited."""
        require_payment_methods(self.provider, "delete_customer")
        await self._run(self._delete_customer(customer_id))

    async def create_setup(
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
        """[`Gateway.create_setup`][paygate.gateway.Gateway.create_setup], awaited."""
        require_payment_methods(self.provider, "create_setup")
        return await self._run(
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

    async def complete_setup(self, params: Mapping[str, str]) -> SetupSession:
        """[`Gateway.complete_setup`][paygate.gateway.Gateway.complete_setup], awaited."""
        require_payment_methods(self.provider, "complete_setup")
        return await self._run(self._complete_setup(params))

    async def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        """[`Gateway.list_payment_methods`][paygate.gateway.Gateway.list_payment_methods],
        awaited."""
        require_payment_methods(self.provider, "list_payment_methods")
        return await self._run(self._list_payment_methods(customer_id))

    async def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        """[`Gateway.get_payment_method`][paygate.gateway.Gateway.get_payment_method],
        awaited."""
        require_payment_methods(self.provider, "get_payment_method")
        return await self._run(self._get_payment_method(payment_method_id))

    async def set_default_payment_method(
        self, customer_id: str, payment_method_id: str
    ) -> Customer:
        """[`Gateway.set_default_payment_method`][paygate.gateway.Gateway.set_default_payment_method],
        awaited."""
        require_payment_methods(self.provider, "set_default_payment_method")
        return await self._run(self._set_default_payment_method(customer_id, payment_method_id))

    async def detach_payment_method(self, payment_method_id: str) -> None:
        """[`Gateway.detach_payment_method`][paygate.gateway.Gateway.detach_payment_method],
        awaited."""
        require_payment_methods(self.provider, "detach_payment_method")
        await self._run(self._detach_payment_method(payment_method_id))

    # -- webhooks and facts -------------------------------------------------------------------

    def on(self, *event_types: EventType | str) -> Callable[[H], H]:
        """Register a handler for these event types (none given: every event), as
        [`Gateway.on`][paygate.gateway.Gateway.on] does, ``async def`` included.

        Example:
            ```python
            @agw.on(EventType.PAYMENT_SUCCEEDED)
            async def fulfil(fact): ...
            ```

        A coroutine function's result is awaited; a plain function is called on the
        event loop (keep it short: blocking work belongs in an ``async def`` or your own
        ``asyncio.to_thread``).

        Raises:
            ConfigurationError: the handler is not callable.
        """
        types = tuple(EventType(t) for t in event_types)

        def register(handler: H) -> H:
            if not callable(handler):
                raise ConfigurationError(f"webhook handler must be callable, got {handler!r}")
            self._register(types, handler)
            return handler

        return register

    def channel(self, source: str) -> contextlib.AbstractContextManager[None]:
        """[`Gateway.channel`][paygate.gateway.Gateway.channel]: a plain ``with`` block;
        the label holds for the task that entered it."""
        return self._channel(source)

    async def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        """[`Gateway.handle_webhook`][paygate.gateway.Gateway.handle_webhook], awaited."""
        return await self._run(self._handle_webhook(body, headers))

    async def dispatch_pending(self, *, limit: int = 1000) -> DispatchSummary:
        """[`Gateway.dispatch_pending`][paygate.gateway.Gateway.dispatch_pending], awaited."""
        return await self._run(self._dispatch_pending(limit=limit))

    async def pending_facts(
        self, *, payment_id: str | None = None, limit: int | None = None
    ) -> list[Fact]:
        """[`Gateway.pending_facts`][paygate.gateway.Gateway.pending_facts], awaited."""
        return await self._run(self._pending_facts(payment_id=payment_id, limit=limit))

    async def facts(self, payment_id: str) -> list[Fact]:
        """[`Gateway.facts`][paygate.gateway.Gateway.facts], awaited."""
        return await self._run(self._facts(payment_id))

    async def replay(
        self,
        *,
        since: float | Any | None = None,
        payment_id: str | None = None,
        store: Store | None = None,
        dry_run: bool = False,
    ) -> list[WebhookEvent]:
        """[`Gateway.replay`][paygate.gateway.Gateway.replay], awaited."""
        return await self._run(
            self._replay(since=since, payment_id=payment_id, source=store, dry_run=dry_run)
        )


def _other_store(target: Any, method: str) -> Callable[..., Awaitable[Any]]:
    """A method of a store other than the gateway's (``replay(store=...)``), awaited: a
    coroutine method as is, a blocking one in a worker thread."""
    call = getattr(target, method)
    if inspect.iscoroutinefunction(call):
        return call  # type: ignore[no-any-return]

    async def threaded(*args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(call, *args, **kwargs)

    return threaded
