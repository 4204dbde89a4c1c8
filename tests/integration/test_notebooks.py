"""The notebooks run top to bottom, headless, in a kernel of this Python (the venv's)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _outputs_text(nb) -> str:
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.extend(str(v) for v in output.get("data", {}).values())
    return "\n".join(texts)


@pytest.mark.parametrize("name", ["01_quickstart.ipynb"])
def test_notebook_runs_without_errors(name, tmp_path, monkeypatch):
    monkeypatch.setenv("MLEVAL_QUICKSTART_WORKSPACE", str(tmp_path / "ws"))  # the kernel inherits it
    monkeypatch.setenv("MLEVAL_OFFLINE", "1")  # random weights at once, no download attempt
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    # kernelspec "python3" says argv "python": jupyter_client runs it as sys.executable, this venv's
    client = NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / name)  # the executed copy, to read when something fails

    errors = [(i, o) for i, cell in enumerate(nb.cells) for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, json.dumps([(i, o.get("ename"), o.get("evalue")) for i, o in errors])
    text = _outputs_text(nb)
    assert f"kernel python: {sys.executable}" in text
    assert "direct catalog" in text  # no Ray: the kernel opened the catalog itself
    assert "Saved" in text
    views = [o for cell in nb.cells for o in cell.get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) >= 3  # uploader, gallery and annotator were displayed as widgets


def test_job_monitor_follows_a_real_inference_job(ray_workspace):
    """The widget's background thread keeps up with a Ray job's row until it ends (no notebook needed)."""
    import threading

    from tests.unit.conftest import image_bytes
    from widgets import JobMonitor

    ws = ray_workspace
    ws.images.upload([(f"{i}.png", image_bytes(size=(96, 64), seed=i)) for i in range(8)], split="test")
    job = ws.infer("yolo11n", split="test", imgsz=64, batch_size=4)
    monitor = JobMonitor(job, poll_s=0.2)
    ended = threading.Event()
    monitor.status.observe(lambda change: "completed" in change["new"] and ended.set(), names="value")
    if monitor.finished:
        ended.set()
    assert ended.wait(timeout=300), monitor.status.value
    monitor._thread.join(timeout=10)
    assert monitor.progress.value == 100.0 and monitor.cancel_button.disabled and monitor.logs.value
