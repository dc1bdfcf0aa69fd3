"""AsyncGateway's PostgreSQL paths with the database across a (simulated) network.

``bench_async.py`` puts PostgreSQL on 127.0.0.1, where a round trip costs ~0.05 ms and the
store's CPU decides everything. Across a network each statement waits a round trip, and
then how many statements can be in flight matters: the default ``AsyncStore`` runs a
``PostgresStore`` on two threads (two statements in flight), the native path
(``AsyncStore(store, threads=0)``) on psycopg's ``AsyncConnectionPool`` (as many as the
pool has connections), the sync Gateway's 40 threads on its own pool.

The network is simulated by a forwarding process on 127.0.0.1:15432 that holds every
chunk for half of ``--rtt-ms`` in each direction before passing it on to PostgreSQL on
127.0.0.1:5432 (the kernel here has no ``netem``). Every statement of the measured
process crosses it; the forwarder's own CPU is not counted in the rows.

    python bench/bench_async_network.py [--rtt-ms 1] [--calls 500] [--threads 40]
        [--client aiohttp] [--store-threads 2,0,8]

Each row: calls/s, p50/p99 (from the common start, as in bench_async.py), CPU per call of
the measuring process, the load average as the row starts. Figures are printed, not
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.latency_server, bench

PORT = 15432


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Forward one direction, each chunk ``delay`` seconds after it arrived, in order."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                writer.close()
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    while True:
        data = await reader.read(65536)
        await queue.put((time.monotonic() + delay, data))
        if not data:
            break
    await sender


def serve_delayed(rtt_ms: float) -> None:
    """A TCP forwarder to PostgreSQL adding ``rtt_ms / 2`` each way (the link's latency).

    Written here because the machine's kernel has no ``netem`` qdisc (``tc`` answers
    "qdisc kind is unknown"); a user-space delay costs the forwarder's process some CPU,
    which is not the measured process's.
    """

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", 5432)
        half = rtt_ms / 2000
        await asyncio.gather(_pipe(client_r, server_w, half), _pipe(server_r, client_w, half))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", PORT)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def delayed_link(rtt_ms: float) -> Iterator[str]:
    """The forwarder in its own process; yields the database URL through it."""
    forwarder = subprocess.Popen(
        [sys.executable, __file__, "--forward", str(rtt_ms)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert forwarder.stdout is not None
        forwarder.stdout.readline()  # "ready"
        yield f"postgresql://postgres@127.0.0.1:{PORT}/postgres"
    finally:
        forwarder.terminate()
        forwarder.wait()


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def measure_rtt(url: str) -> float:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("SELECT 1")
        start = time.perf_counter()
        for _ in range(20):
            conn.execute("SELECT 1")
        return (time.perf_counter() - start) / 20


def inside(args: argparse.Namespace) -> None:
    """The rows: the sync Gateway, then AsyncGateway on each ``--store-threads``."""
    from bench.bench_async import AMOUNT, run_sync
    from tests.latency_server import LatencyProvider, LatencyServer

    import paygate
    from paygate.stores.aio import AsyncStore
    from paygate.stores.postgres import PostgresStore

    url = args.url
    print(f"{os.cpu_count()} CPUs; database round trip {measure_rtt(url) * 1000:.2f} ms "
          f"(SELECT 1 through the forwarder); {args.calls} concurrent create_payment, "
          f"server latency {args.delay * 1000:.0f} ms, async client {args.client}")  # fmt: skip
    schemas: list[str] = []

    def store_url(tag: str) -> str:
        schemas.append(f"paygate_bench_net_{tag}_{uuid.uuid4().hex[:8]}")
        return f"{url}?schema={schemas[-1]}&pool_max={args.threads}"

    def row(name: str, took: float, cpu: float, lat: list[float], at: str) -> None:
        print(f"  {name:<34} {args.calls / took:>6.0f} calls/s  "
              f"p50 {statistics.median(lat) * 1000:>6.0f} ms  p99 {p99(lat) * 1000:>6.0f} ms  "
              f"CPU {cpu / args.calls * 1000:>5.2f} ms/call  ({at})", flush=True)  # fmt: skip

    async def run_async(server: str, threads: int) -> tuple[float, float, list[float]]:
        provider = LatencyProvider(server, client=args.client, seed=None)
        store = AsyncStore(PostgresStore.from_url(store_url(f"a{threads}")), threads=threads)
        async with paygate.connect_async(provider, store) as agw:
            for i in range(5):
                await agw.create_payment(order_id=f"warm-{i}", amount=AMOUNT,
                                         payment_method="tok_visa")  # fmt: skip
            start, cpu = time.perf_counter(), time.process_time()

            async def one(i: int) -> float:
                await agw.create_payment(order_id=f"async-{i}", amount=AMOUNT,
                                         payment_method="tok_visa")  # fmt: skip
                return time.perf_counter() - start

            lat = await asyncio.gather(*(one(i) for i in range(args.calls)))
            took, cpu = time.perf_counter() - start, time.process_time() - cpu
        provider.close()
        return took, cpu, list(lat)

    try:
        with LatencyServer(args.delay) as server:
            at = load()
            sync_run = run_sync(server, store_url("sync"), args.calls, args.threads, "plain")
            row(f"sync Gateway, {args.threads} threads", *sync_run, at)
            for threads in (int(t) for t in args.store_threads.split(",")):
                at = load()
                label = "native async pool" if threads == 0 else f"{threads} store threads"
                row(f"AsyncGateway, {label}", *asyncio.run(run_async(server, threads)), at)
    finally:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt-ms", type=float, default=1.0)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--threads", type=int, default=40)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--client", default="aiohttp")
    parser.add_argument("--store-threads", default="2,0,8")
    parser.add_argument("--forward", type=float, help=argparse.SUPPRESS)  # the forwarder
    args = parser.parse_args()
    if args.forward is not None:
        serve_delayed(args.forward)
        return
    try:
        import psycopg

        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3).close()
    except Exception as exc:  # not installed or not reachable: say so
        print(f"skipped: no PostgreSQL on 127.0.0.1:5432 ({type(exc).__name__})")
        return
    with delayed_link(args.rtt_ms) as url:
        args.url = url
        print(f"{load()}; link round trip {args.rtt_ms} ms added by a forwarding process")
        inside(args)


if __name__ == "__main__":
    main()
