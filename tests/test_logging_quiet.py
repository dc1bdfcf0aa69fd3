"""An application that never configured logging hears nothing from paygate on stderr."""

from __future__ import annotations

import subprocess
import sys

# a retried provider call: paygate logs a WARNING ("attempt 1 failed ...; retrying")
_RETRY = """
import logging
{setup}
from paygate import ProviderUnavailable
from paygate.gateway import RetryPolicy

calls = []

def flaky():
    calls.append(1)
    if len(calls) == 1:
        raise ProviderUnavailable("down for a moment")
    return "ok"

assert RetryPolicy(attempts=2, base_delay=0).call("create_payment", flaky) == "ok"
print("done")
"""


def _run(setup: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _RETRY.format(setup=setup)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def test_no_warning_reaches_stderr_of_an_app_without_logging_config() -> None:
    result = _run("")
    assert result.stdout == "done\n"
    assert result.stderr == ""


def test_an_app_that_configures_logging_sees_the_warning() -> None:
    """The check above is not blind: the same run does log, once logging is configured."""
    result = _run("logging.basicConfig()")
    assert "WARNING:paygate:create_payment: attempt 1 failed (ProviderUnavailable" in result.stderr
