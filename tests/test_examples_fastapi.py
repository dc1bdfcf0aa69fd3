"""The FastAPI example shop, end to end on the fake provider with Starlette's TestClient."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx2")  # the TestClient's transport (plain httpx is deprecated there)
pytest.importorskip("paygate.gateway", reason="the Gateway (issue 3) has not landed yet")

from examples.fastapi_shop import create_app
from examples.fastapi_shop.orders import Order
from fastapi.testclient import TestClient

import paygate
from paygate import EventType, WebhookDelivery
from paygate.providers.fake import DEFAULT_WEBHOOK_SECRET, AsyncFakeProvider, FakeProvider


@dataclass
class Receipts:
    """The shop's receipt sender, recording what it sent; ``fail`` makes it raise.

    It also notes whether it was called on a thread running an event loop: the shop's
    AsyncGateway runs its handlers on the event loop (no thread pool).
    """

    sent: list[str] = field(default_factory=list)
    fail: int = 0
    called_on_event_loop: bool = False

    def __call__(self, order: Order) -> None:
        try:
            asyncio.get_running_loop()
            self.called_on_event_loop = True
        except RuntimeError:
            pass
        if self.fail:
            self.fail -= 1
            raise RuntimeError("mail server down")
        self.sent.append(order.id)


@dataclass
class Shop:
    client: TestClient
    gateway: paygate.AsyncGateway
    fake: FakeProvider
    receipts: Receipts

    def deliver(self, delivery: WebhookDelivery) -> Any:
        return self.client.post(
            "/webhooks/paygate", content=delivery.body, headers=delivery.headers
        )

    def order(self, sku: str = "tee", quantity: int = 1) -> str:
        response = self.client.post("/orders", json={"sku": sku, "quantity": quantity})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["status"] == "pending"
        assert body["payment_status"] is None
        return str(body["order_id"])

    def buy(self, sku: str = "tee", quantity: int = 1) -> tuple[str, str]:
        """Order and check out; returns (order id, checkout session id)."""
        order_id = self.order(sku, quantity)
        response = self.client.post(f"/orders/{order_id}/checkout", follow_redirects=False)
        assert response.status_code == 303, response.text
        session_url = response.headers["location"]
        session_id = session_url.rsplit("/", 1)[-1]
        session = self.fake.get_checkout_session(session_id)
        assert session.url == session_url
        assert session.order_id == order_id
        return order_id, session_id

    def view(self, order_id: str) -> dict[str, Any]:
        response = self.client.get(f"/orders/{order_id}")
        assert response.status_code == 200
        return dict(response.json())


def make_shop(tmp_path: Path, receipts: Receipts) -> Shop:
    fake = FakeProvider()
    gateway = paygate.connect_async(fake, store=f"sqlite:///{tmp_path / 'paygate.db'}")
    app = create_app(gateway, db_path=tmp_path / "shop.db", send_receipt=receipts)
    return Shop(TestClient(app), gateway, fake, receipts)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    shop = make_shop(tmp_path, Receipts())
    yield shop
    shop.client.close()
    asyncio.run(shop.gateway.aclose())


def test_purchase_return_first_then_each_webhook_twice_then_refund(shop: Shop) -> None:
    order_id, session_id = shop.buy("tee", 2)
    assert shop.view(order_id)["total"] == "39.98 USD"
    # a second click on "pay" opens the same checkout session, not a second one
    again = shop.client.post(f"/orders/{order_id}/checkout", follow_redirects=False)
    assert again.headers["location"].rsplit("/", 1)[-1] == session_id

    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    returned = shop.client.get(f"/orders/{order_id}/return", params={"session_id": session_id})
    assert returned.status_code == 200
    assert returned.json()["confirmed"] is True
    assert returned.json()["payment_status"] == "succeeded"

    deliveries = shop.fake.take_webhooks()
    assert deliveries
    for delivery in deliveries:
        response = shop.deliver(delivery)
        assert response.status_code == 200, response.text
        assert response.json() == {"received": True, "duplicate": False}
    for delivery in deliveries:
        response = shop.deliver(shop.fake.redeliver(delivery))
        assert response.status_code == 200
        assert response.json() == {"received": True, "duplicate": True}

    assert shop.receipts.sent == [order_id]
    assert shop.receipts.called_on_event_loop is True  # awaited on the loop, no thread pool
    view = shop.view(order_id)
    assert view["status"] == "paid"
    assert view["payment_status"] == "succeeded"
    assert "succeeded" in [step["to"] for step in view["history"]]
    assert len(shop.fake.payments()) == 1

    refunded = shop.client.post(f"/orders/{order_id}/refund")
    assert refunded.status_code == 200
    assert refunded.json()["payment_status"] == "refunded"
    for delivery in shop.fake.take_webhooks():
        assert shop.deliver(delivery).status_code == 200
    view = shop.view(order_id)
    assert view["payment_status"] == "refunded"
    assert view["history"][-1]["to"] == "refunded"
    assert shop.receipts.sent == [order_id]
    assert shop.client.post(f"/orders/{order_id}/refund").status_code == 409


def test_webhooks_out_of_order_before_the_return_fulfil_once(shop: Shop) -> None:
    order_id, session_id = shop.buy("mug", 3)
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    deliveries = shop.fake.take_webhooks()
    assert len(deliveries) >= 2
    for delivery in reversed(deliveries):
        assert shop.deliver(delivery).status_code == 200
    assert shop.receipts.sent == [order_id]

    returned = shop.client.get(f"/orders/{order_id}/return", params={"session_id": session_id})
    assert returned.json()["status"] == "paid"
    assert returned.json()["payment_status"] == "succeeded"
    for delivery in deliveries:
        assert shop.deliver(shop.fake.redeliver(delivery)).json()["duplicate"] is True
    assert shop.receipts.sent == [order_id]


def test_direct_payment_with_3d_secure_and_a_decline(shop: Shop) -> None:
    declined_order = shop.order()
    declined = shop.client.post(
        f"/orders/{declined_order}/pay", json={"payment_method": "tok_insufficient_funds"}
    )
    assert declined.status_code == 402
    assert declined.json() == {"detail": "payment refused: CardDeclined"}

    order_id = shop.order("mug")
    paying = shop.client.post(f"/orders/{order_id}/pay", json={"payment_method": "tok_3ds"})
    assert paying.status_code == 200
    body = paying.json()
    assert body["payment_status"] == "requires_action"
    assert body["redirect_url"]
    payment_id = body["redirect_url"].rsplit("/", 1)[-1]

    shop.fake.authenticate(payment_id)  # the customer passes 3-D Secure and comes back
    returned = shop.client.get(f"/orders/{order_id}/return", params={"payment_id": payment_id})
    assert returned.json()["payment_status"] == "succeeded"
    for delivery in shop.fake.take_webhooks():
        assert shop.deliver(delivery).status_code == 200
    assert shop.receipts.sent == [order_id]  # the declined order got nothing
    assert shop.view(declined_order)["status"] == "pending"
    assert shop.view(order_id)["status"] == "paid"


def test_the_return_trusts_the_provider_not_the_query_string(shop: Shop) -> None:
    order_id, session_id = shop.buy()
    response = shop.client.get(
        f"/orders/{order_id}/return",
        params={"session_id": session_id, "redirect_status": "succeeded"},
    )
    assert response.status_code == 200
    assert response.json()["confirmed"] is False
    assert response.json()["status"] == "pending"
    assert response.json()["payment_status"] is None

    other_id, other_session = shop.buy()
    shop.fake.complete_checkout(other_session, payment_method="tok_visa")
    swapped = shop.client.get(f"/orders/{order_id}/return", params={"session_id": other_session})
    assert swapped.status_code == 400
    assert swapped.json() == {"detail": "that payment is not for this order"}
    assert shop.view(order_id)["payment_status"] is None
    assert shop.view(other_id)["payment_status"] == "succeeded"


def test_cancel_leaves_the_order_pending(shop: Shop) -> None:
    order_id, session_id = shop.buy()
    response = shop.client.get(f"/orders/{order_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert shop.receipts.sent == []
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    for delivery in shop.fake.take_webhooks():
        assert shop.deliver(delivery).status_code == 200
    assert shop.view(order_id)["status"] == "paid"


def test_forged_webhooks_get_400_without_details_and_change_nothing(shop: Shop) -> None:
    order_id, session_id = shop.buy()
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    deliveries = shop.fake.take_webhooks()
    genuine = deliveries[0]
    tampered = genuine.body.replace(b'"livemode":false', b'"livemode":true')
    assert tampered != genuine.body
    responses = [
        shop.client.post("/webhooks/paygate", content=tampered, headers=genuine.headers),
        shop.client.post("/webhooks/paygate", content=genuine.body),
        shop.deliver(FakeProvider(webhook_secret="whsec_somebody_else").sign_webhook(genuine.body)),
        # what a JSON-parsing framework would hand on: same data, different bytes
        shop.client.post(
            "/webhooks/paygate",
            content=json.dumps(json.loads(genuine.body), indent=1).encode(),
            headers=genuine.headers,
        ),
    ]
    for response in responses:
        assert response.status_code == 400
        assert response.json() == {"error": "invalid webhook"}
    assert shop.receipts.sent == []
    assert shop.view(order_id)["status"] == "pending"

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
    assert shop.view(order_id)["status"] == "pending"
    (pending,) = asyncio.run(shop.gateway.pending_facts())
    assert pending.type is EventType.PAYMENT_SUCCEEDED and pending.last_error is not None
    for delivery in deliveries:  # redeliveries are duplicates: the fact is known
        again = shop.deliver(shop.fake.redeliver(delivery))
        assert again.json() == {"received": True, "duplicate": True}
    assert shop.receipts.sent == []
    # a cron (or the next gateway call after the backoff) retries it: fulfilled, once
    assert asyncio.run(shop.gateway.dispatch_pending()).done == 1
    assert shop.receipts.sent == [order_id]
    assert shop.view(order_id)["status"] == "paid"


def test_a_redelivery_while_the_handler_runs_is_a_duplicate_and_fulfils_once(
    shop: Shop,
) -> None:
    order_id, session_id = shop.buy()
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    deliveries = shop.fake.take_webhooks()
    (succeeded,) = [d for d in deliveries if b'"payment.succeeded"' in d.body]
    inner: list[Any] = []

    @shop.gateway.on(EventType.PAYMENT_SUCCEEDED)
    async def provider_retries_meanwhile(event: Any) -> None:
        # the provider's retry reaches the shop while the fact's handlers run: on the
        # same event loop (the handler runs there), through the app's ASGI interface
        if not inner:
            again = shop.fake.redeliver(succeeded)
            transport = httpx.ASGITransport(app=shop.client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
                inner.append(await client.post("/webhooks/paygate", content=again.body,
                                               headers=again.headers))  # fmt: skip

    for delivery in deliveries:
        assert shop.deliver(delivery).status_code == 200
    (busy,) = inner
    # the event was finished with the transaction that recorded the fact: a duplicate
    assert busy.status_code == 200
    assert busy.json() == {"received": True, "duplicate": True}
    assert shop.receipts.sent == [order_id]
    assert shop.view(order_id)["status"] == "paid"


def test_configured_from_the_environment_and_no_secret_is_ever_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "whsec_from_the_environment_only_51c0"
    monkeypatch.setenv("PAYGATE_PROVIDER", "fake")
    monkeypatch.setenv("PAYGATE_STORE_URL", f"sqlite:///{tmp_path / 'paygate.db'}")
    monkeypatch.setenv("PAYGATE_FAKE_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("SHOP_DB", str(tmp_path / "shop.db"))
    caplog.set_level(logging.DEBUG)

    receipts = Receipts()
    app = create_app(send_receipt=receipts)
    gateway = app.state.gateway
    assert isinstance(gateway.provider, AsyncFakeProvider)
    shop = Shop(TestClient(app), gateway, gateway.provider.engine, receipts)
    bodies: list[str] = []
    try:
        order_id, session_id = shop.buy()
        shop.fake.complete_checkout(session_id, payment_method="tok_visa")
        bodies.append(
            shop.client.get(f"/orders/{order_id}/return", params={"session_id": session_id}).text
        )
        deliveries = shop.fake.take_webhooks()
        assert secret != DEFAULT_WEBHOOK_SECRET
        assert shop.deliver(FakeProvider().sign_webhook(deliveries[0].body)).status_code == 400
        for delivery in deliveries:
            response = shop.deliver(delivery)
            assert response.status_code == 200
            bodies.append(response.text)
        bodies.append(shop.client.post(f"/orders/{order_id}/refund").text)
        bodies.append(shop.client.get("/openapi.json").text)
        assert receipts.sent == [order_id]
        assert (tmp_path / "shop.db").is_file()
    finally:
        shop.client.close()
        asyncio.run(gateway.aclose())
    assert caplog.records
    for text in [
        caplog.text,
        *bodies,
        *(json.dumps(record.__dict__, default=str) for record in caplog.records),
    ]:
        assert secret not in text


def test_every_shop_route_is_async(shop: Shop) -> None:
    from fastapi.routing import APIRoute

    routes = [route for route in shop.client.app.routes if isinstance(route, APIRoute)]
    assert {route.path for route in routes} >= {
        "/orders",
        "/orders/{order_id}/checkout",
        "/orders/{order_id}/pay",
        "/orders/{order_id}/return",
        "/orders/{order_id}/cancel",
        "/orders/{order_id}",
        "/orders/{order_id}/refund",
        "/webhooks/paygate",
    }
    assert [route.path for route in routes if not inspect.iscoroutinefunction(route.endpoint)] == []
