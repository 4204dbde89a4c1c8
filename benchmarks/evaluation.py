"""Time ``mleval.evaluation.coco_evaluate`` against pycocotools and faster-coco-eval on one synthetic case.

Run: ``.venv/bin/python benchmarks/evaluation.py`` (defaults: 5,000 images, 80 classes, ~37,000
ground-truth boxes, 10 and 100 detections per image). ``coco_evaluate`` is timed end to end
(input checks, engine, summary); the others' loading is shown apart from evaluate + accumulate,
and the speed-up compares our end-to-end time with their evaluate + accumulate alone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mleval.evaluation import coco_evaluate  # noqa: E402
from mleval.evaluation.diagnostics import calibration, tide_errors  # noqa: E402
from mleval.evaluation.synthetic import make_coco_case  # noqa: E402


def _copies(gt: dict, dt: list[dict]) -> tuple[dict, list[dict]]:
    # pycocotools and faster-coco-eval write into the dicts they get (ignore, area, id): give each its own.
    return {**gt, "annotations": [dict(a) for a in gt["annotations"]]}, [dict(d) for d in dt]


def _run_cocoapi(module: str, gt: dict, dt: list[dict], iou_type: str) -> tuple[float, float, np.ndarray, np.ndarray]:
    if module == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    else:
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    gt, dt = _copies(gt, dt)
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dt)
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        loaded = time.perf_counter()
        evaluator.evaluate()
        evaluator.accumulate()
        done = time.perf_counter()
        evaluator.summarize()
    return loaded - start, done - loaded, np.asarray(evaluator.stats), np.asarray(evaluator.eval["precision"])


def bench(args: argparse.Namespace, dets_per_image: int) -> list[tuple]:
    gt, dt = make_coco_case(
        num_images=args.images,
        num_classes=args.classes,
        gt_per_image=args.gt_per_image,
        dets_per_image=dets_per_image,
        crowd_fraction=args.crowd_fraction,
        score_decimals=3,
        seed=args.seed,
    )
    print(
        f"\ncase: {args.images} images, {args.classes} classes, {len(gt['annotations'])} ground truths, "
        f"{len(dt)} detections ({dets_per_image}/image)",
        flush=True,
    )
    start = time.perf_counter()
    ours = coco_evaluate(gt, dt)
    ours_total = time.perf_counter() - start
    start = time.perf_counter()
    ours.matches()
    matches_s = time.perf_counter() - start
    start = time.perf_counter()
    tide_errors(ours)  # every stored run computes these two as well
    calibration(ours)
    diagnostics_s = time.perf_counter() - start

    rows = [("mleval coco_evaluate", None, ours_total, ours_total, ours.stats, ours.precision)]
    engines = ["faster-coco-eval"] + ([] if args.skip_pycocotools else ["pycocotools"])
    for name in engines:
        load_s, eval_s, stats, precision = _run_cocoapi(name.replace("-", "_"), gt, dt, "bbox")
        rows.append((name, load_s, eval_s, load_s + eval_s, stats, precision))
        print(f"  {name} done", flush=True)
    reference = next((r for r in rows if r[0] == "pycocotools"), rows[1])
    print(f"  (mleval per-object matches at 10 IoU thresholds, on demand: {matches_s:.2f} s; "
          f"TIDE errors + calibration, stored with every ws.evaluate run: {diagnostics_s:.2f} s)")
    return [(dets_per_image, r, reference) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--gt-per-image", type=float, default=7.4, help="ground truths per image (default 7.4)")
    parser.add_argument("--dets", type=int, nargs="+", default=[10, 100], help="detections per image, one case each")
    parser.add_argument("--crowd-fraction", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-pycocotools", action="store_true", help="compare against faster-coco-eval only")
    args = parser.parse_args()

    results = [row for n in args.dets for row in bench(args, n)]
    ref_name = results[-1][2][0]
    header = (
        f"{'dets/img':>8}  {'engine':<22}{'load s':>8}{'eval+acc s':>12}{'total s':>9}"
        f"{'speed-up':>10}  max|d stats| / |d precision| vs {ref_name}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for dets, (name, load_s, eval_s, total_s, stats, precision), ref in results:
        speedup = ref[2] / total_s  # reference evaluate+accumulate over this engine's total
        d_stats = np.abs(stats - ref[4]).max()
        d_prec = np.abs(precision - ref[5]).max()
        load = "-" if load_s is None else f"{load_s:.2f}"
        print(
            f"{dets:>8}  {name:<22}{load:>8}{eval_s:>12.2f}{total_s:>9.2f}{speedup:>9.1f}x  "
            f"{d_stats:.1e} / {d_prec:.1e} ({'agree' if max(d_stats, d_prec) <= 1e-9 else 'DIFFER'})"
        )
    print(f"\nspeed-up = {ref_name} evaluate+accumulate seconds / engine total seconds (mleval: end to end).")


if __name__ == "__main__":
    main()
