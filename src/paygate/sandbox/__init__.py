"""``paygate sandbox``: a local, stateful emulator of Stripe, PayPal and Square.

One HTTP server holds provider state on the fake provider's engine and speaks each
provider's own wire format, so the real adapters run offline against it; it delivers
signed webhooks to your endpoints with retries, and serves the hosted pages a customer
uses (Checkout, 3-D Secure, PayPal approval, Square payment links). See docs/sandbox.md.

Needs the ``sandbox`` extra: ``pip install 'paygate-payments[sandbox]'``.
"""

from __future__ import annotations

from paygate.sandbox.app import DEFAULT_PORT, Sandbox
from paygate.sandbox.events import DEFAULT_RETRY_DELAYS, EventBus
from paygate.sandbox.state import SandboxState
from paygate.sandbox.store import DeliveryAttempt, StoredEvent

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_RETRY_DELAYS",
    "DeliveryAttempt",
    "EventBus",
    "Sandbox",
    "SandboxState",
    "StoredEvent",
]
