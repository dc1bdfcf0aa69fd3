"""Each hosted page of the sandbox in a real browser, and the screenshots in docs/sandbox.md.

Headless Chromium opens every page a person sees (Stripe Checkout, its decline, the 3-D
Secure challenge, PayPal's approval page, Square's payment-link page, the dashboard),
checks what it shows and that it loads nothing from anywhere (no script, style sheet, image
or font: the browser records no resource at all), uses it, and takes its screenshot. With
``PAYGATE_UPDATE_SCREENSHOTS=1`` the screenshots are written to ``docs/img/sandbox/``
(commit them); otherwise the test checks that each one the docs show exists there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("werkzeug", reason="the sandbox needs the 'sandbox' extra")
pytest.importorskip("httpx", reason="the sandbox needs the 'sandbox' extra")

from paygate import LineItem, Money
from paygate.sandbox import Sandbox
from paygate.sandbox.connect import gateway_from_env
from tests.browser_support import WSGIServer, chromium, wait_for

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "img" / "sandbox"
UPDATE = os.environ.get("PAYGATE_UPDATE_SCREENSHOTS") == "1"
WIDTH = 720


def shop_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Stands in for the shop: its return, cancel and webhook URLs."""
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
    return [b"<!doctype html><title>shop</title><h1 id='shop'>Back at the shop</h1>"]


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Any, Sandbox, str]]:
    with WSGIServer(shop_app) as shop, chromium() as browser:
        webhooks = shop.url + "/webhooks"
        with Sandbox(port=0, seed=7, forward_to=[webhooks], retry_delays=(0.2,)) as sandbox:
            yield browser, sandbox, shop.url


def no_resources_loaded(browser: Any) -> None:
    """Nothing but the page itself: no script, style sheet, image or font from anywhere."""
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert loaded == []
    external = "script, img, iframe, link:not([href^='data:'])"
    assert browser.find_elements("css selector", external) == []


def screenshot(browser: Any, name: str, width: int = WIDTH) -> None:
    """The page as a person sees it: its full height (up to a limit), at ``width``."""
    browser.set_window_size(width, 900)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, min(max(int(height) + 20, 400), 1000))
    png = browser.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
    target = SCREENSHOTS / f"{name}.png"
    if UPDATE:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
    else:
        assert target.is_file(), f"{target} is missing: run with PAYGATE_UPDATE_SCREENSHOTS=1"
    browser.set_window_size(1024, 900)


def stripe_session(sandbox: Sandbox, shop: str, order_id: str) -> str:
    with gateway_from_env(
        {"PAYGATE_SANDBOX_URL": sandbox.base_url, "PAYGATE_STORE_URL": "memory://"}
    ) as gateway:
        session = gateway.create_checkout(
            order_id=order_id,
            line_items=[
                LineItem(name="paygate T-shirt", unit_amount=Money.of("19.99", "USD"), quantity=2),
                LineItem(name="paygate mug", unit_amount=Money.of("8.50", "USD"), quantity=1),
            ],
            success_url=f"{shop}/orders/{order_id}/return",
            cancel_url=f"{shop}/orders/{order_id}/cancel",
        )
    assert session.url is not None
    return str(session.url)


def type_card(browser: Any, card: str) -> None:
    field = browser.find_element("id", "card")
    field.clear()
    field.send_keys(card)
    browser.find_element("id", "pay").click()


def test_stripe_checkout_decline_and_three_d_secure(world: tuple[Any, Sandbox, str]) -> None:
    browser, sandbox, shop = world
    browser.get(stripe_session(sandbox, shop, "ord_1001"))
    assert browser.title == f"Pay 127.0.0.1:{shop.rsplit(':', 1)[1]}"
    assert browser.find_element("id", "total").text == "48.48 USD"
    lines = browser.find_elements("css selector", "#line-items tr")
    assert [line.text for line in lines[:2]] == [
        "paygate T-shirt × 2 39.98 USD",
        "paygate mug × 1 8.50 USD",
    ]
    no_resources_loaded(browser)
    screenshot(browser, "stripe-checkout")

    type_card(browser, "4000 0000 0000 9995")
    wait_for(lambda: "error=" in browser.current_url, what="the decline")
    assert browser.find_element("id", "error").text == "Your card has insufficient funds."
    no_resources_loaded(browser)
    screenshot(browser, "stripe-checkout-declined")

    type_card(browser, "4000 0025 0000 3155")
    wait_for(lambda: "/3ds/pi_" in browser.current_url, what="the challenge")
    assert browser.find_element("id", "amount").text == "48.48 USD"
    no_resources_loaded(browser)
    screenshot(browser, "3d-secure")
    browser.find_element("id", "authenticate").click()
    wait_for(lambda: browser.current_url.startswith(shop), what="the shop")
    assert browser.current_url.startswith(f"{shop}/orders/ord_1001/return?session_id=cs_")


def test_paypal_approval_page(world: tuple[Any, Sandbox, str]) -> None:
    browser, sandbox, shop = world
    env = {
        "PAYGATE_SANDBOX_URL": sandbox.base_url,
        "PAYGATE_SANDBOX_PROVIDER": "paypal",
        "PAYGATE_STORE_URL": "memory://",
    }
    with gateway_from_env(env) as gateway:
        session = gateway.create_checkout(
            order_id="ord_1002",
            line_items=[
                LineItem(name="paygate T-shirt", unit_amount=Money.of("19.99", "USD"), quantity=1)
            ],
            success_url=f"{shop}/orders/ord_1002/return",
            cancel_url=f"{shop}/orders/ord_1002/cancel",
        )
        assert session.url is not None
        browser.get(session.url)
        assert browser.find_element("id", "total").text == "19.99 USD"
        assert browser.find_element("id", "approve").text == "Pay Now"
        no_resources_loaded(browser)
        screenshot(browser, "paypal-approval")
        browser.find_element("id", "approve").click()
        wait_for(lambda: browser.current_url.startswith(shop), what="the shop")
        assert "/orders/ord_1002/return?token=" in browser.current_url
        assert "PayerID=" in browser.current_url


def test_square_payment_link_page(world: tuple[Any, Sandbox, str]) -> None:
    browser, sandbox, shop = world
    env = {
        "PAYGATE_SANDBOX_URL": sandbox.base_url,
        "PAYGATE_SANDBOX_PROVIDER": "square",
        "PAYGATE_STORE_URL": "memory://",
        "PAYGATE_SQUARE_WEBHOOK_URL": f"{shop}/webhooks",
    }
    with gateway_from_env(env) as gateway:
        session = gateway.create_checkout(
            order_id="ord_1003",
            line_items=[
                LineItem(name="paygate mug", unit_amount=Money.of("8.50", "USD"), quantity=3)
            ],
            success_url=f"{shop}/orders/ord_1003/return",
            cancel_url=f"{shop}/orders/ord_1003/cancel",
        )
        assert session.url is not None
        browser.get(session.url)
        assert browser.find_element("id", "total").text == "25.50 USD"
        no_resources_loaded(browser)
        screenshot(browser, "square-payment-link")
        type_card(browser, "4111 1111 1111 1111")
        wait_for(lambda: browser.current_url.startswith(shop), what="the shop")
        assert "/orders/ord_1003/return?" in browser.current_url
        assert "orderId=" in browser.current_url


def test_the_dashboard(world: tuple[Any, Sandbox, str]) -> None:
    browser, sandbox, shop = world
    # a processing payment to settle, beside what the other tests paid
    browser.get(stripe_session(sandbox, shop, "ord_1004"))
    type_card(browser, "4000 0000 0000 0077")
    wait_for(lambda: browser.current_url.startswith(shop), what="the shop")
    assert sandbox.bus.wait_idle(10)
    browser.get(sandbox.base_url + "/")
    rows = browser.find_elements("css selector", "#payments tr[id^=payment-]")
    assert {"stripe", "paypal", "square"} <= {row.text.split()[0] for row in rows}
    processing = [row for row in rows if "ord_1004" in row.text]
    assert len(processing) == 1 and "processing" in processing[0].text
    events = browser.find_elements("css selector", "#events tr[id^=event-]")
    assert events and all(
        f"{shop}/webhooks" in event.text and "200" in event.text
        for event in events
        if "stripe" in event.text
    )
    no_resources_loaded(browser)
    # settle it with its button: the dashboard comes back with the notice
    processing[0].find_element("css selector", "button[value=settle]").click()
    wait_for(lambda: "notice=" in browser.current_url, what="the action")
    assert "settled." in browser.find_element("id", "notice").text
    assert sandbox.bus.wait_idle(10)  # the settlement's events delivered: on the page
    browser.refresh()
    screenshot(browser, "dashboard", width=1024)
