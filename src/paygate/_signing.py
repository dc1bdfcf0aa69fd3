"""Timestamped HMAC-SHA256 webhook signatures (the fake provider's scheme, Stripe's shape).

A delivery carries ``Paygate-Signature: t=<unix seconds>,v1=<hex>`` where the hex digest is
``HMAC-SHA256(secret, f"{t}.{body}")``. Binding the timestamp into the signed message stops
an old delivery from being replayed with a fresh ``t``; the tolerance window bounds how old
a genuine delivery may be. Several ``v1`` entries may be present (secret rotation: the
sender signs with old and new secret), and several secrets may be tried by the receiver.

Hand-written on `hmac` because it is a dozen lines and the standard library's
``hmac.compare_digest`` is exactly the constant-time comparison needed; no SDK offers this
scheme for a non-Stripe provider. Stdlib only, so it is cheap to import.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping

from paygate.errors import InvalidSignature, MissingSignature, TimestampOutsideTolerance

__all__ = [
    "DEFAULT_TOLERANCE",
    "SCHEME",
    "compute_signature",
    "find_header",
    "header_values",
    "lookup_header",
    "parse_unix_seconds",
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


def _text(value: object, name: str) -> str:
    """A header value as ``str``. ``bytes`` (ASGI servers pass raw header bytes) are
    decoded as Latin-1, as HTTP/1.1 header values are. Every signature scheme paygate
    verifies uses ASCII only (digits, hex, base64, an https URL, an ISO time), so a value
    that is not text or not ASCII (a lone surrogate, say) is refused here, typed, rather
    than failing later in an ``encode`` or ``int()``."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    if not isinstance(value, str):
        raise InvalidSignature(f"the {name} header is not text ({type(value).__name__})")
    if not value.isascii():
        raise InvalidSignature(f"the {name} header is not ASCII")
    return value


def _name(key: object) -> str | None:
    if isinstance(key, (bytes, bytearray)):
        return bytes(key).decode("latin-1").lower()
    return key.lower() if isinstance(key, str) else None


def lookup_header(headers: Mapping[str, str], name: str) -> object | None:
    """The value of header ``name`` as given (``str``, ``bytes``, anything), matched
    case-insensitively (HTTP header names are; ``bytes`` names too)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, value in headers.items():
        if _name(key) == wanted:
            return value
    return None


def find_header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of signature header ``name``, matched case-insensitively, as ASCII text.

    Names and values may be ``str`` or ``bytes``; a value that is not ASCII text raises
    [`InvalidSignature`][paygate.errors.InvalidSignature] (see `_text`).
    """
    value = lookup_header(headers, name)
    return None if value is None else _text(value, name)


def header_values(headers: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The headers among ``names`` (lower case) that ``headers`` carries, as ASCII text."""
    wanted = frozenset(names)
    found: dict[str, str] = {}
    for key, value in headers.items():
        lowered = _name(key)
        if lowered in wanted:
            found[lowered] = _text(value, lowered)
    return found


#: a Unix time in seconds: ASCII digits only (``str.isdigit`` also accepts "²" and "١"),
#: at most 15 of them (``int()`` refuses more than 4,300; a real time has 10)
_UNIX_SECONDS = re.compile(r"[0-9]{1,15}")


def parse_unix_seconds(value: str) -> int | None:
    """``value`` as whole Unix seconds, or ``None`` when it is not 1-15 ASCII digits."""
    return int(value) if _UNIX_SECONDS.fullmatch(value) else None


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamp = parse_unix_seconds(value)
            if timestamp is None:  # no sign, spaces, "1_000" or "1e9" (int() takes some)
                raise InvalidSignature("signature header has a malformed timestamp (t=...)")
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

    Raises [`MissingSignature`][paygate.errors.MissingSignature] when there is no header,
    [`InvalidSignature`][paygate.errors.InvalidSignature] when no ``v1`` entry matches under any
    secret (a tampered body or timestamp, a wrong secret), and
    [`TimestampOutsideTolerance`][paygate.errors.TimestampOutsideTolerance] when the signature is
    genuine but the timestamp is more than ``tolerance`` seconds from ``now`` (a replay, or a badly
    wrong clock). The signature is checked first so that an attacker learns nothing from the
    timestamp check. Messages never contain the secret or the expected digest.
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
