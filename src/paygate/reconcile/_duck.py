"""The reconciliation engine on DuckDB: the join and the classification in SQL.

How it reads the two sides and runs, and why, is docs/reconciliation.md ("How it scales"):
an `OrdersCSV` or `StripeReportCSV` over a file is read by DuckDB itself and normalized in
SQL (``_ORDERS_CSV_SQL``, ``_STRIPE_CSV_SQL``), the rows the SQL does not accept decided by
the reader's own Python parser (`_recheck`); any other source is loaded from its compact
rows (`_load_table`). ``_RUN_SQL`` joins the two sides and counts the clean matches,
``_DETAILS_SQL`` reads the records of the other orders, and the per-order rules that
`reconcile_in_postgres` runs too (`_classify`) write their lines.
"""

from __future__ import annotations

# ruff: noqa: S608 - the SQL is built from this module's constants and readers' column names
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from paygate._iso4217 import EXPONENTS
from paygate.errors import ValidationError
from paygate.reconcile._classify import (
    PAID_LIKE_SQL,
    Window,
    begin,
    classify,
    end,
    fill,
    rows_of,
    sql_text,
)
from paygate.reconcile._common import AmountCache, csv_rows, describe, header_index
from paygate.reconcile._csv import OrdersCSV
from paygate.reconcile._model import (
    BadRow,
    OrderRecord,
    Policy,
    ProviderRecord,
    ReconciliationLine,
    ReconciliationReport,
)
from paygate.reconcile._stripe import REPORTING_CATEGORIES, StripeReportCSV

__all__ = ["reconcile"]

Progress = Callable[[str, int], None]

#: rows per Arrow record batch when a side is loaded from Python rows
BATCH_ROWS = 1 << 16

# -- SQL ------------------------------------------------------------------------------------

#: amount text -> minor units, for the usual shapes only (NULL otherwise: the Python
#: parser then decides on the row). ``{t}`` is the text, ``{e}`` the currency's exponent.
#: A text is accepted when it is exactly how DuckDB writes its value back: the canonical
#: ``-?digits.places`` with the currency's number of places (as ``DECIMAL(18 - e, e)``),
#: or plain ``-?digits`` major units. The round trip is the cheapest strict shape test in
#: DuckDB (a regular expression costs more than the cast and the round trip together);
#: anything else - leading zeros, a ``+``, spaces, other places, ``.5``, ``5.``, an
#: exponent - goes to the Python parser, which decides. The minor units are the decimal
#: times the scale, in 64-bit decimal arithmetic: ``DECIMAL(18 - e, e)`` (under
#: ``10**(18 - 2e)`` major units) times ``10**e`` always fits ``DECIMAL(18, e)``, so the
#: product cannot overflow (a larger text does not cast: the Python parser reads it).
#: That replaced taking the point out of the text and casting the digits, a string copy
#: a value that cost as much as the shape test.
_MAJOR_AT = (
    "CASE WHEN TRY_CAST({t} AS DECIMAL({w}, {e}))::VARCHAR = {t}"
    " THEN (TRY_CAST({t} AS DECIMAL({w}, {e})) * {scale})::BIGINT"
    " WHEN TRY_CAST({t} AS BIGINT)::VARCHAR = {t}"
    " THEN TRY_CAST(TRY_CAST({t} AS HUGEINT) * {scale} AS BIGINT) END"
)
_MAJOR = (
    "CASE {e} "
    + " ".join(
        f"WHEN {e} THEN ("
        + (
            _MAJOR_AT.replace("{e}", str(e))
            .replace("{w}", str(18 - e))
            .replace("{scale}", str(10**e))
            if e
            else "CASE WHEN TRY_CAST({t} AS BIGINT)::VARCHAR = {t} THEN TRY_CAST({t} AS BIGINT) END"
        )
        + ")"
        for e in sorted(set(EXPONENTS.values()))
    )
    + " END"
)
_MINOR = "CASE WHEN TRY_CAST({t} AS BIGINT)::VARCHAR = {t} THEN TRY_CAST({t} AS BIGINT) END"

#: a date the SQL reads as Python's ``parse_timestamp`` does (digits: Unix seconds; ISO
#: ``YYYY-MM-DD HH:MM:SS`` naive or ``Z``/``+00:00``: UTC); NULL for any other shape
_TIME = (
    "CASE WHEN regexp_full_match({t}, '[0-9]{{1,12}}') THEN CAST({t} AS DOUBLE)"
    " WHEN regexp_full_match({t}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[ T][0-9]{{2}}:[0-9]{{2}}"
    ":[0-9]{{2}}(Z|z|\\+00:00)?')"
    " THEN epoch(TRY_CAST(regexp_replace({t}, '(Z|z|\\+00:00)$', '') AS TIMESTAMP)) END"
)

_READ_CSV = (
    "read_csv({path}, header = false, skip = 1, delim = ',', quote = '\"', escape = '\"',"
    " columns = {columns}, strict_mode = true, null_padding = false, all_varchar = true,"
    " auto_detect = false)"
)

#: the orders file, normalized as DuckDB reads it: one table in file order (its ``rowid``
#: is the order's position), with ``bad`` for a row the SQL does not accept
_ORDERS_CSV_SQL = """
WITH r AS (
    SELECT row_number() OVER () - 1 AS pos, {select} FROM {read}
), c AS (
    SELECT r.pos, r.order_id, r.amount_text, r.status_text, r.created_text, r.refunded_text,
        CASE WHEN r.currency = '' THEN {default} ELSE r.currency END AS currency_text
    FROM r
), x AS (
    SELECT c.*, upper(c.currency_text) AS currency,
        {exponent} AS exponent,
        coalesce({status_of}, CASE WHEN regexp_full_match(c.status_text, '[A-Za-z_]+')
            THEN {lower_status_of} END) AS status
    FROM c
), n AS (
    SELECT x.*, {amount} AS amount,
        CASE WHEN {want_time} AND x.created_text <> '' THEN {created} END AS created,
        CASE WHEN x.refunded_text <> '' THEN {refunded} END AS refunded
    FROM x
)
SELECT pos, order_id, amount, currency, status, created, refunded,
    order_id = '' OR exponent IS NULL OR amount IS NULL OR amount < 0 OR status IS NULL
        OR ({want_time} AND created_text <> '' AND created IS NULL)
        OR (refunded_text <> '' AND refunded IS NULL) AS bad
FROM n
"""

#: a Stripe itemized report, normalized (see ``_ORDERS_CSV_SQL``)
_STRIPE_CSV_SQL = """
WITH r AS (
    SELECT row_number() OVER () - 1 AS seq, {select} FROM {read}
), c AS (
    SELECT r.*, upper(r.currency_text) AS currency,
        {exponent} AS exponent
    FROM r WHERE {only}
), a AS (
    SELECT c.*, {gross} AS gross, {fee} AS fee, {net} AS net,
        CASE WHEN {want_time} AND c.created_text <> '' THEN {created} END AS ts
    FROM c
)
SELECT a.seq, nullif(a.order_id, '') AS order_id, {kind_of} AS kind,
    'succeeded' AS status, abs(a.gross) AS amount, a.currency, a.fee, a.net,
    a.record_id, coalesce(nullif(a.pi, ''), nullif(a.ch, ''), nullif(a.src, '')) AS payment_id,
    a.ts,
    a.exponent IS NULL OR a.gross IS NULL OR a.fee IS NULL OR a.net IS NULL
        OR a.gross - a.fee <> a.net
        OR ({want_time} AND a.created_text <> '' AND a.ts IS NULL) AS bad
FROM a
"""

#: the run's first statement: both sides parsed once (common table expressions, which
#: DuckDB streams to their consumers or keeps in memory, far cheaper than a table per
#: side), then every figure the report needs comes out as rows of one result, told apart
#: by ``tag`` (``UNION ALL BY NAME``: each kind of row names its columns, the rest are NULL):
#:
#: - ``n``: bad rows per side and rows in the file (the bad rows are left out of the rest;
#:   `_recheck` has the reader's Python parser decide on them)
#: - ``d``: the repeated order ids in the window (pos, order id), left out of the join
#: - ``m``: the clean matches per currency (an order whose only record is one successful
#:   payment of exactly its amount - nearly every order): count, sum, first position
#: - ``q``: the orders without a record that need no line (awaiting, not charged)
#: - ``o``: the orders with anything more than a clean match, or none and paid
#: - ``x``: the order ids of records without an order
#: - ``f``: fee and net totals per currency, with where each first had a non-zero one
#:
#: The records of the ``o`` and ``x`` orders come from a second statement
#: (``_DETAILS_SQL``): carrying every record's ids through the first one for the few
#: itemized lines kept the whole report side in memory (~130 MB more at a million rows).
_RUN_SQL = """
WITH orders AS MATERIALIZED ({orders}),
records AS MATERIALIZED ({records}),
kept AS (
    SELECT pos, order_id FROM orders
    WHERE NOT bad
        AND (NOT {windowed} OR created IS NULL OR (created >= {lo} AND created < {hi}))
), dup AS (
    SELECT pos, order_id FROM (
        SELECT k.pos, k.order_id,
            row_number() OVER (PARTITION BY k.order_id ORDER BY k.pos) AS nth
        FROM kept k SEMI JOIN (
            SELECT order_id FROM kept GROUP BY order_id HAVING count(*) > 1
        ) r ON r.order_id = k.order_id
    ) WHERE nth > 1
), held AS (
    SELECT pos, order_id, amount, currency, status, refunded,
        ({recent_after} IS NOT NULL AND created IS NOT NULL AND created > {recent_after})
            AS recent
    FROM orders
    WHERE (NOT {windowed} OR created IS NULL OR (created >= {lo} AND created < {hi}))
        -- the bad rows left out this way: a NOT bad filter here cost ~50 MB at 1M rows
        AND pos NOT IN (SELECT pos FROM dup UNION ALL SELECT pos FROM orders WHERE bad)
), kept_records AS (
    SELECT * FROM records
    WHERE NOT bad AND (NOT {windowed} OR ts IS NULL OR (ts >= {lo} AND ts < {hi}))
), per_id AS (
    SELECT order_id, count(*) AS n, min(seq) AS first_seq,
        -- the first record's amount and currency when it is a successful payment (else
        -- NULL); with one record (all a clean match needs) it is min() of them
        min(CASE WHEN kind = 'payment' AND status = 'succeeded' THEN amount END) AS paid1,
        min(currency) AS currency1
    FROM kept_records WHERE kind <> 'other' AND order_id IS NOT NULL
    GROUP BY order_id
), joined AS MATERIALIZED (
    SELECT h.pos, coalesce(h.order_id, p.order_id) AS order_id, h.amount, h.currency,
        h.status, h.recent, h.refunded, p.n, p.first_seq,
        coalesce(h.status = 'paid' AND p.n = 1 AND p.paid1 = h.amount
            AND p.currency1 = h.currency, false) AS clean
    FROM held h FULL JOIN per_id p ON p.order_id = h.order_id
)
SELECT 'n' AS tag, (SELECT count(*) FILTER (WHERE bad) FROM orders) AS i1,
    (SELECT count(*) FILTER (WHERE bad) FROM records) AS i2,
    (SELECT count(*) FROM orders) AS i3, (SELECT count(*) FROM records) AS i4
UNION ALL BY NAME
SELECT 'd' AS tag, pos AS i1, order_id AS s1 FROM dup
UNION ALL BY NAME
SELECT 'm' AS tag, count(*) AS i1, min(pos) AS i2, sum(amount)::HUGEINT AS h1, currency AS s1
FROM joined WHERE clean GROUP BY currency
UNION ALL BY NAME
SELECT 'q' AS tag,
    count(*) FILTER (WHERE recent AND status IN ('paid', 'refunded', 'disputed', 'pending'))
        AS i1,
    count(*) FILTER (WHERE status NOT IN ('paid', 'refunded', 'disputed')
        AND NOT (status = 'pending' AND recent)) AS i2
FROM joined WHERE pos IS NOT NULL AND n IS NULL
UNION ALL BY NAME
SELECT 'o' AS tag, pos AS i1, n AS i2, first_seq AS i3, amount::HUGEINT AS h1,
    refunded::HUGEINT AS h2, order_id AS s1, currency AS s2, status AS s3, recent AS b1,
    n IS NOT NULL AS b2
FROM joined
WHERE pos IS NOT NULL AND (
    (n IS NOT NULL AND NOT clean)
    OR (n IS NULL AND status IN ('paid', 'refunded', 'disputed') AND NOT recent))
UNION ALL BY NAME
SELECT 'x' AS tag, n AS i2, first_seq AS i3, order_id AS s1 FROM joined WHERE pos IS NULL
UNION ALL BY NAME
SELECT 'f' AS tag, min(seq) FILTER (WHERE fee <> 0) AS i1, min(seq) FILTER (WHERE net <> 0) AS i2,
    sum(fee)::HUGEINT AS h1, sum(net)::HUGEINT AS h2, currency AS s1
FROM kept_records GROUP BY currency
"""

#: the records the itemized lines need: those of the order ids in ``wanted`` (the orders
#: with more than a clean match, and the ids without an order) and those without an order
#: id. A file's rows are picked before they are normalized (see ``_ONLY``).
_DETAILS_SQL = """
SELECT seq, order_id, kind, status, amount, currency, fee, net, record_id, payment_id
FROM ({records})
WHERE NOT bad AND kind <> 'other'
    AND (NOT {windowed} OR ts IS NULL OR (ts >= {lo} AND ts < {hi}))
    AND (order_id IS NULL OR order_id IN (SELECT order_id FROM wanted))
"""

#: the order ids whose records the second statement reads
_WANTED_SQL = """
CREATE TEMP VIEW wanted AS SELECT s1 AS order_id FROM run WHERE (tag = 'o' AND b2) OR tag = 'x'
"""

#: the orders that are more than a clean match, and the ids of no order, as `_classify`
#: wants them (``pg_j``)
_JOINED_SQL = f"""
CREATE TEMP TABLE pg_j AS
SELECT o.s1 AS order_id, o.i1 AS first_id, o.h1::BIGINT AS amount, o.s2 AS currency,
    o.s3 AS status, o.h2::BIGINT AS refunded, o.s3 IN {PAID_LIKE_SQL} AS paid_like,
    o.b1 AS recent, o.i2 AS n, o.i3 AS first_seq,
    coalesce(o.s3 = 'paid' AND r.kind = 'payment' AND r.status = 'succeeded'
        AND r.amount = o.h1 AND r.currency = o.s2, false) AS fast
FROM run o LEFT JOIN pg_rec r ON r.seq = o.i3
WHERE o.tag IN ('o', 'x')
"""

#: where a report file's rows may be picked before they are normalized: right after they
#: are numbered, so the few a second statement wants cost a read of the file, not a parse
_ONLY = "true /* only */"
_WANTED_ONLY = "(r.order_id = '' OR r.order_id IN (SELECT order_id FROM wanted))"

# -- loading the two sides ----------------------------------------------------------------

#: the columns of each side loaded from Python rows (the compact rows, numbered)
_SCHEMAS = {
    "orders": "pos BIGINT, order_id VARCHAR, amount BIGINT, currency VARCHAR, status VARCHAR,"
    " created DOUBLE, refunded BIGINT",
    "records": "seq BIGINT, order_id VARCHAR, kind VARCHAR, status VARCHAR, amount BIGINT,"
    " currency VARCHAR, fee BIGINT, net BIGINT, record_id VARCHAR, payment_id VARCHAR, ts DOUBLE",
}


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:  # pragma: no cover - a dependency of paygate-payments
        raise ValidationError(
            "reconciliation runs on DuckDB: pip install 'duckdb>=1.3' (a dependency of "
            "paygate-payments)"
        ) from None
    return duckdb


#: DuckDB's memory bound for one run (``PAYGATE_RECONCILE_MEMORY_LIMIT`` overrides it):
#: past it the joins and aggregations spill to a temporary directory instead of growing
MEMORY_LIMIT = "1GB"


def _connect() -> Any:
    con = _duckdb().connect(":memory:")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = false")
    # one thread: the engine's goal is CPU time and memory, and a second thread costs both
    # (hash tables per thread, coordination) for a shorter wall time only on an idle machine
    con.execute("SET threads = 1")
    limit = os.environ.get("PAYGATE_RECONCILE_MEMORY_LIMIT") or MEMORY_LIMIT
    con.execute(f"SET memory_limit = {sql_text(limit)}")
    con.execute(f"SET temp_directory = {sql_text(tempfile.gettempdir())}")
    return con


def _case(expression: str, values: dict[str, str], default: str = "NULL") -> str:
    """``expression`` looked up among the known words (``values``: word -> value);
    ``default`` when it is not one of them. The lookup is a cast to an ``ENUM`` of the
    words (a hash lookup, exact and case-sensitive: NULL for any other text) whose code
    indexes a list of the values: per row, a third of a ``MAP`` literal's cost (which
    compares the words one by one), and cheaper than a join or a long ``CASE``."""
    words = ", ".join(sql_text(k) for k in values)
    found = ", ".join(sql_text(v) for v in values.values())
    looked_up = f"[{found}][enum_code(TRY_CAST({expression} AS ENUM({words}))) + 1]"
    return looked_up if default == "NULL" else f"coalesce({looked_up}, {default})"


#: a currency's text -> its exponent (NULL for an unknown code): three ASCII letters
#: (``strlen`` counts bytes, so three bytes that upper-case to a known code are three
#: letters, as ``[A-Za-z]{3}`` would check) looked up upper-cased, as the Python readers do
#: (see `_case`). ``{t}`` is the text.
_EXPONENT_OF = (
    "CASE WHEN strlen({t}) = 3 THEN ["
    + ", ".join(str(e) for e in EXPONENTS.values())
    + "][enum_code(TRY_CAST(upper({t}) AS ENUM("
    + ", ".join(sql_text(c) for c in EXPONENTS)
    + "))) + 1] END"
)


def _load_table(con: Any, name: str, columns: str, rows: Any) -> None:
    """Create ``name`` from Python row tuples, ``BATCH_ROWS`` at a time: as Arrow record
    batches when pyarrow is installed (the ``reconcile`` extra), else as lists that DuckDB
    unnests (about twice the CPU, the same table)."""
    con.execute(f"CREATE TABLE {name} ({columns})")
    schema = [column.split() for column in columns.split(", ")]
    try:
        import pyarrow as pa
    except ImportError:
        pa = None
    arrow_errors: tuple[type[Exception], ...] = () if pa is None else (pa.ArrowInvalid,)
    if pa is not None:
        types = {"BIGINT": pa.int64(), "VARCHAR": pa.string(), "DOUBLE": pa.float64()}
        arrow_schema = pa.schema([(c, types[t]) for c, t in schema])
    else:
        unnest = ", ".join(f"unnest(${i}::{t}[])" for i, (_, t) in enumerate(schema, 1))
    batch: list[tuple[Any, ...]] = []

    def flush() -> None:
        values = [list(column) for column in zip(*batch, strict=True)]
        if pa is None:
            con.execute(f"INSERT INTO {name} SELECT {unnest}", values)
        else:
            pairs = zip(values, schema, strict=True)
            arrays = [pa.array(col, type=types[t]) for col, (_, t) in pairs]
            chunk = pa.RecordBatch.from_arrays(arrays, schema=arrow_schema)  # noqa: F841
            con.execute(f"INSERT INTO {name} SELECT * FROM chunk")
        batch.clear()

    try:
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                flush()
        if batch:
            flush()
    except (OverflowError, _duckdb().ConversionException, *arrow_errors) as exc:
        if not any(word in str(exc) for word in ("too large", "too big", "out of range")):
            raise
        raise ValidationError(
            f"an amount, fee or net in {name.removesuffix('_in')} does not fit in 64 bits of "
            "minor units (BIGINT): the engine cannot hold it"
        ) from None


def _read_file(reader: Any, columns: dict[str, str | None], aliases: dict[str, str]) -> Any:
    """``(read, select)``: DuckDB's ``read_csv`` of the reader's file (every column as
    text) and the select list naming the columns by ``aliases`` (role -> alias, "" for a
    column the file lacks); None when the Python parser must read it (not a plain file, a
    header DuckDB cannot be told)."""
    source = reader.source
    if isinstance(source, (str, Path)):
        path: str | None = str(source)
    else:  # an open file: DuckDB reads it by its name
        name = getattr(source, "name", None)
        path = name if isinstance(name, str) and not getattr(source, "closed", True) else None
    if path is None or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
    header = next(csv_rows(iter([first])), []) if first and '"' not in first else []
    if not header:
        return None
    try:
        pos = header_index(header, columns, name=path, what=reader.what)
    except ValidationError:
        return None
    types = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(header))) + "}"
    select = ", ".join(
        ("''" if pos[role] is None else f"coalesce(c{pos[role]}, '')") + f" AS {alias}"
        for role, alias in aliases.items()
    )
    return _READ_CSV.format(path=sql_text(path), columns=types), select


def _orders_from_csv(reader: OrdersCSV, want_time: bool) -> str | None:
    """The query that reads an `OrdersCSV` file with DuckDB's reader and normalizes it (a
    ``bad`` column flags the rows the SQL does not accept); None when the Python parser
    must read it."""
    aliases = {
        "order_id": "order_id",
        "currency": "currency",
        "amount": "amount_text",
        "status": "status_text",
        "created_at": "created_text",
        "refunded": "refunded_text",
    }
    found = _read_file(reader, {k: (v or None) for k, v in reader.columns.items()}, aliases)
    if found is None:
        return None
    unit = _MAJOR if reader.amount_unit == "major" else _MINOR
    words = {w: str(s) for w, s in reader.status_words.items()}
    return _ORDERS_CSV_SQL.format(
        read=found[0],
        select=found[1],
        default=sql_text(reader.default_currency or ""),
        exponent=_EXPONENT_OF.format(t="c.currency_text"),
        status_of=_case("c.status_text", words),
        lower_status_of=_case("lower(c.status_text)", words),
        amount=unit.format(t="x.amount_text", e="x.exponent"),
        refunded=unit.format(t="x.refunded_text", e="x.exponent"),
        created=_TIME.format(t="x.created_text"),
        want_time="true" if want_time else "false",
    )


def _records_from_csv(reader: StripeReportCSV, want_time: bool) -> str | None:
    """The query that reads a `StripeReportCSV` file (see `_orders_from_csv`)."""
    aliases = {
        "order_id": "order_id",
        "category": "category",
        "currency": "currency_text",
        "gross": "gross_text",
        "fee": "fee_text",
        "net": "net_text",
        "record_id": "record_id",
        "payment_intent_id": "pi",
        "charge_id": "ch",
        "source_id": "src",
        "created": "created_text",
    }
    found = _read_file(reader, dict(reader.columns), aliases)
    if found is None:
        return None
    kinds = {c: str(k) for c, (k, _) in REPORTING_CATEGORIES.items()}
    return _STRIPE_CSV_SQL.format(
        read=found[0],
        select=found[1],
        exponent=_EXPONENT_OF.format(t="r.currency_text"),
        kind_of=_case("a.category", kinds, "'other'"),
        gross=_MAJOR.format(t="c.gross_text", e="c.exponent"),
        fee=_MAJOR.format(t="c.fee_text", e="c.exponent"),
        net=_MAJOR.format(t="c.net_text", e="c.exponent"),
        created=_TIME.format(t="c.created_text"),
        want_time="true" if want_time else "false",
        only=_ONLY,
    )


#: per side: the reader whose file DuckDB reads itself, and the query that reads it
_IN_SQL: dict[str, tuple[type, Callable[[Any, bool], str | None]]] = {
    "orders": (OrdersCSV, _orders_from_csv),
    "records": (StripeReportCSV, _records_from_csv),
}

#: a side read in SQL, without the rows the SQL did not accept, and with those of them the
#: Python parser accepts (``{fix}``, from `_recheck`)
_FIXED_SQL = (
    "SELECT * FROM ({sql}) WHERE NOT bad UNION ALL BY NAME SELECT *, false AS bad FROM {fix}"
)


def _bad_positions(con: Any, sql: str, column: str) -> list[int]:
    """The positions of the rows of a side read in SQL that the SQL does not accept: a
    read of its file again, only when it has any (carrying them out of the run's
    statement cost more memory than this costs time); none for a file DuckDB cannot read
    (the Python parser then reads it)."""
    try:
        found = con.execute(f"SELECT {column} FROM ({sql}) WHERE bad ORDER BY {column}")
    except _duckdb().Error:
        return []
    return [row[0] for row in found.fetchall()]


def _without_bad(con: Any, sql: str, side: str, fix_rows: list[tuple[Any, ...]]) -> str:
    """``sql`` (a side read in SQL) without its bad rows, and with ``fix_rows`` (the rows
    of them the Python parser accepts, loaded into ``<side>_fix``) when there are any."""
    if not fix_rows:
        return f"SELECT * FROM ({sql}) WHERE NOT bad"
    _load_table(con, f"{side}_fix", _SCHEMAS[side], fix_rows)
    return _FIXED_SQL.format(sql=sql, fix=f"{side}_fix")


def _recheck(
    reader: Any, positions: list[int], rows_read: int, with_time: bool
) -> tuple[list[BadRow], list[tuple[Any, ...]]] | None:
    """The reader's own Python parser on the rows of its file the SQL did not accept
    (``positions``, 0-based among the file's rows): ``(bad rows, rows)``, the bad rows
    with their file, line and message exactly as the Python path reports them, the rows
    it accepts (a shape the SQL leaves to Python) positioned as the SQL's. The file is
    split into rows (`csv_rows`, cheap) but only those rows are parsed, so a few bad rows
    cost a scan of the file, not a parse of it in Python. None when the Python path must
    read the whole file: a reader that raises on a bad row (its first error must come
    where the Python path meets it), or a file whose rows DuckDB counted otherwise.
    """
    if not getattr(reader, "skip_bad_rows", False) or not positions:
        return None
    handle, name, owned = reader._open()
    try:
        lines = csv_rows(handle)
        header = next(lines, None)
        pos = reader._layout(header, name)
        assert header is not None
        if isinstance(reader, StripeReportCSV):
            parse_row = reader._row_parser(pos, len(header), with_time, AmountCache())
        else:
            parse_row = reader._row_parser(pos, len(header), with_time)
        wanted = iter(sorted(positions))
        target = next(wanted)
        bad: list[BadRow] = []
        fixed: list[tuple[Any, ...]] = []
        index = -1
        for row in lines:
            if not row:
                continue  # a blank line, as the Python path skips them
            index += 1
            if index != target:
                continue
            try:
                parsed = parse_row(row)
            except ValidationError as exc:
                bad.append(BadRow(name, lines.line_num, describe(exc)))
            else:
                # the enum values as text, where the loaded rows have them
                values = list(parsed)
                for at in (1, 2) if isinstance(reader, StripeReportCSV) else (3,):
                    values[at] = str(values[at])
                fixed.append((index, *values))
            target = next(wanted, -1)
        if index + 1 != rows_read or target != -1:
            return None
    finally:
        if owned:
            handle.close()
    return bad, fixed


def _order_rows(
    internal: Any, want_time: bool, duplicates_fail: Window | None
) -> Iterator[tuple[Any, ...]]:
    """Positioned order rows from any source; with ``duplicates_fail`` (the window), a
    duplicate raises where the engine met it, before any later bad row."""
    seen: set[str] = set()
    windowed, lo, hi, _ = duplicates_fail or (False, 0.0, 0.0, None)
    rows = rows_of(internal, want_time, OrderRecord)
    for pos, (order_id, amount, currency, status, created, refunded) in enumerate(rows):
        if duplicates_fail is not None and not (
            windowed and created is not None and not (lo <= created < hi)
        ):
            if order_id in seen:
                raise ValidationError(f"order {order_id!r} appears twice on the internal side")
            seen.add(order_id)
        yield (pos, order_id, amount, currency, str(status), created, refunded)


def _record_rows(provider: Any, with_time: bool) -> Iterator[tuple[Any, ...]]:
    for seq, row in enumerate(rows_of(provider, with_time, ProviderRecord)):
        order_id, kind, status, amount, currency, fee, net, record_id, payment_id, ts = row
        yield (seq, order_id, str(kind), str(status), amount, currency, fee, net,
               record_id, payment_id, ts)  # fmt: skip


# -- the engine -----------------------------------------------------------------------------


def reconcile(
    internal: Iterable[OrderRecord] | Any,
    provider: Iterable[ProviderRecord] | Any,
    *,
    policy: Policy | None = None,
    now: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    run_id: str | None = None,
    provider_name: str | None = None,
    skip_bad_rows: bool = False,
    progress: Progress | None = None,
    apply: bool = False,
    gateway: Any = None,
    on_action: Callable[[ReconciliationLine], Any] | None = None,
) -> ReconciliationReport:
    """Compare the shop's orders with a provider's records, order by order.

    ``internal`` is an iterable of [`OrderRecord`][paygate.reconcile.OrderRecord] (or a reader such
    as `OrdersCSV` / `orders_from_store`); ``provider`` an iterable of
    [`ProviderRecord`][paygate.reconcile.ProviderRecord] (or a provider reader). Both are read
    once, into DuckDB (an `OrdersCSV` or `StripeReportCSV` over a file is read by DuckDB
    itself), and classified in SQL. ``progress(side, rows)`` hears once per side, when it is
    loaded.

    ``now`` (timezone-aware) is when the run happens: orders created less than
    ``policy.grace`` before it and without a provider record are ``awaiting``, not
    ``missing``. Without ``now`` there is no grace. ``since``/``until`` keep only orders
    created, and records dated, in ``[since, until)`` (rows without a date are kept).

    Dry-run by default. ``apply=True`` carries out the proposed actions through
    ``gateway`` (a [`paygate.Gateway`][paygate.gateway.Gateway]): refunds with idempotency keys
    derived from ``run_id`` and the order, so re-running the same run never refunds twice; non-money
    actions (mark paid, cancel, record) go to ``on_action(line)`` when given. Each action is
    recorded in ``gateway.store``; re-running the same ``run_id`` skips what it already did
    (``already_done``) and retries what failed or never finished
    ([`paygate.reconcile.applied_actions`][paygate.reconcile.applied_actions] reads the records
    back).
    """
    report, window = begin(
        provider, policy, now, since, until, run_id, provider_name, apply, gateway
    )
    windowed, lo, hi, recent_after = window

    def num(value: float | None) -> str:
        if value is None:
            return "NULL::DOUBLE"
        if value in (float("inf"), float("-inf")):
            return f"'{'-' if value < 0 else ''}inf'::DOUBLE"
        return f"{value!r}::DOUBLE"

    sql_window = {
        "windowed": "true" if windowed else "false",
        "lo": num(lo),
        "hi": num(hi),
        "recent_after": num(recent_after),
    }
    # per side: its source, and whether the dates of its rows matter
    sides: dict[str, tuple[Any, bool]] = {
        "orders": (internal, windowed or recent_after is not None),
        "records": (provider, windowed),
    }
    con = _connect()
    try:

        def load(side: str) -> str:
            source, with_time = sides[side]
            if side == "orders":
                eager = None if skip_bad_rows else window
                rows = _order_rows(source, with_time, eager)
            else:
                rows = _record_rows(source, with_time)
            _load_table(con, f"{side}_in", _SCHEMAS[side], rows)
            return f"SELECT *, false AS bad FROM {side}_in"

        # -- 1. one statement: the files in SQL when they can be, else loaded rows --------
        sql: dict[str, str] = {}
        for side, (source, with_time) in sides.items():
            reader, from_csv = _IN_SQL[side]
            sql[side] = (from_csv(source, with_time) if type(source) is reader else None) or load(
                side
            )
        rows: list[tuple[Any, ...]] = []
        bad: dict[str, list[BadRow]] = {"orders": [], "records": []}
        for attempt in range(3):
            try:
                con.execute(
                    "CREATE OR REPLACE TEMP TABLE run AS "
                    + _RUN_SQL.format(orders=sql["orders"], records=sql["records"], **sql_window)
                )
                rows = con.execute(
                    "SELECT tag, i1, i2, i3, i4, h1, h2, s1 FROM run WHERE tag NOT IN ('o', 'x')"
                ).fetchall()
            except _duckdb().Error:
                if attempt == 2 or all(f"{side}_in" in sql[side] for side in sides):
                    raise
                rows = [("n", 1, 1, 0, 0)]  # a file DuckDB cannot read: Python reads both
            counts = next(r for r in rows if r[0] == "n")
            # a side with bad rows is read again (by Python, or in SQL with the rows the
            # Python parser accepts of those the SQL flagged); the run left the bad rows
            # out, so when `_recheck` found only bad rows its figures stand
            again = False
            for at, (side, (source, with_time)) in enumerate(sides.items()):
                if counts[1 + at] and f"{side}_in" not in sql[side]:
                    key = _SCHEMAS[side].split()[0]  # the first column numbers the rows
                    positions = _bad_positions(con, sql[side], key)
                    fixed = _recheck(source, positions, counts[3 + at], with_time)
                    if fixed is None:
                        sql[side], again = load(side), True
                    else:
                        bad[side], fix_rows = fixed
                        sql[side] = _without_bad(con, sql[side], side, fix_rows)
                        again = again or bool(fix_rows)
                dups = [(r[1], r[7]) for r in rows if r[0] == "d"] if side == "orders" else []
                # the orders' first error (a bad row, a duplicate) comes before the records'
                if dups and not skip_bad_rows and not again:
                    _, order_id = min(dups)
                    raise ValidationError(f"order {order_id!r} appears twice on the internal side")
            if not again:
                break
        for side, (source, _) in sides.items():
            if f"{side}_in" not in sql[side]:  # read in SQL: the bad rows `_recheck` found
                source.bad_rows = bad[side]
        _, bad_orders, bad_records, n_orders, n_records, *_ = counts  # the last run's
        report.orders_read, report.records_read = n_orders - bad_orders, n_records - bad_records
        if progress is not None:
            progress("orders", report.orders_read)
            progress("records", report.records_read)
        for _, order_id in sorted((r[1], r[7]) for r in rows if r[0] == "d"):
            report.bad_rows.append(
                BadRow("<orders>", 0, f"order {order_id!r} appears twice on the internal side")
            )
        for source, _ in sides.values():
            report.bad_rows.extend(getattr(source, "bad_rows", ()))

        # -- 2. the records of the orders with more than a clean match, and the orphans' --
        con.execute(_WANTED_SQL)
        con.execute(
            "CREATE TEMP TABLE pg_rec AS "
            + _DETAILS_SQL.format(records=sql["records"].replace(_ONLY, _WANTED_ONLY), **sql_window)
        )
        # -- 3. their lines, by the rules reconcile_in_postgres runs too ----------------------
        con.execute(_JOINED_SQL)
        lines, quiet, orphans = classify(con, postgres=False)
    finally:
        con.close()
    fast = [
        (r[7], r[1], r[5]) for r in sorted((r for r in rows if r[0] == "m"), key=lambda r: r[2])
    ]
    (awaiting, not_charged) = next((r[1] or 0, r[2] or 0) for r in rows if r[0] == "q")
    quiet = (quiet[0] + awaiting, quiet[1] + not_charged, *quiet[2:])
    fees = [(r[7], r[5], r[6], r[1], r[2]) for r in rows if r[0] == "f"]
    fill(report, fast, lines, quiet, orphans, fees)
    return end(report, gateway if apply else None, run_id, on_action)
