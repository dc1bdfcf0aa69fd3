"""AsyncSquareProvider: the Square adapter's async face (``square.AsyncSquare`` over an
``httpx.AsyncClient``), on `.square`'s request builders, translators and error
mapping. Importable as ``paygate.providers.square.AsyncSquareProvider``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    Invoice,
    LineItem,
    Payment,
    Refund,
    Subscription,
    SubscriptionStatus,
    WebhookEvent,
)
from paygate.money import Money
from paygate.provider import AsyncBaseProvider, BaseProvider
from paygate.providers._http_faults import httpx_failure
from paygate.providers._square_settings import SquareSettings, load_settings
from paygate.providers._warm import HTTPX_ASYNC, warm_imports
from paygate.providers.square import (
    ORDER_NOTE_PREFIX,
    PROVIDER,
    SquareProvider,
    _check_reference,
    _checked,
    _error_from_api,
    _line_items_total,
    _money_param,
    _paid_payment_id,
    _partial_capture,
    _replace_total,
    _with_metadata,
    _with_order_reference,
    checkout_from_square,
    customer_from_square,
    customer_request,
    dispute_from_square,
    invoice_from_square,
    invoice_request,
    logger,
    parse_webhook,
    payment_from_square,
    payment_request,
    refund_from_square,
    refund_request,
    square_idempotency_key,
    square_order,
    subscription_from_square,
    subscription_request,
)


class AsyncSquareProvider(AsyncBaseProvider):
    """`paygate.provider.AsyncPaymentProvider` on Square: ``square.AsyncSquare``
    over an ``httpx.AsyncClient``.

    The same settings as `SquareProvider`; ``http_client`` (an
    `httpx.AsyncClient`, e.g. with an ``httpx.MockTransport``) replaces the SDK's
    transport (closed by `aclose` only when the adapter made it). Requests, keys,
    translation and error mapping are the sync face's (the builders and translators of
    this module); each operation makes the same calls in the same order.
    """

    name = PROVIDER
    capabilities = SquareProvider.capabilities

    def __init__(self, *, http_client: httpx.AsyncClient | None = None, **settings: Any) -> None:
        self._setup(load_settings(settings), http_client)

    @classmethod
    def from_sync(cls, provider: BaseProvider) -> AsyncSquareProvider:
        """The async twin of ``provider`` (its settings; an HTTP client of its own)."""
        if not isinstance(provider, SquareProvider):
            raise ConfigurationError(f"expected a SquareProvider, got {type(provider).__name__}")
        twin = cls.__new__(cls)
        twin._setup(provider.settings, None)
        return twin

    def _setup(self, settings: SquareSettings, http_client: httpx.AsyncClient | None) -> None:
        self.settings = settings
        self.max_retries: int | None = settings.max_retries
        self._owns_http_client = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=settings.timeout)
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
        options: RequestOptions = {
            **self._request_options,
            # the SDK hands this to httpx, which takes float seconds (typed int there)
            "timeout_in_seconds": attempt_timeout(self.settings.timeout),
        }
        try:
            answer = await method(**kwargs, request_options=options)
        except ApiError as exc:
            raise _error_from_api(operation, exc) from None
        except httpx.InvalidURL:
            raise ValidationError(
                f"Square {operation}: an id in the request cannot be put in a URL"
            ) from None
        except httpx.RequestError as exc:
            raise httpx_failure(PROVIDER, "Square", operation, exc) from None
        return _checked(operation, answer.dict())

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
    ) -> Payment:
        kwargs = payment_request(
            self.settings.location_id, order_id, amount, payment_method, idempotency_key,
            customer_id, description, capture,
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
    ) -> Subscription:
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

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """The sync face's verification and parsing (no I/O)."""
        return parse_webhook(self.settings, body, headers)
