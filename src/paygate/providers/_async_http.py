"""The async adapters' default HTTP client: an ``httpx.AsyncClient`` on aiohttp's
connection pool when ``httpx-aiohttp`` is installed (``paygate-payments[aiohttp]``), else on
httpx's own pool.

Why: httpcore's async pool (httpx's default transport) re-examines its connections on
every request's start and end, polling each one's socket (``has_expired``) and counting
idle ones once per connection (quadratic), so with a hundred requests in flight it spends
more CPU than the gateway itself: 150 to 250 socket polls and thousands of ``is_idle``
calls per request, 2.5 to 7.5 ms of CPU (encode/httpx#3215, encode/httpcore#1035;
bench/bench_async.py). aiohttp's pool costs about 0.7 ms. httpcore also closes *every*
idle connection while more connections are open than ``max_keepalive_connections`` (20
by default), so a burst churns connections (101 opened for 500 requests), each a new TLS
handshake against a real provider.

* ``"aiohttp"``: ``httpx_aiohttp.AiohttpTransport`` (aiohttp's pool, no per-request scan),
  with aiohttp's exceptions mapped to httpx's by `_map_aiohttp_error` rather than by
  httpx-aiohttp's own table, which reports a read timeout that is not a socket one, a
  reset or a server that closed the connection after the request went out as
  ``httpx.ConnectTimeout`` ("never sent": wrong, the provider may have charged), a refused
  connection as a timeout, and lets a malformed answer through as aiohttp's own exception.
* ``"httpx"``: httpx's pool with ``max_keepalive_connections == max_connections`` (100),
  so a burst reuses its connections (22 opened for 500 requests). An ``asyncio.Semaphore``
  keeping httpcore's queue empty was measured and left out: the scan's cost follows the
  connections, not the queue (as many socket polls per request with it as without).
* ``"auto"`` (the default): ``"aiohttp"`` when importable, else ``"httpx"``.

A client the caller passes (``http_client=``) is always used as given.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ssl
from collections.abc import AsyncIterator
from typing import Any, Final, Literal

import httpx

from paygate.errors import ConfigurationError, ProviderNotInstalled

__all__ = [
    "HTTP_TRANSPORTS",
    "MAX_CONNECTIONS",
    "HttpTransport",
    "aiohttp_installed",
    "check_http_transport",
    "new_async_client",
    "resolve_http_transport",
    "transport_name",
]

HttpTransport = Literal["auto", "aiohttp", "httpx"]
#: the values ``http_transport`` accepts
HTTP_TRANSPORTS: Final = ("auto", "aiohttp", "httpx")
#: connections to one provider at once; as many kept alive, so a burst reuses them
MAX_CONNECTIONS: Final = 100


def aiohttp_installed() -> bool:
    """Whether ``httpx-aiohttp`` (and so aiohttp) can be imported."""
    return importlib.util.find_spec("httpx_aiohttp") is not None


def check_http_transport(value: object) -> HttpTransport:
    """``value`` if it is one of `HTTP_TRANSPORTS`.

    Raises:
        ConfigurationError: any other value, named in the message.
    """
    if value == "auto":
        return "auto"
    if value == "aiohttp":
        return "aiohttp"
    if value == "httpx":
        return "httpx"
    raise ConfigurationError(
        f"http_transport must be one of {', '.join(map(repr, HTTP_TRANSPORTS))}, got {value!r}"
    )


def resolve_http_transport(value: object) -> Literal["aiohttp", "httpx"]:
    """The transport ``value`` (see `check_http_transport`) stands for on this install.

    Raises:
        ConfigurationError: ``value`` is not one of `HTTP_TRANSPORTS`.
        ProviderNotInstalled: ``"aiohttp"`` without ``httpx-aiohttp`` installed.
    """
    chosen = check_http_transport(value)
    if chosen == "httpx":
        return "httpx"
    if aiohttp_installed():
        return "aiohttp"
    if chosen == "aiohttp":
        raise ProviderNotInstalled(
            "http_transport='aiohttp' needs httpx-aiohttp: "
            "pip install 'paygate-payments[aiohttp]' (or http_transport='httpx')"
        )
    return "httpx"


def new_async_client(
    transport: object = "auto",
    *,
    timeout: float | httpx.Timeout | None = None,
    verify: ssl.SSLContext | bool = True,
    max_connections: int = MAX_CONNECTIONS,
    **client_kwargs: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on the transport ``transport`` names (see the module).

    Args:
        transport: ``"auto"``, ``"aiohttp"`` or ``"httpx"``.
        timeout: the client's default timeout (``None``: httpx's default).
        verify: TLS verification, as httpx takes it.
        max_connections: connections at once (and kept alive).
        **client_kwargs: more ``httpx.AsyncClient`` arguments (``follow_redirects``).

    Raises:
        ConfigurationError: an unknown ``transport``.
        ProviderNotInstalled: ``"aiohttp"`` without ``httpx-aiohttp``.
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    if timeout is not None:
        client_kwargs["timeout"] = timeout
    inner: httpx.AsyncBaseTransport
    if resolve_http_transport(transport) == "aiohttp":
        inner = _aiohttp_transport(verify, limits)
    else:
        inner = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    return httpx.AsyncClient(transport=inner, **client_kwargs)


def transport_name(client: httpx.AsyncClient) -> str:
    """``"aiohttp"``, ``"httpx"`` or ``"custom"``: what a client made here runs on."""
    transport = client._transport  # httpx keeps no public accessor
    if type(transport).__name__ == "_PaygateAiohttpTransport":
        return "aiohttp"
    if isinstance(transport, httpx.AsyncHTTPTransport):
        return "httpx"
    return "custom"


# -- aiohttp's pool -------------------------------------------------------------------------------


def _aiohttp_transport(verify: ssl.SSLContext | bool, limits: httpx.Limits) -> Any:
    import aiohttp
    import httpx_aiohttp

    class _PaygateAiohttpTransport(httpx_aiohttp.AiohttpTransport):
        """httpx-aiohttp's transport, aiohttp's failures as the httpx ones they are, and a
        session per event loop: aiohttp's session (made on the first request) is bound to
        the loop it ran on, and a provider used again from another loop (a second
        ``asyncio.run``) would fail every request on its pooled connections for good."""

        _loop: asyncio.AbstractEventLoop | None = None

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            loop = asyncio.get_running_loop()
            if self._loop is not loop:
                stale, self._loop = self.client, loop
                if isinstance(stale, aiohttp.ClientSession):
                    # its loop is gone or elsewhere: it cannot be closed from here
                    stale.detach()
                    self.client = None
            try:
                response = await super().handle_async_request(request)
            except (httpx.TransportError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
                raise _map_aiohttp_error(exc, request) from _origin(exc)
            return httpx.Response(
                status_code=response.status_code,
                headers=response.headers,
                stream=_MappedStream(response.stream, request),
                extensions=response.extensions,
            )

    return _PaygateAiohttpTransport(verify=verify, limits=limits)


class _MappedStream(httpx.AsyncByteStream):
    """A body read over aiohttp, its failures mapped as the request's are."""

    def __init__(self, stream: Any, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        import aiohttp

        try:
            async for chunk in self._stream:
                yield chunk
        except (httpx.TransportError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _map_aiohttp_error(exc, self._request, reading=True) from _origin(exc)

    async def aclose(self) -> None:
        import aiohttp

        try:
            await self._stream.aclose()
        except (httpx.TransportError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise _map_aiohttp_error(exc, self._request, reading=True) from _origin(exc)


def _origin(exc: BaseException) -> BaseException:
    """aiohttp's exception behind httpx-aiohttp's mapped one (``exc`` when unmapped)."""
    cause = exc.__cause__
    return cause if isinstance(exc, httpx.TransportError) and cause is not None else exc


def _map_aiohttp_error(
    exc: BaseException, request: httpx.Request, *, reading: bool = False
) -> httpx.TransportError:
    """The httpx exception httpx's own transport raises for the failure ``exc`` stands for.

    "Not sent" (``ConnectError``, ``ConnectTimeout``, ``ProxyError``,
    ``UnsupportedProtocol``) only for what aiohttp raises while connecting; every failure
    after the request went out is a ``ReadTimeout``, ``ReadError`` or
    ``RemoteProtocolError`` (the provider may have acted). ``reading``: the failure came
    while reading the body, after the answer began.
    """
    import aiohttp
    from aiohttp import client_exceptions as errors

    origin = _origin(exc)
    name = type(origin).__name__
    mapped: type[httpx.TransportError]
    if isinstance(origin, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        mapped = httpx.ProxyError
    elif isinstance(origin, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake
        mapped = httpx.ConnectError
    elif isinstance(origin, errors.ConnectionTimeoutError) and not reading:
        mapped = httpx.ConnectTimeout  # connecting, or waiting for a free connection
    elif isinstance(origin, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        mapped = httpx.ReadTimeout
    elif isinstance(origin, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        mapped = httpx.RemoteProtocolError  # a body cut off, an answer that is not HTTP
    elif isinstance(origin, errors.InvalidURL):
        mapped = httpx.UnsupportedProtocol
    elif isinstance(exc, httpx.TransportError) and origin is exc:
        return exc  # httpx's own
    else:  # reset, closed by the server, any other lost connection after sending
        mapped = httpx.ReadError
    return mapped(f"{name} (aiohttp)", request=request)
