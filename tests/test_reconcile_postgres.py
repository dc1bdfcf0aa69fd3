"""Reconciliation inside PostgreSQL (``reconcile_in_postgres``) against the embedded engine.

Every test fills a PostgresStore's payments, runs the embedded engine on
``orders_from_store(store)`` (the oracle: the orders read into Python) and the pushdown on
the same store and records, and demands the same report, field for field and in the same
order. Runs against ``PAYGATE_TEST_POSTGRES_URL`` or a throw-away database on
127.0.0.1:5432; skips with the reason where no server is reachable
(tests/postgres_support.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paygate import Money
from paygate.models import Payment, PaymentStatus
from paygate.reconcile import (
    Case,
    Policy,
    ProviderRecord,
    ReconciliationReport,
    StripeReportCSV,
    _postgres,
    orders_from_store,
    pushes_down,
    reconcile,
    reconcile_in_postgres,
)
from paygate.state import PaymentState
from paygate.stores import open_store
from paygate.stores._records import PaymentRecord
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

S = PaymentStatus
T0 = 1_790_000_000.0  # 2026-09-21
NOW = datetime.fromtimestamp(T0 + 3 * 86400, tz=timezone.utc)


@pytest.fixture
def store(pg_url: str) -> Iterator[Any]:  # noqa: F811
    s = open_store(pg_url)
    yield s
    s.close()


def put(
    store: Any,
    pid: str,
    order: str | None,
    amount: int,
    currency: str = "USD",
    status: PaymentStatus = S.SUCCEEDED,
    *,
    refunded: int = 0,
    at: float = T0,
    payment_created: datetime | None = None,
) -> None:
    """One payment row, as the gateway writes it (``created_at`` is the first save's time;
    0 makes the orders' reader fall back to the payment's own ``created_at``)."""
    payment = Payment(
        pid, "fake", order, Money(amount, currency), status, created_at=payment_created
    )
    state = PaymentState(status, amount, captured=amount, refunded=refunded)
    store.save_payment(PaymentRecord.build(payment, state, updated_at=at), expected_version=None)


def rec(
    rid: str,
    order: str | None,
    amount: int,
    currency: str = "USD",
    kind: str = "payment",
    status: str = "succeeded",
    *,
    fee: int = 0,
    net: int | None = None,
    payment_id: str | None = None,
    at: float | None = None,
) -> ProviderRecord:
    return ProviderRecord(
        "fake",
        rid,
        kind,  # type: ignore[arg-type]
        status,  # type: ignore[arg-type]
        order,
        Money(amount, currency),
        fee=Money(fee, currency),
        net=Money(amount - fee if net is None else net, currency),
        payment_id=payment_id,
        occurred_at=None if at is None else datetime.fromtimestamp(at, tz=timezone.utc),
    )


def both(store: Any, records: Sequence[ProviderRecord], **options: Any) -> ReconciliationReport:
    """The pushdown's report, after checking it is the embedded engine's."""
    expected = reconcile(orders_from_store(store), list(records), **options)
    got = reconcile_in_postgres(orders_from_store(store), list(records), **options)
    assert got.lines == expected.lines
    assert got == expected
    # the same report to the byte, key order included
    assert json.dumps(got.to_dict()) == json.dumps(expected.to_dict())
    return got


def cases(report: ReconciliationReport) -> dict[str, str]:
    return {str(line.order_id): str(line.case) for line in report.lines}


# -- scripted stores ---------------------------------------------------------------------------


def test_every_case_against_the_embedded_engine(store: Any) -> None:
    put(store, "p01", "matched", 1000)
    put(store, "p02", "missing", 1000)
    put(store, "p03", "orphaned_order_elsewhere", 500, status=S.FAILED)  # not charged
    put(store, "p04", "mismatch", 1000)
    put(store, "p05", "double", 1000)
    put(store, "p06", "unpaid", 700, status=S.PENDING)
    put(store, "p07", "refund", 2000, status=S.PARTIALLY_REFUNDED, refunded=500)
    put(store, "p08", "dispute", 1500)
    put(store, "p09", "known_dispute", 1500, status=S.DISPUTED)
    put(store, "p10", "failed_both", 900, status=S.FAILED)
    put(store, "p11", "paid_failed", 900)
    put(store, "p12", "in_progress", 900, status=S.PROCESSING)
    put(store, "p13", "currency", 900)
    put(store, "p14", "refunded_known", 300, status=S.REFUNDED, refunded=300)
    put(store, "p15", "reversed", 1000)
    put(store, "p16", "double_exact_second", 1000)
    records = [
        rec("r01", "matched", 1000, fee=59, payment_id="ch_1"),
        rec("r02", "mismatch", 990, fee=59, payment_id="ch_2"),
        rec("r03", "double", 1000, fee=59, payment_id="ch_3"),
        rec("r04", "double", 1000, fee=59, payment_id="ch_4"),
        rec("r05", "unpaid", 700, payment_id="ch_5"),
        rec("r06", "refund", 2000, payment_id="ch_6"),
        rec("r07", "refund", 800, kind="refund", fee=-10, payment_id="ch_6"),
        rec("r08", "dispute", 1500, payment_id="ch_8"),
        rec("r09", "dispute", 1500, kind="dispute", fee=1500, payment_id="ch_8"),
        rec("r10", "known_dispute", 1500, payment_id="ch_9"),
        rec("r11", "known_dispute", 1500, kind="dispute", payment_id="ch_9"),
        rec("r12", "failed_both", 900, status="failed", net=0),
        rec("r13", "paid_failed", 900, status="failed", net=0),
        rec("r14", "paid_failed", 900, status="failed", net=0),
        rec("r15", "in_progress", 900, status="pending", net=0),
        rec("r16", "currency", 900, "EUR", payment_id="ch_16"),
        rec("r17", "refunded_known", 300, payment_id="ch_17"),
        rec("r18", "refunded_known", 300, kind="refund", payment_id="ch_17"),
        rec("r19", "nobody", 4200, payment_id="ch_19"),
        rec("r20", None, 100, kind="other", fee=5, net=-105),
        rec("r21", None, 77, payment_id="ch_21"),
        rec("r22", "reversed", 1000, payment_id="ch_22"),
        rec("r23", "reversed", 400, kind="payment_reversal", payment_id="ch_22"),
        # the payment of exactly the order's amount is kept, the other one is the extra
        rec("r24", "double_exact_second", 999, payment_id="ch_24"),
        rec("r25", "double_exact_second", 1000, payment_id="ch_25"),
    ]
    report = both(store, records, now=NOW)
    assert cases(report) == {
        "missing": "missing",
        "mismatch": "amount_mismatch",
        "double": "double_charge",
        "unpaid": "unpaid_order_charged",
        "refund": "unknown_refund",
        "dispute": "unknown_dispute",
        "paid_failed": "payment_failed",
        "currency": "currency_mismatch",
        "nobody": "orphan",
        "None": "orphan",
        "reversed": "amount_mismatch",
        "double_exact_second": "double_charge",
    }
    (extra,) = report.lines_for(Case.DOUBLE_CHARGE)[1:]
    assert extra.payment_ids == ("ch_24",) and extra.amount == Money(999, "USD")
    assert report.counts[Case.MATCHED] == 3  # matched, known_dispute, refunded_known
    assert report.counts[Case.BOTH_FAILED] == report.counts[Case.IN_PROGRESS] == 1
    assert report.counts[Case.NOT_CHARGED] == 1
    assert report.fees == {"USD": Money(59 * 4 - 10 + 1500 + 5, "USD")}


def test_a_clean_first_payment_is_not_among_the_ids_of_the_order_s_lines(store: Any) -> None:
    """The embedded engine matches an order's first record when it is a clean payment,
    before it knows more is coming: a later refund's line names only what came after."""
    put(store, "p1", "o1", 1000)
    put(store, "p2", "o2", 1000)
    records = [
        rec("r1", "o1", 1000, fee=30, payment_id="ch_1"),
        rec("r2", "o2", 500, kind="refund", payment_id="ch_2"),  # refund before payment
        rec("r3", "o2", 1000, fee=30, payment_id="ch_2"),
        rec("r4", "o1", 500, kind="refund", fee=-3, payment_id="ch_1"),
    ]
    report = both(store, records)
    o1, o2 = report.lines
    assert o1.record_ids == ("r4",) and o1.fee == Money(-3, "USD")
    assert o2.record_ids == ("r2", "r3") and o2.fee == Money(30, "USD")


def test_currencies_with_zero_and_three_decimals(store: Any) -> None:
    put(store, "p1", "usd", 100)  # the books name USD first, then KWD, then JPY
    put(store, "p2", "kwd_ok", 12345, "KWD")
    put(store, "p3", "jpy_ok", 5000, "JPY")
    put(store, "p4", "jpy_short", 5000, "JPY")
    put(store, "p5", "kwd_double", 12345, "KWD")
    put(store, "p6", "kwd_refund", 12345, "KWD", S.PARTIALLY_REFUNDED, refunded=1000)
    records = [
        rec("r1", "jpy_ok", 5000, "JPY", fee=180),
        rec("r2", "jpy_short", 4999, "JPY", fee=180),
        rec("r3", "kwd_ok", 12345, "KWD", fee=375),
        rec("r4", "kwd_double", 12345, "KWD", payment_id="a"),
        rec("r5", "kwd_double", 12345, "KWD", payment_id="b"),
        rec("r6", "kwd_refund", 12345, "KWD", payment_id="c"),
        rec("r7", "kwd_refund", 2500, "KWD", kind="refund", payment_id="c"),
        rec("r8", "usd", 100, fee=3),
        rec("r9", "elsewhere", 1, "JPY"),
    ]
    report = both(store, records)
    assert list(report.totals[Case.MATCHED].items()) == [
        ("USD", Money(100, "USD")),
        ("KWD", Money(12345, "KWD")),
        ("JPY", Money(5000, "JPY")),
    ]
    assert report.lines_for(Case.UNKNOWN_REFUND)[0].amount == Money(1500, "KWD")
    assert set(report.fees) == {"JPY", "KWD", "USD"}


def test_window_edges_and_the_grace_period(store: Any) -> None:
    since, until = T0, T0 + 86400
    put(store, "p1", "at_since", 100, at=since)  # inside: since is inclusive
    put(store, "p2", "at_until", 100, at=until)  # outside: until is exclusive
    put(store, "p3", "before", 100, at=since - 0.5)
    put(store, "p4", "recent", 100, at=until - 1)  # no record yet, created within grace
    put(store, "p5", "recent_pending", 100, "USD", S.PENDING, at=until - 1)
    put(store, "p6", "old", 100, at=since + 1)  # no record, past the grace: missing
    # created_at 0: the payment's own created_at places the order
    put(store, "p7", "from_payment", 100, at=0.0,
        payment_created=datetime.fromtimestamp(since + 5, tz=timezone.utc))  # fmt: skip
    put(store, "p8", "undated", 100, at=0.0)  # no time at all: kept
    records = [
        rec("r1", "at_since", 100, at=since),
        rec("r2", "at_until", 100, at=until),  # outside: ignored
        rec("r3", "before", 100, at=since + 10),  # its order is outside: an orphan
        rec("r4", "at_since", 100, kind="refund", at=until - 0.001),
        rec("r5", "from_payment", 100),  # undated record: kept
        rec("r6", None, 0, kind="other", fee=10, net=-10, at=since - 1),  # outside: no fee
    ]
    now = datetime.fromtimestamp(until + 3600, tz=timezone.utc)
    report = both(
        store,
        records,
        now=now,
        since=datetime.fromtimestamp(since, tz=timezone.utc),
        until=datetime.fromtimestamp(until, tz=timezone.utc),
        policy=Policy(grace=timedelta(hours=2)),
    )
    assert cases(report) == {
        "at_since": "unknown_refund",
        "before": "orphan",
        "old": "missing",
        "undated": "missing",
    }
    assert report.counts[Case.AWAITING] == 2
    assert report.counts[Case.MATCHED] == 1  # from_payment
    assert report.orders_read == 8 and report.records_read == 6
    assert report.fees == {}


def test_policy_actions_and_several_payments_per_order(store: Any) -> None:
    # the attempt that got furthest speaks for the order; the first id on a tie
    put(store, "pa", "o1", 1000, status=S.FAILED)
    put(store, "pb", "o1", 1000)
    put(store, "pc", "o1", 900)
    put(store, "pd", "o2", 500, status=S.CANCELED)
    put(store, "pe", "o2", 500, status=S.PENDING)
    put(store, "pf", None, 100)  # no order id: not an order
    records = [
        rec("r1", "o1", 1000, payment_id=""),
        rec("r2", "o1", 900, payment_id="ch_x"),
        rec("r3", "o2", 500),
    ]
    policy = Policy(
        unpaid_order_charged="mark_paid", paid_without_payment="cancel", double_charge="investigate"
    )
    report = both(store, records, policy=policy)
    assert [str(line.action) for line in report.lines] == ["investigate", "mark_paid"]
    assert report.lines[0].payment_ids == ("ch_x",)
    assert report.orders_read == 2


def test_stripe_report_through_its_reader(store: Any, tmp_path: Path) -> None:
    """A report file read by its own reader, rows copied in (each read once)."""
    put(store, "p1", "ord_1", 1999)
    put(store, "p2", "ord_2", 2500)
    report_csv = tmp_path / "balance.csv"
    report_csv.write_text(
        "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
        "source_id,charge_id,payment_intent_id,payment_metadata[order_id]\n"
        "txn_1,2026-09-21 10:00:00,usd,19.99,0.88,19.11,charge,ch_1,ch_1,pi_1,ord_1\n"
        "txn_2,2026-09-21 11:00:00,usd,25.00,1.03,23.97,charge,ch_2,ch_2,pi_2,ord_2\n"
        "txn_3,2026-09-21 12:00:00,usd,-5.00,0.00,-5.00,refund,re_1,ch_2,pi_2,ord_2\n"
        "txn_4,2026-09-21 13:00:00,usd,-10.00,0.00,-10.00,payout,po_1,,,\n"
    )
    expected = reconcile(orders_from_store(store), StripeReportCSV(report_csv))
    got = reconcile_in_postgres(orders_from_store(store), StripeReportCSV(report_csv))
    assert json.dumps(got.to_dict()) == json.dumps(expected.to_dict())
    assert cases(got) == {"ord_2": "unknown_refund"}


def test_no_order_row_travels_to_python(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's payments are never listed in Python, and the rows fetched are the
    report's lines and totals: as many for 300 orders as for 3."""
    fetched: list[int] = []

    def counting_connect(target: Any) -> Any:
        import psycopg

        class Counting(psycopg.Cursor[Any]):
            def fetchall(self) -> list[Any]:
                rows = super().fetchall()
                fetched.append(len(rows))
                return rows

            def fetchone(self) -> Any:
                row = super().fetchone()
                fetched.append(int(row is not None))
                return row

        conn = psycopg.connect(target._conninfo, **target._connect_kwargs)
        conn.cursor_factory = Counting
        return conn

    monkeypatch.setattr(_postgres, "_connect", counting_connect)

    def rows_for(n: int) -> int:
        with store._write() as cur:
            cur.execute("DELETE FROM paygate_payments")
        for i in range(n):
            put(store, f"p{i:04d}", f"o{i:04d}", 100 + i)
        records = [rec(f"r{i}", f"o{i:04d}", 100 + i) for i in range(n)]
        records.append(rec("rx", "o0000", 50, kind="refund"))
        fetched.clear()
        with monkeypatch.context() as m:
            m.setattr(type(store), "iter_payments", _refuse)
            report = reconcile_in_postgres(store, records)
        assert report.counts == {Case.MATCHED: n - 1, Case.UNKNOWN_REFUND: 1}
        return sum(fetched)

    # one currency matched, one line, the counts, one currency of fees
    assert rows_for(3) == rows_for(300) == 4


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the orders were read into Python")


def test_an_amount_past_64_bits_is_refused_with_a_clear_error(store: Any) -> None:
    """The records' table holds bigint: a larger amount is refused in paygate's terms (not
    psycopg's OverflowError, which the command line would not catch)."""
    from paygate.errors import ValidationError

    put(store, "p1", "o1", 100)
    huge = [rec("r1", "o1", 2**63)]
    with pytest.raises(ValidationError, match="64 bits"):
        reconcile_in_postgres(store, huge)


def test_pushes_down_only_for_a_postgres_store(store: Any, tmp_path: Path) -> None:
    assert pushes_down(store) and pushes_down(orders_from_store(store))
    sqlite = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        assert not pushes_down(sqlite) and not pushes_down(orders_from_store(sqlite))
        from paygate.errors import ValidationError

        with pytest.raises(ValidationError, match="PostgresStore"):
            reconcile_in_postgres(orders_from_store(sqlite), [])
    finally:
        sqlite.close()


def test_the_cli_pushes_a_postgres_store_down(
    store: Any,
    pg_url: str,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from paygate.__main__ import main

    put(store, "p1", "ord_1", 1999)
    put(store, "p2", "ord_2", 2500)
    report_csv = tmp_path / "balance.csv"
    report_csv.write_text(
        "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
        "source_id,charge_id,payment_intent_id,payment_metadata[order_id]\n"
        "txn_1,2026-09-21 10:00:00,usd,19.99,0.88,19.11,charge,ch_1,ch_1,pi_1,ord_1\n"
        "txn_3,2026-09-21 12:00:00,usd,-5.00,0.00,-5.00,refund,re_1,ch_2,pi_2,ord_2\n"
    )
    args = ["reconcile", "--provider", "stripe", "--report", str(report_csv), "--store", pg_url]
    python_out, sql_out = tmp_path / "python.json", tmp_path / "sql.json"
    import paygate.reconcile.cli as cli_module

    monkeypatch.setattr(cli_module, "pushes_down", lambda internal: False)
    assert main([*args, "--no-progress", "--out", str(python_out)]) == 1
    monkeypatch.undo()
    import paygate.stores.postgres as postgres_module

    monkeypatch.setattr(postgres_module.PostgresStore, "iter_payments", _refuse)
    assert main([*args, "--no-progress", "--out", str(sql_out)]) == 1
    python_report, sql_report = json.loads(python_out.read_text()), json.loads(sql_out.read_text())
    python_report.pop("now"), sql_report.pop("now")
    assert sql_report == python_report
    assert sql_report["counts"] == {"matched": 1, "unknown_refund": 1}


# -- random stores -------------------------------------------------------------------------

CURRENCIES = ["USD", "JPY", "KWD"]
AMOUNTS = [0, 100, 250, 1000]
TIMES = [None, T0 - 7200, T0 - 1, T0, T0 + 1, T0 + 3600, T0 + 86400]
ORDER_IDS = ["o0", "o1", "o2", "o3", "o4", "o5"]

payments = st.lists(
    st.tuples(
        st.sampled_from([*ORDER_IDS, None]),
        st.sampled_from(AMOUNTS),
        st.sampled_from(CURRENCIES),
        st.sampled_from(list(PaymentStatus)),
        st.sampled_from([0, 100, 1000]),  # refunded
        st.sampled_from(TIMES),  # created (None: the row's created_at is 0)
    ),
    max_size=10,
)
records = st.lists(
    st.tuples(
        st.sampled_from([*ORDER_IDS, None, "zz"]),
        st.sampled_from(["payment"] * 4 + ["refund", "refund_reversal", "dispute",
                                          "dispute_reversal", "payment_reversal", "other"]),
        st.sampled_from(["succeeded"] * 3 + ["pending", "failed"]),
        st.sampled_from([*AMOUNTS, 999]),
        st.sampled_from(CURRENCIES),
        st.sampled_from([0, 0, 30, -5]),  # fee
        st.sampled_from([None, "", "ch_a", "ch_b"]),
        st.sampled_from(TIMES),
    ),
    max_size=14,
)  # fmt: skip
moments = st.sampled_from(TIMES)


@settings(
    # modest for CI; PAYGATE_PG_PROPERTY_EXAMPLES=5000 for a long run
    max_examples=int(os.environ.get("PAYGATE_PG_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    payment_rows=payments,
    record_rows=records,
    since=moments,
    until=moments,
    now=moments,
    grace=st.sampled_from([0, 3600, 86400]),
    ids=st.randoms(use_true_random=False),
)
def test_random_stores_match_the_embedded_engine(
    store: Any,
    payment_rows: list[Any],
    record_rows: list[Any],
    since: float | None,
    until: float | None,
    now: float | None,
    grace: int,
    ids: Any,
) -> None:
    with store._write() as cur:
        cur.execute("DELETE FROM paygate_payments")
    names = ids.sample(range(1000), len(payment_rows))  # random ids: the books' order
    for name, (order, amount, currency, status, refunded, created) in zip(
        names, payment_rows, strict=True
    ):
        put(
            store, f"p{name}", order, amount, currency, status,
            refunded=min(refunded, amount), at=0.0 if created is None else created,
            payment_created=None if created is None or created < T0 else
            datetime.fromtimestamp(created, tz=timezone.utc),
        )  # fmt: skip
    provider = [
        rec(f"r{i}", order, amount, currency, kind, status, fee=fee, payment_id=pid, at=at)
        for i, (order, kind, status, amount, currency, fee, pid, at) in enumerate(record_rows)
    ]

    def moment(ts: float | None) -> datetime | None:
        return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)

    both(
        store,
        provider,
        since=moment(since),
        until=moment(until),
        now=moment(now),
        policy=Policy(grace=timedelta(seconds=grace)),
    )


def test_apply_refunds_a_double_charge_found_in_the_database(pg_url: str) -> None:  # noqa: F811
    """``apply=True`` acts on the lines the SQL found, as for the embedded engine."""
    import paygate
    from paygate.reconcile import Action, applied_actions

    gw = paygate.connect("fake", store=pg_url)
    try:
        ten = Money(1000, "USD")
        paid = gw.create_payment(order_id="o1", amount=ten, payment_method="tok_visa")
        extra = gw.provider.create_payment(
            order_id="o1", amount=ten, payment_method="tok_visa", idempotency_key="elsewhere"
        )
        records = [rec(f"txn_{p.id}", "o1", 1000, payment_id=p.id) for p in (paid, extra)]
        dry = reconcile(orders_from_store(gw.store), records, run_id="run-1")
        report = reconcile_in_postgres(gw.store, records, apply=True, gateway=gw, run_id="run-1")
        assert report.lines == dry.lines
        assert [(a.order_id, a.action, a.outcome) for a in report.applied] == [
            ("o1", Action.REFUND, "done")
        ]
        assert gw.get_payment(extra.id).amount_refunded == ten
        assert gw.get_payment(paid.id).amount_refunded == Money(0, "USD")
        assert [r.payment_id for r in applied_actions(gw.store, "run-1")] == [extra.id]
    finally:
        gw.close()
