"""The docs' Python code blocks and the example shops pass ``mypy --strict``.

Every ``python`` block in README.md and docs/ that is not marked as a fragment (see
tests/docs_blocks.py) is checked as a module of its own; the Flask and FastAPI shops as
packages; the Django shop strictly too, except where Django itself has no types
(django-stubs would need its mypy plugin and the shop's settings). The README quickstart
and examples/quickstart.py are checked in tests/test_typing.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs_blocks import ROOT, all_blocks

mypy_api = pytest.importorskip("mypy.api", reason="mypy is in the dev dependency group")

_ERROR = re.compile(r"^(?P<path>[^:]+):(?P<line>\d+): error: (?P<message>.*)$")
SDKS = "paypalrestsdk.*,square.*,stripe.*,pyarrow,pyarrow.*"


def _mypy(config: str, tmp: Path, *targets: str) -> list[str]:
    (tmp / "mypy.ini").write_text(config, encoding="utf-8")
    stdout, stderr, status = mypy_api.run(
        [
            "--strict",
            "--config-file", str(tmp / "mypy.ini"),
            "--no-incremental",
            "--cache-dir", str(tmp / "cache"),
            "--python-version", "3.10",
            "--show-error-codes",
            "--no-color-output",
            "--no-error-summary",
            *targets,
        ]
    )  # fmt: skip
    assert status in (0, 1), stdout + stderr  # 2: mypy itself failed (a syntax error)
    return [line for line in stdout.splitlines() if _ERROR.match(line)]


def test_the_docs_blocks_pass_strict(tmp_path: Path) -> None:
    blocks = [block for block in all_blocks() if block.fragment is None]
    assert len(blocks) >= 15  # the check sees the docs' examples
    files = {}
    for block in blocks:
        path = tmp_path / f"{block.name}.py"
        path.write_text(block.code, encoding="utf-8")
        files[path.name] = block
    config = f"[mypy]\nmypy_path = {ROOT / 'src'}\n[mypy-{SDKS}]\nignore_missing_imports = True\n"
    errors = _mypy(config, tmp_path, *(str(tmp_path / name) for name in files))
    where = []
    for line in errors:
        match = _ERROR.match(line)
        assert match
        block = files.get(Path(match["path"]).name)
        assert block, f"an error outside the docs' blocks: {line}"
        page = block.page.relative_to(ROOT)
        where.append(f"{page}:{block.line + int(match['line']) - 1}: {match['message']}")
    assert not where, "\n".join(where)


def test_fragments_are_few_and_say_why() -> None:
    fragments = [block for block in all_blocks() if block.fragment is not None]
    assert all(block.fragment for block in fragments)
    # 16: about one page in two may have one (26 pages since the async face, the sandbox,
    # saved methods, subscriptions, disputes and observability came)
    assert len(fragments) <= 16, [f"{b.page.name}:{b.line}" for b in fragments]


def test_the_example_shops_pass_strict(tmp_path: Path) -> None:
    config = (
        f"[mypy]\nmypy_path = {ROOT / 'src'},{ROOT}\n"
        "explicit_package_bases = True\n"
        f"[mypy-{SDKS},django.*]\nignore_missing_imports = True\n"
        # Django has no types of its own: its base classes and decorators are Any
        "[mypy-examples.django_shop.*]\n"
        "disallow_subclassing_any = False\ndisallow_untyped_decorators = False\n"
    )
    targets = [
        *(arg for shop in ("flask_shop", "fastapi_shop", "django_shop")
          for arg in ("-p", f"examples.{shop}")),
    ]  # fmt: skip
    assert _mypy(config, tmp_path, *targets) == []
