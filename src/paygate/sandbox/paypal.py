"""The sandbox's PayPal face (sbxpp17 fills this in): REST API under ``/paypal``.

Skeleton: no routes yet; deliveries carry no signature headers yet.
"""

from __future__ import annotations

from typing import ClassVar

from paygate.sandbox.face import ProviderFace

__all__ = ["PayPalFace"]


class PayPalFace(ProviderFace):
    name: ClassVar[str] = "paypal"
    prefix: ClassVar[str] = "/paypal"
