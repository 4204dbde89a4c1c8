"""The label-error finder recovers mistakes planted in otherwise clean labels."""

from __future__ import annotations

import numpy as np

from mleval.core.detections import Detections
from mleval.evaluation.label_issues import find_label_issues

CLASSES = ("circle", "square", "triangle")


def _scene(seed: int = 0, n: int = 40):
    """Clean labels, a good model's predictions on them (jittered boxes, high scores), then planted
    mistakes: boxes deleted, classes flipped, boxes shifted, a box on nothing."""
    rng = np.random.default_rng(seed)
    truth, predictions = {}, {}
    for i in range(n):
        k = int(rng.integers(2, 5))
        corners = rng.uniform(0, 200, (k, 2))
        boxes = np.column_stack([corners, corners + rng.uniform(30, 60, (k, 2))])
        names = tuple(rng.choice(CLASSES, k))
        truth[f"img-{i}"] = Detections(boxes, names, np.full(k, np.nan), annotation_ids=(f"ann-{i}",) * k,
                                       object_indices=np.arange(k), iscrowd=np.zeros(k, bool))
        predictions[f"img-{i}"] = Detections(boxes + rng.normal(0, 1.0, boxes.shape), names, rng.uniform(0.8, 0.99, k))
    planted = {}
    for i in range(0, 6):  # delete the first box of images 0..5
        gt = truth[f"img-{i}"]
        planted[("missing", f"img-{i}")] = gt.xyxy[0].tolist()
        truth[f"img-{i}"] = gt.filter(np.arange(1, len(gt)))
    for i in range(6, 12):  # flip the first box's class
        gt = truth[f"img-{i}"]
        flipped = (CLASSES[(CLASSES.index(gt.class_names[0]) + 1) % 3],) + gt.class_names[1:]
        truth[f"img-{i}"] = Detections(gt.xyxy, flipped, gt.scores, annotation_ids=gt.annotation_ids,
                                       object_indices=gt.object_indices, iscrowd=gt.iscrowd)
        planted[("wrong_class", f"img-{i}")] = gt.class_names[0]
    for i in range(12, 16):  # shift the first box by a third of its size (IoU about 0.3)
        gt = truth[f"img-{i}"]
        boxes = gt.xyxy.copy()
        boxes[0, [0, 2]] += (boxes[0, 2] - boxes[0, 0]) / 3
        boxes[0, [1, 3]] += (boxes[0, 3] - boxes[0, 1]) / 3
        truth[f"img-{i}"] = Detections(boxes, gt.class_names, gt.scores, annotation_ids=gt.annotation_ids,
                                       object_indices=gt.object_indices, iscrowd=gt.iscrowd)
        planted[("bad_box", f"img-{i}")] = None
    gt = truth["img-16"]  # a labelled box where there is nothing
    truth["img-16"] = Detections.concat([gt, Detections([[400, 400, 440, 440]], ("square",), [np.nan],
                                                        annotation_ids=("ann-16",), object_indices=[len(gt)],
                                                        iscrowd=[False])])
    planted[("spurious", "img-16")] = None
    return truth, predictions, planted


def test_planted_mistakes_come_first_with_their_kind_and_fix():
    truth, predictions, planted = _scene()
    issues = find_label_issues(truth, predictions)
    top = issues.slice(0, 2 * len(planted)).to_pylist()
    found = {(r["kind"], r["image_id"]) for r in top}
    assert len(found & set(planted)) >= 0.9 * len(planted), sorted(found)
    scores = issues.column("score").to_pylist()
    assert scores == sorted(scores, reverse=True)
    by_key = {}
    for r in issues.to_pylist():  # the most likely row of each kind and image
        by_key.setdefault((r["kind"], r["image_id"]), r)
    for (kind, image_id), expected in planted.items():
        row = by_key.get((kind, image_id))
        if row is None:
            continue
        if kind == "missing":
            assert row["annotation_id"] is None and np.allclose(row["box"], expected, atol=5)
        elif kind == "wrong_class":
            assert row["suggested_label"] == expected and row["object_index"] == 0
            assert row["annotation_id"] == image_id.replace("img", "ann")
        elif kind == "bad_box":
            assert row["suggested_box"] is not None and row["object_index"] == 0
    assert by_key[("spurious", "img-16")]["object_index"] == len(truth["img-16"]) - 1


def test_images_the_model_learnt_from_are_marked_and_clean_labels_score_low():
    truth, predictions, _ = _scene(seed=1)
    clean = {i: truth[i] for i in list(truth)[20:]}
    issues = find_label_issues(clean, {i: predictions[i] for i in clean}, seen_images=["img-30"])
    assert issues.num_rows == 0 or max(issues.column("score").to_pylist()) < 0.5
    marked = {r["image_id"] for r in issues.to_pylist() if r["model_saw_image"]}
    assert marked <= {"img-30"}
