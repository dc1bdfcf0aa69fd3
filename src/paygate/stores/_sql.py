"""The one schema and the one set of SQL statements behind every SQL store.

SQLite (`paygate.stores.sqlite`) and PostgreSQL (`paygate.stores.postgres`)
share everything here. What differs between them is small and lives in a `Dialect`:
the parameter placeholder, a few column types, how to ask whether a table exists, which
exception means "unique constraint", and the lock a migration takes. A concrete store
subclasses `SQLStore` and supplies two context managers, ``_write()`` (one write
transaction, serialized against other writers of the same rows) and ``_read()``, each
yielding a DB-API cursor.

Statements are written once, with ``?`` placeholders, in the SQL both engines accept:
``INSERT ... ON CONFLICT DO NOTHING`` (SQLite >= 3.24), no ``RETURNING`` (the stdlib
sqlite3 of older Pythons lacks it). Concurrency does not rely on row locks: event claims
are conditional ``UPDATE``s and payment rows are compare-and-set on ``version``, which
behave the same under SQLite's single writer and PostgreSQL's READ COMMITTED.

Times are Unix seconds (floating point) so lease arithmetic is plain comparison.

The two dialects are ``paygate.stores.sqlite.SQLITE`` and ``paygate.stores.postgres.POSTGRES``.
"""

# Every statement is a constant built from constant column lists; values always travel
# as parameters, never in the SQL text.
# ruff: noqa: S608

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

from paygate import _ids
from paygate._facts import Fact, FactClaim
from paygate._replace import replace
from paygate.models import (
    DisputeStatus,
    EventType,
    Payment,
    PaymentStatus,
    Subscription,
    WebhookEvent,
)
from paygate.money import Money
from paygate.state import PaymentState
from paygate.stores import _codec
from paygate.stores._records import (
    ClaimLost,
    ClaimStatus,
    EventClaim,
    EventOutcome,
    EventPlan,
    EventRecord,
    OperationFinish,
    OperationRecord,
    OperationStatus,
    PaymentRecord,
    PaymentWrite,
    StoreConflict,
    StoreError,
    TransitionRecord,
)
from paygate.stores._subscriptions import SUBSCRIPTIONS_V4, SubscriptionSQL

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Cursor",
    "Dialect",
    "SQLStore",
    "SchemaVersionError",
]

#: the schema version this paygate writes; MIGRATIONS[n] brings version n-1 to n
SCHEMA_VERSION = 4


class SchemaVersionError(StoreError):
    """The database was written by a newer paygate (or needs an upgrade first)."""


class Cursor(Protocol):
    """The slice of a DB-API cursor the SQL stores use (sqlite3 and psycopg both fit)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: Any, parameters: Any = ..., /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """Everything that differs between the SQL engines paygate supports."""

    name: str
    #: "qmark" (``?``, sqlite3) or "format" (``%s``, psycopg)
    paramstyle: Literal["qmark", "format"]
    #: column types
    bigint: str
    double: str
    serial_primary_key: str
    #: one ``?`` parameter, the table name; returns a row if the table exists
    table_exists: str
    #: the exception classes a unique-constraint violation raises
    integrity_errors: tuple[type[BaseException], ...]
    #: run first in the migration transaction so concurrent upgraders queue up
    migration_lock: str | None = None
    #: appended to the fact claim's row selection: PostgreSQL locks the rows it picks and
    #: skips those another dispatcher is claiming (no waiting on each other's rows, so no
    #: deadlock between two multi-row claims); SQLite has one writer and needs nothing
    claim_rows: str = ""

    def sql(self, statement: str) -> str:
        """``statement`` with this engine's placeholders (statements contain no ``%``)."""
        if self.paramstyle == "format":
            return statement.replace("?", "%s")
        return statement

    def ddl(self, statement: str) -> str:
        return statement.format(
            bigint=self.bigint, double=self.double, serial_primary_key=self.serial_primary_key
        )


# -- schema ----------------------------------------------------------------------------
# Table names carry a ``paygate_`` prefix: the application's own tables (orders, ...) may
# live in the same database.

_SCHEMA_V1: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS paygate_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    # One row per payment attempt. Status and amounts are columns (queryable, checked by
    # reconciliation); the other Payment fields are JSON in ``data`` (never ``raw``,
    # never ``client_secret``). ``version`` makes every update a compare-and-set.
    """CREATE TABLE IF NOT EXISTS paygate_payments (
        id TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        order_id TEXT,
        currency TEXT NOT NULL,
        amount {bigint} NOT NULL,
        status TEXT NOT NULL,
        captured {bigint} NOT NULL,
        refunded {bigint} NOT NULL,
        refund_ids TEXT NOT NULL,
        before_dispute TEXT,
        data TEXT NOT NULL,
        version {bigint} NOT NULL,
        created_at {double} NOT NULL,
        updated_at {double} NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS paygate_payments_order ON paygate_payments (order_id)",
    # Append-only. UNIQUE (provider, event_id) is the database's own guarantee that one
    # webhook event moves a payment at most once (NULL event ids -- Gateway calls -- are
    # distinct from each other in both engines).
    """CREATE TABLE IF NOT EXISTS paygate_transitions (
        seq {serial_primary_key},
        payment_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        event_id TEXT,
        event_type TEXT,
        source TEXT NOT NULL,
        trigger_name TEXT NOT NULL,
        previous_status TEXT,
        new_status TEXT NOT NULL,
        currency TEXT NOT NULL,
        amount {bigint},
        captured {bigint} NOT NULL,
        refunded {bigint} NOT NULL,
        recorded_at {double} NOT NULL,
        UNIQUE (provider, event_id)
    )""",
    "CREATE INDEX IF NOT EXISTS paygate_transitions_payment "
    "ON paygate_transitions (payment_id, seq)",
    # One row per webhook event id. The claim is a lease: ``claim_token`` names the
    # worker that owns the event until ``lease_until``; a worker killed mid-way leaves
    # an expired lease that the next delivery takes over. ``applied_at`` (the transition
    # happened) and ``processed_at`` (the handlers succeeded) are separate, so a
    # redelivery after a failing handler re-runs the handlers, never the transition.
    """CREATE TABLE IF NOT EXISTS paygate_events (
        provider TEXT NOT NULL,
        event_id TEXT NOT NULL,
        event_type TEXT NOT NULL,
        provider_type TEXT NOT NULL,
        payment_id TEXT,
        payload TEXT NOT NULL,
        occurred_at {double},
        received_at {double} NOT NULL,
        deliveries {bigint} NOT NULL,
        claim_token TEXT,
        lease_until {double},
        applied_at {double},
        outcome TEXT,
        processed_at {double},
        last_error TEXT,
        PRIMARY KEY (provider, event_id)
    )""",
    "CREATE INDEX IF NOT EXISTS paygate_events_received ON paygate_events (received_at)",
    "CREATE INDEX IF NOT EXISTS paygate_events_payment ON paygate_events (payment_id)",
    # Idempotency records, written before the provider is called.
    """CREATE TABLE IF NOT EXISTS paygate_operations (
        key TEXT PRIMARY KEY,
        operation TEXT NOT NULL,
        order_id TEXT,
        fingerprint TEXT NOT NULL,
        provider_key TEXT NOT NULL,
        status TEXT NOT NULL,
        attempt {bigint} NOT NULL,
        method_digest TEXT,
        result_id TEXT,
        result TEXT,
        error_code TEXT,
        created_at {double} NOT NULL,
        updated_at {double} NOT NULL
    )""",
)

# Version 2: what the state machine knows of the provider's order of things (issue 14):
# the provider's time of the status, an implied capture, the refunds that failed, the
# disputes by id (paygate.state.PaymentState; JSON, see ``_ordering``). One column, not
# four: PostgreSQL's one-statement ingest has a budget of 50 parameters (psycopg's
# statement cache), and none of these is queried on its own. A version-1 row reads back
# as it was: '{}' is every field at its default.
_PAYMENTS_ORDERING_V2: tuple[str, ...] = (
    "ALTER TABLE paygate_payments ADD COLUMN ordering TEXT NOT NULL DEFAULT '{{}}'",
)

# Version 3: the outbox of payment facts (paygate._facts). One row per fact, written in
# the transaction of the transition that established it; ``id`` (payment, fact type,
# refund or dispute id) is UNIQUE, so a fact reported by several channels is recorded
# once. ``done_at`` is set when its handlers ran to the end; until then a dispatcher owns
# it through ``claim_token`` until ``lease_until`` (a lease, as for webhook events), or,
# after a handler raised, nobody does and ``lease_until`` is when it is retried. The
# webhook event that brought it is joined from paygate_events (not copied).
_FACTS_OUTBOX_V3: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS paygate_facts (
        seq {serial_primary_key},
        id TEXT NOT NULL UNIQUE,
        provider TEXT NOT NULL,
        payment_id TEXT NOT NULL,
        order_id TEXT,
        fact_type TEXT NOT NULL,
        ref TEXT,
        amount {bigint},
        source TEXT NOT NULL,
        event_id TEXT,
        occurred_at {double},
        recorded_at {double} NOT NULL,
        payment TEXT NOT NULL,
        attempts {bigint} NOT NULL DEFAULT 0,
        claim_token TEXT,
        lease_until {double},
        last_error TEXT,
        done_at {double}
    )""",
    # the pending facts only: the dispatcher's scan stays small however long the log grows
    "CREATE INDEX IF NOT EXISTS paygate_facts_pending ON paygate_facts (seq) WHERE done_at IS NULL",
    "CREATE INDEX IF NOT EXISTS paygate_facts_payment ON paygate_facts (payment_id, seq)",
)

#: version -> the DDL that brings the previous version to it
MIGRATIONS: Mapping[int, tuple[str, ...]] = {
    1: _SCHEMA_V1,
    2: _PAYMENTS_ORDERING_V2,
    3: _FACTS_OUTBOX_V3,
    4: SUBSCRIPTIONS_V4,
}

# -- statements ------------------------------------------------------------------------

GET_SCHEMA_VERSION = "SELECT value FROM paygate_meta WHERE key = 'schema_version'"
INSERT_SCHEMA_VERSION = (
    "INSERT INTO paygate_meta (key, value) VALUES ('schema_version', ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

PAYMENT_COLUMNS = (
    "id, provider, order_id, currency, amount, status, captured, refunded, refund_ids, "
    "before_dispute, ordering, data, version, created_at, updated_at"
)
SELECT_PAYMENT = f"SELECT {PAYMENT_COLUMNS} FROM paygate_payments WHERE id = ?"
SELECT_PAYMENT_VERSION = "SELECT version FROM paygate_payments WHERE id = ?"
SELECT_PAYMENTS_FOR_ORDER = (
    f"SELECT {PAYMENT_COLUMNS} FROM paygate_payments WHERE order_id = ? ORDER BY created_at, id"
)
# keyset pagination: each page is a short read, so a long listing holds no transaction open
SELECT_PAYMENTS_PAGE = (
    f"SELECT {PAYMENT_COLUMNS} FROM paygate_payments WHERE id > ? ORDER BY id LIMIT ?"
)
INSERT_PAYMENT = (
    f"INSERT INTO paygate_payments ({PAYMENT_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
UPDATE_PAYMENT = (
    "UPDATE paygate_payments SET order_id = ?, amount = ?, status = ?, captured = ?, "
    "refunded = ?, refund_ids = ?, before_dispute = ?, ordering = ?, data = ?, version = ?, "
    "updated_at = ? WHERE id = ? AND version = ?"
)

TRANSITION_COLUMNS = (
    "payment_id, provider, event_id, event_type, source, trigger_name, previous_status, "
    "new_status, currency, amount, captured, refunded, recorded_at"
)
INSERT_TRANSITION = (
    f"INSERT INTO paygate_transitions ({TRANSITION_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_HISTORY = (
    f"SELECT seq, {TRANSITION_COLUMNS} FROM paygate_transitions WHERE payment_id = ? ORDER BY seq"
)

_EVENT_COLUMNS = (
    "provider, event_id, event_type, provider_type, payment_id, payload, occurred_at, "
    "received_at, deliveries, lease_until, applied_at, outcome, processed_at, last_error"
)
INSERT_EVENT = (
    "INSERT INTO paygate_events (provider, event_id, event_type, provider_type, "
    "payment_id, payload, occurred_at, received_at, deliveries, claim_token, lease_until) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (provider, event_id) DO NOTHING"
)
# A delivery of a known event: counted, and the event taken over if nobody owns it -- a
# handler failed (no lease) or its worker died (the lease expired); never a processed
# one. Every SET expression sees the row as it was. Parameters: now, token, now,
# lease_until, provider, event_id.
TAKE_OVER = "processed_at IS NULL AND (lease_until IS NULL OR lease_until < ?)"
REDELIVER_EVENT = (
    "UPDATE paygate_events SET deliveries = deliveries + 1, "
    f"claim_token = CASE WHEN {TAKE_OVER} THEN ? ELSE claim_token END, "
    f"lease_until = CASE WHEN {TAKE_OVER} THEN ? ELSE lease_until END "
    "WHERE provider = ? AND event_id = ?"
)
#: what REDELIVER_EVENT left (the event was taken over if ``claim_token`` is the
#: delivery's token)
REDELIVERED_STATE = "processed_at, applied_at, outcome, deliveries, claim_token"
SELECT_EVENT_STATE = (
    f"SELECT {REDELIVERED_STATE} FROM paygate_events WHERE provider = ? AND event_id = ?"
)
MARK_EVENT_APPLIED = (
    "UPDATE paygate_events SET applied_at = ?, outcome = ? "
    "WHERE provider = ? AND event_id = ? AND claim_token = ? AND applied_at IS NULL"
)
# a new event recorded with its outcome in the transaction that applies it (the
# ingest path): claimed until ``lease_until`` while its handlers run, or already processed
APPLIED_EVENT_COLUMNS = (
    "provider, event_id, event_type, provider_type, payment_id, payload, occurred_at, "
    "received_at, deliveries, claim_token, lease_until, applied_at, outcome, processed_at"
)
INSERT_APPLIED_EVENT = (
    f"INSERT INTO paygate_events ({APPLIED_EVENT_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (provider, event_id) DO NOTHING"
)
FINISH_EVENT = (
    "UPDATE paygate_events SET processed_at = ?, claim_token = NULL, lease_until = NULL, "
    "last_error = NULL WHERE provider = ? AND event_id = ? AND claim_token = ?"
)
RELEASE_EVENT = (
    "UPDATE paygate_events SET claim_token = NULL, lease_until = NULL, last_error = ? "
    "WHERE provider = ? AND event_id = ? AND claim_token = ?"
)
SELECT_EVENT = f"SELECT {_EVENT_COLUMNS} FROM paygate_events WHERE provider = ? AND event_id = ?"
SELECT_EVENTS = f"SELECT {_EVENT_COLUMNS} FROM paygate_events"

FACT_COLUMNS = (
    "id, provider, payment_id, order_id, fact_type, ref, amount, source, event_id, "
    "occurred_at, recorded_at, payment"
)
INSERT_FACT = (
    f"INSERT INTO paygate_facts ({FACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING"
)
# a new fact inserted already claimed by the worker that recorded it (the ingest path)
INSERT_CLAIMED_FACT = (
    f"INSERT INTO paygate_facts ({FACT_COLUMNS}, claim_token, lease_until, attempts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (id) DO NOTHING"
)
# is a fact of this payment pending? (then a new one waits for it: no claim at insert)
PENDING_FACT_OF_PAYMENT = (
    "SELECT 1 FROM paygate_facts WHERE payment_id = ? AND done_at IS NULL LIMIT 1"
)
_FACT_ROW = (
    "f.seq, f.id, f.provider, f.payment_id, f.order_id, f.fact_type, f.ref, f.amount, "
    "f.source, f.occurred_at, f.recorded_at, f.payment, f.attempts, f.last_error, f.done_at, "
    "e.payload"
)
_FACT_FROM = (
    "FROM paygate_facts AS f LEFT JOIN paygate_events AS e "
    "ON e.provider = f.provider AND e.event_id = f.event_id"
)
# Is there a fact to dispatch? A read (no write lock on SQLite) before any claim.
ANY_DUE_FACT = (
    "SELECT 1 FROM paygate_facts WHERE done_at IS NULL "
    "AND (lease_until IS NULL OR lease_until < ?) LIMIT 1"
)
# Claim the first pending fact of each payment that nobody owns: facts of one payment go
# out in order, one at a time (a later one waits while an earlier one is pending or
# failed). ``due``: nobody owns it and its retry time has come; ``unowned`` (an explicit
# dispatch): nobody owns it, retry time or not. The outer WHERE repeats the ownership
# test on the row itself, so of two dispatchers racing for a fact one claims it
# (PostgreSQL re-checks it on the committed row; SQLite has one writer).
# Parameters: token, lease_until, now, limit, now.
_DUE = "done_at IS NULL AND (lease_until IS NULL OR lease_until < ?)"
_UNOWNED = "done_at IS NULL AND (claim_token IS NULL OR lease_until < ?)"


def _claim_facts(condition: str) -> str:
    return (
        "UPDATE paygate_facts SET claim_token = ?, lease_until = ?, attempts = attempts + 1 "
        "WHERE seq IN (SELECT p.seq FROM paygate_facts AS p WHERE "
        + condition.replace("done_at", "p.done_at")
        .replace("lease_until", "p.lease_until")
        .replace("claim_token", "p.claim_token")
        + " AND NOT EXISTS (SELECT 1 FROM paygate_facts AS q WHERE q.payment_id = p.payment_id "
        "AND q.seq < p.seq AND q.done_at IS NULL) ORDER BY p.seq LIMIT ?{claim_rows}) AND "
        + condition
    )


CLAIM_DUE_FACTS = _claim_facts(_DUE)
CLAIM_UNOWNED_FACTS = _claim_facts(_UNOWNED)
SELECT_CLAIMED_FACTS = f"SELECT {_FACT_ROW} {_FACT_FROM} WHERE f.claim_token = ? ORDER BY f.seq"
FINISH_FACT = (
    "UPDATE paygate_facts SET done_at = ?, claim_token = NULL, lease_until = NULL, "
    "last_error = NULL WHERE id = ? AND claim_token = ?"
)
# after a fact is done: is a later fact of its payment (which waited for it) due now?
NEXT_DUE_FACT = (
    "SELECT 1 FROM paygate_facts WHERE payment_id = ? AND seq > ? AND done_at IS NULL "
    "AND (lease_until IS NULL OR lease_until < ?) LIMIT 1"
)
# a handler raised: nobody owns the fact; it is due again at ``lease_until``
FAIL_FACT = (
    "UPDATE paygate_facts SET claim_token = NULL, lease_until = ?, last_error = ? "
    "WHERE id = ? AND claim_token = ?"
)
SELECT_FACTS = f"SELECT {_FACT_ROW} {_FACT_FROM}"

OPERATION_COLUMNS = (
    "key, operation, order_id, fingerprint, provider_key, status, attempt, method_digest, "
    "result_id, result, error_code, created_at, updated_at"
)
SELECT_OPERATION = f"SELECT {OPERATION_COLUMNS} FROM paygate_operations WHERE key = ?"
#: ``length()`` and ``substr()`` count characters in both engines; ``LIKE`` is not used
#: because SQLite's ignores case and ``%``/``_`` in the prefix would need escaping
SELECT_OPERATIONS_BY_PREFIX = (
    f"SELECT {OPERATION_COLUMNS} FROM paygate_operations "
    "WHERE substr(key, 1, length(?)) = ? ORDER BY created_at, key"
)
INSERT_OPERATION = (
    f"INSERT INTO paygate_operations ({OPERATION_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
)
REPLACE_OPERATION = (
    "UPDATE paygate_operations SET operation = ?, order_id = ?, fingerprint = ?, "
    "provider_key = ?, status = ?, attempt = ?, method_digest = ?, result_id = ?, "
    "result = ?, error_code = ?, updated_at = ? WHERE key = ? AND attempt = ?"
)
FINISH_OPERATION = (
    "UPDATE paygate_operations SET status = ?, result_id = ?, result = ?, error_code = ?, "
    "updated_at = ? WHERE key = ? AND attempt = ?"
)


# -- row <-> record --------------------------------------------------------------------


def _json(value: Any) -> str:
    return _codec.encode_json(value)


def payment_params(record: PaymentRecord, data: str | None = None) -> tuple[Any, ...]:
    """INSERT_PAYMENT's parameters; ``data``: the payment's JSON, when encoded already."""
    state = record.state
    return (
        record.id,
        record.payment.provider,
        record.order_id,
        record.payment.amount.currency,
        state.amount,
        state.status.value,
        state.captured,
        state.refunded,
        _json(sorted(state.refund_ids)) if state.refund_ids else "[]",
        state.before_dispute.value if state.before_dispute else None,
        _ordering(state),
        _codec.dumps(record.payment) if data is None else data,
        record.version,
        record.updated_at,
        record.updated_at,
    )


def payment_from_row(row: Sequence[Any]) -> PaymentRecord:
    (pid, _provider, _order, _currency, amount, status, captured, refunded, refund_ids,
     before_dispute, ordering, data, version, created_at, updated_at) = row  # fmt: skip
    try:
        payment = _codec.loads(data)
        if not isinstance(payment, Payment):
            raise TypeError(f"data holds a {type(payment).__name__}")
        known = json.loads(ordering)
        as_of = known.get("as_of")
        state = PaymentState(
            status=PaymentStatus(status),
            amount=int(amount),
            captured=int(captured),
            refunded=int(refunded),
            refund_ids=frozenset(json.loads(refund_ids)),
            before_dispute=PaymentStatus(before_dispute) if before_dispute else None,
            as_of=None if as_of is None else float(as_of),
            capture_implied=bool(known.get("capture_implied", False)),
            reversed_refund_ids=frozenset(known.get("reversed_refund_ids", ())),
            disputes=tuple(
                sorted((str(k), DisputeStatus(v)) for k, v in known.get("disputes", {}).items())
            ),
            pinned_loss=known.get("pinned_loss"),
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(f"payment row {pid!r} is corrupt: {exc}") from None
    return PaymentRecord.build(
        payment, state, version=int(version), created_at=created_at, updated_at=updated_at
    )


def update_payment_params(
    record: PaymentRecord, expected_version: int, data: str | None = None
) -> tuple[Any, ...]:
    """UPDATE_PAYMENT's parameters: the row's mutable columns, then its id and version."""
    (_id, _prov, order_id, _cur, amount, status, captured, refunded, refund_ids, before_dispute,
     ordering, data, version, _created, updated) = payment_params(record, data)  # fmt: skip
    return (order_id, amount, status, captured, refunded, refund_ids, before_dispute, ordering,
            data, version, updated, record.id, expected_version)  # fmt: skip


def _ordering(state: PaymentState) -> str:
    """The ``ordering`` column: the state's fields beyond status and amounts, only those
    not at their default (so a state that knows nothing of them writes '{}')."""
    known: dict[str, Any] = {}
    if state.as_of is not None:
        known["as_of"] = state.as_of
    if state.capture_implied:
        known["capture_implied"] = True
    if state.reversed_refund_ids:
        known["reversed_refund_ids"] = sorted(state.reversed_refund_ids)
    if state.disputes:
        known["disputes"] = {key: status.value for key, status in state.disputes}
    if state.pinned_loss is not None:
        known["pinned_loss"] = state.pinned_loss
    return _json(known) if known else "{}"


def applied_event_params(
    provider: str,
    event_id: str,
    event_type: str,
    provider_type: str,
    payment_id: str | None,
    payload: Mapping[str, Any],
    occurred_at: float | None,
    now: float,
    token: str,
    lease_seconds: float,
    plan: EventPlan,
) -> tuple[Any, ...]:
    """INSERT_APPLIED_EVENT's parameters: a new event's row carrying its outcome,
    processed (``plan.finish``) or leased to ``token`` while its handlers run."""
    finished = plan.finish
    return (provider, event_id, event_type, provider_type, payment_id, _json(payload),
            occurred_at, now, 1, None if finished else token,
            None if finished else now + lease_seconds, now, plan.outcome,
            now if finished else None)  # fmt: skip


def transition_params(t: TransitionRecord) -> tuple[Any, ...]:
    return (
        t.payment_id,
        t.provider,
        t.event_id,
        t.event_type,
        t.source,
        t.trigger,
        t.previous_status.value if t.previous_status else None,
        t.new_status.value,
        t.currency,
        t.amount,
        t.captured,
        t.refunded,
        t.recorded_at,
    )


def transition_from_row(row: Sequence[Any]) -> TransitionRecord:
    (seq, payment_id, provider, event_id, event_type, source, trigger, previous, new,
     currency, amount, captured, refunded, recorded_at) = row  # fmt: skip
    try:
        previous_status = PaymentStatus(previous) if previous else None
        new_status = PaymentStatus(new)
    except ValueError as exc:
        raise StoreError(f"transition row {seq!r} of {payment_id!r} is corrupt: {exc}") from None
    return TransitionRecord(
        payment_id=payment_id,
        provider=provider,
        trigger=trigger,
        previous_status=previous_status,
        new_status=new_status,
        currency=currency,
        amount=None if amount is None else int(amount),
        captured=int(captured),
        refunded=int(refunded),
        source=source,
        event_id=event_id,
        event_type=event_type,
        recorded_at=recorded_at,
        seq=int(seq),
    )


def event_from_row(row: Sequence[Any]) -> EventRecord:
    (provider, event_id, event_type, provider_type, payment_id, payload, occurred_at,
     received_at, deliveries, lease_until, applied_at, outcome, processed_at,
     last_error) = row  # fmt: skip
    try:
        decoded = json.loads(payload)
    except ValueError as exc:
        raise StoreError(f"event row {event_id!r} is corrupt: payload {exc}") from None
    return EventRecord(
        provider=provider,
        event_id=event_id,
        event_type=event_type,
        provider_type=provider_type,
        payment_id=payment_id,
        payload=decoded,
        received_at=received_at,
        deliveries=int(deliveries),
        occurred_at=occurred_at,
        outcome=outcome,
        applied_at=applied_at,
        processed_at=processed_at,
        lease_until=lease_until,
        last_error=last_error,
    )


def redelivered_claim(provider: str, event_id: str, token: str, state: Sequence[Any]) -> EventClaim:
    """The claim of a known event from REDELIVERED_STATE's columns: taken over (with
    ``token``), processed, or in progress on another worker."""
    processed_at, applied_at, outcome, deliveries, claim_token = state
    ours = claim_token == token
    if ours:
        status = ClaimStatus.RECLAIMED
    elif processed_at is not None:
        status = ClaimStatus.PROCESSED
    else:
        status = ClaimStatus.IN_PROGRESS
    return EventClaim(
        provider, event_id, status, token if ours else None,
        applied=applied_at is not None, outcome=outcome, deliveries=int(deliveries),
    )  # fmt: skip


def fact_params(fact: Fact, encoded: tuple[Any, str] | None = None) -> tuple[Any, ...]:
    """INSERT_FACT's parameters. ``encoded``: an object and its JSON, encoded already for
    the payment row written with the fact -- most facts carry that very payment, which
    is then not encoded twice."""
    occurred = fact.occurred_at.timestamp() if fact.occurred_at is not None else None
    amount = fact.amount.amount if fact.amount is not None else None
    subject = fact.payment if fact.payment is not None else fact.subscription
    known = encoded is not None and subject is encoded[0]
    data = encoded[1] if encoded is not None and known else _codec.dumps(subject)
    return (fact.id, fact.provider, fact.payment_id, fact.order_id, fact.type.value, fact.ref,
            amount, fact.source, fact.event.id if fact.event is not None else None, occurred,
            fact.recorded_at, data)  # fmt: skip


def fact_from_row(row: Sequence[Any], known: Mapping[str, Fact] | None = None) -> Fact:
    """A fact from ``_FACT_ROW``'s columns (the event's payload joined). A fact in
    ``known`` (the caller recorded it a moment ago) is taken from there with the row's
    bookkeeping, sparing the JSON decoding of its payment and event."""
    (seq, fid, provider, payment_id, order_id, fact_type, ref, amount, source, occurred_at,
     recorded_at, data, attempts, last_error, done_at, payload) = row  # fmt: skip
    mine = known.get(fid) if known else None
    if mine is not None:
        return dataclasses.replace(
            mine, seq=int(seq), attempts=int(attempts), last_error=last_error, done_at=done_at
        )
    try:
        payment = _codec.loads(data)
        if isinstance(payment, Subscription):  # a subscription fact (schema version 4)
            subscription, payment = payment, None
        elif not isinstance(payment, Payment):
            raise TypeError(f"payment holds a {type(payment).__name__}")
        else:
            subscription = None
        event = None if payload is None else _codec.loads(payload)
        if event is not None and not isinstance(event, WebhookEvent):
            raise TypeError(f"event holds a {type(event).__name__}")
        kind = EventType(fact_type)
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(f"fact row {fid!r} is corrupt: {exc}") from None
    return Fact(
        id=fid, type=kind, provider=provider, payment_id=payment_id, order_id=order_id,
        payment=payment, source=source, recorded_at=recorded_at,
        occurred_at=None if occurred_at is None else datetime.fromtimestamp(
            occurred_at, tz=timezone.utc
        ),
        ref=ref, event=event, seq=int(seq), attempts=int(attempts), last_error=last_error,
        amount=None if amount is None or payment is None else Money(
            int(amount), payment.amount.currency
        ),
        done_at=done_at, subscription=subscription,
    )  # fmt: skip


def operation_from_row(row: Sequence[Any]) -> OperationRecord:
    (key, operation, order_id, fingerprint, provider_key, status, attempt, method_digest,
     result_id, result, error_code, created_at, updated_at) = row  # fmt: skip
    return OperationRecord(
        key=key,
        operation=operation,
        fingerprint=fingerprint,
        provider_key=provider_key,
        status=OperationStatus(status),
        order_id=order_id,
        attempt=int(attempt),
        method_digest=method_digest,
        result_id=result_id,
        result=None if result is None else json.loads(result),
        error_code=error_code,
        created_at=created_at,
        updated_at=updated_at,
    )


# -- the shared implementation -----------------------------------------------------------


class _Fallback(Exception):
    """Internal: roll the ingest transaction back; the caller takes the general path."""


def payment_write(
    record: PaymentRecord, expected_version: int | None, data: str | None = None
) -> tuple[str, tuple[Any, ...]]:
    """The statement writing ``record``: an INSERT of a new payment, else a compare-and-set
    UPDATE on ``expected_version``; either changes exactly one row or lost its race.
    ``data``: the payment's JSON, when encoded already."""
    if expected_version is None:
        return INSERT_PAYMENT, payment_params(record, data)
    return UPDATE_PAYMENT, update_payment_params(record, expected_version, data)


def write_conflict(record: PaymentRecord, expected_version: int | None) -> StoreConflict:
    """The error of a `payment_write` that changed no row."""
    if expected_version is None:
        return StoreConflict(f"payment {record.id} already exists")
    return StoreConflict(
        f"payment {record.id} changed since it was read (version {expected_version} expected)"
    )


def check_answer(writes: Sequence[PaymentWrite], finish: OperationFinish | None) -> bool:
    """`SQLStore.save_answer`'s argument checks; False when there is nothing to write."""
    for write in writes:
        _ids.check_payment_ids(write.record)
    if finish is not None:
        _ids.check_key(finish.key)
        _ids.check_optional_id(finish.result_id, "result id")
    return bool(writes) or finish is not None


def operation_params(record: OperationRecord) -> tuple[Any, ...]:
    """`INSERT_OPERATION`'s parameters."""
    return (record.key, record.operation, record.order_id, record.fingerprint,
            record.provider_key, record.status.value, record.attempt, record.method_digest,
            record.result_id, None if record.result is None else _json(record.result),
            record.error_code, record.created_at, record.updated_at)  # fmt: skip


def replace_operation_params(record: OperationRecord, expected_attempt: int) -> tuple[Any, ...]:
    """`REPLACE_OPERATION`'s parameters."""
    return (record.operation, record.order_id, record.fingerprint, record.provider_key,
            record.status.value, record.attempt, record.method_digest, record.result_id,
            None if record.result is None else _json(record.result),
            record.error_code, record.updated_at, record.key, expected_attempt)  # fmt: skip


def finish_operation_params(f: OperationFinish, result: str | None = None) -> tuple[Any, ...]:
    """`FINISH_OPERATION`'s parameters; ``result``: ``f.result``'s JSON, when known
    already (`encode_payment`)."""
    if result is None and f.result is not None:
        result = _json(f.result)
    return (f.status.value, f.result_id, result, f.error_code, f.now, f.key, f.attempt)


def encode_payment(payment: Payment, finish: OperationFinish | None) -> tuple[str, str | None]:
    """The JSON of ``payment`` (a payment row's ``data``) and, when ``finish.result`` is
    that very payment's dump (an answer's result is the payment written with it: every
    ``create_payment``), that same text for the operation's ``result`` -- one encoding
    of the payment, not two. Else ``None``: ``finish_operation_params`` encodes it.

    The same bytes either way: `paygate.stores._codec.dump` gives a payment's fields as
    str, None, int (Money's amounts) and lists and dicts of these, and a result equal
    to it (the gateway's is ``_codec.dump`` of the provider's payment) encodes to the
    same text."""
    dumped = _codec.dump(payment)
    data = _json(dumped)
    if finish is not None and finish.result == dumped:
        return data, data
    return data, None


class RecentPayments:
    """The last payment records a store wrote (or decoded from their rows), by id: a
    bounded LRU, safe across threads. A record here is the row at its ``version`` --
    a starting point for the next event of that payment only once the row is seen at
    that version, never an answer to a read: SQLite checks the row's version inside
    the event's transaction (`SQLStore._payment_in`), PostgreSQL's compare-and-set
    fails on a row another worker moved on, and the Gateway reads it again. Events of
    one payment often reach the same worker, so the decode is saved where it is most
    often redundant. Hand-written: an OrderedDict is all an LRU with put/drop by key
    needs."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._rows: OrderedDict[str, PaymentRecord] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, payment_id: str) -> PaymentRecord | None:
        with self._lock:
            record = self._rows.get(payment_id)
            if record is not None:
                self._rows.move_to_end(payment_id)
            return record

    def put(self, record: PaymentRecord) -> None:
        with self._lock:
            self._rows[record.id] = record
            self._rows.move_to_end(record.id)
            if len(self._rows) > self._size:
                self._rows.popitem(last=False)

    def drop(self, payment_id: str) -> None:
        with self._lock:
            self._rows.pop(payment_id, None)


class SQLStore(SubscriptionSQL):
    """The Store protocol over DB-API cursors; subclasses supply connections.

    Subclasses set ``dialect`` and implement ``_write()`` and ``_read()``; ``_write()``
    must commit when its block ends normally and roll back when it raises.
    """

    dialect: Dialect
    #: the schema version this store found before its `upgrade` created (0) or
    #: migrated the tables; ``None`` when it found them up to date (``paygate db upgrade``
    #: reports it)
    upgraded_from: int | None = None

    def _write(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def _write_one(self) -> AbstractContextManager[Cursor]:
        """For a write of ONE statement (atomic by itself): ``_write()`` unless the engine
        can skip the BEGIN/COMMIT round trips (PostgreSQL in autocommit)."""
        return self._write()

    def _write_bookkeeping(self) -> AbstractContextManager[Cursor]:
        """For a write whose loss in a power cut costs nothing but a repeat (a fact's
        claim, its done or failed mark: at worst the fact's handlers run again after its
        lease): ``_write()`` unless the engine can commit it without waiting for the
        disk (SQLite: ``synchronous=NORMAL`` for that transaction)."""
        return self._write()

    def _write_bookkeeping_one(self) -> AbstractContextManager[Cursor]:
        """`_write_bookkeeping` for a block that changes the database with ONE statement
        at most and raises only before it or from it (so a block that raises leaves no
        change of its own, with no savepoint to undo one): SQLite's group commit runs
        it without the savepoint each write has in a batch."""
        return self._write_bookkeeping()

    def _run(self, cur: Cursor, statement: str, params: Sequence[Any] = ()) -> int:
        cur.execute(self.dialect.sql(statement), tuple(params))
        return int(cur.rowcount)

    # -- schema ---------------------------------------------------------------------------

    def _version_in(self, cur: Cursor) -> int:
        cur.execute(self.dialect.sql(self.dialect.table_exists), ("paygate_meta",))
        if cur.fetchone() is None:
            return 0
        cur.execute(GET_SCHEMA_VERSION)
        row = cur.fetchone()
        try:
            return 0 if row is None else int(row[0])
        except ValueError:
            raise SchemaVersionError(f"unreadable schema version {row[0]!r}") from None

    def schema_version(self) -> int:
        """The database's schema version (0: no paygate tables yet)."""
        with self._read() as cur:
            return self._version_in(cur)

    def _check_not_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"the store's schema is version {version}, newer than this paygate "
                f"understands ({SCHEMA_VERSION}); upgrade paygate. Nothing was written."
            )

    def ensure_schema(self, *, migrate: bool = True) -> int:
        """Check the schema version and create or migrate the tables if ``migrate``.

        A schema newer than this paygate raises
        [`SchemaVersionError`][paygate.stores._sql.SchemaVersionError] before anything is written;
        an older one without ``migrate`` raises it too (run ``paygate db upgrade``). Returns the
        version now in the database.
        """
        version = self.schema_version()
        self._check_not_newer(version)
        if version == SCHEMA_VERSION:
            return version
        if not migrate:
            raise SchemaVersionError(
                f"the store's schema is version {version}, this paygate needs "
                f"{SCHEMA_VERSION}: run `paygate db upgrade`"
            )
        return self.upgrade()

    def upgrade(self) -> int:
        """Apply every missing migration in one transaction; returns the new version.
        ``upgraded_from`` says what was found, read under the migration lock: a
        concurrent upgrader that got there first leaves this one nothing to do."""
        with self._write() as cur:
            if self.dialect.migration_lock:
                cur.execute(self.dialect.migration_lock)
            version = self._version_in(cur)  # again: another process may have upgraded
            self._check_not_newer(version)
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target]:
                    cur.execute(self.dialect.ddl(statement))
                self._run(cur, INSERT_SCHEMA_VERSION, (str(target),))
        if version < SCHEMA_VERSION:
            self.upgraded_from = version
        return SCHEMA_VERSION

    # -- payments -------------------------------------------------------------------------

    def get_payment(self, payment_id: str) -> PaymentRecord | None:
        _ids.check_id(payment_id, "payment id")
        with self._read() as cur:
            self._run(cur, SELECT_PAYMENT, (payment_id,))
            row = cur.fetchone()
        return None if row is None else payment_from_row(row)

    def payments_for_order(self, order_id: str) -> list[PaymentRecord]:
        _ids.check_id(order_id, "order_id")
        with self._read() as cur:
            self._run(cur, SELECT_PAYMENTS_FOR_ORDER, (order_id,))
            rows = cur.fetchall()
        return [payment_from_row(row) for row in rows]

    def iter_payments(self, *, page_size: int = 1000) -> Iterator[PaymentRecord]:
        """Every payment, in id order, read a page at a time (reconciliation's input)."""
        after = ""
        while True:
            with self._read() as cur:
                self._run(cur, SELECT_PAYMENTS_PAGE, (after, page_size))
                rows = cur.fetchall()
            for row in rows:
                yield payment_from_row(row)
            if len(rows) < page_size:
                return
            after = rows[-1][0]

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
        with self._write() as cur:
            self._write_payment(cur, record, expected_version, transition, facts, claim=claim,
                                outcome=outcome, finish=finish)  # fmt: skip

    def _write_payment(
        self,
        cur: Cursor,
        record: PaymentRecord,
        expected_version: int | None,
        transition: TransitionRecord | None,
        facts: Sequence[Fact],
        *,
        claim: EventClaim | None = None,
        outcome: EventOutcome | None = None,
        finish: bool = False,
        data: str | None = None,
    ) -> None:
        """``save_payment``'s statements, inside the caller's transaction; raising (a lost
        compare-and-set, a lost claim) rolls the whole transaction back. ``data``: the
        payment's JSON, when encoded already."""
        encoded = (record.payment, _codec.dumps(record.payment) if data is None else data)
        statement, params = payment_write(record, expected_version, encoded[1])
        if self._run(cur, statement, params) != 1:
            raise write_conflict(record, expected_version)
        if claim is not None:
            self._mark_applied(cur, claim, outcome or "applied", record.updated_at)
            if finish:
                self._finish(cur, claim, record.updated_at)
        if transition is not None:
            try:
                self._run(cur, INSERT_TRANSITION, transition_params(transition))
            except self.dialect.integrity_errors:
                raise ClaimLost(f"event {transition.event_id} already moved a payment") from None
        for fact in facts:
            self._run(cur, INSERT_FACT, fact_params(fact, encoded))

    def save_answer(
        self, writes: Sequence[PaymentWrite], *, finish: OperationFinish | None = None
    ) -> None:
        """A provider's answer in ONE transaction, hence one durable commit: how the
        attempt ended (``finish``, as `finish_operation` writes it) and the payment
        writes the answer proves, in order (each a compare-and-set on the version the
        previous one wrote, with its transition and facts). All or nothing: a lost
        compare-and-set raises [`StoreConflict`][paygate.stores.StoreConflict] with
        nothing written (read again, plan again, call again)."""
        if not check_answer(writes, finish):
            return
        # each payment encoded once, before the transaction; the attempt's result is
        # most often the payment written with it: its JSON is then that payment's
        result: str | None = None
        data: list[str] = []
        for write in writes:
            text, same = encode_payment(write.record.payment, finish if result is None else None)
            data.append(text)
            result = result or same
        with self._write() as cur:
            if finish is not None:
                self._run(cur, FINISH_OPERATION, finish_operation_params(finish, result))
            for write, text in zip(writes, data, strict=True):
                self._write_payment(
                    cur, write.record, write.expected_version, write.transition, write.facts,
                    data=text,
                )  # fmt: skip

    def _insert_fact(self, cur: Cursor, fact: Fact) -> None:
        """Record one fact in the outbox (a fact recorded already is skipped)."""
        self._run(cur, INSERT_FACT, fact_params(fact))

    def history(self, payment_id: str) -> list[TransitionRecord]:
        _ids.check_id(payment_id, "payment id")
        with self._read() as cur:
            self._run(cur, SELECT_HISTORY, (payment_id,))
            rows = cur.fetchall()
        return [transition_from_row(row) for row in rows]

    # -- webhook events -------------------------------------------------------------------

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
        token = secrets.token_hex(16)
        lease_until = now + lease_seconds
        # the first delivery is one INSERT; a later one updates and reads the row in a
        # transaction of its own (the row exists by then: nothing in between matters)
        with self._write_one() as cur:
            inserted = self._run(
                cur,
                INSERT_EVENT,
                (provider, event_id, event_type, provider_type, payment_id, _json(payload),
                 occurred_at, now, token, lease_until),
            )  # fmt: skip
        if inserted == 1:
            return EventClaim(provider, event_id, ClaimStatus.CLAIMED, token)
        with self._write() as cur:
            return self._redeliver(cur, provider, event_id, token, now, lease_until)

    def _redeliver(
        self,
        cur: Cursor,
        provider: str,
        event_id: str,
        token: str,
        now: float,
        lease_until: float,
    ) -> EventClaim:
        """A known event's delivery, inside the caller's transaction: count it, take the
        event over if nobody owns it, and say what became of it."""
        self._run(cur, REDELIVER_EVENT, (now, token, now, lease_until, provider, event_id))
        self._run(cur, SELECT_EVENT_STATE, (provider, event_id))
        return redelivered_claim(provider, event_id, token, cur.fetchone())

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
    ) -> tuple[EventClaim, EventPlan | None, PaymentRecord | None] | None:
        """An event's delivery in ONE transaction. A NEW event's whole first delivery:
        read its payment, ``decide`` (pure, no I/O: it runs inside the transaction),
        claim the event by inserting its row already carrying the outcome (and
        processed, when ``plan.finish``: no handler to wait for; else leased to this
        worker), write the payment (compare-and-set) and log the transition. Four
        statements between BEGIN and COMMIT instead of two or three transactions.

        Returns ``(claim, plan, payment as read)`` once committed. When the event is
        already known (a redelivery, or a racing first delivery that committed first),
        the same transaction does `claim_event`'s work instead -- counts the
        delivery, takes the event over if nobody owns it -- and returns ``(claim, None,
        payment as stored)``: the claim is ``PROCESSED``, ``IN_PROGRESS`` or
        ``RECLAIMED`` (owned; its transition is still to apply unless
        ``claim.applied``). Returns ``None``, having written nothing, when ``decide``
        returned ``None`` (it needs I/O first: use `claim_event`). Raises
        [`StoreConflict`][paygate.stores.StoreConflict], having written nothing, when the payment
        changed under it: call again. A worker killed inside leaves nothing; one killed after the
        commit but before finishing leaves a claim that expires after ``lease_seconds``.
        """
        _ids.check_event_ids(provider, event_id, payment_id, delivered=True)
        token = secrets.token_hex(16)
        recent = self._recent_payments() if payment_id is not None else None
        read: PaymentRecord | None = None  # decoded from its row in the transaction
        try:
            with self._write() as cur:
                current = None
                if payment_id is not None:
                    current, read = self._payment_in(cur, payment_id, recent)
                plan = decide(current)
                if plan is None:
                    raise _Fallback
                # the claim IS the event's row, inserted with its outcome: processed, or
                # leased to this worker while its handlers run
                claimed = self._run(
                    cur,
                    INSERT_APPLIED_EVENT,
                    applied_event_params(
                        provider, event_id, event_type, provider_type, payment_id, payload,
                        occurred_at, now, token, lease_seconds, plan,
                    ),
                )  # fmt: skip
                if claimed != 1:  # a redelivery (or a racing first delivery that won)
                    known = self._redeliver(
                        cur, provider, event_id, token, now, now + lease_seconds
                    )
                    plan = None
                else:
                    facts_claimed = self._write_plan(cur, plan, token, now)
        except _Fallback:
            # nothing committed: what was read is not kept (with group commit it may be
            # another thread's write, not committed yet)
            return None
        except BaseException:
            if recent is not None and payment_id is not None:
                recent.drop(payment_id)
            raise
        if recent is not None:  # committed: the payment as it now stands
            if plan is not None and plan.record is not None:
                created = plan.record.updated_at if current is None else current.created_at
                recent.put(replace(plan.record, created_at=created))
            elif read is not None:
                recent.put(read)
        if plan is None:
            return known, None, current
        if facts_claimed:
            plan = replace(plan, claimed=facts_claimed)
        return EventClaim(provider, event_id, ClaimStatus.CLAIMED, token), plan, current

    def _recent_payments(self) -> RecentPayments | None:
        """The payments this store last wrote or read, where `ingest_event` may start
        from them (SQLite): ``None`` (here) reads every payment from its row."""
        return None

    def _payment_in(
        self, cur: Cursor, payment_id: str, recent: RecentPayments | None
    ) -> tuple[PaymentRecord | None, PaymentRecord | None]:
        """The payment as stored, inside the caller's write transaction: (the record, the
        record if it was decoded from its row). A copy in ``recent`` at the row's
        version is the row (every write of a payment row moves its version on, by
        compare-and-set): only the version is read then, not the row's 15 columns, and
        no JSON is decoded."""
        known = None if recent is None else recent.get(payment_id)
        if known is not None:
            self._run(cur, SELECT_PAYMENT_VERSION, (payment_id,))
            found = cur.fetchone()
            if found is not None and int(found[0]) == known.version:
                return known, None
        self._run(cur, SELECT_PAYMENT, (payment_id,))
        row = cur.fetchone()
        record = None if row is None else payment_from_row(row)
        return record, record

    def _write_plan(
        self, cur: Cursor, plan: EventPlan, token: str, now: float
    ) -> tuple[FactClaim, ...]:
        """``ingest_event``'s payment, transition and fact writes; raising rolls back all.
        With ``plan.claim_facts_for``, the first fact is inserted claimed by ``token``
        (the event's, unique to this delivery) when no earlier fact of its payment is
        pending: the claim the dispatcher would make in a transaction of its own right
        after this one. Returns the facts so claimed."""
        record = plan.record
        encoded = None
        if record is not None:
            encoded = (record.payment, _codec.dumps(record.payment))
            if plan.expected_version is None:
                changed = self._run(cur, INSERT_PAYMENT, payment_params(record, encoded[1]))
            else:
                changed = self._run(
                    cur,
                    UPDATE_PAYMENT,
                    update_payment_params(record, plan.expected_version, encoded[1]),
                )
            if changed != 1:
                raise StoreConflict(f"payment {record.id} changed since it was read")
        if plan.transition is not None:
            try:
                self._run(cur, INSERT_TRANSITION, transition_params(plan.transition))
            except self.dialect.integrity_errors:
                raise ClaimLost(
                    f"event {plan.transition.event_id} already moved a payment"
                ) from None
        facts = plan.facts
        claimed: tuple[FactClaim, ...] = ()
        if facts and plan.claim_facts_for is not None:
            first = facts[0]
            self._run(cur, PENDING_FACT_OF_PAYMENT, (first.payment_id,))
            if cur.fetchone() is None:
                facts = facts[1:]
                lease_until = now + plan.claim_facts_for
                params = (*fact_params(first, encoded), token, lease_until)
                if self._run(cur, INSERT_CLAIMED_FACT, params) == 1:
                    seq = getattr(cur, "lastrowid", None)  # sqlite3's; else found at finish
                    mine = replace(first, seq=seq, attempts=1)
                    claimed = (FactClaim(mine, token, lease_until),)
        for fact in facts:
            self._run(cur, INSERT_FACT, fact_params(fact, encoded))
        return claimed

    # -- the outbox of payment facts ----------------------------------------------------

    def has_due_facts(self, *, now: float) -> bool:
        """Whether a pending fact is due (nobody owns it, its retry time has come)."""
        with self._read() as cur:
            self._run(cur, ANY_DUE_FACT, (now,))
            return cur.fetchone() is not None

    def claim_facts(
        self,
        *,
        now: float,
        lease_seconds: float,
        limit: int = 100,
        retry_failed: bool = False,
        known: Mapping[str, Fact] | None = None,
    ) -> list[FactClaim]:
        """Own the first pending fact of up to ``limit`` payments for ``lease_seconds``,
        oldest first (see ``_claim_facts``); ``retry_failed`` also takes failed facts
        whose retry time has not come; ``known``: facts the caller holds (not decoded)."""
        token = secrets.token_hex(16)
        lease_until = now + lease_seconds
        statement = (CLAIM_UNOWNED_FACTS if retry_failed else CLAIM_DUE_FACTS).format(
            claim_rows=self.dialect.claim_rows
        )
        with self._write_bookkeeping() as cur:
            if self._run(cur, statement, (token, lease_until, now, int(limit), now)) == 0:
                return []
            self._run(cur, SELECT_CLAIMED_FACTS, (token,))
            rows = cur.fetchall()
        return [FactClaim(fact_from_row(row, known), token, lease_until) for row in rows]

    def finish_fact(self, claim: FactClaim, *, now: float) -> tuple[bool, bool]:
        """Mark a claimed fact done (its handlers ran): (done -- ``False`` if the lease
        was lost --, a later fact of its payment is due now)."""
        fact = claim.fact
        with self._write_bookkeeping() as cur:
            done = self._run(cur, FINISH_FACT, (now, fact.id, claim.token)) == 1
            self._run(cur, NEXT_DUE_FACT, (fact.payment_id, fact.seq or 0, now))
            return done, cur.fetchone() is not None

    def fail_fact(self, claim: FactClaim, *, error: str, retry_at: float) -> None:
        """A handler raised: give the fact up, to be retried from ``retry_at``."""
        with self._write_bookkeeping() as cur:
            self._run(cur, FAIL_FACT, (retry_at, error, claim.fact.id, claim.token))

    def list_facts(
        self, *, pending: bool = False, payment_id: str | None = None, limit: int | None = None
    ) -> list[Fact]:
        """Recorded facts in the order they were recorded; ``pending``: not done only."""
        _ids.check_optional_id(payment_id, "payment id")
        clauses: list[str] = []
        params: list[Any] = []
        if pending:
            clauses.append("f.done_at IS NULL")
        if payment_id is not None:
            clauses.append("f.payment_id = ?")
            params.append(payment_id)
        rows = self._select(SELECT_FACTS, clauses, params, order_by="f.seq", limit=limit)
        return [fact_from_row(row) for row in rows]

    def _select(
        self,
        statement: str,
        clauses: list[str],
        params: list[Any],
        *,
        order_by: str,
        limit: int | None,
    ) -> list[Any]:
        """The rows of ``statement`` filtered by ``clauses`` (ANDed), ordered, limited."""
        if clauses:
            statement += " WHERE " + " AND ".join(clauses)
        statement += f" ORDER BY {order_by}"
        if limit is not None:
            statement += " LIMIT ?"
            params = [*params, int(limit)]
        with self._read() as cur:
            self._run(cur, statement, params)
            return list(cur.fetchall())

    def _mark_applied(
        self, cur: Cursor, claim: EventClaim, outcome: EventOutcome, now: float
    ) -> None:
        changed = self._run(
            cur, MARK_EVENT_APPLIED, (now, outcome, claim.provider, claim.event_id, claim.token)
        )
        if changed != 1:
            raise ClaimLost(
                f"event {claim.event_id}: the claim was taken over or the event was applied"
            )

    def record_outcome(
        self, claim: EventClaim, outcome: EventOutcome, *, now: float, finish: bool = False
    ) -> None:
        with self._write() as cur:
            self._mark_applied(cur, claim, outcome, now)
            if finish:
                self._finish(cur, claim, now)

    def _finish(self, cur: Cursor, claim: EventClaim, now: float) -> bool:
        changed = self._run(cur, FINISH_EVENT, (now, claim.provider, claim.event_id, claim.token))
        return changed == 1

    def finish_event(self, claim: EventClaim, *, now: float) -> bool:
        with self._write_one() as cur:
            return self._finish(cur, claim, now)

    def release_event(self, claim: EventClaim, *, error: str) -> None:
        # an exception's text, kept for operators: PostgreSQL text holds no NUL and no
        # store can encode a lone surrogate, so both are escaped (the handler's exception
        # must not be replaced by the driver's)
        error = error.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()
        with self._write_one() as cur:
            self._run(cur, RELEASE_EVENT, (error, claim.provider, claim.event_id, claim.token))

    def get_event(self, provider: str, event_id: str) -> EventRecord | None:
        _ids.check_event_ids(provider, event_id)
        with self._read() as cur:
            self._run(cur, SELECT_EVENT, (provider, event_id))
            row = cur.fetchone()
        return None if row is None else event_from_row(row)

    def list_events(
        self,
        *,
        since: float | None = None,
        payment_id: str | None = None,
        limit: int | None = None,
    ) -> list[EventRecord]:
        _ids.check_optional_id(payment_id, "payment id")
        clauses: list[str] = []
        params: list[Any] = []
        if since is not None:
            clauses.append("received_at >= ?")
            params.append(since)
        if payment_id is not None:
            clauses.append("payment_id = ?")
            params.append(payment_id)
        rows = self._select(
            SELECT_EVENTS, clauses, params, order_by="received_at, event_id", limit=limit
        )
        return [event_from_row(row) for row in rows]

    # -- idempotency records ----------------------------------------------------------------

    def get_operation(self, key: str) -> OperationRecord | None:
        _ids.check_key(key)
        with self._read() as cur:
            self._run(cur, SELECT_OPERATION, (key,))
            row = cur.fetchone()
        return None if row is None else operation_from_row(row)

    def begin_operation(self, record: OperationRecord) -> OperationRecord:
        """Insert the pending record unless its key exists; the stored record either way.

        Committed as bookkeeping (``_write_bookkeeping``: on SQLite ``FULL`` no sync of its
        own): a killed process never loses it, and the next durable commit -- the one that
        records the provider's answer -- carries it to the disk. A power cut before then
        loses it, and that costs no second charge: the provider key is a function of the
        scope's parameters and the attempt number (``key_for``), so the next call derives
        the same key and the provider answers it once (docs/stores.md, "Durable commits
        per call")."""
        _ids.check_operation_ids(record)
        params = operation_params(record)
        # one statement changes the database, the INSERT, and nothing after it raises:
        # `_write_bookkeeping_one`
        with self._write_bookkeeping_one() as cur:
            if self._run(cur, INSERT_OPERATION, params) == 1:
                # inserted: the stored record is this one; no read back (one statement
                # and one row decode less per create_payment). A result is stored as
                # JSON: it comes back as it would from the row (lists for tuples).
                if record.result is None:
                    return record
                return dataclasses.replace(record, result=json.loads(params[9]))
            self._run(cur, SELECT_OPERATION, (record.key,))
            row = cur.fetchone()
        return operation_from_row(row)

    def replace_operation(self, record: OperationRecord, *, expected_attempt: int) -> bool:
        """Start attempt ``record.attempt`` if the record is still at ``expected_attempt``;
        bookkeeping like `begin_operation`: lost to a power cut, the store shows the
        previous attempt ended (durably), so the next call starts this attempt again, with
        the same key."""
        _ids.check_operation_ids(record)
        with self._write_bookkeeping() as cur:
            changed = self._run(
                cur, REPLACE_OPERATION, replace_operation_params(record, expected_attempt)
            )
        return changed == 1

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
        with self._write() as cur:
            self._finish_operation(
                cur, OperationFinish(key, attempt, status, result_id, result, error_code, now)
            )

    def _finish_operation(self, cur: Cursor, f: OperationFinish) -> None:
        self._run(cur, FINISH_OPERATION, finish_operation_params(f))

    def list_operations(self, prefix: str) -> list[OperationRecord]:
        _ids.check_prefix(prefix)
        with self._read() as cur:
            self._run(cur, SELECT_OPERATIONS_BY_PREFIX, (prefix, prefix))
            rows = cur.fetchall()
        return [operation_from_row(row) for row in rows]

    def iter_statements(self) -> Iterator[str]:
        """Every DDL statement of the current schema in this dialect (for docs/tests)."""
        for version in range(1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                yield self.dialect.ddl(statement)
