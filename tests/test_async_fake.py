"""The async fake provider: the provider contract through ``blocking()``, and natively on a loop.

Same engine as the sync fake, so the same calls with the same seed give the same objects.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from paygate import CardDeclined, ConfigurationError, LineItem, Money, NotSupported
from paygate.provider import (
    AsyncPaymentProvider,
    PaymentProvider,
    async_provider_for,
    create_async_provider,
)
from paygate.providers.fake import AsyncFakeProvider, FakeProvider
from paygate.testing.aio import BlockingProvider, blocking
from paygate.testing.conformance import ProviderContract, ProviderHarness
from tests.test_conformance_fake import FakeHarness, _LimitedFake


class AsyncFakeHarness(FakeHarness):
    def make_provider(self) -> PaymentProvider:
        engine = super().make_provider()
        return blocking(engine.aio())  # type: ignore[attr-defined]


class TestAsyncFakeContract(ProviderContract):
    @pytest.fixture
    def harness(self) -> ProviderHarness:
        return AsyncFakeHarness()


class TestLimitedAsyncFakeContract(ProviderContract):
    @pytest.fixture
    def harness(self) -> ProviderHarness:
        return AsyncFakeHarness(_LimitedFake)


def _scenario_sync(provider: FakeProvider) -> list[Any]:
    usd = Money(2000, "USD")
    out: list[Any] = []
    payment = provider.create_payment(
        order_id="o1", amount=usd, payment_method="tok_visa", idempotency_key="k1", capture="manual"
    )
    out.append(payment)
    out.append(provider.capture_payment(payment.id, amount=Money(1500, "USD"), idempotency_key="c"))
    out.append(provider.refund_payment(payment.id, amount=Money(500, "USD"), idempotency_key="r"))
    out.append(provider.get_payment(payment.id))
    other = provider.create_payment(
        order_id="o2", amount=usd, payment_method="tok_visa", idempotency_key="k2", capture="manual"
    )
    out.append(provider.cancel_payment(other.id, idempotency_key="x"))
    customer = provider.create_customer(email="a@example.com", name="A", idempotency_key="cu")
    out.append(customer)
    provider.define_price("price_basic", Money(900, "USD"))
    subscription = provider.create_subscription(
        customer_id=customer.id, price_id="price_basic", idempotency_key="s"
    )
    out.append(subscription)
    out.append(provider.cancel_subscription(subscription.id, at_period_end=True))
    out.append(
        provider.create_invoice(
            customer_id=customer.id,
            line_items=[LineItem("Plan", Money(700, "USD"))],
            idempotency_key="i",
            send=True,
        )
    )
    session = provider.create_checkout_session(
        order_id="o3",
        line_items=[LineItem("Mug", Money(1200, "USD"), quantity=2)],
        success_url="https://shop.example/ok",
        cancel_url="https://shop.example/no",
        idempotency_key="cs",
    )
    out.append(session)
    out.append(provider.get_checkout_session(session.id))
    try:
        provider.create_payment(
            order_id="o4", amount=usd, payment_method="tok_declined", idempotency_key="k4"
        )
    except CardDeclined as exc:
        out.append((type(exc), exc.decline_code))
    return out


async def _scenario_async(provider: AsyncFakeProvider) -> list[Any]:
    usd = Money(2000, "USD")
    out: list[Any] = []
    payment = await provider.create_payment(
        order_id="o1", amount=usd, payment_method="tok_visa", idempotency_key="k1", capture="manual"
    )
    out.append(payment)
    out.append(
        await provider.capture_payment(payment.id, amount=Money(1500, "USD"), idempotency_key="c")
    )
    out.append(
        await provider.refund_payment(payment.id, amount=Money(500, "USD"), idempotency_key="r")
    )
    out.append(await provider.get_payment(payment.id))
    other = await provider.create_payment(
        order_id="o2", amount=usd, payment_method="tok_visa", idempotency_key="k2", capture="manual"
    )
    out.append(await provider.cancel_payment(other.id, idempotency_key="x"))
    customer = await provider.create_customer(email="a@example.com", name="A", idempotency_key="cu")
    out.append(customer)
    provider.define_price("price_basic", Money(900, "USD"))  # a test control, sync
    subscription = await provider.create_subscription(
        customer_id=customer.id, price_id="price_basic", idempotency_key="s"
    )
    out.append(subscription)
    out.append(await provider.cancel_subscription(subscription.id, at_period_end=True))
    out.append(
        await provider.create_invoice(
            customer_id=customer.id,
            line_items=[LineItem("Plan", Money(700, "USD"))],
            idempotency_key="i",
            send=True,
        )
    )
    session = await provider.create_checkout_session(
        order_id="o3",
        line_items=[LineItem("Mug", Money(1200, "USD"), quantity=2)],
        success_url="https://shop.example/ok",
        cancel_url="https://shop.example/no",
        idempotency_key="cs",
    )
    out.append(session)
    out.append(await provider.get_checkout_session(session.id))
    try:
        await provider.create_payment(
            order_id="o4", amount=usd, payment_method="tok_declined", idempotency_key="k4"
        )
    except CardDeclined as exc:
        out.append((type(exc), exc.decline_code))
    return out


def test_same_calls_same_objects_and_webhooks_as_the_sync_fake() -> None:
    clock = lambda: 1_700_000_000.0  # noqa: E731
    sync = FakeProvider(seed=7, clock=clock)
    twin = AsyncFakeProvider(seed=7, clock=clock)
    expected = _scenario_sync(sync)
    got = asyncio.run(_scenario_async(twin))
    assert got == expected
    assert [d.body for d in twin.take_webhooks()] == [d.body for d in sync.take_webhooks()]
    assert twin.calls == sync.calls
    asyncio.run(twin.aclose())


def test_idempotent_retry_returns_the_first_answer() -> None:
    async def scenario() -> None:
        async with AsyncFakeProvider(seed=1) as provider:
            assert isinstance(provider, AsyncFakeProvider)
            first = await provider.create_payment(
                order_id="o", amount=Money(100, "EUR"), payment_method="tok_visa",
                idempotency_key="same",
            )  # fmt: skip
            again = await provider.create_payment(
                order_id="o", amount=Money(100, "EUR"), payment_method="tok_visa",
                idempotency_key="same",
            )  # fmt: skip
            assert again == first
            assert len(provider.payments()) == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("checkpoints", [0, 1])
def test_cancelled_at_each_await_point(checkpoints: int) -> None:
    """Cancelled before the request: nothing at the provider; cancelled after it: the
    payment exists and the retry with the same key gets it (a lost answer)."""
    provider = AsyncFakeProvider(seed=3)

    async def scenario() -> None:
        call = provider.create_payment(
            order_id="o", amount=Money(100, "EUR"), payment_method="tok_visa", idempotency_key="k"
        )
        task = asyncio.ensure_future(call)
        for _ in range(checkpoints + 1):
            await asyncio.sleep(0)  # let the task run up to its next checkpoint
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(provider.payments()) == checkpoints
        retried = await provider.create_payment(
            order_id="o", amount=Money(100, "EUR"), payment_method="tok_visa", idempotency_key="k"
        )
        assert [p.id for p in provider.payments()] == [retried.id]

    asyncio.run(scenario())


def test_aio_shares_the_engine_and_the_registry_builds_the_twin() -> None:
    sync = FakeProvider(seed=5)
    twin = sync.aio()
    assert isinstance(twin, AsyncFakeProvider) and twin.engine is sync
    assert isinstance(twin, AsyncPaymentProvider)
    assert async_provider_for(sync).engine is sync  # type: ignore[attr-defined]
    assert async_provider_for(twin) is twin
    built = create_async_provider("fake", seed=5)
    assert isinstance(built, AsyncFakeProvider) and built.settings.seed == 5
    with pytest.raises(ConfigurationError, match="aio"):
        async_provider_for(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="either"):
        AsyncFakeProvider(engine=sync, seed=1)
    with pytest.raises(AttributeError):
        twin._objects  # noqa: B018  # private engine state is not forwarded


def test_undeclared_capability_is_refused_on_the_async_face() -> None:
    twin = _LimitedFake().aio()
    with pytest.raises(NotSupported):
        asyncio.run(twin.create_customer(email=None, name=None, idempotency_key="k"))


def test_blocking_facade_closes_its_loop() -> None:
    facade = blocking(AsyncFakeProvider(seed=2))
    assert isinstance(facade, BlockingProvider)
    facade.close()
    facade.close()  # idempotent
    assert facade._loop.is_closed()


# -- the registry's async face -----------------------------------------------------------------


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    from paygate import provider as registry

    monkeypatch.setattr(registry, "_registry", dict(registry._BUILTIN))
    monkeypatch.setattr(registry, "_entry_points_loaded", True)


@pytest.mark.usefixtures("fresh_registry")
def test_a_plugin_gets_its_async_twin_through_aio_or_a_clear_error() -> None:
    from paygate.provider import BaseProvider, register_provider

    class Plugin(BaseProvider):
        name = "plugin"

        def __init__(self, **settings: object) -> None:
            self.settings = settings

        def aio(self) -> AsyncFakeProvider:  # type: ignore[override]
            return AsyncFakeProvider(seed=int(self.settings["seed"]))  # type: ignore[call-overload]

    class NoTwin(BaseProvider):
        name = "notwin"

    register_provider("plugin", Plugin)
    register_provider("notwin", NoTwin)
    twin = create_async_provider("plugin", seed=4)
    assert isinstance(twin, AsyncFakeProvider) and twin.settings.seed == 4
    with pytest.raises(NotSupported, match="notwin does not support aio"):
        create_async_provider("notwin")
    # a plugin registered under a built-in's name is not replaced by the built-in twin
    register_provider("fake", Plugin)
    assert create_async_provider("fake", seed=6).settings.seed == 6  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="unknown provider"):
        create_async_provider("nope")
