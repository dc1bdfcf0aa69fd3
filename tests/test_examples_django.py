"""The Django example shop, end to end on the fake provider with Django's test ``Client``.

Django's settings are process-wide and can be configured once. This module configures
them lazily, in a module-scoped fixture (so merely collecting it changes nothing), from the
example's own ``settings.py``; each test then changes only the shop's three settings with
``override_settings``, which rebuilds the shop and is undone when the test ends. Nothing
else in the test suite uses Django.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("django")
pytest.importorskip("paygate.gateway", reason="the Gateway (issue 3) has not landed yet")

import django
from django.conf import settings
from django.test import Client, override_settings
from examples.django_shop.orders import Order

import paygate
from paygate import EventType, WebhookDelivery
from paygate.providers.fake import DEFAULT_WEBHOOK_SECRET, FakeProvider


@dataclass
class Receipts:
    """The receipt sender the tests configure (``SHOP_RECEIPT_SENDER`` names it)."""

    sent: list[str] = field(default_factory=list)
    fail: int = 0

    def __call__(self, order: Order) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("mail server down")
        self.sent.append(order.id)


RECEIPTS = Receipts()
SENDER = f"{__name__}.RECEIPTS"


@pytest.fixture(scope="module")
def django_configured() -> None:
    if not settings.configured:
        from examples.django_shop import settings as shop_settings

        values = {name: getattr(shop_settings, name) for name in dir(shop_settings)}
        values = {name: value for name, value in values.items() if name.isupper()}
        settings.configure(**{**values, "ALLOWED_HOSTS": ["testserver"]})
        django.setup()
    elif "examples.django_shop" not in settings.INSTALLED_APPS:
        pytest.skip("Django was configured by another test module without the example shop")


@dataclass
class Shop:
    client: Client
    gateway: paygate.Gateway
    fake: FakeProvider
    receipts: Receipts

    def deliver(self, delivery: WebhookDelivery) -> Any:
        return self.client.post(
            "/shop/webhooks/paygate/",
            data=delivery.body,
            content_type=delivery.headers.get("Content-Type", "application/json"),
            headers={k: v for k, v in delivery.headers.items() if k != "Content-Type"},
        )

    def csrf_token(self, path: str) -> str:
        page = self.client.get(path)
        assert page.status_code == 200
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text(page))
        assert match is not None, f"no CSRF token on {path}"
        return match.group(1)

    def buy(self, sku: str = "tee", quantity: int = 1) -> tuple[str, str]:
        token = self.csrf_token("/shop/")
        response = self.client.post(
            "/shop/checkout/",
            {"sku": sku, "quantity": str(quantity), "csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302, text(response)
        session_url = response["Location"]
        session_id = session_url.rsplit("/", 1)[-1]
        session = self.fake.get_checkout_session(session_id)
        assert session.url == session_url
        assert session.order_id is not None
        return session.order_id, session_id

    def page(self, order_id: str) -> str:
        response = self.client.get(f"/shop/orders/{order_id}/")
        assert response.status_code == 200
        return text(response)

    def refund(self, order_id: str) -> Any:
        token = self.csrf_token(f"/shop/orders/{order_id}/")
        return self.client.post(f"/shop/orders/{order_id}/refund/", {"csrfmiddlewaretoken": token})


def text(response: Any) -> str:
    return str(response.content.decode("utf-8"))


def field_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match is not None, f"no #{element_id} on the page"
    return match.group(1)


def history_of(html: str) -> list[list[str]]:
    table = html.split('id="history"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>(.*?)</td></tr>", table)
    return [row.split("</td><td>") for row in rows]


def _shop_settings(tmp_path: Path, **paygate_config: Any) -> dict[str, Any]:
    return {
        "PAYGATE": {
            "provider": "fake",
            "store": f"sqlite:///{tmp_path / 'paygate.db'}",
            **paygate_config,
        },
        "SHOP_DB_PATH": str(tmp_path / "shop.db"),
        "SHOP_RECEIPT_SENDER": SENDER,
    }


@pytest.fixture
def shop(django_configured: None, tmp_path: Path) -> Iterator[Shop]:
    from examples.django_shop import shop as shop_module
    from examples.django_shop.shop import get_shop

    RECEIPTS.sent.clear()
    RECEIPTS.fail = 0
    with override_settings(**_shop_settings(tmp_path)):
        services = get_shop()
        assert get_shop() is services  # built once per configuration
        assert isinstance(services.gateway.provider, FakeProvider)
        yield Shop(
            Client(enforce_csrf_checks=True),
            services.gateway,
            services.gateway.provider,
            RECEIPTS,
        )
    # leaving override_settings dropped (and closed) the test's shop; the next use rebuilds
    assert shop_module._shop is None


def test_purchase_return_first_then_each_webhook_twice_then_refund(shop: Shop) -> None:
    order_id, session_id = shop.buy("tee", 2)
    page = shop.page(order_id)
    assert field_of(page, "total") == "39.98 USD"
    assert field_of(page, "order-status") == "pending"

    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    returned = shop.client.get(f"/shop/orders/{order_id}/return/", {"session_id": session_id})
    assert returned.status_code == 200
    assert field_of(text(returned), "payment-status") == "succeeded"

    deliveries = shop.fake.take_webhooks()
    assert deliveries
    for delivery in deliveries:
        response = shop.deliver(delivery)
        assert response.status_code == 200, response.content
        assert response.json() == {"received": True, "duplicate": False}
    for delivery in deliveries:
        response = shop.deliver(shop.fake.redeliver(delivery))
        assert response.status_code == 200
        assert response.json() == {"received": True, "duplicate": True}

    assert shop.receipts.sent == [order_id]
    page = shop.page(order_id)
    assert field_of(page, "order-status") == "paid"
    assert "succeeded" in [row[2] for row in history_of(page)]
    assert len(shop.fake.payments()) == 1

    refunded = shop.refund(order_id)
    assert refunded.status_code == 302
    assert refunded["Location"] == f"/shop/orders/{order_id}/"
    for delivery in shop.fake.take_webhooks():
        assert shop.deliver(delivery).status_code == 200
    page = shop.page(order_id)
    assert field_of(page, "payment-status") == "refunded"
    assert history_of(page)[-1][2] == "refunded"
    assert shop.receipts.sent == [order_id]


def test_csrf_protects_every_form_but_not_the_webhook(shop: Shop) -> None:
    no_token = shop.client.post("/shop/checkout/", {"sku": "tee", "quantity": "1"})
    assert no_token.status_code == 403
    order_id, session_id = shop.buy()
    assert shop.client.post(f"/shop/orders/{order_id}/refund/").status_code == 403
    # the webhook has no token, only its signature, and is accepted
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    for delivery in shop.fake.take_webhooks():
        assert shop.deliver(delivery).status_code == 200
    assert shop.receipts.sent == [order_id]


def test_webhooks_out_of_order_before_the_return_fulfil_once(shop: Shop) -> None:
    order_id, session_id = shop.buy("mug", 1)
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    deliveries = shop.fake.take_webhooks()
    assert len(deliveries) >= 2
    for delivery in reversed(deliveries):
        assert shop.deliver(delivery).status_code == 200
    assert shop.receipts.sent == [order_id]
    returned = shop.client.get(f"/shop/orders/{order_id}/return/", {"session_id": session_id})
    assert field_of(text(returned), "order-status") == "paid"
    assert field_of(text(returned), "payment-status") == "succeeded"
    for delivery in deliveries:
        assert shop.deliver(shop.fake.redeliver(delivery)).json()["duplicate"] is True
    assert shop.receipts.sent == [order_id]


def test_the_return_trusts_the_provider_and_cancel_keeps_the_order(shop: Shop) -> None:
    order_id, session_id = shop.buy()
    lying = shop.client.get(
        f"/shop/orders/{order_id}/return/",
        {"session_id": session_id, "redirect_status": "succeeded"},
    )
    assert lying.status_code == 200
    assert "Your payment is not confirmed yet." in text(lying)
    assert field_of(text(lying), "order-status") == "pending"
    assert field_of(text(lying), "payment-status") == "no payment yet"
    canceled = shop.client.get(f"/shop/orders/{order_id}/cancel/")
    assert canceled.status_code == 200
    assert "still open" in text(canceled)
    assert field_of(text(canceled), "order-status") == "pending"
    assert shop.client.get("/shop/orders/ord_nope/").status_code == 404
    assert shop.receipts.sent == []

    _, other_session = shop.buy()
    shop.fake.complete_checkout(other_session, payment_method="tok_visa")
    swapped = shop.client.get(f"/shop/orders/{order_id}/return/", {"session_id": other_session})
    assert swapped.status_code == 400
    assert "not for this order" in text(swapped)


def test_forged_webhooks_get_400_without_details_and_change_nothing(shop: Shop) -> None:
    order_id, session_id = shop.buy()
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    deliveries = shop.fake.take_webhooks()
    genuine = deliveries[0]
    tampered = genuine.body.replace(b'"livemode":false', b'"livemode":true')
    assert tampered != genuine.body
    responses = [
        shop.deliver(WebhookDelivery(tampered, genuine.headers)),
        shop.deliver(WebhookDelivery(genuine.body, {"Content-Type": "application/json"})),
        shop.deliver(FakeProvider(webhook_secret="whsec_somebody_else").sign_webhook(genuine.body)),
    ]
    for response in responses:
        assert response.status_code == 400
        assert response.json() == {"error": "invalid webhook"}
    assert shop.receipts.sent == []
    for delivery in deliveries:
        assert shop.deliver(delivery).json() == {"received": True, "duplicate": False}
    assert shop.receipts.sent == [order_id]


def test_a_failing_handler_is_retried_from_the_outbox_and_fulfils_once(shop: Shop) -> None:
    order_id, session_id = shop.buy()
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    shop.receipts.fail = 1
    deliveries = shop.fake.take_webhooks()
    # the payment.succeeded fact is durable once recorded: no delivery fails for its handler
    assert {shop.deliver(delivery).status_code for delivery in deliveries} == {200}
    assert shop.receipts.sent == []
    assert field_of(shop.page(order_id), "order-status") == "pending"
    (pending,) = shop.gateway.pending_facts()
    assert pending.type is EventType.PAYMENT_SUCCEEDED and pending.last_error is not None
    for delivery in deliveries:  # redeliveries are duplicates: the fact is known
        again = shop.deliver(shop.fake.redeliver(delivery))
        assert again.json() == {"received": True, "duplicate": True}
    assert shop.receipts.sent == []
    # a cron (or the next gateway call after the backoff) retries it: fulfilled, once
    assert shop.gateway.dispatch_pending().done == 1
    assert shop.receipts.sent == [order_id]
    assert field_of(shop.page(order_id), "order-status") == "paid"


def test_a_redelivery_while_the_handler_runs_is_a_duplicate_and_fulfils_once(
    shop: Shop,
) -> None:
    order_id, session_id = shop.buy()
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    deliveries = shop.fake.take_webhooks()
    (succeeded,) = [d for d in deliveries if b'"payment.succeeded"' in d.body]
    inner: list[Any] = []

    @shop.gateway.on(EventType.PAYMENT_SUCCEEDED)
    def provider_retries_meanwhile(event: Any) -> None:
        # the provider's retry reaches the shop while the fact's handlers run
        if not inner:
            inner.append(shop.deliver(shop.fake.redeliver(succeeded)))

    for delivery in deliveries:
        assert shop.deliver(delivery).status_code == 200
    (busy,) = inner
    # the event was finished with the transaction that recorded the fact: a duplicate
    assert busy.status_code == 200
    assert busy.json() == {"received": True, "duplicate": True}
    assert shop.receipts.sent == [order_id]
    assert field_of(shop.page(order_id), "order-status") == "paid"


def test_configured_from_the_environment_and_no_secret_is_ever_shown(
    django_configured: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from examples.django_shop.shop import get_shop

    secret = "whsec_from_the_environment_only_93ae"
    monkeypatch.setenv("PAYGATE_PROVIDER", "fake")
    monkeypatch.setenv("PAYGATE_STORE_URL", f"sqlite:///{tmp_path / 'paygate.db'}")
    monkeypatch.setenv("PAYGATE_FAKE_WEBHOOK_SECRET", secret)
    caplog.set_level(logging.DEBUG)
    RECEIPTS.sent.clear()
    RECEIPTS.fail = 0
    # PAYGATE = None (the settings.py default): Gateway.from_env()
    with override_settings(**{**_shop_settings(tmp_path), "PAYGATE": None}):
        gateway = get_shop().gateway
        assert isinstance(gateway.provider, FakeProvider)
        shop = Shop(Client(enforce_csrf_checks=True), gateway, gateway.provider, RECEIPTS)
        texts: list[str] = []
        order_id, session_id = shop.buy()
        shop.fake.complete_checkout(session_id, payment_method="tok_visa")
        texts.append(
            text(shop.client.get(f"/shop/orders/{order_id}/return/", {"session_id": session_id}))
        )
        deliveries = shop.fake.take_webhooks()
        assert secret != DEFAULT_WEBHOOK_SECRET
        assert shop.deliver(FakeProvider().sign_webhook(deliveries[0].body)).status_code == 400
        for delivery in deliveries:
            response = shop.deliver(delivery)
            assert response.status_code == 200
            texts.append(text(response))
        texts.append(text(shop.refund(order_id)))
        texts.append(shop.page(order_id))
        assert RECEIPTS.sent == [order_id]
    assert caplog.records
    for shown in [
        caplog.text,
        *texts,
        *(json.dumps(record.__dict__, default=str) for record in caplog.records),
    ]:
        assert secret not in shown


def test_only_the_webhook_view_is_csrf_exempt(django_configured: None) -> None:
    from examples.django_shop import urls

    exempt = {
        pattern.name
        for pattern in urls.urlpatterns
        if getattr(pattern.callback, "csrf_exempt", False)
    }
    assert exempt == {"webhook"}
    assert len(urls.urlpatterns) == 7
