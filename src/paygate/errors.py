"""paygate's one error vocabulary.

Every adapter translates its SDK's exceptions into this tree, so application code catches
the same classes whatever the provider:

```text
PaygateError
├── ConfigurationError                 bad or missing settings
│   └── ProviderNotInstalled           the adapter's SDK is missing (with the pip hint)
├── ValidationError (+ ValueError)     bad input, refused before anything is sent or stored
│   ├── InvalidAmount                  a float, too much precision, not a number
│   ├── UnknownCurrency                not an ISO 4217 code paygate can pay in
│   └── CurrencyMismatch               arithmetic or comparison across currencies
├── ProviderError                      the provider said no (provider, code, http_status,
│   │                                  request_id, retryable, retry_after)
│   ├── CardDeclined                   with a standard ``decline_code``
│   │   └── AuthenticationRequired     the bank wants the customer (3-D Secure) for a
│   │                                  charge made without them; ``payment_id`` set
│   ├── AuthenticationError            bad API key / OAuth credentials
│   ├── RateLimited                    429, retryable (after ``retry_after`` if given)
│   ├── ProviderUnavailable            network error or 5xx, retryable
│   │   └── OutcomeUnknown             sent, but the answer was lost: retryable, same key
│   ├── IdempotencyConflict            same key, different request
│   ├── NotFound
│   ├── InvalidRequest
│   └── NotSupported                   the adapter cannot do this operation
├── WebhookVerificationError           never trust the body
│   ├── InvalidSignature
│   │   └── MissingSignature           no signature header at all
│   ├── TimestampOutsideTolerance      too old or too far in the future
│   └── MalformedPayload               signature fine, body unusable
└── InvalidTransition                  an impossible payment state change
```

Messages name the offending value but never a secret: keys, tokens and card numbers are
not passed into exceptions anywhere in paygate.

What is retried: only errors with ``retryable=True`` -- 5xx answers, 429, network failures
and [`OutcomeUnknown`][paygate.errors.OutcomeUnknown] (a request that may have reached the provider
but whose answer was cut off, unreadable, reset or timed out). A 4xx is never retried, whatever its
body: a 4xx whose body is not JSON (a wrong ``base_url``, a proxy's page) is the error class of its
status (``InvalidRequest`` for most) with ``code="unexpected_response"``. 408 counts as a network
failure.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "AuthenticationRequired",
    "CardDeclined",
    "ConfigurationError",
    "CurrencyMismatch",
    "DECLINE_CODES",
    "IdempotencyConflict",
    "InvalidAmount",
    "InvalidRequest",
    "InvalidSignature",
    "InvalidTransition",
    "MalformedPayload",
    "MissingSignature",
    "NotFound",
    "NotSupported",
    "OutcomeUnknown",
    "PaygateError",
    "ProviderError",
    "ProviderNotInstalled",
    "ProviderUnavailable",
    "RateLimited",
    "TimestampOutsideTolerance",
    "UnknownCurrency",
    "ValidationError",
    "WebhookVerificationError",
]

#: The standard decline codes every adapter maps its provider's codes onto.
DECLINE_CODES: frozenset[str] = frozenset(
    {
        "card_declined",
        "insufficient_funds",
        "expired_card",
        "incorrect_cvc",
        "incorrect_number",
        "incorrect_zip",
        "processing_error",
        "lost_card",
        "stolen_card",
        "fraudulent",
        "do_not_honor",
        "card_not_supported",
        "currency_not_supported",
        "authentication_required",
        "try_again_later",
        "limit_exceeded",
    }
)


class PaygateError(Exception):
    """Base class of every error paygate raises."""


class ConfigurationError(PaygateError):
    """Settings are missing, malformed or unsafe (a live key in a test setting, say)."""


class ProviderNotInstalled(ConfigurationError):
    """The adapter's SDK is not installed; the message carries the ``pip install`` hint."""


class ValidationError(PaygateError, ValueError):
    """Bad input, refused before anything was sent to a provider or written to a store."""


class InvalidAmount(ValidationError):
    """An amount that is a float, not a number, or more precise than its currency allows."""


class UnknownCurrency(ValidationError):
    """A currency code that is not in paygate's ISO 4217 table."""


class CurrencyMismatch(ValidationError):
    """Arithmetic or comparison between amounts of different currencies."""


class ProviderError(PaygateError):
    """The provider refused or failed a request.

    ``retryable`` tells the Gateway's retry policy whether the same request, with the same
    idempotency key, may be sent again; ``retry_after`` is the wait in seconds the provider
    asked for (its ``Retry-After`` header), which the policy honours within its budget.
    """

    default_retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        code: str | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.provider = provider
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.retryable = self.default_retryable if retryable is None else retryable

    def __str__(self) -> str:
        details = [
            f"{name}={value}"
            for name, value in (
                ("provider", self.provider),
                ("code", self.code),
                ("http_status", self.http_status),
                ("request_id", self.request_id),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(details)})" if details else self.message


class CardDeclined(ProviderError):
    """The card was declined; ``decline_code`` is one of `DECLINE_CODES`.

    ``payment_id`` names the failed payment when the provider kept one (Stripe's
    PaymentIntent stays, awaiting another payment method).
    """

    def __init__(
        self,
        message: str,
        *,
        decline_code: str = "card_declined",
        payment_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.decline_code = decline_code if decline_code in DECLINE_CODES else "card_declined"
        self.payment_id = payment_id


class AuthenticationRequired(CardDeclined):
    """A charge made without the customer (``off_session=True``, a saved payment method)
    was refused because the card's bank demands that the customer authenticate (SCA,
    3-D Secure).

    A [`CardDeclined`][paygate.errors.CardDeclined] (``decline_code``
    ``authentication_required``), so code that treats every decline alike keeps working;
    code that can recover catches this first and brings the customer back to confirm
    ``payment_id`` on session (Stripe keeps the PaymentIntent for that;
    ``Gateway.get_payment(payment_id)`` gives its client secret or redirect).
    ``payment_id`` is ``None`` only where the provider kept no payment (Square).
    """

    def __init__(self, message: str, *, payment_id: str | None = None, **kwargs: Any) -> None:
        kwargs.pop("decline_code", None)
        super().__init__(
            message, decline_code="authentication_required", payment_id=payment_id, **kwargs
        )


class AuthenticationError(ProviderError):
    """The provider rejected the credentials."""


class RateLimited(ProviderError):
    """Too many requests; retried with backoff by the Gateway."""

    default_retryable = True


class ProviderUnavailable(ProviderError):
    """Network failure or a 5xx answer; retried by the Gateway with the same key."""

    default_retryable = True


class OutcomeUnknown(ProviderUnavailable):
    """The request may have reached the provider, but its answer was lost: cut off mid-body,
    not readable, or the connection was reset or timed out after the request was sent.

    The provider may have acted on it (charged the card). Retryable: the Gateway sends the
    same idempotency key again, and the provider answers with what it did the first time;
    while the outcome stays unknown the idempotency record stays ``pending``, so the next
    call for the same order re-sends that key instead of starting a new attempt.
    """


class IdempotencyConflict(ProviderError):
    """The idempotency key was already used for a different request."""


class NotFound(ProviderError):
    """The provider has no such object."""


class InvalidRequest(ProviderError):
    """The provider refused the request as malformed."""


class NotSupported(ProviderError):
    """The adapter cannot do this operation (it never silently does nothing)."""


class WebhookVerificationError(PaygateError):
    """A webhook could not be authenticated or parsed; answer it with HTTP 400."""


class InvalidSignature(WebhookVerificationError):
    """The signature does not match the body under any configured secret."""


class MissingSignature(InvalidSignature):
    """The request carries no signature header at all."""


class TimestampOutsideTolerance(WebhookVerificationError):
    """The signed timestamp is older, or further in the future, than the tolerance."""


class MalformedPayload(WebhookVerificationError):
    """The signature is valid but the body is not a usable event."""


class InvalidTransition(PaygateError):
    """An event that cannot happen to a payment in its current state."""

    def __init__(
        self, message: str, *, status: str | None = None, trigger: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.trigger = trigger
