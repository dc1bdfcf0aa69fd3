"""``paygate sandbox trigger <type>``: make a Stripe event happen, as ``stripe trigger`` does.

Each trigger drives the API's own endpoint functions (the objects are real: they show in
the dashboard and in later API calls) and returns the ids of every event it caused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from paygate.errors import CardDeclined
from paygate.sandbox import _stripe_routes as api

if TYPE_CHECKING:
    from paygate.sandbox.stripe import StripeFace

JSON = dict[str, Any]


def _intent(face: StripeFace, method: str, **extra: Any) -> JSON:
    params = {
        "amount": "2000",
        "currency": "usd",
        "payment_method": method,
        "confirm": "true",
        "metadata": {"order_id": "trigger"},
        **extra,
    }
    return api.create_intent(face, params)


def _paid(face: StripeFace) -> None:
    _intent(face, "pm_card_visa")


def _declined(face: StripeFace) -> None:
    # the failed payment and its events stay, as at Stripe
    with contextlib.suppress(CardDeclined):
        _intent(face, "pm_card_chargeDeclined")


def _requires_action(face: StripeFace) -> None:
    _intent(face, "pm_card_authenticationRequired", return_url="https://example.com/return")


def _authorized(face: StripeFace) -> JSON:
    return _intent(face, "pm_card_visa", capture_method="manual")


def _canceled(face: StripeFace) -> None:
    api.cancel_intent(face, {}, _authorized(face)["id"])


def _refunded(face: StripeFace) -> None:
    api.create_refund(face, {"payment_intent": _intent(face, "pm_card_visa")["id"]})


def _refund_failed(face: StripeFace) -> None:
    api.create_refund(face, {"payment_intent": _intent(face, "pm_card_refundFail")["id"]})


def _disputed(face: StripeFace) -> None:
    _intent(face, "pm_card_createDispute")


def _dispute_closed(face: StripeFace) -> None:
    intent = _intent(face, "pm_card_createDispute")
    dispute = api.list_disputes(face, {"payment_intent": intent["id"]})["data"][0]
    api.close_dispute(face, {}, dispute["id"])


def _session(face: StripeFace) -> JSON:
    return api.create_session(
        face,
        {
            "mode": "payment",
            "success_url": "https://example.com/success",
            "cancel_url": "https://example.com/cancel",
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": "2000",
                        "product_data": {"name": "T-shirt"},
                    },
                    "quantity": "1",
                }
            ],
        },
    )


def _checkout_completed(face: StripeFace) -> None:
    face.pay_checkout(_session(face)["id"], "pm_card_visa")


def _checkout_expired(face: StripeFace) -> None:
    api.expire_session(face, {}, _session(face)["id"])


def _subscription(face: StripeFace, *, unit_amount: str = "1500") -> JSON:
    customer = api.create_customer(face, {"email": "trigger@example.com"})
    price = api.create_price(
        face, {"currency": "usd", "unit_amount": unit_amount, "recurring": {"interval": "month"}}
    )
    return api.create_subscription(
        face, {"customer": customer["id"], "items": [{"price": price["id"]}]}
    )


def _subscription_created(face: StripeFace) -> None:
    _subscription(face)


def _subscription_deleted(face: StripeFace) -> None:
    api.cancel_subscription(face, {}, _subscription(face)["id"])


def _subscription_updated(face: StripeFace) -> None:
    api.update_subscription(face, {"cancel_at_period_end": "true"}, _subscription(face)["id"])


def _invoice_payment_failed(face: StripeFace) -> None:
    customer = api.create_customer(face, {"email": "trigger@example.com"})
    invoice = api.create_invoice(face, {"customer": customer["id"], "currency": "usd"})
    api.create_invoice_item(
        face, {"customer": customer["id"], "invoice": invoice["id"], "amount": "2000"}
    )
    with contextlib.suppress(CardDeclined):
        api.pay_invoice(face, {"payment_method": "pm_card_chargeDeclined"}, invoice["id"])


TRIGGERS: dict[str, Callable[[StripeFace], Any]] = {
    "payment_intent.created": _paid,
    "payment_intent.succeeded": _paid,
    "charge.succeeded": _paid,
    "payment_intent.payment_failed": _declined,
    "charge.failed": _declined,
    "payment_intent.requires_action": _requires_action,
    "payment_intent.amount_capturable_updated": _authorized,
    "payment_intent.canceled": _canceled,
    "charge.refunded": _refunded,
    "refund.created": _refunded,
    "refund.failed": _refund_failed,
    "charge.dispute.created": _disputed,
    "charge.dispute.closed": _dispute_closed,
    "checkout.session.completed": _checkout_completed,
    "checkout.session.expired": _checkout_expired,
    "customer.subscription.created": _subscription_created,
    "customer.subscription.updated": _subscription_updated,
    "customer.subscription.deleted": _subscription_deleted,
    "invoice.created": _subscription_created,
    "invoice.finalized": _subscription_created,
    "invoice.paid": _subscription_created,
    "invoice.payment_succeeded": _subscription_created,
    "invoice.payment_failed": _invoice_payment_failed,
}


def trigger(face: StripeFace, event_type: str) -> list[str]:
    """Run ``event_type``'s scenario; the ids of the events it caused, oldest first."""
    with face.state.lock:
        face.collected = []
        try:
            with face.state.transaction("stripe"):
                TRIGGERS[event_type](face)
            return face.collected
        finally:
            face.collected = None
