"""CSV readers with a column mapping: the shop's orders, and any provider's export."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, TypeVar

from paygate.errors import ValidationError
from paygate.reconcile._base import OrderReader, ProviderReader, Source
from paygate.reconcile._common import (
    InternalRow,
    ProviderRow,
    currency_code,
    major_to_minor,
    minor_int,
    parse_timestamp,
)
from paygate.reconcile._model import (
    ORDER_STATUS_WORDS,
    OrderStatus,
    RecordKind,
    RecordStatus,
    order_status,
)

__all__ = ["GenericCSV", "OrdersCSV"]

AmountUnit = Literal["major", "minor"]

#: OrdersCSV's default columns; a trailing "?" marks an optional one
ORDER_COLUMNS: dict[str, str] = {
    "order_id": "order_id",
    "amount": "amount",
    "currency": "currency",
    "status": "status",
    "created_at": "created_at?",
    "refunded": "refunded?",
}

#: GenericCSV's default columns
RECORD_COLUMNS: dict[str, str] = {
    "record_id": "id",
    "order_id": "order_id",
    "amount": "amount",
    "currency": "currency",
    "status": "status?",
    "kind": "type?",
    "fee": "fee?",
    "net": "net?",
    "payment_id": "payment_id?",
    "occurred_at": "created_at?",
}

# provider-export words -> (kind) and (status); extend per reader with kind_map/status_map
RECORD_KIND_WORDS: dict[str, RecordKind] = {
    **{kind.value: kind for kind in RecordKind},
    "charge": RecordKind.PAYMENT,
    "sale": RecordKind.PAYMENT,
    "capture": RecordKind.PAYMENT,
    "chargeback": RecordKind.DISPUTE,
}
RECORD_STATUS_WORDS: dict[str, RecordStatus] = {
    **{status.value: status for status in RecordStatus},
    **dict.fromkeys(
        ["completed", "complete", "paid", "captured", "settled", "success"], RecordStatus.SUCCEEDED
    ),
    **dict.fromkeys(["processing", "authorized", "approved"], RecordStatus.PENDING),
    **dict.fromkeys(["declined", "canceled", "cancelled", "denied", "error"], RecordStatus.FAILED),
}


def _mapping(base: Mapping[str, str], override: Mapping[str, str] | None) -> dict[str, str]:
    columns = dict(base)
    for key, value in (override or {}).items():
        if key not in base:
            raise ValidationError(f"unknown column role {key!r}: expected one of {', '.join(base)}")
        columns[key] = value
    return columns


def _check_unit(amount_unit: str) -> None:
    if amount_unit not in ("major", "minor"):
        raise ValidationError(f"amount_unit must be 'major' or 'minor', got {amount_unit!r}")


def _minor(text: str, currency: str) -> int:
    return minor_int(text)


#: amount_unit -> ``(text, currency) -> minor units``
AMOUNT_PARSERS: dict[str, Callable[[str, str], int]] = {"major": major_to_minor, "minor": _minor}


def _cell(row: list[str], index: int | None) -> str:
    """The cell of an optional column, "" when the file lacks the column."""
    return row[index] if index is not None else ""


_Meaning = TypeVar("_Meaning")


def _word(
    words: Mapping[str, _Meaning], row: list[str], index: int | None, default: _Meaning, what: str
) -> _Meaning:
    """What the word in column ``index`` means (``default`` when the file lacks the column)."""
    if index is None:
        return default
    word = row[index].strip().lower()
    found = words.get(word)
    if found is None:
        raise ValidationError(f"unknown record {what} {word!r}")
    return found


class OrdersCSV(OrderReader):
    """The shop's orders from a CSV: ``order_id,amount,currency,status[,created_at,refunded]``.

    ``columns`` maps roles to the file's own column names (``{"order_id": "Order No"}``);
    ``amount_unit`` says whether amounts are major units (``"19.99"``) or minor
    (``"1999"``); ``currency`` is the default when the file has no currency column (map
    ``"currency"`` to ``""``); ``status_map`` adds the shop's own status words.
    """

    what = "an orders CSV"

    def __init__(
        self,
        source: Source,
        *,
        columns: Mapping[str, str] | None = None,
        amount_unit: AmountUnit = "major",
        currency: str | None = None,
        status_map: Mapping[str, str | OrderStatus] | None = None,
        skip_bad_rows: bool = False,
    ) -> None:
        _check_unit(amount_unit)
        self.columns = _mapping(ORDER_COLUMNS, columns)
        if currency is not None:
            currency_code(currency or "", lower_ok=True)
            if self.columns["currency"] == "currency":
                self.columns["currency"] = "currency?"
        self.amount_unit = amount_unit
        self.default_currency = currency
        self.status_words: dict[str, OrderStatus] = dict(ORDER_STATUS_WORDS)
        for word, status in (status_map or {}).items():
            self.status_words[word.strip().lower()] = order_status(status)
        super().__init__(source, skip_bad_rows=skip_bad_rows)

    def _wanted(self) -> dict[str, str | None]:
        return {k: (v or None) for k, v in self.columns.items()}

    def _row_parser(
        self, pos: dict[str, int | None], width: int, with_time: bool
    ) -> Callable[[list[str]], InternalRow]:
        i_id, i_amount, i_status = pos["order_id"], pos["amount"], pos["status"]
        i_cur, i_created, i_refunded = pos["currency"], pos["created_at"], pos["refunded"]
        assert i_id is not None and i_amount is not None and i_status is not None
        default = self.default_currency
        words = self.status_words
        amount_of = AMOUNT_PARSERS[self.amount_unit]

        def parse_row(row: list[str]) -> InternalRow:
            if len(row) != width:
                raise ValidationError(f"row has {len(row)} fields, the header {width}")
            order_id = row[i_id]
            if not order_id:
                raise ValidationError("empty order id")
            cur_text = row[i_cur] if i_cur is not None else ""
            currency = currency_code(cur_text or default or "", lower_ok=True)
            text = row[i_amount]
            amount = amount_of(text, currency)
            if amount < 0:
                raise ValidationError(f"negative order amount {text!r}")
            status = words.get(row[i_status]) or words.get(row[i_status].strip().lower())
            if status is None:
                raise ValidationError(f"unknown order status {row[i_status]!r}")
            created = None
            if with_time and i_created is not None and row[i_created]:
                created = parse_timestamp(row[i_created])
            refunded = None
            if i_refunded is not None and row[i_refunded]:
                refunded = amount_of(row[i_refunded], currency)
            return (order_id, amount, currency, status, created, refunded)

        return parse_row


class GenericCSV(ProviderReader):
    """Any provider's export as CSV, with a column mapping (see ``RECORD_COLUMNS``).

    Rows without a ``type`` column are payments; without ``status`` they succeeded.
    Amounts may be signed: the magnitude is kept (the kind says the direction).
    """

    what = "a provider CSV"

    def __init__(
        self,
        source: Source,
        *,
        provider: str = "generic",
        columns: Mapping[str, str] | None = None,
        amount_unit: AmountUnit = "major",
        kind_map: Mapping[str, str | RecordKind] | None = None,
        status_map: Mapping[str, str | RecordStatus] | None = None,
        skip_bad_rows: bool = False,
    ) -> None:
        _check_unit(amount_unit)
        self.provider = provider
        self.columns = _mapping(RECORD_COLUMNS, columns)
        self.amount_unit = amount_unit
        self.kinds = dict(RECORD_KIND_WORDS)
        self.kinds.update({k.lower(): RecordKind(v) for k, v in (kind_map or {}).items()})
        self.statuses = dict(RECORD_STATUS_WORDS)
        self.statuses.update({k.lower(): RecordStatus(v) for k, v in (status_map or {}).items()})
        super().__init__(source, skip_bad_rows=skip_bad_rows)

    def _row_parser(
        self, pos: dict[str, int | None], width: int, with_time: bool
    ) -> Callable[[list[str]], ProviderRow]:
        i_id, i_cur, i_amount, i_order = (
            pos["record_id"],
            pos["currency"],
            pos["amount"],
            pos["order_id"],
        )
        assert i_id is not None and i_cur is not None and i_amount is not None
        assert i_order is not None
        kinds, statuses = self.kinds, self.statuses
        amount_of = AMOUNT_PARSERS[self.amount_unit]

        def parse_row(row: list[str]) -> ProviderRow:
            try:
                record_id = row[i_id]
                currency = currency_code(row[i_cur], lower_ok=True)
                amount = amount_of(row[i_amount], currency)
                kind = _word(kinds, row, pos["kind"], RecordKind.PAYMENT, "type")
                status = _word(statuses, row, pos["status"], RecordStatus.SUCCEEDED, "status")
                fee_text = _cell(row, pos["fee"])
                fee = amount_of(fee_text, currency) if fee_text else 0
                net_text = _cell(row, pos["net"])
                net = amount - fee if amount >= 0 else amount
                if net_text:
                    net = amount_of(net_text, currency)
                ts = None
                if with_time and _cell(row, pos["occurred_at"]):
                    ts = parse_timestamp(_cell(row, pos["occurred_at"]))
                payment_id = _cell(row, pos["payment_id"]) or None
                order_id = row[i_order] or None
            except IndexError:
                raise ValidationError(f"row has {len(row)} fields, header {width}") from None
            return (
                order_id,
                kind,
                status,
                abs(amount),
                currency,
                fee,
                net,
                record_id,
                payment_id,
                ts,
            )

        return parse_row
