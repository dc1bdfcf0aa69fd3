"""Square: ListPayments responses (``GET /v2/payments``), page after page.

Each ``Payment`` carries ``amount_money`` (minor units), ``status`` (APPROVED, PENDING,
COMPLETED, CANCELED, FAILED), ``processing_fee[]`` and ``refunded_money``; the order id is
the ``reference_id`` paygate sets when it creates the payment. A payment with
``refunded_money`` yields a second, refund record.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from paygate._iso4217 import EXPONENTS
from paygate.errors import ValidationError
from paygate.reconcile._base import ProviderObjects
from paygate.reconcile._common import ProviderRow, RowErrors, describe, parse_timestamp
from paygate.reconcile._model import RecordKind, RecordStatus, ReportFormatError

__all__ = ["SquarePayments"]

#: Square Payment.status -> status. APPROVED = authorized, not captured yet.
PAYMENT_STATUSES: Mapping[str, RecordStatus] = {
    "COMPLETED": RecordStatus.SUCCEEDED,
    "APPROVED": RecordStatus.PENDING,
    "PENDING": RecordStatus.PENDING,
    "CANCELED": RecordStatus.FAILED,
    "FAILED": RecordStatus.FAILED,
}


def _money(obj: Any, what: str) -> tuple[int, str]:
    if not isinstance(obj, Mapping):
        raise ValidationError(f"{what} is missing")
    amount, currency = obj.get("amount"), obj.get("currency")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationError(f"{what}.amount must be an integer of minor units, got {amount!r}")
    if currency not in EXPONENTS:
        raise ValidationError(f"{what}.currency: unknown currency {currency!r}")
    return amount, str(currency)


class SquarePayments(ProviderObjects):
    """ListPayments response pages (dicts, or paths to JSON files), or bare Payment dicts."""

    provider = "square"

    def __init__(
        self,
        pages: Iterable[Mapping[str, Any] | str | Path],
        *,
        order_field: str = "reference_id",
        skip_bad_rows: bool = False,
    ) -> None:
        if isinstance(pages, (str, Path, Mapping)):
            pages = [pages]
        super().__init__(pages, skip_bad_rows=skip_bad_rows)
        self.order_field = order_field

    def iter_compact(self, *, with_time: bool = True) -> Iterator[ProviderRow]:
        self.bad_rows.clear()
        for page_number, page in enumerate(self.pages, start=1):
            name = f"<square payments page {page_number}>"
            if isinstance(page, (str, Path)):
                name = str(page)
                page = _load_json(Path(page))
            if isinstance(page, Mapping) and "payments" in page:
                payments = page["payments"]
            elif isinstance(page, Mapping) and "amount_money" in page:
                payments = [page]  # a single Payment object
            elif isinstance(page, Mapping) and not page:
                payments = []  # Square answers an empty result with {}
            else:
                payments = None
            if not isinstance(payments, list):
                raise ReportFormatError(
                    "not a Square ListPayments response (no payments list)", path=name
                )
            errors = RowErrors(name, self.skip_bad_rows, self.bad_rows)
            for number, payment in enumerate(payments, start=1):
                try:
                    yield from self._payment(payment, with_time)
                except (KeyError, TypeError, ValueError) as exc:
                    errors.bad(number, f"payments[{number - 1}]: {describe(exc)}")

    def _payment(self, payment: Any, with_time: bool) -> Iterator[ProviderRow]:
        if not isinstance(payment, Mapping):
            raise ValidationError("a payment must be a JSON object")
        payment_id = payment["id"]
        amount, currency = _money(payment.get("amount_money"), "amount_money")
        status = PAYMENT_STATUSES.get(payment.get("status", ""))
        if status is None:
            raise ValidationError(f"unknown payment status {payment.get('status')!r}")
        fee = 0
        for entry in payment.get("processing_fee") or []:
            fee_amount, fee_currency = _money(entry.get("amount_money"), "processing_fee")
            if fee_currency != currency:
                raise ValidationError("processing_fee is in another currency than the payment")
            fee += fee_amount
        total = amount
        if isinstance(payment.get("tip_money"), Mapping):
            total += _money(payment["tip_money"], "tip_money")[0]
        ts = None
        if with_time and payment.get("created_at"):
            ts = parse_timestamp(payment["created_at"])
        order_id = payment.get(self.order_field) or None
        settled = status is RecordStatus.SUCCEEDED
        yield (
            order_id,
            RecordKind.PAYMENT,
            status,
            amount,
            currency,
            fee if settled else 0,
            total - fee if settled else 0,
            payment_id,
            payment_id,
            ts,
        )
        refunded = payment.get("refunded_money")
        if refunded:
            refund_amount, refund_currency = _money(refunded, "refunded_money")
            if refund_amount:
                updated = payment.get("updated_at")
                yield (
                    order_id,
                    RecordKind.REFUND,
                    RecordStatus.SUCCEEDED,
                    refund_amount,
                    refund_currency,
                    0,
                    -refund_amount,
                    f"{payment_id}:refunds",
                    payment_id,
                    parse_timestamp(updated) if with_time and updated else ts,
                )


def _load_json(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ReportFormatError("no such file", path=str(path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportFormatError(f"not a JSON file: {exc}", path=str(path)) from None
