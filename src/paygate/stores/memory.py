"""``MemoryStore``: the Store protocol in dicts, for tests and one-process scripts.

One lock guards everything, which makes every method atomic and the store safe for
threads; nothing survives the process.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from paygate import _ids
from paygate._facts import Fact, FactClaim
from paygate.models import SubscriptionStatus
from paygate.stores._records import (
    ClaimLost,
    ClaimStatus,
    EventClaim,
    EventOutcome,
    EventRecord,
    OperationFinish,
    OperationRecord,
    OperationStatus,
    PaymentRecord,
    PaymentWrite,
    StoreConflict,
    TransitionRecord,
)
from paygate.stores._subscriptions import (
    SubscriptionRecord,
    SubscriptionTransition,
    check_record,
    memory_record,
)

__all__ = ["MemoryStore"]


class MemoryStore:
    """Everything in process memory, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._payments: dict[str, PaymentRecord] = {}
        self._by_order: dict[str, list[str]] = {}
        self._transitions: list[TransitionRecord] = []
        self._events: dict[tuple[str, str], EventRecord] = {}
        self._claims: dict[tuple[str, str], str | None] = {}
        self._operations: dict[str, OperationRecord] = {}
        #: the outbox: facts by id, in the order recorded, with each one's owner and
        #: lease (or retry time, with no owner)
        self._facts: dict[str, Fact] = {}
        self._fact_leases: dict[str, tuple[str | None, float | None]] = {}

    @classmethod
    def from_url(cls, url: str) -> MemoryStore:
        return cls()

    def __repr__(self) -> str:
        return f"MemoryStore(payments={len(self._payments)}, events={len(self._events)})"

    # -- payments ---------------------------------------------------------------------

    def get_payment(self, payment_id: str) -> PaymentRecord | None:
        _ids.check_id(payment_id, "payment id")
        with self._lock:
            return self._payments.get(payment_id)

    def payments_for_order(self, order_id: str) -> list[PaymentRecord]:
        _ids.check_id(order_id, "order_id")
        with self._lock:
            return [self._payments[pid] for pid in self._by_order.get(order_id, ())]

    def iter_payments(self) -> Iterator[PaymentRecord]:
        """Every payment, in id order (a snapshot taken under the lock)."""
        with self._lock:
            snapshot = sorted(self._payments.items())
        for _, record in snapshot:
            yield record

    def save_payment(
        self,
        record: PaymentRecord,
        *,
        expected_version: int | None,
        transition: TransitionRecord | None = None,
        claim: EventClaim | None = None,
        outcome: EventOutcome | None = None,
        finish: bool = False,
        facts: Sequence[Fact] = (),
    ) -> None:
        _ids.check_payment_ids(record)
        with self._lock:
            current = self._payments.get(record.id)
            self._check_version(record, current, expected_version)
            if claim is not None:
                self._check_claim(claim)
                self._mark_applied(claim, outcome or "applied", record.updated_at)
                if finish:
                    self._finish(claim, record.updated_at)
            self._put_payment(record, current, transition, facts)

    @staticmethod
    def _check_version(
        record: PaymentRecord, current: PaymentRecord | None, expected_version: int | None
    ) -> None:
        if expected_version is None:
            if current is not None:
                raise StoreConflict(f"payment {record.id} already exists")
        elif current is None or current.version != expected_version:
            raise StoreConflict(
                f"payment {record.id} changed since it was read "
                f"(version {expected_version} expected)"
            )

    def _put_payment(
        self,
        record: PaymentRecord,
        current: PaymentRecord | None,
        transition: TransitionRecord | None,
        facts: Sequence[Fact],
    ) -> None:
        """Write a checked payment row, its transition and its facts (under the lock)."""
        if current is None:
            self._by_order.setdefault(record.order_id or "", []).append(record.id)
            record = dataclasses.replace(record, created_at=record.updated_at)
        else:
            record = dataclasses.replace(record, created_at=current.created_at)
        self._payments[record.id] = record
        if transition is not None:
            seq = len(self._transitions) + 1
            self._transitions.append(dataclasses.replace(transition, seq=seq))
        for fact in facts:
            if fact.id not in self._facts:  # one fact, recorded once
                self._facts[fact.id] = dataclasses.replace(
                    fact, seq=len(self._facts) + 1, attempts=0, last_error=None, done_at=None
                )
                self._fact_leases[fact.id] = (None, None)

    def save_answer(
        self, writes: Sequence[PaymentWrite], *, finish: OperationFinish | None = None
    ) -> None:
        """`SQLStore.save_answer`: the attempt's end and the payment writes of its answer,
        all or nothing (every compare-and-set is checked before anything is written)."""
        for write in writes:
            _ids.check_payment_ids(write.record)
        if finish is not None:
            _ids.check_key(finish.key)
            _ids.check_optional_id(finish.result_id, "result id")
        with self._lock:
            rows: dict[str, PaymentRecord | None] = {}  # as the writes before leave them
            for write in writes:
                pid = write.record.id
                current = rows[pid] if pid in rows else self._payments.get(pid)
                self._check_version(write.record, current, write.expected_version)
                rows[pid] = write.record
            if finish is not None:
                self._finish_operation(finish)
            for write in writes:
                current = self._payments.get(write.record.id)
                self._put_payment(write.record, current, write.transition, write.facts)

    # -- the outbox of payment facts ----------------------------------------------------

    def _claimable(self, now: float, retry_failed: bool, limit: int) -> list[Fact]:
        """The first pending fact of each payment, if nobody owns it (and it is due)."""
        seen: set[str] = set()
        found: list[Fact] = []
        for fact in self._facts.values():  # in seq order (insertion order)
            if fact.done_at is not None or fact.payment_id in seen:
                continue
            seen.add(fact.payment_id)  # later facts of this payment wait for this one
            owner, until = self._fact_leases[fact.id]
            free = until is None or until < now
            if retry_failed and owner is None:
                free = True
            if free:
                found.append(fact)
                if len(found) >= limit:
                    break
        return found

    def has_due_facts(self, *, now: float) -> bool:
        with self._lock:
            return any(
                f.done_at is None and (until is None or until < now)
                for f, (_, until) in zip(
                    self._facts.values(), self._fact_leases.values(), strict=True
                )
            )

    def claim_facts(
        self,
        *,
        now: float,
        lease_seconds: float,
        limit: int = 100,
        retry_failed: bool = False,
        known: Mapping[str, Fact] | None = None,
    ) -> list[FactClaim]:
        token = uuid.uuid4().hex
        lease_until = now + lease_seconds
        with self._lock:
            claims = []
            for fact in self._claimable(now, retry_failed, limit):
                fact = dataclasses.replace(fact, attempts=fact.attempts + 1)
                self._facts[fact.id] = fact
                self._fact_leases[fact.id] = (token, lease_until)
                claims.append(FactClaim(fact, token, lease_until))
            return claims

    def finish_fact(self, claim: FactClaim, *, now: float) -> tuple[bool, bool]:
        with self._lock:
            done = self._fact_leases.get(claim.fact.id, (None, None))[0] == claim.token
            if done:
                fact = self._facts[claim.fact.id]
                self._facts[fact.id] = dataclasses.replace(fact, done_at=now, last_error=None)
                self._fact_leases[fact.id] = (None, None)
            seq = claim.fact.seq or 0
            due = any(
                f.payment_id == claim.fact.payment_id
                and (f.seq or 0) > seq
                and f.done_at is None
                and (until is None or until < now)
                for f, (_, until) in zip(
                    self._facts.values(), self._fact_leases.values(), strict=True
                )
            )
            return done, due

    def fail_fact(self, claim: FactClaim, *, error: str, retry_at: float) -> None:
        with self._lock:
            if self._fact_leases.get(claim.fact.id, (None, None))[0] != claim.token:
                return
            fact = self._facts[claim.fact.id]
            self._facts[fact.id] = dataclasses.replace(fact, last_error=error)
            self._fact_leases[fact.id] = (None, retry_at)

    def list_facts(
        self, *, pending: bool = False, payment_id: str | None = None, limit: int | None = None
    ) -> list[Fact]:
        _ids.check_optional_id(payment_id, "payment id")
        with self._lock:
            found = [
                f
                for f in self._facts.values()
                if (not pending or f.done_at is None)
                and (payment_id is None or f.payment_id == payment_id)
            ]
        return found if limit is None else found[:limit]

    def history(self, payment_id: str) -> list[TransitionRecord]:
        _ids.check_id(payment_id, "payment id")
        with self._lock:
            return [t for t in self._transitions if t.payment_id == payment_id]

    # -- webhook events ---------------------------------------------------------------

    def claim_event(
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
    ) -> EventClaim:
        _ids.check_event_ids(provider, event_id, payment_id, delivered=True)
        key = (provider, event_id)
        token = uuid.uuid4().hex
        with self._lock:
            current = self._events.get(key)
            if current is None:
                self._events[key] = EventRecord(
                    provider=provider,
                    event_id=event_id,
                    event_type=event_type,
                    provider_type=provider_type,
                    payment_id=payment_id,
                    payload=dict(payload),
                    received_at=now,
                    deliveries=1,
                    occurred_at=occurred_at,
                    lease_until=now + lease_seconds,
                )
                self._claims[key] = token
                return EventClaim(provider, event_id, ClaimStatus.CLAIMED, token)
            current = dataclasses.replace(current, deliveries=current.deliveries + 1)
            status: ClaimStatus
            if current.processed:
                status = ClaimStatus.PROCESSED
            elif current.lease_until is not None and current.lease_until >= now:
                status = ClaimStatus.IN_PROGRESS
            else:
                status = ClaimStatus.RECLAIMED
                current = dataclasses.replace(current, lease_until=now + lease_seconds)
                self._claims[key] = token
            self._events[key] = current
            return EventClaim(
                provider,
                event_id,
                status,
                token if status is ClaimStatus.RECLAIMED else None,
                applied=current.applied_at is not None,
                outcome=current.outcome,
                deliveries=current.deliveries,
            )

    def _check_claim(self, claim: EventClaim) -> None:
        key = (claim.provider, claim.event_id)
        if claim.token is None or self._claims.get(key) != claim.token:
            raise ClaimLost(f"event {claim.event_id}: the claim was taken over")

    def _mark_applied(self, claim: EventClaim, outcome: EventOutcome, now: float) -> None:
        key = (claim.provider, claim.event_id)
        event = self._events[key]
        if event.applied_at is not None:
            raise ClaimLost(f"event {claim.event_id}: already applied")
        self._events[key] = dataclasses.replace(event, applied_at=now, outcome=outcome)

    def record_outcome(
        self, claim: EventClaim, outcome: EventOutcome, *, now: float, finish: bool = False
    ) -> None:
        with self._lock:
            self._check_claim(claim)
            self._mark_applied(claim, outcome, now)
            if finish:
                self._finish(claim, now)

    def _finish(self, claim: EventClaim, now: float) -> None:
        key = (claim.provider, claim.event_id)
        self._claims[key] = None
        event = self._events[key]
        self._events[key] = dataclasses.replace(
            event, processed_at=now, lease_until=None, last_error=None
        )

    def finish_event(self, claim: EventClaim, *, now: float) -> bool:
        key = (claim.provider, claim.event_id)
        with self._lock:
            if claim.token is None or self._claims.get(key) != claim.token:
                return False
            self._finish(claim, now)
            return True

    def release_event(self, claim: EventClaim, *, error: str) -> None:
        key = (claim.provider, claim.event_id)
        with self._lock:
            if claim.token is None or self._claims.get(key) != claim.token:
                return
            self._claims[key] = None
            event = self._events[key]
            self._events[key] = dataclasses.replace(event, lease_until=None, last_error=error)

    def get_event(self, provider: str, event_id: str) -> EventRecord | None:
        _ids.check_event_ids(provider, event_id)
        with self._lock:
            return self._events.get((provider, event_id))

    def list_events(
        self,
        *,
        since: float | None = None,
        payment_id: str | None = None,
        limit: int | None = None,
    ) -> list[EventRecord]:
        _ids.check_optional_id(payment_id, "payment id")
        with self._lock:
            events = [
                e
                for e in self._events.values()
                if (since is None or e.received_at >= since)
                and (payment_id is None or e.payment_id == payment_id)
            ]
        events.sort(key=lambda e: e.received_at)  # stable: insertion order breaks ties
        return events if limit is None else events[:limit]

    # -- idempotency records ----------------------------------------------------------

    def get_operation(self, key: str) -> OperationRecord | None:
        _ids.check_key(key)
        with self._lock:
            return self._operations.get(key)

    def begin_operation(self, record: OperationRecord) -> OperationRecord:
        _ids.check_operation_ids(record)
        with self._lock:
            return self._operations.setdefault(record.key, record)

    def replace_operation(self, record: OperationRecord, *, expected_attempt: int) -> bool:
        _ids.check_operation_ids(record)
        with self._lock:
            current = self._operations.get(record.key)
            if current is None or current.attempt != expected_attempt:
                return False
            self._operations[record.key] = dataclasses.replace(
                record, created_at=current.created_at
            )
            return True

    def finish_operation(
        self,
        key: str,
        *,
        attempt: int,
        status: OperationStatus,
        result_id: str | None,
        result: Mapping[str, Any] | None,
        error_code: str | None,
        now: float,
    ) -> None:
        _ids.check_key(key)
        _ids.check_optional_id(result_id, "result id")
        with self._lock:
            self._finish_operation(
                OperationFinish(key, attempt, status, result_id, result, error_code, now)
            )

    def _finish_operation(self, f: OperationFinish) -> None:
        current = self._operations.get(f.key)
        if current is None or current.attempt != f.attempt:
            return
        self._operations[f.key] = dataclasses.replace(
            current,
            status=f.status,
            result_id=f.result_id,
            result=None if f.result is None else dict(f.result),
            error_code=f.error_code,
            updated_at=f.now,
        )

    def list_operations(self, prefix: str) -> list[OperationRecord]:
        _ids.check_prefix(prefix)
        with self._lock:
            found = [op for key, op in self._operations.items() if key.startswith(prefix)]
        found.sort(key=lambda op: (op.created_at, op.key))
        return found

    def close(self) -> None:
        """Nothing to release."""

    # -- subscriptions (paygate.stores.SubscriptionStore) ----------------------------------

    def _subscription_tables(
        self,
    ) -> tuple[dict[str, SubscriptionRecord], list[SubscriptionTransition]]:
        # created on first use: the payment methods above stay as they were
        if not hasattr(self, "_subscriptions_by_id"):
            self._subscriptions_by_id: dict[str, SubscriptionRecord] = {}
            self._subscription_log: list[SubscriptionTransition] = []
        return self._subscriptions_by_id, self._subscription_log

    def get_subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        _ids.check_id(subscription_id, "subscription id")
        with self._lock:
            return self._subscription_tables()[0].get(subscription_id)

    def list_subscriptions(
        self, *, customer_id: str | None = None, status: SubscriptionStatus | None = None
    ) -> list[SubscriptionRecord]:
        _ids.check_optional_id(customer_id, "customer_id")
        wanted = None if status is None else SubscriptionStatus(status)
        with self._lock:
            rows = sorted(self._subscription_tables()[0].items())
        return [
            record
            for _, record in rows
            if (customer_id is None or record.subscription.customer_id == customer_id)
            and (wanted is None or record.status is wanted)
        ]

    def save_subscription(
        self,
        record: SubscriptionRecord,
        *,
        expected_version: int | None,
        transition: SubscriptionTransition | None = None,
        facts: Sequence[Fact] = (),
    ) -> None:
        check_record(record)
        with self._lock:
            table, log = self._subscription_tables()
            current = table.get(record.id)
            if expected_version is None:
                if current is not None:
                    raise StoreConflict(f"subscription {record.id} already exists")
            elif current is None or current.version != expected_version:
                raise StoreConflict(
                    f"subscription {record.id} changed since it was read "
                    f"(version {expected_version} expected)"
                )
            table[record.id] = memory_record(record, current)
            if transition is not None:
                log.append(dataclasses.replace(transition, seq=len(log) + 1))
            for fact in facts:
                if fact.id not in self._facts:  # one fact, recorded once
                    self._facts[fact.id] = dataclasses.replace(
                        fact, seq=len(self._facts) + 1, attempts=0, last_error=None, done_at=None
                    )
                    self._fact_leases[fact.id] = (None, None)

    def subscription_history(self, subscription_id: str) -> list[SubscriptionTransition]:
        _ids.check_id(subscription_id, "subscription id")
        with self._lock:
            log = self._subscription_tables()[1]
            return [t for t in log if t.subscription_id == subscription_id]
