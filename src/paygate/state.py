"""The payment state machine: a pure function over transition tables.

No I/O, no clock. [`apply`][paygate.state.apply] takes a [`PaymentState`][paygate.state.PaymentState] and a [`PaymentEvent`][paygate.state.PaymentEvent]
and returns a [`Step`][paygate.state.Step]: the next state and whether the event was ``applied``, a
``duplicate`` (no-op) or ``stale`` (an event that arrived late; the state never goes
back). An impossible event raises [`InvalidTransition`][paygate.errors.InvalidTransition].

Order comes from the provider's data, never from arrival. Three kinds of it:

* **Ids.** A refund or dispute the state knows by its id (``PaymentEvent.ref``) is judged
  by its own status first ([`REFUND_RULES`][paygate.state.REFUND_RULES], [`DISPUTE_RULES`][paygate.state.DISPUTE_RULES]): the same news
  twice is a duplicate, news older than what the state knows of it is stale. Only news
  of a refund or dispute not seen before goes to [`TABLE`][paygate.state.TABLE], by the payment's status.
* **Provider time.** Before capture, a failed attempt can be retried (``failed`` →
  ``requires_action`` → ...), and a delivery can be late: an attempt event
  (``created``, ``action_required``, ``processing``, ``failed``) that is *older* by the
  provider's clock (``PaymentEvent.at``) than the status it would undo
  (``PaymentState.as_of``) is stale. At equal times (providers stamp whole seconds) the
  failure wins. Where either time is unknown, the table alone decides.
* **What an event proves.** A refund or dispute of a payment still shown unsettled
  proves the capture; a dispute decided before it was seen opened proves the opening.
  Both are *implied*: they take effect first, and `Step.applied` lists them first.

Rules the tables encode:

* a ``failed`` attempt can still be retried to success; ``succeeded`` never goes back;
* refunds accumulate (each refund id counts once) up to the captured amount; the whole
  captured amount refunded is ``refunded``;
* a refund that fails or is canceled after it was counted is taken back; one that fails
  *before* its success was seen is recorded as failed (the application hears "refund
  failed" once, and its late success is stale: the money was never counted as returned);
* dispute opened → ``disputed``; won → back to where it was (once no other dispute is
  open); lost → ``charged_back``; a refund that lands while a dispute is open (or after
  it was lost) is counted, and the status stays;
* an implied capture took the whole amount; the provider's own ``succeeded`` (or an
  answer) arriving later corrects it to the captured amount, telling nothing new;
* ``canceled`` and ``charged_back`` are terminal.

`Step.applied` lists the facts an applied step established, in causal order; it is
empty when an applied step only refined what the state knows (a newer provider time for
the same status, an implied capture's amount confirmed): persist the state, tell nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from paygate._compat import StrEnum
from paygate._replace import replace
from paygate.errors import InvalidTransition
from paygate.models import (
    Dispute,
    DisputeStatus,
    EventType,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    WebhookEvent,
)

__all__ = [
    "DISPUTE_RULES",
    "REFUND_RULES",
    "TABLE",
    "TERMINAL",
    "PaymentEvent",
    "PaymentState",
    "Step",
    "Trigger",
    "apply",
    "apply_all",
    "event_for_status",
    "event_from_webhook",
    "events_for_answer",
    "state_of",
    "to_mermaid",
    "diagram_edges",
]


class Trigger(StrEnum):
    """The state machine's alphabet (webhook event types map onto it)."""

    CREATED = "created"
    ACTION_REQUIRED = "action_required"
    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"
    #: a refund failed or was canceled: a counted one's amount comes back
    REFUND_REVERSED = "refund_reversed"


S = PaymentStatus
T = Trigger
D = DisputeStatus

#: cell values other than a target status
STALE: Final = "stale"  # arrived late: recorded, state unchanged
DUP: Final = "duplicate"  # the state already says so
PRIOR: Final = "prior"  # (dispute won) back to the status before the dispute
REFUND: Final = "refund"  # partially_refunded or refunded, by amount
REFUND_HELD: Final = "refund-held"  # (dispute open or lost) refund counted, status stays
IMPLY: Final = "imply-capture"  # capture implied first, then the event applies
REVERSE: Final = "reverse"  # a counted refund failed after all: its amount is taken back
RECORD: Final = "record"  # recorded by its id (a refund failed, a dispute); status stays
Cell = (
    PaymentStatus
    | Literal[
        "stale", "duplicate", "prior", "refund", "refund-held", "imply-capture", "reverse",
        "record",
    ]
)  # fmt: skip


def _row(*cells: Cell | None) -> dict[Trigger, Cell]:
    """One table row: the cells in ``Trigger`` order; ``None`` is an impossible event."""
    assert len(cells) == len(Trigger)
    return {t: c for t, c in zip(Trigger, cells, strict=True) if c is not None}


# fmt: off
#: status → trigger → outcome. A missing cell is an impossible event (InvalidTransition).
#: The last four columns are news of a refund or dispute NOT known yet by its id (a
#: known one is judged by REFUND_RULES / DISPUTE_RULES first); a dispute won or lost
#: here was never seen opened: its opening is implied.
TABLE: Final[Mapping[PaymentStatus, Mapping[Trigger, Cell]]] = {
    #                          created action_required    processing    authorized    succeeded    failed    canceled    refunded     dispute_opened dispute_won dispute_lost    refund_reversed
    S.PENDING:            _row(DUP,    S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED, IMPLY,       IMPLY,         IMPLY,      IMPLY,          IMPLY ),
    S.REQUIRES_ACTION:    _row(STALE,  DUP,               S.PROCESSING, S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED, IMPLY,       IMPLY,         IMPLY,      IMPLY,          IMPLY ),
    S.PROCESSING:         _row(STALE,  STALE,             DUP,          S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED, IMPLY,       IMPLY,         IMPLY,      IMPLY,          IMPLY ),
    S.AUTHORIZED:         _row(STALE,  STALE,             STALE,        DUP,          S.SUCCEEDED, STALE,    S.CANCELED, IMPLY,       IMPLY,         IMPLY,      IMPLY,          IMPLY ),
    S.FAILED:             _row(STALE,  S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED, S.SUCCEEDED, DUP,      S.CANCELED, None,        None,          None,       None,           None  ),
    S.SUCCEEDED:          _row(STALE,  STALE,             STALE,        STALE,        DUP,         STALE,    None,       REFUND,      S.DISPUTED,    RECORD,     S.CHARGED_BACK, RECORD),
    S.PARTIALLY_REFUNDED: _row(STALE,  STALE,             STALE,        STALE,        STALE,       STALE,    None,       REFUND,      S.DISPUTED,    RECORD,     S.CHARGED_BACK, RECORD),
    S.REFUNDED:           _row(STALE,  STALE,             STALE,        STALE,        STALE,       STALE,    None,       None,        S.DISPUTED,    RECORD,     S.CHARGED_BACK, RECORD),
    S.DISPUTED:           _row(STALE,  STALE,             STALE,        STALE,        STALE,       STALE,    None,       REFUND_HELD, RECORD,        RECORD,     S.CHARGED_BACK, RECORD),
    S.CHARGED_BACK:       _row(STALE,  STALE,             STALE,        STALE,        STALE,       STALE,    None,       REFUND_HELD, RECORD,        RECORD,     RECORD,         RECORD),
    S.CANCELED:           _row(STALE,  STALE,             STALE,        STALE,        None,        STALE,    DUP,        None,        None,          None,       None,           None  ),
}

#: a refund known by its id (counted, or failed/canceled) → trigger → outcome
REFUND_RULES: Final[Mapping[str, Mapping[Trigger, Cell]]] = {
    #            refunded  refund_reversed
    "counted":  {T.REFUNDED: DUP,   T.REFUND_REVERSED: REVERSE},
    "reversed": {T.REFUNDED: STALE, T.REFUND_REVERSED: DUP},
}

#: a dispute known by its id → trigger → outcome (a missing cell: it contradicts the
#: dispute's own status). "won" of an open dispute returns the payment to its status
#: before the dispute once no other dispute is open.
DISPUTE_RULES: Final[Mapping[DisputeStatus, Mapping[Trigger, Cell]]] = {
    #        dispute_opened      dispute_won          dispute_lost
    D.OPEN: {T.DISPUTE_OPENED: DUP,   T.DISPUTE_WON: PRIOR, T.DISPUTE_LOST: S.CHARGED_BACK},
    D.WON:  {T.DISPUTE_OPENED: STALE, T.DISPUTE_WON: DUP},
    D.LOST: {T.DISPUTE_OPENED: STALE,                       T.DISPUTE_LOST: DUP},
}
# fmt: on

#: statuses no event can change
TERMINAL: Final = frozenset({S.CANCELED, S.CHARGED_BACK})

#: the attempt lifecycle, where provider time orders a retry against a late delivery
_ATTEMPT: Final = frozenset({S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.FAILED})
_ATTEMPT_TARGET: Final[Mapping[Trigger, PaymentStatus]] = {
    T.CREATED: S.PENDING,
    T.ACTION_REQUIRED: S.REQUIRES_ACTION,
    T.PROCESSING: S.PROCESSING,
    T.FAILED: S.FAILED,
}
_LIFECYCLE: Final = frozenset(
    {T.CREATED, T.ACTION_REQUIRED, T.PROCESSING, T.AUTHORIZED, T.SUCCEEDED, T.FAILED, T.CANCELED}
)
_DISPUTE_TRIGGERS: Final = frozenset({T.DISPUTE_OPENED, T.DISPUTE_WON, T.DISPUTE_LOST})
_CAPTURED: Final = frozenset(
    {S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED, S.CHARGED_BACK}
)
#: the key of a dispute known without its id (from an answer, a legacy row, an event
#: without one); the first event naming a dispute's id takes it over
ANONYMOUS: Final = ""

Disputes = tuple[tuple[str, DisputeStatus], ...]


@dataclass(frozen=True, slots=True)
class PaymentState:
    """What the state machine knows of one payment. Amounts are minor units."""

    status: PaymentStatus
    amount: int
    captured: int = 0
    refunded: int = 0
    #: refund ids already counted, so a refund reported twice counts once
    refund_ids: frozenset[str] = field(default_factory=frozenset)
    #: the status to return to when the open disputes are won
    before_dispute: PaymentStatus | None = None
    #: the provider's time (POSIX seconds) of the newest payment event the status
    #: reflects, where known: an attempt event older than it is stale
    as_of: float | None = None
    #: the capture was implied by a refund or dispute that arrived first (whole amount),
    #: the provider's own capture not yet seen
    capture_implied: bool = False
    #: refund ids that failed or were canceled: a late success of one is stale
    reversed_refund_ids: frozenset[str] = field(default_factory=frozenset)
    #: the disputes seen, by id, sorted: (id, open | won | lost); ``""`` is one known
    #: without its id
    disputes: Disputes = ()
    #: the open dispute a loss reported without an id (an answer's ``charged_back``) was
    #: pinned on: if the provider later says that one was won, the loss was another's
    pinned_loss: str | None = None

    def dispute_statuses(self) -> dict[str, DisputeStatus]:
        """The disputes by id. A ``disputed`` or ``charged_back`` state that recorded
        none (a row from before disputes were tracked) has one without its id."""
        known = dict(self.disputes)
        if self.status is S.DISPUTED and D.OPEN not in known.values():
            known.setdefault(ANONYMOUS, D.OPEN)
        elif self.status is S.CHARGED_BACK and D.LOST not in known.values():
            known.setdefault(ANONYMOUS, D.LOST)
        return known


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One input to the state machine.

    ``amount``: for ``SUCCEEDED`` the captured total (default: the whole amount); for
    ``REFUNDED`` / ``REFUND_REVERSED`` this refund's amount. ``ref``: the refund's id
    for refund triggers, the dispute's id for dispute triggers.
    """

    trigger: Trigger
    amount: int | None = None
    ref: str | None = None
    #: when the provider says this happened (POSIX seconds), where it says so
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Step:
    state: PaymentState
    result: Literal["applied", "duplicate", "stale"]
    #: the facts this step established, in causal order (an implied capture first, an
    #: implied dispute opening before its ruling); empty unless ``applied``, and empty
    #: when the step only refined the state (persist it, nothing new to tell). Each is
    #: one fact the application hears of.
    applied: tuple[PaymentEvent, ...] = ()

    @property
    def changed(self) -> bool:
        return self.result == "applied"


def _invalid(state: PaymentState, event: PaymentEvent, why: str = "") -> InvalidTransition:
    detail = f": {why}" if why else ""
    return InvalidTransition(
        f"{event.trigger.value} cannot happen to a {state.status.value} payment{detail}",
        status=state.status.value,
        trigger=event.trigger.value,
    )


def _stale(state: PaymentState) -> Step:
    return Step(state, "stale")


def _dup(state: PaymentState) -> Step:
    return Step(state, "duplicate")


def apply(state: PaymentState, event: PaymentEvent) -> Step:
    """Apply one event to one payment state. Pure: same input, same output."""
    trigger = event.trigger
    if trigger in _DISPUTE_TRIGGERS:
        return _dispute(state, event)
    if trigger in (T.REFUNDED, T.REFUND_REVERSED) and event.ref is not None:
        known = _refund_known(state, event.ref)
        if known is not None:
            rule = REFUND_RULES[known][trigger]
            if rule == REVERSE:
                return _reverse(state, event)
            return _stale(state) if rule == STALE else _dup(state)
    elif trigger is T.REFUND_REVERSED:
        return _stale(state)  # no id: nothing to take back, nothing to remember
    if trigger is T.SUCCEEDED and state.capture_implied and state.status in _CAPTURED:
        return _confirm_capture(state, event)
    timed = _by_time(state, event)
    if timed is not None:
        return timed
    cell = TABLE[state.status].get(trigger)
    if cell is None:
        raise _invalid(state, event)
    if cell == STALE:
        return _stale(state)
    if cell == DUP:
        return _dup(state)
    if cell == IMPLY:
        return _implying_capture(state, event, lambda settled: apply(settled, event))
    if cell == REFUND:
        return Step(_refund(state, event), "applied", (event,))
    if cell == REFUND_HELD:
        counted = _refund(state, event)
        held = replace(
            counted,
            status=state.status,
            before_dispute=counted.status if state.status is S.DISPUTED else None,
        )
        return Step(held, "applied", (event,))
    if cell == RECORD:  # a refund that failed before its success was seen
        reversed_ids = state.reversed_refund_ids | {str(event.ref)}
        return Step(replace(state, reversed_refund_ids=reversed_ids), "applied", (event,))
    assert isinstance(cell, PaymentStatus), cell
    if cell is S.SUCCEEDED:
        return Step(_timed(_capture(state, event), event), "applied", (event,))
    return Step(_timed(replace(state, status=cell), event), "applied", (event,))


def _refund_known(state: PaymentState, ref: str) -> Literal["counted", "reversed"] | None:
    """How the state knows refund ``ref`` (a REFUND_RULES row), if it does."""
    if ref in state.reversed_refund_ids:
        return "reversed"
    return "counted" if ref in state.refund_ids else None


def _timed(state: PaymentState, event: PaymentEvent) -> PaymentState:
    """``state`` reflecting a payment event of provider time ``event.at``."""
    if event.at is None or event.trigger not in _LIFECYCLE:
        return state
    if state.as_of is not None and state.as_of >= event.at:
        return state
    return replace(state, as_of=event.at)


def _by_time(state: PaymentState, event: PaymentEvent) -> Step | None:
    """The attempt lifecycle ordered by the provider's clock, where both times are
    known; ``None``: the table decides."""
    target = _ATTEMPT_TARGET.get(event.trigger)
    if target is None or state.status not in _ATTEMPT:
        return None
    if event.at is None or state.as_of is None:
        return None
    if target is state.status:  # the same status, confirmed later: remember the time
        if event.at > state.as_of:
            return Step(replace(state, as_of=event.at), "applied")
        return _dup(state)
    if event.at < state.as_of:
        return _stale(state)  # older than the status it would undo
    if event.at == state.as_of and state.status is S.FAILED:
        return _stale(state)  # the same second: the failure wins (see the module doc)
    return None


def _implying_capture(
    state: PaymentState,
    event: PaymentEvent,
    then: Callable[[PaymentState], Step],
) -> Step:
    """The capture implied first (the whole amount, until the provider's own capture
    says otherwise), then ``then`` applies to the captured payment."""
    capture = PaymentEvent(T.SUCCEEDED)
    settled = replace(_capture(state, capture), capture_implied=True)
    try:
        step = then(settled)
    except InvalidTransition as exc:
        # report the status the payment really has, not the implied one
        why = str(exc).partition(": ")[2]
        raise _invalid(state, event, f"{why} (capture implied)".lstrip()) from None
    if not step.changed:
        return Step(state, step.result)
    return Step(step.state, "applied", (capture, *step.applied))


def _confirm_capture(state: PaymentState, event: PaymentEvent) -> Step:
    """The provider's own capture, after a refund or dispute implied it: its amount
    replaces the implied whole amount. Nothing new to tell (the capture was told)."""
    captured = state.amount if event.amount is None else event.amount
    if not state.refunded <= captured <= state.amount or captured <= 0:
        raise _invalid(
            state, event, f"captured {captured} outside {max(1, state.refunded)}..{state.amount}"
        )
    settled = _settled_status(captured, state.refunded)
    status, before = state.status, state.before_dispute
    if status is S.DISPUTED:
        before = settled
    elif status is not S.CHARGED_BACK:
        status = settled
    confirmed = replace(
        state, status=status, before_dispute=before, captured=captured, capture_implied=False
    )
    return Step(_timed(confirmed, event), "applied")


def _reverse(state: PaymentState, event: PaymentEvent) -> Step:
    """A refund counted as succeeded failed after all: take its amount back."""
    amount = event.amount
    if amount is None or not 0 < amount <= state.refunded:
        raise _invalid(state, event, f"reversed refund amount {amount} outside 1..{state.refunded}")
    ref = str(event.ref)
    refunded = state.refunded - amount
    reverted = replace(
        state,
        refunded=refunded,
        refund_ids=state.refund_ids - {ref},
        reversed_refund_ids=state.reversed_refund_ids | {ref},
    )
    settled = _settled_status(state.captured, refunded)
    if state.status is S.DISPUTED:
        return Step(replace(reverted, before_dispute=settled), "applied", (event,))
    if state.status is S.CHARGED_BACK:
        return Step(reverted, "applied", (event,))
    return Step(replace(reverted, status=settled), "applied", (event,))


def _capture(state: PaymentState, event: PaymentEvent) -> PaymentState:
    captured = state.amount if event.amount is None else event.amount
    if not 0 < captured <= state.amount:
        raise _invalid(state, event, f"captured {captured} outside 1..{state.amount}")
    return replace(state, status=S.SUCCEEDED, captured=captured)


def _refund(state: PaymentState, event: PaymentEvent) -> PaymentState:
    amount = event.amount
    if amount is None or amount <= 0:
        raise _invalid(state, event, f"refund amount must be positive, got {amount}")
    refunded = state.refunded + amount
    if refunded > state.captured:
        raise _invalid(
            state, event, f"refunds of {refunded} would exceed the captured {state.captured}"
        )
    ids = state.refund_ids | {event.ref} if event.ref is not None else state.refund_ids
    status = _settled_status(state.captured, refunded)
    return replace(state, status=status, refunded=refunded, refund_ids=ids)


def _settled_status(captured: int, refunded: int) -> PaymentStatus:
    """The status a captured payment has by its amounts alone (no dispute open)."""
    if refunded <= 0:
        return S.SUCCEEDED
    return S.REFUNDED if refunded >= captured else S.PARTIALLY_REFUNDED


# -- disputes, by their own id -----------------------------------------------------------------


def _dispute(state: PaymentState, event: PaymentEvent) -> Step:
    """A dispute event: judged by the dispute's own status when it is known (by its id,
    or as the one known without an id), else as a new dispute by the payment's status."""
    trigger, ref = event.trigger, event.ref
    known = state.dispute_statuses()
    open_ids = [key for key, status in known.items() if status is D.OPEN]
    if ref is not None:
        key = ref
    elif trigger is T.DISPUTE_OPENED:
        # without an id: the open dispute again, or the late opening of the one known
        # without an id; a charged-back payment is not disputed again
        if open_ids:
            return _dup(state)
        if ANONYMOUS in known or state.status is S.CHARGED_BACK:
            return _stale(state)
        key = ANONYMOUS
    elif ANONYMOUS in known:
        key = ANONYMOUS
    else:  # a ruling without an id: the only open dispute's, else one not seen before
        key = open_ids[0] if len(open_ids) == 1 else ANONYMOUS
        if key != ANONYMOUS and trigger is T.DISPUTE_LOST:
            step = _dispute(state, replace(event, ref=key))
            return replace(step, state=replace(step.state, pinned_loss=key))
        if open_ids and trigger is T.DISPUTE_LOST:
            # one of several open disputes was lost, which one is not said: known without
            # its id until its own ruling names it (its opening was told already)
            known[ANONYMOUS] = D.LOST
            lost = replace(state, status=S.CHARGED_BACK, before_dispute=None,
                           disputes=tuple(sorted(known.items())))  # fmt: skip
            return Step(lost, "applied", (replace(event, ref=None),))
    current = known.get(key)
    pinned = state.pinned_loss
    if trigger is T.DISPUTE_LOST and pinned not in (None, key) and current in (None, D.OPEN):
        # a loss named at last: the one pinned on another dispute was this one's (already
        # told); that other dispute is open again. Its opening is told if never seen.
        assert pinned is not None
        known[pinned], known[key] = D.OPEN, D.LOST
        opening = (
            () if current is not None else (PaymentEvent(T.DISPUTE_OPENED, ref=key, at=event.at),)
        )
        moved = replace(state, disputes=tuple(sorted(known.items())), pinned_loss=None)
        return Step(moved, "applied", opening)
    if trigger is T.DISPUTE_LOST and pinned == key and current is D.LOST:
        # the loss pinned on it was its own after all: confirmed, nothing new to tell
        return Step(replace(state, pinned_loss=None), "applied")
    anonymous = known.get(ANONYMOUS) if current is None and key != ANONYMOUS else None
    if anonymous is not None and anonymous is not D.OPEN and trigger is T.DISPUTE_OPENED:
        # an id opened while the dispute known without its id is decided: which dispute
        # this is cannot be told (its ruling will say); nothing new to tell
        return _stale(state)
    # the dispute known without its id (an answer said disputed / charged back) is this
    # one only if the news agrees with it: it is open, or this is the ruling it had. A
    # ruling that contradicts it is another dispute's (the answer showed one lost, and
    # the event says dp_1 was won)
    ruling = {T.DISPUTE_WON: D.WON, T.DISPUTE_LOST: D.LOST}.get(trigger)
    took_over = anonymous is not None and (anonymous is D.OPEN or ruling is anonymous)
    if ANONYMOUS in known and current is D.OPEN and ruling is D.LOST is known[ANONYMOUS]:
        # the loss known without its id was this open dispute's: named, nothing new to tell
        del known[ANONYMOUS]
        known[key] = D.LOST
        return Step(replace(state, disputes=tuple(sorted(known.items()))), "applied")
    if took_over:
        current = known[ANONYMOUS]  # the dispute known without its id, named at last
    if current is None:
        return _new_dispute(state, event, key)
    rule = DISPUTE_RULES[current].get(trigger)
    if rule is None and state.pinned_loss == key and (current, trigger) == (D.LOST, T.DISPUTE_WON):
        # the provider says this dispute was won: the loss an answer reported was another
        # dispute's (the only one open then was taken for it), known again without its id
        # (an open one, if just one is: its loss was told; else one known without its id,
        # whose opening was never told, and is now)
        others = [k for k, status in known.items() if status is D.OPEN and k != key]
        known[key] = D.WON
        told: tuple[PaymentEvent, ...] = (replace(event, ref=key),)
        if len(others) == 1:
            known[others[0]] = D.LOST
        else:
            known[ANONYMOUS] = D.LOST
            told += (PaymentEvent(T.DISPUTE_OPENED, at=event.at),)
        regrouped = replace(state, disputes=tuple(sorted(known.items())), pinned_loss=None)
        return Step(regrouped, "applied", told)
    if rule is None:
        raise _invalid(state, event, f"dispute {key or '(no id)'} is {current.value}")
    if rule in (DUP, STALE):
        if took_over:  # nothing new to tell; remember the id, so another id is another dispute
            named = replace(state, disputes=_with_dispute(state, key, current, took_over=True))
            return Step(named, "applied")
        return _stale(state) if rule == STALE else _dup(state)
    fact = replace(event, ref=key or None)
    if rule == PRIOR:  # won
        decided = _with_dispute(state, key, D.WON, took_over=took_over)
        still_open = any(status is D.OPEN for _, status in decided)
        if state.status is S.DISPUTED and not still_open:
            prior = state.before_dispute or _settled_status(state.captured, state.refunded)
            won = replace(state, status=prior, before_dispute=None, disputes=decided)
            return Step(won, "applied", (fact,))
        return Step(replace(state, disputes=decided), "applied", (fact,))
    assert rule is S.CHARGED_BACK, rule  # lost
    lost = replace(
        state,
        status=S.CHARGED_BACK,
        before_dispute=None,
        disputes=_with_dispute(state, key, D.LOST, took_over=took_over),
    )
    return Step(lost, "applied", (fact,))


def _with_dispute(
    state: PaymentState, key: str, status: DisputeStatus, *, took_over: bool = False
) -> Disputes:
    """``state``'s disputes with ``key`` now ``status`` (sorted, as stored); ``took_over``:
    ``key`` names the dispute known without an id, which goes."""
    known = state.dispute_statuses()
    if took_over:
        del known[ANONYMOUS]
    known[key] = status
    return tuple(sorted(known.items()))


def _new_dispute(state: PaymentState, event: PaymentEvent, key: str) -> Step:
    """News of a dispute not seen before, by the payment's status (TABLE)."""
    cell = TABLE[state.status].get(event.trigger)
    if cell is None:
        raise _invalid(state, event)
    if cell == IMPLY:
        return _implying_capture(state, event, lambda settled: _new_dispute(settled, event, key))
    ref = key or None
    opening = PaymentEvent(T.DISPUTE_OPENED, ref=ref, at=event.at)
    fact = replace(event, ref=ref)
    if event.trigger is T.DISPUTE_OPENED:
        disputes = _with_dispute(state, key, D.OPEN)
        if cell is S.DISPUTED:
            opened = replace(state, status=S.DISPUTED, before_dispute=state.status)
            return Step(replace(opened, disputes=disputes), "applied", (fact,))
        assert cell == RECORD, cell  # another dispute while one is open, or charged back
        return Step(replace(state, disputes=disputes), "applied", (fact,))
    if event.trigger is T.DISPUTE_WON:
        assert cell == RECORD, cell  # decided before it was seen opened: status stays
        won = replace(state, disputes=_with_dispute(state, key, D.WON))
        return Step(won, "applied", (opening, fact))
    lost_disputes = _with_dispute(state, key, D.LOST)
    if cell == RECORD:  # charged back already (another dispute)
        return Step(replace(state, disputes=lost_disputes), "applied", (opening, fact))
    assert cell is S.CHARGED_BACK, cell
    lost = replace(state, status=S.CHARGED_BACK, before_dispute=None, disputes=lost_disputes)
    return Step(lost, "applied", (opening, fact))


def apply_all(state: PaymentState, events: Iterable[PaymentEvent]) -> PaymentState:
    """Fold events over a state; stale and duplicate events are skipped."""
    for event in events:
        state = apply(state, event).state
    return state


# -- mapping from the outside world ----------------------------------------------------------

_EVENT_TRIGGERS: Final[Mapping[EventType, Trigger]] = {
    EventType.PAYMENT_CREATED: T.CREATED,
    EventType.PAYMENT_ACTION_REQUIRED: T.ACTION_REQUIRED,
    EventType.PAYMENT_PROCESSING: T.PROCESSING,
    EventType.PAYMENT_AUTHORIZED: T.AUTHORIZED,
    EventType.PAYMENT_SUCCEEDED: T.SUCCEEDED,
    EventType.PAYMENT_FAILED: T.FAILED,
    EventType.PAYMENT_CANCELED: T.CANCELED,
    EventType.DISPUTE_OPENED: T.DISPUTE_OPENED,
    EventType.DISPUTE_WON: T.DISPUTE_WON,
    EventType.DISPUTE_LOST: T.DISPUTE_LOST,
}

_STATUS_TRIGGERS: Final[Mapping[PaymentStatus, Trigger]] = {
    S.PENDING: T.CREATED,
    S.REQUIRES_ACTION: T.ACTION_REQUIRED,
    S.PROCESSING: T.PROCESSING,
    S.AUTHORIZED: T.AUTHORIZED,
    S.SUCCEEDED: T.SUCCEEDED,
    S.FAILED: T.FAILED,
    S.CANCELED: T.CANCELED,
    S.DISPUTED: T.DISPUTE_OPENED,
    S.CHARGED_BACK: T.DISPUTE_LOST,
}


def event_for_status(
    status: PaymentStatus, *, captured: int | None = None, at: float | None = None
) -> PaymentEvent | None:
    """The event that brings a payment to ``status``, for syncing with a provider's answer.

    Refund statuses have no single event (refunds carry their own amounts): ``None``.
    `events_for_answer` is the whole sync (capture, refunds, disputes).
    """
    trigger = _STATUS_TRIGGERS.get(status)
    if trigger is None:
        return None
    return PaymentEvent(trigger, amount=captured if trigger is T.SUCCEEDED else None, at=at)


def event_from_webhook(event: WebhookEvent) -> PaymentEvent | None:
    """The state-machine input carried by a webhook event, or ``None`` if it carries none.

    ``at`` is the event's own time (``WebhookEvent.occurred_at``); ``ref`` the refund's
    or the dispute's id. Refund events count once their refund has succeeded; a failed
    or canceled refund is a ``REFUND_REVERSED``; a pending one does not move the payment.
    """
    obj = event.object
    at = event.occurred_at.timestamp() if event.occurred_at is not None else None
    if isinstance(obj, Refund):
        if event.type in (EventType.REFUND_CREATED, EventType.REFUND_SUCCEEDED) and (
            obj.status is RefundStatus.SUCCEEDED
        ):
            return PaymentEvent(T.REFUNDED, amount=obj.amount.amount, ref=obj.id, at=at)
        if obj.status in (RefundStatus.FAILED, RefundStatus.CANCELED):
            return PaymentEvent(T.REFUND_REVERSED, amount=obj.amount.amount, ref=obj.id, at=at)
        return None
    trigger = _EVENT_TRIGGERS.get(event.type)
    if trigger is None:
        return None
    if trigger is T.SUCCEEDED and isinstance(obj, Payment) and obj.amount_captured:
        return PaymentEvent(trigger, amount=obj.amount_captured.amount, at=at)
    ref = obj.id if trigger in _DISPUTE_TRIGGERS and isinstance(obj, Dispute) and obj.id else None
    return PaymentEvent(trigger, ref=ref, at=at)


def events_for_answer(
    state: PaymentState, payment: Payment, *, at: float | None = None
) -> list[PaymentEvent]:
    """The events a provider's answer about a payment proves, for ``state`` as stored,
    in causal order: its status (for a captured payment: the capture, with the captured
    amount, unless the state has seen the provider's own capture), each refund the
    answer lists by id that the state has not counted (or that failed: taken back or
    recorded), then the dispute state.

    ``at``: the time the answer is current as of (the gateway's clock read just before
    it asked), so that a webhook older than the answer cannot undo it. Refunds are
    counted from the listed refunds only, never from ``amount_refunded`` (a partial
    capture's released remainder is not a refund). A dispute is learned from the status
    only when the state knows of none (``disputed``: opened; ``charged_back``: lost, the
    only open one or one without an id); that a dispute was won is never inferred (a
    provider's payment status does not reliably say a dispute ended).
    """
    events: list[PaymentEvent] = []
    status = payment.status
    captured = payment.amount_captured.amount if payment.amount_captured else 0
    if status in _CAPTURED:
        if state.status not in _CAPTURED or state.capture_implied:
            events.append(PaymentEvent(T.SUCCEEDED, amount=captured or None, at=at))
    elif status not in (S.PARTIALLY_REFUNDED, S.REFUNDED):
        change = event_for_status(status, at=at)
        if change is not None:
            events.append(change)
    for refund in payment.refunds:
        ref, amount = refund.id, refund.amount.amount
        if ref in state.reversed_refund_ids:
            continue
        if refund.status is RefundStatus.SUCCEEDED and ref not in state.refund_ids:
            events.append(PaymentEvent(T.REFUNDED, amount=amount, ref=ref, at=at))
        elif refund.status in (RefundStatus.FAILED, RefundStatus.CANCELED):
            events.append(PaymentEvent(T.REFUND_REVERSED, amount=amount, ref=ref, at=at))
    if status is S.DISPUTED and not state.dispute_statuses():
        events.append(PaymentEvent(T.DISPUTE_OPENED, at=at))
    elif status is S.CHARGED_BACK and state.status is not S.CHARGED_BACK:
        events.append(PaymentEvent(T.DISPUTE_LOST, at=at))
    return events


def state_of(payment: Payment, *, at: float | None = None) -> PaymentState:
    """A state for a payment first seen through an API answer or an event (``at``: as
    in `events_for_answer`). Refunds the answer lists are counted by id; an
    answer that lists none is taken by its amounts."""
    if payment.refunds:
        state = PaymentState(S.PENDING, payment.amount.amount)
        try:
            for event in events_for_answer(state, payment, at=at):
                state = apply(state, event).state
            return state
        except InvalidTransition:
            pass  # an answer at odds with itself: by its amounts, as below
    assert payment.amount_captured is not None and payment.amount_refunded is not None
    captured = payment.amount_captured.amount
    refunded = payment.amount_refunded.amount
    if payment.status in _CAPTURED and not captured:
        captured = payment.amount.amount
    if payment.status is S.REFUNDED and not refunded:
        refunded = captured  # the provider says refunded without the amount: all of it
    return PaymentState(
        status=payment.status,
        amount=payment.amount.amount,
        captured=captured,
        refunded=refunded,
        # a dispute won returns the payment to what its amounts say it was
        before_dispute=(
            _settled_status(captured, refunded) if payment.status is S.DISPUTED else None
        ),
        as_of=at,
    )


def diagram_edges() -> list[tuple[str, str, str]]:
    """The transition tables as a diagram's edges: ``(status, next status, triggers)``.

    One edge per pair of statuses, its label the triggers that move the payment along it
    (comma-separated; a ``*`` marks a refund, refund failure or dispute reported for a
    payment still shown unsettled, which implies the capture first). An edge from a status
    to itself is news the payment records without moving. The docs draw these at build time
    (the `state-diagram` fence on the state machine page); [`to_mermaid`][paygate.state.to_mermaid]
    writes the same edges as Mermaid.
    """
    found: list[tuple[str, str, str]] = []
    dispute_sources = [st for st, row in TABLE.items() if row.get(T.DISPUTE_OPENED) is S.DISPUTED]
    for status, row in TABLE.items():
        edges: dict[str, list[str]] = {}
        for trigger, cell in row.items():
            if cell == REFUND:
                for refund_target in (S.PARTIALLY_REFUNDED, S.REFUNDED):
                    edges.setdefault(refund_target.value, []).append(trigger.value)
            elif cell in (REFUND_HELD, RECORD):
                edges.setdefault(status.value, []).append(trigger.value)
            elif cell == IMPLY:
                edges.setdefault("succeeded", []).append(f"{trigger.value}*")
            elif isinstance(cell, PaymentStatus) and cell is not status:
                edges.setdefault(cell.value, []).append(trigger.value)
        # news of a refund or dispute known by its id (REFUND_RULES, DISPUTE_RULES)
        if status in _CAPTURED:
            label = T.REFUND_REVERSED.value
            targets: list[PaymentStatus]
            if status in (S.DISPUTED, S.CHARGED_BACK):
                targets = [status]  # the amount comes back, the status stays
            else:
                targets = [st for st in (S.SUCCEEDED, S.PARTIALLY_REFUNDED) if st is not status]
            for target in targets:
                labels = edges.setdefault(target.value, [])
                if label not in labels:
                    labels.append(label)
        if status is S.DISPUTED:  # the open dispute won: back to where the payment was
            for prior in dispute_sources:
                edges.setdefault(prior.value, []).append(T.DISPUTE_WON.value)
            lost = edges.setdefault(S.CHARGED_BACK.value, [])
            if T.DISPUTE_LOST.value not in lost:
                lost.append(T.DISPUTE_LOST.value)
        found.extend((status.value, target, ", ".join(labels)) for target, labels in edges.items())
    return found


def to_mermaid() -> str:
    """The transition tables as a Mermaid state diagram (the same edges as
    [`diagram_edges`][paygate.state.diagram_edges])."""
    lines = ["stateDiagram-v2", "    [*] --> pending"]
    lines.extend(f"    {source} --> {target}: {label}" for source, target, label in diagram_edges())
    lines.extend(f"    {terminal.value} --> [*]" for terminal in sorted(TERMINAL))
    return "\n".join(lines) + "\n"
