"""Reconciliation: the shop's books against each provider's records, order by order.

```python
from paygate.reconcile import reconcile, OrdersCSV, StripeReportCSV

report = reconcile(OrdersCSV("orders.csv"), StripeReportCSV("balance.csv"), now=now)
for line in report.lines:
    print(line.case, line.order_id, line.action, line.amount)
```

The engine is DuckDB: report files are read by DuckDB itself, other sources are loaded
from their rows, and the join and the classification run as SQL. See
``docs/reconciliation.md``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from paygate.reconcile._apply import action_key, applied_actions, apply_actions, refund_key
from paygate.reconcile._csv import GenericCSV, OrdersCSV
from paygate.reconcile._duck import reconcile
from paygate.reconcile._fetch import records_from_provider
from paygate.reconcile._model import (
    DISCREPANCIES,
    Action,
    ActionRecord,
    AppliedAction,
    BadRow,
    Case,
    OrderRecord,
    OrderStatus,
    Policy,
    ProviderRecord,
    ReconciliationLine,
    ReconciliationReport,
    RecordKind,
    RecordStatus,
    ReportFormatError,
)
from paygate.reconcile._output import write_csv, write_html, write_json, write_report
from paygate.reconcile._paypal import PayPalSettlementReport, PayPalTransactionSearch
from paygate.reconcile._postgres import pushes_down, reconcile_in_postgres
from paygate.reconcile._square import SquarePayments, SquarePayoutEntries, square_records
from paygate.reconcile._store import PaymentSource, StoreOrders, orders_from_store
from paygate.reconcile._stripe import StripeBalanceTransactions, StripeReportCSV

__all__ = [
    "DISCREPANCIES",
    "Action",
    "ActionRecord",
    "AppliedAction",
    "BadRow",
    "Case",
    "GenericCSV",
    "OrderRecord",
    "OrderStatus",
    "OrdersCSV",
    "PayPalSettlementReport",
    "PayPalTransactionSearch",
    "PaymentSource",
    "Policy",
    "ProviderRecord",
    "ReconciliationLine",
    "ReconciliationReport",
    "RecordKind",
    "RecordStatus",
    "ReportFormatError",
    "SquarePayments",
    "SquarePayoutEntries",
    "StoreOrders",
    "StripeBalanceTransactions",
    "StripeReportCSV",
    "action_key",
    "applied_actions",
    "apply_actions",
    "orders_from_store",
    "pushes_down",
    "reconcile",
    "reconcile_in_postgres",
    "records_from_provider",
    "refund_key",
    "square_records",
    "write_csv",
    "write_html",
    "write_json",
    "write_report",
]


class _CallableModule(types.ModuleType):
    """Lets ``paygate.reconcile(internal, provider, ...)`` run
    [`reconcile`][paygate.reconcile.reconcile].

    ``paygate.reconcile`` is this subpackage, so the function cannot also live under that
    name in ``paygate``'s namespace (importing the subpackage would replace it). Making the
    module callable keeps both spellings working; ``from paygate.reconcile import
    reconcile`` is the documented, typed one.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> ReconciliationReport:
        return reconcile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
