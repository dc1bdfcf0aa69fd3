"""``paygate reconcile``: compare the books with a provider's report, from cron or a shell.

The provider's side is a report file (``--report``) or, with ``--from-api``, read through
the adapter configured from the environment (``PAYGATE_<PROVIDER>_*``, as for ``--apply``).

Exit status: 0 when the books agree, 1 when there are discrepancies (or skipped bad rows),
2 when the input cannot be read (wrong file type, malformed row, bad option).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

from paygate.errors import ConfigurationError, PaygateError
from paygate.reconcile._csv import GenericCSV, OrdersCSV
from paygate.reconcile._duck import reconcile
from paygate.reconcile._fetch import API_READERS, records_from_provider
from paygate.reconcile._model import (
    DISCREPANCIES,
    Case,
    Policy,
    ReconciliationReport,
    ReportFormatError,
)
from paygate.reconcile._output import write_report
from paygate.reconcile._paypal import PayPalSettlementReport, PayPalTransactionSearch
from paygate.reconcile._postgres import pushes_down, reconcile_in_postgres
from paygate.reconcile._square import SquarePayments
from paygate.reconcile._store import orders_from_store
from paygate.reconcile._stripe import StripeReportCSV

__all__ = ["add_arguments", "run"]

PROVIDERS = ("stripe", "paypal", "square", "generic")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider",
        required=True,
        choices=PROVIDERS,
        help="whose records: stripe, paypal, square, or generic (a CSV of your own mapping)",
    )
    records = parser.add_mutually_exclusive_group(required=True)
    records.add_argument(
        "--report",
        action="append",
        metavar="FILE",
        help="the provider's report: Stripe itemized CSV; PayPal STL file or Transaction "
        "Search JSON pages; Square ListPayments JSON pages; generic CSV (repeat for pages)",
    )
    records.add_argument(
        "--from-api",
        action="store_true",
        help="read the provider's records through its API, with the adapter configured "
        "from PAYGATE_<PROVIDER>_* in the environment (PayPal needs --since and --until)",
    )
    parser.add_argument(
        "--payouts",
        action="store_true",
        help="with --from-api: read the payouts' entries (the money that moved, with fees) "
        "instead of the payments (Square)",
    )
    books = parser.add_mutually_exclusive_group(required=True)
    books.add_argument("--orders", metavar="FILE", help="the shop's orders as CSV")
    books.add_argument("--store", metavar="URL", help="a paygate store URL (sqlite:///...)")
    parser.add_argument(
        "--orders-columns",
        metavar="ROLE=COLUMN,...",
        help="map the orders CSV's columns, e.g. 'order_id=Order No,amount=Total'",
    )
    parser.add_argument(
        "--orders-amount-unit",
        choices=("major", "minor"),
        default="major",
        help="the orders CSV's amounts: major units (19.99) or minor units (1999) (major)",
    )
    parser.add_argument("--currency", help="currency of orders when the CSV has no column")
    parser.add_argument("--since", type=_moment, help="ISO date/time, inclusive (UTC if naive)")
    parser.add_argument("--until", type=_moment, help="ISO date/time, exclusive")
    parser.add_argument(
        "--grace-hours",
        type=float,
        default=24.0,
        help="how long an order may lack a provider record before it is missing (24)",
    )
    parser.add_argument(
        "--on-unpaid-charged",
        choices=("refund", "mark_paid", "investigate"),
        default="refund",
        help="action for an order the books call unpaid that the provider charged (refund)",
    )
    parser.add_argument(
        "--on-paid-without-payment",
        choices=("cancel", "investigate"),
        default="investigate",
        help="action for an order the books call paid that no provider payment backs (investigate)",
    )
    parser.add_argument(
        "--on-double-charge",
        choices=("refund", "investigate"),
        default="refund",
        help="action for an order charged more than once: refund the extra charges (refund)",
    )
    parser.add_argument("--out", metavar="FILE", help="write the report (.csv, .json or .html)")
    parser.add_argument(
        "--apply", action="store_true", help="carry out the actions (default: dry run)"
    )
    parser.add_argument(
        "--run-id",
        help="names this run in refund idempotency keys and in the store's record of its "
        "actions (default: a hash of the report files, so re-running on the same report "
        "never refunds twice and skips what it already did; with --from-api "
        "api-PROVIDER-SINCE-UNTIL from the window)",
    )
    parser.add_argument("--skip-bad-rows", action="store_true", help="count and list bad rows")
    parser.add_argument("--order-column", help="Stripe: column with the order id")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _columns(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    mapping = {}
    for part in text.split(","):
        role, sep, column = part.partition("=")
        if not sep:
            raise ReportFormatError(f"--orders-columns: expected ROLE=COLUMN, got {part!r}")
        mapping[role.strip()] = column.strip()
    return mapping


def _run_id(provider: str, paths: list[str]) -> str:
    digest = hashlib.sha256(provider.encode())
    for path in paths:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return "r" + digest.hexdigest()[:16]


def _api_run_id(provider: str, since: datetime | None, until: datetime | None) -> str:
    """``api-stripe-20261101T000000Z-20261201T000000Z``: the same window, the same run id
    (``start``/``open`` for a bound not given), so a re-run never refunds twice."""

    def stamp(moment: datetime | None, missing: str) -> str:
        if moment is None:
            return missing
        return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")

    return f"api-{provider}-{stamp(since, 'start')}-{stamp(until, 'open')}"


@contextmanager
def _progress(
    enabled: bool, sizes: dict[str, tuple[IO[str], int]]
) -> Iterator[Callable[[str, int], None] | None]:
    """A Rich progress bar over the bytes of the files being read (plain: nothing)."""
    if not enabled:
        yield None
        return
    try:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:  # Rich is the `cli` extra: without it, no bar
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[rows]:>10,} rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        tasks = {
            side: bar.add_task(side, total=max(size, 1), rows=0)
            for side, (_, size) in sizes.items()
        }

        def update(side: str, rows: int) -> None:
            task = tasks.get(side)
            if task is None:
                return
            handle = sizes[side][0]
            buffer = getattr(handle, "buffer", None)
            done = buffer.tell() if buffer is not None else 0
            bar.update(task, completed=done, rows=rows)

        yield update


def _summary(report: ReconciliationReport) -> None:
    rows = []
    for case in Case:
        count = report.counts.get(case, 0)
        if count:
            total = ", ".join(str(m) for m in report.totals.get(case, {}).values())
            rows.append((case.value, f"{count:,}", total, case in DISCREPANCIES))
    verdict = (
        "The books agree."
        if report.agrees
        else f"{report.discrepancies:,} discrepanc{'y' if report.discrepancies == 1 else 'ies'}"
        + (f" ({len(report.bad_rows)} bad rows skipped)" if report.bad_rows else "")
    )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"{'case':<22} {'count':>10}  total")
        for name, shown, total, _ in rows:
            print(f"{name:<22} {shown:>10}  {total}")
        print(verdict)
        return
    table = Table(title=f"Reconciliation: books vs {report.provider}")
    table.add_column("case")
    table.add_column("count", justify="right")
    table.add_column("total", justify="right")
    for name, shown, total, bad in rows:
        style = "red" if bad else None
        table.add_row(name, shown, total, style=style)
    console = Console()
    console.print(table)
    console.print(verdict, style="green" if report.agrees else "bold red")


def _outcomes(report: ReconciliationReport) -> str:
    """``run <id>: 2 done, 1 already_done, ...``: the tally of what ``--apply`` did."""
    tally = Counter(str(a.outcome) for a in report.applied)
    order = ("done", "already_done", "failed", "skipped")
    shown = ", ".join(f"{tally[o]} {o}" for o in order if tally[o]) or "nothing to do"
    return f"run {report.run_id}: {shown}"


def _gateway(args: argparse.Namespace) -> Any:
    """The Gateway of the run, from the environment, where the provider's settings live
    (``PAYGATE_<PROVIDER>_*``; never on the command line): the adapter that reads the
    records with ``--from-api``, and the one that acts with ``--apply``.

    ``PAYGATE_PROVIDER`` defaults to ``--provider``; with ``--from-api``, when set, it must
    name it. A generic report names no provider: ``PAYGATE_PROVIDER`` says which one acts.
    The store is ``--store`` when applying (else ``PAYGATE_STORE_URL``); a dry run through
    the API records nothing (memory).
    """
    import paygate

    env = dict(os.environ)
    named = env.get("PAYGATE_PROVIDER", "").strip()
    if args.from_api and named and named != args.provider:
        raise ConfigurationError(
            f"PAYGATE_PROVIDER is {named!r} but --provider is {args.provider!r}"
        )
    if args.provider != "generic" and not named:
        env["PAYGATE_PROVIDER"] = args.provider
    if args.apply and args.store:
        env["PAYGATE_STORE_URL"] = args.store
    elif not args.apply:
        env["PAYGATE_STORE_URL"] = "memory://"  # nothing is recorded on a dry run
    return paygate.Gateway.from_env(env)


def _report_source(
    args: argparse.Namespace, stack: ExitStack, sizes: dict[str, tuple[IO[str], int]]
) -> Any:
    """The reader of the ``--report`` files (opened on ``stack``, sized for the bar)."""
    paths: list[str] = args.report
    skip = args.skip_bad_rows
    for path in paths:
        if not Path(path).is_file():
            raise ReportFormatError("no such file", path=path)
    handles: list[IO[str]] = []
    if len(paths) == 1 and not paths[0].lower().endswith(".json"):
        # closed by the caller's ExitStack, like every file of the run
        opened = open(paths[0], encoding="utf-8-sig", newline="")  # noqa: SIM115
        handles.append(stack.enter_context(opened))
        sizes["records"] = (handles[0], Path(paths[0]).stat().st_size)
    json_pages = all(p.lower().endswith(".json") for p in paths)
    if args.provider in ("square",) or (args.provider == "paypal" and json_pages):
        cls = SquarePayments if args.provider == "square" else PayPalTransactionSearch
        return cls([Path(p) for p in paths], skip_bad_rows=skip)
    if len(paths) != 1:
        raise ReportFormatError(f"--provider {args.provider} reads one --report file")
    handle = handles[0]
    if args.provider == "stripe":
        kwargs = {"order_column": args.order_column} if args.order_column else {}
        return StripeReportCSV(handle, skip_bad_rows=skip, **kwargs)
    if args.provider == "paypal":
        return PayPalSettlementReport(handle, skip_bad_rows=skip)
    return GenericCSV(handle, skip_bad_rows=skip)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (PaygateError, OSError) as exc:
        print(f"paygate reconcile: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    policy = Policy(
        unpaid_order_charged=args.on_unpaid_charged,
        paid_without_payment=args.on_paid_without_payment,
        double_charge=args.on_double_charge,
        grace=timedelta(hours=args.grace_hours),
    )
    with ExitStack() as stack:
        sizes: dict[str, tuple[IO[str], int]] = {}
        gateway = None
        if args.from_api:
            if args.provider not in API_READERS:
                raise ConfigurationError(
                    f"--from-api reads {', '.join(sorted(API_READERS))}, "
                    f"not --provider {args.provider}"
                )
            gateway = _gateway(args)
            stack.callback(gateway.close)
            options: dict[str, Any] = {"skip_bad_rows": args.skip_bad_rows}
            if args.payouts:
                options["payouts"] = True
            provider = records_from_provider(gateway, since=args.since, until=args.until, **options)
        else:
            if args.payouts:
                raise ConfigurationError("--payouts goes with --from-api")
            provider = _report_source(args, stack, sizes)
        if args.orders:
            orders_handle = stack.enter_context(open(args.orders, encoding="utf-8-sig", newline=""))
            sizes["orders"] = (orders_handle, Path(args.orders).stat().st_size)
            internal: Any = OrdersCSV(
                orders_handle,
                columns=_columns(args.orders_columns),
                amount_unit=args.orders_amount_unit,
                currency=args.currency,
                skip_bad_rows=args.skip_bad_rows,
            )
        else:
            from paygate.stores import open_store

            store = open_store(args.store)
            stack.callback(store.close)
            internal = orders_from_store(store)
        run_id = args.run_id or ""
        if args.apply and not run_id:
            run_id = (
                _api_run_id(args.provider, args.since, args.until)
                if args.from_api
                else _run_id(args.provider, args.report)
            )
        if args.apply and gateway is None:
            gateway = _gateway(args)
        show = not args.no_progress and sys.stderr.isatty()
        # a PostgreSQL store's orders are classified inside the database (no order row read)
        engine = reconcile_in_postgres if pushes_down(internal) else reconcile
        with _progress(show, sizes) as progress:
            report = engine(
                internal,
                provider,
                policy=policy,
                # the command line is where the clock is read; the engine only takes it
                now=datetime.now(timezone.utc),
                # with --payouts the window chose the payouts; their entries are dated
                # when charged, before it, so it does not filter them again
                since=None if args.payouts else args.since,
                until=None if args.payouts else args.until,
                run_id=run_id,
                provider_name=args.provider,
                skip_bad_rows=args.skip_bad_rows,
                progress=progress,
                apply=args.apply,
                gateway=gateway if args.apply else None,
            )
    if args.out:
        write_report(report, args.out)
    _summary(report)
    for done in report.applied:
        print(f"{done.action} {done.order_id}: {done.outcome} {done.detail}".rstrip())
    if args.apply:
        print(_outcomes(report))
    return 0 if report.agrees else 1
