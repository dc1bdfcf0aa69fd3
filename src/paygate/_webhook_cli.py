"""``paygate webhook verify``: check one webhook delivery by hand.

``paygate webhook verify --provider NAME [--secret-env VAR | --secret-file PATH]
[-H 'Name: value' ...] [--json] [FILE|-]`` reads the raw body from ``FILE`` (``-`` or
nothing: standard input) and the headers from ``-H``, builds the provider's adapter with
the webhook secret, and runs its ``parse_webhook``: the same verification the Gateway runs.
It prints the normalized event and exits 0, or prints why it was refused (the paygate error
class and its message) and exits 1; 2 is a usage or settings error.

The provider's other settings come from ``PAYGATE_<PROVIDER>_*`` (the environment, a
``.env`` file, the secrets directory: the loader ``Gateway.from_env`` uses), so
``PAYGATE_SQUARE_WEBHOOK_URL`` or ``PAYGATE_STRIPE_WEBHOOK_TOLERANCE`` apply here too. The
secret is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from paygate.errors import ConfigurationError, PaygateError
from paygate.models import WebhookEvent

__all__ = ["add_arguments", "run"]

#: provider -> the setting holding what authenticates its webhooks
WEBHOOK_SECRET_SETTING: dict[str, str] = {
    "fake": "webhook_secret",
    "stripe": "webhook_secret",
    "square": "webhook_signature_key",
    "paypal": "webhook_id",
}

#: credentials an adapter requires to be built but never uses to verify a webhook: filled
#: in when the environment has none, so a webhook secret alone is enough
_UNUSED_CREDENTIALS: dict[str, dict[str, str]] = {
    "stripe": {"api_key": "sk_test_paygate_webhook_verify"},
    "square": {"access_token": "paygate-webhook-verify", "location_id": "paygate-webhook-verify"},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="webhook_command", metavar="COMMAND", required=True)
    verify = sub.add_parser(
        "verify", help="verify a delivery's signature and print the normalized event"
    )
    verify.add_argument(
        "--provider",
        required=True,
        choices=sorted(WEBHOOK_SECRET_SETTING),
        help="the provider that sent it",
    )
    secret = verify.add_mutually_exclusive_group()
    secret.add_argument(
        "--secret-env",
        metavar="VAR",
        help="environment variable holding the webhook secret (stripe/fake: the signing "
        "secret, square: the signature key, paypal: the webhook id); default: "
        "PAYGATE_<PROVIDER>_<SETTING>",
    )
    secret.add_argument(
        "--secret-file", metavar="PATH", help="file holding the webhook secret (one line)"
    )
    verify.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header of the delivery (repeatable): -H 'Stripe-Signature: t=...,v1=...'",
    )
    verify.add_argument("--json", action="store_true", help="print one JSON object")
    verify.add_argument(
        "body", nargs="?", default="-", metavar="FILE", help="the raw body (default/-: stdin)"
    )


def _headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise ConfigurationError(f"-H must look like 'Name: value', got {value!r}")
        headers[name.strip()] = rest.strip()
    return headers


def _secret(args: argparse.Namespace) -> str | None:
    if args.secret_env:
        value = os.environ.get(args.secret_env)
        if not value:
            raise ConfigurationError(f"--secret-env: {args.secret_env} is not set")
        return value.strip()
    if args.secret_file:
        try:
            with open(args.secret_file, encoding="utf-8") as f:
                value = f.read().strip()
        except OSError as exc:
            raise ConfigurationError(
                f"--secret-file: cannot read {args.secret_file!r} ({exc.strerror})"
            ) from None
        if not value:
            raise ConfigurationError(f"--secret-file: {args.secret_file!r} is empty")
        return value
    return None


def _body(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {name!r} ({exc.strerror})") from None


def _provider(name: str, secret: str | None) -> Any:
    from paygate._env import read_environment
    from paygate.provider import create_provider

    _, provider_settings = read_environment(os.environ, process=True)
    settings: dict[str, Any] = {
        **_UNUSED_CREDENTIALS.get(name, {}),
        **provider_settings(f"PAYGATE_{name.upper()}_"),
    }
    if secret is not None:
        settings[WEBHOOK_SECRET_SETTING[name]] = secret
    return create_provider(name, **settings)


def _fields(event: WebhookEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "provider": event.provider,
        "type": event.type.value,
        "provider_type": event.provider_type,
        "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None,
        "payment_id": event.payment_id,
        "order_id": event.order_id,
        "object_type": type(event.object).__name__ if event.object is not None else None,
    }


def run(args: argparse.Namespace) -> int:
    name = "paygate webhook verify"
    secret: str | None = None

    def shown(text: str) -> str:
        # defence in depth: adapters never quote the secret, and neither does this
        return text.replace(secret, "***") if secret else text

    try:
        secret = _secret(args)
        headers = _headers(args.header)
        body = _body(args.body)
        provider = _provider(args.provider, secret)
    except PaygateError as exc:
        print(f"{name}: {shown(str(exc))}", file=sys.stderr)
        return 2
    try:
        event = provider.parse_webhook(body, headers)
    except PaygateError as exc:
        if args.json:
            print(json.dumps({"valid": False, "error": type(exc).__name__,
                              "message": shown(str(exc))}))  # fmt: skip
        else:
            print(f"{name}: refused: {type(exc).__name__}: {shown(str(exc))}", file=sys.stderr)
        return 1
    finally:
        close = getattr(provider, "close", None)
        if callable(close):
            close()
    fields = _fields(event)
    if args.json:
        print(json.dumps({"valid": True, **fields}, indent=2))
        return 0
    print(f"valid {event.provider} webhook {event.id}")
    for key, value in fields.items():
        if key not in ("id", "provider"):
            print(f"  {key}: {'-' if value is None else value}")
    return 0
