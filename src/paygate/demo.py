"""``paygate demo``: a narrated end-to-end run on the fake provider and a SQLite file.

No account, no network: an order paid through a hosted checkout, its signed webhook
delivered twice (the duplicate is ignored), a declined card retried with another, a
3-D Secure payment, a partial then a full refund, a refund whose webhook arrives before
the payment's (the order still ships, once), a subscription changing plan, a dispute
answered with evidence and won, and a reorder with a saved card charged off session --
each step printed with the payment's status as the store records it, and each fact the
shop's handlers hear.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from paygate._facts import Fact
from paygate.errors import CardDeclined
from paygate.gateway import Gateway, WebhookResult
from paygate.models import DisputeEvidence, EventType, EvidenceFile, LineItem
from paygate.money import Money

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="SQLite file to use (default: a new file in a temporary directory, removed after)",
    )
    parser.add_argument("--seed", type=int, default=2024, help="fake provider seed (ids)")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="also show paygate's INFO log on stderr"
    )


class _Narrator:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.step = 0
        self.notes: list[str] = []

    def title(self, text: str) -> None:
        self.step += 1
        print(f"\n{self.step}. {text}", file=self.out)

    def say(self, text: str) -> None:
        print(f"   {text}", file=self.out)
        self.flush_notes()

    def note(self, text: str) -> None:
        """Said after the current line (handlers run inside the gateway call it reports)."""
        self.notes.append(text)

    def flush_notes(self) -> None:
        for text in self.notes:
            print(f"     -> {text}", file=self.out)
        self.notes.clear()


@contextmanager
def _database(path: str | None) -> Iterator[Path]:
    if path is not None:
        yield Path(path).resolve()
        return
    with tempfile.TemporaryDirectory(prefix="paygate-demo-") as tmp:
        yield Path(tmp) / "paygate.db"


def _moved(result: WebhookResult) -> str:
    if result.status is None:
        return "-"
    if result.previous_status is result.status:
        return f"status {result.status.value}"
    previous = result.previous_status.value if result.previous_status else "new"
    return f"{previous} -> {result.status.value}"


def _deliver(gw: Gateway, say: _Narrator) -> list[WebhookResult]:
    """Hand every pending webhook of the fake provider to the gateway, narrating."""
    from paygate.providers.fake import FakeProvider

    provider = gw.provider
    assert isinstance(provider, FakeProvider)
    results = []
    for delivery in provider.take_webhooks():
        result = gw.handle_webhook(delivery.body, delivery.headers)
        results.append(result)
        say.say(f"webhook {result.event.type.value:<23} {result.outcome:<13} {_moved(result)}")
    return results


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("   [log] %(message)s"))
        logging.getLogger("paygate").addHandler(handler)
        logging.getLogger("paygate").setLevel(logging.INFO)
    say = _Narrator(out)
    # the demo's own webhook secret (or the one in the environment): never printed
    secret = os.environ.get("PAYGATE_FAKE_WEBHOOK_SECRET") or "whsec_" + secrets.token_hex(16)
    with _database(args.db) as db:
        gw = Gateway.from_config(
            {
                "provider": "fake",
                "store": f"sqlite:///{db}",
                "fake": {"seed": args.seed, "webhook_secret": secret},
            }
        )
        with gw:
            _story(gw, say, db)
    return 0


def _story(gw: Gateway, say: _Narrator, db: Path) -> None:
    from paygate.providers.fake import FakeProvider

    provider = gw.provider
    assert isinstance(provider, FakeProvider)
    fulfilled: list[str] = []

    @gw.on(EventType.PAYMENT_SUCCEEDED)
    def fulfil(fact: Fact) -> None:
        fulfilled.append(fact.order_id or "?")
        say.note(f"handler: order {fact.order_id} paid ({fact.source}), shipping it")

    @gw.on(EventType.REFUND_SUCCEEDED)
    def refunded(fact: Fact) -> None:
        say.note(f"handler: {fact.amount} refunded on order {fact.order_id} ({fact.source})")

    @gw.on(EventType.SUBSCRIPTION_PLAN_CHANGED)
    def plan_changed(fact: Fact) -> None:
        assert fact.subscription is not None
        say.note(f"handler: subscription {fact.subscription_id} now on "
                 f"{fact.subscription.price_id} ({fact.source})")  # fmt: skip

    @gw.on(EventType.DISPUTE_OPENED, EventType.DISPUTE_WON, EventType.DISPUTE_LOST)
    def disputed(fact: Fact) -> None:
        say.note(f"handler: {fact.type.value} on order {fact.order_id} ({fact.source})")

    print("paygate demo: the fake provider and a SQLite store, no network", file=say.out)
    print(f"store: {db}", file=say.out)

    say.title("Order ord_1001 is created first, then a hosted checkout for it")
    checkout = {
        "order_id": "ord_1001",
        "line_items": [LineItem(name="T-shirt", unit_amount=Money.of("10.00", "USD"), quantity=2)],
        "success_url": "https://shop.example/ok",
        "cancel_url": "https://shop.example/cancel",
    }
    session = gw.create_checkout(**checkout)  # type: ignore[arg-type]
    say.say(f"checkout {session.id}: send the customer to {session.url}")
    same = gw.create_checkout(**checkout)  # type: ignore[arg-type]
    say.say(f"asking again for the same order gives the same page: {same.id == session.id}")

    say.title("The customer pays; the provider sends signed webhooks")
    provider.complete_checkout(session.id, payment_method="tok_visa")
    deliveries = provider.take_webhooks()
    succeeded = None
    for delivery in deliveries:
        result = gw.handle_webhook(delivery.body, delivery.headers)
        if result.event.type is EventType.PAYMENT_SUCCEEDED:
            succeeded = delivery
        say.say(f"webhook {result.event.type.value:<23} {result.outcome:<13} {_moved(result)}")
    assert succeeded is not None
    say.title("The provider delivers payment.succeeded again")
    again = provider.redeliver(succeeded)
    result = gw.handle_webhook(again.body, again.headers)
    say.say(f"duplicate={result.duplicate}: nothing changes, the order is not shipped twice "
            f"(shipped {fulfilled.count('ord_1001')}x)")  # fmt: skip
    back = gw.handle_return({"session_id": session.id, "status": "paid"})
    say.say(f"the customer's redirect back: looked up at the provider -> {back.status.value}")
    paid = back

    say.title("Order ord_1002: a declined card, then another card")
    try:
        gw.create_payment(order_id="ord_1002", amount=Money.of("42.00", "USD"),
                          payment_method="tok_declined")  # fmt: skip
    except CardDeclined as exc:
        say.say(f"declined ({exc.decline_code}); nothing charged")
    _deliver(gw, say)
    retry = gw.create_payment(order_id="ord_1002", amount=Money.of("42.00", "USD"),
                              payment_method="tok_visa")  # fmt: skip
    say.say(f"second attempt {retry.id}: {retry.status.value}")
    double = gw.create_payment(order_id="ord_1002", amount=Money.of("42.00", "USD"),
                               payment_method="tok_visa")  # fmt: skip
    charges = [p for p in provider.payments() if p.order_id == "ord_1002" and p.amount_captured]
    say.say(f"a double click returns the same payment ({double.id == retry.id}); "
            f"charges at the provider for this order: {len(charges)}")  # fmt: skip
    _deliver(gw, say)

    say.title("Order ord_1003: a card that needs 3-D Secure")
    secure = gw.create_payment(
        order_id="ord_1003",
        amount=Money.of("15.50", "EUR"),
        payment_method="tok_3ds",
        return_url="https://shop.example/back",
    )
    say.say(f"{secure.id}: {secure.status.value}; the customer goes to {secure.redirect_url}")
    _deliver(gw, say)
    provider.authenticate(secure.id)
    say.say("the customer authenticates at the bank")
    _deliver(gw, say)
    say.say(f"status now: {gw.handle_return({'payment_id': secure.id}).status.value}")

    say.title(f"Refunds on ord_1001's payment ({paid.amount})")
    first = gw.refund(paid.id, amount=Money.of("5.00", "USD"))
    say.say(f"refund {first.id} of {first.amount}: "
            f"payment {gw.get_payment(paid.id).status.value}")  # fmt: skip
    rest = gw.refund(paid.id)
    say.say(f"refund {rest.id} of the rest, {rest.amount}: "
            f"payment {gw.get_payment(paid.id).status.value}")  # fmt: skip
    _deliver(gw, say)

    say.title("Order ord_1004: the refund's webhook arrives before the payment's")
    late = provider.create_payment(
        order_id="ord_1004", amount=Money.of("30.00", "USD"), payment_method="tok_visa",
        idempotency_key="demo-1004",
    )  # fmt: skip
    provider.refund_payment(late.id, amount=Money.of("10.00", "USD"), idempotency_key="demo-r")
    deliveries = [d for d in provider.take_webhooks() if b'"payment.created"' not in d.body]
    for delivery in reversed(deliveries):  # the network reorders them: refund first
        result = gw.handle_webhook(delivery.body, delivery.headers)
        say.say(f"webhook {result.event.type.value:<23} {result.outcome:<13} {_moved(result)}")
    say.say(f"the refund proved the capture: the order shipped once "
            f"({fulfilled.count('ord_1004')}x), then the refund was told")  # fmt: skip

    say.title("A subscription")
    customer = gw.create_customer(email="ada@example.com", name="Ada")
    subscription = gw.create_subscription(customer_id=customer.id, price_id="price_basic")
    say.say(f"customer {customer.id}, subscription {subscription.id}: "
            f"{subscription.status.value}")  # fmt: skip
    _deliver(gw, say)
    provider.define_price("price_pro", Money.of("30.00", "USD"))
    upgraded = gw.change_subscription(
        subscription.id, price_id="price_pro", proration="create_prorations"
    )
    say.say(f"plan change to {upgraded.price_id} (the unused basic time credited on the next "
            f"invoice): {upgraded.status.value}")  # fmt: skip
    _deliver(gw, say)
    canceled = gw.cancel_subscription(subscription.id, at_period_end=True)
    say.say(f"cancel at period end: {canceled.cancel_at_period_end}")
    _deliver(gw, say)

    say.title(f"A dispute on ord_1002's payment ({retry.amount}), answered with evidence")
    dispute = provider.open_dispute(retry.id, reason="product_not_received")
    _deliver(gw, say)
    evidence = DisputeEvidence(
        explanation="Delivered to the address on the order, signed for.",
        shipping_carrier="UPS",
        tracking_number="1Z999AA10123456784",
        files=(EvidenceFile("delivery.pdf", b"%PDF-1.4 signed delivery slip",
                            kind="shipping_documentation"),),
    )  # fmt: skip
    answered = gw.submit_dispute_evidence(dispute.id, evidence)
    say.say(f"dispute {dispute.id} ({answered.reason_code.value if answered.reason_code else '?'}"
            f"): evidence submitted, {answered.status.value}")  # fmt: skip
    provider.decide_dispute(dispute.id)  # the card network rules
    _deliver(gw, say)
    say.say(f"dispute {gw.get_dispute(dispute.id).status.value}: payment "
            f"{gw.get_payment(retry.id).status.value}")  # fmt: skip
    say.title("Ada saves her card, then reorders next month without checking out")
    setup = gw.create_setup(customer.id, return_url="https://shop.example/saved")
    say.say(f"setup {setup.id}: Ada enters her card at {setup.url}")
    provider.approve_setup(setup.id, payment_method="tok_mastercard")
    saved = gw.complete_setup({"setup_id": setup.id})
    card = gw.get_payment_method(saved.payment_method_id or "")
    gw.set_default_payment_method(customer.id, card.id)
    say.say(f"back at the shop: {saved.status.value}, {card.brand} ending {card.last4} "
            f"(exp {card.exp_month:02d}/{card.exp_year}) is her default")  # fmt: skip
    _deliver(gw, say)
    reorder = gw.create_payment(order_id="ord_1005", amount=Money.of("42.00", "EUR"),
                                payment_method=card.id, customer_id=customer.id,
                                off_session=True)  # fmt: skip
    say.say(f"reorder ord_1005 charged off session: {reorder.status.value}")
    _deliver(gw, say)

    say.title(f"The transition log of {paid.id}")
    for t in gw.history(paid.id):
        say.say(f"{t.previous_status.value if t.previous_status else 'new':<18} -> "
                f"{t.new_status.value:<18} by {t.source:<7} {t.event_type or t.trigger:<18} "
                f"captured {t.captured_money}, refunded {t.refunded_money}")  # fmt: skip

    events = gw.store.list_events()
    print(f"\nDone: {len(events)} webhook events recorded, orders shipped: "
          f"{', '.join(sorted(set(fulfilled)))} (each once: {len(fulfilled)} shipments).",
          file=say.out)  # fmt: skip
