"""The reconciliation engine: every case, the policy, the grace window, totals, errors."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

import pytest

import paygate
from paygate import Money, ValidationError
from paygate.reconcile import (
    DISCREPANCIES,
    Action,
    Case,
    OrderRecord,
    OrdersCSV,
    Policy,
    ProviderRecord,
    ReportFormatError,
    StripeReportCSV,
    reconcile,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
OLD = NOW - timedelta(days=3)


def order(
    order_id: str,
    amount: str = "10.00",
    status: str = "paid",
    currency: str = "USD",
    created_at: datetime | None = OLD,
    refunded: str | None = None,
) -> OrderRecord:
    return OrderRecord(
        order_id,
        Money.of(amount, currency),
        status,
        created_at=created_at,
        refunded=Money.of(refunded, currency) if refunded else None,
    )


_counter = iter(range(10**6))


def record(
    order_id: str | None,
    amount: str = "10.00",
    kind: str = "payment",
    status: str = "succeeded",
    currency: str = "USD",
    fee: str = "0",
    payment_id: str | None = None,
    at: datetime | None = None,
) -> ProviderRecord:
    n = next(_counter)
    gross = Money.of(amount, currency)
    fee_money = Money.of(fee, currency)
    sign = -1 if kind in ("refund", "dispute", "payment_reversal") else 1
    return ProviderRecord(
        "test",
        f"rec_{n}",
        kind,  # type: ignore[arg-type]
        status,  # type: ignore[arg-type]
        order_id,
        gross,
        fee=fee_money,
        net=gross * sign - fee_money,
        payment_id=payment_id or f"pay_{n}",
        occurred_at=at,
    )


def only_line(report, case: Case):
    lines = report.lines_for(case)
    assert len(lines) == 1, report.lines
    return lines[0]


# -- the seed's four cases -------------------------------------------------------------


def test_both_succeeded_is_matched_and_the_books_agree() -> None:
    report = reconcile([order("o1")], [record("o1")], now=NOW)
    assert report.counts == {Case.MATCHED: 1}
    assert report.totals[Case.MATCHED] == {"USD": Money(1000, "USD")}
    assert report.lines == []
    assert report.agrees and report.discrepancies == 0


@pytest.mark.parametrize("status", ["pending", "failed", "canceled"])
def test_unpaid_order_with_a_successful_payment_proposes_the_policy_action(status: str) -> None:
    payment = record("o1", payment_id="pi_1")
    report = reconcile([order("o1", status=status)], [payment], now=NOW)
    line = only_line(report, Case.UNPAID_ORDER_CHARGED)
    assert line.action is Action.REFUND  # the default policy
    assert line.payment_ids == ("pi_1",)
    assert line.provider_amount == Money(1000, "USD")
    assert not report.agrees

    marked = reconcile(
        [order("o1", status=status)],
        [payment],
        now=NOW,
        policy=Policy(unpaid_order_charged="mark_paid"),
    )
    assert only_line(marked, Case.UNPAID_ORDER_CHARGED).action is Action.MARK_PAID


def test_both_failed_needs_nothing() -> None:
    report = reconcile([order("o1", status="failed")], [record("o1", status="failed")], now=NOW)
    assert report.counts == {Case.BOTH_FAILED: 1}
    assert report.agrees


def test_paid_order_whose_payment_failed() -> None:
    report = reconcile([order("o1")], [record("o1", status="failed")], now=NOW)
    line = only_line(report, Case.PAYMENT_FAILED)
    assert line.action is Action.INVESTIGATE
    cancel = reconcile(
        [order("o1")],
        [record("o1", status="failed")],
        now=NOW,
        policy=Policy(paid_without_payment="cancel"),
    )
    assert only_line(cancel, Case.PAYMENT_FAILED).action is Action.CANCEL


def test_paid_order_without_any_record_is_missing_after_the_grace_window_only() -> None:
    fresh = order("new", created_at=NOW - timedelta(hours=1))
    stale = order("old", created_at=NOW - timedelta(hours=30))
    report = reconcile([fresh, stale], [], now=NOW)
    assert report.counts == {Case.AWAITING: 1, Case.MISSING: 1}
    assert only_line(report, Case.MISSING).order_id == "old"
    # a longer grace window: both are awaiting
    patient = reconcile([fresh, stale], [], now=NOW, policy=Policy(grace=timedelta(days=2)))
    assert patient.counts == {Case.AWAITING: 2}
    # no ``now``: no grace at all
    assert reconcile([fresh, stale], []).counts == {Case.MISSING: 2}


def test_failed_or_pending_orders_without_records_were_not_charged() -> None:
    report = reconcile([order("a", status="failed"), order("b", status="pending")], [], now=NOW)
    assert report.counts == {Case.NOT_CHARGED: 2}
    assert report.agrees


def test_a_pending_payment_is_in_progress() -> None:
    report = reconcile([order("o1", status="pending")], [record("o1", status="pending")], now=NOW)
    assert report.counts == {Case.IN_PROGRESS: 1}


# -- the other discrepancies -----------------------------------------------------------


def test_amount_mismatch_carries_the_difference() -> None:
    report = reconcile([order("o1", "12.50")], [record("o1", "12.00")], now=NOW)
    line = only_line(report, Case.AMOUNT_MISMATCH)
    assert line.difference == Money(-50, "USD")
    assert line.internal_amount == Money(1250, "USD")
    assert line.provider_amount == Money(1200, "USD")


def test_currency_mismatch_beats_amount_comparison() -> None:
    report = reconcile([order("o1", "20.00", currency="EUR")], [record("o1", "20.00")], now=NOW)
    line = only_line(report, Case.CURRENCY_MISMATCH)
    assert line.provider_amount == Money(2000, "USD")
    assert report.counts == {Case.CURRENCY_MISMATCH: 1}


def test_a_line_s_fee_and_net_are_in_the_records_currency_not_the_order_s() -> None:
    # a JPY order paid in USD: the fee is 0.88 USD (88 minor units), not 88 yen
    report = reconcile(
        [order("o1", "2000", currency="JPY")], [record("o1", "20.00", fee="0.88")], now=NOW
    )
    line = only_line(report, Case.CURRENCY_MISMATCH)
    assert line.fee == Money(88, "USD")
    assert line.net == Money(1912, "USD")
    assert report.fees == {"USD": Money(88, "USD")}


def test_an_order_with_records_in_two_currencies_carries_no_single_fee() -> None:
    records = [record("o1", "20.00", fee="0.88"), record("o1", "20.00", currency="EUR", fee="0.50")]
    report = reconcile([order("o1", "20.00", currency="EUR")], records, now=NOW)
    line = only_line(report, Case.CURRENCY_MISMATCH)
    assert line.fee is None and line.net is None  # no one figure adds dollars to euros
    assert report.fees == {"USD": Money(88, "USD"), "EUR": Money(50, "EUR")}


def test_double_charge_proposes_refunding_the_extra_payment() -> None:
    first, second = record("o1", payment_id="pi_a"), record("o1", payment_id="pi_b")
    report = reconcile([order("o1")], [first, second], now=NOW)
    line = only_line(report, Case.DOUBLE_CHARGE)
    assert line.payment_ids == ("pi_b",)
    assert line.provider_amount == Money(1000, "USD")
    assert line.action is Action.REFUND
    assert report.counts == {Case.DOUBLE_CHARGE: 1}


def test_double_charge_keeps_the_payment_that_matches_the_order_amount() -> None:
    report = reconcile(
        [order("o1", "10.00")],
        [record("o1", "3.00", payment_id="pi_small"), record("o1", "10.00", payment_id="pi_ok")],
        now=NOW,
    )
    assert only_line(report, Case.DOUBLE_CHARGE).payment_ids == ("pi_small",)
    assert Case.AMOUNT_MISMATCH not in report.counts


def test_unknown_refund_and_a_known_one() -> None:
    unknown = reconcile([order("o1")], [record("o1"), record("o1", "4.00", "refund")], now=NOW)
    assert only_line(unknown, Case.UNKNOWN_REFUND).provider_amount == Money(400, "USD")
    known = reconcile(
        [order("o1", refunded="4.00")], [record("o1"), record("o1", "4.00", "refund")], now=NOW
    )
    assert known.counts == {Case.MATCHED: 1}
    fully = reconcile(
        [order("o1", status="refunded")], [record("o1"), record("o1", "10.00", "refund")], now=NOW
    )
    assert fully.counts == {Case.MATCHED: 1}


def test_a_reversed_refund_is_not_a_refund() -> None:
    report = reconcile(
        [order("o1")],
        [record("o1"), record("o1", "4.00", "refund"), record("o1", "4.00", "refund_reversal")],
        now=NOW,
    )
    assert report.counts == {Case.MATCHED: 1}


def test_unknown_dispute_and_a_won_one() -> None:
    report = reconcile([order("o1")], [record("o1"), record("o1", kind="dispute")], now=NOW)
    assert only_line(report, Case.UNKNOWN_DISPUTE).action is Action.RECORD
    won = reconcile(
        [order("o1")],
        [record("o1"), record("o1", kind="dispute"), record("o1", kind="dispute_reversal")],
        now=NOW,
    )
    assert won.counts == {Case.MATCHED: 1}
    known = reconcile(
        [order("o1", status="disputed")], [record("o1"), record("o1", kind="dispute")], now=NOW
    )
    assert known.counts == {Case.MATCHED: 1}


def test_orphans_with_and_without_an_order_id() -> None:
    report = reconcile([], [record("ghost", "7.00"), record(None, "1.00")], now=NOW)
    assert report.counts == {Case.ORPHAN: 2}
    assert {line.order_id for line in report.lines} == {"ghost", None}
    assert report.totals[Case.ORPHAN] == {"USD": Money(800, "USD")}


def test_fees_and_net_are_summed_per_currency_including_non_order_records() -> None:
    records = [
        record("o1", "10.00", fee="0.59"),
        record("o2", "20.00", currency="EUR", fee="0.80"),
        record(None, "100.00", kind="other"),  # a payout: no order, not an orphan
    ]
    report = reconcile([order("o1"), order("o2", "20.00", currency="EUR")], records, now=NOW)
    assert report.counts == {Case.MATCHED: 2}
    assert report.fees == {"USD": Money(59, "USD"), "EUR": Money(80, "EUR")}
    assert report.net == {"USD": Money(941 + 10000, "USD"), "EUR": Money(1920, "EUR")}


def test_a_partial_capture_reversal_lowers_what_was_paid() -> None:
    report = reconcile(
        [order("o1", "10.00")],
        [record("o1", "12.00"), record("o1", "2.00", kind="payment_reversal")],
        now=NOW,
    )
    assert report.counts == {Case.MATCHED: 1}


def test_totals_per_case_and_currency() -> None:
    report = reconcile(
        [order("a", "5.00"), order("b", "7.00"), order("c", "1.00", currency="JPY")],
        [record("a", "5.00"), record("b", "7.00"), record("c", "1", currency="JPY")],
        now=NOW,
    )
    assert report.totals[Case.MATCHED] == {"USD": Money(1200, "USD"), "JPY": Money(1, "JPY")}


def test_every_discrepancy_case_counts_against_agreement() -> None:
    assert {
        Case.UNPAID_ORDER_CHARGED,
        Case.PAYMENT_FAILED,
        Case.MISSING,
        Case.AMOUNT_MISMATCH,
        Case.CURRENCY_MISMATCH,
        Case.DOUBLE_CHARGE,
        Case.UNKNOWN_REFUND,
        Case.UNKNOWN_DISPUTE,
        Case.ORPHAN,
    } == DISCREPANCIES


# -- time: since/until and the clock ---------------------------------------------------


def test_since_until_select_orders_and_records() -> None:
    inside = NOW - timedelta(days=2)
    outside = NOW - timedelta(days=10)
    report = reconcile(
        [order("in", created_at=inside), order("out", created_at=outside)],
        [record("in", at=inside), record("stray", at=outside)],
        now=NOW,
        since=NOW - timedelta(days=5),
        until=NOW,
    )
    assert report.counts == {Case.MATCHED: 1}


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        reconcile([], [], now=datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="timezone-aware"):
        OrderRecord("o", Money(1, "USD"), "paid", created_at=datetime(2026, 1, 1))


# -- bad input ---------------------------------------------------------------------------


def test_duplicate_orders_are_an_error_or_a_bad_row() -> None:
    with pytest.raises(ValidationError, match="'o1' appears twice"):
        reconcile([order("o1"), order("o1")], [], now=NOW)
    report = reconcile([order("o1"), order("o1")], [record("o1")], now=NOW, skip_bad_rows=True)
    assert len(report.bad_rows) == 1 and not report.agrees


def test_records_must_be_records() -> None:
    with pytest.raises(ValidationError, match="must yield OrderRecord"):
        reconcile([("o1", 10)], [])
    with pytest.raises(ValidationError, match="must yield ProviderRecord"):
        reconcile([], [{"id": "x"}])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"unpaid_order_charged": "ignore"}, "unpaid_order_charged"),
        ({"double_charge": "cancel"}, "double_charge"),
        ({"grace": timedelta(hours=-1)}, "grace"),
    ],
)
def test_policy_is_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Policy(**kwargs)


def test_records_are_validated() -> None:
    with pytest.raises(ValidationError, match="magnitude"):
        ProviderRecord("x", "r", "payment", "succeeded", "o", Money(-1, "USD"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ProviderRecord("x", "r", "teleport", "succeeded", "o", Money(1, "USD"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="unknown order status"):
        OrderRecord("o", Money(1, "USD"), "shipped-ish")
    with pytest.raises(ValidationError, match="negative"):
        OrderRecord("o", Money(-1, "USD"), "paid")


def test_apply_needs_a_gateway_and_a_run_id() -> None:
    with pytest.raises(ValidationError, match="run_id"):
        reconcile([], [], apply=True)


def test_report_to_dict_is_plain_data() -> None:
    report = reconcile([order("o1", "12.50")], [record("o1", "12.00")], now=NOW, run_id="r1")
    data = report.to_dict()
    assert data["agrees"] is False
    assert data["counts"] == {"amount_mismatch": 1}
    assert data["lines"][0]["difference"] == "-0.50"
    assert data["totals"] == {"amount_mismatch": {"USD": "12.00"}}


# -- files read by DuckDB and rows parsed in Python agree ---------------------------------


class _RowsOnly:
    """Hides that a reader is a file, so the engine takes its Python rows."""

    def __init__(self, reader: object) -> None:
        self.reader = reader

    @property
    def bad_rows(self):  # type: ignore[no-untyped-def]
        return self.reader.bad_rows  # type: ignore[attr-defined]

    def iter_compact(self, *, with_time: bool = True):  # type: ignore[no-untyped-def]
        return self.reader.iter_compact(with_time=with_time)  # type: ignore[attr-defined]


def _many(tmp_path, n: int = 3000):  # type: ignore[no-untyped-def]
    orders = tmp_path / "orders.csv"
    report = tmp_path / "report.csv"
    with orders.open("w") as o, report.open("w") as r:
        o.write("order_id,amount,currency,status\n")
        r.write(
            "balance_transaction_id,currency,gross,fee,net,reporting_category,"
            "payment_intent_id,description,payment_metadata[order_id]\n"
        )
        for i in range(n):
            cents = 100 + i % 977
            o.write(
                f"o{i},{cents // 100}.{cents % 100:02d},USD,{'pending' if i % 97 == 0 else 'paid'}\n"
            )
            charged = cents + (5 if i % 89 == 0 else 0)
            times = 2 if i % 83 == 0 else 1
            if i % 79 == 0:
                continue
            for t in range(times):
                desc = '"a, quoted description"' if i % 500 == 7 else "plain"
                amount = f"{charged // 100}.{charged % 100:02d}"
                r.write(f"t{i}_{t},usd,{amount},0.00,{amount},charge,pi_{i}_{t},{desc},o{i}\n")
            if i % 71 == 0:
                r.write(f"t{i}_r,usd,-1.00,0.00,-1.00,refund,pi_{i}_0,plain,o{i}\n")
            if i % 73 == 0:
                r.write(f"x{i},usd,2.00,0.00,2.00,charge,pi_x{i},plain,ghost{i}\n")
    return orders, report


@pytest.mark.parametrize("loader", ["lists", "pyarrow"])
def test_sql_and_row_paths_classify_identically(tmp_path, monkeypatch, loader) -> None:  # type: ignore[no-untyped-def]
    if loader == "lists":
        monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    else:
        pytest.importorskip("pyarrow")
    orders, report = _many(tmp_path)
    fast = reconcile(OrdersCSV(orders), StripeReportCSV(report), now=NOW)
    slow = reconcile(_RowsOnly(OrdersCSV(orders)), _RowsOnly(StripeReportCSV(report)), now=NOW)
    assert fast.counts == slow.counts
    assert fast.totals == slow.totals
    assert fast.lines == slow.lines
    assert fast.fees == slow.fees and fast.net == slow.net
    assert fast.counts[Case.DOUBLE_CHARGE] > 0 and fast.counts[Case.ORPHAN] > 0


def test_the_lazy_top_level_names_and_the_callable_subpackage() -> None:
    import subprocess
    import sys

    assert paygate.OrderRecord is OrderRecord
    assert paygate.reconcile.reconcile is reconcile
    # paygate.reconcile(...) runs reconcile(), even as the first use in a fresh process
    code = (
        "import sys, paygate; assert 'paygate.reconcile' not in sys.modules; "
        "from paygate import Money; "
        "r = paygate.reconcile([paygate.OrderRecord('o', Money(5, 'USD'), 'paid')], []); "
        "print(dict(r.counts))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{<Case.MISSING: 'missing'>: 1}"


def test_a_reader_that_is_not_a_report_fails_before_reading(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "orders.csv"
    path.write_text("id,total\n1,2\n")
    with pytest.raises(ReportFormatError, match="missing column"):
        OrdersCSV(path)


def test_progress_reports_both_sides(tmp_path) -> None:  # type: ignore[no-untyped-def]
    orders, report = _many(tmp_path, 500)
    calls: list[tuple[str, int]] = []
    result = reconcile(
        OrdersCSV(orders), StripeReportCSV(report), progress=lambda *a: calls.append(a)
    )
    assert ("orders", result.orders_read) in calls
    assert calls[-1] == ("records", result.records_read)
    assert calls.index(("orders", result.orders_read)) < len(calls) - 1  # orders come first
    assert result.orders_read == 500
    assert {side for side, _ in calls} == {"orders", "records"}
