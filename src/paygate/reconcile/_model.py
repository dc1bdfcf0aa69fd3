"""The reconciliation vocabulary: records on each side, cases, actions, policy, report.

Pure data, no I/O and no clock reads. The readers turn provider files into
[`ProviderRecord`][paygate.reconcile.ProviderRecord] objects (or, on their fast path, into the
compact tuples the engine consumes); the engine turns both sides into a
[`ReconciliationReport`][paygate.reconcile.ReconciliationReport].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from paygate._compat import StrEnum
from paygate.errors import ValidationError
from paygate.money import Money

__all__ = [
    "Action",
    "ActionRecord",
    "BadRow",
    "Case",
    "DISCREPANCIES",
    "OrderRecord",
    "OrderStatus",
    "Policy",
    "ProviderRecord",
    "ReconciliationLine",
    "ReconciliationReport",
    "RecordKind",
    "RecordStatus",
    "ReportFormatError",
]


class ReportFormatError(ValidationError):
    """A report or orders file that cannot be read: wrong type, or a malformed row.

    ``path`` and ``line`` (1-based, ``None`` for "the file as a whole") say where.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line
        self.reason = message


class OrderStatus(StrEnum):
    """What the shop's own books say about an order."""

    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    CANCELED = "canceled"
    REFUNDED = "refunded"
    DISPUTED = "disputed"


# Words shops use for their order states -> OrderStatus. Data, so a CSV with its own
# vocabulary needs no code (extend it per reader with ``status_map=``).
ORDER_STATUS_WORDS: Mapping[str, OrderStatus] = {
    word: status
    for status, words in {
        OrderStatus.PENDING: "pending processing open new created requires_action authorized"
        " awaiting_payment unpaid",
        OrderStatus.PAID: "paid succeeded success complete completed captured settled fulfilled"
        " partially_refunded",
        OrderStatus.FAILED: "failed declined error rejected",
        OrderStatus.CANCELED: "canceled cancelled void voided expired abandoned",
        OrderStatus.REFUNDED: "refunded",
        OrderStatus.DISPUTED: "disputed charged_back chargeback",
    }.items()
    for word in words.split()
}

#: the statuses under which the shop considers the money received
PAID_LIKE = frozenset({OrderStatus.PAID, OrderStatus.REFUNDED, OrderStatus.DISPUTED})


def order_status(value: object) -> OrderStatus:
    """Normalize a status word (``"Paid"``, ``"cancelled"``, an ``OrderStatus``)."""
    if isinstance(value, OrderStatus):
        return value
    if isinstance(value, str):
        found = ORDER_STATUS_WORDS.get(value.strip().lower())
        if found is not None:
            return found
    raise ValidationError(
        f"unknown order status {value!r}: expected one of {', '.join(OrderStatus)} "
        "(or a common synonym such as 'cancelled' or 'succeeded')"
    )


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One order as the shop's books have it.

    ``refunded`` is how much the shop knows was refunded (``None``: nothing, or everything
    when ``status`` is ``refunded``). ``created_at`` places the order in time for the
    ``missing`` grace window and for ``since``/``until``.
    """

    order_id: str
    amount: Money
    status: OrderStatus | str
    created_at: datetime | None = None
    refunded: Money | None = None
    payment_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.order_id, str) or not self.order_id:
            raise ValidationError(f"OrderRecord.order_id must be a non-empty str: {self!r}")
        if not isinstance(self.amount, Money):
            raise ValidationError(
                f"OrderRecord {self.order_id!r}: amount must be Money, "
                f"got {type(self.amount).__name__}"
            )
        if self.amount.amount < 0:
            raise ValidationError(f"OrderRecord {self.order_id!r}: negative amount {self.amount}")
        object.__setattr__(self, "status", order_status(self.status))
        if self.refunded is not None and self.refunded.currency != self.amount.currency:
            raise ValidationError(
                f"OrderRecord {self.order_id!r}: refunded {self.refunded} is not in the "
                f"order's currency {self.amount.currency}"
            )
        _check_aware(self.created_at, f"OrderRecord {self.order_id!r}: created_at")


class RecordKind(StrEnum):
    """What a provider record is about."""

    PAYMENT = "payment"
    #: money taken back from a payment without a refund (Stripe partial-capture reversal,
    #: ACH charge failure): lowers what the order was paid
    PAYMENT_REVERSAL = "payment_reversal"
    REFUND = "refund"
    #: a refund that failed after it was booked (Stripe refund_failure): money came back
    REFUND_REVERSAL = "refund_reversal"
    DISPUTE = "dispute"
    DISPUTE_REVERSAL = "dispute_reversal"
    #: fees, payouts, transfers, adjustments: counted in the fee/net totals, not per order
    OTHER = "other"


class RecordStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ProviderRecord:
    """One line of a provider's report, normalized.

    ``amount`` is the gross magnitude (never negative; ``kind`` gives the direction).
    ``fee`` is what the provider charged (negative when a fee was given back) and ``net``
    the signed change to the merchant's balance; both are carried for accounting.
    ``source`` says where it was read ("file.csv:12"), for the itemized lines.
    """

    provider: str
    record_id: str
    kind: RecordKind
    status: RecordStatus
    order_id: str | None
    amount: Money
    fee: Money | None = None
    net: Money | None = None
    payment_id: str | None = None
    occurred_at: datetime | None = None
    source: str | None = None
    raw: Any = field(default=None, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", RecordKind(self.kind))
        object.__setattr__(self, "status", RecordStatus(self.status))
        if not isinstance(self.amount, Money):
            raise ValidationError(
                f"ProviderRecord {self.record_id!r}: amount must be Money, "
                f"got {type(self.amount).__name__}"
            )
        if self.amount.amount < 0:
            raise ValidationError(
                f"ProviderRecord {self.record_id!r}: amount is a magnitude, got {self.amount}"
            )
        for name in ("fee", "net"):
            value = getattr(self, name)
            if value is not None and value.currency != self.amount.currency:
                raise ValidationError(
                    f"ProviderRecord {self.record_id!r}: {name} {value} is not in "
                    f"{self.amount.currency}"
                )
        if self.order_id == "":
            object.__setattr__(self, "order_id", None)
        _check_aware(self.occurred_at, f"ProviderRecord {self.record_id!r}: occurred_at")


def _check_aware(value: datetime | None, what: str) -> None:
    if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
        raise ValidationError(f"{what} must be a timezone-aware datetime, got {value!r}")


class Case(StrEnum):
    """How one order (or one orphan record) compares across the two sides."""

    #: both sides say paid, same amount and currency
    MATCHED = "matched"
    #: the order failed or was canceled, and so did every payment attempt
    BOTH_FAILED = "both_failed"
    #: the order failed/was canceled and the provider has no record: nothing was charged
    NOT_CHARGED = "not_charged"
    #: a payment is still pending at the provider
    IN_PROGRESS = "in_progress"
    #: no provider record yet, but the order is younger than the grace window
    AWAITING = "awaiting"
    # -- discrepancies ------------------------------------------------------------------
    #: the order is pending/failed/canceled but the provider took the money
    UNPAID_ORDER_CHARGED = "unpaid_order_charged"
    #: the order is paid but every payment attempt failed at the provider
    PAYMENT_FAILED = "payment_failed"
    #: a paid/pending order with no provider record at all, past the grace window
    MISSING = "missing"
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    #: two or more successful payments for one order
    DOUBLE_CHARGE = "double_charge"
    #: the provider refunded more than the shop knows about
    UNKNOWN_REFUND = "unknown_refund"
    #: a dispute (chargeback) the shop does not know about
    UNKNOWN_DISPUTE = "unknown_dispute"
    #: a provider record whose order the shop does not have
    ORPHAN = "orphan"


#: cases that mean the books disagree (the CLI exits 1 when any occurs)
DISCREPANCIES: frozenset[Case] = frozenset(
    {
        Case.UNPAID_ORDER_CHARGED,
        Case.PAYMENT_FAILED,
        Case.MISSING,
        Case.AMOUNT_MISMATCH,
        Case.CURRENCY_MISMATCH,
        Case.DOUBLE_CHARGE,
        Case.UNKNOWN_REFUND,
        Case.UNKNOWN_DISPUTE,
        Case.ORPHAN,
    }
)


class Action(StrEnum):
    NONE = "none"
    #: give the money back at the provider (the only action that moves money)
    REFUND = "refund"
    #: tell the shop's order system the order is paid
    MARK_PAID = "mark_paid"
    #: tell the shop's order system to cancel the order
    CANCEL = "cancel"
    #: record the provider's refund / dispute in the shop's books
    RECORD = "record"
    #: a person has to look
    INVESTIGATE = "investigate"


@dataclass(frozen=True, slots=True)
class Policy:
    """What to propose (and, with ``apply=True``, do) for each actionable case.

    ``grace`` is how long an order may go without a provider record before it is
    ``missing``; it is measured against the ``now`` passed to `reconcile`.
    """

    unpaid_order_charged: Literal["refund", "mark_paid", "investigate"] = "refund"
    paid_without_payment: Literal["cancel", "investigate"] = "investigate"
    double_charge: Literal["refund", "investigate"] = "refund"
    grace: timedelta = timedelta(hours=24)

    def __post_init__(self) -> None:
        allowed: dict[str, tuple[str, ...]] = {
            "unpaid_order_charged": ("refund", "mark_paid", "investigate"),
            "paid_without_payment": ("cancel", "investigate"),
            "double_charge": ("refund", "investigate"),
        }
        for name, choices in allowed.items():
            value = getattr(self, name)
            if value not in choices:
                raise ValidationError(
                    f"Policy.{name} must be one of {', '.join(choices)}, got {value!r}"
                )
        if not isinstance(self.grace, timedelta) or self.grace < timedelta(0):
            raise ValidationError(f"Policy.grace must be a timedelta >= 0, got {self.grace!r}")


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row skipped under ``skip_bad_rows``: where, and why."""

    path: str
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReconciliationLine:
    """One itemized finding.

    ``internal_amount`` is the order's amount, ``provider_amount`` what the case is about
    at the provider (the charge, the extra charge, the unknown refund...), ``difference``
    ``provider - internal`` where both exist in one currency. ``payment_ids`` are the
    provider payments concerned (the ones a refund action would refund).
    """

    case: Case
    order_id: str | None
    action: Action
    internal_status: OrderStatus | None = None
    provider_status: str | None = None
    internal_amount: Money | None = None
    provider_amount: Money | None = None
    difference: Money | None = None
    fee: Money | None = None
    net: Money | None = None
    payment_ids: tuple[str, ...] = ()
    record_ids: tuple[str, ...] = ()
    note: str = ""

    @property
    def amount(self) -> Money | None:
        """The amount this line is about: the provider side's when there is one."""
        return self.provider_amount if self.provider_amount is not None else self.internal_amount

    def to_dict(self) -> dict[str, Any]:
        def money(value: Money | None) -> str | None:
            return None if value is None else str(value.to_decimal())

        def currency(value: Money | None) -> str | None:
            return None if value is None else value.currency

        return {
            "case": str(self.case),
            "order_id": self.order_id,
            "action": str(self.action),
            "internal_status": None if self.internal_status is None else str(self.internal_status),
            "provider_status": self.provider_status,
            "currency": currency(self.amount),
            "internal_amount": money(self.internal_amount),
            "internal_currency": currency(self.internal_amount),
            "provider_amount": money(self.provider_amount),
            "provider_currency": currency(self.provider_amount),
            "difference": money(self.difference),
            "fee": money(self.fee),
            "net": money(self.net),
            "payment_ids": list(self.payment_ids),
            "record_ids": list(self.record_ids),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class AppliedAction:
    """What ``apply=True`` did for one line."""

    order_id: str | None
    action: Action
    outcome: Literal["done", "already_done", "skipped", "failed"]
    detail: str = ""
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """What the store remembers of one action of one run (`applied_actions`).

    ``outcome`` is ``"pending"`` while the action runs, and stays so if the run died
    before it finished: the next run with the same id carries the action out again.
    ``idempotency_key`` is the refund's key (`refund_key`) for refunds, the
    action's own key otherwise. Times are Unix seconds from the gateway's clock.
    """

    run_id: str
    order_id: str | None
    action: Action
    outcome: Literal["done", "already_done", "failed", "pending"]
    detail: str
    idempotency_key: str
    #: the refunded payment (refunds only)
    payment_id: str | None
    #: how many times the action was started in this run (a retry after a failure or
    #: an unfinished attempt adds one)
    attempt: int
    started_at: float
    updated_at: float

    @property
    def recorded(self) -> datetime:
        """``updated_at`` (the last change) as a timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self.updated_at, tz=timezone.utc)


@dataclass(slots=True)
class ReconciliationReport:
    """Counts and money totals per case and currency, the itemized lines, the bad rows.

    ``counts[case]`` counts orders (orphans: records); ``totals[case][currency]`` sums
    each line's [`ReconciliationLine.amount`][paygate.reconcile.ReconciliationLine.amount] (the
    order amount for ``matched``); ``fees``/``net`` sum every provider record read, per currency.
    """

    provider: str
    run_id: str
    now: datetime | None
    policy: Policy
    counts: dict[Case, int] = field(default_factory=dict)
    totals: dict[Case, dict[str, Money]] = field(default_factory=dict)
    fees: dict[str, Money] = field(default_factory=dict)
    net: dict[str, Money] = field(default_factory=dict)
    lines: list[ReconciliationLine] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    orders_read: int = 0
    records_read: int = 0
    applied: list[AppliedAction] = field(default_factory=list)

    @property
    def discrepancies(self) -> int:
        """How many findings say the books disagree (bad rows count too)."""
        return sum(n for case, n in self.counts.items() if case in DISCREPANCIES) + len(
            self.bad_rows
        )

    @property
    def agrees(self) -> bool:
        """True when the books agree: no discrepancy and no skipped row."""
        return self.discrepancies == 0

    def lines_for(self, case: Case) -> list[ReconciliationLine]:
        return [line for line in self.lines if line.case == case]

    def to_dict(self) -> dict[str, Any]:
        def amounts(by_cur: dict[str, Money]) -> dict[str, str]:
            return {cur: str(m.to_decimal()) for cur, m in by_cur.items()}

        return {
            "provider": self.provider,
            "run_id": self.run_id,
            "now": None if self.now is None else self.now.isoformat(),
            "agrees": self.agrees,
            "orders_read": self.orders_read,
            "records_read": self.records_read,
            "counts": {str(case): n for case, n in self.counts.items()},
            "totals": {str(case): amounts(by_cur) for case, by_cur in self.totals.items()},
            "fees": amounts(self.fees),
            "net": amounts(self.net),
            "lines": [line.to_dict() for line in self.lines],
            "bad_rows": [asdict(bad) for bad in self.bad_rows],
            "applied": [{**asdict(done), "action": str(done.action)} for done in self.applied],
        }
