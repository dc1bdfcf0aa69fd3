"""``paygate sandbox``: run the sandbox, or talk to a running one.

    paygate sandbox [--port 12111] [--forward-to URL ...] [--store sqlite:///sandbox.db]
    paygate sandbox trigger payment_intent.succeeded [--provider stripe]
    paygate sandbox events [--provider stripe] [--limit 20]
    paygate sandbox resend evt_...

``trigger``, ``events`` and ``resend`` call the running sandbox's admin API
(``/_sandbox/...``) at ``--url`` (default ``http://127.0.0.1:12111``).
"""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import datetime, timezone
from typing import Any

from paygate.sandbox.app import DEFAULT_PORT

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0: any free one)")
    parser.add_argument(
        "--forward-to",
        action="append",
        default=[],
        metavar="URL",
        help="deliver every event to this webhook endpoint (repeatable)",
    )
    parser.add_argument(
        "--store", default="memory://", help="memory:// (default) or sqlite:///sandbox.db"
    )
    sub = parser.add_subparsers(
        dest="action", metavar="ACTION", title="actions on a running sandbox (none: run one)"
    )
    default_url = f"http://127.0.0.1:{DEFAULT_PORT}"
    trigger = sub.add_parser("trigger", help="fire a realistic event (like `stripe trigger`)")
    trigger.add_argument("event_type", help="e.g. payment_intent.succeeded")
    trigger.add_argument(
        "--provider",
        default="stripe",
        choices=("stripe", "paypal", "square"),
        help="whose event (default stripe)",
    )
    events = sub.add_parser("events", help="list recent events and their deliveries")
    events.add_argument(
        "--provider",
        default=None,
        choices=("stripe", "paypal", "square"),
        help="only this provider's events",
    )
    events.add_argument("--limit", type=int, default=20, help="how many, newest first")
    resend = sub.add_parser("resend", help="deliver an event again to every endpoint")
    resend.add_argument("event_id", help="the event's id (from `paygate sandbox events`)")
    for action in (trigger, events, resend):
        action.add_argument("--url", default=default_url, help="the running sandbox")


def run(args: argparse.Namespace) -> int:
    if args.action is None:
        return _serve(args)
    import httpx

    try:
        with httpx.Client(base_url=args.url, timeout=30) as client:
            if args.action == "trigger":
                response = client.post(
                    "/_sandbox/trigger",
                    json={"provider": args.provider, "event_type": args.event_type},
                )
            elif args.action == "events":
                params: dict[str, Any] = {"limit": args.limit}
                if args.provider:
                    params["provider"] = args.provider
                response = client.get("/_sandbox/events", params=params)
            else:
                response = client.post(f"/_sandbox/events/{args.event_id}/resend")
    except httpx.HTTPError as exc:
        print(f"paygate sandbox: no sandbox answering at {args.url} ({exc})", file=sys.stderr)
        return 1
    data = response.json()
    if response.status_code >= 400:
        message = data.get("error") or data
        print(f"paygate sandbox {args.action}: {message}", file=sys.stderr)
        return 1
    if args.action == "events":
        _print_events(data["events"])
    elif args.action == "trigger":
        for event_id in data["events"]:
            print(event_id)
    else:
        print(f"resending {data['resent']} to {', '.join(data['to']) or '(no endpoint)'}")
    return 0


def _print_events(events: list[dict[str, Any]]) -> None:
    for event in events:
        when = datetime.fromtimestamp(event["created"], tz=timezone.utc).strftime("%H:%M:%S")
        print(f"{when}  {event['provider']:<7} {event['id']}  {event['type']}")
        for attempt in event["attempts"]:
            status = attempt["status"] if attempt["status"] is not None else "---"
            print(f"          #{attempt['attempt']} {status} {attempt['url']}")


def _serve(args: argparse.Namespace) -> int:
    from paygate.sandbox.app import Sandbox

    sandbox = Sandbox(host=args.host, port=args.port, forward_to=args.forward_to, store=args.store)
    try:
        sandbox.start()
    except OSError as exc:
        print(f"paygate sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        sandbox.stop()
        return 1
    info = sandbox.info()
    print(f"paygate sandbox listening on {sandbox.base_url} (store {info['store']})")
    print(f"dashboard: {sandbox.base_url}/")
    for name, face in info["providers"].items():
        print(f"\n{name}: base_url={face['base_url']}")
        for setting, value in face["secrets"].items():
            print(f"  {setting}={value}")
    print("\nwebhooks to: " + (", ".join(args.forward_to) or "(none: add --forward-to URL)"))
    sys.stdout.flush()
    # `kill` (SIGTERM) stops it as Ctrl-C does: the store is closed, deliveries stop
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
