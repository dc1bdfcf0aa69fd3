"""Connect an application to a running sandbox with no configuration at all.

The example shops start with `gateway_from_env` instead of ``Gateway.from_env()``:
when a provider is configured (``PAYGATE_PROVIDER`` in the environment, the ``.env`` file
or the secrets directory), it *is* ``Gateway.from_env()``; when none is, the shop runs
against the local sandbox (``paygate sandbox``), asking it over HTTP for the settings it
prints at start-up (base URL, API key, webhook secret), so that two commands, the sandbox
and the shop, are all it takes to buy something in a browser.

``PAYGATE_SANDBOX_URL`` (default ``http://127.0.0.1:12111``) says where the sandbox is and
``PAYGATE_SANDBOX_PROVIDER`` (default ``stripe``; ``paypal``, ``square``) which of its
faces to use. Never meant for production: a missing ``PAYGATE_PROVIDER`` there would be a
mistake, and then the application fails at start-up, as no sandbox answers.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from paygate.errors import ConfigurationError

if TYPE_CHECKING:
    from paygate import Gateway

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

__all__ = ["DEFAULT_SANDBOX_URL", "gateway_from_env", "sandbox_environment"]

DEFAULT_SANDBOX_URL = "http://127.0.0.1:12111"

#: settings the sandbox accepts any value for, by provider
_ANY_VALUE: dict[str, dict[str, str]] = {
    "stripe": {"api_key": "sk_test_sandbox"},
    "paypal": {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"},
    "square": {"access_token": "sandbox-access-token", "location_id": "SANDBOX"},
}


def _configured_provider(environ: Mapping[str, str] | None) -> str | None:
    from paygate._env import read_environment

    values, _ = read_environment(
        os.environ if environ is None else environ, process=environ is None
    )
    return values.get("provider")


def sandbox_environment(
    environ: Mapping[str, str] | None = None, *, timeout: float = 5.0
) -> dict[str, str]:
    """``environ`` (default ``os.environ``) plus the ``PAYGATE_*`` variables that point a
    gateway at the running sandbox: ``PAYGATE_PROVIDER`` and the provider's base URL,
    keys and webhook secret, as the sandbox's ``/_sandbox/info`` gives them. Variables
    already set win. ``ConfigurationError`` when no sandbox answers."""
    env = dict(os.environ if environ is None else environ)
    url = env.get("PAYGATE_SANDBOX_URL", DEFAULT_SANDBOX_URL).rstrip("/")
    provider = env.get("PAYGATE_SANDBOX_PROVIDER", "stripe").strip().lower()
    try:
        with urllib.request.urlopen(f"{url}/_sandbox/info", timeout=timeout) as answer:  # noqa: S310 (a URL the user configures)
            info: dict[str, Any] = json.load(answer)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"no provider configured (PAYGATE_PROVIDER) and no paygate sandbox answering at "
            f"{url} ({type(exc).__name__}); start one with `paygate sandbox`, or set "
            "PAYGATE_SANDBOX_URL, or configure a provider"
        ) from None
    face = info.get("providers", {}).get(provider)
    if not isinstance(face, dict):
        known = ", ".join(sorted(info.get("providers", {})))
        raise ConfigurationError(
            f"PAYGATE_SANDBOX_PROVIDER={provider!r:.40}: the sandbox has {known or 'none'}"
        )
    prefix = f"PAYGATE_{provider.upper()}_"
    settings = {"base_url": str(face["base_url"]), **_ANY_VALUE.get(provider, {})}
    for name, value in (face.get("secrets") or {}).items():
        # the sandbox describes the settings it accepts anything for ("any non-empty client
        # id"): those are filled in above; the others are its own values (webhook secrets)
        if isinstance(value, str) and value and " " not in value:
            settings[name] = value
    env.setdefault("PAYGATE_PROVIDER", provider)
    for name, value in settings.items():
        env.setdefault(prefix + name.upper(), value)
    return env


class _FromEnv(Protocol[T_co]):
    """A gateway class: something with ``from_env(environ)``."""

    def from_env(self, environ: Mapping[str, str] | None = None, /) -> T_co: ...


@overload
def gateway_from_env(environ: Mapping[str, str] | None = None) -> Gateway: ...


@overload
def gateway_from_env(environ: Mapping[str, str] | None = None, *, cls: _FromEnv[T]) -> T: ...


def gateway_from_env(
    environ: Mapping[str, str] | None = None, *, cls: _FromEnv[Any] | None = None
) -> Any:
    """``cls.from_env(environ)`` when a provider is configured; otherwise ``cls`` on the
    running sandbox (see the module's documentation). ``cls`` is `paygate.Gateway`
    by default; any class with the same ``from_env(environ)`` (an async gateway) works."""
    if cls is None:
        from paygate import Gateway

        cls = Gateway
    if _configured_provider(environ) is not None:
        return cls.from_env(environ)
    return cls.from_env(sandbox_environment(environ))
