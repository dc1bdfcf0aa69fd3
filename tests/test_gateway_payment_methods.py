"""The Gateway's customers and saved payment methods, with the fake provider:
save a card, list it, make it the default, charge it off session (order-first idempotency
as every payment), authentication required, detach, charge after detach."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import (
    AuthenticationRequired,
    CardDeclined,
    IdempotencyConflict,
    InvalidRequest,
    Money,
    NotFound,
    NotSupported,
    PaymentMethodKind,
    PaymentStatus,
    SetupStatus,
    ValidationError,
)
from paygate.provider import BaseProvider, Capability
from paygate.providers.fake import FakeProvider

EUR = Money.of("42.00", "EUR")


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"


@pytest.fixture
def gw(store_url: str) -> Iterator[paygate.Gateway[FakeProvider]]:
    with paygate.connect(FakeProvider(seed=11), store=store_url) as gateway:
        yield gateway


def reorder(gw: paygate.Gateway[Any], customer_id: str, method_id: str, order: str) -> Any:
    return gw.create_payment(
        order_id=order,
        amount=EUR,
        payment_method=method_id,
        customer_id=customer_id,
        off_session=True,
    )


def test_save_a_card_and_charge_it_next_month(gw: paygate.Gateway[FakeProvider]) -> None:
    ada = gw.create_customer(email="ada@example.com", name="Ada")
    setup = gw.create_setup(ada.id, return_url="https://shop.example/saved")
    assert setup.status is SetupStatus.REQUIRES_ACTION and setup.url
    gw.provider.approve_setup(setup.id, payment_method="tok_visa")  # the customer's step
    done = gw.complete_setup({"setup_id": setup.id, "status": "failed"})  # words ignored
    assert done.status is SetupStatus.SUCCEEDED and done.payment_method_id
    again = gw.complete_setup({"setup_id": setup.id, "status": "failed"})  # a reload
    assert again.payment_method_id == done.payment_method_id
    [card] = gw.list_payment_methods(ada.id)
    assert (card.id, card.kind, card.last4) == (done.payment_method_id, PaymentMethodKind.CARD, "4242")
    assert gw.get_payment_method(card.id) == card
    assert gw.set_default_payment_method(ada.id, card.id).default_payment_method_id == card.id
    assert gw.get_customer(ada.id).default_payment_method_id == card.id

    payment = reorder(gw, ada.id, card.id, "ord_next_month")
    assert payment.status is PaymentStatus.SUCCEEDED and payment.customer_id == ada.id
    # order first: the same order again is the same payment, charged once
    assert reorder(gw, ada.id, card.id, "ord_next_month").id == payment.id
    assert len(gw.provider.payments()) == 1
    stored = gw.payment_for_order("ord_next_month")
    assert stored is not None and (stored.id, stored.status) == (payment.id, payment.status)
    # the same order with another amount is refused before the provider
    with pytest.raises(IdempotencyConflict):
        gw.create_payment(
            order_id="ord_next_month", amount=Money.of("1.00", "EUR"),
            payment_method=card.id, customer_id=ada.id, off_session=True,
        )  # fmt: skip


def test_authentication_required_then_the_customer_comes_back(
    gw: paygate.Gateway[FakeProvider],
) -> None:
    ada = gw.create_customer(email="ada@example.com", name="Ada")
    setup = gw.create_setup(ada.id, payment_method="tok_authentication_required")
    assert setup.payment_method_id
    with pytest.raises(AuthenticationRequired) as info:
        reorder(gw, ada.id, setup.payment_method_id, "ord_sca")
    assert isinstance(info.value, CardDeclined) and info.value.payment_id
    failed = gw.get_payment(info.value.payment_id)  # the gateway learns of it
    assert failed.status is PaymentStatus.FAILED and failed.order_id == "ord_sca"
    # on session the customer authenticates: a new attempt for the same order
    retry = gw.create_payment(
        order_id="ord_sca", amount=EUR, payment_method="tok_3ds",
        return_url="https://shop.example/back",
    )  # fmt: skip
    assert retry.status is PaymentStatus.REQUIRES_ACTION
    gw.provider.authenticate(retry.id)
    assert gw.handle_return({"payment_id": retry.id}).status is PaymentStatus.SUCCEEDED


def test_a_detached_card_cannot_be_charged(gw: paygate.Gateway[FakeProvider]) -> None:
    ada = gw.create_customer(email="ada@example.com", name="Ada")
    setup = gw.create_setup(ada.id, payment_method="tok_visa")
    method_id = setup.payment_method_id
    assert method_id
    gw.detach_payment_method(method_id)
    assert gw.list_payment_methods(ada.id) == []
    with pytest.raises(InvalidRequest):
        reorder(gw, ada.id, method_id, "ord_after_detach")
    assert gw.provider.payments() == []


def test_customers(gw: paygate.Gateway[FakeProvider]) -> None:
    ada = gw.create_customer(email="ada@example.com", name="Ada")
    bob = gw.create_customer(email="bob@example.com", name="Bob")
    assert gw.update_customer(ada.id, name="Ada L.").name == "Ada L."
    assert [c.id for c in gw.list_customers()] == [ada.id, bob.id]
    assert [c.id for c in gw.list_customers(email="bob@example.com")] == [bob.id]
    gw.delete_customer(bob.id)
    with pytest.raises(NotFound):
        gw.get_customer(bob.id)
    with pytest.raises(ValidationError, match="update_customer needs"):
        gw.update_customer(ada.id)


def test_setups_are_idempotent_by_key_and_keep_their_secret(
    gw: paygate.Gateway[FakeProvider],
) -> None:
    ada = gw.create_customer(email="ada@example.com", name="Ada")
    first = gw.create_setup(ada.id, idempotency_key="save-ada")
    again = gw.create_setup(ada.id, idempotency_key="save-ada")
    assert again.id == first.id and again.client_secret == first.client_secret
    other = gw.create_setup(ada.id)
    assert other.id != first.id
    assert gw.provider.calls["create_setup"] == 3  # the replay asked the provider's own


def test_bad_arguments_are_refused_before_the_provider(gw: paygate.Gateway[FakeProvider]) -> None:
    with pytest.raises(ValidationError, match="off_session"):
        gw.create_payment(order_id="o", amount=EUR, payment_method="pm_x", off_session=True)
    with pytest.raises(ValidationError, match="usage"):
        gw.create_setup("cus_x", usage="sometimes")  # type: ignore[arg-type]
    assert gw.provider.calls["create_payment"] == gw.provider.calls["create_setup"] == 0


def test_an_adapter_without_the_operations_is_not_supported() -> None:
    class Minimal:
        """A plug-in adapter written before saved methods: the payments protocol only."""

        name = "minimal"
        capabilities = frozenset({Capability.PAYMENTS})

        def __getattr__(self, name: str) -> Any:
            if name in ("get_customer", "create_setup") or name.startswith("_"):
                raise AttributeError(name)
            return getattr(BaseProvider(), name)

    class Plugin(BaseProvider):
        name = "plugin"

    for adapter, name in ((Minimal(), "minimal"), (Plugin(), "plugin")):
        with paygate.connect(adapter, store="memory://") as gateway:
            with pytest.raises(NotSupported) as info:
                gateway.get_customer("cus_1")
            assert info.value.provider == name and "get_customer" in str(info.value)

