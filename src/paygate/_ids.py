"""What an id may contain: one rule, checked where an id enters paygate.

An id -- ``order_id``, ``payment_id``, a customer, price or subscription id, a webhook
event's ids, a store's operation key -- is a ``str`` of 1 to `MAX_ID_LENGTH`
characters, not only whitespace, with

* no control character: C0 (U+0000 to U+001F, NUL included), DEL (U+007F), C1 (U+0080 to
  U+009F);
* no surrogate code point (U+D800 to U+DFFF): a lone one is not Unicode text and cannot
  be encoded as UTF-8.

Anything else is the application's or the provider's business (any printable Unicode,
inner spaces). Why: PostgreSQL's ``text`` cannot hold NUL (``psycopg.DataError``), no
store can encode a lone surrogate (``UnicodeEncodeError``), and SQLite or the memory store
would take both: without the rule the stores disagree about which ids exist, and a
malformed id fails with a driver's error in the middle of a call.

The Gateway checks its arguments (`paygate.Gateway._check_id`), and every store
checks the ids it is given (memory, SQLite and PostgreSQL alike, before anything is
written), which covers ids that arrive in webhooks and provider answers too.
"""

from __future__ import annotations

import re
from typing import Any

from paygate.errors import MalformedPayload, ValidationError

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_KEY_LENGTH",
    "MAX_URL_LENGTH",
    "InvalidEventId",
    "check_id",
    "check_optional_id",
]

#: characters an id may have (Stripe's ids are ~30, PayPal's vault ids at most 255)
MAX_ID_LENGTH = 255
#: a store's operation key: a scope and one or two ids ("refund:<payment>:<key>")
MAX_KEY_LENGTH = 1024
#: a URL the Gateway passes on (checkout ``success_url``, ``cancel_url``)
MAX_URL_LENGTH = 2048

_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def check_id(
    value: Any,
    what: str,
    *,
    max_length: int = MAX_ID_LENGTH,
    error: type[Exception] = ValidationError,
) -> str:
    """``value`` if it is a valid id, else ``error`` (a
    [`ValidationError`][paygate.errors.ValidationError] by default) naming ``what`` and what is
    wrong with it."""
    # the common case in one expression: printable ASCII (no control character, no
    # surrogate), not too long, not blank
    if (
        type(value) is str
        and len(value) <= max_length
        and value.isascii()
        and value.isprintable()
        and value.strip()
    ):
        return value
    if not isinstance(value, str) or not value.strip():
        raise error(f"{what} must be a non-empty str, got {value!r:.60}")
    if len(value) > max_length:
        raise error(f"{what} has {len(value)} characters, at most {max_length} are allowed")
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        kind = "a surrogate" if "\ud800" <= bad.group() <= "\udfff" else "a control character"
        raise error(
            f"{what} contains {kind} (U+{ord(bad.group()):04X} at position {bad.start()}), "
            f"which no id may: got {value!r:.60}"
        )
    return value


def check_optional_id(value: Any, what: str) -> str | None:
    """`check_id`, with ``None`` allowed."""
    return None if value is None else check_id(value, what)


# -- a store's edge: the same checks in every store ----------------------------------------


def check_key(key: Any, what: str = "operation key") -> str:
    """An operation key (a scope and ids): the rule, up to `MAX_KEY_LENGTH`."""
    return check_id(key, what, max_length=MAX_KEY_LENGTH)


def check_payment_ids(record: Any) -> None:
    """A payment record's ids (``record.id``, ``record.order_id``)."""
    check_id(record.id, "payment id")
    check_optional_id(record.order_id, "order_id")


class InvalidEventId(MalformedPayload, ValidationError):
    """A delivered webhook event whose ids break the rule: a
    [`MalformedPayload`][paygate.errors.MalformedPayload] (a webhook view answers 400, and the
    provider does not deliver it again: it would never be stored) and a
    [`ValidationError`][paygate.errors.ValidationError] like every refused id."""


def check_event_ids(
    provider: Any, event_id: Any, payment_id: Any = None, *, delivered: bool = False
) -> None:
    """A webhook event's ids, as a store is given them; ``delivered``: by a delivery
    being recorded (`InvalidEventId` then)."""
    error = InvalidEventId if delivered else ValidationError
    check_id(provider, "provider", error=error)
    check_id(event_id, "event id", error=error)
    if payment_id is not None:
        check_id(payment_id, "payment id", error=error)


def check_operation_ids(record: Any) -> None:
    """An idempotency record's key, order id and result id."""
    check_key(record.key)
    check_optional_id(record.order_id, "order_id")
    check_optional_id(record.result_id, "result id")


def check_prefix(prefix: Any) -> str:
    """A key prefix to list by: the rule's characters; may be empty."""
    return prefix if prefix == "" else check_key(prefix, "prefix")
