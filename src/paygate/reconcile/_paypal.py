"""PayPal: the Settlement (STL) report file and Transaction Search API responses.

STL: a CSV whose first cell says what each row is - RH report header, FH file header, SH
section header, CH column header (the names of the SB columns), SB section body (one
transaction), SF section footer, SC section record count, RF report footer, RC report
record count, FF file footer. Amounts are unsigned integers in minor units with a separate
CR/DR column. Transaction Search (``GET /v1/reporting/transactions``) pages hold
``transaction_details[].transaction_info`` with ``money`` objects in major units.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from paygate.errors import ValidationError
from paygate.reconcile._base import ProviderObjects, ProviderReader, Source
from paygate.reconcile._common import (
    ProviderRow,
    csv_rows,
    currency_code,
    describe,
    major_to_minor,
    minor_int,
    parse_timestamp,
)
from paygate.reconcile._model import RecordKind, RecordStatus, ReportFormatError

__all__ = ["PayPalSettlementReport", "PayPalTransactionSearch", "tcode_kind"]

#: T-code (transaction event code) families -> kind. Exact codes first, then the
#: three-character group ("T00" = payments received). See PayPal's T-code list.
TCODE_KINDS: Mapping[str, RecordKind] = {
    "T1107": RecordKind.REFUND,  # payment refund, initiated by merchant
    "T1106": RecordKind.DISPUTE,  # payment reversal, initiated by PayPal (chargeback/claim)
    "T1201": RecordKind.DISPUTE,  # chargeback
    "T1202": RecordKind.DISPUTE_REVERSAL,  # chargeback reversal
    "T1110": RecordKind.OTHER,  # hold for dispute investigation
    "T1111": RecordKind.OTHER,  # cancellation of hold
    "T1108": RecordKind.OTHER,  # fee reversal
}
TCODE_GROUPS: Mapping[str, RecordKind] = {
    "T00": RecordKind.PAYMENT,  # payments received
    "T03": RecordKind.PAYMENT,  # bank deposit into PayPal (not per order, but a payment in)
    "T11": RecordKind.REFUND,  # reversals not listed above: treat as money given back
    "T12": RecordKind.DISPUTE,  # adjustments: chargebacks and their reversals
}

#: Transaction Search transaction_status -> status. V = fully reversed: the payment itself
#: succeeded, its refund appears as its own T1107 record.
TS_STATUSES: Mapping[str, RecordStatus] = {
    "S": RecordStatus.SUCCEEDED,
    "V": RecordStatus.SUCCEEDED,
    "P": RecordStatus.PENDING,
    "D": RecordStatus.FAILED,
}

#: STL section-body columns paygate reads (named by the CH row)
STL_COLUMNS: dict[str, str] = {
    "record_id": "Transaction ID",
    "invoice_id": "Invoice ID",
    "reference_id": "PayPal Reference ID",
    "tcode": "Transaction Event Code",
    "completed": "Transaction Completion Date",
    "direction": "Transaction Debit or Credit",
    "gross": "Gross Transaction Amount",
    "currency": "Gross Transaction Currency",
    "fee_direction": "Fee Debit or Credit",
    "fee": "Fee Amount",
    "custom": "Custom Field?",
}


def tcode_kind(tcode: str) -> RecordKind:
    return TCODE_KINDS.get(tcode) or TCODE_GROUPS.get(tcode[:3], RecordKind.OTHER)


def _check_order_field(order_field: str) -> None:
    if order_field not in ("invoice", "custom"):
        raise ValidationError(f"order_field must be 'invoice' or 'custom', got {order_field!r}")


class PayPalSettlementReport(ProviderReader):
    """A PayPal Settlement (STL) report file.

    The order id is the ``Invoice ID`` (what paygate sends as the PayPal invoice id), or,
    with ``order_field="custom"``, the ``Custom Field``.
    """

    provider = "paypal"
    what = "a PayPal settlement (STL) report"

    def __init__(
        self, source: Source, *, order_field: str = "invoice", skip_bad_rows: bool = False
    ) -> None:
        _check_order_field(order_field)
        self.order_field = order_field
        super().__init__(source, skip_bad_rows=skip_bad_rows)

    def _check_head(self, head: str, name: str) -> None:
        first = head.lstrip().split(",", 1)[0].strip().strip('"')
        if first != "RH":
            raise ReportFormatError(
                f"not {self.what}: the first row should be the RH report header, "
                f"found {first[:20]!r}",
                path=name,
                line=1,
            )

    def iter_compact(self, *, with_time: bool = True) -> Iterator[ProviderRow]:
        handle, name, owned = self._open()
        errors = self._errors(name)
        reader = csv_rows(handle)
        pos: dict[str, int | None] | None = None
        width = section_rows = 0
        try:
            for row in reader:
                kind_of_row = row[0].strip() if row else ""
                if kind_of_row == "CH":
                    named = {col.strip(): i for i, col in enumerate(row)}
                    missing = [
                        c for c in STL_COLUMNS.values() if not c.endswith("?") and c not in named
                    ]
                    if missing:
                        raise ReportFormatError(
                            f"CH row lacks column(s) {', '.join(map(repr, missing))}",
                            path=name,
                            line=reader.line_num,
                        )
                    pos = {k: named.get(c.rstrip("?")) for k, c in STL_COLUMNS.items()}
                    width = len(row)
                    section_rows = 0
                elif kind_of_row == "SB":
                    section_rows += 1
                    if pos is None:
                        errors.bad(reader.line_num, "SB row before any CH column header row")
                        continue
                    try:
                        yield self._body(row, pos, width, with_time)
                    except ValidationError as exc:
                        errors.bad(reader.line_num, describe(exc))
                elif kind_of_row == "SC" and len(row) > 1 and row[1].strip().isdigit():
                    if int(row[1]) != section_rows:
                        says = f"SC says {row[1].strip()} section rows"
                        errors.bad(reader.line_num, f"{says}, the section has {section_rows}")
                elif kind_of_row not in ("RH", "FH", "SH", "SF", "RF", "RC", "FF", ""):
                    errors.bad(reader.line_num, f"unknown STL row type {kind_of_row[:10]!r}")
        finally:
            if owned:
                handle.close()

    def _body(
        self, row: list[str], pos: dict[str, int | None], width: int, with_time: bool
    ) -> ProviderRow:
        if len(row) < width:
            raise ValidationError(f"SB row has {len(row)} fields, the CH row {width}")

        def cell(key: str) -> str:
            index = pos[key]
            return row[index].strip() if index is not None else ""

        currency = currency_code(cell("currency"))
        gross = minor_int(cell("gross") or "0")
        fee = minor_int(cell("fee") or "0")
        direction, fee_direction = cell("direction"), cell("fee_direction")
        if direction not in ("CR", "DR"):
            raise ValidationError(f"debit/credit must be CR or DR, got {direction!r}")
        if fee and fee_direction not in ("CR", "DR"):
            raise ValidationError(f"fee debit/credit must be CR or DR, got {fee_direction!r}")
        signed_gross = gross if direction == "CR" else -gross
        signed_fee = fee if fee_direction == "DR" else -fee  # a fee debit is a fee charged
        tcode = cell("tcode")
        order_id = cell("invoice_id") if self.order_field == "invoice" else cell("custom")
        record_id = cell("record_id")
        if not record_id:
            raise ValidationError("empty Transaction ID")
        ts = parse_timestamp(cell("completed")) if with_time and cell("completed") else None
        return (
            order_id or None,
            tcode_kind(tcode),
            RecordStatus.SUCCEEDED,  # the STL lists completed, balance-affecting rows only
            gross,
            currency,
            signed_fee,
            signed_gross - signed_fee,
            record_id,
            cell("reference_id") or record_id,
            ts,
        )


class PayPalTransactionSearch(ProviderObjects):
    """Transaction Search responses, page after page (dicts, or paths to JSON files).

    Pages are at most ``page_size`` (<= 500) transactions, so each is parsed whole while
    the pages stream. The order id is ``transaction_info.invoice_id`` (or ``custom_field``
    with ``order_field="custom"``).
    """

    provider = "paypal"
    key = "transaction_details"
    response = "PayPal Transaction Search"
    page_name = "transaction search page"

    def __init__(
        self,
        pages: Iterable[Mapping[str, Any] | str | Path],
        *,
        order_field: str = "invoice",
        skip_bad_rows: bool = False,
    ) -> None:
        _check_order_field(order_field)
        super().__init__(self._listed(pages), skip_bad_rows=skip_bad_rows)
        self.order_field = "invoice_id" if order_field == "invoice" else "custom_field"

    def _row(self, detail: Any, with_time: bool) -> ProviderRow:
        info = detail["transaction_info"]
        amount = info["transaction_amount"]
        currency = currency_code(amount["currency_code"])
        gross = major_to_minor(amount["value"], currency)
        fee_obj = info.get("fee_amount")
        fee = 0
        if fee_obj:
            if fee_obj.get("currency_code") != currency:
                raise ValidationError("fee_amount is in another currency than the transaction")
            # PayPal reports the fee as a negative amount (money taken); paygate's fee is
            # what was charged, so positive
            fee = -major_to_minor(fee_obj["value"], currency)
        tcode = info.get("transaction_event_code", "")
        status_code = info.get("transaction_status", "S")
        status = TS_STATUSES.get(status_code)
        if status is None:
            raise ValidationError(f"unknown transaction_status {status_code!r}")
        ts = None
        when = info.get("transaction_updated_date") or info.get("transaction_initiation_date")
        if with_time and when:
            ts = parse_timestamp(when)
        record_id = info["transaction_id"]
        order_id = info.get(self.order_field) or None
        return (
            order_id,
            tcode_kind(tcode),
            status,
            abs(gross),
            currency,
            fee,
            gross - fee,
            record_id,
            info.get("paypal_reference_id") or record_id,
            ts,
        )
