"""StripeProvider passes paygate's provider contract over mocked HTTP.

The harness plays Stripe with ``responses``: each scenario registers the answer Stripe would
give (bodies built from Stripe's example objects) and a matcher that checks the request the
adapter sends for it: path, amount, currency and the ``Idempotency-Key``. Replaying a key
returns the first answer, as Stripe does; reusing it with other parameters is Stripe's 400
``idempotency_error``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses

from paygate import Money, Payment, ProviderUnavailable, WebhookDelivery
from paygate.provider import PaymentProvider
from paygate.providers._stripe_webhook import sign
from paygate.providers.stripe import StripeProvider, to_stripe_amount
from paygate.testing.conformance import (
    BaseHarness,
    Outcome,
    ProviderContract,
    ProviderHarness,
    SavedOutcome,
    Scenario,
    WebhookKind,
)
from tests.fixtures.stripe import event_body, resource

API = "https://api.stripe.com/v1"
SECRET = "whsec_contract_stripe"
METHODS = {
    "succeed": "pm_card_visa",
    "decline": "pm_card_visa_chargeDeclinedInsufficientFunds",
    "require_action": "pm_card_threeDSecure2Required",
}


def _fields(request: Any) -> dict[str, str]:
    body = request.body or ""
    return dict(parse_qsl(body.decode() if isinstance(body, bytes) else body))


def _expect(**wanted: str | None) -> Any:
    """A responses matcher: these form fields (None: absent) and this Idempotency-Key."""
    key = wanted.pop("idempotency_key", None)

    def match(request: Any) -> tuple[bool, str]:
        fields = _fields(request)
        for name, value in wanted.items():
            if fields.get(name) != value:
                return False, f"{name}={fields.get(name)!r}, wanted {value!r}"
        if key is not None and request.headers.get("Idempotency-Key") != key:
            return False, f"Idempotency-Key {request.headers.get('Idempotency-Key')!r} != {key!r}"
        return True, ""

    return match


def _error(status: int, **error: Any) -> dict[str, Any]:
    return {"status": status, "json": {"error": error}, "headers": {"Request-Id": "req_contract"}}


_SAVED_SCENARIOS = frozenset(
    {
        Scenario.SETUP_CREATE,
        Scenario.SETUP_COMPLETE,
        Scenario.METHODS_LIST,
        Scenario.METHOD_GET,
        Scenario.METHOD_DEFAULT,
        Scenario.METHOD_DETACH,
        Scenario.CHARGE_SAVED,
        Scenario.CUSTOMER_LIFECYCLE,
    }
)


class StripeHarness(BaseHarness):
    currency = "USD"
    missing_payment_id = "pi_3ContractMissing000000"
    missing_refund_id = "re_3ContractMissing000000"

    def __init__(self, api: responses.RequestsMock) -> None:
        self.api = api
        self.intents: dict[str, dict[str, Any]] = {}
        self.answers_by_key: dict[str, dict[str, Any]] = {}
        self.created = 0

    def make_provider(self) -> PaymentProvider:
        return StripeProvider(api_key="sk_test_contract", webhook_secret=SECRET)

    def return_params(self, payment: Payment) -> dict[str, str]:
        return {"payment_intent": payment.id, "payment_intent_client_secret": "pi_x_secret_y"}

    def lifecycle(self) -> StripeLifecycle:
        return StripeLifecycle(self.api)

    def payment_method(self, outcome: Outcome) -> str | None:
        return METHODS[outcome]

    def charge_count(self) -> int | None:
        return len(self.answers_by_key)

    # -- Stripe's answers --------------------------------------------------------------------

    def _intent(self, amount: Money, order_id: str, **fields: Any) -> dict[str, Any]:
        self.created += 1
        value, currency = to_stripe_amount(amount)
        defaults: dict[str, Any] = {
            "id": f"pi_contract_{self.created}",
            "amount": value,
            "currency": currency,
            "status": "succeeded",
            "amount_received": value,
            "amount_capturable": 0,
            "last_payment_error": None,
            "next_action": None,
            "metadata": {"order_id": order_id},
        }
        body = resource("payment_intent", **{**defaults, **fields})
        self.intents[body["id"]] = body
        return body

    def _create(self, details: dict[str, Any], **intent_fields: Any) -> None:
        amount: Money = details["amount"]
        key = details["idempotency_key"]
        value, currency = to_stripe_amount(amount)
        body = self._intent(amount, details["order_id"], **intent_fields)
        self.answers_by_key[key] = body
        self.api.post(
            f"{API}/payment_intents",
            json=body,
            match=[
                _expect(
                    amount=str(value),
                    currency=currency,
                    capture_method=details["capture"],
                    confirm="true",
                    idempotency_key=key,
                )
            ],
        )

    def prepare(self, scenario: Scenario, **details: Any) -> None:
        if scenario in _SAVED_SCENARIOS:
            self._prepare_saved(scenario, **details)
            return
        amount: Money = details["amount"]
        value, currency = to_stripe_amount(amount)
        payment_id = details.get("payment_id", "")
        if scenario is Scenario.PAYMENT_SUCCEED:
            self._create(details)
        elif scenario is Scenario.PAYMENT_MANUAL:
            self._create(
                details, status="requires_capture", amount_received=0, amount_capturable=value
            )
        elif scenario is Scenario.PAYMENT_REQUIRE_ACTION:
            action = {
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "url": "https://hooks.stripe.com/3d_secure_2/authenticate/contract",
                    "return_url": "https://shop.example/return",
                },
            }
            self._create(details, status="requires_action", amount_received=0, next_action=action)
        elif scenario is Scenario.PAYMENT_DECLINE:
            self.api.post(
                f"{API}/payment_intents",
                **_error(
                    402,
                    type="card_error",
                    code="card_declined",
                    decline_code="insufficient_funds",
                    message="Your card has insufficient funds.",
                ),
                match=[_expect(amount=str(value), idempotency_key=details["idempotency_key"])],
            )
        elif scenario is Scenario.PAYMENT_REPLAY:
            key = details["idempotency_key"]
            self.api.post(
                f"{API}/payment_intents",
                json=self.answers_by_key[key],
                headers={"Idempotent-Replayed": "true"},
                match=[_expect(amount=str(value), idempotency_key=key)],
            )
        elif scenario is Scenario.PAYMENT_CONFLICT:
            self.api.post(
                f"{API}/payment_intents",
                **_error(
                    400,
                    type="idempotency_error",
                    message="Keys for idempotent requests can only be used with the same "
                    "parameters they were first used with.",
                ),
                match=[_expect(amount=str(value), idempotency_key=details["idempotency_key"])],
            )
        elif scenario is Scenario.PAYMENT_GET:
            self.api.get(f"{API}/payment_intents/{payment_id}", json=self.intents[payment_id])
        elif scenario is Scenario.PAYMENT_MISSING:
            self.api.get(
                f"{API}/payment_intents/{payment_id}",
                **_error(
                    404,
                    type="invalid_request_error",
                    code="resource_missing",
                    message=f"No such payment_intent: '{payment_id}'",
                ),
            )
        elif scenario in (Scenario.CAPTURE_FULL, Scenario.CAPTURE_PARTIAL):
            body = {**self.intents[payment_id], "status": "succeeded", "amount_received": value}
            self.api.post(
                f"{API}/payment_intents/{payment_id}/capture",
                json=body,
                match=[
                    _expect(
                        amount_to_capture=str(value)
                        if scenario is Scenario.CAPTURE_PARTIAL
                        else None
                    )
                ],
            )
        elif scenario is Scenario.CANCEL:
            body = {**self.intents[payment_id], "status": "canceled"}
            self.api.post(f"{API}/payment_intents/{payment_id}/cancel", json=body)
        elif scenario in (Scenario.REFUND_FULL, Scenario.REFUND_PARTIAL):
            body = resource(
                "refund",
                id=f"re_contract_{payment_id}",
                amount=value,
                currency=currency,
                payment_intent=payment_id,
                status="succeeded",
            )
            self.api.post(
                f"{API}/refunds",
                json=body,
                match=[
                    _expect(
                        payment_intent=payment_id,
                        amount=str(value) if scenario is Scenario.REFUND_PARTIAL else None,
                    )
                ],
            )
        elif scenario is Scenario.REFUND_OVER:
            self.api.post(
                f"{API}/refunds",
                **_error(
                    400,
                    type="invalid_request_error",
                    code="amount_too_large",
                    param="amount",
                    message=f"Refund amount ({value}) is greater than charge amount.",
                ),
                match=[_expect(payment_intent=payment_id, amount=str(value))],
            )
        elif scenario is Scenario.REFUND_GET:
            body = resource(
                "refund",
                id=details["refund_id"],
                amount=value,
                currency=currency,
                payment_intent=payment_id,
                status="succeeded",
            )
            self.api.get(f"{API}/refunds/{details['refund_id']}", json=body)
        elif scenario is Scenario.REFUND_MISSING:
            self.api.get(
                f"{API}/refunds/{details['refund_id']}",
                **_error(
                    404,
                    type="invalid_request_error",
                    code="resource_missing",
                    message=f"No such refund: '{details['refund_id']}'",
                ),
            )
        elif scenario is Scenario.CUSTOMER_CREATE:
            body = resource(
                "customer", id="cus_contract", email="contract@example.com", name="Contract Tester"
            )
            self.api.post(
                f"{API}/customers",
                json=body,
                match=[_expect(email="contract@example.com", name="Contract Tester")],
            )
        elif scenario is Scenario.CHECKOUT_CREATE:
            body = resource(
                "checkout.session",
                id="cs_test_contract",
                url="https://checkout.stripe.com/c/pay/cs_test_contract",
                status="open",
                mode="payment",
                client_reference_id=details["order_id"],
                amount_total=value,
                currency=currency,
            )
            self.api.post(
                f"{API}/checkout/sessions",
                json=body,
                match=[
                    _expect(
                        client_reference_id=details["order_id"],
                        idempotency_key=details["idempotency_key"],
                        **{"line_items[0][quantity]": "2", "mode": "payment"},
                    )
                ],
            )
        else:  # pragma: no cover - a new scenario the harness must learn
            raise AssertionError(f"StripeHarness cannot script {scenario}")

    # -- saved payment methods -------------------------------------------------------------

    saved_outcomes = frozenset({"succeed", "authentication_required"})

    def saved_method(self, outcome: SavedOutcome) -> str | None:
        # Stripe's test methods: 4000002760003184 wants authentication on every charge
        return {"succeed": "pm_card_visa", "authentication_required": "pm_card_authenticationRequired"}[
            outcome
        ]  # fmt: skip

    def _method(self, method_id: str, customer: str | None) -> dict[str, Any]:
        return resource("payment_method", id=method_id, customer=customer)

    def _customer(self, customer_id: str, **fields: Any) -> dict[str, Any]:
        return resource(
            "customer", **{"id": customer_id, "email": "contract@example.com", **fields}
        )

    def _prepare_saved(self, scenario: Scenario, **details: Any) -> None:
        customer_id: str = details["customer_id"]
        method_id: str | None = details.get("payment_method_id")
        if scenario is Scenario.SETUP_CREATE:
            method_id = f"pm_contract_{details['outcome']}"
            body = resource(
                "setup_intent", id="seti_contract", customer=customer_id, status="succeeded",
                payment_method=method_id, last_setup_error=None, next_action=None,
            )  # fmt: skip
            self.api.post(
                f"{API}/setup_intents",
                json=body,
                match=[
                    _expect(
                        customer=customer_id,
                        payment_method=self.saved_method(details["outcome"]),
                        confirm="true",
                        usage="off_session",
                    )
                ],
            )
        elif scenario is Scenario.METHOD_GET:
            self.api.get(
                f"{API}/payment_methods/{method_id}", json=self._method(str(method_id), customer_id)
            )
        elif scenario is Scenario.METHODS_LIST:
            rows = [self._method(method_id, customer_id)] if method_id else []
            page = {"object": "list", "url": "/v1/payment_methods", "has_more": False, "data": rows}
            self.api.get(f"{API}/customers/{customer_id}/payment_methods", json=page)
        elif scenario is Scenario.METHOD_DEFAULT:
            settings = {"default_payment_method": method_id, "custom_fields": None, "footer": None}
            self.api.post(
                f"{API}/customers/{customer_id}",
                json=self._customer(customer_id, invoice_settings=settings),
                match=[_expect(**{"invoice_settings[default_payment_method]": method_id})],
            )
        elif scenario is Scenario.METHOD_DETACH:
            self.api.post(
                f"{API}/payment_methods/{method_id}/detach",
                json=self._method(str(method_id), None),
            )
        elif scenario is Scenario.CHARGE_SAVED:
            match = [
                _expect(
                    customer=customer_id,
                    payment_method=method_id,
                    off_session="true",
                    confirm="true",
                    idempotency_key=details["idempotency_key"],
                )
            ]
            if details["detached"]:
                error = _error(
                    400, type="invalid_request_error", param="payment_method",
                    message="The provided PaymentMethod was previously used with a "
                    "PaymentIntent without Customer attachment, shared with a connected "
                    "account without Customer attachment, or was detached from a Customer. "
                    "It may not be used again.",
                )  # fmt: skip
                self.api.post(f"{API}/payment_intents", **error, match=match)
            elif details["outcome"] == "authentication_required":
                failed = self._intent(
                    details["amount"], details["order_id"], status="requires_payment_method",
                    amount_received=0,
                )  # fmt: skip
                error = _error(
                    402, type="card_error", code="authentication_required",
                    decline_code="authentication_required", payment_intent=failed,
                    message="Your card was declined. This transaction requires authentication.",
                )  # fmt: skip
                self.api.post(f"{API}/payment_intents", **error, match=match)
            else:
                body = self._intent(details["amount"], details["order_id"], customer=customer_id)
                self.answers_by_key[details["idempotency_key"]] = body
                self.api.post(f"{API}/payment_intents", json=body, match=match)
        elif scenario is Scenario.CUSTOMER_LIFECYCLE:
            url = f"{API}/customers/{customer_id}"
            self.api.get(url, json=self._customer(customer_id))
            self.api.post(
                url,
                json=self._customer(customer_id, name="Renamed Tester"),
                match=[_expect(name="Renamed Tester")],
            )
            page = {"object": "list", "url": "/v1/customers", "has_more": False,
                    "data": [self._customer(customer_id)]}  # fmt: skip
            self.api.get(f"{API}/customers", json=page)
            stub = {"id": customer_id, "object": "customer", "deleted": True}
            self.api.delete(url, json=stub)
            self.api.get(url, json=stub)  # Stripe answers for a deleted customer with a stub
        else:  # pragma: no cover - a new scenario the harness must learn
            raise AssertionError(f"StripeHarness cannot script {scenario}")

    # -- webhooks ----------------------------------------------------------------------------

    def signed_webhook(self, kind: WebhookKind) -> WebhookDelivery | None:
        intent_fields = {
            "id": "pi_hook",
            "amount": 2000,
            "currency": "usd",
            "amount_received": 2000,
            "metadata": {"order_id": "ord_hook"},
            "last_payment_error": None,
        }
        if kind == "payment_succeeded":
            stripe_type = "payment_intent.succeeded"
            obj = resource("payment_intent", **intent_fields, status="succeeded")
        elif kind == "payment_failed":
            stripe_type = "payment_intent.payment_failed"
            error = {"type": "card_error", "code": "card_declined", "decline_code": "do_not_honor"}
            obj = resource(
                "payment_intent",
                **{**intent_fields, "amount_received": 0, "last_payment_error": error},
                status="requires_payment_method",
            )
        elif kind == "refund":
            stripe_type = "refund.created"
            obj = resource(
                "refund", id="re_hook", amount=2000, currency="usd", payment_intent="pi_hook"
            )
        elif kind == "refund_failed":
            stripe_type = "refund.failed"
            obj = resource(
                "refund",
                id="re_hook",
                amount=2000,
                currency="usd",
                payment_intent="pi_hook",
                status="failed",
            )
        elif kind == "dispute_opened":
            stripe_type = "charge.dispute.created"
            obj = resource(
                "dispute", id="dp_hook", payment_intent="pi_hook", status="needs_response"
            )
        else:
            stripe_type = "payout.paid"
            obj = resource("payout")
        now = int(time.time())
        body = event_body(stripe_type, obj, event_id=f"evt_{kind}", created=now)
        return WebhookDelivery(
            body=body,
            headers={
                "Content-Type": "application/json",
                "Stripe-Signature": sign(body, SECRET, now),
            },
        )


@pytest.fixture
def mocked_http() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as api:
        yield api


class TestStripeProviderContract(ProviderContract):
    @pytest.fixture
    def harness(self, mocked_http: responses.RequestsMock) -> ProviderHarness:
        return StripeHarness(mocked_http)


def test_harness_is_a_provider_harness(mocked_http: responses.RequestsMock) -> None:
    assert isinstance(StripeHarness(mocked_http), ProviderHarness)


def test_harness_matchers_catch_a_wrong_request(mocked_http: responses.RequestsMock) -> None:
    """The canned answers only fire for the request the contract expects."""
    harness = StripeHarness(mocked_http)
    provider = harness.make_provider()
    harness.prepare(
        Scenario.PAYMENT_SUCCEED,
        amount=Money(2000, "USD"),
        order_id="o",
        idempotency_key="right-key",
        capture="automatic",
    )
    # responses refuses the unmatched request; the SDK reports that as a connection error
    with pytest.raises(ProviderUnavailable):
        provider.create_payment(
            order_id="o",
            amount=Money(2000, "USD"),
            payment_method="pm_card_visa",
            idempotency_key="wrong-key",
        )
    mocked_http.reset()  # the unmatched registration is expected to stay unfired


# -- after the first charge: a small stateful Stripe for the lifecycle tests ------------------


class StripeLifecycle:
    """Plays Stripe Billing for the contract's subscription and dispute tests: objects kept
    in dicts, answered (as Stripe's example objects with the state's fields) by
    ``responses`` callbacks; the driver methods are Stripe's test clock and card network.
    Each form field the adapter sends is checked against the object it sets."""

    def __init__(self, api: responses.RequestsMock) -> None:
        api.assert_all_requests_are_fired = False  # which calls a test makes is its own
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.failing: set[str] = set()
        self.answers_by_key: dict[str, Any] = {}
        self.count = 0
        pattern = re.compile(
            r"https://(api|files)\.stripe\.com/v1/(subscriptions|invoices|files|disputes)\b.*"
        )
        for method in (responses.GET, responses.POST):
            api.add_callback(method, pattern, callback=self._handle)

    # -- the driver ---------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_contract{self.count:04d}"

    def customer(self) -> str:
        return self._id("cus")

    def price(self, tier: str) -> str:
        return f"price_contract_{tier}"

    def _bill(self, sub: dict[str, Any]) -> str:
        invoice_id = self._id("in")
        paid = sub["customer"] not in self.failing
        self.invoices[invoice_id] = {"sub": sub["id"], "customer": sub["customer"],
                                     "status": "paid" if paid else "open", "attempts": 1}  # fmt: skip
        sub["status"] = "active" if paid else "past_due"
        return invoice_id

    def end_trial(self, subscription_id: str) -> None:
        self._bill(self.subscriptions[subscription_id])

    def renew(self, subscription_id: str, *, card_fails: bool = False) -> str:
        sub = self.subscriptions[subscription_id]
        if card_fails:
            self.failing.add(sub["customer"])
        if sub["cancel_at_period_end"]:
            sub["status"] = "canceled"
            return ""
        sub["start"] += 30 * 86_400
        return self._bill(sub)

    def fix_card(self, customer_id: str) -> None:
        self.failing.discard(customer_id)

    def disputed_payment(self) -> tuple[str, str]:
        payment_id, dispute_id = self._id("pi"), self._id("dp")
        self.disputes[dispute_id] = {"payment_intent": payment_id, "status": "needs_response",
                                     "evidence": {}, "submitted": 0}  # fmt: skip
        return payment_id, dispute_id

    def decide(self, dispute_id: str) -> None:
        dispute = self.disputes[dispute_id]
        proof = dispute["evidence"].get("shipping_tracking_number") or dispute["evidence"].get(
            "shipping_documentation"
        )
        dispute["status"] = "won" if dispute["submitted"] and proof else "lost"

    # -- the API ------------------------------------------------------------------------

    def _subscription(self, sub: dict[str, Any]) -> dict[str, Any]:
        item = resource("subscription_item", id=sub["item"], quantity=sub["quantity"],
                        price={**resource("price"), "id": sub["price"]},
                        current_period_start=sub["start"],
                        current_period_end=sub["start"] + 30 * 86_400)  # fmt: skip
        pause = {"behavior": "void", "resumes_at": None} if sub["paused"] else None
        return resource(
            "subscription", id=sub["id"], customer=sub["customer"], status=sub["status"],
            cancel_at_period_end=sub["cancel_at_period_end"], pause_collection=pause,
            trial_end=sub["trial_end"],
            items={"object": "list", "data": [item], "has_more": False, "url": "/v1/x"},
        )  # fmt: skip

    def _handle(self, request: Any) -> tuple[int, dict[str, str], str]:
        key = request.headers.get("Idempotency-Key")
        if request.method == "POST" and key in self.answers_by_key:
            return 200, {}, json.dumps(self.answers_by_key[key])  # Stripe replays a key
        path = request.url.split("/v1/", 1)[1].split("?")[0]
        query = dict(parse_qsl(request.url.partition("?")[2]))
        parts = path.split("/")
        if parts[0] == "files":
            answer: Any = resource("file", id=self._id("file"))
        elif parts[0] == "subscriptions":
            answer = self._subscriptions(request, parts, query)
        elif parts[0] == "invoices":
            answer = self._pay(parts[1])
        else:
            answer = self._disputes(request, parts, query)
        if request.method == "POST" and key:
            self.answers_by_key[key] = answer
        return 200, {"Request-Id": "req_contract"}, json.dumps(answer)

    def _subscriptions(self, request: Any, parts: list[str], query: dict[str, str]) -> Any:
        body = request.body or ""
        body = body.decode() if isinstance(body, bytes) else body
        fields = dict(parse_qsl(body, keep_blank_values=True))  # "pause_collection=" unsets
        known = set(resource("subscription")) | {"items", "proration_behavior", "trial_period_days"}
        assert {k.split("[")[0] for k in fields} <= known, fields
        if len(parts) == 1 and request.method == "GET":
            subs = [self._subscription(s) for s in self.subscriptions.values()
                    if s["customer"] == query.get("customer")]  # fmt: skip
            return {"object": "list", "data": subs, "has_more": False, "url": "/v1/subscriptions"}
        if len(parts) == 1:  # create
            sub = {"id": self._id("sub"), "item": self._id("si"), "customer": fields["customer"],
                   "price": fields["items[0][price]"], "quantity": 1, "status": "incomplete",
                   "start": 1_800_000_000, "cancel_at_period_end": False, "paused": False,
                   "trial_end": None}  # fmt: skip
            self.subscriptions[sub["id"]] = sub
            if "trial_period_days" in fields:
                sub["status"] = "trialing"
                sub["trial_end"] = sub["start"] + int(fields["trial_period_days"]) * 86_400
            else:
                self._bill(sub)
            return self._subscription(sub)
        sub = self.subscriptions[parts[1]]
        if request.method == "POST":
            if "items[0][price]" in fields:
                assert fields["items[0][id]"] == sub["item"]
                sub["price"] = fields["items[0][price]"]
            if "items[0][quantity]" in fields:
                sub["quantity"] = int(fields["items[0][quantity]"])
            if "cancel_at_period_end" in fields:
                sub["cancel_at_period_end"] = fields["cancel_at_period_end"] == "true"
            if "pause_collection[behavior]" in fields:
                sub["paused"] = True
            elif "pause_collection" in fields:
                sub["paused"] = False
        return self._subscription(sub)

    def _pay(self, invoice_id: str) -> Any:
        invoice = self.invoices[invoice_id]
        invoice["attempts"] += 1
        if invoice["customer"] not in self.failing:
            invoice["status"] = "paid"
            self.subscriptions[invoice["sub"]]["status"] = "active"
        details = {"type": "subscription_details",
                   "subscription_details": {"subscription": invoice["sub"], "metadata": None}}  # fmt: skip
        return resource("invoice", id=invoice_id, status=invoice["status"],
                        attempt_count=invoice["attempts"], parent=details)  # fmt: skip

    def _disputes(self, request: Any, parts: list[str], query: dict[str, str]) -> Any:
        if len(parts) == 1:
            found = [self._dispute(d) for d in self.disputes
                     if self.disputes[d]["payment_intent"] == query.get("payment_intent")]  # fmt: skip
            return {"object": "list", "data": found, "has_more": False, "url": "/v1/disputes"}
        dispute = self.disputes[parts[1]]
        if len(parts) == 3:  # close
            dispute["status"] = "lost"
        elif request.method == "POST":
            fields = _fields(request)
            evidence = {
                k[len("evidence[") : -1]: v for k, v in fields.items() if k.startswith("evidence[")
            }
            assert set(evidence) <= set(resource("dispute")["evidence"]), evidence
            dispute["evidence"].update(evidence)
            if fields.get("submit") == "true":
                dispute["submitted"] += 1
                dispute["status"] = "under_review"
        return self._dispute(parts[1])

    def _dispute(self, dispute_id: str) -> dict[str, Any]:
        dispute = self.disputes[dispute_id]
        details = {**resource("dispute")["evidence_details"],
                   "submission_count": dispute["submitted"]}  # fmt: skip
        return resource("dispute", id=dispute_id, payment_intent=dispute["payment_intent"],
                        status=dispute["status"], reason="product_not_received",
                        evidence_details=details, charge=None)  # fmt: skip
