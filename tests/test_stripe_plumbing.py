"""The Stripe adapter's request plumbing skips work paygate throws away (issue 21):
``create_payment`` builds no ``StripeObject`` (the SDK's ``raw_request``: the parsed
JSON), and ``requests`` does not look up the environment's proxies on every request
(``trust_env`` decided once, when the provider is built)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
import stripe

from paygate import Money, PaymentStatus
from paygate.providers.stripe import StripeProvider
from tests.fixtures.stripe import resource

API = "https://api.stripe.com/v1"
KEY = "sk_test_plumbing_key"


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


def _intent() -> dict[str, Any]:
    return resource("payment_intent", id="pi_plumb", amount=1099, currency="usd",
                    status="succeeded", amount_received=1099, last_payment_error=None,
                    next_action=None, metadata={"order_id": "o1"})  # fmt: skip


def _create(provider: StripeProvider) -> Any:
    return provider.create_payment(order_id="o1", amount=Money(1099, "USD"),
                                   payment_method="pm_card_visa",
                                   idempotency_key="o1:create")  # fmt: skip


def test_create_payment_builds_no_stripe_object(
    api: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.post(f"{API}/payment_intents", json=_intent())
    provider = StripeProvider(api_key=KEY)

    def refused(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a StripeObject was built")

    monkeypatch.setattr(stripe.StripeObject, "_refresh_from", refused)
    payment = _create(provider)
    assert payment.id == "pi_plumb" and payment.status is PaymentStatus.SUCCEEDED
    assert payment.raw["metadata"] == {"order_id": "o1"}
    headers = api.calls[0].request.headers
    assert headers["Idempotency-Key"] == "o1:create"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert "Stripe-Version" in headers and "X-Stripe-Client-User-Agent" in headers


def test_requests_does_not_read_the_environment_per_request(
    api: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.post(f"{API}/payment_intents", json=_intent())
    provider = StripeProvider(api_key=KEY)

    def refused(*args: Any, **kwargs: Any) -> dict[str, str]:
        raise AssertionError("requests looked up the environment's proxies")

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", refused)
    monkeypatch.setattr(requests.utils, "get_environ_proxies", refused)
    assert _create(provider).id == "pi_plumb"
    assert _create(provider).id == "pi_plumb"


def test_the_environments_proxy_is_taken_once_when_the_provider_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied = StripeProvider(api_key=KEY)
    assert proxied._client._requestor._client._proxy == {"https": "http://proxy.invalid:3128"}
    monkeypatch.setenv("NO_PROXY", "api.stripe.com")
    assert StripeProvider(api_key=KEY)._client._requestor._client._proxy is None
