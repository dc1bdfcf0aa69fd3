"""Where the sandbox keeps its events, delivery attempts and provider state.

``memory://`` (the default) forgets everything when the process ends; ``sqlite:///path``
keeps it in one SQLite file (stdlib ``sqlite3``: no server, no extra dependency), so a
restarted sandbox still knows its payments, its events and its webhook secrets.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any

from paygate.errors import ConfigurationError

__all__ = [
    "DeliveryAttempt",
    "MemoryStore",
    "SandboxStore",
    "SqliteStore",
    "StoredEvent",
    "open_store",
]

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event the sandbox emitted: its provider, id, type and exact body bytes."""

    id: str
    provider: str
    type: str
    created: float
    body: bytes = field(repr=False)  # events carry client secrets, as the provider's do

    def payload(self) -> JSON:
        result: JSON = json.loads(self.body)
        return result


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One POST of an event to one endpoint: when, where, and what came back."""

    event_id: str
    url: str
    attempt: int
    at: float
    status: int | None  #: HTTP status, None when no answer came (timeout, refused)
    excerpt: str  #: the start of the response body, or the connection error
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class MemoryStore:
    """Everything in this process's memory."""

    events: list[StoredEvent] = field(default_factory=list)
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    state: dict[str, JSON] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    url = "memory://"

    def add_event(self, event: StoredEvent) -> None:
        with self._lock:
            self.events.append(event)

    def list_events(self, provider: str | None = None, limit: int = 100) -> list[StoredEvent]:
        """Newest first."""
        with self._lock:
            found = [e for e in reversed(self.events) if provider in (None, e.provider)]
        return found[:limit]

    def get_event(self, event_id: str) -> StoredEvent | None:
        with self._lock:
            return next((e for e in self.events if e.id == event_id), None)

    def add_attempt(self, attempt: DeliveryAttempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    def attempts_for(self, event_id: str) -> list[DeliveryAttempt]:
        with self._lock:
            return [a for a in self.attempts if a.event_id == event_id]

    def save_state(self, name: str, state: JSON) -> None:
        with self._lock:
            self.state[name] = state

    def load_state(self, name: str) -> JSON | None:
        with self._lock:
            return self.state.get(name)

    def close(self) -> None:
        pass


class SqliteStore:
    """One SQLite file; one connection shared by the server's threads under a lock."""

    def __init__(self, path: str) -> None:
        self.url = f"sqlite:///{path}"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL sync: a power cut may lose the last writes, never corrupt the file
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS events (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
                provider TEXT NOT NULL, type TEXT NOT NULL, created REAL NOT NULL,
                body BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS attempts (
                event_id TEXT NOT NULL, url TEXT NOT NULL, attempt INTEGER NOT NULL,
                at REAL NOT NULL, status INTEGER, excerpt TEXT NOT NULL,
                duration_ms REAL NOT NULL);
            CREATE INDEX IF NOT EXISTS attempts_event ON attempts (event_id);
            CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, data TEXT NOT NULL);
            """
        )

    def add_event(self, event: StoredEvent) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO events (id, provider, type, created, body) VALUES (?, ?, ?, ?, ?)",
                (event.id, event.provider, event.type, event.created, event.body),
            )

    def list_events(self, provider: str | None = None, limit: int = 100) -> list[StoredEvent]:
        query = "SELECT id, provider, type, created, body FROM events"
        args: tuple[Any, ...] = ()
        if provider is not None:
            query += " WHERE provider = ?"
            args = (provider,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq DESC LIMIT ?", (*args, limit))
            return [StoredEvent(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows.fetchall()]

    def get_event(self, event_id: str) -> StoredEvent | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, provider, type, created, body FROM events WHERE id = ?", (event_id,)
            ).fetchone()
        return None if row is None else StoredEvent(row[0], row[1], row[2], row[3], bytes(row[4]))

    def add_attempt(self, attempt: DeliveryAttempt) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    attempt.event_id,
                    attempt.url,
                    attempt.attempt,
                    attempt.at,
                    attempt.status,
                    attempt.excerpt,
                    attempt.duration_ms,
                ),
            )

    def attempts_for(self, event_id: str) -> list[DeliveryAttempt]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM attempts WHERE event_id = ? ORDER BY rowid", (event_id,)
            ).fetchall()
        return [DeliveryAttempt(*row) for row in rows]

    def save_state(self, name: str, state: JSON) -> None:
        data = json.dumps(state, separators=(",", ":"))
        with self._lock:
            self._db.execute(
                "INSERT INTO state VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data = ?",
                (name, data, data),
            )

    def load_state(self, name: str) -> JSON | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM state WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        result: JSON = json.loads(row[0])
        return result

    def close(self) -> None:
        with self._lock:
            self._db.close()


SandboxStore = MemoryStore | SqliteStore


def open_store(url: str) -> SandboxStore:
    """``memory://`` or ``sqlite:///relative/path.db`` (``sqlite:////abs/path.db``)."""
    if url in ("memory://", "memory"):
        return MemoryStore()
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return SqliteStore(url[len("sqlite:///") :])
    raise ConfigurationError(
        f"sandbox store must be memory:// or sqlite:///path.db, got {url!r:.80}"
    )
