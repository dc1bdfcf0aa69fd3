"""AsyncPayPalProvider passes tests/test_paypal_refunds.py through ``blocking()``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from paygate.provider import PaymentProvider
from paygate.providers.paypal import AsyncPayPalProvider
from paygate.testing.aio import blocking
from tests.async_support import responses_client
from tests.paypal_support import provider_settings
from tests.test_paypal_refunds import *  # noqa: F403  # every test of the sync face


@pytest.fixture
def provider() -> Iterator[PaymentProvider]:  # replaces the sync provider
    facade = blocking(AsyncPayPalProvider(**provider_settings(), http_client=responses_client()))
    yield facade
    facade.close()  # type: ignore[attr-defined]
