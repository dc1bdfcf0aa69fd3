"""Square webhook throughput: SquareProvider.parse_webhook (verify + parse + normalize).

For scale it also times the SDK's own ``square.utils.webhooks_helper.verify_signature``
followed by ``json.loads`` (verification and parsing only, no normalization). Payloads are
Square's example events from ../shared/reference/square/api.json (payment.updated,
refund.updated, dispute.created, subscription.updated, invoice.payment_made), made unique
per event; printed, not asserted.

    python bench/bench_square_webhook.py [--events 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from square.utils.webhooks_helper import verify_signature

from paygate.providers._square_webhook import sign
from paygate.providers.square import SquareProvider

KEY = "bench-square-signature-key"
URL = "https://shop.example/webhooks/square"
HEADER = "x-square-hmacsha256-signature"
EXAMPLES = (
    "PaymentUpdatedEvent",
    "RefundUpdatedEvent",
    "DisputeCreatedEvent",
    "SubscriptionUpdatedEvent",
    "InvoicePaymentMadeEvent",
)
_REFERENCE = Path(
    os.environ.get(
        "PAYGATE_REFERENCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "reference"
    )
)


def _examples() -> tuple[list[dict[str, Any]], str]:
    path = _REFERENCE / "square" / "api.json"
    if path.is_file():
        schemas = json.loads(path.read_text(encoding="utf-8"))["components"]["schemas"]
        return [schemas[name]["example"] for name in EXAMPLES], str(path)
    # no reference checkout: a smaller stand-in of the same shape
    payment = {
        "id": "PAY",
        "status": "COMPLETED",
        "amount_money": {"amount": 100, "currency": "USD"},
        "reference_id": "ord",
        "created_at": "2026-01-01T00:00:00.000Z",
    }
    event = {
        "merchant_id": "M",
        "type": "payment.updated",
        "event_id": "e",
        "created_at": "2026-01-01T00:00:00.000Z",
        "data": {"type": "payment", "id": "PAY", "object": {"payment": payment}},
    }
    return [event], "built-in stand-in (reference not found)"


def payloads(count: int) -> list[tuple[bytes, str]]:
    examples, source = _examples()
    print(f"payload source: {source}")
    signed = []
    for i in range(count):
        event = copy.deepcopy(examples[i % len(examples)])
        event["event_id"] = f"evt-bench-{i:06d}"
        body = json.dumps(event).encode("utf-8")
        signed.append((body, sign(body, signature_key=KEY, notification_url=URL)))
    return signed


def rate(fn: Any, signed: list[tuple[bytes, str]], rounds: int) -> float:
    """Best-of-``rounds`` events per second over all payloads."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for body, header in signed:
            fn(body, header)
        best = min(best, time.perf_counter() - start)
    return len(signed) / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    signed = payloads(args.events)
    provider = SquareProvider(
        access_token="bench-token", location_id="L", webhook_signature_key=KEY, webhook_url=URL
    )
    size = sum(len(b) for b, _ in signed) // len(signed)

    def paygate_parse(body: bytes, header: str) -> Any:
        return provider.parse_webhook(body, {HEADER: header})

    def sdk_verify_and_load(body: bytes, header: str) -> Any:
        text = body.decode("utf-8")
        if not verify_signature(
            request_body=text, signature_header=header, signature_key=KEY, notification_url=URL
        ):
            raise ValueError("bad signature")
        return json.loads(text)

    # same events before timing anything
    for body, header in signed[: len(EXAMPLES)]:
        ours, theirs = paygate_parse(body, header), sdk_verify_and_load(body, header)
        assert ours.id == theirs["event_id"] and ours.provider_type == theirs["type"]

    ours = rate(paygate_parse, signed, args.rounds)
    theirs = rate(sdk_verify_and_load, signed, args.rounds)
    print(
        f"payloads: {len(signed)} signed events ({len(_examples()[0])} kinds), ~{size} bytes "
        f"each; best of {args.rounds} rounds; python {sys.version.split()[0]}, "
        f"squareup {metadata.version('squareup')}"
    )
    print(f"SquareProvider.parse_webhook (verify+parse+normalize) {ours:>10,.0f} events/s")
    print(f"SDK verify_signature + json.loads (no normalization)  {theirs:>10,.0f} events/s")
    provider.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
