"""The SQLite store's recent payments (``RecentPayments``): an event of a payment this
store wrote or read a moment ago starts from that record, seen at the row's version in
the event's transaction, instead of decoding the row's JSON (issue 21: CPU per webhook).
The record must be the row itself, and never a stale copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import PaymentStatus
from paygate.providers.fake import FakeProvider
from paygate.stores import StoreConflict, _sql
from paygate.stores._records import EventPlan
from paygate.stores.sqlite import SQLiteStore
from tests.test_gateway_webhooks import paid_payment_events

S = PaymentStatus


def _decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The payment rows decoded from now on (by id)."""
    decoded: list[str] = []
    original = _sql.payment_from_row

    def counted(row: Any) -> Any:
        decoded.append(row[0])
        return original(row)

    monkeypatch.setattr(_sql, "payment_from_row", counted)
    return decoded


def test_the_next_event_of_a_payment_decodes_no_row_and_sees_it_as_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=f"sqlite:///{tmp_path / 's.db'}")
    assert isinstance(gw.store, SQLiteStore)
    pid, deliveries = paid_payment_events(provider)
    decoded = _decodes(monkeypatch)
    statuses = []
    for d in deliveries:
        result = gw.handle_webhook(d.body, d.headers)
        assert result.changed
        statuses.append(result.status)
        # what the next event starts from is what a read of the row gives
        assert gw.store._recent.get(pid) == gw.store.get_payment(pid)
    assert statuses == [S.PENDING, S.PROCESSING, S.SUCCEEDED, S.PARTIALLY_REFUNDED,
                        S.PARTIALLY_REFUNDED]  # fmt: skip
    # only the get_payment calls above decoded a row; no event did
    assert decoded == [pid] * len(deliveries)
    gw.close()


def test_a_payment_another_worker_moved_on_is_read_from_its_row(tmp_path: Path) -> None:
    """Worker A wrote the payment's creation; worker B (another store on the same file)
    applied the next events. A's next event is decided on the row as B left it, not on
    A's copy: a refund of a payment A last saw pending is applied, not rejected."""
    provider = FakeProvider(seed=1)
    url = f"sqlite:///{tmp_path / 's.db'}"
    gw_a, gw_b = paygate.connect(provider, store=url), paygate.connect(provider, store=url)
    pid, deliveries = paid_payment_events(provider)
    assert gw_a.handle_webhook(deliveries[0].body, deliveries[0].headers).status is S.PENDING
    assert isinstance(gw_a.store, SQLiteStore)
    mine = gw_a.store._recent.get(pid)
    assert mine is not None and mine.status is S.PENDING
    for d in deliveries[1:3]:
        assert gw_b.handle_webhook(d.body, d.headers).changed
    # an event that writes no payment is decided on the row too (no compare-and-set
    # would catch a decision made on A's copy)
    seen: list[Any] = []

    def unchanged(current: Any) -> EventPlan:
        seen.append(current)
        return EventPlan("unchanged", finish=True)

    gw_a.store.ingest_event(
        "fake", "evt_other", event_type="payment.created", provider_type="payment.created",
        payment_id=pid, payload={}, occurred_at=None, now=1.0, lease_seconds=30.0,
        decide=unchanged,
    )  # fmt: skip
    assert seen == [gw_b.store.get_payment(pid)] and seen[0].status is S.SUCCEEDED
    refund = gw_a.handle_webhook(deliveries[3].body, deliveries[3].headers)
    assert refund.outcome == "applied" and refund.error is None
    assert (refund.previous_status, refund.status) == (S.SUCCEEDED, S.PARTIALLY_REFUNDED)
    assert gw_a.store._recent.get(pid) == gw_a.store.get_payment(pid)
    gw_a.close()
    gw_b.close()


def test_a_transaction_that_rolls_back_forgets_the_payment(tmp_path: Path) -> None:
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=f"sqlite:///{tmp_path / 's.db'}")
    store = gw.store
    assert isinstance(store, SQLiteStore)
    pid, deliveries = paid_payment_events(provider)
    gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
    current = store._recent.get(pid)
    assert current is not None
    lost = EventPlan("applied", finish=True, record=current, expected_version=current.version + 5)
    with pytest.raises(StoreConflict):
        store.ingest_event(
            "fake", "evt_lost", event_type="payment.created", provider_type="payment.created",
            payment_id=pid, payload={}, occurred_at=None, now=1.0, lease_seconds=30.0,
            decide=lambda read: lost,
        )  # fmt: skip
    assert store._recent.get(pid) is None
    gw.close()


def test_a_group_commit_batch_neither_uses_nor_keeps_recent_payments(tmp_path: Path) -> None:
    """Inside ``_batch`` a write is not committed when its block ends (the batch may
    still be undone): its payments are not kept."""
    provider = FakeProvider(seed=1)
    gw = paygate.connect(provider, store=f"sqlite:///{tmp_path / 's.db'}")
    store = gw.store
    assert isinstance(store, SQLiteStore)
    pid, deliveries = paid_payment_events(provider)
    with store._batch():
        gw.handle_webhook(deliveries[0].body, deliveries[0].headers)
        assert store._recent.get(pid) is None
    gw.handle_webhook(deliveries[1].body, deliveries[1].headers)
    assert store._recent.get(pid) == store.get_payment(pid)
    gw.close()
