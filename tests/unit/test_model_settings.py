"""A model's own settings (imgsz, classes, task) are known, recorded and used by default; classes
must match the dataset's; dataset snapshots; lineage; job results; progress bars."""

from __future__ import annotations

import pytest
import torch

from mleval.catalog.catalog import new_id, utc_now
from mleval.core.errors import ValidationError
from mleval.jobs.handle import JobCancelledError, JobFailedError, JobHandle
from tests.unit.conftest import image_bytes


def _checkpoint(path, *, imgsz: int | None, names: dict[int, str]):
    """A checkpoint as ultralytics' trainer writes it (``train_args`` with imgsz), or without them."""
    from mleval.jobs.training.loop import build_model, save_ultralytics_checkpoint, ultralytics_args

    hp = {"epochs": 1, "batch_size": 2, "learning_rate": 0.01, "imgsz": imgsz or 640, "optimizer": "AdamW",
          "weight_decay": 0.0, "warmup_epochs": 0.0, "warmup_bias_lr": 0.0, "mosaic": 0.0, "fliplr": 0.0,
          "seed": 0, "patience": 5, "close_mosaic": 0}
    args = ultralytics_args(hp)
    model = build_model("yolo11n.yaml", names, args)
    if imgsz is None:
        torch.save({"model": model}, path)
    else:
        save_ultralytics_checkpoint(model, str(path), args, {"fitness": 0.0})
    return path


def test_zoo_models_carry_their_published_settings(ws):
    detector, sam = ws.models.get("yolo11n"), ws.models.get("sam2.1_t")
    assert (detector.imgsz, detector.task, detector.settings_source) == (640, "detect", "zoo")
    assert len(detector.classes) == 80 and detector.classes[:3] == ["person", "bicycle", "car"]
    assert (sam.imgsz, sam.task, sam.classes) == (1024, "promptable", None) and sam.is_promptable
    assert ws.models.get("yolo11n-seg").task == "segment"
    assert "imgsz" in detector._repr_html_() and "640" in detector._repr_html_()


def test_a_registered_checkpoint_brings_its_training_size_and_names(ws, tmp_path):
    path = _checkpoint(tmp_path / "best.pt", imgsz=160, names={0: "bolt", 1: "nut"})
    record = ws.models.register("parts", path, framework="YOLO11", variant="nano")
    assert (record.imgsz, record.classes, record.task, record.settings_source) == (160, ["bolt", "nut"], "detect",
                                                                                   "checkpoint")
    loaded = ws.models.load(record)
    assert loaded.predictor.imgsz == 160 and loaded.predictor.class_names == ("bolt", "nut")
    assert ws.models.load(record, imgsz=320).predictor.imgsz == 320  # an explicit size overrides

    bare = ws.models.register("bare", _checkpoint(tmp_path / "bare.pt", imgsz=None, names={0: "bolt"}),
                              framework="YOLO11", variant="nano")
    assert (bare.imgsz, bare.classes, bare.settings_source) == (640, ["bolt"], "assumed")


def test_an_unreadable_weights_file_is_refused_at_registration(ws, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValidationError, match=r"\[model.weights_readable\].*junk.pt"):
        ws.models.register("junk", junk, framework="YOLO11", variant="nano")
    assert not ws.sql("SELECT * FROM models WHERE name = 'junk'").num_rows


def test_imgsz_out_of_range_names_the_rule(ws):
    with pytest.raises(ValidationError, match=r"\[model.imgsz_range\].*got 7"):
        ws.models.load("yolo11n", imgsz=7)


@pytest.fixture
def labelled(ws):
    report = ws.images.upload([(f"{i}.png", image_bytes(size=(100, 80), seed=i)) for i in range(4)], split="test",
                              progress=False)
    images = sorted(report.succeeded, key=lambda r: r.filename)
    ws.datasets.create("widgets", images=images)
    annotations = [ws.annotations.add(image, labels=["widget"], boxes_xyxy=[[10, 10, 40, 40]]) for image in images]
    return images, annotations


def test_a_model_that_does_not_know_the_datasets_classes_is_refused(ws, labelled):
    with pytest.raises(ValidationError, match=r"\[evaluation.classes_match\].*'yolo11n'.*\['widget'\].*person, "
                                              r"bicycle.*class_map="):
        ws.evaluate("yolo11n", "widgets", progress=False)
    assert not ws.sql("SELECT * FROM evaluation_runs").num_rows


def test_snapshot_ids_follow_the_content(ws, labelled):
    images, annotations = labelled
    first = ws.datasets.snapshot("widgets", note="before", progress=False)
    again = ws.datasets.snapshot("widgets", progress=False)
    assert again.id == first.id and again.note == "before"  # unchanged content: the same snapshot
    assert (first.images, first.test_count, first.annotations, first.objects, first.revisions) == (4, 4, 4, 4, 4)
    assert first.classes == ["widget"]

    ws.annotations.update(annotations[0].id, boxes_xyxy=[[12, 10, 40, 40]], revision=1)
    edited = ws.datasets.snapshot("widgets", progress=False)
    assert edited.id != first.id and edited.revisions == 5
    ws.images.assign([images[0]], "train")
    moved = ws.datasets.snapshot("widgets", progress=False)
    assert moved.id not in (first.id, edited.id) and (moved.train_count, moved.test_count) == (1, 3)

    members, frozen = ws.datasets.snapshot_tables(first)
    assert sorted(members.column("image_id").to_pylist()) == sorted(i.id for i in images)
    assert set(members.column("split").to_pylist()) == {"test"}
    assert frozen.column("revision").to_pylist() == [1, 1, 1, 1]  # the revisions as they were
    assert [s.id for s in ws.datasets.snapshots("widgets")][0] == moved.id


def _job_row(ws, labelled, status: str, logs: str) -> str:
    images, _ = labelled
    job_id, now = new_id(), utc_now()
    ws.catalog.insert("inference_jobs", [{
        "id": job_id, "model_id": ws.models.get("yolo11n").id, "target_images": [i.id for i in images],
        "status": status, "progress_percentage": 40.0, "created_at": now, "execution_logs": logs}])
    return job_id


def test_a_failed_job_raises_its_cause_and_last_log_lines(ws, labelled):
    logs = "01:00:00 8 images, batch size 8, 1 predictor actor(s)\n01:00:03 failed: RuntimeError: out of memory\n"
    job = JobHandle(ws, "inference_jobs", _job_row(ws, labelled, "failed", logs))
    with pytest.raises(JobFailedError, match=r"failed: RuntimeError: out of memory.*Last log lines") as caught:
        job.result(progress=False)
    assert caught.value.cause == "RuntimeError: out of memory" and "8 images" in caught.value.log_tail

    cancelled = JobHandle(ws, "inference_jobs", _job_row(ws, labelled, "cancelled", "cancelled by the user\n"))
    with pytest.raises(JobCancelledError, match="was cancelled"):
        cancelled.result(progress=False)
    assert "inference job" in cancelled._repr_html_() and "cancelled" in cancelled._repr_html_()


def test_progress_bars_show_and_progress_false_silences_them(ws, capsys, tmp_path):
    ws.images.upload([("a.png", image_bytes(seed=1)), ("b.png", image_bytes(seed=2))], split="train",
                     dataset=ws.datasets.create("d"))
    shown = capsys.readouterr().err
    assert "upload to train" in shown and "2/2" in shown
    ws.images.upload([("c.png", image_bytes(seed=3))], split="train", progress=False)
    ws.datasets.snapshot("d", progress=False)
    ws.export(dataset="d", format="coco", path=tmp_path / "quiet.zip", progress=False)
    assert capsys.readouterr().err == ""
    calls = []
    ws.export(dataset="d", format="yolo", path=tmp_path / "counted", progress=lambda done, total: calls.append(
        (done, total)))
    assert calls[-1] == (2, 2)
    ws.datasets.snapshot("d")
    assert "snapshot of d" in capsys.readouterr().err
    with pytest.raises(ValidationError, match=r"\[progress.option\]"):
        ws.images.upload([("d.png", image_bytes(seed=4))], progress="yes")


def test_lineage_of_an_evaluation_reaches_its_snapshot(ws, labelled):
    from tests.unit.conftest import detectors_of
    from tests.unit.test_evaluate_runs import _store_predictions

    images, _ = labelled
    detectors_of(ws, ["widget"], "yolo11n")
    _store_predictions(ws, ws.models.get("yolo11n"), images, {i: [("widget", (10, 10, 40, 40), 0.9)]
                                                              for i in range(4)}, failed=set())
    run = ws.evaluate("yolo11n", "widgets", progress=False)
    assert run.imgsz == 640 and run.summary["mAP50"] == pytest.approx(1.0)
    assert run.dataset_snapshot_id == ws.datasets.snapshot("widgets", progress=False).id
    lineage = ws.lineage(run)
    table = lineage.to_arrow()
    assert {"kind", "id", "name"} <= set(table.column_names)
    assert table.column("kind").to_pylist()[:2] == ["evaluation_run", "model"]
    assert {"dataset_snapshot", "annotations", "inference_job"} <= set(lineage.kinds())
    assert "4 ground-truth annotations" in lineage._repr_html_()
    assert ws.lineage(run.key).kinds() == lineage.kinds()  # by key, too
    assert ws.evaluations.list().column("imgsz").to_pylist() == [640]
    leaderboard = ws.compare(["yolo11n"], "widgets", progress=False).leaderboard
    assert leaderboard.column("imgsz").to_pylist() == [640] and leaderboard.column("key").to_pylist() == [run.key]
    assert ws.compare([run], "widgets", progress=False).runs == (run,)  # a run is compared as it is
