"""One classification of HTTP failures for the three HTTP adapters (Stripe, PayPal, Square).

The rule it implements (docs/security.md, "Retries and faults"):

* **Not sent** -- no connection, connect timeout, a full pool: ``ProviderUnavailable``,
  retryable; nothing can have happened at the provider.
* **Sent, answer lost** -- reset or closed after the request went out, read timeout, a body
  cut off mid-way, a 2xx whose body is not JSON: [`OutcomeUnknown`][paygate.errors.OutcomeUnknown],
  retryable with the same idempotency key; the provider may have charged.
* **An answer that is not the provider's JSON** -- classified by its status alone: 5xx
  ``ProviderUnavailable`` and 429 ``RateLimited`` (retryable), 408 like a network failure,
  every other 4xx a non-retryable error of its status (``InvalidRequest`` for most), so a
  wrong base URL or a proxy's page is reported at once instead of retried. The body is
  never echoed into the message (a proxy page can carry anything).

Written by hand because the SDKs disagree: ``stripe`` wraps requests' exceptions in
``APIConnectionError`` (the original kept as ``__cause__``), ``paypalrestsdk`` lets
requests' own exceptions through, and ``squareup`` lets httpx's through.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from paygate._retry import retry_after
from paygate.errors import (
    AuthenticationError,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)

__all__ = [
    "header",
    "httpx_failure",
    "requests_failure",
    "retry_after_from",
    "unexpected_response",
]


def header(headers: Any, name: str) -> str | None:
    """``name`` from a headers mapping, case-insensitively (plain dicts included)."""
    if not isinstance(headers, Mapping):
        return None
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == wanted), None)
    return value if isinstance(value, str) else None


def retry_after_from(headers: Any) -> float | None:
    """The ``Retry-After`` of a response's headers, in seconds (``None``: absent/unreadable)."""
    return retry_after(header(headers, "Retry-After"))


def _causes(exc: BaseException) -> Iterator[object]:
    """``exc``, what it wraps (``__cause__``, ``__context__``, urllib3's ``reason``, the
    exception in ``args``), breadth first, each once."""
    seen: set[int] = set()
    queue: list[object] = [exc]
    while queue and len(seen) < 32:
        item = queue.pop(0)
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        if isinstance(item, BaseException):
            queue.extend(x for x in (item.__cause__, item.__context__) if x is not None)
            queue.extend(a for a in item.args if isinstance(a, BaseException))
            reason = getattr(item, "reason", None)
            if isinstance(reason, BaseException):
                queue.append(reason)


def requests_failure(provider: str, name: str, what: str, exc: BaseException) -> ProviderError:
    """The paygate error for an exception of ``requests`` (``exc`` or anything it wraps).

    ``provider`` is the adapter's name (``"stripe"``), ``name`` how messages spell it,
    ``what`` the request (``"POST /v2/checkout/orders"``). Only the exception's class name is
    kept: its text can hold the URL.
    """
    import requests
    from urllib3 import exceptions as urllib3_errors

    not_sent = (
        urllib3_errors.NewConnectionError,
        requests.exceptions.SSLError,
        requests.exceptions.ProxyError,
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidHeader,
    )
    chain = list(_causes(exc))
    kind = next((type(x).__name__ for x in chain if isinstance(x, BaseException)), "error")
    for item in chain:
        # NewConnectionError subclasses ConnectTimeoutError in urllib3: test it first. A TLS
        # or proxy failure happens while connecting, before the request is written.
        if isinstance(item, not_sent):
            return ProviderUnavailable(
                f"{name} {what} failed before it was sent: {type(item).__name__}",
                provider=provider,
                code="network_error",
            )
        if isinstance(item, requests.ConnectTimeout | urllib3_errors.ConnectTimeoutError):
            return ProviderUnavailable(
                f"{name} {what}: could not connect in time", provider=provider, code="timeout"
            )
    if any(isinstance(x, requests.Timeout | urllib3_errors.ReadTimeoutError) for x in chain):
        return OutcomeUnknown(
            f"{name} {what}: no answer in time after the request was sent; it may have been "
            "carried out (retried with the same idempotency key)",
            provider=provider,
            code="timeout",
        )
    if any(isinstance(x, requests.RequestException | OSError) for x in chain):
        return OutcomeUnknown(
            f"{name} {what}: the connection was lost after the request was sent ({kind}); it "
            "may have been carried out (retried with the same idempotency key)",
            provider=provider,
            code="connection_lost",
        )
    return ProviderUnavailable(
        f"{name} {what} failed: {kind}", provider=provider, code="network_error"
    )


def httpx_failure(provider: str, name: str, what: str, exc: BaseException) -> ProviderError:
    """The paygate error for an exception of ``httpx`` (see `requests_failure`)."""
    import httpx

    not_sent = (
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.PoolTimeout,
        httpx.UnsupportedProtocol,
        httpx.LocalProtocolError,
        httpx.ProxyError,
    )
    if isinstance(exc, not_sent):
        timeout = isinstance(exc, httpx.TimeoutException)
        return ProviderUnavailable(
            f"{name} {what} failed before it was sent: {type(exc).__name__}",
            provider=provider,
            code="timeout" if timeout else "network_error",
        )
    if isinstance(exc, httpx.TimeoutException):  # read or write timeout: sent, at least partly
        return OutcomeUnknown(
            f"{name} {what}: no answer in time after the request was sent; it may have been "
            "carried out (retried with the same idempotency key)",
            provider=provider,
            code="timeout",
        )
    if isinstance(exc, httpx.TransportError | httpx.DecodingError):
        return OutcomeUnknown(
            f"{name} {what}: the connection was lost after the request was sent "
            f"({type(exc).__name__}); it may have been carried out (retried with the same "
            "idempotency key)",
            provider=provider,
            code="connection_lost",
        )
    return ProviderUnavailable(
        f"{name} {what} failed: {type(exc).__name__}", provider=provider, code="network_error"
    )


def unexpected_response(
    provider: str,
    name: str,
    what: str,
    status: int | None,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
    not_json: bool = True,
) -> ProviderError:
    """The error for an answer whose body is not the provider's JSON (``not_json=False``:
    JSON, but not the provider's error shape), decided by its HTTP status alone."""
    body = "is not JSON" if not_json else "is not a " + name + " error"
    common: dict[str, Any] = {
        "provider": provider,
        "code": "unexpected_response",
        "http_status": status,
        "request_id": request_id,
        "retry_after": retry_after,
    }
    if status is None or 200 <= status < 300:
        answer = "answer" if status is None else f"HTTP {status} answer"
        return OutcomeUnknown(
            f"{name} {what}: the {answer} was cut off or {body}; the request may have been "
            "carried out (retried with the same idempotency key)",
            **{**common, "code": "unreadable_response"},
        )
    if status >= 500 or status == 408:
        return ProviderUnavailable(
            f"{name} {what}: HTTP {status} with a body that {body} (a proxy's or load "
            "balancer's error page?)",
            **common,
        )
    error_class: type[ProviderError] = {
        401: AuthenticationError,
        403: AuthenticationError,
        404: NotFound,
        429: RateLimited,
    }.get(status, InvalidRequest)
    hint = "" if status == 429 else "; a wrong base URL, or a proxy in the way? Not retried"
    return error_class(f"{name} {what}: HTTP {status} with a body that {body}{hint}", **common)
