"""Square records through the adapter: ListPayments, ListPayouts + ListPayoutEntries, the
payout-entry reader and ``square_records`` end to end on the in-memory Square API.

Every answer of the mock is validated against Square's OpenAPI spec by the ``square_api``
fixture when the reference is present (the explicit spec tests skip where it is absent).
"""

# ruff: noqa: F811  (the shared fixtures are imported from tests.test_square_spec)
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

import paygate
from paygate._retry import RetryPolicy
from paygate.errors import (
    AuthenticationError,
    InvalidRequest,
    ProviderUnavailable,
    ValidationError,
)
from paygate.money import Money
from paygate.providers._square_mock import SquareMockAPI
from paygate.providers.square import SquareProvider
from paygate.reconcile import (
    Case,
    OrderRecord,
    RecordKind,
    RecordStatus,
    ReportFormatError,
    SquarePayments,
    SquarePayoutEntries,
    reconcile,
    records_from_provider,
    square_records,
)
from tests.test_square_spec import (  # noqa: F401
    ACCESS_TOKEN,
    SPEC_PATH,
    _spec,
    square,
    square_api,
    validate,
)

UTC = timezone.utc
SINCE = datetime(2026, 1, 2, tzinfo=UTC)
UNTIL = datetime(2026, 1, 5, tzinfo=UTC)


def _seed_payments(api: SquareMockAPI) -> list[dict[str, Any]]:
    """Five payments in the window (Jan 2 .. Jan 4), one before, one at ``until`` (excluded:
    the window is half-open), one at another location."""
    inside = [
        api.add_payment(
            1000 + i,
            reference_id=f"ord_{i}",
            created_at=f"2026-01-0{2 + i // 2}T1{i}:00:00Z",
            fee=30,
        )
        for i in range(5)
    ]
    api.add_payment(999, reference_id="before", created_at="2026-01-01T23:59:59Z")
    api.add_payment(998, reference_id="at_until", created_at="2026-01-05T00:00:00Z")
    api.add_payment(
        997, reference_id="elsewhere", created_at="2026-01-03T00:00:00Z", location_id="LOC2"
    )
    return inside


def _list_calls(api: SquareMockAPI, path: str) -> list[Any]:
    return [call for call in api.calls if call.method == "GET" and call.path == path]


# -- ListPayments ------------------------------------------------------------------------------


def test_payment_pages_follow_the_cursor_with_the_window_and_location(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    square_api.list_page_size = 2
    inside = _seed_payments(square_api)

    pages = list(square.iter_payment_pages(since=SINCE, until=UNTIL))

    assert [[p["id"] for p in page["payments"]] for page in pages] == [
        [inside[0]["id"], inside[1]["id"]],
        [inside[2]["id"], inside[3]["id"]],
        [inside[4]["id"]],
    ]
    calls = _list_calls(square_api, "/v2/payments")
    assert len(calls) == 3 == len(square_api.calls)
    common = {
        "begin_time": "2026-01-02T00:00:00Z",
        "end_time": "2026-01-05T00:00:00Z",
        "location_id": "LOC1",
        "sort_order": "ASC",
        "limit": "100",
    }
    assert calls[0].query == common  # no cursor on the first request
    assert calls[1].query == {**common, "cursor": pages[0]["cursor"]}
    assert calls[2].query == {**common, "cursor": pages[1]["cursor"]}
    assert pages[0]["cursor"] != pages[1]["cursor"]
    assert "cursor" not in pages[2]
    assert all(call.status == 200 and call.body is None for call in calls)


def test_payment_pages_are_fetched_lazily_one_request_per_page(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    square_api.list_page_size = 2
    _seed_payments(square_api)
    pages = square.iter_payment_pages(since=SINCE, until=UNTIL)
    assert square_api.calls == []  # nothing is asked before the first page is wanted
    next(pages)
    assert len(square_api.calls) == 1
    next(pages)
    assert len(square_api.calls) == 2
    pages.close()
    assert len(square_api.calls) == 2


def test_page_size_is_the_limit_and_the_datetimes_are_sent_in_utc(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    _seed_payments(square_api)
    paris = timezone(timedelta(hours=1))
    pages = list(
        square.iter_payment_pages(
            since=datetime(2026, 1, 2, 1, 0, tzinfo=paris),
            until=datetime(2026, 1, 3, 12, 30, 15, 250000, tzinfo=UTC),
            page_size=1,
        )
    )
    assert [len(page["payments"]) for page in pages] == [1, 1, 1]  # Jan 2 10h, 11h, Jan 3 12h
    first = square_api.calls[0].query
    assert first["begin_time"] == "2026-01-02T00:00:00Z"
    assert first["end_time"] == "2026-01-03T12:30:15.250000Z"
    assert first["limit"] == "1"


def test_an_empty_window_is_one_page_with_an_empty_list(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    pages = list(square.iter_payment_pages(since=SINCE, until=UNTIL))
    assert pages == [{"payments": []}]  # Square answers {}: payments is always there
    assert square_api.calls[0].response == {}
    assert list(SquarePayments(pages)) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": datetime(2026, 1, 2)}, "since must be a timezone-aware datetime"),
        ({"until": datetime(2026, 1, 2)}, "until must be a timezone-aware datetime"),
        ({"since": UNTIL, "until": SINCE}, "since .* must be before until"),
        ({"since": "2026-01-02"}, "since must be a datetime, got str"),
        ({"page_size": 0}, "page_size must be from 1 to 100"),
        ({"page_size": 101}, "page_size must be from 1 to 100"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(
    square: SquareProvider, square_api: SquareMockAPI, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        square.iter_payment_pages(**kwargs)
    with pytest.raises(ValidationError, match=message):
        square.iter_payout_entry_pages(**kwargs)
    if "page_size" not in kwargs:
        for payouts in (False, True):
            with pytest.raises(ValidationError, match=message):
                square_records(square, payouts=payouts, **kwargs)
    assert square_api.calls == []


def test_square_payments_reads_the_adapter_pages_unchanged(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    square_api.list_page_size = 2
    inside = _seed_payments(square_api)
    records = list(SquarePayments(square.iter_payment_pages(since=SINCE, until=UNTIL)))
    assert [r.order_id for r in records] == [f"ord_{i}" for i in range(5)]
    assert [r.payment_id for r in records] == [p["id"] for p in inside]
    assert records[0].amount == Money(1000, "USD")
    assert records[0].fee == Money(30, "USD") and records[0].net == Money(970, "USD")
    assert records[0].occurred_at == datetime(2026, 1, 2, 10, tzinfo=UTC)


def test_a_pager_without_its_response_still_gives_the_pages(
    square: SquareProvider, square_api: SquareMockAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """squareup releases whose pager keeps only ``items`` (no ``response``): the pages are
    built from the items, and the pager's ``get_next`` still follows the cursor."""
    from square.core.pagination import SyncPager

    square_api.list_page_size = 2
    inside = _seed_payments(square_api)

    @dataclasses.dataclass(frozen=True)
    class OldPager:
        get_next: Any
        has_next: bool
        items: Any

    real = square._client.payments.list

    def old_list(**kwargs: Any) -> OldPager:
        def strip(pager: SyncPager[Any, Any]) -> OldPager:
            nxt = pager.get_next
            return OldPager((lambda: strip(nxt())) if nxt else None, pager.has_next, pager.items)

        return strip(real(**kwargs))

    monkeypatch.setattr(square._client.payments, "list", old_list)
    pages = list(square.iter_payment_pages(since=SINCE, until=UNTIL))
    assert [[p["id"] for p in page["payments"]] for page in pages] == [
        [p["id"] for p in inside[:2]],
        [p["id"] for p in inside[2:4]],
        [inside[4]["id"]],
    ]
    assert "cursor" not in pages[0]
    assert pages[0]["payments"][0]["amount_money"] == {"amount": 1000, "currency": "USD"}
    assert [bool(call.query.get("cursor")) for call in square_api.calls] == [False, True, True]


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "category", "error"),
    [
        (401, "UNAUTHORIZED", "AUTHENTICATION_ERROR", AuthenticationError),
        (500, "INTERNAL_SERVER_ERROR", "API_ERROR", ProviderUnavailable),
    ],
)
def test_list_errors_are_mapped_and_never_show_the_token(
    square: SquareProvider,
    square_api: SquareMockAPI,
    status: int,
    code: str,
    category: str,
    error: type[Exception],
) -> None:
    square_api.fail_next(status, code, category)
    with pytest.raises(error) as raised:
        next(square.iter_payment_pages(since=SINCE))
    assert raised.value.http_status == status  # type: ignore[attr-defined]
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert "list_payments" in str(raised.value)
    assert ACCESS_TOKEN not in str(raised.value) and ACCESS_TOKEN not in repr(raised.value)
    square_api.fail_next(status, code, category)
    with pytest.raises(error):
        next(square.iter_payout_entry_pages(since=SINCE))


def test_an_error_on_a_later_page_is_raised_when_that_page_is_reached(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    square_api.list_page_size = 2
    _seed_payments(square_api)
    pages = square.iter_payment_pages(since=SINCE, until=UNTIL)
    assert len(next(pages)["payments"]) == 2
    square_api.fail_next(503, "SERVICE_UNAVAILABLE", "API_ERROR")
    with pytest.raises(ProviderUnavailable):
        next(pages)
    assert square_api.calls[1].query["cursor"]  # it was the second page that failed


# -- ListPayouts + ListPayoutEntries -----------------------------------------------------------


def _seed_payouts(api: SquareMockAPI) -> dict[str, Any]:
    """Two BATCH payouts in the window (three and one entries), a SIMPLE one (no entries),
    one before the window."""
    first = api.add_payout(2000, created_at="2026-01-02T06:00:00Z")
    second = api.add_payout(500, created_at="2026-01-03T06:00:00Z")
    simple = api.add_payout(100, created_at="2026-01-03T07:00:00Z", payout_type="SIMPLE")
    old = api.add_payout(100, created_at="2026-01-01T06:00:00Z")
    entries = [
        api.add_payout_entry(
            first["id"], "CHARGE", 1000, 30, payment_id="pay_a", effective_at="2026-01-01T10:00:00Z"
        ),
        api.add_payout_entry(
            first["id"], "CHARGE", 1001, 30, payment_id="pay_b", effective_at="2026-01-01T11:00:00Z"
        ),
        api.add_payout_entry(
            first["id"],
            "REFUND",
            -300,
            -9,
            payment_id="pay_a",
            details={"refund_id": "rf_1"},
            effective_at="2026-01-01T12:00:00Z",
        ),
        api.add_payout_entry(
            second["id"], "DEPOSIT_FEE", -25, 0, effective_at="2026-01-02T10:00:00Z"
        ),
    ]
    api.add_payout_entry(old["id"], "CHARGE", 100, 3, payment_id="pay_old")
    return {"first": first, "second": second, "simple": simple, "entries": entries}


def test_payout_entry_pages_list_payouts_then_their_entries_page_by_page(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    square_api.list_page_size = 2
    seeded = _seed_payouts(square_api)
    first, second = seeded["first"]["id"], seeded["second"]["id"]

    pages = list(square.iter_payout_entry_pages(since=SINCE, until=UNTIL))

    assert [[e["id"] for e in page["payout_entries"]] for page in pages] == [
        [e["id"] for e in seeded["entries"][:2]],
        [seeded["entries"][2]["id"]],
        [seeded["entries"][3]["id"]],
    ]
    window = {
        "begin_time": "2026-01-02T00:00:00Z",
        "end_time": "2026-01-05T00:00:00Z",
        "location_id": "LOC1",
        "sort_order": "ASC",
        "limit": "100",
    }
    entries_query = {"sort_order": "ASC", "limit": "100"}
    # payouts page 1 (first, second), the first payout's two entry pages, the second's
    # one page, payouts page 2 (the SIMPLE payout: no entries asked for)
    observed = [(call.path, call.query) for call in square_api.calls]
    payouts_cursor = square_api.calls[0].response["cursor"]
    assert observed == [
        ("/v2/payouts", window),
        (f"/v2/payouts/{first}/payout-entries", entries_query),
        (f"/v2/payouts/{first}/payout-entries", {**entries_query, "cursor": pages[0]["cursor"]}),
        (f"/v2/payouts/{second}/payout-entries", entries_query),
        ("/v2/payouts", {**window, "cursor": payouts_cursor}),
    ]
    assert square_api.calls[-1].response["payouts"][0]["id"] == seeded["simple"]["id"]


def test_payout_entry_pages_are_lazy(square: SquareProvider, square_api: SquareMockAPI) -> None:
    square_api.list_page_size = 2
    _seed_payouts(square_api)
    pages = square.iter_payout_entry_pages(since=SINCE, until=UNTIL)
    assert square_api.calls == []
    next(pages)
    assert [call.path for call in square_api.calls] == [
        "/v2/payouts",
        f"/v2/payouts/{square_api.calls[0].response['payouts'][0]['id']}/payout-entries",
    ]


# -- the spec as an oracle ---------------------------------------------------------------------


def test_list_answers_and_seeded_objects_are_valid_under_the_spec(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    if not SPEC_PATH.is_file():
        pytest.skip(f"Square's OpenAPI spec not found at {SPEC_PATH}")
    square_api.list_page_size = 2
    _seed_payments(square_api)
    _seed_payouts(square_api)
    square_api.add_payment(
        5, reference_id="r", fee=1, refunded=5, created_at="2026-01-02T00:00:00Z"
    )
    list(square.iter_payment_pages(since=SINCE, until=UNTIL))
    list(square.iter_payout_entry_pages(since=SINCE, until=UNTIL))
    schemas = {
        "/v2/payments": "ListPaymentsResponse",
        "/v2/payouts": "ListPayoutsResponse",
    }
    seen = set()
    for call in square_api.calls:
        schema = schemas.get(call.path, "ListPayoutEntriesResponse")
        validate(call.response, schema)
        seen.add(schema)
        for name, value in call.query.items():  # every query parameter is one Square defines
            operation = "/v2/payouts/{payout_id}/payout-entries"
            path = call.path if call.path in schemas else operation
            params = {p["name"] for p in _spec()["paths"][path]["get"]["parameters"]}
            assert name in params, f"{call.path}: {name}={value}"
    assert seen == {"ListPaymentsResponse", "ListPayoutsResponse", "ListPayoutEntriesResponse"}
    for payout in square_api.payouts.values():
        validate(payout, "Payout")


def test_the_spec_example_of_payout_entries_is_read(tmp_path: Path) -> None:
    example = _spec()["components"]["schemas"]["ListPayoutEntriesResponse"]["example"]
    records = list(SquarePayoutEntries(example))
    by_kind = {r.kind: r for r in records}
    refund, charge = by_kind[RecordKind.REFUND], by_kind[RecordKind.PAYMENT]
    # CHARGE: gross 100, fee 19, net 81; REFUND: gross -50, fee -2 (given back), net -48
    assert (charge.amount, charge.fee, charge.net) == (
        Money(100, "USD"),
        Money(19, "USD"),
        Money(81, "USD"),
    )
    assert (refund.amount, refund.fee, refund.net) == (
        Money(50, "USD"),
        Money(-2, "USD"),
        Money(-48, "USD"),
    )
    assert charge.payment_id == "HVdG62H5K3291d0SGJS6IWd4cSi8YY"
    assert refund.payment_id == "HVdG62HeMlti8YYf94oxrN"
    path = tmp_path / "entries.json"  # the JSON file reads the same
    path.write_text(json.dumps(example))
    assert list(SquarePayoutEntries(path)) == records


# -- the payout entry reader -------------------------------------------------------------------


def _entry(
    entry_type: str | None, gross: int, fee: int, net: int | None = None, **extra: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": f"poe_{entry_type}_{gross}",
        "payout_id": "po_1",
        "effective_at": "2026-01-03T04:05:06Z",
        "gross_amount_money": {"amount": gross, "currency": "EUR"},
        "fee_amount_money": {"amount": fee, "currency": "EUR"},
        "net_amount_money": {"amount": gross - fee if net is None else net, "currency": "EUR"},
        **extra,
    }
    if entry_type is not None:
        entry["type"] = entry_type
    return entry


@pytest.mark.parametrize(
    ("entry", "kind", "amount", "fee", "net", "payment_id"),
    [
        (
            _entry("CHARGE", 1000, 59, type_charge_details={"payment_id": "p1"}),
            RecordKind.PAYMENT,
            1000,
            59,
            941,
            "p1",
        ),
        (
            _entry("CHARGE", -1000, -59, type_charge_details={"payment_id": "p1"}),
            RecordKind.PAYMENT_REVERSAL,
            1000,
            -59,
            -941,
            "p1",
        ),
        (
            _entry("REFUND", -400, -12, type_refund_details={"payment_id": "p1", "refund_id": "r"}),
            RecordKind.REFUND,
            400,
            -12,
            -388,
            "p1",
        ),
        (
            _entry("REFUND", 400, 0, type_refund_details={"payment_id": "p1"}),
            RecordKind.REFUND_REVERSAL,
            400,
            0,
            400,
            "p1",
        ),
        (
            _entry(
                "OPEN_DISPUTE",
                -1000,
                0,
                type_open_dispute_details={"payment_id": "p1", "dispute_id": "d"},
            ),
            RecordKind.DISPUTE,
            1000,
            0,
            -1000,
            "p1",
        ),
        (
            _entry("DISPUTE", -1500, 1500 - 1500, type_dispute_details={"payment_id": "p1"}),
            RecordKind.DISPUTE,
            1500,
            0,
            -1500,
            "p1",
        ),
        (
            _entry(
                "DISPUTE", 1000, 0, type_dispute_details={"payment_id": "p1", "dispute_id": "d"}
            ),
            RecordKind.DISPUTE_REVERSAL,
            1000,
            0,
            1000,
            "p1",
        ),
        (
            _entry("FEE", 0, 25, type_fee_details={"payment_id": "p1"}),
            RecordKind.OTHER,
            0,
            25,
            -25,
            "p1",
        ),
        (
            _entry("DEPOSIT_FEE", -150, 0, type_deposit_fee_details={"payout_id": "po_0"}),
            RecordKind.OTHER,
            150,
            0,
            -150,
            None,
        ),
        (
            _entry("HOLD_ADJUSTMENT", -700, 0, type_hold_adjustment_details={"payment_id": "p2"}),
            RecordKind.OTHER,
            700,
            0,
            -700,
            "p2",
        ),
        (_entry("A_TYPE_SQUARE_ADDS_LATER", 10, 0), RecordKind.OTHER, 10, 0, 10, None),
        (_entry(None, 10, 1), RecordKind.OTHER, 10, 1, 9, None),
    ],
    ids=lambda v: (
        v["type"] + str(v["gross_amount_money"]["amount"])
        if isinstance(v, dict) and "type" in v
        else None
    ),
)
def test_each_entry_type_maps_to_a_kind_with_signed_fee_and_net(
    entry: dict[str, Any], kind: RecordKind, amount: int, fee: int, net: int, payment_id: str | None
) -> None:
    orders = {"p1": "ord_1", "p2": "ord_2"}
    (record,) = SquarePayoutEntries({"payout_entries": [entry]}, order_of=orders)
    assert record.kind is kind
    assert record.status is RecordStatus.SUCCEEDED
    assert (record.amount, record.fee, record.net) == (
        Money(amount, "EUR"),
        Money(fee, "EUR"),
        Money(net, "EUR"),
    )
    assert record.payment_id == payment_id
    assert record.order_id == (orders.get(payment_id) if payment_id else None)
    assert record.record_id == entry["id"]
    assert record.provider == "square"
    assert record.occurred_at == datetime(2026, 1, 3, 4, 5, 6, tzinfo=UTC)


def test_missing_fee_or_net_is_derived_from_the_other() -> None:
    no_fee = _entry("CHARGE", 1000, 0)
    del no_fee["fee_amount_money"]
    no_fee["net_amount_money"]["amount"] = 970
    no_net = _entry("CHARGE", 1000, 30)
    del no_net["net_amount_money"]
    a, b = SquarePayoutEntries({"payout_entries": [no_fee, no_net]})
    assert (a.fee, a.net) == (Money(30, "EUR"), Money(970, "EUR"))
    assert (b.fee, b.net) == (Money(30, "EUR"), Money(970, "EUR"))


def test_order_of_as_mapping_function_or_nothing() -> None:
    entries = {
        "payout_entries": [
            _entry("CHARGE", 100, 3, type_charge_details={"payment_id": "p1"}),
            _entry("REFUND", -100, 0, type_refund_details={"payment_id": "p2"}),
            _entry("CHARGE", 200, 3, type_charge_details={"payment_id": "unknown"}),
        ]
    }
    mapped = [r.order_id for r in SquarePayoutEntries(entries, order_of={"p1": "A", "p2": "B"})]
    assert mapped == ["A", "B", None]
    asked: list[str] = []

    def lookup(payment_id: str) -> str | None:
        asked.append(payment_id)
        return {"p1": "X"}.get(payment_id)

    assert [r.order_id for r in SquarePayoutEntries(entries, order_of=lookup)] == ["X", None, None]
    assert asked == ["p1", "p2", "unknown"]
    assert [r.order_id for r in SquarePayoutEntries(entries)] == [None, None, None]
    with pytest.raises(ValidationError, match="order_of must be a mapping or a function"):
        SquarePayoutEntries(entries, order_of=42)  # type: ignore[arg-type]
    with pytest.raises(ReportFormatError, match=r"order_of\('p1'\) must give a str or None"):
        list(SquarePayoutEntries(entries, order_of=lambda _: 7))  # type: ignore[arg-type,return-value]


def test_a_bad_entry_names_its_page_and_index_or_is_counted() -> None:
    good = _entry("CHARGE", 100, 3, type_charge_details={"payment_id": "p1"})
    inconsistent = _entry("CHARGE", 100, 3, net=90)
    no_gross = _entry("CHARGE", 100, 3)
    del no_gross["gross_amount_money"]
    mixed = _entry("CHARGE", 100, 3)
    mixed["fee_amount_money"]["currency"] = "USD"
    floaty = _entry("CHARGE", 100, 3)
    floaty["gross_amount_money"]["amount"] = 1.5
    pages = [
        {"payout_entries": [good]},
        {"payout_entries": [good, inconsistent, no_gross, mixed, floaty, "x"]},
    ]
    with pytest.raises(ReportFormatError) as raised:
        list(SquarePayoutEntries(pages))
    assert str(raised.value) == (
        "<square payout entries page 2>:2: payout_entries[1]: gross 100 - fee 3 != net 90 "
        "(EUR minor units)"
    )
    reader = SquarePayoutEntries(pages, skip_bad_rows=True)
    assert len(list(reader)) == 2
    assert [(bad.line, bad.reason.split(":")[0]) for bad in reader.bad_rows] == [
        (2, "payout_entries[1]"),
        (3, "payout_entries[2]"),
        (4, "payout_entries[3]"),
        (5, "payout_entries[4]"),
        (6, "payout_entries[5]"),
    ]
    reasons = [bad.reason for bad in reader.bad_rows]
    assert "gross_amount_money is missing" in reasons[1]
    assert "fee_amount_money is in USD, the gross in EUR" in reasons[2]
    assert "must be an integer of minor units" in reasons[3]
    assert "must be a JSON object" in reasons[4]


def test_a_page_that_is_not_a_payout_entries_response_is_refused() -> None:
    with pytest.raises(ReportFormatError, match="not a Square ListPayoutEntries response"):
        list(SquarePayoutEntries([{"payments": []}]))
    assert list(SquarePayoutEntries([{}])) == []  # Square's empty answer
    single = _entry("CHARGE", 100, 3)
    assert [r.record_id for r in SquarePayoutEntries(single)] == [single["id"]]


# -- square_records end to end -----------------------------------------------------------------


def _shop(api: SquareMockAPI) -> list[OrderRecord]:
    """The shop's books against Square: ord_match paid right, ord_short charged 21.00 for
    20.00, ord_refunded refunded at Square without the books knowing, and a payment for an
    order the books do not have (ord_ghost)."""
    match = api.add_payment(
        1000, reference_id="ord_match", created_at="2026-01-02T10:00:00Z", fee=59
    )
    short = api.add_payment(
        2100, reference_id="ord_short", created_at="2026-01-02T11:00:00Z", fee=91
    )
    ghost = api.add_payment(
        500, reference_id="ord_ghost", created_at="2026-01-03T10:00:00Z", fee=44
    )
    refunded = api.add_payment(
        700, reference_id="ord_refunded", created_at="2026-01-03T11:00:00Z", fee=50, refunded=700
    )
    # paid out on the 4th: charges of the 2nd and 3rd, the refund, an instant-deposit fee
    payout = api.add_payout(3900, created_at="2026-01-04T06:00:00Z")
    for payment in (match, short, ghost, refunded):
        fee = payment["processing_fee"][0]["amount_money"]["amount"]
        api.add_payout_entry(
            payout["id"],
            "CHARGE",
            payment["amount_money"]["amount"],
            fee,
            payment_id=payment["id"],
            effective_at=payment["created_at"],
        )
    api.add_payout_entry(
        payout["id"],
        "REFUND",
        -700,
        -20,
        payment_id=refunded["id"],
        details={"refund_id": "rf_x"},
        effective_at="2026-01-03T12:00:00Z",
    )
    api.add_payout_entry(payout["id"], "DEPOSIT_FEE", -25, 0, effective_at="2026-01-04T06:00:00Z")
    return [
        OrderRecord("ord_match", Money(1000, "USD"), "paid"),
        OrderRecord("ord_short", Money(2000, "USD"), "paid"),
        OrderRecord("ord_refunded", Money(700, "USD"), "paid"),
    ]


def _cases(report: Any) -> dict[str | None, set[Case]]:
    cases: dict[str | None, set[Case]] = {}
    for line in report.lines:
        cases.setdefault(line.order_id, set()).add(line.case)
    return cases


EXPECTED = {
    "ord_short": {Case.AMOUNT_MISMATCH},
    "ord_refunded": {Case.UNKNOWN_REFUND},
    "ord_ghost": {Case.ORPHAN},
}


def test_square_records_payments_reconcile_end_to_end(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    square_api.list_page_size = 2
    orders = _shop(square_api)
    reader = square_records(square, since=SINCE, until=UNTIL)
    assert isinstance(reader, SquarePayments)
    assert square_api.calls == []  # nothing is listed before the engine reads
    report = reconcile(orders, reader)
    assert report.counts[Case.MATCHED] == 1
    assert _cases(report) == EXPECTED
    assert not any(line.order_id == "ord_match" for line in report.lines)
    assert len(_list_calls(square_api, "/v2/payments")) == 2  # 4 payments, pages of 2
    assert square_api.calls[0].query["begin_time"] == "2026-01-02T00:00:00Z"


def test_square_records_payouts_reconcile_end_to_end(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    square_api.list_page_size = 2
    orders = _shop(square_api)
    since = datetime(2026, 1, 4, tzinfo=UTC)  # the payout's day: the charges are older
    reader = square_records(square, since=since, until=UNTIL, payouts=True)
    assert isinstance(reader, SquarePayoutEntries)
    assert square_api.calls == []
    report = reconcile(orders, reader)
    assert report.counts[Case.MATCHED] == 1
    assert _cases(report) == EXPECTED
    # fees as Square charged them: 59 + 91 + 44 + 50 - 20 given back with the refund
    assert report.fees == {"USD": Money(224, "USD")}
    # net: charges 4300 - 244, the refund -700 + 20, the deposit fee -25
    assert report.net == {"USD": Money(4056 - 680 - 25, "USD")}
    # the payments for the order ids were listed over [since - 7 days, until)
    payments_calls = _list_calls(square_api, "/v2/payments")
    assert payments_calls[0].query["begin_time"] == "2025-12-28T00:00:00Z"
    assert payments_calls[0].query["end_time"] == "2026-01-05T00:00:00Z"
    # ... once: a second read lists the payout entries again, not the payments
    before = len(payments_calls)
    records = list(reader)
    assert len(_list_calls(square_api, "/v2/payments")) == before
    assert sum(r.kind is RecordKind.PAYMENT for r in records) == 4


def test_square_records_payouts_without_lookback_leaves_older_payments_orphans(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    orders = _shop(square_api)
    since = datetime(2026, 1, 4, tzinfo=UTC)
    reader = square_records(square, since=since, until=UNTIL, payouts=True, lookback=timedelta(0))
    records = list(reader)
    assert {r.order_id for r in records} == {None}
    report = reconcile(orders, reader)
    assert report.counts[Case.ORPHAN] == 5  # four charges and the refund, no order ids


def test_square_records_refuses_naive_datetimes_naming_them(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    for payouts in (False, True):
        with pytest.raises(ValidationError, match=r"^since must be a timezone-aware"):
            square_records(square, since=datetime(2026, 1, 1), payouts=payouts)
        with pytest.raises(ValidationError, match=r"^until must be a timezone-aware"):
            square_records(square, until=datetime(2026, 1, 1), payouts=payouts)
    with pytest.raises(ValidationError, match="lookback must be a timedelta >= 0"):
        square_records(square, payouts=True, lookback=timedelta(days=-1))
    assert square_api.calls == []


def test_order_of_from_paygate_s_store(square: SquareProvider, square_api: SquareMockAPI) -> None:
    """order_of as a function over paygate's store: provider payment id -> order id."""
    gateway = paygate.connect(square, store="memory://")
    payment = gateway.create_payment(
        order_id="ord_store", amount=Money(1234, "USD"), payment_method="cnon:card-nonce-ok"
    )
    payout = square_api.add_payout(1234, created_at="2026-01-03T00:00:00Z")
    square_api.add_payout_entry(payout["id"], "CHARGE", 1234, 40, payment_id=payment.id)
    square_api.add_payout_entry(payout["id"], "CHARGE", 99, 3, payment_id="not_paygate_s")

    def order_of(payment_id: str) -> str | None:
        record = gateway.store.get_payment(payment_id)
        return None if record is None else record.order_id

    pages = square.iter_payout_entry_pages(since=SINCE, until=UNTIL)
    records = list(SquarePayoutEntries(pages, order_of=order_of))
    assert [(r.payment_id, r.order_id) for r in records] == [
        (payment.id, "ord_store"),
        ("not_paygate_s", None),
    ]


# -- through records_from_provider and the command line ----------------------------------------


def test_records_from_provider_reads_square_payments_or_payouts(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    orders = _shop(square_api)
    gateway = paygate.connect(square)
    payments = records_from_provider(gateway, since=SINCE, until=UNTIL)
    assert isinstance(payments, SquarePayments)
    assert _cases(reconcile(orders, payments)) == EXPECTED
    payouts = records_from_provider(
        square, since=datetime(2026, 1, 4, tzinfo=UTC), until=UNTIL, payouts=True
    )
    assert isinstance(payouts, SquarePayoutEntries)
    report = reconcile(orders, payouts)
    assert _cases(report) == EXPECTED
    assert report.fees == {"USD": Money(224, "USD")}


@pytest.mark.parametrize("payouts", [False, True])
def test_cli_from_api_square_payments_or_payouts(
    square: SquareProvider,
    square_api: SquareMockAPI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    payouts: bool,
) -> None:
    from paygate.__main__ import main
    from paygate.reconcile import cli

    orders = _shop(square_api)
    books = tmp_path / "orders.csv"
    books.write_text(
        "order_id,amount,currency,status\n"
        + "".join(f"{o.order_id},{o.amount.amount / 100:.2f},USD,paid\n" for o in orders)
    )
    used: list[str] = []

    def gateway_of(args: Any) -> paygate.Gateway:
        used.append(args.provider)  # the adapter the environment would configure
        return paygate.connect(square)

    monkeypatch.setattr(cli, "_gateway", gateway_of)
    out = tmp_path / "report.json"
    since = "2026-01-04" if payouts else "2026-01-02"
    argv = ["reconcile", "--provider", "square", "--from-api", "--since", since,
            "--until", "2026-01-05", "--orders", str(books), "--out", str(out)]  # fmt: skip
    assert main([*argv, "--payouts"] if payouts else argv) == 1
    assert used == ["square"]
    counts = json.loads(out.read_text())["counts"]
    assert counts == {"matched": 1, "amount_mismatch": 1, "unknown_refund": 1, "orphan": 1}
    listed = {call.path for call in square_api.calls}
    assert ("/v2/payouts" in listed) is payouts


def test_cli_payouts_needs_from_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from paygate.__main__ import main

    report = tmp_path / "payments.json"
    report.write_text("{}")
    books = tmp_path / "orders.csv"
    books.write_text("order_id,amount,currency,status\n")
    argv = ["reconcile", "--provider", "square", "--report", str(report), "--payouts",
            "--orders", str(books)]  # fmt: skip
    assert main(argv) == 2
    assert "--payouts goes with --from-api" in capsys.readouterr().err


# -- retries of the page requests --------------------------------------------------------------


def _recording_policy(attempts: int = 3) -> tuple[RetryPolicy, list[float]]:
    """A policy whose backoff is recorded, not slept: 0.5s, then 1.0s (no jitter)."""
    slept: list[float] = []
    return RetryPolicy(attempts=attempts, base_delay=0.5, jitter=0, sleep=slept.append), slept


def _fail_request(api: SquareMockAPI, number: int, times: int = 1, **failure: Any) -> None:
    """Answer request ``number`` (1-based) and the ``times - 1`` after it with an error."""
    failure = {"status": 503, "code": "SERVICE_UNAVAILABLE", "category": "API_ERROR", **failure}

    def observe(call: Any) -> None:
        if len(api.calls) == number - 1:
            api.fail_next(times=times, **failure)

    api.observers.append(observe)


@pytest.mark.parametrize(
    "failure",
    [
        {},  # 503 SERVICE_UNAVAILABLE
        {"status": 429, "code": "RATE_LIMITED", "category": "RATE_LIMIT_ERROR"},
        {"exception": httpx.ConnectError},
    ],
    ids=["503", "429", "network"],
)
@pytest.mark.parametrize("through", ["square_records", "gateway", "square_records_gateway"])
def test_a_failed_payments_page_is_retried_with_the_same_cursor(
    square: SquareProvider,
    square_api: SquareMockAPI,
    failure: dict[str, Any],
    through: str,
) -> None:
    square_api.list_page_size = 2
    inside = _seed_payments(square_api)
    _fail_request(square_api, 2, **failure)
    policy, slept = _recording_policy()
    if through == "gateway":  # the Gateway's own policy, by default
        gateway = paygate.connect(square, retry=policy)
        records = records_from_provider(gateway, since=SINCE, until=UNTIL)
    elif through == "square_records_gateway":
        records = square_records(paygate.connect(square, retry=policy), since=SINCE, until=UNTIL)
    else:
        records = square_records(square, since=SINCE, until=UNTIL, retry=policy)

    assert [r.payment_id for r in records] == [p["id"] for p in inside]  # each once
    answered = [call for call in square_api.calls if not call.scripted]
    failed = [call for call in square_api.calls if call.scripted]
    if "exception" in failure:
        assert len(answered) == 3 and not failed  # the failed request got no answer
    else:
        assert [call.status for call in square_api.calls] == [200, failure.get("status", 503),
                                                             200, 200]  # fmt: skip
        assert failed[0].query == answered[1].query  # the same request again
    assert answered[1].query["cursor"] == answered[0].response["cursor"]
    assert [bool(call.query.get("cursor")) for call in answered] == [False, True, True]
    assert slept == [0.5]


@pytest.mark.parametrize(
    ("status", "code", "category", "error"),
    [
        (401, "UNAUTHORIZED", "AUTHENTICATION_ERROR", AuthenticationError),
        (400, "BAD_REQUEST", "INVALID_REQUEST_ERROR", InvalidRequest),
    ],
)
def test_a_non_retryable_page_error_is_not_retried(
    square: SquareProvider,
    square_api: SquareMockAPI,
    status: int,
    code: str,
    category: str,
    error: type[Exception],
) -> None:
    square_api.list_page_size = 2
    _seed_payments(square_api)
    _fail_request(square_api, 2, status=status, code=code, category=category)
    policy, slept = _recording_policy()
    with pytest.raises(error):
        list(square_records(square, since=SINCE, until=UNTIL, retry=policy))
    assert len(square_api.calls) == 2 and slept == []


def test_attempts_exhausted_raise_provider_unavailable(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    square_api.list_page_size = 2
    _seed_payments(square_api)
    _fail_request(square_api, 2, times=3)
    policy, slept = _recording_policy(attempts=3)
    pages = square.iter_payment_pages(since=SINCE, until=UNTIL, retry=policy)
    assert len(next(pages)["payments"]) == 2
    with pytest.raises(ProviderUnavailable) as failed:
        next(pages)
    assert failed.value.http_status == 503 and failed.value.retryable
    assert [call.status for call in square_api.calls] == [200, 503, 503, 503]
    assert len({json.dumps(call.query, sort_keys=True) for call in square_api.calls[1:]}) == 1
    assert slept == [0.5, 1.0]


def test_a_bare_adapter_is_not_retried_unless_asked(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    square_api.list_page_size = 2
    _seed_payments(square_api)
    _fail_request(square_api, 2)
    with pytest.raises(ProviderUnavailable):
        list(records_from_provider(square, since=SINCE, until=UNTIL))
    assert len(square_api.calls) == 2


def test_payout_entry_and_payout_pages_are_retried_through_the_gateway(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    square_api.list_page_size = 2
    seeded = _seed_payouts(square_api)
    policy, slept = _recording_policy()
    gateway = paygate.connect(square, retry=policy)
    # the requests: payouts page 1, the first payout's entries page 1 (fails, then again),
    # payments (the order lookup), its entries page 2, the second payout's entries, payouts
    # page 2 (request 7: fails, then again)
    _fail_request(square_api, 2)
    _fail_request(square_api, 7)

    records = records_from_provider(gateway, since=SINCE, until=UNTIL, payouts=True)

    assert [r.record_id for r in records] == [e["id"] for e in seeded["entries"]]  # each once
    calls = square_api.calls
    scripted = [i for i, call in enumerate(calls) if call.scripted]
    assert [(calls[i].path, calls[i + 1].path) for i in scripted] == [
        (f"/v2/payouts/{seeded['first']['id']}/payout-entries",) * 2,
        ("/v2/payouts",) * 2,
    ]
    assert all(calls[i].query == calls[i + 1].query for i in scripted)
    assert calls[scripted[1]].query["cursor"]  # the payouts' second page, same cursor
    assert slept == [0.5, 0.5]
