"""The Python code blocks of README.md and docs/*.md, as the reader sees them.

A block meant to be read as part of a longer story (it uses a ``gw`` from the block above,
or sits inside a framework's view) is marked on the line before its fence::

    <!-- fragment: not type-checked alone (why) -->

Every other ``python`` block must run or type-check on its own. Blocks included from
examples/ (``--8<--``) are the example files themselves, checked as files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(?:python|py)\n(?P<code>.*?)^```", re.MULTILINE | re.DOTALL)
FRAGMENT = re.compile(r"<!-- fragment: (?P<why>[^>]*)-->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    code: str
    fragment: str | None  # why it does not stand alone, or None

    @property
    def name(self) -> str:
        """A module name for the block: docs_testing_L22."""
        stem = re.sub(r"\W", "_", str(self.page.relative_to(ROOT).with_suffix("")))
        return f"{stem}_L{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def python_blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        if match["code"].lstrip().startswith("--8<--"):
            continue
        before = [line for line in text[: match.start()].splitlines() if line.strip()]
        marker = FRAGMENT.search(before[-1]) if before else None
        line = text.count("\n", 0, match.start()) + 2  # the block's first line of code
        found.append(Block(page, line, match["code"], marker["why"].strip() if marker else None))
    return found


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in python_blocks(page)]
