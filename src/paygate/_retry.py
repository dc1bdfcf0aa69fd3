"""The Gateway's one retry layer: exponential backoff with jitter, bounded twice.

Hand-written (about 60 lines) rather than tenacity: paygate needs exactly one policy, an
injectable sleep/clock/random for tests, and no extra runtime dependency. Adapters turn
their SDK's own retries off, so this is the only place a request is ever repeated -- and
always with the same idempotency key (the caller's closure carries it).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from paygate.errors import ConfigurationError, ProviderError

__all__ = ["RetryPolicy", "call_with"]

T = TypeVar("T")
_log = logging.getLogger("paygate")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a retryable provider error is retried.

    ``attempts`` counts every call (1 = no retry). The delay before retry *n* is
    ``min(max_delay, base_delay * 2**(n-1))``, scaled by a random factor in
    ``[1 - jitter, 1]`` ("full jitter" at ``jitter=1``) so that many clients do not retry
    in step. No retry starts once ``total_budget`` seconds have passed since the first
    call, or would end after it. Only errors with ``retryable=True`` (network failures,
    5xx, 429) are retried; declines and validation errors never are.
    """

    attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 4.0
    total_budget: float = 20.0
    jitter: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigurationError(f"retry attempts must be an int, got {self.attempts!r}")
        if self.attempts < 1:
            raise ConfigurationError(f"retry attempts must be >= 1, got {self.attempts}")
        for name in ("base_delay", "max_delay", "total_budget"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"retry {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"retry jitter must be within 0..1, got {self.jitter}")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry - 1)))
        return float(ceiling * (1 - self.jitter * self.random()))

    def call(self, operation: str, func: Callable[[], T]) -> T:
        """``func()``, retried on retryable :class:`ProviderError` within the bounds."""
        started = self.clock()
        attempt = 1
        while True:
            try:
                return func()
            except ProviderError as exc:
                if not exc.retryable or attempt >= self.attempts:
                    raise
                wait = self.delay(attempt)
                if self.clock() - started + wait > self.total_budget:
                    _log.warning(
                        "%s: giving up after %d attempt(s), retry budget of %.1fs spent: %s",
                        operation, attempt, self.total_budget, type(exc).__name__,
                    )  # fmt: skip
                    raise
                _log.warning(
                    "%s: attempt %d failed (%s, code=%s); retrying in %.2fs",
                    operation, attempt, type(exc).__name__, exc.code, wait,
                )  # fmt: skip
                self.sleep(wait)
                attempt += 1


def call_with(retry: RetryPolicy | None, operation: str, func: Callable[[], T]) -> T:
    """``func()`` through ``retry``, or called once when ``retry`` is None.

    For the adapters' listings: each page request is one ``func`` (a GET, safe to repeat,
    with the same cursor/page/window every attempt), so a retry repeats that page only.
    """
    return func() if retry is None else retry.call(operation, func)
