"""CPU of one ``Gateway.handle_webhook`` on SQLite, in instructions (callgrind) and in
CPU time: Stripe-signed ``payment_intent.created`` / ``payment_intent.succeeded`` pairs
(every event new), handlers on ``payment.created`` (in the request) and on
``payment.succeeded`` (from the facts outbox), the store a SQLite file (WAL,
``synchronous=FULL``).

Instructions, not time: the machine is shared, and callgrind counts the same on a busy
machine as on an idle one. The child runs under callgrind twice, with W warm-up events
and with W + N, both having built the same W + N signed deliveries; the difference over
N is one event's cost (imports, the store's schema, the first connection and building
the deliveries fall out). Then the same N events run without callgrind, and
their CPU time (user + system: the commits' writes and syncs are system time) and wall
time are printed with the load average. On a fast disk, one worker's events/s is about
1 / (CPU per event + one sync): the CPU decides how near it comes to the issue-21 goal
of 0.8 x 1 / fsync (``bench_webhook_commit.py`` measures that ratio).

``--before SRC`` measures another checkout's ``src`` too (e.g. ``/work/main/src``);
``--profile`` prints the cProfile of the timed run (the top functions by own time).

    python bench/bench_webhook_cpu.py [--events 100] [--warmup 20] [--before SRC]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _child import run_child  # bench/ is on sys.path: the script's own directory

HERE = Path(__file__).resolve()
SRC = HERE.parent.parent / "src"
SECRET = "whsec_bench_cpu"
_REFERENCE = Path(os.environ.get("PAYGATE_REFERENCE_DIR", HERE.parents[2] / "shared" / "reference"))


def _examples() -> tuple[dict[str, Any], dict[str, Any]]:
    path = _REFERENCE / "stripe" / "fixtures3.json"
    if path.is_file():
        resources = json.loads(path.read_text(encoding="utf-8"))["resources"]
        return resources["event"], resources["payment_intent"]
    event = {"object": "event", "api_version": None, "livemode": False,  # a stand-in
             "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}}  # fmt: skip
    intent = {"object": "payment_intent", "amount": 1099, "currency": "usd",
              "metadata": {}, "capture_method": "automatic",
              "payment_method_types": ["card"]}  # fmt: skip
    return event, intent


def deliveries(count: int, now: int) -> list[tuple[bytes, dict[str, str]]]:
    """``count`` signed events: a created and a succeeded per PaymentIntent, in order."""
    from paygate.providers._stripe_webhook import sign

    event_example, intent_example = _examples()
    out = []
    for i in range((count + 1) // 2):
        for kind, status in (("created", "requires_payment_method"), ("succeeded", "succeeded")):
            intent = copy.deepcopy(intent_example)
            intent.update(id=f"pi_cpu_{i:06d}", amount=1000 + i, status=status,
                          amount_received=1000 + i if kind == "succeeded" else 0,
                          last_payment_error=None, metadata={"order_id": f"ord_{i}"})  # fmt: skip
            event = copy.deepcopy(event_example)
            event.update(id=f"evt_cpu_{i:06d}_{kind}", type=f"payment_intent.{kind}",
                         created=now, data={"object": intent})  # fmt: skip
            body = json.dumps(event).encode()
            out.append((body, {"Stripe-Signature": sign(body, SECRET, now)}))
    return out[:count]


def child(workdir: str, warmup: int, events: int, profile: bool, made: int) -> None:
    import paygate
    from paygate import EventType
    from paygate.providers.stripe import StripeProvider

    # ``made`` deliveries are built (signed, JSON) whatever ``events`` is: the warm-up
    # run builds as many as the full one, so building them is not counted per event
    signed = deliveries(max(made, warmup + events), int(time.time()))
    gw = paygate.connect(
        StripeProvider(api_key="sk_test_bench", webhook_secret=SECRET),
        store=f"sqlite:///{os.path.join(tempfile.mkdtemp(dir=workdir), 'cpu.db')}",
    )
    heard: list[str] = []
    gw.on(EventType.PAYMENT_CREATED)(lambda event: heard.append(event.id))
    gw.on(EventType.PAYMENT_SUCCEEDED)(lambda fact: heard.append(fact.id))
    for body, headers in signed[:warmup]:
        gw.handle_webhook(body, headers)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    times0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for body, headers in signed[warmup : warmup + events]:
        gw.handle_webhook(body, headers)
    wall, times1 = time.perf_counter() - wall0, resource.getrusage(resource.RUSAGE_SELF)
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    gw.close()
    assert len(heard) == warmup + events, (len(heard), warmup + events)
    print(json.dumps({"wall": wall, "user": times1.ru_utime - times0.ru_utime,
                      "system": times1.ru_stime - times0.ru_stime}))  # fmt: skip


def _run(src: Path, workdir: str, warmup: int, events: int, callgrind: bool,
         profile: bool = False, made: int = 0) -> dict[str, Any]:  # fmt: skip
    child = ["--child", workdir, "--warmup", str(warmup), "--events", str(events),
             "--made", str(made)]  # fmt: skip
    out = os.path.join(workdir, f"callgrind.{warmup}.{events}") if callgrind else None
    return run_child(HERE, src, child, callgrind_out=out, profile=profile)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--before", type=Path, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--made", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.warmup, args.events, args.profile, args.made)
        return
    runs = [("after (this checkout)", SRC)]
    if args.before is not None:
        runs.insert(0, (f"before ({args.before})", args.before))
    grind = shutil.which("valgrind") is not None
    if not grind:
        print("valgrind not found (apt-get install valgrind): CPU time only")
    print(f"SQLite synchronous=FULL (WAL), Stripe-signed events, handlers on payment.created "
          f"and payment.succeeded; {args.events} events after {args.warmup} warm-up")  # fmt: skip
    with tempfile.TemporaryDirectory(dir=os.environ.get("PAYGATE_BENCH_DIR")) as workdir:
        for label, src in runs:
            if grind:
                made = args.warmup + args.events  # both runs build the same deliveries
                base = _run(src, workdir, args.warmup, 0, callgrind=True, made=made)
                full = _run(src, workdir, args.warmup, args.events, callgrind=True, made=made)
                per = (full["instructions"] - base["instructions"]) / args.events
                print(f"{label}: {per:,.0f} instructions/event (callgrind)", flush=True)
            load = os.getloadavg()
            timed = _run(src, workdir, args.warmup, args.events, callgrind=False,
                         profile=args.profile)  # fmt: skip
            cpu = timed["user"] + timed["system"]
            print(f"{label}: CPU {cpu / args.events * 1e3:.3f} ms/event (user "
                  f"{timed['user'] / args.events * 1e3:.3f}, system "
                  f"{timed['system'] / args.events * 1e3:.3f}); wall "
                  f"{timed['wall'] / args.events * 1e3:.3f} ms/event, "
                  f"{args.events / timed['wall']:.0f} events/s; load "
                  f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
