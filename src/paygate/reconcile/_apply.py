"""Carry out a report's proposed actions (``apply=True``).

Refunds go through the Gateway with an idempotency key of the run and the order; every
other action is handed to ``on_action(line)``. Each action is recorded in the gateway's
store under ``reconcile:<run>:<order>:<action>`` (``...:refund:<payment>`` for refunds),
pending before it and finished after it, so a re-run of the same run skips what is done.
docs/reconciliation.md ("Acting on it") has the rules and why.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from paygate._idempotency import fingerprint, provider_key
from paygate.errors import PaygateError
from paygate.money import Money
from paygate.reconcile._model import (
    Action,
    ActionRecord,
    AppliedAction,
    Case,
    ReconciliationLine,
    ReconciliationReport,
)

__all__ = ["action_key", "applied_actions", "apply_actions", "refund_key"]


# ``paygate.stores`` is imported where an action is recorded, not with ``paygate.reconcile``:
# a dry run never needs it, and importing it costs as much CPU as the rest of the package
if TYPE_CHECKING:
    from paygate.stores import OperationRecord, Store


def refund_key(run_id: str, order_id: str | None, payment_id: str) -> str:
    """The idempotency key of the refund of ``payment_id`` for ``order_id`` in a run."""
    return provider_key("reconcile", run_id, order_id or "-", payment_id, "refund")


def action_key(run_id: str, order_id: str | None, action: Action) -> str:
    """The key recorded for a non-money action (``mark_paid``, ...) of ``order_id`` in a run."""
    return provider_key("reconcile", run_id, order_id or "-", str(action))


# -- the store's record of a run ---------------------------------------------------------


def _part(value: str | None) -> str:
    # ":" (and "%") are escaped so that neither a run id nor an order id can run into the
    # next part: "a" + "b:c" and "a:b" + "c" are different scopes
    return "" if value is None else quote(value, safe="")


def _run_prefix(run_id: str) -> str:
    return f"reconcile:{_part(run_id)}:"


def _scope(run_id: str, order_id: str | None, action: Action, payment_id: str | None) -> str:
    scope = f"{_run_prefix(run_id)}{_part(order_id)}:{action}"
    return scope if payment_id is None else f"{scope}:{_part(payment_id)}"


class _Log:
    """A run's records in the gateway's store; with no store, it records nothing."""

    def __init__(self, gateway: Any, run_id: str) -> None:
        self.store: Store | None = getattr(gateway, "store", None)
        clock = getattr(gateway, "clock", None)
        self.clock: Callable[[], float] = clock if callable(clock) else time.time
        self.run_id = run_id

    def done_before(
        self, line: ReconciliationLine, action: Action, payment_id: str | None = None
    ) -> AppliedAction | None:
        """The line's ``already_done`` outcome if this run finished the action, else None."""
        if self.store is None:
            return None
        op = self.store.get_operation(_scope(self.run_id, line.order_id, action, payment_id))
        return None if op is None else _already_done(op, line, action)

    def once(
        self,
        line: ReconciliationLine,
        action: Action,
        key: str,
        act: Callable[[], tuple[AppliedAction, str | None]],
        payment_id: str | None = None,
    ) -> AppliedAction:
        """``act()`` unless this run already did it; its outcome recorded either way.

        ``act`` answers the outcome and, for a failure, an error code. An exception out of
        ``act`` leaves the record pending (like a crash): the next run tries again.
        """
        if self.store is None:
            return act()[0]
        from paygate.stores import OperationRecord, OperationStatus

        scope = _scope(self.run_id, line.order_id, action, payment_id)
        about = {"run_id": self.run_id, "order_id": line.order_id, "action": str(action),
                 "payment_id": payment_id}  # fmt: skip
        now = self.clock()
        fresh = OperationRecord(
            key=scope, operation=f"reconcile_{action}", provider_key=key,
            fingerprint=fingerprint(**about), order_id=line.order_id,
            result={**about, "outcome": "pending", "detail": ""}, created_at=now, updated_at=now,
        )  # fmt: skip
        op = self.store.begin_operation(fresh)
        if op != fresh:  # recorded before, by an earlier run with this id
            done = _already_done(op, line, action)
            if done is not None:
                return done
            # it failed, or its run died before it finished: a new attempt
            following = dataclasses.replace(fresh, attempt=op.attempt + 1)
            if not self.store.replace_operation(following, expected_attempt=op.attempt):
                return AppliedAction(
                    line.order_id, action, "skipped", "another process started it just now", key
                )
            op = following
        applied, error_code = act()
        ok = applied.outcome in ("done", "already_done")
        self.store.finish_operation(
            scope, attempt=op.attempt,
            status=OperationStatus.SUCCEEDED if ok else OperationStatus.FAILED,
            result_id=None, result={**about, "outcome": applied.outcome, "detail": applied.detail},
            error_code=None if ok else (error_code or "failed"), now=self.clock(),
        )  # fmt: skip
        return applied


def _already_done(
    op: OperationRecord, line: ReconciliationLine, action: Action
) -> AppliedAction | None:
    from paygate.stores import OperationStatus

    if op.status is not OperationStatus.SUCCEEDED:
        return None
    detail = str((op.result or {}).get("detail") or "")
    return AppliedAction(
        line.order_id, action, "already_done", detail or "done earlier in this run", op.provider_key
    )


def applied_actions(store: Store, run_id: str) -> list[ActionRecord]:
    """What ``apply=True`` recorded for run ``run_id`` in ``store``, oldest first.

    Lines skipped (no ``on_action`` handler, no payment id) are not recorded: nothing
    was done for them.
    """
    from paygate.stores import OperationStatus

    records: list[ActionRecord] = []
    for op in store.list_operations(_run_prefix(run_id)):
        result: Mapping[str, Any] = op.result or {}
        if not op.operation.startswith("reconcile_") or result.get("run_id") != run_id:
            continue
        outcome: Literal["done", "already_done", "failed", "pending"]
        if op.status is OperationStatus.PENDING:
            outcome = "pending"
        elif op.status is OperationStatus.FAILED:
            outcome = "failed"
        else:
            outcome = "already_done" if result.get("outcome") == "already_done" else "done"
        records.append(
            ActionRecord(
                run_id=run_id,
                order_id=op.order_id,
                action=Action(op.operation.removeprefix("reconcile_")),
                outcome=outcome,
                detail=str(result.get("detail") or ""),
                idempotency_key=op.provider_key,
                payment_id=result.get("payment_id"),
                attempt=op.attempt,
                started_at=op.created_at,
                updated_at=op.updated_at,
            )
        )
    return records


# -- carrying actions out ----------------------------------------------------------------


def _accepts_key(method: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return "idempotency_key" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _refund_one(
    gateway: Any, line: ReconciliationLine, payment_id: str, key: str
) -> tuple[AppliedAction, str | None]:
    def failed(exc: PaygateError) -> tuple[AppliedAction, str | None]:
        detail = f"{payment_id}: {exc}"
        code = getattr(exc, "code", None) or type(exc).__name__
        return AppliedAction(line.order_id, Action.REFUND, "failed", detail, key), code

    # what the gateway learns here (the payment's sync, the refund) is labeled as
    # reconciliation's, in its transition log and in the facts the app is told
    channel = getattr(gateway, "channel", None)
    with channel("reconcile") if callable(channel) else contextlib.nullcontext():
        try:
            payment = gateway.get_payment(payment_id)
        except PaygateError as exc:
            return failed(exc)
        captured: Money = payment.amount_captured or payment.amount
        refunded: Money = payment.amount_refunded or Money(0, captured.currency)
        remaining = captured - refunded
        if remaining.amount <= 0:
            done = f"{payment_id} is refunded"
            return AppliedAction(line.order_id, Action.REFUND, "already_done", done, key), None
        kwargs: dict[str, Any] = {"amount": remaining, "reason": f"reconciliation: {line.case}"}
        if _accepts_key(gateway.refund):
            kwargs["idempotency_key"] = key
        try:
            refund = gateway.refund(payment_id, **kwargs)
        except PaygateError as exc:
            return failed(exc)
        detail = f"refund {getattr(refund, 'id', '?')} of {remaining} on {payment_id}"
        return AppliedAction(line.order_id, Action.REFUND, "done", detail, key), None


def _hand_over(
    line: ReconciliationLine, key: str, on_action: Callable[[ReconciliationLine], Any]
) -> tuple[AppliedAction, str | None]:
    try:
        on_action(line)
    except Exception as exc:  # the handler is the application's: report, go on
        detail = f"{type(exc).__name__}: {exc}"
        return AppliedAction(line.order_id, line.action, "failed", detail, key), type(exc).__name__
    return AppliedAction(line.order_id, line.action, "done", "", key), None


def apply_actions(
    report: ReconciliationReport,
    gateway: Any,
    *,
    run_id: str,
    on_action: Callable[[ReconciliationLine], Any] | None = None,
) -> list[AppliedAction]:
    """Carry out every line's action; the outcomes are appended to ``report.applied``.

    Each action is recorded in ``gateway.store`` (see the module's docstring): an action
    this run already finished is not carried out again (``already_done``). A *new* run id
    is a new decision: its non-money actions go to ``on_action`` again, while refunds are
    still never sent for a payment already refunded. ``on_action`` must be idempotent
    itself: an action whose run died between calling it and recording the outcome is
    handed over again on the next run.
    """
    log = _Log(gateway, run_id)
    applied: list[AppliedAction] = []
    for line in report.lines:
        if line.action in (Action.NONE, Action.INVESTIGATE):
            continue
        if line.action is Action.REFUND and line.case in (
            Case.UNPAID_ORDER_CHARGED,
            Case.DOUBLE_CHARGE,
        ):
            if not line.payment_ids:
                applied.append(
                    AppliedAction(line.order_id, line.action, "skipped", "no payment id known")
                )
            for payment_id in line.payment_ids:
                key = refund_key(run_id, line.order_id, payment_id)
                applied.append(
                    log.once(
                        line,
                        Action.REFUND,
                        key,
                        functools.partial(_refund_one, gateway, line, payment_id, key),
                        payment_id=payment_id,
                    )
                )
            continue
        if on_action is None:
            applied.append(
                log.done_before(line, line.action)
                or AppliedAction(
                    line.order_id, line.action, "skipped", "no on_action handler for the books"
                )
            )
            continue
        key = action_key(run_id, line.order_id, line.action)
        applied.append(
            log.once(line, line.action, key, functools.partial(_hand_over, line, key, on_action))
        )
    report.applied.extend(applied)
    return applied
