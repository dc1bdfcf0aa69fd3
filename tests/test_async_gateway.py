"""AsyncGateway's own guarantees: cancellation at every await point never charges or
applies twice; both faces make the same calls and leave the same store; handlers may be
``async def``; retries sleep on the loop; construction mirrors the sync face."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import (
    AsyncGateway,
    CardDeclined,
    ConfigurationError,
    EventType,
    Gateway,
    LineItem,
    Money,
    PaymentStatus,
    ProviderUnavailable,
)
from paygate.gateway import RetryPolicy
from paygate.providers.fake import AsyncFakeProvider, FakeProvider
from paygate.stores import OperationStatus, open_store
from paygate.stores.aio import AsyncStore

# the PostgreSQL fixtures (skip with the reason when no server is reachable)
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

S = PaymentStatus
NOW = 1_800_000_000.0


def usd(value: str) -> Money:
    return Money.of(value, "USD")


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


# -- cancellation at every await point -------------------------------------------------------


class Tripwire:
    """Counts the await points of a call (three per store or provider call: before it is
    made, while it runs, after it answered) and cancels the running task at point
    ``target`` -- a real ``Task.cancel()``, as a client disconnect or ``asyncio.timeout``
    does. ``target=0`` only counts."""

    def __init__(self) -> None:
        self.target = 0
        self.points: list[str] = []
        #: count (and cut) only the call under test, not the checks after it
        self.armed = False

    def _hit(self, label: str) -> bool:
        if not self.armed:
            return False
        self.points.append(label)
        return len(self.points) == self.target

    async def point(self, label: str) -> None:
        if self._hit(label):
            current = asyncio.current_task()
            assert current is not None
            current.cancel()
            await asyncio.sleep(0)  # the cancellation lands here

    def wrap(self, target: Any, kind: str) -> Any:
        trip = self

        class Wired:
            def __getattr__(self, name: str) -> Any:
                attr = getattr(target, name)
                if name.startswith("_") or not callable(attr):
                    return attr

                async def call(*args: Any, **kwargs: Any) -> Any:
                    label = f"{kind}.{name}"
                    await trip.point(f"{label}:before")
                    result = attr(*args, **kwargs)
                    if inspect.isawaitable(result):
                        if trip._hit(f"{label}:during"):
                            running = asyncio.ensure_future(result)
                            await asyncio.sleep(0)  # started (a store thread, a request)
                            current = asyncio.current_task()
                            assert current is not None
                            current.cancel()
                        else:
                            running = result
                        result = await running
                    await trip.point(f"{label}:after")
                    return result

                return call

        return Wired()


def wired(agw: AsyncGateway[Any], trip: Tripwire) -> None:
    agw.astore = trip.wrap(agw.astore, "store")
    agw.provider = trip.wrap(agw.provider, "provider")


async def cancelled(call: Awaitable[Any]) -> bool:
    """Run ``call`` as a task; whether it ended cancelled (else it finished)."""
    task = asyncio.ensure_future(call)
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


def count_points(scenario: Callable[[Tripwire], Awaitable[None]]) -> list[str]:
    trip = Tripwire()
    asyncio.run(scenario(trip))
    return trip.points


def test_create_payment_cancelled_at_every_await_point_charges_once(store_url: str) -> None:
    heard: list[str] = []

    async def scenario(trip: Tripwire, *, cancel_at: int = 0) -> None:
        fake = FakeProvider(seed=cancel_at)
        clock = Clock()
        async with paygate.connect_async(fake, store_url, clock=clock) as agw:

            @agw.on(EventType.PAYMENT_SUCCEEDED)
            async def fulfil(fact: paygate.Fact) -> None:
                await asyncio.sleep(0)
                heard.append(fact.payment_id)

            wired(agw, trip)
            order = f"order-{cancel_at}"
            trip.target, trip.armed = cancel_at, True
            call = agw.create_payment(order_id=order, amount=usd("10.00"),
                                      payment_method="tok_visa")  # fmt: skip
            was_cancelled = await cancelled(call)
            trip.armed = False
            if not cancel_at:
                assert not was_cancelled
                return
            assert was_cancelled, f"point {cancel_at} ({trip.points[-1]}) was not reached"
            # the client retries: one charge at the provider, whatever was cut where
            payment = await agw.create_payment(order_id=order, amount=usd("10.00"),
                                               payment_method="tok_visa")  # fmt: skip
            charged = [p for p in fake.payments() if p.order_id == order]
            assert [p.id for p in charged] == [payment.id]
            assert payment.status is S.SUCCEEDED
            op = await agw.astore.get_operation(f"create_payment:{order}")
            assert op.status is OperationStatus.SUCCEEDED and op.attempt == 1
            again = await agw.create_payment(order_id=order, amount=usd("10.00"),
                                             payment_method="tok_visa")  # fmt: skip
            assert again.id == payment.id and len(fake.payments()) == 1
            stored = await agw.payment_for_order(order)
            assert stored is not None and stored.status is S.SUCCEEDED
            clock.now += agw.webhook_lease + 1  # a fact whose handler run was cut
            await agw.dispatch_pending()
            assert await agw.pending_facts() == []

    points = count_points(scenario)
    assert len(points) >= 15  # idempotency record, provider, state sync, facts
    for at in range(1, len(points) + 1):
        asyncio.run(scenario(Tripwire(), cancel_at=at))
    assert heard  # the fact's handler ran (after a cancellation, once its lease ended)


def test_handle_webhook_cancelled_at_every_await_point_applies_once(store_url: str) -> None:
    async def scenario(trip: Tripwire, *, cancel_at: int = 0) -> list[str]:
        # each run its own payment: the store is shared by the runs of one test
        fake = FakeProvider(seed=1000 + cancel_at)
        order = f"o{cancel_at}"
        side = paygate.connect(fake, "memory://")  # the payment is made elsewhere
        side.create_payment(order_id=order, amount=usd("5.00"), payment_method="tok_visa")
        side.close()
        deliveries = fake.take_webhooks()
        clock = Clock()
        heard: list[str] = []
        async with paygate.connect_async(fake, store_url, clock=clock) as agw:

            @agw.on(EventType.PAYMENT_SUCCEEDED)
            async def fulfil(fact: paygate.Fact) -> None:
                await asyncio.sleep(0)
                heard.append(fact.id)

            @agw.on(EventType.CHECKOUT_COMPLETED)
            def other(event: Any) -> None:  # an event handler too: a plain function
                heard.append(event.id)

            wired(agw, trip)
            trip.target, trip.armed = cancel_at, True
            first = deliveries[-1]
            was_cancelled = await cancelled(agw.handle_webhook(first.body, first.headers))
            trip.armed = False
            assert was_cancelled == bool(cancel_at), trip.points
            # the provider redelivers until it is told 2xx; the lease of a cut delivery
            # runs out first
            for _ in range(3):
                result = await agw.handle_webhook(first.body, first.headers)
                if result.acknowledged:
                    break
                clock.now += agw.webhook_lease + 1
            assert result.acknowledged
            for delivery in deliveries[:-1]:
                await agw.handle_webhook(delivery.body, delivery.headers)
            payment_id = result.event.payment_id
            assert payment_id is not None
            history = await agw.history(payment_id)
            event_id = result.event.id
            assert len([t for t in history if t.event_id == event_id]) == 1
            stored = await agw.payment_for_order(order)
            assert stored is not None and stored.status is S.SUCCEEDED
            facts = [f for f in await agw.facts(payment_id)
                     if f.type is EventType.PAYMENT_SUCCEEDED]  # fmt: skip
            assert len(facts) == 1
            clock.now += agw.webhook_lease + 1  # a fact whose handler run was cut
            await agw.dispatch_pending()
            assert await agw.pending_facts() == []
            # told at least once; twice only when the cut fell after the handler ran and
            # before the fact was marked done (at-least-once, as after a crash)
            assert 1 <= heard.count(facts[0].id) <= 2
            return heard

    points = count_points(scenario)
    assert len(points) >= 6
    for at in range(1, len(points) + 1):
        asyncio.run(scenario(Tripwire(), cancel_at=at))


def test_cancelling_after_every_loop_step_charges_once() -> None:
    """Not only at the gateway's own awaits: cancel after 0, 1, 2, ... turns of the event
    loop, wherever the call then is (inside the fake's checkpoints too)."""

    async def main() -> int:
        fake = FakeProvider(seed=1)
        async with paygate.connect_async(fake, "memory://") as agw:
            for steps in range(200):
                order = f"o{steps}"
                task = asyncio.ensure_future(
                    agw.create_payment(order_id=order, amount=usd("1.00"), payment_method="tok_visa")
                )
                for _ in range(steps):
                    await asyncio.sleep(0)
                if task.done():
                    await task
                    return steps
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                paid = await agw.create_payment(order_id=order, amount=usd("1.00"),
                                                payment_method="tok_visa")  # fmt: skip
                assert [p.id for p in fake.payments() if p.order_id == order] == [paid.id]
        raise AssertionError("create_payment never finished")

    assert asyncio.run(main()) >= 3


# -- handlers, retries, construction ----------------------------------------------------------


def test_async_and_plain_handlers_are_awaited_or_called() -> None:
    calls: list[str] = []

    async def coroutine_function(fact: Any) -> None:
        await asyncio.sleep(0)
        calls.append("async def")

    class CallableObject:
        async def __call__(self, fact: Any) -> None:
            calls.append("callable object")

    def plain(fact: Any) -> None:
        calls.append("plain")

    async def main() -> None:
        async with paygate.connect_async("fake", "memory://") as agw:
            agw.on(EventType.PAYMENT_SUCCEEDED)(coroutine_function)
            agw.on(EventType.PAYMENT_SUCCEEDED)(functools.partial(coroutine_function))
            agw.on(EventType.PAYMENT_SUCCEEDED)(CallableObject())
            agw.on(EventType.PAYMENT_SUCCEEDED)(plain)
            await agw.create_payment(order_id="o", amount=usd("2.00"), payment_method="tok_visa")
            with pytest.raises(ConfigurationError, match="callable"):
                agw.on()(42)  # type: ignore[arg-type]

    asyncio.run(main())
    assert calls == ["async def", "async def", "callable object", "plain"]
    # the sync face still refuses them: it would never await them
    with paygate.connect("fake") as gw, pytest.raises(ConfigurationError, match="AsyncGateway"):
        gw.on(EventType.PAYMENT_SUCCEEDED)(coroutine_function)


def test_retries_pause_on_the_loop_and_resend_the_same_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_blocking_sleep(seconds: float) -> None:
        raise AssertionError("time.sleep called on the event loop")

    async def main() -> None:
        fake = FakeProvider(seed=2)
        agw = paygate.connect_async(
            fake, "memory://", retry=RetryPolicy(attempts=3, base_delay=0.01, jitter=0)
        )
        async with agw:
            monkeypatch.setattr(time, "sleep", no_blocking_sleep)
            fake.fail_next("create_payment", ProviderUnavailable("down", provider="fake"),
                           after_commit=True)  # fmt: skip
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.001)
                    ticks += 1

            running = asyncio.ensure_future(ticker())
            payment = await agw.create_payment(order_id="o", amount=usd("3.00"),
                                               payment_method="tok_visa")  # fmt: skip
            running.cancel()
            assert ticks >= 2  # the loop kept running during the 10 ms pause
            assert [p.id for p in fake.payments()] == [payment.id]
            assert fake.calls["create_payment"] == 2

    asyncio.run(main())


def test_a_decline_then_a_new_card_on_the_async_face() -> None:
    async def main() -> None:
        async with paygate.connect_async("fake", "memory://") as agw:
            with pytest.raises(CardDeclined):
                await agw.create_payment(order_id="o", amount=usd("4.00"),
                                         payment_method="tok_declined")  # fmt: skip
            paid = await agw.create_payment(order_id="o", amount=usd("4.00"),
                                            payment_method="tok_visa")  # fmt: skip
            assert paid.status is S.SUCCEEDED

    asyncio.run(main())


def test_construction_mirrors_the_sync_face(tmp_path: Path) -> None:
    async def main() -> None:
        env = {"PAYGATE_PROVIDER": "fake", "PAYGATE_STORE_URL": f"sqlite:///{tmp_path / 'e.db'}",
               "PAYGATE_CURRENCIES": "USD", "PAYGATE_RETRY_ATTEMPTS": "4"}  # fmt: skip
        async with AsyncGateway.from_env(env) as agw:
            assert isinstance(agw.provider, AsyncFakeProvider)
            assert agw.retry.attempts == 4 and agw.currencies == frozenset({"USD"})
            assert agw.astore.threads == 1  # SQLite: one dedicated thread
            await agw.create_payment(order_id="o", amount=usd("1.00"), payment_method="tok_visa")
        config = {"provider": "fake", "store": "memory://", "webhook_lease": 5}
        async with AsyncGateway.from_config(config) as agw:
            assert agw.webhook_lease == 5.0 and agw.astore.threads == 0
        with pytest.raises(ConfigurationError, match="already built"):
            paygate.connect_async(FakeProvider(), "memory://", seed=1)
        with pytest.raises(ConfigurationError, match="webhook_lease"):
            paygate.connect_async("fake", "memory://", webhook_lease=0)
        with pytest.raises(ConfigurationError, match="AsyncPaymentProvider"):
            AsyncGateway(object(), open_store("memory://"))  # type: ignore[type-var]
        # an adapter with no async twin runs in worker threads
        class Plugin(FakeProvider):
            def aio(self) -> Any:
                raise paygate.NotSupported("no twin", provider="fake")

        async with paygate.connect_async(Plugin(seed=1), "memory://") as agw:
            assert type(agw.provider).__name__ == "_ThreadedProvider"
            paid = await agw.create_payment(order_id="p", amount=usd("1.00"),
                                            payment_method="tok_visa")  # fmt: skip
            assert paid.status is S.SUCCEEDED
        store = AsyncStore(open_store("memory://"), threads=2)
        async with paygate.connect_async("fake", store) as agw:
            assert agw.astore is store and "threads=2" in repr(store)

    asyncio.run(main())


# -- the two faces, one logic -----------------------------------------------------------------


def _normal(value: Any) -> Any:
    """A call argument or stored record without what is random by design (claim tokens)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = {f.name for f in dataclasses.fields(value)}
        changes = {n: "-" for n in ("token",) if n in names}
        for n in names - set(changes):
            inner = getattr(value, n)
            if dataclasses.is_dataclass(inner) and not isinstance(inner, type):
                changes[n] = _normal(inner)
        return dataclasses.replace(value, **changes) if changes else value
    if isinstance(value, (list, tuple)):
        return type(value)(_normal(v) for v in value)
    if callable(value):
        return "<callable>"
    return value


class Recorder:
    """Logs every call a face makes on ``target`` (a store or a provider), then makes it."""

    def __init__(self, target: Any, kind: str, log: list[Any]) -> None:
        self._target, self._kind, self._log = target, kind, log

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if name.startswith("_") or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self._log.append((self._kind, name, _normal(args),
                              {k: _normal(v) for k, v in sorted(kwargs.items())}))  # fmt: skip
            return attr(*args, **kwargs)

        return call


async def _scenario(face: Any, fake: FakeProvider, awaiting: bool) -> list[Any]:
    """The same script for either face; what each call answered."""

    async def op(name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            result = getattr(face, name)(*args, **kwargs)
            return (await result) if awaiting else result
        except paygate.PaygateError as exc:
            return type(exc).__name__

    heard: list[str] = []
    face.on(EventType.PAYMENT_SUCCEEDED)(lambda fact: heard.append(fact.id))
    face.on(EventType.INVOICE_CREATED)(lambda event: heard.append(event.id))
    answers = [
        await op("create_payment", order_id="o1", amount=usd("10.00"), payment_method="tok_visa"),
        await op("create_payment", order_id="o1", amount=usd("10.00"), payment_method="tok_visa"),
        await op("create_payment", order_id="o1", amount=usd("11.00"), payment_method="tok_visa"),
        await op("create_payment", order_id="o2", amount=usd("5.00"), payment_method="tok_declined"),
        await op("create_payment", order_id="o2", amount=usd("5.00"), payment_method="tok_visa"),
    ]
    fake.fail_next("create_payment", ProviderUnavailable("down", provider="fake"), after_commit=True)
    answers.append(await op("create_payment", order_id="o3", amount=usd("7.00"),
                            payment_method="tok_visa", capture="manual"))  # fmt: skip
    pid3 = answers[-1].id
    answers += [
        await op("capture", pid3, usd("6.00")),
        await op("refund", answers[0].id, usd("3.00")),
        await op("refund", answers[0].id),
        await op("create_payment", order_id="o4", amount=usd("2.00"), payment_method="tok_visa",
                 capture="manual"),
    ]  # fmt: skip
    answers.append(await op("cancel", answers[-1].id))
    for delivery in fake.take_webhooks():
        answers.append(await op("handle_webhook", delivery.body, delivery.headers))
        answers.append(await op("handle_webhook", delivery.body, delivery.headers))
    answers += [
        await op("get_payment", pid3),
        await op("create_checkout", order_id="o5", success_url="https://shop/ok",
                 cancel_url="https://shop/no",
                 line_items=[LineItem(name="tee", unit_amount=usd("19.99"), quantity=2)]),
        await op("create_customer", email="a@example.com", idempotency_key="c1"),
    ]  # fmt: skip
    customer = answers[-1]
    answers += [
        await op("create_invoice", customer_id=customer.id, order_id="inv1",
                 line_items=[LineItem(name="fee", unit_amount=usd("1.00"))]),
        await op("dispatch_pending"),
        await op("pending_facts"),
        await op("facts", pid3),
        await op("history", pid3),
        await op("payment_for_order", "o2"),
        await op("replay"),
    ]  # fmt: skip
    return [*answers, heard]


def _contents(store: Any) -> dict[str, Any]:
    payments = sorted(store.iter_payments(), key=lambda r: r.id)
    return _normal({
        "payments": payments,
        "history": [store.history(r.id) for r in payments],
        "operations": store.list_operations(""),
        "facts": store.list_facts(),
        "events": store.list_events(),
    })  # fmt: skip


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_both_faces_make_the_same_calls_and_leave_the_same_store(
    kind: str, tmp_path: Path
) -> None:
    def url(face: str) -> str:
        return "memory://" if kind == "memory" else f"sqlite:///{tmp_path / face}.db"

    def policy() -> RetryPolicy:
        return RetryPolicy(attempts=3, sleep=lambda _: None, random=lambda: 0.5)

    sync_log: list[Any] = []
    sync_fake = FakeProvider(seed=9, clock=lambda: NOW)
    gw = Gateway(sync_fake, open_store(url("sync")), retry=policy(), clock=lambda: NOW)
    gw.store = Recorder(gw.store, "store", sync_log)
    gw.provider = Recorder(gw.provider, "provider", sync_log)
    sync_answers = asyncio.run(_scenario(gw, sync_fake, awaiting=False))
    sync_contents = _contents(gw.store._target)
    gw.store._target.close()

    async_log: list[Any] = []
    async_fake = FakeProvider(seed=9, clock=lambda: NOW)

    async def run_async_face() -> tuple[list[Any], dict[str, Any], list[Any]]:
        agw = AsyncGateway(async_fake.aio(), open_store(url("async")), retry=policy(),
                           clock=lambda: NOW)  # fmt: skip
        async with agw:
            astore = agw.astore
            agw.astore = Recorder(astore, "store", async_log)
            agw.provider = Recorder(agw.provider, "provider", async_log)
            answers = await _scenario(agw, async_fake, awaiting=True)
            return answers, _contents(astore.store), list(async_log)  # before aclose

    async_answers, async_contents, async_calls = asyncio.run(run_async_face())
    assert len(sync_log) > 100
    assert async_calls == sync_log
    assert async_answers == sync_answers
    assert async_contents == sync_contents
    assert "IdempotencyConflict" in sync_answers and "CardDeclined" in sync_answers
