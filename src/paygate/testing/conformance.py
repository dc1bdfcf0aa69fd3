"""``ProviderContract``: the reusable test class every provider adapter passes.

Like keyring's backend tests or Omnipay's ``GatewayTestCase``: the contract holds the tests,
an adapter's test module holds a small *harness* that knows how to script that provider's
outcomes. Every test is driven through the harness, so an adapter tested over canned HTTP
responses (``responses``, ``httpx.MockTransport``) passes it as well as an in-memory one.

Subclass it in a test module (the class name must start with ``Test`` for pytest) and
override the ``harness`` fixture:

```python
import pytest
from paygate.testing.conformance import BaseHarness, ProviderContract

class MyHarness(BaseHarness):
    def make_provider(self):
        return MyProvider(api_key="sk_test_x", webhook_secret="whsec_x")

    def payment_method(self, outcome):
        return {"succeed": "card_ok", "decline": "card_nope", "require_action": "card_3ds"}[
            outcome
        ]

    def prepare(self, scenario, **details):
        # HTTP-mocked adapters register the canned answer for `scenario` here
        # (see Scenario below for what each one is followed by).
        ...

    def signed_webhook(self, kind):
        # a delivery exactly as the provider would send it, correctly signed
        ...

class TestMyProvider(ProviderContract):
    @pytest.fixture
    def harness(self, mocked_http):        # any fixtures the harness needs
        return MyHarness(mocked_http)
```

Each test calls ``harness.prepare(scenario, **details)`` right before the provider calls
that scenario names; an in-memory adapter ignores it. Tests for what a provider does not
declare in ``capabilities`` (or a harness cannot script: ``BaseHarness.outcomes``,
``signed_webhook`` returning ``None``) are skipped with the reason, never passed silently.

The amounts are fixed (``ProviderContract.amount_minor`` = 2000 and ``partial_minor`` = 500
minor units of ``harness.currency``) so canned responses can match them.

Saved payment methods (``Capability.PAYMENT_METHODS``): save, list, default, charge off
session, authentication required, detach, charge after detach, and the customer lifecycle.
A harness opts in with ``saved_outcomes`` (the outcomes its ``saved_method(outcome)`` token
scripts: ``"succeed"``, ``"authentication_required"``) and, where the provider has a
customer's step, ``customer_step(provider, setup)`` returning the query of the way back;
without ``Capability.CUSTOMERS`` the methods are kept under ``vault_customer_id``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol, cast, runtime_checkable

import pytest

from paygate._compat import StrEnum
from paygate.errors import (
    DECLINE_CODES,
    AuthenticationRequired,
    CardDeclined,
    IdempotencyConflict,
    InvalidRequest,
    InvalidSignature,
    NotFound,
    NotSupported,
    ProviderError,
    ValidationError,
)
from paygate.models import (
    CheckoutSession,
    CheckoutStatus,
    Customer,
    Dispute,
    DisputeEvidence,
    DisputeStatus,
    EventType,
    EvidenceFile,
    InvoiceStatus,
    LineItem,
    Payment,
    PaymentMethod,
    PaymentMethodKind,
    PaymentStatus,
    Refund,
    RefundStatus,
    SetupSession,
    SetupStatus,
    SubscriptionStatus,
    WebhookDelivery,
    WebhookEvent,
)
from paygate.money import Money
from paygate.provider import Capability, PaymentMethodsProvider, PaymentProvider, implements

__all__ = [
    "BaseHarness",
    "LifecycleDriver",
    "Outcome",
    "ProviderContract",
    "SavedOutcome",
    "ProviderHarness",
    "Scenario",
    "WebhookKind",
]

#: what a payment method can be scripted to do
Outcome = Literal["succeed", "decline", "require_action"]
#: what a saved payment method can be scripted to do when charged off session
SavedOutcome = Literal["succeed", "authentication_required"]
#: which signed webhook the contract asks the harness for
WebhookKind = Literal[
    "payment_succeeded", "payment_failed", "refund", "refund_failed", "dispute_opened", "unknown"
]


class Scenario(StrEnum):
    """The names passed to ``harness.prepare``, each with the provider calls that follow it.

    ``details`` always hold what the contract will send: ``amount`` (Money), and where they
    apply ``order_id``, ``idempotency_key``, ``payment_id`` and ``capture``.
    """

    #: ``create_payment`` with ``payment_method("succeed")`` → a succeeded Payment
    PAYMENT_SUCCEED = "payment.succeed"
    #: ``create_payment`` with ``payment_method("decline")`` → CardDeclined
    PAYMENT_DECLINE = "payment.decline"
    #: ``create_payment`` with ``payment_method("require_action")`` → requires_action
    PAYMENT_REQUIRE_ACTION = "payment.require_action"
    #: ``create_payment(capture="manual")`` with the succeeding method → authorized
    PAYMENT_MANUAL = "payment.manual"
    #: ``get_payment(payment_id)`` of the payment just created
    PAYMENT_GET = "payment.get"
    #: ``get_payment(harness.missing_payment_id)`` → NotFound
    PAYMENT_MISSING = "payment.missing"
    #: the same ``create_payment`` again, same key and arguments → the same payment
    PAYMENT_REPLAY = "payment.replay"
    #: ``create_payment`` with a used key but another amount → IdempotencyConflict
    PAYMENT_CONFLICT = "payment.conflict"
    #: ``capture_payment(payment_id, amount=None)`` → succeeded
    CAPTURE_FULL = "capture.full"
    #: ``capture_payment(payment_id, amount=partial)`` → succeeded, or NotSupported
    CAPTURE_PARTIAL = "capture.partial"
    #: ``cancel_payment(payment_id)`` of an authorized payment → canceled
    CANCEL = "cancel"
    #: ``refund_payment(payment_id, amount=None)``
    REFUND_FULL = "refund.full"
    #: ``refund_payment(payment_id, amount=partial)``, or NotSupported
    REFUND_PARTIAL = "refund.partial"
    #: ``refund_payment(payment_id, amount=more than captured)`` → InvalidRequest
    REFUND_OVER = "refund.over"
    #: ``get_refund(refund_id)`` of the refund just made (``details``: ``refund_id``,
    #: ``payment_id``, ``amount`` the refunded amount)
    REFUND_GET = "refund.get"
    #: ``get_refund(harness.missing_refund_id)`` → NotFound (``details``: ``refund_id``)
    REFUND_MISSING = "refund.missing"
    #: ``create_customer(email=..., name=...)``
    CUSTOMER_CREATE = "customer.create"
    #: ``create_checkout_session(...)`` in payment mode
    CHECKOUT_CREATE = "checkout.create"
    # -- saved payment methods: ``details`` hold ``customer_id`` and, where they apply,
    # ``payment_method_id``, ``setup_id``, ``outcome`` (a SavedOutcome), ``order_id``,
    # ``idempotency_key`` and ``amount``
    #: ``create_setup(customer_id=..., payment_method=harness.saved_method(outcome))``
    SETUP_CREATE = "setup.create"
    #: ``complete_setup(params)`` after ``harness.customer_step(setup)``
    SETUP_COMPLETE = "setup.complete"
    #: ``list_payment_methods(customer_id)``
    METHODS_LIST = "payment_methods.list"
    #: ``get_payment_method(payment_method_id)``
    METHOD_GET = "payment_method.get"
    #: ``set_default_payment_method(customer_id, payment_method_id)``
    METHOD_DEFAULT = "payment_method.default"
    #: ``detach_payment_method(payment_method_id)``
    METHOD_DETACH = "payment_method.detach"
    #: ``create_payment(customer_id=..., payment_method=<saved id>, off_session=True)``:
    #: succeeds for ``outcome`` "succeed", AuthenticationRequired for the other; after a
    #: detach (``details["detached"]``) a typed refusal
    CHARGE_SAVED = "payment.saved"
    #: ``get_customer``, ``update_customer(name=...)``, ``list_customers(email=...)``,
    #: ``delete_customer`` then ``get_customer`` → NotFound, in that order
    CUSTOMER_LIFECYCLE = "customer.lifecycle"


@runtime_checkable
class ProviderHarness(Protocol):
    """What a provider's test module supplies to the contract."""

    #: the outcomes ``payment_method`` can script (a subset of the three)
    outcomes: frozenset[str]
    #: the currency the contract pays in (one the provider accepts)
    currency: str
    #: whether the provider refuses a used idempotency key with other arguments
    detects_idempotency_conflict: bool
    #: an id of the provider's own shape that names no payment
    missing_payment_id: str

    def make_provider(self) -> PaymentProvider:
        """A fresh adapter instance (with webhook secrets matching ``signed_webhook``)."""
        ...

    def payment_method(self, outcome: Outcome) -> str | None:
        """The ``payment_method`` argument that makes ``create_payment`` have ``outcome``."""
        ...

    def prepare(self, scenario: Scenario, **details: Any) -> None:
        """Script the provider's answers for the calls ``scenario`` names (or do nothing)."""
        ...

    def signed_webhook(self, kind: WebhookKind) -> WebhookDelivery | None:
        """A correctly signed delivery of ``kind``, or ``None`` if the harness cannot."""
        ...

    def tamper(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """The same delivery with its body changed after signing."""
        ...

    def charge_count(self) -> int | None:
        """How many payments the provider has created so far, or ``None`` if unknowable."""
        ...


class BaseHarness:
    """Defaults for a harness: every outcome, USD, no-op ``prepare``, a generic ``tamper``.

    Subclasses implement ``make_provider``, ``payment_method`` and ``signed_webhook``.
    """

    outcomes: frozenset[str] = frozenset({"succeed", "decline", "require_action"})
    currency: str = "USD"
    detects_idempotency_conflict: bool = True
    missing_payment_id: str = "pay_paygate_contract_missing"
    #: an id of the provider's own shape that names no refund
    missing_refund_id: str = "re_paygate_contract_missing"
    #: where hosted pages (checkout ``url``) must live: a local emulator overrides it
    hosted_page_prefix: str = "https://"
    #: optional: the secrets ``make_provider`` configured (API keys, webhook secrets), which
    #: must never show in the provider's repr or its errors; empty skips that test
    secrets: tuple[str, ...] = ()

    def make_provider(self) -> PaymentProvider:
        raise NotImplementedError

    def payment_method(self, outcome: Outcome) -> str | None:
        raise NotImplementedError

    def prepare(self, scenario: Scenario, **details: Any) -> None:
        """Nothing to script for an in-memory provider."""

    def signed_webhook(self, kind: WebhookKind) -> WebhookDelivery | None:
        return None

    def tamper(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """Change one byte of the body, keeping the signature headers."""
        body = delivery.body
        index = next((i for i, byte in enumerate(body) if 0x30 <= byte <= 0x39), None)
        if index is None:  # no digit to change: append a space instead
            changed = body + b" "
        else:  # a digit becomes another digit: still valid JSON, but not what was signed
            digit = body[index] - 0x30
            changed = body[:index] + bytes([0x30 + (digit + 1) % 10]) + body[index + 1 :]
        return WebhookDelivery(body=changed, headers=dict(delivery.headers))

    def charge_count(self) -> int | None:
        return None

    #: the saved-method outcomes ``saved_method`` can script; empty skips those tests
    saved_outcomes: frozenset[str] = frozenset()
    #: the customer id saved methods are kept under when the provider has no customer
    #: objects (no ``Capability.CUSTOMERS``)
    vault_customer_id: str = "contract_customer_1"

    def saved_method(self, outcome: SavedOutcome) -> str | None:
        """The ``payment_method`` ``create_setup`` saves for ``outcome`` (``None``: the
        customer enters it at the provider, see ``customer_step``)."""
        raise NotImplementedError

    def customer_step(self, provider: PaymentProvider, setup: SetupSession) -> dict[str, str]:
        """Play the customer on a setup waiting for them; return the query parameters of
        their way back (what ``complete_setup`` reads)."""
        raise NotImplementedError

    def return_params(self, payment: Payment) -> Mapping[str, str] | None:
        """The query string a customer comes back with after paying ``payment``
        (``None``: the return tests skip); its calls are those ``Scenario.PAYMENT_GET``
        prepares."""
        return None

    def lifecycle(self) -> LifecycleDriver | None:
        """What drives a subscription's and a dispute's life at the provider for the
        after-the-first-charge tests (``None``: they skip with the reason)."""
        return None


@runtime_checkable
class LifecycleDriver(Protocol):
    """Moves time and people at the provider, for the subscription and dispute tests:
    what a real provider's test clock and card network do."""

    def customer(self) -> str:
        """A new customer whose card pays."""
        ...

    def price(self, tier: Literal["basic", "pro"]) -> str:
        """A monthly price id; ``pro`` costs more than ``basic``."""
        ...

    def end_trial(self, subscription_id: str) -> None:
        """The trial ends now (its first period is billed)."""
        ...

    def renew(self, subscription_id: str, *, card_fails: bool = False) -> str:
        """The period ends and the next is billed; returns the invoice id."""
        ...

    def fix_card(self, customer_id: str) -> None:
        """The customer gives a card that pays."""
        ...

    def disputed_payment(self) -> tuple[str, str]:
        """A captured payment the cardholder disputes: (payment id, dispute id)."""
        ...

    def decide(self, dispute_id: str) -> None:
        """The card network rules on a dispute whose evidence was submitted."""
        ...


def _without_signature(delivery: WebhookDelivery) -> WebhookDelivery:
    """Only the headers every HTTP request has: no provider signature at all."""
    kept = {"content-type", "user-agent", "content-length", "accept"}
    headers = {k: v for k, v in delivery.headers.items() if k.lower() in kept}
    return WebhookDelivery(body=delivery.body, headers=headers)


class ProviderContract:
    """The conformance tests. Subclass as ``TestXxx`` and override the ``harness`` fixture."""

    amount_minor: int = 2000
    partial_minor: int = 500

    # -- fixtures --------------------------------------------------------------------------

    @pytest.fixture
    def harness(self) -> ProviderHarness:
        raise NotImplementedError(
            "subclass ProviderContract and override the `harness` fixture to return your "
            "ProviderHarness"
        )

    @pytest.fixture
    def provider(self, harness: ProviderHarness) -> Iterator[PaymentProvider]:
        provider = harness.make_provider()
        yield provider
        close = getattr(provider, "close", None)
        if callable(close):
            close()

    # -- helpers ---------------------------------------------------------------------------

    def amount(self, harness: ProviderHarness, minor: int | None = None) -> Money:
        return Money(self.amount_minor if minor is None else minor, harness.currency)

    @staticmethod
    def require(provider: PaymentProvider, *capabilities: Capability) -> None:
        missing = [c.value for c in capabilities if c not in provider.capabilities]
        if missing:
            pytest.skip(f"{provider.name} does not declare {', '.join(missing)}")

    @staticmethod
    def require_outcome(harness: ProviderHarness, outcome: Outcome) -> None:
        if outcome not in harness.outcomes:
            pytest.skip(f"the harness cannot script a {outcome!r} payment method")

    def create(
        self,
        provider: PaymentProvider,
        harness: ProviderHarness,
        outcome: Outcome = "succeed",
        *,
        scenario: Scenario | None = None,
        order_id: str = "ord_contract_1",
        key: str = "contract-key-1",
        capture: Literal["automatic", "manual"] = "automatic",
        amount: Money | None = None,
    ) -> Payment:
        """``create_payment`` for ``outcome``, after preparing the matching scenario."""
        amount = amount or self.amount(harness)
        if scenario is None:
            scenario = {
                "succeed": Scenario.PAYMENT_MANUAL
                if capture == "manual"
                else Scenario.PAYMENT_SUCCEED,
                "decline": Scenario.PAYMENT_DECLINE,
                "require_action": Scenario.PAYMENT_REQUIRE_ACTION,
            }[outcome]
        harness.prepare(
            scenario, amount=amount, order_id=order_id, idempotency_key=key, capture=capture
        )
        return provider.create_payment(
            order_id=order_id,
            amount=amount,
            payment_method=harness.payment_method(outcome),
            idempotency_key=key,
            capture=capture,
            return_url="https://shop.example/return",
        )

    def parse(
        self, provider: PaymentProvider, harness: ProviderHarness, kind: WebhookKind
    ) -> WebhookEvent:
        self.require(provider, Capability.WEBHOOKS)
        delivery = harness.signed_webhook(kind)
        if delivery is None:
            pytest.skip(f"the harness cannot produce a signed {kind!r} webhook")
        event = provider.parse_webhook(delivery.body, delivery.headers)
        assert isinstance(event, WebhookEvent)
        assert event.provider == provider.name
        assert isinstance(event.id, str) and event.id
        assert event.occurred_at is None or event.occurred_at.tzinfo is not None
        return event

    # -- identity and capabilities ----------------------------------------------------------

    def test_declares_name_and_capabilities(self, provider: PaymentProvider) -> None:
        assert implements(provider, PaymentProvider)
        assert isinstance(provider.name, str) and provider.name
        assert isinstance(provider.capabilities, frozenset)
        assert all(isinstance(c, Capability) for c in provider.capabilities)
        assert Capability.PAYMENTS in provider.capabilities

    def test_secrets_stay_out_of_repr_and_errors(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        secrets = [s for s in getattr(harness, "secrets", ()) if s]
        if not secrets:
            pytest.skip("the harness names no secrets to look for (BaseHarness.secrets)")
        harness.prepare(
            Scenario.PAYMENT_MISSING,
            amount=self.amount(harness),
            payment_id=harness.missing_payment_id,
        )
        with pytest.raises(NotFound) as info:
            provider.get_payment(harness.missing_payment_id)
        shown = [repr(provider), str(provider), str(info.value), repr(info.value)]
        for secret in secrets:
            assert not any(secret in text for text in shown), "a configured secret is shown"

    def test_undeclared_operations_raise_not_supported(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        """Each undeclared capability's operation refuses with NotSupported, before any I/O."""
        amount = self.amount(harness)
        line = [LineItem("Contract item", amount)]
        calls: dict[Capability, Any] = {
            Capability.MANUAL_CAPTURE: lambda: provider.create_payment(
                order_id="ord_ns",
                amount=amount,
                payment_method=harness.payment_method("succeed"),
                idempotency_key="ns-manual",
                capture="manual",
            ),
            Capability.REFUNDS: lambda: provider.refund_payment(
                harness.missing_payment_id, idempotency_key="ns-refund"
            ),
            Capability.CHECKOUT: lambda: provider.create_checkout_session(
                order_id="ord_ns",
                line_items=line,
                success_url="https://shop.example/ok",
                cancel_url="https://shop.example/no",
                idempotency_key="ns-checkout",
            ),
            Capability.CUSTOMERS: lambda: provider.create_customer(
                email="ns@example.com", name=None, idempotency_key="ns-customer"
            ),
            Capability.SUBSCRIPTIONS: lambda: provider.create_subscription(
                customer_id="cus_ns", price_id="price_ns", idempotency_key="ns-sub"
            ),
            Capability.INVOICES: lambda: provider.create_invoice(
                customer_id="cus_ns", line_items=line, idempotency_key="ns-invoice"
            ),
            Capability.DISPUTES: lambda: provider.get_dispute("dp_ns"),
            Capability.WEBHOOKS: lambda: provider.parse_webhook(b"{}", {}),
        }
        if implements(provider, PaymentMethodsProvider):
            methods = cast(PaymentMethodsProvider, provider)
            calls[Capability.PAYMENT_METHODS] = lambda: methods.create_setup(
                customer_id="cus_ns", idempotency_key="ns-setup"
            )
            calls[Capability.DEFAULT_PAYMENT_METHOD] = lambda: methods.set_default_payment_method(
                "cus_ns", "pm_ns"
            )
        undeclared = [c for c in calls if c not in provider.capabilities]
        if not undeclared:
            pytest.skip(f"{provider.name} declares every capability this test can call alone")
        for capability in undeclared:
            with pytest.raises(NotSupported) as info:
                calls[capability]()
            assert info.value.provider == provider.name, capability
        if Capability.REFUNDS in undeclared:
            with pytest.raises(NotSupported):
                provider.get_refund("re_ns")

    def test_partial_capture_refused_when_undeclared(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.MANUAL_CAPTURE)
        if Capability.PARTIAL_CAPTURE in provider.capabilities:
            pytest.skip(f"{provider.name} declares partial_capture")
        payment = self.create(provider, harness, capture="manual")
        partial = self.amount(harness, self.partial_minor)
        harness.prepare(Scenario.CAPTURE_PARTIAL, amount=partial, payment_id=payment.id)
        with pytest.raises(NotSupported):
            provider.capture_payment(payment.id, amount=partial, idempotency_key="cap-ns")

    def test_partial_refund_refused_when_undeclared(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.REFUNDS)
        if Capability.PARTIAL_REFUNDS in provider.capabilities:
            pytest.skip(f"{provider.name} declares partial_refunds")
        payment = self.create(provider, harness)
        partial = self.amount(harness, self.partial_minor)
        harness.prepare(Scenario.REFUND_PARTIAL, amount=partial, payment_id=payment.id)
        with pytest.raises(NotSupported):
            provider.refund_payment(payment.id, amount=partial, idempotency_key="refund-ns")

    # -- payments -------------------------------------------------------------------------------

    def test_successful_payment(self, provider: PaymentProvider, harness: ProviderHarness) -> None:
        payment = self.create(provider, harness)
        assert isinstance(payment, Payment)
        assert isinstance(payment.id, str) and payment.id
        assert payment.provider == provider.name
        assert payment.status is PaymentStatus.SUCCEEDED
        assert payment.amount == self.amount(harness)
        assert payment.amount_captured == self.amount(harness)
        assert payment.amount_refunded == Money.zero(harness.currency)
        assert payment.order_id == "ord_contract_1"
        assert payment.failure is None

    def test_get_payment_round_trip(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        created = self.create(provider, harness)
        harness.prepare(Scenario.PAYMENT_GET, amount=created.amount, payment_id=created.id)
        fetched = provider.get_payment(created.id)
        assert isinstance(fetched, Payment)
        assert (fetched.id, fetched.status, fetched.amount) == (
            created.id,
            created.status,
            created.amount,
        )

    def test_get_missing_payment_raises_not_found(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        harness.prepare(
            Scenario.PAYMENT_MISSING,
            amount=self.amount(harness),
            payment_id=harness.missing_payment_id,
        )
        with pytest.raises(NotFound) as info:
            provider.get_payment(harness.missing_payment_id)
        assert info.value.provider == provider.name
        assert info.value.retryable is False

    def test_declined_payment_raises_card_declined(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require_outcome(harness, "decline")
        with pytest.raises(CardDeclined) as info:
            self.create(provider, harness, "decline")
        error = info.value
        assert isinstance(error, ProviderError)
        assert error.decline_code in DECLINE_CODES
        assert error.provider == provider.name
        assert error.retryable is False

    def test_payment_requiring_action(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require_outcome(harness, "require_action")
        payment = self.create(provider, harness, "require_action")
        assert payment.status is PaymentStatus.REQUIRES_ACTION
        # the customer must be sent somewhere, or the client must finish it with a secret
        assert payment.redirect_url or payment.client_secret
        assert payment.amount_captured == Money.zero(harness.currency)

    def test_idempotent_creation(self, provider: PaymentProvider, harness: ProviderHarness) -> None:
        before = harness.charge_count()
        first = self.create(provider, harness, key="contract-idem")
        again = self.create(
            provider, harness, key="contract-idem", scenario=Scenario.PAYMENT_REPLAY
        )
        assert again.id == first.id
        assert again.status is first.status and again.amount == first.amount
        after = harness.charge_count()
        if before is not None and after is not None:
            assert after - before == 1, "the same idempotency key charged twice"

    def test_idempotency_conflict(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        if not harness.detects_idempotency_conflict:
            pytest.skip("the provider does not detect reused idempotency keys")
        self.create(provider, harness, key="contract-conflict")
        with pytest.raises(IdempotencyConflict):
            self.create(
                provider,
                harness,
                key="contract-conflict",
                scenario=Scenario.PAYMENT_CONFLICT,
                amount=self.amount(harness, self.amount_minor + 1),
            )

    # -- capture and cancel -------------------------------------------------------------------

    def test_manual_capture(self, provider: PaymentProvider, harness: ProviderHarness) -> None:
        self.require(provider, Capability.MANUAL_CAPTURE)
        authorized = self.create(provider, harness, capture="manual")
        assert authorized.status is PaymentStatus.AUTHORIZED
        assert authorized.amount_captured == Money.zero(harness.currency)
        harness.prepare(Scenario.CAPTURE_FULL, amount=authorized.amount, payment_id=authorized.id)
        captured = provider.capture_payment(authorized.id, idempotency_key="contract-capture")
        assert captured.id == authorized.id
        assert captured.status is PaymentStatus.SUCCEEDED
        assert captured.amount_captured == self.amount(harness)

    def test_partial_capture(self, provider: PaymentProvider, harness: ProviderHarness) -> None:
        self.require(provider, Capability.MANUAL_CAPTURE, Capability.PARTIAL_CAPTURE)
        authorized = self.create(provider, harness, capture="manual")
        partial = self.amount(harness, self.partial_minor)
        harness.prepare(Scenario.CAPTURE_PARTIAL, amount=partial, payment_id=authorized.id)
        captured = provider.capture_payment(
            authorized.id, amount=partial, idempotency_key="contract-capture-partial"
        )
        assert captured.status is PaymentStatus.SUCCEEDED
        assert captured.amount_captured == partial

    def test_cancel_authorized_payment(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.MANUAL_CAPTURE)
        authorized = self.create(provider, harness, capture="manual")
        harness.prepare(Scenario.CANCEL, amount=authorized.amount, payment_id=authorized.id)
        canceled = provider.cancel_payment(authorized.id, idempotency_key="contract-cancel")
        assert canceled.id == authorized.id
        assert canceled.status is PaymentStatus.CANCELED

    # -- refunds ----------------------------------------------------------------------------------

    def test_full_refund(self, provider: PaymentProvider, harness: ProviderHarness) -> None:
        self.require(provider, Capability.REFUNDS)
        payment = self.create(provider, harness)
        harness.prepare(Scenario.REFUND_FULL, amount=payment.amount, payment_id=payment.id)
        refund = provider.refund_payment(payment.id, idempotency_key="contract-refund")
        assert isinstance(refund, Refund)
        assert refund.provider == provider.name
        assert refund.payment_id in (payment.id, payment.charge_id)
        assert refund.amount == payment.amount
        assert refund.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING)

    def test_partial_refund(self, provider: PaymentProvider, harness: ProviderHarness) -> None:
        self.require(provider, Capability.REFUNDS, Capability.PARTIAL_REFUNDS)
        payment = self.create(provider, harness)
        partial = self.amount(harness, self.partial_minor)
        harness.prepare(Scenario.REFUND_PARTIAL, amount=partial, payment_id=payment.id)
        refund = provider.refund_payment(
            payment.id,
            amount=partial,
            reason="requested_by_customer",
            idempotency_key="contract-refund-partial",
        )
        assert isinstance(refund, Refund)
        assert refund.amount == partial
        assert refund.status in (RefundStatus.SUCCEEDED, RefundStatus.PENDING)

    def test_refund_over_the_captured_amount_is_refused(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.REFUNDS, Capability.PARTIAL_REFUNDS)
        payment = self.create(provider, harness)
        over = self.amount(harness, self.amount_minor + 1)
        harness.prepare(Scenario.REFUND_OVER, amount=over, payment_id=payment.id)
        with pytest.raises((InvalidRequest, ValidationError)):
            provider.refund_payment(payment.id, amount=over, idempotency_key="contract-refund-over")

    def test_get_refund(self, provider: PaymentProvider, harness: ProviderHarness) -> None:
        self.require(provider, Capability.REFUNDS)
        payment = self.create(provider, harness)
        harness.prepare(Scenario.REFUND_FULL, amount=payment.amount, payment_id=payment.id)
        refund = provider.refund_payment(payment.id, idempotency_key="contract-refund-get")
        harness.prepare(
            Scenario.REFUND_GET, amount=refund.amount, payment_id=payment.id, refund_id=refund.id
        )
        fetched = provider.get_refund(refund.id)
        assert isinstance(fetched, Refund)
        assert fetched.provider == provider.name
        assert (fetched.id, fetched.amount, fetched.payment_id) == (
            refund.id,
            refund.amount,
            refund.payment_id,
        )
        assert isinstance(fetched.status, RefundStatus)

    def test_get_missing_refund_raises_not_found(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.REFUNDS)
        missing = getattr(harness, "missing_refund_id", BaseHarness.missing_refund_id)
        harness.prepare(Scenario.REFUND_MISSING, amount=self.amount(harness), refund_id=missing)
        with pytest.raises(NotFound) as info:
            provider.get_refund(missing)
        assert info.value.provider == provider.name
        assert info.value.retryable is False

    # -- customers and checkout --------------------------------------------------------------------

    def test_create_customer(self, provider: PaymentProvider, harness: ProviderHarness) -> None:
        self.require(provider, Capability.CUSTOMERS)
        harness.prepare(Scenario.CUSTOMER_CREATE, amount=self.amount(harness))
        customer = provider.create_customer(
            email="contract@example.com", name="Contract Tester", idempotency_key="contract-cus"
        )
        assert isinstance(customer, Customer)
        assert customer.id and customer.provider == provider.name
        assert customer.email == "contract@example.com"

    def test_create_checkout_session(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.CHECKOUT)
        amount = self.amount(harness)
        harness.prepare(
            Scenario.CHECKOUT_CREATE,
            amount=amount,
            order_id="ord_contract_checkout",
            idempotency_key="contract-checkout",
        )
        session = provider.create_checkout_session(
            order_id="ord_contract_checkout",
            line_items=[LineItem("Contract item", self.amount(harness, self.amount_minor // 2), 2)],
            success_url="https://shop.example/ok",
            cancel_url="https://shop.example/cancel",
            idempotency_key="contract-checkout",
        )
        assert isinstance(session, CheckoutSession)
        assert session.provider == provider.name
        assert session.status is CheckoutStatus.OPEN
        # a hosted page on https, or on http on this machine (``paygate sandbox``); a
        # harness may name another prefix
        prefix = getattr(harness, "hosted_page_prefix", "https://")
        assert session.url and session.url.startswith(
            (prefix, "https://", "http://127.0.0.1:", "http://localhost:")
        )

    # -- webhooks ---------------------------------------------------------------------------------

    def test_payment_webhook_is_verified_and_normalized(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        event = self.parse(provider, harness, "payment_succeeded")
        assert event.type is EventType.PAYMENT_SUCCEEDED
        assert isinstance(event.object, Payment)
        assert event.object.provider == provider.name
        assert event.payment_id == event.object.id

    def test_payment_failed_webhook(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        event = self.parse(provider, harness, "payment_failed")
        assert event.type is EventType.PAYMENT_FAILED
        assert isinstance(event.object, Payment)

    def test_refund_webhook_carries_the_refund(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.REFUNDS)
        event = self.parse(provider, harness, "refund")
        assert event.type in (EventType.REFUND_CREATED, EventType.REFUND_SUCCEEDED)
        assert isinstance(event.object, Refund)
        assert event.object.payment_id
        assert isinstance(event.object.status, RefundStatus)

    def test_refund_failed_webhook(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        """A refund that failed (or was canceled) is reported as such, with its own id."""
        self.require(provider, Capability.REFUNDS)
        event = self.parse(provider, harness, "refund_failed")
        assert event.type is EventType.REFUND_FAILED
        assert isinstance(event.object, Refund)
        assert event.object.id and event.object.payment_id
        assert event.object.status in (RefundStatus.FAILED, RefundStatus.CANCELED)

    def test_dispute_webhook_carries_the_dispute(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.DISPUTES)
        event = self.parse(provider, harness, "dispute_opened")
        assert event.type is EventType.DISPUTE_OPENED
        assert isinstance(event.object, Dispute)
        assert event.object.payment_id
        # the dispute's own id: two disputes of one payment are told apart by it
        assert isinstance(event.object.id, str) and event.object.id

    def test_unknown_webhook_is_kept(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        event = self.parse(provider, harness, "unknown")
        assert event.type is EventType.UNKNOWN
        assert event.object is None
        assert event.provider_type
        assert event.raw is not None

    def test_header_names_are_case_insensitive(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.WEBHOOKS)
        delivery = harness.signed_webhook("payment_succeeded")
        if delivery is None:
            pytest.skip("the harness cannot produce a signed payment webhook")
        for transform in (str.lower, str.upper):
            headers = {transform(k): v for k, v in delivery.headers.items()}
            assert (
                provider.parse_webhook(delivery.body, headers).type is EventType.PAYMENT_SUCCEEDED
            )

    def test_tampered_webhook_is_rejected(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.WEBHOOKS)
        delivery = harness.signed_webhook("payment_succeeded")
        if delivery is None:
            pytest.skip("the harness cannot produce a signed payment webhook")
        for tampered in (
            harness.tamper(delivery),
            WebhookDelivery(body=delivery.body + b" ", headers=dict(delivery.headers)),
        ):
            assert tampered.body != delivery.body
            with pytest.raises(InvalidSignature):
                provider.parse_webhook(tampered.body, tampered.headers)

    def test_unsigned_webhook_is_rejected(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.WEBHOOKS)
        delivery = harness.signed_webhook("payment_succeeded")
        if delivery is None:
            pytest.skip("the harness cannot produce a signed payment webhook")
        bare = _without_signature(delivery)
        with pytest.raises(InvalidSignature):
            provider.parse_webhook(bare.body, bare.headers)

    # -- after the first charge: subscriptions, invoices, disputes (issue 20) --------------------

    @staticmethod
    def driver(harness: ProviderHarness) -> LifecycleDriver:
        lifecycle = getattr(harness, "lifecycle", None)
        driver = lifecycle() if callable(lifecycle) else None
        if driver is None:
            pytest.skip("the harness cannot drive a subscription's or a dispute's life")
        assert isinstance(driver, LifecycleDriver)
        return driver

    @staticmethod
    def absent_or_done(provider: PaymentProvider, call: Any) -> Any:
        """``call()``; a NotSupported naming the provider declares the operation absent
        (the test skips with its message)."""
        try:
            return call()
        except NotSupported as exc:
            assert exc.provider == provider.name, exc
            pytest.skip(f"{provider.name} declares it absent: {exc}")

    def test_undeclared_subscription_capabilities_raise_not_supported(
        self, provider: PaymentProvider
    ) -> None:
        """Proration, trials, pauses, evidence: each undeclared one refuses with
        NotSupported naming the provider, before any I/O."""
        ops: Any = provider
        calls: dict[Capability, Any] = {
            Capability.SUBSCRIPTION_PRORATION: lambda: ops.change_subscription(
                "sub_ns", price_id="price_ns", idempotency_key="ns-change"
            ),
            Capability.SUBSCRIPTION_TRIALS: lambda: ops.create_subscription(
                customer_id="cus_ns", price_id="price_ns", idempotency_key="ns-trial",
                trial_days=7,
            ),
            Capability.SUBSCRIPTION_PAUSE: lambda: ops.pause_subscription("sub_ns"),
            Capability.DISPUTE_EVIDENCE: lambda: ops.submit_dispute_evidence(
                "dp_ns", DisputeEvidence(explanation="ns")
            ),
        }  # fmt: skip
        undeclared = [c for c in calls if c not in provider.capabilities]
        if not undeclared:
            pytest.skip(f"{provider.name} declares every subscription capability")
        for capability in undeclared:
            with pytest.raises(NotSupported) as info:
                calls[capability]()
            assert info.value.provider == provider.name, capability
            assert provider.name in str(info.value), capability

    def test_subscription_with_a_trial(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.SUBSCRIPTIONS, Capability.SUBSCRIPTION_TRIALS)
        driver = self.driver(harness)
        ops: Any = provider
        sub = ops.create_subscription(customer_id=driver.customer(), price_id=driver.price("basic"),
                                      idempotency_key="trial-1", trial_days=14)  # fmt: skip
        assert sub.status is SubscriptionStatus.TRIALING and sub.trial_end is not None
        driver.end_trial(sub.id)
        assert provider.get_subscription(sub.id).status is SubscriptionStatus.ACTIVE

    def test_subscription_change_with_proration(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.SUBSCRIPTIONS, Capability.SUBSCRIPTION_PRORATION)
        driver = self.driver(harness)
        ops: Any = provider
        sub = provider.create_subscription(customer_id=driver.customer(),
                                           price_id=driver.price("basic"),
                                           idempotency_key="chg-sub")  # fmt: skip
        pro = driver.price("pro")
        changed = ops.change_subscription(sub.id, price_id=pro, proration="create_prorations",
                                          idempotency_key="chg-1")  # fmt: skip
        assert changed.price_id == pro and changed.status is SubscriptionStatus.ACTIVE
        again = ops.change_subscription(sub.id, price_id=pro, proration="create_prorations",
                                        idempotency_key="chg-1")  # fmt: skip
        assert again.price_id == pro  # the same key replays, changes nothing twice
        more = ops.change_subscription(sub.id, quantity=2, proration="none",
                                       idempotency_key="chg-2")  # fmt: skip
        assert more.quantity == 2

    def test_subscription_pause_and_resume(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.SUBSCRIPTIONS, Capability.SUBSCRIPTION_PAUSE)
        driver = self.driver(harness)
        ops: Any = provider
        sub = provider.create_subscription(customer_id=driver.customer(),
                                           price_id=driver.price("basic"),
                                           idempotency_key="pause-sub")  # fmt: skip
        assert ops.pause_subscription(sub.id).status is SubscriptionStatus.PAUSED
        assert ops.resume_subscription(sub.id).status is SubscriptionStatus.ACTIVE

    def test_cancel_at_period_end_and_undo(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.SUBSCRIPTIONS)
        driver = self.driver(harness)
        ops: Any = provider
        sub = provider.create_subscription(customer_id=driver.customer(),
                                           price_id=driver.price("basic"),
                                           idempotency_key="cape-sub")  # fmt: skip
        scheduled = self.absent_or_done(
            provider, lambda: provider.cancel_subscription(sub.id, at_period_end=True)
        )
        assert scheduled.cancel_at_period_end and scheduled.status is SubscriptionStatus.ACTIVE
        undone = self.absent_or_done(provider, lambda: ops.undo_cancel_subscription(sub.id))
        assert not undone.cancel_at_period_end
        provider.cancel_subscription(sub.id, at_period_end=True)
        driver.renew(sub.id)
        assert provider.get_subscription(sub.id).status is SubscriptionStatus.CANCELED

    def test_failed_renewal_is_past_due_until_the_retry_pays(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.SUBSCRIPTIONS, Capability.INVOICES)
        driver = self.driver(harness)
        ops: Any = provider
        customer = driver.customer()
        sub = provider.create_subscription(customer_id=customer, price_id=driver.price("basic"),
                                           idempotency_key="dun-sub")  # fmt: skip
        invoice_id = driver.renew(sub.id, card_fails=True)
        dunning = provider.get_subscription(sub.id).status
        driver.fix_card(customer)
        paid = self.absent_or_done(
            provider, lambda: ops.retry_invoice(invoice_id, idempotency_key="dun-retry")
        )
        assert dunning is SubscriptionStatus.PAST_DUE
        assert paid.status is InvoiceStatus.PAID
        assert provider.get_subscription(sub.id).status is SubscriptionStatus.ACTIVE

    def test_subscriptions_are_listed_by_customer(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.SUBSCRIPTIONS)
        driver = self.driver(harness)
        ops: Any = provider
        customer = driver.customer()
        sub = provider.create_subscription(customer_id=customer, price_id=driver.price("basic"),
                                           idempotency_key="list-sub")  # fmt: skip
        listed = self.absent_or_done(provider, lambda: ops.list_subscriptions(customer_id=customer))
        assert [s.id for s in listed] == [sub.id]

    def test_dispute_answered_with_evidence(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        self.require(provider, Capability.DISPUTES, Capability.DISPUTE_EVIDENCE)
        driver = self.driver(harness)
        ops: Any = provider
        payment_id, dispute_id = driver.disputed_payment()
        dispute = provider.get_dispute(dispute_id)
        assert dispute.status is DisputeStatus.OPEN and dispute.evidence_due_by is not None
        assert dispute.reason_code is not None
        evidence = DisputeEvidence(
            explanation="Delivered and signed for.", tracking_number="1Z999",
            files=(EvidenceFile("proof.pdf", b"%PDF-1.4 proof", kind="shipping_documentation"),),
        )  # fmt: skip
        sent = ops.submit_dispute_evidence(dispute_id, evidence)
        assert sent.status is DisputeStatus.UNDER_REVIEW and sent.evidence_submitted
        driver.decide(dispute_id)
        assert provider.get_dispute(dispute_id).status is DisputeStatus.WON
        assert [d.id for d in ops.list_disputes(payment_id=payment_id)] == [dispute_id]

    def test_dispute_accepted(self, provider: PaymentProvider, harness: ProviderHarness) -> None:
        self.require(provider, Capability.DISPUTES, Capability.DISPUTE_EVIDENCE)
        driver = self.driver(harness)
        ops: Any = provider
        _, dispute_id = driver.disputed_payment()
        accepted = ops.accept_dispute(dispute_id)
        assert accepted.status in (DisputeStatus.LOST, DisputeStatus.CLOSED)

    # -- the customer's return --------------------------------------------------------------

    def test_complete_return_reads_the_payment_not_the_query(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        """The words in the query string (``status=failed``) are never believed: the
        payment is looked up at the provider."""
        params_for = getattr(harness, "return_params", None)
        payment = self.create(provider, harness)
        params = params_for(payment) if callable(params_for) else None
        if params is None:
            pytest.skip("the harness cannot script a customer's return")
        lying = {**params, "status": "failed", "redirect_status": "failed"}
        harness.prepare(Scenario.PAYMENT_GET, amount=payment.amount, payment_id=payment.id)
        returned = provider.complete_return(lying, idempotency_key="contract-return-1")
        assert returned.id == payment.id
        assert returned.status is PaymentStatus.SUCCEEDED
        with pytest.raises((ValidationError, InvalidRequest)):
            provider.complete_return({"status": "paid"}, idempotency_key="contract-return-2")

    # -- saved payment methods ----------------------------------------------------------------

    def methods_provider(
        self, provider: PaymentProvider, harness: ProviderHarness, outcome: SavedOutcome
    ) -> PaymentMethodsProvider:
        self.require(provider, Capability.PAYMENT_METHODS)
        if not implements(provider, PaymentMethodsProvider):
            pytest.fail(f"{provider.name} declares payment_methods but lacks the operations")
        if outcome not in getattr(harness, "saved_outcomes", frozenset()):
            pytest.skip(f"the harness cannot script a saved method that will {outcome!r}")
        return cast(PaymentMethodsProvider, provider)

    def save(
        self,
        provider: PaymentMethodsProvider,
        harness: ProviderHarness,
        outcome: SavedOutcome = "succeed",
    ) -> tuple[str, PaymentMethod]:
        """A customer with one saved method: (customer id, the method). Without
        ``Capability.CUSTOMERS`` the customer is the merchant's own id (PayPal's vault keeps
        wallets under it): ``harness.vault_customer_id``."""
        if Capability.CUSTOMERS in provider.capabilities:
            harness.prepare(Scenario.CUSTOMER_CREATE, amount=self.amount(harness))
            customer_id = provider.create_customer(
                email="contract@example.com",
                name="Contract Tester",
                idempotency_key="contract-cus",
            ).id
        else:
            customer_id = getattr(harness, "vault_customer_id", "contract_customer_1")
        saved_method: Any = getattr(harness, "saved_method")  # noqa: B009 - optional hook
        details = {"amount": self.amount(harness), "customer_id": customer_id, "outcome": outcome}
        harness.prepare(Scenario.SETUP_CREATE, **details)
        setup = provider.create_setup(
            customer_id=customer_id,
            idempotency_key=f"contract-setup-{outcome}",
            return_url="https://shop.example/saved",
            payment_method=saved_method(outcome),
        )
        assert isinstance(setup, SetupSession) and setup.provider == provider.name
        if setup.status is SetupStatus.REQUIRES_ACTION:
            assert setup.url or setup.client_secret, "the customer's step is nowhere"
            params = getattr(harness, "customer_step")(provider, setup)  # noqa: B009
            harness.prepare(Scenario.SETUP_COMPLETE, setup_id=setup.id, **details)
            setup = provider.complete_setup(params, idempotency_key=f"contract-done-{outcome}")
        assert setup.status is SetupStatus.SUCCEEDED
        assert setup.payment_method_id
        harness.prepare(Scenario.METHOD_GET, payment_method_id=setup.payment_method_id, **details)
        method = provider.get_payment_method(setup.payment_method_id)
        return customer_id, method

    def charge_saved(
        self,
        provider: PaymentMethodsProvider,
        harness: ProviderHarness,
        customer_id: str,
        method_id: str,
        *,
        outcome: SavedOutcome = "succeed",
        detached: bool = False,
        key: str = "contract-offsession",
    ) -> Payment:
        amount = self.amount(harness)
        harness.prepare(
            Scenario.CHARGE_SAVED,
            amount=amount,
            customer_id=customer_id,
            payment_method_id=method_id,
            outcome=outcome,
            detached=detached,
            order_id="ord_contract_reorder",
            idempotency_key=key,
        )
        return provider.create_payment(
            order_id="ord_contract_reorder",
            amount=amount,
            payment_method=method_id,
            customer_id=customer_id,
            idempotency_key=key,
            off_session=True,
        )

    def test_save_and_list_payment_methods(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        methods = self.methods_provider(provider, harness, "succeed")
        customer_id, method = self.save(methods, harness)
        assert isinstance(method, PaymentMethod) and method.provider == provider.name
        assert method.customer_id == customer_id
        assert isinstance(method.kind, PaymentMethodKind)
        if method.kind is PaymentMethodKind.CARD:
            assert method.last4 is not None and len(method.last4) == 4
        harness.prepare(
            Scenario.METHODS_LIST,
            amount=self.amount(harness),
            customer_id=customer_id,
            payment_method_id=method.id,
        )
        listed = methods.list_payment_methods(customer_id)
        assert [m.id for m in listed] == [method.id]

    def test_default_payment_method(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        methods = self.methods_provider(provider, harness, "succeed")
        self.require(provider, Capability.DEFAULT_PAYMENT_METHOD)
        customer_id, method = self.save(methods, harness)
        harness.prepare(
            Scenario.METHOD_DEFAULT,
            amount=self.amount(harness),
            customer_id=customer_id,
            payment_method_id=method.id,
        )
        customer = methods.set_default_payment_method(customer_id, method.id)
        assert customer.id == customer_id
        assert customer.default_payment_method_id == method.id

    def test_charge_saved_method_off_session(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        methods = self.methods_provider(provider, harness, "succeed")
        customer_id, method = self.save(methods, harness)
        payment = self.charge_saved(methods, harness, customer_id, method.id)
        assert payment.status is PaymentStatus.SUCCEEDED
        assert payment.amount == self.amount(harness)
        assert payment.customer_id in (customer_id, None)

    def test_off_session_charge_needing_authentication(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        methods = self.methods_provider(provider, harness, "authentication_required")
        customer_id, method = self.save(methods, harness, "authentication_required")
        with pytest.raises(AuthenticationRequired) as info:
            self.charge_saved(
                methods, harness, customer_id, method.id, outcome="authentication_required"
            )
        error = info.value
        assert isinstance(error, CardDeclined)
        assert error.decline_code == "authentication_required"
        assert error.provider == provider.name and error.retryable is False

    def test_detached_method_cannot_be_charged(
        self, provider: PaymentProvider, harness: ProviderHarness
    ) -> None:
        methods = self.methods_provider(provider, harness, "succeed")
        customer_id, method = self.save(methods, harness)
        details = {"amount": self.amount(harness), "customer_id": customer_id}
        harness.prepare(Scenario.METHOD_DETACH, payment_method_id=method.id, **details)
        methods.detach_payment_method(method.id)
        harness.prepare(Scenario.METHODS_LIST, payment_method_id=None, **details)
        assert methods.list_payment_methods(customer_id) == []
        with pytest.raises((InvalidRequest, NotFound)) as info:
            self.charge_saved(
                methods, harness, customer_id, method.id, detached=True, key="contract-detached"
            )
        assert info.value.provider == provider.name and info.value.retryable is False

    def test_customer_lifecycle(self, provider: PaymentProvider, harness: ProviderHarness) -> None:
        self.require(provider, Capability.CUSTOMERS)
        methods = self.methods_provider(provider, harness, "succeed")
        harness.prepare(Scenario.CUSTOMER_CREATE, amount=self.amount(harness))
        created = methods.create_customer(
            email="contract@example.com", name="Contract Tester", idempotency_key="contract-cus"
        )
        harness.prepare(
            Scenario.CUSTOMER_LIFECYCLE, amount=self.amount(harness), customer_id=created.id
        )
        assert methods.get_customer(created.id).email == "contract@example.com"
        updated = methods.update_customer(created.id, name="Renamed Tester")
        assert (updated.id, updated.name) == (created.id, "Renamed Tester")
        found = list(methods.list_customers(email="contract@example.com"))
        assert created.id in [c.id for c in found]
        assert all(isinstance(c, Customer) for c in found)
        methods.delete_customer(created.id)
        with pytest.raises(NotFound):
            methods.get_customer(created.id)
