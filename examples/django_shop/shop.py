"""The shop's services, built once from Django settings.

Settings (see ``settings.py``):

* ``PAYGATE``: a dict for `paygate.Gateway.from_config`, or ``None`` (the default) for
  `paygate.Gateway.from_env` (``PAYGATE_PROVIDER``, ``PAYGATE_STORE_URL``,
  ``PAYGATE_<PROVIDER>_<SETTING>``), so secrets stay in the environment; with no provider
  configured there, the running sandbox (``paygate sandbox``);
* ``SHOP_DB_PATH``: the SQLite file of the shop's own order table;
* ``SHOP_RECEIPT_SENDER``: dotted path of the callable that sends a receipt.

The shop is built lazily on first use (not at import, so importing the app has no side
effects) and rebuilt when one of these settings changes (``override_settings`` in tests).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string
from examples.django_shop.orders import Order, OrderBook

from paygate import EventType, Gateway, Money, Payment, WebhookEvent
from paygate.sandbox.connect import gateway_from_env

log = logging.getLogger("examples.django_shop")

#: sku -> (name, unit price)
CATALOGUE: dict[str, tuple[str, Money]] = {
    "tee": ("paygate T-shirt", Money.of("19.99", "USD")),
    "mug": ("paygate mug", Money.of("8.50", "USD")),
}

_SETTINGS = frozenset({"PAYGATE", "SHOP_DB_PATH", "SHOP_RECEIPT_SENDER"})


def log_receipt(order: Order) -> None:
    """Stand-in for the e-mail a real shop sends."""
    log.info("receipt sent for order %s (%s)", order.id, order.total)


@dataclass
class Shop:
    gateway: Gateway
    orders: OrderBook
    send_receipt: Callable[[Order], None]

    @classmethod
    def from_settings(cls) -> Shop:
        config = getattr(settings, "PAYGATE", None)
        gateway = Gateway.from_config(config) if config is not None else gateway_from_env()
        shop = cls(
            gateway=gateway,
            orders=OrderBook(settings.SHOP_DB_PATH),
            send_receipt=import_string(
                getattr(settings, "SHOP_RECEIPT_SENDER", "examples.django_shop.shop.log_receipt")
            ),
        )
        gateway.on(EventType.PAYMENT_SUCCEEDED)(shop.fulfil)
        return shop

    # --8<-- [start:fulfil]
    def fulfil(self, event: WebhookEvent) -> None:
        """The PAYMENT_SUCCEEDED handler, told the fact once by whichever call brings it
        (the webhook, the customer's return, an API answer). If it raises, the fact stays
        pending and is retried (the next gateway call, or gw.dispatch_pending() from a
        cron); OrderBook.fulfil makes a retry send one receipt."""
        order = self.orders.get(event.order_id) if event.order_id else None
        if order is None:
            log.warning("payment succeeded for an unknown order %s", event.order_id)
            return
        paid = event.object.amount_captured if isinstance(event.object, Payment) else None
        if paid is not None and paid != order.total:
            log.error("order %s: paid %s, expected %s; not fulfilled", order.id, paid, order.total)
            return
        self.orders.fulfil(order.id, self.send_receipt)

    # --8<-- [end:fulfil]


_shop: Shop | None = None
_lock = threading.Lock()


def get_shop() -> Shop:
    """The process's shop, built from settings on first use."""
    global _shop
    if _shop is None:
        with _lock:
            if _shop is None:
                _shop = Shop.from_settings()
    return _shop


@receiver(setting_changed)
def _rebuild_when_settings_change(*, setting: str, **_: object) -> None:
    global _shop
    if setting in _SETTINGS:
        with _lock:
            old, _shop = _shop, None
        if old is not None:
            old.gateway.close()  # its store's connections
