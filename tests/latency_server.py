"""A local HTTP server answering every request after a fixed delay, and a provider that
pays one round trip to it per call: the load of a real provider, on 127.0.0.1.

The server runs in its own process (``LatencyServer``), so its work never competes with
the measured process for the GIL: the AsyncGateway loop-lag test and
``bench/bench_async.py`` use it. ``LatencyProvider`` (sync, ``httpx.Client``) and
``AsyncLatencyProvider`` (``httpx.AsyncClient``) wrap the fake provider: each protocol
call first sends one request to the server, then returns the fake's answer, so the
gateway sees a provider with the server's latency and the fake's behaviour.

``client`` picks the async face's HTTP client (the sync face's is ``httpx.Client``, or
the plain one): ``"plain"``, a minimal HTTP/1.1 client (``http.client`` per thread,
asyncio streams with a keep-alive pool), measures the gateway's own concurrency;
``"httpx"`` is a bare ``httpx.AsyncClient`` (1000 connections, httpx's default 20 kept
alive): httpcore's async pool re-examines every connection for every queued request, which
at hundreds of requests in flight costs more CPU than the gateway itself;
``"httpx-paygate"`` and ``"aiohttp"`` are the clients the real async adapters make
(``paygate.providers._async_http.new_async_client``: httpx's pool with 100 connections
all kept alive, aiohttp's pool).

The server answers ``POST /v1/payment_intents`` as Stripe would (a succeeded
PaymentIntent for the form's amount, currency and order; the same answer for a repeated
``Idempotency-Key``), so the real ``StripeProvider`` / ``AsyncStripeProvider`` can run
against it (``base_url``); any other request gets ``{"ok":true}``.

    python tests/latency_server.py --delay 0.05   # prints its port, serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import http.client
import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from paygate.providers._async_http import new_async_client
from paygate.providers.fake import AsyncFakeProvider, FakeProvider

#: the async face's HTTP clients (see the module)
CLIENTS = ("plain", "httpx", "httpx-paygate", "aiohttp")

_ANSWER = b'{"ok":true}'
_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(_ANSWER)).encode()
    + b"\r\n\r\n"
    + _ANSWER
)


def _stripe_answer(
    body: bytes, key: str | None, intents: dict[str, bytes], ids: itertools.count[int]
) -> bytes:
    """A succeeded PaymentIntent for the form ``body`` (the first one again for ``key``)."""
    if key is not None and key in intents:
        return intents[key]
    form = dict(parse_qsl(body.decode()))
    amount = int(form.get("amount", "0"))
    payload = json.dumps({
        "id": f"pi_lat{next(ids)}", "object": "payment_intent", "amount": amount,
        "amount_received": amount, "currency": form.get("currency", "usd"),
        "status": "succeeded", "capture_method": "automatic", "created": 1_790_000_000,
        "metadata": {"order_id": form.get("metadata[order_id]", "")}, "livemode": False,
    }).encode()  # fmt: skip
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nrequest-id: req_lat\r\n"
        b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )
    if key is not None:
        intents[key] = answer
    return answer


async def _serve(delay: float) -> None:
    intents: dict[str, bytes] = {}
    ids = itertools.count(1)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # keep-alive: one request after another on the connection
                head = await reader.readuntil(b"\r\n\r\n")
                length, key = 0, None
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                    elif name.strip().lower() == b"idempotency-key":
                        key = value.strip().decode()
                body = await reader.readexactly(length) if length else b""
                await asyncio.sleep(delay)
                if head.startswith(b"POST /v1/payment_intents "):
                    writer.write(_stripe_answer(body, key, intents, ids))
                else:
                    writer.write(_RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=2048)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


class LatencyServer:
    """``with LatencyServer(0.05) as url:`` a server in a subprocess, killed at exit."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> str:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--delay", str(self.delay)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self._process.stdout is not None
        port = int(self._process.stdout.readline())
        return f"http://127.0.0.1:{port}/"

    @property
    def pid(self) -> int | None:
        """The server's process id (``None`` before it starts)."""
        return None if self._process is None else self._process.pid

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        self._process.kill()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


_REQUEST = b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 2\r\n\r\n{}"


class _PlainClient:
    """One keep-alive ``http.client`` connection per thread."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.local = threading.local()
        self.opened: list[http.client.HTTPConnection] = []

    def post(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port)
            self.opened.append(conn)
        conn.request("POST", "/", body=b"{}")
        response = conn.getresponse()
        response.read()
        assert response.status == 200

    def close(self) -> None:
        for conn in self.opened:
            conn.close()


class _PlainAsyncClient:
    """Keep-alive connections over asyncio streams, reused from an idle pool."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.idle: collections.deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            collections.deque()
        )
        self.opened: list[asyncio.StreamWriter] = []

    async def post(self) -> None:
        if self.idle:
            reader, writer = self.idle.popleft()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.opened.append(writer)
        writer.write(_REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        self.idle.append((reader, writer))

    async def aclose(self) -> None:
        for writer in self.opened:
            writer.close()
        for writer in self.opened:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class LatencyProvider(FakeProvider):
    """The fake provider, one blocking round trip to ``url`` before each call
    (``client``: one of `CLIENTS`, see the module)."""

    def __init__(self, url: str, *, client: str = "httpx", **settings: Any) -> None:
        if client not in CLIENTS:
            raise ValueError(f"client must be one of {CLIENTS}, got {client!r}")
        super().__init__(**settings)
        self.url = url
        self.client = client
        self.http = httpx.Client(limits=httpx.Limits(max_connections=1000), timeout=_TIMEOUT)
        self.plain = _PlainClient(url)

    def _round_trip(self) -> None:
        if self.client == "plain":
            self.plain.post()
        else:
            self.http.post(self.url, content=b"{}").raise_for_status()

    def create_payment(self, *args: Any, **kwargs: Any) -> Any:
        self._round_trip()
        return super().create_payment(*args, **kwargs)

    def get_payment(self, *args: Any, **kwargs: Any) -> Any:
        self._round_trip()
        return super().get_payment(*args, **kwargs)

    def aio(self) -> AsyncLatencyProvider:
        return AsyncLatencyProvider(self)

    def close(self) -> None:
        self.http.close()
        self.plain.close()
        super().close()


#: a loaded machine queues requests for seconds: a slow run, not a failed one
_TIMEOUT = 60.0


def _async_client(client: str) -> httpx.AsyncClient:
    if client == "httpx-paygate":
        return new_async_client("httpx", timeout=_TIMEOUT)
    if client == "aiohttp":
        return new_async_client("aiohttp", timeout=_TIMEOUT)
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=1000), timeout=_TIMEOUT)


class AsyncLatencyProvider(AsyncFakeProvider):
    """The async fake on ``engine``'s state, one awaited round trip before each call."""

    def __init__(self, engine: LatencyProvider) -> None:
        super().__init__(engine=engine)
        self.url = engine.url
        self.client = engine.client
        self.http = _async_client(engine.client)
        self.plain = _PlainAsyncClient(engine.url)

    async def _round_trip(self) -> None:
        if self.client == "plain":
            await self.plain.post()
        else:
            (await self.http.post(self.url, content=b"{}")).raise_for_status()

    async def create_payment(self, *args: Any, **kwargs: Any) -> Any:
        await self._round_trip()
        # the engine's own method, not LatencyProvider's (which would block on HTTP)
        return FakeProvider.create_payment(self.engine, *args, **kwargs)

    async def get_payment(self, *args: Any, **kwargs: Any) -> Any:
        await self._round_trip()
        return FakeProvider.get_payment(self.engine, *args, **kwargs)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.plain.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.05)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args().delay))
