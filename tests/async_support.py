"""Run the sync adapters' HTTP-mocked tests against their async twins.

``responses_transport()`` is an ``httpx.MockTransport`` that hands each request to
``requests`` (so whatever ``responses`` mock is active answers it, with its matchers, its
call log and the reference-spec checks the tests attach) and turns the answer, or the
failure, back into httpx's terms. With :func:`paygate.testing.aio.blocking`, a test module
written for a ``requests``-based adapter drives the httpx-based async adapter unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import requests
from urllib3 import exceptions as urllib3_errors

from paygate.provider import PaymentProvider
from paygate.testing.aio import blocking


def _as_httpx_error(exc: requests.RequestException, request: httpx.Request) -> Exception:
    """The httpx exception for the same failure (sent or not sent, timeout or reset)."""
    chain: list[BaseException] = []
    item: BaseException | None = exc
    while item is not None and len(chain) < 16:
        chain.append(item)
        reason = getattr(item, "reason", None)
        nested = [a for a in item.args if isinstance(a, BaseException)]
        item = reason if isinstance(reason, BaseException) else (nested[0] if nested else None)
        item = item or item
    if any(isinstance(x, requests.ConnectTimeout) for x in chain):
        return httpx.ConnectTimeout("connect timeout", request=request)
    if any(isinstance(x, urllib3_errors.NewConnectionError) for x in chain):
        return httpx.ConnectError("connection refused", request=request)
    if any(isinstance(x, requests.Timeout | urllib3_errors.ReadTimeoutError) for x in chain):
        return httpx.ReadTimeout("read timeout", request=request)
    if isinstance(exc, requests.ConnectionError):
        return httpx.RemoteProtocolError("connection lost", request=request)
    return exc


def _forward(request: httpx.Request) -> httpx.Response:
    with requests.Session() as session:
        try:
            answer = session.request(
                request.method,
                str(request.url),
                # as sent (httpx's mapping view lowercases names; tests read them as written)
                headers={k.decode(): v.decode() for k, v in request.headers.raw},
                data=request.content or None,
                timeout=10,
            )
        except requests.RequestException as exc:
            raise _as_httpx_error(exc, request) from exc
        headers = {
            k: v
            for k, v in answer.headers.items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        }
        return httpx.Response(answer.status_code, headers=headers, content=answer.content)


def responses_transport() -> httpx.MockTransport:
    return httpx.MockTransport(_forward)


def responses_client() -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` answered by the active ``responses`` mock."""
    return httpx.AsyncClient(transport=responses_transport())


@contextmanager
def blocking_on_responses(make: Callable[[httpx.AsyncClient], Any]) -> Iterator[PaymentProvider]:
    """``blocking(make(client))`` with ``client`` answered by ``responses``; on exit the
    adapter's ``aclose()``, then the client's (an adapter leaves a caller's client open)."""
    client = responses_client()
    facade = blocking(make(client))
    try:
        yield facade
    finally:
        facade.run(client.aclose())  # type: ignore[attr-defined]
        facade.close()  # type: ignore[attr-defined]
