"""AsyncPayPalProvider.parse_webhook passes tests/test_paypal_webhooks.py: offline
verification (the certificate fetched once, off the loop), ``verification="api"`` and the
capture -> order lookups, awaited through ``blocking()`` over the same ``responses`` mock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from paygate.provider import PaymentProvider
from paygate.providers.paypal import AsyncPayPalProvider
from tests.async_support import blocking_on_responses
from tests.paypal_support import CertServer, provider_settings
from tests.test_paypal_webhooks import *  # noqa: F403  # every test of the sync face


@pytest.fixture
def provider(certs: CertServer) -> Iterator[PaymentProvider]:  # replaces the sync provider
    with blocking_on_responses(
        lambda client: AsyncPayPalProvider(
            **provider_settings(cert_fetcher=certs), http_client=client
        )
    ) as facade:
        yield facade
