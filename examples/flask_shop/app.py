"""A small but complete Flask shop on paygate.

Run it against the sandbox (no account needed; two terminals, from the repository root)::

    paygate sandbox --forward-to http://127.0.0.1:5000/webhooks/paygate
    flask --app examples.flask_shop run

With no ``PAYGATE_PROVIDER`` set, the shop asks the sandbox for its settings
(`paygate.sandbox.connect.gateway_from_env`) and talks to it as to Stripe. On a real
provider by configuration alone: ``PAYGATE_PROVIDER=stripe``,
``PAYGATE_STRIPE_API_KEY=...``, ``PAYGATE_STRIPE_WEBHOOK_SECRET=...``. The shop never reads,
logs or shows a secret itself; `paygate.Gateway.from_env` keeps them as ``SecretStr``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from examples.flask_shop.orders import Order, OrderBook
from flask import Flask, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from paygate import (
    EventType,
    Gateway,
    LineItem,
    Money,
    PaygateError,
    Payment,
    WebhookEvent,
    WebhookVerificationError,
)
from paygate.sandbox.connect import gateway_from_env

log = logging.getLogger("examples.flask_shop")

#: sku -> (name, unit price)
CATALOGUE: dict[str, tuple[str, Money]] = {
    "tee": ("paygate T-shirt", Money.of("19.99", "USD")),
    "mug": ("paygate mug", Money.of("8.50", "USD")),
}


def log_receipt(order: Order) -> None:
    """Stand-in for the e-mail a real shop sends."""
    log.info("receipt sent for order %s (%s)", order.id, order.total)


def _utc(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def create_app(
    gateway: Gateway | None = None,
    *,
    db_path: str | Path | None = None,
    send_receipt: Callable[[Order], None] = log_receipt,
) -> Flask:
    """The shop as a Flask app. Nothing global: each call builds its own app and handlers.

    ``gateway`` defaults to `Gateway.from_env` (``PAYGATE_PROVIDER``,
    ``PAYGATE_STORE_URL``, ``PAYGATE_<PROVIDER>_<SETTING>``), or to the running sandbox when
    no provider is configured; ``db_path`` (the order table) defaults to ``$SHOP_DB`` or
    ``shop.db``.
    """
    gw = gateway if gateway is not None else gateway_from_env()
    orders = OrderBook(db_path or os.environ.get("SHOP_DB", "shop.db"))
    app = Flask(__name__)
    app.extensions["paygate"] = gw
    app.add_template_filter(_utc, "utc")

    # --8<-- [start:fulfil]
    @gw.on(EventType.PAYMENT_SUCCEEDED)
    def fulfil(event: WebhookEvent) -> None:
        """Told the payment.succeeded fact once, by whichever gateway call brings it (the
        webhook or the customer's return). If it raises, the fact stays pending and is
        retried (the next call, or gw.dispatch_pending()); OrderBook.fulfil makes a retry
        send one receipt."""
        order = orders.get(event.order_id) if event.order_id else None
        if order is None:
            log.warning("payment succeeded for an unknown order %s", event.order_id)
            return
        paid = event.object.amount_captured if isinstance(event.object, Payment) else None
        if paid is not None and paid != order.total:
            log.error("order %s: paid %s, expected %s; not fulfilled", order.id, paid, order.total)
            return
        orders.fulfil(order.id, send_receipt)

    # --8<-- [end:fulfil]

    def order_page(order: Order, notice: str = "", status: int = 200) -> ResponseReturnValue:
        payment = gw.payment_for_order(order.id)
        history = gw.history(payment.id) if payment is not None else []
        page = render_template(
            "order.html",
            order=order,
            payment=payment,
            history=history,
            notice=notice,
            catalogue=CATALOGUE,
        )
        return page, status

    def find_order(order_id: str) -> Order:
        order = orders.get(order_id)
        if order is None:
            abort(404)
        return order

    @app.get("/")
    def index() -> ResponseReturnValue:
        return render_template("index.html", catalogue=CATALOGUE, notice="")

    # --8<-- [start:checkout]
    @app.post("/checkout")
    def checkout() -> ResponseReturnValue:
        sku = request.form.get("sku", "")
        quantity = request.form.get("quantity", "1")
        if sku not in CATALOGUE or not quantity.isdigit() or not 1 <= int(quantity) <= 10:
            return "unknown item or bad quantity", 400
        name, unit_price = CATALOGUE[sku]
        # order first: its id is what paygate derives the idempotency key from
        order = orders.create(sku, int(quantity), unit_price * int(quantity))
        session = gw.create_checkout(
            order_id=order.id,
            line_items=[LineItem(name=name, unit_amount=unit_price, quantity=int(quantity))],
            success_url=url_for("checkout_return", order_id=order.id, _external=True),
            cancel_url=url_for("checkout_cancel", order_id=order.id, _external=True),
        )
        assert session.url is not None
        return redirect(session.url, code=303)

    @app.get("/orders/<order_id>/return")
    def checkout_return(order_id: str) -> ResponseReturnValue:
        order = find_order(order_id)
        # the query string only says which payment to look up; paygate asks the provider
        try:
            payment = gw.handle_return(request.args.to_dict())
        except PaygateError:
            # not paid yet, or ids the provider does not know: show what the webhooks have
            # told us so far (the order page), and never an error page to the customer
            log.warning("order %s: return could not be confirmed", order_id, exc_info=True)
            return order_page(order, "Your payment is not confirmed yet.")
        if payment.order_id != order.id:
            return order_page(order, "That payment is not for this order.", 400)
        return order_page(find_order(order_id), f"Payment {payment.status}.")

    @app.get("/orders/<order_id>/cancel")
    def checkout_cancel(order_id: str) -> ResponseReturnValue:
        # nothing to undo: the order stays pending and can be paid later
        return order_page(find_order(order_id), "Checkout canceled; your order is still open.")

    # --8<-- [end:checkout]

    @app.get("/orders/<order_id>")
    def show_order(order_id: str) -> ResponseReturnValue:
        return order_page(find_order(order_id))

    @app.post("/orders/<order_id>/refund")
    def refund(order_id: str) -> ResponseReturnValue:
        # an admin action: put it behind your staff login (and CSRF protection) in real life
        order = find_order(order_id)
        payment = gw.payment_for_order(order.id)
        if payment is None:
            return order_page(order, "Nothing to refund.", 409)
        try:
            gw.refund(payment.id)  # amount=None: all that is left
        except PaygateError as exc:
            return order_page(order, f"Refund refused: {exc}", 409)
        return redirect(url_for("show_order", order_id=order.id), code=303)

    # --8<-- [start:webhook]
    @app.post("/webhooks/paygate")
    def webhook() -> ResponseReturnValue:
        # The RAW bytes, exactly as signed. request.get_json() (or touching request.form
        # first) would parse and lose them, and the signature would no longer match.
        body = request.get_data()
        try:
            result = gw.handle_webhook(body, dict(request.headers))
        except WebhookVerificationError as exc:
            # 400 and no details: the sender of a forged request learns nothing
            log.warning("webhook rejected: %s", type(exc).__name__)
            return {"error": "invalid webhook"}, 400
        except Exception:
            # a handler failed: 5xx makes the provider deliver the event again later
            log.exception("webhook handling failed")
            return {"error": "webhook handling failed"}, 500
        # 200 for a first delivery and for a duplicate alike, or the provider keeps retrying;
        # 409 while another worker holds the event (in_progress): if that worker dies, only
        # the provider's retry of this non-2xx answer gets the event finished
        return {"received": result.acknowledged, "duplicate": result.duplicate}, result.http_status

    # --8<-- [end:webhook]

    return app
