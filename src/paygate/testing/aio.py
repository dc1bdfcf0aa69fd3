"""Run an async adapter where sync code expects a provider: `blocking`.

The conformance suite (`paygate.testing.conformance`) and any sync test harness drive a
`paygate.provider.PaymentProvider`. ``blocking(async_provider)`` is one: each
operation runs the async adapter's coroutine to completion on an event loop the facade
owns (one loop for the facade's life, so an HTTP client bound to its first loop keeps
working), and ``close()`` awaits ``aclose()`` and closes that loop. So an async adapter
passes the same contract as its sync twin, test for test:

```python
class AsyncHarness(MyHarness):
    def make_provider(self):
        return blocking(MyAsyncProvider(api_key="sk_test_x"))
```

For tests only: it blocks the calling thread, and it refuses to run inside a running loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from paygate.provider import AsyncPaymentProvider, PaymentProvider

__all__ = ["BlockingProvider", "blocking"]


class BlockingProvider:
    """A sync `paygate.provider.PaymentProvider` face over an async adapter."""

    def __init__(self, provider: AsyncPaymentProvider) -> None:
        self.aio = provider
        self._loop = asyncio.new_event_loop()

    def __repr__(self) -> str:
        return f"blocking({self.aio!r})"

    def run(self, awaitable: Coroutine[Any, Any, Any]) -> Any:
        """Run one coroutine on the facade's loop and return its result."""
        return self._loop.run_until_complete(awaitable)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.aio, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute  # name, capabilities, parse_webhook, the fake's test controls

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.run(attribute(*args, **kwargs))

        return call

    def close(self) -> None:
        """``await aclose()`` on the adapter, then close the loop (idempotent)."""
        if self._loop.is_closed():
            return
        try:
            self.run(self.aio.aclose())
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        finally:
            self._loop.close()


def blocking(provider: AsyncPaymentProvider) -> PaymentProvider:
    """``provider`` as a sync `paygate.provider.PaymentProvider` (for tests)."""
    facade: Callable[[AsyncPaymentProvider], Any] = BlockingProvider
    result: PaymentProvider = facade(provider)
    return result
