"""Load test of a deployed endpoint: mixed valid and invalid requests from many clients for minutes.

    .venv/bin/python benchmarks/serving_load.py [--minutes 5] [--clients 32] [--cpus N]

yolo11n (built from its config, at its own imgsz) deployed by ``mleval.deploy`` on a local Ray,
one replica holding ``--cpus`` CPUs, the default upload limits (20 MiB, 50 megapixels) and a
per-key rate limit. ``--clients`` threads send requests back to back for ``--minutes``, each
drawn at random (seeded) from a mix:

- valid: 640x480 JPEG and PNG uploads, 3- and 12-megapixel JPEGs, a base64 JSON body, the raw
  bytes as ``image/jpeg``;
- invalid: not an image, a PNG cut short, a JPEG cut in half with its end marker put back, an
  empty file, a wrong content type, bad JSON, bad base64, no key, an unknown key, an image
  past the pixel limit, a body past the byte limit, and one key all the clients share, past
  its limit of 3/s (each client's own key has the same limit, which it meets in bursts of fast
  invalid requests). A client told 429 waits as long as Retry-After says, as a good client does.

Printed: requests, the count of every status code, latency p50/p99 of the 200s and of the
rest, 5xx and connection failures, and the replica's memory (RSS) sampled every 5 s, per
minute. Targets: no 5xx and no connection failure; the last minute's peak RSS within 10% (and
64 MiB) of the first minute's.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")
REPO = Path(__file__).resolve().parents[1]
RSS_SAMPLE_S = 5.0
RATE_LIMIT = "3/s"  # per key: each client has its own, and all share one more


def _encoded(width: int, height: int, fmt: str, seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    # Smooth content (a gradient and a few blocks) keeps megapixel files a realistic size.
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([(x * 255 // width), (y * 255 // height), ((x + y) * 127 // (width + height))], -1)
    for _ in range(6):
        x0, y0 = rng.integers(0, width - width // 5), rng.integers(0, height - height // 5)
        pixels[y0:y0 + height // 5, x0:x0 + width // 5] = rng.integers(0, 255, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, fmt, quality=85) if fmt == "JPEG" else \
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def _request_mix(key: str, shared_key: str) -> list[tuple[str, float, dict]]:
    """(case, weight, requests.post arguments) for every kind of request a client sends with its
    own ``key``; the "shared key" case uses one key of all the clients, which meets its limit."""
    jpeg, png = _encoded(640, 480, "JPEG", 1), _encoded(640, 480, "PNG", 2)
    three_mp, twelve_mp = _encoded(2048, 1536, "JPEG", 3), _encoded(4000, 3000, "JPEG", 4)
    too_many_pixels = _encoded(10_000, 6_000, "JPEG", 5)  # 60 MP > 50 MP
    auth = {"Authorization": f"Bearer {key}"}

    def upload(data: bytes, name: str = "a.jpg", kind: str = "image/jpeg", headers=auth) -> dict:
        return {"files": {"file": (name, data, kind)}, "headers": headers}

    return [
        ("valid jpeg", 20, upload(jpeg)),
        ("valid png", 8, upload(png, "a.png", "image/png")),
        ("valid 3 MP jpeg", 6, upload(three_mp)),
        ("valid 12 MP jpeg", 3, upload(twelve_mp)),
        ("valid base64 json", 5, {"json": {"image_base64": base64.b64encode(jpeg).decode()}, "headers": auth}),
        ("valid raw bytes", 5, {"data": jpeg, "headers": {**auth, "Content-Type": "image/jpeg"}}),
        ("not an image", 3, upload(b"hello, not an image" * 10, "a.png", "image/png")),
        ("png cut short", 3, upload(png[: len(png) // 2], "a.png", "image/png")),
        ("jpeg cut, end marker put back", 3, upload(jpeg[: len(jpeg) // 2] + b"\xff\xd9")),
        ("empty file", 2, upload(b"")),
        ("wrong content type", 2, {"data": b"abc", "headers": {**auth, "Content-Type": "text/plain"}}),
        ("bad json", 2, {"data": b"{not json", "headers": {**auth, "Content-Type": "application/json"}}),
        ("bad base64", 2, {"json": {"image_base64": "%%%not-base64%%%"}, "headers": auth}),
        ("no key", 3, upload(jpeg, headers={})),
        ("unknown key", 3, upload(jpeg, headers={"Authorization": "Bearer mlk_not_a_key"})),
        ("too many pixels", 2, upload(too_many_pixels)),
        ("body past the byte limit", 1, upload(os.urandom(21 << 20), "a.bin", "application/octet-stream")),
        ("shared key, past its limit", 15, upload(b"x", "a.txt", "text/plain",
                                                  headers={"Authorization": f"Bearer {shared_key}"})),
    ]


def _replica_rss(app: str) -> int | None:
    """The RSS of the replica's process (Ray titles it ``ray::ServeReplica:<app>:<deployment>``)."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        if any(f"ServeReplica:{app}:" in part for part in process.info["cmdline"] or ()):
            try:
                return process.memory_info().rss
            except psutil.Error:
                return None
    return None


def _load(url: str, mixes: list[list], seconds: float, app: str) -> dict:
    import requests

    stop_at = time.monotonic() + seconds
    lock = threading.Lock()
    codes: Counter = Counter()
    per_case: dict[str, Counter] = {}
    ok_ms, other_ms, failures, rss = [], [], [], []
    cases, weights = [m[0] for m in mixes[0]], [m[1] for m in mixes[0]]

    def client(index: int) -> None:
        rng, session = random.Random(index), requests.Session()
        arguments = {m[0]: m[2] for m in mixes[index]}
        while time.monotonic() < stop_at:
            case = rng.choices(cases, weights)[0]
            t0 = time.perf_counter()
            try:
                response = session.post(url + "/predict", timeout=300, **arguments[case])
            except requests.RequestException as error:
                with lock:
                    failures.append(f"{case}: {type(error).__name__}")
                session = requests.Session()
                continue
            elapsed = (time.perf_counter() - t0) * 1000.0
            with lock:
                codes[response.status_code] += 1
                per_case.setdefault(case, Counter())[response.status_code] += 1
                (ok_ms if response.status_code == 200 else other_ms).append(elapsed)
            if response.status_code == 429:
                time.sleep(float(response.headers.get("Retry-After", 1)))

    def sample_memory() -> None:
        started = time.monotonic()
        while time.monotonic() < stop_at:
            value = _replica_rss(app)
            if value is not None:
                rss.append((time.monotonic() - started, value))
            time.sleep(RSS_SAMPLE_S)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    started = time.monotonic()
    with ThreadPoolExecutor(len(mixes)) as pool:
        list(pool.map(client, range(len(mixes))))
    wall = time.monotonic() - started
    sampler.join(timeout=RSS_SAMPLE_S * 2)
    return {"wall": wall, "codes": codes, "per_case": per_case, "ok_ms": ok_ms, "other_ms": other_ms,
            "failures": failures, "rss": rss}


def _percentiles(values: list[float]) -> dict:
    import numpy as np

    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": round(float(np.percentile(values, 50)), 1),
            "p99_ms": round(float(np.percentile(values, 99)), 1)}


def _memory_by_minute(rss: list[tuple[float, int]]) -> dict[str, float]:
    minutes: dict[int, int] = {}
    for at, value in rss:
        minutes[int(at // 60)] = max(minutes.get(int(at // 60), 0), value)
    return {f"minute {m + 1}": round(v / 2**20, 1) for m, v in sorted(minutes.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs of Ray and of the one replica")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))

    import ray

    import mleval
    from mleval.cluster import free_port, http_ingress, prepare_local_ray_environment
    from mleval.deploy import deploy

    prepare_local_ray_environment()
    ray.init(num_cpus=args.cpus, include_dashboard=False, namespace="mleval", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "YOLO_OFFLINE": "1"}})
    with tempfile.TemporaryDirectory() as folder:
        ws = mleval.Workspace.open(Path(folder) / "ws")
        dep = deploy(ws, "yolo11n", name="load", port=free_port(), rate_limit=RATE_LIMIT, cpus_per_replica=args.cpus)
        shared = dep.create_api_key("shared")
        mixes = [_request_mix(dep.create_api_key(f"client-{n}"), shared) for n in range(args.clients)]
        print(f"deployed {dep.url} (ingress {http_ingress()}); {args.clients} clients for {args.minutes} min",
              file=sys.stderr, flush=True)
        run = _load(dep.url, mixes, args.minutes * 60.0, "load")
        dep.delete()
    ray.shutdown()

    memory = _memory_by_minute(run["rss"])
    minutes = list(memory.values())
    server_errors = sum(n for code, n in run["codes"].items() if code >= 500)
    result = {
        "clients": args.clients, "minutes": args.minutes, "cpus": args.cpus,
        "requests": sum(run["codes"].values()), "req_per_s": round(sum(run["codes"].values()) / run["wall"], 2),
        "status_codes": dict(sorted(run["codes"].items())),
        "by_case": {case: dict(sorted(c.items())) for case, c in sorted(run["per_case"].items())},
        "latency_200": _percentiles(run["ok_ms"]), "latency_other": _percentiles(run["other_ms"]),
        "5xx": server_errors, "connection_failures": len(run["failures"]),
        "connection_failure_examples": run["failures"][:5],
        "replica_peak_rss_mib_by_minute": memory,
    }
    flat = len(minutes) >= 2 and minutes[-1] <= max(minutes[0] * 1.10, minutes[0] + 64)
    result["targets"] = {"no 5xx": server_errors == 0, "no connection failure": not run["failures"],
                         "memory flat (last minute within 10% or 64 MiB of the first)": flat}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
