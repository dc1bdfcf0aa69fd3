"""The timestamped HMAC scheme shared by the fake provider (``paygate._signing``)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paygate._signing import compute_signature, find_header, sign, verify
from paygate.errors import (
    InvalidSignature,
    MissingSignature,
    TimestampOutsideTolerance,
    WebhookVerificationError,
)

SECRET = "whsec_test_signing"
BODY = b'{"id":"evt_1","type":"payment.succeeded"}'
NOW = 1_700_000_000


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, BODY, NOW) == expected
    assert sign(SECRET, BODY, NOW) == f"t={NOW},v1={expected}"


def test_verify_returns_the_signed_timestamp() -> None:
    assert verify(sign(SECRET, BODY, NOW), BODY, [SECRET], tolerance=300, now=NOW + 10) == NOW


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    with pytest.raises(MissingSignature):
        verify(header, BODY, [SECRET], now=NOW)


def test_tampered_body_is_rejected() -> None:
    header = sign(SECRET, BODY, NOW)
    with pytest.raises(InvalidSignature, match="does not match"):
        verify(header, BODY.replace(b"succeeded", b"failed"), [SECRET], now=NOW)


def test_tampered_timestamp_is_rejected_as_a_bad_signature() -> None:
    digest = compute_signature(SECRET, BODY, NOW - 3600)
    # an attacker replays an old delivery with a fresh t: the digest no longer matches
    with pytest.raises(InvalidSignature):
        verify(f"t={NOW},v1={digest}", BODY, [SECRET], now=NOW)


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(InvalidSignature):
        verify(sign("whsec_other", BODY, NOW), BODY, [SECRET], now=NOW)


@pytest.mark.parametrize("offset", [301, -301, 10_000])
def test_timestamp_outside_tolerance(offset: int) -> None:
    header = sign(SECRET, BODY, NOW)
    with pytest.raises(TimestampOutsideTolerance):
        verify(header, BODY, [SECRET], tolerance=300, now=NOW + offset)


@pytest.mark.parametrize("offset", [300, -300, 0])
def test_timestamp_at_the_edge_of_tolerance_is_accepted(offset: int) -> None:
    assert verify(sign(SECRET, BODY, NOW), BODY, [SECRET], tolerance=300, now=NOW + offset) == NOW


def test_signature_is_checked_before_the_timestamp() -> None:
    # an old *and* forged delivery is reported as forged
    with pytest.raises(InvalidSignature):
        verify(sign("whsec_other", BODY, NOW), BODY, [SECRET], tolerance=300, now=NOW + 9999)


@pytest.mark.parametrize(
    "header",
    ["v1=abc", "t=123", "t=notanumber,v1=abc", "garbage", f"t={NOW},v0=abc", "t=,v1="],
)
def test_unparseable_headers_are_invalid(header: str) -> None:
    with pytest.raises(InvalidSignature):
        verify(header, BODY, [SECRET], now=NOW)


def test_non_ascii_signature_is_invalid_not_a_crash() -> None:
    with pytest.raises(InvalidSignature):
        verify(f"t={NOW},v1=é€", BODY, [SECRET], now=NOW)


def test_rotation_any_of_several_signatures_or_secrets() -> None:
    old, new = "whsec_old", "whsec_new"
    both = f"{sign(old, BODY, NOW)},v1={compute_signature(new, BODY, NOW)}"
    assert verify(both, BODY, [new], now=NOW) == NOW
    assert verify(sign(old, BODY, NOW), BODY, [new, old], now=NOW) == NOW


def test_no_configured_secret_is_invalid() -> None:
    with pytest.raises(InvalidSignature, match="no webhook secret"):
        verify(sign(SECRET, BODY, NOW), BODY, [], now=NOW)


def test_error_messages_never_contain_the_secret_or_digest() -> None:
    digest = compute_signature(SECRET, BODY, NOW)
    for header, now in [
        (sign("whsec_other", BODY, NOW), NOW),
        (sign(SECRET, BODY, NOW), NOW + 999),
    ]:
        with pytest.raises(WebhookVerificationError) as info:
            verify(header, BODY, [SECRET], now=now)
        assert SECRET not in str(info.value)
        assert digest not in str(info.value)


def test_find_header_is_case_insensitive() -> None:
    headers = {"paygate-SIGNATURE": "x", "Content-Type": "application/json"}
    assert find_header(headers, "Paygate-Signature") == "x"
    assert find_header(headers, "Missing") is None


@given(body=st.binary(max_size=256), timestamp=st.integers(0, 2**40), secret=st.text(min_size=1))
def test_round_trip_and_any_bit_flip_fails(body: bytes, timestamp: int, secret: str) -> None:
    header = sign(secret, body, timestamp)
    assert verify(header, body, [secret], tolerance=0, now=timestamp) == timestamp
    tampered = body + b"x" if not body else bytes([body[0] ^ 1]) + body[1:]
    with pytest.raises(InvalidSignature):
        verify(header, tampered, [secret], tolerance=0, now=timestamp)
