"""The sandbox's core: event bus (delivery, retries, resend), store, CLI, lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from paygate.__main__ import main
from paygate.sandbox import Sandbox
from paygate.sandbox.events import EventBus
from paygate.sandbox.store import MemoryStore, SqliteStore, open_store
from paygate.testing.sandbox import Delivery, WebhookReceiver

pytestmark = pytest.mark.filterwarnings("error")


def _event(bus: EventBus, n: int = 1) -> str:
    return bus.emit("stripe", {"id": f"evt_{n}", "type": "x.y"}, event_id=f"evt_{n}", type="x.y").id


def test_delivery_is_retried_until_the_endpoint_answers_2xx() -> None:
    answers = iter([500, 503, 200])

    def flaky(delivery: Delivery) -> int:
        return next(answers)

    with WebhookReceiver(flaky) as receiver:
        bus = EventBus(MemoryStore(), forward_to=[receiver.url], retry_delays=(0.01, 0.01, 0.01))
        try:
            event_id = _event(bus)
            receiver.wait_for(lambda d: len(d) == 3)
            assert bus.wait_idle(retries=True)
            attempts = bus.attempts(event_id)
            assert [(a.attempt, a.status, a.ok) for a in attempts] == [
                (1, 500, False), (2, 503, False), (3, 200, True),
            ]  # fmt: skip
            assert attempts[0].excerpt == "failed" and attempts[2].excerpt == "ok"
            assert all(d.body == receiver.deliveries[0].body for d in receiver.deliveries)
        finally:
            bus.close()


def test_retries_stop_after_the_schedule_and_unreachable_endpoints_are_recorded() -> None:
    with WebhookReceiver(status=500) as receiver:
        bus = EventBus(
            MemoryStore(),
            forward_to=[receiver.url, "http://127.0.0.1:9/closed"],
            retry_delays=(0.01,),
        )
        try:
            event_id = _event(bus)
            receiver.wait_for(lambda d: len(d) == 2)
            assert bus.wait_idle(retries=True)
            attempts = bus.attempts(event_id)
            by_url = {(a.url, a.attempt): a for a in attempts}
            assert len(attempts) == 4  # two attempts (first + one retry) to each endpoint
            refused = by_url[("http://127.0.0.1:9/closed", 1)]
            assert refused.status is None and "Error" in refused.excerpt
        finally:
            bus.close()


def test_resend_delivers_once_more_signed_afresh(sandbox: Sandbox) -> None:
    with WebhookReceiver() as receiver:
        sandbox.bus.forward_to.append(receiver.url)
        event_id = _event(sandbox.bus)
        receiver.wait_for(lambda d: len(d) == 1)
        answer = httpx.post(f"{sandbox.base_url}/_sandbox/events/{event_id}/resend")
        assert answer.json() == {"resent": event_id, "to": [receiver.url]}
        receiver.wait_for(lambda d: len(d) == 2)
        assert sandbox.bus.wait_idle()
        assert [a.attempt for a in sandbox.bus.attempts(event_id)] == [1, 2]
        first, second = receiver.deliveries
        assert first.body == second.body
        assert "Stripe-Signature" in second.headers


def test_admin_api_lists_events_with_their_attempts(sandbox: Sandbox) -> None:
    with WebhookReceiver() as receiver:
        sandbox.bus.forward_to.append(receiver.url)
        event_id = _event(sandbox.bus, 7)
        receiver.wait_for(lambda d: len(d) == 1)
        assert sandbox.bus.wait_idle()
    listing = httpx.get(f"{sandbox.base_url}/_sandbox/events").json()["events"]
    assert [e["id"] for e in listing] == [event_id]
    assert listing[0]["attempts"][0]["status"] == 200
    one = httpx.get(f"{sandbox.base_url}/_sandbox/events/{event_id}").json()
    assert one["payload"] == {"id": "evt_7", "type": "x.y"}
    assert httpx.get(f"{sandbox.base_url}/_sandbox/events/evt_nope").status_code == 404


def test_cli_events_and_resend_talk_to_the_running_sandbox(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    event_id = _event(sandbox.bus, 3)
    assert main(["sandbox", "events", "--url", sandbox.base_url]) == 0
    assert f"stripe  {event_id}  x.y" in capsys.readouterr().out
    assert main(["sandbox", "resend", event_id, "--url", sandbox.base_url]) == 0
    assert f"resending {event_id}" in capsys.readouterr().out
    assert main(["sandbox", "resend", "evt_missing", "--url", sandbox.base_url]) == 1
    assert main(["sandbox", "events", "--url", "http://127.0.0.1:9"]) == 1
    assert "no sandbox answering" in capsys.readouterr().err


def test_sqlite_store_keeps_state_events_and_secrets_across_restarts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sandbox.db'}"
    with Sandbox(port=0, store=url) as first:
        secret = first.stripe.webhook_secret
        with first.state.transaction("stripe") as engine:
            customer = engine.create_customer(email="a@example.com", name="A", idempotency_key="k")
        event_id = _event(first.bus, 9)
    with Sandbox(port=0, store=url) as second:
        assert second.stripe.webhook_secret == secret
        assert second.state.engine("stripe")._objects[customer.id]["email"] == "a@example.com"
        assert second.bus.get(event_id).payload()["id"] == "evt_9"


def test_open_store_refuses_unknown_urls() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    with pytest.raises(Exception, match="memory:// or sqlite:///"):
        open_store("postgres://x")


def test_sqlite_store_round_trips_attempts(tmp_path: Path) -> None:
    from paygate.sandbox.store import DeliveryAttempt, StoredEvent

    store = SqliteStore(str(tmp_path / "s.db"))
    try:
        store.add_event(StoredEvent("evt_1", "stripe", "t", 1.0, b"{}"))
        store.add_attempt(DeliveryAttempt("evt_1", "http://x", 1, 2.0, None, "refused", 3.0))
        assert store.attempts_for("evt_1")[0].excerpt == "refused"
        assert store.list_events("paypal") == []
        store.save_state("a", {"b": 1})
        assert store.load_state("a") == {"b": 1}
    finally:
        store.close()


def test_unknown_paths_answer_404_and_info_lists_the_providers(sandbox: Sandbox) -> None:
    assert httpx.get(f"{sandbox.base_url}/nope").status_code == 404
    info = httpx.get(f"{sandbox.base_url}/_sandbox/info").json()
    assert info["providers"]["stripe"]["base_url"] == sandbox.base_url
    assert info["providers"]["paypal"]["base_url"] == sandbox.base_url + "/paypal"
    assert info["providers"]["stripe"]["secrets"]["webhook_secret"].startswith("whsec_")
    assert json.dumps(info)


def test_cli_serves_prints_urls_and_secrets_and_stops_on_sigterm(tmp_path: Path) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys

    store = tmp_path / "sandbox.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "paygate", "sandbox", "--port", "0", "--store",
         f"sqlite:///{store}", "--forward-to", "http://127.0.0.1:9/hooks"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert process.stdout is not None
    try:
        banner = [process.stdout.readline() for _ in range(6)]
        url = re.search(r"http://127\.0\.0\.1:\d+", banner[0])
        assert url, banner
        assert banner[3].strip() == f"stripe: base_url={url.group(0)}"
        assert re.fullmatch(r"  webhook_secret=whsec_[0-9a-f]{48}\n", banner[5])
        created = httpx.post(
            url.group(0) + "/v1/customers",
            data={"email": "a@example.com"},
            headers={"Authorization": "Bearer sk_test_x"},
        )
        assert created.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        rest = process.stdout.read()
        process.stdout.close()
    assert "webhooks to: http://127.0.0.1:9/hooks" in rest
    with Sandbox(port=0, store=f"sqlite:///{store}") as again:
        customer_id = created.json()["id"]
        assert again.state.engine("stripe")._objects[customer_id]["email"] == "a@example.com"


def test_the_docs_example_test_passes(sandbox: Sandbox) -> None:
    """docs/sandbox.md's "In tests" example is run as written."""
    import re

    text = (Path(__file__).parent.parent / "docs" / "sandbox.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(from urllib.parse.*?)```", text, re.S)
    assert block, "docs/sandbox.md lost its test example"
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), "docs/sandbox.md", "exec"), namespace)
    namespace["test_checkout_is_paid"](sandbox)  # type: ignore[operator]


def test_sqlite_state_is_written_soon_after_a_change_not_only_at_stop(tmp_path: Path) -> None:
    import time

    from paygate.sandbox.state import SAVE_DELAY

    path = tmp_path / "sandbox.db"
    with Sandbox(port=0, store=f"sqlite:///{path}") as running:
        with running.state.transaction("stripe") as engine:
            customer = engine.create_customer(email="b@example.com", name=None, idempotency_key="k")
        deadline = time.monotonic() + 10 * SAVE_DELAY + 5
        reader = SqliteStore(str(path))  # another connection, as after a crash
        try:
            while True:
                saved = reader.load_state("provider:stripe")
                if saved and customer.id in saved["engine"]["objects"]:
                    break
                assert time.monotonic() < deadline, "state not written while running"
                time.sleep(0.05)
        finally:
            reader.close()
