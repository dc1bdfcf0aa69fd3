"""A real browser buys something in each example shop, against the sandbox.

Headless Chromium (driven through chromedriver by Selenium) clicks what a customer clicks:
the shop's catalogue → the sandbox's hosted Checkout page → a test card → the 3-D Secure
challenge for a card that asks for it → back to the shop. Meanwhile the sandbox delivers
its signed webhooks to the shop over HTTP, and the test waits until the shop has answered
each of them 2xx; the order shows paid; the refund button on the shop's order (admin) page
refunds it, and that webhook arrives too. A declined card stays on the hosted page with the
reason, and the way back leaves the order open.

Each shop runs in this process on a free 127.0.0.1 port (Flask and Django on werkzeug's
server, FastAPI on uvicorn), configured as a person runs it: no ``PAYGATE_PROVIDER``, only
``PAYGATE_SANDBOX_URL`` — the shop asks the sandbox for its settings
(:func:`paygate.sandbox.connect.gateway_from_env`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("werkzeug", reason="the sandbox needs the 'sandbox' extra")
pytest.importorskip("httpx", reason="the sandbox needs the 'sandbox' extra")

from paygate import Money
from paygate.sandbox import Sandbox
from tests.browser_support import ASGIServer, WSGIServer, chromium, wait_for

pytestmark = pytest.mark.browser

BY_ID = "id"
BY_CSS = "css selector"
BY_TAG = "tag name"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


@dataclass
class RunningShop:
    kind: str
    url: str  # where the catalogue is
    sandbox: Sandbox
    webhook_url: str


def _sandbox_for(webhook_url: str) -> Sandbox:
    # a quick retry schedule: a webhook that arrives while the shop is busy is retried soon
    return Sandbox(port=0, forward_to=[webhook_url], retry_delays=(0.2, 0.5, 1.0, 2.0))


def _configure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: Sandbox, provider: str = "stripe"
) -> None:
    """The environment of a person running the shop beside ``paygate sandbox``."""
    monkeypatch.delenv("PAYGATE_PROVIDER", raising=False)
    monkeypatch.setenv("PAYGATE_SANDBOX_URL", sandbox.base_url)
    monkeypatch.setenv("PAYGATE_SANDBOX_PROVIDER", provider)
    monkeypatch.setenv("PAYGATE_STORE_URL", f"sqlite:///{tmp_path / 'paygate.db'}")
    monkeypatch.setenv("SHOP_DB", str(tmp_path / "shop.db"))


@contextmanager
def flask_shop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str = "stripe"
) -> Iterator[RunningShop]:
    from examples.flask_shop import create_app

    with WSGIServer() as server:
        webhook_url = server.url + "/webhooks/paygate"
        with _sandbox_for(webhook_url) as sandbox:
            _configure(monkeypatch, tmp_path, sandbox, provider)
            # Square signs over the URL it delivers to: the shop names its own
            monkeypatch.setenv("PAYGATE_SQUARE_WEBHOOK_URL", webhook_url)
            app = create_app()
            server.app = app
            try:
                yield RunningShop("flask", server.url + "/", sandbox, webhook_url)
            finally:
                server.app = None
                app.extensions["paygate"].close()


@contextmanager
def fastapi_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningShop]:
    from examples.fastapi_shop import create_app

    with ASGIServer() as server:
        webhook_url = server.url + "/webhooks/paygate"
        with _sandbox_for(webhook_url) as sandbox:
            _configure(monkeypatch, tmp_path, sandbox)
            app = create_app()
            server.app = app
            try:
                yield RunningShop("fastapi", server.url + "/", sandbox, webhook_url)
            finally:
                asyncio.run(app.state.gateway.aclose())  # the shop runs on an AsyncGateway


@contextmanager
def django_shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningShop]:
    pytest.importorskip("django")
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    if not settings.configured:
        from examples.django_shop import settings as shop_settings

        values = {name: getattr(shop_settings, name) for name in dir(shop_settings)}
        values = {name: value for name, value in values.items() if name.isupper()}
        # as tests/test_examples_django.py configures it: either module may run first
        settings.configure(**{**values, "ALLOWED_HOSTS": ["testserver"]})
        django.setup()
    elif "examples.django_shop" not in settings.INSTALLED_APPS:
        pytest.skip("Django was configured by another test module without the example shop")

    with WSGIServer() as server:
        webhook_url = server.url + "/shop/webhooks/paygate/"
        with _sandbox_for(webhook_url) as sandbox:
            _configure(monkeypatch, tmp_path, sandbox)
            with override_settings(
                ALLOWED_HOSTS=["127.0.0.1"],
                PAYGATE=None,  # the settings.py default: from the environment, else the sandbox
                SHOP_DB_PATH=str(tmp_path / "shop.db"),
                SHOP_RECEIPT_SENDER="examples.django_shop.shop.log_receipt",
            ):
                server.app = WSGIHandler()
                try:
                    yield RunningShop("django", server.url + "/shop/", sandbox, webhook_url)
                finally:
                    server.app = None


SHOPS: dict[str, Callable[[Path, pytest.MonkeyPatch], AbstractContextManager[RunningShop]]] = {
    "flask": flask_shop,
    "fastapi": fastapi_shop,
    "django": django_shop,
}


# -- what the customer and the admin do -----------------------------------------------------------


def order_something(browser: Any, shop: RunningShop, quantity: int = 2) -> None:
    """From the shop's catalogue to the sandbox's Checkout page."""
    browser.delete_all_cookies()
    browser.get(shop.url)
    quantity_field = browser.find_element(BY_CSS, "input[name=quantity]")
    quantity_field.clear()
    quantity_field.send_keys(str(quantity))
    click_through(browser, browser.find_element(BY_CSS, "form button[type=submit]"))
    wait_for(lambda: browser.current_url.startswith(shop.sandbox.base_url), what="the hosted page")
    assert browser.find_element(BY_ID, "total").text == str(Money.of("19.99", "USD") * quantity)


def pay_with(browser: Any, card: str) -> None:
    card_field = browser.find_element(BY_ID, "card")
    card_field.clear()
    card_field.send_keys(card)
    click_through(browser, browser.find_element(BY_ID, "pay"))


def click_through(browser: Any, element: Any) -> None:
    """Click a link or a submit button and wait until the browser has left the page."""
    from selenium.common.exceptions import WebDriverException

    page = browser.find_element(BY_TAG, "html")
    element.click()

    def left() -> bool:
        try:
            page.tag_name  # noqa: B018 (touching it is the test)
        except WebDriverException:  # stale, or "does not belong to the document": gone
            return True
        return False

    wait_for(left, what="the next page")


def order_id_in(url: str) -> str:
    match = re.search(r"/orders/(ord_[0-9a-f]+)", url)
    assert match is not None, url
    return match.group(1)


def text_of(browser: Any, element_id: str) -> str:
    return str(browser.find_element(BY_ID, element_id).text)


def json_page(browser: Any) -> dict[str, Any]:
    """The FastAPI shop answers JSON: Chromium shows it as text."""
    data: dict[str, Any] = json.loads(browser.find_element(BY_TAG, "body").text)
    return data


def order_view(browser: Any, shop: RunningShop, order_id: str) -> tuple[str, str]:
    """(order status, payment status) as the shop's own order page shows them."""
    if shop.kind == "fastapi":
        browser.get(f"{shop.url}orders/{order_id}")
        data = json_page(browser)
        return data["status"], data["payment_status"] or "no payment yet"
    browser.get(f"{shop.url}orders/{order_id}{'/' if shop.kind == 'django' else ''}")
    return text_of(browser, "order-status"), text_of(browser, "payment-status")


def refund_from_admin(browser: Any, shop: RunningShop, order_id: str) -> str:
    """Press the shop's Refund button; the payment status the shop shows afterwards."""
    if shop.kind == "fastapi":
        browser.get(f"{shop.url}orders/{order_id}/admin")
        click_through(browser, browser.find_element(BY_CSS, "form button[type=submit]"))
        assert browser.current_url.endswith("/refund")
        return str(json_page(browser)["payment_status"])
    order_view(browser, shop, order_id)
    click_through(browser, browser.find_element(BY_CSS, "form button[type=submit]"))
    wait_for(lambda: not browser.current_url.endswith("/refund/"), what="the order page")
    return text_of(browser, "payment-status")


def webhooks_answered(
    shop: RunningShop, *, at_least: set[str], provider: str = "stripe"
) -> list[str]:
    """Wait until the shop has answered 2xx to every event the sandbox sent so far, the
    ``at_least`` types among them; their types."""
    bus = shop.sandbox.bus

    def all_delivered() -> list[str] | None:
        events = bus.events(provider, 500)
        types = {event.type for event in events}
        if not at_least <= types:
            return None
        for event in events:
            attempts = [a for a in bus.attempts(event.id) if a.url == shop.webhook_url]
            if not any(a.ok for a in attempts):
                return None
        return [event.type for event in events]

    try:
        delivered: list[str] = wait_for(all_delivered, timeout=30, what=f"webhooks {at_least}")
    except AssertionError:
        seen = [
            (event.type, [(a.status, a.excerpt[:80]) for a in bus.attempts(event.id)])
            for event in bus.events(provider, 500)
        ]
        raise AssertionError(f"webhooks {at_least} not all answered 2xx: {seen}") from None
    return delivered


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SHOPS)
@pytest.mark.parametrize(
    ("card", "challenge"),
    [("4242 4242 4242 4242", False), ("4000 0025 0000 3155", True)],
    ids=["card", "3ds"],
)
def test_a_customer_buys_and_the_admin_refunds(
    browser: Any,
    kind: str,
    card: str,
    challenge: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with SHOPS[kind](tmp_path, monkeypatch) as shop:
        order_something(browser, shop)
        pay_with(browser, card)
        if challenge:
            wait_for(lambda: "/3ds/pi_" in browser.current_url, what="the 3-D Secure page")
            assert "39.98 USD" in text_of(browser, "amount")
            click_through(browser, browser.find_element(BY_ID, "authenticate"))
        # back at the shop's return page, which asked the sandbox (as Stripe) for the truth
        wait_for(lambda: browser.current_url.startswith(shop.url.rstrip("/")), what="the shop")
        assert "/return" in browser.current_url and "session_id=cs_" in browser.current_url
        order_id = order_id_in(browser.current_url)
        if kind == "fastapi":
            returned = json_page(browser)
            assert returned["confirmed"] is True and returned["payment_status"] == "succeeded"
        else:
            assert text_of(browser, "payment-status") == "succeeded"

        # the signed webhooks reach the shop over HTTP and it accepts every one
        delivered = webhooks_answered(
            shop, at_least={"payment_intent.succeeded", "checkout.session.completed"}
        )
        if challenge:
            assert "payment_intent.requires_action" in delivered
        assert order_view(browser, shop, order_id) == ("paid", "succeeded")

        # the admin refunds it from the shop; the sandbox tells the shop by webhook too
        assert refund_from_admin(browser, shop, order_id) == "refunded"
        webhooks_answered(shop, at_least={"charge.refunded"})
        assert order_view(browser, shop, order_id) == ("paid", "refunded")
        # the sandbox's dashboard shows the same
        browser.get(shop.sandbox.base_url + "/")
        (payment_row,) = [
            row
            for row in browser.find_elements(BY_CSS, "#payments tr[id^=payment-]")
            if order_id in row.text
        ]
        assert "refunded" in payment_row.text


@pytest.mark.parametrize("kind", SHOPS)
def test_a_declined_card_stays_on_the_checkout_and_the_order_stays_open(
    browser: Any, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with SHOPS[kind](tmp_path, monkeypatch) as shop:
        order_something(browser, shop, quantity=1)
        checkout_url = browser.current_url
        pay_with(browser, "4000 0000 0000 0002")
        wait_for(lambda: "error=card_declined" in browser.current_url, what="the decline")
        assert browser.current_url.startswith(checkout_url)
        assert text_of(browser, "error") == "Your card was declined."
        assert browser.find_element(BY_ID, "card").get_attribute("value") == ""
        # the customer gives up and goes back to the shop: the order is still open
        click_through(browser, browser.find_element(BY_ID, "cancel"))
        wait_for(lambda: "/cancel" in browser.current_url, what="the shop's cancel page")
        order_id = order_id_in(browser.current_url)
        delivered = webhooks_answered(shop, at_least={"payment_intent.payment_failed"})
        assert "payment_intent.succeeded" not in delivered
        assert order_view(browser, shop, order_id) == ("pending", "failed")


@pytest.mark.parametrize(
    ("provider", "paid_events", "refund_events"),
    [
        ("paypal", {"PAYMENT.CAPTURE.COMPLETED"}, {"PAYMENT.CAPTURE.REFUNDED"}),
        ("square", {"payment.created"}, {"refund.created", "refund.updated"}),
    ],
)
def test_the_same_shop_on_paypal_and_square(
    browser: Any,
    provider: str,
    paid_events: set[str],
    refund_events: set[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PAYGATE_SANDBOX_PROVIDER picks the sandbox's face: the shop runs the real PayPal or
    Square adapter; the customer uses PayPal's approval page or Square's payment link."""
    with flask_shop(tmp_path, monkeypatch, provider) as shop:
        order_something(browser, shop)
        if provider == "paypal":
            assert "/paypal/approve/" in browser.current_url
            click_through(browser, browser.find_element(BY_ID, "approve"))
        else:
            assert "/square/pay/" in browser.current_url
            pay_with(browser, "4111 1111 1111 1111")
        wait_for(lambda: browser.current_url.startswith(shop.url.rstrip("/")), what="the shop")
        assert "/return?" in browser.current_url
        order_id = order_id_in(browser.current_url)
        assert text_of(browser, "payment-status") == "succeeded"
        webhooks_answered(shop, at_least=paid_events, provider=provider)
        assert order_view(browser, shop, order_id) == ("paid", "succeeded")
        # Square's refund is PENDING at first: its webhook (refund.updated, which may come
        # before or after the page) completes it
        shown = refund_from_admin(browser, shop, order_id)
        assert shown in ({"succeeded", "refunded"} if provider == "square" else {"refunded"})
        webhooks_answered(shop, at_least=refund_events, provider=provider)
        assert order_view(browser, shop, order_id) == ("paid", "refunded")
