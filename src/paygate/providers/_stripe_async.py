"""AsyncStripeProvider: the Stripe adapter's async face (``StripeClient``'s ``*_async`` methods
on the SDK's ``HTTPXClient``), on `.stripe`'s request builders, translators and error
mapping. Its own module so the sync adapter's file stays the sync adapter's; importable as
``paygate.providers.stripe.AsyncStripeProvider``.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import httpx  # noqa: F401  # the SDK's HTTPXClient needs it: missing, the install hint says so
import stripe

from paygate._retry import attempt_timeout
from paygate.errors import ConfigurationError, ValidationError
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
    PAYMENT_EXPAND,
    PROVIDER,
    StripeProvider,
    StripeSettings,
    _answer,
    _change_item,
    _failed,
    _load_settings,
    capture_params,
    check_evidence,
    checkout_from_stripe,
    checkout_params,
    customer_from_stripe,
    customer_list_query,
    customer_params,
    customer_update_params,
    default_method_params,
    dispute_from_stripe,
    dispute_list_params,
    evidence_upload_params,
    invoice_from_stripe,
    invoice_params,
    invoice_read_params,
    live_customer_from_stripe,
    parse_webhook,
    payment_from_stripe,
    payment_intent_params,
    payment_method_from_stripe,
    refund_from_stripe,
    refund_params,
    setup_from_checkout,
    setup_from_stripe,
    setup_request,
    single_item_id,
    stripe_evidence_fields,
    stripe_evidence_files,
    subscription_from_stripe,
    subscription_list_params,
    subscription_params,
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


#: the resource classes the SDK imports on a first answer holding one, and httpx's backend
_ASYNC_WARM_IMPORTS: Final = (
    "stripe._object_classes",
    "stripe._list_object",
    "stripe._payment_intent",
    "stripe._charge",
    "stripe._refund",
    "stripe._dispute",
    "stripe._customer",
    "stripe._subscription",
    "stripe._invoice",
    "stripe._invoice_item",
    "stripe.checkout._session",
    *HTTPX_ASYNC,
)


class AsyncStripeProvider(AsyncBaseProvider):
    """`paygate.provider.AsyncPaymentProvider` on Stripe: the ``*_async`` methods of
    ``StripeClient`` over the SDK's ``HTTPXClient``.

    The same settings as `StripeProvider`, plus ``http_client`` (an
    ``httpx.AsyncClient``, e.g. with an ``httpx.MockTransport``; used as given and left
    open by `aclose`, which closes only a client the adapter made) and ``http_transport``
    (the client the adapter makes without one: ``"auto"``, the default, runs on aiohttp's
    connection pool when ``paygate-payments[aiohttp]`` is installed, else on httpx's;
    ``"aiohttp"`` or ``"httpx"`` force one; `http_transport` tells which one runs, and
    docs/architecture.md why). The same parameters,
    idempotency keys (``_stripe_key``), translation and error mapping as the sync face: the
    request builders and translators above are shared; only the awaiting differs.
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

    async def _call(self, operation: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            result = await fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _failed(operation, exc) from None
        return _answer(operation, result)

    _options = staticmethod(StripeProvider._options)

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
        params = payment_intent_params(
            order_id, amount, payment_method, customer_id, description, metadata, capture,
            return_url,
            off_session=off_session,
        )  # fmt: skip
        data = await self._call(
            "create_payment",
            self._v1.payment_intents.create_async,
            params=params,
            options=self._options(idempotency_key),
        )
        return payment_from_stripe(data)

    async def get_payment(self, payment_id: str) -> Payment:
        """As `StripeProvider.get_payment`: one request, more only where needed."""
        data = await self._call(
            "get_payment",
            self._v1.payment_intents.retrieve_async,
            payment_id,
            params={"expand": list(PAYMENT_EXPAND)},
        )
        charge = data.get("latest_charge")
        refunds: list[dict[str, Any]] | None = None
        disputes: list[dict[str, Any]] | None = None
        if isinstance(charge, Mapping):
            listing = charge.get("refunds")
            if isinstance(listing, Mapping) and listing.get("has_more"):
                refunds = await self._list_all(
                    "get_payment", self._v1.refunds.list_async, charge=charge["id"]
                )
            if charge.get("disputed"):
                disputes = await self._list_all(
                    "get_payment", self._v1.disputes.list_async, payment_intent=data["id"]
                )
        return payment_from_stripe(data, refunds=refunds, disputes=disputes)

    async def _list_all(
        self, operation: str, method: Callable[..., Any], **params: Any
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {**params, "limit": 100}
        while True:
            page = await self._call(operation, method, params=query)
            rows: list[dict[str, Any]] = page.get("data") or []
            items.extend(rows)
            if not page.get("has_more") or not rows:
                return items
            query = {**query, "starting_after": rows[-1]["id"]}

    async def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment:
        data = await self._call(
            "capture_payment",
            self._v1.payment_intents.capture_async,
            payment_id,
            params=capture_params(amount),
            options=self._options(idempotency_key),
        )
        return payment_from_stripe(data)

    async def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment:
        data = await self._call(
            "cancel_payment",
            self._v1.payment_intents.cancel_async,
            payment_id,
            options=self._options(idempotency_key),
        )
        return payment_from_stripe(data)

    async def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund:
        data = await self._call(
            "refund_payment",
            self._v1.refunds.create_async,
            params=refund_params(payment_id, amount, reason),
            options=self._options(idempotency_key),
        )
        return refund_from_stripe(data)

    async def get_refund(self, refund_id: str) -> Refund:
        data = await self._call("get_refund", self._v1.refunds.retrieve_async, refund_id)
        return refund_from_stripe(data)

    async def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        """As `StripeProvider.complete_return`: only ids are read from the query."""
        session_id = params.get("session_id")
        payment_id = params.get("payment_intent")
        if session_id:
            session = await self.get_checkout_session(session_id)
            if not session.payment_id:
                raise ValidationError(
                    f"checkout session {session_id} has no payment (mode {session.mode})"
                )
            payment_id = session.payment_id
        if not payment_id:
            raise ValidationError("return parameters carry neither session_id nor payment_intent")
        return await self.get_payment(payment_id)

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
        params = checkout_params(
            order_id, line_items, success_url, cancel_url, mode, customer_id, price_id, metadata
        )
        data = await self._call(
            "create_checkout_session",
            self._v1.checkout.sessions.create_async,
            params=params,
            options=self._options(idempotency_key),
        )
        return checkout_from_stripe(data)

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        data = await self._call(
            "get_checkout_session", self._v1.checkout.sessions.retrieve_async, session_id
        )
        return checkout_from_stripe(data)

    async def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        data = await self._call(
            "create_customer",
            self._v1.customers.create_async,
            params=customer_params(email, name, metadata),
            options=self._options(idempotency_key),
        )
        return customer_from_stripe(data)

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
        params = subscription_params(
            customer_id, price_id, metadata, quantity=quantity, trial_days=trial_days,
            trial_end=trial_end,
        )  # fmt: skip
        data = await self._call(
            "create_subscription",
            self._v1.subscriptions.create_async,
            params=params,
            options=self._options(idempotency_key),
        )
        return subscription_from_stripe(data)

    async def get_subscription(self, subscription_id: str) -> Subscription:
        data = await self._call(
            "get_subscription", self._v1.subscriptions.retrieve_async, subscription_id
        )
        return subscription_from_stripe(data)

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        if at_period_end:
            data = await self._call(
                "cancel_subscription",
                self._v1.subscriptions.update_async,
                subscription_id,
                params={"cancel_at_period_end": True},
            )
        else:
            data = await self._call(
                "cancel_subscription", self._v1.subscriptions.cancel_async, subscription_id
            )
        return subscription_from_stripe(data)

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
        """As `StripeProvider.create_invoice`, with the same per-step keys."""
        params, items = invoice_params(customer_id, line_items, order_id, description, send)
        draft = await self._call(
            "create_invoice",
            self._v1.invoices.create_async,
            params=params,
            options=self._options(f"{idempotency_key}:invoice"),
        )
        for index, item in enumerate(items):
            await self._call(
                "create_invoice_item",
                self._v1.invoice_items.create_async,
                params={**item, "invoice": draft["id"]},
                options=self._options(f"{idempotency_key}:item:{index}"),
            )
        await self._call(
            "finalize_invoice",
            self._v1.invoices.finalize_invoice_async,
            draft["id"],
            options=self._options(f"{idempotency_key}:finalize"),
        )
        if send:
            data = await self._call(
                "send_invoice",
                self._v1.invoices.send_invoice_async,
                draft["id"],
                params=invoice_read_params(self.settings.api_version),
                options=self._options(f"{idempotency_key}:send"),
            )
        else:
            data = await self._call(
                "pay_invoice",
                self._v1.invoices.pay_async,
                draft["id"],
                params=invoice_read_params(self.settings.api_version),
                options=self._options(f"{idempotency_key}:pay"),
            )
        return invoice_from_stripe(data)

    async def get_dispute(self, dispute_id: str) -> Dispute:
        data = await self._call("get_dispute", self._v1.disputes.retrieve_async, dispute_id)
        return dispute_from_stripe(data)

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify ``Stripe-Signature`` over the raw body, then parse it once (no I/O)."""
        return parse_webhook(self.settings, self._secrets, self._clock(), body, headers)

    # -- after the first charge (issue 20): as `StripeProvider`'s, awaited -------------------

    async def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        """As `StripeProvider.list_subscriptions`: every status, the first 100."""
        page = await self._call(
            "list_subscriptions",
            self._v1.subscriptions.list_async,
            params=subscription_list_params(customer_id),
        )
        return [subscription_from_stripe(sub) for sub in page.get("data") or ()]

    async def change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        idempotency_key: str,
    ) -> Subscription:
        """As `StripeProvider.change_subscription`."""
        item = _change_item(price_id, quantity, proration)
        current = await self._call(
            "get_subscription", self._v1.subscriptions.retrieve_async, subscription_id
        )
        item["id"] = single_item_id(current, subscription_id)
        data = await self._call(
            "change_subscription",
            self._v1.subscriptions.update_async,
            subscription_id,
            params={"items": [item], "proration_behavior": proration},
            options=self._options(idempotency_key),
        )
        return subscription_from_stripe(data)

    async def _update_subscription(
        self, operation: str, subscription_id: str, params: dict[str, Any]
    ) -> Subscription:
        data = await self._call(
            operation, self._v1.subscriptions.update_async, subscription_id, params=params
        )
        return subscription_from_stripe(data)

    async def pause_subscription(self, subscription_id: str) -> Subscription:
        """As `StripeProvider.pause_subscription` (``pause_collection[behavior]=void``)."""
        return await self._update_subscription(
            "pause_subscription", subscription_id, {"pause_collection": {"behavior": "void"}}
        )

    async def resume_subscription(self, subscription_id: str) -> Subscription:
        return await self._update_subscription(
            "resume_subscription", subscription_id, {"pause_collection": ""}
        )

    async def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        return await self._update_subscription(
            "undo_cancel_subscription", subscription_id, {"cancel_at_period_end": False}
        )

    async def retry_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        """As `StripeProvider.retry_invoice` (``POST /v1/invoices/{id}/pay``)."""
        data = await self._call(
            "retry_invoice",
            self._v1.invoices.pay_async,
            invoice_id,
            params=invoice_read_params(self.settings.api_version),
            options=self._options(idempotency_key),
        )
        return invoice_from_stripe(data)

    async def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        page = await self._call(
            "list_disputes", self._v1.disputes.list_async, params=dispute_list_params(payment_id)
        )
        return [dispute_from_stripe(d) for d in page.get("data") or ()]

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """As `StripeProvider.submit_dispute_evidence`: each file uploaded, then the
        dispute's ``evidence`` updated with ``submit``."""
        check_evidence(evidence)
        fields = stripe_evidence_fields(evidence)
        for field_name, evidence_file in stripe_evidence_files(evidence):
            uploaded = await self._call(
                "upload_dispute_evidence",
                self._v1.files.create_async,
                params=evidence_upload_params(evidence_file),
            )
            fields[field_name] = uploaded["id"]
        data = await self._call(
            "submit_dispute_evidence",
            self._v1.disputes.update_async,
            dispute_id,
            params={"evidence": fields, "submit": bool(submit)},
        )
        return dispute_from_stripe(data)

    async def accept_dispute(self, dispute_id: str) -> Dispute:
        data = await self._call("accept_dispute", self._v1.disputes.close_async, dispute_id)
        return dispute_from_stripe(data)

    # -- customers and saved payment methods (issue 19): as `StripeProvider`'s, awaited -------

    async def get_customer(self, customer_id: str) -> Customer:
        data = await self._call("get_customer", self._v1.customers.retrieve_async, customer_id)
        return live_customer_from_stripe(data, customer_id)

    async def update_customer(
        self,
        customer_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        data = await self._call(
            "update_customer",
            self._v1.customers.update_async,
            customer_id,
            params=customer_update_params(email, name, metadata),
        )
        return customer_from_stripe(data)

    async def list_customers(
        self, *, email: str | None = None, page_size: int = CUSTOMERS_MAX_PAGE
    ) -> list[Customer]:
        """Every customer (newest first), all pages read (the async face answers with a
        list)."""
        query = customer_list_query(email, page_size)
        customers: list[Customer] = []
        while True:
            page = await self._call("list_customers", self._v1.customers.list_async, params=query)
            rows: list[dict[str, Any]] = page.get("data") or []
            customers.extend(customer_from_stripe(row) for row in rows)
            if not page.get("has_more") or not rows:
                return customers
            query = {**query, "starting_after": rows[-1]["id"]}

    async def delete_customer(self, customer_id: str) -> None:
        await self._call("delete_customer", self._v1.customers.delete_async, customer_id)

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
        """As `StripeProvider.create_setup`: a SetupIntent, or a Checkout Session in setup
        mode."""
        kind, params = setup_request(
            customer_id, return_url, cancel_url, usage, payment_method, verification_token
        )
        if kind == "setup_intent":
            data = await self._call(
                "create_setup",
                self._v1.setup_intents.create_async,
                params=params,
                options=self._options(idempotency_key),
            )
            return setup_from_stripe(data)
        data = await self._call(
            "create_setup",
            self._v1.checkout.sessions.create_async,
            params=params,
            options=self._options(idempotency_key),
        )
        return setup_from_checkout(data)

    async def complete_setup(
        self, params: Mapping[str, str], *, idempotency_key: str
    ) -> SetupSession:
        """As `StripeProvider.complete_setup`: only the ids are read."""
        session_id = params.get("session_id")
        if session_id:
            data = await self._call(
                "complete_setup",
                self._v1.checkout.sessions.retrieve_async,
                session_id,
                params={"expand": ["setup_intent"]},
            )
            return setup_from_checkout(data)
        setup_id = params.get("setup_intent")
        if not setup_id:
            raise ValidationError("return parameters carry neither session_id nor setup_intent")
        return setup_from_stripe(
            await self._call("complete_setup", self._v1.setup_intents.retrieve_async, setup_id)
        )

    async def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        rows = await self._list_all(
            "list_payment_methods",
            functools.partial(self._v1.customers.payment_methods.list_async, customer_id),
        )
        return [payment_method_from_stripe(row) for row in rows]

    async def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        data = await self._call(
            "get_payment_method", self._v1.payment_methods.retrieve_async, payment_method_id
        )
        return payment_method_from_stripe(data)

    async def set_default_payment_method(
        self, customer_id: str, payment_method_id: str
    ) -> Customer:
        data = await self._call(
            "set_default_payment_method",
            self._v1.customers.update_async,
            customer_id,
            params=default_method_params(payment_method_id),
        )
        return customer_from_stripe(data)

    async def detach_payment_method(self, payment_method_id: str) -> None:
        await self._call(
            "detach_payment_method", self._v1.payment_methods.detach_async, payment_method_id
        )

    async def aclose(self) -> None:
        """Close the httpx client the adapter made (one passed in stays open)."""
        if self._http.owns_client:
            await self._http.close_async()  # type: ignore[no-untyped-call]  # untyped in the SDK
