"""The async adapters fail as the sync ones do, over real sockets: every fault of
:mod:`tests.fault_server` (5xx, 429 with Retry-After, an HTML page, a non-JSON 404, resets
before and after the read, timeouts before and after the provider committed, a cut-off
body, a non-JSON 200) on the charge request, for Stripe, PayPal and Square, gives the same
error class, code, HTTP status and Retry-After on both faces; the retry with the same key
then charges once. The per-request timeout is the adapter's ``timeout`` cut to the retry
budget's deadline (``attempt_timeout``), on the async face too.

Every test runs on both transports an async adapter makes its own client on
(``http_transport``: aiohttp's pool, httpx's): aiohttp's failures must come
out as the httpx failures they stand for, classified as the sync face classifies them.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from paygate import Money, OutcomeUnknown, ProviderError
from paygate._retry import RetryPolicy
from paygate.provider import PaymentProvider
from paygate.providers.paypal import AsyncPayPalProvider
from paygate.providers.square import AsyncSquareProvider
from paygate.providers.stripe import AsyncStripeProvider
from paygate.testing.aio import blocking
from tests.fault_server import BACKENDS, FAULTS, FaultServer
from tests.slow_server import running
from tests.test_faults import PAYMENT_METHOD, TIMEOUT, make_provider

AMOUNT = Money.of("19.99", "USD")
_orders = itertools.count(1)


TRANSPORTS = ("aiohttp", "httpx")


def make_async_provider(name: str, url: str, timeout: float, transport: str) -> Any:
    provider: Any
    if name == "stripe":
        provider = AsyncStripeProvider(api_key="sk_test_faults", base_url=url, timeout=timeout,
                                       http_transport=transport)  # fmt: skip
    elif name == "paypal":
        provider = AsyncPayPalProvider(client_id="AZfaults", client_secret="EPfaults-secret",
                                       base_url=url, timeout=timeout,
                                       http_transport=transport)  # fmt: skip
    else:
        provider = AsyncSquareProvider(access_token="sq-faults-token", location_id="LFAULTS",
                                       base_url=url, timeout=timeout,
                                       http_transport=transport)  # fmt: skip
    assert provider.http_transport == transport
    return provider


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    if request.param == "aiohttp":
        pytest.importorskip("httpx_aiohttp")
    return str(request.param)


@pytest.fixture(scope="module", params=("stripe", "paypal", "square"))
def server(request: pytest.FixtureRequest) -> Iterator[FaultServer]:
    fault_server = FaultServer(BACKENDS[request.param]())
    yield fault_server
    fault_server.close()


@pytest.fixture(scope="module")
def faces(server: FaultServer, transport: str) -> Iterator[dict[str, PaymentProvider]]:
    name = server.backend.name
    sync = make_provider(name, server.url, TIMEOUT)
    facade = blocking(make_async_provider(name, server.url, TIMEOUT, transport))
    yield {"sync": sync, "async": facade}
    sync.close()
    facade.close()  # type: ignore[attr-defined]


def _outcome(provider: PaymentProvider, server: FaultServer, order: str) -> tuple[Any, ...]:
    try:
        provider.create_payment(
            order_id=order, amount=AMOUNT, payment_method=PAYMENT_METHOD[server.backend.name],
            idempotency_key=f"{order}:create",
        )  # fmt: skip
    except ProviderError as exc:
        return type(exc), exc.code, exc.http_status, exc.retry_after, exc.retryable
    return ("ok",)


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_classified_alike_and_the_retry_charges_once(
    faces: dict[str, PaymentProvider], server: FaultServer, fault: str
) -> None:
    outcomes: dict[str, tuple[Any, ...]] = {}
    for face, provider in faces.items():
        order = f"o-{fault[:14]}-{face[0]}-{next(_orders)}"
        server.arm("charge", fault, times=1, retry_after="2")
        try:
            outcomes[face] = _outcome(provider, server, order)
        finally:
            server.disarm()
        # the fault is gone: the same key again ends with exactly one charge
        assert _outcome(provider, server, order) == ("ok",)
        assert server.backend.charges[order] == 1, (face, fault)
    assert outcomes["async"] == outcomes["sync"], fault
    assert outcomes["async"] != ("ok",), f"{fault} went unnoticed"


def test_a_hung_provider_costs_the_deadline_not_the_timeout(
    server: FaultServer, transport: str
) -> None:
    """Inside a retry budget, the async request's timeout is cut to the time left."""
    provider = make_async_provider(server.backend.name, server.url, 5.0, transport)
    facade = blocking(provider)
    facade.create_payment(  # warm up (PayPal's token) outside the budget
        order_id=f"warm-{next(_orders)}", amount=AMOUNT,
        payment_method=PAYMENT_METHOD[server.backend.name], idempotency_key=f"w{next(_orders)}",
    )  # fmt: skip
    policy = RetryPolicy(attempts=1, total_budget=0.3)
    order = f"hung-{next(_orders)}"
    server.arm("charge", "timeout_before_commit", times=None)
    started = time.monotonic()
    try:
        with pytest.raises(OutcomeUnknown):
            policy.call("create_payment", lambda: _raise(_outcome(facade, server, order)))
    finally:
        server.disarm()
        facade.close()  # type: ignore[attr-defined]
    assert time.monotonic() - started < 2.0  # 0.3 s budget, not the 5 s timeout


def _raise(outcome: tuple[Any, ...]) -> None:
    if outcome != ("ok",):
        raise outcome[0]("re-raised", provider="test", code=outcome[1])


# -- non-blocking: concurrent calls overlap, the loop keeps running ----------------------------

LATENCY = 0.3  # the server's answer time; a blocking call would stall the loop this long
CONCURRENT = 30


def _cpu_wait() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux schedstat; 0
    where unavailable): on a loaded machine, time no event loop could have used."""
    try:
        with open("/proc/thread-self/schedstat", encoding="ascii") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


async def _watched(calls: Any) -> tuple[float, float]:
    """Await ``calls`` (an awaitable) with a loop monitor running: (elapsed, longest stall),
    both less the time the machine kept this thread waiting for a CPU."""
    stalls: list[float] = [0.0]
    stop = asyncio.Event()

    async def monitor() -> None:
        while not stop.is_set():
            started, waited = time.monotonic(), _cpu_wait()
            await asyncio.sleep(0.005)
            stalls.append(time.monotonic() - started - 0.005 - (_cpu_wait() - waited))

    watcher = asyncio.create_task(monitor())
    await asyncio.sleep(0)  # the monitor is running before the first call starts
    started, waited = time.monotonic(), _cpu_wait()
    try:
        await calls
        elapsed = time.monotonic() - started - (_cpu_wait() - waited)
    finally:
        stop.set()
        await watcher  # its last round, the one that may have waited on the calls' end
    return elapsed, max(stalls)


@pytest.mark.parametrize("name", ["stripe", "paypal", "square"])
def test_concurrent_calls_overlap_and_never_stall_the_loop(name: str, transport: str) -> None:
    async def scenario() -> tuple[float, float]:
        provider = make_async_provider(name, url, 10.0, transport)
        try:
            calls = asyncio.gather(*(
                provider.create_payment(
                    order_id=f"par-{n}", amount=AMOUNT, payment_method=PAYMENT_METHOD[name],
                    idempotency_key=f"par-{n}:create",
                )
                for n in range(CONCURRENT)
            ))  # fmt: skip
            elapsed, stall = await _watched(calls)
            assert len({p.id for p in calls.result()}) == CONCURRENT
            return elapsed, stall
        finally:
            await provider.aclose()

    # the heap earlier tests left behind is not the adapter's: a full collection over it,
    # triggered by this test's allocations, would pause the loop for what they left
    gc.collect()
    gc.freeze()
    try:
        with running(name, LATENCY) as url:
            elapsed, stall = asyncio.run(scenario())
    finally:
        gc.unfreeze()
    print(f"{name}: {CONCURRENT} calls in {elapsed:.2f} s, longest loop stall {stall * 1000:.1f} ms")
    # one after another would take CONCURRENT x LATENCY = 9 s (PayPal: plus its token)
    assert elapsed < CONCURRENT * LATENCY / 3, elapsed
    # a blocking request stalls the loop for LATENCY (the control below). What the monitor
    # sees here is its timer queued behind answers arriving together, each parsed in its
    # own callback: tens of ms on a loaded machine, not a block
    assert stall < LATENCY / 2, stall


def test_the_monitor_catches_a_blocking_call() -> None:
    """The control: a call that blocks the thread on I/O for LATENCY (as a sync HTTP client
    would) shows as a stall of about LATENCY, whatever the machine's load."""

    async def blocking_call() -> None:
        await asyncio.sleep(0.01)
        time.sleep(LATENCY)  # off the CPU, as when waiting for a socket

    _, stall = asyncio.run(_watched(blocking_call()))
    assert stall >= LATENCY * 0.9, stall
