"""Stripe's currency rules: to_stripe_amount / from_stripe_amount over every ISO currency."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paygate import InvalidAmount, Money, UnknownCurrency, ValidationError
from paygate._iso4217 import EXPONENTS
from paygate.providers.stripe import (
    MAX_AMOUNT_DIGITS,
    THREE_DECIMAL,
    ZERO_DECIMAL,
    from_stripe_amount,
    stripe_exponent,
    to_stripe_amount,
)

# (money, Stripe amount) pairs straight from Stripe's currency guide and its special cases
KNOWN = [
    (Money.of("10", "USD"), (1000, "usd")),
    (Money.of("19.99", "USD"), (1999, "usd")),
    (Money.of("500", "JPY"), (500, "jpy")),
    (Money.of("1500", "KRW"), (1500, "krw")),
    (Money.of("5.120", "KWD"), (5120, "kwd")),
    (Money.of("1.5", "BHD"), (1500, "bhd")),
    (Money.of("5", "ISK"), (500, "isk")),  # two-decimal in the API, whole krónur only
    (Money.of("10.45", "HUF"), (1045, "huf")),  # charges may have fillér; payouts may not
    (Money.of("10.45", "TWD"), (1045, "twd")),
    (Money.of("5000", "UGX"), (5000, "ugx")),  # zero-decimal at Stripe as in ISO
    (Money.of("3", "MGA"), (3, "mga")),  # ISO has 2 places, Stripe is zero-decimal
    (Money.of("999999.99", "USD"), (99_999_999, "usd")),
]


@pytest.mark.parametrize(("money", "expected"), KNOWN, ids=[str(m) for m, _ in KNOWN])
def test_known_amounts_both_ways(money: Money, expected: tuple[int, str]) -> None:
    assert to_stripe_amount(money) == expected
    assert from_stripe_amount(*expected) == money
    assert from_stripe_amount(expected[0], expected[1].upper()) == money


@pytest.mark.parametrize("currency", sorted(THREE_DECIMAL))
def test_three_decimal_last_digit_must_be_zero_refused_not_rounded(currency: str) -> None:
    assert to_stripe_amount(Money(5120, currency)) == (5120, currency.lower())
    with pytest.raises(InvalidAmount, match="multiple of 10") as info:
        to_stripe_amount(Money(5124, currency))
    assert "does not round" in str(info.value)


def test_isk_fraction_from_stripe_is_refused() -> None:
    # fractional-króna charges predate Stripe's 2023 change; they have no ISO representation
    with pytest.raises(InvalidAmount, match="fraction"):
        from_stripe_amount(4010, "isk")
    assert from_stripe_amount(4000, "isk") == Money(40, "ISK")


def test_zero_decimal_at_stripe_needs_whole_units_when_iso_has_minor_units() -> None:
    with pytest.raises(InvalidAmount, match="zero-decimal"):
        to_stripe_amount(Money(301, "MGA"))  # 3.01 MGA
    assert to_stripe_amount(Money(300, "MGA")) == (3, "mga")


def test_eight_digit_maximum() -> None:
    assert MAX_AMOUNT_DIGITS == 8
    assert to_stripe_amount(Money(99_999_999, "JPY")) == (99_999_999, "jpy")
    with pytest.raises(InvalidAmount, match="at most 8 digits"):
        to_stripe_amount(Money(100_000_000, "JPY"))
    with pytest.raises(InvalidAmount, match="at most 8 digits"):
        to_stripe_amount(Money.of("1000000", "USD"))
    # ISK's x100 counts against the limit: 999,999 krónur is 99,999,900
    assert to_stripe_amount(Money(999_999, "ISK")) == (99_999_900, "isk")
    with pytest.raises(InvalidAmount):
        to_stripe_amount(Money(1_000_000, "ISK"))


def test_negative_refused() -> None:
    with pytest.raises(InvalidAmount, match="negative"):
        to_stripe_amount(Money(-100, "USD"))


def test_from_stripe_rejects_bad_input() -> None:
    with pytest.raises(UnknownCurrency):
        from_stripe_amount(100, "zzz")
    with pytest.raises(InvalidAmount):
        from_stripe_amount(10.5, "usd")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        from_stripe_amount(True, "usd")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        from_stripe_amount(100, None)  # type: ignore[arg-type]


def test_exponent_table() -> None:
    assert stripe_exponent("JPY") == 0
    assert stripe_exponent("UGX") == 0
    assert stripe_exponent("KWD") == 3
    assert stripe_exponent("ISK") == 2
    assert stripe_exponent("HUF") == 2
    assert stripe_exponent("TWD") == 2
    assert stripe_exponent("IQD") == 2  # three-decimal in ISO, but not one of Stripe's five
    assert set(EXPONENTS) >= ZERO_DECIMAL and set(EXPONENTS) >= THREE_DECIMAL


@given(st.sampled_from(sorted(EXPONENTS)), st.integers(min_value=0, max_value=10**12))
def test_round_trip_every_currency(currency: str, amount: int) -> None:
    """Whatever to_stripe_amount accepts comes back exactly; what it refuses is unrepresentable."""
    money = Money(amount, currency)
    try:
        stripe_amount, code = to_stripe_amount(money)
    except InvalidAmount:
        shift = stripe_exponent(currency) - EXPONENTS[currency]
        scaled, fraction = (amount * 10**shift, 0) if shift >= 0 else divmod(amount, 10**-shift)
        step = {"ISK": 100, **dict.fromkeys(THREE_DECIMAL, 10)}.get(currency, 1)
        assert fraction or scaled > 99_999_999 or scaled % step
        return
    assert code == currency.lower()
    assert 0 <= stripe_amount <= 99_999_999
    assert from_stripe_amount(stripe_amount, code) == money


@pytest.mark.parametrize("currency", sorted(EXPONENTS))
def test_one_major_unit_of_every_currency(currency: str) -> None:
    """One whole unit is 10**(Stripe's exponent) in Stripe's API, for all of ISO 4217."""
    one = Money.of("1", currency)
    expected = 10 ** stripe_exponent(currency)
    assert to_stripe_amount(one) == (expected, currency.lower())
    assert from_stripe_amount(expected, currency.lower()) == one
    # and the smallest ISO amount either converts exactly or is refused, never rounded
    smallest = Money(1, currency)
    try:
        amount, _ = to_stripe_amount(smallest)
    except InvalidAmount:
        assert currency in ZERO_DECIMAL | THREE_DECIMAL or EXPONENTS[currency] > 2
    else:
        assert from_stripe_amount(amount, currency) == smallest
