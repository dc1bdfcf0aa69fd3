"""``paygate reconcile``: exit status, summary, report files, errors."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

import paygate
from paygate.__main__ import main

FIXTURES = Path(__file__).parent / "fixtures" / "reconcile"
ORDERS = str(FIXTURES / "orders.csv")
STRIPE = str(FIXTURES / "stripe_itemized_balance.csv")


def test_discrepancies_exit_1_with_a_summary_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = [tmp_path / f"report.{suffix}" for suffix in ("csv", "json", "html")]
    for out in outputs:
        code = main(
            ["reconcile", "--provider", "stripe", "--report", STRIPE, "--orders", ORDERS,
             "--out", str(out)]
        )  # fmt: skip
        assert code == 1
    text = capsys.readouterr().out
    assert "double_charge" in text and "8 discrepancies" in text

    rows = list(csv.DictReader(outputs[0].read_text().splitlines()))
    assert {r["case"] for r in rows} >= {"double_charge", "orphan", "missing"}
    mismatch = next(r for r in rows if r["case"] == "amount_mismatch")
    assert (mismatch["order_id"], mismatch["difference"]) == ("ord_1006", "-0.50")

    data = json.loads(outputs[1].read_text())
    assert data["agrees"] is False and data["counts"]["matched"] == 2
    assert data["fees"] == {"USD": "24.01"}

    html = outputs[2].read_text()
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert "ord_1005" in html and "pi_3QaA105" in html
    assert "<script" not in html and "http" not in html  # self-contained, nothing fetched


def test_books_that_agree_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,amount,currency,status\nord_1001,19.99,USD,paid\n")
    report = tmp_path / "stripe.csv"
    lines = (FIXTURES / "stripe_itemized_balance.csv").read_text().splitlines()
    report.write_text("\n".join(lines[:2]) + "\n")
    code = main(["reconcile", "--provider", "stripe", "--report", str(report),
                 "--orders", str(orders)])  # fmt: skip
    assert code == 0
    assert "The books agree." in capsys.readouterr().out


def test_html_escapes_every_value(tmp_path: Path) -> None:
    orders = tmp_path / "orders.csv"
    orders.write_text(
        'order_id,amount,currency,status\n"<script>alert(1)</script>",5.00,USD,paid\n'
    )
    report = tmp_path / "generic.csv"
    report.write_text("id,order_id,amount,currency\n")
    out = tmp_path / "r.html"
    assert main(["reconcile", "--provider", "generic", "--report", str(report),
                 "--orders", str(orders), "--out", str(out)]) == 1  # fmt: skip
    html = out.read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_bad_input_exits_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["reconcile", "--provider", "paypal", "--report", STRIPE, "--orders", ORDERS])
    assert code == 2
    assert "RH report header" in capsys.readouterr().err

    report = tmp_path / "stripe.csv"
    lines = (FIXTURES / "stripe_itemized_balance.csv").read_text().splitlines()
    lines[2] = lines[2].replace(",25.00,1.03,", ",25.0.0,1.03,")
    report.write_text("\n".join(lines) + "\n")
    args = ["reconcile", "--provider", "stripe", "--report", str(report), "--orders", ORDERS]
    assert main(args) == 2
    assert f"{report}:3:" in capsys.readouterr().err
    assert main([*args, "--skip-bad-rows", "--out", str(tmp_path / "r.json")]) == 1
    data = json.loads((tmp_path / "r.json").read_text())
    assert [b["line"] for b in data["bad_rows"]] == [3]


def test_the_paygate_store_as_the_books(tmp_path: Path) -> None:
    import paygate
    from paygate import Money

    url = f"sqlite:///{tmp_path / 'paygate.db'}"
    gw = paygate.connect("fake", store=url)
    gw.create_payment(
        order_id="ord_1001", amount=Money.of("19.99", "USD"), payment_method="tok_visa"
    )
    gw.close()
    out = tmp_path / "r.json"
    args = ["reconcile", "--provider", "stripe", "--report", STRIPE, "--store", url]
    assert main([*args, "--out", str(out)]) == 1
    data = json.loads(out.read_text())
    assert data["counts"]["matched"] == 1  # ord_1001: paid in the store, charged at Stripe
    # every other order of the report is unknown to this store
    assert {line["case"] for line in data["lines"]} == {"orphan"}
    assert "ord_1001" not in {line["order_id"] for line in data["lines"]}


def test_plain_text_summary_without_rich(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich.console", None)  # import fails: no Rich
    monkeypatch.setitem(sys.modules, "rich.table", None)
    code = main(["reconcile", "--provider", "stripe", "--report", STRIPE, "--orders", ORDERS])
    assert code == 1
    out = capsys.readouterr().out
    assert "double_charge" in out and "8 discrepancies" in out


def test_since_until_and_policy_options(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code = main(
        ["reconcile", "--provider", "stripe", "--report", STRIPE, "--orders", ORDERS,
         "--since", "2026-11-01T10:12:00", "--until", "2026-11-01T10:22:00",
         "--on-double-charge", "investigate", "--out", str(out)]
    )  # fmt: skip
    assert code == 1
    data = json.loads(out.read_text())
    # ord_1004 and ord_1005 are in the window; ord_1004's refund (a day later) is not
    assert data["counts"] == {"matched": 1, "double_charge": 1}
    assert data["lines"][0]["action"] == "investigate"


def test_apply_uses_a_gateway_from_the_environment_and_a_stable_run_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PAYGATE_PROVIDER", raising=False)
    monkeypatch.delenv("PAYGATE_STRIPE_API_KEY", raising=False)
    args = ["reconcile", "--provider", "stripe", "--report", STRIPE, "--orders", ORDERS]
    # PAYGATE_PROVIDER defaults to --provider, whose settings come from the environment
    assert main([*args, "--apply"]) == 2
    assert "PAYGATE_STRIPE_API_KEY" in capsys.readouterr().err

    # a fresh fake provider does not know these Stripe payments: the refunds fail, and say so
    monkeypatch.setenv("PAYGATE_PROVIDER", "fake")
    keys = []
    for run in range(2):
        out = tmp_path / f"run{run}.json"
        assert main([*args, "--apply", "--out", str(out)]) == 1
        applied = json.loads(out.read_text())["applied"]
        assert [(a["order_id"], a["action"], a["outcome"]) for a in applied] == [
            ("ord_1002", "refund", "failed"),
            ("ord_1004", "record", "skipped"),  # the books' side: no handler on the CLI
            ("ord_1005", "refund", "failed"),
            ("ord_1008", "record", "skipped"),
        ]
        keys.append([a["idempotency_key"] for a in applied if a["action"] == "refund"])
    assert keys[0] == keys[1]  # the run id comes from the report file: re-runs reuse keys
    assert "refund ord_1002: failed" in capsys.readouterr().out


def test_the_progress_bar_follows_the_bytes_read(tmp_path: Path) -> None:
    from paygate.reconcile.cli import _progress

    with open(STRIPE, encoding="utf-8", newline="") as handle:
        size = Path(STRIPE).stat().st_size
        with _progress(True, {"records": (handle, size)}) as update:
            assert update is not None
            handle.read()
            update("records", 16)
            update("orders", 3)  # a side without a bar is ignored
    with _progress(False, {}) as nothing:
        assert nothing is None


def test_apply_rerun_reports_already_done_from_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import paygate
    from paygate import Money
    from paygate.reconcile import applied_actions, cli

    gw = paygate.connect("fake", store=f"sqlite:///{tmp_path / 'paygate.db'}")
    pay = gw.create_payment(
        order_id="o1", amount=Money.of("25.00", "USD"), payment_method="tok_visa"
    )
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "order_id,amount,currency,status,created_at,refunded\n"
        "o1,25.00,USD,pending,2026-11-01T10:05:00Z,\n"
    )
    report = tmp_path / "provider.csv"
    report.write_text(
        "id,order_id,type,status,amount,currency,fee,net,payment_id,created_at\n"
        f"tx_1,o1,payment,succeeded,25.00,USD,0.60,24.40,{pay.id},2026-11-01T10:06:00Z\n"
    )
    monkeypatch.setattr(cli, "_gateway", lambda args: gw)
    args = ["reconcile", "--provider", "generic", "--report", str(report), "--orders",
            str(orders), "--apply", "--run-id", "nightly-1"]  # fmt: skip
    try:
        outs = []
        for run in range(2):
            out = tmp_path / f"run{run}.json"
            assert main([*args, "--out", str(out)]) == 1
            outs.append(json.loads(out.read_text())["applied"])
        printed = capsys.readouterr().out
        assert [a["outcome"] for a in outs[0]] == ["done"]
        assert [a["outcome"] for a in outs[1]] == ["already_done"]
        assert "run nightly-1: 1 done" in printed and "run nightly-1: 1 already_done" in printed
        assert gw.provider.calls["refund_payment"] == 1
        (logged,) = applied_actions(gw.store, "nightly-1")
        assert (logged.order_id, logged.action, logged.outcome) == ("o1", "refund", "done")
    finally:
        gw.close()


def test_apply_with_store_takes_the_provider_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--report --store --apply: the Gateway acting is the environment's adapter (its key
    from PAYGATE_STRIPE_API_KEY) over --store, not an adapter without settings."""
    import argparse

    from paygate.reconcile import cli
    from paygate.stores.sqlite import SQLiteStore

    monkeypatch.delenv("PAYGATE_PROVIDER", raising=False)
    monkeypatch.delenv("PAYGATE_STORE_URL", raising=False)
    monkeypatch.setenv("PAYGATE_STRIPE_API_KEY", "sk_test_" + "x" * 24)
    db = tmp_path / "books.db"
    args = argparse.Namespace(
        provider="stripe", store=f"sqlite:///{db}", apply=True, from_api=False
    )
    gateway = cli._gateway(args)
    try:
        assert gateway.provider.name == "stripe"
        assert isinstance(gateway.store, SQLiteStore)
        assert db.exists()
    finally:
        gateway.close()
    # a generic report names no provider: PAYGATE_PROVIDER must say which one acts
    with pytest.raises(paygate.ConfigurationError, match="PAYGATE_PROVIDER"):
        cli._gateway(
            argparse.Namespace(provider="generic", store=None, apply=True, from_api=False)
        )
