"""The async adapters fail as the sync ones do, over real sockets: every fault of
:mod:`tests.fault_server` (5xx, 429 with Retry-After, an HTML page, a non-JSON 404, resets
before and after the read, timeouts before and after the provider committed, a cut-off
body, a non-JSON 200) on the charge request, for Stripe, PayPal and Square, gives the same
error class, code, HTTP status and Retry-After on both faces; the retry with the same key
then charges once. The per-request timeout is the adapter's ``timeout`` cut to the retry
budget's deadline (``attempt_timeout``), on the async face too.
"""

from __future__ import annotations

import asyncio
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


def make_async_provider(name: str, url: str, timeout: float) -> Any:
    if name == "stripe":
        return AsyncStripeProvider(api_key="sk_test_faults", base_url=url, timeout=timeout)
    if name == "paypal":
        return AsyncPayPalProvider(client_id="AZfaults", client_secret="EPfaults-secret",
                                   base_url=url, timeout=timeout)  # fmt: skip
    return AsyncSquareProvider(access_token="sq-faults-token", location_id="LFAULTS",
                               base_url=url, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module", params=("stripe", "paypal", "square"))
def server(request: pytest.FixtureRequest) -> Iterator[FaultServer]:
    fault_server = FaultServer(BACKENDS[request.param]())
    yield fault_server
    fault_server.close()


@pytest.fixture(scope="module")
def faces(server: FaultServer) -> Iterator[dict[str, PaymentProvider]]:
    name = server.backend.name
    sync = make_provider(name, server.url, TIMEOUT)
    facade = blocking(make_async_provider(name, server.url, TIMEOUT))
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


def test_a_hung_provider_costs_the_deadline_not_the_timeout(server: FaultServer) -> None:
    """Inside a retry budget, the async request's timeout is cut to the time left."""
    provider = make_async_provider(server.backend.name, server.url, timeout=5.0)
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


@pytest.mark.parametrize("name", ["stripe", "paypal", "square"])
def test_concurrent_calls_overlap_and_never_stall_the_loop(name: str) -> None:
    stalls: list[float] = []

    async def monitor(stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            await asyncio.sleep(0.005)
            stalls.append(time.monotonic() - started - 0.005)

    async def scenario() -> float:
        provider = make_async_provider(name, url, timeout=10.0)
        stop = asyncio.Event()
        watcher = asyncio.create_task(monitor(stop))
        started = time.monotonic()
        try:
            payments = await asyncio.gather(*(
                provider.create_payment(
                    order_id=f"par-{n}", amount=AMOUNT, payment_method=PAYMENT_METHOD[name],
                    idempotency_key=f"par-{n}:create",
                )
                for n in range(CONCURRENT)
            ))  # fmt: skip
            assert len({p.id for p in payments}) == CONCURRENT
            return time.monotonic() - started
        finally:
            stop.set()
            await watcher
            await provider.aclose()

    with running(name, LATENCY) as url:
        elapsed = asyncio.run(scenario())
    # one after another would take CONCURRENT x LATENCY = 9 s (PayPal: plus its token)
    assert elapsed < CONCURRENT * LATENCY / 4, elapsed
    # a blocking request would stall the loop for LATENCY. What the monitor sees is the
    # longest wait of its timer, which also queues behind the answers that arrive together
    # (each parsed in its own callback): tens of ms on a loaded machine, not a block
    print(f"{name}: {CONCURRENT} calls in {elapsed:.2f} s, longest loop stall {max(stalls) * 1000:.1f} ms")
    assert max(stalls) < LATENCY / 2, max(stalls)
