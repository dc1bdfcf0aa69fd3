"""Offline verification of PayPal webhook signatures, with ``cryptography``.

Why not the SDK: ``paypalrestsdk.WebhookEvent.verify`` relies on pyOpenSSL APIs that current
pyOpenSSL removed (it always fails), and it downloads the certificate from whatever URL the
request's ``PAYPAL-CERT-URL`` header names, so an attacker could sign with their own key.

PayPal signs ``transmission_id|transmission_time|webhook_id|crc32(body)`` (CRC32 as an
unsigned decimal) with SHA256withRSA. Here the certificate URL must be https on one of
PayPal's API hosts (checked before any request), the certificate is cached per URL, its
validity dates are checked on every use, its subject must be PayPal's, and the transmission
time must be within the tolerance of now.
"""

from __future__ import annotations

import base64
import binascii
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from paygate._signing import header_values
from paygate.errors import (
    InvalidSignature,
    MissingSignature,
    TimestampOutsideTolerance,
    WebhookVerificationError,
)

__all__ = [
    "ALLOWED_CERT_HOSTS",
    "CertFetcher",
    "OfflineVerifier",
    "WebhookHeaders",
    "check_cert_url",
    "fetch_certificate",
    "read_headers",
]

#: Hosts PayPal serves its webhook signing certificates from (its REST API hosts).
ALLOWED_CERT_HOSTS: frozenset[str] = frozenset(
    {
        "api.paypal.com",
        "api-m.paypal.com",
        "api.sandbox.paypal.com",
        "api-m.sandbox.paypal.com",
    }
)
_CERT_PATH_PREFIX = "/v1/notifications/certs/"
#: Subject PayPal's signing certificates carry (CN messageverificationcerts.paypal.com).
_PAYPAL_CN_SUFFIX = ".paypal.com"
_PAYPAL_ORGANIZATION_PREFIX = "PayPal"
_SUPPORTED_ALGORITHM = "SHA256withRSA"
_CACHE_SIZE = 32
_MAX_CERT_BYTES = 64 * 1024

#: url -> PEM bytes of the certificate (chain) at that URL
CertFetcher = Callable[[str], bytes]


def fetch_certificate(url: str, *, timeout: float = 10.0) -> bytes:
    """Default fetcher: GET over https, no redirects (a redirect could leave PayPal's hosts)."""
    with requests.get(url, timeout=timeout, allow_redirects=False, stream=True) as response:
        if response.status_code != 200:
            raise InvalidSignature(
                f"could not fetch the PayPal certificate at {url}: HTTP {response.status_code}"
            )
        pem = response.raw.read(_MAX_CERT_BYTES + 1, decode_content=True)
    if len(pem) > _MAX_CERT_BYTES:  # a certificate chain is a few kB
        raise InvalidSignature(f"the answer at {url} is too large to be a certificate")
    return bytes(pem)


@dataclass(frozen=True, slots=True)
class WebhookHeaders:
    transmission_id: str
    transmission_time: str
    transmission_sig: str
    cert_url: str
    auth_algo: str


_HEADER_NAMES = {
    "paypal-transmission-id": "transmission_id",
    "paypal-transmission-time": "transmission_time",
    "paypal-transmission-sig": "transmission_sig",
    "paypal-cert-url": "cert_url",
    "paypal-auth-algo": "auth_algo",
}


def read_headers(headers: Mapping[str, str]) -> WebhookHeaders:
    """PayPal's five signature headers, matched case-insensitively; all are required.

    Names and values may be ``str`` or ``bytes``; a value that is not ASCII text (a lone
    surrogate, say) is an [`InvalidSignature`][paygate.errors.InvalidSignature].
    """
    found = {
        _HEADER_NAMES[name]: value.strip()
        for name, value in header_values(headers, _HEADER_NAMES).items()
        if value.strip()
    }
    missing = [name.upper() for name, field in _HEADER_NAMES.items() if field not in found]
    if missing:
        raise MissingSignature(f"PayPal webhook is missing the header(s) {', '.join(missing)}")
    return WebhookHeaders(**found)


def check_cert_url(url: str) -> None:
    """Refuse any certificate URL that is not https on PayPal's API hosts."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port that is not a number
    except ValueError:
        port = -1
    if (
        port == -1
        or parts.scheme != "https"
        or (parts.hostname or "").lower() not in ALLOWED_CERT_HOSTS
        or port not in (None, 443)
        or parts.username is not None
        or not parts.path.startswith(_CERT_PATH_PREFIX)
    ):
        raise InvalidSignature(
            f"refusing PAYPAL-CERT-URL {url!r}: certificates are only fetched over https "
            f"from {', '.join(sorted(ALLOWED_CERT_HOSTS))} under {_CERT_PATH_PREFIX}"
        )


def parse_transmission_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise InvalidSignature(f"PAYPAL-TRANSMISSION-TIME {value!r:.40} has no time zone")
        # OverflowError: a time at the edge of the calendar (0001-01-01T00:00:00+01:00)
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise InvalidSignature(
            f"PAYPAL-TRANSMISSION-TIME {value!r:.40} is not an ISO 8601 time in range"
        ) from None


def signed_message(
    transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> bytes:
    """The string PayPal signs; ``zlib.crc32`` is already unsigned on Python 3."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}".encode()


@dataclass(frozen=True, slots=True)
class _Certificate:
    public_key: rsa.RSAPublicKey
    not_before: datetime
    not_after: datetime


def _load_certificate(pem: bytes, url: str, *, local: bool = False) -> _Certificate:
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise InvalidSignature(f"the certificate at {url} is not PEM") from None
    leaf = chain[0]
    if local:  # the local sandbox's own certificate: it is not PayPal's and says so
        key = leaf.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise InvalidSignature(f"the certificate at {url} does not hold an RSA key")
        return _Certificate(key, leaf.not_valid_before_utc, leaf.not_valid_after_utc)
    common_names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    organizations = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    cn = str(common_names[0].value) if common_names else ""
    org = str(organizations[0].value) if organizations else ""
    if not (cn.lower().endswith(_PAYPAL_CN_SUFFIX) and org.startswith(_PAYPAL_ORGANIZATION_PREFIX)):
        raise InvalidSignature(
            f"the certificate at {url} is not PayPal's (subject {leaf.subject.rfc4514_string()!r})"
        )
    if len(chain) > 1:
        # PayPal serves the chain after the leaf: the leaf must be issued by the next one
        try:
            leaf.verify_directly_issued_by(chain[1])
        except (ValueError, TypeError, _CryptoInvalidSignature):
            raise InvalidSignature(f"the certificate at {url} is not issued by its chain") from None
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidSignature(f"the certificate at {url} does not hold an RSA key")
    return _Certificate(key, leaf.not_valid_before_utc, leaf.not_valid_after_utc)


class OfflineVerifier:
    """Verifies PayPal's SHA256withRSA webhook signatures against a cached certificate."""

    def __init__(
        self,
        *,
        webhook_id: str,
        fetch: CertFetcher,
        tolerance: timedelta,
        clock: Callable[[], datetime] | None = None,
        local_cert_prefix: str | None = None,
    ) -> None:
        """``local_cert_prefix``: certificates under this URL (the ``base_url`` of a local
        sandbox on this machine, never a remote host) are trusted as they are."""
        self._local_prefix = local_cert_prefix
        self._webhook_id = webhook_id
        self._fetch = fetch
        self._tolerance = tolerance
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._cache: dict[str, _Certificate] = {}
        self._lock = threading.Lock()

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        signature = read_headers(headers)
        if signature.auth_algo != _SUPPORTED_ALGORITHM:
            raise InvalidSignature(
                f"unsupported PAYPAL-AUTH-ALGO {signature.auth_algo!r}; "
                f"expected {_SUPPORTED_ALGORITHM}"
            )
        now = self._clock()
        sent_at = parse_transmission_time(signature.transmission_time)
        if abs(now - sent_at) > self._tolerance:
            raise TimestampOutsideTolerance(
                f"PAYPAL-TRANSMISSION-TIME {signature.transmission_time} is more than "
                f"{int(self._tolerance.total_seconds())}s from now"
            )
        local = bool(self._local_prefix) and signature.cert_url.startswith(str(self._local_prefix))
        if not local:
            check_cert_url(signature.cert_url)
        certificate = self._certificate(signature.cert_url, local=local)
        if not certificate.not_before <= now <= certificate.not_after:
            raise InvalidSignature(
                f"the PayPal certificate at {signature.cert_url} is not valid now "
                f"(valid {certificate.not_before:%Y-%m-%d} to {certificate.not_after:%Y-%m-%d})"
            )
        try:
            raw_signature = base64.b64decode(signature.transmission_sig, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSignature("PAYPAL-TRANSMISSION-SIG is not base64") from None
        message = signed_message(
            signature.transmission_id, signature.transmission_time, self._webhook_id, body
        )
        try:
            certificate.public_key.verify(
                raw_signature, message, padding.PKCS1v15(), hashes.SHA256()
            )
        except _CryptoInvalidSignature:
            raise InvalidSignature(
                "PayPal webhook signature does not match the body, transmission and webhook id"
            ) from None

    def _certificate(self, url: str, *, local: bool = False) -> _Certificate:
        with self._lock:
            cached = self._cache.get(url)
        if cached is not None:
            return cached
        try:
            pem = self._fetch(url)
        except WebhookVerificationError:
            raise
        except Exception as exc:  # any fetch failure means "cannot verify", never "valid"
            raise InvalidSignature(
                f"could not fetch the PayPal certificate at {url}: {type(exc).__name__}"
            ) from None
        certificate = _load_certificate(pem, url, local=local)
        with self._lock:
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[url] = certificate
        return certificate
