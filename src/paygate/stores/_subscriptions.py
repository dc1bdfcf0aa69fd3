"""Subscriptions in the stores: the rows, the schema (version 4) and the SQL.

A store keeps each subscription as the provider last showed it (customer, price, quantity,
status, current period, cancel at period end, trial end), with what the subscription
state machine ([paygate.subscription_state][]) needs to judge the next news (the provider's
order key, the invoices known by id), and an append-only log of its transitions.
[SubscriptionStore.save_subscription][paygate.stores.SubscriptionStore.save_subscription]
writes the row (compare-and-set on ``version``), its transition and the facts the step
established (the outbox of [paygate.Fact][]) in one transaction.

The SQL stores share this module's statements through ``SubscriptionSQL``, a base class of
``paygate.stores._sql.SQLStore``.
"""

# Every statement is a constant built from constant column lists; values always travel
# as parameters, never in the SQL text.
# ruff: noqa: S608

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

from paygate import _ids
from paygate._facts import Fact
from paygate.models import Subscription, SubscriptionStatus
from paygate.stores import _codec
from paygate.stores._records import StoreConflict, StoreError
from paygate.subscription_state import OrderKey, SubscriptionState

__all__ = [
    "SUBSCRIPTIONS_V4",
    "SubscriptionRecord",
    "SubscriptionSQL",
    "SubscriptionStore",
    "SubscriptionTransition",
    "state_from_json",
    "state_to_json",
]


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """One subscription as the store knows it.

    Attributes:
        state: The state machine's state; ``state.subscription`` is the subscription.
        version: Bumped on every write; writes are compare-and-set on it.
        created_at: When the store first saw it (Unix seconds).
        updated_at: When it last changed.
    """

    state: SubscriptionState
    version: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def subscription(self) -> Subscription:
        return self.state.subscription

    @property
    def id(self) -> str:
        return self.state.subscription.id

    @property
    def status(self) -> SubscriptionStatus:
        return self.state.subscription.status


@dataclass(frozen=True, slots=True)
class SubscriptionTransition:
    """One applied change of a subscription, appended to its log (never updated).

    Attributes:
        subscription_id: The subscription.
        provider: Its provider.
        previous_status: The status before (``None``: first seen).
        new_status: The status after.
        price_id: The price after.
        quantity: The quantity after.
        facts: The fact types the change established, in order.
        source: ``"webhook"``, ``"api"`` or ``"reconcile"``.
        event_id: The webhook event that brought it, if one did.
        event_type: That event's type.
        recorded_at: When it was written (Unix seconds).
        seq: Position in the log, set by the store.
    """

    subscription_id: str
    provider: str
    previous_status: SubscriptionStatus | None
    new_status: SubscriptionStatus
    price_id: str | None
    quantity: int
    facts: tuple[str, ...]
    source: str
    event_id: str | None = None
    event_type: str | None = None
    recorded_at: float = 0.0
    seq: int | None = None

    @property
    def recorded(self) -> datetime:
        return datetime.fromtimestamp(self.recorded_at, tz=timezone.utc)


@runtime_checkable
class SubscriptionStore(Protocol):
    """What a store offers for subscriptions (memory, SQLite and PostgreSQL all do)."""

    def get_subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        """The subscription with this provider id, or ``None``."""
        ...

    def list_subscriptions(
        self, *, customer_id: str | None = None, status: SubscriptionStatus | None = None
    ) -> list[SubscriptionRecord]:
        """The stored subscriptions (of ``customer_id``, in ``status``), by id."""
        ...

    def save_subscription(
        self,
        record: SubscriptionRecord,
        *,
        expected_version: int | None,
        transition: SubscriptionTransition | None = None,
        facts: Sequence[Fact] = (),
    ) -> None:
        """Write ``record`` with its transition and facts in one transaction.

        ``expected_version=None`` inserts; otherwise the stored row must still have
        ``expected_version``. A lost race raises [StoreConflict][paygate.stores.StoreConflict]
        and nothing is written; a fact whose id is recorded already is skipped.
        """
        ...

    def subscription_history(self, subscription_id: str) -> list[SubscriptionTransition]:
        """The subscription's transition log, oldest first."""
        ...


# -- the state as JSON ----------------------------------------------------------------------


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else value


def state_to_json(state: SubscriptionState) -> str:
    """The state's bookkeeping (not the subscription, stored beside it) as JSON."""
    version, at, period, rank = state.key
    return json.dumps(
        {
            "key": [version, _finite(at), _finite(period), rank],
            "changes": state.changes,
            "invoices": [list(pair) for pair in state.invoices],
            "trial_notice": state.trial_notice,
            "renewed_from": state.renewed_from,
        },
        separators=(",", ":"),
    )


def state_from_json(subscription: Subscription, text: str) -> SubscriptionState:
    """The state from its JSON and the stored subscription."""
    data = json.loads(text)
    version, at, period, rank = data["key"]
    key: OrderKey = (
        int(version),
        float("-inf") if at is None else float(at),
        float("-inf") if period is None else float(period),
        int(rank),
    )
    return SubscriptionState(
        subscription=subscription,
        key=key,
        changes=int(data["changes"]),
        invoices=tuple((str(i), str(m)) for i, m in data["invoices"]),
        trial_notice=data["trial_notice"],
        renewed_from=data["renewed_from"],
    )


# -- schema version 4 ---------------------------------------------------------------------

# Version 4: subscriptions (issue 20). The queried fields are columns (customer, status;
# the rest for operators reading the table); ``data`` is the subscription as
# ``paygate.stores._codec`` writes it and ``ordering`` the state machine's bookkeeping.
SUBSCRIPTIONS_V4: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS paygate_subscriptions (
        id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        customer_id TEXT,
        price_id TEXT,
        quantity {bigint} NOT NULL,
        status TEXT NOT NULL,
        current_period_start {double},
        current_period_end {double},
        cancel_at_period_end {bigint} NOT NULL,
        trial_end {double},
        provider_version {bigint},
        ordering TEXT NOT NULL,
        data TEXT NOT NULL,
        version {bigint} NOT NULL,
        created_at {double} NOT NULL,
        updated_at {double} NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS paygate_subscriptions_customer "
    "ON paygate_subscriptions (customer_id)",
    """CREATE TABLE IF NOT EXISTS paygate_subscription_transitions (
        seq {serial_primary_key},
        subscription_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        previous_status TEXT,
        new_status TEXT NOT NULL,
        price_id TEXT,
        quantity {bigint} NOT NULL,
        facts TEXT NOT NULL,
        source TEXT NOT NULL,
        event_id TEXT,
        event_type TEXT,
        recorded_at {double} NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS paygate_subscription_transitions_sub "
    "ON paygate_subscription_transitions (subscription_id, seq)",
)

_COLUMNS = (
    "id, provider, customer_id, price_id, quantity, status, current_period_start, "
    "current_period_end, cancel_at_period_end, trial_end, provider_version, ordering, data, "
    "version, created_at, updated_at"
)
SELECT_SUBSCRIPTION = f"SELECT {_COLUMNS} FROM paygate_subscriptions WHERE id = ?"
SELECT_SUBSCRIPTIONS = f"SELECT {_COLUMNS} FROM paygate_subscriptions"
INSERT_SUBSCRIPTION = (
    f"INSERT INTO paygate_subscriptions ({_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
UPDATE_SUBSCRIPTION = (
    "UPDATE paygate_subscriptions SET customer_id = ?, price_id = ?, quantity = ?, "
    "status = ?, current_period_start = ?, current_period_end = ?, cancel_at_period_end = ?, "
    "trial_end = ?, provider_version = ?, ordering = ?, data = ?, version = ?, updated_at = ? "
    "WHERE id = ? AND version = ?"
)
_TRANSITION_COLUMNS = (
    "subscription_id, provider, previous_status, new_status, price_id, quantity, facts, "
    "source, event_id, event_type, recorded_at"
)
INSERT_TRANSITION = (
    f"INSERT INTO paygate_subscription_transitions ({_TRANSITION_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_HISTORY = (
    f"SELECT seq, {_TRANSITION_COLUMNS} FROM paygate_subscription_transitions "
    "WHERE subscription_id = ? ORDER BY seq"
)


def _ts(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _row_params(record: SubscriptionRecord) -> tuple[Any, ...]:
    sub = record.subscription
    return (sub.id, sub.provider, sub.customer_id, sub.price_id, sub.quantity, sub.status.value,
            _ts(sub.current_period_start), _ts(sub.current_period_end),
            int(sub.cancel_at_period_end), _ts(sub.trial_end), sub.version,
            state_to_json(record.state), _codec.dumps(sub), record.version, record.created_at,
            record.updated_at)  # fmt: skip


def record_from_row(row: Sequence[Any]) -> SubscriptionRecord:
    """A record from ``_COLUMNS``."""
    ident, ordering, data, version, created_at, updated_at = (
        row[0], row[11], row[12], row[13], row[14], row[15],
    )  # fmt: skip
    try:
        subscription = _codec.loads(data)
        if not isinstance(subscription, Subscription):
            raise TypeError(f"data holds a {type(subscription).__name__}")
        state = state_from_json(subscription, ordering)
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(f"subscription row {ident!r} is corrupt: {exc}") from None
    return SubscriptionRecord(state, int(version), float(created_at), float(updated_at))


def _transition_params(t: SubscriptionTransition) -> tuple[Any, ...]:
    previous = t.previous_status.value if t.previous_status is not None else None
    facts = json.dumps(list(t.facts))
    return (t.subscription_id, t.provider, previous, t.new_status.value, t.price_id,
            t.quantity, facts, t.source, t.event_id, t.event_type, t.recorded_at)  # fmt: skip


def _transition_from_row(row: Sequence[Any]) -> SubscriptionTransition:
    (seq, sub_id, provider, previous, new, price_id, quantity, facts, source, event_id,
     event_type, recorded_at) = row  # fmt: skip
    return SubscriptionTransition(
        subscription_id=sub_id, provider=provider,
        previous_status=None if previous is None else SubscriptionStatus(previous),
        new_status=SubscriptionStatus(new), price_id=price_id, quantity=int(quantity),
        facts=tuple(json.loads(facts)), source=source, event_id=event_id, event_type=event_type,
        recorded_at=float(recorded_at), seq=int(seq),
    )  # fmt: skip


def check_record(record: SubscriptionRecord) -> None:
    """Refuse a record whose ids are not ids (the stores' common input check)."""
    _ids.check_id(record.id, "subscription id")
    _ids.check_optional_id(record.subscription.customer_id, "customer_id")


class SubscriptionSQL:
    """The subscription methods of the SQL stores (a base of ``SQLStore``)."""

    def _write(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _run(self, cur: Any, statement: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    def _insert_fact(self, cur: Any, fact: Fact) -> None:
        raise NotImplementedError

    def get_subscription(self, subscription_id: str) -> SubscriptionRecord | None:
        """The subscription with this provider id, or ``None``."""
        _ids.check_id(subscription_id, "subscription id")
        with self._read() as cur:
            self._run(cur, SELECT_SUBSCRIPTION, (subscription_id,))
            row = cur.fetchone()
        return None if row is None else record_from_row(row)

    def list_subscriptions(
        self, *, customer_id: str | None = None, status: SubscriptionStatus | None = None
    ) -> list[SubscriptionRecord]:
        """The stored subscriptions (of ``customer_id``, in ``status``), by id."""
        _ids.check_optional_id(customer_id, "customer_id")
        clauses: list[str] = []
        params: list[Any] = []
        if customer_id is not None:
            clauses.append("customer_id = ?")
            params.append(customer_id)
        if status is not None:
            clauses.append("status = ?")
            params.append(SubscriptionStatus(status).value)
        statement = SELECT_SUBSCRIPTIONS
        if clauses:
            statement += " WHERE " + " AND ".join(clauses)
        with self._read() as cur:
            self._run(cur, statement + " ORDER BY id", params)
            rows = cur.fetchall()
        return [record_from_row(row) for row in rows]

    def save_subscription(
        self,
        record: SubscriptionRecord,
        *,
        expected_version: int | None,
        transition: SubscriptionTransition | None = None,
        facts: Sequence[Fact] = (),
    ) -> None:
        """Write the row, its transition and its facts in one transaction."""
        check_record(record)
        with self._write() as cur:
            params = _row_params(record)
            if expected_version is None:
                if self._run(cur, INSERT_SUBSCRIPTION, params) != 1:
                    raise StoreConflict(f"subscription {record.id} already exists")
            else:
                mutable = (*params[2:14], params[15], record.id, expected_version)
                if self._run(cur, UPDATE_SUBSCRIPTION, mutable) != 1:
                    raise StoreConflict(
                        f"subscription {record.id} changed since it was read "
                        f"(version {expected_version} expected)"
                    )
            if transition is not None:
                self._run(cur, INSERT_TRANSITION, _transition_params(transition))
            for fact in facts:
                self._insert_fact(cur, fact)

    def subscription_history(self, subscription_id: str) -> list[SubscriptionTransition]:
        """The subscription's transition log, oldest first."""
        _ids.check_id(subscription_id, "subscription id")
        with self._read() as cur:
            self._run(cur, SELECT_HISTORY, (subscription_id,))
            rows = cur.fetchall()
        return [_transition_from_row(row) for row in rows]


def memory_record(
    record: SubscriptionRecord, current: SubscriptionRecord | None
) -> SubscriptionRecord:
    """The record as the memory store keeps it (``created_at`` from the first write)."""
    created = current.created_at if current is not None else record.updated_at
    return dataclasses.replace(record, created_at=created)
