"""The real PayPal adapter against the sandbox's PayPal face, over HTTP.

The whole Gateway flow with only the sandbox running (checkout → the buyer approves on the
approval page, an HTTP form post → return → capture; a declined funding source; authorize
→ capture; partial refunds; subscription; invoice; dispute; reconciliation ``--from-api``),
with the webhooks delivered over HTTP to a local endpoint and verified by paygate (offline,
with the sandbox's certificate, and through ``verify-webhook-signature``); every object
the face answers checked against PayPal's OpenAPI specs; the provider contract.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

import paygate
from paygate import LineItem, Money, WebhookDelivery
from paygate.errors import CardDeclined, WebhookVerificationError
from paygate.models import (
    EventType,
    InvoiceStatus,
    PaymentStatus,
    RefundStatus,
    SubscriptionStatus,
)
from paygate.provider import PaymentProvider
from paygate.providers.paypal import PayPalProvider
from paygate.sandbox import Sandbox
from paygate.testing.conformance import (
    BaseHarness,
    Outcome,
    ProviderContract,
    Scenario,
    WebhookKind,
)
from paygate.testing.sandbox import Delivery, WebhookReceiver
from tests.paypal_support import (
    DISPUTES,
    INVOICING,
    ORDERS,
    PAYMENTS,
    SUBSCRIPTIONS,
    WEBHOOKS,
    spec_available,
    validate,
)

pytest.importorskip("werkzeug", reason="the sandbox needs the 'sandbox' extra")

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret-do-not-log"
RETURN = "http://127.0.0.1:9/paypal/return"


def _settings(sb: Sandbox, **overrides: Any) -> dict[str, Any]:
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "base_url": sb.paypal.base_url,
        "webhook_id": sb.paypal.webhook_id,
        **overrides,
    }


class _Endpoint:
    """A shop's webhook endpoint: every delivery goes through ``gw.handle_webhook``."""

    def __init__(self, gw: paygate.Gateway) -> None:
        self.gw = gw
        self.handled: list[str] = []  # PayPal event types verified and handled
        self.rejected = 0
        self._lock = threading.Lock()

    def __call__(self, delivery: Delivery) -> int:
        try:
            result = self.gw.handle_webhook(delivery.body, delivery.headers)
        except WebhookVerificationError:
            with self._lock:
                self.rejected += 1
            return 400
        with self._lock:
            self.handled.append(json.loads(delivery.body)["event_type"])
        return result.http_status


def _approve(url: str, funding: str = "paypal_balance") -> str:
    """The buyer on the approval page: the page's own form post."""
    answer = httpx.post(url, data={"action": "approve", "funding": funding})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def _query(url: str) -> dict[str, str]:
    return dict(httpx.URL(url).params)


@pytest.fixture
def shop(sandbox: Sandbox, tmp_path: Path) -> Iterator[tuple[paygate.Gateway, _Endpoint]]:
    gw = paygate.connect("paypal", f"sqlite:///{tmp_path / 'shop.db'}", **_settings(sandbox))
    endpoint = _Endpoint(gw)
    with WebhookReceiver(endpoint) as receiver:
        sandbox.bus.forward_to.append(receiver.url)
        yield gw, endpoint
        assert sandbox.bus.wait_idle()
    gw.close()


def _wait(endpoint: _Endpoint, *types: str, count: int = 1) -> None:
    """Until each of ``types`` was delivered, verified and handled ``count`` times."""

    def arrived() -> bool:
        return all(endpoint.handled.count(t) >= count for t in types)

    deadline = datetime.now() + timedelta(seconds=30)  # a loaded CI machine
    while not arrived():
        assert datetime.now() < deadline, f"waited for {types}; handled {endpoint.handled}"
        threading.Event().wait(0.02)


def test_checkout_approve_return_refunds_and_webhooks(
    sandbox: Sandbox, shop: tuple[paygate.Gateway, _Endpoint], tmp_path: Path
) -> None:
    gw, endpoint = shop
    session = gw.create_checkout(
        order_id="ord_pp_1",
        line_items=[LineItem("Mug", Money.of("12.50", "USD"), 2)],
        success_url=RETURN,
        cancel_url=RETURN + "?cancel=1",
    )
    assert session.url and session.url.startswith(sandbox.base_url + "/paypal/approve/")
    back = _approve(session.url)
    assert back.startswith(RETURN) and _query(back)["token"] == session.id
    paid = gw.handle_return(_query(back))
    assert paid.status is PaymentStatus.SUCCEEDED
    assert paid.amount_captured == Money.of("25.00", "USD")
    _wait(endpoint, "CHECKOUT.ORDER.APPROVED", "PAYMENT.CAPTURE.COMPLETED")

    first = gw.refund(paid.id, Money.of("5.00", "USD"))
    second = gw.refund(paid.id, Money.of("7.50", "USD"))
    assert {first.status, second.status} == {RefundStatus.SUCCEEDED}
    stored = gw.payment_for_order("ord_pp_1")
    assert stored is not None and stored.status is PaymentStatus.PARTIALLY_REFUNDED
    assert stored.amount_refunded == Money.of("12.50", "USD")
    _wait(endpoint, "PAYMENT.CAPTURE.REFUNDED", count=2)
    assert endpoint.rejected == 0

    # reconciliation through PayPal's Transaction Search, as the CLI runs it
    from paygate.__main__ import main

    out = tmp_path / "report.json"
    now = datetime.now(timezone.utc)
    env = {
        "PAYGATE_PROVIDER": "paypal",
        "PAYGATE_PAYPAL_CLIENT_ID": CLIENT_ID,
        "PAYGATE_PAYPAL_CLIENT_SECRET": CLIENT_SECRET,
        "PAYGATE_PAYPAL_BASE_URL": sandbox.paypal.base_url,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        code = main([
            "reconcile", "--provider", "paypal", "--from-api",
            "--since", (now - timedelta(hours=1)).isoformat(),
            "--until", (now + timedelta(minutes=5)).isoformat(),
            "--store", f"sqlite:///{tmp_path / 'shop.db'}", "--out", str(out), "--no-progress",
        ])  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 0, report
    assert report["counts"] == {"matched": 1}


def test_declined_funding_and_cancel_on_the_approval_page(
    sandbox: Sandbox, shop: tuple[paygate.Gateway, _Endpoint]
) -> None:
    gw, endpoint = shop
    payment = gw.create_payment(
        order_id="ord_pp_decline", amount=Money.of("30.00", "USD"), return_url=RETURN
    )
    assert payment.status is PaymentStatus.REQUIRES_ACTION and payment.redirect_url
    back = _approve(payment.redirect_url, "card_declined")
    with pytest.raises(CardDeclined) as declined:
        gw.handle_return(_query(back))
    assert declined.value.code == "INSTRUMENT_DECLINED"
    assert gw.get_payment(payment.id).status is PaymentStatus.FAILED
    _wait(endpoint, "PAYMENT.CAPTURE.DECLINED")

    other = gw.create_payment(order_id="ord_pp_cancel", amount=Money.of("5.00", "USD"),
                              return_url=RETURN)  # fmt: skip
    assert other.redirect_url
    answer = httpx.post(other.redirect_url, data={"action": "cancel"})
    assert answer.status_code == 303 and _query(answer.headers["location"])["token"] == other.id
    assert gw.get_payment(other.id).status is PaymentStatus.REQUIRES_ACTION


def test_authorize_then_capture_part_and_void(
    sandbox: Sandbox, shop: tuple[paygate.Gateway, _Endpoint]
) -> None:
    gw, endpoint = shop
    payment = gw.create_payment(
        order_id="ord_pp_auth", amount=Money.of("40.00", "USD"), capture="manual",
        return_url=RETURN,
    )  # fmt: skip
    assert payment.redirect_url
    authorized = gw.handle_return(_query(_approve(payment.redirect_url)))
    assert authorized.status is PaymentStatus.AUTHORIZED
    captured = gw.capture(payment.id, Money.of("25.00", "USD"))
    assert captured.status is PaymentStatus.SUCCEEDED
    assert captured.amount_captured == Money.of("25.00", "USD")
    _wait(endpoint, "PAYMENT.AUTHORIZATION.CREATED", "PAYMENT.CAPTURE.COMPLETED")

    voided = gw.create_payment(
        order_id="ord_pp_void", amount=Money.of("9.00", "USD"), capture="manual",
        payment_method="paypal_balance",
    )  # fmt: skip
    assert voided.status is PaymentStatus.AUTHORIZED
    assert gw.cancel(voided.id).status is PaymentStatus.CANCELED
    _wait(endpoint, "PAYMENT.AUTHORIZATION.VOIDED")
    assert endpoint.rejected == 0


def test_subscription_invoice_and_dispute(
    sandbox: Sandbox, shop: tuple[paygate.Gateway, _Endpoint]
) -> None:
    gw, endpoint = shop
    sandbox.paypal.define_plan("P-MONTHLY", Money.of("15.00", "USD"))
    subscription = gw.create_subscription(customer_id="cust_pp", price_id="P-MONTHLY")
    assert subscription.status is SubscriptionStatus.PENDING and subscription.redirect_url
    _approve(subscription.redirect_url)
    assert gw.provider.get_subscription(subscription.id).status is SubscriptionStatus.ACTIVE
    _wait(endpoint, "BILLING.SUBSCRIPTION.CREATED", "BILLING.SUBSCRIPTION.ACTIVATED")
    with sandbox.state.transaction("paypal") as engine:
        sub = sandbox.paypal.records("subscriptions")[subscription.id]
        engine.renew_subscription(sub["engine_id"], success=False)
    _wait(endpoint, "BILLING.SUBSCRIPTION.PAYMENT.FAILED")

    invoice = gw.create_invoice(
        customer_id="buyer@example.com", line_items=[LineItem("Consulting", Money.of("80", "USD"))],
        order_id="ord_pp_invoice", send=True,
    )  # fmt: skip
    assert invoice.status is InvoiceStatus.OPEN and invoice.amount_due == Money.of("80", "USD")
    sandbox.paypal.pay_invoice(invoice.id)
    _wait(endpoint, "INVOICING.INVOICE.CREATED", "INVOICING.INVOICE.PAID")

    payment = gw.create_payment(
        order_id="ord_pp_dispute", amount=Money.of("60.00", "USD"), payment_method="paypal_balance"
    )
    dispute_id = sandbox.paypal.open_dispute(payment.id)
    dispute = gw.provider.get_dispute(dispute_id)
    assert dispute.payment_id == payment.id and dispute.order_id == "ord_pp_dispute"
    _wait(endpoint, "CUSTOMER.DISPUTE.CREATED")
    with sandbox.state.transaction("paypal") as engine:
        engine.resolve_dispute(sandbox.paypal.records("disputes")[dispute_id]["engine_id"],
                               won=False)  # fmt: skip
    _wait(endpoint, "CUSTOMER.DISPUTE.RESOLVED")
    assert endpoint.rejected == 0


def test_verify_webhook_signature_answers_for_the_sandbox_s_own_events(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """``verification="api"``: SUCCESS for what the sandbox sent, FAILURE for a change."""
    gw = paygate.connect("paypal", "memory://", **_settings(sandbox, verification="api"))
    endpoint = _Endpoint(gw)
    with WebhookReceiver(endpoint) as receiver:
        sandbox.bus.forward_to.append(receiver.url)
        gw.create_payment(order_id="ord_api", amount=Money.of("3.00", "USD"),
                          payment_method="paypal_balance")  # fmt: skip
        _wait(endpoint, "PAYMENT.CAPTURE.COMPLETED")
        delivery = next(
            d for d in receiver.deliveries
            if json.loads(d.body)["event_type"] == "PAYMENT.CAPTURE.COMPLETED"
        )  # fmt: skip
        event = json.loads(delivery.body)
        event["resource"]["amount"]["value"] = "3000.00"
        with pytest.raises(WebhookVerificationError):
            gw.handle_webhook(json.dumps(event).encode(), delivery.headers)
    gw.close()


def test_webhooks_registered_through_the_api_are_delivered_signed_for_their_id(
    sandbox: Sandbox,
) -> None:
    with WebhookReceiver() as receiver:
        provider = PayPalProvider(**_settings(sandbox))
        token = provider._http.post(
            "/v1/notifications/webhooks",
            {"url": receiver.url, "event_types": [{"name": "*"}]},
        )
        assert token["url"] == receiver.url
        own = PayPalProvider(**_settings(sandbox, webhook_id=token["id"]))
        own.create_payment(order_id="ord_hook", amount=Money.of("2.00", "USD"),
                           payment_method="paypal_balance", idempotency_key="hook-1")  # fmt: skip
        delivered = receiver.wait_for(lambda d: len(d) >= 2)
        events = [own.parse_webhook(d.body, d.headers) for d in delivered]
        assert EventType.PAYMENT_SUCCEEDED in {e.type for e in events}
        with pytest.raises(WebhookVerificationError):  # signed for the other webhook id
            provider.parse_webhook(delivered[0].body, delivered[0].headers)


def test_errors_idempotency_and_auth_in_paypal_s_shapes(sandbox: Sandbox) -> None:
    api = sandbox.paypal.base_url
    assert httpx.get(f"{api}/v2/checkout/orders/NOPE").status_code == 401
    token = httpx.post(
        f"{api}/v1/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]  # fmt: skip
    bearer = {"Authorization": f"Bearer {token}"}
    missing = httpx.get(f"{api}/v2/checkout/orders/NOPE", headers=bearer)
    assert missing.status_code == 404
    assert missing.json()["name"] == "RESOURCE_NOT_FOUND"
    assert missing.json()["details"][0]["issue"] == "INVALID_RESOURCE_ID"
    assert missing.headers["PayPal-Debug-Id"]
    body = {"intent": "CAPTURE", "purchase_units": [
        {"amount": {"currency_code": "USD", "value": "1.00"}, "invoice_id": "ord_idem"}
    ]}  # fmt: skip
    headers = {**bearer, "PayPal-Request-Id": "same-request"}
    first = httpx.post(f"{api}/v2/checkout/orders", json=body, headers=headers)
    # PayPal replays the first answer for a repeated PayPal-Request-Id, whatever the body
    body["purchase_units"][0]["amount"]["value"] = "2.00"
    again = httpx.post(f"{api}/v2/checkout/orders", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    early = httpx.post(f"{api}/v2/checkout/orders/{first.json()['id']}/capture", headers=bearer)
    assert early.status_code == 422
    assert early.json()["details"][0]["issue"] == "ORDER_NOT_APPROVED"
    bad = httpx.post(f"{api}/v2/checkout/orders", content=b"{", headers=bearer)
    assert bad.status_code == 400 and bad.json()["name"] == "INVALID_REQUEST"


@pytest.mark.skipif(not spec_available(), reason="../shared/reference/paypal is not present")
def test_every_object_validates_against_paypal_s_specs(sandbox: Sandbox) -> None:
    provider = PayPalProvider(**_settings(sandbox))
    paid = provider.create_payment(order_id="ord_spec", amount=Money.of("20.00", "USD"),
                                   payment_method="paypal_balance", idempotency_key="s1")  # fmt: skip
    refund = provider.refund_payment(paid.id, amount=Money.of("4.00", "USD"), idempotency_key="s2")
    authorized = provider.create_payment(order_id="ord_spec_auth", amount=Money.of("8", "USD"),
                                         payment_method="paypal_balance", capture="manual",
                                         idempotency_key="s3")  # fmt: skip
    pending = provider.create_payment(order_id="ord_spec_wait", amount=Money.of("8", "USD"),
                                      payment_method=None, idempotency_key="s4",
                                      return_url=RETURN)  # fmt: skip
    sub = provider.create_subscription(customer_id="c", price_id="P-SPEC", idempotency_key="s5")
    assert sub.redirect_url
    _approve(sub.redirect_url)
    invoice = provider.create_invoice(customer_id="x@example.com", idempotency_key="s6",
                                      line_items=[LineItem("A", Money.of("5", "USD"), 3)],
                                      order_id="ord_spec_inv", send=True)  # fmt: skip
    dispute = sandbox.paypal.open_dispute(paid.id)
    http = provider._http
    for order_id in (paid.id, authorized.id, pending.id):
        validate(ORDERS, "order", http.get(f"/v2/checkout/orders/{order_id}"))
    assert paid.charge_id
    validate(PAYMENTS, "capture-2", http.get(f"/v2/payments/captures/{paid.charge_id}"))
    auth_id = authorized.metadata["paypal_authorization_id"]
    validate(PAYMENTS, "authorization-2", http.get(f"/v2/payments/authorizations/{auth_id}"))
    validate(PAYMENTS, "refund", http.get(f"/v2/payments/refunds/{refund.id}"))
    validate(SUBSCRIPTIONS, "subscription", http.get(f"/v1/billing/subscriptions/{sub.id}"))
    validate(INVOICING, "invoice", http.get(f"/v2/invoicing/invoices/{invoice.id}"))
    validate(DISPUTES, "dispute", http.get(f"/v1/customer/disputes/{dispute}"))
    validate(DISPUTES, "dispute_search", http.get("/v1/customer/disputes"))
    now = datetime.now(timezone.utc)
    page = next(provider.iter_transaction_pages(since=now - timedelta(hours=1),
                                                until=now + timedelta(minutes=1)))  # fmt: skip
    validate("reporting_transactions_v1.json", "search_response", page)
    assert len(page["transaction_details"]) == 2  # the capture and its refund
    events = sandbox.bus.events("paypal", 100)
    assert {e.type for e in events} >= {
        "PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.REFUNDED", "PAYMENT.AUTHORIZATION.CREATED",
        "BILLING.SUBSCRIPTION.ACTIVATED", "INVOICING.INVOICE.CREATED", "CUSTOMER.DISPUTE.CREATED",
    }  # fmt: skip
    for event in events:
        validate(WEBHOOKS, "event", event.payload())
    # the webhook calls' answers and PayPal's error shapes
    sent = events[0]
    headers = sandbox.paypal.sign(sent.body, "http://127.0.0.1:9/x", int(time.time()))
    check = {
        "auth_algo": headers["PAYPAL-AUTH-ALGO"],
        "cert_url": headers["PAYPAL-CERT-URL"],
        "transmission_id": headers["PAYPAL-TRANSMISSION-ID"],
        "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
        "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"],
        "webhook_id": sandbox.paypal.webhook_id,
        "webhook_event": sent.payload(),
    }
    validate(WEBHOOKS, "verify_webhook_signature", check)
    answer = http.post("/v1/notifications/verify-webhook-signature", check)
    validate(WEBHOOKS, "verify_webhook_signature_response", answer)
    assert answer == {"verification_status": "SUCCESS"}
    hook = {"url": "http://127.0.0.1:9/spec", "event_types": [{"name": "*"}]}
    validate(WEBHOOKS, "webhook", http.post("/v1/notifications/webhooks", hook))
    bearer = {"Authorization": http._api.headers()["Authorization"]}
    base = sandbox.paypal.base_url
    missing = httpx.get(f"{base}/v2/checkout/orders/NOPE", headers=bearer)
    validate(ORDERS, "error_404", missing.json())
    refused = httpx.post(f"{base}/v2/checkout/orders/{pending.id}/capture", headers=bearer)
    validate(ORDERS, "error_422", refused.json())
    malformed = httpx.post(f"{base}/v2/checkout/orders", content=b"[", headers=bearer)
    validate(ORDERS, "error_400", malformed.json())


# -- the provider contract, for the real adapter pointed at the sandbox -----------------------------


class SandboxPayPalHarness(BaseHarness):
    currency = "USD"
    detects_idempotency_conflict = False  # PayPal replays a PayPal-Request-Id whatever the body
    missing_payment_id = "0MISSING00000000X"
    missing_refund_id = "1MISSING00000000X"
    secrets = (CLIENT_SECRET,)

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def make_provider(self) -> PaymentProvider:
        return PayPalProvider(**_settings(self.sb))

    def payment_method(self, outcome: Outcome) -> str | None:
        return {"succeed": "paypal_balance", "decline": "card_declined",
                "require_action": None}[outcome]  # fmt: skip

    def charge_count(self) -> int | None:
        return len(self.sb.paypal.records("orders"))

    # saved methods: the buyer approves a setup token on the sandbox's PayPal page with the
    # funding that scripts the outcome (told by the contract's ``prepare(SETUP_CREATE)``)
    saved_outcomes = frozenset({"succeed", "authentication_required"})
    _saving = "succeed"

    def prepare(self, scenario: Scenario, **details: Any) -> None:
        if scenario is Scenario.SETUP_CREATE and details.get("outcome"):
            self._saving = str(details["outcome"])

    def saved_method(self, outcome: str) -> str | None:
        return None  # the buyer picks the wallet at PayPal

    def customer_step(self, provider: PaymentProvider, setup: Any) -> dict[str, str]:
        from paygate.testing import pay_hosted_page

        funding = {"succeed": "paypal_balance", "authentication_required": "needs_authentication"}
        came_back = pay_hosted_page(setup.url, fields={"funding": funding[self._saving]})
        assert came_back.return_url is not None, came_back.error
        return _query(came_back.return_url)

    def _signed(self, body: bytes) -> WebhookDelivery:
        import time

        headers = dict(self.sb.paypal.sign(body, "http://127.0.0.1:9/hook", int(time.time())))
        return WebhookDelivery(body=body, headers={"Content-Type": "application/json", **headers})

    def _newest(self, event_type: str, cause: Any) -> WebhookDelivery:
        cause()
        for event in self.sb.bus.events("paypal", 1000):
            if event.type == event_type:
                return self._signed(event.body)
        raise AssertionError(f"the sandbox sent no {event_type}")

    def signed_webhook(self, kind: WebhookKind) -> WebhookDelivery | None:
        face = self.sb.paypal
        if kind == "payment_succeeded":
            return self._newest("PAYMENT.CAPTURE.COMPLETED",
                                lambda: face.trigger("PAYMENT.CAPTURE.COMPLETED"))  # fmt: skip
        if kind == "payment_failed":
            return self._newest("PAYMENT.CAPTURE.DECLINED",
                                lambda: face.trigger("PAYMENT.CAPTURE.DECLINED"))  # fmt: skip
        if kind == "refund":
            return self._newest("PAYMENT.CAPTURE.REFUNDED",
                                lambda: face.trigger("PAYMENT.CAPTURE.REFUNDED"))  # fmt: skip
        if kind == "refund_failed":

            def fail_a_refund() -> None:
                face.trigger("PAYMENT.CAPTURE.REFUNDED")
                with self.sb.state.transaction("paypal") as engine:
                    refund = next(o for o in reversed(engine._objects.values())
                                  if o["object"] == "refund")  # fmt: skip
                    engine.fail_refund(refund["id"])

            delivery = self._newest("PAYMENT.CAPTURE.REFUNDED", fail_a_refund)
            assert json.loads(delivery.body)["resource"]["status"] == "FAILED"
            return delivery
        if kind == "dispute_opened":
            return self._newest("CUSTOMER.DISPUTE.CREATED",
                                lambda: face.trigger("CUSTOMER.DISPUTE.CREATED"))  # fmt: skip
        event_id = face.emit_event("CUSTOMER.MERCHANT-INTEGRATION.SELLER-CONSENT-GRANTED",
                                   {"merchant_id": "SANDBOX"})  # fmt: skip
        return self._signed(self.sb.bus.get(event_id).body)


class TestPayPalAdapterOnTheSandbox(ProviderContract):
    @pytest.fixture
    def harness(self, sandbox: Sandbox) -> SandboxPayPalHarness:
        return SandboxPayPalHarness(sandbox)


# -- triggers and the CLI ------------------------------------------------------------------------


def test_every_trigger_emits_its_event(sandbox: Sandbox) -> None:
    types = sandbox.paypal.trigger_types()
    assert len(types) >= 7
    for event_type in types:
        emitted = [sandbox.bus.get(i).type for i in sandbox.paypal.trigger(event_type)]
        assert event_type in emitted, (event_type, emitted)


def test_cli_trigger_for_paypal(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    from paygate.__main__ import main

    argv = ["sandbox", "trigger", "CUSTOMER.DISPUTE.CREATED", "--provider", "paypal"]
    assert main([*argv, "--url", sandbox.base_url]) == 0
    printed = capsys.readouterr().out.split()
    assert [sandbox.bus.get(i).type for i in printed][-1] == "CUSTOMER.DISPUTE.CREATED"
    assert main(["sandbox", "trigger", "NOPE", "--provider", "paypal",
                 "--url", sandbox.base_url]) == 1  # fmt: skip
    assert "PAYMENT.CAPTURE.COMPLETED" in capsys.readouterr().err


# -- the adapter trusts a certificate only from a sandbox on this machine ----------------------------


def test_only_a_local_base_url_serves_trusted_certificates() -> None:
    from paygate.providers.paypal import _local_cert_prefix

    assert _local_cert_prefix(None) is None
    assert _local_cert_prefix("https://api-m.paypal.com") is None
    assert _local_cert_prefix("https://proxy.example.com/paypal") is None
    assert _local_cert_prefix("http://127.0.0.1:12111/paypal/") == (
        "http://127.0.0.1:12111/paypal/v1/notifications/certs/"
    )


def test_a_local_sandbox_does_not_open_other_certificate_urls(sandbox: Sandbox) -> None:
    """With a local base_url, a delivery naming a certificate elsewhere is still refused
    before anything is fetched (PayPal's hosts and https only)."""
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return httpx.get(url).content

    provider = PayPalProvider(**_settings(sandbox, cert_fetcher=fetch))
    event = sandbox.bus.get(sandbox.paypal.trigger("PAYMENT.CAPTURE.COMPLETED")[0])
    headers = dict(sandbox.paypal.sign(event.body, "http://127.0.0.1:9/hook", int(time.time())))
    for elsewhere in ("http://127.0.0.1:9/v1/notifications/certs/x",
                      "https://attacker.example/v1/notifications/certs/x"):  # fmt: skip
        with pytest.raises(WebhookVerificationError):
            provider.parse_webhook(event.body, {**headers, "PAYPAL-CERT-URL": elsewhere})
    assert fetched == []
    assert provider.parse_webhook(event.body, headers).type is EventType.PAYMENT_SUCCEEDED
    assert fetched == [sandbox.paypal.cert_url()]


def test_state_and_signing_key_survive_a_restart_with_a_sqlite_store(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'sandbox.db'}"
    with Sandbox(port=0, store=store) as first:
        provider = PayPalProvider(**_settings(first))
        paid = provider.create_payment(order_id="ord_keep", amount=Money.of("7.00", "USD"),
                                       payment_method="paypal_balance", idempotency_key="p1")  # fmt: skip
        webhook_id = first.paypal.webhook_id
        assert first.paypal.wire_id(first.paypal.records("orders")[paid.id]["engine_id"]) == paid.id
    with Sandbox(port=0, store=store) as second:
        assert second.paypal.webhook_id == webhook_id
        provider = PayPalProvider(**_settings(second))
        assert provider.get_payment(paid.id).status is PaymentStatus.SUCCEEDED
        refund = provider.refund_payment(paid.id, idempotency_key="p2")
        assert refund.amount == Money.of("7.00", "USD")
        event = next(e for e in second.bus.events("paypal") if e.type == "PAYMENT.CAPTURE.REFUNDED")
        headers = second.paypal.sign(event.body, "http://127.0.0.1:9/x", int(time.time()))
        assert provider.parse_webhook(event.body, headers).payment_id == paid.id


def test_a_pending_capture_settles_from_the_dashboard_s_engine_action(
    sandbox: Sandbox, shop: tuple[paygate.Gateway, _Endpoint]
) -> None:
    gw, endpoint = shop
    payment = gw.create_payment(order_id="ord_pp_pending", amount=Money.of("11.00", "USD"),
                                payment_method="pending_review")  # fmt: skip
    assert payment.status is PaymentStatus.PROCESSING
    _wait(endpoint, "PAYMENT.CAPTURE.PENDING")
    engine_id = sandbox.paypal.records("orders")[payment.id]["engine_id"]
    with sandbox.state.transaction("paypal") as engine:  # what the dashboard's Settle does
        engine.settle(engine_id)
    _wait(endpoint, "PAYMENT.CAPTURE.COMPLETED")
    stored = gw.payment_for_order("ord_pp_pending")
    assert stored is not None and stored.status is PaymentStatus.SUCCEEDED
    assert sandbox.paypal.wire_id(engine_id) == payment.id


def test_the_approval_page_s_data(sandbox: Sandbox) -> None:
    from paygate.sandbox.paypal import FUNDING, PayPalAPIError

    provider = PayPalProvider(**_settings(sandbox))
    payment = provider.create_payment(order_id="ord_view", amount=Money.of("6.00", "USD"),
                                      payment_method=None, idempotency_key="v1",
                                      return_url=RETURN)  # fmt: skip
    view = sandbox.paypal.approval_view(payment.id)
    assert view["kind"] == "order" and view["status"] == "PAYER_ACTION_REQUIRED"
    assert view["purchase_units"][0]["amount"] == {"currency_code": "USD", "value": "6.00"}
    assert view["payment_source"]["paypal"]["experience_context"]["return_url"] == RETURN
    assert view["funding"] == sorted(FUNDING)
    sub = provider.create_subscription(customer_id="c", price_id="P-VIEW", idempotency_key="v2")
    assert sandbox.paypal.approval_view(sub.id)["kind"] == "subscription"
    with pytest.raises(PayPalAPIError) as unknown:
        sandbox.paypal.approval_view("NOPE")
    assert unknown.value.status == 404
    answer = httpx.post(f"{sandbox.base_url}/paypal/approve/{payment.id}",
                        data={"action": "approve", "funding": "no-such-funding"})  # fmt: skip
    assert answer.status_code == 400


def test_malformed_bodies_are_400_not_500(sandbox: Sandbox) -> None:
    api = sandbox.paypal.base_url
    token = httpx.post(f"{api}/v1/oauth2/token", auth=(CLIENT_ID, CLIENT_SECRET)).json()
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    for body in (
        {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD",
                                                             "value": "1.00"},
                                                  "items": [{"quantity": "x"}]}]},
        {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "XXX",
                                                             "value": "1.00"}}]},
        {"intent": "CAPTURE", "purchase_units": "nope"},
        {"intent": "SELL"},
    ):  # fmt: skip
        answer = httpx.post(f"{api}/v2/checkout/orders", json=body, headers=bearer)
        assert answer.status_code in (400, 422), (body, answer.text)
        assert answer.json()["details"][0]["issue"]
