"""Reconciliation inside PostgreSQL, for a [`PostgresStore`][paygate.stores.postgres.PostgresStore].

The provider's records are copied into a temporary table and the classification runs as
SQL next to the store's ``paygate_payments`` rows, in one transaction on a connection of
its own; only the report's lines and figures come back. The steps, and why, are
docs/reconciliation.md ("A PostgreSQL store"); the per-order rules are the DuckDB engine's
(`_classify`), and tests/test_reconcile_postgres.py runs both on the same data.
"""

from __future__ import annotations

# ruff: noqa: S608 - the SQL is built from this module's constants only, values are parameters
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from paygate.errors import ValidationError
from paygate.reconcile._classify import PAID_LIKE_SQL, begin, classify, end, fill, rows_of, sql_text
from paygate.reconcile._common import ProviderRow
from paygate.reconcile._model import (
    OrderStatus,
    Policy,
    ProviderRecord,
    ReconciliationLine,
    ReconciliationReport,
)
from paygate.reconcile._store import _RANK, PAYMENT_TO_ORDER, StoreOrders

__all__ = ["pushes_down", "reconcile_in_postgres"]

Progress = Callable[[str, int], None]

_PROGRESS_ROWS = 1 << 16

#: the run's ``work_mem`` (per sort or hash, server side): PostgreSQL's default (4MB) sends
#: the joins and sorts of a few hundred thousand orders to disk in batches
WORK_MEM = "64MB"


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


def _by_status(value: Callable[[OrderStatus], str]) -> str:
    """A ``CASE`` over paygate's payment status: ``value`` of the order's status for it."""
    whens = (f"WHEN {sql_text(str(p))} THEN {value(o)}" for p, o in PAYMENT_TO_ORDER.items())
    return f"CASE status {' '.join(whens)} END"


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
            {_by_status(lambda o: sql_text(str(o)))} AS ostatus,
            {_by_status(lambda o: str(_RANK[o]))} AS rk
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
    h.status, h.refunded, h.status IN {PAID_LIKE_SQL} AS paid_like,
    coalesce(%(recent_after)s::float8 IS NOT NULL AND h.created > %(recent_after)s::float8,
        false) AS recent,
    p.n, p.first_seq,
    coalesce(h.status = 'paid' AND r.kind = 'payment' AND r.status = 'succeeded'
        AND r.amount = h.amount AND r.currency = h.currency, false) AS fast
FROM pg_held h
FULL JOIN pg_per p ON p.order_id = h.order_id
LEFT JOIN pg_rec r ON r.seq = p.first_seq
"""

#: the clean matches per currency (where the books first name it), the orders' other counts
_MATCHED_SQL = """
SELECT currency, count(*), sum(amount) FROM pg_j WHERE n = 1 AND fast
GROUP BY currency ORDER BY min(first_id)
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
    count = 0
    try:
        with cur.copy(_COPY_RECORDS_SQL) as copy:
            copy.set_types(_COPY_TYPES)
            write = copy.write_row
            if progress is None:  # the loop without a check a row
                for count, row in enumerate(rows, 1):  # noqa: B007 - the count is the result
                    write(row)
            else:
                for count, row in enumerate(rows, 1):
                    write(row)
                    if not count % _PROGRESS_ROWS:
                        progress("records", count)
    except OverflowError:  # psycopg's binary int8: an amount, fee or net past 2**63 - 1
        raise ValidationError(
            "a provider record's amount, fee or net does not fit in 64 bits of minor units: "
            "reconcile_in_postgres cannot copy it (reconcile() with orders_from_store can)"
        ) from None
    return count


def _connect(store: Any) -> Any:
    """A connection of the run's own, outside the store's pool: the run may take longer
    than the store's per-call bound (its watchdog), and its temporary tables die with it.
    Opened as the store's connections are (the same schema on the search path)."""
    import psycopg

    return psycopg.connect(store._conninfo, **store._connect_kwargs)


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
    report, (windowed, lo, hi, recent_after) = begin(
        provider, policy, now, since, until, run_id, provider_name, apply, gateway
    )
    want_time = windowed or recent_after is not None
    params = {"want_time": want_time, "lo": lo, "hi": hi, "recent_after": recent_after}
    with _connect(store) as conn, conn.transaction(), conn.cursor() as cur:
        # the run is one statement after another in one transaction: the store's
        # per-statement bound is for the webhook path, not a million-order join
        cur.execute("SET LOCAL statement_timeout = 0")
        cur.execute(f"SET LOCAL work_mem = {sql_text(WORK_MEM)}")
        # the big tables are not analyzed (it costs as much as a join): without their
        # statistics the planner would sort both sides for merge joins; hash joins are right
        # for every join here (one side, or both, in memory)
        cur.execute("SET LOCAL enable_mergejoin = off")
        cur.execute(_CREATE_RECORDS_SQL)
        report.records_read = _copy_records(
            cur, rows_of(provider, windowed, ProviderRecord), progress
        )
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
        cur.execute(_MATCHED_SQL)
        fast = cur.fetchall()
        lines, quiet, orphans = classify(cur, postgres=True)
        cur.execute(_FEES_SQL)
        fees = cur.fetchall()
    report.bad_rows.extend(getattr(internal, "bad_rows", ()))
    report.bad_rows.extend(getattr(provider, "bad_rows", ()))
    fill(report, fast, lines, quiet, orphans, fees)
    return end(report, gateway if apply else None, run_id, on_action)
