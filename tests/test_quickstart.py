"""The README's quickstart is examples/quickstart.py, and it runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart.py"


def readme_quickstart() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Quickstart\n\n```python\n(.*?)^```", readme, re.S | re.M)
    assert match, "README.md has no ## Quickstart python block"
    return match.group(1)


def test_the_readme_shows_exactly_the_example() -> None:
    assert readme_quickstart() == QUICKSTART.read_text(encoding="utf-8")
    assert len(readme_quickstart().splitlines()) <= 20


def test_the_example_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(QUICKSTART)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["paid: ord_1", "succeeded", "partially_refunded"]
