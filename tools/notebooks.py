#!/usr/bin/env python3
"""Tools for the course notebooks: execute them in place, check their exercises, write a student copy.

    python tools/notebooks.py execute [NOTEBOOK ...]     # re-run notebooks top to bottom, store the outputs
    python tools/notebooks.py check-exercises [NB ...]   # every check cell must fail when solutions are removed
    python tools/notebooks.py student OUTDIR             # copy the course without the solution cells

Cell conventions (cell tags): "exercise" is the stub a learner edits, "solution" the worked answer (collapsed in
JupyterLab by `metadata.jupyter.source_hidden`), "check" the cell that tests the behaviour; "raises-exception"
marks a cell that is meant to raise.
"""
import argparse
import copy
import glob
import os
import shutil
import sys

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, "notebooks")


def notebook_paths(names):
    if names:
        return [os.path.abspath(n) for n in names]
    return sorted(glob.glob(os.path.join(NOTEBOOKS, "[0-9][0-9]_*.ipynb")))


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def run(nb, path, allow_errors=False, timeout=300):
    """Execute `nb` as if it were at `path` (the kernel starts in the notebook's folder)."""
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": os.path.dirname(path)}})
    client.execute()
    return nb


def execute(paths):
    """Run each notebook and save it with fresh outputs (what nbval then compares against)."""
    os.environ.setdefault("COURSE_BACKEND", "course")
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        print(f"executing {os.path.relpath(path, ROOT)} ...", flush=True)
        run(nb, path)
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
            if "solution" in tags(cell):
                cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
        nbformat.write(nb, path)


def without_solutions(nb):
    stripped = copy.deepcopy(nb)
    stripped.cells = [c for c in stripped.cells if "solution" not in tags(c)]
    return stripped


def check_exercises(paths):
    """With the solutions removed, every check cell must fail (else it does not test the learner's work)."""
    problems = []
    for path in paths:
        nb = run(without_solutions(nbformat.read(path, as_version=4)), path, allow_errors=True)
        checks = [c for c in nb.cells if "check" in tags(c)]
        if len(checks) < 2:
            problems.append(f"{os.path.basename(path)}: {len(checks)} exercise check(s); each notebook needs 2+")
        for cell in checks:
            failed = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
            if not failed:
                first = cell.source.splitlines()[0] if cell.source else ""
                problems.append(f"{os.path.basename(path)}: check cell '{first}' passes without the solution")
    return problems


def student_copy(outdir):
    """The course with every solution cell removed (stubs and checks kept), ready to hand out."""
    if os.path.exists(outdir):
        sys.exit(f"{outdir} exists already; give a new folder.")
    shutil.copytree(ROOT, outdir, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info",
                                                                 ".pytest_cache", "bench", "test-artifacts"))
    for path in glob.glob(os.path.join(outdir, "notebooks", "*.ipynb")):
        nb = without_solutions(nbformat.read(path, as_version=4))
        nbformat.write(nb, path)
    print(f"Student copy written to {outdir} (solution cells removed).")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("execute").add_argument("notebooks", nargs="*")
    sub.add_parser("check-exercises").add_argument("notebooks", nargs="*")
    sub.add_parser("student").add_argument("outdir")
    args = parser.parse_args()
    if args.command == "execute":
        execute(notebook_paths(args.notebooks))
    elif args.command == "check-exercises":
        problems = check_exercises(notebook_paths(args.notebooks))
        print("\n".join(problems) or "every check cell fails without its solution")
        sys.exit(1 if problems else 0)
    else:
        student_copy(os.path.abspath(args.outdir))


if __name__ == "__main__":
    try:
        main()
    except CellExecutionError as error:
        sys.exit(str(error))
