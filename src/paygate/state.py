"""The payment state machine: a pure function over one transition table.

No I/O, no clock. :func:`apply` takes a :class:`PaymentState` and a :class:`PaymentEvent`
and returns a :class:`Step`: the next state and whether the event was ``applied``, a
``duplicate`` (no-op) or ``stale`` (an event that arrived late; the state never goes
back). An impossible event raises :class:`~paygate.errors.InvalidTransition`.

Rules the table encodes:

* a ``failed`` attempt can still be retried to success; ``succeeded`` never goes back;
* refunds accumulate (each refund id counts once) up to the captured amount; the whole
  captured amount refunded is ``refunded``;
* a refund or dispute for a payment still shown unsettled proves it was captured: the
  capture is implied (webhooks arrive in any order);
* dispute opened → ``disputed``; won → back to where it was; lost → ``charged_back``;
  a refund that lands while the dispute is open is counted, and the status stays
  ``disputed`` until the dispute is decided (PayPal merchants refund to settle disputes);
* ``canceled`` and ``charged_back`` are terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from paygate._compat import StrEnum
from paygate.errors import InvalidTransition
from paygate.models import EventType, Payment, PaymentStatus, Refund, RefundStatus, WebhookEvent

__all__ = [
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
    #: a refund counted as succeeded later failed or was canceled: its amount comes back
    REFUND_REVERSED = "refund_reversed"


S = PaymentStatus
T = Trigger

#: cell values other than a target status
STALE: Final = "stale"  # arrived late: recorded, state unchanged
DUP: Final = "duplicate"  # the state already says so
PRIOR: Final = "prior"  # (dispute won) back to the status before the dispute
REFUND: Final = "refund"  # partially_refunded or refunded, by amount
REFUND_HELD: Final = "refund-held"  # (dispute open) refund counted, status stays disputed
IMPLY: Final = "imply-capture"  # capture implied first, then the event applies
REVERSE: Final = "reverse"  # a counted refund failed after all: its amount is taken back
Cell = (
    PaymentStatus
    | Literal["stale", "duplicate", "prior", "refund", "refund-held", "imply-capture", "reverse"]
)


def _row(*cells: Cell | None) -> dict[Trigger, Cell]:
    """One table row: the cells in ``Trigger`` order; ``None`` is an impossible event."""
    assert len(cells) == len(Trigger)
    return {t: c for t, c in zip(Trigger, cells, strict=True) if c is not None}


# fmt: off
#: status → trigger → outcome. A missing cell is an impossible event (InvalidTransition).
TABLE: Final[Mapping[PaymentStatus, Mapping[Trigger, Cell]]] = {
    #                          created action_required    processing    authorized    succeeded    failed    canceled    refunded     dispute_opened dispute_won dispute_lost refund_reversed
    S.PENDING:            _row(DUP,    S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED, IMPLY,       IMPLY,         STALE,      IMPLY, STALE   ),
    S.REQUIRES_ACTION:    _row(STALE,  DUP,               S.PROCESSING, S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED, IMPLY,       IMPLY,         STALE,      IMPLY, STALE   ),
    S.PROCESSING:         _row(STALE,  STALE,             DUP,          S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED, IMPLY,       IMPLY,         STALE,      IMPLY, STALE   ),
    S.AUTHORIZED:         _row(STALE,  STALE,             STALE,        DUP,          S.SUCCEEDED, STALE,    S.CANCELED, IMPLY,       IMPLY,         STALE,      IMPLY, STALE   ),
    S.FAILED:             _row(STALE,  S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED, S.SUCCEEDED, DUP,      S.CANCELED, None,        None,          None,       None, STALE   ),
    S.SUCCEEDED:          _row(STALE,  STALE,             STALE,        STALE,        DUP,         STALE,    None,       REFUND,      S.DISPUTED,    STALE,      S.CHARGED_BACK, REVERSE ),
    S.PARTIALLY_REFUNDED: _row(STALE,  STALE,             STALE,        STALE,        STALE,       STALE,    None,       REFUND,      S.DISPUTED,    STALE,      S.CHARGED_BACK, REVERSE ),
    S.REFUNDED:           _row(STALE,  STALE,             STALE,        STALE,        STALE,       STALE,    None,       None,        S.DISPUTED,    STALE,      S.CHARGED_BACK, REVERSE ),
    S.DISPUTED:           _row(STALE,  STALE,             STALE,        STALE,        STALE,       STALE,    None,       REFUND_HELD, DUP,           PRIOR,      S.CHARGED_BACK, REVERSE ),
    S.CHARGED_BACK:       _row(STALE,  STALE,             STALE,        STALE,        STALE,       STALE,    None,       None,        STALE,         None,       DUP, STALE   ),
    S.CANCELED:           _row(STALE,  STALE,             STALE,        STALE,        None,        STALE,    DUP,        None,        None,          None,       None, STALE   ),
}
# fmt: on

#: statuses no event can change
TERMINAL: Final = frozenset({S.CANCELED, S.CHARGED_BACK})


@dataclass(frozen=True, slots=True)
class PaymentState:
    """What the state machine knows of one payment. Amounts are minor units."""

    status: PaymentStatus
    amount: int
    captured: int = 0
    refunded: int = 0
    #: refund ids already counted, so a refund reported twice counts once
    refund_ids: frozenset[str] = field(default_factory=frozenset)
    #: the status to return to when an open dispute is won
    before_dispute: PaymentStatus | None = None


@dataclass(frozen=True, slots=True)
class PaymentEvent:
    """One input to the state machine.

    ``amount``: for ``SUCCEEDED`` the captured total (default: the whole amount); for
    ``REFUNDED`` this refund's amount. ``ref``: for ``REFUNDED`` the refund's id.
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
    #: the events that took effect, in causal order (an implied capture first); empty
    #: unless ``applied``. Each is one fact the application hears of.
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


def apply(state: PaymentState, event: PaymentEvent) -> Step:
    """Apply one event to one payment state. Pure: same input, same output."""
    step = _apply(state, event)
    if step.changed and not step.applied:
        return Step(step.state, step.result, (event,))
    return step


def _apply(state: PaymentState, event: PaymentEvent) -> Step:
    if event.trigger is T.REFUNDED and event.ref is not None and event.ref in state.refund_ids:
        return Step(state, "duplicate")
    cell = TABLE[state.status].get(event.trigger)
    if cell is None:
        raise _invalid(state, event)
    if cell == STALE:
        return Step(state, "stale")
    if cell == DUP:
        return Step(state, "duplicate")
    if cell == IMPLY:
        capture = PaymentEvent(T.SUCCEEDED)
        settled = _capture(state, capture)
        try:
            then = apply(settled, event)
        except InvalidTransition as exc:
            # report the status the payment really has, not the implied one
            why = str(exc).partition(": ")[2]
            raise _invalid(state, event, f"{why} (capture implied)".lstrip()) from None
        return Step(then.state, "applied", (capture, *then.applied))
    if cell == REFUND:
        return Step(_refund(state, event), "applied")
    if cell == REFUND_HELD:
        counted = _refund(state, event)
        held = replace(counted, status=state.status, before_dispute=counted.status)
        return Step(held, "applied")
    if cell == REVERSE:
        return _reverse(state, event)
    if cell == PRIOR:
        prior = state.before_dispute or _settled_status(state.captured, state.refunded)
        return Step(replace(state, status=prior, before_dispute=None), "applied")
    assert isinstance(cell, PaymentStatus)
    if cell is S.SUCCEEDED:
        return Step(_capture(state, event), "applied")
    if cell is S.DISPUTED:
        return Step(replace(state, status=cell, before_dispute=state.status), "applied")
    # the only plain move out of a dispute is charged_back: nothing left to return to
    return Step(replace(state, status=cell, before_dispute=None), "applied")


def _reverse(state: PaymentState, event: PaymentEvent) -> Step:
    """A refund counted as succeeded failed after all: take its amount back."""
    if event.ref is None or event.ref not in state.refund_ids:
        return Step(state, "stale")  # never counted: nothing to take back
    amount = event.amount
    if amount is None or not 0 < amount <= state.refunded:
        raise _invalid(state, event, f"reversed refund amount {amount} outside 1..{state.refunded}")
    refunded = state.refunded - amount
    ids = state.refund_ids - {event.ref}
    settled = _settled_status(state.captured, refunded)
    if state.status is S.DISPUTED:
        return Step(replace(state, refunded=refunded, refund_ids=ids, before_dispute=settled),
                    "applied")  # fmt: skip
    return Step(replace(state, status=settled, refunded=refunded, refund_ids=ids), "applied")


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


def event_for_status(status: PaymentStatus, *, captured: int | None = None) -> PaymentEvent | None:
    """The event that brings a payment to ``status``, for syncing with a provider's answer.

    Refund statuses have no single event (refunds carry their own amounts): ``None``.
    """
    trigger = _STATUS_TRIGGERS.get(status)
    if trigger is None:
        return None
    return PaymentEvent(trigger, amount=captured if trigger is T.SUCCEEDED else None)


def event_from_webhook(event: WebhookEvent) -> PaymentEvent | None:
    """The state-machine input carried by a webhook event, or ``None`` if it carries none.

    Refund events count once their refund has succeeded; a pending or failed refund does
    not move the payment.
    """
    obj = event.object
    if isinstance(obj, Refund):
        if event.type in (EventType.REFUND_CREATED, EventType.REFUND_SUCCEEDED) and (
            obj.status is RefundStatus.SUCCEEDED
        ):
            return PaymentEvent(T.REFUNDED, amount=obj.amount.amount, ref=obj.id)
        if obj.status in (RefundStatus.FAILED, RefundStatus.CANCELED):
            return PaymentEvent(T.REFUND_REVERSED, amount=obj.amount.amount, ref=obj.id)
        return None
    trigger = _EVENT_TRIGGERS.get(event.type)
    if trigger is None:
        return None
    if trigger is T.SUCCEEDED and isinstance(obj, Payment) and obj.amount_captured:
        return PaymentEvent(trigger, amount=obj.amount_captured.amount)
    return PaymentEvent(trigger)


def events_for_answer(state: PaymentState, payment: Payment) -> list[PaymentEvent]:
    """The events a provider's answer about a payment proves, for ``state`` as stored:
    its status (with the captured amount), and each refund the answer lists by id that
    the state has not counted (or counted, but the answer says failed)."""
    events: list[PaymentEvent] = []
    captured = payment.amount_captured.amount if payment.amount_captured else None
    change = event_for_status(payment.status, captured=captured or None)
    if change is not None:
        events.append(change)
    for refund in payment.refunds:
        if refund.status is RefundStatus.SUCCEEDED and refund.id not in state.refund_ids:
            events.append(PaymentEvent(T.REFUNDED, amount=refund.amount.amount, ref=refund.id))
        elif (
            refund.status in (RefundStatus.FAILED, RefundStatus.CANCELED)
            and refund.id in state.refund_ids
        ):
            events.append(
                PaymentEvent(T.REFUND_REVERSED, amount=refund.amount.amount, ref=refund.id)
            )
    return events


def state_of(payment: Payment) -> PaymentState:
    """A state for a payment first seen through an API answer or an event."""
    assert payment.amount_captured is not None and payment.amount_refunded is not None
    captured = payment.amount_captured.amount
    refunded = payment.amount_refunded.amount
    if (
        payment.status
        in (S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED, S.CHARGED_BACK)
        and not captured
    ):
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
    )


def to_mermaid() -> str:
    """The transition table as a Mermaid state diagram (the docs embed exactly this)."""
    lines = ["stateDiagram-v2", "    [*] --> pending"]
    dispute_sources = [st for st, row in TABLE.items() if row.get(T.DISPUTE_OPENED) is S.DISPUTED]
    for status, row in TABLE.items():
        edges: dict[str, list[str]] = {}
        for trigger, cell in row.items():
            if cell == REFUND:
                for refund_target in (S.PARTIALLY_REFUNDED, S.REFUNDED):
                    edges.setdefault(refund_target.value, []).append(trigger.value)
            elif cell == REVERSE:  # back by the reversed amount (a dispute stays open)
                targets = (
                    [status]
                    if status is S.DISPUTED
                    else [st for st in (S.SUCCEEDED, S.PARTIALLY_REFUNDED) if st is not status]
                )
                for target in targets:
                    edges.setdefault(target.value, []).append(trigger.value)
            elif cell == REFUND_HELD:
                edges.setdefault(status.value, []).append(trigger.value)
            elif cell == PRIOR:  # back to whichever status the dispute was opened from
                for prior in dispute_sources:
                    edges.setdefault(prior.value, []).append(trigger.value)
            elif cell == IMPLY:
                edges.setdefault("succeeded", []).append(f"{trigger.value}*")
            elif isinstance(cell, PaymentStatus) and cell is not status:
                edges.setdefault(cell.value, []).append(trigger.value)
        lines.extend(
            f"    {status.value} --> {target}: {', '.join(labels)}"
            for target, labels in edges.items()
        )
    lines.extend(f"    {terminal.value} --> [*]" for terminal in sorted(TERMINAL))
    return "\n".join(lines) + "\n"
