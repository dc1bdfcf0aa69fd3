"""``Gateway.from_env`` reads a ``.env`` file and a secrets directory (pydantic-settings),
behind the environment variables, with the same names and errors as the variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from paygate import ConfigurationError
from paygate._config import settings_from_env
from paygate.gateway import Gateway
from paygate.providers.fake import FakeProvider
from paygate.stores import SQLiteStore

SECRET = "whsec_from_a_file_0123456789abcdef"
OTHER = "whsec_from_the_environment_987654"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No PAYGATE_ variable from this machine; the working directory: tmp_path."""
    for name in list(os.environ):
        if name.startswith("PAYGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_dotenv_file_configures_the_gateway_and_the_provider(tmp_path: Path) -> None:
    env_file = tmp_path / "paygate.env"
    env_file.write_text(
        "# the shop's settings\n"
        "PAYGATE_PROVIDER=fake\n"
        f"PAYGATE_STORE_URL=sqlite:///{tmp_path / 'shop.db'}\n"
        f'export PAYGATE_FAKE_WEBHOOK_SECRET="{SECRET}"  # quoted, exported\n'
        "PAYGATE_FAKE_SEED=7\n"
        "PAYGATE_RETRY_ATTEMPTS=5\n",
        encoding="utf-8",
    )
    with Gateway.from_env({"PAYGATE_ENV_FILE": str(env_file)}) as gw:
        assert isinstance(gw.provider, FakeProvider) and isinstance(gw.store, SQLiteStore)
        assert gw.provider.settings.webhook_secret.get_secret_value() == SECRET
        assert gw.provider.settings.seed == 7 and gw.retry.attempts == 5
        assert SECRET not in repr(gw) and SECRET not in repr(gw.provider)


def test_the_environment_wins_over_the_dotenv_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"PAYGATE_PROVIDER=stripe\nPAYGATE_FAKE_WEBHOOK_SECRET={SECRET}\nPAYGATE_FAKE_SEED=1\n",
        encoding="utf-8",
    )
    settings = settings_from_env(
        {
            "PAYGATE_ENV_FILE": str(env_file),
            "PAYGATE_PROVIDER": "fake",
            "PAYGATE_FAKE_WEBHOOK_SECRET": OTHER,
        }
    )
    assert settings.provider == "fake"
    assert settings.settings == {"webhook_secret": OTHER, "seed": "1"}


def test_the_process_environment_reads_dotenv_in_the_working_directory(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text(
        f"PAYGATE_PROVIDER=fake\nPAYGATE_FAKE_WEBHOOK_SECRET={SECRET}\n", encoding="utf-8"
    )
    monkeypatch.setenv("PAYGATE_FAKE_SEED", "3")
    settings = settings_from_env()
    assert settings.provider == "fake"
    assert settings.settings == {"webhook_secret": SECRET, "seed": "3"}
    # a mapping given by the caller is the whole environment: no file is read for it
    with pytest.raises(ConfigurationError, match="PAYGATE_PROVIDER is not set"):
        settings_from_env({})


def test_a_secrets_directory_holds_one_variable_per_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    # as Docker mounts them: /run/secrets/<name>, often lower-case, with a final newline
    (secrets / "paygate_fake_webhook_secret").write_text(SECRET + "\n", encoding="utf-8")
    (secrets / "PAYGATE_STORE_URL").write_text(f"sqlite:///{tmp_path / 's.db'}\n")
    (secrets / "PAYGATE_FAKE_SEED").write_text("9")
    (secrets / "unrelated").write_text("not ours")
    settings = settings_from_env({"PAYGATE_PROVIDER": "fake", "PAYGATE_SECRETS_DIR": str(secrets)})
    assert settings.settings == {"webhook_secret": SECRET, "seed": "9"}
    assert settings.store.get_secret_value() == f"sqlite:///{tmp_path / 's.db'}"
    assert SECRET not in repr(settings) and "s.db" not in repr(settings)
    # the environment and the .env file win over a secret file
    env_file = tmp_path / ".env"
    env_file.write_text("PAYGATE_FAKE_SEED=4\n", encoding="utf-8")
    settings = settings_from_env(
        {
            "PAYGATE_PROVIDER": "fake",
            "PAYGATE_SECRETS_DIR": str(secrets),
            "PAYGATE_ENV_FILE": str(env_file),
            "PAYGATE_FAKE_WEBHOOK_SECRET": OTHER,
        }
    )
    assert settings.settings == {"webhook_secret": OTHER, "seed": "4"}


def test_errors_name_the_setting_whatever_its_source(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "PAYGATE_FAKE_WEBHOOK_SECRET").write_text(SECRET)
    (secrets / "PAYGATE_FAKE_COLOUR").write_text(SECRET)  # unknown: refused, value unshown
    with pytest.raises(ConfigurationError) as info:
        Gateway.from_env({"PAYGATE_PROVIDER": "fake", "PAYGATE_SECRETS_DIR": str(secrets)})
    assert "colour" in str(info.value) and SECRET not in str(info.value)
    env_file = tmp_path / ".env"
    env_file.write_text(f"PAYGATE_PROVIDER=fake\nPAYGATE_WEBHOOK_LEASE={SECRET}\n")
    with pytest.raises(ConfigurationError) as info:
        Gateway.from_env({"PAYGATE_ENV_FILE": str(env_file)})
    assert "invalid gateway environment: webhook_lease" in str(info.value)
    assert SECRET not in str(info.value)


def test_a_named_file_or_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="PAYGATE_ENV_FILE: no file at"):
        settings_from_env({"PAYGATE_PROVIDER": "fake", "PAYGATE_ENV_FILE": str(tmp_path / "x")})
    with pytest.raises(ConfigurationError, match="PAYGATE_SECRETS_DIR: no directory at"):
        settings_from_env(
            {"PAYGATE_PROVIDER": "fake", "PAYGATE_SECRETS_DIR": str(tmp_path / "none")}
        )


def test_pydantic_settings_loads_only_to_read_the_environment() -> None:
    """It costs tens of milliseconds to import: not for ``import paygate`` nor an adapter."""
    import json
    import subprocess
    import sys

    probe = (
        "import json, sys\n"
        "import paygate, paygate._config, paygate.providers.fake\n"
        "before = 'pydantic_settings' in sys.modules\n"
        "paygate._config.settings_from_env({'PAYGATE_PROVIDER': 'fake'})\n"
        "print(json.dumps([before, 'pydantic_settings' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout) == [False, True]
