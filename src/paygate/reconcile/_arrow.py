"""The pyarrow fast path of the CSV readers (``pip install 'paygate-payments[reconcile]'``).

Why: splitting a million CSV lines into Python ``str`` objects is most of a pure-Python
reconciliation. ``pyarrow.csv.open_csv`` parses in C++, streams record batches (memory stays
bounded) and reads only the columns paygate needs. Every column is read as *text*: amounts
become int minor units exactly by removing the decimal point and letting Arrow's integer
parser read the digits (no float anywhere); values of any other shape go through the
pure-Python parser one by one.

Arrow gives no line numbers, so it never reports a bad row itself: any problem in a batch
(a parse error, a ragged row, a bad amount, an unknown word) makes the reader fall back to
the pure-Python path *from the first record of that batch to the end of the file*, which
gives the exact file and line. Without pyarrow the pure-Python path is the only one.
"""

from __future__ import annotations

import queue
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from pathlib import Path
from typing import IO, Any

from paygate.errors import ValidationError

#: bytes of CSV per record batch: large enough that per-batch Python work is noise,
#: small enough that the batches in flight stay a few MB
BLOCK_BYTES = 1 << 19

#: the common amount shapes by currency exponent: optional minus, digits, exact places
_SHAPES = {0: r"^-?[0-9]+$", **{n: rf"^-?[0-9]+\.[0-9]{{{n}}}$" for n in range(1, 10)}}


@dataclass(frozen=True, slots=True)
class Arrow:
    """The three pyarrow modules the fast path uses (``pc`` allocating from ``pool``), and
    the memory pool the CSV reader and those kernels allocate from."""

    pa: Any
    pc: Any
    csv: Any
    pool: Any

    @property
    def Invalid(self) -> type[Exception]:  # named like the exception class it returns
        error: type[Exception] = self.pa.ArrowInvalid
        return error


def load_arrow() -> Arrow | None:
    """pyarrow, or None when it is not installed (the pure-Python path then runs)."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.csv
    except ImportError:
        return None
    pool = _reader_pool(pyarrow)
    return Arrow(pyarrow, _PooledCompute(pyarrow.compute, pool), pyarrow.csv, pool)


class _PooledCompute:
    """``pyarrow.compute`` whose functions allocate from ``pool``."""

    def __init__(self, pc: Any, pool: Any) -> None:
        self._pc = pc
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        function = partial(getattr(self._pc, name), memory_pool=self._pool)
        setattr(self, name, function)
        return function


def _reader_pool(pa: Any) -> Any:
    """jemalloc where pyarrow has it, else the system allocator: not pyarrow's default
    mimalloc, which keeps the pages of batches already freed (at a million rows a side,
    ~30 MB more peak RSS). The reader's batches and paygate's kernel calls come from it;
    the process-wide default pool is left alone."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # pyarrow.lib.ArrowNotImplementedError is one
        return pa.system_memory_pool()


# Arrow arrays and scalars from Python values are built from their buffers here: pyarrow
# converting a Python object (``pyarrow.array``/``scalar``, a list or an int handed to a
# kernel) first asks whether it is a pandas object, which imports pandas when it is
# installed - 0.15 s and ~40 MB of RSS that reading a CSV never needs.


def string_array(arrow: Arrow, values: Sequence[str]) -> Any:
    """An Arrow string array of ``values`` (without pyarrow's conversion, see above)."""
    pa = arrow.pa
    data = [value.encode() for value in values]
    offsets = struct.pack(f"={len(data) + 1}i", 0, *accumulate(map(len, data)))
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
    return pa.Array.from_buffers(pa.string(), len(data), buffers)


def int64_array(arrow: Arrow, values: Sequence[int]) -> Any:
    """An Arrow int64 array of ``values`` (without pyarrow's conversion, see above)."""
    pa = arrow.pa
    data = pa.py_buffer(struct.pack(f"={len(values)}q", *values))
    return pa.Array.from_buffers(pa.int64(), len(values), [None, data])


#: smaller files take the pure-Python path: importing pyarrow alone costs ~0.4 s and
#: ~80 MB, more than the Python reader spends on a few MB of CSV
MIN_ARROW_BYTES = 4 << 20


def arrow_for(source: str | Path | IO[str]) -> Arrow | None:
    """pyarrow when it is installed and the source is a file path of at least
    ``MIN_ARROW_BYTES`` (streams and small files stay Python)."""
    if not isinstance(source, (str, Path)):
        return None
    try:
        if Path(source).stat().st_size < MIN_ARROW_BYTES:
            return None
    except OSError:
        return None  # the Python path reports it
    return load_arrow()


#: the key of ``prepare``'s result in a batch's column dict
PREPARED = -1


def record_batches(
    arrow: Arrow,
    path: str | Path,
    width: int,
    wanted: Sequence[int],
    prepare: Callable[[dict[int, Any]], Any] | None = None,
) -> Iterator[dict[int, Any]]:
    """Columns ``wanted`` (header positions) of each record batch as Arrow string arrays.

    The header line is skipped and columns are named by position, so the names in the
    file need not be valid or unique for Arrow. Raises ``arrow.Invalid`` on any parse
    problem (a ragged row, invalid UTF-8), possibly after some batches were yielded.
    ``prepare(columns)``, when given, runs on the helper thread (keep it to Arrow
    kernels, which release the GIL); its result is under the key ``PREPARED``.
    """
    pa, csv = arrow.pa, arrow.csv
    names = [f"c{i}" for i in range(width)]
    include = [names[i] for i in sorted(set(wanted))]
    reader = csv.open_csv(
        str(path),
        read_options=csv.ReadOptions(
            column_names=names, skip_rows=1, block_size=BLOCK_BYTES, use_threads=True
        ),
        parse_options=csv.ParseOptions(newlines_in_values=False),
        convert_options=csv.ConvertOptions(
            include_columns=include,
            column_types=dict.fromkeys(include, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
        memory_pool=arrow.pool,
    )
    positions = sorted(set(wanted))

    def columns_of(batch: Any) -> dict[int, Any]:
        columns = {pos: batch.column(i) for i, pos in enumerate(positions)}
        if prepare is not None:
            columns[PREPARED] = prepare(columns)
        return columns

    for columns in _prefetched(reader, columns_of):
        if len(columns[positions[0]]):
            yield columns


#: batches parsed ahead of the consumer, each a few hundred KB of Arrow memory
PREFETCH = 4
_DONE = object()


def _prefetched(reader: Any, convert: Callable[[Any], Any]) -> Iterator[Any]:
    """The reader's batches, parsed on a helper thread while the caller works on the
    previous ones: Arrow releases the GIL while it parses, so reading overlaps the
    engine's Python work on a second core. An error there is raised here, in order."""
    slots: queue.Queue[Any] = queue.Queue(PREFETCH)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in reader:
                if batch.num_rows and not hand_over(convert(batch)):
                    return
        except Exception as exc:  # handed to the consumer, raised there
            hand_over(exc)
            return
        hand_over(_DONE)

    worker = threading.Thread(target=produce, name="paygate-csv-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def minor_units(arrow: Arrow, texts: Any, exponent: int, scalar: Callable[[str], int]) -> list[int]:
    """The amounts of a string array as int minor units, exactly.

    Values of the common shape (``-?digits.places`` with the currency's exact number of
    places, or plain digits for ``exponent`` 0) lose their decimal point and are read by
    Arrow's integer parser (an overflow raises there and sends everything to ``scalar``).
    The others go through ``scalar`` - the pure-Python parser - one by one, whose
    ``ValidationError`` propagates. Never a float.
    """
    pa, pc = arrow.pa, arrow.pc
    if len(texts) == 0:
        return []
    plain = pc.match_substring_regex(texts, _SHAPES[exponent])
    digits = pc.replace_substring(texts, ".", "", max_replacements=1) if exponent else texts
    all_plain = pc.all(plain).as_py()
    if not all_plain:
        digits = pc.if_else(plain, digits, string_array(arrow, ["0"])[0])
    try:
        values: list[int] = pc.cast(digits, pa.int64()).to_pylist()
    except arrow.Invalid:  # more digits than an int64 holds: Python ints do not overflow
        return [scalar(text) for text in texts.to_pylist()]
    if not all_plain:
        for index in pc.indices_nonzero(pc.invert(plain)).to_pylist():
            values[index] = scalar(texts[index].as_py())
    return values


def int64_units(arrow: Arrow, texts: Any, exponent: int) -> Any | None:
    """The amounts as an Arrow int64 array of minor units when every value has the common
    shape and fits (see `minor_units`), else None. Exact: digits read as integers."""
    pa, pc = arrow.pa, arrow.pc
    if not pc.all(pc.match_substring_regex(texts, _SHAPES[exponent])).as_py():
        return None
    digits = pc.replace_substring(texts, ".", "", max_replacements=1) if exponent else texts
    try:
        return pc.cast(digits, pa.int64())
    except arrow.Invalid:  # more digits than an int64 holds
        return None


#: below this magnitude a batch's int64 sum cannot overflow (a batch has < 2**23 rows)
_SAFE_SUM = 1 << 40


def int64_sum(arrow: Arrow, units: Any) -> int:
    """The exact sum of an int64 array (Arrow's own sum wraps on overflow: guarded)."""
    pc = arrow.pc
    if len(units) == 0:
        return 0
    if pc.max(pc.abs_checked(units)).as_py() < _SAFE_SUM:
        total: int = pc.sum(units).as_py()
        return total
    return sum(units.to_pylist())


def skip_records(handle: IO[str], count: int, line_no: int) -> int:
    """Read past ``count`` records of ``handle`` (blank lines do not count, a quoted field
    may span lines, as for the CSV readers); return the number of the next line."""
    while count:
        line = handle.readline()
        if not line:
            break
        line_no += 1
        while line.count('"') % 2:  # a quoted field goes on past this line
            more = handle.readline()
            if not more:
                break
            line_no += 1
            line += more
        if line.rstrip("\r\n"):
            count -= 1
    return line_no


class BatchProblem(Exception):
    """A batch the fast path cannot take: the reader falls back to the pure-Python path."""


def check(condition: bool) -> None:
    if not condition:
        raise BatchProblem


def scalar_or_problem(parse: Callable[[str], int]) -> Callable[[str], int]:
    """``parse`` with its ValidationError turned into a BatchProblem (the fallback then
    reports it with file and line)."""

    def parse_or_problem(text: str) -> int:
        try:
            return parse(text)
        except ValidationError:
            raise BatchProblem from None

    return parse_or_problem
