"""Webhook ingestion through ``Gateway.handle_webhook`` by 1 and by 4 worker processes
sharing one store: PostgreSQL and SQLite (a file, WAL, synchronous=FULL, the default).

Each process verifies, claims, applies and finishes its share of the deliveries (fake
provider, a handler on payment.succeeded as in a shop); events/s is all events over the
wall time from "go" to the last process done. Figures are printed, not asserted.

Every event is new (no duplicates). ``--split payments`` (the default) gives each process
whole payments, their events in order, as when a provider's deliveries of one payment come
seconds apart; ``--split events`` deals the events round-robin, so a payment's
``created`` and ``succeeded`` reach two processes at the same moment and race for its row
(the compare-and-set's worst case).

PostgreSQL: ``PAYGATE_BENCH_POSTGRES_URL`` or ``postgresql://postgres@127.0.0.1:5432/postgres``;
the bench works in a throw-away schema and drops it. Skipped with a note if unreachable.
The headline PostgreSQL figure runs with the server's own durability settings (printed)
and the store's defaults: every event's transition commits synchronously; the finish
after its handlers commits asynchronously (``finish_commit=async``). A second run uses
``finish_commit=sync`` (every commit waits for the flush). ``--async-commit`` adds a run
with ``synchronous_commit=off`` on all of paygate's connections, labelled as such (a
database crash can lose the last commits; nothing is half-written).

``--handlers off`` registers no handler (on: one on payment.succeeded, the default). With
handlers, each payment.succeeded is a fact (paygate >= the outbox): recorded in the outbox
with its transition, then claimed, handed to the handler and marked done; without, the
fact is recorded and left pending for a gateway that has handlers.

    python bench/bench_ingest.py [--payments N] [--processes 1,4] [--stores postgresql,sqlite]
                                 [--async-commit] [--handlers on|off]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import paygate
from paygate import EventType, Money
from paygate.models import WebhookDelivery
from paygate.providers.fake import FakeProvider

SECRET = "whsec_bench_only"


def make_deliveries(payments: int) -> list[WebhookDelivery]:
    """payment.created + payment.succeeded of ``payments`` payments, in emitted order."""
    provider = FakeProvider(seed=1, webhook_secret=SECRET, webhook_tolerance=86_400)
    for i in range(payments):
        provider.create_payment(order_id=f"bench_{i}", amount=Money(1234, "USD"),
                                payment_method="tok_visa", idempotency_key=f"k{i}")  # fmt: skip
    return provider.take_webhooks()


def share(deliveries: list[WebhookDelivery], part: int, parts: int, split: str) -> list[Any]:
    """Process ``part``'s deliveries: every ``parts``-th event, or every ``parts``-th
    payment's events in their order."""
    if split == "events":
        return deliveries[part::parts]
    payments: dict[str, list[WebhookDelivery]] = {}
    for d in deliveries:
        payments.setdefault(json.loads(d.body)["data"]["object"]["id"], []).append(d)
    return [d for events in list(payments.values())[part::parts] for d in events]


def _worker(
    path: str, url: str, part: int, parts: int, go: Any, done: Any, split: str, handlers: bool
) -> None:
    with open(path, "rb") as f:
        deliveries = share(pickle.load(f), part, parts, split)
    provider = FakeProvider(seed=1, webhook_secret=SECRET, webhook_tolerance=86_400)
    gw = paygate.connect(provider, store=url)
    if handlers:
        gw.on(EventType.PAYMENT_SUCCEEDED)(lambda event: None)
    gw.store.get_payment("warm-up")  # connections open before the clock starts
    go.wait()
    for d in deliveries:
        gw.handle_webhook(d.body, d.headers)
    done.put(len(deliveries))
    gw.close()


def run(url: str, path: str, processes: int, total: int, split: str, handlers: bool) -> float:
    """events/s of ``processes`` workers on a fresh store at ``url``."""
    ctx = multiprocessing.get_context("spawn")
    go, done = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker,
                         args=(path, url, i, processes, go, done, split, handlers))
             for i in range(processes)]  # fmt: skip
    for p in procs:
        p.start()
    time.sleep(3.0)  # interpreters up, stores opened (spawn is slow on a busy machine)
    start = time.perf_counter()
    go.set()
    handled = sum(done.get(timeout=600) for _ in procs)
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
    assert handled == total
    return total / elapsed


def postgres_url() -> tuple[str, str] | None:
    base = os.environ.get("PAYGATE_BENCH_POSTGRES_URL",
                          "postgresql://postgres@127.0.0.1:5432/postgres")  # fmt: skip
    try:
        import psycopg

        psycopg.connect(base, connect_timeout=3).close()
    except Exception as exc:  # not installed or not reachable: say so, bench the rest
        print(f"postgresql: skipped ({type(exc).__name__})")
        return None
    return base, f"paygate_bench_{uuid.uuid4().hex[:8]}"


def main() -> None:
    parser = argparse.ArgumentParser()
    # 10,000 events: a few seconds per run, so process start-up and stragglers weigh little
    parser.add_argument("--payments", type=int, default=5000)
    parser.add_argument("--processes", default="1,4")
    parser.add_argument("--stores", default="postgresql,sqlite")
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="also run PostgreSQL with synchronous_commit=off (labelled)",
    )
    parser.add_argument("--split", choices=("payments", "events"), default="payments")
    parser.add_argument("--handlers", choices=("on", "off"), default="on")
    args = parser.parse_args()
    handlers = args.handlers == "on"
    counts = [int(n) for n in args.processes.split(",")]
    deliveries = make_deliveries(args.payments)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{len(deliveries)} events ({args.payments} payments), no duplicates, "
          f"split by {args.split}, handlers {args.handlers}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="paygate-bench-") as tmp:
        path = str(Path(tmp) / "deliveries.pickle")
        with open(path, "wb") as f:
            pickle.dump(deliveries, f)
        pg = postgres_url() if "postgresql" in args.stores else None
        if pg is not None:
            import psycopg

            base, schema = pg
            with psycopg.connect(base, autocommit=True) as conn:
                names = ("synchronous_commit", "fsync", "wal_sync_method")
                settings = {name: conn.execute(f"SHOW {name}").fetchone() for name in names}
            shown = ", ".join(f"{k}={v[0] if v else '?'}" for k, v in settings.items())
            print(f"postgresql server settings: {shown}")
            modes = [("", "server defaults"), ("&finish_commit=sync", "finish_commit=sync")]
            if args.async_commit:
                modes.append(("&options=-c%20synchronous_commit%3Doff", "synchronous_commit=off"))
            schemas: list[str] = []
            try:
                for extra, label in modes:
                    for n in counts:
                        schemas.append(f"{schema}_{len(schemas)}")
                        url = (f"{base}{'&' if '?' in base else '?'}schema={schemas[-1]}"
                               f"&pool_max=2{extra}")  # fmt: skip
                        paygate.open_store(url).close()  # schema created before the clock
                        rate = run(url, path, n, len(deliveries), args.split, handlers)
                        print(f"postgresql ({label})  {n} process(es): {rate:>8,.0f} events/s")
            finally:
                with psycopg.connect(base, autocommit=True) as conn:
                    for name in schemas:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        for n in counts if "sqlite" in args.stores else []:
            url = f"sqlite:///{Path(tmp) / f'ingest-{n}.db'}"
            paygate.open_store(url).close()
            rate = run(url, path, n, len(deliveries), args.split, handlers)
            print(f"sqlite WAL synchronous=FULL  {n} process(es): {rate:>8,.0f} events/s")


if __name__ == "__main__":
    main()
