"""Notebook 8 ("From a laptop to a cluster") needs Ray itself and starts a three-node cluster, so the real-Ray half of
the test command runs it (outputs compared) and proves its checks fail on the stubs (tests/test_cluster.py). Here,
on any machine: where Ray is missing, its first cell says exactly what to run, as one message without a traceback,
and nothing after it runs."""
import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATH = os.path.join(ROOT, "notebooks", "08_laptop_to_cluster.ipynb")


def test_notebook_08_is_marked_real_ray_only():
    assert nbformat.read(PATH, as_version=4).metadata["course"]["real_ray_only"] is True


def test_without_ray_the_first_cell_says_what_to_run(tmp_path, monkeypatch):
    hidden = tmp_path / "no_ray" / "ray"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    monkeypatch.setenv("PYTHONPATH", str(hidden.parent))  # the kernel finds this `ray` first: as if none
    nb = nbformat.read(PATH, as_version=4)
    with pytest.raises(CellExecutionError) as failure:
        NotebookClient(nb, timeout=60, kernel_name="python3",
                       resources={"metadata": {"path": os.path.dirname(PATH)}}).execute()
    assert failure.value.ename == "NeedsRay"
    code = [c for c in nb.cells if c.cell_type == "code"]
    [error] = [o for o in code[0].outputs if o.output_type == "error"]
    message = "\n".join(error.traceback)
    assert "Traceback" not in message and "File " not in message, message  # one message, not a traceback
    assert 'pip install "ray[default]==2.60.0"' in message and "restart the kernel" in message
    assert all(c.get("execution_count") is None for c in code[1:]), "nothing after the first cell ran"
