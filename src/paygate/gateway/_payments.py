"""Payments, refunds and checkout, as flows (see ``_sansio``).

Each public operation of the faces (``create_payment``, ``get_payment``, ``capture``,
``cancel``, ``refund``, ``handle_return``, ``create_checkout``) is one flow here:
validation first, then the idempotency engine around the provider call, then the answer
into the store through the state machine, then the dispatch of the facts recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from paygate import _idempotency as idem
from paygate._facts import Fact
from paygate._observe import fields
from paygate.errors import CardDeclined, ProviderError, ValidationError
from paygate.gateway._base import RETRYABLE_ATTEMPT, SETTLED
from paygate.gateway._facts_dispatch import FactDispatch
from paygate.gateway._idempotency import IdempotencyFlows
from paygate.gateway._sansio import Flow, provider, store
from paygate.models import (
    CaptureMethod,
    CheckoutSession,
    LineItem,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from paygate.money import Money
from paygate.provider import PaymentProvider
from paygate.state import TABLE, PaymentEvent, Trigger
from paygate.stores import (
    OperationRecord,
    OperationStatus,
    PaymentRecord,
    Store,
    TransitionRecord,
)
from paygate.stores._records import OperationFinish

_log = logging.getLogger("paygate")


def _attempt_time(record: PaymentRecord) -> float:
    """When the provider created the attempt, else when the store first recorded it."""
    created = record.payment.created_at
    return record.created_at if created is None else created.timestamp()


S = PaymentStatus


class PaymentFlows(IdempotencyFlows, FactDispatch):
    """The payment operations, each a flow."""

    def _create_payment(
        self,
        *,
        order_id: str,
        amount: Money,
        payment_method: str | None,
        customer_id: str | None,
        description: str | None,
        metadata: Mapping[str, str] | None,
        capture: CaptureMethod,
        return_url: str | None,
        off_session: bool = False,
    ) -> Flow[Payment]:
        self._check_id(order_id, "order_id")
        self._check_money(amount, "amount")
        if capture not in ("automatic", "manual"):
            raise ValidationError(f"capture must be 'automatic' or 'manual', got {capture!r}")
        if off_session and not (payment_method and customer_id):
            raise ValidationError(
                "off_session=True charges a saved payment method: pass payment_method (its "
                "id) and the customer_id it is saved for"
            )
        method_digest = None if payment_method is None else idem.digest(payment_method)
        # only sent when set: an adapter written before saved methods takes no off_session
        session: dict[str, bool] = {"off_session": True} if off_session else {}

        def call(key: str) -> Flow[Payment]:
            return provider(
                PaymentProvider.create_payment,
                order_id=order_id, amount=amount, payment_method=payment_method,
                idempotency_key=key, customer_id=customer_id, description=description,
                metadata=metadata, capture=capture, return_url=return_url, **session,
            )  # fmt: skip

        def replay(op: OperationRecord) -> Flow[Payment | None]:
            record = (yield from store(Store.get_payment, op.result_id)) if op.result_id else None
            return record.payment if record is not None else None

        def attempt_over(op: OperationRecord) -> Flow[bool]:
            record = (yield from store(Store.get_payment, op.result_id)) if op.result_id else None
            return record is not None and record.status in RETRYABLE_ATTEMPT

        if _log.isEnabledFor(logging.INFO):  # else spare building the arguments
            _log.info("create_payment order=%s amount=%s capture=%s", order_id, amount, capture,
                      extra=fields(provider=self._provider_name, operation="create_payment",
                                   order_id=order_id))  # fmt: skip
        asked = self.clock()
        try:
            payment, finish = yield from self._idempotent_answer(
                scope=f"create_payment:{order_id}",
                operation="create_payment",
                fingerprint=idem.fingerprint(
                    amount=amount.amount, currency=amount.currency, capture=capture, **session
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
            _log.info("create_payment order=%s declined: %s", order_id, exc.decline_code,
                      extra=fields(provider=self._provider_name, operation="create_payment",
                                   order_id=order_id, payment_id=exc.payment_id,
                                   outcome="declined", decline_code=exc.decline_code))  # fmt: skip
            raise
        noted: dict[str, Fact] = {}
        # the attempt's end, the payment, its transition and facts: one durable commit
        # a new attempt's answer is most likely a payment the store has not seen: written
        # without reading first (a conflict reads and plans again)
        record = yield from self._sync(payment, noted, source="api", asked=asked,
                                       finish=finish, unseen=finish is not None)  # fmt: skip
        if _log.isEnabledFor(logging.INFO):
            _log.info("create_payment order=%s -> payment %s %s", order_id, payment.id,
                      record.status.value,
                      extra=fields(provider=self._provider_name, operation="create_payment",
                                   order_id=order_id, payment_id=payment.id,
                                   outcome=record.status.value))  # fmt: skip
        yield from self._pump(noted)
        return self._view(record, payment)

    def _get_payment(self, payment_id: str) -> Flow[Payment]:
        self._check_id(payment_id, "payment_id")
        asked = self.clock()
        fresh = yield from self._fetch(payment_id)
        noted: dict[str, Fact] = {}
        record = yield from self._sync(fresh, noted, source="api", asked=asked)
        yield from self._pump(noted)
        return self._view(record, fresh)

    def _payment_for_order(self, order_id: str) -> Flow[Payment | None]:
        records = yield from store(Store.payments_for_order, order_id)
        if not records:
            return None
        # The latest attempt is the one the provider created last, not the one the store
        # heard of last: an earlier, declined attempt's webhook can arrive after the paid
        # attempt's return. An attempt without a provider time counts from when it was
        # recorded; a stable sort keeps the store's order among equals.
        return sorted(records, key=_attempt_time)[-1].payment

    def _history(self, payment_id: str) -> Flow[list[TransitionRecord]]:
        return (yield from store(Store.history, payment_id))

    def _capture(self, payment_id: str, amount: Money | None) -> Flow[Payment]:
        noted: dict[str, Fact] = {}
        record = yield from self._known(payment_id, noted)
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
        op = yield from store(Store.get_operation, f"capture:{payment_id}")
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

        def call(key: str) -> Flow[Payment]:
            answer = yield from provider(
                PaymentProvider.capture_payment, payment_id, amount=amount, idempotency_key=key
            )
            return self._same_payment(answer, payment_id)

        _log.info("capture payment %s amount=%s", payment_id, amount or "all",
                  extra=fields(provider=self._provider_name, operation="capture",
                               payment_id=payment_id))  # fmt: skip
        asked = self.clock()
        fresh, finish = yield from self._idempotent_answer(
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
        synced = yield from self._sync(fresh, noted, source="api", asked=asked, finish=finish)
        yield from self._pump(noted)
        return self._view(synced, fresh)

    def _cancel(self, payment_id: str) -> Flow[Payment]:
        noted: dict[str, Fact] = {}
        record = yield from self._known(payment_id, noted)
        if record.status is S.CANCELED:
            return record.payment  # already canceled: nothing to send
        if not isinstance(TABLE[record.status].get(Trigger.CANCELED), PaymentStatus):
            raise ValidationError(
                f"payment {payment_id} is {record.status.value} and cannot be canceled"
                + ("; refund it instead" if record.status in SETTLED else "")
            )

        def call(key: str) -> Flow[Payment]:
            answer = yield from provider(
                PaymentProvider.cancel_payment, payment_id, idempotency_key=key
            )
            return self._same_payment(answer, payment_id)

        _log.info("cancel payment %s", payment_id,
                  extra=fields(provider=self._provider_name, operation="cancel",
                               payment_id=payment_id))  # fmt: skip
        asked = self.clock()
        fresh, finish = yield from self._idempotent_answer(
            scope=f"cancel:{payment_id}",
            operation="cancel",
            fingerprint=idem.fingerprint(),
            key_for=lambda n: idem.provider_key(payment_id, "cancel", n),
            call=call,
            replay=lambda op: self._stored_payment(payment_id),
            result_id=lambda p: p.id,
            order_id=record.order_id,
        )
        synced = yield from self._sync(fresh, noted, source="api", asked=asked, finish=finish)
        yield from self._pump(noted)
        return self._view(synced, fresh)

    def _refund(
        self,
        payment_id: str,
        amount: Money | None,
        reason: str | None,
        *,
        idempotency_key: str | None,
    ) -> Flow[Refund]:
        noted: dict[str, Fact] = {}
        record = yield from self._known(payment_id, noted)
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
        op = yield from store(Store.get_operation, scope)
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

        def call(key: str) -> Flow[Refund]:
            # the amount is always sent: "the rest" re-read on a retry after a lost answer
            # would be 0, or another body under the same key
            answer = yield from provider(
                PaymentProvider.refund_payment,
                payment_id, amount=Money(to_refund, currency), reason=reason, idempotency_key=key,
            )  # fmt: skip
            if answer.payment_id and answer.payment_id != payment_id:
                raise ProviderError(
                    f"asked {self._provider_name} to refund payment {payment_id!r}, it "
                    f"answered with a refund of {answer.payment_id!r}; nothing was recorded",
                    provider=self._provider_name,
                    code="payment_mismatch",
                )
            return answer

        _log.info("refund payment %s amount=%s", payment_id, Money(to_refund, currency),
                  extra=fields(provider=self._provider_name, operation="refund",
                               payment_id=payment_id))  # fmt: skip
        refund, finish = yield from self._idempotent_answer(
            scope=scope,
            operation="refund",
            fingerprint=fingerprint,
            key_for=lambda n: (
                idem.provider_key("refund", idempotency_key, n)
                if idempotency_key
                else idem.provider_key(payment_id, "refund", state.refunded, to_refund, n)
            ),
            call=call,
            replay=self._replay_stored(Refund),
            result_id=lambda r: r.id,
            order_id=record.order_id,
        )
        if refund.status is RefundStatus.SUCCEEDED:
            yield from self._sync_refund(payment_id, refund, noted, finish)
        elif finish is not None:
            yield from self._finish_alone(finish)
        yield from self._pump(noted)
        _log.info("refund %s of payment %s: %s %s", refund.id, payment_id, refund.amount,
                  refund.status.value,
                  extra=fields(provider=self._provider_name, operation="refund",
                               payment_id=payment_id, outcome=refund.status.value))  # fmt: skip
        return refund

    def _sync_refund(
        self,
        payment_id: str,
        refund: Refund,
        noted: dict[str, Fact],
        finish: OperationFinish | None = None,
    ) -> Flow[None]:
        """The refund's transition, in one transaction with ``finish`` (the end of the
        refund's attempt) when given."""
        record = yield from store(Store.get_payment, payment_id)
        if record is None:  # pragma: no cover - _known() recorded it
            if finish is not None:
                yield from self._finish_alone(finish)
            return
        event = PaymentEvent(Trigger.REFUNDED, amount=refund.amount.amount, ref=refund.id)
        yield from self._sync(record.payment, noted, source="api", event=event, finish=finish)

    def _handle_return(self, params: Mapping[str, str]) -> Flow[Payment]:
        if not isinstance(params, Mapping):
            raise ValidationError(f"params must be a mapping, got {type(params).__name__}")
        clean = {str(k): str(v) for k, v in params.items()}
        key = idem.provider_key("return", idem.digest(sorted(clean.items())))
        asked = self.clock()
        fresh = yield from self._call(
            "complete_return",
            lambda: provider(PaymentProvider.complete_return, clean, idempotency_key=key),
        )
        noted: dict[str, Fact] = {}
        record = yield from self._sync(fresh, noted, source="return", asked=asked)
        _log.info("return for payment %s: %s", fresh.id, record.status.value,
                  extra=fields(provider=self._provider_name, operation="handle_return",
                               payment_id=fresh.id, outcome=record.status.value))  # fmt: skip
        yield from self._pump(noted)
        return self._view(record, fresh)

    def _create_checkout(
        self,
        *,
        order_id: str,
        line_items: Sequence[LineItem],
        success_url: str,
        cancel_url: str,
        customer_id: str | None,
        metadata: Mapping[str, str] | None,
        mode: str,
        price_id: str | None,
    ) -> Flow[CheckoutSession]:
        self._check_id(order_id, "order_id")
        self._check_id(success_url, "success_url")
        self._check_id(cancel_url, "cancel_url")
        if mode not in ("payment", "subscription"):
            raise ValidationError(f"mode must be 'payment' or 'subscription', got {mode!r}")
        total = self._check_lines(line_items) if mode == "payment" or line_items else None
        checkout_mode: Any = mode

        def call(key: str) -> Flow[CheckoutSession]:
            return provider(
                PaymentProvider.create_checkout_session,
                order_id=order_id, line_items=line_items, success_url=success_url,
                cancel_url=cancel_url, idempotency_key=key, mode=checkout_mode,
                customer_id=customer_id, price_id=price_id, metadata=metadata,
            )  # fmt: skip

        _log.info("create_checkout order=%s total=%s", order_id, total,
                  extra=fields(provider=self._provider_name, operation="create_checkout",
                               order_id=order_id))  # fmt: skip
        session = yield from self._idempotent(
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
            replay=self._replay_stored(CheckoutSession),
            result_id=lambda s: s.id,
            order_id=order_id,
        )
        _log.info("create_checkout order=%s -> session %s", order_id, session.id,
                  extra=fields(provider=self._provider_name, operation="create_checkout",
                               order_id=order_id, outcome="ok"))  # fmt: skip
        return session
