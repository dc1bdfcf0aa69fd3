"""The shop's views. Only the webhook view is CSRF-exempt: the provider cannot send a CSRF
token, its signature authenticates the request instead. Every form the customer or staff
posts keeps Django's CSRF protection."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from examples.django_shop.orders import Order
from examples.django_shop.shop import CATALOGUE, Shop, get_shop

from paygate import LineItem, PaygateError, WebhookVerificationError

log = logging.getLogger("examples.django_shop")


def _order_or_404(shop: Shop, order_id: str) -> Order:
    order = shop.orders.get(order_id)
    if order is None:
        raise Http404("no such order")
    return order


def _utc(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _order_page(
    request: HttpRequest, shop: Shop, order: Order, notice: str = "", status: int = 200
) -> HttpResponse:
    payment = shop.gateway.payment_for_order(order.id)
    history = shop.gateway.history(payment.id) if payment is not None else []
    context: dict[str, Any] = {
        "order": order,
        "item_name": CATALOGUE[order.sku][0],
        "payment": payment,
        "refundable": payment is not None
        and payment.status.value in ("succeeded", "partially_refunded"),
        "history": [
            {
                "at": _utc(step.recorded_at),
                "previous": step.previous_status or "",
                "new": step.new_status,
                "cause": step.event_type or step.source,
            }
            for step in history
        ],
        "notice": notice,
    }
    return render(request, "django_shop/order.html", context, status=status)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    items = [(sku, name, price) for sku, (name, price) in CATALOGUE.items()]
    return render(request, "django_shop/index.html", {"items": items})


# --8<-- [start:checkout]
@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    shop = get_shop()
    sku = request.POST.get("sku", "")
    quantity = request.POST.get("quantity", "1")
    if sku not in CATALOGUE or not quantity.isdigit() or not 1 <= int(quantity) <= 10:
        return HttpResponse("unknown item or bad quantity", status=400)
    name, unit_price = CATALOGUE[sku]
    # order first: its id is what paygate derives the idempotency key from
    order = shop.orders.create(sku, int(quantity), unit_price * int(quantity))
    session = shop.gateway.create_checkout(
        order_id=order.id,
        line_items=[LineItem(name=name, unit_amount=unit_price, quantity=int(quantity))],
        success_url=request.build_absolute_uri(reverse("shop:return", args=[order.id])),
        cancel_url=request.build_absolute_uri(reverse("shop:cancel", args=[order.id])),
    )
    assert session.url is not None
    return redirect(session.url)


@require_GET
def checkout_return(request: HttpRequest, order_id: str) -> HttpResponse:
    shop = get_shop()
    order = _order_or_404(shop, order_id)
    # the query string only says which payment to look up; paygate asks the provider
    try:
        payment = shop.gateway.handle_return(request.GET.dict())
    except PaygateError:
        # not paid yet, or ids the provider does not know: show what the webhooks have told
        # us so far (the order page), and never an error page to the customer
        log.warning("order %s: return could not be confirmed", order_id, exc_info=True)
        return _order_page(request, shop, order, "Your payment is not confirmed yet.")
    if payment.order_id != order.id:
        return _order_page(request, shop, order, "That payment is not for this order.", 400)
    order = _order_or_404(shop, order_id)
    return _order_page(request, shop, order, f"Payment {payment.status}.")


@require_GET
def checkout_cancel(request: HttpRequest, order_id: str) -> HttpResponse:
    # nothing to undo: the order stays pending and can be paid later
    shop = get_shop()
    order = _order_or_404(shop, order_id)
    return _order_page(request, shop, order, "Checkout canceled; your order is still open.")


# --8<-- [end:checkout]


@require_GET
def order_detail(request: HttpRequest, order_id: str) -> HttpResponse:
    shop = get_shop()
    return _order_page(request, shop, _order_or_404(shop, order_id))


@require_POST
def refund(request: HttpRequest, order_id: str) -> HttpResponse:
    # an admin action: in a real shop, also @staff_member_required
    shop = get_shop()
    order = _order_or_404(shop, order_id)
    payment = shop.gateway.payment_for_order(order.id)
    if payment is None:
        return _order_page(request, shop, order, "Nothing to refund.", 409)
    try:
        shop.gateway.refund(payment.id)  # amount=None: all that is left
    except PaygateError as exc:
        return _order_page(request, shop, order, f"Refund refused: {exc}", 409)
    return redirect("shop:order", order_id=order.id)


# --8<-- [start:webhook]
@csrf_exempt  # the provider cannot send a CSRF token; the signature authenticates instead
@require_POST
def webhook(request: HttpRequest) -> HttpResponse:
    # The RAW bytes, exactly as signed. Read request.body before anything touches
    # request.POST, and never json.loads + re-serialize: the signature would not match.
    body = request.body
    try:
        result = get_shop().gateway.handle_webhook(body, dict(request.headers))
    except WebhookVerificationError as exc:
        # 400 and no details: the sender of a forged request learns nothing
        log.warning("webhook rejected: %s", type(exc).__name__)
        return JsonResponse({"error": "invalid webhook"}, status=400)
    except Exception:
        # a handler failed: 5xx makes the provider deliver the event again later
        log.exception("webhook handling failed")
        return JsonResponse({"error": "webhook handling failed"}, status=500)
    # 200 for a first delivery and for a duplicate alike, or the provider keeps retrying;
    # 409 while another worker holds the event (in_progress): if that worker dies, only the
    # provider's retry of this non-2xx answer gets the event finished
    return JsonResponse(
        {"received": result.acknowledged, "duplicate": result.duplicate},
        status=result.http_status,
    )


# --8<-- [end:webhook]
