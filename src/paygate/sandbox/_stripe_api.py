"""Stripe's ``/v1`` wire format over the sandbox's engine.

Requests are form-encoded with Stripe's bracket notation (``metadata[order_id]=o1``,
``items[0][price]=price_x``, ``expand[]=latest_charge``) and authenticated with
``Authorization: Bearer sk_test_...``; answers are Stripe's JSON objects and its error
shape (``{"error": {"type": "card_error", "code": "card_declined", ...}}``). Each endpoint
names the parameters it accepts (``PARAMS``): all of them are parameters the ``stripe``
package's typed request parameters declare (tests/test_sandbox_stripe.py checks), and any
other is refused with 400 ``parameter_unknown``, as Stripe does.

``Idempotency-Key`` is honoured as Stripe does: the same key with the same parameters
replays the first answer (with ``Idempotent-Replayed: true``), with other parameters it is
400 ``idempotency_error``; answers to requests that failed validation are not kept.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode, urlsplit

from werkzeug.wrappers import Request, Response

from paygate.errors import (
    AuthenticationRequired,
    CardDeclined,
    IdempotencyConflict,
    InvalidAmount,
    NotFound,
    PaygateError,
    ProviderError,
    UnknownCurrency,
)
from paygate.models import LineItem
from paygate.money import Money
from paygate.providers.stripe import from_stripe_amount, to_stripe_amount
from paygate.sandbox.state import IdempotencyMismatch, WireAnswer
from paygate.sandbox.stripe import engine_token, refund_fails, to_engine_id, to_stripe_id

if TYPE_CHECKING:
    from paygate.providers.fake import FakeProvider
    from paygate.sandbox.stripe import StripeFace

JSON = dict[str, Any]
#: the API version of the stripe package the sandbox is tested with (its typed resources)
API_VERSION: Final = "2026-10-28.endive"

# == errors ======================================================================================


class StripeAPIError(Exception):
    """An answer in Stripe's error shape."""

    def __init__(
        self,
        status: int,
        error_type: str,
        message: str,
        *,
        code: str | None = None,
        decline_code: str | None = None,
        param: str | None = None,
        payment_intent: JSON | None = None,
        setup_intent: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: JSON = {"type": error_type, "message": message}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
        if decline_code:
            self.body["decline_code"] = decline_code
        if param:
            self.body["param"] = param
        if payment_intent is not None:
            self.body["payment_intent"] = payment_intent
        if setup_intent is not None:
            self.body["setup_intent"] = setup_intent

    def answer(self) -> WireAnswer:
        return WireAnswer(self.status, _dumps({"error": self.body}))


def invalid(message: str, *, code: str | None = None, param: str | None = None) -> StripeAPIError:
    return StripeAPIError(400, "invalid_request_error", message, code=code, param=param)


def missing(kind: str, object_id: str, param: str = "id", status: int = 404) -> StripeAPIError:
    """No such object: 404 for the request's own object, 400 for one a parameter names."""
    return StripeAPIError(
        status,
        "invalid_request_error",
        f"No such {kind}: '{object_id:.80}'",
        code="resource_missing",
        param=param,
    )


#: the engine's error codes → Stripe's
_ENGINE_CODES: Final[Mapping[str, str]] = {
    "payment_unexpected_state": "payment_intent_unexpected_state",
    "amount_too_large": "amount_too_large",
    "charge_disputed": "charge_disputed",
    "checkout_unexpected_state": "checkout_session_unexpected_state",
}


def _from_engine(exc: ProviderError, face: StripeFace) -> StripeAPIError:
    if isinstance(exc, CardDeclined):
        intent = None
        if exc.payment_id:
            intent = render_intent(face, face.engine()._get("payment", exc.payment_id))
        if isinstance(exc, AuthenticationRequired):  # off session: the bank wants the customer
            return StripeAPIError(
                402,
                "card_error",
                "Your card was declined. This transaction requires authentication.",
                code="authentication_required",
                decline_code="authentication_required",
                payment_intent=intent,
            )
        return StripeAPIError(
            402,
            "card_error",
            str(exc.args[0]) if exc.args else "Your card was declined.",
            code="card_declined",
            decline_code=exc.decline_code or "generic_decline",
            payment_intent=intent,
        )
    if isinstance(exc, NotFound):
        return StripeAPIError(404, "invalid_request_error", str(exc), code="resource_missing")
    if isinstance(exc, IdempotencyConflict):
        return StripeAPIError(400, "idempotency_error", str(exc))
    code = _ENGINE_CODES.get(exc.code or "", exc.code)
    return StripeAPIError(exc.http_status or 400, "invalid_request_error", str(exc), code=code)


# == form parsing ================================================================================

_BRACKETS = re.compile(r"\[([^\]]*)\]")


def parse_form(pairs: Iterable[tuple[str, str]]) -> JSON:
    """Stripe's bracket notation → nested dicts and lists (hand-written: no library
    parses Rack-style nested parameters, and it is a dozen lines)."""
    root: JSON = {}
    for key, value in pairs:
        head, bracket, rest = key.partition("[")
        parts = [head, *_BRACKETS.findall(bracket + rest)] if bracket else [head]
        node: Any = root
        for part in parts[:-1]:
            node = node.setdefault(part or str(len(node)), {})
            if not isinstance(node, dict):
                raise invalid(f"Invalid parameter: {key}", code="parameter_invalid_string")
        last = parts[-1]
        node[last or str(len(node))] = value
    parsed: JSON = _listify(root)
    return parsed


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def _int(params: JSON, name: str, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing required param: {name}.", code="parameter_missing", param=name)
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(
            f"Invalid integer: {value!s:.40}", code="parameter_invalid_integer", param=name
        ) from None


def _bool(params: JSON, name: str) -> bool:
    value = params.get(name)
    if value in (None, "", "false", False):
        return False
    if value in ("true", True):
        return True
    raise invalid(f"Invalid boolean: {value!s:.20}", code="parameter_invalid_boolean", param=name)


def _str(params: JSON, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise invalid(f"Missing required param: {name}.", code="parameter_missing", param=name)
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {name}", code="parameter_invalid_string", param=name)
    return value


def _metadata(params: JSON, name: str = "metadata") -> dict[str, str]:
    value = params.get(name)
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise invalid("Invalid object", code="parameter_invalid_object", param=name)
    return {str(k): str(v) for k, v in value.items() if v != ""}


def _money(amount: int, currency: str, param: str = "amount") -> Money:
    try:
        money = from_stripe_amount(amount, currency)
    except (UnknownCurrency, InvalidAmount) as exc:
        raise invalid(str(exc), param=param) from None
    if money.amount < 1:
        raise invalid(
            "This value must be greater than or equal to 1.",
            code="parameter_invalid_integer",
            param=param,
        )
    return money


def _amount(money: Money) -> int:
    return to_stripe_amount(money)[0]


def _expand(params: JSON) -> set[str]:
    value = params.get("expand") or []
    return {str(v) for v in (value if isinstance(value, list) else [value])}


# == rendering: engine records → Stripe objects ==================================================

_INTENT_STATUS: Final[Mapping[str, str]] = {
    "pending": "requires_payment_method",
    "requires_action": "requires_action",
    "processing": "processing",
    "authorized": "requires_capture",
    "succeeded": "succeeded",
    "partially_refunded": "succeeded",
    "refunded": "succeeded",
    "disputed": "succeeded",
    "charged_back": "succeeded",
    "canceled": "canceled",
    "failed": "requires_payment_method",
}
_REFUND_STATUS: Final = {
    "pending": "pending",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "canceled",
}
_DISPUTE_STATUS: Final = {
    "open": "needs_response",
    "under_review": "under_review",
    "won": "won",
    "lost": "lost",
    "closed": "warning_closed",
}


def _wire(face: StripeFace, kind: str, object_id: str) -> JSON:
    """The wire-only fields the sandbox keeps beside an engine record (payment methods ...)."""
    return face.state.records("stripe", kind).setdefault(object_id, {})


def _objects(engine: FakeProvider, kind: str) -> list[JSON]:
    return [obj for obj in engine._objects.values() if obj["object"] == kind]


def _pm_id(face: StripeFace, record: JSON) -> str | None:
    return _wire(face, "payment", record["id"]).get("payment_method")


def _refunded_minor(engine: FakeProvider, record: JSON) -> int:
    return sum(
        engine._objects[r]["amount"]
        for r in record["refund_ids"]
        if engine._objects[r]["status"] == "succeeded"
    )


def render_intent(face: StripeFace, record: JSON, expand: set[str] | None = None) -> JSON:
    engine = face.engine()
    expand = expand or set()
    money = Money(record["amount"], record["currency"])
    status = _INTENT_STATUS[record["status"]]
    wire = _wire(face, "payment", record["id"])
    intent_id = to_stripe_id(record["id"])
    failure = record.get("failure")
    last_error = None
    if failure:
        last_error = {
            "type": "card_error",
            "code": "card_declined" if failure["code"] == "card_declined" else failure["code"],
            "decline_code": failure.get("decline_code"),
            "message": failure["message"],
            "payment_method": _payment_method(wire.get("payment_method"), record["created"]),
        }
    next_action = None
    if status == "requires_action":
        next_action = {
            "type": "redirect_to_url",
            "redirect_to_url": {
                "url": face.challenge_url(record["id"]),
                "return_url": record.get("return_url"),
            },
        }
    charge: Any = charge_id_of(record)
    if charge and ("latest_charge" in expand or "latest_charge.refunds" in expand):
        charge = render_charge(face, record, with_refunds="latest_charge.refunds" in expand)
    captured = Money(record["amount_captured"], record["currency"])
    return {
        "id": intent_id,
        "object": "payment_intent",
        "amount": _amount(money),
        "amount_capturable": _amount(money) if status == "requires_capture" else 0,
        "amount_details": {"tip": {}},
        "amount_received": _amount(captured),
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": wire.get("automatic_payment_methods"),
        "canceled_at": wire.get("canceled_at"),
        "cancellation_reason": wire.get("cancellation_reason"),
        "capture_method": "manual" if record["capture_method"] == "manual" else "automatic",
        # event snapshots leave it out; Stripe's events carry it
        "client_secret": engine._objects.get(record["id"], record).get("client_secret"),
        "confirmation_method": "automatic",
        "created": record["created"],
        "currency": money.currency.lower(),
        "customer": record.get("customer_id"),
        "description": record.get("description"),
        "last_payment_error": last_error,
        "latest_charge": charge,
        "livemode": False,
        "metadata": dict(record.get("metadata") or {}),
        "next_action": next_action,
        "on_behalf_of": None,
        "payment_method": wire.get("payment_method"),
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def charge_id_of(record: JSON) -> str | None:
    """A payment's latest charge: the captured one, or the failed attempt's."""
    if record.get("charge_id"):
        return str(record["charge_id"])
    return "ch_" + record["id"][4:] if record.get("failure") else None


def _payment_method(method_id: str | None, created: int) -> JSON:
    return {
        "id": method_id or "pm_" + secrets.token_hex(12),
        "object": "payment_method",
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "created": created,
        "customer": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def render_charge(face: StripeFace, record: JSON, *, with_refunds: bool = False) -> JSON:
    engine = face.engine()
    currency = record["currency"]
    amount = _amount(Money(record["amount"], currency))
    captured = _amount(Money(record["amount_captured"], currency))
    refunded = _amount(Money(_refunded_minor(engine, record), currency))
    # after a partial capture Stripe releases the rest and counts it as refunded
    released = amount - captured if captured else 0
    disputes = [d for d in _objects(engine, "dispute") if d["payment_id"] == record["id"]]
    charge_id = charge_id_of(record)
    assert charge_id is not None
    failed = record["status"] == "failed"
    charge: JSON = {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": captured,
        "amount_refunded": refunded + released,
        "balance_transaction": "txn_" + charge_id[3:] if captured else None,
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "calculated_statement_descriptor": "PAYGATE SANDBOX",
        "captured": bool(captured),
        "created": record["created"],
        "currency": currency.lower(),
        "customer": record.get("customer_id"),
        "description": record.get("description"),
        "disputed": bool(disputes),
        "failure_code": None,
        "failure_message": None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(record.get("metadata") or {}),
        "outcome": {
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "seller_message": "Payment complete.",
            "type": "authorized",
        },
        "paid": not failed,
        "payment_intent": to_stripe_id(record["id"]),
        "payment_method": _pm_id(face, record),
        "receipt_email": None,
        "receipt_url": None,
        "refunded": bool(captured) and refunded + released >= amount,
        "status": "failed" if failed else "succeeded",
    }
    if with_refunds:
        refunds = [render_refund(face, engine._objects[r]) for r in record["refund_ids"]]
        charge["refunds"] = {
            "object": "list",
            "data": sorted(refunds, key=lambda r: r["created"], reverse=True),
            "has_more": False,
            "url": f"/v1/charges/{charge_id}/refunds",
        }
    return charge


def render_refund(face: StripeFace, refund: JSON) -> JSON:
    engine = face.engine()
    payment = engine._objects[refund["payment_id"]]
    wire = _wire(face, "refund", refund["id"])
    return {
        "id": refund["id"],
        "object": "refund",
        "amount": _amount(Money(refund["amount"], refund["currency"])),
        "balance_transaction": "txn_" + refund["id"][3:]
        if refund["status"] in ("succeeded", "failed")
        else None,
        "charge": payment.get("charge_id"),
        "created": refund["created"],
        "currency": refund["currency"].lower(),
        "destination_details": {
            "card": {"reference_status": "available", "type": "refund"},
            "type": "card",
        },
        "metadata": dict(wire.get("metadata") or {}),
        "payment_intent": to_stripe_id(payment["id"]),
        "reason": wire.get("reason"),
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": _REFUND_STATUS.get(refund["status"], "pending"),
        "transfer_reversal": None,
    } | ({"failure_reason": refund.get("failure_reason")} if refund["status"] == "failed" else {})


def render_customer(face: StripeFace, customer: JSON) -> JSON:
    wire = _wire(face, "customer", customer["id"])
    return {
        "id": customer["id"],
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": customer["created"],
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": wire.get("description"),
        "email": customer.get("email"),
        "invoice_prefix": customer["id"][4:12].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": customer.get("default_payment_method"),
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": dict(customer.get("metadata") or {}),
        "name": customer.get("name"),
        "phone": wire.get("phone"),
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def render_price(face: StripeFace, price_id: str) -> JSON:
    stored = face.state.records("stripe", "price").get(price_id)
    if stored is not None:
        return dict(stored)
    # a price_* id the sandbox never saw: the engine's default price, monthly
    money = face.engine()._price(price_id)
    return _price_object(price_id, money, {"interval": "month", "interval_count": 1}, None, 0)


def _price_object(
    price_id: str, money: Money, recurring: JSON | None, product: str | None, created: int
) -> JSON:
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": money.currency.lower(),
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product or "prod_sandbox",
        "recurring": None
        if recurring is None
        else {
            "interval": recurring.get("interval", "month"),
            "interval_count": int(recurring.get("interval_count", 1)),
            "meter": None,
            "usage_type": "licensed",
        },
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time" if recurring is None else "recurring",
        "unit_amount": _amount(money),
        "unit_amount_decimal": str(_amount(money)),
    }


def render_session(face: StripeFace, session: JSON, expand: set[str] | None = None) -> JSON:
    expand = expand or set()
    wire = _wire(face, "checkout_session", session["id"])
    money = Money(session["amount_total"], session["currency"])
    complete = session["status"] == "complete"
    payment_id = session.get("payment_id")
    data: JSON = {
        "id": session["id"],
        "object": "checkout.session",
        "allow_promotion_codes": None,
        "amount_subtotal": _amount(money),
        "amount_total": _amount(money),
        "automatic_tax": {"enabled": False, "liability": None, "status": None},
        "billing_address_collection": None,
        "cancel_url": session["cancel_url"],
        "client_reference_id": wire.get("client_reference_id"),
        "client_secret": None,
        "created": session["created"],
        "currency": money.currency.lower(),
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": session.get("customer_id"),
        "customer_creation": "if_required",
        "customer_details": None,
        "customer_email": wire.get("customer_email"),
        "expires_at": session["expires_at"],
        "invoice": None,
        "livemode": False,
        "locale": None,
        "metadata": dict(session.get("metadata") or {}),
        "mode": session["mode"],
        "payment_intent": to_stripe_id(payment_id)
        if payment_id and session["mode"] == "payment"
        else None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_types": ["card"],
        "payment_status": "paid" if complete else "unpaid",
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": session["status"],
        "submit_type": None,
        "subscription": session.get("subscription_id"),
        "success_url": session["success_url"],
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted_page",
        "url": face.checkout_url(session["id"]) if session["status"] == "open" else None,
    }
    if "line_items" in expand:
        data["line_items"] = _session_lines(face, session)
    return data


def _session_lines(face: StripeFace, session: JSON) -> JSON:
    items = []
    if session["mode"] == "subscription":
        price = render_price(face, session["price_id"])
        lines = [
            {
                "name": session["price_id"],
                "unit_amount": session["amount_total"],
                "currency": session["currency"],
                "quantity": 1,
                "price": price,
            }
        ]
    else:
        lines = session["line_items"]
    for index, line in enumerate(lines):
        unit = Money(line["unit_amount"], line["currency"])
        total = Money(line["unit_amount"] * line["quantity"], line["currency"])
        price = line.get("price") or _price_object(
            f"price_{session['id'][3:]}_{index}", unit, None, None, session["created"]
        )
        items.append(
            {
                "id": f"li_{session['id'][3:]}_{index}",
                "object": "item",
                "amount_discount": 0,
                "amount_subtotal": _amount(total),
                "amount_tax": 0,
                "amount_total": _amount(total),
                "currency": unit.currency.lower(),
                "description": line["name"],
                "price": price,
                "quantity": line["quantity"],
            }
        )
    return {
        "object": "list",
        "data": items,
        "has_more": False,
        "url": f"/v1/checkout/sessions/{session['id']}/line_items",
    }


# == hosted pages' actions =======================================================================


def checkout_view(face: StripeFace, session_id: str) -> JSON:
    from paygate.sandbox import _stripe_methods

    with face.state.transaction("stripe") as engine:
        setup = _stripe_methods.setup_sessions(face).get(session_id)
        if setup is not None:
            return _stripe_methods.render_setup_session(face, setup)
        try:
            session = engine._session(session_id)
        except NotFound:
            raise missing("checkout.session", session_id) from None
        return render_session(face, session, {"line_items"})


def _return_url(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query string."""
    separator = "&" if urlsplit(url).query else "?"
    return url + separator + urlencode(params)


def _success_url(session: JSON) -> str:
    return str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])


def pay_checkout(face: StripeFace, session_id: str, card: str) -> str:
    from paygate.sandbox import _stripe_methods

    with face.state.transaction("stripe") as engine:
        setup = _stripe_methods.setup_sessions(face).get(session_id)
        if setup is not None:
            target = _stripe_methods.pay_setup_session(face, setup, card)
    if setup is not None:
        _stripe_methods.announce_setup_session(face, session_id)
        return target
    token = engine_token(card)
    with face.state.transaction("stripe") as engine:
        session = engine._session(session_id)
        try:
            engine.complete_checkout(session_id, payment_method=token)
        finally:
            if session.get("payment_id"):
                remember_method(face, session["payment_id"], card)
        payment_id = session.get("payment_id")
        status = engine._objects[payment_id]["status"] if payment_id else None
        if payment_id and status == "requires_action":
            return face.challenge_url(payment_id)
        if status == "processing":  # a delayed method: Stripe reports it on the session too
            _wire(face, "checkout_session", session_id)["async_payment"] = True
        return _success_url(session)


def remember_method(face: StripeFace, payment_id: str, card: str) -> None:
    """Keep what paid for a payment: a PaymentMethod id (test ``pm_`` ids stand for
    themselves) and whether its refunds fail (Stripe's ``pm_card_refundFail``)."""
    wire = _wire(face, "payment", payment_id)
    wire["payment_method"] = card if card.startswith("pm_") else "pm_" + secrets.token_hex(12)
    wire["token"] = engine_token(card)
    wire["refund_fails"] = refund_fails(card)


def intent_view(face: StripeFace, intent_id: str) -> JSON:
    if intent_id.startswith("seti_"):
        from paygate.sandbox import _stripe_methods

        return _stripe_methods.setup_intent_view(face, intent_id)
    with face.state.transaction("stripe") as engine:
        record = _intent_record(engine, intent_id)
        return render_intent(face, record)


def _intent_record(engine: FakeProvider, intent_id: str) -> JSON:
    try:
        return engine._get("payment", to_engine_id(intent_id))
    except NotFound:
        raise missing("payment_intent", intent_id, "intent") from None


def complete_challenge(face: StripeFace, intent_id: str, *, success: bool) -> str:
    if intent_id.startswith("seti_"):
        from paygate.sandbox import _stripe_methods

        return _stripe_methods.complete_setup_challenge(face, intent_id, success=success)
    with face.state.transaction("stripe") as engine:
        record = _intent_record(engine, intent_id)
        engine.authenticate(record["id"], success=success)
        session_id = record.get("checkout_session_id")
        if session_id:
            session = engine._objects[session_id]
            if success:
                return _success_url(session)
            return face.checkout_url(session_id) + "?error=authentication_failed"
        status = _INTENT_STATUS[record["status"]]
        redirect_status = "succeeded" if success else "failed"
        target = (
            record.get("return_url")
            or f"{face.sandbox.base_url}/3ds/{to_stripe_id(record['id'])}/done"
        )
        return _return_url(
            target,
            payment_intent=to_stripe_id(record["id"]),
            payment_intent_client_secret=record["client_secret"],
            redirect_status=redirect_status if status != "processing" else "pending",
        )


# == events ======================================================================================

#: the engine's event type → Stripe's event types (in the order Stripe sends them)
_EVENTS: Final[Mapping[str, tuple[str, ...]]] = {
    "payment.created": ("payment_intent.created",),
    "payment.action_required": ("payment_intent.requires_action",),
    "payment.processing": ("payment_intent.processing",),
    "payment.authorized": ("payment_intent.amount_capturable_updated",),
    "payment.succeeded": ("charge.succeeded", "payment_intent.succeeded"),
    "payment.failed": ("charge.failed", "payment_intent.payment_failed"),
    "payment.canceled": ("payment_intent.canceled",),
    "refund.created": ("refund.created",),
    "refund.succeeded": ("refund.created", "charge.refunded"),
    "refund.failed": ("refund.failed", "refund.updated"),
    "dispute.opened": ("charge.dispute.created", "charge.dispute.funds_withdrawn"),
    "dispute.updated": ("charge.dispute.updated",),
    "dispute.won": ("charge.dispute.funds_reinstated", "charge.dispute.closed"),
    "dispute.lost": ("charge.dispute.closed",),
    "subscription.created": ("customer.subscription.created",),
    "subscription.updated": ("customer.subscription.updated",),
    "subscription.canceled": ("customer.subscription.deleted",),
    "subscription.payment_failed": ("customer.subscription.updated",),
    "invoice.created": ("invoice.created", "invoice.finalized"),
    "invoice.paid": ("invoice.paid", "invoice.payment_succeeded"),
    "invoice.payment_failed": ("invoice.payment_failed",),
    "checkout.completed": ("checkout.session.completed",),
    "checkout.expired": ("checkout.session.expired",),
    "customer.created": ("customer.created",),
    "customer.updated": ("customer.updated",),
    "customer.deleted": ("customer.deleted",),
    "payment_method.attached": ("payment_method.attached",),
    "payment_method.updated": ("payment_method.automatically_updated",),
    "payment_method.detached": ("payment_method.detached",),
    "setup.succeeded": ("setup_intent.succeeded",),
    "setup.failed": ("setup_intent.setup_failed",),
}


def translate_event(face: StripeFace, event: JSON) -> None:
    """One engine event → Stripe's event(s), rendered from the engine's snapshot."""
    engine_type = event["type"]
    snapshot = event["data"]["object"]
    for stripe_type in _EVENTS.get(engine_type, ()):
        obj = _event_object(face, stripe_type, snapshot)
        if obj is None:
            continue
        emit(face, stripe_type, obj, created=event["created"])
    session_id = snapshot.get("checkout_session_id")
    outcome = {"payment.succeeded": "succeeded", "payment.failed": "failed"}.get(engine_type)
    if session_id and outcome and _wire(face, "checkout_session", session_id).get("async_payment"):
        session = render_session(face, face.engine()._objects[session_id])
        session["payment_status"] = "paid" if outcome == "succeeded" else "unpaid"
        emit(face, f"checkout.session.async_payment_{outcome}", session, created=event["created"])


def _event_object(face: StripeFace, stripe_type: str, snapshot: JSON) -> JSON | None:
    kind = snapshot["object"]
    engine = face.engine()
    if kind == "payment":
        if stripe_type.startswith("charge."):
            if charge_id_of(snapshot) is None:
                return None
            return render_charge(face, snapshot)
        return render_intent(face, snapshot)
    if kind == "refund":
        if stripe_type == "charge.refunded":
            return render_charge(face, engine._objects[snapshot["payment_id"]])
        return render_refund(face, snapshot)
    if kind == "dispute":
        return render_dispute(face, snapshot)
    if kind == "subscription":
        return render_subscription(face, snapshot)
    if kind == "invoice":
        if stripe_type == "invoice.finalized" and snapshot["status"] == "draft":
            return None
        if stripe_type == "invoice.created" and snapshot["id"] in face.state.records(
            "stripe", "invoice_alias"
        ):
            return None  # announced when its draft was created
        return render_invoice(face, snapshot)
    if kind == "checkout_session":
        return render_session(face, snapshot)
    if kind in ("customer", "payment_method", "setup_session"):
        from paygate.sandbox import _stripe_methods

        if kind == "customer":
            return render_customer(face, snapshot)
        if kind == "payment_method":
            return _stripe_methods.render_payment_method(face, snapshot)
        return _stripe_methods.render_setup_intent(face, snapshot)
    return None


def emit(face: StripeFace, stripe_type: str, obj: JSON, *, created: int) -> str:
    event_id = "evt_" + secrets.token_hex(12)
    payload = {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": len(face.sandbox.bus.endpoints("stripe")),
        "request": {"id": None, "idempotency_key": None},
        "type": stripe_type,
    }
    face.emit(payload, event_id=event_id, type=stripe_type)
    if face.collected is not None:
        face.collected.append(event_id)
    return event_id


# == placeholders filled in below (dispute, subscription, invoice renderers) ======================


def render_dispute(face: StripeFace, dispute: JSON) -> JSON:
    payment = face.engine()._objects[dispute["payment_id"]]
    money = Money(dispute["amount"], dispute["currency"])
    return {
        "id": dispute["id"],
        "object": "dispute",
        "amount": _amount(money),
        "balance_transactions": [],
        "charge": payment.get("charge_id"),
        "created": dispute["created"],
        "currency": money.currency.lower(),
        "enhanced_eligibility_types": [],
        "evidence": {"enhanced_evidence": {}, "uncategorized_text": None},
        "evidence_details": {
            "due_by": dispute.get("evidence_due_by"),
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
            "submission_method": "not_submitted",
        },
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": to_stripe_id(payment["id"]),
        "reason": dispute.get("reason") or "general",
        "status": _DISPUTE_STATUS.get(dispute["status"], "needs_response"),
    }


def render_subscription(face: StripeFace, sub: JSON) -> JSON:
    price = render_price(face, sub["price_id"])
    return {
        "id": sub["id"],
        "object": "subscription",
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": sub["created"],
        "billing_mode": {"type": "classic"},
        "billing_schedules": [],
        "cancel_at": None,
        "cancel_at_period_end": bool(sub.get("cancel_at_period_end")),
        "canceled_at": sub.get("canceled_at"),
        "collection_method": "charge_automatically",
        "created": sub["created"],
        "currency": price["currency"],
        "customer": sub["customer_id"],
        "default_payment_method": None,
        "description": None,
        "discounts": [],
        "ended_at": sub.get("canceled_at") if sub["status"] == "canceled" else None,
        "invoice_settings": {"account_tax_ids": None, "issuer": {"type": "self"}},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_" + sub["id"][4:],
                    "object": "subscription_item",
                    "created": sub["created"],
                    "current_period_end": sub["current_period_end"],
                    "current_period_start": sub["current_period_start"],
                    "discounts": [],
                    "metadata": {},
                    "plan": _plan(price),
                    "price": price,
                    "quantity": 1,
                    "subscription": sub["id"],
                }
            ],
            "has_more": False,
            "url": f"/v1/subscription_items?subscription={sub['id']}",
        },
        "latest_invoice": sub.get("latest_invoice"),
        "livemode": False,
        "metadata": dict(sub.get("metadata") or {}),
        "start_date": sub["created"],
        "status": sub["status"],
        "trial_end": None,
        "trial_start": None,
    }


def stripe_invoice_id(face: StripeFace, engine_id: str) -> str:
    """The Stripe id of an engine invoice (one built from a draft keeps the draft's id)."""
    alias = face.state.records("stripe", "invoice_alias").get(engine_id)
    return str(alias["id"]) if alias else engine_id


def _plan(price: JSON) -> JSON:
    """The legacy Plan view of a recurring price (subscription items still carry it)."""
    recurring = price.get("recurring") or {"interval": "month", "interval_count": 1}
    return {
        "id": price["id"],
        "object": "plan",
        "active": True,
        "amount": price["unit_amount"],
        "amount_decimal": price["unit_amount_decimal"],
        "billing_scheme": "per_unit",
        "created": price["created"],
        "currency": price["currency"],
        "interval": recurring["interval"],
        "interval_count": recurring["interval_count"],
        "livemode": False,
        "metadata": {},
        "meter": None,
        "nickname": price.get("nickname"),
        "product": price["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def render_invoice(face: StripeFace, invoice: JSON, expand: set[str] | None = None) -> JSON:
    """An Invoice; its ``payments`` only with ``expand[]=payments``, as Stripe includes them."""
    money_due = Money(invoice["amount_due"], invoice["currency"])
    paid = Money(invoice["amount_paid"], invoice["currency"])
    invoice = {**invoice, "id": stripe_invoice_id(face, invoice["id"])}
    wire = _wire(face, "invoice", invoice["id"])
    payment_id = invoice.get("payment_id")
    payments: list[JSON] = []
    if payment_id and invoice["status"] == "paid":
        payments.append(
            {
                "id": "inpay_" + invoice["id"][3:],
                "object": "invoice_payment",
                "amount_paid": _amount(paid),
                "amount_requested": _amount(money_due),
                "created": invoice["created"],
                "currency": money_due.currency.lower(),
                "invoice": invoice["id"],
                "is_default": True,
                "livemode": False,
                "payment": {
                    "type": "payment_intent",
                    "payment_intent": to_stripe_id(payment_id),
                },
                "status": "paid",
                "status_transitions": {"canceled_at": None, "paid_at": invoice["created"]},
            }
        )
    lines = [
        {
            "id": f"il_{invoice['id'][3:]}_{index}",
            "object": "line_item",
            "amount": _amount(Money(line["unit_amount"] * line["quantity"], line["currency"])),
            "currency": line["currency"].lower(),
            "description": line.get("description") or line.get("name"),
            "discountable": True,
            "discounts": [],
            "livemode": False,
            "metadata": {},
            "period": {"end": invoice["created"], "start": invoice["created"]},
            "quantity": line["quantity"],
            "subtotal": _amount(Money(line["unit_amount"] * line["quantity"], line["currency"])),
        }
        for index, line in enumerate(invoice.get("lines") or [])
    ]
    data: JSON = {
        "id": invoice["id"],
        "object": "invoice",
        "amount_due": _amount(money_due),
        "amount_overpaid": 0,
        "amount_paid": _amount(paid),
        "amount_remaining": _amount(money_due) - _amount(paid),
        "amount_shipping": 0,
        "attempt_count": 1 if payment_id else 0,
        "attempted": bool(payment_id),
        "auto_advance": False,
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "billing_reason": "subscription_cycle" if invoice.get("subscription_id") else "manual",
        "collection_method": wire.get("collection_method", "charge_automatically"),
        "created": invoice["created"],
        "currency": money_due.currency.lower(),
        "customer": invoice["customer_id"],
        "default_tax_rates": [],
        "description": invoice.get("description"),
        "discounts": [],
        "due_date": invoice.get("due_at")
        if wire.get("collection_method") == "send_invoice"
        else None,
        "hosted_invoice_url": f"{face.sandbox.base_url}/invoices/{invoice['id']}"
        if invoice["status"] != "draft"
        else None,
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "url": f"/v1/invoices/{invoice['id']}/lines",
        },
        "issuer": {"type": "self"},
        "livemode": False,
        "metadata": dict(wire.get("metadata") or {}),
        "number": invoice.get("number"),
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": invoice["created"],
        "period_start": invoice["created"],
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "starting_balance": 0,
        "status": invoice["status"],
        "status_transitions": {
            "finalized_at": None if invoice["status"] == "draft" else invoice["created"],
            "marked_uncollectible_at": None,
            "paid_at": invoice["created"] if invoice["status"] == "paid" else None,
            "voided_at": None,
        },
        "subtotal": _amount(money_due),
        "total": _amount(money_due),
    }
    if "payments" in (expand or set()):
        data["payments"] = {
            "object": "list",
            "data": payments,
            "has_more": False,
            "url": f"/v1/invoice_payments?invoice={invoice['id']}",
        }
    return data


# == the API =====================================================================================

Endpoint = Callable[..., JSON]


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def _authorized(request: Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    return scheme.lower() == "bearer" and key.startswith(("sk_test_", "rk_test_"))


def _answer(answer: WireAnswer, replayed: bool = False) -> Response:
    headers = {"Request-Id": "req_" + secrets.token_hex(7), "Stripe-Version": API_VERSION}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        answer.body, status=answer.status, headers=headers, content_type=answer.content_type
    )


def api(face: StripeFace, endpoint: Endpoint, allowed: frozenset[str]) -> Callable[..., Response]:
    """Wrap an endpoint: auth, form parsing, unknown parameters, idempotency, errors."""

    def handler(request: Request, **values: str) -> Response:
        if not _authorized(request):
            error = StripeAPIError(
                401,
                "invalid_request_error",
                "Invalid API Key provided: the sandbox takes any sk_test_... key",
            )
            return _answer(error.answer())
        pairs = list((request.form if request.method == "POST" else request.args).items(multi=True))
        if request.method != "GET":
            pairs += [p for p in request.args.items(multi=True) if p[0].startswith("expand")]

        def compute() -> WireAnswer:
            try:
                params = parse_form(pairs)
                unknown = sorted(set(params) - allowed - {"expand"})
                if unknown:
                    raise invalid(
                        f"Received unknown parameter: {unknown[0]}",
                        code="parameter_unknown",
                        param=unknown[0],
                    )
                with face.state.transaction("stripe"):
                    try:
                        return WireAnswer(200, _dumps(endpoint(face, params, **values)))
                    except ProviderError as exc:
                        raise _from_engine(exc, face) from None
            except StripeAPIError as exc:
                return exc.answer()
            except PaygateError as exc:
                return invalid(str(exc)).answer()

        key = request.headers.get("Idempotency-Key")
        if request.method != "POST" or not key:
            return _answer(compute())
        replayed = True

        def first() -> WireAnswer:
            nonlocal replayed
            replayed = False
            return compute()

        fingerprint = [request.method, request.path, sorted(pairs)]
        try:
            answer = face.state.idempotent(
                "stripe",
                key,
                fingerprint,
                first,
                # Stripe keeps what it started executing: successes and declines, not
                # validation failures (400) or its own errors
                keep=lambda a: a.status < 400 or a.status == 402,
            )
        except IdempotencyMismatch:
            error = StripeAPIError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key:.80}' if you meant "
                "to execute a different request.",
            )
            return _answer(error.answer())
        return _answer(answer, replayed)

    return handler


def register(face: StripeFace) -> None:
    """Add the ``/v1`` routes and the hosted pages' form actions."""
    from paygate.sandbox import _stripe_routes

    for rule, methods, endpoint, allowed in _stripe_routes.ROUTES:
        face.sandbox.route(rule, api(face, endpoint, allowed), methods=methods)
    _stripe_routes.register_page_actions(face)


def _line_items(items: Any, offset: int = 0) -> list[LineItem]:
    """Checkout ``price_data`` lines → the engine's line items."""
    result = []
    for index, item in enumerate(items if isinstance(items, list) else [], start=offset):
        data = item.get("price_data") if isinstance(item, dict) else None
        if not isinstance(data, dict):
            raise invalid(
                "each line item needs a price or price_data", param=f"line_items[{index}]"
            )
        currency = data.get("currency")
        unit = _int(data, "unit_amount")
        if unit is None or not isinstance(currency, str):
            raise invalid(
                "line_items need price_data[currency] and price_data[unit_amount]",
                param=f"line_items[{index}][price_data]",
            )
        product: Any = data.get("product_data")
        if not isinstance(product, dict):
            product = {}
        result.append(
            LineItem(
                name=str(product.get("name") or "item"),
                unit_amount=_money(unit, currency, f"line_items[{index}][price_data][unit_amount]"),
                quantity=_int(item, "quantity") or 1,
                description=product.get("description"),
            )
        )
    return result


# == balance transactions ==========================================================================

#: the sandbox's card fee: 2.9% + 30 minor units, as Stripe's US list price
_FEE_PERCENT, _FEE_FIXED = 0.029, 30


def _transaction(
    txn_id: str,
    kind: str,
    category: str,
    amount: int,
    fee: int,
    currency: str,
    created: int,
    source: Any,
    description: str | None,
) -> JSON:
    return {
        "id": txn_id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created + 2 * 86_400,
        "balance_type": "payments",
        "created": created,
        "currency": currency.lower(),
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": [
            {
                "amount": fee,
                "application": None,
                "currency": currency.lower(),
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        if fee
        else [],
        "net": amount - fee,
        "reporting_category": category,
        "source": source,
        "status": "available",
        "type": kind,
    }


def balance_transactions(
    face: StripeFace, *, expand_source: bool = False, expand_charge: bool = False
) -> list[JSON]:
    """The account's balance transactions, derived from the engine's records: a charge per
    captured payment (with the fee), a refund per succeeded refund, a dispute withdrawal per
    dispute and its reversal when won."""
    engine = face.engine()
    rows: list[JSON] = []
    for record in _objects(engine, "payment"):
        charge_id = record.get("charge_id")
        if not charge_id or not record["amount_captured"]:
            continue
        currency = record["currency"]
        captured = _amount(Money(record["amount_captured"], currency))
        fee = round(captured * _FEE_PERCENT) + _FEE_FIXED
        charge: Any = render_charge(face, record) if expand_source else charge_id
        rows.append(
            _transaction(
                "txn_" + charge_id[3:],
                "charge",
                "charge",
                captured,
                fee,
                currency,
                record["created"],
                charge,
                record.get("description"),
            )
        )
        for refund_id in record["refund_ids"]:
            refund = engine._objects[refund_id]
            if refund["status"] != "succeeded":
                continue
            source: Any = refund_id
            if expand_source:
                source = render_refund(face, refund)
                if expand_charge:
                    source["charge"] = render_charge(face, record)
            rows.append(
                _transaction(
                    "txn_" + refund_id[3:],
                    "refund",
                    "refund",
                    -_amount(Money(refund["amount"], currency)),
                    0,
                    currency,
                    refund["created"],
                    source,
                    "REFUND FOR CHARGE",
                )
            )
    for dispute in _objects(engine, "dispute"):
        record = engine._objects[dispute["payment_id"]]
        amount = _amount(Money(dispute["amount"], dispute["currency"]))
        source = dispute["id"]
        if expand_source:
            source = render_dispute(face, dispute)
            if expand_charge:
                source["charge"] = render_charge(face, record)
        rows.append(
            _transaction(
                "txn_" + dispute["id"][3:],
                "adjustment",
                "dispute",
                -amount,
                0,
                dispute["currency"],
                dispute["created"],
                source,
                "Chargeback withdrawal",
            )
        )
        if dispute["status"] == "won":
            rows.append(
                _transaction(
                    "txn_r" + dispute["id"][3:],
                    "adjustment",
                    "dispute_reversal",
                    amount,
                    0,
                    dispute["currency"],
                    dispute["created"],
                    source,
                    "Chargeback reversal",
                )
            )
    return rows
