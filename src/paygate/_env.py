"""The ``PAYGATE_*`` environment, read with pydantic-settings.

Three places, first wins: the environment variables (``os.environ``, or the mapping given
to ``Gateway.from_env``), a ``.env`` file (``PAYGATE_ENV_FILE``; for the process
environment ``.env`` in the working directory when it exists), and a secrets directory
(``PAYGATE_SECRETS_DIR``: one file per variable, named as the variable, as Docker and
Kubernetes mount secrets). The values come back as text; `paygate._config`
validates them, with the same errors whatever place they came from.

Imported only by ``settings_from_env``: pydantic-settings costs tens of milliseconds to
import, which neither ``import paygate`` nor an adapter should pay.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
)

from paygate._config import ENV_PREFIX
from paygate.errors import ConfigurationError

__all__ = ["DEFAULT_ENV_FILE", "read_environment"]

#: the .env file read from the process environment when PAYGATE_ENV_FILE does not name one
DEFAULT_ENV_FILE = ".env"


class GatewayEnv(BaseSettings):
    """The Gateway's own ``PAYGATE_<NAME>`` variables, as the text they hold (validated
    by ``GatewaySettings``, as a mapping's values are). The store URL may carry a database
    password: a ``SecretStr`` here too."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore", hide_input_in_errors=True
    )

    provider: str | None = None
    store_url: SecretStr | None = None
    currencies: str | None = None
    webhook_lease: str | None = None
    retry_attempts: str | None = None
    retry_base_delay: str | None = None
    retry_max_delay: str | None = None
    retry_total_budget: str | None = None


class _MappingEnvSource(EnvSettingsSource):
    """Environment variables from a mapping (``Gateway.from_env(environ)``);
    pydantic-settings' own source reads only ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ  # before super().__init__, which loads the variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # case-insensitive, as GatewayEnv: names are compared lower-cased
        return {key.lower(): value for key, value in self._environ.items()}


def _location(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(ENV_PREFIX + name, "").strip()
    return Path(value).expanduser() if value else None


def _sources(env: Mapping[str, str], *, process: bool) -> list[PydanticBaseSettingsSource]:
    """The environment, the .env file, the secrets directory: first wins."""
    env_file = _location(env, "ENV_FILE")
    if env_file is not None and not env_file.is_file():
        raise ConfigurationError(f"PAYGATE_ENV_FILE: no file at {str(env_file)!r}")
    if env_file is None and process:
        env_file = Path(DEFAULT_ENV_FILE)  # read only when it exists
    secrets_dir = _location(env, "SECRETS_DIR")
    if secrets_dir is not None and not secrets_dir.is_dir():
        raise ConfigurationError(f"PAYGATE_SECRETS_DIR: no directory at {str(secrets_dir)!r}")
    return [
        _MappingEnvSource(GatewayEnv, env),
        DotEnvSettingsSource(GatewayEnv, env_file=env_file),
        SecretsSettingsSource(GatewayEnv, secrets_dir=secrets_dir),
    ]


def _variables(source: PydanticBaseSettingsSource, prefix: str) -> dict[str, str]:
    """Every variable of ``source`` whose lower-cased name starts with ``prefix``."""
    if isinstance(source, SecretsSettingsSource):
        # pydantic-settings looks a secret up only by a declared field's name; a provider's
        # setting names are its adapter's, so the folder is listed here. A file is read as
        # pydantic-settings reads one: its text, stripped.
        folder = source.secrets_dir
        if not isinstance(folder, (str, os.PathLike)):
            return {}
        return {
            path.name.lower(): path.read_text(encoding="utf-8").strip()
            for path in Path(folder).iterdir()
            if path.is_file() and path.name.lower().startswith(prefix)
        }
    found = getattr(source, "env_vars", {})
    return {k: v for k, v in found.items() if k.startswith(prefix) and v is not None}


def read_environment(
    env: Mapping[str, str], *, process: bool
) -> tuple[dict[str, str], Callable[[str], dict[str, str]]]:
    """The Gateway's variables (``{"provider": "stripe", "store_url": ..., ...}``, only
    those set) and a function giving a provider's: ``PAYGATE_STRIPE_`` → ``{"api_key":
    ...}``. ``process``: ``env`` is the process environment (the default .env applies)."""
    sources = _sources(env, process=process)
    read: dict[str, Any] = {}
    for source in reversed(sources):  # lowest precedence first, overwritten by higher
        read.update({k: v for k, v in source().items() if v is not None})
    found = GatewayEnv.model_validate(read)  # every field is optional text: cannot fail
    values: dict[str, str] = {}
    for name in GatewayEnv.model_fields:
        value = getattr(found, name)
        if value is not None:
            values[name] = value.get_secret_value() if isinstance(value, SecretStr) else value

    def provider_settings(prefix: str) -> dict[str, str]:
        # pydantic-settings gathers only the fields a settings class declares; a provider's
        # settings are its adapter's to declare (and to refuse when unknown), so they are
        # gathered by prefix, each name without it: PAYGATE_STRIPE_API_KEY → api_key
        prefix = prefix.lower()
        settings: dict[str, str] = {}
        for source in reversed(sources):
            for key, value in _variables(source, prefix).items():
                if len(key) > len(prefix):
                    settings[key[len(prefix) :]] = value
        return settings

    return values, provider_settings
