"""The Gateway's one retry layer: exponential backoff with jitter, within a deadline.

Hand-written (about 100 lines) rather than tenacity: paygate needs exactly one policy, an
injectable sleep/clock/random for tests, the per-attempt timeout handed down to the
adapters' HTTP clients, and no extra runtime dependency. Adapters turn their SDK's own
retries off, so this is the only place a request is ever repeated -- and always with the
same idempotency key (the caller's closure carries it).

**The budget is a deadline.** [`RetryPolicy.call`][paygate.gateway.RetryPolicy.call] sets, for the
code it runs, the instant its ``total_budget`` ends; each adapter's HTTP layer asks
`attempt_timeout` for its request timeout, which is the adapter's own ``timeout`` cut to the time
left. So a hung provider costs at most the budget, not the budget plus one timeout, and with the
defaults (10 s timeout, 20 s budget) a timed-out attempt is retried once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import NamedTuple, TypeVar

from paygate._observe import fields
from paygate.errors import ConfigurationError, ProviderError

__all__ = ["MIN_REQUEST_TIMEOUT", "RetryPolicy", "attempt_timeout", "call_with", "retry_after"]

T = TypeVar("T")
_log = logging.getLogger("paygate")

#: the shortest timeout a request is given, even past the deadline (requests and httpx
#: refuse 0); a request started that late overruns the budget by at most this much
MIN_REQUEST_TIMEOUT = 0.05


class _Deadline(NamedTuple):
    at: float
    clock: Callable[[], float]

    def left(self) -> float:
        return self.at - self.clock()


_DEADLINE: ContextVar[_Deadline | None] = ContextVar("paygate_retry_deadline", default=None)


def attempt_timeout(default: float) -> float:
    """The timeout for one HTTP request sent now: ``default`` (the adapter's ``timeout``),
    cut to the time left before the deadline of the
    [`RetryPolicy.call`][paygate.gateway.RetryPolicy.call] running in this context (no policy
    running: ``default``), and never below `MIN_REQUEST_TIMEOUT`."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return default
    return max(min(default, deadline.left()), MIN_REQUEST_TIMEOUT)


@contextlib.contextmanager
def _deadline(budget: float, clock: Callable[[], float]) -> Iterator[_Deadline]:
    outer = _DEADLINE.get()
    if outer is not None:  # a policy inside another: the sooner deadline holds
        budget = min(budget, outer.left())
    current = _Deadline(clock() + budget, clock)
    token = _DEADLINE.set(current)
    try:
        yield current
    finally:
        _DEADLINE.reset(token)


def retry_after(value: object, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value: delay-seconds (``"2"``) or an
    HTTP-date (``"Wed, 21 Oct 2026 07:28:00 GMT"``, measured from ``now``, Unix seconds).
    ``None`` for a missing or unreadable value; a date in the past is 0."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():  # ASCII only: "²" is a digit to str.isdigit
        return float(text) if len(text) <= 9 else None  # over 30 years is not a delay
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # RFC 9110: HTTP-dates are GMT
        moment = moment.replace(tzinfo=timezone.utc)
    reference = time.time() if now is None else now
    return max(0.0, moment.timestamp() - reference)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a retryable provider error is retried.

    ``attempts`` counts every call (1 = no retry). The delay before retry *n* is
    ``min(max_delay, base_delay * 2**(n-1))``, scaled by a random factor in
    ``[1 - jitter, 1]`` ("full jitter" at ``jitter=1``) so that many clients do not retry
    in step; when the provider asked for a wait (``Retry-After``, carried on the error as
    ``retry_after``) the delay is at least that.

    ``total_budget`` is a deadline, counted from the first call: each request's timeout is
    cut to the time left (see `attempt_timeout`), and no retry starts unless, after
    its delay, at least ``min_attempt_time`` seconds are left -- a ``Retry-After`` beyond
    the budget ends the call at once rather than sleeping past it. Only errors with
    ``retryable=True`` (network failures, unknown outcomes, 5xx, 429) are retried;
    declines, 4xx and validation errors never are.
    """

    attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 4.0
    total_budget: float = 20.0
    jitter: float = 1.0
    min_attempt_time: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigurationError(f"retry attempts must be an int, got {self.attempts!r}")
        if self.attempts < 1:
            raise ConfigurationError(f"retry attempts must be >= 1, got {self.attempts}")
        for name in ("base_delay", "max_delay", "total_budget", "min_attempt_time"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"retry {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"retry jitter must be within 0..1, got {self.jitter}")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (retry - 1)))
        return float(ceiling * (1 - self.jitter * self.random()))

    def call(self, operation: str, func: Callable[[], T]) -> T:
        """``func()``, retried on retryable [`ProviderError`][paygate.errors.ProviderError] within
        the bounds; the requests ``func`` sends get their timeouts cut to the deadline."""
        with _deadline(self.total_budget, self.clock) as deadline:
            attempt = 1
            while True:
                try:
                    return func()
                except ProviderError as exc:
                    wait = self._next_wait(operation, exc, attempt, deadline)
                    if wait is None:
                        raise
                self.sleep(wait)
                attempt += 1

    def _next_wait(
        self, operation: str, exc: ProviderError, attempt: int, deadline: _Deadline
    ) -> float | None:
        """How long to wait before retrying after attempt ``attempt`` failed with ``exc``;
        ``None``: give up (re-raise). The one decision behind
        [`call`][paygate.gateway.RetryPolicy.call] and the Gateway's flows
        (``paygate.gateway._sansio.retried``), which differ only in how they wait."""
        if not exc.retryable or attempt >= self.attempts:
            return None
        wait = self.delay(attempt)
        asked = exc.retry_after
        if asked is not None and asked > wait:
            wait = asked
        if wait + self.min_attempt_time > deadline.left():
            _log.warning(
                "%s: giving up after %d attempt(s), %.2fs of the %.1fs retry budget "
                "left (next wait %.2fs%s): %s",
                operation, attempt, max(deadline.left(), 0.0), self.total_budget,
                wait, ", asked by Retry-After" if wait == asked else "",
                type(exc).__name__,
                extra=fields(operation=operation, attempt=attempt, outcome="gave_up",
                             error_type=type(exc).__name__),
            )  # fmt: skip
            return None
        _log.warning(
            "%s: attempt %d failed (%s, code=%s); retrying in %.2fs",
            operation, attempt, type(exc).__name__, exc.code, wait,
            extra=fields(provider=exc.provider, operation=operation, attempt=attempt,
                         outcome="retrying", error_type=type(exc).__name__),
        )  # fmt: skip
        return wait


def call_with(retry: RetryPolicy | None, operation: str, func: Callable[[], T]) -> T:
    """``func()`` through ``retry``, or called once when ``retry`` is None.

    For the adapters' listings: each page request is one ``func`` (a GET, safe to repeat,
    with the same cursor/page/window every attempt), so a retry repeats that page only.
    """
    return func() if retry is None else retry.call(operation, func)
