"""An in-memory Square API behind an ``httpx.MockTransport``, for tests and benchmarks.

Like the fake provider, but one level down: the real
[`SquareProvider`][paygate.providers.square.SquareProvider] and the real ``squareup`` SDK run
unchanged, and only the HTTP transport is replaced. It keeps payments, refunds, orders, payment
links, customers, subscriptions, invoices and disputes in dicts, honours idempotency keys the
way Square does (same key and same body: the first answer again; same key, another body:
``IDEMPOTENCY_KEY_REUSED``), and builds webhook deliveries signed exactly as Square signs them.

The same model is the sandbox's Square face (`paygate.sandbox.square`): there
`SquareMockAPI.dispatch` answers requests without httpx, ``tables`` keeps the
objects in the sandbox's persisted records, ``clock`` dates them, and
``event_listeners`` hand each event to the sandbox's webhook delivery.

Outcomes are scripted by the ``source_id``, after Square's sandbox test nonces
(``cnon:card-nonce-ok`` succeeds, ``cnon:card-nonce-declined`` is a ``GENERIC_DECLINE``...),
and by `SquareMockAPI.fail_next` for transport-level failures.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from paygate.models import WebhookDelivery
from paygate.providers import _square_webhook

__all__ = [
    "DECLINING_SOURCES",
    "SAVED_CARDS",
    "VERIFICATION_LATER_SOURCE",
    "LinkPaymentDeclined",
    "RecordedCall",
    "SquareMockAPI",
]

#: source_id → (Square error code, category) of a declined CreatePayment
DECLINING_SOURCES: dict[str, str] = {
    "cnon:card-nonce-declined": "GENERIC_DECLINE",
    "cnon:card-nonce-rejected-cvv": "CVV_FAILURE",
    "cnon:card-nonce-rejected-postalcode": "ADDRESS_VERIFICATION_FAILURE",
    "cnon:card-nonce-rejected-expiration": "INVALID_EXPIRATION",
    "cnon:card-nonce-insufficient-funds": "INSUFFICIENT_FUNDS",
    "cnon:card-nonce-expired": "CARD_EXPIRED",
}
#: source_id of a payment that stays PENDING (a bank transfer settling)
PENDING_SOURCE = "bnon:bank-nonce-ok"
#: CreateCard source_id → (card_brand, last_4) of the card on file it saves
SAVED_CARDS: dict[str, tuple[str, str]] = {
    "cnon:card-nonce-ok": ("VISA", "1111"),
    "cnon:card-nonce-mastercard": ("MASTERCARD", "5100"),
}
#: a CreateCard source_id (the mock's own) whose card on file the bank later wants
#: verified: charges of it answer ``CARD_DECLINED_VERIFICATION_REQUIRED``
VERIFICATION_LATER_SOURCE = "cnon:card-nonce-verification-later"

_TIME = "2026-01-01T00:00:00.000Z"


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _next_month(day: str) -> str:
    """``YYYY-MM-DD`` a month later (the 28th at most: every month has one)."""
    year, month, date = (int(part) for part in day.split("-"))
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return f"{year:04d}-{month:02d}-{min(date, 28):02d}"


def _created(obj: dict[str, Any]) -> datetime:
    moment = _instant(obj["created_at"])
    assert moment is not None
    return moment


class LinkPaymentDeclined(Exception):
    """A card was declined on the payment link's page; ``code`` is Square's error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class RecordedCall:
    method: str
    path: str
    body: Any
    status: int
    response: Any
    #: answered by fail_next (deliberately off-spec codes included), not by the API model
    scripted: bool = False
    #: the query string's parameters (list endpoints: cursor, begin_time, limit, ...)
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class _Failure:
    status: int
    code: str | None
    category: str
    exception: type[Exception] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class SquareMockAPI:
    """A stateful stand-in for ``connect.squareupsandbox.com``."""

    def __init__(
        self,
        *,
        webhook_signature_key: str = "whsig-test-key",
        webhook_url: str = "https://shop.example/webhooks/square",
        refund_status: str = "PENDING",
        list_page_size: int = 100,
        clock: Callable[[], str] | None = None,
        tables: Callable[[str], dict[str, Any]] | None = None,
        checkout_url: str | None = None,
        record_calls: bool = True,
        keep_deliveries: bool = True,
    ) -> None:
        """``clock`` (an RFC 3339 time) dates new objects (default: a fixed time, so tests are
        reproducible); ``tables(kind)`` gives the dict each kind of object lives in (the
        sandbox passes its persisted records; default: fresh dicts); ``checkout_url`` is
        where payment links point (default: ``https://square.link/u/``); ``record_calls``
        and ``keep_deliveries`` off stop `calls` and `take_webhooks` from
        growing in a long-running server (events still go to `event_listeners`)."""
        table = tables or (lambda kind: {})
        self.webhook_signature_key = webhook_signature_key
        self.webhook_url = webhook_url
        #: the status a new refund gets (Square answers PENDING, then refund.updated)
        self.refund_status = refund_status
        #: the most items a list endpoint answers per page (Square's own maximum is 100;
        #: the request's ``limit`` lowers it further)
        self.list_page_size = list_page_size
        self.checkout_url = checkout_url
        self.record_calls = record_calls
        self.keep_deliveries = keep_deliveries
        self._clock = clock
        self.payouts: dict[str, dict[str, Any]] = table("payouts")
        self.payout_entries: dict[str, list[dict[str, Any]]] = table("payout_entries")
        self._cursors: dict[str, list[Any]] = table("cursors")  # token -> [listing, start]
        self._query: dict[str, str] = {}
        self.payments: dict[str, dict[str, Any]] = table("payments")
        self.refunds: dict[str, dict[str, Any]] = table("refunds")
        self.orders: dict[str, dict[str, Any]] = table("orders")
        self.links: dict[str, dict[str, Any]] = table("links")
        self.customers: dict[str, dict[str, Any]] = table("customers")
        self.subscriptions: dict[str, dict[str, Any]] = table("subscriptions")
        self.invoices: dict[str, dict[str, Any]] = table("invoices")
        self.disputes: dict[str, dict[str, Any]] = table("disputes")
        self.calls: list[RecordedCall] = []
        #: called with every call (e.g. to validate bodies against Square's OpenAPI spec)
        self.observers: list[Callable[[RecordedCall], None]] = []
        #: called with every event (a Square event body as a dict) when it happens
        self.event_listeners: list[Callable[[dict[str, Any]], None]] = []
        # "path key" -> [fingerprint of the body, status, answer]
        self._idempotency: dict[str, list[Any]] = table("idempotency")
        self._counters: dict[str, int] = table("counters")
        self._failures: list[_Failure] = []
        self._webhooks: list[WebhookDelivery] = []
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., tuple[int, Any]]]] = [
            ("POST", re.compile(r"/v2/payments"), self._create_payment),
            ("GET", re.compile(r"/v2/payments"), self._list_payments),
            ("GET", re.compile(r"/v2/payouts"), self._list_payouts),
            ("GET", re.compile(r"/v2/payouts/([^/]+)/payout-entries"), self._list_entries),
            ("GET", re.compile(r"/v2/payments/([^/]+)"), self._get_payment),
            ("PUT", re.compile(r"/v2/payments/([^/]+)"), self._update_payment),
            ("POST", re.compile(r"/v2/payments/([^/]+)/complete"), self._complete_payment),
            ("POST", re.compile(r"/v2/payments/([^/]+)/cancel"), self._cancel_payment),
            ("POST", re.compile(r"/v2/refunds"), self._refund_payment),
            ("GET", re.compile(r"/v2/refunds/([^/]+)"), self._get_refund),
            ("POST", re.compile(r"/v2/customers"), self._create_customer),
            ("POST", re.compile(r"/v2/subscriptions"), self._create_subscription),
            ("GET", re.compile(r"/v2/subscriptions/([^/]+)"), self._get_subscription),
            ("POST", re.compile(r"/v2/subscriptions/([^/]+)/cancel"), self._cancel_subscription),
            ("POST", re.compile(r"/v2/online-checkout/payment-links"), self._create_link),
            ("GET", re.compile(r"/v2/online-checkout/payment-links/([^/]+)"), self._get_link),
            ("POST", re.compile(r"/v2/orders"), self._create_order),
            ("GET", re.compile(r"/v2/orders/([^/]+)"), self._get_order),
            ("POST", re.compile(r"/v2/invoices"), self._create_invoice),
            ("POST", re.compile(r"/v2/invoices/([^/]+)/publish"), self._publish_invoice),
            ("GET", re.compile(r"/v2/disputes/([^/]+)"), self._get_dispute),
            ("GET", re.compile(r"/v2/disputes"), self._list_disputes),
            ("GET", re.compile(r"/v2/customers/([^/]+)"), self._get_customer),
            ("GET", re.compile(r"/v2/invoices/([^/]+)"), self._get_invoice),
            ("GET", re.compile(r"/v2/refunds"), self._list_refunds),
        ]
        self.cards: dict[str, dict[str, Any]] = {}
        self._card_sources: dict[str, str] = {}
        self._routes += [
            ("GET", re.compile(r"/v2/customers"), self._list_customers),
            ("POST", re.compile(r"/v2/customers/search"), self._search_customers),
            ("PUT", re.compile(r"/v2/customers/([^/]+)"), self._update_customer),
            ("DELETE", re.compile(r"/v2/customers/([^/]+)"), self._delete_customer),
            ("POST", re.compile(r"/v2/cards"), self._create_card),
            ("GET", re.compile(r"/v2/cards"), self._list_cards),
            ("GET", re.compile(r"/v2/cards/([^/]+)"), self._get_card),
            ("POST", re.compile(r"/v2/cards/([^/]+)/disable"), self._disable_card),
        ]

    # -- wiring ----------------------------------------------------------------------------

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def http_client(self) -> httpx.Client:
        return httpx.Client(transport=self.transport)

    def fail_next(
        self,
        status: int = 500,
        code: str | None = "INTERNAL_SERVER_ERROR",
        category: str = "API_ERROR",
        *,
        exception: type[Exception] | None = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests with an error (or raise ``exception``)."""
        for _ in range(times):
            self._failures.append(_Failure(status, code, category, exception, headers or {}))

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        scripted = self._failures[0].exception if self._failures else None
        if scripted is not None:
            self._failures.pop(0)
            raise scripted("scripted transport failure")
        status, payload, headers = self.dispatch(
            request.method,
            request.url.path,
            dict(request.url.params),
            body,
            request.headers.get("authorization", ""),
        )
        return httpx.Response(status, json=payload, headers=headers)

    def dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: Any,
        authorization: str,
    ) -> tuple[int, Any, dict[str, str]]:
        """One API request → (HTTP status, JSON answer, headers), without any transport:
        what `handle` (httpx) and the sandbox's HTTP server both call."""
        self._query = query
        if self._failures:
            failure = self._failures.pop(0)
            errors = {"errors": [{"category": failure.category, "code": failure.code}]}
            return self._respond(method, path, body, failure.status, errors, failure)
        if authorization in ("", "Bearer "):
            status, payload = self._error(401, "UNAUTHORIZED", "AUTHENTICATION_ERROR")
            return self._respond(method, path, body, status, payload)
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if route_method == method and match:
                if body is not None and not isinstance(body, dict):
                    status, payload = self._error(
                        400, "INVALID_CONTENT_TYPE", detail="the body must be a JSON object"
                    )
                    return self._respond(method, path, body, status, payload)
                groups = match.groups()
                try:
                    status, payload = self._idempotent(
                        path, body, functools.partial(handler, body, *groups)
                    )
                except (KeyError, TypeError, ValueError) as exc:
                    # a request missing a field or with one of the wrong type: Square's 400
                    status, payload = self._error(
                        400, "BAD_REQUEST", detail=f"invalid request ({type(exc).__name__}: {exc})"
                    )
                return self._respond(method, path, body, status, payload)
        return self._respond(method, path, body, 404, self._error(404, "NOT_FOUND")[1])

    def _respond(
        self,
        method: str,
        path: str,
        body: Any,
        status: int,
        payload: Any,
        failure: _Failure | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        call = RecordedCall(
            method, path, body, status, payload, scripted=failure is not None, query=self._query
        )
        if self.record_calls:
            self.calls.append(call)
        for observer in self.observers:
            observer(call)
        headers = {"square-request-id": f"req-{self._count('requests')}"}
        if failure is not None:
            headers.update(failure.headers)
        return status, payload, headers

    def _idempotent(
        self, path: str, body: Any, run: Callable[[], tuple[int, Any]]
    ) -> tuple[int, Any]:
        key = body.get("idempotency_key") if isinstance(body, dict) else None
        if not key:
            return run()
        fingerprint = json.dumps(body, sort_keys=True)
        slot = f"{path} {key}"
        seen = self._idempotency.get(slot)
        if seen is not None:
            if seen[0] != fingerprint:
                return self._error(400, "IDEMPOTENCY_KEY_REUSED", "INVALID_REQUEST_ERROR")
            return seen[1], seen[2]
        status, payload = run()
        if status < 500:
            # a copy: the stored answer must not follow later changes to the objects
            self._idempotency[slot] = [fingerprint, status, json.loads(json.dumps(payload))]
        return status, payload

    @staticmethod
    def _error(
        status: int, code: str, category: str = "INVALID_REQUEST_ERROR", detail: str = ""
    ) -> tuple[int, Any]:
        error: dict[str, Any] = {"category": category, "code": code}
        if detail:
            error["detail"] = detail
        return status, {"errors": [error]}

    def _id(self, prefix: str) -> str:
        return f"{prefix}{self._count('ids'):06d}"

    def _count(self, name: str) -> int:
        """The next number of counter ``name`` (kept in a table, so a saved state resumes)."""
        self._counters[name] = number = int(self._counters.get(name, 0)) + 1
        return number

    def _now(self) -> str:
        return self._clock() if self._clock is not None else _TIME

    # -- payments ----------------------------------------------------------------------------

    def _create_payment(self, body: dict[str, Any]) -> tuple[int, Any]:
        source = body["source_id"]
        payment: dict[str, Any] = {
            "id": self._id("sqpay"),
            "created_at": self._now(),
            "updated_at": self._now(),
            "amount_money": dict(body["amount_money"]),
            "total_money": dict(body["amount_money"]),
            "location_id": body.get("location_id", "MAIN"),
            "source_type": "CARD",
            "version_token": "v1",
        }
        for name in ("reference_id", "customer_id", "note", "order_id"):
            if body.get(name):
                payment[name] = body[name]
        if source.startswith("ccof:"):
            refused = self._card_on_file(body)
            if refused is not None:
                return refused
        decline = DECLINING_SOURCES.get(source)
        if decline is not None:
            payment["status"] = "FAILED"
            payment["card_details"] = {"status": "FAILED"}
            self.payments[payment["id"]] = payment
            self._emit("payment.created", "payment", payment)  # Square reports failed ones too
            return 402, {
                "errors": [
                    {"category": "PAYMENT_METHOD_ERROR", "code": decline, "detail": "declined"}
                ],
                "payment": payment,
            }
        if source == PENDING_SOURCE:
            payment["status"] = "PENDING"
            payment["source_type"] = "BANK_ACCOUNT"
        elif body.get("autocomplete", True):
            payment["status"] = "COMPLETED"
            payment["card_details"] = {"status": "CAPTURED"}
        else:
            payment["status"] = "APPROVED"
            payment["card_details"] = {"status": "AUTHORIZED"}
        self.payments[payment["id"]] = payment
        self._emit("payment.created", "payment", payment)
        return 200, {"payment": payment}

    def _payment(self, payment_id: str) -> dict[str, Any] | None:
        return self.payments.get(payment_id)

    def _get_payment(self, body: Any, payment_id: str) -> tuple[int, Any]:
        payment = self._payment(payment_id)
        if payment is None:
            return self._error(404, "NOT_FOUND")
        return 200, {"payment": payment}

    def _update_payment(self, body: dict[str, Any], payment_id: str) -> tuple[int, Any]:
        payment = self._payment(payment_id)
        if payment is None:
            return self._error(404, "NOT_FOUND")
        if payment["status"] != "APPROVED":
            return self._error(400, "BAD_REQUEST", detail="only APPROVED payments change")
        new_amount = body.get("payment", {}).get("amount_money")
        if new_amount:
            payment["amount_money"] = dict(new_amount)
            payment["total_money"] = dict(new_amount)
        return 200, {"payment": payment}

    def _complete_payment(self, body: Any, payment_id: str) -> tuple[int, Any]:
        payment = self._payment(payment_id)
        if payment is None:
            return self._error(404, "NOT_FOUND")
        if payment["status"] == "COMPLETED":
            return 200, {"payment": payment}
        if payment["status"] != "APPROVED":
            return self._error(400, "DELAYED_TRANSACTION_CANCELED", "PAYMENT_METHOD_ERROR")
        payment["status"] = "COMPLETED"
        payment["card_details"] = {"status": "CAPTURED"}
        self._emit("payment.updated", "payment", payment)
        return 200, {"payment": payment}

    def _cancel_payment(self, body: Any, payment_id: str) -> tuple[int, Any]:
        payment = self._payment(payment_id)
        if payment is None:
            return self._error(404, "NOT_FOUND")
        if payment["status"] == "CANCELED":
            return 200, {"payment": payment}
        if payment["status"] != "APPROVED":
            return self._error(400, "DELAYED_TRANSACTION_CAPTURED", "PAYMENT_METHOD_ERROR")
        payment["status"] = "CANCELED"
        payment["card_details"] = {"status": "VOIDED"}
        self._emit("payment.updated", "payment", payment)
        return 200, {"payment": payment}

    # -- refunds -----------------------------------------------------------------------------

    def _refund_payment(self, body: dict[str, Any]) -> tuple[int, Any]:
        payment = self._payment(body.get("payment_id", ""))
        if payment is None:
            return self._error(404, "NOT_FOUND")
        if payment["status"] != "COMPLETED":
            return self._error(400, "REFUND_ERROR_PAYMENT_NEEDS_COMPLETION", "REFUND_ERROR")
        amount = body["amount_money"]["amount"]
        refunded = payment.get("refunded_money", {}).get("amount", 0)
        if amount > payment["amount_money"]["amount"] - refunded:
            return self._error(400, "REFUND_AMOUNT_INVALID", "REFUND_ERROR")
        refund: dict[str, Any] = {
            "id": f"{payment['id']}_{self._id('rf')}",
            "status": self.refund_status,
            "amount_money": dict(body["amount_money"]),
            "payment_id": payment["id"],
            "location_id": payment["location_id"],
            "created_at": self._now(),
            "updated_at": self._now(),
        }
        if body.get("reason"):
            refund["reason"] = body["reason"]
        self.refunds[refund["id"]] = refund
        # Square lists every refund of a payment in refund_ids, a pending one too;
        # refunded_money counts the completed ones
        payment.setdefault("refund_ids", []).append(refund["id"])
        self._emit("refund.created", "refund", refund)
        if refund["status"] == "COMPLETED":
            self._count_refund(refund)
        return 200, {"refund": refund}

    def _count_refund(self, refund: dict[str, Any]) -> None:
        payment = self.payments[refund["payment_id"]]
        before = payment.get("refunded_money", {}).get("amount", 0)
        self._refunded_money(payment, before + refund["amount_money"]["amount"])

    def _refunded_money(self, payment: dict[str, Any], amount: int) -> None:
        payment["refunded_money"] = {
            "amount": amount,
            "currency": payment["amount_money"]["currency"],
        }
        self._emit("payment.updated", "payment", payment)

    def complete_refund(self, refund_id: str, status: str = "COMPLETED") -> dict[str, Any]:
        """Square finishes a refund: a pending one COMPLETED, REJECTED or FAILED, or a
        completed one FAILED after all (its amount comes back to the payment)."""
        refund = self.refunds[refund_id]
        was = refund["status"]
        refund["status"] = status
        self._emit("refund.updated", "refund", refund)
        if status == "COMPLETED" and was != "COMPLETED":
            self._count_refund(refund)
        elif was == "COMPLETED" and status != "COMPLETED":
            payment = self.payments[refund["payment_id"]]
            before = payment.get("refunded_money", {}).get("amount", 0)
            self._refunded_money(payment, before - refund["amount_money"]["amount"])
        return refund

    def _get_refund(self, body: Any, refund_id: str) -> tuple[int, Any]:
        refund = self.refunds.get(refund_id)
        return (200, {"refund": refund}) if refund else self._error(404, "NOT_FOUND")

    # -- customers, subscriptions ------------------------------------------------------------

    def _create_customer(self, body: dict[str, Any]) -> tuple[int, Any]:
        customer = {"id": self._id("CUST"), "created_at": self._now(), "updated_at": self._now()}
        for name in ("given_name", "family_name", "email_address", "note", "reference_id"):
            if body.get(name):
                customer[name] = body[name]
        self.customers[customer["id"]] = customer
        return 200, {"customer": customer}

    def _create_subscription(self, body: dict[str, Any]) -> tuple[int, Any]:
        if body["customer_id"] not in self.customers:
            return self._error(404, "NOT_FOUND", detail="customer")
        subscription: dict[str, Any] = {
            "id": self._id("sub-"),
            "location_id": body["location_id"],
            "plan_variation_id": body["plan_variation_id"],
            "customer_id": body["customer_id"],
            "start_date": self._now()[:10],
            "charged_through_date": _next_month(self._now()[:10]),
            "status": "ACTIVE",
            "version": 1,
            "created_at": self._now(),
        }
        if body.get("card_id"):
            subscription["card_id"] = body["card_id"]
        self.subscriptions[subscription["id"]] = subscription
        self._emit("subscription.created", "subscription", subscription)
        return 200, {"subscription": subscription}

    def _get_subscription(self, body: Any, subscription_id: str) -> tuple[int, Any]:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return self._error(404, "NOT_FOUND")
        return 200, {"subscription": subscription}

    def _cancel_subscription(self, body: Any, subscription_id: str) -> tuple[int, Any]:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return self._error(404, "NOT_FOUND")
        if subscription["status"] == "PENDING":
            subscription["status"] = "CANCELED"
            subscription["canceled_date"] = subscription["start_date"]
            actions: list[dict[str, Any]] = []
        else:  # Square schedules the cancel at the end of the paid period
            subscription["canceled_date"] = subscription["charged_through_date"]
            actions = [
                {
                    "id": self._id("act-"),
                    "type": "CANCEL",
                    "effective_date": subscription["charged_through_date"],
                }
            ]
        subscription["version"] += 1
        self._emit("subscription.updated", "subscription", subscription)
        return 200, {"subscription": subscription, "actions": actions}

    def end_billing_period(self, subscription_id: str) -> dict[str, Any]:
        """The scheduled cancel takes effect."""
        subscription = self.subscriptions[subscription_id]
        subscription["status"] = "CANCELED"
        self._emit("subscription.updated", "subscription", subscription)
        return subscription

    # -- orders, payment links ---------------------------------------------------------------

    def _new_order(self, order: dict[str, Any]) -> dict[str, Any]:
        lines = []
        total = 0
        currency = "USD"
        for line in order.get("line_items", []):
            money = line["base_price_money"]
            line_total = money["amount"] * int(line["quantity"])
            total += line_total
            currency = money["currency"]
            lines.append({**line, "total_money": {"amount": line_total, "currency": currency}})
        created = {
            **order,
            "id": self._id("ORD"),
            "line_items": lines,
            "state": "OPEN",
            "version": 1,
            "total_money": {"amount": total, "currency": currency},
            "created_at": self._now(),
            "updated_at": self._now(),
        }
        self.orders[created["id"]] = created
        return created

    def _create_order(self, body: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"order": self._new_order(body["order"])}

    def _get_order(self, body: Any, order_id: str) -> tuple[int, Any]:
        order = self.orders.get(order_id)
        return (200, {"order": order}) if order else self._error(404, "NOT_FOUND")

    def _create_link(self, body: dict[str, Any]) -> tuple[int, Any]:
        order = self._new_order(body["order"])
        link_id = self._id("LINK")
        link: dict[str, Any] = {
            "id": link_id,
            "version": 1,
            "order_id": order["id"],
            "url": f"{self.checkout_url or 'https://square.link/u'}/{link_id}",
            "long_url": (
                f"{self.checkout_url}/{link_id}"
                if self.checkout_url
                else f"https://checkout.square.site/merchant/x/order/{link_id}"
            ),
            "created_at": self._now(),
        }
        if body.get("checkout_options"):
            link["checkout_options"] = body["checkout_options"]
        if body.get("payment_note"):
            link["payment_note"] = body["payment_note"]
        self.links[link_id] = link
        return 200, {"payment_link": link, "related_resources": {"orders": [order]}}

    def _get_link(self, body: Any, link_id: str) -> tuple[int, Any]:
        link = self.links.get(link_id)
        return (200, {"payment_link": link}) if link else self._error(404, "NOT_FOUND")

    def pay_link(self, link_id: str, source_id: str = "cnon:card-nonce-ok") -> dict[str, Any]:
        """The customer pays on Square's page: a COMPLETED payment for the link's order.

        Returns the redirect query Square appends to the link's redirect URL. A declining
        ``source_id`` (see `DECLINING_SOURCES`) records a FAILED payment, which is
        reported (``payment.created``), and raises `LinkPaymentDeclined`: the page
        says so and the customer may try another card, as on Square's page.
        """
        link = self.links[link_id]
        order = self.orders[link["order_id"]]
        if order["state"] != "OPEN":
            raise LinkPaymentDeclined("ORDER_ALREADY_USED")
        payment: dict[str, Any] = {
            "id": self._id("sqpay"),
            "created_at": self._now(),
            "updated_at": self._now(),
            "amount_money": dict(order["total_money"]),
            "total_money": dict(order["total_money"]),
            "status": "COMPLETED",
            "source_type": "CARD",
            "card_details": {"status": "CAPTURED"},
            "location_id": order["location_id"],
            "order_id": order["id"],
            "version_token": "v1",
        }
        if link.get("payment_note"):
            payment["note"] = link["payment_note"]
        decline = DECLINING_SOURCES.get(source_id)
        if decline is not None:
            payment["status"] = "FAILED"
            payment["card_details"] = {"status": "FAILED"}
            self.payments[payment["id"]] = payment
            self._emit("payment.created", "payment", payment)
            raise LinkPaymentDeclined(decline)
        self.payments[payment["id"]] = payment
        order["tenders"] = [
            {
                "id": self._id("TND"),
                "type": "CARD",
                "payment_id": payment["id"],
                "amount_money": dict(order["total_money"]),
            }
        ]
        order["state"] = "COMPLETED"
        self._emit("payment.created", "payment", payment)
        return {"checkoutId": link_id, "orderId": order["id"], "transactionId": order["id"]}

    def settle_payment(self, payment_id: str, *, success: bool = True) -> dict[str, Any]:
        """A PENDING payment (a bank transfer) completes, or fails."""
        payment = self.payments[payment_id]
        if payment["status"] != "PENDING":
            raise ValueError(f"payment {payment_id} is {payment['status']}, not PENDING")
        payment["status"] = "COMPLETED" if success else "FAILED"
        payment["updated_at"] = self._now()
        self._emit("payment.updated", "payment", payment)
        return payment

    # -- invoices, disputes ------------------------------------------------------------------

    def _create_invoice(self, body: dict[str, Any]) -> tuple[int, Any]:
        invoice = dict(body["invoice"])
        order = self.orders.get(invoice.get("order_id", ""))
        if order is None:
            return self._error(404, "NOT_FOUND", detail="order")
        request = dict(invoice["payment_requests"][0])
        request["uid"] = self._id("PR")
        request["computed_amount_money"] = dict(order["total_money"])
        request["total_completed_amount_money"] = {
            "amount": 0,
            "currency": order["total_money"]["currency"],
        }
        invoice.update(
            {
                "id": f"inv:0-{self._id('INV')}",
                "version": 0,
                "status": "DRAFT",
                "payment_requests": [request],
                "created_at": self._now(),
                "updated_at": self._now(),
            }
        )
        self.invoices[invoice["id"]] = invoice
        return 200, {"invoice": invoice}

    def _publish_invoice(self, body: dict[str, Any], invoice_id: str) -> tuple[int, Any]:
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            return self._error(404, "NOT_FOUND")
        if body.get("version") != invoice["version"]:
            return self._error(400, "CONFLICT", detail="version mismatch")
        invoice["status"] = "UNPAID"
        invoice["version"] += 1
        invoice["invoice_number"] = f"{len(self.invoices):06d}"
        invoice["public_url"] = f"https://squareup.com/pay-invoice/{invoice_id}"
        return 200, {"invoice": invoice}

    def open_dispute(self, payment_id: str, state: str = "EVIDENCE_REQUIRED") -> dict[str, Any]:
        payment = self.payments[payment_id]
        dispute: dict[str, Any] = {
            "id": self._id("DSP"),
            "amount_money": dict(payment["amount_money"]),
            "reason": "NOT_AS_DESCRIBED",
            "state": state,
            "due_at": "2026-02-01T00:00:00.000Z",
            "disputed_payment": {"payment_id": payment_id},
            "card_brand": "VISA",
            "created_at": self._now(),
            "updated_at": self._now(),
            "version": 1,
        }
        self.disputes[dispute["id"]] = dispute
        self._emit("dispute.created", "dispute", dispute)
        return dispute

    def set_dispute_state(self, dispute_id: str, state: str) -> dict[str, Any]:
        dispute = self.disputes[dispute_id]
        dispute["state"] = state
        dispute["version"] += 1
        self._emit("dispute.state.updated", "dispute", dispute)
        return dispute

    def _get_dispute(self, body: Any, dispute_id: str) -> tuple[int, Any]:
        dispute = self.disputes.get(dispute_id)
        return (200, {"dispute": dispute}) if dispute else self._error(404, "NOT_FOUND")

    def _get_customer(self, body: Any, customer_id: str) -> tuple[int, Any]:
        customer = self.customers.get(customer_id)
        return (200, {"customer": customer}) if customer else self._error(404, "NOT_FOUND")

    def _get_invoice(self, body: Any, invoice_id: str) -> tuple[int, Any]:
        invoice = self.invoices.get(invoice_id)
        return (200, {"invoice": invoice}) if invoice else self._error(404, "NOT_FOUND")

    def pay_invoice(self, invoice_id: str, source_id: str = "cnon:card-nonce-ok") -> dict[str, Any]:
        """The customer pays a published invoice: a payment for its order, the invoice PAID
        (``invoice.payment_made``); a declining source fails the charge instead
        (``invoice.scheduled_charge_failed``) and leaves it UNPAID."""
        invoice = self.invoices[invoice_id]
        if invoice["status"] not in ("UNPAID", "SCHEDULED", "PARTIALLY_PAID"):
            raise ValueError(f"invoice {invoice_id} is {invoice['status']}: nothing to pay")
        request = invoice["payment_requests"][0]
        money = dict(request["computed_amount_money"])
        if source_id in DECLINING_SOURCES:
            invoice["updated_at"] = self._now()
            self._emit("invoice.scheduled_charge_failed", "invoice", invoice)
            return invoice
        payment: dict[str, Any] = {
            "id": self._id("sqpay"),
            "created_at": self._now(),
            "updated_at": self._now(),
            "amount_money": dict(money),
            "total_money": dict(money),
            "status": "COMPLETED",
            "source_type": "CARD",
            "card_details": {"status": "CAPTURED"},
            "location_id": invoice.get("location_id", "MAIN"),
            "order_id": invoice["order_id"],
            "version_token": "v1",
        }
        self.payments[payment["id"]] = payment
        order = self.orders.get(invoice["order_id"])
        if order is not None:
            order["state"] = "COMPLETED"
        request["total_completed_amount_money"] = dict(money)
        invoice["status"] = "PAID"
        invoice["version"] += 1
        invoice["updated_at"] = self._now()
        self._emit("payment.created", "payment", payment)
        self._emit("invoice.payment_made", "invoice", invoice)
        return invoice

    def renew_subscription(self, subscription_id: str, *, success: bool = True) -> dict[str, Any]:
        """A billing period ends: the subscription is charged for the next one (a new paid
        period, ``subscription.updated``), or the charge fails and Square deactivates it."""
        subscription = self.subscriptions[subscription_id]
        if subscription["status"] != "ACTIVE":
            raise ValueError(f"subscription {subscription_id} is {subscription['status']}")
        if success:
            subscription["charged_through_date"] = _next_month(subscription["charged_through_date"])
        else:
            subscription["status"] = "DEACTIVATED"
        subscription["version"] += 1
        self._emit("subscription.updated", "subscription", subscription)
        return subscription

    def _list_disputes(self, body: Any) -> tuple[int, Any]:
        found = sorted(self.disputes.values(), key=lambda d: (d["created_at"], d["id"]))
        states = self._query.get("states")
        if states:
            wanted = set(states.split(","))
            found = [dispute for dispute in found if dispute["state"] in wanted]
        return self._page("disputes", found, "disputes")

    def _list_refunds(self, body: Any) -> tuple[int, Any]:
        found = self._in_window(self.refunds.values())
        return self._page("refunds", found, "refunds")

    # -- listings: ListPayments, ListPayouts, ListPayoutEntries -------------------------------

    def add_payment(
        self,
        amount: int,
        currency: str = "USD",
        *,
        reference_id: str | None = None,
        created_at: str = _TIME,
        status: str = "COMPLETED",
        fee: int | None = None,
        refunded: int | None = None,
        location_id: str = "LOC1",
        payment_id: str | None = None,
    ) -> dict[str, Any]:
        """Seed a payment as ListPayments would show it (no webhook is queued)."""
        money = {"amount": amount, "currency": currency}
        payment: dict[str, Any] = {
            "id": payment_id or self._id("sqpay"),
            "created_at": created_at,
            "updated_at": created_at,
            "amount_money": dict(money),
            "total_money": dict(money),
            "status": status,
            "source_type": "CARD",
            "location_id": location_id,
            "version_token": "v1",
        }
        if reference_id:
            payment["reference_id"] = reference_id
        if fee is not None:
            payment["processing_fee"] = [
                {
                    "effective_at": created_at,
                    "type": "INITIAL",
                    "amount_money": {"amount": fee, "currency": currency},
                }
            ]
        if refunded:
            payment["refunded_money"] = {"amount": refunded, "currency": currency}
        self.payments[payment["id"]] = payment
        return payment

    def add_payout(
        self,
        amount: int,
        currency: str = "USD",
        *,
        created_at: str = _TIME,
        status: str = "PAID",
        payout_type: str = "BATCH",
        location_id: str = "LOC1",
    ) -> dict[str, Any]:
        """Seed a payout (add its entries with `add_payout_entry`)."""
        payout: dict[str, Any] = {
            "id": f"po_{self._id('')}",
            "status": status,
            "location_id": location_id,
            "created_at": created_at,
            "updated_at": created_at,
            "amount_money": {"amount": amount, "currency": currency},
            "destination": {"type": "BANK_ACCOUNT", "id": "bact:MOCK"},
            "version": 1,
            "type": payout_type,
            "arrival_date": created_at[:10],
        }
        self.payouts[payout["id"]] = payout
        self.payout_entries[payout["id"]] = []
        return payout

    def add_payout_entry(
        self,
        payout_id: str,
        entry_type: str,
        gross: int,
        fee: int = 0,
        currency: str = "USD",
        *,
        payment_id: str | None = None,
        details: dict[str, Any] | None = None,
        effective_at: str = _TIME,
    ) -> dict[str, Any]:
        """Seed one entry of a payout: ``net`` is ``gross - fee``, as Square reports it.

        ``payment_id`` goes into the ``type_<type>_details`` object (``details`` adds to
        it, e.g. ``{"refund_id": ...}``).
        """
        entry: dict[str, Any] = {
            "id": f"poe_{self._id('')}",
            "payout_id": payout_id,
            "effective_at": effective_at,
            "type": entry_type,
            "gross_amount_money": {"amount": gross, "currency": currency},
            "fee_amount_money": {"amount": fee, "currency": currency},
            "net_amount_money": {"amount": gross - fee, "currency": currency},
        }
        if payment_id is not None or details:
            entry[f"type_{entry_type.lower()}_details"] = {
                **({"payment_id": payment_id} if payment_id else {}),
                **(details or {}),
            }
        self.payout_entries[payout_id].append(entry)
        return entry

    def _list_payments(self, body: Any) -> tuple[int, Any]:
        found = self._in_window(self.payments.values())
        return self._page("payments", found, "payments")

    def _list_payouts(self, body: Any) -> tuple[int, Any]:
        found = self._in_window(self.payouts.values())
        status = self._query.get("status")
        if status:
            found = [payout for payout in found if payout.get("status") == status]
        return self._page("payouts", found, "payouts")

    def _list_entries(self, body: Any, payout_id: str) -> tuple[int, Any]:
        if payout_id not in self.payouts:
            return self._error(404, "NOT_FOUND")
        entries = sorted(self.payout_entries[payout_id], key=lambda e: e["effective_at"])
        if self._query.get("sort_order", "DESC") == "DESC":
            entries.reverse()
        return self._page(f"entries:{payout_id}", entries, "payout_entries")

    def _in_window(self, objects: Any) -> list[dict[str, Any]]:
        """Objects of the asked location created in [begin_time, end_time), sorted as asked
        (Square's default: newest first)."""
        query = self._query
        begin, end = _instant(query.get("begin_time")), _instant(query.get("end_time"))
        location = query.get("location_id")
        found = [
            obj
            for obj in objects
            if (location is None or obj.get("location_id") == location)
            and (begin is None or _created(obj) >= begin)
            and (end is None or _created(obj) < end)
        ]
        found.sort(key=lambda obj: (_created(obj), obj["id"]))
        if query.get("sort_order", "DESC") == "DESC":
            found.reverse()
        return found

    def _page(self, listing: str, found: list[dict[str, Any]], items: str) -> tuple[int, Any]:
        """One page of ``found``; the cursor is an opaque token bound to the listing."""
        start = 0
        cursor = self._query.get("cursor")
        if cursor:
            known = self._cursors.get(cursor)
            if known is None or known[0] != listing:
                return self._error(400, "INVALID_CURSOR", detail="unknown cursor")
            start = known[1]
        size = self.list_page_size
        if self._query.get("limit"):
            size = min(size, int(self._query["limit"]))
        chunk = found[start : start + size]
        payload: dict[str, Any] = {items: json.loads(json.dumps(chunk))} if chunk else {}
        if start + size < len(found):
            token = f"cur{self._count('ids'):06d}"
            self._cursors[token] = [listing, start + size]
            payload["cursor"] = token
        return 200, payload

    # -- customers and cards on file ------------------------------------------------------------

    def _customer_or_404(self, customer_id: str) -> dict[str, Any] | None:
        return self.customers.get(customer_id)

    def _update_customer(self, body: dict[str, Any], customer_id: str) -> tuple[int, Any]:
        customer = self._customer_or_404(customer_id)
        if customer is None:
            return self._error(404, "NOT_FOUND")
        for name in ("given_name", "family_name", "email_address", "note", "reference_id"):
            if name in body:
                if body[name]:
                    customer[name] = body[name]
                else:  # null or "" clears the field
                    customer.pop(name, None)
        customer["version"] = customer.get("version", 0) + 1
        self._emit("customer.updated", "customer", customer)
        return 200, {"customer": customer}

    def _delete_customer(self, body: Any, customer_id: str) -> tuple[int, Any]:
        customer = self.customers.pop(customer_id, None)
        if customer is None:
            return self._error(404, "NOT_FOUND")
        for card in self.cards.values():  # Square disables a deleted customer's cards
            if card["customer_id"] == customer_id and card["enabled"]:
                card["enabled"] = False
        self._emit("customer.deleted", "customer", customer)
        return 200, {}

    def _list_customers(self, body: Any) -> tuple[int, Any]:
        return self._page("customers", list(self.customers.values()), "customers")

    def _search_customers(self, body: dict[str, Any]) -> tuple[int, Any]:
        wanted = body.get("query", {}).get("filter", {}).get("email_address", {}).get("exact")
        found = [c for c in self.customers.values() if c.get("email_address") == wanted]
        return 200, ({"customers": json.loads(json.dumps(found))} if found else {})

    def _create_card(self, body: dict[str, Any]) -> tuple[int, Any]:
        source = body["source_id"]
        customer_id = body["card"].get("customer_id")
        if customer_id not in self.customers:
            return self._error(404, "NOT_FOUND", detail="customer not found")
        decline = DECLINING_SOURCES.get(source)
        if decline is not None:  # CreateCard verifies the card with the bank
            return self._error(402, decline, "PAYMENT_METHOD_ERROR", "declined")
        brand, last4 = SAVED_CARDS.get(source, ("VISA", "1111"))
        card: dict[str, Any] = {
            "id": f"ccof:{self._id('CARD')}",
            "card_brand": brand,
            "last_4": last4,
            "exp_month": 11,
            "exp_year": 2030,
            "fingerprint": f"sq-1-{source}",
            "customer_id": customer_id,
            "merchant_id": "MLMERCHANT",
            "enabled": True,
            "card_type": "CREDIT",
            "prepaid_type": "NOT_PREPAID",
            "bin": "411111",
            "version": 1,
        }
        self.cards[card["id"]] = card
        self._card_sources[card["id"]] = source
        self._emit("card.created", "card", card)
        return 200, {"card": card}

    def _list_cards(self, body: Any) -> tuple[int, Any]:
        customer_id = self._query.get("customer_id")
        include_disabled = self._query.get("include_disabled") == "true"
        found = [
            card
            for card in self.cards.values()
            if (customer_id is None or card["customer_id"] == customer_id)
            and (include_disabled or card["enabled"])
        ]
        return self._page(f"cards:{customer_id}", found, "cards")

    def _get_card(self, body: Any, card_id: str) -> tuple[int, Any]:
        card = self.cards.get(card_id)
        if card is None:
            return self._error(404, "NOT_FOUND")
        return 200, {"card": card}

    def _disable_card(self, body: Any, card_id: str) -> tuple[int, Any]:
        card = self.cards.get(card_id)
        if card is None:
            return self._error(404, "NOT_FOUND")
        if card["enabled"]:
            card["enabled"] = False
            card["version"] += 1
            self._emit("card.disabled", "card", card)
        return 200, {"card": card}

    def _card_on_file(self, body: dict[str, Any]) -> tuple[int, Any] | None:
        """A CreatePayment whose source is a card on file: its refusal, or None to go on.

        A card not on file (unknown or disabled) is answered 404 ``NOT_FOUND``: the mock's
        reading of Square's docs, which name no dedicated code for it.
        """
        card = self.cards.get(body["source_id"])
        if card is None or not card["enabled"]:
            return self._error(404, "NOT_FOUND", detail="card on file not found or disabled")
        if body.get("customer_id") != card["customer_id"]:
            return self._error(400, "BAD_REQUEST", detail="a card on file needs its customer_id")
        if self._card_sources[card["id"]] == VERIFICATION_LATER_SOURCE:
            return self._error(
                402, "CARD_DECLINED_VERIFICATION_REQUIRED", "PAYMENT_METHOD_ERROR", "declined"
            )
        return None

    def automatically_update_card(self, card_id: str, *, exp_year: int = 2032) -> dict[str, Any]:
        """The card network renews a card on file (``card.automatically_updated``)."""
        card = self.cards[card_id]
        card.update(exp_year=exp_year, version=card["version"] + 1)
        self._emit("card.automatically_updated", "card", card)
        return card

    # -- webhooks ----------------------------------------------------------------------------

    def event(self, square_type: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """A Square event body (as a dict) about ``obj``."""
        return {
            "merchant_id": "MLMERCHANT",
            "type": square_type,
            "event_id": f"evt-{self._count('events'):08d}",
            "created_at": self._now(),
            "data": {"type": kind, "id": obj["id"], "object": {kind: json.loads(json.dumps(obj))}},
        }

    def delivery(self, event: dict[str, Any]) -> WebhookDelivery:
        """``event`` as Square would POST it: raw JSON body and the signature header."""
        body = json.dumps(event, separators=(",", ":")).encode()
        signature = _square_webhook.sign(
            body, signature_key=self.webhook_signature_key, notification_url=self.webhook_url
        )
        return WebhookDelivery(
            body=body,
            headers={
                "content-type": "application/json",
                "x-square-hmacsha256-signature": signature,
            },
        )

    def _emit(self, square_type: str, kind: str, obj: dict[str, Any]) -> None:
        event = self.event(square_type, kind, obj)
        if self.keep_deliveries:
            self._webhooks.append(self.delivery(event))
        for listener in self.event_listeners:
            listener(event)

    def take_webhooks(self) -> list[WebhookDelivery]:
        """The deliveries queued since the last call (every state change queues one)."""
        pending, self._webhooks = self._webhooks, []
        return pending
