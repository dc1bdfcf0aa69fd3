"""The PayPal face's endpoints, renderers (engine records → PayPal JSON) and event
translation. See `paygate.sandbox.paypal` for the overview."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
import zlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from paygate.errors import PaygateError, ProviderError
from paygate.models import LineItem
from paygate.money import Money
from paygate.sandbox import _paypal_vault
from paygate.sandbox.paypal import (
    _AUTHORIZATION_STATUS,
    _CAPTURE_STATUS,
    _DISPUTE_REASONS,
    _DISPUTE_STATUS,
    _EVENTS,
    _REFUND_STATUS,
    _SUBSCRIPTION_STATUS,
    _TOKENS,
    DEFAULT_PLAN_PRICE,
    FUNDING,
    PayPalAPIError,
    _dumps,
    _from_engine,
    _invalid,
    _link,
    _missing,
    _money,
    _paypal_id,
    _time,
    _unprocessable,
    _value,
    _with_query,
    json_answer,
)
from paygate.sandbox.state import WireAnswer

if TYPE_CHECKING:
    from paygate.providers.fake import FakeProvider
    from paygate.sandbox.paypal import PayPalFace

JSON = dict[str, Any]
#: (face, parsed JSON body or None, query args, path values) → (status, JSON or None)
Endpoint = Callable[..., tuple[int, Any]]

_ORDER_PREFIX: Final = "/v2/checkout/orders"
#: what Disputes v1 allows in ``invoice_number`` (PayPal leaves out one that does not fit)
#: saved wallets whose charges PayPal holds at PAYER_ACTION_REQUIRED (the bank wants 3-D Secure)
_NEEDS_THE_BUYER: Final = frozenset({"tok_authentication_required"})
_DISPUTE_INVOICE_NUMBER: Final = re.compile(r"[A-Za-z0-9:\-|]+")


# == ids =========================================================================================


def _index(face: PayPalFace, kind: str, paypal_id: str, engine_id: str, **extra: Any) -> str:
    """Remember ``paypal_id`` ↔ ``engine_id`` (both ways) for ``kind``."""
    face.records(kind)[paypal_id] = {"engine_id": engine_id, **extra}
    face.records(f"engine_{kind}")[engine_id] = {"paypal_id": paypal_id}
    return paypal_id


def _engine_id(face: PayPalFace, kind: str, paypal_id: str) -> str:
    found = face.records(kind).get(paypal_id)
    if found is None:
        raise _missing(kind.rstrip("s"), paypal_id)
    return str(found["engine_id"])


def _paypal_of(face: PayPalFace, kind: str, engine_id: str) -> str | None:
    found = face.records(f"engine_{kind}").get(engine_id)
    return None if found is None else str(found["paypal_id"])


def capture_id(record: JSON) -> str:
    return _paypal_id("capture:" + record["id"])


def authorization_id(record: JSON) -> str:
    return _paypal_id("authorization:" + record["id"])


def refund_id(face: PayPalFace, refund: JSON) -> str:
    known = _paypal_of(face, "refunds", refund["id"])
    if known is not None:
        return known
    return _index(face, "refunds", _paypal_id("refund:" + refund["id"]), refund["id"])


def dispute_id(face: PayPalFace, engine_dispute_id: str) -> str:
    known = _paypal_of(face, "disputes", engine_dispute_id)
    if known is not None:
        return known
    number = int.from_bytes(engine_dispute_id.encode()[-6:], "big") % 10**9
    return _index(face, "disputes", f"PP-D-{number:09d}", engine_dispute_id)


# == rendering ===================================================================================


def _objects(engine: FakeProvider) -> dict[str, JSON]:
    return engine._objects


def _unix(value: Any) -> str:
    return _time(float(value)) if value is not None else _time()


def _capture_money(record: JSON) -> Money:
    amount = record["amount_captured"] or record["amount"]
    return Money(amount, record["currency"])


def _order_links(face: PayPalFace, order: JSON) -> list[JSON]:
    self_url = f"{face.base_url}{_ORDER_PREFIX}/{order['id']}"
    links = [_link(self_url, "self")]
    if order["status"] in ("CREATED", "PAYER_ACTION_REQUIRED"):
        rel = "payer-action" if order["status"] == "PAYER_ACTION_REQUIRED" else "approve"
        links.append(_link(face.approval_url(order["id"]), rel))
    elif order["status"] == "APPROVED":
        action = "capture" if order["intent"] == "CAPTURE" else "authorize"
        links.append(_link(f"{self_url}/{action}", action, "POST"))
    return links


def render_capture(face: PayPalFace, order: JSON, record: JSON) -> JSON:
    cap_id = capture_id(record)
    status = _CAPTURE_STATUS.get(record["status"], "PENDING")
    unit = order["unit"]
    related = {"order_id": order["id"]}
    if order["intent"] == "AUTHORIZE":
        related["authorization_id"] = authorization_id(record)
    capture: JSON = {
        "id": cap_id,
        "status": status,
        "amount": _value(_capture_money(record)),
        "final_capture": True,
        "seller_protection": {"status": "ELIGIBLE"},
        "create_time": order.get("capture_time") or _unix(record["created"]),
        "update_time": _time(),
        "supplementary_data": {"related_ids": related},
        "links": [
            _link(f"{face.base_url}/v2/payments/captures/{cap_id}", "self"),
            _link(f"{face.base_url}/v2/payments/captures/{cap_id}/refund", "refund", "POST"),
            _link(f"{face.base_url}{_ORDER_PREFIX}/{order['id']}", "up"),
        ],
    }
    for name in ("custom_id", "invoice_id"):
        if unit.get(name):
            capture[name] = unit[name]
    if status == "PENDING":
        capture["status_details"] = {"reason": "PENDING_REVIEW"}
    elif status == "DECLINED":
        capture["status_details"] = {"reason": "DECLINED_BY_RISK_FRAUD_FILTERS"}
    return capture


def render_authorization(face: PayPalFace, order: JSON, record: JSON) -> JSON:
    auth_id = authorization_id(record)
    if record["status"] in (
        "succeeded",
        "partially_refunded",
        "refunded",
        "disputed",
        "charged_back",
    ):
        status = (
            "CAPTURED" if record["amount_captured"] >= record["amount"] else ("PARTIALLY_CAPTURED")
        )
    else:
        status = _AUTHORIZATION_STATUS.get(record["status"], "PENDING")
    created = order.get("authorize_time") or _unix(record["created"])
    expires = dt.datetime.fromisoformat(created.replace("Z", "+00:00")) + dt.timedelta(days=29)
    authorization: JSON = {
        "id": auth_id,
        "status": status,
        "amount": _value(Money(record["amount"], record["currency"])),
        "expiration_time": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seller_protection": {"status": "ELIGIBLE"},
        "create_time": created,
        "update_time": _time(),
        "supplementary_data": {"related_ids": {"order_id": order["id"]}},
        "links": [
            _link(f"{face.base_url}/v2/payments/authorizations/{auth_id}", "self"),
            _link(
                f"{face.base_url}/v2/payments/authorizations/{auth_id}/capture", "capture", "POST"
            ),
            _link(f"{face.base_url}/v2/payments/authorizations/{auth_id}/void", "void", "POST"),
            _link(f"{face.base_url}{_ORDER_PREFIX}/{order['id']}", "up"),
        ],
    }
    for name in ("custom_id", "invoice_id"):
        if order["unit"].get(name):
            authorization[name] = order["unit"][name]
    return authorization


def render_refund(face: PayPalFace, refund: JSON) -> JSON:
    engine = face.engine()
    record = _objects(engine)[refund["payment_id"]]
    order = face.order_of_engine(record["id"])
    ref_id = refund_id(face, refund)
    cap_id = capture_id(record)
    rendered: JSON = {
        "id": ref_id,
        "status": _REFUND_STATUS.get(refund["status"], "PENDING"),
        "amount": _value(Money(refund["amount"], refund["currency"])),
        "create_time": _unix(refund["created"]),
        "update_time": _time(),
        "links": [
            _link(f"{face.base_url}/v2/payments/refunds/{ref_id}", "self"),
            _link(f"{face.base_url}/v2/payments/captures/{cap_id}", "up"),
        ],
    }
    if refund.get("reason"):
        rendered["note_to_payer"] = refund["reason"]
    if refund["status"] in ("failed", "canceled"):
        rendered["status_details"] = {"reason": "ECHECK"}
    if order is not None:
        for name in ("custom_id", "invoice_id"):
            if order["unit"].get(name):
                rendered[name] = order["unit"][name]
    return rendered


def render_order(face: PayPalFace, order: JSON) -> JSON:
    engine = face.engine()
    record = _objects(engine)[order["engine_id"]]
    unit: JSON = {"reference_id": "default", **order["unit"]}
    payments: JSON = {}
    if order.get("captured"):
        payments["captures"] = [render_capture(face, order, record)]
    if order["intent"] == "AUTHORIZE" and order.get("authorized"):
        payments["authorizations"] = [render_authorization(face, order, record)]
    refunds = [_objects(engine)[rid] for rid in record["refund_ids"]]
    if refunds:
        payments["refunds"] = [render_refund(face, refund) for refund in refunds]
    if payments:
        unit["payments"] = payments
    rendered: JSON = {
        "id": order["id"],
        "intent": order["intent"],
        "status": order["status"],
        "purchase_units": [unit],
        "create_time": order["create_time"],
        "update_time": order.get("update_time", order["create_time"]),
        "links": _order_links(face, order),
    }
    if order.get("approved_with"):
        rendered["payer"] = {
            "payer_id": _paypal_id("payer:" + order["id"], 13),
            "email_address": "buyer@sandbox.paygate.invalid",
            "name": {"given_name": "Sandbox", "surname": "Buyer"},
        }
    return rendered


# == orders ======================================================================================


def _unit_from(body: JSON) -> tuple[JSON, Money]:
    units = body.get("purchase_units")
    if not isinstance(units, list) or not units or not isinstance(units[0], dict):
        raise _invalid(
            "MISSING_REQUIRED_PARAMETER", "purchase_units is required.", "/purchase_units"
        )
    if len(units) > 1:
        raise _unprocessable(
            "MULTIPLE_PURCHASE_UNITS_NOT_SUPPORTED",
            "The sandbox takes one purchase unit per order.",
        )
    given = units[0]
    amount = _money(given.get("amount"), "/purchase_units/0/amount")
    unit: JSON = {"amount": dict(given["amount"])}
    for name in ("custom_id", "invoice_id", "description", "items", "soft_descriptor"):
        if given.get(name) is not None:
            unit[name] = given[name]
    items = given.get("items") or []
    if items:
        total = Money.zero(amount.currency)
        for index, item in enumerate(items):
            price = _money(item.get("unit_amount"), f"/purchase_units/0/items/{index}/unit_amount")
            total += price * int(item.get("quantity", "1"))
        if total != amount:
            raise _unprocessable(
                "ITEM_TOTAL_MISMATCH",
                "Should equal sum of (unit_amount * "
                "quantity) across all items for a given purchase_unit.",
            )
    return unit, amount


def create_order(face: PayPalFace, body: JSON, args: Mapping[str, str]) -> tuple[int, Any]:
    intent = body.get("intent")
    if intent not in ("CAPTURE", "AUTHORIZE"):
        raise _invalid("INVALID_PARAMETER_VALUE", "intent must be CAPTURE or AUTHORIZE.", "/intent")
    unit, amount = _unit_from(body)
    source = (body.get("payment_source") or {}).get("paypal") or {}
    context = source.get("experience_context") or body.get("application_context") or {}
    vault_id = source.get("vault_id")
    token = None
    if vault_id is not None:
        token = (
            _paypal_vault.vaulted_funding(face, vault_id)
            or FUNDING.get(vault_id)
            or (vault_id if vault_id in _TOKENS else None)
        )
        if token is None:
            raise _unprocessable(
                "PAYMENT_SOURCE_INFO_CANNOT_BE_VERIFIED",
                f"vault_id must be one of the sandbox's: {', '.join(sorted(FUNDING))}",
            )
    engine = face.engine()
    try:
        payment = engine.create_payment(
            order_id=unit.get("invoice_id") or unit.get("custom_id") or "-",
            amount=amount,
            payment_method=None,
            idempotency_key=face.state.internal_key(),
            description=unit.get("description"),
            capture="automatic" if intent == "CAPTURE" else "manual",
        )
    except ProviderError as exc:
        raise _from_engine(exc) from None
    order_id = _paypal_id("order:" + payment.id)
    now = _time()
    order: JSON = {
        "id": order_id,
        "engine_id": payment.id,
        "intent": intent,
        "status": "PAYER_ACTION_REQUIRED" if context.get("return_url") else "CREATED",
        "unit": unit,
        "return_url": context.get("return_url"),
        "cancel_url": context.get("cancel_url"),
        "create_time": now,
        "update_time": now,
    }
    face.records("orders")[order_id] = order
    face.records("engine_orders")[payment.id] = {"order": order_id}
    if token in _NEEDS_THE_BUYER:  # PayPal holds it for the buyer's action
        order.update(status="PAYER_ACTION_REQUIRED", approved_with=None)
    elif token is not None:  # a vaulted wallet: PayPal charges it at once
        order.update(approved_with=token, status="APPROVED")
        _execute(face, order)
    return 201, render_order(face, order)


def _execute(face: PayPalFace, order: JSON) -> None:
    """Capture (or authorize) an approved order with its funding; a decline is 422."""
    engine = face.engine()
    now = _time()
    record = _objects(engine)[order["engine_id"]]
    if order["intent"] == "CAPTURE":
        order.update(captured=True, capture_time=now)
        face.records("capture_orders")[capture_id(record)] = {"order": order["id"]}
    else:
        order.update(authorized=True, authorize_time=now)
        face.records("authorization_orders")[authorization_id(record)] = {"order": order["id"]}
    order["update_time"] = now
    try:
        engine.confirm_payment(order["engine_id"], order["approved_with"])
    except ProviderError as exc:
        if order["intent"] == "AUTHORIZE":
            order.pop("authorized", None)
        raise _from_engine(exc) from None
    order["status"] = "COMPLETED"


def get_order(
    face: PayPalFace, body: Any, args: Mapping[str, str], order_id: str
) -> tuple[int, Any]:
    return 200, render_order(face, face.order(order_id))


def _approved(face: PayPalFace, order_id: str, intent: str) -> JSON:
    order = face.order(order_id)
    if order["intent"] != intent:
        raise _unprocessable(
            "ACTION_DOES_NOT_MATCH_INTENT", f"The order's intent is {order['intent']}."
        )
    if order["status"] == "COMPLETED":
        issue = "ORDER_ALREADY_CAPTURED" if intent == "CAPTURE" else "ORDER_ALREADY_AUTHORIZED"
        raise _unprocessable(issue, "The order was already completed.")
    if order["status"] != "APPROVED":
        raise _unprocessable(
            "ORDER_NOT_APPROVED",
            "The buyer has not approved the order: send them to the approve link first.",
        )
    return order


def capture_order(
    face: PayPalFace, body: Any, args: Mapping[str, str], order_id: str
) -> tuple[int, Any]:
    order = _approved(face, order_id, "CAPTURE")
    _execute(face, order)
    return 201, render_order(face, order)


def authorize_order(
    face: PayPalFace, body: Any, args: Mapping[str, str], order_id: str
) -> tuple[int, Any]:
    order = _approved(face, order_id, "AUTHORIZE")
    _execute(face, order)
    return 201, render_order(face, order)


# == authorizations, captures, refunds ============================================================


def _order_by(face: PayPalFace, kind: str, paypal_id: str) -> tuple[JSON, JSON]:
    """The order and engine record a capture or authorization id belongs to."""
    found = face.records(f"{kind}_orders").get(paypal_id)
    if found is None:
        raise _missing(kind, paypal_id)
    order = face.order(str(found["order"]))
    return order, _objects(face.engine())[order["engine_id"]]


def get_authorization(
    face: PayPalFace, body: Any, args: Mapping[str, str], auth: str
) -> tuple[int, Any]:
    order, record = _order_by(face, "authorization", auth)
    return 200, render_authorization(face, order, record)


def capture_authorization(
    face: PayPalFace, body: Any, args: Mapping[str, str], auth: str
) -> tuple[int, Any]:
    order, record = _order_by(face, "authorization", auth)
    if record["status"] != "authorized":
        issue = {"canceled": "AUTHORIZATION_VOIDED", "failed": "AUTHORIZATION_DENIED"}.get(
            record["status"], "AUTHORIZATION_ALREADY_CAPTURED"
        )
        raise _unprocessable(issue, f"The authorization is {record['status']}.")
    amount = None
    if isinstance(body, dict) and body.get("amount") is not None:
        amount = _money(body["amount"], "/amount")
        if amount.currency != record["currency"]:
            raise _unprocessable(
                "AUTHORIZATION_CURRENCY_MISMATCH",
                "The currency of the capture must match the authorization's.",
            )
        if amount.amount > record["amount"]:
            raise _unprocessable(
                "AUTHORIZATION_AMOUNT_EXCEEDED", "The capture is over the authorized amount."
            )
    try:
        face.engine().capture_payment(
            record["id"], amount=amount, idempotency_key=face.state.internal_key()
        )
    except ProviderError as exc:
        raise _from_engine(exc) from None
    order.update(captured=True, capture_time=_time(), update_time=_time())
    face.records("capture_orders")[capture_id(record)] = {"order": order["id"]}
    return 201, render_capture(face, order, record)


def void_authorization(
    face: PayPalFace, body: Any, args: Mapping[str, str], auth: str
) -> tuple[int, Any]:
    order, record = _order_by(face, "authorization", auth)
    if record["status"] != "authorized":
        issue = (
            "AUTHORIZATION_VOIDED"
            if record["status"] == "canceled"
            else ("AUTHORIZATION_ALREADY_CAPTURED")
        )
        raise _unprocessable(issue, f"The authorization is {record['status']}.")
    try:
        face.engine().cancel_payment(record["id"], idempotency_key=face.state.internal_key())
    except ProviderError as exc:
        raise _from_engine(exc) from None
    order["update_time"] = _time()
    return 200, render_authorization(face, order, record)


def get_capture(
    face: PayPalFace, body: Any, args: Mapping[str, str], capture: str
) -> tuple[int, Any]:
    order, record = _order_by(face, "capture", capture)
    return 200, render_capture(face, order, record)


def refund_capture(
    face: PayPalFace, body: Any, args: Mapping[str, str], capture: str
) -> tuple[int, Any]:
    order, record = _order_by(face, "capture", capture)
    body = body if isinstance(body, dict) else {}
    amount = None
    if body.get("amount") is not None:
        amount = _money(body["amount"], "/amount")
        if amount.currency != record["currency"]:
            raise _unprocessable(
                "REFUND_CAPTURE_CURRENCY_MISMATCH",
                "The refund's currency must match the capture's.",
            )
    if record["status"] == "refunded":
        raise _unprocessable(
            "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded."
        )
    try:
        refund = face.engine().refund_payment(
            record["id"],
            amount=amount,
            reason=body.get("note_to_payer"),
            idempotency_key=face.state.internal_key(),
        )
    except ProviderError as exc:
        raise _from_engine(exc) from None
    order["update_time"] = _time()
    return 201, render_refund(face, _objects(face.engine())[refund.id])


def get_refund(
    face: PayPalFace, body: Any, args: Mapping[str, str], refund: str
) -> tuple[int, Any]:
    engine_id = _engine_id(face, "refunds", refund)
    return 200, render_refund(face, _objects(face.engine())[engine_id])


# == subscriptions ===============================================================================


def _plan_price(face: PayPalFace, plan_id: str) -> Money:
    plan = face.records("plans").get(plan_id)
    return Money(plan["amount"], plan["currency"]) if plan else DEFAULT_PLAN_PRICE


def render_subscription(face: PayPalFace, sub: JSON) -> JSON:
    engine_sub = _objects(face.engine()).get(sub.get("engine_id") or "")
    status = sub["status"]
    if engine_sub is not None:
        status = _SUBSCRIPTION_STATUS.get(engine_sub["status"], "ACTIVE")
    price = _plan_price(face, sub["plan_id"])
    billing: JSON = {
        "outstanding_balance": _value(Money.zero(price.currency)),
        "failed_payments_count": sub.get("failed_payments", 0),
    }
    if engine_sub is not None and status == "ACTIVE":
        billing["next_billing_time"] = _unix(engine_sub["current_period_end"])
        billing["last_payment"] = {
            "amount": _value(price),
            "time": _unix(engine_sub["current_period_start"]),
        }
    rendered: JSON = {
        "id": sub["id"],
        "plan_id": sub["plan_id"],
        "status": status,
        "quantity": "1",
        "create_time": sub["create_time"],
        "update_time": _time(),
        "start_time": sub["create_time"],
        "billing_info": billing,
        "links": [_link(f"{face.base_url}/v1/billing/subscriptions/{sub['id']}", "self")],
    }
    if sub.get("custom_id"):
        rendered["custom_id"] = sub["custom_id"]
    if status == "APPROVAL_PENDING":
        rendered["links"].insert(0, _link(face.approval_url(sub["id"]), "approve"))
    return rendered


def create_subscription(face: PayPalFace, body: JSON, args: Mapping[str, str]) -> tuple[int, Any]:
    plan_id = body.get("plan_id")
    if not isinstance(plan_id, str) or not 3 <= len(plan_id) <= 50:
        raise _invalid("INVALID_PARAMETER_VALUE", "plan_id is required.", "/plan_id")
    context = body.get("application_context") or {}
    sub_id = "I-" + _paypal_id(secrets.token_hex(8), 12)
    sub: JSON = {
        "id": sub_id,
        "plan_id": plan_id,
        "status": "APPROVAL_PENDING",
        "custom_id": body.get("custom_id"),
        "return_url": context.get("return_url"),
        "cancel_url": context.get("cancel_url"),
        "create_time": _time(),
    }
    face.records("subscriptions")[sub_id] = sub
    rendered = render_subscription(face, sub)
    face.emit_event("BILLING.SUBSCRIPTION.CREATED", rendered)
    return 201, rendered


def _subscription(face: PayPalFace, sub_id: str) -> JSON:
    sub = face.records("subscriptions").get(sub_id)
    if sub is None:
        raise _missing("subscription", sub_id)
    return sub


def get_subscription(
    face: PayPalFace, body: Any, args: Mapping[str, str], sub_id: str
) -> tuple[int, Any]:
    return 200, render_subscription(face, _subscription(face, sub_id))


def cancel_subscription(
    face: PayPalFace, body: Any, args: Mapping[str, str], sub_id: str
) -> tuple[int, Any]:
    sub = _subscription(face, sub_id)
    if sub.get("engine_id"):
        try:
            face.engine().cancel_subscription(sub["engine_id"])
        except ProviderError as exc:
            raise _unprocessable("SUBSCRIPTION_STATUS_INVALID", str(exc)) from None
    elif sub["status"] == "APPROVAL_PENDING":
        sub["status"] = "CANCELLED"
        face.emit_event("BILLING.SUBSCRIPTION.CANCELLED", render_subscription(face, sub))
    else:
        raise _unprocessable("SUBSCRIPTION_STATUS_INVALID", f"The subscription is {sub['status']}.")
    return 204, None


def _approve_subscription(face: PayPalFace, sub: JSON, token: str) -> str:
    engine = face.engine()
    customer = engine.create_customer(
        email=None,
        name=sub.get("custom_id") or sub["id"],
        idempotency_key=face.state.internal_key(),
    )
    price_id = "price_paypal_" + sub["plan_id"]
    engine.define_price(price_id, _plan_price(face, sub["plan_id"]))
    created = engine.create_subscription(
        customer_id=customer.id, price_id=price_id, idempotency_key=face.state.internal_key()
    )
    record = _objects(engine)[created.id]
    # the engine's own "updated" event for this first period is the ACTIVATED below
    sub.update(
        engine_id=created.id,
        status="ACTIVE",
        funding=token,
        activated_period=record["current_period_start"],
    )
    face.records("engine_subscriptions")[created.id] = {"paypal_id": sub["id"]}
    face.emit_event("BILLING.SUBSCRIPTION.ACTIVATED", render_subscription(face, sub))
    return _with_query(
        sub.get("return_url") or face.sandbox.base_url + "/",
        subscription_id=sub["id"],
        ba_token=sub["id"],
        token=sub["id"],
    )


# == invoices ====================================================================================


def _invoice(face: PayPalFace, invoice_id: str) -> JSON:
    invoice = face.records("invoices").get(invoice_id)
    if invoice is None:
        raise _missing("invoice", invoice_id)
    return invoice


def render_invoice(face: PayPalFace, invoice: JSON) -> JSON:
    engine_invoice = _objects(face.engine())[invoice["engine_id"]]
    total = Money(engine_invoice["amount_due"], engine_invoice["currency"])
    status = invoice["status"]
    if engine_invoice["status"] == "paid":
        status = "PAID"
    elif engine_invoice["status"] == "void":
        status = "CANCELLED"
    detail: JSON = {
        "currency_code": total.currency,
        "invoice_number": invoice["number"],
        "invoice_date": invoice["create_time"][:10],
        "metadata": {
            "create_time": invoice["create_time"],
            "recipient_view_url": f"{face.sandbox.base_url}/paypal/invoice?id={invoice['id']}",
            "invoicer_view_url": f"{face.sandbox.base_url}/paypal/invoice?id={invoice['id']}",
        },
    }
    for name in ("reference", "note"):
        if invoice.get(name):
            detail[name] = invoice[name]
    rendered: JSON = {
        "id": invoice["id"],
        "status": status,
        "detail": detail,
        "primary_recipients": [{"billing_info": {"email_address": invoice["email"]}}],
        "items": invoice["items"],
        "amount": _value(total),
        "due_amount": _value(total if status != "PAID" else Money.zero(total.currency)),
        "links": [_link(f"{face.base_url}/v2/invoicing/invoices/{invoice['id']}", "self")],
    }
    if status == "PAID":
        rendered["payments"] = {
            "paid_amount": _value(total),
            "transactions": [
                {
                    "payment_id": _paypal_id("invoice-payment:" + invoice["id"]),
                    "method": "PAYPAL",
                    "amount": _value(total),
                    "payment_date": invoice.get("paid_date", invoice["create_time"][:10]),
                }
            ],
        }
    return rendered


def create_invoice(face: PayPalFace, body: JSON, args: Mapping[str, str]) -> tuple[int, Any]:
    detail = body.get("detail")
    if not isinstance(detail, dict) or not isinstance(detail.get("currency_code"), str):
        raise _invalid(
            "MISSING_REQUIRED_PARAMETER",
            "detail.currency_code is required.",
            "/detail/currency_code",
        )
    recipients = body.get("primary_recipients") or [{}]
    email = ((recipients[0] or {}).get("billing_info") or {}).get("email_address")
    if not isinstance(email, str) or "@" not in email:
        raise _invalid(
            "MISSING_REQUIRED_PARAMETER",
            "primary_recipients[0].billing_info.email_address is required.",
            "/primary_recipients",
        )
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise _invalid("MISSING_REQUIRED_PARAMETER", "items are required.", "/items")
    lines = []
    for index, item in enumerate(items):
        price = _money(item.get("unit_amount"), f"/items/{index}/unit_amount")
        lines.append(LineItem(str(item.get("name", "item")), price, int(item.get("quantity", "1"))))
    engine = face.engine()
    customers = face.records("customers")
    if email not in customers:
        customer = engine.create_customer(
            email=email, name=None, idempotency_key=face.state.internal_key()
        )
        customers[email] = {"engine_id": customer.id}
    try:
        created = engine.create_invoice(
            customer_id=customers[email]["engine_id"],
            line_items=lines,
            idempotency_key=face.state.internal_key(),
            order_id=detail.get("reference"),
            description=detail.get("note"),
        )
    except ProviderError as exc:
        raise _from_engine(exc) from None
    invoice_id = "INV2-" + "-".join(
        _paypal_id("invoice:" + created.id, 16)[i : i + 4] for i in range(0, 16, 4)
    )
    number = f"{len(face.records('invoices')) + 1:04d}"
    invoice: JSON = {
        "id": invoice_id,
        "engine_id": created.id,
        "status": "DRAFT",
        "number": number,
        "email": email,
        "items": items,
        "reference": detail.get("reference"),
        "note": detail.get("note"),
        "create_time": _time(),
    }
    face.records("invoices")[invoice_id] = invoice
    face.records("engine_invoices")[created.id] = {"paypal_id": invoice_id}
    rendered = render_invoice(face, invoice)
    face.emit_event("INVOICING.INVOICE.CREATED", rendered)
    return 201, rendered


def get_invoice(
    face: PayPalFace, body: Any, args: Mapping[str, str], invoice_id: str
) -> tuple[int, Any]:
    return 200, render_invoice(face, _invoice(face, invoice_id))


def send_invoice(
    face: PayPalFace, body: Any, args: Mapping[str, str], invoice_id: str
) -> tuple[int, Any]:
    invoice = _invoice(face, invoice_id)
    if invoice["status"] != "DRAFT":
        raise _unprocessable("INVALID_INVOICE_STATUS", f"The invoice is {invoice['status']}.")
    invoice["status"] = "SENT"
    return 200, _link(
        render_invoice(face, invoice)["detail"]["metadata"]["recipient_view_url"], "payer-view"
    )


def cancel_invoice(
    face: PayPalFace, body: Any, args: Mapping[str, str], invoice_id: str
) -> tuple[int, Any]:
    invoice = _invoice(face, invoice_id)
    if invoice["status"] not in ("SENT", "UNPAID"):
        raise _unprocessable("INVALID_INVOICE_STATUS", f"The invoice is {invoice['status']}.")
    invoice["status"] = "CANCELLED"
    face.emit_event("INVOICING.INVOICE.CANCELLED", render_invoice(face, invoice))
    return 204, None


def pay_invoice(face: PayPalFace, invoice_id: str, funding: str) -> None:
    invoice = _invoice(face, invoice_id)
    if invoice["status"] not in ("SENT", "UNPAID"):
        raise _unprocessable("INVALID_INVOICE_STATUS", f"The invoice is {invoice['status']}.")
    invoice["paid_date"] = _time()[:10]
    try:
        face.engine().pay_invoice(
            invoice["engine_id"], payment_method=FUNDING.get(funding, funding)
        )
    except ProviderError as exc:
        raise _from_engine(exc) from None


# == disputes ====================================================================================


def render_dispute(face: PayPalFace, dispute: JSON) -> JSON:
    record = _objects(face.engine())[dispute["payment_id"]]
    order = face.order_of_engine(record["id"])
    status, outcome = _DISPUTE_STATUS.get(dispute["status"], ("UNDER_REVIEW", None))
    amount = Money(dispute["amount"], dispute["currency"])
    transaction: JSON = {
        "seller_transaction_id": capture_id(record),
        "create_time": _unix(record["created"]),
        "transaction_status": "COMPLETED",
        "gross_amount": _value(_capture_money(record)),
    }
    invoice_number = order["unit"].get("invoice_id") if order is not None else None
    if invoice_number and _DISPUTE_INVOICE_NUMBER.fullmatch(invoice_number):
        transaction["invoice_number"] = invoice_number  # the spec's pattern allows no "_"
    if order is not None and order["unit"].get("custom_id"):
        transaction["custom"] = order["unit"]["custom_id"]
    rendered: JSON = {
        "dispute_id": dispute_id(face, dispute["id"]),
        "create_time": _unix(dispute["created"]),
        "update_time": _time(),
        "disputed_transactions": [transaction],
        "reason": _DISPUTE_REASONS.get(dispute["reason"], "UNAUTHORISED"),
        "status": status,
        "dispute_amount": _value(amount),
        "dispute_life_cycle_stage": "CHARGEBACK",
        "dispute_channel": "EXTERNAL",
        "seller_response_due_date": _unix(dispute["evidence_due_by"]),
        "links": [
            _link(
                f"{face.base_url}/v1/customer/disputes/{dispute_id(face, dispute['id'])}", "self"
            ),
        ],
    }
    if outcome is not None:
        rendered["dispute_outcome"] = {"outcome_code": outcome}
        if outcome == "RESOLVED_BUYER_FAVOUR":
            rendered["dispute_outcome"]["amount_refunded"] = _value(amount)
    return rendered


def get_dispute(
    face: PayPalFace, body: Any, args: Mapping[str, str], dispute: str
) -> tuple[int, Any]:
    engine_id = _engine_id(face, "disputes", dispute)
    return 200, render_dispute(face, _objects(face.engine())[engine_id])


def list_disputes(face: PayPalFace, body: Any, args: Mapping[str, str]) -> tuple[int, Any]:
    disputes = [
        render_dispute(face, obj)
        for obj in _objects(face.engine()).values()
        if obj["object"] == "dispute"
    ]
    items = [
        {
            key: d[key]
            for key in (
                "dispute_id",
                "create_time",
                "update_time",
                "reason",
                "status",
                "dispute_amount",
                "links",
            )
        }
        for d in disputes
    ]
    return 200, {"items": items, "links": [_link(f"{face.base_url}/v1/customer/disputes", "self")]}


# == transaction search ==========================================================================


def _parse_instant(value: str | None, name: str) -> dt.datetime:
    if not value:
        raise _invalid("MISSING_REQUIRED_PARAMETER", f"{name} is required.", name)
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid(
            "INVALID_PARAMETER_VALUE", f"{name} is not an ISO 8601 time.", name
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment


def _transactions(face: PayPalFace) -> list[tuple[float, JSON]]:
    """Every money movement as Transaction Search reports it: captures (T0006), refunds
    (T1107), lost disputes (T1201); each with the time it happened."""
    engine = face.engine()
    found: list[tuple[float, JSON]] = []
    for order in face.records("orders").values():
        record = _objects(engine)[order["engine_id"]]
        if not order.get("captured") or record["status"] in ("failed", "authorized", "canceled"):
            continue
        unit = order["unit"]
        money = _capture_money(record)
        status = "P" if record["status"] == "processing" else "S"
        when = order.get("capture_time") or _unix(record["created"])
        info: JSON = {
            "transaction_id": capture_id(record),
            "transaction_event_code": "T0006",
            "transaction_initiation_date": when,
            "transaction_updated_date": when,
            "transaction_amount": _value(money),
            "transaction_status": status,
        }
        if unit.get("invoice_id"):
            info["invoice_id"] = unit["invoice_id"]
        if unit.get("custom_id"):
            info["custom_field"] = unit["custom_id"]
        found.append((_epoch(when), {"transaction_info": info}))
        for refund in (_objects(engine)[r] for r in record["refund_ids"]):
            if refund["status"] != "succeeded":
                continue
            refunded = Money(refund["amount"], refund["currency"])
            at = _unix(refund["created"])
            refund_info: JSON = {
                "transaction_id": refund_id(face, refund),
                "paypal_reference_id": capture_id(record),
                "paypal_reference_id_type": "TXN",
                "transaction_event_code": "T1107",
                "transaction_initiation_date": at,
                "transaction_updated_date": at,
                "transaction_amount": _value(-refunded),
                "transaction_status": "S",
            }
            if unit.get("invoice_id"):
                refund_info["invoice_id"] = unit["invoice_id"]
            found.append((float(refund["created"]), {"transaction_info": refund_info}))
    return sorted(found, key=lambda pair: pair[0])


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def search_transactions(face: PayPalFace, body: Any, args: Mapping[str, str]) -> tuple[int, Any]:
    start = _parse_instant(args.get("start_date"), "start_date")
    end = _parse_instant(args.get("end_date"), "end_date")
    if end - start > dt.timedelta(days=31):
        raise _invalid("INVALID_REQUEST", "Date range is greater than 31 days", "end_date")
    try:
        page_size = int(args.get("page_size", "100"))
        page = int(args.get("page", "1"))
    except ValueError:
        raise _invalid("INVALID_PARAMETER_VALUE", "page and page_size are numbers.") from None
    if not 1 <= page_size <= 500 or page < 1:
        raise _invalid("INVALID_PARAMETER_VALUE", "page_size is 1 to 500, page from 1.")
    details = [
        detail
        for moment, detail in _transactions(face)
        if start.timestamp() <= moment < end.timestamp()
    ]
    total_pages = (len(details) + page_size - 1) // page_size
    chunk = details[(page - 1) * page_size : page * page_size]
    return 200, {
        "transaction_details": chunk,
        "account_number": "SANDBOXMERCHANT",
        "start_date": _time(start.timestamp()),
        "end_date": _time(end.timestamp()),
        "last_refreshed_datetime": _time(),
        "page": page,
        "total_items": len(details),
        "total_pages": total_pages,
        "links": [_link(f"{face.base_url}/v1/reporting/transactions", "self")],
    }


# == webhooks ====================================================================================


def verify_signature(face: PayPalFace, body: JSON, args: Mapping[str, str]) -> tuple[int, Any]:
    """SUCCESS only for an event this sandbox sent, unchanged, with the signature it made
    for one of its webhook ids; FAILURE for anything else (PayPal answers 200 either way)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    event = body.get("webhook_event")
    webhook_id = body.get("webhook_id")
    known_ids = {face.webhook_id, *face.records("webhooks")}
    ok = False
    try:
        stored = face.sandbox.bus.get(str((event or {}).get("id")))
        sent = json.loads(stored.body)
        if (
            stored.provider == "paypal"
            and sent == event
            and webhook_id in known_ids
            and body.get("auth_algo") == "SHA256withRSA"
            and body.get("cert_url") == face.cert_url()
        ):
            key, _ = face._signing()
            message = (
                f"{body.get('transmission_id')}|{body.get('transmission_time')}|{webhook_id}|"
                f"{zlib.crc32(stored.body)}"
            )
            key.public_key().verify(
                base64.b64decode(str(body.get("transmission_sig")), validate=True),
                message.encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
            ok = True
    except (PaygateError, InvalidSignature, binascii.Error, ValueError, AttributeError):
        ok = False
    return 200, {"verification_status": "SUCCESS" if ok else "FAILURE"}


def create_webhook(face: PayPalFace, body: JSON, args: Mapping[str, str]) -> tuple[int, Any]:
    url = body.get("url")
    types = body.get("event_types")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _invalid("INVALID_PARAMETER_VALUE", "url must be an http(s) URL.", "/url")
    if not isinstance(types, list) or not types:
        raise _invalid("MISSING_REQUIRED_PARAMETER", "event_types is required.", "/event_types")
    webhook_id = _paypal_id("webhook:" + url)
    face.records("webhooks")[webhook_id] = {"url": url, "event_types": types}
    face.sandbox.bus.add_endpoint("paypal", url)
    return 201, {
        "id": webhook_id,
        "url": url,
        "event_types": types,
        "links": [_link(f"{face.base_url}/v1/notifications/webhooks/{webhook_id}", "self")],
    }


def oauth_token(face: PayPalFace, request: Request) -> Response:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    try:
        client_id, _, secret = base64.b64decode(credentials).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        client_id = secret = ""
    if scheme.lower() != "basic" or not client_id or not secret:
        return Response(
            _dumps(
                {"error": "invalid_client", "error_description": "Client Authentication failed"}
            ),
            status=401,
            content_type="application/json",
        )
    token = "A21AA" + secrets.token_urlsafe(24)
    face.records("tokens")[token] = {"client_id": client_id}
    return Response(
        _dumps(
            {
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": token,
                "token_type": "Bearer",
                "app_id": "APP-SANDBOX",
                "expires_in": 32400,
                "nonce": _time() + secrets.token_hex(8),
            }
        ),
        content_type="application/json",
    )


# == the approval page ===========================================================================


def approval_view(face: PayPalFace, token: str) -> JSON:
    if _paypal_vault.is_setup_token(face, token):
        return _paypal_vault.approval_view(face, token)
    if token in face.records("orders"):
        order = face.records("orders")[token]
        view = render_order(face, order)
        # page data, not PayPal's answer: where the buyer goes back to (the shop's name)
        context = {"return_url": order.get("return_url"), "cancel_url": order.get("cancel_url")}
        source = {"paypal": {"experience_context": context}}
        return {"kind": "order", **view, "payment_source": source, "funding": sorted(FUNDING)}
    if token in face.records("subscriptions"):
        sub = face.records("subscriptions")[token]
        view = render_subscription(face, sub)
        price = _plan_price(face, sub["plan_id"])
        return {"kind": "subscription", **view, "amount": _value(price), "funding": sorted(FUNDING)}
    raise _missing("order", token)


def approve(face: PayPalFace, token: str, funding: str) -> str:
    if _paypal_vault.is_setup_token(face, token):
        return _paypal_vault.approve(face, token, funding)
    chosen = FUNDING.get(funding)
    if chosen is None:
        raise _invalid(
            "INVALID_PARAMETER_VALUE", f"funding must be one of {', '.join(sorted(FUNDING))}."
        )
    if token in face.records("subscriptions"):
        sub = face.records("subscriptions")[token]
        if sub["status"] != "APPROVAL_PENDING":
            raise _unprocessable(
                "SUBSCRIPTION_STATUS_INVALID", f"The subscription is {sub['status']}."
            )
        return _approve_subscription(face, sub, chosen)
    order = face.order(token)
    if order["status"] not in ("CREATED", "PAYER_ACTION_REQUIRED"):
        raise _unprocessable("ORDER_ALREADY_COMPLETED", f"The order is {order['status']}.")
    now = _time()
    order.update(status="APPROVED", approved_with=chosen, update_time=now)
    face.emit_event("CHECKOUT.ORDER.APPROVED", render_order(face, order))
    target = order.get("return_url") or face.sandbox.base_url + "/"
    return _with_query(target, token=order["id"], PayerID=_paypal_id("payer:" + order["id"], 13))


def cancel_approval(face: PayPalFace, token: str) -> str:
    if _paypal_vault.is_setup_token(face, token):
        return _paypal_vault.cancel(face, token)
    if token in face.records("subscriptions"):
        sub = face.records("subscriptions")[token]
        return _with_query(sub.get("cancel_url") or face.sandbox.base_url + "/", token=token)
    order = face.order(token)
    target = order.get("cancel_url") or order.get("return_url") or face.sandbox.base_url + "/"
    return _with_query(target, token=order["id"])


# == event translation ===========================================================================


def translate_event(face: PayPalFace, event: JSON) -> None:
    """One engine event → PayPal's event, with the resource rendered now."""
    engine_type = event["type"]
    if engine_type not in _EVENTS:
        return
    paypal_type = _EVENTS[engine_type]
    snapshot = event["data"]["object"]
    engine = face.engine()
    kind = snapshot["object"]
    if kind == "payment":
        order = face.order_of_engine(snapshot["id"])
        if order is None:  # an invoice's or subscription's payment: reported by those
            return
        record = _objects(engine)[snapshot["id"]]
        if paypal_type is None:
            return
        if paypal_type.startswith("PAYMENT.AUTHORIZATION"):
            if order["intent"] != "AUTHORIZE":
                return
            resource = render_authorization(face, order, {**record, **snapshot})
        elif order["intent"] == "AUTHORIZE" and engine_type == "payment.failed":
            return  # a denied authorization: the authorize call answered 422
        else:
            resource = render_capture(face, order, {**record, **snapshot})
        face.emit_event(paypal_type, resource)
        if engine_type == "payment.succeeded" and order["intent"] == "CAPTURE":
            face.emit_event("CHECKOUT.ORDER.COMPLETED", render_order(face, order))
    elif kind == "refund":
        if face.order_of_engine(snapshot["payment_id"]) is None or paypal_type is None:
            return
        face.emit_event(paypal_type, render_refund(face, snapshot))
    elif kind == "dispute":
        if face.order_of_engine(snapshot["payment_id"]) is None or paypal_type is None:
            return
        face.emit_event(paypal_type, render_dispute(face, snapshot))
    elif kind == "subscription":
        link = face.records("engine_subscriptions").get(snapshot["id"])
        if link is None:
            return  # being created: the face reports ACTIVATED itself
        sub = face.records("subscriptions")[link["paypal_id"]]
        if (
            engine_type == "subscription.updated"
            and snapshot["status"] == "active"
            and (snapshot["current_period_start"] == sub.get("activated_period"))
        ):
            return
        if engine_type == "subscription.payment_failed":
            sub["failed_payments"] = int(sub.get("failed_payments", 0)) + 1
        face.emit_event(
            paypal_type or "BILLING.SUBSCRIPTION.UPDATED", render_subscription(face, sub)
        )
    elif kind == "invoice":
        link = face.records("engine_invoices").get(snapshot["id"])
        if link is None:
            return
        invoice = face.records("invoices")[link["paypal_id"]]
        if engine_type == "invoice.paid":
            face.emit_event("INVOICING.INVOICE.PAID", render_invoice(face, invoice))
        elif paypal_type is not None:
            face.emit_event(paypal_type, render_invoice(face, invoice))


# == triggers ====================================================================================


def _trigger_order(face: PayPalFace, funding: str, intent: str = "CAPTURE") -> JSON:
    body = {
        "intent": intent,
        "purchase_units": [
            {
                "amount": {"currency_code": "USD", "value": "20.00"},
                "custom_id": "ord_trigger_" + secrets.token_hex(4),
                "invoice_id": "ord_trigger_" + secrets.token_hex(4),
            }
        ],
        "payment_source": {"paypal": {"vault_id": funding}},
    }
    with face.state.transaction(face.name):
        try:
            _, order = create_order(face, body, {})
        except PayPalAPIError:
            order = None
    return order or {}


def _new_event_ids(face: PayPalFace, action: Callable[[], object]) -> list[str]:
    before = {event.id for event in face.sandbox.bus.events("paypal", 1000)}
    action()
    return [e.id for e in reversed(face.sandbox.bus.events("paypal", 1000)) if e.id not in before]


def _trigger_refund(face: PayPalFace) -> None:
    order = _trigger_order(face, "paypal_balance")
    with face.state.transaction(face.name):
        record = face.records("orders")[order["id"]]
        engine_record = _objects(face.engine())[record["engine_id"]]
        refund_capture(
            face,
            {"amount": {"currency_code": "USD", "value": "5.00"}},
            {},
            capture_id(engine_record),
        )


def _trigger_dispute(face: PayPalFace) -> None:
    order = _trigger_order(face, "paypal_balance")
    face.open_dispute(order["id"])


def _trigger_subscription(face: PayPalFace) -> None:
    with face.state.transaction(face.name):
        _, sub = create_subscription(face, {"plan_id": "P-SANDBOXPLAN", "custom_id": "trigger"}, {})
        approve(face, sub["id"], "paypal_balance")


TRIGGERS: Final[Mapping[str, Callable[[PayPalFace], list[str]]]] = {
    "PAYMENT.CAPTURE.COMPLETED": lambda face: _new_event_ids(
        face, lambda: _trigger_order(face, "paypal_balance")
    ),
    "PAYMENT.CAPTURE.DECLINED": lambda face: _new_event_ids(
        face, lambda: _trigger_order(face, "card_declined")
    ),
    "PAYMENT.CAPTURE.PENDING": lambda face: _new_event_ids(
        face, lambda: _trigger_order(face, "pending_review")
    ),
    "PAYMENT.AUTHORIZATION.CREATED": lambda face: _new_event_ids(
        face, lambda: _trigger_order(face, "paypal_balance", "AUTHORIZE")
    ),
    "PAYMENT.CAPTURE.REFUNDED": lambda face: _new_event_ids(face, lambda: _trigger_refund(face)),
    "CUSTOMER.DISPUTE.CREATED": lambda face: _new_event_ids(face, lambda: _trigger_dispute(face)),
    "BILLING.SUBSCRIPTION.ACTIVATED": lambda face: _new_event_ids(
        face, lambda: _trigger_subscription(face)
    ),
}


# == wiring ======================================================================================

#: (rule under the face's prefix, method, endpoint, whether a JSON body is required)
ROUTES: Final[tuple[tuple[str, str, Endpoint, bool], ...]] = (
    (_ORDER_PREFIX, "POST", create_order, True),
    (_ORDER_PREFIX + "/<order_id>", "GET", get_order, False),
    (_ORDER_PREFIX + "/<order_id>/capture", "POST", capture_order, False),
    (_ORDER_PREFIX + "/<order_id>/authorize", "POST", authorize_order, False),
    ("/v2/payments/authorizations/<auth>", "GET", get_authorization, False),
    ("/v2/payments/authorizations/<auth>/capture", "POST", capture_authorization, False),
    ("/v2/payments/authorizations/<auth>/void", "POST", void_authorization, False),
    ("/v2/payments/captures/<capture>", "GET", get_capture, False),
    ("/v2/payments/captures/<capture>/refund", "POST", refund_capture, False),
    ("/v2/payments/refunds/<refund>", "GET", get_refund, False),
    ("/v1/billing/subscriptions", "POST", create_subscription, True),
    ("/v1/billing/subscriptions/<sub_id>", "GET", get_subscription, False),
    ("/v1/billing/subscriptions/<sub_id>/cancel", "POST", cancel_subscription, False),
    ("/v2/invoicing/invoices", "POST", create_invoice, True),
    ("/v2/invoicing/invoices/<invoice_id>", "GET", get_invoice, False),
    ("/v2/invoicing/invoices/<invoice_id>/send", "POST", send_invoice, False),
    ("/v2/invoicing/invoices/<invoice_id>/cancel", "POST", cancel_invoice, False),
    ("/v1/customer/disputes", "GET", list_disputes, False),
    ("/v1/customer/disputes/<dispute>", "GET", get_dispute, False),
    ("/v1/reporting/transactions", "GET", search_transactions, False),
    ("/v1/notifications/verify-webhook-signature", "POST", verify_signature, True),
    ("/v1/notifications/webhooks", "POST", create_webhook, True),
    *_paypal_vault.ROUTES,
)


def _authorized(face: PayPalFace, request: Request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token in face.records("tokens")


def api(face: PayPalFace, endpoint: Endpoint, needs_body: bool) -> Callable[..., Response]:
    """Wrap an endpoint: bearer token, JSON body, ``PayPal-Request-Id``, PayPal's errors."""

    def handler(request: Request, **values: str) -> Response:
        debug_id = secrets.token_hex(6)
        if not _authorized(face, request):
            error = PayPalAPIError(
                401,
                "INVALID_TOKEN",
                "The access token is missing, expired or not one this sandbox issued.",
            )
            return json_answer(error.answer(), debug_id)
        raw = request.get_data()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = _NOT_JSON
        args = dict(request.args.items())

        def compute() -> WireAnswer:
            try:
                if body is _NOT_JSON or (needs_body and not isinstance(body, dict)):
                    raise _invalid("MALFORMED_REQUEST_JSON", "The request JSON is not well formed.")
                with face.state.transaction(face.name):
                    status, payload = endpoint(face, body, args, **values)
                if payload is None:
                    return WireAnswer(status, b"")
                return WireAnswer(status, _dumps(payload))
            except PayPalAPIError as exc:
                return exc.answer()
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                # a field of the wrong type or shape deep in the body: PayPal's 400
                problem = f"{type(exc).__name__}: {exc}"[:200]
                return _invalid(
                    "INVALID_PARAMETER_SYNTAX", f"The request is malformed ({problem})."
                ).answer()
            except PaygateError as exc:  # the engine refused it
                return _unprocessable("UNPROCESSABLE_ENTITY", str(exc)[:300]).answer()

        request_id = request.headers.get("PayPal-Request-Id")
        if request.method != "POST" or not request_id:
            return json_answer(compute(), debug_id)
        # PayPal answers a repeated PayPal-Request-Id with the first answer, whatever the
        # body (it does not compare them): the fingerprint is the path alone
        answer = face.state.idempotent(
            face.name,
            f"{request.path} {request_id}",
            request.path,
            compute,
            keep=lambda a: a.status < 400,
        )
        return json_answer(answer, debug_id)

    return handler


_NOT_JSON: Final = object()


def register(face: PayPalFace) -> None:
    """Add the face's routes (under ``/paypal``) and its certificate and token endpoints."""
    prefix = face.prefix
    for rule, method, endpoint, needs_body in ROUTES:
        face.sandbox.route(prefix + rule, api(face, endpoint, needs_body), methods=(method,))

    def token(request: Request) -> Response:
        with face.state.transaction(face.name):
            return oauth_token(face, request)

    def certificate(request: Request, name: str) -> Response:
        _, pem = face._signing()
        return Response(pem, content_type="application/x-pem-file")

    def approve_action(request: Request, token: str) -> Response:
        """The approval page's form: ``action`` = approve | cancel, ``funding``."""
        action = request.form.get("action", "approve")
        try:
            if action == "cancel":
                target = face.cancel_approval(token)
            else:
                target = face.approve(token, request.form.get("funding") or "paypal_balance")
        except PayPalAPIError as exc:
            if exc.status == 422 and _paypal_vault.is_setup_token(face, token):
                # a declined funding source: back to the page, which says so
                return redirect(face.approval_url(token) + "?error=card_declined", 303)
            return json_answer(exc.answer(), secrets.token_hex(6))
        return redirect(target, 303)

    face.sandbox.route(prefix + "/approve/<token>", approve_action, methods=("POST",))
    face.sandbox.route(prefix + "/v1/oauth2/token", token, methods=("POST",))
    face.sandbox.route(prefix + "/v1/notifications/certs/<name>", certificate)
