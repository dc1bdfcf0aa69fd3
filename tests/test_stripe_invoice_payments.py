"""An invoice the Stripe adapter charges names its PaymentIntent (``Invoice.payment_id``).

From API version 2025-03-31 Stripe lists an invoice's payments only when asked
(``expand[]=payments``); before, ``payment_intent`` sat on the invoice itself. The adapter
asks where the list exists and not on older versions (where asking is an error). Both faces,
against the sandbox's Stripe wire format (which includes ``payments`` only when expanded).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import paygate
from paygate import LineItem, Money
from paygate.providers.stripe import invoice_read_params
from paygate.sandbox import Sandbox

pytest.importorskip("stripe")

ITEMS = [LineItem(name="Seat", unit_amount=Money(1500, "USD"))]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(port=0) as running:
        yield running


def test_the_payments_list_is_asked_for_only_where_it_exists() -> None:
    assert invoice_read_params(None) == {"expand": ["payments"]}
    assert invoice_read_params("2025-03-31.basil") == {"expand": ["payments"]}
    assert invoice_read_params("2026-01-28.clover") == {"expand": ["payments"]}
    assert invoice_read_params("2024-06-20") == {}


def test_a_charged_invoice_names_its_payment(sandbox: Sandbox) -> None:
    gateway = paygate.connect("stripe", api_key="sk_test_sandbox", base_url=sandbox.base_url,
                              store="memory://")  # fmt: skip
    try:
        customer = gateway.create_customer(email="inv@example.com", name="Inv")
        invoice = gateway.create_invoice(customer_id=customer.id, line_items=ITEMS)
        assert invoice.payment_id is not None and invoice.payment_id.startswith("pi_")
        assert gateway.provider.get_payment(invoice.payment_id).amount == Money(1500, "USD")
    finally:
        gateway.close()


def test_a_charged_invoice_names_its_payment_on_the_async_face(sandbox: Sandbox) -> None:
    async def scenario() -> str | None:
        async with paygate.connect_async(
            "stripe", api_key="sk_test_sandbox", base_url=sandbox.base_url, store="memory://"
        ) as agw:
            customer = await agw.create_customer(email="inv2@example.com", name="Inv")
            invoice = await agw.create_invoice(customer_id=customer.id, line_items=ITEMS)
            return invoice.payment_id

    payment_id = asyncio.run(scenario())
    assert payment_id is not None and payment_id.startswith("pi_")
