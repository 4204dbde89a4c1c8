"""Label-error finder benchmark: planted mistakes found by ``ws.find_label_issues``, and its time at scale.

    .venv/bin/python benchmarks/label_issues.py [--train 300] [--test 200] [--epochs 25] [--drop 0.1] [--flip 0.1]

1. Quality, end to end on real parts: synthetic shapes (``generate_shapes``); a from-scratch
   yolo11n fine-tuned with ``ws.train`` (Ray Train, 1 worker) on the clean train split; the test
   split uploaded with planted mistakes (a fraction ``--drop`` of its boxes deleted, ``--flip`` of
   the rest given another class); ``ws.evaluate`` (Ray Data inference) then
   ``ws.find_label_issues(run)``. A planted mistake counts as found when a row of the right kind
   names it ("missing": a row on that image whose box has IoU >= 0.5 with the deleted box;
   "wrong_class": the flipped object's annotation id and object index). Printed: precision and
   recall at k = number of planted mistakes, and recall within the top 2k rows (target >= 70%).
2. Time at scale: ``mleval.evaluation.label_issues.find_label_issues`` (the scoring itself, no
   catalog) on ``--scale-images`` images (10,000) of 2-5 objects each, predictions made from the
   labels with jittered boxes, planted mistakes as above.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")


def plant(objects, rng, drop: float, flip: float, classes):
    """(labels, boxes) to store, and the mistakes planted: ("missing", box) / ("wrong_class", index)."""
    kept, planted = [], []
    for o in objects:
        if rng.random() < drop:
            planted.append(("missing", list(o.bbox_xyxy)))
        else:
            kept.append([o.label, list(o.bbox_xyxy)])
    for k, (label, _) in enumerate(kept):
        if rng.random() < flip:
            kept[k][0] = str(rng.choice([c for c in classes if c != label]))
            planted.append(("wrong_class", k))
    return kept, planted


def quality(args) -> dict:
    import numpy as np
    import pyarrow as pa

    import mleval
    from mleval.evaluation.iou import box_iou_xyxy
    from mleval.synthetic import generate_shapes

    folder = Path(tempfile.mkdtemp(prefix="mleval-label-issues-"))
    data = generate_shapes(folder / "source", train=args.train, validation=args.validation, test=args.test,
                           image_size=args.imgsz, seed=args.seed)
    ws = mleval.Workspace.open(folder / "ws")
    ws.attach_ray()
    ws.datasets.create("shapes")
    rng = np.random.default_rng(args.seed)
    planted: dict[str, list] = {}
    for split in ("train", "validation", "test"):
        images = [i for i in data.images if i.split == split]
        report = ws.images.upload([i.path for i in images], split=split, dataset="shapes", progress=False)
        ids = {r.filename: r.id for r in report.succeeded}
        rows = []
        for image in images:
            objects = [[o.label, list(o.bbox_xyxy)] for o in image.objects]
            if split == "test":
                objects, planted[ids[image.path.name]] = plant(image.objects, rng, args.drop, args.flip, data.classes)
            if objects:
                rows.append((ids[image.path.name], objects))
        ws.annotations.add_batch(pa.table({
            "image_id": [i for i, _ in rows], "class_labels": [[label for label, _ in o] for _, o in rows],
            "bounding_boxes": pa.array([[box for _, box in o] for _, o in rows], pa.list_(pa.list_(pa.float64(), 4))),
        }))
    start = time.perf_counter()
    job = ws.train("yolo11n", "shapes", workers=1, hyperparameters={
        "epochs": args.epochs, "batch_size": 32, "learning_rate": 0.0014, "optimizer": "AdamW", "imgsz": args.imgsz,
        "mosaic": 0.0, "warmup_epochs": 1.0, "seed": args.seed})
    model = job.result(progress=False)
    train_s = time.perf_counter() - start
    run = ws.evaluate(model, "shapes", split="test", progress=False)
    start = time.perf_counter()
    issues = ws.find_label_issues(run)
    find_s = time.perf_counter() - start
    annotation_of = {}
    for image_id in planted:
        found = ws.annotations.list(image=image_id, ground_truth=True)
        annotation_of[image_id] = found[0].id if found else None
    targets = [(image_id, kind, what) for image_id, mistakes in planted.items() for kind, what in mistakes]
    rows = issues.to_pylist()

    def hits(top: list[dict]) -> int:
        found = 0
        for image_id, kind, what in targets:
            for r in top:
                if r["image_id"] != image_id or r["kind"] != kind:
                    continue
                if kind == "missing" and box_iou_xyxy([r["box"]], [what])[0, 0] >= 0.5:
                    found += 1
                    break
                if kind == "wrong_class" and (r["annotation_id"], r["object_index"]) == (annotation_of[image_id], what):
                    found += 1
                    break
        return found

    k = len(targets)
    at_k, at_2k = hits(rows[:k]), hits(rows[:2 * k])
    ws.close()
    return {"test_images": args.test, "planted": k, "rows": len(rows), "model_test_mAP50": round(run.summary["mAP50"], 4),
            "train_s": round(train_s, 1), "find_s": round(find_s, 2),
            "precision_at_k": round(at_k / max(k, 1), 3), "recall_at_k": round(at_k / max(k, 1), 3),
            "recall_in_top_2k": round(at_2k / max(k, 1), 3), "target_recall_in_top_2k": 0.7}


def scale(args) -> dict:
    import numpy as np

    from mleval.core.detections import Detections
    from mleval.evaluation.label_issues import find_label_issues

    rng = np.random.default_rng(args.seed)
    classes = ("circle", "square", "triangle")
    truth, predictions = {}, {}
    for i in range(args.scale_images):
        n = int(rng.integers(2, 6))
        corners = rng.uniform(0, 600, (n, 2))
        boxes = np.column_stack([corners, corners + rng.uniform(20, 120, (n, 2))])
        names = tuple(rng.choice(classes, n))
        predictions[str(i)] = Detections(boxes + rng.normal(0, 2, boxes.shape), names, rng.uniform(0.5, 0.99, n))
        keep = rng.random(n) >= args.drop
        flipped = tuple(classes[(classes.index(c) + 1) % 3] if rng.random() < args.flip else c for c in names)
        truth[str(i)] = Detections(boxes, flipped, np.full(n, np.nan), annotation_ids=(f"a{i}",) * n,
                                   object_indices=np.arange(n)).filter(keep)
    start = time.perf_counter()
    issues = find_label_issues(truth, predictions)
    return {"images": args.scale_images, "objects": sum(len(d) for d in truth.values()), "rows": issues.num_rows,
            "seconds": round(time.perf_counter() - start, 2)}


def main() -> None:
    from _options import parse_options

    args = parse_options(__doc__, train=300, validation=60, test=200, epochs=25, imgsz=128, drop=0.1, flip=0.1,
                         scale_images=10_000, seed=0, skip_quality=False)  # skip_quality: only the timing at scale
    result = {"scale": scale(args)}
    print(json.dumps(result, indent=1), flush=True)
    if not args.skip_quality:
        result["quality"] = quality(args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
