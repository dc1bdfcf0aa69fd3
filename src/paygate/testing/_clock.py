"""A manual clock for deterministic tests."""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A callable returning unix seconds that only moves when told to.

    Hand it to the fake provider (``FakeProvider(clock=clock)``) to make timestamps
    deterministic and to test webhook tolerance windows.

    Examples:
        ```python
        clock = FakeClock(1_700_000_000)
        clock.advance(301)  # now a delivery signed before is too old
        ```
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward (or back, with a negative number) by ``seconds``; return the new time."""
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        with self._lock:
            self._now = float(now)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
