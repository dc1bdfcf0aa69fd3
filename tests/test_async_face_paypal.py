"""tests/test_paypal_gateway.py on the async face: the Gateway's whole flow on Paypal, over the
same mocked HTTP, through AsyncGateway (``faces_support``)."""

from __future__ import annotations

import paygate
from paygate.providers.paypal import PayPalProvider
from tests.faces_support import face_patch, loop_thread  # noqa: F401
from tests.test_paypal_gateway import *  # noqa: F403


def test_these_tests_run_on_the_async_face() -> None:
    gateway = paygate.connect(PayPalProvider(client_id="id", client_secret="s"), store="memory://")
    assert type(gateway.face).__name__ == "AsyncGateway"
    assert type(gateway.face.provider).__name__ == "AsyncPayPalProvider"
    gateway.close()
