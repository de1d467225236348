#!/usr/bin/env python3
"""Draw the diagrams of notebook 01 (introduction) into assets/01_*.svg.

    python assets/src/01_diagrams.py              # rewrite the SVGs
    python assets/src/01_diagrams.py --png DIR    # also write PNG copies to DIR, to look at them

Only matplotlib is needed. The output is byte-for-byte reproducible (fixed hash salt, no date in the metadata).
"""
from svg import ACTOR, DRIVER, INK, MONO, STORE, TASK, arrow, box, canvas, main, plt, save

STORE_LIGHT = "#D5EADB"  # a shade lighter than svg.STORE_LIGHT, kept so that the committed SVGs do not change


def ray_at_a_glance(png_dir):
    """The driver submits work; the scheduler places it on worker processes; results live in the object store."""
    fig, ax = canvas(11, 5.4)  # 100 x 49 units
    ax.text(50, 46, "Ray at a glance", ha="center", fontsize=14, weight="bold", color=INK)

    # The driver.
    box(ax, 2, 17, 24, 22, face=DRIVER, edge=DRIVER)
    ax.text(14, 35.5, "driver", ha="center", fontsize=12, weight="bold", color="white")
    ax.text(14, 32.3, "(your notebook)", ha="center", fontsize=9.5, color="white")
    for i, line in enumerate(["f.remote(x)", "Counter.remote()", "ray.put(big)", "ray.get(ref)"]):
        ax.text(14, 28 - i * 3, line, ha="center", fontsize=9.5, color="white", family=MONO)

    # The scheduler.
    box(ax, 33, 24, 18, 13, face="white", edge=INK, lw=1.6)
    ax.text(42, 33, "scheduler", ha="center", fontsize=11.5, weight="bold", color=INK)
    ax.text(42, 27.5, "runs each task\nwhere the CPUs/GPUs\nit asks for are free", ha="center", fontsize=8.5,
            color=INK, linespacing=1.3)
    arrow(ax, (26.5, 30.5), (32.5, 30.5))
    ax.text(29.5, 33.8, "tasks,\ncalls", ha="center", fontsize=8.5, color=INK)

    # The workers.
    workers = [("worker process", "task  f(1)", TASK, 35), ("worker process", "task  f(2)", TASK, 26.5),
               ("worker process", "actor  Counter", ACTOR, 18)]
    for title, what, colour, y in workers:
        box(ax, 60, y, 37, 7, face="white", edge=colour, lw=1.8)
        ax.text(62, y + 3.5, title, ha="left", va="center", fontsize=9.5, color=INK)
        box(ax, 78, y + 1.2, 17.5, 4.6, what, face=colour, edge=colour, color="white", size=9.5, radius=0.6)
        arrow(ax, (51.5, 30.5), (59.5, y + 3.5), lw=1.2)
    ax.text(86.75, 15.2, "self.count lives here", ha="center", fontsize=8.5, color=ACTOR)

    # The object store.
    box(ax, 2, 2, 95, 9, face=STORE_LIGHT, edge=STORE, lw=1.8)
    ax.text(49.5, 8, "object store (shared memory)", ha="center", fontsize=11, weight="bold", color=STORE)
    ax.text(49.5, 4.3, "task results and ray.put values, each one named by an ObjectRef and readable by every worker",
            ha="center", fontsize=9, color=INK)
    arrow(ax, (70, 17.5), (70, 11.3), color=STORE)
    ax.text(71.2, 14.2, "results", ha="left", fontsize=8.5, color=STORE)
    arrow(ax, (10, 16.5), (10, 11.3), color=STORE)
    ax.text(11.2, 14.2, "put", ha="left", fontsize=8.5, color=STORE)
    arrow(ax, (20, 11.3), (20, 16.5), color=STORE)
    ax.text(21.2, 14.2, "get", ha="left", fontsize=8.5, color=STORE)
    save(fig, "01_ray_at_a_glance.svg", png_dir)


def sequential_vs_parallel(png_dir):
    """Eight one-second filters: 8 s in a row on one core, 4 s on two."""
    fig, axes = plt.subplots(2, 1, figsize=(10, 3.6), sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    fig.subplots_adjust(left=0.17, right=0.97, top=0.84, bottom=0.16, hspace=0.7)
    fig.suptitle("Eight images, a 1-second filter each", fontsize=13, weight="bold", color=INK)

    top, bottom = axes
    top.broken_barh([(i, 1) for i in range(8)], (0.15, 0.7), facecolors=DRIVER, edgecolor="white", linewidth=2)
    for i in range(8):
        top.text(i + 0.5, 0.5, f"image {i + 1}", ha="center", va="center", color="white", fontsize=9)
    top.set_yticks([0.5])
    top.set_yticklabels(["one process"])
    top.set_ylim(0, 1)
    top.set_title("sequential_process.py: one image after another: 8 s", loc="left", fontsize=10.5, color=INK)

    for lane in range(2):
        bottom.broken_barh([(i, 1) for i in range(4)], (lane + 0.15, 0.7), facecolors=TASK, edgecolor="white",
                           linewidth=2)
        for i in range(4):
            bottom.text(i + 0.5, lane + 0.5, f"image {2 * i + lane + 1}", ha="center", va="center", color="white",
                        fontsize=9)
    bottom.set_yticks([0.5, 1.5])
    bottom.set_yticklabels(["worker 1", "worker 2"])
    bottom.set_ylim(2, 0)
    bottom.set_title("parallel_process.py --num-cpus 2: two tasks at a time: 4 s", loc="left", fontsize=10.5,
                     color=INK)
    bottom.set_xlabel("seconds")
    bottom.set_xlim(0, 8.1)
    for ax in axes:
        ax.tick_params(axis="y", length=0)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.grid(axis="x", alpha=0.3)
    save(fig, "01_sequential_vs_parallel.svg", png_dir)


def backends(png_dir):
    """One notebook, three places to run it, chosen by environment variables."""
    fig, ax = canvas(11, 4.2)  # 100 x 38.2 units
    ax.text(50, 35.5, "The same cells, three places to run them", ha="center", fontsize=14, weight="bold",
            color=INK)
    box(ax, 2, 9, 27, 18, face=DRIVER, edge=DRIVER)
    ax.text(15.5, 23, "your notebook", ha="center", fontsize=11.5, weight="bold", color="white")
    ax.text(15.5, 18.3, "from course_runtime\nimport ray", ha="center", va="center", fontsize=9.5, color="white",
            family=MONO, linespacing=1.3)
    ax.text(15.5, 12.2, "ray.init(num_cpus=2, ...)", ha="center", fontsize=8.5, color="white", family=MONO)

    targets = [  # top of the box, name, what it is, colour, the setting that selects it
        (23.5, "course runtime (default)", "one machine, starts in a moment,\nsource short enough to read", TASK,
         "nothing to set"),
        (13, "Ray on this machine", "real Ray: its dashboard, its libraries", ACTOR, "COURSE_BACKEND=ray"),
        (2.5, "a Ray cluster", "many machines, the same code", STORE, "COURSE_BACKEND=ray\nRAY_ADDRESS=<address>"),
    ]
    for y, name, what, colour, setting in targets:
        box(ax, 64, y, 34, 8.5, face="white", edge=colour, lw=1.8)
        ax.text(66, y + 6, name, ha="left", va="center", fontsize=10.5, weight="bold", color=colour)
        ax.text(66, y + 2.6, what, ha="left", va="center", fontsize=8.5, color=INK, linespacing=1.2)
        arrow(ax, (29.5, 18), (63.5, y + 4.25), color=colour, lw=1.4)
        # the setting, written on its arrow, 55% of the way along
        ax.text(29.5 + 0.55 * 34, 18 + 0.55 * (y + 4.25 - 18), setting, ha="center", va="center", fontsize=8.5,
                color=colour, family=MONO, linespacing=1.2, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.5})
    save(fig, "01_backends.svg", png_dir)


if __name__ == "__main__":
    main(__doc__, "ray-course-01", ray_at_a_glance, sequential_vs_parallel, backends)
