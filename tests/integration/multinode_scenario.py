"""A two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``) running the whole
mleval journey: 2-worker training spread over both nodes, batch inference with one predictor
per node, a 2-replica deployment answering HTTP, and the catalog's single writer.

Run in its own process (the test session already holds a local Ray):
``python tests/integration/multinode_scenario.py WORKDIR``. It records facts rather than
judging them: the last stdout line is ``MULTINODE_RESULT <json>`` (see ``test_multinode.py``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

RESULT_PREFIX = "MULTINODE_RESULT "
MiB = 1024 * 1024
NODE_CPUS = 2  # per node: both nodes could hold both training workers, so only SPREAD splits them
IMAGE_SIZE = 64
HYPERPARAMETERS = {"epochs": 1, "batch_size": 8, "learning_rate": 0.001, "imgsz": IMAGE_SIZE, "mosaic": 0.0,
                   "warmup_epochs": 0}
# A one-epoch model scores every box low: conf 0 keeps them all, so each image's rows differ (in their
# low digits); the endpoint answers at SERVE_CONF, a few boxes per image.
CONF = 0.0
SERVE_CONF = 0.001


def _environment(ray_tmp: str) -> None:
    """Raylets, and so every worker on both nodes, inherit this process's environment."""
    repo = str(Path(__file__).resolve().parents[2])
    if repo not in sys.path:
        sys.path.insert(0, repo)
    import tests.conftest  # noqa: F401  (its settings: YOLO_OFFLINE, YOLO_CONFIG_DIR)

    os.environ["RAY_TMPDIR"] = ray_tmp  # its own ray_current_cluster file: other sessions' ray.init() never find it
    os.environ.pop("RAY_ADDRESS", None)
    # Both nodes are this one machine: each node's HAProxy would listen on the same HTTP port.
    # Serve's own proxy (one per node, ports assigned) serves this scenario.
    os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))


class Clock:
    def __init__(self):
        self.last = time.perf_counter()
        self.phases: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(now - self.last, 1)
        self.last = now


def _actors(dashboard: str, class_name_contains: str = "", **equal: str) -> list[dict]:
    """Ray's actor table (live and dead actors) through the state API of this cluster's dashboard."""
    from ray.util.state import list_actors

    filters = [(key, "=", value) for key, value in equal.items()]
    return [{"class_name": a.class_name, "name": a.name, "state": a.state, "node_id": a.node_id, "pid": a.pid}
            for a in list_actors(address=dashboard, filters=filters, limit=10_000, raise_on_missing_output=False)
            if class_name_contains in a.class_name]


def _pids_with_open(path: Path) -> list[int]:
    """Every process on this machine (both nodes' workers included) holding ``path`` (or its WAL) open."""
    import psutil

    holders = []
    for process in psutil.process_iter():
        try:
            if any(f.path.startswith(str(path)) for f in process.open_files()):
                holders.append(process.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return sorted(holders)


def _predictions(ws, job_id: str) -> dict[str, dict]:
    rows = ws.sql(f"SELECT image_id, boxes_xyxy, class_names, scores, error FROM predictions "
                  f"WHERE inference_job_id = '{job_id}'").to_pylist()
    return {str(r["image_id"]): r for r in rows}


def _train(ws, clock: Clock, dashboard: str) -> dict:
    from mleval.jobs.training import training_metrics

    job = ws.train("yolo11n", "shapes", hyperparameters=HYPERPARAMETERS, workers=2, use_gpu=False,
                   placement_strategy="SPREAD", name="shapes-multinode")
    job.wait(timeout=300)
    clock.lap("train")
    ranks = {int(rank): int(pid) for rank, pid in re.findall(r"rank (\d+) pid (\d+)", job.logs)}
    workers = {a["pid"]: a["node_id"] for a in _actors(dashboard, class_name="RayTrainWorker")}
    record = job.record
    model = ws.models.get(str(record["result_model_id"]))
    return {
        "status": record["status"], "logs": job.logs,
        "rank_nodes": {rank: workers.get(pid) for rank, pid in ranks.items()},
        "epochs": training_metrics(ws, job.id).column("epoch").to_pylist(),
        "model": {"id": model.id, "name": model.name, "training_status": model.training_status,
                  "model_path": model.model_path, "blob_exists": ws.blobs.exists(model.model_path)},
    }


def _infer(ws, model_id: str, concurrency: int, clock: Clock, dashboard: str) -> dict:
    # Ray Data names the pool's actor class after the operator: MapWorker(MapBatches(PredictorActor)).
    before = {a["pid"] for a in _actors(dashboard, "PredictorActor")}
    job = ws.infer(model_id, dataset="shapes", conf=CONF, imgsz=IMAGE_SIZE, batch_size=8, concurrency=concurrency)
    job.wait(timeout=300)
    clock.lap(f"infer_{concurrency}_actors")
    actors = [a for a in _actors(dashboard, "PredictorActor") if a["pid"] not in before]
    return {"status": job.status, "logs": job.logs, "actor_nodes": [a["node_id"] for a in actors],
            "predictions": _predictions(ws, job.id)}


def _replica_of_requests(log_dir: Path, request_ids: set[str], timeout_s: float = 15.0) -> dict[str, str]:
    """request id -> replica id, from the replicas' access logs (``<replica> <request id> -- POST ... 200``)."""
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        for log in (log_dir / "serve").glob("replica_det_Model_*.log"):
            for replica_id, request_id in re.findall(r" (\S+) (\S+) -- POST /det/predict 200 ", log.read_text()):
                if request_id in request_ids:
                    found[request_id] = replica_id
        if len(found) == len(request_ids) or time.monotonic() > deadline:  # log lines land within a moment
            return found
        time.sleep(0.5)


def _serve(ws, model_id: str, clock: Clock, dashboard: str, log_dir: Path) -> dict:
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from ray import serve

    from mleval.deploy import deploy
    from tests.integration.conftest import free_port

    dep = deploy(ws, model_id, name="det", replicas=2, imgsz=IMAGE_SIZE, conf=SERVE_CONF, port=free_port(),
                 rate_limit=None, max_batch_size=4)
    clock.lap("deploy")
    replicas = [a for a in _actors(dashboard, class_name="ServeReplica:det:Model") if a["state"] == "ALIVE"]
    key = dep.create_api_key("multinode")

    def post(image) -> dict:
        try:
            response = requests.post(dep.url + "/predict", headers={"Authorization": f"Bearer {key}"}, timeout=60,
                                     files={"file": ("i.png", ws.blobs.read_bytes(image.file_path), "image/png")})
        except requests.RequestException as error:
            return {"image_id": image.id, "status": repr(error)}
        body = response.json() if response.status_code == 200 else {}
        return {"image_id": image.id, "status": response.status_code, "request_id": response.headers.get("x-request-id"),
                **{k: body.get(k) for k in ("boxes_xyxy", "scores", "class_names", "model")}}

    # Concurrent requests: Serve's router sends each to the less busy replica, so both get work.
    images = ws.images.list(dataset="shapes")[:16]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, [*images, *images]))
    clock.lap("http")
    replica_nodes = {r["name"].rsplit("#", 1)[-1]: r["node_id"] for r in replicas}
    served_by = _replica_of_requests(log_dir, {a["request_id"] for a in answers if a["status"] == 200})
    for answer in answers:
        answer["node_id"] = replica_nodes.get(served_by.get(answer.get("request_id")))
    return {"replica_nodes": [r["node_id"] for r in replicas], "answers": answers,
            "app_status": serve.status().applications["det"].status.value}


def _single_writer(ws, dashboard: str) -> dict:
    from mleval.catalog.catalog import Catalog
    from mleval.core.errors import CatalogBusyError

    try:
        Catalog(ws.catalog_path).close()
        direct_open = "opened"
    except CatalogBusyError as error:
        direct_open = f"refused: {error}"
    return {"owners": _actors(dashboard, class_name="CatalogOwner", state="ALIVE"),
            "owner_pid": ws.catalog.owner_pid(), "open_by_pids": _pids_with_open(ws.catalog_path),
            "direct_open": direct_open}


def _owner_nodes(folder: Path, count: int, dashboard: str) -> list[str]:
    """The nodes where the catalog owners of ``count`` new workspaces start when this driver opens them."""
    from concurrent.futures import ThreadPoolExecutor

    import mleval

    with ThreadPoolExecutor(max_workers=count) as pool:
        workspaces = list(pool.map(mleval.Workspace.open, [folder / str(i) for i in range(count)]))
    node_of = {a["pid"]: a["node_id"] for a in _actors(dashboard, class_name="CatalogOwner", state="ALIVE")}
    return [node_of.get(ws.catalog.owner_pid()) for ws in workspaces]


def run(workdir: Path) -> dict:
    ray_tmp = tempfile.mkdtemp(prefix="mleval-mn-", dir="/tmp")  # short: Ray's socket paths live under it
    _environment(ray_tmp)
    clock = Clock()
    import ray
    from ray import serve
    from ray.cluster_utils import Cluster

    import mleval
    from tests.integration.conftest import free_port, import_shapes

    result: dict = {}
    cluster = None
    try:
        dashboard_port = free_port()  # the state API (actor table with node ids) is served by the dashboard
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": NODE_CPUS, "resources": {"node_a": 1}, "include_dashboard": True,
            "dashboard_host": "127.0.0.1", "dashboard_port": dashboard_port, "object_store_memory": 200 * MiB})
        cluster.add_node(num_cpus=NODE_CPUS, resources={"node_b": 1}, object_store_memory=200 * MiB)
        cluster.wait_for_nodes()
        clock.lap("cluster")
        dashboard = f"http://127.0.0.1:{dashboard_port}"
        ws = mleval.Workspace.open(workdir / "ws", ray_address=cluster.address)
        result["nodes"] = {n["NodeID"]: sorted(k for k in n["Resources"] if k in ("node_a", "node_b"))
                           for n in ray.nodes() if n["Alive"]}
        result["driver_node"] = ray.get_runtime_context().get_node_id()
        result["owner_pid_at_start"] = ws.catalog.owner_pid()
        import_shapes(ws, workdir, train=32, validation=8)
        result["images"] = len(ws.images.list(dataset="shapes"))
        clock.lap("workspace")
        result["train"] = _train(ws, clock, dashboard)
        model_id = result["train"]["model"]["id"]
        result["infer_spread"] = _infer(ws, model_id, 2, clock, dashboard)
        result["infer_single"] = _infer(ws, model_id, 1, clock, dashboard)
        log_dir = Path(ray_tmp) / "ray" / "session_latest" / "logs"  # both nodes' logs: one machine, one session
        result["serve"] = _serve(ws, model_id, clock, dashboard, log_dir)
        result["catalog"] = _single_writer(ws, dashboard)
        result["catalog"]["more_owner_nodes"] = _owner_nodes(workdir / "more-catalogs", 5, dashboard)
        serve.shutdown()
        clock.lap("checks")
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
        clock.lap("shutdown")
        result["phases_s"] = clock.phases
        print(f"phases (s): {clock.phases}", file=sys.stderr)  # also when a phase failed
    return result


def main() -> None:
    # SIGTERM (the test's timeout) ends the run through run()'s finally: both nodes shut down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(sys.argv[1]).resolve()
    started = time.perf_counter()
    result = run(workdir)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main()
