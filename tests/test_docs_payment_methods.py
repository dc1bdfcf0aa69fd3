"""The fake provider walk-through in docs/payment-methods.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "payment-methods.md"


def test_the_fake_walk_through_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### With the fake provider", 1)[1].split("### Stripe", 1)[0]
    [block] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    exec(compile(block, str(DOC), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "visa 4242"
    assert out[1] == "succeeded"
    assert out[2].startswith("bring Ada back to confirm pay_")
