"""The Stripe adapter's request plumbing skips work paygate throws away (issue 21):
its operations build no ``StripeObject`` (the SDK's ``raw_request``: the parsed JSON;
all but a SetupIntent's creation, whose ``usage`` ``raw_request`` would not send), and
``requests`` does not look up the environment's proxies on every request (``trust_env``
decided once, when the provider is built)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses
import stripe

from paygate import Money, PaymentStatus
from paygate.providers.stripe import StripeProvider
from tests.fixtures.stripe import resource

API = "https://api.stripe.com/v1"
KEY = "sk_test_plumbing_key"


def _form(request: Any) -> str:
    """A form body as text (``requests`` keeps the bytes it was given, as they came from
    the async face's httpx client in tests/test_stripe_plumbing_async.py)."""
    body = request.body
    return body.decode() if isinstance(body, bytes) else str(body)


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


def _intent() -> dict[str, Any]:
    return resource("payment_intent", id="pi_plumb", amount=1099, currency="usd",
                    status="succeeded", amount_received=1099, last_payment_error=None,
                    next_action=None, metadata={"order_id": "o1"})  # fmt: skip


def _create(provider: StripeProvider) -> Any:
    return provider.create_payment(order_id="o1", amount=Money(1099, "USD"),
                                   payment_method="pm_card_visa",
                                   idempotency_key="o1:create")  # fmt: skip


def test_create_payment_builds_no_stripe_object(
    api: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.post(f"{API}/payment_intents", json=_intent())
    provider = StripeProvider(api_key=KEY)

    def refused(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a StripeObject was built")

    monkeypatch.setattr(stripe.StripeObject, "_refresh_from", refused)
    payment = _create(provider)
    assert payment.id == "pi_plumb" and payment.status is PaymentStatus.SUCCEEDED
    assert payment.raw["metadata"] == {"order_id": "o1"}
    headers = api.calls[0].request.headers
    assert headers["Idempotency-Key"] == "o1:create"
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert "Stripe-Version" in headers and "X-Stripe-Client-User-Agent" in headers


def test_requests_does_not_read_the_environment_per_request(
    api: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.post(f"{API}/payment_intents", json=_intent())
    provider = StripeProvider(api_key=KEY)

    def refused(*args: Any, **kwargs: Any) -> dict[str, str]:
        raise AssertionError("requests looked up the environment's proxies")

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", refused)
    monkeypatch.setattr(requests.utils, "get_environ_proxies", refused)
    assert _create(provider).id == "pi_plumb"
    assert _create(provider).id == "pi_plumb"


def test_the_environments_proxy_is_taken_once_when_the_provider_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    proxied: Any = StripeProvider(api_key=KEY)._client._requestor._client
    assert proxied._proxy == {"https": "http://proxy.invalid:3128"}
    monkeypatch.setenv("NO_PROXY", "api.stripe.com")
    direct: Any = StripeProvider(api_key=KEY)._client._requestor._client
    assert direct._proxy is None


@pytest.fixture
def no_stripe_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a StripeObject was built")

    monkeypatch.setattr(stripe.StripeObject, "_refresh_from", refused)


def _refund() -> dict[str, Any]:
    return resource("refund", id="re_plumb", amount=500, currency="usd", status="succeeded",
                    payment_intent="pi_plumb", charge="ch_plumb")  # fmt: skip


def _charge(**fields: Any) -> dict[str, Any]:
    return resource("charge", id="ch_plumb", payment_intent="pi_plumb", amount=1099,
                    currency="usd", **fields)  # fmt: skip


def test_payment_operations_build_no_stripe_object(
    api: responses.RequestsMock, no_stripe_objects: None
) -> None:
    """capture, cancel, refund, get_refund: the same requests as the SDK's services
    (path, idempotency key, form body), answered without a ``StripeObject``."""
    captured = {**_intent(), "status": "succeeded"}
    canceled = {**_intent(), "status": "canceled", "amount_received": 0}
    api.post(f"{API}/payment_intents/pi_plumb/capture", json=captured)
    api.post(f"{API}/payment_intents/pi_plumb/cancel", json=canceled)
    api.post(f"{API}/refunds", json=_refund())
    api.get(f"{API}/refunds/re_plumb", json=_refund())
    provider = StripeProvider(api_key=KEY)

    capture = provider.capture_payment("pi_plumb", amount=Money(1000, "USD"), idempotency_key="c1")
    assert capture.id == "pi_plumb" and capture.status is PaymentStatus.SUCCEEDED
    cancel = provider.cancel_payment("pi_plumb", idempotency_key="x1")
    assert cancel.status is PaymentStatus.CANCELED
    refund = provider.refund_payment("pi_plumb", amount=Money(500, "USD"), idempotency_key="r1")
    assert refund.id == "re_plumb" and refund.amount == Money(500, "USD")
    assert provider.get_refund("re_plumb").id == "re_plumb"

    sent = [call.request for call in api.calls]
    assert [r.headers.get("Idempotency-Key") for r in sent] == ["c1", "x1", "r1", None]
    assert _form(sent[0]) == "amount_to_capture=1000"
    assert sorted(_form(sent[2]).split("&")) == ["amount=500", "payment_intent=pi_plumb"]
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in sent)


def test_get_payment_and_its_lists_build_no_stripe_object(
    api: responses.RequestsMock, no_stripe_objects: None
) -> None:
    """get_payment expands the charge and its refunds; a charge with more refunds than
    one page, and a disputed charge, are listed the same way (``raw_request``)."""
    charge = _charge(refunds={"object": "list", "data": [_refund()], "has_more": True,
                              "url": "/v1/refunds"}, disputed=False, amount_refunded=1000)  # fmt: skip
    intent = {**_intent(), "latest_charge": charge}
    second = {**_refund(), "id": "re_plumb2"}
    api.get(f"{API}/payment_intents/pi_plumb", json=intent)
    api.get(f"{API}/refunds", json={"object": "list", "data": [_refund(), second],
                                    "has_more": False, "url": "/v1/refunds"})  # fmt: skip
    payment = StripeProvider(api_key=KEY).get_payment("pi_plumb")
    assert payment.id == "pi_plumb"
    assert payment.amount_refunded == Money(1000, "USD")
    query = str(api.calls[0].request.url)
    assert "expand%5B0%5D=latest_charge" in query  # the SDK's encoding of expand=[...]
    assert "charge=ch_plumb" in str(api.calls[1].request.url)
    assert "limit=100" in str(api.calls[1].request.url)


def test_an_id_cannot_reach_another_path(
    api: responses.RequestsMock, no_stripe_objects: None
) -> None:
    api.get(f"{API}/refunds/re%2F..%2Fcustomers", json=_refund())
    StripeProvider(api_key=KEY).get_refund("re/../customers")
    assert api.calls[0].request.path_url.startswith("/v1/refunds/re%2F..%2Fcustomers")


def test_checkout_sessions_build_no_stripe_object(
    api: responses.RequestsMock, no_stripe_objects: None
) -> None:
    session = resource("checkout.session", id="cs_plumb", mode="payment",
                       payment_intent="pi_plumb", metadata={"order_id": "o1"})  # fmt: skip
    api.post(f"{API}/checkout/sessions", json=session)
    api.get(f"{API}/checkout/sessions/cs_plumb", json=session)
    provider = StripeProvider(api_key=KEY)
    from paygate import LineItem

    created = provider.create_checkout_session(
        order_id="o1", line_items=[LineItem("Tea", Money(1099, "USD"))],
        success_url="https://shop.example/ok", cancel_url="https://shop.example/no",
        idempotency_key="k1",
    )  # fmt: skip
    assert created.id == "cs_plumb"
    assert provider.get_checkout_session("cs_plumb").payment_id == "pi_plumb"
    assert api.calls[0].request.headers["Idempotency-Key"] == "k1"


def test_customers_subscriptions_and_disputes_build_no_stripe_object(
    api: responses.RequestsMock, no_stripe_objects: None
) -> None:
    customer = resource("customer", id="cus_plumb", email="a@example.com")
    subscription = resource("subscription", id="sub_plumb", customer="cus_plumb")
    dispute = resource("dispute", id="dp_plumb", payment_intent="pi_plumb")
    api.post(f"{API}/customers", json=customer)
    api.get(f"{API}/customers/cus_plumb", json=customer)
    api.post(f"{API}/subscriptions", json=subscription)
    api.get(f"{API}/subscriptions/sub_plumb", json=subscription)
    api.post(f"{API}/subscriptions/sub_plumb", json=subscription)
    api.delete(f"{API}/subscriptions/sub_plumb", json={**subscription, "status": "canceled"})
    api.get(f"{API}/disputes/dp_plumb", json=dispute)
    provider = StripeProvider(api_key=KEY)

    assert provider.create_customer(email="a@example.com", name=None,
                                    idempotency_key="cu1").id == "cus_plumb"  # fmt: skip
    assert provider.get_customer("cus_plumb").id == "cus_plumb"
    created = provider.create_subscription(customer_id="cus_plumb", price_id="price_1",
                                           idempotency_key="su1")  # fmt: skip
    assert created.id == "sub_plumb"
    assert provider.get_subscription("sub_plumb").id == "sub_plumb"
    provider.cancel_subscription("sub_plumb", at_period_end=True)
    assert provider.cancel_subscription("sub_plumb").status.value == "canceled"
    assert provider.get_dispute("dp_plumb").id == "dp_plumb"

    sent = [call.request for call in api.calls]
    assert [r.method for r in sent] == ["POST", "GET", "POST", "GET", "POST", "DELETE", "GET"]
    assert [r.headers.get("Idempotency-Key") for r in sent[:3]] == ["cu1", None, "su1"]
    assert _form(sent[4]) == "cancel_at_period_end=true"


def test_invoices_build_no_stripe_object(
    api: responses.RequestsMock, no_stripe_objects: None
) -> None:
    """create_invoice's steps (draft, items, finalize, send or pay) and retry_invoice:
    a key per step, ``expand[]=payments`` on the answer, no ``StripeObject``."""
    from paygate import LineItem

    draft = resource("invoice", id="in_plumb", status="draft")
    api.post(f"{API}/invoices", json=draft)
    api.post(f"{API}/invoiceitems", json=resource("invoiceitem"))
    api.post(f"{API}/invoices/in_plumb/finalize", json={**draft, "status": "open"})
    api.post(f"{API}/invoices/in_plumb/send", json={**draft, "status": "open"})
    api.post(f"{API}/invoices/in_plumb/pay", json={**draft, "status": "paid"})
    provider = StripeProvider(api_key=KEY)

    for send in (True, False):
        invoice = provider.create_invoice(
            customer_id="cus_plumb", line_items=[LineItem("Tea", Money(1099, "USD"))],
            idempotency_key=f"iv{send:d}", send=send,
        )  # fmt: skip
        assert invoice.id == "in_plumb"
    assert provider.retry_invoice("in_plumb", idempotency_key="rt1").id == "in_plumb"

    sent = [call.request for call in api.calls]
    assert [r.path_url.split("?")[0] for r in sent] == [
        "/v1/invoices", "/v1/invoiceitems", "/v1/invoices/in_plumb/finalize",
        "/v1/invoices/in_plumb/send",
        "/v1/invoices", "/v1/invoiceitems", "/v1/invoices/in_plumb/finalize",
        "/v1/invoices/in_plumb/pay", "/v1/invoices/in_plumb/pay",
    ]  # fmt: skip
    assert [r.headers["Idempotency-Key"] for r in sent] == [
        "iv1:invoice", "iv1:item:0", "iv1:finalize", "iv1:send",
        "iv0:invoice", "iv0:item:0", "iv0:finalize", "iv0:pay", "rt1",
    ]  # fmt: skip
    assert "invoice=in_plumb" in _form(sent[1]).split("&")
    assert [_form(sent[i]) for i in (3, 7, 8)] == ["expand[0]=payments"] * 3


def test_customer_and_payment_method_operations_build_no_stripe_object(
    api: responses.RequestsMock, no_stripe_objects: None
) -> None:
    """update, list (every page), delete; get, set-default, detach a payment method."""
    customer = resource("customer", id="cus_plumb", email="a@example.com")
    other = {**customer, "id": "cus_plumb2"}
    method = resource("payment_method", id="pm_plumb", customer="cus_plumb")
    api.post(f"{API}/customers/cus_plumb", json=customer)
    api.get(f"{API}/customers", json={"object": "list", "data": [customer], "has_more": True,
                                      "url": "/v1/customers"})  # fmt: skip
    api.get(f"{API}/customers", json={"object": "list", "data": [other], "has_more": False,
                                      "url": "/v1/customers"})  # fmt: skip
    api.delete(f"{API}/customers/cus_plumb", json={"id": "cus_plumb", "object": "customer",
                                                   "deleted": True})  # fmt: skip
    api.get(f"{API}/payment_methods/pm_plumb", json=method)
    api.post(f"{API}/customers/cus_plumb", json=customer)
    api.post(f"{API}/payment_methods/pm_plumb/detach", json={**method, "customer": None})
    provider = StripeProvider(api_key=KEY)

    assert provider.update_customer("cus_plumb", name="Ada").id == "cus_plumb"
    listed = [c.id for c in provider.list_customers(email="a@example.com", page_size=1)]
    assert listed == ["cus_plumb", "cus_plumb2"]
    provider.delete_customer("cus_plumb")
    assert provider.get_payment_method("pm_plumb").id == "pm_plumb"
    assert provider.set_default_payment_method("cus_plumb", "pm_plumb").id == "cus_plumb"
    provider.detach_payment_method("pm_plumb")

    sent = [call.request for call in api.calls]
    assert [r.method for r in sent] == ["POST", "GET", "GET", "DELETE", "GET", "POST", "POST"]
    assert _form(sent[0]) == "name=Ada"
    assert "starting_after=cus_plumb" in str(sent[2].url) and "limit=1" in str(sent[2].url)
    assert _form(sent[5]) == "invoice_settings[default_payment_method]=pm_plumb"
    assert sent[6].path_url == "/v1/payment_methods/pm_plumb/detach"


def test_subscription_operations_build_no_stripe_object(
    api: responses.RequestsMock, no_stripe_objects: None
) -> None:
    """list, change (read the item, then update it under the caller's key), pause,
    resume (``pause_collection`` unset: an empty value), undo a cancel."""
    subscription = resource("subscription", id="sub_plumb", customer="cus_plumb")
    item_id = subscription["items"]["data"][0]["id"]
    api.get(f"{API}/subscriptions", json={"object": "list", "data": [subscription],
                                          "has_more": False, "url": "/v1/subscriptions"})  # fmt: skip
    api.get(f"{API}/subscriptions/sub_plumb", json=subscription)
    api.post(f"{API}/subscriptions/sub_plumb", json=subscription)
    provider = StripeProvider(api_key=KEY)

    listed = provider.list_subscriptions(customer_id="cus_plumb")
    assert [s.id for s in listed] == ["sub_plumb"]
    provider.change_subscription("sub_plumb", price_id="price_2", idempotency_key="ch1")
    provider.pause_subscription("sub_plumb")
    provider.resume_subscription("sub_plumb")
    provider.undo_cancel_subscription("sub_plumb")

    sent = [call.request for call in api.calls]
    assert [r.method for r in sent] == ["GET", "GET", "POST", "POST", "POST", "POST"]
    assert "status=all" in str(sent[0].url) and "customer=cus_plumb" in str(sent[0].url)
    assert sorted(_form(sent[2]).split("&")) == [
        f"items[0][id]={item_id}", "items[0][price]=price_2",
        "proration_behavior=create_prorations",
    ]  # fmt: skip
    # the caller's key on the update only (the SDK makes up its own for other POSTs)
    assert [r.headers.get("Idempotency-Key") == "ch1" for r in sent] == [
        False,
        False,
        True,
        False,
        False,
        False,
    ]
    assert [_form(r) for r in sent[3:]] == [
        "pause_collection[behavior]=void",
        "pause_collection=",
        "cancel_at_period_end=false",
    ]


def test_dispute_operations_build_no_stripe_object(
    api: responses.RequestsMock, no_stripe_objects: None
) -> None:
    """list, submit evidence (each file uploaded multipart to the files host, as the
    SDK's ``files.create`` sends it), accept."""
    from paygate.models import DisputeEvidence, EvidenceFile

    dispute = resource("dispute", id="dp_plumb", payment_intent="pi_plumb")
    api.get(f"{API}/disputes", json={"object": "list", "data": [dispute], "has_more": False,
                                     "url": "/v1/disputes"})  # fmt: skip
    api.post("https://files.stripe.com/v1/files", json=resource("file", id="file_plumb"))
    api.post(f"{API}/disputes/dp_plumb", json=dispute)
    api.post(f"{API}/disputes/dp_plumb/close", json={**dispute, "status": "lost"})
    provider = StripeProvider(api_key=KEY)

    assert [d.id for d in provider.list_disputes(payment_id="pi_plumb")] == ["dp_plumb"]
    evidence = DisputeEvidence(
        explanation="delivered",
        files=(EvidenceFile(name="slip.pdf", content=b"%PDF-1.4 slip", kind="receipt"),),
    )
    assert provider.submit_dispute_evidence("dp_plumb", evidence).id == "dp_plumb"
    assert provider.accept_dispute("dp_plumb").id == "dp_plumb"

    sent = [call.request for call in api.calls]
    assert "payment_intent=pi_plumb" in str(sent[0].url) and "limit=100" in str(sent[0].url)
    upload = sent[1]
    assert upload.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    body = upload.body
    assert isinstance(body, bytes)
    assert b'name="purpose"\r\n\r\ndispute_evidence' in body
    assert b'name="file"; filename="slip.pdf"' in body and b"%PDF-1.4 slip" in body
    assert sorted(_form(sent[2]).split("&")) == [
        "evidence[receipt]=file_plumb", "evidence[uncategorized_text]=delivered", "submit=true",
    ]  # fmt: skip
    assert sent[3].path_url == "/v1/disputes/dp_plumb/close"


def test_setups_build_no_stripe_object(
    api: responses.RequestsMock, no_stripe_objects: None
) -> None:
    """create_setup in Checkout's setup mode and complete_setup (from either), under the
    caller's key, the session read with its SetupIntent expanded."""
    intent = resource("setup_intent", id="seti_plumb", customer="cus_plumb")
    session = resource("checkout.session", id="cs_setup", mode="setup", payment_intent=None,
                       setup_intent=intent, customer="cus_plumb")  # fmt: skip
    api.post(f"{API}/checkout/sessions", json=session)
    api.get(f"{API}/checkout/sessions/cs_setup", json=session)
    api.get(f"{API}/setup_intents/seti_plumb", json=intent)
    provider = StripeProvider(api_key=KEY)

    provider.create_setup(customer_id="cus_plumb", idempotency_key="s2",
                          return_url="https://shop.example/saved")  # fmt: skip
    provider.complete_setup({"session_id": "cs_setup"}, idempotency_key="c1")
    done = provider.complete_setup({"setup_intent": "seti_plumb"}, idempotency_key="c2")
    assert done.id == "seti_plumb"

    sent = [call.request for call in api.calls]
    assert sent[0].headers["Idempotency-Key"] == "s2"
    assert "mode=setup" in _form(sent[0]).split("&")
    assert "expand%5B0%5D=setup_intent" in str(sent[1].url)
    assert sent[2].path_url == "/v1/setup_intents/seti_plumb"


@pytest.mark.parametrize("usage", ["off_session", "on_session"])
def test_a_setup_intents_usage_is_sent(api: responses.RequestsMock, usage: str) -> None:
    """``raw_request`` takes a top-level ``usage`` as its own telemetry and drops it: the
    SetupIntent stays on the SDK's service, and its ``usage`` reaches Stripe."""
    api.post(f"{API}/setup_intents", json=resource("setup_intent", id="seti_plumb"))
    StripeProvider(api_key=KEY).create_setup(
        customer_id="cus_plumb",
        idempotency_key="s1",
        usage=usage,  # type: ignore[arg-type]
    )
    assert f"usage={usage}" in _form(api.calls[0].request).split("&")
    assert api.calls[0].request.headers["Idempotency-Key"] == "s1"


def test_raw_refuses_a_parameter_it_would_not_send(api: responses.RequestsMock) -> None:
    provider = StripeProvider(api_key=KEY)
    with pytest.raises(TypeError, match=r"would not send \['usage'\]"):
        provider._raw("create_setup", "post", "/v1/setup_intents", {"usage": "on_session"})
    assert not api.calls


def test_balance_transactions_build_no_stripe_object(
    api: responses.RequestsMock, no_stripe_objects: None
) -> None:
    """Every page (``starting_after`` the last id), the sources expanded, the window as
    ``created[gte]``/``created[lt]``."""
    from datetime import datetime, timezone

    first = resource("balance_transaction", id="txn_1")
    second = resource("balance_transaction", id="txn_2")
    page = {"object": "list", "url": "/v1/balance_transactions"}
    api.get(f"{API}/balance_transactions", json={**page, "data": [first], "has_more": True})
    api.get(f"{API}/balance_transactions", json={**page, "data": [second], "has_more": False})
    provider = StripeProvider(api_key=KEY)
    since = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = provider.iter_balance_transactions(since=since, page_size=1)
    assert [row["id"] for row in rows] == ["txn_1", "txn_2"]

    urls = [str(call.request.url) for call in api.calls]
    assert "limit=1" in urls[0] and "expand%5B0%5D=data.source" in urls[0]
    assert f"created%5Bgte%5D={int(since.timestamp())}" in urls[0]
    assert "starting_after=txn_1" in urls[1] and len(urls) == 2
