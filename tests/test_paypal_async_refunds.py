"""AsyncPayPalProvider passes tests/test_paypal_refunds.py through ``blocking()``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from paygate.provider import PaymentProvider
from paygate.providers.paypal import AsyncPayPalProvider
from tests.async_support import blocking_on_responses
from tests.paypal_support import provider_settings
from tests.test_paypal_refunds import *  # noqa: F403  # every test of the sync face


@pytest.fixture
def provider() -> Iterator[PaymentProvider]:  # replaces the sync provider
    with blocking_on_responses(
        lambda client: AsyncPayPalProvider(**provider_settings(), http_client=client)
    ) as facade:
        yield facade
