"""StripeProvider's customers and saved payment methods over mocked HTTP (responses).

Every request body is checked against the stripe package's typed request parameters
(``tests.stripe_params``), every answer is one of Stripe's example objects
(fixtures3.json) with a few fields set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses

from paygate import (
    AuthenticationRequired,
    CardDeclined,
    InvalidRequest,
    Money,
    NotFound,
    PaymentMethodKind,
    PaymentStatus,
    SetupStatus,
    ValidationError,
)
from paygate.provider import Capability, PaymentMethodsProvider
from paygate.providers.stripe import StripeProvider
from tests.fixtures.stripe import resource
from tests.stripe_params import check_stripe_form

API = "https://api.stripe.com/v1"


@pytest.fixture
def provider() -> StripeProvider:
    return StripeProvider(api_key="sk_test_saved_methods", webhook_secret="whsec_pm")


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def form(call: Any) -> dict[str, str]:
    body = call.request.body or ""
    if isinstance(body, bytes):
        body = body.decode()
    return dict(parse_qsl(body, keep_blank_values=True))


def query(call: Any) -> dict[str, str]:
    return dict(parse_qsl(call.request.url.partition("?")[2]))


def customer(**fields: Any) -> dict[str, Any]:
    return resource("customer", **{"id": "cus_pm", "email": "ada@example.com", **fields})


def method(**fields: Any) -> dict[str, Any]:
    return resource("payment_method", **{"id": "pm_saved", "customer": "cus_pm", **fields})


def setup_intent(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "seti_pm",
        "customer": "cus_pm",
        "status": "succeeded",
        "payment_method": "pm_saved",
        "last_setup_error": None,
        "next_action": None,
    }
    return resource("setup_intent", **{**base, **fields})


def test_declares_and_satisfies_the_payment_methods_protocol(provider: StripeProvider) -> None:
    assert isinstance(provider, PaymentMethodsProvider)
    assert {Capability.PAYMENT_METHODS, Capability.DEFAULT_PAYMENT_METHOD} <= provider.capabilities


# -- customers ---------------------------------------------------------------------------------


def test_get_update_delete_customer(provider: StripeProvider, api: responses.RequestsMock) -> None:
    settings = {"default_payment_method": "pm_saved", "custom_fields": None, "footer": None}
    api.get(f"{API}/customers/cus_pm", json=customer(invoice_settings=settings))
    api.post(f"{API}/customers/cus_pm", json=customer(name="Ada L."))
    api.delete(f"{API}/customers/cus_pm", json={"id": "cus_pm", "object": "customer", "deleted": True})
    got = provider.get_customer("cus_pm")
    assert (got.id, got.email, got.default_payment_method_id) == (
        "cus_pm",
        "ada@example.com",
        "pm_saved",
    )
    updated = provider.update_customer("cus_pm", name="Ada L.", metadata={"tier": "gold"})
    assert updated.name == "Ada L."
    sent = form(api.calls[1])
    assert sent == {"name": "Ada L.", "metadata[tier]": "gold"}
    check_stripe_form("CustomerUpdateParams", sent)
    assert provider.delete_customer("cus_pm") is None
    assert api.calls[2].request.method == "DELETE"


def test_a_deleted_customer_is_not_found(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.get(f"{API}/customers/cus_gone", json={"id": "cus_gone", "object": "customer", "deleted": True})
    with pytest.raises(NotFound, match="deleted"):
        provider.get_customer("cus_gone")


def test_list_customers_pages_lazily(provider: StripeProvider, api: responses.RequestsMock) -> None:
    first = {"object": "list", "url": "/v1/customers", "has_more": True,
             "data": [customer(id="cus_1"), customer(id="cus_2")]}  # fmt: skip
    second = {"object": "list", "url": "/v1/customers", "has_more": False,
              "data": [customer(id="cus_3")]}  # fmt: skip
    api.get(f"{API}/customers", json=first)
    api.get(f"{API}/customers", json=second)
    pages = provider.list_customers(email="ada@example.com", page_size=2)
    assert not api.calls  # nothing fetched until iterated
    assert [c.id for c in pages] == ["cus_1", "cus_2", "cus_3"]
    assert query(api.calls[0]) == {"limit": "2", "email": "ada@example.com"}
    assert query(api.calls[1]) == {"limit": "2", "email": "ada@example.com", "starting_after": "cus_2"}
    for call in api.calls:
        check_stripe_form("CustomerListParams", query(call))
    with pytest.raises(ValidationError, match="page_size"):
        provider.list_customers(page_size=101)


# -- setups ------------------------------------------------------------------------------------


def test_setup_intent_for_stripe_js(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.post(
        f"{API}/setup_intents",
        json=setup_intent(status="requires_payment_method", payment_method=None),
    )
    setup = provider.create_setup(customer_id="cus_pm", idempotency_key="setup-1")
    assert setup.status is SetupStatus.REQUIRES_ACTION
    assert setup.client_secret and setup.client_secret not in repr(setup)
    assert setup.payment_method_id is None and setup.url is None
    call = api.calls[0]
    assert call.request.headers["Idempotency-Key"] == "setup-1"
    sent = form(call)
    assert sent == {
        "customer": "cus_pm",
        "usage": "off_session",
        "automatic_payment_methods[enabled]": "true",
    }
    check_stripe_form("SetupIntentCreateParams", sent)


def test_setup_confirmed_with_a_payment_method(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.post(f"{API}/setup_intents", json=setup_intent())
    setup = provider.create_setup(
        customer_id="cus_pm",
        idempotency_key="setup-2",
        payment_method="pm_card_visa",
        return_url="https://shop.example/saved",
        usage="on_session",
    )
    assert (setup.status, setup.payment_method_id) == (SetupStatus.SUCCEEDED, "pm_saved")
    sent = form(api.calls[0])
    assert sent == {
        "customer": "cus_pm",
        "usage": "on_session",
        "payment_method": "pm_card_visa",
        "confirm": "true",
        "return_url": "https://shop.example/saved",
    }
    check_stripe_form("SetupIntentCreateParams", sent)


def test_setup_declined_at_confirmation(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    error = {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
             "message": "Your card has insufficient funds."}  # fmt: skip
    api.post(f"{API}/setup_intents", status=402, json={"error": error})
    with pytest.raises(CardDeclined) as info:
        provider.create_setup(
            customer_id="cus_pm", idempotency_key="setup-3", payment_method="pm_card_declined"
        )
    assert info.value.decline_code == "insufficient_funds"
    assert not isinstance(info.value, AuthenticationRequired)


def test_checkout_in_setup_mode_and_its_return(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    session = resource(
        "checkout.session",
        id="cs_setup",
        mode="setup",
        status="open",
        customer="cus_pm",
        url="https://checkout.stripe.com/c/pay/cs_setup",
        payment_intent=None,
        amount_total=None,
        currency=None,
    )
    api.post(f"{API}/checkout/sessions", json=session)
    done = {**session, "status": "complete", "url": None, "setup_intent": setup_intent()}
    api.get(f"{API}/checkout/sessions/cs_setup", json=done)
    setup = provider.create_setup(
        customer_id="cus_pm",
        idempotency_key="setup-4",
        return_url="https://shop.example/saved?cart=9",
        cancel_url="https://shop.example/cart",
    )
    assert (setup.id, setup.status) == ("cs_setup", SetupStatus.REQUIRES_ACTION)
    assert setup.url == "https://checkout.stripe.com/c/pay/cs_setup"
    sent = form(api.calls[0])
    assert sent == {
        "mode": "setup",
        "customer": "cus_pm",
        "allowed_payment_method_types[0]": "card",
        "success_url": "https://shop.example/saved?cart=9&session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.example/cart",
    }
    check_stripe_form("checkout.SessionCreateParams", sent)
    # the return names the session; its words are not trusted, Stripe is asked
    back = provider.complete_setup(
        {"session_id": "cs_setup", "redirect_status": "failed"}, idempotency_key="done-4"
    )
    assert (back.status, back.payment_method_id, back.url) == (
        SetupStatus.SUCCEEDED,
        "pm_saved",
        None,
    )
    assert query(api.calls[1]) == {"expand[0]": "setup_intent"}


def test_complete_setup_from_a_stripe_js_redirect(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    api.get(f"{API}/setup_intents/seti_pm", json=setup_intent())
    setup = provider.complete_setup(
        {"setup_intent": "seti_pm", "setup_intent_client_secret": "x", "redirect_status": "x"},
        idempotency_key="done",
    )
    assert (setup.status, setup.payment_method_id) == (SetupStatus.SUCCEEDED, "pm_saved")
    with pytest.raises(ValidationError, match="setup_intent"):
        provider.complete_setup({}, idempotency_key="done")


def test_setup_refuses_bad_arguments_before_any_request(provider: StripeProvider) -> None:
    with pytest.raises(ValidationError, match="usage"):
        provider.create_setup(customer_id="cus_pm", idempotency_key="k", usage="always")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Square"):
        provider.create_setup(customer_id="cus_pm", idempotency_key="k", verification_token="v")
    with pytest.raises(ValidationError, match="customer_id"):
        provider.create_setup(customer_id="", idempotency_key="k")


# -- payment methods ---------------------------------------------------------------------------


def test_list_get_default_detach(provider: StripeProvider, api: responses.RequestsMock) -> None:
    page = {"object": "list", "url": "/v1/customers/cus_pm/payment_methods", "has_more": False,
            "data": [method(), method(id="pm_other", type="paypal", card=None)]}  # fmt: skip
    api.get(f"{API}/customers/cus_pm/payment_methods", json=page)
    api.get(f"{API}/payment_methods/pm_saved", json=method())
    settings = {"default_payment_method": "pm_saved", "custom_fields": None, "footer": None}
    api.post(f"{API}/customers/cus_pm", json=customer(invoice_settings=settings))
    api.post(f"{API}/payment_methods/pm_saved/detach", json=method(customer=None))
    card, paypal = provider.list_payment_methods("cus_pm")
    assert (card.kind, card.brand, card.last4, card.exp_month, card.exp_year) == (
        PaymentMethodKind.CARD,
        "visa",
        "4242",
        8,
        2030,
    )
    assert card.fingerprint == "AOB934RVNwzk6xtn" and card.customer_id == "cus_pm"
    assert (paypal.kind, paypal.last4, paypal.email) == (
        PaymentMethodKind.PAYPAL,
        None,
        "jenny@example.com",
    )
    assert query(api.calls[0]) == {"limit": "100"}
    check_stripe_form("CustomerListPaymentMethodsParams", query(api.calls[0]))
    assert provider.get_payment_method("pm_saved").id == "pm_saved"
    updated = provider.set_default_payment_method("cus_pm", "pm_saved")
    assert updated.default_payment_method_id == "pm_saved"
    sent = form(api.calls[2])
    assert sent == {"invoice_settings[default_payment_method]": "pm_saved"}
    check_stripe_form("CustomerUpdateParams", sent)
    assert provider.detach_payment_method("pm_saved") is None
    assert api.calls[3].request.url == f"{API}/payment_methods/pm_saved/detach"


# -- off-session charges -----------------------------------------------------------------------


def intent(**fields: Any) -> dict[str, Any]:
    base = {"id": "pi_reorder", "amount": 4200, "currency": "eur", "status": "succeeded",
            "amount_received": 4200, "customer": "cus_pm", "last_payment_error": None,
            "next_action": None, "metadata": {"order_id": "ord_reorder"}}  # fmt: skip
    return resource("payment_intent", **{**base, **fields})


def reorder(provider: StripeProvider) -> Any:
    return provider.create_payment(
        order_id="ord_reorder",
        amount=Money(4200, "EUR"),
        payment_method="pm_saved",
        customer_id="cus_pm",
        idempotency_key="ord_reorder:create",
        off_session=True,
    )


def test_off_session_charge(provider: StripeProvider, api: responses.RequestsMock) -> None:
    api.post(f"{API}/payment_intents", json=intent())
    payment = reorder(provider)
    assert (payment.status, payment.customer_id) == (PaymentStatus.SUCCEEDED, "cus_pm")
    sent = form(api.calls[0])
    assert sent == {
        "amount": "4200",
        "currency": "eur",
        "capture_method": "automatic",
        "metadata[order_id]": "ord_reorder",
        "customer": "cus_pm",
        "payment_method": "pm_saved",
        "confirm": "true",
        "off_session": "true",
        "automatic_payment_methods[enabled]": "true",
        "automatic_payment_methods[allow_redirects]": "never",
    }
    check_stripe_form("PaymentIntentCreateParams", sent)


def test_off_session_authentication_required(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    failed = intent(
        status="requires_payment_method",
        amount_received=0,
        last_payment_error={"type": "card_error", "code": "authentication_required",
                            "decline_code": "authentication_required"},
    )  # fmt: skip
    error = {"type": "card_error", "code": "authentication_required",
             "decline_code": "authentication_required",
             "message": "Your card was declined. This transaction requires authentication.",
             "payment_intent": failed}  # fmt: skip
    api.post(f"{API}/payment_intents", status=402, json={"error": error})
    with pytest.raises(AuthenticationRequired) as info:
        reorder(provider)
    raised = info.value
    assert isinstance(raised, CardDeclined)
    assert (raised.payment_id, raised.decline_code, raised.http_status) == (
        "pi_reorder",
        "authentication_required",
        402,
    )
    assert raised.retryable is False


def test_a_declined_off_session_charge_names_its_payment(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    """A plain decline off session carries the PaymentIntent Stripe names in the error,
    as an authentication_required one does (the app can show or retry that payment)."""
    failed = intent(status="requires_payment_method", amount_received=0)
    error = {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
             "message": "Your card has insufficient funds.", "payment_intent": failed}  # fmt: skip
    api.post(f"{API}/payment_intents", status=402, json={"error": error})
    with pytest.raises(CardDeclined) as info:
        reorder(provider)
    assert not isinstance(info.value, AuthenticationRequired)
    assert (info.value.payment_id, info.value.decline_code) == ("pi_reorder", "insufficient_funds")


def test_charge_after_detach_is_a_typed_refusal(
    provider: StripeProvider, api: responses.RequestsMock
) -> None:
    error = {"type": "invalid_request_error", "code": "payment_method_not_available",
             "message": "The PaymentMethod pm_saved does not belong to the Customer cus_pm."}  # fmt: skip
    api.post(f"{API}/payment_intents", status=400, json={"error": error})
    with pytest.raises(InvalidRequest) as info:
        reorder(provider)
    assert info.value.code == "payment_method_not_available"


def test_off_session_needs_the_saved_method_and_its_customer(provider: StripeProvider) -> None:
    with pytest.raises(ValidationError, match="customer_id"):
        provider.create_payment(
            order_id="o",
            amount=Money(100, "EUR"),
            payment_method="pm_saved",
            idempotency_key="k",
            off_session=True,
        )
