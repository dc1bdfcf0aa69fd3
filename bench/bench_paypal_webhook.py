"""PayPal webhook throughput: ``PayPalProvider.parse_webhook`` with a cached certificate.

Offline verification (CRC32 + SHA256withRSA against a 2048-bit certificate generated here,
served by an injected fetcher, fetched once and cached) followed by normalization of a
PAYMENT.CAPTURE.COMPLETED event. Printed, not asserted.

    python bench/bench_paypal_webhook.py [--events 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import time
import zlib
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from paygate.providers._paypal_verify import OfflineVerifier
from paygate.providers.paypal import PayPalProvider

WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-bench"


def _certificate() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PayPal, Inc."),
            x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.paypal.com"),
        ]
    )
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def _deliveries(key: rsa.RSAPrivateKey, count: int) -> list[tuple[bytes, dict[str, str]]]:
    sent = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    deliveries = []
    for n in range(count):
        event = {
            "id": f"WH-BENCH-{n:08d}",
            "create_time": sent,
            "resource_type": "capture",
            "event_type": "PAYMENT.CAPTURE.COMPLETED",
            "summary": "Payment completed for $ 19.99 USD",
            "resource_version": "2.0",
            "resource": {
                "id": f"3C{n:015d}",
                "status": "COMPLETED",
                "amount": {"currency_code": "USD", "value": "19.99"},
                "final_capture": True,
                "custom_id": f"ord_{n}",
                "invoice_id": f"ord_{n}",
                "create_time": sent,
                "supplementary_data": {"related_ids": {"order_id": f"5O{n:015d}"}},
                "links": [],
            },
        }
        body = json.dumps(event).encode()
        transmission_id = f"69cd13f0-d67a-11e5-baa3-{n:012d}"
        message = f"{transmission_id}|{sent}|{WEBHOOK_ID}|{zlib.crc32(body)}".encode()
        signature = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        headers = {
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": sent,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-CERT-URL": CERT_URL,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }
        deliveries.append((body, headers))
    return deliveries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    key, pem = _certificate()
    fetches: list[str] = []

    def fetcher(url: str) -> bytes:
        fetches.append(url)
        return pem

    provider = PayPalProvider(
        client_id="bench", client_secret="bench-secret", webhook_id=WEBHOOK_ID,
        cert_fetcher=fetcher,
    )  # fmt: skip
    verifier = OfflineVerifier(webhook_id=WEBHOOK_ID, fetch=fetcher, tolerance=timedelta(minutes=5))
    deliveries = _deliveries(key, args.events)

    started = time.perf_counter()
    provider.parse_webhook(*deliveries[0])  # first call: fetch + load + verify
    first_ms = (time.perf_counter() - started) * 1000
    verifier.verify(*deliveries[0])

    def rate(run: object) -> float:
        rates = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for body, headers in deliveries:
                run(body, headers)  # type: ignore[operator]
            rates.append(len(deliveries) / (time.perf_counter() - start))
        return statistics.median(rates)

    full = rate(provider.parse_webhook)
    verify_only = rate(verifier.verify)
    print(f"events: {args.events} PAYMENT.CAPTURE.COMPLETED deliveries x {args.rounds} rounds")
    print(f"first parse_webhook (certificate fetch + load): {first_ms:.2f} ms")
    print(f"parse_webhook, cached certificate: {full:,.0f} events/s (median)")
    print(f"  of which verification alone:     {verify_only:,.0f} events/s (median)")
    print(f"certificate fetches: {len(fetches)} (one per verifier: cached after the first)")


if __name__ == "__main__":
    main()
