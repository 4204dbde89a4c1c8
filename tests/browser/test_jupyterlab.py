"""The quickstart notebook in JupyterLab in a real browser (headless Chromium driven by Playwright):
run its cells from the Run menu, see the gallery and the annotator, draw a box with the mouse,
press Save, and find the box in the workspace's catalog in the image's own pixels.

Needs Chromium (Debian: ``apt-get install chromium``; another binary via ``MLEVAL_CHROMIUM``)
and the ``playwright`` Python package; no browser download. Skipped without them."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import free_port

pytestmark = pytest.mark.browser

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_quickstart.ipynb"
CHROMIUM = Path(os.environ.get("MLEVAL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# An isolated JupyterLab: every cell attached to the page (stable positions for clicks and
# drags) and no question about fetching Jupyter news.
LAB_SETTINGS = {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
                "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"}}
RUN_TIMEOUT_MS = 300_000


def _playwright():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright Python package is missing: pip install playwright "
        "(only the package: the test drives the system's Chromium, no browser download)")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (Debian), or point MLEVAL_CHROMIUM "
                    "at a Chromium binary")
    return sync_api


@dataclass
class Lab:
    url: str
    token: str
    workspace: Path
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        """Stop the server; it shuts its kernels down first, which releases the catalog file."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on loopback (free port, a token) over a folder holding a copy of the quickstart;
    the kernel reads its workspace path from the environment."""
    _playwright()  # skip before anything starts
    root, workspace = tmp_path / "lab", tmp_path / "ws"
    root.mkdir()
    shutil.copy(NOTEBOOK, root)
    for plugin, values in LAB_SETTINGS.items():
        settings = tmp_path / "lab-settings" / f"{plugin}.jupyterlab-settings"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps(values))
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}  # the quickstart runs without Ray
    env.update(MLEVAL_QUICKSTART_WORKSPACE=str(workspace), MLEVAL_OFFLINE="1",
               JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"), JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"))
    port, token = free_port(), secrets.token_hex(16)
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.news_url=None"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    server = Lab(f"http://127.0.0.1:{port}", token, workspace, process, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"JupyterLab exited: {log.read_text()[-3000:]}"
            try:
                if requests.get(f"{server.url}/api/status", headers={"Authorization": f"token {token}"},
                                timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"JupyterLab did not answer in 120 s: {log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield server
    finally:
        server.stop()


def _run_from_menu(page, cell, item: str) -> None:
    """Select ``cell`` and pick ``item`` in JupyterLab's Run menu, once the menu offers it (its
    run commands stay disabled until the notebook's kernel is connected)."""
    cell.locator(".jp-InputPrompt").click()
    _playwright().expect(cell).to_have_class(re.compile(r"\bjp-mod-active\b"))
    deadline = time.monotonic() + 120
    while True:
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        entry = page.locator(".lm-Menu-item").filter(
            has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$")))
        if "lm-mod-disabled" not in (entry.get_attribute("class") or ""):
            entry.click()
            return
        page.keyboard.press("Escape")
        assert time.monotonic() < deadline, f"Run > {item} stayed disabled for 120 s: {_kernel_status(page)}"
        time.sleep(0.5)


def _kernel_status(page) -> str:
    return page.locator("#jp-main-statusbar").inner_text().replace("\n", " ")


def _button(scope, text: str):
    """An ipywidgets button by its text (its icon font's glyph would be part of an accessible name)."""
    return scope.locator("button.widget-button", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))


def _stored_user_boxes(catalog: Path, filename: str) -> list[tuple[list[str], list[list[float]]]]:
    import duckdb

    with duckdb.connect(str(catalog), read_only=True) as con:
        return con.execute(
            "SELECT a.class_labels, a.bounding_boxes FROM annotations a JOIN images i ON i.id = a.image_id "
            "WHERE a.creation_method = 'user' AND i.filename = ? AND i.dataset_split = 'train'", [filename]).fetchall()


@contextmanager
def _notebook_page(lab: Lab, name: str, screenshot: Path):
    """A headless Chromium page on notebook ``name`` of ``lab``, once its kernel has started and
    answered; the page's screenshot is saved on the way out, whatever happened."""
    sync_api = _playwright()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{lab.url}/lab/tree/{name}?token={lab.token}")
            _idle(page).wait_for(timeout=120_000)
            yield page
        finally:
            page.screenshot(path=str(screenshot))
            browser.close()


def _idle(page):
    return page.locator("#jp-main-statusbar").get_by_text(re.compile(r"\(ipykernel\) \| Idle"))


def test_a_box_drawn_in_the_browser_is_saved_in_image_pixels(lab, tmp_path):
    expect = _playwright().expect
    with _notebook_page(lab, NOTEBOOK.name, tmp_path / "jupyterlab.png") as page:
        idle = _idle(page)
        cells = page.locator(".jp-Notebook .jp-Cell")
        last = cells.nth(cells.count() - 1)  # ws.close(): run what is above it, draw, then run it
        _run_from_menu(page, last, "Run All Above Selected Cell")
        prompts = page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
        expect(prompts.first).to_have_text(re.compile(r"\[(\*|\d+)\]:"), timeout=60_000)  # it started
        expect(prompts.nth(prompts.count() - 2)).to_have_text(re.compile(r"\[\d+\]:"), timeout=RUN_TIMEOUT_MS)
        idle.wait_for(timeout=60_000)
        expect(page.locator(".jp-OutputArea-output", has_text="Traceback")).to_have_count(0)

        gallery = page.locator(".jp-OutputArea-output .widget-gridbox")
        expect(gallery.locator("img.widget-image")).to_have_count(8)  # page_size=8 thumbnails
        for thumbnail in gallery.locator("img.widget-image").all():
            expect(thumbnail).to_be_visible()
        annotator = page.locator(".jp-OutputArea-output").filter(has=_button(page, "Save"))
        picture = annotator.locator("img[alt='annotate me']")  # jupyter-bbox-widget's image
        expect(picture).to_be_visible()
        _button(annotator, "Next").click()  # an image without boxes yet
        expect(annotator).to_contain_text("(2 / 8")
        filename = annotator.locator(".widget-html-content b").first.inner_text()

        picture.scroll_into_view_if_needed()
        natural_width, natural_height = picture.evaluate(
            "img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
        shown = picture.bounding_box()
        start = (shown["x"] + 0.2 * shown["width"], shown["y"] + 0.25 * shown["height"])
        end = (shown["x"] + 0.75 * shown["width"], shown["y"] + 0.8 * shown["height"])
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(*end, steps=10)
        page.mouse.up()
        expect(annotator.locator("svg rect.movable")).to_have_count(1)  # the drawn box, on the image
        _button(annotator, "Save").click()
        expect(annotator).to_contain_text("Saved 1 boxes (revision 1).")
        page.screenshot(path=str(tmp_path / "jupyterlab-annotator.png"))

        _run_from_menu(page, last, "Run Selected Cell")  # the user closes the workspace
        expect(last.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=60_000)
    lab.stop()  # the kernel has gone: the catalog file is free to read

    # Page pixels to image pixels: the widget shows the image at shown/natural scale.
    scale_x, scale_y = natural_width / shown["width"], natural_height / shown["height"]
    expected = [(start[0] - shown["x"]) * scale_x, (start[1] - shown["y"]) * scale_y,
                (end[0] - shown["x"]) * scale_x, (end[1] - shown["y"]) * scale_y]
    tolerance = 1.0 + max(scale_x, scale_y)  # a page pixel, plus rounding
    [(labels, boxes)] = _stored_user_boxes(lab.workspace / "catalog.duckdb", filename)
    assert labels == ["circle"] and len(boxes) == 1, (labels, boxes)
    assert all(abs(got - want) <= tolerance for got, want in zip(boxes[0], expected)), (boxes[0], expected)


ERROR_NOTEBOOK_CELLS = [
    "import os, mleval\nimport ipywidgets as w\nfrom mleval_widgets import Annotator, ErrorBrowser\n"
    "ws = mleval.Workspace.open(os.environ['MLEVAL_QUICKSTART_WORKSPACE'])\n"
    "run = ws.evaluate('yolo12n', 'shapes', progress=False)\nrun.errors()['counts']",
    "browser = ErrorBrowser(ws, run, kind='fp', thumbnail_px=120)\n"
    "annotator = Annotator(ws, ws.images.list(dataset='shapes')[:1], classes=['circle', 'square'], user_tag='fixer')\n"
    "browser.on_select(annotator.show)\nw.VBox([browser, annotator])",
]


def test_the_error_browser_filters_by_kind_and_opens_the_object_in_the_annotator(lab, tmp_path):
    """A run with one object of each error kind (the unit scene's noisy detector, stored predictions):
    in the browser, the false positives page, then the wrong-class one, whose Annotate button opens
    the image it is on in the Annotator."""
    import mleval
    from tests.unit import test_evaluate_runs as scene
    from tests.unit.conftest import detectors_of, image_bytes

    ws = mleval.Workspace.open(lab.workspace)
    uploaded = ws.images.upload([(f"{i}.png", image_bytes(size=(scene.W, scene.H), seed=i)) for i in range(6)],
                                split="test", progress=False).succeeded
    images = sorted(uploaded, key=lambda r: r.filename)
    ws.datasets.create("shapes", images=images)
    detectors_of(ws, ["circle", "square"], "yolo12n")
    for i, objects in scene.GROUND_TRUTH.items():
        if objects:
            ws.annotations.add(images[i], labels=[o[0] for o in objects], boxes_xyxy=[o[1] for o in objects])
    scene._store_predictions(ws, ws.models.get("yolo12n"), images,
                             {i: scene._noisy(o, i) for i, o in scene.GROUND_TRUTH.items()}, failed=set())
    ws.close()  # the kernel opens it next
    notebook = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": c}
                          for c in ERROR_NOTEBOOK_CELLS],
                "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
                "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "lab" / "errors.ipynb").write_text(json.dumps(notebook))

    expect = _playwright().expect
    with _notebook_page(lab, "errors.ipynb", tmp_path / "jupyterlab-errors.png") as page:
        _run_from_menu(page, page.locator(".jp-Notebook .jp-Cell").first, "Run All Cells")
        tiles = page.locator(".jp-OutputArea-output .widget-gridbox > .widget-vbox")
        expect(tiles).to_have_count(3, timeout=RUN_TIMEOUT_MS)  # the square on a circle, two stray circles
        expect(page.locator(".jp-OutputArea-output", has_text="Traceback")).to_have_count(0)
        expect(page.locator(".widget-html-content", has_text="false positives")).to_contain_text(
            "3 false positives of yolo12n")
        page.locator(".widget-dropdown select").first.select_option(label="cls: wrong class")
        expect(tiles).to_have_count(1)
        expect(tiles.first).to_contain_text("(on circle)")
        page.screenshot(path=str(tmp_path / "error-browser.png"))
        _button(tiles.first, "Annotate").click()
        annotator = page.locator(".jp-OutputArea-output").filter(has=_button(page, "Save"))
        expect(annotator).to_contain_text("2.png")  # the image whose circle was called a square
