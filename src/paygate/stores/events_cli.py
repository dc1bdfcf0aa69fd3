"""``paygate events``: the recorded webhook events.

``paygate events list --store URL [--since WHEN] [--payment ID] [--json]`` prints them
(a header line, then one line per event; ``--json``: one JSON list of objects instead);
``paygate events replay --app MODULE:NAME [--store URL] [--since WHEN] [--payment ID]``
runs the application's handlers again for them (after a handler bug was fixed), without
applying any state transition again: see [`paygate.Gateway.replay`][paygate.gateway.Gateway.replay].

The payment facts in the outbox: ``paygate events facts --store URL [--payment ID]
[--all] [--json]`` prints those whose handlers have not all run (pending, or failed with their
error and attempt count; ``--all``: done ones too); ``paygate events dispatch --app
MODULE:NAME [--limit N]`` runs the app's handlers for them now, failed ones included
([`paygate.Gateway.dispatch_pending`][paygate.gateway.Gateway.dispatch_pending]: each once, in order
per payment; a cron job).

The handlers live in the application, so ``--app`` names where its Gateway is: a module
attribute that is a [`Gateway`][paygate.gateway.Gateway] (``shop.payments:gateway``) or a callable
returning one (``shop.payments:make_gateway``), imported as the web app would import it.
Events are read from ``--store`` when given, else from that Gateway's own store.

``WHEN`` is an ISO 8601 time (``2026-05-01T12:00:00Z``; a date alone means its midnight
UTC) or Unix seconds.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from datetime import datetime, timezone
from typing import Any

from paygate.errors import ConfigurationError, PaygateError
from paygate.stores import Store, _redact, open_store
from paygate.stores.cli import check_connect

__all__ = ["add_arguments", "load_gateway", "parse_since", "run"]


def parse_since(text: str) -> float:
    """Unix seconds from ``--since`` (ISO 8601, naive = UTC, or Unix seconds)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigurationError(
            f"--since must be an ISO 8601 time or Unix seconds, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def load_gateway(target: str) -> Any:
    """The Gateway named by ``module:attribute`` (an instance, or a factory called with no
    arguments)."""
    from paygate.gateway import Gateway

    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConfigurationError(f"--app must look like 'package.module:gateway', got {target!r}")
    if os.getcwd() not in sys.path:  # as `python -m` would: the app's modules beside it
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(f"--app: cannot import {module_name!r} ({exc})") from None
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"--app: {module_name!r} has no {attr_path!r}") from None
    if not isinstance(obj, Gateway) and callable(obj):
        obj = obj()
    if not isinstance(obj, Gateway):
        raise ConfigurationError(
            f"--app {target!r} is a {type(obj).__name__}, not a paygate.Gateway "
            "(or a function returning one)"
        )
    return obj


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=os.environ.get("PAYGATE_STORE_URL"),
        help="store URL (default: $PAYGATE_STORE_URL; for replay: the app's store)",
    )
    parser.add_argument("--since", help="events received at or after (ISO 8601 or Unix s)")
    parser.add_argument("--payment", help="only this payment's events")


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON list of objects (stable keys) instead of text lines",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="events_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", help="print recorded events")
    _filters(listing)
    _json_flag(listing)
    replay = sub.add_parser("replay", help="run the app's handlers again for recorded events")
    _filters(replay)
    replay.add_argument(
        "--app",
        required=True,
        help="where the app's Gateway is: package.module:gateway or :make_gateway",
    )
    replay.add_argument(
        "--dry-run", action="store_true", help="print what would be replayed, run nothing"
    )
    facts = sub.add_parser("facts", help="print the payment facts whose handlers have not run")
    facts.add_argument(
        "--store",
        default=os.environ.get("PAYGATE_STORE_URL"),
        help="store URL (default: $PAYGATE_STORE_URL)",
    )
    facts.add_argument("--payment", help="only this payment's facts")
    facts.add_argument("--all", action="store_true", help="done facts too")
    _json_flag(facts)
    dispatch = sub.add_parser(
        "dispatch", help="run the app's handlers for pending and failed facts now"
    )
    dispatch.add_argument(
        "--app",
        required=True,
        help="where the app's Gateway is: package.module:gateway or :make_gateway",
    )
    dispatch.add_argument("--limit", type=int, default=1000, help="at most this many facts")


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat(timespec="seconds")


# the columns of `events list` and `events facts`: the text header and the JSON keys
EVENT_COLUMNS = (
    "received_at", "provider", "event_id", "event_type", "payment_id", "outcome", "state",
    "deliveries",
)  # fmt: skip
FACT_COLUMNS = ("recorded_at", "id", "type", "order_id", "source", "state")


def _print_json(rows: list[dict[str, Any]]) -> None:
    print(json.dumps(rows, indent=2))


def _list(store: Store, since: float | None, payment: str | None, as_json: bool = False) -> int:
    events = store.list_events(since=since, payment_id=payment)
    rows: list[dict[str, Any]] = []
    for e in events:
        state = "processed" if e.processed else ("applied" if e.applied_at else "pending")
        # what the text line shows, no payload: events may carry customer data
        rows.append({
            "received_at": _when(e.received_at), "provider": e.provider,
            "event_id": e.event_id, "event_type": e.event_type, "payment_id": e.payment_id,
            "outcome": e.outcome, "state": state,
            "deliveries": e.deliveries,
        })  # fmt: skip
    if as_json:
        _print_json(rows)
        return 0
    print("  ".join(EVENT_COLUMNS))
    for r in rows:
        print(f"{r['received_at']}  {r['provider']}  {r['event_id']}  {r['event_type']}  "
              f"{r['payment_id'] or '-'}  {r['outcome'] or '-'}  {r['state']}  "
              f"x{r['deliveries']}")  # fmt: skip
    print(f"{len(events)} event(s)")
    return 0


def _facts(store: Store, payment: str | None, every: bool, as_json: bool = False) -> int:
    facts = store.list_facts(pending=not every, payment_id=payment)
    if as_json:
        _print_json([
            {
                "recorded_at": _when(f.recorded_at), "id": f.id, "type": f.type.value,
                "payment_id": f.payment_id, "order_id": f.order_id, "source": f.source,
                "state": "done" if f.done else ("failed" if f.last_error is not None
                                                else "pending"),
                "attempts": f.attempts, "last_error": f.last_error,
            }
            for f in facts
        ])  # fmt: skip
        return 0
    print("  ".join(FACT_COLUMNS))
    for f in facts:
        if f.done:
            state = "done"
        elif f.last_error is not None:
            state = f"failed x{f.attempts}: {f.last_error}"
        else:
            state = "pending" if not f.attempts else f"pending x{f.attempts}"
        print(f"{_when(f.recorded_at)}  {f.id}  {f.type.value}  {f.order_id or '-'}  "
              f"{f.source}  {state}")  # fmt: skip
    print(f"{len(facts)} fact(s)" + ("" if every else " pending or failed"))
    return 0


def _dispatch(target: str, limit: int) -> int:
    gateway = load_gateway(target)
    try:
        summary = gateway.dispatch_pending(limit=limit)
    finally:
        gateway.close()
    for error in summary.errors:
        print(f"failed: {error}", file=sys.stderr)
    print(f"{summary.done} fact(s) done, {summary.failed} failed "
          f"({summary.handlers_run} handler run(s))")  # fmt: skip
    return 1 if summary.failed else 0


def run(args: argparse.Namespace) -> int:
    name = f"paygate events {args.events_command}"
    try:
        if args.events_command == "facts":
            if not args.store:
                print(f"{name}: give --store URL or set PAYGATE_STORE_URL", file=sys.stderr)
                return 2
            check_connect(args.store)
            store = open_store(args.store)
            try:
                return _facts(store, args.payment, args.all, args.json)
            finally:
                store.close()
        if args.events_command == "dispatch":
            return _dispatch(args.app, args.limit)
        since = parse_since(args.since) if args.since else None
        if args.events_command == "list":
            if not args.store:
                print(f"{name}: give --store URL or set PAYGATE_STORE_URL", file=sys.stderr)
                return 2
            check_connect(args.store)
            store = open_store(args.store)
            try:
                return _list(store, since, args.payment, args.json)
            finally:
                store.close()
        gateway = load_gateway(args.app)
        source = open_store(args.store) if args.store else None
        try:
            replayed = gateway.replay(
                since=since, payment_id=args.payment, store=source, dry_run=args.dry_run
            )
        finally:
            if source is not None:
                source.close()
            gateway.close()
    except PaygateError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a handler raised: the replay stopped there
        print(f"{name}: a handler raised {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    verb = "would replay" if args.dry_run else "replayed"
    for event in replayed:
        print(f"{verb} {event.id} ({event.type.value})")
    where = _redact(args.store) if args.store else "the app's store"
    print(f"{len(replayed)} event(s) {verb} from {where}; no transition applied again")
    return 0
