"""The notebook widgets driven from Python, as the browser would: set traits, press buttons, read
what the widget shows and what the workspace stored. No browser, no Ray, no model weights."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest

from mleval.catalog.catalog import new_id, utc_now
from mleval.jobs.handle import JobHandle
from tests.unit.conftest import detectors_of, image_bytes
from mleval_widgets import Annotator, Gallery, JobMonitor, Uploader
from mleval_widgets.annotator import bbox_to_xyxy

CLASSES = ["circle", "square"]


def _press(button) -> None:
    button.click()  # runs the on_click handlers, as a click in the browser does


def _model_annotation(ws, image, *, boxes=([10, 10, 30, 30],), labels=("circle",), model="yolo11n"):
    return ws.annotations.add(image, labels=list(labels), boxes_xyxy=[list(b) for b in boxes],
                              creation_method="model", model_id=ws.models.get(model).id)


# -- Annotator ---------------------------------------------------------------------------------
def test_drawn_boxes_saved_as_a_user_annotation_in_pixel_xyxy(ws, uploaded):
    annotator = Annotator(ws, uploaded, classes=CLASSES, user_tag="ann")
    annotator.bbox.bboxes = [{"x": 5, "y": 6, "width": 20, "height": 10, "label": "circle"},
                             {"x": 50.5, "y": 40, "width": 30, "height": 25, "label": "square"}]
    _press(annotator.save_button)

    [stored] = ws.annotations.list(image=uploaded[0])
    assert stored.creation_method == "user" and stored.user_tag == "ann" and stored.review_state == "draft"
    assert stored.class_labels == ["circle", "square"]
    assert stored.boxes_xyxy == [[5, 6, 25, 16], [50.5, 40, 80.5, 65]]
    assert "Saved 2 boxes (revision 1)" in annotator.message.value


def test_second_save_updates_the_same_annotation_at_its_revision(ws, uploaded):
    annotator = Annotator(ws, uploaded, classes=CLASSES, user_tag="ann")
    annotator.bbox.bboxes = [{"x": 1, "y": 1, "width": 5, "height": 5, "label": "circle"}]
    first = annotator.save()
    annotator.bbox.bboxes = [{"x": 2, "y": 2, "width": 5, "height": 5, "label": "square"}]
    second = annotator.save()

    assert second.id == first.id and second.revision == first.revision + 1
    [stored] = ws.annotations.list(image=uploaded[0])
    assert stored.class_labels == ["square"] and stored.boxes_xyxy == [[2, 2, 7, 7]]


def test_a_stale_save_shows_the_conflict_and_keeps_the_other_edit(ws, uploaded):
    original = ws.annotations.add(uploaded[0], labels=["circle"], boxes_xyxy=[[0, 0, 10, 10]], user_tag="bob")
    annotator = Annotator(ws, uploaded, classes=CLASSES, user_tag="ann")
    assert annotator.bbox.bboxes == [{"x": 0, "y": 0, "width": 10, "height": 10, "label": "circle"}]
    ws.annotations.update(original.id, revision=original.revision, labels=["square"],
                          boxes_xyxy=[[1, 1, 9, 9]], user_tag="bob")  # bob saves first

    annotator.bbox.bboxes = [{"x": 20, "y": 20, "width": 10, "height": 10, "label": "circle"}]
    _press(annotator.save_button)

    assert annotator.conflict is not None
    assert "Not saved" in annotator.message.value and "bob" in annotator.message.value
    stored = ws.annotations.get(original.id)
    assert stored.class_labels == ["square"] and stored.boxes_xyxy == [[1, 1, 9, 9]] and stored.revision == 2
    assert annotator.bbox.bboxes[0]["x"] == 20  # the user's own edit is still in the drawing

    _press(annotator.reload_button)  # theirs, then saving again works
    assert annotator.bbox.bboxes == [{"x": 1, "y": 1, "width": 8, "height": 8, "label": "square"}]
    assert annotator.save().revision == 3


def test_a_rotated_photo_is_drawn_upright_in_the_catalog_frame(ws):
    import io

    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated a quarter turn: upright it is portrait
    rotated = image_bytes("JPEG", size=(100, 80), exif=exif.tobytes())
    [record] = ws.images.upload([("phone.jpg", rotated)]).succeeded
    annotator = Annotator(ws, [record], classes=CLASSES, user_tag="ann")
    gallery = Gallery(ws, thumbnail_px=50)
    assert Image.open(io.BytesIO(annotator.bbox.image_bytes)).size == (record.width, record.height) == (80, 100)
    assert Image.open(io.BytesIO(bytes(gallery.grid.children[0].children[0].value))).size == (40, 50)


def test_unlabelled_box_is_refused_with_a_message(ws, uploaded):
    annotator = Annotator(ws, uploaded, classes=CLASSES, user_tag="ann")
    annotator.bbox.bboxes = [{"x": 1, "y": 1, "width": 5, "height": 5, "label": ""}]
    assert annotator.save() is None
    assert "no class" in annotator.message.value
    assert ws.annotations.list(image=uploaded[0]) == []


def test_boxes_dragged_past_the_edge_are_clipped_to_the_image():
    assert bbox_to_xyxy({"x": -5, "y": 70, "width": 120, "height": 20}, width=100, height=80) == [0, 70, 100, 80]
    assert bbox_to_xyxy({"x": 30, "y": 30, "width": -10, "height": -5}, width=100, height=80) == [20, 25, 30, 30]


def test_navigation_shows_each_image_with_its_annotation(ws, uploaded):
    ws.annotations.add(uploaded[1], labels=["square"], boxes_xyxy=[[2, 3, 12, 13]], user_tag="bob")
    annotator = Annotator(ws, uploaded, classes=CLASSES, user_tag="ann")
    first_bytes = annotator.bbox.image_bytes
    assert annotator.previous_button.disabled and annotator.bbox.bboxes == []

    _press(annotator.next_button)
    assert annotator.index == 1 and annotator.bbox.image_bytes != first_bytes
    assert annotator.bbox.bboxes == [{"x": 2, "y": 3, "width": 10, "height": 10, "label": "square"}]
    assert "img1.png" in annotator.title.value

    annotator.bbox.bboxes = [{"x": 1, "y": 1, "width": 5, "height": 5, "label": "circle"}]
    annotator.bbox._handle_custom_msg({"type": "submit"}, [])  # Enter in the drawing: save, then next
    assert annotator.index == 2
    assert ws.annotations.list(image=uploaded[1])[-1].class_labels == ["circle"]
    annotator.bbox._handle_custom_msg({"type": "skip"}, [])  # Space: next without saving
    assert annotator.index == 3 and annotator.next_button.disabled

    _press(annotator.previous_button)
    assert annotator.index == 2
    annotator.show(uploaded[0].id)
    assert annotator.index == 0


def test_accept_and_reject_proposals(ws, uploaded):
    kept = _model_annotation(ws, uploaded[0])
    dropped = _model_annotation(ws, uploaded[0], labels=("square",), boxes=([40, 40, 60, 60],))
    annotator = Annotator(ws, uploaded, classes=CLASSES, user_tag="ann")
    assert set(annotator.proposals) == {kept.id, dropped.id}
    assert annotator.preview.layout.display != "none" and annotator.preview.value

    annotator.proposal_list.value = kept.id
    _press(annotator.use_button)  # copied into the drawing, for editing before a save
    assert annotator.bbox.bboxes == [{"x": 10, "y": 10, "width": 20, "height": 20, "label": "circle"}]
    _press(annotator.accept_button)
    assert ws.annotations.get(kept.id).review_state == "accepted"
    assert "accepted" in annotator.message.value
    annotator.proposal_list.value = dropped.id
    _press(annotator.reject_button)
    assert ws.annotations.get(dropped.id).review_state == "rejected"
    assert annotator.proposals == {} and annotator.proposal_list.options == ()
    assert [a.id for a in ws.annotations.list(image=uploaded[0], ground_truth=True)] == [kept.id]


def test_propose_with_model_calls_prelabel_and_lists_the_proposal(ws, uploaded, monkeypatch):
    calls = []

    def fake_prelabel(images, model, *, conf, imgsz=640):
        calls.append(([i.id for i in images], model, conf))
        stored = _model_annotation(ws, images[0], boxes=([5, 5, 25, 25], [30, 30, 50, 50]), labels=("a", "b"))
        return [SimpleNamespace(annotation_id=stored.id, model="yolo11n", detections=[0, 1])]

    monkeypatch.setattr(ws, "prelabel", fake_prelabel)
    annotator = Annotator(ws, uploaded, classes=CLASSES, user_tag="ann", detector="yolo11n", conf=0.3)
    _press(annotator.propose_button)
    assert calls == [([uploaded[0].id], "yolo11n", 0.3)]
    assert annotator.proposal_list.value in annotator.proposals
    assert "proposed 2 boxes" in annotator.message.value


def test_sam2_assist_from_the_selected_box(ws, uploaded, monkeypatch):
    calls = []

    def fake_assist(image, *, model, box, label, user_tag):
        calls.append((image.id, model, box, label, user_tag))
        stored = _model_annotation(ws, image, boxes=(box,), labels=(label,), model="sam2.1_t")
        mask = np.zeros((80, 100), bool)
        mask[10:20, 10:30] = True
        return SimpleNamespace(annotation_id=stored.id, mask=mask, score=0.9)

    monkeypatch.setattr(ws, "assist", fake_assist)
    annotator = Annotator(ws, uploaded, classes=CLASSES, user_tag="ann")
    annotator.bbox.bboxes = [{"x": 10, "y": 10, "width": 20, "height": 10, "label": "square"}]
    assert annotator.assist() is None and "Select a box first" in annotator.message.value

    annotator.bbox.selected_index = 0
    _press(annotator.assist_button)
    assert calls == [(uploaded[0].id, "sam2.1_t", [10, 10, 30, 20], "square", "ann")]
    assert "SAM 2 mask proposed" in annotator.message.value
    assert len(annotator.proposals) == 1 and annotator.preview.value


# -- Uploader ----------------------------------------------------------------------------------
def test_uploader_reports_successes_duplicates_and_failures(ws, tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "a.png").write_bytes(image_bytes(seed=1))
    (folder / "broken.png").write_bytes(b"not an image")
    uploader = Uploader(ws)
    uploader.folder.value = str(folder)
    uploader.split.value = "validation"
    uploader.dataset.value = "mine"
    seen = []
    uploader.on_uploaded(seen.append)
    uploader.files.value = ({"name": "b.png", "type": "image/png", "size": 1, "last_modified": utc_now(),
                             "content": memoryview(image_bytes(seed=1))},)  # same bytes as a.png

    _press(uploader.upload_button)

    report = uploader.last_report
    assert (len(report.succeeded), len(report.duplicates), len(report.failed)) == (1, 1, 1)
    html = uploader.report.value
    assert "1 succeeded" in html and "1 duplicates" in html and "1 failed" in html and "broken.png" in html
    assert uploader.progress.value == uploader.progress.max == 3
    assert seen == [report]
    assert [i.dataset_split for i in ws.images.list(dataset="mine")] == ["validation"]


def test_uploader_without_sources_says_so(ws):
    uploader = Uploader(ws)
    assert uploader.upload() is None
    assert "Choose files" in uploader.report.value


# -- Gallery -----------------------------------------------------------------------------------
def test_gallery_pages_and_filters(ws, uploaded):
    ws.images.upload([("v.png", image_bytes(seed=9, size=(100, 80)))], split="validation")
    gallery = Gallery(ws, page_size=3)
    assert [i.filename for i in gallery.images] == ["img0.png", "img1.png", "img2.png"]
    assert gallery.previous_button.disabled and not gallery.next_button.disabled
    assert len(gallery.grid.children) == 3

    _press(gallery.next_button)
    assert [i.filename for i in gallery.images] == ["img3.png", "v.png"] and gallery.next_button.disabled
    assert "page 2" in gallery.page_label.value

    gallery.split.value = "validation"
    assert gallery.page == 0 and [i.filename for i in gallery.images] == ["v.png"]


def test_gallery_with_an_unknown_dataset_names_the_ones_there(ws, uploaded):
    from mleval.core.errors import NotFoundError

    ws.datasets.create("shapes")
    with pytest.raises(NotFoundError, match="shapes"):
        Gallery(ws, dataset="shapez")


def test_gallery_overlays_have_a_legend_and_clicking_selects(ws, uploaded):
    ws.annotations.add(uploaded[0], labels=["circle"], boxes_xyxy=[[10, 10, 40, 40]], user_tag="ann")
    _model_annotation(ws, uploaded[0])
    _model_annotation(ws, uploaded[1], model="yolo11s")
    gallery = Gallery(ws, split="train", page_size=2)
    legend = gallery.legend.value
    assert "ground truth" in legend and "yolo11n" in legend and "yolo11s" in legend
    colours = {gallery._palette.colour(s) for s in ("ground truth", "yolo11n", "yolo11s")}
    assert len(colours) == 3

    plain = Gallery(ws, split="train", page_size=2)
    plain.show_ground_truth.value = plain.show_predictions.value = False
    assert plain.legend.value == ""
    overlaid = gallery.grid.children[0].children[0].value
    assert overlaid != plain.grid.children[0].children[0].value  # boxes drawn only where asked

    selected = []
    gallery.on_select(selected.append)
    _press(gallery.grid.children[1].children[1])
    assert [s.id for s in selected] == [uploaded[1].id]


def test_gallery_selection_opens_the_annotator(ws, uploaded):
    annotator = Annotator(ws, uploaded[:1], classes=CLASSES, user_tag="ann")
    gallery = Gallery(ws, page_size=4)
    gallery.on_select(annotator.show)
    _press(gallery.grid.children[2].children[1])
    assert annotator.image.id == uploaded[2].id


# -- JobMonitor --------------------------------------------------------------------------------
def _inference_job(ws, images, **fields):
    job_id = new_id()
    ws.catalog.insert("inference_jobs", [{
        "id": job_id, "model_id": ws.models.get("yolo11n").id, "target_images": [i.id for i in images],
        "status": "queued", "progress_percentage": 0.0, "created_at": utc_now(), **fields}])
    return JobHandle(ws, "inference_jobs", job_id)


def test_job_monitor_reflects_the_job_row(ws, uploaded):
    handle = _inference_job(ws, uploaded)
    monitor = JobMonitor(handle, auto_start=False, log_lines=2)
    assert monitor.progress.value == 0 and "queued" in monitor.status.value

    ws.catalog.update("inference_jobs", handle.id, {"status": "running", "progress_percentage": 42.0})
    for line in ("batch 1", "batch 2", "batch 3"):
        ws.catalog.append_log("inference_jobs", handle.id, line)
    monitor.refresh()
    assert monitor.progress.value == 42.0 and monitor.progress.description == "42%"
    assert "running" in monitor.status.value
    assert monitor.logs.value.splitlines()[-1].endswith("batch 3") and len(monitor.logs.value.splitlines()) == 2

    _press(monitor.cancel_button)
    assert handle.status == "cancelled" and "cancelled" in monitor.status.value and monitor.cancel_button.disabled
    assert monitor.finished


def test_job_monitor_updates_in_the_background_until_the_job_ends(ws, uploaded):
    import threading

    handle = _inference_job(ws, uploaded)
    monitor = JobMonitor(handle, poll_s=0.01)  # starts its thread: the job is not finished
    ended = threading.Event()
    monitor.progress.observe(lambda change: change["new"] == 100.0 and ended.set(), names="value")
    ws.catalog.update("inference_jobs", handle.id, {"status": "running", "progress_percentage": 50.0})
    ws.catalog.update("inference_jobs", handle.id, {"status": "completed", "progress_percentage": 100.0})
    assert ended.wait(timeout=10)  # an event, not a sleep: returns as soon as the thread saw it
    monitor._thread.join(timeout=10)
    assert not monitor._thread.is_alive() and monitor.finished


def test_closing_the_job_monitor_stops_its_thread(ws, uploaded):
    monitor = JobMonitor(_inference_job(ws, uploaded), poll_s=0.01)
    assert monitor._thread.is_alive()
    monitor.close()
    assert not monitor._thread.is_alive()


def test_job_monitor_plots_training_metrics(ws, uploaded):
    # A training job row as the training driver writes it: per-epoch metrics in its metadata.
    dataset = ws.datasets.create("d", images=uploaded)
    job_id = new_id()
    epochs = [{"epoch": 1, "train/box_loss": 1.5, "mAP50": 0.2, "mAP50_95": 0.1},
              {"epoch": 2, "train/box_loss": 1.1, "mAP50": 0.4, "mAP50_95": 0.2}]
    ws.catalog.insert("training_jobs", [{
        "id": job_id, "base_model_id": ws.models.get("yolo11n").id, "dataset_id": dataset.id, "status": "running",
        "hyperparameters": {"epochs": 2, "batch_size": 2, "learning_rate": 0.01}, "created_at": utc_now(),
        "metadata": {"epochs": epochs}}])
    handle = JobHandle(ws, "training_jobs", job_id)
    assert handle.metrics.column("mAP50").to_pylist() == [0.2, 0.4]
    monitor = JobMonitor(handle, auto_start=False)
    assert bytes(monitor.plot.value).startswith(b"\x89PNG") and monitor.plot.layout.display is None


# -- ComparisonView ----------------------------------------------------------------------------
def _stored_predictions(ws, model, images, detections):
    job_id, now = new_id(), utc_now()
    ws.catalog.insert("inference_jobs", [{
        "id": job_id, "model_id": model.id, "target_images": [i.id for i in images], "status": "completed",
        "progress_percentage": 100.0, "created_at": now, "end_time": now,
        "metadata": {"settings": {"conf": 0.001, "imgsz": 640}}}])
    rows = [{"image_id": image.id, "boxes_xyxy": [list(box) for _, box, _ in dets],
             "class_names": [label for label, _, _ in dets], "scores": [score for _, _, score in dets],
             "masks_rle": None, "preprocess_ms": 1.0, "inference_ms": 10.0, "postprocess_ms": 2.0, "error": None,
             "inference_job_id": job_id, "model_id": model.id} for image, dets in zip(images, detections)]
    ws.catalog.append_rows("predictions", pa.Table.from_pylist(rows))


def test_comparison_view_shows_the_leaderboard_and_figures(ws):
    from mleval_widgets import ComparisonView

    images = sorted(ws.images.upload([(f"{i}.png", image_bytes(size=(100, 80), seed=i)) for i in range(2)],
                                     split="test").succeeded, key=lambda r: r.filename)
    ws.datasets.create("shapes", images=images)
    truth = [[("circle", (10.0, 10.0, 40.0, 40.0))], [("square", (50.0, 20.0, 90.0, 70.0))]]
    for image, objects in zip(images, truth):
        ws.annotations.add(image, labels=[o[0] for o in objects], boxes_xyxy=[o[1] for o in objects])
    detectors_of(ws, ["circle", "square"], "yolo11n", "yolo12n")
    _stored_predictions(ws, ws.models.get("yolo11n"), images, [[(*o, 0.9) for o in objects] for objects in truth])
    _stored_predictions(ws, ws.models.get("yolo12n"), images, [[("square", (12.0, 8.0, 41.0, 44.0), 0.7)],
                                                               [("square", (50.0, 20.0, 90.0, 70.0), 0.8)]])
    comparison = ws.compare(["yolo11n", "yolo12n"], "shapes")

    view = ComparisonView(comparison)
    assert "yolo11n" in view.table.value and "yolo12n" in view.table.value and "<table>" in view.table.value
    assert {"Leaderboard", "PR curves", "Per-class AP", "Confusion: yolo11n"} <= set(view.figures)
    assert len(view.tabs.children) == len(view.figures) and view.message.value == ""
    assert all(bytes(image.value).startswith(b"\x89PNG") for image in view.tabs.children)


# -- DeploymentPanel ---------------------------------------------------------------------------
def _prepared_deployment(ws, name="det", version="1.0.0", **options):
    """A deployment version's catalog row, as ``ws.deploy`` writes it before Serve starts (no Ray here)."""
    from mleval.deploy import DeploymentHandle
    from mleval.deploy.deployments import prepare_version

    return DeploymentHandle(ws, prepare_version(ws, "yolo11n", name=name, version=version, port=8123,
                                                imgsz=64, **options).row_id)


def test_deployment_panel_refuses_a_version_that_is_not_semantic(ws):
    from mleval.core.errors import ValidationError
    from mleval_widgets import DeploymentPanel

    panel = DeploymentPanel(ws)
    assert panel.model.value == "yolo11n" and "sam2.1_t" not in panel.model.options  # SAM 2 cannot be served
    panel.version.value = "1.0"
    _press(panel.deploy_button)
    assert panel._task is None and "MAJOR.MINOR.PATCH" in panel.status.value
    assert ws.deployments.list() == []
    with pytest.raises(ValidationError, match="promptable segmenter"):
        DeploymentPanel(ws, model="sam2.1_t")


def test_deploying_runs_in_the_background_behind_a_status_line(ws, monkeypatch):
    import threading

    from mleval_widgets import DeploymentPanel

    release, calls = threading.Event(), []

    def slow_deploy(model, **options):  # ws.deploy without Serve: it writes the version's row, then waits
        calls.append((model, options))
        assert release.wait(timeout=30)
        handle = _prepared_deployment(ws, name=options["name"], version=options["version"])
        ws.catalog.update("deployments", handle.id, {"status": "active"})
        return handle

    monkeypatch.setattr(ws, "deploy", slow_deploy)
    panel = DeploymentPanel(ws, port=8123, imgsz=64)
    panel.name.value, panel.version.value = "det", "1.2.0"
    _press(panel.deploy_button)  # returns while the deployment is still starting

    assert panel.busy and "deploying yolo11n as det 1.2.0" in panel.status.value
    assert panel.deploy_button.disabled and panel.send_button.disabled and panel.rollback_button.disabled
    assert panel.rollback() is None and "Busy deploying" in panel.status.value  # one action at a time
    release.set()
    handle = panel.wait(timeout_s=30)

    assert calls == [("yolo11n", {"port": 8123, "imgsz": 64, "name": "det", "version": "1.2.0"})]
    assert not panel.busy and not panel.deploy_button.disabled and panel.deployment.id == handle.id
    assert "det 1.2.0 serves at http://127.0.0.1:8123/det" in panel.status.value
    assert "1.2.0" in panel.info.value and "active" in panel.info.value and "/det/predict" in panel.info.value
    assert panel.deployments.options == ("det",) and panel.deployments.value == "det"


def test_a_failed_deploy_is_shown_and_raised_by_wait(ws, monkeypatch):
    from mleval.core.errors import MlevalError
    from mleval_widgets import DeploymentPanel

    def failing_deploy(model, **options):
        raise MlevalError("deployment 'det' version 1.0.0 failed to start: port in use")

    monkeypatch.setattr(ws, "deploy", failing_deploy)
    panel = DeploymentPanel(ws)
    future = panel.deploy()
    with pytest.raises(MlevalError, match="port in use"):
        panel.wait(timeout_s=30)
    assert future.done() and "Failed deploying" in panel.status.value and "port in use" in panel.status.value
    assert not panel.deploy_button.disabled and panel.deployment is None


def test_an_api_key_is_shown_once_and_kept_for_test_requests(ws):
    from mleval.deploy.keys import hash_api_key
    from mleval_widgets import DeploymentPanel

    dep = _prepared_deployment(ws)
    panel = DeploymentPanel(ws, deployment="det")
    assert panel.deployment.id == dep.id and panel.api_key.value == ""
    panel.key_name.value = "alice"
    _press(panel.key_button)

    key = panel.api_key.value
    assert key.startswith("mlv_") and key in panel.new_key.value and "shown only this once" in panel.new_key.value
    stored = str(ws.catalog.get("deployments", dep.id)["metadata"])
    assert key not in stored and hash_api_key(key) in stored
    _press(panel.key_button)  # the same name again is refused; the first key stays
    assert "No key made" in panel.status.value and "alice" in panel.status.value and panel.api_key.value == key
    assert DeploymentPanel(ws, deployment="det").new_key.value == ""  # another panel never sees it


def test_choosing_a_deployment_shows_its_versions(ws):
    from mleval_widgets import DeploymentPanel

    _prepared_deployment(ws, name="a")
    _prepared_deployment(ws, name="b", version="2.0.0")
    panel = DeploymentPanel(ws)
    assert panel.deployment is None and "No deployment yet" in panel.info.value
    assert set(panel.deployments.options) == {"a", "b"}
    panel.deployments.value = "a"
    key = panel.create_api_key()
    panel.deployments.value = "b"
    assert panel.deployment.name == "b" and "<b>b</b> version <b>2.0.0</b>" in panel.info.value
    assert key and panel.api_key.value == "" and key not in panel.new_key.value  # a's key is not b's


def test_a_test_request_needs_a_deployment_and_a_key(ws, uploaded):
    from mleval_widgets import DeploymentPanel

    panel = DeploymentPanel(ws)
    assert panel.image.value == uploaded[0].id  # workspace images are offered as test images
    assert panel.send_test_image() is None and "Deploy a model or pick a deployment" in panel.status.value
    panel.show(_prepared_deployment(ws))
    _press(panel.send_button)
    assert panel._task is None and "needs an API key" in panel.status.value


def test_usage_figures_come_from_the_deployment_metrics(ws):
    from mleval.deploy.stats import DeploymentStats
    from mleval_widgets import DeploymentPanel

    dep = _prepared_deployment(ws)
    panel = DeploymentPanel(ws, deployment=dep)
    _press(panel.usage_button)
    assert "no requests counted yet" in panel.usage.value

    stats = DeploymentStats()  # what the metrics collector persists into the row (read back without Ray)
    for latency_ms in (10.0, 20.0, 30.0):
        stats.add("alice", 200, latency_ms, 1)
    stats.add("alice", 422, 5.0, 0)
    ws.catalog.update("deployments", dep.id, {"performance_monitoring": {"summary": stats.summary(),
                                                                          "stats": stats.to_json()}})
    _press(panel.usage_button)

    assert panel.usage_summary == dep.metrics() and panel.usage_summary["requests"] == 4
    html = panel.usage.value
    assert "<td>total</td><td>4</td><td>1</td><td>3</td>" in html and "key alice" in html
    p50, p95, p99 = (f"{panel.usage_summary[f'latency_p{q}_ms']:.1f}" for q in (50, 95, 99))
    assert f"<td>{p50}</td><td>{p95}</td><td>{p99}</td>" in html and "200: 3" in html and "422: 1" in html


def test_rolling_back_the_first_version_says_there_is_none(ws):
    from mleval.core.errors import MlevalError
    from mleval_widgets import DeploymentPanel

    panel = DeploymentPanel(ws, deployment=_prepared_deployment(ws))
    _press(panel.rollback_button)
    with pytest.raises(MlevalError, match="no previous version"):
        panel.wait(timeout_s=30)
    assert "no previous version to roll back to" in panel.status.value and panel.deployment.version == "1.0.0"


def test_detections_are_drawn_over_the_test_image():
    import io

    from PIL import Image

    from mleval_widgets.deployment_panel import detections_png

    grey = io.BytesIO()
    Image.new("RGB", (100, 80), (128, 128, 128)).save(grey, "PNG")
    body = {"boxes_xyxy": [[10.0, 20.0, 50.0, 60.0]], "class_names": ["circle"], "scores": [0.9]}
    drawn = Image.open(io.BytesIO(detections_png(grey.getvalue(), body, "#ff0000"))).convert("RGB")
    assert drawn.size == (320, 256)  # enlarged 3.2x so a small image's boxes can be seen
    assert drawn.getpixel((32, 128)) == (255, 0, 0) and drawn.getpixel((100, 128)) == (128, 128, 128)
    empty = Image.open(io.BytesIO(detections_png(grey.getvalue(), {**body, "boxes_xyxy": [], "class_names": [],
                                                                   "scores": []}, "#ff0000"))).convert("RGB")
    assert set(empty.getdata()) == {(128, 128, 128)}
