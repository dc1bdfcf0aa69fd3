"""The rows a store keeps, as frozen dataclasses shared by every store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from paygate._compat import StrEnum
from paygate._facts import Fact, FactClaim
from paygate._replace import replace
from paygate.errors import PaygateError
from paygate.models import Payment, PaymentStatus
from paygate.money import Money
from paygate.state import PaymentState

__all__ = [
    "ClaimLost",
    "ClaimStatus",
    "EventClaim",
    "EventOutcome",
    "EventPlan",
    "EventRecord",
    "OperationFinish",
    "OperationRecord",
    "OperationStatus",
    "PaymentRecord",
    "PaymentWrite",
    "StoreConflict",
    "StoreError",
    "StoreTimeout",
    "StoreUnavailable",
    "TransitionRecord",
]


class StoreError(PaygateError):
    """A store could not do what was asked (a corrupt row, a schema it cannot read).

    ``retryable``: the same call may succeed if made again (the database was briefly
    unreachable); a webhook view answers 5xx either way, so the provider redelivers.
    """

    retryable = False


class StoreUnavailable(StoreError):
    """The database could not be reached, or dropped the connection during the call.
    Whether a write in flight was committed is not known; every paygate write is safe to
    repeat (compare-and-set, claims, idempotency records)."""

    retryable = True


class StoreTimeout(StoreUnavailable):
    """The database did not answer in time. ``what`` names the wait that ran out:
    ``"connect"`` (opening a connection), ``"pool"`` (a free pooled connection),
    ``"statement"`` (a statement's answer: the server's ``statement_timeout``, or the
    client's own bound when the server or network does not answer at all) or ``"lock"``
    (SQLite's write lock, PostgreSQL's ``lock_timeout``); ``seconds`` the limit."""

    def __init__(self, message: str, *, what: str = "statement", seconds: float | None = None):
        super().__init__(message)
        self.what = what
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword arguments survive pickling (an error sent back from a worker process)
        return (type(self), self.args, {"what": self.what, "seconds": self.seconds})


class StoreConflict(StoreError):
    """A compare-and-set write lost a race: re-read and try again.

    Raised when a payment row changed since it was read (its ``version`` moved on) or was
    inserted by someone else first. Nothing of the losing write is kept.
    """


class ClaimLost(StoreError):
    """The event's claim lease expired and another worker took the event over."""


class ClaimStatus(StrEnum):
    #: first delivery: this worker owns the event now
    CLAIMED = "claimed"
    #: an earlier delivery failed (a handler raised) or its worker died and its lease
    #: expired: this worker owns it now; ``EventClaim.applied`` says whether the state
    #: transition already happened
    RECLAIMED = "reclaimed"
    #: already processed: a duplicate delivery, nothing to do
    PROCESSED = "processed"
    #: another worker holds a live lease on it right now
    IN_PROGRESS = "in_progress"


#: what processing an event did to its payment
EventOutcome = Literal[
    "applied",  # the state machine moved the payment
    "unchanged",  # the state machine says the payment already is there (a no-op)
    "stale",  # it arrived late: recorded, the payment does not go back
    "rejected",  # impossible for the payment's state (InvalidTransition): not applied
    "no_transition",  # a known event that does not move a payment (subscription, ...)
    "unknown",  # an event type paygate does not know: recorded and reported
]


class OperationStatus(StrEnum):
    PENDING = "pending"  # sent (or about to be); the outcome is not known yet
    SUCCEEDED = "succeeded"  # the provider answered; ``result`` holds the answer
    FAILED = "failed"  # the provider refused for good (a decline): a new attempt may follow


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """One payment as the store knows it: the state machine's state plus the payment's
    other fields as last seen. ``payment`` always agrees with ``state``."""

    payment: Payment
    state: PaymentState
    #: bumped on every write; writes are compare-and-set on it
    version: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def id(self) -> str:
        return self.payment.id

    @property
    def order_id(self) -> str | None:
        return self.payment.order_id

    @property
    def status(self) -> PaymentStatus:
        return self.state.status

    @classmethod
    def build(
        cls,
        payment: Payment,
        state: PaymentState,
        *,
        version: int = 1,
        created_at: float = 0.0,
        updated_at: float = 0.0,
    ) -> PaymentRecord:
        """A record whose ``payment`` shows ``state`` (status and amounts), without
        ``raw`` or ``client_secret``, which no store keeps."""
        currency = payment.amount.currency
        shown = replace(
            payment,
            status=state.status,
            amount=_money(state.amount, currency, payment.amount),
            amount_captured=_money(state.captured, currency, payment.amount_captured),
            amount_refunded=_money(state.refunded, currency, payment.amount_refunded),
            client_secret=None,
            raw=None,
        )
        return cls(shown, state, version, created_at, updated_at)


def _money(amount: int, currency: str, shown: Money | None) -> Money:
    """``Money(amount, currency)``, or ``shown`` when it is that already (Money is
    immutable; most of a record's amounts are unchanged, and each new one is validated)."""
    if shown is not None and shown.amount == amount and shown.currency == currency:
        return shown
    return Money(amount, currency)


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One applied state change, appended to the payment's log (never updated)."""

    payment_id: str
    provider: str
    trigger: str
    previous_status: PaymentStatus | None
    new_status: PaymentStatus
    currency: str
    #: the event's own amount (a refund's amount, the captured total), minor units
    amount: int | None
    captured: int
    refunded: int
    #: "webhook", "api" (a Gateway call), "return" (the customer's redirect) or
    #: "reconcile" (``paygate reconcile --apply``)
    source: str
    event_id: str | None = None
    event_type: str | None = None
    recorded_at: float = 0.0
    #: position in the log, set by the store
    seq: int | None = None

    @property
    def recorded(self) -> datetime:
        """``recorded_at`` as a timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self.recorded_at, tz=timezone.utc)

    @property
    def captured_money(self) -> Money:
        return Money(self.captured, self.currency)

    @property
    def refunded_money(self) -> Money:
        return Money(self.refunded, self.currency)


@dataclass(frozen=True, slots=True)
class EventClaim:
    """The answer to [`Store.claim_event`][paygate.stores.Store.claim_event]."""

    provider: str
    event_id: str
    status: ClaimStatus
    #: proves ownership in later calls; ``None`` unless claimed
    token: str | None = None
    #: the state transition of this event already happened (an earlier delivery)
    applied: bool = False
    outcome: EventOutcome | None = None
    deliveries: int = 1

    @property
    def owned(self) -> bool:
        return self.status in (ClaimStatus.CLAIMED, ClaimStatus.RECLAIMED)


@dataclass(frozen=True, slots=True)
class EventPlan:
    """What a new event does, decided from the payment as read inside the claim's
    transaction (``SQLStore.ingest_event``): the payment row to write (``None``: the
    payment does not change), the transition to log, the event's outcome, and whether
    the event is finished (processed) in that same transaction -- no handler to wait for.
    """

    outcome: EventOutcome
    finish: bool
    record: PaymentRecord | None = None
    #: the version the written row replaces; ``None`` inserts it
    expected_version: int | None = None
    transition: TransitionRecord | None = None
    #: the facts the transition established, recorded in the outbox in that transaction
    facts: tuple[Fact, ...] = ()
    #: seconds to claim the first of ``facts`` for, in that same transaction, for the
    #: caller that runs its handlers right after the commit (unless an earlier fact of its
    #: payment is pending: facts of a payment go out in order); ``None``: leave them to
    #: the dispatcher's claim. A store may ignore it (it then claims nothing)
    claim_facts_for: float | None = None
    #: what the store claimed that way (it returns the plan with them)
    claimed: tuple[FactClaim, ...] = ()


@dataclass(frozen=True, slots=True)
class PaymentWrite:
    """One compare-and-set write of a payment row with the transition it logs and the
    facts it established: what [`Store.save_payment`][paygate.stores.Store.save_payment]
    takes, as a value (``save_answer`` writes several, in order, in one transaction)."""

    record: PaymentRecord
    #: the version the written row replaces; ``None`` inserts it
    expected_version: int | None
    transition: TransitionRecord | None = None
    facts: tuple[Fact, ...] = ()


@dataclass(frozen=True, slots=True)
class OperationFinish:
    """How an attempt of an idempotent operation ended: the arguments of
    [`Store.finish_operation`][paygate.stores.Store.finish_operation], as a value (written
    by ``save_answer`` in the transaction of the payment writes the answer caused)."""

    key: str
    attempt: int
    status: OperationStatus
    result_id: str | None
    result: Mapping[str, Any] | None
    error_code: str | None
    now: float


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A received webhook event and how far its processing got."""

    provider: str
    event_id: str
    event_type: str
    provider_type: str
    payment_id: str | None
    #: the normalized event (``paygate.stores._codec``), for replaying handlers
    payload: Mapping[str, Any]
    received_at: float
    deliveries: int
    occurred_at: float | None = None
    outcome: EventOutcome | None = None
    applied_at: float | None = None
    processed_at: float | None = None
    lease_until: float | None = None
    last_error: str | None = None

    @property
    def processed(self) -> bool:
        return self.processed_at is not None

    def to_event(self) -> Any:
        """The stored [`WebhookEvent`][paygate.models.WebhookEvent] (without ``raw``)."""
        from paygate.stores._codec import load

        return load(dict(self.payload))


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """An idempotency record: one creating operation for one scope (an order, a payment).

    Written *before* the provider is called, so a conflicting retry is refused before it
    reaches the provider, and a crash between the call and the answer leaves a ``pending``
    record whose ``provider_key`` the next attempt sends again.
    """

    #: the scope: "create_payment:<order id>", "refund:<payment id>:<...>", ...
    key: str
    operation: str
    #: digest of the request parameters that must match on a replay (amount, currency...)
    fingerprint: str
    #: the idempotency key sent to the provider for the current attempt
    provider_key: str
    status: OperationStatus = OperationStatus.PENDING
    order_id: str | None = None
    #: 1, then +1 for each new attempt after a refused one (a declined card)
    attempt: int = 1
    #: digest of the payment method of the current attempt (never the method itself)
    method_digest: str | None = None
    result_id: str | None = None
    #: the provider's answer, as ``paygate.stores._codec.dump`` gives it
    result: Mapping[str, Any] | None = None
    error_code: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
