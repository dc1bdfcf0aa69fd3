"""A few HTML pages in front of the JSON API, so the shop can be bought from in a browser
without JavaScript: a catalogue whose form creates the order and goes on to the hosted
checkout, and an admin page with the refund button. Everything else is the JSON API.

``POST /buy`` creates the order and answers **307** to ``POST /orders/{id}/checkout``: a
307 keeps the method, so the browser posts there itself and is sent on (303) to the
provider's page, the same route an API client uses.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from examples.fastapi_shop.orders import OrderBook
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from paygate import Money

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><header><a href="/">paygate FastAPI shop</a></header><main>{main}</main></body></html>
"""


def add_pages(app: FastAPI, orders: OrderBook, catalogue: dict[str, tuple[str, Money]]) -> None:
    """Add the HTML pages to ``app``."""

    @app.get("/", response_class=HTMLResponse)
    async def catalogue_page() -> str:
        options = "".join(
            f'<option value="{html.escape(sku)}">{html.escape(name)} — {price}</option>'
            for sku, (name, price) in catalogue.items()
        )
        main = (
            "<h1>Catalogue</h1>"
            '<form method="post" action="/buy">'
            f'<select name="sku">{options}</select> '
            '<input name="quantity" type="number" value="1" min="1" max="10"> '
            '<button type="submit">Buy</button></form>'
        )
        return _PAGE.format(title="paygate FastAPI shop", main=main)

    @app.post("/buy")
    async def buy(request: Request) -> RedirectResponse:
        # parsed by hand: the form has two fields, not worth python-multipart
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        sku, quantity = form.get("sku", ""), form.get("quantity", "1")
        if sku not in catalogue or not quantity.isdigit() or not 1 <= int(quantity) <= 10:
            raise HTTPException(400, "unknown item or bad quantity")
        total = catalogue[sku][1] * int(quantity)
        order = await run_in_threadpool(orders.create, sku, int(quantity), total)
        return RedirectResponse(f"/orders/{order.id}/checkout", status_code=307)

    @app.get("/orders/{order_id}/admin", response_class=HTMLResponse)
    async def admin_page(order_id: str) -> str:
        order = await run_in_threadpool(orders.get, order_id)
        if order is None:
            raise HTTPException(404, "no such order")
        oid = html.escape(order.id)
        main = (
            f"<h1>Order {oid}</h1>"
            f'<p><a id="order-json" href="/orders/{oid}">the order (JSON)</a></p>'
            # an admin action: put it behind your staff authentication in real life
            f'<form method="post" action="/orders/{oid}/refund">'
            '<button type="submit">Refund</button></form>'
        )
        return _PAGE.format(title=f"Order {oid}", main=main)
