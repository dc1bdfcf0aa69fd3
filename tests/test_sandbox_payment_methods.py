"""Saved payment methods on the real Stripe adapter, with only the sandbox running.

Customers, a Checkout Session in setup mode whose hosted page the customer fills in (an
HTTP form post, `paygate.testing.pay_hosted_page`), SetupIntents, list/get/default/detach,
off-session charges (success, ``authentication_required``, after detach) and the signed
``customer.*``, ``payment_method.*``, ``setup_intent.*`` webhooks verified by the shop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

import paygate
from paygate import (
    AuthenticationRequired,
    CardDeclined,
    EventType,
    InvalidRequest,
    Money,
    NotFound,
    PaymentMethodKind,
    PaymentStatus,
    SetupStatus,
)
from paygate.gateway import Gateway
from paygate.sandbox import Sandbox
from paygate.testing import pay_hosted_page
from paygate.testing.sandbox import Delivery, WebhookReceiver
from tests.conftest import load_reference_json
from tests.stripe_shapes import shape_errors

pytest.importorskip("stripe")

EUR = Money.of("42.00", "EUR")
KEY = {"Authorization": "Bearer sk_test_sandbox"}


@pytest.fixture
def gateway(sandbox: Sandbox) -> Iterator[Gateway]:
    gw = paygate.connect(
        "stripe",
        api_key="sk_test_sandbox",
        webhook_secret=sandbox.stripe.webhook_secret,
        base_url=sandbox.base_url,
        store="memory://",
    )
    yield gw
    gw.close()


@pytest.fixture
def endpoint(sandbox: Sandbox, gateway: Gateway) -> Iterator[WebhookReceiver]:
    """The shop's webhook endpoint: verifies each delivery through the gateway."""

    def handle(delivery: Delivery) -> int:
        return gateway.handle_webhook(delivery.body, delivery.headers).http_status

    with WebhookReceiver(handle) as receiver:
        sandbox.bus.forward_to.append(receiver.url)
        yield receiver


def _settled(sandbox: Sandbox, receiver: WebhookReceiver) -> list[str]:
    """The types delivered, every delivery answered 2xx (signature verified by paygate)."""
    assert sandbox.bus.wait_idle(20)
    for event in sandbox.bus.events("stripe", limit=1000):
        attempts = sandbox.bus.attempts(event.id)
        assert attempts and attempts[-1].ok, (event.type, [a.excerpt for a in attempts])
    return [json.loads(d.body)["type"] for d in receiver.deliveries]


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def _save_on_hosted_page(gateway: Gateway, customer_id: str, card: str) -> str:
    """The customer saves ``card`` on Checkout's setup page; the shop completes the setup."""
    setup = gateway.create_setup(
        customer_id,
        return_url="http://shop.test/saved",
        cancel_url="http://shop.test/account",
    )
    assert setup.status is SetupStatus.REQUIRES_ACTION and setup.url
    came_back = pay_hosted_page(setup.url, card)
    assert came_back.return_url is not None, came_back.error
    assert came_back.return_url.startswith("http://shop.test/saved?session_id=cs_")
    done = gateway.complete_setup(_query(came_back.return_url))
    assert done.id == setup.id and done.status is SetupStatus.SUCCEEDED
    assert done.customer_id == customer_id and done.payment_method_id
    return done.payment_method_id


def test_save_a_card_on_the_hosted_page_then_charge_it_off_session(
    sandbox: Sandbox, gateway: Gateway, endpoint: WebhookReceiver
) -> None:
    ada = gateway.create_customer(email="ada@example.com", name="Ada")
    card_id = _save_on_hosted_page(gateway, ada.id, "4242 4242 4242 4242")

    [card] = gateway.list_payment_methods(ada.id)
    assert (card.id, card.kind, card.brand, card.last4) == (
        card_id, PaymentMethodKind.CARD, "visa", "4242",
    )  # fmt: skip
    assert card.customer_id == ada.id and card.exp_year and card.fingerprint
    assert gateway.get_payment_method(card_id) == card
    assert gateway.set_default_payment_method(ada.id, card_id).default_payment_method_id == card_id
    assert gateway.get_customer(ada.id).default_payment_method_id == card_id
    assert gateway.update_customer(ada.id, name="Ada L.").name == "Ada L."

    payment = gateway.create_payment(
        order_id="ord-next-month", amount=EUR, payment_method=card_id,
        customer_id=ada.id, off_session=True,
    )  # fmt: skip
    assert payment.status is PaymentStatus.SUCCEEDED and payment.customer_id == ada.id
    assert payment.amount == EUR

    gateway.detach_payment_method(card_id)
    assert gateway.list_payment_methods(ada.id) == []
    assert gateway.get_customer(ada.id).default_payment_method_id is None
    with pytest.raises(InvalidRequest) as info:
        gateway.create_payment(
            order_id="ord-after-detach", amount=EUR, payment_method=card_id,
            customer_id=ada.id, off_session=True,
        )  # fmt: skip
    assert info.value.http_status == 400 and not isinstance(info.value, CardDeclined)

    types = _settled(sandbox, endpoint)
    for expected in (
        "customer.created", "payment_method.attached", "setup_intent.succeeded",
        "checkout.session.completed", "customer.updated", "payment_intent.succeeded",
        "payment_method.detached",
    ):  # fmt: skip
        assert expected in types, (expected, types)
    assert types.index("payment_method.attached") < types.index("payment_method.detached")
    emitted = [e.type for e in reversed(sandbox.bus.events("stripe", 1000))]  # oldest first
    assert (
        emitted.index("payment_method.attached")
        < emitted.index("setup_intent.succeeded")
        < emitted.index("checkout.session.completed")
    )
    translated = [
        gateway.provider.parse_webhook(d.body, d.headers).type for d in endpoint.deliveries
    ]
    assert EventType.PAYMENT_METHOD_ATTACHED in translated
    assert EventType.PAYMENT_METHOD_DETACHED in translated
    assert EventType.SETUP_SUCCEEDED in translated


def test_a_card_that_demands_authentication_off_session(
    sandbox: Sandbox, gateway: Gateway, endpoint: WebhookReceiver
) -> None:
    bob = gateway.create_customer(email="bob@example.com", name="Bob")
    card_id = _save_on_hosted_page(gateway, bob.id, "4000 0027 6000 3184")
    assert gateway.get_payment_method(card_id).last4 == "3184"
    with pytest.raises(AuthenticationRequired) as info:
        gateway.create_payment(
            order_id="ord-sca", amount=EUR, payment_method=card_id,
            customer_id=bob.id, off_session=True,
        )  # fmt: skip
    assert info.value.payment_id and info.value.payment_id.startswith("pi_")
    assert info.value.code == "authentication_required" and info.value.http_status == 402
    failed = gateway.get_payment(info.value.payment_id)
    assert failed.status is PaymentStatus.FAILED and failed.customer_id == bob.id
    assert "payment_intent.payment_failed" in _settled(sandbox, endpoint)


def test_a_card_that_saves_then_declines_every_charge(gateway: Gateway) -> None:
    eve = gateway.create_customer(email="eve@example.com", name="Eve")
    card_id = _save_on_hosted_page(gateway, eve.id, "4000000000000341")
    with pytest.raises(CardDeclined) as info:
        gateway.create_payment(
            order_id="ord-declined", amount=EUR, payment_method=card_id,
            customer_id=eve.id, off_session=True,
        )  # fmt: skip
    assert not isinstance(info.value, AuthenticationRequired)
    assert info.value.decline_code == "card_declined" and info.value.http_status == 402


def test_a_3d_secure_card_saved_on_the_hosted_page_charges_off_session(gateway: Gateway) -> None:
    ada = gateway.create_customer(email="ada@example.com", name="Ada")
    card_id = _save_on_hosted_page(gateway, ada.id, "4000 0025 0000 3155")
    assert gateway.get_payment_method(card_id).last4 == "3155"
    payment = gateway.create_payment(
        order_id="ord-3ds-saved", amount=EUR, payment_method=card_id,
        customer_id=ada.id, off_session=True,
    )  # fmt: skip
    assert payment.status is PaymentStatus.SUCCEEDED


def test_a_declined_card_on_the_setup_page_stays_there_then_another_saves(
    gateway: Gateway,
) -> None:
    ada = gateway.create_customer(email="ada@example.com", name="Ada")
    setup = gateway.create_setup(ada.id, return_url="http://shop.test/saved")
    assert setup.url
    declined = pay_hosted_page(setup.url, "4000 0000 0000 0002")
    assert declined.return_url is None and declined.error
    assert gateway.list_payment_methods(ada.id) == []
    came_back = pay_hosted_page(setup.url, "5555 5555 5555 4444")
    assert came_back.return_url is not None
    done = gateway.complete_setup(_query(came_back.return_url))
    assert done.status is SetupStatus.SUCCEEDED
    assert gateway.get_payment_method(done.payment_method_id or "").brand == "mastercard"


def test_setup_intent_with_a_test_method_and_stripes_authentication_required_method(
    gateway: Gateway,
) -> None:
    ada = gateway.create_customer(email="ada@example.com", name="Ada")
    saved = gateway.create_setup(ada.id, payment_method="pm_card_visa")
    assert saved.status is SetupStatus.SUCCEEDED and saved.id.startswith("seti_")
    assert saved.payment_method_id
    again = gateway.complete_setup({"setup_intent": saved.id})
    assert again.payment_method_id == saved.payment_method_id
    with pytest.raises(CardDeclined):
        gateway.create_setup(ada.id, payment_method="pm_card_chargeDeclined")
    picky = gateway.create_setup(ada.id, payment_method="pm_card_authenticationRequired")
    assert picky.payment_method_id
    with pytest.raises(AuthenticationRequired) as info:
        gateway.create_payment(
            order_id="ord-picky", amount=EUR, payment_method=picky.payment_method_id,
            customer_id=ada.id, off_session=True,
        )  # fmt: skip
    assert info.value.payment_id
    # Stripe's test method itself, never saved, charged off session: the same decline
    with pytest.raises(AuthenticationRequired):
        gateway.create_payment(
            order_id="ord-test-method", amount=EUR,
            payment_method="pm_card_authenticationRequired", customer_id=ada.id,
            off_session=True,
        )  # fmt: skip
    assert len(gateway.list_payment_methods(ada.id)) == 2


def test_setup_intent_waiting_for_3d_secure_on_the_sandboxs_challenge_page(
    gateway: Gateway,
) -> None:
    ada = gateway.create_customer(email="ada@example.com", name="Ada")
    setup = gateway.create_setup(
        ada.id, payment_method="pm_card_threeDSecure2Required", return_url="http://shop.test/s"
    )
    assert setup.status is SetupStatus.REQUIRES_ACTION and setup.url
    came_back = pay_hosted_page(setup.url)
    assert came_back.return_url is not None
    query = _query(came_back.return_url)
    assert (query["setup_intent"], query["redirect_status"]) == (setup.id, "succeeded")
    done = gateway.complete_setup(query)
    assert done.status is SetupStatus.SUCCEEDED and done.payment_method_id
    payment = gateway.create_payment(
        order_id="ord-after-3ds", amount=EUR, payment_method=done.payment_method_id,
        customer_id=ada.id, off_session=True,
    )  # fmt: skip
    assert payment.status is PaymentStatus.SUCCEEDED  # 3-D Secure at setup covers it
    failing = gateway.create_setup(
        ada.id, payment_method="pm_card_threeDSecure2Required", return_url="http://shop.test/s"
    )
    refused = pay_hosted_page(failing.url or "", three_d_secure="fail")
    assert refused.return_url is not None
    assert gateway.complete_setup(_query(refused.return_url)).status is SetupStatus.FAILED


def test_authentication_required_comes_in_stripes_error_shape(
    sandbox: Sandbox, gateway: Gateway
) -> None:
    ada = gateway.create_customer(email="ada@example.com", name="Ada")
    card_id = _save_on_hosted_page(gateway, ada.id, "4000002760003184")
    answer = httpx.post(sandbox.base_url + "/v1/payment_intents", headers=KEY, data={
        "amount": "4200", "currency": "eur", "customer": ada.id, "payment_method": card_id,
        "off_session": "true", "confirm": "true",
    })  # fmt: skip
    assert answer.status_code == 402
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error", "authentication_required", "authentication_required",
    )  # fmt: skip
    intent = error["payment_intent"]
    assert intent["status"] == "requires_payment_method" and intent["payment_method"] == card_id
    assert intent["last_payment_error"]["code"] == "authentication_required"
    assert shape_errors(intent) == []
    from stripe._error_object import ErrorObject

    from tests.stripe_shapes import _object_errors

    assert _object_errors(error, ErrorObject, "error") == []


def test_saved_method_objects_fit_the_stripe_packages_typed_resources(
    sandbox: Sandbox, gateway: Gateway, reference_dir: Path
) -> None:
    ada = gateway.create_customer(email="ada@example.com", name="Ada")
    _save_on_hosted_page(gateway, ada.id, "4242424242424242")
    gateway.create_setup(ada.id, payment_method="pm_card_mastercard")

    def get(path: str) -> Any:
        return httpx.get(sandbox.base_url + path, headers=KEY).json()

    methods = get(f"/v1/customers/{ada.id}/payment_methods")["data"]
    assert len(methods) == 2
    objects = [*methods, get(f"/v1/customers/{ada.id}")]
    events = [e.payload() for e in sandbox.bus.events("stripe", 1000)]
    objects += [e["data"]["object"] for e in events]
    kinds = {o["object"] for o in objects}
    assert kinds >= {"payment_method", "setup_intent", "customer", "checkout.session"}
    assert [e for o in objects for e in shape_errors(o)] == []
    # and no field Stripe's own example of that object lacks
    examples = load_reference_json("stripe", "fixtures3.json")["resources"]
    extra = {
        o["object"]: sorted(set(o) - set(examples[o["object"]]))
        for o in objects
        if o["object"] in examples and set(o) - set(examples[o["object"]])
    }
    assert extra == {}


def test_deleted_customer_is_a_stub_and_not_found_through_the_adapter(
    sandbox: Sandbox, gateway: Gateway
) -> None:
    ada = gateway.create_customer(email="ada@example.com", name="Ada")
    gateway.create_setup(ada.id, payment_method="pm_card_visa")
    assert [c.id for c in gateway.list_customers(email="ada@example.com")] == [ada.id]
    gateway.delete_customer(ada.id)
    stub = httpx.get(f"{sandbox.base_url}/v1/customers/{ada.id}", headers=KEY).json()
    assert stub == {"id": ada.id, "object": "customer", "deleted": True}
    with pytest.raises(NotFound):
        gateway.get_customer(ada.id)
    assert list(gateway.list_customers(email="ada@example.com")) == []


def test_setup_page_left_and_expired_session(sandbox: Sandbox, gateway: Gateway) -> None:
    ada = gateway.create_customer(email="ada@example.com", name="Ada")
    setup = gateway.create_setup(
        ada.id, return_url="http://shop.test/saved", cancel_url="http://shop.test/account"
    )
    page = httpx.get(setup.url or "")
    assert page.status_code == 200 and 'name="card"' in page.text
    httpx.post(
        f"{sandbox.base_url}/v1/checkout/sessions/{setup.id}/expire", headers=KEY
    ).raise_for_status()
    assert gateway.complete_setup({"session_id": setup.id}).status is not SetupStatus.SUCCEEDED
    assert "expired" in httpx.get(setup.url or "").text


def test_async_face_saves_and_charges_off_session(sandbox: Sandbox) -> None:
    async def main() -> None:
        async with paygate.connect_async(
            "stripe",
            "memory://",
            api_key="sk_test_sandbox",
            webhook_secret=sandbox.stripe.webhook_secret,
            base_url=sandbox.base_url,
        ) as gw:
            ada = await gw.create_customer(email="ada@example.com", name="Ada")
            setup = await gw.create_setup(ada.id, return_url="http://shop.test/saved")
            assert setup.url
            came_back = await asyncio.to_thread(pay_hosted_page, setup.url, "4242424242424242")
            assert came_back.return_url is not None
            done = await gw.complete_setup(_query(came_back.return_url))
            assert done.payment_method_id
            [card] = await gw.list_payment_methods(ada.id)
            assert card.id == done.payment_method_id
            payment = await gw.create_payment(
                order_id="ord-async", amount=EUR, payment_method=card.id,
                customer_id=ada.id, off_session=True,
            )  # fmt: skip
            assert payment.status is PaymentStatus.SUCCEEDED
            await gw.detach_payment_method(card.id)
            assert await gw.list_payment_methods(ada.id) == []

    asyncio.run(main())


# -- PayPal: Vault v3 ------------------------------------------------------------------------------


@pytest.fixture
def paypal_shop(sandbox: Sandbox) -> Iterator[tuple[Gateway, list[str]]]:
    from tests.test_sandbox_paypal import _settings

    gw = paygate.connect("paypal", "memory://", **_settings(sandbox))
    handled: list[str] = []

    def handle(delivery: Delivery) -> int:
        result = gw.handle_webhook(delivery.body, delivery.headers)
        handled.append(json.loads(delivery.body)["event_type"])
        return result.http_status

    with WebhookReceiver(handle) as receiver:
        sandbox.bus.forward_to.append(receiver.url)
        yield gw, handled
        assert sandbox.bus.wait_idle(20)
    gw.close()


def _vault(gw: Gateway, customer_id: str, funding: str = "paypal_balance") -> str:
    """The buyer approves saving their wallet on the sandbox's PayPal page."""
    setup = gw.create_setup(customer_id, return_url="http://shop.test/vaulted")
    assert setup.status is SetupStatus.REQUIRES_ACTION and setup.url
    came_back = pay_hosted_page(setup.url, fields={"funding": funding})
    assert came_back.return_url is not None, came_back.error
    done = gw.complete_setup(_query(came_back.return_url))
    assert done.status is SetupStatus.SUCCEEDED and done.payment_method_id
    return done.payment_method_id


def test_paypal_vault_setup_token_approval_payment_token_and_charges(
    sandbox: Sandbox, paypal_shop: tuple[Gateway, list[str]]
) -> None:
    gw, handled = paypal_shop
    token_id = _vault(gw, "buyer-ada")
    [wallet] = gw.list_payment_methods("buyer-ada")
    assert (wallet.id, wallet.kind, wallet.customer_id) == (
        token_id, PaymentMethodKind.PAYPAL, "buyer-ada",
    )  # fmt: skip
    assert wallet.email and gw.get_payment_method(token_id) == wallet
    payment = gw.create_payment(
        order_id="pp-next-month", amount=EUR, payment_method=token_id,
        customer_id="buyer-ada", off_session=True,
    )  # fmt: skip
    assert payment.status is PaymentStatus.SUCCEEDED and payment.amount == EUR

    picky = _vault(gw, "buyer-bob", funding="needs_authentication")
    with pytest.raises(AuthenticationRequired) as info:
        gw.create_payment(
            order_id="pp-sca", amount=EUR, payment_method=picky,
            customer_id="buyer-bob", off_session=True,
        )  # fmt: skip
    assert info.value.payment_id

    gw.detach_payment_method(token_id)
    assert gw.list_payment_methods("buyer-ada") == []
    with pytest.raises(InvalidRequest):
        gw.create_payment(
            order_id="pp-after-delete", amount=EUR, payment_method=token_id,
            customer_id="buyer-ada", off_session=True,
        )  # fmt: skip
    assert sandbox.bus.wait_idle(20)
    assert "VAULT.PAYMENT-TOKEN.CREATED" in handled and "VAULT.PAYMENT-TOKEN.DELETED" in handled


def test_paypal_vault_declined_funding_saves_nothing(
    paypal_shop: tuple[Gateway, list[str]],
) -> None:
    gw, _ = paypal_shop
    setup = gw.create_setup("buyer-eve", return_url="http://shop.test/vaulted")
    came_back = pay_hosted_page(setup.url or "", fields={"funding": "card_declined"})
    assert came_back.return_url is None and came_back.error
    assert gw.list_payment_methods("buyer-eve") == []
    saved = _vault(gw, "buyer-eve", funding="later_declined")
    with pytest.raises(CardDeclined):
        gw.create_payment(
            order_id="pp-declined", amount=EUR, payment_method=saved,
            customer_id="buyer-eve", off_session=True,
        )  # fmt: skip


def test_paypal_vault_objects_validate_against_the_vault_spec(
    sandbox: Sandbox, paypal_shop: tuple[Gateway, list[str]]
) -> None:
    from tests.paypal_support import spec_available, validate

    if not spec_available():
        pytest.skip("../shared/reference/paypal is not present")
    gw, _ = paypal_shop
    setup = gw.create_setup("buyer-ada", return_url="http://shop.test/vaulted")
    token_id = _vault(gw, "buyer-ada")
    spec = "vault_payment_tokens_v3.json"
    validate(spec, "setup_token_response", setup.raw)
    api = cast(Any, gw.provider)._http  # the adapter's own authenticated client
    listing = api.get("/v3/vault/payment-tokens?customer_id=buyer-ada&page=1")
    validate(spec, "customer_vault_payment_tokens_response", listing)
    validate(
        spec,
        "payment_token_response",
        api.get(f"/v3/vault/payment-tokens/{token_id}"),
    )


# -- Square: cards on file ---------------------------------------------------------------------------


def _square(sb: Sandbox) -> Gateway:
    from tests.test_sandbox_square import _settings

    return paygate.connect("square", "memory://", **_settings(sb, "http://127.0.0.1:9/hooks"))


def test_square_cards_on_file_save_charge_and_disable(sandbox: Sandbox) -> None:
    gw = _square(sandbox)
    try:
        ada = gw.create_customer(email="ada@example.com", name="Ada")
        setup = gw.create_setup(ada.id, payment_method="cnon:card-nonce-ok")
        assert setup.status is SetupStatus.SUCCEEDED and setup.payment_method_id
        card_id = setup.payment_method_id
        [card] = gw.list_payment_methods(ada.id)
        assert (card.id, card.kind, card.last4) == (card_id, PaymentMethodKind.CARD, "1111")
        payment = gw.create_payment(
            order_id="sq-next-month", amount=Money.of("42.00", "USD"), payment_method=card_id,
            customer_id=ada.id, off_session=True,
        )  # fmt: skip
        assert payment.status is PaymentStatus.SUCCEEDED
        picky = gw.create_setup(ada.id, payment_method="cnon:card-nonce-verification-later")
        with pytest.raises(AuthenticationRequired):
            gw.create_payment(
                order_id="sq-sca", amount=Money.of("42.00", "USD"),
                payment_method=picky.payment_method_id, customer_id=ada.id, off_session=True,
            )  # fmt: skip
        gw.detach_payment_method(card_id)
        assert [m.id for m in gw.list_payment_methods(ada.id)] == [picky.payment_method_id]
        with pytest.raises((InvalidRequest, NotFound)):
            gw.create_payment(
                order_id="sq-after-disable", amount=Money.of("42.00", "USD"),
                payment_method=card_id, customer_id=ada.id, off_session=True,
            )  # fmt: skip
        assert sandbox.bus.wait_idle(20)
        types = [e.type for e in sandbox.bus.events("square", 1000)]
        assert "card.created" in types and "card.disabled" in types
    finally:
        gw.close()


def test_square_cards_on_file_survive_a_restart_with_a_sqlite_store(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'sandbox.db'}"
    with Sandbox(port=0, store=store) as first:
        gw = _square(first)
        ada = gw.create_customer(email="ada@example.com", name="Ada")
        card_id = gw.create_setup(ada.id, payment_method="cnon:card-nonce-ok").payment_method_id
        gw.close()
    with Sandbox(port=0, store=store) as second:
        gw = _square(second)
        try:
            assert [m.id for m in gw.list_payment_methods(ada.id)] == [card_id]
            payment = gw.create_payment(
                order_id="sq-after-restart", amount=Money.of("5.00", "USD"),
                payment_method=card_id or "", customer_id=ada.id, off_session=True,
            )  # fmt: skip
            assert payment.status is PaymentStatus.SUCCEEDED
        finally:
            gw.close()
