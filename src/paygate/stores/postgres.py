"""``PostgresStore``: the store for several app servers sharing one PostgreSQL database.

Needs ``pip install 'paygate-payments[postgres]'`` (psycopg 3 and psycopg-pool). Open it with
``open_store("postgresql://user@host:5432/dbname")``; paygate's own options travel in the
query string next to libpq's:

* ``schema=NAME``: keep paygate's tables in this PostgreSQL schema (created by the
  upgrade), e.g. one per environment or per test run in a shared database;
* ``pool_min=N`` / ``pool_max=N``: connections kept open / at most (default 1 / 8);
* ``timeout=SECONDS``: how long a call waits for a free pool connection (default 10);
* ``statement_timeout=SECONDS``: how long one call may use its connection (default 10;
  ``0``: no limit). The server cancels a statement running longer (PostgreSQL's
  ``statement_timeout``); the client gives the connection up one second later if no
  answer came at all (a dead server or network, see `_Watchdog`);
* ``finish_commit=async|sync``: how bookkeeping (the mark "handlers done" after an
  event's handlers, a fact's claim and marks, the pending idempotency record before a
  provider call) is committed (default ``async``: without waiting for the disk flush;
  see ``_FINISH_EVENT_ASYNC`` and ``_write_bookkeeping``).

libpq's ``connect_timeout`` defaults to 5 seconds here (libpq's own default is none), and
TCP keepalives are on (``keepalives_idle=30``, ``keepalives_interval=5``,
``keepalives_count=3``, and ``tcp_user_timeout`` at the client's bound), unless the URL
sets them. A wait that runs out raises [`StoreTimeout`][paygate.stores.StoreTimeout] naming it; a
dropped connection [`StoreUnavailable`][paygate.stores.StoreUnavailable]; both retryable, neither
ever showing the password. A pooled connection is checked before it is handed out (see
``PostgresStore._check``), so a restarted database costs no failed call.

The schema and every statement are `paygate.stores._sql`'s, shared with SQLite; the
PostgreSQL differences are the `POSTGRES` dialect below and ``CREATE SCHEMA``.

Concurrency (READ COMMITTED, PostgreSQL's default): every write is one transaction. A
payment update is ``UPDATE ... WHERE id = ? AND version = ?``: a second writer of the same
row waits for the first to commit, re-evaluates ``version`` against the committed row and
updates nothing, so the Gateway re-reads and applies on top -- the same compare-and-set as
on SQLite, with PostgreSQL's row lock doing the queueing (no ``SELECT ... FOR UPDATE``
round trip needed). Event claims are conditional ``UPDATE``s on the event row, and the
transition log's ``UNIQUE (provider, event_id)`` is the last line of defence.
"""

# The statements below are built from constant column lists; values always travel as
# parameters, never in the SQL text.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import select
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from time import monotonic
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from paygate import _ids
from paygate._facts import Fact, FactClaim
from paygate._redact import redact_dsn
from paygate.errors import ConfigurationError
from paygate.stores import _codec, _redact
from paygate.stores._records import (
    ClaimLost,
    ClaimStatus,
    EventClaim,
    EventOutcome,
    EventPlan,
    OperationFinish,
    OperationRecord,
    PaymentRecord,
    PaymentWrite,
    StoreConflict,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    TransitionRecord,
)
from paygate.stores._sql import (
    _FACT_ROW,
    APPLIED_EVENT_COLUMNS,
    CLAIM_DUE_FACTS,
    CLAIM_UNOWNED_FACTS,
    FACT_COLUMNS,
    FINISH_EVENT,
    FINISH_FACT,
    FINISH_OPERATION,
    INSERT_EVENT,
    INSERT_FACT,
    INSERT_PAYMENT,
    INSERT_TRANSITION,
    NEXT_DUE_FACT,
    OPERATION_COLUMNS,
    PAYMENT_COLUMNS,
    REDELIVER_EVENT,
    REDELIVERED_STATE,
    REPLACE_OPERATION,
    SELECT_OPERATION,
    SELECT_PAYMENT,
    TAKE_OVER,
    TRANSITION_COLUMNS,
    UPDATE_PAYMENT,
    Cursor,
    Dialect,
    RecentPayments,
    SQLStore,
    _json,
    applied_event_params,
    check_answer,
    encode_payment,
    fact_from_row,
    fact_params,
    finish_operation_params,
    operation_from_row,
    operation_params,
    payment_from_row,
    payment_params,
    payment_write,
    redelivered_claim,
    replace_operation_params,
    transition_params,
    update_payment_params,
    write_conflict,
)

try:
    import psycopg
    import psycopg.conninfo
    import psycopg.errors
    from psycopg import pq
    from psycopg import sql as pgsql
    from psycopg_pool import ConnectionPool, PoolTimeout
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "PostgresStore needs psycopg and psycopg-pool: pip install 'paygate-payments[postgres]'",
        name=exc.name,
    ) from None

__all__ = ["POSTGRES", "PostgresStore"]

#: any constant: the key of the advisory lock that queues concurrent ``db upgrade``s
_MIGRATION_LOCK_KEY = 0x70617967  # "payg"

POSTGRES = Dialect(
    name="postgresql",
    paramstyle="format",
    bigint="BIGINT",
    double="DOUBLE PRECISION",
    serial_primary_key="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    # current_schema(): the first schema of search_path (the ``schema=`` option)
    table_exists=(
        "SELECT 1 FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name = ?"
    ),
    integrity_errors=(psycopg.errors.UniqueViolation,),
    # CREATE TABLE IF NOT EXISTS is not safe against a concurrent identical CREATE:
    # upgraders take turns on a transaction-scoped advisory lock
    migration_lock=f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})",
    claim_rows=" FOR UPDATE OF p SKIP LOCKED",
)

# -- an event's delivery as ONE statement ---------------------------------------------------
# ``SQLStore.ingest_event`` writes a new event's row, its payment and its transition in a
# BEGIN ... COMMIT of four statements: six round trips to the server. PostgreSQL runs the
# writes as one statement (data-modifying CTEs), in autocommit: one round trip, the
# statement its own transaction. Each write only happens on the rows its predecessor
# returned, so the statement writes all or nothing:
#
#   pay:  the payment's compare-and-set (or insert), only if the event is not yet known
#   ev:   the event's row, only if ``pay`` wrote (a concurrent first delivery of the same
#         event that committed meanwhile raises a unique violation: all rolled back)
#   tr:   the transition, only if ``ev`` wrote
#   dup:  only if the event IS known (a redelivery): the shared REDELIVER_EVENT counts the
#         delivery and takes the event over if nobody owns it, returning its state
#
# Every CTE sees the same snapshot, so ``pay`` and ``dup`` exclude each other. The result
# says which case it was: written; the event was known (what ``dup`` returned, and the
# payment's row as stored, for the answer: a redelivery costs this one round trip); or
# the payment changed since it was read (StoreConflict: read again).
# The columns come from the shared statements in ``_sql``; the casts are needed because
# an ``INSERT ... SELECT`` of parameters cannot infer their types from the target table.

#: non-text columns by name (the same name has the same type in every table)
_COLUMN_TYPES = {
    "amount": "bigint", "captured": "bigint", "refunded": "bigint", "version": "bigint",
    "deliveries": "bigint", "created_at": "float8", "updated_at": "float8",
    "occurred_at": "float8", "received_at": "float8", "lease_until": "float8",
    "applied_at": "float8", "processed_at": "float8", "recorded_at": "float8",
    "attempt": "bigint",
}  # fmt: skip


def _typed_params(columns: str) -> str:
    """``%s::type, ...`` for a column list."""
    names = [name.strip() for name in columns.split(",")]
    return ", ".join(f"?::{_COLUMN_TYPES.get(name, 'text')}" for name in names)


_KNOWN_EVENT = "SELECT 1 FROM paygate_events WHERE provider = ? AND event_id = ?"
# A new payment's created_at is its updated_at: sent once and used twice, which keeps the
# largest ingest statement within psycopg's 50 parameters (see below).
_PAYMENT_SENT = PAYMENT_COLUMNS.replace(" created_at,", "")
_PAY_INSERTING = (
    f"INSERT INTO paygate_payments ({_PAYMENT_SENT}, created_at) "
    "SELECT v.*, v.updated_at FROM (SELECT "
    + ", ".join(
        f"{typed} AS {name.strip()}"
        for typed, name in zip(
            _typed_params(_PAYMENT_SENT).split(", "), _PAYMENT_SENT.split(","), strict=True
        )
    )
    + f") AS v WHERE NOT EXISTS ({_KNOWN_EVENT}) "
    "ON CONFLICT (id) DO NOTHING RETURNING 1"
)


def _inserted_payment_params(record: PaymentRecord, data: str | None = None) -> tuple[Any, ...]:
    """_PAY_INSERTING's payment parameters: INSERT_PAYMENT's without created_at."""
    params = payment_params(record, data)
    created = PAYMENT_COLUMNS.replace(" ", "").split(",").index("created_at")
    return params[:created] + params[created + 1 :]


# the shared compare-and-set on the payment's version
_PAY_UPDATING = f"{UPDATE_PAYMENT} AND NOT EXISTS ({_KNOWN_EVENT}) RETURNING 1"
_EV = (
    f"INSERT INTO paygate_events ({APPLIED_EVENT_COLUMNS}) "
    f"SELECT {_typed_params(APPLIED_EVENT_COLUMNS)} FROM pay RETURNING 1"
)
_TR = (
    f"INSERT INTO paygate_transitions ({TRANSITION_COLUMNS}) "
    f"SELECT {_typed_params(TRANSITION_COLUMNS)} FROM ev"
)
# parameters: now, token, now, lease_until, provider, event_id
_DUP = f"dup AS ({REDELIVER_EVENT} RETURNING {REDELIVERED_STATE})"
_PAYMENT_ROW = ", ".join(f"p.{name.strip()}" for name in PAYMENT_COLUMNS.split(","))


def _result(written: str, *, probing: bool) -> str:
    """The statement's one row: how many rows ``written`` wrote, ``dup``'s state (NULLs
    for a new event), then the payment's row as it was before the statement (a CTE's own
    writes are invisible to the outer query): always when ``probing``, else only for a
    known event. Its one parameter: the payment's id."""
    row_wanted = "" if probing else " AND d.deliveries IS NOT NULL"
    return (
        f"SELECT (SELECT count(*) FROM {written}), d.*, {_PAYMENT_ROW} "
        "FROM (SELECT 1) AS one LEFT JOIN dup AS d ON true "
        f"LEFT JOIN paygate_payments AS p ON p.id = ?{row_wanted}"
    )


#: (payment inserted rather than updated, transition logged, probing) -> the statement.
#: Probing: the event tried as its payment's first, inserting the payment; when the
#: payment exists after all, nothing is written and its row comes back, so the read an
#: event otherwise starts with happens in the same round trip.
INGEST_STATEMENTS = {
    (inserting, logged, probing): POSTGRES.sql(
        f"WITH pay AS ({_PAY_INSERTING if inserting else _PAY_UPDATING}), ev AS ({_EV})"
        + (f", tr AS ({_TR})" if logged else "")
        + f", {_DUP} {_result('pay', probing=probing)}"
    )
    for inserting in (True, False)
    for logged in (True, False)
    for probing in ((True, False) if inserting else (False,))
}


def _facts_cte(count: int) -> str:
    """The outbox rows of ``count`` facts, only if ``ev`` wrote (so with the transition)."""
    one = f"SELECT {_typed_params(FACT_COLUMNS)} FROM ev"
    return (
        f"fa AS (INSERT INTO paygate_facts ({FACT_COLUMNS}) "
        + " UNION ALL ".join([one] * count)
        + " ON CONFLICT (id) DO NOTHING)"
    )


_WITH_FACTS: dict[tuple[bool, bool, bool, int], str] = {}


def ingest_statement(inserting: bool, logged: bool, probing: bool, facts: int) -> str:
    """``INGEST_STATEMENTS``' statement, writing ``facts`` outbox rows too (a CTE ``fa``
    on ``ev``, so they are written with the payment and the transition or not at all).
    Built on first use: an event applies one fact, or two with an implied capture."""
    if facts == 0:
        return INGEST_STATEMENTS[inserting, logged, probing]
    key = (inserting, logged, probing, facts)
    statement = _WITH_FACTS.get(key)
    if statement is None:
        statement = _WITH_FACTS[key] = POSTGRES.sql(
            f"WITH pay AS ({_PAY_INSERTING if inserting else _PAY_UPDATING}), ev AS ({_EV})"
            + (f", tr AS ({_TR})" if logged else "")
            + f", {_facts_cte(facts)}, {_DUP} {_result('pay', probing=probing)}"
        )
    return statement


# psycopg caches a statement's translation to PostgreSQL's own placeholders for at most
# 50 parameters (psycopg._queries.MAX_CACHED_STATEMENT_PARAMS); a statement with more is
# parsed again at every execution, about 0.1 ms each time. The largest statement above has
# exactly 50 (tests/test_ingest_event.py checks it): hence ``claim_token`` returned and
# compared here rather than compared in SQL against one more parameter.

#: checked -> the statement for an event that leaves its payment as it is: the event's
#: row alone, only if the event is new and, when ``checked``, only if the payment is
#: still at the version the event was decided from (that row may be this store's cached
#: copy, which another worker may have moved on since: decided on an old row, a
#: ``dispute.won`` would be recorded as stale and lost).
INGEST_EVENT_ALONE = {
    checked: POSTGRES.sql(
        f"WITH ev AS (INSERT INTO paygate_events ({APPLIED_EVENT_COLUMNS}) "
        f"SELECT {_typed_params(APPLIED_EVENT_COLUMNS)} WHERE NOT EXISTS ({_KNOWN_EVENT})"
        + (
            " AND EXISTS (SELECT 1 FROM paygate_payments WHERE id = ? AND version = ?)"
            if checked
            else ""
        )
        + f" RETURNING 1), {_DUP} {_result('ev', probing=False)}"
    )
    for checked in (True, False)
}

# The finish after an event's handlers, committed asynchronously: SET LOCAL
# synchronous_commit = off for its own transaction only, by set_config in the statement.
# It is bookkeeping: the transition was committed durably before the handlers ran. Only a
# crash of the database server itself in the next few hundred milliseconds can lose it,
# and then the event is left applied but not finished: its lease runs out and a
# redelivery runs its handlers again, never its transition -- what a worker killed before
# finishing leaves anyway. It saves the commit's disk flush and the wake-ups waiting on
# it. ``finish_commit=sync`` keeps every commit synchronous.
_FINISH_EVENT_ASYNC = POSTGRES.sql(
    FINISH_EVENT.replace(
        " WHERE ",
        # an uncorrelated subquery: a one-time filter, evaluated before any row is read
        " WHERE (SELECT set_config('synchronous_commit', 'off', true)) = 'off' AND ",
        1,
    )
)
# The general path's claim in one statement: the shared INSERT of a new event's row, or,
# for a known event, REDELIVER_EVENT's work as its DO UPDATE (the shared TAKE_OVER
# condition, qualified: on the row as it was), returning its state. SQLite runs the INSERT,
# then REDELIVER_EVENT and a SELECT in a second transaction. Since a redelivery is
# counted by the ingest statement, this runs only when that one could not: an event that
# needs the provider first, or a race with the event's first delivery.
_TAKE_OVER = TAKE_OVER.replace("processed_at", "paygate_events.processed_at").replace(
    "lease_until", "paygate_events.lease_until"
)
_CLAIM_EVENT = POSTGRES.sql(
    INSERT_EVENT.removesuffix(" DO NOTHING")
    + " DO UPDATE SET deliveries = paygate_events.deliveries + 1, "
    f"claim_token = CASE WHEN {_TAKE_OVER} THEN excluded.claim_token "
    "ELSE paygate_events.claim_token END, "
    f"lease_until = CASE WHEN {_TAKE_OVER} THEN excluded.lease_until "
    "ELSE paygate_events.lease_until END "
    f"RETURNING {REDELIVERED_STATE}"
)
_SELECT_PAYMENT = POSTGRES.sql(SELECT_PAYMENT)

# A fact's "done" mark, committed asynchronously like an event's finish (same reasoning:
# bookkeeping after the handlers; only a database crash in the next instants can lose it,
# and then the fact's handlers run again after its lease, never its transition).
_FINISH_FACT_ASYNC = FINISH_FACT.replace(
    " WHERE ", " WHERE (SELECT set_config('synchronous_commit', 'off', true)) = 'off' AND ", 1
)
#: relaxed -> the done mark and the look for the payment's next due fact in ONE statement
#: (the look reads other rows than the one the CTE updates, so its snapshot is enough)
_FINISH_FACTS = {
    relaxed: POSTGRES.sql(
        f"WITH d AS ({_FINISH_FACT_ASYNC if relaxed else FINISH_FACT} RETURNING 1) "
        f"SELECT (SELECT count(*) FROM d), EXISTS ({NEXT_DUE_FACT})"
    )
    for relaxed in (False, True)
}


def _claim_returning(statement: str, *, relaxed: bool) -> str:
    """A fact claim and the read of what it claimed in ONE statement (autocommit: one
    round trip instead of BEGIN, UPDATE, SELECT, COMMIT); the event's payload joined.
    ``relaxed`` (``finish_commit=async``): committed asynchronously too -- a claim lost in
    a database crash leaves the fact unowned, to be claimed again (its handlers may then
    run twice, as after any crash)."""
    columns = _FACT_ROW.replace("e.payload", "").rstrip(", ")
    claim = statement.format(claim_rows=POSTGRES.claim_rows)
    if relaxed:
        claim = claim.replace(
            " WHERE seq IN ",
            " WHERE (SELECT set_config('synchronous_commit', 'off', true)) = 'off' AND seq IN ",
            1,
        )
    return POSTGRES.sql(
        f"WITH f AS ({claim} RETURNING *) "
        f"SELECT {columns}, e.payload FROM f LEFT JOIN paygate_events AS e "
        "ON e.provider = f.provider AND e.event_id = f.event_id ORDER BY f.seq"
    )


#: (retry_failed, relaxed) -> the claim statement
_CLAIM_FACTS = {
    (retry, relaxed): _claim_returning(
        CLAIM_UNOWNED_FACTS if retry else CLAIM_DUE_FACTS, relaxed=relaxed
    )
    for retry in (False, True)
    for relaxed in (False, True)
}

# -- a payment call's writes, ONE statement each ----------------------------------------------
# A payment call's two transactions -- the pending idempotency record before the provider
# call, the provider's answer after it -- are each one statement run in autocommit: its
# own transaction, atomic by itself, one round trip, no BEGIN or COMMIT. They were sent in
# psycopg's pipeline mode before (BEGIN ... COMMIT, 1 and 2 round trips), whose
# bookkeeping -- a poll of the socket per statement sent, about 40 per ``create_payment``
# -- was most of the client CPU of the native async path (issue 18).
#
# The relaxed commit of bookkeeping (``finish_commit=async``) is ``set_config`` in the
# statement, as for an event's finish: ``synchronous_commit = off`` for this transaction
# only, evaluated once before any row is written (an uncorrelated subquery).
_RELAXED = "(SELECT set_config('synchronous_commit', 'off', true)) = 'off'"


def _begin_operation_statement(*, relaxed: bool) -> str:
    """The pending record: its insert unless the key exists, returning the stored row.

    ``ins`` returns the inserted row; the row already there comes from the outer SELECT,
    whose snapshot predates the insert, so exactly one branch has it. One case leaves both
    empty: a concurrent insert of the same key that committed while this one waited on it
    (newer than the snapshot, it is read by a SELECT of its own). Parameters: the
    record's (``operation_params``), then its key.
    """
    where = f" WHERE {_RELAXED}" if relaxed else ""
    return POSTGRES.sql(
        f"WITH ins AS (INSERT INTO paygate_operations ({OPERATION_COLUMNS}) "
        f"SELECT {_typed_params(OPERATION_COLUMNS)}{where} "
        f"ON CONFLICT (key) DO NOTHING RETURNING {OPERATION_COLUMNS}) "
        f"SELECT {OPERATION_COLUMNS} FROM ins UNION ALL {SELECT_OPERATION}"
    )


#: relaxed -> `PostgresStore.begin_operation`'s statement
_BEGIN_OPERATION = {
    relaxed: _begin_operation_statement(relaxed=relaxed) for relaxed in (False, True)
}
_SELECT_OPERATION = POSTGRES.sql(SELECT_OPERATION)
#: relaxed -> the compare-and-set that starts an attempt (its row count says if it did)
_REPLACE_OPERATION = {
    relaxed: POSTGRES.sql(
        REPLACE_OPERATION.replace(" WHERE ", f" WHERE {_RELAXED} AND ", 1)
        if relaxed
        else REPLACE_OPERATION
    )
    for relaxed in (False, True)
}
_FINISH_OPERATION = POSTGRES.sql(FINISH_OPERATION)

# The answer: the payment's write first -- its INSERT, or its compare-and-set UPDATE on
# the version read -- returning a row only if it wrote; the attempt's end, the
# transitions and the facts each only if it did (``FROM pay``). A lost compare-and-set
# thus writes nothing at all (StoreConflict); a transition whose event already moved a
# payment is a unique violation that rolls the whole statement back (ClaimLost). Several
# writes of one payment, each on the version the previous one wrote (an answer proving
# several events), are one write of the last row on the first one's version, with every
# write's transitions and facts in order: the same rows as the writes one after the
# other in a transaction. The casts: an ``INSERT ... SELECT`` of parameters cannot infer
# their types from the target table.
_TRANSITION_ROW = f"SELECT {_typed_params(TRANSITION_COLUMNS)} FROM pay"
_FACT_ROW_SENT = f"SELECT {_typed_params(FACT_COLUMNS)} FROM pay"
_ANSWERS: dict[tuple[bool, bool, int, int], str] = {}


def answer_statement(inserting: bool, finishing: bool, transitions: int, facts: int) -> str:
    """The answer's statement: the payment inserted (else updated on its version), the
    attempt's end with it if ``finishing``, ``transitions`` transitions and ``facts``
    facts. Built on first use; it returns one row if the payment's write wrote, none for a
    lost compare-and-set (its row count says which, without a fetch)."""
    key = (inserting, finishing, transitions, facts)
    statement = _ANSWERS.get(key)
    if statement is None:
        ctes = [f"pay AS ({INSERT_PAYMENT if inserting else UPDATE_PAYMENT} RETURNING 1)"]
        if finishing:
            ctes.append(f"op AS ({FINISH_OPERATION} AND EXISTS (SELECT 1 FROM pay))")
        if transitions:
            rows = " UNION ALL ".join([_TRANSITION_ROW] * transitions)
            ctes.append(f"tr AS (INSERT INTO paygate_transitions ({TRANSITION_COLUMNS}) {rows})")
        if facts:
            rows = " UNION ALL ".join([_FACT_ROW_SENT] * facts)
            ctes.append(
                f"fa AS (INSERT INTO paygate_facts ({FACT_COLUMNS}) {rows} "
                "ON CONFLICT (id) DO NOTHING)"
            )
        statement = _ANSWERS[key] = POSTGRES.sql(f"WITH {', '.join(ctes)} SELECT 1 FROM pay")
    return statement


def _one_payment(writes: Sequence[PaymentWrite]) -> bool:
    """Are ``writes`` one payment's, each on the version the previous one wrote?"""
    first = writes[0].record.id
    return all(
        later.record.id == first and later.expected_version == earlier.record.version
        for earlier, later in itertools.pairwise(writes)
    )


def answer_params(
    writes: Sequence[PaymentWrite], finish: OperationFinish | None
) -> tuple[Any, ...]:
    """`answer_statement`'s parameters for ``writes`` (`_one_payment`'s) and ``finish``."""
    first, last = writes[0], writes[-1]
    record = last.record
    data, result = encode_payment(record.payment, finish)  # result: reused, if the same
    encoded = (record.payment, data)
    if first.expected_version is None:
        params = payment_params(record, encoded[1])
        if len(writes) > 1:  # created when first written (INSERT_PAYMENT's created_at)
            params = (*params[:-2], first.record.updated_at, params[-1])
    else:
        params = update_payment_params(record, first.expected_version, encoded[1])
    if finish is not None:
        params += finish_operation_params(finish, result)
    for write in writes:
        if write.transition is not None:
            params += transition_params(write.transition)
    for write in writes:
        mine = encoded if write is last else None
        for fact in write.facts:
            params += fact_params(fact, mine)
    return params


def _ingest_result(
    result: tuple[Any, ...] | None,
) -> tuple[bool, tuple[Any, ...] | None, tuple[Any, ...] | None]:
    """An ingest statement's row (see ``_result``): (written, the known event's state or
    ``None`` for a new one, the payment's row or ``None``)."""
    assert result is not None  # the statement's SELECT always returns one row
    state = tuple(result[1:6]) if result[4] is not None else None
    row = tuple(result[6:]) if result[6] is not None else None
    return result[0] == 1, state, row


#: libpq settings paygate sets unless the URL (or key/value string) gives them: libpq has
#: no connect timeout by default (psycopg's is 130 s), and keepalives let the kernel
#: notice a peer that vanished while a pooled connection sat idle
_LIBPQ_DEFAULTS = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}
_DEFAULT_POOL_TIMEOUT = 10.0
_DEFAULT_STATEMENT_TIMEOUT = 10.0
#: seconds the client waits for an answer past ``statement_timeout`` before it gives the
#: connection up: the server's own cancel (a clean error, the connection kept) comes first
#: whenever the server can still answer
_CLIENT_GRACE = 1.0
#: a pooled connection returned this recently is handed out without a round trip to
#: check it (HikariCP's ``aliveBypassWindowMs``), unless its socket already has something
#: to read (the server's goodbye, an EOF): the check costs one round trip only when idle
_ALIVE_BYPASS = 1.0


#: a transaction left open on the connection (to be rolled back before its reuse)
_OPEN = (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)


class _Connection(psycopg.Connection[Any]):
    """A pooled connection that keeps one cursor for the store's statements.

    A new cursor per statement costs more than its creation: its adapters look up the
    dumper of every parameter's type again (the ingest statements have up to 50), about
    7 us per statement. One connection serves one thread at a time (the pool's
    checkout), so its cursor does too; ``execute`` resets the cursor's state, and a
    broken connection is replaced by the pool together with its cursor. The cursor holds
    its last result until the connection's next statement: at most one per pooled
    connection.

    ``_paygate_used``: when it was last returned to the pool (monotonic seconds);
    ``_paygate_expired``: the watchdog gave it up (its call outlived the bound).
    """

    _paygate_cursor: psycopg.Cursor[Any] | None = None
    _paygate_used = 0.0
    _paygate_expired = False
    _paygate_poller: Any = None

    def paygate_cursor(self) -> psycopg.Cursor[Any]:
        cur = self._paygate_cursor
        if cur is None or cur.closed:
            cur = self._paygate_cursor = self.cursor()
        return cur

    def paygate_transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A transaction block (BEGIN ... COMMIT, ROLLBACK on an exception)."""
        return self.transaction()

    def paygate_pipeline(self) -> contextlib.AbstractContextManager[Any]:
        """psycopg's pipeline mode: statements go out without waiting for their answers,
        which come back at the pipeline's ``sync()`` or end."""
        return self.pipeline()

    def paygate_new_cursor(self) -> psycopg.Cursor[Any]:
        """A cursor of its own, for a statement whose answer is read after others ran."""
        return self.cursor()

    def paygate_abandon(self) -> None:
        """Roll back a transaction left open or failed (nothing to do on a broken
        connection: the pool discards it)."""
        if self.info.transaction_status in _OPEN:
            with contextlib.suppress(psycopg.Error):
                self.rollback()


def _shut_down(conn: _Connection) -> None:
    """Shut the connection's socket down (both directions): a call blocked reading or
    writing it fails at once with ``OperationalError``, and the pool discards it."""
    with contextlib.suppress(OSError, psycopg.Error):
        # a duplicate of libpq's descriptor: shutdown acts on the socket itself, and
        # closing the duplicate leaves libpq's descriptor to libpq
        sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()


def _readable(conn: _Connection) -> bool:
    """Has an idle connection's socket something to read (a server's goodbye, an EOF)?
    An idle connection is sent nothing else unless it LISTENs, which paygate's do not.
    One ``poll`` system call: the poller is made once per connection."""
    poller = conn._paygate_poller
    if poller is None:
        try:
            fd = conn.pgconn.socket
        except psycopg.Error:
            return True  # closed or broken: let the full check say so
        if not hasattr(select, "poll"):  # pragma: no cover - Windows
            return bool(select.select([fd], [], [], 0)[0])
        poller = conn._paygate_poller = select.poll()  # select() stops at descriptor 1023
        poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _used_recently(conn: Any) -> bool:
    """Was ``conn`` (a pooled connection, sync or async) returned within `_ALIVE_BYPASS`
    seconds, with nothing to read since? Then the pool hands it out without a check (see
    ``PostgresStore._check``)."""
    return monotonic() - conn._paygate_used < _ALIVE_BYPASS and not _readable(conn)


class _Watchdog:
    """Bounds how long a call may keep a pooled connection: past its deadline, the
    connection's socket is shut down (`_shut_down`), so a call blocked on a server
    or network that never answers fails at once.

    Hand-written because nothing else bounds it: psycopg waits for an answer without a
    limit, PostgreSQL's ``statement_timeout`` is applied by the server (which a partition
    or a swallowed packet keeps from answering at all), and TCP keepalives and
    ``tcp_user_timeout`` only notice a peer whose kernel stopped acknowledging -- not a
    proxy or load balancer that keeps the TCP connection up and forwards nothing.

    One thread per store, waking every ``tick`` seconds; ``watch`` and ``release`` are a
    dict write and a locked pop, the only cost on the hot path.
    """

    def __init__(self, tick: float) -> None:
        self._tick = tick
        self._deadlines: dict[_Connection, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paygate-pg-watchdog", daemon=True)
        self._thread.start()

    def watch(self, conn: _Connection, deadline: float) -> None:
        self._deadlines[conn] = deadline  # one dict store: atomic under the GIL

    def release(self, conn: _Connection) -> bool:
        """Stop watching ``conn``; ``True`` if its deadline had passed and it was shut."""
        with self._lock:
            self._deadlines.pop(conn, None)
        return conn._paygate_expired

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            now = monotonic()
            with self._lock:  # a release waits: a connection is never shut once returned
                for conn, deadline in list(self._deadlines.items()):
                    if deadline <= now:
                        del self._deadlines[conn]
                        conn._paygate_expired = True
                        _shut_down(conn)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _Borrowed:
    """``with``: a connection borrowed from the pool (or, with ``cursor``, its cursor),
    returned at the end of the block; the driver's errors of a database that cannot be
    reached or does not answer become [`StoreUnavailable`][paygate.stores.StoreUnavailable] /
    [`StoreTimeout`][paygate.stores.StoreTimeout].

    A class rather than a ``contextlib.contextmanager`` generator, and the pool's
    ``getconn``/``putconn`` rather than its own context manager: every statement on the
    webhook path pays for each layer (the generator's cost about 1 us a statement).
    """

    __slots__ = ("_bound", "_conn", "_cursor", "_store")

    def __init__(self, store: PostgresStore, cursor: bool, bound: float | None) -> None:
        self._store = store
        self._cursor = cursor
        self._bound = bound  # seconds the block may keep the connection; None: no limit

    def __enter__(self) -> Any:
        store = self._store
        try:
            conn = self._conn = store._pool.getconn()
        except PoolTimeout:
            raise StoreTimeout(
                f"PostgreSQL store {store._display}: no free connection within "
                f"{store.timeout:g}s (the store URL's timeout=)",
                what="pool",
                seconds=store.timeout,
            ) from None
        if self._bound is not None:
            store._watchdog.watch(conn, monotonic() + self._bound)
        return conn.paygate_cursor() if self._cursor else conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        store, conn = self._store, self._conn
        expired = store._watchdog.release(conn) if self._bound is not None else False
        conn._paygate_used = monotonic()
        # an autocommit connection is idle here (a transaction() block has ended); the
        # pool rolls back anything else and replaces a broken connection
        store._pool.putconn(conn)
        if isinstance(exc, psycopg.OperationalError) or (
            expired and isinstance(exc, psycopg.Error)
        ):
            raise store._translate(exc, expired=expired, bound=self._bound) from None


class _PreparingCursor(Cursor, Protocol):
    """The store's cursor (psycopg's, or the async twin's ``_GreenCursor``), whose
    ``execute`` takes psycopg's ``prepare``.

    A payment call's two statements are executed with ``prepare=True``: prepared on a
    connection's first execution instead of its sixth (psycopg's ``prepare_threshold``),
    with one Parse round trip then. Until a statement is prepared the server parses and
    plans it at every execution, and a prepared one is planned afresh for its first five
    (PostgreSQL's custom plans): about 3 ms of server CPU per new pooled connection, paid
    again by each connection a pool grows (issue 18: a burst of 500 calls on a pool growing
    to 40 connections spent a third of the server's CPU there). ``prepare_threshold=None``
    (no prepared statements at all, for a pooler that cannot keep them) still wins.
    """

    def execute(self, sql: Any, parameters: Any = ..., /, *, prepare: bool | None = ...) -> Any: ...


#: paygate's own options in the URL's query string (the rest go to libpq)
_OPTIONS = ("schema", "pool_min", "pool_max", "timeout", "statement_timeout", "finish_commit")


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without paygate's options (and ``+psycopg``), and those options."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(f"not a PostgreSQL URL: {_redact(url)!r}")
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTIONS:
            ours[key] = value
        else:
            theirs.append((key, value))
    conninfo = urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(theirs, quote_via=quote), "")
    )
    return conninfo, ours


def connect_failure(
    given: dict[str, Any], exc: psycopg.Error, hidden: tuple[str, ...] = ()
) -> StoreUnavailable:
    """One line for a connection that failed: host, port, database and the server's
    reason (``database "shop" does not exist``, ``Connection refused``), never a password.
    A connection attempt that ran out of ``connect_timeout`` is a
    [`StoreTimeout`][paygate.stores.StoreTimeout] (``what="connect"``)."""
    # libpq: 'connection failed: connection to server at "h" (h), port p failed: FATAL: ...'
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    reason = " ".join(first.rsplit("failed: ", 1)[-1].split())
    host = given.get("host") or given.get("hostaddr") or os.environ.get("PGHOST")
    where = f"{host or 'localhost'}:{given.get('port') or os.environ.get('PGPORT') or 5432}"
    dbname = given.get("dbname") or os.environ.get("PGDATABASE") or given.get("user") or "?"
    message = redact_dsn(
        f"cannot connect to PostgreSQL at {where}, database {dbname!r}: {reason}", hidden
    )
    if "timeout expired" in reason:
        connect = given.get("connect_timeout") or _LIBPQ_DEFAULTS["connect_timeout"]
        return StoreTimeout(message, what="connect", seconds=float(connect))
    return StoreUnavailable(message)


def _int_option(options: dict[str, str], name: str, default: int) -> int:
    try:
        value = int(options.get(name, default))
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {options[name]!r}") from None
    if value < 0:
        raise ConfigurationError(f"{name} must be >= 0, got {value}")
    return value


def _seconds_option(options: dict[str, str], name: str, default: float) -> float:
    try:
        value = float(options.get(name, default))
    except ValueError:
        raise ConfigurationError(f"{name} must be seconds, got {options[name]!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigurationError(f"{name} must be seconds >= 0, got {options[name]!r}")
    return value


class PostgresStore(SQLStore):
    """The Store protocol on a PostgreSQL database, through a psycopg connection pool.

    ``conninfo``: a libpq URL or key/value string (a password in it never appears in a
    repr, log line or error message). ``migrate=False`` refuses to create or migrate the
    schema (run ``paygate db upgrade``) instead of doing it on open. ``finish_commit``:
    ``"async"`` (the default) commits bookkeeping -- the finish after an event's
    handlers, a fact's claim and marks, the pending idempotency record before a provider
    call -- without waiting for the disk flush, ``"sync"`` waits like every other commit.

    Waits (seconds): ``timeout`` for a free pooled connection; ``statement_timeout`` for
    one call's use of its connection (server side, and one second more client side; 0:
    no limit); libpq's ``connect_timeout`` (default 5 here) for a new connection. See
    the module's docstring.
    """

    dialect = POSTGRES

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str | None = None,
        pool_min: int = 1,
        pool_max: int = 8,
        timeout: float = _DEFAULT_POOL_TIMEOUT,
        statement_timeout: float = _DEFAULT_STATEMENT_TIMEOUT,
        migrate: bool = True,
        display: str | None = None,
        finish_commit: str = "async",
    ) -> None:
        if finish_commit not in ("async", "sync"):
            raise ConfigurationError(
                f"finish_commit must be 'async' or 'sync', got {finish_commit!r}"
            )
        self.finish_commit = finish_commit
        if pool_max < 1 or pool_min > pool_max:
            raise ConfigurationError(
                f"need 1 <= pool_max and pool_min <= pool_max, got {pool_min}/{pool_max}"
            )
        if schema is not None and not schema.strip():
            raise ConfigurationError("schema must not be empty")
        for name, seconds in (("timeout", timeout), ("statement_timeout", statement_timeout)):
            if not float(seconds) >= 0 or float(seconds) == float("inf"):
                raise ConfigurationError(f"{name} must be seconds >= 0, got {seconds!r}")
        self.schema = schema
        self.timeout = float(timeout)
        self.statement_timeout = float(statement_timeout)
        #: how long one call may keep its connection, client side (None: no limit)
        self._bound = self.statement_timeout + _CLIENT_GRACE if self.statement_timeout else None
        given = self._parse_conninfo(conninfo)
        # every password the conninfo holds, to be scrubbed from any text shown
        self._secrets = tuple(
            str(given[key]) for key in ("password", "sslpassword") if given.get(key)
        )
        self._display = redact_dsn(display or conninfo, self._secrets)
        kwargs: dict[str, Any] = {"autocommit": True}
        for key, value in _LIBPQ_DEFAULTS.items():
            if key not in given:
                kwargs[key] = value
        if self._bound is not None and "tcp_user_timeout" not in given:
            # unacknowledged data for longer than a call may take: the peer is gone
            kwargs["tcp_user_timeout"] = str(int(self._bound * 1000))
        options = []
        if schema is not None:
            # quoted as an identifier; a schema that does not exist yet is skipped by
            # PostgreSQL, and the upgrade creates it
            ident = '"' + schema.replace('"', '""') + '"'
            options.append("-c search_path=" + ident.replace("\\", "\\\\").replace(" ", "\\ "))
        if self.statement_timeout and "statement_timeout" not in (given.get("options") or ""):
            options.append(f"-c statement_timeout={int(self.statement_timeout * 1000)}")
        if options:
            # keep libpq ``options`` given in the URL (-c synchronous_commit=off, ...)
            kwargs["options"] = " ".join(
                [given["options"], *options] if given.get("options") else options
            )
        # one direct connection first: a wrong database name, a refused port or a bad
        # password is the server's answer, given at once, where the pool would retry it
        # until `timeout` and end in a bare PoolTimeout (connect_timeout bounds a silent
        # server: 5 s unless the URL says otherwise)
        try:
            psycopg.connect(conninfo, **kwargs).close()
        except psycopg.Error as exc:
            raise connect_failure(given, exc, self._secrets) from None
        #: what a pool's connections are opened with (the async twin's pool too)
        self._conninfo, self._connect_kwargs, self._given = conninfo, kwargs, given
        self._pool_sizes = (pool_min, pool_max)
        self._pool: Any = ConnectionPool(
            conninfo,
            min_size=pool_min,
            max_size=pool_max,
            kwargs=kwargs,
            connection_class=_Connection,
            timeout=self.timeout,
            check=self._check,
            open=False,
            name="paygate",
        )
        self._closed = False
        self._close_lock = threading.Lock()
        self._recent = RecentPayments()
        #: set while this thread runs the schema upgrade: no statement bound (see upgrade)
        self._unbounded: Any = threading.local()
        tick = min(1.0, max(0.05, (self._bound or 10.0) / 10))
        self._watchdog = _Watchdog(tick)
        try:
            self._pool.open(wait=True, timeout=self.timeout)
        except (PoolTimeout, psycopg.Error) as exc:
            self._pool.close()
            self._watchdog.stop()
            raise self._pool_failed(exc) from None
        try:
            self.ensure_schema(migrate=migrate)
        except BaseException:
            self.close()
            raise

    def _pool_failed(self, exc: BaseException) -> StoreTimeout:
        """The error for a pool that could not open its first connections in time."""
        connect = self._given.get("connect_timeout", _LIBPQ_DEFAULTS["connect_timeout"])
        return StoreTimeout(
            f"cannot connect to PostgreSQL store {self._display} within "
            f"{self.timeout:g}s (connect_timeout={connect}s per attempt, timeout="
            f"{self.timeout:g}s in all): {type(exc).__name__}",
            what="connect",
            seconds=self.timeout,
        )

    def _parse_conninfo(self, conninfo: str) -> dict[str, Any]:
        """libpq's reading of ``conninfo``. A malformed one is a ConfigurationError that
        quotes nothing of it: libpq's message quotes the part it could not read, which
        can be a password (``password hunter2``: missing "=" after ...), so only the
        quoted parameter names and punctuation are kept."""
        try:
            return psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.Error as exc:
            known = {d.keyword.decode() for d in psycopg.pq.Conninfo.get_defaults()}

            def quoted(match: re.Match[str]) -> str:
                inner = match.group(1)
                keep = inner in known or not any(c.isalnum() for c in inner)
                return match.group() if keep else '"..."'

            message = re.sub(r'"([^"]*)"', quoted, str(exc).strip().splitlines()[0])
            raise ConfigurationError(
                f"the PostgreSQL connection string is not valid: {message}"
            ) from None

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True) -> PostgresStore:
        """``postgresql://user:password@host:5432/db?schema=paygate&pool_max=16``."""
        conninfo, options = _split_url(url)
        return cls(
            conninfo,
            schema=options.get("schema") or None,
            pool_min=_int_option(options, "pool_min", 1),
            pool_max=_int_option(options, "pool_max", 8),
            timeout=_seconds_option(options, "timeout", _DEFAULT_POOL_TIMEOUT),
            statement_timeout=_seconds_option(
                options, "statement_timeout", _DEFAULT_STATEMENT_TIMEOUT
            ),
            migrate=migrate,
            display=url,
            finish_commit=options.get("finish_commit", "async"),
        )

    def __repr__(self) -> str:
        return f"PostgresStore({self._display!r})"

    # -- connections ------------------------------------------------------------------------

    def _connection(self, *, cursor: bool = False) -> _Borrowed:
        """A pooled connection (or, with ``cursor``, its cursor) for a ``with`` block,
        kept at most ``statement_timeout`` + 1 s (none while upgrading the schema)."""
        if self._closed:
            raise ConfigurationError("this PostgresStore is closed")
        unbounded = getattr(self._unbounded, "active", False)
        return _Borrowed(self, cursor, None if unbounded else self._bound)

    def _check(self, conn: _Connection) -> None:
        """The pool's check of a connection before handing it out (psycopg_pool's
        ``check=``): raises if it is broken, so the pool replaces it and the caller gets
        a working one -- a database restarted since costs no failed call.

        A connection used within the last second with nothing to read is taken as it is
        (a round trip per call would double the webhook path's); otherwise the pool's
        own check runs (an empty query), bounded like a call. A broken one means the
        others idle in the pool are most likely broken too (a restart, a cut network):
        they are all replaced now, rather than found one per call, each after the pool's
        growing back-off (1 s, 2 s, 4 s, ...).
        """
        if _used_recently(conn):
            return
        if self._bound is not None:
            self._watchdog.watch(conn, monotonic() + self._bound)
        try:
            self._pool.check_connection(conn)
        except Exception:
            with contextlib.suppress(Exception):
                self._pool.drain()
            raise
        finally:
            if self._bound is not None:
                self._watchdog.release(conn)
        conn._paygate_used = monotonic()

    def _translate(self, exc: psycopg.Error, *, expired: bool, bound: float | None) -> StoreError:
        """The paygate error for a driver error of a call (never the password)."""
        where = f"PostgreSQL store {self._display}"
        if expired:
            return StoreTimeout(
                f"{where}: no answer within {bound:g}s (statement_timeout="
                f"{self.statement_timeout:g}s + {_CLIENT_GRACE:g}s); the connection was "
                "given up",
                what="statement",
                seconds=bound,
            )
        text = redact_dsn(
            str(exc).strip().splitlines()[0] if str(exc).strip() else "", self._secrets
        )
        if isinstance(exc, psycopg.errors.QueryCanceled):
            return StoreTimeout(
                f"{where}: the statement ran past statement_timeout="
                f"{self.statement_timeout:g}s and was canceled by the server ({text})",
                what="statement",
                seconds=self.statement_timeout,
            )
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return StoreTimeout(f"{where}: lock_timeout ran out ({text})", what="lock")
        return StoreUnavailable(f"{where}: {type(exc).__name__}: {text}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[Cursor]:
        with self._connection() as conn, conn.paygate_transaction():
            cur = conn.paygate_cursor()
            if getattr(self._unbounded, "active", False):
                # a migration may rewrite a large table or wait for a long transaction
                cur.execute("SET LOCAL statement_timeout = 0")
            yield cur

    def _write_one(self) -> contextlib.AbstractContextManager[_PreparingCursor]:
        # one statement on an autocommit connection is its own transaction: no BEGIN and
        # COMMIT round trips (an event's first delivery or redelivery; the general path's
        # claim; the finish after an event's handlers)
        return self._connection(cursor=True)

    def _read(self) -> contextlib.AbstractContextManager[Cursor]:
        # autocommit: a single SELECT needs no BEGIN/COMMIT round trips
        return self._connection(cursor=True)

    # -- webhook events -----------------------------------------------------------------------

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
        """`SQLStore.ingest_event` in one or two round trips on one pooled
        connection. The same contract: a known event's delivery counted (and the event
        taken over if nobody owns it) by the same statement, ``None`` for a plan needing
        I/O first or a concurrent first delivery of the same event (the general path sorts
        it out), [`StoreConflict`][paygate.stores.StoreConflict] when the payment changed since it
        was read, nothing written in either case.

        Where the event starts from: the payment's row as this store last wrote it (see
        `RecentPayments`), else -- for an event that would create the payment --
        the event tried as the payment's first, which returns the stored row instead when
        the payment exists, else a read. Then one statement writes event, payment and
        transition, or counts the delivery of a known event (see ``INGEST_STATEMENTS``).
        """
        _ids.check_event_ids(provider, event_id, payment_id, delivered=True)
        # 32 hex digits like uuid4().hex (128 random bits, not 122), without a UUID object
        token = secrets.token_hex(16)

        def event_row(plan: EventPlan) -> tuple[Any, ...]:
            return applied_event_params(
                provider, event_id, event_type, provider_type, payment_id, payload,
                occurred_at, now, token, lease_seconds, plan,
            )  # fmt: skip

        event = (provider, event_id)
        # the ``dup`` CTE's parameters, then the payment id of the result's row
        known = (now, token, now, now + lease_seconds, *event, payment_id)
        claim = EventClaim(provider, event_id, ClaimStatus.CLAIMED, token)

        def redelivered(
            state: tuple[Any, ...], row: tuple[Any, ...] | None
        ) -> tuple[EventClaim, None, PaymentRecord | None]:
            stored = None if row is None else payment_from_row(row)
            if stored is not None:
                self._recent.put(stored)
            return redelivered_claim(provider, event_id, token, state), None, stored

        try:
            # autocommit, one connection: each statement is its own transaction
            with self._write_one() as cur:
                current = None if payment_id is None else self._recent.get(payment_id)
                if payment_id is not None and current is None:
                    plan = decide(None)  # as if the payment were new
                    creates = plan is not None and plan.record is not None
                    if plan is not None and creates and plan.expected_version is None:
                        wrote, state, row = self._write_event(
                            cur, plan, event, event_row, known, probe=payment_id
                        )
                        if wrote:
                            return claim, plan, None
                        if state is not None:
                            return redelivered(state, row)
                        if row is None:  # inserted by another worker after it began
                            raise StoreConflict(f"payment {payment_id} was created meanwhile")
                    else:
                        cur.execute(_SELECT_PAYMENT, (payment_id,))
                        row = cur.fetchone()
                    current = None if row is None else payment_from_row(row)
                plan = decide(current)
                if plan is None:
                    return None
                if plan.record is None:  # the payment does not change: the event's row alone
                    checked = () if current is None else (current.id, current.version)
                    cur.execute(
                        INGEST_EVENT_ALONE[current is not None],
                        (*event_row(plan), *event, *checked, *known),
                    )
                    wrote, state, row = _ingest_result(cur.fetchone())
                    if current is not None:
                        if wrote:
                            self._recent.put(current)
                        else:
                            self._recent.drop(current.id)
                    if wrote:
                        return claim, plan, current
                    if state is not None:
                        return redelivered(state, row)
                    raise StoreConflict(f"payment {payment_id} changed since it was read")
                wrote, state, row = self._write_event(cur, plan, event, event_row, known)
                if not wrote:
                    if state is not None:
                        return redelivered(state, row)
                    raise StoreConflict(f"payment {plan.record.id} changed since it was read")
        except psycopg.errors.UniqueViolation:
            # the same event's first delivery committed by another worker after the
            # statement began (or its transition already logged): all rolled back; the
            # general path sorts it out
            if payment_id is not None:
                self._recent.drop(payment_id)
            return None
        return claim, plan, current

    def _write_event(
        self,
        cur: Any,
        plan: EventPlan,
        event: tuple[str, str],
        event_row: Callable[[EventPlan], tuple[Any, ...]],
        known: tuple[Any, ...],
        *,
        probe: str | None = None,
    ) -> tuple[bool, tuple[Any, ...] | None, tuple[Any, ...] | None]:
        """Run the statement that writes ``plan`` (its payment row, the event's row, its
        transition) or counts a known event's delivery (``known``: its parameters).
        Returns (written, the known event's state or ``None``, the payment's row as
        stored before the statement: with ``probe`` or for a known event, if any)."""
        record = plan.record
        assert record is not None
        encoded = (record.payment, _codec.dumps(record.payment))  # the facts' payment too
        if plan.expected_version is None:
            params = _inserted_payment_params(record, encoded[1]) + event + event_row(plan)
        else:
            params = (
                update_payment_params(record, plan.expected_version, encoded[1])
                + event
                + event_row(plan)
            )
        if plan.transition is not None:
            params += transition_params(plan.transition)
        for fact in plan.facts:
            params += fact_params(fact, encoded)
        statement = ingest_statement(
            plan.expected_version is None,
            plan.transition is not None,
            probe is not None,
            len(plan.facts),
        )
        cur.execute(statement, params + known)
        wrote, state, row = _ingest_result(cur.fetchone())
        if wrote:
            self._recent.put(record)
        else:
            self._recent.drop(record.id)
        return wrote, state, row

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
        """`SQLStore.claim_event` in one round trip (see ``_CLAIM_EVENT``)."""
        _ids.check_event_ids(provider, event_id, payment_id, delivered=True)
        token = secrets.token_hex(16)
        params = (provider, event_id, event_type, provider_type, payment_id,
                  _json(payload), occurred_at, now, token, now + lease_seconds,
                  now, now)  # fmt: skip
        with self._write_one() as cur:
            cur.execute(_CLAIM_EVENT, params)
            row = cur.fetchone()
        assert row is not None  # RETURNING of an insert or an update: always a row
        if int(row[3]) == 1:  # inserted (deliveries = 1): a new event
            return EventClaim(provider, event_id, ClaimStatus.CLAIMED, token)
        return redelivered_claim(provider, event_id, token, row)

    def finish_event(self, claim: EventClaim, *, now: float) -> bool:
        if self.finish_commit == "sync":
            return super().finish_event(claim, now=now)
        with self._write_one() as cur:
            cur.execute(_FINISH_EVENT_ASYNC, (now, claim.provider, claim.event_id, claim.token))
            return int(cur.rowcount) == 1

    def claim_facts(
        self,
        *,
        now: float,
        lease_seconds: float,
        limit: int = 100,
        retry_failed: bool = False,
        known: Mapping[str, Fact] | None = None,
    ) -> list[FactClaim]:
        """`SQLStore.claim_facts` in one round trip (``UPDATE ... RETURNING``)."""
        token = secrets.token_hex(16)
        lease_until = now + lease_seconds
        with self._write_one() as cur:
            statement = _CLAIM_FACTS[retry_failed, self.finish_commit == "async"]
            cur.execute(statement, (token, lease_until, now, int(limit), now))
            rows = cur.fetchall()
        return [FactClaim(fact_from_row(row, known), token, lease_until) for row in rows]

    def finish_fact(self, claim: FactClaim, *, now: float) -> tuple[bool, bool]:
        """`SQLStore.finish_fact` in one round trip."""
        fact = claim.fact
        params = (now, fact.id, claim.token, fact.payment_id, fact.seq or 0, now)
        with self._write_one() as cur:
            cur.execute(_FINISH_FACTS[self.finish_commit == "async"], params)
            row = cur.fetchone()
        assert row is not None  # a SELECT of two scalars: always one row
        return int(row[0]) == 1, bool(row[1])

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
        try:
            super().save_payment(
                record, expected_version=expected_version, transition=transition,
                claim=claim, outcome=outcome, finish=finish, facts=facts,
            )  # fmt: skip
        except BaseException:
            self._recent.drop(record.id)
            raise
        self._recent.put(record)

    # -- a call's writes, one statement each ---------------------------------------------------
    #
    # A payment call's two transactions (the pending idempotency record before the provider
    # call, the answer after it) used to cost a round trip per statement, BEGIN and COMMIT
    # included: 12 per create_payment, 36 ms of waiting with the database 3 ms away. Sent
    # in psycopg's pipeline mode they cost 1 and 2, and each statement a poll of the
    # socket; now each is ONE statement in autocommit (see ``answer_statement``): one round
    # trip, one execute. An answer writing several payments (none of paygate's flows
    # does) is still pipelined: ``_save_answer_pipelined``.

    def begin_operation(self, record: OperationRecord) -> OperationRecord:
        """`SQLStore.begin_operation` in one statement (``_BEGIN_OPERATION``): one round
        trip, the commit relaxed with ``finish_commit=async``."""
        _ids.check_operation_ids(record)
        with self._write_one() as cur:
            cur.execute(
                _BEGIN_OPERATION[self.finish_commit == "async"],
                (*operation_params(record), record.key),
                prepare=True,  # see _PreparingCursor
            )
            row = cur.fetchone()
            if row is None:  # inserted by another call after this statement's snapshot
                cur.execute(_SELECT_OPERATION, (record.key,))
                row = cur.fetchone()
        return operation_from_row(row)

    def replace_operation(self, record: OperationRecord, *, expected_attempt: int) -> bool:
        """`SQLStore.replace_operation` in one statement (one round trip)."""
        _ids.check_operation_ids(record)
        with self._write_one() as cur:
            cur.execute(
                _REPLACE_OPERATION[self.finish_commit == "async"],
                replace_operation_params(record, expected_attempt),
            )
            return int(cur.rowcount) == 1

    def save_answer(
        self, writes: Sequence[PaymentWrite], *, finish: OperationFinish | None = None
    ) -> None:
        """`SQLStore.save_answer` in ONE statement (``answer_statement``), one round trip
        and one durable commit: every write only if the payment's compare-and-set wrote,
        else nothing and [`StoreConflict`][paygate.stores.StoreConflict]; a transition an
        event already recorded rolls it all back
        ([`ClaimLost`][paygate.stores.ClaimLost]). Keeps the recently written rows
        (`RecentPayments`)."""
        if not check_answer(writes, finish):
            return
        if writes and not _one_payment(writes):
            self._save_answer_pipelined(writes, finish)
            return
        with self._remembered(writes), self._write_one() as cur:
            if not writes:
                assert finish is not None  # check_answer: something to write
                cur.execute(_FINISH_OPERATION, finish_operation_params(finish))
                return
            statement = answer_statement(
                writes[0].expected_version is None,
                finish is not None,
                sum(write.transition is not None for write in writes),
                sum(len(write.facts) for write in writes),
            )
            try:
                cur.execute(statement, answer_params(writes, finish), prepare=True)
            except psycopg.errors.UniqueViolation as exc:
                raise self._claim_lost(exc, writes) from None
            if int(cur.rowcount) != 1:
                raise write_conflict(writes[0].record, writes[0].expected_version)

    @contextlib.contextmanager
    def _remembered(self, writes: Sequence[PaymentWrite]) -> Iterator[None]:
        """Around an answer's writes: the recently written payments (`RecentPayments`)
        learn them once the block commits, and forget them if it fails (its outcome on
        the server is then unknown)."""
        try:
            yield
        except BaseException:
            for write in writes:
                self._recent.drop(write.record.id)
            raise
        for write in writes:
            self._recent.put(write.record)

    @staticmethod
    def _claim_lost(
        exc: psycopg.errors.UniqueViolation, writes: Sequence[PaymentWrite]
    ) -> BaseException:
        """The error of an answer that broke a unique constraint: a transition whose event
        already moved a payment is [`ClaimLost`][paygate.stores.ClaimLost]."""
        if exc.diag.table_name != "paygate_transitions":
            return exc
        events = [w.transition.event_id for w in writes if w.transition]
        return ClaimLost(f"event {', '.join(map(str, events))} already moved a payment")

    @contextlib.contextmanager
    def _pipelined(self) -> Iterator[Any]:
        """A connection in pipeline mode and the pipeline (``sync()`` reads the answers so
        far); a transaction the block leaves open, failed or not, is rolled back."""
        with self._connection() as conn:
            try:
                with conn.paygate_pipeline() as pipe:
                    yield conn, pipe
            except BaseException:
                conn.paygate_abandon()
                raise

    def _save_answer_pipelined(
        self, writes: Sequence[PaymentWrite], finish: OperationFinish | None
    ) -> None:
        """An answer writing several payments, in two round trips: BEGIN and every write
        in one pipeline, then, when each payment write changed its row, COMMIT (else
        ROLLBACK and [`StoreConflict`][paygate.stores.StoreConflict])."""
        with self._remembered(writes), self._pipelined() as (conn, pipe):
            cur = conn.paygate_cursor()
            cur.execute("BEGIN")
            if finish is not None:
                cur.execute(_FINISH_OPERATION, finish_operation_params(finish))
            written = []
            for write in writes:
                record, expected = write.record, write.expected_version
                changed = conn.paygate_new_cursor()
                encoded = (record.payment, _codec.dumps(record.payment))
                self._run(changed, *payment_write(record, expected, encoded[1]))
                written.append((changed, write))
                if write.transition is not None:
                    self._run(cur, INSERT_TRANSITION, transition_params(write.transition))
                for fact in write.facts:
                    self._run(cur, INSERT_FACT, fact_params(fact, encoded))
            try:
                pipe.sync()
            except psycopg.errors.UniqueViolation as exc:
                raise self._claim_lost(exc, writes) from None
            for changed, write in written:
                if changed.rowcount != 1:
                    raise write_conflict(write.record, write.expected_version)
            cur.execute("COMMIT")

    @contextlib.contextmanager
    def _write_bookkeeping(self) -> Iterator[Cursor]:
        """A transaction whose commit does not wait for the WAL flush
        (``synchronous_commit = off`` for it alone) with ``finish_commit=async``: an
        idempotency record before the provider call, a fact's failed mark. Only a crash of
        the server itself in the next instants can lose it; the next synchronous commit
        flushes it with its own (the WAL is one sequence)."""
        with self._write() as cur:
            if self.finish_commit == "async":
                cur.execute("SET LOCAL synchronous_commit = off")
            yield cur

    # -- schema -----------------------------------------------------------------------------

    def upgrade(self) -> int:
        """The shared upgrade, without ``statement_timeout`` and the client's bound: a
        migration may rewrite a large table, and waits its turn behind a concurrent
        upgrader's (the migration lock). TCP keepalives still notice a dead network."""
        self._unbounded.active = True
        try:
            if self.schema is not None:
                # under the migration lock too: concurrent CREATE SCHEMA IF NOT EXISTS race
                with self._write() as cur:
                    cur.execute(str(self.dialect.migration_lock))
                    cur.execute(
                        pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            pgsql.Identifier(self.schema)
                        )
                    )
            return super().upgrade()
        finally:
            self._unbounded.active = False

    def close(self) -> None:
        """Close the pool's connections."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._pool.close()
        self._watchdog.stop()
