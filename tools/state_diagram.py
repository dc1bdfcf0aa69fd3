"""State diagrams drawn at docs build time as inline SVG (an MkDocs hook).

A page asks for a diagram with a fence naming where its edges come from:

    ```state-diagram
    edges: paygate.state:diagram_edges
    initial: pending
    final: canceled, charged_back
    title: The payment state machine
    ```

``edges`` is ``module:callable`` returning ``(source, target, label)`` triples (an edge from
a state to itself is drawn inside the state's box); ``initial`` gets the start dot, ``final``
states a double border. The hook replaces the fence with the SVG, so the page needs no
JavaScript, no CDN and no network: it renders offline, in the search index's text and in a
headless browser alike.

Hand-written rather than Graphviz: ``dot`` would need a system package on every machine that
builds the docs (CI, contributors, Read the Docs), and the diagrams here are small: a layered
(Sugiyama-style) layout in ~200 lines of pure Python does: longest-path layers after
reversing the edges that close a cycle, virtual points where an edge spans several layers,
barycentre ordering against crossings, and labels placed where they overlap nothing.
``render_state_diagram`` is generic: any states and transitions (payments, subscriptions).
"""

from __future__ import annotations

import html
import importlib
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

FONT = "13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"
CHAR = 7.9  # advance of one 13px monospace character, px (generous: no text overflows)
LINE = 16  # line height, px
PAD_X, PAD_Y = 12, 8  # inside a state's box
LAYER_GAP = 130  # between the bottom of one layer and the top of the next
NODE_GAP = 36  # between two boxes in a layer
VIRTUAL_WIDTH = 24  # the room an edge passing through a layer takes
LABEL_WIDTH = 30  # characters per label line before it wraps (at a comma)
MARGIN = 24

_counter = itertools.count(1)


@dataclass
class _Node:
    name: str
    virtual: bool = False
    loops: list[str] = field(default_factory=list)
    layer: int = 0
    order: float = 0.0
    x: float = 0.0  # centre
    y: float = 0.0  # top
    width: float = VIRTUAL_WIDTH
    height: float = 0.0


def _wrap(label: str, width: int = LABEL_WIDTH) -> list[str]:
    lines: list[str] = []
    for part in (p.strip() for p in label.split(",")):
        if lines and len(lines[-1]) + len(part) + 2 <= width:
            lines[-1] += ", " + part
        elif part:
            if lines:
                lines[-1] += ","
            lines.append(part)
    return lines or [""]


def _layers(
    states: Sequence[str], edges: list[tuple[str, str]], initial: str | None
) -> dict[str, int]:
    """Longest-path layering after reversing the edges that close a cycle (depth-first,
    from the initial state, successors in the order the states were given)."""
    successors: dict[str, list[str]] = {s: [] for s in states}
    for source, target in edges:
        successors[source].append(target)
    rank = {s: i for i, s in enumerate(states)}
    for targets in successors.values():
        targets.sort(key=rank.__getitem__)
    forward: set[tuple[str, str]] = set()
    state_of: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str) -> None:
        state_of[node] = 1
        for target in successors[node]:
            if state_of.get(target) == 1:
                continue  # closes a cycle: drawn, but not layered by
            forward.add((node, target))
            if target not in state_of:
                visit(target)
        state_of[node] = 2

    for start in [initial, *states] if initial else states:
        if start is not None and start not in state_of:
            visit(start)
    layer = dict.fromkeys(states, 0)
    for _ in states:  # relax: the graph of forward edges is acyclic
        for source, target in forward:
            layer[target] = max(layer[target], layer[source] + 1)
    return layer


def render_state_diagram(
    states: Sequence[str],
    transitions: Iterable[tuple[str, str, str]],
    *,
    initial: str | None = None,
    final: Iterable[str] = (),
    title: str = "State diagram",
) -> str:
    """An SVG drawing of a state machine (one ``<svg>`` element, no scripts, no external
    references), scaled to the width it is shown in.

    Args:
        states: every state, in a preferred reading order (it breaks ties in the layout).
        transitions: ``(source, target, label)``; parallel edges are merged, their labels
            joined; an edge from a state to itself is listed inside the state's box.
        initial: the state the start dot points at.
        final: states drawn with a double border.
        title: the SVG's accessible title.
    """
    final = set(final)
    nodes = {s: _Node(s) for s in states}
    merged: dict[tuple[str, str], list[str]] = {}
    for source, target, label in transitions:
        for name in (source, target):
            if name not in nodes:
                raise ValueError(f"transition {source!r} -> {target!r}: unknown state {name!r}")
        if source == target:
            nodes[source].loops.append(label)
        else:
            merged.setdefault((source, target), []).append(label)
    layer = _layers(states, list(merged), initial)
    for name, node in nodes.items():
        node.layer = layer[name]
        node.order = states.index(name)
        lines = [
            name,
            *(_wrap("↻ " + ", ".join(node.loops), LABEL_WIDTH + 4) if node.loops else []),
        ]
        node.width = max(len(line) for line in lines) * CHAR + 2 * PAD_X
        node.height = len(lines) * LINE + 2 * PAD_Y

    # each edge becomes a chain through one virtual node per layer it crosses
    chains: list[tuple[str, str, str, list[_Node]]] = []
    all_nodes: list[_Node] = list(nodes.values())
    for (source, target), labels in merged.items():
        top, bottom = (source, target) if layer[source] < layer[target] else (target, source)
        chain = [nodes[top]]
        for level in range(layer[top] + 1, layer[bottom]):
            virtual = _Node(f"{source}->{target}@{level}", virtual=True, layer=level)
            virtual.order = (nodes[top].order + nodes[bottom].order) / 2
            chain.append(virtual)
            all_nodes.append(virtual)
        chain.append(nodes[bottom])
        if top != source:
            chain.reverse()
        chains.append((source, target, ", ".join(labels), chain))

    depth = max(n.layer for n in all_nodes) + 1
    by_layer: list[list[_Node]] = [[] for _ in range(depth)]
    for node in all_nodes:
        by_layer[node.layer].append(node)
    neighbours: dict[int, list[_Node]] = {id(n): [] for n in all_nodes}
    for *_, chain in chains:
        for a, b in itertools.pairwise(chain):
            neighbours[id(a)].append(b)
            neighbours[id(b)].append(a)
    # barycentre sweeps, down then up: each node moves to the mean position of its
    # neighbours in the layer just swept
    for sweep in range(8):
        levels = range(1, depth) if sweep % 2 == 0 else range(depth - 2, -1, -1)
        for level in levels:
            reference = level - 1 if sweep % 2 == 0 else level + 1
            for node in by_layer[level]:
                near = [m.order for m in neighbours[id(node)] if m.layer == reference]
                if near:
                    node.order = sum(near) / len(near)
            by_layer[level].sort(key=lambda n: n.order)
            for position, node in enumerate(by_layer[level]):
                node.order = position
        by_layer[0].sort(key=lambda n: n.order)
        for position, node in enumerate(by_layer[0]):
            node.order = position

    # coordinates: each layer centred, its height the tallest box
    widths = [sum(n.width for n in row) + NODE_GAP * (len(row) - 1) for row in by_layer]
    canvas_width = max(widths) + 2 * MARGIN
    start_room = 34 if initial else 0
    y: float = MARGIN + start_room
    for row, row_width in zip(by_layer, widths, strict=True):
        x = (canvas_width - row_width) / 2
        row_height = (
            max(n.height for n in row if not n.virtual) if any(not n.virtual for n in row) else LINE
        )
        for node in row:
            node.x = x + node.width / 2
            node.y = y + (row_height - node.height) / 2 if not node.virtual else y
            if node.virtual:
                node.height = row_height
            x += node.width + NODE_GAP
        y += row_height + LAYER_GAP
    canvas_height = y - LAYER_GAP + MARGIN

    # where each edge leaves and enters a box: spread along the side it uses, in the order
    # of where the edge goes, so that arrowheads do not pile up at one point
    routes: list[list[tuple[float, float]]] = []
    for *_, chain in chains:
        points = []
        for position, node in enumerate(chain):
            top_y, bottom_y = node.y, node.y + node.height
            going_down = position + 1 < len(chain) and chain[position + 1].layer > node.layer
            coming_down = position > 0 and chain[position - 1].layer < node.layer
            if position == 0:
                points.append((node.x, bottom_y if going_down else top_y))
            elif position == len(chain) - 1:
                points.append((node.x, top_y if coming_down else bottom_y))
            else:  # a virtual node: pass straight through the layer
                points.extend(
                    [(node.x, top_y), (node.x, bottom_y)]
                    if coming_down
                    else [(node.x, bottom_y), (node.x, top_y)]
                )
        routes.append(points)
    ports: dict[tuple[str, float], list[tuple[float, int, int]]] = {}
    for index, ((*_, chain), points) in enumerate(zip(chains, routes, strict=True)):
        for end, node, toward in ((0, chain[0], points[1]), (-1, chain[-1], points[-2])):
            ports.setdefault((node.name, points[end][1]), []).append((toward[0], index, end))
    for (name, _side), users in ports.items():
        node = nodes[name]
        users.sort()
        usable = node.width * 0.8
        for rank_in_side, (_toward, index, end) in enumerate(users):
            x = node.x - usable / 2 + usable * (rank_in_side + 1) / (len(users) + 1)
            routes[index][end] = (x, routes[index][end][1])

    uid = f"sd{next(_counter)}"
    boxes = [(n.x - n.width / 2, n.y, n.x + n.width / 2, n.y + n.height) for n in nodes.values()]
    placed: list[tuple[float, float, float, float]] = []
    label_svg: list[str] = []
    edge_svg: list[str] = []
    for (source, target, label, _chain), points in zip(chains, routes, strict=True):
        path = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            if x0 == x1:
                path.append(f"L{x1:.1f},{y1:.1f}")
            else:
                middle = (y0 + y1) / 2
                path.append(f"C{x0:.1f},{middle:.1f} {x1:.1f},{middle:.1f} {x1:.1f},{y1:.1f}")
        edge_svg.append(
            f'<path d="{" ".join(path)}" fill="none" stroke="#555" stroke-width="1.3" '
            f'marker-end="url(#{uid}-arrow)"><title>{html.escape(f"{source} → {target}: {label}")}'
            "</title></path>"
        )
        label_svg.append(_label(label, points, boxes, placed))
    out: list[str] = [*edge_svg, *label_svg]
    for node in nodes.values():
        left = node.x - node.width / 2
        fill = "#eef3fb" if node.name != initial else "#e3f4e8"
        out.append(
            f'<g class="state"><title>{html.escape(node.name)}</title>'
            f'<rect x="{left:.1f}" y="{node.y:.1f}" width="{node.width:.1f}" '
            f'height="{node.height:.1f}" rx="9" fill="{fill}" stroke="#35598f" stroke-width="1.4"/>'
        )
        if node.name in final:
            out.append(
                f'<rect x="{left + 3:.1f}" y="{node.y + 3:.1f}" width="{node.width - 6:.1f}" '
                f'height="{node.height - 6:.1f}" rx="7" fill="none" stroke="#35598f"/>'
            )
        text_y = node.y + PAD_Y + 12
        out.append(
            f'<text x="{node.x:.1f}" y="{text_y:.1f}" text-anchor="middle" font-weight="bold" '
            f'fill="#1b2b45">{html.escape(node.name)}</text>'
        )
        if node.loops:
            for number, line in enumerate(_wrap("↻ " + ", ".join(node.loops), LABEL_WIDTH + 4), 1):
                out.append(
                    f'<text x="{node.x:.1f}" y="{text_y + number * LINE:.1f}" '
                    'text-anchor="middle" font-size="11.5" fill="#4a5568">'
                    f"{html.escape(line)}</text>"
                )
        out.append("</g>")
    if initial:
        start = nodes[initial]
        dot_y = start.y - start_room + 6
        out.append(
            f'<circle cx="{start.x:.1f}" cy="{dot_y:.1f}" r="6" fill="#1b2b45"/>'
            f'<path d="M{start.x:.1f},{dot_y + 6:.1f} L{start.x:.1f},{start.y:.1f}" '
            f'stroke="#555" stroke-width="1.3" marker-end="url(#{uid}-arrow)"/>'
        )
    # the drawing's extent: boxes, labels and the start dot (labels may stick out)
    extent = [*boxes, *placed, (MARGIN, MARGIN, canvas_width - MARGIN, canvas_height - MARGIN)]
    view_left = min(b[0] for b in extent) - MARGIN
    view_top = min(b[1] for b in extent) - MARGIN
    width = max(b[2] for b in extent) + MARGIN - view_left
    height = max(b[3] for b in extent) + MARGIN - view_top
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="state-diagram" role="img" '
        f'aria-labelledby="{uid}-title" '
        f'viewBox="{view_left:.0f} {view_top:.0f} {width:.0f} {height:.0f}" '
        f'width="100%" style="max-width:{width:.0f}px;height:auto" '
        f'font-family="{html.escape(FONT.split(" ", 1)[1])}" font-size="13">',
        f'<title id="{uid}-title">{html.escape(title)}</title>',
        f'<defs><marker id="{uid}-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    return "".join([*head, *out, "</svg>"])


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0


def _label(
    label: str,
    points: list[tuple[float, float]],
    boxes: list[tuple[float, float, float, float]],
    placed: list[tuple[float, float, float, float]],
) -> str:
    """The label at the point along the edge where it overlaps the least (states, labels)."""
    lines = _wrap(label)
    width = max(len(line) for line in lines) * CHAR * 0.9 + 8
    height = len(lines) * (LINE - 2) + 4
    segments = list(itertools.pairwise(points))
    best: tuple[float, tuple[float, float, float, float]] | None = None
    for fraction in (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.12, 0.88):
        for (x0, y0), (x1, y1) in segments:
            if abs(y1 - y0) < 1:
                continue
            cx, cy = x0 + (x1 - x0) * fraction, y0 + (y1 - y0) * fraction
            box = (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)
            cost = sum(_overlap(box, other) for other in [*boxes, *placed])
            if best is None or cost < best[0]:
                best = (cost, box)
        if best is not None and best[0] == 0:
            break
    assert best is not None
    box = best[1]
    placed.append(box)
    parts = [
        f'<rect x="{box[0]:.1f}" y="{box[1]:.1f}" width="{width:.1f}" height="{height:.1f}" '
        'rx="3" fill="#ffffff" fill-opacity="0.92"/>'
    ]
    for number, line in enumerate(lines):
        parts.append(
            f'<text x="{(box[0] + box[2]) / 2:.1f}" y="{box[1] + 13 + number * (LINE - 2):.1f}" '
            f'text-anchor="middle" font-size="11.5" fill="#2d3748">{html.escape(line)}</text>'
        )
    return f'<g class="edge-label">{"".join(parts)}</g>'


# -- the MkDocs hook -----------------------------------------------------------------------

FENCE = re.compile(r"^```state-diagram\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def _load(spec: str) -> Callable[[], Iterable[tuple[str, str, str]]]:
    module, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"state-diagram: edges must be module:callable, got {spec!r}")
    found: Any = getattr(importlib.import_module(module), name)
    return found  # type: ignore[no-any-return]


def diagram_from_fence(body: str) -> str:
    """The SVG for one ``state-diagram`` fence's body (``key: value`` lines)."""
    options: dict[str, str] = {}
    for line in body.splitlines():
        if line.strip():
            key, _, value = line.partition(":")
            options[key.strip()] = value.strip()
    unknown = set(options) - {"edges", "initial", "final", "title"}
    if unknown or "edges" not in options:
        raise ValueError(
            f"state-diagram: needs edges:, knows initial:, final:, title:; got {sorted(options)}"
        )
    edges = list(_load(options["edges"])())
    states: list[str] = []
    initial = options.get("initial") or None
    for source, target, _label in edges:
        for name in (source, target):
            if name not in states:
                states.append(name)
    if initial and initial in states:
        states.remove(initial)
        states.insert(0, initial)
    final = [s.strip() for s in options.get("final", "").split(",") if s.strip()]
    for name in final:
        if name not in states:
            states.append(name)
    return render_state_diagram(
        states, edges, initial=initial, final=final, title=options.get("title", "State diagram")
    )


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: each ``state-diagram`` fence becomes its SVG, as raw HTML."""
    return FENCE.sub(
        lambda m: f'\n<div class="state-diagram">{diagram_from_fence(m["body"])}</div>\n',
        markdown,
    )
