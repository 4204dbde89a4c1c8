"""Every validation rule and state transition of the data model, tried with a bad value."""

from __future__ import annotations

import pytest

from mleval.catalog import rules
from mleval.catalog.catalog import Catalog, new_id, utc_now
from mleval.core.errors import TransitionError, ValidationError


@pytest.fixture
def catalog(tmp_path):
    catalog = Catalog(tmp_path / "catalog.duckdb")
    yield catalog
    catalog.close()


@pytest.fixture
def ids(catalog):
    """One image (100x50), one model, one dataset, as parents for the other entities."""
    now = utc_now()
    image_id, model_id, dataset_id = new_id(), new_id(), new_id()
    catalog.insert("images", [image_row(id=image_id, sha256="s0")])
    catalog.insert("models", [model_row(id=model_id)])
    catalog.insert("datasets", [{"id": dataset_id, "name": "d", "created_at": now, "updated_at": now}])
    return {"image": image_id, "model": model_id, "dataset": dataset_id}


def image_row(**changes):
    row = {"id": new_id(), "filename": "a.png", "file_path": "sha256/aa/bb", "sha256": new_id(), "file_size": 10,
           "format": "PNG", "width": 100, "height": 50, "dataset_split": "train", "upload_timestamp": utc_now()}
    return {**row, **changes}


def model_row(**changes):
    now = utc_now()
    row = {"id": new_id(), "name": "yolo11n", "type": "detection", "variant": "nano", "version": "1",
           "framework": "YOLO11", "model_path": "zoo:yolo11n", "training_status": "pre-trained",
           "created_at": now, "updated_at": now}
    return {**row, **changes}


def annotation_row(ids, **changes):
    now = utc_now()
    row = {"id": new_id(), "image_id": ids["image"], "bounding_boxes": [[0, 0, 10, 10]], "class_labels": ["cat"],
           "creation_method": "user", "review_state": "draft", "created_at": now, "updated_at": now}
    return {**row, **changes}


def training_job_row(ids, **changes):
    row = {"id": new_id(), "base_model_id": ids["model"], "dataset_id": ids["dataset"], "status": "queued",
           "hyperparameters": {"epochs": 1, "batch_size": 2, "learning_rate": 0.01}, "created_at": utc_now()}
    return {**row, **changes}


def inference_job_row(ids, **changes):
    row = {"id": new_id(), "model_id": ids["model"], "target_images": [ids["image"]], "status": "queued",
           "created_at": utc_now()}
    return {**row, **changes}


def deployment_row(ids, **changes):
    now = utc_now()
    row = {"id": new_id(), "name": "det", "model_id": ids["model"], "endpoint_url": "http://127.0.0.1:8000/det/v1",
           "version": "1.0.0", "status": "deploying", "configuration": {"replicas": 1, "max_batch_size": 8},
           "created_at": now, "updated_at": now}
    return {**row, **changes}


def metric_row(ids, **changes):
    row = {"model_id": ids["model"], "metric_type": "precision", "metric_value": 0.5, "threshold": 0.5,
           "evaluation_timestamp": utc_now()}
    return {**row, **changes}


BAD_ROWS = [
    ("images", image_row, {"filename": " "}, "image.filename_not_empty"),
    ("images", image_row, {"file_size": 0}, "image.file_size_positive"),
    ("images", image_row, {"format": "PSD"}, "image.format_supported"),
    ("images", image_row, {"width": 0}, "image.dimensions_positive"),
    ("images", image_row, {"height": -3}, "image.dimensions_positive"),
    ("images", image_row, {"dataset_split": "val"}, "image.dataset_split_valid"),
    ("annotations", annotation_row, {"bounding_boxes": None, "segments": None}, "annotation.geometry_present"),
    ("annotations", annotation_row, {"class_labels": [], "bounding_boxes": []}, "annotation.class_labels_not_empty"),
    ("annotations", annotation_row, {"class_labels": [""]}, "annotation.class_labels_named"),
    ("annotations", annotation_row, {"confidence_scores": [0.1, 0.2]}, "annotation.confidence_scores_length"),
    ("annotations", annotation_row, {"bounding_boxes": [[0, 0, 1, 1], [0, 0, 2, 2]]},
     "annotation.bounding_boxes_length"),
    ("annotations", annotation_row, {"segments": [None, None]}, "annotation.segments_length"),
    ("annotations", annotation_row, {"creation_method": "robot"}, "annotation.creation_method_valid"),
    ("annotations", annotation_row, {"creation_method": "model", "review_state": "generated"},
     "annotation.model_id_required"),
    ("annotations", annotation_row, {"review_state": "accepted"}, "annotation.review_state_matches_method"),
    ("annotations", annotation_row, {"image_id": "00000000-0000-0000-0000-000000000000"},
     "annotation.image_exists"),
    ("annotations", annotation_row, {"bounding_boxes": [[0, 0, 101, 10]]}, "annotation.box_inside_image"),
    ("annotations", annotation_row, {"bounding_boxes": [[5, 5, 5, 9]]}, "annotation.box_inside_image"),
    ("annotations", annotation_row, {"bounding_boxes": [[-1, 0, 5, 9]]}, "annotation.box_inside_image"),
    ("models", model_row, {"name": ""}, "model.name_not_empty"),
    ("models", model_row, {"type": "classification"}, "model.type_valid"),
    ("models", model_row, {"framework": "YOLOv5"}, "model.framework_supported"),
    ("models", model_row, {"training_status": "done"}, "model.training_status_valid"),
    ("models", model_row, {"variant": ""}, "model.variant_not_empty"),
    ("models", model_row, {"version": ""}, "model.version_not_empty"),
    ("models", model_row, {"version": "2"}, "model.name_unique_within_type_and_variant"),
    ("models", model_row, {"variant": "small"}, "model.name_version_unique"),
    ("datasets", lambda: {"id": new_id(), "name": "", "created_at": utc_now(), "updated_at": utc_now()}, {},
     "dataset.name_not_empty"),
    ("datasets", lambda: {"id": new_id(), "name": "d", "created_at": utc_now(), "updated_at": utc_now()}, {},
     "dataset.name_unique"),
    ("training_jobs", training_job_row, {"progress_percentage": 100.5}, "training_job.progress_range"),
    ("training_jobs", training_job_row, {"status": "paused"}, "training_job.status_valid"),
    ("training_jobs", training_job_row, {"status": "completed"}, "training_job.result_model_required"),
    ("training_jobs", training_job_row, {"hyperparameters": {"epochs": 3}}, "training_job.hyperparameters_required"),
    ("training_jobs", training_job_row, {"base_model_id": new_id()}, "training_job.base_model_exists"),
    ("training_jobs", training_job_row, {"dataset_id": new_id()}, "training_job.dataset_exists"),
    ("inference_jobs", inference_job_row, {"target_images": []}, "inference_job.target_images_not_empty"),
    ("inference_jobs", inference_job_row, {"progress_percentage": -1.0}, "inference_job.progress_range"),
    ("inference_jobs", inference_job_row, {"status": "done"}, "inference_job.status_valid"),
    ("inference_jobs", inference_job_row, {"model_id": new_id()}, "inference_job.model_exists"),
    ("inference_jobs", inference_job_row, {"target_images": [new_id()]}, "inference_job.target_images_exist"),
    ("deployments", deployment_row, {"endpoint_url": "not a url"}, "deployment.endpoint_url_valid"),
    ("deployments", deployment_row, {"version": "1.0"}, "deployment.version_semver"),
    ("deployments", deployment_row, {"status": "running"}, "deployment.status_valid"),
    ("deployments", deployment_row, {"configuration": {"replicas": 1}}, "deployment.configuration_required"),
    ("deployments", deployment_row, {"model_id": new_id()}, "deployment.model_exists"),
]


@pytest.mark.parametrize(("table", "factory", "changes", "rule"), BAD_ROWS, ids=[r[3] + "-" + str(r[2])[:30]
                                                                                  for r in BAD_ROWS])
def test_bad_row_is_refused_naming_its_rule(catalog, ids, table, factory, changes, rule):
    try:
        row = factory(ids, **changes)
    except TypeError:
        row = {**factory(), **changes}
    with pytest.raises(ValidationError) as raised:
        catalog.insert(table, [row])
    assert raised.value.rule == rule
    assert f"[{rule}]" in str(raised.value)
    assert catalog.query(f"SELECT count(*) AS n FROM {table} WHERE id = ?", [row["id"]]).column("n")[0].as_py() == 0


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"metric_type": "accuracy"}, "performance_metric.metric_type_supported"),
        ({"metric_value": -0.1}, "performance_metric.value_non_negative"),
        ({"threshold": 1.2}, "performance_metric.threshold_range"),
        ({"metric_type": "mAP", "threshold": None}, "performance_metric.map_threshold_required"),
        ({"model_id": "00000000-0000-0000-0000-000000000000"}, "performance_metric.model_exists"),
    ],
)
def test_bad_metric_is_refused_naming_its_rule(catalog, ids, changes, rule):
    with pytest.raises(ValidationError) as raised:
        catalog.append_rows("performance_metrics", [metric_row(ids, **changes)])
    assert raised.value.rule == rule
    assert catalog.sql_readonly("SELECT count(*) AS n FROM performance_metrics").column("n")[0].as_py() == 0


def test_good_rows_of_every_entity_are_accepted(catalog, ids):
    catalog.insert("annotations", [annotation_row(ids)])
    catalog.insert("training_jobs", [training_job_row(ids)])
    catalog.insert("inference_jobs", [inference_job_row(ids)])
    catalog.insert("deployments", [deployment_row(ids)])
    catalog.append_rows("performance_metrics", [metric_row(ids), metric_row(ids, metric_type="mAP")])
    counts = catalog.sql_readonly(
        "SELECT (SELECT count(*) FROM annotations) a, (SELECT count(*) FROM training_jobs) t, "
        "(SELECT count(*) FROM inference_jobs) i, (SELECT count(*) FROM deployments) d, "
        "(SELECT count(*) FROM performance_metrics) m"
    ).to_pylist()[0]
    assert counts == {"a": 1, "t": 1, "i": 1, "d": 1, "m": 2}


def test_a_batch_with_one_bad_row_inserts_nothing(catalog, ids):
    rows = [annotation_row(ids) for _ in range(5)] + [annotation_row(ids, bounding_boxes=[[0, 0, 200, 10]])]
    with pytest.raises(ValidationError, match=r"row 5: .*box #0 = \[0.0, 0.0, 200.0, 10.0\] on an image of 100x50"):
        catalog.insert("annotations", rows)
    assert catalog.query("SELECT count(*) AS n FROM annotations").column("n")[0].as_py() == 0


def test_a_taken_key_is_refused_naming_the_entity_and_nothing_is_inserted(catalog, ids):
    with pytest.raises(ValidationError, match=r"\[image.unique\] .*sha256: s0.* \(that image exists already\)"):
        catalog.insert("images", [image_row(), image_row(sha256="s0")])
    with pytest.raises(ValidationError, match=r"\[image.unique\] .*primary key"):
        catalog.insert("images", [image_row(id=ids["image"])])
    assert catalog.query("SELECT count(*) AS n FROM images").column("n")[0].as_py() == 1


def test_metrics_are_partitioned_by_month(catalog, ids, tmp_path):
    from datetime import datetime, timezone

    catalog.append_rows("performance_metrics", [
        metric_row(ids, evaluation_timestamp=datetime(2026, 10, 3, tzinfo=timezone.utc)),
        metric_row(ids, evaluation_timestamp=datetime(2026, 11, 3, tzinfo=timezone.utc)),
    ])
    months = sorted(p.name for p in (tmp_path / "tables" / "performance_metrics").iterdir())
    assert months == ["month=2026-10", "month=2026-11"]


# --- state transitions -------------------------------------------------------------------

def _all_pairs():
    for entity, (_, graph) in rules.TRANSITIONS.items():
        for current in graph:
            for requested in graph:
                yield entity, str(current), str(requested), requested in graph[current]


@pytest.mark.parametrize(("entity", "current", "requested", "allowed"), list(_all_pairs()))
def test_transition_table(entity, current, requested, allowed):
    if allowed:
        rules.check_transition(entity, current, requested)
    else:
        with pytest.raises(TransitionError) as raised:
            rules.check_transition(entity, current, requested)
        assert raised.value.rule.endswith("_transition")
        assert current in str(raised.value) and requested in str(raised.value)


def test_data_model_transitions_are_the_documented_ones():
    graph = {k: tuple(map(str, v)) for k, v in rules.TRANSITIONS["training_job"][1].items()}
    assert graph == {"queued": ("running", "cancelled"), "running": ("completed", "failed", "cancelled"),
                     "completed": (), "failed": (), "cancelled": ()}
    annotation = {k: tuple(map(str, v)) for k, v in rules.TRANSITIONS["annotation"][1].items()}
    assert annotation["draft"] == ("validated",) and annotation["reviewed"] == ("accepted", "rejected")
    deployment = {k: tuple(map(str, v)) for k, v in rules.TRANSITIONS["deployment"][1].items()}
    assert set(deployment["active"]) == {"inactive", "deploying"} and "active" in deployment["inactive"]


def test_update_enforces_transitions_and_rules(catalog, ids):
    job = training_job_row(ids)
    catalog.insert("training_jobs", [job])
    catalog.update("training_jobs", job["id"], {"status": "running", "progress_percentage": 40.0})
    with pytest.raises(TransitionError):
        catalog.update("training_jobs", job["id"], {"status": "queued"})
    with pytest.raises(ValidationError) as raised:
        catalog.update("training_jobs", job["id"], {"status": "completed"})
    assert raised.value.rule == "training_job.result_model_required"
    with pytest.raises(ValidationError) as raised:
        catalog.update("training_jobs", job["id"], {"progress_percentage": 140.0})
    assert raised.value.rule == "training_job.progress_range"
    catalog.update("training_jobs", job["id"], {"status": "completed", "result_model_id": ids["model"]})
    assert catalog.get("training_jobs", job["id"])["status"] == "completed"


def test_model_status_transitions(catalog, ids):
    catalog.update("models", ids["model"], {"training_status": "trained"})
    with pytest.raises(TransitionError):
        catalog.update("models", ids["model"], {"training_status": "training"})


def test_dataset_must_hold_images_before_use():
    with pytest.raises(ValidationError) as raised:
        rules.require_dataset_not_empty("empty", 0, 0, 0)
    assert raised.value.rule == "dataset.split_count_positive"
    rules.require_dataset_not_empty("ok", 0, 0, 1)


def test_a_referenced_record_is_not_deleted_and_nothing_is_lost(catalog, ids):
    catalog.link_dataset_images(ids["dataset"], [ids["image"]])
    catalog.insert("training_jobs", [training_job_row(ids)])
    with pytest.raises(ValidationError) as raised:
        catalog.delete("datasets", [ids["dataset"]])
    assert raised.value.rule == "dataset.still_referenced" and "training_jobs" in str(raised.value)
    assert catalog.get("datasets", ids["dataset"])["train_count"] == 1  # its image links are intact
    with pytest.raises(ValidationError, match="model.still_referenced"):
        catalog.delete("models", [ids["model"]])
