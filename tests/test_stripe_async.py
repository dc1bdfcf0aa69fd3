"""AsyncStripeProvider (the SDK's ``*_async`` methods on its ``HTTPXClient``) passes the
sync adapter's tests: every request of tests/test_stripe_api.py (parameters, idempotency
keys, reference-spec checks, error mapping) and the provider contract, through
``blocking()`` and a transport answered by the same ``responses`` mocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import parse_qsl

import httpx
import pytest
import responses

from paygate import Money, OutcomeUnknown, ProviderUnavailable
from paygate.provider import PaymentProvider, async_provider_for, create_async_provider
from paygate.providers._stripe_webhook import sign
from paygate.providers.stripe import AsyncStripeProvider, StripeProvider
from paygate.testing.aio import blocking
from paygate.testing.conformance import ProviderContract, ProviderHarness
from tests import test_stripe_api
from tests.async_support import blocking_on_responses, responses_client
from tests.fixtures.stripe import event_body, resource
from tests.test_stripe_api import *  # noqa: F403  # every test of the sync face, again here
from tests.test_stripe_conformance import SECRET, StripeHarness

KEY = test_stripe_api.KEY


@pytest.fixture
def provider() -> Iterator[PaymentProvider]:  # replaces test_stripe_api's sync provider
    with blocking_on_responses(
        lambda client: AsyncStripeProvider(
            api_key=KEY, webhook_secret="whsec_api", http_client=client
        )
    ) as facade:
        yield facade


class AsyncStripeHarness(StripeHarness):
    def make_provider(self) -> PaymentProvider:
        self.client = responses_client()
        return blocking(
            AsyncStripeProvider(
                api_key="sk_test_contract", webhook_secret=SECRET, http_client=self.client
            )
        )


@pytest.fixture
def mocked_http() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as api:
        yield api


class TestAsyncStripeContract(ProviderContract):
    @pytest.fixture
    def harness(self, mocked_http: responses.RequestsMock) -> Iterator[ProviderHarness]:
        harness = AsyncStripeHarness(mocked_http)
        yield harness
        if hasattr(harness, "client"):
            asyncio.run(harness.client.aclose())


# -- natively on a loop, over httpx.MockTransport ----------------------------------------------


def test_requests_on_the_loop_carry_the_key_and_a_form_body() -> None:
    """The SDK's async path through our HTTPXClient: form body as content (httpx warns on
    data=<str>, and warnings are errors here), Idempotency-Key, no retries of its own."""
    seen: list[httpx.Request] = []
    body = resource("payment_intent", id="pi_async_1", amount=1999, currency="usd",
                    status="succeeded", metadata={"order_id": "o1"})  # fmt: skip

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=body)

    async def scenario() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        async with AsyncStripeProvider(api_key="sk_test_async", http_client=client) as provider:
            payment = await provider.create_payment(
                order_id="o1", amount=Money(1999, "USD"), payment_method="pm_card_visa",
                idempotency_key="order:o1:create",
            )  # fmt: skip
            assert payment.id == "pi_async_1" and payment.amount == Money(1999, "USD")
        assert not client.is_closed  # the caller's client stays the caller's
        await client.aclose()

    asyncio.run(scenario())
    (request,) = seen
    assert request.method == "POST" and request.url.path == "/v1/payment_intents"
    assert request.headers["Idempotency-Key"] == "order:o1:create"
    assert request.headers["Authorization"] == "Bearer sk_test_async"
    form = dict(parse_qsl(request.content.decode()))
    assert form["amount"] == "1999" and form["metadata[order_id]"] == "o1"


@pytest.mark.parametrize(
    ("failure", "expected", "code"),
    [
        (httpx.ConnectError("refused"), ProviderUnavailable, "network_error"),
        (httpx.ConnectTimeout("slow"), ProviderUnavailable, "timeout"),
        (httpx.ReadTimeout("slow"), OutcomeUnknown, "timeout"),
        (httpx.RemoteProtocolError("reset"), OutcomeUnknown, "connection_lost"),
    ],
)
def test_network_failures_are_classified_like_the_sync_face(
    failure: Exception, expected: type[Exception], code: str
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise failure

    async def scenario() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        async with AsyncStripeProvider(api_key="sk_test_async", http_client=client) as provider:
            with pytest.raises(expected) as caught:
                await provider.get_payment("pi_x")
            assert caught.value.code == code  # type: ignore[attr-defined]
            assert "sk_test" not in str(caught.value)
        await client.aclose()

    asyncio.run(scenario())


def test_twin_has_the_settings_and_parses_webhooks_as_the_sync_face() -> None:
    sync = StripeProvider(api_key="sk_test_twin", webhook_secret=SECRET, timeout=3)
    twin = sync.aio()
    assert isinstance(twin, AsyncStripeProvider) and twin.settings is sync.settings
    assert async_provider_for(sync).settings == sync.settings  # type: ignore[attr-defined]
    built = create_async_provider("stripe", api_key="sk_test_twin", webhook_secret=SECRET)
    assert isinstance(built, AsyncStripeProvider)
    assert "sk_test" not in repr(twin)
    raw = event_body("payment_intent.succeeded", resource("payment_intent", id="pi_hook"))
    headers = {"Stripe-Signature": sign(raw, SECRET, int(time.time()))}
    assert asyncio.run(twin.parse_webhook(raw, headers)) == sync.parse_webhook(raw, headers)
    for provider in (twin, built):
        asyncio.run(provider.aclose())
        assert provider._http._client_async.is_closed  # the client it made
