"""Reconciliation inside PostgreSQL, for a [`PostgresStore`][paygate.stores.postgres.PostgresStore].

The orders are the store's own ``paygate_payments`` rows: instead of reading them out into
Python (``orders_from_store``, a row and a ``PaymentRecord`` per payment), the provider's
records go in. They are copied (``COPY ... FROM STDIN``, binary) into a temporary table, and
the whole classification runs as SQL next to the orders, in one transaction on a
connection of its own:

1. ``pg_rec``: the records, numbered in the order they were read (``seq``), the ones
   dated outside ``[since, until)`` deleted.
2. ``pg_held``: one row per order id, from its payments as ``orders_from_store`` builds it
   (the attempt that got furthest speaks for the order, the first in id order on a tie;
   the order's place in the books is its first payment id), those created outside the
   window deleted.
3. ``pg_j``: the records counted per order id (``pg_per``), ``FULL JOIN``ed to the orders.
   An order whose only record is a clean match (a successful payment of exactly its
   amount and currency, the order ``paid``) is counted and summed per currency, in SQL; so
   are the orders without a record (awaiting, not charged, missing); the ids of no order
   held give the orphans.
4. The other orders (a second charge, a refund, a failure...) go through the per-order
   rules of the embedded engine (``_engine._Classifier``), written in SQL (``_LINES_SQL``):
   which payment is kept, which ids are named, the notes.

Only the report's lines, the per-currency totals and the counts come back to Python, which
only turns them into [`ReconciliationLine`][paygate.reconcile.ReconciliationLine] objects:
no order row travels.

The semantics are the embedded engine's when it reads the records one at a time (every
reader but a non-windowed batched one): an order's first record, when it is a clean match,
is "matched before more was known", so it is not among the ids and fees of the order's
lines (``_engine._promote``). tests/test_reconcile_postgres.py runs both on the same data.
"""

from __future__ import annotations

# ruff: noqa: S608 - the SQL is built from this module's constants only, values are parameters
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from paygate.errors import ValidationError
from paygate.money import Money
from paygate.reconcile._common import ProviderRow, timestamp_of
from paygate.reconcile._engine import _rows_of_records
from paygate.reconcile._model import (
    PAID_LIKE,
    Action,
    Case,
    OrderStatus,
    Policy,
    ProviderRecord,
    ReconciliationLine,
    ReconciliationReport,
    RecordKind,
    RecordStatus,
)
from paygate.reconcile._store import _RANK, PAYMENT_TO_ORDER, StoreOrders

__all__ = ["pushes_down", "reconcile_in_postgres"]

Progress = Callable[[str, int], None]

_PROGRESS_ROWS = 1 << 16

#: the run's ``work_mem`` (per sort or hash, server side): PostgreSQL's default (4MB) sends
#: the joins and sorts of a few hundred thousand orders to disk in batches
WORK_MEM = "64MB"

_ACTION_FOR = {
    "refund": Action.REFUND,
    "mark_paid": Action.MARK_PAID,
    "investigate": Action.INVESTIGATE,
    "cancel": Action.CANCEL,
}


def _postgres_store(source: Any) -> Any:
    """The `PostgresStore` behind ``source`` (itself, or a `StoreOrders` over one), or None.

    Looked up in ``sys.modules``: a PostgresStore exists only once its module (and psycopg)
    was imported, so nothing is imported to answer no.
    """
    module = sys.modules.get("paygate.stores.postgres")
    if module is None:
        return None
    store = source.store if isinstance(source, StoreOrders) else source
    return store if isinstance(store, module.PostgresStore) else None


def pushes_down(internal: Any) -> bool:
    """True when ``internal`` is a PostgreSQL store's orders (`orders_from_store` over a
    `PostgresStore`, or the store), which
    [`reconcile_in_postgres`][paygate.reconcile.reconcile_in_postgres] classifies inside the
    database."""
    return _postgres_store(internal) is not None


# -- the SQL ----------------------------------------------------------------------------------


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


#: paygate's payment status -> the order's status, and its rank (`_store._RANK`)
_ORDER_STATUS_SQL = (
    "CASE status "
    + " ".join(
        f"WHEN {_sql_text(str(p))} THEN {_sql_text(str(o))}" for p, o in PAYMENT_TO_ORDER.items()
    )
    + " END"
)
_RANK_SQL = (
    "CASE status "
    + " ".join(f"WHEN {_sql_text(str(p))} THEN {_RANK[o]}" for p, o in PAYMENT_TO_ORDER.items())
    + " END"
)
_PAID_LIKE_SQL = "(" + ", ".join(_sql_text(str(s)) for s in sorted(PAID_LIKE)) + ")"

_CREATE_RECORDS_SQL = """
CREATE TEMP TABLE pg_rec (
    seq bigint GENERATED ALWAYS AS IDENTITY,
    order_id text, kind text NOT NULL, status text NOT NULL, amount bigint NOT NULL,
    currency text NOT NULL, fee bigint NOT NULL, net bigint NOT NULL, record_id text,
    payment_id text, ts float8
) ON COMMIT DROP
"""
_COPY_RECORDS_SQL = (
    "COPY pg_rec (order_id, kind, status, amount, currency, fee, net, record_id, payment_id, ts)"
    " FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ["text", "text", "text", "int8", "text", "int8", "int8", "text", "text", "float8"]

#: one row per order id, as ``StoreOrders.iter_compact`` builds it: the payment that got
#: furthest (the first in id order on a tie) speaks for the order; ``first_id`` (its first
#: payment id) is its place in the books. ``created``: the row's ``created_at``, or when
#: that is 0 the payment's own ``created_at`` (``Payment.created_at`` in ``data``).
_HELD_SQL = f"""
CREATE TEMP TABLE pg_held ON COMMIT DROP AS
SELECT order_id, first_id, amount, currency, status, nullif(refunded, 0) AS refunded,
    CASE WHEN %(want_time)s THEN nullif(CASE WHEN created_at <> 0 THEN created_at ELSE (
        SELECT extract(epoch FROM (x.data::jsonb ->> 'created_at')::timestamptz)::float8
        FROM paygate_payments x WHERE x.id = best_id) END, 0) END AS created
FROM (
    SELECT DISTINCT ON (order_id) order_id, id AS best_id, min(id) OVER w AS first_id,
        amount, currency, refunded, created_at, ostatus AS status
    FROM (
        SELECT id, order_id, amount, currency, refunded, created_at,
            {_ORDER_STATUS_SQL} AS ostatus, {_RANK_SQL} AS rk
        FROM paygate_payments WHERE order_id IS NOT NULL
    ) p
    WINDOW w AS (PARTITION BY order_id ORDER BY rk DESC, id
        ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ORDER BY order_id, rk DESC, id
) b
"""

_WINDOW_SQL = (
    "DELETE FROM pg_rec WHERE ts IS NOT NULL AND NOT (ts >= %(lo)s AND ts < %(hi)s)",
    "DELETE FROM pg_held WHERE created IS NOT NULL"
    " AND NOT (created >= %(lo)s AND created < %(hi)s)",
)

#: the join: every order held, with how many records (not ``other``) name it, and whether
#: the first of them is the clean match (a successful payment of exactly the amount and
#: currency of an order the books call ``paid``)
_PER_SQL = """
CREATE TEMP TABLE pg_per ON COMMIT DROP AS
SELECT order_id, count(*) AS n, min(seq) AS first_seq
FROM pg_rec WHERE kind <> 'other' AND order_id IS NOT NULL
GROUP BY order_id
"""
_JOIN_SQL = f"""
CREATE TEMP TABLE pg_j ON COMMIT DROP AS
SELECT coalesce(h.order_id, p.order_id) AS order_id, h.first_id, h.amount, h.currency,
    h.status, h.refunded, h.status IN {_PAID_LIKE_SQL} AS paid_like,
    coalesce(%(recent_after)s::float8 IS NOT NULL AND h.created > %(recent_after)s::float8,
        false) AS recent,
    p.n, p.first_seq,
    coalesce(h.status = 'paid' AND r.kind = 'payment' AND r.status = 'succeeded'
        AND r.amount = h.amount AND r.currency = h.currency, false) AS fast
FROM pg_held h
FULL JOIN pg_per p ON p.order_id = h.order_id
LEFT JOIN pg_rec r ON r.seq = p.first_seq
"""

#: the few: the orders held with more than one clean match, and the ids of no order held
#: (small tables, analyzed: their joins with ``pg_rec`` then hash them, not it)
_FEW_SQL = (
    "CREATE TEMP TABLE pg_prom ON COMMIT DROP AS SELECT * FROM pg_j"
    " WHERE first_id IS NOT NULL AND n IS NOT NULL AND NOT (n = 1 AND fast)",
    "CREATE TEMP TABLE pg_orph ON COMMIT DROP AS SELECT order_id FROM pg_j WHERE first_id IS NULL",
    "ANALYZE pg_prom; ANALYZE pg_orph",
)

#: the orders with more than one clean match, and what their records say (the engine's
#: ``_OrderState``): the first record is left out when it was the clean match, and its
#: payment (amount, currency, no id) leads the payments instead
_STATE_SQL = """
CREATE TEMP TABLE pg_state ON COMMIT DROP AS
WITH s AS MATERIALIZED (
    SELECT r.* FROM pg_prom j JOIN pg_rec r ON r.order_id = j.order_id
    WHERE r.kind <> 'other' AND NOT (j.fast AND r.seq = j.first_seq)
), agg AS (
    SELECT order_id,
        array_agg(record_id ORDER BY seq) AS record_ids,
        sum(fee) AS fee, sum(net) AS net,
        count(DISTINCT currency) FILTER (WHERE fee <> 0 OR net <> 0) AS fee_currencies,
        min(currency) FILTER (WHERE fee <> 0 OR net <> 0) AS fee_currency,
        array_agg(amount ORDER BY seq) FILTER (WHERE kind = 'payment' AND status = 'succeeded')
            AS pa,
        array_agg(currency ORDER BY seq)
            FILTER (WHERE kind = 'payment' AND status = 'succeeded') AS pc,
        array_agg(coalesce(nullif(payment_id, ''), record_id) ORDER BY seq)
            FILTER (WHERE kind = 'payment' AND status = 'succeeded') AS pp,
        count(*) FILTER (WHERE kind = 'payment' AND status = 'pending') AS pending,
        count(*) FILTER (WHERE kind = 'payment' AND status = 'failed') AS failed,
        coalesce(sum(amount) FILTER (WHERE kind = 'payment_reversal' AND status = 'succeeded'),
            0) AS reversed,
        coalesce(sum(amount) FILTER (WHERE kind = 'refund' AND status = 'succeeded'), 0)
            - coalesce(sum(amount) FILTER (WHERE kind = 'refund_reversal'
                AND status = 'succeeded'), 0) AS refunded,
        count(*) FILTER (WHERE kind = 'dispute' AND status = 'succeeded')
            - count(*) FILTER (WHERE kind = 'dispute_reversal' AND status = 'succeeded')
            AS disputes
    FROM s GROUP BY order_id
), rel AS (
    SELECT order_id, array_agg(payment_id ORDER BY first) AS related FROM (
        SELECT order_id, payment_id, min(seq) AS first FROM s
        WHERE kind <> 'payment' AND payment_id <> '' GROUP BY order_id, payment_id
    ) x GROUP BY order_id
), c AS (
    SELECT j.order_id, j.first_id, j.amount, j.currency, j.status, j.paid_like,
        j.refunded AS known_refunded, a.record_ids, a.fee, a.net,
        CASE WHEN a.fee_currencies = 1 THEN a.fee_currency END AS fee_currency,
        CASE WHEN j.fast THEN ARRAY[j.amount] ELSE '{}'::bigint[] END
            || coalesce(a.pa, '{}') AS pa,
        CASE WHEN j.fast THEN ARRAY[j.currency] ELSE '{}'::text[] END
            || coalesce(a.pc, '{}') AS pc,
        CASE WHEN j.fast THEN ARRAY[NULL::text] ELSE '{}'::text[] END
            || coalesce(a.pp, '{}') AS pp,
        a.pending, a.failed, a.reversed, a.refunded, a.disputes,
        coalesce(rel.related, '{}') AS related
    FROM pg_prom j JOIN agg a ON a.order_id = j.order_id
    LEFT JOIN rel ON rel.order_id = j.order_id
), d AS MATERIALIZED (
    SELECT c.*, cardinality(pa) AS npay,
        (SELECT coalesce(sum(x), 0) FROM unnest(pa) x) AS psum,
        (SELECT min(i) FROM unnest(pc) WITH ORDINALITY u(x, i) WHERE x <> c.currency)
            AS foreign_at,
        coalesce(array_position(pa, c.amount), 1) AS exact,
        array_remove(pp, NULL) AS payment_ids
    FROM c
), e AS (
    SELECT d.*, npay > 0 AND psum - reversed > 0 AS succeeded,
        failed + npay AS failed_total,
        pa[exact] - reversed AS kept,
        CASE WHEN status = 'refunded' THEN greatest(coalesce(known_refunded, 0), amount)
            ELSE coalesce(known_refunded, 0) END AS known
    FROM d
), f AS (
    SELECT e.*,
        NOT succeeded AND pending > 0 AS in_progress,
        NOT succeeded AND pending = 0 AND failed_total > 0 AND paid_like AS payment_failed,
        NOT succeeded AND pending = 0 AND failed_total > 0 AND NOT paid_like AS both_failed,
        succeeded AND NOT paid_like AS unpaid_charged,
        succeeded AND paid_like AND foreign_at IS NOT NULL AS currency_mismatch,
        succeeded AND paid_like AND foreign_at IS NULL AND npay > 1 AS double_charge,
        succeeded AND paid_like AND foreign_at IS NULL AND kept <> amount AS amount_mismatch
    FROM e
), g AS (
    SELECT f.*,
        in_progress OR payment_failed OR both_failed OR unpaid_charged OR currency_mismatch
            OR double_charge OR amount_mismatch AS found
    FROM f
), h AS (
    SELECT g.*,
        succeeded AND paid_like AND foreign_at IS NULL AND NOT found AND refunded = 0
            AND disputes <= 0 AS early_matched
    FROM g
), k AS (
    SELECT h.*,
        NOT early_matched AND refunded > known AS unknown_refund,
        NOT early_matched AND disputes > 0 AND status <> 'disputed' AS unknown_dispute
    FROM h
)
SELECT k.*,
    early_matched OR (NOT found AND NOT unknown_refund AND NOT unknown_dispute AND paid_like)
        AS matched,
    NOT early_matched AND NOT found AND NOT unknown_refund AND NOT unknown_dispute
        AND NOT paid_like AS not_charged,
    ARRAY(SELECT x FROM unnest(payment_ids || related) WITH ORDINALITY u(x, i)
        GROUP BY x ORDER BY min(i)) AS named_ids
FROM k
"""

#: every line of the orders held, in the books' order (then the order of the rules), and
#: the promoted orders that the rules found matched, per currency where the first of them
#: stands: (place, rule, case, order id, status, provider status, amount, currency,
#: provider amount, provider currency, difference, fee, net, fee currency, payment ids,
#: record ids, note, count)
_LINES_SQL = """
SELECT * FROM (
    SELECT first_id AS place, 0 AS rule, 'missing' AS "case", order_id, status,
        NULL::text AS provider_status, amount, currency,
        NULL::numeric AS provider_amount, NULL::text AS provider_currency,
        NULL::numeric AS difference, NULL::numeric AS fee, NULL::numeric AS net,
        NULL::text AS fee_currency, '{}'::text[] AS payment_ids, '{}'::text[] AS record_ids,
        'the order is paid but the provider has no record of it' AS note, 1::bigint AS n
    FROM pg_j WHERE n IS NULL AND paid_like AND NOT recent
    UNION ALL
    SELECT first_id, 1, 'payment_failed', order_id, status, 'failed', amount, currency,
        NULL, NULL, NULL, fee, net, fee_currency, '{}', record_ids,
        format('%s payment attempt(s) failed, none succeeded', failed_total), 1
    FROM pg_state WHERE payment_failed
    UNION ALL
    SELECT first_id, 1, 'unpaid_order_charged', order_id, status, 'succeeded', amount,
        currency,
        (SELECT sum(a) FROM unnest(pa, pc) u(a, c) WHERE c = pc[1]) - reversed, pc[1],
        NULL, fee, net, fee_currency, payment_ids, record_ids,
        format('the order is %s but %s payment(s) succeeded', status, npay), 1
    FROM pg_state WHERE unpaid_charged
    UNION ALL
    SELECT first_id, 1, 'currency_mismatch', order_id, status, 'succeeded', amount, currency,
        pa[foreign_at], pc[foreign_at], NULL, fee, net, fee_currency,
        CASE WHEN pp[foreign_at] IS NOT NULL AND pp[foreign_at] <> ''
            THEN ARRAY[pp[foreign_at]] ELSE '{}' END,
        record_ids, format('the order is in %s, the payment in %s', currency, pc[foreign_at]), 1
    FROM pg_state WHERE currency_mismatch
    UNION ALL
    SELECT first_id, 2, 'double_charge', order_id, status, 'succeeded', amount, currency,
        psum - pa[exact], currency, NULL, fee, net, fee_currency,
        ARRAY(SELECT p FROM unnest(pp) WITH ORDINALITY u(p, i)
            WHERE i <> exact AND p <> '' ORDER BY i),
        record_ids, format('%s successful payments for one order', npay), 1
    FROM pg_state WHERE double_charge
    UNION ALL
    SELECT first_id, 3, 'amount_mismatch', order_id, status, 'succeeded', amount, currency,
        kept, currency, kept - amount, fee, net, fee_currency,
        CASE WHEN pp[exact] IS NOT NULL AND pp[exact] <> '' THEN ARRAY[pp[exact]] ELSE '{}' END,
        record_ids, 'the provider took a different amount than the order''s', 1
    FROM pg_state WHERE amount_mismatch
    UNION ALL
    SELECT first_id, 4, 'unknown_refund', order_id, status, 'refunded', amount, currency,
        refunded - known, currency, NULL, fee, net, fee_currency, named_ids, record_ids,
        'the provider refunded more than the books know', 1
    FROM pg_state WHERE unknown_refund
    UNION ALL
    SELECT first_id, 5, 'unknown_dispute', order_id, status, 'disputed', amount, currency,
        amount, currency, NULL, fee, net, fee_currency, named_ids, record_ids,
        'a dispute the books do not know about', 1
    FROM pg_state WHERE unknown_dispute
    UNION ALL
    SELECT min(first_id), 9, 'matched', NULL, NULL, NULL, sum(amount), currency,
        NULL, NULL, NULL, NULL, NULL, NULL, '{}', '{}', '', count(*)
    FROM pg_state WHERE matched GROUP BY currency
) lines
ORDER BY place, rule
"""

#: the clean matches per currency (where the books first name it), the orders' other counts
_MATCHED_SQL = """
SELECT currency, count(*), sum(amount) FROM pg_j WHERE n = 1 AND fast
GROUP BY currency ORDER BY min(first_id)
"""
_COUNTS_SQL = """
SELECT
    (SELECT count(*) FROM pg_j WHERE n IS NULL AND recent
        AND (paid_like OR status = 'pending')),
    (SELECT count(*) FROM pg_j WHERE n IS NULL AND NOT paid_like
        AND NOT (recent AND status = 'pending')),
    (SELECT count(*) FROM pg_state WHERE in_progress),
    (SELECT count(*) FROM pg_state WHERE both_failed),
    (SELECT count(*) FROM pg_state WHERE not_charged)
"""

#: the records of no order held, in the order they were read
_ORPHANS_SQL = """
SELECT r.order_id, r.kind, r.status, r.amount, r.currency, r.fee, r.net, r.record_id,
    r.payment_id
FROM pg_rec r
WHERE r.kind <> 'other'
    AND (r.order_id IS NULL OR r.order_id IN (SELECT order_id FROM pg_orph))
ORDER BY r.seq
"""

#: fee and net totals per currency, and where each first had a non-zero one
_FEES_SQL = """
SELECT currency, sum(fee), sum(net), min(seq) FILTER (WHERE fee <> 0),
    min(seq) FILTER (WHERE net <> 0)
FROM pg_rec GROUP BY currency
"""

# -- the provider's records in ------------------------------------------------------------


def _copy_records(cur: Any, rows: Iterable[ProviderRow], progress: Progress | None) -> int:
    """COPY the rows into ``pg_rec``; how many were read."""
    try:
        return _copy_rows(cur, rows, progress)
    except OverflowError:  # psycopg's binary int8: an amount, fee or net past 2**63 - 1
        raise ValidationError(
            "a provider record's amount, fee or net does not fit in 64 bits of minor units: "
            "reconcile_in_postgres cannot copy it (reconcile() with orders_from_store can)"
        ) from None


def _copy_rows(cur: Any, rows: Iterable[ProviderRow], progress: Progress | None) -> int:
    count = 0
    with cur.copy(_COPY_RECORDS_SQL) as copy:
        copy.set_types(_COPY_TYPES)
        write = copy.write_row
        if progress is None:
            for count, row in enumerate(rows, 1):  # noqa: B007 - the count is the result
                write(row)
        else:
            for count, row in enumerate(rows, 1):
                write(row)
                if not count % _PROGRESS_ROWS:
                    progress("records", count)
    return count


def _connect(store: Any) -> Any:
    """A connection of the run's own, outside the store's pool: the run may take longer
    than the store's per-call bound (its watchdog), and its temporary tables die with it.
    Opened as the store's connections are (the same schema on the search path)."""
    import psycopg

    return psycopg.connect(store._conninfo, **store._connect_kwargs)


def _check_time(name: str, value: datetime | None) -> float | None:
    if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
        raise ValidationError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return timestamp_of(value)


def _int(value: Any) -> int:
    """A SQL sum (``numeric``: arrives as a ``Decimal``) as the int it is."""
    return int(value)


def reconcile_in_postgres(
    internal: Any,
    provider: Iterable[ProviderRecord] | Any,
    *,
    policy: Policy | None = None,
    now: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    run_id: str | None = None,
    provider_name: str | None = None,
    skip_bad_rows: bool = False,
    progress: Progress | None = None,
    apply: bool = False,
    gateway: Any = None,
    on_action: Callable[[ReconciliationLine], Any] | None = None,
) -> ReconciliationReport:
    """[`reconcile`][paygate.reconcile.reconcile] for a PostgreSQL store's orders, inside the
    database.

    ``internal`` is a [`PostgresStore`][paygate.stores.postgres.PostgresStore] or
    `orders_from_store` over one ([`pushes_down`][paygate.reconcile.pushes_down] says which
    sources qualify). The provider's records are copied into a temporary table and the
    classification runs as SQL next to the store's payments: no order row is read into
    Python, only the report's lines and totals come back. The options and the report are
    [`reconcile`][paygate.reconcile.reconcile]'s (``skip_bad_rows`` concerns the provider's
    reader: the store's orders have no bad rows).
    """
    del skip_bad_rows  # the readers take it; the store's side has no rows to skip
    store = _postgres_store(internal)
    if store is None:
        raise ValidationError(
            "reconcile_in_postgres needs a PostgresStore or orders_from_store(PostgresStore), "
            f"got {type(internal).__name__}"
        )
    policy = policy or Policy()
    if not isinstance(policy, Policy):
        raise ValidationError(f"policy must be a reconcile.Policy, got {type(policy).__name__}")
    now_ts = _check_time("now", now)
    since_ts = _check_time("since", since)
    until_ts = _check_time("until", until)
    if apply and (gateway is None or not run_id):
        raise ValidationError(
            "apply=True needs gateway= (a paygate.Gateway) and run_id= (stable across "
            "re-runs, so a re-run reuses the same refund idempotency keys)"
        )
    name = provider_name or getattr(provider, "provider", None) or "provider"
    report = ReconciliationReport(provider=str(name), run_id=run_id or "", now=now, policy=policy)
    windowed = since_ts is not None or until_ts is not None
    recent_after = now_ts - policy.grace.total_seconds() if now_ts is not None else None
    params = {
        "want_time": windowed or recent_after is not None,
        "lo": since_ts if since_ts is not None else float("-inf"),
        "hi": until_ts if until_ts is not None else float("inf"),
        "recent_after": recent_after,
    }
    with _connect(store) as conn, conn.transaction(), conn.cursor() as cur:
        # the run is one statement after another in one transaction: the store's
        # per-statement bound is for the webhook path, not a million-order join
        cur.execute("SET LOCAL statement_timeout = 0")
        cur.execute(f"SET LOCAL work_mem = {_sql_text(WORK_MEM)}")
        # the big tables are not analyzed (it costs as much as a join): without their
        # statistics the planner would sort both sides for merge joins; hash joins are right
        # for every join here (one side, or both, in memory)
        cur.execute("SET LOCAL enable_mergejoin = off")
        cur.execute(_CREATE_RECORDS_SQL)
        report.records_read = _copy_records(cur, _rows_of_records(provider, windowed), progress)
        if progress is not None:
            progress("records", report.records_read)
        cur.execute(_HELD_SQL, params)
        report.orders_read = cur.rowcount
        if progress is not None:
            progress("orders", report.orders_read)
        if windowed:
            for statement in _WINDOW_SQL:
                cur.execute(statement, params)
        cur.execute(_PER_SQL)
        cur.execute(_JOIN_SQL, params)
        for statement in _FEW_SQL:
            cur.execute(statement)
        cur.execute(_STATE_SQL)
        cur.execute(_MATCHED_SQL)
        fast = cur.fetchall()
        cur.execute(_LINES_SQL)
        lines = cur.fetchall()
        cur.execute(_COUNTS_SQL)
        quiet = cur.fetchone()
        cur.execute(_ORPHANS_SQL)
        orphans = cur.fetchall()
        cur.execute(_FEES_SQL)
        fees = cur.fetchall()
    report.bad_rows.extend(getattr(internal, "bad_rows", ()))
    report.bad_rows.extend(getattr(provider, "bad_rows", ()))
    _fill(report, policy, fast, lines, quiet, orphans, fees)
    if apply:
        from paygate.reconcile._apply import apply_actions

        apply_actions(report, gateway, run_id=str(run_id), on_action=on_action)
    return report


def _fill(
    report: ReconciliationReport,
    policy: Policy,
    fast: list[Any],
    lines: list[Any],
    quiet: Any,
    orphans: list[Any],
    fees: list[Any],
) -> None:
    """The report from what the SQL returned, in the order the embedded engine fills it
    (counts in the order of `Case`, totals in the order each case and currency first
    occurs, lines in the books' order, then the orphans in the records' order)."""
    counts: dict[Case, int] = dict.fromkeys(Case, 0)
    totals: dict[Case, dict[str, int]] = {}

    def total(case: Case, currency: str, amount: int) -> None:
        by_cur = totals.setdefault(case, {})
        by_cur[currency] = by_cur.get(currency, 0) + amount

    for currency, n, amount in fast:
        counts[Case.MATCHED] += n
        total(Case.MATCHED, currency, _int(amount))
    actions = {
        Case.MISSING: _ACTION_FOR[policy.paid_without_payment],
        Case.PAYMENT_FAILED: _ACTION_FOR[policy.paid_without_payment],
        Case.UNPAID_ORDER_CHARGED: _ACTION_FOR[policy.unpaid_order_charged],
        Case.DOUBLE_CHARGE: _ACTION_FOR[policy.double_charge],
        Case.CURRENCY_MISMATCH: Action.INVESTIGATE,
        Case.AMOUNT_MISMATCH: Action.INVESTIGATE,
        Case.UNKNOWN_REFUND: Action.RECORD,
        Case.UNKNOWN_DISPUTE: Action.RECORD,
    }
    out = report.lines
    for row in lines:
        (_, _, case_name, order_id, status, provider_status, amount, currency, provider_amount,
         provider_currency, difference, fee, net, fee_currency, payment_ids, record_ids, note,
         n) = row  # fmt: skip
        case = Case(case_name)
        if case is Case.MATCHED:
            counts[case] += n
            total(case, currency, _int(amount))
            continue
        internal = Money(_int(amount), currency)
        shown = (
            Money(_int(provider_amount), provider_currency) if provider_amount is not None else None
        )
        line = ReconciliationLine(
            case,
            order_id,
            actions[case],
            internal_status=OrderStatus(status),
            provider_status=provider_status,
            internal_amount=internal,
            provider_amount=shown,
            difference=None if difference is None else Money(_int(difference), currency),
            fee=Money(_int(fee), fee_currency) if fee and fee_currency else None,
            net=Money(_int(net), fee_currency) if net and fee_currency else None,
            payment_ids=tuple(payment_ids),
            record_ids=tuple(record_ids),
            note=note,
        )
        counts[case] += 1
        money = line.amount
        if money is not None:
            total(case, money.currency, money.amount)
        out.append(line)
    for order_id, kind, status, amount, currency, fee, net, record_id, payment_id in orphans:
        line = ReconciliationLine(
            Case.ORPHAN,
            order_id,
            Action.INVESTIGATE,
            provider_status=f"{RecordKind(kind)} {RecordStatus(status)}",
            provider_amount=Money(amount, currency),
            fee=Money(fee, currency) if fee else None,
            net=Money(net, currency) if net else None,
            payment_ids=(payment_id,) if payment_id else (),
            record_ids=(record_id,),
            note="no order with this id in the books"
            if order_id
            else "the record carries no order id",
        )
        counts[Case.ORPHAN] += 1
        total(Case.ORPHAN, currency, amount)
        out.append(line)
    awaiting, not_charged, in_progress, both_failed, late_not_charged = quiet
    counts[Case.AWAITING] += awaiting
    counts[Case.NOT_CHARGED] += not_charged + late_not_charged
    counts[Case.IN_PROGRESS] += in_progress
    counts[Case.BOTH_FAILED] += both_failed
    report.counts = {case: n for case, n in counts.items() if n}
    report.totals = {
        case: {cur: Money(v, cur) for cur, v in by_cur.items()}
        for case, by_cur in totals.items()
        if counts[case]
    }
    fee_first = sorted((first, cur, v) for cur, v, _, first, _ in fees if first is not None)
    net_first = sorted((first, cur, v) for cur, _, v, _, first in fees if first is not None)
    report.fees = {cur: Money(_int(v), cur) for _, cur, v in fee_first if v}
    report.net = {cur: Money(_int(v), cur) for _, cur, v in net_first if v}
