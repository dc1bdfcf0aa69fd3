"""The ``paypalrestsdk.Api`` quirks paygate neutralizes, one test each, plus transport details.

Each test first shows the SDK's own behaviour where that is cheap, so the test would fail if
the quirk were not there to neutralize (or if paygate stopped neutralizing it).
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import paypalrestsdk
import pytest
import responses

from paygate.errors import AuthenticationError, InvalidRequest
from paygate.models import PaymentStatus
from paygate.providers._paypal_http import install_sdk_log_guard
from paygate.providers.paypal import PayPalProvider
from tests.paypal_support import (
    ACCESS_TOKEN,
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    PayPalMock,
    order_json,
    provider_settings,
)

ORDER = "5O190127TN364715T"
ORDER_PATH = f"/v2/checkout/orders/{ORDER}"
BAD_REQUEST = {
    "name": "INVALID_REQUEST",
    "message": "Request is not well-formed, syntactically incorrect, or violates schema.",
    "details": [{"issue": "INVALID_PARAMETER_VALUE", "description": "Bad value."}],
    "debug_id": "d1",
}
SECRETS = (
    CLIENT_SECRET,
    ACCESS_TOKEN,
    base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode(),
)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def _raw_sdk_api() -> paypalrestsdk.Api:
    return paypalrestsdk.Api(
        mode="sandbox", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, endpoint=API
    )


# -- quirk 1: a 400 is returned as {"error": ...} -----------------------------------------------


def test_400_raises_instead_of_returning_an_error_dict(rsps: responses.RequestsMock) -> None:
    mock = PayPalMock(rsps, validate_bodies=False)
    mock.token()
    mock.on("POST", "/v2/checkout/orders", BAD_REQUEST, status=400)
    # the SDK on its own: the refusal comes back as an ordinary return value
    answer = _raw_sdk_api().post("v2/checkout/orders", {"intent": "CAPTURE"})
    assert answer == {"error": BAD_REQUEST}

    provider = PayPalProvider(**provider_settings())
    from paygate import Money

    with pytest.raises(InvalidRequest) as info:
        provider.create_payment(
            order_id="ord_1", amount=Money.of("1", "USD"), payment_method=None,
            idempotency_key="k",
        )  # fmt: skip
    assert info.value.code == "INVALID_PARAMETER_VALUE"
    assert info.value.http_status == 400
    assert "Bad value." in str(info.value)


# -- quirk 2: unbounded re-request on 401 ---------------------------------------------------------


def test_401_on_a_cached_token_refreshes_it_and_resends_once(
    rsps: responses.RequestsMock,
) -> None:
    mock = PayPalMock(rsps, validate_bodies=False)
    mock.token()
    answers = iter([(200, order_json()), (401, {"error": "invalid_token"}), (200, order_json())])

    def reply(request: object) -> tuple[int, dict[str, str], str]:
        status, body = next(answers)
        return status, {}, json.dumps(body)

    rsps.add_callback(responses.GET, f"{API}{ORDER_PATH}", callback=reply)
    provider = PayPalProvider(**provider_settings())
    provider.get_payment(ORDER)  # fetches and caches the token
    assert provider.get_payment(ORDER).status is PaymentStatus.REQUIRES_ACTION
    assert mock.token_calls == 2  # the revoked token was replaced
    assert sum(1 for call in rsps.calls if call.request.url.endswith(ORDER_PATH)) == 3


def test_401_twice_is_an_authentication_error_after_one_resend(
    rsps: responses.RequestsMock,
) -> None:
    mock = PayPalMock(rsps, validate_bodies=False)
    mock.token()
    mock.on("GET", "/v1/billing/subscriptions/I-1", {"id": "I-1", "status": "ACTIVE"})
    rsps.add(responses.GET, f"{API}{ORDER_PATH}", json={"error": "invalid_token"}, status=401)
    provider = PayPalProvider(**provider_settings())
    provider.get_subscription("I-1")  # token cached
    with pytest.raises(AuthenticationError) as info:
        provider.get_payment(ORDER)
    assert info.value.http_status == 401
    # the SDK would recurse until RecursionError; here: the original and one resend
    assert sum(1 for call in rsps.calls if call.request.url.endswith(ORDER_PATH)) == 2


def test_401_on_a_fresh_token_is_not_resent(rsps: responses.RequestsMock) -> None:
    mock = PayPalMock(rsps, validate_bodies=False)
    mock.token()
    rsps.add(responses.GET, f"{API}{ORDER_PATH}", json={"error": "invalid_token"}, status=401)
    with pytest.raises(AuthenticationError):
        PayPalProvider(**provider_settings()).get_payment(ORDER)
    assert sum(1 for call in rsps.calls if call.request.url.endswith(ORDER_PATH)) == 1
    assert mock.token_calls == 1


def test_bad_credentials_are_an_authentication_error_without_the_secret(
    rsps: responses.RequestsMock,
) -> None:
    mock = PayPalMock(rsps, validate_bodies=False)
    mock.token(status=401)
    with pytest.raises(AuthenticationError) as info:
        PayPalProvider(**provider_settings()).get_payment(ORDER)
    assert info.value.code == "invalid_client"
    assert all(secret not in str(info.value) for secret in SECRETS)
    assert mock.token_calls == 1


# -- quirk 3: headers and bodies logged at DEBUG in sandbox mode ------------------------------


@pytest.fixture
def sdk_loggers_at_debug() -> Iterator[None]:
    """An application that turned everything up to DEBUG, the SDK's loggers included."""
    loggers = [logging.getLogger(name) for name in ("paypalrestsdk", "paypalrestsdk.api")]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield
    for logger, level in zip(loggers, before, strict=True):
        logger.setLevel(level)


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(
        f"{record.name} {record.getMessage()} {record.args!r}" for record in caplog.records
    )


@pytest.mark.usefixtures("sdk_loggers_at_debug")
def test_no_token_or_secret_in_logs_at_debug(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mock = PayPalMock(rsps, validate_bodies=False)
    mock.token()
    mock.on("GET", ORDER_PATH, order_json())
    mock.on("POST", "/v2/checkout/orders", BAD_REQUEST, status=400)
    provider = PayPalProvider(**provider_settings())
    provider.get_payment(ORDER)
    from paygate import Money

    with pytest.raises(InvalidRequest):
        provider.create_payment(
            order_id="ord_1", amount=Money.of("1", "USD"), payment_method=None,
            idempotency_key="k",
        )  # fmt: skip
    text = _logged(caplog)
    assert "/v2/checkout/orders" in text  # the capture works: paygate's own DEBUG lines
    for secret in SECRETS:
        assert secret not in text


@pytest.mark.usefixtures("sdk_loggers_at_debug")
def test_sdk_debug_records_are_dropped_even_for_direct_sdk_use(
    rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mock = PayPalMock(rsps, validate_bodies=False)
    mock.token()
    mock.on("GET", ORDER_PATH, order_json())
    sdk_logger = logging.getLogger("paypalrestsdk.api")
    guards = [f for f in sdk_logger.filters if type(f).__name__ == "_DropSdkDebug"]
    for guard in guards:  # first show the quirk: the bare SDK logs the token
        sdk_logger.removeFilter(guard)
    _raw_sdk_api().get(ORDER_PATH)
    assert ACCESS_TOKEN in _logged(caplog)
    caplog.clear()

    install_sdk_log_guard()  # what constructing a PayPalProvider does
    _raw_sdk_api().get(ORDER_PATH)
    text = _logged(caplog)
    assert "Request[GET]" in text  # INFO lines still pass
    for secret in SECRETS:
        assert secret not in text


# -- transport details -------------------------------------------------------------------------


def test_timeout_is_passed_and_get_sends_no_body(rsps: responses.RequestsMock) -> None:
    mock = PayPalMock(rsps, validate_bodies=False)
    mock.token()
    mock.on("GET", ORDER_PATH, order_json())
    PayPalProvider(**provider_settings(timeout=7.5)).get_payment(ORDER)
    get = next(call for call in rsps.calls if call.request.url.endswith(ORDER_PATH))
    assert get.request.req_kwargs["timeout"] == 7.5
    assert get.request.body is None  # the SDK alone sends the JSON text "null"


def test_base_url_override(rsps: responses.RequestsMock) -> None:
    mock = PayPalMock(rsps, base="http://127.0.0.1:8765", validate_bodies=False)
    mock.token()
    mock.on("GET", ORDER_PATH, order_json())
    provider = PayPalProvider(**provider_settings(base_url="http://127.0.0.1:8765/"))
    assert provider.get_payment(ORDER).id == ORDER


def test_adapter_imports_without_warnings() -> None:
    """``-W error`` on a fresh interpreter: the SDK and the adapter import cleanly."""
    subprocess.run(
        [sys.executable, "-W", "error", "-c", "import paygate.providers.paypal"],
        check=True,
        timeout=60,
    )
