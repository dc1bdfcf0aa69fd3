"""The URLconf of the stand-alone settings: the shop mounted at ``/shop/``."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("shop/", include("examples.django_shop.urls"))]
