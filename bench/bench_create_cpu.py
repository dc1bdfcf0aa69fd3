"""CPU of one ``create_payment`` on SQLite, in instructions (callgrind) and in CPU time:
the async face (``AsyncGateway``, its store an ``AsyncStore`` with the group-commit
thread) and the sync face (``Gateway``), the fake provider in process (no network), the
store a SQLite file (WAL, ``synchronous=FULL``), every call a new order.

``--store postgresql`` measures the PostgreSQL store instead (the async face on the
native async pool, ``pool_max=40``; a throw-away schema in ``PAYGATE_BENCH_POSTGRES_URL``
or the local ``postgres`` database): callgrind counts the client's instructions only, and
the timed run prints the server's CPU per call beside the client's when the server runs
on this machine (its backends' ``/proc/PID/schedstat``). Use a warm-up that reaches every
pooled connection's prepared statements (``--warmup 400``): psycopg prepares a statement
on its fifth execution on a connection, and the server plans it until then.

Instructions, not time: the machine is shared, and callgrind counts the same on a busy
machine as on an idle one. The child runs under callgrind twice, with W warm-up calls and
with W + N; the difference over N is one call's cost (imports, the store's schema, the
first connection and the store thread's start fall out). The async face runs its calls
``--concurrency`` at a time (``asyncio.gather``), as a server would, so commits are
grouped as they are under load; the sync face runs them one after another. Then the same
N calls run without callgrind, and their CPU time (user + system, all threads) is
printed with the load average. The fake provider's own bookkeeping is in every figure.

``--before SRC`` measures another checkout's ``src`` too (e.g. ``/work/main/src``);
``--faces async,sync`` picks the faces; ``--loop uvloop`` runs the async face on uvloop;
``--profile`` prints the cProfile of the timed run (the top functions by own time);
``--rounds R`` times each version R times, alternating; ``--no-callgrind`` times only.

    python bench/bench_create_cpu.py [--calls 400] [--warmup 100] [--concurrency 100]
        [--before SRC] [--faces async,sync] [--loop asyncio|uvloop] [--profile]
        [--rounds R] [--no-callgrind] [--no-time] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _child import (  # bench/ is on sys.path: the script's own directory
    postgres_backend_cpu,
    run_child,
)

HERE = Path(__file__).resolve()
SRC = HERE.parent.parent / "src"


def postgres_base() -> str:
    return os.environ.get("PAYGATE_BENCH_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")  # fmt: skip


def child(workdir: str, face: str, warmup: int, calls: int, concurrency: int, loop: str,
          profile: bool, store: str) -> None:  # fmt: skip
    import paygate
    from paygate import Money
    from paygate.providers.fake import FakeProvider

    amount = Money.of("12.34", "USD")
    url = f"sqlite:///{os.path.join(tempfile.mkdtemp(dir=workdir), 'cpu.db')}"
    dbname = None
    if store == "postgresql":
        from psycopg.conninfo import conninfo_to_dict

        base = postgres_base()
        dbname = str(conninfo_to_dict(base).get("dbname") or "postgres")
        sep = "&" if "?" in base else "?"
        url = f"{base}{sep}schema=paygate_cpu_{uuid.uuid4().hex[:12]}&pool_max=40"
    profiler = None
    backends: dict[int, int] = {}

    def started() -> tuple[Any, float]:
        nonlocal profiler, backends
        if dbname is not None:
            backends = postgres_backend_cpu(dbname)
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        return resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()

    def report(times0: Any, wall0: float) -> None:
        wall, times1 = time.perf_counter() - wall0, resource.getrusage(resource.RUSAGE_SELF)
        server = None
        if dbname is not None and backends:  # before the pool closes its connections
            after = postgres_backend_cpu(dbname)
            server = sum(ns - backends.get(pid, 0) for pid, ns in after.items()) / 1e9
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
        print(json.dumps({"wall": wall, "user": times1.ru_utime - times0.ru_utime,
                          "system": times1.ru_stime - times0.ru_stime,
                          "server": server}))  # fmt: skip

    if face == "sync":
        try:
            with paygate.connect(FakeProvider(seed=None), store=url) as gw:
                for i in range(warmup):
                    gw.create_payment(order_id=f"warm-{i}", amount=amount,
                                      payment_method="tok_visa")  # fmt: skip
                times0, wall0 = started()
                for i in range(calls):
                    gw.create_payment(order_id=f"ord-{i}", amount=amount,
                                      payment_method="tok_visa")  # fmt: skip
                report(times0, wall0)
        finally:
            drop_schema(url)
        return

    import asyncio

    async def batch(agw: Any, prefix: str, count: int) -> None:
        for start in range(0, count, concurrency):
            await asyncio.gather(*(
                agw.create_payment(order_id=f"{prefix}-{i}", amount=amount,
                                   payment_method="tok_visa")
                for i in range(start, min(count, start + concurrency))
            ))  # fmt: skip

    async def main() -> None:
        async with paygate.connect_async(FakeProvider(seed=None), store=url) as agw:
            await batch(agw, "warm", warmup)
            times0, wall0 = started()
            await batch(agw, "ord", calls)
            report(times0, wall0)

    try:
        if loop == "uvloop":
            import uvloop

            uvloop.run(main())
        else:
            asyncio.run(main())
    finally:
        drop_schema(url)


def drop_schema(url: str) -> None:
    """A PostgreSQL run's schema, dropped."""
    if not url.startswith("postgresql"):
        return
    import psycopg

    schema = url.split("schema=")[1].split("&")[0]
    with psycopg.connect(postgres_base(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _run(src: Path, workdir: str, face: str, args: argparse.Namespace, calls: int,
         callgrind: bool, profile: bool = False) -> dict[str, Any]:  # fmt: skip
    child = ["--child", workdir, "--face", face, "--warmup", str(args.warmup), "--calls",
             str(calls), "--concurrency", str(args.concurrency), "--loop", args.loop,
             "--store", args.store]  # fmt: skip
    out = os.path.join(workdir, f"callgrind.{face}.{calls}") if callgrind else None
    return run_child(HERE, src, child, callgrind_out=out, profile=profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--faces", default="async,sync")
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"))
    parser.add_argument("--before", type=Path, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--no-time", action="store_true", help="callgrind only")
    parser.add_argument("--no-callgrind", action="store_true", help="CPU time only")
    parser.add_argument("--rounds", type=int, default=1, help="timed runs per version")
    parser.add_argument("--store", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--face", default="async", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.face, args.warmup, args.calls, args.concurrency, args.loop,
              args.profile, args.store)  # fmt: skip
        return
    runs = [("after (this checkout)", SRC)]
    if args.before is not None:
        runs.insert(0, (f"before ({args.before})", args.before))
    grind = shutil.which("valgrind") is not None and not args.no_callgrind
    if shutil.which("valgrind") is None:
        print("valgrind not found (apt-get install valgrind): CPU time only")
    where = "SQLite synchronous=FULL (WAL)" if args.store == "sqlite" else "PostgreSQL"
    print(f"create_payment, fake provider in process, {where}; "
          f"{args.calls} calls after {args.warmup} warm-up; async: {args.concurrency} at "
          f"once on {args.loop}")  # fmt: skip
    with tempfile.TemporaryDirectory(dir=os.environ.get("PAYGATE_BENCH_DIR")) as workdir:
        for face in args.faces.split(","):
            for label, src in runs:
                if grind:
                    base = _run(src, workdir, face, args, 0, callgrind=True)
                    full = _run(src, workdir, face, args, args.calls, callgrind=True)
                    per = (full["instructions"] - base["instructions"]) / args.calls
                    print(f"{face} {label}: {per:,.0f} instructions/call (callgrind)",
                          flush=True)  # fmt: skip
            if args.no_time:
                continue
            # the versions' timed runs alternate (a load that drifts hits them alike)
            for _round, (label, src) in itertools.product(range(args.rounds), runs):
                load = os.getloadavg()
                timed = _run(src, workdir, face, args, args.calls, callgrind=False,
                             profile=args.profile)  # fmt: skip
                cpu = timed["user"] + timed["system"]
                server = timed.get("server")
                served = "" if server is None else f", server {server / args.calls * 1e3:.3f}"
                print(f"{face} {label}: CPU {cpu / args.calls * 1e3:.3f} ms/call (user "
                      f"{timed['user'] / args.calls * 1e3:.3f}, system "
                      f"{timed['system'] / args.calls * 1e3:.3f}{served}); wall "
                      f"{timed['wall'] / args.calls * 1e3:.3f} ms/call; load "
                      f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
