"""An independent reference model of the payment state machine, for the tests.

Written from the issue's rules in prose, not from ``paygate.state.TABLE``: the exhaustive
test and the stateful test compare the real table against it, so a table cell that
contradicts a rule shows up as a failing test rather than as agreement with itself.

The rules (issue 2, "paygate.state"):

1. Duplicates are no-ops: the event that brought the payment to its status, again.
2. Stale events never regress: before capture the lifecycle only moves forward
   (created < action_required < processing < authorized < succeeded); a late earlier step
   is stale. Nothing moves a captured payment back to pending/processing/failed.
3. A failed attempt can still be retried to success (or to any later step).
4. An authorized payment has a good authorization: a late failure of an earlier attempt is
   stale.
5. Refunds accumulate up to the captured amount; all of it refunded is ``refunded``.
   Refunds beyond the captured amount, and refunds of a failed or canceled payment (no
   money was captured), are impossible.
6. A refund or dispute for a payment still shown unsettled proves it was captured
   (webhooks arrive in any order): the capture is implied, then the event applies.
7. Disputes: opened -> disputed; won -> back to where it was; lost -> charged_back. A refund
   landing while a dispute is open is counted and the status stays disputed.
8. canceled and charged_back are terminal: no event changes them.
9. A refund that failed or was canceled after it was counted is taken back (its amount is
   no longer refunded; a dispute stays open). A refund never counted has nothing to take
   back: its reversal is stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from paygate.models import PaymentStatus as S
from paygate.state import Trigger as T

Outcome = Literal["applied", "duplicate", "stale", "invalid"]

UNSETTLED = frozenset({S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED})
CAPTURED = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED})
TERMINAL = frozenset({S.CANCELED, S.CHARGED_BACK})
NEVER_CAPTURED = frozenset({S.FAILED, S.CANCELED})

#: the forward order of the pre-capture lifecycle (rule 2)
LIFECYCLE = [T.CREATED, T.ACTION_REQUIRED, T.PROCESSING, T.AUTHORIZED, T.SUCCEEDED]
RANK = {trigger: rank for rank, trigger in enumerate(LIFECYCLE)}
STATUS_RANK = {S.PENDING: 0, S.REQUIRES_ACTION: 1, S.PROCESSING: 2, S.AUTHORIZED: 3}

#: the status a trigger leads to, when it leads to exactly one (rule 1: its duplicate)
LEADS_TO = {
    T.CREATED: S.PENDING,
    T.ACTION_REQUIRED: S.REQUIRES_ACTION,
    T.PROCESSING: S.PROCESSING,
    T.AUTHORIZED: S.AUTHORIZED,
    T.SUCCEEDED: S.SUCCEEDED,
    T.FAILED: S.FAILED,
    T.CANCELED: S.CANCELED,
    T.DISPUTE_OPENED: S.DISPUTED,
    T.DISPUTE_LOST: S.CHARGED_BACK,
}


def expected_outcome(status: S, trigger: T) -> Outcome:
    """The outcome class of ``trigger`` in ``status``, from the rules above (for a
    ``refund_reversed``: of a refund never counted, rule 9)."""
    if trigger is T.REFUND_REVERSED:
        return "stale"
    if LEADS_TO.get(trigger) is status:
        return "duplicate"  # rule 1
    if status is S.CANCELED:  # rule 8; and no money was ever captured
        money_moved = trigger in (T.SUCCEEDED, T.REFUNDED) or trigger.value.startswith("dispute")
        return "invalid" if money_moved else "stale"
    if status is S.CHARGED_BACK:  # rule 8; the money was captured, then taken back
        if trigger in (T.CANCELED, T.REFUNDED, T.DISPUTE_WON):
            return "invalid"  # cannot cancel a capture, refund taken money, win a lost case
        return "stale"  # the lifecycle before it, or the dispute's opening, reported late
    if trigger in (T.REFUNDED, T.DISPUTE_OPENED, T.DISPUTE_WON, T.DISPUTE_LOST):
        if status in NEVER_CAPTURED:
            return "invalid"  # rule 5: nothing was captured, nothing to refund or dispute
        if trigger is T.DISPUTE_WON:
            # only an open dispute can be won; otherwise it is a late (or repeated) ruling
            return "applied" if status is S.DISPUTED else "stale"
        if trigger is T.REFUNDED and status is S.REFUNDED:
            return "invalid"  # rule 5: everything is refunded already
        return "applied"  # rules 5, 6 and 7
    # the payment lifecycle: created ... succeeded, failed, canceled
    if status in CAPTURED or status is S.DISPUTED:
        # rule 2: a captured payment never goes back; a captured payment cannot be
        # canceled (it is refunded instead)
        return "invalid" if trigger is T.CANCELED else "stale"
    if trigger is T.CANCELED:
        return "applied"  # an unsettled or failed payment can be canceled
    if status is S.FAILED:
        return "stale" if trigger is T.CREATED else "applied"  # rule 3
    if trigger is T.FAILED:
        return "stale" if status is S.AUTHORIZED else "applied"  # rule 4
    return "applied" if RANK[trigger] > STATUS_RANK[status] else "stale"  # rule 2


class Impossible(Exception):
    """The reference model's InvalidTransition."""


@dataclass(frozen=True)
class RefPayment:
    """The reference model's state: plain fields, plain rules."""

    status: S
    amount: int
    captured: int = 0
    refunded: int = 0
    refund_ids: frozenset[str] = field(default_factory=frozenset)
    prior: S | None = None  # the status to go back to when a dispute is won

    def by_amounts(self, refunded: int) -> S:
        if refunded == 0:
            return S.SUCCEEDED
        return S.REFUNDED if refunded == self.captured else S.PARTIALLY_REFUNDED

    def step(
        self, trigger: T, amount: int | None = None, ref: str | None = None
    ) -> tuple[Outcome, RefPayment]:
        """(outcome, next state); raises :class:`Impossible` for an impossible event."""
        if trigger is T.REFUNDED and ref is not None and ref in self.refund_ids:
            return "duplicate", self  # the same refund reported again counts once
        if trigger is T.REFUND_REVERSED and ref is not None and ref in self.refund_ids:
            if self.status is S.CHARGED_BACK:
                return "stale", self
            if amount is None or not 1 <= amount <= self.refunded:
                raise Impossible(f"reversal of {amount} out of {self.refunded} refunded")
            refunded = self.refunded - amount
            state = replace(self, refunded=refunded, refund_ids=self.refund_ids - {ref})
            if state.status is S.DISPUTED:
                return "applied", replace(state, prior=state.by_amounts(refunded))
            return "applied", replace(state, status=state.by_amounts(refunded))
        outcome = expected_outcome(self.status, trigger)
        if outcome == "invalid":
            raise Impossible(f"{trigger} in {self.status}")
        if outcome != "applied":
            return outcome, self
        state = self
        if state.status in UNSETTLED and trigger in (
            T.REFUNDED,
            T.DISPUTE_OPENED,
            T.DISPUTE_LOST,
        ):
            state = replace(state, status=S.SUCCEEDED, captured=state.amount)  # rule 6
        if trigger is T.SUCCEEDED:
            captured = self.amount if amount is None else amount
            if not 1 <= captured <= self.amount:
                raise Impossible(f"capture of {captured} out of {self.amount}")
            return outcome, replace(state, status=S.SUCCEEDED, captured=captured)
        if trigger is T.REFUNDED:
            if amount is None or amount < 1:
                raise Impossible(f"refund of {amount}")
            refunded = state.refunded + amount
            if refunded > state.captured:
                raise Impossible(f"refunds of {refunded} beyond {state.captured} captured")
            ids = state.refund_ids | ({ref} if ref is not None else set())
            state = replace(state, refunded=refunded, refund_ids=frozenset(ids))
            if state.status is S.DISPUTED:
                return outcome, replace(state, prior=state.by_amounts(refunded))
            return outcome, replace(state, status=state.by_amounts(refunded))
        if trigger is T.DISPUTE_OPENED:
            return outcome, replace(state, status=S.DISPUTED, prior=state.status)
        if trigger is T.DISPUTE_WON:
            prior = state.prior or state.by_amounts(state.refunded)
            return outcome, replace(state, status=prior, prior=None)
        if trigger is T.DISPUTE_LOST:
            return outcome, replace(state, status=S.CHARGED_BACK, prior=None)
        target = LEADS_TO[trigger]
        return outcome, replace(state, status=target)


def consistent(status: S, amount: int, captured: int, refunded: int) -> bool:
    """Is ``status`` what the amounts say (the stateful test's invariant)?"""
    if not 0 <= refunded <= captured <= amount:
        return False
    if status in UNSETTLED or status in NEVER_CAPTURED:
        return captured == 0 and refunded == 0
    if status is S.SUCCEEDED:
        return captured > 0 and refunded == 0
    if status is S.PARTIALLY_REFUNDED:
        return 0 < refunded < captured
    if status is S.REFUNDED:
        return 0 < refunded == captured
    return captured > 0  # disputed, charged_back
