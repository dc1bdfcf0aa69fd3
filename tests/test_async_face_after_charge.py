"""The async face of issues 19 and 20: saved payment methods, customers, subscriptions and
disputes through ``AsyncGateway`` on the fake (memory, SQLite, PostgreSQL), and the two
faces' public methods kept identical (names and signatures), so they cannot drift."""

from __future__ import annotations

import asyncio
import inspect
import random
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import (
    AuthenticationRequired,
    DisputeEvidence,
    EventType,
    EvidenceFile,
    InvalidRequest,
    Money,
    NotFound,
    NotSupported,
    PaymentStatus,
    SetupStatus,
)
from paygate._facts import FACT_TYPES, Fact
from paygate.gateway import AsyncGateway, Gateway
from paygate.models import DisputeStatus, InvoiceStatus, SubscriptionStatus
from paygate.provider import AsyncBaseProvider
from paygate.providers.fake import FakeProvider

# the PostgreSQL fixtures (skip with the reason when no server is reachable)
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

E = EventType
S = SubscriptionStatus
EUR = Money.of("42.00", "EUR")


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"


# -- the two faces stay one ------------------------------------------------------------------

#: lifecycle methods that differ by design (``close``/``__enter__`` vs ``aclose``/``__aenter__``)
_LIFECYCLE = {"close", "aclose"}


def _public(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_") and name not in _LIFECYCLE
    }


def test_both_faces_have_the_same_public_methods() -> None:
    assert sorted(_public(Gateway)) == sorted(_public(AsyncGateway))


@pytest.mark.parametrize("name", sorted(_public(Gateway)))
def test_both_faces_take_the_same_arguments(name: str) -> None:
    sync, aio = getattr(Gateway, name), getattr(AsyncGateway, name)
    sync_params = list(inspect.signature(sync).parameters.values())
    aio_params = list(inspect.signature(aio).parameters.values())
    # same names, kinds, defaults and annotations, in the same order
    assert [(p.name, p.kind, p.default, p.annotation) for p in aio_params] == [
        (p.name, p.kind, p.default, p.annotation) for p in sync_params
    ]
    blocking = {"on", "channel", "from_config", "from_env"}  # plain methods on both faces
    assert inspect.iscoroutinefunction(aio) is (name not in blocking)


# -- saved payment methods and customers -----------------------------------------------------


def test_saved_methods_through_the_async_face(store_url: str) -> None:
    async def main() -> None:
        async with paygate.connect_async(FakeProvider(seed=12), store_url) as agw:
            ada = await agw.create_customer(email="ada@example.com", name="Ada")
            setup = await agw.create_setup(ada.id, payment_method="tok_visa")
            assert setup.payment_method_id
            assert [m.id for m in await agw.list_payment_methods(ada.id)] == [
                setup.payment_method_id
            ]
            assert (await agw.get_payment_method(setup.payment_method_id)).last4 == "4242"
            customer = await agw.set_default_payment_method(ada.id, setup.payment_method_id)
            assert customer.default_payment_method_id == setup.payment_method_id
            payment = await agw.create_payment(
                order_id="ord_async", amount=EUR, payment_method=setup.payment_method_id,
                customer_id=ada.id, off_session=True,
            )  # fmt: skip
            assert payment.status is PaymentStatus.SUCCEEDED
            assert [c.id for c in await agw.list_customers()] == [ada.id]
            assert (await agw.update_customer(ada.id, name="Ada L.")).name == "Ada L."
            assert (await agw.get_customer(ada.id)).name == "Ada L."
            strict = await agw.create_setup(ada.id, payment_method="tok_authentication_required")
            assert strict.payment_method_id
            with pytest.raises(AuthenticationRequired):
                await agw.create_payment(
                    order_id="ord_async_sca", amount=EUR,
                    payment_method=strict.payment_method_id, customer_id=ada.id,
                    off_session=True,
                )  # fmt: skip
            await agw.detach_payment_method(setup.payment_method_id)
            with pytest.raises(InvalidRequest):
                await agw.create_payment(
                    order_id="ord_async_2", amount=EUR,
                    payment_method=setup.payment_method_id, customer_id=ada.id,
                    off_session=True,
                )  # fmt: skip
            back = await agw.complete_setup({"setup_id": setup.id})
            assert back.status is SetupStatus.SUCCEEDED
            await agw.delete_customer(ada.id)
            with pytest.raises(NotFound):
                await agw.get_customer(ada.id)

    asyncio.run(main())


def test_an_async_adapter_without_saved_methods_is_not_supported() -> None:
    class Bare(AsyncBaseProvider):
        name = "bare"

        async def get_payment(self, payment_id: str) -> Any:  # makes it an async adapter
            raise NotImplementedError

    async def main() -> None:
        async with paygate.connect_async(Bare(), "memory://") as agw:
            with pytest.raises(NotSupported, match="bare does not support create_setup"):
                await agw.create_setup("cus_1", payment_method="tok_visa")
            with pytest.raises(NotSupported, match="bare does not support list_disputes"):
                await agw.list_disputes()

    asyncio.run(main())


# -- subscriptions and disputes ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def _deliver(
    fake: FakeProvider, agw: AsyncGateway[Any], *, shuffle: int | None = None
) -> None:
    deliveries = fake.take_webhooks()
    if shuffle is not None:
        deliveries = deliveries + deliveries[::2]  # some twice
        random.Random(shuffle).shuffle(deliveries)
    for delivery in deliveries:
        result = await agw.handle_webhook(delivery.body, delivery.headers)
        assert result.acknowledged, result


def test_the_saas_walk_through_on_the_async_face(store_url: str) -> None:
    clock = Clock()
    fake = FakeProvider(seed=7, clock=clock, webhook_tolerance=10**9)
    fake.define_price("price_basic", Money.of("10", "USD"))
    fake.define_price("price_pro", Money.of("30", "USD"))

    async def main() -> list[Fact]:
        heard: list[Fact] = []
        async with paygate.connect_async(fake, store_url, clock=clock) as agw:
            agw.on(*FACT_TYPES)(heard.append)
            customer = await agw.create_customer(email="ada@example.com", name="Ada")
            sub = await agw.create_subscription(
                customer_id=customer.id, price_id="price_basic", trial_days=14
            )
            assert sub.status is S.TRIALING
            record = agw.store.get_subscription(sub.id)  # type: ignore[attr-defined]
            assert record is not None and record.status is S.TRIALING
            clock.now += 14 * 86_400
            fake.end_trial(sub.id)
            await _deliver(fake, agw)
            assert (await agw.get_subscription(sub.id)).status is S.ACTIVE
            upgraded = await agw.change_subscription(sub.id, price_id="price_pro", quantity=2)
            assert (upgraded.price_id, upgraded.quantity) == ("price_pro", 2)
            await agw.change_subscription(sub.id, price_id="price_pro", quantity=2)  # replayed
            assert fake.calls["change_subscription"] == 1
            fake.set_billing_token(customer.id, "tok_declined")
            clock.now += 31 * 86_400
            fake.bill_period(sub.id)
            await _deliver(fake, agw, shuffle=3)
            past_due = agw.store.get_subscription(sub.id)  # type: ignore[attr-defined]
            assert past_due.status is S.PAST_DUE
            fake.set_billing_token(customer.id, "tok_visa")
            paid = await agw.retry_invoice(fake.get_subscription(sub.id).raw["latest_invoice"])
            assert paid.status is InvoiceStatus.PAID
            assert (await agw.pause_subscription(sub.id)).status is S.PAUSED
            assert (await agw.resume_subscription(sub.id)).status is S.ACTIVE
            assert (await agw.cancel_subscription(sub.id, at_period_end=True)).cancel_at_period_end
            assert not (await agw.undo_cancel_subscription(sub.id)).cancel_at_period_end
            listed = await agw.list_subscriptions(customer_id=customer.id)
            assert [s.id for s in listed] == [sub.id]
            await _deliver(fake, agw, shuffle=4)
        return heard

    heard = asyncio.run(main())
    assert len({f.id for f in heard}) == len(heard)  # each fact once
    types = [f.type for f in heard]
    for expected in (
        E.SUBSCRIPTION_ACTIVATED, E.SUBSCRIPTION_PLAN_CHANGED, E.SUBSCRIPTION_PAST_DUE,
        E.SUBSCRIPTION_RECOVERED, E.SUBSCRIPTION_PAUSED, E.SUBSCRIPTION_RESUMED,
        E.SUBSCRIPTION_CANCEL_SCHEDULED, E.SUBSCRIPTION_CANCEL_UNSCHEDULED,
    ):  # fmt: skip
        assert types.count(expected) == 1, (expected, types)


def test_disputes_through_the_async_face(store_url: str) -> None:
    fake = FakeProvider(seed=8, webhook_tolerance=10**9)

    async def main() -> None:
        async with paygate.connect_async(fake, store_url) as agw:
            paid = await agw.create_payment(
                order_id="o1", amount=Money.of("50", "USD"), payment_method="tok_visa"
            )
            won = fake.open_dispute(paid.id, reason="product_not_received")
            lost = fake.open_dispute(
                (
                    await agw.create_payment(
                        order_id="o2", amount=Money.of("20", "USD"), payment_method="tok_visa"
                    )
                ).id
            )
            await _deliver(fake, agw)
            assert (await agw.get_dispute(won.id)).status is DisputeStatus.OPEN
            assert [d.id for d in await agw.list_disputes(payment_id=paid.id)] == [won.id]
            assert {d.id for d in await agw.list_disputes()} == {won.id, lost.id}
            evidence = DisputeEvidence(explanation="Signed for.", tracking_number="1Z9",
                                       files=(EvidenceFile("pod.pdf", b"%PDF pod"),))  # fmt: skip
            answered = await agw.submit_dispute_evidence(won.id, evidence)
            assert answered.status is DisputeStatus.UNDER_REVIEW
            assert (await agw.accept_dispute(lost.id)).status is DisputeStatus.LOST

    asyncio.run(main())


def test_a_sync_adapter_without_a_twin_lists_customers_off_the_loop() -> None:
    """A plugin's sync adapter (no async twin) runs in worker threads; its lazy
    ``list_customers`` pages are read there too, and the async face answers with a list."""

    class NoTwin(FakeProvider):
        def aio(self) -> Any:
            raise NotSupported("no twin", provider="fake", code="not_supported")

    async def main() -> None:
        async with paygate.connect_async(NoTwin(seed=3), "memory://") as agw:
            assert type(agw.provider).__name__ == "_ThreadedProvider"
            made = [
                await agw.create_customer(email=f"c{i}@example.com", name=None) for i in range(3)
            ]
            listed = await agw.list_customers(page_size=2)  # two pages
            assert isinstance(listed, list)
            assert sorted(c.id for c in listed) == sorted(c.id for c in made)

    asyncio.run(main())
