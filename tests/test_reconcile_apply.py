"""apply=True through a Gateway on the fake provider: refunds happen once, ever; every
action is recorded in the gateway's store (memory, SQLite, PostgreSQL) and a re-run of
the same run does not do again what it finished."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import Money
from paygate.reconcile import (
    Action,
    ActionRecord,
    Case,
    OrderRecord,
    ProviderRecord,
    ReconciliationLine,
    action_key,
    applied_actions,
    reconcile,
    refund_key,
)
from paygate.stores import OperationStatus
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

TEN = Money.of("10.00", "USD")


def _as_record(payment: Any, order_id: str) -> ProviderRecord:
    return ProviderRecord(
        "fake", f"txn_{payment.id}", "payment", "succeeded", order_id, TEN,  # type: ignore[arg-type]
        payment_id=payment.id,
    )  # fmt: skip


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'paygate.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def gw(store_url: str) -> Iterator[paygate.Gateway]:
    ticks = itertools.count(1_000_000)
    gateway = paygate.connect("fake", store=store_url, clock=lambda: float(next(ticks)))
    yield gateway
    gateway.close()


@pytest.fixture
def books(gw: paygate.Gateway) -> Any:
    """A gateway, and a provider that took money the books do not expect."""
    unpaid = gw.create_payment(order_id="o1", amount=TEN, payment_method="tok_visa")
    paid = gw.create_payment(order_id="o2", amount=TEN, payment_method="tok_visa")
    # the same order charged a second time at the provider, outside paygate's order flow
    extra = gw.provider.create_payment(
        order_id="o2", amount=TEN, payment_method="tok_visa", idempotency_key="elsewhere"
    )
    orders = [OrderRecord("o1", TEN, "pending"), OrderRecord("o2", TEN, "paid")]
    records = [_as_record(unpaid, "o1"), _as_record(paid, "o2"), _as_record(extra, "o2")]
    return gw, orders, records, unpaid, paid, extra


def _records(gw: Any, run_id: str) -> list[tuple[str | None, Action, str, int]]:
    return [(r.order_id, r.action, r.outcome, r.attempt) for r in applied_actions(gw.store, run_id)]


def test_dry_run_changes_nothing(books: Any) -> None:
    gw, orders, records, unpaid, _, extra = books
    report = reconcile(orders, records, run_id="run-1")
    assert report.counts == {Case.UNPAID_ORDER_CHARGED: 1, Case.DOUBLE_CHARGE: 1}
    assert report.applied == []
    assert gw.get_payment(unpaid.id).amount_refunded == Money(0, "USD")
    assert gw.get_payment(extra.id).amount_refunded == Money(0, "USD")
    assert gw.store.list_operations("reconcile:") == []  # nothing written
    assert applied_actions(gw.store, "run-1") == []


def test_apply_refunds_the_unexpected_charges_once_across_reruns(books: Any) -> None:
    gw, orders, records, unpaid, paid, extra = books
    first = reconcile(orders, records, apply=True, gateway=gw, run_id="run-1")
    assert [(a.order_id, a.action, a.outcome) for a in first.applied] == [
        ("o1", Action.REFUND, "done"),
        ("o2", Action.REFUND, "done"),
    ]
    assert first.applied[0].idempotency_key == refund_key("run-1", "o1", unpaid.id)
    assert gw.get_payment(unpaid.id).amount_refunded == TEN
    assert gw.get_payment(extra.id).amount_refunded == TEN
    assert gw.get_payment(paid.id).amount_refunded == Money(0, "USD")  # the kept charge
    refunds_sent = gw.provider.calls["refund_payment"]
    lookups = gw.provider.calls["get_payment"]

    # the same run again: answered from the store's record, not even a payment lookup
    again = reconcile(orders, records, apply=True, gateway=gw, run_id="run-1")
    assert [(a.outcome, a.detail) for a in again.applied] == [
        ("already_done", a.detail) for a in first.applied
    ]
    assert [a.idempotency_key for a in again.applied] == [a.idempotency_key for a in first.applied]
    assert gw.provider.calls["get_payment"] == lookups

    # a new run on the same (stale) report: the payments are refunded, nothing is sent
    other = reconcile(orders, records, apply=True, gateway=gw, run_id="run-2")
    assert {a.outcome for a in other.applied} == {"already_done"}
    assert gw.provider.calls["refund_payment"] == refunds_sent
    assert gw.get_payment(unpaid.id).amount_refunded == TEN

    logged = applied_actions(gw.store, "run-1")
    assert [(r.run_id, r.order_id, r.action, r.payment_id, r.outcome, r.attempt)
            for r in logged] == [
        ("run-1", "o1", Action.REFUND, unpaid.id, "done", 1),
        ("run-1", "o2", Action.REFUND, extra.id, "done", 1),
    ]  # fmt: skip
    assert logged[0].idempotency_key == refund_key("run-1", "o1", unpaid.id)
    assert logged[0].detail == first.applied[0].detail and "of 10.00 USD" in logged[0].detail
    assert 1_000_000 <= logged[0].started_at < logged[0].updated_at <= logged[1].started_at
    assert logged[0].recorded.tzinfo is not None
    assert _records(gw, "run-2") == [
        ("o1", Action.REFUND, "already_done", 1),
        ("o2", Action.REFUND, "already_done", 1),
    ]


class Crash(BaseException):
    """The process dies (not an ``Exception``: nothing on the way catches it)."""


def test_a_refund_whose_run_died_before_recording_it_is_retried_with_the_same_key(
    books: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run's refund went through, then the run died before recording it, and
    the provider's view is stale: the re-run sends the same key, so the provider answers
    with the same refund instead of a second one."""
    gw, orders, records, unpaid, _, _ = books
    stale = {p.id: gw.get_payment(p.id) for p in (unpaid,)}
    real_finish = gw.store.finish_operation

    def die_on_reconcile_records(key: str, **kwargs: Any) -> None:
        if key.startswith("reconcile:"):
            raise Crash
        real_finish(key, **kwargs)

    monkeypatch.setattr(gw.store, "finish_operation", die_on_reconcile_records)
    with pytest.raises(Crash):
        reconcile(orders[:1], records[:1], apply=True, gateway=gw, run_id="run-1")
    monkeypatch.undo()
    assert gw.get_payment(unpaid.id).amount_refunded == TEN  # the refund did happen
    (pending,) = applied_actions(gw.store, "run-1")
    assert (pending.outcome, pending.attempt, pending.detail) == ("pending", 1, "")
    refunds_sent = gw.provider.calls["refund_payment"]

    real_get = gw.get_payment
    monkeypatch.setattr(gw, "get_payment", lambda pid: stale.get(pid) or real_get(pid))
    again = reconcile(orders[:1], records[:1], apply=True, gateway=gw, run_id="run-1")
    monkeypatch.undo()
    assert again.applied[0].outcome == "done"  # answered from the first refund
    assert again.applied[0].idempotency_key == refund_key("run-1", "o1", unpaid.id)
    assert gw.provider.calls["refund_payment"] == refunds_sent  # the Gateway replayed it
    assert gw.get_payment(unpaid.id).amount_refunded == TEN  # one refund, not two
    assert _records(gw, "run-1") == [("o1", Action.REFUND, "done", 2)]


MARK_PAID = paygate.reconcile.Policy(unpaid_order_charged="mark_paid")


def _mark_paid(books: Any) -> tuple[Any, list[OrderRecord], list[ProviderRecord]]:
    gw, _, _, unpaid, _, _ = books
    return gw, [OrderRecord("o1", TEN, "pending")], [_as_record(unpaid, "o1")]


def test_non_money_actions_go_to_the_handler_once_per_run(books: Any) -> None:
    gw, orders, records = _mark_paid(books)
    unpaid = books[3]
    seen: list[ReconciliationLine] = []

    def run(run_id: str, handler: Any = seen.append) -> Any:
        return reconcile(orders, records, policy=MARK_PAID, apply=True, gateway=gw,
                         run_id=run_id, on_action=handler)  # fmt: skip

    report = run("r")
    assert [line.order_id for line in seen] == ["o1"]
    assert report.applied[0].action is Action.MARK_PAID and report.applied[0].outcome == "done"
    assert report.applied[0].idempotency_key == action_key("r", "o1", Action.MARK_PAID)
    assert gw.get_payment(unpaid.id).amount_refunded == Money(0, "USD")

    # the same run again: the handler is not called, with or without one
    assert run("r").applied[0].outcome == "already_done"
    assert run("r", handler=None).applied[0].outcome == "already_done"
    assert len(seen) == 1
    (logged,) = applied_actions(gw.store, "r")
    assert isinstance(logged, ActionRecord)
    assert dataclasses.astuple(logged)[:8] == (
        "r",
        "o1",
        Action.MARK_PAID,
        "done",
        "",
        action_key("r", "o1", Action.MARK_PAID),
        None,
        1,
    )

    # a new run id is a new decision: the books' actions are handed over again
    assert run("r2").applied[0].outcome == "done"
    assert len(seen) == 2
    # no handler, nothing done: skipped, and nothing recorded for that run
    assert run("r3", handler=None).applied[0].outcome == "skipped"
    assert applied_actions(gw.store, "r3") == []
    assert gw.get_payment(unpaid.id).amount_refunded == Money(0, "USD")


def test_a_handler_that_raised_is_retried_by_the_next_run_and_then_recorded_done(
    books: Any,
) -> None:
    gw, orders, records = _mark_paid(books)
    calls: list[str | None] = []

    def flaky(line: ReconciliationLine) -> None:
        calls.append(line.order_id)
        if len(calls) == 1:
            raise RuntimeError("order system down")

    def run() -> Any:
        return reconcile(orders, records, policy=MARK_PAID, apply=True, gateway=gw,
                         run_id="r", on_action=flaky)  # fmt: skip

    first = run()
    assert (first.applied[0].outcome, first.applied[0].detail) == (
        "failed",
        "RuntimeError: order system down",
    )
    (failed,) = applied_actions(gw.store, "r")
    assert (failed.outcome, failed.detail, failed.attempt) == (
        "failed",
        "RuntimeError: order system down",
        1,
    )
    op = gw.store.list_operations("reconcile:r:")[0]
    assert (op.status, op.error_code) == (OperationStatus.FAILED, "RuntimeError")

    assert run().applied[0].outcome == "done"
    assert _records(gw, "r") == [("o1", Action.MARK_PAID, "done", 2)]
    assert run().applied[0].outcome == "already_done"
    assert calls == ["o1", "o1"]


def test_an_action_begun_but_never_finished_is_handed_over_again(books: Any) -> None:
    """The run died inside ``on_action`` (or before recording its outcome): the record
    stays pending and the next run calls the handler again -- which is why ``on_action``
    must be idempotent itself."""
    gw, orders, records = _mark_paid(books)
    calls: list[str | None] = []

    def dies(line: ReconciliationLine) -> None:
        calls.append(line.order_id)
        raise Crash

    with pytest.raises(Crash):
        reconcile(orders, records, policy=MARK_PAID, apply=True, gateway=gw, run_id="r",
                  on_action=dies)  # fmt: skip
    assert _records(gw, "r") == [("o1", Action.MARK_PAID, "pending", 1)]

    again = reconcile(orders, records, policy=MARK_PAID, apply=True, gateway=gw, run_id="r",
                      on_action=lambda line: calls.append(line.order_id))  # fmt: skip
    assert again.applied[0].outcome == "done"
    assert calls == ["o1", "o1"]
    (logged,) = applied_actions(gw.store, "r")
    assert (logged.outcome, logged.attempt) == ("done", 2)
    assert logged.started_at < logged.updated_at  # first begun by the run that died


def test_run_and_order_ids_cannot_run_into_each_other(books: Any) -> None:
    gw, _, _, unpaid, _, _ = books
    seen: list[str] = []
    for run_id, order_id in (("a", "b:c"), ("a:b", "c"), ("a%3Ab", "c")):
        report = reconcile([OrderRecord(order_id, TEN, "pending")], [_as_record(unpaid, order_id)],
                           policy=MARK_PAID, apply=True, gateway=gw, run_id=run_id,
                           on_action=lambda line, r=run_id: seen.append(f"{r}/{line.order_id}"))  # fmt: skip
        assert report.applied[0].outcome == "done"
    assert seen == ["a/b:c", "a:b/c", "a%3Ab/c"]
    assert [(r.run_id, r.order_id) for r in applied_actions(gw.store, "a:b")] == [("a:b", "c")]
    assert [(r.run_id, r.order_id) for r in applied_actions(gw.store, "a")] == [("a", "b:c")]


def test_a_gateway_without_a_store_records_nothing(books: Any) -> None:
    """A duck-typed gateway (no ``store``): actions are carried out as before, unrecorded."""
    gw, orders, records = _mark_paid(books)
    seen: list[ReconciliationLine] = []

    class Bare:
        def get_payment(self, payment_id: str) -> Any:
            return gw.get_payment(payment_id)

    for _ in range(2):
        report = reconcile(orders, records, policy=MARK_PAID, apply=True, gateway=Bare(),
                           run_id="r", on_action=seen.append)  # fmt: skip
        assert report.applied[0].outcome == "done"
    assert len(seen) == 2
    assert gw.store.list_operations("reconcile:") == []


def test_a_dry_run_does_not_import_the_stores() -> None:
    """`import paygate.reconcile` leaves `paygate.stores` unimported (it costs as much CPU
    as the rest of the package; only ``apply=True`` and `applied_actions` need it)."""
    import subprocess
    import sys

    code = "import sys, paygate.reconcile; print('paygate.stores' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
