"""Each payment fact's handlers run exactly once across 4 processes sharing one store.

4 worker processes (one SQLite file; one PostgreSQL database) get a shuffled stream of
the webhook deliveries of 72 payments of six shapes, every delivery twice or more, mixed
with API syncs (``get_payment``) of those payments, so each fact may be established by a
webhook in one process and an API answer in another, at the same time. Every handler run
is appended (``O_APPEND``) to a file. Afterwards each recorded fact was handled exactly
once, none is left pending, and every payment's outcome was told.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import EventType, Money
from paygate.models import Payment
from paygate.providers.fake import FakeProvider
from paygate.stores import _codec, open_store
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

WORKERS = 4
PAYMENTS = 72
SECRET = "whsec_facts_processes_only"
E = EventType
FACTS = [E.PAYMENT_SUCCEEDED, E.PAYMENT_FAILED, E.PAYMENT_AUTHORIZED, E.PAYMENT_PROCESSING,
         E.PAYMENT_ACTION_REQUIRED, E.PAYMENT_CANCELED, E.REFUND_SUCCEEDED, E.REFUND_FAILED,
         E.DISPUTE_OPENED, E.DISPUTE_WON, E.DISPUTE_LOST]  # fmt: skip


def _provider() -> FakeProvider:
    return FakeProvider(seed=41, webhook_secret=SECRET, webhook_tolerance=86_400)


def build(work: Path) -> dict[str, str]:
    """The payments, the stream (deliveries and syncs) in ``work``; payment id -> the
    outcome fact every payment must have told (succeeded or failed)."""
    rng = random.Random(11)
    provider = _provider()
    for i in range(PAYMENTS):
        order, amount, key = f"ord_{i}", Money(1_000 + i, "USD"), f"k{i}"
        shape = i % 6
        method = {1: "tok_processing", 5: "tok_declined"}.get(shape, "tok_visa")
        with contextlib.suppress(paygate.errors.CardDeclined):
            p = provider.create_payment(order_id=order, amount=amount, payment_method=method,
                                        idempotency_key=key,
                                        capture="manual" if shape == 4 else "automatic")  # fmt: skip
            if shape == 1:
                provider.settle(p.id)
            elif shape == 2:
                provider.refund_payment(p.id, amount=Money(300, "USD"), idempotency_key=key + "r")
            elif shape == 3:
                provider.refund_payment(p.id, amount=Money(400, "USD"), idempotency_key=key + "r")
            elif shape == 4:
                provider.capture_payment(p.id, idempotency_key=key + "c")
    emitted = provider.take_webhooks()
    outcome: dict[str, str] = {}
    for d in emitted:
        event = provider.parse_webhook(d.body, d.headers)
        assert event.payment_id is not None
        if event.type in (E.PAYMENT_SUCCEEDED, E.PAYMENT_FAILED):
            outcome[event.payment_id] = event.type.value
    assert len(outcome) == PAYMENTS
    stream: list[Any] = [("webhook", d) for d in emitted for _ in range(2)]
    stream += [("webhook", rng.choice(emitted)) for _ in range(len(emitted) // 2)]
    stream += [("sync", rng.choice(sorted(outcome))) for _ in range(PAYMENTS * 2)]
    rng.shuffle(stream)
    (work / "stream.pickle").write_bytes(pickle.dumps(stream))
    (work / "payments.json").write_text(json.dumps([_codec.dump(p) for p in provider.payments()]))
    return outcome


class _Answering(FakeProvider):
    """Verifies the signed deliveries; answers ``get_payment`` as the provider now holds
    the payment (its final state), as the real API would."""

    def __init__(self, payments: dict[str, Payment], **settings: Any) -> None:
        super().__init__(**settings)
        self._known = payments

    def get_payment(self, payment_id: str) -> Payment:
        return self._known[payment_id]


def worker(slot: int, work_dir: str, store_url: str) -> None:
    work = Path(work_dir)
    stream = pickle.loads((work / "stream.pickle").read_bytes())
    known = {p.id: p for p in map(_codec.load, json.loads((work / "payments.json").read_text()))}
    provider = _Answering(known, seed=41, webhook_secret=SECRET, webhook_tolerance=86_400)
    gw = paygate.connect(provider, store=store_url, webhook_lease=30.0)
    fd = os.open(work / "handled", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    gw.on(*FACTS)(lambda fact: os.write(fd, f"{fact.id}\n".encode()))
    mine = stream[slot::WORKERS]
    while mine:
        later = []
        for kind, item in mine:
            if kind == "sync":
                gw.get_payment(item)
            elif gw.handle_webhook(item.body, item.headers).in_progress:
                later.append((kind, item))  # the provider delivers it again later
        mine = later
        if mine:
            time.sleep(0.05)
    os.close(fd)
    gw.close()


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'facts.db'}?synchronous=NORMAL"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.mark.slow
def test_each_fact_is_handled_exactly_once_across_4_processes(
    shared_store: str, tmp_path: Path
) -> None:
    import multiprocessing

    started = time.perf_counter()
    outcome = build(tmp_path)
    open_store(shared_store).close()  # the schema, before the workers race to create it
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=worker, args=(slot, str(tmp_path), shared_store))
        for slot in range(WORKERS)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    handled = Counter((tmp_path / "handled").read_text().split())
    store = open_store(shared_store)
    try:
        facts = store.list_facts()
        assert store.list_facts(pending=True) == [], "a fact was left undispatched"
    finally:
        store.close()
    assert [fid for fid, n in handled.items() if n > 1] == [], "a fact handled twice"
    assert set(handled) == {f.id for f in facts}, "a recorded fact never handled, or back"
    assert len(facts) == len({f.id for f in facts})
    told = {(f.payment_id, f.type.value) for f in facts}
    assert {(pid, kind) for pid, kind in outcome.items()} <= told, "an outcome never told"
    by_source = Counter(f.source for f in facts)
    assert by_source["webhook"] and by_source["api"], by_source  # both channels raced
    print(f"\n{shared_store.split(':')[0]}: {len(facts)} facts, {sum(handled.values())} "
          f"handler runs, {dict(by_source)}, {time.perf_counter() - started:.1f} s")  # fmt: skip
