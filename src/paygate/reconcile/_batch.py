"""Column batches: the million-row fast path of the CSV readers and the engine.

Why hand-written: per-row Python work is what makes a pure-Python reconciliation slower
than pandas. Here a chunk of ~16 KB of lines is split and transposed into columns by C-level
builtins (``str.split`` through ``map``, ``zip(*rows)``), amounts come from a cache through
``map(dict.get, ...)``, and the engine matches a whole column of charges against the held
orders with ``map``/``compress`` and one ``dict.update``. Anything unusual in a chunk -
a quote, a short row, a bad amount, an unknown status - sends that chunk down the per-row
path, which gives the exact error and line; the two paths classify identically (tested).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import is_
from typing import IO, TypeVar

from paygate.errors import ValidationError
from paygate.reconcile._common import InternalRow, ProviderRow, RowErrors, describe
from paygate.reconcile._model import OrderStatus

CHUNK_CHARS = 1 << 14  # small enough that a chunk's objects stay in CPU cache


T = TypeVar("T")


@dataclass(slots=True)
class Chunk:
    """Whole records of a CSV file as one string (``\n`` line ends, no final one);
    ``first_line`` is the 1-based line number of its first line."""

    first_line: int
    text: str
    quoted: bool
    _lines: list[str] | None = None

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = self.text.split("\n")
        return self._lines

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) per record, with full CSV quoting rules."""
        reader = csv.reader(io.StringIO(self.text))
        for fields in reader:
            yield self.first_line + reader.line_num - 1, fields

    def parse(self, parse_row: Callable[[list[str]], T], errors: RowErrors) -> list[T]:
        """Every record through ``parse_row`` (the per-row path): a bad one goes to
        ``errors`` with its line number, blank records are skipped."""
        parsed: list[T] = []
        for line_no, fields in self.rows():
            if not fields:
                continue
            try:
                parsed.append(parse_row(fields))
            except ValidationError as exc:
                errors.bad(line_no, describe(exc))
        return parsed


def chunks(handle: IO[str], first_line: int) -> Iterator[Chunk]:
    """The rest of ``handle`` in chunks of about ``CHUNK_CHARS``, cut at line ends."""
    line_no = first_line
    while True:
        text = handle.read(CHUNK_CHARS)
        if not text:
            return
        if text[-1] != "\n":
            text += handle.readline()  # finish the line
        quoted = '"' in text
        if quoted:
            # a quoted field may span lines: extend the chunk to an even number of quotes
            while text.count('"') % 2:
                more = handle.readline()
                if not more:
                    break
                text += more
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        if text[-1] == "\n":
            text = text[:-1]
        yield Chunk(line_no, text, quoted)
        line_no += text.count("\n") + 1


def split_columns(chunk: Chunk, width: int) -> list[list[str]] | None:
    """The chunk as columns, or None when it is not plain (quotes, ragged rows).

    No list per row: every line must have ``width - 1`` commas (checked per line, in C),
    then the whole chunk is one flat split and each column a slice of it.
    """
    if chunk.quoted:
        return None
    text = chunk.text
    if set(map(str.count, chunk.lines, repeat(","))) != {width - 1}:
        return None
    fields = text.replace("\n", ",").split(",")
    return [fields[i::width] for i in range(width)]


def misses(values: list[int | None]) -> list[int]:
    """Positions of the ``None`` entries (cache misses), found in C."""
    return list(compress(range(len(values)), map(is_, values, repeat(None))))


@dataclass(slots=True)
class OrderBatch:
    """Valid orders of one chunk, all in one currency, as columns."""

    order_ids: Sequence[str]
    amounts: list[int]
    currency: str
    statuses: list[OrderStatus]
    #: unix seconds (0.0 for "no date") or None when times were not asked for
    created: list[float] | None


@dataclass(slots=True)
class ProviderBatch:
    """Valid records of one chunk, one currency, all succeeded (balance transactions), as
    columns; ``row(i)`` gives the full compact row for the few records the engine handles
    one by one."""

    order_ids: Sequence[str]
    #: the amount of each payment record; -1 for any other kind (never a clean match)
    payment_amounts: list[int]
    #: the batch's fees and nets summed (only the totals are needed for these records)
    fee_total: int
    net_total: int
    currency: str
    rows: list[ProviderRow | None]
    builder: object

    def row(self, index: int) -> ProviderRow:
        built = self.rows[index]
        if built is None:
            built = self.builder(index)  # type: ignore[operator]
            self.rows[index] = built
        return built


#: what a batch reader yields: a column batch, or compact rows for an unusual chunk
OrderItem = OrderBatch | list[InternalRow]
ProviderItem = ProviderBatch | list[ProviderRow]


def payment_amounts(gross: Iterable[int], payment: Iterable[object]) -> list[int]:
    """``ProviderBatch.payment_amounts``: ``abs(gross)`` where ``payment`` is true, else -1."""
    return [
        abs(amount) if is_payment else -1 for amount, is_payment in zip(gross, payment, strict=True)
    ]
