"""Square: ListPayments responses (``GET /v2/payments``) and ListPayoutEntries responses
(``GET /v2/payouts/{id}/payout-entries``), page after page, or straight from the adapter.

Each ``Payment`` carries ``amount_money`` (minor units), ``status`` (APPROVED, PENDING,
COMPLETED, CANCELED, FAILED), ``processing_fee[]`` and ``refunded_money``; the order id is
the ``reference_id`` paygate sets when it creates the payment. A payment with
``refunded_money`` yields a second, refund record.

Each ``PayoutEntry`` is money that moved in a payout: ``type`` (CHARGE, REFUND, DISPUTE,
fees, ...), ``gross_amount_money``, ``fee_amount_money`` and ``net_amount_money``, signed
(a refund's gross is negative; ``net = gross - fee``, a fee Square gave back is negative),
and the payment id in ``type_<type>_details.payment_id``. Entries carry no order id: it is
looked up by payment id through ``order_of``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paygate._iso4217 import EXPONENTS
from paygate.errors import ValidationError
from paygate.reconcile._base import ProviderObjects, Relisting, adapter_and_retry
from paygate.reconcile._common import ProviderRow, parse_timestamp
from paygate.reconcile._model import RecordKind, RecordStatus

if TYPE_CHECKING:  # the squareup SDK is an optional extra: imported only when used
    from paygate._retry import RetryPolicy
    from paygate.gateway import Gateway
    from paygate.providers.square import SquareProvider

__all__ = ["SquarePayments", "SquarePayoutEntries", "square_records"]

#: Square Payment.status -> status. APPROVED = authorized, not captured yet.
PAYMENT_STATUSES: Mapping[str, RecordStatus] = {
    "COMPLETED": RecordStatus.SUCCEEDED,
    "APPROVED": RecordStatus.PENDING,
    "PENDING": RecordStatus.PENDING,
    "CANCELED": RecordStatus.FAILED,
    "FAILED": RecordStatus.FAILED,
}

_S = RecordStatus.SUCCEEDED

#: Square PayoutEntry.type (ActivityType) -> (kind, status). A payout entry is money that
#: already moved, so everything succeeded. Types not listed (fees, holds, reserves,
#: transfers, Square Capital, ...) are OTHER: counted in the fee/net totals, not matched.
PAYOUT_ENTRY_TYPES: Mapping[str, tuple[RecordKind, RecordStatus]] = {
    "CHARGE": (RecordKind.PAYMENT, _S),
    "REFUND": (RecordKind.REFUND, _S),
    "OPEN_DISPUTE": (RecordKind.DISPUTE, _S),  # the chargeback filed: the money is taken
    "DISPUTE": (RecordKind.DISPUTE, _S),  # a dispute's later balance change (see below)
}

#: The sign of an entry's gross in the usual direction of its kind; an entry of the other
#: sign undoes one: a CHARGE taken back, a REFUND returned, a DISPUTE whose money is given
#: back (won) -> the reversal kind.
USUAL_SIGN: Mapping[RecordKind, int] = {
    RecordKind.PAYMENT: 1,
    RecordKind.REFUND: -1,
    RecordKind.DISPUTE: -1,
}
REVERSAL_OF: Mapping[RecordKind, RecordKind] = {
    RecordKind.PAYMENT: RecordKind.PAYMENT_REVERSAL,
    RecordKind.REFUND: RecordKind.REFUND_REVERSAL,
    RecordKind.DISPUTE: RecordKind.DISPUTE_REVERSAL,
}

#: payment id -> order id, as a mapping or a function (None: not known)
OrderOf = Mapping[str, str] | Callable[[str], "str | None"]


def _money(obj: Any, what: str, gross_currency: str | None = None) -> tuple[int, str]:
    """(minor units, currency) of a Square Money; with ``gross_currency``, it must be in it."""
    if not isinstance(obj, Mapping):
        raise ValidationError(f"{what} is missing")
    # Square's Money is {amount, currency}; its payout docs' examples write currency_code
    amount, currency = obj.get("amount"), obj.get("currency") or obj.get("currency_code")
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationError(f"{what}.amount must be an integer of minor units, got {amount!r}")
    if currency not in EXPONENTS:
        raise ValidationError(f"{what}.currency: unknown currency {currency!r}")
    if gross_currency is not None and currency != gross_currency:
        raise ValidationError(f"{what} is in {currency}, the gross in {gross_currency}")
    return amount, str(currency)


class _SquarePages(ProviderObjects):
    """Square's list responses: the objects under ``key``, or a bare object (it has the
    ``single`` fields) as a list of one; Square answers an empty result with ``{}``."""

    single: tuple[str, ...] = ()

    def _objects(self, page: Any) -> Any:
        if not isinstance(page, Mapping):
            return None
        if self.key in page:
            return page[self.key]
        if all(field in page for field in self.single):
            return [page]
        return None if page else []


class SquarePayments(_SquarePages):
    """ListPayments response pages (dicts, or paths to JSON files), or bare Payment dicts."""

    provider = "square"
    key = "payments"
    response = "Square ListPayments"
    page_name = "square payments page"
    single = ("amount_money",)

    def __init__(
        self,
        pages: Iterable[Mapping[str, Any] | str | Path],
        *,
        order_field: str = "reference_id",
        skip_bad_rows: bool = False,
    ) -> None:
        super().__init__(self._listed(pages), skip_bad_rows=skip_bad_rows)
        self.order_field = order_field

    def _rows(self, payment: Any, with_time: bool) -> Iterator[ProviderRow]:
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


class SquarePayoutEntries(_SquarePages):
    """ListPayoutEntries response pages (dicts, or paths to JSON files), or bare PayoutEntry
    dicts; e.g.
    [`SquareProvider.iter_payout_entry_pages`][paygate.providers.square.SquareProvider.iter_payout_entry_pages].

    ``order_of`` resolves a payment id to paygate's order id: a mapping (e.g. built from
    ListPayments pages' ``reference_id``) or a function (e.g. a store lookup); without
    it, or when it answers None, the record has no order id and the engine reports it as
    an orphan. Entry types map to kinds through ``PAYOUT_ENTRY_TYPES`` (the table in
    [Square through the adapter](reconciliation.md#square-through-the-adapter)). ``amount``
    is the gross's magnitude; ``fee`` and ``net`` are Square's, signed (``net == gross - fee``
    is checked).
    """

    provider = "square"
    key = "payout_entries"
    response = "Square ListPayoutEntries"
    page_name = "square payout entries page"
    single = ("payout_id", "type")

    def __init__(
        self,
        pages: Iterable[Mapping[str, Any] | str | Path],
        *,
        order_of: OrderOf | None = None,
        skip_bad_rows: bool = False,
    ) -> None:
        super().__init__(self._listed(pages), skip_bad_rows=skip_bad_rows)
        self.order_of = order_of
        if order_of is None:
            self._resolve: Callable[[str], str | None] = _no_order
        elif isinstance(order_of, Mapping):
            self._resolve = order_of.get
        elif callable(order_of):
            self._resolve = order_of
        else:
            raise ValidationError(
                "order_of must be a mapping or a function of the payment id, "
                f"got {type(order_of).__name__}"
            )

    def _row(self, entry: Any, with_time: bool) -> ProviderRow:
        if not isinstance(entry, Mapping):
            raise ValidationError("a payout entry must be a JSON object")
        entry_id = entry["id"]
        if not isinstance(entry_id, str) or not entry_id:
            raise ValidationError(f"id must be a non-empty string, got {entry_id!r}")
        entry_type = entry.get("type")
        kind, status = PAYOUT_ENTRY_TYPES.get(entry_type or "", (RecordKind.OTHER, _S))
        gross, currency = _money(entry.get("gross_amount_money"), "gross_amount_money")
        fee = net = None
        if entry.get("fee_amount_money") is not None:
            fee = _money(entry["fee_amount_money"], "fee_amount_money", currency)[0]
        if entry.get("net_amount_money") is not None:
            net = _money(entry["net_amount_money"], "net_amount_money", currency)[0]
        if fee is None:
            fee = 0 if net is None else gross - net
        if net is None:
            net = gross - fee
        if gross - fee != net:
            raise ValidationError(
                f"gross {gross} - fee {fee} != net {net} ({currency} minor units)"
            )
        usual = USUAL_SIGN.get(kind)
        if usual is not None and gross * usual < 0:
            kind = REVERSAL_OF[kind]
        payment_id = _payment_id(entry, entry_type)
        order_id = self._resolve(payment_id) if payment_id else None
        if order_id is not None and not isinstance(order_id, str):
            raise ValidationError(
                f"order_of({payment_id!r}) must give a str or None, got {order_id!r}"
            )
        ts = None
        if with_time and entry.get("effective_at"):
            ts = parse_timestamp(entry["effective_at"])
        return (
            order_id or None,
            kind,
            status,
            abs(gross),
            currency,
            fee,
            net,
            entry_id,
            payment_id,
            ts,
        )


def _no_order(payment_id: str) -> str | None:
    return None


def _payment_id(entry: Mapping[str, Any], entry_type: Any) -> str | None:
    """``type_<type>_details.payment_id``, else any ``type_*_details`` object's."""
    details = entry.get(f"type_{entry_type.lower()}_details") if entry_type else None
    candidates = [details] if isinstance(details, Mapping) else []
    candidates += [
        value
        for key, value in entry.items()
        if key.startswith("type_") and key.endswith("_details") and isinstance(value, Mapping)
    ]
    for candidate in candidates:
        payment_id = candidate.get("payment_id")
        if isinstance(payment_id, str) and payment_id:
            return payment_id
    return None


class _OrdersOfPayments:
    """payment id -> order id, from ListPayments over a window; listed at the first
    lookup (not before), then held as one dict for the reader's life."""

    def __init__(self, pages: Iterable[Mapping[str, Any]]) -> None:
        self._pages = pages
        self._orders: dict[str, str] | None = None

    def __call__(self, payment_id: str) -> str | None:
        if self._orders is None:
            self._orders = self._load()
        return self._orders.get(payment_id)

    def _load(self) -> dict[str, str]:
        from paygate.providers.square import order_id_of_payment

        orders: dict[str, str] = {}
        for page in self._pages:
            for payment in page.get("payments") or []:
                order_id = order_id_of_payment(payment)
                if order_id and payment.get("id"):
                    orders[payment["id"]] = order_id
        return orders


def square_records(
    provider: SquareProvider | Gateway,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    payouts: bool = False,
    lookback: timedelta = timedelta(days=7),
    skip_bad_rows: bool = False,
    retry: RetryPolicy | None = None,
) -> SquarePayments | SquarePayoutEntries:
    """Square's records for ``[since, until)`` straight from the adapter, as a streaming
    provider reader for [`reconcile`][paygate.reconcile.reconcile]; see
    [Square through the adapter](reconciliation.md#square-through-the-adapter).

    ``payouts=False``: the payments created in the window, read by
    [`SquarePayments`][paygate.reconcile.SquarePayments]. ``payouts=True``: the entries of the
    payouts created in the window, read by
    [`SquarePayoutEntries`][paygate.reconcile.SquarePayoutEntries]; their order ids come from the
    payments created in ``[since - lookback, until)``, listed at the first entry and **held in
    memory as one dict payment id -> order id** for the reader's life: about 200 bytes a payment.

    ``since``/``until`` must be timezone-aware (a naive one is a ``ValidationError`` naming it,
    raised here, before any request). Each iteration of the reader lists again. ``provider`` is
    the adapter or a [`paygate.Gateway`][paygate.gateway.Gateway] (its adapter). Each page request
    goes through ``retry`` (a [`paygate.RetryPolicy`][paygate.gateway.RetryPolicy]); left out, a
    Gateway's own policy, a bare adapter's none: see
    [Retries of the page requests](reconciliation.md#retries-of-the-page-requests).
    """
    adapter, policy = adapter_and_retry(provider, retry)
    square: SquareProvider = adapter
    if payouts:
        if not isinstance(lookback, timedelta) or lookback < timedelta(0):
            raise ValidationError(f"lookback must be a timedelta >= 0, got {lookback!r}")
        # the entries' window first: its checks name since/until as the caller wrote them
        entries = Relisting(
            lambda: square.iter_payout_entry_pages(since=since, until=until, retry=policy)
        )
        payments_since = None if since is None else since - lookback
        payments = Relisting(
            lambda: square.iter_payment_pages(since=payments_since, until=until, retry=policy)
        )
        return SquarePayoutEntries(
            entries, order_of=_OrdersOfPayments(payments), skip_bad_rows=skip_bad_rows
        )
    return SquarePayments(
        Relisting(lambda: square.iter_payment_pages(since=since, until=until, retry=policy)),
        skip_bad_rows=skip_bad_rows,
    )
