"""Batch inference benchmark: ``ws.infer`` (Ray Data) against a plain ultralytics loop.

    .venv/bin/python benchmarks/inference.py [--images 500] [--imgsz 640] [--memory-images 20000]

1. Throughput: N generated images, yolo11n at imgsz 640 on the CPU. ``ws.infer`` end to end
   (job created -> every prediction row and annotation stored; predictor actors started
   inside the measurement, Ray itself already running as in a notebook session) beside a
   plain in-process loop of ``model.predict`` at the same batch size over the same stored
   images, in the same run. The plain loop runs with ultralytics' own thread setting (it
   sets torch to cpu_count - 1 threads) and again with every core.
2. Memory: peak RSS summed over the driver and every Ray process while ``ws.infer`` runs on
   N images and on ``--memory-images`` images (small images at imgsz 64: this measures
   streaming, not compute). Flat means the large run stays within 1.5x of the small one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")


def _images(count: int, size: tuple[int, int], seed: int) -> list[tuple[str, bytes]]:
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    out = []
    for index in range(count):
        array = np.roll(base, index * 7, axis=1)
        array[:4, :4, 0] = index % 256
        array[4:8, :4, 1] = (index // 256) % 256
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "JPEG", quality=85)
        out.append((f"{index:06d}.jpg", buffer.getvalue()))
    return out


class PeakRss:
    """Samples the summed RSS of this process and this Ray instance's processes (its raylet,
    GCS and every worker the raylet started), so other Ray instances on the machine don't count."""

    def __init__(self, interval_s: float = 0.2):
        import psutil
        import ray

        self._psutil = psutil
        node = ray._private.worker._global_node
        self._roots = [p.process.pid for processes in node.all_processes.values() for p in processes]
        self.peak_mib = 0.0
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        processes = {os.getpid(): self._psutil.Process()}
        for pid in self._roots:
            try:
                root = self._psutil.Process(pid)
                processes[pid] = root
                processes.update((child.pid, child) for child in root.children(recursive=True))
            except self._psutil.NoSuchProcess:
                continue
        total = 0
        for process in processes.values():
            try:
                total += process.memory_info().rss
            except self._psutil.NoSuchProcess:
                pass
        return total / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, self._sample())
            time.sleep(self._interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def plain_loop(ws, image_ids, *, imgsz: int, batch_size: int, threads: int | None) -> float:
    """The same stored images, decoded the same way, through ultralytics' predict in this process."""
    import torch
    from ultralytics import YOLO

    from mleval.images.decode import decode_rgb

    model = YOLO("yolo11n.yaml")
    paths = [ws.images.get(i).file_path for i in image_ids]
    model.predict([decode_rgb(ws.blobs.read_bytes(paths[0]))], imgsz=imgsz, device="cpu", verbose=False)  # set up
    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    for index in range(0, len(paths), batch_size):
        batch = [decode_rgb(ws.blobs.read_bytes(p))[..., ::-1] for p in paths[index:index + batch_size]]
        model.predict(batch, imgsz=imgsz, conf=0.25, device="cpu", verbose=False)
    return time.perf_counter() - start


def ws_infer(ws, image_ids, *, imgsz: int, batch_size: int) -> tuple[float, dict]:
    start = time.perf_counter()
    job = ws.infer("yolo11n", images=image_ids, imgsz=imgsz, batch_size=batch_size, conf=0.25)
    job.wait()
    seconds = time.perf_counter() - start
    stored = ws.sql(f"SELECT count(*) AS n FROM predictions WHERE inference_job_id = '{job.id}'").column("n")[0]
    return seconds, {"rows_stored": stored.as_py(), "job": job.id}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--memory-images", type=int, default=20_000)
    args = parser.parse_args()

    import warnings

    import ray

    import mleval

    warnings.simplefilter("ignore")
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, namespace="mleval", log_to_driver=False)
    print(f"ray start: {time.perf_counter() - start:.1f} s (not counted below)")
    results = {}
    with tempfile.TemporaryDirectory(prefix="mleval-bench-") as scratch:
        ws = mleval.Workspace.open(Path(scratch) / "ws")
        ids = [r.id for r in ws.images.upload(_images(args.images, (640, 480), 0), split="test").succeeded]
        infer_s, stored = ws_infer(ws, ids, imgsz=args.imgsz, batch_size=args.batch_size)
        default_s = plain_loop(ws, ids, imgsz=args.imgsz, batch_size=args.batch_size, threads=None)
        all_cores_s = plain_loop(ws, ids, imgsz=args.imgsz, batch_size=args.batch_size, threads=os.cpu_count())
        n = len(ids)
        results["throughput"] = {
            "images": n, "imgsz": args.imgsz, "batch_size": args.batch_size,
            "ws_infer_images_per_s": round(n / infer_s, 2), "ws_infer_s": round(infer_s, 1), **stored,
            "plain_loop_default_threads_images_per_s": round(n / default_s, 2),
            "plain_loop_all_cores_images_per_s": round(n / all_cores_s, 2),
            "ratio_vs_default_loop": round(default_s / infer_s, 2),
            "ratio_vs_all_cores_loop": round(all_cores_s / infer_s, 2),
        }
        print("throughput:", json.dumps(results["throughput"], indent=2), flush=True)

        memory = {}
        for count in (args.images, args.memory_images):
            mws = mleval.Workspace.open(Path(scratch) / f"mem{count}")
            small = [r.id for r in mws.images.upload(_images(count, (64, 48), 1), split="test").succeeded]
            with PeakRss() as rss:
                seconds, _ = ws_infer(mws, small, imgsz=64, batch_size=32)
            memory[f"peak_rss_mib_{count}"] = round(rss.peak_mib, 1)
            memory[f"seconds_{count}"] = round(seconds, 1)
        memory["ratio"] = round(memory[f"peak_rss_mib_{args.memory_images}"] / memory[f"peak_rss_mib_{args.images}"], 2)
        results["memory"] = memory
        print("memory:", json.dumps(memory, indent=2))
    print("targets:")
    print(f"  [{'PASS' if results['throughput']['ratio_vs_default_loop'] >= 0.9 else 'MISS'}] ws.infer >= 0.9x the "
          f"plain loop (ultralytics' default threads); vs an all-cores loop: "
          f"{results['throughput']['ratio_vs_all_cores_loop']}x")
    print(f"  [{'PASS' if memory['ratio'] <= 1.5 else 'MISS'}] peak memory on {args.memory_images} images within "
          f"1.5x of {args.images}")
    ray.shutdown()


if __name__ == "__main__":
    main()
