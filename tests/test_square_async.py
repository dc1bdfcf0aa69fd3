"""AsyncSquareProvider (``square.AsyncSquare`` on an ``httpx.AsyncClient``) passes the sync
adapter's tests: tests/test_square.py and tests/test_square_refunds.py (every request and
answer validated against Square's OpenAPI spec by the mock's observers) and the provider
contract, through ``blocking()``, on the same in-memory Square API behind an
``httpx.MockTransport``."""

# ruff: noqa: F811  (the shared fixtures are imported from tests.test_square_spec)
from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from paygate import Money, OutcomeUnknown, ProviderUnavailable
from paygate.provider import PaymentProvider, async_provider_for, create_async_provider
from paygate.providers._square_mock import SquareMockAPI
from paygate.providers.square import AsyncSquareProvider, SquareProvider
from paygate.testing.aio import blocking
from paygate.testing.conformance import ProviderContract
from tests.test_square import *  # noqa: F403  # every test of the sync face, again here
from tests.test_square_conformance import SquareHarness
from tests.test_square_refunds import *  # noqa: F403
from tests.test_square_spec import (
    ACCESS_TOKEN,
    SIGNATURE_KEY,
    SPEC_PATH,
    WEBHOOK_URL,
    check_call,
    square_api,  # noqa: F401
)


def _async_provider(api: SquareMockAPI) -> AsyncSquareProvider:
    return AsyncSquareProvider(
        access_token=ACCESS_TOKEN,
        location_id="LOC1",
        webhook_signature_key=SIGNATURE_KEY,
        webhook_url=WEBHOOK_URL,
        http_client=httpx.AsyncClient(transport=api.transport),
    )


@pytest.fixture
def square(square_api: SquareMockAPI) -> Iterator[PaymentProvider]:
    provider = _async_provider(square_api)
    facade = blocking(provider)
    yield facade
    facade.close()  # type: ignore[attr-defined]
    asyncio.run(provider._http.aclose())


class AsyncSquareHarness(SquareHarness):
    def make_provider(self) -> PaymentProvider:
        self.async_provider = _async_provider(self.api)
        return blocking(self.async_provider)


class TestAsyncSquareProvider(ProviderContract):
    @pytest.fixture
    def harness(self) -> Iterator[AsyncSquareHarness]:
        api = SquareMockAPI(webhook_signature_key=SIGNATURE_KEY, webhook_url=WEBHOOK_URL)
        if SPEC_PATH.is_file():
            api.observers.append(check_call)
        harness = AsyncSquareHarness(api)
        yield harness
        if hasattr(harness, "async_provider"):
            asyncio.run(harness.async_provider._http.aclose())


# -- natively on a loop --------------------------------------------------------------------------


def test_concurrent_payments_on_one_loop_and_the_webhooks_they_emit(
    square_api: SquareMockAPI,
) -> None:
    async def scenario() -> None:
        async with _async_provider(square_api) as provider:
            payments = await asyncio.gather(
                *(
                    provider.create_payment(
                        order_id=f"ord_{n}",
                        amount=Money(100 + n, "USD"),
                        payment_method="cnon:card-nonce-ok",
                        idempotency_key=f"ord_{n}:create",
                    )
                    for n in range(20)
                )
            )
            assert sorted(p.amount.amount for p in payments) == list(range(100, 120))
            assert len({p.id for p in payments}) == 20
            again = await provider.get_payment(payments[3].id)
            assert again.id == payments[3].id and again.order_id == "ord_3"
            sync = SquareProvider(
                access_token=ACCESS_TOKEN, location_id="LOC1",
                webhook_signature_key=SIGNATURE_KEY, webhook_url=WEBHOOK_URL,
            )  # fmt: skip
            for delivery in square_api.take_webhooks():
                assert await provider.parse_webhook(delivery.body, delivery.headers) == (
                    sync.parse_webhook(delivery.body, delivery.headers)
                )
            sync.close()
            await provider._http.aclose()

    asyncio.run(scenario())


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
        raise failure

    async def scenario() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
        provider = AsyncSquareProvider(access_token="EAAAsecret", location_id="L",
                                       http_client=client)  # fmt: skip
        with pytest.raises(expected) as caught:
            await provider.get_payment("pay_x")
        assert caught.value.code == code  # type: ignore[attr-defined]
        await provider.aclose()
        assert not client.is_closed  # the caller's client stays the caller's
        await client.aclose()

    asyncio.run(scenario())


def test_twin_and_registry_and_owned_client_closed() -> None:
    sync = SquareProvider(access_token="EAAAsecret", location_id="L", timeout=4)
    twin = sync.aio()
    assert isinstance(twin, AsyncSquareProvider) and twin.settings is sync.settings
    assert async_provider_for(sync).settings is sync.settings  # type: ignore[attr-defined]
    built = create_async_provider("square", access_token="EAAAsecret", location_id="L")
    assert isinstance(built, AsyncSquareProvider)
    assert "EAAAsecret" not in repr(twin) and "EAAAsecret" not in repr(built)
    for provider in (twin, built):
        asyncio.run(provider.aclose())
        assert provider._http.is_closed
    sync.close()
