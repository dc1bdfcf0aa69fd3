"""Every flow of the Gateway in one class, the base of both faces.

[`GatewayFlows`][paygate.gateway._flows.GatewayFlows] adds nothing of its own: it joins
the payment, customer and webhook flows (each in its module) so that
[`Gateway`][paygate.gateway.Gateway] and ``AsyncGateway`` inherit one and the same logic.
"""

from __future__ import annotations

from paygate.gateway._customers import CustomerFlows
from paygate.gateway._disputes import DisputeFlows
from paygate.gateway._payment_methods import PaymentMethodFlows
from paygate.gateway._payments import PaymentFlows
from paygate.gateway._subscriptions import SubscriptionFlows
from paygate.gateway._webhooks import WebhookFlows

__all__ = ["GatewayFlows"]


class GatewayFlows(
    PaymentFlows, CustomerFlows, SubscriptionFlows, DisputeFlows, WebhookFlows, PaymentMethodFlows
):
    """The flows of every operation (no I/O: see ``paygate.gateway._sansio``)."""
