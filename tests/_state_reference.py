"""An independent reference model of the payment state machine, for the tests.

Written from the issues' rules in prose, not from ``paygate.state``'s tables: the
exhaustive test and the stateful test compare the real machine against it, so a table
cell that contradicts a rule shows up as a failing test rather than as agreement with
itself.

The rules (issue 2, "paygate.state"; issue 14, "order comes from the provider's data"):

1. Duplicates are no-ops: the event that brought the payment to its status, again; a
   refund id already counted; a dispute's status it already has.
2. Stale events never regress: before capture the lifecycle only moves forward
   (created < action_required < processing < authorized < succeeded); a late earlier step
   is stale. Nothing moves a captured payment back to pending/processing/failed.
3. A failed attempt can still be retried (to requires_action, processing, authorized,
   succeeded, canceled).
4. An authorized payment has a good authorization: a late failure of an earlier attempt is
   stale.
5. Refunds accumulate up to the captured amount; all of it refunded is ``refunded``.
   Refunds beyond the captured amount, and refunds of a failed or canceled payment (no
   money was captured), are impossible. A refund landing while a dispute is open, or
   after one was lost, is counted and the status stays.
6. A refund, a refund's failure or a dispute reported for a payment still shown unsettled
   proves it was captured (webhooks arrive in any order): the capture of the whole
   amount is implied (a fact, told first), then the event applies. The provider's own
   capture arriving later corrects the captured amount (the status follows the amounts;
   nothing new to tell).
7. Disputes are known by their id, each with its own status (open, won, lost):
   opened -> disputed; won -> back to where the payment was once no dispute is open;
   lost -> charged_back. News of a dispute matching its status is a duplicate; an
   opening of a decided dispute is stale; won after lost (or lost after won) is
   impossible. A dispute decided before it was seen opened is recorded as decided and
   its opening is implied (told first). Another id is another dispute. A payment shown
   disputed (charged back) with no open (lost) dispute recorded has one known without
   its id; the first id the news names takes it over if the news agrees with it (it is
   open, or the news is the ruling it had: nothing new to tell, the id is remembered);
   an id opened while it is decided is stale (which dispute cannot be told yet), and a
   ruling that contradicts it is another dispute's. A ruling without an id is pinned on
   the only open dispute and remembered as pinned; if that dispute is later said won, the
   loss was another dispute's (known again without its id; its opening is told then);
   if another dispute's loss is named first, the pinned loss was that one's (nothing new
   to tell but that one's opening if never seen) and the pinned dispute is open again. A
   loss without an id while several disputes are open is known without its id (told, its
   opening was told already) until an open dispute's own loss names it. News without an id is about the one known without an id, else the only
   open one, else one not seen before; an opening without an id while a dispute is open
   is a duplicate, and is stale once one without an id is known or the payment is
   charged back.
8. canceled and charged_back are terminal: no event changes their status.
9. A refund that failed or was canceled (``refund_reversed``): counted before, its amount
   comes back (a dispute stays open or lost); never counted, it is recorded as failed (a
   fact the application hears) and its late success is stale. Without an id there is
   nothing to take back or remember: stale. The failure again is a duplicate.
10. Provider time orders the attempt lifecycle (pending, requires_action, processing,
   failed) where both the event's time and the time of the status are known: an attempt
   event older than the status it would move away from is stale; at equal times the
   failure wins; the same status reported later only records the later time. Otherwise
   rules 2-4 decide. The time of the status is the latest time of the payment events
   applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from paygate.models import DisputeStatus
from paygate.models import PaymentStatus as S
from paygate.state import Trigger as T

Outcome = Literal["applied", "duplicate", "stale", "invalid"]
Fact = tuple[T, str | None]

UNSETTLED = frozenset({S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED})
CAPTURED = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED})
TERMINAL = frozenset({S.CANCELED, S.CHARGED_BACK})
NEVER_CAPTURED = frozenset({S.FAILED, S.CANCELED})
ATTEMPT = frozenset({S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.FAILED})
MONEY_NEWS = frozenset({T.REFUNDED, T.REFUND_REVERSED, T.DISPUTE_OPENED, T.DISPUTE_WON,
                        T.DISPUTE_LOST})  # fmt: skip
PAYMENT_NEWS = frozenset(set(T) - MONEY_NEWS)

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
}

OPEN, WON, LOST = DisputeStatus.OPEN, DisputeStatus.WON, DisputeStatus.LOST


def expected_outcome(status: S, trigger: T) -> Outcome:
    """The outcome class of ``trigger`` in ``status``, from the rules above, for news
    that no id ties to a refund or dispute the payment knows, and no times."""
    if trigger in MONEY_NEWS:
        if status in NEVER_CAPTURED:
            return "invalid"  # rules 5, 7, 9: nothing was captured
        if trigger is T.REFUNDED and status is S.REFUNDED:
            return "invalid"  # rule 5: everything is refunded already
        return "applied"  # rules 5, 6, 7, 9
    if LEADS_TO.get(trigger) is status:
        return "duplicate"  # rule 1
    if status is S.CANCELED:  # rule 8; and no money was ever captured
        return "invalid" if trigger is T.SUCCEEDED else "stale"
    if status is S.CHARGED_BACK or status in CAPTURED or status is S.DISPUTED:
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
    prior: S | None = None  # the status to go back to when the disputes are won
    as_of: float | None = None  # rule 10
    implied: bool = False  # rule 6: the capture was implied, not seen
    failed_refunds: frozenset[str] = field(default_factory=frozenset)  # rule 9
    disputes: tuple[tuple[str, DisputeStatus], ...] = ()  # rule 7, sorted by id
    pinned_loss: str | None = None  # rule 7: the open dispute an id-less loss was put on

    def by_amounts(self, refunded: int, captured: int | None = None) -> S:
        captured = self.captured if captured is None else captured
        if refunded == 0:
            return S.SUCCEEDED
        return S.REFUNDED if refunded == captured else S.PARTIALLY_REFUNDED

    def known_disputes(self) -> dict[str, DisputeStatus]:
        """Rule 7: the recorded disputes, plus the one known without its id."""
        known = dict(self.disputes)
        if self.status is S.DISPUTED and OPEN not in known.values():
            known.setdefault("", OPEN)
        if self.status is S.CHARGED_BACK and LOST not in known.values():
            known.setdefault("", LOST)
        return known

    def with_disputes(self, known: dict[str, DisputeStatus]) -> RefPayment:
        return replace(self, disputes=tuple(sorted(known.items())))

    def step(
        self, trigger: T, amount: int | None = None, ref: str | None = None, at: float | None = None
    ) -> tuple[Outcome, RefPayment, list[Fact]]:
        """(outcome, next state, the facts told); raises :class:`Impossible`."""
        if trigger in (T.DISPUTE_OPENED, T.DISPUTE_WON, T.DISPUTE_LOST):
            return self.dispute_news(trigger, ref)
        if trigger is T.REFUNDED and ref is not None:
            if ref in self.failed_refunds:
                return "stale", self, []  # rule 9
            if ref in self.refund_ids:
                return "duplicate", self, []  # rule 1
        if trigger is T.REFUND_REVERSED:
            if ref is None:
                return "stale", self, []  # rule 9
            if ref in self.failed_refunds:
                return "duplicate", self, []
            if ref in self.refund_ids:
                return self.take_back(amount, ref)
        if (
            trigger is T.SUCCEEDED
            and self.implied
            and (self.status in CAPTURED or self.status in (S.DISPUTED, S.CHARGED_BACK))
        ):
            return self.correct_capture(amount, at)
        if trigger in PAYMENT_NEWS:
            timed = self.by_time(trigger, at)
            if timed is not None:
                return timed
        outcome = expected_outcome(self.status, trigger)
        if outcome == "invalid":
            raise Impossible(f"{trigger} in {self.status}")
        if outcome != "applied":
            return outcome, self, []
        facts: list[Fact] = []
        state = self
        if state.status in UNSETTLED and trigger in MONEY_NEWS:
            state = replace(state, status=S.SUCCEEDED, captured=state.amount, implied=True)
            facts.append((T.SUCCEEDED, None))  # rule 6
        if trigger is T.REFUNDED:
            return "applied", state.count_refund(amount, ref), [*facts, (trigger, ref)]
        if trigger is T.REFUND_REVERSED:
            recorded = replace(state, failed_refunds=state.failed_refunds | {str(ref)})
            return "applied", recorded, [*facts, (trigger, ref)]
        if trigger is T.SUCCEEDED:
            captured = self.amount if amount is None else amount
            if not 1 <= captured <= self.amount:
                raise Impossible(f"capture of {captured} out of {self.amount}")
            state = replace(state, status=S.SUCCEEDED, captured=captured)
        else:
            state = replace(state, status=LEADS_TO[trigger])
        if at is not None and (state.as_of is None or at > state.as_of):
            state = replace(state, as_of=at)  # rule 10
        return "applied", state, [(trigger, None)]

    def by_time(
        self, trigger: T, at: float | None
    ) -> tuple[Outcome, RefPayment, list[Fact]] | None:
        """Rule 10, or ``None`` when it does not decide."""
        if at is None or self.as_of is None or self.status not in ATTEMPT:
            return None
        if trigger not in (T.CREATED, T.ACTION_REQUIRED, T.PROCESSING, T.FAILED):
            return None
        if LEADS_TO[trigger] is self.status:
            if at > self.as_of:
                return "applied", replace(self, as_of=at), []
            return "duplicate", self, []
        if at < self.as_of or (at == self.as_of and self.status is S.FAILED):
            return "stale", self, []
        return None

    def count_refund(self, amount: int | None, ref: str | None) -> RefPayment:
        if amount is None or amount < 1:
            raise Impossible(f"refund of {amount}")
        refunded = self.refunded + amount
        if refunded > self.captured:
            raise Impossible(f"refunds of {refunded} beyond {self.captured} captured")
        ids = self.refund_ids | ({ref} if ref is not None else set())
        state = replace(self, refunded=refunded, refund_ids=frozenset(ids))
        if state.status is S.DISPUTED:
            return replace(state, prior=state.by_amounts(refunded))
        if state.status is S.CHARGED_BACK:
            return state
        return replace(state, status=state.by_amounts(refunded))

    def take_back(self, amount: int | None, ref: str) -> tuple[Outcome, RefPayment, list[Fact]]:
        if amount is None or not 1 <= amount <= self.refunded:
            raise Impossible(f"reversal of {amount} out of {self.refunded} refunded")
        refunded = self.refunded - amount
        state = replace(
            self,
            refunded=refunded,
            refund_ids=self.refund_ids - {ref},
            failed_refunds=self.failed_refunds | {ref},
        )
        if state.status is S.DISPUTED:
            state = replace(state, prior=state.by_amounts(refunded))
        elif state.status is not S.CHARGED_BACK:
            state = replace(state, status=state.by_amounts(refunded))
        return "applied", state, [(T.REFUND_REVERSED, ref)]

    def correct_capture(
        self, amount: int | None, at: float | None
    ) -> tuple[Outcome, RefPayment, list[Fact]]:
        captured = self.amount if amount is None else amount
        if not (1 <= captured <= self.amount and captured >= self.refunded):
            raise Impossible(f"capture of {captured} with {self.refunded} refunded")
        state = replace(self, captured=captured, implied=False)
        if at is not None and (state.as_of is None or at > state.as_of):
            state = replace(state, as_of=at)
        if state.status is S.DISPUTED:
            state = replace(state, prior=state.by_amounts(state.refunded))
        elif state.status is not S.CHARGED_BACK:
            state = replace(state, status=state.by_amounts(state.refunded))
        return "applied", state, []

    def dispute_news(self, trigger: T, ref: str | None) -> tuple[Outcome, RefPayment, list[Fact]]:
        if self.status in NEVER_CAPTURED:
            raise Impossible(f"{trigger} of a {self.status} payment")
        known = self.known_disputes()
        open_ones = sorted(key for key, status in known.items() if status is OPEN)
        if ref is not None:
            which = ref
        elif trigger is T.DISPUTE_OPENED:
            if open_ones:
                return "duplicate", self, []
            if "" in known or self.status is S.CHARGED_BACK:
                return "stale", self, []
            which = ""
        elif "" in known:
            which = ""
        elif len(open_ones) == 1:
            which = open_ones[0]
            if trigger is T.DISPUTE_LOST:  # pinned on the only open one, remembered
                outcome, state, facts = self.dispute_news(trigger, which)
                return outcome, replace(state, pinned_loss=which), facts
        elif open_ones and trigger is T.DISPUTE_LOST:
            # one of several open ones lost: known without its id till its ruling names it
            known[""] = LOST
            state = replace(self.with_disputes(known), status=S.CHARGED_BACK, prior=None)
            return "applied", state, [(trigger, None)]
        else:
            which = ""
        its_status = known.get(which)
        pinned = self.pinned_loss
        if trigger is T.DISPUTE_LOST and pinned not in (None, which) and its_status in (None, OPEN):
            # the loss pinned on another dispute was this one's (told already): that one is
            # open again; this one's opening is told if it was never seen
            assert pinned is not None
            known[pinned], known[which] = OPEN, LOST
            told: list[Fact] = [] if its_status is not None else [(T.DISPUTE_OPENED, which)]
            return "applied", replace(self.with_disputes(known), pinned_loss=None), told
        if trigger is T.DISPUTE_LOST and its_status is OPEN and known.get("") is LOST:
            del known[""]  # the loss known without its id was this one's: nothing new
            known[which] = LOST
            return "applied", self.with_disputes(known), []
        if trigger is T.DISPUTE_LOST and pinned == which and its_status is LOST:
            return "applied", replace(self, pinned_loss=None), []  # the pin was right
        renamed = False
        if its_status is None and which != "" and "" in known:
            anonymous = known[""]
            wanted = {T.DISPUTE_OPENED: OPEN, T.DISPUTE_WON: WON, T.DISPUTE_LOST: LOST}[trigger]
            if anonymous is not OPEN and trigger is T.DISPUTE_OPENED:
                return "stale", self, []  # which dispute opened cannot be told yet
            if anonymous is OPEN or anonymous is wanted:  # it agrees: it is this one
                its_status, renamed = known.pop(""), True
        fact_ref = which or None
        if its_status is not None:  # a dispute the payment knows
            wanted = {T.DISPUTE_OPENED: OPEN, T.DISPUTE_WON: WON, T.DISPUTE_LOST: LOST}[trigger]
            if its_status is wanted or (trigger is T.DISPUTE_OPENED):
                outcome: Outcome = "duplicate" if its_status is wanted else "stale"
                if renamed:
                    known[which] = its_status
                    return "applied", self.with_disputes(known), []
                return outcome, self, []
            if trigger is T.DISPUTE_WON and its_status is LOST and self.pinned_loss == which:
                # the loss pinned on it (reported without an id) was another dispute's: it
                # was won, and the lost one is known again without its id
                others = [k for k, status in known.items() if status is OPEN and k != which]
                known[which] = WON
                facts_told: list[Fact] = [(trigger, fact_ref)]
                if len(others) == 1:  # the other open one lost (its loss was told)
                    known[others[0]] = LOST
                else:  # one without its id, its opening never told
                    known[""] = LOST
                    facts_told.append((T.DISPUTE_OPENED, None))
                state = replace(self.with_disputes(known), pinned_loss=None)
                return "applied", state, facts_told
            if its_status is not OPEN:
                raise Impossible(f"{trigger} of a dispute {its_status}")
            known[which] = wanted
            state = self.with_disputes(known)
            if trigger is T.DISPUTE_LOST:
                return (
                    "applied",
                    replace(state, status=S.CHARGED_BACK, prior=None),
                    [(trigger, fact_ref)],
                )
            if state.status is S.DISPUTED and OPEN not in known.values():
                back = state.prior or state.by_amounts(state.refunded)
                state = replace(state, status=back, prior=None)
            return "applied", state, [(trigger, fact_ref)]
        # a dispute not seen before
        facts: list[Fact] = []
        state = self
        if state.status in UNSETTLED:
            state = replace(state, status=S.SUCCEEDED, captured=state.amount, implied=True)
            facts.append((T.SUCCEEDED, None))  # rule 6
        if trigger is T.DISPUTE_OPENED:
            known[which] = OPEN
            state = state.with_disputes(known)
            if state.status in CAPTURED:
                state = replace(state, status=S.DISPUTED, prior=state.status)
            return "applied", state, [*facts, (trigger, fact_ref)]
        facts.append((T.DISPUTE_OPENED, fact_ref))  # decided before seen opened: implied
        if trigger is T.DISPUTE_WON:
            known[which] = WON
            return "applied", state.with_disputes(known), [*facts, (trigger, fact_ref)]
        known[which] = LOST
        state = replace(state.with_disputes(known), status=S.CHARGED_BACK, prior=None)
        return "applied", state, [*facts, (trigger, fact_ref)]


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
