"""Payment facts: what the application is told, once, whichever channel brought it.

A *delivery* (a webhook, an API answer, the customer's redirect, a reconciliation run) is
transport; a *fact* (the payment succeeded, a refund failed, a dispute was lost) is what
the application acts on. Each state transition the state machine applies yields one fact
per `paygate.state.Step.applied` entry, written to the store's outbox in the same
transaction as the payment row and its transition log; the Gateway's dispatcher hands
every recorded fact to the handlers registered for its type, once, in order per payment.

The fact's ``id`` is derived from the payment, the fact type and the refund or dispute id,
and is unique in the store: the same fact can never be recorded twice, whichever channel
reports it and however often.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Final, Literal

from paygate.models import (
    Dispute,
    EventType,
    Payment,
    Refund,
    Subscription,
    WebhookEvent,
    WebhookObject,
)
from paygate.money import Money
from paygate.state import PaymentEvent, Trigger
from paygate.subscription_state import SUBSCRIPTION_FACT_TYPES, SubscriptionFactNews

__all__ = [
    "FACT_TYPES",
    "PAYMENT_FACT_TYPES",
    "SUBSCRIPTION_FACT_TYPES",
    "TRIGGER_FACTS",
    "Fact",
    "FactClaim",
    "FactSource",
    "fact_id",
    "subscription_fact",
]

#: the state machine's triggers -> the fact each applied one is (``created`` is none: a
#: payment's creation is the application's own doing)
TRIGGER_FACTS: Final[Mapping[Trigger, EventType]] = {
    Trigger.ACTION_REQUIRED: EventType.PAYMENT_ACTION_REQUIRED,
    Trigger.PROCESSING: EventType.PAYMENT_PROCESSING,
    Trigger.AUTHORIZED: EventType.PAYMENT_AUTHORIZED,
    Trigger.SUCCEEDED: EventType.PAYMENT_SUCCEEDED,
    Trigger.FAILED: EventType.PAYMENT_FAILED,
    Trigger.CANCELED: EventType.PAYMENT_CANCELED,
    Trigger.REFUNDED: EventType.REFUND_SUCCEEDED,
    Trigger.REFUND_REVERSED: EventType.REFUND_FAILED,
    Trigger.DISPUTE_OPENED: EventType.DISPUTE_OPENED,
    Trigger.DISPUTE_WON: EventType.DISPUTE_WON,
    Trigger.DISPUTE_LOST: EventType.DISPUTE_LOST,
}

#: the payment facts (the payment state machine's)
PAYMENT_FACT_TYPES: Final = frozenset(TRIGGER_FACTS.values())
#: event types whose handlers hear facts (from the outbox), never webhook deliveries: the
#: payment facts and the subscription facts (paygate.subscription_state)
FACT_TYPES: Final = PAYMENT_FACT_TYPES | SUBSCRIPTION_FACT_TYPES

#: the channel that established a fact
FactSource = Literal["webhook", "api", "return", "reconcile"]

_REFUND_FACTS = frozenset({EventType.REFUND_SUCCEEDED, EventType.REFUND_FAILED})
_DISPUTE_FACTS = frozenset(
    {EventType.DISPUTE_OPENED, EventType.DISPUTE_WON, EventType.DISPUTE_LOST}
)


def fact_id(provider: str, payment_id: str, fact_type: EventType, ref: str | None) -> str:
    """The fact's stable id: the same fact reported by any channel has the same id."""
    base = f"{provider}:{payment_id}:{fact_type.value}"
    return f"{base}:{ref}" if ref else base


@dataclass(frozen=True, slots=True)
class Fact:
    """One payment fact, as handlers registered with ``@gw.on(EventType...)`` receive it.

    ``type``: the fact (``payment.succeeded``, ``refund.failed``, ``dispute.lost``, ...);
    ``payment``: the payment as stored right after the fact (``None`` for a subscription
    fact, whose ``subscription`` is the subscription as stored right after it, and whose
    ``payment_id`` is the subscription's id: the outbox keeps one order per id);
    ``source``: the channel that established it (``"webhook"``, ``"api"``, ``"return"``,
    ``"reconcile"``); ``ref``:
    the refund's or dispute's id where the fact has one; ``event``: the webhook event that
    brought it, when one did. ``attempts`` and ``last_error`` tell how often the handlers
    were tried and why they last failed.

    It answers what handlers read of a [`WebhookEvent`][paygate.models.WebhookEvent] (``id``,
    ``type``, ``provider``, ``payment_id``, ``order_id``, ``object``, ``occurred_at``), so
    a handler written for webhook events keeps working.
    """

    id: str
    type: EventType
    provider: str
    payment_id: str
    order_id: str | None
    payment: Payment | None
    source: str
    recorded_at: float
    occurred_at: datetime | None = None
    ref: str | None = None
    #: the fact's own amount where it has one: the refund's (reversed refund's), the
    #: captured total of a capture
    amount: Money | None = None
    event: WebhookEvent | None = None
    #: position in the outbox, set by the store
    seq: int | None = None
    attempts: int = 0
    last_error: str | None = None
    done_at: float | None = None
    #: for a subscription fact: the subscription as stored right after it
    subscription: Subscription | None = None

    @property
    def object(self) -> WebhookObject:
        """The refund or dispute a webhook carried for a refund or dispute fact; the
        invoice a webhook carried for an invoice fact; the payment (or subscription) as
        stored after the fact otherwise."""
        if self.type in _REFUND_FACTS or self.type in _DISPUTE_FACTS:
            obj = self.event.object if self.event is not None else None
            if isinstance(obj, (Refund, Dispute)):
                return obj
        if self.subscription is not None:
            obj = self.event.object if self.event is not None else None
            if self.type.value.startswith("invoice.") and obj is not None:
                return obj
            return self.subscription
        assert self.payment is not None
        return self.payment

    @property
    def subscription_id(self) -> str | None:
        """The subscription a subscription fact is about."""
        return self.subscription.id if self.subscription is not None else None

    @property
    def refund_id(self) -> str | None:
        return self.ref if self.type in _REFUND_FACTS else None

    @property
    def dispute_id(self) -> str | None:
        return self.ref if self.type in _DISPUTE_FACTS else None

    @property
    def provider_type(self) -> str:
        """The provider's own event name when a webhook brought the fact, else ``""``."""
        return self.event.provider_type if self.event is not None else ""

    @property
    def done(self) -> bool:
        """Its handlers ran to the end."""
        return self.done_at is not None

    @property
    def recorded(self) -> datetime:
        return datetime.fromtimestamp(self.recorded_at, tz=timezone.utc)

    @classmethod
    def of(
        cls,
        change: PaymentEvent,
        payment: Payment,
        *,
        source: str,
        recorded_at: float,
        event: WebhookEvent | None = None,
    ) -> Fact | None:
        """The fact an applied state-machine event is, or ``None`` (``created``)."""
        fact_type = TRIGGER_FACTS.get(change.trigger)
        if fact_type is None:
            return None
        occurred = None
        if change.at is not None:
            occurred = datetime.fromtimestamp(change.at, tz=timezone.utc)
        elif event is not None:
            occurred = event.occurred_at
        return cls(
            id=fact_id(payment.provider, payment.id, fact_type, change.ref),
            type=fact_type,
            provider=payment.provider,
            payment_id=payment.id,
            order_id=payment.order_id,
            payment=payment,
            source=source,
            recorded_at=recorded_at,
            occurred_at=occurred,
            ref=change.ref,
            amount=None if change.amount is None else _amount(change.amount, payment),
            event=event,
        )


def _amount(amount: int, payment: Payment) -> Money:
    """``Money(amount, payment's currency)``: the payment's own captured, refunded or
    total amount when it is that one (Money is immutable; a fact's amount mostly is),
    else a new one (issue 18: not validated again per fact)."""
    currency = payment.amount.currency
    for shown in (payment.amount_captured, payment.amount, payment.amount_refunded):
        if shown is not None and shown.amount == amount and shown.currency == currency:
            return shown
    return Money(amount, currency)


def subscription_fact(
    news: SubscriptionFactNews,
    subscription: Subscription,
    *,
    source: str,
    recorded_at: float,
    event: WebhookEvent | None = None,
) -> Fact:
    """The outbox entry of a fact a subscription step established
    ([SubscriptionStep.facts][paygate.subscription_state.SubscriptionStep])."""
    occurred = None
    if news.at is not None:
        occurred = datetime.fromtimestamp(news.at, tz=timezone.utc)
    elif event is not None:
        occurred = event.occurred_at
    return Fact(
        id=fact_id(subscription.provider, subscription.id, news.type, news.ref),
        type=news.type,
        provider=subscription.provider,
        payment_id=subscription.id,
        order_id=None,
        payment=None,
        source=source,
        recorded_at=recorded_at,
        occurred_at=occurred,
        ref=news.ref,
        event=event,
        subscription=subscription,
    )


@dataclass(frozen=True, slots=True)
class FactClaim:
    """A fact this worker owns (``token``) until ``lease_until`` while its handlers run."""

    fact: Fact
    token: str
    lease_until: float
