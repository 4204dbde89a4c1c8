"""Ingest and catalog benchmark.

    .venv/bin/python benchmarks/ingest.py [--images 2000] [--annotations 1000000]

1. Ingest: N generated images of mixed formats and sizes through ``ws.images.upload``,
   beside a plain ``shutil.copy`` loop over the same files, in the same run. Peak memory
   (RSS) of an ingest of N/4 and of N files, each in a fresh process, shows whether
   memory stays flat in the number of files. For scale, the same rounds also time reading
   and hashing (sha256) the files in one process: the part of ingest that content
   addressing cannot skip.
2. Catalog: 1,000,000 annotation rows through ``ws.annotations.add_batch`` (Arrow
   batches), point lookups by image_id (p50/p99) and a per-class count over all rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROUNDS = 3
TARGETS = {"ingest_vs_copy": 0.5, "insert_s": 5.0, "lookup_p99_ms": 5.0, "class_count_ms": 200.0}


def _generate(folder: Path, count: int) -> list[Path]:
    from mleval.synthetic import generate_image_files

    return generate_image_files(folder, count=count, min_size=64, max_size=1024, seed=0)


def _copy_loop(files: list[Path], destination: Path) -> float:
    destination.mkdir(parents=True)
    start = time.perf_counter()
    for index, path in enumerate(files):
        shutil.copy(path, destination / f"{index}-{path.name}")
    return time.perf_counter() - start


def _hash_loop(files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        hashlib.sha256(path.read_bytes()).digest()
    return time.perf_counter() - start


def _ingest(files: list[Path], workspace: Path) -> tuple[float, object]:
    import mleval

    ws = mleval.Workspace.open(workspace)
    start = time.perf_counter()
    report = ws.images.upload(files, split="train")
    seconds = time.perf_counter() - start
    ws.close()
    return seconds, report


def _peak_rss_child(folder: str, count: int) -> None:
    """Runs in a fresh process: ingest the first ``count`` files, print peak RSS in MiB."""
    files = sorted(Path(folder).iterdir())[:count]
    with tempfile.TemporaryDirectory() as workspace:
        _ingest(files, Path(workspace))
    print(json.dumps({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _peak_rss(folder: Path, count: int) -> float:
    output = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(folder), "--images", str(count)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_rss_mib"]


def bench_ingest(count: int, scratch: Path) -> dict:
    source = scratch / "source"
    start = time.perf_counter()
    files = _generate(source, count)
    generated_s = time.perf_counter() - start
    total_mib = sum(p.stat().st_size for p in files) / 2**20
    _copy_loop(files[:50], scratch / "warm")  # warm the page cache for both sides alike
    # Alternate the two, three rounds each, and keep the medians: disk write-back makes single runs noisy.
    copies, ingests, hashes = [], [], []
    for round_ in range(ROUNDS):
        copies.append(_copy_loop(files, scratch / f"copy{round_}"))
        seconds, report = _ingest(files, scratch / f"ws{round_}")
        ingests.append(seconds)
        hashes.append(_hash_loop(files))
    copy_s, ingest_s, hash_s = statistics.median(copies), statistics.median(ingests), statistics.median(hashes)
    rss_quarter = _peak_rss(source, count // 4)
    rss_full = _peak_rss(source, count)
    return {
        "files": count, "MiB": round(total_mib, 1), "generate_s": round(generated_s, 1),
        "copy_images_per_s": round(count / copy_s, 1),
        "ingest_images_per_s": round(count / ingest_s, 1),
        "ingest_vs_copy": round(copy_s / ingest_s, 2),
        "read_and_sha256_images_per_s": round(count / hash_s, 1),
        "read_and_sha256_vs_copy": round(copy_s / hash_s, 2),
        "succeeded": len(report.succeeded), "duplicates": len(report.duplicates), "failed": len(report.failed),
        f"peak_rss_mib_{count // 4}_files": round(rss_quarter, 1),
        f"peak_rss_mib_{count}_files": round(rss_full, 1),
        "rss_ratio": round(rss_full / rss_quarter, 2),
    }


def bench_catalog(rows: int, scratch: Path, *, images: int = 10_000, batch: int = 100_000) -> dict:
    import mleval
    from mleval.catalog.catalog import utc_now

    ws = mleval.Workspace.open(scratch / "catalog-ws")
    rng = np.random.default_rng(0)
    # Image rows straight into the catalog: the benchmark is about annotation volume.
    image_ids = [str(u) for u in ws.sql(f"SELECT uuid() AS id FROM range({images})").column("id").to_pylist()]
    ws.catalog.insert("images", pa.table({
        "id": image_ids, "filename": [f"{i}.jpg" for i in range(images)], "file_path": image_ids,
        "sha256": image_ids, "file_size": [1000] * images, "format": ["JPEG"] * images,
        "width": [640] * images, "height": [480] * images, "dataset_split": ["train"] * images,
        "upload_timestamp": pa.array([utc_now()] * images, pa.timestamp("us", tz="UTC")),
    }))
    classes = np.array([f"class{i}" for i in range(80)])
    batches = []
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        x1, y1 = rng.uniform(0, 500, n), rng.uniform(0, 350, n)
        boxes = np.stack([x1, y1, x1 + rng.uniform(5, 140, n), y1 + rng.uniform(5, 130, n)], 1).ravel()
        offsets = pa.array(np.arange(n + 1, dtype=np.int32))
        batches.append(pa.table({
            "image_id": pa.array(np.asarray(image_ids)[rng.integers(0, images, n)]),
            "class_labels": pa.ListArray.from_arrays(offsets, pa.array(classes[rng.integers(0, 80, n)])),
            "bounding_boxes": pa.ListArray.from_arrays(offsets, pa.FixedSizeListArray.from_arrays(pa.array(boxes), 4)),
            "confidence_scores": pa.ListArray.from_arrays(offsets, pa.array(rng.uniform(0, 1, n))),
        }))
    start = time.perf_counter()
    for table in batches:
        ws.annotations.add_batch(table)
    insert_s = time.perf_counter() - start

    lookups = []
    for image_id in rng.choice(image_ids, 2000, replace=False):
        start = time.perf_counter()
        ws.catalog.query("SELECT * FROM annotations WHERE image_id = ?", [image_id])
        lookups.append((time.perf_counter() - start) * 1e3)
    start = time.perf_counter()
    per_class = ws.sql(
        "SELECT label, count(*) AS n FROM (SELECT unnest(class_labels) AS label FROM annotations) GROUP BY label"
    )
    class_ms = (time.perf_counter() - start) * 1e3
    total = ws.sql("SELECT count(*) AS n FROM annotations").column("n")[0].as_py()
    ws.close()
    return {
        "rows": total, "insert_s": round(insert_s, 2), "rows_per_s": round(total / insert_s),
        "lookup_p50_ms": round(float(np.percentile(lookups, 50)), 2),
        "lookup_p99_ms": round(float(np.percentile(lookups, 99)), 2),
        "class_count_ms": round(class_ms, 1), "classes": per_class.num_rows,
    }


def _verdicts(ingest: dict, catalog: dict) -> list[str]:
    checks = [
        ("ingest >= 0.5x plain copy", ingest["ingest_vs_copy"] >= TARGETS["ingest_vs_copy"]),
        ("memory flat (peak RSS at N within 1.25x of N/4)", ingest["rss_ratio"] <= 1.25),
        ("1M rows inserted in < 5 s", catalog["insert_s"] < TARGETS["insert_s"]),
        ("p99 lookup < 5 ms", catalog["lookup_p99_ms"] < TARGETS["lookup_p99_ms"]),
        ("per-class count < 200 ms", catalog["class_count_ms"] < TARGETS["class_count_ms"]),
    ]
    return [f"  [{'PASS' if ok else 'MISS'}] {name}" for name, ok in checks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--annotations", type=int, default=1_000_000)
    parser.add_argument("--rss-child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        _peak_rss_child(args.rss_child, args.images)
        return
    print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="mleval-bench-") as scratch:
        ingest = bench_ingest(args.images, Path(scratch))
        print("ingest:", json.dumps(ingest, indent=2))
        catalog = bench_catalog(args.annotations, Path(scratch))
        print("catalog:", json.dumps(catalog, indent=2))
    print("targets:")
    print("\n".join(_verdicts(ingest, catalog)))


if __name__ == "__main__":
    main()
