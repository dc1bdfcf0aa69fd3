"""Test helpers for the sandbox: act as the customer, and receive webhooks.

* `pay_checkout` loads a Checkout Session's hosted page and submits its form with a
  card (an HTTP form post, not a private call); returns where the browser is sent.
* `complete_challenge` does the same for the 3-D Secure page.
* `WebhookReceiver` is a local HTTP endpoint that records every delivery and
  answers with a status you choose (or hands each delivery to your function).

The ``sandbox`` and ``webhook_receiver`` fixtures in `paygate.testing.plugin` build on
these. Needs the ``sandbox`` extra.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from paygate.testing._customer import submit_page

__all__ = ["Delivery", "WebhookReceiver", "complete_challenge", "pay_checkout"]


def pay_checkout(checkout_url: str, card: str = "4242 4242 4242 4242") -> str:
    """Pay a Stripe Checkout Session on its hosted page (``session.url``) with a test card
    number or test payment method; returns the URL the customer's browser goes to next
    (the ``success_url``, the 3-D Secure page, or the page again with ``?error=...``).

    The page is loaded and its own form submitted, as a browser does
    (`paygate.testing.submit_page`); for the whole journey, 3-D Secure included,
    see `paygate.testing.pay_hosted_page`."""
    return submit_page(checkout_url, card)


def complete_challenge(challenge_url: str, *, success: bool = True) -> str:
    """Pass (or fail) the 3-D Secure page at ``challenge_url`` (a PaymentIntent's
    ``next_action.redirect_to_url.url``); returns where the browser goes next."""
    return submit_page(challenge_url, three_d_secure="authenticate" if success else "fail")


@dataclass(frozen=True)
class Delivery:
    """One webhook POST as the receiver got it."""

    body: bytes
    headers: dict[str, str]
    path: str
    at: float


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class WebhookReceiver:
    """A webhook endpoint on 127.0.0.1 (a free port) recording every delivery.

    ``handler(delivery) -> int``, if given, decides the HTTP status (e.g. feeding the body
    to ``gateway.handle_webhook``); otherwise ``status`` (200) is answered.
    """

    def __init__(self, handler: Callable[[Delivery], int] | None = None, status: int = 200) -> None:
        self.handler = handler
        self.status = status
        self.deliveries: list[Delivery] = []
        self._cond = threading.Condition()
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}/webhooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _app(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        delivery = Delivery(request.get_data(), dict(request.headers), request.path, time.time())
        status = self.status
        if self.handler is not None:
            try:
                status = self.handler(delivery)
            except Exception as exc:  # the test sees it through the delivery's status
                status = 500
                delivery = Delivery(
                    delivery.body,
                    {**delivery.headers, "X-Error": repr(exc)},
                    delivery.path,
                    delivery.at,
                )
        with self._cond:
            self.deliveries.append(delivery)
            self._cond.notify_all()
        return Response("ok" if status < 300 else "failed", status)(environ, start_response)

    def wait_for(
        self, predicate: Callable[[list[Delivery]], bool], timeout: float = 30.0
    ) -> list[Delivery]:
        """Block until ``predicate(deliveries)`` holds; ``AssertionError`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.deliveries):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"webhook deliveries did not arrive in {timeout}s "
                        f"({len(self.deliveries)} received)"
                    )
                self._cond.wait(left)
            return list(self.deliveries)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
