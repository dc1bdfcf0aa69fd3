"""The webhook parsers under fuzz: each provider configured for tests, a signer that makes a
delivery its parser accepts, and valid events to mutate (the seeds).

Shared by the bounded hypothesis run (tests/test_fuzz_webhooks.py), the long run
(``nox -s fuzz``), the regression tests of past crashers (tests/fuzz_corpus/) and the
atheris harness (fuzz/atheris_webhooks.py). Nothing here touches the network: PayPal's API
is a ``responses`` mock (:func:`paypal_api`), Square's an in-process ``SquareMockAPI``.

The seeds are shaped on the providers' reference objects where ``../shared/reference`` is
present (Stripe's example objects) and on the repository's own fixtures otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import responses

from paygate import Money, PaymentProvider, WebhookVerificationError
from paygate._retry import RetryPolicy
from paygate.errors import PaygateError
from paygate.gateway import Gateway
from paygate.providers import _square_webhook, _stripe_webhook
from paygate.providers._square_mock import SquareMockAPI
from paygate.providers.fake import FakeProvider
from paygate.providers.paypal import PayPalProvider
from paygate.providers.square import SquareProvider
from paygate.providers.stripe import StripeProvider
from paygate.stores import Store
from paygate.stores.memory import MemoryStore
from tests import paypal_support as pp
from tests.conftest import REFERENCE_DIR

__all__ = [
    "DOCUMENTED_ERRORS",
    "NAMES",
    "Target",
    "paypal_api",
    "signed",
    "store_snapshot",
    "target",
]

#: What ``parse_webhook`` may raise on any input: the documented 400 family.
DOCUMENTED_ERRORS: tuple[type[PaygateError], ...] = (WebhookVerificationError,)

NAMES = ("stripe", "paypal", "paypal_api", "square", "fake")

NOW = 1_700_000_000
STRIPE_SECRET = "whsec_fuzz_secret_do_not_log"
FAKE_SECRET = "whsec_fake_fuzz_secret"
SQUARE_KEY = "whsig-fuzz-key-do-not-log"
SQUARE_URL = "https://shop.example/webhooks/square"
#: the mocked verify endpoint answers SUCCESS only for this transmission id prefix, so a
#: hostile header set is refused there as PayPal would refuse it
PAYPAL_VALID_ID = "fuzz-valid-69cd13f0"


@dataclass(frozen=True)
class Target:
    name: str
    provider: PaymentProvider
    #: headers that make ``body`` a genuine delivery
    sign: Callable[[bytes], dict[str, str]]
    #: the names of the signature headers (what the hostile-header mode replaces)
    signature_headers: tuple[str, ...]
    #: valid events, as their JSON dicts, for structure-aware mutation
    seeds: tuple[dict[str, Any], ...]

    def parse(self, body: bytes, headers: Any) -> Any:
        return self.provider.parse_webhook(body, headers)

    def gateway(self, store: Store | None = None) -> Gateway:
        # no retry: a lookup the mocks answer 404 fails at once, not after backoff sleeps
        return Gateway(
            self.provider, store or MemoryStore(), retry=RetryPolicy(attempts=1),
            clock=lambda: float(NOW),
        )  # fmt: skip


def _dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


# -- Stripe -------------------------------------------------------------------------------


def _stripe_seeds() -> tuple[dict[str, Any], ...]:
    path = REFERENCE_DIR / "stripe" / "fixtures3.json"
    if path.is_file():
        objects = json.loads(path.read_text(encoding="utf-8"))["resources"]
        pairs = [
            ("payment_intent.succeeded", "payment_intent"),
            ("payment_intent.payment_failed", "payment_intent"),
            ("charge.refunded", "charge"),
            ("refund.updated", "refund"),
            ("charge.dispute.created", "dispute"),
            ("invoice.paid", "invoice"),
            ("customer.subscription.updated", "subscription"),
            ("checkout.session.completed", "checkout.session"),
            ("customer.created", "customer"),
        ]
        event = objects["event"]
        return tuple(
            {**event, "id": f"evt_fuzz_{i}", "type": kind, "created": NOW,
             "data": {"object": objects[name]}}
            for i, (kind, name) in enumerate(pairs)
        )  # fmt: skip
    intent = {
        "id": "pi_fuzz", "object": "payment_intent", "amount": 2500, "currency": "eur",
        "status": "succeeded", "amount_received": 2500, "created": NOW,
        "metadata": {"order_id": "ord_fuzz"}, "last_payment_error": None,
    }  # fmt: skip
    return (
        {"id": "evt_fuzz_0", "object": "event", "type": "payment_intent.succeeded",
         "created": NOW, "data": {"object": intent}},
    )  # fmt: skip


def _stripe() -> Target:
    provider = StripeProvider(api_key="sk_test_fuzz", webhook_secret=STRIPE_SECRET)
    provider._clock = lambda: float(NOW)
    return Target(
        "stripe",
        provider,
        lambda body: {"Stripe-Signature": _stripe_webhook.sign(body, STRIPE_SECRET, NOW)},
        ("Stripe-Signature",),
        _stripe_seeds(),
    )


# -- PayPal -------------------------------------------------------------------------------


def _paypal_seeds() -> tuple[dict[str, Any], ...]:
    return (
        pp.event_json("PAYMENT.CAPTURE.COMPLETED", pp.capture_json()),
        pp.event_json("PAYMENT.CAPTURE.PENDING", pp.capture_json(status="PENDING")),
        pp.event_json("PAYMENT.CAPTURE.REFUNDED", pp.refund_json(), resource_type="refund"),
        pp.event_json(
            "PAYMENT.AUTHORIZATION.CREATED", pp.authorization_json(),
            resource_type="authorization",
        ),
        pp.event_json(
            "CHECKOUT.ORDER.APPROVED", pp.order_json(status="APPROVED"),
            resource_type="checkout-order",
        ),
    )  # fmt: skip


@contextlib.contextmanager
def paypal_api() -> Iterator[responses.RequestsMock]:
    """PayPal's API for the parsers: the OAuth token, ``GET`` of a capture or an order
    (404: paygate keeps the capture id) and the verify endpoint (SUCCESS for
    :data:`PAYPAL_VALID_ID`);
    and Stripe's API answering 404 to everything (the Gateway looks up the payment of a
    refund or dispute it has not met)."""

    def verify(request: Any) -> tuple[int, dict[str, str], str]:
        sent = json.loads(request.body)
        ok = str(sent.get("transmission_id", "")).startswith(PAYPAL_VALID_ID)
        return 200, {}, json.dumps({"verification_status": "SUCCESS" if ok else "FAILURE"})

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        pp.PayPalMock(rsps, validate_bodies=False).token()
        for path in ("/v2/payments/captures/", "/v2/checkout/orders/"):
            rsps.add(
                responses.GET,
                re.compile(re.escape(pp.API + path) + ".*"),
                json={"name": "RESOURCE_NOT_FOUND", "message": "no such resource"},
                status=404,
            )
        rsps.add_callback(
            responses.POST, f"{pp.API}/v1/notifications/verify-webhook-signature", callback=verify
        )
        missing = {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
        for method in (responses.GET, responses.POST):
            rsps.add(method, re.compile(r"https://api\.stripe\.com/.*"), json=missing, status=404)
        yield rsps


def _paypal(verification: str) -> Target:
    provider = PayPalProvider(
        **pp.provider_settings(verification=verification, webhook_tolerance=10**8)
    )
    # one signing time for the whole run: the signature is RSA, made per input
    sent_at = pp.paypal_time()

    def sign(body: bytes) -> dict[str, str]:
        return pp.sign(body, transmission_id=PAYPAL_VALID_ID, transmission_time=sent_at)

    return Target(
        "paypal" if verification == "offline" else "paypal_api",
        provider,
        sign,
        tuple(sign(b"{}")),
        _paypal_seeds(),
    )


# -- Square -------------------------------------------------------------------------------


def _square_seeds(api: SquareMockAPI) -> tuple[dict[str, Any], ...]:
    money = {"amount": 2500, "currency": "USD"}
    payment = {
        "id": "PAYFUZZ", "status": "COMPLETED", "amount_money": money, "total_money": money,
        "reference_id": "ord_fuzz", "created_at": "2026-03-01T10:00:00.123Z",
        "order_id": "ORDFUZZ", "version": 3,
    }  # fmt: skip
    refund = {
        "id": "REFFUZZ", "status": "COMPLETED", "amount_money": {"amount": 500, "currency": "USD"},
        "payment_id": "PAYFUZZ", "created_at": "2026-03-01T11:00:00Z",
    }  # fmt: skip
    dispute = {
        "id": "DISFUZZ", "dispute_id": "DISFUZZ", "state": "EVIDENCE_REQUIRED",
        "amount_money": money, "reason": "NO_KNOWLEDGE", "due_at": "2026-03-15T00:00:00Z",
        "disputed_payment": {"payment_id": "PAYFUZZ"}, "created_at": "2026-03-02T00:00:00Z",
    }  # fmt: skip
    return (
        api.event("payment.updated", "payment", payment),
        api.event("payment.created", "payment", {**payment, "status": "APPROVED"}),
        api.event("refund.updated", "refund", refund),
        api.event("dispute.created", "dispute", dispute),
    )


def _square() -> Target:
    api = SquareMockAPI(webhook_signature_key=SQUARE_KEY, webhook_url=SQUARE_URL)
    provider = SquareProvider(
        access_token="EAAAfuzz-token-do-not-log",
        location_id="LOC1",
        webhook_signature_key=SQUARE_KEY,
        webhook_url=SQUARE_URL,
        http_client=api.http_client(),
    )

    def sign(body: bytes) -> dict[str, str]:
        signature = _square_webhook.sign(
            body, signature_key=SQUARE_KEY, notification_url=SQUARE_URL
        )
        return {"x-square-hmacsha256-signature": signature}

    return Target("square", provider, sign, ("x-square-hmacsha256-signature",), _square_seeds(api))


# -- the fake provider ----------------------------------------------------------------------


def _fake_seeds() -> tuple[dict[str, Any], ...]:
    """Real deliveries of the fake's scenarios: payments, a decline, a refund, a dispute."""
    fake = FakeProvider(webhook_secret=FAKE_SECRET, seed=7, clock=lambda: float(NOW))
    for i, token in enumerate(("tok_visa", "tok_declined", "tok_dispute", "tok_3ds")):
        try:
            payment = fake.create_payment(
                order_id=f"ord_{i}", amount=Money(1000 + i, "EUR"),
                payment_method=token, idempotency_key=f"k{i}",
            )  # fmt: skip
        except PaygateError:
            continue
        if token == "tok_visa":
            fake.refund_payment(payment.id, amount=Money(300, "EUR"), idempotency_key="r0")
    return tuple(json.loads(delivery.body) for delivery in fake.take_webhooks())


def _fake() -> Target:
    provider = FakeProvider(webhook_secret=FAKE_SECRET, seed=1, clock=lambda: float(NOW))

    def sign(body: bytes) -> dict[str, str]:
        return dict(provider.sign_webhook(body, timestamp=NOW).headers)

    return Target("fake", provider, sign, ("Paygate-Signature",), _fake_seeds())


_BUILDERS: dict[str, Callable[[], Target]] = {
    "stripe": _stripe,
    "paypal": lambda: _paypal("offline"),
    "paypal_api": lambda: _paypal("api"),
    "square": _square,
    "fake": _fake,
}


@functools.cache
def target(name: str) -> Target:
    """The target ``name`` (one of :data:`NAMES`), built once per process."""
    return _BUILDERS[name]()


def store_snapshot(store: Store) -> tuple[Any, ...]:
    """Everything a store holds that a webhook could change, comparable with ``==``."""
    return (
        sorted(repr(record) for record in store.iter_payments()),
        [repr(record) for record in store.list_events()],
    )


def signed(name: str, event: Any) -> tuple[bytes, dict[str, str]]:
    """``event`` (a dict, or raw bytes) as a genuine delivery to ``name``."""
    body = event if isinstance(event, bytes) else _dumps(event)
    return body, target(name).sign(body)
