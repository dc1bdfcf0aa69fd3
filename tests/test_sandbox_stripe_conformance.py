"""The real Stripe adapter passes paygate's provider contract against the sandbox.

No canned answers: the sandbox holds the state and answers as Stripe does; the signed
webhooks are the ones it delivers over HTTP for events it was made to cause.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from paygate import WebhookDelivery
from paygate.provider import PaymentProvider
from paygate.sandbox import Sandbox
from paygate.testing.conformance import BaseHarness, Outcome, ProviderContract, WebhookKind
from paygate.testing.sandbox import WebhookReceiver

pytest.importorskip("stripe")

#: the contract's webhook kind -> (what to trigger, the Stripe event type to hand over)
WEBHOOKS: dict[str, tuple[str, str]] = {
    "payment_succeeded": ("payment_intent.succeeded", "payment_intent.succeeded"),
    "payment_failed": ("payment_intent.payment_failed", "payment_intent.payment_failed"),
    "refund": ("refund.created", "refund.created"),
    "refund_failed": ("refund.failed", "refund.failed"),
    "dispute_opened": ("charge.dispute.created", "charge.dispute.created"),
    "unknown": ("charge.succeeded", "charge.succeeded"),  # paygate has no charge events
}


class SandboxStripeHarness(BaseHarness):
    currency = "USD"
    missing_payment_id = "pi_000000000000000000000000"
    missing_refund_id = "re_000000000000000000000000"

    def __init__(self, sandbox: Sandbox, receiver: WebhookReceiver) -> None:
        self.sandbox = sandbox
        self.receiver = receiver
        self.secrets = ("sk_test_sandbox_contract", sandbox.stripe.webhook_secret)

    def make_provider(self) -> PaymentProvider:
        from paygate.providers.stripe import StripeProvider

        return StripeProvider(
            api_key="sk_test_sandbox_contract",
            webhook_secret=self.sandbox.stripe.webhook_secret,
            base_url=self.sandbox.base_url,
            max_retries=0,
        )

    def payment_method(self, outcome: Outcome) -> str | None:
        return {
            "succeed": "pm_card_visa",
            "decline": "pm_card_chargeDeclinedInsufficientFunds",
            "require_action": "pm_card_authenticationRequired",
        }[outcome]

    def charge_count(self) -> int | None:
        return len(self.sandbox.state.engine("stripe").payments())

    saved_outcomes = frozenset({"succeed", "authentication_required"})

    def saved_method(self, outcome: str) -> str | None:
        return {
            "succeed": "pm_card_visa",
            "authentication_required": "pm_card_authenticationRequired",
        }[outcome]

    def customer_step(self, provider: PaymentProvider, setup: Any) -> dict[str, str]:
        from urllib.parse import parse_qsl, urlsplit

        from paygate.testing import pay_hosted_page

        back = pay_hosted_page(setup.url, "4242 4242 4242 4242").return_url
        assert back is not None
        return dict(parse_qsl(urlsplit(back).query))

    def signed_webhook(self, kind: WebhookKind) -> WebhookDelivery | None:
        trigger, wanted = WEBHOOKS[kind]
        event_ids = set(self.sandbox.stripe.trigger(trigger))

        def arrived(deliveries: list[Any]) -> bool:
            return any(self._matches(d, event_ids, wanted) for d in deliveries)

        deliveries = self.receiver.wait_for(arrived)
        delivery = next(d for d in deliveries if self._matches(d, event_ids, wanted))
        return WebhookDelivery(body=delivery.body, headers=delivery.headers)

    @staticmethod
    def _matches(delivery: Any, event_ids: set[str], wanted: str) -> bool:
        event = json.loads(delivery.body)
        return bool(event["id"] in event_ids and event["type"] == wanted)


class TestStripeAdapterOnTheSandbox(ProviderContract):
    @pytest.fixture
    def harness(self, sandbox: Sandbox, webhook_receiver: WebhookReceiver) -> Iterator[Any]:
        sandbox.bus.forward_to.append(webhook_receiver.url)
        yield SandboxStripeHarness(sandbox, webhook_receiver)
