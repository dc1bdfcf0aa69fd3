"""The sandbox's state: one fake-provider engine per provider face, plus wire-only records.

The engine is `paygate.providers.fake.FakeProvider` (payments, refunds, customers,
checkout sessions, subscriptions, invoices, disputes, with their rules and scripted test
outcomes); the sandbox does not have a second one. Each provider face gets its own engine
(its own ids and objects) and translates the engine's events into its provider's events.
What a provider's wire format has and the engine does not (Stripe prices, PayPal orders'
links, idempotency answers ...) lives in ``records``: provider → kind → id → JSON dict.

Every change goes through `SandboxState.transaction`, which holds the one lock,
hands the engine's events to the face (which emits them on the bus) and, with a
persistent store, saves the provider's state when the outermost transaction ends.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from paygate.providers._fake_codec import snapshot
from paygate.providers.fake import FakeProvider
from paygate.sandbox.store import MemoryStore, SandboxStore

__all__ = ["SAVE_DELAY", "IdempotencyMismatch", "SandboxState", "WireAnswer"]

#: seconds a persistent store's writes of provider state are gathered for
SAVE_DELAY = 0.2

JSON = dict[str, Any]
#: called with each event the engine emitted, as a dict (fake-provider vocabulary)
EngineListener = Callable[[JSON], None]


@dataclass(frozen=True, slots=True)
class WireAnswer:
    """An HTTP answer as a face stores it for idempotent replay."""

    status: int
    body: bytes
    content_type: str = "application/json"


class IdempotencyMismatch(Exception):
    """The idempotency key was used before with different parameters."""


class SandboxState:
    """All provider state behind one re-entrant lock."""

    def __init__(self, store: SandboxStore | None = None, *, seed: int | None = None) -> None:
        self.store: SandboxStore = store if store is not None else MemoryStore()
        self.lock = threading.RLock()
        self._seed = seed
        self._engines: dict[str, FakeProvider] = {}
        self._listeners: dict[str, EngineListener] = {}
        self._records: dict[str, dict[str, dict[str, JSON]]] = {}
        self._depth = 0
        self._dirty: set[str] = set()
        self._persist = not isinstance(self.store, MemoryStore)
        self._saver: threading.Thread | None = None
        self._save_requested = threading.Event()
        self._flush_lock = threading.Lock()
        self._closed = False
        self._secrets: dict[tuple[str, str], str] = {}

    # -- engines --------------------------------------------------------------------------------

    def engine(self, provider: str) -> FakeProvider:
        """``provider``'s engine (created, and restored from the store, on first use).

        Read freely under `lock`; change it only inside `transaction`."""
        with self.lock:
            engine = self._engines.get(provider)
            if engine is None:
                engine = FakeProvider(seed=self._seed, base_url="http://sandbox.invalid")
                saved = self.store.load_state(f"provider:{provider}")
                if saved is not None:
                    engine.restore_state(saved["engine"])
                    self._records[provider] = saved["records"]
                self._engines[provider] = engine
            return engine

    def on_engine_event(self, provider: str, listener: EngineListener) -> None:
        """Route ``provider``'s engine events to ``listener`` (its face's translator)."""
        self._listeners[provider] = listener

    @contextmanager
    def transaction(self, provider: str) -> Iterator[FakeProvider]:
        """Lock, yield ``provider``'s engine, then translate what it emitted and persist.

        Events are handed on even when the block raises (a decline records a failed
        payment and emits ``payment.failed`` before it raises ``CardDeclined``)."""
        with self.lock:
            engine = self.engine(provider)
            self._depth += 1
            try:
                yield engine
            finally:
                self._depth -= 1
                self._drain(provider, engine)
                self._dirty.add(provider)
                if self._depth == 0:
                    self._save()

    def _drain(self, provider: str, engine: FakeProvider) -> None:
        listener = self._listeners.get(provider)
        for delivery in engine.take_webhooks():
            if listener is not None:
                listener(json.loads(delivery.body))

    def _save(self) -> None:
        """Called at the end of each outermost transaction: with a persistent store, have
        the saver thread write the changed providers' state soon (within ``SAVE_DELAY``)."""
        if not self._persist:
            self._dirty.clear()
            return
        if self._saver is None:
            self._saver = threading.Thread(target=self._save_soon, name="sandbox-save", daemon=True)
            self._saver.start()
        self._save_requested.set()

    def _save_soon(self) -> None:
        # Rewriting a provider's whole state on every request made a SQLite-backed sandbox
        # answer ~20 requests/s; gathering the changes of SAVE_DELAY seconds into one write
        # keeps it as fast as the memory store, at the price of that much on a crash.
        while not self._closed:
            self._save_requested.wait()
            time.sleep(SAVE_DELAY)
            self._save_requested.clear()
            self.flush()

    def flush(self) -> None:
        """Write every changed provider's state to the store now."""
        with self._flush_lock:
            with self.lock:
                dirty, self._dirty = self._dirty, set()
                states = {
                    provider: {
                        "engine": self._engines[provider].export_state(),
                        "records": snapshot(self._records.get(provider, {})),
                    }
                    for provider in dirty
                }
            for provider, state in states.items():
                self.store.save_state(f"provider:{provider}", state)

    def close(self) -> None:
        """Write what is pending and stop the saver (before the store is closed)."""
        self._closed = True
        self._save_requested.set()
        if self._saver is not None:
            self._saver.join(5)
        if self._persist:
            self.flush()

    # -- wire-only records ----------------------------------------------------------------------

    def records(self, provider: str, kind: str) -> dict[str, JSON]:
        """``provider``'s records of ``kind`` by id (a live dict: change it in a transaction)."""
        with self.lock:
            self.engine(provider)  # restores saved records first
            return self._records.setdefault(provider, {}).setdefault(kind, {})

    def secret(self, provider: str, name: str, prefix: str = "") -> str:
        """A per-provider secret (webhook signing key ...), made once and kept in the store."""
        with self.lock:
            cached = self._secrets.get((provider, name))
            if cached is not None:
                return cached
            stored = self.store.load_state(f"secret:{provider}:{name}")
            if stored is None:
                stored = {"value": prefix + secrets.token_hex(24)}
                self.store.save_state(f"secret:{provider}:{name}", stored)
            value: str = stored["value"]
            self._secrets[(provider, name)] = value
            return value

    @staticmethod
    def internal_key() -> str:
        """A fresh idempotency key for an engine call (the face does wire idempotency)."""
        return uuid.uuid4().hex

    def idempotent(
        self,
        provider: str,
        key: str,
        fingerprint: Any,
        compute: Callable[[], WireAnswer],
        *,
        keep: Callable[[WireAnswer], bool] = lambda answer: answer.status < 500,
    ) -> WireAnswer:
        """Answer once per ``key``: replay the stored answer for the same ``fingerprint``,
        raise `IdempotencyMismatch` for another; answers ``keep`` refuses (by default
        5xx) are not stored, so the request may be retried."""
        with self.transaction(provider):
            table = self.records(provider, "idempotency")
            stored = table.get(key)
            marker = json.dumps(fingerprint, sort_keys=True, default=str)
            if stored is not None:
                if stored["fingerprint"] != marker:
                    raise IdempotencyMismatch(key)
                return WireAnswer(
                    stored["status"], stored["body"].encode("utf-8"), stored["content_type"]
                )
            answer = compute()
            if keep(answer):
                table[key] = {
                    "fingerprint": marker,
                    "status": answer.status,
                    "body": answer.body.decode("utf-8"),
                    "content_type": answer.content_type,
                }
            return answer
