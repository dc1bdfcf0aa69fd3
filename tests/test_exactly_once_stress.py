"""Exactly-once webhook processing under fire, on SQLite and on PostgreSQL.

8 worker processes share one store and a shuffled stream of deliveries of many payments'
events, some duplicated. Workers are SIGKILLed mid-run (mid-transaction, mid-handler,
wherever they happen to be) and restarted. As a provider would, a delivery that got no
answer (its worker died) or an "in progress elsewhere" answer is delivered again later.
Afterwards:

* every event was recorded and processed (none lost);
* the transition log holds at most one transition per event, exactly one for each event
  whose outcome is ``applied`` (none applied twice);
* every payment's status and amounts equal the pure state machine applied to its events
  in the order the provider emitted them.

Sizes: by default the issue's full size (5,000 payments' 14,166 events in 20,000
deliveries, 8 workers, 6 kills; about 80 s for both stores on an idle 2-core machine);
``PAYGATE_STRESS=quick`` runs a reduced size for quick local runs (1,200 payments' 3,400
events in 4,800 deliveries, 8 workers, 3 kills). Either way 29% of the
deliveries repeat an earlier one. Each run prints its size and time (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import EventType, Money, PaymentStatus
from paygate.models import Payment, WebhookDelivery
from paygate.providers.fake import FakeProvider
from paygate.state import PaymentState, apply_all, event_from_webhook
from paygate.stores import _codec, open_store
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

S = PaymentStatus
FULL = os.environ.get("PAYGATE_STRESS", "").lower() != "quick"
WORKERS = 8
PAYMENTS = 5_000 if FULL else 1_200
DELIVERIES = 20_000 if FULL else 4_800
KILLS = 6 if FULL else 3
#: short, so a killed worker's claims come free within the test
LEASE = 1.5
SECRET = "whsec_stress_test_only"


@dataclass(frozen=True)
class Scenario:
    deliveries: list[WebhookDelivery]  # the stream, duplicates included, shuffled
    event_payment: dict[str, str]  # event id -> payment id
    expected: dict[str, tuple[S, int, int]]  # payment id -> (status, captured, refunded)
    succeeded_events: set[str]


def _provider() -> FakeProvider:
    return FakeProvider(seed=77, webhook_secret=SECRET, webhook_tolerance=86_400)


def build_scenario(payments: int, deliveries: int, seed: int = 7) -> tuple[Scenario, list[Any]]:
    """Payments of six shapes made at the fake provider; their signed webhooks, some
    duplicated up to ``deliveries``, shuffled; and what each payment must end as."""
    rng = random.Random(seed)
    provider = _provider()
    for i in range(payments):
        order, usd = f"ord_{i}", Money(1_000 + i, "USD")
        shape = i % 6
        key = f"k{i}"
        if shape == 0:  # created, succeeded
            provider.create_payment(order_id=order, amount=usd, payment_method="tok_visa",
                                    idempotency_key=key)  # fmt: skip
        elif shape == 1:  # created, processing, succeeded
            p = provider.create_payment(order_id=order, amount=usd,
                                        payment_method="tok_processing", idempotency_key=key)  # fmt: skip
            provider.settle(p.id)
        elif shape == 2:  # created, succeeded, refunded in part
            p = provider.create_payment(order_id=order, amount=usd, payment_method="tok_visa",
                                        idempotency_key=key)  # fmt: skip
            provider.refund_payment(p.id, amount=Money(300, "USD"), idempotency_key=key + "r")
        elif shape == 3:  # created, succeeded, two refunds: in full
            p = provider.create_payment(order_id=order, amount=usd, payment_method="tok_visa",
                                        idempotency_key=key)  # fmt: skip
            provider.refund_payment(p.id, amount=Money(400, "USD"), idempotency_key=key + "r")
            provider.refund_payment(p.id, idempotency_key=key + "s")
        elif shape == 4:  # created, authorized, captured
            p = provider.create_payment(order_id=order, amount=usd, payment_method="tok_visa",
                                        capture="manual", idempotency_key=key)  # fmt: skip
            provider.capture_payment(p.id, idempotency_key=key + "c")
        else:  # created, failed (a decline)
            with contextlib.suppress(paygate.errors.CardDeclined):
                provider.create_payment(order_id=order, amount=usd,
                                        payment_method="tok_declined", idempotency_key=key)  # fmt: skip
    emitted = provider.take_webhooks()
    by_payment: dict[str, list[Any]] = {}
    event_payment: dict[str, str] = {}
    succeeded: set[str] = set()
    for d in emitted:
        event = provider.parse_webhook(d.body, d.headers)
        assert event.payment_id is not None
        by_payment.setdefault(event.payment_id, []).append(event)
        event_payment[event.id] = event.payment_id
        if event.type is EventType.PAYMENT_SUCCEEDED:
            succeeded.add(event.id)
    expected: dict[str, tuple[S, int, int]] = {}
    for pid, events in by_payment.items():
        first = events[0].object
        assert isinstance(first, Payment)
        changes = [c for c in map(event_from_webhook, events) if c is not None]
        final = apply_all(PaymentState(S.PENDING, first.amount.amount), changes)
        expected[pid] = (final.status, final.captured, final.refunded)
    assert len(emitted) <= deliveries, "more events than deliveries: lower the payments"
    stream = list(emitted) + [rng.choice(emitted) for _ in range(deliveries - len(emitted))]
    rng.shuffle(stream)
    # what the provider answers for get_payment (a refund met before its payment)
    at_provider = [_codec.dump(p) for p in provider.payments()]
    return Scenario(stream, event_payment, expected, succeeded), at_provider


class _ReplayingProvider(FakeProvider):
    """The fake provider in a worker process: verifies the signed deliveries, and answers
    ``get_payment`` from the generating provider's final state (as the real API would)."""

    def __init__(self, payments: dict[str, Payment], **settings: Any) -> None:
        super().__init__(**settings)
        self._known = payments

    def get_payment(self, payment_id: str) -> Payment:
        return self._known[payment_id]


def _acked(path: Path) -> set[int]:
    if not path.exists():
        return set()
    # a worker killed mid-write leaves a partial last line: not an ack
    return {int(line) for line in path.read_text().split("\n")[:-1] if line}


def worker(slot: int, work_dir: str, store_url: str) -> None:
    """Deliver this slot's share of the stream; ack each delivery that got a final answer
    (in an append-only file, so a restarted worker carries on where the killed one was)."""
    work = Path(work_dir)
    with open(work / "stream.pickle", "rb") as f:
        stream: list[WebhookDelivery] = pickle.load(f)
    known = {p.id: p for p in map(_codec.load, json.loads((work / "payments.json").read_text()))}
    provider = _ReplayingProvider(known, seed=77, webhook_secret=SECRET,
                                  webhook_tolerance=86_400)  # fmt: skip
    gw = paygate.connect(provider, store=store_url, webhook_lease=LEASE)
    handled_fd = os.open(work / f"handled.{slot}", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    gw.on(EventType.PAYMENT_SUCCEEDED)(lambda event: os.write(handled_fd, f"{event.id}\n".encode()))
    ack_path = work / f"ack.{slot}"
    mine = [i for i in range(slot, len(stream), WORKERS) if i not in _acked(ack_path)]
    ack_fd = os.open(ack_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    while mine:
        later: list[int] = []
        for i in mine:
            result = gw.handle_webhook(stream[i].body, stream[i].headers)
            if result.in_progress:
                later.append(i)  # the provider delivers it again later
            else:
                os.write(ack_fd, f"{i}\n".encode())
        mine = later
        if mine:
            time.sleep(0.2)
    gw.close()


def run_stress(store_url: str, work: Path) -> dict[str, Any]:
    import multiprocessing

    started = time.perf_counter()
    scenario, at_provider = build_scenario(PAYMENTS, DELIVERIES)
    with open(work / "stream.pickle", "wb") as f:
        pickle.dump(scenario.deliveries, f)
    (work / "payments.json").write_text(json.dumps(at_provider))
    open_store(store_url).close()  # the schema, before the workers race to create it
    ctx = multiprocessing.get_context("spawn")
    procs = {s: ctx.Process(target=worker, args=(s, str(work), store_url)) for s in range(WORKERS)}
    for p in procs.values():
        p.start()
    rng = random.Random(3)
    kills = 0
    per_slot = len(scenario.deliveries) // WORKERS
    deadline = time.monotonic() + 600
    while any(p.is_alive() for p in procs.values()):
        assert time.monotonic() < deadline, "stress run did not finish in 10 minutes"
        time.sleep(0.05)
        if kills < KILLS:
            slot = rng.randrange(WORKERS)
            done = len(_acked(work / f"ack.{slot}"))
            # kill somewhere in the middle of the slot's work, once it is under way
            if procs[slot].is_alive() and per_slot * 0.1 < done < per_slot * 0.8:
                assert procs[slot].pid is not None
                os.kill(procs[slot].pid, signal.SIGKILL)
                procs[slot].join()
                kills += 1
                procs[slot] = ctx.Process(target=worker, args=(slot, str(work), store_url))
                procs[slot].start()
    for p in procs.values():
        p.join()
        assert p.exitcode == 0
    elapsed = time.perf_counter() - started
    return {"scenario": scenario, "kills": kills, "elapsed": elapsed}


def check(store_url: str, work: Path, scenario: Scenario) -> None:
    store = open_store(store_url)
    events = {e.event_id: e for e in store.list_events()}
    assert set(events) == set(scenario.event_payment), "an event was lost"
    unprocessed = [e.event_id for e in events.values() if not e.processed]
    assert unprocessed == []
    assert sum(e.deliveries for e in events.values()) >= len(scenario.deliveries)
    applied = {eid for eid, e in events.items() if e.outcome == "applied"}
    transitions: Counter[str] = Counter()
    for pid, (status, captured, refunded) in scenario.expected.items():
        record = store.get_payment(pid)
        assert record is not None, pid
        state = record.state
        assert (state.status, state.captured, state.refunded) == (status, captured, refunded), pid
        log = store.history(pid)
        assert all(t.source == "webhook" and t.event_id for t in log)
        transitions.update(t.event_id for t in log if t.event_id)
        assert log[-1].new_status is status
    assert [eid for eid, n in transitions.items() if n > 1] == [], "an event applied twice"
    assert set(transitions) == applied, "an applied event without its transition, or back"
    # a worker killed after claiming a fact leaves it to the next dispatch (a cron here)
    cron = paygate.connect(_provider(), store=store, webhook_lease=LEASE)
    cron_fd = os.open(work / "handled.cron", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    cron.on(EventType.PAYMENT_SUCCEEDED)(lambda fact: os.write(cron_fd, f"{fact.id}\n".encode()))
    time.sleep(LEASE)  # the killed workers' leases run out
    cron.dispatch_pending(limit=len(scenario.expected))
    os.close(cron_fd)
    assert store.list_facts(pending=True) == []
    handled: set[str] = set()
    for path in work.glob("handled.*"):
        handled.update(path.read_text().split())
    # handlers hear facts: every captured payment told its payment.succeeded, at least
    # once (a worker killed between a handler and marking the fact done runs it again)
    told = {
        f"fake:{pid}:payment.succeeded" for pid, (_, got, _) in scenario.expected.items() if got
    }
    assert told and handled == told
    store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def stress_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        # NORMAL: a killed process never loses a committed WAL transaction (only power
        # loss could), and the run is shorter
        return f"sqlite:///{tmp_path / 'stress.db'}?synchronous=NORMAL"
    url: str = request.getfixturevalue("pg_url")
    return url.replace("pool_max=4", "pool_max=2")


@pytest.mark.slow
def test_exactly_once_with_8_workers_killed_and_restarted(
    stress_store: str, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    outcome = run_stress(stress_store, work)
    scenario: Scenario = outcome["scenario"]
    unique = len(scenario.event_payment)
    print(f"\nstress {stress_store.split(':', 1)[0]}: {len(scenario.expected)} payments, "
          f"{unique} events, {len(scenario.deliveries)} deliveries "
          f"({1 - unique / len(scenario.deliveries):.0%} of them repeats), {WORKERS} workers, "
          f"{outcome['kills']} SIGKILLs, {outcome['elapsed']:.1f}s")  # fmt: skip
    assert outcome["kills"] == KILLS
    check(stress_store, work, scenario)
