"""SquareProvider passes paygate's provider contract over mocked HTTP.

The harness plays Square with the stateful in-memory API (``SquareMockAPI``) behind an
``httpx.MockTransport``: the real SDK and adapter run unchanged, every request and answer
is validated against Square's OpenAPI spec (where the reference is present), idempotency
keys behave as Square's do, and webhooks are signed as Square signs them.

Square's CreatePayment never answers "requires action" (3-D Secure happens in the browser
with the Web Payments SDK before the payment is created), so that outcome is not offered.
"""

from __future__ import annotations

from collections.abc import Iterator

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

    def make_provider(self) -> PaymentProvider:
        return SquareProvider(
            access_token=ACCESS_TOKEN,
            location_id="LOC1",
            webhook_signature_key=SIGNATURE_KEY,
            webhook_url=WEBHOOK_URL,
            http_client=self.api.http_client(),
        )

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
