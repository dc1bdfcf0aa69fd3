"""Unknown outcomes, 4xx never retried, Retry-After and the budget as a deadline: the rules
of ``paygate._retry`` and ``paygate.providers._http_faults`` one by one, on each adapter
(mocked HTTP). ``tests/test_faults.py`` runs the same rules end to end over real TCP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import pytest
import responses

import paygate
from paygate import (
    InvalidRequest,
    Money,
    NotFound,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from paygate._retry import RetryPolicy, attempt_timeout, retry_after
from paygate.providers._square_mock import SquareMockAPI
from paygate.providers.paypal import PayPalProvider
from paygate.providers.square import SquareProvider
from paygate.providers.stripe import StripeProvider
from paygate.stores import OperationStatus
from tests.paypal_support import capture_json, order_json

STRIPE = "https://api.stripe.com/v1"
PAYPAL = "https://api-m.sandbox.paypal.com"
AMOUNT = Money.of("19.99", "USD")
MARKER = "secret-page-marker"  # in every non-JSON body: never in an error message
HTML = f"<html><body>404 Not Found {MARKER}</body></html>"


def no_sleep_policy(**overrides: Any) -> RetryPolicy:
    settings: dict[str, Any] = {"attempts": 3, "sleep": lambda _: None, **overrides}
    return RetryPolicy(**settings)


def stripe_intent(order: str = "ord_1") -> dict[str, Any]:
    return {"id": "pi_1", "object": "payment_intent", "amount": 1999, "amount_received": 1999,
            "currency": "usd", "status": "succeeded", "metadata": {"order_id": order}}  # fmt: skip


def paypal_order(order: str = "ord_1") -> dict[str, Any]:
    return order_json(status="COMPLETED", ref=order, captures=[capture_json(ref=order)])


def paypal_token(rsps: responses.RequestsMock) -> None:
    rsps.post(f"{PAYPAL}/v1/oauth2/token",
              json={"access_token": "A21AAunit", "token_type": "Bearer", "expires_in": 32400})  # fmt: skip


def stripe() -> StripeProvider:
    return StripeProvider(api_key="sk_test_unit")


def paypal() -> PayPalProvider:
    return PayPalProvider(client_id="AZunit", client_secret="EPunit-secret")


def square(handler: Callable[[httpx.Request], httpx.Response]) -> SquareProvider:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return SquareProvider(access_token="sq-unit", location_id="L1", http_client=client)


# -- issue 15: a cut-off 200 is an unknown outcome, on every provider ---------------------------


def _cutting(api: SquareMockAPI) -> Callable[[httpx.Request], httpx.Response]:
    """``api``, with the first CreatePayment answer cut off mid-body (the issue's repro)."""
    cut = [True]

    def handle(request: httpx.Request) -> httpx.Response:
        response = api.handle(request)
        if cut[0] and request.method == "POST" and request.url.path == "/v2/payments":
            cut[0] = False
            body = response.content
            return httpx.Response(response.status_code, content=body[: len(body) // 2],
                                  headers={"content-type": "application/json"})  # fmt: skip
        return response

    return handle


def test_square_cut_off_200_stays_pending_and_the_next_call_charges_once(tmp_path: Path) -> None:
    api = SquareMockAPI()
    gw = paygate.connect(square(_cutting(api)), store=f"sqlite:///{tmp_path / 'p.db'}",
                         retry=no_sleep_policy(attempts=1))  # fmt: skip
    order = dict(order_id="ord_cut", amount=AMOUNT, payment_method="cnon:card-nonce-ok")
    with pytest.raises(OutcomeUnknown) as caught:  # was InvalidRequest: attempt marked failed
        gw.create_payment(**order)  # type: ignore[arg-type]
    assert caught.value.retryable and caught.value.code == "unreadable_response"
    op = gw.store.get_operation("create_payment:ord_cut")
    assert op is not None and op.status is OperationStatus.PENDING
    assert len(api.payments) == 1  # Square did charge
    payment = gw.create_payment(**order)  # type: ignore[arg-type]
    assert len(api.payments) == 1 and payment.id in api.payments  # not a second charge
    keys = {c.body["idempotency_key"] for c in api.calls if c.path == "/v2/payments"}
    assert len(keys) == 1


def test_square_cut_off_200_is_retried_within_the_call(tmp_path: Path) -> None:
    api = SquareMockAPI()
    gw = paygate.connect(square(_cutting(api)), store=f"sqlite:///{tmp_path / 'p.db'}",
                         retry=no_sleep_policy())  # fmt: skip
    gw.create_payment(order_id="o", amount=AMOUNT, payment_method="cnon:card-nonce-ok")
    assert len(api.payments) == 1
    assert len([c for c in api.calls if c.path == "/v2/payments"]) == 2


@responses.activate
def test_stripe_cut_off_200_is_retried_with_the_same_key() -> None:
    full = json.dumps(stripe_intent())
    responses.post(f"{STRIPE}/payment_intents", body=full[: len(full) // 2], status=200)
    responses.post(f"{STRIPE}/payment_intents", body=full, status=200)
    gw = paygate.connect(stripe(), retry=no_sleep_policy())
    payment = gw.create_payment(order_id="ord_1", amount=AMOUNT, payment_method="pm_card_visa")
    assert payment.id == "pi_1"
    keys = {c.request.headers["Idempotency-Key"] for c in responses.calls}
    assert len(responses.calls) == 2 and len(keys) == 1


@responses.activate
def test_stripe_cut_off_200_is_outcome_unknown_without_echoing_the_body() -> None:
    full = json.dumps({**stripe_intent(), "description": MARKER})
    responses.post(f"{STRIPE}/payment_intents", body=full[: len(full) - 5], status=200)
    with pytest.raises(OutcomeUnknown) as caught:
        stripe().create_payment(order_id="o", amount=AMOUNT, payment_method="pm_card_visa",
                                idempotency_key="k")  # fmt: skip
    assert caught.value.http_status == 200 and MARKER not in str(caught.value)


def test_paypal_cut_off_201_is_retried_with_the_same_request_id() -> None:
    full = json.dumps(paypal_order())
    with responses.RequestsMock() as rsps:
        paypal_token(rsps)
        rsps.post(f"{PAYPAL}/v2/checkout/orders", body=full[: len(full) // 2], status=201)
        rsps.post(f"{PAYPAL}/v2/checkout/orders", body=full, status=201)
        gw = paygate.connect(paypal(), retry=no_sleep_policy())
        payment = gw.create_payment(order_id="ord_1", amount=AMOUNT, payment_method="VAULT1")
        sent = [c for c in rsps.calls if c.request.url.endswith("/v2/checkout/orders")]
    assert payment.status.value == "succeeded"
    assert len(sent) == 2 and len({c.request.headers["PayPal-Request-Id"] for c in sent}) == 1


def test_paypal_cut_off_201_is_outcome_unknown() -> None:
    full = json.dumps(paypal_order())
    with responses.RequestsMock() as rsps:
        paypal_token(rsps)
        rsps.post(f"{PAYPAL}/v2/checkout/orders", body=full[:40], status=201)
        with pytest.raises(OutcomeUnknown) as caught:
            paypal().create_payment(order_id="o", amount=AMOUNT, payment_method="VAULT1",
                                    idempotency_key="k")  # fmt: skip
    assert caught.value.retryable


@responses.activate
def test_stripe_idempotency_key_in_use_is_retryable() -> None:
    """409 ``idempotency_key_in_use``: the first request with this key is still running.
    Refusing it for good would let the next call send a new key -- a second charge."""
    responses.post(f"{STRIPE}/payment_intents", status=409, json={"error": {
        "type": "idempotency_error", "code": "idempotency_key_in_use", "message": "busy"}})  # fmt: skip
    with pytest.raises(OutcomeUnknown) as caught:
        stripe().create_payment(order_id="o", amount=AMOUNT, payment_method="pm_x",
                                idempotency_key="k")  # fmt: skip
    assert caught.value.retryable and caught.value.http_status == 409


# -- issue 14: no 4xx is retried, whatever its body ---------------------------------------------


def _assert_refused_for_good(error: ProviderError, status: int) -> None:
    assert not error.retryable, repr(error)
    assert error.code == "unexpected_response" and error.http_status == status
    assert f"HTTP {status}" in str(error) and "not JSON" in str(error)
    assert MARKER not in str(error) + repr(error)


@pytest.mark.parametrize(("status", "expected"), [(404, NotFound), (400, InvalidRequest),
                                                   (405, InvalidRequest), (410, InvalidRequest)])  # fmt: skip
@responses.activate
def test_stripe_non_json_4xx_is_not_retried(status: int, expected: type[ProviderError]) -> None:
    responses.post(f"{STRIPE}/payment_intents", body=HTML, status=status,
                   content_type="text/html")  # fmt: skip
    gw = paygate.connect(stripe(), retry=no_sleep_policy())
    with pytest.raises(expected) as caught:
        gw.create_payment(order_id="o4", amount=AMOUNT, payment_method="pm_card_visa")
    _assert_refused_for_good(caught.value, status)
    assert len(responses.calls) == 1  # was retried 3 times as ProviderUnavailable
    op = gw.store.get_operation("create_payment:o4")
    assert op is not None and op.status is OperationStatus.FAILED


@pytest.mark.parametrize("status", [405, 410, 422])
@responses.activate
def test_stripe_json_4xx_without_a_sdk_class_is_not_retried(status: int) -> None:
    responses.post(f"{STRIPE}/payment_intents", status=status,
                   json={"error": {"type": "invalid_request_error", "message": "nope"}})  # fmt: skip
    with pytest.raises(InvalidRequest) as caught:
        stripe().create_payment(order_id="o", amount=AMOUNT, payment_method="pm_x",
                                idempotency_key="k")  # fmt: skip
    assert not caught.value.retryable and caught.value.http_status == status


@pytest.mark.parametrize(("status", "expected"), [(404, NotFound), (400, InvalidRequest),
                                                   (418, InvalidRequest)])  # fmt: skip
def test_paypal_non_json_4xx_is_not_retried(status: int, expected: type[ProviderError]) -> None:
    with responses.RequestsMock() as rsps:
        paypal_token(rsps)
        rsps.post(f"{PAYPAL}/v2/checkout/orders", body=HTML, status=status)
        gw = paygate.connect(paypal(), retry=no_sleep_policy())
        with pytest.raises(expected) as caught:
            gw.create_payment(order_id="o", amount=AMOUNT, payment_method="VAULT1")
        assert len([c for c in rsps.calls if "/v2/" in c.request.url]) == 1
    _assert_refused_for_good(caught.value, status)


@pytest.mark.parametrize(("status", "expected"), [(404, NotFound), (400, InvalidRequest),
                                                   (418, InvalidRequest)])  # fmt: skip
def test_square_non_json_4xx_is_not_retried(status: int, expected: type[ProviderError]) -> None:
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(status, text=HTML)

    gw = paygate.connect(square(handle), retry=no_sleep_policy())
    with pytest.raises(expected) as caught:
        gw.create_payment(order_id="o", amount=AMOUNT, payment_method="cnon:card-nonce-ok")
    _assert_refused_for_good(caught.value, status)
    assert len(sent) == 1


@pytest.mark.parametrize("provider", ["stripe", "paypal", "square"])
def test_a_non_json_502_is_retryable_and_quotes_nothing(provider: str) -> None:
    page = f"<html>502 Bad Gateway {MARKER}</html>"
    with responses.RequestsMock() as rsps:
        if provider == "stripe":
            rsps.post(f"{STRIPE}/payment_intents", body=page, status=502)
            adapter: Any = stripe()
        elif provider == "paypal":
            paypal_token(rsps)
            rsps.post(f"{PAYPAL}/v2/checkout/orders", body=page, status=502)
            adapter = paypal()
        else:
            adapter = square(lambda request: httpx.Response(502, text=page))
        with pytest.raises(ProviderUnavailable) as caught:
            adapter.create_payment(order_id="o", amount=AMOUNT, payment_method="VAULT1",
                                   idempotency_key="k")  # fmt: skip
    assert type(caught.value) is ProviderUnavailable and caught.value.retryable
    assert MARKER not in str(caught.value) and caught.value.http_status == 502


# -- Retry-After ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2", 2.0), (" 7 ", 7.0), (b"3", 3.0), ("0", 0.0), ("", None), (None, None),
     ("soon", None), ("²", None), ("-1", None), ("1.5", None), ("9" * 12, None),
     ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0)],
)  # fmt: skip
def test_retry_after_values(value: object, seconds: float | None) -> None:
    assert retry_after(value) == seconds


def test_retry_after_http_date() -> None:
    now = 1_800_000_000.0
    assert retry_after(formatdate(now + 5, usegmt=True), now=now) == pytest.approx(5.0)
    assert retry_after(formatdate(now - 5, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize("provider", ["stripe", "paypal", "square"])
def test_each_adapter_carries_retry_after(provider: str) -> None:
    with responses.RequestsMock() as rsps:
        if provider == "stripe":
            rsps.post(f"{STRIPE}/payment_intents", status=429, headers={"Retry-After": "2"},
                      json={"error": {"type": "invalid_request_error", "code": "rate_limit"}})  # fmt: skip
            adapter: Any = stripe()
        elif provider == "paypal":
            paypal_token(rsps)
            rsps.post(f"{PAYPAL}/v2/checkout/orders", status=429, headers={"Retry-After": "2"},
                      json={"name": "RATE_LIMIT_REACHED", "message": "slow down"})  # fmt: skip
            adapter = paypal()
        else:
            api = SquareMockAPI()
            api.fail_next(429, "RATE_LIMITED", "RATE_LIMIT_ERROR", headers={"Retry-After": "2"})
            adapter = square(api.handle)
        with pytest.raises(RateLimited) as caught:
            adapter.create_payment(order_id="o", amount=AMOUNT, payment_method="VAULT1",
                                   idempotency_key="k")  # fmt: skip
    assert caught.value.retry_after == 2.0 and caught.value.retryable


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_policy_waits_as_long_as_retry_after_asks() -> None:
    fake = FakeTime()
    policy = RetryPolicy(attempts=3, base_delay=0.1, sleep=fake.sleep, clock=fake.clock,
                         random=lambda: 0.0)  # fmt: skip
    answers: list[Any] = [RateLimited("slow", retry_after=2.0), "ok"]

    def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    assert policy.call("op", call) == "ok"
    assert fake.sleeps == [2.0]  # not the 0.1 s backoff


def test_a_retry_after_beyond_the_budget_ends_the_call_at_once() -> None:
    fake = FakeTime()
    policy = RetryPolicy(attempts=5, total_budget=10.0, sleep=fake.sleep, clock=fake.clock)
    calls = [0]

    def call() -> None:
        calls[0] += 1
        raise RateLimited("slow", retry_after=30.0)

    with pytest.raises(RateLimited):
        policy.call("op", call)
    assert calls[0] == 1 and fake.sleeps == []  # no sleeping past the deadline


# -- the budget is a deadline ---------------------------------------------------------------------


def test_each_attempt_gets_the_time_left_as_its_timeout() -> None:
    """A provider that hangs for the whole timeout each time: with the defaults (10 s timeout,
    20 s budget) it is tried twice and the call ends by the deadline."""
    fake = FakeTime()
    policy = RetryPolicy(sleep=fake.sleep, clock=fake.clock, random=lambda: 0.0)
    timeouts: list[float] = []

    def hung() -> None:
        timeouts.append(attempt_timeout(10.0))
        fake.now += timeouts[-1]
        raise OutcomeUnknown("no answer in time")

    with pytest.raises(OutcomeUnknown):
        policy.call("op", hung)
    assert timeouts == [10.0, pytest.approx(9.75)]
    assert fake.now <= policy.total_budget
    assert attempt_timeout(10.0) == 10.0  # outside a policy: the adapter's own timeout


def test_no_retry_starts_with_less_than_min_attempt_time_left() -> None:
    fake = FakeTime()
    policy = RetryPolicy(attempts=10, total_budget=5.0, min_attempt_time=2.0, base_delay=0.5,
                         sleep=fake.sleep, clock=fake.clock, random=lambda: 0.0)  # fmt: skip
    starts: list[float] = []

    def slow() -> None:
        starts.append(fake.now)
        fake.now += 1.5
        raise ProviderUnavailable("down")

    with pytest.raises(ProviderUnavailable):
        policy.call("op", slow)
    # 0 → 1.5 (+0.5 wait) → 2.0 → 3.5: then 0.5 wait + 2.0 > 1.5 left
    assert starts == [0.0, 2.0]


def test_a_nested_policy_keeps_the_outer_deadline() -> None:
    fake = FakeTime()
    outer = RetryPolicy(attempts=1, total_budget=3.0, sleep=fake.sleep, clock=fake.clock)
    inner = RetryPolicy(attempts=1, total_budget=60.0, sleep=fake.sleep, clock=fake.clock)
    seen: list[float] = []

    def step() -> None:
        fake.now += 1.0
        inner.call("inner", lambda: seen.append(attempt_timeout(30.0)))

    outer.call("outer", step)
    assert seen == [2.0]


def test_the_default_timeout_leaves_room_for_one_retry() -> None:
    """30 s timeouts under a 20 s budget meant a timed-out attempt was never retried."""
    policy = RetryPolicy()
    for adapter in (stripe(), paypal(), square(lambda r: httpx.Response(200))):
        timeout = adapter.settings.timeout
        assert timeout + policy.max_delay + policy.min_attempt_time <= policy.total_budget


def test_min_attempt_time_is_checked() -> None:
    with pytest.raises(paygate.ConfigurationError):
        RetryPolicy(min_attempt_time=-1)


# -- never sent versus sent: real sockets -----------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("provider", ["stripe", "paypal", "square"])
def test_a_refused_connection_is_unavailable_not_unknown(provider: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    adapter: Any
    if provider == "stripe":
        adapter = StripeProvider(api_key="sk_test_unit", base_url=url, timeout=2)
    elif provider == "paypal":
        adapter = PayPalProvider(client_id="c", client_secret="s", base_url=url, timeout=2)
    else:
        adapter = SquareProvider(access_token="t", location_id="L", base_url=url, timeout=2)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as caught:
        adapter.create_payment(order_id="o", amount=AMOUNT, payment_method="VAULT1",
                               idempotency_key="k")  # fmt: skip
    assert type(caught.value) is ProviderUnavailable  # nothing was sent: not OutcomeUnknown
    assert caught.value.code == "network_error" and caught.value.retryable
    assert time.monotonic() - started < 2


def _requests_errors() -> list[tuple[BaseException, type[ProviderError]]]:
    import requests
    from urllib3 import exceptions as u3

    refused = requests.ConnectionError(u3.MaxRetryError(None, "/", u3.NewConnectionError(None, "refused")))  # type: ignore[arg-type]  # fmt: skip
    reset = requests.ConnectionError(u3.ProtocolError("Connection aborted.", ConnectionResetError()))  # fmt: skip
    return [
        (refused, ProviderUnavailable),
        (requests.ConnectTimeout("connect"), ProviderUnavailable),
        (requests.exceptions.SSLError("handshake"), ProviderUnavailable),
        (requests.ReadTimeout("read"), OutcomeUnknown),
        (reset, OutcomeUnknown),
        (requests.exceptions.ChunkedEncodingError("IncompleteRead"), OutcomeUnknown),
    ]


@pytest.mark.parametrize(("exc", "expected"), _requests_errors())
def test_requests_failures_tell_never_sent_from_answer_lost(
    exc: BaseException, expected: type[ProviderError]
) -> None:
    from paygate.providers._http_faults import requests_failure

    error = requests_failure("stripe", "Stripe", "create_payment", exc)
    assert type(error) is expected and error.retryable


@pytest.mark.parametrize(
    ("exc", "expected"),
    [(httpx.ConnectError("refused"), ProviderUnavailable),
     (httpx.ConnectTimeout("connect"), ProviderUnavailable),
     (httpx.PoolTimeout("pool"), ProviderUnavailable),
     (httpx.ReadTimeout("read"), OutcomeUnknown),
     (httpx.WriteTimeout("write"), OutcomeUnknown),
     (httpx.RemoteProtocolError("peer closed"), OutcomeUnknown),
     (httpx.ReadError("reset"), OutcomeUnknown)],
)  # fmt: skip
def test_httpx_failures_tell_never_sent_from_answer_lost(
    exc: BaseException, expected: type[ProviderError]
) -> None:
    from paygate.providers._http_faults import httpx_failure

    error = httpx_failure("square", "Square", "create_payment", exc)
    assert type(error) is expected and error.retryable
