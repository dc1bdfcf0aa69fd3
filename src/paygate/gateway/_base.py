"""What both faces share: the policies, argument checks, record building and handlers.

[`GatewayBase`][paygate.gateway._base.GatewayBase] holds no I/O: the flows built on it
(``_payments``, ``_customers``, ``_webhooks``, ...) ask for the store and the provider
through effects (``_sansio``), and the two faces ([`Gateway`][paygate.gateway.Gateway],
``AsyncGateway``) run them.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from paygate._ids import MAX_ID_LENGTH, MAX_URL_LENGTH, check_id
from paygate._observe import fields
from paygate._replace import replace
from paygate._retry import RetryPolicy
from paygate.errors import ConfigurationError, ValidationError
from paygate.models import (
    EventType,
    LineItem,
    Payment,
    PaymentStatus,
    SubscriptionStatus,
    WebhookEvent,
)
from paygate.money import Money, currency_exponent
from paygate.state import Trigger, event_for_status
from paygate.stores import PaymentRecord, TransitionRecord

__all__ = ["GatewayBase", "WebhookHandler"]

_log = logging.getLogger("paygate")

#: a handler: called with a [`Fact`][paygate._facts.Fact] for payment facts, with the
#: [`WebhookEvent`][paygate.models.WebhookEvent] for other events (subscriptions,
#: invoices, ...)
WebhookHandler = Callable[[Any], Any]

#: the channel label of facts and transitions recorded inside ``Gateway.channel()``
_CHANNEL: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "paygate_channel", default=None
)
_CHANNELS = frozenset({"api", "return", "reconcile", "webhook"})
S = PaymentStatus
#: how often a compare-and-set write is retried after losing a race
CAS_ATTEMPTS = 20
#: statuses after which an order may be paid again with a new attempt
RETRYABLE_ATTEMPT = frozenset({S.FAILED, S.CANCELED})
ENDED_SUBSCRIPTION = frozenset({SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED})
SETTLED = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED, S.CHARGED_BACK})


class GatewayBase:
    """The policies and pure helpers every flow uses (no I/O here)."""

    retry: RetryPolicy
    currencies: frozenset[str] | None
    webhook_lease: float
    clock: Callable[[], float]

    def _configure(
        self,
        provider: Any,
        store: Any,
        *,
        retry: RetryPolicy | None,
        currencies: Iterable[str] | None,
        webhook_lease: float,
        clock: Callable[[], float],
    ) -> None:
        """The policies of a face's ``__init__``, checked the same way for both."""
        if retry is None:
            max_retries = getattr(provider, "max_retries", None)
            retry = (
                RetryPolicy(attempts=max_retries + 1) if max_retries is not None else RetryPolicy()
            )
        self.retry = retry
        self.currencies = None
        if currencies is not None:
            codes = frozenset(currencies)
            for code in codes:
                currency_exponent(code)  # UnknownCurrency for a typo
            self.currencies = codes
        if not webhook_lease > 0:
            raise ConfigurationError(f"webhook_lease must be > 0 seconds, got {webhook_lease}")
        self.webhook_lease = float(webhook_lease)
        self.clock = clock
        self._provider_name: str = provider.name
        #: the store writes a new event's first delivery in one transaction (SQL stores)
        self._can_ingest = callable(getattr(store, "ingest_event", None))
        #: the store writes a provider's answer in one transaction (every built-in one; a
        #: custom store without ``save_answer`` gets one write per transition, as before)
        self._can_save_answer = callable(getattr(store, "save_answer", None))
        #: the store keeps subscriptions (every built-in one; a custom store may not: then
        #: subscription events reach their handlers as before, and nothing is kept)
        self._keeps_subscriptions = callable(getattr(store, "save_subscription", None))
        self._handlers: dict[EventType | None, list[WebhookHandler]] = {}
        self._handlers_lock = threading.Lock()
        self._next_sweep = 0.0

    # -- argument checks ----------------------------------------------------------------

    def _check_money(self, amount: Any, what: str) -> Money:
        if not isinstance(amount, Money):
            raise ValidationError(
                f"{what} must be paygate.Money, got {type(amount).__name__}; "
                "use Money.of('19.99', 'USD')"
            )
        if amount.amount <= 0:
            raise ValidationError(f"{what} must be positive, got {amount}")
        if self.currencies is not None and amount.currency not in self.currencies:
            raise ValidationError(
                f"{what} is in {amount.currency}, which this gateway does not accept "
                f"(allowed: {', '.join(sorted(self.currencies))})"
            )
        return amount

    @staticmethod
    def _check_id(value: Any, what: str) -> str:
        # paygate._ids's one rule (no control character, no lone surrogate, at most 255
        # characters); a URL may be longer. Imported at the module's top: an import
        # statement here cost more than the check itself, at every call (issue 18).
        return check_id(
            value, what, max_length=MAX_URL_LENGTH if what.endswith("_url") else MAX_ID_LENGTH
        )

    def _check_lines(self, line_items: Sequence[LineItem]) -> Money:
        if isinstance(line_items, (str, bytes)) or not line_items:
            raise ValidationError("line_items must be a non-empty list of LineItem")
        for item in line_items:
            if not isinstance(item, LineItem):
                raise ValidationError(f"line_items must hold LineItem, got {type(item).__name__}")
        currencies = {item.unit_amount.currency for item in line_items}
        if len(currencies) != 1:
            raise ValidationError(f"line_items mix currencies: {', '.join(sorted(currencies))}")
        total = Money.zero(currencies.pop())
        for item in line_items:
            total += item.total
        return self._check_money(total, "line_items total")

    @staticmethod
    def _lines_fingerprint(line_items: Sequence[LineItem]) -> list[Any]:
        return [
            (i.name, i.unit_amount.amount, i.unit_amount.currency, i.quantity) for i in line_items
        ]

    # -- building records -----------------------------------------------------------------

    @staticmethod
    def _view(record: PaymentRecord, fresh: Payment | None = None) -> Payment:
        """The stored payment, with the provider's answer's ``client_secret`` and ``raw``
        (neither is ever stored) when there is one."""
        if fresh is None:
            return record.payment
        return replace(record.payment, client_secret=fresh.client_secret, raw=fresh.raw)

    @staticmethod
    def _transition(
        record: PaymentRecord,
        previous: PaymentStatus | None,
        trigger: Trigger | str,
        *,
        source: str,
        amount: int | None = None,
        event: WebhookEvent | None = None,
    ) -> TransitionRecord:
        state = record.state
        return TransitionRecord(
            payment_id=record.id,
            provider=record.payment.provider,
            trigger=str(trigger),
            previous_status=previous,
            new_status=state.status,
            currency=record.payment.amount.currency,
            amount=amount,
            captured=state.captured,
            refunded=state.refunded,
            source=source,
            event_id=event.id if event else None,
            event_type=event.type.value if event else None,
            recorded_at=record.updated_at,
        )

    @staticmethod
    def _merge(stored: Payment, fresh: Payment) -> Payment:
        """``stored`` with the descriptive fields of a newer answer (not its status or
        amounts: those come from the state machine)."""
        return replace(
            stored,
            order_id=stored.order_id or fresh.order_id,
            customer_id=fresh.customer_id or stored.customer_id,
            redirect_url=fresh.redirect_url,
            failure=fresh.failure,
            charge_id=fresh.charge_id or stored.charge_id,
            metadata=fresh.metadata or stored.metadata,
            created_at=stored.created_at or fresh.created_at,
        )

    @staticmethod
    def _log_transition(t: TransitionRecord) -> None:
        if not _log.isEnabledFor(logging.INFO):  # its arguments cost more than the check
            return
        _log.info(
            "payment %s: %s -> %s (%s via %s%s) captured=%s refunded=%s",
            t.payment_id, t.previous_status.value if t.previous_status else "new",
            t.new_status.value, t.trigger, t.source,
            f" event {t.event_id}" if t.event_id else "",
            t.captured_money, t.refunded_money,
            extra=fields(provider=t.provider, payment_id=t.payment_id, event_id=t.event_id,
                         event_type=t.event_type,
                         outcome=t.new_status.value),
        )  # fmt: skip

    # -- the channel label ------------------------------------------------------------------

    @staticmethod
    def _source(source: str) -> str:
        """``source``, unless the caller is inside ``channel()``."""
        return _CHANNEL.get() or source

    @contextlib.contextmanager
    def _channel(self, source: str) -> Iterator[None]:
        """Label the transitions and facts recorded inside the block with ``source``.

        Reconciliation's ``--apply`` syncs through ``get_payment`` and ``refund`` inside
        ``channel("reconcile")``. The label lives in a context variable: it holds for the
        thread (sync face) or the task (async face) that entered the block.

        Args:
            source: ``"reconcile"``, ``"return"``, ``"api"`` or ``"webhook"``.

        Raises:
            ValidationError: another label.
        """
        if source not in _CHANNELS:
            raise ValidationError(
                f"channel must be one of {', '.join(sorted(_CHANNELS))}, got {source!r}"
            )
        token = _CHANNEL.set(source)
        try:
            yield
        finally:
            _CHANNEL.reset(token)

    # -- handlers -------------------------------------------------------------------------

    def _register(self, event_types: tuple[EventType | str, ...], handler: WebhookHandler) -> None:
        types: list[EventType | None] = [EventType(t) for t in event_types] or [None]
        with self._handlers_lock:
            for event_type in types:
                self._handlers.setdefault(event_type, []).append(handler)

    def _handlers_for(self, event_type: EventType) -> list[WebhookHandler]:
        with self._handlers_lock:
            return [*self._handlers.get(event_type, ()), *self._handlers.get(None, ())]


def is_async(handler: Any) -> bool:
    """A coroutine function, or a partial or callable object around one."""
    target = handler
    for _ in range(8):  # partial(partial(f)) and the like
        if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
            return True
        inner = getattr(target, "func", None)  # functools.partial
        if inner is None:
            break
        target = inner
    if inspect.isfunction(handler) or inspect.ismethod(handler):
        return False
    # a callable object: its class's __call__ (looked up on the type, as a call does)
    call = type(handler).__dict__.get("__call__") or getattr(type(handler), "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call)


def status_trigger(status: PaymentStatus) -> Trigger:
    event = event_for_status(status)
    return event.trigger if event is not None else Trigger.REFUNDED
