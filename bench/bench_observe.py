"""What observability costs per Gateway call: create_payment and handle_webhook on the fake
provider and the memory store, with OpenTelemetry off (``telemetry`` None: the path taken
without ``opentelemetry-api``), on the API's no-op providers (installed, nothing
configured), and recording into the SDK (in-memory exporter and metric reader). The modes
take turns round by round, so that a change in the machine's load hits them alike.

Run: ``python bench/bench_observe.py`` (or ``nox -s bench -- observe``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import paygate
from paygate import Money, _observe
from paygate.providers.fake import FakeProvider


def one_round(calls: int) -> tuple[float, float]:
    """Microseconds per create_payment, per handle_webhook."""
    provider = FakeProvider(seed=3)
    with paygate.connect(provider, store="memory://") as gw:
        start = time.perf_counter()
        for i in range(calls):
            gw.create_payment(
                order_id=f"o{i}", amount=Money.of("9.99", "USD"), payment_method="tok_visa"
            )
        create = (time.perf_counter() - start) / calls * 1e6
        deliveries = provider.take_webhooks()
        start = time.perf_counter()
        for d in deliveries:
            gw.handle_webhook(d.body, d.headers)
        hook = (time.perf_counter() - start) / len(deliveries) * 1e6
    return create, hook


def modes() -> dict[str, Any]:
    live = _observe.telemetry
    found: dict[str, Any] = {"off (no opentelemetry-api)": None}
    if live is None:
        return found
    found["API only, no SDK configured"] = live
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    except ImportError:
        return found
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    found["SDK recording (in-memory)"] = _observe.Telemetry(tracer_provider, meter_provider)
    return found


def main() -> None:
    calls, rounds = 300, 7
    live = _observe.telemetry
    figures: dict[str, list[tuple[float, float]]] = {}
    chosen = modes()
    one_round(calls)  # warm up
    for _ in range(rounds):
        for label, telemetry in chosen.items():
            _observe.telemetry = telemetry
            figures.setdefault(label, []).append(one_round(calls))
    _observe.telemetry = live
    for label, runs in figures.items():
        create = statistics.median(r[0] for r in runs)
        hook = statistics.median(r[1] for r in runs)
        print(f"  {label:<28} create_payment {create:>7.1f} us/call   "
              f"handle_webhook {hook:>7.1f} us/call   (median of {rounds})")  # fmt: skip


if __name__ == "__main__":
    main()
