"""[`connect_async`][paygate.gateway.connect_async]: an
[`AsyncGateway`][paygate.gateway.AsyncGateway] from a provider name (or adapter) and a
store URL, typed per provider like [`connect`][paygate.gateway.connect]."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from paygate._retry import RetryPolicy
from paygate.errors import ConfigurationError
from paygate.gateway._async import AsyncGateway, _async_provider
from paygate.provider import AsyncPaymentProvider, PaymentProvider
from paygate.stores import Store, default_store_url, open_store
from paygate.stores.aio import AsyncStore

if TYPE_CHECKING:
    # typing only: importing the adapters at run time would import their SDKs
    import httpx
    from pydantic import SecretStr

    from paygate.providers.fake import AsyncFakeProvider
    from paygate.providers.paypal import AsyncPayPalProvider
    from paygate.providers.square import AsyncSquareProvider
    from paygate.providers.stripe import AsyncStripeProvider

__all__ = ["connect_async"]

#: an async adapter instance given to ``connect_async``
AA = TypeVar("AA", bound=AsyncPaymentProvider)


# Typing only, as connect()'s: the built-in names with their settings, an async adapter
# instance, a sync adapter instance (its aio() twin is used), then any other name.
@overload
def connect_async(
    provider: Literal["fake"],
    store: str | Store | AsyncStore | None = None,
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
) -> AsyncGateway[AsyncFakeProvider]: ...
@overload
def connect_async(
    provider: Literal["stripe"],
    store: str | Store | AsyncStore | None = None,
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
    http_client: httpx.AsyncClient | None = None,
    http_transport: Literal["auto", "aiohttp", "httpx"] = "auto",
) -> AsyncGateway[AsyncStripeProvider]: ...
@overload
def connect_async(
    provider: Literal["paypal"],
    store: str | Store | AsyncStore | None = None,
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
    http_client: httpx.AsyncClient | None = None,
    http_transport: Literal["auto", "aiohttp", "httpx"] = "auto",
) -> AsyncGateway[AsyncPayPalProvider]: ...
@overload
def connect_async(
    provider: Literal["square"],
    store: str | Store | AsyncStore | None = None,
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
    http_client: httpx.AsyncClient | None = None,
    http_transport: Literal["auto", "aiohttp", "httpx"] = "auto",
) -> AsyncGateway[AsyncSquareProvider]: ...
@overload
def connect_async(
    provider: AA,
    store: str | Store | AsyncStore | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> AsyncGateway[AA]: ...
@overload
def connect_async(
    provider: PaymentProvider,
    store: str | Store | AsyncStore | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> AsyncGateway[AsyncPaymentProvider]: ...
@overload
def connect_async(
    provider: str,
    store: str | Store | AsyncStore | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
) -> AsyncGateway[AsyncPaymentProvider]: ...
def connect_async(
    provider: str | PaymentProvider | AsyncPaymentProvider,
    store: str | Store | AsyncStore | None = None,
    *,
    retry: RetryPolicy | None = None,
    currencies: Iterable[str] | None = None,
    webhook_lease: float = 60.0,
    clock: Callable[[], float] = time.time,
    **settings: Any,
) -> AsyncGateway[Any]:
    """An [`AsyncGateway`][paygate.gateway.AsyncGateway] for ``provider`` and ``store``,
    read as [`connect`][paygate.gateway.connect] reads them.

    Args:
        provider: a name such as ``"stripe"``, with its settings as keyword arguments (the
            adapter's async twin is built from them), or an adapter instance (async, or
            sync: its ``aio()`` twin is used).
        store: a URL, a [`Store`][paygate.stores.Store] or an
            [`AsyncStore`][paygate.stores.aio.AsyncStore]; without it, as
            [`connect`][paygate.gateway.connect].
        retry: see [`AsyncGateway`][paygate.gateway.AsyncGateway].
        currencies: see [`AsyncGateway`][paygate.gateway.AsyncGateway].
        webhook_lease: see [`AsyncGateway`][paygate.gateway.AsyncGateway].
        clock: see [`AsyncGateway`][paygate.gateway.AsyncGateway].
        **settings: the provider's settings (``api_key=...``), with a name only.

    Raises:
        ConfigurationError: settings given with an adapter instance, or invalid ones.
    """
    if isinstance(provider, str):
        instance: Any = _async_provider_named(provider, settings)
    elif settings:
        raise ConfigurationError(
            f"provider settings ({', '.join(sorted(settings))}) were given for an already "
            "built provider; pass them to its constructor instead"
        )
    else:
        instance = _async_provider(provider)
    if store is None:
        store = default_store_url(provider=instance.name)
    opened = open_store(store) if isinstance(store, str) else store
    return AsyncGateway(instance, opened, retry=retry, currencies=currencies,
                        webhook_lease=webhook_lease, clock=clock)  # fmt: skip


def _async_provider_named(name: str, settings: dict[str, Any]) -> Any:
    """The async twin of the adapter ``name``, from its settings."""
    from paygate.gateway._async import _async_provider_from_settings

    return _async_provider_from_settings(name, settings)
