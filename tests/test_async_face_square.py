"""tests/test_square_gateway.py on the async face: the Gateway's whole flow on Square, over the
same mocked HTTP, through AsyncGateway (``faces_support``)."""

from __future__ import annotations

import paygate
from paygate.providers.square import SquareProvider
from tests.faces_support import face_patch, loop_thread  # noqa: F401
from tests.test_square_gateway import *  # noqa: F403


def test_these_tests_run_on_the_async_face() -> None:
    gateway = paygate.connect(SquareProvider(access_token="EAAA_face", location_id="LOC1"), store="memory://")
    assert type(gateway.face).__name__ == "AsyncGateway"
    assert type(gateway.face.provider).__name__ == "AsyncSquareProvider"
    gateway.close()
