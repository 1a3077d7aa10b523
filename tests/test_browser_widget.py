"""End-to-end test of the latent traversal widget in JupyterLab, driven by headless Chromium.

The test starts JupyterLab on 127.0.0.1 with a random token and its own temporary config,
data, runtime and settings folders. It opens a copy of a notebook and runs the cells up to and
including the one tagged ``traversal-widget``. Then it moves the first slider with the keyboard
and checks that the PNG shown by the widget decodes to different pixels.

Requirements: the PyPI packages ``playwright`` and ``jupyterlab`` (the dev extra) and Debian's
``chromium`` package (``apt-get install chromium``). Playwright drives that system browser
through ``executable_path``, so ``playwright install`` is never needed. Without them the test
is skipped, except under ``CI=true``, where it fails.

Screenshots and the JupyterLab log go to build/test-artifacts/browser-widget/.
"""

from __future__ import annotations

import io
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

pytestmark = pytest.mark.browser

WIDGET_CELL_TAG = "traversal-widget"
DEMO_NOTEBOOK = "demo"
# Notebooks to test: DEMO_NOTEBOOK (written by write_demo_notebook) or paths relative to the
# repository root, such as "notebooks/03_<name>.ipynb". Each one is copied into a temporary folder first.
WIDGET_NOTEBOOKS: tuple[str, ...] = (DEMO_NOTEBOOK,)

ARTIFACTS_DIR = paths.REPOSITORY_DIR / "build" / "test-artifacts" / "browser-widget"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
SERVER_START_TIMEOUT_S = 60
SERVER_STOP_TIMEOUT_S = 20
PAGE_LOAD_TIMEOUT_S = 60
CELL_QUEUE_TIMEOUT_S = 10
# Time from the first Shift+Enter until the widget image is shown.
# NOTE: driving notebook 03 itself this way was flaky: cells far down the page missed the
# Shift+Enter, and element screenshots waited on fonts while the kernel trained. So only the demo
# runs in the browser for now. It builds the same LatentTraversal over a small decoder.
CELLS_RUN_TIMEOUT_S = 90
IMAGE_UPDATE_TIMEOUT_S = 20
SLIDER_KEY_PRESSES = 10


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
    }
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
        nbformat.v4.new_code_cell("raise RuntimeError('the browser test ran past the cell tagged traversal-widget')"),
    ]
    nbformat.write(notebook, path)


def stage_notebook(name: str, root: Path) -> Path:
    """Put a copy of the notebook under test into the server's root folder and return the copy's path."""
    if name == DEMO_NOTEBOOK:
        target = root / "traversal_demo.ipynb"
        write_demo_notebook(target)
        return target
    source = paths.REPOSITORY_DIR / name
    target = root / source.name
    shutil.copyfile(source, target)
    return target


def code_cells_through_tag(path: Path, tag: str) -> list[int]:
    """Return the indices of the code cells up to and including the one cell tagged ``tag``."""
    cells = nbformat.read(path, as_version=4).cells
    tagged = [index for index, cell in enumerate(cells) if tag in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        pytest.fail(f"{path.name} must have exactly one cell tagged {tag!r}, found {len(tagged)}")
    return [index for index, cell in enumerate(cells[: tagged[0] + 1]) if cell.cell_type == "code"]


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


def error_outputs(page) -> str:
    return "\n".join(page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts())


@pytest.mark.parametrize("notebook", WIDGET_NOTEBOOKS)
def test_slider_redraws_widget_image(notebook, jupyter_lab, chromium):
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import expect, sync_playwright

    path = stage_notebook(notebook, jupyter_lab.root)
    cells_to_run = code_cells_through_tag(path, WIDGET_CELL_TAG)
    stem = path.stem
    print(f"browser test artifacts: {ARTIFACTS_DIR}")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-proxy-server"])
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        try:
            page.route("**/*", block_other_hosts)
            page.goto(f"{jupyter_lab.base_url}/lab/tree/{path.name}?token={jupyter_lab.token}", timeout=PAGE_LOAD_TIMEOUT_S * 1000)
            cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell")
            cells.first.wait_for(timeout=PAGE_LOAD_TIMEOUT_S * 1000)
            # The status bar reads "<kernel name> | Idle" once the kernel is connected; cells run before that are dropped.
            page.locator(".jp-StatusBar-TextItem", has_text="| Idle").wait_for(timeout=PAGE_LOAD_TIMEOUT_S * 1000)

            # Clicking a cell's prompt selects it in command mode, and Shift+Enter queues it. A queued
            # cell's prompt changes from "[ ]:" to "[*]:", which shows that the key press arrived.
            for index in cells_to_run:
                prompt = cells.nth(index).locator(".jp-InputPrompt")
                prompt.click()
                page.keyboard.press("Shift+Enter")
                expect(prompt, f"cell {index} was not queued after Shift+Enter").not_to_have_text("[ ]:", timeout=CELL_QUEUE_TIMEOUT_S * 1000)

            panel = page.locator(".jp-OutputArea-output .widget-vbox").filter(has=page.locator("img.widget-image")).last
            try:
                panel.wait_for(timeout=CELLS_RUN_TIMEOUT_S * 1000)
            except PlaywrightTimeoutError:
                pytest.fail(f"no traversal widget appeared within {CELLS_RUN_TIMEOUT_S} s; error outputs:\n{error_outputs(page) or '(none)'}")
            image = panel.locator("img.widget-image")
            readout = panel.locator(".widget-slider .widget-readout").first
            panel.screenshot(path=ARTIFACTS_DIR / f"{stem}-before.png")
            readout_before = readout.inner_text()
            pixels_before = widget_pixels(image)
            src_before = image.get_attribute("src")

            handle = panel.locator(".widget-slider .noUi-handle").first
            # A start code can sit at the top of the slider's range, so then move down instead.
            at_top = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
            handle.focus()
            for _ in range(SLIDER_KEY_PRESSES):
                handle.press("ArrowLeft" if at_top else "ArrowRight")
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
        finally:
            page.screenshot(path=ARTIFACTS_DIR / f"{stem}-page.png")
            browser.close()

    assert readout_after != readout_before, f"the slider did not move: its readout stayed {readout_before!r}"
    image_changed = not np.array_equal(pixels_after, pixels_before)
    assert image_changed, (
        f"the widget image did not change within {IMAGE_UPDATE_TIMEOUT_S} s after the slider moved from {readout_before} to {readout_after}; "
        f"screenshots in {ARTIFACTS_DIR}"
    )
