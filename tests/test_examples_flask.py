"""The Flask example shop, end to end on the fake provider with Flask's own test client."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("paygate.gateway", reason="the Gateway (issue 3) has not landed yet")

from examples.flask_shop import create_app
from examples.flask_shop.orders import Order, OrderBook
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import paygate
from paygate import EventType, Money, WebhookDelivery
from paygate.providers.fake import DEFAULT_WEBHOOK_SECRET, FakeProvider


@dataclass
class Receipts:
    """The shop's receipt sender, recording what it sent; ``fail`` makes it raise."""

    sent: list[str] = field(default_factory=list)
    fail: int = 0

    def __call__(self, order: Order) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("mail server down")
        self.sent.append(order.id)


@dataclass
class Shop:
    client: FlaskClient
    gateway: paygate.Gateway
    fake: FakeProvider
    receipts: Receipts

    def deliver(self, delivery: WebhookDelivery) -> TestResponse:
        return self.client.post("/webhooks/paygate", data=delivery.body, headers=delivery.headers)

    def buy(self, sku: str = "tee", quantity: int = 1) -> tuple[str, str]:
        """Check out; returns (order id, checkout session id)."""
        response = self.client.post("/checkout", data={"sku": sku, "quantity": str(quantity)})
        assert response.status_code == 303, response.text
        session_url = response.headers["Location"]
        session_id = session_url.rsplit("/", 1)[-1]
        session = self.fake.get_checkout_session(session_id)
        assert session.url == session_url
        assert session.order_id is not None
        return session.order_id, session_id

    def page(self, order_id: str) -> str:
        response = self.client.get(f"/orders/{order_id}")
        assert response.status_code == 200
        return response.text


def field_of(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match is not None, f"no #{element_id} on the page"
    return match.group(1)


def history_of(html: str) -> list[list[str]]:
    table = html.split('id="history"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>(.*?)</td></tr>", table)
    return [row.split("</td><td>") for row in rows]


def make_shop(tmp_path: Path, receipts: Receipts, **fake_settings: Any) -> Shop:
    fake = FakeProvider(**fake_settings)
    gateway = paygate.connect(fake, store=f"sqlite:///{tmp_path / 'paygate.db'}")
    app = create_app(gateway, db_path=tmp_path / "shop.db", send_receipt=receipts)
    return Shop(app.test_client(), gateway, fake, receipts)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    shop = make_shop(tmp_path, Receipts())
    yield shop
    shop.gateway.close()


def test_purchase_return_first_then_each_webhook_twice_then_refund(shop: Shop) -> None:
    order_id, session_id = shop.buy("tee", 2)
    page = shop.page(order_id)
    assert field_of(page, "total") == "39.98 USD"
    assert field_of(page, "order-status") == "pending"
    assert field_of(page, "payment-status") == "no payment yet"

    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    # the customer comes back first; a status word in the query string is not believed
    returned = shop.client.get(
        f"/orders/{order_id}/return", query_string={"session_id": session_id}
    )
    assert returned.status_code == 200
    assert field_of(returned.text, "payment-status") == "succeeded"
    assert "Payment succeeded." in returned.text

    deliveries = shop.fake.take_webhooks()
    assert deliveries
    for delivery in deliveries:
        response = shop.deliver(delivery)
        assert response.status_code == 200, response.text
        assert response.json == {"received": True, "duplicate": False}
    for delivery in deliveries:  # the provider retries every one of them
        response = shop.deliver(shop.fake.redeliver(delivery))
        assert response.status_code == 200
        assert response.json == {"received": True, "duplicate": True}

    assert shop.receipts.sent == [order_id]
    page = shop.page(order_id)
    assert field_of(page, "order-status") == "paid"
    assert field_of(page, "payment-status") == "succeeded"
    assert "succeeded" in [row[2] for row in history_of(page)]
    assert len(shop.fake.payments()) == 1  # charged once

    refunded = shop.client.post(f"/orders/{order_id}/refund")
    assert refunded.status_code == 303
    assert refunded.headers["Location"].endswith(f"/orders/{order_id}")
    for delivery in shop.fake.take_webhooks():
        assert shop.deliver(delivery).status_code == 200
    page = shop.page(order_id)
    assert field_of(page, "payment-status") == "refunded"
    history = history_of(page)
    assert [row[2] for row in history][-1] == "refunded"
    assert shop.receipts.sent == [order_id]  # a refund sends no second receipt
    # nothing left to refund: refused with a message, not a crash
    again = shop.client.post(f"/orders/{order_id}/refund")
    assert again.status_code == 409


def test_webhooks_out_of_order_before_the_return_fulfil_once(shop: Shop) -> None:
    order_id, session_id = shop.buy("mug", 1)
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    deliveries = shop.fake.take_webhooks()
    assert len(deliveries) >= 2
    for delivery in reversed(deliveries):  # newest first
        assert shop.deliver(delivery).status_code == 200
    assert shop.receipts.sent == [order_id]
    assert field_of(shop.page(order_id), "order-status") == "paid"

    returned = shop.client.get(
        f"/orders/{order_id}/return", query_string={"session_id": session_id}
    )
    assert field_of(returned.text, "payment-status") == "succeeded"
    assert field_of(returned.text, "order-status") == "paid"
    for delivery in deliveries:
        assert shop.deliver(shop.fake.redeliver(delivery)).json["duplicate"] is True
    assert shop.receipts.sent == [order_id]


def test_the_return_page_trusts_the_provider_not_the_query_string(shop: Shop) -> None:
    order_id, session_id = shop.buy()
    # back before paying, claiming success: the provider says the session is unpaid
    response = shop.client.get(
        f"/orders/{order_id}/return",
        query_string={"session_id": session_id, "redirect_status": "succeeded"},
    )
    assert response.status_code == 200
    assert "Your payment is not confirmed yet." in response.text
    assert field_of(response.text, "order-status") == "pending"
    assert field_of(response.text, "payment-status") == "no payment yet"
    assert shop.receipts.sent == []

    # a paid session's id under another order's URL is refused
    other_id, other_session = shop.buy()
    shop.fake.complete_checkout(other_session, payment_method="tok_visa")
    swapped = shop.client.get(
        f"/orders/{order_id}/return", query_string={"session_id": other_session}
    )
    assert swapped.status_code == 400
    assert "not for this order" in swapped.text
    assert field_of(swapped.text, "payment-status") == "no payment yet"
    assert other_id != order_id


def test_cancel_leaves_the_order_pending_and_payable(shop: Shop) -> None:
    order_id, session_id = shop.buy()
    response = shop.client.get(f"/orders/{order_id}/cancel")
    assert response.status_code == 200
    assert "still open" in response.text
    assert field_of(response.text, "order-status") == "pending"
    assert shop.receipts.sent == []
    # the customer changes their mind: the same checkout can still be paid
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    for delivery in shop.fake.take_webhooks():
        assert shop.deliver(delivery).status_code == 200
    assert field_of(shop.page(order_id), "order-status") == "paid"


def test_forged_webhooks_get_400_without_details_and_change_nothing(shop: Shop) -> None:
    order_id, session_id = shop.buy()
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    deliveries = shop.fake.take_webhooks()
    genuine = deliveries[0]

    tampered = genuine.body.replace(b'"livemode":false', b'"livemode":true')
    assert tampered != genuine.body
    forged_body = shop.client.post("/webhooks/paygate", data=tampered, headers=genuine.headers)
    unsigned = shop.client.post(
        "/webhooks/paygate", data=genuine.body, headers={"Content-Type": "application/json"}
    )
    other_secret = FakeProvider(webhook_secret="whsec_somebody_else").sign_webhook(genuine.body)
    wrong_secret = shop.deliver(other_secret)
    for response in (forged_body, unsigned, wrong_secret):
        assert response.status_code == 400
        assert response.json == {"error": "invalid webhook"}  # no hint of what failed
    assert shop.receipts.sent == []
    assert field_of(shop.page(order_id), "order-status") == "pending"

    # the genuine deliveries are still processed normally afterwards
    for delivery in deliveries:
        assert shop.deliver(delivery).json == {"received": True, "duplicate": False}
    assert shop.receipts.sent == [order_id]


def test_a_failing_handler_is_retried_from_the_outbox_and_fulfils_once(shop: Shop) -> None:
    order_id, session_id = shop.buy()
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    shop.receipts.fail = 1
    deliveries = shop.fake.take_webhooks()
    # the payment.succeeded fact is durable once recorded: no delivery fails for its handler
    assert [shop.deliver(delivery).status_code for delivery in deliveries] == [200] * len(
        deliveries
    )
    assert shop.receipts.sent == []
    assert field_of(shop.page(order_id), "order-status") == "pending"  # rolled back
    (pending,) = shop.gateway.pending_facts()
    assert pending.type is EventType.PAYMENT_SUCCEEDED and pending.attempts == 1
    assert pending.last_error is not None

    # redeliveries are duplicates: the fact is known, and waits in the outbox
    for delivery in deliveries:
        again = shop.deliver(shop.fake.redeliver(delivery))
        assert again.json == {"received": True, "duplicate": True}
    assert shop.receipts.sent == []
    # a cron (or the next gateway call after the backoff) retries it: fulfilled, once
    summary = shop.gateway.dispatch_pending()
    assert (summary.done, summary.failed) == (1, 0)
    assert shop.receipts.sent == [order_id]
    assert field_of(shop.page(order_id), "order-status") == "paid"
    assert shop.gateway.dispatch_pending().done == 0 and shop.receipts.sent == [order_id]


def test_a_redelivery_while_the_handler_runs_is_a_duplicate_and_fulfils_once(
    shop: Shop,
) -> None:
    order_id, session_id = shop.buy()
    shop.fake.complete_checkout(session_id, payment_method="tok_visa")
    deliveries = shop.fake.take_webhooks()
    (succeeded,) = [d for d in deliveries if b'"payment.succeeded"' in d.body]
    inner: list[TestResponse] = []

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
    assert busy.json == {"received": True, "duplicate": True}
    assert shop.receipts.sent == [order_id]
    assert field_of(shop.page(order_id), "order-status") == "paid"


def test_configured_from_the_environment_and_no_secret_is_ever_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "whsec_from_the_environment_only_8d1f"
    monkeypatch.setenv("PAYGATE_PROVIDER", "fake")
    monkeypatch.setenv("PAYGATE_STORE_URL", f"sqlite:///{tmp_path / 'paygate.db'}")
    monkeypatch.setenv("PAYGATE_FAKE_WEBHOOK_SECRET", secret)
    monkeypatch.setenv("SHOP_DB", str(tmp_path / "shop.db"))
    caplog.set_level(logging.DEBUG)

    receipts = Receipts()
    app = create_app(send_receipt=receipts)  # no gateway given: Gateway.from_env()
    gateway = app.extensions["paygate"]
    assert isinstance(gateway.provider, FakeProvider)
    shop = Shop(app.test_client(), gateway, gateway.provider, receipts)
    try:
        pages = [shop.client.get("/").text]
        order_id, session_id = shop.buy()
        shop.fake.complete_checkout(session_id, payment_method="tok_visa")
        pages.append(
            shop.client.get(
                f"/orders/{order_id}/return", query_string={"session_id": session_id}
            ).text
        )
        deliveries = shop.fake.take_webhooks()
        # signed with the fake's default secret, not the configured one: refused
        default_signed = FakeProvider().sign_webhook(deliveries[0].body)
        assert secret != DEFAULT_WEBHOOK_SECRET
        assert shop.deliver(default_signed).status_code == 400
        for delivery in deliveries:
            response = shop.deliver(delivery)
            assert response.status_code == 200
            pages.append(response.text)
        shop.client.post(f"/orders/{order_id}/refund")
        pages.append(shop.page(order_id))
        assert receipts.sent == [order_id]
        assert Path(tmp_path / "shop.db").is_file()
    finally:
        gateway.close()
    assert caplog.records  # the run was logged ...
    for text in [
        caplog.text,
        *pages,
        *(json.dumps(r.__dict__, default=str) for r in caplog.records),
    ]:
        assert secret not in text  # ... without the secret


def test_the_order_book_fulfils_once_when_workers_race(tmp_path: Path) -> None:
    book = OrderBook(tmp_path / "shop.db")
    order = book.create("tee", 3, Money.of("59.97", "USD"))
    assert book.get(order.id) == order
    assert order.total == Money(5997, "USD")
    sent: list[Order] = []
    start = threading.Barrier(8)

    def worker(_: int) -> bool:
        start.wait()
        return book.fulfil(order.id, sent.append)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert results.count(True) == 1
    assert [receipt.id for receipt in sent] == [order.id]
    assert sent[0].status == "paid"
    stored = book.get(order.id)
    assert stored is not None and stored.status == "paid" and stored.paid_at is not None


def test_the_order_book_rolls_back_when_the_receipt_fails(tmp_path: Path) -> None:
    book = OrderBook(tmp_path / "shop.db")
    order = book.create("mug", 1, Money.of("8.50", "USD"))

    def broken(_: Order) -> None:
        raise ConnectionError("smtp down")

    with pytest.raises(ConnectionError):
        book.fulfil(order.id, broken)
    assert book.get(order.id) == order  # still pending, paid_at unset
    assert book.fulfil(order.id, lambda _: None) is True


def test_the_three_shops_share_one_order_book() -> None:
    # each example is self-contained on purpose (copy one and go); this keeps them in step
    examples = Path(__file__).resolve().parent.parent / "examples"
    copies = {
        (examples / shop / "orders.py").read_text(encoding="utf-8")
        for shop in ("flask_shop", "fastapi_shop", "django_shop")
    }
    assert len(copies) == 1


def test_a_payment_of_the_wrong_amount_does_not_fulfil_the_order(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    order_id, _ = shop.buy("tee", 1)  # 19.99 USD
    # somebody pays this order id, but not its total (a bug elsewhere, a tampered form)
    shop.gateway.create_payment(
        order_id=order_id, amount=Money.of("0.50", "USD"), payment_method="tok_visa"
    )
    with caplog.at_level(logging.ERROR, logger="examples.flask_shop"):
        for delivery in shop.fake.take_webhooks():
            assert shop.deliver(delivery).status_code == 200
    assert shop.receipts.sent == []
    page = shop.page(order_id)
    assert field_of(page, "order-status") == "pending"
    assert field_of(page, "payment-status") == "succeeded"
    assert f"order {order_id}: paid 0.50 USD, expected 19.99 USD" in caplog.text


def test_the_same_shop_runs_on_stripe_by_configuration_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No code change: PAYGATE_PROVIDER=stripe, Stripe's API mocked over HTTP (responses)."""
    responses = pytest.importorskip("responses")
    pytest.importorskip("stripe")
    from urllib.parse import parse_qsl

    from paygate.providers._stripe_webhook import sign as stripe_sign
    from tests.fixtures.stripe import event_body, resource

    api_url = "https://api.stripe.com/v1"
    webhook_secret = "whsec_stripe_shop_test"
    monkeypatch.setenv("PAYGATE_PROVIDER", "stripe")
    monkeypatch.setenv("PAYGATE_STORE_URL", f"sqlite:///{tmp_path / 'paygate.db'}")
    monkeypatch.setenv("PAYGATE_STRIPE_API_KEY", "sk_test_stripe_shop")
    monkeypatch.setenv("PAYGATE_STRIPE_WEBHOOK_SECRET", webhook_secret)
    monkeypatch.setenv("PAYGATE_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("SHOP_DB", str(tmp_path / "shop.db"))
    receipts = Receipts()
    app = create_app(send_receipt=receipts)
    client = app.test_client()
    gateway = app.extensions["paygate"]
    assert gateway.provider.name == "stripe"

    session_id, intent_id = "cs_test_shop_1", "pi_shop_1"
    created: dict[str, str] = {}

    def create_session(request: Any) -> tuple[int, dict[str, str], str]:
        form = dict(
            parse_qsl(request.body if isinstance(request.body, str) else request.body.decode())
        )
        created.update(form)
        session = resource(
            "checkout.session",
            id=session_id,
            url=f"https://checkout.stripe.com/c/pay/{session_id}",
            status="open",
            payment_intent=None,
            amount_total=3998,
            currency="usd",
            client_reference_id=form["client_reference_id"],
            metadata={"order_id": form["metadata[order_id]"]},
        )
        return 200, {}, json.dumps(session)

    def intent(order_id: str) -> dict[str, Any]:
        return resource(
            "payment_intent",
            id=intent_id,
            amount=3998,
            currency="usd",
            status="succeeded",
            amount_received=3998,
            amount_capturable=0,
            last_payment_error=None,
            next_action=None,
            metadata={"order_id": order_id},
        )

    def stripe_webhook(event_type: str, obj: dict[str, Any], event_id: str) -> WebhookDelivery:
        now = int(time.time())
        body = event_body(event_type, obj, event_id=event_id, created=now)
        return WebhookDelivery(
            body,
            {
                "Stripe-Signature": stripe_sign(body, webhook_secret, now),
                "Content-Type": "application/json",
            },
        )

    try:
        with responses.RequestsMock(assert_all_requests_are_fired=True) as api:
            api.add_callback(
                responses.POST, f"{api_url}/checkout/sessions", callback=create_session
            )
            response = client.post("/checkout", data={"sku": "tee", "quantity": "2"})
            assert response.status_code == 303
            assert response.headers["Location"] == f"https://checkout.stripe.com/c/pay/{session_id}"
            order_id = created["client_reference_id"]
            assert created["line_items[0][price_data][unit_amount]"] == "1999"
            assert created["line_items[0][quantity]"] == "2"

        # Stripe's webhook, signed with the configured secret, arrives twice
        paid = stripe_webhook("payment_intent.succeeded", intent(order_id), "evt_shop_paid")
        for duplicate in (False, True):
            answer = client.post("/webhooks/paygate", data=paid.body, headers=paid.headers)
            assert answer.status_code == 200
            assert answer.json == {"received": True, "duplicate": duplicate}
        assert receipts.sent == [order_id]
        forged = WebhookDelivery(paid.body.replace(b"3998", b"1"), paid.headers)
        assert (
            client.post("/webhooks/paygate", data=forged.body, headers=forged.headers).status_code
            == 400
        )

        # the customer comes back to the success_url exactly as Stripe redirects: with the
        # {CHECKOUT_SESSION_ID} template filled in where the URL has one. (The shop's URL
        # has none, so the return page falls back to what the webhook recorded.)
        back = created["success_url"].replace("{CHECKOUT_SESSION_ID}", session_id)
        assert back.startswith(f"http://localhost/orders/{order_id}/return")
        with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
            completed = resource(
                "checkout.session",
                id=session_id,
                status="complete",
                payment_intent=intent_id,
                amount_total=3998,
                currency="usd",
                client_reference_id=order_id,
                metadata={"order_id": order_id},
            )
            api.get(f"{api_url}/checkout/sessions/{session_id}", json=completed)
            api.get(f"{api_url}/payment_intents/{intent_id}", json=intent(order_id))
            returned = client.get(back)
            assert returned.status_code == 200
            assert field_of(returned.text, "payment-status") == "succeeded"
            assert field_of(returned.text, "order-status") == "paid"

        with responses.RequestsMock(assert_all_requests_are_fired=True) as api:
            refund = resource(
                "refund",
                id="re_shop_1",
                amount=3998,
                currency="usd",
                payment_intent=intent_id,
                status="succeeded",
            )
            api.post(f"{api_url}/refunds", json=refund)
            assert client.post(f"/orders/{order_id}/refund").status_code == 303
        assert field_of(shop_page(client, order_id), "payment-status") == "refunded"
        assert receipts.sent == [order_id]
    finally:
        gateway.close()


def shop_page(client: FlaskClient, order_id: str) -> str:
    response = client.get(f"/orders/{order_id}")
    assert response.status_code == 200
    return response.text
