"""The fake provider passes the provider contract (and so does a fake declaring less)."""

from __future__ import annotations

import pytest

from paygate import Money, Payment, SetupSession, WebhookDelivery
from paygate.provider import Capability, PaymentProvider
from paygate.providers.fake import FakeProvider
from paygate.testing.conformance import (
    BaseHarness,
    LifecycleDriver,
    Outcome,
    ProviderContract,
    ProviderHarness,
    SavedOutcome,
    Scenario,
    WebhookKind,
)

SECRET = "whsec_contract_fake"

TOKENS: dict[str, str] = {
    "succeed": "tok_visa",
    "decline": "tok_insufficient_funds",
    "require_action": "tok_3ds",
}


class FakeHarness(BaseHarness):
    """Scripts the fake by token; webhooks come from a twin provider sharing the secret."""

    missing_payment_id = "pay_000000000000000000000000"
    missing_refund_id = "re_000000000000000000000000"
    secrets = (SECRET,)

    def __init__(self, provider_class: type[FakeProvider] = FakeProvider) -> None:
        self.provider_class = provider_class
        self.provider: FakeProvider | None = None
        self.prepared: list[Scenario] = []

    def make_provider(self) -> PaymentProvider:
        self.provider = self.provider_class(seed=0, webhook_secret=SECRET)
        return self.provider

    def payment_method(self, outcome: Outcome) -> str | None:
        return TOKENS[outcome]

    def prepare(self, scenario: Scenario, **details: object) -> None:
        self.prepared.append(scenario)  # nothing to script in memory; recorded for the test

    def signed_webhook(self, kind: WebhookKind) -> WebhookDelivery | None:
        source = FakeProvider(seed=99, webhook_secret=SECRET)
        amount = Money(2000, self.currency)
        if kind == "unknown":
            return source.sign_webhook(
                {"id": "evt_x", "type": "payout.paid", "created": 1, "data": {"object": {}}}
            )
        token = {"payment_failed": "tok_declined", "dispute_opened": "tok_dispute"}.get(
            kind, "tok_visa"
        )
        try:
            payment = source.create_payment(
                order_id="ord_hook", amount=amount, payment_method=token, idempotency_key="hook"
            )
        except Exception:  # the decline is what we want: its webhook is pending
            payment = None
        if kind in ("refund", "refund_failed") and payment is not None:
            refund = source.refund_payment(payment.id, idempotency_key="hook-refund")
            if kind == "refund_failed":
                source.fail_refund(refund.id)
        wanted = {
            "payment_succeeded": "payment.succeeded",
            "payment_failed": "payment.failed",
            "refund": "refund.succeeded",
            "refund_failed": "refund.failed",
            "dispute_opened": "dispute.opened",
        }[kind]
        for delivery in source.take_webhooks():
            if f'"type":"{wanted}"'.encode() in delivery.body:
                return delivery
        raise AssertionError(f"the fake emitted no {wanted} event")

    def charge_count(self) -> int | None:
        assert self.provider is not None
        return len(self.provider.payments())

    saved_outcomes = frozenset({"succeed", "authentication_required"})

    def saved_method(self, outcome: SavedOutcome) -> str | None:
        # "succeed": no token, so the customer's step (approve_setup) and complete_setup run
        return None if outcome == "succeed" else "tok_authentication_required"

    def customer_step(self, provider: PaymentProvider, setup: SetupSession) -> dict[str, str]:
        assert isinstance(provider, FakeProvider)
        provider.approve_setup(setup.id, payment_method="tok_visa")
        return {"setup_id": setup.id}
    def return_params(self, payment: Payment) -> dict[str, str]:
        return {"payment_id": payment.id}

    def lifecycle(self) -> FakeLifecycle:
        assert self.provider is not None
        return FakeLifecycle(self.provider)


class FakeLifecycle:
    """The fake's test helpers as the contract's LifecycleDriver."""

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider
        self.customers = 0
        provider.define_price("price_contract_basic", Money(1000, "USD"))
        provider.define_price("price_contract_pro", Money(3000, "USD"))

    def customer(self) -> str:
        self.customers += 1
        return self.provider.create_customer(
            email=f"c{self.customers}@example.com", name=None,
            idempotency_key=f"contract-customer-{self.customers}",
        ).id  # fmt: skip

    def price(self, tier: str) -> str:
        return f"price_contract_{tier}"

    def end_trial(self, subscription_id: str) -> None:
        self.provider.end_trial(subscription_id)

    def renew(self, subscription_id: str, *, card_fails: bool = False) -> str:
        customer = self.provider.get_subscription(subscription_id).customer_id
        assert customer is not None
        if card_fails:
            self.provider.set_billing_token(customer, "tok_declined")
        self.provider.bill_period(subscription_id)
        invoice: str = self.provider._objects[subscription_id]["latest_invoice"]
        return invoice

    def fix_card(self, customer_id: str) -> None:
        self.provider.set_billing_token(customer_id, "tok_visa")

    def disputed_payment(self) -> tuple[str, str]:
        self.customers += 1
        paid = self.provider.create_payment(
            order_id=f"ord_dispute_{self.customers}", amount=Money(2000, "USD"),
            payment_method="tok_visa", idempotency_key=f"contract-dispute-{self.customers}",
        )  # fmt: skip
        return paid.id, self.provider.open_dispute(paid.id, reason="product_not_received").id

    def decide(self, dispute_id: str) -> None:
        self.provider.decide_dispute(dispute_id)


class TestFakeProviderContract(ProviderContract):
    @pytest.fixture
    def harness(self) -> ProviderHarness:
        return FakeHarness()


class _LimitedFake(FakeProvider):
    """A fake that declares less, to show the contract's NotSupported checks bite."""

    capabilities = frozenset(
        {Capability.PAYMENTS, Capability.MANUAL_CAPTURE, Capability.REFUNDS, Capability.WEBHOOKS}
    )


class TestLimitedFakeContract(ProviderContract):
    @pytest.fixture
    def harness(self) -> ProviderHarness:
        return FakeHarness(_LimitedFake)


def test_harness_satisfies_the_protocol_and_scenarios_are_announced() -> None:
    harness = FakeHarness()
    assert isinstance(harness, ProviderHarness)
    harness.make_provider()
    assert isinstance(harness.lifecycle(), LifecycleDriver)
    contract = ProviderContract()
    provider = harness.make_provider()
    contract.create(provider, harness, capture="manual")
    contract.create(provider, harness, "require_action", key="k2")
    assert harness.prepared == [Scenario.PAYMENT_MANUAL, Scenario.PAYMENT_REQUIRE_ACTION]


def test_base_harness_tamper_changes_a_digit_and_keeps_headers() -> None:
    delivery = WebhookDelivery(body=b'{"amount":1999}', headers={"Sig": "x"})
    tampered = BaseHarness().tamper(delivery)
    assert tampered.body == b'{"amount":2999}'
    assert tampered.headers == {"Sig": "x"}
    assert BaseHarness().tamper(WebhookDelivery(b"{}", {})).body == b"{} "


class _Broken(FakeProvider):
    """Declares nothing but payments, yet still does refunds: the contract must catch it."""

    capabilities = frozenset({Capability.PAYMENTS})

    def refund_payment(self, payment_id: str, **kwargs: object):  # type: ignore[no-untyped-def,override]
        return object()


def test_contract_catches_an_undeclared_operation_that_does_not_refuse() -> None:
    harness = FakeHarness(_Broken)
    provider = harness.make_provider()
    with pytest.raises(pytest.fail.Exception, match="NotSupported"):
        ProviderContract().test_undeclared_operations_raise_not_supported(provider, harness)


class _Leaky(FakeProvider):
    def __repr__(self) -> str:
        return f"Leaky({self.settings.webhook_secret.get_secret_value()})"


def test_contract_catches_a_secret_in_the_repr() -> None:
    harness = FakeHarness(_Leaky)
    provider = harness.make_provider()
    with pytest.raises(AssertionError, match="secret is shown"):
        ProviderContract().test_secrets_stay_out_of_repr_and_errors(provider, harness)


class _NoSavedMethods(FakeProvider):
    """Customers and payments, but no saved payment methods: the contract skips those tests
    and checks that the operations refuse with NotSupported."""

    capabilities = frozenset(FakeProvider.capabilities) - {
        Capability.PAYMENT_METHODS,
        Capability.DEFAULT_PAYMENT_METHOD,
    }


class TestFakeWithoutSavedMethodsContract(ProviderContract):
    @pytest.fixture
    def harness(self) -> ProviderHarness:
        return FakeHarness(_NoSavedMethods)
