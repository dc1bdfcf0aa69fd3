"""Random event sequences: paygate.state against the reference model, with invariants.

Hypothesis drives one payment through any order of events (duplicates, stale ones, refunds
with repeated ids, refunds failing before or after their success, over-refunds, partial
captures, disputes with and without ids, provider times with ties); after every step the
real state machine and the reference model (tests/_state_reference.py) must agree on the
outcome, every field of the state and the facts told, and the invariants must hold:
captured <= amount, refunded <= captured, the status agrees with the amounts, terminal
statuses never change, impossible events change nothing, a refund id is never both
counted and failed.
"""

from __future__ import annotations

from hypothesis import event as note_event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from paygate.errors import InvalidTransition
from paygate.models import PaymentStatus as S
from paygate.state import TERMINAL, PaymentEvent, PaymentState, Trigger, apply
from tests._state_reference import Impossible, RefPayment, consistent
from tests.test_state import as_reference

T = Trigger
PLAIN_TRIGGERS = [
    t
    for t in Trigger
    if t not in (T.SUCCEEDED, T.REFUNDED, T.REFUND_REVERSED) and not t.value.startswith("dispute")
]
DISPUTE_TRIGGERS = [T.DISPUTE_OPENED, T.DISPUTE_WON, T.DISPUTE_LOST]
REFUND_IDS = st.one_of(st.none(), st.sampled_from([f"re_{i}" for i in range(6)]))
DISPUTE_IDS = st.one_of(st.none(), st.sampled_from(["dp_0", "dp_1", "dp_2"]))
#: provider times: few values, so ties and out-of-order times are common
TIMES = st.one_of(st.none(), st.integers(min_value=0, max_value=6).map(float))


class PaymentMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state: PaymentState | None = None
        self.model: RefPayment | None = None
        self.terminal_state: PaymentState | None = None
        self.steps = 0

    @initialize(amount=st.integers(min_value=1, max_value=10_000), start=st.sampled_from(
        [S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED]
    ))  # fmt: skip
    def start(self, amount: int, start: S) -> None:
        self.state = PaymentState(start, amount)
        self.model = RefPayment(start, amount)

    def feed(self, event: PaymentEvent) -> None:
        assert self.state is not None and self.model is not None
        before = self.state
        try:
            expected, model_after, facts = self.model.step(
                event.trigger, event.amount, event.ref, event.at
            )
        except Impossible:
            try:
                apply(before, event)
            except InvalidTransition as err:
                assert err.trigger == event.trigger.value
                assert err.status == before.status.value
            else:
                raise AssertionError(f"{event} in {before} should be impossible") from None
            return  # nothing changed: the caller keeps ``before``
        step = apply(before, event)
        assert step.result == expected, (event, before)
        if step.result != "applied":
            assert step.state is before
        got = step.state
        assert as_reference(got) == model_after, (event, before)
        assert [(e.trigger, e.ref) for e in step.applied] == facts
        self.state, self.model = got, model_after
        note_event(f"reached {got.status}")  # coverage, shown by --hypothesis-show-statistics
        self.steps += 1

    @rule(trigger=st.sampled_from(PLAIN_TRIGGERS), at=TIMES)
    def plain_event(self, trigger: Trigger, at: float | None) -> None:
        self.feed(PaymentEvent(trigger, at=at))

    @rule(captured=st.one_of(st.none(), st.integers(min_value=-2, max_value=10_002)), at=TIMES)
    def succeeded(self, captured: int | None, at: float | None) -> None:
        self.feed(PaymentEvent(T.SUCCEEDED, amount=captured, at=at))

    @rule(trigger=st.sampled_from(DISPUTE_TRIGGERS), ref=DISPUTE_IDS)
    def dispute(self, trigger: Trigger, ref: str | None) -> None:
        self.feed(PaymentEvent(trigger, ref=ref))

    @rule(data=st.data(), ref=REFUND_IDS)
    def refund_failed(self, data: st.DataObject, ref: str | None) -> None:
        assert self.state is not None
        amount = data.draw(
            st.one_of(st.integers(min_value=1, max_value=max(1, self.state.refunded)),
                      st.integers(min_value=-1, max_value=self.state.amount + 1)),
            label="reversed amount",
        )  # fmt: skip
        self.feed(PaymentEvent(T.REFUND_REVERSED, amount=amount, ref=ref))

    @rule(data=st.data(), ref=REFUND_IDS)
    def refund(self, data: st.DataObject, ref: str | None) -> None:
        assert self.state is not None
        remaining = self.state.captured - self.state.refunded
        # mostly refunds that fit, sometimes one too many or a nonsense amount
        amount = data.draw(
            st.one_of(
                st.integers(min_value=1, max_value=max(1, remaining)),
                st.just(remaining),
                st.just(remaining + 1),
                st.integers(min_value=-1, max_value=self.state.amount + 1),
            ),
            label="refund amount",
        )
        self.feed(PaymentEvent(T.REFUNDED, amount=amount, ref=ref))

    @invariant()
    def amounts_in_bounds(self) -> None:
        if self.state is not None:
            assert 0 <= self.state.refunded <= self.state.captured <= self.state.amount

    @invariant()
    def status_agrees_with_amounts(self) -> None:
        if self.state is not None:
            state = self.state
            assert consistent(state.status, state.amount, state.captured, state.refunded), state

    @invariant()
    def terminal_statuses_never_change(self) -> None:
        if self.state is None:
            return
        if self.terminal_state is not None:
            assert self.state.status is self.terminal_state.status
            if self.terminal_state.status is S.CANCELED:  # nothing was ever captured
                assert self.state == self.terminal_state
        elif self.state.status in TERMINAL:
            self.terminal_state = self.state

    @invariant()
    def a_refund_is_counted_or_failed_never_both(self) -> None:
        if self.state is not None:
            assert not (self.state.refund_ids & self.state.reversed_refund_ids)

    @invariant()
    def an_open_dispute_shows(self) -> None:
        if self.state is not None and any(s == "open" for _, s in self.state.disputes):
            assert self.state.status in (S.DISPUTED, S.CHARGED_BACK)

    @invariant()
    def dispute_prior_only_while_disputed(self) -> None:
        if self.state is not None:
            assert (self.state.before_dispute is not None) == (self.state.status is S.DISPUTED)


PaymentMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestPaymentMachine = PaymentMachine.TestCase
