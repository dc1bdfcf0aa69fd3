"""Hostile webhook deliveries (issue 15): every one is answered with a typed paygate error
(or, for a signed event with an unusable time, parsed without that time), never a builtin
``ValueError``/``OverflowError``/``RecursionError``/``TypeError`` that a view would turn
into a 500 and the provider would redeliver for days."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import responses

from paygate import InvalidSignature, MalformedPayload
from paygate._json import MAX_BODY_BYTES, MAX_DEPTH, load_object
from paygate.stores.memory import MemoryStore
from tests.fuzz.targets import NAMES, paypal_api, signed, store_snapshot, target

DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture(autouse=True)
def api() -> Iterator[responses.RequestsMock]:
    with paypal_api() as rsps:
        yield rsps


def _verify_calls(rsps: responses.RequestsMock) -> int:
    return sum("verify-webhook-signature" in call.request.url for call in rsps.calls)


# -- the signature headers -----------------------------------------------------------------


@pytest.mark.parametrize("timestamp", ["²", "١٢٣", "1_700_000_000", "+1700000000", "1" * 5000])
@pytest.mark.parametrize("name", ["stripe", "fake"])
def test_a_timestamp_that_is_not_ascii_digits_is_an_invalid_signature(
    name: str, timestamp: str
) -> None:
    header = "Stripe-Signature" if name == "stripe" else "Paygate-Signature"
    with pytest.raises(InvalidSignature):
        target(name).parse(b"{}", {header: f"t={timestamp},v1=00"})


@pytest.mark.parametrize("name", ["paypal", "paypal_api"])
@pytest.mark.parametrize("sent_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_paypal_transmission_time_beyond_the_calendar_is_an_invalid_signature(
    name: str, sent_at: str, api: responses.RequestsMock
) -> None:
    body, headers = signed(name, target(name).seeds[0])
    headers["PAYPAL-TRANSMISSION-TIME"] = sent_at
    with pytest.raises(InvalidSignature, match="TRANSMISSION-TIME"):
        target(name).parse(body, headers)
    assert _verify_calls(api) == 0


@pytest.mark.parametrize("name", NAMES)
def test_header_names_and_values_may_be_bytes(name: str) -> None:
    """ASGI servers hand headers over as bytes: they verify as the same text would."""
    body, headers = signed(name, target(name).seeds[0])
    as_bytes = {k.lower().encode("latin-1"): v.encode("latin-1") for k, v in headers.items()}
    event = target(name).parse(body, as_bytes)
    assert event.id == target(name).seeds[0].get("id", target(name).seeds[0].get("event_id"))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", ["\ud800", "t=\udfff,v1=00", "é", b"\xff\xfe", 12, None, [b"x"]])
def test_a_signature_header_that_is_not_ascii_text_is_an_invalid_signature(
    name: str, value: Any, api: responses.RequestsMock
) -> None:
    body, headers = signed(name, target(name).seeds[0])
    for header in target(name).signature_headers:
        hostile = {**headers, header: value}
        if value is None:  # an absent header is MissingSignature, an InvalidSignature too
            hostile = {k: v for k, v in headers.items() if k != header}
        with pytest.raises(InvalidSignature):
            target(name).parse(body, hostile)
    assert _verify_calls(api) == 0


# -- the body ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "body",
    [DEEP, b'{"a":' * 100_000, b" " * (MAX_BODY_BYTES + 1), b'{"id": NaN}', b"\xff{}"],
    ids=["deep-array", "deep-object", "too-large", "nan", "not-utf8"],
)
def test_a_signed_body_that_is_not_bounded_json_is_malformed(
    name: str, body: bytes, api: responses.RequestsMock
) -> None:
    headers = target(name).sign(body)
    # PayPal's API verification must read the body to send it: refused before any request
    expected = InvalidSignature if name == "paypal_api" else MalformedPayload
    with pytest.raises(expected):
        target(name).parse(body, headers)
    assert _verify_calls(api) == 0


def test_paypal_api_verification_refuses_a_deep_body_without_any_signature(
    api: responses.RequestsMock,
) -> None:
    """The reported bypass: the body was parsed before verification, unsigned."""
    headers = target("paypal_api").sign(b"{}")
    headers["PAYPAL-TRANSMISSION-SIG"] = "AAAA"
    with pytest.raises(InvalidSignature, match="deeper than"):
        target("paypal_api").parse(DEEP, headers)
    assert _verify_calls(api) == 0


def _nest(depth: int) -> bytes:
    return b'{"id":"x","n":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_the_depth_limit_counts_brackets_outside_strings_only() -> None:
    assert load_object(_nest(MAX_DEPTH), MalformedPayload, "body")["id"] == "x"
    with pytest.raises(MalformedPayload, match=f"deeper than {MAX_DEPTH}"):
        load_object(_nest(MAX_DEPTH + 1), MalformedPayload, "body")
    text = json.dumps({"description": "[" * 500 + '\\"{' * 300, "n": [[1]]}).encode()
    assert load_object(text, MalformedPayload, "body")["n"] == [[1]]
    assert load_object(b"\xef\xbb\xbf{}", MalformedPayload, "body") == {}  # a UTF-8 BOM
    with pytest.raises(InvalidSignature, match="not a JSON object"):
        load_object(b"[]", InvalidSignature, "body")


def test_an_unterminated_escape_run_is_scanned_in_linear_time() -> None:
    body = b'"' + b'\\"' * 400_000 + b"[" * 100  # a quadratic scan would take minutes
    with pytest.raises(MalformedPayload):
        load_object(body, MalformedPayload, "body")


# -- signed events whose times are beyond the calendar -----------------------------------------


def _with_times(name: str, value: Any) -> dict[str, Any]:
    event = json.loads(json.dumps(target(name).seeds[0]))
    if name == "stripe":
        event["created"] = event["data"]["object"]["created"] = value
    elif name.startswith("paypal"):
        event["create_time"] = event["resource"]["create_time"] = value
    else:
        event["created_at"] = event["data"]["object"]["payment"]["created_at"] = value
    return event


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("stripe", 10**20),
        ("stripe", -(10**12)),
        ("paypal", "0001-01-01T00:00:00+01:00"),
        ("paypal_api", "9999-12-31T23:59:59-01:00"),
        ("square", "0001-01-01T00:00:00+01:00"),
        ("square", "9999-12-31T23:59:59.999999-01:00"),
    ],
)
def test_a_time_beyond_the_calendar_is_read_as_no_time(name: str, value: Any) -> None:
    """As an unparseable time already was in these adapters: the event's facts still count,
    the delivery is answered 200 and the provider stops redelivering it."""
    body, headers = signed(name, _with_times(name, value))
    event = target(name).parse(body, headers)
    assert event.occurred_at is None
    assert event.object is not None and event.object.created_at is None  # type: ignore[union-attr]
    result = target(name).gateway().handle_webhook(body, headers)
    assert result.http_status == 200 and not result.duplicate


@pytest.mark.parametrize("field", ["created", "object"])
def test_the_fake_refuses_an_event_time_beyond_the_calendar(field: str) -> None:
    """The fake's ``created`` is a required integer: out of range is malformed, typed,
    and nothing is stored."""
    event = json.loads(json.dumps(target("fake").seeds[0]))
    if field == "created":
        event["created"] = 10**20
    else:
        event["data"]["object"]["created"] = -(10**15)
    body, headers = signed("fake", event)
    gateway = target("fake").gateway(MemoryStore())
    before = store_snapshot(gateway.store)
    with pytest.raises(MalformedPayload, match="range"):
        gateway.handle_webhook(body, headers)
    assert store_snapshot(gateway.store) == before


def test_square_reads_other_headers_leniently() -> None:
    """Only signature headers must be ASCII: an API error's request id header is read as
    given (bytes as Latin-1), never turned into an InvalidSignature."""
    from paygate.providers._square_webhook import header

    assert header({"Square-Version": "é"}, "square-version") == "é"
    assert header({b"square-version": b"\xe9"}, "Square-Version") == "é"
    assert header({"square-version": 3}, "square-version") is None


def test_square_refuses_an_id_that_cannot_be_put_in_a_url() -> None:
    """A signed refund naming payment "\\x00" made the Gateway's lookup raise httpx's
    InvalidURL (the SDK leaves the NUL unescaped): now a typed ValidationError."""
    from paygate.errors import ValidationError

    with pytest.raises(ValidationError, match="cannot be put in a URL"):
        target("square").provider.get_payment("\x00")
