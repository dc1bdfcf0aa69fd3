"""paygate sandbox: requests/s of the PayPal and Square faces, and the memory they take.

The sandbox runs as ``paygate sandbox --port 0`` in its own process (``bench_sandbox``'s
``start_process``), from one client thread:

* PayPal ``POST /paypal/v2/checkout/orders`` with a ``vault_id`` (the order is captured at
  once: an engine payment, its capture and two events), each with a ``PayPal-Request-Id``;
* Square ``POST /square/v2/payments`` (completed at once, one event), each with its
  ``idempotency_key``.

Printed, not asserted.

    python bench/bench_sandbox_paypal_square.py [--n 1000]
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sandbox import _rss_mib, start_process  # a sibling script


def paypal_orders(url: str, n: int) -> float:
    basic = base64.b64encode(b"bench:bench").decode()
    token = httpx.post(
        f"{url}/paypal/v1/oauth2/token",
        headers={"Authorization": f"Basic {basic}"},
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    body = {
        "intent": "CAPTURE",
        "purchase_units": [{"amount": {"currency_code": "USD", "value": "20.00"}}],
        "payment_source": {"paypal": {"vault_id": "paypal_balance"}},
    }
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        started = time.perf_counter()
        for i in range(n):
            answer = client.post(
                "/paypal/v2/checkout/orders", json=body, headers={"PayPal-Request-Id": f"b-{i}"}
            )
            if answer.status_code != 201:
                raise SystemExit(f"PayPal answered {answer.status_code}: {answer.text[:200]}")
        return n / (time.perf_counter() - started)


def square_payments(url: str, n: int) -> float:
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer bench"}) as client:
        started = time.perf_counter()
        for i in range(n):
            body = {
                "source_id": "cnon:card-nonce-ok",
                "idempotency_key": f"bench-{i}",
                "amount_money": {"amount": 2000, "currency": "USD"},
                "location_id": "BENCH",
            }
            answer = client.post("/square/v2/payments", json=body)
            if answer.status_code != 200:
                raise SystemExit(f"Square answered {answer.status_code}: {answer.text[:200]}")
        return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="requests per measurement")
    args = parser.parse_args()
    process, url, _ = start_process()
    try:
        print(f"RSS after start: {_rss_mib(process.pid):.1f} MiB")
        rate = paypal_orders(url, args.n)
        print(f"POST /paypal/v2/checkout/orders (vault_id, captured), 1 client: {rate:.0f} req/s")
        rate = square_payments(url, args.n)
        print(f"POST /square/v2/payments (completed), 1 client: {rate:.0f} req/s")
        print(f"RSS after {2 * args.n} payments: {_rss_mib(process.pid):.1f} MiB")
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


if __name__ == "__main__":
    main()
