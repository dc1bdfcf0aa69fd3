"""The API reference renders: Google-style docstrings with Markdown, no reST markup in src/.

mkdocstrings renders docstrings as Markdown (``docstring_style: google`` in mkdocs.yml), so a
reST role (``:class:`Money```), a ``::`` literal block or a ``\\ `` escape shows up as literal
text on the reference page. Cross-references are written the autorefs way,
``[`Money`][paygate.money.Money]``, and ``mkdocs build --strict`` fails on one that does not
resolve (tests/test_docs_site.py builds the site).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "paygate"

ROLE = re.compile(r"(?<![\w:/]):(?:py:)?(?:class|meth|func|attr|exc|data|mod|obj|const|ref):`")
LITERAL_BLOCK = re.compile(r"::\s*$")


def _docstrings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every docstring and ``#:`` attribute comment in the module."""
    source = path.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                found.append((node.body[0].lineno, doc))
    found.extend(
        (number, line.strip()[2:])
        for number, line in enumerate(source.splitlines(), 1)
        if line.lstrip().startswith("#:")
    )
    return found


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(SRC)))
def test_docstrings_are_markdown_not_rest(path: Path) -> None:
    problems = []
    for line, doc in _docstrings(path):
        for offset, text in enumerate(doc.splitlines()):
            where = f"{path.relative_to(ROOT)}:{line + offset}"
            if ROLE.search(text):
                problems.append(f"{where}: reST role (write [`Name`][paygate.module.Name]): {text}")
            if LITERAL_BLOCK.search(text):
                problems.append(f"{where}: reST literal block (use a ``` fence): {text}")
            if "\\ " in text:
                problems.append(f"{where}: reST escape: {text}")
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_role() -> None:
    assert ROLE.search("see :class:`Money` and :meth:`Gateway.refund`")
    assert ROLE.search(":py:func:`apply`")
    # SQLite's in-memory URL is not a role
    assert not ROLE.search("``sqlite:///:memory:``")


def test_mkdocstrings_parses_google_style() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s*docstring_style: google\s*$", config, re.MULTILINE)
