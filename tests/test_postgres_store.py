"""PostgresStore: the shared Store protocol tests, plus what is specific to PostgreSQL
(its own schema, pooling, concurrency, schema versions, corrupt rows, secret URLs).

Runs against ``PAYGATE_TEST_POSTGRES_URL`` or a throw-away database on 127.0.0.1:5432;
skips with the reason where no server is reachable (tests/postgres_support.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

import paygate
from paygate import EventType, Money, PaymentStatus
from paygate.errors import ConfigurationError
from paygate.providers.fake import FakeProvider
from paygate.state import PaymentState
from paygate.stores import ClaimStatus, Store, StoreConflict, StoreError, open_store
from paygate.stores._sql import SCHEMA_VERSION, SchemaVersionError

# the Store protocol tests of tests/test_store.py, collected here again against PostgreSQL
# (pytest uses this module's ``store`` fixture for them)
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401
from tests.test_gateway_webhooks import paid_payment_events
from tests.test_store import (  # noqa: F401
    claim,
    record,
    test_claim_lifecycle,
    test_expired_lease_is_taken_over_and_the_old_owner_cannot_write,
    test_finish_in_the_same_transaction,
    test_history_keeps_order_and_fields,
    test_insert_twice_conflicts,
    test_iter_payments_lists_every_payment_once_in_id_order,
    test_list_events_filters,
    test_list_operations_by_key_prefix_oldest_first,
    test_operations_insert_once_then_compare_and_set,
    test_payment_round_trip_never_keeps_raw_or_client_secret,
    test_payments_for_order_oldest_first,
    test_released_event_is_reclaimed_with_its_applied_flag,
    test_save_answer_writes_the_attempts_end_and_its_payment_writes_all_or_nothing,
    test_update_is_compare_and_set_and_a_lost_race_writes_nothing,
    transition,
)

S = PaymentStatus


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:  # noqa: F811
    s = open_store(pg_url)
    yield s
    s.close()


def _sql(pg_database: str, schema: str, statement: str, *params: Any) -> list[Any]:  # noqa: F811
    import psycopg

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{schema}"')
        cur = conn.execute(statement, params or None)
        return cur.fetchall() if cur.description else []


def test_open_store_gives_a_postgres_store_in_its_own_schema(
    pg_url: str,  # noqa: F811
    pg_database: str,  # noqa: F811
    pg_schema: str,  # noqa: F811
) -> None:
    from paygate.stores.postgres import PostgresStore

    s = open_store(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    assert isinstance(s, PostgresStore) and s.schema == pg_schema
    s.save_payment(record(), expected_version=None, transition=transition())
    s.close()
    again = open_store(pg_url)  # persists across a reopen
    got = again.get_payment("pay_1")
    assert got is not None and got.status is S.PENDING and len(again.history("pay_1")) == 1
    again.close()
    tables = _sql(pg_database, pg_schema,
                  "SELECT table_name FROM information_schema.tables "
                  "WHERE table_schema = %s ORDER BY 1", pg_schema)  # fmt: skip
    assert [t for (t,) in tables] == [
        "paygate_events", "paygate_facts", "paygate_meta", "paygate_operations",
        "paygate_payments", "paygate_subscription_transitions", "paygate_subscriptions",
        "paygate_transitions",
    ]  # fmt: skip
    assert _sql(pg_database, pg_schema, "SELECT value FROM paygate_meta") == [
        (str(SCHEMA_VERSION),)
    ]


def test_a_newer_schema_is_refused_and_nothing_is_written(
    pg_url: str,  # noqa: F811
    pg_database: str,  # noqa: F811
    pg_schema: str,  # noqa: F811
) -> None:
    s = open_store(pg_url)
    s.save_payment(record(), expected_version=None)
    s.close()
    _sql(pg_database, pg_schema, "UPDATE paygate_meta SET value = %s", str(SCHEMA_VERSION + 1))
    before = _sql(pg_database, pg_schema, "SELECT * FROM paygate_payments")
    with pytest.raises(SchemaVersionError, match="newer than this paygate"):
        open_store(pg_url)
    from paygate.stores.postgres import PostgresStore

    with pytest.raises(SchemaVersionError, match="newer than this paygate"):
        PostgresStore.from_url(pg_url, migrate=False)
    assert _sql(pg_database, pg_schema, "SELECT * FROM paygate_payments") == before
    assert _sql(pg_database, pg_schema, "SELECT value FROM paygate_meta") == [
        (str(SCHEMA_VERSION + 1),)
    ]


def test_an_empty_database_without_migrate_asks_for_an_upgrade(pg_url: str) -> None:  # noqa: F811
    from paygate.stores.postgres import PostgresStore

    with pytest.raises(SchemaVersionError, match="paygate db upgrade"):
        PostgresStore.from_url(pg_url, migrate=False)


def test_a_corrupt_row_is_a_clear_error(
    pg_url: str,  # noqa: F811
    pg_database: str,  # noqa: F811
    pg_schema: str,  # noqa: F811
) -> None:
    s = open_store(pg_url)
    s.save_payment(record(), expected_version=None)
    _sql(pg_database, pg_schema, "UPDATE paygate_payments SET status = 'exploded'")
    with pytest.raises(StoreError, match="payment row 'pay_1' is corrupt"):
        s.get_payment("pay_1")
    _sql(pg_database, pg_schema, "UPDATE paygate_payments SET status = 'pending', data = '{{'")
    with pytest.raises(StoreError, match="payment row 'pay_1' is corrupt"):
        s.get_payment("pay_1")
    s.close()


def test_concurrent_upgrades_take_turns(pg_url: str) -> None:  # noqa: F811
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def opener() -> None:
        barrier.wait()
        try:
            open_store(pg_url).close()
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    s = open_store(pg_url)
    assert s.schema_version() == SCHEMA_VERSION  # type: ignore[attr-defined]
    s.close()


def test_claim_from_8_threads_has_one_owner(store: Store) -> None:
    barrier = threading.Barrier(8)
    statuses: list[ClaimStatus] = []

    def worker() -> None:
        barrier.wait()
        statuses.append(claim(store).status)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(ClaimStatus.CLAIMED) == 1
    assert statuses.count(ClaimStatus.IN_PROGRESS) == 7
    event = store.get_event("fake", "evt_1")
    assert event is not None and event.deliveries == 8


def test_compare_and_set_from_8_threads_has_one_winner(store: Store) -> None:
    store.save_payment(record(), expected_version=None, transition=transition())
    barrier = threading.Barrier(8)
    won: list[int] = []
    lost: list[int] = []

    def worker(i: int) -> None:
        barrier.wait()
        moved = record(version=2, state=PaymentState(S.SUCCEEDED, 1999, 1999), now=200.0 + i)
        try:
            store.save_payment(moved, expected_version=1,
                               transition=transition(new=S.SUCCEEDED, previous=S.PENDING))  # fmt: skip
        except StoreConflict:
            lost.append(i)
        else:
            won.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 7
    got = store.get_payment("pay_1")
    assert got is not None and got.version == 2 and got.updated_at == 200.0 + won[0]
    assert [t.new_status for t in store.history("pay_1")] == [S.PENDING, S.SUCCEEDED]


def test_gateway_on_postgres_applies_each_event_once_from_threads(pg_url: str) -> None:  # noqa: F811
    provider = FakeProvider(seed=21)
    gw = paygate.connect(provider, store=pg_url)
    handled: list[str] = []
    gw.on(EventType.REFUND_SUCCEEDED)(lambda event: handled.append(event.id))
    pid, deliveries = paid_payment_events(provider)
    # every event twice, all at once: same-event races and same-payment races together
    barrier = threading.Barrier(len(deliveries) * 2)

    def worker(i: int) -> None:
        barrier.wait()
        d = deliveries[i % len(deliveries)]
        gw.handle_webhook(d.body, d.headers)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(deliveries) * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = gw.store.get_payment(pid)
    assert got is not None
    assert (got.status, got.state.captured, got.state.refunded) == (
        S.PARTIALLY_REFUNDED, 2000, 1200,
    )  # fmt: skip
    log = gw.history(pid)
    assert len({t.event_id for t in log}) == len(log)
    assert sorted(handled) == sorted(set(handled)) and len(handled) == 2
    assert all(e.processed for e in gw.store.list_events(payment_id=pid))
    gw.close()


def test_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://shop:hunter2@127.0.0.1:1/db?timeout=1&connect_timeout=1")
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in repr(info.value)
    # the password is not even masked: the line names where and which database instead
    assert "cannot connect to PostgreSQL at 127.0.0.1:1, database 'db'" in str(info.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://h/db?pool_max=lots", "pool_max must be an integer"),
        ("postgresql://h/db?pool_min=5&pool_max=2", "pool_min <= pool_max"),
        ("postgresql://h/db?timeout=soon", "timeout must be seconds"),
        ("postgresql://h/db?schema=%20", "schema must not be empty"),
    ],
)
def test_bad_postgres_options(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        open_store(url)


def test_repr_hides_the_password(pg_database: str, pg_schema: str) -> None:  # noqa: F811
    from paygate.stores.postgres import PostgresStore

    s = PostgresStore(pg_database, schema=pg_schema, pool_max=1)
    assert repr(s).startswith("PostgresStore(")
    s.close()
    s.close()  # twice is fine
    with pytest.raises(ConfigurationError, match="closed"):
        s.get_payment("pay_1")


def test_libpq_options_in_the_url_are_kept_beside_the_schema(pg_url: str) -> None:  # noqa: F811
    s = open_store(pg_url + "&options=-c%20application_name%3Dpaygate_opts")
    with s._read() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT current_setting('application_name'), current_schema()")
        name, schema = cur.fetchone()
    assert name == "paygate_opts" and schema == s.schema  # type: ignore[attr-defined]
    s.close()


def test_corrupt_event_and_transition_rows_are_clear_errors(
    pg_url: str,  # noqa: F811
    pg_database: str,  # noqa: F811
    pg_schema: str,  # noqa: F811
) -> None:
    s = open_store(pg_url)
    s.save_payment(record(), expected_version=None, transition=transition())
    claim(s, "evt_bad")
    _sql(pg_database, pg_schema, "UPDATE paygate_events SET payload = 'not json'")
    _sql(pg_database, pg_schema, "UPDATE paygate_transitions SET new_status = 'exploded'")
    with pytest.raises(StoreError, match="event row 'evt_bad' is corrupt"):
        s.list_events()
    with pytest.raises(StoreError, match="event row 'evt_bad' is corrupt"):
        s.get_event("fake", "evt_bad")
    with pytest.raises(StoreError, match="transition row 1 of 'pay_1' is corrupt"):
        s.history("pay_1")
    # nothing was rewritten
    assert _sql(pg_database, pg_schema, "SELECT payload FROM paygate_events") == [("not json",)]
    s.close()


# -- the recent-payments cache behind the one-statement ingest -----------------------------


def test_an_event_of_a_payment_this_store_just_wrote_skips_the_read(
    pg_url: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from paygate.stores.postgres import PostgresStore

    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=pg_url)
    assert isinstance(gw.store, PostgresStore)
    pid, deliveries = paid_payment_events(provider)
    looked_up: list[bool] = []  # per event: was the payment's row in the cache?
    recent = gw.store._recent
    real_get = recent.get

    def get(payment_id: str) -> Any:
        found = real_get(payment_id)
        looked_up.append(found is not None)
        return found

    monkeypatch.setattr(recent, "get", get)
    for d in deliveries:
        gw.handle_webhook(d.body, d.headers)
    # read from the database once, for the first event (the payment was new); every
    # later event started from the row this store had just written
    assert looked_up == [False, True, True, True, True]
    payment = gw.get_payment(pid)
    assert payment.status is S.PARTIALLY_REFUNDED and payment.amount_refunded is not None
    assert payment.amount_refunded.amount == 1200
    gw.close()


def test_a_payment_changed_by_another_worker_is_read_again_not_overwritten(
    pg_url: str,  # noqa: F811
) -> None:
    """Two stores are two workers: worker A's cached row goes stale when B applies an
    event; A's next event fails the compare-and-set, reads the row again and applies
    on top of B's change."""
    provider = FakeProvider(seed=1)
    a = paygate.connect(provider, store=pg_url)
    b = paygate.connect(provider, store=pg_url)
    pid, deliveries = paid_payment_events(provider)
    created, processing, succeeded, refund_1, refund_2 = deliveries
    assert a.handle_webhook(created.body, created.headers).outcome == "applied"  # A caches v1
    assert b.handle_webhook(processing.body, processing.headers).outcome == "applied"
    assert a.handle_webhook(succeeded.body, succeeded.headers).outcome == "applied"
    assert b.handle_webhook(refund_1.body, refund_1.headers).outcome == "applied"
    assert a.handle_webhook(refund_2.body, refund_2.headers).outcome == "applied"
    history = a.history(pid)
    assert [t.new_status for t in history] == [
        S.PENDING, S.PROCESSING, S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.PARTIALLY_REFUNDED
    ]  # fmt: skip
    assert len({t.event_id for t in history}) == 5
    record = b.store.get_payment(pid)
    assert record is not None and record.version == 5 and record.state.refunded == 1200
    a.close()
    b.close()


# -- the finish after an event's handlers --------------------------------------------------


def test_the_finish_commits_asynchronously_for_its_own_transaction_only(
    pg_url: str,  # noqa: F811
) -> None:
    from paygate.stores.postgres import _FINISH_EVENT_ASYNC, PostgresStore

    store = open_store(pg_url + "&pool_max=1")  # one connection: the finish's and ours
    assert isinstance(store, PostgresStore) and store.finish_commit == "async"
    owned = store.claim_event(
        "fake", "evt_f", event_type="payment.created", provider_type="payment.created",
        payment_id=None, payload={}, occurred_at=None, now=100.0, lease_seconds=30.0,
    )  # fmt: skip
    assert store.finish_event(owned, now=101.0)
    event = store.get_event("fake", "evt_f")
    assert event is not None and event.processed_at == 101.0 and event.lease_until is None
    assert not store.finish_event(owned, now=102.0)  # the claim is spent
    with store._connection() as conn:
        # the setting did not outlive the finish's transaction
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        # inside a transaction the statement does switch it off (set_config is evaluated)
        with conn.transaction(force_rollback=True):
            conn.execute(_FINISH_EVENT_ASYNC, (1.0, "fake", "none", "none"))
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
    store.close()


def test_finish_commit_sync_is_an_option_and_a_bad_value_is_refused(
    pg_url: str,  # noqa: F811
) -> None:
    store = open_store(pg_url + "&finish_commit=sync")
    owned = store.claim_event(
        "fake", "evt_s", event_type="payment.created", provider_type="payment.created",
        payment_id=None, payload={}, occurred_at=None, now=100.0, lease_seconds=30.0,
    )  # fmt: skip
    assert store.finish_event(owned, now=101.0)
    store.close()
    with pytest.raises(ConfigurationError, match="finish_commit must be 'async' or 'sync'"):
        open_store(pg_url + "&finish_commit=later")


def test_an_event_that_changes_nothing_on_a_stale_cached_row_is_decided_again(
    pg_url: str,  # noqa: F811
) -> None:
    """Worker A cached the payment as succeeded; worker B applied dispute.opened since.
    dispute.won then reaches A: on A's stale row it would change nothing and be recorded
    as such -- lost. The record is conditional on the payment's version, so A reads the
    payment again and applies the event: the payment is back to succeeded."""
    provider = FakeProvider(seed=1)
    a = paygate.connect(provider, store=pg_url)
    b = paygate.connect(provider, store=pg_url)
    side = paygate.connect(provider)  # drives the provider only
    payment = side.create_payment(
        order_id="ord_d", amount=Money.of("10.00", "USD"), payment_method="tok_visa"
    )
    for d in provider.take_webhooks():
        a.handle_webhook(d.body, d.headers)  # A caches the payment, succeeded
    dispute = provider.open_dispute(payment.id)
    (opened,) = provider.take_webhooks()
    assert b.handle_webhook(opened.body, opened.headers).status is S.DISPUTED
    provider.resolve_dispute(dispute.id, won=True)
    (won,) = provider.take_webhooks()
    result = a.handle_webhook(won.body, won.headers)
    assert result.outcome == "applied" and result.status is S.SUCCEEDED
    assert a.get_payment(payment.id).status is S.SUCCEEDED
    assert [t.new_status for t in a.history(payment.id)][-2:] == [S.DISPUTED, S.SUCCEEDED]
    a.close()
    b.close()


def test_a_dropped_connection_is_a_store_error_and_the_pool_replaces_it(
    pg_url: str,  # noqa: F811
) -> None:
    s = open_store(pg_url + "&pool_min=1&pool_max=1")
    # AdminShutdown: psycopg's OperationalError for a connection the server ended
    with pytest.raises(StoreError, match="AdminShutdown"), s._read() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert s.get_payment("pay_1") is None  # a fresh connection, with a fresh cursor
    s.close()


def test_no_free_connection_within_the_timeout_is_a_store_error(pg_url: str) -> None:  # noqa: F811
    s = open_store(pg_url + "&pool_min=1&pool_max=1&timeout=0.2")
    held = s._read()  # type: ignore[attr-defined]
    with held, pytest.raises(StoreError, match=r"no free connection within 0\.2s"):
        s.get_payment("pay_1")
    assert s.get_payment("pay_1") is None  # returned at the end of the block
    s.close()


def test_a_connection_keeps_its_cursor_across_borrows(pg_url: str) -> None:  # noqa: F811
    s = open_store(pg_url + "&pool_min=1&pool_max=1")
    with s._read() as first:  # type: ignore[attr-defined]
        first.execute("SELECT 1")
    with s._write_one() as second:  # type: ignore[attr-defined]
        assert second is first
        second.execute("SELECT 2")
        assert second.fetchone() == (2,)
    s.close()
