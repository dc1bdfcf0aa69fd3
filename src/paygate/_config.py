"""Gateway settings from a mapping or the environment, validated by pydantic.

Imported only by ``Gateway.from_config``/``from_env`` and by the adapters (for
`settings_error`), so that ``import paygate`` and ``paygate.connect("fake")`` stay
free of pydantic. The store URL is a ``SecretStr`` (it may carry a database password);
provider settings go to the adapter untouched, which validates them with its own
pydantic model and keeps its secrets as ``SecretStr``.

The environment is read by `paygate._env` (pydantic-settings: the variables, a
``.env`` file, a secrets directory), imported only by `settings_from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic import ValidationError as PydanticValidationError

from paygate.errors import ConfigurationError

__all__ = ["GatewaySettings", "RetrySettings", "settings_from_env", "settings_from_mapping"]

ENV_PREFIX = "PAYGATE_"
#: PAYGATE_<NAME> variables that configure the Gateway itself, not the provider
_GATEWAY_ENV = {
    "PROVIDER": "provider",
    "STORE_URL": "store",
    "CURRENCIES": "currencies",
    "WEBHOOK_LEASE": "webhook_lease",
    "RETRY_ATTEMPTS": "retry.attempts",
    "RETRY_BASE_DELAY": "retry.base_delay",
    "RETRY_MAX_DELAY": "retry.max_delay",
    "RETRY_TOTAL_BUDGET": "retry.total_budget",
}


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    #: ``None``: the provider's ``max_retries`` + 1 if it sets one, else 3
    attempts: int | None = Field(default=None, ge=1)
    base_delay: float = Field(default=0.25, ge=0)
    max_delay: float = Field(default=4.0, ge=0)
    total_budget: float = Field(default=20.0, ge=0)
    jitter: float = Field(default=1.0, ge=0, le=1)


class GatewaySettings(BaseModel):
    """What ``Gateway.from_config`` accepts (``from_env`` builds the same)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str = Field(min_length=1)
    #: ``None``: ``paygate.stores.default_store_url()`` (SQLite at ``./paygate.db``), as
    #: ``paygate.connect`` without a store
    store: SecretStr | None = None
    #: ISO codes payments may use; ``None`` allows every currency
    currencies: frozenset[str] | None = None
    #: seconds a worker owns a webhook event before another may take it over
    webhook_lease: float = Field(default=60.0, gt=0)
    retry: RetrySettings = RetrySettings()
    #: keyword settings for the provider adapter (``api_key=...``): plain values until the
    #: adapter wraps its secrets, so kept out of the repr
    settings: dict[str, Any] = Field(default_factory=dict, repr=False)

    @field_validator("currencies", mode="before")
    @classmethod
    def _split_currencies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(code.strip().upper() for code in value.split(",") if code.strip())
        return value


def settings_error(
    exc: PydanticValidationError, what: str, *, env_prefix: str | None = None
) -> ConfigurationError:
    """``invalid <what>: field: problem; ...`` -- the setting and what is wrong with it,
    never the offending value (it may be a secret). With ``env_prefix``, a missing setting
    also names its environment variable (``PAYGATE_PAYPAL_CLIENT_ID``)."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        name = ".".join(str(part) for part in err["loc"]) or "(settings)"
        problem = f"{name}: {err['msg']}"
        if env_prefix and err["type"] == "missing" and len(err["loc"]) == 1:
            problem += f" (set {env_prefix}{name.upper()})"
        problems.append(problem)
    return ConfigurationError(f"invalid {what}: {'; '.join(problems)}")


def settings_from_mapping(config: Mapping[str, Any]) -> GatewaySettings:
    """``{"provider": "stripe", "store": "sqlite:///p.db", "stripe": {"api_key": ...}}``.

    Provider settings go under ``"settings"`` or under the provider's own name.
    """
    if not isinstance(config, Mapping):
        raise ConfigurationError(f"gateway config must be a mapping, got {type(config).__name__}")
    data = dict(config)
    provider = data.get("provider")
    if "store_url" in data and "store" not in data:
        data["store"] = data.pop("store_url")
    if isinstance(provider, str) and isinstance(data.get(provider), Mapping):
        named = dict(data.pop(provider))
        data["settings"] = {**named, **dict(data.get("settings") or {})}
    try:
        return GatewaySettings.model_validate(data)
    except PydanticValidationError as exc:
        raise settings_error(exc, "gateway config") from None


def settings_from_env(environ: Mapping[str, str] | None = None) -> GatewaySettings:
    """``PAYGATE_PROVIDER``, ``PAYGATE_STORE_URL``, ``PAYGATE_<PROVIDER>_<SETTING>`` ...

    From ``environ`` when given, else from the process environment, with a ``.env`` file
    (``PAYGATE_ENV_FILE``, default ``./.env`` for the process environment) and a secrets
    directory (``PAYGATE_SECRETS_DIR``) behind them."""
    from paygate._env import read_environment

    env = os.environ if environ is None else environ
    found, provider_settings = read_environment(env, process=environ is None)
    provider = (found.get("provider") or "").strip()
    if not provider:
        raise ConfigurationError(
            "PAYGATE_PROVIDER is not set: name the provider (fake, stripe, paypal, square)"
        )
    data: dict[str, Any] = {"provider": provider}
    retry: dict[str, str] = {}
    for name, target in _GATEWAY_ENV.items():
        value = found.get(name.lower())
        if value is None or name == "PROVIDER":
            continue
        if target.startswith("retry."):
            retry[target.removeprefix("retry.")] = value
        else:
            data[target] = value
    if retry:
        data["retry"] = retry
    data["settings"] = provider_settings(f"{ENV_PREFIX}{provider.upper()}_")
    try:
        return GatewaySettings.model_validate(data)
    except PydanticValidationError as exc:
        raise settings_error(exc, "gateway environment") from None
