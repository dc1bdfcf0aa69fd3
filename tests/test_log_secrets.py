"""No card number reaches a log line, and paygate never repeats a rejected payment method
(issue 15): the shared secret filter (paygate._redact) on paygate's and the SDKs' loggers,
the Stripe SDK's own DEBUG request line, and the adapters' error messages."""

from __future__ import annotations

import logging

import pytest
import responses

import paygate
from paygate import Money
from paygate._redact import (
    FILTERED_LOGGERS,
    SecretFilter,
    luhn_valid,
    redact_card_numbers,
    redact_dsn,
)
from paygate.errors import ValidationError

CARD = "4242 4242 4242 4242"
CARD_DIGITS = CARD.replace(" ", "")


@pytest.mark.parametrize(
    "text",
    [
        CARD_DIGITS,
        CARD,
        "4242-4242-4242-4242",
        "4242+4242+4242+4242",  # a form field, URL-encoded (the Stripe SDK's request line)
        "4242%204242%204242%204242",
        "%204242424242424242",
        "378282246310005",  # Amex, 15 digits
        "3782 822463 10005",
        "36227206271667",  # Diners, 14 digits
        "6011 1111 1111 1117",
        "4000 0566 5566 5556",
        "5555555555554444",
        "4222222222222",  # 13 digits
        "6200000000000005",  # UnionPay
        "6205500000000000004",  # 19 digits
    ],
)
def test_card_numbers_are_redacted(text: str) -> None:
    digits = "".join(c for c in text.replace("%20", "") if c.isdigit())
    assert luhn_valid(digits)  # the fixture is a card number
    cleaned = redact_card_numbers(f"payment_method={text}&x=1")
    assert cleaned.replace("%20", "") == "payment_method=[redacted]&x=1"


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424241",  # fails the Luhn check
        "42424242424",  # 11 digits
        "42424242424242424242",  # 20 digits, one unbroken run: not a card number
        "amount=1999&currency=usd",
        "2026-12-07 04:30:12",
        "order 123-456",
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert redact_card_numbers(text) == text


def test_a_card_number_among_other_digit_groups_is_found() -> None:
    assert redact_card_numbers(f"order 12 {CARD} 7 and 5555 5555 5555 4444!") == (
        "order 12 [redacted] 7 and [redacted]!"
    )


def test_a_long_run_of_groups_is_scanned_in_linear_time() -> None:
    text = "1 " * 200_000  # each window is at most 19 digits: no quadratic blow-up
    assert redact_card_numbers(text) == text


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://shop:hunter2@db:5432/paygate", "hunter2"),
        ("postgresql://shop:hun/ter@2@db/paygate", "hun/ter@2"),
        ("postgresql://db/paygate?password=hunter2&sslmode=require", "hunter2"),
        ("postgresql://db/paygate?sslmode=require&sslpassword=hunter2", "hunter2"),
        ("host=db password=hunter2 user=shop", "hunter2"),
        ("host=db password = 'hunter 2\\'s' user=shop", "hunter 2"),
        ("host=db PASSWORD=hunter2", "hunter2"),
    ],
)
def test_database_passwords_are_redacted(dsn: str, secret: str) -> None:
    cleaned = redact_dsn(dsn)
    assert secret not in cleaned and "***" in cleaned
    assert "db" in cleaned  # the rest stays readable


def test_the_filter_is_on_every_listed_logger_once() -> None:
    import importlib

    importlib.reload(paygate)  # importing again does not add a second filter
    for name in FILTERED_LOGGERS:
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, SecretFilter)]
        assert len(filters) == 1, name


@pytest.mark.parametrize("name", FILTERED_LOGGERS)
def test_records_of_filtered_loggers_are_scrubbed(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=name)
    logger = logging.getLogger(name)
    logger.warning("pm=%s meta=%s", CARD, {"note": f"card {CARD_DIGITS}"})
    logger.info("connecting to postgresql://shop:hunter2@db/paygate")
    try:
        raise ValueError(f"bad payment method {CARD}")
    except ValueError:
        logger.exception("failed")
    assert len(caplog.records) == 3
    assert CARD not in caplog.text and CARD_DIGITS not in caplog.text
    assert "hunter2" not in caplog.text
    assert caplog.text.count("[redacted]") == 3  # message, argument dict, traceback
    assert "ValueError: bad payment method [redacted]" in caplog.text


def test_stripe_sdk_debug_request_line_never_shows_a_card_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """At DEBUG the SDK logs each request's form-encoded body ("Post details"): a card
    number pasted by mistake as ``payment_method`` would be written as it is."""
    from paygate.providers.stripe import StripeProvider

    provider = StripeProvider(api_key="sk_test_51LogTestKeyNeverLeaks")
    caplog.set_level(logging.DEBUG)
    with responses.RequestsMock() as api:
        api.post(
            "https://api.stripe.com/v1/payment_intents",
            status=400,
            json={
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": f"No such PaymentMethod: '{CARD}'",
                    "param": "payment_method",
                }
            },
        )
        with pytest.raises(paygate.ProviderError) as info:
            provider.create_payment(
                order_id="o1", amount=Money.of("1.00", "USD"), payment_method=CARD,
                idempotency_key="key-card", metadata={"note": f"card {CARD_DIGITS}"},
            )  # fmt: skip
        sent = api.calls[0].request.body
        assert "4242" in str(sent)  # the SDK did send it (the test is not blind)
    assert "Post details" in caplog.text or "post_data" in caplog.text  # the request line
    for text in (caplog.text, str(info.value), repr(info.value)):
        assert "4242" not in text, text


def test_paypal_does_not_repeat_a_rejected_payment_method() -> None:
    from paygate.providers.paypal import PayPalProvider
    from tests.paypal_support import provider_settings

    provider = PayPalProvider(**provider_settings())
    with responses.RequestsMock() as rsps:
        for bad in (CARD, f"{CARD_DIGITS}/", f"x{CARD_DIGITS}!"):
            with pytest.raises(ValidationError, match="vault id") as info:
                provider.create_payment(
                    order_id="o", amount=Money.of("1", "USD"), payment_method=bad,
                    idempotency_key="k",
                )  # fmt: skip
            assert "4242" not in str(info.value)
        assert not rsps.calls


def test_fake_provider_does_not_repeat_an_unknown_payment_method() -> None:
    from paygate.providers.fake import FakeProvider

    provider = FakeProvider()
    with pytest.raises(paygate.ProviderError) as info:
        provider.create_payment(
            order_id="o", amount=Money.of("1", "USD"), payment_method=CARD, idempotency_key="k"
        )
    assert "4242" not in str(info.value)


def test_an_unformattable_record_is_left_to_the_handler() -> None:
    record = logging.LogRecord("paygate", logging.INFO, __file__, 1, "%d", ("x",), None)
    assert SecretFilter().filter(record) is True
    assert record.msg == "%d" and record.args == ("x",)


def test_a_clean_record_keeps_its_template_and_arguments() -> None:
    """Error trackers group log records by their template: only a record that held a
    secret is rewritten."""
    record = logging.LogRecord(
        "paygate", logging.INFO, __file__, 1, "webhook %s: %s", ("evt_1", "applied"), None
    )
    assert SecretFilter().filter(record)
    assert record.msg == "webhook %s: %s" and record.args == ("evt_1", "applied")


# -- saved payment methods (issue 19) ----------------------------------------------------------

SETUP_SECRET = "seti_1LogTest_secret_Qx9LogTestSetupSecretValue"
INTENT_SECRET = "pi_3LogTest_secret_Zy8LogTestIntentSecretValue"


def test_stripe_saved_method_flows_keep_secrets_and_card_numbers_out_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A setup's client secret, an off-session decline's PaymentIntent (with its client
    secret) and a card number pasted as the method to save: none reaches a log line, a
    repr or an exception, with the SDK logging whole bodies at DEBUG."""
    from paygate import AuthenticationRequired
    from paygate.providers.stripe import StripeProvider
    from tests.fixtures.stripe import resource

    provider = StripeProvider(api_key="sk_test_51LogTestKeyNeverLeaks")
    caplog.set_level(logging.DEBUG)
    intent = resource(
        "payment_intent", id="pi_3LogTest", client_secret=INTENT_SECRET,
        status="requires_payment_method", metadata={"order_id": "o2"},
    )  # fmt: skip
    with responses.RequestsMock() as api:
        api.post(
            "https://api.stripe.com/v1/setup_intents",
            json=resource("setup_intent", id="seti_1LogTest", client_secret=SETUP_SECRET),
        )
        api.post(
            "https://api.stripe.com/v1/setup_intents",
            status=400,
            json={"error": {"type": "invalid_request_error", "code": "resource_missing",
                            "message": f"No such PaymentMethod: '{CARD}'"}},
        )  # fmt: skip
        api.post(
            "https://api.stripe.com/v1/payment_intents",
            status=402,
            json={"error": {"type": "card_error", "code": "authentication_required",
                            "decline_code": "authentication_required",
                            "message": "This transaction requires authentication.",
                            "payment_intent": intent}},
        )  # fmt: skip
        setup = provider.create_setup(customer_id="cus_log", idempotency_key="s1")
        with pytest.raises(paygate.ProviderError) as pasted:
            provider.create_setup(customer_id="cus_log", idempotency_key="s2", payment_method=CARD)
        with pytest.raises(AuthenticationRequired) as declined:
            provider.create_payment(
                order_id="o2", amount=Money.of("1.00", "USD"), payment_method="pm_saved",
                customer_id="cus_log", idempotency_key="o2", off_session=True,
            )  # fmt: skip
    assert setup.client_secret == SETUP_SECRET  # handed to the caller, not shown anywhere
    # the SDK did log the bodies (the test is not blind), with the secrets scrubbed
    assert '"client_secret": "[redacted]"' in caplog.text
    assert declined.value.payment_id == "pi_3LogTest"
    shown = [caplog.text, repr(setup), str(setup), *(str(e.value) for e in (pasted, declined)),
             *(repr(e.value) for e in (pasted, declined)), repr(vars(declined.value))]  # fmt: skip
    for text in shown:
        for secret in (SETUP_SECRET, INTENT_SECRET, "4242", "sk_test_51LogTestKeyNeverLeaks"):
            assert secret not in text, (secret, text[:200])


def test_fake_and_paypal_do_not_repeat_a_card_number_given_to_save() -> None:
    from paygate.providers.fake import FakeProvider
    from paygate.providers.paypal import PayPalProvider
    from tests.paypal_support import provider_settings

    fake = FakeProvider()
    customer = fake.create_customer(email="log@example.com", name=None, idempotency_key="c")
    with pytest.raises(paygate.ProviderError) as info:
        fake.create_setup(customer_id=customer.id, idempotency_key="s", payment_method=CARD)
    assert "4242" not in str(info.value) and "4242" not in repr(info.value)
    setup = fake.create_setup(customer_id=customer.id, idempotency_key="s2")
    assert setup.client_secret and setup.client_secret not in repr(setup)
    paypal = PayPalProvider(**provider_settings())
    with responses.RequestsMock() as rsps:
        with pytest.raises(ValidationError) as refused:
            paypal.create_setup(
                customer_id="cus_log", idempotency_key="k", return_url="https://x",
                payment_method=CARD,
            )  # fmt: skip
        assert not rsps.calls
    assert "4242" not in str(refused.value)
def test_structured_fields_of_paygate_records_are_scrubbed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The ``paygate_`` extra fields (paygate._observe.fields) are written verbatim by JSON
    formatters: the filter on paygate's logger cleans them like the message."""
    from paygate._observe import fields

    with caplog.at_level(logging.INFO, logger="paygate"):
        logging.getLogger("paygate").info(
            "order %s", "o", extra=fields(order_id=f"o {CARD}", payment_id="pay_1", attempt=2)
        )
    (record,) = caplog.records
    assert record.__dict__["paygate_order_id"] == "o [redacted]"
    assert record.__dict__["paygate_payment_id"] == "pay_1"
    assert record.__dict__["paygate_attempt"] == 2
    assert CARD not in repr(record.__dict__) and CARD_DIGITS not in repr(record.__dict__)
