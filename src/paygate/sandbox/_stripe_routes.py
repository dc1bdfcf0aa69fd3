"""The Stripe face's endpoints: ``(rule, methods, endpoint, accepted parameters)``.

Each endpoint runs inside the state's transaction with the parsed parameters and returns
the Stripe object; engine errors become Stripe's error answers in ``_stripe_api.api``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from paygate.errors import PaygateError
from paygate.money import Money
from paygate.sandbox._stripe_api import (
    Endpoint,
    StripeAPIError,
    _bool,
    _expand,
    _int,
    _intent_record,
    _metadata,
    _money,
    _objects,
    _pm,
    _str,
    _wire,
    invalid,
    missing,
    render_intent,
)
from paygate.sandbox.stripe import engine_token

if TYPE_CHECKING:
    from paygate.sandbox.stripe import StripeFace

JSON = dict[str, Any]


# == payment intents =============================================================================


def create_intent(face: StripeFace, params: JSON) -> JSON:
    amount = _int(params, "amount", required=True)
    currency = _str(params, "currency", required=True)
    assert amount is not None and currency is not None
    money = _money(amount, currency)
    capture = _str(params, "capture_method") or "automatic"
    if capture not in ("automatic", "automatic_async", "manual"):
        raise invalid(f"Invalid capture_method: {capture:.20}", param="capture_method")
    metadata = _metadata(params)
    method = _str(params, "payment_method")
    confirm = _bool(params, "confirm")
    token = engine_token(method) if method and confirm else None
    engine = face.engine()
    customer = _str(params, "customer")
    if customer is not None and customer not in engine._objects:
        raise missing("customer", customer, "customer")
    try:
        payment = engine.create_payment(
            order_id=metadata.get("order_id") or "-",
            amount=money,
            payment_method=None,
            idempotency_key=face.state.internal_key(),
            customer_id=customer,
            description=_str(params, "description"),
            metadata=metadata,
            capture="manual" if capture == "manual" else "automatic",
            return_url=_str(params, "return_url"),
        )
    except PaygateError as exc:
        raise invalid(str(exc)) from None
    record = engine._objects[payment.id]
    wire = _wire(face, "payment", record["id"])
    if isinstance(params.get("automatic_payment_methods"), dict):
        apm = params["automatic_payment_methods"]
        wire["automatic_payment_methods"] = {
            "enabled": _bool(apm, "enabled"),
            "allow_redirects": apm.get("allow_redirects", "always"),
        }
    if method:
        wire["payment_method"] = _pm(face, method)
    if token is not None:
        engine.confirm_payment(record["id"], token)
    return render_intent(face, record, _expand(params))


def retrieve_intent(face: StripeFace, params: JSON, intent: str) -> JSON:
    return render_intent(face, _intent_record(face.engine(), intent), _expand(params))


def confirm_intent(face: StripeFace, params: JSON, intent: str) -> JSON:
    engine = face.engine()
    record = _intent_record(engine, intent)
    method = _str(params, "payment_method") or _wire(face, "payment", record["id"]).get(
        "payment_method"
    )
    if not method:
        raise invalid(
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            code="payment_intent_unexpected_state",
        )
    if params.get("return_url"):
        record["return_url"] = params["return_url"]
    token = engine_token(method)
    _wire(face, "payment", record["id"])["payment_method"] = _pm(face, method)
    engine.confirm_payment(record["id"], token)
    return render_intent(face, record, _expand(params))


def capture_intent(face: StripeFace, params: JSON, intent: str) -> JSON:
    engine = face.engine()
    record = _intent_record(engine, intent)
    to_capture = _int(params, "amount_to_capture")
    amount = (
        None if to_capture is None else _money(to_capture, record["currency"], "amount_to_capture")
    )
    engine.capture_payment(record["id"], amount=amount, idempotency_key=face.state.internal_key())
    return render_intent(face, record, _expand(params))


def cancel_intent(face: StripeFace, params: JSON, intent: str) -> JSON:
    engine = face.engine()
    record = _intent_record(engine, intent)
    engine.cancel_payment(record["id"], idempotency_key=face.state.internal_key())
    wire = _wire(face, "payment", record["id"])
    wire["canceled_at"] = engine._now()
    wire["cancellation_reason"] = _str(params, "cancellation_reason") or "requested_by_customer"
    return render_intent(face, record, _expand(params))


ROUTES: Final[list[tuple[str, tuple[str, ...], Endpoint, frozenset[str]]]] = [
    (
        "/v1/payment_intents",
        ("POST",),
        create_intent,
        frozenset(
            {
                "amount",
                "currency",
                "capture_method",
                "metadata",
                "customer",
                "description",
                "payment_method",
                "confirm",
                "return_url",
                "automatic_payment_methods",
                "payment_method_types",
                "receipt_email",
                "statement_descriptor_suffix",
            }
        ),
    ),
    ("/v1/payment_intents/<intent>", ("GET",), retrieve_intent, frozenset()),
    (
        "/v1/payment_intents/<intent>/confirm",
        ("POST",),
        confirm_intent,
        frozenset({"payment_method", "return_url"}),
    ),
    (
        "/v1/payment_intents/<intent>/capture",
        ("POST",),
        capture_intent,
        frozenset({"amount_to_capture"}),
    ),
    (
        "/v1/payment_intents/<intent>/cancel",
        ("POST",),
        cancel_intent,
        frozenset({"cancellation_reason"}),
    ),
]


# == the hosted pages' form actions ================================================================


def register_page_actions(face: StripeFace) -> None:
    """``POST /checkout/<session_id>/pay`` (field ``card``: a test card number or a test
    payment method) and ``POST /3ds/<intent_id>/complete`` (field ``result``:
    ``authenticate`` or ``fail``): what the hosted pages' forms post. Both answer 303 to
    where a browser goes next; a declined card goes back to the Checkout page with
    ``?error=<decline code>``."""

    def pay(request: Request, session_id: str) -> Response:
        card = request.form.get("card", "")
        try:
            target = face.pay_checkout(session_id, card)
        except StripeAPIError as exc:
            return _page_error(face, session_id, str(exc.body.get("code") or "invalid"), exc.status)
        except PaygateError as exc:
            code = getattr(exc, "decline_code", None) or getattr(exc, "code", None) or "invalid"
            return redirect(f"{face.checkout_url(session_id)}?error={code}", 303)
        return redirect(target, 303)

    def challenge(request: Request, intent_id: str) -> Response:
        success = request.form.get("result", "authenticate") == "authenticate"
        try:
            target = face.complete_challenge(intent_id, success=success)
        except (StripeAPIError, PaygateError) as exc:
            return Response(f"3-D Secure could not complete: {exc}", 400, mimetype="text/plain")
        return redirect(target, 303)

    face.sandbox.route("/checkout/<session_id>/pay", pay, methods=("POST",))
    face.sandbox.route("/3ds/<intent_id>/complete", challenge, methods=("POST",))


def _page_error(face: StripeFace, session_id: str, code: str, status: int) -> Response:
    if status == 404:
        return Response(f"no such checkout session: {session_id:.80}", 404, mimetype="text/plain")
    return redirect(f"{face.checkout_url(session_id)}?error={code}", 303)


__all__ = ["ROUTES", "register_page_actions"]
_unused = (Money, _objects)
