"""The engine's two ways in, on random books and reports: files read by DuckDB and
normalized in SQL, against the same files parsed by the readers in Python and loaded as
plain lists (pyarrow hidden).

Every case, three currency exponents (JPY 0, USD 2, KWD 3), refunds, disputes, reversals,
duplicates, orphans, windows, the grace window, and bad rows (with and without
``skip_bad_rows``), read from CSV files (DuckDB's own reader, or the Python fallback for
files with rows it does not accept) and from iterables of records. Both runs must raise
the same error or produce the same report: equal ``to_dict()`` and byte-identical CSV,
JSON and HTML files.

Before the former pure-Python engine was deleted, this test ran it against the DuckDB
engine (1,900 examples over four seeds, no difference). ``PAYGATE_ENGINES_EXAMPLES`` sets
the number of examples (default 60).
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from paygate.errors import PaygateError
from paygate.money import Money
from paygate.reconcile import (
    GenericCSV,
    OrderRecord,
    OrdersCSV,
    Policy,
    ProviderRecord,
    StripeReportCSV,
    reconcile,
    write_report,
)

EXAMPLES = int(os.environ.get("PAYGATE_ENGINES_EXAMPLES", "60"))
EXPONENT = {"JPY": 0, "USD": 2, "KWD": 3}
T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
MOMENTS = [T0 + timedelta(hours=h) for h in (0, 5, 20, 30, 47, 60)]
ORDER_IDS = [f"o{i}" for i in range(12)]
STATUS_WORDS = [
    "paid", "paid", "paid", "Paid", "succeeded", "pending", "open", "failed", "cancelled",
    "canceled",
    "refunded", "disputed", "chargeback",
]  # fmt: skip
CATEGORIES = [
    "charge", "charge", "charge", "payment", "refund", "refund_failure", "dispute",
    "dispute_reversal", "partial_capture_reversal", "charge_failure", "payout", "fee",
]  # fmt: skip


def major(minor: int, currency: str, shape: int = 0) -> str:
    """``minor`` as major-unit text: the usual shape, or (``shape``) another accepted one."""
    e = EXPONENT[currency]
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**e)
    if shape == 1 and frac == 0:
        return f"{sign}{whole}"  # no decimal places
    if shape == 2 and e > 0:
        return f"{sign}{whole}.{frac:0{e}d}0"  # a trailing zero too many (still exact)
    return f"{sign}{whole}.{frac:0{e}d}" if e else f"{sign}{whole}"


def moment_text(moment: datetime, style: int) -> str:
    if style == 0:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    if style == 1:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(int(moment.timestamp()))


BAD_ORDER_CELLS = ["abc", "-1.00", "1.5", "", "XXX", "weird", "2026-13-40"]


@st.composite
def books(draw: Any) -> list[dict[str, Any]]:
    ids = draw(st.lists(st.sampled_from(ORDER_IDS), max_size=10, unique=True))
    if ids and draw(st.integers(0, 9)) == 0:
        ids.append(draw(st.sampled_from(ids)))  # a duplicate order
    orders = []
    for order_id in ids:
        currency = draw(st.sampled_from(list(EXPONENT)))
        amount = draw(st.sampled_from([0, 1, 100, 1000, 1999, 5000, 123456]))
        refunded = draw(st.sampled_from([None, None, None, 100, amount]))
        orders.append(
            {
                "order_id": order_id,
                "amount": amount,
                "currency": currency,
                "status": draw(st.sampled_from(STATUS_WORDS)),
                "created": draw(st.sampled_from([None, *MOMENTS])),
                "refunded": refunded,
                "shape": draw(st.integers(0, 4)),
                "time_style": draw(st.integers(0, 2)),
                "bad": draw(st.integers(0, 80)),
            }
        )
    return orders


@st.composite
def provider_rows(draw: Any, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    pool = [o["order_id"] for o in orders] * 3 + ["stranger", ""]
    for n in range(draw(st.integers(0, 16))):
        order_id = draw(st.sampled_from(pool))
        like = next((o for o in orders if o["order_id"] == order_id), None)
        currency = draw(st.sampled_from(list(EXPONENT)))
        category = draw(st.sampled_from(CATEGORIES))
        if draw(st.booleans()):
            category = "charge"
        gross = draw(st.sampled_from([0, 1, 100, 1000, 1999, 2999, 5000, 123456]))
        if like is not None and draw(st.integers(0, 3)):
            # mostly about the order as the books have it: its currency and amount
            currency = like["currency"]
            gross = like["amount"] + draw(st.sampled_from([0, 0, 0, 1, -1, 7]))
            gross = max(gross, 0)
        if category in ("refund", "dispute", "payout", "fee", "charge_failure"):
            gross = -gross
        if category == "partial_capture_reversal":
            gross = -draw(st.sampled_from([1, 100]))
        fee = draw(st.sampled_from([0, 0, 30, -5]))
        rows.append(
            {
                "id": f"txn_{n}",
                "order_id": order_id,
                "category": category,
                "currency": currency,
                "gross": gross,
                "fee": fee,
                "net": gross - fee,
                "payment_id": draw(st.sampled_from(["", "pi_1", "pi_2", f"pi_{n}"])),
                "created": draw(st.sampled_from([None, *MOMENTS])),
                "upper": draw(st.booleans()),
                "status": draw(st.sampled_from(["succeeded"] * 4 + ["pending", "failed"])),
                "shape": draw(st.integers(0, 4)),
                "time_style": draw(st.integers(0, 2)),
                "bad": draw(st.integers(0, 100)),
            }
        )
    return rows


def write_orders(path: Path, orders: list[dict[str, Any]]) -> None:
    lines = ["order_id,amount,currency,status,created_at,refunded"]
    for o in orders:
        cells = [
            o["order_id"],
            major(o["amount"], o["currency"], o["shape"]),
            o["currency"].lower() if o["shape"] == 3 else o["currency"],
            o["status"],
            "" if o["created"] is None else moment_text(o["created"], o["time_style"]),
            "" if o["refunded"] is None else major(o["refunded"], o["currency"]),
        ]
        if o["bad"] < len(BAD_ORDER_CELLS) * 2 and o["bad"] % 2 == 0:
            # a bad cell in a column chosen by the draw
            cells[1 + (o["bad"] // 2) % 5] = BAD_ORDER_CELLS[o["bad"] // 2]
        line = ",".join(cells)
        if o["bad"] == 79:
            line += ",extra"  # a ragged row
        lines.append(line)
        if o["bad"] == 77:
            lines.append("")  # a blank line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


STRIPE_HEADER = (
    "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
    "source_id,charge_id,payment_intent_id,payment_metadata[order_id]"
)


def write_stripe(path: Path, rows: list[dict[str, Any]]) -> None:
    lines = [STRIPE_HEADER]
    for r in rows:
        cur = r["currency"]
        cells = [
            r["id"],
            "" if r["created"] is None else moment_text(r["created"], r["time_style"]),
            cur if r["upper"] else cur.lower(),
            major(r["gross"], cur, r["shape"]),
            major(r["fee"], cur),
            major(r["net"], cur),
            r["category"],
            "src_" + r["id"] if r["shape"] == 4 else "",
            "",
            r["payment_id"],
            r["order_id"],
        ]
        bad = r["bad"]
        if bad == 0:
            cells[5] = major(r["net"] + 1, cur)  # gross - fee != net
        elif bad == 1:
            cells[2] = "xyz"
        elif bad == 2:
            cells[3] = "1,5"  # a quoted cell, then a bad amount
            cells[3] = '"1,5"'
        elif bad == 3:
            cells[1] = "not a date"
        elif bad == 4:
            cells.append("x")
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def as_records(rows: list[dict[str, Any]]) -> list[ProviderRecord]:
    """The same rows as ProviderRecords (the iterable path), good rows only."""
    from paygate.reconcile._stripe import REPORTING_CATEGORIES

    out = []
    for r in rows:
        if r["bad"] <= 4:
            continue
        kind, _ = REPORTING_CATEGORIES.get(r["category"], ("other", "succeeded"))
        status = r["status"]
        cur = r["currency"]
        out.append(
            ProviderRecord(
                "stripe",
                r["id"],
                kind,
                status,
                r["order_id"] or None,
                Money(abs(r["gross"]), cur),
                fee=Money(r["fee"], cur),
                net=Money(r["net"], cur),
                payment_id=r["payment_id"] or None,
                occurred_at=r["created"],
            )
        )
    return out


def as_orders(orders: list[dict[str, Any]]) -> list[OrderRecord]:
    return [
        OrderRecord(
            o["order_id"],
            Money(o["amount"], o["currency"]),
            o["status"],
            created_at=o["created"],
            refunded=None if o["refunded"] is None else Money(o["refunded"], o["currency"]),
        )
        for o in orders
    ]


class InPython:
    """A reader with only its Python rows showing: the engine parses and loads it in
    Python instead of reading the file with DuckDB."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    @property
    def bad_rows(self) -> Any:
        return self.reader.bad_rows

    @property
    def provider(self) -> Any:
        return getattr(self.reader, "provider", None)

    def iter_compact(self, *, with_time: bool = True) -> Any:
        return self.reader.iter_compact(with_time=with_time)


def run(make: Any, kwargs: dict[str, Any], *, in_python: bool = False) -> tuple[str, Any]:
    internal, provider = make()
    if in_python:
        internal = internal if isinstance(internal, list) else InPython(internal)
        provider = provider if isinstance(provider, list) else InPython(provider)
    try:
        return "ok", reconcile(internal, provider, **kwargs)
    except PaygateError as exc:
        return "error", f"{type(exc).__name__}: {exc}"


def reports_equal(a: Any, b: Any, directory: Path) -> None:
    assert a.to_dict() == b.to_dict()
    for suffix in (".csv", ".json", ".html"):
        first = write_report(a, directory / f"old{suffix}").read_bytes()
        second = write_report(b, directory / f"new{suffix}").read_bytes()
        assert first == second, suffix


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.data(),
    orders=books(),
    sources=st.sampled_from(["csv", "csv-generic", "iterables", "mixed"]),
    skip=st.booleans(),
    now=st.sampled_from([None, *MOMENTS]),
    since=st.sampled_from([None, None, MOMENTS[1], MOMENTS[2]]),
    until=st.sampled_from([None, None, MOMENTS[3], MOMENTS[5]]),
    policy=st.sampled_from(
        [Policy(), Policy("mark_paid", "cancel", "investigate", timedelta(hours=6))]
    ),
)
def test_files_read_in_sql_and_rows_read_in_python_agree(
    data: Any,
    orders: list[dict[str, Any]],
    sources: str,
    skip: bool,
    now: datetime | None,
    since: datetime | None,
    until: datetime | None,
    policy: Policy,
) -> None:
    rows = data.draw(provider_rows(orders))
    kwargs = {"now": now, "since": since, "until": until, "skip_bad_rows": skip, "policy": policy}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        orders_csv, report_csv = directory / "orders.csv", directory / "report.csv"
        write_orders(orders_csv, orders)
        write_stripe(report_csv, rows)
        generic_csv = directory / "generic.csv"
        generic_csv.write_text(
            "id,order_id,amount,currency,type,status,fee,net,payment_id,created_at\n"
            + "".join(
                f"{r['id']},{r['order_id']},{major(r['gross'], r['currency'])},{r['currency']},"
                f"{r['category'] if r['category'] in ('charge', 'refund', 'dispute') else 'other'},"
                f"{r['status']},"
                f"{major(r['fee'], r['currency'])},{major(r['net'], r['currency'])},"
                f"{r['payment_id']},"
                f"{'' if r['created'] is None else moment_text(r['created'], 0)}\n"
                for r in rows
            ),
            encoding="utf-8",
        )

        def make() -> tuple[Any, Any]:
            good_orders = [o for o in orders if o["bad"] >= len(BAD_ORDER_CELLS) * 2]
            if sources == "csv":
                return OrdersCSV(orders_csv, skip_bad_rows=skip), StripeReportCSV(
                    report_csv, skip_bad_rows=skip
                )
            if sources == "csv-generic":
                return OrdersCSV(orders_csv, skip_bad_rows=skip), GenericCSV(
                    generic_csv, skip_bad_rows=skip
                )
            if sources == "iterables":
                return as_orders(good_orders), as_records(rows)
            return as_orders(good_orders), StripeReportCSV(report_csv, skip_bad_rows=skip)

        new = run(make, kwargs)
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(sys.modules, "pyarrow", None)  # the plain-list load path
            old = run(make, kwargs, in_python=True)
        event(f"{sources}: {old[0]}")
        if old[0] == "ok":
            for case in old[1].counts:
                event(f"case {case}")
        assert old[0] == new[0], (old, new)
        if old[0] == "error":
            assert old[1] == new[1]
        else:
            reports_equal(old[1], new[1], directory)


def test_the_fast_path_reads_plain_files_in_sql(tmp_path: Path) -> None:
    """A clean file is read by DuckDB (no fallback): every row normalized, none bad."""
    from paygate.reconcile import _duck

    orders = [
        {"order_id": f"o{i}", "amount": 1000 + i, "currency": cur, "status": "paid",
         "created": None, "refunded": None, "shape": 0, "time_style": 0, "bad": 99}
        for i, cur in enumerate(["USD", "JPY", "KWD", "USD"])
    ]  # fmt: skip
    write_orders(tmp_path / "orders.csv", orders)
    sql = _duck._orders_from_csv(OrdersCSV(tmp_path / "orders.csv"), True)
    assert sql is not None
    con = _duck._connect()
    try:
        assert con.execute(f"SELECT amount, bad FROM ({sql}) ORDER BY pos").fetchall() == [
            (1000, False), (1001, False), (1002, False), (1003, False)
        ]  # fmt: skip
    finally:
        con.close()


def test_the_engine_draws_no_progress_bar() -> None:
    """DuckDB draws a progress bar on stdout for queries over 2 s by default: a cron job's
    output and `paygate reconcile`'s own summary must not get one."""
    from paygate.reconcile import _duck

    con = _duck._connect()
    try:
        (enabled,) = con.execute("SELECT current_setting('enable_progress_bar')").fetchone()
    finally:
        con.close()
    assert enabled is False


AMOUNT_TEXTS = [
    "12.34", "-0.50", "0.45", "1.5", "1.500", "12", "012.34", "+1.00", " 1.00", "1e2", "-0.00",
    "0.00", "-12", "1.", ".5", "12.345", "1_000.00", "\u0661\u0662.\u0663\u0664",
    "9999999999999999.99", "99999999999999999999", "92233720368547758.07",
    "9223372036854775807", "-9223372036854775808", "922337203685477580.7", "0.001", "",
]  # fmt: skip


@pytest.mark.parametrize("currency", ["JPY", "USD", "KWD"])
def test_the_sql_amount_parser_agrees_with_python_or_defers(currency: str) -> None:
    """Every amount text the SQL accepts gets the Python parser's value; the others are
    NULL (the file then goes to the Python parser), never an error or another value."""
    from paygate.reconcile import _duck
    from paygate.reconcile._common import major_to_minor, minor_int

    con = _duck._connect()
    try:
        for text in AMOUNT_TEXTS:
            for template, parse in (
                (_duck._MAJOR, lambda t: major_to_minor(t, currency)),
                (_duck._MINOR, minor_int),
            ):
                sql = template.format(t="x", e=EXPONENT[currency])
                (value,) = con.execute(
                    f"SELECT {sql} FROM (SELECT ?::VARCHAR AS x)", [text]
                ).fetchone()
                if value is not None:
                    assert value == parse(text), (text, currency)
    finally:
        con.close()
