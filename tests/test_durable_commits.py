"""One durable commit per new webhook event, with a handler registered (issue 21).

The commits are counted where the databases see them, not timed:

* SQLite: every statement of the store's connections, through ``sqlite3``'s trace
  callback; a ``COMMIT`` while the connection's ``PRAGMA synchronous`` is ``FULL`` is a
  durable commit (WAL: one sync of the log); one under ``NORMAL`` syncs nothing.
* PostgreSQL: libpq's protocol trace of every pooled connection; a transaction (the
  messages between two idle ``ReadyForQuery``) that wrote and did not turn
  ``synchronous_commit`` off is a durable commit (its commit waits for the WAL flush).

Each event's "handled" mark must still be written (its record processed), only without a
sync of its own.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

import paygate
from paygate import EventType, Money
from paygate.models import WebhookDelivery
from paygate.providers.fake import FakeProvider
from paygate.stores.sqlite import SQLiteStore

# the PostgreSQL fixtures (skip with the reason when no server is reachable)
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

SECRET = "whsec_commit_count"


def _deliveries(payments: int) -> list[WebhookDelivery]:
    provider = FakeProvider(seed=3, webhook_secret=SECRET, webhook_tolerance=86_400)
    for i in range(payments):
        provider.create_payment(order_id=f"o{i}", amount=Money(500 + i, "EUR"),
                                payment_method="tok_visa", idempotency_key=f"k{i}")  # fmt: skip
    deliveries = provider.take_webhooks()
    assert len(deliveries) == 2 * payments  # a created and a succeeded each
    return deliveries


class _SQLiteCommits:
    """Counts durable commits on the connections a SQLiteStore opens (and every write
    transaction and statement: the CPU a webhook costs is mostly per statement)."""

    def __init__(self) -> None:
        self.durable = 0
        self.relaxed = 0
        self.transactions = 0
        self.statements: list[str] = []
        #: inserts (an event, a payment, a transition, a fact: never bookkeeping)
        #: committed without a sync: must stay empty
        self.unsynced_inserts: list[str] = []

    def tracer(self) -> Callable[[str], None]:
        synchronous = ["FULL"]  # the store's default, set when the connection opens
        inserts: list[str] = []  # those of the open transaction

        def trace(statement: str) -> None:
            text = statement.strip().upper()
            self.statements.append(text)
            self.transactions += text.startswith("BEGIN")
            if text.startswith("INSERT"):
                inserts.append(text)
            setting = re.fullmatch(r"PRAGMA SYNCHRONOUS\s*=\s*(\w+)", text)
            if setting:
                synchronous[0] = setting.group(1)
            elif text == "COMMIT":
                if synchronous[0] == "FULL":
                    self.durable += 1
                else:
                    self.relaxed += 1
                    self.unsynced_inserts += inserts
                inserts.clear()

        return trace


@pytest.fixture
def sqlite_commits(monkeypatch: pytest.MonkeyPatch) -> _SQLiteCommits:
    counter = _SQLiteCommits()
    opened = SQLiteStore._open

    def open_traced(store: SQLiteStore) -> sqlite3.Connection:
        conn = opened(store)
        conn.set_trace_callback(counter.tracer())
        return conn

    monkeypatch.setattr(SQLiteStore, "_open", open_traced)
    return counter


class _PostgresCommits:
    """Counts durable commits in libpq traces of the pooled connections."""

    _STATEMENT = re.compile(r'^F\t\d+\t(?:Query|Parse)\t (?:"([^"]*)" )?"(.*)"', re.S)
    #: the execution of a prepared statement (psycopg prepares a statement after a few
    #: executions, by a named Parse followed by a Sync of its own: from then on only a
    #: Bind names it)
    _PREPARED = re.compile(r'^F\t\d+\tBind\t "[^"]*" "([^"]+)"')

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files: list[Any] = []

    def trace(self, conn: Any) -> None:
        from psycopg import pq

        f = (self.directory / f"conn{len(self.files)}.trace").open("w")
        self.files.append(f)
        conn.pgconn.trace(f.fileno())
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)

    def durable(self) -> int:
        """Durable commits so far over all traced connections."""
        count = 0
        for f in self.files:
            f.flush()
            statements: list[str] = []
            prepared: dict[str, str] = {}
            for line in Path(f.name).read_text().splitlines():
                found = self._STATEMENT.match(line)
                bound = self._PREPARED.match(line)
                if found and found.group(1):  # preparing (its own Sync): not run yet
                    prepared[found.group(1)] = found.group(2).upper()
                elif found:
                    statements.append(found.group(2).upper())
                elif bound:
                    statements.append(prepared.get(bound.group(1), ""))
                elif line.startswith("B\t5\tReadyForQuery\t I"):  # a transaction ended
                    wrote = any(re.search(r"\b(INSERT|UPDATE|DELETE)\b", s) for s in statements)
                    relaxed = any("SYNCHRONOUS_COMMIT" in s for s in statements)
                    count += wrote and not relaxed
                    statements = []
        return count

    def close(self) -> None:
        for f in self.files:
            f.close()


@pytest.fixture
def pg_commits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_PostgresCommits]:
    pytest.importorskip("psycopg")
    from paygate.stores import postgres

    counter = _PostgresCommits(tmp_path)
    connect = postgres._Connection.connect.__func__  # type: ignore[attr-defined]

    def connect_traced(cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = connect(cls, *args, **kwargs)
        counter.trace(conn)
        return conn

    monkeypatch.setattr(postgres._Connection, "connect", classmethod(connect_traced))
    yield counter
    counter.close()


def _handle_each(
    gw: paygate.Gateway, deliveries: list[WebhookDelivery], durable: Callable[[], int]
) -> list[int]:
    """Durable commits of each ``handle_webhook`` call (the request path)."""
    per_call = []
    for d in deliveries:
        before = durable()
        result = gw.handle_webhook(d.body, d.headers)
        assert not result.duplicate
        per_call.append(durable() - before)
    return per_call


def _connect_with_handlers(url: str) -> tuple[paygate.Gateway, list[str]]:
    provider = FakeProvider(seed=3, webhook_secret=SECRET, webhook_tolerance=86_400)
    gw = paygate.connect(provider, store=url)
    heard: list[str] = []
    # payment.created is no payment fact: its handler runs in the request, then the
    # event's "handled" mark; payment.succeeded's runs from the facts outbox
    gw.on(EventType.PAYMENT_CREATED)(lambda event: heard.append(f"event {event.id}"))
    gw.on(EventType.PAYMENT_SUCCEEDED)(lambda fact: heard.append(f"fact {fact.id}"))
    return gw, heard


def _check_marked(gw: paygate.Gateway, deliveries: list[WebhookDelivery]) -> None:
    """Every event's handled mark was written all the same."""
    parser = FakeProvider(seed=3, webhook_secret=SECRET, webhook_tolerance=86_400)
    for d in deliveries:
        event = parser.parse_webhook(d.body, d.headers)
        record = gw.store.get_event("fake", event.id)
        assert record is not None and record.processed_at is not None, event.id
    assert gw.store.list_facts(pending=True) == []


def test_sqlite_full_commits_once_per_new_event_with_handlers(
    tmp_path: Path, sqlite_commits: _SQLiteCommits
) -> None:
    deliveries = _deliveries(6)
    gw, heard = _connect_with_handlers(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert isinstance(gw.store, SQLiteStore) and gw.store.synchronous == "FULL"
        per_call = _handle_each(gw, deliveries, lambda: sqlite_commits.durable)
        assert per_call == [1] * len(deliveries)
        assert len(heard) == len(deliveries)  # every handler ran
        assert sqlite_commits.relaxed >= len(deliveries)  # the marks: written, not synced
        _check_marked(gw, deliveries)
    finally:
        gw.close()


def test_sqlite_group_commit_one_worker_commits_once_per_new_event(
    tmp_path: Path, sqlite_commits: _SQLiteCommits
) -> None:
    """``?group_commit=on`` with one request at a time: the handled and done marks still
    commit without a sync of their own (a transaction of bookkeeping alone), so a new
    event costs one durable commit as without group commit."""
    deliveries = _deliveries(6)
    gw, heard = _connect_with_handlers(f"sqlite:///{tmp_path / 'store.db'}?group_commit=on")
    try:
        assert isinstance(gw.store, SQLiteStore) and gw.store.group_commit
        per_call = _handle_each(gw, deliveries, lambda: sqlite_commits.durable)
        assert per_call == [1] * len(deliveries)
        assert sqlite_commits.relaxed >= len(deliveries)
        assert sqlite_commits.unsynced_inserts == []
        assert len(heard) == len(deliveries)
        _check_marked(gw, deliveries)
    finally:
        gw.close()


def test_sqlite_group_commit_concurrent_deliveries_share_syncs_never_skip_one(
    tmp_path: Path, sqlite_commits: _SQLiteCommits
) -> None:
    """Deliveries on eight threads at once, ``?group_commit=on``: fewer durable commits
    than events (they share them), and nothing an event's ingest inserts is ever
    committed without a sync -- a durable write that finds a bookkeeping transaction open
    commits it first and opens its own."""
    import threading

    deliveries = _deliveries(40)
    gw, heard = _connect_with_handlers(f"sqlite:///{tmp_path / 'store.db'}?group_commit=on")
    lanes = [deliveries[i : i + 2] for i in range(0, len(deliveries), 2)]  # a payment's pair
    errors: list[BaseException] = []

    def deliver(mine: list[list[WebhookDelivery]]) -> None:
        try:
            for pair in mine:
                for d in pair:
                    gw.handle_webhook(d.body, d.headers)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(lanes[i::8],)) for i in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sqlite_commits.unsynced_inserts == []
        assert sqlite_commits.durable <= len(deliveries)
        assert len(heard) == len(deliveries)
        _check_marked(gw, deliveries)
    finally:
        gw.close()


def test_sqlite_a_new_fact_event_is_claimed_in_its_ingest_transaction(
    tmp_path: Path, sqlite_commits: _SQLiteCommits
) -> None:
    """The fact a new event records is claimed for this worker by the transaction that
    records it (its handlers run right after the commit): a ``payment.succeeded`` costs
    two write transactions (the ingest, then the fact's done mark), not three (a claim
    of its own in between); a ``payment.created`` two as well (the ingest, the event's
    handled mark). Counted in transactions and statements, not timed."""
    deliveries = _deliveries(6)
    gw, heard = _connect_with_handlers(f"sqlite:///{tmp_path / 'store.db'}")
    now = [1_000.0]
    gw.clock = lambda: now[0]  # still: the once-a-second look for due facts comes first only
    try:
        gw.store.get_payment("warm-up")
        transactions: list[int] = []
        statements: list[int] = []
        for d in deliveries:
            before, said = sqlite_commits.transactions, len(sqlite_commits.statements)
            assert not gw.handle_webhook(d.body, d.headers).duplicate
            transactions.append(sqlite_commits.transactions - before)
            statements.append(len(sqlite_commits.statements) - said)
        assert transactions == [2] * len(deliveries)
        # created: BEGIN, payment read, event, payment, transition, COMMIT, then the mark
        # (2 PRAGMAs, BEGIN, UPDATE, COMMIT); succeeded: the same ingest with the fact's
        # pending check and its claimed row, then its done mark and next-due check
        assert statements[0] == 12  # the look for due facts (a read), once a second
        assert statements[1:] == [14] + [11, 14] * (len(deliveries) // 2 - 1), statements
        assert len(heard) == len(deliveries)
        _check_marked(gw, deliveries)
        facts = gw.store.list_facts()
        assert [f.attempts for f in facts] == [1] * (len(deliveries) // 2)
    finally:
        gw.close()


def test_postgres_commits_once_per_new_event_with_handlers(
    pg_url: str,  # noqa: F811
    pg_commits: _PostgresCommits,
) -> None:
    deliveries = _deliveries(6)
    gw, heard = _connect_with_handlers(pg_url)
    try:
        gw.store.get_payment("warm-up")
        per_call = _handle_each(gw, deliveries, pg_commits.durable)
        assert per_call == [1] * len(deliveries)
        assert len(heard) == len(deliveries)
        _check_marked(gw, deliveries)
    finally:
        gw.close()


# -- one durable commit per provider call (issue 21) --------------------------------------
#
# ``create_payment``'s pending idempotency record is written before the provider call as
# bookkeeping (no sync of its own); the answer's writes -- the attempt's end, the payment
# row, its transition and facts -- go in one durable transaction (``save_answer``).


def _calls(gw: paygate.Gateway, durable: Callable[[], int]) -> dict[str, list[int]]:
    """Durable commits of each call: create (automatic and manual), capture, refund,
    cancel, and a declined create."""
    per_call: dict[str, list[int]] = {}

    def count(name: str, call: Callable[[], object]) -> None:
        before = durable()
        call()
        per_call.setdefault(name, []).append(durable() - before)

    created: list[paygate.Payment] = []

    def create(i: int, capture: Literal["automatic", "manual"]) -> None:
        created.append(gw.create_payment(
            order_id=f"{capture}-{i}", amount=Money(1000 + i, "EUR"), payment_method="tok_visa",
            capture=capture))  # fmt: skip

    for i in range(5):
        count("create", functools.partial(create, i, "automatic" if i < 3 else "manual"))
    manual = created[3:]
    count("capture", lambda: gw.capture(manual[0].id))
    count("refund", lambda: gw.refund(manual[0].id, Money(500, "EUR")))
    count("cancel", lambda: gw.cancel(manual[1].id))

    def declined() -> None:
        with pytest.raises(paygate.CardDeclined):
            gw.create_payment(order_id="declined", amount=Money(300, "EUR"),
                              payment_method="tok_declined")  # fmt: skip

    count("declined", declined)
    # an operation whose answer moves no payment: the pending record, then its end
    count("customer", lambda: gw.create_customer(email="c@example.com"))
    # a replay of a finished call writes nothing durable
    count("replay", lambda: gw.create_payment(
        order_id="automatic-0", amount=Money(1000, "EUR"), payment_method="tok_visa"))  # fmt: skip
    return per_call


_ONE_EACH = {"create": [1] * 5, "capture": [1], "refund": [1], "cancel": [1], "declined": [1],
             "customer": [1], "replay": [0]}  # fmt: skip


def test_sqlite_full_commits_once_per_provider_call(
    tmp_path: Path, sqlite_commits: _SQLiteCommits
) -> None:
    gw = paygate.connect(FakeProvider(seed=5), store=f"sqlite:///{tmp_path / 'store.db'}")
    try:
        assert isinstance(gw.store, SQLiteStore) and gw.store.synchronous == "FULL"
        assert _calls(gw, lambda: sqlite_commits.durable) == _ONE_EACH
        assert sqlite_commits.relaxed >= 7  # the pending records: written, not synced
        op = gw.store.get_operation("create_payment:automatic-1")
        assert op is not None and op.status is paygate.stores.OperationStatus.SUCCEEDED
        assert [t.new_status.value for t in gw.store.history(op.result_id or "")] == ["succeeded"]
    finally:
        gw.close()


def test_postgres_commits_once_per_provider_call(
    pg_url: str,  # noqa: F811
    pg_commits: _PostgresCommits,
) -> None:
    # one pooled connection, and a read before each count: libpq traces the answer to a
    # COMMIT when it reads the connection next, so the read brings the trace up to date
    url = pg_url.replace("pool_max=4", "pool_max=1")
    assert "pool_max=1" in url
    gw = paygate.connect(FakeProvider(seed=5), store=url)

    def durable() -> int:
        gw.store.get_payment("trace-flush")
        return pg_commits.durable()

    try:
        gw.store.get_payment("warm-up")
        assert _calls(gw, durable) == _ONE_EACH
    finally:
        gw.close()


class _OldStore:
    """A store written before ``save_answer``: a MemoryStore's other methods only."""

    def __init__(self) -> None:
        from paygate.stores import MemoryStore

        self._inner = MemoryStore()
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name == "save_answer":
            raise AttributeError(name)
        self.calls.append(name)
        return getattr(self._inner, name)


def test_a_store_without_save_answer_gets_the_writes_one_by_one() -> None:
    old = _OldStore()
    gw = paygate.Gateway(FakeProvider(seed=7), store=old)
    payment = gw.create_payment(order_id="o1", amount=Money(1200, "EUR"),
                                payment_method="tok_visa", capture="manual")  # fmt: skip
    gw.capture(payment.id)
    writes = [c for c in old.calls if c in ("begin_operation", "finish_operation", "save_payment")]
    assert writes == ["begin_operation", "finish_operation", "save_payment"] * 2
    op = old.get_operation(f"capture:{payment.id}")
    assert op is not None and op.status.value == "succeeded"
    assert [t.new_status.value for t in old.history(payment.id)] == ["authorized", "succeeded"]


def test_sqlite_a_fact_behind_a_pending_one_is_not_claimed_at_ingest(tmp_path: Path) -> None:
    """Facts of a payment go out in order: the ingest claims a new fact only when none
    of its payment is pending. Here ``payment.succeeded``'s handler fails once, so the
    refunds' facts that follow are recorded unclaimed and wait; they run after it, in
    order, once its backoff is over."""
    from tests.test_gateway_webhooks import paid_payment_events

    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=f"sqlite:///{tmp_path / 'store.db'}")
    now = [1_000.0]
    gw.clock = lambda: now[0]
    ran: list[str] = []
    failures = [1]

    def succeeded(fact: Any) -> None:
        if failures[0]:
            failures[0] -= 1
            raise RuntimeError("once")
        ran.append(fact.type.value)

    gw.on(EventType.PAYMENT_SUCCEEDED)(succeeded)
    gw.on(EventType.REFUND_SUCCEEDED)(lambda fact: ran.append(f"{fact.type.value} {fact.ref}"))
    try:
        pid, deliveries = paid_payment_events(provider)
        for d in deliveries:
            gw.handle_webhook(d.body, d.headers)
        assert ran == []  # the refunds wait behind the failed payment.succeeded
        facts = {
            f.type.value + (f" {f.ref}" if f.ref else ""): f
            for f in gw.store.list_facts(payment_id=pid)
        }
        pending = [f for f in facts.values() if f.done_at is None]
        assert len(pending) == 3
        assert [f.attempts for f in pending] == [1, 0, 0]  # only the first was ever claimed
        now[0] += 5  # its backoff is over
        summary = gw.dispatch_pending()
        assert summary.done == 3
        refunds = [name for name in facts if name.startswith("refund")]
        assert ran == ["payment.succeeded", *refunds]
    finally:
        gw.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_new_fact_events_payment_is_encoded_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The payment row and the fact recorded with it hold the same payment: its JSON is
    encoded once per new ``payment.succeeded``, not once for each (counted, not timed)."""
    from paygate.stores import _codec

    url = (
        f"sqlite:///{tmp_path / 'store.db'}"
        if kind == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    deliveries = _deliveries(3)
    gw, heard = _connect_with_handlers(url)
    encoded: list[str] = []
    dumps = _codec.dumps

    def counted(value: Any) -> str:
        encoded.append(type(value).__name__)
        return dumps(value)

    monkeypatch.setattr(_codec, "dumps", counted)
    try:
        for created, succeeded in zip(deliveries[::2], deliveries[1::2], strict=True):
            gw.handle_webhook(created.body, created.headers)
            encoded.clear()
            gw.handle_webhook(succeeded.body, succeeded.headers)
            assert encoded == ["Payment"]
        assert len(heard) == len(deliveries)
    finally:
        gw.close()
