"""Base classes of the readers: open once, check the file type up front, stream rows.

Every reader is an iterable of public records ([`OrderRecord`][paygate.reconcile.OrderRecord] /
[`ProviderRecord`][paygate.reconcile.ProviderRecord]) and also offers ``iter_compact()``, the tuples
the engine consumes without building a dataclass per row. Both come from the same parsing code:
a file reader's ``_row_parser`` (one CSV row) or an API reader's ``_rows`` (one JSON object); the
loops around them (headers, pages, bad rows) are written once, here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from paygate._retry import RetryPolicy
from paygate.errors import ValidationError
from paygate.money import Money
from paygate.reconcile._common import (
    InternalRow,
    ProviderRow,
    RowErrors,
    csv_rows,
    describe,
    header_index,
    load_json,
    open_text,
    sniff_text,
    to_datetime,
)
from paygate.reconcile._model import BadRow, OrderRecord, ProviderRecord, ReportFormatError

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


def order_records(rows: Iterable[InternalRow]) -> Iterator[OrderRecord]:
    for order_id, amount, currency, status, ts, refunded in rows:
        yield OrderRecord(
            order_id,
            Money(amount, currency),
            status,
            created_at=to_datetime(ts),
            refunded=None if refunded is None else Money(refunded, currency),
        )


def provider_records(provider: str, rows: Iterable[ProviderRow]) -> Iterator[ProviderRecord]:
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


class _TextFileReader:
    """A CSV file with a header row: ``columns`` (role -> column name, as `header_index` takes
    them) locates the columns, ``_row_parser`` parses one row. Holds the source; each iteration
    opens it (when a path) and streams."""

    what = "a report"
    columns: dict[str, str]

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

    def _wanted(self) -> dict[str, str | None]:
        return dict(self.columns)

    def _check_head(self, head: str, name: str) -> None:
        """Raise ReportFormatError when ``head`` is clearly not this reader's format."""
        first = head.splitlines()[0] if head else ""
        header = next(csv_rows(iter([first]))) if first else []
        header_index(header, self._wanted(), name=name, what=self.what)

    def _layout(self, header: list[str] | None, name: str) -> dict[str, int | None]:
        """Column name -> position for this reader's format."""
        if header is None:
            raise ReportFormatError("empty file", path=name)
        return header_index(header, self._wanted(), name=name, what=self.what)

    def _row_parser(
        self, pos: dict[str, int | None], width: int, with_time: bool
    ) -> Callable[[list[str]], Any]:
        raise NotImplementedError

    def _errors(self, name: str) -> RowErrors:
        self.bad_rows = []
        return RowErrors(name, self.skip_bad_rows, self.bad_rows)

    def _open(self) -> tuple[IO[str], str, bool]:
        handle, name, owned = open_text(self.source)
        if not owned and handle.seekable():
            handle.seek(0)
        return handle, name, owned

    def iter_compact(self, *, with_time: bool = True) -> Iterator[Any]:
        """One compact row per data row (the per-row path: exact errors, any CSV)."""
        handle, name, owned = self._open()
        errors = self._errors(name)
        try:
            reader = csv_rows(handle)
            header = next(reader, None)
            pos = self._layout(header, name)
            assert header is not None
            parse_row = self._row_parser(pos, len(header), with_time)
            for row in reader:
                if not row:
                    continue  # a blank line, as csv.DictReader skips them
                try:
                    yield parse_row(row)
                except ValidationError as exc:
                    errors.bad(reader.line_num, describe(exc))
        finally:
            if owned:
                handle.close()


class OrderReader(_TextFileReader):
    def __iter__(self) -> Iterator[OrderRecord]:
        return order_records(self.iter_compact())


class ProviderReader(_TextFileReader):
    provider = "provider"

    def __iter__(self) -> Iterator[ProviderRecord]:
        return provider_records(self.provider, self.iter_compact())


class ProviderObjects:
    """A provider reader over already-parsed API objects (dicts), page after page.

    A page is a response (a dict, or the path of a JSON file) holding its objects as a list
    under ``key``; ``response`` names it in the error for a page that is not one, ``page_name``
    in the bad rows of a page given as a dict. A subclass parses one object in ``_row`` (or
    ``_rows``, when an object makes several records).
    """

    provider = "provider"
    key = "objects"
    response = "an API"
    page_name = "page"

    def __init__(self, pages: Any, *, skip_bad_rows: bool = False) -> None:
        self.pages = pages
        self.skip_bad_rows = skip_bad_rows
        self.bad_rows: list[BadRow] = []

    @staticmethod
    def _listed(pages: Iterable[Any] | Mapping[str, Any] | str | Path) -> Iterable[Any]:
        """A single page (a dict or a file) as a list of one."""
        return [pages] if isinstance(pages, (str, Path, Mapping)) else pages

    def _objects(self, page: Any) -> Any:
        """The page's objects (a list), or None when it is not this reader's response."""
        return page.get(self.key) if isinstance(page, Mapping) else None

    def _pages(self) -> Iterator[tuple[str, Iterable[Any]]]:
        """(name for messages, objects) of each page."""
        for number, page in enumerate(self.pages, start=1):
            name = f"<{self.page_name} {number}>"
            if isinstance(page, (str, Path)):
                name = str(page)
                page = load_json(Path(page))
            objects = self._objects(page)
            if not isinstance(objects, list):
                raise ReportFormatError(
                    f"not a {self.response} response (no {self.key} list)", path=name
                )
            yield name, objects

    def _where(self, number: int) -> str:
        return f"{self.key}[{number - 1}]"

    def _rows(self, obj: Any, with_time: bool) -> Iterable[ProviderRow]:
        return (self._row(obj, with_time),)

    def _row(self, obj: Any, with_time: bool) -> ProviderRow:
        raise NotImplementedError

    def iter_compact(self, *, with_time: bool = True) -> Iterator[ProviderRow]:
        self.bad_rows.clear()
        for name, objects in self._pages():
            errors = RowErrors(name, self.skip_bad_rows, self.bad_rows)
            for number, obj in enumerate(objects, start=1):
                try:
                    yield from self._rows(obj, with_time)
                except (KeyError, TypeError, ValueError) as exc:
                    errors.bad(number, f"{self._where(number)}: {describe(exc)}")

    def __iter__(self) -> Iterator[ProviderRecord]:
        return provider_records(self.provider, self.iter_compact())
