"""Run the Gateway's own tests over the async face.

``BlockingAsyncGateway`` puts an [`AsyncGateway`][paygate.gateway.AsyncGateway] behind
the sync Gateway's API: each coroutine method runs as a task on a private event loop
(one background thread per test module), with the caller's context variables (so
``gw.channel(...)`` holds), and the caller waits for it. The provider the tests hold is the
sync fake; the AsyncGateway gets its async twin on the same engine (``fake.aio()``), so
``provider.take_webhooks()``, ``fail_next`` and ``payments()`` see what the async face
did. Every operation, flow and store call is the async face's: only the waiting is
blocking, in the test thread.

``face_patch`` replaces ``paygate.connect`` (and ``paygate.gateway.connect``) with
``connect_blocking_async`` for one test: a test module that star-imports a Gateway test
module and uses it as an autouse fixture re-runs those tests on the async face.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest

import paygate
import paygate.gateway
from paygate.gateway import AsyncGateway, connect_async

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread; ``call`` runs a coroutine there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="paygate-test-loop")  # fmt: skip
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        context = contextvars.copy_context()  # gw.channel(...) set in the test's thread
        done: Future[T] = Future()

        def start() -> None:
            # a task copies the current context: created inside ``context``, it runs in it
            task = context.run(self.loop.create_task, coro)

            def finished(t: asyncio.Task[T]) -> None:
                if t.cancelled():
                    done.cancel()
                elif t.exception() is not None:
                    done.set_exception(t.exception())  # type: ignore[arg-type]
                else:
                    done.set_result(t.result())

            task.add_done_callback(finished)

        self.loop.call_soon_threadsafe(start)
        return done.result(timeout=120)

    def close(self) -> None:
        async def drain() -> None:
            # what asyncio.run does at its end: a task still pending (a store pool's
            # workers, of a gateway a test left open) is cancelled and awaited
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await self.loop.shutdown_asyncgens()
            await self.loop.shutdown_default_executor()

        self.call(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class BlockingAsyncGateway:
    """An AsyncGateway with the sync Gateway's API (see the module)."""

    _own = frozenset({"_agw", "_runner", "_provider"})

    def __init__(self, agw: AsyncGateway[Any], runner: LoopThread, provider: Any) -> None:
        object.__setattr__(self, "_agw", agw)
        object.__setattr__(self, "_runner", runner)
        object.__setattr__(self, "_provider", provider)

    @property
    def provider(self) -> Any:
        """The provider the test gave (the sync fake whose twin the async face uses)."""
        return self._provider

    @property
    def face(self) -> AsyncGateway[Any]:
        return self._agw

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._agw, name)
        if inspect.iscoroutinefunction(attr):

            def blocking(*args: Any, **kwargs: Any) -> Any:
                return self._runner.call(attr(*args, **kwargs))

            return blocking
        return attr

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._agw, name, value)  # gw.retry = RetryPolicy(...) reaches the face

    def __repr__(self) -> str:
        return f"Blocking{self._agw!r}"

    def close(self) -> None:
        self._runner.call(self._agw.aclose())

    def __enter__(self) -> BlockingAsyncGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_blocking_async(runner: LoopThread) -> Callable[..., BlockingAsyncGateway]:
    """A ``paygate.connect`` that builds the async face (see the module)."""

    def connect(provider: Any, store: Any = None, **kwargs: Any) -> BlockingAsyncGateway:
        if isinstance(provider, str):
            built = paygate.create_provider(provider, **{
                k: kwargs.pop(k) for k in list(kwargs)
                if k not in ("retry", "currencies", "webhook_lease", "clock")
            })  # fmt: skip
        else:
            built = provider
        agw = connect_async(_twin_on_mocked_http(built), store, **kwargs)
        return BlockingAsyncGateway(agw, runner, built)

    return connect


def _twin_on_mocked_http(built: Any) -> Any:
    """The async twin of a real adapter on the test's mocked HTTP: Stripe's through the
    active ``responses`` mock (``tests.async_support``), Square's on the same
    ``httpx.MockTransport`` as the sync adapter, PayPal's through ``responses`` like
    Stripe's. Others as ``connect_async`` makes them (the fake's twin shares its
    engine)."""
    kind = type(built).__name__
    if kind == "StripeProvider":
        from paygate.providers.stripe import AsyncStripeProvider
        from tests.async_support import responses_client

        stripe = AsyncStripeProvider.__new__(AsyncStripeProvider)
        stripe._setup(built.settings, responses_client())
        stripe._clock = built._clock
        return stripe
    if kind == "PayPalProvider":
        from paygate.providers.paypal import AsyncPayPalProvider
        from tests.async_support import responses_client

        paypal = AsyncPayPalProvider.__new__(AsyncPayPalProvider)
        paypal._setup(built.settings, responses_client())
        return paypal
    if kind == "SquareProvider":
        import httpx

        from paygate.providers.square import AsyncSquareProvider

        square = AsyncSquareProvider.__new__(AsyncSquareProvider)
        square._setup(built.settings, httpx.AsyncClient(transport=built._http._transport))
        return square
    return built


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


@pytest.fixture(autouse=True)
def face_patch(monkeypatch: pytest.MonkeyPatch, loop_thread: LoopThread) -> None:
    """``paygate.connect`` builds the async face for this test."""
    connect = connect_blocking_async(loop_thread)
    monkeypatch.setattr(paygate, "connect", connect)
    monkeypatch.setattr(paygate.gateway, "connect", connect)
