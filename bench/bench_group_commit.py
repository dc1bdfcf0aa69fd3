"""Durable commits per ``create_payment`` through AsyncGateway on SQLite (group commit).

N ``create_payment`` calls started at once on one event loop against the in-process fake
provider (no network), the store a SQLite file (WAL, ``synchronous=FULL``). Every
``COMMIT`` of the store's connections is counted through ``sqlite3``'s trace callback.
``--no-batch`` runs the store's calls one by one on a plain one-thread pool, as before
group commit. Figures are printed, not asserted.

    python bench/bench_group_commit.py [--calls 500] [--no-batch]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import paygate
from paygate import Money
from paygate.providers.fake import FakeProvider
from paygate.stores import aio
from paygate.stores.sqlite import SQLiteStore

AMOUNT = Money.of("12.34", "USD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--no-batch", action="store_true")
    args = parser.parse_args()

    commits = [0]
    opened = SQLiteStore._open

    def open_traced(store: SQLiteStore) -> sqlite3.Connection:
        conn = opened(store)

        def trace(statement: str) -> None:
            if statement.strip().upper() == "COMMIT":
                commits[0] += 1

        conn.set_trace_callback(trace)
        return conn

    setattr(SQLiteStore, "_open", open_traced)  # noqa: B010 - a plain patch, typed loosely
    if args.no_batch:
        setattr(aio, "batch_executor", lambda store, threads: None)  # noqa: B010

    async def run(path: Path) -> tuple[int, float, float]:
        provider = FakeProvider(seed=None)
        async with paygate.connect_async(provider, SQLiteStore(path)) as agw:
            await agw.create_payment(order_id="warm", amount=AMOUNT, payment_method="tok_visa")
            before = commits[0]
            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(
                *(
                    agw.create_payment(order_id=f"o{i}", amount=AMOUNT, payment_method="tok_visa")
                    for i in range(args.calls)
                )
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            return commits[0] - before, wall, cpu

    with tempfile.TemporaryDirectory() as directory:
        count, wall, cpu = asyncio.run(run(Path(directory) / "store.db"))
    mode = "one by one" if args.no_batch else "group commit"
    print(
        f"{mode}: {args.calls} concurrent create_payment, {count} COMMITs "
        f"({count / args.calls:.3f} per call), {args.calls / wall:,.0f} calls/s, "
        f"CPU {cpu:.2f} s, load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
