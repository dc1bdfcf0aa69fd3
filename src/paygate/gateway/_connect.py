"""[`connect`][paygate.gateway.connect]: a [`Gateway`][paygate.gateway.Gateway] from a
provider name (or adapter) and a store URL, typed per provider."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from paygate._retry import RetryPolicy
from paygate.errors import ConfigurationError
from paygate.gateway._facade import Gateway
from paygate.provider import PaymentProvider, create_provider
from paygate.stores import Store, default_store_url, open_store

if TYPE_CHECKING:
    # typing only: importing the adapters at run time would import their SDKs
    import httpx
    from pydantic import SecretStr

    from paygate.providers.fake import FakeProvider
    from paygate.providers.paypal import PayPalProvider
    from paygate.providers.square import SquareProvider
    from paygate.providers.stripe import StripeProvider

__all__ = ["connect"]

#: an adapter instance given to ``connect``
A = TypeVar("A", bound=PaymentProvider)


# Typing only (the implementation below is the one that runs): the built-in names with each
# adapter's settings (its pydantic settings model) as keyword-only parameters, an adapter
# instance, then any other name without settings (a plugin's, or one from configuration).
# That last one takes no settings on purpose: a ``str`` overload with ``**settings: Any``
# would also accept ``connect("stripe", api_key=3)`` once the stripe overload failed.
@overload
def connect(
    provider: Literal["fake"],
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
    webhook_secret: str | SecretStr = ...,
    seed: int | None = None,
    base_url: str = ...,
    webhook_tolerance: int = ...,
    max_retries: int | None = None,
) -> Gateway[FakeProvider]: ...
@overload
def connect(
    provider: Literal["stripe"],
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
    api_key: str | SecretStr,
    webhook_secret: str | SecretStr | Sequence[str | SecretStr] = ...,
    webhook_tolerance: int = ...,
    api_version: str | None = None,
    base_url: str | None = None,
    timeout: float = ...,
    max_retries: int | None = None,
    test_mode: bool = False,
) -> Gateway[StripeProvider]: ...
@overload
def connect(
    provider: Literal["paypal"],
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
    client_id: str,
    client_secret: str | SecretStr,
    webhook_id: str | None = None,
    mode: Literal["sandbox", "live"] = ...,
    base_url: str | None = None,
    timeout: float = ...,
    max_retries: int | None = None,
    verification: Literal["offline", "api"] = ...,
    webhook_tolerance: int = ...,
    cert_fetcher: Callable[[str], bytes] | None = None,
) -> Gateway[PayPalProvider]: ...
@overload
def connect(
    provider: Literal["square"],
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
    access_token: str | SecretStr,
    location_id: str,
    webhook_signature_key: str | SecretStr | None = None,
    webhook_url: str | None = None,
    environment: Literal["sandbox", "production"] = ...,
    base_url: str | None = None,
    timeout: float = ...,
    max_retries: int | None = None,
    invoice_due_days: int = ...,
    http_client: httpx.Client | None = None,
) -> Gateway[SquareProvider]: ...
@overload
def connect(
    provider: A,
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> Gateway[A]: ...
@overload
def connect(
    provider: str,
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> Gateway[PaymentProvider]: ...
def connect(
    provider: str | PaymentProvider,
    store: str | Store | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
    **settings: Any,
) -> Gateway[Any]:
    """A [`Gateway`][paygate.gateway.Gateway] for ``provider`` and ``store``.

    Args:
        provider: a name such as ``"stripe"``, with its settings as keyword arguments, or
            an adapter instance.
        store: a URL such as ``"sqlite:///paygate.db"``, or a
            [`Store`][paygate.stores.Store]. Without it: ``$PAYGATE_STORE_URL``, else
            SQLite at ``./paygate.db`` in the working directory (logged once at INFO) --
            the fake provider, which forgets its payments at exit, excepted:
            ``memory://`` for it. ``store="memory://"`` keeps nothing across restarts.
        retry: see [`Gateway`][paygate.gateway.Gateway].
        currencies: see [`Gateway`][paygate.gateway.Gateway].
        webhook_lease: see [`Gateway`][paygate.gateway.Gateway].
        clock: see [`Gateway`][paygate.gateway.Gateway].
        **settings: the provider's settings (``api_key=...``), with a name only.

    Raises:
        ConfigurationError: settings given with an adapter instance, or invalid ones.
    """
    if isinstance(provider, str):
        instance = create_provider(provider, **settings)
    elif settings:
        raise ConfigurationError(
            f"provider settings ({', '.join(sorted(settings))}) were given for an already "
            "built provider; pass them to its constructor instead"
        )
    else:
        instance = provider
    if store is None:
        store = default_store_url(provider=instance.name)
    opened = open_store(store) if isinstance(store, str) else store
    return Gateway(instance, opened, retry=retry, currencies=currencies,
                   webhook_lease=webhook_lease, clock=clock)  # fmt: skip
