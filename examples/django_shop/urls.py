"""Include in a project with ``path("shop/", include("examples.django_shop.urls"))``."""

from __future__ import annotations

from django.urls import path
from examples.django_shop import views

app_name = "shop"

urlpatterns = [
    path("", views.index, name="index"),
    path("checkout/", views.checkout, name="checkout"),
    path("orders/<str:order_id>/", views.order_detail, name="order"),
    path("orders/<str:order_id>/return/", views.checkout_return, name="return"),
    path("orders/<str:order_id>/cancel/", views.checkout_cancel, name="cancel"),
    path("orders/<str:order_id>/refund/", views.refund, name="refund"),
    path("webhooks/paygate/", views.webhook, name="webhook"),
]
