"""``import paygate`` stays light: no provider SDK, no pydantic, no HTTP client."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import paygate

#: top-level packages that ``import paygate`` must not pull in
FORBIDDEN = ("stripe", "paypalrestsdk", "square", "pydantic", "requests", "httpx")


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout))


def test_import_paygate_pulls_in_no_sdk() -> None:
    loaded = modules_after("import paygate")
    offending = sorted(
        name for name in loaded if name.split(".")[0] in FORBIDDEN or name.startswith(
            "paygate.providers."
        )
    )  # fmt: skip
    assert offending == []
    assert "paygate" in loaded and "paygate.money" in loaded


def test_the_probe_does_see_an_sdk_import() -> None:
    """The check above is not blind: a module that imports a forbidden one shows up."""
    loaded = modules_after("import paygate.providers.fake")  # the fake adapter uses pydantic
    assert "pydantic" in loaded and "paygate.providers.fake" in loaded


def test_core_names_need_nothing_heavy() -> None:
    loaded = modules_after(
        "from paygate import Money, Payment, PaymentStatus, PaygateError\n"
        "import paygate.state, paygate.errors, paygate.models, paygate.provider\n"
        "paygate.state.to_mermaid()\n"
        "Money.of('19.99', 'USD')"
    )
    assert not {name.split(".")[0] for name in loaded} & set(FORBIDDEN)


def test_public_names_resolve() -> None:
    eager = [name for name in paygate.__all__ if name not in paygate._LAZY]
    for name in eager:
        assert getattr(paygate, name) is not None, name
    assert set(paygate._LAZY) <= set(paygate.__all__)
    assert set(paygate.__all__) <= set(dir(paygate))
    with pytest.raises(AttributeError, match="no_such_name"):
        paygate.no_such_name  # noqa: B018
