"""Where the Gateway keeps what must survive a restart and be shared between workers.

A store holds payments (by id and by order), the webhook events it has seen (claimed,
applied, processed), idempotency records of creating operations, and an append-only log of
every state transition with the event that caused it.

* [`MemoryStore`][paygate.stores.memory.MemoryStore] -- one process, for tests and scripts (``"memory://"``).
* [`SQLiteStore`][paygate.stores.sqlite.SQLiteStore] -- the embedded default, safe for threads and
  processes sharing one file (``"sqlite:///path/to/paygate.db"``).
* ``PostgresStore`` -- several app servers (``"postgresql://..."``, ``paygate-payments[postgres]``);
  it shares schema and SQL with the SQLite store (`paygate.stores._sql`).

Every write that must be atomic is one call:
[`Store.save_payment`][paygate.stores.Store.save_payment] writes the payment row (compare-and-set on
its ``version``), appends the transition, records the facts it established in the outbox and marks
the webhook event applied, all or nothing.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from paygate._facts import Fact, FactClaim
from paygate._observe import fields
from paygate._redact import redact_dsn
from paygate.errors import ConfigurationError
from paygate.stores._records import (
    ClaimLost,
    ClaimStatus,
    EventClaim,
    EventOutcome,
    EventRecord,
    OperationRecord,
    OperationStatus,
    PaymentRecord,
    StoreConflict,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    TransitionRecord,
)
from paygate.stores._subscriptions import (
    SubscriptionRecord,
    SubscriptionStore,
    SubscriptionTransition,
)

if TYPE_CHECKING:
    from paygate.stores.memory import MemoryStore
    from paygate.stores.sqlite import SQLiteStore

__all__ = [
    "ClaimLost",
    "ClaimStatus",
    "EventClaim",
    "EventOutcome",
    "EventRecord",
    "MemoryStore",
    "OperationRecord",
    "OperationStatus",
    "PaymentRecord",
    "SQLiteStore",
    "Store",
    "StoreConflict",
    "SubscriptionRecord",
    "SubscriptionStore",
    "SubscriptionTransition",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "TransitionRecord",
    "default_store_url",
    "open_store",
    "register_store",
]

#: the store a Gateway uses when given none and ``PAYGATE_STORE_URL`` is not set: an
#: SQLite file in the working directory (where the app is started, like Django's
#: ``db.sqlite3``): predictable, one per app, and nothing outside the app's own directory.
DEFAULT_STORE_URL = "sqlite:///paygate.db"
_announced: set[str] = set()


@runtime_checkable
class Store(Protocol):
    """What the Gateway needs from persistence. Every method is safe to call from several
    threads at once; the SQL stores are also safe across processes.

    Times (``now``, ``*_at``) are Unix seconds as ``float``, passed in by the caller so
    tests control the clock.
    """

    # -- payments ---------------------------------------------------------------------

    def get_payment(self, payment_id: str) -> PaymentRecord | None:
        """The payment with this provider id, or ``None``."""
        ...

    def payments_for_order(self, order_id: str) -> list[PaymentRecord]:
        """Every payment attempt recorded for ``order_id``, oldest first."""
        ...

    def iter_payments(self) -> Iterator[PaymentRecord]:
        """Every payment the store holds, streamed (reconciliation reads the books this way)."""
        ...

    def save_payment(
        self,
        record: PaymentRecord,
        *,
        expected_version: int | None,
        transition: TransitionRecord | None = None,
        claim: EventClaim | None = None,
        outcome: EventOutcome | None = None,
        finish: bool = False,
        facts: Sequence[Fact] = (),
    ) -> None:
        """Write ``record`` in one transaction with its transition, the event's mark and
        the ``facts`` the transition established (the outbox; a fact whose ``id`` is
        already recorded is skipped: a fact is recorded once).

        ``finish=True`` also marks the claimed event processed in that transaction (the
        Gateway does so when no handler is registered for the event: one commit fewer).

        ``expected_version=None`` inserts a new payment; otherwise the stored row must still
        have ``expected_version`` (compare-and-set). A lost race raises
        [`StoreConflict`][paygate.stores.StoreConflict]; a claim whose lease was taken over raises
        [`ClaimLost`][paygate.stores.ClaimLost]. Either way nothing is written.
        """
        ...

    def history(self, payment_id: str) -> list[TransitionRecord]:
        """The payment's transition log, in the order the transitions happened."""
        ...

    # -- webhook events ---------------------------------------------------------------

    def claim_event(
        self,
        provider: str,
        event_id: str,
        *,
        event_type: str,
        provider_type: str,
        payment_id: str | None,
        payload: Mapping[str, Any],
        occurred_at: float | None,
        now: float,
        lease_seconds: float,
    ) -> EventClaim:
        """Record a delivery of an event and try to own it for ``lease_seconds``.

        First delivery: ``CLAIMED``. Already processed: ``PROCESSED``. Another worker's
        lease still running: ``IN_PROGRESS``. An earlier attempt failed or its lease ran
        out: ``RECLAIMED``, with ``applied`` telling whether its transition happened.
        """
        ...

    def record_outcome(
        self, claim: EventClaim, outcome: EventOutcome, *, now: float, finish: bool = False
    ) -> None:
        """Mark a claimed event applied when it changes no payment (stale, unknown, ...);
        ``finish=True`` marks it processed too."""
        ...

    def finish_event(self, claim: EventClaim, *, now: float) -> bool:
        """Mark a claimed event processed (its handlers ran); ``False`` if the claim was
        lost meanwhile (the lease expired and another worker took it)."""
        ...

    def release_event(self, claim: EventClaim, *, error: str) -> None:
        """Give a claimed event up after a handler failed, so a redelivery can claim it at
        once. ``error`` (the exception's type and message) is kept for operators."""
        ...

    def get_event(self, provider: str, event_id: str) -> EventRecord | None: ...

    def list_events(
        self,
        *,
        since: float | None = None,
        payment_id: str | None = None,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """Recorded events, oldest received first (for replays and operators)."""
        ...

    # -- the outbox of payment facts -------------------------------------------------

    def has_due_facts(self, *, now: float) -> bool:
        """Whether some pending fact is due for dispatch (a cheap read)."""
        ...

    def claim_facts(
        self,
        *,
        now: float,
        lease_seconds: float,
        limit: int = 100,
        retry_failed: bool = False,
        known: Mapping[str, Fact] | None = None,
    ) -> list[FactClaim]:
        """Own, for ``lease_seconds``, the first pending fact of up to ``limit`` payments
        (a later fact of a payment waits while an earlier one is pending), oldest first:
        those nobody owns whose retry time has come, or with ``retry_failed`` every one
        nobody owns. Each claim counts an attempt. ``known``: facts the caller recorded
        a moment ago, by id, which a store may return instead of reading them back."""
        ...

    def finish_fact(self, claim: FactClaim, *, now: float) -> tuple[bool, bool]:
        """Mark a claimed fact done. Returns (done: ``False`` if its lease was taken over
        meanwhile, next: a later fact of the same payment, which waited for this one, is
        due now): the dispatcher claims again only then, without another look."""
        ...

    def fail_fact(self, claim: FactClaim, *, error: str, retry_at: float) -> None:
        """A handler raised: give the fact up with ``error``, due again at ``retry_at``."""
        ...

    def list_facts(
        self, *, pending: bool = False, payment_id: str | None = None, limit: int | None = None
    ) -> list[Fact]:
        """Recorded facts, in the order recorded; ``pending``: not done only."""
        ...

    # -- idempotency records ----------------------------------------------------------

    def get_operation(self, key: str) -> OperationRecord | None: ...

    def begin_operation(self, record: OperationRecord) -> OperationRecord:
        """Insert ``record`` unless its key exists; return the stored record either way."""
        ...

    def replace_operation(self, record: OperationRecord, *, expected_attempt: int) -> bool:
        """Start a new attempt: overwrite the record if it is still at
        ``expected_attempt``; ``False`` if someone else moved it first."""
        ...

    def finish_operation(
        self,
        key: str,
        *,
        attempt: int,
        status: OperationStatus,
        result_id: str | None,
        result: Mapping[str, Any] | None,
        error_code: str | None,
        now: float,
    ) -> None:
        """Record how attempt ``attempt`` of an operation ended (ignored if the record
        moved on to a later attempt meanwhile)."""
        ...

    def list_operations(self, prefix: str) -> list[OperationRecord]:
        """The records whose key starts with ``prefix`` (case-sensitive), oldest first
        (``created_at``, then key). For audits such as a reconciliation run's log
        ([`paygate.reconcile.applied_actions`][paygate.reconcile.applied_actions]); the SQL stores
        scan the table."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# -- opening a store by URL --------------------------------------------------------------

#: URL scheme -> "module:factory" taking the URL; imported when first used
_SCHEMES: dict[str, str] = {
    "memory": "paygate.stores.memory:MemoryStore.from_url",
    "sqlite": "paygate.stores.sqlite:SQLiteStore.from_url",
    "postgresql": "paygate.stores.postgres:PostgresStore.from_url",
    "postgres": "paygate.stores.postgres:PostgresStore.from_url",
}


def default_store_url(
    environ: Mapping[str, str] | None = None, *, provider: str | None = None
) -> str:
    """``$PAYGATE_STORE_URL``, else `DEFAULT_STORE_URL` (said once at INFO, with
    the file's absolute path) -- except for the fake provider (``provider="fake"``),
    which keeps its payments in memory and forgets them at exit: a store that remembered
    them would replay answers about payments the next run's fake never made, so its
    default is ``memory://``."""
    env = os.environ if environ is None else environ
    url = env.get("PAYGATE_STORE_URL") or ""
    if url.strip():
        return url
    if provider == "fake":
        return "memory://"
    path = os.path.abspath(DEFAULT_STORE_URL.removeprefix("sqlite:///"))
    if path not in _announced:
        _announced.add(path)
        logging.getLogger("paygate").info(
            "no store given and PAYGATE_STORE_URL not set: using SQLite at %s "
            "(store='memory://' keeps nothing)",
            path,
            extra=fields(provider=provider, outcome="default_store"),
        )
    return DEFAULT_STORE_URL


def register_store(scheme: str, target: str) -> None:
    """Make ``open_store("<scheme>://...")`` call ``target`` (``"module:Class.from_url"``)."""
    _SCHEMES[scheme] = target


def _redact(url: str) -> str:
    """The URL (or libpq key/value string) without its password, in any of the forms
    libpq takes one (userinfo, ``?password=``, ``password=``), for messages and logs."""
    return redact_dsn(url)


def open_store(url: str) -> Store:
    """A store from a URL: ``memory://``, ``sqlite:///path.db`` (``sqlite://:memory:``
    for a private in-memory database), ``postgresql://user@host/db``."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(
            f"store URL must look like 'memory://', 'sqlite:///paygate.db' or "
            f"'postgresql://host/db', got {_redact(str(url))!r}"
        )
    scheme = url.partition("://")[0].lower()
    scheme = scheme.split("+", 1)[0]  # postgresql+psycopg://
    target = _SCHEMES.get(scheme)
    if target is None:
        raise ConfigurationError(
            f"unknown store scheme {scheme!r} in {_redact(url)!r}; "
            f"known: {', '.join(sorted(_SCHEMES))}"
        )
    module_name, _, attr_path = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ConfigurationError(
                f"store scheme {scheme!r} is not available in this version of paygate"
            ) from None
        missing = (exc.name or "").split(".")[0]
        raise ConfigurationError(
            f"store {_redact(url)!r} needs {missing!r}: pip install 'paygate-payments[postgres]'"
        ) from None
    factory: Any = module
    for part in attr_path.split("."):
        factory = getattr(factory, part)
    store: Store = factory(url)
    return store


def __getattr__(name: str) -> Any:
    # the concrete stores load on first use (PEP 562), like the package's lazy names
    if name == "MemoryStore":
        from paygate.stores.memory import MemoryStore

        return MemoryStore
    if name == "SQLiteStore":
        from paygate.stores.sqlite import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module 'paygate.stores' has no attribute {name!r}")
