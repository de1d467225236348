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
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
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


def test_open_says_clearly_when_ray_cannot_be_installed(tmp_path, monkeypatch, capsys):
    """`course.py open` installs Ray for notebook 8; where pip cannot (no wheel for the platform, no network) it says
    so in two lines and goes on to open the course: no traceback."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("course_cli", os.path.join(ROOT, "course.py"))
    course = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(course)
    fake_python = tmp_path / "python"  # a Python whose pip finds no Ray for this platform
    fake_python.write_text("#!/bin/sh\necho 'ERROR: No matching distribution found for ray==2.60.0' >&2\nexit 1\n")
    fake_python.chmod(0o755)
    monkeypatch.setattr(course, "PYTHON", str(fake_python))
    monkeypatch.setattr(course, "VENV", str(tmp_path))
    course.install_ray_for_notebook_8()
    err = capsys.readouterr().err
    assert "Ray could not be installed here" in err and "every other notebook works" in err
    assert "No matching distribution found" in err and 'pip install "ray[default]==2.60.0"' in err
    assert "Traceback" not in err
    course.install_ray_for_notebook_8()  # tried once: the next open does not try again
    assert capsys.readouterr().err == ""
