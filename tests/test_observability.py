"""Observability (issue 16, point 5): the structured ``paygate_`` fields on paygate's log
lines, and the OpenTelemetry spans and metrics of provider calls and webhooks, on the sync
and the async face, read back through the SDK's in-memory span exporter and metric reader;
paygate without ``opentelemetry`` installed."""

from __future__ import annotations

import asyncio
import inspect
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import paygate
from paygate import Money, RetryPolicy, _observe
from paygate.errors import CardDeclined, InvalidSignature, ProviderUnavailable
from paygate.gateway import connect_async
from paygate.providers.fake import FakeProvider

SECRET_KEY = "sk_test_" + "x" * 24  # the kind of value that must never show up


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.spans.get_finished_spans())
        return spans if name is None else [s for s in spans if s.name == name]

    def points(self, metric: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for m in scope.metrics
            if m.name == metric
            for point in m.data.data_points
        ]


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    previous = _observe.telemetry
    telemetry = Telemetry()
    _observe.instrument(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    yield telemetry
    _observe.telemetry = previous
    telemetry.tracer_provider.shutdown()
    telemetry.meter_provider.shutdown()


async def settle(value: Any) -> Any:
    return (await value) if inspect.isawaitable(value) else value


def connect(face: str, provider: FakeProvider) -> Any:
    retry = RetryPolicy(attempts=3, base_delay=0.001, sleep=lambda s: None)
    if face == "sync":
        return paygate.connect(provider, store="memory://", retry=retry)
    return connect_async(provider, store="memory://", retry=retry)


async def scenario(face: str) -> dict[str, Any]:
    """The representative work: a payment, a retried one, a decline, every webhook, a
    redelivery, a forged one, a failing fact handler."""
    provider = FakeProvider(seed=7)
    gw = connect(face, provider)
    failures: list[str] = []

    @gw.on("payment.succeeded")
    def failing(fact: Any) -> None:
        failures.append(fact.id)
        raise RuntimeError("handler broke")

    try:
        usd = Money.of("5", "USD")
        await settle(gw.create_payment(order_id="ord_1", amount=usd, payment_method="tok_visa"))
        provider.fail_next("create_payment", ProviderUnavailable("boom", provider="fake"))
        paid = await settle(
            gw.create_payment(order_id="ord_2", amount=usd, payment_method="tok_visa")
        )
        with pytest.raises(CardDeclined):
            await settle(
                gw.create_payment(
                    order_id="ord_3", amount=usd, payment_method="tok_insufficient_funds"
                )
            )
        deliveries = provider.take_webhooks()
        assert deliveries
        results = [await settle(gw.handle_webhook(d.body, d.headers)) for d in deliveries]
        duplicate = await settle(gw.handle_webhook(deliveries[0].body, deliveries[0].headers))
        assert duplicate.duplicate
        with pytest.raises(InvalidSignature):
            await settle(gw.handle_webhook(deliveries[0].body + b" ", deliveries[0].headers))
        return {"paid": paid, "results": results, "failures": failures}
    finally:
        await settle(gw.aclose() if face == "async" else gw.close())


FACES = ["sync", "async"]


@pytest.mark.parametrize("face", FACES)
def test_provider_calls_are_spans_with_latency_and_declines(face: str, otel: Telemetry) -> None:
    outcome = asyncio.run(scenario(face))
    creates = otel.finished("paygate.provider create_payment")
    assert [(s.attributes["paygate.order_id"], s.attributes["paygate.attempt"],
             s.attributes["paygate.outcome"]) for s in creates] == [
        ("ord_1", 1, "ok"), ("ord_2", 1, "retryable_error"), ("ord_2", 2, "ok"),
        ("ord_3", 1, "declined"),
    ]  # fmt: skip
    failed, declined = creates[1], creates[3]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "ProviderUnavailable"
    assert declined.status.status_code is StatusCode.UNSET  # an answer, not a fault
    assert declined.attributes["paygate.decline_code"] == "insufficient_funds"
    for s in creates:
        assert s.attributes["paygate.provider"] == "fake"
        digest = s.attributes["paygate.idempotency_key.sha256"]
        assert isinstance(digest, str) and len(digest) == 16
        assert not any(k == "idempotency_key" for k in s.attributes)
    # the two attempts of one operation share the key, so its digest
    assert (creates[1].attributes["paygate.idempotency_key.sha256"]
            == creates[2].attributes["paygate.idempotency_key.sha256"])  # fmt: skip
    assert outcome["paid"].status.value == "succeeded"

    durations = {
        (p.attributes["paygate.operation"], p.attributes["paygate.outcome"]): p
        for p in otel.points("paygate.provider.call.duration")
    }
    assert durations[("create_payment", "ok")].count == 2
    assert durations[("create_payment", "retryable_error")].count == 1
    assert durations[("create_payment", "declined")].count == 1
    assert durations[("parse_webhook", "ok")].count >= 1
    assert all(p.attributes["paygate.provider"] == "fake" for p in durations.values())
    (decline,) = otel.points("paygate.payment.declines")
    assert decline.value == 1
    assert decline.attributes == {
        "paygate.provider": "fake", "paygate.decline_code": "insufficient_funds",
    }  # fmt: skip


@pytest.mark.parametrize("face", FACES)
def test_webhooks_are_spans_with_children_lag_and_outcomes(face: str, otel: Telemetry) -> None:
    outcome = asyncio.run(scenario(face))
    webhooks = otel.finished("paygate.webhook")
    # every delivery, the redelivery and the forged one
    assert len(webhooks) == len(outcome["results"]) + 2
    by_id = {s.context.span_id: s for s in otel.finished()}
    children: dict[int, list[str]] = {}
    for s in otel.finished():
        if s.parent is not None and s.parent.span_id in by_id:
            children.setdefault(s.parent.span_id, []).append(s.name)
    first = webhooks[0]
    assert first.attributes["paygate.outcome"] == outcome["results"][0].outcome
    assert first.attributes["paygate.event_id"] == outcome["results"][0].event.id
    assert "paygate.provider parse_webhook" in children[first.context.span_id]
    assert "paygate.webhook.transition" in children[first.context.span_id]
    assert [s.attributes["paygate.outcome"] for s in webhooks[-2:]] == ["duplicate", "invalid"]
    assert webhooks[-1].status.status_code is StatusCode.ERROR
    assert webhooks[-1].attributes["error.type"] == "InvalidSignature"
    # the failing fact handler: a child span of the delivery that recorded the fact
    handler_spans = otel.finished("paygate.fact.handler")
    assert len(handler_spans) == len(outcome["failures"]) >= 1
    for s in handler_spans:
        assert s.status.status_code is StatusCode.ERROR
        assert s.attributes["error.type"] == "RuntimeError"
        assert s.attributes["paygate.handler"].endswith("failing")
        assert "handler broke" not in str(s.status.description)  # never the message

    counts = {
        (p.attributes["paygate.outcome"], p.attributes.get("paygate.event_type")): p.value
        for p in otel.points("paygate.webhook.events")
    }
    seen = sum(v for (o, _), v in counts.items() if o not in ("duplicate", "invalid"))
    assert seen == len(outcome["results"])
    assert sum(v for (o, _), v in counts.items() if o == "duplicate") == 1
    assert counts[("invalid", None)] == 1
    lags = otel.points("paygate.webhook.lag")
    assert sum(p.count for p in lags) == len(outcome["results"]) + 1
    assert all(p.min >= 0 and p.max < 60 for p in lags)


def test_no_span_or_metric_carries_a_secret_or_a_message(otel: Telemetry) -> None:
    provider = FakeProvider(seed=7)
    gw = paygate.connect(provider, store="memory://")
    try:
        provider.fail_next(
            "create_payment",
            ProviderUnavailable(f"down, key {SECRET_KEY} card 4242424242424242", provider="fake"),
        )
        gw.retry = RetryPolicy(attempts=1)
        with pytest.raises(ProviderUnavailable):
            gw.create_payment(order_id="o", amount=Money.of("5", "USD"), payment_method="tok_visa")
    finally:
        gw.close()
    text = repr([(s.name, dict(s.attributes or {}), s.status.description, s.events)
                 for s in otel.finished()])  # fmt: skip
    assert "paygate.provider create_payment" in text
    assert SECRET_KEY not in text and "4242424242424242" not in text and "down, key" not in text
    for span in otel.finished():
        assert not span.events  # no exception event: its message may echo what was sent


# -- structured log fields -------------------------------------------------------------------


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k.startswith("paygate_")}


@pytest.mark.parametrize("face", FACES)
def test_log_lines_carry_structured_fields(
    face: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="paygate"):
        outcome = asyncio.run(scenario(face))
    records = [r for r in caplog.records if r.name.startswith("paygate")]
    assert records
    for record in records:  # every line paygate emitted in the scenario has fields
        f = fields_of(record)
        assert f, f"no structured fields on {record.getMessage()!r}"
        assert set(f) <= {_observe.PREFIX + name for name in _observe.LOG_FIELDS}, f

    def find(**wanted: Any) -> dict[str, Any]:
        for record in records:
            f = fields_of(record)
            if all(f.get(_observe.PREFIX + k) == v for k, v in wanted.items()):
                return f
        raise AssertionError(f"no log line with {wanted}: {[fields_of(r) for r in records]}")

    # a provider call: provider, operation, order, attempt, duration
    call = find(operation="create_payment", order_id="ord_1", outcome="ok", attempt=1)
    assert call["paygate_provider"] == "fake"
    assert isinstance(call["paygate_duration_ms"], float) and call["paygate_duration_ms"] >= 0
    # the retry, and the retried call's second attempt
    retry = find(operation="create_payment", outcome="retrying", attempt=1)
    assert retry["paygate_error_type"] == "ProviderUnavailable"
    find(operation="create_payment", order_id="ord_2", attempt=2, outcome="ok")
    # the decline
    declined = find(operation="create_payment", order_id="ord_3", outcome="declined")
    assert declined["paygate_decline_code"] == "insufficient_funds"
    # webhooks: ingest, transition, duplicate, refusal
    event = outcome["results"][0].event
    find(operation="handle_webhook", event_id=event.id, outcome=outcome["results"][0].outcome,
         payment_id=event.payment_id)  # fmt: skip
    transition = find(payment_id=outcome["paid"].id, outcome="succeeded")
    assert transition["paygate_provider"] == "fake"
    find(operation="handle_webhook", event_id=event.id, outcome="duplicate")
    find(operation="handle_webhook", outcome="invalid", error_type="InvalidSignature")
    # the failing fact handler
    failed = find(operation="dispatch", outcome="handler_error")
    assert failed["paygate_handler"].endswith("failing")
    assert failed["paygate_error_type"] == "RuntimeError" and failed["paygate_attempt"] >= 1
    assert failed["paygate_fact_id"] in outcome["failures"]


@pytest.mark.parametrize("store", ["memory", "sqlite"])  # the general path, the one-transaction
def test_a_webhook_rejected_by_the_state_machine_is_logged_with_its_fields(
    store: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    provider = FakeProvider(seed=7)
    url = "memory://" if store == "memory" else f"sqlite:///{tmp_path / 'p.db'}"
    with paygate.connect(provider, store=url) as gw:
        usd = Money.of("3", "USD")
        canceled = gw.create_payment(
            order_id="ord_c", amount=usd, payment_method="tok_visa", capture="manual"
        )
        gw.cancel(canceled.id)
        other = gw.create_payment(order_id="ord_o", amount=usd, payment_method="tok_visa")
        provider.take_webhooks()
        forged = {**provider._objects[other.id], "id": canceled.id, "order_id": "ord_c"}
        delivery = provider.sign_webhook(
            {"id": "evt_impossible", "type": "payment.succeeded", "created": 1,
             "data": {"object": forged}}
        )  # fmt: skip
        with caplog.at_level(logging.INFO, logger="paygate"):
            result = gw.handle_webhook(delivery.body, delivery.headers)
    assert result.rejected
    (line,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert fields_of(line) == {
        "paygate_provider": "fake", "paygate_operation": "handle_webhook",
        "paygate_event_id": "evt_impossible", "paygate_event_type": "payment.succeeded",
        "paygate_payment_id": canceled.id, "paygate_outcome": "rejected",
    }  # fmt: skip


def test_structured_fields_are_scrubbed_like_the_message() -> None:
    from paygate._redact import SecretFilter

    record = logging.LogRecord("paygate", logging.INFO, __file__, 1, "x", None, None)
    record.__dict__.update(_observe.fields(order_id="card 4242 4242 4242 4242", attempt=2))
    SecretFilter().filter(record)
    assert record.__dict__["paygate_order_id"] == "card [redacted]"
    assert record.__dict__["paygate_attempt"] == 2


def test_fields_leave_out_what_does_not_apply_and_never_clash_with_log_records() -> None:
    assert _observe.fields(provider="fake", payment_id=None) == {"paygate_provider": "fake"}
    reserved = set(logging.LogRecord("n", 0, "p", 0, "m", None, None).__dict__) | {
        "message", "asctime",
    }  # fmt: skip
    assert not reserved & {_observe.PREFIX + name for name in _observe.LOG_FIELDS}


# -- without opentelemetry -------------------------------------------------------------------


def test_paygate_works_without_opentelemetry() -> None:
    """``opentelemetry`` made unimportable: paygate imports, pays, takes webhooks, and its
    hooks are the no-op (``telemetry`` is None); ``instrument`` names the extra."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # import opentelemetry -> ImportError
        import paygate
        from paygate import Money, _observe
        from paygate.providers.fake import FakeProvider
        assert _observe.telemetry is None
        provider = FakeProvider(seed=1)
        with paygate.connect(provider, store="memory://") as gw:
            gw.create_payment(order_id="o", amount=Money.of("5", "USD"),
                              payment_method="tok_visa")
            results = [gw.handle_webhook(d.body, d.headers) for d in provider.take_webhooks()]
            assert results and not any(r.duplicate for r in results), results
        try:
            _observe.instrument()
        except ImportError as exc:
            assert "paygate-payments[otel]" in str(exc)
        else:
            raise AssertionError("instrument() without opentelemetry")
        assert "opentelemetry.trace" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("face", FACES)
def test_a_provider_call_is_not_observed_while_nothing_would_receive_it(
    face: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenTelemetry installed but no tracer or meter provider set (nor DEBUG logging):
    the drivers call the adapter directly, without ``provider_call`` (a few µs a call,
    issue 18); given a meter provider, every provider call is observed again."""
    entered: list[str] = []
    observe = _observe.provider_call

    def counted(name: str, operation: str, *rest: Any) -> Any:
        entered.append(operation)
        return observe(name, operation, *rest)

    monkeypatch.setattr(_observe, "provider_call", counted)
    monkeypatch.setattr(_observe, "telemetry", _observe.Telemetry())  # nothing set yet

    async def pay(order: str) -> None:
        gw = connect(face, FakeProvider(seed=3))
        try:
            usd = Money.of("5", "USD")
            await settle(gw.create_payment(order_id=order, amount=usd, payment_method="tok_visa"))
        finally:
            await settle(gw.aclose() if face == "async" else gw.close())

    asyncio.run(pay("quiet"))
    assert entered == []
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(_observe, "telemetry", _observe.Telemetry(meter_provider=meters))
    asyncio.run(pay("metered"))
    assert entered == ["create_payment"]
    data = reader.get_metrics_data()
    assert data is not None
    found = [m.name for r in data.resource_metrics for sc in r.scope_metrics for m in sc.metrics]
    assert "paygate.provider.call.duration" in found, found
    meters.shutdown()


def test_the_global_providers_set_after_import_are_followed() -> None:
    """The usual wiring: paygate imported (and used) before the app sets the global
    providers; no spans are made before (the API's default makes only no-op ones), and
    paygate's spans and metrics reach the SDK after."""
    code = textwrap.dedent(
        """
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import paygate
        from paygate import Money, _observe
        from paygate.providers.fake import FakeProvider

        with paygate.connect(FakeProvider(seed=1), store="memory://") as gw:
            gw.create_payment(order_id="before", amount=Money.of("5", "USD"),
                              payment_method="tok_visa")
            assert _observe.telemetry is not None and not _observe.telemetry.tracing()
            spans = InMemorySpanExporter()
            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
            trace.set_tracer_provider(tracer_provider)
            reader = InMemoryMetricReader()
            metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            gw.create_payment(order_id="after", amount=Money.of("5", "USD"),
                              payment_method="tok_visa")
        names = [s.name for s in spans.get_finished_spans()]
        assert names == ["paygate.provider create_payment"], names
        assert spans.get_finished_spans()[0].attributes["paygate.order_id"] == "after"
        data = reader.get_metrics_data()
        found = [m.name for r in data.resource_metrics for s in r.scope_metrics
                 for m in s.metrics]
        assert "paygate.provider.call.duration" in found, found
        tracer_provider.shutdown()
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_webhooks_ask_the_api_nothing_while_its_providers_are_unset() -> None:
    """OpenTelemetry installed, no provider set (nothing would receive a span or a
    count): a webhook builds no span and no attribute, and does not ask the API for its
    global providers (each ask looks the environment up: issue 21, CPU per webhook) --
    until the environment names a provider, then the API is asked again."""
    code = textwrap.dedent(
        """
        import os
        from opentelemetry import metrics, trace
        import paygate
        from paygate import EventType, Money, _observe
        from paygate.providers.fake import FakeProvider

        asked = []
        for module, name in ((trace, "get_tracer_provider"), (metrics, "get_meter_provider")):
            def counted(original=getattr(module, name), name=name):
                asked.append(name)
                return original()
            setattr(module, name, counted)
        built = []
        original_attributes = _observe.event_attributes
        _observe.event_attributes = lambda event: built.append(event) or original_attributes(event)
        provider = FakeProvider(seed=1, webhook_secret="whsec_x", webhook_tolerance=86_400)
        for i in range(3):
            provider.create_payment(order_id=f"o{i}", amount=Money(100, "USD"),
                                    payment_method="tok_visa", idempotency_key=f"k{i}")
        with paygate.connect(provider, store="memory://") as gw:
            gw.on(EventType.PAYMENT_CREATED)(lambda event: None)
            gw.on(EventType.PAYMENT_SUCCEEDED)(lambda fact: None)
            for d in provider.take_webhooks():
                assert not gw.handle_webhook(d.body, d.headers).duplicate
            assert asked == [] and built == [], (asked, built)
            os.environ["OTEL_PYTHON_TRACER_PROVIDER"] = "none-such"  # now named: ask
            assert _observe._TRACER_UNSET() is False
            del os.environ["OTEL_PYTHON_TRACER_PROVIDER"]
            assert _observe._TRACER_UNSET() is True
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


#: modules whose log lines are not the library's own operations: the sandbox is a local
#: development server (its request failures go to its own ``paygate.sandbox`` logger)
NOT_LIBRARY = ("sandbox",)


def test_every_log_call_in_the_library_passes_structured_fields() -> None:
    """A new ``_log.info(...)`` without ``extra=fields(...)`` fails here, so the fields stay
    on every line (read from the source: no code path is missed)."""
    import ast

    root = Path(paygate.__file__).parent
    methods = {"debug", "info", "warning", "error", "exception", "critical"}
    missing: list[str] = []
    seen = 0
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] in NOT_LIBRARY:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in methods:
                continue
            target = ast.unparse(node.func.value)
            if not (target in {"_log", "log", "logger"} or "getLogger(" in target):
                continue
            seen += 1
            if not any(k.arg == "extra" for k in node.keywords):
                missing.append(f"{path.relative_to(root)}:{node.lineno}")
    assert seen >= 40  # the scan is not blind: paygate has some forty log calls
    assert missing == []
