"""Fake provider throughput: create_payment, refund_payment and parse_webhook per second.

The fake is what application test suites (and the Gateway's benchmarks) run on, so its own
cost should stay small next to theirs. Single thread, and create_payment from 8 threads on
one provider (one lock). Printed, not asserted.

    python bench/bench_fake_provider.py [--n 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

from paygate import Money
from paygate.providers.fake import FakeProvider

AMOUNT = Money(1999, "USD")


def _best(rounds: int, run: Callable[[], float]) -> tuple[float, float]:
    rates = [run() for _ in range(rounds)]
    return max(rates), statistics.median(rates)


def bench_create(n: int) -> float:
    fake = FakeProvider(seed=0)
    start = time.perf_counter()
    for i in range(n):
        fake.create_payment(
            order_id=f"o{i}", amount=AMOUNT, payment_method="tok_visa", idempotency_key=f"k{i}"
        )
    return n / (time.perf_counter() - start)


def bench_refund(n: int) -> float:
    fake = FakeProvider(seed=0)
    ids = [
        fake.create_payment(
            order_id=f"o{i}", amount=AMOUNT, payment_method="tok_visa", idempotency_key=f"k{i}"
        ).id
        for i in range(n)
    ]
    start = time.perf_counter()
    for i, payment_id in enumerate(ids):
        fake.refund_payment(payment_id, amount=Money(500, "USD"), idempotency_key=f"r{i}")
    return n / (time.perf_counter() - start)


def bench_parse(n: int) -> float:
    fake = FakeProvider(seed=0)
    for i in range((n + 1) // 2):  # two deliveries each: payment.created, payment.succeeded
        fake.create_payment(
            order_id=f"o{i}", amount=AMOUNT, payment_method="tok_visa", idempotency_key=f"k{i}"
        )
    deliveries = fake.take_webhooks()[:n]
    start = time.perf_counter()
    for delivery in deliveries:
        fake.parse_webhook(delivery.body, delivery.headers)
    return n / (time.perf_counter() - start)


def bench_create_threads(n: int, threads: int = 8) -> float:
    fake = FakeProvider(seed=0)
    per_thread = n // threads

    def work(t: int) -> None:
        for i in range(per_thread):
            fake.create_payment(
                order_id=f"o{t}-{i}",
                amount=AMOUNT,
                payment_method="tok_visa",
                idempotency_key=f"k{t}-{i}",
            )

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per_thread * threads / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"fake provider, n={args.n}, best/median of {args.rounds} rounds")
    for label, run in [
        ("create_payment (tok_visa, 2 webhooks each)", lambda: bench_create(args.n)),
        ("refund_payment (partial)", lambda: bench_refund(args.n)),
        ("parse_webhook (verify + normalize)", lambda: bench_parse(args.n)),
        ("create_payment from 8 threads", lambda: bench_create_threads(args.n)),
    ]:
        best, median = _best(args.rounds, run)
        print(f"  {label:<45} {best:>9,.0f}/s best  {median:>9,.0f}/s median")


if __name__ == "__main__":
    main()
