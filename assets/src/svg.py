"""What the NN_diagrams.py scripts share: the palette, a canvas, boxes, arrows, saving, the command line.

Each script does `from svg import ...` (Python puts the script's own folder, assets/src, on sys.path).
The SVGs come out byte-for-byte the same on every run: a fixed hash salt per script, no date in the metadata.
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ASSETS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 11})

# The course's palette: who is who, the same in every notebook's diagrams.
DRIVER = "#8C9BAB"  # the driver (your notebook)
TASK = "#4C72B0"  # tasks and worker processes
ACTOR = "#DD8452"  # actors (and, in some diagrams, other orange things)
STATE = "#FBE3CF"  # what an actor keeps
STORE = "#55A868"  # the object store (and other green things)
STORE_LIGHT = "#DCEFE1"
BAD = "#C44E52"  # crashes, frees
INK = "#2B2B2B"  # text and lines
MUTED = "#8A8A8A"
MONO = "DejaVu Sans Mono"


def canvas(width, height, w_units=100):
    """A figure whose data coordinates run 0..w_units across and 0..w_units*height/width up."""
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, w_units)
    ax.set_ylim(0, w_units * height / width)
    ax.axis("off")
    return fig, ax


def box(ax, x, y, w, h, text="", face="white", edge=INK, color=INK, size=11, weight="normal", radius=1.2, lw=1.4,
        ls="-"):
    """A rounded box with its lower left corner at (x, y), and the text, if any, centred in it."""
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle=f"round,pad=0,rounding_size={radius}", facecolor=face,
                                edgecolor=edge, linewidth=lw, linestyle=ls))
    if text:
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", color=color, fontsize=size, weight=weight)


def arrow(ax, start, end, color=INK, lw=1.6, ls="-", rad=0.0, style="-|>", head=14, shrink=2):
    """An arrow from start to end, bent by rad (0: straight); head is the size of its tip."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=head, color=color, linewidth=lw,
                                 linestyle=ls, connectionstyle=f"arc3,rad={rad}", shrinkA=shrink, shrinkB=shrink))


def save(fig, name, png_dir=None):
    """Write fig to assets/name (an .svg) and, when png_dir is given, a PNG copy there; then close it."""
    fig.savefig(os.path.join(ASSETS, name), format="svg", metadata={"Date": None}, bbox_inches="tight",
                pad_inches=0.15)
    if png_dir:
        fig.savefig(os.path.join(png_dir, name.replace(".svg", ".png")), dpi=110, bbox_inches="tight",
                    pad_inches=0.15)
    plt.close(fig)


def main(doc, salt, *draws):
    """The scripts' command line (`--png DIR`: PNG copies too): set the hash salt, then call each draw(png_dir)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--png", metavar="DIR", help="also write PNG copies into DIR")
    args = parser.parse_args()
    if args.png:
        os.makedirs(args.png, exist_ok=True)
    plt.rcParams["svg.hashsalt"] = salt  # fixes the ids matplotlib writes into the SVG
    for draw in draws:
        draw(args.png)
