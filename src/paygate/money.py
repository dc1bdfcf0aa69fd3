"""Money: integer minor units plus an ISO 4217 currency. Never a float.

``Money.of("19.99", "USD")`` is exactly ``Money(1999, "USD")``: the conversion goes through
`decimal.Decimal` and refuses anything it cannot represent exactly, so the classic
``int(19.99 * 100) == 1998`` bug cannot happen here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from paygate._iso4217 import EXPONENTS
from paygate.errors import CurrencyMismatch, InvalidAmount, UnknownCurrency

__all__ = ["Money", "currency_exponent"]

# A plain decimal numeral: optional sign, digits, optional fraction. No exponents, no
# NaN/Infinity, no thousands separators, no surrounding space: what ``Decimal(str)`` would
# otherwise quietly accept. ASCII digits only: ``\d`` (and ``Decimal(str)``) take any
# Unicode digit, so ``"١٩.٩٩"`` would have been 19.99.
_NUMERAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
#: digits a minor-unit amount may have. Far past any real money; it only stops a Decimal
#: such as ``Decimal("1E+999999999")`` from building a billion-digit int (minutes of CPU).
_MAX_DIGITS = 100_000


def currency_exponent(currency: str) -> int:
    """Number of minor-unit digits of ``currency`` (JPY 0, USD 2, KWD 3)."""
    try:
        return EXPONENTS[currency]
    except (KeyError, TypeError):
        raise UnknownCurrency(
            f"unknown currency {currency!r}: expected an upper-case ISO 4217 code such as 'USD'"
        ) from None


def _check_currency(currency: object) -> str:
    if not isinstance(currency, str):
        raise UnknownCurrency(f"currency must be a str ISO 4217 code, got {currency!r}")
    currency_exponent(currency)
    return currency


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units (cents, yen, fils) of one currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise InvalidAmount(
                f"Money.amount must be an int of minor units, got {self.amount!r} "
                f"({type(self.amount).__name__}); use Money.of('19.99', ...) for major units"
            )
        _check_currency(self.currency)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def of(cls, value: str | Decimal | int, currency: str) -> Money:
        """Money from a major-unit amount: ``Money.of("19.99", "USD") == Money(1999, "USD")``.

        Accepts a decimal string, a `Decimal` or an ``int`` of major units.
        Floats, NaN, infinities and more digits than the currency has are refused.
        """
        exponent = currency_exponent(_check_currency(currency))
        if isinstance(value, (bool, float)):
            raise InvalidAmount(
                f"refusing {type(value).__name__} {value!r} for {currency}: pass a str or "
                "Decimal such as '19.99', floats cannot hold money exactly"
            )
        if isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, str):
            if not _NUMERAL.fullmatch(value):
                raise InvalidAmount(f"{value!r} is not a decimal amount like '19.99'")
            number = Decimal(value)
        elif isinstance(value, Decimal):
            if not value.is_finite():
                raise InvalidAmount(f"{value!r} is not a finite amount")
            number = value
        else:
            raise InvalidAmount(
                f"cannot make {currency} money from {type(value).__name__} {value!r}"
            )
        # Shift the decimal point by rebuilding the number from its digits: exact at any
        # size, where ``scaleb`` would round to the context's 28 significant digits.
        sign, digits, places = number.as_tuple()
        assert isinstance(places, int)  # finite, checked above
        if len(digits) + places + exponent > _MAX_DIGITS:
            raise InvalidAmount(
                f"{currency} amount with {len(digits) + places} integer digits is too large "
                f"(at most {_MAX_DIGITS - exponent})"
            )
        minor = Decimal((sign, digits, places + exponent))
        if minor != minor.to_integral_value():
            raise InvalidAmount(
                f"{value!r} has more precision than {currency} allows "
                f"({exponent} decimal place{'s' if exponent != 1 else ''})"
            )
        return cls(int(minor), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    # -- views ----------------------------------------------------------------------------

    @property
    def exponent(self) -> int:
        return EXPONENTS[self.currency]

    def to_decimal(self) -> Decimal:
        """The major-unit amount with exactly the currency's places: ``Decimal('19.99')``."""
        # rebuilt from the digits, so exact at any size (``scaleb`` would round past 28)
        sign, digits, _ = Decimal(self.amount).as_tuple()
        return Decimal((sign, digits, -self.exponent))

    def __str__(self) -> str:
        return f"{self.to_decimal()} {self.currency}"

    # -- arithmetic within one currency ---------------------------------------------------

    def _same(self, other: object, op: str) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot {op} Money and {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot {op} {self} and {other}: different currencies")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same(other, "add").amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same(other, "subtract").amount, self.currency)

    def __mul__(self, factor: int) -> Money:
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise InvalidAmount(f"Money can only be multiplied by an int, got {factor!r}")
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __bool__(self) -> bool:
        return self.amount != 0

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other, "compare").amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other, "compare").amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other, "compare").amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other, "compare").amount

    # -- serialization ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"amount": self.amount, "currency": self.currency}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Money:
        return cls(data["amount"], data["currency"])
