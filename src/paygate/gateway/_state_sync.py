"""Keeping the store in step with the provider's answers, through the state machine.

An answer (to ``create_payment``, ``get_payment``, ``capture``, ..., or the customer's
return) moves the stored payment by the events it proves, one compare-and-set write per
transition, each with the facts it established (the outbox). The flows here are shared by
the payment operations and the webhook pipeline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from paygate._facts import Fact
from paygate._observe import fields
from paygate.errors import InvalidTransition, ProviderError
from paygate.gateway._base import CAS_ATTEMPTS, SETTLED, GatewayBase, status_trigger
from paygate.gateway._sansio import Flow, provider, retried, store
from paygate.models import Payment, PaymentStatus, WebhookEvent
from paygate.provider import PaymentProvider
from paygate.state import (
    PaymentEvent,
    PaymentState,
    Step,
    Trigger,
    apply,
    events_for_answer,
    state_of,
)
from paygate.stores import PaymentRecord, Store, StoreConflict
from paygate.stores._records import OperationFinish, PaymentWrite

_log = logging.getLogger("paygate")
S = PaymentStatus
T = TypeVar("T")

#: the facts a call recorded, by id: its dispatch claims them without looking first
Noted = dict[str, Fact]


class _Answering(Protocol):
    """The built-in stores' one-transaction answer (``SQLStore.save_answer``)."""

    def save_answer(
        self, writes: Sequence[PaymentWrite], *, finish: OperationFinish | None = None
    ) -> None: ...


class StateSync(GatewayBase):
    """Provider answers into the store: ``_sync``, ``_known``, ``_fetch``."""

    def _call(self, operation: str, attempt: Callable[[], Flow[T]]) -> Flow[T]:
        """A provider call through the retry policy (always with the same key)."""
        return retried(self.retry, operation, attempt)

    def _facts_of(
        self,
        step: Step,
        before: PaymentState,
        payment: Payment,
        *,
        source: str,
        now: float,
        event: WebhookEvent | None = None,
    ) -> tuple[Fact, ...]:
        """The facts of an applied step, in causal order, each with the payment as it
        stood right after that fact (``payment`` is the record after the whole step)."""
        facts: list[Fact] = []
        state = before
        last = len(step.applied) - 1
        for i, change in enumerate(step.applied):
            if i == last:
                shown = payment
            else:  # an implied capture before the event itself: the state in between
                try:
                    state = apply(state, change).state
                    shown = PaymentRecord.build(payment, state).payment
                except InvalidTransition:  # pragma: no cover - the step just applied it
                    shown = payment
            fact = Fact.of(change, shown, source=source, recorded_at=now, event=event)
            if fact is not None:
                facts.append(fact)
        return tuple(facts)

    def _first_seen(
        self, fresh: Payment, *, source: str, now: float, asked: float | None
    ) -> tuple[PaymentState, Payment, tuple[Fact, ...]]:
        """The state of a payment first met through a provider answer, the payment as
        stored (showing that state), and the facts the answer proves: its events played
        from ``pending`` (a disputed payment was captured, then disputed), so the
        application hears of a payment first learned from the API as of one learned from
        webhooks. The last fact carries that very stored payment (not an equal copy):
        the store encodes it once for the payment row and the fact (issue 18)."""
        stated = state_of(fresh, at=asked)
        state = PaymentState(S.PENDING, fresh.amount.amount)
        changes = events_for_answer(state, fresh, at=asked)
        if fresh.status in (S.PARTIALLY_REFUNDED, S.REFUNDED) and stated.captured:
            # refund statuses carry no event of their own: the capture is what is proven
            changes.insert(0, PaymentEvent(Trigger.SUCCEEDED, amount=stated.captured))
        steps: list[tuple[Step, PaymentState]] = []
        for change in changes:
            try:
                step = apply(state, change)
            except InvalidTransition:
                continue
            if step.changed:
                steps.append((step, state))
                state = step.state
        # the played state when it agrees with the provider's amounts (it knows the refund
        # ids, so none counts twice later); else the answer as the provider states it
        agrees = (state.status, state.captured, state.refunded) == (
            stated.status, stated.captured, stated.refunded,
        )  # fmt: skip
        final = state if agrees else stated
        shown = PaymentRecord.build(fresh, final).payment
        facts: list[Fact] = []
        for i, (step, before) in enumerate(steps):
            payment = (
                shown if i == len(steps) - 1 else PaymentRecord.build(fresh, step.state).payment
            )
            facts.extend(self._facts_of(step, before, payment, source=source, now=now))
        return final, shown, tuple(facts)

    def _sync(
        self,
        fresh: Payment,
        noted: Noted,
        *,
        source: str,
        event: PaymentEvent | None = None,
        asked: float | None = None,
        finish: OperationFinish | None = None,
        unseen: bool = False,
    ) -> Flow[PaymentRecord]:
        """Move the stored payment by a provider answer (through the state machine).

        A payment seen for the first time is recorded as the provider describes it. An
        answer about a known payment applies every event it proves
        ([`events_for_answer`][paygate.state.events_for_answer]: its status with the
        captured amount, each refund by id), one transition each, each with its facts. An
        event the state machine finds impossible is logged and not applied (the store
        keeps its state; reconciliation sorts it out). The writes go in one transaction
        when the store has ``save_answer`` (every built-in store), else one per write.

        Args:
            fresh: the provider's answer.
            noted: the call's recorded facts, added to (its dispatch runs them).
            source: the channel (``"api"``, ``"return"``; ``channel()`` overrides).
            event: apply this event only, instead of what the answer proves.
            asked: the gateway's clock just before the provider was asked. The answer
                describes the payment as of then, so a webhook of an older event cannot
                undo it (without a time, a late ``action_required`` would look like a
                retry of a failure). Providers stamp events in whole seconds, truncated:
                the answer's time is taken in whole seconds too, so an event of the same
                second is not mistaken for an older one.
            finish: the end of the idempotent attempt that got this answer
                (``_idempotent_answer``), written in the same transaction as the
                answer's payment writes (``save_answer``): one durable commit.
            unseen: the payment is most likely new to the store (the answer to a new
                attempt's ``create_payment``): with ``save_answer``, it is planned as
                first seen without reading the store first. Its insert is a
                compare-and-set: if the payment is there after all (a webhook was
                faster), ``save_answer`` writes nothing and raises ``StoreConflict``, and
                the answer is read and planned again as always. One store round trip
                less per ``create_payment`` (issue 18).
        """
        source = self._source(source)
        if asked is not None:
            asked = float(math.floor(asked))
        guess = unseen and self._can_save_answer
        for _ in range(CAS_ATTEMPTS):
            now = self.clock()
            if guess:  # planned as new; a conflict means it was not: read from then on
                current, guess = None, False
            else:
                current = yield from store(Store.get_payment, fresh.id)
            writes = self._plan(current, fresh, source=source, event=event, now=now, asked=asked)
            if self._can_save_answer:
                if writes or finish is not None:
                    try:
                        yield from store(_Answering.save_answer, writes, finish=finish)
                    except StoreConflict:
                        continue  # nothing was written: read again, plan again
                done = writes
                lost = False
            else:  # a store without save_answer: the end of the attempt, then each write
                if finish is not None:
                    yield from self._finish_alone(finish)
                    finish = None
                done, lost = [], False
                for write in writes:
                    try:
                        yield from store(
                            Store.save_payment,
                            write.record, expected_version=write.expected_version,
                            transition=write.transition, facts=write.facts,
                        )  # fmt: skip
                    except StoreConflict:
                        lost = True
                        break
                    done.append(write)
            for write in done:
                if write.transition is not None:
                    self._log_transition(write.transition)
                noted.update((f.id, f) for f in write.facts)
            if lost:
                continue  # read again; what was saved is counted, the rest applies on top
            if writes:
                return writes[-1].record
            assert current is not None  # a payment first seen is always written
            return current
        if finish is not None:  # the answer is known: the attempt's end at least
            yield from self._finish_alone(finish)
        raise StoreConflict(f"payment {fresh.id}: too much write contention, giving up")

    def _plan(
        self,
        current: PaymentRecord | None,
        fresh: Payment,
        *,
        source: str,
        event: PaymentEvent | None,
        now: float,
        asked: float | None,
    ) -> list[PaymentWrite]:
        """The writes an answer makes from the stored ``current`` (pure): a payment
        first seen inserted as the provider describes it; else one compare-and-set
        write per event it proves, each on the version the previous one wrote."""
        if current is None:
            state, shown, facts = self._first_seen(fresh, source=source, now=now, asked=asked)
            record = PaymentRecord(shown, state, version=1, updated_at=now)
            trigger = event.trigger if event else status_trigger(fresh.status)
            transition = self._transition(record, None, trigger, source=source)
            return [PaymentWrite(record, None, transition, facts)]
        changes = (
            [event] if event is not None else events_for_answer(current.state, fresh, at=asked)
        )
        record = current
        writes: list[PaymentWrite] = []
        for change in changes:
            try:
                step = apply(record.state, change)
            except InvalidTransition as exc:
                _log.warning(
                    "payment %s: provider reports %s, store has %s: %s not applied (%s)",
                    fresh.id, fresh.status.value, record.status.value,
                    change.trigger.value, exc,
                    extra=fields(provider=self._provider_name, payment_id=fresh.id,
                                 outcome="rejected"),
                )  # fmt: skip
                continue
            if not step.changed:
                continue
            moved = PaymentRecord.build(
                self._merge(record.payment, fresh), step.state,
                version=record.version + 1, updated_at=now,
            )  # fmt: skip
            transition = self._transition(
                moved, record.status, change.trigger, source=source, amount=change.amount
            )
            facts = self._facts_of(step, record.state, moved.payment, source=source, now=now)
            writes.append(PaymentWrite(moved, record.version, transition, facts))
            record = moved
        return writes

    def _finish_alone(self, finish: OperationFinish) -> Flow[None]:
        """Write an attempt's end by itself (``Store.finish_operation``)."""
        yield from store(
            Store.finish_operation,
            finish.key, attempt=finish.attempt, status=finish.status,
            result_id=finish.result_id, result=finish.result, error_code=finish.error_code,
            now=finish.now,
        )  # fmt: skip

    def _fetch(self, payment_id: str) -> Flow[Payment]:
        """The provider's answer about ``payment_id``; an answer about another payment is
        refused before anything is written."""
        fresh = yield from self._call(
            "get_payment", lambda: provider(PaymentProvider.get_payment, payment_id)
        )
        return self._same_payment(fresh, payment_id)

    def _same_payment(self, fresh: Payment, payment_id: str) -> Payment:
        if not isinstance(fresh, Payment) or fresh.id != payment_id:
            got = fresh.id if isinstance(fresh, Payment) else type(fresh).__name__
            raise ProviderError(
                f"asked {self._provider_name} about payment {payment_id!r}, it answered about "
                f"{got!r}; nothing was recorded",
                provider=self._provider_name,
                code="payment_mismatch",
            )
        return fresh

    def _known(self, payment_id: str, noted: Noted) -> Flow[PaymentRecord]:
        """The stored payment, fetched from the provider first if the store has none."""
        self._check_id(payment_id, "payment_id")
        record = yield from store(Store.get_payment, payment_id)
        if record is None:
            asked = self.clock()
            fresh = yield from self._fetch(payment_id)
            record = yield from self._sync(fresh, noted, source="api", asked=asked)
        return record

    def _stored_payment(self, payment_id: str) -> Flow[Payment | None]:
        record = yield from store(Store.get_payment, payment_id)
        return record.payment if record is not None else None

    def _unseen(self, event: WebhookEvent, payment_id: str) -> Flow[tuple[Payment, PaymentState]]:
        """Where a payment first met through an event starts, before the event applies.

        A payment event carries the payment: it starts ``pending`` at that amount and the
        event moves it. A refund or dispute carries no payment amount, so the payment is
        looked up at the provider and starts as captured (refunds and disputes are counted
        from their own events only, so none is counted twice).
        """
        obj = event.object
        if isinstance(obj, Payment):
            return obj, PaymentState(S.PENDING, obj.amount.amount)
        fresh = yield from self._fetch(payment_id)
        if fresh.status in SETTLED:
            assert fresh.amount_captured is not None
            captured = fresh.amount_captured.amount or fresh.amount.amount
            return fresh, PaymentState(S.SUCCEEDED, fresh.amount.amount, captured)
        return fresh, PaymentState(S.PENDING, fresh.amount.amount)

    @staticmethod
    def _unseen_payment(obj: Payment) -> tuple[Payment, PaymentState]:
        """``_unseen`` for an event that carries its payment (no I/O: the pure path of
        ``_plan_event``, inside the store's transaction)."""
        return obj, PaymentState(S.PENDING, obj.amount.amount)
