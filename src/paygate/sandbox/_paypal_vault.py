"""The PayPal face's Vault v3: setup tokens, the buyer's approval, payment tokens.

On the engine's own saved-method operations: the merchant's customer id (PayPal keeps
wallets under the merchant's id for the buyer) is an engine customer made on first use,
a setup token is the engine's setup, the buyer's approval on the sandbox's PayPal page is
``approve_setup`` with the funding chosen there, and a payment token is the engine's saved
method (``detach_payment_method`` when deleted). An order whose
``payment_source.paypal.vault_id`` is a payment token charges what was saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from paygate.errors import ProviderError
from paygate.sandbox.paypal import (
    _from_engine,
    _invalid,
    _missing,
    _paypal_id,
    _time,
    _unprocessable,
    _with_query,
)

if TYPE_CHECKING:
    from paygate.sandbox.paypal import PayPalFace

JSON = dict[str, Any]
_PREFIX: Final = "/v3/vault"

#: what the buyer can choose on the approval page of a setup token → the engine token saved
VAULT_FUNDING: Final[Mapping[str, str]] = {
    "paypal_balance": "tok_visa",
    "card_visa": "tok_visa",
    "needs_authentication": "tok_authentication_required",
    "later_declined": "tok_later_declined",
    "card_declined": "tok_declined",
}


def _link(href: str, rel: str, method: str = "GET") -> JSON:
    return {"href": href, "rel": rel, "method": method}


def _engine_customer(face: PayPalFace, customer_id: str) -> str:
    """The engine customer standing for the merchant's ``customer_id`` (made on first use)."""
    known = face.records("vault_customers").get(customer_id)
    if known is not None:
        return str(known["engine_id"])
    created = face.engine().create_customer(
        email=None, name=None, idempotency_key=face.state.internal_key()
    )
    face.records("vault_customers")[customer_id] = {"engine_id": created.id}
    return created.id


def render_setup_token(face: PayPalFace, token: JSON) -> JSON:
    setup = face.engine()._objects[token["engine_id"]]
    status = token["status"]
    if setup["status"] == "succeeded" and status != "VAULTED" and token.get("vaulted"):
        status = "VAULTED"
    links = [_link(f"{face.base_url}{_PREFIX}/setup-tokens/{token['id']}", "self")]
    if status == "PAYER_ACTION_REQUIRED":
        links.append(_link(face.approval_url(token["id"]), "approve"))
    if status == "APPROVED":
        links.append(
            _link(f"{face.base_url}{_PREFIX}/payment-tokens", "confirm", "POST"),
        )
    return {
        "id": token["id"],
        "customer": {"id": token["customer_id"]},
        "status": status,
        "payment_source": {
            "paypal": {
                "usage_type": "MERCHANT",
                "customer_type": "CONSUMER",
                "permit_multiple_payment_tokens": False,
            }
        },
        "links": links,
    }


def render_payment_token(face: PayPalFace, payment_token: JSON) -> JSON:
    return {
        "id": payment_token["id"],
        "customer": {"id": payment_token["customer_id"]},
        "payment_source": {
            "paypal": {
                "email_address": payment_token["email"],
                "payer_id": _paypal_id("payer:" + payment_token["customer_id"], 13),
                "usage_type": "MERCHANT",
                "customer_type": "CONSUMER",
            }
        },
        "links": [
            _link(f"{face.base_url}{_PREFIX}/payment-tokens/{payment_token['id']}", "self"),
            _link(
                f"{face.base_url}{_PREFIX}/payment-tokens/{payment_token['id']}",
                "delete",
                "DELETE",
            ),
        ],
    }


def _setup_token(face: PayPalFace, token_id: str) -> JSON:
    found = face.records("setup_tokens").get(token_id)
    if found is None:
        raise _missing("setup token", token_id)
    return found


def _payment_token(face: PayPalFace, token_id: str) -> JSON:
    found = face.records("payment_tokens").get(token_id)
    if found is None or found.get("deleted"):
        raise _missing("payment token", token_id)
    return found


# == endpoints ===================================================================================


def create_setup_token(face: PayPalFace, body: JSON, args: Mapping[str, str]) -> tuple[int, Any]:
    source = (body.get("payment_source") or {}).get("paypal")
    if not isinstance(source, dict):
        raise _invalid(
            "INVALID_PARAMETER_VALUE",
            "The sandbox vaults PayPal wallets: payment_source.paypal is required.",
            "/payment_source",
        )
    context = source.get("experience_context") or {}
    return_url = context.get("return_url")
    if not return_url:
        raise _invalid(
            "MISSING_REQUIRED_PARAMETER",
            "experience_context.return_url is required.",
            "/payment_source/paypal/experience_context/return_url",
        )
    customer = (body.get("customer") or {}).get("id")
    if not isinstance(customer, str) or not customer:
        raise _invalid("MISSING_REQUIRED_PARAMETER", "customer.id is required.", "/customer/id")
    engine = face.engine()
    setup = engine.create_setup(
        customer_id=_engine_customer(face, customer),
        idempotency_key=face.state.internal_key(),
        return_url=return_url,
    )
    token_id = _paypal_id("setup:" + setup.id, 17)
    token: JSON = {
        "id": token_id,
        "engine_id": setup.id,
        "customer_id": customer,
        "status": "PAYER_ACTION_REQUIRED",
        "return_url": return_url,
        "cancel_url": context.get("cancel_url") or return_url,
        "create_time": _time(),
    }
    face.records("setup_tokens")[token_id] = token
    return 200, render_setup_token(face, token)


def get_setup_token(
    face: PayPalFace, body: Any, args: Mapping[str, str], token: str
) -> tuple[int, Any]:
    return 200, render_setup_token(face, _setup_token(face, token))


def create_payment_token(face: PayPalFace, body: JSON, args: Mapping[str, str]) -> tuple[int, Any]:
    source = (body.get("payment_source") or {}).get("token") or {}
    token_id = source.get("id")
    if not isinstance(token_id, str) or source.get("type") != "SETUP_TOKEN":
        raise _invalid(
            "INVALID_PARAMETER_VALUE",
            "payment_source.token must name a SETUP_TOKEN.",
            "/payment_source/token",
        )
    setup_token = _setup_token(face, token_id)
    if setup_token["status"] != "APPROVED":
        raise _unprocessable(
            "SETUP_TOKEN_NOT_APPROVED"
            if setup_token["status"] != "VAULTED"
            else "SETUP_TOKEN_ALREADY_USED",
            f"The setup token is {setup_token['status']}.",
        )
    setup = face.engine()._objects[setup_token["engine_id"]]
    method_id = setup["payment_method_id"]
    payment_id = _paypal_id("token:" + method_id, 8).lower()
    saved: JSON = {
        "id": payment_id,
        "engine_id": method_id,
        "customer_id": setup_token["customer_id"],
        "email": f"buyer-{setup_token['customer_id'][:12].lower()}@example.com",
    }
    face.records("payment_tokens")[payment_id] = saved
    face.records("engine_payment_tokens")[method_id] = {"paypal_id": payment_id}
    setup_token.update(status="VAULTED", vaulted=True)
    data = render_payment_token(face, saved)
    face.emit_event("VAULT.PAYMENT-TOKEN.CREATED", data)
    return 200, data


def list_payment_tokens(face: PayPalFace, body: Any, args: Mapping[str, str]) -> tuple[int, Any]:
    customer = args.get("customer_id")
    if not customer:
        raise _invalid("MISSING_REQUIRED_PARAMETER", "customer_id is required.", "customer_id")
    size = int(args.get("page_size") or 5)
    page = int(args.get("page") or 1)
    if not 1 <= size <= 20 or page < 1:
        raise _invalid("INVALID_PARAMETER_VALUE", "page_size is 1 to 20, page from 1.")
    engine = face.engine()
    tokens = [
        t
        for t in face.records("payment_tokens").values()
        if t["customer_id"] == customer
        and not t.get("deleted")
        and engine._objects[t["engine_id"]]["customer_id"] is not None
    ]
    total_pages = max(1, -(-len(tokens) // size))
    shown = tokens[(page - 1) * size : page * size]
    return 200, {
        "customer": {"id": customer},
        "payment_tokens": [render_payment_token(face, t) for t in shown],
        "total_items": len(tokens),
        "total_pages": total_pages,
        "links": [_link(f"{face.base_url}{_PREFIX}/payment-tokens?customer_id={customer}", "self")],
    }


def get_payment_token(
    face: PayPalFace, body: Any, args: Mapping[str, str], token: str
) -> tuple[int, Any]:
    return 200, render_payment_token(face, _payment_token(face, token))


def delete_payment_token(
    face: PayPalFace, body: Any, args: Mapping[str, str], token: str
) -> tuple[int, Any]:
    saved = _payment_token(face, token)
    try:
        face.engine().detach_payment_method(saved["engine_id"])
    except ProviderError as exc:
        raise _from_engine(exc) from None
    saved["deleted"] = True
    face.emit_event("VAULT.PAYMENT-TOKEN.DELETED", render_payment_token(face, saved))
    return 204, None


# == the buyer's approval, and charging a payment token ==========================================


def is_setup_token(face: PayPalFace, token: str) -> bool:
    return token in face.records("setup_tokens")


def approval_view(face: PayPalFace, token: str) -> JSON:
    setup_token = _setup_token(face, token)
    view = render_setup_token(face, setup_token)
    return {
        "kind": "setup token",
        **view,
        "return_url": setup_token["return_url"],
        "amount": None,
        "funding": sorted(VAULT_FUNDING),
    }


def approve(face: PayPalFace, token: str, funding: str) -> str:
    """The buyer approves saving their wallet with ``funding``; where they go back to:
    ``return_url?approval_token_id=...&approval_session_id=...``."""
    setup_token = _setup_token(face, token)
    chosen = VAULT_FUNDING.get(funding)
    if chosen is None:
        raise _invalid(
            "INVALID_PARAMETER_VALUE", f"funding must be one of {', '.join(sorted(VAULT_FUNDING))}."
        )
    if setup_token["status"] != "PAYER_ACTION_REQUIRED":
        raise _unprocessable("SETUP_TOKEN_ALREADY_APPROVED", "The setup token is not pending.")
    setup = face.engine()._objects[setup_token["engine_id"]]
    if setup["status"] == "failed":  # another try after a decline: a fresh attempt
        setup.update(status="requires_action", failure=None, token=None)
    try:
        face.engine().approve_setup(setup_token["engine_id"], payment_method=chosen)
    except ProviderError as exc:
        raise _from_engine(exc) from None
    setup_token["status"] = "APPROVED"
    return _with_query(
        setup_token["return_url"],
        approval_token_id=token,
        approval_session_id=_paypal_id("session:" + token, 17),
    )


def cancel(face: PayPalFace, token: str) -> str:
    setup_token = _setup_token(face, token)
    return _with_query(setup_token["cancel_url"], approval_token_id=token)


def vaulted_funding(face: PayPalFace, vault_id: str) -> str | None:
    """The engine token an order's ``vault_id`` charges when it is a payment token
    (``None``: not one); a deleted one is 422 ``PAYMENT_SOURCE_CANNOT_BE_USED``."""
    saved = face.records("payment_tokens").get(vault_id)
    if saved is None:
        return None
    method = face.engine()._objects.get(saved["engine_id"])
    if saved.get("deleted") or method is None or method["customer_id"] is None:
        raise _unprocessable(
            "PAYMENT_SOURCE_CANNOT_BE_USED",
            "The vault_id names a payment token that was deleted.",
        )
    charges_as: str = method["charges_as"]
    return charges_as


ROUTES: Final = (
    (_PREFIX + "/setup-tokens", "POST", create_setup_token, True),
    (_PREFIX + "/setup-tokens/<token>", "GET", get_setup_token, False),
    (_PREFIX + "/payment-tokens", "POST", create_payment_token, True),
    (_PREFIX + "/payment-tokens", "GET", list_payment_tokens, False),
    (_PREFIX + "/payment-tokens/<token>", "GET", get_payment_token, False),
    (_PREFIX + "/payment-tokens/<token>", "DELETE", delete_payment_token, False),
)
