"""What paygate removes from text before it reaches a log line, a repr or an error message.

* `redact_dsn`: the password of a database URL or libpq connection string, in every
  form libpq accepts it (URL userinfo, ``?password=``, ``password=...`` key/value, quoted
  or not; ``sslpassword`` too).
* `redact_card_numbers`: card-number-like digit runs -- 12 to 19 digits, whole or in
  groups separated by one space, dash, ``+`` or ``%20`` (a form field URL-encoded, as the
  Stripe SDK logs its request bodies), that pass the Luhn check.
* `SecretFilter`: a `logging.Filter` applying both to a record's message,
  arguments and exception text; `install_log_filters` puts it on paygate's loggers
  and on the loggers the provider SDKs and the database driver write to
  (`FILTERED_LOGGERS`), once, when paygate is imported.

A logger's filters only see the records logged to that very logger, not its children's:
hence the list of exact names below.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = [
    "FILTERED_LOGGERS",
    "SecretFilter",
    "install_log_filters",
    "luhn_valid",
    "redact_card_numbers",
    "redact_dsn",
]

#: the loggers `SecretFilter` is installed on (exact names: filters do not inherit)
FILTERED_LOGGERS: tuple[str, ...] = (
    # paygate's own
    "paygate",
    "paygate.providers.stripe",
    "paygate.providers.paypal",
    "paygate.providers.square",
    # the SDKs': stripe logs its request lines (form-encoded bodies) at DEBUG and errors
    # at INFO; paypalrestsdk logs each request's URL at INFO (its DEBUG records, with
    # headers and bodies, are dropped by paygate.providers._paypal_http); the Square SDK
    # (httpx) logs each request's method and URL
    "stripe",
    "paypalrestsdk.api",
    "square.core.pydantic_utilities",
    "httpx",
    # the database driver's pool logs connection failures (libpq's text)
    "psycopg",
    "psycopg.pool",
)

REDACTED = "[redacted]"

# -- database passwords ---------------------------------------------------------------------

#: ``scheme://user:PASSWORD@host``: the userinfo's password (up to the last ``@`` before
#: the path; a password with an unencoded ``/`` or ``@`` is still covered)
_URL_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)[^\s]*@")
#: ``?password=...`` / ``&sslpassword=...`` in a URL's query string
_URL_QUERY = re.compile(r"(?P<head>[?&](?:ssl)?password=)[^&#\s]*", re.IGNORECASE)
#: ``password=...`` in a key/value connection string: quoted (with ``\'`` escapes) or not
_KEYWORD = re.compile(
    r"(?P<head>\b(?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s'&]+)", re.IGNORECASE
)


def redact_dsn(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every database password replaced by ``***``; ``secrets`` (known
    password values) are removed wherever they appear as well."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _URL_USERINFO.sub(lambda m: m.group("head") + "***@", text)
    text = _URL_QUERY.sub(lambda m: m.group("head") + "***", text)
    return _KEYWORD.sub(lambda m: m.group("head") + "***", text)


# -- card numbers ---------------------------------------------------------------------------

_SEPARATOR = r"(?:[ \-+]|%20)"
#: a run of digits with at most one separator between two digits
#: (a leading ``%20`` is taken whole, so that its ``20`` is not read as digits)
_DIGIT_RUN = re.compile(rf"(?<![0-9])(?:%20)?[0-9](?:{_SEPARATOR}?[0-9])*(?![0-9])")
#: a run's tokens: separators (``%20`` before its digits can be taken for a group), groups
_TOKENS = re.compile(r"%20|[ \-+]|[0-9]+")


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_like(digits: str) -> bool:
    return 12 <= len(digits) <= 19 and luhn_valid(digits)


def _redact_run(match: re.Match[str]) -> str:
    """The run with each card number in it redacted: the whole run, or whole consecutive
    groups of it ("order 12 4242 4242 4242 4242"), the longest first."""
    run = match.group()
    groups = [(m.start(), m.end()) for m in _TOKENS.finditer(run) if m.group()[0].isdigit()]
    out: list[str] = []
    pos = i = 0
    while i < len(groups):
        found, digits = 0, ""
        for j in range(i, len(groups)):  # windows starting at group i, at most 19 digits
            a, b = groups[j]
            digits += run[a:b]
            if len(digits) > 19:
                break
            if _card_like(digits):
                found = j + 1
        if found:
            out += [run[pos : groups[i][0]], REDACTED]
            pos, i = groups[found - 1][1], found
        else:
            i += 1
    out.append(run[pos:])
    return "".join(out)


def redact_card_numbers(text: str) -> str:
    """``text`` with every card-number-like digit run replaced by ``[redacted]``."""
    if len(text) < 12:
        return text
    return _DIGIT_RUN.sub(_redact_run, text)


def redact(text: str) -> str:
    """Both: database passwords and card numbers."""
    return redact_card_numbers(redact_dsn(text))


# -- logging --------------------------------------------------------------------------------


class SecretFilter(logging.Filter):
    """Rewrites a record so that no card number or database password is in its message,
    arguments, exception text or ``paygate_`` structured fields. The message is formatted
    here (``msg % args``) so that arguments of any type are covered; only a record that
    held something is rewritten (its message then formatted once and for all), and it
    keeps its level, name and the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: leave it to the handler to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            # only then: a record left alone keeps its template and arguments (error
            # trackers group records by the template)
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # what a Formatter would write; it uses exc_text when set
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text) != text:
                record.exc_text = redact(text)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name, value in record.__dict__.items():
            # the structured fields (paygate._observe.fields) carry ids, never secrets;
            # scrubbed all the same, as a JSON formatter writes them verbatim
            if name.startswith("paygate_") and isinstance(value, str) and len(value) >= 12:
                cleaned_value = redact(value)
                if cleaned_value != value:
                    record.__dict__[name] = cleaned_value
        return True


_FILTER = SecretFilter()


def install_log_filters(names: Iterable[str] = FILTERED_LOGGERS) -> None:
    """Put `SecretFilter` on each named logger (once; it holds whatever level and
    handlers the application configures)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretFilter) for f in logger.filters):
            logger.addFilter(_FILTER)
