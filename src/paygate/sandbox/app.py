"""The sandbox server: one HTTP port, the provider faces' routes, the dashboard's pages.

Werkzeug serves it: a well-kept WSGI toolkit (Flask's) that gives routing, request parsing
(form-encoded bodies, as Stripe's API takes) and a threaded server that runs in a
background thread of the calling process, with no event loop to own; that is what both
``paygate sandbox`` and an in-process pytest fixture need. It is a development server,
which is what the sandbox is.

Layout on one port (``http://127.0.0.1:12111`` by default):

``/v1/...``           Stripe's API (the Stripe adapter's ``base_url`` is the root)
``/paypal/...``       PayPal's REST API (the PayPal adapter's ``base_url``)
``/square/...``       Square's API (the Square adapter's ``base_url``)
``/_sandbox/...``     JSON admin API used by ``paygate sandbox trigger|events|resend``
anything else       hosted pages and the dashboard at ``/``
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from paygate.errors import PaygateError
from paygate.sandbox.events import DEFAULT_RETRY_DELAYS, EventBus
from paygate.sandbox.state import SandboxState
from paygate.sandbox.store import DeliveryAttempt, StoredEvent, open_store

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from paygate.sandbox.face import ProviderFace
    from paygate.sandbox.paypal import PayPalFace
    from paygate.sandbox.square import SquareFace
    from paygate.sandbox.stripe import StripeFace

__all__ = ["DEFAULT_PORT", "Handler", "Sandbox", "json_response"]

DEFAULT_PORT = 12111
logger = logging.getLogger("paygate.sandbox")

#: a route's handler: the request and the rule's path values → the response
Handler = Callable[..., Response]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(data, separators=(",", ":")),
        status=status,
        headers=headers,
        mimetype="application/json",
    )


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's request handler without its per-request access log line."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if logger.isEnabledFor(logging.DEBUG):
            super().log_request(code, size)


class Sandbox:
    """A local, stateful emulator of Stripe, PayPal and Square on one HTTP port.

    ``with Sandbox(port=0) as sandbox: ...`` starts it on a free port in a background
    thread; ``sandbox.stripe.base_url``, ``sandbox.stripe.secrets()`` ... are what an
    application configures.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        forward_to: Sequence[str] = (),
        store: str = "memory://",
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        delivery_timeout: float = 5.0,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.started_at = time.time()
        self._store = open_store(store)
        self.state = SandboxState(self._store, seed=seed)
        self.bus = EventBus(
            self._store, forward_to=forward_to, retry_delays=retry_delays, timeout=delivery_timeout
        )
        self._map = Map(strict_slashes=False)
        self._handlers: dict[str, Handler] = {}
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._register_admin()
        from paygate.sandbox import pages
        from paygate.sandbox.paypal import PayPalFace
        from paygate.sandbox.square import SquareFace
        from paygate.sandbox.stripe import StripeFace

        self.stripe: StripeFace = StripeFace(self)
        self.paypal: PayPalFace = PayPalFace(self)
        self.square: SquareFace = SquareFace(self)
        self.faces: dict[str, ProviderFace] = {
            face.name: face for face in (self.stripe, self.paypal, self.square)
        }
        for face in self.faces.values():
            face.register()
        pages.register(self)

    # -- routing --------------------------------------------------------------------------------

    def route(self, rule: str, handler: Handler, *, methods: Iterable[str] = ("GET",)) -> None:
        """Serve ``rule`` (Werkzeug syntax: ``/v1/payment_intents/<intent>``) with
        ``handler(request, **values) -> Response``."""
        endpoint = f"{rule}|{','.join(sorted(methods))}"
        self._map.add(Rule(rule, endpoint=endpoint, methods=list(methods)))
        self._handlers[endpoint] = handler

    def wsgi_app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        try:
            endpoint, values = self._map.bind_to_environ(environ).match()
            response = self._handlers[str(endpoint)](request, **values)
        except HTTPException as exc:
            response = exc.get_response(environ)
        except Exception:
            logger.exception("sandbox: %s %s failed", request.method, request.path)
            response = json_response(
                {"error": {"type": "api_error", "message": "the sandbox failed; see its log"}},
                500,
            )
        return response(environ, start_response)

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Sandbox:
        """Listen (``port=0`` picks a free port) and serve in a background thread."""
        self._server = make_server(
            self.host, self.port, self.wsgi_app, threaded=True, request_handler=_QuietHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sandbox-http", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Block until interrupted (``paygate sandbox``)."""
        if self._thread is None:
            self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.bus.close()
        self.state.close()
        self._store.close()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- admin API (the CLI's and the dashboard's) ----------------------------------------------

    def event_json(self, event: StoredEvent, *, attempts: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": event.id,
            "provider": event.provider,
            "type": event.type,
            "created": event.created,
        }
        if attempts:
            data["attempts"] = [_attempt_json(a) for a in self.bus.attempts(event.id)]
        return data

    def _register_admin(self) -> None:
        def events(request: Request) -> Response:
            provider = request.args.get("provider") or None
            limit = request.args.get("limit", 50, type=int)
            found = self.bus.events(provider, limit)
            return json_response({"events": [self.event_json(e) for e in found]})

        def event(request: Request, event_id: str) -> Response:
            try:
                found = self.bus.get(event_id)
            except PaygateError as exc:
                return json_response({"error": str(exc)}, 404)
            return json_response({**self.event_json(found), "payload": found.payload()})

        def resend(request: Request, event_id: str) -> Response:
            try:
                found = self.bus.resend(event_id)
            except PaygateError as exc:
                return json_response({"error": str(exc)}, 404)
            return json_response({"resent": found.id, "to": self.bus.endpoints(found.provider)})

        def trigger(request: Request) -> Response:
            body = request.get_json(silent=True) or {}
            provider = str(body.get("provider", "stripe"))
            face = self.faces.get(provider)
            if face is None:
                return json_response({"error": f"unknown provider {provider!r:.40}"}, 400)
            try:
                ids = face.trigger(str(body.get("event_type", "")))
            except PaygateError as exc:
                return json_response({"error": str(exc)}, 400)
            return json_response({"events": ids})

        def info(request: Request) -> Response:
            return json_response(self.info())

        self.route("/_sandbox/events", events)
        self.route("/_sandbox/events/<event_id>", event)
        self.route("/_sandbox/events/<event_id>/resend", resend, methods=("POST",))
        self.route("/_sandbox/trigger", trigger, methods=("POST",))
        self.route("/_sandbox/info", info)

    def info(self) -> dict[str, Any]:
        """Base URLs, secrets and endpoints: what ``paygate sandbox`` prints."""
        return {
            "base_url": self.base_url,
            "store": self._store.url,
            "providers": {
                name: {
                    "base_url": face.base_url,
                    "secrets": dict(face.secrets()),
                    "webhook_endpoints": self.bus.endpoints(name),
                }
                for name, face in self.faces.items()
            },
        }


def _attempt_json(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {
        "url": attempt.url,
        "attempt": attempt.attempt,
        "at": attempt.at,
        "status": attempt.status,
        "ok": attempt.ok,
        "excerpt": attempt.excerpt,
        "duration_ms": round(attempt.duration_ms, 1),
    }
