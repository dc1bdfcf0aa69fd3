"""Customer, payment-method and setup webhooks through the Gateway: verified, normalized,
handed to the application's handlers once per event id, and no payment state moves."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import paygate
from paygate import Customer, EventType, PaymentMethod, SetupSession, WebhookEvent
from paygate.providers.fake import FakeProvider


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"


def test_saved_method_events_reach_handlers_once(store_url: str) -> None:
    provider = FakeProvider(seed=5)
    gw = paygate.connect(provider, store=store_url)
    seen: list[tuple[str, str]] = []

    @gw.on(
        EventType.CUSTOMER_CREATED,
        EventType.PAYMENT_METHOD_ATTACHED,
        EventType.PAYMENT_METHOD_UPDATED,
        EventType.PAYMENT_METHOD_DETACHED,
        EventType.SETUP_SUCCEEDED,
    )
    def record(event: WebhookEvent) -> None:
        assert isinstance(event.object, (Customer, PaymentMethod, SetupSession))
        assert event.payment_id is None
        seen.append((event.type.value, type(event.object).__name__))

    ada = provider.create_customer(email="ada@example.com", name=None, idempotency_key="c")
    setup = provider.create_setup(customer_id=ada.id, idempotency_key="s", payment_method="tok_expiring")
    assert setup.payment_method_id is not None
    provider.network_update_card(setup.payment_method_id)
    provider.detach_payment_method(setup.payment_method_id)
    deliveries = provider.take_webhooks()
    for delivery in [*deliveries, *deliveries]:  # every delivery twice: a provider's retry
        gw.handle_webhook(delivery.body, delivery.headers)
    assert seen == [
        ("customer.created", "Customer"),
        ("payment_method.attached", "PaymentMethod"),
        ("setup.succeeded", "SetupSession"),
        ("payment_method.updated", "PaymentMethod"),
        ("payment_method.detached", "PaymentMethod"),
    ]
    gw.close()


def test_the_store_codec_round_trips_the_new_objects_without_secrets() -> None:
    from paygate.stores import _codec

    provider = FakeProvider(seed=6)
    ada = provider.create_customer(email="ada@example.com", name=None, idempotency_key="c")
    setup = provider.create_setup(customer_id=ada.id, idempotency_key="s")
    assert setup.client_secret
    method = provider.get_payment_method(
        provider.approve_setup(setup.id).payment_method_id or ""
    )
    for value in (setup, method, provider.get_customer(ada.id)):
        text = _codec.dumps(value)
        assert setup.client_secret not in text
        back = _codec.loads(text)
        assert back.raw is None
        if isinstance(value, SetupSession):  # the client secret is never stored
            value = dataclasses.replace(value, client_secret=None)
        assert back == value
