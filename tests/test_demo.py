"""``paygate demo``: the README's first command."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from paygate.__main__ import main
from paygate.models import PaymentStatus
from paygate.stores import open_store

SECRET = "whsec_demo_test_secret_0123456789"


def test_the_demo_tells_the_whole_story_and_logs_no_secret(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("PAYGATE_FAKE_WEBHOOK_SECRET", SECRET)
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "demo.db"
    assert main(["demo", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    for expected in (
        "hosted checkout",
        "duplicate=True: nothing changes, the order is not shipped twice (shipped 1x)",
        "declined (card_declined); nothing charged",
        "a double click returns the same payment (True); charges at the provider for this order: 1",
        "requires_action",
        "status now: succeeded",
        "payment partially_refunded",
        "payment refunded",
        "subscription",
        "-> handler: order ord_1002 paid (api), shipping it",
        "webhook refund.succeeded        applied       new -> partially_refunded\n"
        "     -> handler: order ord_1004 paid (webhook), shipping it\n"
        "     -> handler: 10.00 USD refunded on order ord_1004 (webhook)\n"
        "   webhook payment.succeeded       stale",
        "the order shipped once (1x), then the refund was told",
        # a plan change, and a dispute answered with evidence (issue 20)
        "plan change to price_pro (the unused basic time credited on the next invoice): active",
        "now on price_pro (api)",
        "evidence submitted, under_review",
        "-> handler: dispute.won on order ord_1002 (webhook)",
        "dispute won: payment succeeded",
        "back at the shop: succeeded, mastercard ending 4444",
        "webhook payment_method.attached no_transition -",
        "reorder ord_1005 charged off session: succeeded\n"
        "     -> handler: order ord_1005 paid (api), shipping it",
        "orders shipped: ord_1001, ord_1002, ord_1003, ord_1004, ord_1005 "
        "(each once: 5 shipments)",
    ):
        assert expected in out
    # the whole run logged at DEBUG: operations and transitions, never a secret
    assert "create_payment order=ord_1002" in caplog.text
    assert "-> succeeded" in caplog.text
    for text in (out, caplog.text):
        assert SECRET not in text
        assert "_secret_" not in text  # the fake's client secrets look like pay_x_secret_y
    # and the store file it left behind is consistent
    store = open_store(f"sqlite:///{db}")
    ord_1001 = store.payments_for_order("ord_1001")
    assert len(ord_1001) == 1 and ord_1001[0].status is PaymentStatus.REFUNDED
    assert [t.new_status for t in store.history(ord_1001[0].id)][-1] is PaymentStatus.REFUNDED
    assert all(e.processed for e in store.list_events())
    store.close()


def test_python_dash_m_paygate_demo_runs_in_a_fresh_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paygate", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Done:" in done.stdout and done.stderr == ""


def test_demo_piped_into_a_reader_that_stops_early_exits_quietly() -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "paygate", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    with proc:
        proc.stdout.readline()
        proc.stdout.close()  # like `paygate demo | head -1`
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err
