#!/usr/bin/env python3
"""Draw the diagrams of notebook 03 (actors) into assets/03_*.svg.

    python assets/src/03_diagrams.py              # rewrite the SVGs
    python assets/src/03_diagrams.py --png DIR    # also write PNG copies to DIR, to look at them

Only matplotlib is needed. The output is byte-for-byte reproducible (fixed hash salt, no date in the metadata).
"""
from svg import ACTOR, BAD, DRIVER, INK, STATE, TASK, arrow, box, canvas, main, plt, save
from svg import STORE as CALL  # calls waiting or running


def actor_mailbox(png_dir):
    """Many callers, one actor: calls queue up and run one at a time against the actor's state."""
    fig, ax = canvas(11, 4.6)  # 100 x 41.8 units
    ax.text(50, 38.5, "One actor, many callers", ha="center", fontsize=14, weight="bold", color=INK)

    callers = [("driver (this notebook)", DRIVER, 27), ("task A", TASK, 18.5), ("task B", TASK, 10)]
    for label, face, y in callers:
        box(ax, 2, y, 22, 6.5, face=face, edge=face)
        ax.text(13, y + 4.3, label, ha="center", va="center", color="white", weight="bold", fontsize=10.5)
        ax.text(13, y + 1.9, "counter.incr.remote()", ha="center", va="center", color="white", fontsize=8.5,
                family="DejaVu Sans Mono")
        arrow(ax, (24.5, y + 3.25), (36, 20.5), color=face)

    # The queue of calls.
    ax.text(47.5, 29.5, "calls wait in line", ha="center", fontsize=10.5, color=INK)
    ax.text(47.5, 26.5, "(one caller's calls keep their order)", ha="center", fontsize=9, color=INK)
    for i, name in enumerate(["incr", "incr", "read", "incr"]):
        box(ax, 37 + i * 5.2, 17, 4.6, 7, name, face=CALL, edge=CALL, color="white", size=8.5, radius=0.6)
    arrow(ax, (58.2, 20.5), (63.5, 20.5), color=CALL)

    # The actor's process.
    box(ax, 64, 6, 34, 29, face="white", edge=ACTOR, lw=2.2, radius=2)
    ax.text(81, 31.2, "actor process: Counter", ha="center", fontsize=11.5, weight="bold", color=ACTOR)
    box(ax, 67, 21, 28, 7.5, "state:  self.n = 3", face=STATE, edge=ACTOR, size=11.5)
    box(ax, 67, 12, 28, 6.5, "running: incr (one at a time)", face=CALL, edge=CALL, color="white", size=10)
    ax.text(81, 8.3, "lives until killed or unreferenced", ha="center", fontsize=9.5, color=INK)

    arrow(ax, (63.5, 8), (24.5, 11), color=INK, ls="--", lw=1.2)
    ax.text(44, 5.2, "results come back as ObjectRefs", ha="center", fontsize=9.5, color=INK)
    save(fig, "03_actor_mailbox.svg", png_dir)


def concurrency(png_dir):
    """Three ways an actor can run its calls: one at a time, several threads, one event loop."""
    fig, axes = plt.subplots(3, 1, figsize=(10, 5.6), sharex=True)
    fig.subplots_adjust(left=0.2, right=0.97, top=0.86, bottom=0.1, hspace=0.75)
    fig.suptitle("Four calls of 1 s each, sent at once to one actor", fontsize=13, weight="bold", color=INK)
    rows = [
        ("default\none call at a time", "one thread: the calls run one after another, in order; state needs no lock"),
        ("threaded\nmax_concurrency=4", "four threads: the calls overlap, and so can their updates to the state"),
        ("async\nasync def + await", "one thread, one event loop: while a call awaits (light), another one runs"),
    ]
    for row, (ax, (label, note)) in enumerate(zip(axes, rows)):
        if row == 0:
            ax.broken_barh([(i, 1) for i in range(4)], (0.15, 0.7), facecolors=CALL, edgecolor="white", linewidth=2)
            for i in range(4):
                ax.text(i + 0.5, 0.5, f"call {i + 1}", ha="center", va="center", color="white", fontsize=10)
        elif row == 1:
            for k in range(4):
                ax.broken_barh([(0, 1)], (0.08 + k * 0.22, 0.18), facecolors=CALL, edgecolor="white")
                ax.text(1.08, 0.17 + k * 0.22, f"thread {k + 1}", va="center", fontsize=8.5, color=INK)
        else:
            for k in range(4):
                start = 0.03 * k
                ax.broken_barh([(start, 1)], (0.08 + k * 0.22, 0.18), facecolors="#B9D6C2", edgecolor="white")
                ax.broken_barh([(start, 0.05), (start + 0.95, 0.05)], (0.08 + k * 0.22, 0.18), facecolors=CALL,
                               edgecolor="none")
                ax.text(1.12, 0.17 + k * 0.22, f"call {k + 1}", va="center", fontsize=8.5, color=INK)
        ax.set_title(note, loc="left", fontsize=10, color=INK)
        ax.set_ylim(0, 1)
        ax.set_yticks([0.5])
        ax.set_yticklabels([label], fontsize=10.5)
        ax.tick_params(axis="y", length=0)
        ax.set_xlim(0, 4.1)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("seconds")
    save(fig, "03_concurrency.svg", png_dir)


def parameter_server(png_dir):
    """A parameter server: the actor keeps the weights; tasks compute gradients from their shard of data."""
    fig, ax = canvas(11, 4.9)
    ax.text(50, 46.5, "A parameter server: one actor keeps the model, tasks do the math", ha="center", fontsize=13.5,
            weight="bold", color=INK)
    box(ax, 33, 30, 34, 11, face="white", edge=ACTOR, lw=2.2, radius=2)
    ax.text(50, 38.2, "ParameterServer (actor)", ha="center", fontsize=11.5, weight="bold", color=ACTOR)
    box(ax, 37, 31.5, 26, 5, "weights w,  apply(*gradients)", face=STATE, edge=ACTOR, size=10.5)

    for i in range(4):
        x = 6 + i * 23
        box(ax, x, 6, 19, 9, face=TASK, edge=TASK)
        ax.text(x + 9.5, 12.2, "gradient task", ha="center", fontsize=10.5, color="white", weight="bold")
        ax.text(x + 9.5, 8.3, f"data shard {i}", ha="center", fontsize=9.5, color="white")
        arrow(ax, (44 + i * 0.8, 29.8), (x + 6.5, 15.3), color=ACTOR, lw=1.3)
        arrow(ax, (x + 12.5, 15.3), (52 + i * 0.8, 29.8), color=TASK, lw=1.3)
    ax.text(14, 24, "w: one ObjectRef,\nread by all four", ha="center", fontsize=9.5, color=ACTOR)
    ax.text(86, 24, "gradients go back as\narguments of apply()", ha="center", fontsize=9.5, color=TASK)
    ax.text(50, 1.6, "each step: get_weights → 4 gradient tasks → apply.  The driver never waits in between:"
                     " the actor's call order keeps the steps in sequence.", ha="center", fontsize=9.5, color=INK)
    save(fig, "03_parameter_server.svg", png_dir)


def restart(png_dir):
    """An actor that crashes and is restarted; the call it was running is sent again."""
    fig, ax = canvas(11, 4.0)
    ax.text(50, 37.5, "A crash, a restart and a retried call", ha="center", fontsize=14, weight="bold",
            color=INK)
    ax.text(2, 28.5, "life 1\n(pid 101)", ha="left", va="center", fontsize=10.5, color=INK)
    ax.text(2, 13.5, "life 2\n(pid 102)", ha="left", va="center", fontsize=10.5, color=INK)
    x = 14
    for i in range(1, 4):
        box(ax, x, 25, 9, 7, f"call {i} ✓", face=CALL, edge=CALL, color="white", size=10, radius=0.8)
        x += 10
    box(ax, x, 25, 11, 7, "call 4 ✗", face=BAD, edge=BAD, color="white", size=10, radius=0.8)
    ax.text(x + 13, 28.5, "os._exit(1): the process is gone", ha="left", va="center", fontsize=9.5, color=BAD)

    box(ax, 14, 10, 14, 7, "__init__ again", face=STATE, edge=ACTOR, size=10, radius=0.8)
    x = 30
    box(ax, x, 10, 15, 7, "call 4 (retry) ✓", face=CALL, edge=CALL, color="white", size=10, radius=0.8)
    x += 16
    for i in (5, 6):
        box(ax, x, 10, 9, 7, f"call {i} ✓", face=CALL, edge=CALL, color="white", size=10, radius=0.8)
        x += 10
    arrow(ax, (50.5, 24.5), (22, 17.5), color=ACTOR, rad=0.12, lw=1.4)
    ax.text(19, 21.3, "restart\n(max_restarts)", ha="center", va="center", fontsize=9.5, color=ACTOR)
    arrow(ax, (56, 24.5), (40, 17.5), color=CALL, rad=-0.1, lw=1.4, ls="--")
    ax.text(62, 20.8, "send the interrupted call again (max_task_retries)", ha="left", va="center", fontsize=9.5,
            color=CALL)
    ax.text(2, 3.5, "The new life starts from __init__: whatever the actor kept in memory is gone.", ha="left",
            fontsize=10, color=INK)
    save(fig, "03_restart.svg", png_dir)


if __name__ == "__main__":
    main(__doc__, "ray-course-03", actor_mailbox, concurrency, parameter_server, restart)
