"""What a webhook delivery and a dispatch of facts report back (both faces return these)."""

from __future__ import annotations

from dataclasses import dataclass

from paygate._facts import Fact
from paygate.models import Payment, PaymentStatus, WebhookEvent
from paygate.stores import EventOutcome

__all__ = ["NOTHING", "DispatchSummary", "WebhookResult"]


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What [`Gateway.handle_webhook`][paygate.gateway.Gateway.handle_webhook] did with one
    delivery.

    ``duplicate``: this delivery changed nothing and ran no handler, because the event was
    already processed or because another worker holds it right now (``in_progress``: its
    lease has not run out; it may still fail or die before finishing).
    ``outcome``: ``applied`` (the payment moved), ``unchanged`` (it already was there),
    ``stale`` (late: recorded, ignored), ``rejected`` (impossible for the payment's state:
    recorded, not applied, ``error`` says why), ``no_transition`` (an event that moves no
    payment: subscriptions, invoices, ...), ``unknown`` (a type paygate does not know).

    Answer the provider with [`http_status`][paygate.gateway.WebhookResult.http_status]:
    200 whenever the event is done with (first delivery, processed duplicate, and every
    outcome above, ``rejected`` included: it can never apply, so a redelivery would only
    repeat it), 409 while it is ``in_progress``. A 2xx there could lose the event: if the
    worker holding it dies, the provider, told it was handled, never delivers it again,
    and nobody finishes it. The 409 makes the provider retry later; that delivery finds
    the event processed (200) or takes it over once the lease has run out.
    [`acknowledged`][paygate.gateway.WebhookResult.acknowledged] is the same answer as a
    bool.

    Payment facts: ``facts`` are the facts this delivery established (recorded in the
    outbox with the transition). Their handlers run from the outbox right after, and
    ``handlers_run`` / ``handler_errors`` say how that went (the dispatch may also have
    run other due facts). A fact's handler that raises does NOT fail the delivery: the
    fact is durable, stays pending with its error, and is retried from the outbox (the
    next gateway call after a short backoff, or
    [`Gateway.dispatch_pending`][paygate.gateway.Gateway.dispatch_pending]); the answer
    stays 200, and [`handlers_failed`][paygate.gateway.WebhookResult.handlers_failed]
    tells you. A redelivery would bring nothing: the fact is known.
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
        """What a webhook view answers: 200 when ``acknowledged``, else 409 (a retryable
        non-2xx, so the provider delivers the event again later)."""
        return 200 if self.acknowledged else 409


@dataclass(frozen=True, slots=True)
class DispatchSummary:
    """What one dispatch of pending facts did
    ([`Gateway.dispatch_pending`][paygate.gateway.Gateway.dispatch_pending])."""

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


#: a dispatch that did nothing (compared by identity: "no dispatch happened")
NOTHING = DispatchSummary()
