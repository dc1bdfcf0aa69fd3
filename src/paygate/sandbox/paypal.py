"""The sandbox's PayPal face: PayPal's REST API under ``/paypal``, on the fake engine.

What the PayPal adapter calls, in PayPal's JSON and error shapes: the OAuth token
(``/v1/oauth2/token``), Orders v2 (create → the buyer approves on the sandbox's approval
page → capture, or authorize → authorization capture / void), captures and refunds
(Payments v2), subscriptions (billing v1), invoicing v2, disputes, Transaction Search
(reporting) and webhooks: ``verify-webhook-signature`` answers SUCCESS for the events the
sandbox sent and FAILURE for anything else, and the signing certificate is served at
``/paypal/v1/notifications/certs/...`` (the adapter's offline verification fetches it
there when its ``base_url`` is a local sandbox). ``PayPal-Request-Id`` replays the first
answer, as PayPal does (it does not compare the bodies).

State: each order is a payment of the face's engine (``pay_<hex>``); what PayPal has and
the engine does not (the order's intent, approval, its PayPal ids) is in the face's
records. The engine's events become PayPal's (``PAYMENT.CAPTURE.COMPLETED`` ...), with
PayPal's five ``PAYPAL-*`` signature headers (SHA256withRSA over
``transmission_id|time|webhook_id|crc32(body)``).

Outcomes on the approval page (or a ``vault_id`` naming them, charged at once):
`FUNDING` maps each choice to the engine's scripted token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import uuid
import zlib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Final
from urllib.parse import quote, urlencode, urlsplit

from werkzeug.wrappers import Response

from paygate.errors import CardDeclined, NotFound, PaygateError, ProviderError
from paygate.money import Money
from paygate.sandbox.face import ProviderFace
from paygate.sandbox.state import WireAnswer

__all__ = ["FUNDING", "PayPalAPIError", "PayPalFace"]

JSON = dict[str, Any]

#: the approval page's funding choices (and ``vault_id`` values) → the engine's token
FUNDING: Final[Mapping[str, str]] = {
    "paypal_balance": "tok_visa",
    "card_visa": "tok_visa",
    "card_declined": "tok_declined",
    "insufficient_funds": "tok_insufficient_funds",
    "pending_review": "tok_processing",
    "dispute": "tok_dispute",
}
#: a vault id may also name an engine token directly (``tok_visa``, ``tok_declined`` ...)
_TOKENS: Final = frozenset(FUNDING.values()) | {"tok_expired_card", "tok_refund_pending"}

#: engine decline code → the ``issue`` PayPal answers with
_DECLINE_ISSUES: Final[Mapping[str, str]] = {
    "card_declined": "INSTRUMENT_DECLINED",
    "insufficient_funds": "TRANSACTION_REFUSED",
    "expired_card": "CARD_EXPIRED",
    "incorrect_cvc": "INSTRUMENT_DECLINED",
    "processing_error": "INSTRUMENT_DECLINED",
}

#: engine event type → PayPal event type (``None``: decided by the object, below)
_EVENTS: Final[Mapping[str, str | None]] = {
    "payment.succeeded": "PAYMENT.CAPTURE.COMPLETED",
    "payment.processing": "PAYMENT.CAPTURE.PENDING",
    "payment.failed": "PAYMENT.CAPTURE.DECLINED",
    "payment.authorized": "PAYMENT.AUTHORIZATION.CREATED",
    "payment.canceled": "PAYMENT.AUTHORIZATION.VOIDED",
    "refund.created": "PAYMENT.CAPTURE.REFUNDED",
    "refund.succeeded": "PAYMENT.CAPTURE.REFUNDED",
    "refund.failed": "PAYMENT.CAPTURE.REFUNDED",
    "dispute.opened": "CUSTOMER.DISPUTE.CREATED",
    "dispute.updated": "CUSTOMER.DISPUTE.UPDATED",
    "dispute.won": "CUSTOMER.DISPUTE.RESOLVED",
    "dispute.lost": "CUSTOMER.DISPUTE.RESOLVED",
    "subscription.updated": None,
    "subscription.canceled": "BILLING.SUBSCRIPTION.CANCELLED",
    "subscription.payment_failed": "BILLING.SUBSCRIPTION.PAYMENT.FAILED",
    "invoice.paid": None,
    "invoice.voided": "INVOICING.INVOICE.CANCELLED",
}

_RESOURCE_TYPES: Final[Mapping[str, str]] = {
    "PAYMENT.CAPTURE": "capture",
    "PAYMENT.AUTHORIZATION": "authorization",
    "CUSTOMER.DISPUTE": "dispute",
    "BILLING.SUBSCRIPTION": "subscription",
    "INVOICING.INVOICE": "invoices",
    "CHECKOUT.ORDER": "checkout-order",
}

_CAPTURE_STATUS: Final[Mapping[str, str]] = {
    "succeeded": "COMPLETED",
    "partially_refunded": "PARTIALLY_REFUNDED",
    "refunded": "REFUNDED",
    "processing": "PENDING",
    "failed": "DECLINED",
    "disputed": "COMPLETED",
    "charged_back": "COMPLETED",
}
_AUTHORIZATION_STATUS: Final[Mapping[str, str]] = {
    "authorized": "CREATED",
    "processing": "PENDING",
    "failed": "DENIED",
    "canceled": "VOIDED",
}
_REFUND_STATUS: Final[Mapping[str, str]] = {
    "succeeded": "COMPLETED",
    "pending": "PENDING",
    "failed": "FAILED",
    "canceled": "CANCELLED",
}
_SUBSCRIPTION_STATUS: Final[Mapping[str, str]] = {
    "active": "ACTIVE",
    "trialing": "ACTIVE",
    "past_due": "SUSPENDED",
    "incomplete": "APPROVED",
    "canceled": "CANCELLED",
    "incomplete_expired": "EXPIRED",
}
_DISPUTE_STATUS: Final[Mapping[str, tuple[str, str | None]]] = {
    "open": ("WAITING_FOR_SELLER_RESPONSE", None),
    "under_review": ("UNDER_REVIEW", None),
    "won": ("RESOLVED", "RESOLVED_SELLER_FAVOUR"),
    "lost": ("RESOLVED", "RESOLVED_BUYER_FAVOUR"),
}
_DISPUTE_REASONS: Final[Mapping[str, str]] = {
    "fraudulent": "UNAUTHORISED",
    "product_not_received": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
    "product_unacceptable": "MERCHANDISE_OR_SERVICE_NOT_AS_DESCRIBED",
    "duplicate": "DUPLICATE_TRANSACTION",
}

#: the plan price when no plan was defined with `PayPalFace.define_plan`
DEFAULT_PLAN_PRICE: Final = Money(1000, "USD")
_CERT_NAME: Final = "CERT-paygate-sandbox"


# == errors =====================================================================================


class PayPalAPIError(Exception):
    """An answer in PayPal's error shape (``name``, ``message``, ``details[].issue``)."""

    _NAMES: ClassVar[Mapping[int, tuple[str, str]]] = {
        400: (
            "INVALID_REQUEST",
            "Request is not well-formed, syntactically incorrect, or violates schema.",
        ),
        401: (
            "AUTHENTICATION_FAILURE",
            "Authentication failed due to invalid authentication credentials or a missing "
            "Authorization header.",
        ),
        404: ("RESOURCE_NOT_FOUND", "The specified resource does not exist."),
        422: (
            "UNPROCESSABLE_ENTITY",
            "The requested action could not be performed, semantically incorrect, or failed "
            "business validation.",
        ),
    }

    def __init__(
        self, status: int, issue: str, description: str, *, field: str | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        name, message = self._NAMES.get(status, ("INTERNAL_SERVER_ERROR", "An error occurred."))
        detail: JSON = {"issue": issue, "description": description}
        if field:
            detail.update(field=field, location="body")
        self.body: JSON = {
            "name": name,
            "message": message,
            "debug_id": secrets.token_hex(6),
            "details": [detail],
            "links": [
                {
                    "href": f"https://developer.paypal.com/docs/api/orders/v2/#error-{issue}",
                    "rel": "information_link",
                    "method": "GET",
                }
            ],
        }

    def answer(self) -> WireAnswer:
        return WireAnswer(self.status, _dumps(self.body))


def _invalid(issue: str, description: str, field: str | None = None) -> PayPalAPIError:
    return PayPalAPIError(400, issue, description, field=field)


def _unprocessable(issue: str, description: str) -> PayPalAPIError:
    return PayPalAPIError(422, issue, description)


def _missing(kind: str, object_id: str) -> PayPalAPIError:
    return PayPalAPIError(
        404,
        "INVALID_RESOURCE_ID",
        f"Specified resource ID does not exist ({kind} {object_id:.60}).",
    )


def _from_engine(exc: ProviderError) -> PayPalAPIError:
    if isinstance(exc, CardDeclined):
        issue = _DECLINE_ISSUES.get(exc.decline_code or "", "INSTRUMENT_DECLINED")
        return _unprocessable(
            issue,
            "The instrument presented was either declined by the "
            "processor or bank, or it can't be used for this payment.",
        )
    if isinstance(exc, NotFound):
        return PayPalAPIError(404, "INVALID_RESOURCE_ID", str(exc))
    if exc.code == "amount_too_large":
        return _unprocessable("REFUND_AMOUNT_EXCEEDED", str(exc))
    if exc.code == "charge_disputed":
        return _unprocessable("REFUND_NOT_PERMITTED_DUE_TO_CHARGEBACK", str(exc))
    return _unprocessable("UNPROCESSABLE_ENTITY", str(exc))


# == small helpers ==============================================================================


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def _time(unix: float | None = None) -> str:
    moment = dt.datetime.fromtimestamp(
        dt.datetime.now(dt.timezone.utc).timestamp() if unix is None else unix, dt.timezone.utc
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _paypal_id(seed: str, length: int = 17) -> str:
    """A PayPal-looking id (upper-case letters and digits) derived from an engine id."""
    digest = hashlib.sha256(seed.encode()).digest()
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # the ids' pattern in PayPal's specs
    return "".join(alphabet[b % 32] for b in digest)[:length]


def _value(money: Money) -> JSON:
    return {"currency_code": money.currency, "value": f"{money.to_decimal():f}"}


def _money(field: Any, where: str) -> Money:
    if not isinstance(field, Mapping):
        raise _invalid("MISSING_REQUIRED_PARAMETER", "A required field is missing.", where)
    currency, value = field.get("currency_code"), field.get("value")
    if not isinstance(currency, str) or not isinstance(value, str):
        raise _invalid("MISSING_REQUIRED_PARAMETER", "currency_code and value are required.", where)
    try:
        money = Money.of(Decimal(value), currency)
    except (InvalidOperation, PaygateError, ValueError):
        raise _invalid(
            "INVALID_PARAMETER_VALUE",
            f"{value!r:.20} {currency!r:.5} is not an amount PayPal takes.",
            where,
        ) from None
    if money.amount <= 0:
        raise _unprocessable("CANNOT_BE_ZERO_OR_NEGATIVE", f"{where} must be positive.")
    return money


def _link(href: str, rel: str, method: str = "GET") -> JSON:
    return {"href": href, "rel": rel, "method": method}


def _with_query(url: str, **params: str) -> str:
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}{urlencode(params)}"


# == the face ===================================================================================


class PayPalFace(ProviderFace):
    name: ClassVar[str] = "paypal"
    prefix: ClassVar[str] = "/paypal"

    # -- configuration --------------------------------------------------------------------------

    @property
    def webhook_id(self) -> str:
        """The webhook id deliveries to ``--forward-to`` URLs are signed for."""
        return _paypal_id(self.state.secret(self.name, "webhook_id"))

    def secrets(self) -> Mapping[str, str]:
        return {
            "client_id": "any non-empty client id",
            "client_secret": "any non-empty client secret",
            "webhook_id": self.webhook_id,
        }

    def cert_url(self) -> str:
        return f"{self.base_url}/v1/notifications/certs/{_CERT_NAME}"

    def _signing(self) -> tuple[Any, bytes]:
        """The RSA key and certificate (PEM) the sandbox signs PayPal events with, made
        once and kept in the store (so a restarted sandbox's signatures still verify)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        cached = getattr(self, "_signing_cache", None)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        with self.state.lock:
            stored = self.state.store.load_state("secret:paypal:signing")
            if stored is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                now = dt.datetime.now(dt.timezone.utc)
                name = x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paygate sandbox"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "paypal.sandbox.paygate.invalid"),
                    ]
                )
                cert = (
                    x509.CertificateBuilder()
                    .subject_name(name)
                    .issuer_name(name)
                    .public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - dt.timedelta(days=1))
                    .not_valid_after(now + dt.timedelta(days=3650))
                    .sign(key, hashes.SHA256())
                )
                stored = {
                    "key": key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ).decode(),
                    "cert": cert.public_bytes(serialization.Encoding.PEM).decode(),
                }
                self.state.store.save_state("secret:paypal:signing", stored)
            loaded = serialization.load_pem_private_key(stored["key"].encode(), password=None)
            result = (loaded, stored["cert"].encode())
            self._signing_cache = result
            return result

    def _webhook_id_for(self, url: str) -> str:
        with self.state.lock:  # called from the delivery threads
            for webhook_id, webhook in self.state.records(self.name, "webhooks").items():
                if webhook["url"] == url:
                    return webhook_id
            return self.webhook_id

    def sign(self, body: bytes, url: str, timestamp: int) -> Mapping[str, str]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        key, _ = self._signing()
        transmission_id = str(uuid.uuid4())
        sent_at = _time(timestamp)
        message = f"{transmission_id}|{sent_at}|{self._webhook_id_for(url)}|{zlib.crc32(body)}"
        signature = key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
        return {
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": sent_at,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-CERT-URL": self.cert_url(),
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }

    def register(self) -> None:
        from paygate.sandbox import _paypal_api

        _paypal_api.register(self)

    # -- records ----------------------------------------------------------------------------------

    def records(self, kind: str) -> dict[str, JSON]:
        return self.state.records(self.name, kind)

    def order(self, order_id: str) -> JSON:
        order = self.records("orders").get(order_id)
        if order is None:
            raise _missing("order", order_id)
        return order

    def order_of_engine(self, engine_id: str) -> JSON | None:
        order_id = self.records("engine_orders").get(engine_id)
        return None if order_id is None else self.records("orders").get(str(order_id["order"]))

    def wire_id(self, engine_id: str) -> str:
        """How PayPal's API names an engine object: a payment is its order, a refund, a
        dispute, a subscription or an invoice its PayPal id (the dashboard shows these)."""
        with self.state.lock:
            order = self.records("engine_orders").get(engine_id)
            if order is not None:
                return str(order["order"])
            for kind in ("refunds", "disputes", "subscriptions", "invoices"):
                known = self.records(f"engine_{kind}").get(engine_id)
                if known is not None:
                    return str(known["paypal_id"])
            return engine_id

    # -- events -----------------------------------------------------------------------------------

    def on_engine_event(self, event: JSON) -> None:
        from paygate.sandbox import _paypal_api

        _paypal_api.translate_event(self, event)

    def emit_event(self, event_type: str, resource: JSON, *, summary: str | None = None) -> str:
        event_id = (
            "WH-"
            + _paypal_id(secrets.token_hex(8), 17)
            + "-"
            + _paypal_id(secrets.token_hex(8), 17)
        )
        group = event_type.rsplit(".", 1)[0]
        while group and group not in _RESOURCE_TYPES:
            group = group.rsplit(".", 1)[0] if "." in group else ""
        payload = {
            "id": event_id,
            "event_version": "1.0",
            "create_time": _time(),
            "resource_type": _RESOURCE_TYPES.get(group, "unknown"),
            "resource_version": "2.0",
            "event_type": event_type,
            "summary": summary or f"{event_type} (paygate sandbox)",
            "resource": resource,
            "links": [
                _link(f"{self.base_url}/v1/notifications/webhooks-events/{event_id}", "self"),
            ],
        }
        self.emit(payload, event_id=event_id, type=event_type)
        return event_id

    def trigger_types(self) -> list[str]:
        from paygate.sandbox import _paypal_api

        return sorted(_paypal_api.TRIGGERS)

    def trigger(self, event_type: str) -> list[str]:
        from paygate.sandbox import _paypal_api

        if event_type not in _paypal_api.TRIGGERS:
            return super().trigger(event_type)
        return _paypal_api.TRIGGERS[event_type](self)

    # -- plans ------------------------------------------------------------------------------------

    def define_plan(self, plan_id: str, price: Money) -> None:
        """What billing plan ``plan_id`` costs per month (others cost 10.00 USD)."""
        with self.state.transaction(self.name):
            self.records("plans")[plan_id] = {"amount": price.amount, "currency": price.currency}

    # -- the approval page: what it shows and what its buttons do ---------------------------------

    def approval_url(self, token: str) -> str:
        """Where the buyer approves an order or a subscription (``token`` is its id)."""
        return f"{self.sandbox.base_url}/paypal/approve/{quote(token, safe='')}"

    def approval_view(self, token: str) -> JSON:
        """The order (``kind: "order"``) or subscription (``"subscription"``) the approval
        page shows, as PayPal's API shows it, plus ``kind`` and the ``funding`` choices."""
        from paygate.sandbox import _paypal_api

        with self.state.lock:
            return _paypal_api.approval_view(self, token)

    def approve(self, token: str, funding: str = "paypal_balance") -> str:
        """The buyer approves with ``funding`` (a key of `FUNDING`); returns where the
        browser goes next (the ``return_url`` with ``token=`` and ``PayerID=``)."""
        from paygate.sandbox import _paypal_api

        with self.state.transaction(self.name):
            return _paypal_api.approve(self, token, funding)

    def cancel_approval(self, token: str) -> str:
        """The buyer cancels on the approval page: the ``cancel_url`` with ``token=``."""
        from paygate.sandbox import _paypal_api

        with self.state.transaction(self.name):
            return _paypal_api.cancel_approval(self, token)

    # -- dashboard actions ----------------------------------------------------------------------

    def open_dispute(self, order_id: str, *, reason: str = "fraudulent") -> str:
        """The buyer disputes the order's capture; returns the PayPal dispute id."""
        from paygate.sandbox import _paypal_api

        with self.state.transaction(self.name) as engine:
            dispute = engine.open_dispute(str(self.order(order_id)["engine_id"]), reason=reason)
            return _paypal_api.dispute_id(self, dispute.id)

    def pay_invoice(self, invoice_id: str, funding: str = "paypal_balance") -> None:
        """The recipient pays a sent invoice (``INVOICING.INVOICE.PAID``)."""
        from paygate.sandbox import _paypal_api

        with self.state.transaction(self.name):
            _paypal_api.pay_invoice(self, invoice_id, funding)


def json_answer(answer: WireAnswer, debug_id: str) -> Response:
    headers = {"PayPal-Debug-Id": debug_id}
    return Response(
        answer.body, status=answer.status, headers=headers, content_type=answer.content_type
    )
