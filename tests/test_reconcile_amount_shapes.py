"""Amount texts at the edges, read from files by DuckDB (normalized in SQL, the rows it
flags decided by the Python parser): every text gets exactly the Python parser's minor
units or the Python parser's bad row, for currencies of exponent 0, 2, 3 and 4, on both
sides (an orders file and a Stripe report); a value past 2**63 - 1 minor units raises the
typed error. These pin the behaviour the SQL amount parser must keep whatever its form.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from paygate.errors import ValidationError
from paygate.reconcile import OrdersCSV, StripeReportCSV, reconcile
from paygate.reconcile._common import major_to_minor

STRIPE_HEADER = (
    "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
    "source_id,charge_id,payment_intent_id,payment_metadata[order_id]\n"
)

#: the shapes: the canonical one, trailing zeros beyond the exponent, fewer places, a
#: leading ``+``, leading zeros, exponents, ``.5``, ``5.``, spaces, signs, huge values
#: (below 2**63 minor units in every currency used here only where the text says so)
TEXTS = [
    "12.34", "12.340", "12.3400000", "12.3", "12.", ".5", "0.5", "-.5", "+12.34", "+12", "12",
    "-12", "0012.34", "0.00", "-0.00", "-0", "1e2", "1E2", "1.5e1", "12.345", "12.3450",
    " 12.34", "12.34 ", "1_000.00", "1,000.00", "0x10", "", "-", ".", "abc", "NaN",
    "1.2345", "1.23450", "1.234", "1.2340", "5", "5.", "5.0", "5.00", "5.000", "5.0000",
    "5.00000", "99999999999999.99", "100000000000000.00", "123456789012345.67",
    "999999999999.999", "9999999999.9999", "12345678901234567",
]  # fmt: skip

#: a few of them spelled out: (currency, text) -> minor units, None for a bad row
PINNED = {
    ("USD", "12.340"): 1234, ("USD", "12.3"): 1230, ("USD", "0012.34"): 1234,
    ("USD", "12"): 1200, ("USD", "-0.00"): 0, ("USD", "12.345"): None, ("USD", "5."): None,
    ("USD", ".5"): None, ("USD", "+12"): None, ("USD", "1e2"): None,
    ("USD", "123456789012345.67"): 12345678901234567, ("JPY", "5.00000"): 5,
    ("JPY", "12.3"): None, ("KWD", "12.3450"): 12345, ("KWD", "1.2345"): None,
    ("CLF", "1.2345"): 12345, ("CLF", "9999999999.9999"): 99999999999999,
}  # fmt: skip

CURRENCIES = ["JPY", "USD", "KWD", "CLF"]


def expected(text: str, currency: str) -> int | None:
    try:
        value = major_to_minor(text, currency)
    except ValidationError:
        return None
    return value if abs(value) < 2**63 else None


def usable(currency: str) -> list[str]:
    """The texts that are bad rows or fit in 64 bits of minor units in ``currency``."""
    out = []
    for text in TEXTS:
        try:
            value = major_to_minor(text, currency)
        except ValidationError:
            out.append(text)
            continue
        if abs(value) < 2**63:
            out.append(text)
    return out


def csv_cell(text: str) -> str:
    return f'"{text}"' if "," in text else text


def test_the_pinned_values_are_the_python_parsers() -> None:
    for (currency, text), value in PINNED.items():
        assert expected(text, currency) == value, (currency, text)
        assert text in usable(currency)


@pytest.mark.parametrize("currency", CURRENCIES)
def test_order_amounts_at_the_edges_read_as_the_python_parser_reads_them(
    tmp_path: Path, currency: str
) -> None:
    texts = usable(currency)
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,amount,currency,status\n"
        + "".join(f"o{i},{csv_cell(t)},{currency},paid\n" for i, t in enumerate(texts)),
        encoding="utf-8",
    )
    report = reconcile(OrdersCSV(path, skip_bad_rows=True), [], skip_bad_rows=True)
    got = {
        line.order_id: line.internal_amount.amount
        for line in report.lines
        if line.internal_amount is not None
    }
    bad_lines = sorted(row.line for row in report.bad_rows)
    want_bad = []
    for i, text in enumerate(texts):
        value = expected(text, currency)
        if value is None or value < 0:  # a negative order amount is a bad row too
            want_bad.append(i + 2)
            assert f"o{i}" not in got, text
        else:
            assert got[f"o{i}"] == value, text
    assert bad_lines == want_bad
    assert report.orders_read == len(texts) - len(want_bad)


@pytest.mark.parametrize("currency", CURRENCIES)
def test_report_amounts_at_the_edges_read_as_the_python_parser_reads_them(
    tmp_path: Path, currency: str
) -> None:
    texts = usable(currency)
    path = tmp_path / "report.csv"
    path.write_text(
        STRIPE_HEADER
        + "".join(
            f"t{i},2026-11-01 10:00:00,{currency.lower()},{csv_cell(t)},0,{csv_cell(t)},"
            f"charge,ch{i},ch{i},pi{i},x{i}\n"
            for i, t in enumerate(texts)
        ),
        encoding="utf-8",
    )
    report = reconcile([], StripeReportCSV(path, skip_bad_rows=True), skip_bad_rows=True)
    got = {
        line.order_id: line.provider_amount.amount
        for line in report.lines
        if line.provider_amount is not None
    }
    bad_lines = sorted(row.line for row in report.bad_rows)
    want_bad = []
    for i, text in enumerate(texts):
        value = expected(text, currency)
        if value is None:
            want_bad.append(i + 2)
            assert f"x{i}" not in got, text
        else:
            assert got[f"x{i}"] == abs(value), text
    assert bad_lines == want_bad
    assert report.records_read == len(texts) - len(want_bad)


@pytest.mark.parametrize(
    ("currency", "text"),
    [
        ("USD", "92233720368547758.08"),
        ("USD", "-92233720368547758.09"),
        ("USD", "9999999999999999999"),
        ("JPY", "9223372036854775808"),
        ("KWD", "9223372036854775.808"),
        ("CLF", "922337203685477.5808"),
    ],
)
@pytest.mark.parametrize("skip", [True, False])
def test_amounts_past_64_bits_raise_the_typed_error(
    tmp_path: Path, currency: str, text: str, skip: bool
) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text(
        f"order_id,amount,currency,status\no1,1,{currency},paid\no2,{text.lstrip('-')},"
        f"{currency},paid\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match="does not fit in 64 bits"):
        reconcile(OrdersCSV(orders, skip_bad_rows=skip), [], skip_bad_rows=skip)
    report = tmp_path / "report.csv"
    report.write_text(
        STRIPE_HEADER
        + f"t1,2026-11-01 10:00:00,{currency},{text},0,{text},charge,ch1,ch1,pi1,o1\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match="does not fit in 64 bits"):
        reconcile([], StripeReportCSV(report, skip_bad_rows=skip), skip_bad_rows=skip)


def test_the_normalization_does_no_per_row_string_surgery_or_map_lookup(tmp_path: Path) -> None:
    """The costly forms stay out of the per-row SQL: a ``MAP`` literal (its lookup compares
    the words one by one: three times an ``ENUM`` cast's cost), a regular expression on the
    currency and the amount digits rebuilt as a string (``replace``, a copy a value: as
    much as the whole shape test). At a million rows they were ~0.45 s of the first
    statement's CPU."""
    from paygate.reconcile import _duck

    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,amount,currency,status\no1,1.00,USD,paid\n", encoding="utf-8")
    report = tmp_path / "report.csv"
    report.write_text(
        STRIPE_HEADER + "t1,2026-11-01 10:00:00,usd,1.00,0.10,0.90,charge,ch1,ch1,pi1,o1\n",
        encoding="utf-8",
    )
    for sql in (
        _duck._orders_from_csv(OrdersCSV(orders), False),
        _duck._records_from_csv(StripeReportCSV(report), False),
    ):
        assert sql is not None
        assert "MAP {" not in sql
        assert "(replace(" not in sql
        assert "[A-Za-z]{3}" not in sql
