"""Writing a report: CSV (the lines), JSON (everything), HTML (one self-contained page).

Files are written to a temporary name beside the target and renamed into place, so a
failed run never leaves half a report behind. The HTML page has its CSS inline and every
value escaped: it can be mailed to a finance person and opened anywhere.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import IO

from paygate.errors import ValidationError
from paygate.reconcile._model import DISCREPANCIES, Case, ReconciliationReport

__all__ = ["write_csv", "write_html", "write_json", "write_report"]

CSV_COLUMNS = [
    "case",
    "order_id",
    "action",
    "internal_status",
    "provider_status",
    "internal_amount",
    "internal_currency",
    "provider_amount",
    "provider_currency",
    "difference",
    "fee",
    "net",
    "payment_ids",
    "record_ids",
    "note",
]


def write_csv(report: ReconciliationReport, handle: IO[str]) -> None:
    writer = csv.writer(handle)
    writer.writerow(CSV_COLUMNS)
    for line in report.lines:
        data = line.to_dict()
        data["payment_ids"] = " ".join(data["payment_ids"])
        data["record_ids"] = " ".join(data["record_ids"])
        writer.writerow(["" if data[c] is None else data[c] for c in CSV_COLUMNS])
    for bad in report.bad_rows:
        note = f"{bad.path}:{bad.line}: {bad.reason}"
        data = {"case": "bad_row", "action": "investigate", "note": note}
        writer.writerow([data.get(c, "") for c in CSV_COLUMNS])


def write_json(report: ReconciliationReport, handle: IO[str]) -> None:
    json.dump(report.to_dict(), handle, indent=2)
    handle.write("\n")


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.4rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin-top:2rem}
.meta{color:#57606a;margin-bottom:1rem}
.verdict{display:inline-block;padding:.3rem .7rem;border-radius:4px;font-weight:600}
.ok{background:#dafbe1;color:#116329}.bad{background:#ffebe9;color:#a40e26}
table{border-collapse:collapse;margin-top:.5rem;width:100%}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.discrepancy td:first-child{border-left:4px solid #cf222e}
"""


def _money_cell(value: object) -> str:
    return f'<td class="num">{escape(str(value))}</td>' if value is not None else "<td></td>"


def write_html(report: ReconciliationReport, handle: IO[str]) -> None:
    e = escape
    out = handle.write
    verdict = (
        '<span class="verdict ok">The books agree</span>'
        if report.agrees
        else f'<span class="verdict bad">{report.discrepancies} discrepanc'
        f"{'y' if report.discrepancies == 1 else 'ies'}</span>"
    )
    out('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    out(f"<title>Reconciliation - {e(report.provider)}</title><style>{_CSS}</style></head><body>")
    out(f"<h1>Reconciliation: books vs {e(report.provider)}</h1>")
    when = report.now.isoformat() if report.now else "not given"
    out(
        f'<div class="meta">Run {e(report.run_id or "-")} &middot; as of {e(when)} &middot; '
        f"{report.orders_read:,} orders, {report.records_read:,} provider records</div>"
    )
    out(f"<p>{verdict}</p>")
    out("<h2>Summary</h2><table><tr><th>Case</th><th>Count</th><th>Total</th></tr>")
    for case in Case:
        count = report.counts.get(case, 0)
        if not count:
            continue
        totals = report.totals.get(case, {})
        total = ", ".join(str(m) for m in totals.values())
        css = ' class="discrepancy"' if case in DISCREPANCIES else ""
        out(f'<tr{css}><td>{e(case.value)}</td><td class="num">{count:,}</td>')
        out(f'<td class="num">{e(total)}</td></tr>')
    out("</table>")
    if report.fees or report.net:
        out("<h2>Fees and net</h2><table><tr><th>Currency</th><th>Fees</th><th>Net</th></tr>")
        for cur in sorted(set(report.fees) | set(report.net)):
            out(f"<tr><td>{e(cur)}</td>{_money_cell(report.fees.get(cur))}")
            out(f"{_money_cell(report.net.get(cur))}</tr>")
        out("</table>")
    if report.lines:
        out("<h2>Itemized</h2><table><tr><th>Case</th><th>Order</th><th>Action</th>")
        out("<th>Books</th><th>Provider</th><th>Difference</th><th>Fee</th><th>Net</th>")
        out("<th>Payments</th><th>Note</th></tr>")
        for line in report.lines:
            books = f"{line.internal_status or ''} {line.internal_amount or ''}".strip()
            provider = f"{line.provider_status or ''} {line.provider_amount or ''}".strip()
            out(f'<tr class="discrepancy"><td>{e(line.case.value)}</td>')
            out(f"<td>{e(line.order_id or '')}</td><td>{e(line.action.value)}</td>")
            out(f"<td>{e(books)}</td><td>{e(provider)}</td>")
            out(_money_cell(line.difference) + _money_cell(line.fee) + _money_cell(line.net))
            out(f"<td>{e(' '.join(line.payment_ids))}</td><td>{e(line.note)}</td></tr>")
        out("</table>")
    if report.bad_rows:
        out("<h2>Skipped rows</h2><table><tr><th>File</th><th>Line</th><th>Why</th></tr>")
        for bad in report.bad_rows:
            out(f'<tr><td>{e(bad.path)}</td><td class="num">{bad.line}</td>')
            out(f"<td>{e(bad.reason)}</td></tr>")
        out("</table>")
    if report.applied:
        out("<h2>Actions applied</h2><table><tr><th>Order</th><th>Action</th>")
        out("<th>Outcome</th><th>Detail</th></tr>")
        for done in report.applied:
            out(f"<tr><td>{e(done.order_id or '')}</td><td>{e(done.action.value)}</td>")
            out(f"<td>{e(done.outcome)}</td><td>{e(done.detail)}</td></tr>")
        out("</table>")
    out("</body></html>\n")


_WRITERS: dict[str, Callable[[ReconciliationReport, IO[str]], None]] = {
    ".csv": write_csv,
    ".json": write_json,
    ".html": write_html,
    ".htm": write_html,
}


def write_report(report: ReconciliationReport, path: str | Path) -> Path:
    """Write ``report`` to ``path``, the format chosen by its suffix (.csv .json .html)."""
    target = Path(path)
    writer = _WRITERS.get(target.suffix.lower())
    if writer is None:
        raise ValidationError(
            f"cannot write a report as {target.suffix or 'a file without suffix'!r}: "
            "use .csv, .json or .html"
        )
    directory = target.parent if str(target.parent) else Path(".")
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer(report, handle)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target
