"""The provider's records read through its adapter: the API, not a downloaded report.

```python
records = records_from_provider(gateway, since=start, until=end)
report = reconcile(books, records, now=now)
```

`API_READERS` says, per provider name, which adapter method lists the records and
which reader turns them into `ProviderRecord` objects. Adding a provider is one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from paygate._retry import RetryPolicy
from paygate.errors import NotSupported, ValidationError
from paygate.reconcile._base import Relisting, adapter_and_retry
from paygate.reconcile._paypal import PayPalTransactionSearch
from paygate.reconcile._square import SquarePayments, square_records
from paygate.reconcile._stripe import StripeBalanceTransactions

__all__ = ["API_READERS", "PAYOUT_READERS", "ApiReader", "records_from_provider"]


@dataclass(frozen=True, slots=True)
class ApiReader:
    """How one provider's records are read through its adapter.

    ``method`` is the adapter's listing method, called with ``since=``, ``until=``, the
    fetch options (``page_size=``) and ``retry=`` when there is a policy; ``reader`` is
    the reader class given what it yields, with the reader options (``skip_bad_rows=``,
    ``order_key=``/``order_field=``);
    ``needs_window``: the provider's API cannot list without both bounds.
    """

    method: str
    reader: Callable[..., Any]
    needs_window: bool = False


#: provider name -> its API reader
API_READERS: dict[str, ApiReader] = {
    "stripe": ApiReader("iter_balance_transactions", StripeBalanceTransactions),
    "paypal": ApiReader("iter_transaction_pages", PayPalTransactionSearch, needs_window=True),
    "square": ApiReader("iter_payment_pages", SquarePayments),
}

#: provider name -> its reader of payout entries (the money that moved, with fees), for
#: ``payouts=True``
PAYOUT_READERS: dict[str, Callable[..., Any]] = {
    "square": lambda adapter, **options: square_records(adapter, payouts=True, **options),
}

#: options passed to the adapter's listing method; every other one goes to the reader
FETCH_OPTIONS = frozenset({"page_size"})


def records_from_provider(
    provider: Any,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    payouts: bool = False,
    retry: RetryPolicy | None = None,
    **options: Any,
) -> Any:
    """The streaming reader of ``provider``'s records in ``[since, until)``, fetched through
    the adapter (a provider instance, or a [`paygate.Gateway`][paygate.gateway.Gateway]: its
    ``.provider``).

    Stripe: [`StripeBalanceTransactions`][paygate.reconcile.StripeBalanceTransactions] over
    ``iter_balance_transactions``; PayPal (``since`` and ``until`` required):
    [`PayPalTransactionSearch`][paygate.reconcile.PayPalTransactionSearch] over
    ``iter_transaction_pages``; Square: [`SquarePayments`][paygate.reconcile.SquarePayments] over
    ``iter_payment_pages``. ``page_size=`` goes to the adapter, other options to the reader. Nothing
    is requested until the reader is iterated.

    ``payouts=True`` reads the payouts' entries instead of the payments (Square:
    [`square_records`][paygate.reconcile.square_records] with ``payouts=True``; ``lookback=`` goes
    to it).

    Each page request goes through ``retry`` (a
    [`paygate.RetryPolicy`][paygate.gateway.RetryPolicy]); left out, a Gateway's own policy, a
    bare adapter's none: see
    [Retries of the page requests](reconciliation.md#retries-of-the-page-requests).
    """
    adapter, policy = adapter_and_retry(provider, retry)
    name = getattr(adapter, "name", None)
    entry = API_READERS.get(name) if isinstance(name, str) else None
    supported = ", ".join(sorted(API_READERS))
    if entry is None:
        raise NotSupported(
            f"reading records through the adapter is not supported for provider {name!r} "
            f"(supported: {supported})",
            provider=name if isinstance(name, str) else None,
        )
    if payouts:
        payout_reader = PAYOUT_READERS.get(str(name))
        if payout_reader is None:
            raise NotSupported(
                f"reading payout entries through the adapter is not supported for provider "
                f"{name!r} (supported: {', '.join(sorted(PAYOUT_READERS))})",
                provider=name,
            )
        return payout_reader(adapter, since=since, until=until, retry=policy, **options)
    method = getattr(adapter, entry.method, None)
    if not callable(method):
        raise NotSupported(
            f"the {name} adapter {type(adapter).__name__} has no {entry.method}()",
            provider=name,
        )
    if entry.needs_window and (since is None or until is None):
        missing = " and ".join(n for n, v in (("since", since), ("until", until)) if v is None)
        raise ValidationError(
            f"{name}: reading records through the API needs both since and until "
            f"(missing: {missing})"
        )
    fetch_options = {k: v for k, v in options.items() if k in FETCH_OPTIONS}
    reader_options = {k: v for k, v in options.items() if k not in FETCH_OPTIONS}
    if policy is not None:
        fetch_options["retry"] = policy
    pages = Relisting(lambda: method(since=since, until=until, **fetch_options))
    return entry.reader(pages, **reader_options)
