"""The sandbox's hosted pages and dashboard: their routes and what their buttons do.

``register(sandbox)`` adds:

========================================  =====================================================
``GET /``                                 the dashboard: payments, refunds, disputes,
                                          subscriptions, events with their delivery attempts
``POST /_sandbox/actions``                a dashboard button: settle a processing payment,
                                          open / win / lose a dispute, renew a subscription
                                          or fail its renewal
``POST /events/<id>/resend``              the dashboard's **Resend** button
``GET /checkout/<session_id>``            Stripe Checkout's hosted page
``POST /checkout/<session_id>/pay``       its form: ``card`` = a test card number or token
                                          (the Stripe face's route)
``GET /3ds/<intent_id>``                  the 3-D Secure challenge
``POST /3ds/<intent_id>/complete``        its form: ``result`` = ``authenticate`` | ``fail``
                                          (the Stripe face's route)
``GET /3ds/<intent_id>/done``             where a challenge without a ``return_url`` ends
``GET /checkoutnow?token=<order id>``     PayPal's approval page (the order's approve link)
``POST /checkoutnow``                     its form: ``token``, ``action`` = approve | cancel
``GET /square-checkout/<link_id>``        Square's payment-link page
``POST /square-checkout/<link_id>/pay``   its form: ``card`` = a Square test card or nonce
========================================  =====================================================

Every POST answers **303** (post/redirect/get): to the shop's URL, to the next hosted
page, or back to the same page with ``?error=<code>`` after a decline, as Stripe Checkout
shows the decline on its own page. The card typed in is never written anywhere: not in a
log line, not in a redirect, not back into the page.

The HTML itself is in :mod:`paygate.sandbox._html`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

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

logger = logging.getLogger("paygate.sandbox")

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


def _face_action(face: object, name: str) -> Callable[..., Any]:
    """A face's page action, or 404 while that face does not offer it."""
    action = getattr(face, name, None)
    if not callable(action):
        raise HTTPNotFound(f"the {getattr(face, 'name', 'provider')} face has no {name}")
    return action  # type: ignore[no-any-return]


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
                "This checkout is already paid." if done else "This checkout session has expired."
            )
            link = (
                session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
                if done
                else session.get("cancel_url")
            )
            return _page(_html.message_page("Checkout " + session["status"], text, link=link))
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
        page = _html.three_d_secure_page(
            action=f"/3ds/{intent['id']}/complete",
            merchant=_merchant(intent.get("return_url")),
            amount=_money(intent["amount"], intent["currency"]),
        )
        return _page(page)

    def done(request: Request, intent_id: str) -> Response:
        status = request.args.get("redirect_status", "")
        text = f"Authentication finished ({status or 'done'}). You can close this page."
        return _page(_html.message_page("3-D Secure", text, brand="stripe"))

    sandbox.route("/checkout/<session_id>", checkout)
    sandbox.route("/3ds/<intent_id>", challenge)
    sandbox.route("/3ds/<intent_id>/done", done)


# -- PayPal's approval page -----------------------------------------------------------------------


def _paypal_lines(order: JSON) -> tuple[list[_html.LineRow], str, str | None]:
    """The order's lines, total and return URL as PayPal's page shows them."""
    lines: list[_html.LineRow] = []
    total = ""
    for unit in order.get("purchase_units") or []:
        amount = unit.get("amount") or {}
        total = f"{amount.get('value', '')} {amount.get('currency_code', '')}".strip()
        for item in unit.get("items") or []:
            money = item.get("unit_amount") or {}
            quantity = int(item.get("quantity") or 1)
            value = Money.of(str(money.get("value", "0")), money.get("currency_code", "USD"))
            lines.append(
                _html.LineRow(str(item.get("name") or "Item"), quantity, str(value * quantity))
            )
        if not unit.get("items"):
            lines.append(_html.LineRow(str(unit.get("description") or "Order"), 1, total))
    source = (order.get("payment_source") or {}).get("paypal") or {}
    context = source.get("experience_context") or order.get("application_context") or {}
    return lines, total, context.get("return_url")


def _register_paypal(sandbox: Sandbox) -> None:
    paypal = sandbox.faces.get("paypal")

    def approval(request: Request) -> Response:
        order_id = request.args.get("token", "")
        try:
            order = _face_action(paypal, "order_view")(order_id)
        except PaygateError:
            raise HTTPNotFound(f"no such PayPal order: {order_id:.80}") from None
        if order.get("status") not in ("CREATED", "PAYER_ACTION_REQUIRED"):
            text = f"This order is {str(order.get('status', '')).lower()}: nothing to approve."
            return _page(_html.message_page("PayPal", text, brand="paypal"))
        lines, total, return_url = _paypal_lines(order)
        page = _html.paypal_approval_page(
            action="/checkoutnow",
            token=order_id,
            merchant=_merchant(return_url),
            lines=lines,
            total=total,
        )
        return _page(page)

    def decide(request: Request) -> Response:
        order_id = request.form.get("token", "")
        name = "approve_order" if request.form.get("action") == "approve" else "cancel_order"
        try:
            return _see_other(_face_action(paypal, name)(order_id))
        except PaygateError:
            # approved or canceled already (another tab): the page says what it is now
            return _see_other("/checkoutnow?" + urlencode({"token": order_id}))

    sandbox.route("/checkoutnow", approval)
    sandbox.route("/checkoutnow", decide, methods=("POST",))


# -- Square's payment-link page ------------------------------------------------------------------


def _square_money(money: JSON | None) -> str:
    money = money or {}
    return _money(int(money.get("amount", 0)), str(money.get("currency", "USD")))


def _register_square(sandbox: Sandbox) -> None:
    square = sandbox.faces.get("square")

    def link(request: Request, link_id: str) -> Response:
        try:
            view = _face_action(square, "link_view")(link_id)
        except PaygateError:
            raise HTTPNotFound(f"no such payment link: {link_id:.80}") from None
        order = view.get("order") or {}
        payment_link = view.get("payment_link") or {}
        redirect = (payment_link.get("checkout_options") or {}).get("redirect_url")
        if order.get("state", "OPEN") != "OPEN" or order.get("tenders"):
            return _page(
                _html.message_page("Square Checkout", "This order is already paid.", brand="square")
            )
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
            action=f"/square-checkout/{link_id}/pay",
            merchant=_merchant(redirect),
            lines=lines,
            total=_square_money(order.get("total_money")),
            cancel_url=None,
            error=_error_message(request.args.get("error")),
            test_cards=getattr(square, "TEST_CARDS_SHOWN", _html.SQUARE_TEST_CARDS),
        )
        return _page(page)

    def pay(request: Request, link_id: str) -> Response:
        back = f"/square-checkout/{link_id}"
        try:
            return _see_other(
                _face_action(square, "pay_link")(link_id, request.form.get("card", ""))
            )
        except CardDeclined as declined:
            return _see_other(
                f"{back}?" + urlencode({"error": declined.decline_code or "card_declined"})
            )
        except PaygateError as exc:
            code = "incorrect_number" if getattr(exc, "code", None) == "incorrect_number" else ""
            return _see_other(f"{back}?error={code}" if code else back)

    sandbox.route("/square-checkout/<link_id>", link)
    sandbox.route("/square-checkout/<link_id>/pay", pay, methods=("POST",))


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
        for provider in sandbox.faces:
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
            with sandbox.state.transaction(provider) as engine:
                run(engine, object_id)
        except PaygateError as exc:
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
