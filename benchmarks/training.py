"""Training benchmark: ``ws.train`` (Ray Train) against ultralytics' own ``model.train``.

    .venv/bin/python benchmarks/training.py [--epochs 30] [--train 250] [--validation 60] [--imgsz 128]

One synthetic shapes dataset (``generate_shapes``), a from-scratch yolo11n, the same
hyperparameters on both sides (epochs, batch, AdamW and its learning rate, warmup, no mosaic,
seed). In the same run:

1. ultralytics' ``YOLO("yolo11n.yaml").train`` on the workspace's YOLO export (its default
   thread setting: cpu_count - 1 torch threads; it validates every epoch, as ``ws.train`` does);
2. ``ws.train`` with 1 Ray Train worker (one torch thread, the worker's CPU), end to end:
   job created -> model registered (worker start, export and checkpoints included, Ray itself
   already running as in a notebook session);
3. ``ws.train`` with 2 workers (DDP over gloo).

Each final model is scored the same way: its predictor (imgsz, conf 0.001) on the validation
images, scored by ``mleval.evaluation.coco_evaluate`` against the generator's own labels.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")


def score(predictor, synthetic, folder: Path) -> dict[str, float]:
    """mAP50 / mAP50-95 of ``predictor`` on the validation split, by mleval.evaluation."""
    import numpy as np
    from PIL import Image

    from mleval.evaluation import coco_evaluate

    gt = synthetic.to_coco("validation")
    category_of = {c["name"]: c["id"] for c in gt["categories"]}
    results = []
    for image in gt["images"]:
        pixels = np.asarray(Image.open(folder / image["file_name"]).convert("RGB"))
        detections = predictor.predict([pixels], conf=0.001)[0].detections
        for (x1, y1, x2, y2), label, confidence in zip(detections.xyxy, detections.class_names,
                                                       detections.scores):
            results.append({"image_id": image["id"], "category_id": category_of[label], "score": float(confidence),
                            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]})
    stats = coco_evaluate(gt, results).stats
    return {"mAP50": round(float(stats[1]), 4), "mAP50_95": round(float(stats[0]), 4)}


def run_ultralytics(data_yaml: Path, runs: Path, args) -> tuple[float, Path]:
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml")
    start = time.perf_counter()
    model.train(data=str(data_yaml), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device="cpu",
                optimizer="AdamW", lr0=args.lr, warmup_epochs=args.warmup_epochs, warmup_bias_lr=0.0, mosaic=0.0,
                seed=args.seed, plots=False, project=str(runs), name="ultralytics", exist_ok=True, verbose=False)
    return time.perf_counter() - start, runs / "ultralytics" / "weights" / "best.pt"


def run_ws_train(ws, args, workers: int) -> tuple[float, str, dict]:
    from mleval.jobs.training import training_metrics

    hyperparameters = {"epochs": args.epochs, "batch_size": args.batch, "learning_rate": args.lr,
                       "imgsz": args.imgsz, "optimizer": "AdamW", "warmup_epochs": args.warmup_epochs,
                       "mosaic": 0.0, "seed": args.seed}
    start = time.perf_counter()
    job = ws.train("yolo11n", "shapes", workers=workers, name=f"shapes-ft-{workers}w-{int(time.time())}",
                   hyperparameters=hyperparameters)
    model = job.result(progress=False)
    seconds = time.perf_counter() - start
    epochs = training_metrics(ws, job.id)
    record = job.record
    epoch_s = sum(epochs.column("epoch_s").to_pylist())
    return seconds, model.id, {
        "job": job.id, "epochs_run": epochs.num_rows, "sum_epoch_s": round(epoch_s, 1),
        "in_loop_last_mAP50_95": epochs.column("mAP50_95")[-1].as_py(),
        "split_s": time_split(record, seconds)}


def time_split(record: dict, wall_s: float) -> dict[str, float]:
    """Where ``ws.train``'s wall time went: before the driver ran (job and snapshot made, task scheduled),
    the YOLO export, Ray Train's worker start, the worker's setup (model, dataloaders), training,
    validation, checkpoints (best weights, Ray Train's per-epoch state), catalog reports, the rest of
    fit (Ray Train's own shutdown and bookkeeping), storing the result, and waiting for the handle to see it."""
    metadata = json.loads(record["metadata"]) if isinstance(record["metadata"], str) else record["metadata"]
    driver, worker = metadata.get("driver_timings", {}), metadata.get("worker_timings", {})
    before = (record["start_time"] - record["created_at"]).total_seconds()
    in_worker = sum(worker.values())
    split = {"before_driver": before, "export": driver.get("export", 0.0), **worker,
             "fit_rest": driver.get("fit", 0.0) - in_worker, "finish": driver.get("finish", 0.0)}
    split["handle_and_other"] = wall_s - sum(split.values())
    return {k: round(v, 2) for k, v in split.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--train", type=int, default=250)
    parser.add_argument("--validation", type=int, default=60)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.0014)  # ultralytics' own "auto" choice for 3 classes
    parser.add_argument("--warmup-epochs", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-two-workers", action="store_true")
    args = parser.parse_args()

    import warnings

    import ray

    import mleval
    from mleval.cluster import prepare_local_ray_environment
    from mleval.models.predictor import UltralyticsPredictor
    from mleval.synthetic import generate_shapes

    warnings.simplefilter("ignore")
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, python {sys.version.split()[0]}")
    results: dict = {"settings": vars(args)}
    with tempfile.TemporaryDirectory(prefix="mleval-train-bench-") as scratch:
        root = Path(scratch)
        synthetic = generate_shapes(root / "shapes", train=args.train, validation=args.validation, test=0,
                                    image_size=args.imgsz, seed=args.seed)
        (root / "shapes" / "annotations").mkdir()
        for split, stem in (("train", "train"), ("validation", "val")):
            (root / "shapes" / "annotations" / f"instances_{stem}.json").write_text(
                json.dumps(synthetic.to_coco(split)))
        start = time.perf_counter()
        prepare_local_ray_environment()  # as a local Ray that mleval starts
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, namespace="mleval", log_to_driver=False,
                 runtime_env={"env_vars": {"YOLO_OFFLINE": "1", "YOLO_VERBOSE": "False"}})
        print(f"ray start: {time.perf_counter() - start:.1f} s (not counted below)", flush=True)
        ws = mleval.Workspace.open(root / "ws")
        ws.import_dataset(root / "shapes", format="coco", name="shapes")
        ws.export(dataset="shapes", format="yolo", path=root / "yolo", link_images=True)

        ul_s, best = run_ultralytics(root / "yolo" / "data.yaml", root / "runs", args)
        from ultralytics import YOLO

        ul = score(UltralyticsPredictor(YOLO(str(best)), name="ultralytics", imgsz=args.imgsz), synthetic,
                   root / "shapes")
        results["ultralytics"] = {"wall_s": round(ul_s, 1), **ul}
        print("ultralytics:", json.dumps(results["ultralytics"]), flush=True)

        for workers in (1,) if args.skip_two_workers else (1, 2):
            wall_s, model_id, extra = run_ws_train(ws, args, workers)
            scored = score(ws.models.load(model_id, imgsz=args.imgsz).predictor, synthetic, root / "shapes")
            results[f"ws_train_{workers}_worker"] = {"wall_s": round(wall_s, 1), **scored, **extra}
            print(f"ws.train {workers} worker(s):", json.dumps(results[f"ws_train_{workers}_worker"]), flush=True)
            split = results[f"ws_train_{workers}_worker"]["split_s"]
            print("  time split (s): " + ", ".join(f"{k} {v:.1f}" for k, v in split.items()), flush=True)
    one = results["ws_train_1_worker"]
    ratio = one["wall_s"] / results["ultralytics"]["wall_s"]
    gap = abs(one["mAP50_95"] - results["ultralytics"]["mAP50_95"])
    print("targets:")
    print(f"  [{'PASS' if ratio <= 1.2 else 'MISS'}] ws.train (1 worker) wall time <= 1.2x ultralytics': {ratio:.2f}x "
          f"({one['wall_s']} s vs {results['ultralytics']['wall_s']} s)")
    print(f"  [{'PASS' if gap <= 0.03 else 'MISS'}] mAP50-95 within 0.03 of ultralytics': "
          f"{one['mAP50_95']} vs {results['ultralytics']['mAP50_95']}")
    print(f"  [{'PASS' if one['mAP50'] >= 0.8 else 'MISS'}] ws.train yolo11n mAP50 >= 0.8 in {args.epochs} epochs "
          f"at imgsz {args.imgsz}: {one['mAP50']}")
    print(json.dumps(results, indent=2, default=str))
    ray.shutdown()


if __name__ == "__main__":
    main()
