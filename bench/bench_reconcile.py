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

pandas is the ``bench`` extra (``pip install -e '.[bench]'``); without it only paygate runs.
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
    counts = run_pandas(orders, report) if variant == "pandas" else run_paygate(orders, report)
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


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], argv[3])
        return 0
    no_pyarrow = "--no-pyarrow" in argv
    argv = [arg for arg in argv if arg != "--no-pyarrow"]
    argv, rounds = _option(argv, "--rounds", 3)
    n = int(argv[0]) if argv else 1_000_000
    ours_name = "paygate-python" if no_pyarrow else "paygate"
    try:
        import pyarrow

        reader = "pure Python" if no_pyarrow else f"pyarrow {pyarrow.__version__}"
        print(f"paygate CSV reader: {reader}")
    except ImportError:
        print("paygate CSV reader: pure Python (pyarrow not installed)")
    try:
        import pandas

        print(f"pandas {pandas.__version__}")
        variants = [ours_name, "pandas"]
    except ImportError:
        print("pandas not installed (pip install -e '.[bench]'): paygate only")
        variants = [ours_name]
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        orders, report = generate(Path(tmp), n)
        print(
            f"generated {n:,} orders and {n:,} provider rows in "
            f"{time.perf_counter() - start:.1f}s "
            f"({orders.stat().st_size / 1e6:.0f} MB + {report.stat().st_size / 1e6:.0f} MB)"
        )
        print(f"{'round':<6} {'variant':<15} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}")
        for number in range(1, rounds + 1):
            for variant in variants:
                result = measure(variant, orders, report)
                if result is None:
                    return 1
                runs[variant].append(result)
                print(
                    f"{number:<6} {variant:<15} {result['wall']:>8.2f} {result['cpu']:>8.2f} "
                    f"{result['peak_mb']:>12.0f}"
                )
    ours, theirs = runs[ours_name], runs.get("pandas")
    if theirs:
        time_ratios = [a["wall"] / b["wall"] for a, b in zip(ours, theirs, strict=True)]
        cpu_ratios = [a["cpu"] / b["cpu"] for a, b in zip(ours, theirs, strict=True)]
        memory_ratios = [a["peak_mb"] / b["peak_mb"] for a, b in zip(ours, theirs, strict=True)]
        print(
            f"ratio paygate/pandas per round: time {_figures(time_ratios)}; "
            f"CPU {_figures(cpu_ratios)}; peak memory {_figures(memory_ratios)}"
        )
        print(
            f"median of {rounds} rounds: time {statistics.median(time_ratios):.2f}x "
            f"(target <= 1.0x), CPU {statistics.median(cpu_ratios):.2f}x, "
            f"peak memory {statistics.median(memory_ratios):.2f}x (target <= 0.5x)"
        )
        same = all(a["counts"] == b["counts"] for a, b in zip(ours, theirs, strict=True))
        print(f"counts per case agree: {'yes' if same else 'NO'}")
        if not same:
            print(f"  paygate: {ours[-1]['counts']}\n  pandas:  {theirs[-1]['counts']}")
    print(f"paygate counts: {ours[-1]['counts']}")
    return 0


def _figures(ratios: list[float]) -> str:
    return " ".join(f"{r:.2f}x" for r in ratios)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
