"""paygate's pytest plugin, loaded through the ``pytest11`` entry point ``paygate``.

Fixtures (function-scoped, so every test starts from an empty provider):

``fake_provider``
    a [`FakeProvider`][paygate.providers.fake.FakeProvider] with ``seed=0`` (the same ids on every
    run) and the real clock.
``fake_gateway``
    ``paygate.connect(fake_provider, store="memory://")``: a Gateway over that provider and
    an in-memory store; use ``fake_provider`` in the same test to script outcomes and take
    its webhooks.
``fake_clock``
    a [`FakeClock`][paygate.testing.FakeClock] at 1 700 000 000 s, for tests that build their
    own ``FakeProvider(clock=fake_clock)`` to control time.
``sandbox``
    a `paygate.sandbox.Sandbox` started in-process on a free port (memory store,
    webhook retries after 0.05, 0.1, 0.2 s), stopped after the test; needs the ``sandbox``
    extra (the test skips without it).
``webhook_receiver``
    a `paygate.testing.sandbox.WebhookReceiver`: a local endpoint recording the
    deliveries; ``sandbox.bus.forward_to.append(webhook_receiver.url)`` to receive them.

The plugin is loaded into every pytest run in an environment where paygate is installed,
so it imports nothing at module level but pytest and this file: the fake provider
(pydantic) and the Gateway are imported inside the fixtures that need them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from paygate.testing._clock import FakeClock

if TYPE_CHECKING:
    from paygate.gateway import Gateway
    from paygate.providers.fake import FakeProvider
    from paygate.sandbox import Sandbox
    from paygate.testing.sandbox import WebhookReceiver

__all__ = ["fake_clock", "fake_gateway", "fake_provider", "sandbox", "webhook_receiver"]


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that stands still until ``advance()`` is called."""
    return FakeClock()


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """A fresh, seeded fake provider."""
    from paygate.providers.fake import FakeProvider

    provider = FakeProvider(seed=0)
    yield provider
    provider.close()


@pytest.fixture
def fake_gateway(fake_provider: FakeProvider) -> Iterator[Gateway]:
    """A Gateway over ``fake_provider`` with an in-memory store."""
    import paygate

    gateway = paygate.connect(fake_provider, store="memory://")
    yield gateway
    gateway.close()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The sandbox on a free port, in this process, with a fast retry schedule."""
    pytest.importorskip("werkzeug", reason="the sandbox needs the 'sandbox' extra")
    pytest.importorskip("httpx", reason="the sandbox needs the 'sandbox' extra")
    pytest.importorskip("stripe", reason="the sandbox needs the 'sandbox' extra")
    from paygate.sandbox import Sandbox

    with Sandbox(port=0, retry_delays=(0.05, 0.1, 0.2), delivery_timeout=5.0) as running:
        yield running


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A local webhook endpoint recording every delivery (answers 200)."""
    pytest.importorskip("werkzeug", reason="the sandbox needs the 'sandbox' extra")
    from paygate.testing.sandbox import WebhookReceiver

    with WebhookReceiver() as receiver:
        yield receiver
