"""StripeProvider after the first charge, over mocked HTTP (responses): trials, plan
changes with proration, pause/resume, undoing a cancel, retrying an invoice, disputes
answered with evidence or accepted.

Response bodies are Stripe's own example objects (fixtures3.json); every form field sent is
checked against the example object it sets (a key Stripe's objects do not have fails).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import responses

from paygate import DisputeStatus, SubscriptionStatus, ValidationError
from paygate.models import DisputeEvidence, DisputeReason, EvidenceFile, InvoiceStatus
from paygate.providers.stripe import StripeProvider
from tests.fixtures.stripe import resource, resources
from tests.test_stripe_api import form

API = "https://api.stripe.com/v1"
FILES = "https://files.stripe.com/v1/files"


@pytest.fixture
def provider() -> StripeProvider:
    return StripeProvider(api_key="sk_test_subs_key", webhook_secret="whsec_subs")


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def _item_keys(fields: dict[str, str]) -> set[str]:
    """``items[0][price]`` -> ``price``: the subscription item fields a request sets."""
    return {k.split("][")[-1].rstrip("]") for k in fields if k.startswith("items[")}


def subscription(**fields: Any) -> dict[str, Any]:
    base = {"id": "sub_1", "status": "active", "pause_collection": None}
    return resource("subscription", **{**base, **fields})


def test_a_trial_is_asked_for_in_days_or_to_a_date(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.post(f"{API}/subscriptions", json=subscription(status="trialing"))
    api.post(f"{API}/subscriptions", json=subscription(status="trialing"))
    sub = provider.create_subscription(customer_id="cus_1", price_id="price_a",
                                       idempotency_key="k1", trial_days=14)  # fmt: skip
    assert sub.status is SubscriptionStatus.TRIALING
    assert form(api.calls[0])["trial_period_days"] == "14"
    end = datetime(2030, 1, 1, tzinfo=timezone.utc)
    provider.create_subscription(customer_id="cus_1", price_id="price_a", idempotency_key="k2",
                                 trial_end=end, quantity=3)  # fmt: skip
    fields = form(api.calls[1])
    assert fields["trial_end"] == str(int(end.timestamp()))
    assert fields["items[0][quantity]"] == "3"
    assert {"trial_end", "customer"} <= set(resources()["subscription"])
    assert _item_keys(fields) <= set(resources()["subscription_item"])
    with pytest.raises(ValidationError, match="not both"):
        provider.create_subscription(customer_id="c", price_id="p", idempotency_key="k",
                                     trial_days=1, trial_end=end)  # fmt: skip


def test_change_swaps_the_one_item_with_stripe_proration(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    item_id = resources()["subscription"]["items"]["data"][0]["id"]
    api.get(f"{API}/subscriptions/sub_1", json=subscription())
    api.post(f"{API}/subscriptions/sub_1", json=subscription())
    changed = provider.change_subscription("sub_1", price_id="price_pro", quantity=2,
                                           proration="always_invoice",
                                           idempotency_key="chg-1")  # fmt: skip
    post = api.calls[1]
    assert post.request.headers["Idempotency-Key"] == "chg-1"
    fields = form(post)
    assert fields == {
        "items[0][price]": "price_pro", "items[0][quantity]": "2", "items[0][id]": item_id,
        "proration_behavior": "always_invoice",
    }  # fmt: skip
    assert _item_keys(fields) <= set(resources()["subscription_item"])
    assert changed.status is SubscriptionStatus.ACTIVE and changed.quantity == 1
    with pytest.raises(ValidationError, match="proration must be"):
        provider.change_subscription("sub_1", quantity=2, proration="soon",  # type: ignore[arg-type]
                                     idempotency_key="k")  # fmt: skip


def test_pause_resume_and_undo_cancel(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.post(f"{API}/subscriptions/sub_1",
             json=subscription(pause_collection={"behavior": "void", "resumes_at": None}))  # fmt: skip
    api.post(f"{API}/subscriptions/sub_1", json=subscription())
    api.post(f"{API}/subscriptions/sub_1", json=subscription(cancel_at_period_end=False))
    assert provider.pause_subscription("sub_1").status is SubscriptionStatus.PAUSED
    assert form(api.calls[0]) == {"pause_collection[behavior]": "void"}
    assert provider.resume_subscription("sub_1").status is SubscriptionStatus.ACTIVE
    assert form(api.calls[1]) == {"pause_collection": ""}
    assert not provider.undo_cancel_subscription("sub_1").cancel_at_period_end
    assert form(api.calls[2]) == {"cancel_at_period_end": "false"}
    for fields in (form(c) for c in api.calls):
        assert {k.split("[")[0] for k in fields} <= set(resources()["subscription"])


def test_list_subscriptions_asks_for_every_status(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    page = {"object": "list", "data": [subscription(), subscription(id="sub_2", status="past_due")],
            "has_more": False, "url": "/v1/subscriptions"}  # fmt: skip
    api.get(f"{API}/subscriptions", json=page)
    subs = provider.list_subscriptions(customer_id="cus_1")
    assert [(s.id, s.status) for s in subs] == [
        ("sub_1", SubscriptionStatus.ACTIVE), ("sub_2", SubscriptionStatus.PAST_DUE),
    ]  # fmt: skip
    url = api.calls[0].request.url
    assert "customer=cus_1" in url and "status=all" in url


def test_retry_invoice_pays_it_now(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.post(f"{API}/invoices/in_1/pay",
             json=resource("invoice", id="in_1", status="paid", attempt_count=2))  # fmt: skip
    invoice = provider.retry_invoice("in_1", idempotency_key="retry-in_1")
    assert api.calls[0].request.headers["Idempotency-Key"] == "retry-in_1"
    assert invoice.status is InvoiceStatus.PAID and invoice.attempt_count == 2
    assert invoice.subscription_id == "subscription"  # parent.subscription_details


def test_evidence_uploads_its_files_then_submits(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.post(FILES, json=resource("file", id="file_receipt"))
    api.post(FILES, json=resource("file", id="file_extra"))
    api.post(f"{API}/disputes/dp_1", json=resource("dispute", id="dp_1", status="under_review"))
    evidence = DisputeEvidence(
        explanation="Delivered and signed for.", customer_email="a@example.com",
        shipping_carrier="UPS", tracking_number="1Z999", refund_policy="30 days",
        files=(EvidenceFile("receipt.pdf", b"%PDF receipt", kind="receipt"),
               EvidenceFile("more.png", b"\x89PNG", content_type="image/png", kind="receipt")),
    )  # fmt: skip
    dispute = provider.submit_dispute_evidence("dp_1", evidence)
    upload = api.calls[0].request
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="purpose"' in upload.body and b"dispute_evidence" in upload.body
    assert b'filename="receipt.pdf"' in upload.body and b"%PDF receipt" in upload.body
    fields = form(api.calls[2])
    assert fields == {
        "evidence[uncategorized_text]": "Delivered and signed for.",
        "evidence[customer_email_address]": "a@example.com",
        "evidence[shipping_carrier]": "UPS", "evidence[shipping_tracking_number]": "1Z999",
        "evidence[refund_policy_disclosure]": "30 days",
        "evidence[receipt]": "file_receipt", "evidence[uncategorized_file]": "file_extra",
        "submit": "true",
    }  # fmt: skip
    known = set(resources()["dispute"]["evidence"])
    assert {k[len("evidence[") : -1] for k in fields if k.startswith("evidence[")} <= known
    assert dispute.status is DisputeStatus.UNDER_REVIEW


def test_staging_evidence_does_not_submit(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.post(f"{API}/disputes/dp_1", json=resource("dispute", id="dp_1"))
    provider.submit_dispute_evidence("dp_1", DisputeEvidence(explanation="x"), submit=False)
    assert form(api.calls[0])["submit"] == "false"


def test_accept_closes_and_disputes_are_listed_normalized(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.post(f"{API}/disputes/dp_1/close", json=resource("dispute", id="dp_1", status="lost"))
    page = {"object": "list", "url": "/v1/disputes", "has_more": False,
            "data": [resource("dispute", reason="product_not_received")]}  # fmt: skip
    api.get(f"{API}/disputes", json=page)
    assert provider.accept_dispute("dp_1").status is DisputeStatus.LOST
    (listed,) = provider.list_disputes(payment_id="pi_1")
    assert "payment_intent=pi_1" in api.calls[1].request.url
    assert listed.reason_code is DisputeReason.PRODUCT_NOT_RECEIVED
    due = resources()["dispute"]["evidence_details"]["due_by"]
    assert listed.evidence_due_by == datetime.fromtimestamp(due, tz=timezone.utc)
