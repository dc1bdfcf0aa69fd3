"""The real Square adapter (and the real ``squareup`` SDK) against the sandbox's Square face.

The whole Gateway flow with only the sandbox running (payment link → the customer pays on
the link's page, an HTTP form post → return; a declined card; delayed capture; partial
refunds; subscription; invoice; dispute; reconciliation ``--from-api``), with the webhooks
delivered over HTTP to a local endpoint and verified by paygate; every request and answer
checked against Square's OpenAPI spec; the provider contract.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

import paygate
from paygate import LineItem, Money, WebhookDelivery
from paygate.errors import CardDeclined, WebhookVerificationError
from paygate.models import (
    DisputeStatus,
    InvoiceStatus,
    PaymentStatus,
    RefundStatus,
    SubscriptionStatus,
)
from paygate.provider import PaymentProvider
from paygate.providers.square import SquareProvider
from paygate.sandbox import Sandbox
from paygate.testing.conformance import BaseHarness, Outcome, ProviderContract, WebhookKind
from paygate.testing.sandbox import Delivery, WebhookReceiver
from tests.test_square_spec import SPEC_PATH, check_call, validate

pytest.importorskip("werkzeug", reason="the sandbox needs the 'sandbox' extra")

TOKEN = "EAAA-sandbox-token-do-not-log"
LOCATION = "SANDBOX"
RETURN = "http://127.0.0.1:9/square/return"


def _settings(sb: Sandbox, webhook_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "access_token": TOKEN,
        "location_id": LOCATION,
        "base_url": sb.square.base_url,
        "webhook_signature_key": sb.square.signature_key,
        "webhook_url": webhook_url,
        **overrides,
    }


@pytest.fixture
def checked(sandbox: Sandbox) -> Sandbox:
    """The sandbox with every Square call checked against Square's spec (when present)."""
    if SPEC_PATH.is_file():
        sandbox.square.api.observers.append(check_call)
    return sandbox


class _Endpoint:
    """A shop's webhook endpoint: every delivery goes through ``gw.handle_webhook``."""

    def __init__(self) -> None:
        self.gw: paygate.Gateway | None = None
        self.handled: list[str] = []
        self.rejected = 0
        self._lock = threading.Lock()

    def __call__(self, delivery: Delivery) -> int:
        assert self.gw is not None
        try:
            result = self.gw.handle_webhook(delivery.body, delivery.headers)
        except WebhookVerificationError:
            with self._lock:
                self.rejected += 1
            return 400
        with self._lock:
            self.handled.append(json.loads(delivery.body)["type"])
        return result.http_status

    def wait(self, predicate: Callable[[list[str]], bool]) -> None:
        deadline = time.monotonic() + 30  # a loaded CI machine
        while not predicate(list(self.handled)):
            assert time.monotonic() < deadline, f"handled so far: {self.handled}"
            time.sleep(0.02)


@pytest.fixture
def shop(checked: Sandbox, tmp_path: Path) -> Iterator[tuple[paygate.Gateway, _Endpoint]]:
    endpoint = _Endpoint()
    with WebhookReceiver(endpoint) as receiver:
        gw = paygate.connect(
            "square", f"sqlite:///{tmp_path / 'shop.db'}", **_settings(checked, receiver.url)
        )
        endpoint.gw = gw
        checked.bus.forward_to.append(receiver.url)
        yield gw, endpoint
        assert checked.bus.wait_idle()
        gw.close()


def _pay_page(url: str, card: str) -> str:
    """The customer on the payment-link page: the page's own form post."""
    answer = httpx.post(url, data={"card": card})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def test_payment_link_paid_on_its_page_then_partial_refunds(
    checked: Sandbox, shop: tuple[paygate.Gateway, _Endpoint], tmp_path: Path
) -> None:
    gw, endpoint = shop
    session = gw.create_checkout(
        order_id="ord_sq_1",
        line_items=[LineItem("Tea", Money.of("4.50", "USD"), 4)],
        success_url=RETURN,
        cancel_url=RETURN,
    )
    assert session.url == f"{checked.base_url}/square/pay/{session.id}"
    declined = _pay_page(session.url, "4000 0000 0000 0002")
    assert declined == f"{session.url}?error=card_declined"
    back = _pay_page(session.url, "4111 1111 1111 1111")
    assert back.startswith(RETURN + "?")
    paid = gw.handle_return(dict(httpx.URL(back).params))
    assert paid.status is PaymentStatus.SUCCEEDED and paid.amount == Money.of("18.00", "USD")
    assert paid.order_id == "ord_sq_1"
    endpoint.wait(lambda handled: handled.count("payment.created") >= 2)

    gw.refund(paid.id, Money.of("3.00", "USD"))
    refund = gw.refund(paid.id, Money.of("5.00", "USD"))
    assert refund.status in (RefundStatus.PENDING, RefundStatus.SUCCEEDED)
    assert gw.provider.get_refund(refund.id).status is RefundStatus.SUCCEEDED
    endpoint.wait(lambda handled: handled.count("refund.updated") >= 2)
    stored = gw.payment_for_order("ord_sq_1")
    assert stored is not None and stored.status is PaymentStatus.PARTIALLY_REFUNDED
    assert stored.amount_refunded == Money.of("8.00", "USD")
    assert endpoint.rejected == 0

    # reconciliation through ListPayments, as the CLI runs it. ListPayments names the order
    # by reference_id, which a payment made on a link's page does not carry: that one is
    # matched by the payouts reader (the link's note), here the direct payment is
    gw.create_payment(order_id="ord_sq_direct", amount=Money.of("10.00", "USD"),
                      payment_method="cnon:card-nonce-ok")  # fmt: skip
    from paygate.__main__ import main

    out = tmp_path / "report.json"
    now = datetime.now(timezone.utc)
    env = {
        "PAYGATE_PROVIDER": "square",
        "PAYGATE_SQUARE_ACCESS_TOKEN": TOKEN,
        "PAYGATE_SQUARE_LOCATION_ID": LOCATION,
        "PAYGATE_SQUARE_BASE_URL": checked.square.base_url,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        code = main([
            "reconcile", "--provider", "square", "--from-api",
            "--since", (now - timedelta(hours=1)).isoformat(),
            "--until", (now + timedelta(minutes=5)).isoformat(),
            "--store", f"sqlite:///{tmp_path / 'shop.db'}", "--out", str(out), "--no-progress",
        ])  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 1  # differences found: the link's payment, its refunds
    assert report["counts"]["matched"] == 1, report["counts"]
    differences = {line["order_id"] for line in report["lines"]}
    assert differences == {None}  # only the link's records, which name no order


def test_decline_and_delayed_capture(
    checked: Sandbox, shop: tuple[paygate.Gateway, _Endpoint]
) -> None:
    gw, endpoint = shop
    with pytest.raises(CardDeclined) as declined:
        gw.create_payment(order_id="ord_sq_decline", amount=Money.of("9.00", "USD"),
                          payment_method="cnon:card-nonce-declined")  # fmt: skip
    assert declined.value.decline_code == "card_declined"
    authorized = gw.create_payment(
        order_id="ord_sq_auth", amount=Money.of("50.00", "USD"),
        payment_method="cnon:card-nonce-ok", capture="manual",
    )  # fmt: skip
    assert authorized.status is PaymentStatus.AUTHORIZED
    captured = gw.capture(authorized.id, Money.of("30.00", "USD"))
    assert captured.status is PaymentStatus.SUCCEEDED
    assert captured.amount_captured == Money.of("30.00", "USD")
    other = gw.create_payment(
        order_id="ord_sq_cancel", amount=Money.of("5.00", "USD"),
        payment_method="cnon:card-nonce-ok", capture="manual",
    )  # fmt: skip
    assert gw.cancel(other.id).status is PaymentStatus.CANCELED
    endpoint.wait(lambda handled: handled.count("payment.updated") >= 2)
    assert gw.get_payment(authorized.id).status is PaymentStatus.SUCCEEDED
    assert endpoint.rejected == 0


def test_subscription_invoice_and_dispute(
    checked: Sandbox, shop: tuple[paygate.Gateway, _Endpoint]
) -> None:
    gw, endpoint = shop
    customer = gw.create_customer(email="buyer@example.com", name="Sandbox Buyer")
    subscription = gw.create_subscription(customer_id=customer.id, price_id="PLAN_VARIATION_1")
    assert subscription.status is SubscriptionStatus.ACTIVE
    checked.square.renew_subscription(subscription.id)
    checked.square.renew_subscription(subscription.id, success=False)
    assert gw.provider.get_subscription(subscription.id).status is SubscriptionStatus.CANCELED
    endpoint.wait(lambda handled: handled.count("subscription.updated") >= 2)

    invoice = gw.create_invoice(
        customer_id=customer.id, line_items=[LineItem("Hours", Money.of("120", "USD"))],
        order_id="ord_sq_invoice", send=True,
    )  # fmt: skip
    assert invoice.status is InvoiceStatus.OPEN and invoice.hosted_url
    checked.square.pay_invoice(invoice.id)
    endpoint.wait(lambda handled: "invoice.payment_made" in handled)

    payment = gw.create_payment(order_id="ord_sq_dispute", amount=Money.of("70.00", "USD"),
                                payment_method="cnon:card-nonce-ok")  # fmt: skip
    dispute_id = checked.square.open_dispute(payment.id)
    assert gw.provider.get_dispute(dispute_id).status is DisputeStatus.OPEN
    checked.square.resolve_dispute(dispute_id, won=False)
    assert gw.provider.get_dispute(dispute_id).status is DisputeStatus.LOST
    endpoint.wait(lambda handled: "dispute.state.updated" in handled)
    assert endpoint.rejected == 0


def test_errors_idempotency_and_signatures_in_square_s_shapes(checked: Sandbox) -> None:
    api = checked.square.base_url
    body = {
        "source_id": "cnon:card-nonce-ok",
        "idempotency_key": "same-key",
        "amount_money": {"amount": 100, "currency": "USD"},
        "location_id": LOCATION,
    }
    assert httpx.post(f"{api}/v2/payments", json=body).status_code == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    first = httpx.post(f"{api}/v2/payments", json=body, headers=bearer)
    again = httpx.post(f"{api}/v2/payments", json=body, headers=bearer)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    other = httpx.post(f"{api}/v2/payments", json={**body, "note": "x"}, headers=bearer)
    assert other.status_code == 400
    assert other.json()["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"
    missing = httpx.get(f"{api}/v2/payments/nope", headers=bearer)
    assert missing.status_code == 404 and missing.json()["errors"][0]["category"]
    # a delivery is signed for the URL it goes to: another URL's signature does not verify
    with WebhookReceiver() as receiver:
        checked.bus.forward_to.append(receiver.url)
        checked.square.trigger("payment.created")
        delivery = receiver.wait_for(lambda d: len(d) >= 1)[0]
    right = SquareProvider(**_settings(checked, receiver.url))
    wrong = SquareProvider(**_settings(checked, receiver.url + "/other"))
    assert right.parse_webhook(delivery.body, delivery.headers).payment_id
    with pytest.raises(WebhookVerificationError):
        wrong.parse_webhook(delivery.body, delivery.headers)
    right.close()
    wrong.close()


@pytest.mark.skipif(not SPEC_PATH.is_file(), reason="../shared/reference/square is not present")
def test_every_event_validates_against_square_s_spec(checked: Sandbox) -> None:
    face = checked.square
    for event_type in face.trigger_types():
        assert face.trigger(event_type), event_type
    seen = set()
    for event in checked.bus.events("square", 1000):
        body = event.payload()
        seen.add(body["type"])
        if body["type"].startswith("dispute."):
            validate(body["data"]["object"]["dispute"], "Dispute")  # see test_square_webhooks
        else:
            name = body["type"].replace(".", "_").split("_")
            validate(body, "".join(part.capitalize() for part in name) + "Event")
    assert seen >= {"payment.created", "payment.updated", "refund.created", "refund.updated",
                    "dispute.created", "dispute.state.updated", "subscription.created",
                    "subscription.updated", "invoice.payment_made"}  # fmt: skip


# -- the provider contract, for the real adapter pointed at the sandbox -----------------------------

HOOK = "http://127.0.0.1:9/square-hook"


class SandboxSquareHarness(BaseHarness):
    outcomes = frozenset({"succeed", "decline"})  # Square's API has no 3-D Secure redirect
    currency = "USD"
    missing_payment_id = "NoSuchPaymentContract000000"
    missing_refund_id = "NoSuchRefundContract000000"
    secrets = (TOKEN,)

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def make_provider(self) -> PaymentProvider:
        return SquareProvider(**_settings(self.sb, HOOK))

    def payment_method(self, outcome: Outcome) -> str | None:
        return {"succeed": "cnon:card-nonce-ok", "decline": "cnon:card-nonce-declined"}[outcome]

    def charge_count(self) -> int | None:
        return len(self.sb.square.api.payments)

    def _newest(self, square_type: str, cause: Callable[[], object]) -> WebhookDelivery:
        cause()
        for event in self.sb.bus.events("square", 1000):
            if event.type == square_type:
                headers = dict(self.sb.square.sign(event.body, HOOK, int(time.time())))
                return WebhookDelivery(event.body, {"content-type": "application/json", **headers})
        raise AssertionError(f"the sandbox sent no {square_type}")

    def signed_webhook(self, kind: WebhookKind) -> WebhookDelivery | None:
        face = self.sb.square
        if kind == "payment_succeeded":
            return self._newest("payment.created", lambda: face.trigger("payment.created"))
        if kind == "payment_failed":
            return self._newest("payment.created", lambda: face.trigger("payment.failed"))
        if kind == "refund":
            return self._newest("refund.created", lambda: face.trigger("refund.created"))
        if kind == "refund_failed":

            def fail_a_refund() -> None:
                face.trigger("refund.created")
                with self.sb.state.transaction("square"):
                    refund = sorted(face.api.refunds.values(), key=lambda r: r["id"])[-1]
                    face.api.complete_refund(refund["id"], "FAILED")

            return self._newest("refund.updated", fail_a_refund)
        if kind == "dispute_opened":
            return self._newest("dispute.created", lambda: face.trigger("dispute.created"))

        def unknown() -> None:
            event = face.api.event("team_member.created", "team_member", {"id": "TMcontract"})
            face.emit(event, event_id=event["event_id"], type=event["type"])

        return self._newest("team_member.created", unknown)


class TestSquareAdapterOnTheSandbox(ProviderContract):
    @pytest.fixture
    def harness(self, checked: Sandbox) -> SandboxSquareHarness:
        return SandboxSquareHarness(checked)


# -- triggers and the CLI ------------------------------------------------------------------------

#: triggers named for the payment's status: Square reports them as payment.created
_TRIGGER_EVENTS = {"payment.failed": "payment.created", "payment.pending": "payment.created"}


def test_every_trigger_emits_its_event(sandbox: Sandbox) -> None:
    types = sandbox.square.trigger_types()
    assert len(types) >= 9
    for trigger in types:
        emitted = [sandbox.bus.get(i).type for i in sandbox.square.trigger(trigger)]
        assert _TRIGGER_EVENTS.get(trigger, trigger) in emitted, (trigger, emitted)


def test_cli_trigger_for_square(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    from paygate.__main__ import main

    argv = ["sandbox", "trigger", "dispute.created", "--provider", "square"]
    assert main([*argv, "--url", sandbox.base_url]) == 0
    printed = capsys.readouterr().out.split()
    assert [sandbox.bus.get(i).type for i in printed][-1] == "dispute.created"


def test_state_survives_a_restart_with_a_sqlite_store(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'sandbox.db'}"
    with Sandbox(port=0, store=store) as first:
        provider = SquareProvider(**_settings(first, HOOK))
        paid = provider.create_payment(order_id="ord_keep", amount=Money.of("7.00", "USD"),
                                       payment_method="cnon:card-nonce-ok", idempotency_key="p1")  # fmt: skip
        key = first.square.signature_key
        provider.close()
    with Sandbox(port=0, store=store) as second:
        assert second.square.signature_key == key
        provider = SquareProvider(**_settings(second, HOOK))
        assert provider.get_payment(paid.id).status is PaymentStatus.SUCCEEDED
        again = provider.create_payment(order_id="ord_keep", amount=Money.of("7.00", "USD"),
                                        payment_method="cnon:card-nonce-ok", idempotency_key="p1")  # fmt: skip
        assert again.id == paid.id  # the idempotency record was kept too
        other = provider.create_payment(order_id="ord_new", amount=Money.of("1.00", "USD"),
                                        payment_method="cnon:card-nonce-ok", idempotency_key="p2")  # fmt: skip
        assert other.id != paid.id
        provider.close()


def test_the_payment_link_page_s_data(sandbox: Sandbox) -> None:
    from paygate.sandbox.square import SquarePageError

    provider = SquareProvider(**_settings(sandbox, HOOK))
    session = provider.create_checkout_session(
        order_id="ord_view", line_items=[LineItem("Cup", Money.of("2.00", "USD"), 3)],
        success_url=RETURN, cancel_url=RETURN, idempotency_key="v1",
    )  # fmt: skip
    view = sandbox.square.link_view(session.id)
    assert view["payment_link"]["url"] == session.url
    assert view["order"]["total_money"] == {"amount": 600, "currency": "USD"}
    with pytest.raises(SquarePageError) as unknown:
        sandbox.square.link_view("NOPE")
    assert unknown.value.status == 404
    nowhere = httpx.post(f"{sandbox.base_url}/square/pay/NOPE", data={"card": "4111111111111111"})
    assert nowhere.status_code == 404
    unknown_card = _pay_page(session.url, "1234 5678")
    assert unknown_card.endswith("?error=incorrect_number")
    provider.close()
