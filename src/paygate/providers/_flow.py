"""The drivers of the sans-I/O operations of the PayPal and Square adapters.

An operation is a generator: it ``yield``s each request it needs (a small description of
it), is sent the answer, and returns the operation's result. A request that fails is
thrown into the generator (``gen.throw``) at the ``yield`` that asked for it, so the
operation's own ``try``/``except`` (an answer that means "already done", a lookup that
may find nothing) runs the same on both faces; an error it does not catch comes out of
the driver unchanged. `run` drives an operation with a sync transport, `run_async` with
an async one: each adapter writes its call sequences once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TypeVar

__all__ = ["run", "run_async"]

C = TypeVar("C")
A = TypeVar("A")
R = TypeVar("R")


def run(flow: Generator[C, A, R], send: Callable[[C], A]) -> R:
    """Answer each request ``flow`` yields with ``send(request)`` (its failure thrown
    into ``flow``) and return what ``flow`` returns."""
    try:
        call = next(flow)
        while True:
            try:
                answer = send(call)
            except Exception as error:  # the flow's own except clauses decide
                call = flow.throw(error)
            else:
                call = flow.send(answer)
    except StopIteration as done:
        result: R = done.value
        return result


async def run_async(flow: Generator[C, A, R], send: Callable[[C], Awaitable[A]]) -> R:
    """As `run`, each request awaited."""
    try:
        call = next(flow)
        while True:
            try:
                answer = await send(call)
            except Exception as error:  # the flow's own except clauses decide
                call = flow.throw(error)
            else:
                call = flow.send(answer)
    except StopIteration as done:
        result: R = done.value
        return result
