"""What paygate tells an application about its work: structured log fields, and
OpenTelemetry spans and metrics when ``opentelemetry-api`` is installed
(``pip install 'paygate-payments[otel]'``).

Every log line paygate emits carries ``extra=`` fields named ``paygate_<field>`` (the
prefix keeps them clear of `logging.LogRecord`'s own attributes and
of an application's fields); a JSON formatter (``python-json-logger``, ``structlog``'s
stdlib bridge) writes them as keys. Only identifiers, counters and outcomes go there:
never an API key, a webhook secret, a token, an idempotency key or card data (see
docs/observability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from paygate.errors import CardDeclined, ProviderError

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

try:  # optional: without it, ``telemetry`` is None and every hook is one None check
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace as otel_trace
except ImportError:  # pragma: no cover - exercised by tests/test_observability.py
    otel_metrics = None  # type: ignore[assignment]
    otel_trace = None  # type: ignore[assignment]

__all__ = [
    "LOG_FIELDS",
    "PREFIX",
    "Telemetry",
    "fields",
    "instrument",
    "provider_call",
    "span",
    "telemetry",
]

_log = logging.getLogger("paygate")

#: the prefix of every structured field paygate puts on a log record
PREFIX = "paygate_"

#: the structured fields a paygate log record may carry (without the prefix); a record
#: carries those that apply to it
LOG_FIELDS: tuple[str, ...] = (
    "provider",  # the adapter's name: "stripe", "paypal", "square", "fake"
    "operation",  # the Gateway or adapter operation: "create_payment", "handle_webhook", ...
    "order_id",  # the application's order id
    "payment_id",  # the provider's payment id
    "event_id",  # the provider's webhook event id
    "event_type",  # the normalized event type: "payment.succeeded", ...
    "fact_id",  # a payment fact's id (the outbox)
    "attempt",  # the attempt number (1 = first) of a retried call or a fact's handlers
    "duration_ms",  # how long a provider call took, in milliseconds
    "outcome",  # what came of it: "ok", "declined", "applied", "duplicate", "rejected", ...
    "decline_code",  # the standard decline code (paygate.errors.DECLINE_CODES)
    "handler",  # the qualified name of the application handler that raised
    "error_type",  # the exception's class name (never its message: it may echo input)
)


def fields(**values: object) -> dict[str, object]:
    """The ``extra=`` mapping of a log call: ``paygate_``-prefixed, ``None`` values left
    out (a field that does not apply is absent, not null)."""
    return {PREFIX + name: value for name, value in values.items() if value is not None}


# -- OpenTelemetry ----------------------------------------------------------------------------

#: the instrumentation scope's name (tracer and meter)
SCOPE = "paygate"

#: the number of the attempt under way in ``_sansio.retried`` (set only from the second:
#: a first attempt costs nothing)
ATTEMPT: ContextVar[int] = ContextVar("paygate_attempt", default=1)

#: operations whose first positional argument is the provider's payment id
_PAYMENT_ID_FIRST = frozenset(
    {"get_payment", "capture_payment", "cancel_payment", "refund_payment"}
)


class Telemetry:
    """paygate's tracer and instruments, from the given providers (the global ones by
    default: the API's proxies follow ``set_tracer_provider``/``set_meter_provider``
    called later)."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        # paygate may still be importing (paygate._retry imports this module): its
        # version is read if already set, else the scope goes without one
        version: str = getattr(sys.modules.get("paygate"), "__version__", "")
        assert otel_trace is not None and otel_metrics is not None
        self.tracer = otel_trace.get_tracer(SCOPE, version, tracer_provider)
        #: spans are made: a provider was given, or the global one was seen set
        self.tracing_on = tracer_provider is not None
        #: metrics are recorded: a meter provider was given, or the global one was seen set
        self.metering_on = meter_provider is not None
        meter = otel_metrics.get_meter(SCOPE, version, meter_provider)
        self.provider_duration = meter.create_histogram(
            "paygate.provider.call.duration",
            unit="s",
            description="Duration of each call to a payment provider, by provider, "
            "operation and outcome",
        )
        self.declines = meter.create_counter(
            "paygate.payment.declines",
            unit="{decline}",
            description="Card declines, by provider and standard decline code",
        )
        self.webhook_lag = meter.create_histogram(
            "paygate.webhook.lag",
            unit="s",
            description="Time from a webhook event's creation at the provider to its "
            "receipt by the gateway",
        )
        self.webhooks = meter.create_counter(
            "paygate.webhook.events",
            unit="{event}",
            description="Webhook deliveries handled, by provider, event type and outcome",
        )

    def tracing(self) -> bool:
        """Whether spans are worth making: until the application sets a global tracer
        provider, the API's default only makes no-op spans (each still a context switch),
        so they are skipped; checked per span until set (`_Unset`: no environment
        lookup while the environment keeps its size), then never again."""
        if self.tracing_on:
            return True
        if _TRACER_UNSET():
            return False
        assert otel_trace is not None
        configured = not isinstance(
            otel_trace.get_tracer_provider(), otel_trace.ProxyTracerProvider
        )
        self.tracing_on = configured
        return configured

    def metering(self) -> bool:
        """Whether metrics are worth recording: until the application sets a global
        meter provider, the API's proxy instruments drop every measurement; checked per
        call until set (as `tracing`), then never again."""
        if self.metering_on:
            return True
        if _METER_UNSET():
            return False
        assert otel_metrics is not None
        configured = _UNSET_METERS is None or not isinstance(
            otel_metrics.get_meter_provider(), _UNSET_METERS
        )
        self.metering_on = configured
        return configured

    def watching(self) -> bool:
        """Whether a provider call is worth observing at all (a span or a measurement
        would go somewhere): `provider_call`'s cost, a few µs, is skipped otherwise
        (issue 18: CPU per call)."""
        return self.tracing() or self.metering()


try:  # the API's stand-in until a global meter provider is set (a private name)
    from opentelemetry.metrics._internal import _ProxyMeterProvider as _UNSET_METERS
except ImportError:  # pragma: no cover - no opentelemetry, or its internals moved: always record
    _UNSET_METERS = None  # type: ignore[assignment,misc]


class _Unset:
    """Whether one of the OpenTelemetry API's global providers is certainly still unset:
    its module global (``attribute`` of ``module``) is ``None`` and the environment
    variable that would name one (the API loads it at its first use) is absent. The
    API's own ``get_tracer_provider()`` looks the variable up in ``os.environ`` at every
    call (a raised and caught ``KeyError``: about a microsecond, several times per
    webhook); here it is looked up again only when the environment's size changed.
    ``False`` whenever in doubt -- the global set, or not where this API version keeps
    it -- and the caller asks the API."""

    def __init__(self, module: Any, attribute: str, variable: str) -> None:
        self._module = module
        self._attribute = attribute
        self._variable = variable
        self._size = -1  # the environment's size when the variable was looked up
        self._named = False

    def __call__(self) -> bool:
        if self._module is None or getattr(self._module, self._attribute, self) is not None:
            return False
        size = len(os.environ)
        if size != self._size:
            self._named = self._variable in os.environ
            self._size = size
        return not self._named


try:  # where the API keeps its global meter provider (a private name)
    from opentelemetry.metrics import _internal as _otel_metrics_internal
except ImportError:  # pragma: no cover - no opentelemetry, or its internals moved
    _otel_metrics_internal = None  # type: ignore[assignment]

_TRACER_UNSET = _Unset(otel_trace, "_TRACER_PROVIDER", "OTEL_PYTHON_TRACER_PROVIDER")
_METER_UNSET = _Unset(_otel_metrics_internal, "_METER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")

#: the live instrumentation; ``None`` when ``opentelemetry-api`` is not installed
telemetry: Telemetry | None = Telemetry() if otel_trace is not None else None


def instrument(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Record paygate's spans and metrics through these providers instead of the global
    ones (an application with several, or a test).

    Raises:
        ImportError: ``opentelemetry-api`` is not installed.
    """
    global telemetry
    if otel_trace is None:
        raise ImportError(
            "paygate's OpenTelemetry instrumentation needs opentelemetry-api: "
            "pip install 'paygate-payments[otel]'"
        )
    telemetry = Telemetry(tracer_provider, meter_provider)


def outcome_of(exc: BaseException) -> str:
    """A provider call's outcome for a failure: ``declined``, ``retryable_error``,
    ``error`` or ``cancelled``."""
    if isinstance(exc, CardDeclined):
        return "declined"
    if isinstance(exc, ProviderError):
        return "retryable_error" if exc.retryable else "error"
    if isinstance(exc, asyncio.CancelledError | GeneratorExit | KeyboardInterrupt):
        return "cancelled"
    return "error"


def key_digest(key: str) -> str:
    """An idempotency key's first 16 hex digits of SHA-256: correlates the attempts of
    one operation without showing the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


@contextlib.contextmanager
def provider_call(
    provider_name: str, operation: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> Iterator[None]:
    """Observe one provider call (both drivers wrap the call in it): a span
    ``paygate.provider <operation>`` current during the call, the latency histogram, the
    decline counter and a DEBUG log line with ``duration_ms``."""
    watch = telemetry
    attempt = ATTEMPT.get()
    order_id = kwargs.get("order_id")
    payment_id = kwargs.get("payment_id")
    if payment_id is None and args and operation in _PAYMENT_ID_FIRST:
        payment_id = args[0]
    outcome = "ok"
    failure: BaseException | None = None
    started = time.perf_counter()
    with _provider_span(watch, provider_name, operation, attempt, kwargs) as current:
        try:
            yield
        except BaseException as exc:
            outcome, failure = outcome_of(exc), exc
            raise
        finally:
            elapsed = time.perf_counter() - started
            decline = failure.decline_code if isinstance(failure, CardDeclined) else None
            if watch is not None:
                labels = {"paygate.provider": provider_name, "paygate.operation": operation}
                watch.provider_duration.record(elapsed, {**labels, "paygate.outcome": outcome})
                if decline is not None:
                    watch.declines.add(
                        1, {"paygate.provider": provider_name, "paygate.decline_code": decline}
                    )
                if current is not None:
                    _end_provider_span(current, outcome, failure, decline)
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug(
                    "provider %s %s: %s in %.1f ms (attempt %d)",
                    provider_name, operation, outcome, elapsed * 1000, attempt,
                    extra=fields(
                        provider=provider_name, operation=operation, order_id=order_id,
                        payment_id=payment_id, attempt=attempt,
                        duration_ms=round(elapsed * 1000, 3), outcome=outcome,
                        decline_code=decline,
                        error_type=type(failure).__name__ if failure is not None else None,
                    ),
                )  # fmt: skip


def _provider_span(
    watch: Telemetry | None,
    provider_name: str,
    operation: str,
    attempt: int,
    kwargs: Mapping[str, Any],
) -> contextlib.AbstractContextManager[Span | None]:
    if watch is None or not watch.tracing():
        return _NO_SPAN
    attributes: dict[str, str | int] = {
        "paygate.provider": provider_name,
        "paygate.operation": operation,
        "paygate.attempt": attempt,
    }
    key = kwargs.get("idempotency_key")
    if isinstance(key, str):
        attributes["paygate.idempotency_key.sha256"] = key_digest(key)
    order_id = kwargs.get("order_id")
    if isinstance(order_id, str):
        attributes["paygate.order_id"] = order_id
    assert otel_trace is not None
    return watch.tracer.start_as_current_span(
        f"paygate.provider {operation}",
        kind=otel_trace.SpanKind.CLIENT,
        attributes=attributes,
        # the exception's message may quote what was sent: only its type is recorded
        record_exception=False,
        set_status_on_exception=False,
    )


def _end_provider_span(
    current: Span, outcome: str, failure: BaseException | None, decline: str | None
) -> None:
    assert otel_trace is not None
    current.set_attribute("paygate.outcome", outcome)
    if decline is not None:
        current.set_attribute("paygate.decline_code", decline)
    if failure is not None and outcome != "declined":  # a decline is an answer, not a fault
        current.set_attribute("error.type", type(failure).__name__)
        code = getattr(failure, "code", None)
        current.set_status(
            otel_trace.Status(
                otel_trace.StatusCode.ERROR,
                f"{type(failure).__name__}" + (f" (code={code})" if code else ""),
            )
        )


def span(
    name: str, attributes: Mapping[str, str | int | bool]
) -> contextlib.AbstractContextManager[Span | None]:
    """A span current over a block of a flow (a webhook, its transition, a handler), or
    a shared no-op when OpenTelemetry is absent."""
    watch = telemetry
    if watch is None or not watch.tracing():
        return _NO_SPAN
    return watch.tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    )


def event_span(name: str, event: Any) -> contextlib.AbstractContextManager[Span | None]:
    """`span` with a webhook event's attributes, built only when the span is made."""
    watch = telemetry
    if watch is None or not watch.tracing():
        return _NO_SPAN
    return span(name, event_attributes(event))


def watching() -> bool:
    """Whether anything paygate could record would go somewhere (a span or a
    measurement): else a webhook's spans, counters and their attributes are skipped."""
    watch = telemetry
    return watch is not None and watch.watching()


def tracing() -> bool:
    """Whether spans are made (OpenTelemetry there and a tracer provider set)."""
    watch = telemetry
    return watch is not None and watch.tracing()


def failed(current: Span | None, exc: BaseException) -> None:
    """Mark ``current`` failed with ``exc``'s type only (its message may echo input)."""
    if current is None or otel_trace is None:
        return
    current.set_attribute("error.type", type(exc).__name__)
    current.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, type(exc).__name__))


_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


def event_attributes(event: Any) -> dict[str, str | int | bool]:
    """A webhook event's span attributes: ids and type, never its payload."""
    attributes: dict[str, str | int | bool] = {
        "paygate.event_id": event.id,
        "paygate.event_type": event.type.value,
    }
    if event.payment_id:
        attributes["paygate.payment_id"] = event.payment_id
    return attributes


def handler_span(handler: str, subject: Any) -> tuple[str, dict[str, str | int | bool]]:
    """The span name and attributes of one application handler run with ``subject`` (a
    payment fact, or a webhook event)."""
    from paygate._facts import Fact

    attributes: dict[str, str | int | bool] = {"paygate.handler": handler}
    if isinstance(subject, Fact):
        attributes.update(
            {
                "paygate.fact_id": subject.id,
                "paygate.event_type": subject.type.value,
                "paygate.payment_id": subject.payment_id,
                "paygate.attempt": subject.attempts,
            }
        )
        return "paygate.fact.handler", attributes
    attributes.update(event_attributes(subject))
    return "paygate.webhook.handler", attributes


def webhook_done(current: Span | None, provider_name: str, result: Any, received: float) -> None:
    """Close a delivery's books: its span's attributes, its outcome counted, its lag (the
    event's creation at the provider to its receipt here) recorded."""
    watch = telemetry
    if watch is None:
        return
    event = result.event
    outcome = "duplicate" if result.duplicate else str(result.outcome)
    labels = {
        "paygate.provider": provider_name,
        "paygate.event_type": event.type.value,
        "paygate.outcome": outcome,
    }
    watch.webhooks.add(1, labels)
    if event.occurred_at is not None:
        lag = max(received - event.occurred_at.timestamp(), 0.0)
        watch.webhook_lag.record(
            lag, {"paygate.provider": provider_name, "paygate.event_type": event.type.value}
        )
    if current is not None:
        current.set_attributes({**event_attributes(event), "paygate.outcome": outcome})
        if result.handler_errors:
            current.set_attribute("paygate.handler_errors", len(result.handler_errors))


def webhook_failed(current: Span | None, provider_name: str, exc: BaseException) -> None:
    """A delivery that raised: refused (``invalid``: signature, timestamp, payload) or
    failed (``error``: a handler raised, the store failed); counted, its span failed."""
    from paygate.errors import WebhookVerificationError

    watch = telemetry
    if watch is None:
        return
    outcome = "invalid" if isinstance(exc, WebhookVerificationError) else "error"
    watch.webhooks.add(
        1,
        {"paygate.provider": provider_name, "paygate.outcome": outcome},
    )
    if current is not None:
        current.set_attribute("paygate.outcome", outcome)
    failed(current, exc)
