"""Deterministic idempotency keys and request fingerprints.

A provider key reads like what it protects --
``paygate:ord_1:create_payment:1:USD:1999`` is attempt 1 of order ``ord_1``'s payment of
19.99 USD -- so a support engineer can match it in the provider's dashboard. Parts that
could make it ambiguous (a ``:`` inside an order id) or too long are hashed instead:
``paygate:h:<sha256>``; the same inputs always give the same key.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

__all__ = ["MAX_KEY_LENGTH", "digest", "fingerprint", "provider_key"]

#: keys longer than this are hashed (hashed keys are 74 characters); adapters whose
#: provider allows less (Square: 45) hash again, deterministically
MAX_KEY_LENGTH = 100
#: ``paygate:`` then safe parts (non-empty, no ``:``) joined by ``:``: matched once on the
#: whole key (a part's own ``:`` shows in the count of ``:``), not once per part
_SAFE_KEY = re.compile(r"paygate:[A-Za-z0-9_.\-]+(?::[A-Za-z0-9_.\-]+)*")
#: ``json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)`` without
#: building a new encoder at every call (json.dumps does unless all its options are the
#: defaults; a create_payment digests twice: issue 18)
_encode = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str).encode


def digest(*parts: Any, length: int = 32) -> str:
    """A short stable hash of JSON-able ``parts`` (for fingerprints and hashed keys)."""
    return hashlib.sha256(_encode(parts).encode("utf-8")).hexdigest()[:length]


def fingerprint(**fields: Any) -> str:
    """What must match for a second call to count as the same request."""
    return digest(fields)


def provider_key(*parts: str | int) -> str:
    """``paygate:<part>:<part>...``, or ``paygate:h:<sha256>`` if that would be unsafe."""
    texts = [str(p) for p in parts]
    key = "paygate:" + ":".join(texts)
    if len(key) <= MAX_KEY_LENGTH and key.count(":") == len(texts) and _SAFE_KEY.fullmatch(key):
        return key
    return "paygate:h:" + digest(*texts, length=64)
