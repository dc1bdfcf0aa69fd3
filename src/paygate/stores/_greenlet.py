"""Sync code that awaits: the bridge that runs `SQLStore`'s one copy of the store logic on
an event loop, each database round trip a real ``await`` (SQLAlchemy's asyncio design).

`greenlet_spawn` runs a plain function in a new greenlet, driven by the coroutine that
called it; inside, `await_only` hands an awaitable to that coroutine (a switch to the
parent greenlet), which awaits it on the loop and switches back with its result, or
throws its exception in. The function's frames stay suspended in their greenlet
meanwhile, so ``with`` blocks, ``try``/``finally`` and error handling are the sync code's
own. A cancelled task gets its ``CancelledError`` at the ``await_only`` it was waiting in;
the sync code's ``finally`` and ``__exit__`` then run (awaiting their rollback and the
pool's return the same way) before it reaches the caller.

Hand-written (about 40 lines) because SQLAlchemy's own (``sqlalchemy.util._concurrency_py3k``)
is private API, and a dependency on SQLAlchemy for it would be a large one.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from greenlet import getcurrent, greenlet

__all__ = ["await_only", "greenlet_spawn", "in_greenlet"]

T = TypeVar("T")


class _Bridged(greenlet):  # type: ignore[misc]
    """A greenlet run by `greenlet_spawn`; ``driver``: the greenlet awaiting for it."""

    __slots__ = ("driver",)

    def __init__(self, fn: Callable[..., Any], driver: greenlet) -> None:
        super().__init__(fn, driver)
        self.driver = driver
        # the awaiting task's context variables (log fields, trace spans): a new
        # greenlet would otherwise start from an empty context
        self.gr_context = driver.gr_context  # type: ignore[misc]  # greenlet's own slot


def in_greenlet() -> bool:
    """Is this code running under `greenlet_spawn` (so `await_only` may be called)?"""
    return isinstance(getcurrent(), _Bridged)


def await_only(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` from sync code run by `greenlet_spawn`: its result, or its
    exception raised here."""
    current = getcurrent()
    if not isinstance(current, _Bridged):
        if hasattr(awaitable, "close"):
            awaitable.close()  # no "never awaited" warning on top of this error
        raise RuntimeError("await_only() called outside greenlet_spawn()")
    # the driver awaits it and switches back with the result (or throws in)
    return current.driver.switch(awaitable)  # type: ignore[no-any-return]


async def greenlet_spawn(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a greenlet, awaiting each awaitable it passes to
    `await_only`; its return value, or its exception."""
    context = _Bridged(fn, getcurrent())
    result = context.switch(*args, **kwargs)
    while not context.dead:
        try:
            value = await result
        except BaseException:  # CancelledError included: raised in fn at its await_only
            result = context.throw(*sys.exc_info())
        else:
            result = context.switch(value)
    return result  # type: ignore[no-any-return]
