"""The pages a person sees in the sandbox: the providers' hosted pages and the dashboard.

Plain server-rendered HTML: no script, no external asset (the style sheet is inline), every
action an ordinary ``<form method="post">``, so the pages work in any browser, without
JavaScript, and from a test with nothing but an HTTP client (`paygate.testing.pay_hosted_page`).

The HTML is written here with f-strings and `html.escape` on every value, not with a
template engine: the pages are few and small, and the sandbox then needs no dependency for
them. Every value that reaches a page goes through `_e`.

Conventions the customer helper relies on (keep them): the form that pays or approves has
``id="payment-form"``; its card field is ``name="card"``; its buttons are
``<button name="action" value="...">`` (``name="result"`` on the 3-D Secure page); a
message the page shows (a decline) is the text of ``id="error"``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = [
    "SQUARE_TEST_CARDS",
    "TEST_CARDS",
    "DashboardData",
    "LineRow",
    "checkout_page",
    "dashboard_page",
    "message_page",
    "paypal_approval_page",
    "three_d_secure_page",
]


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


#: (what to type, what happens): the test cards listed under the card field
TEST_CARDS: tuple[tuple[str, str], ...] = (
    ("4242 4242 4242 4242", "succeeds"),
    ("4000 0000 0000 0002", "declined (card_declined)"),
    ("4000 0000 0000 9995", "declined (insufficient_funds)"),
    ("4000 0025 0000 3155", "3-D Secure challenge"),
    ("4000 0000 0000 3220", "3-D Secure 2 challenge"),
    ("4000 0000 0000 0259", "succeeds, then disputed"),
    ("4000 0000 0000 0077", "processing until settled on the dashboard"),
    ("pm_card_visa, tok_visa …", "Stripe's test payment methods work too"),
)

#: Stripe's test cards for saving a card (Checkout in setup mode)
SETUP_TEST_CARDS: tuple[tuple[str, str], ...] = (
    ("4242 4242 4242 4242", "saves; charges succeed"),
    ("4000 0025 0000 3155", "3-D Secure now (passed on the page); charges succeed"),
    ("4000 0027 6000 3184", "saves; off-session charges need authentication"),
    ("4000 0000 0000 0341", "saves; every charge is declined"),
    ("4000 0000 0000 0002", "declined: nothing saved"),
)

#: Square's sandbox test cards and nonces, listed on the payment-link page
SQUARE_TEST_CARDS: tuple[tuple[str, str], ...] = (
    ("4111 1111 1111 1111", "succeeds"),
    ("4000 0000 0000 0002", "declined"),
    ("cnon:card-nonce-ok", "succeeds"),
    ("cnon:card-nonce-declined", "declined"),
)

_BRANDS = {
    # accent colour, name shown in the header
    "stripe": ("#635bff", "Stripe Checkout"),
    "paypal": ("#003087", "PayPal"),
    "square": ("#006aff", "Square Checkout"),
    "sandbox": ("#1a7f37", "paygate sandbox"),
    "bank": ("#32325d", "Your bank · 3-D Secure"),
}

_STYLE = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1f36;
background:#f6f9fc}
.banner{background:#ffde92;color:#5c4400;text-align:center;font-size:12px;padding:3px;
letter-spacing:.04em;text-transform:uppercase}
header{background:var(--accent);color:#fff;padding:14px 24px;font-weight:600;font-size:17px}
main{max-width:960px;margin:24px auto;padding:0 24px}
.narrow{max-width:460px;margin:0 auto}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:22px;
margin-bottom:18px;overflow-x:auto}
#events code{word-break:break-all}
h1{font-size:21px;margin:0 0 12px}h2{font-size:17px;margin:0 0 10px}
table{border-collapse:collapse;width:100%;font-size:14px}
td,th{padding:6px 8px;border-bottom:1px solid #e3e8ee;text-align:left;vertical-align:top}
th{color:#697386;font-weight:600}
.total td{font-weight:700;border-bottom:0}
.num{text-align:right;white-space:nowrap}
label{display:block;font-size:13px;color:#697386;margin:12px 0 4px}
input[type=text],input[type=email],select{width:100%;padding:10px;font-size:16px;
border:1px solid #cfd7df;border-radius:6px}
.row{display:flex;gap:10px}.row>div{flex:1}
button{border:0;border-radius:6px;padding:11px 18px;font-size:15px;font-weight:600;
cursor:pointer;background:var(--accent);color:#fff}
button.wide{width:100%;margin-top:16px}
button.secondary{background:#e3e8ee;color:#1a1f36}
button.paypal{background:#ffc439;color:#111}
button.small{padding:4px 10px;font-size:13px}
form.inline{display:inline}
.error{background:#fde8e8;color:#9b1c1c;border-radius:6px;padding:10px;margin:10px 0}
.muted{color:#697386;font-size:13px}
a{color:var(--accent)}
code{font-size:13px}
pre{white-space:pre-wrap;word-break:break-all;margin:0;font-size:12px;min-width:180px;
max-height:4.5em;overflow:hidden}
tr.attempt td{font-size:12px;padding:3px 6px}
.status{font-weight:600}
summary{cursor:pointer;color:var(--accent);margin-top:8px}
"""


def _layout(title: str, body: str, *, brand: str) -> str:
    accent, name = _BRANDS[brand]
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        # no favicon request: an empty icon inline
        '<link rel="icon" href="data:,">'
        f"<title>{_e(title)}</title><style>:root{{--accent:{accent}}}{_STYLE}</style></head>"
        '<body><div class="banner">paygate sandbox · test mode · no real money moves</div>'
        f"<header>{_e(name)}</header><main>{body}</main></body></html>\n"
    )


@dataclass(frozen=True)
class LineRow:
    """One line of an order as a hosted page shows it (amounts already formatted)."""

    name: str
    quantity: int
    amount: str  # the line's total, e.g. "39.98 USD"


def _lines_table(lines: Sequence[LineRow], total: str) -> str:
    rows = "".join(
        f"<tr><td>{_e(line.name)}</td><td class='num'>× {line.quantity}</td>"
        f"<td class='num'>{_e(line.amount)}</td></tr>"
        for line in lines
    )
    return (
        f'<table id="line-items">{rows}'
        f'<tr class="total"><td>Total</td><td></td><td class="num" id="total">{_e(total)}</td>'
        "</tr></table>"
    )


def checkout_page(
    *,
    provider: str,
    action: str,
    merchant: str,
    lines: Sequence[LineRow],
    total: str,
    cancel_url: str | None,
    error: str | None = None,
    test_cards: Sequence[tuple[str, str]] = TEST_CARDS,
    setup: bool = False,
) -> str:
    """Stripe Checkout's or Square's hosted payment page: the order and a card field.

    ``action``: where the form posts. The card field takes a test card number or a test
    token (``tok_visa``, ``pm_card_visa`` ...); it is never shown back after a decline.
    With ``setup`` nothing is charged: the page saves the card (Checkout in setup mode)."""
    cards = "".join(
        f"<tr><td><code>{_e(number)}</code></td><td>{_e(outcome)}</td></tr>"
        for number, outcome in test_cards
    )
    problem = f'<div class="error" id="error" role="alert">{_e(error)}</div>' if error else ""
    back = (
        f'<p><a id="cancel" href="{_e(cancel_url)}">← Back to {_e(merchant)}</a></p>'
        if cancel_url
        else ""
    )
    title = f"Save a card for {merchant}" if setup else f"Pay {merchant}"
    summary = (
        f'<p class="muted" id="total">{_e(total)}</p>' if setup else _lines_table(lines, total)
    )
    button = "Save card" if setup else f"Pay {total}"
    body = f"""<div class="narrow">{back}
<div class="card"><h1>{_e(title)}</h1>{summary}</div>
<div class="card"><h2>{"Card details" if setup else "Pay with card"}</h2>{problem}
<form id="payment-form" method="post" action="{_e(action)}" autocomplete="off">
<label for="email">Email</label>
<input type="email" id="email" name="email" placeholder="you@example.com">
<label for="card">Card number</label>
<input type="text" id="card" name="card" required inputmode="numeric"
 placeholder="4242 4242 4242 4242">
<div class="row"><div><label for="exp">Expiry</label>
<input type="text" id="exp" name="exp" placeholder="MM / YY"></div>
<div><label for="cvc">CVC</label><input type="text" id="cvc" name="cvc" placeholder="123"></div>
</div>
<button class="wide" type="submit" name="action" value="pay" id="pay">{_e(button)}</button>
</form></div>
<div class="card"><h2>Test cards</h2><p class="muted">Any future expiry, any CVC.</p>
<table id="test-cards">{cards}</table></div></div>"""
    name = "stripe" if provider == "stripe" else "square"
    return _layout(title, body, brand=name)


def three_d_secure_page(*, action: str, merchant: str, amount: str) -> str:
    """The bank's 3-D Secure challenge, as Stripe's test page: complete or fail it."""
    body = f"""<div class="narrow"><div class="card">
<h1>3-D Secure authentication</h1>
<p>{_e(merchant)} asks your bank to confirm a payment of <b id="amount">{_e(amount)}</b>.</p>
<p class="muted">This is a test page: choose what the cardholder does.</p>
<form id="payment-form" method="post" action="{_e(action)}">
<button class="wide" type="submit" name="result" value="authenticate" id="authenticate">
Complete authentication</button>
<button class="wide secondary" type="submit" name="result" value="fail" id="fail">
Fail authentication</button></form></div></div>"""
    return _layout("3-D Secure authentication", body, brand="bank")


def paypal_approval_page(
    *,
    action: str,
    merchant: str,
    lines: Sequence[LineRow],
    total: str,
    funding: Sequence[str] = (),
    hidden: Sequence[tuple[str, str]] = (),
    can_cancel: bool = True,
    error: str | None = None,
) -> str:
    """PayPal's approval page: the buyer approves the order (paying with a funding source
    of their choice: the sandbox's way to script declines) or cancels."""
    # PayPal balance first and chosen: pressing Pay Now pays, as on PayPal
    ordered = sorted(funding, key=lambda choice: choice != "paypal_balance")
    choices = "".join(
        f'<option value="{_e(choice)}"{" selected" if index == 0 else ""}>'
        f"{_e(choice.replace('_', ' '))}</option>"
        for index, choice in enumerate(ordered)
    )
    source = (
        f'<label for="funding">Pay with</label><select id="funding" name="funding">{choices}'
        "</select>"
        if funding
        else ""
    )
    fields = "".join(
        f'<input type="hidden" name="{_e(name)}" value="{_e(value)}">' for name, value in hidden
    )
    cancel = (
        '<button class="wide secondary" type="submit" name="action" value="cancel" id="cancel">'
        f"Cancel and return to {_e(merchant)}</button>"
        if can_cancel
        else ""
    )
    problem = f'<div class="error" id="error" role="alert">{_e(error)}</div>' if error else ""
    body = f"""<div class="narrow"><div class="card">
<h1>Pay with PayPal</h1><p>You are paying <b>{_e(merchant)}</b>.</p>
{_lines_table(lines, total)}
<p class="muted">Signed in as the sandbox buyer (sb-buyer@personal.example.com).</p>
{problem}<form id="payment-form" method="post" action="{_e(action)}">{fields}{source}
<button class="wide paypal" type="submit" name="action" value="approve" id="approve">
Pay Now</button>{cancel}</form></div></div>"""
    return _layout("PayPal Checkout", body, brand="paypal")


def message_page(title: str, text: str, *, brand: str = "sandbox", link: str | None = None) -> str:
    """A short page: a checkout already paid or expired, an unknown id."""
    more = f'<p><a href="{_e(link)}">Continue</a></p>' if link else ""
    body = (
        f'<div class="narrow"><div class="card"><h1>{_e(title)}</h1>'
        f"<p>{_e(text)}</p>{more}</div></div>"
    )
    return _layout(title, body, brand=brand)


# -- the dashboard -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentRow:
    provider: str
    id: str  # as the provider's API names it
    engine_id: str  # as the dashboard's buttons name it
    order_id: str | None
    amount: str
    status: str
    created: float
    actions: tuple[tuple[str, str], ...] = ()  # (label, action name) buttons


@dataclass(frozen=True)
class RefundRow:
    provider: str
    id: str
    payment_id: str
    amount: str
    status: str


@dataclass(frozen=True)
class ObjectRow:
    """A dispute or a subscription, with the buttons that move it on."""

    provider: str
    id: str
    engine_id: str
    about: str  # the payment or the customer and price
    status: str
    actions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AttemptRow:
    at: float
    url: str
    status: int | None  # None: no answer (timeout, refused)
    excerpt: str


@dataclass(frozen=True)
class EventRow:
    provider: str
    id: str
    type: str
    created: float
    attempts: tuple[AttemptRow, ...]


@dataclass(frozen=True)
class DashboardData:
    endpoints: tuple[str, ...] = ()
    payments: tuple[PaymentRow, ...] = ()
    refunds: tuple[RefundRow, ...] = ()
    disputes: tuple[ObjectRow, ...] = ()
    subscriptions: tuple[ObjectRow, ...] = ()
    events: tuple[EventRow, ...] = ()
    notice: str = ""
    settings: tuple[tuple[str, str], ...] = field(default=())  # (name, value) to show


def _time(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%H:%M:%S")


def _buttons(provider: str, object_id: str, actions: Iterable[tuple[str, str]]) -> str:
    return "".join(
        f'<form class="inline" method="post" action="/_sandbox/actions">'
        f'<input type="hidden" name="provider" value="{_e(provider)}">'
        f'<input type="hidden" name="id" value="{_e(object_id)}">'
        f'<button class="small" type="submit" name="action" value="{_e(action)}">'
        f"{_e(label)}</button></form> "
        for label, action in actions
    )


def _table(headings: Sequence[str], rows: Iterable[str], empty: str, table_id: str) -> str:
    body = "".join(rows)
    if not body:
        return f'<p class="muted" id="{table_id}">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headings)
    return f'<table id="{table_id}"><tr>{head}</tr>{body}</table>'


def _attempts(event: EventRow) -> str:
    if not event.attempts:
        return '<span class="muted">not delivered yet</span>'
    rows = "".join(
        f'<tr class="attempt"><td>{_time(a.at)}</td><td>{_e(a.url)}</td>'
        f'<td class="status">{_e(a.status if a.status is not None else "no answer")}</td>'
        f"<td><pre>{_e(a.excerpt)}</pre></td></tr>"
        for a in event.attempts
    )
    return f"<table>{rows}</table>"


def dashboard_page(data: DashboardData) -> str:
    """The sandbox's home page: what it holds, what it sent where, and the buttons that play
    the bank, the cardholder and time."""
    notice = f'<div class="card" id="notice">{_e(data.notice)}</div>' if data.notice else ""
    endpoints = (
        "".join(f"<li><code>{_e(url)}</code></li>" for url in data.endpoints)
        or "<li class='muted'>none: start with --forward-to URL</li>"
    )
    settings = "".join(
        f"<tr><th>{_e(name)}</th><td><code>{_e(value)}</code></td></tr>"
        for name, value in data.settings
    )
    payments = _table(
        ("Provider", "Payment", "Order", "Amount", "Status", "Created", ""),
        (
            f'<tr id="payment-{_e(p.id)}"><td>{_e(p.provider)}</td><td><code>{_e(p.id)}</code></td>'
            f"<td>{_e(p.order_id or '')}</td><td class='num'>{_e(p.amount)}</td>"
            f'<td class="status">{_e(p.status)}</td><td>{_time(p.created)}</td>'
            f"<td>{_buttons(p.provider, p.engine_id, p.actions)}</td></tr>"
            for p in data.payments
        ),
        "No payments yet.",
        "payments",
    )
    refunds = _table(
        ("Provider", "Refund", "Payment", "Amount", "Status"),
        (
            f'<tr id="refund-{_e(r.id)}"><td>{_e(r.provider)}</td><td><code>{_e(r.id)}</code></td>'
            f"<td><code>{_e(r.payment_id)}</code></td><td class='num'>{_e(r.amount)}</td>"
            f'<td class="status">{_e(r.status)}</td></tr>'
            for r in data.refunds
        ),
        "No refunds yet.",
        "refunds",
    )

    def objects(rows: Sequence[ObjectRow], empty: str, table_id: str) -> str:
        return _table(
            ("Provider", "Id", "Of", "Status", ""),
            (
                f'<tr id="{table_id[:-1]}-{_e(o.id)}"><td>{_e(o.provider)}</td>'
                f"<td><code>{_e(o.id)}</code></td><td>{_e(o.about)}</td>"
                f'<td class="status">{_e(o.status)}</td>'
                f"<td>{_buttons(o.provider, o.engine_id, o.actions)}</td></tr>"
                for o in rows
            ),
            empty,
            table_id,
        )

    events = _table(
        ("Time", "Provider", "Event", "Deliveries"),
        (
            f'<tr id="event-{_e(ev.id)}"><td>{_time(ev.created)}</td><td>{_e(ev.provider)}</td>'
            f"<td><code>{_e(ev.type)}</code><br><span class='muted'>{_e(ev.id)}</span><br>"
            f'<form class="inline" method="post" action="/events/{_e(ev.id)}/resend">'
            '<button class="small" type="submit">Resend</button></form></td>'
            f"<td>{_attempts(ev)}</td></tr>"
            for ev in data.events
        ),
        "No events yet.",
        "events",
    )
    body = f"""{notice}
<div class="card"><h1>paygate sandbox</h1>
<p class="muted">Stripe, PayPal and Square on this machine. Point an adapter's
<code>base_url</code> here; webhooks go to:</p><ul id="endpoints">{endpoints}</ul>
{
        "<details><summary>Settings for your application</summary>"
        f'<table id="settings">{settings}</table></details>'
        if settings
        else ""
    }</div>
<div class="card"><h2>Payments</h2>{payments}</div>
<div class="card"><h2>Events</h2>{events}</div>
<div class="card"><h2>Refunds</h2>{refunds}</div>
<div class="card"><h2>Disputes</h2>{objects(data.disputes, "No disputes.", "disputes")}</div>
<div class="card"><h2>Subscriptions</h2>
{objects(data.subscriptions, "No subscriptions.", "subscriptions")}</div>"""
    return _layout("paygate sandbox", body, brand="sandbox")
