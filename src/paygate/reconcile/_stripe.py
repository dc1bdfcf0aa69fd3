"""Stripe: the itemized balance / payout reconciliation report CSV, and Balance Transactions.

The report (``balance_change_from_activity.itemized.*``, ``payout_reconciliation.itemized.*``)
has one row per balance transaction: ``balance_transaction_id, created_utc, currency
(lower-case), gross, fee, net (major units, signed), reporting_category, source_id,
charge_id, payment_intent_id`` and, when the report run asked for it,
``payment_metadata[order_id]`` - the order id paygate sends as metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from operator import itemgetter
from typing import Any

from paygate._iso4217 import EXPONENTS
from paygate.errors import ValidationError
from paygate.reconcile._base import ProviderObjects, ProviderReader, Source
from paygate.reconcile._common import (
    AmountCache,
    ProviderRow,
    get_path,
    parse_timestamp,
)
from paygate.reconcile._model import RecordKind, RecordStatus

__all__ = ["StripeBalanceTransactions", "StripeReportCSV"]

_S = RecordStatus.SUCCEEDED

#: Stripe reporting_category -> (kind, status). A balance transaction only exists once money
#: moved, so everything here succeeded; categories not listed are OTHER (fees, payouts,
#: transfers, tax, ...): counted in the fee/net totals, not matched to orders.
REPORTING_CATEGORIES: Mapping[str, tuple[RecordKind, RecordStatus]] = {
    "charge": (RecordKind.PAYMENT, _S),
    "payment": (RecordKind.PAYMENT, _S),
    "refund": (RecordKind.REFUND, _S),
    "payment_refund": (RecordKind.REFUND, _S),
    "refund_failure": (RecordKind.REFUND_REVERSAL, _S),
    "payment_failure_refund": (RecordKind.REFUND_REVERSAL, _S),
    "dispute": (RecordKind.DISPUTE, _S),
    "dispute_reversal": (RecordKind.DISPUTE_REVERSAL, _S),
    "partial_capture_reversal": (RecordKind.PAYMENT_REVERSAL, _S),
    "charge_failure": (RecordKind.PAYMENT_REVERSAL, _S),
    "payment_reversal": (RecordKind.PAYMENT_REVERSAL, _S),
}
_OTHER = (RecordKind.OTHER, _S)
#: report columns paygate reads; "?" = optional
REPORT_COLUMNS: dict[str, str] = {
    "record_id": "balance_transaction_id",
    "currency": "currency",
    "gross": "gross",
    "fee": "fee",
    "net": "net",
    "category": "reporting_category",
    "created": "created_utc?",
    "source_id": "source_id?",
    "charge_id": "charge_id?",
    "payment_intent_id": "payment_intent_id?",
}

DEFAULT_ORDER_COLUMN = "payment_metadata[order_id]"


class StripeReportCSV(ProviderReader):
    """Rows of a Stripe itemized balance or payout reconciliation report.

    ``order_column`` is the column carrying the order id (the report run must include
    it: ``payment_metadata[order_id]`` by default).
    """

    provider = "stripe"
    what = "a Stripe itemized balance/payout reconciliation report"

    def __init__(
        self,
        source: Source,
        *,
        order_column: str = DEFAULT_ORDER_COLUMN,
        skip_bad_rows: bool = False,
    ) -> None:
        self.columns = {**REPORT_COLUMNS, "order_id": order_column}
        super().__init__(source, skip_bad_rows=skip_bad_rows)

    def _row_parser(
        self,
        pos: dict[str, int | None],
        width: int,
        with_time: bool,
        cache: AmountCache | None = None,
    ) -> Callable[[list[str]], ProviderRow]:
        i_order, i_cat, i_cur, i_gross, i_fee, i_net, i_id = (
            pos[k] for k in ("order_id", "category", "currency", "gross", "fee", "net", "record_id")
        )
        assert None not in (i_order, i_cat, i_cur, i_gross, i_fee, i_net, i_id)
        pick = itemgetter(i_order, i_cat, i_cur, i_gross, i_fee, i_net, i_id)
        id_columns = [
            i
            for i in (pos["payment_intent_id"], pos["charge_id"], pos["source_id"])
            if i is not None
        ]
        i_created = pos["created"] if with_time else None
        cache = AmountCache() if cache is None else cache

        def amount(text: str, currency: str) -> int:
            table = cache.table(currency)
            found = table.get(text)
            return cache.miss(table, text, currency) if found is None else found

        def parse_row(row: list[str]) -> ProviderRow:
            if len(row) != width:
                raise ValidationError(f"row has {len(row)} fields, the header {width}")
            order_id, category, cur_text, gross_text, fee_text, net_text, record_id = pick(row)
            currency = cur_text.upper()  # inline, not currency_code(): the per-row hot path
            if currency not in EXPONENTS:
                raise ValidationError(f"unknown currency {cur_text!r}")
            gross = amount(gross_text, currency)
            fee = amount(fee_text, currency)
            net = amount(net_text, currency)
            if gross - fee != net:
                raise ValidationError(f"gross {gross_text} - fee {fee_text} != net {net_text}")
            kind, status = REPORTING_CATEGORIES.get(category, _OTHER)
            payment_id = next((row[i] for i in id_columns if row[i]), None)
            ts = None
            if i_created is not None and row[i_created]:
                ts = parse_timestamp(row[i_created])
            return (
                order_id or None,
                kind,
                status,
                abs(gross),
                currency,
                fee,
                net,
                record_id,
                payment_id,
                ts,
            )

        return parse_row


class StripeBalanceTransactions(ProviderObjects):
    """Balance Transaction objects from the API (``stripe.BalanceTransaction.list``).

    Pass the objects (dicts or ``StripeObject`` objects, e.g. ``auto_paging_iter()``) listed
    with ``expand=["data.source"]`` so each carries its source's metadata: the order id is
    read from ``source.metadata[order_key]`` (refunds and disputes: from the charge's
    metadata when expanded as ``source.charge``). Amounts there are minor units already.
    """

    provider = "stripe"

    def __init__(
        self,
        objects: Iterable[Mapping[str, Any]],
        *,
        order_key: str = "order_id",
        skip_bad_rows: bool = False,
    ) -> None:
        super().__init__(objects, skip_bad_rows=skip_bad_rows)
        self.order_key = order_key

    def _pages(self) -> Iterator[tuple[str, Iterable[Any]]]:
        yield "<stripe balance transactions>", self.pages

    def _where(self, number: int) -> str:
        return f"balance transaction #{number}"

    def _row(self, obj: Any, with_time: bool) -> ProviderRow:
        obj = dict(obj)
        currency = str(obj["currency"]).upper()
        if currency not in EXPONENTS:
            raise ValidationError(f"unknown currency {obj['currency']!r}")
        gross, fee, net = (int(obj[k]) for k in ("amount", "fee", "net"))
        category = obj.get("reporting_category") or obj.get("type") or ""
        kind, status = REPORTING_CATEGORIES.get(category, _OTHER)
        source = obj.get("source")
        order_id = payment_id = None
        if isinstance(source, Mapping):
            order_id = get_path(dict(source), "metadata", self.order_key)
            charge = source.get("charge")
            if order_id is None and isinstance(charge, Mapping):
                order_id = get_path(dict(charge), "metadata", self.order_key)
            payment_id = (
                source.get("payment_intent")
                or (charge.get("id") if isinstance(charge, Mapping) else charge)
                or source.get("id")
            )
        elif isinstance(source, str):
            payment_id = source
        created = obj.get("created")
        ts = float(created) if with_time and created is not None else None
        return (
            str(order_id) if order_id else None,
            kind,
            status,
            abs(gross),
            currency,
            fee,
            net,
            str(obj["id"]),
            str(payment_id) if payment_id else None,
            ts,
        )
