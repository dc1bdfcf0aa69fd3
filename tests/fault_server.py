"""A local HTTP server on 127.0.0.1 standing in for Stripe's, PayPal's or Square's API, with
faults injected at the socket level.

The real adapters and SDKs talk to it over real TCP (``base_url=server.url``), so every
fault reaches them as it would from the network: a reset is a TCP RST, a timeout is a
server that stops answering, a truncated body is a ``Content-Length`` the server does not
honour. Each provider's API is a small stateful backend that honours idempotency keys the
way the provider does (same key: the first answer again) and counts charges and refunds,
so a test can tell "charged once" from "charged twice".

Faults (:data:`FAULTS`) are armed for one route (``"charge"``: the request that creates the
payment, ``"refund"``: the one that creates the refund, ``"capture"`` / ``"cancel"``: the one
that captures / voids an authorized payment), once or for every request:

=====================  ============================================  =====================
fault                  what the server does                           charge committed?
=====================  ============================================  =====================
http_500 / http_503    the provider's JSON error                      no
http_429               the provider's JSON error and a Retry-After    no
html_502               a proxy's HTML page                            no
non_json_404           an HTML 404 page (a wrong base URL)            no
reset_before_read      RST before reading the request                 no
reset_after_read       reads the request, commits, RST                yes
timeout_before_commit  reads the request, stalls, closes              no
timeout_after_commit   reads the request, commits, stalls, closes     yes
truncated_body         commits, sends half of the declared body       yes
non_json_body          commits, answers 200 with an HTML body         yes
=====================  ============================================  =====================

Written by hand (a ``socketserver`` of ~150 lines): ``http.server`` cannot reset a
connection before reading it or send fewer bytes than it declares.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import socketserver
import struct
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

from paygate.providers._square_mock import SquareMockAPI
from tests.paypal_support import authorization_json, capture_json, order_json, refund_json

FAULTS = (
    "http_500",
    "http_503",
    "http_429",
    "html_502",
    "non_json_404",
    "reset_before_read",
    "reset_after_read",
    "timeout_before_commit",
    "timeout_after_commit",
    "truncated_body",
    "non_json_body",
)
#: faults answered without the backend ever seeing the request
_BEFORE_COMMIT = frozenset(
    {"http_500", "http_503", "http_429", "html_502", "non_json_404", "timeout_before_commit"}
)
_HTML = b"<html><head><title>%d</title></head><body>nginx: secret-page-marker</body></html>"

Answer = tuple[int, dict[str, str], bytes]


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Answer:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(
        payload
    ).encode()


@dataclass
class Received:
    """One request that reached the server (a reset-before-read one included)."""

    route: str | None
    method: str
    path: str
    key: str | None
    fault: str | None


# -- the providers' APIs ---------------------------------------------------------------------


class Backend:
    """A provider's API: routes, idempotency, charge and refund counts."""

    name = ""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: order id -> charges made for it
        self.charges: Counter[str] = Counter()
        #: payment id -> refunds made for it
        self.refunds: Counter[str] = Counter()
        #: payment id -> captures / voids of its authorization
        self.captures: Counter[str] = Counter()
        self.voids: Counter[str] = Counter()
        self._replies: dict[tuple[str, str], Answer] = {}
        self._ids = itertools.count(1)

    def route(self, method: str, path: str) -> str | None:
        raise NotImplementedError

    def key(self, headers: dict[str, str], body: bytes) -> str | None:
        raise NotImplementedError

    def error(self, status: int) -> Answer:
        raise NotImplementedError

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        raise NotImplementedError

    def idempotent(self, path: str, key: str | None, run: Callable[[], Answer]) -> Answer:
        if not key:
            return run()
        seen = self._replies.get((path, key))
        if seen is None:
            seen = self._replies[(path, key)] = run()
        return seen


class StripeBackend(Backend):
    name = "stripe"

    def __init__(self) -> None:
        super().__init__()
        self.amounts: dict[str, int] = {}
        self.intents: dict[str, dict[str, Any]] = {}

    def route(self, method: str, path: str) -> str | None:
        if method == "POST" and path == "/v1/payment_intents":
            return "charge"
        if method == "POST" and path == "/v1/refunds":
            return "refund"
        match = re.fullmatch(r"/v1/payment_intents/[^/]+/(capture|cancel)", path)
        if method == "POST" and match:
            return match[1]
        return None

    def key(self, headers: dict[str, str], body: bytes) -> str | None:
        return headers.get("idempotency-key")

    def error(self, status: int) -> Answer:
        if status == 429:
            error = {"type": "invalid_request_error", "code": "rate_limit", "message": "Slow"}
        else:
            error = {"type": "api_error", "message": "Something went wrong on Stripe's end"}
        return _json(status, {"error": error}, {"Request-Id": "req_fault"})

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        form = dict(parse_qsl(body.decode()))
        route = self.route(method, path)
        if route == "charge":
            return self.idempotent(path, self.key(headers, body), lambda: self._intent(form))
        if route == "refund":
            return self.idempotent(path, self.key(headers, body), lambda: self._refund(form))
        if route in ("capture", "cancel"):
            intent_id = path.split("/")[3]
            return self.idempotent(
                path, self.key(headers, body), lambda: self._settle(intent_id, route, form)
            )
        return _json(404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}})

    def _intent(self, form: dict[str, str]) -> Answer:
        order = form["metadata[order_id]"]
        self.charges[order] += 1
        amount = int(form["amount"])
        intent_id = f"pi_{next(self._ids)}"
        self.amounts[intent_id] = amount
        manual = form.get("capture_method") == "manual"
        self.intents[intent_id] = {
            "id": intent_id, "object": "payment_intent", "amount": amount,
            "amount_received": 0 if manual else amount, "currency": form["currency"],
            "status": "requires_capture" if manual else "succeeded",
            "capture_method": "manual" if manual else "automatic",
            "metadata": {"order_id": order}, "created": 1_790_000_000,
        }  # fmt: skip
        return _json(200, self.intents[intent_id])

    def _settle(self, intent_id: str, route: str, form: dict[str, str]) -> Answer:
        """Capture or cancel a ``requires_capture`` intent; any other state is refused, as
        Stripe does (a retry with the same Idempotency-Key never gets here: replayed)."""
        intent = self.intents[intent_id]
        if intent["status"] != "requires_capture":
            return _json(400, {"error": {
                "type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                "message": f"This PaymentIntent's status is {intent['status']}",
            }})  # fmt: skip
        if route == "capture":
            self.captures[intent_id] += 1
            received = int(form.get("amount_to_capture") or intent["amount"])
            intent.update(status="succeeded", amount_received=received)
        else:
            self.voids[intent_id] += 1
            intent.update(status="canceled", cancellation_reason="requested_by_customer")
        return _json(200, intent)

    def _refund(self, form: dict[str, str]) -> Answer:
        payment = form["payment_intent"]
        self.refunds[payment] += 1
        return _json(200, {
            "id": f"re_{next(self._ids)}", "object": "refund",
            "amount": int(form.get("amount") or self.amounts[payment]),
            "currency": "usd", "payment_intent": payment, "status": "succeeded",
            "created": 1_790_000_000,
        })  # fmt: skip


class PayPalBackend(Backend):
    name = "paypal"

    def __init__(self) -> None:
        super().__init__()
        self.orders: dict[str, dict[str, Any]] = {}

    def route(self, method: str, path: str) -> str | None:
        if method == "POST" and path == "/v2/checkout/orders":
            return "charge"
        if method == "POST" and re.fullmatch(r"/v2/payments/captures/[^/]+/refund", path):
            return "refund"
        match = re.fullmatch(r"/v2/payments/authorizations/[^/]+/(capture|void)", path)
        if method == "POST" and match:
            return "capture" if match[1] == "capture" else "cancel"
        return None

    def key(self, headers: dict[str, str], body: bytes) -> str | None:
        return headers.get("paypal-request-id")

    def error(self, status: int) -> Answer:
        name = {429: "RATE_LIMIT_REACHED", 503: "SERVICE_UNAVAILABLE"}.get(
            status, "INTERNAL_SERVER_ERROR"
        )
        return _json(status, {"name": name, "message": "fault", "debug_id": "dbg-fault"},
                     {"PayPal-Debug-Id": "dbg-fault"})  # fmt: skip

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if path == "/v1/oauth2/token":
            return _json(200, {"access_token": "A21AAfault", "token_type": "Bearer",
                               "expires_in": 32400, "app_id": "APP-fault"})  # fmt: skip
        sent = json.loads(body) if body else {}
        route = self.route(method, path)
        if route == "charge":
            return self.idempotent(path, self.key(headers, body), lambda: self._order(sent))
        if route == "refund":
            capture = path.split("/")[4]
            return self.idempotent(
                path, self.key(headers, body), lambda: self._refund(capture, sent)
            )
        if route in ("capture", "cancel"):
            # PayPal-Request-Id replays the first answer (the void takes none: always runs)
            authorization = path.split("/")[4]
            return self.idempotent(
                path, self.key(headers, body), lambda: self._settle(authorization, route, sent)
            )
        match = re.fullmatch(r"/v2/checkout/orders/([^/]+)", path)
        if method == "GET" and match and match[1] in self.orders:
            return _json(200, self.orders[match[1]])
        return _json(404, {"name": "RESOURCE_NOT_FOUND", "message": "no such resource"})

    def _order(self, sent: dict[str, Any]) -> Answer:
        unit = sent["purchase_units"][0]
        ref, amount = unit["custom_id"], unit["amount"]
        self.charges[ref] += 1
        number = next(self._ids)
        order_id, capture_id = f"ORDER{number:012d}", f"CAPTURE{number:010d}"
        if sent.get("intent") == "AUTHORIZE":
            authorization = authorization_json(
                f"AUTH{number:013d}", value=amount["value"], currency=amount["currency_code"],
                ref=ref, order_id=order_id,
            )  # fmt: skip
            self.orders[order_id] = order_json(
                order_id, status="COMPLETED", intent="AUTHORIZE", ref=ref, value=amount["value"],
                currency=amount["currency_code"], authorizations=[authorization],
            )  # fmt: skip
            return _json(201, self.orders[order_id])
        capture = capture_json(capture_id, value=amount["value"],
                               currency=amount["currency_code"], ref=ref, order_id=order_id)  # fmt: skip
        order = order_json(order_id, status="COMPLETED", ref=ref, value=amount["value"],
                           currency=amount["currency_code"], captures=[capture])  # fmt: skip
        self.orders[order_id] = order
        return _json(201, order)

    def _settle(self, authorization_id: str, route: str, sent: dict[str, Any]) -> Answer:
        """Capture or void an open authorization; a captured or voided one is refused (422),
        as PayPal does."""
        order = next(
            o for o in self.orders.values()
            for a in o["purchase_units"][0].get("payments", {}).get("authorizations", ())
            if a["id"] == authorization_id
        )  # fmt: skip
        payments = order["purchase_units"][0]["payments"]
        authorization = payments["authorizations"][0]
        if authorization["status"] != "CREATED":
            issue = f"AUTHORIZATION_ALREADY_{authorization['status']}"
            return _json(422, {"name": "UNPROCESSABLE_ENTITY", "message": "refused",
                               "details": [{"issue": issue}], "debug_id": "dbg-422"})  # fmt: skip
        if route == "cancel":
            self.voids[order["id"]] += 1
            authorization["status"] = "VOIDED"
            return _json(200, authorization)
        self.captures[order["id"]] += 1
        authorization["status"] = "CAPTURED"
        capture = capture_json(
            f"CAPTURE{next(self._ids):010d}",
            value=(sent.get("amount") or authorization["amount"])["value"],
            currency=authorization["amount"]["currency_code"], ref=authorization["custom_id"],
            order_id=order["id"], authorization_id=authorization_id,
        )  # fmt: skip
        payments["captures"] = [capture]
        return _json(201, capture)

    def _refund(self, capture_id: str, sent: dict[str, Any]) -> Answer:
        order = next(
            o for o in self.orders.values()
            for c in o["purchase_units"][0].get("payments", {}).get("captures", ())
            if c["id"] == capture_id
        )  # fmt: skip
        unit = order["purchase_units"][0]
        self.refunds[order["id"]] += 1
        value = (sent.get("amount") or unit["amount"])["value"]
        refund = refund_json(f"REFUND{next(self._ids):011d}", value=value,
                             capture_id=capture_id, ref=unit["custom_id"])  # fmt: skip
        unit["payments"].setdefault("refunds", []).append(refund)
        return _json(201, refund)


class SquareBackend(Backend):
    """paygate's own :class:`SquareMockAPI` (idempotency as Square does it), behind TCP."""

    name = "square"

    def __init__(self) -> None:
        super().__init__()
        self.api = SquareMockAPI(refund_status="COMPLETED")

    def route(self, method: str, path: str) -> str | None:
        if method == "POST" and path == "/v2/payments":
            return "charge"
        if method == "POST" and path == "/v2/refunds":
            return "refund"
        match = re.fullmatch(r"/v2/payments/[^/]+/(complete|cancel)", path)
        if method == "POST" and match:
            return "capture" if match[1] == "complete" else "cancel"
        return None

    def key(self, headers: dict[str, str], body: bytes) -> str | None:
        try:
            key = json.loads(body).get("idempotency_key")
        except (ValueError, AttributeError):
            return None
        return key if isinstance(key, str) else None

    def error(self, status: int) -> Answer:
        code, category = {
            429: ("RATE_LIMITED", "RATE_LIMIT_ERROR"),
            503: ("SERVICE_UNAVAILABLE", "API_ERROR"),
        }.get(status, ("INTERNAL_SERVER_ERROR", "API_ERROR"))
        return _json(status, {"errors": [{"category": category, "code": code}]})

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        kept = {k: v for k, v in headers.items() if k not in ("host", "content-length")}
        request = httpx.Request(method, f"http://square.test{path}", headers=kept, content=body)
        route = self.route(method, path)
        payment_id = path.split("/")[3] if route in ("capture", "cancel") else ""
        before = self.api.payments.get(payment_id, {}).get("status")
        wanted = {"capture": "COMPLETED", "cancel": "CANCELED"}.get(route or "")
        if wanted and before == wanted:
            # Square's spec: Complete/CancelPayment act on an APPROVED payment; what a repeat
            # answers is not documented (SquareMockAPI answers 200): refused here, the strict
            # reading, so the adapter's retry must not depend on it
            return _json(400, {"errors": [{
                "category": "INVALID_REQUEST_ERROR", "code": "BAD_REQUEST",
                "detail": f"payment {payment_id} is {before}, not APPROVED",
            }]})  # fmt: skip
        response = self.api.handle(request)
        after = self.api.payments.get(payment_id, {}).get("status")
        # CompletePayment / CancelPayment take no key: count the state changes they made
        if before == "APPROVED" and after == "COMPLETED":
            self.captures[payment_id] += 1
        if before == "APPROVED" and after == "CANCELED":
            self.voids[payment_id] += 1
        self.charges = Counter(p.get("reference_id") for p in self.api.payments.values())
        self.refunds = Counter(r.get("payment_id") for r in self.api.refunds.values())
        return response.status_code, {"Content-Type": "application/json"}, response.content


BACKENDS: dict[str, Callable[[], Backend]] = {
    "stripe": StripeBackend,
    "paypal": PayPalBackend,
    "square": SquareBackend,
}


# -- the server ------------------------------------------------------------------------------


@dataclass
class _Armed:
    route: str
    fault: str
    times: int | None  # None: every request


@dataclass
class FaultServer:
    """``FaultServer(StripeBackend())``: serving on :attr:`url` until :meth:`close`."""

    backend: Backend
    #: how long a "timeout" fault keeps the client waiting (past any client timeout)
    stall: float = 3.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._armed: _Armed | None = None
        self._retry_after = "1"
        self._lock = threading.Lock()
        self._closing = threading.Event()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def arm(
        self, route: str, fault: str, *, times: int | None = 1, retry_after: str = "1"
    ) -> None:
        """Inject ``fault`` into the next ``times`` requests to ``route`` (``None``: all);
        ``retry_after`` is the ``Retry-After`` of an ``http_429``."""
        assert fault in FAULTS, fault
        with self._lock:
            self._armed = _Armed(route, fault, times)
            self._retry_after = retry_after

    def disarm(self) -> None:
        with self._lock:
            self._armed = None

    def close(self) -> None:
        self._closing.set()  # ends the stalls
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def requests_to(self, route: str) -> list[Received]:
        return [r for r in self.received if r.route == route]

    # -- one connection --------------------------------------------------------------------

    def _take(self, route: str | None, *, before_read: bool) -> str | None:
        with self._lock:
            armed = self._armed
            if armed is None or armed.route != route:
                return None
            if (armed.fault == "reset_before_read") != before_read:
                return None
            if armed.times is not None:
                armed.times -= 1
                if armed.times <= 0:
                    self._armed = None
            return armed.fault

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        try:
            peeked = sock.recv(65536, socket.MSG_PEEK)
        except OSError:
            return
        method, _, rest = peeked.partition(b" ")
        path = rest.partition(b" ")[0].decode("latin-1").split("?")[0]
        route = self.backend.route(method.decode("latin-1"), path)
        if self._take(route, before_read=True):
            self.received.append(Received(route, method.decode(), path, None, "reset_before_read"))
            _reset(sock)
            return
        with sock.makefile("rb") as rfile:
            request_line = rfile.readline(65537).decode("latin-1").split()
            headers: dict[str, str] = {}
            while True:
                line = rfile.readline(65537)
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = rfile.read(int(headers.get("content-length") or 0))
        method_text, path = request_line[0], request_line[1].split("?")[0]
        fault = self._take(route, before_read=False)
        self.received.append(
            Received(route, method_text, path, self.backend.key(headers, body), fault)
        )
        if fault == "timeout_before_commit":
            self._closing.wait(self.stall)
            return
        if fault in _BEFORE_COMMIT:
            status = int(fault.rsplit("_", 1)[1])  # http_500, html_502, non_json_404
            if fault in ("html_502", "non_json_404"):
                answer: Answer = (status, {"Content-Type": "text/html"}, _HTML % status)
            else:
                answer = self.backend.error(status)
                if status == 429:
                    answer[1]["Retry-After"] = self._retry_after
            _send(sock, answer)
            return
        with self.backend.lock:
            answer = self.backend.handle(method_text, path, headers, body)  # commits
        if fault == "reset_after_read":
            _reset(sock)
        elif fault == "timeout_after_commit":
            self._closing.wait(self.stall)
        elif fault == "truncated_body":
            _send(sock, answer, cut=True)
        elif fault == "non_json_body":
            _send(sock, (200, {"Content-Type": "text/html"}, _HTML % 200))
        else:
            _send(sock, answer)


def _send(sock: socket.socket, answer: Answer, *, cut: bool = False) -> None:
    status, headers, body = answer
    head = [f"HTTP/1.1 {status} Fault", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (
        body[: len(body) // 2] if cut else body
    )
    with contextlib.suppress(OSError):  # the client may have given up already
        sock.sendall(data)


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0), not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
