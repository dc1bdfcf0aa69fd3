"""Subscription news into the store: the logic below the Gateway's subscription calls.

A webhook event, an API answer or a reconciliation run teaches paygate something about a
subscription. [news_from_webhook][paygate._subscriptions.news_from_webhook] reads the
news an event carries; [plan][paygate._subscriptions.plan] decides, without I/O, what to
write (the row, its transition, the facts); [record_news][paygate._subscriptions.record_news]
is the synchronous driver: read, plan, write compare-and-set, again on a lost race. The
asynchronous face drives the same ``plan`` with its own store calls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from paygate._facts import Fact, subscription_fact
from paygate.models import EventType, Invoice, Subscription, WebhookEvent
from paygate.stores._records import StoreConflict
from paygate.stores._subscriptions import (
    SubscriptionRecord,
    SubscriptionStore,
    SubscriptionTransition,
)
from paygate.subscription_state import (
    InvoiceNews,
    SubscriptionNews,
    SubscriptionStep,
    apply,
)

__all__ = [
    "Planned",
    "news_from_webhook",
    "plan",
    "record_news",
    "snapshot_news",
    "subscription_id_of",
]

_SNAPSHOT_EVENTS: Final = frozenset(
    {
        EventType.SUBSCRIPTION_CREATED,
        EventType.SUBSCRIPTION_UPDATED,
        EventType.SUBSCRIPTION_CANCELED,
        EventType.SUBSCRIPTION_PAYMENT_FAILED,
        EventType.SUBSCRIPTION_TRIAL_WILL_END,
    }
)
_INVOICE_EVENTS: Final[dict[EventType, Literal["paid", "payment_failed", "upcoming"]]] = {
    EventType.INVOICE_PAID: "paid",
    EventType.INVOICE_PAYMENT_FAILED: "payment_failed",
    EventType.INVOICE_UPCOMING: "upcoming",
}

#: how often a write that lost a race is planned again before giving up
_ATTEMPTS: Final = 8


def _paypal_failure(subscription: Subscription) -> InvoiceNews | None:
    """PayPal's BILLING.SUBSCRIPTION.PAYMENT.FAILED names no invoice: the failed payment's
    time names it, ``failed_payments_count`` numbers the attempt."""
    raw = subscription.raw if isinstance(subscription.raw, dict) else {}
    billing = raw.get("billing_info") or {}
    failed = billing.get("last_failed_payment") or {}
    when = failed.get("time")
    if not when:
        return None
    attempt = int(billing.get("failed_payments_count") or 1)
    return InvoiceNews("payment_failed", f"cycle@{when}", attempt)


def news_from_webhook(event: WebhookEvent) -> SubscriptionNews | None:
    """The subscription news a webhook event carries, or ``None`` (not about one).

    Args:
        event: A verified, normalized event.

    Returns:
        A snapshot (subscription events), with the trial notice or a payment failure where
        the event is one; or an invoice's news (invoice events of a subscription's invoice).
    """
    at = event.occurred_at.timestamp() if event.occurred_at is not None else None
    obj = event.object
    if isinstance(obj, Subscription) and event.type in _SNAPSHOT_EVENTS:
        invoice = None
        if event.type is EventType.SUBSCRIPTION_PAYMENT_FAILED:
            invoice = _paypal_failure(obj)
        return SubscriptionNews(
            obj,
            at=at,
            trial_will_end=event.type is EventType.SUBSCRIPTION_TRIAL_WILL_END,
            invoice=invoice,
        )
    kind = _INVOICE_EVENTS.get(event.type)
    if isinstance(obj, Invoice) and kind is not None and obj.subscription_id:
        return SubscriptionNews(None, at=at, invoice=InvoiceNews.of(kind, obj))
    return None


def subscription_id_of(news: SubscriptionNews) -> str:
    """The subscription the news is about."""
    if news.subscription is not None:
        return news.subscription.id
    assert news.invoice is not None and news.invoice.invoice is not None
    sub_id = news.invoice.invoice.subscription_id
    assert sub_id is not None
    return sub_id


@dataclass(frozen=True, slots=True)
class Planned:
    """What one piece of news does to the store.

    Attributes:
        step: The state machine's step.
        record: The row to write (``None``: nothing changes).
        expected_version: The version the written row replaces (``None``: insert).
        transition: The transition to log.
        facts: The facts to record in the outbox.
    """

    step: SubscriptionStep
    record: SubscriptionRecord | None
    expected_version: int | None
    transition: SubscriptionTransition | None
    facts: tuple[Fact, ...]


def plan(
    current: SubscriptionRecord | None,
    news: SubscriptionNews,
    *,
    source: str,
    now: float,
    event: WebhookEvent | None = None,
) -> Planned:
    """Decide what ``news`` does to the stored ``current``. Pure.

    Raises:
        InvalidTransition: The news shows a move the table forbids.
        ValueError: Invoice news of a subscription the store does not know (fetch its
            snapshot first).
    """
    step = apply(current.state if current is not None else None, news)
    if not step.changed:
        return Planned(step, None, None, None, ())
    sub = step.state.subscription
    record = SubscriptionRecord(
        step.state,
        version=(current.version + 1) if current is not None else 1,
        created_at=current.created_at if current is not None else now,
        updated_at=now,
    )
    facts = tuple(
        subscription_fact(f, sub, source=source, recorded_at=now, event=event) for f in step.facts
    )
    transition = None
    if current is None or current.state.subscription != sub or step.facts:
        transition = SubscriptionTransition(
            subscription_id=sub.id,
            provider=sub.provider,
            previous_status=step.previous,
            new_status=sub.status,
            price_id=sub.price_id,
            quantity=sub.quantity,
            facts=tuple(f.type.value for f in step.facts),
            source=source,
            event_id=event.id if event is not None else None,
            event_type=event.type.value if event is not None else None,
            recorded_at=now,
        )
    return Planned(
        step, record, current.version if current is not None else None, transition, facts
    )


def record_news(
    store: SubscriptionStore,
    news: SubscriptionNews,
    *,
    source: str,
    now: float,
    event: WebhookEvent | None = None,
    fetch: Callable[[str], Subscription] | None = None,
) -> Planned:
    """Apply ``news`` to the stored subscription: read, plan, write (compare-and-set).

    Args:
        store: The store.
        news: The news.
        source: ``"webhook"``, ``"api"`` or ``"reconcile"``.
        now: The clock (Unix seconds).
        event: The webhook event that brought the news, if one did.
        fetch: Asks the provider for the subscription, for invoice news of one the store
            has not seen: its answer (as of ``now``) is applied first.

    Returns:
        What was planned and written.

    Raises:
        InvalidTransition: The news contradicts what is stored.
        StoreConflict: Other writers kept winning the race.
    """
    sub_id = subscription_id_of(news)
    for _ in range(_ATTEMPTS):
        current = store.get_subscription(sub_id)
        if current is None and news.subscription is None:
            if fetch is None:
                raise ValueError(f"subscription {sub_id} is not stored; pass fetch=")
            record_news(store, SubscriptionNews(fetch(sub_id), at=now), source="api", now=now)
            continue
        planned = plan(current, news, source=source, now=now, event=event)
        if planned.record is None:
            return planned
        try:
            store.save_subscription(
                planned.record,
                expected_version=planned.expected_version,
                transition=planned.transition,
                facts=planned.facts,
            )
        except StoreConflict:
            continue  # another worker wrote first: judge the news against its write
        return planned
    raise StoreConflict(f"subscription {sub_id}: lost the race {_ATTEMPTS} times")


def snapshot_news(subscription: Subscription, *, at: float) -> SubscriptionNews:
    """The news an API answer carries (``at``: the time it was asked)."""
    return SubscriptionNews(dataclasses.replace(subscription), at=at)
