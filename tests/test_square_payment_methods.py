"""SquareProvider's customers and cards on file, against the in-memory Square API.

The ``square_api`` fixture (tests/test_square_spec.py) validates every request the adapter
sends and every answer against Square's OpenAPI specification (``api.json``).
"""

# ruff: noqa: F811  (the shared fixtures are imported from tests.test_square_spec)
from __future__ import annotations

import pytest

from paygate import (
    AuthenticationRequired,
    CardDeclined,
    EventType,
    Money,
    NotFound,
    NotSupported,
    PaymentMethod,
    PaymentMethodKind,
    PaymentStatus,
    SetupStatus,
    ValidationError,
)
from paygate.provider import Capability, PaymentMethodsProvider
from paygate.providers._square_mock import VERIFICATION_LATER_SOURCE, SquareMockAPI
from paygate.providers.square import SquareProvider, square_idempotency_key
from tests.test_square_spec import square, square_api  # noqa: F401 - fixtures


def save(square: SquareProvider, customer_id: str, nonce: str = "cnon:card-nonce-ok") -> str:
    setup = square.create_setup(
        customer_id=customer_id, idempotency_key=f"card-{nonce}", payment_method=nonce
    )
    assert setup.status is SetupStatus.SUCCEEDED and setup.payment_method_id
    return setup.payment_method_id


def test_capabilities(square: SquareProvider) -> None:
    assert isinstance(square, PaymentMethodsProvider)
    assert Capability.PAYMENT_METHODS in square.capabilities
    assert Capability.DEFAULT_PAYMENT_METHOD not in square.capabilities


def test_customer_lifecycle(square: SquareProvider, square_api: SquareMockAPI) -> None:
    ada = square.create_customer(
        email="ada@example.com", name="Ada Lovelace", idempotency_key="c1", metadata={"a": "1"}
    )
    square.create_customer(email="bob@example.com", name=None, idempotency_key="c2")
    assert square.get_customer(ada.id).name == "Ada Lovelace"
    updated = square.update_customer(ada.id, name="Ada King", metadata={"b": "2"})
    assert (updated.name, dict(updated.metadata)) == ("Ada King", {"a": "1", "b": "2"})
    put = square_api.calls[-1]
    assert (put.method, put.body) == (
        "PUT",
        {"given_name": "Ada", "family_name": "King", "note": '{"a": "1", "b": "2"}'},
    )
    assert [c.email for c in square.list_customers(page_size=1)] == [
        "ada@example.com",
        "bob@example.com",
    ]
    assert [c.id for c in square.list_customers(email="ada@example.com")] == [ada.id]
    search = square_api.calls[-1]
    assert search.path == "/v2/customers/search"
    assert search.body == {
        "query": {"filter": {"email_address": {"exact": "ada@example.com"}}},
        "limit": 100,
    }
    square.delete_customer(ada.id)
    with pytest.raises(NotFound):
        square.get_customer(ada.id)
    with pytest.raises(ValidationError, match="page_size"):
        square.list_customers(page_size=0)


def test_save_a_card_from_a_nonce_with_a_verification_token(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    ada = square.create_customer(email="ada@example.com", name=None, idempotency_key="c")
    setup = square.create_setup(
        customer_id=ada.id,
        idempotency_key="save-1",
        payment_method="cnon:card-nonce-ok",
        verification_token="verf:buyer-verified",
        return_url="https://shop.example/unused",
    )
    assert (setup.status, setup.customer_id) == (SetupStatus.SUCCEEDED, ada.id)
    create = square_api.calls[-1]
    assert create.path == "/v2/cards"
    assert create.body == {
        "idempotency_key": square_idempotency_key("save-1"),
        "source_id": "cnon:card-nonce-ok",
        "card": {"customer_id": ada.id},
        "verification_token": "verf:buyer-verified",
    }
    method = square.get_payment_method(setup.payment_method_id or "")
    assert (method.kind, method.brand, method.last4, method.exp_month, method.exp_year) == (
        PaymentMethodKind.CARD,
        "visa",
        "1111",
        11,
        2030,
    )
    assert method.customer_id == ada.id and method.fingerprint
    assert [m.id for m in square.list_payment_methods(ada.id)] == [method.id]


def test_a_declined_card_is_not_saved(square: SquareProvider) -> None:
    ada = square.create_customer(email="ada@example.com", name=None, idempotency_key="c")
    with pytest.raises(CardDeclined) as info:
        save(square, ada.id, "cnon:card-nonce-insufficient-funds")
    assert info.value.decline_code == "insufficient_funds"
    assert square.list_payment_methods(ada.id) == []


def test_charge_a_card_on_file_off_session(
    square: SquareProvider, square_api: SquareMockAPI
) -> None:
    ada = square.create_customer(email="ada@example.com", name=None, idempotency_key="c")
    card_id = save(square, ada.id)
    payment = square.create_payment(
        order_id="ord_reorder",
        amount=Money(4200, "USD"),
        payment_method=card_id,
        customer_id=ada.id,
        idempotency_key="reorder",
        off_session=True,
    )
    assert payment.status is PaymentStatus.SUCCEEDED
    sent = square_api.calls[-1].body
    assert (sent["source_id"], sent["customer_id"]) == (card_id, ada.id)


def test_verification_required_off_session(square: SquareProvider) -> None:
    ada = square.create_customer(email="ada@example.com", name=None, idempotency_key="c")
    card_id = save(square, ada.id, VERIFICATION_LATER_SOURCE)
    with pytest.raises(AuthenticationRequired) as info:
        square.create_payment(
            order_id="ord_sca",
            amount=Money(4200, "USD"),
            payment_method=card_id,
            customer_id=ada.id,
            idempotency_key="sca",
            off_session=True,
        )
    assert info.value.decline_code == "authentication_required"
    assert info.value.code == "CARD_DECLINED_VERIFICATION_REQUIRED"
    assert info.value.payment_id is None  # Square keeps no payment to confirm later


def test_a_disabled_card_is_gone(square: SquareProvider, square_api: SquareMockAPI) -> None:
    ada = square.create_customer(email="ada@example.com", name=None, idempotency_key="c")
    card_id = save(square, ada.id)
    square_api.take_webhooks()
    square.detach_payment_method(card_id)
    assert square_api.calls[-1].path == f"/v2/cards/{card_id}/disable"
    assert square.list_payment_methods(ada.id) == []
    assert square.get_payment_method(card_id).customer_id is None
    with pytest.raises(NotFound):
        square.create_payment(
            order_id="ord_gone",
            amount=Money(100, "USD"),
            payment_method=card_id,
            customer_id=ada.id,
            idempotency_key="gone",
            off_session=True,
        )
    [delivery] = square_api.take_webhooks()
    event = square.parse_webhook(delivery.body, delivery.headers)
    assert event.type is EventType.PAYMENT_METHOD_DETACHED
    assert isinstance(event.object, PaymentMethod) and event.object.customer_id is None


def test_card_webhooks_carry_the_card(square: SquareProvider, square_api: SquareMockAPI) -> None:
    ada = square.create_customer(email="ada@example.com", name=None, idempotency_key="c")
    card_id = save(square, ada.id)
    square_api.automatically_update_card(card_id, exp_year=2033)
    square.delete_customer(ada.id)
    events = [square.parse_webhook(d.body, d.headers) for d in square_api.take_webhooks()]
    assert [e.type for e in events] == [
        EventType.PAYMENT_METHOD_ATTACHED,
        EventType.PAYMENT_METHOD_UPDATED,
        EventType.CUSTOMER_DELETED,
    ]
    renewed = events[1].object
    assert isinstance(renewed, PaymentMethod) and renewed.exp_year == 2033


def test_what_square_cannot_do(square: SquareProvider) -> None:
    with pytest.raises(ValidationError, match="Web Payments SDK"):
        square.create_setup(customer_id="C1", idempotency_key="k")
    with pytest.raises(NotSupported) as info:
        square.set_default_payment_method("C1", "ccof:1")
    assert info.value.provider == "square" and "set_default_payment_method" in str(info.value)
    with pytest.raises(NotSupported, match="complete_setup"):
        square.complete_setup({"x": "y"}, idempotency_key="k")
    with pytest.raises(ValidationError, match="customer_id"):
        square.create_payment(
            order_id="o",
            amount=Money(100, "USD"),
            payment_method="ccof:1",
            idempotency_key="k",
            off_session=True,
        )
