"""Building a Gateway: connect, from_config, from_env; keys; logging without secrets."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

import paygate
from paygate import ConfigurationError, EventType, Money
from paygate._idempotency import provider_key
from paygate.gateway import Gateway, RetryPolicy
from paygate.providers.fake import FakeProvider
from paygate.stores import MemoryStore, SQLiteStore

SECRET = "whsec_config_test_secret_abcdef"


def test_connect_by_name_or_instance() -> None:
    gw = paygate.connect("fake", seed=3)
    assert isinstance(gw, paygate.Gateway) and isinstance(gw.provider, FakeProvider)
    assert isinstance(gw.store, MemoryStore)
    provider = FakeProvider()
    assert paygate.connect(provider).provider is provider
    with pytest.raises(ConfigurationError, match="already built provider"):
        paygate.connect(provider, seed=1)
    with pytest.raises(ConfigurationError, match="unknown provider 'nope'"):
        paygate.connect("nope")
    store = MemoryStore()
    assert paygate.connect(provider, store=store).store is store
    with pytest.raises(ConfigurationError, match=r"must implement paygate\.PaymentProvider"):
        Gateway(object())  # type: ignore[arg-type]


def test_from_config(tmp_path: Path) -> None:
    gw = Gateway.from_config(
        {
            "provider": "fake",
            "store": f"sqlite:///{tmp_path / 'p.db'}",
            "fake": {"seed": "5", "webhook_secret": SECRET, "max_retries": 1},
            "currencies": "usd, eur",
            "retry": {"base_delay": 0},
            "webhook_lease": 5,
        }
    )
    assert isinstance(gw.store, SQLiteStore)
    assert gw.currencies == frozenset({"USD", "EUR"})
    assert gw.retry.attempts == 2 and gw.retry.base_delay == 0 and gw.webhook_lease == 5
    assert isinstance(gw.provider, FakeProvider) and gw.provider.settings.seed == 5
    assert SECRET not in repr(gw) and SECRET not in repr(gw.provider)
    gw.close()


def test_bad_config_names_the_field_never_the_value() -> None:
    with pytest.raises(ConfigurationError) as info:
        Gateway.from_config({"provider": "fake", "store": SECRET, "colour": "blue"})
    assert "colour" in str(info.value) and SECRET not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        Gateway.from_config({"provider": "fake", "fake": {"webhook_secret": SECRET, "seed": "x"}})
    assert "seed" in str(info.value) and SECRET not in str(info.value)
    with pytest.raises(ConfigurationError) as info:
        Gateway.from_config({"provider": "fake", "store": f"redis://u:{SECRET}@h/db"})
    assert "unknown store scheme 'redis'" in str(info.value)
    assert "u:***@h/db" in str(info.value) and SECRET not in str(info.value)


def test_from_env(tmp_path: Path) -> None:
    env = {
        "PAYGATE_PROVIDER": "fake",
        "PAYGATE_STORE_URL": f"sqlite:///{tmp_path / 'env.db'}",
        "PAYGATE_CURRENCIES": "USD",
        "PAYGATE_RETRY_ATTEMPTS": "4",
        "PAYGATE_FAKE_WEBHOOK_SECRET": SECRET,
        "PAYGATE_FAKE_SEED": "11",
        "PAYGATE_STRIPE_API_KEY": "sk_test_not_for_the_fake",  # another provider's: ignored
    }
    gw = Gateway.from_env(env)
    assert isinstance(gw.provider, FakeProvider)
    assert gw.provider.settings.seed == 11
    assert gw.provider.settings.webhook_secret.get_secret_value() == SECRET
    assert gw.retry.attempts == 4 and gw.currencies == frozenset({"USD"})
    assert isinstance(gw.store, SQLiteStore)
    p = gw.create_payment(order_id="o", amount=Money.of("1", "USD"), payment_method="tok_visa")
    assert gw.payment_for_order("o") == gw.store.get_payment(p.id).payment  # type: ignore[union-attr]
    gw.close()
    with pytest.raises(ConfigurationError, match="PAYGATE_PROVIDER is not set"):
        Gateway.from_env({})
    with pytest.raises(ConfigurationError) as info:
        Gateway.from_env({"PAYGATE_PROVIDER": "fake", "PAYGATE_FAKE_WEBHOOK_SECRET": SECRET,
                          "PAYGATE_FAKE_COLOUR": "red"})  # fmt: skip
    assert "colour" in str(info.value) and SECRET not in str(info.value)


def test_from_env_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYGATE_PROVIDER", "fake")
    monkeypatch.setenv("PAYGATE_FAKE_SEED", "21")
    gw = Gateway.from_env()
    assert gw.provider.settings.seed == 21  # type: ignore[attr-defined]


def test_provider_keys_are_readable_or_hashed() -> None:
    assert provider_key("ord_1", "create_payment", 1, "USD", 1999) == (
        "paygate:ord_1:create_payment:1:USD:1999"
    )
    hashed = provider_key("ord:with:colons", "create_payment", 1)
    assert hashed.startswith("paygate:h:") and len(hashed) == 74
    assert hashed == provider_key("ord:with:colons", "create_payment", 1)
    assert hashed != provider_key("ord:with", "colons:create_payment", 1)
    long = provider_key("o" * 200, "create_payment")
    assert len(long) == 74


def test_operations_and_transitions_are_logged_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="paygate")
    provider = FakeProvider(webhook_secret=SECRET)
    gw = paygate.connect(provider)
    p = gw.create_payment(
        order_id="ord_log", amount=Money.of("9.99", "USD"), payment_method="tok_3ds"
    )
    provider.authenticate(p.id)
    for d in provider.take_webhooks():
        gw.handle_webhook(d.body, d.headers)
    gw.refund(p.id, amount=Money.of("1.00", "USD"))
    text = caplog.text
    assert "create_payment order=ord_log amount=9.99 USD" in text
    assert f"payment {p.id}: requires_action -> succeeded" in text
    assert "refund payment" in text and "1.00 USD" in text
    assert all(r.name == "paygate" for r in caplog.records)
    assert p.client_secret and p.client_secret not in text and SECRET not in text
    assert "tok_3ds" not in text  # payment methods are not logged either


def test_the_gateway_is_thread_safe_for_many_orders(tmp_path: Path) -> None:
    gw = paygate.connect(FakeProvider(seed=1), store=f"sqlite:///{tmp_path / 'p.db'}",
                         retry=RetryPolicy(attempts=1))  # fmt: skip
    paid: list[str] = []
    lock = threading.Lock()
    gw.on(EventType.PAYMENT_SUCCEEDED)(lambda e: paid.append(e.order_id or ""))

    def shop(n: int) -> None:
        for i in range(5):
            order = f"ord_{n}_{i}"
            for _ in range(2):  # every order double-clicked
                gw.create_payment(
                    order_id=order, amount=Money.of("3", "USD"), payment_method="tok_visa"
                )
        provider = gw.provider
        assert isinstance(provider, FakeProvider)
        with lock:
            deliveries = provider.take_webhooks()
        for d in deliveries:
            gw.handle_webhook(d.body, d.headers)

    threads = [threading.Thread(target=shop, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    provider = gw.provider
    assert isinstance(provider, FakeProvider)
    assert len(provider.payments()) == 30
    assert sorted(paid) == sorted(f"ord_{n}_{i}" for n in range(6) for i in range(5))
