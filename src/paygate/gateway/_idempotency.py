"""The idempotency engine: order first, one record per operation and attempt.

Every creating call derives its provider idempotency key from the order id (or another
scope), the operation, the attempt and the amount, and writes its record to the store
*before* calling the provider. See ``IdempotencyFlows._idempotent``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TypeVar

from paygate._observe import fields
from paygate.errors import IdempotencyConflict, ProviderError, ValidationError
from paygate.gateway._base import CAS_ATTEMPTS
from paygate.gateway._sansio import Flow, store
from paygate.gateway._state_sync import StateSync
from paygate.stores import OperationRecord, OperationStatus, Store, StoreConflict, _codec
from paygate.stores._records import OperationFinish

_log = logging.getLogger("paygate")
T = TypeVar("T")


class IdempotencyFlows(StateSync):
    """``_idempotent``: run a creating operation at most once per scope and attempt."""

    def _idempotent(
        self,
        *,
        scope: str,
        operation: str,
        fingerprint: str,
        key_for: Callable[[int], str],
        call: Callable[[str], Flow[T]],
        replay: Callable[[OperationRecord], Flow[T | None]],
        result_id: Callable[[T], str],
        order_id: str | None = None,
        method_digest: str | None = None,
        attempt_over: Callable[[OperationRecord], Flow[bool]] | None = None,
    ) -> Flow[T]:
        """`_idempotent_answer`, its answer's end of the attempt written at once (for
        the operations whose answer moves no payment)."""
        result, finish = yield from self._idempotent_answer(
            scope=scope, operation=operation, fingerprint=fingerprint, key_for=key_for,
            call=call, replay=replay, result_id=result_id, order_id=order_id,
            method_digest=method_digest, attempt_over=attempt_over,
        )  # fmt: skip
        if finish is not None:
            yield from self._finish_alone(finish)
        return result

    def _idempotent_answer(
        self,
        *,
        scope: str,
        operation: str,
        fingerprint: str,
        key_for: Callable[[int], str],
        call: Callable[[str], Flow[T]],
        replay: Callable[[OperationRecord], Flow[T | None]],
        result_id: Callable[[T], str],
        order_id: str | None = None,
        method_digest: str | None = None,
        attempt_over: Callable[[OperationRecord], Flow[bool]] | None = None,
    ) -> Flow[tuple[T, OperationFinish | None]]:
        """Run a creating operation at most once per scope and attempt; its result, and
        the attempt's end to record (``None`` for a result replayed from the store). The
        caller writes that end in the transaction of what the answer changes
        (``_sync(..., finish=...)``: one durable commit per call), or alone.

        The record is written before the provider is called. A refused attempt (a
        decline) or one whose result ended (``attempt_over``: a failed payment, a
        canceled subscription) lets the next call start attempt n+1 with a new key; any
        other existing record must match ``fingerprint`` (else
        [`IdempotencyConflict`][paygate.errors.IdempotencyConflict]) and is replayed from
        the store, or re-sent with the *same* key while its outcome is unknown (pending).

        Interrupted anywhere (a crash, a cancelled task), the record is either absent or
        pending with its key: the next call sends that same key, and the provider answers
        it once. Only a refusal for good (not retryable) marks the attempt failed.

        The pending record (and a new attempt's) is written without a sync of its own
        (``begin_operation``, ``replace_operation``: bookkeeping commits). A power cut
        may lose it; then the store shows the scope as before this call -- no record, or
        the previous attempt ended -- and the next call starts the same attempt again:
        ``key_for`` is a pure function of the parameters and the attempt, so it sends the
        same key, and the provider answers it once.
        """
        now = self.clock()
        fresh = OperationRecord(
            key=scope, operation=operation, fingerprint=fingerprint, provider_key=key_for(1),
            order_id=order_id, method_digest=method_digest, created_at=now, updated_at=now,
        )  # fmt: skip
        for _ in range(CAS_ATTEMPTS):
            op = yield from store(Store.begin_operation, fresh)
            over = op.status is OperationStatus.FAILED
            if not over and op.status is OperationStatus.SUCCEEDED and attempt_over is not None:
                over = yield from attempt_over(op)
            if over:
                attempt = op.attempt + 1
                following = dataclasses.replace(
                    fresh, attempt=attempt, provider_key=key_for(attempt), created_at=op.created_at
                )
                replaced = yield from store(
                    Store.replace_operation, following, expected_attempt=op.attempt
                )
                if not replaced:
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
                replayed = yield from replay(op)
                if replayed is not None:
                    _log.info(
                        "%s %s: replayed %s (no provider call)", operation, scope, op.result_id,
                        extra=fields(provider=self._provider_name, operation=operation,
                                     order_id=order_id, outcome="replayed"),
                    )  # fmt: skip
                    return replayed, None
            break
        else:  # pragma: no cover - needs 20 lost races in a row
            raise StoreConflict(f"{scope}: too much contention on its idempotency record")

        key = op.provider_key
        try:
            result = yield from self._call(operation, lambda: call(key))
        except (ProviderError, ValidationError) as exc:
            if not getattr(exc, "retryable", False):
                # refused for good (a decline, a request the adapter or provider refused):
                # nothing was charged, so the next call may start a new attempt, with new
                # parameters if need be. A retryable failure stays pending: its outcome is
                # unknown, so the next call re-sends the same key and the provider answers
                # it once.
                code = getattr(exc, "decline_code", None) or getattr(exc, "code", None)
                yield from store(
                    Store.finish_operation,
                    scope, attempt=op.attempt, status=OperationStatus.FAILED,
                    result_id=getattr(exc, "payment_id", None), result=None,
                    error_code=code or type(exc).__name__, now=self.clock(),
                )  # fmt: skip
            raise
        return result, OperationFinish(
            scope, op.attempt, OperationStatus.SUCCEEDED, result_id(result),
            _codec.dump(result), None, self.clock(),
        )  # fmt: skip

    @staticmethod
    def _stored_result(op: OperationRecord, kind: type[T]) -> T | None:
        if op.result is None:
            return None
        value = _codec.load(dict(op.result))
        return value if isinstance(value, kind) else None

    def _replay_stored(self, kind: type[T]) -> Callable[[OperationRecord], Flow[T | None]]:
        """A ``replay`` for results kept in the idempotency record itself."""

        def replay(op: OperationRecord) -> Flow[T | None]:
            return self._stored_result(op, kind)
            yield  # a flow with no effect

        return replay
