"""AsyncSquareProvider: the Square adapter's async face (``square.AsyncSquare`` over an
``httpx.AsyncClient``), on `.square`'s request builders, translators and error
mapping. Importable as ``paygate.providers.square.AsyncSquareProvider``.
"""

from __future__ import annotations

import operator
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
from square import AsyncSquare
from square.core.api_error import ApiError
from square.core.request_options import RequestOptions

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
from paygate.provider import AsyncBaseProvider, BaseProvider, Proration
from paygate.providers._async_http import (
    check_http_transport,
    new_async_client,
    transport_name,
)
from paygate.providers._flow import run_async as run_flow_async
from paygate.providers._http_faults import httpx_failure
from paygate.providers._square_settings import SquareSettings, load_settings
from paygate.providers._warm import HTTPX_ASYNC, warm_imports
from paygate.providers._window import check_page_size
from paygate.providers.square import (
    LIST_PAGE_MAX,
    PROVIDER,
    Flow,
    R,
    SquareCall,
    SquareFlows,
    SquareProvider,
    _checked,
    _error_from_api,
    _page_dict,
    customer_from_square,
    customer_search_query,
    no_invoice_retry,
    parse_webhook,
)


class AsyncSquareProvider(AsyncBaseProvider):
    """`paygate.provider.AsyncPaymentProvider` on Square: ``square.AsyncSquare``
    over an ``httpx.AsyncClient``.

    The same settings as `SquareProvider`; ``http_client`` (an
    `httpx.AsyncClient`, e.g. with an ``httpx.MockTransport``) replaces the SDK's
    transport, used as given (closed by `aclose` only when the adapter made it);
    ``http_transport`` picks the client the adapter makes without one (``"auto"``, the
    default: aiohttp's connection pool when ``paygate-payments[aiohttp]`` is installed,
    else httpx's; ``"aiohttp"`` or ``"httpx"`` force one; `http_transport` tells which
    one runs, docs/architecture.md why). Requests, keys,
    translation and error mapping are the sync face's (the builders and translators of
    this module); each operation is the sync face's flow (`SquareFlows`), its calls
    awaited (`_run`).
    """

    name = PROVIDER
    capabilities = SquareProvider.capabilities

    def __init__(
        self,
        *,
        http_client: httpx.AsyncClient | None = None,
        http_transport: str = "auto",
        **settings: Any,
    ) -> None:
        self._setup(load_settings(settings), http_client, http_transport)

    @classmethod
    def from_sync(cls, provider: BaseProvider) -> AsyncSquareProvider:
        """The async twin of ``provider`` (its settings; an HTTP client of its own)."""
        if not isinstance(provider, SquareProvider):
            raise ConfigurationError(f"expected a SquareProvider, got {type(provider).__name__}")
        twin = cls.__new__(cls)
        twin._setup(provider.settings, None, "auto")
        return twin

    def _setup(
        self,
        settings: SquareSettings,
        http_client: httpx.AsyncClient | None,
        http_transport: str = "auto",
    ) -> None:
        check_http_transport(http_transport)  # a bad value fails even with a client given
        self.settings = settings
        self.max_retries: int | None = settings.max_retries
        self._owns_http_client = http_client is None
        self._http = http_client or new_async_client(http_transport, timeout=settings.timeout)
        self._client = AsyncSquare(
            base_url=settings.api_base_url,
            token=settings.access_token.get_secret_value(),
            timeout=settings.timeout,
            httpx_client=self._http,
        )
        self._request_options: RequestOptions = {"max_retries": 0}
        # squareup imports each API's modules on first access (~0.6 s of pydantic models):
        # here, at construction, not inside a first request on the event loop
        for api in ("payments", "refunds", "orders", "customers", "subscriptions", "invoices",
                    "disputes"):  # fmt: skip
            getattr(self._client, api)
        getattr(self._client.checkout, "payment_links")  # noqa: B009  # an import, by access
        warm_imports(HTTPX_ASYNC)
        self._flows = SquareFlows(settings)

    def __repr__(self) -> str:
        return (
            f"AsyncSquareProvider(environment={self.settings.environment!r}, "
            f"location_id={self.settings.location_id!r})"
        )

    @property
    def http_transport(self) -> str:
        """What the adapter's requests run on: ``"aiohttp"`` or ``"httpx"`` (a client it
        made), ``"custom"`` (the ``http_client`` passed in)."""
        return transport_name(self._http) if self._owns_http_client else "custom"

    @property
    def client(self) -> AsyncSquare:
        """The underlying ``square.AsyncSquare`` client, for calls paygate does not wrap."""
        return self._client

    async def aclose(self) -> None:
        if self._owns_http_client:
            await self._http.aclose()

    # -- plumbing ------------------------------------------------------------------------------

    async def _call(
        self, operation: str, method: Callable[..., Any], **kwargs: Any
    ) -> dict[str, Any]:
        """One SDK call, retries off, its timeout cut to the retry budget's time left; the
        errors mapped as the sync face maps them."""
        answer = await self._send(operation, method, **kwargs)
        return _checked(operation, answer.dict())

    async def _send(self, operation: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        """One SDK call (retries off, timeout cut to the retry budget), its answer as is."""
        options: RequestOptions = {
            **self._request_options,
            # the SDK hands this to httpx, which takes float seconds (typed int there)
            "timeout_in_seconds": attempt_timeout(self.settings.timeout),
        }
        return await self._guarded(operation, method(**kwargs, request_options=options))

    async def _guarded(self, operation: str, request: Awaitable[Any]) -> Any:
        """Await one request, raising the SDK's and httpx's errors as paygate's."""
        try:
            return await request
        except ApiError as exc:
            raise _error_from_api(operation, exc) from None
        except httpx.InvalidURL:
            raise ValidationError(
                f"Square {operation}: an id in the request cannot be put in a URL"
            ) from None
        except httpx.RequestError as exc:
            raise httpx_failure(PROVIDER, "Square", operation, exc) from None

    async def _list_pages(
        self, operation: str, method: Callable[..., Any], query: dict[str, Any], items: str
    ) -> list[dict[str, Any]]:
        """Every page of a list endpoint (as `SquareProvider._pages`, read to the end): the
        SDK's pager's ``get_next`` awaited inside the error mapping."""
        pager = await self._send(operation, method, **query)
        pages: list[dict[str, Any]] = []
        while pager is not None:
            pages.append(_page_dict(operation, pager, items))
            if not pager.has_next or pager.get_next is None:
                break
            pager = await self._guarded(operation, pager.get_next())
        return pages

    async def _run(self, flow: Flow[R]) -> R:
        """As `SquareProvider._run`, each SDK call awaited."""
        return await run_flow_async(flow, self._answer)

    async def _answer(self, call: SquareCall) -> Any:
        method = operator.attrgetter(call.method)(self._client)
        if call.items is None:
            return await self._call(call.operation, method, **call.kwargs)
        return await self._list_pages(call.operation, method, dict(call.kwargs), call.items)

    # -- payments ------------------------------------------------------------------------------

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
        return await self._run(self._flows.create_payment(
            order_id, amount, payment_method, idempotency_key, customer_id, description,
            metadata, capture, off_session,
        ))  # fmt: skip

    async def get_payment(self, payment_id: str) -> Payment:
        """As `SquareProvider.get_payment`: the payment, then each of its refunds."""
        return await self._run(self._flows.get_payment(payment_id))

    async def get_refund(self, refund_id: str) -> Refund:
        return await self._run(self._flows.get_refund(refund_id))

    async def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment:
        return await self._run(self._flows.capture_payment(payment_id, amount, idempotency_key))

    async def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment:
        return await self._run(self._flows.cancel_payment(payment_id))

    async def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund:
        return await self._run(
            self._flows.refund_payment(payment_id, amount, reason, idempotency_key)
        )

    # -- hosted checkout (payment links) -------------------------------------------------------

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
        return await self._run(self._flows.create_checkout_session(
            order_id, line_items, success_url, idempotency_key, mode, customer_id
        ))  # fmt: skip

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        return await self._run(self._flows.get_checkout_session(session_id))

    async def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        """As `SquareProvider.complete_return`: only the ids are read from the query."""
        return await self._run(self._flows.complete_return(params))

    # -- customers, subscriptions, invoices, disputes ------------------------------------------

    async def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        return await self._run(self._flows.create_customer(email, name, idempotency_key, metadata))

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
        """As `SquareProvider.create_subscription` (trials and quantities are the plan's)."""
        return await self._run(self._flows.create_subscription(
            customer_id, price_id, idempotency_key, metadata, trial_days, trial_end, quantity
        ))  # fmt: skip

    async def get_subscription(self, subscription_id: str) -> Subscription:
        return await self._run(self._flows.get_subscription(subscription_id))

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        """As `SquareProvider.cancel_subscription` (Square cancels at period end)."""
        return await self._run(self._flows.cancel_subscription(subscription_id, at_period_end))

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
        """As `SquareProvider.create_invoice`: order, draft invoice, publish."""
        return await self._run(self._flows.create_invoice(
            customer_id, line_items, idempotency_key, order_id, description, send
        ))  # fmt: skip

    async def get_dispute(self, dispute_id: str) -> Dispute:
        return await self._run(self._flows.get_dispute(dispute_id))

    # -- after the first charge (issue 20): as `SquareProvider`'s, awaited -------------------

    async def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        """As `SquareProvider.list_subscriptions`: SearchSubscriptions, every page."""
        return await self._run(self._flows.list_subscriptions(customer_id))

    async def change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        idempotency_key: str,
    ) -> Subscription:
        """As `SquareProvider.change_subscription`: SwapPlan, ``proration="none"`` only."""
        return await self._run(
            self._flows.change_subscription(subscription_id, price_id, quantity, proration)
        )

    async def pause_subscription(self, subscription_id: str) -> Subscription:
        return await self._run(self._flows.pause_subscription(subscription_id))

    async def resume_subscription(self, subscription_id: str) -> Subscription:
        return await self._run(self._flows.resume_subscription(subscription_id))

    async def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        """As `SquareProvider.undo_cancel_subscription`: delete the scheduled ``CANCEL``."""
        return await self._run(self._flows.undo_cancel_subscription(subscription_id))

    async def retry_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        raise no_invoice_retry()

    async def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        """As `SquareProvider.list_disputes`: this location's, filtered here by payment."""
        return await self._run(self._flows.list_disputes(payment_id))

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """As `SquareProvider.submit_dispute_evidence`: texts, files, then SubmitEvidence
        unless ``submit=False``."""
        return await self._run(self._flows.submit_dispute_evidence(dispute_id, evidence, submit))

    async def accept_dispute(self, dispute_id: str) -> Dispute:
        return await self._run(self._flows.accept_dispute(dispute_id))

    # -- customers and saved cards (issue 19): as `SquareProvider`'s, awaited -----------------

    async def get_customer(self, customer_id: str) -> Customer:
        return await self._run(self._flows.get_customer(customer_id))

    async def update_customer(
        self,
        customer_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        return await self._run(self._flows.update_customer(customer_id, email, name, metadata))

    async def list_customers(
        self, *, email: str | None = None, page_size: int = LIST_PAGE_MAX
    ) -> list[Customer]:
        """ListCustomers, or with ``email`` SearchCustomers on the exact address; every page
        read (the async face answers with a list)."""
        check_page_size(page_size, LIST_PAGE_MAX)
        if email is None:
            pages = await self._list_pages(
                "list_customers", self._client.customers.list, {"limit": page_size}, "customers"
            )
            return [customer_from_square(row) for page in pages for row in page["customers"]]
        query = customer_search_query(email, page_size)
        found: list[Customer] = []
        while True:
            body = await self._call("list_customers", self._client.customers.search, **query)
            found += [customer_from_square(row) for row in body.get("customers") or []]
            cursor = body.get("cursor")
            if not cursor:
                return found
            query = {**query, "cursor": cursor}

    async def delete_customer(self, customer_id: str) -> None:
        await self._run(self._flows.delete_customer(customer_id))

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
        """As `SquareProvider.create_setup`: CreateCard from a Web Payments SDK token."""
        return await self._run(self._flows.create_setup(
            customer_id, idempotency_key, usage, payment_method, verification_token
        ))  # fmt: skip

    async def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        """The customer's enabled cards on file (ListCards)."""
        return await self._run(self._flows.list_payment_methods(customer_id))

    async def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        return await self._run(self._flows.get_payment_method(payment_method_id))

    async def detach_payment_method(self, payment_method_id: str) -> None:
        """DisableCard, as the sync face."""
        await self._run(self._flows.detach_payment_method(payment_method_id))

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """The sync face's verification and parsing (no I/O)."""
        return parse_webhook(self.settings, body, headers)
