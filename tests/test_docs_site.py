"""The docs site builds strictly and renders in a real browser (tools/docs_check.py).

Builds the site with ``mkdocs build --strict`` (a cross-reference that does not resolve
fails it), then looks at the index, state machine and reference pages in headless Chromium.
Skips, saying why, where mkdocs (the ``docs`` dependency group) or Chromium is missing;
``.ci/run`` installs both.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import docs_check  # noqa: E402

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocstrings_handlers") is None,
    reason="mkdocs is not installed (pip install --group docs)",
)


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict``, never with ``-q``: mkdocs 1.6 counts the warnings that
    --strict turns into a failure only when they are shown, so a quiet build passes them."""
    # the hook imports paygate: the copy next to the configuration
    src = config.parent / "src"
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",
        "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(config),
            "-d",
            str(site),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=config.parent,  # snippets are read relative to it
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = _build(ROOT / "mkdocs.yml", out)
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def _browser() -> None:
    reason = docs_check.browser_unavailable_reason()
    if reason:
        pytest.skip(f"no browser for the docs check: {reason}")


def test_the_pages_render_in_a_browser(site: Path, tmp_path: Path) -> None:
    _browser()
    shots = tmp_path / "shots"
    assert docs_check.check_site(site, shots) == []
    for name in ("index", "state-machine", "reference", "state-machine-diagram"):
        assert (shots / f"{name}.png").stat().st_size > 10_000, name


def test_the_check_fails_on_what_did_not_render(site: Path, tmp_path: Path) -> None:
    """The same site with raw markup injected: each kind is reported."""
    _browser()
    broken = tmp_path / "broken"
    shutil.copytree(site, broken)
    reference = broken / "reference" / "index.html"
    reference.write_text(
        reference.read_text(encoding="utf-8").replace(
            "<article",
            "<p>Returns a :class:`Money` and [`Step`][paygate.state.Stepp].</p><article",
            1,
        ),
        encoding="utf-8",
    )
    machine = broken / "state-machine" / "index.html"
    text = machine.read_text(encoding="utf-8")
    start, end = text.index('<div class="state-diagram">'), text.index("</svg></div>")
    machine.write_text(
        text[:start]
        + '<pre class="mermaid"><code>stateDiagram-v2\n  [*] --> pending</code></pre>'
        + text[end + len("</svg></div>") :],
        encoding="utf-8",
    )
    problems = "\n".join(docs_check.check_site(broken))
    assert "reference: reST markup shown as text" in problems
    assert "reference: an unresolved cross-reference shown as text" in problems
    assert "state-machine: a Mermaid diagram's source shown as text" in problems
    assert "state-machine: no state diagram" in problems


def test_a_broken_cross_reference_fails_the_strict_build(tmp_path: Path) -> None:
    """autorefs reports a docstring's target it cannot find; --strict fails the build."""
    for name in ("docs", "tools", "src", "examples"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    money = tmp_path / "src" / "paygate" / "money.py"
    text = money.read_text(encoding="utf-8")
    start = text.index('"""', text.index("class Money")) + 3
    money.write_text(
        text[:start] + "See [`Step`][paygate.state.NoSuchThing]. " + text[start:],
        encoding="utf-8",
    )
    built = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode != 0
    assert "paygate.state.NoSuchThing" in built.stdout + built.stderr
