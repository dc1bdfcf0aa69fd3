"""The sans-I/O core: what a flow may ask for, and the two drivers that answer.

Every Gateway operation (``create_payment``, ``handle_webhook``, ...) is written once, as a
*flow*: a generator that does no I/O itself. Where it needs the store, the provider, a
pause before a retry or a handler run, it ``yield``s an *effect* describing the call
([`StoreCall`][paygate.gateway._sansio.StoreCall],
[`ProviderCall`][paygate.gateway._sansio.ProviderCall], [`Sleep`][paygate.gateway._sansio.Sleep],
[`RunHandler`][paygate.gateway._sansio.RunHandler]) and receives its result (or has its
exception raised at the ``yield``). The same design as h11 and the ``sansio`` libraries:
the decisions (order-first idempotency, retries with the same key, the webhook pipeline)
live in one place, and the I/O is pluggable.

Two drivers run flows: [`run_sync`][paygate.gateway._sansio.run_sync] performs each
effect with blocking calls (the [`Gateway`][paygate.Gateway]), and
[`run_async`][paygate.gateway._sansio.run_async] awaits them (the ``AsyncGateway``). A
driver is a loop of a dozen lines: it owns no logic, so the two faces cannot drift apart.

Flows call the typed helpers [`store`][paygate.gateway._sansio.store] and
[`provider`][paygate.gateway._sansio.provider] with ``yield from``, naming the protocol
method (``Store.get_payment``): mypy checks the arguments and the result type as if the
call were direct.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from paygate import _observe
from paygate._retry import RetryPolicy, _deadline
from paygate.errors import ProviderError

__all__ = [
    "Effect",
    "Flow",
    "ProviderCall",
    "RunHandler",
    "Sleep",
    "StoreCall",
    "provider",
    "retried",
    "run_async",
    "run_sync",
    "store",
]

_log = logging.getLogger("paygate")

R = TypeVar("R")
Params = ParamSpec("Params")


@dataclass(frozen=True, slots=True)
class StoreCall:
    """Call ``method`` on the gateway's store (or on ``target``, another store)."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    target: Any = None


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """Call ``method`` on the gateway's provider adapter."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` before a retry."""

    seconds: float


@dataclass(frozen=True, slots=True)
class RunHandler:
    """Run an application handler with ``subject`` (a fact or a webhook event)."""

    handler: Callable[[Any], Any]
    subject: Any = field(repr=False)


#: what a flow may yield
Effect = StoreCall | ProviderCall | Sleep | RunHandler
#: a flow: yields effects, is sent their results, returns ``R``
Flow = Generator[Effect, Any, R]


def store(
    method: Callable[Concatenate[Any, Params], R],
    /,
    *args: Params.args,
    **kwargs: Params.kwargs,
) -> Flow[R]:
    """``yield from store(Store.get_payment, payment_id)``: the store's answer, typed."""
    result: R = yield StoreCall(method.__name__, args, kwargs)
    return result


def store_of(
    target: Any,
    method: Callable[Concatenate[Any, Params], R],
    /,
    *args: Params.args,
    **kwargs: Params.kwargs,
) -> Flow[R]:
    """[`store`][paygate.gateway._sansio.store] on another store than the gateway's."""
    result: R = yield StoreCall(method.__name__, args, kwargs, target)
    return result


def provider(
    method: Callable[Concatenate[Any, Params], R],
    /,
    *args: Params.args,
    **kwargs: Params.kwargs,
) -> Flow[R]:
    """``yield from provider(PaymentProvider.get_payment, payment_id)``: the adapter's
    answer, typed (the async adapter's coroutine is awaited by the async driver)."""
    result: R = yield ProviderCall(method.__name__, args, kwargs)
    return result


def sleep(seconds: float) -> Flow[None]:
    """Pause before a retry (``time.sleep`` or ``asyncio.sleep``, by driver)."""
    yield Sleep(seconds)


def run_handler(handler: Callable[[Any], Any], subject: Any) -> Flow[None]:
    """Run one handler (the async driver awaits what an ``async def`` returns), under a
    span ``paygate.webhook.handler`` or ``paygate.fact.handler`` when OpenTelemetry is
    there and a tracer provider is set (else neither the span nor its attributes)."""
    if not _observe.tracing():
        yield RunHandler(handler, subject)
        return
    name, attributes = _observe.handler_span(handler_name(handler), subject)
    with _observe.span(name, attributes) as current:
        try:
            yield RunHandler(handler, subject)
        except BaseException as exc:
            _observe.failed(current, exc)
            raise


def retried(policy: RetryPolicy, operation: str, attempt: Callable[[], Flow[R]]) -> Flow[R]:
    """``attempt()`` run again on a retryable [`ProviderError`][paygate.errors.ProviderError]
    within ``policy``'s bounds: [`RetryPolicy.call`][paygate.RetryPolicy.call] as a flow.

    The decision (which errors, how long to wait, when the budget is spent) is the
    policy's own (``RetryPolicy._next_wait``); only the pause is an effect. The deadline
    is set for the whole loop, so the adapters' requests get their timeouts cut to it
    (the async driver runs the flow inside one task: the context is the same).
    """
    with _deadline(policy.total_budget, policy.clock) as deadline:
        number = 1
        while True:
            try:
                if number == 1:
                    return (yield from attempt())
                with _attempt(number):  # the spans and log lines of its provider calls
                    return (yield from attempt())
            except ProviderError as exc:
                wait = policy._next_wait(operation, exc, number, deadline)
                if wait is None:
                    raise
            yield Sleep(wait)
            number += 1


@contextlib.contextmanager
def _attempt(number: int) -> Iterator[None]:
    token = _observe.ATTEMPT.set(number)
    try:
        yield
    finally:
        _observe.ATTEMPT.reset(token)


def _observed() -> bool:
    """Whether a provider call is watched: OpenTelemetry present with a tracer or meter
    provider set, or DEBUG logging on (else the drivers call the adapter directly)."""
    watch = _observe.telemetry
    return (watch is not None and watch.watching()) or _log.isEnabledFor(logging.DEBUG)


class AwaitableReturned(Exception):
    """A handler returned an awaitable: it did not run (the sync Gateway awaits nothing)."""


def handler_name(handler: Any) -> str:
    return str(getattr(handler, "__qualname__", None) or type(handler).__qualname__)


def _what(effect: Any) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
    return effect.method, effect.args, effect.kwargs


def run_sync(
    flow: Flow[R],
    *,
    store: Any,
    provider: Any,
    sleep: Callable[[float], object],
) -> R:
    """Run ``flow`` to its end with blocking calls; its result, or its exception."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: R = stop.value
            return result
        value = error = None
        try:
            kind = type(effect)
            if kind is StoreCall:
                target = effect.target if effect.target is not None else store  # type: ignore[union-attr]
                value = getattr(target, effect.method)(*effect.args, **effect.kwargs)  # type: ignore[union-attr]
            elif kind is ProviderCall:
                call = getattr(provider, effect.method)  # type: ignore[union-attr]
                if not _observed():
                    value = call(*effect.args, **effect.kwargs)  # type: ignore[union-attr]
                else:
                    with _observe.provider_call(provider.name, *_what(effect)):
                        value = call(*effect.args, **effect.kwargs)  # type: ignore[union-attr]
            elif kind is Sleep:
                sleep(effect.seconds)  # type: ignore[union-attr]
            else:
                _run_handler_sync(effect.handler, effect.subject)  # type: ignore[union-attr]
        except BaseException as exc:  # handed to the flow, which decides (or re-raises)
            error = exc


def _run_handler_sync(handler: Callable[[Any], Any], subject: Any) -> None:
    result = handler(subject)
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if callable(close):
            close()  # never awaited: closed, so no "never awaited" warning either
        raise AwaitableReturned(
            f"handler {handler_name(handler)} returned an awaitable, which this synchronous "
            "Gateway cannot await: it did not run. Register a plain function (use "
            "asyncio.run(...) inside it for async code)"
        )


async def run_async(
    flow: Flow[R],
    *,
    store: Any,
    provider: Any,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    other_store: Callable[[Any, str], Callable[..., Awaitable[Any]]] | None = None,
) -> R:
    """Run ``flow`` to its end, awaiting each effect; its result, or its exception.

    ``store`` is an async store (every method a coroutine); ``provider`` an
    ``AsyncPaymentProvider`` (a plain method's result, such as ``parse_webhook``'s, is
    used as is). A cancellation arrives in the flow at the ``yield`` it was waiting on,
    like any exception: the flow's ``finally``/``except`` clauses run (their own
    effects are still performed), then it propagates. ``other_store(target, method)``
    turns a method of another store (``replay(store=...)``) into a coroutine function.
    """
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: R = stop.value
            return result
        value = error = None
        try:
            kind = type(effect)
            if kind is StoreCall:
                if effect.target is not None:  # type: ignore[union-attr]
                    assert other_store is not None
                    call = other_store(effect.target, effect.method)  # type: ignore[union-attr]
                else:
                    call = getattr(store, effect.method)  # type: ignore[union-attr]
                value = await call(*effect.args, **effect.kwargs)  # type: ignore[union-attr]
            elif kind is ProviderCall:
                call = getattr(provider, effect.method)  # type: ignore[union-attr]
                if not _observed():
                    value = call(*effect.args, **effect.kwargs)  # type: ignore[union-attr]
                    if inspect.isawaitable(value):
                        value = await value
                else:
                    with _observe.provider_call(provider.name, *_what(effect)):
                        value = call(*effect.args, **effect.kwargs)  # type: ignore[union-attr]
                        if inspect.isawaitable(value):
                            value = await value
            elif kind is Sleep:
                await sleep(effect.seconds)  # type: ignore[union-attr]
            else:
                result_of = effect.handler(effect.subject)  # type: ignore[union-attr]
                if inspect.isawaitable(result_of):
                    await result_of
        except BaseException as exc:  # cancellation included: the flow decides, re-raises
            error = exc
