#!/usr/bin/env python3
"""Draw the diagrams of notebook 06 (under the hood) into assets/06_*.svg.

    python assets/src/06_diagrams.py              # rewrite the SVGs
    python assets/src/06_diagrams.py --png DIR    # also write PNG copies to DIR, to look at them

Only matplotlib is needed. The output is byte-for-byte reproducible (fixed hash salt, no date in the metadata).
"""
import svg
from svg import DRIVER, INK, MONO, MUTED, STORE, STORE_LIGHT, TASK, box, canvas, main, plt, save
from svg import ACTOR as STEP  # numbered steps

DRIVER_LIGHT = "#E6EAEE"
GCS = "#8172B3"  # cluster-wide metadata


def arrow(ax, start, end, both=False, **kwargs):
    """svg.arrow with a smaller tip; both=True puts a tip on each end."""
    svg.arrow(ax, start, end, style="<|-|>" if both else "-|>", head=13, **kwargs)


def step(ax, x, y, n):
    """A numbered orange disc: where step n of a task's journey happens."""
    ax.add_patch(plt.Circle((x, y), 1.5, color=STEP, zorder=5))
    ax.text(x, y, str(n), ha="center", va="center", fontsize=9, weight="bold", color="white", zorder=6)


def course_runtime(png_dir):
    """One driver process with the raylet inside, worker processes on pipes, big values in shared memory."""
    fig, ax = canvas(12, 6.6)  # 100 x 55 units
    ax.text(50, 52.5, "The course runtime: one driver, a few worker processes, shared memory",
            ha="center", fontsize=14, weight="bold", color=INK)

    # The driver process and what lives in it.
    box(ax, 2, 14, 50, 35, face=DRIVER_LIGHT, edge=DRIVER, lw=1.8)
    ax.text(4, 46, "driver process (your notebook's kernel)", fontsize=11, weight="bold", color=INK)
    box(ax, 5, 36, 44, 7.5, face="white", edge=DRIVER)
    ax.text(27, 39.7, "f.remote(x)      ray.get(ref)", ha="center", va="center", fontsize=10, family=MONO)
    ax.text(6, 42.0, "api.py, remote_function.py, driver.py", fontsize=8, color=MUTED)
    box(ax, 5, 17, 21, 16.5, face=DRIVER, edge=DRIVER)
    ax.text(15.5, 30.3, "owner.py", ha="center", fontsize=10.5, weight="bold", color="white")
    for i, line in enumerate(["task table", "object table", "reference counts", "actors: gcs.py"]):
        ax.text(15.5, 26.6 - 2.7 * i, line, ha="center", fontsize=9, color="white")
    box(ax, 28, 25.5, 21, 8, face=DRIVER, edge=DRIVER)
    ax.text(38.5, 30.9, "scheduler.py", ha="center", fontsize=10.5, weight="bold", color="white")
    ax.text(38.5, 27.6, "ledger + ready queues", ha="center", fontsize=9, color="white")
    box(ax, 28, 17, 21, 6.5, face=DRIVER, edge=DRIVER)
    ax.text(38.5, 20.9, "IO thread (raylet.py)", ha="center", fontsize=10.5, weight="bold", color="white")
    ax.text(38.5, 18.4, "reads every pipe", ha="center", fontsize=9, color="white")
    ax.text(18.5, 34.6, "raylet.py: owner + scheduler + worker_pool.py + gcs.py", ha="left", fontsize=7.5,
            color=MUTED)
    arrow(ax, (16, 35.8), (16, 33.7))
    step(ax, 12, 34.8, 1)

    # Worker processes.
    for i, y in enumerate((38, 27, 16)):
        box(ax, 66, y, 32, 9, face=TASK, edge=TASK)
        ax.text(82, y + 6.0, f"worker process {i + 1}  (worker.py)", ha="center", fontsize=10, weight="bold",
                color="white")
        ax.text(82, y + 2.6, "load args -> run f -> store result", ha="center", fontsize=9, color="white")
    arrow(ax, (49.3, 30), (65.7, 42), color=TASK, lw=1.8)
    ax.text(56.5, 38.6, "RunTask", ha="center", fontsize=9, color=TASK, family=MONO, rotation=36)
    step(ax, 60.5, 38.2, 2)
    arrow(ax, (65.7, 39.5), (49.3, 21.5), color=INK, lw=1.4, ls="--")
    ax.text(59.4, 26.8, "TaskDone", ha="center", fontsize=9, color=INK, family=MONO, rotation=48)
    step(ax, 66, 45.5, 3)
    ax.text(59, 46.5, "one socket\npair each", ha="center", va="center", fontsize=8.5, color=MUTED)

    # Shared memory.
    box(ax, 2, 2, 96, 9, face=STORE_LIGHT, edge=STORE, lw=1.8)
    ax.text(4, 7.6, "object store (plasma.py)", fontsize=10.5, weight="bold", color=STORE)
    ax.text(4, 4.0, "one shared-memory segment per large value", fontsize=9, color=STORE)
    for i, x in enumerate((48, 60, 72, 84)):
        box(ax, x, 3.5, 10, 6, face=STORE, edge=STORE, radius=0.6)
        ax.text(x + 5, 6.5, f"segment {i + 1}", ha="center", va="center", fontsize=8.5, color="white")
    arrow(ax, (80, 15.8), (77, 9.7), color=STORE, lw=1.8)
    ax.text(86.5, 12.6, "big result: written once", ha="center", fontsize=8.5, color=STORE)
    step(ax, 74.5, 13.5, 4)
    arrow(ax, (16, 11.2), (16, 16.8), color=STORE, lw=1.8)
    ax.text(17.5, 12.8, "get maps the segment: no copy", fontsize=8.5, color=STORE)
    step(ax, 12.5, 13.5, 5)
    save(fig, "06_course_runtime.svg", png_dir)


def ray_cluster(png_dir):
    """Ray's pieces on a cluster: GCS and the driver on the head node, a raylet and an object store everywhere."""
    fig, ax = canvas(12, 6.6)  # 100 x 55 units
    ax.text(50, 52.5, "Ray on a cluster: the same pieces, spread over machines", ha="center", fontsize=14,
            weight="bold", color=INK)

    def node(x, title, top):
        box(ax, x, 3, 30, top - 3, face="#F6F6F6", edge=MUTED, lw=1.3, ls="--")
        ax.text(x + 15, top - 2.8, title, ha="center", fontsize=11, weight="bold", color=INK)
        box(ax, x + 2, 24, 26, 9.5, face=DRIVER, edge=DRIVER)
        ax.text(x + 15, 30.4, "raylet", ha="center", fontsize=10.5, weight="bold", color="white")
        ax.text(x + 15, 26.6, "local scheduler + worker pool", ha="center", fontsize=8.5, color="white")
        for i in range(2):
            box(ax, x + 2 + 13.5 * i, 13.5, 12.5, 8, face=TASK, edge=TASK)
            ax.text(x + 8.25 + 13.5 * i, 17.5, "worker", ha="center", va="center", fontsize=9.5, color="white")
        box(ax, x + 2, 5, 26, 6.5, face=STORE_LIGHT, edge=STORE, lw=1.6)
        ax.text(x + 15, 8.2, "object store (shared memory)", ha="center", va="center", fontsize=8.8, color=STORE)

    node(2, "head node", 49)
    node(36, "worker node 1", 38.5)
    node(70, "worker node 2", 38.5)

    # Only the head node has the GCS; the driver runs there too (or wherever you start your program).
    box(ax, 4, 35.5, 12.5, 9.5, face=GCS, edge=GCS)
    ax.text(10.25, 42.3, "GCS", ha="center", fontsize=10.5, weight="bold", color="white")
    ax.text(10.25, 38.0, "nodes, actors,\nnames, jobs", ha="center", va="center", fontsize=8, color="white")
    box(ax, 17.5, 35.5, 12.5, 9.5, face=DRIVER, edge=DRIVER)
    ax.text(23.75, 42.3, "driver", ha="center", fontsize=10.5, weight="bold", color="white")
    ax.text(23.75, 38.0, "owns what\nit makes", ha="center", va="center", fontsize=8, color="white")

    # 1: the driver asks its raylet for a worker; 2: that raylet sends it elsewhere; 3: the task goes to a worker.
    arrow(ax, (23.75, 35.3), (23.75, 33.7), color=INK)
    step(ax, 27.5, 34.5, 1)
    arrow(ax, (30.3, 28.5), (37.7, 28.5), color=INK)
    step(ax, 34, 31.3, 2)
    ax.text(34, 25.2, "spillback", ha="center", fontsize=8, color=INK)
    arrow(ax, (30.3, 41), (51.5, 21.7), color=TASK, lw=1.8, rad=-0.25)
    step(ax, 33.5, 43.5, 3)
    # 4: an argument made on the head node is pulled into node 1's store.
    arrow(ax, (30.3, 8.2), (37.7, 8.2), color=STORE, lw=1.8, both=True)
    step(ax, 34, 11.8, 4)
    ax.text(34, 1.2, "copies pulled on demand", ha="center", fontsize=8.5, color=STORE)

    # What the numbers mean.
    steps = ["1  the driver asks its raylet to lease a worker",
             "2  no room there? the raylet points it to another node",
             "3  the driver sends the task straight to the leased worker",
             "4  the task's arguments are copied between object stores"]
    for i, line in enumerate(steps):
        ax.text(55, 47.5 - 2.5 * i, line, fontsize=9, color=INK)
    save(fig, "06_ray_cluster.svg", png_dir)


if __name__ == "__main__":
    main(__doc__, "ray-course-06", course_runtime, ray_cluster)
