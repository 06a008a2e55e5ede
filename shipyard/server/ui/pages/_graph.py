"""A layered graph drawn as inline SVG on the server (the pipeline's DAG, a model version's lineage).

No JavaScript library: nodes sit in columns by their longest path from a source, edges are curves
from the right side of one node to the left side of the next. The markup is built with
``markupsafe`` escaping, so labels from the store (stage names, paths) cannot inject markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT, GAP_X, GAP_Y, PAD = 200, 44, 60, 18, 12
MAX_LABEL = 28
# inside the <svg> so the graph draws the same wherever a page puts it
STYLE = ("<style>.graph .edge{fill:none;stroke:#98a2b3;stroke-width:1.5}"
         ".graph rect{fill:#fff;stroke:#98a2b3;stroke-width:1.2}.graph .label{font:600 13px system-ui,sans-serif;fill:#1d2330}"
         ".graph .sub{font:12px system-ui,sans-serif;fill:#667085}.graph .ok rect{stroke:#18794e;fill:#ecfdf3}"
         ".graph .bad rect{stroke:#b42318;fill:#fef3f2}.graph .warn rect{stroke:#b54708;fill:#fffaeb}"
         ".graph .muted rect{stroke-dasharray:4 3}.graph a:hover rect{stroke:#1f5fbf}</style>")


@dataclass(frozen=True)
class Node:
    """One box: ``key`` is unique in the graph; ``cls`` adds CSS classes (ok, bad, warn, muted)."""

    key: str
    label: str
    sub: str = ""
    href: str | None = None
    cls: str = ""


def _layers(nodes: Sequence[Node], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each node's column: the length of the longest path reaching it (edges in any order)."""
    layer = {n.key: 0 for n in nodes}
    for _ in range(len(nodes)):  # relax until stable; at most len(nodes) rounds in a DAG
        changed = False
        for up, down in edges:
            if up in layer and down in layer and layer[down] < layer[up] + 1:
                layer[down] = layer[up] + 1
                changed = True
        if not changed:
            break
    return layer


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def layered_svg(nodes: Sequence[Node], edges: Sequence[tuple[str, str]], *, element_id: str, title: str) -> Markup:
    """The graph as an ``<svg>`` element with id ``element_id``; each node is a ``g.node`` with
    ``data-key``, linked when it has an ``href``."""
    layer = _layers(nodes, edges)
    rows: dict[int, int] = {}
    where: dict[str, tuple[int, int]] = {}
    for node in nodes:
        column = layer[node.key]
        row = rows.get(column, 0)
        rows[column] = row + 1
        where[node.key] = (PAD + column * (WIDTH + GAP_X), PAD + row * (HEIGHT + GAP_Y))
    width = PAD * 2 + (max(layer.values(), default=0) + 1) * (WIDTH + GAP_X) - GAP_X
    height = PAD * 2 + max(rows.values(), default=1) * (HEIGHT + GAP_Y) - GAP_Y
    parts = [f'<svg id="{escape(element_id)}" class="graph" role="img" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}"><title>{escape(title)}</title>{STYLE}']
    for up, down in edges:
        if up not in where or down not in where:
            continue
        (x1, y1), (x2, y2) = where[up], where[down]
        x1, y1, y2 = x1 + WIDTH, y1 + HEIGHT // 2, y2 + HEIGHT // 2
        mid = (x1 + x2) // 2
        parts.append(f'<path class="edge" data-from="{escape(up)}" data-to="{escape(down)}" '
                     f'd="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"/>')
    for node in nodes:
        x, y = where[node.key]
        box = (f'<g class="node {escape(node.cls)}" data-key="{escape(node.key)}"><title>{escape(node.label)}'
               f'{escape(" · " + node.sub) if node.sub else ""}</title>'
               f'<rect x="{x}" y="{y}" width="{WIDTH}" height="{HEIGHT}" rx="5"/>'
               f'<text x="{x + 8}" y="{y + 18}" class="label">{escape(_short(node.label))}</text>'
               f'<text x="{x + 8}" y="{y + 35}" class="sub">{escape(_short(node.sub))}</text></g>')
        parts.append(f'<a href="{escape(node.href)}">{box}</a>' if node.href else box)
    parts.append("</svg>")
    return Markup("".join(parts))
