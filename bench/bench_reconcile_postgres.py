"""Reconciliation from a PostgreSQL store: the orders read into Python vs the SQL pushdown.

Fills a PostgresStore with N payments (one per order, COPY'd in) and writes a Stripe
itemized report of about N rows with ~1% discrepancies of every kind, then runs, each in
its own subprocess and alternately ``--rounds`` times:

- ``python``: ``reconcile(orders_from_store(store), StripeReportCSV(report))``, the store's
  payments read page by page into Python and joined by the embedded engine;
- ``postgres``: ``reconcile_in_postgres(store, StripeReportCSV(report))``, the records
  COPY'd into the database and classified there.

For each: wall time, CPU time of the Python process (user + sys), CPU time of the server
processes that served it (their ``/proc/PID/stat`` before and after; the backends are found
by their ``application_name``), peak RSS of the Python process, and the load average
beside them, and the peak RSS of the busiest server process (``VmHWM``, which counts the
shared buffers it touched). Both must find the same counts per case.

    PAYGATE_BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/bench \\
        python bench/bench_reconcile_postgres.py 200000 1000000 --rounds 3

The URL defaults to ``PAYGATE_TEST_POSTGRES_URL``; each run works in a schema of its own,
dropped at the end. The server must be on this machine (its processes' CPU is read).
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
import uuid
from pathlib import Path
from typing import Any

STRIPE_HEADER = (
    "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
    "source_id,charge_id,payment_intent_id,payment_metadata[order_id]\n"
)
VARIANTS = ("python", "postgres")
_TICKS = os.sysconf("SC_CLK_TCK")


def _major(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def generate(url: str, schema: str, report_path: Path, n: int, seed: int = 7) -> None:
    """N orders as payments in the store's schema, and the provider's report."""
    import psycopg

    from paygate import Money
    from paygate.models import Payment, PaymentStatus
    from paygate.state import PaymentState
    from paygate.stores import open_store
    from paygate.stores._records import PaymentRecord
    from paygate.stores._sql import PAYMENT_COLUMNS, payment_params

    open_store(f"{url}?schema={schema}").close()  # creates the schema and its tables
    # one row's parameters with markers, formatted per order (payment_params per row would
    # cost more than the rest of the generation)
    templates = {}
    for status in (PaymentStatus.SUCCEEDED, PaymentStatus.PENDING):
        payment = Payment("PID", "stripe", "OID", Money(123456789, "USD"), status)
        params = payment_params(
            PaymentRecord.build(payment, PaymentState(status, 123456789), updated_at=1.5e9)
        )
        templates[status] = [str(p) if p is not None else "\\N" for p in params]
    rng = random.Random(seed)
    payments_path = report_path.with_name("payments.tsv")
    with report_path.open("w") as report, payments_path.open("w") as buffer:
        report.write(STRIPE_HEADER)
        for i in range(1, n + 1):
            order_id = f"ord_{i:08d}"
            cents = rng.randrange(100, 50_000)
            roll = rng.random()
            status = (
                PaymentStatus.PENDING if 0.990 <= roll < 0.993 else PaymentStatus.SUCCEEDED
            )
            row = "\t".join(templates[status])
            row = row.replace("PID", f"pi_{i}").replace("OID", order_id)
            buffer.write(row.replace("123456789", str(cents)) + "\n")
            if 0.993 <= roll < 0.995:
                continue  # missing: no provider row
            charged = cents + 50 if 0.995 <= roll < 0.997 else cents  # amount mismatch
            times = 2 if 0.997 <= roll < 0.998 else 1  # double charge
            for t in range(times):
                fee = charged * 29 // 1000 + 30
                report.write(
                    f"txn_{i:08d}_{t},2026-11-01 10:00:00,usd,{_major(charged)},{_major(fee)},"
                    f"{_major(charged - fee)},charge,ch_{i}_{t},ch_{i}_{t},pi_{i}_{t},{order_id}\n"
                )
            if 0.998 <= roll < 0.999:  # a refund the books do not know
                report.write(
                    f"txn_{i:08d}_r,2026-11-02 10:00:00,usd,-{_major(charged)},0.00,"
                    f"-{_major(charged)},refund,re_{i},ch_{i}_0,pi_{i}_0,{order_id}\n"
                )
            if roll >= 0.999:  # an orphan
                report.write(
                    f"txn_x{i:08d},2026-11-01 10:00:00,usd,5.00,0.45,4.55,charge,"
                    f"ch_x{i},ch_x{i},pi_x{i},ord_x{i:08d}\n"
                )
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f'SET search_path = "{schema}"')
        copy_sql = f"COPY paygate_payments ({PAYMENT_COLUMNS}) FROM STDIN"
        with cur.copy(copy_sql) as copy, payments_path.open() as rows:
            for chunk in iter(lambda: rows.read(1 << 20), ""):
                copy.write(chunk)
        cur.execute("VACUUM ANALYZE paygate_payments")
    payments_path.unlink()


def _backend_cpu(url: str, application: str) -> dict[int, tuple[float, float]]:
    """CPU seconds so far and peak RSS (MB) of each server process serving
    ``application``."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application,)
            )
        ]
    return {pid: found for pid in pids if (found := _proc_cpu(pid)) is not None}


def _proc_cpu(pid: int) -> tuple[float, float] | None:
    """A process's CPU seconds (user + sys) and peak RSS in MB (``VmHWM``: the shared
    buffers it touched count too)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    peak = next((int(line.split()[1]) for line in status.splitlines()
                 if line.startswith("VmHWM:")), 0)  # fmt: skip
    return (int(fields[11]) + int(fields[12])) / _TICKS, peak / 1024


def child(variant: str, url: str, schema: str, report: str) -> None:
    import psycopg

    from paygate.reconcile import (
        StripeReportCSV,
        _postgres,
        orders_from_store,
        reconcile,
        reconcile_in_postgres,
    )
    from paygate.stores import open_store

    application = f"bench-{uuid.uuid4().hex[:8]}"
    store = open_store(f"{url}?schema={schema}&application_name={application}")
    closed: dict[int, tuple[float, float]] = {}

    class Measured(psycopg.Connection[Any]):
        """The pushdown's own connection: its server process's CPU read as it closes."""

        def close(self) -> None:
            found = _proc_cpu(self.info.backend_pid)
            if found is not None:
                closed[self.info.backend_pid] = found
            super().close()

    def connect(target: Any) -> Any:
        return Measured.connect(target._conninfo, **target._connect_kwargs)

    _postgres._connect = connect  # type: ignore[attr-defined]
    before = _backend_cpu(url, application)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    if variant == "python":
        result = reconcile(orders_from_store(store), StripeReportCSV(report))
    else:
        result = reconcile_in_postgres(store, StripeReportCSV(report))
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    after = {**_backend_cpu(url, application), **closed}
    store.close()
    server = sum(v[0] - before.get(pid, (0.0, 0.0))[0] for pid, v in after.items())
    server_peak = max((v[1] for v in after.values()), default=0.0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = {str(case): n for case, n in result.counts.items()}
    print(json.dumps({"wall": wall, "cpu": cpu, "server": server, "peak_mb": peak,
                      "server_peak_mb": server_peak, "counts": counts}))  # fmt: skip


def measure(variant: str, url: str, schema: str, report: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, url, schema, str(report)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(*argv[1:5])
        return 0
    rounds = 3
    if "--rounds" in argv:
        at = argv.index("--rounds")
        rounds = int(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    sizes = [int(a) for a in argv] or [200_000]
    url = os.environ.get("PAYGATE_BENCH_POSTGRES_URL") or os.environ.get(
        "PAYGATE_TEST_POSTGRES_URL"
    )
    if not url:
        print("set PAYGATE_BENCH_POSTGRES_URL (or PAYGATE_TEST_POSTGRES_URL)", file=sys.stderr)
        return 2
    import psycopg

    same = True
    for n in sizes:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        try:
            with tempfile.TemporaryDirectory() as tmp:
                report = Path(tmp) / "stripe_report.csv"
                start = time.perf_counter()
                generate(url, schema, report, n)
                print(f"\nN = {n:,}: {n:,} payments in the store, "
                      f"{report.stat().st_size / 1e6:.0f} MB report, generated in "
                      f"{time.perf_counter() - start:.1f}s; load {_load()}")  # fmt: skip
                print(f"{'round':<6} {'variant':<9} {'wall s':>7} {'py CPU s':>9} "
                      f"{'server CPU s':>12} {'py peak MB':>10} {'server peak MB':>14}"
                      "  load (1, 5, 15 min)")  # fmt: skip
                runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
                for number in range(1, rounds + 1):
                    for variant in VARIANTS:
                        r = measure(variant, url, schema, report)
                        runs[variant].append(r)
                        print(f"{number:<6} {variant:<9} {r['wall']:>7.2f} {r['cpu']:>9.2f} "
                              f"{r['server']:>12.2f} {r['peak_mb']:>10.0f} "
                              f"{r['server_peak_mb']:>14.0f}  {_load()}")  # fmt: skip
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        for key, what in (("cpu", "Python CPU"), ("server", "server CPU"),
                          ("peak_mb", "Python peak RSS"), ("wall", "wall")):  # fmt: skip
            ratios = [
                a[key] / b[key] if b[key] else float("nan")
                for a, b in zip(runs["postgres"], runs["python"], strict=True)
            ]
            print(f"N = {n:,} postgres / python, {what}: median {statistics.median(ratios):.2f}x "
                  f"(rounds: {' '.join(f'{r:.2f}x' for r in ratios)})")  # fmt: skip
        total = [
            (a["cpu"] + a["server"]) / (b["cpu"] + b["server"])
            for a, b in zip(runs["postgres"], runs["python"], strict=True)
        ]
        print(f"N = {n:,} postgres / python, Python + server CPU: median "
              f"{statistics.median(total):.2f}x")  # fmt: skip
        counts = {v: runs[v][-1]["counts"] for v in VARIANTS}
        agree = counts["python"] == counts["postgres"]
        same = same and agree
        print(f"counts per case agree: {'yes' if agree else 'NO'} {counts['postgres']}")
    print(f"load average at end: {_load()}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
