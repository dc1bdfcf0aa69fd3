"""Test helpers for the PayPal adapter: a local CA and signing certificate, signed webhook
deliveries, canned PayPal resources, a ``responses`` harness that checks bodies against
PayPal's OpenAPI specs (../shared/reference/paypal) where they are present.

Everything is generated at test time: no certificate or key is committed.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.conftest import REFERENCE_DIR

API = "https://api-m.sandbox.paypal.com"
CLIENT_ID = "AZpaygate-client-id-test"
CLIENT_SECRET = "EPsecret-do-not-log-0123456789"
ACCESS_TOKEN = "A21AAtoken-do-not-log-9876543210"
WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"


# -- certificates ------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningIdentity:
    key: rsa.RSAPrivateKey
    pem: bytes  # leaf + issuing CA, as PayPal serves the chain


@cache
def _rsa_key(label: str) -> rsa.RSAPrivateKey:
    # label keeps separate keys apart in the cache; 2048 bits like PayPal's, made once a run
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@cache
def _ca() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = _rsa_key("ca")
    now = datetime.now(timezone.utc)
    name = _name("paygate test root CA", "paygate tests")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=3650))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


@cache
def identity(
    kind: str = "valid",
) -> SigningIdentity:
    """``valid``, ``expired``, ``not_yet_valid``, ``not_paypal`` (wrong subject) or
    ``other_key`` (a valid PayPal certificate for a different key than the signer's)."""
    ca_key, ca_cert = _ca()
    key = _rsa_key("leaf")
    now = datetime.now(timezone.utc)
    not_before, not_after = now - timedelta(days=30), now + timedelta(days=365)
    subject = _name("messageverificationcerts.paypal.com", "PayPal, Inc.")
    if kind == "expired":
        not_before, not_after = now - timedelta(days=400), now - timedelta(days=1)
    elif kind == "not_yet_valid":
        not_before, not_after = now + timedelta(days=1), now + timedelta(days=400)
    elif kind == "not_paypal":
        subject = _name("attacker.example.com", "Attacker Ltd")
    public_key = _rsa_key("other").public_key() if kind == "other_key" else key.public_key()
    leaf = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(ca_key, hashes.SHA256())
    )
    pem = leaf.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    return SigningIdentity(key=key, pem=pem)


class CertServer:
    """An injectable certificate fetcher that records which URLs were asked for."""

    def __init__(self, certificates: Mapping[str, bytes] | None = None) -> None:
        self.certificates = dict(certificates or {CERT_URL: identity().pem})
        self.calls: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.certificates[url]


def paypal_time(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(
    body: bytes,
    *,
    key: rsa.RSAPrivateKey | None = None,
    webhook_id: str = WEBHOOK_ID,
    cert_url: str = CERT_URL,
    transmission_id: str = "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
    transmission_time: str | None = None,
) -> dict[str, str]:
    """The headers PayPal sends with a webhook, signed like PayPal signs them."""
    key = key or identity().key
    transmission_time = transmission_time or paypal_time()
    message = f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}"
    signature = key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
    return {
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": transmission_time,
        "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
        "PAYPAL-CERT-URL": cert_url,
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
    }


# -- canned PayPal resources (shaped like the OpenAPI specs) ---------------------------------


def money(value: str, currency: str = "USD") -> dict[str, str]:
    return {"currency_code": currency, "value": value}


def capture_json(
    capture_id: str = "3C679366HH908993F",
    *,
    status: str = "COMPLETED",
    value: str = "19.99",
    currency: str = "USD",
    ref: str = "ord_1",
    order_id: str | None = "5O190127TN364715T",
    authorization_id: str | None = None,
) -> dict[str, Any]:
    related: dict[str, str] = {}
    if order_id:
        related["order_id"] = order_id
    if authorization_id:
        related["authorization_id"] = authorization_id
    capture: dict[str, Any] = {
        "id": capture_id,
        "status": status,
        "amount": money(value, currency),
        "final_capture": True,
        "custom_id": ref,
        "invoice_id": ref,
        "create_time": "2026-11-22T00:01:00Z",
        "update_time": "2026-11-22T00:01:00Z",
        "links": [
            {"href": f"{API}/v2/payments/captures/{capture_id}", "rel": "self", "method": "GET"},
            {
                "href": f"{API}/v2/payments/captures/{capture_id}/refund",
                "rel": "refund",
                "method": "POST",
            },
        ],
    }
    if related:
        capture["supplementary_data"] = {"related_ids": related}
    if status == "PENDING":
        capture["status_details"] = {"reason": "PENDING_REVIEW"}
    return capture


def authorization_json(
    authorization_id: str = "0VF52814937998046",
    *,
    status: str = "CREATED",
    value: str = "19.99",
    currency: str = "USD",
    ref: str = "ord_1",
    order_id: str | None = "5O190127TN364715T",
) -> dict[str, Any]:
    authorization: dict[str, Any] = {
        "id": authorization_id,
        "status": status,
        "amount": money(value, currency),
        "custom_id": ref,
        "invoice_id": ref,
        "expiration_time": "2026-12-21T00:00:00Z",
        "create_time": "2026-11-22T00:01:00Z",
        "update_time": "2026-11-22T00:01:00Z",
        "links": [
            {
                "href": f"{API}/v2/payments/authorizations/{authorization_id}",
                "rel": "self",
                "method": "GET",
            }
        ],
    }
    if order_id:
        authorization["supplementary_data"] = {"related_ids": {"order_id": order_id}}
    return authorization


def refund_json(
    refund_id: str = "1JU08902781691411",
    *,
    status: str = "COMPLETED",
    value: str = "5.00",
    currency: str = "USD",
    capture_id: str = "3C679366HH908993F",
    ref: str | None = "ord_1",
) -> dict[str, Any]:
    refund: dict[str, Any] = {
        "id": refund_id,
        "status": status,
        "amount": money(value, currency),
        "create_time": "2026-11-22T00:05:00Z",
        "update_time": "2026-11-22T00:05:00Z",
        "links": [
            {"href": f"{API}/v2/payments/refunds/{refund_id}", "rel": "self", "method": "GET"},
            {"href": f"{API}/v2/payments/captures/{capture_id}", "rel": "up", "method": "GET"},
        ],
    }
    if ref:
        refund["custom_id"] = ref
        refund["invoice_id"] = ref
    return refund


def order_json(
    order_id: str = "5O190127TN364715T",
    *,
    status: str = "PAYER_ACTION_REQUIRED",
    intent: str = "CAPTURE",
    ref: str = "ord_1",
    value: str = "19.99",
    currency: str = "USD",
    captures: list[dict[str, Any]] | None = None,
    authorizations: list[dict[str, Any]] | None = None,
    refunds: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    unit: dict[str, Any] = {
        "reference_id": "default",
        "amount": money(value, currency),
        "custom_id": ref,
        "invoice_id": ref,
    }
    payments: dict[str, Any] = {}
    if captures:
        payments["captures"] = captures
    if authorizations:
        payments["authorizations"] = authorizations
    if refunds:
        payments["refunds"] = refunds
    if payments:
        unit["payments"] = payments
    links = [{"href": f"{API}/v2/checkout/orders/{order_id}", "rel": "self", "method": "GET"}]
    if status in ("CREATED", "PAYER_ACTION_REQUIRED"):
        links.append(
            {
                "href": f"https://www.sandbox.paypal.com/checkoutnow?token={order_id}",
                "rel": "payer-action",
                "method": "GET",
            }
        )
    return {
        "id": order_id,
        "intent": intent,
        "status": status,
        "purchase_units": [unit],
        "create_time": "2026-11-22T00:00:00Z",
        "links": links,
    }


def event_json(
    event_type: str,
    resource: Mapping[str, Any],
    *,
    event_id: str = "WH-2WR32451HC0233532-67976317FL4543714",
    resource_type: str = "capture",
) -> dict[str, Any]:
    return {
        "id": event_id,
        "create_time": "2026-11-22T00:02:00.000Z",
        "resource_type": resource_type,
        "event_version": "1.0",
        "event_type": event_type,
        "summary": f"{event_type} event",
        "resource_version": "2.0",
        "resource": dict(resource),
        "links": [
            {
                "href": f"{API}/v1/notifications/webhooks-events/{event_id}",
                "rel": "self",
                "method": "GET",
            }
        ],
    }


# -- OpenAPI validation --------------------------------------------------------------------


@cache
def _spec(file: str) -> dict[str, Any]:
    return json.loads((REFERENCE_DIR / "paypal" / file).read_text(encoding="utf-8"))


def spec_available() -> bool:
    return (REFERENCE_DIR / "paypal").is_dir()


@cache
def _validator(file: str, schema: str) -> Any:
    import jsonschema

    spec = _spec(file)
    root = {"$ref": f"#/components/schemas/{schema}", "components": spec["components"]}
    return jsonschema.Draft4Validator(root)


def validate(file: str, schema: str, instance: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``instance`` breaks PayPal's schema."""
    _validator(file, schema).validate(instance)


# -- a responses harness for PayPal's API ------------------------------------------------------

Schema = tuple[str, str]  # (spec file, component schema name)


@dataclass
class Call:
    method: str
    path: str
    headers: Mapping[str, str]
    body: Any


@dataclass
class PayPalMock:
    """Registers PayPal endpoints on a ``responses.RequestsMock``; checks bodies against the
    specs (when present) and records every API call (the OAuth token call apart)."""

    rsps: responses.RequestsMock
    base: str = API
    calls: list[Call] = field(default_factory=list)
    token_calls: int = 0
    validate_bodies: bool = field(default_factory=spec_available)
    registered: list[tuple[str, str]] = field(default_factory=list)

    def token(self, *, status: int = 200, access_token: str = ACCESS_TOKEN) -> None:
        def reply(request: Any) -> tuple[int, dict[str, str], str]:
            self.token_calls += 1
            if status != 200:
                body = {
                    "error": "invalid_client",
                    "error_description": "Client Authentication failed",
                }
                return status, {}, json.dumps(body)
            body = {
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": access_token,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": 32400,
                "nonce": "2026-11-22T00:00:00Zabc",
            }
            return 200, {}, json.dumps(body)

        self.rsps.add_callback(responses.POST, f"{self.base}/v1/oauth2/token", callback=reply)

    def on(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        status: int = 200,
        request_schema: Schema | None = None,
        response_schema: Schema | None = None,
        headers: Mapping[str, str] | None = None,
        check: Callable[[Call], None] | None = None,
    ) -> None:
        if response_schema and self.validate_bodies and 200 <= status < 300 and body:
            validate(*response_schema, body)

        def reply(request: Any) -> tuple[int, dict[str, str], str]:
            sent = json.loads(request.body) if request.body else None
            call = Call(method, path, dict(request.headers), sent)
            self.calls.append(call)
            if request_schema and self.validate_bodies:
                validate(*request_schema, sent)
            if check is not None:
                check(call)
            return status, dict(headers or {}), "" if body is None else json.dumps(body)

        self.registered.append((method, path))
        self.rsps.add_callback(method, f"{self.base}{path}", callback=reply)

    def assert_all_called(self) -> None:
        """Every registered API endpoint was called (the token endpoint may be cached)."""
        called = {(call.method, call.path) for call in self.calls}
        missing = [endpoint for endpoint in self.registered if endpoint not in called]
        assert not missing, f"registered but never called: {missing}"

    def last(self, path: str) -> Call:
        matching = [call for call in self.calls if call.path == path]
        assert matching, f"no call to {path}; calls: {[c.path for c in self.calls]}"
        return matching[-1]


ORDERS = "checkout_orders_v2.json"
PAYMENTS = "payments_payment_v2.json"
SUBSCRIPTIONS = "billing_subscriptions_v1.json"
DISPUTES = "customer_disputes_v1.json"
INVOICING = "invoicing_v2.json"
WEBHOOKS = "notifications_webhooks_v1.json"


def provider_settings(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "webhook_id": WEBHOOK_ID,
        "cert_fetcher": CertServer(),
    }
    settings.update(overrides)
    return settings
