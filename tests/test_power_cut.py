"""A power cut between the provider call and the answer's commit (issue 21).

``Gateway.create_payment`` writes its pending idempotency record before the provider call
as bookkeeping: on SQLite ``FULL`` a commit without a sync of its own (``synchronous=NORMAL``
for that transaction). A killed process never loses it; a power cut can, until the next
durable commit -- the one that records the answer -- carries it to the disk. The claim
checked here: losing it costs no second charge, because the provider key is a function
of the order, the operation, the attempt and the amount, so the retry sends the same key
and the provider answers it once.

A power cut is simulated the way it looks afterwards: the database as of the last durable
commit (a consistent copy taken with SQLite's backup API before the call, the unsynced
bookkeeping commit not in it), and the process gone mid-call (the answer's transaction
never committed). The fake provider is the provider: it outlives the cut.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import Money
from paygate.providers.fake import FakeProvider
from paygate.stores import OperationStatus
from paygate.stores.sqlite import SQLiteStore


class PowerCut(BaseException):
    """The machine lost power: nothing after this point happened."""


class KeyLog(FakeProvider):
    """The fake provider, logging the idempotency key of every create_payment."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.keys: list[str] = []

    def create_payment(self, **kwargs: Any) -> paygate.Payment:
        self.keys.append(kwargs["idempotency_key"])
        return super().create_payment(**kwargs)


def _durable_copy(live: Path, copy: Path) -> None:
    """The database as of now (every commit so far), into ``copy``."""
    src, dst = sqlite3.connect(live), sqlite3.connect(copy)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def _cut_during_answer(gw: paygate.Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """The power goes after the provider answered, before the answer is committed."""

    def cut(*args: Any, **kwargs: Any) -> None:
        raise PowerCut

    monkeypatch.setattr(gw.store, "save_answer", cut)


def _charges(provider: FakeProvider, order_id: str) -> list[paygate.Payment]:
    return [p for p in provider.payments() if p.order_id == order_id]


def test_pending_record_lost_to_a_power_cut_the_retry_sends_the_same_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = KeyLog(seed=11)
    live, durable = tmp_path / "live.db", tmp_path / "durable.db"
    gw = paygate.connect(provider, store=f"sqlite:///{live}")
    assert isinstance(gw.store, SQLiteStore) and gw.store.synchronous == "FULL"
    gw.create_payment(order_id="before", amount=Money(700, "EUR"), payment_method="tok_visa")
    _durable_copy(live, durable)  # the last durable commit: the call before
    _cut_during_answer(gw, monkeypatch)
    with pytest.raises(PowerCut):
        gw.create_payment(order_id="o1", amount=Money(1999, "EUR"), payment_method="tok_visa")
    assert len(_charges(provider, "o1")) == 1  # the provider charged
    monkeypatch.undo()
    gw.close()

    # after the restart: the pending record is gone with the unsynced commit
    gw = paygate.connect(provider, store=f"sqlite:///{durable}")
    try:
        assert gw.store.get_operation("create_payment:o1") is None
        payment = gw.create_payment(
            order_id="o1", amount=Money(1999, "EUR"), payment_method="tok_visa"
        )
        assert provider.keys[-1] == provider.keys[-2]  # the same key, recomputed
        assert [p.id for p in _charges(provider, "o1")] == [payment.id]  # charged once
        op = gw.store.get_operation("create_payment:o1")
        assert op is not None and op.status is OperationStatus.SUCCEEDED
        assert op.result_id == payment.id and op.attempt == 1
        assert gw.store.get_payment(payment.id) is not None
    finally:
        gw.close()


def test_new_attempt_lost_to_a_power_cut_starts_again_with_the_same_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attempt 1 declined (durably FAILED); attempt 2's record -- ``replace_operation``,
    bookkeeping too -- is lost with its answer: the store shows attempt 1 failed, so the
    retry starts attempt 2 again, with attempt 2's key."""
    provider = KeyLog(seed=12)
    live, durable = tmp_path / "live.db", tmp_path / "durable.db"
    gw = paygate.connect(provider, store=f"sqlite:///{live}")
    with pytest.raises(paygate.CardDeclined):
        gw.create_payment(order_id="o2", amount=Money(2500, "EUR"), payment_method="tok_declined")
    _durable_copy(live, durable)  # the decline's end is a durable commit
    _cut_during_answer(gw, monkeypatch)
    with pytest.raises(PowerCut):
        gw.create_payment(order_id="o2", amount=Money(2500, "EUR"), payment_method="tok_visa")
    lost_key = provider.keys[-1]
    assert lost_key != provider.keys[0]  # attempt 2's own key
    monkeypatch.undo()
    gw.close()

    gw = paygate.connect(provider, store=f"sqlite:///{durable}")
    try:
        op = gw.store.get_operation("create_payment:o2")
        assert op is not None and op.attempt == 1 and op.status is OperationStatus.FAILED
        payment = gw.create_payment(
            order_id="o2", amount=Money(2500, "EUR"), payment_method="tok_visa"
        )
        assert provider.keys[-1] == lost_key
        charged = [p for p in _charges(provider, "o2") if p.status.value == "succeeded"]
        assert [p.id for p in charged] == [payment.id]  # one charge, not two
        op = gw.store.get_operation("create_payment:o2")
        assert op is not None and op.attempt == 2 and op.status is OperationStatus.SUCCEEDED
    finally:
        gw.close()


def test_answer_and_attempt_end_commit_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cut while the answer's transaction runs leaves neither half: the record stays
    pending (the retry re-sends its key), never succeeded without its payment row."""
    provider = KeyLog(seed=13)
    gw = paygate.connect(provider, store=f"sqlite:///{tmp_path / 'store.db'}")
    store = gw.store
    assert isinstance(store, SQLiteStore)
    real = SQLiteStore._write_payment

    def cut_after_first_statement(self: SQLiteStore, *args: Any, **kwargs: Any) -> None:
        raise PowerCut  # the attempt's end was executed, the payment row not yet

    monkeypatch.setattr(SQLiteStore, "_write_payment", cut_after_first_statement)
    with pytest.raises(PowerCut):
        gw.create_payment(order_id="o3", amount=Money(900, "EUR"), payment_method="tok_visa")
    monkeypatch.setattr(SQLiteStore, "_write_payment", real)
    op = store.get_operation("create_payment:o3")
    assert op is not None and op.status is OperationStatus.PENDING  # rolled back together
    assert store.payments_for_order("o3") == []
    payment = gw.create_payment(order_id="o3", amount=Money(900, "EUR"), payment_method="tok_visa")
    assert provider.keys[-1] == provider.keys[-2]
    assert [p.id for p in _charges(provider, "o3")] == [payment.id]
    gw.close()


def test_a_webhook_answered_200_survives_a_power_cut_during_its_fact_handlers(
    tmp_path: Path,
) -> None:
    """A new ``payment.succeeded``: its ingest commits the transition and the fact,
    already claimed by this worker, durably; the power goes while the fact's handler
    runs (the database as of that commit). After the claim's lease the fact is due
    again and its handler runs once more -- the transition is not applied twice."""
    from paygate import EventType

    provider = FakeProvider(seed=11, webhook_secret="whsec_cut", webhook_tolerance=86_400)
    payment = provider.create_payment(order_id="o-cut", amount=Money(900, "EUR"),
                                      payment_method="tok_visa", idempotency_key="k")  # fmt: skip
    created, succeeded = provider.take_webhooks()
    live, copy = tmp_path / "live.db", tmp_path / "after-the-cut.db"
    now = [1_000.0]
    gw = paygate.connect(provider, store=f"sqlite:///{live}")
    gw.clock = lambda: now[0]

    def handler(fact: Any) -> None:
        _durable_copy(live, copy)  # what the disk holds: every commit before the handler
        raise PowerCut

    gw.on(EventType.PAYMENT_SUCCEEDED)(handler)
    gw.handle_webhook(created.body, created.headers)
    with pytest.raises(PowerCut):
        gw.handle_webhook(succeeded.body, succeeded.headers)
    gw.close()

    after = paygate.connect(provider, store=f"sqlite:///{copy}")
    after.clock = lambda: now[0]
    heard: list[str] = []
    after.on(EventType.PAYMENT_SUCCEEDED)(lambda fact: heard.append(fact.id))
    try:
        stored = after.store.get_payment(payment.id)
        assert stored is not None and stored.status.value == "succeeded"
        (fact,) = after.store.list_facts(pending=True)
        assert fact.attempts == 1  # claimed by the ingest that recorded it
        assert after.dispatch_pending().done == 0  # the dead worker's lease still runs
        now[0] += after.webhook_lease + 1
        assert after.dispatch_pending().done == 1
        assert heard == [fact.id]
        # the provider's redelivery of the event changes nothing
        assert after.handle_webhook(succeeded.body, succeeded.headers).duplicate
        assert [t.new_status.value for t in after.history(payment.id)] == [
            "pending", "succeeded"]  # fmt: skip
    finally:
        after.close()
