"""The main job (`mleval demo`): the user's journey on synthetic data, step by step.

Each step is a function of the demo context; a second run on the same workspace reuses
what exists (uploads are recognised as duplicates, the dataset is found by name).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

DATASET = "shapes"


@dataclass
class DemoSettings:
    workspace: Path
    train: int = 256
    validation: int = 64
    test: int = 64
    image_size: int = 128
    seed: int = 0
    assist_images: int = 3
    port: int = 8000
    keep_serving: bool = False
    epochs: int = 30
    workers: int = 1


@dataclass
class DemoContext:
    settings: DemoSettings
    ws: object = None
    data: object = None
    summary: dict[str, object] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def step_generate(ctx: DemoContext) -> None:
    from mleval.synthetic import generate_shapes

    s = ctx.settings
    ctx.data = generate_shapes(
        s.workspace / "synthetic-source", train=s.train, validation=s.validation, test=s.test,
        image_size=s.image_size, seed=s.seed,
    )
    ctx.summary["classes"] = ", ".join(ctx.data.classes)


def step_upload(ctx: DemoContext) -> None:
    ws = ctx.ws
    ws.datasets.get_or_create(DATASET, description="coloured shapes on textured backgrounds (synthetic)")
    uploaded, duplicates = 0, 0
    ctx.image_ids = {}
    for split in ("train", "validation", "test"):
        images = [image for image in ctx.data.images if image.split == split]
        report = ws.images.upload([image.path for image in images], split=split, dataset=DATASET)  # with a bar
        if report.failed:
            raise RuntimeError(f"demo upload failed for {report.failed[:3]}")
        uploaded += len(report.succeeded)
        duplicates += len(report.duplicates)
        new_ids = {r.filename: r.id for r in report.succeeded}
        _annotate_new(ctx, images, new_ids)
    dataset = ws.datasets.get(DATASET)
    ctx.summary["images"] = (f"{uploaded} uploaded, {duplicates} already there; dataset '{DATASET}': "
                             f"train {dataset.train_count}, validation {dataset.validation_count}, "
                             f"test {dataset.test_count}")


def _annotate_new(ctx: DemoContext, images, new_ids: dict[str, str]) -> None:
    """Ground truth as user annotations, for images this run uploaded (one Arrow batch)."""
    rows = [(new_ids[image.path.name], image) for image in images if image.path.name in new_ids]
    if not rows:
        return
    ctx.ws.annotations.add_batch(pa.table({
        "image_id": [image_id for image_id, _ in rows],
        "class_labels": [[o.label for o in image.objects] for _, image in rows],
        "bounding_boxes": pa.array([[list(o.bbox_xyxy) for o in image.objects] for _, image in rows],
                                   pa.list_(pa.list_(pa.float64(), 4))),
        "user_tag": ["demo-ground-truth"] * len(rows),
    }))


def step_assist(ctx: DemoContext) -> None:
    """SAM 2.1 tiny proposes masks from each ground-truth box on a few training images; the
    demo accepts the proposals whose mask overlaps the box well and rejects the others."""
    import warnings

    from mleval.models.weights import RandomWeightsWarning

    ws = ctx.ws
    images = ws.images.list(split="train", dataset=DATASET, limit=ctx.settings.assist_images)
    accepted = rejected = 0
    timings = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        for image in images:
            truth = ws.annotations.list(image=image, creation_method="user")[0]
            box = truth.boxes_xyxy[0]
            proposal = ws.assist(image, model="sam2.1_t", box=box, label=truth.class_labels[0], user_tag="demo")
            timings.append((proposal.embedding_ms, proposal.result.prompt_ms))
            keep = _box_iou(proposal.box_xyxy, box) >= 0.5
            (proposal.accept if keep else proposal.reject)()
            accepted, rejected = accepted + keep, rejected + (not keep)
    weights = ws.models.get("sam2.1_t").metadata.get("weights_source")
    embed = max(t[0] for t in timings) if timings else 0
    ctx.summary["SAM 2 assistance"] = (f"{len(timings)} box prompts ({weights} weights): {accepted} accepted, "
                                       f"{rejected} rejected; embedding {embed:.0f} ms, prompt "
                                       f"{sum(t[1] for t in timings) / max(1, len(timings)):.0f} ms")


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def step_batch_inference(ctx: DemoContext) -> None:
    """yolo11n (at its own input size) over the test split with Ray Data, progress shown while it runs."""
    import warnings

    from mleval.models.weights import RandomWeightsWarning

    ws = ctx.ws
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        job = ws.infer("yolo11n", split="test", dataset=DATASET, conf=0.25)
        job.wait()  # a progress bar while it runs
    results = job.record["results"]
    results = json.loads(results) if isinstance(results, str) else results
    ctx.summary["batch inference"] = (
        f"yolo11n on the test split: {results['images']} images, {results['failed_images']} failed, "
        f"{results['images_with_detections']} with detections, {results['images_per_second']} images/s "
        f"(predictor actors started inside the job)")


def step_evaluate_untrained(ctx: DemoContext) -> None:
    """The untrained yolo11n on the test split (reusing the batch inference just run). Its classes are
    COCO's, not the shapes': ``class_map={}`` scores it as named, a baseline near 0."""
    import warnings

    from mleval.models.weights import RandomWeightsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        run = ctx.ws.evaluate("yolo11n", DATASET, split="test", conf=0.25, class_map={})
    ctx.runs = getattr(ctx, "runs", []) + [run]
    summary = run.summary
    ctx.summary["evaluation: yolo11n untrained"] = (
        f"mAP@50 {summary['mAP50']:.3f}, mAP@50:95 {summary['mAP50_95']:.3f} (random weights: expected ~0)")


def step_deploy(ctx: DemoContext) -> None:
    """Deploy v1.0.0 (the base model) and v1.1.0 (the fine-tuned one when training ran), call the
    endpoint over HTTP with an API key, roll back to v1.0.0 and forward again."""
    import warnings

    import requests

    from mleval.models.weights import RandomWeightsWarning

    ws, s = ctx.ws, ctx.settings
    best = getattr(ctx, "trained_model", None) or "yolo11n"
    options = {"name": "shapes-detector", "port": s.port, "rate_limit": "50/s"}  # each version at its model's imgsz
    image = ws.images.list(split="test", dataset=DATASET, limit=1)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        ws.deploy("yolo11n", version="1.0.0", **options)
        current = ws.deploy(best, version="1.1.0", **options)
        key = current.create_api_key(f"demo-{time.strftime('%Y%m%d-%H%M%S')}")

        def call() -> dict:
            response = requests.post(f"{current.url}/predict", headers={"Authorization": f"Bearer {key}"},
                                     files={"file": (image.filename, ws.images.read_bytes(image))}, timeout=60)
            response.raise_for_status()
            return response.json()

        first = call()
        previous = current.rollback()
        rolled_back = call()
        current = ws.deploy(best, version="1.1.0", **options)
        forward = call()
    unauthorised = requests.post(f"{current.url}/predict", files={"file": ("x.png", b"x")}, timeout=30).status_code
    ctx.summary["deployment"] = (
        f"{current.url} v{first['model_version']} ({first['model']}): HTTP predict {len(first['scores'])} objects "
        f"in {first['timings']['total_ms']:.0f} ms; rolled back to v{rolled_back['model_version']} "
        f"({previous.status}), forward to v{forward['model_version']}; without a key: HTTP {unauthorised}"
    )
    ctx.summary["deployment usage"] = str(current.metrics().get("total", current.metrics()))[:300]


def step_train(ctx: DemoContext) -> None:
    """Fine-tune yolo11n from its architecture on the training split with Ray Train, with live
    progress (epoch, validation mAP), and register the result (it keeps the imgsz it was trained at)."""
    import time as clock

    s = ctx.settings
    job = ctx.ws.train("yolo11n", DATASET, workers=s.workers, name=f"yolo11n-shapes-{clock.strftime('%Y%m%d-%H%M%S')}",
                       hyperparameters={"epochs": s.epochs, "batch_size": 32, "learning_rate": 0.0014,
                                        "optimizer": "AdamW", "imgsz": s.image_size, "mosaic": 0.0,
                                        "warmup_epochs": 1.0, "seed": s.seed})
    ctx.trained_model = job.result().name  # a progress bar with the epoch and validation mAP while it runs
    last = job.metrics.to_pylist()[-1]
    ctx.summary["fine-tuning"] = (f"{ctx.trained_model}: {job.metrics.num_rows} epochs with {s.workers} Ray Train "
                                  f"worker(s); validation mAP@50 {last['mAP50']:.3f}, mAP@50:95 {last['mAP50_95']:.3f}")


def step_evaluate_trained(ctx: DemoContext) -> None:
    """The fine-tuned model on the test split at the size it was trained at (batch inference on Ray Data
    first), beside the untrained one."""
    run = ctx.ws.evaluate(ctx.trained_model, DATASET, split="test")
    ctx.runs = getattr(ctx, "runs", []) + [run]
    summary = run.summary
    ctx.summary["evaluation: fine-tuned"] = (
        f"{ctx.trained_model}: mAP@50 {summary['mAP50']:.3f}, mAP@50:95 {summary['mAP50_95']:.3f}, "
        f"F1 {summary.get('F1') or 0:.3f}")
    ctx.mAP50 = summary["mAP50"]
    comparison = ctx.ws.compare(["yolo11n", ctx.trained_model], DATASET, split="test", class_map={})
    ctx.leaderboard = comparison.leaderboard
    ctx.summary["lineage of the fine-tuned model"] = " <- ".join(
        f"{row['kind']} {row['name']}" for row in ctx.ws.lineage(ctx.trained_model).rows)


def step_export(ctx: DemoContext) -> None:
    target = ctx.settings.workspace / "exports" / f"{DATASET}-coco.zip"
    if target.exists():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    report = ctx.ws.export(dataset=DATASET, format="coco", path=target)
    ctx.summary["COCO export"] = f"{target} ({report!r})"


def step_summary(ctx: DemoContext) -> None:
    counts = ctx.ws.sql(
        "SELECT count(*) FILTER (WHERE creation_method = 'user') AS annotations, "
        "sum(len(class_labels)) FILTER (WHERE creation_method = 'user') AS objects, "
        "count(*) FILTER (WHERE creation_method = 'model') AS model_annotations FROM annotations"
    ).to_pylist()[0]
    ctx.summary["annotations"] = f"{counts['annotations']} user annotations holding {counts['objects']} objects"
    ctx.summary["model annotations"] = f"{counts['model_annotations']} (proposals and predictions)"


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("generate synthetic dataset", step_generate),
    ("upload into splits + ground truth", step_upload),
    ("SAM 2 assistance", step_assist),
    ("batch inference on Ray Data", step_batch_inference),
    ("evaluate untrained yolo11n", step_evaluate_untrained),
    ("fine-tune yolo11n on Ray Train", step_train),
    ("evaluate the fine-tuned model", step_evaluate_trained),
    ("deploy on Ray Serve, call, roll back and forward", step_deploy),
    ("export COCO", step_export),
    ("summary", step_summary),
]


def run_demo(settings: DemoSettings) -> DemoContext:
    """Run every step, timing each; write ``report.md`` into the workspace and return the context."""
    import mleval

    settings.workspace.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(settings=settings, ws=mleval.Workspace.open(settings.workspace))
    ctx.ws.attach_ray()  # a local Ray, started here unless this process is already connected
    try:
        for name, step in STEPS:
            print(f"\n== {name}", flush=True)
            start = time.perf_counter()
            step(ctx)
            ctx.timings[name] = time.perf_counter() - start
    finally:
        ctx.ws.close()
    report = _report(ctx)
    (settings.workspace / "report.md").write_text(report)
    print("\n" + report)
    if settings.keep_serving:
        _serve_until_interrupted(ctx)
    return ctx


def _serve_until_interrupted(ctx: DemoContext) -> None:
    print("The endpoint keeps serving (docs at the URL above + /docs); Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped")


def _cell(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _report(ctx: DemoContext) -> str:
    lines = ["# mleval demo report", "", f"Workspace: `{ctx.settings.workspace}`", "", "| what | result |",
             "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in ctx.summary.items()]
    leaderboard = getattr(ctx, "leaderboard", None)
    if leaderboard is not None:
        columns = leaderboard.column_names
        lines += ["", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in leaderboard.to_pylist()]
    lines += ["", "| step | seconds |", "| --- | ---: |"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in ctx.timings.items()]
    lines += [f"| **total** | {sum(ctx.timings.values()):.1f} |", ""]
    return "\n".join(lines)
