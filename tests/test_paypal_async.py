"""AsyncPayPalProvider (PayPal's REST API over ``httpx.AsyncClient``) passes the sync
adapter's tests: tests/test_paypal.py (every request and answer checked against PayPal's
OpenAPI specs by ``PayPalMock``) and the provider contract, through ``blocking()`` and a
transport answered by the same ``responses`` mocks; plus the transport's own rules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
import responses

from paygate import (
    AuthenticationError,
    Money,
    OutcomeUnknown,
    PaymentStatus,
    ProviderUnavailable,
    RateLimited,
)
from paygate.provider import PaymentProvider, async_provider_for, create_async_provider
from paygate.providers.paypal import AsyncPayPalProvider, PayPalProvider
from paygate.testing.aio import blocking
from paygate.testing.conformance import ProviderContract, ProviderHarness
from tests.async_support import blocking_on_responses, responses_client
from tests.paypal_support import ACCESS_TOKEN, CLIENT_SECRET, PayPalMock, provider_settings
from tests.test_paypal import *  # noqa: F403  # every test of the sync face, again here
from tests.test_paypal_conformance import PayPalHarness


@pytest.fixture
def provider() -> Iterator[PaymentProvider]:  # replaces test_paypal's sync provider
    with blocking_on_responses(
        lambda client: AsyncPayPalProvider(**provider_settings(), http_client=client)
    ) as facade:
        yield facade


class AsyncPayPalHarness(PayPalHarness):
    def make_provider(self) -> PaymentProvider:
        self.client = responses_client()
        return blocking(AsyncPayPalProvider(**provider_settings(), http_client=self.client))


class TestAsyncPayPalConformance(ProviderContract):
    @pytest.fixture
    def harness(self) -> Iterator[ProviderHarness]:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            api = PayPalMock(rsps)
            api.token()
            harness = AsyncPayPalHarness(api)
            yield harness
            api.assert_all_called()
            if hasattr(harness, "client"):
                asyncio.run(harness.client.aclose())


# -- the async transport, natively on a loop ---------------------------------------------------

API = "https://api-m.sandbox.paypal.com"
TOKEN = {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 32400}


def _order(order_id: str = "5O190127TN364715T", status: str = "APPROVED") -> dict[str, object]:
    return {"id": order_id, "status": status, "intent": "CAPTURE",
            "purchase_units": [{"amount": {"currency_code": "USD", "value": "10.00"}}]}  # fmt: skip


def _run(answer: object, scenario: object) -> list[httpx.Request]:
    """Run ``scenario(provider)`` against ``answer(request)``; the requests sent."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)  # type: ignore[operator,no-any-return]

    async def main() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        provider = AsyncPayPalProvider(**provider_settings(), http_client=client)
        try:
            await scenario(provider)  # type: ignore[operator]
        finally:
            await provider.aclose()
            await client.aclose()

    asyncio.run(main())
    return seen


def test_token_fetched_once_and_sent_as_bearer_with_request_id() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token":
            return httpx.Response(200, json=TOKEN)
        return httpx.Response(200, json=_order())

    async def scenario(provider: AsyncPayPalProvider) -> None:
        payments = await asyncio.gather(*(provider.get_payment("5O190127TN364715T")
                                          for _ in range(5)))  # fmt: skip
        assert {p.id for p in payments} == {"5O190127TN364715T"}
        await provider.create_payment(order_id="ord_1", amount=Money(1000, "USD"),
                                      payment_method=None, idempotency_key="ord_1:create")  # fmt: skip

    seen = _run(answer, scenario)
    tokens = [r for r in seen if r.url.path == "/v1/oauth2/token"]
    assert len(tokens) == 1  # five concurrent calls, one token fetch
    assert tokens[0].headers["Authorization"].startswith("Basic ")
    assert tokens[0].content == b"grant_type=client_credentials"
    calls = [r for r in seen if r.url.path != "/v1/oauth2/token"]
    assert all(r.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}" for r in calls)
    create = calls[-1]
    assert create.method == "POST" and create.url.path == "/v2/checkout/orders"
    assert create.headers["PayPal-Request-Id"] == "ord_1:create"
    assert create.headers["Prefer"] == "return=representation"
    assert json.loads(create.content)["purchase_units"][0]["custom_id"] == "ord_1"
    assert next(r for r in calls if r.method == "GET").content == b""  # no "null" body


def test_a_401_on_a_cached_token_fetches_a_new_one_once() -> None:
    tokens = iter(["t-old", "t-new"])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token":
            return httpx.Response(200, json={**TOKEN, "access_token": next(tokens)})
        if request.headers["Authorization"] == "Bearer t-old" and calls["n"] > 0:
            return httpx.Response(401, json={"name": "AUTHENTICATION_FAILURE", "message": "x"})
        calls["n"] += 1
        return httpx.Response(200, json=_order())

    calls = {"n": 0}

    async def scenario(provider: AsyncPayPalProvider) -> None:
        await provider.get_payment("5O190127TN364715T")  # fetches t-old
        await provider.get_payment("5O190127TN364715T")  # 401 on t-old: t-new, once more

    seen = _run(answer, scenario)
    assert [r.url.path for r in seen].count("/v1/oauth2/token") == 2
    assert seen[-1].headers["Authorization"] == "Bearer t-new"


def test_a_401_on_a_fresh_token_is_an_authentication_error_at_once() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token":
            return httpx.Response(401, json={"error": "invalid_client",
                                             "error_description": "Client Authentication failed"})  # fmt: skip
        raise AssertionError("no API request without a token")

    async def scenario(provider: AsyncPayPalProvider) -> None:
        with pytest.raises(AuthenticationError) as caught:
            await provider.get_payment("5O190127TN364715T")
        assert CLIENT_SECRET not in str(caught.value) and ACCESS_TOKEN not in str(caught.value)

    assert len(_run(answer, scenario)) == 1


@pytest.mark.parametrize(
    ("reply", "expected", "retry_after"),
    [
        (httpx.Response(503, text="<html>busy</html>"), ProviderUnavailable, None),
        (
            httpx.Response(
                429,
                json={"name": "RATE_LIMIT_REACHED", "message": "slow down"},
                headers={"Retry-After": "7"},
            ),
            RateLimited,
            7.0,
        ),
        (httpx.Response(200, text='{"id": "cut'), OutcomeUnknown, None),
    ],
)
def test_answers_are_classified_like_the_sync_face(
    reply: httpx.Response, expected: type[Exception], retry_after: float | None
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token":
            return httpx.Response(200, json=TOKEN)
        return reply

    async def scenario(provider: AsyncPayPalProvider) -> None:
        with pytest.raises(expected) as caught:
            await provider.get_payment("5O190127TN364715T")
        assert caught.value.retry_after == retry_after  # type: ignore[attr-defined]

    _run(answer, scenario)


@pytest.mark.parametrize(
    ("failure", "expected", "code"),
    [
        (httpx.ConnectError("refused"), ProviderUnavailable, "network_error"),
        (httpx.ReadTimeout("slow"), OutcomeUnknown, "timeout"),
        (httpx.RemoteProtocolError("reset"), OutcomeUnknown, "connection_lost"),
    ],
)
def test_network_failures_are_classified_like_the_sync_face(
    failure: Exception, expected: type[Exception], code: str
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token":
            return httpx.Response(200, json=TOKEN)
        raise failure

    async def scenario(provider: AsyncPayPalProvider) -> None:
        with pytest.raises(expected) as caught:
            await provider.capture_payment("5O190127TN364715T", idempotency_key="k")
        assert caught.value.code == code  # type: ignore[attr-defined]

    _run(answer, scenario)


def test_complete_return_captures_an_approved_order_on_the_loop() -> None:
    captured = {**_order(status="COMPLETED"), "purchase_units": [{
        "amount": {"currency_code": "USD", "value": "10.00"},
        "payments": {"captures": [{"id": "3C679366HH908993F", "status": "COMPLETED",
                                   "amount": {"currency_code": "USD", "value": "10.00"}}]}}]}  # fmt: skip

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token":
            return httpx.Response(200, json=TOKEN)
        if request.method == "POST":
            return httpx.Response(201, json=captured)
        return httpx.Response(200, json=_order())

    async def scenario(provider: AsyncPayPalProvider) -> None:
        payment = await provider.complete_return({"token": "5O190127TN364715T"},
                                                 idempotency_key="ord:return")  # fmt: skip
        assert payment.status is PaymentStatus.SUCCEEDED and payment.charge_id

    seen = _run(answer, scenario)
    post = [r for r in seen if r.method == "POST" and "capture" in r.url.path]
    assert post[0].headers["PayPal-Request-Id"] == "ord:return"


def test_twin_registry_and_repr() -> None:
    sync = PayPalProvider(**provider_settings())
    twin = sync.aio()
    assert isinstance(twin, AsyncPayPalProvider) and twin.settings is sync.settings
    assert async_provider_for(sync).settings is sync.settings  # type: ignore[attr-defined]
    built = create_async_provider("paypal", **provider_settings())
    assert isinstance(built, AsyncPayPalProvider)
    for provider in (twin, built):
        assert CLIENT_SECRET not in repr(provider)
        asyncio.run(provider.aclose())
        assert provider._http._client.is_closed


@pytest.mark.parametrize(("token", "fetches"), [({"expires_in": 0}, 3), ({}, 1)])
def test_an_expired_token_is_fetched_again(token: dict[str, object], fetches: int) -> None:
    """``expires_in`` seconds after the fetch the token is old: fetched again (none given:
    kept, as the SDK keeps it)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth2/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "Bearer", **token})
        return httpx.Response(200, json=_order())

    async def scenario(provider: AsyncPayPalProvider) -> None:
        for _ in range(3):
            await provider.get_payment("5O190127TN364715T")

    seen = _run(answer, scenario)
    assert [r.url.path for r in seen].count("/v1/oauth2/token") == fetches
