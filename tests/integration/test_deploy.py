"""Deployment on a real local Ray Serve: real HTTP on 127.0.0.1, a real yolo11n (architecture
weights, imgsz 64), API keys, rate limits, bad uploads, metrics, and a rollback under traffic."""

from __future__ import annotations

import base64
import os
import re
import threading
import time

import pytest
import requests

from tests.integration.conftest import free_port
from tests.unit.conftest import image_bytes


@pytest.fixture(scope="module")
def served(ray_session, tmp_path_factory):
    import mleval
    from mleval.catalog.owner import stop_owner
    from mleval.deploy import deploy

    ws = mleval.Workspace.open(tmp_path_factory.mktemp("deploy") / "ws")
    dep = deploy(ws, "yolo11n", name="det", imgsz=64, conf=0.0, port=free_port(), rate_limit="10/s",
                 max_upload_bytes=200_000, max_pixels=200_000, max_batch_size=4)
    yield ws, dep
    dep.delete()
    stop_owner(str(ws.catalog_path))


def _post(dep, key=None, *, files=None, json=None, data=None, headers=None, timeout=60):
    headers = dict(headers or {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return requests.post(dep.url + "/predict", files=files, json=json, data=data, headers=headers, timeout=timeout)


def _png(size=(96, 64), seed=1) -> bytes:
    return image_bytes(size=size, seed=seed)


def test_a_deployment_predicts_on_a_real_image_over_http(served):
    ws, dep = served
    assert dep.status == "active" and dep.url.startswith("http://127.0.0.1:") and dep.url.endswith("/det")
    key = dep.create_api_key("predict")
    response = _post(dep, key, files={"file": ("a.png", _png(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "yolo11n" and body["model_version"] == "1.0.0" and body["deployment"] == "det"
    assert (body["image_width"], body["image_height"]) == (96, 64)
    assert len(body["boxes_xyxy"]) == len(body["scores"]) == len(body["class_names"]) > 0
    assert all(0 <= x1 <= x2 <= 96 and 0 <= y1 <= y2 <= 64 for x1, y1, x2, y2 in body["boxes_xyxy"])
    assert body["timings"]["inference_ms"] > 0 and body["timings"]["batch_size"] >= 1
    as_json = _post(dep, key, json={"image_base64": base64.b64encode(_png()).decode(), "conf": 0.0})
    assert as_json.status_code == 200 and as_json.json()["boxes_xyxy"] == body["boxes_xyxy"]
    raw = _post(dep, headers={"X-API-Key": key, "Content-Type": "image/png"}, data=_png())
    assert raw.status_code == 200 and raw.json()["scores"] == body["scores"]
    stored = ws.catalog.get("deployments", dep.id)
    assert key not in str(stored["metadata"]) and dep.api_keys[0]["name"] == "predict"
    health = requests.get(dep.url + "/health", timeout=10).json()
    # ray[serve] ships HAProxy on Linux: it relays requests to the replica's own HTTP port
    # unless RAY_SERVE_ENABLE_HA_PROXY=0 asks for Serve's Python proxy.
    expected = "serve proxy" if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "0" else "haproxy"
    assert health["status"] == "ok" and health["ingress"] == expected


def test_requests_without_a_valid_key_get_401(served):
    _, dep = served
    dep.create_api_key("someone")
    for headers in ({}, {"Authorization": "Bearer mlv_wrong"}, {"X-API-Key": "nope"}, {"Authorization": "Basic x"}):
        response = _post(dep, files={"file": ("a.png", _png(), "image/png")}, headers=headers)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized", headers
    assert requests.get(dep.url + "/metrics", timeout=10).status_code == 401


def _truncated_png() -> bytes:
    return _png()[:300]


def _cut_jpeg_with_its_end() -> bytes:
    data = image_bytes("JPEG", size=(160, 120))
    return data[: len(data) // 2] + b"\xff\xd9"


def test_bad_uploads_get_4xx_json_and_the_replica_keeps_serving(served):
    _, dep = served
    key = dep.create_api_key("bad-input")
    big = image_bytes("BMP", size=(300, 300))  # 270 kB > max_upload_bytes
    cases = {
        "not an image": (dict(files={"file": ("a.png", b"hello, not an image", "image/png")}), 422),
        "truncated": (dict(files={"file": ("a.png", _truncated_png(), "image/png")}), 422),
        "jpeg cut in half, end marker appended": (dict(files={"file": ("a.jpg", _cut_jpeg_with_its_end(), "image/jpeg")}), 422),
        "oversized file": (dict(files={"file": ("a.bmp", big, "image/bmp")}), 413),
        "too many pixels": (dict(files={"file": ("a.png", _png(size=(600, 400)), "image/png")}), 413),
        "wrong content type": (dict(data=b"abc", headers={"Content-Type": "text/plain"}), 415),
        "empty body": (dict(data=b"", headers={"Content-Type": "application/json"}), 400),
        "empty file": (dict(files={"file": ("a.png", b"", "image/png")}), 400),
        "no file field": (dict(files={"other": ("a.png", _png(), "image/png")}), 400),
        "bad json": (dict(data=b"{not json", headers={"Content-Type": "application/json"}), 400),
        "bad base64": (dict(json={"image_base64": "%%%not-base64%%%"}), 400),
    }
    for case, (request, expected) in cases.items():
        time.sleep(0.1)  # stay under the key's 10/s
        response = _post(dep, key, **request)
        assert response.status_code == expected, (case, response.status_code, response.text)
        assert response.json()["error"] and response.json()["detail"], case
    assert _post(dep, key, files={"file": ("a.png", _png(), "image/png")}).status_code == 200


def test_a_key_past_its_rate_limit_gets_429_with_retry_after(served):
    _, dep = served
    key = dep.create_api_key("burst")
    codes = []
    for _ in range(25):  # a cheap refused body: the limit is checked before the upload is read
        response = _post(dep, key, data=b"x", headers={"Content-Type": "text/plain"})
        codes.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1 and response.json()["error"] == "rate_limited"
    assert codes.count(429) >= 5 and codes[0] == 415
    other = dep.create_api_key("calm")  # another key has its own bucket
    assert _post(dep, other, data=b"x", headers={"Content-Type": "text/plain"}).status_code == 415


def test_a_keys_limit_holds_across_two_replicas(served):
    """5 requests a minute per key, two replicas: 5 get past the limit in all (each replica counting
    its own share would let 2 + 2 through; a bucket each, 10)."""
    from concurrent.futures import ThreadPoolExecutor

    from ray import serve

    from mleval.deploy import deploy

    ws, dep = served
    pair = deploy(ws, "yolo11n", name="pair", imgsz=64, port=dep.record.configuration["port"], replicas=2,
                  cpus_per_replica=0.25, rate_limit="5/min")
    try:
        replicas = serve.status().applications["pair"].deployments["Model"].replica_states
        assert replicas.get("RUNNING") == 2, replicas
        key = pair.create_api_key("shared")
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:  # concurrent, so Serve's router spreads them over both replicas
            codes = list(pool.map(lambda _: _post(pair, key, data=b"x", headers={"Content-Type": "text/plain"})
                                  .status_code, range(24)))
        elapsed = time.monotonic() - started
        past_the_limit = [c for c in codes if c != 429]
        assert set(past_the_limit) == {415} and set(codes) == {415, 429}
        assert 5 <= len(past_the_limit) <= 5 + int(elapsed // 12), (codes, elapsed)  # one more token per 12 s
    finally:
        pair.delete()


def test_docs_and_openapi_describe_the_endpoint(served):
    _, dep = served
    docs = requests.get(dep.url + "/docs", timeout=10)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = requests.get(dep.url + "/openapi.json", timeout=10).json()
    predict = spec["paths"]["/predict"]["post"]
    assert set(predict["requestBody"]["content"]) >= {"multipart/form-data", "application/json"}
    assert predict["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("PredictResponse")
    assert {"401", "413", "415", "422", "429"} <= set(predict["responses"])
    assert "boxes_xyxy" in spec["components"]["schemas"]["PredictResponse"]["properties"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_the_requests_made(served):
    ws, dep = served
    key = dep.create_api_key("counted")
    for _ in range(3):
        assert _post(dep, key, files={"file": ("a.png", _png(), "image/png")}).status_code == 200
    assert _post(dep, key, files={"file": ("a.png", b"junk", "image/png")}).status_code == 422
    text = requests.get(dep.url + "/metrics", headers={"X-API-Key": key}, timeout=10).text
    assert _metric(text, "mleval_requests_total", api_key="counted", status="200", version="1.0.0") == 3
    assert _metric(text, "mleval_requests_total", api_key="counted", status="422") == 1
    assert _metric(text, "mleval_images_total", api_key="counted") == 3
    assert _metric(text, "mleval_request_latency_ms_count", api_key="counted") == 4
    summary = dep.metrics()
    counted = summary["keys"]["counted"]
    assert counted["requests"] == 4 and counted["errors"] == 1 and counted["images"] == 3
    assert 0 < counted["latency_p50_ms"] <= counted["latency_p95_ms"] <= counted["latency_p99_ms"]
    dep.persist_metrics()
    saved = ws.catalog.get("deployments", dep.id)["performance_monitoring"]
    assert '"counted"' in str(saved) and summary["requests"] >= 4

    # The collector dies and Ray restarts it: the figures come back from the catalog row.
    import ray

    from mleval.deploy.monitor import get_collector

    ray.kill(get_collector(ws.address, dep.name), no_restart=False)
    deadline = time.monotonic() + 60
    while True:
        try:
            again = dep.metrics()
            break
        except ray.exceptions.RayActorError:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert again["keys"]["counted"]["requests"] == 4 and again["keys"]["counted"]["images"] == 3


def test_rollout_and_rollback_under_traffic_refuse_no_request(served):
    from mleval.deploy import deploy, list_deployments

    ws, dep = served
    key = dep.create_api_key("loop")
    statuses, versions, stop = [], [], threading.Event()

    def traffic():
        while not stop.is_set():
            try:
                response = _post(dep, key, files={"file": ("a.png", _png(), "image/png")})
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.append(response.json()["model_version"])
            except requests.RequestException as error:  # a refused or dropped connection counts as a failure
                statuses.append(repr(error))
            time.sleep(0.05)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    time.sleep(1.0)
    configuration = dep.record.configuration
    new = deploy(ws, "yolo11n", name="det", version="1.1.0", imgsz=64, conf=0.0, port=configuration["port"],
                 rate_limit="10/s", max_upload_bytes=200_000, max_pixels=200_000, max_batch_size=4)
    assert new.status == "active" and dep.status == "inactive" and new.url == dep.url
    time.sleep(1.0)
    back = new.rollback()
    assert back.id == dep.id and dep.status == "active" and new.status == "inactive"
    time.sleep(1.0)
    stop.set()
    thread.join(timeout=120)
    failed = [s for s in statuses if s not in (200, 429)]
    assert not failed and statuses.count(200) >= 5, statuses
    assert "1.1.0" in versions and versions[-1] == "1.0.0"
    assert re.fullmatch(r"(1\.0\.0)+(1\.1\.0)+(1\.0\.0)+", "".join(versions)), versions  # never back and forth
    assert {(r.version, r.status) for r in list_deployments(ws)} == {("1.0.0", "active"), ("1.1.0", "inactive")}


def test_the_serve_config_file_builds_the_same_app(served, tmp_path):
    """What `serve run serve_apps/detector.yaml` does, on the session's Ray: the YAML is a valid
    Serve config and its app_builder args deploy a working endpoint (the replica marks it active)."""
    import yaml
    from ray import serve
    from ray.serve.schema import ServeDeploySchema

    from mleval.deploy import get_deployment
    from mleval_serve.detector import app_builder
    from tests.integration.conftest import REPO

    ws, dep = served
    config = ServeDeploySchema.model_validate(yaml.safe_load((REPO / "serve_apps" / "detector.yaml").read_text()))
    application = config.applications[0]
    assert application.import_path == "mleval_serve.detector:app_builder"
    port = dep.record.configuration["port"]
    args = {**application.args, "workspace": str(ws.root), "name": "from-yaml", "imgsz": 64, "port": port}
    serve.run(app_builder(args), name="from-yaml", route_prefix="/from-yaml")
    try:
        yaml_dep = get_deployment(ws, "from-yaml")
        deadline = time.monotonic() + 30
        while yaml_dep.status != "active":
            assert time.monotonic() < deadline, yaml_dep.status
            time.sleep(0.5)
        key = yaml_dep.create_api_key("yaml")
        response = _post(yaml_dep, key, files={"file": ("a.png", _png(), "image/png")})
        assert response.status_code == 200 and response.json()["deployment"] == "from-yaml"
    finally:
        get_deployment(ws, "from-yaml").delete()


def test_a_segmenter_returns_one_rle_mask_per_box(served):
    from mleval.deploy import deploy

    ws, dep = served
    seg = deploy(ws, "yolo11n-seg", name="seg", imgsz=64, conf=0.0, port=dep.record.configuration["port"])
    try:
        key = seg.create_api_key("seg")
        response = _post(seg, key, files={"file": ("a.png", _png(), "image/png")})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "yolo11n-seg" and len(body["masks_rle"]) == len(body["boxes_xyxy"])
        assert all(mask["size"] == [64, 96] for mask in body["masks_rle"])
    finally:
        seg.delete()


def test_an_inactive_deployment_stops_serving_and_comes_back(served):
    _, dep = served
    dep.set_status("inactive")
    assert dep.status == "inactive"
    assert requests.get(dep.url + "/health", timeout=10).status_code == 404
    dep.set_status("active")
    assert dep.status == "active" and requests.get(dep.url + "/health", timeout=10).json()["status"] == "ok"


def test_a_port_other_than_the_one_serve_listens_on_is_refused(served):
    import mleval
    from mleval.deploy import deploy

    ws, dep = served
    running = dep.record.configuration["port"]
    other = free_port()
    with pytest.raises(mleval.MlevalError, match=f"already listens on 127.0.0.1:{running}.*port={running}"):
        deploy(ws, "yolo11n", name="elsewhere", imgsz=64, port=other)
    assert [(d.name, d.status) for d in ws.deployments.list() if d.name == "elsewhere"] == [("elsewhere", "failed")]


def test_schemathesis_finds_nothing_against_the_endpoints_openapi(served, tmp_path):
    """Every check schemathesis has (server errors, status codes and bodies the schema documents, content
    types, ...) over generated requests to POST /predict and the other routes, with a valid key. All but
    positive_data_acceptance: "an image file, base64" has no JSON Schema, so schema-valid strings that are
    no image ("0") are rightly answered 400 with the reason."""
    import shutil
    import subprocess
    import sys

    from mleval.deploy import deploy

    ws, dep = served
    fuzzed = deploy(ws, "yolo11n", name="fuzzed", imgsz=64, conf=0.0, port=dep.record.configuration["port"],
                    rate_limit=None, max_upload_bytes=200_000, max_pixels=200_000)
    try:
        key = fuzzed.create_api_key("schemathesis")
        binary = shutil.which("schemathesis", path=os.path.dirname(sys.executable)) or "schemathesis"
        done = subprocess.run(
            [binary, "run", f"{fuzzed.url}/openapi.json", "--url", fuzzed.url, "--checks", "all",
             "--exclude-checks", "positive_data_acceptance", "--header", f"Authorization: Bearer {key}", "--max-examples", "40", "--request-timeout", "60",
             "--no-color"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
        assert re.search(r"\d+ passed", done.stdout) or "No issues found" in done.stdout, done.stdout[-3000:]
    finally:
        fuzzed.delete()
