"""The error tree: as drawn in ``paygate.errors``' docstring, and as the issue asks."""

from __future__ import annotations

import pickle
import re

import pytest

import paygate
from paygate import errors
from paygate.errors import (
    DECLINE_CODES,
    AuthenticationError,
    CardDeclined,
    ConfigurationError,
    IdempotencyConflict,
    InvalidRequest,
    InvalidTransition,
    NotFound,
    NotSupported,
    PaygateError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    ValidationError,
)

ERROR_CLASSES = {
    name: getattr(errors, name)
    for name in errors.__all__
    if isinstance(getattr(errors, name), type)
}


def drawn_tree() -> dict[str, str | None]:
    """Parse the box-drawing tree in the module docstring: class name -> drawn parent."""
    assert errors.__doc__ is not None
    parents: dict[str, str | None] = {}
    stack: list[str] = []  # stack[depth] = the class last drawn at that depth
    root_column: int | None = None
    for line in errors.__doc__.splitlines():
        match = re.match(r"^[\s│]*(?:[├└]── )?(?P<name>[A-Z]\w+)", line)
        if not match or match["name"] not in ERROR_CLASSES:
            continue
        if root_column is None:
            root_column = match.start("name")
        depth, offset = divmod(match.start("name") - root_column, 4)
        assert offset == 0, line
        del stack[depth:]
        parents[match["name"]] = stack[-1] if stack else None
        stack.append(match["name"])
    return parents


def test_every_error_class_is_drawn() -> None:
    assert set(drawn_tree()) == set(ERROR_CLASSES)


@pytest.mark.parametrize("name", sorted(ERROR_CLASSES))
def test_bases_match_the_drawing(name: str) -> None:
    parent = drawn_tree()[name]
    cls = ERROR_CLASSES[name]
    if parent is None:
        assert cls.__bases__ == (Exception,)
    else:
        assert cls.__bases__[0] is ERROR_CLASSES[parent]


def test_drawing_matches_the_issue() -> None:
    tree = drawn_tree()
    assert tree["PaygateError"] is None
    for name in (
        "ConfigurationError",
        "ValidationError",
        "ProviderError",
        "WebhookVerificationError",
        "InvalidTransition",
    ):
        assert tree[name] == "PaygateError"
    for name in (
        "CardDeclined",
        "AuthenticationError",
        "RateLimited",
        "ProviderUnavailable",
        "IdempotencyConflict",
        "NotFound",
        "InvalidRequest",
        "NotSupported",
    ):
        assert tree[name] == "ProviderError"
    # subclasses for bad signature, timestamp outside tolerance, malformed payload
    signature = {n for n, p in tree.items() if p == "WebhookVerificationError"}
    assert {"InvalidSignature", "TimestampOutsideTolerance", "MalformedPayload"} <= signature
    assert tree["ProviderNotInstalled"] == "ConfigurationError"
    assert {"InvalidAmount", "UnknownCurrency", "CurrencyMismatch"} == {
        n for n, p in tree.items() if p == "ValidationError"
    }


def test_validation_error_is_a_value_error() -> None:
    assert ValidationError.__bases__ == (PaygateError, ValueError)
    with pytest.raises(ValueError):
        raise ValidationError("bad")


@pytest.mark.parametrize("name", sorted(ERROR_CLASSES))
def test_every_error_is_exported_from_paygate(name: str) -> None:
    assert getattr(paygate, name) is ERROR_CLASSES[name]
    assert issubclass(ERROR_CLASSES[name], PaygateError)


# -- ProviderError ------------------------------------------------------------------------


def test_provider_error_attributes_and_str() -> None:
    err = ProviderError(
        "the card network is down",
        provider="stripe",
        code="api_error",
        http_status=502,
        request_id="req_123",
    )
    assert (err.message, err.provider, err.code, err.http_status, err.request_id) == (
        "the card network is down",
        "stripe",
        "api_error",
        502,
        "req_123",
    )
    assert str(err) == (
        "the card network is down (provider=stripe, code=api_error, http_status=502, "
        "request_id=req_123)"
    )
    bare = ProviderError("nope")
    assert str(bare) == "nope"
    assert (bare.provider, bare.code, bare.http_status, bare.request_id) == (None,) * 4


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (ProviderError, False),
        (CardDeclined, False),
        (AuthenticationError, False),
        (RateLimited, True),
        (ProviderUnavailable, True),
        (IdempotencyConflict, False),
        (NotFound, False),
        (InvalidRequest, False),
        (NotSupported, False),
    ],
)
def test_retryable_defaults_and_override(cls: type[ProviderError], retryable: bool) -> None:
    assert cls("x").retryable is retryable
    assert cls("x", retryable=not retryable).retryable is (not retryable)
    assert cls("x", retryable=None).retryable is retryable


@pytest.mark.parametrize("code", sorted(DECLINE_CODES))
def test_card_declined_keeps_standard_codes(code: str) -> None:
    err = CardDeclined("declined", decline_code=code, provider="square", http_status=402)
    assert err.decline_code == code
    assert (err.provider, err.http_status, err.retryable) == ("square", 402, False)


@pytest.mark.parametrize("code", ["generic_decline_xyz", "", "INSUFFICIENT_FUNDS", "05"])
def test_card_declined_normalizes_unknown_codes(code: str) -> None:
    assert CardDeclined("declined", decline_code=code).decline_code == "card_declined"


def test_card_declined_default_and_required_codes() -> None:
    assert CardDeclined("declined").decline_code == "card_declined"
    required = {
        "card_declined",
        "insufficient_funds",
        "expired_card",
        "incorrect_cvc",
        "processing_error",
    }
    assert required <= DECLINE_CODES


def test_errors_survive_pickling() -> None:
    """Errors cross process boundaries (task queues, multiprocessing) intact."""
    err = CardDeclined("declined", decline_code="expired_card", provider="stripe", code="x")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is CardDeclined
    assert (copy.decline_code, copy.provider, copy.code, str(copy)) == (
        "expired_card",
        "stripe",
        "x",
        str(err),
    )
    limited = pickle.loads(pickle.dumps(RateLimited("slow down", http_status=429)))
    assert (limited.retryable, limited.http_status) == (True, 429)


def test_invalid_transition_carries_status_and_trigger() -> None:
    err = InvalidTransition("refunded cannot happen", status="failed", trigger="refunded")
    assert (err.status, err.trigger, str(err)) == ("failed", "refunded", "refunded cannot happen")
    assert not isinstance(err, ValueError)


def test_configuration_error_is_not_a_provider_error() -> None:
    assert not issubclass(ConfigurationError, ProviderError)
    assert not issubclass(ProviderError, ValueError)
