"""The AsyncGateway never blocks its event loop for long: 200 concurrent create_payment
and 200 concurrent handle_webhook against a provider whose every call is an HTTP round
trip to a local server answering after 50 ms (``tests/latency_server.py``, in its own
process), with no single callback of the loop running over 20 ms.

Every callback the loop runs (each step of each task) is timed by wrapping
``asyncio.Handle._run``, the one place the loop calls them: a blocking call (a sync HTTP
request, a store call on the loop, a ``time.sleep``) shows as one long callback. What a
busy machine takes away is not counted: on Linux, the time the process's threads spent
runnable but waiting for a CPU (``/proc/self/task/*/schedstat``) during the callback is
subtracted from its duration. The calls are warmed up first (first-use imports, the
first connection), and a run is repeated (at most three times) before the test fails: a
real blocking call fails every run (the control test shows the timer catches one). On a
machine loaded beyond twice its CPUs, where even a store thread's turn on the GIL waits on
the OS scheduler, three failed runs skip with the figures instead of failing.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import EventType, Money
from paygate.providers.fake import FakeProvider
from tests.latency_server import LatencyProvider, LatencyServer
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

CONCURRENT = 200
LIMIT = 0.020


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with LatencyServer(0.05) as url:
        yield url


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        # 400 calls at once on pg_url's 4 connections: natively on the loop, every call
        # queues in the pool, its wait bounded by timeout= (10 s by default), which a
        # loaded machine can outlast; this test is about the loop's callbacks
        url: str = request.getfixturevalue("pg_url") + "&timeout=60"
        return url
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"


def _waiting_for_cpu() -> float:
    """Seconds the process's threads have spent runnable but not running (Linux), else 0."""
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


class Stretches:
    """The longest callbacks the event loop ran while ``timing`` (less the time the
    machine kept the process waiting for a CPU)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.longest: list[tuple[float, str]] = []
        self.timing = False
        run = asyncio.Handle._run
        stretches = self

        def timed(handle: asyncio.Handle) -> None:
            if not stretches.timing:
                run(handle)
                return
            start, queued = time.perf_counter(), _waiting_for_cpu()
            run(handle)
            took = time.perf_counter() - start
            if took > LIMIT / 4:
                took = max(took - (_waiting_for_cpu() - queued), 0.0)
                stretches.longest.append((took, repr(handle)[:160]))

        monkeypatch.setattr(asyncio.Handle, "_run", timed)

    def worst(self) -> tuple[float, str]:
        return max(self.longest, default=(0.0, "none"))


def _deliveries(provider: FakeProvider, count: int, tag: str) -> list[Any]:
    """Webhooks of ``count`` payments made at the provider (its engine, no round trip)."""
    for i in range(count):
        FakeProvider.create_payment(
            provider, order_id=f"{tag}-hook-{i}", amount=Money.of("3.00", "USD"),
            payment_method="tok_visa", idempotency_key=f"{tag}-hook-{i}",
        )  # fmt: skip
    return provider.take_webhooks()


async def _load(
    url: str, store_url: str, tag: str, stretches: Stretches, block: float = 0.0
) -> float:
    # the minimal HTTP client: httpcore's async pool re-examines every connection per
    # queued request, a CPU cost of httpx at 200 in flight, not of the gateway's
    provider = LatencyProvider(url, client="plain", seed=None)
    deliveries = _deliveries(provider, CONCURRENT, tag)
    warm_up = _deliveries(provider, 1, f"{tag}-warm")
    async with paygate.connect_async(provider, store_url) as agw:
        await agw.create_payment(order_id=f"{tag}-warm", amount=Money.of("2.00", "USD"),
                                 payment_method="tok_visa")  # fmt: skip
        for delivery in warm_up:
            await agw.handle_webhook(delivery.body, delivery.headers)
        if block:

            @agw.on(EventType.PAYMENT_SUCCEEDED)
            def blocking_handler(fact: Any) -> None:
                time.sleep(block)  # what the timer must catch

        calls = [
            agw.create_payment(order_id=f"{tag}-{i}", amount=Money.of("2.00", "USD"),
                               payment_method="tok_visa")
            for i in range(CONCURRENT)
        ] + [agw.handle_webhook(d.body, d.headers) for d in deliveries]  # fmt: skip
        start = time.perf_counter()
        stretches.timing = True
        try:
            results = await asyncio.gather(*calls)
        finally:
            stretches.timing = False
        took = time.perf_counter() - start
        assert len(results) == CONCURRENT + len(deliveries)
        paid = await agw.payment_for_order(f"{tag}-0")
        assert paid is not None
        return took


def test_no_callback_blocks_the_loop_over_20ms(
    server_url: str, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stretches = Stretches(monkeypatch)
    runs = []
    for attempt in range(3):
        stretches.longest.clear()
        gc.collect()

        took = asyncio.run(_load(server_url, store_url, f"r{attempt}", stretches))
        worst = stretches.worst()
        runs.append((round(worst[0] * 1000, 1), worst[1], round(took, 2)))
        if worst[0] <= LIMIT:
            break
    else:
        load, cpus = os.getloadavg()[0], os.cpu_count() or 1
        message = f"a loop callback ran over {LIMIT * 1000:.0f} ms in every run: {runs}"
        if load > 2 * cpus:
            # the store's threads and the loop take turns on the GIL; on a machine this
            # oversubscribed each turn waits on the OS scheduler as well (a blocking call
            # fails on any machine: see the control test)
            pytest.skip(f"machine overloaded (load {load:.1f} on {cpus} CPUs): {message}")
        pytest.fail(message)
    # 400 calls of >= 50 ms each overlapped on one loop: well under their serial 20 s
    assert runs[-1][2] < 10, runs


def test_the_timer_catches_a_blocking_handler(
    server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stretches = Stretches(monkeypatch)

    asyncio.run(_load(server_url, "memory://", "control", stretches, block=0.03))
    took, where = stretches.worst()
    assert took >= 0.03, where
