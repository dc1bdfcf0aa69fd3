"""Reading the provider's records through the adapter: Stripe Balance Transactions and
PayPal Transaction Search over mocked HTTP (responses), every request asserted.

Stripe bodies are Stripe's example ``balance_transaction``/``charge``/``refund``/``dispute``
objects (fixtures3.json) with fields set; PayPal pages are checked against the Transaction
Search spec (reporting_transactions_v1.json) when it is present.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

import paygate
from paygate import Money
from paygate.__main__ import main
from paygate._retry import RetryPolicy
from paygate.errors import (
    AuthenticationError,
    InvalidRequest,
    NotSupported,
    ProviderUnavailable,
    ValidationError,
)
from paygate.providers.paypal import PayPalProvider
from paygate.providers.stripe import StripeProvider
from paygate.reconcile import (
    Case,
    OrderRecord,
    PayPalTransactionSearch,
    RecordKind,
    StripeBalanceTransactions,
    reconcile,
    records_from_provider,
)
from paygate.reconcile.cli import _api_run_id
from tests.fixtures.stripe import resource
from tests.paypal_support import CLIENT_ID, CLIENT_SECRET, PayPalMock, provider_settings

STRIPE_API = "https://api.stripe.com/v1"
STRIPE_KEY = "sk_test_fetch_tests_key_0123456789"
BT_URL = f"{STRIPE_API}/balance_transactions"
PAYPAL_API = "https://api-m.sandbox.paypal.com"
SEARCH = "/v1/reporting/transactions"
SEARCH_SCHEMA = ("reporting_transactions_v1.json", "search_response")

SINCE = datetime(2026, 11, 1, tzinfo=timezone.utc)
UNTIL = datetime(2026, 12, 1, tzinfo=timezone.utc)
NOW = datetime(2026, 12, 5, tzinfo=timezone.utc)


def usd(text: str) -> Money:
    return Money.of(text, "USD")


def query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def the_books() -> list[OrderRecord]:
    created = datetime(2026, 11, 2, tzinfo=timezone.utc)
    return [
        OrderRecord("ord_match", usd("19.99"), "paid", created_at=created),
        OrderRecord("ord_short", usd("25.00"), "paid", created_at=created),
        OrderRecord("ord_refunded", usd("15.00"), "paid", created_at=created),
    ]


def cases(report: Any) -> dict[str, list[str | None]]:
    found: dict[str, list[str | None]] = {}
    for line in report.lines:
        found.setdefault(str(line.case), []).append(line.order_id)
    return found


# == Stripe ===================================================================================


@pytest.fixture
def stripe_provider() -> StripeProvider:
    return StripeProvider(api_key=STRIPE_KEY)


@pytest.fixture
def stripe_api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def charge(charge_id: str, order_id: str, amount: int) -> dict[str, Any]:
    return resource(
        "charge",
        id=charge_id,
        amount=amount,
        amount_captured=amount,
        metadata={"order_id": order_id},
        payment_intent="pi_" + charge_id.removeprefix("ch_"),
    )


def txn(txn_id: str, amount: int, fee: int, category: str, source: Any) -> dict[str, Any]:
    return resource(
        "balance_transaction",
        id=txn_id,
        amount=amount,
        fee=fee,
        net=amount - fee,
        reporting_category=category,
        type=category,
        source=source,
        created=int(datetime(2026, 11, 3, tzinfo=timezone.utc).timestamp()),
    )


def stripe_list(rows: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": rows, "has_more": has_more, "url": "/v1/balance_transactions"}


def stripe_rows() -> list[dict[str, Any]]:
    refund = resource(
        "refund",
        id="re_1",
        amount=500,
        charge=charge("ch_3", "ord_refunded", 1500),  # expanded: data.source.charge
        metadata={},
        payment_intent="pi_3",
    )
    return [
        txn("txn_1", 1999, 88, "charge", charge("ch_1", "ord_match", 1999)),
        txn("txn_2", 2450, 101, "charge", charge("ch_2", "ord_short", 2450)),
        txn("txn_3", 1500, 74, "charge", charge("ch_3", "ord_refunded", 1500)),
        txn("txn_4", -500, 0, "refund", refund),
        txn("txn_5", 700, 50, "charge", charge("ch_5", "ord_unknown", 700)),
    ]


def test_stripe_lists_balance_transactions_page_by_page_lazily(
    stripe_provider: StripeProvider, stripe_api: responses.RequestsMock
) -> None:
    rows = stripe_rows()
    stripe_api.get(BT_URL, json=stripe_list(rows[:2], has_more=True))
    stripe_api.get(BT_URL, json=stripe_list(rows[2:], has_more=False))

    listing = stripe_provider.iter_balance_transactions(since=SINCE, until=UNTIL, page_size=2)
    assert len(stripe_api.calls) == 0  # nothing is sent before the first row is asked for
    first = next(listing)
    assert len(stripe_api.calls) == 1
    request = stripe_api.calls[0].request
    assert request.method == "GET"
    assert urlsplit(request.url).path == "/v1/balance_transactions"
    assert query(request.url) == {
        "limit": "2",
        "created[gte]": str(int(SINCE.timestamp())),
        "created[lt]": str(int(UNTIL.timestamp())),
        "expand[0]": "data.source",
        "expand[1]": "data.source.charge",
    }
    assert request.headers["Authorization"] == f"Bearer {STRIPE_KEY}"
    second = next(listing)
    assert len(stripe_api.calls) == 1  # the first page is not consumed yet
    rest = list(listing)
    assert len(stripe_api.calls) == 2
    assert query(stripe_api.calls[1].request.url) == {
        **query(request.url),
        "starting_after": "txn_2",
    }
    got = [first, second, *rest]
    assert [row["id"] for row in got] == ["txn_1", "txn_2", "txn_3", "txn_4", "txn_5"]
    # plain dicts all the way down (no StripeObject), the expansions intact
    assert all(type(row) is dict and type(row["source"]) is dict for row in got)
    assert type(got[3]["source"]["charge"]) is dict
    assert got[3]["source"]["charge"]["metadata"] == {"order_id": "ord_refunded"}


def test_stripe_open_window_and_rounding(
    stripe_provider: StripeProvider, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(BT_URL, json=stripe_list([], has_more=False))
    assert list(stripe_provider.iter_balance_transactions()) == []
    assert query(stripe_api.calls[0].request.url) == {
        "limit": "100",
        "expand[0]": "data.source",
        "expand[1]": "data.source.charge",
    }
    stripe_api.get(BT_URL, json=stripe_list([], has_more=False))
    since = datetime(2026, 11, 1, 0, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=1)))
    list(stripe_provider.iter_balance_transactions(since=since))
    # created is whole seconds: created >= 23:00:00.5 UTC means created >= 23:00:01
    assert query(stripe_api.calls[1].request.url)["created[gte]"] == str(
        int(datetime(2026, 10, 31, 23, 0, 1, tzinfo=timezone.utc).timestamp())
    )


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"since": datetime(2026, 11, 1)}, "since"),
        ({"until": datetime(2026, 12, 1)}, "until"),
        ({"since": UNTIL, "until": SINCE}, "before until"),
        ({"page_size": 101}, "page_size"),
        ({"page_size": 0}, "page_size"),
    ],
)
def test_stripe_refuses_bad_arguments_before_any_request(
    stripe_provider: StripeProvider,
    stripe_api: responses.RequestsMock,
    kwargs: dict[str, Any],
    named: str,
) -> None:
    with pytest.raises(ValidationError, match=named):
        stripe_provider.iter_balance_transactions(**kwargs)
    assert len(stripe_api.calls) == 0


def test_stripe_errors_map_through_the_adapter_table(
    stripe_provider: StripeProvider, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(
        BT_URL,
        status=401,
        json={
            "error": {
                "type": "invalid_request_error",
                "message": f"Invalid API Key provided: {STRIPE_KEY}",
            }
        },
    )
    with pytest.raises(AuthenticationError) as caught:
        list(stripe_provider.iter_balance_transactions(since=SINCE))
    assert caught.value.http_status == 401 and caught.value.provider == "stripe"
    assert STRIPE_KEY not in str(caught.value)

    # a failure on a later page surfaces there, after the rows already read
    stripe_api.get(BT_URL, json=stripe_list(stripe_rows()[:1], has_more=True))
    stripe_api.get(
        BT_URL, status=500, json={"error": {"type": "api_error", "message": "try later"}}
    )
    listing = stripe_provider.iter_balance_transactions(since=SINCE)
    assert next(listing)["id"] == "txn_1"
    with pytest.raises(ProviderUnavailable) as failed:
        next(listing)
    assert failed.value.http_status == 500
    assert query(stripe_api.calls[-1].request.url)["starting_after"] == "txn_1"


def test_stripe_end_to_end_through_a_gateway(
    stripe_provider: StripeProvider, stripe_api: responses.RequestsMock
) -> None:
    rows = stripe_rows()
    stripe_api.get(BT_URL, json=stripe_list(rows[:3], has_more=True))
    stripe_api.get(BT_URL, json=stripe_list(rows[3:], has_more=False))
    gateway = paygate.connect(stripe_provider)
    records = records_from_provider(gateway, since=SINCE, until=UNTIL, page_size=3)
    assert isinstance(records, StripeBalanceTransactions)
    assert len(stripe_api.calls) == 0  # nothing fetched until the engine reads
    report = reconcile(the_books(), records, now=NOW, since=SINCE, until=UNTIL)
    assert report.counts[Case.MATCHED] == 1  # ord_match: matched orders get no line
    assert cases(report) == {
        "amount_mismatch": ["ord_short"],
        "unknown_refund": ["ord_refunded"],
        "orphan": ["ord_unknown"],
    }
    assert report.fees == {"USD": usd("3.13")}
    assert query(stripe_api.calls[0].request.url)["limit"] == "3"
    refund_line = next(line for line in report.lines if line.case is Case.UNKNOWN_REFUND)
    assert refund_line.amount == usd("5.00")


def test_stripe_dispute_order_id_comes_from_the_expanded_charge(
    stripe_provider: StripeProvider, stripe_api: responses.RequestsMock
) -> None:
    dispute = resource(
        "dispute", id="du_1", amount=1999, charge=charge("ch_1", "ord_match", 1999),
        metadata={}, payment_intent="pi_1",
    )  # fmt: skip
    stripe_api.get(BT_URL, json=stripe_list([txn("txn_9", -1999, 1500, "dispute", dispute)], False))
    (record,) = list(records_from_provider(stripe_provider))
    assert (record.kind, record.order_id, record.payment_id) == (
        RecordKind.DISPUTE, "ord_match", "pi_1"
    )  # fmt: skip


# == records_from_provider ====================================================================


def test_reading_the_records_again_lists_them_again(
    stripe_provider: StripeProvider, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(BT_URL, json=stripe_list(stripe_rows()[:1], has_more=False))
    stripe_api.get(BT_URL, json=stripe_list(stripe_rows()[1:2], has_more=False))
    records = records_from_provider(stripe_provider, since=SINCE)
    assert [r.record_id for r in records] == ["txn_1"]
    assert [r.record_id for r in records] == ["txn_2"]  # a second pass is a new listing
    assert len(stripe_api.calls) == 2


class _AdyenLike:
    name = "adyen"


def test_an_unsupported_provider_is_named_with_the_supported_ones() -> None:
    with pytest.raises(NotSupported, match=r"'adyen'.*paypal, square, stripe"):
        records_from_provider(_AdyenLike())


def test_payout_entries_are_refused_where_the_adapter_has_none(
    stripe_provider: StripeProvider,
) -> None:
    with pytest.raises(NotSupported, match=r"payout entries.*'stripe'.*supported: square"):
        records_from_provider(stripe_provider, payouts=True)


def test_paypal_needs_both_bounds(stripe_provider: StripeProvider) -> None:
    provider = PayPalProvider(**provider_settings())
    with pytest.raises(ValidationError, match=r"since and until.*missing: until"):
        records_from_provider(provider, since=SINCE)
    with pytest.raises(ValidationError, match="missing: since and until"):
        records_from_provider(provider)
    with pytest.raises(ValidationError, match="timezone-aware"):
        records_from_provider(provider, since=datetime(2026, 11, 1), until=UNTIL)


# == PayPal ===================================================================================


@pytest.fixture
def paypal() -> Iterator[PayPalMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock = PayPalMock(rsps)
        mock.token()
        yield mock
        mock.assert_all_called()


@pytest.fixture
def paypal_provider() -> PayPalProvider:
    return PayPalProvider(**provider_settings())


def detail(
    transaction_id: str,
    invoice_id: str,
    value: str,
    *,
    fee: str = "0.00",
    code: str = "T0006",
    when: str = "2026-11-03T10:00:00Z",
) -> dict[str, Any]:
    return {
        "transaction_info": {
            "paypal_account_id": "6STWC2LSUYYYE",
            "transaction_id": transaction_id,
            "transaction_event_code": code,
            "transaction_initiation_date": when,
            "transaction_updated_date": when,
            "transaction_amount": {"currency_code": "USD", "value": value},
            "fee_amount": {"currency_code": "USD", "value": fee},
            "transaction_status": "S",
            "invoice_id": invoice_id,
        }
    }


def search_page(details: list[dict[str, Any]], page: int, total_pages: int) -> dict[str, Any]:
    return {
        "transaction_details": details,
        "account_number": "MERCHANT7XKQ2",
        "start_date": "2026-11-01T00:00:00Z",
        "end_date": "2026-12-01T00:00:00Z",
        "last_refreshed_datetime": "2026-12-04T20:59:59Z",
        "page": page,
        "total_items": 4,
        "total_pages": total_pages,
        "links": [{"href": f"{PAYPAL_API}{SEARCH}", "rel": "self", "method": "GET"}],
    }


def search_calls(paypal: PayPalMock) -> list[dict[str, str]]:
    return [
        query(call.request.url)
        for call in paypal.rsps.calls
        if urlsplit(call.request.url).path == SEARCH
    ]


def test_paypal_pages_in_order_lazily(paypal: PayPalMock, paypal_provider: PayPalProvider) -> None:
    pages = [
        search_page([detail("1AA", "ord_match", "19.99", fee="-0.88")], 1, 2),
        search_page([detail("2BB", "ord_short", "24.50", fee="-1.01")], 2, 2),
    ]
    for body in pages:
        paypal.on("GET", SEARCH, body, response_schema=SEARCH_SCHEMA)

    listing = paypal_provider.iter_transaction_pages(since=SINCE, until=UNTIL, page_size=1)
    assert search_calls(paypal) == []
    assert next(listing) == pages[0]
    assert len(search_calls(paypal)) == 1  # page 2 waits until page 1 is consumed
    assert next(listing) == pages[1]
    assert list(listing) == []
    first, second = search_calls(paypal)
    assert first == {
        "start_date": "2026-11-01T00:00:00Z",
        "end_date": "2026-12-01T00:00:00Z",
        "fields": "all",
        "page_size": "1",
        "page": "1",
    }
    assert second == {**first, "page": "2"}
    call = paypal.last(SEARCH)
    assert call.headers["Authorization"].startswith("Bearer ")
    assert call.body is None


def test_paypal_splits_a_long_window_into_31_day_slices(
    paypal: PayPalMock, paypal_provider: PayPalProvider
) -> None:
    since = datetime(2026, 9, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    until = since + timedelta(days=70)
    for number in range(3):
        body = search_page([detail(f"T{number}", f"ord_{number}", "1.00")], 1, 1)
        paypal.on("GET", SEARCH, body, response_schema=SEARCH_SCHEMA)
    pages = list(paypal_provider.iter_transaction_pages(since=since, until=until))
    assert len(pages) == 3
    bounds = [(q["start_date"], q["end_date"], q["page"], q["page_size"]) for q in
              search_calls(paypal)]  # fmt: skip
    assert bounds == [
        ("2026-09-01T10:30:00Z", "2026-10-02T10:30:00Z", "1", "500"),
        ("2026-10-02T10:30:00Z", "2026-11-02T10:30:00Z", "1", "500"),
        ("2026-11-02T10:30:00Z", "2026-11-10T10:30:00Z", "1", "500"),
    ]


def test_paypal_lists_a_transaction_at_a_slice_cut_once(
    paypal: PayPalMock, paypal_provider: PayPalProvider
) -> None:
    cut = "2026-12-02T01:00:00+01:00"  # SINCE + 31 days
    at_cut = detail("CUT1", "ord_match", "19.99", when=cut)
    paypal.on("GET", SEARCH, search_page([detail("A1", "ord_a", "1.00"), at_cut], 1, 1))
    paypal.on("GET", SEARCH, search_page([at_cut, detail("B1", "ord_b", "2.00")], 1, 1))
    pages = list(
        paypal_provider.iter_transaction_pages(since=SINCE, until=SINCE + timedelta(days=40))
    )
    ids = [d["transaction_info"]["transaction_id"] for p in pages for d in
           p["transaction_details"]]  # fmt: skip
    assert ids == ["A1", "CUT1", "B1"]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (
            401,
            {"error": "invalid_token", "error_description": "Token signature verification failed"},
            AuthenticationError,
        ),
        (
            500,
            {"name": "INTERNAL_SERVER_ERROR", "message": "An internal server error occurred."},
            ProviderUnavailable,
        ),
    ],
)
def test_paypal_errors_map_through_the_adapter(
    paypal: PayPalMock,
    paypal_provider: PayPalProvider,
    status: int,
    body: dict[str, Any],
    error: type[Exception],
) -> None:
    paypal.on("GET", SEARCH, body, status=status, headers={"PayPal-Debug-Id": "dbg42"})
    with pytest.raises(error) as caught:
        list(paypal_provider.iter_transaction_pages(since=SINCE, until=UNTIL))
    assert caught.value.http_status == status  # type: ignore[attr-defined]
    assert caught.value.request_id == "dbg42"  # type: ignore[attr-defined]
    assert CLIENT_SECRET not in str(caught.value) and CLIENT_SECRET not in repr(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"since": datetime(2026, 11, 1), "until": UNTIL}, "since must be a timezone-aware"),
        ({"since": SINCE, "until": datetime(2026, 12, 1)}, "until must be a timezone-aware"),
        ({"since": UNTIL, "until": SINCE}, "before until"),
        ({"since": SINCE, "until": UNTIL, "page_size": 501}, "page_size"),
    ],
)
def test_paypal_refuses_bad_arguments(
    paypal_provider: PayPalProvider, kwargs: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        paypal_provider.iter_transaction_pages(**kwargs)


def test_paypal_end_to_end(paypal: PayPalMock, paypal_provider: PayPalProvider) -> None:
    page1 = search_page(
        [
            detail("1AA", "ord_match", "19.99", fee="-0.88"),
            detail("2BB", "ord_short", "24.50", fee="-1.01"),
        ],
        1,
        2,
    )
    page2 = search_page(
        [
            detail("3CC", "ord_refunded", "15.00", fee="-0.74"),
            detail("4DD", "ord_refunded", "-5.00", fee="0.15", code="T1107"),
            detail("5EE", "ord_unknown", "7.00", fee="-0.50"),
        ],
        2,
        2,
    )
    paypal.on("GET", SEARCH, page1, response_schema=SEARCH_SCHEMA)
    paypal.on("GET", SEARCH, page2, response_schema=SEARCH_SCHEMA)
    records = records_from_provider(paypal_provider, since=SINCE, until=UNTIL, page_size=2)
    assert isinstance(records, PayPalTransactionSearch)
    report = reconcile(the_books(), records, now=NOW)
    assert report.counts[Case.MATCHED] == 1  # ord_match: matched orders get no line
    assert cases(report) == {
        "amount_mismatch": ["ord_short"],
        "unknown_refund": ["ord_refunded"],
        "orphan": ["ord_unknown"],
    }
    assert report.fees == {"USD": usd("2.98")}
    assert [q["page_size"] for q in search_calls(paypal)] == ["2", "2"]


def test_search_page_fixture_is_checked_against_the_spec() -> None:
    pytest.importorskip("jsonschema")
    from tests.paypal_support import spec_available, validate

    if not spec_available():
        pytest.skip("PayPal reference specs not found")
    import jsonschema

    page = search_page([detail("1AA", "ord_match", "19.99")], 1, 1)
    validate(*SEARCH_SCHEMA, page)
    page["transaction_details"][0]["transaction_info"]["transaction_amount"]["value"] = "1,00"
    with pytest.raises(jsonschema.ValidationError):
        validate(*SEARCH_SCHEMA, page)


# == the command line =========================================================================


def orders_csv(tmp_path: Path) -> str:
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,amount,currency,status,created_at\n"
        "ord_match,19.99,USD,paid,2026-11-02T00:00:00Z\n"
        "ord_short,25.00,USD,paid,2026-11-02T00:00:00Z\n"
        "ord_refunded,15.00,USD,paid,2026-11-02T00:00:00Z\n"
    )
    return str(path)


def test_cli_from_api_stripe(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stripe_api: responses.RequestsMock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("PAYGATE_PROVIDER", raising=False)
    monkeypatch.setenv("PAYGATE_STRIPE_API_KEY", STRIPE_KEY)
    stripe_api.get(BT_URL, json=stripe_list(stripe_rows(), has_more=False))
    out = tmp_path / "report.json"
    code = main(["reconcile", "--provider", "stripe", "--from-api",
                 "--since", "2026-11-01", "--until", "2026-12-01T00:00:00Z",
                 "--orders", orders_csv(tmp_path), "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 1
    data = json.loads(out.read_text())
    assert data["counts"] == {"matched": 1, "amount_mismatch": 1, "unknown_refund": 1, "orphan": 1}
    sent = query(stripe_api.calls[0].request.url)
    assert sent["created[gte]"] == str(int(SINCE.timestamp()))
    assert sent["created[lt]"] == str(int(UNTIL.timestamp()))
    assert stripe_api.calls[0].request.headers["Authorization"] == f"Bearer {STRIPE_KEY}"
    assert STRIPE_KEY not in capsys.readouterr().out


def test_cli_from_api_paypal_with_paypal_provider_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    paypal: PayPalMock,
) -> None:
    monkeypatch.setenv("PAYGATE_PROVIDER", "paypal")
    monkeypatch.setenv("PAYGATE_PAYPAL_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("PAYGATE_PAYPAL_CLIENT_SECRET", CLIENT_SECRET)
    body = search_page([detail("1AA", "ord_match", "19.99", fee="-0.88")], 1, 1)
    paypal.on("GET", SEARCH, body, response_schema=SEARCH_SCHEMA)
    books = tmp_path / "orders.csv"
    books.write_text("order_id,amount,currency,status\nord_match,19.99,USD,paid\n")
    code = main(["reconcile", "--provider", "paypal", "--from-api", "--since", "2026-11-01",
                 "--until", "2026-11-08", "--orders", str(books), "--no-progress"])  # fmt: skip
    assert code == 0
    (sent,) = search_calls(paypal)
    assert (sent["start_date"], sent["end_date"]) == (
        "2026-11-01T00:00:00Z",
        "2026-11-08T00:00:00Z",
    )


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--provider", "paypal", "--from-api", "--since", "2026-11-01"],
         {"PAYGATE_PAYPAL_CLIENT_ID": CLIENT_ID, "PAYGATE_PAYPAL_CLIENT_SECRET": CLIENT_SECRET},
         "needs both since and until"),
        (["--provider", "stripe", "--from-api"], {"PAYGATE_PROVIDER": "paypal"},
         "PAYGATE_PROVIDER is 'paypal' but --provider is 'stripe'"),
        (["--provider", "generic", "--from-api"], {}, "--from-api reads paypal, square, stripe"),
        (["--provider", "stripe", "--from-api"], {}, "api_key"),
    ],
)  # fmt: skip
def test_cli_from_api_refusals_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for name in ("PAYGATE_PROVIDER", "PAYGATE_STRIPE_API_KEY", "PAYGATE_PAYPAL_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as nothing:
        code = main(["reconcile", *argv, "--orders", orders_csv(tmp_path)])
        assert len(nothing.calls) == 0
    assert code == 2
    assert message in capsys.readouterr().err


def test_cli_report_and_from_api_are_exclusive_and_one_is_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    books = orders_csv(tmp_path)
    with pytest.raises(SystemExit) as both:
        main(["reconcile", "--provider", "stripe", "--from-api", "--report", books,
              "--orders", books])  # fmt: skip
    assert both.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit) as neither:
        main(["reconcile", "--provider", "stripe", "--orders", books])
    assert neither.value.code == 2
    assert "one of the arguments --report --from-api is required" in capsys.readouterr().err


def test_cli_from_api_run_id_comes_from_provider_and_window() -> None:
    since = datetime(2026, 11, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert _api_run_id("stripe", since, UNTIL) == "api-stripe-20261101T000000Z-20261201T000000Z"
    assert _api_run_id("paypal", None, None) == "api-paypal-start-open"


def test_cli_from_api_apply_uses_the_window_run_id(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stripe_api: responses.RequestsMock,
) -> None:
    from paygate.reconcile import refund_key

    monkeypatch.delenv("PAYGATE_PROVIDER", raising=False)
    monkeypatch.setenv("PAYGATE_STRIPE_API_KEY", STRIPE_KEY)
    books = tmp_path / "orders.csv"
    books.write_text("order_id,amount,currency,status\nord_pending,19.99,USD,pending\n")
    paid = txn("txn_7", 1999, 88, "charge", charge("ch_7", "ord_pending", 1999))
    stripe_api.get(BT_URL, json=stripe_list([paid], has_more=False))
    # the refund step looks the payment up first: already refunded, so nothing is sent
    already = resource(
        "payment_intent", id="pi_7", amount=1999, amount_received=1999, currency="usd",
        status="succeeded", metadata={"order_id": "ord_pending"},
        latest_charge={**charge("ch_7", "ord_pending", 1999), "amount_refunded": 1999,
                       # the charge lists its refund (get_payment expands them)
                       "refunds": stripe_list([resource("refund", id="re_7", amount=1999,
                                                        charge="ch_7", payment_intent="pi_7")],
                                              has_more=False)},
    )  # fmt: skip
    stripe_api.get(f"{STRIPE_API}/payment_intents/pi_7", json=already)
    out = tmp_path / "report.json"
    code = main(["reconcile", "--provider", "stripe", "--from-api", "--apply",
                 "--since", "2026-11-01", "--until", "2026-12-01",
                 "--orders", str(books), "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 1
    (applied,) = json.loads(out.read_text())["applied"]
    run_id = "api-stripe-20261101T000000Z-20261201T000000Z"
    assert applied["outcome"] == "already_done"
    assert applied["idempotency_key"] == refund_key(run_id, "ord_pending", "pi_7")
    assert [urlsplit(c.request.url).path for c in stripe_api.calls] == [
        "/v1/balance_transactions",
        "/v1/payment_intents/pi_7",
    ]


# == retries of the page requests =============================================================


def recording_policy(attempts: int = 3) -> tuple[RetryPolicy, list[float]]:
    """A policy whose backoff is recorded, not slept: 0.5s, then 1.0s (no jitter)."""
    slept: list[float] = []
    policy = RetryPolicy(attempts=attempts, base_delay=0.5, jitter=0, sleep=slept.append)
    return policy, slept


STRIPE_503 = {"error": {"type": "api_error", "message": "Service temporarily unavailable"}}


def test_stripe_a_503_on_page_2_is_retried_with_the_same_starting_after(
    stripe_provider: StripeProvider, stripe_api: responses.RequestsMock
) -> None:
    rows = stripe_rows()
    stripe_api.get(BT_URL, json=stripe_list(rows[:2], has_more=True))
    stripe_api.get(BT_URL, status=503, json=STRIPE_503)
    stripe_api.get(BT_URL, json=stripe_list(rows[2:], has_more=False))
    policy, slept = recording_policy()

    records = records_from_provider(stripe_provider, since=SINCE, page_size=2, retry=policy)

    assert [r.record_id for r in records] == ["txn_1", "txn_2", "txn_3", "txn_4", "txn_5"]
    sent = [query(call.request.url) for call in stripe_api.calls]
    assert [call.response.status_code for call in stripe_api.calls] == [200, 503, 200]
    assert "starting_after" not in sent[0]
    assert sent[1] == sent[2] == {**sent[0], "starting_after": "txn_2"}  # the same request
    assert slept == [0.5]  # the policy's backoff, once


def test_stripe_pages_use_the_gateways_policy_by_default(
    stripe_provider: StripeProvider, stripe_api: responses.RequestsMock
) -> None:
    rows = stripe_rows()
    stripe_api.get(BT_URL, json=stripe_list(rows[:2], has_more=True))
    stripe_api.get(BT_URL, status=503, json=STRIPE_503)
    stripe_api.get(BT_URL, json=stripe_list(rows[2:], has_more=False))
    policy, slept = recording_policy()
    gateway = paygate.connect(stripe_provider, retry=policy)

    records = records_from_provider(gateway, since=SINCE, page_size=2)

    assert [r.record_id for r in records] == ["txn_1", "txn_2", "txn_3", "txn_4", "txn_5"]
    assert len(stripe_api.calls) == 3 and slept == [0.5]


def test_stripe_bare_adapter_or_one_attempt_does_not_retry(
    stripe_provider: StripeProvider, stripe_api: responses.RequestsMock
) -> None:
    for source in (stripe_provider, paygate.connect(stripe_provider, retry=RetryPolicy(1))):
        stripe_api.get(BT_URL, json=stripe_list(stripe_rows()[:1], has_more=True))
        stripe_api.get(BT_URL, status=503, json=STRIPE_503)
        before = len(stripe_api.calls)
        with pytest.raises(ProviderUnavailable):
            list(records_from_provider(source, since=SINCE))
        assert len(stripe_api.calls) - before == 2  # page 1, page 2 once


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": {"type": "invalid_request_error", "message": "bad key"}},
         AuthenticationError),
        (400, {"error": {"type": "invalid_request_error", "message": "bad starting_after"}},
         InvalidRequest),
    ],
)  # fmt: skip
def test_stripe_a_non_retryable_error_is_not_retried(
    stripe_provider: StripeProvider,
    stripe_api: responses.RequestsMock,
    status: int,
    body: dict[str, Any],
    error: type[Exception],
) -> None:
    stripe_api.get(BT_URL, json=stripe_list(stripe_rows()[:1], has_more=True))
    stripe_api.get(BT_URL, status=status, json=body)
    policy, slept = recording_policy()
    with pytest.raises(error):
        list(stripe_provider.iter_balance_transactions(since=SINCE, retry=policy))
    assert len(stripe_api.calls) == 2 and slept == []


def test_stripe_attempts_exhausted_raise_provider_unavailable(
    stripe_provider: StripeProvider, stripe_api: responses.RequestsMock
) -> None:
    stripe_api.get(BT_URL, json=stripe_list(stripe_rows()[:1], has_more=True))
    for _ in range(3):
        stripe_api.get(BT_URL, status=503, json=STRIPE_503)
    policy, slept = recording_policy(attempts=3)
    listing = stripe_provider.iter_balance_transactions(since=SINCE, retry=policy)
    assert next(listing)["id"] == "txn_1"
    with pytest.raises(ProviderUnavailable) as failed:
        next(listing)
    assert failed.value.http_status == 503 and failed.value.retryable
    assert len(stripe_api.calls) == 4  # page 1, then page 2 three times
    assert {query(c.request.url)["starting_after"] for c in stripe_api.calls[1:]} == {"txn_1"}
    assert slept == [0.5, 1.0]  # exponential backoff between the three attempts


def test_records_from_provider_refuses_a_retry_that_is_not_a_policy(
    stripe_provider: StripeProvider,
) -> None:
    with pytest.raises(ValidationError, match=r"retry must be a paygate\.RetryPolicy"):
        records_from_provider(stripe_provider, retry=3)


def test_cli_from_api_retries_with_the_gateways_configured_policy(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stripe_api: responses.RequestsMock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--from-api`` reads through ``Gateway.from_env``: its PAYGATE_RETRY_* policy applies
    to the page requests (a zero delay: nothing is slept)."""
    monkeypatch.delenv("PAYGATE_PROVIDER", raising=False)
    monkeypatch.setenv("PAYGATE_STRIPE_API_KEY", STRIPE_KEY)
    monkeypatch.setenv("PAYGATE_RETRY_BASE_DELAY", "0")
    argv = ["reconcile", "--provider", "stripe", "--from-api", "--since", "2026-11-01",
            "--until", "2026-12-01", "--orders", orders_csv(tmp_path), "--no-progress"]  # fmt: skip
    rows = stripe_rows()
    stripe_api.get(BT_URL, json=stripe_list(rows[:2], has_more=True))
    stripe_api.get(BT_URL, status=503, json=STRIPE_503)
    stripe_api.get(BT_URL, json=stripe_list(rows[2:], has_more=False))
    out = tmp_path / "report.json"
    assert main([*argv, "--out", str(out)]) == 1  # differences found, not an error (2)
    counts = json.loads(out.read_text())["counts"]
    assert counts == {"matched": 1, "amount_mismatch": 1, "unknown_refund": 1, "orphan": 1}
    assert len(stripe_api.calls) == 3

    monkeypatch.setenv("PAYGATE_RETRY_ATTEMPTS", "1")  # configured off: the 503 ends the run
    stripe_api.get(BT_URL, json=stripe_list(rows[:2], has_more=True))
    stripe_api.get(BT_URL, status=503, json=STRIPE_503)
    capsys.readouterr()
    assert main(argv) == 2
    assert "temporarily unavailable" in capsys.readouterr().err
    assert len(stripe_api.calls) == 5  # page 1, page 2 once


def test_paypal_a_503_on_page_2_is_retried_with_the_same_page_and_dates(
    paypal: PayPalMock, paypal_provider: PayPalProvider
) -> None:
    pages = [
        search_page([detail("1AA", "ord_match", "19.99", fee="-0.88")], 1, 2),
        search_page([detail("2BB", "ord_short", "24.50", fee="-1.01")], 2, 2),
    ]
    unavailable = {"name": "SERVICE_UNAVAILABLE", "message": "Service Unavailable."}
    paypal.on("GET", SEARCH, pages[0], response_schema=SEARCH_SCHEMA)
    paypal.on("GET", SEARCH, unavailable, status=503)
    paypal.on("GET", SEARCH, pages[1], response_schema=SEARCH_SCHEMA)
    policy, slept = recording_policy()
    gateway = paygate.connect(paypal_provider, retry=policy)

    records = records_from_provider(gateway, since=SINCE, until=UNTIL, page_size=1)

    assert [r.record_id for r in records] == ["1AA", "2BB"]
    first, failed, again = search_calls(paypal)
    assert failed == again == {**first, "page": "2"}  # same page, same start/end dates
    assert (again["start_date"], again["end_date"]) == (
        "2026-11-01T00:00:00Z",
        "2026-12-01T00:00:00Z",
    )
    assert slept == [0.5]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": "invalid_token", "error_description": "Token signature verification failed"},
         AuthenticationError),
        (400, {"name": "INVALID_REQUEST", "message": "Request is not well-formed."},
         InvalidRequest),
    ],
)  # fmt: skip
def test_paypal_a_non_retryable_error_is_not_retried(
    paypal: PayPalMock,
    paypal_provider: PayPalProvider,
    status: int,
    body: dict[str, Any],
    error: type[Exception],
) -> None:
    paypal.on("GET", SEARCH, body, status=status)
    policy, slept = recording_policy()
    with pytest.raises(error):
        list(paypal_provider.iter_transaction_pages(since=SINCE, until=UNTIL, retry=policy))
    assert len(search_calls(paypal)) == 1 and slept == []


def test_paypal_attempts_exhausted_raise_provider_unavailable(
    paypal: PayPalMock, paypal_provider: PayPalProvider
) -> None:
    unavailable = {"name": "SERVICE_UNAVAILABLE", "message": "Service Unavailable."}
    paypal.on("GET", SEARCH, unavailable, status=503)  # responses repeats the last answer
    policy, slept = recording_policy(attempts=2)
    with pytest.raises(ProviderUnavailable) as failed:
        list(paypal_provider.iter_transaction_pages(since=SINCE, until=UNTIL, retry=policy))
    assert failed.value.http_status == 503
    assert [q["page"] for q in search_calls(paypal)] == ["1", "1"]
    assert slept == [0.5]
