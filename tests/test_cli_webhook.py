"""``paygate webhook verify``: a delivery checked by hand, from a file or stdin."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from paygate import Money
from paygate.__main__ import main
from paygate.providers._stripe_webhook import sign
from paygate.providers.fake import FakeProvider
from tests.fixtures.stripe import event_body, resource

FAKE_SECRET = "whsec_fake_cli_secret_0123456789"
STRIPE_SECRET = "whsec_test_cli_secret_abcdef"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # no PAYGATE_* of the developer's shell or .env file reaches these runs
    import os

    for key in list(os.environ):
        if key.startswith("PAYGATE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def _stdin(monkeypatch: pytest.MonkeyPatch, body: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(body)))


def _fake_delivery() -> tuple[bytes, dict[str, str]]:
    provider = FakeProvider(webhook_secret=FAKE_SECRET)
    provider.create_payment(
        order_id="ord_cli", amount=Money(1250, "EUR"), payment_method="tok_visa",
        idempotency_key="k1",
    )  # fmt: skip
    delivery = provider.take_webhooks()[-1]
    return delivery.body, dict(delivery.headers)


def _args(headers: dict[str, str]) -> list[str]:
    return [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]


def test_fake_delivery_from_a_file_is_valid_and_printed_as_text_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body, headers = _fake_delivery()
    (tmp_path / "body.json").write_bytes(body)
    monkeypatch.setenv("MY_FAKE_SECRET", FAKE_SECRET)
    command = ["webhook", "verify", "--provider", "fake", "--secret-env", "MY_FAKE_SECRET"]
    assert main([*command, *_args(headers), str(tmp_path / "body.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid fake webhook evt_")
    assert "  order_id: ord_cli\n" in out and "  object_type: Payment\n" in out
    assert FAKE_SECRET not in out

    assert main([*command, *_args(headers), "--json", str(tmp_path / "body.json")]) == 0
    event = json.loads(capsys.readouterr().out)
    sent = json.loads(body)
    assert event["valid"] is True and event["id"] == sent["id"]
    assert event["provider"] == "fake" and event["order_id"] == "ord_cli"
    assert event["type"].startswith("payment.") and event["object_type"] == "Payment"
    assert event["payment_id"] and event["occurred_at"]
    assert set(event) == {"valid", "id", "provider", "type", "provider_type", "occurred_at",
                          "payment_id", "order_id", "object_type"}  # fmt: skip


def test_fake_tampered_body_from_stdin_is_refused_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body, headers = _fake_delivery()
    secret_file = tmp_path / "secret"
    secret_file.write_text(FAKE_SECRET + "\n")
    command = ["webhook", "verify", "--provider", "fake", "--secret-file", str(secret_file)]
    _stdin(monkeypatch, body)
    assert main([*command, *_args(headers)]) == 0  # the body as sent: valid
    capsys.readouterr()
    _stdin(monkeypatch, body.replace(b"1250", b"1", 1))
    assert main([*command, *_args(headers), "-"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("paygate webhook verify: refused: InvalidSignature: ")
    assert captured.err.count("\n") == 1
    assert FAKE_SECRET not in captured.err
    # no signature header at all
    _stdin(monkeypatch, body)
    assert main([*command, "--json"]) == 1
    refused = json.loads(capsys.readouterr().out)
    assert refused["valid"] is False and refused["error"] == "MissingSignature"
    # the wrong secret
    secret_file.write_text("whsec_some_other_secret_98765")
    _stdin(monkeypatch, body)
    assert main([*command, *_args(headers)]) == 1
    assert "InvalidSignature" in capsys.readouterr().err


def _stripe_body() -> bytes:
    intent = resource(
        "payment_intent", id="pi_cli_1", amount=2500, currency="eur", status="succeeded",
        amount_received=2500, last_payment_error=None, metadata={"order_id": "ord_stripe"},
    )  # fmt: skip
    return event_body("payment_intent.succeeded", intent)


def test_stripe_good_and_tampered_bodies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = _stripe_body()
    header = sign(body, STRIPE_SECRET, int(time.time()))
    monkeypatch.setenv("STRIPE_WHSEC", STRIPE_SECRET)  # no api key anywhere: not needed
    command = ["webhook", "verify", "--provider", "stripe", "--secret-env", "STRIPE_WHSEC",
               "-H", f"Stripe-Signature: {header}"]  # fmt: skip
    (tmp_path / "event.json").write_bytes(body)
    assert main([*command, "--json", str(tmp_path / "event.json")]) == 0
    event = json.loads(capsys.readouterr().out)
    assert event["provider"] == "stripe" and event["type"] == "payment.succeeded"
    assert event["provider_type"] == "payment_intent.succeeded"
    assert event["payment_id"] == "pi_cli_1" and event["order_id"] == "ord_stripe"
    assert event["id"] == json.loads(body)["id"]

    _stdin(monkeypatch, body.replace(b"2500", b"2600"))
    assert main(command) == 1
    err = capsys.readouterr().err
    assert "refused: InvalidSignature" in err and STRIPE_SECRET not in err

    old = sign(body, STRIPE_SECRET, int(time.time()) - 3600)
    _stdin(monkeypatch, body)
    assert main([*command[:-2], "-H", f"Stripe-Signature: {old}"]) == 1
    assert "refused: TimestampOutsideTolerance" in capsys.readouterr().err
    # the provider's settings from the usual environment: a wider tolerance
    monkeypatch.setenv("PAYGATE_STRIPE_WEBHOOK_TOLERANCE", "7200")
    _stdin(monkeypatch, body)
    assert main([*command[:-2], "-H", f"Stripe-Signature: {old}"]) == 0
    assert "valid stripe webhook" in capsys.readouterr().out


def test_usage_errors_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["webhook", "verify", "--provider", "stripe"]
    assert main([*base, "--secret-env", "NO_SUCH_VAR_XYZ", str(tmp_path)]) == 2
    assert "NO_SUCH_VAR_XYZ is not set" in capsys.readouterr().err
    monkeypatch.setenv("S", STRIPE_SECRET)
    assert main([*base, "--secret-env", "S", "-H", "no colon", str(tmp_path)]) == 2
    assert "-H must look like 'Name: value'" in capsys.readouterr().err
    assert main([*base, "--secret-env", "S", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_square_needs_only_its_signature_key_and_notification_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from paygate.providers._square_webhook import sign as square_sign

    payment = {"id": "sq_p1", "status": "COMPLETED", "reference_id": "ord_sq",
               "amount_money": {"amount": 100, "currency": "USD"},
               "created_at": "2026-12-07T04:00:00Z", "updated_at": "2026-12-07T04:00:00Z"}  # fmt: skip
    body = json.dumps({
        "merchant_id": "M", "type": "payment.updated", "event_id": "sq-evt-1",
        "created_at": "2026-12-07T04:00:00Z",
        "data": {"type": "payment", "id": "sq_p1", "object": {"payment": payment}},
    }).encode()  # fmt: skip
    url = "https://shop.example/hooks/square"
    signature = square_sign(body, signature_key="sq-key-123", notification_url=url)
    monkeypatch.setenv("PAYGATE_SQUARE_WEBHOOK_URL", url)
    (tmp_path / "key").write_text("sq-key-123")
    command = ["webhook", "verify", "--provider", "square", "--secret-file",
               str(tmp_path / "key"), "-H", f"X-Square-HmacSha256-Signature: {signature}"]  # fmt: skip
    _stdin(monkeypatch, body)
    assert main([*command, "--json"]) == 0
    event = json.loads(capsys.readouterr().out)
    assert (event["id"], event["payment_id"], event["order_id"]) == ("sq-evt-1", "sq_p1", "ord_sq")
    _stdin(monkeypatch, body.replace(b"100", b"101"))
    assert main(command) == 1
    assert "refused: InvalidSignature" in capsys.readouterr().err
