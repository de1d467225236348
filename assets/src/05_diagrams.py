#!/usr/bin/env python3
"""Draw the diagram of notebook 05 (GPUs and resources) into assets/05_*.svg.

    python assets/src/05_diagrams.py              # rewrite the SVG
    python assets/src/05_diagrams.py --png DIR    # also write a PNG copy to DIR, to look at it

Only matplotlib is needed. The output is byte-for-byte reproducible (fixed hash salt, no date in the metadata).
"""
from svg import DRIVER, INK, MONO, MUTED, TASK, arrow, box, canvas, main, save
from svg import ACTOR as OTHER  # somebody else's work
from svg import STORE as GPU  # devices
from svg import STORE_LIGHT as GPU_LIGHT


def cuda_visible_devices(png_dir):
    """The scheduler grants GPU 1; the worker sets CUDA_VISIBLE_DEVICES=1; inside, that GPU is cuda:0."""
    fig, ax = canvas(11, 5.2)  # 100 x 47.3 units
    ax.text(50, 44.5, "The task asks for one GPU; the scheduler picks which, and the task sees only that one",
            ha="center", fontsize=13, weight="bold", color=INK)

    # The machine and its two devices.
    box(ax, 2, 4, 27, 35, face="#F4F4F4", edge=MUTED, lw=1.2, ls="--")
    ax.text(15.5, 35.5, "the machine", ha="center", fontsize=10.5, color=MUTED)
    box(ax, 5, 21, 21, 11, face=GPU_LIGHT, edge=GPU, lw=1.6)
    ax.text(15.5, 28.5, "GPU 0", ha="center", fontsize=11.5, weight="bold", color=GPU)
    box(ax, 6.5, 22.5, 18, 3.6, face=OTHER, edge=OTHER, radius=0.6)
    ax.text(15.5, 24.3, "busy: another actor", ha="center", va="center", fontsize=9, color="white")
    box(ax, 5, 7, 21, 11, face=GPU_LIGHT, edge=GPU, lw=2.4)
    ax.text(15.5, 14.5, "GPU 1", ha="center", fontsize=11.5, weight="bold", color=GPU)
    ax.text(15.5, 10.3, "granted to the task", ha="center", fontsize=9.5, color=GPU)

    # The scheduler's ledger.
    box(ax, 35, 21, 26, 18, face=DRIVER, edge=DRIVER)
    ax.text(48, 35.3, "scheduler", ha="center", fontsize=11.5, weight="bold", color="white")
    ax.text(48, 31.3, "num_gpus=1 asked", ha="center", fontsize=9.5, color="white", family=MONO)
    ax.text(48, 27.6, "GPU 0: 0 free", ha="center", fontsize=9.5, color="white", family=MONO)
    ax.text(48, 24.1, "GPU 1: 1 free -> grant", ha="center", fontsize=9.5, color="white", family=MONO)

    # The worker process that runs the task.
    box(ax, 66, 4, 32, 35, face=TASK, edge=TASK)
    ax.text(82, 35.3, "worker process", ha="center", fontsize=11.5, weight="bold", color="white")
    ax.text(82, 31.5, "before the task runs:", ha="center", fontsize=9.5, color="white")
    ax.text(82, 28.0, 'CUDA_VISIBLE_DEVICES="1"', ha="center", fontsize=9.5, color="white", family=MONO)
    ax.text(82, 23.0, "inside the task:", ha="center", fontsize=9.5, color="white")
    ax.text(82, 19.5, "ray.get_gpu_ids()  -> [1]", ha="center", fontsize=9.5, color="white", family=MONO)
    ax.text(82, 16.0, "torch.cuda.device_count() -> 1", ha="center", fontsize=9, color="white", family=MONO)
    ax.text(82, 12.5, 'device "cuda:0" = GPU 1', ha="center", fontsize=9.5, color="white", family=MONO)
    ax.text(82, 7.0, "GPU 0 is invisible to it", ha="center", fontsize=9.5, color="white", style="italic")

    arrow(ax, (61.3, 30), (65.7, 30))
    ax.text(63.5, 31.3, "run", ha="center", fontsize=8.5, color=INK)
    arrow(ax, (26.3, 12.5), (65.7, 12.5), color=GPU, lw=2.2)
    ax.text(46, 14.2, "the only GPU the task can see", ha="center", fontsize=9.5, color=GPU)
    ax.text(46, 8.6, "Nothing stops a task with num_gpus=0\nfrom using a GPU: ask for what you use.",
            ha="center", fontsize=8.8, color=MUTED)
    save(fig, "05_cuda_visible_devices.svg", png_dir)


if __name__ == "__main__":
    main(__doc__, "ray-course-05", cuda_visible_devices)
