"""The course as learners use it: every notebook opened in JupyterLab in a real browser and run top to bottom.

nbval (run by the test command) compares each cell's outputs; this test checks what only a browser shows. It starts
JupyterLab on 127.0.0.1 with a random token, serving a temporary copy of the course (JupyterLab autosaves, so never
the tracked files), drives headless Chromium with Playwright, and for each notebook: checks that the solutions start
collapsed, clears the stored outputs, runs all cells from the Run menu, waits until the kernel is idle, and asserts:
- every code cell ran in this run (has an execution count) and none shows an error unless tagged `raises-exception`;
- the solution cells are still collapsed;
- every cell whose stored outputs hold an image (the timelines) shows it, loaded, and so does every diagram;
- every worker print stored in a cell (`(name pid=N) text`) appears again in that same cell.
A picture of each notebook, run, is saved for people to look at: test-artifacts/browser/NAME.png (the whole notebook,
stitched) and NAME/screen-NNN.png (one per screenful).

Needs Debian's `chromium` (/usr/bin/chromium, or COURSE_CHROMIUM=path) and the `playwright` package; no browser is
downloaded. Without them the test skips, unless COURSE_REQUIRE_BROWSER=1 (set by .ci/run) turns that into a failure.
"""
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Notebooks marked real_ray_only (notebook 8 starts a Ray cluster) run in the real-Ray half of the test command.
PATHS = [p for p in sorted(glob.glob(os.path.join(ROOT, "notebooks", "[0-9][0-9]_*.ipynb")))
         if not nbformat.read(p, as_version=4).metadata.get("course", {}).get("real_ray_only")]
NAMES = [os.path.basename(p)[:-6] for p in PATHS]
CHROMIUM = os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("COURSE_REQUIRE_BROWSER") == "1"
ARTIFACTS = os.path.join(ROOT, "test-artifacts", "browser")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOK_TIMEOUT_S = 300  # a notebook runs in under 60 s on 2 cores; generous for a loaded machine
LAB_START_TIMEOUT_S = 120
WORKER_LINE = re.compile(r"^\((?:[\w.<>]+ )?pid=\d+\) .+$", re.M)  # a worker print, as Ray prefixes it


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def stored_expectations(path):
    """What the committed notebook says the browser must show, per cell index."""
    nb = nbformat.read(path, as_version=4)
    images, worker_lines, solutions = {}, {}, []
    for i, cell in enumerate(nb.cells):
        if "solution" in tags(cell):
            solutions.append(i)
        if cell.cell_type == "markdown":  # our diagrams, from assets/
            n_images = len(re.findall(r"!\[[^\]]*\]\(|<img ", cell.source))
            if n_images:
                images[i] = n_images
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        n_images = sum("image/png" in o.get("data", {}) for o in outputs)
        if n_images:
            images[i] = n_images
        text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
        lines = WORKER_LINE.findall(text)
        if lines:
            # pids differ from run to run: the same prefix and text, any pid
            worker_lines[i] = [re.sub(r"pid=\d+", r"pid=\\d+", re.escape(line)) for line in lines]
    return nb, images, worker_lines, solutions


def test_the_stored_notebooks_give_the_browser_test_something_to_check():
    """The browser test's expectations come from the stored outputs; they must not be empty by accident."""
    found = [stored_expectations(p) for p in PATHS]
    assert len(PATHS) == 7  # 01-07 (08 needs real Ray, and runs in the real-Ray half)
    assert sum(len(images) for _, images, _, _ in found) >= 12, "diagrams and timeline images"
    assert sum(len(lines) for _, _, lines, _ in found) >= 2, "worker prints in the stored outputs"
    assert all(len(solutions) >= 2 for _, _, _, solutions in found), "two solutions per notebook"


# ---------------------------------------------------------------------------------------------------------------
# JupyterLab and the browser


def need_browser():
    """Skip (or fail, with COURSE_REQUIRE_BROWSER=1) when this machine cannot run the browser test."""
    reason = None
    if not os.path.exists(CHROMIUM):
        reason = (f"Chromium not found at {CHROMIUM} (Debian/Ubuntu: apt-get install chromium; or set "
                  f"COURSE_CHROMIUM to a Chromium binary)")
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (pip install -e '.[test]')"
    if reason:
        if REQUIRED:
            pytest.fail(f"browser test cannot run: {reason}; COURSE_REQUIRE_BROWSER=1 requires it")
        pytest.skip(f"browser test skipped: {reason}")


@pytest.fixture(autouse=True)
def _test_timeout(request):
    """Overrides conftest's 60 s limit: a notebook in a browser gets NOTEBOOK_TIMEOUT_S, then the test fails."""

    def on_alarm(signum, frame):
        pytest.fail(f"test did not finish within {NOTEBOOK_TIMEOUT_S} s (hang?)", pytrace=True)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(NOTEBOOK_TIMEOUT_S + 60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server of our own, on a temporary copy of the course, with private Jupyter folders."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="course-browser-")
        self.root = os.path.join(self.dir, "course")
        for part in ("notebooks", "assets", "extra"):
            shutil.copytree(os.path.join(ROOT, part), os.path.join(self.root, part),
                            ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("JUPYTER", "PYTEST_", "COURSE_BACKEND", "COURSE_TEST_BACKEND", "RAY_"))}
        private = {name: os.path.join(self.dir, folder) for name, folder in [
            ("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
            ("IPYTHONDIR", "ipython")]}
        for folder in private.values():
            os.makedirs(folder)
        # No news feed pop-up over the notebook (and no request to the internet for it).
        notification = os.path.join(private["JUPYTERLAB_SETTINGS_DIR"], "@jupyterlab", "apputils-extension")
        os.makedirs(notification)
        with open(os.path.join(notification, "notification.jupyterlab-settings"), "w") as f:
            json.dump({"fetchNews": "false", "checkForUpdates": False}, f)
        env.update(private)
        self.log = open(os.path.join(self.dir, "jupyterlab.log"), "w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={self.root}", "--LabApp.expose_app_in_browser=True",
             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
            cwd=self.root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + LAB_START_TIMEOUT_S
        while True:
            try:
                self.api("GET", "/api/status")
                break
            except (OSError, urllib.error.URLError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.log_text()
                    self.stop()
                    raise RuntimeError(f"JupyterLab did not start within {LAB_START_TIMEOUT_S} s:\n{log}")
                time.sleep(0.3)

    def api(self, method, path):
        request = urllib.request.Request(self.url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernels(self):
        """End every notebook's kernel (the notebooks' last cell has already shut their runtime down)."""
        for session in self.api("GET", "/api/sessions"):
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-4000:]

    def stop(self):
        if self.process.poll() is None:
            try:
                self.shut_down_kernels()
                self.api("POST", "/api/shutdown")  # stops the server and any kernel still running
            except (OSError, urllib.error.URLError):
                pass
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


RESULTS = []  # (notebook, seconds to open and run it, picture), reported at the end


@pytest.fixture(scope="module")
def lab(request):
    need_browser()
    server = Lab()
    yield server
    server.stop()
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture and RESULTS:  # say where the pictures are, even while pytest captures the tests' output
        with capture.global_and_fixture_disabled():
            print()
            for name, seconds, picture in RESULTS:
                print(f"browser: {name} opened and ran in {seconds:.1f} s; picture: {picture}")


@pytest.fixture(scope="module")
def browser():
    need_browser()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


# What the page tells about the open notebook: one entry per cell, from JupyterLab's model and from the DOM.
READ_CELLS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  return panel.content.widgets.map(cell => {
    const node = cell.node, model = cell.model;
    const outputs = model.type === 'code' ? model.outputs.toJSON() : [];
    const images = [...node.querySelectorAll(model.type === 'code' ? '.jp-OutputArea img' : 'img')];
    return {
      type: model.type,
      source: model.sharedModel.getSource(),
      tags: model.getMetadata('tags') || [],
      count: model.type === 'code' ? model.executionCount : null,
      errors: outputs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue),
      collapsed: cell.inputHidden && !!node.querySelector('.jp-InputPlaceholder') && !node.querySelector('.cm-editor'),
      text: [...node.querySelectorAll('.jp-OutputArea-output')].map(o => o.textContent).join('\\n'),
      images: images.length,
      loadedImages: images.filter(img => img.complete && img.naturalWidth > 0).length,
      imageSources: images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src),
    };
  });
}"""

SHOW_AND_READ_COLLAPSED = """async (i) => {
  const notebook = window.jupyterapp.shell.currentWidget.content;
  await notebook.scrollToItem(i, 'center');
  await new Promise(resolve => setTimeout(resolve, 200));
  const cell = notebook.widgets[i];
  return cell.inputHidden && !!cell.node.querySelector('.jp-InputPlaceholder') && !cell.node.querySelector('.cm-editor');
}"""

CODE_CELLS = """() => window.jupyterapp.shell.currentWidget.content.widgets.map(c => c.model)
  .filter(m => m.type === 'code' && m.sharedModel.getSource().trim())"""

KERNEL_STATUS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const kernel = panel && panel.sessionContext.session && panel.sessionContext.session.kernel;
  return kernel ? kernel.status : 'no kernel';
}"""


def wait_for(page, expression, timeout_s, what):
    try:
        page.wait_for_function(expression, timeout=timeout_s * 1000, polling=250)
    except Exception as error:  # playwright's TimeoutError; keep the message about *what* did not happen
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what} ({type(error).__name__})") from None


def menu(page, menu_name, item):
    """Click a menu of JupyterLab's menu bar, then one of its items, as a learner does."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu_name}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def save_picture(page, name):
    """Scroll through the notebook photographing each screenful (which also renders every cell: JupyterLab renders
    cells lazily), and stitch the screens into one PNG (needs Pillow, which matplotlib brings)."""
    folder = os.path.join(ARTIFACTS, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    scroller = page.locator(".jp-NotebookPanel:visible .jp-WindowedPanel-outer").first
    height = scroller.evaluate("node => node.clientHeight")
    shots, top = [], 0
    while len(shots) < 200:
        scroller.evaluate("(node, top) => { node.scrollTop = top; }", top)
        page.wait_for_timeout(200)
        actual, total = scroller.evaluate("node => [node.scrollTop, node.scrollHeight]")
        path = os.path.join(folder, f"screen-{len(shots) + 1:03d}.png")
        scroller.screenshot(path=path)
        shots.append((actual, path))
        if actual + height >= total - 1 or (len(shots) > 1 and actual <= shots[-2][0]):
            break
        top = actual + height - 40
    try:
        from PIL import Image
    except ImportError:
        return folder
    images = [(top, Image.open(path)) for top, path in shots]
    scale = images[0][1].height / height  # device pixels per CSS pixel
    whole = Image.new("RGB", (max(image.width for _, image in images),
                              int(shots[-1][0] * scale) + images[-1][1].height), "white")
    for top, image in images:
        whole.paste(image, (0, int(top * scale)))
    picture = os.path.join(ARTIFACTS, f"{name}.png")
    whole.save(picture)
    return picture


@pytest.mark.parametrize("path", PATHS, ids=NAMES)
def test_notebook_runs_in_jupyterlab(path, lab, browser):
    name = os.path.basename(path)[:-6]
    stored, images, worker_lines, solutions = stored_expectations(path)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    started = time.monotonic()
    try:
        page.goto(f"{lab.url}/lab/tree/notebooks/{name}.ipynb?reset&token={lab.token}")
        wait_for(page, f"""() => {{
            const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            return panel && panel.context && panel.context.path === 'notebooks/{name}.ipynb'
                && panel.context.isReady && panel.content.widgets.length === {len(stored.cells)};
        }}""", 120, f"JupyterLab to open {name}")
        wait_for(page, f"() => ({KERNEL_STATUS})() === 'idle'", 120, "the kernel to start")

        # As a learner first sees it: solutions collapsed (each scrolled to, since cells render when seen).
        for i in solutions:
            if not page.evaluate(SHOW_AND_READ_COLLAPSED, i):
                problems.append(f"cell {i}: solution not collapsed when the notebook opens")

        # Clear the stored outputs, so that everything checked below comes from this run.
        menu(page, "Edit", "Clear Outputs of All Cells")
        wait_for(page, "() => window.jupyterapp.shell.currentWidget.content.widgets.every("
                       "c => c.model.type !== 'code' || (c.model.executionCount === null"
                       " && c.model.outputs.length === 0))", 30, "the outputs to clear")

        menu(page, "Run", "Run All Cells")
        wait_for(page, f"() => ({CODE_CELLS})().some(c => c.executionState === 'running' || c.executionCount !== null)",
                 60, "the run to start")
        # Done: the kernel is idle and no cell is queued or running (after an error, JupyterLab stops the run and
        # the rest of the cells keep no execution count); it must stay so for a moment (idle flickers between cells).
        finished = f"() => ({KERNEL_STATUS})() === 'idle' && ({CODE_CELLS})().every(c => c.executionState !== 'running')"
        deadline = time.monotonic() + NOTEBOOK_TIMEOUT_S
        while True:
            wait_for(page, finished, max(1, deadline - time.monotonic()), "the kernel to run every cell and be idle")
            page.wait_for_timeout(1000)
            if page.evaluate(finished):
                break
        page.wait_for_timeout(500)  # let the last outputs render
        run_s = time.monotonic() - started
        picture = save_picture(page, name)  # scrolling through also renders every cell
        RESULTS.append((name, run_s, os.path.relpath(picture, ROOT)))

        cells, not_run = page.evaluate(READ_CELLS), []
        for i, cell in enumerate(cells):
            where = f"cell {i} ({cell['source'].strip().splitlines()[0][:50] if cell['source'].strip() else ''!r})"
            if cell["type"] == "code" and cell["source"].strip() and cell["count"] is None:
                not_run.append(where)
            if cell["errors"] and "raises-exception" not in cell["tags"]:
                problems.append(f"{where}: error {cell['errors']}")
            if "raises-exception" in cell["tags"] and not cell["errors"]:
                problems.append(f"{where}: tagged raises-exception but raised nothing")
            if i in solutions and not cell["collapsed"]:
                problems.append(f"{where}: solution not collapsed after running")
            if i in images and cell["loadedImages"] < images[i]:
                problems.append(f"{where}: shows {cell['loadedImages']} loaded image(s), expected {images[i]}")
            if cell["images"] > cell["loadedImages"]:
                problems.append(f"{where}: image(s) did not load: {cell['imageSources']}")
            for pattern in worker_lines.get(i, []):
                if not re.search(f"^{pattern}$", cell["text"], re.M):
                    problems.append(f"{where}: worker print /{pattern}/ missing from its output:\n{cell['text']}")
                elsewhere = [j for j, other in enumerate(cells) if j != i and re.search(pattern, other["text"])]
                if elsewhere:
                    problems.append(f"{where}: worker print /{pattern}/ appeared in cell(s) {elsewhere} too")
        if not_run:
            problems.append(f"{len(not_run)} code cell(s) did not run, the first: {not_run[0]}")
    finally:
        page.close()
        lab.shut_down_kernels()
    assert not problems, f"{name} in JupyterLab:\n" + "\n".join(problems)
