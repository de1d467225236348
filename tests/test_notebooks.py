"""The course notebooks: their shape, their images, and exercises whose checks really test the learner's work.
(nbval, run by the test command, re-executes every notebook and compares its outputs.)"""
import glob
import os
import re
import sys

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
EXPECTED = ["01_introduction", "02_tasks", "03_actors", "04_object_store", "05_gpus_and_resources",
            "06_under_the_hood", "07_modern_ray_core", "08_laptop_to_cluster"]
PATHS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "[0-9][0-9]_*.ipynb")))
IDS = [os.path.basename(p)[:-6] for p in PATHS]


def load(path):
    return nbformat.read(path, as_version=4)


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def test_the_course_notebooks_exist():
    assert IDS == EXPECTED


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_has_objectives_time_summary_next_and_shutdown(path):
    nb = load(path)
    first = nb.cells[0].source.lower()
    assert "objective" in first and "minutes" in first, "open with objectives and an expected time"
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert re.search(r"^#+ .*summary", markdown, re.I | re.M), "close with a Summary section"
    assert "Predict, then run" in markdown
    last_words = [c.source for c in nb.cells if c.cell_type == "markdown"][-1]
    assert re.search(r"^Next: ", last_words, re.M), "the last text cell ends with a 'Next:' pointer onwards"
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert "shutdown()" in code[-1].source, "the last code cell shuts the runtime down"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_is_committed_executed_without_unexpected_errors(path):
    for cell in load(path).cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        assert cell.execution_count is not None, f"cell stored without outputs: {cell.source[:60]!r}"
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors or "raises-exception" in tags(cell), f"unexpected error in {cell.source[:60]!r}"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_exercises_come_as_stub_hidden_solution_and_check(path):
    code = [c for c in load(path).cells if c.cell_type == "code"]
    checks = [i for i, c in enumerate(code) if "check" in tags(c)]
    assert len(checks) >= 2, "at least two exercises"
    for i in checks:
        assert "solution" in tags(code[i - 1]) and "exercise" in tags(code[i - 2]), \
            "each check follows its solution, which follows its stub"
        assert code[i - 1].metadata.get("jupyter", {}).get("source_hidden") is True, "solutions start collapsed"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_images_are_local_files_in_assets(path):
    for cell in load(path).cells:
        if cell.cell_type != "markdown":
            continue
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)", cell.source) + \
                re.findall(r"<img[^>]+src=[\"']([^\"']+)", cell.source):
            assert not re.match(r"[a-z]+://", target), f"web image {target}: everything must work offline"
            resolved = os.path.normpath(os.path.join(ROOT, "notebooks", target))
            assert resolved.startswith(os.path.join(ROOT, "assets") + os.sep), f"{target} is not in assets/"
            assert os.path.isfile(resolved), f"{target} does not exist"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_every_check_fails_on_the_untouched_stub(path):
    if load(path).metadata.get("course", {}).get("real_ray_only"):
        pytest.skip("needs Ray and starts a cluster: checked in the real-Ray half (tests/test_cluster.py)")
    from notebooks import check_exercises
    assert check_exercises([path]) == []


def test_student_copy_drops_solutions_and_keeps_stubs_and_checks(tmp_path):
    from notebooks import student_copy
    student_copy(str(tmp_path / "course"))
    for path in PATHS:
        original = load(path)
        copy = load(str(tmp_path / "course" / "notebooks" / os.path.basename(path)))
        assert not any("solution" in tags(c) for c in copy.cells)
        for kind in ("exercise", "check"):
            assert sum(kind in tags(c) for c in copy.cells) == sum(kind in tags(c) for c in original.cells)
    assert not (tmp_path / "course" / ".git").exists()
    assert not (tmp_path / "course" / "test-artifacts").exists()  # the browser test's pictures, when there are any
