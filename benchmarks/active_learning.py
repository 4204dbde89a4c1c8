"""Active-learning benchmark: test mAP after labelling rounds chosen by ``ws.select_for_labeling``, per strategy.

    .venv/bin/python benchmarks/active_learning.py [--pool 300] [--start 80] [--rounds 2] [--budget 40] [--epochs 25]

Synthetic shapes (``generate_shapes``): a pool of unlabelled training images, fixed validation
and test splits with labels. Every strategy starts from the same ``--start`` random labelled
images and the model trained on them (a from-scratch yolo11n, ``--epochs``); each round it picks
``--budget`` more from its remaining pool with the latest model (``ws.select_for_labeling``, Ray
Data), "labels" them (their synthetic ground truth is stored), and fine-tunes the latest model
on its whole labelled set for ``--round-epochs`` (``ws.train``, Ray Train). Printed per strategy and round: images labelled and test mAP@50 /
mAP@50:95 (``ws.evaluate``). The target: the default strategy ("hybrid") beats "random" at the
same budget.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")


def main() -> None:
    from _options import parse_options

    args = parse_options(__doc__, pool=300, validation=40, test=100, start=80, rounds=2, budget=40, epochs=25,
                         round_epochs=12, imgsz=96, strategies="hybrid,random", seed=0)

    import numpy as np

    import mleval
    from mleval.synthetic import generate_shapes

    folder = Path(tempfile.mkdtemp(prefix="mleval-active-learning-"))
    data = generate_shapes(folder / "source", train=args.pool, validation=args.validation, test=args.test,
                           image_size=args.imgsz, seed=args.seed)
    ws = mleval.Workspace.open(folder / "ws")
    ws.attach_ray()
    truth, ids = {}, {}
    for split in ("train", "validation", "test"):
        images = [i for i in data.images if i.split == split]
        report = ws.images.upload([i.path for i in images], split=split, dataset=None, progress=False)
        for record in report.succeeded:
            ids.setdefault(split, []).append(record.id)
        names = {r.filename: r.id for r in report.succeeded}
        truth.update({names[i.path.name]: i for i in images})
    labelled_once: set[str] = set()

    def label(image_ids):
        for image_id in image_ids:
            if image_id not in labelled_once and truth[image_id].objects:
                objects = truth[image_id].objects
                ws.annotations.add(image_id, labels=[o.label for o in objects],
                                   boxes_xyxy=[list(o.bbox_xyxy) for o in objects])
            labelled_once.add(image_id)

    label(ids["validation"] + ids["test"])
    rng = np.random.default_rng(args.seed)
    start = [str(i) for i in rng.choice(ids["train"], size=args.start, replace=False)]
    label(start)

    def fine_tune(name: str, labelled: list[str], base="yolo11n", epochs=args.epochs):
        ws.datasets.create(name, images=labelled + ids["validation"] + ids["test"])
        job = ws.train(base, name, workers=1, name=f"{name}-model", hyperparameters={
            "epochs": epochs, "batch_size": 16, "learning_rate": 0.002, "optimizer": "AdamW",
            "imgsz": args.imgsz, "mosaic": 0.0, "warmup_epochs": 1.0, "seed": args.seed})
        model = job.result(progress=False)
        run = ws.evaluate(model, name, split="test", progress=False)
        return model, {"labelled": len(labelled), "mAP50": round(run.summary["mAP50"], 4),
                       "mAP50_95": round(run.summary["mAP50_95"], 4)}

    began = time.perf_counter()
    first_model, first = fine_tune("start", start)
    results = {"start": first}
    print(json.dumps({"start": first}), flush=True)
    for strategy in args.strategies.split(","):
        labelled, model, rounds = list(start), first_model, []
        for round_index in range(1, args.rounds + 1):
            pool = [i for i in ids["train"] if i not in set(labelled)]
            picked = ws.select_for_labeling(model, pool, args.budget, strategy=strategy, seed=args.seed + round_index,
                                            progress=False).column("image_id").to_pylist()
            label(picked)
            labelled += picked
            model, figures = fine_tune(f"{strategy}-{round_index}", labelled, base=model, epochs=args.round_epochs)
            rounds.append(figures)
            print(json.dumps({strategy: figures}), flush=True)
        results[strategy] = rounds
    default, baseline = results.get("hybrid"), results.get("random")
    if default and baseline:
        results["hybrid_minus_random_mAP50_95"] = round(default[-1]["mAP50_95"] - baseline[-1]["mAP50_95"], 4)
    results["seconds"] = round(time.perf_counter() - began, 1)
    print(json.dumps(results, indent=1))
    ws.close()


if __name__ == "__main__":
    main()
