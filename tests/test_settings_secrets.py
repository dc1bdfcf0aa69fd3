"""A value that fails settings validation never reaches an error, its chain or a traceback.

The realistic case: a secret pasted into the wrong variable (``PAYGATE_STRIPE_TIMEOUT`` holding
the API key). pydantic would echo the input in its message; every settings model hides it.
"""

from __future__ import annotations

import traceback
from typing import Any

import pytest

import paygate
from paygate.errors import ConfigurationError

LEAK = "sk_test_51LeakedIntoTheWrongSetting"

REQUIRED: dict[str, dict[str, Any]] = {
    "fake": {},
    "stripe": {"api_key": "sk_test_x", "webhook_secret": "whsec_x"},
    "paypal": {"client_id": "cid", "client_secret": "csecret", "webhook_id": "WH-1"},
    "square": {
        "access_token": "EAAAtoken",
        "location_id": "L1",
        "webhook_signature_key": "sigkey",
        "webhook_url": "https://shop.example/webhooks/square",
    },
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_a_secret_in_the_wrong_setting_is_not_echoed(name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        paygate.create_provider(name, **REQUIRED[name], timeout=LEAK)
    text = "".join(traceback.format_exception(info.value))
    chained = info.value.__cause__ or info.value.__context__
    assert LEAK not in text
    assert chained is None or LEAK not in str(chained)
    assert "timeout" in str(info.value)  # it still names what was wrong


def test_gateway_settings_hide_their_input() -> None:
    with pytest.raises(ConfigurationError) as info:
        paygate.Gateway.from_config(
            {"provider": "fake", "store": "memory://", "webhook_lease": LEAK}
        )
    text = "".join(traceback.format_exception(info.value))
    assert LEAK not in text


@pytest.mark.parametrize(
    ("name", "settings", "variables"),
    [
        ("paypal", {"client_secret": "pp-secret-x"}, ["PAYGATE_PAYPAL_CLIENT_ID"]),
        ("square", {}, ["PAYGATE_SQUARE_ACCESS_TOKEN"]),
    ],
)
def test_a_missing_setting_names_its_environment_variable(
    name: str, settings: dict[str, Any], variables: list[str]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        paygate.create_provider(name, **settings)
    message = str(info.value)
    for variable in variables:
        assert variable in message
    assert "pp-secret-x" not in message
    assert "Field required" in message


def test_the_environment_names_the_missing_setting_through_the_gateway() -> None:
    with pytest.raises(ConfigurationError, match=r"client_id: .*set PAYGATE_PAYPAL_CLIENT_ID") as info:
        paygate.Gateway.from_env({"PAYGATE_PROVIDER": "paypal",
                                  "PAYGATE_PAYPAL_CLIENT_SECRET": "pp-secret-y"})  # fmt: skip
    assert "pp-secret-y" not in str(info.value)
