"""Reconciliation at scale: paygate's streaming engine vs pandas read_csv + outer merge.

Generates N internal orders (orders CSV) and N provider rows (a Stripe itemized balance
report CSV) with about 1% discrepancies of every kind, then runs each variant in its own
subprocess and prints wall time, CPU time (user + sys of all its threads, which the
machine's load stretches far less than wall time), peak RSS (``getrusage`` of that
subprocess) and the ratios side by side. Both variants must find the same counts per case.

    python bench/bench_reconcile.py            # N = 1,000,000, 3 rounds
    python bench/bench_reconcile.py 100000     # a quicker run
    python bench/bench_reconcile.py --rounds 5

The variants run alternately, ``--rounds`` times (default 3): on a shared machine the load
drifts during a run, and alternating pairs plus the median of the per-round ratios keep
that drift from landing on one variant only. Every round is printed.

pandas and polars (hand-written anchors) are the ``bench`` dependency group
(``pip install --group bench``, as ``nox -s bench`` does); without them they are skipped.
paygate reads the CSVs with pyarrow when the ``reconcile`` extra is installed, else with
its pure-Python reader; ``--no-pyarrow`` forces the latter (as if pyarrow were absent).
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STRIPE_HEADER = (
    "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
    "source_id,charge_id,payment_intent_id,payment_metadata[order_id]\n"
)


def generate(directory: Path, n: int, seed: int = 7) -> tuple[Path, Path]:
    """N orders and N provider rows; discrepancies at fixed rates, deterministic."""
    rng = random.Random(seed)
    orders_path = directory / "orders.csv"
    report_path = directory / "stripe_report.csv"
    with orders_path.open("w") as orders, report_path.open("w") as report:
        orders.write("order_id,amount,currency,status\n")
        report.write(STRIPE_HEADER)
        rows = 0
        i = 0
        while rows < n:
            i += 1
            order_id = f"ord_{i:08d}"
            cents = rng.randrange(100, 50_000)
            roll = rng.random()
            status = "pending" if 0.990 <= roll < 0.993 else "paid"
            orders.write(f"{order_id},{cents // 100}.{cents % 100:02d},USD,{status}\n")
            if 0.993 <= roll < 0.995:
                continue  # missing: no provider row
            charged = cents + 50 if 0.995 <= roll < 0.997 else cents  # amount mismatch
            times = 2 if 0.997 <= roll < 0.998 else 1  # double charge
            for t in range(times):
                fee = charged * 29 // 1000 + 30
                net = charged - fee
                txn = f"txn_{i:08d}_{t}"
                report.write(
                    f"{txn},2026-11-01 10:00:00,usd,{_major(charged)},{_major(fee)},"
                    f"{_major(net)},charge,ch_{i}_{t},ch_{i}_{t},pi_{i}_{t},{order_id}\n"
                )
                rows += 1
            if 0.998 <= roll < 0.999 and rows < n:  # a refund the books do not know
                report.write(
                    f"txn_{i:08d}_r,2026-11-02 10:00:00,usd,-{_major(charged)},0.00,"
                    f"-{_major(charged)},refund,re_{i},ch_{i}_0,pi_{i}_0,{order_id}\n"
                )
                rows += 1
            if roll >= 0.999 and rows < n:  # an orphan
                report.write(
                    f"txn_x{i:08d},2026-11-01 10:00:00,usd,5.00,0.45,4.55,charge,"
                    f"ch_x{i},ch_x{i},pi_x{i},ord_x{i:08d}\n"
                )
                rows += 1
    return orders_path, report_path


def _major(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def run_paygate(orders: str, report: str) -> dict[str, int]:
    from paygate.reconcile import OrdersCSV, StripeReportCSV, reconcile

    result = reconcile(OrdersCSV(orders), StripeReportCSV(report))
    return {str(case): n for case, n in result.counts.items()}


def run_paygate_old(orders: str, report: str) -> dict[str, int]:
    """The hand-written pure-Python/pyarrow engine the DuckDB one replaces (while it exists)."""
    from paygate.reconcile import OrdersCSV, StripeReportCSV
    from paygate.reconcile._engine import reconcile as old_reconcile

    result = old_reconcile(OrdersCSV(orders), StripeReportCSV(report))
    return {str(case): n for case, n in result.counts.items()}


def run_paygate_duckdb(orders: str, report: str) -> dict[str, int]:
    """paygate's DuckDB engine, called by name (whichever engine `reconcile` is)."""
    from paygate.reconcile import OrdersCSV, StripeReportCSV
    from paygate.reconcile._duck import reconcile as duck_reconcile

    result = duck_reconcile(OrdersCSV(orders), StripeReportCSV(report))
    return {str(case): n for case, n in result.counts.items()}


#: the hand-written DuckDB query: what a data engineer writes for the same classification
#: as ``run_pandas`` (the anchor of issue 21)
DUCKDB_SQL = """
WITH books AS (
    SELECT order_id, CAST(round(amount * 100) AS BIGINT) AS amount_minor, status
    FROM read_csv(?, header = true,
        columns = {'order_id': 'VARCHAR', 'amount': 'DOUBLE', 'currency': 'VARCHAR',
                   'status': 'VARCHAR'})
), prov AS (
    SELECT "payment_metadata[order_id]" AS order_id, reporting_category AS cat,
        CAST(round(abs(gross) * 100) AS BIGINT) AS minor
    FROM read_csv(?, header = true, auto_detect = true,
        types = {'gross': 'DOUBLE', 'payment_metadata[order_id]': 'VARCHAR',
                 'reporting_category': 'VARCHAR'})
), per_order AS (
    SELECT order_id, count(*) FILTER (WHERE cat = 'charge') AS n,
        min(minor) FILTER (WHERE cat = 'charge') AS first,
        coalesce(sum(minor) FILTER (WHERE cat = 'refund'), 0) AS refunded
    FROM prov WHERE cat IN ('charge', 'refund') GROUP BY order_id
)
SELECT CASE
    WHEN b.order_id IS NULL THEN 'orphan'
    WHEN p.order_id IS NULL AND b.status = 'paid' THEN 'missing'
    WHEN p.order_id IS NULL THEN 'not_charged'
    WHEN b.status <> 'paid' AND p.n > 0 THEN 'unpaid_order_charged'
    WHEN b.status = 'paid' AND p.n >= 2 THEN 'double_charge'
    WHEN b.status = 'paid' AND p.n = 1 AND p.first <> b.amount_minor THEN 'amount_mismatch'
    WHEN p.refunded > 0 THEN 'unknown_refund'
    ELSE 'matched' END AS case_, count(*)
FROM books b FULL JOIN per_order p ON p.order_id = b.order_id
GROUP BY case_
"""


def run_duckdb_sql(orders: str, report: str) -> dict[str, int]:
    import duckdb

    rows = duckdb.connect().execute(DUCKDB_SQL, [orders, report]).fetchall()
    return {str(case): int(n) for case, n in rows}


def run_polars(orders: str, report: str) -> dict[str, int]:
    """The hand-written polars lazy query (``scan_csv``, join, ``when``), same classification."""
    import polars as pl

    books = pl.scan_csv(
        orders, schema_overrides={"order_id": pl.Utf8, "amount": pl.Float64, "status": pl.Utf8}
    ).select(
        "order_id", (pl.col("amount") * 100).round().cast(pl.Int64).alias("amount_minor"), "status"
    )
    prov = (
        pl.scan_csv(
            report,
            schema_overrides={
                "payment_metadata[order_id]": pl.Utf8,
                "reporting_category": pl.Utf8,
                "gross": pl.Float64,
            },
        )
        .select(
            pl.col("payment_metadata[order_id]").alias("order_id"),
            pl.col("reporting_category").alias("cat"),
            (pl.col("gross").abs() * 100).round().cast(pl.Int64).alias("minor"),
        )
        .filter(pl.col("cat").is_in(["charge", "refund"]))
    )
    charge = pl.col("cat") == "charge"
    per_order = prov.group_by("order_id").agg(
        charge.sum().alias("n"),
        pl.col("minor").filter(charge).min().alias("first"),
        pl.col("minor").filter(pl.col("cat") == "refund").sum().alias("refunded"),
    )
    joined = books.join(per_order, on="order_id", how="full", coalesce=False, suffix="_p")
    no_book, no_prov = pl.col("order_id").is_null(), pl.col("order_id_p").is_null()
    paid = pl.col("status") == "paid"
    case = (
        pl.when(no_book).then(pl.lit("orphan"))
        .when(no_prov & paid).then(pl.lit("missing"))
        .when(no_prov).then(pl.lit("not_charged"))
        .when(~paid & (pl.col("n") > 0)).then(pl.lit("unpaid_order_charged"))
        .when(paid & (pl.col("n") >= 2)).then(pl.lit("double_charge"))
        .when(paid & (pl.col("n") == 1) & (pl.col("first") != pl.col("amount_minor")))
        .then(pl.lit("amount_mismatch"))
        .when(pl.col("refunded") > 0).then(pl.lit("unknown_refund"))
        .otherwise(pl.lit("matched"))
    )  # fmt: skip
    counts = joined.select(case.alias("case")).group_by("case").len().collect()
    return {str(c): int(n) for c, n in counts.iter_rows()}


RUNNERS = {
    "paygate": run_paygate,
    "paygate-python": run_paygate,
    "paygate-old": run_paygate_old,
    "paygate-duckdb": run_paygate_duckdb,
    "duckdb-sql": run_duckdb_sql,
    "polars": run_polars,
}


def run_pandas(orders: str, report: str) -> dict[str, int]:
    """The obvious alternative: two read_csv, an outer merge, vectorized classification."""
    import numpy as np
    import pandas as pd

    books = pd.read_csv(orders, dtype={"order_id": str, "status": str, "currency": str})
    prov = pd.read_csv(
        report,
        usecols=["reporting_category", "gross", "currency", "payment_metadata[order_id]"],
        dtype={"payment_metadata[order_id]": str, "reporting_category": str},
    ).rename(columns={"payment_metadata[order_id]": "order_id"})
    books["amount_minor"] = (books["amount"] * 100).round().astype("int64")
    prov["minor"] = (prov["gross"].abs() * 100).round().astype("int64")
    charges = prov[prov["reporting_category"] == "charge"]
    refunds = prov[prov["reporting_category"] == "refund"]
    paid = charges.groupby("order_id").agg(n=("minor", "size"), first=("minor", "first"))
    refunded = refunds.groupby("order_id").agg(refunded=("minor", "sum"))
    per_order = paid.join(refunded, how="outer").reset_index()
    merged = books.merge(per_order, on="order_id", how="outer", indicator=True)
    n = merged["n"].fillna(0)
    is_paid = merged["status"] == "paid"
    both = merged["_merge"] == "both"
    refunded_amount = merged["refunded"].fillna(0)
    conditions = [
        merged["_merge"] == "right_only",
        (merged["_merge"] == "left_only") & is_paid,
        (merged["_merge"] == "left_only") & ~is_paid,
        both & ~is_paid & (n > 0),
        both & is_paid & (n >= 2),
        both & is_paid & (n == 1) & (merged["first"] != merged["amount_minor"]),
        both & (refunded_amount > 0),
    ]
    choices = [
        "orphan",
        "missing",
        "not_charged",
        "unpaid_order_charged",
        "double_charge",
        "amount_mismatch",
        "unknown_refund",
    ]
    merged["case"] = np.select(conditions, choices, default="matched")
    counts = merged["case"].value_counts()
    return {str(case): int(count) for case, count in counts.items()}


def child(variant: str, orders: str, report: str) -> None:
    if variant == "paygate-python":
        sys.modules["pyarrow"] = None  # type: ignore[assignment]  # `import pyarrow` fails
    start = time.perf_counter()
    counts = run_pandas(orders, report) if variant == "pandas" else RUNNERS[variant](orders, report)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process: all its threads
    cpu = usage.ru_utime + usage.ru_stime  # user + sys: what the load does not stretch
    peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_mb": peak_mb, "counts": counts}))


def measure(variant: str, orders: Path, report: Path) -> dict[str, Any] | None:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", variant, str(orders), str(report)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(f"{variant}: failed\n{proc.stderr.strip()[-2000:]}")
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _option(argv: list[str], name: str, default: int) -> tuple[list[str], int]:
    if name not in argv:
        return argv, default
    at = argv.index(name)
    return argv[:at] + argv[at + 2 :], int(argv[at + 1])


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


#: the hand-written anchors and the module each needs
ANCHORS = {"duckdb-sql": "duckdb", "polars": "polars", "pandas": "pandas"}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], argv[3])
        return 0
    no_pyarrow = "--no-pyarrow" in argv
    argv = [arg for arg in argv if arg != "--no-pyarrow"]
    argv, rounds = _option(argv, "--rounds", 3)
    chosen: list[str] | None = None
    if "--variants" in argv:
        at = argv.index("--variants")
        chosen = argv[at + 1].split(",")
        argv = argv[:at] + argv[at + 2 :]
    n = int(argv[0]) if argv else 1_000_000
    ours_name = "paygate-python" if no_pyarrow else "paygate"
    if chosen is None:
        chosen = [ours_name]
        if _importable("paygate.reconcile._engine"):
            chosen += ["paygate-old", "paygate-duckdb"]
        chosen += [name for name, module in ANCHORS.items() if _importable(module)]
    variants = chosen
    ours = [v for v in variants if v.startswith("paygate")]
    anchors = [v for v in variants if v in ANCHORS]
    print(f"variants: {', '.join(variants)}")
    print(f"load average at start: {_load()}")
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        orders, report = generate(Path(tmp), n)
        print(
            f"generated {n:,} orders and {n:,} provider rows in "
            f"{time.perf_counter() - start:.1f}s "
            f"({orders.stat().st_size / 1e6:.0f} MB + {report.stat().st_size / 1e6:.0f} MB)"
        )
        print(
            f"{'round':<6} {'variant':<15} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}"
            "  load (1, 5, 15 min)"
        )
        for number in range(1, rounds + 1):
            for variant in variants:
                result = measure(variant, orders, report)
                if result is None:
                    return 1
                runs[variant].append(result)
                print(
                    f"{number:<6} {variant:<15} {result['wall']:>8.2f} {result['cpu']:>8.2f} "
                    f"{result['peak_mb']:>12.0f}  {_load()}"
                )
    for mine in ours:
        for anchor in anchors:
            pairs = list(zip(runs[mine], runs[anchor], strict=True))
            cpu = [a["cpu"] / b["cpu"] for a, b in pairs]
            wall = [a["wall"] / b["wall"] for a, b in pairs]
            memory = [a["peak_mb"] / b["peak_mb"] for a, b in pairs]
            print(
                f"{mine} / {anchor}: median of {rounds} rounds: CPU "
                f"{statistics.median(cpu):.2f}x, peak memory {statistics.median(memory):.2f}x, "
                f"wall {statistics.median(wall):.2f}x (goal <= 1.0x CPU and memory); "
                f"per round CPU {_figures(cpu)}, memory {_figures(memory)}"
            )
    if "paygate-old" in runs and len(ours) > 1:
        for mine in ours:
            if mine == "paygate-old":
                continue
            pairs = list(zip(runs[mine], runs["paygate-old"], strict=True))
            cpu = [a["cpu"] / b["cpu"] for a, b in pairs]
            memory = [a["peak_mb"] / b["peak_mb"] for a, b in pairs]
            print(
                f"{mine} / paygate-old: median CPU {statistics.median(cpu):.2f}x, "
                f"peak memory {statistics.median(memory):.2f}x"
            )
    last = {v: runs[v][-1]["counts"] for v in variants}
    same = all(counts == last[variants[0]] for counts in last.values())
    print(f"counts per case agree across variants: {'yes' if same else 'NO'}")
    for variant, counts in last.items():
        if not same or variant == variants[0]:
            print(f"  {variant}: {dict(sorted(counts.items()))}")
    print(f"load average at end: {_load()}")
    return 0 if same else 1


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _figures(ratios: list[float]) -> str:
    return " ".join(f"{r:.2f}x" for r in ratios)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
