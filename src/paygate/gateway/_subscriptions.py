"""Subscriptions after they start, as flows (see ``_sansio``): read, change, pause, resume,
cancel and its undo, dunning, and the subscription news of webhooks.

Every answer the provider gives about a subscription is news for the store
([paygate.subscription_state][]): it is applied like a webhook's (``source="api"``,
ordered by the provider's own version or time, or by the moment paygate asked), so the
facts it establishes are told once, whichever channel brings them first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from paygate import _idempotency as idem
from paygate._facts import FACT_TYPES, Fact
from paygate._observe import fields
from paygate._subscriptions import Planned, plan, subscription_id_of
from paygate.errors import InvalidTransition, NotSupported, ValidationError
from paygate.gateway._base import CAS_ATTEMPTS
from paygate.gateway._facts_dispatch import FactDispatch
from paygate.gateway._idempotency import IdempotencyFlows
from paygate.gateway._results import WebhookResult
from paygate.gateway._sansio import Flow, provider, run_handler, store
from paygate.models import Invoice, InvoiceStatus, Subscription, WebhookEvent
from paygate.provider import PaymentProvider, Proration, SubscriptionProvider
from paygate.stores import (
    ClaimStatus,
    EventOutcome,
    Store,
    StoreConflict,
    SubscriptionStore,
    _codec,
)
from paygate.subscription_state import InvoiceNews, SubscriptionNews

__all__ = ["SubscriptionFlows"]

_log = logging.getLogger("paygate")

_PRORATIONS = ("create_prorations", "none", "always_invoice")


class SubscriptionFlows(IdempotencyFlows, FactDispatch):
    """The subscription operations after creation, each a flow."""

    def _record_news(
        self,
        news: SubscriptionNews,
        *,
        source: str,
        event: WebhookEvent | None = None,
    ) -> Flow[Planned]:
        """Apply ``news`` to the stored subscription: read, plan, write compare-and-set
        (again on a lost race). Invoice news of a subscription the store has never seen
        asks the provider for it first."""
        sub_id = subscription_id_of(news)
        for _ in range(CAS_ATTEMPTS):
            now = self.clock()
            current = yield from store(SubscriptionStore.get_subscription, sub_id)
            if current is None and news.subscription is None:
                fetched = yield from self._call(
                    "get_subscription",
                    lambda: provider(PaymentProvider.get_subscription, sub_id),
                )
                yield from self._record_news(SubscriptionNews(fetched, at=now), source="api")
                continue
            planned = plan(current, news, source=source, now=now, event=event)
            if planned.record is None:
                return planned
            try:
                yield from store(
                    SubscriptionStore.save_subscription,
                    planned.record, expected_version=planned.expected_version,
                    transition=planned.transition, facts=planned.facts,
                )  # fmt: skip
            except StoreConflict:
                continue  # another writer won: judge the news against its write
            if planned.transition is not None:
                t = planned.transition
                _log.info(
                    "subscription %s: %s -> %s (%s)%s",
                    t.subscription_id,
                    t.previous_status.value if t.previous_status else "new",
                    t.new_status.value,
                    source,
                    f" facts: {', '.join(t.facts)}" if t.facts else "",
                    extra=fields(operation="subscription_transition"),
                )
            return planned
        raise StoreConflict(f"subscription {sub_id}: too much write contention, giving up")

    def _answered(self, asked_at: float, subscription: Subscription) -> Flow[Subscription]:
        """Record a provider's answer (as of ``asked_at``) and return it."""
        if not self._keeps_subscriptions:
            return subscription
        try:
            planned = yield from self._record_news(
                SubscriptionNews(subscription, at=asked_at), source="api"
            )
        except InvalidTransition as exc:  # the store's copy contradicts the provider's
            _log.warning(
                "subscription %s: answer not applied: %s",
                subscription.id,
                exc,
                extra=fields(operation="subscription_sync", error_type=type(exc).__name__),
            )
        else:
            # the facts this answer established: their handlers run now, from the outbox
            yield from self._pump({f.id: f for f in planned.facts})
        return subscription

    def _kept(self, flow: Flow[Subscription]) -> Flow[Subscription]:
        """Run ``flow`` (creating or canceling, in ``_customers``), and keep its answer in
        the store."""
        asked_at = self.clock()
        subscription = yield from flow
        return (yield from self._answered(asked_at, subscription))

    def _subscription_call(
        self, operation: str, subscription_id: str, attempt: Callable[[], Flow[Subscription]]
    ) -> Flow[Subscription]:
        self._check_id(subscription_id, "subscription_id")
        asked_at = self.clock()
        subscription = yield from self._call(operation, attempt)
        _log.info(
            "%s %s -> %s",
            operation,
            subscription_id,
            subscription.status.value,
            extra=fields(operation=operation),
        )
        return (yield from self._answered(asked_at, subscription))

    def _get_subscription(self, subscription_id: str) -> Flow[Subscription]:
        return (
            yield from self._subscription_call(
                "get_subscription", subscription_id,
                lambda: provider(PaymentProvider.get_subscription, subscription_id),
            )
        )  # fmt: skip

    def _list_subscriptions(self, customer_id: str | None) -> Flow[list[Subscription]]:
        if customer_id is not None:
            self._check_id(customer_id, "customer_id")
        asked_at = self.clock()
        try:
            listed = yield from self._call(
                "list_subscriptions",
                lambda: provider(SubscriptionProvider.list_subscriptions, customer_id=customer_id),
            )
        except NotSupported:
            if not self._keeps_subscriptions:
                raise
            # the provider cannot list (PayPal): the subscriptions paygate has heard of
            records = yield from store(
                SubscriptionStore.list_subscriptions, customer_id=customer_id
            )
            return [record.subscription for record in records]
        for subscription in listed:
            yield from self._answered(asked_at, subscription)
        return listed

    def _change_subscription(
        self,
        subscription_id: str,
        *,
        price_id: str | None,
        quantity: int | None,
        proration: Proration,
        idempotency_key: str | None,
    ) -> Flow[Subscription]:
        self._check_id(subscription_id, "subscription_id")
        if price_id is None and quantity is None:
            raise ValidationError("change_subscription needs price_id or quantity")
        if price_id is not None:
            self._check_id(price_id, "price_id")
        if quantity is not None and (
            isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1
        ):
            raise ValidationError(f"quantity must be an int >= 1, got {quantity!r}")
        if proration not in _PRORATIONS:
            raise ValidationError(
                f"proration must be one of {', '.join(_PRORATIONS)}, got {proration!r}"
            )
        identity = idempotency_key or idem.digest(subscription_id, price_id, quantity, proration)
        asked_at = self.clock()

        def call(key: str) -> Flow[Subscription]:
            return provider(
                SubscriptionProvider.change_subscription, subscription_id,
                price_id=price_id, quantity=quantity, proration=proration, idempotency_key=key,
            )  # fmt: skip

        changed = yield from self._idempotent(
            scope=f"change_subscription:{subscription_id}:{identity}",
            operation="change_subscription",
            fingerprint=idem.fingerprint(
                subscription=subscription_id, price=price_id, quantity=quantity,
                proration=proration,
            ),
            key_for=lambda n: idem.provider_key(subscription_id, "change", identity, n),
            call=call,
            replay=self._replay_stored(Subscription),
            result_id=lambda s: s.id,
        )  # fmt: skip
        _log.info(
            "change_subscription %s price=%s quantity=%s proration=%s -> %s",
            subscription_id,
            price_id,
            quantity,
            proration,
            changed.status.value,
            extra=fields(operation="change_subscription"),
        )
        return (yield from self._answered(asked_at, changed))

    def _pause_subscription(self, subscription_id: str) -> Flow[Subscription]:
        return (
            yield from self._subscription_call(
                "pause_subscription", subscription_id,
                lambda: provider(SubscriptionProvider.pause_subscription, subscription_id),
            )
        )  # fmt: skip

    def _resume_subscription(self, subscription_id: str) -> Flow[Subscription]:
        return (
            yield from self._subscription_call(
                "resume_subscription", subscription_id,
                lambda: provider(SubscriptionProvider.resume_subscription, subscription_id),
            )
        )  # fmt: skip

    def _undo_cancel_subscription(self, subscription_id: str) -> Flow[Subscription]:
        return (
            yield from self._subscription_call(
                "undo_cancel_subscription", subscription_id,
                lambda: provider(SubscriptionProvider.undo_cancel_subscription, subscription_id),
            )
        )  # fmt: skip

    def _retry_invoice(self, invoice_id: str, *, idempotency_key: str | None) -> Flow[Invoice]:
        """Collect an open invoice again; the subscription it bills is read back (a paid
        retry of a past-due one makes it active: ``subscription.recovered``)."""
        self._check_id(invoice_id, "invoice_id")
        now = self.clock()
        # each retry is a new attempt: a fresh key unless the caller names one
        key = idem.provider_key(
            invoice_id, "retry", idempotency_key or idem.digest(invoice_id, now)
        )
        invoice = yield from self._call(
            "retry_invoice",
            lambda: provider(SubscriptionProvider.retry_invoice, invoice_id, idempotency_key=key),
        )
        _log.info(
            "retry_invoice %s -> %s",
            invoice_id,
            invoice.status.value,
            extra=fields(operation="retry_invoice"),
        )
        if invoice.subscription_id and self._keeps_subscriptions:
            paid = invoice.status is InvoiceStatus.PAID
            news = InvoiceNews.of("paid" if paid else "payment_failed", invoice)
            planned = yield from self._record_news(
                SubscriptionNews(None, at=now, invoice=news), source="api"
            )
            yield from self._pump({f.id: f for f in planned.facts})
            yield from self._get_subscription(invoice.subscription_id)
        return invoice

    # -- webhooks ------------------------------------------------------------------------------

    def _handle_subscription_event(
        self, event: WebhookEvent, news: SubscriptionNews
    ) -> Flow[WebhookResult]:
        """A subscription's (or its invoice's) event: claim it, apply its news to the
        stored subscription with the facts it establishes (the outbox), run the handlers
        of event types that are not facts (``subscription.created``, ...), finish it."""
        occurred = event.occurred_at.timestamp() if event.occurred_at else None
        claim = yield from store(
            Store.claim_event,
            self._provider_name, event.id, event_type=event.type.value,
            provider_type=event.provider_type, payment_id=None,
            payload=_codec.dump(event), occurred_at=occurred, now=self.clock(),
            lease_seconds=self.webhook_lease,
        )  # fmt: skip
        if not claim.owned:
            in_progress = claim.status is ClaimStatus.IN_PROGRESS
            _log.info(
                "webhook %s (%s): duplicate delivery%s",
                event.id,
                event.type.value,
                ", in progress elsewhere" if in_progress else "",
                extra=fields(event_id=event.id, event_type=event.type.value, outcome="duplicate"),
            )
            return WebhookResult(event, True, None, None, claim.outcome, in_progress=in_progress)
        # a fact's handlers hear it from the outbox; other types hear the delivery
        handlers = [] if event.type in FACT_TYPES else self._handlers_for(event.type)
        facts: tuple[Fact, ...] = ()
        error: str | None = None
        outcome: EventOutcome | None = claim.outcome
        if not claim.applied:
            try:
                planned = yield from self._record_news(news, source="webhook", event=event)
            except InvalidTransition as exc:
                outcome, error, handlers = "rejected", str(exc), []
                _log.warning(
                    "webhook %s (%s) rejected: %s",
                    event.id,
                    event.type.value,
                    exc,
                    extra=fields(
                        event_id=event.id, event_type=event.type.value, outcome="rejected"
                    ),
                )
            else:
                step = planned.step
                outcome = "applied" if step.changed else (
                    "stale" if step.result == "stale" else "unchanged"
                )  # fmt: skip
                facts = planned.facts
                if outcome == "stale":
                    handlers = []
            yield from store(Store.record_outcome, claim, outcome, now=self.clock())
        for handler in handlers:
            try:
                yield from run_handler(handler, event)
            except BaseException as exc:
                yield from store(
                    Store.release_event, claim, error=f"{type(exc).__name__}: {exc}"[:500]
                )
                raise
        yield from store(Store.finish_event, claim, now=self.clock())
        _log.info(
            "webhook %s (%s): %s, subscription %s",
            event.id,
            event.type.value,
            outcome,
            subscription_id_of(news),
            extra=fields(event_id=event.id, event_type=event.type.value, outcome=outcome),
        )
        return WebhookResult(
            event, False, None, None, outcome, handlers_run=len(handlers), error=error,
            facts=facts,
        )  # fmt: skip
