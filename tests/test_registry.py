"""The lazy provider registry: names, install hints, entry points, register_provider."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import paygate
from paygate import ConfigurationError, ProviderNotInstalled
from paygate import provider as registry
from paygate.provider import (
    ProviderSpec,
    available_providers,
    create_provider,
    load_provider_class,
    register_provider,
)

BUILTIN = {"fake", "stripe", "paypal", "square"}


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets the built-in registry, entry points not yet loaded."""
    monkeypatch.setattr(registry, "_registry", dict(registry._BUILTIN))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    yield


@pytest.fixture
def adapter_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path for throw-away adapter modules."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    importlib.invalidate_caches()


def block_import(monkeypatch: pytest.MonkeyPatch, top: str) -> None:
    """Make ``import top`` (and its submodules) fail as if the package were not installed."""
    for name in [n for n in sys.modules if n == top or n.startswith(f"{top}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, top, None)


def no_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kwargs: [])


# -- names ---------------------------------------------------------------------------------


def test_builtin_providers_are_available(monkeypatch: pytest.MonkeyPatch) -> None:
    no_entry_points(monkeypatch)
    assert set(available_providers()) == BUILTIN
    assert available_providers() == sorted(available_providers())


def test_unknown_provider_lists_the_available_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    no_entry_points(monkeypatch)
    with pytest.raises(ConfigurationError) as caught:
        load_provider_class("strpe")
    message = str(caught.value)
    assert "'strpe'" in message
    for name in BUILTIN:
        assert name in message
    with pytest.raises(ConfigurationError, match="'nope'"):
        create_provider("nope", api_key="x")


# -- missing SDKs ----------------------------------------------------------------------------


def test_missing_sdk_gives_the_install_hint(
    adapter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adapter whose SDK import fails: ProviderNotInstalled with the pip command."""
    write_module(adapter_dir, "pg_test_adapter_sdk", "import stripe\nclass Adapter: ...\n")
    block_import(monkeypatch, "stripe")
    monkeypatch.setitem(
        registry._registry,
        "stripe",
        ProviderSpec("pg_test_adapter_sdk:Adapter", "stripe", ("stripe",)),
    )
    with pytest.raises(ProviderNotInstalled) as caught:
        load_provider_class("stripe")
    message = str(caught.value)
    assert "pip install 'paygate-payments[stripe]'" in message
    assert "'stripe'" in message
    assert isinstance(caught.value, ConfigurationError)


@pytest.mark.parametrize(
    ("name", "sdk"),
    [
        ("stripe", "stripe"),
        ("paypal", "paypalrestsdk"),
        ("paypal", "cryptography"),
        ("square", "square"),
        ("square", "httpx"),  # squareup's HTTP client, imported by the adapter first
    ],
)
def test_builtin_adapter_without_its_sdk(
    name: str, sdk: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real adapter modules, with their SDK made unimportable."""
    module = registry._BUILTIN[name].target.partition(":")[0]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not written yet")
    block_import(monkeypatch, sdk)
    # re-import the adapter (and its private helpers) so it really tries the SDK again;
    # the originals, and the package's attributes naming them, come back after the test
    providers = sys.modules["paygate.providers"]
    for loaded in [n for n in sys.modules if n.startswith("paygate.providers.")]:
        if loaded.startswith(("paygate.providers.fake", "paygate.providers._fake")):
            continue
        child = loaded.rpartition(".")[2]
        if hasattr(providers, child):
            monkeypatch.setattr(providers, child, getattr(providers, child))
        monkeypatch.delitem(sys.modules, loaded)
    with pytest.raises(ProviderNotInstalled, match=rf"pip install 'paygate-payments\[{name}\]'"):
        load_provider_class(name)


def test_a_broken_adapter_is_not_reported_as_a_missing_sdk(
    adapter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module the adapter needs that is not its SDK: the real error, not a pip hint."""
    write_module(adapter_dir, "pg_test_adapter_typo", "import pg_no_such_module_xyz\n")
    monkeypatch.setitem(
        registry._registry,
        "acme",
        ProviderSpec("pg_test_adapter_typo:Adapter", "acme", ("acmesdk",)),
    )
    with pytest.raises(ModuleNotFoundError) as caught:
        load_provider_class("acme")
    assert not isinstance(caught.value, ProviderNotInstalled)
    assert caught.value.name == "pg_no_such_module_xyz"


def test_fake_needs_no_extra() -> None:
    cls = load_provider_class("fake")
    assert cls.__name__ == "FakeProvider"
    assert cls.__module__ == "paygate.providers.fake"


# -- entry points ----------------------------------------------------------------------------


def test_entry_point_registration(adapter_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(
        adapter_dir,
        "pg_test_acme_adapter",
        """
        class AcmeProvider:
            name = "acme"

            def __init__(self, **settings):
                self.settings = settings
        """,
    )
    calls: list[dict[str, Any]] = []

    def entry_points(**kwargs: Any) -> list[importlib.metadata.EntryPoint]:
        calls.append(kwargs)
        return [
            importlib.metadata.EntryPoint(
                "acme", "pg_test_acme_adapter:AcmeProvider", "paygate.providers"
            ),
            # a plug-in cannot take over a built-in name
            importlib.metadata.EntryPoint(
                "stripe", "pg_test_acme_adapter:AcmeProvider", "paygate.providers"
            ),
        ]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert "pg_test_acme_adapter" not in sys.modules
    assert set(available_providers()) == BUILTIN | {"acme"}
    assert calls == [{"group": "paygate.providers"}]
    assert "pg_test_acme_adapter" not in sys.modules  # listing does not import
    provider = create_provider("acme", api_key="k", sandbox="true")
    assert type(provider).__name__ == "AcmeProvider"
    assert provider.settings == {"api_key": "k", "sandbox": "true"}  # type: ignore[attr-defined]
    assert registry._registry["stripe"] == registry._BUILTIN["stripe"]
    available_providers()
    assert len(calls) == 1  # entry points are read once


def test_unknown_name_looks_at_entry_points_first(
    adapter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(adapter_dir, "pg_test_late_adapter", "class Late:\n    pass\n")
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda **kwargs: [
            importlib.metadata.EntryPoint("late", "pg_test_late_adapter:Late", "paygate.providers")
        ],
    )
    assert load_provider_class("late").__name__ == "Late"


# -- register_provider ----------------------------------------------------------------------


def test_register_a_class(monkeypatch: pytest.MonkeyPatch) -> None:
    no_entry_points(monkeypatch)

    class Custom(paygate.BaseProvider):
        name = "custom"

        def __init__(self, *, api_key: str) -> None:
            self.api_key = api_key

    register_provider("custom", Custom)
    assert "custom" in available_providers()
    assert load_provider_class("custom") is Custom
    provider = create_provider("custom", api_key="k")
    assert isinstance(provider, Custom) and provider.api_key == "k"
    assert isinstance(provider, paygate.PaymentProvider)


def test_register_a_lazy_target_with_an_extra(
    adapter_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(adapter_dir, "pg_test_lazy_adapter", "import acmesdk\nclass Lazy: ...\n")
    register_provider("lazy", "pg_test_lazy_adapter:Lazy", extra="acme")
    assert "pg_test_lazy_adapter" not in sys.modules  # nothing imported at registration
    block_import(monkeypatch, "acmesdk")
    with pytest.raises(ProviderNotInstalled, match=r"pip install 'paygate-payments\[acme\]'"):
        load_provider_class("lazy")
    monkeypatch.delitem(sys.modules, "acmesdk")
    write_module(adapter_dir, "acmesdk", "")
    assert load_provider_class("lazy").__name__ == "Lazy"


def test_register_replaces_a_previous_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    register_provider("fake", lambda **settings: ("factory", settings))
    assert create_provider("fake", seed="1") == ("factory", {"seed": "1"})
