#!/usr/bin/env python3
"""Draw the diagrams of notebook 04 (the object store) into assets/04_*.svg.

    python assets/src/04_diagrams.py              # rewrite the SVGs
    python assets/src/04_diagrams.py --png DIR    # also write PNG copies to DIR, to look at them

Only matplotlib is needed. The output is byte-for-byte reproducible (fixed hash salt, no date in the metadata).
"""
from svg import BAD, DRIVER, INK, STORE, STORE_LIGHT, TASK, arrow, box, canvas, main, plt, save
from svg import ACTOR as DATA  # an object's bytes

MUTED = "#9A9A9A"  # a shade lighter than svg.MUTED, kept so that the committed SVGs do not change


def object_store(png_dir):
    """put writes the bytes once into shared memory; every reader maps the same bytes, read-only."""
    fig, ax = canvas(11, 5.0)  # 100 x 45.5 units
    ax.text(50, 42.5, "One copy in shared memory, many readers", ha="center", fontsize=14, weight="bold", color=INK)

    # Processes on top.
    box(ax, 2, 24, 26, 13, face=DRIVER, edge=DRIVER)
    ax.text(15, 33.5, "driver", ha="center", fontsize=11, weight="bold", color="white")
    ax.text(15, 28.5, "ref = ray.put(array)", ha="center", fontsize=9.5, color="white", family="DejaVu Sans Mono")
    for i, x in enumerate((40, 72)):
        box(ax, x, 24, 26, 13, face=TASK, edge=TASK)
        ax.text(x + 13, 33.5, f"worker {i + 1}: task(ref)", ha="center", fontsize=11, weight="bold", color="white")
        ax.text(x + 13, 28.5, "a numpy array, read-only", ha="center", fontsize=9.5, color="white")
    arrow(ax, (28.3, 30.5), (39.7, 30.5), color=INK, lw=1.2)
    ax.text(34, 38.3, "the ref:\na few bytes", ha="center", va="center", fontsize=9, color=INK)

    # The store.
    box(ax, 2, 5, 96, 12, face=STORE_LIGHT, edge=STORE, lw=2)
    ax.text(4, 7.0, "object store: shared memory on this machine", ha="left", fontsize=10.5, color=STORE,
            weight="bold")
    box(ax, 42, 8, 26, 6.5, "the array's bytes, once", face=DATA, edge=DATA, color="white", size=10.5)

    arrow(ax, (15, 23.5), (42, 14.8), color=DRIVER, lw=2)
    ax.text(13, 18.5, "pickled and written once", ha="left", fontsize=9.5, color=INK)
    arrow(ax, (53, 14.8), (53, 23.5), color=TASK, ls="--", lw=1.6)
    arrow(ax, (62, 14.8), (85, 23.5), color=TASK, ls="--", lw=1.6)
    ax.text(77, 17.6, "mapped, not copied", ha="left", fontsize=9.5, color=TASK)
    ax.text(50, 1.5, "ray.put always writes here, whatever the size. Only task results and arguments passed by value"
            " under 100 KiB travel inside the messages.", ha="center", fontsize=9.5, color=INK)
    save(fig, "04_object_store.svg", png_dir)


def by_value_vs_reference(png_dir):
    """Passing a large array to four tasks: four copies by value, one by reference."""
    fig, ax = canvas(11, 4.6)  # 100 x 41.8 units
    ax.text(50, 39, "The same array, sent to four tasks", ha="center", fontsize=14, weight="bold", color=INK)
    for side, x0, title, code_text, copies in (
            ("value", 2, "by value", "f.remote(array)   × 4", 4),
            ("reference", 52, "by reference", "ref = ray.put(array)\nf.remote(ref)   × 4", 1)):
        ax.text(x0 + 23, 33, title, ha="center", fontsize=12.5, weight="bold", color=INK)
        box(ax, x0, 24, 46, 7, face=DRIVER, edge=DRIVER)
        ax.text(x0 + 23, 27.5, code_text, ha="center", va="center", fontsize=9.5, color="white",
                family="DejaVu Sans Mono")
        box(ax, x0, 11, 46, 10, face=STORE_LIGHT, edge=STORE, lw=1.6)
        for k in range(copies):
            cx = x0 + 2 + k * 11 if copies > 1 else x0 + 16.5
            box(ax, cx, 13, 10 if copies > 1 else 13, 6, "array", face=DATA, edge=DATA, color="white", size=9)
        ax.text(x0 + 23, 22.2, f"{copies} cop{'ies' if copies > 1 else 'y'} in the store", ha="center",
                fontsize=9.5, color=STORE)
        for k in range(4):
            tx = x0 + 1 + k * 11.5
            box(ax, tx, 1, 10, 6, "task", face=TASK, edge=TASK, color="white", size=9)
            src = (x0 + 7 + k * 11 if copies > 1 else x0 + 23, 12.8)
            arrow(ax, src, (tx + 5, 7.2), color=TASK, lw=1.2, ls="--")
    ax.plot([50, 50], [2, 35], color=MUTED, lw=1, ls=":")
    save(fig, "04_by_value_vs_reference.svg", png_dir)


def lifetime(png_dir):
    """An object lives while anything refers to it: the union of its holders' lifetimes."""
    fig, ax = plt.subplots(figsize=(10, 3.6))
    fig.subplots_adjust(left=0.3, right=0.97, top=0.82, bottom=0.2)
    fig.suptitle("An object lives as long as something refers to it", fontsize=13, weight="bold", color=INK)
    rows = [
        ("ref = ray.put(x) ... del ref", [(0, 3)], DRIVER),
        ("a task given it: f.remote(ref)", [(2, 2.5)], TASK),
        ("the task's result holds it: return [ref]", [(4.5, 2)], DATA),
        ("the object in the store", [(0, 6.5)], STORE),
    ]
    for i, (label, spans, colour) in enumerate(rows):
        y = len(rows) - 1 - i
        ax.broken_barh(spans, (y - 0.3, 0.6), facecolors=colour, edgecolor="white")
    ax.axvline(6.5, color=BAD, lw=1.5, ls="--")
    ax.text(6.6, 3.35, "last holder gone:\nfreed", color=BAD, fontsize=9.5, va="top")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in reversed(rows)], fontsize=10)
    ax.set_xticks([])
    ax.set_xlim(-0.2, 8.2)
    ax.set_xlabel("time")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
    save(fig, "04_lifetime.svg", png_dir)


if __name__ == "__main__":
    main(__doc__, "ray-course-04", object_store, by_value_vs_reference, lifetime)
