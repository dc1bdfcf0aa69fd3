"""PayPalProvider after the first charge, over mocked HTTP: revise (no proration), suspend
and activate, the outstanding balance charged again, disputes answered with evidence
(multipart) or accepted. Every JSON body is checked against PayPal's own specs
(billing_subscriptions_v1, customer_disputes_v1) where ../shared/reference has them."""

from __future__ import annotations

import email.parser
import email.policy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import responses

from paygate.errors import InvalidRequest, NotSupported
from paygate.models import (
    DisputeEvidence,
    DisputeReason,
    EvidenceFile,
    InvoiceStatus,
    SubscriptionStatus,
)
from paygate.providers.paypal import PayPalProvider, paypal_evidence
from tests.paypal_support import (
    API,
    DISPUTES,
    ORDERS,
    PAYMENTS,
    SUBSCRIPTIONS,
    PayPalMock,
    capture_json,
    money,
    order_json,
    provider_settings,
    spec_available,
    validate,
)
from tests.test_paypal import CAPTURE, ORDER, SUBSCRIPTION, dispute_json

SUB = "/v1/billing/subscriptions/I-BW452GLLEP1G"


@pytest.fixture
def paypal() -> Iterator[PayPalMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock = PayPalMock(rsps)
        mock.token()
        yield mock
        mock.assert_all_called()


@pytest.fixture
def provider() -> PayPalProvider:
    return PayPalProvider(**provider_settings())


def active(**billing: Any) -> dict[str, Any]:
    info = {"outstanding_balance": money("0.00"), "failed_payments_count": 0,
            "next_billing_time": "2026-12-22T10:00:00Z", **billing}  # fmt: skip
    return {**SUBSCRIPTION, "status": "ACTIVE", "quantity": "1",
            "update_time": "2026-11-23T00:00:00Z", "billing_info": info}  # fmt: skip


def test_change_revises_from_the_next_cycle_and_refuses_proration(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    with pytest.raises(NotSupported, match=r"paypal cannot prorate.*proration='none'"):
        provider.change_subscription("I-BW452GLLEP1G", price_id="P-PRO-PLAN-1",
                                     idempotency_key="k")  # fmt: skip
    revised = {"plan_id": "P-PRO-PLAN-1", "quantity": "2", "links": [
        {"href": "https://www.sandbox.paypal.com/webapps/billing/subscriptions/update?ba_token=BA-1",
         "rel": "approve", "method": "GET"}]}  # fmt: skip
    paypal.on("POST", f"{SUB}/revise", revised,
              request_schema=(SUBSCRIPTIONS, "subscription_revise_request"),
              response_schema=(SUBSCRIPTIONS, "subscription_revise_response"))  # fmt: skip
    paypal.on("GET", SUB, active(), response_schema=(SUBSCRIPTIONS, "subscription"))
    changed = provider.change_subscription("I-BW452GLLEP1G", price_id="P-PRO-PLAN-1",
                                           quantity=2, proration="none",
                                           idempotency_key="chg-1")  # fmt: skip
    call = paypal.last(f"{SUB}/revise")
    assert call.body == {"plan_id": "P-PRO-PLAN-1", "quantity": "2"}
    assert call.headers["PayPal-Request-Id"] == "chg-1"
    # the buyer approves the new plan at PayPal; until then the old plan bills
    assert changed.redirect_url is not None and "ba_token" in changed.redirect_url
    assert changed.status is SubscriptionStatus.ACTIVE


def test_pause_is_suspend_and_resume_is_activate(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    paypal.on("POST", f"{SUB}/suspend", None, status=204,
              request_schema=(SUBSCRIPTIONS, "subscription_suspend_request"))  # fmt: skip
    paypal.on("GET", SUB, {**active(), "status": "SUSPENDED"})
    assert provider.pause_subscription("I-BW452GLLEP1G").status is SubscriptionStatus.PAUSED
    paypal.on("POST", f"{SUB}/activate", None, status=204,
              request_schema=(SUBSCRIPTIONS, "subscription_activate_request"))  # fmt: skip
    paypal.on("GET", SUB, active())
    assert provider.resume_subscription("I-BW452GLLEP1G").status is SubscriptionStatus.ACTIVE
    with pytest.raises(NotSupported, match="paypal cancels subscriptions at once"):
        provider.undo_cancel_subscription("I-BW452GLLEP1G")
    with pytest.raises(NotSupported, match="paypal has no API listing"):
        provider.list_subscriptions(customer_id="cus_1")


def test_a_failed_payment_reads_past_due_and_the_retry_charges_the_balance(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    owing = active(outstanding_balance=money("20.00"), failed_payments_count=1,
                   last_failed_payment={"amount": money("20.00"),
                                        "time": "2026-12-22T10:00:00Z"})  # fmt: skip
    paypal.on("GET", SUB, owing, response_schema=(SUBSCRIPTIONS, "subscription"))
    assert provider.get_subscription("I-BW452GLLEP1G").status is SubscriptionStatus.PAST_DUE
    paypal.on("GET", SUB, owing)
    transaction = {"id": "TXN-9", "status": "COMPLETED", "time": "2026-12-23T10:00:00Z",
                   "amount_with_breakdown": {"gross_amount": money("20.00")}}  # fmt: skip
    paypal.on("POST", f"{SUB}/capture", transaction,
              request_schema=(SUBSCRIPTIONS, "subscription_capture_request"),
              response_schema=(SUBSCRIPTIONS, "transaction"))  # fmt: skip
    invoice = provider.retry_invoice("I-BW452GLLEP1G", idempotency_key="retry-1")
    call = paypal.last(f"{SUB}/capture")
    assert call.body == {"note": "Retrying the failed payment",
                         "capture_type": "OUTSTANDING_BALANCE", "amount": money("20.00")}  # fmt: skip
    assert call.headers["PayPal-Request-Id"] == "retry-1"
    assert invoice.status is InvoiceStatus.PAID and invoice.subscription_id == "I-BW452GLLEP1G"
    paypal.on("GET", SUB, active())
    with pytest.raises(InvalidRequest, match="owes nothing"):
        provider.retry_invoice("I-BW452GLLEP1G", idempotency_key="retry-2")


def _multipart(request: Any) -> dict[str, list[tuple[str | None, bytes]]]:
    """The parts of a multipart/form-data request: name -> [(filename, content)]."""
    head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.body)
    parts: dict[str, list[tuple[str | None, bytes]]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts.setdefault(str(name), []).append((part.get_filename(), part.get_payload(decode=True)))
    return parts


def test_evidence_goes_as_multipart_with_spec_shaped_input(
    paypal: PayPalMock, provider: PayPalProvider
) -> None:
    seen: list[dict[str, list[tuple[str | None, bytes]]]] = []

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        seen.append(_multipart(request))
        return 200, {}, json.dumps({"links": []})

    paypal.rsps.add_callback(responses.POST, f"{API}/v1/customer/disputes/PP-D-27803/provide-evidence",
                             callback=reply)  # fmt: skip
    paypal.on("GET", "/v1/customer/disputes/PP-D-27803",
              {**dispute_json("UNDER_REVIEW"), "evidences": [
                  {"evidence_type": "PROOF_OF_FULFILLMENT", "source": "SUBMITTED_BY_SELLER"}]},
              response_schema=(DISPUTES, "dispute"))  # fmt: skip
    paypal.on("GET", f"/v2/payments/captures/{CAPTURE}", capture_json(),
              response_schema=(PAYMENTS, "capture-2"))  # fmt: skip
    evidence = DisputeEvidence(
        explanation="Delivered on 3 May.", shipping_carrier="ups", tracking_number="1Z999",
        files=(EvidenceFile("pod.pdf", b"%PDF pod", kind="shipping_documentation"),
               EvidenceFile("mail.png", b"\x89PNG mail", content_type="image/png",
                            kind="customer_communication")),
    )  # fmt: skip
    dispute = provider.submit_dispute_evidence("PP-D-27803", evidence)
    (parts,) = seen
    sent = json.loads(parts["input"][0][1])
    assert sent == paypal_evidence(evidence)
    assert [e["evidence_type"] for e in sent["evidences"]] == [
        "PROOF_OF_FULFILLMENT", "PROOF_OF_DELIVERY_SIGNATURE", "OTHER",
    ]  # fmt: skip
    assert sent["evidences"][0]["evidence_info"]["tracking_info"] == [
        {"tracking_number": "1Z999", "carrier_name": "UPS"}
    ]
    assert "Delivered on 3 May." in sent["evidences"][2]["notes"]
    if spec_available():
        for item in sent["evidences"]:
            validate(DISPUTES, "evidence", item)
    assert parts["evidence-file"] == [("pod.pdf", b"%PDF pod"), ("mail.png", b"\x89PNG mail")]
    assert dispute.evidence_submitted and dispute.reason_code is DisputeReason.PRODUCT_NOT_RECEIVED
    with pytest.raises(NotSupported, match="submit=False"):
        provider.submit_dispute_evidence("PP-D-27803", evidence, submit=False)


def test_an_unknown_carrier_is_other_with_its_name() -> None:
    body = paypal_evidence(DisputeEvidence(shipping_carrier="La Poste", tracking_number="8R1"))
    (item,) = body["evidences"][:1]
    assert item["evidence_info"]["tracking_info"] == [
        {"tracking_number": "8R1", "carrier_name": "OTHER", "carrier_name_other": "LA_POSTE"}
    ]
    if spec_available():
        validate(DISPUTES, "evidence", item)


def test_accept_claim_and_list_disputes(paypal: PayPalMock, provider: PayPalProvider) -> None:
    accepted: list[Any] = []

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        accepted.append(_multipart(request))
        return 200, {}, json.dumps({"links": []})

    paypal.rsps.add_callback(responses.POST, f"{API}/v1/customer/disputes/PP-D-27803/accept-claim",
                             callback=reply)  # fmt: skip
    lost = dispute_json("RESOLVED", "RESOLVED_BUYER_FAVOUR")
    paypal.on("GET", "/v1/customer/disputes/PP-D-27803", lost)
    paypal.on("GET", f"/v2/payments/captures/{CAPTURE}", capture_json())
    assert provider.accept_dispute("PP-D-27803").status.value == "lost"
    assert json.loads(accepted[0]["input"][0][1]) == {"note": "The merchant accepts the claim."}
    listing = {"items": [{"dispute_id": "PP-D-27803"}],
               "links": [{"href": f"{API}/v1/customer/disputes", "rel": "self", "method": "GET"}]}  # fmt: skip
    paypal.on("GET", "/v1/customer/disputes", listing,
              response_schema=(DISPUTES, "dispute_search"))  # fmt: skip
    paypal.on("GET", "/v1/customer/disputes/PP-D-27803", dispute_json())
    paypal.on("GET", f"/v2/checkout/orders/{ORDER}",
              order_json(status="COMPLETED", captures=[capture_json()]),
              response_schema=(ORDERS, "order"))  # fmt: skip
    (listed,) = provider.list_disputes(payment_id=ORDER)
    assert listed.id == "PP-D-27803" and listed.payment_id == ORDER
    urls = [c.request.url for c in paypal.rsps.calls]
    assert any(f"disputed_transaction_id={CAPTURE}" in url for url in urls)
