"""CSV readers with a column mapping: the shop's orders, and any provider's export."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Literal

from paygate._iso4217 import EXPONENTS
from paygate.errors import ValidationError
from paygate.reconcile._base import OrderReader, ProviderReader, Source
from paygate.reconcile._common import (
    InternalRow,
    ProviderRow,
    csv_rows,
    describe,
    header_index,
    major_to_minor,
    minor_int,
    parse_timestamp,
)
from paygate.reconcile._model import (
    ORDER_STATUS_WORDS,
    OrderStatus,
    RecordKind,
    RecordStatus,
    ReportFormatError,
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


def _currency(text: str, default: str | None) -> str:
    code = (text or default or "").upper()
    if code not in EXPONENTS:
        raise ValidationError(f"unknown currency {text!r}")
    return code


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
        if amount_unit not in ("major", "minor"):
            raise ValidationError(f"amount_unit must be 'major' or 'minor', got {amount_unit!r}")
        self.columns = _mapping(ORDER_COLUMNS, columns)
        if currency is not None:
            _currency(currency, None)
            if self.columns["currency"] == "currency":
                self.columns["currency"] = "currency?"
        self.amount_unit = amount_unit
        self.default_currency = currency
        self.status_words: dict[str, OrderStatus] = dict(ORDER_STATUS_WORDS)
        for word, status in (status_map or {}).items():
            self.status_words[word.strip().lower()] = order_status(status)
        super().__init__(source, skip_bad_rows=skip_bad_rows)

    def _check_head(self, head: str, name: str) -> None:
        first = head.splitlines()[0] if head else ""
        wanted = {k: (v or None) for k, v in self.columns.items()}
        header_index(
            next(csv_rows(iter([first]))) if first else [], wanted, name=name, what=self.what
        )

    def _layout(self, header: list[str] | None, name: str) -> dict[str, int | None]:
        if header is None:
            raise ReportFormatError("empty file", path=name)
        wanted = {k: (v or None) for k, v in self.columns.items()}
        return header_index(header, wanted, name=name, what=self.what)

    def _row_parser(
        self, pos: dict[str, int | None], width: int, with_time: bool
    ) -> Callable[[list[str]], InternalRow]:
        i_id, i_amount, i_status = pos["order_id"], pos["amount"], pos["status"]
        i_cur, i_created, i_refunded = pos["currency"], pos["created_at"], pos["refunded"]
        assert i_id is not None and i_amount is not None and i_status is not None
        default = self.default_currency
        words = self.status_words
        parse = major_to_minor if self.amount_unit == "major" else None

        def amount_of(text: str, currency: str) -> int:
            return minor_int(text) if parse is None else parse(text, currency)

        def parse_row(row: list[str]) -> InternalRow:
            if len(row) != width:
                raise ValidationError(f"row has {len(row)} fields, the header {width}")
            order_id = row[i_id]
            if not order_id:
                raise ValidationError("empty order id")
            currency = _currency(row[i_cur] if i_cur is not None else "", default)
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

    def iter_compact(self, *, with_time: bool = True) -> Iterator[InternalRow]:
        """One compact row per order (the per-row path: exact errors, any CSV)."""
        handle, name, owned = self._open()
        errors = self._errors(name)
        try:
            reader = csv_rows(handle)
            header = next(reader, None)
            pos = self._layout(header, name)
            assert header is not None
            parse_row = self._row_parser(pos, len(header), with_time)
            for row in reader:
                if not row:
                    continue  # a blank line, as csv.DictReader skips them
                try:
                    yield parse_row(row)
                except ValidationError as exc:
                    errors.bad(reader.line_num, describe(exc))
        finally:
            if owned:
                handle.close()


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
        if amount_unit not in ("major", "minor"):
            raise ValidationError(f"amount_unit must be 'major' or 'minor', got {amount_unit!r}")
        self.provider = provider
        self.columns = _mapping(RECORD_COLUMNS, columns)
        self.amount_unit = amount_unit
        self.kinds = dict(RECORD_KIND_WORDS)
        self.kinds.update({k.lower(): RecordKind(v) for k, v in (kind_map or {}).items()})
        self.statuses = dict(RECORD_STATUS_WORDS)
        self.statuses.update({k.lower(): RecordStatus(v) for k, v in (status_map or {}).items()})
        super().__init__(source, skip_bad_rows=skip_bad_rows)

    def _check_head(self, head: str, name: str) -> None:
        first = head.splitlines()[0] if head else ""
        header_index(
            next(csv_rows(iter([first]))) if first else [],
            dict(self.columns),
            name=name,
            what=self.what,
        )

    def iter_compact(self, *, with_time: bool = True) -> Iterator[ProviderRow]:
        handle, name, owned = self._open()
        errors = self._errors(name)
        try:
            reader = csv_rows(handle)
            header = next(reader, None)
            if header is None:
                raise ReportFormatError("empty file", path=name)
            pos = header_index(header, dict(self.columns), name=name, what=self.what)
            parse = major_to_minor if self.amount_unit == "major" else None
            kinds, statuses = self.kinds, self.statuses
            i_id, i_cur, i_amount, i_order = (
                pos["record_id"],
                pos["currency"],
                pos["amount"],
                pos["order_id"],
            )
            assert i_id is not None and i_cur is not None and i_amount is not None
            assert i_order is not None

            def amount_of(text: str, currency: str) -> int:
                return parse(text, currency) if parse else minor_int(text)

            for row in reader:
                if not row:
                    continue  # a blank line, as csv.DictReader skips them
                try:
                    record_id = row[i_id]
                    currency = _currency(row[i_cur], None)
                    amount = amount_of(row[i_amount], currency)
                    kind = RecordKind.PAYMENT
                    if pos["kind"] is not None:
                        word = row[pos["kind"]].strip().lower()
                        found = kinds.get(word)
                        if found is None:
                            raise ValidationError(f"unknown record type {word!r}")
                        kind = found
                    status = RecordStatus.SUCCEEDED
                    if pos["status"] is not None:
                        word = row[pos["status"]].strip().lower()
                        found_status = statuses.get(word)
                        if found_status is None:
                            raise ValidationError(f"unknown record status {word!r}")
                        status = found_status
                    fee = 0
                    if pos["fee"] is not None and row[pos["fee"]]:
                        fee = amount_of(row[pos["fee"]], currency)
                    net = amount - fee if amount >= 0 else amount
                    if pos["net"] is not None and row[pos["net"]]:
                        net = amount_of(row[pos["net"]], currency)
                    ts = None
                    if with_time and pos["occurred_at"] is not None and row[pos["occurred_at"]]:
                        ts = parse_timestamp(row[pos["occurred_at"]])
                    payment_id = row[pos["payment_id"]] if pos["payment_id"] is not None else None
                    order_id = row[i_order] or None
                    yield (
                        order_id,
                        kind,
                        status,
                        abs(amount),
                        currency,
                        fee,
                        net,
                        record_id,
                        payment_id or None,
                        ts,
                    )
                except (ValidationError, IndexError) as exc:
                    if isinstance(exc, IndexError):
                        exc = ValidationError(f"row has {len(row)} fields, header {len(header)}")
                    errors.bad(reader.line_num, describe(exc))
        finally:
            if owned:
                handle.close()
