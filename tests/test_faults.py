"""The fault-injection suite: ``Gateway.create_payment`` and ``Gateway.refund`` through every
fault of :mod:`tests.fault_server`, ``Gateway.capture`` and ``Gateway.cancel`` through the 5xx
ones and those after which the provider committed (:func:`test_settle_fault`), on Stripe,
PayPal and Square, on SQLite and PostgreSQL.

For every cell (fault × provider × store × operation), two phases:

* **single fault** -- the fault hits the first request only; the Gateway's retry must end
  in one charge (refund), with one idempotency key, inside the budget, and the idempotency
  record ``succeeded``. A 404 whose body is not JSON is refused for good instead: one
  request, no retry, record ``failed``, and the next call starts attempt 2 (a new key).
* **persistent fault** -- every request fails until the (short) budget is spent; the call
  must end within budget + slack with a retryable error, leave the record ``pending`` and
  at most one charge; once the fault is gone the next call re-sends the *same* key and the
  provider ends up with exactly one charge.

``PAYGATE_FAULT_MATRIX=path`` writes the matrix (fault × provider × store → charges, keys,
outcome) as a Markdown table to ``path`` and to the terminal.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import pytest

import paygate
from paygate import Money, OutcomeUnknown, ProviderError, ProviderUnavailable, RateLimited
from paygate.gateway import Gateway, RetryPolicy
from paygate.models import PaymentStatus
from paygate.providers.paypal import PayPalProvider
from paygate.providers.square import SquareProvider
from paygate.providers.stripe import StripeProvider
from paygate.stores import OperationRecord, OperationStatus
from tests.fault_server import BACKENDS, FAULTS, FaultServer
from tests.postgres_support import pg_database  # noqa: F401

PROVIDERS = ("stripe", "paypal", "square")
STORES = ("sqlite", "postgres")
AMOUNT = Money.of("19.99", "USD")
#: a partial capture of AMOUNT
PART = Money.of("5.00", "USD")
PAYMENT_METHOD = {"stripe": "pm_card_visa", "paypal": "VAULTfaults01", "square": "cnon:card-nonce-ok"}

#: the adapters' per-request timeout in these tests (the default is 10 s)
TIMEOUT = 0.15
#: wall-time allowance over a budget: store writes, thread scheduling on a busy machine
SLACK = 0.5
#: the SQLite stores here commit without an fsync (WAL + synchronous=NORMAL: still never
#: torn by a killed process). The cells time calls against a retry budget, and on ext4 an
#: fsync can wait on other files' writeback on a busy machine; durable commits have their
#: own tests (test_durable_commits, the crash tests).
SQLITE_OPTIONS = "?synchronous=NORMAL"


def single_policy() -> RetryPolicy:
    # room for a Retry-After: 1 and a timed-out attempt
    return RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05, total_budget=3.0,
                       min_attempt_time=0.05)  # fmt: skip


def persistent_policy() -> RetryPolicy:
    return RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02, total_budget=0.4,
                       min_attempt_time=0.05)  # fmt: skip


#: the error a call ends with when the fault never goes away
PERSISTENT_ERROR: dict[str, type[ProviderError]] = {
    "http_500": ProviderUnavailable,
    "http_503": ProviderUnavailable,
    "html_502": ProviderUnavailable,
    "http_429": RateLimited,
    "reset_before_read": OutcomeUnknown,  # the client cannot tell it from a later reset
    "reset_after_read": OutcomeUnknown,
    "timeout_before_commit": OutcomeUnknown,  # nor this one from a timeout after commit
    "timeout_after_commit": OutcomeUnknown,
    "truncated_body": OutcomeUnknown,
    "non_json_body": OutcomeUnknown,
}


def make_provider(name: str, url: str, timeout: float) -> Any:
    if name == "stripe":
        return StripeProvider(api_key="sk_test_faults", base_url=url, timeout=timeout)
    if name == "paypal":
        return PayPalProvider(client_id="AZfaults", client_secret="EPfaults-secret",
                              base_url=url, timeout=timeout)  # fmt: skip
    return SquareProvider(access_token="sq-faults-token", location_id="LFAULTS",
                          base_url=url, timeout=timeout)  # fmt: skip


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=PROVIDERS)
def server(request: pytest.FixtureRequest) -> Iterator[FaultServer]:
    fault_server = FaultServer(BACKENDS[request.param]())
    yield fault_server
    fault_server.close()


@pytest.fixture(scope="module", params=STORES)
def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('faults') / 'paygate.db'}{SQLITE_OPTIONS}"
        return
    import psycopg

    database: str = request.getfixturevalue("pg_database")
    schema = f"paygate_faults_{uuid.uuid4().hex[:10]}"
    yield database + ("&" if "?" in database else "?") + f"schema={schema}&pool_max=4"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def gw(server: FaultServer, store_url: str) -> Iterator[Gateway]:
    provider = make_provider(server.backend.name, server.url, TIMEOUT)
    gateway = paygate.connect(provider, store=store_url, retry=single_policy())
    yield gateway
    gateway.close()


@dataclass
class Row:
    fault: str
    provider: str
    store: str
    op: str
    charges: str  # per order (per payment for refunds): single-fault phase / persistent phase
    keys: str  # distinct idempotency keys the provider saw, same split
    single: str
    persistent: str  # the error, then what the next call did
    seconds: float = 0.0  # wall time of the persistent phase's call


MATRIX: list[Row] = []


def matrix_tables() -> tuple[list[str], list[str]]:
    """The full matrix, and the same folded over stores and operations where they agree."""
    order = {name: n for n, name in enumerate(FAULTS)}
    rows = sorted(MATRIX, key=lambda r: (order[r.fault], r.provider, r.store, r.op))
    full = ["| fault | provider | store | op | charges | keys | single fault | persistent fault |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    full += [f"| {r.fault} | {r.provider} | {r.store} | {r.op} | {r.charges} | {r.keys} | "
             f"{r.single} | {r.persistent} ({r.seconds:.2f} s) |" for r in rows]  # fmt: skip
    folded = ["| fault | provider | stores × ops | charges | keys | single fault | "
              "persistent fault (slowest call) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.fault, r.provider), []).append(r)
    for (fault, provider), group in groups.items():
        first = group[0]
        same = all((r.charges, r.keys, r.single, r.persistent)
                   == (first.charges, first.keys, first.single, first.persistent)
                   for r in group)  # fmt: skip
        where = ", ".join(sorted({r.store for r in group})) + " × " + ", ".join(
            sorted({r.op for r in group})
        )
        if not same:
            folded += [f"| {fault} | {provider} | {r.store} × {r.op} | {r.charges} | {r.keys} | "
                       f"{r.single} | {r.persistent} ({r.seconds:.2f} s) |" for r in group]  # fmt: skip
            continue
        slowest = max(r.seconds for r in group)
        persistent = first.persistent if first.persistent == "-" else (
            f"{first.persistent} ({slowest:.2f} s)"
        )
        folded.append(f"| {fault} | {provider} | {where} | {first.charges} | {first.keys} | "
                      f"{first.single} | {persistent} |")  # fmt: skip
    return full, folded


@pytest.fixture(scope="module", autouse=True)
def _report_matrix(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    target = os.environ.get("PAYGATE_FAULT_MATRIX")
    if not target or not MATRIX:
        return
    full, folded = matrix_tables()
    with open(target, "w", encoding="utf-8") as out:
        out.write("\n".join(folded) + "\n\n" + "\n".join(full) + "\n")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in folded:
                reporter.write_line(line)


# -- one cell ----------------------------------------------------------------------------------


class Cell:
    """One operation on one order, with what the fake provider saw of it."""

    def __init__(self, gw: Gateway, server: FaultServer, op: str, order: str) -> None:
        self.gw, self.server, self.op, self.order = gw, server, op, order
        self.route = {"create": "charge", "capture_part": "capture"}.get(op, op)
        self.first = len(server.received)
        self.payment_id: str | None = None
        if op != "create":  # a payment to refund (capture, cancel), made before any fault
            payment = self._pay(capture="automatic" if op == "refund" else "manual")
            self.payment_id = payment.id
            self.first = len(server.received)

    def _pay(self, capture: Literal["automatic", "manual"] = "automatic") -> paygate.Payment:
        return self.gw.create_payment(
            order_id=self.order,
            amount=AMOUNT,
            payment_method=PAYMENT_METHOD[self.server.backend.name],
            capture=capture,
        )

    def call(self) -> object:
        if self.op == "create":
            return self._pay()
        assert self.payment_id is not None
        if self.op == "capture":
            return self.gw.capture(self.payment_id)
        if self.op == "capture_part":
            return self.gw.capture(self.payment_id, PART)
        if self.op == "cancel":
            return self.gw.cancel(self.payment_id)
        return self.gw.refund(self.payment_id, idempotency_key=f"rf-{self.order}")

    def timed(self, policy: RetryPolicy) -> tuple[Callable[[], object], list[float]]:
        spent: list[float] = []

        def run() -> object:
            self.gw.retry = policy
            started = time.monotonic()
            try:
                return self.call()
            finally:
                spent.append(time.monotonic() - started)

        return run, spent

    @property
    def scope(self) -> str:
        if self.op in ("capture", "capture_part", "cancel"):
            return f"{self.op.split('_')[0]}:{self.payment_id}"
        return f"create_payment:{self.order}" if self.op == "create" else f"refund:rf-{self.order}"

    def operation(self) -> OperationRecord:
        op = self.gw.store.get_operation(self.scope)
        assert op is not None
        return op

    def record(self) -> OperationStatus:
        return self.operation().status

    def charges(self) -> int:
        backend = self.server.backend
        if self.op == "create":
            return backend.charges[self.order]
        assert self.payment_id is not None
        if self.op in ("capture", "capture_part"):
            return backend.captures[self.payment_id]
        if self.op == "cancel":
            return backend.voids[self.payment_id]
        return backend.refunds[self.payment_id]

    def requests(self) -> list[Any]:
        return [r for r in self.server.received[self.first :] if r.route == self.route]

    def keys(self) -> set[str]:
        return {r.key for r in self.requests() if r.key}


@pytest.mark.parametrize("op", ["create", "refund"])
@pytest.mark.parametrize("fault", FAULTS)
def test_fault(gw: Gateway, server: FaultServer, store_url: str, fault: str, op: str) -> None:
    provider = server.backend.name
    store = "sqlite" if store_url.startswith("sqlite") else "postgres"
    tag = f"{provider[:2]}{op[0]}{FAULTS.index(fault)}-{uuid.uuid4().hex[:8]}"  # Square: 40 max
    if fault == "non_json_404":
        MATRIX.append(_refused_for_good(gw, server, op, tag, provider, store))
        return

    # -- single fault: retried within the call --------------------------------------------
    single = Cell(gw, server, op, f"s-{tag}")
    # Retry-After: 1 on creates shows it honoured; 0 on refunds keeps the suite fast
    server.arm(single.route, fault, times=1, retry_after="1" if op == "create" else "0")
    run, spent = single.timed(single_policy())
    run()
    sent = single.requests()
    assert len(sent) >= 2, sent  # the faulted request, then the retry
    assert sent[0].fault == fault and all(r.fault is None for r in sent[1:])
    assert len(single.keys()) == 1, single.keys()  # every retry sends the same key
    assert single.charges() == 1
    assert single.record() is OperationStatus.SUCCEEDED
    assert spent[0] <= single_policy().total_budget + SLACK
    if fault == "http_429" and op == "create":
        assert spent[0] >= 0.9  # Retry-After: 1 was honoured (the backoff alone is 0.01 s)
    single_summary = (f"{single.charges()}", f"{len(single.keys())}", f"ok after {len(sent)} requests")

    # -- persistent fault: the budget runs out, the outcome stays pending ---------------------
    cell = Cell(gw, server, op, f"p-{tag}")
    server.arm(cell.route, fault, times=None)
    run, spent = cell.timed(persistent_policy())
    try:
        with pytest.raises(ProviderError) as caught:
            run()
    finally:
        server.disarm()
    error = caught.value
    assert type(error) is PERSISTENT_ERROR[fault], repr(error)
    assert error.retryable
    assert "secret-page-marker" not in str(error)  # no body echoed
    assert spent[0] <= persistent_policy().total_budget + SLACK, spent
    assert cell.record() is OperationStatus.PENDING
    charged_while_failing = cell.charges()
    assert charged_while_failing <= 1
    tries = len(cell.requests())
    run, _ = cell.timed(single_policy())
    run()  # the fault is gone: the same key again, and the provider answers it once
    assert len(cell.keys()) == 1, cell.keys()
    assert cell.charges() == 1
    assert cell.record() is OperationStatus.SUCCEEDED

    MATRIX.append(Row(
        fault, provider, store, op,
        charges=f"{single_summary[0]} / {cell.charges()}",
        keys=f"{single_summary[1]} / {len(cell.keys())}",
        single=single_summary[2],
        persistent=(f"{type(error).__name__} after {tries} req., pending "
                    f"({charged_while_failing} charged) → next call ok, same key"),
        seconds=spent[0],
    ))  # fmt: skip


def _refused_for_good(
    gw: Gateway, server: FaultServer, op: str, tag: str, provider: str, store: str
) -> Row:
    """A 404 whose body is not JSON (a wrong base URL, a proxy): not retried, attempt failed,
    and the next call starts attempt 2 with a new key."""
    cell = Cell(gw, server, op, f"n-{tag}")
    server.arm(cell.route, "non_json_404", times=1)
    run, _ = cell.timed(single_policy())
    with pytest.raises(ProviderError) as caught:
        run()
    error = caught.value
    assert not error.retryable and error.code == "unexpected_response", repr(error)
    assert error.http_status == 404 and "not JSON" in str(error)
    assert "secret-page-marker" not in str(error)
    assert len(cell.requests()) == 1  # never retried
    assert cell.charges() == 0
    assert cell.record() is OperationStatus.FAILED
    run()
    assert cell.charges() == 1
    assert len(cell.keys()) == 2  # attempt 1's key, then attempt 2's
    assert cell.record() is OperationStatus.SUCCEEDED
    return Row("non_json_404", provider, store, op, charges=f"{cell.charges()}", keys="2",
               single=f"{type(error).__name__}, not retried, failed → next call = attempt 2",
               persistent="-")  # fmt: skip


# -- the budget is a deadline ------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_hung_provider_costs_the_budget_not_a_timeout(
    provider: str, tmp_path: Any
) -> None:
    """A 5 s adapter timeout and a 0.5 s budget: each request's timeout is cut to the time
    left, so the call ends near 0.5 s (it used to wait the whole 5 s)."""
    server = FaultServer(BACKENDS[provider]())
    gateway = paygate.connect(make_provider(provider, server.url, 5.0),
                              store=f"sqlite:///{tmp_path / 'p.db'}{SQLITE_OPTIONS}")  # fmt: skip
    try:
        cell = Cell(gateway, server, "create", f"d-{provider}")
        server.arm("charge", "timeout_after_commit", times=None)
        run, spent = cell.timed(RetryPolicy(attempts=5, base_delay=0.01, total_budget=0.5,
                                            min_attempt_time=0.1))  # fmt: skip
        with pytest.raises(OutcomeUnknown):
            run()
        server.disarm()
        assert spent[0] <= 0.5 + SLACK, spent
        assert cell.record() is OperationStatus.PENDING
        run, _ = cell.timed(single_policy())
        run()
        assert cell.charges() == 1 and len(cell.keys()) == 1
    finally:
        gateway.close()
        server.close()


# -- capture and cancel after a lost answer ----------------------------------------------------

#: the faults a capture / void goes through: the provider committed and the answer was lost,
#: and the plain 5xx ones
SETTLE_FAULTS = (
    "http_500",
    "http_503",
    "reset_after_read",
    "timeout_after_commit",
    "truncated_body",
    "non_json_body",
)
#: the operation's end state in the store
SETTLED = {
    "capture": PaymentStatus.SUCCEEDED,
    "capture_part": PaymentStatus.SUCCEEDED,
    "cancel": PaymentStatus.CANCELED,
}
#: what the store holds as captured at the end (an adapter may leave it None: nothing)
ZERO = Money.of("0.00", "USD")
CAPTURED = {"capture": AMOUNT, "capture_part": PART, "cancel": Money.of("0.00", "USD")}
#: requests whose API takes no idempotency key (Square's CompletePayment / CancelPayment,
#: PayPal's void): the wire shows none; the Gateway's own key must still stay the same
UNKEYED = {("square", "capture"), ("square", "capture_part"), ("square", "cancel"),
           ("paypal", "cancel")}  # fmt: skip
#: the faults after which the provider has committed the capture / void
_COMMITTED = frozenset({"reset_after_read", "timeout_after_commit", "truncated_body",
                        "non_json_body"})  # fmt: skip


def _settle_done_on_retry(provider: str, op: str, fault: str) -> bool:
    """PayPal's void takes no PayPal-Request-Id, so a retry reads the order first and finds
    its authorization VOIDED: done, without a second void request (so no fault to meet)."""
    return provider == "paypal" and op == "cancel" and fault in _COMMITTED


@pytest.mark.parametrize("op", ["capture", "capture_part", "cancel"])
@pytest.mark.parametrize("fault", SETTLE_FAULTS)
def test_settle_fault(
    gw: Gateway, server: FaultServer, store_url: str, fault: str, op: str
) -> None:
    """A capture / void whose answer is lost (or refused with a 5xx): one capture (void) at the
    provider, the same key on every retry, and the retry *succeeds* -- the payment ends
    captured (canceled) in the store, the idempotency record ``succeeded``."""
    provider = server.backend.name
    store = "sqlite" if store_url.startswith("sqlite") else "postgres"
    tag = f"{provider[:2]}{op[:2]}{FAULTS.index(fault)}-{uuid.uuid4().hex[:8]}"

    # -- single fault: retried within the call --------------------------------------------
    single = Cell(gw, server, op, f"s-{tag}")
    assert single.payment_id is not None
    server.arm(single.route, fault, times=1)
    run, spent = single.timed(single_policy())
    result = run()
    assert isinstance(result, paygate.Payment) and result.status is SETTLED[op]
    sent = single.requests()
    assert sent and sent[0].fault == fault and all(r.fault is None for r in sent[1:])
    if not _settle_done_on_retry(provider, op, fault):
        assert len(sent) >= 2, sent  # the faulted request, then the retry
    assert single.charges() == 1
    wire_keys = single.keys()
    assert len(wire_keys) == (0 if (provider, op) in UNKEYED else 1), wire_keys
    record = single.operation()
    assert record.status is OperationStatus.SUCCEEDED and record.attempt == 1
    stored = gw.store.get_payment(single.payment_id)
    assert stored is not None and stored.status is SETTLED[op]
    assert (stored.payment.amount_captured or ZERO) == CAPTURED[op], stored.payment
    assert spent[0] <= single_policy().total_budget + SLACK
    single_summary = (f"{single.charges()}", f"{len(wire_keys)}", f"ok after {len(sent)} requests")

    # -- persistent fault: the budget runs out, the outcome stays pending ---------------------
    cell = Cell(gw, server, op, f"p-{tag}")
    assert cell.payment_id is not None
    server.arm(cell.route, fault, times=None)
    run, spent = cell.timed(persistent_policy())
    error: ProviderError | None = None
    try:
        run()
    except ProviderError as exc:
        error = exc
    finally:
        server.disarm()
    done_on_retry = _settle_done_on_retry(provider, op, fault)
    # a persistent fault fails the call, unless the retry finds the void done (it may still
    # fail, retryable, if the order's read runs out of budget on a slow machine)
    assert done_on_retry or error is not None
    assert spent[0] <= persistent_policy().total_budget + SLACK, spent
    charged_while_failing = cell.charges()
    assert charged_while_failing <= 1
    tries = len(cell.requests())
    if error is not None:
        if not done_on_retry:
            assert type(error) is PERSISTENT_ERROR[fault], repr(error)
        assert error.retryable
        assert cell.record() is OperationStatus.PENDING
        pending_key = cell.operation().provider_key
        run, _ = cell.timed(single_policy())
        result = run()  # the fault is gone: the same key again, and the call succeeds
        assert isinstance(result, paygate.Payment) and result.status is SETTLED[op]
        assert cell.operation().provider_key == pending_key
    record = cell.operation()
    assert record.status is OperationStatus.SUCCEEDED and record.attempt == 1
    assert cell.charges() == 1
    assert len(cell.keys()) == (0 if (provider, op) in UNKEYED else 1), cell.keys()
    stored = gw.store.get_payment(cell.payment_id)
    assert stored is not None and stored.status is SETTLED[op]
    assert (stored.payment.amount_captured or ZERO) == CAPTURED[op], stored.payment

    persistent = (
        "ok: the retry finds the void done" if error is None else
        f"{type(error).__name__} after {tries} req., pending ({charged_while_failing} "
        "done) → next call ok, same key"
    )  # fmt: skip
    MATRIX.append(Row(
        fault, provider, store, op,
        charges=f"{single_summary[0]} / {cell.charges()}",
        keys=f"{single_summary[1]} / {len(cell.keys())}",
        single=single_summary[2], persistent=persistent, seconds=spent[0],
    ))  # fmt: skip


def test_paypal_capture_of_an_authorization_captured_by_another_request_is_refused(
    tmp_path: Any,
) -> None:
    """The retry path lets a CAPTURED authorization through only to PayPal, which replays the
    capture of the same PayPal-Request-Id: another request's key is refused (422), not
    answered with a capture it did not make."""
    server = FaultServer(BACKENDS["paypal"]())
    provider = make_provider("paypal", server.url, 2.0)
    try:
        payment = provider.create_payment(
            order_id="o-captured-elsewhere", amount=AMOUNT, payment_method=PAYMENT_METHOD["paypal"],
            capture="manual", idempotency_key="create-1",
        )  # fmt: skip
        provider.capture_payment(payment.id, idempotency_key="capture-1")
        again = provider.capture_payment(payment.id, idempotency_key="capture-1")
        assert again.status is PaymentStatus.SUCCEEDED
        with pytest.raises(paygate.InvalidRequest):
            provider.capture_payment(payment.id, idempotency_key="capture-2")
        assert server.backend.captures[payment.id] == 1
    finally:
        server.close()


def test_square_refused_cancel_of_a_captured_payment_stays_refused() -> None:
    """The adapter answers a refused Complete/Cancel with the payment only when it is in the
    state asked for: a cancel of a captured payment is still refused."""
    server = FaultServer(BACKENDS["square"]())
    provider = make_provider("square", server.url, 2.0)
    try:
        payment = provider.create_payment(
            order_id="o-captured", amount=AMOUNT, payment_method=PAYMENT_METHOD["square"],
            capture="manual", idempotency_key="create-1",
        )  # fmt: skip
        assert provider.capture_payment(payment.id, idempotency_key="c-1").status is (
            PaymentStatus.SUCCEEDED
        )
        again = provider.capture_payment(payment.id, idempotency_key="c-1")  # refused, read
        assert again.status is PaymentStatus.SUCCEEDED
        with pytest.raises(paygate.InvalidRequest):
            provider.cancel_payment(payment.id, idempotency_key="x-1")
        assert server.backend.captures[payment.id] == 1 and server.backend.voids[payment.id] == 0
    finally:
        server.close()
