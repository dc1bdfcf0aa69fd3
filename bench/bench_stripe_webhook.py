"""Stripe webhook throughput: paygate's parse_webhook vs stripe.Webhook.construct_event.

Both verify the same signed payloads (payment_intent events shaped like Stripe's example
objects in ../shared/reference/stripe/fixtures3.json) in one run; printed, not asserted.

    python bench/bench_stripe_webhook.py [--events 300] [--rounds 7]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import stripe

from paygate.providers._stripe_webhook import sign
from paygate.providers.stripe import StripeProvider

SECRET = "whsec_bench_secret_value"
_REFERENCE = Path(
    os.environ.get(
        "PAYGATE_REFERENCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "reference"
    )
)


def _examples() -> tuple[dict[str, Any], dict[str, Any], str]:
    path = _REFERENCE / "stripe" / "fixtures3.json"
    if path.is_file():
        resources = json.loads(path.read_text(encoding="utf-8"))["resources"]
        return resources["event"], resources["payment_intent"], str(path)
    # no reference checkout: a smaller stand-in of the same shape
    event = {
        "object": "event",
        "api_version": None,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
    }
    intent = {
        "object": "payment_intent",
        "amount": 1099,
        "currency": "usd",
        "metadata": {},
        "status": "succeeded",
        "amount_received": 1099,
        "capture_method": "automatic",
        "client_secret": "pi_x_secret_y",
        "payment_method_types": ["card"],
    }
    return event, intent, "built-in stand-in (reference not found)"


def payloads(count: int, now: int) -> list[tuple[bytes, str]]:
    event_example, intent_example, source = _examples()
    print(f"payload source: {source}")
    signed = []
    for i in range(count):
        intent = copy.deepcopy(intent_example)
        intent.update(
            id=f"pi_bench_{i:06d}",
            amount=1000 + i,
            amount_received=1000 + i,
            status="succeeded",
            last_payment_error=None,
            metadata={"order_id": f"ord_{i}"},
        )
        event = copy.deepcopy(event_example)
        event.update(
            id=f"evt_bench_{i:06d}",
            type="payment_intent.succeeded",
            created=now,
            data={"object": intent},
        )
        body = json.dumps(event).encode("utf-8")
        signed.append((body, sign(body, SECRET, now)))
    return signed


def rates(
    first: Any, second: Any, signed: list[tuple[bytes, str]], rounds: int
) -> tuple[float, float, float]:
    """Events/s of ``first`` and ``second`` (best round each) and the median per-round ratio.

    The two are timed alternately, round by round, so that load from other processes on a
    shared machine hits both alike.
    """
    best = [float("inf"), float("inf")]
    ratios = []
    for _ in range(rounds):
        took = []
        for index, fn in enumerate((first, second)):
            start = time.perf_counter()
            for body, header in signed:
                fn(body, header)
            took.append(time.perf_counter() - start)
            best[index] = min(best[index], took[-1])
        ratios.append(took[1] / took[0])
    return len(signed) / best[0], len(signed) / best[1], statistics.median(ratios)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    now = int(time.time())
    signed = payloads(args.events, now)
    provider = StripeProvider(api_key="sk_test_bench", webhook_secret=SECRET)
    size = sum(len(b) for b, _ in signed) // len(signed)

    def paygate_parse(body: bytes, header: str) -> Any:
        return provider.parse_webhook(body, {"Stripe-Signature": header})

    def sdk_construct(body: bytes, header: str) -> Any:
        return stripe.Webhook.construct_event(
            body, header, SECRET, tolerance=300, api_key="sk_test_bench"
        )

    # same answers before timing anything
    for body, header in signed[:3]:
        ours, theirs = paygate_parse(body, header), sdk_construct(body, header)
        assert ours.id == theirs.id and ours.object.id == theirs.data.object.id

    ours, theirs, median_ratio = rates(paygate_parse, sdk_construct, signed, args.rounds)
    print(
        f"payloads: {len(signed)} signed payment_intent.succeeded events, ~{size} bytes each; "
        f"best of {args.rounds} rounds; python {sys.version.split()[0]}, stripe {stripe.VERSION}"
    )
    print(f"StripeProvider.parse_webhook      {ours:>10,.0f} events/s")
    print(f"stripe.Webhook.construct_event    {theirs:>10,.0f} events/s")
    print(f"ratio (paygate / SDK), best/best  {ours / theirs:>10.1f}x")
    print(f"ratio, median of {args.rounds:>2} rounds       {median_ratio:>10.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
