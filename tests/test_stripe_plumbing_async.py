"""The Stripe adapter's async face builds no ``StripeObject`` either (issue 21): every
operation on ``StripeClient.raw_request_async`` but a SetupIntent's creation, the same
requests as the sync face. The sync plumbing tests (tests/test_stripe_plumbing.py) run
here unchanged against ``AsyncStripeProvider``, driven through
``paygate.testing.aio.blocking`` with its HTTP answered by the same ``responses`` mocks
(``tests.async_support``): one test per group of operations, as on the sync face."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import responses

import tests.test_stripe_plumbing as sync_plumbing
from paygate.providers.stripe import AsyncStripeProvider
from paygate.testing.aio import blocking
from tests.async_support import responses_client
from tests.fixtures.stripe import resource

API, KEY = sync_plumbing.API, sync_plumbing.KEY
# the fixtures they take
api = sync_plumbing.api
no_stripe_objects = sync_plumbing.no_stripe_objects
# the tests shared with the sync face, run here on the async one
test_an_id_cannot_reach_another_path = sync_plumbing.test_an_id_cannot_reach_another_path
test_checkout_sessions = sync_plumbing.test_checkout_sessions_build_no_stripe_object
test_create_payment = sync_plumbing.test_create_payment_builds_no_stripe_object
test_customers_and_payment_methods = (
    sync_plumbing.test_customer_and_payment_method_operations_build_no_stripe_object
)
test_customers_subscriptions_and_disputes = (
    sync_plumbing.test_customers_subscriptions_and_disputes_build_no_stripe_object
)
test_dispute_operations = sync_plumbing.test_dispute_operations_build_no_stripe_object
test_get_payment_and_its_lists = sync_plumbing.test_get_payment_and_its_lists_build_no_stripe_object
test_invoices = sync_plumbing.test_invoices_build_no_stripe_object
test_payment_operations = sync_plumbing.test_payment_operations_build_no_stripe_object
test_setups = sync_plumbing.test_setups_build_no_stripe_object
test_subscription_operations = sync_plumbing.test_subscription_operations_build_no_stripe_object


@pytest.fixture(autouse=True)
def async_face(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``StripeProvider(...)`` in the shared tests builds the async adapter, driven
    synchronously, its requests answered by the test's ``responses`` mock."""
    made: list[Any] = []

    def make(**settings: Any) -> Any:
        client = responses_client()
        facade = blocking(AsyncStripeProvider(http_client=client, **settings))
        made.append((facade, client))
        return facade

    monkeypatch.setattr(sync_plumbing, "StripeProvider", make)
    yield
    for facade, client in made:
        facade.run(client.aclose())
        facade.close()


def test_a_setup_intents_usage_is_sent_on_the_async_face(api: responses.RequestsMock) -> None:
    """A SetupIntent stays on the SDK's service on this face too (one guard for both)."""
    api.post(f"{API}/setup_intents", json=resource("setup_intent", id="seti_plumb"))
    provider = sync_plumbing.StripeProvider(api_key=KEY)
    provider.create_setup(customer_id="cus_plumb", idempotency_key="s1", usage="on_session")
    assert "usage=on_session" in str(api.calls[0].request.body).split("&")
    assert api.calls[0].request.headers["Idempotency-Key"] == "s1"


def test_the_async_raw_refuses_a_parameter_it_would_not_send(
    api: responses.RequestsMock,
) -> None:
    async def scenario() -> None:
        client = responses_client()
        async with AsyncStripeProvider(api_key=KEY, http_client=client) as provider:
            with pytest.raises(TypeError, match=r"would not send \['base'\]"):
                await provider._raw_async("get_refund", "get", "/v1/refunds/re_1", {"base": "x"})
        await client.aclose()

    asyncio.run(scenario())
    assert not api.calls
