"""AsyncPayPalProvider: the PayPal adapter's async face (PayPal's REST API over
``httpx.AsyncClient``, `._paypal_async`), on `.paypal`'s request builders,
checks, translators and error mapping. Importable as
``paygate.providers.paypal.AsyncPayPalProvider``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pydantic

from paygate._config import settings_error
from paygate._observe import fields
from paygate.errors import (
    AuthenticationRequired,
    ConfigurationError,
    InvalidRequest,
    NotFound,
    ProviderUnavailable,
    WebhookVerificationError,
)
from paygate.models import (
    CaptureMethod,
    CheckoutMode,
    CheckoutSession,
    Dispute,
    DisputeEvidence,
    Invoice,
    LineItem,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    SetupSession,
    SetupUsage,
    Subscription,
    WebhookEvent,
)
from paygate.money import Money
from paygate.provider import AsyncBaseProvider, BaseProvider, Proration
from paygate.providers._async_http import check_http_transport
from paygate.providers._paypal_async import AsyncPayPalTransport
from paygate.providers._paypal_verify import OfflineVerifier
from paygate.providers.paypal import (
    _ALREADY_DONE_ISSUES,
    _API_HOSTS,
    _CAPTURE_LINKS_KEPT,
    PAUSE_BODY,
    RESUME_BODY,
    PayPalProvider,
    PayPalSettings,
    _approval_path,
    _cancel_subscription_path,
    _capture_named,
    _check_vault_customer,
    _check_verification,
    _check_webhook_settings,
    _checkout_from_order,
    _dispute_from,
    _event_from,
    _invoice_from,
    _path_id,
    _payment_from_order,
    _payments_of,
    _refund_from,
    _related_ids,
    _request_id,
    _return_token,
    _setup_from_token,
    _subscription_from,
    _token_customer,
    _voided,
    _with_order,
    accept_claim_parts,
    capture_request,
    check_plan_only,
    checkout_request,
    dispute_list_path,
    evidence_parts,
    invoice_from_capture,
    invoice_request,
    log,
    no_subscription_listing,
    no_undo_cancel,
    open_authorization,
    order_request,
    outstanding_capture_request,
    payment_method_from_paypal,
    payment_token_request,
    refund_request,
    revise_request,
    setup_from_payment_token,
    setup_token_path,
    setup_token_request,
    subscription_request,
    translate_error,
    vault_page_methods,
    vault_page_path,
    verification_request,
    with_approval,
)


class _NeedCertificate(WebhookVerificationError):
    """Raised by the async face's certificate source when a URL is not fetched yet: the
    verifier's checks run in their order, the fetch is awaited, verification runs again."""

    def __init__(self, url: str) -> None:
        super().__init__("the PayPal certificate is not fetched yet")
        self.url = url


class AsyncPayPalProvider(AsyncBaseProvider):
    """`paygate.provider.AsyncPaymentProvider` on PayPal: the REST API over
    ``httpx.AsyncClient`` (`._paypal_async`: OAuth token cached, ``PayPal-Request-Id``).

    The same settings as `PayPalProvider`, plus ``http_client`` (an
    ``httpx.AsyncClient``, e.g. with an ``httpx.MockTransport``; used as given and left
    open by `aclose`) and ``http_transport`` (the client the adapter makes without one:
    ``"auto"``, the default, runs on aiohttp's connection pool when
    ``paygate-payments[aiohttp]`` is installed, else on httpx's; ``"aiohttp"`` or
    ``"httpx"`` force one; `http_transport` tells which one runs, docs/architecture.md
    why). Requests, checks, translation and error mapping are the module's shared
    functions; each operation makes the sync face's requests in the same order. Offline
    webhook verification is the same `OfflineVerifier`, its certificate fetched
    with the async client (a ``cert_fetcher`` setting, a sync callable, runs in a thread).
    """

    name = "paypal"
    capabilities = PayPalProvider.capabilities

    def __init__(
        self, *, http_client: Any = None, http_transport: str = "auto", **settings: Any
    ) -> None:
        check_http_transport(http_transport)  # a bad value fails even with a client given
        try:
            config = PayPalSettings(**settings)
        except pydantic.ValidationError as exc:
            raise settings_error(exc, "PayPal settings", env_prefix="PAYGATE_PAYPAL_") from None
        self._setup(config, http_client, http_transport)

    @classmethod
    def from_sync(cls, provider: BaseProvider) -> AsyncPayPalProvider:
        """The async twin of ``provider`` (its settings; an HTTP client of its own)."""
        if not isinstance(provider, PayPalProvider):
            raise ConfigurationError(f"expected a PayPalProvider, got {type(provider).__name__}")
        twin = cls.__new__(cls)
        twin._setup(provider.settings, None, "auto")
        return twin

    def _setup(
        self, config: PayPalSettings, http_client: Any, http_transport: str = "auto"
    ) -> None:
        self.settings = config
        self.max_retries: int | None = config.max_retries
        self._http = AsyncPayPalTransport(
            client_id=config.client_id,
            client_secret=config.client_secret.get_secret_value(),
            base_url=config.base_url or _API_HOSTS[config.mode],
            timeout=config.timeout,
            translate_error=translate_error,
            http_client=http_client,
            http_transport=http_transport,
        )
        self._certificates: dict[str, bytes | BaseException] = {}
        self._verifier = (
            OfflineVerifier(
                webhook_id=config.webhook_id,
                fetch=self._fetched_certificate,
                tolerance=timedelta(seconds=config.webhook_tolerance),
            )
            if config.webhook_id
            else None
        )
        self._capture_orders: OrderedDict[str, str] = OrderedDict()

    def __repr__(self) -> str:
        return f"AsyncPayPalProvider(mode={self.settings.mode!r}, endpoint={self._http.endpoint!r})"

    @property
    def http_transport(self) -> str:
        """What the adapter's requests run on: ``"aiohttp"`` or ``"httpx"`` (a client it
        made), ``"custom"`` (the ``http_client`` passed in)."""
        return self._http.http_transport

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- payments ---------------------------------------------------------------------------

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
        """As `PayPalProvider.create_payment`."""
        body = order_request(
            order_id, amount, payment_method, description, capture, return_url,
            off_session=off_session,
        )  # fmt: skip
        order = await self._http.post(
            "/v2/checkout/orders", body, request_id=_request_id(idempotency_key)
        )
        payment = self._payment(order)
        log.info("paypal order %s created for %s: %s", payment.id, order_id, amount,
                 extra=fields(provider="paypal", operation="create_payment",
                              order_id=order_id, payment_id=payment.id))  # fmt: skip
        if off_session and payment.status is PaymentStatus.REQUIRES_ACTION:
            # as the sync face: PAYER_ACTION_REQUIRED, which no one is there to answer
            raise AuthenticationRequired(
                "PayPal: the payer must authenticate this charge (PAYER_ACTION_REQUIRED)",
                payment_id=payment.id,
                provider="paypal",
                code="PAYER_ACTION_REQUIRED",
            )
        return payment

    async def get_payment(self, payment_id: str) -> Payment:
        return self._payment(await self._get_order(payment_id))

    async def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        """As `PayPalProvider.complete_return`: capture (or authorize) if approved."""
        token = _return_token(params)
        order = await self._get_order(token)
        if order.get("status") == "APPROVED":
            try:
                order = await self._http.post(
                    _approval_path(order), {}, request_id=_request_id(idempotency_key)
                )
            except InvalidRequest as exc:
                if exc.code not in _ALREADY_DONE_ISSUES:
                    raise
                order = await self._get_order(token)  # finished by another request first
        payment = self._payment(order)
        log.info("paypal order %s after return: %s", payment.id, payment.status,
                 extra=fields(provider="paypal", operation="complete_return",
                              payment_id=payment.id))  # fmt: skip
        return payment

    async def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment:
        """As `PayPalProvider.capture_payment` (a lost answer's retry replays)."""
        order = await self._get_order(payment_id)
        authorization = open_authorization(order, "capture", done="CAPTURED")
        body = capture_request(amount)
        authorization_path = _path_id(str(authorization["id"]), "authorization id")
        capture = await self._http.post(
            f"/v2/payments/authorizations/{authorization_path}/capture",
            body,
            request_id=_request_id(idempotency_key),
        )
        _payments_of(order)["captures"] = [capture]
        return self._payment(order)

    async def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment:
        """As `PayPalProvider.cancel_payment`: void the authorization."""
        order = await self._get_order(payment_id)
        if _voided(order):
            return self._payment(order)
        authorization = open_authorization(order, "cancel")
        authorization_path = _path_id(str(authorization["id"]), "authorization id")
        voided = await self._http.post(
            f"/v2/payments/authorizations/{authorization_path}/void", None
        )
        _payments_of(order)["authorizations"] = [voided or {**authorization, "status": "VOIDED"}]
        return self._payment(order)

    async def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund:
        order = await self._get_order(payment_id)
        payment = self._payment(order)
        path, body, refundable = refund_request(order, payment, amount, reason)
        refund = await self._http.post(path, body, request_id=_request_id(idempotency_key))
        return _refund_from(
            refund,
            payment_id=payment.id,
            order_id=payment.order_id,
            fallback_amount=amount or refundable,
            reason=reason,
        )

    async def get_refund(self, refund_id: str) -> Refund:
        refund = _refund_from(
            await self._http.get(f"/v2/payments/refunds/{_path_id(refund_id, 'refund_id')}")
        )
        if not _related_ids(refund.raw).get("order_id"):
            refund = replace(refund, payment_id=await self._order_of_capture(refund.payment_id))
        return refund

    # -- checkout, subscriptions, invoices, disputes ------------------------------------------

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
        body = checkout_request(order_id, line_items, success_url, cancel_url, mode)
        order = await self._http.post(
            "/v2/checkout/orders", body, request_id=_request_id(idempotency_key)
        )
        return _checkout_from_order(order)

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        return _checkout_from_order(await self._get_order(session_id))

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
        """As `PayPalProvider.create_subscription` (trials and quantities are the plan's)."""
        check_plan_only(trial_days, trial_end, quantity)
        subscription = await self._http.post(
            "/v1/billing/subscriptions",
            subscription_request(customer_id, price_id),
            request_id=_request_id(idempotency_key),
        )
        return _subscription_from(subscription)

    async def get_subscription(self, subscription_id: str) -> Subscription:
        path = _path_id(subscription_id, "subscription_id")
        return _subscription_from(await self._http.get(f"/v1/billing/subscriptions/{path}"))

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        path = _cancel_subscription_path(subscription_id, at_period_end)
        await self._http.post(
            f"/v1/billing/subscriptions/{path}/cancel", {"reason": "Canceled by the merchant"}
        )
        return _subscription_from(await self._http.get(f"/v1/billing/subscriptions/{path}"))

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
        body, total = invoice_request(customer_id, line_items, order_id, description)
        invoice = await self._http.post(
            "/v2/invoicing/invoices", body, request_id=_request_id(idempotency_key)
        )
        if "id" not in invoice:
            raise ProviderUnavailable(
                "PayPal created an invoice but did not return it", provider="paypal"
            )
        if send:
            path = _path_id(str(invoice["id"]), "invoice id")
            await self._http.post(
                f"/v2/invoicing/invoices/{path}/send",
                {"send_to_recipient": True},
                request_id=_request_id(idempotency_key + ":send"),
            )
            invoice = await self._http.get(f"/v2/invoicing/invoices/{path}")
        return _invoice_from(invoice, fallback_total=total)

    async def get_dispute(self, dispute_id: str) -> Dispute:
        path = _path_id(dispute_id, "dispute_id")
        dispute = _dispute_from(await self._http.get(f"/v1/customer/disputes/{path}"))
        if dispute.payment_id:
            dispute = replace(dispute, payment_id=await self._order_of_capture(dispute.payment_id))
        return dispute

    # -- after the first charge (issue 20): as `PayPalProvider`'s, awaited -------------------

    async def list_subscriptions(self, *, customer_id: str | None = None) -> list[Subscription]:
        raise no_subscription_listing()

    async def change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None = None,
        quantity: int | None = None,
        proration: Proration = "create_prorations",
        idempotency_key: str,
    ) -> Subscription:
        """As `PayPalProvider.change_subscription` (``revise``, ``proration="none"``)."""
        body = revise_request(price_id, quantity, proration)
        path = _path_id(subscription_id, "subscription_id")
        revised = await self._http.post(
            f"/v1/billing/subscriptions/{path}/revise", body,
            request_id=_request_id(idempotency_key),
        )  # fmt: skip
        current = _subscription_from(await self._http.get(f"/v1/billing/subscriptions/{path}"))
        return with_approval(current, revised)

    async def pause_subscription(self, subscription_id: str) -> Subscription:
        path = _path_id(subscription_id, "subscription_id")
        await self._http.post(f"/v1/billing/subscriptions/{path}/suspend", PAUSE_BODY)
        return _subscription_from(await self._http.get(f"/v1/billing/subscriptions/{path}"))

    async def resume_subscription(self, subscription_id: str) -> Subscription:
        path = _path_id(subscription_id, "subscription_id")
        await self._http.post(f"/v1/billing/subscriptions/{path}/activate", RESUME_BODY)
        return _subscription_from(await self._http.get(f"/v1/billing/subscriptions/{path}"))

    async def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        raise no_undo_cancel()

    async def retry_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        """As `PayPalProvider.retry_invoice`: the subscription's outstanding balance."""
        path = _path_id(invoice_id, "invoice_id (the PayPal subscription id)")
        subscription = await self._http.get(f"/v1/billing/subscriptions/{path}")
        owed, body = outstanding_capture_request(invoice_id, subscription)
        transaction = await self._http.post(
            f"/v1/billing/subscriptions/{path}/capture", body,
            request_id=_request_id(idempotency_key),
        )  # fmt: skip
        return invoice_from_capture(transaction, subscription, owed, path)

    async def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        """As `PayPalProvider.list_disputes`: each summary read in full."""
        capture = None
        if payment_id is not None:
            capture = self._payment(await self._get_order(payment_id)).charge_id
            if capture is None:
                return []  # never captured: nothing to dispute
        page = await self._http.get(dispute_list_path(capture))
        return [await self.get_dispute(str(item["dispute_id"])) for item in page.get("items") or ()]

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """As `PayPalProvider.submit_dispute_evidence` (multipart ``provide-evidence``)."""
        parts = evidence_parts(evidence, submit)
        path = _path_id(dispute_id, "dispute_id")
        await self._http.post_files(f"/v1/customer/disputes/{path}/provide-evidence", parts)
        return await self.get_dispute(dispute_id)

    async def accept_dispute(self, dispute_id: str) -> Dispute:
        path = _path_id(dispute_id, "dispute_id")
        await self._http.post_files(
            f"/v1/customer/disputes/{path}/accept-claim", accept_claim_parts()
        )
        return await self.get_dispute(dispute_id)

    # -- saved payment methods (Vault v3, issue 19): as `PayPalProvider`'s, awaited ----------

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
        """As `PayPalProvider.create_setup`: a Vault v3 setup token."""
        body = setup_token_request(
            customer_id, return_url, cancel_url, usage, payment_method, verification_token
        )
        token = await self._http.post(
            "/v3/vault/setup-tokens", body, request_id=_request_id(idempotency_key)
        )
        return _setup_from_token(token, customer_id=customer_id, usage=usage)

    async def complete_setup(
        self, params: Mapping[str, str], *, idempotency_key: str
    ) -> SetupSession:
        """As `PayPalProvider.complete_setup`: the approved token exchanged once."""
        path = setup_token_path(params)
        token = await self._http.get(f"/v3/vault/setup-tokens/{path}")
        if token.get("status") != "APPROVED":
            return _setup_from_token(token, customer_id=_token_customer(token))
        saved = await self._http.post(
            "/v3/vault/payment-tokens",
            payment_token_request(token),
            request_id=_request_id(idempotency_key),
        )
        return setup_from_payment_token(token, saved)

    async def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        """The customer's payment tokens, every page."""
        _check_vault_customer(customer_id)
        methods: list[PaymentMethod] = []
        page = 1
        while True:
            listing = await self._http.get(vault_page_path(customer_id, page))
            found, last = vault_page_methods(listing, page)
            methods.extend(found)
            if last:
                return methods
            page += 1

    async def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        path = _path_id(payment_method_id, "payment token id")
        return payment_method_from_paypal(await self._http.get(f"/v3/vault/payment-tokens/{path}"))

    async def detach_payment_method(self, payment_method_id: str) -> None:
        """Delete the payment token, as the sync face."""
        path = _path_id(payment_method_id, "payment token id")
        await self._http.delete(f"/v3/vault/payment-tokens/{path}")

    # -- webhooks ---------------------------------------------------------------------------

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """As `PayPalProvider.parse_webhook`: verify (offline, the certificate fetched
        without blocking the loop; or by PayPal's API), normalize, name the order."""
        _check_webhook_settings(self.settings, body)
        if self.settings.verification == "api":
            answer = await self._http.post(
                "/v1/notifications/verify-webhook-signature",
                verification_request(self.settings, body, headers),
            )
            _check_verification(answer)
        else:
            assert self._verifier is not None
            try:
                self._verifier.verify(body, headers)
            except _NeedCertificate as need:
                await self._fetch_certificate(need.url)
                self._verifier.verify(body, headers)
        event = _event_from(body)
        capture_id = _capture_named(event)
        if capture_id is None:
            return event
        return _with_order(event, await self._order_of_capture(capture_id))

    def _fetched_certificate(self, url: str) -> bytes:
        """The verifier's certificate source: what `_fetch_certificate` brought."""
        fetched = self._certificates.pop(url, None)
        if fetched is None:
            raise _NeedCertificate(url)
        if isinstance(fetched, BaseException):
            raise fetched  # the verifier turns it into InvalidSignature
        return fetched

    async def _fetch_certificate(self, url: str) -> None:
        try:
            if self.settings.cert_fetcher is not None:  # a sync callable: off the loop
                pem = await asyncio.to_thread(self.settings.cert_fetcher, url)
            else:
                pem = await self._http.fetch_certificate(url)
        except Exception as exc:  # any failure means "cannot verify", never "valid"
            self._certificates[url] = exc
            return
        self._certificates[url] = pem

    # -- plumbing -----------------------------------------------------------------------------

    async def _get_order(self, order_id: str) -> dict[str, Any]:
        return await self._http.get(f"/v2/checkout/orders/{_path_id(order_id, 'payment id')}")

    def _payment(self, order: Mapping[str, Any]) -> Payment:
        """Normalize an order and remember its capture -> order link (one loop: no lock)."""
        payment = _payment_from_order(order)
        if payment.charge_id:
            self._remember(payment.charge_id, payment.id)
        return payment

    def _remember(self, capture_id: str, order_id: str) -> None:
        self._capture_orders[capture_id] = order_id
        self._capture_orders.move_to_end(capture_id)
        while len(self._capture_orders) > _CAPTURE_LINKS_KEPT:
            self._capture_orders.popitem(last=False)

    async def _order_of_capture(self, capture_id: str) -> str:
        """As `PayPalProvider._order_of_capture`: known links first, else PayPal."""
        known = self._capture_orders.get(capture_id)
        if known is not None:
            return known
        try:
            capture = await self._http.get(
                f"/v2/payments/captures/{_path_id(capture_id, 'capture id')}"
            )
        except NotFound:
            return capture_id
        order_id = _related_ids(capture).get("order_id")
        if not order_id:
            return capture_id
        self._remember(capture_id, str(order_id))
        return str(order_id)
