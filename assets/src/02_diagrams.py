#!/usr/bin/env python3
"""Draw the diagrams of notebook 02 (tasks) into assets/02_*.svg.

    python assets/src/02_diagrams.py              # rewrite the SVGs
    python assets/src/02_diagrams.py --png DIR    # also write PNG copies to DIR, to look at them

Only matplotlib is needed. The output is byte-for-byte reproducible (fixed hash salt, no date in the metadata).
"""
import functools

from matplotlib.patches import FancyBboxPatch

import svg
from svg import DRIVER, INK, MONO, TASK, canvas, main, save

MERGE = svg.STORE  # tasks that combine results

arrow = functools.partial(svg.arrow, lw=1.2, head=11, shrink=1)  # thinner, with a smaller tip


def node(ax, cx, cy, w, h, text, face=TASK, size=9):
    """A task, drawn as a rounded box centred on (cx, cy)."""
    ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.8",
                                facecolor=face, edgecolor=face, linewidth=1.2))
    ax.text(cx, cy, text, ha="center", va="center", color="white", fontsize=size, family=MONO)


def task_graphs(png_dir):
    """Three shapes of task graph: a chain, a fan-out/fan-in, a tree reduction. Arrows carry ObjectRefs."""
    fig, ax = canvas(12, 5.0)  # 100 x 41.7 units
    ax.text(50, 39.5, "Three task graphs (an arrow: what one task passes on to the next)", ha="center",
            fontsize=13.5, weight="bold", color=INK)
    top, bottom = 31, 6  # the y of the first and of the last row of tasks

    # 1. Chain.
    cx = 12
    ax.text(cx, 35, "chain", ha="center", fontsize=12, weight="bold", color=INK)
    ys = [top, (top + bottom) / 2, bottom]
    for y, name in zip(ys, ["load", "clean", "summarize"]):
        node(ax, cx, y, 17, 4.5, name, face=MERGE if name == "summarize" else TASK)
    for y0, y1 in zip(ys, ys[1:]):
        arrow(ax, (cx, y0 - 2.4), (cx, y1 + 2.4))
    ax.text(cx, 1.2, "each step waits for the one before", ha="center", fontsize=8.5, color=INK)

    # 2. Fan-out, fan-in.
    cx = 45
    ax.text(cx, 35, "fan-out, fan-in", ha="center", fontsize=12, weight="bold", color=INK)
    node(ax, cx, top, 14, 4.5, "driver", face=DRIVER)
    xs = [cx - 16.5, cx - 5.5, cx + 5.5, cx + 16.5]
    mid = (top + bottom) / 2
    for x in xs:
        node(ax, x, mid, 10, 4.5, "partial", size=8.5)
        arrow(ax, (cx, top - 2.4), (x, mid + 2.4))
        arrow(ax, (x, mid - 2.4), (cx, bottom + 2.4))
    node(ax, cx, bottom, 14, 4.5, "combine", face=MERGE)
    ax.text(cx, 1.2, "the pieces run at the same time; one task gathers them", ha="center", fontsize=8.5, color=INK)

    # 3. Tree reduction.
    left, right = 67, 99
    cx = (left + right) / 2
    ax.text(cx, 35, "tree reduction", ha="center", fontsize=12, weight="bold", color=INK)
    levels = [8, 4, 2, 1]
    rows = [top, top - 8.3, top - 16.6, bottom]
    previous = None
    for count, y in zip(levels, rows):
        step = (right - left) / count
        xs = [left + step * (i + 0.5) for i in range(count)]
        for x in xs:
            if count == 8:
                node(ax, x, y, 3.4, 4.5, "p", size=8.5)
            else:
                node(ax, x, y, min(step - 1.2, 12), 4.5, "merge", face=MERGE, size=8.5)
        if previous:
            for i, x in enumerate(xs):
                for px in previous[2 * i:2 * i + 2]:
                    arrow(ax, (px, prev_y - 2.4), (x, y + 2.4), lw=1.0)
        previous, prev_y = xs, y
    ax.text(cx, 1.2, "p: partial results; pairs merge at once: log2(n) rounds", ha="center", fontsize=8.5, color=INK)
    save(fig, "02_task_graphs.svg", png_dir)


if __name__ == "__main__":
    main(__doc__, "ray-course-02", task_graphs)
