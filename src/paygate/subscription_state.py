"""The subscription state machine: a pure function over one transition table.

No I/O, no clock. A subscription's news is a *snapshot* of the provider's object (from a
webhook or an API answer), sometimes with a notice (the trial ends soon) or an invoice's
news (paid, payment failed, upcoming). [apply][paygate.subscription_state.apply] folds one
piece of news into a [SubscriptionState][paygate.subscription_state.SubscriptionState] and
returns a [SubscriptionStep][paygate.subscription_state.SubscriptionStep]: the next state,
whether the news was ``applied``, a ``duplicate`` or ``stale``, and the facts it
established (each one the application hears once).

Order comes from the provider's data, never from arrival. A snapshot's place in the
provider's history is its [order key][paygate.subscription_state.order_key]:

* Square: the object's ``version`` (it grows with every change);
* PayPal: the object's ``update_time``;
* Stripe: the event's ``created`` (an API answer: the time it was asked), then the
  object's own fields (a later ``current_period_start`` is newer; at one second, the
  status further along the lifecycle, so two deliveries of one second converge too).

A snapshot older than the state's is ``stale`` (recorded, nothing changes); one with the
state's key and content is a ``duplicate``. A newer one replaces the snapshot, and the
move between statuses is judged by [TABLE][paygate.subscription_state.TABLE]. Changes
within a status tell facts of their own: a new period (renewed), a new price or quantity
(plan changed), a cancellation scheduled for the period's end or taken back.

Invoices are judged by their own id: paid once, a payment failure once per attempt (and
stale once the invoice is known paid), upcoming once.

Out of order, a status the provider has already left is never told: the application hears
the provider's latest state and each invoice's news, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final, Literal

from paygate.errors import InvalidTransition
from paygate.models import EventType, Invoice, Subscription, SubscriptionStatus

__all__ = [
    "INVOICE_KINDS",
    "SUBSCRIPTION_FACT_TYPES",
    "TABLE",
    "TERMINAL",
    "InvoiceNews",
    "SubscriptionFactNews",
    "SubscriptionNews",
    "SubscriptionState",
    "SubscriptionStep",
    "apply",
    "apply_all",
    "diagram_edges",
    "order_key",
    "to_text_table",
]

SS = SubscriptionStatus
E = EventType
SAME: Final = "same"  # the status stays: only the fields' own facts are told
QUIET: Final = "quiet"  # allowed, tells nothing of its own
Cell = EventType | Literal["same", "quiet"]

_P, _I, _T, _A, _D, _U, _Z, _C, _X = (
    SS.PENDING, SS.INCOMPLETE, SS.TRIALING, SS.ACTIVE, SS.PAST_DUE, SS.UNPAID, SS.PAUSED,
    SS.CANCELED, SS.INCOMPLETE_EXPIRED,
)  # fmt: skip
ACT, REC, RES = E.SUBSCRIPTION_ACTIVATED, E.SUBSCRIPTION_RECOVERED, E.SUBSCRIPTION_RESUMED
PD, UNP, PAU = E.SUBSCRIPTION_PAST_DUE, E.SUBSCRIPTION_UNPAID, E.SUBSCRIPTION_PAUSED
CAN, EXP = E.SUBSCRIPTION_CANCELED, E.SUBSCRIPTION_EXPIRED


def _row(*cells: Cell | None) -> dict[SubscriptionStatus, Cell]:
    """One table row: the cells in column order; ``None`` is an impossible move."""
    columns = (_P, _I, _T, _A, _D, _U, _Z, _C, _X)
    assert len(cells) == len(columns)
    return {s: c for s, c in zip(columns, cells, strict=True) if c is not None}


# fmt: off
#: status now → status the provider's newer snapshot shows → the fact the move tells
#: (QUIET: allowed, nothing to tell; SAME: no move). A missing cell (None) is impossible
#: (InvalidTransition): a canceled or expired subscription never comes back.
TABLE: Final[Mapping[SubscriptionStatus, Mapping[SubscriptionStatus, Cell]]] = {
    #        pending incomplete trialing active past_due unpaid paused canceled expired
    _P: _row(SAME,   QUIET,     QUIET,   ACT,   PD,      UNP,   PAU,   CAN,     EXP ),
    _I: _row(None,   SAME,      QUIET,   ACT,   PD,      UNP,   None,  CAN,     EXP ),
    _T: _row(None,   None,      SAME,    ACT,   PD,      UNP,   PAU,   CAN,     None),
    _A: _row(None,   None,      QUIET,   SAME,  PD,      UNP,   PAU,   CAN,     None),
    _D: _row(None,   None,      None,    REC,   SAME,    UNP,   PAU,   CAN,     None),
    _U: _row(None,   None,      None,    REC,   PD,      SAME,  PAU,   CAN,     None),
    _Z: _row(None,   None,      RES,     RES,   PD,      UNP,   SAME,  CAN,     None),
    _C: _row(None,   None,      None,    None,  None,    None,  None,  SAME,    None),
    _X: _row(None,   None,      None,    None,  None,    None,  None,  None,    SAME),
}
# fmt: on

#: statuses no newer snapshot can leave
TERMINAL: Final = frozenset({SS.CANCELED, SS.INCOMPLETE_EXPIRED})

#: at one provider time (Stripe stamps whole seconds), the status further along wins
_LIFECYCLE_RANK: Final[Mapping[SubscriptionStatus, int]] = {
    SS.PENDING: 0, SS.INCOMPLETE: 1, SS.TRIALING: 2, SS.ACTIVE: 3, SS.PAUSED: 4,
    SS.PAST_DUE: 5, SS.UNPAID: 6, SS.CANCELED: 9, SS.INCOMPLETE_EXPIRED: 9,
}  # fmt: skip

#: the invoice news the machine knows
INVOICE_KINDS: Final = ("paid", "payment_failed", "upcoming")
_INVOICE_FACTS: Final[Mapping[str, EventType]] = {
    "paid": E.INVOICE_PAID,
    "payment_failed": E.INVOICE_PAYMENT_FAILED,
    "upcoming": E.INVOICE_UPCOMING,
}

#: every fact a subscription's news can establish
SUBSCRIPTION_FACT_TYPES: Final = frozenset(
    {cell for row in TABLE.values() for cell in row.values() if isinstance(cell, EventType)}
    | set(_INVOICE_FACTS.values())
    | {
        E.SUBSCRIPTION_TRIAL_WILL_END,
        E.SUBSCRIPTION_RENEWED,
        E.SUBSCRIPTION_PLAN_CHANGED,
        E.SUBSCRIPTION_CANCEL_SCHEDULED,
        E.SUBSCRIPTION_CANCEL_UNSCHEDULED,
    }
)

#: how many invoices a state remembers by id (the outbox's unique fact ids guard older ones)
_INVOICES_KEPT: Final = 48

OrderKey = tuple[int, float, float, int]


def _ts(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def order_key(subscription: Subscription, at: float | None) -> OrderKey:
    """A snapshot's place in the provider's history (larger is newer).

    Args:
        subscription: The snapshot.
        at: The provider's time of the news (Stripe's event ``created``; for an API
            answer, the time it was asked), used where the object has no version or
            update time of its own.

    Returns:
        ``(version, time, period start, lifecycle rank)``: the version alone where the
        provider keeps one; otherwise an unknown part is lowest.
    """
    if subscription.version is not None:
        # the provider numbers its changes (Square): the number alone orders them, and
        # one number is one content, whenever and however it was learned
        return (subscription.version, 0.0, 0.0, 0)
    version = -1
    moment = _ts(subscription.updated_at)
    if moment is None:
        moment = at if at is not None else float("-inf")
    period = _ts(subscription.current_period_start)
    return (
        version,
        moment,
        period if period is not None else float("-inf"),
        _LIFECYCLE_RANK[subscription.status],
    )


@dataclass(frozen=True, slots=True)
class InvoiceNews:
    """News of one invoice of the subscription.

    Attributes:
        kind: ``"paid"``, ``"payment_failed"`` or ``"upcoming"``.
        invoice_id: The invoice's id (an upcoming invoice without one: any stable key,
            such as the period it bills).
        attempt: For ``payment_failed``: which collection attempt failed (each is told).
        invoice: The invoice, where the news carried it.
    """

    kind: Literal["paid", "payment_failed", "upcoming"]
    invoice_id: str
    attempt: int = 0
    invoice: Invoice | None = field(default=None, compare=False)

    @classmethod
    def of(
        cls, kind: Literal["paid", "payment_failed", "upcoming"], invoice: Invoice
    ) -> InvoiceNews:
        """The news an invoice event carries."""
        return cls(
            kind, invoice.id, invoice.attempt_count if kind == "payment_failed" else 0, invoice
        )


@dataclass(frozen=True, slots=True)
class SubscriptionNews:
    """One input to the machine: a snapshot, with a notice or an invoice's news.

    Attributes:
        subscription: The provider's object as this news shows it (``None``: invoice news
            about a subscription already known).
        at: The provider's time of the news (POSIX seconds), where it says.
        trial_will_end: The provider's notice that the trial ends soon.
        invoice: An invoice's news.
    """

    subscription: Subscription | None
    at: float | None = None
    trial_will_end: bool = False
    invoice: InvoiceNews | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionFactNews:
    """One fact a step established.

    Attributes:
        type: The fact (``subscription.past_due``, ``invoice.paid``, ...).
        ref: What makes this occurrence of the fact unique for the subscription: the
            invoice's id (and attempt), the trial's end, or the transition's number.
        at: The provider's time of the news that established it.
    """

    type: EventType
    ref: str
    at: float | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionState:
    """What the machine knows of one subscription: the newest snapshot and its bookkeeping.

    Attributes:
        subscription: The provider's newest snapshot (without ``raw``).
        key: Its [order key][paygate.subscription_state.order_key].
        changes: How many applied snapshots moved it (numbers the status facts).
        invoices: Invoices known by id, newest last: ``(id, "paid" | "failed:N" |
            "upcoming")``.
        trial_notice: The trial end (POSIX seconds) whose notice was told.
        renewed_from: The period start whose renewal was told (or first seen).
    """

    subscription: Subscription
    key: OrderKey
    changes: int = 0
    invoices: tuple[tuple[str, str], ...] = ()
    trial_notice: float | None = None
    renewed_from: float | None = None

    @property
    def status(self) -> SubscriptionStatus:
        return self.subscription.status


@dataclass(frozen=True, slots=True)
class SubscriptionStep:
    """The outcome of [apply][paygate.subscription_state.apply].

    Attributes:
        state: The state after the news.
        result: ``"applied"``, ``"duplicate"`` or ``"stale"``.
        facts: The facts established, in causal order (empty unless applied).
        previous: The status before the news (``None``: first seen).
    """

    state: SubscriptionState
    result: Literal["applied", "duplicate", "stale"]
    facts: tuple[SubscriptionFactNews, ...] = ()
    previous: SubscriptionStatus | None = None

    @property
    def changed(self) -> bool:
        return self.result == "applied"


def _content(sub: Subscription) -> tuple[object, ...]:
    return (sub.status, sub.price_id, sub.quantity, sub.current_period_start,
            sub.current_period_end, sub.cancel_at_period_end, sub.trial_end, sub.customer_id,
            sub.resumes_at)  # fmt: skip


def _tiebreak(sub: Subscription) -> tuple[str, ...]:
    """A total order on snapshots with one order key, so that ties converge too."""
    return tuple(str(part) for part in _content(sub))


def _clean(sub: Subscription) -> Subscription:
    return replace(sub, raw=None)


def _invalid(
    previous: SubscriptionStatus, new: SubscriptionStatus, sub_id: str
) -> InvalidTransition:
    return InvalidTransition(
        f"subscription {sub_id} cannot go from {previous.value} to {new.value}",
        status=previous.value,
        trigger=new.value,
    )


def _field_facts(
    old: Subscription | None,
    new: Subscription,
    state: SubscriptionState,
    number: int,
    at: float | None,
) -> tuple[list[SubscriptionFactNews], float | None]:
    """The facts of changes within the snapshot (period, plan, scheduled cancel)."""
    facts: list[SubscriptionFactNews] = []
    renewed_from = state.renewed_from
    start = _ts(new.current_period_start)
    if start is not None and (renewed_from is None or start > renewed_from):
        if (
            old is not None
            and renewed_from is not None
            and new.status is SS.ACTIVE
            and old.status not in (SS.PENDING, SS.INCOMPLETE, SS.TRIALING)
        ):
            facts.append(SubscriptionFactNews(E.SUBSCRIPTION_RENEWED, f"{int(start)}", at))
            renewed_from = start
        elif renewed_from is None:
            renewed_from = start  # the first period seen is no renewal
        elif new.status is SS.ACTIVE:
            renewed_from = start
    if old is None:
        return facts, renewed_from
    if (old.price_id, old.quantity) != (new.price_id, new.quantity) and new.status not in TERMINAL:
        facts.append(SubscriptionFactNews(E.SUBSCRIPTION_PLAN_CHANGED, str(number), at))
    if new.status not in TERMINAL and old.cancel_at_period_end != new.cancel_at_period_end:
        kind = (
            E.SUBSCRIPTION_CANCEL_SCHEDULED if new.cancel_at_period_end
            else E.SUBSCRIPTION_CANCEL_UNSCHEDULED
        )  # fmt: skip
        facts.append(SubscriptionFactNews(kind, str(number), at))
    return facts, renewed_from


def _snapshot(
    state: SubscriptionState | None, news: SubscriptionNews, sub: Subscription
) -> tuple[SubscriptionState, Literal["applied", "duplicate", "stale"], list[SubscriptionFactNews]]:
    key = order_key(sub, news.at)
    if state is not None:
        if key < state.key:
            return state, "stale", []
        if key == state.key and _content(sub) == _content(state.subscription):
            return state, "duplicate", []
        if key == state.key and _tiebreak(sub) < _tiebreak(state.subscription):
            return state, "stale", []  # a true tie: the larger content wins, whatever the order
    old = state.subscription if state is not None else None
    previous = old.status if old is not None else SS.PENDING
    cell = TABLE[previous].get(sub.status, "missing")
    if cell == "missing":
        raise _invalid(previous, sub.status, sub.id)
    number = (state.changes if state is not None else 0) + 1
    base = state if state is not None else SubscriptionState(_clean(sub), key)
    facts: list[SubscriptionFactNews] = []
    if isinstance(cell, EventType) and (old is None or old.status is not sub.status):
        facts.append(SubscriptionFactNews(cell, str(number), news.at))
    field_facts, renewed_from = _field_facts(old, sub, base, number, news.at)
    facts.extend(field_facts)
    moved = replace(
        base, subscription=_clean(sub), key=key, changes=number, renewed_from=renewed_from
    )
    return moved, "applied", facts


def _invoice(
    state: SubscriptionState, news: InvoiceNews, at: float | None
) -> tuple[SubscriptionState, list[SubscriptionFactNews]]:
    known = dict(state.invoices)
    current = known.get(news.invoice_id)
    if news.kind == "paid":
        if current == "paid":
            return state, []
        mark, ref = "paid", news.invoice_id
    elif news.kind == "payment_failed":
        mark = f"failed:{news.attempt}"
        if current == "paid":
            return state, []  # paid since: the failure is past news
        if (
            current is not None
            and current.startswith("failed:")
            and (int(current.split(":")[1]) >= news.attempt)
        ):
            return state, []
        ref = f"{news.invoice_id}:{news.attempt}"
    else:
        if current is not None:
            return state, []
        mark, ref = "upcoming", news.invoice_id
    kept = tuple((i, m) for i, m in state.invoices if i != news.invoice_id)
    kept = (*kept, (news.invoice_id, mark))[-_INVOICES_KEPT:]
    fact = SubscriptionFactNews(_INVOICE_FACTS[news.kind], ref, at)
    return replace(state, invoices=kept), [fact]


def apply(state: SubscriptionState | None, news: SubscriptionNews) -> SubscriptionStep:
    """Fold one piece of news into a subscription's state. Pure: same input, same output.

    Args:
        state: What is known (``None``: the subscription was never seen).
        news: The news.

    Returns:
        The step: the new state, the result, the facts to tell.

    Raises:
        InvalidTransition: A newer snapshot shows a move the table forbids (a canceled
            subscription active again).
        ValueError: Invoice news of a subscription never seen, without a snapshot.
    """
    previous = state.status if state is not None else None
    facts: list[SubscriptionFactNews] = []
    result: Literal["applied", "duplicate", "stale"] = "duplicate"
    if news.subscription is not None:
        state, result, facts = _snapshot(state, news, news.subscription)
    if state is None:
        raise ValueError("invoice news of a subscription never seen needs its snapshot")
    if news.trial_will_end:
        trial_end = _ts(state.subscription.trial_end)
        if (
            state.status is SS.TRIALING
            and trial_end is not None
            and state.trial_notice != trial_end
            and (news.subscription is None or _ts(news.subscription.trial_end) == trial_end)
        ):
            state = replace(state, trial_notice=trial_end)
            facts.append(
                SubscriptionFactNews(E.SUBSCRIPTION_TRIAL_WILL_END, f"{int(trial_end)}", news.at)
            )
            result = "applied"
    if news.invoice is not None:
        state, told = _invoice(state, news.invoice, news.at)
        if told:
            facts.extend(told)
            result = "applied"
    return SubscriptionStep(state, result, tuple(facts) if result == "applied" else (), previous)


def apply_all(
    state: SubscriptionState | None, news: Iterable[SubscriptionNews]
) -> SubscriptionState | None:
    """Fold news over a state; stale and duplicate news is skipped."""
    for item in news:
        state = apply(state, item).state
    return state


def to_text_table() -> str:
    """The transition table as a Markdown table (the docs embed exactly this)."""
    statuses = list(TABLE)
    header = "| now ↓ / provider shows → | " + " | ".join(s.value for s in statuses) + " |"
    lines = [header, "|" + "---|" * (len(statuses) + 1)]
    for status, row in TABLE.items():
        cells = []
        for target in statuses:
            cell = row.get(target, "missing")
            if cell == "missing":
                cells.append("✗")
            elif cell == SAME:
                cells.append("=")
            elif cell == QUIET:
                cells.append("·")
            else:
                assert isinstance(cell, EventType)
                cells.append(f"`{cell.value.partition('.')[2]}`")
        lines.append(f"| **{status.value}** | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def diagram_edges() -> list[tuple[str, str, str]]:
    """The table as a diagram's edges: ``(status, next status, fact)``.

    One edge per allowed move, labelled with the fact it tells (``·``: none); the loop on
    ``active`` lists the facts of changes within the status. The docs draw these at build
    time (the ``state-diagram`` fence of the subscriptions page).
    """
    found: list[tuple[str, str, str]] = []
    for status, row in TABLE.items():
        for target, cell in row.items():
            if cell == SAME:
                continue
            label = cell.value.partition(".")[2] if isinstance(cell, EventType) else "·"
            found.append((status.value, target.value, label))
    within = ", ".join(
        kind.value.partition(".")[2]
        for kind in (
            E.SUBSCRIPTION_RENEWED,
            E.SUBSCRIPTION_PLAN_CHANGED,
            E.SUBSCRIPTION_CANCEL_SCHEDULED,
            E.SUBSCRIPTION_CANCEL_UNSCHEDULED,
        )
    )
    found.append((SS.ACTIVE.value, SS.ACTIVE.value, within))
    return found
