"""SquareProvider passes paygate's provider contract over mocked HTTP.

The harness plays Square with the stateful in-memory API (``SquareMockAPI``) behind an
``httpx.MockTransport``: the real SDK and adapter run unchanged, every request and answer
is validated against Square's OpenAPI spec (where the reference is present), idempotency
keys behave as Square's do, and webhooks are signed as Square signs them.

Square's CreatePayment never answers "requires action" (3-D Secure happens in the browser
with the Web Payments SDK before the payment is created), so that outcome is not offered.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from paygate import WebhookDelivery
from paygate.provider import PaymentProvider
from paygate.providers._square_mock import VERIFICATION_LATER_SOURCE, SquareMockAPI
from paygate.providers.square import SquareProvider
from paygate.testing.conformance import (
    BaseHarness,
    Outcome,
    ProviderContract,
    SavedOutcome,
    WebhookKind,
)
from tests.test_square_spec import ACCESS_TOKEN, SIGNATURE_KEY, SPEC_PATH, WEBHOOK_URL, check_call

PAYMENT = {
    "id": "R2B3Z8WMVt3EAmzYWLZvz7Y69EbZY",
    "amount_money": {"amount": 2000, "currency": "USD"},
    "reference_id": "ord_contract_hook",
    "created_at": "2026-01-01T00:00:00.000Z",
}


class SquareHarness(BaseHarness):
    outcomes = frozenset({"succeed", "decline"})
    currency = "USD"
    missing_payment_id = "NoSuchPaymentContract000000"
    missing_refund_id = "NoSuchRefundContract000000"
    secrets = (ACCESS_TOKEN, SIGNATURE_KEY)

    def __init__(self, api: SquareMockAPI) -> None:
        self.api = api
        self.driver: SquareLifecycle | None = None

    def make_provider(self) -> PaymentProvider:
        return SquareProvider(
            access_token=ACCESS_TOKEN,
            location_id="LOC1",
            webhook_signature_key=SIGNATURE_KEY,
            webhook_url=WEBHOOK_URL,
            http_client=httpx.Client(transport=httpx.MockTransport(self._route)),
        )

    def _route(self, request: httpx.Request) -> httpx.Response:
        """The mock API, except multipart evidence files (the lifecycle driver's)."""
        if self.driver is not None and request.url.path.endswith("/evidence-files"):
            return self.driver.evidence_file(request)
        return self.api.handle(request)

    def lifecycle(self) -> SquareLifecycle:
        self.driver = SquareLifecycle(self.api)
        return self.driver

    def payment_method(self, outcome: Outcome) -> str | None:
        return {"succeed": "cnon:card-nonce-ok", "decline": "cnon:card-nonce-declined"}[outcome]

    #: cards on file from a nonce (CreateCard); no default method: Square has none
    saved_outcomes = frozenset({"succeed", "authentication_required"})

    def saved_method(self, outcome: SavedOutcome) -> str | None:
        return {
            "succeed": "cnon:card-nonce-ok",
            "authentication_required": VERIFICATION_LATER_SOURCE,
        }[outcome]

    def signed_webhook(self, kind: WebhookKind) -> WebhookDelivery | None:
        if kind == "payment_succeeded":
            event = self.api.event("payment.updated", "payment", {**PAYMENT, "status": "COMPLETED"})
        elif kind == "payment_failed":
            event = self.api.event("payment.updated", "payment", {**PAYMENT, "status": "FAILED"})
        elif kind == "refund":
            refund = {
                "id": f"{PAYMENT['id']}_RF1",
                "status": "PENDING",
                "payment_id": PAYMENT["id"],
                "amount_money": {"amount": 500, "currency": "USD"},
            }
            event = self.api.event("refund.created", "refund", refund)
        elif kind == "refund_failed":
            refund = {
                "id": f"{PAYMENT['id']}_RF2",
                "status": "FAILED",
                "payment_id": PAYMENT["id"],
                "amount_money": {"amount": 500, "currency": "USD"},
            }
            event = self.api.event("refund.updated", "refund", refund)
        elif kind == "dispute_opened":
            dispute = {
                "id": "DSPcontract",
                "state": "EVIDENCE_REQUIRED",
                "amount_money": {"amount": 2000, "currency": "USD"},
                "disputed_payment": {"payment_id": PAYMENT["id"]},
            }
            event = self.api.event("dispute.created", "dispute", dispute)
        else:
            event = self.api.event("team_member.created", "team_member", {"id": "TMcontract"})
        return self.api.delivery(event)

    def charge_count(self) -> int | None:
        return len(self.api.payments)


class TestSquareProvider(ProviderContract):
    @pytest.fixture
    def harness(self) -> Iterator[SquareHarness]:
        api = SquareMockAPI(webhook_signature_key=SIGNATURE_KEY, webhook_url=WEBHOOK_URL)
        if SPEC_PATH.is_file():
            api.observers.append(check_call)
        yield SquareHarness(api)


# -- after the first charge: the lifecycle tests on the mock Square ----------------------------


class SquareLifecycle:
    """Adds to ``SquareMockAPI`` what the contract's lifecycle tests call (search, swap
    plan, pause, resume, scheduled actions, dispute listing, evidence, submit, accept),
    on its own state; answers validated against the spec by the harness's observer. The
    driver methods are Square's clock and the card network."""

    def __init__(self, api: SquareMockAPI) -> None:
        self.api = api
        self.actions: dict[str, list[dict[str, Any]]] = {}
        self.evidence: dict[str, int] = {}
        sub, dsp = r"/v2/subscriptions/([^/]+)", r"/v2/disputes/([^/]+)"
        api._routes[:0] = [
            ("GET", re.compile(sub), self._get),
            ("POST", re.compile(r"/v2/subscriptions/search"), self._search),
            ("POST", re.compile(sub + "/cancel"), self._cancel),
            ("POST", re.compile(sub + "/pause"), lambda body, i: self._status(i, "PAUSED")),
            ("POST", re.compile(sub + "/resume"), lambda body, i: self._status(i, "ACTIVE")),
            ("DELETE", re.compile(sub + r"/actions/([^/]+)"), self._delete_action),
            ("GET", re.compile(r"/v2/disputes"), self._list_disputes),
            ("POST", re.compile(dsp + "/evidence-text"), self._evidence),
            ("POST", re.compile(dsp + "/submit-evidence"), self._submit),
            ("POST", re.compile(dsp + "/accept"), lambda body, i: self._state(i, "ACCEPTED")),
        ]

    # -- the driver ---------------------------------------------------------------------

    def customer(self) -> str:
        _status, body = self.api._create_customer({"email_address": "c@example.com"})
        return str(body["customer"]["id"])

    def price(self, tier: str) -> str:
        return f"PLAN_CONTRACT_{tier.upper()}"

    def end_trial(self, subscription_id: str) -> None:  # pragma: no cover - no trials
        raise AssertionError("Square declares no trials")

    def renew(self, subscription_id: str, *, card_fails: bool = False) -> str:
        subscription = self.api.subscriptions[subscription_id]
        if subscription.get("canceled_date"):
            self.api.end_billing_period(subscription_id)
        return f"inv-{subscription_id}"  # Square keeps it ACTIVE with an unpaid invoice

    def fix_card(self, customer_id: str) -> None:
        """Square charges the card on file itself: nothing to script."""

    def disputed_payment(self) -> tuple[str, str]:
        payment = self.api.add_payment(2000)
        dispute = self.api.open_dispute(payment["id"])
        return str(payment["id"]), str(dispute["id"])

    def decide(self, dispute_id: str) -> None:
        won = self.evidence.get(dispute_id, 0) > 0
        self.api.set_dispute_state(dispute_id, "WON" if won else "LOST")

    # -- the API ------------------------------------------------------------------------

    def _subscription(self, subscription_id: str) -> dict[str, Any]:
        return self.api.subscriptions[subscription_id]

    def _get(self, body: Any, subscription_id: str) -> tuple[int, Any]:
        subscription = dict(self._subscription(subscription_id))
        if self.api._query.get("include") == "actions" and self.actions.get(subscription_id):
            subscription["actions"] = self.actions[subscription_id]
        return 200, {"subscription": subscription}

    def _search(self, body: Any) -> tuple[int, Any]:
        wanted = set(body["query"]["filter"].get("customer_ids") or ())
        found = [s for s in self.api.subscriptions.values() if s["customer_id"] in wanted]
        return 200, {"subscriptions": found}

    def _cancel(self, body: Any, subscription_id: str) -> tuple[int, Any]:
        status, answer = self.api._cancel_subscription(body, subscription_id)
        self.actions[subscription_id] = answer.get("actions") or []
        return status, answer

    def _status(self, subscription_id: str, status: str) -> tuple[int, Any]:
        subscription = self._subscription(subscription_id)
        subscription["status"] = status
        subscription["version"] += 1
        return 200, {"subscription": subscription}

    def _delete_action(self, body: Any, subscription_id: str, action_id: str) -> tuple[int, Any]:
        self.actions[subscription_id] = [
            a for a in self.actions.get(subscription_id, []) if a["id"] != action_id
        ]
        subscription = self._subscription(subscription_id)
        subscription.pop("canceled_date", None)
        subscription["version"] += 1
        return 200, {"subscription": subscription}

    def _list_disputes(self, body: Any) -> tuple[int, Any]:
        return 200, {"disputes": list(self.api.disputes.values())}

    def _evidence(self, body: Any, dispute_id: str) -> tuple[int, Any]:
        self.evidence[dispute_id] = self.evidence.get(dispute_id, 0) + 1
        evidence = {"id": f"EV{self.evidence[dispute_id]}", "dispute_id": dispute_id,
                    "evidence_type": body["evidence_type"]}  # fmt: skip
        return 200, {"evidence": evidence}

    def _submit(self, body: Any, dispute_id: str) -> tuple[int, Any]:
        return self._state(dispute_id, "PROCESSING")

    def _state(self, dispute_id: str, state: str) -> tuple[int, Any]:
        dispute = self.api.disputes[dispute_id]
        dispute["state"] = state
        dispute["version"] += 1
        return 200, {"dispute": dispute}

    def evidence_file(self, request: httpx.Request) -> httpx.Response:
        """CreateDisputeEvidenceFile is multipart: answered here, its JSON part checked."""
        dispute_id = request.url.path.split("/")[3]
        assert request.headers["content-type"].startswith("multipart/form-data")
        assert b'name="request"' in request.content and b'name="image_file"' in request.content
        self.evidence[dispute_id] = self.evidence.get(dispute_id, 0) + 1
        return httpx.Response(200, json={"evidence": {"id": "EVF", "dispute_id": dispute_id}})
