"""The async adapters' own HTTP client (``paygate.providers._async_http``): aiohttp's pool
when httpx-aiohttp is installed, httpx's otherwise, ``http_transport`` to choose, a client
passed in used as given; aiohttp's failures mapped to the httpx ones they stand for.

The fault classification over real sockets, on both transports, is tests/test_async_faults.py;
here: the choice, the limits, and the failures the fault server does not make (nothing
listening, an answer that is not HTTP, each aiohttp exception class).
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from paygate import Money
from paygate.errors import (
    ConfigurationError,
    OutcomeUnknown,
    ProviderError,
    ProviderNotInstalled,
    ProviderUnavailable,
)
from paygate.providers import _async_http
from paygate.providers._http_faults import httpx_failure
from paygate.providers.paypal import AsyncPayPalProvider
from paygate.providers.square import AsyncSquareProvider
from paygate.providers.stripe import AsyncStripeProvider

aiohttp = pytest.importorskip("aiohttp")
pytest.importorskip("httpx_aiohttp")

PROVIDERS = ("stripe", "paypal", "square")
AMOUNT = Money.of("19.99", "USD")
METHOD = {"stripe": "pm_card_visa", "paypal": None, "square": "cnon:card-nonce-ok"}


def make(name: str, url: str = "http://127.0.0.1:9", **kwargs: Any) -> Any:
    if name == "stripe":
        return AsyncStripeProvider(api_key="sk_test_http", base_url=url, timeout=5.0, **kwargs)
    if name == "paypal":
        return AsyncPayPalProvider(client_id="AZhttp", client_secret="EPhttp-secret",
                                   base_url=url, timeout=5.0, **kwargs)  # fmt: skip
    return AsyncSquareProvider(access_token="sq-http-token", location_id="LHTTP",
                               base_url=url, timeout=5.0, **kwargs)  # fmt: skip


async def _closed(provider: Any) -> None:
    await provider.aclose()


# -- the choice ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
def test_aiohttp_is_the_default_when_installed(name: str) -> None:
    provider = make(name)
    assert provider.http_transport == "aiohttp"
    asyncio.run(_closed(provider))


@pytest.mark.parametrize("name", PROVIDERS)
def test_httpx_pool_without_httpx_aiohttp(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_async_http, "aiohttp_installed", lambda: False)
    provider = make(name)
    assert provider.http_transport == "httpx"
    asyncio.run(_closed(provider))
    with pytest.raises(ProviderNotInstalled, match=r"paygate-payments\[aiohttp\]"):
        make(name, http_transport="aiohttp")


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_http_transport_forces_one(name: str, transport: str) -> None:
    provider = make(name, http_transport=transport)
    assert provider.http_transport == transport
    asyncio.run(_closed(provider))


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("bad", ["curl", "AIOHTTP", "", None, 1])
def test_a_bad_http_transport_is_named(name: str, bad: object) -> None:
    with pytest.raises(ConfigurationError, match="http_transport") as caught:
        make(name, http_transport=bad)
    assert repr(bad) in str(caught.value)
    assert not isinstance(caught.value, ProviderNotInstalled)
    # a client given does not excuse it
    with pytest.raises(ConfigurationError, match="http_transport"):
        make(name, http_transport=bad, http_client=httpx.AsyncClient())


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_client_passed_in_is_used_as_given_and_left_open(name: str) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(503, text="down")

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    provider = make(name, http_client=client, http_transport="httpx")
    assert provider.http_transport == "custom"

    async def scenario() -> None:
        with pytest.raises(ProviderError):
            await provider.create_payment(order_id="o-given", amount=AMOUNT,
                                          payment_method=METHOD[name],
                                          idempotency_key="o-given:create")  # fmt: skip
        await provider.aclose()

    asyncio.run(scenario())
    assert seen  # the request went through the client given
    assert not client.is_closed


def test_connections_are_kept_alive_up_to_the_limit() -> None:
    async def limits() -> tuple[Any, Any]:
        plain = _async_http.new_async_client("httpx")
        fast = _async_http.new_async_client("aiohttp")
        pool = plain._transport._pool  # type: ignore[attr-defined]
        got = (pool._max_connections, pool._max_keepalive_connections), fast._transport.limits  # type: ignore[attr-defined]
        await plain.aclose()
        await fast.aclose()
        return got

    (most, kept), fast = asyncio.run(limits())
    assert most == kept == _async_http.MAX_CONNECTIONS
    assert fast.max_connections == fast.max_keepalive_connections == _async_http.MAX_CONNECTIONS


# -- aiohttp's failures ---------------------------------------------------------------------------


def _request() -> httpx.Request:
    return httpx.Request("POST", "http://127.0.0.1/v1/payment_intents")


def _connection_key() -> Any:
    from aiohttp.client_reqrep import ConnectionKey

    return ConnectionKey("127.0.0.1", 9, False, True, None, None, None)


def _cases() -> list[tuple[BaseException, type[httpx.TransportError]]]:
    from aiohttp import client_exceptions as errors

    key = _connection_key()
    return [
        (
            aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused")),
            httpx.ConnectError,
        ),
        (errors.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
        (errors.SocketTimeoutError("read"), httpx.ReadTimeout),
        (aiohttp.ServerTimeoutError("read"), httpx.ReadTimeout),
        (asyncio.TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.ReadError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (aiohttp.ClientPayloadError("cut"), httpx.RemoteProtocolError),
        (
            aiohttp.ClientResponseError(None, (), status=400, message="bad status line"),
            httpx.RemoteProtocolError,
        ),
        (aiohttp.ClientProxyConnectionError(key, OSError("proxy")), httpx.ProxyError),
    ]


@pytest.mark.parametrize("case", range(10))
def test_each_aiohttp_failure_maps_to_its_httpx_twin(case: int) -> None:
    raw, expected = _cases()[case]
    mapped = _async_http._map_aiohttp_error(raw, _request())
    assert type(mapped) is expected
    # the same through httpx-aiohttp's own (coarser) mapping: aiohttp's error as the cause
    from httpx_aiohttp.transport import map_aiohttp_exceptions

    try:
        with map_aiohttp_exceptions():
            raise raw
    except Exception as wrapped:
        assert type(_async_http._map_aiohttp_error(wrapped, _request())) is expected


def test_a_connection_lost_after_sending_is_outcome_unknown_not_unsent() -> None:
    """httpx-aiohttp reports a server that closed the connection as ``ConnectTimeout``
    ("never sent": retried as safe); it may have charged."""
    from httpx_aiohttp.transport import map_aiohttp_exceptions

    try:
        with map_aiohttp_exceptions():
            raise aiohttp.ServerDisconnectedError()
    except httpx.ConnectTimeout as theirs:
        ours = _async_http._map_aiohttp_error(theirs, _request())
    error = httpx_failure("stripe", "Stripe", "create_payment", ours)
    assert isinstance(error, OutcomeUnknown)
    assert error.code == "connection_lost"


# -- over real sockets: what the fault server does not do -----------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Garbage(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.recv(65536)
        self.request.sendall(b"NOT HTTP AT ALL\r\n\r\n")


@pytest.fixture(scope="module")
def garbage_url() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Garbage)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _outcome(provider: Any, name: str) -> tuple[Any, ...]:
    async def scenario() -> tuple[Any, ...]:
        try:
            await provider.create_payment(order_id="o-sock", amount=AMOUNT,
                                          payment_method=METHOD[name],
                                          idempotency_key="o-sock:create")  # fmt: skip
        except ProviderError as exc:
            return type(exc), exc.code, exc.http_status, exc.retryable
        finally:
            await provider.aclose()
        return ("ok",)

    return asyncio.run(scenario())


@pytest.mark.parametrize("name", PROVIDERS)
def test_nothing_listening_is_classified_alike_on_both_transports(name: str) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    outcomes = {t: _outcome(make(name, url, http_transport=t), name) for t in ("httpx", "aiohttp")}
    assert outcomes["aiohttp"] == outcomes["httpx"]
    assert outcomes["httpx"][:2] == (ProviderUnavailable, "network_error")  # never sent


@pytest.mark.parametrize("name", PROVIDERS)
def test_an_answer_that_is_not_http_is_classified_alike(name: str, garbage_url: str) -> None:
    outcomes = {
        t: _outcome(make(name, garbage_url, http_transport=t), name) for t in ("httpx", "aiohttp")
    }
    assert outcomes["aiohttp"] == outcomes["httpx"]
    assert outcomes["httpx"][:2] == (OutcomeUnknown, "connection_lost")  # sent, answer lost


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
def test_connect_async_passes_http_transport_to_the_twin(transport: str) -> None:
    import paygate

    agw = paygate.connect_async("stripe", "memory://", api_key="sk_test_http",
                                http_transport=transport)  # type: ignore[call-overload]  # fmt: skip
    assert agw.provider.http_transport == transport
    asyncio.run(agw.aclose())
    with pytest.raises(ConfigurationError, match="'curl'"):
        paygate.connect_async("stripe", "memory://", api_key="sk_test_http",
                              http_transport="curl")  # type: ignore[call-overload]  # fmt: skip


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_aiohttp_client_survives_a_second_event_loop() -> None:
    """aiohttp's session is bound to the loop of its first request: a provider used again
    from another loop (a second ``asyncio.run``) gets a session of its own there, instead
    of failing on the first loop's pooled connections for good. (The first loop's
    connections cannot be closed from the second: they are left to the collector, here
    inside the test so that their warnings are this test's.)"""
    import gc

    from tests.latency_server import LatencyServer

    with LatencyServer(0.0) as url:
        provider = make("stripe", url.rstrip("/"), http_transport="aiohttp")

        async def charge(n: int, *, close: bool = False) -> str:
            payment = await provider.create_payment(
                order_id=f"o-loop-{n}", amount=AMOUNT, payment_method="pm_card_visa",
                idempotency_key=f"o-loop-{n}:create",
            )  # fmt: skip
            if close:
                await provider.aclose()
            return str(payment.id)

        ids = [asyncio.run(charge(n, close=n == 2)) for n in range(3)]
    gc.collect()
    assert len(set(ids)) == 3
