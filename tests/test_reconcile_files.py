"""Report files read by DuckDB: the same classification as the readers' Python rows, and
the fall back to the Python parser (with file and line) on anything unusual."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from paygate import ValidationError
from paygate.reconcile import OrdersCSV, ReportFormatError, StripeReportCSV, reconcile

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
STRIPE_HEADER = (
    "balance_transaction_id,currency,gross,fee,net,reporting_category,"
    "payment_intent_id,description,payment_metadata[order_id]\n"
)


def without_pyarrow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError


def write_files(
    tmp_path: Path, n: int = 2000, *, currencies: tuple[str, ...] = ("USD",), extra: str = ""
) -> tuple[Path, Path]:
    """Orders and a Stripe report with every kind of discrepancy; ``extra`` lines go in
    the middle of the report."""
    orders = tmp_path / "orders.csv"
    report = tmp_path / "report.csv"
    order_lines = ["order_id,amount,currency,status,created_at\n"]
    report_lines = [STRIPE_HEADER]
    for i in range(n):
        currency = currencies[i // 300 % len(currencies)]  # runs: most batches one currency
        cents = 100 + i % 977
        amount = str(cents) if currency == "JPY" else f"{cents // 100}.{cents % 100:02d}"
        status = "pending" if i % 97 == 0 else "paid"
        created = "" if i % 5 else "2026-11-01T10:00:00Z"
        order_lines.append(f"o{i},{amount},{currency},{status},{created}\n")
        if i % 79 == 0:
            continue
        charged = cents + (5 if i % 89 == 0 else 0)
        gross = str(charged) if currency == "JPY" else f"{charged // 100}.{charged % 100:02d}"
        if i % 400 == 1 and currency != "JPY":
            gross += "0"  # an exact amount of an unusual shape: parsed by the Python parser
        for t in range(2 if i % 83 == 0 else 1):
            desc = '"a, quoted description"' if i % 50 == 7 else "plain"
            report_lines.append(
                f"t{i}_{t},{currency.lower()},{gross},0.00,{gross},charge,pi_{i}_{t},{desc},o{i}\n"
                if currency != "JPY"
                else f"t{i}_{t},jpy,{gross},0,{gross},charge,pi_{i}_{t},{desc},o{i}\n"
            )
        if i % 71 == 0 and currency == "USD":
            report_lines.append(f"t{i}_r,usd,-1.00,0.00,-1.00,refund,pi_{i}_0,plain,o{i}\n")
        if i % 73 == 0:
            report_lines.append(f"x{i},usd,2.00,0.30,1.70,charge,pi_x{i},plain,ghost{i}\n")
        if i % 61 == 0:
            report_lines.append(f"p{i},usd,-50.00,0.00,-50.00,payout,po_{i},plain,\n")
        if i == n * 3 // 4:
            report_lines.append(extra)
    orders.write_text("".join(order_lines))
    report.write_text("".join(report_lines))
    return orders, report


class InPython:
    """A reader with only its Python rows showing: the engine parses it in Python instead
    of reading the file with DuckDB."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    @property
    def bad_rows(self) -> Any:
        return self.reader.bad_rows

    def iter_compact(self, *, with_time: bool = True) -> Iterator[Any]:
        rows: Iterator[Any] = self.reader.iter_compact(with_time=with_time)
        return rows


def run(orders: Path, report: Path, *, in_python: bool = False, **kwargs: Any) -> Any:
    skip = kwargs.get("skip_bad_rows", False)
    internal: Any = OrdersCSV(orders, skip_bad_rows=skip)
    provider: Any = StripeReportCSV(report, skip_bad_rows=skip)
    if in_python:
        internal, provider = InPython(internal), InPython(provider)
    return reconcile(internal, provider, now=NOW, **kwargs)


def same(a: Any, b: Any) -> None:
    assert a.counts == b.counts
    assert a.totals == b.totals
    assert a.lines == b.lines
    assert a.fees == b.fees and a.net == b.net
    assert a.orders_read == b.orders_read and a.records_read == b.records_read
    assert [(r.line, r.reason) for r in a.bad_rows] == [(r.line, r.reason) for r in b.bad_rows]


# -- DuckDB's read classifies exactly like the Python rows -------------------------------


@pytest.mark.parametrize(
    "currencies",
    [("USD",), ("USD", "EUR"), ("USD", "JPY")],
    ids=["one-currency", "mixed-currencies", "with-zero-decimal"],
)
def test_sql_and_python_reads_classify_identically(
    tmp_path: Path, currencies: tuple[str, ...]
) -> None:
    orders, report = write_files(tmp_path, currencies=currencies)
    since = datetime(2020, 1, 1, tzinfo=timezone.utc)
    fast = run(orders, report)
    same(fast, run(orders, report, in_python=True))
    same(run(orders, report, since=since), run(orders, report, in_python=True, since=since))
    assert sum(fast.counts.values()) > 100 and len(fast.counts) >= 6


@pytest.mark.parametrize(
    ("extra", "line_offset", "reason"),
    [
        ("tb,usd,10.0O,0.00,10.0O,charge,pi_b,plain,o1\n", 0, "'10.0O'"),
        ("tb,usd,10.00,0.30,9.00,charge,pi_b,plain,o1\n", 0, "!= net"),
        ("tb,zzz,10.00,0.30,9.70,charge,pi_b,plain,o1\n", 0, "unknown currency"),
        ("tb,usd,10.00\n", 0, "fields"),
        ('tb,usd,1.00,0.00,1.00,charge,pi_b,"two\nlines",o1\ntc,usd,10.00\n', 2, "fields"),
    ],
    ids=["bad-amount", "bad-net", "bad-currency", "ragged-row", "after-a-multiline-value"],
)
def test_a_bad_row_deep_in_the_file_falls_back_with_file_and_line(
    tmp_path: Path, extra: str, line_offset: int, reason: str
) -> None:
    orders, report = write_files(tmp_path, extra=extra)
    bad_line = report.read_text().splitlines().index(extra.splitlines()[0]) + 1 + line_offset
    with pytest.raises(ReportFormatError) as caught:
        run(orders, report)
    assert caught.value.line == bad_line and caught.value.path == str(report)
    assert reason in str(caught.value)
    fast = run(orders, report, skip_bad_rows=True)
    assert [b.line for b in fast.bad_rows] == [bad_line]
    same(fast, run(orders, report, in_python=True, skip_bad_rows=True))


def test_bad_orders_fall_back_too(tmp_path: Path) -> None:
    orders, report = write_files(tmp_path)
    lines = orders.read_text().splitlines(keepends=True)
    lines[1500] = "o1499x,-1.00,USD,paid,\n"
    lines[1700] = "o1699x,1.00,USD,shipped,\n"
    lines[200] += "\n"  # a blank line before them: not a record, but a line
    orders.write_text("".join(lines))
    with pytest.raises(ReportFormatError, match=r"orders\.csv:1502: negative"):
        run(orders, report)
    result = run(orders, report, skip_bad_rows=True)
    assert [(b.path, b.line) for b in result.bad_rows] == [(str(orders), 1502), (str(orders), 1702)]


def test_skipped_bad_rows_are_found_in_sql_without_the_python_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under skip_bad_rows, the rows the SQL does not accept (bad ones, and exact amounts
    of a shape it leaves to Python) go through the Python parser alone: the files are
    never read row by row in Python, and the report is the Python path's."""
    extra = (
        'tb,usd,10.00,0.30,9.00,charge,pi_b,"two\nlines",o1\n'
        "tc,zzz,1.00,0.00,1.00,charge,pi_c,plain,o2\n"
    )
    orders, report = write_files(tmp_path, extra=extra)
    lines = orders.read_text().splitlines(keepends=True)
    lines[1500] = "o1499x,-1.00,USD,paid,\n"
    lines[200] += "\n"  # a blank line before it: not a record, but a line
    lines[1600] = "o1599,16.000,USD,paid,\n"  # an exact amount the SQL leaves to Python
    orders.write_text("".join(lines))
    expected = run(orders, report, in_python=True, skip_bad_rows=True)
    for reader in (OrdersCSV, StripeReportCSV):
        monkeypatch.setattr(reader, "iter_compact", None)  # the Python read: not called
    fast = run(orders, report, skip_bad_rows=True)
    same(fast, expected)
    at = report.read_text().splitlines().index(extra.splitlines()[0]) + 1
    assert [(Path(b.path).name, b.line) for b in fast.bad_rows] == [
        ("orders.csv", 1502),
        ("report.csv", at + 1),  # the line the row ends on, as csv.reader counts
        ("report.csv", at + 2),
    ]
    assert "!= net" in fast.bad_rows[1].reason and fast.orders_read == 1999  # o1599 is read


class CountedSQL(str):
    """A SQL text that counts how often it is formatted (run)."""

    runs = 0

    def format(self, *args: Any, **kwargs: Any) -> str:
        CountedSQL.runs += 1
        return str(self).format(*args, **kwargs)


@pytest.mark.parametrize(
    ("fixable", "runs"), [(False, 1), (True, 2)], ids=["only-bad-rows", "a-row-for-python"]
)
def test_bad_rows_alone_do_not_run_the_statement_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fixable: bool, runs: int
) -> None:
    """The run leaves the rows the SQL flags out: when the Python parser refuses them all,
    its figures stand; a row the parser accepts runs the statement again with it."""
    import paygate.reconcile._duck as duck

    orders, report = write_files(tmp_path, currencies=("JPY",))  # a report of plain amounts only
    lines = orders.read_text().splitlines(keepends=True)
    lines[1500] = "o1499x,-1,JPY,paid,\n"
    lines[1600] = "o1599,16.0,JPY,paid,\n" if fixable else "o1599,16.,JPY,paid,\n"
    orders.write_text("".join(lines))
    expected = run(orders, report, in_python=True, skip_bad_rows=True)
    CountedSQL.runs = 0
    monkeypatch.setattr(duck, "_RUN_SQL", CountedSQL(duck._RUN_SQL))
    fast = run(orders, report, skip_bad_rows=True)
    same(fast, expected)
    assert CountedSQL.runs == runs and len(fast.bad_rows) == 2 - fixable


def test_bom_blank_lines_and_crlf_read_the_same(tmp_path: Path) -> None:
    orders, report = write_files(tmp_path, 600)
    text = orders.read_text().replace("\n", "\r\n").replace("o300,", "\r\no300,")
    orders.write_bytes(b"\xef\xbb\xbf" + text.encode())
    fast = run(orders, report)
    same(fast, run(orders, report, in_python=True))
    assert fast.orders_read == 600


def test_without_pyarrow_records_from_memory_load_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows from Python load as Arrow batches with pyarrow, as plain lists without it."""
    orders, report = write_files(tmp_path, 300)
    with_arrow = run(orders, report, in_python=True)
    without_pyarrow(monkeypatch)
    result = run(orders, report, in_python=True)
    same(with_arrow, result)
    assert result.orders_read == 300


def test_a_stream_source_reads_like_its_file(tmp_path: Path) -> None:
    orders, report = write_files(tmp_path, 300)
    with orders.open(newline="") as handle:
        result = reconcile(OrdersCSV(handle), StripeReportCSV(report), now=NOW)
    assert result.orders_read == 300
    same(result, run(orders, report))


@pytest.mark.parametrize("copy_of", [1498, 900], ids=["near", "far"])
def test_a_duplicate_order_is_reported_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copy_of: int
) -> None:
    orders, report = write_files(tmp_path)
    lines = orders.read_text().splitlines(keepends=True)
    lines[1500] = lines[copy_of + 1]  # order o<copy_of> again
    orders.write_text("".join(lines))
    with pytest.raises(ValidationError, match=f"'o{copy_of}' appears twice"):
        run(orders, report)
    fast = run(orders, report, skip_bad_rows=True)
    assert [b.reason for b in fast.bad_rows] == [
        f"order 'o{copy_of}' appears twice on the internal side"
    ]
    with pytest.raises(ValidationError, match=f"'o{copy_of}' appears twice"):
        run(orders, report, in_python=True)
    same(fast, run(orders, report, in_python=True, skip_bad_rows=True))


def test_a_run_over_files_does_not_import_pandas(tmp_path: Path) -> None:
    """DuckDB reads the files itself: no pyarrow conversion, which would import pandas
    (~40 MB, 0.15 s) where it is installed. (Rows from Python - iterables, the store, a
    file with a row only the Python parser accepts - load through pyarrow and do.)"""
    orders, report = tmp_path / "orders.csv", tmp_path / "report.csv"
    orders.write_text("order_id,amount,currency,status\n" + "o1,1.00,USD,paid\n" * 1)
    report.write_text(STRIPE_HEADER + "t1,usd,1.00,0.00,1.00,charge,pi_1,plain,o1\n")
    script = f"""
import sys
from paygate.reconcile import OrdersCSV, StripeReportCSV, reconcile
reconcile(OrdersCSV({str(orders)!r}), StripeReportCSV({str(report)!r}))
print("pandas" in sys.modules)
"""
    import os
    import subprocess

    import paygate

    source = str(Path(paygate.__file__).parents[1])  # this paygate, not an installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("loader", ["pyarrow", "lists"])
def test_an_amount_past_64_bits_is_a_typed_error(
    monkeypatch: pytest.MonkeyPatch, loader: str
) -> None:
    """The engine holds minor units as BIGINT: 2**63 cents and more (92 quadrillion
    dollars) are refused with a ValidationError naming the side, from either load path."""
    from paygate.money import Money
    from paygate.reconcile import OrderRecord, ProviderRecord

    if loader == "lists":
        without_pyarrow(monkeypatch)
    huge = Money(2**63, "USD")
    with pytest.raises(ValidationError, match="in orders does not fit in 64 bits"):
        reconcile([OrderRecord("o1", huge, "paid")], [])
    record = ProviderRecord("stripe", "t1", "payment", "succeeded", "o1", huge)
    with pytest.raises(ValidationError, match="in records does not fit in 64 bits"):
        reconcile([], [record])
