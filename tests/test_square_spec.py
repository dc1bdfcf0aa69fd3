"""Square's OpenAPI specification as a test oracle, plus the shared Square test fixtures.

Every request the adapter sends and every answer the mock Square API gives is validated
against ``../shared/reference/square/api.json`` (JSON Schema, plus a strict check that no
field is sent that Square's schema does not define) when the reference is present; the
tests that need the reference skip with a reason where it is absent.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

import pytest

from paygate.providers import square as square_adapter
from paygate.providers._square_mock import RecordedCall, SquareMockAPI
from paygate.providers.square import SquareProvider
from tests.conftest import REFERENCE_DIR, load_reference_json

SPEC_PATH = REFERENCE_DIR / "square" / "api.json"
ACCESS_TOKEN = "EAAAl-test-access-token-do-not-log"
SIGNATURE_KEY = "whsig-test-key-do-not-log"
WEBHOOK_URL = "https://shop.example/webhooks/square"


# -- the spec as an oracle -------------------------------------------------------------------


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = load_reference_json("square", "api.json")
    return spec


@functools.cache
def _validator(schema_name: str) -> Any:
    from jsonschema import Draft4Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    registry = Registry().with_resource(
        "urn:square-api", Resource.from_contents(_spec(), default_specification=DRAFT4)
    )
    return Draft4Validator(
        {"$ref": f"urn:square-api#/components/schemas/{schema_name}"}, registry=registry
    )


@functools.cache
def _operations() -> list[tuple[str, re.Pattern[str], str | None, str | None]]:
    """(method, path regex, request schema, 200-response schema) of every operation,
    literal templates first (/v2/payments/cancel before /v2/payments/{payment_id})."""
    operations = []
    for template, methods in _spec()["paths"].items():
        pattern = re.compile(re.sub(r"\{[^}]+\}", "[^/]+", template))
        for method, operation in methods.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            request = (
                operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
                .get("$ref")
            )
            response = (
                operation["responses"]
                .get("200", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
                .get("$ref")
            )
            operations.append(
                (
                    method.upper(),
                    pattern,
                    request.rsplit("/", 1)[1] if request else None,
                    response.rsplit("/", 1)[1] if response else None,
                )
            )
    return sorted(operations, key=lambda op: op[1].pattern.count("[^/]+"))


def operation_for(method: str, path: str) -> tuple[str | None, str | None]:
    """The request and response schema names of ``method path``; fails if Square has none."""
    for op_method, pattern, request, response in _operations():
        if op_method == method and pattern.fullmatch(path):
            return request, response
    raise AssertionError(f"{method} {path} is not an operation of Square's API")


def unknown_fields(instance: Any, schema_name: str, where: str = "") -> list[str]:
    """Fields of ``instance`` that Square's schema ``schema_name`` does not define."""
    schema = _spec()["components"]["schemas"][schema_name]
    return _unknown(instance, schema, where or schema_name)


def _unknown(instance: Any, schema: dict[str, Any], where: str) -> list[str]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = _spec()["components"]["schemas"][name]
    problems: list[str] = []
    if isinstance(instance, dict) and "properties" in schema:
        properties = schema["properties"]
        for key, value in instance.items():
            if key not in properties:
                problems.append(f"{where}.{key}")
            else:
                problems.extend(_unknown(value, properties[key], f"{where}.{key}"))
    elif isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            problems.extend(_unknown(item, schema["items"], f"{where}[{index}]"))
    return problems


def validate(instance: Any, schema_name: str) -> None:
    """Fail unless ``instance`` is valid under Square's ``schema_name`` and adds nothing."""
    errors = sorted(_validator(schema_name).iter_errors(instance), key=str)
    assert not errors, f"{schema_name}: {errors[0].message} at {list(errors[0].absolute_path)}"
    extra = unknown_fields(instance, schema_name)
    assert not extra, f"fields Square's {schema_name} does not define: {extra}"


def check_call(call: RecordedCall) -> None:
    """Validate one request/answer pair against the operation's schemas."""
    request_schema, response_schema = operation_for(call.method, call.path)
    if call.body is not None:
        assert request_schema, f"{call.method} {call.path} takes no body"
        validate(call.body, request_schema)
    if call.scripted:
        return  # fail_next answers test the adapter with codes Square may add later
    if call.status == 200 and response_schema:
        validate(call.response, response_schema)
    elif call.status != 200:
        for error in call.response["errors"]:
            validate(error, "Error")


# -- fixtures shared by the Square tests ------------------------------------------------------


@pytest.fixture
def square_api() -> Iterator[SquareMockAPI]:
    api = SquareMockAPI(webhook_signature_key=SIGNATURE_KEY, webhook_url=WEBHOOK_URL)
    checked: list[RecordedCall] = []
    if SPEC_PATH.is_file():
        api.observers.append(check_call)
        api.observers.append(checked.append)
    yield api
    # every call was checked against the spec when the spec is there
    assert not SPEC_PATH.is_file() or len(checked) == len(api.calls)


@pytest.fixture
def square(square_api: SquareMockAPI) -> Iterator[SquareProvider]:
    provider = SquareProvider(
        access_token=ACCESS_TOKEN,
        location_id="LOC1",
        webhook_signature_key=SIGNATURE_KEY,
        webhook_url=WEBHOOK_URL,
        http_client=square_api.http_client(),
    )
    yield provider
    provider.close()


# -- tests of the oracle itself and of the tables against the spec ----------------------------


def test_spec_oracle_rejects_unknown_and_mistyped_fields() -> None:
    good = {
        "source_id": "cnon:ok",
        "idempotency_key": "k",
        "amount_money": {"amount": 100, "currency": "USD"},
    }
    validate(good, "CreatePaymentRequest")
    with pytest.raises(AssertionError, match="does not define"):
        validate({**good, "auto_complete": False}, "CreatePaymentRequest")
    with pytest.raises(AssertionError, match="CreatePaymentRequest"):
        validate(
            {**good, "amount_money": {"amount": "1.00", "currency": "USD"}}, "CreatePaymentRequest"
        )
    with pytest.raises(AssertionError, match="CreatePaymentRequest"):
        validate({**good, "idempotency_key": "x" * 46}, "CreatePaymentRequest")
    assert operation_for("POST", "/v2/payments/abc/complete") == (
        "CompletePaymentRequest",
        "CompletePaymentResponse",
    )


def _enum(name: str) -> set[str]:
    return set(_spec()["components"]["schemas"][name]["enum"])


def test_every_mapped_square_value_exists_in_the_spec() -> None:
    error_codes = _enum("ErrorCode")
    assert set(square_adapter.DECLINE_CODES) <= error_codes
    assert set(square_adapter.ERROR_CODES) <= error_codes
    assert set(square_adapter.ERROR_CATEGORIES) == _enum("ErrorCategory")
    assert set(square_adapter.SUBSCRIPTION_STATUS) == _enum("SubscriptionStatus")
    assert set(square_adapter.INVOICE_STATUS) == _enum("InvoiceStatus")
    assert set(square_adapter.DISPUTE_STATUS) == _enum("DisputeState")
    assert set(square_adapter.CHECKOUT_STATUS) == _enum("OrderState")
    assert set(square_adapter.DISPUTE_EVENT_BY_STATE) <= _enum("DisputeState")


def test_payment_and_refund_status_tables_cover_the_documented_values() -> None:
    schemas = _spec()["components"]["schemas"]
    payment_status_doc = schemas["Payment"]["properties"]["status"]["description"]
    assert set(re.findall(r"\b[A-Z]{4,}\b", payment_status_doc)) == set(
        square_adapter.PAYMENT_STATUS
    )
    refund_status_doc = schemas["PaymentRefund"]["properties"]["status"]["description"]
    documented = set(re.findall(r"`([A-Z_]+)`", refund_status_doc))
    assert documented == set(square_adapter.REFUND_STATUS)


def test_mapped_event_types_are_square_webhook_events() -> None:
    schemas = _spec()["components"]["schemas"]
    names = {
        schema["example"]["type"]
        for name, schema in schemas.items()
        if name.endswith("Event")
        and isinstance(schema.get("example"), dict)
        and "type" in schema["example"]
    }
    for square_type in (
        *square_adapter.EVENT_TYPES,
        "payment.created",
        "payment.updated",
        "refund.created",
        "refund.updated",
        "dispute.state.updated",
        "subscription.updated",
    ):
        assert square_type in names, square_type
