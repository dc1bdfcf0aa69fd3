"""Payment facts: each told to the application once, whichever channel brings it first.

Every test runs on the three stores (PostgreSQL skips without a server).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import sqlite3
import warnings
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import EventType, Money, PaymentStatus
from paygate._facts import Fact
from paygate.errors import ConfigurationError, ProviderError
from paygate.gateway import Gateway
from paygate.models import Payment, WebhookDelivery
from paygate.providers.fake import FakeProvider

# the PostgreSQL fixtures (skip with the reason when no server is reachable)
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

S = PaymentStatus
E = EventType
FACTS = [E.PAYMENT_SUCCEEDED, E.PAYMENT_FAILED, E.PAYMENT_CANCELED, E.PAYMENT_AUTHORIZED,
         E.PAYMENT_ACTION_REQUIRED, E.PAYMENT_PROCESSING, E.REFUND_SUCCEEDED, E.REFUND_FAILED,
         E.DISPUTE_OPENED, E.DISPUTE_WON, E.DISPUTE_LOST]  # fmt: skip


def usd(amount: str) -> Money:
    return Money.of(amount, "USD")


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return url
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"


class Heard:
    """Every fact handed to the handlers, as (type, payment id, source)."""

    def __init__(self, gw: Gateway) -> None:
        self.facts: list[Fact] = []
        gw.on(*FACTS)(self.facts.append)

    @property
    def types(self) -> list[EventType]:
        return [f.type for f in self.facts]


def deliver(gw: Gateway, deliveries: list[WebhookDelivery]) -> list[Any]:
    return [gw.handle_webhook(d.body, d.headers) for d in deliveries]


def of_type(deliveries: list[WebhookDelivery], kind: str) -> list[WebhookDelivery]:
    return [d for d in deliveries if json.loads(d.body)["type"] == kind]


def test_an_api_answer_tells_the_fact_and_the_later_webhook_is_a_duplicate(store_url: str) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=store_url)
    heard = Heard(gw)
    payment = gw.create_payment(order_id="ord_1", amount=usd("10"), payment_method="tok_visa")
    assert payment.status is S.SUCCEEDED
    (fact,) = heard.facts  # no webhook yet: the API answer established it
    assert (fact.type, fact.source, fact.payment_id, fact.order_id) == (
        E.PAYMENT_SUCCEEDED, "api", payment.id, "ord_1",
    )  # fmt: skip
    assert fact.payment.status is S.SUCCEEDED and fact.event is None
    assert isinstance(fact.object, Payment) and fact.object.amount_captured == usd("10")
    results = deliver(gw, provider.take_webhooks())
    assert heard.types == [E.PAYMENT_SUCCEEDED]  # the webhook brings nothing new
    assert all(not r.facts and not r.handlers_failed for r in results)
    gw.get_payment(payment.id)
    assert len(heard.facts) == 1 and gw.pending_facts() == []
    assert [f.id for f in gw.facts(payment.id)] == [fact.id]


def test_a_refund_webhook_before_the_capture_tells_succeeded_then_refunded(store_url: str) -> None:
    provider = FakeProvider(seed=2)
    side = paygate.connect(provider, store="memory://")  # only drives the provider
    paid = side.create_payment(order_id="ord_r", amount=usd("20"), payment_method="tok_visa")
    refund = side.refund(paid.id, amount=usd("5"))
    deliveries = provider.take_webhooks()
    gw = paygate.connect(provider, store=store_url)
    heard = Heard(gw)
    (refunded,) = of_type(deliveries, "refund.succeeded")
    first = gw.handle_webhook(refunded.body, refunded.headers)
    assert first.status is S.PARTIALLY_REFUNDED
    assert heard.types == [E.PAYMENT_SUCCEEDED, E.REFUND_SUCCEEDED]  # causal order
    captured, refund_fact = heard.facts
    assert captured.payment.status is S.SUCCEEDED  # as it stood right after the capture
    assert refund_fact.payment.status is S.PARTIALLY_REFUNDED
    assert refund_fact.refund_id == refund.id and refund_fact.object.id == refund.id
    assert {f.source for f in heard.facts} == {"webhook"}
    assert [f.id for f in first.facts] == [f.id for f in heard.facts]
    # the late payment.succeeded (and every redelivery) fires nothing
    deliver(gw, of_type(deliveries, "payment.succeeded"))
    deliver(gw, [provider.redeliver(d) for d in deliveries])
    assert heard.types == [E.PAYMENT_SUCCEEDED, E.REFUND_SUCCEEDED]


def test_a_disputed_answer_tells_succeeded_then_dispute_opened(store_url: str) -> None:
    provider = FakeProvider(seed=3)
    gw = paygate.connect(provider, store=store_url)
    heard = Heard(gw)
    payment = gw.create_payment(order_id="ord_d", amount=usd("8"), payment_method="tok_dispute")
    deliver(gw, provider.take_webhooks())
    gw.get_payment(payment.id)
    assert heard.types == [E.PAYMENT_SUCCEEDED, E.DISPUTE_OPENED]
    assert [f.payment.status for f in heard.facts] == [S.SUCCEEDED, S.DISPUTED]


def test_the_return_channel_labels_its_facts(store_url: str) -> None:
    provider = FakeProvider(seed=4)
    gw = paygate.connect(provider, store=store_url)
    heard = Heard(gw)
    session = gw.create_checkout(
        order_id="ord_ret", line_items=[paygate.LineItem(name="Tea", unit_amount=usd("4"))],
        success_url="https://shop.test/ok", cancel_url="https://shop.test/no",
    )  # fmt: skip
    provider.complete_checkout(session.id, payment_method="tok_visa")
    gw.handle_return({"session_id": session.id})
    assert [(f.type, f.source) for f in heard.facts] == [(E.PAYMENT_SUCCEEDED, "return")]
    deliver(gw, provider.take_webhooks())
    assert len(heard.facts) == 1


def test_a_channel_label_marks_the_source(store_url: str) -> None:
    provider = FakeProvider(seed=5)
    side = paygate.connect(provider, store="memory://")
    paid = side.create_payment(order_id="ord_c", amount=usd("6"), payment_method="tok_visa")
    gw = paygate.connect(provider, store=store_url)
    heard = Heard(gw)
    with gw.channel("reconcile"):
        gw.get_payment(paid.id)
    assert [(f.type, f.source) for f in heard.facts] == [(E.PAYMENT_SUCCEEDED, "reconcile")]
    assert gw.history(paid.id)[-1].source == "reconcile"
    with (
        pytest.raises(paygate.ValidationError, match="channel must be one of"),
        gw.channel("carrier-pigeon"),
    ):
        pass


def test_a_raising_handler_leaves_the_fact_pending_and_later_facts_of_its_payment_wait(
    store_url: str,
) -> None:
    provider = FakeProvider(seed=6)
    now = [1_000.0]
    gw = paygate.connect(provider, store=store_url, clock=lambda: now[0])
    heard = Heard(gw)
    down = [True]

    @gw.on(E.PAYMENT_SUCCEEDED)
    def fulfil(fact: Fact) -> None:
        if down[0]:
            raise ConnectionError("warehouse offline")

    payment = gw.create_payment(order_id="ord_f", amount=usd("9"), payment_method="tok_visa")
    gw.refund(payment.id, amount=usd("2"))
    # the refund fact waits behind the failed succeeded fact of the same payment
    assert heard.types == [E.PAYMENT_SUCCEEDED]
    pending = gw.pending_facts()
    assert [f.type for f in pending] == [E.PAYMENT_SUCCEEDED, E.REFUND_SUCCEEDED]
    assert (
        pending[0].attempts == 1 and pending[0].last_error == "ConnectionError: warehouse offline"
    )
    assert pending[1].attempts == 0
    # another payment's facts are not held up (its own fulfilment fails too, for now)
    other = gw.create_payment(order_id="ord_g", amount=usd("3"), payment_method="tok_visa")
    assert heard.facts[-1].payment_id == other.id
    down[0] = False
    now[0] += 0.5  # inside the backoff: the next call does not retry yet
    gw.get_payment(other.id)
    assert len(gw.pending_facts()) == 3
    now[0] += 1.0  # the backoff (1 s) is over: the next gateway call retries, in order
    gw.get_payment(other.id)
    assert gw.pending_facts() == []
    mine = [f.type for f in heard.facts if f.payment_id == payment.id]
    assert mine == [E.PAYMENT_SUCCEEDED, E.PAYMENT_SUCCEEDED, E.REFUND_SUCCEEDED]
    assert all(f.done for f in gw.facts(payment.id))


def test_dispatch_pending_retries_at_once_and_summarises(store_url: str) -> None:
    provider = FakeProvider(seed=7)
    gw = paygate.connect(provider, store=store_url)
    calls: list[str] = []

    @gw.on(E.PAYMENT_SUCCEEDED)
    def flaky(fact: Fact) -> None:
        calls.append(fact.id)
        if len(calls) == 1:
            raise RuntimeError("boom")

    gw.create_payment(order_id="ord_s", amount=usd("1"), payment_method="tok_visa")
    summary = gw.dispatch_pending()
    assert (summary.done, summary.failed, summary.handlers_run) == (1, 0, 1)
    assert summary.facts[0].attempts == 2 and len(calls) == 2
    assert gw.dispatch_pending() == paygate.DispatchSummary()


def test_facts_recorded_without_handlers_wait_for_a_gateway_that_has_them(
    store_url: str, tmp_path: Path
) -> None:
    """A crash between the commit and the handlers (or a script with no handlers) loses
    nothing: the fact is in the outbox and the app's gateway dispatches it."""
    provider = FakeProvider(seed=8)
    if store_url == "memory://":
        store: Any = paygate.stores.open_store(store_url)
        recorder, app = Gateway(provider, store), Gateway(provider, store)
    else:
        recorder, app = paygate.connect(provider, store_url), paygate.connect(provider, store_url)
    payment = recorder.create_payment(order_id="ord_w", amount=usd("2"), payment_method="tok_visa")
    (waiting,) = recorder.pending_facts()
    assert waiting.type is E.PAYMENT_SUCCEEDED and waiting.attempts == 0
    heard = Heard(app)
    summary = app.dispatch_pending()
    assert summary.done == 1 and heard.types == [E.PAYMENT_SUCCEEDED]
    assert heard.facts[0].payment_id == payment.id


def test_a_claimed_fact_is_not_run_twice_until_its_lease_runs_out(store_url: str) -> None:
    provider = FakeProvider(seed=9)
    now = [5_000.0]
    gw = paygate.connect(provider, store=store_url, clock=lambda: now[0], webhook_lease=30.0)
    gw.create_payment(order_id="ord_l", amount=usd("2"), payment_method="tok_visa")
    # a worker claims the fact and dies before its handlers finish
    (claim,) = gw.store.claim_facts(now=now[0], lease_seconds=30.0, limit=10)
    heard = Heard(gw)
    assert gw.dispatch_pending().done == 0 and heard.facts == []
    now[0] += 31.0
    assert gw.dispatch_pending().done == 1 and heard.types == [E.PAYMENT_SUCCEEDED]
    assert gw.store.finish_fact(claim, now=now[0]) == (False, False)  # its lease is gone
    assert len(heard.facts) == 1


def test_other_events_still_reach_their_handlers_once_per_event(store_url: str) -> None:
    provider = FakeProvider(seed=10)
    gw = paygate.connect(provider, store=store_url)
    created: list[str] = []
    gw.on(E.PAYMENT_CREATED)(lambda event: created.append(event.id))
    side = paygate.connect(provider, store="memory://")
    side.create_payment(order_id="ord_o", amount=usd("2"), payment_method="tok_visa")
    deliveries = provider.take_webhooks()
    deliver(gw, deliveries)
    deliver(gw, [provider.redeliver(d) for d in deliveries])
    (event_id,) = [json.loads(d.body)["id"] for d in of_type(deliveries, "payment.created")]
    assert created == [event_id]


# -- async handlers ----------------------------------------------------------------------


async def _async_handler(fact: Fact) -> None:  # pragma: no cover - never run
    await asyncio.sleep(0)


class _AsyncCallable:
    async def __call__(self, fact: Fact) -> None:  # pragma: no cover - never run
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    "handler",
    [_async_handler, functools.partial(_async_handler), _AsyncCallable()],
    ids=["async-def", "partial", "callable-object"],
)
def test_an_async_handler_is_refused_at_registration(handler: Any) -> None:
    gw = paygate.connect(FakeProvider(), store="memory://")
    with pytest.raises(ConfigurationError, match=r"synchronously.*asyncio\.run"):
        gw.on(E.PAYMENT_SUCCEEDED)(handler)


def test_a_handler_returning_an_awaitable_fails_without_a_warning(store_url: str) -> None:
    gw = paygate.connect(FakeProvider(seed=11), store=store_url)
    gw.on(E.PAYMENT_SUCCEEDED)(lambda fact: _async_handler(fact))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a never-awaited coroutine would warn
        gw.create_payment(order_id="ord_a", amount=usd("2"), payment_method="tok_visa")
    (pending,) = gw.pending_facts()
    assert pending.last_error is not None and "returned an awaitable" in pending.last_error


# -- an answer about another payment -------------------------------------------------------


class _Confused(FakeProvider):
    """Answers get_payment about another payment than the one asked for."""

    other: Payment | None = None

    def get_payment(self, payment_id: str) -> Payment:
        answer = super().get_payment(payment_id)
        return self.other if self.other is not None else answer


def test_an_answer_about_another_payment_is_refused_and_nothing_is_written(
    store_url: str,
) -> None:
    provider = _Confused(seed=12)
    side = paygate.connect(provider, store="memory://")
    mine = side.create_payment(order_id="ord_m", amount=usd("5"), payment_method="tok_visa")
    theirs = side.create_payment(order_id="ord_t", amount=usd("7"), payment_method="tok_visa")
    gw = paygate.connect(provider, store=store_url)
    provider.other = dataclasses.replace(theirs, raw=None)
    for call in (gw.get_payment, gw.refund, gw.cancel):
        with pytest.raises(ProviderError, match="answered about"):
            call(mine.id)
    assert gw.store.get_payment(mine.id) is None and gw.store.get_payment(theirs.id) is None
    assert gw.store.list_facts() == []


# -- the default store ----------------------------------------------------------------------


def test_connect_without_a_store_uses_sqlite_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAYGATE_STORE_URL", raising=False)
    monkeypatch.setattr(paygate.stores, "_announced", set())
    stripe = {"api_key": "sk_test_default_store_only"}
    with caplog.at_level(logging.INFO, logger="paygate"):
        gw = paygate.connect("stripe", **stripe)
        again = paygate.connect("stripe", **stripe)
    assert isinstance(gw.store, paygate.stores.SQLiteStore)
    assert Path(gw.store.path).resolve() == tmp_path / "paygate.db"
    said = [r.getMessage() for r in caplog.records if "no store given" in r.getMessage()]
    assert len(said) == 1 and str(tmp_path / "paygate.db") in said[0]  # once
    assert "sk_test" not in caplog.text
    record = gw.store.begin_operation(paygate.stores.OperationRecord("k", "op", "f", "p"))
    gw.close()
    # a restarted app server remembers its idempotency records (and events, facts)
    assert again.store.get_operation("k") == record
    again.close()
    for built in (
        Gateway.from_env({"PAYGATE_PROVIDER": "stripe", "PAYGATE_STRIPE_API_KEY": "sk_test_x"}),
        Gateway.from_config({"provider": "stripe", "stripe": stripe}),
        Gateway(paygate.create_provider("stripe", **stripe)),
    ):
        assert isinstance(built.store, paygate.stores.SQLiteStore)
        assert Path(built.store.path).resolve() == tmp_path / "paygate.db"
        built.close()
    assert isinstance(paygate.connect("stripe", store="memory://", **stripe).store,
                      paygate.stores.MemoryStore)  # fmt: skip
    monkeypatch.setenv("PAYGATE_STORE_URL", "memory://")
    assert isinstance(paygate.connect("stripe", **stripe).store, paygate.stores.MemoryStore)


def test_the_fake_provider_defaults_to_memory_as_it_forgets_its_payments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quickstart run twice in one directory: a SQLite default would replay the first
    run's payment, which the second run's fake provider never made."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAYGATE_STORE_URL", raising=False)
    for _ in range(2):
        gw = paygate.connect("fake")
        assert isinstance(gw.store, paygate.stores.MemoryStore)
        paid = gw.create_payment(order_id="ord_1", amount=usd("19.99"), payment_method="tok_visa")
        gw.refund(paid.id, amount=usd("5"))
        gw.close()
    assert not (tmp_path / "paygate.db").exists()


# -- the schema ---------------------------------------------------------------------------


def test_db_upgrade_brings_a_version_1_database_to_the_outbox(tmp_path: Path) -> None:
    from paygate.__main__ import main
    from paygate.stores._sql import MIGRATIONS, SCHEMA_VERSION
    from paygate.stores.sqlite import SQLITE

    db = tmp_path / "v1.db"
    with closing(sqlite3.connect(db)) as conn, conn:  # written by paygate with schema 1
        for statement in MIGRATIONS[1]:
            conn.execute(SQLITE.ddl(statement))
        conn.execute("INSERT INTO paygate_meta (key, value) VALUES ('schema_version', '1')")
    url = f"sqlite:///{db}"
    assert main(["db", "upgrade", "--store", url]) == 0
    with closing(sqlite3.connect(db)) as conn, conn:
        (version,) = conn.execute(
            "SELECT value FROM paygate_meta WHERE key = 'schema_version'"
        ).fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert int(version) == SCHEMA_VERSION and "paygate_facts" in tables
    gw = paygate.connect(FakeProvider(seed=13), store=url)
    heard = Heard(gw)
    gw.create_payment(order_id="ord_u", amount=usd("2"), payment_method="tok_visa")
    assert heard.types == [E.PAYMENT_SUCCEEDED]
    gw.close()


def test_a_fact_is_recorded_once_even_if_written_twice(store_url: str) -> None:
    gw = paygate.connect(FakeProvider(seed=14), store=store_url)
    gw.create_payment(order_id="ord_once", amount=usd("2"), payment_method="tok_visa")
    (fact,) = gw.store.list_facts()
    record = gw.store.get_payment(fact.payment_id)
    assert record is not None
    moved = dataclasses.replace(record, version=record.version + 1)
    gw.store.save_payment(moved, expected_version=record.version, facts=[fact])
    assert [f.id for f in gw.store.list_facts()] == [fact.id]


def test_no_database_file_is_written_into_the_checkout() -> None:
    assert os.environ.get("PAYGATE_STORE_URL") == "memory://"  # tests/conftest.py


def test_reconciliation_apply_tells_its_facts_as_reconcile(store_url: str) -> None:
    from paygate.reconcile import OrderRecord, ProviderRecord, reconcile

    ten = usd("10")
    gw = paygate.connect(FakeProvider(seed=15), store=store_url)
    heard = Heard(gw)
    # charged at the provider outside paygate's flow, for an order the books call unpaid
    stray = gw.provider.create_payment(
        order_id="o1", amount=ten, payment_method="tok_visa", idempotency_key="elsewhere"
    )
    record = ProviderRecord("fake", f"txn_{stray.id}", "payment", "succeeded", "o1", ten,  # type: ignore[arg-type]
                            payment_id=stray.id)  # fmt: skip
    report = reconcile([OrderRecord("o1", ten, "pending")], [record], apply=True, gateway=gw,
                       run_id="run-facts")  # fmt: skip
    assert [a.outcome for a in report.applied] == ["done"]
    assert [(f.type, f.source) for f in heard.facts] == [
        (E.PAYMENT_SUCCEEDED, "reconcile"),
        (E.REFUND_SUCCEEDED, "reconcile"),
    ]
    assert {t.source for t in gw.history(stray.id)} == {"reconcile"}


def test_a_refund_fact_carries_its_own_amount(store_url: str) -> None:
    gw = paygate.connect(FakeProvider(seed=16), store=store_url)
    heard = Heard(gw)
    payment = gw.create_payment(order_id="ord_amt", amount=usd("12"), payment_method="tok_visa")
    refund = gw.refund(payment.id, amount=usd("4.50"))
    captured, refunded = heard.facts
    assert captured.amount == usd("12") and refunded.amount == usd("4.50")
    stored = gw.facts(payment.id)
    assert [f.amount for f in stored] == [usd("12"), usd("4.50")]
    assert stored[1].refund_id == refund.id and stored[1].dispute_id is None


class _CapturesAnother(FakeProvider):
    """Answers capture_payment about another payment than the one captured."""

    other: Payment | None = None

    def capture_payment(self, payment_id: str, **kwargs: Any) -> Payment:
        answer = super().capture_payment(payment_id, **kwargs)
        return self.other if self.other is not None else answer


def test_a_capture_answered_about_another_payment_is_refused(store_url: str) -> None:
    provider = _CapturesAnother(seed=17)
    gw = paygate.connect(provider, store=store_url)
    held = gw.create_payment(order_id="ord_h", amount=usd("5"), payment_method="tok_visa",
                             capture="manual")  # fmt: skip
    other = gw.create_payment(order_id="ord_x", amount=usd("9"), payment_method="tok_visa")
    provider.other = dataclasses.replace(other, raw=None)
    before = (gw.store.get_payment(held.id), gw.store.get_payment(other.id), gw.facts(other.id))
    with pytest.raises(ProviderError, match="answered about"):
        gw.capture(held.id)
    after = (gw.store.get_payment(held.id), gw.store.get_payment(other.id), gw.facts(other.id))
    assert after == before
    assert after[0] is not None and after[0].status is S.AUTHORIZED


class _RefundsAnother(FakeProvider):
    """Answers refund_payment with a refund of another payment."""

    other: str | None = None

    def refund_payment(self, payment_id: str, **kwargs: Any) -> Any:
        answer = super().refund_payment(payment_id, **kwargs)
        return dataclasses.replace(answer, payment_id=self.other or answer.payment_id)


def test_a_refund_answered_about_another_payment_is_refused(store_url: str) -> None:
    provider = _RefundsAnother(seed=18)
    gw = paygate.connect(provider, store=store_url)
    paid = gw.create_payment(order_id="ord_ra", amount=usd("5"), payment_method="tok_visa")
    provider.other = "pay_someone_else"
    with pytest.raises(ProviderError, match="refund of 'pay_someone_else'"):
        gw.refund(paid.id, amount=usd("1"))
    record = gw.store.get_payment(paid.id)
    assert record is not None and record.status is S.SUCCEEDED and record.state.refunded == 0
    assert [f.type for f in gw.facts(paid.id)] == [E.PAYMENT_SUCCEEDED]


def test_a_finished_fact_says_when_its_payments_next_fact_is_due(store_url: str) -> None:
    gw = paygate.connect(FakeProvider(seed=19), store=store_url)  # no handler: all pending
    payment = gw.create_payment(order_id="ord_n", amount=usd("8"), payment_method="tok_visa")
    gw.refund(payment.id, amount=usd("3"))
    (first,) = gw.store.claim_facts(now=1.0, lease_seconds=30.0, limit=10)
    assert first.fact.type is E.PAYMENT_SUCCEEDED  # the refund waits behind it
    assert gw.store.claim_facts(now=1.0, lease_seconds=30.0, limit=10) == []
    assert gw.store.finish_fact(first, now=2.0) == (True, True)  # the refund is due now
    (second,) = gw.store.claim_facts(now=2.0, lease_seconds=30.0, limit=10)
    assert second.fact.type is E.REFUND_SUCCEEDED
    assert gw.store.finish_fact(second, now=3.0) == (True, False)
