"""End-to-end test of the latent traversal widget in JupyterLab, driven by headless Chromium.

The test starts JupyterLab on 127.0.0.1 with a random token and its own temporary config,
data, runtime, settings and results folders. For each notebook under test it opens a copy that
contains the notebook's code cells up to and including the one tagged ``traversal-widget``, runs it
with "Run All Cells" from the Run menu and waits until the kernel is idle. Then it moves the
first slider to the far end of its range with the keyboard and checks that the PNG shown by the
widget decodes to different pixels.

Notebooks 03 (MNIST) and 04 (CelebA) run with the quick profile and train their models from
scratch in the temporary results folder. A small demo notebook checks the widget alone. Without
MNIST the test fails, as the other MNIST tests do. Without CelebA the notebook 04 case is skipped,
except under ``CI=true``, where it fails.

Requirements: the PyPI packages ``playwright`` and ``jupyterlab`` (the dev extra) and Debian's
``chromium`` package (``apt-get install chromium``). Playwright drives that system browser
through ``executable_path``, so ``playwright install`` is never needed. Without them the test
is skipped, except under ``CI=true``, where it fails.

Screenshots and the JupyterLab log go to build/test-artifacts/browser-widget/.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from secrets import token_hex

import nbformat
import numpy as np
import pytest
from PIL import Image

from corex_edu import paths
from corex_edu.reproduce import NOTEBOOKS, missing_requirements

pytestmark = pytest.mark.browser

WIDGET_CELL_TAG = "traversal-widget"
DEMO_NOTEBOOK = "demo"
# Notebooks to test: DEMO_NOTEBOOK (written by write_demo_notebook) or file names in notebooks/.
WIDGET_NOTEBOOKS: tuple[str, ...] = (DEMO_NOTEBOOK, "03_stacked_corex_mnist.ipynb", "04_anchorvae_celeba.ipynb")

ARTIFACTS_DIR = paths.REPOSITORY_DIR / "build" / "test-artifacts" / "browser-widget"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
SERVER_START_TIMEOUT_S = 60
SERVER_STOP_TIMEOUT_S = 20
PAGE_LOAD_TIMEOUT_S = 60
RUN_START_TIMEOUT_S = 20
# Time from "Run All Cells" until the kernel is idle again with the widget shown. Notebooks 03
# and 04 took 17-21 s each with the quick profile on an idle 2-core machine, so the margin is for
# a loaded CI machine.
CELLS_RUN_TIMEOUT_S = 600
IMAGE_UPDATE_TIMEOUT_S = 20


@dataclass(frozen=True)
class LabServer:
    base_url: str
    token: str
    root: Path


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require(missing: str) -> None:
    """Skip the test for a missing browser tool, or fail under CI=true, where the tools must be present."""
    if in_ci():
        pytest.fail(f"{missing} (CI=true, so the browser test must run; .ci/run installs chromium)")
    pytest.skip(missing)


@pytest.fixture(scope="module")
def chromium() -> str:
    """Return the system Chromium's path after checking that playwright and jupyterlab import."""
    for module, fix in (("playwright", "pip install -e '.[dev]'"), ("jupyterlab", "pip install -e '.[dev]'")):
        try:
            __import__(module)
        except ImportError:
            require(f"the Python package {module} is not installed; run {fix}")
    executable = next((found for found in map(shutil.which, CHROMIUM_NAMES) if found), None)
    if executable is None:
        require(f"no Chromium executable ({' or '.join(CHROMIUM_NAMES)}) on PATH; install it with `apt-get install chromium` (Debian)")
    return executable


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_responds(base_url: str, token: str) -> bool:
    # An opener without proxy handlers, so the request goes to 127.0.0.1 even when http_proxy is set.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{base_url}/api/status", headers={"Authorization": f"token {token}"})
    try:
        with opener.open(request, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop JupyterLab (SIGTERM lets it shut its kernels down), then kill whatever is left in its process group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=SERVER_STOP_TIMEOUT_S)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # kernels that outlived the server, if any
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def jupyter_lab(chromium, tmp_path_factory):
    """Start JupyterLab on a free loopback port with a random token; stop it and its kernels afterwards."""
    root = tmp_path_factory.mktemp("lab-root")
    state = tmp_path_factory.mktemp("lab-state")
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    port, token = free_loopback_port(), token_hex(24)
    environment = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(state / "config"),
        "JUPYTER_DATA_DIR": str(state / "data"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(state / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "lab-workspaces"),
        "IPYTHONDIR": str(state / "ipython"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        # The kernels inherit these: the notebooks train with the quick profile into a fresh folder.
        "COREX_EDU_PROFILE": "quick",
        "COREX_EDU_RESULTS": str(state / "results"),
        "COREX_EDU_PROGRESS": "0",
    }
    write_lab_settings(state / "lab-settings")
    command = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--allow-root",
        "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        # No news feed, update check or PyPI extension manager: the server contacts no other host.
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    log_path = ARTIFACTS_DIR / "jupyterlab.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=environment, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not server_responds(base_url, token):
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with status {process.returncode} before it answered; see {log_path}")
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {base_url} within {SERVER_START_TIMEOUT_S} s; see {log_path}")
            time.sleep(0.5)
        yield LabServer(base_url, token, root)
    finally:
        stop_process_group(process)


def write_lab_settings(settings_dir: Path) -> None:
    """Render every cell of a notebook, so that cells and outputs below the fold exist on the page,
    and turn off the news and update notices, whose pop-up can cover the notebook."""
    settings = {
        ("notebook-extension", "tracker"): {"windowingMode": "none"},
        ("apputils-extension", "notification"): {"fetchNews": "false", "checkForUpdates": False},
    }
    for (extension, plugin), values in settings.items():
        path = settings_dir / "@jupyterlab" / extension / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def write_demo_notebook(path: Path) -> None:
    """Write a notebook whose tagged cell shows a LatentTraversal over a small random decoder (seeded)."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Latent traversal demo\nA random decoder from 4 latents to 8x8 grey images."),
        nbformat.v4.new_code_cell(
            "import torch\n"
            "from corex_edu.widgets import LatentTraversal\n"
            "\n"
            "torch.set_num_threads(1)\n"
            "torch.manual_seed(0)\n"
            "decoder = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 64), torch.nn.Sigmoid()).eval()\n"
            "starts = {'origin': torch.zeros(4), 'ones': torch.ones(4)}"
        ),
        nbformat.v4.new_code_cell(
            "traversal = LatentTraversal(lambda z: decoder(z).view(-1, 1, 8, 8), starts, dims=[0, 2], scale=16)\n"
            "traversal.widget()",
            metadata={"tags": [WIDGET_CELL_TAG]},
        ),
    ]
    nbformat.write(notebook, path)


def stage_notebook(name: str, root: Path) -> Path:
    """Write the notebook under test into the server's root folder and return its path.

    A notebook from notebooks/ is copied without its outputs and without the cells after the one
    tagged ``traversal-widget``, so that "Run All Cells" stops at the widget. Its markdown cells are
    dropped too, which keeps the page short.
    """
    if name == DEMO_NOTEBOOK:
        target = root / "traversal_demo.ipynb"
        write_demo_notebook(target)
        return target
    source = paths.NOTEBOOKS_DIR / name
    notebook = nbformat.read(source, as_version=4)
    tagged = [index for index, cell in enumerate(notebook.cells) if WIDGET_CELL_TAG in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        pytest.fail(f"{source} must have exactly one cell tagged {WIDGET_CELL_TAG!r}, found {len(tagged)}")
    code_cells = [cell for cell in notebook.cells[: tagged[0] + 1] if cell.cell_type == "code"]
    for cell in code_cells:
        cell.outputs, cell.execution_count = [], None
    heading = nbformat.v4.new_markdown_cell(f"# {source.name}: the code cells up to the traversal widget (browser test copy)")
    notebook.cells = [heading, *code_cells]
    target = root / source.name
    nbformat.write(notebook, target)
    return target


def require_notebook_data(name: str) -> None:
    """Fail without MNIST, as the other MNIST tests do. Skip without CelebA, except under CI=true."""
    spec = next((spec for spec in NOTEBOOKS.values() if spec.filename == name), None)
    if spec is None:
        return
    for report in missing_requirements(spec):
        message = f"{name} needs {report.name}, which is missing ({report.detail}); fix: {report.fix}"
        if report.name.lower() == "mnist" or in_ci():
            pytest.fail(message)
        pytest.skip(message)


def block_other_hosts(route) -> None:
    """Abort every browser request that is not for the loopback JupyterLab server."""
    if route.request.url.startswith("http://127.0.0.1:"):
        route.continue_()
    else:
        route.abort()


def widget_pixels(image) -> np.ndarray:
    """Return the decoded pixels of the PNG that an ipywidgets Image element currently shows (a blob: URL)."""
    payload = image.evaluate("async (element) => Array.from(new Uint8Array(await (await fetch(element.src)).arrayBuffer()))")
    return np.asarray(Image.open(io.BytesIO(bytes(payload))))


STDERR_OUTPUTS = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
# True once the last code cell has an execution count, or as soon as any cell shows a traceback
# (Run All Cells stops at an error, so the last cell would never run).
FINISHED_OR_FAILED = f"""(lastPrompt) => /\\[\\d+\\]/.test(lastPrompt.textContent)
    || Array.from(lastPrompt.closest(".jp-NotebookPanel").querySelectorAll("{STDERR_OUTPUTS}")).some((output) => output.textContent.includes("Traceback"))"""


def tracebacks(notebook_panel) -> str:
    """Return the text of every stderr output that contains a traceback; warnings alone do not count."""
    return "\n".join(text for text in notebook_panel.locator(STDERR_OUTPUTS).all_inner_texts() if "Traceback" in text)


def kernel_idle(page):
    """The status bar item that reads "<kernel name> | Idle" while the kernel is connected and not running anything."""
    return page.locator(".jp-StatusBar-TextItem", has_text="| Idle")


def run_all_cells(page, code_cells) -> None:
    """Choose Run > Run All Cells from the menu bar, then wait until the first code cell is queued or has run."""
    from playwright.sync_api import expect

    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-item:visible .lm-Menu-itemLabel").filter(has_text="Run All Cells").first.click()
    # A queued cell's prompt changes from "[ ]:" to "[*]:", and to "[1]:" once it has run.
    expect(code_cells.first.locator(".jp-InputPrompt"), "Run All Cells did not start the first code cell").not_to_have_text(
        "[ ]:", timeout=RUN_START_TIMEOUT_S * 1000
    )


@pytest.mark.parametrize("notebook", WIDGET_NOTEBOOKS)
def test_slider_redraws_widget_image(notebook, jupyter_lab, chromium):
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import sync_playwright

    require_notebook_data(notebook)
    path = stage_notebook(notebook, jupyter_lab.root)
    stem = path.stem
    print(f"browser test artifacts: {ARTIFACTS_DIR}")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-proxy-server"])
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        try:
            page.route("**/*", block_other_hosts)
            # A workspace of its own per notebook, so that no tab from an earlier case is restored.
            url = f"{jupyter_lab.base_url}/lab/workspaces/{stem}/tree/{path.name}?token={jupyter_lab.token}"
            page.goto(url, timeout=PAGE_LOAD_TIMEOUT_S * 1000)
            notebook_panel = page.locator(".jp-NotebookPanel:visible")
            code_cells = notebook_panel.locator(".jp-Notebook .jp-CodeCell")
            code_cells.first.wait_for(timeout=PAGE_LOAD_TIMEOUT_S * 1000)
            # Cells run before the kernel is connected are dropped, so wait for "| Idle" first.
            kernel_idle(page).wait_for(timeout=PAGE_LOAD_TIMEOUT_S * 1000)
            run_all_cells(page, code_cells)

            # The tagged cell is the copy's last cell: once its prompt shows a number, every cell has run.
            last_prompt = code_cells.last.locator(".jp-InputPrompt")
            started = time.monotonic()
            try:
                page.wait_for_function(FINISHED_OR_FAILED, arg=last_prompt.element_handle(), timeout=CELLS_RUN_TIMEOUT_S * 1000)
            except PlaywrightTimeoutError:
                pytest.fail(f"{path.name} did not finish within {CELLS_RUN_TIMEOUT_S} s; see {ARTIFACTS_DIR / (stem + '-page.png')}")
            errors = tracebacks(notebook_panel)
            assert not errors, f"a cell of {path.name} raised before the widget was shown:\n{errors}"
            kernel_idle(page).wait_for(timeout=PAGE_LOAD_TIMEOUT_S * 1000)
            print(f"{path.name}: cells ran in {time.monotonic() - started:.0f} s")

            panel = notebook_panel.locator(".jp-OutputArea-output .widget-vbox").filter(has=page.locator("img.widget-image")).last
            try:
                panel.wait_for(timeout=IMAGE_UPDATE_TIMEOUT_S * 1000)
            except PlaywrightTimeoutError:
                pytest.fail(f"the last cell of {path.name} ran but showed no traversal widget; see {ARTIFACTS_DIR / (stem + '-page.png')}")
            panel.scroll_into_view_if_needed()
            image = panel.locator("img.widget-image")
            readout = panel.locator(".widget-slider .widget-readout").first
            panel.screenshot(path=ARTIFACTS_DIR / f"{stem}-before.png")
            readout_before = readout.inner_text()
            pixels_before = widget_pixels(image)
            src_before = image.get_attribute("src")

            handle = panel.locator(".widget-slider .noUi-handle").first
            # Press End or Home on the focused handle to move the slider to whichever end of its
            # range is farther from the start value, so that the image changes visibly.
            value = float(handle.get_attribute("aria-valuenow"))
            low, high = float(handle.get_attribute("aria-valuemin")), float(handle.get_attribute("aria-valuemax"))
            handle.focus()
            handle.press("Home" if value - low > high - value else "End")
            readout_after = readout.inner_text()

            # ipywidgets shows each new PNG under a new blob: URL, so wait for the URL to change, then compare pixels.
            pixels_after = pixels_before
            deadline = time.monotonic() + IMAGE_UPDATE_TIMEOUT_S
            while time.monotonic() < deadline and np.array_equal(pixels_after, pixels_before):
                page.wait_for_timeout(250)
                if image.get_attribute("src") != src_before:
                    try:
                        pixels_after = widget_pixels(image)
                    except PlaywrightError:
                        continue  # a later update revoked the blob URL between reading and fetching it; read again
            panel.screenshot(path=ARTIFACTS_DIR / f"{stem}-after.png")
            if pixels_after.shape == pixels_before.shape:
                change = np.abs(pixels_after.astype(int) - pixels_before.astype(int))
                print(f"{path.name}: slider {readout_before} -> {readout_after}, largest pixel change {change.max()} of 255, mean {change.mean():.1f}")
            # The panel's message line is empty unless the redraw raised (see TraversalPanel._on_change).
            panel_message = panel.locator(".widget-html").last.inner_text().strip()
        finally:
            page.screenshot(path=ARTIFACTS_DIR / f"{stem}-page.png", full_page=True)
            browser.close()

    assert readout_after != readout_before, f"the slider did not move: its readout stayed {readout_before!r}"
    image_changed = not np.array_equal(pixels_after, pixels_before)
    assert image_changed, (
        f"the widget image did not change within {IMAGE_UPDATE_TIMEOUT_S} s after the slider moved from {readout_before} to {readout_after}; "
        f"the panel's message line reads {panel_message!r}; screenshots in {ARTIFACTS_DIR}"
    )
    assert not panel_message, f"the widget reported a failed redraw: {panel_message}"
