"""The payment state machine: every status x every trigger, scenarios, webhook mapping, docs.

Regenerate the diagram in docs/state-machine.md after changing the table::

    python -m tests.test_state --write
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from paygate import (
    Dispute,
    DisputeStatus,
    EventType,
    InvalidTransition,
    Money,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
    WebhookEvent,
)
from paygate.providers.fake import FakeProvider
from paygate.state import (
    DISPUTE_RULES,
    REFUND_RULES,
    TABLE,
    TERMINAL,
    PaymentEvent,
    PaymentState,
    Step,
    Trigger,
    apply,
    apply_all,
    event_for_status,
    event_from_webhook,
    events_for_answer,
    state_of,
    to_mermaid,
)
from paygate.testing import FakeClock
from tests._state_reference import (
    MONEY_NEWS,
    Impossible,
    RefPayment,
    consistent,
    expected_outcome,
)

S, T = PaymentStatus, Trigger
DOCS_PAGE = Path(__file__).resolve().parent.parent / "docs" / "state-machine.md"
AMOUNT = 1000


def representative(status: PaymentStatus) -> PaymentState:
    """A typical payment in ``status``, with amounts that fit it."""
    if status in (S.SUCCEEDED, S.CHARGED_BACK):
        return PaymentState(status, AMOUNT, captured=AMOUNT)
    if status is S.PARTIALLY_REFUNDED:
        return PaymentState(
            status, AMOUNT, captured=AMOUNT, refunded=300, refund_ids=frozenset({"re_0"})
        )
    if status is S.REFUNDED:
        return PaymentState(
            status, AMOUNT, captured=AMOUNT, refunded=AMOUNT, refund_ids=frozenset({"re_0"})
        )
    if status is S.DISPUTED:
        return PaymentState(status, AMOUNT, captured=AMOUNT, before_dispute=S.SUCCEEDED)
    return PaymentState(status, AMOUNT)


def as_reference(state: PaymentState) -> RefPayment:
    return RefPayment(
        state.status,
        state.amount,
        state.captured,
        state.refunded,
        frozenset(state.refund_ids),
        state.before_dispute,
        state.as_of,
        state.capture_implied,
        frozenset(state.reversed_refund_ids),
        state.disputes,
        state.pinned_loss,
    )


def same(got: PaymentState, model: RefPayment) -> bool:
    return as_reference(got) == model


def event_for(trigger: Trigger) -> PaymentEvent:
    """News of ``trigger`` that no id ties to a refund or dispute the payment knows."""
    if trigger is T.REFUNDED:
        return PaymentEvent(trigger, amount=100, ref="re_new")
    if trigger is T.REFUND_REVERSED:
        return PaymentEvent(trigger, amount=100, ref="re_new")
    return PaymentEvent(trigger)


def events_for(state: PaymentState, trigger: Trigger) -> list[PaymentEvent]:
    """Every shape of news of ``trigger`` worth trying on ``state``: without an id, with a
    new id, with each id the state knows, and (for payment events) at times before, at
    and after the state's own."""
    events = [event_for(trigger)]
    if trigger in (T.REFUNDED, T.REFUND_REVERSED):
        events.append(PaymentEvent(trigger, amount=100))
        for ref in sorted(state.refund_ids | state.reversed_refund_ids):
            events.append(PaymentEvent(trigger, amount=100, ref=ref))
    elif trigger in (T.DISPUTE_OPENED, T.DISPUTE_WON, T.DISPUTE_LOST):
        events.append(PaymentEvent(trigger, ref="dp_new"))
        events.extend(PaymentEvent(trigger, ref=ref) for ref, _ in state.disputes if ref)
    else:
        for at in (None, 5.0, 10.0, 15.0):
            events.append(PaymentEvent(trigger, at=at))
        if trigger is T.SUCCEEDED:
            events.append(PaymentEvent(trigger, amount=600))
    return events


# -- every status x every trigger ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "trigger"),
    list(itertools.product(PaymentStatus, Trigger)),
    ids=lambda value: str(value),
)
def test_every_status_every_trigger(status: PaymentStatus, trigger: Trigger) -> None:
    for state in variants(status):
        for event in events_for(state, trigger):
            check_cell(state, event)


def variants(status: PaymentStatus) -> list[PaymentState]:
    """The representative state, plus the other shapes a payment in ``status`` can have:
    amounts, refunds counted and failed, disputes known by id, an implied capture, a
    provider time."""
    base = representative(status)
    states = [base, replace(base, as_of=10.0)]
    if status is S.SUCCEEDED:
        states.append(PaymentState(status, AMOUNT, captured=600))  # partially captured
    if status in (S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED, S.CHARGED_BACK):
        states.append(replace(base, capture_implied=True))
        states.append(replace(base, reversed_refund_ids=frozenset({"re_gone"})))
        won = (("dp_1", DisputeStatus.WON),)
        states.append(replace(base, disputes=won))
    if status is S.DISPUTED:
        for refunded, prior in ((300, S.PARTIALLY_REFUNDED), (AMOUNT, S.REFUNDED)):
            states.append(
                PaymentState(
                    status, AMOUNT, captured=AMOUNT, refunded=refunded, before_dispute=prior
                )
            )
        opened = (("dp_1", DisputeStatus.OPEN),)
        states.append(replace(base, disputes=opened))
        two = (("dp_1", DisputeStatus.OPEN), ("dp_2", DisputeStatus.OPEN))
        states.append(replace(base, disputes=two))
        states.append(replace(base, disputes=(("", DisputeStatus.OPEN),)))
    if status is S.CHARGED_BACK:
        states.append(replace(base, disputes=(("dp_1", DisputeStatus.LOST),)))
        states.append(
            replace(base, disputes=(("dp_1", DisputeStatus.LOST), ("dp_2", DisputeStatus.OPEN)))
        )
    return states


def check_cell(state: PaymentState, event: PaymentEvent) -> None:
    """``apply`` and the reference model agree on ``event`` in ``state``: the outcome,
    the next state (every field) and the facts told, or both find it impossible."""
    reference = as_reference(state)
    try:
        expected, after, facts = reference.step(event.trigger, event.amount, event.ref, event.at)
    except Impossible:
        with pytest.raises(InvalidTransition) as caught:
            apply(state, event)
        status, trigger = state.status, event.trigger
        assert (caught.value.status, caught.value.trigger) == (status.value, trigger.value)
        assert status.value in str(caught.value) and trigger.value in str(caught.value)
        return
    step = apply(state, event)
    assert step.result == expected, (state, event)
    assert step.changed is (expected == "applied")
    if expected != "applied":
        assert step.state is state  # a no-op returns the very same state
        assert step.applied == ()
        return
    assert same(step.state, after), (state, event, step.state, after)
    assert [(e.trigger, e.ref) for e in step.applied] == facts, (state, event)
    got = step.state
    assert consistent(got.status, got.amount, got.captured, got.refunded)
    # no event ever undoes what the state knows by id
    assert state.reversed_refund_ids <= got.reversed_refund_ids
    assert not (got.refund_ids & got.reversed_refund_ids)


def test_new_news_follows_the_prose_classification() -> None:
    """The table's cells against the reference's outcome classes, cell by cell."""
    for status, trigger in itertools.product(PaymentStatus, Trigger):
        state, event = representative(status), event_for(trigger)
        expected = expected_outcome(status, trigger)
        if trigger in (T.DISPUTE_OPENED, T.DISPUTE_WON, T.DISPUTE_LOST):
            event = PaymentEvent(trigger, ref="dp_new")
            if status in (S.DISPUTED, S.CHARGED_BACK):
                continue  # the one known without an id takes the new id (rule 7)
        if expected == "invalid" or (
            trigger is T.REFUNDED and state.refunded + (event.amount or 0) > state.captured > 0
        ):
            with pytest.raises(InvalidTransition):
                apply(state, event)
            continue
        assert apply(state, event).result == expected, (status, trigger)


def test_outcome_matrix_summary() -> None:
    """The rules the issue states, checked across the whole matrix at once."""
    captured_like = {S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED, S.CHARGED_BACK}
    for status, trigger in itertools.product(PaymentStatus, Trigger):
        state = representative(status)
        try:
            step = apply(state, event_for(trigger))
        except InvalidTransition:
            continue
        after = step.state.status
        # no event moves a captured payment back to pending, processing or failed
        if status in captured_like:
            assert after not in (S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.FAILED)
            assert after not in (S.AUTHORIZED, S.CANCELED)
        # terminal states never change status (a charged-back payment still counts the
        # refunds and records the disputes the provider reports late)
        if status in TERMINAL:
            assert step.state.status is status
            if status is S.CANCELED or trigger not in MONEY_NEWS:
                assert step.state == state and not step.changed
    assert {S.CANCELED, S.CHARGED_BACK} == TERMINAL


def test_table_has_a_row_for_every_status_and_known_cells_only() -> None:
    assert set(TABLE) == set(PaymentStatus)
    allowed = set(PaymentStatus) | {
        "stale",
        "duplicate",
        "prior",
        "refund",
        "refund-held",
        "imply-capture",
        "reverse",
        "record",
    }
    for row in TABLE.values():
        assert set(row) <= set(Trigger)
        assert set(row.values()) <= allowed
    for known_refund in REFUND_RULES.values():
        assert set(known_refund) == {T.REFUNDED, T.REFUND_REVERSED}
        assert set(known_refund.values()) <= allowed
    assert set(DISPUTE_RULES) == {DisputeStatus.OPEN, DisputeStatus.WON, DisputeStatus.LOST}
    for known_dispute in DISPUTE_RULES.values():
        assert set(known_dispute) <= {T.DISPUTE_OPENED, T.DISPUTE_WON, T.DISPUTE_LOST}
        assert set(known_dispute.values()) <= allowed


@pytest.mark.parametrize("status", [S.FAILED, S.CANCELED], ids=str)
def test_refund_of_a_never_captured_payment(status: PaymentStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"refunded cannot happen to a {status}"):
        apply(PaymentState(status, AMOUNT), PaymentEvent(T.REFUNDED, amount=1, ref="re_1"))


# -- scenarios -------------------------------------------------------------------------------


def test_partial_refunds_accumulate_to_refunded() -> None:
    state = apply(PaymentState(S.PENDING, AMOUNT), PaymentEvent(T.SUCCEEDED)).state
    state = apply(state, PaymentEvent(T.REFUNDED, amount=300, ref="re_1")).state
    assert (state.status, state.refunded) == (S.PARTIALLY_REFUNDED, 300)
    state = apply(state, PaymentEvent(T.REFUNDED, amount=200, ref="re_2")).state
    assert (state.status, state.refunded) == (S.PARTIALLY_REFUNDED, 500)
    state = apply(state, PaymentEvent(T.REFUNDED, amount=500, ref="re_3")).state
    assert (state.status, state.refunded, state.captured) == (S.REFUNDED, AMOUNT, AMOUNT)
    assert state.refund_ids == {"re_1", "re_2", "re_3"}


def test_the_same_refund_twice_counts_once() -> None:
    state = PaymentState(S.SUCCEEDED, AMOUNT, captured=AMOUNT)
    once = apply(state, PaymentEvent(T.REFUNDED, amount=400, ref="re_1"))
    twice = apply(once.state, PaymentEvent(T.REFUNDED, amount=400, ref="re_1"))
    assert (once.result, twice.result) == ("applied", "duplicate")
    assert twice.state is once.state and twice.state.refunded == 400


def test_over_refund_raises_and_leaves_state_alone() -> None:
    state = PaymentState(S.PARTIALLY_REFUNDED, AMOUNT, captured=AMOUNT, refunded=900)
    with pytest.raises(InvalidTransition, match="exceed the captured 1000"):
        apply(state, PaymentEvent(T.REFUNDED, amount=101, ref="re_2"))
    assert state.refunded == 900 and state.status is S.PARTIALLY_REFUNDED
    assert apply(state, PaymentEvent(T.REFUNDED, amount=100, ref="re_2")).state.status is (
        S.REFUNDED
    )


@pytest.mark.parametrize("amount", [None, 0, -5])
def test_refund_needs_a_positive_amount(amount: int | None) -> None:
    state = PaymentState(S.SUCCEEDED, AMOUNT, captured=AMOUNT)
    with pytest.raises(InvalidTransition, match="positive"):
        apply(state, PaymentEvent(T.REFUNDED, amount=amount, ref="re_1"))


def test_partial_capture_then_refunds_up_to_the_captured_amount() -> None:
    state = apply(PaymentState(S.PENDING, AMOUNT), PaymentEvent(T.AUTHORIZED)).state
    assert state.status is S.AUTHORIZED
    state = apply(state, PaymentEvent(T.SUCCEEDED, amount=600)).state
    assert (state.status, state.captured) == (S.SUCCEEDED, 600)
    with pytest.raises(InvalidTransition):
        apply(state, PaymentEvent(T.REFUNDED, amount=700, ref="re_1"))
    state = apply(state, PaymentEvent(T.REFUNDED, amount=600, ref="re_1")).state
    assert (state.status, state.refunded) == (S.REFUNDED, 600)


@pytest.mark.parametrize("captured", [0, -1, AMOUNT + 1])
def test_capture_outside_the_amount_raises(captured: int) -> None:
    with pytest.raises(InvalidTransition, match=r"outside 1\.\.1000"):
        apply(PaymentState(S.AUTHORIZED, AMOUNT), PaymentEvent(T.SUCCEEDED, amount=captured))


def test_failed_then_succeeded_but_never_succeeded_then_failed() -> None:
    state = apply(PaymentState(S.PENDING, AMOUNT), PaymentEvent(T.FAILED)).state
    assert state.status is S.FAILED
    step = apply(state, PaymentEvent(T.SUCCEEDED))
    assert (step.result, step.state.status, step.state.captured) == (
        "applied",
        S.SUCCEEDED,
        AMOUNT,
    )
    late = apply(step.state, PaymentEvent(T.FAILED))
    assert (late.result, late.state.status) == ("stale", S.SUCCEEDED)
    for trigger in (T.CREATED, T.ACTION_REQUIRED, T.PROCESSING, T.AUTHORIZED):
        assert apply(step.state, PaymentEvent(trigger)).result == "stale"


def test_late_processing_after_succeeded_is_stale() -> None:
    state = apply_all(
        PaymentState(S.PENDING, AMOUNT),
        [PaymentEvent(T.CREATED), PaymentEvent(T.SUCCEEDED), PaymentEvent(T.PROCESSING)],
    )
    assert state.status is S.SUCCEEDED


@pytest.mark.parametrize("start", [S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED])
def test_refund_arriving_first_implies_the_capture(start: PaymentStatus) -> None:
    step = apply(PaymentState(start, AMOUNT), PaymentEvent(T.REFUNDED, amount=250, ref="re_1"))
    assert step.result == "applied"
    assert (step.state.status, step.state.captured, step.state.refunded) == (
        S.PARTIALLY_REFUNDED,
        AMOUNT,
        250,
    )
    assert [e.trigger for e in step.applied] == [T.SUCCEEDED, T.REFUNDED]
    assert step.state.capture_implied
    # the succeeded event arriving afterwards confirms the capture: not a second one,
    # nothing new to tell
    late = apply(step.state, PaymentEvent(T.SUCCEEDED))
    assert (late.result, late.applied, late.state.captured) == ("applied", (), AMOUNT)
    assert not late.state.capture_implied
    assert apply(late.state, PaymentEvent(T.SUCCEEDED)).result == "stale"


@pytest.mark.parametrize("trigger", [T.DISPUTE_OPENED, T.DISPUTE_LOST])
def test_dispute_arriving_first_implies_the_capture(trigger: Trigger) -> None:
    step = apply(PaymentState(S.PROCESSING, AMOUNT), PaymentEvent(trigger))
    assert step.state.captured == AMOUNT
    assert step.state.status is (S.DISPUTED if trigger is T.DISPUTE_OPENED else S.CHARGED_BACK)


@pytest.mark.parametrize("before", [S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED])
def test_dispute_won_returns_to_the_prior_status(before: PaymentStatus) -> None:
    state = representative(before)
    opened = apply(state, PaymentEvent(T.DISPUTE_OPENED))
    assert (opened.state.status, opened.state.before_dispute) == (S.DISPUTED, before)
    assert apply(opened.state, PaymentEvent(T.DISPUTE_OPENED)).result == "duplicate"
    won = apply(opened.state, PaymentEvent(T.DISPUTE_WON))
    assert won.state.status is before
    assert (won.state.captured, won.state.refunded) == (state.captured, state.refunded)
    assert won.state.before_dispute is None
    # a second "won" is a repeat of the ruling, not a change
    assert apply(won.state, PaymentEvent(T.DISPUTE_WON)).result == "duplicate"


def test_dispute_lost_is_terminal() -> None:
    state = apply_all(
        PaymentState(S.PENDING, AMOUNT),
        [PaymentEvent(T.SUCCEEDED), PaymentEvent(T.DISPUTE_OPENED), PaymentEvent(T.DISPUTE_LOST)],
    )
    assert state.status is S.CHARGED_BACK and S.CHARGED_BACK in TERMINAL
    for trigger in Trigger:
        try:
            step = apply(state, event_for(trigger))
        except InvalidTransition:
            continue
        assert step.state.status is S.CHARGED_BACK
        if trigger not in MONEY_NEWS:
            assert step.state is state and not step.changed
    # a refund the provider reports late is still counted; the status stays
    late = apply(state, PaymentEvent(T.REFUNDED, amount=300, ref="re_1"))
    assert (late.state.status, late.state.refunded) == (S.CHARGED_BACK, 300)


def test_refund_during_an_open_dispute_is_counted_and_the_status_held() -> None:
    disputed = apply(representative(S.SUCCEEDED), PaymentEvent(T.DISPUTE_OPENED)).state
    step = apply(disputed, PaymentEvent(T.REFUNDED, amount=400, ref="re_1"))
    assert (step.result, step.state.status, step.state.refunded) == ("applied", S.DISPUTED, 400)
    assert step.state.before_dispute is S.PARTIALLY_REFUNDED
    with pytest.raises(InvalidTransition):
        apply(step.state, PaymentEvent(T.REFUNDED, amount=601, ref="re_2"))
    full = apply(step.state, PaymentEvent(T.REFUNDED, amount=600, ref="re_2")).state
    assert (full.status, full.before_dispute) == (S.DISPUTED, S.REFUNDED)
    assert apply(full, PaymentEvent(T.DISPUTE_WON)).state.status is S.REFUNDED
    assert apply(full, PaymentEvent(T.DISPUTE_LOST)).state.status is S.CHARGED_BACK


def test_dispute_won_without_a_remembered_prior_uses_the_amounts() -> None:
    state = PaymentState(S.DISPUTED, AMOUNT, captured=AMOUNT, refunded=100)
    assert apply(state, PaymentEvent(T.DISPUTE_WON)).state.status is S.PARTIALLY_REFUNDED


def test_canceled_is_terminal() -> None:
    state = apply(PaymentState(S.AUTHORIZED, AMOUNT), PaymentEvent(T.CANCELED)).state
    assert state.status is S.CANCELED
    with pytest.raises(InvalidTransition):
        apply(state, PaymentEvent(T.SUCCEEDED))
    assert apply(state, PaymentEvent(T.CANCELED)).result == "duplicate"
    assert apply(state, PaymentEvent(T.PROCESSING)).result == "stale"


def test_apply_is_pure() -> None:
    state, event = representative(S.SUCCEEDED), PaymentEvent(T.REFUNDED, amount=10, ref="r")
    assert apply(state, event) == apply(state, event)
    assert state == representative(S.SUCCEEDED)
    assert isinstance(apply(state, event), Step)


# -- from the outside world ---------------------------------------------------------------

WHEN = datetime(2026, 1, 1, tzinfo=timezone.utc)
AT = WHEN.timestamp()  # the provider's time, on every event it carries
USD = Money(1000, "USD")


def payment(status: PaymentStatus = S.SUCCEEDED, **kwargs: object) -> Payment:
    return Payment("pay_1", "fake", "order-1", USD, status, **kwargs)  # type: ignore[arg-type]


def webhook(type_: EventType, obj: object) -> WebhookEvent:
    return WebhookEvent("evt_1", "fake", type_, WHEN, obj)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event_type", "trigger"),
    [
        (EventType.PAYMENT_CREATED, T.CREATED),
        (EventType.PAYMENT_ACTION_REQUIRED, T.ACTION_REQUIRED),
        (EventType.PAYMENT_PROCESSING, T.PROCESSING),
        (EventType.PAYMENT_AUTHORIZED, T.AUTHORIZED),
        (EventType.PAYMENT_SUCCEEDED, T.SUCCEEDED),
        (EventType.PAYMENT_FAILED, T.FAILED),
        (EventType.PAYMENT_CANCELED, T.CANCELED),
    ],
)
def test_payment_events_map_to_triggers(event_type: EventType, trigger: Trigger) -> None:
    assert event_from_webhook(webhook(event_type, payment())) == PaymentEvent(trigger, at=AT)
    untimed = WebhookEvent("evt_1", "fake", event_type, None, payment())
    assert event_from_webhook(untimed) == PaymentEvent(trigger)


def test_succeeded_carries_a_partial_capture() -> None:
    partial = payment(amount_captured=Money(600, "USD"))
    assert event_from_webhook(webhook(EventType.PAYMENT_SUCCEEDED, partial)) == PaymentEvent(
        T.SUCCEEDED, amount=600, at=AT
    )
    # no captured amount reported: the whole amount (the default of a SUCCEEDED event)
    assert event_from_webhook(webhook(EventType.PAYMENT_SUCCEEDED, payment())).amount is None


@pytest.mark.parametrize("event_type", [EventType.REFUND_CREATED, EventType.REFUND_SUCCEEDED])
def test_a_succeeded_refund_moves_the_payment(event_type: EventType) -> None:
    refund = Refund("re_1", "fake", "pay_1", Money(250, "USD"), RefundStatus.SUCCEEDED)
    assert event_from_webhook(webhook(event_type, refund)) == PaymentEvent(
        T.REFUNDED, amount=250, ref="re_1", at=AT
    )


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        (EventType.REFUND_CREATED, RefundStatus.PENDING),
        (EventType.REFUND_SUCCEEDED, RefundStatus.PENDING),
        (EventType.REFUND_CREATED, RefundStatus.REQUIRES_ACTION),
        (EventType.REFUND_FAILED, RefundStatus.SUCCEEDED),
    ],
)
def test_other_refund_events_do_not(event_type: EventType, status: RefundStatus) -> None:
    refund = Refund("re_1", "fake", "pay_1", Money(250, "USD"), status)
    assert event_from_webhook(webhook(event_type, refund)) is None


@pytest.mark.parametrize(
    ("event_type", "status"),
    [
        (EventType.REFUND_FAILED, RefundStatus.FAILED),
        (EventType.REFUND_CREATED, RefundStatus.CANCELED),
    ],
)
def test_a_failed_or_canceled_refund_reverses_it(
    event_type: EventType, status: RefundStatus
) -> None:
    refund = Refund("re_1", "fake", "pay_1", Money(250, "USD"), status)
    assert event_from_webhook(webhook(event_type, refund)) == PaymentEvent(
        T.REFUND_REVERSED, amount=250, ref="re_1", at=AT
    )


def test_a_refund_reversed_after_success_takes_its_amount_back() -> None:
    state = PaymentState(S.SUCCEEDED, 1000, captured=1000)
    refunded = apply(state, PaymentEvent(T.REFUNDED, amount=1000, ref="re_1")).state
    assert refunded.status is S.REFUNDED
    step = apply(refunded, PaymentEvent(T.REFUND_REVERSED, amount=1000, ref="re_1"))
    assert step.result == "applied"
    assert (step.state.status, step.state.refunded, step.state.refund_ids) == (
        S.SUCCEEDED, 0, frozenset(),
    )  # fmt: skip
    assert step.state.reversed_refund_ids == {"re_1"}
    assert [(e.trigger, e.ref) for e in step.applied] == [(T.REFUND_REVERSED, "re_1")]
    # the same failure again is a duplicate; the success again, late news: stale
    again = apply(step.state, PaymentEvent(T.REFUND_REVERSED, amount=1000, ref="re_1"))
    assert again.result == "duplicate"
    assert apply(step.state, PaymentEvent(T.REFUNDED, amount=1000, ref="re_1")).result == "stale"


def test_an_implied_capture_is_reported_before_the_event() -> None:
    step = apply(PaymentState(S.PENDING, 1000), PaymentEvent(T.REFUNDED, amount=300, ref="re_1"))
    assert [e.trigger for e in step.applied] == [T.SUCCEEDED, T.REFUNDED]
    assert apply(step.state, PaymentEvent(T.REFUNDED, amount=300, ref="re_1")).applied == ()


@pytest.mark.parametrize(
    ("event_type", "trigger"),
    [
        (EventType.DISPUTE_OPENED, T.DISPUTE_OPENED),
        (EventType.DISPUTE_WON, T.DISPUTE_WON),
        (EventType.DISPUTE_LOST, T.DISPUTE_LOST),
        (EventType.DISPUTE_UPDATED, None),
    ],
)
def test_dispute_events(event_type: EventType, trigger: Trigger | None) -> None:
    dispute = Dispute("dp_1", "fake", "pay_1", USD, DisputeStatus.OPEN)
    expected = PaymentEvent(trigger, ref="dp_1", at=AT) if trigger else None
    assert event_from_webhook(webhook(event_type, dispute)) == expected


@pytest.mark.parametrize(
    "event_type",
    [e for e in EventType if not e.value.startswith(("payment.", "refund.", "dispute."))],
)
def test_events_that_carry_no_payment_change(event_type: EventType) -> None:
    sub = Subscription("sub_1", "fake", "cus_1", "price_1", SubscriptionStatus.ACTIVE)
    assert event_from_webhook(webhook(event_type, sub)) is None
    assert event_from_webhook(webhook(event_type, None)) is None


@pytest.mark.parametrize("status", list(PaymentStatus), ids=str)
def test_event_for_status_reaches_that_status(status: PaymentStatus) -> None:
    event = event_for_status(status)
    if status in (S.PARTIALLY_REFUNDED, S.REFUNDED):
        assert event is None  # refunds carry their own amounts
        return
    assert event is not None
    start = PaymentState(S.FAILED if status is S.PENDING else S.PENDING, AMOUNT)
    if status is S.PENDING:  # nothing goes back to pending: the event is its duplicate
        assert apply(PaymentState(S.PENDING, AMOUNT), event).result == "duplicate"
        return
    assert apply(start, event).state.status is status


def test_event_for_status_carries_the_captured_amount() -> None:
    assert event_for_status(S.SUCCEEDED, captured=600) == PaymentEvent(T.SUCCEEDED, amount=600)
    assert event_for_status(S.FAILED, captured=600) == PaymentEvent(T.FAILED)


def test_state_of_a_payment() -> None:
    state = state_of(payment(S.SUCCEEDED))
    assert (state.status, state.amount, state.captured, state.refunded) == (
        S.SUCCEEDED,
        1000,
        1000,
        0,
    )
    state = state_of(payment(S.AUTHORIZED))
    assert (state.captured, state.refunded) == (0, 0)
    partial = payment(
        S.PARTIALLY_REFUNDED, amount_captured=Money(800, "USD"), amount_refunded=Money(300, "USD")
    )
    assert (state_of(partial).captured, state_of(partial).refunded) == (800, 300)


def test_state_of_a_refunded_payment_without_amounts_is_fully_refunded() -> None:
    state = state_of(payment(S.REFUNDED))
    assert (state.captured, state.refunded) == (1000, 1000)
    assert consistent(state.status, state.amount, state.captured, state.refunded)


@pytest.mark.parametrize(
    ("refunded", "prior"),
    [(0, S.SUCCEEDED), (300, S.PARTIALLY_REFUNDED), (1000, S.REFUNDED)],
)
def test_state_of_a_disputed_payment_remembers_its_prior_status(
    refunded: int, prior: PaymentStatus
) -> None:
    disputed = payment(S.DISPUTED, amount_refunded=Money(refunded, "USD"))
    state = state_of(disputed)
    assert state.before_dispute is prior
    assert apply(state, PaymentEvent(T.DISPUTE_WON)).state.status is prior


# -- issue 14: order comes from the provider's data, never from arrival --------------------


def fake_deliveries(script: Callable[[FakeProvider, FakeClock], object]) -> list[WebhookEvent]:
    """The fake provider's webhooks for ``script``, parsed, oldest first (one second apart
    unless the script moves the clock itself)."""
    clock = FakeClock(1_767_225_600.0)
    fake = FakeProvider(seed=7, clock=clock)
    script(fake, clock)
    return [fake.parse_webhook(d.body, d.headers) for d in fake.take_webhooks()]


def fold(events: list[WebhookEvent], start: PaymentState | None = None) -> Step:
    """Apply the events' state-machine inputs in the order given; the last step, with
    every fact told on the way in ``applied``."""
    state = start or PaymentState(S.PENDING, AMOUNT)
    told: list[PaymentEvent] = []
    for event in events:
        change = event_from_webhook(event)
        if change is not None:
            step = apply(state, change)
            state = step.state
            told.extend(step.applied)
    return Step(state, "applied", tuple(told))


def pay_3ds(fake: FakeProvider, clock: FakeClock, *, then: str) -> None:
    payment = fake.create_payment(
        order_id="ord_1", amount=Money(AMOUNT, "USD"), payment_method="tok_3ds",
        idempotency_key="k1",
    )  # fmt: skip
    clock.advance(1)
    if then == "fail":
        fake.authenticate(payment.id, success=False)
    elif then == "settle-fail":
        fake.settle(payment.id, success=False)


@pytest.mark.parametrize("seconds_apart", [1, 0], ids=["apart", "same-second"])
def test_3ds_failing_delivered_newest_first_stays_failed(
    seconds_apart: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect: a late payment.action_required after payment.failed took the payment back
    to requires_action (the FAILED row let any later lifecycle event "retry" it)."""

    def script(fake: FakeProvider, clock: FakeClock) -> None:
        monkeypatch.setattr(clock, "advance", lambda s: FakeClock.advance(clock, s * seconds_apart))
        pay_3ds(fake, clock, then="fail")

    events = fake_deliveries(script)
    assert [e.type for e in events] == [
        EventType.PAYMENT_CREATED, EventType.PAYMENT_ACTION_REQUIRED, EventType.PAYMENT_FAILED,
    ]  # fmt: skip
    assert fold(events).state.status is S.FAILED  # in order
    newest_first = fold(events[::-1])
    assert newest_first.state.status is S.FAILED
    assert [e.trigger for e in newest_first.applied] == [T.FAILED]  # no "needs action" after


def test_processing_arriving_after_failed_is_stale_and_a_newer_retry_is_not() -> None:
    failed = apply(PaymentState(S.PENDING, AMOUNT), PaymentEvent(T.FAILED, at=20.0)).state
    assert failed.as_of == 20.0
    for trigger in (T.PROCESSING, T.ACTION_REQUIRED):
        assert apply(failed, PaymentEvent(trigger, at=19.0)).result == "stale"
        assert apply(failed, PaymentEvent(trigger, at=20.0)).result == "stale"  # a tie
        retried = apply(failed, PaymentEvent(trigger, at=21.0))  # the customer tried again
        assert (retried.result, retried.state.as_of) == ("applied", 21.0)
        # ... and the failure it retried, delivered late, does not undo the retry
        assert apply(retried.state, PaymentEvent(T.FAILED, at=20.0)).result == "stale"
    # times unknown: as before (a failed attempt can be retried)
    assert apply(failed, PaymentEvent(T.ACTION_REQUIRED)).state.status is S.REQUIRES_ACTION
    # a failure newer than the status applies; the same status later only records the time
    waiting = PaymentState(S.REQUIRES_ACTION, AMOUNT, as_of=5.0)
    assert apply(waiting, PaymentEvent(T.FAILED, at=5.0)).state.status is S.FAILED
    later = apply(waiting, PaymentEvent(T.ACTION_REQUIRED, at=9.0))
    assert (later.result, later.applied, later.state.as_of) == ("applied", (), 9.0)
    assert apply(later.state, PaymentEvent(T.FAILED, at=7.0)).result == "stale"


def test_dispute_won_delivered_before_opened_leaves_the_payment_undisputed() -> None:
    """Defect: dispute.won before dispute.opened left the payment disputed for good."""

    def script(fake: FakeProvider, clock: FakeClock) -> None:
        payment = fake.create_payment(
            order_id="ord_1", amount=Money(AMOUNT, "USD"), payment_method="tok_visa",
            idempotency_key="k1",
        )  # fmt: skip
        clock.advance(1)
        dispute = fake.open_dispute(payment.id)
        clock.advance(1)
        fake.resolve_dispute(dispute.id, won=True)

    events = fake_deliveries(script)
    assert [e.type for e in events][-2:] == [EventType.DISPUTE_OPENED, EventType.DISPUTE_WON]
    in_order, newest_first = fold(events), fold(events[::-1])
    assert in_order.state.status is newest_first.state.status is S.SUCCEEDED
    assert newest_first.state.disputes == in_order.state.disputes
    dispute_id = events[-1].object.id  # type: ignore[union-attr]
    assert newest_first.state.disputes == ((dispute_id, DisputeStatus.WON),)
    # the app hears: captured, then the dispute opened (implied), then won; once each
    assert [(e.trigger, e.ref) for e in newest_first.applied] == [
        (T.SUCCEEDED, None), (T.DISPUTE_OPENED, dispute_id), (T.DISPUTE_WON, dispute_id),
    ]  # fmt: skip


def test_a_second_dispute_is_a_new_dispute_and_lost_stays_terminal() -> None:
    state = PaymentState(S.SUCCEEDED, AMOUNT, captured=AMOUNT)
    state = apply_all(state, [PaymentEvent(T.DISPUTE_OPENED, ref="dp_1"),
                              PaymentEvent(T.DISPUTE_WON, ref="dp_1")])  # fmt: skip
    assert state.status is S.SUCCEEDED
    second = apply(state, PaymentEvent(T.DISPUTE_OPENED, ref="dp_2"))
    assert (second.result, second.state.status) == ("applied", S.DISPUTED)
    lost = apply(second.state, PaymentEvent(T.DISPUTE_LOST, ref="dp_2")).state
    assert lost.status is S.CHARGED_BACK
    # the first dispute's news, late: stale; a contradiction: impossible
    assert apply(lost, PaymentEvent(T.DISPUTE_OPENED, ref="dp_1")).result == "stale"
    with pytest.raises(InvalidTransition, match="dispute dp_2 is lost"):
        apply(lost, PaymentEvent(T.DISPUTE_WON, ref="dp_2"))
    # two disputes open at once: the first won leaves the payment disputed
    both = apply_all(PaymentState(S.SUCCEEDED, AMOUNT, captured=AMOUNT), [
        PaymentEvent(T.DISPUTE_OPENED, ref="dp_1"), PaymentEvent(T.DISPUTE_OPENED, ref="dp_2"),
        PaymentEvent(T.DISPUTE_WON, ref="dp_1"),
    ])  # fmt: skip
    assert both.status is S.DISPUTED
    assert apply(both, PaymentEvent(T.DISPUTE_WON, ref="dp_2")).state.status is S.SUCCEEDED


def test_refund_failed_delivered_before_its_success_never_counts_the_money() -> None:
    """Defect: refund.failed before refund.succeeded was stale (nothing counted yet), so the
    late success counted money that never went back."""
    state = PaymentState(S.SUCCEEDED, AMOUNT, captured=AMOUNT)
    failed = apply(state, PaymentEvent(T.REFUND_REVERSED, amount=400, ref="re_1"))
    assert (failed.result, failed.state.reversed_refund_ids) == ("applied", {"re_1"})
    assert [e.trigger for e in failed.applied] == [T.REFUND_REVERSED]  # "refund failed", once
    late = apply(failed.state, PaymentEvent(T.REFUNDED, amount=400, ref="re_1"))
    assert (late.result, late.state.refunded, late.state.status) == ("stale", 0, S.SUCCEEDED)
    # the same refund failing for a payment still shown pending proves the capture
    early = apply(PaymentState(S.PENDING, AMOUNT), PaymentEvent(T.REFUND_REVERSED, amount=1,
                                                                 ref="re_1"))  # fmt: skip
    assert [e.trigger for e in early.applied] == [T.SUCCEEDED, T.REFUND_REVERSED]


def test_an_implied_capture_is_corrected_by_the_partial_capture() -> None:
    """A refund of a partial capture arriving first implied the whole amount captured;
    the capture's own event brings the real amount (and the status the amounts give)."""
    authorized = PaymentState(S.AUTHORIZED, AMOUNT)
    refunded = apply(authorized, PaymentEvent(T.REFUNDED, amount=600, ref="re_1")).state
    assert (refunded.status, refunded.captured) == (S.PARTIALLY_REFUNDED, AMOUNT)
    confirmed = apply(refunded, PaymentEvent(T.SUCCEEDED, amount=600))
    assert (confirmed.result, confirmed.applied) == ("applied", ())
    assert (confirmed.state.status, confirmed.state.captured) == (S.REFUNDED, 600)
    with pytest.raises(InvalidTransition, match="captured 500"):
        apply(refunded, PaymentEvent(T.SUCCEEDED, amount=500))  # less than was refunded


def answer(status: PaymentStatus, **kwargs: object) -> Payment:
    return payment(status, **kwargs)


def test_answer_of_a_partial_capture_counts_no_released_remainder() -> None:
    """Stripe shows the released remainder of a partial capture in amount_refunded."""
    partial = answer(S.SUCCEEDED, amount_captured=Money(600, "USD"),
                     amount_refunded=Money(400, "USD"))  # fmt: skip
    events = events_for_answer(PaymentState(S.AUTHORIZED, AMOUNT), partial, at=50.0)
    assert events == [PaymentEvent(T.SUCCEEDED, amount=600, at=50.0)]
    state = apply_all(PaymentState(S.AUTHORIZED, AMOUNT), events)
    assert (state.status, state.captured, state.refunded) == (S.SUCCEEDED, 600, 0)
    assert state_of(partial).refunded == 400  # without a refunds list: by its amounts


def test_answer_refunds_count_once_by_id_and_failed_ones_come_back() -> None:
    r1 = Refund("re_1", "fake", "pay_1", Money(300, "USD"), RefundStatus.SUCCEEDED)
    r2 = Refund("re_2", "fake", "pay_1", Money(200, "USD"), RefundStatus.SUCCEEDED)
    r2_failed = replace(r2, status=RefundStatus.FAILED)
    pending = Refund("re_3", "fake", "pay_1", Money(100, "USD"), RefundStatus.PENDING)
    state = PaymentState(S.SUCCEEDED, AMOUNT, captured=AMOUNT)
    first = answer(S.PARTIALLY_REFUNDED, refunds=(r1, r2, pending))
    state = apply_all(state, events_for_answer(state, first))
    assert (state.status, state.refunded, state.refund_ids) == (
        S.PARTIALLY_REFUNDED, 500, {"re_1", "re_2"})  # fmt: skip
    assert events_for_answer(state, first) == []  # the same answer again: nothing new
    second = answer(S.PARTIALLY_REFUNDED, refunds=(r1, r2_failed))
    state = apply_all(state, events_for_answer(state, second))
    assert (state.refunded, state.reversed_refund_ids) == (300, {"re_2"})
    assert events_for_answer(state, second) == []


def test_answer_dispute_state() -> None:
    captured = PaymentState(S.SUCCEEDED, AMOUNT, captured=AMOUNT)
    opened = events_for_answer(captured, answer(S.DISPUTED))
    assert [(e.trigger, e.ref) for e in opened] == [(T.DISPUTE_OPENED, None)]
    disputed = apply_all(captured, opened)
    assert disputed.status is S.DISPUTED
    # the webhook naming the dispute, later: the same dispute, nothing new to tell
    named = apply(disputed, PaymentEvent(T.DISPUTE_OPENED, ref="dp_1"))
    assert (named.result, named.applied, named.state.disputes) == (
        "applied", (), (("dp_1", DisputeStatus.OPEN),))  # fmt: skip
    lost = events_for_answer(named.state, answer(S.CHARGED_BACK))
    assert [(e.trigger, e.ref) for e in lost] == [(T.DISPUTE_LOST, None)]
    step = apply(named.state, lost[0])
    assert [(e.trigger, e.ref) for e in step.applied] == [(T.DISPUTE_LOST, "dp_1")]
    # a provider still saying "disputed" after a dispute it reported won does not reopen it
    won = apply_all(captured, [PaymentEvent(T.DISPUTE_WON, ref="dp_1")])
    assert events_for_answer(won, answer(S.DISPUTED)) == []


def test_an_answer_older_news_cannot_undo() -> None:
    """The answer is current as of when it was asked: an event older than it is stale."""
    waiting = apply(PaymentState(S.PENDING, AMOUNT), PaymentEvent(T.ACTION_REQUIRED, at=10.0))
    events = events_for_answer(waiting.state, answer(S.FAILED), at=12.5)
    failed = apply_all(waiting.state, events)
    assert (failed.status, failed.as_of) == (S.FAILED, 12.5)
    assert apply(failed, PaymentEvent(T.ACTION_REQUIRED, at=11.0)).result == "stale"
    assert state_of(answer(S.FAILED), at=12.5).as_of == 12.5


# -- the diagram -----------------------------------------------------------------------------

EDGE = re.compile(r"^    (\S+) --> (\S+)(?:: (.+))?$")


def test_mermaid_mentions_every_status_and_parses() -> None:
    diagram = to_mermaid()
    assert diagram.startswith("stateDiagram-v2\n") and diagram.endswith("\n")
    nodes: set[str] = set()
    for line in diagram.splitlines()[1:]:
        match = EDGE.match(line)
        assert match, line
        nodes |= {match[1], match[2]}
    assert nodes - {"[*]"} == {s.value for s in PaymentStatus}
    assert diagram == to_mermaid()  # deterministic


def test_mermaid_draws_every_applied_transition() -> None:
    diagram = to_mermaid()
    edges: dict[tuple[str, str], str] = {}
    for line in diagram.splitlines()[1:]:
        match = EDGE.match(line)
        assert match
        edges[(match[1], match[2])] = match[3] or ""
    for status, trigger in itertools.product(PaymentStatus, Trigger):
        try:
            step = apply(representative(status), event_for(trigger))
        except InvalidTransition:
            continue
        if not step.changed:
            continue
        labels = edges.get((status.value, step.state.status.value), "").split(", ")
        if trigger.value in labels:
            continue
        # an implied capture is drawn as "status --> succeeded: trigger*", the event's own
        # move from succeeded onwards as succeeded's edge
        assert f"{trigger.value}*" in edges[(status.value, "succeeded")].split(", "), (
            status,
            trigger,
        )
        assert step.state.captured == step.state.amount
    assert ("[*]", "pending") in edges
    for terminal in TERMINAL:
        assert (terminal.value, "[*]") in edges


TABLE_START, TABLE_END = "<!-- generated: transition table -->\n", "<!-- end of generated table -->"
CELL_TEXT = {
    "stale": "stale",
    "duplicate": "dup",
    "prior": "prior",
    "refund": "refund",
    "refund-held": "held",
    "imply-capture": "imply",
    "reverse": "reverse",
    "record": "record",
}


def _matrix(
    corner: str, rows: Mapping[str, Mapping[Trigger, object]], triggers: list[Trigger]
) -> list[str]:
    lines = [
        f"| {corner} | " + " | ".join(f"`{t.value}`" for t in triggers) + " |",
        "|---|" + "---|" * len(triggers),
    ]
    for name, row in rows.items():
        cells = []
        for trigger in triggers:
            cell = row.get(trigger)
            if cell is None:
                cells.append("✗")
            elif isinstance(cell, PaymentStatus):
                cells.append(f"→ `{cell.value}`")
            else:
                cells.append(CELL_TEXT[str(cell)])
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return lines


def table_markdown() -> str:
    """TABLE, then REFUND_RULES and DISPUTE_RULES, as Markdown matrices for the docs page
    (regenerated with ``--write``)."""
    lines = _matrix("status \\ trigger", {s.value: row for s, row in TABLE.items()}, list(Trigger))
    lines += ["", "A refund the payment knows by its id:", ""]
    lines += _matrix("refund \\ trigger", dict(REFUND_RULES), [T.REFUNDED, T.REFUND_REVERSED])
    lines += ["", "A dispute the payment knows by its id:", ""]
    disputes = {status.value: row for status, row in DISPUTE_RULES.items()}
    lines += _matrix(
        "dispute \\ trigger", disputes, [T.DISPUTE_OPENED, T.DISPUTE_WON, T.DISPUTE_LOST]
    )
    return "\n".join(lines) + "\n"


def docs_diagram(text: str) -> str:
    """The page's diagram fence: drawn from the tables at build time (tools/state_diagram.py)."""
    match = re.search(r"```state-diagram\n(.*?)```", text, re.DOTALL)
    assert match, f"no ```state-diagram fence in {DOCS_PAGE}"
    return match[1]


def docs_table(text: str) -> str:
    start = text.index(TABLE_START) + len(TABLE_START)
    return text[start : text.index(TABLE_END)]


def test_docs_page_shows_exactly_the_generated_diagram_and_table() -> None:
    text = DOCS_PAGE.read_text(encoding="utf-8")
    regenerate = "regenerate: python -m tests.test_state --write"
    assert "edges: paygate.state:diagram_edges\n" in docs_diagram(text)
    assert "```mermaid" not in text  # drawn at build time, never by a script from a CDN
    assert docs_table(text) == table_markdown(), regenerate
    for status in PaymentStatus:
        assert f"`{status.value}`" in text


def test_docs_page_example_runs() -> None:
    text = DOCS_PAGE.read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert example, "no python example on the page"
    exec(compile(example[1], str(DOCS_PAGE), "exec"), {})  # its asserts are the test


def write_docs() -> None:
    text = DOCS_PAGE.read_text(encoding="utf-8")
    text = text.replace(
        f"{TABLE_START}{docs_table(text)}{TABLE_END}", f"{TABLE_START}{table_markdown()}{TABLE_END}"
    )
    DOCS_PAGE.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_docs()
        print(f"wrote the table into {DOCS_PAGE}")
    else:
        print(to_mermaid(), end="")


def test_a_ruling_that_contradicts_the_dispute_known_without_an_id_is_another_dispute() -> None:
    """An answer said charged_back (a dispute lost, its id unknown); then an event says
    dispute dp_1 was won: dp_1 is another dispute (it cannot be the lost one), recorded
    with its opening told first, and the payment stays charged back. The lost one is named
    when its own event comes. (Found by test_state_convergence's "two disputes".)"""
    answer = Payment(
        "pay_1", "fake", "order-1", Money(1000, "USD"), S.CHARGED_BACK,
        amount_captured=Money(1000, "USD"),
    )  # fmt: skip
    state = apply_all(
        PaymentState(S.PENDING, 1000), events_for_answer(PaymentState(S.PENDING, 1000), answer)
    )
    assert state.status is S.CHARGED_BACK
    won = apply(state, PaymentEvent(T.DISPUTE_WON, ref="dp_1", at=3.0))
    assert won.result == "applied" and won.state.status is S.CHARGED_BACK
    assert [(e.trigger, e.ref) for e in won.applied] == [
        (T.DISPUTE_OPENED, "dp_1"), (T.DISPUTE_WON, "dp_1"),
    ]  # fmt: skip
    lost = apply(won.state, PaymentEvent(T.DISPUTE_LOST, ref="dp_2", at=5.0))
    assert lost.applied == () and lost.state.status is S.CHARGED_BACK
    assert dict(lost.state.disputes) == {"dp_1": DisputeStatus.WON, "dp_2": DisputeStatus.LOST}
