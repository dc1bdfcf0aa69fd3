"""The PayPal adapter's async transport: PayPal's REST API over ``httpx.AsyncClient``.

Apart from `._paypal_http` so that the sync adapter never imports httpx; the error
classification (`._paypal_http.error_answer`) and the log line are shared.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from paygate._observe import fields
from paygate._retry import attempt_timeout
from paygate.errors import InvalidSignature
from paygate.providers._async_http import new_async_client, transport_name
from paygate.providers._http_faults import httpx_failure, unexpected_response
from paygate.providers._paypal_http import ErrorTranslator, error_answer, log
from paygate.providers._paypal_verify import _MAX_CERT_BYTES
from paygate.providers._warm import HTTPX_ASYNC, warm_imports

__all__ = ["AsyncPayPalTransport"]


class AsyncPayPalTransport:
    """`PayPalTransport` over ``httpx.AsyncClient``, for ``AsyncPayPalProvider``.

    paypalrestsdk has no async client, so the part of ``Api`` paygate uses is written here
    (about 80 lines): the client-credentials token (``POST /v1/oauth2/token``, cached until
    ``expires_in`` runs out, one fetch at a time), the same headers, ``PayPal-Request-Id``
    and ``Prefer: return=representation``, and the same answers to the quirks above: a 400
    is an error, a 401 re-sends once and only with a cached token, no header or body is
    logged. Failures are classified by the shared `error_answer` and
    `paygate.providers._http_faults.httpx_failure`.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        base_url: str,
        timeout: float,
        translate_error: ErrorTranslator,
        http_client: httpx.AsyncClient | None = None,
        http_transport: str = "auto",
    ) -> None:
        self.endpoint = base_url.rstrip("/")
        self._credentials = (client_id, client_secret)
        self._timeout = timeout
        self._translate = translate_error
        self._owns_client = http_client is None
        self._client = http_client or new_async_client(http_transport, follow_redirects=False)
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()
        warm_imports(HTTPX_ASYNC)

    def __repr__(self) -> str:
        return f"AsyncPayPalTransport(endpoint={self.endpoint!r})"

    @property
    def http_transport(self) -> str:
        """``"aiohttp"`` or ``"httpx"`` (a client made here), ``"custom"`` (one passed in)."""
        return transport_name(self._client) if self._owns_client else "custom"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def fetch_certificate(self, url: str) -> bytes:
        """As `._paypal_verify.fetch_certificate`: GET over https without redirects,
        at most ``_MAX_CERT_BYTES`` read (the caller has checked ``url`` is PayPal's)."""
        async with self._client.stream(
            "GET", url, follow_redirects=False, timeout=attempt_timeout(self._timeout)
        ) as response:
            if response.status_code != 200:
                raise InvalidSignature(
                    f"could not fetch the PayPal certificate at {url}: HTTP {response.status_code}"
                )
            pem = b""
            async for chunk in response.aiter_bytes():
                pem += chunk
                if len(pem) > _MAX_CERT_BYTES:  # a certificate chain is a few kB
                    raise InvalidSignature(f"the answer at {url} is too large to be a certificate")
        return pem

    async def get(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path, None, None)

    async def post(
        self, path: str, body: Mapping[str, Any] | None, *, request_id: str | None = None
    ) -> dict[str, Any]:
        """POST ``body`` as JSON; ``None`` sends no body at all (as the sync transport)."""
        return await self.request("POST", path, body, request_id)

    async def patch(self, path: str, body: Any) -> dict[str, Any]:
        return await self.request("PATCH", path, body, None)

    async def delete(self, path: str) -> dict[str, Any]:
        """DELETE ``path``; PayPal answers 204 with no body (``{}`` here)."""
        return await self.request("DELETE", path, None, None)

    async def post_files(
        self,
        path: str,
        parts: Sequence[tuple[str, tuple[str | None, bytes, str]]],
    ) -> dict[str, Any]:
        """POST ``multipart/form-data`` (PayPal's dispute evidence), as the sync
        transport's ``post_files``: httpx writes the boundary, so no JSON content type."""
        what = f"POST {path}"
        headers = {"Accept": "application/json"}
        token_was_cached = self._token is not None and time.monotonic() < self._token_expires
        token = await self._access_token(what)
        response = await self._send(
            "POST", path, what, None, {**headers, **_bearer(token)}, files=parts
        )
        if response.status_code == 401 and token_was_cached:
            self._token = None
            token = await self._access_token(what)
            response = await self._send(
                "POST", path, what, None, {**headers, **_bearer(token)}, files=parts
            )
        result = _json_answer(response, what, self._translate)
        return result if isinstance(result, dict) else {}

    async def request(
        self, method: str, path: str, body: Any, request_id: str | None
    ) -> dict[str, Any]:
        what = f"{method} {path}"
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Prefer": "return=representation",
        }
        if request_id is not None:
            headers["PayPal-Request-Id"] = request_id
        content = None if body is None else json.dumps(body).encode()
        token_was_cached = self._token is not None and time.monotonic() < self._token_expires
        token = await self._access_token(what)
        response = await self._send(method, path, what, content, {**headers, **_bearer(token)})
        if response.status_code == 401 and token_was_cached:
            # a cached token can be revoked before its expiry: fetch a new one, send once more
            self._token = None
            token = await self._access_token(what)
            response = await self._send(method, path, what, content, {**headers, **_bearer(token)})
        result = _json_answer(response, what, self._translate)
        return result if isinstance(result, dict) else {}

    async def _access_token(self, what: str) -> str:
        async with self._token_lock:  # one token fetch at a time, as the sync transport
            if self._token is not None and time.monotonic() < self._token_expires:
                return self._token
            self._token = None
            started = time.monotonic()
            response = await self._send(
                "POST",
                "/v1/oauth2/token",
                what,
                b"grant_type=client_credentials",
                {
                    "Authorization": "Basic " + _basic(*self._credentials),
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
            )
            answer = _json_answer(response, what, self._translate)
            token = answer.get("access_token") if isinstance(answer, dict) else None
            if not isinstance(token, str) or not token:
                raise unexpected_response("paypal", "PayPal", what, response.status_code)
            expires_in = answer.get("expires_in")
            # as the SDK: no expires_in, no expiry (a revoked token is caught by the 401 rule)
            lifetime = float(expires_in) if isinstance(expires_in, (int, float)) else math.inf
            self._token, self._token_expires = token, started + lifetime
            return token

    async def _send(
        self,
        method: str,
        path: str,
        what: str,
        content: bytes | None,
        headers: dict[str, str],
        *,
        files: Sequence[tuple[str, tuple[str | None, bytes, str]]] | None = None,
    ) -> httpx.Response:
        try:
            response = await self._client.request(
                method,
                self.endpoint + path,
                content=content,
                files=list(files) if files is not None else None,
                headers=headers,
                # cut to the time left in the Gateway's retry budget, when one is running
                timeout=attempt_timeout(self._timeout),
            )
        except httpx.RequestError as exc:
            # never sent (ProviderUnavailable) or sent and the answer lost (OutcomeUnknown)
            raise httpx_failure("paypal", "PayPal", what, exc) from None
        log.debug(
            "PayPal %s %s -> %s (debug id %s)",
            method,
            urlsplit(str(response.url)).path,
            response.status_code,
            response.headers.get("PayPal-Debug-Id", "-"),
            extra=fields(provider="paypal", outcome=str(response.status_code)),
        )
        return response


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _basic(client_id: str, client_secret: str) -> str:
    return base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()


def _json_answer(response: httpx.Response, what: str, translate: ErrorTranslator) -> Any:
    """A 2xx answer's JSON (``{}`` when empty), or the error it stands for: the SDK's
    ``handle_response`` rules, 3xx included (never followed)."""
    status = response.status_code
    if 200 <= status <= 299:
        content = response.content
        try:
            return json.loads(content) if content else {}
        except ValueError:
            # a 2xx whose body is cut off or not JSON: PayPal may have carried it out
            raise unexpected_response("paypal", "PayPal", what, None) from None
    raise error_answer(status, response.headers, response.content, what, translate)
