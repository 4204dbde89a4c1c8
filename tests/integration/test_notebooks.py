"""The notebooks run top to bottom, headless, in a kernel of this Python (the venv's); 02 and 03 in a
kernel attached to the session's Ray."""

from __future__ import annotations

import json
import re
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


def _execute(name: str, tmp_path: Path, *, timeout: int = 300):
    """Run the notebook in a fresh kernel (cwd ``tmp_path``); its executed copy is kept there.
    Returns it after checking that no cell raised and that the kernel was this venv's Python.
    ``timeout``: seconds a cell may take."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    # kernelspec "python3" says argv "python": jupyter_client runs it as sys.executable, this venv's
    client = NotebookClient(nb, kernel_name="python3", timeout=timeout,
                            resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, tmp_path / name)  # the executed copy, to read when something fails

    errors = [(i, o) for i, cell in enumerate(nb.cells) for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, json.dumps([(i, o.get("ename"), o.get("evalue")) for i, o in errors])
    assert f"kernel python: {sys.executable}" in _outputs_text(nb)
    return nb


def _widget_views(nb) -> int:
    return len([o for cell in nb.cells for o in cell.get("outputs", [])
                if "application/vnd.jupyter.widget-view+json" in o.get("data", {})])


def test_quickstart_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("MLEVAL_QUICKSTART_WORKSPACE", str(tmp_path / "ws"))  # the kernel inherits it
    monkeypatch.setenv("MLEVAL_OFFLINE", "1")  # random weights at once, no download attempt
    nb = _execute("01_quickstart.ipynb", tmp_path)
    text = _outputs_text(nb)
    assert "direct catalog" in text  # no Ray: the kernel opened the catalog itself
    assert "Saved" in text
    assert _widget_views(nb) >= 3  # uploader, gallery and annotator were displayed as widgets


@pytest.fixture
def kernel_on_session_ray(ray_session, tmp_path, monkeypatch):
    """The notebook kernel attaches to this session's Ray (no second Ray on the machine); yields its
    workspace folder. Afterwards the workspace's catalog owner actor, which outlives the kernel, is stopped."""
    from mleval.catalog.owner import stop_owner

    monkeypatch.setenv("RAY_ADDRESS", ray_session.get_runtime_context().gcs_address)
    monkeypatch.setenv("MLEVAL_OFFLINE", "1")
    workspace = tmp_path / "ws"
    yield workspace
    stop_owner(str(workspace / "catalog.duckdb"))


def test_train_and_compare_then_deploy_notebooks(kernel_on_session_ray, tmp_path, monkeypatch):
    """02 at its default settings fine-tunes a model that learns the shapes; 03, on the same workspace,
    deploys that model as version 1.1.0 (one test: 03 follows 02 as a user runs them)."""
    import mleval
    from ray import serve

    from tests.integration.conftest import free_port

    monkeypatch.setenv("MLEVAL_TRAIN_WORKSPACE", str(kernel_on_session_ray))
    nb = _execute("02_train_and_compare.ipynb", tmp_path, timeout=900)
    text = _outputs_text(nb)
    assert "catalog owner actor" in text  # the kernel attached to Ray
    trained_line = re.search(r"trained model: (yolo11n-ft-\w+) at imgsz 128", text)
    assert trained_line, text
    scored = re.search(r"fine-tuned \S+: test mAP50 ([0-9.]+), mAP50-95 ([0-9.]+)", text)
    assert scored and float(scored.group(1)) >= 0.8, text  # the default settings learn the shapes
    assert "dataset_snapshot" in text and "training_job" in text  # the lineage table
    assert _widget_views(nb) >= 3  # gallery, job monitor and comparison view

    ws = mleval.Workspace.open(kernel_on_session_ray)  # through the same catalog owner
    [job] = ws.sql("SELECT id, status, result_model_id FROM training_jobs").to_pylist()
    assert job["status"] == "completed"
    trained = ws.models.get(str(job["result_model_id"]))
    assert trained.name == trained_line.group(1) and trained.imgsz == 128
    runs = ws.sql("SELECT m.name, r.imgsz FROM evaluation_runs r JOIN models m ON m.id = r.model_id").to_pylist()
    assert sorted((r["name"], r["imgsz"]) for r in runs) == sorted([("yolo11n", 640), (trained.name, 128)])

    serve.shutdown()  # Serve keeps the HTTP port it first started with: the notebook serves on its own
    monkeypatch.setenv("MLEVAL_DEPLOY_WORKSPACE", str(kernel_on_session_ray))
    monkeypatch.setenv("MLEVAL_DEPLOY_PORT", str(free_port()))
    try:
        nb = _execute("03_deploy.ipynb", tmp_path)
    finally:
        serve.shutdown()
    text = _outputs_text(nb)
    assert f"version 1.1.0 will serve {trained.name}, fine-tuned in notebook 02 (imgsz 128)" in text
    assert "HTTP 200" in text and "without a key: HTTP 401 unauthorized" in text
    assert f"1.1.0 ({trained.name}, imgsz 128) is active; 1.0.0 is inactive" in text
    drawn = re.search(rf"(\d+) detections by {trained.name} \(version 1.1.0\)", text)  # the panel's request
    assert drawn and int(drawn.group(1)) > 0, text
    assert "'requests': 1, 'errors': 0" in text  # the panel's request, counted for 1.1.0
    assert "rolled back to 1.0.0: the endpoint answers as version 1.0.0; 1.1.0 is inactive" in text
    assert "deployments left: 0" in text
    assert _widget_views(nb) >= 1  # the deployment panel
    assert mleval.Workspace.open(kernel_on_session_ray).deployments.list() == []


def test_job_monitor_follows_a_real_inference_job(ray_workspace):
    """The widget's background thread keeps up with a Ray job's row until it ends (no notebook needed)."""
    import threading

    from tests.unit.conftest import image_bytes
    from mleval_widgets import JobMonitor

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
