"""Issue 18: the PayPal adapter's operations are written once (``PayPalFlows``) and run by
both faces. Each multi-step operation below is run on the sync adapter and on the async
one, over the same mocked HTTP, with a request failing mid-flow: the two faces must send
the same requests (method, path, body, ``PayPal-Request-Id``, ``Prefer``), in the same
order, to the sequence written here, and give the same answer or the same typed error.

A failure mid-flow is thrown into the flow (``paygate.providers._flow``) so its own
``except`` decides: a driver that raised it instead, or a face that sent its own sequence,
fails these tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import responses

from paygate.errors import CardDeclined
from paygate.providers.paypal import AsyncPayPalProvider, PayPalProvider
from tests.async_support import blocking_on_responses
from tests.paypal_support import (
    PayPalMock,
    capture_json,
    order_json,
    provider_settings,
    refund_json,
)

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
def test_both_faces_send_the_flow_s_requests(scenario: str) -> None:
    sync_sent, sync_outcome = _run_on("sync", scenario)
    async_sent, async_outcome = _run_on("async", scenario)
    assert sync_sent == SCENARIOS[scenario][2]
    assert async_sent == sync_sent
    assert async_outcome == sync_outcome


def test_the_outcomes_are_the_flow_s() -> None:
    """What the scenarios above answer: the caught errors did not stop the flows."""
    _, payment = _run_on("async", "complete_return, already captured")
    assert payment.charge_id == CAPTURE and payment.status.value == "succeeded"
    _, declined = _run_on("async", "complete_return, declined")
    assert declined == (CardDeclined, "INSTRUMENT_DECLINED", 422)
    _, refund = _run_on("sync", "get_refund, capture unknown")
    assert refund.id == REFUND and refund.payment_id == CAPTURE
