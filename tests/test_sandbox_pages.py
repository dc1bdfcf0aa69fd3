"""The sandbox's hosted pages and dashboard over plain HTTP, as a browser without
JavaScript uses them: every form posted by :func:`paygate.testing.pay_hosted_page`, which
reads the page's own form (no private call). The browser tests (tests/test_browser_*.py)
click the same pages in Chromium."""

from __future__ import annotations

import logging
import re
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

pytest.importorskip("werkzeug", reason="the sandbox needs the 'sandbox' extra")
pytest.importorskip("httpx", reason="the sandbox needs the 'sandbox' extra")

from paygate import LineItem, Money
from paygate.testing import HostedPageError, pay_hosted_page, submit_page
from paygate.testing.sandbox import WebhookReceiver, complete_challenge, pay_checkout

SHOP = "http://shop.test"


def new_session(sandbox: Any, *, name: str = "paygate T-shirt", quantity: int = 2) -> str:
    with sandbox.state.transaction("stripe") as engine:
        session = engine.create_checkout_session(
            order_id=f"ord_{sandbox.state.internal_key()[:8]}",
            line_items=[
                LineItem(name=name, unit_amount=Money.of("19.99", "USD"), quantity=quantity)
            ],
            success_url=f"{SHOP}/done?session_id={{CHECKOUT_SESSION_ID}}",
            cancel_url=f"{SHOP}/cancel",
            idempotency_key=sandbox.state.internal_key(),
        )
    return str(sandbox.stripe.checkout_url(session.id))


def session_of(sandbox: Any, url: str) -> dict[str, Any]:
    return dict(sandbox.stripe.checkout_view(url.rsplit("/", 1)[-1].split("?")[0]))


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode("utf-8")


def post(url: str, fields: dict[str, str]) -> tuple[int, str | None]:
    """POST a form; (status, Location) without following the redirect."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode())
    try:
        with urllib.request.build_opener(NoRedirect()).open(request, timeout=10) as answer:
            return answer.status, None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("Location")


def test_the_checkout_page_shows_the_order_and_a_card_form_without_any_external_asset(
    sandbox: Any,
) -> None:
    url = new_session(sandbox, name="Tee <script>alert(1)</script>", quantity=2)
    status, page = get(url)
    assert status == 200
    assert "Tee &lt;script&gt;alert(1)&lt;/script&gt;" in page  # escaped, never raw
    assert "<script" not in page
    assert re.search(r'id="total">39\.98 USD<', page)
    assert 'name="card"' in page and 'id="payment-form"' in page
    assert "4242 4242 4242 4242" in page  # the test cards are listed
    # no external asset: no script, no stylesheet or image from anywhere
    assert not re.search(r"<(script|img|iframe)\b", page)
    assert re.findall(r"<link [^>]*>", page) == ['<link rel="icon" href="data:,">']
    assert f'href="{SHOP}/cancel"' in page  # the way back to the shop


def test_a_good_card_goes_back_to_the_shop_with_the_session_id(sandbox: Any) -> None:
    url = new_session(sandbox)
    visit = pay_hosted_page(url, "4242 4242 4242 4242")
    session = session_of(sandbox, url)
    assert visit.return_url == f"{SHOP}/done?session_id={session['id']}"
    assert visit.query == {"session_id": session["id"]}
    assert visit.error is None
    assert session["status"] == "complete" and session["payment_status"] == "paid"
    # the page of a paid checkout says so, with a link back to the shop
    status, page = get(url)
    assert status == 200 and "already paid" in page


@pytest.mark.parametrize(
    ("card", "message"),
    [
        ("4000 0000 0000 0002", "Your card was declined."),
        ("4000000000009995", "Your card has insufficient funds."),
        ("4000 0000 0000 0069", "Your card has expired."),
        ("1234 5678 9012 3456", "Your card number is incorrect."),
    ],
)
def test_a_declined_card_stays_on_the_page_with_the_reason_and_is_never_echoed(
    sandbox: Any, card: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, the sandbox's request lines included
    url = new_session(sandbox)
    visit = pay_hosted_page(url, card)
    assert visit.return_url is None
    assert visit.error is not None and visit.error.startswith(message)
    last = visit.visited[-1]
    assert "?error=" in last
    digits = card.replace(" ", "")
    status, page = get(last)
    assert status == 200
    form = page.split('id="test-cards"')[0]  # the list of test cards shows them all
    assert re.search(r'<input type="text" id="card" name="card"(?![^>]*value=)', form)
    for shown in (last, form):
        assert digits not in shown.replace(" ", "")
    assert session_of(sandbox, url)["status"] == "open"
    # the customer tries another card on the same session: paid
    assert pay_hosted_page(url, "4242424242424242").return_url is not None
    assert caplog.records  # the requests were logged ...
    for logged in (caplog.text, *(str(record.__dict__) for record in caplog.records)):
        assert digits not in logged.replace(" ", "")  # ... never the card


def test_three_d_secure_authenticated_then_back_to_the_shop(sandbox: Any) -> None:
    url = new_session(sandbox)
    visit = pay_hosted_page(url, "4000 0025 0000 3155")
    challenge = [page for page in visit.visited if "/3ds/" in page]
    assert challenge, visit.visited
    assert visit.return_url is not None and visit.return_url.startswith(f"{SHOP}/done")
    assert session_of(sandbox, url)["status"] == "complete"


def test_three_d_secure_failed_returns_to_the_checkout_with_the_reason(sandbox: Any) -> None:
    url = new_session(sandbox)
    visit = pay_hosted_page(url, "4000000000003220", three_d_secure="fail")
    assert visit.return_url is None
    assert visit.error is not None and "unable to authenticate" in visit.error
    assert session_of(sandbox, url)["status"] == "open"


def test_the_challenge_page_itself(sandbox: Any) -> None:
    url = new_session(sandbox)
    challenge = pay_checkout(url, "4000 0025 0000 3155")  # one step: the 3-D Secure page
    assert "/3ds/pi_" in challenge
    status, page = get(challenge)
    assert status == 200
    assert "39.98 USD" in page
    assert 'value="authenticate"' in page and 'value="fail"' in page
    assert complete_challenge(challenge).startswith(f"{SHOP}/done")
    # done already: the page says so and has no form any more
    status, page = get(challenge)
    assert status == 200 and "nothing to authenticate" in page and "<form" not in page
    with pytest.raises(HostedPageError):
        submit_page(challenge)


def test_unknown_pages_are_404(sandbox: Any) -> None:
    assert get(f"{sandbox.base_url}/checkout/cs_nope")[0] == 404
    assert get(f"{sandbox.base_url}/3ds/pi_nope")[0] == 404
    assert get(f"{sandbox.base_url}/paypal/approve/NOPE")[0] == 404
    assert get(f"{sandbox.base_url}/square/pay/NOPE")[0] == 404


def dashboard(sandbox: Any) -> str:
    status, page = get(f"{sandbox.base_url}/")
    assert status == 200
    return page


def row(page: str, element_id: str) -> str:
    match = re.search(
        rf'<tr id="{re.escape(element_id)}">(.*?)</tr>(?=<tr id=|</table></div>)', page, re.S
    )
    assert match is not None, f"no row {element_id}"
    return match.group(1)


def status_in(row_html: str) -> str:
    match = re.search(r'<td class="status">([^<]*)</td>', row_html)
    assert match is not None
    return match.group(1)


def action(sandbox: Any, provider: str, object_id: str, name: str) -> str:
    status, location = post(
        f"{sandbox.base_url}/_sandbox/actions",
        {"provider": provider, "id": object_id, "action": name},
    )
    assert status == 303 and location is not None
    return urllib.parse.unquote_plus(location)


def test_the_dashboard_settles_a_processing_payment(sandbox: Any) -> None:
    url = new_session(sandbox)
    assert pay_hosted_page(url, "4000 0000 0000 0077").return_url is not None
    intent = session_of(sandbox, url)["payment_intent"]
    page = dashboard(sandbox)
    assert status_in(row(page, f"payment-{intent}")) == "processing"
    assert 'value="settle"' in row(page, f"payment-{intent}")
    engine_id = "pay_" + intent[3:]
    assert f"{intent} settled." in action(sandbox, "stripe", engine_id, "settle")
    assert status_in(row(dashboard(sandbox), f"payment-{intent}")) == "succeeded"


def test_the_dashboard_opens_wins_and_loses_disputes(sandbox: Any) -> None:
    intents = []
    for _ in range(2):
        url = new_session(sandbox)
        pay_hosted_page(url)
        intents.append(session_of(sandbox, url)["payment_intent"])
    for intent in intents:
        action(sandbox, "stripe", "pay_" + intent[3:], "dispute_open")
    with sandbox.state.lock:
        disputes = [
            record
            for record in sandbox.state.engine("stripe")._objects.values()
            if record["object"] == "dispute"
        ]
    assert len(disputes) == 2
    page = dashboard(sandbox)
    for dispute in disputes:
        assert status_in(row(page, f"dispute-{dispute['id']}")) == "open"
    action(sandbox, "stripe", disputes[0]["id"], "dispute_win")
    action(sandbox, "stripe", disputes[1]["id"], "dispute_lose")
    page = dashboard(sandbox)
    assert status_in(row(page, f"dispute-{disputes[0]['id']}")) == "won"
    assert status_in(row(page, f"dispute-{disputes[1]['id']}")) == "lost"
    assert 'value="dispute_win"' not in row(page, f"dispute-{disputes[1]['id']}")
    # an action the engine refuses is reported, not a crash
    notice = action(sandbox, "stripe", disputes[1]["id"], "dispute_win")
    assert disputes[1]["id"] in notice
    assert "Unknown action." in action(sandbox, "stripe", "x", "explode")


def test_the_dashboard_renews_a_subscription_or_fails_its_renewal(sandbox: Any) -> None:
    with sandbox.state.transaction("stripe") as engine:
        customer = engine.create_customer(email="a@example.com", name=None, idempotency_key="c1")
        subscription = engine.create_subscription(
            customer_id=customer.id, price_id="price_monthly", idempotency_key="s1"
        )
    assert 'value="renew"' in row(dashboard(sandbox), f"subscription-{subscription.id}")
    action(sandbox, "stripe", subscription.id, "renew")
    assert status_in(row(dashboard(sandbox), f"subscription-{subscription.id}")) == "active"
    action(sandbox, "stripe", subscription.id, "renew_fail")
    assert status_in(row(dashboard(sandbox), f"subscription-{subscription.id}")) == "past_due"


def test_the_dashboard_lists_each_event_with_its_deliveries_and_resends_it(
    sandbox: Any, webhook_receiver: WebhookReceiver
) -> None:
    sandbox.bus.forward_to.append(webhook_receiver.url)
    webhook_receiver.status = 500  # the endpoint is broken at first
    url = new_session(sandbox)
    pay_hosted_page(url)
    tries = len(sandbox.bus.retry_delays) + 1  # the first try and every retry
    events = sandbox.bus.events("stripe")
    succeeded = next(e for e in events if e.type == "payment_intent.succeeded")
    wait_for(lambda: len(sandbox.bus.attempts(succeeded.id)) == tries)
    page = dashboard(sandbox)
    assert webhook_receiver.url in page  # the endpoint is listed
    event_row = row(page, f"event-{succeeded.id}")
    attempts = re.findall(r'<tr class="attempt">(.*?)</tr>', event_row, re.S)
    assert len(attempts) == tries
    assert all(">500<" in attempt and webhook_receiver.url in attempt for attempt in attempts)
    assert "failed" in event_row  # the response's excerpt

    webhook_receiver.status = 200  # fixed: resend from the dashboard
    status, location = post(f"{sandbox.base_url}/events/{succeeded.id}/resend", {})
    assert status == 303 and location is not None
    assert f"{succeeded.id} resent to" in urllib.parse.unquote_plus(location)
    wait_for(lambda: len(sandbox.bus.attempts(succeeded.id)) == tries + 1)
    event_row = row(dashboard(sandbox), f"event-{succeeded.id}")
    statuses = re.findall(r'<td class="status">(\w+)</td>', event_row)
    assert statuses[-1] == "200"
    assert post(f"{sandbox.base_url}/events/evt_nope/resend", {})[0] == 404


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_dashboard_shows_what_an_application_configures(sandbox: Any) -> None:
    page = dashboard(sandbox)
    assert sandbox.stripe.webhook_secret in page
    assert sandbox.stripe.base_url in page
    assert "No payments yet." in page and "No events yet." in page


# -- PayPal's and Square's pages, through the real adapters configured from the sandbox ------------


def gateway_on(sandbox: Any, provider: str) -> Any:
    from paygate.sandbox.connect import gateway_from_env

    return gateway_from_env(
        {
            "PAYGATE_SANDBOX_URL": sandbox.base_url,
            "PAYGATE_SANDBOX_PROVIDER": provider,
            "PAYGATE_STORE_URL": "memory://",
            # Square verifies a webhook against the URL it was sent to
            "PAYGATE_SQUARE_WEBHOOK_URL": "http://shop.test/webhooks",
        }
    )


def open_checkout(gateway: Any, order_id: str) -> str:
    session = gateway.create_checkout(
        order_id=order_id,
        line_items=[LineItem(name="paygate mug", unit_amount=Money.of("8.50", "USD"), quantity=2)],
        success_url=f"{SHOP}/orders/{order_id}/return",
        cancel_url=f"{SHOP}/orders/{order_id}/cancel",
    )
    assert session.url is not None and session.url.startswith("http://127.0.0.1:")
    return str(session.url)


def test_paypal_approval_page_approve_then_the_return_captures(sandbox: Any) -> None:
    with gateway_on(sandbox, "paypal") as gateway:
        assert gateway.provider.name == "paypal"
        url = open_checkout(gateway, "ord_pp1")
        status, page = get(url)
        assert status == 200
        assert "paygate mug" in page and re.search(r'id="total">17\.00 USD<', page)
        assert 'value="approve"' in page and 'value="cancel"' in page
        assert not re.search(r"<(script|img|iframe)\b", page)
        visit = pay_hosted_page(url)
        assert visit.return_url is not None
        assert visit.return_url.startswith(f"{SHOP}/orders/ord_pp1/return?")
        assert set(visit.query) >= {"token", "PayerID"}
        payment = gateway.handle_return(visit.query)
        assert payment.status == "succeeded" and payment.order_id == "ord_pp1"
        # approved and captured: nothing to approve any more
        status, page = get(url)
        assert status == 200 and "nothing to approve" in page


def test_paypal_approval_page_cancel_goes_to_the_cancel_url(sandbox: Any) -> None:
    with gateway_on(sandbox, "paypal") as gateway:
        url = open_checkout(gateway, "ord_pp2")
        visit = pay_hosted_page(url, approve=False)
        assert visit.return_url is not None
        assert visit.return_url.startswith(f"{SHOP}/orders/ord_pp2/cancel?token=")


def test_square_payment_link_page_pays_and_declines(sandbox: Any) -> None:
    with gateway_on(sandbox, "square") as gateway:
        assert gateway.provider.name == "square"
        url = open_checkout(gateway, "ord_sq1")
        status, page = get(url)
        assert status == 200
        assert "Square Checkout" in page and "4111 1111 1111 1111" in page
        assert re.search(r'id="total">17\.00 USD<', page)
        declined = pay_hosted_page(url, "4000 0000 0000 0002")
        assert declined.return_url is None and declined.error == "Your card was declined."
        visit = pay_hosted_page(url, "4111 1111 1111 1111")
        assert visit.return_url is not None
        assert visit.return_url.startswith(f"{SHOP}/orders/ord_sq1/return?")
        assert "orderId" in visit.query
        payment = gateway.handle_return(visit.query)
        assert payment.status == "succeeded" and payment.order_id == "ord_sq1"
        status, page = get(url)
        assert status == 200 and "already paid" in page
        # Square's payments are on the dashboard too, from Square's own model
        assert status_in(row(dashboard(sandbox), f"payment-{payment.id}")) == "COMPLETED"
        notice = action(sandbox, "square", payment.id, "dispute_open")
        assert f"{payment.id} disputed." in notice
        (dispute,) = sandbox.square.api.disputes.values()
        action(sandbox, "square", dispute["id"], "dispute_lose")
        assert status_in(row(dashboard(sandbox), f"dispute-{dispute['id']}")) == "LOST"


def test_a_shop_finds_the_sandbox_when_no_provider_is_configured(sandbox: Any) -> None:
    from paygate.errors import ConfigurationError
    from paygate.providers.fake import FakeProvider
    from paygate.sandbox.connect import gateway_from_env

    with gateway_on(sandbox, "stripe") as gateway:
        settings = gateway.provider.settings
        assert settings.base_url == sandbox.base_url
        assert [s.get_secret_value() for s in settings.webhook_secret] == [
            sandbox.stripe.webhook_secret
        ]
    # another gateway class (an async one) is built the same way
    seen: list[Any] = []

    class Recorded:
        @classmethod
        def from_env(cls, environ: Any = None) -> str:
            seen.append(environ)
            return "built"

    assert gateway_from_env({"PAYGATE_SANDBOX_URL": sandbox.base_url}, cls=Recorded) == "built"
    assert seen[0]["PAYGATE_PROVIDER"] == "stripe"
    assert seen[0]["PAYGATE_STRIPE_BASE_URL"] == sandbox.base_url
    # a configured provider wins: the sandbox is not asked
    configured = gateway_from_env({"PAYGATE_PROVIDER": "fake", "PAYGATE_STORE_URL": "memory://"})
    with configured:
        assert isinstance(configured.provider, FakeProvider)
    # nothing configured and no sandbox there: a clear error at start-up
    with pytest.raises(
        ConfigurationError, match=r"no paygate sandbox answering at http://127\.0\.0\.1:9"
    ):
        gateway_from_env(
            {"PAYGATE_SANDBOX_URL": "http://127.0.0.1:9", "PAYGATE_STORE_URL": "memory://"}
        )
    with pytest.raises(ConfigurationError, match="PAYGATE_SANDBOX_PROVIDER='adyen'"):
        gateway_from_env(
            {"PAYGATE_SANDBOX_URL": sandbox.base_url, "PAYGATE_SANDBOX_PROVIDER": "adyen"}
        )


def test_paypal_funding_choice_on_the_page_scripts_a_decline(sandbox: Any) -> None:
    from paygate import CardDeclined

    with gateway_on(sandbox, "paypal") as gateway:
        url = open_checkout(gateway, "ord_pp3")
        status, page = get(url)
        assert status == 200
        assert re.search(r'<option value="paypal_balance" selected>', page)  # pays by default
        visit = pay_hosted_page(url, fields={"funding": "card_declined"})
        assert visit.return_url is not None and "token=" in visit.return_url
        with pytest.raises(CardDeclined):
            gateway.handle_return(visit.query)


def test_the_docs_customer_example_passes(sandbox: Any) -> None:
    """docs/sandbox.md's "The customer in tests" example, run as written."""
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "sandbox.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    block = [b for b in blocks if "def test_a_customer_passes_3d_secure" in b]
    assert len(block) == 1, "docs/sandbox.md lost its customer example"
    namespace: dict[str, Any] = {}
    exec(compile(block[0], "docs/sandbox.md", "exec"), namespace)
    namespace["test_a_customer_passes_3d_secure"](sandbox)


def test_three_d_secure_for_a_direct_payment_returns_to_its_return_url(sandbox: Any) -> None:
    with gateway_on(sandbox, "stripe") as gateway:
        payment = gateway.create_payment(
            order_id="ord_direct",
            amount=Money.of("12.00", "EUR"),
            payment_method="pm_card_authenticationRequired",
            return_url=f"{SHOP}/orders/ord_direct/return",
        )
        assert payment.status == "requires_action" and payment.redirect_url
        status, page = get(payment.redirect_url)
        assert status == 200 and "12.00 EUR" in page and "shop.test" in page
        visit = pay_hosted_page(payment.redirect_url)
        assert visit.return_url is not None
        assert visit.return_url.startswith(f"{SHOP}/orders/ord_direct/return?")
        assert visit.query["redirect_status"] == "succeeded"
        assert visit.query["payment_intent"] == payment.id
        assert gateway.handle_return(visit.query).status == "succeeded"


def test_a_challenge_without_a_return_url_ends_on_the_sandbox(sandbox: Any) -> None:
    with sandbox.state.transaction("stripe") as engine:
        payment = engine.create_payment(
            order_id="ord_nowhere",
            amount=Money.of("5.00", "USD"),
            payment_method="tok_3ds",
            idempotency_key="k-nowhere",
        )
    challenge = f"{sandbox.base_url}/3ds/pi_{payment.id[4:]}"
    done = submit_page(challenge, three_d_secure="fail")
    assert done.startswith(f"{sandbox.base_url}/3ds/pi_{payment.id[4:]}/done?")
    status, page = get(done)
    assert status == 200 and "Authentication finished (failed)" in page


def invoice_status(sandbox: Any, invoice_id: str) -> str:
    """The invoice's status as Stripe's API (the sandbox's) answers it."""
    import json

    request = urllib.request.Request(
        f"{sandbox.base_url}/v1/invoices/{invoice_id}",
        headers={"Authorization": "Bearer sk_test_sandbox"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.load(answer)["status"])


def test_stripe_hosted_invoice_page_declines_then_pays(sandbox: Any) -> None:
    with gateway_on(sandbox, "stripe") as gateway:
        customer = gateway.create_customer(email="buyer@example.com")
        invoice = gateway.create_invoice(
            customer_id=customer.id,
            line_items=[LineItem(name="Consulting", unit_amount=Money.of("120.00", "USD"))],
            order_id="ord_inv1",
            send=True,
        )
        assert invoice.hosted_url is not None
        assert invoice.hosted_url.startswith(f"{sandbox.base_url}/invoices/")
        status, page = get(invoice.hosted_url)
        assert status == 200
        assert "Consulting" in page and re.search(r'id="total">120\.00 USD<', page)
        declined = pay_hosted_page(invoice.hosted_url, "4000 0000 0000 0002")
        assert declined.error == "Your card was declined."
        assert invoice_status(sandbox, invoice.id) == "open"
        paid = pay_hosted_page(invoice.hosted_url, "4242 4242 4242 4242")
        # back on the invoice's own page, which now says it is paid
        assert paid.return_url is None and paid.error is None
        assert paid.visited[-1] == invoice.hosted_url
        assert invoice_status(sandbox, invoice.id) == "paid"
        status, page = get(invoice.hosted_url)
        assert status == 200 and "is paid" in page
    assert get(f"{sandbox.base_url}/invoices/in_nope")[0] == 404


def test_paypal_invoice_payer_page_declines_then_pays(sandbox: Any) -> None:
    with gateway_on(sandbox, "paypal") as gateway:
        invoice = gateway.create_invoice(
            customer_id="buyer@example.com",  # PayPal invoices are addressed by email
            line_items=[LineItem(name="Consulting", unit_amount=Money.of("80.00", "USD"))],
            order_id="ord_ppinv",
            send=True,
        )
        assert invoice.hosted_url is not None
        assert invoice.hosted_url.startswith(f"{sandbox.base_url}/paypal/invoice?id=")
        status, page = get(invoice.hosted_url)
        assert status == 200 and "Consulting" in page and 'value="cancel"' not in page
        declined = pay_hosted_page(invoice.hosted_url, fields={"funding": "card_declined"})
        assert declined.error == "Your card was declined."
        paid = pay_hosted_page(invoice.hosted_url)
        assert paid.return_url is None and paid.error is None
        status, page = get(invoice.hosted_url)
        assert status == 200 and "is paid" in page
    assert get(f"{sandbox.base_url}/paypal/invoice?id=INV2-NOPE")[0] == 404
