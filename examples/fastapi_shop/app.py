"""A small but complete FastAPI shop on paygate (a JSON API behind a web front end).

Run it against the sandbox (no account needed; two terminals, from the repository root)::

    paygate sandbox --forward-to http://127.0.0.1:8000/webhooks/paygate
    uvicorn --factory examples.fastapi_shop:create_app

With no ``PAYGATE_PROVIDER`` set, the shop asks the sandbox for its settings
(`paygate.sandbox.connect.gateway_from_env`) and talks to it as to Stripe. On a real
provider by configuration alone: ``PAYGATE_PROVIDER=stripe``,
``PAYGATE_STRIPE_API_KEY=...``, ``PAYGATE_STRIPE_WEBHOOK_SECRET=...``.

The routes are ``async`` and so is the gateway: a ``paygate.AsyncGateway`` awaits the
provider (its async client) and its store (off the loop), so the routes ``await`` it
directly, with no thread pool, and the event loop serves other requests while the provider
answers. Handlers registered with ``gw.on`` run on the event loop: ``fulfil`` below is an
``async def``. The shop's own order table (``orders.py``) is a local SQLite file whose
statements take well under a millisecond; the routes call it inline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from examples.fastapi_shop.orders import Order, OrderBook
from examples.fastapi_shop.pages import add_pages
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from paygate import (
    AsyncGateway,
    EventType,
    LineItem,
    Money,
    PaygateError,
    Payment,
    WebhookEvent,
    WebhookVerificationError,
)
from paygate.sandbox.connect import gateway_from_env

log = logging.getLogger("examples.fastapi_shop")

#: sku -> (name, unit price)
CATALOGUE: dict[str, tuple[str, Money]] = {
    "tee": ("paygate T-shirt", Money.of("19.99", "USD")),
    "mug": ("paygate mug", Money.of("8.50", "USD")),
}


class NewOrder(BaseModel):
    sku: str
    quantity: Annotated[int, Field(ge=1, le=10)] = 1


class DirectPayment(BaseModel):
    #: a token from the provider's card form (Stripe.js, Square Web Payments, ...)
    payment_method: str


def log_receipt(order: Order) -> None:
    """Stand-in for the e-mail a real shop sends."""
    log.info("receipt sent for order %s (%s)", order.id, order.total)


def _utc(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, timezone.utc).isoformat(timespec="seconds")


def create_app(
    gateway: AsyncGateway | None = None,
    *,
    db_path: str | Path | None = None,
    send_receipt: Callable[[Order], None] = log_receipt,
) -> FastAPI:
    """The shop as a FastAPI app. Nothing global: each call builds its own app and handlers.

    ``gateway`` defaults to ``AsyncGateway.from_env()``, or to the running sandbox when no
    provider is configured; ``db_path`` (the order table) to ``$SHOP_DB`` or ``shop.db``.
    """
    gw = gateway if gateway is not None else gateway_from_env(cls=AsyncGateway)
    orders = OrderBook(db_path or os.environ.get("SHOP_DB", "shop.db"))
    app = FastAPI(title="paygate FastAPI shop")
    app.state.gateway = gw
    add_pages(app, orders, CATALOGUE)  # the HTML pages a browser uses (pages.py)

    # --8<-- [start:fulfil]
    @gw.on(EventType.PAYMENT_SUCCEEDED)
    async def fulfil(event: WebhookEvent) -> None:
        """Told the payment.succeeded fact once, by whichever gateway call brings it (the
        webhook or the customer's return), awaited on the event loop. If it raises, the
        fact stays pending and is retried (await gw.dispatch_pending())."""
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

    def find_order(order_id: str) -> Order:
        order = orders.get(order_id)
        if order is None:
            raise HTTPException(404, "no such order")
        return order

    async def view_of(order_id: str) -> dict[str, Any]:
        """The order with its payment's real status and transition history."""
        order = find_order(order_id)
        payment = await gw.payment_for_order(order.id)
        history = await gw.history(payment.id) if payment is not None else []
        return {
            "order_id": order.id,
            "sku": order.sku,
            "quantity": order.quantity,
            "total": str(order.total),
            "status": order.status,
            "payment_status": payment.status.value if payment is not None else None,
            "history": [
                {
                    "at": _utc(step.recorded_at),
                    "from": step.previous_status,
                    "to": step.new_status,
                    "cause": step.event_type or step.source,
                }
                for step in history
            ],
        }

    @app.post("/orders", status_code=201)
    async def create_order(new: NewOrder) -> dict[str, Any]:
        """Order first: its id is what paygate derives the idempotency keys from."""
        if new.sku not in CATALOGUE:
            raise HTTPException(422, "unknown sku")
        unit_price = CATALOGUE[new.sku][1]
        order = orders.create(new.sku, new.quantity, unit_price * new.quantity)
        return await view_of(order.id)

    # --8<-- [start:checkout]
    @app.post("/orders/{order_id}/checkout")
    async def checkout(order_id: str, request: Request) -> RedirectResponse:
        """Open a hosted checkout for the order and send the customer there."""
        order = find_order(order_id)
        name, unit_price = CATALOGUE[order.sku]
        session = await gw.create_checkout(  # the same order twice: the same session, never two
            order_id=order.id,
            line_items=[LineItem(name=name, unit_amount=unit_price, quantity=order.quantity)],
            success_url=str(request.url_for("checkout_return", order_id=order.id)),
            cancel_url=str(request.url_for("checkout_cancel", order_id=order.id)),
        )
        assert session.url is not None
        return RedirectResponse(session.url, status_code=303)

    @app.get("/orders/{order_id}/return")
    async def checkout_return(order_id: str, request: Request) -> dict[str, Any]:
        order = find_order(order_id)
        # the query string only says which payment to look up; paygate asks the provider
        try:
            payment = await gw.handle_return(dict(request.query_params))
        except PaygateError:
            # not paid yet, or ids the provider does not know: answer with what the
            # webhooks have told us so far
            log.warning("order %s: return could not be confirmed", order_id, exc_info=True)
            return {**await view_of(order_id), "confirmed": False}
        if payment.order_id != order.id:
            raise HTTPException(400, "that payment is not for this order")
        return {**await view_of(order_id), "confirmed": True}

    @app.get("/orders/{order_id}/cancel")
    async def checkout_cancel(order_id: str) -> dict[str, Any]:
        # nothing to undo: the order stays pending and can be paid later
        return await view_of(order_id)

    # --8<-- [end:checkout]

    # --8<-- [start:direct]
    @app.post("/orders/{order_id}/pay")
    async def pay(order_id: str, direct: DirectPayment, request: Request) -> dict[str, Any]:
        """Direct payment with a token from the provider's card form (no hosted page)."""
        order = find_order(order_id)
        try:
            payment = await gw.create_payment(
                order_id=order.id,
                amount=order.total,
                payment_method=direct.payment_method,
                # where 3-D Secure sends the customer back to
                return_url=str(request.url_for("checkout_return", order_id=order.id)),
            )
        except PaygateError as exc:  # a decline, a bad token: tell the customer, 402
            raise HTTPException(402, f"payment refused: {type(exc).__name__}") from None
        return {
            "order_id": order.id,
            "payment_status": payment.status.value,
            # set when the customer must confirm (3-D Secure): send them there
            "redirect_url": payment.redirect_url,
        }

    # --8<-- [end:direct]

    @app.get("/orders/{order_id}")
    async def show_order(order_id: str) -> dict[str, Any]:
        return await view_of(order_id)

    @app.post("/orders/{order_id}/refund")
    async def refund(order_id: str) -> dict[str, Any]:
        # an admin action: put it behind your staff authentication in real life
        order = find_order(order_id)
        payment = await gw.payment_for_order(order.id)
        if payment is None:
            raise HTTPException(409, "nothing to refund")
        try:
            await gw.refund(payment.id)  # amount=None: all that is left
        except PaygateError as exc:
            raise HTTPException(409, f"refund refused: {exc}") from None
        return await view_of(order.id)

    # --8<-- [start:webhook]
    @app.post("/webhooks/paygate")
    async def webhook(request: Request) -> JSONResponse:
        # The RAW bytes, exactly as signed. Declaring a pydantic body parameter (or calling
        # request.json()) would parse them, and a re-serialized body breaks the signature.
        body = await request.body()
        headers = dict(request.headers)
        try:
            result = await gw.handle_webhook(body, headers)  # awaited: no thread pool
        except WebhookVerificationError as exc:
            # 400 and no details: the sender of a forged request learns nothing
            log.warning("webhook rejected: %s", type(exc).__name__)
            return JSONResponse({"error": "invalid webhook"}, status_code=400)
        except Exception:
            # a handler failed: 5xx makes the provider deliver the event again later
            log.exception("webhook handling failed")
            return JSONResponse({"error": "webhook handling failed"}, status_code=500)
        # 200 for a first delivery and for a duplicate alike, or the provider keeps retrying;
        # 409 while another worker holds the event (in_progress): if that worker dies, only
        # the provider's retry of this non-2xx answer gets the event finished
        return JSONResponse(
            {"received": result.acknowledged, "duplicate": result.duplicate},
            status_code=result.http_status,
        )

    # --8<-- [end:webhook]

    return app
