"""The sandbox's Square face: Square's API under ``/square``.

The API model is `paygate.providers._square_mock.SquareMockAPI`, the in-memory
Square that the adapter's own tests run against through ``httpx.MockTransport``: the same
routes, JSON shapes, idempotency (same key and body: the first answer; another body:
``IDEMPOTENCY_KEY_REUSED``), error shape and event bodies, here kept in the sandbox's
persisted records and served over HTTP. It is not the fake engine: Square's objects
(payments with ``refunded_money``, orders, payment links, invoices on orders) are that
model's own, so that the tests and the sandbox share one Square and it is not written twice.

Webhooks are signed as Square signs them: ``x-square-hmacsha256-signature`` = base64
HMAC-SHA256 of *notification URL + body* under the signature key the sandbox prints, the
notification URL being the URL each delivery goes to (the adapter's ``webhook_url``).

Refunds answer ``PENDING`` and complete at once (``refund.updated``), as Square's
sandbox does within seconds. Test cards on the payment-link page: `TEST_CARDS`.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast
from urllib.parse import quote, urlencode, urlsplit

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from paygate.errors import CardDeclined, InvalidRequest
from paygate.providers import _square_webhook
from paygate.providers._square_mock import (
    DECLINING_SOURCES,
    PENDING_SOURCE,
    LinkPaymentDeclined,
    SquareMockAPI,
)
from paygate.sandbox.face import ProviderFace

if TYPE_CHECKING:
    from paygate.sandbox.app import Sandbox

__all__ = ["TEST_CARDS", "SquarePageError", "SquareFace"]

JSON = dict[str, Any]

_OK = "cnon:card-nonce-ok"
#: card numbers typed on the payment-link page → Square's sandbox test nonce
TEST_CARDS: Final[Mapping[str, str]] = {
    "4111111111111111": _OK,  # Square's sandbox Visa
    "5105105105105100": _OK,  # Square's sandbox Mastercard
    "4242424242424242": _OK,  # Stripe's, so one card works on every sandbox page
    "4000000000000002": "cnon:card-nonce-declined",
    "4000000000009995": "cnon:card-nonce-insufficient-funds",
    "4000000000000069": "cnon:card-nonce-expired",
    "4000000000000127": "cnon:card-nonce-rejected-cvv",
}

#: Square's decline code → the standard decline code (what the page shows as ``error``)
_PAGE_ERRORS: Final[Mapping[str, str]] = {
    "GENERIC_DECLINE": "card_declined",
    "CVV_FAILURE": "incorrect_cvc",
    "ADDRESS_VERIFICATION_FAILURE": "card_declined",
    "INVALID_EXPIRATION": "expired_card",
    "INSUFFICIENT_FUNDS": "insufficient_funds",
    "CARD_EXPIRED": "expired_card",
}


class SquarePageError(Exception):
    """The payment-link page cannot be shown (``status`` 404: no such link)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _now() -> str:
    return (
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def nonce_for(card: str) -> str:
    """A test card number (spaces and dashes ignored) or a ``cnon:``/``bnon:`` nonce →
    the nonce; `InvalidRequest` (code ``incorrect_number``) otherwise."""
    card = card.strip()
    if card.startswith(("cnon:", "bnon:")):
        return card
    compact = "".join(ch for ch in card if ch not in " -")
    nonce = TEST_CARDS.get(compact)
    if nonce is None:
        raise InvalidRequest(
            "use one of Square's sandbox test cards (4111 1111 1111 1111 ...)",
            provider="square",
            code="incorrect_number",
            http_status=400,
        )
    return nonce


class SquareFace(ProviderFace):
    name: ClassVar[str] = "square"
    prefix: ClassVar[str] = "/square"

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        state = sandbox.state
        self.api = SquareMockAPI(
            webhook_signature_key=self.signature_key,
            webhook_url="",  # each delivery is signed for its own URL (sign below)
            clock=_now,
            tables=lambda kind: state.records(self.name, kind),
            list_page_size=100,
            record_calls=False,
            keep_deliveries=False,
        )
        # cards on file live in the persisted records too (the model keeps them in plain
        # dicts of its own): a restarted sandbox still charges them
        self.api.cards = state.records(self.name, "cards")
        self.api._card_sources = cast("dict[str, str]", state.records(self.name, "card_sources"))
        self.api.event_listeners.append(self._on_square_event)

    # -- configuration --------------------------------------------------------------------------

    @property
    def signature_key(self) -> str:
        return self.state.secret(self.name, "signature_key")

    def secrets(self) -> Mapping[str, str]:
        return {
            "access_token": "any non-empty access token",
            "location_id": "any location id (e.g. SANDBOX)",
            "webhook_signature_key": self.signature_key,
            "webhook_url": "your webhook endpoint's URL, exactly as given to --forward-to",
        }

    def sign(self, body: bytes, url: str, timestamp: int) -> Mapping[str, str]:
        signature = _square_webhook.sign(
            body, signature_key=self.signature_key, notification_url=url
        )
        return {_square_webhook.SIGNATURE_HEADER: signature}

    def _on_square_event(self, event: JSON) -> None:
        self.emit(event, event_id=str(event["event_id"]), type=str(event["type"]))

    # -- the API ----------------------------------------------------------------------------------

    def link_url_base(self) -> str:
        return f"{self.sandbox.base_url}{self.prefix}/pay"

    def register(self) -> None:
        def api(request: Request, rest: str) -> Response:
            raw = request.get_data()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                error = {
                    "errors": [
                        {
                            "category": "INVALID_REQUEST_ERROR",
                            "code": "INVALID_CONTENT_TYPE",
                            "detail": "the body is not JSON",
                        }
                    ]
                }
                return Response(json.dumps(error), status=400, content_type="application/json")
            path = "/v2/" + rest
            with self.state.transaction(self.name):
                self.api.checkout_url = self.link_url_base()
                status, payload, headers = self.api.dispatch(
                    request.method,
                    path,
                    dict(request.args.items()),
                    body,
                    request.headers.get("Authorization", ""),
                )
                # serialized now: what follows (a refund completing) is not this answer
                answer = json.dumps(payload, separators=(",", ":"))
                if request.method == "POST" and path == "/v2/refunds" and status == 200:
                    refund = payload["refund"]
                    if refund["status"] == "PENDING":
                        self.api.complete_refund(refund["id"])
            return Response(answer, status=status, headers=headers, content_type="application/json")

        def pay(request: Request, link_id: str) -> Response:
            """The payment-link page's form: field ``card``."""
            page = f"{self.link_url_base()}/{quote(link_id, safe='')}"
            try:
                target = self.pay_link(link_id, request.form.get("card", ""))
            except CardDeclined as exc:
                return redirect(f"{page}?{urlencode({'error': exc.decline_code})}", 303)
            except InvalidRequest as exc:
                return redirect(f"{page}?{urlencode({'error': exc.code or 'invalid'})}", 303)
            except SquarePageError as exc:
                return Response(str(exc), status=exc.status)
            return redirect(target, 303)

        methods = ("GET", "POST", "PUT", "DELETE")
        self.sandbox.route(f"{self.prefix}/v2/<path:rest>", api, methods=methods)
        self.sandbox.route(f"{self.prefix}/pay/<link_id>", pay, methods=("POST",))

    # -- the payment-link page ---------------------------------------------------------------------

    def link_view(self, link_id: str) -> JSON:
        """``{"payment_link": ..., "order": ...}`` as Square's API shows them."""
        with self.state.lock:
            link = self.api.links.get(link_id)
            if link is None:
                raise SquarePageError(404, f"no such payment link: {link_id!r:.80}")
            order = self.api.orders[link["order_id"]]
            view: JSON = json.loads(json.dumps({"payment_link": link, "order": order}))
            return view

    def pay_link(self, link_id: str, card: str) -> str:
        """The customer pays the link with ``card``; returns where the browser goes next
        (the link's ``redirect_url`` with ``checkoutId``, ``orderId`` and
        ``transactionId``). Raises `CardDeclined` for a declining card."""
        nonce = nonce_for(card)
        with self.state.transaction(self.name):
            link = self.api.links.get(link_id)
            if link is None:
                raise SquarePageError(404, f"no such payment link: {link_id!r:.80}")
            try:
                query = self.api.pay_link(link_id, nonce)
            except LinkPaymentDeclined as exc:
                raise CardDeclined(
                    f"Square declined the card ({exc.code})",
                    decline_code=_PAGE_ERRORS.get(exc.code, "card_declined"),
                    provider="square",
                    code=exc.code,
                    http_status=402,
                ) from None
            target = (link.get("checkout_options") or {}).get("redirect_url")
        if not target:
            return f"{self.link_url_base()}/{quote(link_id, safe='')}?paid=1"
        separator = "&" if urlsplit(target).query else "?"
        return f"{target}{separator}{urlencode(query)}"

    # -- dashboard actions ----------------------------------------------------------------------

    def settle(self, payment_id: str, *, success: bool = True) -> JSON:
        """A PENDING payment (``bnon:bank-nonce-ok``) completes or fails."""
        with self.state.transaction(self.name):
            return self.api.settle_payment(payment_id, success=success)

    def open_dispute(self, payment_id: str) -> str:
        """The cardholder disputes a completed payment; returns the dispute id."""
        with self.state.transaction(self.name):
            payment = self.api.payments.get(payment_id)
            if payment is None or payment["status"] != "COMPLETED":
                raise InvalidRequest(
                    f"no completed Square payment {payment_id!r:.80}", provider="square"
                )
            return str(self.api.open_dispute(payment_id)["id"])

    def resolve_dispute(self, dispute_id: str, *, won: bool = True) -> JSON:
        with self.state.transaction(self.name):
            return self.api.set_dispute_state(dispute_id, "WON" if won else "LOST")

    def renew_subscription(self, subscription_id: str, *, success: bool = True) -> JSON:
        with self.state.transaction(self.name):
            return self.api.renew_subscription(subscription_id, success=success)

    def pay_invoice(self, invoice_id: str, card: str = "4111 1111 1111 1111") -> JSON:
        with self.state.transaction(self.name):
            return self.api.pay_invoice(invoice_id, nonce_for(card))

    # -- triggers ---------------------------------------------------------------------------------

    def trigger_types(self) -> list[str]:
        return sorted(_TRIGGERS)

    def trigger(self, event_type: str) -> list[str]:
        action = _TRIGGERS.get(event_type)
        if action is None:
            return super().trigger(event_type)
        before = {event.id for event in self.sandbox.bus.events(self.name, 1000)}
        with self.state.transaction(self.name):
            action(self)
        return [
            event.id
            for event in reversed(self.sandbox.bus.events(self.name, 1000))
            if event.id not in before
        ]

    def _call(self, method: str, path: str, body: JSON | None = None) -> JSON:
        status, payload, _ = self.api.dispatch(method, path, {}, body, "Bearer sandbox-trigger")
        if status != 200:
            raise InvalidRequest(f"Square {method} {path}: {payload}", provider="square")
        return dict(payload)

    def _payment(self, source: str = _OK, *, autocomplete: bool = True) -> JSON:
        body = {
            "source_id": source,
            "idempotency_key": secrets.token_hex(16),
            "amount_money": {"amount": 2000, "currency": "USD"},
            "autocomplete": autocomplete,
            "reference_id": "ord_trigger_" + secrets.token_hex(4),
            "location_id": "SANDBOX",
        }
        _, payload, _ = self.api.dispatch("POST", "/v2/payments", {}, body, "Bearer trigger")
        return dict(payload["payment"])

    def _refund(self) -> None:
        payment = self._payment()
        refund = self._call(
            "POST",
            "/v2/refunds",
            {
                "idempotency_key": secrets.token_hex(16),
                "payment_id": payment["id"],
                "amount_money": {"amount": 500, "currency": "USD"},
            },
        )["refund"]
        self.api.complete_refund(refund["id"])

    def _subscription(self) -> Any:
        customer = self._call(
            "POST",
            "/v2/customers",
            {
                "idempotency_key": secrets.token_hex(16),
                "given_name": "Trigger",
            },
        )["customer"]
        return self._call(
            "POST",
            "/v2/subscriptions",
            {
                "idempotency_key": secrets.token_hex(16),
                "location_id": "SANDBOX",
                "customer_id": customer["id"],
                "plan_variation_id": "SANDBOX_PLAN",
            },
        )["subscription"]

    def _invoice_paid(self) -> None:
        order = self._call(
            "POST",
            "/v2/orders",
            {
                "idempotency_key": secrets.token_hex(16),
                "order": {
                    "location_id": "SANDBOX",
                    "line_items": [
                        {
                            "name": "Trigger",
                            "quantity": "1",
                            "base_price_money": {"amount": 1500, "currency": "USD"},
                        }
                    ],
                },
            },
        )["order"]
        invoice = self._call(
            "POST",
            "/v2/invoices",
            {
                "idempotency_key": secrets.token_hex(16),
                "invoice": {
                    "location_id": "SANDBOX",
                    "order_id": order["id"],
                    "payment_requests": [{"request_type": "BALANCE", "due_date": "2030-01-01"}],
                    "delivery_method": "EMAIL",
                    "accepted_payment_methods": {"card": True},
                },
            },
        )["invoice"]
        self._call(
            "POST",
            f"/v2/invoices/{invoice['id']}/publish",
            {
                "idempotency_key": secrets.token_hex(16),
                "version": invoice["version"],
            },
        )
        self.api.pay_invoice(invoice["id"])


_TRIGGERS: Final = {
    "payment.created": lambda face: face._payment(),
    "payment.updated": lambda face: face._call(
        "POST", f"/v2/payments/{face._payment(autocomplete=False)['id']}/complete", {}
    ),
    "payment.failed": lambda face: face._payment(next(iter(DECLINING_SOURCES))),
    "payment.pending": lambda face: face._payment(PENDING_SOURCE),
    "refund.created": lambda face: face._refund(),
    "refund.updated": lambda face: face._refund(),
    "dispute.created": lambda face: face.api.open_dispute(face._payment()["id"]),
    "dispute.state.updated": lambda face: face.api.set_dispute_state(
        face.api.open_dispute(face._payment()["id"])["id"], "LOST"
    ),
    "subscription.created": lambda face: face._subscription(),
    "subscription.updated": lambda face: face.api.renew_subscription(face._subscription()["id"]),
    "invoice.payment_made": lambda face: face._invoice_paid(),
}
