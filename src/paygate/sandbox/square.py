"""The sandbox's Square face (sbxpp17 fills this in): API under ``/square``.

Skeleton: no routes yet; deliveries carry no signature headers yet.
"""

from __future__ import annotations

from typing import ClassVar

from paygate.sandbox.face import ProviderFace

__all__ = ["SquareFace"]


class SquareFace(ProviderFace):
    name: ClassVar[str] = "square"
    prefix: ClassVar[str] = "/square"
