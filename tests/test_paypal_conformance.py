"""PayPalProvider passes paygate's provider contract over mocked HTTP (``responses``).

The harness plays PayPal: each scenario registers the answers PayPal would give (shaped like
its OpenAPI specs, and checked against them where ../shared/reference is present) and checks
what the adapter sends: path, amount, ``PayPal-Request-Id``.

How outcomes are scripted on PayPal: ``require_action`` is the ordinary approval flow
(``payment_method=None``: the order waits for the buyer); ``succeed`` and ``decline`` use a
vaulted PayPal wallet (``payment_method=<vault id>``), which PayPal charges at once or
refuses with ``INSTRUMENT_DECLINED``. Replaying a ``PayPal-Request-Id`` returns the first
answer, as PayPal does; PayPal does not compare the bodies of a replayed request, so
``detects_idempotency_conflict`` is False (the Gateway detects that conflict itself).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses

from paygate import Money, SetupSession, WebhookDelivery
from paygate.provider import PaymentProvider
from paygate.providers.paypal import PayPalProvider
from paygate.testing.conformance import (
    BaseHarness,
    Outcome,
    ProviderContract,
    ProviderHarness,
    SavedOutcome,
    Scenario,
    WebhookKind,
)
from tests.paypal_support import (
    ACCESS_TOKEN,
    API,
    CLIENT_SECRET,
    DISPUTES,
    ORDERS,
    PAYMENTS,
    SUBSCRIPTIONS,
    Call,
    PayPalMock,
    authorization_json,
    capture_json,
    event_json,
    order_json,
    provider_settings,
    refund_json,
    sign,
    spec_available,
    validate,
)

VAULT = "vault_payment_tokens_v3.json"
VAULT_OK = "8kk8451tVaultOk"
VAULT_DECLINED = "9ll9562uVaultDeclined"


def _value(amount: Money) -> str:
    return f"{amount.to_decimal():f}"


class PayPalHarness(BaseHarness):
    currency = "USD"
    detects_idempotency_conflict = False
    missing_payment_id = "0MISSING00000000X"
    missing_refund_id = "1MISSING00000000X"
    secrets = (CLIENT_SECRET, ACCESS_TOKEN)

    def __init__(self, api: PayPalMock) -> None:
        self.api = api
        self.orders: dict[str, dict[str, Any]] = {}  # PayPal order id -> current order
        self.by_request_id: dict[str, dict[str, Any]] = {}
        self.counter = 0

    def make_provider(self) -> PaymentProvider:
        return PayPalProvider(**provider_settings())

    def lifecycle(self) -> PayPalLifecycle:
        return PayPalLifecycle(self.api)

    def payment_method(self, outcome: Outcome) -> str | None:
        return {"succeed": VAULT_OK, "decline": VAULT_DECLINED, "require_action": None}[outcome]

    def charge_count(self) -> int | None:
        return len(self.orders)

    # -- scripting ---------------------------------------------------------------------------

    def _new_ids(self) -> tuple[str, str, str]:
        self.counter += 1
        n = self.counter
        return f"5O{n:015d}", f"3C{n:015d}", f"0V{n:015d}"

    def _expect_create(self, details: dict[str, Any]) -> Any:
        def check(call: Call) -> None:
            unit = call.body["purchase_units"][0]
            sent = {name: unit["amount"][name] for name in ("currency_code", "value")}
            assert sent == {"currency_code": "USD", "value": _value(details["amount"])}
            assert unit["custom_id"] == details["order_id"]
            assert call.headers["PayPal-Request-Id"] == details["idempotency_key"]

        return check

    def _create(self, scenario: Scenario, details: dict[str, Any]) -> None:
        key = details["idempotency_key"]
        if scenario is Scenario.PAYMENT_REPLAY:
            self.api.on("POST", "/v2/checkout/orders", self.by_request_id[key], status=200,
                        check=self._expect_create(details))  # fmt: skip
            return
        if scenario is Scenario.PAYMENT_DECLINE:
            declined = {
                "name": "UNPROCESSABLE_ENTITY",
                "message": "The requested action could not be performed.",
                "details": [{"issue": "INSTRUMENT_DECLINED", "description": "Declined."}],
                "debug_id": "contract1",
            }
            self.api.on("POST", "/v2/checkout/orders", declined, status=422)
            return
        order_id, capture_id, authorization_id = self._new_ids()
        value = _value(details["amount"])
        common = {"ref": details["order_id"], "value": value}
        if scenario is Scenario.PAYMENT_REQUIRE_ACTION or scenario is Scenario.CHECKOUT_CREATE:
            order = order_json(order_id, status="PAYER_ACTION_REQUIRED", **common)
        elif details.get("capture") == "manual":
            authorization = authorization_json(authorization_id, order_id=order_id, **common)
            order = order_json(order_id, status="COMPLETED", intent="AUTHORIZE",
                               authorizations=[authorization], **common)  # fmt: skip
        else:
            capture = capture_json(capture_id, order_id=order_id, **common)
            order = order_json(order_id, status="COMPLETED", captures=[capture], **common)
        self.orders[order_id] = order
        self.by_request_id[key] = order
        self.api.on("POST", "/v2/checkout/orders", order, status=201,
                    request_schema=(ORDERS, "order_request"), response_schema=(ORDERS, "order"),
                    check=self._expect_create(details))  # fmt: skip

    # -- saved payment methods (Vault v3): a wallet the buyer approves at PayPal -------------

    #: a vaulted wallet asks nothing more off session; a vaulted card may want 3-D Secure:
    #: PayPal answers PAYER_ACTION_REQUIRED, scripted for "authentication_required"
    saved_outcomes = frozenset({"succeed", "authentication_required"})

    def saved_method(self, outcome: SavedOutcome) -> str | None:
        return None  # the buyer picks the wallet at PayPal

    def customer_step(self, provider: PaymentProvider, setup: SetupSession) -> dict[str, str]:
        assert setup.url and "approve" in setup.url
        return {"approval_token_id": setup.id, "approval_session_id": "contract"}

    def _token(self, token_id: str, customer_id: str) -> dict[str, Any]:
        return {
            "id": token_id,
            "customer": {"id": customer_id},
            "payment_source": {"paypal": {"email_address": "buyer@example.com",
                                          "usage_type": "MERCHANT"}},
            "links": [{"href": f"{API}/v3/vault/payment-tokens/{token_id}", "rel": "self"}],
        }  # fmt: skip

    def _prepare_saved(self, scenario: Scenario, details: dict[str, Any]) -> None:
        customer_id: str = details["customer_id"]
        method_id = details.get("payment_method_id") or VAULT_OK
        setup = {"id": "5C991763VB2781612", "customer": {"id": customer_id},
                 "status": "PAYER_ACTION_REQUIRED",
                 "links": [{"href": "https://www.sandbox.paypal.com/agreements/approve?x=1",
                            "rel": "approve", "method": "GET"}]}  # fmt: skip
        if scenario is Scenario.SETUP_CREATE:
            self.api.on("POST", "/v3/vault/setup-tokens", setup, status=201,
                        request_schema=(VAULT, "setup_token_request"),
                        response_schema=(VAULT, "setup_token_response"))  # fmt: skip
        elif scenario is Scenario.SETUP_COMPLETE:
            approved = {**setup, "status": "APPROVED"}
            self.api.on("GET", f"/v3/vault/setup-tokens/{setup['id']}", approved,
                        response_schema=(VAULT, "setup_token_response"))  # fmt: skip
            self.api.on("POST", "/v3/vault/payment-tokens", self._token(method_id, customer_id),
                        status=201, response_schema=(VAULT, "payment_token_response"))  # fmt: skip
        elif scenario is Scenario.METHOD_GET:
            self.api.on("GET", f"/v3/vault/payment-tokens/{method_id}",
                        self._token(method_id, customer_id))  # fmt: skip
        elif scenario is Scenario.METHODS_LIST:
            tokens = [self._token(method_id, customer_id)] if details["payment_method_id"] else []
            listing: dict[str, Any] = {
                "customer": {"id": customer_id}, "payment_tokens": tokens,
                "links": [{"href": f"{API}/v3/vault/payment-tokens", "rel": "self"}],
            }  # fmt: skip
            if tokens:  # the spec's totals start at 1: an empty vault answers without them
                listing.update(total_items=len(tokens), total_pages=1)
            self.api.on("GET", "/v3/vault/payment-tokens", listing,
                        response_schema=(VAULT, "customer_vault_payment_tokens_response"))  # fmt: skip
        elif scenario is Scenario.METHOD_DETACH:
            self.api.on("DELETE", f"/v3/vault/payment-tokens/{method_id}", None, status=204)
        elif scenario is Scenario.CHARGE_SAVED:
            if details["outcome"] == "authentication_required" and not details["detached"]:
                self._create(Scenario.PAYMENT_REQUIRE_ACTION, details)
            elif details["detached"]:
                gone = {"name": "UNPROCESSABLE_ENTITY",
                        "message": "The requested action could not be performed.",
                        "details": [{"issue": "PAYMENT_SOURCE_CANNOT_BE_USED",
                                     "description": "The vaulted payment source is deleted."}],
                        "debug_id": "contract-vault"}  # fmt: skip
                self.api.on("POST", "/v2/checkout/orders", gone, status=422)
            else:
                self._create(Scenario.PAYMENT_SUCCEED, details)
        else:  # pragma: no cover - a new scenario the harness must learn
            raise AssertionError(f"PayPalHarness cannot script {scenario}")

    def prepare(self, scenario: Scenario, **details: Any) -> None:
        if scenario.value.startswith(("setup.", "payment_method", "payment.saved")):
            self._prepare_saved(scenario, details)
            return
        if scenario in (
            Scenario.PAYMENT_SUCCEED,
            Scenario.PAYMENT_DECLINE,
            Scenario.PAYMENT_REQUIRE_ACTION,
            Scenario.PAYMENT_MANUAL,
            Scenario.PAYMENT_REPLAY,
            Scenario.CHECKOUT_CREATE,
        ):
            self._create(scenario, details)
            return
        if scenario is Scenario.REFUND_MISSING:
            missing = {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist.",
                       "details": [{"issue": "INVALID_RESOURCE_ID"}], "debug_id": "contract3"}  # fmt: skip
            self.api.on("GET", f"/v2/payments/refunds/{details['refund_id']}", missing, status=404)
            return
        if scenario is Scenario.REFUND_GET:
            unit = self.orders[details["payment_id"]]["purchase_units"][0]
            refund = refund_json(
                details["refund_id"], value=_value(details["amount"]), ref=unit["custom_id"],
                capture_id=unit["payments"]["captures"][0]["id"],
            )  # fmt: skip
            self.api.on("GET", f"/v2/payments/refunds/{details['refund_id']}", refund,
                        response_schema=(PAYMENTS, "refund"))  # fmt: skip
            return
        if scenario is Scenario.PAYMENT_MISSING:
            missing = {"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist.",
                       "details": [{"issue": "INVALID_RESOURCE_ID"}], "debug_id": "contract2"}  # fmt: skip
            self.api.on("GET", f"/v2/checkout/orders/{details['payment_id']}", missing, status=404)
            return
        order_id = details["payment_id"]
        order = self.orders[order_id]
        self.api.on("GET", f"/v2/checkout/orders/{order_id}", json.loads(json.dumps(order)))
        if scenario is Scenario.PAYMENT_GET:
            return
        unit = order["purchase_units"][0]
        common = {"ref": unit["custom_id"]}
        if scenario in (Scenario.CAPTURE_FULL, Scenario.CAPTURE_PARTIAL):
            authorization = unit["payments"]["authorizations"][0]
            capture = capture_json(
                "3C" + order_id[2:], value=_value(details["amount"]), order_id=order_id,
                authorization_id=authorization["id"], **common,
            )  # fmt: skip

            def check_capture(call: Call) -> None:
                assert call.headers.get("PayPal-Request-Id")
                if scenario is Scenario.CAPTURE_PARTIAL:
                    assert call.body["amount"]["value"] == _value(details["amount"])

            self.api.on(
                "POST", f"/v2/payments/authorizations/{authorization['id']}/capture", capture,
                status=201, request_schema=(PAYMENTS, "capture_request"),
                response_schema=(PAYMENTS, "capture-2"), check=check_capture,
            )  # fmt: skip
        elif scenario is Scenario.CANCEL:
            authorization = unit["payments"]["authorizations"][0]
            voided = {**authorization, "status": "VOIDED"}
            self.api.on("POST", f"/v2/payments/authorizations/{authorization['id']}/void",
                        voided, response_schema=(PAYMENTS, "authorization-2"))  # fmt: skip
        elif scenario in (Scenario.REFUND_FULL, Scenario.REFUND_PARTIAL):
            capture = unit["payments"]["captures"][0]
            refund = refund_json(
                "1R" + order_id[2:], value=_value(details["amount"]), capture_id=capture["id"],
                **common,
            )  # fmt: skip

            def check_refund(call: Call) -> None:
                assert call.headers.get("PayPal-Request-Id")
                if scenario is Scenario.REFUND_PARTIAL:
                    assert call.body["amount"]["value"] == _value(details["amount"])
                else:
                    assert "amount" not in call.body  # a full refund names no amount

            self.api.on(
                "POST", f"/v2/payments/captures/{capture['id']}/refund", refund, status=201,
                request_schema=(PAYMENTS, "refund_request"), response_schema=(PAYMENTS, "refund"),
                check=check_refund,
            )  # fmt: skip
        # REFUND_OVER: the adapter refuses it after the GET, before sending anything

    # -- webhooks ------------------------------------------------------------------------------

    def signed_webhook(self, kind: WebhookKind) -> WebhookDelivery | None:
        resources: dict[str, tuple[str, dict[str, Any]]] = {
            "payment_succeeded": ("PAYMENT.CAPTURE.COMPLETED", capture_json()),
            "payment_failed": ("PAYMENT.CAPTURE.DECLINED", capture_json(status="DECLINED")),
            "refund": ("PAYMENT.CAPTURE.REFUNDED", refund_json()),
            "refund_failed": ("PAYMENT.CAPTURE.REFUNDED", refund_json(status="FAILED")),
            "dispute_opened": (
                "CUSTOMER.DISPUTE.CREATED",
                {
                    "dispute_id": "PP-D-27803",
                    "create_time": "2026-11-22T01:00:00.000Z",
                    "disputed_transactions": [
                        {"seller_transaction_id": "3C679366HH908993F", "custom": "ord_1"}
                    ],
                    "reason": "UNAUTHORISED",
                    "status": "OPEN",
                    "dispute_amount": {"currency_code": "USD", "value": "19.99"},
                },
            ),
            "unknown": ("MERCHANT.PARTNER-CONSENT.REVOKED", {"merchant_id": "7XXXXXXXXXXXX"}),
        }
        event_type, resource = resources[kind]
        if kind in (
            "refund",
            "refund_failed",
            "dispute_opened",
        ):  # they name the capture; its order is looked up
            self.api.on("GET", "/v2/payments/captures/3C679366HH908993F", capture_json())
        body = json.dumps(event_json(event_type, resource)).encode()
        return WebhookDelivery(body=body, headers=sign(body))


class TestPayPalConformance(ProviderContract):
    @pytest.fixture
    def harness(self) -> Iterator[ProviderHarness]:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            api = PayPalMock(rsps)
            api.token()
            yield PayPalHarness(api)
            api.assert_all_called()


# -- after the first charge: a small stateful PayPal for the lifecycle tests ------------------


class PayPalLifecycle:
    """Plays PayPal's Subscriptions and Disputes APIs for the contract's lifecycle tests:
    state in dicts, answers shaped by the specs (and validated against them where
    ../shared/reference is present); the driver methods are PayPal's clock and the buyer."""

    def __init__(self, api: PayPalMock) -> None:
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.count = 0
        rsps, base = api.rsps, api.base
        for path, method in (
            (r"/v1/billing/subscriptions(/[^/?]+(/[a-z-]+)?)?$", "GET"),
            (r"/v1/billing/subscriptions(/[^/?]+(/[a-z-]+)?)?$", "POST"),
            (r"/v1/customer/disputes(/[^/?]+(/[a-z-]+)?)?(\?.*)?$", "GET"),
            (r"/v1/customer/disputes(/[^/?]+(/[a-z-]+)?)?$", "POST"),
            (r"/v2/payments/captures/[^/?]+$", "GET"),
            (r"/v2/checkout/orders/[^/?]+$", "GET"),
        ):
            rsps.add_callback(method, re.compile(re.escape(base) + path), callback=self._handle)

    def _id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count:013d}"

    # -- the driver ---------------------------------------------------------------------

    def customer(self) -> str:
        return self._id("cus_")

    def price(self, tier: str) -> str:
        return f"P-CONTRACT-{tier.upper()}"

    def end_trial(self, subscription_id: str) -> None:  # pragma: no cover - no trials
        raise AssertionError("PayPal declares no trials")

    def renew(self, subscription_id: str, *, card_fails: bool = False) -> str:
        sub = self.subscriptions[subscription_id]
        if card_fails:
            sub["failed"] = 1
        return subscription_id  # PayPal retries a subscription's balance, not an invoice

    def fix_card(self, customer_id: str) -> None:
        """The buyer updates their funding source at PayPal: nothing to script."""

    def disputed_payment(self) -> tuple[str, str]:
        order, capture, dispute = self._id("5O"), self._id("3C"), self._id("PP-D-")
        self.disputes[dispute] = {"order": order, "capture": capture, "status": "OPEN",
                                  "evidences": [], "outcome": None}  # fmt: skip
        return order, dispute

    def decide(self, dispute_id: str) -> None:
        dispute = self.disputes[dispute_id]
        dispute["status"] = "RESOLVED"
        dispute["outcome"] = (
            "RESOLVED_SELLER_FAVOUR" if dispute["evidences"] else "RESOLVED_BUYER_FAVOUR"
        )

    # -- the API ------------------------------------------------------------------------

    def _subscription(self, sub: dict[str, Any]) -> dict[str, Any]:
        owed = "20.00" if sub["failed"] else "0.00"
        return {"id": sub["id"], "plan_id": sub["plan"], "status": sub["status"],
                "custom_id": sub["customer"], "quantity": "1",
                "update_time": "2026-12-01T00:00:00Z", "billing_info": {
                    "outstanding_balance": {"currency_code": "USD", "value": owed},
                    "failed_payments_count": sub["failed"],
                    "next_billing_time": "2026-12-22T10:00:00Z"},
                "links": [{"href": f"{API}/v1/billing/subscriptions/{sub['id']}", "rel": "self",
                           "method": "GET"}]}  # fmt: skip

    def _dispute(self, dispute_id: str) -> dict[str, Any]:
        d = self.disputes[dispute_id]
        body: dict[str, Any] = {
            "dispute_id": dispute_id, "create_time": "2026-11-22T01:00:00.000Z",
            "update_time": "2026-11-22T01:00:00.000Z",
            "disputed_transactions": [{"seller_transaction_id": d["capture"], "custom": "ord_c",
                                       "gross_amount": {"currency_code": "USD", "value": "20.00"}}],
            "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED", "status": d["status"],
            "dispute_amount": {"currency_code": "USD", "value": "20.00"},
            "seller_response_due_date": "2026-12-02T01:00:00.000Z",
            "dispute_life_cycle_stage": "CHARGEBACK",
            "links": [{"href": f"{API}/v1/customer/disputes/{dispute_id}", "rel": "self",
                       "method": "GET"}],
        }  # fmt: skip
        if d["evidences"]:
            body["evidences"] = d["evidences"]
        if d["outcome"]:
            body["dispute_outcome"] = {"outcome_code": d["outcome"]}
        if spec_available():
            validate(DISPUTES, "dispute", body)
        return body

    def _handle(self, request: Any) -> tuple[int, dict[str, str], str]:
        path = request.url.split(".com", 1)[1]
        parts = path.split("?")[0].strip("/").split("/")
        json_body = request.headers.get("Content-Type", "").startswith("application/json")
        sent = json.loads(request.body) if request.body and json_body else None
        if parts[:3] == ["v1", "billing", "subscriptions"]:
            return self._subscriptions(request.method, parts[3:], sent)
        if parts[:2] == ["v2", "payments"]:
            capture = parts[-1]
            order = next(d["order"] for d in self.disputes.values() if d["capture"] == capture)
            return 200, {}, json.dumps(capture_json(capture, order_id=order))
        if parts[:2] == ["v2", "checkout"]:
            order = parts[-1]
            capture = next(d["capture"] for d in self.disputes.values() if d["order"] == order)
            found = order_json(order, status="COMPLETED", captures=[capture_json(capture)])
            return 200, {}, json.dumps(found)
        if len(parts) == 3:  # the dispute list
            wanted = dict(parse_qsl(request.url.partition("?")[2])).get("disputed_transaction_id")
            items = [{"dispute_id": d} for d, v in self.disputes.items() if v["capture"] == wanted]
            links = [{"href": f"{API}/v1/customer/disputes", "rel": "self", "method": "GET"}]
            return 200, {}, json.dumps({"items": items, "links": links})
        dispute = self.disputes[parts[3]]
        if len(parts) == 5 and parts[4] == "provide-evidence":
            assert request.headers["Content-Type"].startswith("multipart/form-data")
            dispute["evidences"].append({"evidence_type": "PROOF_OF_FULFILLMENT",
                                         "source": "SUBMITTED_BY_SELLER"})  # fmt: skip
            dispute["status"] = "UNDER_REVIEW"
        elif len(parts) == 5 and parts[4] == "accept-claim":
            dispute.update(status="RESOLVED", outcome="RESOLVED_BUYER_FAVOUR")
        if len(parts) == 5:
            return 200, {}, json.dumps({"links": [{"href": f"{API}{path}", "rel": "self",
                                                   "method": "GET"}]})  # fmt: skip
        return 200, {}, json.dumps(self._dispute(parts[3]))

    def _subscriptions(
        self, method: str, rest: list[str], sent: Any
    ) -> tuple[int, dict[str, str], str]:
        schemas = {"": "subscription_request_post", "suspend": "subscription_suspend_request",
                   "activate": "subscription_activate_request",
                   "capture": "subscription_capture_request"}  # fmt: skip
        action = rest[1] if len(rest) == 2 else ""
        if method == "POST" and spec_available() and action in schemas:
            validate(SUBSCRIPTIONS, schemas[action], sent)
        if not rest:  # create: PayPal's buyer approves at once in this play
            sub = {"id": self._id("I-"), "plan": sent["plan_id"], "customer": sent["custom_id"],
                   "status": "ACTIVE", "failed": 0}  # fmt: skip
            self.subscriptions[sub["id"]] = sub
            return 201, {}, json.dumps(self._subscription(sub))
        sub = self.subscriptions[rest[0]]
        if action == "suspend":
            sub["status"] = "SUSPENDED"
        elif action == "activate":
            sub["status"] = "ACTIVE"
        elif action == "capture":
            sub["failed"] = 0
            return 200, {}, json.dumps({"id": self._id("TX"), "status": "COMPLETED",
                                        "time": "2026-12-23T10:00:00Z"})  # fmt: skip
        if action:
            return 204, {}, ""
        return 200, {}, json.dumps(self._subscription(sub))
