"""The Stripe face's saved payment methods: customers (update, delete, list), SetupIntents,
Checkout Sessions in ``mode=setup``, PaymentMethods (list, retrieve, detach).

Everything runs on the engine's own saved-method operations (``FakeProvider.create_setup``,
``approve_setup``, ``detach_payment_method`` ...); this module only speaks Stripe's wire
format. The engine's setup ``seti_...`` is the SetupIntent (same id), its ``pm_...`` the
PaymentMethod; a Checkout Session in setup mode is a sandbox record beside the engine's
setup, and its hosted page is the ``/checkout/<id>`` page (no line items, a card field).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from paygate.errors import NotFound, PaygateError
from paygate.sandbox._stripe_api import (
    StripeAPIError,
    _bool,
    _expand,
    _metadata,
    _str,
    _success_url,
    _wire,
    emit,
    invalid,
    missing,
    render_customer,
)
from paygate.sandbox.stripe import TEST_PAYMENT_METHODS, engine_token

if TYPE_CHECKING:
    from paygate.sandbox.stripe import StripeFace

JSON = dict[str, Any]

#: cards (and test methods) whose saved form behaves differently from a one-off payment:
#: 4000002760003184 asks for authentication on every charge (off session: the
#: ``authentication_required`` decline); 4000000000000341 attaches, then every charge fails
SETUP_TOKENS: Final[Mapping[str, str]] = {
    "4000002760003184": "tok_authentication_required",
    "pm_card_authenticationRequired": "tok_authentication_required",
    "4000000000000341": "tok_later_declined",
    "pm_card_chargeCustomerFail": "tok_later_declined",
}

#: how long a Checkout Session stays open (Stripe's default: 24 hours)
SESSION_LIFETIME: Final = 24 * 3600


def setup_token(card: str) -> str:
    """The engine token a card (number, test ``pm_`` id or token) saves as."""
    compact = "".join(ch for ch in card if ch not in " -")
    return SETUP_TOKENS.get(compact) or SETUP_TOKENS.get(card.strip()) or engine_token(card)


def _api_setup_token(method: str) -> str:
    if method not in TEST_PAYMENT_METHODS and method not in SETUP_TOKENS:
        raise missing("PaymentMethod", method, "payment_method", 400)
    return setup_token(method)


# == renderers ===================================================================================


def render_payment_method(face: StripeFace, method: JSON) -> JSON:
    card = method["card"]
    return {
        "id": method["id"],
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": None,
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": card["brand"],
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": card["brand"],
            "exp_month": card["exp_month"],
            "exp_year": card["exp_year"],
            "fingerprint": card["fingerprint"],
            "funding": "credit",
            "generated_from": None,
            "last4": card["last4"],
            "networks": {"available": [card["brand"]], "preferred": None},
            "regulated_status": None,
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": method["created"],
        "customer": method.get("customer_id"),
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


_SETUP_STATUS: Final[Mapping[str, str]] = {
    "succeeded": "succeeded",
    "failed": "requires_payment_method",
    "canceled": "canceled",
}


def render_setup_intent(face: StripeFace, setup: JSON) -> JSON:
    """The engine's setup as a SetupIntent: waiting for a method (``requires_payment_method``),
    for 3-D Secure (``requires_action``), ``succeeded``; a failed attempt is back at
    ``requires_payment_method`` with ``last_setup_error``."""
    wire = _wire(face, "setup_intent", setup["id"])
    status = _SETUP_STATUS.get(setup["status"])
    if status is None:
        status = "requires_action" if setup.get("token") else "requires_payment_method"
    failure = setup.get("failure")
    last_error = None
    if failure:
        last_error = {
            "type": "card_error",
            "code": failure["code"],
            "decline_code": failure.get("decline_code"),
            "message": failure["message"],
        }
    next_action = None
    if status == "requires_action":
        next_action = {
            "type": "redirect_to_url",
            "redirect_to_url": {
                "url": f"{face.sandbox.base_url}/3ds/{setup['id']}",
                "return_url": setup.get("return_url"),
            },
        }
    engine_setup = face.engine()._objects.get(setup["id"], setup)
    return {
        "id": setup["id"],
        "object": "setup_intent",
        "application": None,
        "automatic_payment_methods": wire.get("automatic_payment_methods"),
        "cancellation_reason": None,
        "client_secret": engine_setup.get("client_secret"),
        "created": setup["created"],
        "customer": setup.get("customer_id"),
        "description": wire.get("description"),
        "flow_directions": None,
        "last_setup_error": last_error,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": dict(wire.get("metadata") or {}),
        "next_action": next_action,
        "on_behalf_of": None,
        "payment_method": setup.get("payment_method_id") or wire.get("payment_method"),
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "single_use_mandate": None,
        "status": status,
        "usage": setup.get("usage") or "off_session",
    }


def render_setup_session(face: StripeFace, record: JSON, expand: set[str] | None = None) -> JSON:
    """A Checkout Session in setup mode (the sandbox's record of it)."""
    engine = face.engine()
    setup_intent: Any = record["setup_id"]
    if "setup_intent" in (expand or set()):
        setup_intent = render_setup_intent(face, engine._objects[record["setup_id"]])
    status = record["status"]
    if status == "open" and record["expires_at"] <= engine._now():
        status = record["status"] = "expired"
    return {
        "id": record["id"],
        "object": "checkout.session",
        "allow_promotion_codes": None,
        "amount_subtotal": None,
        "amount_total": None,
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": record["cancel_url"],
        "client_reference_id": record.get("client_reference_id"),
        "client_secret": None,
        "created": record["created"],
        "currency": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": record["customer"],
        "customer_creation": None,
        "customer_details": None,
        "customer_email": None,
        "expires_at": record["expires_at"],
        "invoice": None,
        "livemode": False,
        "locale": None,
        "metadata": dict(record.get("metadata") or {}),
        "mode": "setup",
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_types": ["card"],
        "payment_status": "no_payment_required",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "setup_intent": setup_intent,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": status,
        "submit_type": None,
        "subscription": None,
        "success_url": record["success_url"],
        "total_details": None,
        "ui_mode": "hosted_page",
        "url": face.checkout_url(record["id"]) if status == "open" else None,
    }


def setup_sessions(face: StripeFace) -> dict[str, JSON]:
    """The Checkout Sessions in setup mode, by id."""
    return face.state.records("stripe", "setup_checkout")


# == customers ===================================================================================


def _customer(face: StripeFace, customer: str, status: int = 404) -> JSON:
    try:
        return face.engine()._get("customer", customer)
    except PaygateError:
        raise missing("customer", customer, "customer", status) from None


def retrieve_customer(face: StripeFace, params: JSON, customer: str) -> JSON:
    deleted = face.state.records("stripe", "customer_deleted").get(customer)
    if deleted is not None:  # Stripe still answers for a deleted customer, with a stub
        return {"id": customer, "object": "customer", "deleted": True}
    return render_customer(face, _customer(face, customer))


def update_customer(face: StripeFace, params: JSON, customer: str) -> JSON:
    engine = face.engine()
    record = _customer(face, customer)
    settings = params.get("invoice_settings")
    default = None
    if isinstance(settings, dict) and "default_payment_method" in settings:
        default = str(settings["default_payment_method"] or "")
    if default:
        try:
            method = engine._get("payment_method", default)
        except NotFound:
            raise missing(
                "PaymentMethod", default, "invoice_settings[default_payment_method]", 400
            ) from None
        if method["customer_id"] != customer:
            raise invalid(
                f"The customer does not have a payment method with the ID {default}. The "
                "payment method must be attached to the customer.",
                code="resource_missing",
                param="invoice_settings[default_payment_method]",
            )
    wire = _wire(face, "customer", customer)
    for name in ("description", "phone"):
        if name in params:
            wire[name] = _str(params, name)
    if any(name in params for name in ("email", "name", "metadata", "description", "phone")):
        engine.update_customer(
            customer,
            email=_str(params, "email") if "email" in params else None,
            name=_str(params, "name") if "name" in params else None,
            metadata=_metadata(params) if "metadata" in params else None,
        )
    if default:
        engine.set_default_payment_method(customer, default)
    elif default == "":  # an empty value unsets it, as at Stripe
        record["default_payment_method"] = None
    return render_customer(face, record)


def delete_customer(face: StripeFace, params: JSON, customer: str) -> JSON:
    _customer(face, customer)
    face.engine().delete_customer(customer)
    face.state.records("stripe", "customer_deleted")[customer] = {"id": customer}
    return {"id": customer, "object": "customer", "deleted": True}


def list_customers(face: StripeFace, params: JSON) -> JSON:
    from paygate.sandbox._stripe_routes import _page

    records = [o for o in face.engine()._objects.values() if o["object"] == "customer"]
    email = _str(params, "email")
    if email is not None:
        records = [r for r in records if r.get("email") == email]
    return _page(face, params, [render_customer(face, r) for r in records], "/v1/customers")


# == payment methods =============================================================================


def _method(face: StripeFace, method: str, param: str = "payment_method") -> JSON:
    try:
        return face.engine()._get("payment_method", method)
    except PaygateError:
        raise missing("payment_method", method, param) from None


def list_customer_methods(face: StripeFace, params: JSON, customer: str) -> JSON:
    from paygate.sandbox._stripe_routes import _page

    _customer(face, customer)
    kind = _str(params, "type")
    methods = [
        render_payment_method(face, m)
        for m in face.engine()._methods_of(customer)
        if kind in (None, "card")
    ]
    return _page(face, params, methods, f"/v1/customers/{customer}/payment_methods")


def retrieve_method(face: StripeFace, params: JSON, method: str) -> JSON:
    return render_payment_method(face, _method(face, method))


def detach_method(face: StripeFace, params: JSON, method: str) -> JSON:
    record = _method(face, method)
    if record["customer_id"] is None:
        raise invalid(
            f"The payment method you provided is not attached to a customer so detachment "
            f"is impossible. ({method:.40})",
            code="payment_method_unexpected_state",
        )
    face.engine().detach_payment_method(method)
    return render_payment_method(face, record)


# == setup intents ===============================================================================


def create_setup_intent(face: StripeFace, params: JSON) -> JSON:
    customer = _str(params, "customer")
    if customer is None:  # the engine saves for a customer; Stripe allows none
        raise invalid(
            "The sandbox saves payment methods for a customer: pass `customer`.",
            code="parameter_missing",
            param="customer",
        )
    _customer(face, customer, 400)
    usage = _str(params, "usage") or "off_session"
    if usage not in ("off_session", "on_session"):
        raise invalid(f"Invalid usage: {usage:.20}", param="usage")
    method = _str(params, "payment_method")
    token = _api_setup_token(method) if method else None
    confirm = _bool(params, "confirm")
    engine = face.engine()
    created = engine.create_setup(
        customer_id=customer,
        idempotency_key=face.state.internal_key(),
        return_url=_str(params, "return_url"),
        usage="on_session" if usage == "on_session" else "off_session",
    )
    wire = _wire(face, "setup_intent", created.id)
    wire["metadata"] = _metadata(params)
    wire["description"] = _str(params, "description")
    apm = params.get("automatic_payment_methods")
    if isinstance(apm, dict):
        wire["automatic_payment_methods"] = {
            "enabled": _bool(apm, "enabled"),
            "allow_redirects": apm.get("allow_redirects", "always"),
        }
    if method:
        wire["payment_method"] = method
        wire["token"] = token
    record = engine._objects[created.id]
    if token is not None and confirm:
        _enter(face, record, token)
    return render_setup_intent(face, record)


def _enter(face: StripeFace, record: JSON, token: str) -> None:
    """The engine takes the method; a decline is Stripe's 402 with the SetupIntent."""
    try:
        face.engine().approve_setup(record["id"], payment_method=token)
    except PaygateError as exc:
        decline = getattr(exc, "decline_code", None)
        if decline is None:
            raise
        raise StripeAPIError(
            402,
            "card_error",
            str(exc.args[0]) if exc.args else "Your card was declined.",
            code="card_declined",
            decline_code=decline,
            setup_intent=render_setup_intent(face, record),
        ) from None


def _setup(face: StripeFace, setup: str) -> JSON:
    try:
        return face.engine()._get("setup_session", setup)
    except PaygateError:
        raise missing("setup_intent", setup, "intent") from None


def retrieve_setup_intent(face: StripeFace, params: JSON, intent: str) -> JSON:
    return render_setup_intent(face, _setup(face, intent))


def confirm_setup_intent(face: StripeFace, params: JSON, intent: str) -> JSON:
    record = _setup(face, intent)
    wire = _wire(face, "setup_intent", intent)
    method = _str(params, "payment_method")
    if method:
        token = _api_setup_token(method)
        wire["payment_method"] = method
    elif wire.get("token"):
        token = wire["token"]
    else:
        raise invalid(
            "You cannot confirm this SetupIntent because it's missing a payment method.",
            code="setup_intent_unexpected_state",
        )
    if record["status"] != "requires_action" or record.get("token") is not None:
        raise invalid(
            f"This SetupIntent's status is {render_setup_intent(face, record)['status']}; "
            "it cannot be confirmed.",
            code="setup_intent_unexpected_state",
        )
    if params.get("return_url"):
        record["return_url"] = params["return_url"]
    _enter(face, record, token)
    return render_setup_intent(face, record)


def complete_setup_challenge(face: StripeFace, setup_id: str, *, success: bool) -> str:
    """The customer passes (or fails) 3-D Secure for a SetupIntent; where the browser goes:
    the intent's ``return_url`` with ``setup_intent=...&redirect_status=...``."""
    from paygate.sandbox._stripe_api import _return_url

    with face.state.transaction("stripe") as engine:
        record = _setup(face, setup_id)
        engine.authenticate_setup(setup_id, success=success)
        target = record.get("return_url") or f"{face.sandbox.base_url}/3ds/{setup_id}/done"
        return _return_url(
            target,
            setup_intent=setup_id,
            setup_intent_client_secret=record["client_secret"],
            redirect_status="succeeded" if success else "failed",
        )


def setup_intent_view(face: StripeFace, setup_id: str) -> JSON:
    with face.state.transaction("stripe"):
        return render_setup_intent(face, _setup(face, setup_id))


# == checkout sessions in setup mode ============================================================


def create_setup_session(face: StripeFace, params: JSON, success_url: str, cancel_url: str) -> JSON:
    customer = _str(params, "customer")
    if customer is None:
        raise invalid(
            "The sandbox saves payment methods for a customer: pass `customer` in setup mode.",
            code="parameter_missing",
            param="customer",
        )
    _customer(face, customer, 400)
    if params.get("line_items"):
        raise invalid("line_items cannot be used in setup mode.", param="line_items")
    types = params.get("allowed_payment_method_types") or ["card"]
    if not isinstance(types, list) or any(t != "card" for t in types):
        raise invalid(
            "The sandbox saves cards only: allowed_payment_method_types must be ['card'].",
            param="allowed_payment_method_types",
        )
    engine = face.engine()
    setup = engine.create_setup(
        customer_id=customer,
        idempotency_key=face.state.internal_key(),
        return_url=success_url,
        cancel_url=cancel_url,
    )
    now = engine._now()
    session_id = "cs_test_" + secrets.token_hex(24)
    record: JSON = {
        "id": session_id,
        "setup_id": setup.id,
        "customer": customer,
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": _str(params, "client_reference_id"),
        "metadata": _metadata(params),
        "status": "open",
        "created": now,
        "expires_at": now + SESSION_LIFETIME,
    }
    setup_sessions(face)[session_id] = record
    return render_setup_session(face, record, _expand(params))


def expire_setup_session(face: StripeFace, record: JSON) -> JSON:
    if record["status"] != "open":
        raise invalid(
            f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
            f'Session has a status of "{record["status"]}".',
            code="checkout_session_unexpected_state",
        )
    record["status"] = "expired"
    data = render_setup_session(face, record)
    emit(face, "checkout.session.expired", data, created=face.engine()._now())
    return data


def pay_setup_session(face: StripeFace, record: JSON, card: str) -> str:
    """The customer enters ``card`` on the setup page: saved (3-D Secure, when the card asks
    for it, passes on the page), then the ``success_url``; a decline raises. The session's
    ``checkout.session.completed`` follows in ``announce_setup_session`` (after the
    engine's ``payment_method.attached`` and ``setup_intent.succeeded``, as at Stripe)."""
    engine = face.engine()
    if render_setup_session(face, record)["status"] != "open":
        raise invalid("This Checkout Session is no longer open.", code="session_expired")
    token = setup_token(card)
    setup = engine._objects[record["setup_id"]]
    if setup["status"] == "failed":  # another try after a decline: a fresh attempt
        setup.update(status="requires_action", failure=None, token=None)
    engine.approve_setup(record["setup_id"], payment_method=token)
    if setup["status"] == "requires_action":
        engine.authenticate_setup(record["setup_id"], success=True)
    record["status"] = "complete"
    return _success_url(record)


def announce_setup_session(face: StripeFace, session_id: str) -> None:
    """``checkout.session.completed`` for a setup session the customer just completed."""
    with face.state.transaction("stripe") as engine:
        record = setup_sessions(face)[session_id]
        data = render_setup_session(face, record)
        emit(face, "checkout.session.completed", data, created=engine._now())


__all__ = [
    "announce_setup_session",
    "SETUP_TOKENS",
    "complete_setup_challenge",
    "create_setup_session",
    "pay_setup_session",
    "render_payment_method",
    "render_setup_intent",
    "render_setup_session",
    "setup_intent_view",
    "setup_sessions",
    "setup_token",
]
