"""Base classes of the readers: open once, check the file type up front, stream rows.

Every reader is an iterable of public records ([`OrderRecord`][paygate.reconcile.OrderRecord] /
[`ProviderRecord`][paygate.reconcile.ProviderRecord]) and also offers ``iter_compact()``, the tuples
the engine consumes without building a dataclass per row. Both come from the same parsing code.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from paygate._retry import RetryPolicy
from paygate.errors import ValidationError
from paygate.money import Money
from paygate.reconcile._common import (
    InternalRow,
    ProviderRow,
    RowErrors,
    open_text,
    sniff_text,
    to_datetime,
)
from paygate.reconcile._model import BadRow, OrderRecord, ProviderRecord

Source = str | Path | IO[str]


def adapter_and_retry(provider: Any, retry: Any) -> tuple[Any, RetryPolicy | None]:
    """The adapter behind ``provider`` and the retry policy of its page requests.

    ``provider`` is an adapter or a [`paygate.Gateway`][paygate.gateway.Gateway] (anything with
    ``.provider``: its adapter). The policy is ``retry`` when given; else a Gateway's own
    (``.retry``); else None: a bare adapter's pages are not retried unless ``retry=`` says so.
    """
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ValidationError(
            f"retry must be a paygate.RetryPolicy or None, got {type(retry).__name__}"
        )
    adapter = getattr(provider, "provider", provider)
    if retry is None and adapter is not provider:
        own = getattr(provider, "retry", None)
        retry = own if isinstance(own, RetryPolicy) else None
    return adapter, retry


class Relisting:
    """Pages listed through an adapter, re-iterable: each iteration lists again (a reader
    may be read twice). The first listing is made at once, so the adapter checks its
    arguments here, before any request."""

    def __init__(self, listing: Callable[[], Iterator[Any]]) -> None:
        self._listing = listing
        self._first: Iterator[Any] | None = listing()

    def __iter__(self) -> Iterator[Any]:
        first, self._first = self._first, None
        return first if first is not None else self._listing()


class _TextFileReader:
    """Holds the source; each iteration opens it (when a path), sniffs, and streams."""

    what = "a report"

    def __init__(self, source: Source, *, skip_bad_rows: bool = False) -> None:
        self.source = source
        self.skip_bad_rows = skip_bad_rows
        self.bad_rows: list[BadRow] = []
        # check the file type now, before anything is read for real
        handle, name, owned = open_text(source)
        try:
            self._check_head(sniff_text(handle, name), name)
        finally:
            if owned:
                handle.close()

    def _check_head(self, head: str, name: str) -> None:
        """Raise ReportFormatError when ``head`` is clearly not this reader's format."""

    def _errors(self, name: str) -> RowErrors:
        self.bad_rows = []
        return RowErrors(name, self.skip_bad_rows, self.bad_rows)

    def _open(self) -> tuple[IO[str], str, bool]:
        handle, name, owned = open_text(self.source)
        if not owned and handle.seekable():
            handle.seek(0)
        return handle, name, owned

    def _layout(self, header: list[str] | None, name: str) -> dict[str, int | None]:
        """Column name -> position for this reader's format (CSV readers define it)."""
        raise NotImplementedError

    def _read_header(self, handle: IO[str], name: str) -> tuple[dict[str, int | None], int]:
        """Read the header line: the column layout and the number of columns."""
        first = handle.readline()
        header = next(csv.reader([first]), None) if first else None
        pos = self._layout(header, name)
        assert header is not None  # _layout refuses a missing header
        return pos, len(header)


class OrderReader(_TextFileReader):
    def iter_compact(self, *, with_time: bool = True) -> Iterator[InternalRow]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[OrderRecord]:
        for order_id, amount, currency, status, ts, refunded in self.iter_compact():
            yield OrderRecord(
                order_id,
                Money(amount, currency),
                status,
                created_at=to_datetime(ts),
                refunded=None if refunded is None else Money(refunded, currency),
            )


def records_from_rows(provider: str, rows: Iterator[ProviderRow]) -> Iterator[ProviderRecord]:
    for order_id, kind, status, amount, currency, fee, net, record_id, payment_id, ts in rows:
        yield ProviderRecord(
            provider,
            record_id,
            kind,
            status,
            order_id,
            Money(amount, currency),
            fee=Money(fee, currency),
            net=Money(net, currency),
            payment_id=payment_id,
            occurred_at=to_datetime(ts),
        )


class ProviderReader(_TextFileReader):
    provider = "provider"

    def iter_compact(self, *, with_time: bool = True) -> Iterator[ProviderRow]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[ProviderRecord]:
        return records_from_rows(self.provider, self.iter_compact())


class ProviderObjects:
    """A provider reader over already-parsed API objects (dicts), page after page."""

    provider = "provider"

    def __init__(self, pages: Any, *, skip_bad_rows: bool = False) -> None:
        self.pages = pages
        self.skip_bad_rows = skip_bad_rows
        self.bad_rows: list[BadRow] = []

    def iter_compact(self, *, with_time: bool = True) -> Iterator[ProviderRow]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[ProviderRecord]:
        return records_from_rows(self.provider, self.iter_compact())
