"""The Stripe face's endpoints: ``(rule, methods, endpoint, accepted parameters)``.

Each endpoint runs inside the state's transaction with the parsed parameters and returns
the Stripe object; engine errors become Stripe's error answers in ``_stripe_api.api``.
"""

from __future__ import annotations

import operator
import secrets
from typing import TYPE_CHECKING, Any, Final

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from paygate._iso4217 import EXPONENTS
from paygate.errors import CardDeclined, PaygateError
from paygate.models import EventType, LineItem
from paygate.money import Money
from paygate.sandbox import _stripe_methods
from paygate.sandbox._stripe_api import (
    Endpoint,
    StripeAPIError,
    _amount,
    _bool,
    _expand,
    _int,
    _intent_record,
    _line_items,
    _metadata,
    _money,
    _objects,
    _price_object,
    _str,
    _wire,
    balance_transactions,
    charge_id_of,
    emit,
    invalid,
    missing,
    remember_method,
    render_charge,
    render_customer,
    render_dispute,
    render_intent,
    render_invoice,
    render_price,
    render_refund,
    render_session,
    render_subscription,
)
from paygate.sandbox.stripe import TEST_PAYMENT_METHODS, engine_token, to_engine_id

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
    off_session = _bool(params, "off_session")
    engine = face.engine()
    customer = _str(params, "customer")
    if customer is not None and customer not in engine._objects:
        raise missing("customer", customer, "customer", 400)
    saved = engine._objects.get(method) if method else None
    if saved is not None and saved.get("object") == "payment_method":
        return _charge_saved(face, params, money, capture, metadata, saved, confirm, off_session)
    token = _method_token(method) if method else None  # an unknown method is refused now
    if off_session and not confirm:
        raise invalid("off_session can only be used with confirm=true.", param="off_session")
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
        remember_method(face, record["id"], method)
    if token is not None and confirm:
        if off_session:  # no one to authenticate: 3-D Secure cards fail at once
            engine._attempt(record, token, off_session=True)
        else:
            engine.confirm_payment(record["id"], token)
    return render_intent(face, record, _expand(params))


def _charge_saved(
    face: StripeFace,
    params: JSON,
    money: Money,
    capture: str,
    metadata: dict[str, str],
    saved: JSON,
    confirm: bool,
    off_session: bool,
) -> JSON:
    """A PaymentIntent for a saved PaymentMethod: the engine's own saved-method charge (the
    method must be attached to ``customer``; off session, a card that wants 3-D Secure is
    declined with ``authentication_required``)."""
    engine = face.engine()
    customer = _str(params, "customer")
    if saved["customer_id"] is None or saved["customer_id"] != customer:
        raise invalid(
            "The provided PaymentMethod was previously used with a PaymentIntent without "
            "Customer attachment, shared with a connected account without Customer "
            "attachment, or was detached from a Customer. It may not be used again. To use "
            "a PaymentMethod multiple times, you must attach it to a Customer first."
            if saved["customer_id"] is None
            else "The provided PaymentMethod belongs to another Customer"
            if customer
            else "The provided PaymentMethod is attached to a Customer: pass `customer`.",
            code="payment_method_unexpected_state" if saved["customer_id"] is None else None,
            param="payment_method",
        )
    if off_session and not confirm:
        raise invalid("off_session can only be used with confirm=true.", param="off_session")
    kwargs: dict[str, Any] = {
        "order_id": metadata.get("order_id") or "-",
        "amount": money,
        "idempotency_key": face.state.internal_key(),
        "customer_id": customer,
        "description": _str(params, "description"),
        "metadata": metadata,
        "capture": "manual" if capture == "manual" else "automatic",
        "return_url": _str(params, "return_url"),
    }
    if not confirm:
        payment = engine.create_payment(payment_method=None, **kwargs)
        _remember_saved(face, payment.id, saved)
        return render_intent(face, engine._objects[payment.id], _expand(params))
    try:
        payment = engine.create_payment(
            payment_method=saved["id"], off_session=off_session, **kwargs
        )
    except CardDeclined as exc:
        if exc.payment_id:
            _remember_saved(face, exc.payment_id, saved)
        raise
    _remember_saved(face, payment.id, saved)
    return render_intent(face, engine._objects[payment.id], _expand(params))


def _remember_saved(face: StripeFace, payment_id: str, saved: JSON) -> None:
    wire = _wire(face, "payment", payment_id)
    wire["payment_method"] = saved["id"]
    wire["token"] = saved["charges_as"]
    wire["refund_fails"] = False


def _method_token(method: str) -> str:
    """The engine token of a PaymentMethod id or token given to the API (card numbers are
    for the hosted page): an unknown one is 400 ``resource_missing``, as at Stripe."""
    if method not in TEST_PAYMENT_METHODS:
        raise missing("PaymentMethod", method, "payment_method", 400)
    return engine_token(method)


def retrieve_intent(face: StripeFace, params: JSON, intent: str) -> JSON:
    return render_intent(face, _intent_record(face.engine(), intent), _expand(params))


def confirm_intent(face: StripeFace, params: JSON, intent: str) -> JSON:
    engine = face.engine()
    record = _intent_record(engine, intent)
    method = _str(params, "payment_method")
    wire = _wire(face, "payment", record["id"])
    if method:
        token = _method_token(method)
        remember_method(face, record["id"], method)
    elif wire.get("token"):  # the method given at creation
        token = wire["token"]
    else:
        raise invalid(
            "You cannot confirm this PaymentIntent because it's missing a payment method.",
            code="payment_intent_unexpected_state",
        )
    if params.get("return_url"):
        record["return_url"] = params["return_url"]
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


def list_intents(face: StripeFace, params: JSON) -> JSON:
    records = _objects(face.engine(), "payment")
    customer = _str(params, "customer")
    if customer:
        records = [r for r in records if r.get("customer_id") == customer]
    return _page(face, params, [render_intent(face, r) for r in records], "/v1/payment_intents")


# == lists ======================================================================================


def _page(face: StripeFace, params: JSON, items: list[JSON], url: str) -> JSON:
    """A Stripe list: newest first, ``limit`` (default 10, at most 100), ``starting_after``,
    ``created[gte|gt|lte|lt]``."""
    limit = _int(params, "limit") or 10
    if not 1 <= limit <= 100:
        raise invalid("limit must be between 1 and 100", param="limit")
    created = params.get("created")
    if isinstance(created, dict):
        for op, test in (
            ("gte", operator.ge),
            ("gt", operator.gt),
            ("lte", operator.le),
            ("lt", operator.lt),
        ):
            bound = _int(created, op)
            if bound is not None:
                items = [i for i in items if test(i["created"], bound)]
    elif created not in (None, ""):
        exact = _int(params, "created")
        items = [i for i in items if i["created"] == exact]
    # newest first; ties keep creation order reversed (ids are random, so use position)
    ordered = [
        item for _, item in sorted(enumerate(items), key=lambda p: (-p[1]["created"], -p[0]))
    ]
    after = _str(params, "starting_after")
    if after:
        ids = [i["id"] for i in ordered]
        if after not in ids:
            raise missing("object", after, "starting_after")
        ordered = ordered[ids.index(after) + 1 :]
    return {
        "object": "list",
        "data": ordered[:limit],
        "has_more": len(ordered) > limit,
        "url": url,
    }


# == refunds, charges ============================================================================


def create_refund(face: StripeFace, params: JSON) -> JSON:
    engine = face.engine()
    intent = _str(params, "payment_intent")
    charge = _str(params, "charge")
    if intent:
        record = _intent_record(engine, intent)
    elif charge:
        found = [r for r in _objects(engine, "payment") if r.get("charge_id") == charge]
        if not found:
            raise missing("charge", charge, "charge")
        record = found[0]
    else:
        raise invalid(
            "One of the following params should be provided for this request: "
            "payment_intent or charge.",
            code="parameter_missing",
        )
    reason = _str(params, "reason")
    if reason is not None and reason not in ("duplicate", "fraudulent", "requested_by_customer"):
        raise invalid(
            f"Invalid reason: {reason:.40}", code="parameter_invalid_string", param="reason"
        )
    value = _int(params, "amount")
    amount = None if value is None else _money(value, record["currency"])
    refund = engine.refund_payment(
        record["id"], amount=amount, reason=reason, idempotency_key=face.state.internal_key()
    )
    wire = _wire(face, "refund", refund.id)
    wire["metadata"] = _metadata(params)
    wire["reason"] = reason
    answer = render_refund(face, engine._objects[refund.id])
    if _wire(face, "payment", record["id"]).get("refund_fails"):
        # Stripe's refund-failure test card: the refund succeeds, then fails (refund.failed)
        engine.fail_refund(refund.id, reason="expired_or_canceled_card")
    return answer


def _refund_record(face: StripeFace, refund_id: str) -> JSON:
    try:
        return face.engine()._get("refund", refund_id)
    except PaygateError:
        raise missing("refund", refund_id, "refund") from None


def retrieve_refund(face: StripeFace, params: JSON, refund: str) -> JSON:
    return render_refund(face, _refund_record(face, refund))


def list_refunds(face: StripeFace, params: JSON) -> JSON:
    engine = face.engine()
    refunds = _objects(engine, "refund")
    intent, charge = _str(params, "payment_intent"), _str(params, "charge")
    if intent:
        refunds = [r for r in refunds if r["payment_id"] == to_engine_id(intent)]
    if charge:
        refunds = [
            r for r in refunds if engine._objects[r["payment_id"]].get("charge_id") == charge
        ]
    return _page(face, params, [render_refund(face, r) for r in refunds], "/v1/refunds")


def retrieve_charge(face: StripeFace, params: JSON, charge: str) -> JSON:
    found = [r for r in _objects(face.engine(), "payment") if charge_id_of(r) == charge]
    if not found:
        raise missing("charge", charge, "charge")
    return render_charge(face, found[0], with_refunds="refunds" in _expand(params))


# == customers ==================================================================================


def create_customer(face: StripeFace, params: JSON) -> JSON:
    engine = face.engine()
    customer = engine.create_customer(
        email=_str(params, "email"),
        name=_str(params, "name"),
        metadata=_metadata(params),
        idempotency_key=face.state.internal_key(),
    )
    wire = _wire(face, "customer", customer.id)
    wire["description"] = _str(params, "description")
    wire["phone"] = _str(params, "phone")
    return render_customer(face, engine._objects[customer.id])


def _customer_record(face: StripeFace, customer: str, status: int = 404) -> JSON:
    try:
        return face.engine()._get("customer", customer)
    except PaygateError:
        raise missing("customer", customer, "customer", status) from None


# == prices =====================================================================================


def create_price(face: StripeFace, params: JSON) -> JSON:
    currency = _str(params, "currency", required=True)
    unit = _int(params, "unit_amount", required=True)
    assert currency is not None and unit is not None
    money = _money(unit, currency, "unit_amount")
    recurring = params.get("recurring")
    if recurring is not None and not isinstance(recurring, dict):
        raise invalid("Invalid object", code="parameter_invalid_object", param="recurring")
    product = _str(params, "product")
    product_data = params.get("product_data")
    if product is None:
        product = "prod_" + secrets.token_hex(7)
        if isinstance(product_data, dict):
            face.state.records("stripe", "product")[product] = dict(product_data)
    price_id = "price_" + secrets.token_hex(12)
    engine = face.engine()
    engine.define_price(price_id, money)
    price = _price_object(price_id, money, recurring, product, engine._now())
    price["metadata"] = _metadata(params)
    price["nickname"] = _str(params, "nickname")
    face.state.records("stripe", "price")[price_id] = price
    return price


def retrieve_price(face: StripeFace, params: JSON, price: str) -> JSON:
    try:
        return render_price(face, price)
    except PaygateError:
        raise missing("price", price, "price") from None


# == checkout sessions ==========================================================================


def create_session(face: StripeFace, params: JSON) -> JSON:
    mode = _str(params, "mode", required=True)
    success_url = _str(params, "success_url", required=True)
    cancel_url = _str(params, "cancel_url") or success_url
    assert mode is not None and success_url is not None and cancel_url is not None
    if mode == "setup":
        return _stripe_methods.create_setup_session(face, params, success_url, cancel_url)
    metadata = _metadata(params)
    reference = _str(params, "client_reference_id")
    customer = _str(params, "customer")
    if customer:
        _customer_record(face, customer, 400)
    items = params.get("line_items")
    engine = face.engine()
    price_id = None
    lines = []
    if mode == "subscription":
        first = items[0] if isinstance(items, list) and items else {}
        price_id = first.get("price") if isinstance(first, dict) else None
        if not price_id:
            raise invalid(
                "You must provide at least one recurring price in `subscription` mode.",
                param="line_items",
            )
        retrieve_price(face, {}, price_id)
    elif mode == "payment":
        if not isinstance(items, list) or not items:
            raise invalid("line_items is required in payment mode.", param="line_items")
        for index, item in enumerate(items):
            if isinstance(item, dict) and item.get("price"):
                price = retrieve_price(face, {}, str(item["price"]))
                lines.append(
                    LineItem(
                        name=str(price.get("nickname") or price["id"]),
                        unit_amount=_money(price["unit_amount"], price["currency"]),
                        quantity=_int(item, "quantity") or 1,
                    )
                )
            else:
                lines.extend(_line_items([item], index))
    else:
        raise invalid(f"Invalid mode: {mode:.20}", param="mode")
    order_id = reference or metadata.get("order_id") or "-"
    session = engine.create_checkout_session(
        order_id=order_id,
        line_items=lines,
        success_url=success_url,
        cancel_url=cancel_url,
        idempotency_key=face.state.internal_key(),
        mode="subscription" if mode == "subscription" else "payment",
        customer_id=customer,
        price_id=price_id,
        metadata=metadata,
    )
    record = engine._objects[session.id]
    intent_data = params.get("payment_intent_data")
    if isinstance(intent_data, dict) and intent_data.get("metadata"):
        record["metadata"] = {**record["metadata"], **_metadata(intent_data)}
    wire = _wire(face, "checkout_session", session.id)
    wire["client_reference_id"] = reference
    wire["customer_email"] = _str(params, "customer_email")
    wire["session_metadata"] = metadata
    return render_session(face, record, _expand(params))


def _session_record(face: StripeFace, session: str) -> JSON:
    try:
        return face.engine()._session(session)
    except PaygateError:
        raise missing("checkout.session", session, "session") from None


def retrieve_session(face: StripeFace, params: JSON, session: str) -> JSON:
    setup = _stripe_methods.setup_sessions(face).get(session)
    if setup is not None:
        return _stripe_methods.render_setup_session(face, setup, _expand(params))
    return render_session(face, _session_record(face, session), _expand(params))


def expire_session(face: StripeFace, params: JSON, session: str) -> JSON:
    setup = _stripe_methods.setup_sessions(face).get(session)
    if setup is not None:
        return _stripe_methods.expire_setup_session(face, setup)
    record = _session_record(face, session)
    face.engine().expire_checkout(record["id"])
    return render_session(face, record, _expand(params))


def session_line_items(face: StripeFace, params: JSON, session: str) -> JSON:
    listing = render_session(face, _session_record(face, session), {"line_items"})["line_items"]
    return _page(face, params, [{**i, "created": 0} for i in listing["data"]], listing["url"]) | {
        "data": listing["data"][: _int(params, "limit") or 10]
    }


# == subscriptions ==============================================================================


def create_subscription(face: StripeFace, params: JSON) -> JSON:
    customer = _str(params, "customer", required=True)
    assert customer is not None
    _customer_record(face, customer, 400)
    items = params.get("items")
    first = items[0] if isinstance(items, list) and items else None
    price_id = first.get("price") if isinstance(first, dict) else None
    if not price_id:
        raise invalid("Missing required param: items[0][price].", param="items")
    retrieve_price(face, {}, price_id)
    engine = face.engine()
    subscription = engine.create_subscription(
        customer_id=customer,
        price_id=price_id,
        metadata=_metadata(params),
        idempotency_key=face.state.internal_key(),
    )
    return render_subscription(face, engine._objects[subscription.id])


def _subscription_record(face: StripeFace, subscription: str) -> JSON:
    try:
        return face.engine()._get("subscription", subscription)
    except PaygateError:
        raise missing("subscription", subscription, "subscription") from None


def retrieve_subscription(face: StripeFace, params: JSON, subscription: str) -> JSON:
    return render_subscription(face, _subscription_record(face, subscription))


def update_subscription(face: StripeFace, params: JSON, subscription: str) -> JSON:
    engine = face.engine()
    record = _subscription_record(face, subscription)
    changed = False
    if "metadata" in params:
        record["metadata"] = {**record["metadata"], **_metadata(params)}
        changed = True
    if "cancel_at_period_end" in params:
        wanted = _bool(params, "cancel_at_period_end")
        if wanted and not record["cancel_at_period_end"]:
            engine.cancel_subscription(record["id"], at_period_end=True)
        elif not wanted and record["cancel_at_period_end"]:
            record["cancel_at_period_end"] = False
            changed = True
    if changed:
        engine._emit(EventType.SUBSCRIPTION_UPDATED, record)
    return render_subscription(face, record)


def cancel_subscription(face: StripeFace, params: JSON, subscription: str) -> JSON:
    record = _subscription_record(face, subscription)
    face.engine().cancel_subscription(record["id"])
    return render_subscription(face, record)


# == invoices ===================================================================================
# Stripe builds an invoice in steps (a draft, its items, finalize, then send or pay); the
# engine makes one from its lines at once, so the draft lives in the sandbox's records
# until it is finalized, then becomes the engine's invoice under the same id.


def create_invoice(face: StripeFace, params: JSON) -> JSON:
    customer = _str(params, "customer", required=True)
    assert customer is not None
    _customer_record(face, customer, 400)
    collection = _str(params, "collection_method") or "charge_automatically"
    if collection not in ("charge_automatically", "send_invoice"):
        raise invalid(f"Invalid collection_method: {collection:.30}", param="collection_method")
    if collection == "send_invoice" and _int(params, "days_until_due") is None:
        raise invalid(
            "Missing required param: days_until_due (with collection_method=send_invoice).",
            param="days_until_due",
        )
    invoice_id = "in_" + secrets.token_hex(12)
    draft: JSON = {
        "object": "invoice",
        "id": invoice_id,
        "customer_id": customer,
        "subscription_id": None,
        "status": "draft",
        "currency": (_str(params, "currency") or "usd").upper(),
        "amount_due": 0,
        "amount_paid": 0,
        "order_id": _metadata(params).get("order_id"),
        "description": _str(params, "description"),
        "number": None,
        "payment_id": None,
        "lines": [],
        "due_at": None,
        "created": face.engine()._now(),
    }
    if draft["currency"] not in EXPONENTS:
        raise invalid(f"Invalid currency: {draft['currency']:.10}", param="currency")
    face.state.records("stripe", "invoice_draft")[invoice_id] = draft
    wire = _wire(face, "invoice", invoice_id)
    wire["metadata"] = _metadata(params)
    wire["collection_method"] = collection
    wire["days_until_due"] = _int(params, "days_until_due")
    data = render_invoice(face, draft)
    emit(face, "invoice.created", data, created=draft["created"])
    return data


def _invoice_record(face: StripeFace, invoice: str) -> JSON:
    """The engine's invoice behind a Stripe id, or the draft still in the records."""
    draft = face.state.records("stripe", "invoice_draft").get(invoice)
    engine = face.engine()
    if draft is not None:
        engine_id = draft.get("engine_id")
        return draft if engine_id is None else engine._objects[engine_id]
    try:
        return engine._get("invoice", invoice)
    except PaygateError:
        raise missing("invoice", invoice, "invoice") from None


def create_invoice_item(face: StripeFace, params: JSON) -> JSON:
    customer = _str(params, "customer", required=True)
    invoice = _str(params, "invoice", required=True)
    assert customer is not None and invoice is not None
    record = _invoice_record(face, invoice)
    if record["status"] != "draft" or record.get("engine_id"):
        raise invalid(f"Invoice {invoice} is not a draft.", code="invoice_not_editable")
    currency = (_str(params, "currency") or record["currency"]).upper()
    if currency != record["currency"]:
        raise invalid("The invoice item's currency must be the invoice's.", param="currency")
    quantity = _int(params, "quantity") or 1
    unit = _int(params, "unit_amount")
    decimal = _str(params, "unit_amount_decimal")
    amount = _int(params, "amount")
    if unit is None and decimal is not None:
        try:
            unit = int(decimal)
        except ValueError:
            raise invalid(
                "unit_amount_decimal must be a whole number of minor units",
                param="unit_amount_decimal",
            ) from None
    if unit is None and amount is not None:
        unit, quantity = amount, 1
    if unit is None:
        raise invalid("Missing required param: amount or unit_amount.", param="amount")
    money = _money(unit, currency, "unit_amount")
    line = {
        "name": _str(params, "description") or "item",
        "unit_amount": money.amount,
        "currency": money.currency,
        "quantity": quantity,
        "description": _str(params, "description"),
    }
    record["lines"].append(line)
    record["amount_due"] += money.amount * quantity
    item_id = "ii_" + secrets.token_hex(12)
    return {
        "id": item_id,
        "object": "invoiceitem",
        "amount": _amount(Money(money.amount * quantity, currency)),
        "currency": currency.lower(),
        "customer": customer,
        "date": record["created"],
        "description": line["description"],
        "discountable": True,
        "invoice": invoice,
        "livemode": False,
        "metadata": _metadata(params),
        "quantity": quantity,
    }


def retrieve_invoice(face: StripeFace, params: JSON, invoice: str) -> JSON:
    return render_invoice(face, _invoice_record(face, invoice), _expand(params))


def finalize_invoice(face: StripeFace, params: JSON, invoice: str) -> JSON:
    record = _invoice_record(face, invoice)
    if record["status"] != "draft":
        raise invalid(f"Invoice {invoice} is already finalized.", code="invoice_not_editable")
    if not record["lines"]:
        raise invalid(
            "You can't finalize an invoice without line items.", code="invoice_no_line_items"
        )
    engine = face.engine()
    created = engine.create_invoice(
        customer_id=record["customer_id"],
        line_items=[
            LineItem(
                name=line["name"],
                unit_amount=Money(line["unit_amount"], line["currency"]),
                quantity=line["quantity"],
                description=line["description"],
            )
            for line in record["lines"]
        ],
        order_id=record["order_id"],
        description=record["description"],
        send=True,
        idempotency_key=face.state.internal_key(),
    )
    record["engine_id"] = created.id
    face.state.records("stripe", "invoice_alias")[created.id] = {"id": invoice}
    return render_invoice(face, engine._objects[created.id], _expand(params))


def send_invoice(face: StripeFace, params: JSON, invoice: str) -> JSON:
    record = _invoice_record(face, invoice)
    if record["status"] != "open":
        raise invalid(
            f"Invoice {invoice} is {record['status']}, not open.", code="invoice_not_editable"
        )
    return render_invoice(face, record, _expand(params))


def pay_invoice(face: StripeFace, params: JSON, invoice: str) -> JSON:
    record = _invoice_record(face, invoice)
    if record["status"] == "draft":
        record = _invoice_record(face, finalize_invoice(face, {}, invoice)["id"])
    if record["status"] != "open":
        raise invalid(f"Invoice is already {record['status']}.", code="invoice_unexpected_state")
    method = _str(params, "payment_method") or "pm_card_visa"
    face.engine().pay_invoice(record["id"], payment_method=_method_token(method))
    return render_invoice(face, record, _expand(params))


# == disputes ===================================================================================


def _dispute_record(face: StripeFace, dispute: str) -> JSON:
    try:
        return face.engine()._get("dispute", dispute)
    except PaygateError:
        raise missing("dispute", dispute, "dispute") from None


def retrieve_dispute(face: StripeFace, params: JSON, dispute: str) -> JSON:
    return render_dispute(face, _dispute_record(face, dispute))


def list_disputes(face: StripeFace, params: JSON) -> JSON:
    engine = face.engine()
    disputes = _objects(engine, "dispute")
    intent, charge = _str(params, "payment_intent"), _str(params, "charge")
    if intent:
        disputes = [d for d in disputes if d["payment_id"] == to_engine_id(intent)]
    if charge:
        disputes = [
            d for d in disputes if engine._objects[d["payment_id"]].get("charge_id") == charge
        ]
    return _page(face, params, [render_dispute(face, d) for d in disputes], "/v1/disputes")


def update_dispute(face: StripeFace, params: JSON, dispute: str) -> JSON:
    """Evidence as in Stripe's test mode: ``winning_evidence`` in
    ``evidence[uncategorized_text]`` wins the dispute, ``losing_evidence`` loses it; other
    submitted evidence puts it under review."""
    engine = face.engine()
    record = _dispute_record(face, dispute)
    if record["status"] not in ("open", "under_review"):
        raise invalid(
            f"This dispute is already closed ({record['status']}).", code="dispute_already_closed"
        )
    evidence: Any = params.get("evidence")
    if not isinstance(evidence, dict):
        evidence = {}
    text = str(evidence.get("uncategorized_text") or "")
    if "winning_evidence" in text:
        engine.resolve_dispute(record["id"], won=True)
    elif "losing_evidence" in text:
        engine.resolve_dispute(record["id"], won=False)
    elif evidence or _bool(params, "submit"):
        record["status"] = "under_review"
        engine._emit(EventType.DISPUTE_UPDATED, record)
    return render_dispute(face, record)


def close_dispute(face: StripeFace, params: JSON, dispute: str) -> JSON:
    record = _dispute_record(face, dispute)
    if record["status"] not in ("open", "under_review"):
        raise invalid(
            f"This dispute is already closed ({record['status']}).", code="dispute_already_closed"
        )
    face.engine().resolve_dispute(record["id"], won=False)
    return render_dispute(face, record)


# == balance transactions, events, webhook endpoints ============================================


def list_balance_transactions(face: StripeFace, params: JSON) -> JSON:
    expand = _expand(params)
    rows = balance_transactions(
        face,
        expand_source="data.source" in expand,
        expand_charge="data.source.charge" in expand,
    )
    source = _str(params, "source")
    if source:
        rows = [
            r
            for r in rows
            if r["source"] == source
            or (isinstance(r["source"], dict) and r["source"]["id"] == source)
        ]
    kind = _str(params, "type")
    if kind:
        rows = [r for r in rows if r["type"] == kind]
    return _page(face, params, rows, "/v1/balance_transactions")


def retrieve_event(face: StripeFace, params: JSON, event: str) -> JSON:
    try:
        found = face.sandbox.bus.get(event)
    except PaygateError:
        raise missing("event", event, "id") from None
    if found.provider != "stripe":
        raise missing("event", event, "id")
    return found.payload()


def list_events(face: StripeFace, params: JSON) -> JSON:
    kind = _str(params, "type")
    events = [e.payload() for e in face.sandbox.bus.events("stripe", limit=10_000)]
    if kind:
        events = [e for e in events if e["type"] == kind]
    return _page(face, params, list(reversed(events)), "/v1/events")


def create_webhook_endpoint(face: StripeFace, params: JSON) -> JSON:
    url = _str(params, "url", required=True)
    assert url is not None
    if not url.startswith(("http://", "https://")):
        raise invalid("Invalid URL: must be http(s)", param="url")
    face.sandbox.bus.add_endpoint("stripe", url)
    events = params.get("enabled_events") or ["*"]
    endpoint_id = "we_" + secrets.token_hex(12)
    endpoint = {
        "id": endpoint_id,
        "object": "webhook_endpoint",
        "api_version": _str(params, "api_version"),
        "application": None,
        "created": face.engine()._now(),
        "description": _str(params, "description"),
        "enabled_events": events if isinstance(events, list) else [events],
        "livemode": False,
        "metadata": _metadata(params),
        "status": "enabled",
        "url": url,
    }
    face.state.records("stripe", "webhook_endpoint")[endpoint_id] = endpoint
    # Stripe shows the secret once, on creation; the sandbox has one for all endpoints
    return {**endpoint, "secret": face.webhook_secret}


def list_webhook_endpoints(face: StripeFace, params: JSON) -> JSON:
    endpoints = list(face.state.records("stripe", "webhook_endpoint").values())
    return _page(face, params, endpoints, "/v1/webhook_endpoints")


def _p(*names: str) -> frozenset[str]:
    return frozenset(names)


ROUTES: Final[list[tuple[str, tuple[str, ...], Endpoint, frozenset[str]]]] = [
    ("/v1/payment_intents", ("POST",), create_intent, _p(
        "amount", "currency", "capture_method", "metadata", "customer", "description",
        "payment_method", "confirm", "return_url", "automatic_payment_methods",
        "receipt_email", "statement_descriptor_suffix", "off_session",
    )),
    ("/v1/payment_intents", ("GET",), list_intents,
     _p("customer", "created", "limit", "starting_after")),
    ("/v1/payment_intents/<intent>", ("GET",), retrieve_intent, _p("client_secret")),
    ("/v1/payment_intents/<intent>/confirm", ("POST",), confirm_intent,
     _p("payment_method", "return_url")),
    ("/v1/payment_intents/<intent>/capture", ("POST",), capture_intent, _p("amount_to_capture")),
    ("/v1/payment_intents/<intent>/cancel", ("POST",), cancel_intent, _p("cancellation_reason")),
    ("/v1/refunds", ("POST",), create_refund,
     _p("payment_intent", "charge", "amount", "reason", "metadata")),
    ("/v1/refunds", ("GET",), list_refunds,
     _p("payment_intent", "charge", "created", "limit", "starting_after")),
    ("/v1/refunds/<refund>", ("GET",), retrieve_refund, _p()),
    ("/v1/charges/<charge>", ("GET",), retrieve_charge, _p()),
    ("/v1/customers", ("POST",), create_customer,
     _p("email", "name", "metadata", "description", "phone")),
    ("/v1/customers", ("GET",), _stripe_methods.list_customers,
     _p("email", "created", "limit", "starting_after")),
    ("/v1/customers/<customer>", ("GET",), _stripe_methods.retrieve_customer, _p()),
    ("/v1/customers/<customer>", ("POST",), _stripe_methods.update_customer,
     _p("email", "name", "metadata", "description", "phone", "invoice_settings")),
    ("/v1/customers/<customer>", ("DELETE",), _stripe_methods.delete_customer, _p()),
    ("/v1/customers/<customer>/payment_methods", ("GET",), _stripe_methods.list_customer_methods,
     _p("type", "limit", "starting_after")),
    ("/v1/payment_methods/<method>", ("GET",), _stripe_methods.retrieve_method, _p()),
    ("/v1/payment_methods/<method>/detach", ("POST",), _stripe_methods.detach_method, _p()),
    ("/v1/setup_intents", ("POST",), _stripe_methods.create_setup_intent, _p(
        "customer", "usage", "payment_method", "confirm", "return_url",
        "automatic_payment_methods", "metadata", "description",
    )),
    ("/v1/setup_intents/<intent>", ("GET",), _stripe_methods.retrieve_setup_intent,
     _p("client_secret")),
    ("/v1/setup_intents/<intent>/confirm", ("POST",), _stripe_methods.confirm_setup_intent,
     _p("payment_method", "return_url")),
    ("/v1/prices", ("POST",), create_price, _p(
        "currency", "unit_amount", "recurring", "product", "product_data", "nickname", "metadata",
    )),
    ("/v1/prices/<price>", ("GET",), retrieve_price, _p()),
    ("/v1/checkout/sessions", ("POST",), create_session, _p(
        "mode", "success_url", "cancel_url", "client_reference_id", "metadata", "customer",
        "customer_email", "line_items", "payment_intent_data", "subscription_data",
        "allowed_payment_method_types",
    )),
    ("/v1/checkout/sessions/<session>", ("GET",), retrieve_session, _p()),
    ("/v1/checkout/sessions/<session>/expire", ("POST",), expire_session, _p()),
    ("/v1/checkout/sessions/<session>/line_items", ("GET",), session_line_items,
     _p("limit", "starting_after")),
    ("/v1/subscriptions", ("POST",), create_subscription, _p(
        "customer", "items", "metadata", "payment_behavior", "default_payment_method",
    )),
    ("/v1/subscriptions/<subscription>", ("GET",), retrieve_subscription, _p()),
    ("/v1/subscriptions/<subscription>", ("POST",), update_subscription,
     _p("cancel_at_period_end", "metadata")),
    ("/v1/subscriptions/<subscription>", ("DELETE",), cancel_subscription,
     _p("invoice_now", "prorate")),
    ("/v1/invoices", ("POST",), create_invoice, _p(
        "customer", "currency", "auto_advance", "pending_invoice_items_behavior",
        "collection_method", "days_until_due", "description", "metadata",
    )),
    ("/v1/invoices/<invoice>", ("GET",), retrieve_invoice, _p()),
    ("/v1/invoices/<invoice>/finalize", ("POST",), finalize_invoice, _p("auto_advance")),
    ("/v1/invoices/<invoice>/send", ("POST",), send_invoice, _p()),
    ("/v1/invoices/<invoice>/pay", ("POST",), pay_invoice, _p("payment_method")),
    ("/v1/invoiceitems", ("POST",), create_invoice_item, _p(
        "customer", "invoice", "currency", "unit_amount_decimal", "quantity", "description",
        "amount", "metadata",
    )),
    ("/v1/disputes", ("GET",), list_disputes,
     _p("payment_intent", "charge", "created", "limit", "starting_after")),
    ("/v1/disputes/<dispute>", ("GET",), retrieve_dispute, _p()),
    ("/v1/disputes/<dispute>", ("POST",), update_dispute, _p("evidence", "submit", "metadata")),
    ("/v1/disputes/<dispute>/close", ("POST",), close_dispute, _p()),
    ("/v1/balance_transactions", ("GET",), list_balance_transactions,
     _p("created", "limit", "starting_after", "source", "type")),
    ("/v1/events", ("GET",), list_events, _p("type", "created", "limit", "starting_after")),
    ("/v1/events/<event>", ("GET",), retrieve_event, _p()),
    ("/v1/webhook_endpoints", ("POST",), create_webhook_endpoint,
     _p("url", "enabled_events", "description", "metadata", "api_version")),
    ("/v1/webhook_endpoints", ("GET",), list_webhook_endpoints, _p("limit", "starting_after")),
]  # fmt: skip


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
