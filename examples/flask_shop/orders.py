"""The shop's own order table: one SQLite file, plain ``sqlite3``.

The shop creates the order *before* it asks for money (order first): the order id is what
paygate derives its idempotency keys from, so a double-clicked "Pay" never charges twice.

Fulfilment is guarded here too: `OrderBook.fulfil` moves an order from ``pending``
to ``paid`` with one conditional ``UPDATE`` inside a write transaction and sends the
receipt only if that update changed the row. However often the payment-succeeded handler
runs (a redelivery after a failure, two workers racing), the receipt goes out once.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from paygate import Money

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id           TEXT PRIMARY KEY,
    sku          TEXT NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity > 0),
    total_minor  INTEGER NOT NULL,     -- money as integer minor units, never a float
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending',   -- pending | paid
    created_at   TEXT NOT NULL,
    paid_at      TEXT
)
"""


@dataclass(frozen=True)
class Order:
    id: str
    sku: str
    quantity: int
    total: Money
    status: str
    created_at: str
    paid_at: str | None


def _order(row: sqlite3.Row) -> Order:
    return Order(
        id=row["id"],
        sku=row["sku"],
        quantity=row["quantity"],
        total=Money(row["total_minor"], row["currency"]),
        status=row["status"],
        created_at=row["created_at"],
        paid_at=row["paid_at"],
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class OrderBook:
    """Orders in one SQLite file. A fresh connection per call: safe from any thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with self._connect() as conn:
            conn.execute(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # autocommit mode; write paths open their own BEGIN IMMEDIATE transaction
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    def create(self, sku: str, quantity: int, total: Money) -> Order:
        order_id = f"ord_{uuid.uuid4().hex[:16]}"
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO orders (id, sku, quantity, total_minor, currency, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (order_id, sku, quantity, total.amount, total.currency, _now()),
            )
        order = self.get(order_id)
        assert order is not None
        return order

    def get(self, order_id: str) -> Order | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        return None if row is None else _order(row)

    # --8<-- [start:fulfil]
    def fulfil(self, order_id: str, send_receipt: Callable[[Order], None]) -> bool:
        """Mark the order paid and send its receipt, once. True if this call did it.

        The receipt is sent inside the write transaction: if sending raises, the update is
        rolled back, the webhook answers 5xx and the provider's redelivery tries again.
        """
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock: racing workers queue here
            try:
                changed = conn.execute(
                    "UPDATE orders SET status = 'paid', paid_at = ?"
                    " WHERE id = ? AND status = 'pending'",
                    (_now(), order_id),
                ).rowcount
                if changed:
                    row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
                    send_receipt(_order(row))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return bool(changed)

    # --8<-- [end:fulfil]
