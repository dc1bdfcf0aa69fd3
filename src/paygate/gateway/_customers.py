"""Customers, subscriptions and invoices, as flows (see ``_sansio``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from paygate import _idempotency as idem
from paygate._observe import fields
from paygate.gateway._base import ENDED_SUBSCRIPTION
from paygate.gateway._idempotency import IdempotencyFlows
from paygate.gateway._sansio import Flow, provider
from paygate.models import Customer, Invoice, LineItem, Subscription
from paygate.provider import PaymentProvider
from paygate.stores import OperationRecord

_log = logging.getLogger("paygate")


class CustomerFlows(IdempotencyFlows):
    """The customer, subscription and invoice operations, each a flow."""

    def _create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        metadata: Mapping[str, str] | None,
        idempotency_key: str | None,
    ) -> Flow[Customer]:
        # a fresh identity per call unless the caller names one
        identity = idempotency_key or f"call-{uuid.uuid4().hex}"

        def call(key: str) -> Flow[Customer]:
            return provider(
                PaymentProvider.create_customer,
                email=email, name=name, idempotency_key=key, metadata=metadata,
            )  # fmt: skip

        customer = yield from self._idempotent(
            scope=f"create_customer:{identity}",
            operation="create_customer",
            fingerprint=idem.fingerprint(email=email, name=name, metadata=dict(metadata or {})),
            key_for=lambda n: idem.provider_key("customer", identity, n),
            call=call,
            replay=self._replay_stored(Customer),
            result_id=lambda c: c.id,
        )
        _log.info(
            "create_customer -> %s",
            customer.id,
            extra=fields(provider=self._provider_name, operation="create_customer"),
        )
        return customer

    def _create_subscription(
        self,
        *,
        customer_id: str,
        price_id: str,
        metadata: Mapping[str, str] | None,
        idempotency_key: str | None,
        trial_days: int | None = None,
        trial_end: datetime | None = None,
        quantity: int = 1,
    ) -> Flow[Subscription]:
        self._check_id(customer_id, "customer_id")
        self._check_id(price_id, "price_id")
        identity = idempotency_key or f"{customer_id}:{price_id}"
        # trials and seats travel only when asked for: adapters without them keep working
        extra: dict[str, object] = {}
        if trial_days is not None:
            extra["trial_days"] = trial_days
        if trial_end is not None:
            extra["trial_end"] = trial_end
        if quantity != 1:
            extra["quantity"] = quantity

        def call(key: str) -> Flow[Subscription]:
            return provider(
                PaymentProvider.create_subscription,
                customer_id=customer_id, price_id=price_id, idempotency_key=key,
                metadata=metadata, **extra,
            )  # fmt: skip

        def replay(op: OperationRecord) -> Flow[Subscription | None]:
            if op.result_id is None:
                return None
            subscription_id = op.result_id
            return (
                yield from self._call(
                    "get_subscription",
                    lambda: provider(PaymentProvider.get_subscription, subscription_id),
                )
            )

        def attempt_over(op: OperationRecord) -> Flow[bool]:
            current = yield from replay(op)
            return current is not None and current.status in ENDED_SUBSCRIPTION

        subscription = yield from self._idempotent(
            scope=f"create_subscription:{identity}",
            operation="create_subscription",
            fingerprint=idem.fingerprint(customer=customer_id, price=price_id),
            key_for=lambda n: idem.provider_key(customer_id, "subscription", price_id, n),
            call=call,
            replay=replay,
            result_id=lambda s: s.id,
            attempt_over=attempt_over,
        )
        _log.info("create_subscription customer=%s price=%s -> %s %s", customer_id, price_id,
                  subscription.id, subscription.status.value,
                  extra=fields(provider=self._provider_name, operation="create_subscription",
                               outcome=subscription.status.value))  # fmt: skip
        return subscription

    def _cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool
    ) -> Flow[Subscription]:
        self._check_id(subscription_id, "subscription_id")
        subscription = yield from self._call(
            "cancel_subscription",
            lambda: provider(
                PaymentProvider.cancel_subscription, subscription_id, at_period_end=at_period_end
            ),
        )
        _log.info("cancel_subscription %s at_period_end=%s -> %s", subscription_id,
                  at_period_end, subscription.status.value,
                  extra=fields(provider=self._provider_name, operation="cancel_subscription",
                               outcome=subscription.status.value))  # fmt: skip
        return subscription

    def _create_invoice(
        self,
        *,
        customer_id: str,
        line_items: Sequence[LineItem],
        order_id: str | None,
        description: str | None,
        send: bool,
    ) -> Flow[Invoice]:
        self._check_id(customer_id, "customer_id")
        total = self._check_lines(line_items)
        lines = self._lines_fingerprint(line_items)
        identity = order_id or idem.digest(customer_id, lines)

        def call(key: str) -> Flow[Invoice]:
            return provider(
                PaymentProvider.create_invoice,
                customer_id=customer_id, line_items=line_items, idempotency_key=key,
                order_id=order_id, description=description, send=send,
            )  # fmt: skip

        invoice = yield from self._idempotent(
            scope=f"create_invoice:{identity}",
            operation="create_invoice",
            fingerprint=idem.fingerprint(customer=customer_id, lines=lines),
            key_for=lambda n: idem.provider_key(
                identity, "create_invoice", n, total.currency, total.amount
            ),
            call=call,
            replay=self._replay_stored(Invoice),
            result_id=lambda i: i.id,
            order_id=order_id,
        )
        _log.info("create_invoice customer=%s total=%s -> %s", customer_id, total, invoice.id,
                  extra=fields(provider=self._provider_name, operation="create_invoice",
                               order_id=order_id))  # fmt: skip
        return invoice
