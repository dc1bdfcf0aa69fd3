"""Customers and saved payment methods, as flows (see ``_sansio``).

Reading, changing and removing customers and saved methods are single provider calls
through the retry policy. Saving one (``create_setup``) is a creating call: it runs
through the idempotency engine like ``create_customer``, each call its own setup unless
the caller names an ``idempotency_key``; a replay asks the provider again with the same
key (the provider answers with the same setup, its client secret included, which paygate
never stores). ``complete_setup`` derives its key from the return's own parameters, so a
second return of the same customer (a reload) makes no second payment token.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from paygate import _idempotency as idem
from paygate._observe import fields
from paygate.errors import NotSupported, ValidationError
from paygate.gateway._idempotency import IdempotencyFlows
from paygate.gateway._sansio import Flow, provider
from paygate.models import Customer, PaymentMethod, SetupSession, SetupUsage
from paygate.provider import PaymentMethodsProvider, implements
from paygate.stores import OperationRecord

__all__ = ["PaymentMethodFlows", "require_payment_methods"]

_log = logging.getLogger("paygate")


def require_payment_methods(adapter: Any, operation: str) -> None:
    """[`NotSupported`][paygate.errors.NotSupported] for an adapter written before these
    operations (one that is not a
    [`PaymentMethodsProvider`][paygate.provider.PaymentMethodsProvider]): the built-in
    adapters all are, and refuse what their provider cannot do themselves."""
    if not implements(adapter, PaymentMethodsProvider):
        name = getattr(adapter, "name", type(adapter).__name__)
        raise NotSupported(
            f"{name} does not support {operation}", provider=name, code="not_supported"
        )


class PaymentMethodFlows(IdempotencyFlows):
    """The customer and saved-payment-method operations, each a flow."""

    def _get_customer(self, customer_id: str) -> Flow[Customer]:
        self._check_id(customer_id, "customer_id")
        return (
            yield from self._call(
                "get_customer", lambda: provider(PaymentMethodsProvider.get_customer, customer_id)
            )
        )

    def _update_customer(
        self,
        customer_id: str,
        *,
        email: str | None,
        name: str | None,
        metadata: Mapping[str, str] | None,
    ) -> Flow[Customer]:
        self._check_id(customer_id, "customer_id")
        if email is None and name is None and not metadata:
            raise ValidationError("update_customer needs an email, a name or metadata to change")
        customer = yield from self._call(
            "update_customer",
            lambda: provider(
                PaymentMethodsProvider.update_customer,
                customer_id,
                email=email,
                name=name,
                metadata=metadata,
            ),
        )
        _log.info("update_customer %s", customer_id, extra=fields(operation="update_customer"))
        return customer

    def _list_customers(self, *, email: str | None, page_size: int) -> Flow[Iterator[Customer]]:
        if email is not None:
            self._check_id(email, "email")
        return (
            yield from self._call(
                "list_customers",
                lambda: provider(
                    PaymentMethodsProvider.list_customers, email=email, page_size=page_size
                ),
            )
        )

    def _delete_customer(self, customer_id: str) -> Flow[None]:
        self._check_id(customer_id, "customer_id")
        yield from self._call(
            "delete_customer",
            lambda: provider(PaymentMethodsProvider.delete_customer, customer_id),
        )
        _log.info("delete_customer %s", customer_id, extra=fields(operation="delete_customer"))

    def _create_setup(
        self,
        *,
        customer_id: str,
        return_url: str | None,
        cancel_url: str | None,
        usage: SetupUsage,
        payment_method: str | None,
        verification_token: str | None,
        idempotency_key: str | None,
    ) -> Flow[SetupSession]:
        self._check_id(customer_id, "customer_id")
        for url, what in ((return_url, "return_url"), (cancel_url, "cancel_url")):
            if url is not None:
                self._check_id(url, what)
        if usage not in ("off_session", "on_session"):
            raise ValidationError(f"usage must be 'off_session' or 'on_session', got {usage!r}")
        identity = idempotency_key or f"call-{uuid.uuid4().hex}"
        method_digest = None if payment_method is None else idem.digest(payment_method)

        def call(key: str) -> Flow[SetupSession]:
            return provider(
                PaymentMethodsProvider.create_setup,
                customer_id=customer_id, idempotency_key=key, return_url=return_url,
                cancel_url=cancel_url, usage=usage, payment_method=payment_method,
                verification_token=verification_token,
            )  # fmt: skip

        def replay(op: OperationRecord) -> Flow[SetupSession | None]:
            # asked again with the same key: the provider's own replay carries the
            # client secret, which the store never keeps
            return None
            yield  # a flow with no effect

        setup = yield from self._idempotent(
            scope=f"create_setup:{identity}",
            operation="create_setup",
            fingerprint=idem.fingerprint(customer=customer_id, usage=usage, return_url=return_url),
            key_for=lambda n: idem.provider_key("setup", identity, n),
            call=call,
            replay=replay,
            result_id=lambda s: s.id,
            method_digest=method_digest,
        )
        _log.info(
            "create_setup customer=%s -> %s %s",
            customer_id,
            setup.id,
            setup.status.value,
            extra=fields(operation="create_setup"),
        )
        return setup

    def _complete_setup(self, params: Mapping[str, str]) -> Flow[SetupSession]:
        if not isinstance(params, Mapping):
            raise ValidationError(f"params must be a mapping, got {type(params).__name__}")
        # the same return (a reload, a second tab) gives the same key: one payment token
        key = idem.provider_key("complete_setup", idem.digest(sorted(params.items())))
        setup = yield from self._call(
            "complete_setup",
            lambda: provider(PaymentMethodsProvider.complete_setup, params, idempotency_key=key),
        )
        _log.info(
            "complete_setup %s -> %s",
            setup.id,
            setup.status.value,
            extra=fields(operation="complete_setup"),
        )
        return setup

    def _list_payment_methods(self, customer_id: str) -> Flow[list[PaymentMethod]]:
        self._check_id(customer_id, "customer_id")
        return (
            yield from self._call(
                "list_payment_methods",
                lambda: provider(PaymentMethodsProvider.list_payment_methods, customer_id),
            )
        )

    def _get_payment_method(self, payment_method_id: str) -> Flow[PaymentMethod]:
        self._check_id(payment_method_id, "payment_method_id")
        return (
            yield from self._call(
                "get_payment_method",
                lambda: provider(PaymentMethodsProvider.get_payment_method, payment_method_id),
            )
        )

    def _set_default_payment_method(
        self, customer_id: str, payment_method_id: str
    ) -> Flow[Customer]:
        self._check_id(customer_id, "customer_id")
        self._check_id(payment_method_id, "payment_method_id")
        customer = yield from self._call(
            "set_default_payment_method",
            lambda: provider(
                PaymentMethodsProvider.set_default_payment_method, customer_id, payment_method_id
            ),
        )
        _log.info(
            "set_default_payment_method %s -> %s",
            customer_id,
            payment_method_id,
            extra=fields(operation="set_default_payment_method"),
        )
        return customer

    def _detach_payment_method(self, payment_method_id: str) -> Flow[None]:
        self._check_id(payment_method_id, "payment_method_id")
        yield from self._call(
            "detach_payment_method",
            lambda: provider(PaymentMethodsProvider.detach_payment_method, payment_method_id),
        )
        _log.info(
            "detach_payment_method %s",
            payment_method_id,
            extra=fields(operation="detach_payment_method"),
        )
