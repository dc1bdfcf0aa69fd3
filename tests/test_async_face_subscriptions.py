"""tests/test_gateway_subscriptions.py on the async face (AsyncGateway through
``faces_support``): the SaaS walk-through, webhooks in any order, disputes."""

from __future__ import annotations

from tests.faces_support import face_patch, loop_thread  # noqa: F401
from tests.test_gateway_subscriptions import *  # noqa: F403


def test_these_tests_run_on_the_async_face() -> None:
    import paygate
    from paygate.providers.fake import FakeProvider

    gateway = paygate.connect(FakeProvider(seed=1), store="memory://")
    assert type(gateway.face).__name__ == "AsyncGateway"  # type: ignore[attr-defined]
    gateway.close()
