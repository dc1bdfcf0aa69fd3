"""The fake provider's customers and saved payment methods: scripted outcomes, signed
webhooks for each change, and the errors a real provider gives."""

from __future__ import annotations

import pytest

from paygate import (
    AuthenticationRequired,
    CardDeclined,
    Customer,
    InvalidRequest,
    Money,
    NotFound,
    NotSupported,
    PaymentMethod,
    PaymentMethodKind,
    PaymentStatus,
    SetupSession,
    SetupStatus,
    WebhookEvent,
)
from paygate.provider import Capability, PaymentMethodsProvider
from paygate.providers.fake import FakeProvider
from paygate.testing import FakeClock

NOW = 1_700_000_000  # 2023-11-14


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(seed=3, clock=FakeClock(NOW))


def events(fake: FakeProvider) -> list[WebhookEvent]:
    return [fake.parse_webhook(d.body, d.headers) for d in fake.take_webhooks()]


def customer(fake: FakeProvider, email: str = "ada@example.com") -> Customer:
    return fake.create_customer(email=email, name="Ada", idempotency_key=f"cus-{email}")


def save(fake: FakeProvider, customer_id: str, token: str) -> PaymentMethod:
    setup = fake.create_setup(
        customer_id=customer_id, idempotency_key=f"setup-{customer_id}-{token}", payment_method=token
    )
    assert setup.status is SetupStatus.SUCCEEDED and setup.payment_method_id
    return fake.get_payment_method(setup.payment_method_id)


def reorder(fake: FakeProvider, customer_id: str, method_id: str, key: str = "reorder"):  # type: ignore[no-untyped-def]
    return fake.create_payment(
        order_id=f"ord_{key}",
        amount=Money(4200, "EUR"),
        payment_method=method_id,
        customer_id=customer_id,
        idempotency_key=key,
        off_session=True,
    )


def test_the_fake_satisfies_the_payment_methods_protocol(fake: FakeProvider) -> None:
    assert isinstance(fake, PaymentMethodsProvider)
    assert {Capability.PAYMENT_METHODS, Capability.DEFAULT_PAYMENT_METHOD} <= fake.capabilities


def test_save_a_card_then_charge_it_off_session_with_webhooks(fake: FakeProvider) -> None:
    ada = customer(fake)
    setup = fake.create_setup(
        customer_id=ada.id, idempotency_key="s1", return_url="https://shop.example/saved"
    )
    assert setup.status is SetupStatus.REQUIRES_ACTION
    assert setup.url == f"https://fake.paygate.local/setup/{setup.id}"
    assert setup.client_secret and setup.client_secret not in repr(setup)
    fake.approve_setup(setup.id, payment_method="tok_mastercard")
    done = fake.complete_setup({"setup_id": setup.id}, idempotency_key="s1-done")
    assert done.status is SetupStatus.SUCCEEDED and done.url is None
    method = fake.get_payment_method(done.payment_method_id or "")
    assert (method.kind, method.brand, method.last4, method.customer_id) == (
        PaymentMethodKind.CARD,
        "mastercard",
        "4444",
        ada.id,
    )
    assert (method.exp_month, method.exp_year) == (11, 2026)
    assert method.fingerprint and method.fingerprint.startswith("fp_")
    kinds = [(e.type.value, type(e.object).__name__) for e in events(fake)]
    assert kinds == [
        ("customer.created", "Customer"),
        ("payment_method.attached", "PaymentMethod"),
        ("setup.succeeded", "SetupSession"),
    ]
    payment = reorder(fake, ada.id, method.id)
    assert payment.status is PaymentStatus.SUCCEEDED and payment.customer_id == ada.id
    # the same key replays the charge: one payment
    assert reorder(fake, ada.id, method.id).id == payment.id
    assert len(fake.payments()) == 1


def test_the_same_card_saved_twice_has_the_same_fingerprint(fake: FakeProvider) -> None:
    ada, bob = customer(fake), customer(fake, "bob@example.com")
    first, second = save(fake, ada.id, "tok_visa"), save(fake, bob.id, "tok_visa")
    assert first.id != second.id and first.fingerprint == second.fingerprint
    assert save(fake, ada.id, "tok_amex").fingerprint != first.fingerprint


def test_a_saved_card_that_later_declines(fake: FakeProvider) -> None:
    ada = customer(fake)
    method = save(fake, ada.id, "tok_later_declined")
    assert method.last4 == "0341"
    fake.take_webhooks()
    with pytest.raises(CardDeclined) as info:
        reorder(fake, ada.id, method.id)
    assert not isinstance(info.value, AuthenticationRequired)
    assert info.value.payment_id is not None
    assert [e.type.value for e in events(fake)] == ["payment.created", "payment.failed"]


def test_a_saved_card_that_demands_authentication_off_session(fake: FakeProvider) -> None:
    ada = customer(fake)
    method = save(fake, ada.id, "tok_authentication_required")
    with pytest.raises(AuthenticationRequired) as info:
        reorder(fake, ada.id, method.id)
    error = info.value
    assert isinstance(error, CardDeclined) and error.decline_code == "authentication_required"
    assert error.payment_id is not None
    failed = fake.get_payment(error.payment_id)
    assert failed.status is PaymentStatus.FAILED
    assert failed.failure is not None and failed.failure.decline_code == "authentication_required"
    # the replay gives the same typed error, and charges nothing more
    with pytest.raises(AuthenticationRequired):
        reorder(fake, ada.id, method.id)
    assert len(fake.payments()) == 1
    # the customer comes back: on session the same card asks for 3-D Secure, then pays
    back = fake.confirm_payment(error.payment_id, "tok_authentication_required")
    assert back.status is PaymentStatus.REQUIRES_ACTION
    assert fake.authenticate(error.payment_id).status is PaymentStatus.SUCCEEDED
    # on session, with the saved method, it asks for authentication instead of refusing
    on_session = fake.create_payment(
        order_id="ord_on",
        amount=Money(100, "EUR"),
        payment_method=method.id,
        customer_id=ada.id,
        idempotency_key="on",
    )
    assert on_session.status is PaymentStatus.REQUIRES_ACTION


def test_a_3ds_card_authenticated_at_setup_charges_off_session(fake: FakeProvider) -> None:
    ada = customer(fake)
    setup = fake.create_setup(customer_id=ada.id, idempotency_key="s", payment_method="tok_3ds")
    assert setup.status is SetupStatus.REQUIRES_ACTION and setup.payment_method_id is None
    done = fake.authenticate_setup(setup.id)
    assert done.status is SetupStatus.SUCCEEDED and done.payment_method_id
    assert reorder(fake, ada.id, done.payment_method_id).status is PaymentStatus.SUCCEEDED


def test_failed_setups(fake: FakeProvider) -> None:
    ada = customer(fake)
    fake.take_webhooks()
    with pytest.raises(CardDeclined) as info:
        fake.create_setup(customer_id=ada.id, idempotency_key="d", payment_method="tok_declined")
    assert info.value.decline_code == "card_declined"
    setup = fake.create_setup(customer_id=ada.id, idempotency_key="a", payment_method="tok_3ds")
    failed = fake.authenticate_setup(setup.id, success=False)
    assert failed.status is SetupStatus.FAILED
    assert failed.failure is not None and failed.failure.code == "authentication_failed"
    assert [e.type.value for e in events(fake)] == ["setup.failed", "setup.failed"]
    assert fake.list_payment_methods(ada.id) == []
    with pytest.raises(InvalidRequest, match="not waiting"):
        fake.authenticate_setup(setup.id)


def test_an_expired_card_updated_by_the_network(fake: FakeProvider) -> None:
    ada = customer(fake)
    method = save(fake, ada.id, "tok_expiring")
    assert (method.exp_month, method.exp_year) == (11, 2023)  # expires this month
    fake.take_webhooks()
    renewed = fake.network_update_card(method.id)
    assert (renewed.id, renewed.exp_month, renewed.exp_year) == (method.id, 11, 2025)
    [event] = events(fake)
    assert event.type.value == "payment_method.updated"
    assert isinstance(event.object, PaymentMethod) and event.object.exp_year == 2025
    assert fake.get_payment_method(method.id).exp_year == 2025


def test_default_detach_and_charge_after_detach(fake: FakeProvider) -> None:
    ada, bob = customer(fake), customer(fake, "bob@example.com")
    visa, amex = save(fake, ada.id, "tok_visa"), save(fake, ada.id, "tok_amex")
    assert [m.id for m in fake.list_payment_methods(ada.id)] == [visa.id, amex.id]
    updated = fake.set_default_payment_method(ada.id, amex.id)
    assert updated.default_payment_method_id == amex.id
    assert fake.get_customer(ada.id).default_payment_method_id == amex.id
    with pytest.raises(InvalidRequest, match="not attached"):
        fake.set_default_payment_method(bob.id, amex.id)
    with pytest.raises(InvalidRequest, match="not attached"):  # another customer's card
        reorder(fake, bob.id, amex.id, key="bob")
    fake.take_webhooks()
    fake.detach_payment_method(amex.id)
    [event] = events(fake)
    assert event.type.value == "payment_method.detached"
    assert isinstance(event.object, PaymentMethod) and event.object.customer_id is None
    assert fake.get_customer(ada.id).default_payment_method_id is None
    assert [m.id for m in fake.list_payment_methods(ada.id)] == [visa.id]
    with pytest.raises(InvalidRequest) as info:
        reorder(fake, ada.id, amex.id, key="after-detach")
    assert info.value.code == "payment_method_unavailable"
    with pytest.raises(InvalidRequest):
        fake.detach_payment_method(amex.id)


def test_saved_method_charges_need_their_customer(fake: FakeProvider) -> None:
    ada = customer(fake)
    visa = save(fake, ada.id, "tok_visa")
    with pytest.raises(InvalidRequest, match="customer_id"):
        fake.create_payment(
            order_id="o", amount=Money(100, "USD"), payment_method=visa.id, idempotency_key="k"
        )
    with pytest.raises(InvalidRequest, match="saved payment method"):
        fake.create_payment(
            order_id="o",
            amount=Money(100, "USD"),
            payment_method="tok_visa",
            customer_id=ada.id,
            idempotency_key="k2",
            off_session=True,
        )
    with pytest.raises(NotFound):
        reorder(fake, ada.id, "pm_000000000000000000000000")


def test_customer_lifecycle_with_webhooks(fake: FakeProvider) -> None:
    ada = customer(fake)
    bob = customer(fake, "bob@example.com")
    visa = save(fake, ada.id, "tok_visa")
    fake.take_webhooks()
    updated = fake.update_customer(ada.id, name="Ada L.", metadata={"tier": "gold"})
    assert (updated.name, updated.email, dict(updated.metadata)) == (
        "Ada L.",
        "ada@example.com",
        {"tier": "gold"},
    )
    assert [c.id for c in fake.list_customers()] == [ada.id, bob.id]
    assert [c.id for c in fake.list_customers(email="bob@example.com")] == [bob.id]
    with pytest.raises(InvalidRequest, match="page_size"):
        fake.list_customers(page_size=0)
    with pytest.raises(InvalidRequest, match="email"):
        fake.update_customer(ada.id, email="nope")
    fake.delete_customer(ada.id)
    assert [e.type.value for e in events(fake)] == [
        "customer.updated",
        "payment_method.detached",
        "customer.deleted",
    ]
    with pytest.raises(NotFound):
        fake.get_customer(ada.id)
    with pytest.raises(NotFound):
        fake.list_payment_methods(ada.id)
    assert fake.get_payment_method(visa.id).customer_id is None


def test_saved_methods_undeclared_refuse_with_not_supported() -> None:
    class NoVault(FakeProvider):
        capabilities = frozenset(FakeProvider.capabilities) - {Capability.PAYMENT_METHODS}

    fake = NoVault(seed=1)
    ada = customer(fake)
    with pytest.raises(NotSupported) as info:
        fake.create_setup(customer_id=ada.id, idempotency_key="s")
    assert info.value.provider == "fake" and "create_setup" in str(info.value)
    with pytest.raises(NotSupported, match="off_session"):
        fake.create_payment(
            order_id="o",
            amount=Money(100, "USD"),
            payment_method=None,
            customer_id=ada.id,
            idempotency_key="k",
            off_session=True,
        )


def test_setup_webhook_carries_no_client_secret(fake: FakeProvider) -> None:
    ada = customer(fake)
    setup = fake.create_setup(customer_id=ada.id, idempotency_key="s")
    fake.approve_setup(setup.id)
    assert setup.client_secret is not None
    for delivery in fake.take_webhooks():
        assert setup.client_secret.encode() not in delivery.body
    assert isinstance(setup, SetupSession)
