"""Play the customer on the sandbox's hosted pages, over HTTP, as a browser without
JavaScript would: load the page, fill the form, press a button, follow the redirects.

Nothing private is called: what this does is exactly what a person does in a browser, so a
test that pays through it exercises the pages, their forms and the redirects back to the
shop. Standard library only (``urllib``, ``html.parser``): usable wherever paygate is.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Literal

__all__ = ["CustomerReturn", "HostedPageError", "pay_hosted_page", "submit_page"]

_MAX_STEPS = 10


class HostedPageError(AssertionError):
    """A hosted page did not behave as a provider's does (no form, an HTTP error, a loop)."""


@dataclass(frozen=True)
class CustomerReturn:
    """Where the customer ended up.

    ``return_url``: the shop URL the provider sent the customer back to (not fetched: the
    test decides whether to follow it), or ``None`` when the customer is still on a hosted
    page: after a decline (then ``error`` is the message the page shows), or done on a
    page of the sandbox's own (a paid hosted invoice: ``error`` is ``None``).
    ``visited``: every sandbox URL loaded, in order."""

    return_url: str | None
    error: str | None = None
    visited: tuple[str, ...] = ()

    @property
    def query(self) -> dict[str, str]:
        """The query parameters of ``return_url`` (what the shop's return page gets)."""
        if self.return_url is None:
            return {}
        return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.return_url).query))


@dataclass
class _Form:
    action: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    buttons: dict[str, str] = field(default_factory=dict)  # value -> name of each button
    has_card: bool = False


class _PageParser(HTMLParser):
    """Reads the ``#payment-form`` (see paygate.sandbox.pages) and the ``#error`` text."""

    def __init__(self) -> None:
        super().__init__()
        self.form: _Form | None = None
        self.error: str | None = None
        self._in_form = False
        self._in_error = False
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form" and found.get("id") == "payment-form":
            self.form = _Form(action=found.get("action", ""))
            self._in_form = True
        elif self._in_form and self.form is not None and tag == "input":
            name = found.get("name")
            if name == "card":
                self.form.has_card = True
            elif name:
                self.form.fields[name] = found.get("value", "")
        elif self._in_form and self.form is not None and tag == "select":
            self._select = found.get("name")
        elif self._in_form and self.form is not None and tag == "option" and self._select:
            # the first option, or the one marked selected, is what the browser sends
            if "selected" in found or self._select not in self.form.fields:
                self.form.fields[self._select] = found.get("value", "")
        elif self._in_form and self.form is not None and tag == "button":
            if found.get("name"):
                self.form.buttons[found.get("value", "")] = found["name"]
        elif found.get("id") == "error":
            self._in_error = True
            self.error = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "select":
            self._select = None
        elif self._in_error and tag == "div":
            self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error and self.error is not None:
            self.error += data


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # answered as an HTTPError: the caller reads Location itself


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc


def _fetch(
    opener: urllib.request.OpenerDirector, url: str, body: bytes | None, timeout: float
) -> tuple[int, str, str | None]:
    """(status, page text, absolute Location or None) of one request, redirects not followed."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise HostedPageError(f"not an http(s) URL: {url!r:.200}")
    request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")  # noqa: S310 (checked)
    if body is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with opener.open(request, timeout=timeout) as answer:
            return answer.status, answer.read().decode("utf-8", "replace"), None
    except urllib.error.HTTPError as exc:
        with exc:
            location = exc.headers.get("Location")
            page = exc.read().decode("utf-8", "replace")
            if exc.code in (301, 302, 303, 307, 308) and location:
                return exc.code, page, urllib.parse.urljoin(url, location)
            return exc.code, page, None


def _parse(page: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(page)
    parser.close()
    return parser


def _filled(
    form: _Form,
    url: str,
    card: str,
    three_d_secure: str,
    approve: bool,
    chosen: Mapping[str, str],
) -> bytes:
    """The form's body as the customer submits it: the card typed in, the choices made,
    one button pressed."""
    # a journey crosses several pages: each takes the choices its own form has
    fields = {**form.fields, **{k: v for k, v in chosen.items() if k in form.fields}}
    if form.has_card:
        fields["card"] = card
        choice = "pay"
    elif "authenticate" in form.buttons:
        choice = three_d_secure
    else:
        choice = "approve" if approve else "cancel"
    if choice not in form.buttons:
        raise HostedPageError(f"{url}: no {choice!r} button (has {list(form.buttons)})")
    fields[form.buttons[choice]] = choice
    return urllib.parse.urlencode(fields).encode("ascii")


def submit_page(
    url: str,
    card: str = "4242 4242 4242 4242",
    *,
    three_d_secure: Literal["authenticate", "fail"] = "authenticate",
    approve: bool = True,
    fields: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> str:
    """One step: load the hosted page at ``url``, fill its form as `pay_hosted_page`
    does, submit it, and return where the browser is sent next (the answer's ``Location``:
    the shop, the next hosted page, or the same page with ``?error=...``)."""
    opener = urllib.request.build_opener(_NoRedirect())
    status, page, _ = _fetch(opener, url, None, timeout)
    form = _parse(page).form
    if status != 200 or form is None:
        raise HostedPageError(f"{url} answered {status} without a payment form")
    action = urllib.parse.urljoin(url, form.action)
    body = _filled(form, url, card, three_d_secure, approve, fields or {})
    status, page, location = _fetch(opener, action, body, timeout)
    if location is None:
        raise HostedPageError(f"POST {action} answered {status}, not a redirect: {page[:200]!r}")
    return location


def pay_hosted_page(
    url: str,
    card: str = "4242 4242 4242 4242",
    *,
    three_d_secure: Literal["authenticate", "fail"] = "authenticate",
    approve: bool = True,
    fields: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> CustomerReturn:
    """Pay on the sandbox's hosted pages as the customer would; say where they end up.

    ``url`` is a hosted page's URL as the provider gave it to the shop: a Stripe Checkout
    Session's ``url``, a Square payment link's ``url``, a PayPal order's ``approve`` link,
    or a 3-D Secure ``redirect_url``. On a card page ``card`` is typed in (a test card
    number or token: ``"4000 0000 0000 0002"`` declines); on the 3-D Secure challenge the
    customer chooses ``three_d_secure``; on PayPal's page they approve, or cancel when
    ``approve`` is false; ``fields`` sets the page's other choices by name (PayPal's
    ``{"funding": "card_declined"}``). Redirects are followed while they stay on the
    sandbox; the first one that leaves it (to the shop's success, return or cancel URL)
    ends the visit. A page that comes back with a message (a decline) ends it too, with
    ``error`` set.
    """
    opener = urllib.request.build_opener(_NoRedirect())
    sandbox = _origin(url)
    visited: list[str] = []
    body: bytes | None = None
    for _ in range(_MAX_STEPS):
        if _origin(url) != sandbox:
            return CustomerReturn(return_url=url, visited=tuple(visited))
        visited.append(url)
        status, page, location = _fetch(opener, url, body, timeout)
        if location is not None:
            if status in (307, 308) and body is not None:
                url = location  # the method and the body are kept
            else:
                url, body = location, None
            continue
        parser = _parse(page)
        if len(visited) > 1 and parser.error is not None:
            # back on a page with a message: a decline, or a failed authentication
            return CustomerReturn(None, parser.error.strip(), tuple(visited))
        if len(visited) > 1 and status == 200 and parser.form is None:
            # done on a page of the sandbox itself (a hosted invoice, paid)
            return CustomerReturn(None, None, tuple(visited))
        if status >= 400 or parser.form is None:
            raise HostedPageError(f"{url} answered {status} without a payment form")
        body = _filled(parser.form, url, card, three_d_secure, approve, fields or {})
        url = urllib.parse.urljoin(url, parser.form.action)
    raise HostedPageError(f"more than {_MAX_STEPS} steps without leaving the sandbox")
