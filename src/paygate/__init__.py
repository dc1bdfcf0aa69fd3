"""paygate: one payment gateway API over Stripe, PayPal, Square and a fake provider.

The pure core (money, models, state, errors) is imported eagerly and is cheap; the Gateway,
stores and adapters load on first use, so ``import paygate`` stays fast and never imports a
provider SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from paygate.errors import (
    AuthenticationError,
    CardDeclined,
    ConfigurationError,
    CurrencyMismatch,
    IdempotencyConflict,
    InvalidAmount,
    InvalidRequest,
    InvalidSignature,
    InvalidTransition,
    MalformedPayload,
    MissingSignature,
    NotFound,
    NotSupported,
    PaygateError,
    ProviderError,
    ProviderNotInstalled,
    ProviderUnavailable,
    RateLimited,
    TimestampOutsideTolerance,
    UnknownCurrency,
    ValidationError,
    WebhookVerificationError,
)
from paygate.models import (
    CheckoutSession,
    CheckoutStatus,
    Customer,
    Dispute,
    DisputeStatus,
    EventType,
    Invoice,
    InvoiceStatus,
    LineItem,
    Payment,
    PaymentFailure,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
    WebhookDelivery,
    WebhookEvent,
)
from paygate.money import Money
from paygate.provider import (
    BaseProvider,
    Capability,
    PaymentProvider,
    available_providers,
    create_provider,
    register_provider,
)

if TYPE_CHECKING:
    from paygate.gateway import Gateway, RetryPolicy, WebhookResult, connect
    from paygate.stores import MemoryStore, SQLiteStore, Store, open_store

__version__ = "0.1.0"

# name -> module that defines it, imported on first attribute access (PEP 562)
_LAZY: dict[str, str] = {
    "Gateway": "paygate.gateway",
    "RetryPolicy": "paygate.gateway",
    "WebhookResult": "paygate.gateway",
    "connect": "paygate.gateway",
    "Store": "paygate.stores",
    "MemoryStore": "paygate.stores",
    "SQLiteStore": "paygate.stores",
    "open_store": "paygate.stores",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paygate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AuthenticationError",
    "BaseProvider",
    "Capability",
    "CardDeclined",
    "CheckoutSession",
    "CheckoutStatus",
    "ConfigurationError",
    "CurrencyMismatch",
    "Customer",
    "Dispute",
    "DisputeStatus",
    "EventType",
    "Gateway",
    "IdempotencyConflict",
    "InvalidAmount",
    "InvalidRequest",
    "InvalidSignature",
    "InvalidTransition",
    "Invoice",
    "InvoiceStatus",
    "LineItem",
    "MalformedPayload",
    "MemoryStore",
    "MissingSignature",
    "Money",
    "NotFound",
    "NotSupported",
    "PaygateError",
    "Payment",
    "PaymentFailure",
    "PaymentProvider",
    "PaymentStatus",
    "ProviderError",
    "ProviderNotInstalled",
    "ProviderUnavailable",
    "RateLimited",
    "Refund",
    "RefundStatus",
    "RetryPolicy",
    "SQLiteStore",
    "Store",
    "Subscription",
    "SubscriptionStatus",
    "TimestampOutsideTolerance",
    "UnknownCurrency",
    "ValidationError",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookResult",
    "WebhookVerificationError",
    "__version__",
    "available_providers",
    "connect",
    "create_provider",
    "open_store",
    "register_provider",
]
