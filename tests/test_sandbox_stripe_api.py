"""The sandbox's Stripe wire format: shapes, parameters, idempotency, errors, triggers.

* every object it answers with or sends in an event fits the ``stripe`` package's typed
  resources (generated from Stripe's spec; tests/stripe_shapes.py), and has no field
  Stripe's own example of that object (``../shared/reference/stripe/fixtures3.json``) lacks;
* every parameter it accepts is one the ``stripe`` package's typed request parameters
  declare, checked both on the routes' declared sets and on every request made here;
* ``Idempotency-Key`` as Stripe: replay, ``idempotency_error``, validation errors not kept.
"""

from __future__ import annotations

import decimal
import importlib
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ForwardRef, Literal, Union

import httpx
import pytest
import typing_extensions

from paygate.__main__ import main
from paygate.sandbox import Sandbox, _stripe_api, _stripe_routes
from tests.conftest import load_reference_json
from tests.stripe_shapes import shape_errors

stripe = pytest.importorskip("stripe")

KEY = {"Authorization": "Bearer sk_test_sandbox"}

#: (rule, method) -> the stripe package's typed parameters of that request
PARAMS_CLASSES: dict[tuple[str, str], str] = {
    ("/v1/payment_intents", "POST"): "PaymentIntentCreateParams",
    ("/v1/payment_intents", "GET"): "PaymentIntentListParams",
    ("/v1/payment_intents/<intent>", "GET"): "PaymentIntentRetrieveParams",
    ("/v1/payment_intents/<intent>/confirm", "POST"): "PaymentIntentConfirmParams",
    ("/v1/payment_intents/<intent>/capture", "POST"): "PaymentIntentCaptureParams",
    ("/v1/payment_intents/<intent>/cancel", "POST"): "PaymentIntentCancelParams",
    ("/v1/refunds", "POST"): "RefundCreateParams",
    ("/v1/refunds", "GET"): "RefundListParams",
    ("/v1/refunds/<refund>", "GET"): "RefundRetrieveParams",
    ("/v1/charges/<charge>", "GET"): "ChargeRetrieveParams",
    ("/v1/customers", "POST"): "CustomerCreateParams",
    ("/v1/customers", "GET"): "CustomerListParams",
    ("/v1/customers/<customer>", "GET"): "CustomerRetrieveParams",
    ("/v1/customers/<customer>", "POST"): "CustomerUpdateParams",
    ("/v1/customers/<customer>", "DELETE"): "CustomerDeleteParams",
    ("/v1/customers/<customer>/payment_methods", "GET"): "CustomerListPaymentMethodsParams",
    ("/v1/payment_methods/<method>", "GET"): "PaymentMethodRetrieveParams",
    ("/v1/payment_methods/<method>/detach", "POST"): "PaymentMethodDetachParams",
    ("/v1/setup_intents", "POST"): "SetupIntentCreateParams",
    ("/v1/setup_intents/<intent>", "GET"): "SetupIntentRetrieveParams",
    ("/v1/setup_intents/<intent>/confirm", "POST"): "SetupIntentConfirmParams",
    ("/v1/prices", "POST"): "PriceCreateParams",
    ("/v1/prices/<price>", "GET"): "PriceRetrieveParams",
    ("/v1/checkout/sessions", "POST"): "checkout.SessionCreateParams",
    ("/v1/checkout/sessions/<session>", "GET"): "checkout.SessionRetrieveParams",
    ("/v1/checkout/sessions/<session>/expire", "POST"): "checkout.SessionExpireParams",
    ("/v1/checkout/sessions/<session>/line_items", "GET"): "checkout.SessionListLineItemsParams",
    ("/v1/subscriptions", "POST"): "SubscriptionCreateParams",
    ("/v1/subscriptions/<subscription>", "GET"): "SubscriptionRetrieveParams",
    ("/v1/subscriptions/<subscription>", "POST"): "SubscriptionUpdateParams",
    ("/v1/subscriptions/<subscription>", "DELETE"): "SubscriptionCancelParams",
    ("/v1/invoices", "POST"): "InvoiceCreateParams",
    ("/v1/invoices/<invoice>", "GET"): "InvoiceRetrieveParams",
    ("/v1/invoices/<invoice>/finalize", "POST"): "InvoiceFinalizeInvoiceParams",
    ("/v1/invoices/<invoice>/send", "POST"): "InvoiceSendInvoiceParams",
    ("/v1/invoices/<invoice>/pay", "POST"): "InvoicePayParams",
    ("/v1/invoiceitems", "POST"): "InvoiceItemCreateParams",
    ("/v1/disputes", "GET"): "DisputeListParams",
    ("/v1/disputes/<dispute>", "GET"): "DisputeRetrieveParams",
    ("/v1/disputes/<dispute>", "POST"): "DisputeUpdateParams",
    ("/v1/disputes/<dispute>/close", "POST"): "DisputeCloseParams",
    ("/v1/balance_transactions", "GET"): "BalanceTransactionListParams",
    ("/v1/events", "GET"): "EventListParams",
    ("/v1/events/<event>", "GET"): "EventRetrieveParams",
    ("/v1/webhook_endpoints", "POST"): "WebhookEndpointCreateParams",
    ("/v1/webhook_endpoints", "GET"): "WebhookEndpointListParams",
}

#: fields an object carries only in some states or when expanded, which Stripe's example
#: objects therefore lack
CONDITIONAL_FIELDS = {
    "refund": {"failure_reason"},
    "invoice": {"payments"},
    "checkout.session": {"line_items"},
    "charge": {"refunds"},
    "webhook_endpoint": {"secret"},  # shown once, on creation
}


def _params_class(name: str) -> type:
    module = importlib.import_module(
        "stripe.params" + ("." + name.split(".")[0] if "." in name else "")
    )
    cls: type = getattr(module, name.rsplit(".", 1)[-1])
    return cls


def _unwrap(annotation: Any, owner: type) -> list[Any]:
    """The types an annotation allows (NotRequired, Union, forward refs resolved)."""
    if isinstance(annotation, ForwardRef):
        annotation = annotation.__forward_arg__
    if isinstance(annotation, str):
        namespace = vars(importlib.import_module(owner.__module__))
        annotation = eval(annotation, dict(namespace))  # the stripe package's own annotation
    # typing_extensions: NotRequired is typing's from Python 3.11, its own on 3.10 (where
    # the stripe package's annotations use it)
    origin = typing_extensions.get_origin(annotation)
    if origin in (typing_extensions.NotRequired, typing_extensions.Required):
        return _unwrap(typing_extensions.get_args(annotation)[0], owner)
    if origin is Union:
        return [t for arg in typing.get_args(annotation) for t in _unwrap(arg, owner)]
    return [annotation]


def param_errors(value: Any, annotation: Any, owner: type, path: str) -> list[str]:
    """What in a parsed request ``value`` the typed parameter ``annotation`` does not allow."""
    options = _unwrap(annotation, owner)
    literals = [a for o in options if typing.get_origin(o) is Literal for a in typing.get_args(o)]
    if bool in options and value in ("true", "false"):  # ``bool | Literal[...]`` (off_session)
        return []
    if literals and isinstance(value, str):  # an enum (the package adds ``str`` beside it)
        named = {str(a).lower() if isinstance(a, bool) else a for a in literals}
        return [] if value in named else [f"{path}: {value!r:.40} is not one of {literals}"]
    for option in options:
        origin = typing.get_origin(option)
        if typing_extensions.is_typeddict(option) and isinstance(value, dict):
            declared: dict[str, Any] = {}
            for klass in reversed(option.__mro__):
                declared.update(getattr(klass, "__annotations__", {}))
            errors = []
            for key, entry in value.items():
                if key not in declared:
                    errors.append(f"{path}[{key}]: not a parameter of {option.__name__}")
                else:
                    errors.extend(param_errors(entry, declared[key], option, f"{path}[{key}]"))
            return errors
        if origin is list and isinstance(value, list):
            (item,) = typing.get_args(option)
            return [
                e for i, v in enumerate(value) for e in param_errors(v, item, owner, f"{path}[{i}]")
            ]
        if origin is Literal and value in typing.get_args(option):
            return []
        if (
            origin is Literal
            and isinstance(value, str)
            and value in {str(a).lower() for a in typing.get_args(option)}
        ):
            return []  # booleans travel as "true"/"false"
        if option in (str, int, bool, float, decimal.Decimal, Any) or origin is dict:
            return []
    return [f"{path}: {value!r:.60} fits none of {options!r:.160}"]


def request_errors(rule: str, method: str, params: dict[str, Any]) -> list[str]:
    cls = _params_class(PARAMS_CLASSES[(rule, method)])
    declared: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        declared.update(getattr(klass, "__annotations__", {}))
    errors = []
    for key, value in params.items():
        if key not in declared:
            errors.append(f"{method} {rule}: {key} is not a parameter of {cls.__name__}")
        else:
            errors.extend(param_errors(value, declared[key], cls, f"{method} {rule} {key}"))
    return errors


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    """Every (rule, method, parsed parameters) the sandbox's Stripe routes accept."""
    calls: list[tuple[str, str, dict[str, Any]]] = []
    original = _stripe_api.api

    def recording_api(face: Any, endpoint: Any, allowed: frozenset[str]) -> Any:
        rule = next(r for r, _, e, _ in _stripe_routes.ROUTES if e is endpoint)
        methods = next(m for r, m, e, _ in _stripe_routes.ROUTES if e is endpoint)

        def wrapped(face: Any, params: dict[str, Any], **values: str) -> Any:
            answer = endpoint(face, params, **values)
            calls.append((rule, methods[0], params))
            return answer

        return original(face, wrapped, allowed)

    monkeypatch.setattr(_stripe_api, "api", recording_api)
    yield calls


@pytest.fixture
def client(sandbox: Sandbox) -> Any:
    return stripe.StripeClient(
        "sk_test_sandbox", base_addresses={"api": sandbox.base_url}, max_network_retries=0
    )


def _post(sandbox: Sandbox, path: str, data: dict[str, str], **headers: str) -> httpx.Response:
    return httpx.post(sandbox.base_url + path, data=data, headers={**KEY, **headers})


# -- parameters --------------------------------------------------------------------------------


def test_every_route_names_its_stripe_params_and_accepts_only_declared_names() -> None:
    routes = {(rule, methods[0]) for rule, methods, _, _ in _stripe_routes.ROUTES}
    assert routes == set(PARAMS_CLASSES)
    for rule, methods, _, allowed in _stripe_routes.ROUTES:
        cls = _params_class(PARAMS_CLASSES[(rule, methods[0])])
        declared = set()
        for klass in reversed(cls.__mro__):
            declared |= set(getattr(klass, "__annotations__", {}))
        assert allowed <= declared, (rule, sorted(allowed - declared))


def test_requests_made_by_the_adapter_and_the_triggers_use_declared_params(
    recorded: list[tuple[str, str, dict[str, Any]]],
) -> None:
    import paygate
    from paygate import LineItem, Money

    # routes are bound at construction: rebuild a sandbox with the recording wrapper
    with Sandbox(port=0) as fresh:
        gateway = paygate.connect(
            "stripe", api_key="sk_test_sandbox", webhook_secret=fresh.stripe.webhook_secret,
            base_url=fresh.base_url, store="memory://",
        )  # fmt: skip
        try:
            payment = gateway.create_payment(
                order_id="o1", amount=Money(2000, "USD"), payment_method="pm_card_visa",
                capture="manual", return_url="http://shop.test/r",
            )  # fmt: skip
            gateway.capture(payment.id, Money(1500, "USD"))
            gateway.refund(payment.id, Money(500, "USD"), reason="requested_by_customer")
            gateway.get_payment(payment.id)
            gateway.create_checkout(
                order_id="o2", line_items=[LineItem(name="Mug", unit_amount=Money(900, "USD"))],
                success_url="http://shop.test/ok", cancel_url="http://shop.test/no",
            )  # fmt: skip
            customer = gateway.create_customer(email="a@example.com", name="A")
            subscription = gateway.create_subscription(customer_id=customer.id, price_id="price_x")
            gateway.cancel_subscription(subscription.id, at_period_end=True)
            gateway.create_invoice(
                customer_id=customer.id,
                line_items=[LineItem(name="Fee", unit_amount=Money(100, "USD"))],
                send=True,
            )
            list(gateway.provider.iter_balance_transactions())
            # saved payment methods: SetupIntent, Checkout in setup mode, the method's life
            saved = gateway.create_setup(customer.id, payment_method="pm_card_visa")
            method_id = saved.payment_method_id or ""
            hosted = gateway.create_setup(customer.id, return_url="http://shop.test/saved")
            gateway.complete_setup({"session_id": hosted.id})
            gateway.complete_setup({"setup_intent": saved.id})
            gateway.set_default_payment_method(customer.id, method_id)
            gateway.update_customer(customer.id, name="B", metadata={"tier": "gold"})
            gateway.list_payment_methods(customer.id)
            gateway.get_payment_method(method_id)
            gateway.create_payment(
                order_id="o3", amount=Money(700, "USD"), payment_method=method_id,
                customer_id=customer.id, off_session=True,
            )  # fmt: skip
            gateway.detach_payment_method(method_id)
            list(gateway.list_customers(email="a@example.com"))
            gateway.delete_customer(customer.id)
        finally:
            gateway.close()
        for event_type in fresh.stripe.trigger_types():
            fresh.stripe.trigger(event_type)
    assert {rule for rule, _, _ in recorded} >= {
        "/v1/payment_intents", "/v1/refunds", "/v1/checkout/sessions", "/v1/invoiceitems",
        "/v1/subscriptions", "/v1/balance_transactions", "/v1/payment_intents/<intent>/capture",
        "/v1/setup_intents", "/v1/customers/<customer>/payment_methods",
        "/v1/payment_methods/<method>/detach", "/v1/customers/<customer>",
    }  # fmt: skip
    errors = [e for rule, method, params in recorded for e in request_errors(rule, method, params)]
    assert errors == []


def test_param_checker_catches_undeclared_nested_params() -> None:
    bad = {"automatic_payment_methods": {"enabled": "true", "colour": "red"}, "amount": "1"}
    assert request_errors("/v1/payment_intents", "POST", bad) == [
        "POST /v1/payment_intents automatic_payment_methods[colour]: not a parameter of "
        "PaymentIntentCreateParamsAutomaticPaymentMethods"
    ]
    assert request_errors("/v1/payment_intents", "POST", {"capture_method": "later"})
    # ``off_session``: a boolean or one of two words; a boolean value is not refused
    assert request_errors("/v1/payment_intents", "POST", {"off_session": "true"}) == []
    assert request_errors("/v1/payment_intents", "POST", {"off_session": "sometimes"})
    # a nested object beside an empty-string literal (``invoice_settings``) is walked
    assert request_errors(
        "/v1/customers/<customer>", "POST",
        {"invoice_settings": {"default_payment_method": "pm_1", "colour": "red"}},
    ) == [
        "POST /v1/customers/<customer> invoice_settings[colour]: not a parameter of "
        "CustomerUpdateParamsInvoiceSettings"
    ]  # fmt: skip


def test_unknown_parameters_are_refused_as_stripe_does(sandbox: Sandbox) -> None:
    answer = _post(
        sandbox, "/v1/payment_intents", {"amount": "100", "currency": "usd", "colour": "red"}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] | {"doc_url": None} == {
        "type": "invalid_request_error", "code": "parameter_unknown", "param": "colour",
        "message": "Received unknown parameter: colour", "doc_url": None,
    }  # fmt: skip


# -- shapes --------------------------------------------------------------------------------------


def _every_object(sandbox: Sandbox, client: Any) -> list[dict[str, Any]]:
    for event_type in sandbox.stripe.trigger_types():
        sandbox.stripe.trigger(event_type)
    events = [e.payload() for e in sandbox.bus.events("stripe", 10_000)]
    objects: list[dict[str, Any]] = [*events, *(e["data"]["object"] for e in events)]
    get = lambda path, **q: httpx.get(sandbox.base_url + path, params=q, headers=KEY).json()  # noqa: E731
    for event in events:
        obj = event["data"]["object"]
        path = {
            "payment_intent": "/v1/payment_intents/", "refund": "/v1/refunds/",
            "dispute": "/v1/disputes/", "subscription": "/v1/subscriptions/",
            "invoice": "/v1/invoices/", "checkout.session": "/v1/checkout/sessions/",
            "charge": "/v1/charges/", "customer": "/v1/customers/",
            "payment_method": "/v1/payment_methods/", "setup_intent": "/v1/setup_intents/",
        }[obj["object"]]  # fmt: skip
        expand = {
            "payment_intent": ["latest_charge", "latest_charge.refunds"],
            "invoice": ["payments"], "checkout.session": ["line_items"], "charge": ["refunds"],
        }.get(obj["object"], [])  # fmt: skip
        objects.append(get(path + obj["id"], **{"expand[]": expand}))
    for listing in (
        "/v1/payment_intents", "/v1/refunds", "/v1/disputes", "/v1/events",
        "/v1/webhook_endpoints",
    ):  # fmt: skip
        objects.extend(get(listing, limit=100)["data"])
    objects.extend(
        get("/v1/balance_transactions", limit=100,
            **{"expand[]": ["data.source", "data.source.charge"]})["data"]
    )  # fmt: skip
    customer = client.v1.customers.create(params={"email": "c@example.com"}).to_dict()
    objects += [customer, get("/v1/customers/" + customer["id"])]
    objects.append(client.v1.prices.create(params={"currency": "usd", "unit_amount": 5}).to_dict())
    objects.append(
        client.v1.webhook_endpoints.create(
            params={"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}
        ).to_dict()
    )
    session = next(o for o in objects if o.get("object") == "checkout.session")
    objects.extend(get(f"/v1/checkout/sessions/{session['id']}/line_items")["data"])
    return objects


def test_every_object_fits_the_stripe_packages_typed_resources(
    sandbox: Sandbox, client: Any
) -> None:
    objects = _every_object(sandbox, client)
    kinds = {o["object"] for o in objects}
    assert kinds >= {
        "event", "payment_intent", "charge", "refund", "dispute", "subscription", "invoice",
        "checkout.session", "customer", "price", "balance_transaction", "webhook_endpoint",
        "item",
    }  # fmt: skip
    errors = [error for obj in objects for error in shape_errors(obj)]
    assert errors == []


def test_no_object_has_a_field_stripes_example_of_it_lacks(
    sandbox: Sandbox, client: Any, reference_dir: Path
) -> None:
    examples = load_reference_json("stripe", "fixtures3.json")["resources"]
    extra = {}
    for obj in _every_object(sandbox, client):
        example = examples.get(obj["object"])
        if example is None:  # "item" (a line item) has no example of its own
            continue
        unexpected = set(obj) - set(example) - CONDITIONAL_FIELDS.get(obj["object"], set())
        if unexpected:
            extra[obj["object"]] = sorted(unexpected)
    assert extra == {}


def test_the_shape_checker_accepts_stripes_own_examples(reference_dir: Path) -> None:
    """The checker is neither too strict nor blind: Stripe's examples pass (but for fields
    that moved between the examples' spec version and the SDK's), a broken one does not."""
    examples = load_reference_json("stripe", "fixtures3.json")["resources"]
    drift = {"invoice.subscription", "dispute.evidence_details.submission_method",
             "event.data.object.aggregate_usage"}  # fmt: skip
    for name in ("payment_intent", "charge", "refund", "customer", "price", "checkout.session",
                 "subscription", "invoice", "dispute", "balance_transaction", "event"):  # fmt: skip
        errors = [e.split(":")[0] for e in shape_errors(examples[name])]
        assert set(errors) <= drift, name
    broken = {**examples["payment_intent"], "status": "paid", "colour": "red"}
    broken.pop("amount")
    assert len(shape_errors(broken)) == 3


# -- idempotency, auth, errors -------------------------------------------------------------------


def test_idempotency_key_replays_the_same_answer_and_refuses_other_params(
    sandbox: Sandbox,
) -> None:
    body = {
        "amount": "1500",
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": "true",
    }
    first = _post(sandbox, "/v1/payment_intents", body, **{"Idempotency-Key": "k-1"})
    again = _post(sandbox, "/v1/payment_intents", body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    other = _post(sandbox, "/v1/payment_intents", {**body, "amount": "1600"},
                  **{"Idempotency-Key": "k-1"})  # fmt: skip
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"
    assert len(sandbox.state.engine("stripe").payments()) == 1
    # a decline is kept and replayed; a validation failure is not kept
    declined = {**body, "payment_method": "pm_card_chargeDeclined"}
    d1 = _post(sandbox, "/v1/payment_intents", declined, **{"Idempotency-Key": "k-2"})
    d2 = _post(sandbox, "/v1/payment_intents", declined, **{"Idempotency-Key": "k-2"})
    assert d1.status_code == d2.status_code == 402 and d1.json() == d2.json()
    bad = _post(sandbox, "/v1/payment_intents", {"currency": "usd"}, **{"Idempotency-Key": "k-3"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "parameter_missing"
    fixed = _post(sandbox, "/v1/payment_intents", body, **{"Idempotency-Key": "k-3"})
    assert fixed.status_code == 200


def test_declines_come_in_stripes_error_shape_with_the_intent(sandbox: Sandbox) -> None:
    answer = _post(sandbox, "/v1/payment_intents", {
        "amount": "1500", "currency": "usd", "confirm": "true",
        "payment_method": "pm_card_chargeDeclinedInsufficientFunds",
    })  # fmt: skip
    assert answer.status_code == 402
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error", "card_declined", "insufficient_funds",
    )  # fmt: skip
    assert error["payment_intent"]["status"] == "requires_payment_method"
    assert shape_errors(error["payment_intent"]) == []
    from stripe._error_object import ErrorObject

    from tests.stripe_shapes import _object_errors

    assert _object_errors(error, ErrorObject, "error") == []


def test_api_key_is_required_and_must_be_a_test_key(sandbox: Sandbox) -> None:
    url = sandbox.base_url + "/v1/payment_intents/pi_x"
    assert httpx.get(url).status_code == 401
    live = httpx.get(url, headers={"Authorization": "Bearer sk_live_nope"})
    assert live.status_code == 401 and live.json()["error"]["type"] == "invalid_request_error"
    missing = httpx.get(url, headers=KEY)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"


def test_unknown_test_cards_and_bad_values_are_invalid_requests(sandbox: Sandbox) -> None:
    unknown = _post(sandbox, "/v1/payment_intents", {
        "amount": "100", "currency": "usd", "confirm": "true", "payment_method": "pm_nope",
    })  # fmt: skip
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "resource_missing"
    assert unknown.json()["error"]["param"] == "payment_method"
    bad_amount = _post(sandbox, "/v1/payment_intents", {"amount": "ten", "currency": "usd"})
    assert bad_amount.json()["error"]["code"] == "parameter_invalid_integer"
    bad_currency = _post(sandbox, "/v1/payment_intents", {"amount": "10", "currency": "zzz"})
    assert bad_currency.status_code == 400 and "zzz" in bad_currency.json()["error"]["message"]


def test_lists_page_with_starting_after_and_created_bounds(sandbox: Sandbox, client: Any) -> None:
    ids = [
        client.v1.payment_intents.create(params={"amount": 100 + n, "currency": "usd"}).id
        for n in range(5)
    ]
    first = client.v1.payment_intents.list(params={"limit": 2})
    assert [p.id for p in first.data] == ids[::-1][:2] and first.has_more
    rest = client.v1.payment_intents.list(params={"limit": 10, "starting_after": first.data[-1].id})
    assert [p.id for p in rest.data] == ids[::-1][2:] and not rest.has_more
    everything = list(client.v1.payment_intents.list(params={"limit": 2}).auto_paging_iter())
    assert [p.id for p in everything] == ids[::-1]
    none = client.v1.payment_intents.list(params={"created": {"gt": 4_000_000_000}})
    assert none.data == []


def test_webhook_endpoints_registered_through_the_api_get_deliveries(
    sandbox: Sandbox, client: Any
) -> None:
    from paygate.testing.sandbox import WebhookReceiver

    with WebhookReceiver() as receiver:
        endpoint = client.v1.webhook_endpoints.create(
            params={"url": receiver.url, "enabled_events": ["*"]}
        )
        assert endpoint.secret == sandbox.stripe.webhook_secret
        sandbox.stripe.trigger("payment_intent.succeeded")
        receiver.wait_for(lambda d: len(d) >= 3)


# -- triggers --------------------------------------------------------------------------------------


def test_every_trigger_emits_its_event(sandbox: Sandbox) -> None:
    types = sandbox.stripe.trigger_types()
    assert len(types) >= 20
    for event_type in types:
        emitted = [sandbox.bus.get(i).type for i in sandbox.stripe.trigger(event_type)]
        assert event_type in emitted


def test_cli_trigger_prints_the_event_ids(
    sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sandbox", "trigger", "charge.dispute.created", "--url", sandbox.base_url])
    assert code == 0
    printed = capsys.readouterr().out.split()
    assert [sandbox.bus.get(i).type for i in printed][-2:] == [
        "charge.dispute.created", "charge.dispute.funds_withdrawn",
    ]  # fmt: skip
    assert main(["sandbox", "trigger", "payout.paid", "--url", sandbox.base_url]) == 1
    assert "try one of:" in capsys.readouterr().err


def test_create_then_confirm_with_the_method_given_at_creation(client: Any) -> None:
    intent = client.v1.payment_intents.create(
        params={"amount": 700, "currency": "eur", "payment_method": "pm_card_visa"}
    )
    assert intent.status == "requires_payment_method" and intent.payment_method == "pm_card_visa"
    confirmed = client.v1.payment_intents.confirm(intent.id)
    assert confirmed.status == "succeeded" and confirmed.amount_received == 700
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(
            params={"amount": 700, "currency": "eur", "payment_method": "pm_card_unknown"}
        )
    bare = client.v1.payment_intents.create(params={"amount": 700, "currency": "eur"})
    with pytest.raises(stripe.InvalidRequestError, match="missing a payment method"):
        client.v1.payment_intents.confirm(bare.id)
    three_ds = client.v1.payment_intents.confirm(
        bare.id,
        params={"payment_method": "pm_card_threeDSecure2Required", "return_url": "https://s/r"},
    )
    assert three_ds.status == "requires_action"
    assert three_ds.next_action.redirect_to_url.return_url == "https://s/r"
