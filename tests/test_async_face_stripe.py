"""tests/test_stripe_gateway.py on the async face: the Gateway's whole flow on Stripe, over the
same mocked HTTP, through AsyncGateway (``faces_support``)."""

from __future__ import annotations

import paygate
from paygate.providers.stripe import StripeProvider
from tests.faces_support import face_patch, loop_thread  # noqa: F401
from tests.test_stripe_gateway import *  # noqa: F403


def test_these_tests_run_on_the_async_face() -> None:
    gateway = paygate.connect(StripeProvider(api_key="sk_test_face", webhook_secret="whsec_face"), store="memory://")
    assert type(gateway.face).__name__ == "AsyncGateway"
    assert type(gateway.face.provider).__name__ == "AsyncStripeProvider"
    gateway.close()
