"""Each reader against fixtures written from the providers' documented formats."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paygate import InvalidAmount, Money
from paygate.reconcile import (
    Case,
    GenericCSV,
    OrdersCSV,
    OrderStatus,
    PayPalSettlementReport,
    PayPalTransactionSearch,
    RecordKind,
    RecordStatus,
    ReportFormatError,
    SquarePayments,
    StripeBalanceTransactions,
    StripeReportCSV,
    orders_from_store,
    reconcile,
)
from paygate.reconcile._common import major_to_minor
from tests.conftest import load_reference_json

FIXTURES = Path(__file__).parent / "fixtures" / "reconcile"
NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)
USD = "USD"


def usd(text: str) -> Money:
    return Money.of(text, USD)


def summary(report: Any) -> dict[str, list[str | None]]:
    by_case: dict[str, list[str | None]] = {}
    for line in report.lines:
        by_case.setdefault(str(line.case), []).append(line.order_id)
    return by_case


def orders() -> OrdersCSV:
    return OrdersCSV(FIXTURES / "orders.csv")


# -- orders ---------------------------------------------------------------------------


def test_orders_csv() -> None:
    records = list(orders())
    assert len(records) == 10
    first = records[0]
    assert first.order_id == "ord_1001" and first.amount == usd("19.99")
    assert first.status is OrderStatus.PAID
    assert first.created_at == datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc)
    assert records[8].amount == Money.of("20.00", "EUR")


def test_orders_csv_with_a_column_mapping_minor_units_and_own_status_words() -> None:
    text = "Order No,Total,State\nA-1,1999,Bezahlt\nA-2,500,offen\n"
    reader = OrdersCSV(
        io.StringIO(text),
        columns={"order_id": "Order No", "amount": "Total", "status": "State", "currency": ""},
        amount_unit="minor",
        currency="EUR",
        status_map={"bezahlt": "paid", "offen": "pending"},
    )
    assert [(r.order_id, r.amount, r.status) for r in reader] == [
        ("A-1", Money(1999, "EUR"), OrderStatus.PAID),
        ("A-2", Money(500, "EUR"), OrderStatus.PENDING),
    ]


# -- Stripe -----------------------------------------------------------------------------


def test_stripe_itemized_report_every_case() -> None:
    provider = StripeReportCSV(FIXTURES / "stripe_itemized_balance.csv")
    records = list(provider)
    charge = records[0]
    assert charge.kind is RecordKind.PAYMENT and charge.status is RecordStatus.SUCCEEDED
    assert (charge.amount, charge.fee, charge.net) == (usd("19.99"), usd("0.88"), usd("19.11"))
    assert charge.payment_id == "pi_3QaA001" and charge.order_id == "ord_1001"
    refund = records[3]
    assert refund.kind is RecordKind.REFUND and refund.amount == usd("5.00")
    assert refund.net == usd("-5.00")
    assert records[-1].kind is RecordKind.OTHER and records[-1].order_id is None  # payout

    report = reconcile(orders(), StripeReportCSV(FIXTURES / "stripe_itemized_balance.csv"), now=NOW)
    assert summary(report) == {
        "unpaid_order_charged": ["ord_1002"],
        "missing": ["ord_1003"],
        "unknown_refund": ["ord_1004"],
        "double_charge": ["ord_1005"],
        "amount_mismatch": ["ord_1006"],
        "unknown_dispute": ["ord_1008"],
        "currency_mismatch": ["ord_1009"],
        "orphan": ["ord_9999"],
    }
    assert report.counts[Case.MATCHED] == 2  # ord_1001, and ord_1010 whose refund is known
    assert report.counts[Case.NOT_CHARGED] == 1  # ord_1007 failed, nothing charged
    assert report.lines_for(Case.DOUBLE_CHARGE)[0].payment_ids == ("pi_3QaA105",)
    # every fee in the file, the dispute fee and the Radar fee row included
    assert report.fees == {USD: usd("24.01")}
    assert report.net == {USD: usd("27.98")}


def test_stripe_balance_transactions_from_the_api() -> None:
    objects = [
        {
            "id": "txn_1",
            "object": "balance_transaction",
            "amount": 1999,
            "currency": "usd",
            "fee": 88,
            "net": 1911,
            "reporting_category": "charge",
            "created": 1761991262,
            "source": {
                "id": "ch_1",
                "payment_intent": "pi_1",
                "metadata": {"order_id": "ord_1001"},
            },
        },
        {
            "id": "txn_2",
            "object": "balance_transaction",
            "amount": -500,
            "currency": "usd",
            "fee": 0,
            "net": -500,
            "reporting_category": "refund",
            "created": 1761991300,
            "source": {
                "id": "re_1",
                "charge": {"id": "ch_1", "metadata": {"order_id": "ord_1001"}},
            },
        },
    ]
    records = list(StripeBalanceTransactions(objects))
    assert [(r.kind, r.amount, r.order_id, r.payment_id) for r in records] == [
        (RecordKind.PAYMENT, usd("19.99"), "ord_1001", "pi_1"),
        (RecordKind.REFUND, usd("5.00"), "ord_1001", "ch_1"),
    ]
    assert records[0].occurred_at == datetime.fromtimestamp(1761991262, tz=timezone.utc)


# -- PayPal -----------------------------------------------------------------------------


def test_paypal_settlement_file() -> None:
    provider = PayPalSettlementReport(FIXTURES / "STL-20261101.01.009.CSV")
    records = list(provider)
    assert len(records) == 9
    payment = records[0]
    assert (payment.order_id, payment.amount, payment.fee, payment.net) == (
        "ord_1001", usd("19.99"), usd("0.88"), usd("19.11")
    )  # fmt: skip
    assert payment.occurred_at == datetime(2026, 11, 1, 18, 1, 2, tzinfo=timezone.utc)
    refund = records[3]
    assert refund.kind is RecordKind.REFUND and refund.net == usd("-5.00")
    assert refund.payment_id == "4WF32287AK5021437"
    assert records[-1].kind is RecordKind.OTHER  # T0400 withdrawal

    report = reconcile(orders(), PayPalSettlementReport(FIXTURES / "STL-20261101.01.009.CSV"),
                       now=NOW)  # fmt: skip
    lines = summary(report)
    assert lines["unpaid_order_charged"] == ["ord_1002"]
    assert lines["unknown_refund"] == ["ord_1004"]
    assert lines["double_charge"] == ["ord_1005"]
    assert lines["amount_mismatch"] == ["ord_1006"]
    assert lines["orphan"] == ["ord_9999"]


def test_paypal_transaction_search_pages() -> None:
    page = FIXTURES / "paypal_transactions_page1.json"
    records = list(PayPalTransactionSearch([page]))
    assert records[0].fee == usd("0.88") and records[0].net == usd("19.11")
    assert records[1].status is RecordStatus.PENDING
    assert records[2].status is RecordStatus.SUCCEEDED  # V: reversed later, but it was paid
    assert records[3].kind is RecordKind.REFUND and records[3].fee == usd("-0.44")
    assert records[4].status is RecordStatus.FAILED  # D: denied
    assert records[5].kind is RecordKind.DISPUTE  # T1201 chargeback

    report = reconcile(orders(), PayPalTransactionSearch(page), now=NOW)
    assert report.counts[Case.IN_PROGRESS] == 1  # ord_1002: pending at PayPal
    assert report.counts[Case.BOTH_FAILED] == 1  # ord_1007
    assert summary(report)["unknown_refund"] == ["ord_1004"]
    assert summary(report)["unknown_dispute"] == ["ord_1008"]


def _validator(spec: dict[str, Any], schema_name: str) -> jsonschema.Draft4Validator:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    return jsonschema.Draft4Validator(schema)


def test_paypal_fixture_matches_the_transaction_search_spec() -> None:
    spec = load_reference_json("paypal", "reporting_transactions_v1.json")
    page = json.loads((FIXTURES / "paypal_transactions_page1.json").read_text())
    errors = list(_validator(spec, "search_response").iter_errors(page))
    assert errors == []
    # and no field the spec does not define
    declared = set(spec["components"]["schemas"]["transaction_info"]["properties"])
    for detail in page["transaction_details"]:
        assert set(detail["transaction_info"]) <= declared
    # the validator is not blind: a malformed amount is caught
    page["transaction_details"][0]["transaction_info"]["transaction_amount"]["value"] = "1,00"
    assert list(_validator(spec, "search_response").iter_errors(page))


# -- Square -----------------------------------------------------------------------------


def test_square_list_payments_pages() -> None:
    pages = [FIXTURES / "square_payments_page1.json", FIXTURES / "square_payments_page2.json"]
    records = list(SquarePayments(pages))
    assert [r.kind for r in records] == [RecordKind.PAYMENT] * 2 + [RecordKind.REFUND] + [
        RecordKind.PAYMENT
    ] * 3
    assert records[0].fee == Money(88, USD) and records[0].net == Money(1911, USD)
    assert records[2].amount == Money(500, USD)  # refunded_money of ord_1004
    assert records[4].status is RecordStatus.PENDING  # APPROVED, not captured
    assert records[5].net == Money(1300 - 65, USD)  # tip included in what was received

    report = reconcile(orders(), SquarePayments(pages), now=NOW)
    assert summary(report)["unknown_refund"] == ["ord_1004"]
    assert summary(report)["amount_mismatch"] == ["ord_1006"]
    assert report.counts[Case.BOTH_FAILED] == 1


def test_square_fixture_matches_the_list_payments_spec() -> None:
    spec = load_reference_json("square", "api.json")
    declared = set(spec["components"]["schemas"]["Payment"]["properties"])
    for name in ("square_payments_page1.json", "square_payments_page2.json"):
        page = json.loads((FIXTURES / name).read_text())
        assert list(_validator(spec, "ListPaymentsResponse").iter_errors(page)) == []
        for payment in page["payments"]:
            assert set(payment) <= declared
    bad = {"payments": [{"id": "x", "amount_money": {"amount": "12.00", "currency": "USD"}}]}
    assert list(_validator(spec, "ListPaymentsResponse").iter_errors(bad))


# -- generic CSV --------------------------------------------------------------------------


def test_generic_csv() -> None:
    records = list(GenericCSV(FIXTURES / "generic_provider.csv"))
    assert records[2].status is RecordStatus.FAILED  # "declined"
    assert records[4].kind is RecordKind.REFUND and records[4].amount == usd("15.00")
    report = reconcile(orders(), GenericCSV(FIXTURES / "generic_provider.csv"), now=NOW)
    assert summary(report)["unpaid_order_charged"] == ["ord_1002"]
    assert report.counts[Case.BOTH_FAILED] == 1


# -- bad rows and wrong files ---------------------------------------------------------------


STRIPE_HEADER = (
    "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
    "payment_intent_id,payment_metadata[order_id]\n"
)


def test_a_malformed_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_text(
        STRIPE_HEADER
        + "txn_1,2026-11-01 10:00:00,usd,10.00,0.30,9.70,charge,pi_1,o1\n"
        + "txn_2,2026-11-01 10:00:00,usd,10.0O,0.30,9.70,charge,pi_2,o2\n"
    )
    with pytest.raises(ReportFormatError, match=r"report\.csv:3: .*'10\.0O'") as caught:
        reconcile([], StripeReportCSV(path))
    assert caught.value.line == 3 and caught.value.path == str(path)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("txn_2,2026-11-01 10:00:00,usd,10.00,0.30,9.00,charge,pi_2,o2", "!= net"),
        ("txn_2,2026-11-01 10:00:00,zzz,10.00,0.30,9.70,charge,pi_2,o2", "unknown currency"),
        ("txn_2,2026-11-01 10:00:00,usd,10.001,0.30,9.70,charge,pi_2,o2", "precision"),
        ("txn_2,usd,10.00", "fields"),
    ],
)
def test_skip_bad_rows_counts_and_lists_them(tmp_path: Path, row: str, reason: str) -> None:
    path = tmp_path / "report.csv"
    path.write_text(
        STRIPE_HEADER
        + "txn_1,2026-11-01 10:00:00,usd,10.00,0.30,9.70,charge,pi_1,o1\n"
        + row
        + "\n"
    )
    from paygate.reconcile import OrderRecord

    report = reconcile(
        [OrderRecord("o1", usd("10.00"), "paid")], StripeReportCSV(path, skip_bad_rows=True)
    )
    assert report.counts == {Case.MATCHED: 1}
    assert [(b.line, reason in b.reason) for b in report.bad_rows] == [(3, True)]
    assert not report.agrees  # a skipped row still needs a look


def test_orders_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,amount,currency,status\no1,10.00,USD,paid\no2,-1.00,USD,paid\n"
        'o3,"1,00",USD,paid\no4,5.00,USD,shipped\n,5.00,USD,paid\n'
    )
    with pytest.raises(ReportFormatError, match=r"orders\.csv:3: negative"):
        list(OrdersCSV(path))
    reader = OrdersCSV(path, skip_bad_rows=True)
    report = reconcile(reader, [])
    assert report.orders_read == 1
    assert [b.line for b in report.bad_rows] == [3, 4, 5, 6]
    assert "unknown order status 'shipped'" in report.bad_rows[2].reason


def test_stl_bad_rows(tmp_path: Path) -> None:
    text = (FIXTURES / "STL-20261101.01.009.CSV").read_text()
    broken = text.replace('"CR",1999,"USD"', '"XX",1999,"USD"')
    path = tmp_path / "STL.CSV"
    path.write_text(broken)
    with pytest.raises(ReportFormatError, match=r"STL\.CSV:5: debit/credit must be CR or DR"):
        list(PayPalSettlementReport(path))
    miscounted = text.replace('"SC",9', '"SC",8')
    path.write_text(miscounted)
    reader = PayPalSettlementReport(path, skip_bad_rows=True)
    assert len(list(reader)) == 9
    assert ["SC says 8" in b.reason for b in reader.bad_rows] == [True]


@pytest.mark.parametrize(
    ("reader", "content", "message"),
    [
        (StripeReportCSV, "order_id,amount,currency,status\n", "not a Stripe itemized"),
        (StripeReportCSV, b"PK\x03\x04\x00\x00binary", "binary data"),
        (StripeReportCSV, b"\xff\xfe\x00garbage", "not a UTF-8"),
        (PayPalSettlementReport, STRIPE_HEADER, "RH report header"),
        (OrdersCSV, STRIPE_HEADER, "missing column"),
        (GenericCSV, "a,b\n", "not a provider CSV"),
    ],
)
def test_wrong_file_type_is_refused_up_front(
    tmp_path: Path, reader: Any, content: str | bytes, message: str
) -> None:
    path = tmp_path / "file.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ReportFormatError, match=message):
        reader(path)


def test_json_readers_refuse_other_json(tmp_path: Path) -> None:
    path = tmp_path / "page.json"
    path.write_text('{"data": []}')
    with pytest.raises(ReportFormatError, match="not a PayPal Transaction Search"):
        list(PayPalTransactionSearch(path))
    with pytest.raises(ReportFormatError, match="not a Square ListPayments"):
        list(SquarePayments(path))
    path.write_text("not json")
    with pytest.raises(ReportFormatError, match="not a JSON file"):
        list(SquarePayments(path))


def test_missing_file() -> None:
    with pytest.raises(ReportFormatError, match="no such file"):
        StripeReportCSV("/nonexistent/report.csv")


# -- the store as the internal side -------------------------------------------------------


def test_orders_from_a_store_need_iter_payments() -> None:
    import paygate

    gw = paygate.connect("fake")
    paid = gw.create_payment(order_id="o1", amount=usd("10.00"), payment_method="tok_visa")

    class Listing:  # the minimal protocol a store offers for reconciliation
        def __init__(self, store: Any, ids: list[str]) -> None:
            self.store, self.ids = store, ids

        def iter_payments(self) -> Any:
            return (self.store.get_payment(i) for i in self.ids)

    internal = orders_from_store(Listing(gw.store, [paid.id]))
    assert [(o.order_id, o.amount, o.status) for o in internal] == [
        ("o1", usd("10.00"), OrderStatus.PAID)
    ]
    # the stores themselves list their payments
    assert [o.order_id for o in orders_from_store(gw.store)] == ["o1"]
    from paygate.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="iter_payments"):
        orders_from_store(object())


# -- the hand-written amount parser agrees with Money.of ---------------------------------


@given(
    st.one_of(
        st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=4).map(str),
        st.text(alphabet="0123456789.-+_ e", max_size=10),
    ),
    st.sampled_from(["USD", "JPY", "KWD"]),
)
def test_the_fast_amount_parser_agrees_with_money_of(text: str, currency: str) -> None:
    try:
        expected: int | None = Money.of(text, currency).amount
    except InvalidAmount:
        expected = None
    try:
        got: int | None = major_to_minor(text, currency)
    except InvalidAmount:
        got = None
    assert got == expected


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("order_id,amount,currency,status\n\no1,10.00,USD,paid\n\n\n")
    assert [o.order_id for o in OrdersCSV(path)] == ["o1"]
    report = reconcile(OrdersCSV(path), [])
    assert report.orders_read == 1 and report.bad_rows == []
