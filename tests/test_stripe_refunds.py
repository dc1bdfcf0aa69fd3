"""Stripe: refunds and disputes read from the answer (each refund by id), partial captures
whose released remainder is not a refund, get_refund.

Bodies are Stripe's own example objects (fixtures3.json) with fields set, so no key is
invented; requests are checked over ``responses``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses

from paygate import Money, NotFound, PaymentStatus, RefundStatus
from paygate.providers.stripe import StripeProvider, payment_from_stripe
from paygate.state import PaymentState, Trigger, apply_all, events_for_answer, state_of
from tests.fixtures.stripe import resource

API = "https://api.stripe.com/v1"


@pytest.fixture
def provider() -> StripeProvider:
    return StripeProvider(api_key="sk_test_refund_tests")


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def query(call: Any) -> dict[str, str]:
    return dict(parse_qsl(call.request.url.partition("?")[2]))


def refund(
    refund_id: str, amount: int, status: str = "succeeded", failure_reason: str | None = None
) -> dict[str, Any]:
    body = resource(
        "refund",
        id=refund_id,
        amount=amount,
        currency="usd",
        charge="ch_1",
        payment_intent="pi_1",
        status=status,
    )
    if failure_reason:  # Stripe sets it on failed refunds only; its example has none
        body["failure_reason"] = failure_reason
    return body


def charge(*, amount: int, captured: int, refunded: int, refunds: Any, **fields: Any) -> Any:
    return resource(
        "charge",
        id="ch_1",
        payment_intent="pi_1",
        amount=amount,
        amount_captured=captured,
        amount_refunded=refunded,
        captured=True,
        refunded=refunded >= amount,
        currency="usd",
        refunds=refunds,
        **fields,
    )


def listing(*items: dict[str, Any], has_more: bool = False) -> dict[str, Any]:
    return {"object": "list", "data": list(items), "has_more": has_more, "url": "/v1/refunds"}


def intent(*, amount: int, received: int, latest_charge: Any) -> dict[str, Any]:
    return resource(
        "payment_intent",
        id="pi_1",
        amount=amount,
        amount_received=received,
        currency="usd",
        status="succeeded",
        capture_method="manual",
        last_payment_error=None,
        next_action=None,
        latest_charge=latest_charge,
        metadata={"order_id": "ord_1"},
    )


# -- a partial capture: the released remainder is not a refund --------------------------------


def test_the_released_remainder_of_a_partial_capture_is_not_a_refund() -> None:
    """The real payload's numbers: 206.75 authorized, 203.00 captured, 3.75 released."""
    released = charge(amount=20675, captured=20300, refunded=375, refunds=listing())
    payment = payment_from_stripe(intent(amount=20675, received=20300, latest_charge=released))
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.amount_captured == Money(20300, "USD")
    assert payment.amount_refunded == Money(0, "USD")
    assert payment.refunds == ()


@pytest.mark.parametrize("listed", [True, False], ids=["refunds listed", "no refund list"])
def test_capture_25_of_40_is_succeeded_not_refunded(listed: bool) -> None:
    """15.00 released of 40.00 was read as a refund: refunded (below half) before."""
    released = charge(
        amount=4000, captured=2500, refunded=1500, refunds=listing() if listed else None
    )
    payment = payment_from_stripe(intent(amount=4000, received=2500, latest_charge=released))
    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.amount_captured == Money(2500, "USD")
    assert payment.amount_refunded == Money(0, "USD")


def test_a_refund_after_a_partial_capture_counts_only_the_refund() -> None:
    refunded = charge(
        amount=4000, captured=2500, refunded=2500, refunds=listing(refund("re_1", 1000))
    )
    payment = payment_from_stripe(intent(amount=4000, received=2500, latest_charge=refunded))
    assert payment.status is PaymentStatus.PARTIALLY_REFUNDED
    assert payment.amount_refunded == Money(1000, "USD")
    # and without the list, the amounts give the same answer
    bare = charge(amount=4000, captured=2500, refunded=2500, refunds=None)
    same = payment_from_stripe(intent(amount=4000, received=2500, latest_charge=bare))
    assert (same.status, same.amount_refunded) == (payment.status, payment.amount_refunded)


# -- refunds by id, from the answer -------------------------------------------------------------


def test_get_payment_lists_refunds_in_one_request(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    refunds = listing(
        refund("re_ok", 500),
        refund("re_pending", 300, status="pending"),
        refund("re_failed", 200, status="failed", failure_reason="expired_or_canceled_card"),
    )
    body = intent(
        amount=2000,
        received=2000,
        latest_charge=charge(amount=2000, captured=2000, refunded=800, refunds=refunds),
    )
    api.get(f"{API}/payment_intents/pi_1", json=body)
    payment = provider.get_payment("pi_1")
    assert len(api.calls) == 1
    assert query(api.calls[0]) == {
        "expand[0]": "latest_charge",
        "expand[1]": "latest_charge.refunds",
    }
    # the succeeded refund only: a pending one may still fail, a failed one returned
    assert payment.amount_refunded == Money(500, "USD")
    assert payment.status is PaymentStatus.PARTIALLY_REFUNDED
    assert [(r.id, r.status, r.amount.amount) for r in payment.refunds] == [
        ("re_ok", RefundStatus.SUCCEEDED, 500),
        ("re_pending", RefundStatus.PENDING, 300),
        ("re_failed", RefundStatus.FAILED, 200),
    ]
    assert all(r.payment_id == "pi_1" for r in payment.refunds)


def test_a_missed_refund_and_a_failed_one_are_learned_from_the_answer() -> None:
    """What the Gateway's sync reads: each refund by id, a counted one that failed back."""
    stored = PaymentState(
        status=PaymentStatus.PARTIALLY_REFUNDED,
        amount=2000,
        captured=2000,
        refunded=700,
        refund_ids=frozenset({"re_gone"}),
    )
    refunds = listing(
        refund("re_gone", 700, status="failed"),
        refund("re_new", 400),
        refund("re_p", 100, "pending"),
    )
    answer = payment_from_stripe(
        intent(
            amount=2000,
            received=2000,
            latest_charge=charge(amount=2000, captured=2000, refunded=500, refunds=refunds),
        )
    )
    learned = events_for_answer(stored, answer)
    assert [(e.trigger, e.ref) for e in learned if e.ref] == [
        (Trigger.REFUND_REVERSED, "re_gone"),
        (Trigger.REFUNDED, "re_new"),
    ]
    final = apply_all(stored, learned)
    assert (final.status, final.refunded) == (PaymentStatus.PARTIALLY_REFUNDED, 400)
    assert final.refunded == answer.amount_refunded.amount  # type: ignore[union-attr]


def test_more_refunds_than_one_page_are_listed(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    first_page = listing(*(refund(f"re_{n}", 100) for n in range(10)), has_more=True)
    body = intent(
        amount=2000,
        received=2000,
        latest_charge=charge(amount=2000, captured=2000, refunded=1200, refunds=first_page),
    )
    api.get(f"{API}/payment_intents/pi_1", json=body)
    api.get(
        f"{API}/refunds",
        json=listing(*(refund(f"re_{n}", 100) for n in range(12))),
    )
    payment = provider.get_payment("pi_1")
    assert query(api.calls[1]) == {"charge": "ch_1", "limit": "100"}
    assert len(payment.refunds) == 12
    assert payment.amount_refunded == Money(1200, "USD")


@pytest.mark.parametrize(
    ("dispute_status", "expected"),
    [
        ("needs_response", PaymentStatus.DISPUTED),
        ("under_review", PaymentStatus.DISPUTED),
        ("lost", PaymentStatus.CHARGED_BACK),
        ("won", PaymentStatus.SUCCEEDED),
        ("warning_closed", PaymentStatus.SUCCEEDED),
    ],
)
def test_a_disputed_charge_reads_its_disputes(
    provider: StripeProvider,
    api: responses.RequestsMock,
    dispute_status: str,
    expected: PaymentStatus,
) -> None:
    disputed = charge(amount=2000, captured=2000, refunded=0, refunds=listing(), disputed=True)
    api.get(
        f"{API}/payment_intents/pi_1",
        json=intent(amount=2000, received=2000, latest_charge=disputed),
    )
    dispute = resource(
        "dispute",
        id="dp_1",
        amount=2000,
        currency="usd",
        payment_intent="pi_1",
        status=dispute_status,
    )
    api.get(f"{API}/disputes", json={"object": "list", "data": [dispute], "has_more": False})
    payment = provider.get_payment("pi_1")
    assert query(api.calls[1]) == {"payment_intent": "pi_1", "limit": "100"}
    assert payment.status is expected


def test_an_undisputed_charge_costs_no_second_request(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    plain = charge(amount=2000, captured=2000, refunded=0, refunds=listing())
    api.get(
        f"{API}/payment_intents/pi_1", json=intent(amount=2000, received=2000, latest_charge=plain)
    )
    assert provider.get_payment("pi_1").status is PaymentStatus.SUCCEEDED
    assert len(api.calls) == 1


def test_a_disputed_charge_without_its_disputes_reads_disputed() -> None:
    disputed = charge(amount=2000, captured=2000, refunded=0, refunds=listing(), disputed=True)
    payment = payment_from_stripe(intent(amount=2000, received=2000, latest_charge=disputed))
    assert payment.status is PaymentStatus.DISPUTED
    assert state_of(payment).status is PaymentStatus.DISPUTED


# -- get_refund ---------------------------------------------------------------------------------


def test_get_refund(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.get(
        f"{API}/refunds/re_1",
        json=refund("re_1", 700, status="failed", failure_reason="lost_or_stolen_card"),
    )
    fetched = provider.get_refund("re_1")
    assert api.calls[0].request.method == "GET"
    assert (fetched.id, fetched.payment_id, fetched.amount) == ("re_1", "pi_1", Money(700, "USD"))
    assert fetched.status is RefundStatus.FAILED
    assert fetched.failure_reason == "lost_or_stolen_card"


def test_get_missing_refund(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.get(
        f"{API}/refunds/re_nope",
        status=404,
        json={
            "error": {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": "No such refund: 're_nope'",
            }
        },
    )
    with pytest.raises(NotFound):
        provider.get_refund("re_nope")
