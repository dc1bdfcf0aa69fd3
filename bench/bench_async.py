"""AsyncGateway on one event loop vs the sync Gateway in a 40-thread pool.

500 ``create_payment`` calls started at once against a provider whose every call is an
HTTP round trip to a local server answering after 50 ms (``tests/latency_server.py``,
in its own process; the provider is the fake behind that round trip, ``httpx.Client`` for
the sync face, ``httpx.AsyncClient`` for the async one). Each face first warms up (first
connections, first-use imports). Throughput is calls / wall time from the first start to
the last answer; a call's latency runs from that common start to its answer (so the
pool's queueing counts, as a client would see it). Stores: SQLite (a file, WAL, the
default synchronous=FULL) and PostgreSQL in a throw-away schema when a server answers
(``PAYGATE_BENCH_POSTGRES_URL`` or the local one), both faces with ``pool_max=40``.
Figures are printed, not asserted.

    python bench/bench_async.py [--calls 500] [--threads 40] [--delay 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.latency_server

from tests.latency_server import LatencyProvider, LatencyServer

import paygate
from paygate import Money
from paygate.stores import open_store

AMOUNT = Money.of("12.34", "USD")


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


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def run_sync(
    server: str, store_url: str, calls: int, threads: int, client: str
) -> tuple[float, list[float]]:
    provider = LatencyProvider(server, client=client, seed=None)
    with paygate.connect(provider, open_store(store_url)) as gw:
        for i in range(5):
            gw.create_payment(order_id=f"warm-{i}", amount=AMOUNT, payment_method="tok_visa")
        start = time.perf_counter()

        def one(i: int) -> float:
            gw.create_payment(order_id=f"sync-{i}", amount=AMOUNT, payment_method="tok_visa")
            return time.perf_counter() - start

        with ThreadPoolExecutor(max_workers=threads) as pool:
            latencies = list(pool.map(one, range(calls)))
        took = time.perf_counter() - start
    provider.close()
    return took, latencies


def run_async(server: str, store_url: str, calls: int, client: str) -> tuple[float, list[float]]:
    async def main() -> tuple[float, list[float]]:
        provider = LatencyProvider(server, client=client, seed=None)
        async with paygate.connect_async(provider, open_store(store_url)) as agw:
            for i in range(5):
                await agw.create_payment(order_id=f"warm-{i}", amount=AMOUNT,
                                         payment_method="tok_visa")  # fmt: skip
            start = time.perf_counter()

            async def one(i: int) -> float:
                await agw.create_payment(order_id=f"async-{i}", amount=AMOUNT,
                                         payment_method="tok_visa")  # fmt: skip
                return time.perf_counter() - start

            latencies = await asyncio.gather(*(one(i) for i in range(calls)))
            took = time.perf_counter() - start
        provider.close()
        return took, list(latencies)

    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--threads", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.05)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}; {args.calls} concurrent create_payment, server "
          f"latency {args.delay * 1000:.0f} ms, sync pool {args.threads} threads")  # fmt: skip
    pg_schemas: list[str] = []
    base = postgres_base()
    with tempfile.TemporaryDirectory() as tmp, LatencyServer(args.delay) as server:
        stores = {"sqlite": lambda tag: f"sqlite:///{Path(tmp) / tag}.db"}
        if base is not None:

            def pg(tag: str) -> str:
                pg_schemas.append(f"paygate_bench_{tag.replace('-', '_')}_{uuid.uuid4().hex[:8]}")
                sep = "&" if "?" in base else "?"
                return f"{base}{sep}schema={pg_schemas[-1]}&pool_max={args.threads}"

            stores["postgresql"] = pg
        for (name, url), client in itertools.product(stores.items(), ("plain", "httpx")):
            sync_url, async_url = url(f"sync-{client}"), url(f"async-{client}")  # fresh stores
            sync_took, sync_lat = run_sync(server, sync_url, args.calls, args.threads, client)
            async_took, async_lat = run_async(server, async_url, args.calls, client)
            sync_rate, async_rate = args.calls / sync_took, args.calls / async_took
            print(f"{name}, {client} HTTP client:")
            print(f"  sync Gateway, {args.threads} threads  {sync_rate:>7.0f} calls/s  "
                  f"p50 {statistics.median(sync_lat) * 1000:>6.0f} ms  "
                  f"p99 {p99(sync_lat) * 1000:>6.0f} ms")  # fmt: skip
            print(f"  AsyncGateway, one loop     {async_rate:>7.0f} calls/s  "
                  f"p50 {statistics.median(async_lat) * 1000:>6.0f} ms  "
                  f"p99 {p99(async_lat) * 1000:>6.0f} ms")  # fmt: skip
            print(f"  async/sync: throughput x{async_rate / sync_rate:.2f}, "
                  f"p99 x{p99(async_lat) / p99(sync_lat):.2f}")  # fmt: skip
    if pg_schemas and base is not None:
        import psycopg

        with psycopg.connect(base, autocommit=True) as conn:
            for schema in pg_schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
