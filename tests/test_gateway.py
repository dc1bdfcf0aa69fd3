"""Gateway operations on the fake provider: order-first idempotency, validation before the
provider, retries with the same key, refunds/captures/cancels through the state machine."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

import pytest

import paygate
from paygate import (
    CardDeclined,
    EventType,
    IdempotencyConflict,
    LineItem,
    Money,
    Payment,
    PaymentStatus,
    ProviderUnavailable,
    RateLimited,
    RefundStatus,
    SubscriptionStatus,
    ValidationError,
)
from paygate.gateway import Gateway, RetryPolicy, WebhookResult
from paygate.providers.fake import FakeProvider
from paygate.state import state_of
from paygate.stores import OperationStatus, PaymentRecord

S = PaymentStatus
USD = "USD"


def usd(value: str) -> Money:
    return Money.of(value, USD)


class Sleeps:
    """An injectable sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'p.db'}"


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(seed=7)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def gw(provider: FakeProvider, store_url: str, sleeps: Sleeps) -> Iterator[Gateway]:
    gateway = paygate.connect(
        provider, store=store_url, retry=RetryPolicy(attempts=3, sleep=sleeps)
    )
    yield gateway
    gateway.close()


def deliver(gw: Gateway) -> list[WebhookResult]:
    provider = gw.provider
    assert isinstance(provider, FakeProvider)
    return [gw.handle_webhook(d.body, d.headers) for d in provider.take_webhooks()]


# -- order first, idempotent -------------------------------------------------------------------


def test_same_create_payment_twice_charges_once(gw: Gateway, provider: FakeProvider) -> None:
    first = gw.create_payment(order_id="ord_1", amount=usd("19.99"), payment_method="tok_visa")
    second = gw.create_payment(order_id="ord_1", amount=usd("19.99"), payment_method="tok_visa")
    assert first.id == second.id
    assert first.status is S.SUCCEEDED and second.status is S.SUCCEEDED
    assert provider.calls["create_payment"] == 1
    assert len(provider.payments()) == 1
    assert first.order_id == "ord_1" and gw.payment_for_order("ord_1") == second
    op = gw.store.get_operation("create_payment:ord_1")
    assert op is not None and op.provider_key == "paygate:ord_1:create_payment:1:USD:1999"
    assert op.status is OperationStatus.SUCCEEDED and op.result_id == first.id


@pytest.mark.parametrize("amount", [Money.of("20.00", "USD"), Money.of("19.99", "EUR")])
def test_conflicting_retry_is_refused_before_the_provider(
    gw: Gateway, provider: FakeProvider, amount: Money
) -> None:
    gw.create_payment(order_id="ord_1", amount=usd("19.99"), payment_method="tok_visa")
    with pytest.raises(IdempotencyConflict, match="ord_1"):
        gw.create_payment(order_id="ord_1", amount=amount, payment_method="tok_visa")
    assert provider.calls["create_payment"] == 1


def test_decline_then_a_new_card_is_a_new_attempt(gw: Gateway, provider: FakeProvider) -> None:
    with pytest.raises(CardDeclined) as info:
        gw.create_payment(order_id="ord_1", amount=usd("10"), payment_method="tok_declined")
    assert info.value.decline_code == "card_declined"
    op = gw.store.get_operation("create_payment:ord_1")
    assert op is not None and op.status is OperationStatus.FAILED
    assert op.error_code == "card_declined" and op.attempt == 1
    paid = gw.create_payment(order_id="ord_1", amount=usd("10"), payment_method="tok_visa")
    again = gw.create_payment(order_id="ord_1", amount=usd("10"), payment_method="tok_visa")
    assert paid.status is S.SUCCEEDED and again.id == paid.id
    assert provider.calls["create_payment"] == 2  # the decline, then one charge
    op = gw.store.get_operation("create_payment:ord_1")
    assert op is not None and op.attempt == 2
    assert op.provider_key == "paygate:ord_1:create_payment:2:USD:1000"
    charged = [p for p in provider.payments() if p.status is S.SUCCEEDED]
    assert [p.id for p in charged] == [paid.id]


def test_another_card_while_a_payment_is_active_conflicts(
    gw: Gateway, provider: FakeProvider
) -> None:
    gw.create_payment(order_id="ord_1", amount=usd("10"), payment_method="tok_visa")
    with pytest.raises(IdempotencyConflict, match="another payment method"):
        gw.create_payment(order_id="ord_1", amount=usd("10"), payment_method="tok_mastercard")
    assert provider.calls["create_payment"] == 1


def test_a_failed_payment_lets_the_order_be_paid_again(gw: Gateway, provider: FakeProvider) -> None:
    first = gw.create_payment(order_id="ord_1", amount=usd("10"), payment_method="tok_3ds")
    assert first.status is S.REQUIRES_ACTION and first.redirect_url
    provider.authenticate(first.id, success=False)
    deliver(gw)
    assert gw.payment_for_order("ord_1").status is S.FAILED  # type: ignore[union-attr]
    second = gw.create_payment(order_id="ord_1", amount=usd("10"), payment_method="tok_visa")
    assert second.id != first.id and second.status is S.SUCCEEDED
    assert [p.id for p in gw.store.payments_for_order("ord_1")] == [first.id, second.id]


def test_payment_for_order_is_the_attempt_the_provider_created_last(gw: Gateway) -> None:
    # A declined attempt's webhook may reach the store after the paid attempt's return:
    # the store hears of the declined one last, but the paid one is still the latest.
    def record(payment_id: str, status: PaymentStatus, second: int, stored: float) -> PaymentRecord:
        payment = Payment(
            id=payment_id,
            provider="fake",
            order_id="ord_late",
            amount=usd("18"),
            status=status,
            created_at=datetime(2026, 12, 7, 12, 0, second, tzinfo=timezone.utc),
        )
        return PaymentRecord(payment, state_of(payment), created_at=stored, updated_at=stored)

    gw.store.save_payment(record("pay_paid", S.SUCCEEDED, 30, 1000.0), expected_version=None)
    gw.store.save_payment(record("pay_declined", S.FAILED, 10, 2000.0), expected_version=None)
    assert [p.id for p in gw.store.payments_for_order("ord_late")] == [
        "pay_paid",
        "pay_declined",
    ]
    latest = gw.payment_for_order("ord_late")
    assert latest is not None and latest.id == "pay_paid" and latest.status is S.SUCCEEDED


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount": Money(0, "USD")}, "must be positive"),
        ({"amount": Money(-5, "USD")}, "must be positive"),
        ({"amount": "19.99"}, "must be paygate.Money"),
        ({"amount": Money(100, "JPY")}, "does not accept"),
        ({"order_id": ""}, "order_id must be a non-empty str"),
        ({"capture": "later"}, "capture must be"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent_or_stored(
    provider: FakeProvider, kwargs: dict[str, object], message: str
) -> None:
    gw = paygate.connect(provider, currencies=["USD", "EUR"])
    call: dict[str, object] = {
        "order_id": "ord_1",
        "amount": usd("1"),
        "payment_method": "tok_visa",
    }
    call.update(kwargs)
    with pytest.raises(ValidationError, match=message):
        gw.create_payment(**call)  # type: ignore[arg-type]
    assert provider.calls["create_payment"] == 0
    assert gw.store.get_operation("create_payment:ord_1") is None
    assert gw.payment_for_order("ord_1") is None


# -- retries ---------------------------------------------------------------------------------


def test_retryable_errors_are_retried_with_the_same_key(
    gw: Gateway, provider: FakeProvider, sleeps: Sleeps
) -> None:
    provider.fail_next("create_payment", ProviderUnavailable("boom", provider="fake"))
    provider.fail_next(
        "create_payment", RateLimited("slow down", provider="fake"), after_commit=True
    )
    payment = gw.create_payment(order_id="ord_1", amount=usd("5"), payment_method="tok_visa")
    assert payment.status is S.SUCCEEDED
    assert provider.calls["create_payment"] == 3
    assert len(provider.payments()) == 1  # the lost answer was replayed by its key
    assert len(sleeps.calls) == 2


def test_declines_are_never_retried(gw: Gateway, provider: FakeProvider, sleeps: Sleeps) -> None:
    with pytest.raises(CardDeclined):
        gw.create_payment(order_id="o", amount=usd("5"), payment_method="tok_insufficient_funds")
    assert provider.calls["create_payment"] == 1 and sleeps.calls == []


def test_exhausted_retries_leave_the_attempt_pending_and_the_next_call_reuses_its_key(
    gw: Gateway, provider: FakeProvider
) -> None:
    provider.fail_next("create_payment", ProviderUnavailable("down", provider="fake"),
                       after_commit=True, times=3)  # fmt: skip
    with pytest.raises(ProviderUnavailable):
        gw.create_payment(order_id="ord_1", amount=usd("5"), payment_method="tok_visa")
    op = gw.store.get_operation("create_payment:ord_1")
    assert op is not None and op.status is OperationStatus.PENDING
    payment = gw.create_payment(order_id="ord_1", amount=usd("5"), payment_method="tok_visa")
    assert payment.status is S.SUCCEEDED
    assert len(provider.payments()) == 1  # four calls, one payment


def test_retry_policy_backoff_jitter_and_budget() -> None:
    clock = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=4.0, total_budget=10.0,
                         jitter=0.5, sleep=sleep, clock=lambda: clock[0], random=lambda: 1.0)  # fmt: skip
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]
    calls = [0]

    def always_down() -> None:
        calls[0] += 1
        raise ProviderUnavailable("down")

    with pytest.raises(ProviderUnavailable):
        policy.call("op", always_down)
    assert sum(waits) <= 10.0 and calls[0] == len(waits) + 1 < 10
    with pytest.raises(paygate.ConfigurationError):
        RetryPolicy(attempts=0)


def test_default_attempts_come_from_the_provider() -> None:
    assert paygate.connect(FakeProvider(max_retries=4)).retry.attempts == 5
    assert paygate.connect(FakeProvider()).retry.attempts == RetryPolicy().attempts


# -- capture, cancel, refund -------------------------------------------------------------------


def test_manual_capture_validated_against_the_authorization(
    gw: Gateway, provider: FakeProvider
) -> None:
    p = gw.create_payment(order_id="ord_1", amount=usd("50"), payment_method="tok_visa",
                          capture="manual")  # fmt: skip
    assert p.status is S.AUTHORIZED
    with pytest.raises(ValidationError, match="exceeds the authorized"):
        gw.capture(p.id, amount=usd("50.01"))
    with pytest.raises(ValidationError, match="not in the payment's USD"):
        gw.capture(p.id, amount=Money.of("1", "EUR"))
    assert provider.calls["capture_payment"] == 0
    captured = gw.capture(p.id, amount=usd("30"))
    assert captured.status is S.SUCCEEDED and captured.amount_captured == usd("30")
    assert gw.capture(p.id, amount=usd("30")).status is S.SUCCEEDED  # replayed
    assert provider.calls["capture_payment"] == 1
    with pytest.raises(ValidationError, match="only an authorized payment"):
        gw.capture(p.id)
    with pytest.raises(ValidationError, match=r"exceeds the 30\.00 USD left"):
        gw.refund(p.id, amount=usd("30.01"))
    assert [t.new_status for t in gw.history(p.id)] == [S.AUTHORIZED, S.SUCCEEDED]


def test_cancel(gw: Gateway, provider: FakeProvider) -> None:
    p = gw.create_payment(order_id="ord_1", amount=usd("5"), payment_method="tok_visa",
                          capture="manual")  # fmt: skip
    assert gw.cancel(p.id).status is S.CANCELED
    assert gw.cancel(p.id).status is S.CANCELED
    assert provider.calls["cancel_payment"] == 1
    # canceled elsewhere (the provider's dashboard), learnt from the webhook: no call either
    other = gw.create_payment(order_id="ord_x", amount=usd("5"), payment_method="tok_3ds")
    provider.cancel_payment(other.id, idempotency_key="dashboard")
    deliver(gw)
    assert gw.cancel(other.id).status is S.CANCELED
    assert provider.calls["cancel_payment"] == 2
    paid = gw.create_payment(order_id="ord_2", amount=usd("5"), payment_method="tok_visa")
    with pytest.raises(ValidationError, match="refund it instead"):
        gw.cancel(paid.id)
    assert provider.calls["cancel_payment"] == 2


def test_refunds_move_the_state_and_their_webhooks_are_no_ops(
    gw: Gateway, provider: FakeProvider
) -> None:
    p = gw.create_payment(order_id="ord_1", amount=usd("19.99"), payment_method="tok_visa")
    deliver(gw)
    with pytest.raises(ValidationError, match="exceeds"):
        gw.refund(p.id, amount=usd("20.00"))
    with pytest.raises(ValidationError, match="must be positive"):
        gw.refund(p.id, amount=usd("0"))
    assert provider.calls["refund_payment"] == 0
    r1 = gw.refund(p.id, amount=usd("5.00"))
    assert r1.status is RefundStatus.SUCCEEDED and r1.amount == usd("5.00")
    assert gw.get_payment(p.id).status is S.PARTIALLY_REFUNDED
    r2 = gw.refund(p.id)  # the rest
    assert r2.amount == usd("14.99") and r2.id != r1.id
    results = deliver(gw)
    assert [r.outcome for r in results] == ["unchanged", "unchanged"]
    payment = gw.get_payment(p.id)
    assert payment.status is S.REFUNDED and payment.amount_refunded == usd("19.99")
    log = gw.history(p.id)
    assert [(t.new_status, t.refunded) for t in log] == [
        (S.SUCCEEDED, 0), (S.PARTIALLY_REFUNDED, 500), (S.REFUNDED, 1999),
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="only a captured, not fully refunded"):
        gw.refund(p.id, amount=usd("1"))


def test_a_refund_with_the_same_key_is_sent_once(gw: Gateway, provider: FakeProvider) -> None:
    p = gw.create_payment(order_id="ord_1", amount=usd("10"), payment_method="tok_visa")
    provider.fail_next("refund_payment", ProviderUnavailable("lost"), after_commit=True)
    first = gw.refund(p.id, amount=usd("3"), idempotency_key="rma-42")
    second = gw.refund(p.id, amount=usd("3"), idempotency_key="rma-42")
    assert first == second
    assert provider.calls["refund_payment"] == 2  # the lost answer, then its replay
    assert gw.get_payment(p.id).amount_refunded == usd("3")


def test_get_payment_refreshes_the_store_through_the_state_machine(
    gw: Gateway, provider: FakeProvider
) -> None:
    p = gw.create_payment(order_id="ord_1", amount=usd("8"), payment_method="tok_processing")
    assert p.status is S.PROCESSING
    provider.settle(p.id)
    assert gw.payment_for_order("ord_1").status is S.PROCESSING  # type: ignore[union-attr]
    assert gw.get_payment(p.id).status is S.SUCCEEDED
    assert [(t.previous_status, t.new_status, t.source) for t in gw.history(p.id)] == [
        (None, S.PROCESSING, "api"), (S.PROCESSING, S.SUCCEEDED, "api"),
    ]  # fmt: skip
    results = deliver(gw)  # created, processing, succeeded: nothing new
    assert all(r.outcome in ("stale", "unchanged") for r in results)
    assert len(gw.history(p.id)) == 2


def test_3ds_and_the_return_never_trust_the_query_string(
    gw: Gateway, provider: FakeProvider
) -> None:
    p = gw.create_payment(order_id="ord_1", amount=usd("12"), payment_method="tok_3ds",
                          return_url="https://shop.example/back")  # fmt: skip
    assert p.status is S.REQUIRES_ACTION and p.client_secret
    back = gw.handle_return({"payment_id": p.id, "status": "succeeded"})
    assert back.status is S.REQUIRES_ACTION  # the customer has not authenticated yet
    provider.authenticate(p.id)
    assert gw.handle_return({"payment_id": p.id}).status is S.SUCCEEDED
    assert gw.history(p.id)[-1].source == "return"


def test_checkout_is_idempotent_per_order(gw: Gateway, provider: FakeProvider) -> None:
    lines = [LineItem(name="Tee", unit_amount=usd("10"), quantity=2)]
    s1 = gw.create_checkout(order_id="ord_2", line_items=lines, success_url="https://s/ok",
                            cancel_url="https://s/cancel")  # fmt: skip
    s2 = gw.create_checkout(order_id="ord_2", line_items=lines, success_url="https://s/ok",
                            cancel_url="https://s/cancel")  # fmt: skip
    assert s1.id == s2.id and s1.url and provider.calls["create_checkout_session"] == 1
    with pytest.raises(IdempotencyConflict):
        gw.create_checkout(order_id="ord_2", line_items=lines * 2, success_url="https://s/ok",
                           cancel_url="https://s/cancel")  # fmt: skip
    with pytest.raises(ValidationError, match="mix currencies"):
        gw.create_checkout(order_id="ord_3", success_url="https://s/ok", cancel_url="https://s/c",
                           line_items=[*lines, LineItem("Mug", Money.of("1", "EUR"))])  # fmt: skip
    provider.complete_checkout(s1.id, payment_method="tok_visa")
    results = deliver(gw)
    assert EventType.CHECKOUT_COMPLETED in [r.event.type for r in results]
    paid = gw.payment_for_order("ord_2")
    assert paid is not None and paid.status is S.SUCCEEDED and paid.amount == usd("20")
    assert gw.handle_return({"session_id": s1.id}).id == paid.id


def test_customers_subscriptions_invoices(gw: Gateway, provider: FakeProvider) -> None:
    c = gw.create_customer(email="a@example.com", name="Ada", idempotency_key="signup-7")
    assert (
        gw.create_customer(email="a@example.com", name="Ada", idempotency_key="signup-7").id == c.id
    )
    assert provider.calls["create_customer"] == 1
    # without a key each call is a customer of its own: two anonymous people are two
    first, second = gw.create_customer(), gw.create_customer()
    assert first.id != second.id and provider.calls["create_customer"] == 3
    sub = gw.create_subscription(customer_id=c.id, price_id="price_basic")
    assert sub.status is SubscriptionStatus.ACTIVE
    assert gw.create_subscription(customer_id=c.id, price_id="price_basic").id == sub.id
    assert provider.calls["create_subscription"] == 1
    assert gw.cancel_subscription(sub.id).status is SubscriptionStatus.CANCELED
    renewed = gw.create_subscription(customer_id=c.id, price_id="price_basic")
    assert renewed.id != sub.id and renewed.status is SubscriptionStatus.ACTIVE
    inv = gw.create_invoice(customer_id=c.id, order_id="ord_9",
                            line_items=[LineItem(name="Consulting", unit_amount=usd("100"))])  # fmt: skip
    again = gw.create_invoice(customer_id=c.id, order_id="ord_9",
                              line_items=[LineItem(name="Consulting", unit_amount=usd("100"))])  # fmt: skip
    assert inv.id == again.id and inv.amount_due == usd("100")
    assert provider.calls["create_invoice"] == 1


def test_the_sqlite_file_never_holds_a_client_secret(
    tmp_path: Path, provider: FakeProvider
) -> None:
    path = tmp_path / "p.db"
    gw = paygate.connect(provider, store=f"sqlite:///{path}")
    p = gw.create_payment(order_id="ord_1", amount=usd("12"), payment_method="tok_3ds")
    assert p.client_secret and p.client_secret.startswith(p.id)
    deliver(gw)
    gw.close()
    with closing(sqlite3.connect(path)) as conn, conn:
        dump = "\n".join(conn.iterdump())
    assert p.id in dump and p.client_secret not in dump and "_secret_" not in dump


def test_a_request_the_provider_refuses_frees_the_order_for_corrected_parameters(
    gw: Gateway, provider: FakeProvider
) -> None:
    with pytest.raises(paygate.InvalidRequest):  # the fake refuses amounts over its limit
        gw.create_payment(order_id="ord_big", amount=usd("1000000.00"), payment_method="tok_visa")
    op = gw.store.get_operation("create_payment:ord_big")
    assert op is not None and op.status is OperationStatus.FAILED
    fixed = gw.create_payment(order_id="ord_big", amount=usd("100.00"), payment_method="tok_visa")
    assert fixed.status is S.SUCCEEDED and fixed.amount == usd("100.00")
