"""Carry out a report's proposed actions (``apply=True``).

Only refunds move money, and they go through the Gateway (so its retries, validation and
store log apply) with an idempotency key derived from the reconciliation run and the order:
re-running the same run sends the same keys, and the provider answers a repeated key with
the first refund instead of a second one. Before refunding, the payment is looked up and a
payment already refunded is left alone, so even a different run id does not refund twice
once the first refund is known. Everything else (mark paid, cancel, record) belongs to the
shop's order system: it is handed to ``on_action(line)``, or listed as skipped.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from paygate._idempotency import provider_key
from paygate.errors import PaygateError
from paygate.money import Money
from paygate.reconcile._model import (
    Action,
    AppliedAction,
    Case,
    ReconciliationLine,
    ReconciliationReport,
)

__all__ = ["apply_actions", "refund_key"]


def refund_key(run_id: str, order_id: str | None, payment_id: str) -> str:
    """The idempotency key of the refund of ``payment_id`` for ``order_id`` in a run."""
    return provider_key("reconcile", run_id, order_id or "-", payment_id, "refund")


def _accepts_key(method: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return "idempotency_key" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def _refund_one(
    gateway: Any, line: ReconciliationLine, payment_id: str, run_id: str
) -> AppliedAction:
    key = refund_key(run_id, line.order_id, payment_id)
    try:
        payment = gateway.get_payment(payment_id)
    except PaygateError as exc:
        return AppliedAction(line.order_id, Action.REFUND, "failed", f"{payment_id}: {exc}", key)
    captured: Money = payment.amount_captured or payment.amount
    refunded: Money = payment.amount_refunded or Money(0, captured.currency)
    remaining = captured - refunded
    if remaining.amount <= 0:
        return AppliedAction(
            line.order_id, Action.REFUND, "already_done", f"{payment_id} is refunded", key
        )
    kwargs: dict[str, Any] = {"amount": remaining, "reason": f"reconciliation: {line.case}"}
    if _accepts_key(gateway.refund):
        kwargs["idempotency_key"] = key
    try:
        refund = gateway.refund(payment_id, **kwargs)
    except PaygateError as exc:
        return AppliedAction(line.order_id, Action.REFUND, "failed", f"{payment_id}: {exc}", key)
    return AppliedAction(
        line.order_id,
        Action.REFUND,
        "done",
        f"refund {getattr(refund, 'id', '?')} of {remaining} on {payment_id}",
        key,
    )


def apply_actions(
    report: ReconciliationReport,
    gateway: Any,
    *,
    run_id: str,
    on_action: Callable[[ReconciliationLine], Any] | None = None,
) -> list[AppliedAction]:
    """Carry out every line's action; the outcomes are appended to ``report.applied``."""
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
                applied.append(_refund_one(gateway, line, payment_id, run_id))
            continue
        if on_action is None:
            applied.append(
                AppliedAction(
                    line.order_id, line.action, "skipped", "no on_action handler for the books"
                )
            )
            continue
        try:
            on_action(line)
        except Exception as exc:  # the handler is the application's: report, go on
            applied.append(
                AppliedAction(line.order_id, line.action, "failed", f"{type(exc).__name__}: {exc}")
            )
        else:
            applied.append(AppliedAction(line.order_id, line.action, "done"))
    report.applied.extend(applied)
    return applied
