"""Settings of the Square adapter, validated by pydantic; secrets stay ``SecretStr``."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from paygate._config import settings_error

SANDBOX_URL = "https://connect.squareupsandbox.com"
PRODUCTION_URL = "https://connect.squareup.com"
#: plain http only to this machine: the access token travels in every request's headers
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class SquareSettings(BaseModel):
    """``PAYGATE_SQUARE_<NAME>`` environment variables map onto these fields."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, hide_input_in_errors=True
    )

    access_token: SecretStr
    location_id: str = Field(min_length=1)
    webhook_signature_key: SecretStr | None = None
    #: the notification URL exactly as registered with Square: it is part of the signed text
    webhook_url: str | None = None
    #: sandbox unless production is asked for by name (the SDK itself defaults to production)
    environment: Literal["sandbox", "production"] = "sandbox"
    base_url: str | None = None
    #: seconds one request may take; the Gateway's retry budget (a deadline) cuts it further
    timeout: float = Field(default=10.0, gt=0)
    #: the Gateway's retry count for Square; the SDK's own retries are always off
    max_retries: int | None = Field(default=None, ge=0)
    #: days until a created invoice is due
    invoice_due_days: int = Field(default=30, ge=0)

    @field_validator("environment", mode="before")
    @classmethod
    def _lower_environment(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _https_base_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  # ValueError for a port that is not a number
        except ValueError:
            raise ValueError("must be an https URL") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https URL such as https://connect.squareup.com")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ValueError("must be an https URL (http only for localhost/127.0.0.1 fakes)")
        return value

    @field_validator("access_token")
    @classmethod
    def _non_empty_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @property
    def api_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        return PRODUCTION_URL if self.environment == "production" else SANDBOX_URL


def load_settings(settings: dict[str, Any]) -> SquareSettings:
    """Validate keyword settings; the error names each bad field but never echoes a value."""
    try:
        return SquareSettings(**settings)
    except pydantic.ValidationError as exc:
        raise settings_error(exc, "Square settings", env_prefix="PAYGATE_SQUARE_") from None
