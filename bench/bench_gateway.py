"""Gateway throughput on the fake provider: handle_webhook events/s and create_payment calls/s.

Stores: MemoryStore, SQLiteStore on a file in WAL mode with synchronous=FULL (the
default: every commit synced) and synchronous=NORMAL, and PostgresStore in a throw-away
schema when a server answers (``PAYGATE_BENCH_POSTGRES_URL`` or the local one; skipped with
a note otherwise). One process, one thread; a handler on payment.succeeded only, as in a
shop. Figures are printed, not asserted.

    python bench/bench_gateway.py [--payments N]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paygate
from paygate import EventType, Money
from paygate.models import WebhookDelivery
from paygate.providers.fake import FakeProvider


def make_deliveries(provider: FakeProvider, payments: int) -> list[WebhookDelivery]:
    """Webhooks of ``payments`` paid payments (payment.created + payment.succeeded each)."""
    side = paygate.connect(provider)
    for i in range(payments):
        side.create_payment(
            order_id=f"bench_{i}", amount=Money.of("12.34", "USD"), payment_method="tok_visa"
        )
    return provider.take_webhooks()


def postgres_base() -> str | None:
    base = os.environ.get("PAYGATE_BENCH_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")  # fmt: skip
    try:
        import psycopg

        psycopg.connect(base, connect_timeout=3).close()
    except Exception as exc:  # not installed or not reachable: say so, bench the rest
        print(f"postgresql: skipped ({type(exc).__name__})")
        return None
    return base


def stores(tmp: Path, pg_schemas: list[str]) -> dict[str, Callable[[str], str]]:
    found: dict[str, Callable[[str], str]] = {
        "memory": lambda tag: "memory://",
        "sqlite WAL synchronous=FULL": lambda tag: f"sqlite:///{tmp / tag}-full.db",
        "sqlite WAL synchronous=NORMAL": lambda tag: (
            f"sqlite:///{tmp / tag}-normal.db?synchronous=NORMAL"
        ),
    }
    base = postgres_base()
    if base is not None:

        def pg(tag: str) -> str:
            pg_schemas.append(f"paygate_bench_{tag}_{uuid.uuid4().hex[:8]}")
            return f"{base}{'&' if '?' in base else '?'}schema={pg_schemas[-1]}"

        found["postgresql (server defaults)"] = pg
    return found


def bench_webhooks(provider: FakeProvider, deliveries: list[WebhookDelivery], url: str) -> None:
    gw = paygate.connect(provider, store=url)
    handled = [0]
    # as in a shop: a fulfilment handler on payment.succeeded, none on the other types
    gw.on(EventType.PAYMENT_SUCCEEDED)(lambda event: handled.__setitem__(0, handled[0] + 1))
    start = time.perf_counter()
    for d in deliveries:
        gw.handle_webhook(d.body, d.headers)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for d in deliveries:  # every one again: duplicates
        gw.handle_webhook(d.body, d.headers)
    again = time.perf_counter() - start
    assert handled[0] == len(deliveries) // 2
    n = len(deliveries)
    print(f"  handle_webhook  {n / first:>9,.0f} events/s new, "
          f"{n / again:>9,.0f} events/s duplicates  ({n} events)")  # fmt: skip
    gw.close()


def bench_create(url: str, payments: int) -> None:
    provider = FakeProvider(seed=2)
    gw = paygate.connect(provider, store=url)
    start = time.perf_counter()
    for i in range(payments):
        gw.create_payment(
            order_id=f"ord_{i}", amount=Money.of("9.99", "USD"), payment_method="tok_visa"
        )
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(payments):  # the same calls again: replayed from the store
        gw.create_payment(
            order_id=f"ord_{i}", amount=Money.of("9.99", "USD"), payment_method="tok_visa"
        )
    replay = time.perf_counter() - start
    assert provider.calls["create_payment"] == payments
    print(f"  create_payment  {payments / elapsed:>9,.0f} calls/s new,  "
          f"{payments / replay:>9,.0f} calls/s replayed  ({payments} payments)")  # fmt: skip
    gw.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=1000)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
          f"{platform.machine()}")  # fmt: skip
    provider = FakeProvider(seed=1, webhook_tolerance=3600)
    deliveries = make_deliveries(provider, args.payments)
    pg_schemas: list[str] = []
    with tempfile.TemporaryDirectory(prefix="paygate-bench-") as tmp:
        try:
            for name, url_for in stores(Path(tmp), pg_schemas).items():
                print(name)
                bench_webhooks(provider, deliveries, url_for("webhooks"))
                bench_create(url_for("create"), args.payments)
        finally:
            if pg_schemas:
                import psycopg

                base = postgres_base()
                assert base is not None
                with psycopg.connect(base, autocommit=True) as conn:
                    for schema in pg_schemas:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
