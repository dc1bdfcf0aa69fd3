"""AsyncSquareProvider: the Square adapter's async face (``square.AsyncSquare`` over an
``httpx.AsyncClient``), on `.square`'s request builders, translators and error
mapping. Importable as ``paygate.providers.square.AsyncSquareProvider``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx
from square import AsyncSquare
from square.core.api_error import ApiError
from square.core.request_options import RequestOptions

from paygate._observe import fields
from paygate._retry import attempt_timeout
from paygate.errors import ConfigurationError, NotSupported, ProviderError, ValidationError
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
    SubscriptionStatus,
    WebhookEvent,
)
from paygate.money import Money
from paygate.provider import AsyncBaseProvider, BaseProvider, Proration
from paygate.providers._async_http import (
    check_http_transport,
    new_async_client,
    transport_name,
)
from paygate.providers._http_faults import httpx_failure
from paygate.providers._square_settings import SquareSettings, load_settings
from paygate.providers._warm import HTTPX_ASYNC, warm_imports
from paygate.providers._window import check_page_size
from paygate.providers.square import (
    LIST_PAGE_MAX,
    ORDER_NOTE_PREFIX,
    PAUSE_REASON,
    PROVIDER,
    SquareProvider,
    _check_reference,
    _checked,
    _error_from_api,
    _line_items_total,
    _money_param,
    _page_dict,
    _paid_payment_id,
    _partial_capture,
    _replace_total,
    _with_metadata,
    _with_order_reference,
    cancel_action_ids,
    card_request,
    check_plan_only,
    checked_swap,
    checkout_from_square,
    customer_from_square,
    customer_request,
    customer_search_query,
    customer_update_request,
    dispute_from_square,
    evidence_requests,
    invoice_from_square,
    invoice_request,
    logger,
    no_invoice_retry,
    parse_webhook,
    payment_from_square,
    payment_method_from_square,
    payment_request,
    refund_from_square,
    refund_request,
    setup_from_card,
    square_idempotency_key,
    square_order,
    subscription_from_square,
    subscription_request,
    subscription_search_query,
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
    this module); each operation makes the same calls in the same order.
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

    async def _payment_data(self, payment_id: str) -> dict[str, Any]:
        body = await self._call("get_payment", self._client.payments.get, payment_id=payment_id)
        payment: dict[str, Any] = body["payment"]
        return payment

    async def _get_order(self, square_order_id: str) -> dict[str, Any]:
        body = await self._call("get_order", self._client.orders.get, order_id=square_order_id)
        order: dict[str, Any] = body["order"]
        return order

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
        kwargs = payment_request(
            self.settings.location_id, order_id, amount, payment_method, idempotency_key,
            customer_id, description, capture,
            off_session=off_session,
        )  # fmt: skip
        body = await self._call("create_payment", self._client.payments.create, **kwargs)
        payment = payment_from_square(body["payment"], order_id=order_id)
        return _with_metadata(payment, metadata)

    async def get_payment(self, payment_id: str) -> Payment:
        """As `SquareProvider.get_payment`: the payment, then each of its refunds."""
        data = await self._payment_data(payment_id)
        refunds = [
            (await self._call("get_payment", self._client.refunds.get, refund_id=refund_id))[
                "refund"
            ]
            for refund_id in data.get("refund_ids") or []
            if isinstance(refund_id, str) and refund_id
        ]
        return payment_from_square(data, refunds=refunds)

    async def get_refund(self, refund_id: str) -> Refund:
        body = await self._call("get_refund", self._client.refunds.get, refund_id=refund_id)
        return refund_from_square(body["refund"])

    async def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment:
        if amount is not None:
            current = payment_from_square(await self._payment_data(payment_id))
            if _partial_capture(current, amount):
                await self._call(
                    "capture_payment",
                    self._client.payments.update,
                    payment_id=payment_id,
                    idempotency_key=square_idempotency_key(idempotency_key, part="update"),
                    payment={"amount_money": _money_param(amount)},
                )
        return await self._settle(
            payment_id, "capture_payment", self._client.payments.complete, "COMPLETED"
        )

    async def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment:
        return await self._settle(
            payment_id, "cancel_payment", self._client.payments.cancel, "CANCELED"
        )

    async def _settle(
        self, payment_id: str, operation: str, call: Callable[..., Any], done: str
    ) -> Payment:
        """As `SquareProvider._settle`: a refused repeat of a settled payment reads it."""
        try:
            body = await self._call(operation, call, payment_id=payment_id)
        except ProviderError as exc:
            if exc.retryable:
                raise
            current = await self._payment_data(payment_id)
            if current.get("status") != done:
                raise
            return payment_from_square(current)
        return payment_from_square(body["payment"])

    async def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund:
        payment = payment_from_square(await self._payment_data(payment_id))
        kwargs = refund_request(payment, amount, reason, idempotency_key)
        body = await self._call("refund_payment", self._client.refunds.refund_payment, **kwargs)
        return refund_from_square(body["refund"], order_id=payment.order_id)

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
        if mode != "payment":
            raise NotSupported(
                "Square payment links are created for payments here; create subscriptions "
                "with create_subscription",
                provider=PROVIDER,
                code="not_supported",
            )
        _check_reference(order_id)
        order = square_order(self.settings.location_id, order_id, line_items, customer_id)
        total = _line_items_total(line_items)
        body = await self._call(
            "create_checkout_session",
            self._client.checkout.payment_links.create,
            idempotency_key=square_idempotency_key(idempotency_key),
            order=order,
            checkout_options={"redirect_url": success_url},
            payment_note=f"{ORDER_NOTE_PREFIX}{order_id}",
        )
        related = (body.get("related_resources") or {}).get("orders") or []
        session = checkout_from_square(
            body["payment_link"], related[0] if related else None, order_id=order_id
        )
        if session.amount_total is None:
            session = _replace_total(session, total)
        return session

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        body = await self._call(
            "get_checkout_session", self._client.checkout.payment_links.get, id=session_id
        )
        link = body["payment_link"]
        order = await self._get_order(link["order_id"]) if link.get("order_id") else None
        return checkout_from_square(link, order)

    async def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        """As `SquareProvider.complete_return`: only the ids are read from the query."""
        payment_id = params.get("payment_id") or params.get("paymentId")
        if payment_id:
            return await self.get_payment(payment_id)
        square_order_id = params.get("orderId") or params.get("transactionId")
        if not square_order_id and params.get("checkoutId"):
            body = await self._call(
                "complete_return",
                self._client.checkout.payment_links.get,
                id=params["checkoutId"],
            )
            square_order_id = body["payment_link"].get("order_id")
        if not square_order_id:
            raise ValidationError(
                "Square return without orderId, transactionId, checkoutId or payment_id "
                "in the query"
            )
        order = await self._get_order(square_order_id)
        payment = await self.get_payment(_paid_payment_id(square_order_id, order))
        return _with_order_reference(payment, order)

    # -- customers, subscriptions, invoices, disputes ------------------------------------------

    async def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        kwargs = customer_request(email, name, metadata, idempotency_key)
        body = await self._call("create_customer", self._client.customers.create, **kwargs)
        return customer_from_square(body["customer"])

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
        check_plan_only(trial_days, trial_end, quantity)
        kwargs = subscription_request(
            self.settings.location_id, customer_id, price_id, metadata, idempotency_key
        )
        body = await self._call("create_subscription", self._client.subscriptions.create, **kwargs)
        return subscription_from_square(body["subscription"])

    async def get_subscription(self, subscription_id: str) -> Subscription:
        body = await self._call(
            "get_subscription", self._client.subscriptions.get, subscription_id=subscription_id
        )
        return subscription_from_square(body["subscription"])

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        """As `SquareProvider.cancel_subscription` (Square cancels at period end)."""
        body = await self._call(
            "cancel_subscription",
            self._client.subscriptions.cancel,
            subscription_id=subscription_id,
        )
        subscription = subscription_from_square(body["subscription"])
        if not at_period_end and subscription.status is not SubscriptionStatus.CANCELED:
            logger.warning(
                "square subscription %s: cancel scheduled for the end of the billing period "
                "(Square has no immediate cancel)",
                subscription_id,
                extra=fields(provider="square", operation="cancel_subscription"),
            )
        return subscription

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
        if order_id is not None:
            _check_reference(order_id)
        total = _line_items_total(line_items)
        order = square_order(self.settings.location_id, order_id, line_items, customer_id)
        created_order = (
            await self._call(
                "create_invoice",
                self._client.orders.create,
                order=order,
                idempotency_key=square_idempotency_key(idempotency_key, part="order"),
            )
        )["order"]
        invoice = invoice_request(self.settings, created_order["id"], customer_id, description)
        body = await self._call(
            "create_invoice",
            self._client.invoices.create,
            invoice=invoice,
            idempotency_key=square_idempotency_key(idempotency_key, part="invoice"),
        )
        created = body["invoice"]
        if send:
            body = await self._call(
                "create_invoice",
                self._client.invoices.publish,
                invoice_id=created["id"],
                version=created.get("version", 0),
                idempotency_key=square_idempotency_key(idempotency_key, part="publish"),
            )
            created = body["invoice"]
        return invoice_from_square(created, order_id=order_id, fallback_amount=total)

    async def get_dispute(self, dispute_id: str) -> Dispute:
        body = await self._call("get_dispute", self._client.disputes.get, dispute_id=dispute_id)
        return dispute_from_square(body["dispute"])

    # -- after the first charge (issue 20): as `SquareProvider`'s, awaited -------------------

    async def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        """As `SquareProvider.list_subscriptions`: SearchSubscriptions, every page."""
        query = subscription_search_query(self.settings.location_id, customer_id)
        found: list[Subscription] = []
        cursor: str | None = None
        while True:
            kwargs: dict[str, Any] = {"query": query}
            if cursor:
                kwargs["cursor"] = cursor
            body = await self._call(
                "list_subscriptions", self._client.subscriptions.search, **kwargs
            )
            found += [subscription_from_square(sub) for sub in body.get("subscriptions") or ()]
            cursor = body.get("cursor")
            if not cursor:
                return found

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
        new_plan = checked_swap(price_id, quantity, proration)
        body = await self._call(
            "change_subscription",
            self._client.subscriptions.swap_plan,
            subscription_id=subscription_id,
            new_plan_variation_id=new_plan,
        )
        return subscription_from_square(body["subscription"])

    async def pause_subscription(self, subscription_id: str) -> Subscription:
        body = await self._call(
            "pause_subscription",
            self._client.subscriptions.pause,
            subscription_id=subscription_id,
            pause_reason=PAUSE_REASON,
        )
        return subscription_from_square(body["subscription"])

    async def resume_subscription(self, subscription_id: str) -> Subscription:
        body = await self._call(
            "resume_subscription",
            self._client.subscriptions.resume,
            subscription_id=subscription_id,
            resume_change_timing="IMMEDIATE",
        )
        return subscription_from_square(body["subscription"])

    async def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        """As `SquareProvider.undo_cancel_subscription`: delete the scheduled ``CANCEL``."""
        body = await self._call(
            "undo_cancel_subscription",
            self._client.subscriptions.get,
            subscription_id=subscription_id,
            include="actions",
        )
        subscription = body["subscription"]
        cancels = cancel_action_ids(subscription)
        if not cancels:
            return subscription_from_square(subscription)
        for action_id in cancels:
            body = await self._call(
                "undo_cancel_subscription",
                self._client.subscriptions.delete_action,
                subscription_id=subscription_id,
                action_id=action_id,
            )
        return subscription_from_square(body["subscription"])

    async def retry_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        raise no_invoice_retry()

    async def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        """As `SquareProvider.list_disputes`: this location's, filtered here by payment."""
        pages = await self._list_pages(
            "list_disputes", self._client.disputes.list,
            {"location_id": self.settings.location_id}, "disputes",
        )  # fmt: skip
        found = [dispute_from_square(d) for page in pages for d in page.get("disputes") or ()]
        return [d for d in found if payment_id is None or d.payment_id == payment_id]

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """As `SquareProvider.submit_dispute_evidence`: texts, files, then SubmitEvidence
        unless ``submit=False``."""
        texts, files = evidence_requests(dispute_id, evidence)
        for text_request in texts:
            await self._call(
                "submit_dispute_evidence",
                self._client.disputes.create_evidence_text,
                **text_request,
            )
        for file_request in files:
            await self._call(
                "submit_dispute_evidence",
                self._client.disputes.create_evidence_file,
                **file_request,
            )
        if submit:
            body = await self._call(
                "submit_dispute_evidence",
                self._client.disputes.submit_evidence,
                dispute_id=dispute_id,
            )
            return dispute_from_square(body["dispute"])
        return await self.get_dispute(dispute_id)

    async def accept_dispute(self, dispute_id: str) -> Dispute:
        body = await self._call(
            "accept_dispute", self._client.disputes.accept, dispute_id=dispute_id
        )
        return dispute_from_square(body["dispute"])

    # -- customers and saved cards (issue 19): as `SquareProvider`'s, awaited -----------------

    async def get_customer(self, customer_id: str) -> Customer:
        body = await self._call("get_customer", self._client.customers.get, customer_id=customer_id)
        return customer_from_square(body["customer"])

    async def update_customer(
        self,
        customer_id: str,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        # the metadata lives as JSON in the note: merged, as the sync face merges it
        current = (await self.get_customer(customer_id)).metadata if metadata else {}
        kwargs = customer_update_request(customer_id, email, name, metadata, current)
        body = await self._call("update_customer", self._client.customers.update, **kwargs)
        return customer_from_square(body["customer"])

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
        await self._call("delete_customer", self._client.customers.delete, customer_id=customer_id)

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
        kwargs = card_request(customer_id, idempotency_key, usage, payment_method,
                              verification_token)  # fmt: skip
        card = (await self._call("create_setup", self._client.cards.create, **kwargs))["card"]
        return setup_from_card(card, customer_id, usage)

    async def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        """The customer's enabled cards on file (ListCards)."""
        pages = await self._list_pages(
            "list_payment_methods", self._client.cards.list, {"customer_id": customer_id},
            "cards",
        )  # fmt: skip
        return [payment_method_from_square(card) for page in pages for card in page["cards"]]

    async def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        body = await self._call(
            "get_payment_method", self._client.cards.get, card_id=payment_method_id
        )
        return payment_method_from_square(body["card"])

    async def detach_payment_method(self, payment_method_id: str) -> None:
        """DisableCard, as the sync face."""
        await self._call(
            "detach_payment_method", self._client.cards.disable, card_id=payment_method_id
        )

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """The sync face's verification and parsing (no I/O)."""
        return parse_webhook(self.settings, body, headers)
