"""The sandbox's Stripe face: Stripe's ``/v1`` API, events and hosted-page actions.

Ids: the engine's ``pay_<hex>`` payment is the PaymentIntent ``pi_<hex>`` (same hex); the
other engine prefixes (``ch_``, ``re_``, ``cus_``, ``cs_``, ``sub_``, ``in_``, ``dp_``) are
Stripe's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from paygate.errors import InvalidRequest
from paygate.providers._stripe_webhook import SIGNATURE_HEADER
from paygate.providers._stripe_webhook import sign as stripe_sign
from paygate.sandbox.face import ProviderFace

__all__ = [
    "TEST_CARDS",
    "TEST_PAYMENT_METHODS",
    "StripeFace",
    "engine_token",
    "refund_fails",
    "to_engine_id",
    "to_stripe_id",
]

JSON = dict[str, Any]

#: Stripe's test card numbers (as typed on the hosted page) → the engine's scripted token
TEST_CARDS: Final[Mapping[str, str]] = {
    "4242424242424242": "tok_visa",
    "4000056655665556": "tok_visa",  # visa debit
    "5555555555554444": "tok_mastercard",
    "378282246310005": "tok_amex",
    "4000000000000002": "tok_declined",
    "4000000000009995": "tok_insufficient_funds",
    "4000000000000069": "tok_expired_card",
    "4000000000000127": "tok_incorrect_cvc",
    "4000000000000119": "tok_processing_error",
    "4000002500003155": "tok_3ds",
    "4000002760003184": "tok_3ds",
    "4000000000003220": "tok_3ds",
    "4000000000000259": "tok_dispute",
    "4000000000005126": "tok_visa",  # its refunds fail after succeeding
    # no Stripe card stays processing; the sandbox's own number for a delayed settlement
    "4000000000000077": "tok_processing",
}

#: the cards and payment methods whose refunds fail (after first succeeding), as in Stripe
REFUND_FAILS: Final = frozenset({"4000000000005126", "pm_card_refundFail", "tok_refundFail"})

#: Stripe's test PaymentMethod ids and tokens → the engine's scripted token
TEST_PAYMENT_METHODS: Final[Mapping[str, str]] = {
    "pm_card_visa": "tok_visa",
    "pm_card_visa_debit": "tok_visa",
    "pm_card_mastercard": "tok_mastercard",
    "pm_card_amex": "tok_amex",
    "pm_card_chargeDeclined": "tok_declined",
    "pm_card_chargeDeclinedInsufficientFunds": "tok_insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "tok_expired_card",
    "pm_card_chargeDeclinedIncorrectCvc": "tok_incorrect_cvc",
    "pm_card_chargeDeclinedProcessingError": "tok_processing_error",
    "pm_card_authenticationRequired": "tok_3ds",
    "pm_card_threeDSecure2Required": "tok_3ds",
    "pm_card_createDispute": "tok_dispute",
    "tok_visa": "tok_visa",
    "tok_visa_debit": "tok_visa",
    "tok_mastercard": "tok_mastercard",
    "tok_amex": "tok_amex",
    "tok_chargeDeclined": "tok_declined",
    "tok_chargeDeclinedInsufficientFunds": "tok_insufficient_funds",
    "tok_chargeDeclinedExpiredCard": "tok_expired_card",
    "tok_chargeDeclinedIncorrectCvc": "tok_incorrect_cvc",
    "tok_chargeDeclinedProcessingError": "tok_processing_error",
    "tok_threeDSecure2Required": "tok_3ds",
    "tok_createDispute": "tok_dispute",
    "pm_card_refundFail": "tok_visa",
    "tok_refundFail": "tok_visa",
    "pm_card_processing": "tok_processing",  # sandbox-only: settles from the dashboard
}


def engine_token(card: str) -> str:
    """A card number (spaces and dashes ignored), test PaymentMethod id or token → the
    engine's token; ``InvalidRequest`` (code ``incorrect_number``) for anything else."""
    compact = "".join(ch for ch in card if ch not in " -")
    token = TEST_CARDS.get(compact) or TEST_PAYMENT_METHODS.get(card.strip())
    if token is None:
        raise InvalidRequest(
            "use one of Stripe's test cards (4242 4242 4242 4242 ...) or test payment "
            "methods (pm_card_visa ...)",
            provider="stripe",
            code="incorrect_number",
            http_status=402,
        )
    return token


def refund_fails(card: str) -> bool:
    """Whether refunds of a payment made with ``card`` fail (Stripe's refund-failure card)."""
    return "".join(ch for ch in card if ch not in " -") in REFUND_FAILS


def to_engine_id(object_id: str) -> str:
    return "pay_" + object_id[3:] if object_id.startswith("pi_") else object_id


def to_stripe_id(object_id: str) -> str:
    return "pi_" + object_id[4:] if object_id.startswith("pay_") else object_id


class StripeFace(ProviderFace):
    name: ClassVar[str] = "stripe"
    prefix: ClassVar[str] = ""

    # -- configuration --------------------------------------------------------------------------

    @property
    def webhook_secret(self) -> str:
        return self.state.secret(self.name, "webhook_secret", "whsec_")

    def secrets(self) -> Mapping[str, str]:
        return {
            "api_key": "sk_test_sandbox (any sk_test_... key)",
            "webhook_secret": self.webhook_secret,
        }

    def sign(self, body: bytes, url: str, timestamp: int) -> Mapping[str, str]:
        return {SIGNATURE_HEADER: stripe_sign(body, self.webhook_secret, timestamp)}

    def register(self) -> None:
        from paygate.sandbox import _stripe_api

        _stripe_api.register(self)

    def on_engine_event(self, event: JSON) -> None:
        from paygate.sandbox import _stripe_api

        _stripe_api.translate_event(self, event)

    #: the ids of the events emitted while a trigger runs (None otherwise)
    collected: list[str] | None = None

    def trigger_types(self) -> list[str]:
        from paygate.sandbox import _stripe_triggers

        return sorted(_stripe_triggers.TRIGGERS)

    def trigger(self, event_type: str) -> list[str]:
        from paygate.sandbox import _stripe_triggers

        if event_type not in _stripe_triggers.TRIGGERS:
            return super().trigger(event_type)
        return _stripe_triggers.trigger(self, event_type)

    # -- hosted pages: what they show and what their buttons do ----------------------------------

    def checkout_url(self, session_id: str) -> str:
        return f"{self.sandbox.base_url}/checkout/{session_id}"

    def challenge_url(self, intent_id: str) -> str:
        return f"{self.sandbox.base_url}/3ds/{to_stripe_id(intent_id)}"

    def checkout_view(self, session_id: str) -> JSON:
        """The Checkout Session as Stripe's API shows it (``line_items`` expanded)."""
        from paygate.sandbox import _stripe_api

        return _stripe_api.checkout_view(self, session_id)

    def pay_checkout(self, session_id: str, card: str) -> str:
        """The customer submits ``card`` (a test card number or ``pm_card_*``/``tok_*``) on
        the Checkout page; returns where the browser goes next (the ``success_url``, or the
        3-D Secure challenge). Raises ``CardDeclined`` (``decline_code`` says why) or
        ``InvalidRequest`` (an unknown card, a session no longer open)."""
        from paygate.sandbox import _stripe_api

        return _stripe_api.pay_checkout(self, session_id, card)

    def cancel_checkout(self, session_id: str) -> str:
        """The customer leaves the Checkout page: the ``cancel_url``."""
        from paygate.sandbox import _stripe_api

        return _stripe_api.checkout_view(self, session_id)["cancel_url"]  # type: ignore[no-any-return]

    def intent_view(self, intent_id: str) -> JSON:
        """The PaymentIntent as Stripe's API shows it (for the 3-D Secure page)."""
        from paygate.sandbox import _stripe_api

        return _stripe_api.intent_view(self, intent_id)

    def complete_challenge(self, intent_id: str, *, success: bool) -> str:
        """The customer passes (or fails) 3-D Secure; returns where the browser goes next
        (the intent's ``return_url`` with ``payment_intent=...``, or the checkout's
        ``success_url``/page)."""
        from paygate.sandbox import _stripe_api

        return _stripe_api.complete_challenge(self, intent_id, success=success)
