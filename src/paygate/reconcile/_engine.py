"""The reconciliation engine: hold one side compactly, stream the other, classify.

Memory is the constraint at a million orders a side. The internal side is held as one dict
``order_id -> position`` and, by position, the order's amount, currency, status and recent
flag packed into one int64 (``codes``) and one byte saying what the provider side said so
far (``marks``): about 100 bytes an order with its key, where a tuple of fields or a
dataclass would be 200-300. The provider side streams past it. The common case - one
successful payment of exactly the order's amount - only marks the order ``matched``;
anything else promotes it to an `_OrderState` that collects its records. At the end
one sweep classifies every order and the leftovers are orphans or missing.

Why positions: a batch of records is then one dict probe per record (``map(dict.get)``),
and everything after it - reading the codes, comparing, marking - is indexing into arrays
through ``map`` in C, with no second probe of the dict.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, MutableSequence
from contextlib import closing
from datetime import datetime
from itertools import compress, count, islice, repeat
from operator import eq, gt, lshift, mul, ne, not_, or_, rshift
from typing import Any

from paygate.errors import ValidationError
from paygate.money import Money
from paygate.reconcile._batch import OrderBatch, ProviderBatch
from paygate.reconcile._common import InternalRow, ProviderRow, timestamp_of
from paygate.reconcile._model import (
    PAID_LIKE,
    Action,
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
)

__all__ = ["reconcile"]

Progress = Callable[[str, int], None]

# -- the packed code: amount << 20 | currency index << 8 | recent flag | status code -------
_STATUSES: list[OrderStatus] = list(OrderStatus)
_STATUS_CODE = {status: code for code, status in enumerate(_STATUSES)}
_STATUS_MASK = 0xF
_RECENT = 1 << 5  # created inside the grace window: no record yet is not "missing"
_CUR_SHIFT = 8
_CUR_MASK = 0xFFF
_AMOUNT_SHIFT = 20
_PAID_CODE = _STATUS_CODE[OrderStatus.PAID]
#: the code at the extra position that stands for "no such order": no record's expected
#: code equals it (those are -1 << 20 or more)
_NO_ORDER = -(1 << 62)
# -- an order's mark: what the provider side said so far ------------------------------------
_MATCHED = 1  # one successful payment of exactly the order's amount
_PROMOTED = 2  # more than that: its records are in an ``_OrderState``
_ONLY_MATCHED = bytes(int(i == _MATCHED) for i in range(256))  # bytes.translate tables
_NOT_MATCHED = bytes(int(i != _MATCHED) for i in range(256))
# how often the progress callback hears from us: every 64 chunks, or 65,536 rows
_PROGRESS_CHUNKS = 64
_PROGRESS_ROWS = 1 << 16

_PAYMENT = RecordKind.PAYMENT
_OTHER = RecordKind.OTHER
_SUCCEEDED = RecordStatus.SUCCEEDED

_ACTION_FOR = {
    "refund": Action.REFUND,
    "mark_paid": Action.MARK_PAID,
    "investigate": Action.INVESTIGATE,
    "cancel": Action.CANCEL,
}


class _OrderState:
    """Everything the provider said about one order, once it is more than one clean match."""

    __slots__ = (
        "code",
        "disputes",
        "failed",
        "fee",
        "fee_currency",
        "net",
        "payments",
        "pending",
        "record_ids",
        "refunded",
        "related",
        "reversed",
        "unknown_first",
    )

    def __init__(self, code: int) -> None:
        self.code = code
        self.payments: list[tuple[int, str, str | None]] = []  # (amount, currency, id)
        self.failed = 0
        self.pending = 0
        self.reversed = 0  # payment reversals (partial-capture reversal, ACH failure)
        self.refunded = 0  # refunds minus refund reversals
        self.disputes = 0  # disputes minus dispute reversals
        self.fee = 0
        self.net = 0
        # the records' currency, which ``fee``/``net`` are in (not necessarily the order's);
        # "" once records of two currencies carried them: no single figure then
        self.fee_currency: str | None = None
        self.record_ids: list[str] = []
        self.related: list[str] = []  # payments named by refunds/disputes
        # the order was matched on the fast path before this state existed: its payment's
        # id and fee were not kept (the totals still include the fee)
        self.unknown_first = False

    def add(self, row: ProviderRow) -> None:
        _, kind, status, amount, currency, fee, net, record_id, payment_id, _ = row
        self.record_ids.append(record_id)
        if fee or net:
            if self.fee_currency is None:
                self.fee_currency = currency
            elif self.fee_currency != currency:
                self.fee_currency = ""
            self.fee += fee
            self.net += net
        if kind is _PAYMENT:
            if status is _SUCCEEDED:
                self.payments.append((amount, currency, payment_id or record_id))
            elif status is RecordStatus.PENDING:
                self.pending += 1
            else:
                self.failed += 1
        elif payment_id and payment_id not in self.related:
            self.related.append(payment_id)
        if kind is _PAYMENT or status is not _SUCCEEDED:
            return  # a pending or failed refund/dispute moves no money yet
        if kind is RecordKind.PAYMENT_REVERSAL:
            self.reversed += amount
        elif kind is RecordKind.REFUND:
            self.refunded += amount
        elif kind is RecordKind.REFUND_REVERSAL:
            self.refunded -= amount
        elif kind is RecordKind.DISPUTE:
            self.disputes += 1
        elif kind is RecordKind.DISPUTE_REVERSAL:
            self.disputes -= 1


def _rows_of_orders(internal: Any, with_time: bool) -> Iterator[InternalRow]:
    """The compact rows of the internal side: the reader's own fast path, or converted."""
    compact = getattr(internal, "iter_compact", None)
    if compact is not None:
        rows: Iterator[InternalRow] = compact(with_time=with_time)
        return rows
    return _orders_as_rows(internal)


def _orders_as_rows(internal: Iterable[Any]) -> Iterator[InternalRow]:
    for record in internal:
        if not isinstance(record, OrderRecord):
            raise ValidationError(
                f"the internal side must yield OrderRecord, got {type(record).__name__}"
            )
        refunded = record.refunded.amount if record.refunded is not None else None
        yield (
            record.order_id,
            record.amount.amount,
            record.amount.currency,
            OrderStatus(record.status),
            timestamp_of(record.created_at),
            refunded,
        )


def _rows_of_records(provider: Any, with_time: bool) -> Iterator[ProviderRow]:
    compact = getattr(provider, "iter_compact", None)
    if compact is not None:
        rows: Iterator[ProviderRow] = compact(with_time=with_time)
        return rows
    return _records_as_rows(provider)


def _records_as_rows(provider: Iterable[Any]) -> Iterator[ProviderRow]:
    for record in provider:
        if not isinstance(record, ProviderRecord):
            raise ValidationError(
                f"the provider side must yield ProviderRecord, got {type(record).__name__}"
            )
        currency = record.amount.currency
        yield (
            record.order_id,
            record.kind,
            record.status,
            record.amount.amount,
            currency,
            record.fee.amount if record.fee is not None else 0,
            record.net.amount if record.net is not None else 0,
            record.record_id,
            record.payment_id,
            timestamp_of(record.occurred_at),
        )


def _check_time(name: str, value: datetime | None) -> float | None:
    if value is not None and (not isinstance(value, datetime) or value.utcoffset() is None):
        raise ValidationError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return timestamp_of(value)


def reconcile(
    internal: Iterable[OrderRecord] | Any,
    provider: Iterable[ProviderRecord] | Any,
    *,
    policy: Policy | None = None,
    now: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    run_id: str | None = None,
    provider_name: str | None = None,
    skip_bad_rows: bool = False,
    progress: Progress | None = None,
    apply: bool = False,
    gateway: Any = None,
    on_action: Callable[[ReconciliationLine], Any] | None = None,
) -> ReconciliationReport:
    """Compare the shop's orders with a provider's records, order by order.

    ``internal`` is an iterable of [`OrderRecord`][paygate.reconcile.OrderRecord] (or a reader such
    as `OrdersCSV` / `orders_from_store`); ``provider`` an iterable of
    [`ProviderRecord`][paygate.reconcile.ProviderRecord] (or a provider reader). Both are read once,
    streaming.

    ``now`` (timezone-aware) is when the run happens: orders created less than
    ``policy.grace`` before it and without a provider record are ``awaiting``, not
    ``missing``. Without ``now`` there is no grace. ``since``/``until`` keep only orders
    created, and records dated, in ``[since, until)`` (rows without a date are kept).

    Dry-run by default. ``apply=True`` carries out the proposed actions through
    ``gateway`` (a [`paygate.Gateway`][paygate.gateway.Gateway]): refunds with idempotency keys
    derived from ``run_id`` and the order, so re-running the same run never refunds twice; non-money
    actions (mark paid, cancel, record) go to ``on_action(line)`` when given. Each action is
    recorded in ``gateway.store``; re-running the same ``run_id`` skips what it already did
    (``already_done``) and retries what failed or never finished
    ([`paygate.reconcile.applied_actions`][paygate.reconcile.applied_actions] reads the records
    back).
    """
    policy = policy or Policy()
    if not isinstance(policy, Policy):
        raise ValidationError(f"policy must be a reconcile.Policy, got {type(policy).__name__}")
    now_ts = _check_time("now", now)
    since_ts = _check_time("since", since)
    until_ts = _check_time("until", until)
    if apply and (gateway is None or not run_id):
        raise ValidationError(
            "apply=True needs gateway= (a paygate.Gateway) and run_id= (stable across "
            "re-runs, so a re-run reuses the same refund idempotency keys)"
        )
    name = provider_name or getattr(provider, "provider", None) or "provider"
    report = ReconciliationReport(provider=str(name), run_id=run_id or "", now=now, policy=policy)
    windowed = since_ts is not None or until_ts is not None
    lo = since_ts if since_ts is not None else float("-inf")
    hi = until_ts if until_ts is not None else float("inf")

    # -- 1. hold the internal side, packed -----------------------------------------------
    held: dict[str | None, int] = {}  # order id -> position in codes
    # int64 while every amount is below 2**43 minor units, Python ints beyond (widen)
    codes: MutableSequence[int] = array("q")
    known_refunds: dict[str, int] = {}
    currencies: list[str] = []
    cur_index: dict[str, int] = {}
    recent_after = now_ts - policy.grace.total_seconds() if now_ts is not None else None
    status_code = _STATUS_CODE
    hold = held.setdefault

    def currency_index(currency: str) -> int:
        index = cur_index.get(currency)
        if index is None:
            index = cur_index[currency] = len(currencies)
            currencies.append(currency)
            if index > _CUR_MASK:
                raise ValidationError("more than 4096 currencies on the internal side")
        return index

    def widen() -> None:
        """An amount of 2**43 minor units or more: the codes become Python ints."""
        nonlocal codes
        codes = list(codes)

    def hold_rows(rows: Iterable[InternalRow]) -> int:
        count = 0
        for order_id, amount, currency, status, created_ts, refunded in rows:
            count += 1
            if progress is not None and not count % _PROGRESS_ROWS:
                progress("orders", count)
            if windowed and created_ts is not None and not (lo <= created_ts < hi):
                continue
            code = amount << _AMOUNT_SHIFT | currency_index(currency) << _CUR_SHIFT
            code |= status_code[status]
            if recent_after is not None and created_ts is not None and created_ts > recent_after:
                code |= _RECENT
            position = len(codes)
            if hold(order_id, position) != position:  # one dict operation: insert unless present
                message = f"order {order_id!r} appears twice on the internal side"
                if not skip_bad_rows:
                    raise ValidationError(message)
                report.bad_rows.append(BadRow("<orders>", 0, message))
                continue
            try:
                codes.append(code)
            except OverflowError:
                widen()
                codes.append(code)
            if refunded:
                known_refunds[order_id] = refunded
        return count

    def codes_of(batch: OrderBatch) -> Iterator[int]:
        cur_bits = currency_index(batch.currency) << _CUR_SHIFT
        low_bits = {status: cur_bits | code for status, code in status_code.items()}
        packed = map(
            or_,
            map(lshift, batch.amounts, repeat(_AMOUNT_SHIFT)),
            map(low_bits.get, batch.statuses),
        )
        if recent_after is not None and batch.created is not None:
            recent = map(mul, map(gt, batch.created, repeat(recent_after)), repeat(_RECENT))
            packed = map(or_, packed, recent)
        return packed

    def hold_batch(batch: OrderBatch) -> int:
        ids = batch.order_ids
        start = len(codes)
        rows = zip(
            ids,
            batch.amounts,
            repeat(batch.currency),
            batch.statuses,
            batch.created or repeat(None),
            repeat(None),
        )
        before = len(held)
        # insert unless present, one dict probe per order, run in C
        deque(map(hold, ids, range(start, start + len(ids))), maxlen=0)
        if len(held) != before + len(ids):
            # an order seen before or twice in this batch (cheaper to notice after the fact
            # than to check first): setdefault kept every earlier value, so taking out the
            # keys this batch added - the newest in the dict's order - restores the state,
            # and the per-row path then reports the duplicate exactly
            for order_id in list(islice(reversed(held), len(held) - before)):
                del held[order_id]
            return hold_rows(rows)
        try:
            codes.extend(codes_of(batch))
        except OverflowError:  # extend stops part way: redo the batch as Python ints
            del codes[start:]
            widen()
            codes.extend(codes_of(batch))
        return len(ids)

    orders_read = 0
    batches = None if windowed else getattr(internal, "iter_batches", None)
    want_time = windowed or recent_after is not None
    if batches is not None:
        # closing: a failed run also stops the reader's file and thread at once
        with closing(batches(with_time=want_time)) as order_items:
            for chunk_no, item in enumerate(order_items):
                orders_read += hold_batch(item) if isinstance(item, OrderBatch) else hold_rows(item)
                if progress is not None and not chunk_no % _PROGRESS_CHUNKS:
                    progress("orders", orders_read)
    else:
        orders_read = hold_rows(_rows_of_orders(internal, with_time=want_time))
    report.orders_read = orders_read
    if progress is not None:
        progress("orders", orders_read)

    # -- 2. stream the provider side -----------------------------------------------------
    fee_by_cur: dict[str, int] = {}
    net_by_cur: dict[str, int] = {}
    orphans: list[ProviderRow] = []
    # the position that stands for "no such order" (None never is a key: no order id)
    nowhere = len(codes)
    codes.append(_NO_ORDER)
    marks = bytearray(nowhere + 1)
    # orders with more than one clean match: their state lives here, ``marks`` says so
    states: dict[int, _OrderState] = {}
    held_get = held.get
    code_at = codes.__getitem__
    mark_at = marks.__getitem__

    def match(rec: ProviderRow, position: int) -> None:
        """Fold one record into the order at ``position`` (fees and net are counted by
        the caller)."""
        kind = rec[1]
        if kind is _OTHER:
            return
        if position == nowhere:
            orphans.append(rec)
            return
        mark = marks[position]
        if mark == _PROMOTED:
            states[position].add(rec)
            return
        # the clean match: a paid order, not matched before, of exactly this amount and
        # currency (the recent flag does not matter here)
        if not mark and kind is _PAYMENT and rec[2] is _SUCCEEDED:
            index = cur_index.get(rec[4])
            if index is not None and codes[position] & ~_RECENT == (
                rec[3] << _AMOUNT_SHIFT | index << _CUR_SHIFT | _PAID_CODE
            ):
                marks[position] = _MATCHED
                return
        state = states[position] = _promote(codes[position], mark == _MATCHED, currencies)
        marks[position] = _PROMOTED
        state.add(rec)

    def match_rows(rows: Iterable[ProviderRow]) -> int:
        count = 0
        for rec in rows:
            count += 1
            if progress is not None and not count % _PROGRESS_ROWS:
                progress("records", count)
            ts = rec[9]
            if windowed and ts is not None and not (lo <= ts < hi):
                continue
            currency, fee, net = rec[4], rec[5], rec[6]
            if fee:
                fee_by_cur[currency] = fee_by_cur.get(currency, 0) + fee
            if net:
                net_by_cur[currency] = net_by_cur.get(currency, 0) + net
            match(rec, held_get(rec[0], nowhere))
        return count

    def match_batch(batch: ProviderBatch) -> int:
        ids, currency = batch.order_ids, batch.currency
        size = len(ids)
        fee_by_cur[currency] = fee_by_cur.get(currency, 0) + batch.fee_total
        net_by_cur[currency] = net_by_cur.get(currency, 0) + batch.net_total
        index = cur_index.get(currency)
        # the one dict probe per record; everything after it indexes arrays
        positions = list(map(held_get, ids, repeat(nowhere)))
        if index is None:
            clean = [False] * size
        else:
            # other kinds carry amount -1: a negative code, which no held code equals
            expected = map(
                or_,
                map(lshift, batch.payment_amounts, repeat(_AMOUNT_SHIFT)),
                repeat(index << _CUR_SHIFT | _PAID_CODE),
            )
            clean = list(map(eq, map(code_at, positions), expected))
            matched = list(compress(positions, clean))
            if len(set(matched)) != len(matched) or any(map(mark_at, matched)):
                _first_clean_only(clean, positions, matched, marks)
                matched = list(compress(positions, clean))
            deque(map(marks.__setitem__, matched, repeat(_MATCHED)), maxlen=0)
        for at in compress(range(size), map(not_, clean)):
            match(batch.row(at), positions[at])
        return size

    records_read = 0
    provider_batches = None if windowed else getattr(provider, "iter_batches", None)
    if provider_batches is not None:
        with closing(provider_batches(with_time=False)) as provider_items:
            for chunk_no, rec_item in enumerate(provider_items):
                if isinstance(rec_item, ProviderBatch):
                    records_read += match_batch(rec_item)
                else:
                    records_read += match_rows(rec_item)
                if progress is not None and not chunk_no % _PROGRESS_CHUNKS:
                    progress("records", records_read)
    else:
        records_read = match_rows(_rows_of_records(provider, with_time=windowed))
    report.records_read = records_read
    if progress is not None:
        progress("records", records_read)

    # -- 3. classify -----------------------------------------------------------------------
    for source in (internal, provider):
        report.bad_rows.extend(getattr(source, "bad_rows", ()))
    _Classifier(report, policy, currencies, known_refunds).run(held, codes, marks, states, orphans)
    report.fees = {cur: Money(v, cur) for cur, v in fee_by_cur.items() if v}
    report.net = {cur: Money(v, cur) for cur, v in net_by_cur.items() if v}

    if apply:
        from paygate.reconcile._apply import apply_actions

        apply_actions(report, gateway, run_id=str(run_id), on_action=on_action)
    return report


def _first_clean_only(
    clean: list[bool], positions: list[int], matched: list[int], marks: bytearray
) -> None:
    """Unmark, in ``clean``, the records that are not their order's first clean payment:
    a repeat within the batch (a double charge) or an order marked by an earlier batch."""
    at = list(compress(range(len(clean)), clean))
    # the first index of each order, found in C (later indexes overwrite earlier ones
    # when zipped in reverse), then only the records to unmark are visited
    first = dict(zip(reversed(matched), reversed(at), strict=True))
    repeat_or_marked = map(
        or_, map(ne, map(first.__getitem__, matched), at), map(marks.__getitem__, matched)
    )
    for index in list(compress(at, repeat_or_marked)):
        clean[index] = False


def _promote(code: int, matched: bool, currencies: list[str]) -> _OrderState:
    state = _OrderState(code)
    if matched:
        currency = currencies[code >> _CUR_SHIFT & _CUR_MASK]
        state.payments.append((code >> _AMOUNT_SHIFT, currency, None))
        state.unknown_first = True
    return state


class _Classifier:
    def __init__(
        self,
        report: ReconciliationReport,
        policy: Policy,
        currencies: list[str],
        known_refunds: dict[str, int],
    ) -> None:
        self.report = report
        self.policy = policy
        self.currencies = currencies
        self.known_refunds = known_refunds
        self.counts: dict[Case, int] = dict.fromkeys(Case, 0)
        self.totals: dict[Case, dict[str, int]] = {}

    def _total(self, case: Case, currency: str, amount: int) -> None:
        by_cur = self.totals.setdefault(case, {})
        by_cur[currency] = by_cur.get(currency, 0) + amount

    def _line(self, line: ReconciliationLine) -> None:
        self.counts[line.case] += 1
        money = line.amount
        if money is not None:
            self._total(line.case, money.currency, money.amount)
        self.report.lines.append(line)

    def run(
        self,
        held: dict[str | None, int],
        codes: MutableSequence[int],
        marks: bytearray,
        states: dict[int, _OrderState],
        orphans: list[ProviderRow],
    ) -> None:
        currencies = self.currencies
        counts = self.counts
        # positions follow the dict's order (a key is only ever removed with its code)
        assert len(codes) == len(held) + 1 == len(marks)
        marks = marks[: len(held)]
        # the clean matches, counted and summed in C: a million orders is mostly these
        matched = marks.translate(_ONLY_MATCHED)
        n_matched = matched.count(1)
        counts[Case.MATCHED] += n_matched
        clean = compress(codes, matched)
        if len(currencies) == 1:
            total = sum(map(rshift, clean, repeat(_AMOUNT_SHIFT)))
            by_currency = {0: total} if n_matched else {}
        else:
            by_currency = {}
            for code in clean:
                index = code >> _CUR_SHIFT & _CUR_MASK
                by_currency[index] = by_currency.get(index, 0) + (code >> _AMOUNT_SHIFT)
        for index, total in by_currency.items():
            self._total(Case.MATCHED, currencies[index], total)
        # everything else, one by one, in the books' order
        others = compress(zip(held, codes, count()), marks.translate(_NOT_MATCHED))
        for order_id, code, position in others:
            assert order_id is not None  # only the provider side lacks order ids
            if marks[position] == _PROMOTED:
                self._order(order_id, states[position])
            else:
                self._no_record(order_id, code)
        for row in orphans:
            self._orphan(row)
        report = self.report
        report.counts = {case: n for case, n in counts.items() if n}
        report.totals = {
            case: {cur: Money(v, cur) for cur, v in by_cur.items() if v or counts[case]}
            for case, by_cur in self.totals.items()
            if counts[case]
        }

    def _decode(self, code: int) -> tuple[Money, OrderStatus]:
        currency = self.currencies[code >> _CUR_SHIFT & _CUR_MASK]
        return Money(code >> _AMOUNT_SHIFT, currency), _STATUSES[code & _STATUS_MASK]

    def _no_record(self, order_id: str, code: int) -> None:
        amount, status = self._decode(code)
        if status not in PAID_LIKE:
            self.counts[
                Case.AWAITING
                if code & _RECENT and status is OrderStatus.PENDING
                else Case.NOT_CHARGED
            ] += 1
            return
        if code & _RECENT:
            self.counts[Case.AWAITING] += 1
            return
        self._line(
            ReconciliationLine(
                Case.MISSING,
                order_id,
                _ACTION_FOR[self.policy.paid_without_payment],
                internal_status=status,
                internal_amount=amount,
                note="the order is paid but the provider has no record of it",
            )
        )

    def _order(self, order_id: str, state: _OrderState) -> None:
        amount, status = self._decode(state.code)
        policy = self.policy
        currency = amount.currency
        payments = state.payments
        fee_currency = state.fee_currency  # the records', which may not be the order's
        fee = Money(state.fee, fee_currency) if state.fee and fee_currency else None
        net = Money(state.net, fee_currency) if state.net and fee_currency else None
        record_ids = tuple(state.record_ids)
        found = False

        def line(case: Case, action: Action, provider_amount: Money | None, **kw: Any) -> None:
            nonlocal found
            found = True
            difference = None
            if case is Case.AMOUNT_MISMATCH and provider_amount is not None:
                difference = provider_amount - amount
            self._line(
                ReconciliationLine(
                    case,
                    order_id,
                    action,
                    internal_status=status,
                    internal_amount=amount,
                    provider_amount=provider_amount,
                    difference=difference,
                    fee=fee,
                    net=net,
                    record_ids=record_ids,
                    **kw,
                )
            )

        paid_total = sum(a for a, _, _ in payments) - state.reversed
        succeeded = bool(payments) and paid_total > 0
        payment_ids = tuple(pid for _, _, pid in payments if pid is not None)
        named_ids = tuple(dict.fromkeys(payment_ids + tuple(state.related)))
        if not succeeded:
            failed = state.failed + (len(payments) if payments else 0)
            if state.pending:
                self.counts[Case.IN_PROGRESS] += 1
                found = True
            elif failed:
                if status in PAID_LIKE:
                    line(
                        Case.PAYMENT_FAILED,
                        _ACTION_FOR[policy.paid_without_payment],
                        None,
                        provider_status="failed",
                        note=f"{failed} payment attempt(s) failed, none succeeded",
                    )
                else:
                    self.counts[Case.BOTH_FAILED] += 1
                    found = True
        elif status not in PAID_LIKE:
            first_currency = payments[0][1]
            line(
                Case.UNPAID_ORDER_CHARGED,
                _ACTION_FOR[policy.unpaid_order_charged],
                Money(
                    sum(a for a, c, _ in payments if c == first_currency) - state.reversed,
                    first_currency,
                ),
                provider_status="succeeded",
                payment_ids=payment_ids,
                note=f"the order is {status} but {len(payments)} payment(s) succeeded",
            )
        else:
            foreign = [(a, c, p) for a, c, p in payments if c != currency]
            if foreign:
                a, c, p = foreign[0]
                line(
                    Case.CURRENCY_MISMATCH,
                    Action.INVESTIGATE,
                    Money(a, c),
                    provider_status="succeeded",
                    payment_ids=(p,) if p else (),
                    note=f"the order is in {currency}, the payment in {c}",
                )
            else:
                exact = next((i for i, (a, _, _) in enumerate(payments) if a == amount.amount), 0)
                if len(payments) > 1:
                    extras = [p for i, p in enumerate(payments) if i != exact]
                    line(
                        Case.DOUBLE_CHARGE,
                        _ACTION_FOR[policy.double_charge],
                        Money(sum(a for a, _, _ in extras), currency),
                        provider_status="succeeded",
                        payment_ids=tuple(p for _, _, p in extras if p),
                        note=f"{len(payments)} successful payments for one order",
                    )
                kept = payments[exact][0] - state.reversed
                if kept != amount.amount:
                    line(
                        Case.AMOUNT_MISMATCH,
                        Action.INVESTIGATE,
                        Money(kept, currency),
                        provider_status="succeeded",
                        payment_ids=(payments[exact][2],) if payments[exact][2] else (),
                        note="the provider took a different amount than the order's",
                    )
                if not found and not state.refunded and state.disputes <= 0:
                    self.counts[Case.MATCHED] += 1
                    self._total(Case.MATCHED, currency, amount.amount)
                    return
        known = self.known_refunds.get(order_id, 0)
        if status is OrderStatus.REFUNDED:
            known = max(known, amount.amount)
        if state.refunded > known:
            line(
                Case.UNKNOWN_REFUND,
                Action.RECORD,
                Money(state.refunded - known, currency),
                provider_status="refunded",
                payment_ids=named_ids,
                note="the provider refunded more than the books know",
            )
        if state.disputes > 0 and status is not OrderStatus.DISPUTED:
            line(
                Case.UNKNOWN_DISPUTE,
                Action.RECORD,
                amount,
                provider_status="disputed",
                payment_ids=named_ids,
                note="a dispute the books do not know about",
            )
        if not found:
            # only refunds/disputes the books already know (their payment may be outside
            # the report): the books agree
            if status in PAID_LIKE:
                self.counts[Case.MATCHED] += 1
                self._total(Case.MATCHED, currency, amount.amount)
            else:
                self.counts[Case.NOT_CHARGED] += 1

    def _orphan(self, row: ProviderRow) -> None:
        order_id, kind, status, amount, currency, fee, net, record_id, payment_id, _ = row
        self._line(
            ReconciliationLine(
                Case.ORPHAN,
                order_id,
                Action.INVESTIGATE,
                provider_status=f"{kind} {status}",
                provider_amount=Money(amount, currency),
                fee=Money(fee, currency) if fee else None,
                net=Money(net, currency) if net else None,
                payment_ids=(payment_id,) if payment_id else (),
                record_ids=(record_id,),
                note="no order with this id in the books"
                if order_id
                else "the record carries no order id",
            )
        )
