"""AsyncStripeProvider: the Stripe adapter's async face (``StripeClient.raw_request_async``
on the SDK's ``HTTPXClient``), running the sync adapter's flows (`.stripe.StripeFlows`:
each operation's requests and translation, written once) with its error mapping. Its own
module so the sync adapter's file stays the sync adapter's; importable as
``paygate.providers.stripe.AsyncStripeProvider``.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import httpx  # noqa: F401  # the SDK's HTTPXClient needs it: missing, the install hint says so
import stripe

from paygate._retry import attempt_timeout
from paygate.errors import ConfigurationError
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
from paygate.provider import AsyncBaseProvider, BaseProvider, Capability, Proration
from paygate.providers._async_http import (
    check_http_transport,
    new_async_client,
    transport_name,
)
from paygate.providers._warm import HTTPX_ASYNC, warm_imports
from paygate.providers.stripe import (
    CUSTOMERS_MAX_PAGE,
    PROVIDER,
    Flow,
    R,
    StripeCall,
    StripeProvider,
    StripeSettings,
    _answer,
    _failed,
    _flows,
    _load_settings,
    _raw_answer,
    _raw_options,
    _service,
    customer_list_query,
    parse_webhook,
)


class _DeadlineHTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client for the ``*_async`` methods, with the same per-request
    deadline as `_DeadlineRequestsClient` (the SDK reads ``self._timeout`` on every
    request), an ``httpx.AsyncClient`` of the caller's choosing (a ``MockTransport`` in
    tests, a shared pool) or else paygate's (`._async_http`: aiohttp's pool when installed,
    in place of the one the SDK builds on httpx's), and the form body handed to httpx as
    ``content``: the SDK passes it as ``data=<str>``, which httpx deprecates."""

    def __init__(
        self, *, timeout: float, http_client: Any = None, http_transport: object = "auto"
    ) -> None:
        super().__init__(timeout=timeout)
        #: a client passed in stays its owner's to close (as for Square and PayPal)
        self.owns_client = http_client is None
        if http_client is None:
            # the SDK's own TLS settings (its CA bundle), on paygate's transport; the
            # client the SDK just made has opened nothing yet, so it is simply dropped
            verify: ssl.SSLContext | bool = False
            if self._verify_ssl_certs:
                verify = ssl.create_default_context(cafile=stripe.ca_bundle_path)
            http_client = new_async_client(http_transport, verify=verify)
        self._client_async = http_client

    @property
    def _timeout(self) -> float:
        return attempt_timeout(self._paygate_timeout)

    @_timeout.setter
    def _timeout(self, value: float) -> None:
        self._paygate_timeout = value

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> list[Any]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        body = kwargs.pop("data", None)
        if body:
            kwargs["content"] = body
        return [args, kwargs]


#: what the SDK imports on a first SetupIntent (the one operation on its typed service),
#: and httpx's backend
_ASYNC_WARM_IMPORTS: Final = ("stripe._object_classes", "stripe._setup_intent", *HTTPX_ASYNC)


class AsyncStripeProvider(AsyncBaseProvider):
    """`paygate.provider.AsyncPaymentProvider` on Stripe: ``StripeClient.raw_request_async``
    over the SDK's ``HTTPXClient`` (no ``StripeObject`` built; a SetupIntent's creation on
    the typed ``setup_intents.create_async``, as on the sync face).

    The same settings as `StripeProvider`, plus ``http_client`` (an
    ``httpx.AsyncClient``, e.g. with an ``httpx.MockTransport``; used as given and left
    open by `aclose`, which closes only a client the adapter made) and ``http_transport``
    (the client the adapter makes without one: ``"auto"``, the default, runs on aiohttp's
    connection pool when ``paygate-payments[aiohttp]`` is installed, else on httpx's;
    ``"aiohttp"`` or ``"httpx"`` force one; `http_transport` tells which one runs, and
    docs/architecture.md why). Each operation is the sync face's flow
    (`.stripe.StripeFlows`: requests, idempotency keys, steps, translation), run by `_run`
    with each request awaited; the error mapping is the sync face's too.
    """

    name = PROVIDER
    capabilities = frozenset(Capability)

    def __init__(
        self, *, http_client: Any = None, http_transport: str = "auto", **settings: Any
    ) -> None:
        self._setup(_load_settings(settings), http_client, http_transport)

    @classmethod
    def from_sync(cls, provider: BaseProvider) -> AsyncStripeProvider:
        """The async twin of ``provider`` (its settings; a client of its own)."""
        if not isinstance(provider, StripeProvider):
            raise ConfigurationError(f"expected a StripeProvider, got {type(provider).__name__}")
        twin = cls.__new__(cls)
        twin._setup(provider.settings, None, "auto")
        twin._clock = provider._clock
        return twin

    def _setup(
        self, settings: StripeSettings, http_client: Any, http_transport: str = "auto"
    ) -> None:
        check_http_transport(http_transport)  # a bad value fails even with a client given
        self.settings = settings
        self.max_retries: int | None = settings.max_retries
        self._secrets = settings.secrets_bytes
        self._clock: Callable[[], float] = time.time
        base_addresses: dict[str, str] = {}
        if settings.base_url:
            base_addresses = {"api": settings.base_url, "files": settings.base_url}
        self._http = _DeadlineHTTPXClient(
            timeout=settings.timeout, http_client=http_client, http_transport=http_transport
        )
        self._client = stripe.StripeClient(
            settings.api_key.get_secret_value(),
            stripe_version=settings.api_version,
            base_addresses=base_addresses,  # type: ignore[arg-type]
            max_network_retries=0,  # the Gateway's RetryPolicy is the one retry layer
            http_client=self._http,
        )
        self._v1 = self._client.v1
        warm_imports(_ASYNC_WARM_IMPORTS)

    @property
    def http_transport(self) -> str:
        """What the adapter's requests run on: ``"aiohttp"`` or ``"httpx"`` (a client it
        made), ``"custom"`` (the ``http_client`` passed in)."""
        return transport_name(self._http._client_async) if self._http.owns_client else "custom"

    def __repr__(self) -> str:
        key = self.settings.api_key.get_secret_value()
        mode = "live" if "_live_" in key[:8] else "test"
        where = f", base_url={self.settings.base_url!r}" if self.settings.base_url else ""
        return f"AsyncStripeProvider(mode={mode}{where})"

    async def _run(self, flow: Flow[R]) -> R:
        """As `StripeProvider._run`, each request awaited (``raw_request_async``)."""
        try:
            call = next(flow)
            while True:
                call = flow.send(await self._send(call))
        except StopIteration as done:
            result: R = done.value
            return result

    async def _send(self, call: StripeCall) -> dict[str, Any]:
        if call.service is None:
            return await self._raw_async(call.operation, call.method, call.path, call.params,
                                         call.idempotency_key, upload=call.upload)  # fmt: skip
        method, kwargs = _service(self._v1, call, "_async")
        try:
            result = await method(**kwargs)
        except stripe.StripeError as exc:
            raise _failed(call.operation, exc) from None
        return _answer(call.operation, result)

    async def _raw_async(
        self, operation: str, method: str, path: str, params: Mapping[str, Any],
        idempotency_key: str | None = None, *, upload: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """As `StripeProvider._raw`, on ``StripeClient.raw_request_async``."""
        options = _raw_options(operation, params, idempotency_key, upload)
        try:
            response = await self._client.raw_request_async(method, path, **params, **options)
        except stripe.StripeError as exc:
            raise _failed(operation, exc) from None
        return _raw_answer(operation, response)

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
        off_session: bool = False,
    ) -> Payment:
        return await self._run(_flows.create_payment(
            order_id, amount, payment_method, idempotency_key, customer_id, description,
            metadata, capture, return_url, off_session,
        ))  # fmt: skip

    async def get_payment(self, payment_id: str) -> Payment:
        return await self._run(_flows.get_payment(payment_id))

    async def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment:
        return await self._run(_flows.capture_payment(payment_id, amount, idempotency_key))

    async def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment:
        return await self._run(_flows.cancel_payment(payment_id, idempotency_key))

    async def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund:
        return await self._run(_flows.refund_payment(payment_id, amount, reason, idempotency_key))

    async def get_refund(self, refund_id: str) -> Refund:
        return await self._run(_flows.get_refund(refund_id))

    async def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        return await self._run(_flows.complete_return(params))

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
    ) -> CheckoutSession:
        return await self._run(_flows.create_checkout_session(
            order_id, line_items, success_url, cancel_url, idempotency_key, mode, customer_id,
            price_id, metadata,
        ))  # fmt: skip

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        return await self._run(_flows.get_checkout_session(session_id))

    async def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        return await self._run(_flows.create_customer(email, name, idempotency_key, metadata))

    async def create_subscription(
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
        return await self._run(_flows.create_subscription(
            customer_id, price_id, idempotency_key, metadata, trial_days, trial_end, quantity
        ))  # fmt: skip

    async def get_subscription(self, subscription_id: str) -> Subscription:
        return await self._run(_flows.get_subscription(subscription_id))

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        return await self._run(_flows.cancel_subscription(subscription_id, at_period_end))

    async def create_invoice(
        self,
        *,
        customer_id: str,
        line_items: Sequence[LineItem],
        idempotency_key: str,
        order_id: str | None = None,
        description: str | None = None,
        send: bool = False,
    ) -> Invoice:
        return await self._run(_flows.create_invoice(
            customer_id, line_items, idempotency_key, order_id, description, send,
            self.settings.api_version,
        ))  # fmt: skip

    async def get_dispute(self, dispute_id: str) -> Dispute:
        return await self._run(_flows.get_dispute(dispute_id))

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify ``Stripe-Signature`` over the raw body, then parse it once (no I/O)."""
        return parse_webhook(self.settings, self._secrets, self._clock(), body, headers)

    async def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        return await self._run(_flows.list_subscriptions(customer_id))

    async def change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        idempotency_key: str,
    ) -> Subscription:
        return await self._run(_flows.change_subscription(
            subscription_id, price_id, quantity, proration, idempotency_key
        ))  # fmt: skip

    async def pause_subscription(self, subscription_id: str) -> Subscription:
        return await self._run(_flows.update_subscription(
            "pause_subscription", subscription_id, {"pause_collection": {"behavior": "void"}}
        ))  # fmt: skip

    async def resume_subscription(self, subscription_id: str) -> Subscription:
        return await self._run(_flows.update_subscription(
            "resume_subscription", subscription_id, {"pause_collection": ""}
        ))  # fmt: skip

    async def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        return await self._run(_flows.update_subscription(
            "undo_cancel_subscription", subscription_id, {"cancel_at_period_end": False}
        ))  # fmt: skip

    async def retry_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        return await self._run(
            _flows.retry_invoice(invoice_id, idempotency_key, self.settings.api_version)
        )

    async def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        return await self._run(_flows.list_disputes(payment_id))

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        return await self._run(_flows.submit_dispute_evidence(dispute_id, evidence, submit))

    async def accept_dispute(self, dispute_id: str) -> Dispute:
        return await self._run(_flows.accept_dispute(dispute_id))

    async def get_customer(self, customer_id: str) -> Customer:
        return await self._run(_flows.get_customer(customer_id))

    async def update_customer(
        self,
        customer_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        return await self._run(_flows.update_customer(customer_id, email, name, metadata))

    async def list_customers(
        self, *, email: str | None = None, page_size: int = CUSTOMERS_MAX_PAGE
    ) -> list[Customer]:
        """Every customer (newest first), all pages read (the async face answers with a
        list)."""
        query: dict[str, Any] | None = customer_list_query(email, page_size)
        customers: list[Customer] = []
        while query is not None:
            page, query = await self._run(_flows.customer_page(query))
            customers.extend(page)
        return customers

    async def delete_customer(self, customer_id: str) -> None:
        await self._run(_flows.delete_customer(customer_id))

    async def create_setup(
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
        return await self._run(_flows.create_setup(
            customer_id, idempotency_key, return_url, cancel_url, usage, payment_method,
            verification_token,
        ))  # fmt: skip

    async def complete_setup(
        self, params: Mapping[str, str], *, idempotency_key: str
    ) -> SetupSession:
        return await self._run(_flows.complete_setup(params))

    async def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        return await self._run(_flows.list_payment_methods(customer_id))

    async def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        return await self._run(_flows.get_payment_method(payment_method_id))

    async def set_default_payment_method(
        self, customer_id: str, payment_method_id: str
    ) -> Customer:
        return await self._run(_flows.set_default_payment_method(customer_id, payment_method_id))

    async def detach_payment_method(self, payment_method_id: str) -> None:
        await self._run(_flows.detach_payment_method(payment_method_id))

    async def aclose(self) -> None:
        """Close the httpx client the adapter made (one passed in stays open)."""
        if self._http.owns_client:
            await self._http.close_async()  # type: ignore[no-untyped-call]  # untyped in the SDK
