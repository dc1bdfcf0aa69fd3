"""The webhook pipeline, as flows (see ``_sansio``).

Verify and parse → claim the event id → apply the pure state transition
([`paygate.state`][paygate.state]) to the stored payment, in one transaction with the
transition log and the facts it established (the outbox) → mark the event processed →
dispatch the facts. Exactly once across workers: the claim is a lease in the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from paygate import _observe
from paygate._facts import PAYMENT_FACT_TYPES, Fact, FactClaim
from paygate._observe import fields
from paygate._replace import replace
from paygate._subscriptions import news_from_webhook
from paygate.errors import InvalidTransition, WebhookVerificationError
from paygate.gateway._base import CAS_ATTEMPTS, WebhookHandler
from paygate.gateway._facts_dispatch import FactDispatch
from paygate.gateway._results import NOTHING, WebhookResult
from paygate.gateway._sansio import Flow, handler_name, provider, run_handler, store, store_of
from paygate.gateway._state_sync import StateSync
from paygate.gateway._subscriptions import SubscriptionFlows
from paygate.models import EventType, Payment, PaymentStatus, WebhookEvent
from paygate.provider import PaymentProvider
from paygate.state import PaymentEvent, PaymentState, Step, Trigger, apply, event_from_webhook
from paygate.stores import (
    ClaimStatus,
    EventClaim,
    EventOutcome,
    PaymentRecord,
    Store,
    StoreConflict,
    _codec,
)
from paygate.stores._records import EventPlan

_log = logging.getLogger("paygate")
S = PaymentStatus

#: (outcome, previous status, record, error, finished, facts recorded) of an event's
#: first processing
_Applied = tuple[
    "EventOutcome | None",
    "PaymentStatus | None",
    "PaymentRecord | None",
    "str | None",
    bool,
    "tuple[Fact, ...]",
]


class _Ingesting(Protocol):
    """The SQL stores' one-transaction first delivery (``SQLStore.ingest_event``)."""

    def ingest_event(
        self,
        provider: str,
        event_id: str,
        *,
        event_type: str,
        provider_type: str,
        payment_id: str | None,
        payload: Mapping[str, Any],
        occurred_at: float | None,
        now: float,
        lease_seconds: float,
        decide: Callable[[PaymentRecord | None], EventPlan | None],
    ) -> tuple[EventClaim, EventPlan | None, PaymentRecord | None] | None: ...


class WebhookFlows(StateSync, FactDispatch):
    """``_handle_webhook`` and ``_replay``, each a flow."""

    def _replay(
        self,
        *,
        since: float | Any | None,
        payment_id: str | None,
        source: Any,
        dry_run: bool,
    ) -> Flow[list[WebhookEvent]]:
        if since is not None and not isinstance(since, int | float):
            since = since.timestamp()  # a datetime
        if source is None:
            records = yield from store(Store.list_events, since=since, payment_id=payment_id)
        else:
            records = yield from store_of(
                source, Store.list_events, since=since, payment_id=payment_id
            )
        replayed: list[WebhookEvent] = []
        for record in records:
            if record.provider != self._provider_name or record.outcome in (
                None, "stale", "rejected",
            ):  # fmt: skip
                continue
            event: WebhookEvent = record.to_event()
            handlers = self._handlers_for(event.type)
            if not handlers:
                continue
            if not dry_run:
                for handler in handlers:
                    yield from run_handler(handler, event)
                _log.info("replay %s (%s): %d handler(s) ran", event.id, event.type.value,
                          len(handlers),
                          extra=fields(provider=self._provider_name, operation="replay",
                                       event_id=event.id, event_type=event.type.value,
                                       payment_id=event.payment_id))  # fmt: skip
            replayed.append(event)
        return replayed

    def _handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> Flow[WebhookResult]:
        """One delivery, under the span ``paygate.webhook`` (the provider's parse, the
        transition and the handlers are its children) with its lag and outcome
        counted, when OpenTelemetry is there and set up (else the span would be a no-op
        and the API's proxy instruments would drop the counts: neither is made)."""
        if not _observe.watching():
            try:
                return (yield from self._handle_delivery(body, headers))
            except WebhookVerificationError as exc:
                self._log_refused(exc)
                raise
        received = self.clock()
        with _observe.span("paygate.webhook", {"paygate.provider": self._provider_name}) as current:
            try:
                result = yield from self._handle_delivery(body, headers)
            except BaseException as exc:
                if isinstance(exc, WebhookVerificationError):
                    self._log_refused(exc)
                _observe.webhook_failed(current, self._provider_name, exc)
                raise
            _observe.webhook_done(current, self._provider_name, result, received)
            return result

    def _log_refused(self, exc: WebhookVerificationError) -> None:
        _log.info(
            "webhook refused: %s", type(exc).__name__,
            extra=fields(provider=self._provider_name, operation="handle_webhook",
                         outcome="invalid", error_type=type(exc).__name__),
        )  # fmt: skip

    def _handle_delivery(self, body: bytes, headers: Mapping[str, str]) -> Flow[WebhookResult]:
        event = yield from provider(PaymentProvider.parse_webhook, body, headers)
        claimed: list[FactClaim] = []  # facts the ingest transaction claimed for us
        result = yield from self._handle_event(event, claimed)
        if result.duplicate:  # changed nothing: its facts (if any) were dispatched already
            return result
        # the facts this delivery recorded (and other due ones): handlers run from the
        # outbox, outside any transaction; a failure is reported, never raised
        summary = yield from self._pump(
            known_due=bool(result.facts), facts=result.facts, claimed=claimed
        )
        if summary is NOTHING:
            return result
        return replace(
            result, handlers_run=result.handlers_run + summary.handlers_run,
            handler_errors=summary.errors,
        )  # fmt: skip

    def _handle_event(
        self, event: WebhookEvent, claimed: list[FactClaim] | None = None
    ) -> Flow[WebhookResult]:
        """``claimed``: where to put the facts the store claimed for this worker while
        recording them (their handlers are then to run without a claim of their own)."""
        news = news_from_webhook(event)
        if news is not None and isinstance(self, SubscriptionFlows) and self._keeps_subscriptions:
            # a subscription's or its invoice's event: gateway/_subscriptions.py
            return (yield from self._handle_subscription_event(event, news))
        payment_id = event.payment_id
        occurred = event.occurred_at.timestamp() if event.occurred_at else None
        # a payment fact's handlers hear the fact from the outbox, not this delivery
        fact_event = payment_id is not None and event.type in PAYMENT_FACT_TYPES
        handlers = [] if fact_event else self._handlers_for(event.type)
        # the first delivery of an event, on a store that can: claim, transition, log
        # (and finish, with no handler to wait for) in one transaction; a redelivery
        # there: counted (taken over if nobody owns the event) in one transaction too
        with _observe.event_span("paygate.webhook.transition", event):
            ingested = yield from self._ingest_new(
                event, occurred, quiet=not handlers, claimed=claimed
            )
        stored: PaymentRecord | None = None
        if ingested is not None:
            claim, applied, stored = ingested
            if applied is not None:
                return (yield from self._dispatch(event, claim, handlers, *applied))
            # a known event: the same transaction counted the delivery (and took the
            # event over if nobody owned it) and read the payment
            known = True
        else:
            claim = yield from store(
                Store.claim_event,
                self._provider_name, event.id, event_type=event.type.value,
                provider_type=event.provider_type, payment_id=payment_id,
                payload=_codec.dump(event), occurred_at=occurred, now=self.clock(),
                lease_seconds=self.webhook_lease,
            )  # fmt: skip
            known = False

        def payment() -> Flow[PaymentRecord | None]:
            if known or not payment_id:
                return stored
            return (yield from store(Store.get_payment, payment_id))

        if not claim.owned:
            record = yield from payment()
            status = record.status if record else None
            in_progress = claim.status is ClaimStatus.IN_PROGRESS
            _log.info(
                "webhook %s (%s): duplicate delivery%s",
                event.id,
                event.type.value,
                ", in progress elsewhere" if in_progress else "",
                extra=fields(
                    provider=self._provider_name,
                    operation="handle_webhook",
                    event_id=event.id,
                    event_type=event.type.value,
                    payment_id=event.payment_id,
                    outcome="duplicate",
                ),
            )
            return WebhookResult(
                event, True, status, status, claim.outcome,
                payment=record.payment if record else None,
                in_progress=in_progress,
            )  # fmt: skip
        error: str | None = None
        finished = False
        facts: tuple[Fact, ...] = ()
        if claim.applied:  # an earlier delivery applied it, then a handler failed
            outcome = claim.outcome
            record = yield from payment()
            previous = record.status if record else None
        else:
            # with no handler to wait for, the event is marked processed in the same
            # transaction as its transition (one commit fewer)
            with _observe.event_span("paygate.webhook.transition", event):
                outcome, previous, record, error, finished, facts = yield from self._apply_event(
                    event, claim, quiet=not handlers
                )
        return (
            yield from self._dispatch(
                event, claim, handlers, outcome, previous, record, error, finished, facts
            )
        )

    def _dispatch(
        self,
        event: WebhookEvent,
        claim: EventClaim,
        handlers: list[WebhookHandler],
        outcome: EventOutcome | None,
        previous: PaymentStatus | None,
        record: PaymentRecord | None,
        error: str | None,
        finished: bool,
        facts: tuple[Fact, ...] = (),
    ) -> Flow[WebhookResult]:
        """Run the handlers of an owned, applied event that is not a payment fact
        outside any transaction, then finish it (unless already ``finished``); a raising
        handler gives the event up."""
        payment_id = event.payment_id
        status = record.status if record else None
        if outcome in ("stale", "rejected"):
            handlers = []
        for handler in handlers:
            try:
                yield from run_handler(handler, event)
            except BaseException as exc:
                yield from store(
                    Store.release_event, claim, error=f"{type(exc).__name__}: {exc}"[:500]
                )
                _log.warning(
                    "webhook %s (%s): handler %s raised %s; the event stays unprocessed "
                    "for redelivery",
                    event.id, event.type.value, getattr(handler, "__qualname__", handler),
                    type(exc).__name__,
                    extra=fields(provider=self._provider_name, operation="handle_webhook",
                                 event_id=event.id, event_type=event.type.value,
                                 payment_id=payment_id, outcome="handler_error",
                                 handler=handler_name(handler), error_type=type(exc).__name__),
                )  # fmt: skip
                raise
        if not finished:
            done = yield from store(Store.finish_event, claim, now=self.clock())
            if not done:
                _log.warning("webhook %s: lease expired before the handlers finished", event.id,
                             extra=fields(provider=self._provider_name,
                                          operation="handle_webhook", event_id=event.id,
                                          outcome="lease_expired"))  # fmt: skip
        if _log.isEnabledFor(logging.INFO):  # spare building the arguments when disabled
            _log.info("webhook %s (%s): %s%s", event.id, event.type.value, outcome,
                      f", payment {payment_id} {status.value}" if status else "",
                      extra=fields(provider=self._provider_name, operation="handle_webhook",
                                   event_id=event.id, event_type=event.type.value,
                                   payment_id=payment_id, outcome=outcome))  # fmt: skip
        return WebhookResult(
            event, False, previous, status, outcome,
            payment=record.payment if record else None,
            handlers_run=len(handlers), error=error, facts=facts,
        )  # fmt: skip

    def _ingest_new(
        self,
        event: WebhookEvent,
        occurred: float | None,
        *,
        quiet: bool,
        claimed: list[FactClaim] | None = None,
    ) -> Flow[tuple[EventClaim, _Applied | None, PaymentRecord | None] | None]:
        """The first delivery of an event in one store transaction (SQL stores'
        ``ingest_event``): ``(claim, what was applied, None)``. A redelivery in one
        transaction too: ``(claim, None, the payment as stored)``, the claim processed, in
        progress, or taken over (the general path applies or re-runs it). ``None``: the
        store cannot, or the transition needs the provider first, or a race -- the
        general path takes over. With ``claimed`` (and a handler registered), the facts
        recorded are claimed for this worker in that transaction where the store can
        (added to ``claimed``): the claim's own transaction is spared."""
        if not self._can_ingest:
            return None
        change = None if event.type is EventType.UNKNOWN else event_from_webhook(event)
        payload = _codec.dump(event)
        decided: list[str | None] = [None]  # the error of the plan that was committed
        claim_for = self.webhook_lease if claimed is not None and self._handlers else None

        for _ in range(CAS_ATTEMPTS):
            now = self.clock()

            def decide(current: PaymentRecord | None, now: float = now) -> EventPlan | None:
                planned = self._plan_event(
                    event, change, current, now, quiet=quiet, claim_facts_for=claim_for
                )
                if planned is None:
                    return None
                decided[0] = planned[1]
                return planned[0]

            try:
                done = yield from store(
                    _Ingesting.ingest_event,
                    self._provider_name, event.id, event_type=event.type.value,
                    provider_type=event.provider_type, payment_id=event.payment_id,
                    payload=payload, occurred_at=occurred, now=now,
                    lease_seconds=self.webhook_lease, decide=decide,
                )  # fmt: skip
            except StoreConflict:
                continue  # another event of this payment won the race: read it again
            if done is None:
                return None
            claim, plan, current = done
            if plan is None:  # the event was known
                return claim, None, current
            error = decided[0]
            if claimed is not None:
                claimed.extend(plan.claimed)
            previous = current.status if current else None
            if plan.transition is not None:
                self._log_transition(plan.transition)
            elif plan.outcome == "rejected":
                _log.warning("webhook %s (%s) rejected for payment %s: %s", event.id,
                             event.type.value, event.payment_id, error,
                             extra=fields(provider=self._provider_name,
                                          operation="handle_webhook", event_id=event.id,
                                          event_type=event.type.value,
                                          payment_id=event.payment_id,
                                          outcome="rejected"))  # fmt: skip
            record = plan.record if plan.record is not None else current
            return claim, (plan.outcome, previous, record, error, plan.finish, plan.facts), None
        return None  # heavy contention: the general path retries on its own

    def _plan_event(
        self,
        event: WebhookEvent,
        change: PaymentEvent | None,
        current: PaymentRecord | None,
        now: float,
        *,
        quiet: bool,
        claim_facts_for: float | None = None,
    ) -> tuple[EventPlan, str | None] | None:
        """What ``event`` does to ``current`` (pure: it runs inside the store's
        transaction), with the rejection's reason; ``None`` when a payment first met
        through a refund or dispute must be looked up at the provider first. The same
        decisions as ``_apply_event``. ``claim_facts_for``: the plan's (its facts claimed
        in the transaction, when it has any)."""
        payment_id = event.payment_id
        if change is None or payment_id is None:
            unknown = event.type is EventType.UNKNOWN
            return EventPlan("unknown" if unknown else "no_transition", finish=quiet), None
        obj = event.object
        if current is None:
            if not isinstance(obj, Payment):
                return None
            snapshot, state = self._unseen_payment(obj)  # no I/O for a Payment
            previous = None
        else:
            snapshot, state, previous = current.payment, current.state, current.status
        try:
            step = apply(state, change)
        except InvalidTransition as exc:
            return EventPlan("rejected", finish=True), str(exc)
        if current is not None and not step.changed:
            outcome: EventOutcome = "stale" if step.result == "stale" else "unchanged"
            return EventPlan(outcome, finish=quiet or outcome == "stale"), None
        payment = self._merge(snapshot, obj) if isinstance(obj, Payment) and current else snapshot
        record = PaymentRecord.build(
            payment, step.state, version=current.version + 1 if current else 1, updated_at=now
        )
        transition = self._transition(
            record, previous, change.trigger, source="webhook", amount=change.amount, event=event
        )
        facts = self._facts_of(step, state, record.payment, source="webhook", now=now, event=event)
        return EventPlan(
            "applied", finish=quiet, record=record,
            expected_version=current.version if current else None, transition=transition,
            facts=facts, claim_facts_for=claim_facts_for if facts else None,
        ), None  # fmt: skip

    def _apply_event(
        self, event: WebhookEvent, claim: EventClaim, *, quiet: bool
    ) -> Flow[_Applied]:
        """Apply the event's transition once.

        Returns (outcome, previous status, record, error, finished, facts): ``finished``
        when the event was also marked processed because no handler will run for it
        (``quiet``: none registered, or a payment fact; or the event is stale or
        rejected); ``facts``: those recorded with the transition.
        """
        payment_id = event.payment_id
        change = None if event.type is EventType.UNKNOWN else event_from_webhook(event)
        if change is None or payment_id is None:
            outcome: EventOutcome = (
                "unknown" if event.type is EventType.UNKNOWN else "no_transition"
            )
            yield from store(Store.record_outcome, claim, outcome, now=self.clock(), finish=quiet)
            record = (yield from store(Store.get_payment, payment_id)) if payment_id else None
            return outcome, record.status if record else None, record, None, quiet, ()
        for _ in range(CAS_ATTEMPTS):
            now = self.clock()
            current = yield from store(Store.get_payment, payment_id)
            implied: tuple[PaymentEvent, ...] = ()
            if current is None:
                snapshot, state = yield from self._unseen(event, payment_id)
                previous = None
                if state.status is S.SUCCEEDED:
                    # met through a refund or dispute: the provider says it was captured,
                    # and the app hears that first (the payment.succeeded may come later)
                    implied = (PaymentEvent(Trigger.SUCCEEDED, amount=state.captured),)
                    base = PaymentState(S.PENDING, state.amount)
            else:
                snapshot, state, previous = current.payment, current.state, current.status
            try:
                step = apply(state, change)
            except InvalidTransition as exc:
                yield from store(Store.record_outcome, claim, "rejected", now=now, finish=True)
                _log.warning("webhook %s (%s) rejected for payment %s: %s", event.id,
                             event.type.value, payment_id, exc,
                             extra=fields(provider=self._provider_name,
                                          operation="handle_webhook", event_id=event.id,
                                          event_type=event.type.value, payment_id=payment_id,
                                          outcome="rejected"))  # fmt: skip
                return "rejected", previous, current, str(exc), True, ()
            if current is not None and not step.changed:
                outcome = "stale" if step.result == "stale" else "unchanged"
                finish = quiet or outcome == "stale"
                yield from store(Store.record_outcome, claim, outcome, now=now, finish=finish)
                return outcome, previous, current, None, finish, ()
            obj = event.object
            payment = (
                self._merge(snapshot, obj) if isinstance(obj, Payment) and current else snapshot
            )
            record = PaymentRecord.build(
                payment, step.state, version=current.version + 1 if current else 1, updated_at=now
            )
            transition = self._transition(
                record,
                previous,
                change.trigger,
                source="webhook",
                amount=change.amount,
                event=event,
            )
            if implied:
                step = Step(step.state, "applied", (*implied, *step.applied))
                state = base
            facts = self._facts_of(
                step, state, record.payment, source="webhook", now=now, event=event
            )
            try:
                yield from store(
                    Store.save_payment,
                    record, expected_version=current.version if current else None,
                    transition=transition, claim=claim, outcome="applied", finish=quiet,
                    facts=facts,
                )  # fmt: skip
            except StoreConflict:
                continue  # another event of this payment won the race: apply on top of it
            self._log_transition(transition)
            return "applied", previous, record, None, quiet, facts
        raise StoreConflict(f"payment {payment_id}: too much write contention, giving up")
