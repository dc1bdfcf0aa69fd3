"""``ProviderFace``: what a provider module plugs into the sandbox.

A face speaks one provider's wire format over the shared state: it registers its routes,
translates its engine's events into its provider's events (and emits them on the bus),
signs its deliveries, and knows how to fire a realistic event on demand (``trigger``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from paygate.errors import InvalidRequest

if TYPE_CHECKING:
    from paygate.providers.fake import FakeProvider
    from paygate.sandbox.app import Sandbox
    from paygate.sandbox.state import SandboxState
    from paygate.sandbox.store import StoredEvent

__all__ = ["ProviderFace"]

JSON = dict[str, Any]


class ProviderFace:
    """Base class of the Stripe, PayPal and Square faces."""

    #: the provider's name: "stripe", "paypal", "square"
    name: ClassVar[str]
    #: where the provider's API lives on the sandbox, relative to its root ("" or "/paypal")
    prefix: ClassVar[str] = ""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        sandbox.state.on_engine_event(self.name, self.on_engine_event)
        sandbox.bus.set_signer(self.name, self.sign)

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    @property
    def base_url(self) -> str:
        """What the provider's adapter takes as its base URL."""
        return self.sandbox.base_url + self.prefix

    def engine(self) -> FakeProvider:
        """This face's engine, for reading (under ``self.state.lock``)."""
        return self.state.engine(self.name)

    def register(self) -> None:
        """Add this face's routes with ``self.sandbox.route(...)``."""

    def secrets(self) -> Mapping[str, str]:
        """What an application configures to verify this provider's webhooks, by setting
        name (``{"webhook_secret": "whsec_..."}``); printed by ``paygate sandbox``."""
        return {}

    def on_engine_event(self, event: JSON) -> None:
        """An event the engine emitted (fake vocabulary): emit the provider's event(s)."""

    def sign(self, body: bytes, url: str, timestamp: int) -> Mapping[str, str]:
        """Headers that sign one delivery of ``body`` to ``url``."""
        return {}

    def emit(self, payload: JSON, *, event_id: str, type: str) -> StoredEvent:
        """Store and deliver one of this provider's events."""
        return self.sandbox.bus.emit(self.name, payload, event_id=event_id, type=type)

    def trigger_types(self) -> list[str]:
        """The event types `trigger` can fire."""
        return []

    def trigger(self, event_type: str) -> list[str]:
        """Make ``event_type`` happen for real (creating what it needs, as ``stripe trigger``
        does) and return the ids of the events emitted."""
        raise InvalidRequest(
            f"{self.name} cannot trigger {event_type!r:.80}; "
            f"try one of: {', '.join(self.trigger_types()) or '(none yet)'}",
            provider="sandbox",
        )
