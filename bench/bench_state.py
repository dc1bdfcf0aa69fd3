"""State-machine throughput: ``paygate.state.apply`` over realistic webhook sequences.

Each scenario is the event sequence one payment sees, duplicates and late arrivals
included, as providers deliver them. Figures: transitions (``apply`` calls) per second,
best of ``--repeat`` rounds, overall and per scenario; and the cost of mapping a webhook
event to a state-machine input (``event_from_webhook``).

    python bench/bench_state.py [--rounds N] [--repeat R]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import datetime, timezone

from paygate import EventType, Money, Payment, PaymentStatus, Refund, RefundStatus, WebhookEvent
from paygate.state import PaymentEvent, PaymentState, Trigger, apply, event_from_webhook

T = Trigger
AMOUNT = 10_000

SCENARIOS: dict[str, list[PaymentEvent]] = {
    "card, succeeds (webhook delivered twice)": [
        PaymentEvent(T.CREATED),
        PaymentEvent(T.SUCCEEDED),
        PaymentEvent(T.SUCCEEDED),
    ],
    "3-D Secure, then processing, then success": [
        PaymentEvent(T.CREATED),
        PaymentEvent(T.ACTION_REQUIRED),
        PaymentEvent(T.PROCESSING),
        PaymentEvent(T.SUCCEEDED),
        PaymentEvent(T.PROCESSING),  # late
    ],
    "declined, retried with another card": [
        PaymentEvent(T.CREATED),
        PaymentEvent(T.FAILED),
        PaymentEvent(T.ACTION_REQUIRED),
        PaymentEvent(T.SUCCEEDED),
        PaymentEvent(T.FAILED),  # late
    ],
    "two partial refunds, one reported twice": [
        PaymentEvent(T.CREATED),
        PaymentEvent(T.SUCCEEDED),
        PaymentEvent(T.REFUNDED, amount=3_000, ref="re_1"),
        PaymentEvent(T.REFUNDED, amount=3_000, ref="re_1"),
        PaymentEvent(T.REFUNDED, amount=7_000, ref="re_2"),
    ],
    "manual capture, partial": [
        PaymentEvent(T.CREATED),
        PaymentEvent(T.AUTHORIZED),
        PaymentEvent(T.SUCCEEDED, amount=8_000),
        PaymentEvent(T.REFUNDED, amount=8_000, ref="re_1"),
    ],
    "dispute won after a partial refund": [
        PaymentEvent(T.SUCCEEDED),
        PaymentEvent(T.REFUNDED, amount=1_000, ref="re_1"),
        PaymentEvent(T.DISPUTE_OPENED),
        PaymentEvent(T.DISPUTE_OPENED),
        PaymentEvent(T.DISPUTE_WON),
    ],
    "dispute lost, then late events": [
        PaymentEvent(T.SUCCEEDED),
        PaymentEvent(T.DISPUTE_OPENED),
        PaymentEvent(T.DISPUTE_LOST),
        PaymentEvent(T.PROCESSING),
        PaymentEvent(T.DISPUTE_OPENED),
    ],
    "out of order: refund before success": [
        PaymentEvent(T.REFUNDED, amount=AMOUNT, ref="re_1"),
        PaymentEvent(T.SUCCEEDED),
        PaymentEvent(T.CREATED),
    ],
}


def run_scenario(events: list[PaymentEvent], rounds: int) -> None:
    start = PaymentState(PaymentStatus.PENDING, AMOUNT)
    for _ in range(rounds):
        state = start
        for event in events:
            state = apply(state, event).state


def best_seconds(work: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best


def webhook_events() -> list[WebhookEvent]:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    usd = Money(AMOUNT, "USD")
    payment = Payment("pay_1", "fake", "order-1", usd, PaymentStatus.SUCCEEDED)
    refund = Refund("re_1", "fake", "pay_1", Money(500, "USD"), RefundStatus.SUCCEEDED)
    return [
        WebhookEvent("evt_1", "fake", EventType.PAYMENT_SUCCEEDED, when, payment),
        WebhookEvent("evt_2", "fake", EventType.REFUND_SUCCEEDED, when, refund),
        WebhookEvent("evt_3", "fake", EventType.PAYMENT_PROCESSING, when, payment),
        WebhookEvent("evt_4", "fake", EventType.UNKNOWN, when, None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5_000, help="sequences per scenario")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best one counts")
    args = parser.parse_args()

    print(f"paygate.state.apply, best of {args.repeat}, {args.rounds} payments per scenario")
    total_events = total_seconds = 0.0
    for name, events in SCENARIOS.items():
        seconds = best_seconds(lambda ev=events: run_scenario(ev, args.rounds), args.repeat)
        count = len(events) * args.rounds
        total_events += count
        total_seconds += seconds
        print(f"  {name:<44} {count / seconds:>11,.0f} transitions/s")
    print(f"  {'all scenarios':<44} {total_events / total_seconds:>11,.0f} transitions/s")
    print(f"  {'':<44} {total_seconds / total_events * 1e6:>11.2f} us per transition")

    events = webhook_events()

    def map_all() -> None:
        for _ in range(args.rounds):
            for event in events:
                event_from_webhook(event)

    seconds = best_seconds(map_all, args.repeat)
    print(
        f"  {'event_from_webhook (mapping only)':<44} "
        f"{len(events) * args.rounds / seconds:>11,.0f} events/s"
    )


if __name__ == "__main__":
    main()
