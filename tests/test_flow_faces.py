"""Issue 18: the PayPal and Square adapters' operations are written once (``PayPalFlows``,
``SquareFlows``) and run by both faces. Each multi-step operation below is run on the sync
adapter and on the async one, over the same mocked HTTP, most with a request failing
mid-flow: the two faces must send the same requests (method, path, body; PayPal's
``PayPal-Request-Id`` and ``Prefer``), in the same order, to the sequence written here, and
give the same answer or the same typed error.

A failure mid-flow is thrown into the flow (``paygate.providers._flow``) so its own
``except`` decides: a driver that raised it instead, or a face that sent its own sequence,
fails these tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import responses

from paygate import LineItem, Money
from paygate.errors import CardDeclined, ProviderError
from paygate.providers._square_mock import SquareMockAPI
from paygate.providers.paypal import AsyncPayPalProvider, PayPalProvider
from paygate.providers.square import AsyncSquareProvider, SquareProvider
from paygate.testing.aio import blocking
from tests.async_support import blocking_on_responses
from tests.paypal_support import (
    PayPalMock,
    capture_json,
    order_json,
    provider_settings,
    refund_json,
)

# -- PayPal ---------------------------------------------------------------------------------

ORDER = "5O190127TN364715T"
CAPTURE = "3C679366HH908993F"
REFUND = "1JU08902781691411"

Sent = tuple[str, str, Any, str | None, str | None]  # method, path, body, request id, Prefer


@contextmanager
def _sync_face() -> Iterator[Any]:
    yield PayPalProvider(**provider_settings())


@contextmanager
def _async_face() -> Iterator[Any]:
    with blocking_on_responses(
        lambda client: AsyncPayPalProvider(**provider_settings(), http_client=client)
    ) as facade:
        yield facade


FACES = {"sync": _sync_face, "async": _async_face}


def _already_captured(paypal: PayPalMock) -> None:
    """The capture on return answers 422 ORDER_ALREADY_CAPTURED (a second tab won): the
    flow catches it and reads the order again."""
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", order_json(status="APPROVED"))
    paypal.on(
        "POST", f"/v2/checkout/orders/{ORDER}/capture",
        {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "ORDER_ALREADY_CAPTURED"}]},
        status=422,
    )  # fmt: skip
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", captures=[capture_json()]))  # fmt: skip


def _declined(paypal: PayPalMock) -> None:
    """The capture is declined: the flow does not catch it, the typed error comes out."""
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}", order_json(status="APPROVED"))
    paypal.on(
        "POST", f"/v2/checkout/orders/{ORDER}/capture",
        {"name": "UNPROCESSABLE_ENTITY", "details": [{"issue": "INSTRUMENT_DECLINED"}]},
        status=422,
    )  # fmt: skip


def _unknown_capture(paypal: PayPalMock) -> None:
    """A refund that names no order; its capture's lookup answers 404: the flow catches the
    NotFound and keeps the capture id."""
    refund = refund_json()
    refund["links"] = [{"rel": "up", "href": f"https://x/v2/payments/captures/{CAPTURE}"}]
    paypal.on("GET", f"/v2/payments/refunds/{REFUND}", refund)
    paypal.on(
        "GET", f"/v2/payments/captures/{CAPTURE}",
        {"name": "RESOURCE_NOT_FOUND", "details": [{"issue": "INVALID_RESOURCE_ID"}]},
        status=404,
    )  # fmt: skip


def _complete_return(provider: Any) -> Any:
    return provider.complete_return({"token": ORDER}, idempotency_key="paygate:ord_1:capture")


SCENARIOS: dict[str, tuple[Callable[[PayPalMock], None], Callable[[Any], Any], list[Sent]]] = {
    "complete_return, already captured": (
        _already_captured,
        _complete_return,
        [
            ("GET", f"/v2/checkout/orders/{ORDER}", None, None, "return=representation"),
            ("POST", f"/v2/checkout/orders/{ORDER}/capture", {}, "paygate:ord_1:capture",
             "return=representation"),
            ("GET", f"/v2/checkout/orders/{ORDER}", None, None, "return=representation"),
        ],
    ),
    "complete_return, declined": (
        _declined,
        _complete_return,
        [
            ("GET", f"/v2/checkout/orders/{ORDER}", None, None, "return=representation"),
            ("POST", f"/v2/checkout/orders/{ORDER}/capture", {}, "paygate:ord_1:capture",
             "return=representation"),
        ],
    ),
    "get_refund, capture unknown": (
        _unknown_capture,
        lambda provider: provider.get_refund(REFUND),
        [
            ("GET", f"/v2/payments/refunds/{REFUND}", None, None, "return=representation"),
            ("GET", f"/v2/payments/captures/{CAPTURE}", None, None, "return=representation"),
        ],
    ),
}  # fmt: skip


def _run_on(face: str, scenario: str) -> tuple[list[Sent], Any]:
    """The requests ``scenario`` sends on ``face``, and its answer (or error: type, code)."""
    script, operation, _ = SCENARIOS[scenario]
    with responses.RequestsMock() as rsps:
        paypal = PayPalMock(rsps, validate_bodies=False)
        paypal.token()
        script(paypal)
        with FACES[face]() as provider:
            try:
                outcome: Any = operation(provider)
            except CardDeclined as exc:
                outcome = (type(exc), exc.code, exc.http_status)
    sent = [
        (c.method, c.path, c.body, c.headers.get("PayPal-Request-Id"), c.headers.get("Prefer"))
        for c in paypal.calls
    ]
    return sent, outcome


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_both_paypal_faces_send_the_flow_s_requests(scenario: str) -> None:
    sync_sent, sync_outcome = _run_on("sync", scenario)
    async_sent, async_outcome = _run_on("async", scenario)
    assert sync_sent == SCENARIOS[scenario][2]
    assert async_sent == sync_sent
    assert async_outcome == sync_outcome


def test_the_paypal_outcomes_are_the_flow_s() -> None:
    """What the scenarios above answer: the caught errors did not stop the flows."""
    _, payment = _run_on("async", "complete_return, already captured")
    assert payment.charge_id == CAPTURE and payment.status.value == "succeeded"
    _, declined = _run_on("async", "complete_return, declined")
    assert declined == (CardDeclined, "INSTRUMENT_DECLINED", 422)
    _, refund = _run_on("sync", "get_refund, capture unknown")
    assert refund.id == REFUND and refund.payment_id == CAPTURE


# -- Square ---------------------------------------------------------------------------------

SQUARE = {
    "access_token": "EAAAl-test-access-token-do-not-log",
    "location_id": "LOC1",
    "webhook_signature_key": "whsig-test-key-do-not-log",
    "webhook_url": "https://shop.example/webhooks/square",
}


@contextmanager
def _square_face(face: str, api: SquareMockAPI) -> Iterator[Any]:
    if face == "sync":
        provider = SquareProvider(**SQUARE, http_client=api.http_client())
        yield provider
        provider.close()
        return
    client = httpx.AsyncClient(transport=api.transport)
    facade = blocking(AsyncSquareProvider(**SQUARE, http_client=client))
    try:
        yield facade
    finally:
        facade.run(client.aclose())  # type: ignore[attr-defined]
        facade.close()  # type: ignore[attr-defined]


def _authorized(provider: Any) -> str:
    payment = provider.create_payment(
        order_id="ord_1", amount=Money.of("19.99", "USD"), payment_method="cnon:card-nonce-ok",
        idempotency_key="ord_1:create", capture="manual",
    )  # fmt: skip
    return str(payment.id)


def _capture_repeat_refused(provider: Any, api: SquareMockAPI) -> Any:
    """A capture whose answer was lost, repeated: Square refuses it (400); the flow reads
    the payment, finds it COMPLETED and answers it."""
    payment_id = _authorized(provider)
    provider.capture_payment(payment_id, idempotency_key="ord_1:capture")
    api.fail_next(400, "BAD_REQUEST", "INVALID_REQUEST_ERROR")
    start = len(api.calls)
    return start, lambda: provider.capture_payment(payment_id, idempotency_key="ord_1:capture")


def _capture_refused(provider: Any, api: SquareMockAPI) -> Any:
    """A capture Square refuses of a payment that is not captured: the flow reads it and
    raises the refusal."""
    payment_id = _authorized(provider)
    api.fail_next(400, "BAD_REQUEST", "INVALID_REQUEST_ERROR")
    start = len(api.calls)
    return start, lambda: provider.capture_payment(payment_id, idempotency_key="ord_1:capture")


def _invoice_sent(provider: Any, api: SquareMockAPI) -> Any:
    """Order, draft invoice, publish: three calls, each its own idempotency key."""
    customer = provider.create_customer(email="a@example.com", name=None, idempotency_key="c")
    start = len(api.calls)
    items = [LineItem("Consulting", Money.of("100.00", "USD"), quantity=3)]
    return start, lambda: provider.create_invoice(
        customer_id=customer.id, line_items=items, idempotency_key="i2", send=True
    )


SQUARE_SCENARIOS: dict[str, tuple[Callable[[Any, SquareMockAPI], Any], list[tuple[str, str]]]] = {
    "capture_payment, repeat refused": (
        _capture_repeat_refused,
        [("POST", "/v2/payments/{payment}/complete"), ("GET", "/v2/payments/{payment}")],
    ),
    "capture_payment, refused": (
        _capture_refused,
        [("POST", "/v2/payments/{payment}/complete"), ("GET", "/v2/payments/{payment}")],
    ),
    "create_invoice, sent": (
        _invoice_sent,
        [("POST", "/v2/orders"), ("POST", "/v2/invoices"),
         ("POST", "/v2/invoices/{invoice}/publish")],
    ),
}  # fmt: skip


def _square_run_on(face: str, scenario: str) -> tuple[list[tuple[str, str, Any, int]], Any]:
    """The calls ``scenario`` makes on ``face`` (method, path, body, status), its answer
    (or error: type, code, HTTP status)."""
    api = SquareMockAPI(
        webhook_signature_key=SQUARE["webhook_signature_key"], webhook_url=SQUARE["webhook_url"]
    )
    with _square_face(face, api) as provider:
        start, operation = SQUARE_SCENARIOS[scenario][0](provider, api)
        try:
            outcome: Any = operation()
        except ProviderError as exc:
            outcome = (type(exc), exc.code, exc.http_status)
    return [(c.method, c.path, c.body, c.status) for c in api.calls[start:]], outcome


def _shape(path: str) -> str:
    """``path`` with its Square ids named by kind (they are the mock's, made per run)."""
    parts = path.split("/")
    if parts[2:3] == ["payments"] and len(parts) > 3:
        parts[3] = "{payment}"
    if parts[2:3] == ["invoices"] and len(parts) > 4:
        parts[3] = "{invoice}"
    return "/".join(parts)


@pytest.mark.parametrize("scenario", list(SQUARE_SCENARIOS))
def test_both_square_faces_make_the_flow_s_calls(scenario: str) -> None:
    sync_sent, sync_outcome = _square_run_on("sync", scenario)
    async_sent, async_outcome = _square_run_on("async", scenario)
    expected = SQUARE_SCENARIOS[scenario][1]
    assert [(method, _shape(path)) for method, path, *_ in sync_sent] == expected
    assert async_sent == sync_sent  # bodies and idempotency keys included
    assert async_outcome == sync_outcome


def test_the_square_outcomes_are_the_flow_s() -> None:
    _, payment = _square_run_on("async", "capture_payment, repeat refused")
    assert payment.status.value == "succeeded"
    _, refused = _square_run_on("async", "capture_payment, refused")
    assert refused[1:] == ("BAD_REQUEST", 400)
    _, invoice = _square_run_on("sync", "create_invoice, sent")
    assert invoice.status.value == "open"
