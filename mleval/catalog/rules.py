"""Every validation rule and state transition of the data model, in one place.
(Long on purpose: one file answers "what may be stored", for every writer.)

Row rules are SQL predicates that are true for a *bad* row. They run over staged rows
(an Arrow table registered as ``r``) in one vectorised pass, so checking a million rows
costs about as much as one scan; a single row goes through the same path. The first
violation raises :class:`ValidationError` naming the rule, the row and its values.
"""

from __future__ import annotations

import re

from dataclasses import dataclass

from mleval.core.enums import (
    CreationMethod,
    DatasetSplit,
    DeploymentStatus,
    Framework,
    ImageFormat,
    JobStatus,
    ModelTask,
    ModelType,
    ReviewState,
    TrainingStatus,
)
from mleval.core.errors import TransitionError, ValidationError


@dataclass(frozen=True)
class RowRule:
    name: str
    violation: str
    message: str
    show: tuple[str, ...] = ()
    detail: str | None = None  # SQL evaluated on the bad row, appended to the message


def _in(enum: type) -> str:
    return "(" + ", ".join(f"'{member.value}'" for member in enum) + ")"


def _values(enum: type) -> str:
    return ", ".join(member.value for member in enum)


SUPPORTED_METRICS = (
    "mAP",
    "mAP50",
    "mAP75",
    "mAP50_95",
    "AP",
    "IoU",
    "precision",
    "recall",
    "F1",
    "execution_time",
    "images_per_second",
)
MAP_METRICS = ("mAP", "AP")
REQUIRED_HYPERPARAMETERS = ("epochs", "batch_size", "learning_rate")
REQUIRED_DEPLOYMENT_CONFIGURATION = ("replicas", "max_batch_size")
SEMVER_REGEX = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
URL_REGEX = r"^https?://[^/\s]+(/\S*)?$"

_BAD_BOX = (
    "lambda b: b[1] < 0 OR b[2] < 0 OR b[3] > i.width OR b[4] > i.height "
    "OR b[3] <= b[1] OR b[4] <= b[2] OR isnan(b[1] + b[2] + b[3] + b[4])"
)

# A polygon ring (JSON) that is not an array of an even number (>= 6) of finite numbers.
_BAD_RING = (
    "lambda ring: json_type(ring) <> 'ARRAY' OR json_array_length(ring) < 6 OR json_array_length(ring) % 2 = 1 "
    "OR TRY_CAST(ring AS DOUBLE[]) IS NULL "
    "OR len(list_filter(TRY_CAST(ring AS DOUBLE[]), lambda v: v IS NULL OR isnan(v) OR isinf(v))) > 0"
)

ROW_RULES: dict[str, tuple[RowRule, ...]] = {
    "images": (
        RowRule("image.filename_not_empty", "filename IS NULL OR length(trim(filename)) = 0",
                "filename must not be empty.", ("filename",)),
        RowRule("image.file_size_positive", "file_size IS NULL OR file_size <= 0",
                "file_size must be positive (an empty file is not an image).", ("filename", "file_size")),
        RowRule("image.format_supported", f"format IS NULL OR format NOT IN {_in(ImageFormat)}",
                f"format must be a supported image type: {_values(ImageFormat)}.", ("filename", "format")),
        RowRule("image.dimensions_positive", "width IS NULL OR height IS NULL OR width <= 0 OR height <= 0",
                "width and height must be positive.", ("filename", "width", "height")),
        RowRule("image.dataset_split_valid", f"dataset_split IS NULL OR dataset_split NOT IN {_in(DatasetSplit)}",
                f"dataset_split must be one of: {_values(DatasetSplit)}.", ("filename", "dataset_split")),
    ),
    "annotations": (
        RowRule("annotation.geometry_present", "bounding_boxes IS NULL AND segments IS NULL",
                "either bounding_boxes or segments must be present.", ("image_id",)),
        RowRule("annotation.class_labels_not_empty", "class_labels IS NULL OR len(class_labels) = 0",
                "class_labels must not be empty: give one label per object.", ("image_id", "class_labels")),
        RowRule("annotation.class_labels_named",
                "len(list_filter(class_labels, lambda c: c IS NULL OR length(trim(c)) = 0)) > 0",
                "every class label must be a non-empty name.", ("image_id", "class_labels")),
        RowRule("annotation.confidence_scores_length",
                "confidence_scores IS NOT NULL AND len(confidence_scores) <> len(class_labels)",
                "confidence_scores must have one score per class label.",
                ("image_id", "class_labels", "confidence_scores")),
        RowRule("annotation.bounding_boxes_length",
                "bounding_boxes IS NOT NULL AND len(bounding_boxes) <> len(class_labels)",
                "bounding_boxes must have one box per class label.", ("image_id", "class_labels", "bounding_boxes")),
        RowRule("annotation.segments_length",
                "segments IS NOT NULL AND json_array_length(segments) <> len(class_labels)",
                "segments must be a JSON array with one entry per class label.", ("image_id", "class_labels")),
        RowRule("annotation.object_geometry",
                "bounding_boxes IS NULL AND segments IS NOT NULL AND len(list_filter(json_extract(segments, '$[*]'), "
                "lambda s: json_type(s) = 'NULL' OR (json_extract(s, '$.rle') IS NULL AND "
                "coalesce(json_array_length(json_extract(s, '$.polygons')), 0) = 0))) > 0",
                "every object needs a box or a segment (a polygon or a mask): give boxes_xyxy, or a segment for "
                "each object.", ("image_id", "class_labels")),
        # The rule every export applies (COCO, YOLO and VOC need real polygons): refused on the way in.
        RowRule("annotation.segment",
                f"segments IS NOT NULL AND len(list_filter(json_extract(segments, '$[*].polygons[*]'), {_BAD_RING})) > 0",
                "a polygon needs an even number (>= 6) of finite coordinates [x1, y1, x2, y2, x3, y3, ...] in "
                "pixels of the original image.", ("image_id",),
                detail=f"'polygon ' || CAST(list_filter(json_extract(segments, '$[*].polygons[*]'), {_BAD_RING})[1] "
                       "AS VARCHAR)"),
        RowRule("annotation.confidence_scores_range",
                "confidence_scores IS NOT NULL AND "
                "len(list_filter(confidence_scores, lambda s: s IS NULL OR isnan(s) OR s < 0 OR s > 1)) > 0",
                "confidence scores must be numbers from 0 to 1.", ("image_id", "confidence_scores")),
        RowRule("annotation.class_declared",
                "(creation_method = 'user' OR review_state = 'accepted') AND EXISTS (SELECT 1 FROM dataset_images l "
                "JOIN datasets d ON d.id = l.dataset_id WHERE l.image_id = r.image_id AND "
                "json_extract(d.metadata, '$.classes') IS NOT NULL AND len(list_filter(r.class_labels, lambda c: NOT "
                "list_contains(CAST(json_extract(d.metadata, '$.classes') AS VARCHAR[]), c))) > 0)",
                "a dataset holding this image declares its classes, and a label is not among them: use one of "
                "them, or add the class to the dataset (ws.datasets.set_classes).", ("image_id", "class_labels"),
                detail="(SELECT 'dataset ' || d.name || ' declares ' || CAST(json_extract(d.metadata, '$.classes') "
                       "AS VARCHAR) FROM dataset_images l JOIN datasets d ON d.id = l.dataset_id WHERE l.image_id = "
                       "r.image_id AND json_extract(d.metadata, '$.classes') IS NOT NULL LIMIT 1)"),
        RowRule("annotation.creation_method_valid",
                f"creation_method IS NULL OR creation_method NOT IN {_in(CreationMethod)}",
                f"creation_method must be one of: {_values(CreationMethod)}.", ("image_id", "creation_method")),
        RowRule("annotation.model_id_required", "creation_method = 'model' AND model_id IS NULL",
                "a model annotation (creation_method 'model') must name its model_id.", ("image_id",)),
        RowRule("annotation.review_state_matches_method",
                "NOT ((creation_method = 'user' AND review_state IN ('draft', 'validated', 'finalized')) OR "
                "(creation_method = 'model' AND review_state IN ('generated', 'reviewed', 'accepted', 'rejected')))",
                "user annotations take draft/validated/finalized; model annotations generated/reviewed/"
                "accepted/rejected.", ("image_id", "creation_method", "review_state")),
        RowRule("annotation.image_exists", "i.id IS NULL",
                "image_id must name an image of this workspace.", ("image_id",)),
        RowRule("annotation.model_exists",
                "model_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM models m WHERE m.id = r.model_id)",
                "model_id must name a registered model.", ("image_id", "model_id")),
        RowRule("annotation.box_inside_image",
                f"bounding_boxes IS NOT NULL AND list_bool_or(list_transform(bounding_boxes, {_BAD_BOX}))",
                "boxes are [x1, y1, x2, y2] in pixels of the original image, inside it, with x2 > x1 and "
                "y2 > y1.", ("image_id",),
                detail=(
                    f"'box #' || (list_position(list_transform(bounding_boxes, {_BAD_BOX}), true) - 1) || ' = ' || "
                    f"CAST(bounding_boxes[list_position(list_transform(bounding_boxes, {_BAD_BOX}), true)] AS VARCHAR)"
                    " || ' on an image of ' || i.width || 'x' || i.height"
                )),
    ),
    "models": (
        RowRule("model.name_not_empty", "name IS NULL OR length(trim(name)) = 0", "name must not be empty.", ("name",)),
        RowRule("model.type_valid", f"type IS NULL OR type NOT IN {_in(ModelType)}",
                f"type must be one of: {_values(ModelType)}.", ("name", "type")),
        RowRule("model.framework_supported", f"framework IS NULL OR framework NOT IN {_in(Framework)}",
                f"framework must be one of: {_values(Framework)}.", ("name", "framework")),
        RowRule("model.training_status_valid",
                f"training_status IS NULL OR training_status NOT IN {_in(TrainingStatus)}",
                f"training_status must be one of: {_values(TrainingStatus)}.", ("name", "training_status")),
        RowRule("model.variant_not_empty", "variant IS NULL OR length(trim(variant)) = 0",
                "variant must not be empty (e.g. nano, small, medium, large, xl).", ("name",)),
        RowRule("model.version_not_empty", "version IS NULL OR length(trim(version)) = 0",
                "version must not be empty.", ("name",)),
        RowRule("model.task_valid", f"task IS NOT NULL AND task NOT IN {_in(ModelTask)}",
                f"task must be one of: {_values(ModelTask)}.", ("name", "task")),
        RowRule("model.imgsz_range", "imgsz IS NOT NULL AND (imgsz < 32 OR imgsz > 8192)",
                "imgsz (the input size the model was trained at) must be 32 to 8192 pixels.", ("name", "imgsz")),
        RowRule("model.classes_named",
                "classes IS NOT NULL AND len(list_filter(classes, lambda c: c IS NULL OR length(trim(c)) = 0)) > 0",
                "every class name must be non-empty (classes are listed in index order).", ("name",)),
        RowRule("model.name_unique_within_type_and_variant",
                "EXISTS (SELECT 1 FROM models m WHERE m.name = r.name AND m.type = r.type "
                "AND m.variant = r.variant AND m.id <> r.id) "
                "OR count(*) OVER (PARTITION BY name, type, variant) > 1",
                "name must be unique within type and variant: pick another name.", ("name", "type", "variant")),
        RowRule("model.name_version_unique",
                "EXISTS (SELECT 1 FROM models m WHERE m.name = r.name AND m.version = r.version AND m.id <> r.id) "
                "OR count(*) OVER (PARTITION BY name, version) > 1",
                "the name and version combination is taken: bump the version.", ("name", "version")),
    ),
    "datasets": (
        RowRule("dataset.name_not_empty", "name IS NULL OR length(trim(name)) = 0",
                "name must not be empty.", ("name",)),
        RowRule("dataset.name_unique",
                "EXISTS (SELECT 1 FROM datasets d WHERE d.name = r.name AND d.id <> r.id) "
                "OR count(*) OVER (PARTITION BY name) > 1",
                "name must be unique: a dataset of that name exists (use ws.datasets.get).", ("name",)),
    ),
    "training_jobs": (
        RowRule("training_job.progress_range", "progress_percentage < 0 OR progress_percentage > 100",
                "progress_percentage must be between 0.0 and 100.0.", ("id", "progress_percentage")),
        RowRule("training_job.status_valid", f"status IS NULL OR status NOT IN {_in(JobStatus)}",
                f"status must be one of: {_values(JobStatus)}.", ("id", "status")),
        RowRule("training_job.result_model_required", "status = 'completed' AND result_model_id IS NULL",
                "a completed training job must name its result_model_id.", ("id", "status")),
        RowRule("training_job.hyperparameters_required",
                "hyperparameters IS NULL OR "
                + " OR ".join(f"json_extract(hyperparameters, '$.{key}') IS NULL" for key in REQUIRED_HYPERPARAMETERS),
                "hyperparameters must contain " + ", ".join(REQUIRED_HYPERPARAMETERS) + ".",
                ("id", "hyperparameters")),
        RowRule("training_job.base_model_exists",
                "NOT EXISTS (SELECT 1 FROM models m WHERE m.id = r.base_model_id)",
                "base_model_id must name a registered model.", ("id", "base_model_id")),
        RowRule("training_job.dataset_exists", "NOT EXISTS (SELECT 1 FROM datasets d WHERE d.id = r.dataset_id)",
                "dataset_id must name a dataset.", ("id", "dataset_id")),
    ),
    "inference_jobs": (
        RowRule("inference_job.target_images_not_empty", "target_images IS NULL OR len(target_images) = 0",
                "target_images must not be empty: pass at least one image.", ("id",)),
        RowRule("inference_job.progress_range", "progress_percentage < 0 OR progress_percentage > 100",
                "progress_percentage must be between 0.0 and 100.0.", ("id", "progress_percentage")),
        RowRule("inference_job.status_valid", f"status IS NULL OR status NOT IN {_in(JobStatus)}",
                f"status must be one of: {_values(JobStatus)}.", ("id", "status")),
        RowRule("inference_job.model_exists", "NOT EXISTS (SELECT 1 FROM models m WHERE m.id = r.model_id)",
                "model_id must name a registered model.", ("id", "model_id")),
        RowRule("inference_job.target_images_exist",
                "EXISTS (SELECT 1 FROM (SELECT unnest(r.target_images) AS t) WHERE t NOT IN (SELECT id FROM images))",
                "every target image must be an image of this workspace.", ("id",),
                detail="(SELECT 'unknown image ids: ' || string_agg(CAST(t AS VARCHAR), ', ') FROM "
                       "(SELECT unnest(r.target_images) AS t) WHERE t NOT IN (SELECT id FROM images))"),
    ),
    "deployments": (
        RowRule("deployment.endpoint_url_valid", f"endpoint_url IS NULL OR NOT regexp_matches(endpoint_url, '{URL_REGEX}')",
                "endpoint_url must be an http(s) URL such as http://127.0.0.1:8000/detector/v1.",
                ("name", "endpoint_url")),
        RowRule("deployment.version_semver", f"version IS NULL OR NOT regexp_matches(version, '{SEMVER_REGEX}')",
                "version must follow semantic versioning (MAJOR.MINOR.PATCH, e.g. 1.0.0).", ("name", "version")),
        RowRule("deployment.status_valid", f"status IS NULL OR status NOT IN {_in(DeploymentStatus)}",
                f"status must be one of: {_values(DeploymentStatus)}.", ("name", "status")),
        RowRule("deployment.configuration_required",
                "configuration IS NULL OR "
                + " OR ".join(f"json_extract(configuration, '$.{key}') IS NULL"
                              for key in REQUIRED_DEPLOYMENT_CONFIGURATION),
                "configuration must contain " + ", ".join(REQUIRED_DEPLOYMENT_CONFIGURATION) + ".",
                ("name", "configuration")),
        RowRule("deployment.model_exists", "NOT EXISTS (SELECT 1 FROM models m WHERE m.id = r.model_id)",
                "model_id must name a registered model.", ("name", "model_id")),
    ),
    "performance_metrics": (
        RowRule("performance_metric.metric_type_supported", f"metric_type NOT IN ({', '.join(repr(m) for m in SUPPORTED_METRICS)})",
                "metric_type must be one of: " + ", ".join(SUPPORTED_METRICS) + ".", ("metric_type",)),
        RowRule("performance_metric.value_non_negative", "metric_value IS NULL OR metric_value < 0 OR isnan(metric_value)",
                "metric_value must be a non-negative number.", ("metric_type", "metric_value")),
        RowRule("performance_metric.threshold_range", "threshold IS NOT NULL AND (threshold < 0 OR threshold > 1)",
                "threshold must be between 0.0 and 1.0.", ("metric_type", "threshold")),
        RowRule("performance_metric.map_threshold_required",
                f"metric_type IN ({', '.join(repr(m) for m in MAP_METRICS)}) AND threshold IS NULL",
                "mAP metrics must give their IoU threshold (use mAP50_95 for the COCO average).", ("metric_type",)),
        RowRule("performance_metric.model_exists", "NOT EXISTS (SELECT 1 FROM models m WHERE m.id = r.model_id)",
                "model_id must name a registered model.", ("metric_type", "model_id")),
    ),
}

# Tables whose rules look at a related row: joined once, not looked up row by row.
ROW_RULE_JOINS = {"annotations": "LEFT JOIN images i ON i.id = r.image_id"}

# entity -> (state column, {state: states it may move to})
TRANSITIONS: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
    "annotation": ("review_state", {
        ReviewState.DRAFT: (ReviewState.VALIDATED,),
        ReviewState.VALIDATED: (ReviewState.FINALIZED,),
        ReviewState.FINALIZED: (),
        ReviewState.GENERATED: (ReviewState.REVIEWED,),
        ReviewState.REVIEWED: (ReviewState.ACCEPTED, ReviewState.REJECTED),
        ReviewState.ACCEPTED: (),
        ReviewState.REJECTED: (),
    }),
    "model": ("training_status", {
        TrainingStatus.PRE_TRAINED: (TrainingStatus.TRAINED, TrainingStatus.FAILED),
        TrainingStatus.TRAINING: (TrainingStatus.TRAINED, TrainingStatus.FAILED),
        TrainingStatus.TRAINED: (),
        TrainingStatus.FAILED: (),
    }),
    "training_job": ("status", {
        JobStatus.QUEUED: (JobStatus.RUNNING, JobStatus.CANCELLED),
        JobStatus.RUNNING: (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED),
        JobStatus.COMPLETED: (),
        JobStatus.FAILED: (),
        JobStatus.CANCELLED: (),
    }),
    "deployment": ("status", {
        DeploymentStatus.DEPLOYING: (DeploymentStatus.ACTIVE, DeploymentStatus.FAILED, DeploymentStatus.DEPLOYING),
        DeploymentStatus.ACTIVE: (DeploymentStatus.INACTIVE, DeploymentStatus.DEPLOYING),
        DeploymentStatus.INACTIVE: (DeploymentStatus.ACTIVE, DeploymentStatus.DEPLOYING),
        DeploymentStatus.FAILED: (DeploymentStatus.DEPLOYING,),
    }),
}
TRANSITIONS["inference_job"] = TRANSITIONS["training_job"]

# table name -> entity name used in rule names and TRANSITIONS
ENTITY_OF_TABLE = {
    "images": "image",
    "annotations": "annotation",
    "models": "model",
    "datasets": "dataset",
    "training_jobs": "training_job",
    "inference_jobs": "inference_job",
    "deployments": "deployment",
    "evaluation_runs": "evaluation_run",
    "dataset_snapshots": "dataset_snapshot",
    "performance_metrics": "performance_metric",
}


_DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def check_version(version: str) -> str:
    """``version`` when it is semantic (MAJOR.MINOR.PATCH), else ValidationError."""
    if not re.match(SEMVER_REGEX, str(version)):
        raise ValidationError("deployment.version_semver",
                              f"version must be semantic (MAJOR.MINOR.PATCH, e.g. 1.0.0); got {version!r}.")
    return version


def _check(ok: bool, rule: str, message: str) -> None:
    if not ok:
        raise ValidationError(rule, message)


def check_deployment_options(*, name: str, version: str, replicas: int, max_batch_size: int,
                             batch_wait_timeout_s: float, autoscaling: dict | None, port: int, imgsz: int,
                             conf: float, max_upload_bytes: int, host: str) -> None:
    """The options of a deployment version (see ``mleval.deploy.deploy``); ValidationError naming the
    first one that is wrong. The rate limit's text is parsed by ``mleval.deploy.limits``."""
    _check(bool(_DEPLOYMENT_NAME.match(name)), "deployment.name_format",
           f"name must be 1-63 letters, digits, '_', '.' or '-' (it becomes the URL path /{{name}}); got {name!r}.")
    check_version(version)
    _check(isinstance(replicas, int) and replicas >= 1, "deployment.replicas_positive",
           f"replicas must be an integer >= 1; got {replicas!r}.")
    _check(isinstance(max_batch_size, int) and 1 <= max_batch_size <= 256, "deployment.max_batch_size_range",
           f"max_batch_size must be an integer from 1 to 256; got {max_batch_size!r}.")
    _check(0 <= batch_wait_timeout_s <= 10, "deployment.batch_wait_range",
           f"batch_wait_timeout_s must be between 0 and 10 seconds; got {batch_wait_timeout_s!r}.")
    _check(1 <= int(port) <= 65535, "deployment.port_range", f"port must be 1-65535; got {port!r}.")
    _check(bool(host) and "/" not in host, "deployment.host_valid", f"host must be a host name or IP; got {host!r}.")
    _check(isinstance(imgsz, int) and 32 <= imgsz <= 4096, "deployment.imgsz_range",
           f"imgsz must be an integer from 32 to 4096 pixels; got {imgsz!r}.")
    _check(0.0 <= conf <= 1.0, "deployment.conf_range", f"conf must be between 0 and 1; got {conf!r}.")
    _check(isinstance(max_upload_bytes, int) and max_upload_bytes > 0, "deployment.max_upload_positive",
           f"max_upload_bytes must be a positive integer; got {max_upload_bytes!r}.")
    if autoscaling is not None:
        _check(isinstance(autoscaling, dict), "deployment.autoscaling_dict",
               "autoscaling must be a dict of Serve's autoscaling_config, e.g. {'min_replicas': 1, 'max_replicas': 4}.")
        low, high = autoscaling.get("min_replicas", 1), autoscaling.get("max_replicas", 1)
        _check(isinstance(low, int) and isinstance(high, int) and 0 <= low <= high and high >= 1,
               "deployment.autoscaling_range",
               f"autoscaling needs 0 <= min_replicas <= max_replicas and max_replicas >= 1; got {autoscaling!r}.")


def check_split(split: str) -> str:
    """``split`` when it is a dataset split (train, validation, test); ValidationError otherwise."""
    if split not in tuple(DatasetSplit):
        raise ValidationError(
            "image.dataset_split_valid",
            f"split must be one of: {', '.join(DatasetSplit)}; got {split!r}.",
        )
    return split


def check_transition(entity: str, current: str, requested: str) -> None:
    """Raise :class:`TransitionError` unless the entity's state machine allows ``current -> requested``."""
    field, graph = TRANSITIONS[entity]
    current, requested = str(current), str(requested)
    allowed = graph.get(current)
    if allowed is None:
        raise ValidationError(f"{entity}.{field}_valid", f"unknown {field} {current!r}.")
    if requested not in allowed:
        raise TransitionError(entity, field, current, requested, tuple(str(s) for s in allowed))


def require_dataset_not_empty(name: str, train_count: int, validation_count: int, test_count: int) -> None:
    """The data model's rule that a dataset holds images in at least one split."""
    if max(train_count, validation_count, test_count) <= 0:
        raise ValidationError(
            "dataset.split_count_positive",
            f"dataset {name!r} has no images in any split (train 0, validation 0, test 0): "
            "add images with ws.datasets.add_images or upload with dataset=...",
        )


def find_violation(con, table: str, staged: str = "staged", *, template: str | None = None) -> None:
    """Run every row rule of ``table`` over the relation ``staged``; raise on the first violation.

    ``con`` is a DuckDB connection on which ``staged`` is registered (an Arrow table). With
    ``template`` (a table name) the staged rows are widened to that table's columns and types,
    so rows that leave out defaulted columns are checked too.
    """
    rules = ROW_RULES.get(table, ())
    if not rules:
        return
    source = f"((FROM {template} LIMIT 0) UNION ALL BY NAME (FROM {staged}))" if template else staged
    numbered = f"(SELECT *, (row_number() OVER ()) - 1 AS _row FROM {source}) r {ROW_RULE_JOINS.get(table, '')}"
    # Predicates may hold window functions, which cannot sit inside an aggregate: flag first.
    flags = ", ".join(f"({rule.violation}) AS _bad{index}" for index, rule in enumerate(rules))
    firsts = ", ".join(f"min(CASE WHEN _bad{index} THEN _row END)" for index in range(len(rules)))
    query = f"SELECT {firsts} FROM (SELECT _row, {flags} FROM {numbered})"
    first_bad_rows = con.execute(query).fetchall()[0]
    for rule, bad_row in zip(rules, first_bad_rows):
        if bad_row is not None:
            raise _violation_error(con, rule, numbered, bad_row)


def count_violations(con, table: str) -> list[tuple[str, int, str]]:
    """(rule, rows breaking it, the first such row's values) for the rows stored in ``table``: what
    ``ws.check()`` reports (rows stored before a rule existed, or written around the catalog)."""
    rules = ROW_RULES.get(table, ())
    if not rules:
        return []
    numbered = f"(SELECT *, (row_number() OVER ()) - 1 AS _row FROM {table}) r {ROW_RULE_JOINS.get(table, '')}"
    flags = ", ".join(f"({rule.violation}) AS _bad{index}" for index, rule in enumerate(rules))
    sums = ", ".join(f"count(*) FILTER (WHERE _bad{index}), min(CASE WHEN _bad{index} THEN _row END)"
                     for index in range(len(rules)))
    row = con.execute(f"SELECT {sums} FROM (SELECT _row, {flags} FROM {numbered})").fetchall()[0]
    found = []
    for index, rule in enumerate(rules):
        count, first = row[2 * index], row[2 * index + 1]
        if count:
            found.append((rule.name, int(count), str(_violation_error(con, rule, numbered, first))))
    return found


def _violation_error(con, rule: RowRule, numbered: str, bad_row: int) -> ValidationError:
    columns = list(rule.show)
    select = ", ".join([f"CAST({c} AS VARCHAR)" for c in columns] + ([rule.detail] if rule.detail else []))
    values = con.execute(f"SELECT {select} FROM {numbered} WHERE _row = {bad_row}").fetchall()[0] if select else ()
    shown = ", ".join(f"{c}={v}" for c, v in zip(columns, values))
    detail = f"; {values[-1]}" if rule.detail and values and values[-1] else ""
    return ValidationError(rule.name, f"{rule.message} (row {bad_row}: {shown}{detail})")


# What counts as ground truth for training and evaluation: a user annotation from the moment
# it is saved (until deleted), a model annotation only once a person accepted it.
GROUND_TRUTH_SQL = "(creation_method = 'user' OR (creation_method = 'model' AND review_state = 'accepted'))"
