"""AsyncPayPalProvider: the PayPal adapter's async face (PayPal's REST API over
``httpx.AsyncClient``, `._paypal_async`), on `.paypal`'s request builders,
checks, translators and error mapping. Importable as
``paygate.providers.paypal.AsyncPayPalProvider``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pydantic

from paygate._config import settings_error
from paygate.errors import ConfigurationError, WebhookVerificationError
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
    Refund,
    SetupSession,
    SetupUsage,
    Subscription,
    WebhookEvent,
)
from paygate.money import Money
from paygate.provider import AsyncBaseProvider, BaseProvider, Proration
from paygate.providers._async_http import check_http_transport
from paygate.providers._flow import run_async as run_flow_async
from paygate.providers._paypal_async import AsyncPayPalTransport
from paygate.providers._paypal_verify import OfflineVerifier
from paygate.providers.paypal import (
    _API_HOSTS,
    Flow,
    PayPalCall,
    PayPalFlows,
    PayPalProvider,
    PayPalSettings,
    R,
    _check_webhook_settings,
    no_subscription_listing,
    no_undo_cancel,
    translate_error,
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
    functions; each operation is the sync face's flow (`PayPalFlows`), its requests
    awaited (`_run`). Offline
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
        self._flows = PayPalFlows()

    def __repr__(self) -> str:
        return f"AsyncPayPalProvider(mode={self.settings.mode!r}, endpoint={self._http.endpoint!r})"

    @property
    def http_transport(self) -> str:
        """What the adapter's requests run on: ``"aiohttp"`` or ``"httpx"`` (a client it
        made), ``"custom"`` (the ``http_client`` passed in)."""
        return self._http.http_transport

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing: the driver of `PayPalFlows` -----------------------------------------------

    async def _run(self, flow: Flow[R]) -> R:
        """As `PayPalProvider._run`, each request awaited."""
        return await run_flow_async(flow, self._send)

    async def _send(self, call: PayPalCall) -> dict[str, Any]:
        if call.files is not None:
            return await self._http.post_files(call.path, call.files)
        return await self._http.request(call.method, call.path, call.body, call.request_id)

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
        return await self._run(self._flows.create_payment(
            order_id, amount, payment_method, idempotency_key, description, capture,
            return_url, off_session,
        ))  # fmt: skip

    async def get_payment(self, payment_id: str) -> Payment:
        return await self._run(self._flows.get_payment(payment_id))

    async def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        """As `PayPalProvider.complete_return`: capture (or authorize) if approved."""
        return await self._run(self._flows.complete_return(params, idempotency_key))

    async def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment:
        """As `PayPalProvider.capture_payment` (a lost answer's retry replays)."""
        return await self._run(self._flows.capture_payment(payment_id, amount, idempotency_key))

    async def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment:
        """As `PayPalProvider.cancel_payment`: void the authorization."""
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

    async def get_refund(self, refund_id: str) -> Refund:
        return await self._run(self._flows.get_refund(refund_id))

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
        return await self._run(self._flows.create_checkout_session(
            order_id, line_items, success_url, cancel_url, idempotency_key, mode
        ))  # fmt: skip

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        return await self._run(self._flows.get_checkout_session(session_id))

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
        return await self._run(self._flows.create_subscription(
            customer_id, price_id, idempotency_key, trial_days, trial_end, quantity
        ))  # fmt: skip

    async def get_subscription(self, subscription_id: str) -> Subscription:
        return await self._run(self._flows.get_subscription(subscription_id))

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
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
        return await self._run(self._flows.create_invoice(
            customer_id, line_items, idempotency_key, order_id, description, send
        ))  # fmt: skip

    async def get_dispute(self, dispute_id: str) -> Dispute:
        return await self._run(self._flows.get_dispute(dispute_id))

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
        return await self._run(self._flows.change_subscription(
            subscription_id, price_id, quantity, proration, idempotency_key
        ))  # fmt: skip

    async def pause_subscription(self, subscription_id: str) -> Subscription:
        return await self._run(self._flows.pause_subscription(subscription_id))

    async def resume_subscription(self, subscription_id: str) -> Subscription:
        return await self._run(self._flows.resume_subscription(subscription_id))

    async def undo_cancel_subscription(self, subscription_id: str) -> Subscription:
        raise no_undo_cancel()

    async def retry_invoice(self, invoice_id: str, *, idempotency_key: str) -> Invoice:
        """As `PayPalProvider.retry_invoice`: the subscription's outstanding balance."""
        return await self._run(self._flows.retry_invoice(invoice_id, idempotency_key))

    async def list_disputes(self, *, payment_id: str | None = None) -> list[Dispute]:
        """As `PayPalProvider.list_disputes`: each summary read in full."""
        return await self._run(self._flows.list_disputes(payment_id))

    async def submit_dispute_evidence(
        self, dispute_id: str, evidence: DisputeEvidence, *, submit: bool = True
    ) -> Dispute:
        """As `PayPalProvider.submit_dispute_evidence` (multipart ``provide-evidence``)."""
        return await self._run(self._flows.submit_dispute_evidence(dispute_id, evidence, submit))

    async def accept_dispute(self, dispute_id: str) -> Dispute:
        return await self._run(self._flows.accept_dispute(dispute_id))

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
        return await self._run(self._flows.create_setup(
            customer_id, idempotency_key, return_url, cancel_url, usage, payment_method,
            verification_token,
        ))  # fmt: skip

    async def complete_setup(
        self, params: Mapping[str, str], *, idempotency_key: str
    ) -> SetupSession:
        """As `PayPalProvider.complete_setup`: the approved token exchanged once."""
        return await self._run(self._flows.complete_setup(params, idempotency_key))

    async def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        """The customer's payment tokens, every page."""
        return await self._run(self._flows.list_payment_methods(customer_id))

    async def get_payment_method(self, payment_method_id: str) -> PaymentMethod:
        return await self._run(self._flows.get_payment_method(payment_method_id))

    async def detach_payment_method(self, payment_method_id: str) -> None:
        """Delete the payment token, as the sync face."""
        await self._run(self._flows.detach_payment_method(payment_method_id))

    # -- webhooks ---------------------------------------------------------------------------

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """As `PayPalProvider.parse_webhook`: verify (offline, the certificate fetched
        without blocking the loop; or by PayPal's API), normalize, name the order."""
        _check_webhook_settings(self.settings, body)
        if self.settings.verification == "api":
            await self._run(self._flows.verify_by_api(self.settings, body, headers))
        else:
            assert self._verifier is not None
            try:
                self._verifier.verify(body, headers)
            except _NeedCertificate as need:
                await self._fetch_certificate(need.url)
                self._verifier.verify(body, headers)
        return await self._run(self._flows.webhook_event(body))

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
