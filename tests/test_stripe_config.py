"""StripeProvider settings: validation, live-key guard, secrets kept out of repr and errors."""

from __future__ import annotations

import logging

import pytest
import responses

from paygate import ConfigurationError, Money, create_provider
from paygate.provider import Capability, PaymentProvider
from paygate.providers.stripe import StripeProvider

TEST_KEY = "sk_test_51SecretValueThatMustNeverLeak"
LIVE_KEY = "sk_live_51LiveSecretThatMustNeverLeak"
WEBHOOK_SECRET = "whsec_TopSecretWebhookValue"


@pytest.fixture(autouse=True)
def _no_paygate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYGATE_ENV", raising=False)


def test_defaults_and_env_style_strings_are_coerced() -> None:
    provider = StripeProvider(
        api_key=TEST_KEY,
        webhook_secret=f"{WEBHOOK_SECRET}, whsec_previous",
        webhook_tolerance="120",
        timeout="12.5",
        max_retries="4",
        api_version="2026-10-28.endive",
    )
    assert provider.settings.webhook_tolerance == 120
    assert provider.settings.timeout == 12.5
    assert provider.max_retries == 4
    assert provider._secrets == (WEBHOOK_SECRET.encode(), b"whsec_previous")
    assert provider.name == "stripe"
    assert provider.capabilities == frozenset(Capability)
    assert isinstance(provider, PaymentProvider)


def test_max_retries_defaults_to_none_and_sdk_retries_are_off() -> None:
    provider = StripeProvider(api_key=TEST_KEY)
    assert provider.max_retries is None
    assert provider._client._requestor._options.max_network_retries == 0


def test_registry_builds_it_by_name() -> None:
    provider = create_provider("stripe", api_key=TEST_KEY, webhook_secret=[WEBHOOK_SECRET])
    assert isinstance(provider, StripeProvider)


@pytest.mark.parametrize("missing", [{}, {"api_key": ""}, {"api_key": None}])
def test_missing_key(missing: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="api_key is missing"):
        StripeProvider(**missing)


def test_publishable_key_refused() -> None:
    with pytest.raises(ConfigurationError, match="publishable") as info:
        StripeProvider(api_key="pk_test_abcdef")
    assert "pk_test_abcdef" not in str(info.value)


@pytest.mark.parametrize(
    ("settings", "env", "reason"),
    [
        ({"test_mode": True}, None, "test_mode=True"),
        ({"test_mode": "true"}, None, "test_mode=True"),
        ({}, "test", "PAYGATE_ENV=test"),
        ({}, "CI", "PAYGATE_ENV=ci"),
        ({"base_url": "http://localhost:12111"}, None, "local server"),
        ({"base_url": "http://127.0.0.1:12111/"}, None, "local server"),
        ({"base_url": "http://stripe-mock:12111"}, None, "local server"),
    ],
)
def test_live_key_in_a_test_setting_is_refused(
    monkeypatch: pytest.MonkeyPatch, settings: dict[str, object], env: str | None, reason: str
) -> None:
    if env:
        monkeypatch.setenv("PAYGATE_ENV", env)
    with pytest.raises(ConfigurationError, match="live API key") as info:
        StripeProvider(api_key=LIVE_KEY, **settings)
    assert reason in str(info.value)
    assert LIVE_KEY not in str(info.value)


def test_live_key_in_production_setting_is_accepted() -> None:
    provider = StripeProvider(api_key=LIVE_KEY, base_url="https://stripe-proxy.example.com")
    assert repr(provider) == (
        "StripeProvider(mode=live, base_url='https://stripe-proxy.example.com')"
    )


@pytest.mark.parametrize("base_url", ["http://stripe-proxy.example.com", "http://8.8.8.8:80"])
def test_plain_http_base_url_is_refused_unless_local(base_url: str) -> None:
    # the API key is the bearer token of every request: never in clear over the internet
    with pytest.raises(ConfigurationError, match="base_url must be https") as info:
        StripeProvider(api_key=TEST_KEY, base_url=base_url)
    assert TEST_KEY not in str(info.value)
    for local in ("http://localhost:12111", "http://stripe-mock:12111", "http://10.1.2.3:12111"):
        assert StripeProvider(api_key=TEST_KEY, base_url=local).settings.base_url == local


@pytest.mark.parametrize(
    "bad",
    [
        {"webhook_tolerance": 0},
        {"webhook_tolerance": "soon"},
        {"timeout": -1},
        {"max_retries": -2},
        {"base_url": "ftp://files.example"},
        {"unknown_setting": 1},
    ],
)
def test_bad_settings_name_the_setting_not_the_secret(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="invalid Stripe settings") as info:
        StripeProvider(api_key=TEST_KEY, webhook_secret=WEBHOOK_SECRET, **bad)
    message = str(info.value)
    assert next(iter(bad)) in message
    assert TEST_KEY not in message and WEBHOOK_SECRET not in message


def test_secrets_never_in_repr_or_settings_repr() -> None:
    provider = StripeProvider(api_key=TEST_KEY, webhook_secret=WEBHOOK_SECRET)
    for text in (repr(provider), str(provider), repr(provider.settings), str(provider.settings)):
        assert TEST_KEY not in text
        assert WEBHOOK_SECRET not in text
        assert "Secret" not in text or "**" in text


def test_secrets_never_in_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    provider = StripeProvider(api_key=TEST_KEY, webhook_secret=WEBHOOK_SECRET)
    caplog.set_level(logging.DEBUG)
    with responses.RequestsMock() as api:
        api.post(
            "https://api.stripe.com/v1/payment_intents",
            status=401,
            json={
                "error": {
                    "type": "invalid_request_error",
                    "message": f"Invalid API Key provided: {TEST_KEY}",
                }
            },
            headers={"Request-Id": "req_auth"},
        )
        with pytest.raises(Exception) as info:
            provider.create_payment(
                order_id="o1",
                amount=Money.of("1.00", "USD"),
                payment_method="pm_card_visa",
                idempotency_key="key-1",
            )
        # the key was really sent (as the SDK's bearer token), never echoed back to us
        assert api.calls[0].request.headers["Authorization"] == f"Bearer {TEST_KEY}"
    assert type(info.value).__name__ == "AuthenticationError"
    assert info.value.request_id == "req_auth"  # type: ignore[attr-defined]
    for text in (str(info.value), repr(info.value), caplog.text):
        assert TEST_KEY not in text
        assert WEBHOOK_SECRET not in text
    assert "[redacted]" in str(info.value)


def test_client_secret_from_the_sdk_debug_log_is_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The SDK logs whole response bodies at DEBUG; a PaymentIntent's carries its
    client_secret, which lets whoever holds it confirm the payment."""
    client_secret = "pi_3Audit_secret_ClientSecretMustNotLeak"
    provider = StripeProvider(api_key=TEST_KEY)
    caplog.set_level(logging.DEBUG)
    with responses.RequestsMock() as api:
        api.post(
            "https://api.stripe.com/v1/payment_intents",
            json={
                "id": "pi_3Audit",
                "object": "payment_intent",
                "amount": 1000,
                "amount_received": 0,
                "currency": "usd",
                "status": "requires_action",
                "client_secret": client_secret,
                "metadata": {"order_id": "o1"},
                "created": 1,
            },
        )
        payment = provider.create_payment(
            order_id="o1",
            amount=Money.of("10.00", "USD"),
            payment_method="pm_card_threeDSecure2Required",
            idempotency_key="key-cs",
        )
    assert payment.client_secret == client_secret  # the caller still gets it
    assert "API response body" in caplog.text  # the SDK did log the body
    assert client_secret not in caplog.text
    assert "Audit_secret" not in caplog.text
    assert TEST_KEY not in caplog.text


def test_gateway_from_env_builds_the_stripe_provider() -> None:
    from paygate.gateway import Gateway

    gw = Gateway.from_env(
        {
            "PAYGATE_PROVIDER": "stripe",
            "PAYGATE_STRIPE_API_KEY": TEST_KEY,
            "PAYGATE_STRIPE_WEBHOOK_SECRET": f"{WEBHOOK_SECRET},whsec_old",
            "PAYGATE_STRIPE_MAX_RETRIES": "1",
            "PAYGATE_STRIPE_WEBHOOK_TOLERANCE": "60",
        }
    )
    provider = gw.provider
    assert isinstance(provider, StripeProvider)
    assert provider._secrets == (WEBHOOK_SECRET.encode(), b"whsec_old")
    assert provider.settings.webhook_tolerance == 60
    assert gw.retry.attempts == 2  # max_retries=1: one try plus one retry, in the Gateway
    assert TEST_KEY not in repr(gw) and WEBHOOK_SECRET not in repr(gw)


def test_gateway_from_env_with_a_live_key_in_test_env_fails() -> None:
    from paygate.gateway import Gateway

    env = {
        "PAYGATE_PROVIDER": "stripe",
        "PAYGATE_STRIPE_API_KEY": LIVE_KEY,
        "PAYGATE_STRIPE_TEST_MODE": "1",
    }
    with pytest.raises(ConfigurationError, match="live API key") as info:
        Gateway.from_env(env)
    assert LIVE_KEY not in str(info.value)
