"""AsyncFakeProvider: the fake provider's async face, on the sync fake's engine.
Importable as ``paygate.providers.fake.AsyncFakeProvider``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from paygate.errors import ConfigurationError
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
    WebhookEvent,
)
from paygate.money import Money
from paygate.provider import AsyncBaseProvider, BaseProvider, Capability
from paygate.providers.fake import (
    FakeProvider,
    FakeSettings,
)

_R = TypeVar("_R")


class AsyncFakeProvider(AsyncBaseProvider):
    """The fake provider as an `paygate.provider.AsyncPaymentProvider`.

    Natively async: each operation runs the sync fake's engine (a `FakeProvider`,
    in-memory, no I/O, so nothing blocks the loop), with a checkpoint before it and one
    after it, where a real call awaits the network: cancelling there is cancelling a
    request not yet sent, or one whose answer is lost after the provider acted. Same
    outcomes, ids, idempotency and signed webhooks as the sync fake. The test controls
    (``settle``, ``open_dispute``, ``take_webhooks``, ``fail_next``, ...) are the engine's,
    reachable as ``.engine`` or directly on this object.
    """

    name: ClassVar[str] = "fake"

    def __init__(self, *, engine: FakeProvider | None = None, **settings: Any) -> None:
        if engine is not None and settings:
            raise ConfigurationError("give either engine or settings, not both")
        self.engine = engine if engine is not None else FakeProvider(**settings)

    @classmethod
    def from_sync(cls, provider: BaseProvider) -> AsyncFakeProvider:
        """The async face of ``provider``, sharing its state (what ``provider.aio()`` does)."""
        if not isinstance(provider, FakeProvider):
            raise ConfigurationError(f"expected a FakeProvider, got {type(provider).__name__}")
        return cls(engine=provider)

    @property
    def capabilities(self) -> frozenset[Capability]:  # type: ignore[override]
        return self.engine.capabilities

    @property
    def settings(self) -> FakeSettings:
        return self.engine.settings

    @property
    def max_retries(self) -> int | None:
        return self.engine.max_retries

    def __repr__(self) -> str:
        return f"Async{self.engine!r}"

    def __getattr__(self, name: str) -> Any:
        # the engine's test controls (settle, take_webhooks, calls, ...), never private state
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.engine, name)

    async def _run(self, operation: Callable[..., _R], *args: Any, **kwargs: Any) -> _R:
        await asyncio.sleep(0)  # the request is not sent yet
        result = operation(*args, **kwargs)
        await asyncio.sleep(0)  # the provider acted; the answer is on its way back
        return result

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
        return await self._run(
            self.engine.create_payment,
            order_id=order_id,
            amount=amount,
            payment_method=payment_method,
            idempotency_key=idempotency_key,
            customer_id=customer_id,
            description=description,
            metadata=metadata,
            capture=capture,
            return_url=return_url,
        )

    async def get_payment(self, payment_id: str) -> Payment:
        return await self._run(self.engine.get_payment, payment_id)

    async def capture_payment(
        self, payment_id: str, *, amount: Money | None = None, idempotency_key: str
    ) -> Payment:
        return await self._run(
            self.engine.capture_payment,
            payment_id,
            amount=amount,
            idempotency_key=idempotency_key,
        )

    async def cancel_payment(self, payment_id: str, *, idempotency_key: str) -> Payment:
        return await self._run(
            self.engine.cancel_payment, payment_id, idempotency_key=idempotency_key
        )

    async def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str,
    ) -> Refund:
        return await self._run(
            self.engine.refund_payment,
            payment_id,
            amount=amount,
            reason=reason,
            idempotency_key=idempotency_key,
        )

    async def get_refund(self, refund_id: str) -> Refund:
        return await self._run(self.engine.get_refund, refund_id)

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
        return await self._run(
            self.engine.create_checkout_session,
            order_id=order_id,
            line_items=line_items,
            success_url=success_url,
            cancel_url=cancel_url,
            idempotency_key=idempotency_key,
            mode=mode,
            customer_id=customer_id,
            price_id=price_id,
            metadata=metadata,
        )

    async def get_checkout_session(self, session_id: str) -> CheckoutSession:
        return await self._run(self.engine.get_checkout_session, session_id)

    async def complete_return(self, params: Mapping[str, str], *, idempotency_key: str) -> Payment:
        return await self._run(self.engine.complete_return, params, idempotency_key=idempotency_key)

    async def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Customer:
        return await self._run(
            self.engine.create_customer,
            email=email,
            name=name,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )

    async def create_subscription(
        self,
        *,
        customer_id: str,
        price_id: str,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> Subscription:
        return await self._run(
            self.engine.create_subscription,
            customer_id=customer_id,
            price_id=price_id,
            idempotency_key=idempotency_key,
            metadata=metadata,
        )

    async def get_subscription(self, subscription_id: str) -> Subscription:
        return await self._run(self.engine.get_subscription, subscription_id)

    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        return await self._run(
            self.engine.cancel_subscription, subscription_id, at_period_end=at_period_end
        )

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
        return await self._run(
            self.engine.create_invoice,
            customer_id=customer_id,
            line_items=line_items,
            idempotency_key=idempotency_key,
            order_id=order_id,
            description=description,
            send=send,
        )

    async def get_dispute(self, dispute_id: str) -> Dispute:
        return await self._run(self.engine.get_dispute, dispute_id)

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        return self.engine.parse_webhook(body, headers)  # no I/O: no checkpoint either

    async def aclose(self) -> None:
        self.engine.close()
