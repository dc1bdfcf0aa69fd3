"""Stripe webhook signature verification: the fast path, stdlib only.

``Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>]``, where each ``v1``
is ``HMAC-SHA256(endpoint secret, f"{t}.{raw body}")``. Stripe sends several ``v1`` entries
while an endpoint's secret is being rolled; ``v0`` is a legacy test scheme and never counts.

Hand-written rather than ``stripe.WebhookSignature.verify_header`` because the SDK's check
(a) only rejects timestamps in the past, so a signature dated far in the future would be
accepted, (b) tries one secret per call, and (c) is followed in ``construct_event`` by a
second ``json.loads`` into ``StripeObject``s, which is what makes it slow. Here the body
is authenticated over its raw bytes with ``hmac.compare_digest`` against every configured
secret, and the caller parses the JSON exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from paygate._signing import find_header, parse_unix_seconds
from paygate.errors import InvalidSignature, MissingSignature, TimestampOutsideTolerance

__all__ = ["SIGNATURE_HEADER", "find_signature_header", "sign", "verify_signature"]

SIGNATURE_HEADER = "Stripe-Signature"
_SCHEME = "v1"


def find_signature_header(headers: Mapping[str, str]) -> str | None:
    """The ``Stripe-Signature`` value, header names matched case-insensitively (``str`` or
    ``bytes``; a value that is not ASCII text is an
    [`InvalidSignature`][paygate.errors.InvalidSignature])."""
    return find_header(headers, SIGNATURE_HEADER)


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """A ``Stripe-Signature`` value for ``body``, as Stripe would send it (for tests/tools)."""
    digest = hmac.new(
        secret.encode("utf-8"), str(int(timestamp)).encode("ascii") + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={int(timestamp)},{_SCHEME}={digest}"


def _parse_header(header: str) -> tuple[int, list[bytes]]:
    timestamp: int | None = None
    signatures: list[bytes] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = parse_unix_seconds(value)
            if timestamp is None:  # no sign, no spaces, no "1e9", no "²", not 5,000 digits
                raise InvalidSignature("Stripe-Signature has a malformed timestamp (t=...)")
        elif key == _SCHEME:
            signatures.append(value.encode("ascii", "replace"))
    if timestamp is None:
        raise InvalidSignature("Stripe-Signature has no timestamp (t=...)")
    if not signatures:
        raise InvalidSignature("Stripe-Signature has no v1 signature (v0 does not count)")
    return timestamp, signatures


def verify_signature(
    body: bytes,
    header: str | None,
    secrets: Sequence[bytes],
    *,
    tolerance: int,
    now: float,
) -> int:
    """Authenticate ``body``; return the signed timestamp or raise.

    ``secrets`` are the endpoint secrets as UTF-8 bytes, tried in order (rotation on our
    side). The timestamp must lie within ``tolerance`` seconds of ``now`` in either
    direction; the signature is checked first so that a forger learns nothing from the
    timestamp error.
    """
    if not header:
        raise MissingSignature("no Stripe-Signature header")
    timestamp, signatures = _parse_header(header)
    signed_prefix = str(timestamp).encode("ascii") + b"."
    matched = False
    for secret in secrets:
        mac = hmac.new(secret, signed_prefix, hashlib.sha256)
        mac.update(body)
        expected = mac.hexdigest().encode("ascii")
        for candidate in signatures:
            # compare every candidate: no early exit that would time which one matched
            matched |= hmac.compare_digest(expected, candidate)
        if matched:
            break
    if not matched:
        raise InvalidSignature("Stripe-Signature does not match the body under any secret")
    if abs(now - timestamp) > tolerance:
        raise TimestampOutsideTolerance(
            f"Stripe-Signature timestamp {timestamp} is more than {tolerance}s from now"
        )
    return timestamp
