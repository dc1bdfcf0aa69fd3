"""Stripe ``create_payment`` through paygate vs the raw SDK call, in instructions
(``valgrind --tool=callgrind``), against a local HTTP server on 127.0.0.1.

Instructions, not time: the machine is shared, and callgrind counts the same on a busy
machine as on an idle one. The server runs in its own process (its work is not counted).
Each variant runs as a child under callgrind twice, with W and W + N calls (W warm-up
calls: imports, first connection, caches); the difference over N is the cost of one
call. Variants:

* ``raw``: ``StripeClient.v1.payment_intents.create(params=..., options=...)`` and
  ``.to_dict()`` -- what an application on the SDK alone would write;
* ``adapter``: ``StripeProvider.create_payment`` (to a ``paygate.Payment``);
* ``gateway-memory``: ``Gateway.create_payment`` on ``memory://``;
* ``gateway-sqlite``: ``Gateway.create_payment`` on SQLite (WAL, synchronous=FULL).

Not run unless named in ``--variants``, one operation moved later to ``raw_request``
(issue 21, third part), each compared with its own raw SDK call:

* ``raw-pause-subscription``: ``StripeClient.v1.subscriptions.update(id, params=
  {"pause_collection": {"behavior": "void"}})`` and ``.to_dict()``;
* ``adapter-pause-subscription``: ``StripeProvider.pause_subscription`` (to a
  ``paygate.Subscription``).

The async face, also only when named, on each of its transports (the calls one after
another on one event loop, the loop's own work counted too):

* ``raw-async-httpx`` / ``raw-async-aiohttp``: ``await StripeClient.v1.payment_intents.
  create_async(params=..., options=...)`` and ``.to_dict()``, the client on the SDK's
  ``HTTPXClient`` / ``AIOHTTPClient``;
* ``adapter-async-httpx`` / ``adapter-async-aiohttp``: ``AsyncStripeProvider.
  create_payment`` with ``http_transport="httpx"`` / ``"aiohttp"``, each compared with
  the raw call on the same transport.

The server answers every request with the reference PaymentIntent
(``$PAYGATE_REFERENCE_DIR/stripe/fixtures3.json``; a smaller stand-in without it), a
request to ``/v1/subscriptions/...`` with the reference Subscription.
Goal (issue 21): adapter <= 1.0x raw; Gateway with SQLite <= 1.2x raw, with one durable
commit per call: ``gateway-sqlite`` runs once more without callgrind, its store's
connections traced (``sqlite3`` trace callback), and prints its commits per call -- a
``COMMIT`` under ``synchronous=FULL`` syncs the WAL (durable), one under ``NORMAL`` (a
bookkeeping commit) does not.

    python bench/bench_stripe_calls.py [--calls 100] [--warmup 20] [--variants raw,adapter]
        [--before <another checkout's src>]
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import itertools
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

HERE = Path(__file__).resolve()
SRC = HERE.parent.parent / "src"
VARIANTS = ("raw", "adapter", "gateway-memory", "gateway-sqlite")
#: run only when named; each compared with the raw SDK call named here
EXTRA_VARIANTS = {"raw-pause-subscription": None,
                  "adapter-pause-subscription": "raw-pause-subscription",
                  "raw-async-httpx": None, "adapter-async-httpx": "raw-async-httpx",
                  "raw-async-aiohttp": None,
                  "adapter-async-aiohttp": "raw-async-aiohttp"}  # fmt: skip
_REFERENCE = Path(
    os.environ.get(
        "PAYGATE_REFERENCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "reference"
    )
)


def _intent() -> bytes:
    path = _REFERENCE / "stripe" / "fixtures3.json"
    if path.is_file():
        intent = dict(json.loads(path.read_text())["resources"]["payment_intent"])
    else:  # no reference checkout: a smaller stand-in of the same shape
        intent = {"id": "pi_1", "object": "payment_intent", "amount": 1099,
                  "currency": "usd", "capture_method": "automatic"}  # fmt: skip
    intent.update(status="succeeded", amount_received=intent["amount"],
                  metadata={"order_id": "bench"}, last_payment_error=None,
                  next_action=None)  # fmt: skip
    return json.dumps(intent).encode()


def _subscription() -> dict[str, Any]:
    path = _REFERENCE / "stripe" / "fixtures3.json"
    if path.is_file():
        return dict(json.loads(path.read_text())["resources"]["subscription"])
    return {"id": "sub_1", "object": "subscription", "customer": "cus_1",  # a stand-in
            "status": "active", "items": {"object": "list", "data": []}}  # fmt: skip


def _serve(port_queue: Any) -> None:
    intent = json.loads(_intent())
    subscription = json.dumps(_subscription()).encode()
    created = itertools.count(1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Stripe's API

        def do_POST(self) -> None:
            sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            # a new PaymentIntent per request, for the order asked: the Gateway then
            # records a new payment each call (its row, transition and facts), as in
            # production -- the same id every time would leave it nothing to write
            order = parse_qs(sent.decode()).get("metadata[order_id]", ["bench"])[0]
            body = json.dumps({**intent, "id": f"pi_bench{next(created):019d}",
                               "metadata": {"order_id": order}}).encode()  # fmt: skip
            if self.path.startswith("/v1/subscriptions/"):
                body = subscription
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Request-Id", "req_bench")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def _params(i: int) -> Any:
    """What ``create_payment`` sends for order ``o{i}``, as the raw SDK call writes it."""
    return {"amount": 1099, "currency": "usd", "capture_method": "automatic",
            "metadata": {"order_id": f"o{i}"}, "payment_method": "pm_card_visa",
            "confirm": True,
            "automatic_payment_methods": {"enabled": True,
                                          "allow_redirects": "never"}}  # fmt: skip


async def _async_calls(variant: str, base_url: str, calls: int) -> dict[str, float]:
    """``calls`` async create_payment calls of ``variant``, one after another."""
    import stripe

    from paygate import Money
    from paygate.providers.stripe import AsyncStripeProvider

    key = "sk_test_bench_only"
    transport = variant.rsplit("-", 1)[1]
    if variant.startswith("raw-"):
        http = (stripe.AIOHTTPClient if transport == "aiohttp" else stripe.HTTPXClient)(timeout=10)
        client = stripe.StripeClient(key, base_addresses={"api": base_url},
                                     max_network_retries=0, http_client=http)  # fmt: skip

        async def call(i: int) -> Any:
            created = await client.v1.payment_intents.create_async(
                params=_params(i), options={"idempotency_key": f"o{i}:create"}
            )
            return created.to_dict()

        close: Any = http.close_async
    else:
        provider = AsyncStripeProvider(api_key=key, base_url=base_url, http_transport=transport)

        async def call(i: int) -> Any:
            return await provider.create_payment(
                order_id=f"o{i}", amount=Money(1099, "USD"), payment_method="pm_card_visa",
                idempotency_key=f"o{i}:create",
            )  # fmt: skip

        close = provider.aclose
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(calls):
        await call(i)
    timing = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}
    await close()
    return timing


def child(variant: str, base_url: str, calls: int, workdir: str) -> None:
    """``calls`` create_payment calls of ``variant``; print how long they took."""
    if "-async-" in variant:
        print(json.dumps(asyncio.run(_async_calls(variant, base_url, calls))))
        return
    import stripe

    import paygate
    from paygate import Money
    from paygate.providers.stripe import StripeProvider

    key = "sk_test_bench_only"
    if variant == "raw":
        client = stripe.StripeClient(
            key, base_addresses={"api": base_url}, max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=10),
        )  # fmt: skip

        def call(i: int) -> Any:
            return client.v1.payment_intents.create(
                params=_params(i), options={"idempotency_key": f"o{i}:create"}
            ).to_dict()
    elif variant == "raw-pause-subscription":
        client = stripe.StripeClient(
            key, base_addresses={"api": base_url}, max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=10),
        )  # fmt: skip

        def call(i: int) -> Any:
            return client.v1.subscriptions.update(
                "sub_bench", params={"pause_collection": {"behavior": "void"}}
            ).to_dict()
    else:
        provider = StripeProvider(api_key=key, base_url=base_url)
        if variant == "adapter-pause-subscription":

            def call(i: int) -> Any:
                return provider.pause_subscription("sub_bench")
        elif variant == "adapter":

            def call(i: int) -> Any:
                return provider.create_payment(
                    order_id=f"o{i}", amount=Money(1099, "USD"), payment_method="pm_card_visa",
                    idempotency_key=f"o{i}:create",
                )  # fmt: skip
        else:
            store = "memory://" if variant == "gateway-memory" else (
                f"sqlite:///{workdir}/calls-{os.getpid()}.db")  # fmt: skip
            gw = paygate.connect(provider, store=store)

            def call(i: int) -> Any:
                return gw.create_payment(
                    order_id=f"o{i}", amount=Money(1099, "USD"), payment_method="pm_card_visa"
                )

    commits = {"durable": 0, "relaxed": 0}
    if os.environ.get("BENCH_COUNT_COMMITS") and variant == "gateway-sqlite":
        _count_commits(gw.store, commits)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(calls):
        call(i)
    print(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                      **commits}))  # fmt: skip


def _count_commits(store: Any, commits: dict[str, int]) -> None:
    """Count ``store``'s commits from now on (its connections opened so far and later):
    durable (``synchronous=FULL``) and relaxed (``NORMAL``)."""
    setting: dict[int, str] = {}

    def tracer(conn: Any) -> None:
        setting[id(conn)] = store.synchronous

        def trace(statement: str) -> None:
            text = statement.strip().upper()
            found = re.fullmatch(r"PRAGMA SYNCHRONOUS\s*=\s*(\w+)", text)
            if found:
                setting[id(conn)] = found.group(1)
            elif text == "COMMIT":
                commits["durable" if setting[id(conn)] == "FULL" else "relaxed"] += 1

        conn.set_trace_callback(trace)

    for conn in list(store._connections):
        tracer(conn)
    opened = store._open

    def open_traced() -> Any:
        conn = opened()
        tracer(conn)
        return conn

    store._open = open_traced


def _commits(src: Path, base_url: str, calls: int, workdir: str) -> dict[str, float]:
    """``gateway-sqlite``'s commits per call (no callgrind)."""
    cmd = [sys.executable, str(HERE), "--child", "gateway-sqlite", "--base-url", base_url,
           "--calls", str(calls), "--workdir", workdir]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src), "BENCH_COUNT_COMMITS": "1"}
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    counted = json.loads(done.stdout.strip().splitlines()[-1])
    return {kind: counted[kind] / calls for kind in ("durable", "relaxed")}


def _instructions(
    src: Path, variant: str, base_url: str, calls: int, workdir: str
) -> tuple[int, dict[str, float]]:
    out = os.path.join(workdir, f"callgrind.{variant}.{calls}")
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
           sys.executable, str(HERE), "--child", variant, "--base-url", base_url,
           "--calls", str(calls), "--workdir", workdir]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    found = re.search(r"^(?:summary|totals): (\d+)", Path(out).read_text(), re.M)
    assert found, f"no totals in {out}"
    return int(found.group(1)), json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--before", type=Path, default=None,
                        help="another checkout's src/ for the paygate variants")  # fmt: skip
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.base_url, args.calls, args.workdir)
        return
    if shutil.which("valgrind") is None:
        print("valgrind not found (apt-get install valgrind): skipped")
        return
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=_serve, args=(ports,), daemon=True)
    server.start()
    base_url = f"http://127.0.0.1:{ports.get(timeout=60)}"
    variants = [v for v in args.variants.split(",") if v]
    runs = [(v, SRC, "") for v in variants]
    if args.before is not None:
        runs += [(v, args.before, " (before)") for v in variants if not v.startswith("raw")]
    try:
        per_call: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as workdir:
            print(f"callgrind, {args.calls} calls after {args.warmup} warm-up, server "
                  f"{base_url} in its own process")  # fmt: skip
            for variant, src, label in runs:
                load = os.getloadavg()
                low, _ = _instructions(src, variant, base_url, args.warmup, workdir)
                high, timing = _instructions(
                    src, variant, base_url, args.warmup + args.calls, workdir
                )
                per_call[variant + label] = (high - low) / args.calls
                raw = EXTRA_VARIANTS.get(variant, "raw")
                ratio = (
                    f" = {per_call[variant + label] / per_call[raw]:.3f}x {raw}"
                    if raw in per_call else ""
                )  # fmt: skip
                print(f"{variant}{label}: {per_call[variant + label]:,.0f} instructions/call"
                      f"{ratio}; under callgrind wall {timing['wall']:.1f} s, CPU "
                      f"{timing['cpu']:.1f} s for {args.warmup + args.calls} calls; load "
                      f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)  # fmt: skip
                if variant == "gateway-sqlite":
                    commits = _commits(src, base_url, args.calls, workdir)
                    print(f"{variant}{label}: {commits['durable']:.2f} durable commits/call "
                          f"(synchronous=FULL), {commits['relaxed']:.2f} without a sync "
                          "(bookkeeping)", flush=True)  # fmt: skip
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
