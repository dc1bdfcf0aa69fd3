"""The sandbox's hosted pages and dashboard (sbxui17 fills this in).

``register(sandbox)`` adds the page routes: ``/`` (dashboard), ``/checkout/<session_id>``
(Stripe Checkout), ``/3ds/<intent_id>`` (3-D Secure challenge), PayPal's approval page,
Square's payment-link page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paygate.sandbox.app import Sandbox

__all__ = ["register"]


def register(sandbox: Sandbox) -> None:
    """Add the pages' routes to ``sandbox`` (none yet)."""
