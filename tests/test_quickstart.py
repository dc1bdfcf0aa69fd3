"""The README's quickstart is examples/quickstart.py, and it runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def _on_sqlite(code: str) -> str:
    sqlite = code.replace(
        'paygate.connect("fake")', 'paygate.connect("fake", store="sqlite:///q.db")'
    )
    assert sqlite != code
    return sqlite


def _run_strict(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Python's development mode, a ResourceWarning an error (3.13 reports a SQLite
    connection left open)."""
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


def test_the_example_on_sqlite_leaves_nothing_open(tmp_path: Path) -> None:
    done = _run_strict(_on_sqlite(QUICKSTART.read_text(encoding="utf-8")), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["paid: ord_1", "succeeded", "partially_refunded"]
    assert done.stderr == ""


@pytest.mark.skipif(
    sys.version_info < (3, 13), reason="sqlite3 warns of an unclosed connection from 3.13"
)
def test_the_strict_run_sees_a_gateway_left_open(tmp_path: Path) -> None:
    code = _on_sqlite(QUICKSTART.read_text(encoding="utf-8"))
    leaky = "\n".join(line for line in code.splitlines() if not line.startswith("gw.close()"))
    assert leaky != code
    done = _run_strict(leaky, tmp_path)
    assert "ResourceWarning: unclosed database" in done.stderr
