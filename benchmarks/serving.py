"""Serving benchmark: a deployed yolo11n over HTTP against in-process predict, same run.

    .venv/bin/python benchmarks/serving.py [--requests 200] [--rounds 3] [--imgsz 640] [--cpus N]

yolo11n at imgsz 640 on the CPU, 640x480 JPEG uploads. Measured in one process:
1. in-process: decode + ``predictor.predict([image])`` one at a time (what a notebook does),
   and in batches of 8, on ``--cpus`` torch threads like the replica;
2. the HTTP endpoint (multipart upload, API key, one replica holding ``--cpus`` CPUs; Ray
   started as mleval starts a local one, so HAProxy relays HTTP where ``ray[serve]`` ships
   it) with dynamic batching on (max_batch_size 8, no wait: a batch is what arrived while the
   model was busy) at concurrency 1 and 8;
3. the same endpoint with batching off (max_batch_size 1, updated in place) at concurrency 8;
4. for scale, Serve's own cost on this machine: an endpoint on the same Serve instance that
   reads the same multipart upload and answers (no decode, no model, no key), at once and
   after holding the request as long as the round's in-process p50 (asleep, no CPU used).
In-process, concurrency 1 and Serve's own cost alternate over ``--rounds`` rounds of
``--requests`` each, and so do batching on and off: a machine that speeds up or slows down
during the run weighs on both.
Latency is per request as the client sees it (p50/p99 ms over all rounds); throughput is
requests / wall time, the median of the rounds.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
REPO = Path(__file__).resolve().parents[1]


def _jpegs(count: int) -> list[bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    out = []
    for index in range(count):
        buffer = io.BytesIO()
        Image.fromarray(np.roll(base, index * 13, axis=1)).save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def _summary(runs: list[dict]) -> dict:
    """One figure set over rounds: latency percentiles over every request of every round,
    throughput the median of the rounds' (each round is ``len / wall``)."""
    import numpy as np

    latencies = np.concatenate([run["latencies"] for run in runs])
    summary = {"requests": int(latencies.size), "failures": sum(run["failures"] for run in runs),
               "p50_ms": round(float(np.percentile(latencies, 50)), 1),
               "p99_ms": round(float(np.percentile(latencies, 99)), 1),
               "req_per_s": round(float(np.median([len(run["latencies"]) / run["wall"] for run in runs])), 2)}
    if "batch_sizes" in runs[0]:
        # Where the time goes: the model call, the replica's whole handler, and the client's view.
        summary["mean_batch_size"] = round(float(np.mean(np.concatenate([run["batch_sizes"] for run in runs]))), 2)
        summary["model_p50_ms"] = round(float(np.percentile(np.concatenate([run["model_ms"] for run in runs]), 50)), 1)
        summary["replica_p50_ms"] = round(float(np.percentile(np.concatenate([run["replica_ms"] for run in runs]), 50)),
                                          1)
    return summary


def _in_process(predictor, images: list[bytes], batch: int) -> dict:
    from mleval.images.decode import decode_rgb

    latencies, started = [], time.perf_counter()
    for start in range(0, len(images), batch):
        t0 = time.perf_counter()
        predictor.predict([decode_rgb(b) for b in images[start:start + batch]], conf=0.25)
        latencies += [(time.perf_counter() - t0) * 1000.0] * len(images[start:start + batch])
    return {"latencies": latencies, "wall": time.perf_counter() - started, "failures": 0}


def _http(url: str, key: str, images: list[bytes], concurrency: int, query: str = "") -> dict:
    import requests

    local = threading.local()

    def one(data: bytes):
        session = getattr(local, "session", None) or setattr(local, "session", requests.Session()) or local.session
        t0 = time.perf_counter()
        response = session.post(url + "/predict" + query, files={"file": ("a.jpg", data, "image/jpeg")},
                                headers={"X-API-Key": key}, timeout=120)
        return (time.perf_counter() - t0) * 1000.0, response.status_code, response.json().get("timings", {})

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, images))
    wall = time.perf_counter() - started
    ok = [r for r in results if r[1] == 200]
    run = {"latencies": [r[0] for r in ok], "wall": wall, "failures": len(results) - len(ok)}
    if ok and ok[0][2]:  # the model's endpoint reports its timings
        run.update(batch_sizes=[r[2].get("batch_size", 1) for r in ok],
                   model_ms=[sum(r[2].get(k, 0.0) for k in ("preprocess_ms", "inference_ms", "postprocess_ms"))
                             for r in ok],
                   replica_ms=[r[2].get("total_ms", 0.0) for r in ok])
    return run


def _deploy_bare_endpoint() -> None:
    """``POST /bare/...?hold_ms=N``: reads the multipart upload, sleeps ``N`` ms and answers its
    size; no CPUs reserved."""
    import asyncio

    from ray import serve

    @serve.deployment(ray_actor_options={"num_cpus": 0})
    class Bare:
        async def __call__(self, request):  # Serve hands over a starlette Request
            form = await request.form()
            size = len(await form["file"].read())
            await asyncio.sleep(float(request.query_params.get("hold_ms", 0)) / 1000.0)
            return {"bytes": size}

    serve.run(Bare.bind(), name="bare", route_prefix="/bare")


class _Results(dict):
    """Prints each figure to stderr as it lands, so a long run shows progress."""

    def __setitem__(self, key, value):
        print(f"{key}: {value}", file=sys.stderr, flush=True)
        super().__setitem__(key, value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of Ray and of the one replica")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of --requests each")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))

    import ray
    import torch
    from ray import serve

    import mleval
    from mleval.cluster import free_port, http_ingress, prepare_local_ray_environment
    from mleval.deploy import deploy

    prepare_local_ray_environment()  # as a local Ray that mleval starts: HAProxy in front where available
    print(f"HTTP ingress: {http_ingress()}", file=sys.stderr, flush=True)
    ray.init(num_cpus=args.cpus, include_dashboard=False, namespace="mleval", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "YOLO_OFFLINE": "1"}})
    images = _jpegs(args.requests)
    results = _Results()
    with tempfile.TemporaryDirectory() as folder:
        ws = mleval.Workspace.open(Path(folder) / "ws")
        predictor = ws.models.load("yolo11n", imgsz=args.imgsz).predictor
        _in_process(predictor, images[:4], 1)  # warm up
        torch.set_num_threads(args.cpus)  # as many threads as the replica below (ultralytics set its own in warm-up)

        common = dict(name="bench", imgsz=args.imgsz, port=free_port(), rate_limit=None, cpus_per_replica=args.cpus)
        versions = (f"1.0.{n}" for n in range(100))
        t0 = time.perf_counter()
        dep = deploy(ws, "yolo11n", version=next(versions), max_batch_size=8, **common)
        results["deploy (serve.run to ready), s"] = {"seconds": round(time.perf_counter() - t0, 1)}
        key = dep.create_api_key("bench")
        _http(dep.url, key, images[:8], 8)  # warm up connections and the batch path
        _deploy_bare_endpoint()
        bare_url = dep.url.rsplit("/", 1)[0] + "/bare"
        _http(bare_url, key, images[:8], 1)

        # Rounds alternate between the things compared, so a machine that speeds up or slows
        # down during the run (other tenants, memory) weighs on both alike.
        in_process, one, bare, held = [], [], [], []
        for _ in range(args.rounds):
            in_process.append(_in_process(predictor, images, 1))
            one.append(_http(dep.url, key, images, 1))
            bare.append(_http(bare_url, key, images, 1))
            hold_ms = round(statistics.median(in_process[-1]["latencies"]), 1)
            held.append({**_http(bare_url, key, images, 1, query=f"?hold_ms={hold_ms}"), "hold_ms": hold_ms})
        results["in-process, one at a time"] = _summary(in_process)
        results["in-process, batches of 8"] = _summary([_in_process(predictor, images, 8)])
        results["HTTP, batching on, concurrency 1"] = _summary(one)
        results["HTTP, Serve's own cost (same upload, no model), concurrency 1"] = _summary(bare)
        results["HTTP, Serve's own cost, request held as long as in-process p50, concurrency 1"] = {
            **_summary(held), "held_ms": [run["hold_ms"] for run in held],
            "p50_beyond_hold_ms": round(statistics.median(
                latency - run["hold_ms"] for run in held for latency in run["latencies"]), 1)}

        def switch(max_batch_size: int) -> float:
            t0 = time.perf_counter()
            deploy(ws, "yolo11n", version=next(versions), max_batch_size=max_batch_size, **common)
            seconds = time.perf_counter() - t0
            _http(dep.url, key, images[:8], 8)
            return seconds

        batching_on, batching_off, updates = [], [], []
        for _ in range(args.rounds):
            batching_on.append(_http(dep.url, key, images, 8))
            updates.append(switch(1))
            batching_off.append(_http(dep.url, key, images, 8))
            updates.append(switch(8))
        results["HTTP, batching on, concurrency 8"] = _summary(batching_on)
        results["HTTP, batching off, concurrency 8"] = _summary(batching_off)
        results["in-place updates (max_batch_size 8 <-> 1), s"] = {
            "median_seconds": round(statistics.median(updates), 1)}
        dep.delete()
        serve.delete("bare")
    ray.shutdown()
    print(json.dumps({"imgsz": args.imgsz, "cpus": args.cpus, "ingress": http_ingress(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
