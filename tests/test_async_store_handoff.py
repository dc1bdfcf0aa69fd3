"""How ``AsyncStore`` hands a store's answers from its threads to the event loop
(issue 18: the hand-off cost more CPU than the store calls themselves).

Wake-ups are counted where they happen (the loop's ``call_soon_threadsafe``), not timed.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from paygate.stores.aio import AsyncStore
from paygate.stores.memory import MemoryStore


class _Store(MemoryStore):
    """A memory store with a method that waits on a gate, and one that counts runs."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.ran: list[str] = []
        self.ran_lock = threading.Lock()

    def hold(self) -> str:
        assert self.gate.wait(10)
        return "held"

    def note(self, name: str) -> str:
        with self.ran_lock:
            self.ran.append(name)
        if name == "boom":
            raise KeyError(name)
        return name


def _counting(loop: asyncio.AbstractEventLoop) -> list[int]:
    count = [0]
    threadsafe = loop.call_soon_threadsafe

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return threadsafe(*args, **kwargs)

    loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
    return count


def test_answers_arriving_together_wake_the_loop_once() -> None:
    store = _Store()
    astore = AsyncStore(store, threads=2)
    names = [f"n{i}" for i in range(20)]

    async def main() -> tuple[list[str], int]:
        wakeups = _counting(asyncio.get_running_loop())
        tasks = [asyncio.ensure_future(astore.note(name)) for name in names]
        await asyncio.sleep(0)  # every call is queued
        executor = astore._executor
        assert executor is not None
        executor.shutdown(wait=True)  # the loop is held while the threads answer them all
        results = list(await asyncio.gather(*tasks))
        return results, wakeups[0]

    results, wakeups = asyncio.run(main())
    assert results == names
    assert wakeups == 1  # run_in_executor: one per call


def test_a_threaded_call_keeps_its_exception_and_a_cancelled_queued_call_never_runs() -> None:
    store = _Store()
    astore = AsyncStore(store, threads=2)

    async def main() -> list[Any]:
        held = [asyncio.ensure_future(astore.hold()) for _ in range(2)]  # both threads
        await asyncio.sleep(0)
        queued = asyncio.ensure_future(astore.note("never"))
        failing = asyncio.ensure_future(astore.note("boom"))
        await asyncio.sleep(0)
        queued.cancel()
        await asyncio.wait([queued])
        store.gate.set()
        return list(await asyncio.gather(*held, queued, failing, return_exceptions=True))

    outcomes = asyncio.run(main())
    assert outcomes[:2] == ["held", "held"]
    assert isinstance(outcomes[2], asyncio.CancelledError)
    assert isinstance(outcomes[3], KeyError)
    assert store.ran == ["boom"]  # the cancelled call never ran
