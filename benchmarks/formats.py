"""Format layer and workspace import/export timings on a synthetic COCO file: 5,000 images, 40,000 boxes, 80 classes.

Run: ``.venv/bin/python benchmarks/formats.py [--images 5000] [--boxes-per-image 8] [--repeat 3] [--no-workspace]``

The images do not exist on disk: ``read_coco(..., check_images=False)`` reads the annotations
without looking for image files (with the default ``check_images=True`` each image would be an
ItemError and be left out; that variant is timed too). Writers then report each image as
"no image bytes" in ``WriteSummary.issues`` and write annotations only, so the export figures
are annotation-writing costs. Targets: read_coco within 3x of ``pycocotools.coco.COCO(path)``,
each export under 5 s.

The workspace part writes the same number of images and boxes as real 32x32 PNG files (each
distinct, so none is a duplicate) with a COCO file sized to match, then times
``ws.import_dataset`` into a fresh workspace (reading, storing 5,000 files in the blob store and
the catalog, one Arrow batch of annotations) and ``ws.export`` of the result, beside
``pycocotools.coco.COCO(path)`` on that file. The import also prints its own split: the
annotation-only part (read + annotations) is what compares with pycocotools' load; the upload
is file ingestion, which pycocotools does not do. Targets: import within 3x of pycocotools'
load, export under 5 s.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mleval.formats import read_coco, write_coco, write_voc, write_yolo  # noqa: E402


def make_coco(
    path: Path, n_images: int, boxes_per_image: int, seed: int = 0, *, width: int = 640, height: int = 480,
    suffix: str = "jpg",
) -> None:
    rng = random.Random(seed)
    images, annotations = [], []
    for i in range(n_images):
        images.append({"id": i + 1, "file_name": f"{i:012d}.{suffix}", "width": width, "height": height})
        for _ in range(boxes_per_image):
            w, h = rng.uniform(1, width * 5 / 16), rng.uniform(1, height * 5 / 12)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            x, y = min(round(x, 2), width - round(w, 2)), min(round(y, 2), height - round(h, 2))  # stay inside
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": rng.randint(1, 80),
                    "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                    "segmentation": [],
                }
            )
    categories = [{"id": i + 1, "name": f"class_{i:02d}", "supercategory": ""} for i in range(80)]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))


def make_png_files(folder: Path, n_images: int, size: int = 32) -> None:
    """``n_images`` distinct small PNGs named as :func:`make_coco` names them (about 0.1 ms each)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    for i in range(n_images):
        pixels[0, 0] = (i & 255, (i >> 8) & 255, (i >> 16) & 255)  # distinct bytes: no duplicates
        Image.fromarray(pixels).save(folder / f"{i:012d}.png", compress_level=1)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Median wall seconds and median CPU seconds over ``repeat`` runs, and the last result.

    CPU time separates this code's cost from waiting on the disk, which dominates folder
    exports (one file per image) on a busy or slow filesystem.
    """
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--boxes-per-image", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmp", default=None, help="folder for the files (e.g. /dev/shm to leave the disk out)")
    parser.add_argument("--no-workspace", action="store_true", help="skip the workspace import/export part")
    args = parser.parse_args()

    from pycocotools.coco import COCO

    with tempfile.TemporaryDirectory(prefix="mleval-bench-formats-", dir=args.tmp) as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "instances.json"
        make_coco(src, args.images, args.boxes_per_image)
        n_boxes = args.images * args.boxes_per_image
        print(f"COCO file: {args.images} images, {n_boxes} boxes, {src.stat().st_size / 1e6:.1f} MB")

        def pycoco_load():
            with contextlib.redirect_stdout(io.StringIO()):
                return COCO(str(src))

        t_ref, c_ref, _ = timed(pycoco_load, args.repeat)
        t_read, c_read, ds = timed(lambda: read_coco(src, check_images=False), args.repeat)
        t_read_checked, c_read_checked, checked = timed(lambda: read_coco(src), args.repeat)
        assert sum(len(i.objects) for i in ds.images) == n_boxes and not ds.errors

        counter = iter(range(10**6))
        exports = {
            "write_coco (.json)": lambda: write_coco(ds, tmp / f"out{next(counter)}.json"),
            "write_coco (folder)": lambda: write_coco(ds, tmp / f"coco{next(counter)}"),
            "write_yolo (folder)": lambda: write_yolo(ds, tmp / f"yolo{next(counter)}"),
            "write_voc (folder)": lambda: write_voc(ds, tmp / f"voc{next(counter)}"),
            "write_yolo (.zip)": lambda: write_yolo(ds, tmp / f"yolo{next(counter)}.zip"),
        }
        rows = [
            ("pycocotools COCO(path)", t_ref, c_ref, ""),
            ("read_coco, check_images=False", t_read, c_read, f"{t_read / t_ref:.2f}x pycocotools (target <= 3x)"),
            (
                "read_coco, check_images=True",
                t_read_checked,
                c_read_checked,
                f"{len(checked.errors)} missing-image ItemErrors",
            ),
        ]
        for name, fn in exports.items():
            wall, cpu, _ = timed(fn, args.repeat)
            rows.append((name, wall, cpu, "target < 5 s: " + ("ok" if wall < 5 else "MISSED")))
        print(f"{'step':32s} {'wall s':>8s} {'cpu s':>8s}  note")
        for name, wall, cpu, note in rows:
            print(f"{name:32s} {wall:8.3f} {cpu:8.3f}  {note}")
        print("read within 3x of pycocotools:", "ok" if t_read <= 3 * t_ref else "MISSED")
    if not args.no_workspace:
        # After the format part's datasets are freed: a heap full of them slows every GC pass.
        with tempfile.TemporaryDirectory(prefix="mleval-bench-workspace-", dir=args.tmp) as tmp_name:
            workspace_part(Path(tmp_name), args)


def workspace_part(tmp: Path, args: argparse.Namespace) -> None:
    import mleval
    from pycocotools.coco import COCO

    root = tmp / "coco32"
    started = time.perf_counter()
    make_png_files(root / "images", args.images)
    make_coco(root / "instances.json", args.images, args.boxes_per_image, width=32, height=32, suffix="png")
    n_boxes = args.images * args.boxes_per_image
    print(f"\nworkspace: {args.images} 32x32 PNG files + COCO file with {n_boxes} boxes, "
          f"made in {time.perf_counter() - started:.1f} s")

    def pycoco_load():
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(root / "instances.json"))

    counter = iter(range(10**6))
    reports, walls, cpus = [], [], []

    for _ in range(args.repeat):  # each into a fresh workspace; opening it is not timed
        with mleval.Workspace.open(tmp / f"ws{next(counter)}") as ws:
            wall, cpu = time.perf_counter(), time.process_time()
            reports.append(ws.import_dataset(root / "instances.json", format="coco", name="bench"))
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    t_ref, c_ref, _ = timed(pycoco_load, args.repeat)
    t_import, c_import, report = statistics.median(walls), statistics.median(cpus), reports[-1]
    assert report.images == args.images and report.objects == n_boxes and not report.errors, report
    parts = {key: statistics.median(r.timings_s[key] for r in reports) for key in ("read", "upload", "annotations")}
    annotation_only = parts["read"] + parts["annotations"]
    rows = [
        ("pycocotools COCO(path)", t_ref, c_ref, ""),
        ("ws.import_dataset (all)", t_import, c_import,
         f"{t_import / t_ref:.1f}x pycocotools (target <= 3x): " + ("ok" if t_import <= 3 * t_ref else "MISSED")),
        ("  of which read", parts["read"], float("nan"), ""),
        ("  of which upload (image files)", parts["upload"], float("nan"),
         f"{args.images / parts['upload']:.0f} files/s"),
        ("  of which annotations", parts["annotations"], float("nan"), "one add_batch"),
        ("  annotation-only (read + ann.)", annotation_only, float("nan"),
         f"{annotation_only / t_ref:.1f}x pycocotools (target <= 3x): "
         + ("ok" if annotation_only <= 3 * t_ref else "MISSED")),
    ]
    def export(fmt: str, suffix: str = "", **options):
        return lambda: ws.export(dataset="bench", format=fmt, path=tmp / f"e{next(counter)}{suffix}", **options)

    with mleval.Workspace.open(tmp / "ws0") as ws:
        exports = {
            "ws.export coco (folder)": export("coco"),
            "ws.export coco (hard links)": export("coco", link_images=True),
            "ws.export yolo (folder)": export("yolo"),
            "ws.export coco (.zip)": export("coco", ".zip"),
        }
        for name, fn in exports.items():
            wall, cpu, exported = timed(fn, args.repeat)
            assert exported.images == args.images and exported.objects == n_boxes and not exported.issues
            rows.append((name, wall, cpu, "target < 5 s: " + ("ok" if wall < 5 else "MISSED")))
    print(f"{'step':32s} {'wall s':>8s} {'cpu s':>8s}  note")
    for name, wall, cpu, note in rows:
        print(f"{name:32s} {wall:8.3f} {cpu:8.3f}  {note}")


if __name__ == "__main__":
    main()
