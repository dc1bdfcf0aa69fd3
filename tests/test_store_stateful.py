"""A hypothesis state machine drives every store (memory, SQLite, PostgreSQL) through
random sequences of Store calls and checks each answer against a model made of dicts.

The model is the Store protocol's contract written plainly: payments are compare-and-set
on ``version``; one transition per event id; an event claim is a lease owned by a token,
taken over only when released or expired, never once processed; an idempotency record is
inserted once and then moved attempt by attempt.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from paygate import PaymentStatus
from paygate.state import PaymentState
from paygate.stores import (
    ClaimLost,
    ClaimStatus,
    EventClaim,
    OperationRecord,
    OperationStatus,
    SQLiteStore,
    Store,
    StoreConflict,
    open_store,
)
from tests.postgres_support import pg_database  # noqa: F401
from tests.test_store import record, transition

S = PaymentStatus
PAYMENT_IDS = st.sampled_from(["pay_a", "pay_b", "pay_c"])
EVENT_IDS = st.sampled_from(["evt_1", "evt_2", "evt_3", "evt_4"])
STATUSES = st.sampled_from([S.PENDING, S.AUTHORIZED, S.SUCCEEDED, S.FAILED])
OP_KEYS = st.sampled_from(["op:ord_1", "op:ord_2"])
LEASE = 10.0


@dataclass
class EventModel:
    deliveries: int = 1
    token: str | None = None  # the live claim's token
    lease_until: float | None = None
    applied: bool = False
    processed: bool = False
    outcome: str | None = None


@dataclass
class Model:
    payments: dict[str, tuple[int, S]] = field(default_factory=dict)  # id -> (version, status)
    history: dict[str, list[tuple[str | None, S]]] = field(default_factory=dict)
    events: dict[str, EventModel] = field(default_factory=dict)
    operations: dict[str, tuple[int, OperationStatus]] = field(default_factory=dict)


class StoreMachine(RuleBasedStateMachine):
    """Subclasses (or a factory) provide ``open()`` and ``dispose()``."""

    claims = Bundle("claims")

    def __init__(self) -> None:
        super().__init__()
        self.store: Store = self.open()
        self.model = Model()
        self.now = 1_000.0

    def open(self) -> Store:
        raise NotImplementedError

    def dispose(self) -> None:
        self.store.close()

    def teardown(self) -> None:
        self.dispose()

    # -- clock ---------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([1.0, 5.0, LEASE + 1.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    # -- payments --------------------------------------------------------------------------

    @rule(pid=PAYMENT_IDS, status=STATUSES)
    def insert_payment(self, pid: str, status: S) -> None:
        rec = record(pid, order=f"ord_{pid}", version=1, now=self.now,
                     state=PaymentState(status, 1999))  # fmt: skip
        t = transition(pid, new=status)
        if pid in self.model.payments:
            with pytest.raises(StoreConflict):
                self.store.save_payment(rec, expected_version=None, transition=t)
            return
        self.store.save_payment(rec, expected_version=None, transition=t)
        self.model.payments[pid] = (1, status)
        self.model.history[pid] = [(None, status)]

    @rule(pid=PAYMENT_IDS, status=STATUSES, stale=st.booleans())
    def update_payment(self, pid: str, status: S, stale: bool) -> None:
        if pid not in self.model.payments:
            return
        version, previous = self.model.payments[pid]
        expected = version - 1 if stale else version
        rec = record(pid, order=f"ord_{pid}", version=expected + 1, now=self.now,
                     state=PaymentState(status, 1999))  # fmt: skip
        t = transition(pid, new=status, previous=previous)
        if stale:
            with pytest.raises(StoreConflict):
                self.store.save_payment(rec, expected_version=expected, transition=t)
            return
        self.store.save_payment(rec, expected_version=expected, transition=t)
        self.model.payments[pid] = (version + 1, status)
        self.model.history[pid].append((None, status))

    # -- events ------------------------------------------------------------------------------

    @rule(target=claims, event_id=EVENT_IDS)
    def claim(self, event_id: str) -> Any:
        got = self.store.claim_event(
            "fake", event_id, event_type="payment.succeeded", provider_type="payment.succeeded",
            payment_id="pay_a", payload={"id": event_id}, occurred_at=None, now=self.now,
            lease_seconds=LEASE,
        )  # fmt: skip
        ev = self.model.events.get(event_id)
        if ev is None:
            assert got.status is ClaimStatus.CLAIMED and got.token
            self.model.events[event_id] = EventModel(token=got.token, lease_until=self.now + LEASE)
            return got
        ev.deliveries += 1
        assert got.deliveries == ev.deliveries
        if ev.processed:
            assert got.status is ClaimStatus.PROCESSED and got.token is None
        elif ev.lease_until is not None and ev.lease_until >= self.now:
            assert got.status is ClaimStatus.IN_PROGRESS and got.token is None
        else:
            assert got.status is ClaimStatus.RECLAIMED and got.token
            assert got.applied is ev.applied and got.outcome == ev.outcome
            ev.token, ev.lease_until = got.token, self.now + LEASE
        return got

    def _owns(self, c: EventClaim) -> bool:
        ev = self.model.events[c.event_id]
        return c.token is not None and ev.token == c.token

    @rule(c=claims, pid=PAYMENT_IDS, status=STATUSES)
    def apply_with_claim(self, c: EventClaim, pid: str, status: S) -> None:
        """The Gateway's write: the payment, its transition and the event's mark at once."""
        if c.token is None:
            return
        ev = self.model.events[c.event_id]
        inserting = pid not in self.model.payments
        version, previous = self.model.payments.get(pid, (0, None))  # type: ignore[arg-type]
        rec = record(pid, order=f"ord_{pid}", version=version + 1, now=self.now,
                     state=PaymentState(status, 1999))  # fmt: skip
        t = transition(pid, event_id=c.event_id, new=status, previous=previous)
        if not self._owns(c) or ev.applied:
            with pytest.raises(ClaimLost):
                self.store.save_payment(rec, expected_version=None if inserting else version,
                                        transition=t, claim=c, outcome="applied")  # fmt: skip
            return
        self.store.save_payment(rec, expected_version=None if inserting else version,
                                transition=t, claim=c, outcome="applied")  # fmt: skip
        ev.applied, ev.outcome = True, "applied"
        self.model.payments[pid] = (version + 1, status)
        self.model.history.setdefault(pid, []).append((c.event_id, status))

    @rule(c=claims, outcome=st.sampled_from(["stale", "unknown", "no_transition"]))
    def record_outcome(self, c: EventClaim, outcome: Any) -> None:
        if c.token is None:
            return
        ev = self.model.events[c.event_id]
        if not self._owns(c) or ev.applied:
            with pytest.raises(ClaimLost):
                self.store.record_outcome(c, outcome, now=self.now)
            return
        self.store.record_outcome(c, outcome, now=self.now)
        ev.applied, ev.outcome = True, outcome

    @rule(c=consumes(claims))
    def finish(self, c: EventClaim) -> None:
        if c.token is None:
            return
        owned = self._owns(c)
        assert self.store.finish_event(c, now=self.now) is owned
        if owned:
            ev = self.model.events[c.event_id]
            ev.processed, ev.token, ev.lease_until = True, None, None

    @rule(c=consumes(claims))
    def release(self, c: EventClaim) -> None:
        if c.token is None:
            return
        self.store.release_event(c, error="RuntimeError: handler failed")
        if self._owns(c):
            ev = self.model.events[c.event_id]
            ev.token, ev.lease_until = None, None

    # -- idempotency records -------------------------------------------------------------------

    @rule(key=OP_KEYS)
    def begin_operation(self, key: str) -> None:
        op = OperationRecord(key=key, operation="create_payment", fingerprint="fp",
                             provider_key=f"{key}:1", created_at=self.now, updated_at=self.now)  # fmt: skip
        got = self.store.begin_operation(op)
        if key not in self.model.operations:
            self.model.operations[key] = (1, OperationStatus.PENDING)
        assert (got.attempt, got.status) == self.model.operations[key]

    @rule(key=OP_KEYS, stale=st.booleans())
    def next_attempt(self, key: str, stale: bool) -> None:
        if key not in self.model.operations:
            return
        attempt, _ = self.model.operations[key]
        expected = attempt - 1 if stale else attempt
        op = OperationRecord(key=key, operation="create_payment", fingerprint="fp",
                             provider_key=f"{key}:{attempt + 1}", attempt=attempt + 1,
                             created_at=self.now, updated_at=self.now)  # fmt: skip
        moved = self.store.replace_operation(op, expected_attempt=expected)
        assert moved is (not stale)
        if moved:
            self.model.operations[key] = (attempt + 1, OperationStatus.PENDING)

    @rule(key=OP_KEYS, current=st.booleans(), ok=st.booleans())
    def finish_operation(self, key: str, current: bool, ok: bool) -> None:
        if key not in self.model.operations:
            return
        attempt, _ = self.model.operations[key]
        status = OperationStatus.SUCCEEDED if ok else OperationStatus.FAILED
        self.store.finish_operation(key, attempt=attempt if current else attempt - 1,
                                    status=status, result_id="pay_a" if ok else None,
                                    result=None, error_code=None if ok else "card_declined",
                                    now=self.now)  # fmt: skip
        if current:
            self.model.operations[key] = (attempt, status)

    # -- what the store must show -----------------------------------------------------------

    @invariant()
    def agrees_with_the_model(self) -> None:
        self.check(self.store)

    def check(self, store: Store) -> None:
        """``store`` holds what the model does."""
        for pid in ("pay_a", "pay_b", "pay_c"):
            got = store.get_payment(pid)
            if pid not in self.model.payments:
                assert got is None and store.history(pid) == []
                continue
            assert got is not None
            assert (got.version, got.status) == self.model.payments[pid]
            log = store.history(pid)
            assert [(t.event_id, t.new_status) for t in log] == self.model.history[pid]
        for event_id, ev in self.model.events.items():
            stored = store.get_event("fake", event_id)
            assert stored is not None
            assert (stored.deliveries, stored.processed, stored.applied_at is not None,
                    stored.outcome) == (ev.deliveries, ev.processed, ev.applied, ev.outcome)  # fmt: skip
        assert {e.event_id for e in store.list_events()} == set(self.model.events)
        for key, (attempt, status) in self.model.operations.items():
            op = store.get_operation(key)
            assert op is not None and (op.attempt, op.status) == (attempt, status)


def _run(factory: Any, examples: int) -> None:
    run_state_machine_as_test(
        factory,
        settings=settings(
            max_examples=examples,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_memory_store_follows_the_model() -> None:
    class Machine(StoreMachine):
        def open(self) -> Store:
            return open_store("memory://")

    _run(Machine, 150)


def test_sqlite_store_follows_the_model(tmp_path: Path) -> None:
    class Machine(StoreMachine):
        def open(self) -> Store:
            self.path = tmp_path / f"{uuid.uuid4().hex}.db"
            return open_store(f"sqlite:///{self.path}?synchronous=OFF")

        def dispose(self) -> None:
            self.store.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    _run(Machine, 60)


def test_sqlite_store_in_group_commits_follows_the_model(tmp_path: Path) -> None:
    """The same machine with every call inside a group commit (``SQLiteStore._batch``,
    what ``AsyncStore``'s thread runs queued calls in), committed at random points: each
    call sees the earlier ones' uncommitted writes as a serial run would, a call that
    raises leaves nothing of itself, and what each commit made durable is what the model
    holds (read on a connection of its own)."""

    class Machine(StoreMachine):
        def open(self) -> Store:
            self.path = tmp_path / f"{uuid.uuid4().hex}.db"
            store = SQLiteStore(self.path)  # synchronous=FULL: bookkeeping writes too
            self.batch = contextlib.ExitStack()
            self.batch.enter_context(store._batch())
            return store

        @rule()
        def group_commit(self) -> None:
            self.batch.close()  # commits
            self.batch.enter_context(self.store._batch())  # type: ignore[attr-defined]
            committed = SQLiteStore(self.path, migrate=False)
            try:
                self.check(committed)
            finally:
                committed.close()

        def dispose(self) -> None:
            self.batch.close()
            self.store.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    _run(Machine, 40)


def test_sqlite_store_with_group_commit_follows_the_model(tmp_path: Path) -> None:
    """``group_commit=on`` (every write a savepoint of a shared transaction, committed
    when nobody waits to join it: here, at once)."""

    class Machine(StoreMachine):
        def open(self) -> Store:
            self.path = tmp_path / f"{uuid.uuid4().hex}.db"
            return open_store(f"sqlite:///{self.path}?synchronous=OFF&group_commit=on")

        def dispose(self) -> None:
            self.store.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    _run(Machine, 30)


def test_postgres_store_follows_the_model(pg_database: str) -> None:  # noqa: F811
    import psycopg

    class Machine(StoreMachine):
        def open(self) -> Store:
            self.schema = f"paygate_sm_{uuid.uuid4().hex[:12]}"
            return open_store(f"{pg_database}{'&' if '?' in pg_database else '?'}"
                              f"schema={self.schema}&pool_max=1")  # fmt: skip

        def dispose(self) -> None:
            self.store.close()
            with psycopg.connect(pg_database, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    _run(Machine, 25)
