"""Links that work wherever the text is read.

README.md is shown on the package index, away from the repository: its links are absolute
(tests/test_packaging.py), and those into this repository name files that exist. The docs
pages link relatively to pages that exist, with headings that exist: mkdocs.yml's
``validation`` makes a broken one a warning, which ``--strict`` fails on
(tests/test_docs_site.py builds the site).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPOSITORY = "https://github.com/paygate-payments/paygate/"
LINK = re.compile(r"\]\(([^)\s]+)\)|^\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def _targets(text: str) -> list[str]:
    return [a or b for a, b in LINK.findall(text)]


def test_the_readme_links_into_the_repository_name_files_that_exist() -> None:
    targets = _targets((ROOT / "README.md").read_text(encoding="utf-8"))
    ours = [t for t in targets if t.startswith(REPOSITORY)]
    assert len(ours) >= 10
    missing = []
    for target in ours:
        match = re.match(re.escape(REPOSITORY) + r"(?:blob|tree)/main/([^#?]+)", target)
        if match and not (ROOT / match[1]).exists():
            missing.append(target)
    assert missing == []


def test_docs_pages_link_relatively_within_the_docs() -> None:
    problems = []
    docs = ROOT / "docs"
    for page in sorted(docs.rglob("*.md")):
        for target in _targets(page.read_text(encoding="utf-8")):
            if re.match(r"https?://|mailto:|#", target):
                continue
            path = target.split("#", 1)[0]
            resolved = (page.parent / path).resolve()
            if target.startswith("/") or not resolved.is_relative_to(docs.resolve()):
                problems.append(f"{page.relative_to(ROOT)}: {target} leaves the docs")
            elif not resolved.exists():
                problems.append(f"{page.relative_to(ROOT)}: {target} does not exist")
    assert problems == []


def test_mkdocs_fails_on_a_broken_link_or_anchor() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    validation = config.split("validation:", 1)[1].split("\n\n", 1)[0]
    for check in ("not_found", "anchors", "absolute_links", "unrecognized_links"):
        assert re.search(rf"^\s+{check}: warn$", validation, re.MULTILINE), check
    assert re.search(r"^strict: true$", config, re.MULTILINE)
