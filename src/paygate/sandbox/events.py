"""The sandbox's event bus: store every event, deliver it to every endpoint, retry, resend.

Delivery runs on background threads, never on the request that caused the event, so an
API call answers at once as a provider's does. Each event goes to every ``--forward-to``
URL and every endpoint registered for its provider, signed by the provider's face (the
Stripe face adds ``Stripe-Signature``, the Square face ``x-square-hmacsha256-signature``
...) afresh for every attempt, as providers sign retries anew.

Retries: a non-2xx answer or no answer within ``timeout`` seconds is retried after each of
``retry_delays`` in turn (default 1, 2, 4, 8, 16, 32 s: seven attempts in about a minute,
Stripe's three days of exponential backoff compressed), then given up on. Every attempt is
recorded (time, URL, status, start of the response) and ``resend`` delivers an event once
more to every endpoint, as the dashboard's **Resend** button and ``paygate sandbox resend``
do.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final

from paygate.errors import NotFound
from paygate.sandbox.store import DeliveryAttempt, SandboxStore, StoredEvent

__all__ = ["DEFAULT_RETRY_DELAYS", "EventBus", "Signer"]

#: seconds to wait before each retry (see the module docstring)
DEFAULT_RETRY_DELAYS: Final[tuple[float, ...]] = (1, 2, 4, 8, 16, 32)
DEFAULT_TIMEOUT: Final = 5.0
_EXCERPT = 500

#: (body, endpoint URL, unix seconds) -> the headers that sign this delivery
Signer = Callable[[bytes, str, int], Mapping[str, str]]


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    event_id: str = field(compare=False)
    url: str = field(compare=False)
    attempt: int = field(compare=False)  # 1-based
    retry: bool = field(compare=False)  # False for a manual resend: one attempt only


class EventBus:
    """Events in, deliveries out. Thread-safe."""

    def __init__(
        self,
        store: SandboxStore,
        *,
        forward_to: Sequence[str] = (),
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        timeout: float = DEFAULT_TIMEOUT,
        workers: int = 4,
    ) -> None:
        self.store = store
        self.forward_to = list(forward_to)
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self._signers: dict[str, Signer] = {}
        self._endpoints: dict[str, list[str]] = {}
        self._listeners: list[Callable[[StoredEvent], None]] = []
        self._queue: list[_Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox-webhook")
        self._client: Any = None  # httpx.Client, created on first delivery
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="sandbox-dispatch", daemon=True
        )
        self._dispatcher.start()

    # -- configuration --------------------------------------------------------------------------

    def set_signer(self, provider: str, signer: Signer) -> None:
        """How ``provider``'s deliveries are signed (each provider face sets its own)."""
        self._signers[provider] = signer

    def add_endpoint(self, provider: str, url: str) -> None:
        """A webhook endpoint registered through ``provider``'s own API (beside --forward-to)."""
        with self._cond:
            urls = self._endpoints.setdefault(provider, [])
            if url not in urls:
                urls.append(url)

    def endpoints(self, provider: str) -> list[str]:
        with self._cond:
            return [*self.forward_to, *self._endpoints.get(provider, [])]

    def subscribe(self, listener: Callable[[StoredEvent], None]) -> None:
        """Call ``listener(event)`` for every event emitted from now on (on the emitter's
        thread: keep it quick)."""
        self._listeners.append(listener)

    # -- events ---------------------------------------------------------------------------------

    def emit(
        self, provider: str, payload: Mapping[str, Any], *, event_id: str, type: str
    ) -> StoredEvent:
        """Store ``payload`` (serialized once: every delivery sends the same bytes) and queue
        its delivery to every endpoint of ``provider``."""
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        event = StoredEvent(event_id, provider, type, time.time(), body)
        self.store.add_event(event)
        for listener in self._listeners:
            listener(event)
        for url in self.endpoints(provider):
            self._schedule(event.id, url, attempt=1, delay=0.0, retry=True)
        return event

    def events(self, provider: str | None = None, limit: int = 100) -> list[StoredEvent]:
        """The newest ``limit`` events, newest first."""
        return self.store.list_events(provider, limit)

    def get(self, event_id: str) -> StoredEvent:
        event = self.store.get_event(event_id)
        if event is None:
            raise NotFound(f"no such sandbox event: {event_id!r:.80}", provider="sandbox")
        return event

    def attempts(self, event_id: str) -> list[DeliveryAttempt]:
        return self.store.attempts_for(event_id)

    def resend(self, event_id: str, urls: Iterable[str] | None = None) -> StoredEvent:
        """Deliver the event once more to every endpoint of its provider (or to ``urls``)."""
        event = self.get(event_id)
        for url in self.endpoints(event.provider) if urls is None else urls:
            done = len([a for a in self.attempts(event_id) if a.url == url])
            self._schedule(event.id, url, attempt=done + 1, delay=0.0, retry=False)
        return event

    def wait_idle(self, timeout: float = 10.0, *, retries: bool = False) -> bool:
        """Block until no delivery is queued for now or running (tests); False on timeout.
        Retries scheduled for later count only with ``retries=True``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._in_flight or any(retries or j.due <= time.monotonic() for j in self._queue):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()
        self._dispatcher.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    # -- delivery -------------------------------------------------------------------------------

    def _schedule(
        self, event_id: str, url: str, *, attempt: int, delay: float, retry: bool
    ) -> None:
        with self._cond:
            if self._closed:
                return
            job = _Job(time.monotonic() + delay, next(self._seq), event_id, url, attempt, retry)
            heapq.heappush(self._queue, job)
            self._cond.notify_all()

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (
                    not self._queue or self._queue[0].due > time.monotonic()
                ):
                    wait = self._queue[0].due - time.monotonic() if self._queue else None
                    self._cond.wait(wait)
                if self._closed:
                    return
                job = heapq.heappop(self._queue)
                self._in_flight += 1
            try:
                self._pool.submit(self._deliver, job)
            except RuntimeError:  # pool shut down while closing
                return

    def _http(self) -> Any:
        with self._cond:  # one client however many delivery threads start at once
            if self._client is None:
                import httpx

                self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
            return self._client

    def _deliver(self, job: _Job) -> None:
        try:
            attempt = self._post(job)
            self.store.add_attempt(attempt)
            if not attempt.ok and job.retry and job.attempt <= len(self.retry_delays):
                delay = self.retry_delays[job.attempt - 1]
                self._schedule(
                    job.event_id, job.url, attempt=job.attempt + 1, delay=delay, retry=True
                )
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _post(self, job: _Job) -> DeliveryAttempt:
        event = self.store.get_event(job.event_id)
        started = time.time()
        if event is None:  # cannot happen: events are never deleted
            return DeliveryAttempt(job.event_id, job.url, job.attempt, started, None, "event gone")
        headers = {"Content-Type": "application/json", "User-Agent": "paygate-sandbox"}
        signer = self._signers.get(event.provider)
        if signer is not None:
            headers.update(signer(event.body, job.url, int(started)))
        try:
            response = self._http().post(job.url, content=event.body, headers=headers)
        except Exception as exc:  # any failure to get an answer is a failed attempt
            excerpt = f"{type(exc).__name__}: {exc}"[:_EXCERPT]
            return DeliveryAttempt(
                job.event_id,
                job.url,
                job.attempt,
                started,
                None,
                excerpt,
                (time.time() - started) * 1000,
            )
        return DeliveryAttempt(
            job.event_id,
            job.url,
            job.attempt,
            started,
            response.status_code,
            response.text[:_EXCERPT],
            (time.time() - started) * 1000,
        )
