"""The state diagram is drawn at docs build time as inline SVG (tools/state_diagram.py)."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from paygate.models import PaymentStatus
from paygate.state import TERMINAL, diagram_edges

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import state_diagram  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
PAYMENT_FENCE = (
    "edges: paygate.state:diagram_edges\ninitial: pending\nfinal: canceled, charged_back\n"
)


def _rects(root: ET.Element) -> list[tuple[float, float, float, float]]:
    found = []
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "state":
            rect = group.find(f"{SVG}rect")
            assert rect is not None
            x, y = float(rect.get("x", 0)), float(rect.get("y", 0))
            found.append((x, y, x + float(rect.get("width", 0)), y + float(rect.get("height", 0))))
    return found


def test_the_payment_diagram_draws_every_status_and_edge() -> None:
    svg = state_diagram.diagram_from_fence(PAYMENT_FENCE)
    root = ET.fromstring(svg)  # well-formed, one element
    assert root.tag == f"{SVG}svg"
    texts = {"".join(t.itertext()) for t in root.iter(f"{SVG}text")}
    assert {s.value for s in PaymentStatus} <= texts
    edges = [e for e in diagram_edges() if e[0] != e[1]]
    titles = {
        "".join(t.itertext()) for path in root.iter(f"{SVG}path") for t in path.iter(f"{SVG}title")
    }
    for source, target, label in edges:
        assert f"{source} → {target}: {label}" in titles
    # a status's own news is listed in its box
    for source, _target, label in (e for e in diagram_edges() if e[0] == e[1]):
        for trigger in label.split(", "):
            assert trigger in svg, (source, trigger)
    # terminal statuses have the double border: two rects in their group
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "state":
            name = "".join(group.find(f"{SVG}title").itertext())  # type: ignore[union-attr]
            rects = group.findall(f"{SVG}rect")
            assert len(rects) == (2 if name in {t.value for t in TERMINAL} else 1), name


def test_boxes_do_not_overlap_and_everything_is_inside_the_view() -> None:
    root = ET.fromstring(state_diagram.diagram_from_fence(PAYMENT_FENCE))
    left, top, width, height = map(float, root.get("viewBox", "").split())
    rects = _rects(root)
    for i, a in enumerate(rects):
        assert left <= a[0] and a[2] <= left + width and top <= a[1] and a[3] <= top + height
        for b in rects[i + 1 :]:
            assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1])
    # the labels too: none is cut off at the edge of the picture
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "edge-label":
            rect = group.find(f"{SVG}rect")
            assert rect is not None
            x, w = float(rect.get("x", 0)), float(rect.get("width", 0))
            assert left <= x and x + w <= left + width
    assert root.get("width") == "100%"  # scales down to the column, never cut off


def test_no_script_and_no_network() -> None:
    svg = state_diagram.diagram_from_fence(PAYMENT_FENCE)
    assert "<script" not in svg and "href" not in svg
    assert re.findall(r"https?://[^\"]+", svg) == ["http://www.w3.org/2000/svg"]


def test_the_renderer_is_generic() -> None:
    """Any states and transitions: a subscription-like machine, with a cycle and a loop."""
    svg = state_diagram.render_state_diagram(
        ["trialing", "active", "past_due", "canceled"],
        [
            ("trialing", "active", "paid"),
            ("active", "past_due", "payment_failed"),
            ("past_due", "active", "paid"),
            ("past_due", "canceled", "gave_up"),
            ("active", "active", "renewed"),
            ("active", "canceled", "canceled"),
        ],
        initial="trialing",
        final=["canceled"],
        title="Subscriptions",
    )
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == "Subscriptions"  # type: ignore[union-attr]
    assert "↻ renewed" in svg
    assert len(_rects(root)) == 4
    # two diagrams on one page do not share marker ids
    other = state_diagram.render_state_diagram(["a", "b"], [("a", "b", "go")])
    ids = set(re.findall(r'id="([^"]+)"', svg)) & set(re.findall(r'id="([^"]+)"', other))
    assert not ids


def test_an_unknown_state_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown state 'nowhere'"):
        state_diagram.render_state_diagram(["a"], [("a", "nowhere", "x")])
    with pytest.raises(ValueError, match="needs edges:"):
        state_diagram.diagram_from_fence("initial: a\n")


def test_the_hook_replaces_the_fence_with_svg() -> None:
    page = f"Before.\n\n```state-diagram\n{PAYMENT_FENCE}```\n\nAfter.\n"
    out = state_diagram.on_page_markdown(page)
    assert "```state-diagram" not in out
    assert '<div class="state-diagram"><svg' in out and out.endswith("After.\n")
    # raw HTML block: no blank line inside, or Markdown would end the block there
    block = out[out.index("<div") : out.index("</div>")]
    assert "\n" not in block


def test_the_docs_use_no_mermaid_and_draw_the_payment_machine() -> None:
    pages = {p: p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md")}
    assert not [p for p, text in pages.items() if "```mermaid" in text]
    assert "edges: paygate.state:diagram_edges" in pages[ROOT / "docs" / "state-machine.md"]
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "tools/state_diagram.py" in config and "mermaid" not in config


BOX_DRAWING = re.compile(r"[│─┌┐└┘├┤▶◀╱╲]")


def test_text_diagrams_fit_the_page() -> None:
    """An ASCII drawing wider than the content column is cut off (it scrolls, unseen):
    drawings stay within 80 columns."""
    too_wide = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
            if match[1] in ("", "text") and BOX_DRAWING.search(match[2]):
                width = max(len(line) for line in match[2].splitlines())
                if width > 80:
                    too_wide.append(f"{page.relative_to(ROOT)}: {width} columns")
    assert not too_wide
