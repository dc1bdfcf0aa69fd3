"""``paygate.Gateway``: one provider + one store + policies. What most users touch.

* **Order first, idempotent.** Every creating call derives its provider idempotency key
  from the order id, the operation, the attempt and the amount, and writes an idempotency
  record to the store *before* calling the provider: the same call twice returns the same
  result and charges once; the same order with a different amount raises
  :class:`~paygate.errors.IdempotencyConflict` before anything is sent.
* **Validation first.** Amounts, currencies, capture and refund limits are checked against
  the stored state before the provider hears of them.
* **One retry layer** (:class:`RetryPolicy`) for errors marked ``retryable``, always with
  the same idempotency key.
* **Webhook pipeline:** verify and parse → claim the event id → apply the pure state
  transition (:mod:`paygate.state`) to the stored payment, in one transaction with the
  transition log and the facts it established (the outbox) → mark the event processed.
* **Facts, told once** (:mod:`paygate._facts`): whichever channel moves a payment (a
  webhook, an API answer, the customer's return, reconciliation), each fact it
  establishes is recorded in that transaction; the dispatcher then hands every recorded
  fact to the handlers of its type once, in order per payment, under a lease.

Thread-safe: the gateway keeps no per-request state; the store serializes what must be.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import inspect
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, overload

from typing_extensions import TypeVar

from paygate import _idempotency as idem
from paygate._facts import FACT_TYPES, Fact, FactClaim
from paygate._retry import RetryPolicy
from paygate.errors import (
    CardDeclined,
    ConfigurationError,
    IdempotencyConflict,
    InvalidTransition,
    ProviderError,
    ValidationError,
)
from paygate.models import (
    CaptureMethod,
    CheckoutSession,
    Customer,
    EventType,
    Invoice,
    LineItem,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    Subscription,
    SubscriptionStatus,
    WebhookEvent,
)
from paygate.money import Money, currency_exponent
from paygate.provider import PaymentProvider, create_provider
from paygate.state import (
    TABLE,
    PaymentEvent,
    PaymentState,
    Step,
    Trigger,
    apply,
    event_for_status,
    event_from_webhook,
    events_for_answer,
    state_of,
)
from paygate.stores import (
    ClaimStatus,
    EventClaim,
    EventOutcome,
    OperationRecord,
    OperationStatus,
    PaymentRecord,
    Store,
    StoreConflict,
    TransitionRecord,
    _codec,
    default_store_url,
    open_store,
)
from paygate.stores._records import EventPlan

if TYPE_CHECKING:
    # typing only: importing the adapters at run time would import their SDKs
    import httpx
    from pydantic import SecretStr

    from paygate._config import GatewaySettings
    from paygate.providers.fake import FakeProvider
    from paygate.providers.paypal import PayPalProvider
    from paygate.providers.square import SquareProvider
    from paygate.providers.stripe import StripeProvider

__all__ = [
    "DispatchSummary",
    "Gateway",
    "RetryPolicy",
    "WebhookHandler",
    "WebhookResult",
    "connect",
]

_log = logging.getLogger("paygate")

T = TypeVar("T")
#: the Gateway's provider type; the default keeps a bare ``Gateway`` annotation valid
#: (covariant: a ``Gateway[FakeProvider]`` is a ``Gateway``)
P = TypeVar("P", bound=PaymentProvider, default=PaymentProvider, covariant=True)
#: an adapter instance given to :func:`connect`
A = TypeVar("A", bound=PaymentProvider)
#: a handler: called with a :class:`~paygate.Fact` for payment facts, with the
#: :class:`~paygate.models.WebhookEvent` for other events (subscriptions, invoices, ...)
WebhookHandler = Callable[[Any], Any]
H = TypeVar("H", bound=Callable[..., Any])

#: the channel label of facts and transitions recorded inside ``Gateway.channel()``
_CHANNEL: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "paygate_channel", default=None
)
_CHANNELS = frozenset({"api", "return", "reconcile", "webhook"})
#: facts claimed at once: each batch's leases start together, so a small batch keeps the
#: last fact's handlers well inside its lease
_FACT_BATCH = 10
#: a call that recorded no fact looks for due facts (failed ones whose backoff is over,
#: ones left by a dead worker) at most this often (seconds): the look is a store read
_SWEEP_INTERVAL = 1.0
#: a failed fact is retried after 1 s, then 2, 4, ... at most this long (seconds)
_MAX_FACT_BACKOFF = 300.0
S = PaymentStatus

#: how often a compare-and-set write is retried after losing a race
_CAS_ATTEMPTS = 20

#: (outcome, previous status, record, error, finished, facts recorded) of an event's
#: first processing
_Applied = tuple[
    "EventOutcome | None",
    "PaymentStatus | None",
    "PaymentRecord | None",
    "str | None",
    bool,
    "tuple[Fact, ...]",
]
#: statuses after which an order may be paid again with a new attempt
_RETRYABLE_ATTEMPT = frozenset({S.FAILED, S.CANCELED})
_ENDED_SUBSCRIPTION = frozenset(
    {SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED}
)
_SETTLED = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED, S.CHARGED_BACK})


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What :meth:`Gateway.handle_webhook` did with one delivery.

    ``duplicate``: this delivery changed nothing and ran no handler, because the event was
    already processed or because another worker holds it right now (``in_progress``: its
    lease has not run out; it may still fail or die before finishing).
    ``outcome``: ``applied`` (the payment moved), ``unchanged`` (it already was there),
    ``stale`` (late: recorded, ignored), ``rejected`` (impossible for the payment's state:
    recorded, not applied, ``error`` says why), ``no_transition`` (an event that moves no
    payment: subscriptions, invoices, ...), ``unknown`` (a type paygate does not know).

    Answer the provider with :attr:`http_status`: 200 whenever the event is done with
    (first delivery, processed duplicate, and every outcome above, ``rejected`` included:
    it can never apply, so a redelivery would only repeat it), 409 while it is
    ``in_progress``. A 2xx there could lose the event: if the worker holding it dies, the
    provider, told it was handled, never delivers it again, and nobody finishes it. The
    409 makes the provider retry later; that delivery finds the event processed (200) or
    takes it over once the lease has run out. :attr:`acknowledged` is the same answer as
    a bool.

    Payment facts: ``facts`` are the facts this delivery established (recorded in the
    outbox with the transition). Their handlers run from the outbox right after, and
    ``handlers_run`` / ``handler_errors`` say how that went (the dispatch may also have
    run other due facts). A fact's handler that raises does NOT fail the delivery: the
    fact is durable, stays pending with its error, and is retried from the outbox (the
    next gateway call after a short backoff, or :meth:`Gateway.dispatch_pending`); the
    answer stays 200, and :attr:`handlers_failed` tells you. A redelivery would bring
    nothing: the fact is known.
    """

    event: WebhookEvent
    duplicate: bool
    previous_status: PaymentStatus | None
    status: PaymentStatus | None
    outcome: EventOutcome | None = None
    payment: Payment | None = None
    handlers_run: int = 0
    in_progress: bool = False
    error: str | None = None
    facts: tuple[Fact, ...] = ()
    #: "fact id: ExceptionType: message" of each fact whose handler raised
    handler_errors: tuple[str, ...] = ()

    @property
    def handlers_failed(self) -> bool:
        """A handler of a fact raised: the fact stays pending and is retried."""
        return bool(self.handler_errors)

    @property
    def changed(self) -> bool:
        """This delivery moved the payment."""
        return not self.duplicate and self.outcome == "applied"

    @property
    def rejected(self) -> bool:
        return self.outcome == "rejected"

    @property
    def unknown(self) -> bool:
        return self.outcome == "unknown"

    @property
    def acknowledged(self) -> bool:
        """Tell the provider the delivery is handled (answer 2xx): not while another
        worker holds the event (``in_progress``), which may die before finishing it."""
        return not self.in_progress

    @property
    def http_status(self) -> int:
        """What a webhook view answers: 200 when :attr:`acknowledged`, else 409 (a
        retryable non-2xx, so the provider delivers the event again later)."""
        return 200 if self.acknowledged else 409


@dataclass(frozen=True, slots=True)
class DispatchSummary:
    """What one dispatch of pending facts did (:meth:`Gateway.dispatch_pending`)."""

    #: facts whose handlers all ran (now done)
    done: int = 0
    #: facts whose handler raised (pending again, retried later)
    failed: int = 0
    handlers_run: int = 0
    #: "fact id: ExceptionType: message" per failed fact
    errors: tuple[str, ...] = ()
    #: the facts dispatched, in order
    facts: tuple[Fact, ...] = ()

    def __add__(self, other: DispatchSummary) -> DispatchSummary:
        return DispatchSummary(
            self.done + other.done, self.failed + other.failed,
            self.handlers_run + other.handlers_run, self.errors + other.errors,
            self.facts + other.facts,
        )  # fmt: skip


_NOTHING = DispatchSummary()


class _AwaitableReturned(Exception):
    """A handler returned an awaitable: it did not run (the sync Gateway awaits nothing)."""


class Gateway(Generic[P]):
    """One provider, one store, and the policies around them.

    Build it with :func:`paygate.connect`, :meth:`from_config` or :meth:`from_env`.
    ``currencies`` limits the currencies payments may use (``None``: all); ``retry``
    defaults to ``provider.max_retries + 1`` attempts when the provider sets that;
    ``webhook_lease`` is how long (seconds) a worker owns a webhook event (or a fact
    whose handlers it runs) before another may take it over; ``clock`` (Unix seconds) is
    for tests. Without ``store``: ``$PAYGATE_STORE_URL``, else SQLite at ``./paygate.db``
    (see :func:`paygate.stores.default_store_url`).
    """

    def __init__(
        self,
        provider: P,
        store: Store | None = None,
        *,
        retry: RetryPolicy | None = None,
        currencies: Iterable[str] | None = None,
        webhook_lease: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(provider, PaymentProvider):
            raise ConfigurationError(
                f"provider must implement paygate.PaymentProvider, got {type(provider).__name__}"
            )
        self.provider: P = provider
        self.store: Store = (
            store if store is not None else open_store(default_store_url(provider=provider.name))
        )
        if retry is None:
            max_retries = getattr(provider, "max_retries", None)
            retry = (
                RetryPolicy(attempts=max_retries + 1) if max_retries is not None else RetryPolicy()
            )
        self.retry = retry
        self.currencies: frozenset[str] | None = None
        if currencies is not None:
            codes = frozenset(currencies)
            for code in codes:
                currency_exponent(code)  # UnknownCurrency for a typo
            self.currencies = codes
        if not webhook_lease > 0:
            raise ConfigurationError(f"webhook_lease must be > 0 seconds, got {webhook_lease}")
        self.webhook_lease = float(webhook_lease)
        self.clock = clock
        self._handlers: dict[EventType | None, list[WebhookHandler]] = {}
        self._handlers_lock = threading.Lock()
        #: per thread: whether the current call recorded facts (its dispatch claims them
        #: without looking first)
        self._recorded = threading.local()
        self._next_sweep = 0.0

    def __repr__(self) -> str:
        return f"Gateway(provider={self.provider.name!r}, store={self.store!r})"

    # -- construction ---------------------------------------------------------------------

    # cls: type[Gateway[Any]]: the provider is named by configuration, known at run time only
    @classmethod
    def _from_settings(
        cls: type[Gateway[Any]], settings: GatewaySettings, **overrides: Any
    ) -> Gateway:
        from paygate._config import RetrySettings

        provider = create_provider(settings.provider, **settings.settings)
        url = settings.store.get_secret_value() if settings.store is not None else ""
        store = open_store(url or default_store_url(provider=provider.name))
        r: RetrySettings = settings.retry
        attempts = r.attempts
        if attempts is None:
            max_retries = getattr(provider, "max_retries", None)
            attempts = max_retries + 1 if max_retries is not None else 3
        retry = RetryPolicy(attempts=attempts, base_delay=r.base_delay, max_delay=r.max_delay,
                            total_budget=r.total_budget, jitter=r.jitter)  # fmt: skip
        kwargs: dict[str, Any] = {
            "retry": retry,
            "currencies": settings.currencies,
            "webhook_lease": settings.webhook_lease,
        }
        kwargs.update(overrides)
        return cls(provider, store, **kwargs)

    @classmethod
    def from_config(cls: type[Gateway[Any]], config: Mapping[str, Any]) -> Gateway:
        """A gateway from a mapping::

        Gateway.from_config({"provider": "stripe", "store": "sqlite:///paygate.db",
                             "stripe": {"api_key": "sk_test_..."},
                             "currencies": ["USD", "EUR"], "retry": {"attempts": 4}})
        """
        from paygate._config import settings_from_mapping

        return cls._from_settings(settings_from_mapping(config))

    @classmethod
    def from_env(cls: type[Gateway[Any]], environ: Mapping[str, str] | None = None) -> Gateway:
        """A gateway from ``PAYGATE_PROVIDER``, ``PAYGATE_STORE_URL`` (default: SQLite at
        ``./paygate.db``, as :func:`connect`), ``PAYGATE_CURRENCIES`` (``USD,EUR``),
        ``PAYGATE_RETRY_ATTEMPTS``,
        ``PAYGATE_WEBHOOK_LEASE`` and ``PAYGATE_<PROVIDER>_<SETTING>`` (passed to the
        provider as ``<setting>=``, lower-cased: ``PAYGATE_STRIPE_API_KEY`` → ``api_key``).
        """
        from paygate._config import settings_from_env

        return cls._from_settings(settings_from_env(environ))

    def close(self) -> None:
        """Close the store and the provider's connections."""
        self.store.close()
        close = getattr(self.provider, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> Gateway[P]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ----------------------------------------------------------------------------

    def _call(self, operation: str, func: Callable[[], T]) -> T:
        return self.retry.call(operation, func)

    def _check_money(self, amount: Any, what: str) -> Money:
        if not isinstance(amount, Money):
            raise ValidationError(
                f"{what} must be paygate.Money, got {type(amount).__name__}; "
                "use Money.of('19.99', 'USD')"
            )
        if amount.amount <= 0:
            raise ValidationError(f"{what} must be positive, got {amount}")
        if self.currencies is not None and amount.currency not in self.currencies:
            raise ValidationError(
                f"{what} is in {amount.currency}, which this gateway does not accept "
                f"(allowed: {', '.join(sorted(self.currencies))})"
            )
        return amount

    @staticmethod
    def _check_id(value: Any, what: str) -> str:
        # paygate._ids's one rule (no control character, no lone surrogate, at most 255
        # characters); a URL may be longer. Imported here to keep the rule in one module.
        from paygate._ids import MAX_ID_LENGTH, MAX_URL_LENGTH, check_id

        return check_id(
            value, what, max_length=MAX_URL_LENGTH if what.endswith("_url") else MAX_ID_LENGTH
        )

    def _view(self, record: PaymentRecord, fresh: Payment | None = None) -> Payment:
        """The stored payment, with the provider's answer's ``client_secret`` and ``raw``
        (neither is ever stored) when there is one."""
        if fresh is None:
            return record.payment
        return dataclasses.replace(record.payment, client_secret=fresh.client_secret, raw=fresh.raw)

    def _transition(
        self,
        record: PaymentRecord,
        previous: PaymentStatus | None,
        trigger: Trigger | str,
        *,
        source: str,
        amount: int | None = None,
        event: WebhookEvent | None = None,
    ) -> TransitionRecord:
        state = record.state
        return TransitionRecord(
            payment_id=record.id,
            provider=record.payment.provider,
            trigger=str(trigger),
            previous_status=previous,
            new_status=state.status,
            currency=record.payment.amount.currency,
            amount=amount,
            captured=state.captured,
            refunded=state.refunded,
            source=source,
            event_id=event.id if event else None,
            event_type=event.type.value if event else None,
            recorded_at=record.updated_at,
        )

    @staticmethod
    def _merge(stored: Payment, fresh: Payment) -> Payment:
        """``stored`` with the descriptive fields of a newer answer (not its status or
        amounts: those come from the state machine)."""
        return dataclasses.replace(
            stored,
            order_id=stored.order_id or fresh.order_id,
            customer_id=fresh.customer_id or stored.customer_id,
            redirect_url=fresh.redirect_url,
            failure=fresh.failure,
            charge_id=fresh.charge_id or stored.charge_id,
            metadata=fresh.metadata or stored.metadata,
            created_at=stored.created_at or fresh.created_at,
        )

    def _log_transition(self, t: TransitionRecord) -> None:
        if not _log.isEnabledFor(logging.INFO):  # its arguments cost more than the check
            return
        _log.info(
            "payment %s: %s -> %s (%s via %s%s) captured=%s refunded=%s",
            t.payment_id, t.previous_status.value if t.previous_status else "new",
            t.new_status.value, t.trigger, t.source,
            f" event {t.event_id}" if t.event_id else "",
            t.captured_money, t.refunded_money,
        )  # fmt: skip

    # -- keeping the store in step with the provider's answers ------------------------------

    def _source(self, source: str) -> str:
        """``source``, unless the caller is inside :meth:`channel`."""
        return _CHANNEL.get() or source

    @contextlib.contextmanager
    def channel(self, source: str) -> Iterator[None]:
        """Label the transitions and facts recorded inside the block with ``source``
        (``"reconcile"``, ``"return"``, ``"api"``): reconciliation's ``--apply`` syncs
        through :meth:`get_payment` and :meth:`refund` inside ``channel("reconcile")``."""
        if source not in _CHANNELS:
            raise ValidationError(
                f"channel must be one of {', '.join(sorted(_CHANNELS))}, got {source!r}"
            )
        token = _CHANNEL.set(source)
        try:
            yield
        finally:
            _CHANNEL.reset(token)

    def _facts_of(
        self,
        step: Step,
        before: PaymentState,
        payment: Payment,
        *,
        source: str,
        now: float,
        event: WebhookEvent | None = None,
    ) -> tuple[Fact, ...]:
        """The facts of an applied step, in causal order, each with the payment as it
        stood right after that fact (``payment`` is the record after the whole step)."""
        facts: list[Fact] = []
        state = before
        last = len(step.applied) - 1
        for i, change in enumerate(step.applied):
            if i == last:
                shown = payment
            else:  # an implied capture before the event itself: the state in between
                try:
                    state = apply(state, change).state
                    shown = PaymentRecord.build(payment, state).payment
                except InvalidTransition:  # pragma: no cover - the step just applied it
                    shown = payment
            fact = Fact.of(change, shown, source=source, recorded_at=now, event=event)
            if fact is not None:
                facts.append(fact)
        return tuple(facts)

    def _first_seen(
        self, fresh: Payment, *, source: str, now: float, asked: float | None
    ) -> tuple[PaymentState, tuple[Fact, ...]]:
        """The state of a payment first met through a provider answer, and the facts the
        answer proves: its events played from ``pending`` (a disputed payment was
        captured, then disputed), so the application hears of a payment first learned
        from the API as of one learned from webhooks."""
        stated = state_of(fresh, at=asked)
        state = PaymentState(S.PENDING, fresh.amount.amount)
        changes = events_for_answer(state, fresh, at=asked)
        if fresh.status in (S.PARTIALLY_REFUNDED, S.REFUNDED) and stated.captured:
            # refund statuses carry no event of their own: the capture is what is proven
            changes.insert(0, PaymentEvent(Trigger.SUCCEEDED, amount=stated.captured))
        steps: list[tuple[Step, PaymentState]] = []
        for change in changes:
            try:
                step = apply(state, change)
            except InvalidTransition:
                continue
            if step.changed:
                steps.append((step, state))
                state = step.state
        # the played state when it agrees with the provider's amounts (it knows the refund
        # ids, so none counts twice later); else the answer as the provider states it
        agrees = (state.status, state.captured, state.refunded) == (
            stated.status, stated.captured, stated.refunded,
        )  # fmt: skip
        final = state if agrees else stated
        shown = PaymentRecord.build(fresh, final).payment
        facts: list[Fact] = []
        for i, (step, before) in enumerate(steps):
            payment = (
                shown if i == len(steps) - 1 else PaymentRecord.build(fresh, step.state).payment
            )
            facts.extend(self._facts_of(step, before, payment, source=source, now=now))
        return final, tuple(facts)

    def _sync(
        self,
        fresh: Payment,
        *,
        source: str,
        event: PaymentEvent | None = None,
        asked: float | None = None,
    ) -> PaymentRecord:
        """Move the stored payment by a provider answer (through the state machine).

        A payment seen for the first time is recorded as the provider describes it. An
        answer about a known payment applies every event it proves
        (:func:`~paygate.state.events_for_answer`: its status with the captured amount,
        each refund by id), one transition each, each with its facts. An event the state
        machine finds impossible is logged and not applied (the store keeps its state;
        reconciliation sorts it out).

        ``asked``: the gateway's clock just before the provider was asked. The answer
        describes the payment as of then, so a webhook of an older event cannot undo it
        (without a time, a late ``action_required`` would look like a retry of a failure).
        Providers stamp events in whole seconds, truncated: the answer's time is taken in
        whole seconds too, so an event of the same second is not mistaken for an older one.
        """
        source = self._source(source)
        if asked is not None:
            asked = float(math.floor(asked))
        for _ in range(_CAS_ATTEMPTS):
            now = self.clock()
            current = self.store.get_payment(fresh.id)
            if current is None:
                state, facts = self._first_seen(fresh, source=source, now=now, asked=asked)
                record = PaymentRecord.build(fresh, state, version=1, updated_at=now)
                trigger = event.trigger if event else _status_trigger(fresh.status)
                transition = self._transition(record, None, trigger, source=source)
                try:
                    self.store.save_payment(
                        record, expected_version=None, transition=transition, facts=facts
                    )
                except StoreConflict:
                    continue
                self._log_transition(transition)
                self._note_recorded(facts)
                return record
            changes = (
                [event] if event is not None else events_for_answer(current.state, fresh, at=asked)
            )
            record = current
            lost = False
            for change in changes:
                try:
                    step = apply(record.state, change)
                except InvalidTransition as exc:
                    _log.warning(
                        "payment %s: provider reports %s, store has %s: %s not applied (%s)",
                        fresh.id, fresh.status.value, record.status.value,
                        change.trigger.value, exc,
                    )  # fmt: skip
                    continue
                if not step.changed:
                    continue
                moved = PaymentRecord.build(
                    self._merge(record.payment, fresh), step.state,
                    version=record.version + 1, updated_at=now,
                )  # fmt: skip
                transition = self._transition(
                    moved, record.status, change.trigger, source=source, amount=change.amount
                )
                facts = self._facts_of(step, record.state, moved.payment, source=source, now=now)
                try:
                    self.store.save_payment(
                        moved, expected_version=record.version, transition=transition,
                        facts=facts,
                    )  # fmt: skip
                except StoreConflict:
                    lost = True
                    break
                self._log_transition(transition)
                self._note_recorded(facts)
                record = moved
            if lost:
                continue  # read again; what was saved is counted, the rest applies on top
            return record
        raise StoreConflict(f"payment {fresh.id}: too much write contention, giving up")

    def _fetch(self, payment_id: str) -> Payment:
        """The provider's answer about ``payment_id``; an answer about another payment is
        refused before anything is written."""
        fresh = self._call("get_payment", lambda: self.provider.get_payment(payment_id))
        return self._same_payment(fresh, payment_id)

    def _same_payment(self, fresh: Payment, payment_id: str) -> Payment:
        if not isinstance(fresh, Payment) or fresh.id != payment_id:
            got = fresh.id if isinstance(fresh, Payment) else type(fresh).__name__
            raise ProviderError(
                f"asked {self.provider.name} about payment {payment_id!r}, it answered about "
                f"{got!r}; nothing was recorded",
                provider=self.provider.name,
                code="payment_mismatch",
            )
        return fresh

    def _known(self, payment_id: str) -> PaymentRecord:
        """The stored payment, fetched from the provider first if the store has none."""
        self._check_id(payment_id, "payment_id")
        record = self.store.get_payment(payment_id)
        if record is None:
            asked = self.clock()
            record = self._sync(self._fetch(payment_id), source="api", asked=asked)
        return record

    # -- idempotency ------------------------------------------------------------------------

    def _idempotent(
        self,
        *,
        scope: str,
        operation: str,
        fingerprint: str,
        key_for: Callable[[int], str],
        call: Callable[[str], T],
        replay: Callable[[OperationRecord], T | None],
        result_id: Callable[[T], str],
        order_id: str | None = None,
        method_digest: str | None = None,
        attempt_over: Callable[[OperationRecord], bool] | None = None,
    ) -> T:
        """Run a creating operation at most once per scope and attempt.

        The record is written before the provider is called. A refused attempt (a
        decline) or one whose result ended (``attempt_over``: a failed payment, a
        canceled subscription) lets the next call start attempt n+1 with a new key; any
        other existing record must match ``fingerprint`` (else ``IdempotencyConflict``)
        and is replayed from the store, or re-sent with the *same* key while its outcome
        is unknown (pending).
        """
        now = self.clock()
        fresh = OperationRecord(
            key=scope, operation=operation, fingerprint=fingerprint, provider_key=key_for(1),
            order_id=order_id, method_digest=method_digest, created_at=now, updated_at=now,
        )  # fmt: skip
        for _ in range(_CAS_ATTEMPTS):
            op = self.store.begin_operation(fresh)
            over = op.status is OperationStatus.FAILED or (
                op.status is OperationStatus.SUCCEEDED
                and attempt_over is not None
                and attempt_over(op)
            )
            if over:
                attempt = op.attempt + 1
                following = dataclasses.replace(
                    fresh, attempt=attempt, provider_key=key_for(attempt), created_at=op.created_at
                )
                if not self.store.replace_operation(following, expected_attempt=op.attempt):
                    continue  # another caller started the next attempt first: look again
                op = following
                break
            if op.fingerprint != fingerprint:
                raise IdempotencyConflict(
                    f"{operation} for {scope.split(':', 1)[1]} was already requested with "
                    "different parameters (amount, currency, ...); use a new order id",
                    code="idempotency_conflict",
                )
            if op.method_digest != method_digest:
                raise IdempotencyConflict(
                    f"{operation} for {scope.split(':', 1)[1]} already has an attempt with "
                    "another payment method that is "
                    f"{'in flight' if op.status is OperationStatus.PENDING else 'active'}; "
                    "cancel it, or retry with the same payment method",
                    code="idempotency_conflict",
                )
            if op.status is OperationStatus.SUCCEEDED:
                replayed = replay(op)
                if replayed is not None:
                    _log.info(
                        "%s %s: replayed %s (no provider call)", operation, scope, op.result_id
                    )
                    return replayed
            break
        else:  # pragma: no cover - needs 20 lost races in a row
            raise StoreConflict(f"{scope}: too much contention on its idempotency record")

        key = op.provider_key
        try:
            result = self._call(operation, lambda: call(key))
        except (ProviderError, ValidationError) as exc:
            if not getattr(exc, "retryable", False):
                # refused for good (a decline, a request the adapter or provider refused):
                # nothing was charged, so the next call may start a new attempt, with new
                # parameters if need be. A retryable failure stays pending: its outcome is
                # unknown, so the next call re-sends the same key and the provider answers
                # it once.
                code = getattr(exc, "decline_code", None) or getattr(exc, "code", None)
                self.store.finish_operation(
                    scope, attempt=op.attempt, status=OperationStatus.FAILED,
                    result_id=getattr(exc, "payment_id", None), result=None,
                    error_code=code or type(exc).__name__, now=self.clock(),
                )  # fmt: skip
            raise
        self.store.finish_operation(
            scope, attempt=op.attempt, status=OperationStatus.SUCCEEDED,
            result_id=result_id(result), result=_codec.dump(result), error_code=None,
            now=self.clock(),
        )  # fmt: skip
        return result

    @staticmethod
    def _stored_result(op: OperationRecord, kind: type[T]) -> T | None:
        if op.result is None:
            return None
        value = _codec.load(dict(op.result))
        return value if isinstance(value, kind) else None

    # -- payments ---------------------------------------------------------------------------

    def create_payment(
        self,
        *,
        order_id: str,
        amount: Money,
        payment_method: str | None = None,
        customer_id: str | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        capture: CaptureMethod = "automatic",
        return_url: str | None = None,
    ) -> Payment:
        """Pay for ``order_id``. Idempotent per order: the same call again returns the same
        payment without a second charge; the same order with another amount or currency
        raises :class:`~paygate.errors.IdempotencyConflict` before reaching the provider.
        After a decline (or once the payment failed or was canceled) a new call starts the
        next attempt, with any payment method."""
        self._check_id(order_id, "order_id")
        self._check_money(amount, "amount")
        if capture not in ("automatic", "manual"):
            raise ValidationError(f"capture must be 'automatic' or 'manual', got {capture!r}")
        method_digest = None if payment_method is None else idem.digest(payment_method)

        def call(key: str) -> Payment:
            return self.provider.create_payment(
                order_id=order_id, amount=amount, payment_method=payment_method,
                idempotency_key=key, customer_id=customer_id, description=description,
                metadata=metadata, capture=capture, return_url=return_url,
            )  # fmt: skip

        def replay(op: OperationRecord) -> Payment | None:
            record = self.store.get_payment(op.result_id) if op.result_id else None
            return record.payment if record is not None else None

        def attempt_over(op: OperationRecord) -> bool:
            record = self.store.get_payment(op.result_id) if op.result_id else None
            return record is not None and record.status in _RETRYABLE_ATTEMPT

        _log.info("create_payment order=%s amount=%s capture=%s", order_id, amount, capture)
        asked = self.clock()
        try:
            payment = self._idempotent(
                scope=f"create_payment:{order_id}",
                operation="create_payment",
                fingerprint=idem.fingerprint(
                    amount=amount.amount, currency=amount.currency, capture=capture
                ),
                key_for=lambda n: idem.provider_key(
                    order_id, "create_payment", n, amount.currency, amount.amount
                ),
                call=call,
                replay=replay,
                result_id=lambda p: p.id,
                order_id=order_id,
                method_digest=method_digest,
                attempt_over=attempt_over,
            )
        except CardDeclined as exc:
            _log.info("create_payment order=%s declined: %s", order_id, exc.decline_code)
            raise
        record = self._sync(payment, source="api", asked=asked)
        _log.info("create_payment order=%s -> payment %s %s", order_id, payment.id,
                  record.status.value)  # fmt: skip
        self._pump()
        return self._view(record, payment)

    def get_payment(self, payment_id: str) -> Payment:
        """The payment, refreshed from the provider into the store (through the state
        machine), as the store now has it."""
        self._check_id(payment_id, "payment_id")
        asked = self.clock()
        fresh = self._fetch(payment_id)
        record = self._sync(fresh, source="api", asked=asked)
        self._pump()
        return self._view(record, fresh)

    def payment_for_order(self, order_id: str) -> Payment | None:
        """The latest payment attempt recorded for ``order_id`` (store only, no provider
        call), or ``None``."""
        records = self.store.payments_for_order(order_id)
        return records[-1].payment if records else None

    def history(self, payment_id: str) -> list[TransitionRecord]:
        """Every transition of the payment, oldest first: trigger, previous and new status,
        amounts, the event (or Gateway call) that caused it, and when."""
        return self.store.history(payment_id)

    def capture(self, payment_id: str, amount: Money | None = None) -> Payment:
        """Capture an authorized payment, all of it (``amount=None``) or part."""
        record = self._known(payment_id)
        if amount is not None:
            self._check_money(amount, "capture amount")
            if amount.currency != record.payment.amount.currency:
                raise ValidationError(
                    f"capture amount {amount} is not in the payment's "
                    f"{record.payment.amount.currency}"
                )
            if amount.amount > record.state.amount:
                raise ValidationError(
                    f"capture amount {amount} exceeds the authorized {record.payment.amount}"
                )
        fingerprint = idem.fingerprint(amount=None if amount is None else amount.amount)
        op = self.store.get_operation(f"capture:{payment_id}")
        replaying = (
            op is not None
            and op.fingerprint == fingerprint
            and op.status is OperationStatus.SUCCEEDED
        )
        if not replaying and record.status is not S.AUTHORIZED:
            raise ValidationError(
                f"payment {payment_id} is {record.status.value}: only an authorized "
                "payment can be captured"
            )

        def call(key: str) -> Payment:
            answer = self.provider.capture_payment(payment_id, amount=amount, idempotency_key=key)
            return self._same_payment(answer, payment_id)

        _log.info("capture payment %s amount=%s", payment_id, amount or "all")
        asked = self.clock()
        fresh = self._idempotent(
            scope=f"capture:{payment_id}",
            operation="capture",
            fingerprint=fingerprint,
            key_for=lambda n: idem.provider_key(
                payment_id, "capture", n, "all" if amount is None else amount.amount
            ),
            call=call,
            replay=lambda op: self._stored_payment(payment_id),
            result_id=lambda p: p.id,
            order_id=record.order_id,
        )
        synced = self._sync(fresh, source="api", asked=asked)
        self._pump()
        return self._view(synced, fresh)

    def _stored_payment(self, payment_id: str) -> Payment | None:
        record = self.store.get_payment(payment_id)
        return record.payment if record is not None else None

    def cancel(self, payment_id: str) -> Payment:
        """Cancel a payment that has not settled (pending, requires action, processing,
        authorized, failed)."""
        record = self._known(payment_id)
        if record.status is S.CANCELED:
            return record.payment  # already canceled: nothing to send
        if not isinstance(TABLE[record.status].get(Trigger.CANCELED), PaymentStatus):
            raise ValidationError(
                f"payment {payment_id} is {record.status.value} and cannot be canceled"
                + ("; refund it instead" if record.status in _SETTLED else "")
            )

        def call(key: str) -> Payment:
            answer = self.provider.cancel_payment(payment_id, idempotency_key=key)
            return self._same_payment(answer, payment_id)

        _log.info("cancel payment %s", payment_id)
        asked = self.clock()
        fresh = self._idempotent(
            scope=f"cancel:{payment_id}",
            operation="cancel",
            fingerprint=idem.fingerprint(),
            key_for=lambda n: idem.provider_key(payment_id, "cancel", n),
            call=call,
            replay=lambda op: self._stored_payment(payment_id),
            result_id=lambda p: p.id,
            order_id=record.order_id,
        )
        synced = self._sync(fresh, source="api", asked=asked)
        self._pump()
        return self._view(synced, fresh)

    def refund(
        self,
        payment_id: str,
        amount: Money | None = None,
        reason: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Refund:
        """Refund ``amount`` (``None``: everything not yet refunded).

        Idempotent per (payment, amount refunded so far, amount): a double click sends
        one refund; a second refund after the first completed is a new refund. Pass
        ``idempotency_key`` to decide yourself what counts as the same refund.
        """
        record = self._known(payment_id)
        currency = record.payment.amount.currency
        state = record.state
        remaining = state.captured - state.refunded
        if amount is not None:
            self._check_money(amount, "refund amount")
            if amount.currency != currency:
                raise ValidationError(f"refund amount {amount} is not in the payment's {currency}")
        to_refund = amount.amount if amount is not None else remaining
        scope_id = idempotency_key or f"{payment_id}:{state.refunded}:{to_refund}"
        scope = f"refund:{scope_id}"
        fingerprint = idem.fingerprint(payment=payment_id, amount=to_refund)
        op = self.store.get_operation(scope)
        replaying = op is not None and op.status is OperationStatus.SUCCEEDED
        if not replaying:
            if record.status not in (S.SUCCEEDED, S.PARTIALLY_REFUNDED):
                raise ValidationError(
                    f"payment {payment_id} is {record.status.value}: only a captured, not "
                    "fully refunded payment can be refunded"
                )
            if not 0 < to_refund <= remaining:
                raise ValidationError(
                    f"refund of {Money(to_refund, currency)} exceeds the "
                    f"{Money(remaining, currency)} left to refund on payment {payment_id}"
                )

        def call(key: str) -> Refund:
            # the amount is always sent: "the rest" re-read on a retry after a lost answer
            # would be 0, or another body under the same key
            answer = self.provider.refund_payment(
                payment_id, amount=Money(to_refund, currency), reason=reason, idempotency_key=key
            )
            if answer.payment_id and answer.payment_id != payment_id:
                raise ProviderError(
                    f"asked {self.provider.name} to refund payment {payment_id!r}, it answered "
                    f"with a refund of {answer.payment_id!r}; nothing was recorded",
                    provider=self.provider.name,
                    code="payment_mismatch",
                )
            return answer

        _log.info("refund payment %s amount=%s", payment_id, Money(to_refund, currency))
        refund = self._idempotent(
            scope=scope,
            operation="refund",
            fingerprint=fingerprint,
            key_for=lambda n: (
                idem.provider_key("refund", idempotency_key, n)
                if idempotency_key
                else idem.provider_key(payment_id, "refund", state.refunded, to_refund, n)
            ),
            call=call,
            replay=lambda op: self._stored_result(op, Refund),
            result_id=lambda r: r.id,
            order_id=record.order_id,
        )
        if refund.status is RefundStatus.SUCCEEDED:
            self._sync_refund(payment_id, refund)
        self._pump()
        _log.info("refund %s of payment %s: %s %s", refund.id, payment_id, refund.amount,
                  refund.status.value)  # fmt: skip
        return refund

    def _sync_refund(self, payment_id: str, refund: Refund) -> None:
        record = self.store.get_payment(payment_id)
        if record is None:  # pragma: no cover - _known() recorded it
            return
        event = PaymentEvent(Trigger.REFUNDED, amount=refund.amount.amount, ref=refund.id)
        self._sync(record.payment, source="api", event=event)

    def handle_return(self, params: Mapping[str, str]) -> Payment:
        """The customer's redirect back from the provider's page. The payment is looked up
        at the provider (and finished, where the provider needs that); the query string's
        own words are never trusted."""
        if not isinstance(params, Mapping):
            raise ValidationError(f"params must be a mapping, got {type(params).__name__}")
        clean = {str(k): str(v) for k, v in params.items()}
        key = idem.provider_key("return", idem.digest(sorted(clean.items())))
        asked = self.clock()
        fresh = self._call(
            "complete_return", lambda: self.provider.complete_return(clean, idempotency_key=key)
        )
        record = self._sync(fresh, source="return", asked=asked)
        _log.info("return for payment %s: %s", fresh.id, record.status.value)
        self._pump()
        return self._view(record, fresh)

    # -- checkout, customers, subscriptions, invoices ----------------------------------------

    def _check_lines(self, line_items: Sequence[LineItem]) -> Money:
        if isinstance(line_items, (str, bytes)) or not line_items:
            raise ValidationError("line_items must be a non-empty list of LineItem")
        for item in line_items:
            if not isinstance(item, LineItem):
                raise ValidationError(f"line_items must hold LineItem, got {type(item).__name__}")
        currencies = {item.unit_amount.currency for item in line_items}
        if len(currencies) != 1:
            raise ValidationError(f"line_items mix currencies: {', '.join(sorted(currencies))}")
        total = Money.zero(currencies.pop())
        for item in line_items:
            total += item.total
        return self._check_money(total, "line_items total")

    @staticmethod
    def _lines_fingerprint(line_items: Sequence[LineItem]) -> list[Any]:
        return [
            (i.name, i.unit_amount.amount, i.unit_amount.currency, i.quantity) for i in line_items
        ]

    def create_checkout(
        self,
        *,
        order_id: str,
        line_items: Sequence[LineItem],
        success_url: str,
        cancel_url: str,
        customer_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
        mode: str = "payment",
        price_id: str | None = None,
    ) -> CheckoutSession:
        """A hosted payment page for ``order_id``; send the customer to ``session.url``.
        Idempotent per order like :meth:`create_payment`."""
        self._check_id(order_id, "order_id")
        self._check_id(success_url, "success_url")
        self._check_id(cancel_url, "cancel_url")
        if mode not in ("payment", "subscription"):
            raise ValidationError(f"mode must be 'payment' or 'subscription', got {mode!r}")
        total = self._check_lines(line_items) if mode == "payment" or line_items else None

        def call(key: str) -> CheckoutSession:
            return self.provider.create_checkout_session(
                order_id=order_id, line_items=line_items, success_url=success_url,
                cancel_url=cancel_url, idempotency_key=key, mode=mode,  # type: ignore[arg-type]
                customer_id=customer_id, price_id=price_id, metadata=metadata,
            )  # fmt: skip

        _log.info("create_checkout order=%s total=%s", order_id, total)
        session = self._idempotent(
            scope=f"create_checkout:{order_id}",
            operation="create_checkout",
            fingerprint=idem.fingerprint(
                lines=self._lines_fingerprint(line_items), mode=mode, price=price_id
            ),
            key_for=lambda n: idem.provider_key(
                order_id,
                "create_checkout",
                n,
                total.currency if total else "none",
                total.amount if total else 0,
            ),
            call=call,
            replay=lambda op: self._stored_result(op, CheckoutSession),
            result_id=lambda s: s.id,
            order_id=order_id,
        )
        _log.info("create_checkout order=%s -> session %s", order_id, session.id)
        return session

    def create_customer(
        self,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Customer:
        """A customer at the provider. Each call creates one customer (retries inside
        the call send the same key, so a lost answer never makes two); two calls make two
        customers, even with the same details (two anonymous customers are two people).
        Pass ``idempotency_key`` to make calls with that key create one customer."""
        # a fresh identity per call unless the caller names one
        identity = idempotency_key or f"call-{uuid.uuid4().hex}"

        def call(key: str) -> Customer:
            return self.provider.create_customer(
                email=email, name=name, idempotency_key=key, metadata=metadata
            )

        customer = self._idempotent(
            scope=f"create_customer:{identity}",
            operation="create_customer",
            fingerprint=idem.fingerprint(email=email, name=name, metadata=dict(metadata or {})),
            key_for=lambda n: idem.provider_key("customer", identity, n),
            call=call,
            replay=lambda op: self._stored_result(op, Customer),
            result_id=lambda c: c.id,
        )
        _log.info("create_customer -> %s", customer.id)
        return customer

    def create_subscription(
        self,
        *,
        customer_id: str,
        price_id: str,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """Subscribe ``customer_id`` to ``price_id``. Idempotent while the subscription
        lives; once it is canceled, the same call starts a new one."""
        self._check_id(customer_id, "customer_id")
        self._check_id(price_id, "price_id")
        identity = idempotency_key or f"{customer_id}:{price_id}"

        def call(key: str) -> Subscription:
            return self.provider.create_subscription(
                customer_id=customer_id, price_id=price_id, idempotency_key=key, metadata=metadata
            )

        def replay(op: OperationRecord) -> Subscription | None:
            if op.result_id is None:
                return None
            return self._call(
                "get_subscription", lambda: self.provider.get_subscription(op.result_id or "")
            )

        def attempt_over(op: OperationRecord) -> bool:
            current = replay(op)
            return current is not None and current.status in _ENDED_SUBSCRIPTION

        subscription = self._idempotent(
            scope=f"create_subscription:{identity}",
            operation="create_subscription",
            fingerprint=idem.fingerprint(customer=customer_id, price=price_id),
            key_for=lambda n: idem.provider_key(customer_id, "subscription", price_id, n),
            call=call,
            replay=replay,
            result_id=lambda s: s.id,
            attempt_over=attempt_over,
        )
        _log.info("create_subscription customer=%s price=%s -> %s %s", customer_id, price_id,
                  subscription.id, subscription.status.value)  # fmt: skip
        return subscription

    def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False
    ) -> Subscription:
        """Cancel now, or at the end of the paid period."""
        self._check_id(subscription_id, "subscription_id")
        subscription = self._call(
            "cancel_subscription",
            lambda: self.provider.cancel_subscription(subscription_id, at_period_end=at_period_end),
        )
        _log.info("cancel_subscription %s at_period_end=%s -> %s", subscription_id,
                  at_period_end, subscription.status.value)  # fmt: skip
        return subscription

    def create_invoice(
        self,
        *,
        customer_id: str,
        line_items: Sequence[LineItem],
        order_id: str | None = None,
        description: str | None = None,
        send: bool = False,
    ) -> Invoice:
        """An invoice for ``customer_id``; idempotent per ``order_id`` when given (else per
        customer and lines)."""
        self._check_id(customer_id, "customer_id")
        total = self._check_lines(line_items)
        lines = self._lines_fingerprint(line_items)
        identity = order_id or idem.digest(customer_id, lines)

        def call(key: str) -> Invoice:
            return self.provider.create_invoice(
                customer_id=customer_id, line_items=line_items, idempotency_key=key,
                order_id=order_id, description=description, send=send,
            )  # fmt: skip

        invoice = self._idempotent(
            scope=f"create_invoice:{identity}",
            operation="create_invoice",
            fingerprint=idem.fingerprint(customer=customer_id, lines=lines),
            key_for=lambda n: idem.provider_key(
                identity, "create_invoice", n, total.currency, total.amount
            ),
            call=call,
            replay=lambda op: self._stored_result(op, Invoice),
            result_id=lambda i: i.id,
            order_id=order_id,
        )
        _log.info("create_invoice customer=%s total=%s -> %s", customer_id, total, invoice.id)
        return invoice

    # -- webhooks ---------------------------------------------------------------------------

    def on(self, *event_types: EventType | str) -> Callable[[H], H]:
        """Register a handler for these event types (none given: every event)::

            @gw.on(EventType.PAYMENT_SUCCEEDED)
            def fulfil(fact): ...

        Payment facts (``payment.succeeded``, ``refund.failed``, ``dispute.lost``, ...:
        :data:`paygate.FACT_TYPES`) reach their handlers as a :class:`~paygate.Fact`, once
        per fact whichever channel established it (webhook, API answer, the customer's
        return, reconciliation), in order per payment, from the store's outbox. Other
        events (subscriptions, invoices, checkout, unknown) reach theirs as the
        :class:`~paygate.models.WebhookEvent`, once per new event id. Several handlers may
        share a type; they run in registration order (all again if one of them raised).

        The Gateway runs handlers synchronously: a coroutine function (``async def``, or
        a partial or callable object around one) is refused with
        :class:`~paygate.errors.ConfigurationError`.
        """
        types: list[EventType | None] = [EventType(t) for t in event_types] or [None]

        def register(handler: H) -> H:
            if not callable(handler):
                raise ConfigurationError(f"webhook handler must be callable, got {handler!r}")
            if _is_async(handler):
                raise ConfigurationError(
                    f"handler {_name(handler)} is a coroutine function, but this Gateway runs "
                    "handlers synchronously and would never await it (the order would never "
                    "be fulfilled). Register a plain function; to call async code from it, "
                    "use asyncio.run(...) (or your framework's async_to_sync)"
                )
            with self._handlers_lock:
                for event_type in types:
                    self._handlers.setdefault(event_type, []).append(handler)
            return handler

        return register

    def _handlers_for(self, event_type: EventType) -> list[WebhookHandler]:
        with self._handlers_lock:
            return [*self._handlers.get(event_type, ()), *self._handlers.get(None, ())]

    @staticmethod
    def _run_handler(handler: WebhookHandler, subject: Any) -> None:
        result = handler(subject)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if callable(close):
                close()  # never awaited: closed, so no "never awaited" warning either
            raise _AwaitableReturned(
                f"handler {_name(handler)} returned an awaitable, which this synchronous "
                "Gateway cannot await: it did not run. Register a plain function (use "
                "asyncio.run(...) inside it for async code)"
            )

    # -- the outbox of payment facts ----------------------------------------------------

    def dispatch_pending(self, *, limit: int = 1000) -> DispatchSummary:
        """Run the handlers of every pending fact (up to ``limit``), failed ones included
        (whatever their backoff), in order per payment, each once under a lease: for a
        cron job or worker, and after fixing a handler. A gateway with no handler
        registered at all dispatches nothing (it would mark facts done unheard)."""
        if limit < 1:
            raise ValidationError(f"limit must be >= 1, got {limit}")
        if not self._handlers:
            _log.warning("dispatch_pending: no handler registered; facts left pending")
            return _NOTHING
        return self._dispatch_facts(limit=limit, retry_failed=True, known_due=True, drain=True)

    def pending_facts(
        self, *, payment_id: str | None = None, limit: int | None = None
    ) -> list[Fact]:
        """Facts whose handlers have not all run yet (pending or failed), oldest first;
        ``Fact.attempts`` and ``Fact.last_error`` say what happened so far."""
        return self.store.list_facts(pending=True, payment_id=payment_id, limit=limit)

    def facts(self, payment_id: str) -> list[Fact]:
        """Every fact recorded for the payment, in causal order (done or not)."""
        return self.store.list_facts(payment_id=payment_id)

    def _note_recorded(self, facts: Sequence[Fact]) -> None:
        """Remember, for this thread's call, the facts it recorded: its dispatch claims
        without looking first, and need not read them back."""
        if facts:
            mine: dict[str, Fact] = getattr(self._recorded, "facts", None) or {}
            mine.update((f.id, f) for f in facts)
            self._recorded.facts = mine

    def _pump(self, *, known_due: bool = False, facts: Sequence[Fact] = ()) -> DispatchSummary:
        """After a call that touched the store: run the handlers of due facts (the ones it
        recorded, and failed ones whose backoff is over). Never raises for a handler: a
        failure is logged and the fact retried later. A gateway with no handler at all
        leaves facts for one that has them (a CLI or script records, the app tells)."""
        recorded: dict[str, Fact] = getattr(self._recorded, "facts", None) or {}
        self._recorded.facts = None
        if not self._handlers:
            return _NOTHING
        recorded.update((f.id, f) for f in facts)
        known_due = known_due or bool(recorded)
        now = self.clock()
        if not known_due and now < self._next_sweep:
            return _NOTHING  # looked a moment ago: a failed fact's backoff is >= 1 s anyway
        self._next_sweep = now + _SWEEP_INTERVAL
        try:
            return self._dispatch_facts(
                limit=100, retry_failed=False, known_due=known_due, known=recorded
            )
        except Exception as exc:  # the call itself succeeded; the facts are durable
            _log.warning("fact dispatch failed (%s: %s); facts stay pending",
                         type(exc).__name__, exc)  # fmt: skip
            return _NOTHING

    def _dispatch_facts(
        self,
        *,
        limit: int,
        retry_failed: bool,
        known_due: bool,
        known: Mapping[str, Fact] | None = None,
        drain: bool | None = None,
    ) -> DispatchSummary:
        """Claim and run due facts. ``known_due``: claim at once (the caller recorded
        facts, or an explicit dispatch); ``drain`` (default: unless ``known_due``): keep
        going while facts are due, else stop once the batch's facts are done and none of
        their payments' next facts is due."""
        if drain is None:
            drain = not known_due
        total = _NOTHING
        first = True
        # claim at once when the caller knows a fact is due (it recorded one) or a fact
        # just finished said its payment's next one is; else look first (a read: no
        # write lock taken when nothing is due)
        claim_now = known_due
        while total.done + total.failed < limit:
            if not claim_now and not self.store.has_due_facts(now=self.clock()):
                break
            claims = self.store.claim_facts(
                now=self.clock(), lease_seconds=self.webhook_lease,
                limit=min(_FACT_BATCH, limit - total.done - total.failed),
                retry_failed=retry_failed and first, known=known,
            )  # fmt: skip
            first = False
            if not claims:
                break
            claim_now = False
            for claim in claims:
                if self.clock() >= claim.lease_until:
                    # the batch took longer than the lease: another dispatcher may own
                    # this one now; it stays for whoever claims it next (never run twice)
                    continue
                ran, next_due = self._run_fact(claim)
                total += ran
                claim_now = claim_now or next_due
            if not claim_now and drain:
                continue  # look again: more may be due than one batch held
            if not claim_now:
                break  # this call's own facts are dispatched, and none waits on them
        return total

    def _run_fact(self, claim: FactClaim) -> tuple[DispatchSummary, bool]:
        """Run one claimed fact's handlers, then mark it done; a raising handler leaves it
        pending with its error, due again after a backoff (1 s doubling, at most 5 min)."""
        fact = claim.fact
        handlers = self._handlers_for(fact.type)
        ran = 0
        for handler in handlers:
            try:
                self._run_handler(handler, fact)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                delay = min(2.0 ** max(fact.attempts - 1, 0), _MAX_FACT_BACKOFF)
                self.store.fail_fact(claim, error=error, retry_at=self.clock() + delay)
                _log.warning(
                    "fact %s: handler %s raised %s (attempt %d); retried in %.0f s",
                    fact.id, _name(handler), type(exc).__name__, fact.attempts, delay,
                )  # fmt: skip
                failed = DispatchSummary(0, 1, ran + 1, (f"{fact.id}: {error}",), (fact,))
                return failed, False
            ran += 1
        done, next_due = self.store.finish_fact(claim, now=self.clock())
        if not done:
            _log.warning("fact %s: lease expired before its handlers finished", fact.id)
        elif _log.isEnabledFor(logging.INFO):
            _log.info("fact %s (%s via %s): %d handler(s) ran", fact.id, fact.type.value,
                      fact.source, ran)  # fmt: skip
        return DispatchSummary(1, 0, ran, (), (fact,)), next_due

    def replay(
        self,
        *,
        since: float | Any | None = None,
        payment_id: str | None = None,
        store: Store | None = None,
        dry_run: bool = False,
    ) -> list[WebhookEvent]:
        """Run the registered handlers again for recorded events, oldest received first,
        never applying a transition again (for a handler bug fixed after the fact).

        Only events of this gateway's provider whose transition step is done and whose
        handlers ran (or would have): not stale, rejected or never-applied ones.
        ``since``: received at or after (Unix seconds or an aware ``datetime``);
        ``payment_id``: that payment's events; ``store``: read the events from another
        store (``paygate events replay --store``); ``dry_run``: select, run nothing. A
        handler that raises stops the replay and propagates. Returns the events replayed
        (those with at least one handler).
        """
        source = store if store is not None else self.store
        if since is not None and not isinstance(since, int | float):
            since = since.timestamp()  # a datetime
        replayed: list[WebhookEvent] = []
        for record in source.list_events(since=since, payment_id=payment_id):
            if record.provider != self.provider.name or record.outcome in (
                None, "stale", "rejected",
            ):  # fmt: skip
                continue
            event: WebhookEvent = record.to_event()
            handlers = self._handlers_for(event.type)
            if not handlers:
                continue
            if not dry_run:
                for handler in handlers:
                    handler(event)
                _log.info("replay %s (%s): %d handler(s) ran", event.id, event.type.value,
                          len(handlers))  # fmt: skip
            replayed.append(event)
        return replayed

    def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
        """Verify, record, apply and dispatch one webhook delivery.

        Raises :class:`~paygate.errors.WebhookVerificationError` for a delivery that is not
        authentic (answer 400). A payment fact's event records the facts it establishes in
        the transaction that applies it; their handlers then run from the outbox, and a
        handler that raises leaves the fact pending for a retry without failing the
        delivery (see :class:`WebhookResult`). For other events (subscriptions,
        invoices, ...) a handler's exception is re-raised after giving the event up, so
        that the provider's redelivery runs the handlers again (answer 5xx); the state
        transition is never applied twice. Otherwise answer the result's
        :attr:`~WebhookResult.http_status` (409 while another worker holds the event).
        """
        event = self.provider.parse_webhook(body, headers)
        result = self._handle_event(event)
        if result.duplicate:  # changed nothing: its facts (if any) were dispatched already
            return result
        # the facts this delivery recorded (and other due ones): handlers run from the
        # outbox, outside any transaction; a failure is reported, never raised
        summary = self._pump(known_due=bool(result.facts), facts=result.facts)
        if summary is _NOTHING:
            return result
        return dataclasses.replace(
            result, handlers_run=result.handlers_run + summary.handlers_run,
            handler_errors=summary.errors,
        )  # fmt: skip

    def _handle_event(self, event: WebhookEvent) -> WebhookResult:
        payment_id = event.payment_id
        occurred = event.occurred_at.timestamp() if event.occurred_at else None
        # a payment fact's handlers hear the fact from the outbox, not this delivery
        fact_event = payment_id is not None and event.type in FACT_TYPES
        handlers = [] if fact_event else self._handlers_for(event.type)
        # the first delivery of an event, on a store that can: claim, transition, log
        # (and finish, with no handler to wait for) in one transaction; a redelivery
        # there: counted (taken over if nobody owns the event) in one transaction too
        ingested = self._ingest_new(event, occurred, quiet=not handlers)
        stored: PaymentRecord | None = None
        if ingested is not None:
            claim, applied, stored = ingested
            if applied is not None:
                return self._dispatch(event, claim, handlers, *applied)
            # a known event: the same transaction counted the delivery (and took the
            # event over if nobody owned it) and read the payment
            known = True
        else:
            claim = self.store.claim_event(
                self.provider.name, event.id, event_type=event.type.value,
                provider_type=event.provider_type, payment_id=payment_id,
                payload=_codec.dump(event), occurred_at=occurred, now=self.clock(),
                lease_seconds=self.webhook_lease,
            )  # fmt: skip
            known = False

        def payment() -> PaymentRecord | None:
            if known or not payment_id:
                return stored
            return self.store.get_payment(payment_id)

        if not claim.owned:
            record = payment()
            status = record.status if record else None
            in_progress = claim.status is ClaimStatus.IN_PROGRESS
            _log.info(
                "webhook %s (%s): duplicate delivery%s",
                event.id,
                event.type.value,
                ", in progress elsewhere" if in_progress else "",
            )
            return WebhookResult(
                event, True, status, status, claim.outcome,
                payment=record.payment if record else None,
                in_progress=in_progress,
            )  # fmt: skip
        error: str | None = None
        finished = False
        facts: tuple[Fact, ...] = ()
        if claim.applied:  # an earlier delivery applied it, then a handler failed
            outcome = claim.outcome
            record = payment()
            previous = record.status if record else None
        else:
            # with no handler to wait for, the event is marked processed in the same
            # transaction as its transition (one commit fewer)
            outcome, previous, record, error, finished, facts = self._apply_event(
                event, claim, quiet=not handlers
            )
        return self._dispatch(
            event, claim, handlers, outcome, previous, record, error, finished, facts
        )

    def _dispatch(
        self,
        event: WebhookEvent,
        claim: EventClaim,
        handlers: list[WebhookHandler],
        outcome: EventOutcome | None,
        previous: PaymentStatus | None,
        record: PaymentRecord | None,
        error: str | None,
        finished: bool,
        facts: tuple[Fact, ...] = (),
    ) -> WebhookResult:
        """Run the handlers of an owned, applied event that is not a payment fact
        outside any transaction, then finish it (unless already ``finished``); a raising
        handler gives the event up."""
        payment_id = event.payment_id
        status = record.status if record else None
        if outcome in ("stale", "rejected"):
            handlers = []
        for handler in handlers:
            try:
                self._run_handler(handler, event)
            except BaseException as exc:
                self.store.release_event(claim, error=f"{type(exc).__name__}: {exc}"[:500])
                _log.warning(
                    "webhook %s (%s): handler %s raised %s; the event stays unprocessed "
                    "for redelivery",
                    event.id, event.type.value, getattr(handler, "__qualname__", handler),
                    type(exc).__name__,
                )  # fmt: skip
                raise
        if not finished and not self.store.finish_event(claim, now=self.clock()):
            _log.warning("webhook %s: lease expired before the handlers finished", event.id)
        if _log.isEnabledFor(logging.INFO):  # spare building the arguments when disabled
            _log.info("webhook %s (%s): %s%s", event.id, event.type.value, outcome,
                      f", payment {payment_id} {status.value}" if status else "")  # fmt: skip
        return WebhookResult(
            event, False, previous, status, outcome,
            payment=record.payment if record else None,
            handlers_run=len(handlers), error=error, facts=facts,
        )  # fmt: skip

    def _ingest_new(
        self, event: WebhookEvent, occurred: float | None, *, quiet: bool
    ) -> tuple[EventClaim, _Applied | None, PaymentRecord | None] | None:
        """The first delivery of an event in one store transaction (SQL stores'
        ``ingest_event``): ``(claim, what was applied, None)``. A redelivery in one
        transaction too: ``(claim, None, the payment as stored)``, the claim processed, in
        progress, or taken over (the general path applies or re-runs it). ``None``: the
        store cannot, or the transition needs the provider first, or a race -- the
        general path takes over."""
        ingest = getattr(self.store, "ingest_event", None)
        if ingest is None:
            return None
        change = None if event.type is EventType.UNKNOWN else event_from_webhook(event)
        payload = _codec.dump(event)
        decided: list[str | None] = [None]  # the error of the plan that was committed

        def decide(current: PaymentRecord | None) -> EventPlan | None:
            planned = self._plan_event(event, change, current, now, quiet=quiet)
            if planned is None:
                return None
            decided[0] = planned[1]
            return planned[0]

        for _ in range(_CAS_ATTEMPTS):
            now = self.clock()
            try:
                done = ingest(
                    self.provider.name, event.id, event_type=event.type.value,
                    provider_type=event.provider_type, payment_id=event.payment_id,
                    payload=payload, occurred_at=occurred, now=now,
                    lease_seconds=self.webhook_lease, decide=decide,
                )  # fmt: skip
            except StoreConflict:
                continue  # another event of this payment won the race: read it again
            if done is None:
                return None
            claim, plan, current = done
            if plan is None:  # the event was known
                return claim, None, current
            error = decided[0]
            previous = current.status if current else None
            if plan.transition is not None:
                self._log_transition(plan.transition)
            elif plan.outcome == "rejected":
                _log.warning("webhook %s (%s) rejected for payment %s: %s", event.id,
                             event.type.value, event.payment_id, error)  # fmt: skip
            record = plan.record if plan.record is not None else current
            return claim, (plan.outcome, previous, record, error, plan.finish, plan.facts), None
        return None  # heavy contention: the general path retries on its own

    def _plan_event(
        self,
        event: WebhookEvent,
        change: PaymentEvent | None,
        current: PaymentRecord | None,
        now: float,
        *,
        quiet: bool,
    ) -> tuple[EventPlan, str | None] | None:
        """What ``event`` does to ``current`` (pure: it runs inside the store's
        transaction), with the rejection's reason; ``None`` when a payment first met
        through a refund or dispute must be looked up at the provider first. The same
        decisions as :meth:`_apply_event`."""
        payment_id = event.payment_id
        if change is None or payment_id is None:
            unknown = event.type is EventType.UNKNOWN
            return EventPlan("unknown" if unknown else "no_transition", finish=quiet), None
        obj = event.object
        if current is None:
            if not isinstance(obj, Payment):
                return None
            snapshot, state = self._unseen(event, payment_id)  # no I/O for a Payment
            previous = None
        else:
            snapshot, state, previous = current.payment, current.state, current.status
        try:
            step = apply(state, change)
        except InvalidTransition as exc:
            return EventPlan("rejected", finish=True), str(exc)
        if current is not None and not step.changed:
            outcome: EventOutcome = "stale" if step.result == "stale" else "unchanged"
            return EventPlan(outcome, finish=quiet or outcome == "stale"), None
        payment = self._merge(snapshot, obj) if isinstance(obj, Payment) and current else snapshot
        record = PaymentRecord.build(
            payment, step.state, version=current.version + 1 if current else 1, updated_at=now
        )
        transition = self._transition(
            record, previous, change.trigger, source="webhook", amount=change.amount, event=event
        )
        facts = self._facts_of(step, state, record.payment, source="webhook", now=now, event=event)
        return EventPlan(
            "applied", finish=quiet, record=record,
            expected_version=current.version if current else None, transition=transition,
            facts=facts,
        ), None  # fmt: skip

    def _apply_event(self, event: WebhookEvent, claim: EventClaim, *, quiet: bool) -> _Applied:
        """Apply the event's transition once.

        Returns (outcome, previous status, record, error, finished, facts): ``finished``
        when the event was also marked processed because no handler will run for it
        (``quiet``: none registered, or a payment fact; or the event is stale or
        rejected); ``facts``: those recorded with the transition.
        """
        payment_id = event.payment_id
        change = None if event.type is EventType.UNKNOWN else event_from_webhook(event)
        if change is None or payment_id is None:
            outcome: EventOutcome = (
                "unknown" if event.type is EventType.UNKNOWN else "no_transition"
            )
            self.store.record_outcome(claim, outcome, now=self.clock(), finish=quiet)
            record = self.store.get_payment(payment_id) if payment_id else None
            return outcome, record.status if record else None, record, None, quiet, ()
        for _ in range(_CAS_ATTEMPTS):
            now = self.clock()
            current = self.store.get_payment(payment_id)
            implied: tuple[PaymentEvent, ...] = ()
            if current is None:
                snapshot, state = self._unseen(event, payment_id)
                previous = None
                if state.status is S.SUCCEEDED:
                    # met through a refund or dispute: the provider says it was captured,
                    # and the app hears that first (the payment.succeeded may come later)
                    implied = (PaymentEvent(Trigger.SUCCEEDED, amount=state.captured),)
                    base = PaymentState(S.PENDING, state.amount)
            else:
                snapshot, state, previous = current.payment, current.state, current.status
            try:
                step = apply(state, change)
            except InvalidTransition as exc:
                self.store.record_outcome(claim, "rejected", now=now, finish=True)
                _log.warning("webhook %s (%s) rejected for payment %s: %s", event.id,
                             event.type.value, payment_id, exc)  # fmt: skip
                return "rejected", previous, current, str(exc), True, ()
            if current is not None and not step.changed:
                outcome = "stale" if step.result == "stale" else "unchanged"
                finish = quiet or outcome == "stale"
                self.store.record_outcome(claim, outcome, now=now, finish=finish)
                return outcome, previous, current, None, finish, ()
            obj = event.object
            payment = (
                self._merge(snapshot, obj) if isinstance(obj, Payment) and current else snapshot
            )
            record = PaymentRecord.build(
                payment, step.state, version=current.version + 1 if current else 1, updated_at=now
            )
            transition = self._transition(
                record,
                previous,
                change.trigger,
                source="webhook",
                amount=change.amount,
                event=event,
            )
            if implied:
                step = Step(step.state, "applied", (*implied, *step.applied))
                state = base
            facts = self._facts_of(
                step, state, record.payment, source="webhook", now=now, event=event
            )
            try:
                self.store.save_payment(
                    record, expected_version=current.version if current else None,
                    transition=transition, claim=claim, outcome="applied", finish=quiet,
                    facts=facts,
                )  # fmt: skip
            except StoreConflict:
                continue  # another event of this payment won the race: apply on top of it
            self._log_transition(transition)
            return "applied", previous, record, None, quiet, facts
        raise StoreConflict(f"payment {payment_id}: too much write contention, giving up")

    def _unseen(self, event: WebhookEvent, payment_id: str) -> tuple[Payment, PaymentState]:
        """Where a payment first met through an event starts, before the event applies.

        A payment event carries the payment: it starts ``pending`` at that amount and the
        event moves it. A refund or dispute carries no payment amount, so the payment is
        looked up at the provider and starts as captured (refunds and disputes are counted
        from their own events only, so none is counted twice).
        """
        obj = event.object
        if isinstance(obj, Payment):
            return obj, PaymentState(S.PENDING, obj.amount.amount)
        fresh = self._fetch(payment_id)
        if fresh.status in _SETTLED:
            assert fresh.amount_captured is not None
            captured = fresh.amount_captured.amount or fresh.amount.amount
            return fresh, PaymentState(S.SUCCEEDED, fresh.amount.amount, captured)
        return fresh, PaymentState(S.PENDING, fresh.amount.amount)


def _name(handler: Any) -> str:
    return str(getattr(handler, "__qualname__", None) or type(handler).__qualname__)


def _is_async(handler: Any) -> bool:
    """A coroutine function, or a partial or callable object around one."""
    target = handler
    for _ in range(8):  # partial(partial(f)) and the like
        if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
            return True
        inner = getattr(target, "func", None)  # functools.partial
        if inner is None:
            break
        target = inner
    if inspect.isfunction(handler) or inspect.ismethod(handler):
        return False
    # a callable object: its class's __call__ (looked up on the type, as a call does)
    call = type(handler).__dict__.get("__call__") or getattr(type(handler), "__call__", None)  # noqa: B004
    return inspect.iscoroutinefunction(call)


def _status_trigger(status: PaymentStatus) -> Trigger:
    event = event_for_status(status)
    return event.trigger if event is not None else Trigger.REFUNDED


# Typing only (the implementation below is the one that runs): the built-in names with each
# adapter's settings (its pydantic settings model) as keyword-only parameters, an adapter
# instance, then any other name without settings (a plugin's, or one from configuration).
# That last one takes no settings on purpose: a ``str`` overload with ``**settings: Any``
# would also accept ``connect("stripe", api_key=3)`` once the stripe overload failed.
@overload
def connect(
    provider: Literal["fake"],
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
    webhook_secret: str | SecretStr = ...,
    seed: int | None = None,
    base_url: str = ...,
    webhook_tolerance: int = ...,
    max_retries: int | None = None,
) -> Gateway[FakeProvider]: ...
@overload
def connect(
    provider: Literal["stripe"],
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
    api_key: str | SecretStr,
    webhook_secret: str | SecretStr | Sequence[str | SecretStr] = ...,
    webhook_tolerance: int = ...,
    api_version: str | None = None,
    base_url: str | None = None,
    timeout: float = ...,
    max_retries: int | None = None,
    test_mode: bool = False,
) -> Gateway[StripeProvider]: ...
@overload
def connect(
    provider: Literal["paypal"],
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
    client_id: str,
    client_secret: str | SecretStr,
    webhook_id: str | None = None,
    mode: Literal["sandbox", "live"] = ...,
    base_url: str | None = None,
    timeout: float = ...,
    max_retries: int | None = None,
    verification: Literal["offline", "api"] = ...,
    webhook_tolerance: int = ...,
    cert_fetcher: Callable[[str], bytes] | None = None,
) -> Gateway[PayPalProvider]: ...
@overload
def connect(
    provider: Literal["square"],
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
    access_token: str | SecretStr,
    location_id: str,
    webhook_signature_key: str | SecretStr | None = None,
    webhook_url: str | None = None,
    environment: Literal["sandbox", "production"] = ...,
    base_url: str | None = None,
    timeout: float = ...,
    max_retries: int | None = None,
    invoice_due_days: int = ...,
    http_client: httpx.Client | None = None,
) -> Gateway[SquareProvider]: ...
@overload
def connect(
    provider: A,
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> Gateway[A]: ...
@overload
def connect(
    provider: str,
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> Gateway[PaymentProvider]: ...
def connect(
    provider: str | PaymentProvider,
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
    **settings: Any,
) -> Gateway[Any]:
    """A :class:`Gateway` for ``provider`` (a name such as ``"stripe"``, with its settings
    as keyword arguments, or an adapter instance) and ``store`` (a URL such as
    ``"sqlite:///paygate.db"``, or a :class:`~paygate.stores.Store`). Without ``store``:
    ``$PAYGATE_STORE_URL``, else SQLite at ``./paygate.db`` in the working directory
    (logged once at INFO) -- the fake provider, which forgets its payments at exit,
    excepted: ``memory://`` for it. ``store="memory://"`` keeps nothing across restarts."""
    if isinstance(provider, str):
        instance = create_provider(provider, **settings)
    elif settings:
        raise ConfigurationError(
            f"provider settings ({', '.join(sorted(settings))}) were given for an already "
            "built provider; pass them to its constructor instead"
        )
    else:
        instance = provider
    if store is None:
        store = default_store_url(provider=instance.name)
    opened = open_store(store) if isinstance(store, str) else store
    return Gateway(instance, opened, retry=retry, currencies=currencies,
                   webhook_lease=webhook_lease, clock=clock)  # fmt: skip
