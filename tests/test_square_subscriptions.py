"""SquareProvider after the first charge, on the real SDK over an ``httpx.MockTransport``:
search, swap plan (no proration), pause/resume, undoing a scheduled cancel, disputes
answered with evidence texts and files, submitted or staged, accepted. Every request body
and answer is validated against Square's OpenAPI spec (tests.test_square_spec)."""

from __future__ import annotations

import email.parser
import email.policy
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from paygate.errors import NotSupported
from paygate.models import (
    DisputeEvidence,
    DisputeReason,
    DisputeStatus,
    EvidenceFile,
    SubscriptionStatus,
)
from paygate.providers.square import SquareProvider
from tests.test_square_spec import SPEC_PATH, operation_for, validate

Handler = Callable[[str, str, Any], dict[str, Any]]


class Square:
    """A scripted Square API: ``(method, path) -> answer``; every call recorded and
    validated against the spec (JSON bodies; the multipart ``request`` part)."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, str, Any]] = []

    def on(self, method: str, path: str, answer: dict[str, Any]) -> None:
        self.answers.setdefault((method, path), []).append(answer)

    def handle(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        request_schema, response_schema = operation_for(method, path)
        content_type = request.headers.get("content-type", "")
        body: Any = None
        if content_type.startswith("multipart/"):
            body = _multipart(content_type, request.read())
            if SPEC_PATH.is_file():
                validate(json.loads(body["request"][0][1]), "CreateDisputeEvidenceFileRequest")
        elif request.content:
            body = json.loads(request.content)
            if SPEC_PATH.is_file() and request_schema:
                validate(body, request_schema)
        self.calls.append((method, path, body))
        answer = self.answers[(method, path)].pop(0)
        if SPEC_PATH.is_file() and response_schema:
            validate(answer, response_schema)
        return httpx.Response(200, json=answer)


def _multipart(content_type: str, raw: bytes) -> dict[str, list[tuple[str | None, bytes]]]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    parts: dict[str, list[tuple[str | None, bytes]]] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition"))
        parts.setdefault(name, []).append((part.get_filename(), part.get_payload(decode=True)))
    return parts


@pytest.fixture
def api() -> Square:
    return Square()


@pytest.fixture
def provider(api: Square) -> Iterator[SquareProvider]:
    client = httpx.Client(transport=httpx.MockTransport(api.handle))
    square = SquareProvider(access_token="EAAA-test", location_id="LOC1", http_client=client)
    yield square
    square.close()
    client.close()


def sub(status: str = "ACTIVE", **fields: Any) -> dict[str, Any]:
    return {"id": "sq_sub_1", "location_id": "LOC1", "plan_variation_id": "PLAN_BASIC",
            "customer_id": "cus_1", "start_date": "2026-01-01",
            "charged_through_date": "2026-02-01", "status": status, "version": 3,
            **fields}  # fmt: skip


def dispute(state: str = "EVIDENCE_REQUIRED") -> dict[str, Any]:
    return {"id": "dp_sq_1", "dispute_id": "dp_sq_1", "amount_money": {"amount": 5000,
            "currency": "USD"}, "reason": "NOT_RECEIVED", "state": state,
            "due_at": "2026-12-10T00:00:00.000Z", "disputed_payment": {"payment_id": "pay_1"},
            "card_brand": "VISA", "created_at": "2026-11-30T00:00:00.000Z",
            "location_id": "LOC1", "version": 1}  # fmt: skip


def test_search_swap_pause_resume(api: Square, provider: SquareProvider) -> None:
    api.on("POST", "/v2/subscriptions/search", {"subscriptions": [sub()], "cursor": "c2"})
    api.on("POST", "/v2/subscriptions/search", {"subscriptions": [sub(id="sq_sub_2")]})
    subs = provider.list_subscriptions(customer_id="cus_1")
    assert [s.id for s in subs] == ["sq_sub_1", "sq_sub_2"] and subs[0].version == 3
    assert api.calls[0][2] == {"query": {"filter": {"location_ids": ["LOC1"],
                                                    "customer_ids": ["cus_1"]}}}  # fmt: skip
    assert api.calls[1][2]["cursor"] == "c2"
    with pytest.raises(NotSupported, match="square cannot prorate"):
        provider.change_subscription("sq_sub_1", price_id="PLAN_PRO", idempotency_key="k")
    with pytest.raises(NotSupported, match="no quantity"):
        provider.change_subscription("sq_sub_1", quantity=2, proration="none", idempotency_key="k")
    api.on("POST", "/v2/subscriptions/sq_sub_1/swap-plan",
           {"subscription": sub(plan_variation_id="PLAN_PRO", version=4)})  # fmt: skip
    swapped = provider.change_subscription("sq_sub_1", price_id="PLAN_PRO", proration="none",
                                           idempotency_key="k")  # fmt: skip
    assert swapped.price_id == "PLAN_PRO" and swapped.version == 4
    assert api.calls[-1][2] == {"new_plan_variation_id": "PLAN_PRO"}
    api.on("POST", "/v2/subscriptions/sq_sub_1/pause", {"subscription": sub("PAUSED")})
    assert provider.pause_subscription("sq_sub_1").status is SubscriptionStatus.PAUSED
    api.on("POST", "/v2/subscriptions/sq_sub_1/resume", {"subscription": sub()})
    assert provider.resume_subscription("sq_sub_1").status is SubscriptionStatus.ACTIVE
    assert api.calls[-1][2] == {"resume_change_timing": "IMMEDIATE"}


def test_undo_cancel_deletes_the_scheduled_cancel(api: Square, provider: SquareProvider) -> None:
    scheduled = sub(canceled_date="2026-02-01", actions=[
        {"id": "act_1", "type": "CANCEL", "effective_date": "2026-02-01"}])  # fmt: skip
    api.on("GET", "/v2/subscriptions/sq_sub_1", {"subscription": scheduled})
    api.on("DELETE", "/v2/subscriptions/sq_sub_1/actions/act_1", {"subscription": sub()})
    undone = provider.undo_cancel_subscription("sq_sub_1")
    assert not undone.cancel_at_period_end
    assert [(m, p) for m, p, _ in api.calls] == [
        ("GET", "/v2/subscriptions/sq_sub_1"), ("DELETE", "/v2/subscriptions/sq_sub_1/actions/act_1"),
    ]  # fmt: skip
    with pytest.raises(NotSupported, match="public_url"):
        provider.retry_invoice("inv_1", idempotency_key="k")


def test_evidence_texts_files_and_submit(api: Square, provider: SquareProvider) -> None:
    evidence = DisputeEvidence(
        explanation="Delivered, signed for.", tracking_number="1Z999",
        files=(EvidenceFile("pod.jpg", b"\xff\xd8jpeg", content_type="image/jpeg",
                            kind="shipping_documentation"),),
    )  # fmt: skip
    for _ in range(2):
        api.on("POST", "/v2/disputes/dp_sq_1/evidence-text", {"evidence": {"id": "ev_t"}})
    api.on("POST", "/v2/disputes/dp_sq_1/evidence-files", {"evidence": {"id": "ev_f"}})
    api.on("POST", "/v2/disputes/dp_sq_1/submit-evidence", {"dispute": dispute("PROCESSING")})
    submitted = provider.submit_dispute_evidence("dp_sq_1", evidence)
    texts = [body for m, p, body in api.calls if p.endswith("evidence-text")]
    assert [(t["evidence_type"], t["evidence_text"]) for t in texts] == [
        ("REBUTTAL_EXPLANATION", "Explanation: Delivered, signed for."),
        ("TRACKING_NUMBER", "Tracking number: 1Z999"),
    ]
    (files,) = [body for m, p, body in api.calls if p.endswith("evidence-files")]
    request = json.loads(files["request"][0][1])
    assert request["evidence_type"] == "PROOF_OF_DELIVERY_DOCUMENTATION"
    assert request["content_type"] == "image/jpeg"
    assert files["image_file"] == [("pod.jpg", b"\xff\xd8jpeg")]
    assert submitted.status is DisputeStatus.UNDER_REVIEW and submitted.evidence_submitted
    assert submitted.reason_code is DisputeReason.PRODUCT_NOT_RECEIVED


def test_staged_evidence_is_not_submitted_and_accept_loses(
    api: Square, provider: SquareProvider
) -> None:
    api.on("POST", "/v2/disputes/dp_sq_1/evidence-text", {"evidence": {"id": "ev_t"}})
    api.on("GET", "/v2/disputes/dp_sq_1", {"dispute": dispute()})
    staged = provider.submit_dispute_evidence("dp_sq_1", DisputeEvidence(explanation="x"),
                                              submit=False)  # fmt: skip
    assert staged.status is DisputeStatus.OPEN and not staged.evidence_submitted
    assert not any(p.endswith("submit-evidence") for _, p, _ in api.calls)
    api.on("POST", "/v2/disputes/dp_sq_1/accept", {"dispute": dispute("ACCEPTED")})
    # Square's ACCEPTED reads closed (its webhook says dispute.lost: the money is gone)
    assert provider.accept_dispute("dp_sq_1").status is DisputeStatus.CLOSED
    api.on("GET", "/v2/disputes", {"disputes": [dispute(), {**dispute(), "id": "dp_2",
           "disputed_payment": {"payment_id": "pay_2"}}]})  # fmt: skip
    assert [d.id for d in provider.list_disputes(payment_id="pay_2")] == ["dp_2"]
