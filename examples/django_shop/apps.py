from __future__ import annotations

from django.apps import AppConfig


class DjangoShopConfig(AppConfig):
    name = "examples.django_shop"
    label = "django_shop"
    verbose_name = "paygate example shop"

    def ready(self) -> None:
        # connects the setting_changed receiver that rebuilds the shop in tests
        from examples.django_shop import shop  # noqa: F401
