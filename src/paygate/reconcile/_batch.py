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
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import repeat
from operator import methodcaller
from typing import IO

from paygate.reconcile._common import InternalRow, ProviderRow
from paygate.reconcile._model import OrderStatus, RecordKind

CHUNK_BYTES = 1 << 14  # small enough that a chunk's objects stay in CPU cache
_STRIP_EOL = methodcaller("rstrip", "\r\n")


@dataclass(slots=True)
class Chunk:
    """Lines of a CSV file, ending on a record boundary; ``first_line`` is 1-based."""

    first_line: int
    lines: list[str]
    quoted: bool

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) per record, with full CSV quoting rules."""
        reader = csv.reader(io.StringIO("".join(self.lines)))
        for fields in reader:
            yield self.first_line + reader.line_num - 1, fields


def chunks(handle: IO[str], first_line: int) -> Iterator[Chunk]:
    """The rest of ``handle`` in chunks of about ``CHUNK_BYTES``."""
    line_no = first_line
    while True:
        lines = handle.readlines(CHUNK_BYTES)
        if not lines:
            return
        quoted = any(map(str.__contains__, lines, repeat('"')))
        if quoted:
            # a quoted field may span lines: extend the chunk to an even number of quotes
            while sum(map(str.count, lines, repeat('"'))) % 2:
                more = handle.readline()
                if not more:
                    break
                lines.append(more)
        yield Chunk(line_no, lines, quoted)
        line_no += len(lines)


def split_columns(chunk: Chunk, width: int) -> list[tuple[str, ...]] | None:
    """The chunk as columns, or None when it is not plain (quotes, ragged rows)."""
    if chunk.quoted:
        return None
    lines = chunk.lines
    if lines[-1][-1:] != "\n":
        lines[-1] += "\n"  # the file's last line has no newline
    rows = list(map(str.split, lines, repeat(",")))
    if set(map(len, rows)) != {width}:
        return None
    columns = list(zip(*rows, strict=True))
    columns[-1] = tuple(map(_STRIP_EOL, columns[-1]))
    return columns


@dataclass(slots=True)
class OrderBatch:
    """Valid orders of one chunk, all in one currency, as columns."""

    order_ids: tuple[str, ...]
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

    order_ids: tuple[str, ...]
    kinds: list[RecordKind]
    amounts: list[int]
    fees: list[int]
    nets: list[int]
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
