"""Property: orders and provider records built with known discrepancies, in any order, are
classified exactly - from records in memory and from CSV files read by DuckDB."""

from __future__ import annotations

import random
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from paygate import Money
from paygate.reconcile import (
    Case,
    OrderRecord,
    OrdersCSV,
    ProviderRecord,
    StripeReportCSV,
    reconcile,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=3)
RECENT = NOW - timedelta(hours=1)

#: scenario -> the case it must produce (None: an orphan record, no order)
SCENARIOS: dict[str, Case] = {
    "matched": Case.MATCHED,
    "unpaid_order_charged": Case.UNPAID_ORDER_CHARGED,
    "both_failed": Case.BOTH_FAILED,
    "payment_failed": Case.PAYMENT_FAILED,
    "missing": Case.MISSING,
    "awaiting": Case.AWAITING,
    "not_charged": Case.NOT_CHARGED,
    "in_progress": Case.IN_PROGRESS,
    "amount_mismatch": Case.AMOUNT_MISMATCH,
    "currency_mismatch": Case.CURRENCY_MISMATCH,
    "double_charge": Case.DOUBLE_CHARGE,
    "unknown_refund": Case.UNKNOWN_REFUND,
    "unknown_dispute": Case.UNKNOWN_DISPUTE,
    "orphan": Case.ORPHAN,
}
#: what a Stripe balance report can show (it lists only money that moved)
STRIPE_SCENARIOS = [
    "matched", "unpaid_order_charged", "missing", "not_charged", "amount_mismatch",
    "currency_mismatch", "double_charge", "unknown_refund", "unknown_dispute", "orphan",
]  # fmt: skip

Plan = list[tuple[str, int]]  # (scenario, amount in cents)


def build(plan: Plan, seed: int):  # type: ignore[no-untyped-def]
    orders: list[OrderRecord] = []
    # (order id, kind, status, cents, currency, payment id)
    records: list[tuple[str, str, str, int, str, str]] = []
    for n, (scenario, cents) in enumerate(plan):
        oid = f"o{n}"

        def pay(kind: str = "payment", status: str = "succeeded", amount: int = cents,
                currency: str = "USD", suffix: str = "", oid: str = oid, n: int = n) -> None:  # fmt: skip
            records.append((oid, kind, status, amount, currency, f"pi_{n}{suffix}"))

        status, created = "paid", OLD
        if scenario == "matched":
            pay()
        elif scenario == "unpaid_order_charged":
            status = random.Random(n).choice(["pending", "failed", "canceled"])
            pay()
        elif scenario == "both_failed":
            status = "failed"
            pay(status="failed")
        elif scenario == "payment_failed":
            pay(status="failed")
            pay(status="failed", suffix="b")
        elif scenario == "missing":
            pass
        elif scenario == "awaiting":
            created = RECENT
        elif scenario == "not_charged":
            status = "canceled"
        elif scenario == "in_progress":
            status = "pending"
            pay(status="pending")
        elif scenario == "amount_mismatch":
            pay(amount=cents + 1)
        elif scenario == "currency_mismatch":
            pay(currency="EUR")
        elif scenario == "double_charge":
            pay()
            pay(suffix="b")
        elif scenario == "unknown_refund":
            pay()
            pay(kind="refund", amount=max(1, cents // 2))
        elif scenario == "unknown_dispute":
            pay()
            pay(kind="dispute")
        elif scenario == "orphan":
            records.append((f"ghost{n}", "payment", "succeeded", cents, "USD", f"pi_g{n}"))
            continue
        orders.append(OrderRecord(oid, Money(cents, "USD"), status, created_at=created))
    random.Random(seed).shuffle(records)
    return orders, records


def expected(plan: Plan) -> tuple[dict[Case, int], dict[Case, set[str]]]:
    counts: dict[Case, int] = {}
    ids: dict[Case, set[str]] = {}
    for n, (scenario, _) in enumerate(plan):
        case = SCENARIOS[scenario]
        counts[case] = counts.get(case, 0) + 1
        ids.setdefault(case, set()).add(f"ghost{n}" if case is Case.ORPHAN else f"o{n}")
    return counts, ids


def line_ids(report) -> dict[Case, set[str]]:  # type: ignore[no-untyped-def]
    found: dict[Case, set[str]] = {}
    for line in report.lines:
        found.setdefault(line.case, set()).add(line.order_id)
    return found


def check(report, plan: Plan) -> None:  # type: ignore[no-untyped-def]
    counts, ids = expected(plan)
    assert report.counts == counts
    found = line_ids(report)
    for case, order_ids in ids.items():
        if case in found or case not in (
            Case.MATCHED, Case.BOTH_FAILED, Case.AWAITING, Case.NOT_CHARGED, Case.IN_PROGRESS
        ):  # fmt: skip
            assert found[case] == order_ids, case
    assert set(found) <= set(ids)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(sorted(SCENARIOS)), st.integers(2, 10**7)), max_size=40),
    st.integers(0, 2**32),
)
def test_known_discrepancies_are_classified_exactly(plan: Plan, seed: int) -> None:
    orders, rows = build(plan, seed)
    records = [
        ProviderRecord("test", f"r{i}", kind, status, oid, Money(cents, cur), payment_id=pid)  # type: ignore[arg-type]
        for i, (oid, kind, status, cents, cur, pid) in enumerate(rows)
    ]
    report = reconcile(orders, records, now=NOW)
    check(report, plan)
    assert report.agrees == all(
        SCENARIOS[s] in (Case.MATCHED, Case.BOTH_FAILED, Case.AWAITING, Case.NOT_CHARGED,
                         Case.IN_PROGRESS)
        for s, _ in plan
    )  # fmt: skip


def _major(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(STRIPE_SCENARIOS), st.integers(2, 10**6)), max_size=600),
    st.integers(0, 2**32),
)
def test_the_same_through_csv_files(plan: Plan, seed: int) -> None:
    orders, rows = build(plan, seed)
    categories = {"payment": "charge", "refund": "refund", "dispute": "dispute"}
    with tempfile.TemporaryDirectory() as tmp:
        orders_csv = Path(tmp) / "orders.csv"
        report_csv = Path(tmp) / "report.csv"
        orders_csv.write_text(
            "order_id,amount,currency,status,created_at\n"
            + "".join(
                f"{o.order_id},{_major(o.amount.amount)},USD,{o.status},"
                f"{o.created_at.isoformat() if o.created_at else ''}\n"
                for o in orders
            )
        )
        report_csv.write_text(
            "balance_transaction_id,currency,gross,fee,net,reporting_category,"
            "payment_intent_id,payment_metadata[order_id]\n"
            + "".join(
                f"txn_{i},{cur.lower()},{_major(g)},0.00,{_major(g)},{categories[kind]},{pid},{oid}\n"
                for i, (oid, kind, _, cents, cur, pid) in enumerate(rows)
                for g in [cents if kind == "payment" else -cents]
            )
        )
        report = reconcile(OrdersCSV(orders_csv), StripeReportCSV(report_csv), now=NOW)
    check(report, plan)
