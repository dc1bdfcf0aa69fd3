"""CPU of the pieces of a ``create_payment`` that issue 18 cut, each alone.

* the hand-off of a store call from the event loop to ``AsyncStore``'s thread(s) and
  back: process CPU (all threads) and the loop thread's own CPU per ``get_payment`` of a
  missing id, 3,000 at once, against the same call made directly (SQLite; PostgreSQL
  too when a server answers, ``PAYGATE_BENCH_POSTGRES_URL`` or the local one);
* a copy of a 16-field ``Payment`` by ``dataclasses.replace`` and by
  ``paygate._replace.replace``;
* ``_observe.provider_call`` around a provider call (what the drivers skip while
  OpenTelemetry has no tracer or meter provider set).

CPU times, best of 3 rounds (a loaded machine inflates them all); the load average is
printed beside them. To compare with older code, run it with that code's ``src`` first
on ``PYTHONPATH`` (its own pieces are timed where they exist).

    python bench/bench_hot_path.py
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.bench_async

from bench.bench_async import postgres_base

from paygate import Money, _observe
from paygate.models import Payment, PaymentStatus
from paygate.stores import open_store
from paygate.stores.aio import AsyncStore

CALLS = 3000


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def hand_off(url: str, threads: int | None = None) -> tuple[float, float, float]:
    """µs per get_payment: direct; through AsyncStore (process CPU, loop thread CPU)."""
    store = open_store(url)
    store.get_payment("warm")
    start = time.process_time()
    for i in range(CALLS):
        store.get_payment(f"p{i}")
    direct = (time.process_time() - start) / CALLS * 1e6

    async def main() -> tuple[float, float]:
        astore = AsyncStore(store, threads=threads)
        await astore.get_payment("warm")
        best = (float("inf"), float("inf"))
        for _ in range(3):
            cpu, loop = time.process_time(), time.thread_time()
            await asyncio.gather(*(astore.get_payment(f"p{i}") for i in range(CALLS)))
            best = min(best, ((time.process_time() - cpu) / CALLS * 1e6,
                              (time.thread_time() - loop) / CALLS * 1e6))  # fmt: skip
        await astore.aclose()
        return best

    cpu, loop = asyncio.run(main())
    return direct, cpu, loop


def postgres_url() -> str | None:
    """A throw-away schema on bench_async.py's server, or None (said why)."""
    base = postgres_base()
    if base is None:
        return None
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}schema=paygate_bench_hot_{uuid.uuid4().hex[:8]}"


def best_us(fn: Any, number: int = 20000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def main() -> None:
    print(f"{os.cpu_count()} CPUs, {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"sqlite": f"sqlite:///{Path(tmp) / 'hot.db'}"}
        pg = postgres_url()
        if pg is not None:
            stores["postgresql"] = pg
        # PostgreSQL: its two store threads (the hand-off measured), then the native pool
        runs = [(name, url, None) for name, url in stores.items()]
        if pg is not None:
            runs[-1] = ("postgresql, 2 store threads", pg, 2)
            runs.append(("postgresql, native async pool", pg, 0))
        for name, url, threads in runs:
            direct, cpu, loop = hand_off(url, threads)
            print(f"{name} get_payment: direct {direct:.1f} us; through AsyncStore {cpu:.1f} us "
                  f"of CPU, {loop:.1f} us of it on the loop thread ({load()})")  # fmt: skip
        if pg is not None:
            import psycopg

            schema = pg.rsplit("schema=", 1)[1]
            with psycopg.connect(pg.split("?")[0], autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    payment = Payment(id="pay_1", provider="fake", status=PaymentStatus.SUCCEEDED,
                      amount=Money(1999, "EUR"), order_id="o1")  # fmt: skip
    slow = best_us(lambda: dataclasses.replace(payment, client_secret=None, raw=None))
    line = f"Payment copy: dataclasses.replace {slow:.1f} us"
    try:
        from paygate._replace import replace
    except ImportError:
        pass
    else:
        fast = best_us(lambda: replace(payment, client_secret=None, raw=None))
        line += f", paygate._replace.replace {fast:.1f} us"
    print(f"{line} ({load()})")

    def observed() -> None:
        with _observe.provider_call("fake", "create_payment", (), {"order_id": "o1"}):
            pass

    print(f"provider_call around a provider call: {best_us(observed):.1f} us ({load()})")


if __name__ == "__main__":
    main()
