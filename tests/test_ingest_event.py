"""The SQL stores' one-transaction first delivery (``SQLStore.ingest_event``), on SQLite
and PostgreSQL: how many write transactions an event costs, and that every way out of
the transaction before its commit leaves nothing written. PostgreSQL's one-statement
version also gets the races its statement must survive."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import EventType, PaymentStatus
from paygate.providers.fake import FakeProvider
from paygate.stores import StoreConflict, open_store
from paygate.stores._records import ClaimStatus, EventPlan
from paygate.stores._sql import SQLStore

# the PostgreSQL fixtures (skip with the reason when no server is reachable)
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401
from tests.test_gateway_webhooks import paid_payment_events

S = PaymentStatus


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ingest.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(sql_url: str) -> Iterator[SQLStore]:
    s = open_store(sql_url)
    assert isinstance(s, SQLStore)
    yield s
    s.close()


def count_writes(store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the write transactions (and single-statement writes) ``store`` opens."""
    opened: list[str] = []
    inside = [False]  # SQLite's _write_one() is a _write(): count it once
    for name in ("_write", "_write_one"):
        original = getattr(store, name)

        def counted(original: Callable[[], Any] = original, name: str = name) -> Any:
            if inside[0]:
                return original()
            opened.append(name)
            inside[0] = True
            try:
                return original()
            finally:
                inside[0] = False

        monkeypatch.setattr(store, name, counted)
    return opened


def count_statements(store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements ``store`` runs, as (transaction kind, first words): on PostgreSQL
    a ``_write_one`` or ``_read`` statement is one round trip (autocommit), a ``_write``
    adds the BEGIN and COMMIT round trips."""
    ran: list[str] = []

    class Counted:
        def __init__(self, cur: Any, kind: str) -> None:
            self._cur, self._kind = cur, kind

        def execute(self, statement: Any, *args: Any) -> Any:
            ran.append(f"{self._kind}: {' '.join(str(statement).split()[:3])}")
            return self._cur.execute(statement, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cur, name)

    for name in ("_write", "_write_one", "_read"):
        original = getattr(store, name)

        @contextlib.contextmanager
        def counted(original: Callable[[], Any] = original, name: str = name) -> Iterator[Any]:
            with original() as cur:
                yield cur if isinstance(cur, Counted) else Counted(cur, name)

        monkeypatch.setattr(store, name, counted)
    return ran


def ingest(store: SQLStore, decide: Callable[[Any], EventPlan | None], event_id: str = "evt_1"):  # type: ignore[no-untyped-def]
    return store.ingest_event(
        "fake", event_id, event_type="payment.created", provider_type="payment.created",
        payment_id="pay_1", payload={"id": event_id}, occurred_at=None, now=100.0,
        lease_seconds=30.0, decide=decide,
    )  # fmt: skip


def test_a_first_delivery_without_handlers_is_one_write_transaction(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=sql_url)
    assert isinstance(gw.store, SQLStore)
    pid, deliveries = paid_payment_events(provider)
    writes = count_writes(gw.store, monkeypatch)
    result = gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    assert result.outcome == "applied" and result.status is S.PENDING
    # claim, payment, transition, processed: one commit (a transaction on SQLite, one
    # statement on PostgreSQL)
    assert len(writes) == 1
    event = gw.store.get_event("fake", json.loads(deliveries[0].body)["id"])
    assert event is not None and event.processed_at is not None and event.outcome == "applied"
    assert event.lease_until is None and event.deliveries == 1
    assert [t.new_status for t in gw.history(pid)] == [S.PENDING]
    gw.close()


def test_with_a_handler_the_finish_is_one_more_write_after_it(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=sql_url)
    assert isinstance(gw.store, SQLStore)
    _pid, deliveries = paid_payment_events(provider)
    writes = count_writes(gw.store, monkeypatch)
    states: list[tuple[list[str], Any]] = []

    @gw.on(EventType.PAYMENT_CREATED)
    def handler(event: Any) -> None:
        # runs after the transaction committed: the event is applied, not yet processed
        assert isinstance(gw.store, SQLStore)
        states.append((list(writes), gw.store.get_event("fake", event.id)))

    gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    (writes_then, event_then), = states  # fmt: skip
    assert len(writes_then) == 1
    assert event_then.applied_at is not None and event_then.processed_at is None
    assert event_then.lease_until is not None  # leased to this worker until it finishes
    # then the finish: one more write (on SQLite a transaction committed without a sync of
    # its own, see tests/test_durable_commits.py; on PostgreSQL one statement)
    assert len(writes) == len(writes_then) + 1
    assert writes[-1] in ("_write", "_write_one")
    event = gw.store.get_event("fake", event_then.event_id)
    assert event is not None and event.processed_at is not None
    gw.close()


def test_a_failing_handler_on_the_first_delivery_is_rerun_without_a_second_transition(
    sql_url: str,
) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=sql_url)
    pid, deliveries = paid_payment_events(provider)
    calls: list[str] = []

    @gw.on(EventType.PAYMENT_CREATED)
    def flaky(event: Any) -> None:
        calls.append(event.id)
        if len(calls) == 1:
            raise RuntimeError("handler bug")

    with pytest.raises(RuntimeError):
        gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    event = gw.store.get_event("fake", calls[0])
    assert event is not None and event.applied_at is not None and event.processed_at is None
    again = gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    assert not again.duplicate and again.handlers_run == 1 and len(calls) == 2
    assert len(gw.history(pid)) == 1  # the transition happened once
    assert gw.handle_webhook(deliveries[0].body, deliveries[0].headers).duplicate
    gw.close()


def test_a_redelivery_is_counted_in_the_same_transaction_and_writes_nothing_else(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = EventPlan("no_transition", finish=True)
    first = ingest(store, lambda current: plan)
    assert first is not None and first[1] is plan and first[2] is None
    writes = count_writes(store, monkeypatch)
    again = ingest(store, lambda current: EventPlan("unknown", finish=False))
    assert again is not None
    claim, no_plan, stored = again
    # decided, then the event found known: counted in the same transaction instead
    assert claim.status is ClaimStatus.PROCESSED and not claim.owned and claim.token is None
    assert claim.applied and claim.outcome == "no_transition" and claim.deliveries == 2
    assert no_plan is None and stored is None  # pay_1 was never stored
    assert len(writes) == 1
    event = store.get_event("fake", "evt_1")
    assert event is not None and event.deliveries == 2 and event.outcome == "no_transition"
    assert event.processed_at is not None and event.lease_until is None


def test_a_redelivery_while_the_lease_runs_is_in_progress_then_taken_over(
    store: SQLStore,
) -> None:
    leased = EventPlan("no_transition", finish=False)  # a handler to wait for
    first = ingest(store, lambda current: leased)
    assert first is not None and first[0].status is ClaimStatus.CLAIMED
    busy = ingest(store, lambda current: leased)  # now=100, the lease runs until 130
    assert busy is not None and busy[0].status is ClaimStatus.IN_PROGRESS
    assert busy[0].token is None and busy[1] is None
    later = store.ingest_event(
        "fake", "evt_1", event_type="payment.created", provider_type="payment.created",
        payment_id="pay_1", payload={"id": "evt_1"}, occurred_at=None, now=131.0,
        lease_seconds=30.0, decide=lambda current: leased,
    )  # fmt: skip
    assert later is not None
    taken = later[0]
    assert taken.status is ClaimStatus.RECLAIMED and taken.owned and taken.token
    assert taken.applied and taken.outcome == "no_transition" and taken.deliveries == 3
    event = store.get_event("fake", "evt_1")
    assert event is not None and event.lease_until == 161.0 and event.processed_at is None
    # the first worker's token no longer finishes it; the new owner's does
    assert not store.finish_event(first[0], now=132.0)
    assert store.finish_event(taken, now=132.0)


def test_a_redelivery_is_one_statement_on_postgresql_one_transaction_on_sqlite(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every event of a payment delivered again, to the worker that handled it (its
    payment cached on PostgreSQL) and to another (not cached): each a duplicate that
    changes nothing, answered from one statement (PostgreSQL: one round trip) or one
    transaction (SQLite), the payment's row for the answer read inside it."""
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=sql_url)
    handled: list[str] = []
    gw.on(EventType.PAYMENT_SUCCEEDED)(lambda event: handled.append(event.id))
    pid, deliveries = paid_payment_events(provider)
    for d in deliveries:
        assert not gw.handle_webhook(d.body, d.headers).duplicate
    assert isinstance(gw.store, SQLStore)
    payment = gw.store.get_payment(pid)
    history = gw.history(pid)
    events = {e.event_id: e for e in gw.store.list_events()}
    # another worker: nothing cached (on PostgreSQL the row its first redelivery reads
    # back is cached for the others)
    other = paygate.connect(provider, store=sql_url)
    other.on(EventType.PAYMENT_SUCCEEDED)(lambda event: handled.append(event.id))
    assert isinstance(other.store, SQLStore)
    for worker in (gw, other):
        assert isinstance(worker.store, SQLStore)
        for d in deliveries:
            ran = count_statements(worker.store, monkeypatch)
            again = provider.redeliver(d)
            result = worker.handle_webhook(again.body, again.headers)
            assert result.duplicate and not result.in_progress and result.http_status == 200
            assert payment is not None and result.payment == payment.payment
            assert result.status is payment.status is S.PARTIALLY_REFUNDED
            assert result.handlers_run == 0
            assert result.outcome == events[result.event.id].outcome
            if sql_url.startswith("sqlite"):
                # read the payment, try the event's row, count the delivery, read the
                # event's state: one BEGIN IMMEDIATE ... COMMIT
                assert [r.split(":")[0] for r in ran] == ["_write"] * 4, ran
            else:
                assert ran == ["_write_one: WITH pay AS"] or ran == [
                    "_write_one: WITH ev AS"
                ], ran
            monkeypatch.undo()
    # the payment.succeeded fact, told once (from the first delivery)
    assert handled == [f"fake:{pid}:payment.succeeded"]
    assert gw.store.get_payment(pid) == payment and gw.history(pid) == history
    for event in gw.store.list_events():
        before = events[event.event_id]
        assert event.deliveries == 3 and event.processed_at == before.processed_at
        assert (event.outcome, event.applied_at) == (before.outcome, before.applied_at)
    gw.close()
    other.close()


def test_a_redelivery_decided_on_a_stale_cached_row_writes_nothing(
    sql_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A saw only the payment's creation (its PostgreSQL store caches that row);
    worker B applied the later events. Their redelivery to A is decided on A's old row --
    as if it still applied -- yet the statement finds the event known and writes nothing
    but the count; the answer carries the payment as stored, not A's copy."""
    provider = FakeProvider(seed=1)
    gw_a = paygate.connect(provider, store=sql_url)
    gw_b = paygate.connect(provider, store=sql_url)
    pid, deliveries = paid_payment_events(provider)
    gw_a.handle_webhook(deliveries[0].body, deliveries[0].headers)
    for d in deliveries[1:]:
        assert gw_b.handle_webhook(d.body, d.headers).changed
    assert isinstance(gw_a.store, SQLStore)
    stored = gw_a.store.get_payment(pid)
    history = gw_a.history(pid)
    assert stored is not None and stored.status is S.PARTIALLY_REFUNDED
    for i, d in enumerate(deliveries[1:]):
        ran = count_statements(gw_a.store, monkeypatch)
        again = provider.redeliver(d)
        result = gw_a.handle_webhook(again.body, again.headers)
        assert result.duplicate and not result.in_progress and result.handlers_run == 0
        assert result.status is S.PARTIALLY_REFUNDED and result.payment == stored.payment
        if not sql_url.startswith("sqlite"):
            # the first decided on the stale row: a payment write, which found the event
            # known; its answer's row is cached, so the others decide on the stored row
            assert ran == ["_write_one: WITH pay AS" if i == 0 else "_write_one: WITH ev AS"]
        monkeypatch.undo()
    assert gw_a.store.get_payment(pid) == stored and gw_a.history(pid) == history
    gw_a.close()
    gw_b.close()


def test_an_event_claimed_but_never_applied_is_taken_over_and_applied_once(
    sql_url: str,
) -> None:
    """A worker claimed the event on the general path and died before applying it: a
    redelivery after the lease takes it over in the ingest transaction and applies it."""
    now = [1_000.0]
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=sql_url, webhook_lease=30.0, clock=lambda: now[0])
    pid, deliveries = paid_payment_events(provider)
    gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    event = provider.parse_webhook(deliveries[2].body, deliveries[2].headers)
    dead = gw.store.claim_event(
        "fake", event.id, event_type=event.type.value, provider_type=event.provider_type,
        payment_id=pid, payload={}, occurred_at=None, now=now[0], lease_seconds=30.0,
    )  # fmt: skip
    assert dead.owned  # ... and then its worker was killed
    now[0] += 10
    busy = gw.handle_webhook(deliveries[2].body, deliveries[2].headers)
    assert busy.in_progress and busy.http_status == 409 and busy.status is S.PENDING
    now[0] += 25  # the lease ran out
    taken = gw.handle_webhook(deliveries[2].body, deliveries[2].headers)
    assert taken.changed and not taken.duplicate and taken.status is S.SUCCEEDED
    assert [t.new_status for t in gw.history(pid)] == [S.PENDING, S.SUCCEEDED]
    record = gw.store.get_event("fake", event.id)
    assert record is not None and record.processed and record.deliveries == 3
    again = gw.handle_webhook(deliveries[2].body, deliveries[2].headers)
    assert again.duplicate and again.status is S.SUCCEEDED and len(gw.history(pid)) == 2
    gw.close()


def test_a_plan_that_needs_io_first_leaves_nothing_written(store: SQLStore) -> None:
    assert ingest(store, lambda current: None) is None
    assert store.get_event("fake", "evt_1") is None


def test_a_worker_dying_inside_the_transaction_leaves_nothing(store: SQLStore) -> None:
    def die(current: Any) -> EventPlan:
        raise KeyboardInterrupt  # the process being stopped between read and write

    with pytest.raises(KeyboardInterrupt):
        ingest(store, die)
    assert store.get_event("fake", "evt_1") is None
    # the next delivery finds the event new
    assert ingest(store, lambda current: EventPlan("unknown", finish=True)) is not None


def test_a_lost_compare_and_set_rolls_the_claim_back(store: SQLStore, sql_url: str) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=sql_url)
    pid, deliveries = paid_payment_events(provider)
    gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    current = store.get_payment(pid)
    assert current is not None
    stale = EventPlan("applied", finish=True, record=current, expected_version=current.version + 5)
    with pytest.raises(StoreConflict):
        ingest(store, lambda read: stale, event_id="evt_lost")
    assert store.get_event("fake", "evt_lost") is None
    after = store.get_payment(pid)
    assert after is not None and after.version == current.version
    gw.close()


# -- PostgreSQL's one-statement ingest: the races -----------------------------------------


def test_postgres_every_ingest_statement_fits_psycopgs_statement_cache() -> None:
    """psycopg re-parses a statement of more than 50 parameters at every execution (about
    0.1 ms a time, measurable on every event): each ingest statement must stay within."""
    pytest.importorskip("psycopg")
    from psycopg import _queries

    from paygate.stores import postgres

    statements = [*postgres.INGEST_STATEMENTS.values(), *postgres.INGEST_EVENT_ALONE.values()]
    counts = [statement.count("%s") for statement in statements]
    assert max(counts) <= _queries.MAX_CACHED_STATEMENT_PARAMS == 50, counts


def applied_plan(store: SQLStore, pid: str, event_id: str) -> EventPlan:
    """A plan that moves ``pid`` one version on, as the Gateway would plan it."""
    from paygate.stores._records import TransitionRecord

    current = store.get_payment(pid)
    assert current is not None
    record = current.__class__.build(
        current.payment, current.state, version=current.version + 1, updated_at=200.0
    )
    transition = TransitionRecord(
        payment_id=pid, provider="fake", trigger="payment.processing",
        previous_status=current.status, new_status=current.status, currency="USD",
        amount=None, captured=0, refunded=0, source="webhook", event_id=event_id,
        event_type="payment.processing", recorded_at=200.0,
    )  # fmt: skip
    return EventPlan(
        "applied", finish=True, record=record, expected_version=current.version,
        transition=transition,
    )  # fmt: skip


def connect_to_schema(url: str) -> Any:
    """A connection of its own (another worker) in the test's schema, in a transaction."""
    import psycopg

    schema = url.split("schema=")[1].split("&")[0]
    return psycopg.connect(url.split("?")[0], options=f"-c search_path={schema}")


def wait_until_blocked(url: str) -> None:
    """Until an ingest statement waits on a row lock another connection holds."""
    import time

    import psycopg

    with psycopg.connect(url.split("?")[0], autocommit=True) as watcher:
        for _ in range(500):
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'WITH pay AS%%'"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    pytest.fail("the ingest statement never waited on the other worker's row")


def test_postgres_an_event_claimed_by_the_general_path_is_not_applied_again(
    pg_url: str,  # noqa: F811
) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=pg_url)
    store = gw.store
    assert isinstance(store, SQLStore)
    pid, deliveries = paid_payment_events(provider)
    gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    before = store.get_payment(pid)
    # another worker claimed evt_x on the general path and has not applied it yet
    store.claim_event(
        "fake", "evt_x", event_type="payment.processing", provider_type="payment.processing",
        payment_id=pid, payload={}, occurred_at=None, now=100.0, lease_seconds=30.0,
    )  # fmt: skip
    plan = applied_plan(store, pid, "evt_x")
    busy = ingest(store, lambda current: plan, event_id="evt_x")
    # counted, and left to its owner: nothing else written
    assert busy is not None and busy[0].status is ClaimStatus.IN_PROGRESS and busy[1] is None
    after = store.get_payment(pid)
    assert before is not None and after is not None and after.version == before.version
    assert [t.event_id for t in store.history(pid)] == [json.loads(deliveries[0].body)["id"]]
    gw.close()


def test_postgres_a_first_delivery_committed_meanwhile_rolls_the_statement_back(
    pg_url: str,  # noqa: F811
) -> None:
    """The other worker's INSERT of the event is uncommitted when the statement starts
    (so it looks new), then commits: the statement's own INSERT of the event fails and
    its payment update is rolled back with it."""
    import threading

    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=pg_url)
    store = gw.store
    assert isinstance(store, SQLStore)
    pid, deliveries = paid_payment_events(provider)
    gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    before = store.get_payment(pid)
    assert before is not None
    plan = applied_plan(store, pid, "evt_race")
    other = connect_to_schema(pg_url)
    other.execute(
        "INSERT INTO paygate_events (provider, event_id, event_type, provider_type, "
        "payload, received_at, deliveries) VALUES ('fake', 'evt_race', 'x', 'x', '{}', 1, 1)"
    )
    results: list[Any] = []
    worker = threading.Thread(
        target=lambda: results.append(ingest(store, lambda current: plan, event_id="evt_race"))
    )
    worker.start()
    wait_until_blocked(pg_url)
    other.commit()
    other.close()
    worker.join(timeout=10)
    assert results == [None]  # rolled back: the general path takes the redelivery
    after = store.get_payment(pid)
    assert after is not None and after.version == before.version
    assert all(t.event_id != "evt_race" for t in store.history(pid))
    gw.close()


def test_postgres_a_payment_created_meanwhile_is_a_conflict_then_read(pg_url: str) -> None:  # noqa: F811
    """An event that would create its payment is tried as the payment's first; another
    worker inserts the payment (uncommitted) first, then commits: the statement writes
    nothing and says conflict; the Gateway's retry reads the row and applies on top."""
    import threading

    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=pg_url)
    store = gw.store
    assert isinstance(store, SQLStore)
    pid, deliveries = paid_payment_events(provider)
    created = provider.parse_webhook(deliveries[0].body, deliveries[0].headers)
    other = connect_to_schema(pg_url)
    payment = created.object
    other.execute(
        "INSERT INTO paygate_payments (id, provider, order_id, currency, amount, status, "
        "captured, refunded, refund_ids, before_dispute, data, version, created_at, "
        "updated_at) VALUES (%s, 'fake', 'ord_p', 'USD', 2000, 'pending', 0, 0, '[]', NULL, "
        "%s, 1, 1, 1)",
        (pid, _codec_dumps(payment)),
    )
    results: list[Any] = []
    errors: list[BaseException] = []
    conflicts: list[str] = []
    real_write = store._write_event  # type: ignore[attr-defined]

    def spied_write(*args: Any, **kwargs: Any) -> Any:
        wrote, known, row = real_write(*args, **kwargs)
        if kwargs.get("probe") and not wrote and not known and row is None:
            conflicts.append(kwargs["probe"])
        return wrote, known, row

    store._write_event = spied_write  # type: ignore[attr-defined]

    def deliver() -> None:
        try:
            results.append(gw.handle_webhook(deliveries[0].body, deliveries[0].headers))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=deliver)
    worker.start()
    wait_until_blocked(pg_url)
    other.commit()
    other.close()
    worker.join(timeout=10)
    assert errors == []
    (result,) = results
    # decided again on top of the other worker's row (already pending: nothing to
    # change), never inserted over it
    assert conflicts == [pid]
    assert result.outcome == "unchanged" and result.status is S.PENDING
    record = store.get_payment(pid)
    assert record is not None and record.version == 1 and gw.history(pid) == []
    event = store.get_event("fake", created.id)
    assert event is not None and event.deliveries == 1 and event.applied_at is not None
    gw.close()


def _codec_dumps(value: Any) -> str:
    from paygate.stores import _codec

    return _codec.dumps(value)
