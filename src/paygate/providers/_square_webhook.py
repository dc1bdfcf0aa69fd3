"""Square webhook signatures: ``x-square-hmacsha256-signature``.

Square signs ``notification_url + raw body`` with HMAC-SHA256 under the subscription's
signature key and sends the base64 digest. The SDK has ``square.utils.webhooks_helper.
verify_signature``, but it takes the body as ``str``: paygate works on the raw bytes that
arrived (decoding then re-encoding could change them) and needs to tell a missing header
from a wrong one, so it computes the same digest here in a few lines.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from paygate._signing import find_header, lookup_header
from paygate.errors import InvalidSignature, MissingSignature

SIGNATURE_HEADER = "x-square-hmacsha256-signature"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]`` matched case-insensitively (frameworks differ in header case);
    ``bytes`` are read as Latin-1, a value that is not text is ``None``."""
    value = lookup_header(headers, name)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return value if isinstance(value, str) else None


def sign(body: bytes, *, signature_key: str, notification_url: str) -> str:
    """The signature Square sends for ``body`` delivered to ``notification_url``."""
    digest = hmac.new(
        signature_key.encode("utf-8"), notification_url.encode("utf-8") + body, hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(
    body: bytes, headers: Mapping[str, str], *, signature_key: str, notification_url: str
) -> None:
    """Raise unless ``body`` carries Square's valid signature for this key and URL."""
    # strict: bytes read as Latin-1, anything but ASCII text is an InvalidSignature
    received = find_header(headers, SIGNATURE_HEADER)
    if received is None or not received.strip():
        raise MissingSignature(f"Square webhook without the {SIGNATURE_HEADER} header")
    expected = sign(body, signature_key=signature_key, notification_url=notification_url)
    # constant-time compare on bytes (the header is ASCII: find_header checked it)
    if not hmac.compare_digest(expected.encode("ascii"), received.strip().encode("ascii")):
        raise InvalidSignature(
            "Square webhook signature does not match the body, the signature key and the "
            "notification URL (check webhook_url is exactly the URL registered with Square)"
        )
