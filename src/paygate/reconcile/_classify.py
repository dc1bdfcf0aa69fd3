"""The per-order rules as SQL, one text for PostgreSQL and DuckDB, and the report from it.

Both engines bring the same tables (``reconcile_in_postgres`` next to the store's payments,
the DuckDB engine for the orders that are more than a clean match):

- ``pg_rec``: the records read (``seq``: their place in the provider's report), at least
  those of the orders below and those of no order;
- ``pg_j``: the orders, with how many records (``kind`` not ``other``) name each (``n``),
  the first of them (``first_seq``) and whether it is a clean match (``fast``: a successful
  payment of exactly the amount and currency of an order the books call ``paid``); rows
  without ``first_id`` (the order's place in the books) are ids of no order held.

Then ``STATE_SQL`` gathers, per order with more than one clean match, what its records say
(payments, failures, refunds, disputes, ids, fees) and decides its case, and ``LINES_SQL``
writes its lines. The first record, when it was the clean match, is left out of the ids and
fees: it was "matched before more was known", and its payment (amount, currency, no id)
leads the payments instead.

Only portable SQL is used (lists built with ``ARRAY[...]``, ``unnest ... WITH ORDINALITY``,
text joined with ``||``); the two dialects differ only in how a temporary table is made
(``temp``: ``ON COMMIT DROP`` in PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from paygate.errors import ValidationError
from paygate.money import Money
from paygate.reconcile._common import timestamp_of
from paygate.reconcile._model import (
    PAID_LIKE,
    Action,
    Case,
    OrderRecord,
    OrderStatus,
    Policy,
    ReconciliationLine,
    ReconciliationReport,
    _check_aware,
)


def sql_text(value: str) -> str:
    """``value`` as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


PAID_LIKE_SQL = "(" + ", ".join(sql_text(str(s)) for s in sorted(PAID_LIKE)) + ")"

# -- the SQL ----------------------------------------------------------------------------------

#: the few: the orders held with more than one clean match, and the ids of no order held
FEW_SQL = (
    "CREATE TEMP TABLE pg_prom {temp} AS SELECT * FROM pg_j"
    " WHERE first_id IS NOT NULL AND n IS NOT NULL AND NOT (n = 1 AND fast)",
    "CREATE TEMP TABLE pg_orph {temp} AS SELECT order_id FROM pg_j WHERE first_id IS NULL",
)

#: the orders with more than one clean match, and what their records say
STATE_SQL = """
CREATE TEMP TABLE pg_state {temp} AS
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
        CASE WHEN j.fast THEN ARRAY[j.amount] ELSE ARRAY[]::bigint[] END
            || coalesce(a.pa, ARRAY[]::bigint[]) AS pa,
        CASE WHEN j.fast THEN ARRAY[j.currency] ELSE ARRAY[]::text[] END
            || coalesce(a.pc, ARRAY[]::text[]) AS pc,
        CASE WHEN j.fast THEN ARRAY[NULL::text] ELSE ARRAY[]::text[] END
            || coalesce(a.pp, ARRAY[]::text[]) AS pp,
        a.pending, a.failed, a.reversed, a.refunded, a.disputes,
        coalesce(rel.related, ARRAY[]::text[]) AS related
    FROM pg_prom j JOIN agg a ON a.order_id = j.order_id
    LEFT JOIN rel ON rel.order_id = j.order_id
), d AS MATERIALIZED (
    SELECT c.*, coalesce(array_length(pa, 1), 0) AS npay,  -- cardinality(): DuckDB >= 2 only
        (SELECT coalesce(sum(x), 0) FROM unnest(pa) AS u(x)) AS psum,
        (SELECT min(i) FROM unnest(pc) WITH ORDINALITY u(x, i) WHERE x <> c.currency)
            AS foreign_at,
        coalesce(array_position(pa, c.amount), 1) AS exact,
        ARRAY(SELECT p FROM unnest(pp) WITH ORDINALITY u(p, i) WHERE p IS NOT NULL ORDER BY i)
            AS payment_ids
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
LINES_SQL = """
SELECT * FROM (
    SELECT first_id AS place, 0 AS rule, 'missing' AS "case", order_id, status,
        NULL::text AS provider_status, amount, currency,
        NULL::bigint AS provider_amount, NULL::text AS provider_currency,
        NULL::bigint AS difference, NULL::bigint AS fee, NULL::bigint AS net,
        NULL::text AS fee_currency, ARRAY[]::text[] AS payment_ids,
        ARRAY[]::text[] AS record_ids,
        'the order is paid but the provider has no record of it' AS note, 1::bigint AS n
    FROM pg_j WHERE n IS NULL AND paid_like AND NOT recent
    UNION ALL
    SELECT first_id, 1, 'payment_failed', order_id, status, 'failed', amount, currency,
        NULL, NULL, NULL, fee, net, fee_currency, ARRAY[]::text[], record_ids,
        CAST(failed_total AS text) || ' payment attempt(s) failed, none succeeded', 1
    FROM pg_state WHERE payment_failed
    UNION ALL
    SELECT first_id, 1, 'unpaid_order_charged', order_id, status, 'succeeded', amount,
        currency,
        (SELECT sum(a) FROM unnest(pa) WITH ORDINALITY u(a, i) WHERE pc[i] = pc[1]) - reversed,
        pc[1], NULL, fee, net, fee_currency, payment_ids, record_ids,
        'the order is ' || status || ' but ' || CAST(npay AS text) || ' payment(s) succeeded', 1
    FROM pg_state WHERE unpaid_charged
    UNION ALL
    SELECT first_id, 1, 'currency_mismatch', order_id, status, 'succeeded', amount, currency,
        pa[foreign_at], pc[foreign_at], NULL, fee, net, fee_currency,
        CASE WHEN pp[foreign_at] IS NOT NULL AND pp[foreign_at] <> ''
            THEN ARRAY[pp[foreign_at]] ELSE ARRAY[]::text[] END,
        record_ids, 'the order is in ' || currency || ', the payment in ' || pc[foreign_at], 1
    FROM pg_state WHERE currency_mismatch
    UNION ALL
    SELECT first_id, 2, 'double_charge', order_id, status, 'succeeded', amount, currency,
        psum - pa[exact], currency, NULL, fee, net, fee_currency,
        ARRAY(SELECT p FROM unnest(pp) WITH ORDINALITY u(p, i)
            WHERE i <> exact AND p <> '' ORDER BY i),
        record_ids, CAST(npay AS text) || ' successful payments for one order', 1
    FROM pg_state WHERE double_charge
    UNION ALL
    SELECT first_id, 3, 'amount_mismatch', order_id, status, 'succeeded', amount, currency,
        kept, currency, kept - amount, fee, net, fee_currency,
        CASE WHEN pp[exact] IS NOT NULL AND pp[exact] <> '' THEN ARRAY[pp[exact]]
            ELSE ARRAY[]::text[] END,
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
        NULL, NULL, NULL, NULL, NULL, NULL, ARRAY[]::text[], ARRAY[]::text[], '', count(*)
    FROM pg_state WHERE matched GROUP BY currency
) lines
ORDER BY place, rule
"""

#: the orders' counts that have no line: awaiting, not charged, in progress, both failed
COUNTS_SQL = """
SELECT
    (SELECT count(*) FROM pg_j WHERE n IS NULL AND recent
        AND (paid_like OR status = 'pending')),
    (SELECT count(*) FROM pg_j WHERE first_id IS NOT NULL AND n IS NULL AND NOT paid_like
        AND NOT (recent AND status = 'pending'))
        + (SELECT count(*) FROM pg_state WHERE not_charged),
    (SELECT count(*) FROM pg_state WHERE in_progress),
    (SELECT count(*) FROM pg_state WHERE both_failed)
"""

#: the records of no order held, in the order they were read
ORPHANS_SQL = """
SELECT r.order_id, r.kind, r.status, r.amount, r.currency, r.fee, r.net, r.record_id,
    r.payment_id
FROM pg_rec r
WHERE r.kind <> 'other'
    AND (r.order_id IS NULL OR r.order_id IN (SELECT order_id FROM pg_orph))
ORDER BY r.seq
"""


def classify(cur: Any, *, postgres: bool) -> tuple[list[Any], Any, list[Any]]:
    """Run the rules over ``pg_j`` and ``pg_rec`` on ``cur``: the lines, the counts without
    a line and the orphans' records (see `fill`)."""
    temp = "ON COMMIT DROP" if postgres else ""
    for statement in FEW_SQL:
        cur.execute(statement.format(temp=temp))
    if postgres:  # small tables: analyzed, their joins with ``pg_rec`` hash them, not it
        cur.execute("ANALYZE pg_prom; ANALYZE pg_orph")
    cur.execute(STATE_SQL.format(temp=temp))
    lines = cur.execute(LINES_SQL).fetchall()
    quiet = cur.execute(COUNTS_SQL).fetchone()
    orphans = cur.execute(ORPHANS_SQL).fetchall()
    return lines, quiet, orphans


# -- the report -------------------------------------------------------------------------------


def fill(
    report: ReconciliationReport,
    fast: Iterable[Any],
    lines: list[Any],
    quiet: Any,
    orphans: list[Any],
    fees: Iterable[Any],
) -> None:
    """The report from what the SQL returned: ``fast`` the clean matches per currency
    (currency, count, sum) where the books first name them, ``lines``/``quiet``/``orphans``
    from `classify`, ``fees`` per currency (currency, fee, net, first seq with a fee, first
    seq with a net). Counts come in the order of `Case`, totals in the order each case and
    currency first occurs, lines in the books' order, then the orphans in the records'."""
    policy = report.policy
    actions = {
        Case.MISSING: Action(policy.paid_without_payment),
        Case.PAYMENT_FAILED: Action(policy.paid_without_payment),
        Case.UNPAID_ORDER_CHARGED: Action(policy.unpaid_order_charged),
        Case.DOUBLE_CHARGE: Action(policy.double_charge),
        Case.CURRENCY_MISMATCH: Action.INVESTIGATE,
        Case.AMOUNT_MISMATCH: Action.INVESTIGATE,
        Case.UNKNOWN_REFUND: Action.RECORD,
        Case.UNKNOWN_DISPUTE: Action.RECORD,
    }
    counts: dict[Case, int] = dict.fromkeys(Case, 0)
    totals: dict[Case, dict[str, int]] = {}

    def count(case: Case, n: int, currency: str, amount: int) -> None:
        counts[case] += n
        by_cur = totals.setdefault(case, {})
        by_cur[currency] = by_cur.get(currency, 0) + int(amount)

    def add(line: ReconciliationLine) -> None:
        assert line.amount is not None  # an order's lines have its amount, an orphan's its own
        count(line.case, 1, line.amount.currency, line.amount.amount)
        report.lines.append(line)

    for currency, n, amount in fast:
        count(Case.MATCHED, n, currency, amount)
    for row in lines:
        (_, _, case_name, order_id, status, provider_status, amount, currency, provider_amount,
         provider_currency, difference, fee, net, fee_currency, payment_ids, record_ids, note,
         n) = row  # fmt: skip
        case = Case(case_name)
        if case is Case.MATCHED:
            count(case, n, currency, amount)
            continue
        shown = None if provider_amount is None else Money(int(provider_amount), provider_currency)
        add(
            ReconciliationLine(
                case,
                order_id,
                actions[case],
                internal_status=OrderStatus(status),
                provider_status=provider_status,
                internal_amount=Money(int(amount), currency),
                provider_amount=shown,
                difference=None if difference is None else Money(int(difference), currency),
                fee=Money(int(fee), fee_currency) if fee and fee_currency else None,
                net=Money(int(net), fee_currency) if net and fee_currency else None,
                payment_ids=tuple(payment_ids),
                record_ids=tuple(record_ids),
                note=note,
            )
        )
    for order_id, kind, status, amount, currency, fee, net, record_id, payment_id in orphans:
        add(
            ReconciliationLine(
                Case.ORPHAN,
                order_id,
                Action.INVESTIGATE,
                provider_status=f"{kind} {status}",
                provider_amount=Money(amount, currency),
                fee=Money(fee, currency) if fee else None,
                net=Money(net, currency) if net else None,
                payment_ids=(payment_id,) if payment_id else (),
                record_ids=(record_id,),
                note="no order with this id in the books"
                if order_id
                else "the record carries no order id",
            )
        )
    for case, n in zip(
        (Case.AWAITING, Case.NOT_CHARGED, Case.IN_PROGRESS, Case.BOTH_FAILED), quiet, strict=True
    ):
        counts[case] += n
    report.counts = {case: n for case, n in counts.items() if n}
    report.totals = {
        case: {cur: Money(v, cur) for cur, v in by_cur.items()}
        for case, by_cur in totals.items()
        if counts[case]
    }
    fee_first = sorted((first, cur, v) for cur, v, _, first, _ in fees if first is not None)
    net_first = sorted((first, cur, v) for cur, _, v, _, first in fees if first is not None)
    report.fees = {cur: Money(int(v), cur) for _, cur, v in fee_first if v}
    report.net = {cur: Money(int(v), cur) for _, cur, v in net_first if v}


# -- what both engines do first and last ------------------------------------------------------


#: a run's bounds in Unix seconds: (windowed, lo, hi, recent_after): records and orders
#: dated in ``[lo, hi)`` are kept when ``windowed``; orders created after ``recent_after``
#: are within the grace window
Window = tuple[bool, float, float, float | None]


def begin(
    provider: Any,
    policy: Policy | None,
    now: datetime | None,
    since: datetime | None,
    until: datetime | None,
    run_id: str | None,
    provider_name: str | None,
    apply: bool,
    gateway: Any,
) -> tuple[ReconciliationReport, Window]:
    """The engines' arguments checked, the report to fill and the run's window."""
    policy = policy or Policy()
    if not isinstance(policy, Policy):
        raise ValidationError(f"policy must be a reconcile.Policy, got {type(policy).__name__}")
    for what, moment in (("now", now), ("since", since), ("until", until)):
        _check_aware(moment, what)
    if apply and (gateway is None or not run_id):
        raise ValidationError(
            "apply=True needs gateway= (a paygate.Gateway) and run_id= (stable across "
            "re-runs, so a re-run reuses the same refund idempotency keys)"
        )
    name = provider_name or getattr(provider, "provider", None) or "provider"
    report = ReconciliationReport(provider=str(name), run_id=run_id or "", now=now, policy=policy)
    now_ts, since_ts, until_ts = timestamp_of(now), timestamp_of(since), timestamp_of(until)
    return report, (
        since_ts is not None or until_ts is not None,
        since_ts if since_ts is not None else float("-inf"),
        until_ts if until_ts is not None else float("inf"),
        now_ts - policy.grace.total_seconds() if now_ts is not None else None,
    )


def end(
    report: ReconciliationReport,
    gateway: Any,
    run_id: str | None,
    on_action: Callable[[ReconciliationLine], Any] | None,
) -> ReconciliationReport:
    """``report``, its actions carried out through ``gateway`` when one is given (``apply``)."""
    if gateway is not None:
        from paygate.reconcile._apply import apply_actions

        apply_actions(report, gateway, run_id=str(run_id), on_action=on_action)
    return report


# -- the two sides as rows --------------------------------------------------------------------


def rows_of(side: Any, with_time: bool, record_type: type[Any]) -> Iterator[tuple[Any, ...]]:
    """The compact rows of one side (`InternalRow`, `ProviderRow`): the reader's own, or
    made from its records (``record_type``: `OrderRecord` or `ProviderRecord`)."""
    compact = getattr(side, "iter_compact", None)
    if compact is not None:
        rows: Iterator[tuple[Any, ...]] = compact(with_time=with_time)
        return rows
    return (_compact(record, record_type) for record in side)


def _compact(record: Any, record_type: type[Any]) -> tuple[Any, ...]:
    if not isinstance(record, record_type):
        side = "internal" if record_type is OrderRecord else "provider"
        raise ValidationError(
            f"the {side} side must yield {record_type.__name__}, got {type(record).__name__}"
        )
    if isinstance(record, OrderRecord):
        return (
            record.order_id,
            record.amount.amount,
            record.amount.currency,
            record.status,
            timestamp_of(record.created_at),
            record.refunded.amount if record.refunded is not None else None,
        )
    fee, net = (0 if money is None else money.amount for money in (record.fee, record.net))
    return (
        record.order_id,
        record.kind,
        record.status,
        record.amount.amount,
        record.amount.currency,
        fee,
        net,
        record.record_id,
        record.payment_id,
        timestamp_of(record.occurred_at),
    )
