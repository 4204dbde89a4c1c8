"""The main job (`mleval demo`): the user's journey on synthetic data, step by step.

Each step is a function of the demo context; a second run on the same workspace reuses
what exists (uploads are recognised as duplicates, the dataset is found by name).
"""

from __future__ import annotations

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


@dataclass
class DemoContext:
    settings: DemoSettings
    ws: object = None
    data: object = None
    summary: dict[str, object] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def _progress(description: str, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="img", leave=True)


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
        with _progress(f"upload {split}", len(images)) as bar:
            report = ws.images.upload(
                [image.path for image in images], split=split, dataset=DATASET,
                progress=lambda done, total: bar.update(done - bar.n),
            )
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


def step_summary(ctx: DemoContext) -> None:
    counts = ctx.ws.sql(
        "SELECT count(*) AS annotations, sum(len(class_labels)) AS objects FROM annotations"
    ).to_pylist()[0]
    ctx.summary["annotations"] = f"{counts['annotations']} user annotations holding {counts['objects']} objects"


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("generate synthetic dataset", step_generate),
    ("upload into splits + ground truth", step_upload),
    ("summary", step_summary),
]


def run_demo(settings: DemoSettings) -> DemoContext:
    """Run every step, timing each; write ``report.md`` into the workspace and return the context."""
    import mleval

    settings.workspace.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(settings=settings, ws=mleval.Workspace.open(settings.workspace))
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
    return ctx


def _report(ctx: DemoContext) -> str:
    lines = ["# mleval demo report", "", f"Workspace: `{ctx.settings.workspace}`", "", "| what | result |",
             "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in ctx.summary.items()]
    lines += ["", "| step | seconds |", "| --- | ---: |"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in ctx.timings.items()]
    lines += [f"| **total** | {sum(ctx.timings.values()):.1f} |", ""]
    return "\n".join(lines)
