"""The pyarrow fast path of the CSV readers: exact amounts, the same classification as the
pure-Python path, and the fall back to it (with file and line) on anything unusual."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paygate import ValidationError
from paygate.reconcile import (
    OrdersCSV,
    ReportFormatError,
    StripeReportCSV,
    _arrow,
    reconcile,
)
from paygate.reconcile._batch import OrderBatch, ProviderBatch
from paygate.reconcile._common import major_to_minor, minor_int

pa = pytest.importorskip("pyarrow")

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
STRIPE_HEADER = (
    "balance_transaction_id,currency,gross,fee,net,reporting_category,"
    "payment_intent_id,description,payment_metadata[order_id]\n"
)


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Arrow batches of ~2 KB (many per test file); counts the batches Arrow yields."""
    monkeypatch.setattr(_arrow, "BLOCK_BYTES", 2048)
    monkeypatch.setattr(_arrow, "MIN_ARROW_BYTES", 0)  # Arrow even for these small files
    seen = {"batches": 0}
    real = _arrow.record_batches

    def counting(*args: Any, **kwargs: Any) -> Iterator[dict[int, Any]]:
        for batch in real(*args, **kwargs):
            seen["batches"] += 1
            yield batch

    monkeypatch.setattr("paygate.reconcile._csv.record_batches", counting)
    monkeypatch.setattr("paygate.reconcile._stripe.record_batches", counting)
    return seen


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


def run(orders: Path, report: Path, **kwargs: Any) -> Any:
    return reconcile(
        OrdersCSV(orders, **kwargs), StripeReportCSV(report, **kwargs), now=NOW, **kwargs
    )


def same(a: Any, b: Any) -> None:
    assert a.counts == b.counts
    assert a.totals == b.totals
    assert a.lines == b.lines
    assert a.fees == b.fees and a.net == b.net
    assert a.orders_read == b.orders_read and a.records_read == b.records_read
    assert [(r.line, r.reason) for r in a.bad_rows] == [(r.line, r.reason) for r in b.bad_rows]


# -- amounts ----------------------------------------------------------------------------

amount_texts = st.one_of(
    st.from_regex(r"\A-?[0-9]{1,22}(\.[0-9]{0,5})?\Z"),
    st.sampled_from(["", "-", ".", "1.", ".5", "+1.00", "1e3", " 1.00", "1,00", "１.00", "NaN"]),
    st.text(max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(amount_texts, min_size=1, max_size=6), st.sampled_from(["USD", "JPY", "BHD"]))
def test_minor_units_agree_with_the_python_parser(texts: list[str], currency: str) -> None:
    arrow = _arrow.load_arrow()
    assert arrow is not None
    exponent = {"USD": 2, "JPY": 0, "BHD": 3}[currency]

    def python(text: str) -> int:
        return major_to_minor(text, currency)

    try:
        expected: list[int] | None = [python(text) for text in texts]
    except ValidationError:
        expected = None
    try:
        got: list[int] | None = _arrow.minor_units(arrow, pa.array(texts), exponent, python)
    except ValidationError:
        got = None
    assert got == expected
    if got is not None:
        assert all(type(value) is int for value in got)  # never a float


def test_minor_units_are_exact_beyond_int64_and_for_minor_unit_files() -> None:
    arrow = _arrow.load_arrow()
    assert arrow is not None
    huge = "99999999999999999999.99"  # more than an int64 (and a double's 53 bits) holds
    values = _arrow.minor_units(
        arrow, pa.array(["0.10", huge, "-0.07"]), 2, lambda text: major_to_minor(text, "USD")
    )
    assert values == [10, 9999999999999999999999, -7]
    assert _arrow.minor_units(arrow, pa.array(["1999", "-5"]), 0, minor_int) == [1999, -5]
    with pytest.raises(ValidationError, match="not an integer amount"):
        _arrow.minor_units(arrow, pa.array(["1999", "19.99"]), 0, minor_int)


# -- the Arrow path classifies exactly like the pure-Python one -------------------------


@pytest.mark.parametrize(
    "currencies",
    [("USD",), ("USD", "EUR"), ("USD", "JPY")],
    ids=["one-currency", "mixed-currencies", "with-zero-decimal"],
)
def test_arrow_and_python_paths_classify_identically(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_batches: dict[str, int],
    currencies: tuple[str, ...],
) -> None:
    orders, report = write_files(tmp_path, currencies=currencies)
    kinds = {type(b) for b in OrdersCSV(orders).iter_batches(with_time=False)}
    kinds |= {type(b) for b in StripeReportCSV(report).iter_batches(with_time=False)}
    # batches of mixed currencies become rows (built from the Arrow columns)
    assert kinds == (
        {OrderBatch, ProviderBatch} if len(currencies) == 1 else {OrderBatch, ProviderBatch, list}
    )
    small_batches["batches"] = 0
    fast = run(orders, report)
    assert small_batches["batches"] > 20  # Arrow really read both files, in many batches
    timed = reconcile(
        OrdersCSV(orders),
        StripeReportCSV(report),
        now=NOW,
        since=datetime(2020, 1, 1, tzinfo=timezone.utc),
    )
    without_pyarrow(monkeypatch)
    small_batches["batches"] = 0
    slow = run(orders, report)
    assert small_batches["batches"] == 0
    same(fast, slow)
    same(
        timed,
        reconcile(
            OrdersCSV(orders),
            StripeReportCSV(report),
            now=NOW,
            since=datetime(2020, 1, 1, tzinfo=timezone.utc),
        ),
    )
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
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    small_batches: dict[str, int],
    extra: str,
    line_offset: int,
    reason: str,
) -> None:
    orders, report = write_files(tmp_path, extra=extra)
    bad_line = report.read_text().splitlines().index(extra.splitlines()[0]) + 1 + line_offset
    with pytest.raises(ReportFormatError) as caught:
        run(orders, report)
    assert caught.value.line == bad_line and caught.value.path == str(report)
    assert reason in str(caught.value)
    assert small_batches["batches"] > 10  # Arrow batches went to the engine before it
    fast = run(orders, report, skip_bad_rows=True)
    assert [b.line for b in fast.bad_rows] == [bad_line]
    without_pyarrow(monkeypatch)
    slow = run(orders, report, skip_bad_rows=True)
    same(fast, slow)


def test_bad_orders_fall_back_too(tmp_path: Path, small_batches: dict[str, int]) -> None:
    orders, report = write_files(tmp_path)
    lines = orders.read_text().splitlines(keepends=True)
    lines[1500] = "o1499x,-1.00,USD,paid,\n"
    lines[1700] = "o1699x,1.00,USD,shipped,\n"
    lines[200] += "\n"  # a blank line before them: not a record, but a line
    orders.write_text("".join(lines))
    with pytest.raises(ReportFormatError, match=r"orders\.csv:1502: negative"):
        run(orders, report)
    assert small_batches["batches"] > 10
    result = run(orders, report, skip_bad_rows=True)
    assert [(b.path, b.line) for b in result.bad_rows] == [(str(orders), 1502), (str(orders), 1702)]


def test_bom_blank_lines_and_crlf_read_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_batches: dict[str, int]
) -> None:
    orders, report = write_files(tmp_path, 600)
    text = orders.read_text().replace("\n", "\r\n").replace("o300,", "\r\no300,")
    orders.write_bytes(b"\xef\xbb\xbf" + text.encode())
    fast = run(orders, report)
    assert small_batches["batches"] > 0
    without_pyarrow(monkeypatch)
    same(fast, run(orders, report))
    assert fast.orders_read == 600


def test_without_pyarrow_the_pure_python_path_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_batches: dict[str, int]
) -> None:
    orders, report = write_files(tmp_path, 300)
    without_pyarrow(monkeypatch)
    assert _arrow.load_arrow() is None
    result = run(orders, report)
    assert small_batches["batches"] == 0
    assert result.orders_read == 300


def test_small_files_take_the_python_path(tmp_path: Path) -> None:
    orders, _ = write_files(tmp_path, 300)
    assert orders.stat().st_size < _arrow.MIN_ARROW_BYTES
    assert _arrow.arrow_for(orders) is None
    big = tmp_path / "big.csv"
    with big.open("w") as handle:
        handle.write("order_id,amount,currency,status\n")
        handle.writelines(f"o{i},1.00,USD,paid\n" for i in range(_arrow.MIN_ARROW_BYTES // 16))
    assert _arrow.arrow_for(big) is not None


def test_a_stream_source_takes_the_python_path(
    tmp_path: Path, small_batches: dict[str, int]
) -> None:
    orders, report = write_files(tmp_path, 300)
    with orders.open(newline="") as handle:
        result = reconcile(OrdersCSV(handle), StripeReportCSV(report), now=NOW)
    assert result.orders_read == 300
    assert small_batches["batches"] > 0  # the report (a path) still went through Arrow
    assert _arrow.arrow_for(orders) is not None and _arrow.arrow_for(handle) is None


@pytest.mark.parametrize("copy_of", [1498, 900], ids=["same-batch", "earlier-batch"])
def test_a_duplicate_order_is_reported_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_batches: dict[str, int], copy_of: int
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
    without_pyarrow(monkeypatch)
    with pytest.raises(ValidationError, match=f"'o{copy_of}' appears twice"):
        run(orders, report)
    same(fast, run(orders, report, skip_bad_rows=True))


def test_the_reader_thread_stops_when_reading_stops_early(
    tmp_path: Path, small_batches: dict[str, int]
) -> None:
    import threading

    def readers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "paygate-csv-reader"}

    orders, report = write_files(tmp_path)
    before = readers()
    batches = OrdersCSV(orders).iter_batches(with_time=False)
    assert isinstance(next(batches), OrderBatch)
    assert len(readers() - before) == 1
    batches.close()  # type: ignore[attr-defined]
    assert not readers() - before
    # a run that fails midway (a duplicate order) stops its reader too
    lines = orders.read_text().splitlines(keepends=True)
    orders.write_text("".join([*lines[:100], lines[1], *lines[100:]]))
    with pytest.raises(ValidationError, match="appears twice"):
        run(orders, report)
    assert not readers() - before


def test_the_reader_and_kernels_allocate_from_their_own_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_batches: dict[str, int]
) -> None:
    arrow = _arrow.load_arrow()
    assert arrow is not None
    assert arrow.pool.backend_name in ("jemalloc", "system")
    # a kernel called through arrow.pc allocates from that pool, not the default one
    before = arrow.pool.bytes_allocated()
    doubled = arrow.pc.add(pa.array(range(10_000), pa.int64()), 1)
    assert arrow.pool.bytes_allocated() >= before + 80_000
    del doubled

    # where pyarrow has no jemalloc (Windows wheels), the system allocator
    def no_jemalloc() -> None:
        raise pa.ArrowNotImplementedError("jemalloc support is not built")

    monkeypatch.setattr(pa, "jemalloc_memory_pool", no_jemalloc)
    fallback = _arrow.load_arrow()
    assert fallback is not None
    assert fallback.pool.backend_name == "system"
    orders, report = write_files(tmp_path, 300)
    result = run(orders, report)
    assert small_batches["batches"] > 0
    assert result.orders_read == 300


def test_reading_with_arrow_does_not_import_pandas(tmp_path: Path) -> None:
    """pyarrow imports pandas (~40 MB, 0.15 s) when it converts a Python object; the
    readers build their few Arrow values from buffers instead. Fast and fallback paths."""
    orders, report = write_files(tmp_path, 600, currencies=("USD", "EUR", "JPY"))
    script = f"""
import sys
from paygate.reconcile import OrdersCSV, StripeReportCSV, _arrow, reconcile
_arrow.MIN_ARROW_BYTES = 0
_arrow.BLOCK_BYTES = 2048
reconcile(OrdersCSV({str(orders)!r}), StripeReportCSV({str(report)!r}))
assert _arrow.load_arrow() is not None
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


@pytest.mark.parametrize(
    ("rows", "amount_unit", "usual"),
    [
        ([("o1", "19.99", "USD", "paid", ""), ("o2", "0.50", "USD", "pending", "")], "major", True),
        ([("o1", "1999", "USD", "paid", ""), ("o2", "5", "USD", "paid", "")], "minor", True),
        ([("o1", "19.99", "USD", "paid", ""), ("o2", "3.00", "EUR", "paid", "")], "major", False),
        ([("o1", "19.99", "USD", "paid", ""), ("o2", "5", "USD", "paid", "")], "major", False),
        ([("o1", "19.99", "USD", "paid", ""), ("o2", "-5.00", "USD", "paid", "")], "major", False),
        ([("o1", "19.99", "USD", "paid", ""), ("o2", "5.00", "USD", "Paid ", "")], "major", False),
        ([("o1", "19.99", "USD", "paid", ""), ("", "5.00", "USD", "paid", "")], "major", False),
        (
            [("o1", "19.99", "USD", "paid", "1.00"), ("o2", "5.00", "USD", "paid", "")],
            "major",
            False,
        ),
        ([("o1", "19.99", "XYZ", "paid", ""), ("o2", "5.00", "XYZ", "paid", "")], "major", False),
    ],
)
def test_orders_checked_on_the_helper_thread_make_the_same_batch(
    tmp_path: Path, rows: list[tuple[str, ...]], amount_unit: Any, usual: bool
) -> None:
    """The usual batch is checked in Arrow on the reader's thread; the batch it makes is
    the one the main thread makes from the same columns, and any other batch is left to
    the main thread."""
    arrow = _arrow.load_arrow()
    assert arrow is not None
    path = tmp_path / "orders.csv"
    path.write_text("order_id,amount,currency,status,refunded\n")
    reader = OrdersCSV(path, amount_unit=amount_unit)
    pos = {"order_id": 0, "amount": 1, "currency": 2, "status": 3, "created_at": None}
    pos["refunded"] = 4
    columns: dict[int, Any] = {i: pa.array([row[i] for row in rows]) for i in range(5)}
    words = list(reader.status_words)
    statuses = list(reader.status_words.values())
    prepared = reader._prepare(arrow, pos, words)(columns)
    assert (prepared is not None) is usual
    plain = reader._arrow_batch(arrow, columns, pos, False, statuses)
    if prepared is not None:
        fast = reader._arrow_batch(
            arrow, {**columns, _arrow.PREPARED: prepared}, pos, False, statuses
        )
        assert fast == plain
        assert fast is not None and all(type(a) is int for a in fast.amounts)
