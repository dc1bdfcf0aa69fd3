"""Durable syncs per new webhook event on SQLite (a file, WAL, synchronous=FULL, the
default), with a handler registered, and events/s for one worker against the disk's own
limit, 1 / (one fsync's latency).

Syncs are counted, not timed: the same script is run as a child under
``strace -f -c -e trace=fsync,fdatasync`` once with no events (opening the store, the
schema, the warm-up) and once with N events; the difference over N is the figure. Every
event is new: a ``payment.created`` and a ``payment.succeeded`` per payment (fake
provider), with a handler on both -- on ``payment.created`` it runs in the request
(then the event's "handled" mark), on ``payment.succeeded`` from the facts outbox (claim,
handler, done mark). Goal (issue 21): <= 1.05 syncs per event; events/s >= 0.8 x
1 / fsync latency.

Then the same events delivered concurrently to ONE worker process by ``--threads``
threads (as a threaded WSGI server serves them; each payment's two events on one thread,
in order), once with the store as configured by default and once with
``?group_commit=on`` (the threads' writes share transactions, so one sync can carry
several events: `paygate.stores._sqlite_group`); events/s and syncs per event of each,
against the same 1/fsync. ``--threads 0`` skips them.

``--before SRC`` runs the same children on another checkout's ``src`` (e.g.
``/work/main/src``) too, for a before/after table. Load average and CPU time are printed
beside wall time: on a shared machine CPU time is the steadier figure; CPU per event is
what bounds events/s on a fast disk (one worker: at most 1 / (CPU per event + fsync)).

    python bench/bench_webhook_commit.py [--events 400] [--threads 8] [--before SRC]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

SECRET = "whsec_bench_only"
HERE = Path(__file__).resolve()
SRC = HERE.parent.parent / "src"


def child(path: str, events: int, probe: bool, threads: int = 0, group: bool = False) -> None:
    """Handle ``events`` new deliveries on a fresh SQLite store at ``path`` (one after the
    other, or on ``threads`` threads at once; ``group``: ``?group_commit=on``); print JSON."""
    import paygate
    from paygate import EventType, Money
    from paygate.providers.fake import FakeProvider

    provider = FakeProvider(seed=1, webhook_secret=SECRET, webhook_tolerance=86_400)
    for i in range((events + 1) // 2):
        provider.create_payment(order_id=f"bench_{i}", amount=Money(1234, "USD"),
                                payment_method="tok_visa", idempotency_key=f"k{i}")  # fmt: skip
    deliveries = provider.take_webhooks()[:events]
    gw = paygate.connect(
        provider, store=f"sqlite:///{path}" + ("?group_commit=on" if group else "")
    )
    handled: list[str] = []
    gw.on(EventType.PAYMENT_CREATED)(lambda event: handled.append(event.id))
    gw.on(EventType.PAYMENT_SUCCEEDED)(lambda fact: handled.append(fact.id))
    gw.store.get_payment("warm-up")  # the connection opens before the clock starts
    # the disk's latency just before and after the run, in the store's directory: a
    # shared disk's latency drifts by the minute
    latency = fsync_latency(os.path.dirname(path)) if probe else 0.0
    lanes: list[list[Any]] = [[] for _ in range(max(threads, 1))]
    for i, d in enumerate(deliveries):  # a payment's created and succeeded on one lane
        lanes[(i // 2) % len(lanes)].append(d)

    def deliver(lane: list[Any]) -> None:
        for d in lane:
            gw.handle_webhook(d.body, d.headers)

    workers = [threading.Thread(target=deliver, args=(lane,)) for lane in lanes]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if threads:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    else:
        deliver(lanes[0])
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if probe:  # (not under strace: its syncs are not the store's)
        latency = (latency + fsync_latency(os.path.dirname(path))) / 2
    gw.close()
    assert len(handled) == len(deliveries), (len(handled), len(deliveries))
    print(json.dumps({"events": len(deliveries), "wall": wall, "cpu": cpu, "fsync": latency}))


def _run_child(
    src: Path, path: str, events: int, strace_out: str | None, threads: int = 0,
    group: bool = False,
) -> dict[str, Any]:  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, str(HERE), "--child", path, "--events", str(events),
           "--threads", str(threads)] + (["--group"] if group else [])  # fmt: skip
    if strace_out is None:
        cmd.append("--probe")
    else:
        cmd = ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", strace_out, *cmd]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _syncs(strace_out: str) -> int:
    """fsync + fdatasync calls in an ``strace -c`` summary."""
    calls = 0
    for line in Path(strace_out).read_text().splitlines():
        fields = line.split()
        if fields and fields[-1] in ("fsync", "fdatasync"):
            calls += int(fields[3])
    return calls


def fsync_latency(directory: str, rounds: int = 40) -> float:
    """Median seconds of one 4 KiB append + fdatasync in ``directory`` (the store's disk):
    what a commit in WAL mode does (frames appended to the log, then one sync)."""
    fd, name = tempfile.mkstemp(dir=directory)
    try:
        times = []
        for i in range(rounds):
            os.pwrite(fd, os.urandom(4096), i * 4096)
            start = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        os.close(fd)
        os.unlink(name)


def measure(
    src: Path, events: int, workdir: str, threads: int = 0, group: bool = False
) -> dict[str, float]:
    """Syncs per event (strace) and events/s (a run without strace) of the code at ``src``."""
    counts = []
    for n in (0, events):
        db = os.path.join(workdir, f"s{n}.db")
        out = os.path.join(workdir, f"strace{n}.txt")
        _run_child(src, db, n, out, threads, group)
        counts.append(_syncs(out))
        for suffix in ("", "-wal", "-shm"):
            Path(db + suffix).unlink(missing_ok=True)
    db = os.path.join(workdir, "rate.db")
    timed = _run_child(src, db, events, None, threads, group)
    for suffix in ("", "-wal", "-shm"):
        Path(db + suffix).unlink(missing_ok=True)
    return {
        "fsync": timed["fsync"],
        "syncs_per_event": (counts[1] - counts[0]) / events,
        "events_per_s": timed["events"] / timed["wall"],
        "wall": timed["wall"],
        "cpu": timed["cpu"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=400)
    parser.add_argument(
        "--before", type=Path, default=None, help="another checkout's src/ to measure too"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=8,
        help="concurrent deliveries to one worker (0: serial only)",
    )
    parser.add_argument("--group", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.events, args.probe, args.threads, args.group)
        return
    if shutil.which("strace") is None:
        print("strace not found (apt-get install strace): skipped")
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("PAYGATE_BENCH_DIR")) as workdir:
        print(f"SQLite synchronous=FULL (WAL), one worker, {args.events} new events, a handler "
              f"on payment.created and on payment.succeeded; store in {workdir}")  # fmt: skip
        runs = [("after (this checkout)", SRC)]
        if args.before is not None:
            runs.insert(0, (f"before ({args.before})", args.before))
        for label, src in runs:
            cases = [("serial", 0, False)]
            if args.threads:
                many = f"{args.threads} threads"
                cases += [(many, args.threads, False),
                          (f"{many}, group_commit=on", args.threads, True)]  # fmt: skip
            for case, threads, group in cases:
                load = os.getloadavg()
                got = measure(src, args.events, workdir, threads, group)
                limit = 1 / got["fsync"]
                print(f"{label}, {case}: fsync (4 KiB append + fdatasync, median, before "
                      f"and after the run) {got['fsync'] * 1e3:.2f} ms -> 1/fsync = "
                      f"{limit:.0f}/s")  # fmt: skip
                print(f"{label}, {case}: {got['syncs_per_event']:.3f} syncs/event (goal <= "
                      f"1.05); {got['events_per_s']:.0f} events/s = "
                      f"{got['events_per_s'] / limit:.2f} x 1/fsync (goal >= 0.8); wall "
                      f"{got['wall']:.2f} s, CPU {got['cpu']:.2f} s "
                      f"({got['cpu'] / args.events * 1e3:.3f} ms/event); load "
                      f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"all children: CPU {children.ru_utime + children.ru_stime:.2f} s")


if __name__ == "__main__":
    main()
