"""AsyncGateway on one event loop vs the sync Gateway in a 40-thread pool.

500 ``create_payment`` calls started at once against a provider whose every call is an
HTTP round trip to a local server answering after 50 ms (``tests/latency_server.py``,
in its own process). Two kinds of provider:

* the latency provider: the fake behind that round trip, ``httpx.Client`` for the sync
  face, for the async one each client of ``tests.latency_server.CLIENTS`` (``plain``, a
  minimal client: the gateway's own ceiling; ``httpx``, a bare ``httpx.AsyncClient``:
  httpcore's pool pathology; ``httpx-paygate`` and ``aiohttp``: the clients the real
  async adapters make, without and with ``paygate-payments[aiohttp]``);
* the real Stripe adapter (``stripe`` rows): ``StripeProvider`` (requests) in the threads
  vs ``AsyncStripeProvider`` (``http_transport="httpx"`` and ``"aiohttp"``), against the
  same server answering ``POST /v1/payment_intents`` as Stripe would.

Each face first warms up (first connections, first-use imports). Throughput is calls /
wall time from the first start to the last answer; a call's latency runs from that
common start to its answer (so the pool's queueing counts, as a client would see it).
Stores: SQLite (a file, WAL, the default synchronous=FULL) and PostgreSQL in a
throw-away schema when a server answers (``PAYGATE_BENCH_POSTGRES_URL`` or the local
one), both faces with ``pool_max=40``. Figures are printed, not asserted; the load
average is printed beside each (read as each face starts), and the measured process's
CPU time per call (all its threads; the server's process excluded), which a loaded
machine changes far less than the wall-clock figures.

    python bench/bench_async.py [--calls 500] [--threads 40] [--delay 0.05]
        [--stores sqlite,postgresql] [--clients plain,httpx,...,stripe-httpx,stripe-aiohttp]
        [--pg-threads N]   # AsyncStore's threads for PostgreSQL; 0 = the native async pool
        [--loops asyncio,uvloop]   # the async face's loops, a row each
        [--warm-rounds N]   # N untimed bursts first: a long-running server's pool

The default times each face's first burst on a fresh store: with PostgreSQL that
includes the pool's growth from one connection to ``--threads`` (each new server
backend's start, its catalog caches, its first statements). ``--warm-rounds 2`` times a
burst on a pool that served two already, as a server that has been running would.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.latency_server

from _child import postgres_backend_cpu  # bench/ is on sys.path: the script's own directory
from tests.latency_server import CLIENTS, LatencyProvider, LatencyServer

import paygate
from paygate import Money
from paygate.provider import AsyncPaymentProvider, PaymentProvider
from paygate.stores import open_store
from paygate.stores.aio import AsyncStore

AMOUNT = Money.of("12.34", "USD")
#: the real Stripe adapter's rows: its async face on each transport
STRIPE = ("stripe-httpx", "stripe-aiohttp")


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def sync_provider(server: str, client: str) -> tuple[PaymentProvider, str]:
    """The sync face's provider for the row ``client`` and its payment method."""
    if client in STRIPE:
        from paygate.providers.stripe import StripeProvider

        return StripeProvider(api_key="sk_test_bench", base_url=server.rstrip("/")), "pm_card_visa"
    return LatencyProvider(server, client=client, seed=None), "tok_visa"


def async_provider(server: str, client: str) -> tuple[AsyncPaymentProvider | PaymentProvider, str]:
    """The async face's provider (a sync latency provider: its ``aio()`` twin is used)."""
    if client in STRIPE:
        from paygate.providers.stripe import AsyncStripeProvider

        transport = client.removeprefix("stripe-")
        provider = AsyncStripeProvider(
            api_key="sk_test_bench", base_url=server.rstrip("/"), http_transport=transport
        )
        return provider, "pm_card_visa"
    return LatencyProvider(server, client=client, seed=None), "tok_visa"


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


def served(seconds: tuple[float | None, float | None], calls: int) -> str:
    """The other processes' CPU per call (PostgreSQL's backends, the HTTP server), when
    measured."""
    database, http = seconds
    text = "" if database is None else f" + server {database / calls * 1000:.2f}"
    return text + ("" if http is None else f" + HTTP server {http / calls * 1000:.2f}")


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


Run = tuple[float, float, list[float], tuple[float | None, float | None]]
"""wall seconds, CPU seconds, latencies, the CPU seconds of the PostgreSQL server's
backends and of the latency server (each None when not measured)"""

#: the bench database's name when its server runs on this machine (its backends' CPU is
#: then read from /proc), set by main()
SERVER_DB: str | None = None
#: the latency server's process, set by main()
HTTP_PID: int | None = None


def _on_cpu(pid: int | str) -> int | None:
    """A process's on-CPU nanoseconds (``/proc/PID/schedstat``, where ``stat``'s ticks
    are 10 ms), or None when it is gone or not ours to read."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError):
        return None


def server_cpu() -> dict[int, int]:
    """On-CPU nanoseconds of each PostgreSQL backend serving ``SERVER_DB`` on this
    machine (empty when the server is elsewhere), and of the latency server's process.
    The WAL writer and checkpointer are shared with every database and left out."""
    found: dict[int, int] = {}
    if HTTP_PID is not None and (ns := _on_cpu(HTTP_PID)) is not None:
        found[HTTP_PID] = ns
    if SERVER_DB is None:
        return found
    found.update(postgres_backend_cpu(SERVER_DB))
    return found


def server_spent(before: dict[int, int]) -> tuple[float | None, float | None]:
    """CPU seconds since ``before``: the backends' (those started since: all of theirs),
    the latency server's."""
    after = server_cpu()
    spent = {pid: (ns - before.get(pid, 0)) / 1e9 for pid, ns in after.items()}
    http = spent.pop(HTTP_PID, None) if HTTP_PID is not None else None
    return (sum(spent.values()) if spent else None), http


def run_sync(
    server: str, store_url: str, calls: int, threads: int, client: str, warm_rounds: int = 0
) -> Run:
    provider, method = sync_provider(server, client)
    with paygate.connect(provider, open_store(store_url)) as gw:
        for i in range(5):
            gw.create_payment(order_id=f"warm-{i}", amount=AMOUNT, payment_method=method)
        for r in range(warm_rounds):  # untimed bursts: the pool grown, its statements warm
            orders = [f"pre{r}-{i}" for i in range(calls)]
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(lambda order: gw.create_payment(
                    order_id=order, amount=AMOUNT, payment_method=method,
                ), orders))  # fmt: skip
        backends = server_cpu()
        start, cpu = time.perf_counter(), time.process_time()

        def one(i: int) -> float:
            gw.create_payment(order_id=f"sync-{i}", amount=AMOUNT, payment_method=method)
            return time.perf_counter() - start

        with ThreadPoolExecutor(max_workers=threads) as pool:
            latencies = list(pool.map(one, range(calls)))
        took, cpu = time.perf_counter() - start, time.process_time() - cpu
        served = server_spent(backends)  # before the pool closes its connections
    if isinstance(provider, LatencyProvider):
        provider.close()
    return took, cpu, latencies, served


def run_async(
    server: str,
    store_url: str,
    calls: int,
    client: str,
    store_threads: int | None = None,
    loop: str = "asyncio",
    warm_rounds: int = 0,
) -> Run:
    async def main() -> Run:
        provider, method = async_provider(server, client)
        store = AsyncStore(open_store(store_url), threads=store_threads)
        async with paygate.connect_async(provider, store) as agw:
            for i in range(5):
                await agw.create_payment(order_id=f"warm-{i}", amount=AMOUNT,
                                         payment_method=method)  # fmt: skip
            for r in range(warm_rounds):  # untimed bursts, as the sync face's
                await asyncio.gather(*(
                    agw.create_payment(order_id=f"pre{r}-{i}", amount=AMOUNT,
                                       payment_method=method)
                    for i in range(calls)
                ))  # fmt: skip
            backends = server_cpu()
            start, cpu = time.perf_counter(), time.process_time()

            async def one(i: int) -> float:
                await agw.create_payment(order_id=f"async-{i}", amount=AMOUNT,
                                         payment_method=method)  # fmt: skip
                return time.perf_counter() - start

            latencies = await asyncio.gather(*(one(i) for i in range(calls)))
            took, cpu = time.perf_counter() - start, time.process_time() - cpu
            served = server_spent(backends)
        if isinstance(provider, LatencyProvider):
            provider.close()
        return took, cpu, list(latencies), served

    if loop == "uvloop":  # what uvicorn runs on when uvloop is installed (uvicorn[standard])
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--threads", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument(
        "--warm-rounds", type=int, default=0,
        help="untimed bursts of --calls before the timed one, each face on its own store: "
        "a long-running server's state (PostgreSQL: the pool grown to its size, every "
        "connection's statements prepared and its catalog caches loaded)",
    )  # fmt: skip
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--clients", default=",".join((*CLIENTS, *STRIPE)))
    parser.add_argument(
        "--pg-threads", type=int, default=None,
        help="AsyncStore threads for PostgreSQL (0: the native async pool; default: its own)",
    )  # fmt: skip
    parser.add_argument(
        "--loops", default="asyncio,uvloop",
        help="the async face's event loops, each its own row (uvloop: what uvicorn runs on "
        "when uvloop is installed, as uvicorn[standard] does; skipped when not installed)",
    )  # fmt: skip
    args = parser.parse_args()
    loops = args.loops.split(",")
    if set(loops) - {"asyncio", "uvloop"}:
        parser.error(f"unknown --loops {args.loops!r}: asyncio, uvloop")
    if "uvloop" in loops:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("uvloop: skipped (not installed; it is in the bench dependency group)")
            loops.remove("uvloop")
    clients = args.clients.split(",")
    unknown = set(clients) - {*CLIENTS, *STRIPE}
    if unknown:
        parser.error(f"unknown --clients {sorted(unknown)}: one of {(*CLIENTS, *STRIPE)}")
    # the sync StripeProvider's requests pool keeps 10 connections: urllib3 warns once per
    # connection it drops beyond them (40 threads), on stderr; the figures include that churn
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {load()}; "
          f"{args.calls} concurrent create_payment, server latency "
          f"{args.delay * 1000:.0f} ms, sync pool {args.threads} threads")  # fmt: skip
    pg_schemas: list[str] = []
    base = postgres_base() if "postgresql" in args.stores.split(",") else None
    if base is not None:
        from psycopg.conninfo import conninfo_to_dict

        global SERVER_DB
        SERVER_DB = str(conninfo_to_dict(base).get("dbname") or "postgres")
    latency = LatencyServer(args.delay)
    with tempfile.TemporaryDirectory() as tmp, latency as server:
        global HTTP_PID
        HTTP_PID = latency.pid
        stores: dict[str, Any] = {}
        if "sqlite" in args.stores.split(","):
            stores["sqlite"] = lambda tag: f"sqlite:///{Path(tmp) / tag}.db"
        if base is not None:

            def pg(tag: str) -> str:
                pg_schemas.append(f"paygate_bench_{tag.replace('-', '_')}_{uuid.uuid4().hex[:8]}")
                sep = "&" if "?" in base else "?"
                return f"{base}{sep}schema={pg_schemas[-1]}&pool_max={args.threads}"

            stores["postgresql"] = pg
        for (name, url), client in itertools.product(stores.items(), clients):
            sync_url = url(f"sync-{client}")  # a fresh store
            sync_load = load()
            sync_took, sync_cpu, sync_lat, sync_served = run_sync(
                server, sync_url, args.calls, args.threads, client, args.warm_rounds
            )
            sync_rate = args.calls / sync_took
            sync_face = "StripeProvider" if client in STRIPE else "httpx.Client"
            if client == "plain":
                sync_face = "plain client"
            print(f"{name}, async face on {client} (sync face: {sync_face}):")
            print(f"  sync Gateway, {args.threads} threads  {sync_rate:>7.0f} calls/s  "
                  f"p50 {statistics.median(sync_lat) * 1000:>6.0f} ms  "
                  f"p99 {p99(sync_lat) * 1000:>6.0f} ms  "
                  f"CPU {sync_cpu / args.calls * 1000:>5.2f} ms/call"
                  f"{served(sync_served, args.calls)}  ({sync_load})")  # fmt: skip
            for loop in loops:
                async_url = url(f"async-{client}-{loop}")  # a fresh store per row
                async_load = load()
                threads = args.pg_threads if name == "postgresql" else None
                async_took, async_cpu, async_lat, async_served = run_async(
                    server, async_url, args.calls, client, threads, loop, args.warm_rounds
                )
                async_rate = args.calls / async_took
                print(f"  AsyncGateway, {loop:<8}   {async_rate:>7.0f} calls/s  "
                      f"p50 {statistics.median(async_lat) * 1000:>6.0f} ms  "
                      f"p99 {p99(async_lat) * 1000:>6.0f} ms  "
                      f"CPU {async_cpu / args.calls * 1000:>5.2f} ms/call"
                      f"{served(async_served, args.calls)}  ({async_load})")  # fmt: skip
                print(f"    {loop}/sync: throughput x{async_rate / sync_rate:.2f}, "
                      f"p99 x{p99(async_lat) / p99(sync_lat):.2f}, "
                      f"CPU/call x{async_cpu / sync_cpu:.2f}")  # fmt: skip
    if pg_schemas and base is not None:
        import psycopg

        with psycopg.connect(base, autocommit=True) as conn:
            for schema in pg_schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
