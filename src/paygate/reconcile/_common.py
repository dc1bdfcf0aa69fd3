"""Shared reader plumbing: exact amount parsing, currencies, timestamps, bad-row handling.

The readers are the hot path of a million-row reconciliation, so amounts are parsed here by
hand instead of through ``Money.of`` (Decimal + regex, ~4x slower). The hand parser accepts
exactly what ``Money.of`` accepts for a decimal string and nothing else; on any doubt it
defers to ``Money.of`` for the error message. A test checks the two agree.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from paygate._iso4217 import EXPONENTS
from paygate.errors import ValidationError
from paygate.money import Money
from paygate.reconcile._model import (
    BadRow,
    OrderStatus,
    RecordKind,
    RecordStatus,
    ReportFormatError,
)

_POW10: list[int] = [10**n for n in range(10)]


#: The engine's compact form of an [`OrderRecord`][paygate.reconcile.OrderRecord]: (order_id, amount
#: in minor units, currency, status, created_at as unix seconds or None, known refunded minor units
#: or None).
#: Plain tuples, not NamedTuples: building them is the inner loop of a million-row run.
InternalRow = tuple[str, int, str, OrderStatus, "float | None", "int | None"]

#: The engine's compact form of a `ProviderRecord`: (order_id, kind, status,
#: amount magnitude, currency, fee, net, record_id, payment_id, occurred_at unix seconds).
ProviderRow = tuple[
    "str | None", RecordKind, RecordStatus, int, str, int, int, str, "str | None", "float | None"
]


def currency_code(text: str, *, lower_ok: bool = False) -> str:
    """An ISO 4217 code, upper-cased when the provider writes it lower-case (Stripe)."""
    code = text.upper() if lower_ok else text
    if code not in EXPONENTS:
        raise ValidationError(f"unknown currency {text!r}")
    return code


def major_to_minor(text: str, currency: str) -> int:
    """``"19.99"`` USD -> ``1999``, exactly; refuses what ``Money.of`` refuses.

    The common shape (the currency's exact number of places) is one concatenation and
    one ``int()``; anything else takes the general path.
    """
    exponent: int = EXPONENTS[currency]
    whole, dot, frac = text.partition(".")
    if dot:
        if len(frac) != exponent or not frac:
            return _general_minor(text, currency, exponent)
        digits = whole + frac
    else:
        digits = whole + _ZEROS[exponent]
    if whole and whole != "-" and digits.isascii():
        if digits.isdecimal():
            return int(digits)
        if digits[0] == "-" and digits[1:].isdecimal():
            return int(digits)
    return _general_minor(text, currency, exponent)


_ZEROS = ["0" * n for n in range(10)]


def _general_minor(text: str, currency: str, exponent: int) -> int:
    whole, dot, frac = text.partition(".")
    digits = whole[1:] if whole[:1] == "-" else whole
    if (
        digits.isdecimal()
        and digits.isascii()
        and (not dot or (frac.isdecimal() and frac.isascii()))
    ):
        if len(frac) > exponent:
            if frac[exponent:].strip("0"):
                Money.of(text, currency)  # raises InvalidAmount with the standard message
            frac = frac[:exponent]
        minor = int(digits) * _POW10[exponent] + (
            int(frac) * _POW10[exponent - len(frac)] if frac else 0
        )
        return -minor if whole[:1] == "-" else minor
    return Money.of(text, currency).amount  # raises with the standard message


class AmountCache:
    """Parsed amounts by their text, per currency: prices, fees and nets repeat a lot in
    a report, and a dict hit costs a fraction of parsing. Bounded (each entry is ~150
    bytes), so a report of all-distinct amounts costs at most ~20 MB here."""

    __slots__ = ("_by_currency",)

    LIMIT = 1 << 17

    def __init__(self) -> None:
        self._by_currency: dict[str, dict[str, int]] = {}

    def table(self, currency: str) -> dict[str, int]:
        """The cache of one currency (look up there first, call `miss` on None)."""
        table = self._by_currency.get(currency)
        if table is None:
            table = self._by_currency[currency] = {}
        return table

    def miss(self, table: dict[str, int], text: str, currency: str) -> int:
        value = major_to_minor(text, currency)
        if len(table) >= self.LIMIT:
            table.clear()
        table[text] = value
        return value


def minor_int(text: str) -> int:
    """An integer count of minor units (PayPal STL, Square JSON)."""
    digits = text[1:] if text[:1] == "-" else text
    if not (digits.isdigit() and digits.isascii()):
        raise ValidationError(f"{text!r} is not an integer amount in minor units")
    return int(text)


def parse_timestamp(text: str) -> float:
    """ISO 8601 / RFC 3339 (``Z`` allowed), ``YYYY-MM-DD HH:MM:SS`` (UTC) or unix seconds."""
    text = text.strip()
    if text.isdigit():
        return float(text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:  # PayPal STL: 2016/06/04 10:12:40 -0700
            moment = datetime.strptime(text, "%Y/%m/%d %H:%M:%S %z")
        except ValueError:
            raise ValidationError(f"{text!r} is not a date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def to_datetime(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


def timestamp_of(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


@dataclass
class RowErrors:
    """Collects bad rows under ``skip_bad_rows``, or raises on the first one."""

    path: str
    skip: bool
    rows: list[BadRow]

    def bad(self, line: int, reason: str) -> None:
        if not self.skip:
            raise ReportFormatError(reason, path=self.path, line=line)
        self.rows.append(BadRow(self.path, line, reason))


def open_text(source: str | Path | IO[str]) -> tuple[IO[str], str, bool]:
    """(file, name for messages, whether we opened it and must close it)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ReportFormatError("no such file", path=str(path))
        # utf-8-sig: PayPal's STL files may start with a byte order mark
        return path.open(encoding="utf-8-sig", newline=""), str(path), True
    return source, getattr(source, "name", "<stream>"), False


def sniff_text(handle: IO[str], name: str) -> str:
    """The first chunk of a text file, refusing binary files (gzip, xlsx, pdf) up front."""
    try:
        head = handle.read(4096)
    except UnicodeDecodeError:
        raise ReportFormatError(
            "not a UTF-8 text file (a spreadsheet, PDF or compressed file?)", path=name
        ) from None
    if "\x00" in head:
        raise ReportFormatError("binary data, not a CSV/JSON text file", path=name)
    if isinstance(handle, io.TextIOBase) and handle.seekable():
        handle.seek(0)
    return head


class csv_rows:  # a drop-in for csv.reader, hence the name
    """``csv.reader``, faster on the common line: one without quotes is a plain ``split``.

    Hand-written because the csv module's per-field work is a third of a million-row run;
    a line containing a quote (and the lines a quoted field spans) goes through the csv
    module itself, so quoting and embedded newlines keep their CSV meaning. ``line_num``
    counts physical lines, like ``csv.reader``'s.
    """

    def __init__(self, handle: Iterable[str]) -> None:
        self._lines = iter(handle)
        self.line_num = 0
        self._rows = self._generate()

    def __iter__(self) -> Iterator[list[str]]:
        return self._rows

    def __next__(self) -> list[str]:
        return next(self._rows)

    def _generate(self) -> Iterator[list[str]]:
        lines = self._lines
        for line in lines:
            self.line_num += 1
            if '"' not in line:
                text = line.rstrip("\r\n")
                yield text.split(",") if text else []
                continue
            while line.count('"') % 2:  # a quoted field goes on past this line
                more = next(lines, None)
                if more is None:
                    break
                self.line_num += 1
                line += more
            yield next(csv.reader(io.StringIO(line)), [])


def header_index(
    header: list[str], wanted: Mapping[str, str | None], *, name: str, what: str
) -> dict[str, int | None]:
    """Column positions for ``wanted`` (field -> column name; None = optional absent).

    A missing required column is the "wrong file type" error, raised before any row.
    """
    positions = {col.strip(): i for i, col in enumerate(header)}
    found: dict[str, int | None] = {}
    missing = []
    for field_name, column in wanted.items():
        if column is None:
            found[field_name] = None
            continue
        optional = column.endswith("?")
        column = column.rstrip("?")
        if column in positions:
            found[field_name] = positions[column]
        elif optional:
            found[field_name] = None
        else:
            missing.append(column)
    if missing:
        raise ReportFormatError(
            f"not {what}: missing column(s) {', '.join(repr(m) for m in missing)} "
            f"(found {', '.join(repr(h) for h in header[:12])}"
            f"{', ...' if len(header) > 12 else ''})",
            path=name,
            line=1,
        )
    return found


def describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"


def load_json(path: Path) -> Any:
    """A JSON file's content (a provider's response page saved to disk)."""
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ReportFormatError("no such file", path=str(path)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportFormatError(f"not a JSON file: {exc}", path=str(path)) from None


def get_path(obj: Any, *keys: str) -> Any:
    """``obj[k1][k2]...`` or None when any level is missing (provider JSON)."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj
