"""Test support for applications and adapters using paygate.

* `paygate.testing.plugin` (loaded by pytest through the ``pytest11`` entry point):
  the ``fake_provider``, ``fake_gateway`` and ``fake_clock`` fixtures.
* `paygate.testing.conformance`: ``ProviderContract``, the reusable test class every
  provider adapter passes, driven by a ``ProviderHarness``.
* [`FakeClock`][paygate.testing.FakeClock]: a settable clock to hand the fake provider (``clock=``).
* `pay_hosted_page` / `submit_page`: the customer on the sandbox's hosted pages
  (Checkout, 3-D Secure, PayPal approval, Square payment link), over plain HTTP form posts,
  as a browser without JavaScript; `CustomerReturn` says where they ended up.

Importing this package imports neither pytest nor a provider SDK.
"""

from __future__ import annotations

from paygate.testing._clock import FakeClock
from paygate.testing._customer import (
    CustomerReturn,
    HostedPageError,
    pay_hosted_page,
    submit_page,
)

__all__ = ["CustomerReturn", "FakeClock", "HostedPageError", "pay_hosted_page", "submit_page"]
