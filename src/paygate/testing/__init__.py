"""Test support for applications and adapters using paygate.

* `paygate.testing.plugin` (loaded by pytest through the ``pytest11`` entry point):
  the ``fake_provider``, ``fake_gateway`` and ``fake_clock`` fixtures.
* `paygate.testing.conformance`: ``ProviderContract``, the reusable test class every
  provider adapter passes, driven by a ``ProviderHarness``.
* [`FakeClock`][paygate.testing.FakeClock]: a settable clock to hand the fake provider (``clock=``).

Importing this package imports neither pytest nor a provider SDK.
"""

from __future__ import annotations

from paygate.testing._clock import FakeClock

__all__ = ["FakeClock"]
