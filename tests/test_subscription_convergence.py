"""Property: one subscription's webhook events, in any order and duplicated, leave the
store with the subscription the in-order run leaves, and the handlers hear each fact once.

The story, in each provider's own event shapes (Stripe, PayPal, Square): created (in a
trial where the provider has one), the trial's end, renewals paid, a plan change, a failed
renewal (past due), the retry paid (recovered), cancel at period end, canceled. Hypothesis
picks the order and the duplicates. An invoice event that arrives before anything of its
subscription makes paygate ask the provider (its answer: the subscription as it is now).

What must hold, whatever the order:

* the stored subscription equals the in-order run's;
* each fact is dispatched once (the outbox);
* the facts of moves between statuses are a subsequence of the in-order run's (a status
  the provider had already left when paygate learned of it is never told, nothing is
  told twice or out of order), and the final one (canceled) is always told; a period's
  renewal is told once at most (when paygate learns of it), a plan change or scheduled
  cancel no more often than in order;
* every invoice paid is told, whatever the order; a payment failure is told unless its
  invoice was known paid first.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paygate._facts import Fact
from paygate._subscriptions import news_from_webhook, record_news
from paygate.models import EventType, Subscription, SubscriptionStatus, WebhookEvent
from paygate.providers.paypal import _event_from as paypal_event
from paygate.providers.square import normalize_event as square_event
from paygate.providers.stripe import event_from_stripe
from paygate.stores import open_store
from paygate.stores.memory import MemoryStore
from paygate.subscription_state import SUBSCRIPTION_FACT_TYPES
from tests.postgres_support import pg_database, pg_schema, pg_url  # noqa: F401

E = EventType
S = SubscriptionStatus
#: the clock when paygate asks the provider (after every event of the story)
NOW = 100_000.0


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%d")


# -- Stripe ------------------------------------------------------------------------------------


def _stripe_sub(
    status: str, start: int, *, price: str = "price_basic", quantity: int = 1,
    cancel_at_period_end: bool = False,
) -> dict[str, Any]:  # fmt: skip
    return {
        "id": "sub_1", "object": "subscription", "customer": "cus_1", "status": status,
        "cancel_at_period_end": cancel_at_period_end, "trial_end": 1000,
        "items": {"object": "list", "data": [{
            "id": "si_1", "object": "subscription_item", "quantity": quantity,
            "price": {"id": price, "object": "price"},
            "current_period_start": start, "current_period_end": start + 1000,
        }]},
    }  # fmt: skip


def _stripe_invoice(invoice_id: str, status: str, attempt: int) -> dict[str, Any]:
    return {
        "id": invoice_id, "object": "invoice", "customer": "cus_1", "currency": "usd",
        "status": status, "amount_due": 2000, "amount_paid": 2000 if status == "paid" else 0,
        "attempt_count": attempt, "billing_reason": "subscription_cycle",
        "parent": {"type": "subscription_details",
                   "subscription_details": {"subscription": "sub_1"}},
    }  # fmt: skip


def _stripe(n: int, kind: str, created: int, obj: dict[str, Any]) -> WebhookEvent:
    body = {"id": f"evt_{n}", "object": "event", "type": kind, "created": created,
            "data": {"object": obj}}  # fmt: skip
    return event_from_stripe(json.loads(json.dumps(body)))


STRIPE_STORY = [
    _stripe(1, "customer.subscription.created", 100, _stripe_sub("trialing", 100)),
    _stripe(2, "customer.subscription.trial_will_end", 700, _stripe_sub("trialing", 100)),
    _stripe(3, "customer.subscription.updated", 1000, _stripe_sub("active", 1000)),
    _stripe(4, "invoice.paid", 1001, _stripe_invoice("in_1", "paid", 1)),
    _stripe(5, "customer.subscription.updated", 2000, _stripe_sub("active", 2000)),
    _stripe(6, "invoice.paid", 2001, _stripe_invoice("in_2", "paid", 1)),
    _stripe(7, "customer.subscription.updated", 2500,
            _stripe_sub("active", 2000, price="price_pro", quantity=2)),
    _stripe(8, "invoice.payment_failed", 3000, _stripe_invoice("in_3", "open", 1)),
    _stripe(9, "customer.subscription.updated", 3001,
            _stripe_sub("past_due", 3000, price="price_pro", quantity=2)),
    _stripe(10, "invoice.paid", 3500, _stripe_invoice("in_3", "paid", 2)),
    _stripe(11, "customer.subscription.updated", 3501,
            _stripe_sub("active", 3000, price="price_pro", quantity=2)),
    _stripe(12, "customer.subscription.updated", 4500,
            _stripe_sub("active", 3000, price="price_pro", quantity=2, cancel_at_period_end=True)),
    _stripe(13, "customer.subscription.deleted", 5000,
            _stripe_sub("canceled", 3000, price="price_pro", quantity=2, cancel_at_period_end=True)),
]  # fmt: skip

# -- PayPal ------------------------------------------------------------------------------------


def _paypal_sub(
    status: str, updated: int, *, plan: str = "P-BASIC", quantity: int = 1,
    paid_at: int | None = None, failed: int = 0, failed_at: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    billing: dict[str, Any] = {
        "outstanding_balance": {"currency_code": "USD", "value": "20.00" if failed else "0.00"},
        "failed_payments_count": failed,
        "next_billing_time": _iso(updated + 1000),
    }
    if paid_at is not None:
        billing["last_payment"] = {"amount": {"currency_code": "USD", "value": "20.00"},
                                   "time": _iso(paid_at)}  # fmt: skip
    if failed_at is not None:
        billing["last_failed_payment"] = {
            "amount": {"currency_code": "USD", "value": "20.00"}, "time": _iso(failed_at),
            "reason_code": "PAYMENT_DENIED",
        }  # fmt: skip
    return {"id": "I-SUB1", "plan_id": plan, "quantity": str(quantity), "status": status,
            "custom_id": "cus_1", "update_time": _iso(updated), "billing_info": billing}  # fmt: skip


def _paypal_sale(sale_id: str) -> dict[str, Any]:
    return {"id": sale_id, "state": "completed", "billing_agreement_id": "I-SUB1",
            "amount": {"total": "20.00", "currency": "USD"}}  # fmt: skip


def _paypal(n: int, kind: str, created: int, resource: dict[str, Any]) -> WebhookEvent:
    body = {"id": f"WH-{n}", "event_type": kind, "create_time": _iso(created),
            "resource_type": "subscription", "resource": resource}  # fmt: skip
    return paypal_event(json.dumps(body).encode())


PAYPAL_STORY = [
    _paypal(1, "BILLING.SUBSCRIPTION.CREATED", 100, _paypal_sub("APPROVAL_PENDING", 100)),
    _paypal(2, "BILLING.SUBSCRIPTION.ACTIVATED", 1000, _paypal_sub("ACTIVE", 1000, paid_at=1000)),
    _paypal(3, "PAYMENT.SALE.COMPLETED", 1001, _paypal_sale("SALE-1")),
    _paypal(4, "PAYMENT.SALE.COMPLETED", 2001, _paypal_sale("SALE-2")),
    _paypal(5, "BILLING.SUBSCRIPTION.UPDATED", 2002, _paypal_sub("ACTIVE", 2002, paid_at=2000)),
    _paypal(6, "BILLING.SUBSCRIPTION.UPDATED", 2500,
            _paypal_sub("ACTIVE", 2500, plan="P-PRO", quantity=2, paid_at=2000)),
    _paypal(7, "BILLING.SUBSCRIPTION.PAYMENT.FAILED", 3001,
            _paypal_sub("ACTIVE", 3001, plan="P-PRO", quantity=2, paid_at=2000, failed=1,
                        failed_at=3000)),
    _paypal(8, "PAYMENT.SALE.COMPLETED", 3500, _paypal_sale("SALE-3")),
    _paypal(9, "BILLING.SUBSCRIPTION.UPDATED", 3501,
            _paypal_sub("ACTIVE", 3501, plan="P-PRO", quantity=2, paid_at=3500)),
    _paypal(10, "BILLING.SUBSCRIPTION.SUSPENDED", 4000,
            _paypal_sub("SUSPENDED", 4000, plan="P-PRO", quantity=2, paid_at=3500)),
    _paypal(11, "BILLING.SUBSCRIPTION.RE-ACTIVATED", 4200,
            _paypal_sub("ACTIVE", 4200, plan="P-PRO", quantity=2, paid_at=3500)),
    _paypal(12, "BILLING.SUBSCRIPTION.CANCELLED", 5000,
            _paypal_sub("CANCELLED", 5000, plan="P-PRO", quantity=2, paid_at=3500)),
]  # fmt: skip

# -- Square ------------------------------------------------------------------------------------


def _square_sub(
    version: int, status: str, *, plan: str = "PLAN_BASIC", canceled: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    sub: dict[str, Any] = {"id": "sq_sub_1", "location_id": "L1", "plan_variation_id": plan,
                           "customer_id": "cus_1", "start_date": "2026-01-01",
                           "charged_through_date": "2026-02-01", "status": status,
                           "version": version}  # fmt: skip
    if canceled:
        sub["canceled_date"] = canceled
    return sub


def _square_invoice(invoice_id: str, status: str) -> dict[str, Any]:
    return {"id": invoice_id, "version": 1, "location_id": "L1", "status": status,
            "subscription_id": "sq_sub_1", "primary_recipient": {"customer_id": "cus_1"},
            "payment_requests": [{"uid": "r1", "request_type": "BALANCE",
                                  "computed_amount_money": {"amount": 2000, "currency": "USD"}}],
            }  # fmt: skip


def _square(n: int, kind: str, created: int, obj: dict[str, Any]) -> WebhookEvent:
    key = kind.split(".")[0]
    body = {"merchant_id": "M1", "type": kind, "event_id": f"sq_evt_{n}",
            "created_at": _iso(created),
            "data": {"type": key, "id": obj["id"], "object": {key: obj}}}  # fmt: skip
    return square_event(json.loads(json.dumps(body)))


SQUARE_STORY = [
    _square(1, "subscription.created", 100, _square_sub(1, "ACTIVE")),
    _square(2, "invoice.payment_made", 1001, _square_invoice("inv_1", "PAID")),
    _square(3, "subscription.updated", 2500, _square_sub(2, "ACTIVE", plan="PLAN_PRO")),
    _square(4, "invoice.scheduled_charge_failed", 3000, _square_invoice("inv_2", "UNPAID")),
    _square(5, "invoice.payment_made", 3500, _square_invoice("inv_2", "PAID")),
    _square(6, "subscription.updated", 4000, _square_sub(3, "PAUSED", plan="PLAN_PRO")),
    _square(7, "subscription.updated", 4200, _square_sub(4, "ACTIVE", plan="PLAN_PRO")),
    _square(8, "subscription.updated", 4500,
            _square_sub(5, "ACTIVE", plan="PLAN_PRO", canceled="2026-03-01")),
    _square(9, "subscription.updated", 5000,
            _square_sub(6, "CANCELED", plan="PLAN_PRO", canceled="2026-03-01")),
]  # fmt: skip


@dataclass(frozen=True)
class Story:
    events: list[WebhookEvent]
    #: the provider's answer when asked (the last snapshot of the story)
    current: Subscription


def _story(events: list[WebhookEvent]) -> Story:
    snapshots = [e.object for e in events if isinstance(e.object, Subscription)]
    return Story(events, snapshots[-1])


STORIES = {"stripe": _story(STRIPE_STORY), "paypal": _story(PAYPAL_STORY),
           "square": _story(SQUARE_STORY)}  # fmt: skip


def _run(store: Any, story: Story, order: list[int]) -> tuple[Subscription, list[Fact]]:
    fetch: Callable[[str], Subscription] = lambda _id: story.current  # noqa: E731
    for i in order:
        event = story.events[i]
        news = news_from_webhook(event)
        assert news is not None, event.provider_type
        at = event.occurred_at.timestamp() if event.occurred_at else 0.0
        record_news(store, news, source="webhook", now=max(at, NOW), event=event, fetch=fetch)
    heard: list[Fact] = []
    while claims := store.claim_facts(now=NOW, lease_seconds=30):
        for claim in claims:  # the dispatcher: hand the fact to the handlers, mark it done
            heard.append(claim.fact)
            store.finish_fact(claim, now=NOW)
    sub_id = story.current.id
    record = store.get_subscription(sub_id)
    assert record is not None
    return record.subscription, heard


#: the facts of a move between statuses (the rest tell of a period, a plan, a schedule)
MOVES = {E.SUBSCRIPTION_ACTIVATED, E.SUBSCRIPTION_PAST_DUE, E.SUBSCRIPTION_UNPAID,
         E.SUBSCRIPTION_RECOVERED, E.SUBSCRIPTION_PAUSED, E.SUBSCRIPTION_RESUMED,
         E.SUBSCRIPTION_CANCELED, E.SUBSCRIPTION_EXPIRED}  # fmt: skip


def _status_facts(facts: list[Fact]) -> list[EventType]:
    return [f.type for f in facts if f.type in MOVES]


IN_ORDER = {name: _run(MemoryStore(), s, list(range(len(s.events)))) for name, s in STORIES.items()}


def test_the_in_order_runs_tell_the_story() -> None:
    stripe = [f.type for f in IN_ORDER["stripe"][1]]
    assert stripe == [
        E.SUBSCRIPTION_TRIAL_WILL_END, E.SUBSCRIPTION_ACTIVATED, E.INVOICE_PAID,
        E.SUBSCRIPTION_RENEWED, E.INVOICE_PAID, E.SUBSCRIPTION_PLAN_CHANGED,
        E.INVOICE_PAYMENT_FAILED, E.SUBSCRIPTION_PAST_DUE, E.INVOICE_PAID,
        E.SUBSCRIPTION_RECOVERED, E.SUBSCRIPTION_RENEWED, E.SUBSCRIPTION_CANCEL_SCHEDULED,
        E.SUBSCRIPTION_CANCELED,
    ]  # fmt: skip
    paypal = [f.type for f in IN_ORDER["paypal"][1]]
    assert paypal == [
        E.SUBSCRIPTION_ACTIVATED, E.INVOICE_PAID, E.INVOICE_PAID, E.SUBSCRIPTION_RENEWED,
        E.SUBSCRIPTION_PLAN_CHANGED, E.SUBSCRIPTION_PAST_DUE, E.INVOICE_PAYMENT_FAILED,
        E.INVOICE_PAID, E.SUBSCRIPTION_RECOVERED, E.SUBSCRIPTION_RENEWED,
        E.SUBSCRIPTION_PAUSED, E.SUBSCRIPTION_RESUMED, E.SUBSCRIPTION_CANCELED,
    ]  # fmt: skip
    square = [f.type for f in IN_ORDER["square"][1]]
    assert square == [
        E.SUBSCRIPTION_ACTIVATED, E.INVOICE_PAID, E.SUBSCRIPTION_PLAN_CHANGED,
        E.INVOICE_PAYMENT_FAILED, E.INVOICE_PAID, E.SUBSCRIPTION_PAUSED,
        E.SUBSCRIPTION_RESUMED, E.SUBSCRIPTION_CANCEL_SCHEDULED, E.SUBSCRIPTION_CANCELED,
    ]  # fmt: skip
    for _, (sub, facts) in IN_ORDER.items():
        assert sub.status is S.CANCELED
        assert {f.type for f in facts} <= SUBSCRIPTION_FACT_TYPES
        assert all(f.subscription is not None and f.payment is None for f in facts)


def _is_subsequence(small: list[EventType], big: list[EventType]) -> bool:
    it = iter(big)
    return all(item in it for item in small)


@st.composite
def deliveries(draw: st.DrawFn, size: int) -> list[int]:
    order = draw(st.permutations(range(size)))
    extra = draw(st.lists(st.integers(0, size - 1), max_size=size))
    spots = draw(st.lists(st.integers(0, size), min_size=len(extra), max_size=len(extra)))
    out = list(order)
    for index, spot in zip(extra, spots, strict=True):
        out.insert(spot, index)  # delivered again, somewhere
    return out


@pytest.mark.parametrize("provider", sorted(STORIES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_order_with_duplicates_converges_and_tells_each_fact_once(
    provider: str, data: st.DataObject
) -> None:
    story = STORIES[provider]
    order = data.draw(deliveries(len(story.events)))
    final, heard = _run(MemoryStore(), story, order)
    expected_final, expected_facts = IN_ORDER[provider]
    assert final == expected_final
    ids = [f.id for f in heard]
    assert len(ids) == len(set(ids))  # each fact dispatched once
    assert _is_subsequence(_status_facts(heard), _status_facts(expected_facts))
    assert Counter(_status_facts(heard))[E.SUBSCRIPTION_CANCELED] == 1
    renewed = [f.ref for f in heard if f.type is E.SUBSCRIPTION_RENEWED]
    assert len(renewed) == len(set(renewed))  # each period's renewal told once at most
    assert set(renewed) <= {f.ref for f in expected_facts if f.type is E.SUBSCRIPTION_RENEWED}
    told, in_order = Counter(f.type for f in heard), Counter(f.type for f in expected_facts)
    for other in (E.SUBSCRIPTION_PLAN_CHANGED, E.SUBSCRIPTION_CANCEL_SCHEDULED):
        assert told[other] <= in_order[other]
    paid = {f.ref for f in heard if f.type is E.INVOICE_PAID}
    assert paid == {f.ref for f in expected_facts if f.type is E.INVOICE_PAID}
    failed = {f.ref for f in heard if f.type is E.INVOICE_PAYMENT_FAILED}
    assert failed <= {f.ref for f in expected_facts if f.type is E.INVOICE_PAYMENT_FAILED}


def _check_reversed(store: Any) -> None:
    for provider, story in STORIES.items():
        order = [*reversed(range(len(story.events))), 0, 1]
        final, heard = _run(store, story, order)
        assert final == IN_ORDER[provider][0]
        assert _status_facts(heard)[-1:] == [E.SUBSCRIPTION_CANCELED]
        history = store.subscription_history(story.current.id)
        assert history[0].previous_status is None and history[-1].new_status is S.CANCELED


def test_reversed_delivery_on_sqlite_converges(tmp_path: Any) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'subs.db'}")
    try:
        _check_reversed(store)
    finally:
        store.close()


def test_reversed_delivery_on_postgres_converges(pg_url: str) -> None:  # noqa: F811
    store = open_store(pg_url)
    try:
        _check_reversed(store)
    finally:
        store.close()


# -- the same through the Gateway: signed Stripe deliveries, handlers counting -------------

STRIPE_SECRET = "whsec_subscription_convergence"


def _stripe_deliveries() -> list[tuple[bytes, dict[str, str]]]:
    from paygate.providers._stripe_webhook import sign

    out = []
    for event in STRIPE_STORY:
        body = json.dumps(event.raw).encode()
        # signed now: the adapter checks the signature's age with its own (real) clock
        out.append((body, {"Stripe-Signature": sign(body, STRIPE_SECRET, int(time.time()))}))
    return out


STRIPE_DELIVERIES = _stripe_deliveries()


def _gateway_run(order: list[int]) -> tuple[Subscription, list[Fact]]:
    import responses

    import paygate
    from paygate._facts import FACT_TYPES
    from paygate.providers.stripe import StripeProvider

    provider = StripeProvider(api_key="sk_test_convergence", webhook_secret=STRIPE_SECRET,
                              webhook_tolerance=3600)  # fmt: skip
    gw = paygate.connect(provider, store="memory://", clock=lambda: NOW)
    heard: list[Fact] = []
    gw.on(*FACT_TYPES)(heard.append)
    final = STRIPE_STORY[-1].raw["data"]["object"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        # an invoice's event before any of its subscription's: paygate asks Stripe
        api.get("https://api.stripe.com/v1/subscriptions/sub_1", json=final)
        for i in order:
            body, headers = STRIPE_DELIVERIES[i]
            assert gw.handle_webhook(body, headers).acknowledged
    record = gw.store.get_subscription("sub_1")  # type: ignore[attr-defined]
    gw.close()
    return record.subscription, heard


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_through_the_gateway_each_fact_reaches_the_handlers_once(data: st.DataObject) -> None:
    order = data.draw(deliveries(len(STRIPE_DELIVERIES)))
    final, heard = _gateway_run(order)
    expected_final, expected_facts = _gateway_run(list(range(len(STRIPE_DELIVERIES))))
    assert final == expected_final == IN_ORDER["stripe"][0]
    assert [f.type for f in expected_facts] == [f.type for f in IN_ORDER["stripe"][1]]
    ids = [f.id for f in heard]
    assert len(ids) == len(set(ids))  # the handlers heard each fact once
    assert _is_subsequence(_status_facts(heard), _status_facts(expected_facts))
    assert Counter(_status_facts(heard))[E.SUBSCRIPTION_CANCELED] == 1
    paid = {f.ref for f in heard if f.type is E.INVOICE_PAID}
    assert paid == {f.ref for f in expected_facts if f.type is E.INVOICE_PAID}
