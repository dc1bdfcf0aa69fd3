"""The outbox of payment facts: claim due facts, run their handlers, mark them done.

Whichever channel moved a payment recorded its facts in the same transaction (see
``_state_sync`` and ``_webhooks``); the dispatcher here hands every recorded fact to the
handlers of its type once, in order per payment, under a lease.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from paygate._facts import Fact, FactClaim
from paygate._observe import fields
from paygate.errors import ValidationError
from paygate.gateway._base import GatewayBase
from paygate.gateway._results import NOTHING, DispatchSummary
from paygate.gateway._sansio import Flow, handler_name, run_handler, store
from paygate.stores import Store

_log = logging.getLogger("paygate")

#: facts claimed at once: each batch's leases start together, so a small batch keeps the
#: last fact's handlers well inside its lease
_FACT_BATCH = 10
#: a call that recorded no fact looks for due facts (failed ones whose backoff is over,
#: ones left by a dead worker) at most this often (seconds): the look is a store read
_SWEEP_INTERVAL = 1.0
#: a failed fact is retried after 1 s, then 2, 4, ... at most this long (seconds)
_MAX_FACT_BACKOFF = 300.0


class FactDispatch(GatewayBase):
    """``_pump`` after each call, ``_dispatch_pending`` on demand."""

    def _dispatch_pending(self, *, limit: int) -> Flow[DispatchSummary]:
        if limit < 1:
            raise ValidationError(f"limit must be >= 1, got {limit}")
        if not self._handlers:
            _log.warning("dispatch_pending: no handler registered; facts left pending",
                         extra=fields(provider=self._provider_name,
                                      operation="dispatch_pending"))  # fmt: skip
            return NOTHING
        return (
            yield from self._dispatch_facts(
                limit=limit, retry_failed=True, known_due=True, drain=True
            )
        )

    def _pending_facts(self, *, payment_id: str | None, limit: int | None) -> Flow[list[Fact]]:
        return (
            yield from store(Store.list_facts, pending=True, payment_id=payment_id, limit=limit)
        )

    def _facts(self, payment_id: str) -> Flow[list[Fact]]:
        return (yield from store(Store.list_facts, payment_id=payment_id))

    def _pump(
        self, noted: Mapping[str, Fact] | None = None, *, known_due: bool = False,
        facts: Sequence[Fact] = (), claimed: Sequence[FactClaim] = (),
    ) -> Flow[DispatchSummary]:  # fmt: skip
        """After a call that touched the store: run the handlers of due facts (the ones it
        recorded, ``noted``, and failed ones whose backoff is over). Never raises for a
        handler: a failure is logged and the fact retried later. A gateway with no handler
        at all leaves facts for one that has them (a CLI or script records, the app
        tells). ``claimed``: recorded facts the store claimed for this worker in the
        transaction that recorded them: run first, with no claim of their own; the
        dispatcher claims only what else is known due (another fact recorded, the next
        fact of a payment) or, once a second, looks for due ones."""
        if not self._handlers:
            return NOTHING
        recorded: dict[str, Fact] = dict(noted or {})
        recorded.update((f.id, f) for f in facts)
        known_due = known_due or bool(recorded)
        try:
            total = NOTHING
            if claimed:
                owned = {claim.fact.id for claim in claimed}
                known_due = any(fid not in owned for fid in recorded)
                for claim in claimed:
                    if self.clock() >= claim.lease_until:
                        continue  # as in _dispatch_facts: another dispatcher's now
                    ran, next_due = yield from self._run_fact(claim)
                    total += ran
                    known_due = known_due or next_due
            now = self.clock()
            if not known_due and now < self._next_sweep:
                return total  # looked a moment ago: a failed fact's backoff is >= 1 s anyway
            self._next_sweep = now + _SWEEP_INTERVAL
            more = yield from self._dispatch_facts(
                limit=100, retry_failed=False, known_due=known_due, known=recorded
            )
            return more if total is NOTHING else total + more
        except Exception as exc:  # the call itself succeeded; the facts are durable
            _log.warning("fact dispatch failed (%s: %s); facts stay pending",
                         type(exc).__name__, exc,
                         extra=fields(provider=self._provider_name, operation="dispatch",
                                      error_type=type(exc).__name__))  # fmt: skip
            return NOTHING

    def _dispatch_facts(
        self,
        *,
        limit: int,
        retry_failed: bool,
        known_due: bool,
        known: Mapping[str, Fact] | None = None,
        drain: bool | None = None,
    ) -> Flow[DispatchSummary]:
        """Claim and run due facts. ``known_due``: claim at once (the caller recorded
        facts, or an explicit dispatch); ``drain`` (default: unless ``known_due``): keep
        going while facts are due, else stop once the batch's facts are done and none of
        their payments' next facts is due."""
        if drain is None:
            drain = not known_due
        total = NOTHING
        first = True
        # claim at once when the caller knows a fact is due (it recorded one) or a fact
        # just finished said its payment's next one is; else look first (a read: no
        # write lock taken when nothing is due)
        claim_now = known_due
        while total.done + total.failed < limit:
            if not claim_now:
                due = yield from store(Store.has_due_facts, now=self.clock())
                if not due:
                    break
            claims = yield from store(
                Store.claim_facts,
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
                ran, next_due = yield from self._run_fact(claim)
                total += ran
                claim_now = claim_now or next_due
            if not claim_now and drain:
                continue  # look again: more may be due than one batch held
            if not claim_now:
                break  # this call's own facts are dispatched, and none waits on them
        return total

    def _run_fact(self, claim: FactClaim) -> Flow[tuple[DispatchSummary, bool]]:
        """Run one claimed fact's handlers, then mark it done; a raising handler leaves it
        pending with its error, due again after a backoff (1 s doubling, at most 5 min)."""
        fact = claim.fact
        handlers = self._handlers_for(fact.type)
        ran = 0
        for handler in handlers:
            try:
                yield from run_handler(handler, fact)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                delay = min(2.0 ** max(fact.attempts - 1, 0), _MAX_FACT_BACKOFF)
                yield from store(Store.fail_fact, claim, error=error, retry_at=self.clock() + delay)
                _log.warning(
                    "fact %s: handler %s raised %s (attempt %d); retried in %.0f s",
                    fact.id, handler_name(handler), type(exc).__name__, fact.attempts, delay,
                    extra=fields(provider=self._provider_name, operation="dispatch",
                                 fact_id=fact.id, event_type=fact.type.value,
                                 payment_id=fact.payment_id, order_id=fact.order_id,
                                 attempt=fact.attempts, outcome="handler_error",
                                 handler=handler_name(handler),
                                 error_type=type(exc).__name__),
                )  # fmt: skip
                failed = DispatchSummary(0, 1, ran + 1, (f"{fact.id}: {error}",), (fact,))
                return failed, False
            ran += 1
        done, next_due = yield from store(Store.finish_fact, claim, now=self.clock())
        if not done:
            _log.warning("fact %s: lease expired before its handlers finished", fact.id,
                         extra=fields(provider=self._provider_name, operation="dispatch",
                                      fact_id=fact.id, payment_id=fact.payment_id,
                                      outcome="lease_expired"))  # fmt: skip
        elif _log.isEnabledFor(logging.INFO):
            _log.info("fact %s (%s via %s): %d handler(s) ran", fact.id, fact.type.value,
                      fact.source, ran,
                      extra=fields(provider=self._provider_name, operation="dispatch",
                                   fact_id=fact.id, event_type=fact.type.value,
                                   payment_id=fact.payment_id, order_id=fact.order_id,
                                   attempt=fact.attempts, outcome="done"))  # fmt: skip
        return DispatchSummary(1, 0, ran, (), (fact,)), next_due
