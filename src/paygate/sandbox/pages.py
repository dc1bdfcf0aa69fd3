"""The sandbox's hosted pages and dashboard: their routes and what their buttons do.

``register(sandbox)`` adds:

- `GET /`: the dashboard (payments, refunds, disputes, subscriptions, events with their
  delivery attempts); `POST /_sandbox/actions`: its buttons (settle a processing payment,
  open / win / lose a dispute, renew a subscription or fail its renewal);
  `POST /events/<id>/resend`: its **Resend** button.
- `GET /checkout/<session_id>`: Stripe Checkout's hosted page; its form posts `card` to
  `/checkout/<session_id>/pay` (the Stripe face's route).
- `GET /3ds/<intent_id>`: the 3-D Secure challenge; its form posts `result`
  (`authenticate` or `fail`) to `/3ds/<intent_id>/complete` (the Stripe face's route);
  `GET /3ds/<intent_id>/done`: where a challenge without a `return_url` ends.
- `GET /invoices/<invoice_id>`: Stripe's hosted invoice page (`hosted_invoice_url`); its
  form posts `card` to `/invoices/<invoice_id>/pay`.
- `GET /paypal/approve/<token>`: PayPal's approval page (an order's or a subscription's
  approve link); its form posts `action` (`approve` or `cancel`) and `funding` to the same
  path (the PayPal face's route).
- `GET /paypal/invoice?id=<invoice id>`: PayPal's invoice payer view
  (`recipient_view_url`); its form posts `id` and `funding` to `/paypal/invoice`.
- `GET /square/pay/<link_id>`: Square's payment-link page; its form posts `card` to the
  same path (the Square face's route).

Every POST answers **303** (post/redirect/get): to the shop's URL, to the next hosted
page, or back to the same page with ``?error=<code>`` after a decline, as Stripe Checkout
shows the decline on its own page. The card typed in is never written anywhere: not in a
log line, not in a redirect, not back into the page.

The HTML itself is in `paygate.sandbox._html`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from werkzeug.exceptions import NotFound as HTTPNotFound
from werkzeug.wrappers import Request, Response

from paygate.errors import CardDeclined, PaygateError
from paygate.money import Money
from paygate.sandbox import _html
from paygate.sandbox._stripe_api import StripeAPIError

if TYPE_CHECKING:
    from paygate.providers.fake import FakeProvider
    from paygate.sandbox.app import Sandbox

__all__ = ["DECLINE_MESSAGES", "register"]

JSON = dict[str, Any]

#: ``?error=`` code → what the page tells the customer (Stripe Checkout's wording)
DECLINE_MESSAGES: Mapping[str, str] = {
    "card_declined": "Your card was declined.",
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
    "incorrect_number": "Your card number is incorrect. Use a test card (see below).",
    "authentication_failed": "We are unable to authenticate your payment method. "
    "Please choose a different payment method and try again.",
}

_HTML = "text/html; charset=utf-8"


def _page(body: str, status: int = 200) -> Response:
    return Response(body, status=status, content_type=_HTML)


def _see_other(url: str) -> Response:
    return Response("", status=303, headers={"Location": url, "Cache-Control": "no-store"})


def _money(amount: int, currency: str) -> str:
    return str(Money(int(amount), currency.upper()))


def _merchant(url: str | None) -> str:
    """The shop's name as the pages show it: the host of its return URL."""
    return urlsplit(url or "").netloc or "the shop"


def _error_message(code: str | None) -> str | None:
    if not code:
        return None
    return DECLINE_MESSAGES.get(code, "Your payment could not be completed.")


def register(sandbox: Sandbox) -> None:
    """Add the pages' routes to ``sandbox``."""
    _register_stripe(sandbox)
    _register_paypal(sandbox)
    _register_square(sandbox)
    _register_dashboard(sandbox)


# -- Stripe Checkout and 3-D Secure ---------------------------------------------------------------


def _register_stripe(sandbox: Sandbox) -> None:
    stripe = sandbox.stripe

    def checkout(request: Request, session_id: str) -> Response:
        try:
            session = stripe.checkout_view(session_id)
        except (PaygateError, StripeAPIError):
            raise HTTPNotFound(f"no such checkout session: {session_id:.80}") from None
        if session["status"] != "open":
            done = session["status"] == "complete"
            text = (
                (
                    "This card is already saved."
                    if session["mode"] == "setup"
                    else "This checkout is already paid."
                )
                if done
                else "This checkout session has expired."
            )
            link = (
                session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
                if done
                else session.get("cancel_url")
            )
            return _page(_html.message_page("Checkout " + session["status"], text, link=link))
        if session["mode"] == "setup":
            return _page(
                _html.checkout_page(
                    provider="stripe",
                    action=f"/checkout/{session['id']}/pay",
                    merchant=_merchant(session["success_url"]),
                    lines=[],
                    total="Nothing is charged now: the card is saved for later payments.",
                    cancel_url=session.get("cancel_url"),
                    error=_error_message(request.args.get("error")),
                    test_cards=_html.SETUP_TEST_CARDS,
                    setup=True,
                )
            )
        lines = [
            _html.LineRow(
                name=str(item.get("description") or "Item"),
                quantity=int(item["quantity"]),
                amount=_money(item["amount_total"], item["currency"]),
            )
            for item in session["line_items"]["data"]
        ]
        page = _html.checkout_page(
            provider="stripe",
            action=f"/checkout/{session['id']}/pay",
            merchant=_merchant(session["success_url"]),
            lines=lines,
            total=_money(session["amount_total"], session["currency"]),
            cancel_url=session.get("cancel_url"),
            error=_error_message(request.args.get("error")),
        )
        return _page(page)

    def challenge(request: Request, intent_id: str) -> Response:
        try:
            intent = stripe.intent_view(intent_id)
        except (PaygateError, StripeAPIError):
            raise HTTPNotFound(f"no such payment intent: {intent_id:.80}") from None
        if intent["status"] != "requires_action":
            text = f"This payment is {intent['status']}: there is nothing to authenticate."
            return _page(_html.message_page("3-D Secure", text, brand="stripe"))
        if intent["object"] == "setup_intent":  # saving a card: nothing is charged now
            amount = "nothing now (the card is saved for later payments)"
        else:
            amount = _money(intent["amount"], intent["currency"])
        page = _html.three_d_secure_page(
            action=f"/3ds/{intent['id']}/complete",
            merchant=_merchant(
                ((intent.get("next_action") or {}).get("redirect_to_url") or {}).get("return_url")
            ),
            amount=amount,
        )
        return _page(page)

    def done(request: Request, intent_id: str) -> Response:
        status = request.args.get("redirect_status", "")
        text = f"Authentication finished ({status or 'done'}). You can close this page."
        return _page(_html.message_page("3-D Secure", text, brand="stripe"))

    def invoice(request: Request, invoice_id: str) -> Response:
        from paygate.sandbox import _stripe_routes

        try:
            with stripe.state.transaction("stripe"):
                view = _stripe_routes.retrieve_invoice(stripe, {}, invoice_id)
        except (PaygateError, StripeAPIError):
            raise HTTPNotFound(f"no such invoice: {invoice_id:.80}") from None
        if view["status"] != "open":
            text = f"Invoice {view.get('number') or view['id']} is {view['status']}."
            return _page(_html.message_page("Invoice", text, brand="stripe"))
        lines = [
            _html.LineRow(
                name=str(line.get("description") or "Item"),
                quantity=int(line.get("quantity") or 1),
                amount=_money(line["amount"], line["currency"]),
            )
            for line in (view.get("lines") or {}).get("data") or []
        ]
        page = _html.checkout_page(
            provider="stripe",
            action=f"/invoices/{quote(view['id'], safe='')}/pay",
            merchant=f"invoice {view.get('number') or view['id']}",
            lines=lines,
            total=_money(view["amount_due"], view["currency"]),
            cancel_url=None,
            error=_error_message(request.args.get("error")),
        )
        return _page(page)

    def pay_invoice(request: Request, invoice_id: str) -> Response:
        from paygate.sandbox import _stripe_routes
        from paygate.sandbox.stripe import TEST_PAYMENT_METHODS, engine_token

        back = f"/invoices/{quote(invoice_id, safe='')}"
        try:
            token = engine_token(request.form.get("card", ""))
            # the API's own pay call, with the test payment method that stands for the card
            method = next(pm for pm, tok in TEST_PAYMENT_METHODS.items() if tok == token)
            with stripe.state.transaction("stripe"):
                _stripe_routes.pay_invoice(stripe, {"payment_method": method}, invoice_id)
        except CardDeclined as declined:
            return _see_other(f"{back}?" + urlencode({"error": declined.decline_code or ""}))
        except (PaygateError, StripeAPIError) as exc:
            code = getattr(exc, "code", None)
            return _see_other(
                f"{back}?error=incorrect_number" if code == "incorrect_number" else back
            )
        return _see_other(back)

    sandbox.route("/invoices/<invoice_id>", invoice)
    sandbox.route("/invoices/<invoice_id>/pay", pay_invoice, methods=("POST",))
    sandbox.route("/checkout/<session_id>", checkout)
    sandbox.route("/3ds/<intent_id>", challenge)
    sandbox.route("/3ds/<intent_id>/done", done)


# -- PayPal's approval page -----------------------------------------------------------------------


def _paypal_lines(view: JSON) -> tuple[list[_html.LineRow], str]:
    """An order's (or a subscription's) lines and total as PayPal's page shows them."""
    if view.get("kind") == "setup token":
        return [_html.LineRow("Save PayPal for later payments (nothing is charged now)", 1, "")], ""
    if view.get("kind") == "subscription":
        amount = view.get("amount") or {}
        total = f"{amount.get('value', '')} {amount.get('currency_code', '')}".strip()
        plan = f"Subscription {view.get('plan_id', '')}".strip()
        return [_html.LineRow(plan, 1, f"{total} / period")], total
    lines: list[_html.LineRow] = []
    total = ""
    for unit in view.get("purchase_units") or []:
        amount = unit.get("amount") or {}
        total = f"{amount.get('value', '')} {amount.get('currency_code', '')}".strip()
        for item in unit.get("items") or []:
            money = item.get("unit_amount") or {}
            quantity = int(item.get("quantity") or 1)
            unit_price = Money.of(str(money.get("value", "0")), money.get("currency_code", "USD"))
            lines.append(
                _html.LineRow(str(item.get("name") or "Item"), quantity, str(unit_price * quantity))
            )
        if not unit.get("items"):
            lines.append(_html.LineRow(str(unit.get("description") or "Order"), 1, total))
    return lines, total


def _register_paypal(sandbox: Sandbox) -> None:
    from paygate.sandbox.paypal import FUNDING, PayPalAPIError

    def approval(request: Request, token: str) -> Response:
        try:
            view = sandbox.paypal.approval_view(token)
        except (PayPalAPIError, PaygateError):
            raise HTTPNotFound(f"no such PayPal order: {token:.80}") from None
        status = str(view.get("status", ""))
        if status not in ("CREATED", "PAYER_ACTION_REQUIRED", "APPROVAL_PENDING"):
            text = f"This {view.get('kind', 'order')} is {status.lower()}: nothing to approve."
            return _page(_html.message_page("PayPal", text, brand="paypal"))
        lines, total = _paypal_lines(view)
        page = _html.paypal_approval_page(
            action=f"/paypal/approve/{quote(token, safe='')}",
            merchant=_merchant(_paypal_return_url(view) or _paypal_stored_return_url(token)),
            lines=lines,
            total=total,
            funding=[str(choice) for choice in view.get("funding") or ()],
            error=_error_message(request.args.get("error")),
        )
        return _page(page)

    def invoice(request: Request) -> Response:
        from paygate.sandbox import _paypal_api

        invoice_id = request.args.get("id", "")
        try:
            with sandbox.state.lock:
                view = _paypal_api.render_invoice(
                    sandbox.paypal, _paypal_api._invoice(sandbox.paypal, invoice_id)
                )
        except (PayPalAPIError, PaygateError):
            raise HTTPNotFound(f"no such PayPal invoice: {invoice_id:.80}") from None
        if view["status"] not in ("SENT", "UNPAID"):
            number = view["detail"].get("invoice_number") or view["id"]
            text = f"Invoice {number} is {str(view['status']).lower()}."
            return _page(_html.message_page("PayPal invoice", text, brand="paypal"))
        page = _html.paypal_approval_page(
            action="/paypal/invoice",
            merchant=f"invoice {view['detail'].get('invoice_number') or view['id']}",
            lines=_paypal_lines({"purchase_units": [{"amount": view["amount"], **view}]})[0],
            total=f"{view['amount']['value']} {view['amount']['currency_code']}",
            funding=sorted(FUNDING),
            hidden=[("id", view["id"])],
            can_cancel=False,
            error=_error_message(request.args.get("error")),
        )
        return _page(page)

    def pay_invoice(request: Request) -> Response:
        invoice_id = request.form.get("id", "")
        back = "/paypal/invoice?" + urlencode({"id": invoice_id})
        try:
            sandbox.paypal.pay_invoice(invoice_id, request.form.get("funding", "paypal_balance"))
        except PayPalAPIError as exc:
            issue = str(getattr(exc, "issue", "") or exc)
            code = "insufficient_funds" if "REFUSED" in issue else "card_declined"
            return _see_other(back + "&" + urlencode({"error": code}))
        except PaygateError:
            return _see_other(back)
        return _see_other(back)

    # an invoice's recipient_view_url: the payer's page
    sandbox.route("/paypal/invoice", invoice)
    sandbox.route("/paypal/invoice", pay_invoice, methods=("POST",))

    def _paypal_stored_return_url(token: str) -> str | None:
        # the face keeps the order's (or subscription's) return_url beside the wire object
        with sandbox.state.lock:
            for kind in ("orders", "subscriptions", "setup_tokens"):
                record = sandbox.state.records("paypal", kind).get(token) or {}
                if record.get("return_url"):
                    return str(record["return_url"])
        return None

    # the form posts to the same path: the PayPal face's route (approve / cancel)
    sandbox.route("/paypal/approve/<token>", approval)


def _paypal_return_url(view: JSON) -> str | None:
    source = (view.get("payment_source") or {}).get("paypal") or {}
    context = source.get("experience_context") or view.get("application_context") or {}
    url = context.get("return_url")
    return str(url) if url else None


# -- Square's payment-link page ------------------------------------------------------------------


def _square_money(money: JSON | None) -> str:
    money = money or {}
    return _money(int(money.get("amount", 0)), str(money.get("currency", "USD")))


def _register_square(sandbox: Sandbox) -> None:
    from paygate.sandbox.square import SquarePageError

    def link(request: Request, link_id: str) -> Response:
        try:
            view = sandbox.square.link_view(link_id)
        except (SquarePageError, PaygateError):
            raise HTTPNotFound(f"no such payment link: {link_id:.80}") from None
        order = view.get("order") or {}
        payment_link = view.get("payment_link") or {}
        redirect = (payment_link.get("checkout_options") or {}).get("redirect_url")
        if order.get("state", "OPEN") != "OPEN" or order.get("tenders"):
            text = "This order is already paid."
            return _page(_html.message_page("Square Checkout", text, brand="square"))
        lines = [
            _html.LineRow(
                str(item.get("name") or "Item"),
                int(item.get("quantity") or 1),
                _square_money(item.get("total_money")),
            )
            for item in order.get("line_items") or []
        ]
        page = _html.checkout_page(
            provider="square",
            action=f"/square/pay/{quote(link_id, safe='')}",
            merchant=_merchant(redirect),
            lines=lines,
            total=_square_money(order.get("total_money")),
            cancel_url=None,
            error=_error_message(request.args.get("error")),
            test_cards=_html.SQUARE_TEST_CARDS,
        )
        return _page(page)

    # the form posts to the same path: the Square face's route
    sandbox.route("/square/pay/<link_id>", link)


# -- the dashboard --------------------------------------------------------------------------------


def _wire_id(sandbox: Sandbox, provider: str) -> Callable[[str], str]:
    """How ``provider``'s API names an engine id (``pay_…`` is Stripe's ``pi_…``)."""
    face = sandbox.faces[provider]
    translate = getattr(face, "wire_id", None)
    if callable(translate):
        return translate  # type: ignore[no-any-return]
    if provider == "stripe":
        from paygate.sandbox.stripe import to_stripe_id

        return to_stripe_id
    return lambda object_id: object_id


def _records(engine: FakeProvider, kind: str) -> list[JSON]:
    # the engine's own records, read under the state lock: the dashboard shows what it holds
    objects: Mapping[str, JSON] = engine._objects
    return [dict(record) for record in objects.values() if record.get("object") == kind]


def _dashboard_data(sandbox: Sandbox, notice: str) -> _html.DashboardData:
    payments: list[_html.PaymentRow] = []
    refunds: list[_html.RefundRow] = []
    disputes: list[_html.ObjectRow] = []
    subscriptions: list[_html.ObjectRow] = []
    with sandbox.state.lock:
        square = _square_rows(sandbox)
        payments.extend(square[0])
        refunds.extend(square[1])
        disputes.extend(square[2])
        subscriptions.extend(square[3])
        for provider in sandbox.faces:
            if provider == "square":
                continue  # Square's state is its own API model (above), not the engine
            wire = _wire_id(sandbox, provider)
            engine = sandbox.state.engine(provider)
            for p in _records(engine, "payment"):
                actions: tuple[tuple[str, str], ...] = ()
                if p["status"] == "processing":
                    actions = (("Settle", "settle"), ("Fail", "settle_fail"))
                elif p["status"] in ("succeeded", "partially_refunded", "refunded"):
                    actions = (("Open dispute", "dispute_open"),)
                payments.append(
                    _html.PaymentRow(
                        provider=provider,
                        id=wire(p["id"]),
                        engine_id=p["id"],
                        order_id=p.get("order_id"),
                        amount=_money(p["amount"], p["currency"]),
                        status=p["status"],
                        created=float(p["created"]),
                        actions=actions,
                    )
                )
            for r in _records(engine, "refund"):
                refunds.append(
                    _html.RefundRow(
                        provider=provider,
                        id=wire(r["id"]),
                        payment_id=wire(r["payment_id"]),
                        amount=_money(r["amount"], r["currency"]),
                        status=r["status"],
                    )
                )
            for d in _records(engine, "dispute"):
                open_ = d["status"] not in ("won", "lost")
                disputes.append(
                    _html.ObjectRow(
                        provider=provider,
                        id=wire(d["id"]),
                        engine_id=d["id"],
                        about=f"{wire(d['payment_id'])} · {_money(d['amount'], d['currency'])}",
                        status=d["status"],
                        actions=(("Win", "dispute_win"), ("Lose", "dispute_lose")) if open_ else (),
                    )
                )
            for s in _records(engine, "subscription"):
                live = s["status"] not in ("canceled", "incomplete_expired")
                subscriptions.append(
                    _html.ObjectRow(
                        provider=provider,
                        id=wire(s["id"]),
                        engine_id=s["id"],
                        about=f"{s['customer_id']} · {s['price_id']}",
                        status=s["status"],
                        actions=(("Renew", "renew"), ("Fail renewal", "renew_fail"))
                        if live
                        else (),
                    )
                )
    events = []
    for event in sandbox.bus.events(None, 100):
        attempts = tuple(
            _html.AttemptRow(at=a.at, url=a.url, status=a.status, excerpt=a.excerpt)
            for a in sandbox.bus.attempts(event.id)
        )
        events.append(
            _html.EventRow(
                provider=event.provider,
                id=event.id,
                type=event.type,
                created=event.created,
                attempts=attempts,
            )
        )
    endpoints = sorted({url for p in sandbox.faces for url in sandbox.bus.endpoints(p)})
    settings = [
        (f"{name} {key}", str(value))
        for name, face in sandbox.faces.items()
        for key, value in (("base_url", face.base_url), *face.secrets().items())
    ]
    return _html.DashboardData(
        endpoints=tuple(endpoints),
        payments=tuple(sorted(payments, key=lambda p: p.created, reverse=True)),
        refunds=tuple(refunds),
        disputes=tuple(disputes),
        subscriptions=tuple(subscriptions),
        events=tuple(events),
        notice=notice,
        settings=tuple(settings),
    )


def _unix(timestamp: object) -> float:
    """Square's RFC 3339 ``created_at`` → unix seconds (0 when absent)."""
    try:
        return datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _square_rows(
    sandbox: Sandbox,
) -> tuple[
    list[_html.PaymentRow], list[_html.RefundRow], list[_html.ObjectRow], list[_html.ObjectRow]
]:
    """Square's payments, refunds, disputes and subscriptions, from its API model."""
    api = sandbox.square.api
    payments = []
    for p in list(api.payments.values()):
        actions: tuple[tuple[str, str], ...] = ()
        if p.get("status") == "PENDING":
            actions = (("Settle", "settle"), ("Fail", "settle_fail"))
        elif p.get("status") == "COMPLETED":
            actions = (("Open dispute", "dispute_open"),)
        payments.append(
            _html.PaymentRow(
                provider="square",
                id=p["id"],
                engine_id=p["id"],
                # the application's order id is the Square order's reference_id
                order_id=(api.orders.get(p.get("order_id") or "") or {}).get("reference_id")
                or p.get("reference_id"),
                amount=_square_money(p.get("amount_money")),
                status=str(p.get("status", "")),
                created=_unix(p.get("created_at")),
                actions=actions,
            )
        )
    refunds = [
        _html.RefundRow(
            provider="square",
            id=r["id"],
            payment_id=str(r.get("payment_id", "")),
            amount=_square_money(r.get("amount_money")),
            status=str(r.get("status", "")),
        )
        for r in list(api.refunds.values())
    ]
    disputes = [
        _html.ObjectRow(
            provider="square",
            id=d["id"],
            engine_id=d["id"],
            about=f"{(d.get('disputed_payment') or {}).get('payment_id', '')} · "
            f"{_square_money(d.get('amount_money'))}",
            status=str(d.get("state", "")),
            actions=()
            if d.get("state") in ("WON", "LOST", "ACCEPTED")
            else (("Win", "dispute_win"), ("Lose", "dispute_lose")),
        )
        for d in list(api.disputes.values())
    ]
    subscriptions = [
        _html.ObjectRow(
            provider="square",
            id=sub["id"],
            engine_id=sub["id"],
            about=f"{sub.get('customer_id', '')} · "
            f"{sub.get('plan_variation_id') or sub.get('plan_id') or ''}",
            status=str(sub.get("status", "")),
            actions=()
            if sub.get("status") in ("CANCELED", "DEACTIVATED")
            else (("Renew", "renew"), ("Fail renewal", "renew_fail")),
        )
        for sub in list(api.subscriptions.values())
    ]
    return payments, refunds, disputes, subscriptions


#: a dashboard button on Square's rows → what it does to the Square face
_SQUARE_ACTIONS: Mapping[str, Callable[[Any, str], object]] = {
    "settle": lambda face, i: face.settle(i, success=True),
    "settle_fail": lambda face, i: face.settle(i, success=False),
    "dispute_open": lambda face, i: face.open_dispute(i),
    "dispute_win": lambda face, i: face.resolve_dispute(i, won=True),
    "dispute_lose": lambda face, i: face.resolve_dispute(i, won=False),
    "renew": lambda face, i: face.renew_subscription(i, success=True),
    "renew_fail": lambda face, i: face.renew_subscription(i, success=False),
}

#: a dashboard button → (what it does to the engine, what the notice says)
_ACTIONS: Mapping[str, tuple[Callable[[FakeProvider, str], object], str]] = {
    "settle": (lambda engine, i: engine.settle(i, success=True), "settled"),
    "settle_fail": (lambda engine, i: engine.settle(i, success=False), "failed to settle"),
    "dispute_open": (lambda engine, i: engine.open_dispute(i), "disputed"),
    "dispute_win": (lambda engine, i: engine.resolve_dispute(i, won=True), "won"),
    "dispute_lose": (lambda engine, i: engine.resolve_dispute(i, won=False), "lost"),
    "renew": (lambda engine, i: engine.renew_subscription(i, success=True), "renewed"),
    "renew_fail": (
        lambda engine, i: engine.renew_subscription(i, success=False),
        "renewal failed",
    ),
}


def _register_dashboard(sandbox: Sandbox) -> None:
    def dashboard(request: Request) -> Response:
        notice = request.args.get("notice", "")[:300]
        return _page(_html.dashboard_page(_dashboard_data(sandbox, notice)))

    def action(request: Request) -> Response:
        provider = request.form.get("provider", "")
        object_id = request.form.get("id", "")
        name = request.form.get("action", "")
        if provider not in sandbox.faces or name not in _ACTIONS:
            return _see_other("/?" + urlencode({"notice": "Unknown action."}))
        run, done = _ACTIONS[name]
        try:
            if provider == "square":
                _SQUARE_ACTIONS[name](sandbox.square, object_id)
            else:
                with sandbox.state.transaction(provider) as engine:
                    run(engine, object_id)
        except (PaygateError, ValueError, KeyError) as exc:
            # refused: not in a state for it (the Square model says so with ValueError)
            notice = f"{object_id}: {exc}"
        else:
            notice = f"{_wire_id(sandbox, provider)(object_id)} {done}."
        return _see_other("/?" + urlencode({"notice": notice}))

    def resend(request: Request, event_id: str) -> Response:
        try:
            event = sandbox.bus.resend(event_id)
        except PaygateError:
            raise HTTPNotFound(f"no such event: {event_id:.80}") from None
        to = ", ".join(sandbox.bus.endpoints(event.provider)) or "no endpoint"
        return _see_other("/?" + urlencode({"notice": f"{event.id} resent to {to}."}))

    sandbox.route("/", dashboard)
    sandbox.route("/_sandbox/actions", action, methods=("POST",))
    sandbox.route("/events/<event_id>/resend", resend, methods=("POST",))
