"""HTTP transport for the PayPal adapter, over ``paypalrestsdk.Api``.

``paypalrestsdk`` is used only for what it does well: the OAuth client-credentials token
(fetched, cached, expired) and the mode → endpoint map. Its resource classes speak the
deprecated v1 Payments API, so the adapter calls the current REST paths through
``Api.get/post/patch``. Three quirks of ``Api`` are neutralized here, each with a test in
``tests/test_paypal_http.py``:

1. ``Api.request`` turns a 400 into a *returned* ``{"error": ...}`` dict instead of raising,
   so a refused request would read like a success. `_PayGateApi.request` lets the
   ``BadRequest`` propagate and it is translated into ``InvalidRequest``.
2. ``Api.request`` re-sends the request after any 401 with a fresh token, recursively, with
   no bound (a revoked credential recurses until ``RecursionError``). Here a 401 re-sends
   once, and only when the token was a cached one (it may have been revoked early); a 401
   on a freshly fetched token is an ``AuthenticationError`` at once.
3. ``Api.http_call`` logs request headers (``Authorization: Bearer …`` and, for the token
   call, ``Basic base64(client_id:client_secret)``) and response bodies (the access token)
   at DEBUG whenever the mode is not ``live``. `_PayGateApi.http_call` replaces it and
   logs only method, path, status and PayPal's debug id; `install_sdk_log_guard` also
   drops the SDK logger's DEBUG records, should anything else in the process call the SDK.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

import paypalrestsdk
import requests
from paypalrestsdk import exceptions as sdk_errors

from paygate._observe import fields
from paygate._retry import attempt_timeout
from paygate.errors import ProviderError
from paygate.providers._http_faults import requests_failure, retry_after_from, unexpected_response

__all__ = [
    "ErrorTranslator",
    "PayPalTransport",
    "error_answer",
    "install_sdk_log_guard",
]

log = logging.getLogger("paygate.providers.paypal")

#: (http_status, parsed error body or None, PayPal-Debug-Id or None) -> the error to raise
ErrorTranslator = Callable[[int, Mapping[str, Any] | None, str | None], ProviderError]

_SDK_LOGGER = "paypalrestsdk.api"


class _DropSdkDebug(logging.Filter):
    """Drops the SDK's DEBUG records: in sandbox mode they carry headers and bodies."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_GUARD = _DropSdkDebug()


def install_sdk_log_guard() -> None:
    """Attach the filter to ``paypalrestsdk.api`` once (a logger filter, so it holds whatever
    level the application configures, and whichever handlers it attaches)."""
    sdk_logger = logging.getLogger(_SDK_LOGGER)
    if _GUARD not in sdk_logger.filters:
        sdk_logger.addFilter(_GUARD)


def error_answer(
    status: int, headers: Mapping[str, str], content: Any, what: str, translate: ErrorTranslator
) -> ProviderError:
    """The paygate error for a PayPal answer that is not a success (both transports)."""
    debug_id = headers.get("PayPal-Debug-Id")
    try:
        parsed = json.loads(content) if content else None
    except (TypeError, ValueError):
        parsed = None
    wait = retry_after_from(headers)
    if not isinstance(parsed, dict):
        # not PayPal's JSON (a wrong base_url, a proxy's page): the status alone decides,
        # and no 4xx but 429 is retried
        return unexpected_response(
            "paypal", "PayPal", what, status or None, request_id=debug_id, retry_after=wait,
            not_json=parsed is None,
        )  # fmt: skip
    error = translate(status, parsed, debug_id)
    error.retry_after = wait
    return error


class _PayGateApi(paypalrestsdk.Api):  # type: ignore[misc]  # untyped SDK base class
    """``paypalrestsdk.Api`` with the three quirks above removed and a request timeout."""

    def __init__(self, *, timeout: float, **options: Any) -> None:
        super().__init__(**options)
        self.timeout = timeout
        self._token_lock = threading.Lock()

    def headers(self, refresh_token: Any = None, headers: Any = None) -> dict[str, str]:
        # one token fetch at a time: threads sharing a provider would otherwise all fetch
        with self._token_lock:
            result: dict[str, str] = super().headers(refresh_token=refresh_token, headers=headers)
        return result

    def http_call(self, url: str, method: str, **kwargs: Any) -> Any:
        # Replaces the SDK's http_call, which logs headers and bodies in sandbox mode.
        try:
            response = requests.request(
                method,
                url,
                proxies=self.proxies,
                # cut to the time left in the Gateway's retry budget, when one is running
                timeout=attempt_timeout(self.timeout),
                **kwargs,
            )
        except requests.RequestException as exc:
            # never sent (ProviderUnavailable) or sent and the answer lost (OutcomeUnknown);
            # the exception's text can hold the URL, never headers: only its class is kept
            raise requests_failure(
                "paypal", "PayPal", f"{method} {urlsplit(url).path}", exc
            ) from None
        log.debug(
            "PayPal %s %s -> %s (debug id %s)",
            method,
            urlsplit(url).path,
            response.status_code,
            response.headers.get("PayPal-Debug-Id", "-"),
            extra=fields(provider="paypal", outcome=str(response.status_code)),
        )
        return self.handle_response(response, response.content.decode("utf-8", "replace"))

    def request(
        self,
        url: str,
        method: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        refresh_token: Any = None,
    ) -> Any:
        extra = dict(headers or {})
        # the SDK sends the JSON text "null" as a GET body; send no body at all instead
        data = None if body is None else json.dumps(body)
        token_was_cached = getattr(self, "token_hash", None) is not None
        try:
            return self.http_call(url, method, data=data, headers={**self.headers(), **extra})
        except sdk_errors.UnauthorizedAccess:
            if not token_was_cached:
                raise
            # A cached token can be revoked before its expiry: fetch a new one, send once more.
            self.token_hash = None
            return self.http_call(url, method, data=data, headers={**self.headers(), **extra})


class PayPalTransport:
    """JSON over HTTPS to PayPal's REST API; every failure becomes a paygate error."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        mode: str,
        base_url: str | None,
        timeout: float,
        translate_error: ErrorTranslator,
    ) -> None:
        install_sdk_log_guard()
        options: dict[str, Any] = {
            "mode": mode,
            "client_id": client_id,
            "client_secret": client_secret,
        }
        if base_url:
            options["endpoint"] = base_url.rstrip("/")
        self._api = _PayGateApi(timeout=timeout, **options)
        self._translate = translate_error

    @property
    def endpoint(self) -> str:
        endpoint: str = self._api.endpoint
        return endpoint

    def get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path, None, None)

    def post(
        self, path: str, body: Mapping[str, Any] | None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """POST ``body`` as JSON; ``None`` sends no body at all (PayPal's void takes none,
        and ``Api.post`` would turn ``None`` into ``{}``)."""
        return self.request("POST", path, body, request_id)

    def patch(self, path: str, body: Any) -> dict[str, Any]:
        return self.request("PATCH", path, body, None)

    def delete(self, path: str) -> dict[str, Any]:
        """DELETE ``path``; PayPal answers 204 with no body (``{}`` here)."""
        return self.request("DELETE", path, None, None)

    def request(self, method: str, path: str, body: Any, request_id: str | None) -> dict[str, Any]:
        headers = {"Prefer": "return=representation"}
        if request_id is not None:
            headers["PayPal-Request-Id"] = request_id
        try:
            if method == "GET":
                result = self._api.get(path, headers)
            elif method == "POST" and body is None:
                url = paypalrestsdk.util.join_url(self._api.endpoint, path)
                result = self._api.request(url, "POST", body=None, headers=headers)
            elif method == "POST":
                result = self._api.post(path, body, headers)
            elif method == "DELETE":
                result = self._api.delete(path, headers)
            else:
                result = self._api.patch(path, body, headers)
        except sdk_errors.ConnectionError as exc:
            self._raise_translated(exc, f"{method} {path}")
        except ValueError:
            # a 2xx whose body is cut off or not JSON: PayPal may have carried the request out
            raise unexpected_response("paypal", "PayPal", f"{method} {path}", None) from None
        return result if isinstance(result, dict) else {}

    def _raise_translated(self, exc: sdk_errors.ConnectionError, what: str) -> NoReturn:
        response = exc.response
        status = int(getattr(response, "status_code", 0) or 0)
        response_headers = getattr(response, "headers", None) or {}
        error = error_answer(status, response_headers, exc.content, what, self._translate)
        raise error from None

    def post_files(
        self,
        path: str,
        parts: Sequence[tuple[str, tuple[str | None, bytes, str]]],
    ) -> dict[str, Any]:
        """POST ``multipart/form-data`` (PayPal's dispute evidence): ``parts`` are
        ``(field, (filename, content, content type))``; ``requests`` writes the boundary,
        so the JSON ``Content-Type`` of the other calls is left out."""
        url = paypalrestsdk.util.join_url(self._api.endpoint, path)
        what = f"POST {path}"
        try:
            headers = {k: v for k, v in self._api.headers().items() if k.lower() != "content-type"}
            result = self._api.http_call(url, "POST", files=list(parts), headers=headers)
        except sdk_errors.ConnectionError as exc:
            self._raise_translated(exc, what)
        except ValueError:
            raise unexpected_response("paypal", "PayPal", what, None) from None
        return result if isinstance(result, dict) else {}
