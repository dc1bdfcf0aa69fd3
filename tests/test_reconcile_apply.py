"""apply=True through a Gateway on the fake provider: refunds happen once, ever."""

from __future__ import annotations

from typing import Any

import pytest

import paygate
from paygate import Money
from paygate.reconcile import (
    Action,
    Case,
    OrderRecord,
    ProviderRecord,
    ReconciliationLine,
    reconcile,
    refund_key,
)

TEN = Money.of("10.00", "USD")


def _as_record(payment: Any, order_id: str) -> ProviderRecord:
    return ProviderRecord(
        "fake", f"txn_{payment.id}", "payment", "succeeded", order_id, TEN,  # type: ignore[arg-type]
        payment_id=payment.id,
    )  # fmt: skip


@pytest.fixture
def books() -> Any:
    """A gateway, and a provider that took money the books do not expect."""
    gw = paygate.connect("fake")
    unpaid = gw.create_payment(order_id="o1", amount=TEN, payment_method="tok_visa")
    paid = gw.create_payment(order_id="o2", amount=TEN, payment_method="tok_visa")
    # the same order charged a second time at the provider, outside paygate's order flow
    extra = gw.provider.create_payment(
        order_id="o2", amount=TEN, payment_method="tok_visa", idempotency_key="elsewhere"
    )
    orders = [OrderRecord("o1", TEN, "pending"), OrderRecord("o2", TEN, "paid")]
    records = [_as_record(unpaid, "o1"), _as_record(paid, "o2"), _as_record(extra, "o2")]
    return gw, orders, records, unpaid, paid, extra


def test_dry_run_changes_nothing(books: Any) -> None:
    gw, orders, records, unpaid, _, extra = books
    report = reconcile(orders, records)
    assert report.counts == {Case.UNPAID_ORDER_CHARGED: 1, Case.DOUBLE_CHARGE: 1}
    assert report.applied == []
    assert gw.get_payment(unpaid.id).amount_refunded == Money(0, "USD")
    assert gw.get_payment(extra.id).amount_refunded == Money(0, "USD")


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

    # the same run again, and a new run on the same (stale) report: nothing more is refunded
    for run_id in ("run-1", "run-2"):
        again = reconcile(orders, records, apply=True, gateway=gw, run_id=run_id)
        assert {a.outcome for a in again.applied} == {"already_done"}
    assert gw.provider.calls["refund_payment"] == refunds_sent
    assert gw.get_payment(unpaid.id).amount_refunded == TEN


def test_a_rerun_that_cannot_see_the_first_refund_reuses_its_idempotency_key(
    books: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run's refund went through but its answer was lost: the provider's view
    is stale. The re-run sends the same key, so the provider answers with the same refund."""
    gw, orders, records, unpaid, _, _ = books
    stale = {p.id: gw.get_payment(p.id) for p in (unpaid,)}
    first = reconcile(orders[:1], records[:1], apply=True, gateway=gw, run_id="run-1")
    assert first.applied[0].outcome == "done"

    real_get = gw.get_payment
    monkeypatch.setattr(gw, "get_payment", lambda pid: stale.get(pid) or real_get(pid))
    again = reconcile(orders[:1], records[:1], apply=True, gateway=gw, run_id="run-1")
    assert again.applied[0].outcome == "done"  # answered from the first refund
    assert again.applied[0].detail == first.applied[0].detail
    monkeypatch.undo()
    assert gw.get_payment(unpaid.id).amount_refunded == TEN  # one refund, not two


def test_non_money_actions_go_to_the_handler(books: Any) -> None:
    gw, _, _, unpaid, _, _ = books
    seen: list[ReconciliationLine] = []
    orders = [OrderRecord("o1", TEN, "pending")]
    records = [_as_record(unpaid, "o1")]
    policy = paygate.reconcile.Policy(unpaid_order_charged="mark_paid")
    report = reconcile(
        orders, records, policy=policy, apply=True, gateway=gw, run_id="r", on_action=seen.append
    )
    assert [line.order_id for line in seen] == ["o1"]
    assert report.applied[0].action is Action.MARK_PAID and report.applied[0].outcome == "done"
    assert gw.get_payment(unpaid.id).amount_refunded == Money(0, "USD")

    unhandled = reconcile(orders, records, policy=policy, apply=True, gateway=gw, run_id="r")
    assert unhandled.applied[0].outcome == "skipped"
