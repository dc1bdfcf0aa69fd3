"""Money: exact minor units over every ISO 4217 currency, floats refused everywhere."""

from __future__ import annotations

import dataclasses
import pickle
import time
from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import paygate
from paygate import CurrencyMismatch, InvalidAmount, Money, UnknownCurrency, ValidationError
from paygate._iso4217 import EXPONENTS, WITHDRAWN
from paygate.money import currency_exponent

ALL_CURRENCIES = sorted(EXPONENTS)

# amounts well past 28 significant digits: Decimal's default context would round those
amounts = st.integers(min_value=-(10**40), max_value=10**40)
floats = st.floats(allow_nan=True, allow_infinity=True)


# -- the ISO 4217 table -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("GBP", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("CLP", 0),
        ("ISK", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("JOD", 3),
        ("OMR", 3),
        ("TND", 3),
        ("IQD", 3),
        ("LYD", 3),
        ("CLF", 4),
        ("UYW", 4),
    ],
)
def test_known_exponents(currency: str, exponent: int) -> None:
    assert currency_exponent(currency) == exponent
    assert Money(1, currency).exponent == exponent


def test_table_matches_iso4217_package() -> None:
    """Cross-check against ISO's own list one as shipped by the ``iso4217`` package."""
    iso4217 = pytest.importorskip("iso4217")
    iso = {c.code: c.exponent for c in iso4217.Currency}
    # every ISO code with minor units is ours, with the same exponent
    payable = {code: exp for code, exp in iso.items() if exp is not None}
    assert {c: EXPONENTS.get(c) for c in payable} == payable
    # codes without minor units (gold, SDR, XXX, test codes) are refused on purpose
    for code in sorted(set(iso) - set(payable)):
        with pytest.raises(UnknownCurrency):
            currency_exponent(code)
    # anything we have beyond ISO's current list is a documented, withdrawn code
    assert set(EXPONENTS) - set(iso) <= WITHDRAWN


def test_table_is_well_formed() -> None:
    assert len(EXPONENTS) >= 150
    for code, exponent in EXPONENTS.items():
        assert len(code) == 3 and code.isascii() and code.isupper() and code.isalpha()
        assert exponent in (0, 2, 3, 4)
    assert set(WITHDRAWN) <= set(EXPONENTS)
    with pytest.raises(TypeError):
        EXPONENTS["USD"] = 3  # type: ignore[index]  # read-only view


# -- construction and exact round trips -----------------------------------------------------


def test_the_seed_bug_is_impossible() -> None:
    # what the seed code did, and why it is wrong
    assert int(19.99 * 100) == 1998
    assert Money.of("19.99", "USD").amount == 1999
    assert Money.of(Decimal("19.99"), "USD") == Money(1999, "USD")
    with pytest.raises(InvalidAmount, match=r"19\.99"):
        Money.of(19.99, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ALL_CURRENCIES)
@settings(max_examples=15, deadline=None)
@given(amount=amounts)
def test_round_trip_every_currency(currency: str, amount: int) -> None:
    money = Money(amount, currency)
    as_decimal = money.to_decimal()
    # exactly the currency's places, never an exponent form
    assert as_decimal.as_tuple().exponent == -EXPONENTS[currency]
    assert Money.of(as_decimal, currency) == money
    assert Money.of(str(as_decimal), currency) == money
    text = str(money)
    assert text == f"{as_decimal} {currency}"
    numeral, code = text.split(" ")
    assert Money.of(numeral, code) == money
    assert Money.from_dict(money.to_dict()) == money


@given(currency=st.sampled_from(ALL_CURRENCIES), amount=amounts, data=st.data())
def test_round_trip_from_major_units(currency: str, amount: int, data: st.DataObject) -> None:
    """A numeral with up to the currency's places converts exactly, trailing zeros or not."""
    exponent = EXPONENTS[currency]
    places = data.draw(st.integers(min_value=0, max_value=exponent), label="places")
    # an amount whose last (exponent - places) minor digits are zero, written by hand
    scale = 10 ** (exponent - places)
    minor = (abs(amount) // scale) * scale * (-1 if amount < 0 else 1)
    whole, fraction = divmod(abs(minor), 10**exponent)
    numeral = ("-" if minor < 0 else "") + str(whole)
    if places:
        numeral += "." + f"{fraction:0{exponent}d}"[:places]
    assert Money.of(numeral, currency).amount == minor
    assert Money.of(Decimal(numeral), currency).amount == minor


@given(
    currency=st.sampled_from(ALL_CURRENCIES),
    value=st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**30), max_value=10**30),
)
def test_any_decimal_is_exact_or_refused(currency: str, value: Decimal) -> None:
    """Accepted iff the value has no more places than the currency, and then exactly."""
    exponent = EXPONENTS[currency]
    with localcontext() as ctx:
        ctx.prec = 200  # enough for any drawn value: this oracle never rounds
        minor = value * (10**exponent)
        fits = minor == minor.to_integral_value()
        if fits:
            assert Money.of(value, currency).amount == int(minor)
            assert Money.of(f"{value:f}", currency).amount == int(minor)
    if not fits:
        with pytest.raises(InvalidAmount, match="precision"):
            Money.of(value, currency)


@given(cents=st.integers(min_value=0, max_value=10**9))
def test_usd_numerals_are_exact(cents: int) -> None:
    assert Money.of(f"{cents // 100}.{cents % 100:02d}", "USD").amount == cents


def test_conversion_does_not_depend_on_the_decimal_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 3
        assert Money.of("123456789.99", "USD").amount == 12345678999
        assert Money(12345678999, "USD").to_decimal() == Decimal("123456789.99")
    big = "1234567890123456789012345678.99"  # 30 significant digits
    assert Money.of(big, "USD").amount == 123456789012345678901234567899
    assert str(Money.of(big, "USD")) == f"{big} USD"


def test_enormous_amounts_stay_exact() -> None:
    """Past Python's 4300-digit int/str limit too: no detour through int's str()."""
    numeral = "9" * 5000 + ".99"
    money = Money.of(numeral, "USD")
    assert str(money) == f"{numeral} USD"
    assert Money.of(money.to_decimal(), "USD") == money


@pytest.mark.parametrize("exponent", [10**6, 10**9, 10**17])
def test_decimal_with_a_huge_exponent_is_refused_at_once(exponent: int) -> None:
    """``Decimal("1E+999999999")`` is one short object, but its minor-unit int would have a
    billion digits: building it took minutes of CPU. Refused before any of that work."""
    started = time.perf_counter()
    with pytest.raises(InvalidAmount, match="too large"):
        Money.of(Decimal(f"1E+{exponent}"), "USD")
    assert time.perf_counter() - started < 1.0
    # the bound is far past real money: 99,998 integer digits of USD still convert exactly
    assert Money.of(Decimal("1E+99997"), "USD").amount == 10**99999


def test_major_unit_ints_and_trailing_zeros() -> None:
    assert Money.of(20, "USD") == Money(2000, "USD")
    assert Money.of(500, "JPY") == Money(500, "JPY")
    assert Money.of("1.234", "KWD") == Money(1234, "KWD")
    assert Money.of("19.990", "USD") == Money(1999, "USD")
    assert Money.of("1.50", "USD") == Money.of("1.5000", "USD") == Money(150, "USD")
    assert Money.of("150.000", "JPY") == Money(150, "JPY")
    assert Money.of("-0.01", "USD") == Money(-1, "USD")
    assert Money.of(Decimal("1E+2"), "JPY") == Money(100, "JPY")


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money.of("19.99", "USD"), "19.99 USD"),
        (Money(0, "USD"), "0.00 USD"),
        (Money(5, "USD"), "0.05 USD"),
        (Money(-1999, "EUR"), "-19.99 EUR"),
        (Money(500, "JPY"), "500 JPY"),
        (Money(1234, "KWD"), "1.234 KWD"),
        (Money(1, "BHD"), "0.001 BHD"),
        (Money(12345, "CLF"), "1.2345 CLF"),
    ],
)
def test_str(money: Money, text: str) -> None:
    assert str(money) == text


# -- refusals ----------------------------------------------------------------------------


@given(value=floats, currency=st.sampled_from(ALL_CURRENCIES))
def test_floats_refused_everywhere(value: float, currency: str) -> None:
    with pytest.raises(InvalidAmount):
        Money.of(value, currency)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Money(value, currency)  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        Money(100, currency) * value  # type: ignore[operator]


@pytest.mark.parametrize("value", [19.99, 20.0, 0.0, float("nan"), float("inf")])
def test_float_messages_name_the_value(value: float) -> None:
    with pytest.raises(InvalidAmount) as caught:
        Money.of(value, "USD")  # type: ignore[arg-type]
    assert repr(value) in str(caught.value)
    with pytest.raises(InvalidAmount) as caught:
        Money(value, "USD")  # type: ignore[arg-type]
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", [True, False, Decimal("19"), "1999", None, 1999 + 0j])
def test_amount_must_be_a_plain_int(value: object) -> None:
    with pytest.raises(InvalidAmount) as caught:
        Money(value, "USD")  # type: ignore[arg-type]
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", [True, False])
def test_bools_refused_by_of_and_mul(value: bool) -> None:
    with pytest.raises(InvalidAmount, match=rf"\b{value!r}\b"):
        Money.of(value, "USD")
    with pytest.raises(InvalidAmount, match=rf"\b{value!r}\b"):
        Money(100, "USD") * value


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        ("19.999", "USD"),
        ("0.001", "EUR"),
        ("1.5", "JPY"),
        ("0.1", "KRW"),
        ("1.2345", "KWD"),
        ("1.00001", "CLF"),
        (Decimal("19.999"), "USD"),
        (Decimal("1.5"), "JPY"),
    ],
)
def test_too_much_precision_refused(value: str | Decimal, currency: str) -> None:
    with pytest.raises(InvalidAmount) as caught:
        Money.of(value, currency)
    message = str(caught.value)
    assert repr(value) in message and currency in message


@given(
    currency=st.sampled_from(ALL_CURRENCIES),
    whole=st.integers(min_value=0, max_value=10**12),
    extra=st.integers(min_value=1, max_value=9),
    data=st.data(),
)
def test_one_place_too_many_refused(
    currency: str, whole: int, extra: int, data: st.DataObject
) -> None:
    exponent = EXPONENTS[currency]
    allowed = data.draw(st.text("0123456789", min_size=exponent, max_size=exponent))
    numeral = f"{whole}.{allowed}{extra}"
    with pytest.raises(InvalidAmount, match="precision"):
        Money.of(numeral, currency)
    with pytest.raises(InvalidAmount, match="precision"):
        Money.of(Decimal(numeral), currency)


@pytest.mark.parametrize(
    "value",
    [
        "",
        " 1",
        "1 ",
        "1,000.00",
        "1e3",
        "1E-2",
        "NaN",
        "Infinity",
        "-inf",
        "+1",
        "1.",
        ".5",
        "0x10",
        "1_000",
        "--1",
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        None,
        [1],
        b"19.99",
    ],
)
def test_not_an_amount(value: object) -> None:
    with pytest.raises(InvalidAmount) as caught:
        Money.of(value, "USD")  # type: ignore[arg-type]
    assert repr(value) in str(caught.value) or str(value) in str(caught.value)


# \d matches every Unicode digit: Arabic-Indic, Devanagari, fullwidth, superscripts...
# Only ASCII digits are money (issue 15).
@pytest.mark.parametrize(
    "value",
    [
        "\u0661\u0669.\u0669\u0669",  # Arabic-Indic 19.99
        "\u0967\u0969",  # Devanagari 19
        "\uff11\uff19.\uff19\uff19",  # fullwidth 19.99
        "1\u0669.99",  # one non-ASCII digit among ASCII ones
        "19.9\u0669",
        "-\u0661",
        "\U0001d7cf\U0001d7d7",  # mathematical bold 19
    ],
)
def test_only_ascii_digits_are_money(value: str) -> None:
    with pytest.raises(InvalidAmount, match="not a decimal amount"):
        Money.of(value, "USD")


@pytest.mark.parametrize("currency", ["\uff35\uff33\uff24", "US\u0110", "\u0055SD\u0301"])
def test_currency_codes_with_non_ascii_letters_are_unknown(currency: str) -> None:
    with pytest.raises(UnknownCurrency):
        Money.of("19.99", currency)
    with pytest.raises(UnknownCurrency):
        Money(1999, currency)


@pytest.mark.parametrize("currency", ["usd", "Usd", "US", "USDD", "ABC", "XXX", "XAU", "", " USD"])
def test_unknown_currency(currency: str) -> None:
    for make in (lambda: Money(100, currency), lambda: Money.of("1", currency)):
        with pytest.raises(UnknownCurrency) as caught:
            make()
        assert repr(currency) in str(caught.value)
    with pytest.raises(UnknownCurrency):
        currency_exponent(currency)


@pytest.mark.parametrize("currency", [None, 840, b"USD", ["USD"]])
def test_non_str_currency(currency: object) -> None:
    with pytest.raises(UnknownCurrency) as caught:
        Money(100, currency)  # type: ignore[arg-type]
    assert repr(currency) in str(caught.value)
    with pytest.raises(UnknownCurrency):
        currency_exponent(currency)  # type: ignore[arg-type]


def test_currency_checked_before_amount() -> None:
    with pytest.raises(UnknownCurrency):
        Money.of(19.99, "usd")  # type: ignore[arg-type]


@pytest.mark.parametrize("error", [InvalidAmount("x"), UnknownCurrency("x"), CurrencyMismatch("x")])
def test_errors_are_validation_and_value_errors(error: Exception) -> None:
    assert isinstance(error, ValidationError)
    assert isinstance(error, ValueError)
    assert isinstance(error, paygate.PaygateError)


# -- arithmetic ----------------------------------------------------------------------------


@given(currency=st.sampled_from(ALL_CURRENCIES), a=amounts, b=amounts, k=st.integers(-1000, 1000))
def test_arithmetic_matches_integers(currency: str, a: int, b: int, k: int) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert x + y == Money(a + b, currency)
    assert x - y == Money(a - b, currency)
    assert (x + y) - y == x
    assert x * k == k * x == Money(a * k, currency)
    assert -x == Money(-a, currency)
    assert abs(x) == Money(abs(a), currency)
    assert bool(x) is (a != 0)
    assert (x < y) is (a < b)
    assert (x <= y) is (a <= b)
    assert (x > y) is (a > b)
    assert (x >= y) is (a >= b)
    assert (x == y) is (a == b)
    if x == y:
        assert hash(x) == hash(y)


def test_sorting_and_max_within_one_currency() -> None:
    items = [Money(300, "EUR"), Money(-5, "EUR"), Money(20, "EUR")]
    assert sorted(items) == [Money(-5, "EUR"), Money(20, "EUR"), Money(300, "EUR")]
    assert max(items) == Money(300, "EUR")


@pytest.mark.parametrize(
    "operation",
    [
        lambda x, y: x + y,
        lambda x, y: x - y,
        lambda x, y: x < y,
        lambda x, y: x <= y,
        lambda x, y: x > y,
        lambda x, y: x >= y,
    ],
)
def test_different_currencies_refused(operation: object) -> None:
    usd, eur = Money(100, "USD"), Money(100, "EUR")
    with pytest.raises(CurrencyMismatch) as caught:
        operation(usd, eur)  # type: ignore[operator]
    assert "USD" in str(caught.value) and "EUR" in str(caught.value)
    assert isinstance(caught.value, ValidationError)


def test_equality_across_currencies_is_false_not_an_error() -> None:
    assert Money(100, "USD") != Money(100, "EUR")
    assert len({Money(100, "USD"), Money(100, "EUR"), Money(100, "USD")}) == 2


@pytest.mark.parametrize("other", [1, Decimal("1"), "1.00", None])
def test_arithmetic_with_non_money_is_a_type_error(other: object) -> None:
    with pytest.raises(TypeError):
        Money(100, "USD") + other  # type: ignore[operator]
    with pytest.raises(TypeError):
        assert Money(100, "USD") < other  # type: ignore[operator]


def test_frozen_slotted_hashable_picklable() -> None:
    money = Money(1999, "USD")
    with pytest.raises(dataclasses.FrozenInstanceError):
        money.amount = 1  # type: ignore[misc]
    assert not hasattr(money, "__dict__")
    assert {money: "x"}[Money(1999, "USD")] == "x"
    assert pickle.loads(pickle.dumps(money)) == money
    assert Money.zero("JPY") == Money(0, "JPY")
    assert repr(money) == "Money(amount=1999, currency='USD')"
