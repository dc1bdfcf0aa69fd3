"""Gateway settings never show the provider's secrets in their repr (audit finding)."""

from __future__ import annotations

from paygate._config import settings_from_env, settings_from_mapping

API_KEY = "sk_test_AuditKeyThatMustNotShow"
WEBHOOK_SECRET = "whsec_AuditSecretThatMustNotShow"


def test_repr_of_settings_from_env_hides_provider_settings() -> None:
    settings = settings_from_env(
        {
            "PAYGATE_PROVIDER": "stripe",
            "PAYGATE_STRIPE_API_KEY": API_KEY,
            "PAYGATE_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }
    )
    assert settings.settings["api_key"] == API_KEY  # still handed to the adapter
    for text in (repr(settings), str(settings)):
        assert API_KEY not in text
        assert WEBHOOK_SECRET not in text
        assert "provider='stripe'" in text


def test_repr_of_settings_from_mapping_hides_provider_settings() -> None:
    settings = settings_from_mapping(
        {"provider": "stripe", "stripe": {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}}
    )
    assert settings.settings == {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET}
    for text in (repr(settings), str(settings)):
        assert API_KEY not in text
        assert WEBHOOK_SECRET not in text
