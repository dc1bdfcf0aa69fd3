"""paygate sandbox: startup time, memory (RSS) and requests/s for ``POST /v1/payment_intents``.

The sandbox runs as ``paygate sandbox --port 0`` in its own process (as a developer runs
it), so the client threads here do not share its GIL:

* startup: from launching the process to its first answer on ``/_sandbox/info``, and the
  in-process ``Sandbox(port=0).start()`` the pytest fixture does;
* memory: the server process's RSS after startup and after the requests below;
* throughput: confirmed PaymentIntents (``pm_card_visa``, each with an ``Idempotency-Key``;
  three events stored per intent, no webhook endpoint) from 1 and 4 client threads, and
  with a SQLite store from 1.

Printed, not asserted.

    python bench/bench_sandbox.py [--n 2000] [--threads 1,4]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

BODY = {"amount": "2000", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"}
HEADERS = {"Authorization": "Bearer sk_test_bench"}


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def start_process(store: str = "memory://") -> tuple[subprocess.Popen[str], str, float]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "paygate", "sandbox", "--port", "0", "--store", store],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"http://[\d.]+:\d+", line)
    if not match:
        process.kill()
        raise SystemExit(f"sandbox did not start: {line!r}")
    url = match.group(0)
    while True:
        try:
            httpx.get(url + "/_sandbox/info", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            time.sleep(0.005)
    return process, url, time.perf_counter() - started


def in_process_start() -> float:
    from paygate.sandbox import Sandbox

    started = time.perf_counter()
    sandbox = Sandbox(port=0).start()
    httpx.get(sandbox.base_url + "/_sandbox/info", timeout=5).raise_for_status()
    elapsed = time.perf_counter() - started
    sandbox.stop()
    return elapsed


def throughput(url: str, n: int, threads: int) -> float:
    per_thread = n // threads
    errors: list[str] = []

    def work(worker: int) -> None:
        with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as client:
            for i in range(per_thread):
                key = {"Idempotency-Key": f"bench-{threads}-{worker}-{i}"}
                answer = client.post("/v1/payment_intents", data=BODY, headers=key)
                if answer.status_code != 200:
                    errors.append(answer.text[:200])

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return per_thread * threads / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--threads", default="1,4", help="client thread counts")
    args = parser.parse_args()
    print(
        f"in-process start (Sandbox(port=0).start() to first answer): "
        f"{in_process_start() * 1000:.0f} ms"
    )
    process, url, startup = start_process()
    try:
        print(f"`paygate sandbox` start (process launch to first answer): {startup * 1000:.0f} ms")
        print(f"RSS after start: {_rss_mib(process.pid):.1f} MiB")
        for threads in (int(t) for t in args.threads.split(",")):
            rate = throughput(url, args.n, threads)
            print(
                f"POST /v1/payment_intents (confirm, pm_card_visa), {threads} client "
                f"thread(s): {rate:.0f} req/s"
            )
        total = len(httpx.get(url + "/_sandbox/events", params={"limit": 10**6}).json()["events"])
        print(f"RSS after the requests ({total} events stored): {_rss_mib(process.pid):.1f} MiB")
    finally:
        stop(process)
    # a SQLite store saves the provider's state after every change: slower, and slower as
    # the state grows (it is rewritten whole)
    with tempfile.TemporaryDirectory() as folder:
        process, url, _ = start_process(f"sqlite:///{folder}/sandbox.db")
        try:
            rate = throughput(url, args.n // 4, 1)
            print(
                f"with --store sqlite:///..., 1 client thread, {args.n // 4} requests: "
                f"{rate:.0f} req/s"
            )
        finally:
            stop(process)


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


if __name__ == "__main__":
    main()
