"""Timestamped HMAC-SHA256 webhook signatures (the fake provider's scheme, Stripe's shape).

A delivery carries ``Paygate-Signature: t=<unix seconds>,v1=<hex>`` where the hex digest is
``HMAC-SHA256(secret, f"{t}.{body}")``. Binding the timestamp into the signed message stops
an old delivery from being replayed with a fresh ``t``; the tolerance window bounds how old
a genuine delivery may be. Several ``v1`` entries may be present (secret rotation: the
sender signs with old and new secret), and several secrets may be tried by the receiver.

Hand-written on :mod:`hmac` because it is a dozen lines and the standard library's
``hmac.compare_digest`` is exactly the constant-time comparison needed; no SDK offers this
scheme for a non-Stripe provider. Stdlib only, so it is cheap to import.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from paygate.errors import InvalidSignature, MissingSignature, TimestampOutsideTolerance

__all__ = [
    "DEFAULT_TOLERANCE",
    "SCHEME",
    "compute_signature",
    "find_header",
    "sign",
    "verify",
]

#: the signature entry's name in the header (Stripe calls its scheme ``v1`` too)
SCHEME = "v1"
#: seconds a signed timestamp may differ from "now" (either way)
DEFAULT_TOLERANCE = 300


def _as_bytes(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def compute_signature(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` under ``secret``."""
    message = str(int(timestamp)).encode("ascii") + b"." + body
    # hmac.digest: the one-shot C path, no HMAC object per webhook
    return hmac.digest(_as_bytes(secret), message, "sha256").hex()


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp``: ``t=...,v1=...``."""
    return f"t={int(timestamp)},{SCHEME}={compute_signature(secret, body, timestamp)}"


def find_header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name``, matched case-insensitively (HTTP header names are)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature("signature header has a non-integer timestamp") from None
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None:
        raise InvalidSignature("signature header has no timestamp (t=...)")
    if not signatures:
        raise InvalidSignature(f"signature header has no {SCHEME}= signature")
    return timestamp, signatures


def verify(
    header: str | None,
    body: bytes,
    secrets: Iterable[str | bytes],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float,
) -> int:
    """Check ``header`` against ``body``; return the signed timestamp.

    Raises :class:`MissingSignature` when there is no header, :class:`InvalidSignature` when
    no ``v1`` entry matches under any secret (a tampered body or timestamp, a wrong secret),
    and :class:`TimestampOutsideTolerance` when the signature is genuine but the timestamp is
    more than ``tolerance`` seconds from ``now`` (a replay, or a badly wrong clock). The
    signature is checked first so that an attacker learns nothing from the timestamp check.
    Messages never contain the secret or the expected digest.
    """
    if header is None or not header.strip():
        raise MissingSignature("webhook has no signature header")
    timestamp, candidates = _parse(header)
    secret_list = list(secrets)
    if not secret_list:
        raise InvalidSignature("no webhook secret configured to verify against")
    matched = False
    for secret in secret_list:
        expected = compute_signature(secret, body, timestamp).encode("ascii")
        for candidate in candidates:
            # compare every pair (no early exit on the first mismatch) in constant time;
            # bytes, because compare_digest refuses non-ASCII str from a hostile header
            matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise InvalidSignature("webhook signature does not match the body")
    if abs(now - timestamp) > tolerance:
        raise TimestampOutsideTolerance(
            f"webhook timestamp {timestamp} is {int(now - timestamp)} s from now, "
            f"outside the {int(tolerance)} s tolerance"
        )
    return timestamp
