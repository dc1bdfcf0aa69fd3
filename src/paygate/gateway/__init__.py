"""``paygate.gateway``: the Gateway, as a package a newcomer can find their way in.

One provider + one store + policies. The public names live here
(``from paygate.gateway import Gateway``); the parts, by what they do:

| module | what is in it |
| --- | --- |
| `_facade` | [`Gateway`][paygate.gateway.Gateway], the synchronous face (thin: runs flows) |
| `_async` | [`AsyncGateway`][paygate.gateway.AsyncGateway], the asyncio face (the same flows) |
| `_connect` | [`connect`][paygate.gateway.connect] and its typed overloads |
| `_connect_async` | [`connect_async`][paygate.gateway.connect_async], typed the same way |
| `_sansio` | the effects a flow yields, and the sync and async drivers |
| `_flows` | every flow joined into one class, the base of both faces |
| `_payments` | payments, refunds, checkout |
| `_customers` | customers, subscriptions, invoices |
| `_idempotency` | the order-first idempotency engine |
| `_state_sync` | provider answers into the store, through the state machine |
| `_webhooks` | the webhook pipeline: claim, transition, dispatch |
| `_facts_dispatch` | the outbox of payment facts and its dispatcher |
| `_results` | what a webhook delivery and a dispatch of facts report back |
| `_base` | policies, argument checks, record building, handler registry |

See ``docs/architecture.md`` for why the operations are generators (a sans-I/O core).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paygate._retry import RetryPolicy
from paygate.gateway._base import WebhookHandler
from paygate.gateway._connect import connect
from paygate.gateway._facade import Gateway
from paygate.gateway._results import DispatchSummary, WebhookResult

if TYPE_CHECKING:
    from paygate.gateway._async import AsyncGateway
    from paygate.gateway._connect_async import connect_async

__all__ = [
    "AsyncGateway",
    "DispatchSummary",
    "Gateway",
    "RetryPolicy",
    "WebhookHandler",
    "WebhookResult",
    "connect",
    "connect_async",
]

#: the async face, imported on first use (asyncio and the store threads cost a sync app
#: nothing until then)
_LAZY = {
    "AsyncGateway": "paygate.gateway._async",
    "connect_async": "paygate.gateway._connect_async",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paygate.gateway' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
