"""The internal side from a paygate store: one order per order id, from its payments.

Every [`paygate.stores.Store`][paygate.stores.Store] streams its payments with ``iter_payments()``;
this adapter asks only for that one method (`PaymentSource`), yielding ``PaymentRecord`` objects or
``Payment`` objects, so any other source of payments can stand in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from paygate.errors import ConfigurationError
from paygate.models import Payment, PaymentStatus
from paygate.reconcile._base import order_records
from paygate.reconcile._common import InternalRow, timestamp_of
from paygate.reconcile._model import OrderRecord, OrderStatus

__all__ = ["PaymentSource", "StoreOrders", "orders_from_store"]

#: paygate's payment status -> what it means for the order
PAYMENT_TO_ORDER: dict[PaymentStatus, OrderStatus] = {
    PaymentStatus.SUCCEEDED: OrderStatus.PAID,
    PaymentStatus.PARTIALLY_REFUNDED: OrderStatus.PAID,
    PaymentStatus.REFUNDED: OrderStatus.REFUNDED,
    PaymentStatus.DISPUTED: OrderStatus.DISPUTED,
    PaymentStatus.CHARGED_BACK: OrderStatus.DISPUTED,
    PaymentStatus.FAILED: OrderStatus.FAILED,
    PaymentStatus.CANCELED: OrderStatus.CANCELED,
    PaymentStatus.PENDING: OrderStatus.PENDING,
    PaymentStatus.REQUIRES_ACTION: OrderStatus.PENDING,
    PaymentStatus.PROCESSING: OrderStatus.PENDING,
    PaymentStatus.AUTHORIZED: OrderStatus.PENDING,
}

# when an order has several attempts, the one that got furthest speaks for the order
_RANK = {
    OrderStatus.FAILED: 0,
    OrderStatus.CANCELED: 0,
    OrderStatus.PENDING: 1,
    OrderStatus.PAID: 2,
    OrderStatus.REFUNDED: 2,
    OrderStatus.DISPUTED: 2,
}


@runtime_checkable
class PaymentSource(Protocol):
    def iter_payments(self) -> Iterator[Any]:
        """Every payment the store holds (``PaymentRecord`` or ``Payment``), any order."""
        ...


class StoreOrders:
    """The orders a paygate store knows, as the reconciliation's internal side."""

    def __init__(self, store: Any) -> None:
        if not callable(getattr(store, "iter_payments", None)):
            raise ConfigurationError(
                f"{type(store).__name__} cannot list its payments: reconciliation from a "
                "store needs a store with iter_payments() (see paygate.reconcile."
                "PaymentSource); pass the orders as OrderRecords or a CSV instead"
            )
        self.store = store

    def iter_compact(self, *, with_time: bool = True) -> Iterator[InternalRow]:
        best: dict[str, InternalRow] = {}
        for item in self.store.iter_payments():
            payment: Payment = getattr(item, "payment", item)
            if payment.order_id is None:
                continue
            status = PAYMENT_TO_ORDER[PaymentStatus(payment.status)]
            created = getattr(item, "created_at", None) or timestamp_of(payment.created_at)
            refunded = payment.amount_refunded.amount if payment.amount_refunded else None
            row: InternalRow = (
                payment.order_id,
                payment.amount.amount,
                payment.amount.currency,
                status,
                float(created) if with_time and created else None,
                refunded or None,
            )
            seen = best.get(payment.order_id)
            if seen is None or _RANK[status] > _RANK[seen[3]]:
                best[payment.order_id] = row
        yield from best.values()

    def __iter__(self) -> Iterator[OrderRecord]:
        return order_records(self.iter_compact())


def orders_from_store(store: Any) -> StoreOrders:
    """The internal side from a paygate store (it must offer ``iter_payments()``)."""
    return StoreOrders(store)
