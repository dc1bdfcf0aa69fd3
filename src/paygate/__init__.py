"""paygate: one payment gateway API over Stripe, PayPal, Square and a fake provider.

Only ``Money`` and the error tree are imported eagerly. Every other public name (the result
dataclasses, the provider protocol, the Gateway, the stores) is loaded on first attribute
access (PEP 562), so ``import paygate`` stays fast and never imports a provider SDK;
``from paygate import Payment`` loads exactly what it names.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from paygate._redact import install_log_filters as _install_log_filters
from paygate.errors import (
    AuthenticationError,
    AuthenticationRequired,
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
    OutcomeUnknown,
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
from paygate.money import Money

# card numbers and database passwords are scrubbed from the log records of paygate's and
# the SDKs' loggers (paygate._redact.FILTERED_LOGGERS), whichever module is imported first
_install_log_filters()

if TYPE_CHECKING:
    from paygate._facts import FACT_TYPES, Fact
    from paygate.gateway import (
        AsyncGateway,
        DispatchSummary,
        Gateway,
        RetryPolicy,
        WebhookResult,
        connect,
        connect_async,
    )
    from paygate.models import (
        CheckoutSession,
        CheckoutStatus,
        Customer,
        Dispute,
        DisputeEvidence,
        DisputeReason,
        DisputeStatus,
        EventType,
        EvidenceFile,
        Invoice,
        InvoiceStatus,
        LineItem,
        Payment,
        PaymentFailure,
        PaymentMethod,
        PaymentMethodKind,
        PaymentStatus,
        Refund,
        RefundStatus,
        SetupSession,
        SetupStatus,
        Subscription,
        SubscriptionStatus,
        WebhookDelivery,
        WebhookEvent,
    )
    from paygate.provider import (
        BaseProvider,
        Capability,
        PaymentProvider,
        available_providers,
        create_provider,
        register_provider,
    )
    from paygate.reconcile import OrderRecord, ReconciliationReport
    from paygate.stores import MemoryStore, SQLiteStore, Store, open_store

#: the one place the version is written: hatchling reads it for the distribution's metadata
__version__ = "0.1.0"

# A library's logger stays silent until the application configures logging: without a
# handler, Python's last-resort handler would print paygate's WARNING lines to stderr.
logging.getLogger("paygate").addHandler(logging.NullHandler())

# name -> module that defines it, imported on first attribute access (PEP 562)
_LAZY: dict[str, str] = {
    "DispatchSummary": "paygate.gateway",
    "FACT_TYPES": "paygate._facts",
    "Fact": "paygate._facts",
    "CheckoutSession": "paygate.models",
    "CheckoutStatus": "paygate.models",
    "Customer": "paygate.models",
    "Dispute": "paygate.models",
    "DisputeEvidence": "paygate.models",
    "DisputeReason": "paygate.models",
    "DisputeStatus": "paygate.models",
    "EvidenceFile": "paygate.models",
    "EventType": "paygate.models",
    "Invoice": "paygate.models",
    "InvoiceStatus": "paygate.models",
    "LineItem": "paygate.models",
    "Payment": "paygate.models",
    "PaymentFailure": "paygate.models",
    "PaymentStatus": "paygate.models",
    "Refund": "paygate.models",
    "RefundStatus": "paygate.models",
    "Subscription": "paygate.models",
    "SubscriptionStatus": "paygate.models",
    "WebhookDelivery": "paygate.models",
    "WebhookEvent": "paygate.models",
    "BaseProvider": "paygate.provider",
    "Capability": "paygate.provider",
    "PaymentProvider": "paygate.provider",
    "available_providers": "paygate.provider",
    "create_provider": "paygate.provider",
    "register_provider": "paygate.provider",
    "Gateway": "paygate.gateway",
    "RetryPolicy": "paygate.gateway",
    "WebhookResult": "paygate.gateway",
    "connect": "paygate.gateway",
    "AsyncGateway": "paygate.gateway",
    "connect_async": "paygate.gateway",
    "Store": "paygate.stores",
    "MemoryStore": "paygate.stores",
    "SQLiteStore": "paygate.stores",
    "open_store": "paygate.stores",
    # ``paygate.reconcile`` itself is the subpackage (callable: it runs reconcile())
    "reconcile": "paygate.reconcile",
    "OrderRecord": "paygate.reconcile",
    "ReconciliationReport": "paygate.reconcile",
    "PaymentMethod": "paygate.models",
    "PaymentMethodKind": "paygate.models",
    "SetupSession": "paygate.models",
    "SetupStatus": "paygate.models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paygate' has no attribute {name!r}")
    imported = importlib.import_module(module)
    # a subpackage listed under its own name is the value itself (paygate.reconcile)
    value = imported if module == f"{__name__}.{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "FACT_TYPES",
    "AsyncGateway",
    "DispatchSummary",
    "Fact",
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
    "DisputeEvidence",
    "DisputeReason",
    "DisputeStatus",
    "EvidenceFile",
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
    "OrderRecord",
    "OutcomeUnknown",
    "PaygateError",
    "Payment",
    "PaymentFailure",
    "PaymentProvider",
    "PaymentStatus",
    "ProviderError",
    "ProviderNotInstalled",
    "ProviderUnavailable",
    "RateLimited",
    "ReconciliationReport",
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
    "connect_async",
    "create_provider",
    "open_store",
    "reconcile",
    "register_provider",
    "AuthenticationRequired",
    "PaymentMethod",
    "PaymentMethodKind",
    "SetupSession",
    "SetupStatus",
]
