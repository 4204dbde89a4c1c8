"""The pure parts of serving: rate-limit text, token buckets, API key hashing, latency statistics."""

from __future__ import annotations

import hashlib
import os
import sys

import numpy as np
import pytest

from mleval import cluster
from mleval.core.errors import ValidationError
from mleval.deploy.deployments import _validate
from mleval.deploy.keys import hash_api_key, key_entry, key_table, new_api_key
from mleval.deploy.limits import KeyRateLimiter, RateLimit, TokenBucket, parse_rate_limit, retry_after_header
from mleval.deploy.stats import DeploymentStats, LatencyHistogram, RequestStats, bucket_index, prometheus_text


@pytest.mark.parametrize("text, expected", [
    ("20/s", RateLimit(20, 1)), ("600/min", RateLimit(600, 60)), (" 2.5 / s ", RateLimit(2.5, 1)),
    ("1/minute", RateLimit(1, 60)), (None, None),
])
def test_rate_limit_text_parses(text, expected):
    assert parse_rate_limit(text) == expected


@pytest.mark.parametrize("text", ["20", "20/h", "-1/s", "0/s", "fast", "/s", "20/s/s"])
def test_bad_rate_limit_text_names_the_value(text):
    with pytest.raises(ValidationError, match="rate_limit must look like") as error:
        parse_rate_limit(text)
    assert repr(text) in str(error.value)


def test_token_bucket_allows_a_burst_then_refills_at_its_rate():
    bucket = TokenBucket(2.0, 3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)  # one token comes back every 0.5 s
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(100.0) == 0.0 and bucket.tokens == pytest.approx(2.0)  # capped at capacity


def test_token_bucket_ignores_a_clock_going_backwards():
    bucket = TokenBucket(1.0, 1, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) > 0 and bucket.tokens >= 0


def test_retry_after_is_whole_seconds_and_never_zero():
    assert [retry_after_header(w) for w in (0.01, 1.0, 1.2)] == ["1", "1", "2"]


def test_key_rate_limiter_is_per_key():
    limiter = KeyRateLimiter(parse_rate_limit("5/s"))
    allowed = sum(limiter.check("a", 0.0) == 0.0 for _ in range(20))
    assert allowed == 5
    assert limiter.check("b", 0.0) == 0.0  # another key has its own bucket
    assert KeyRateLimiter(None).check("a", 0.0) == 0.0


def test_shared_buckets_count_every_replicas_requests_against_one_limit():
    from mleval.deploy.shared_limits import SharedKeyBuckets

    buckets = SharedKeyBuckets()
    # requests from any number of replicas go through the same buckets: 5 per minute in all
    assert sum(buckets.take("a", 5.0, 60.0, now=0.0) == 0.0 for _ in range(12)) == 5
    assert buckets.take("a", 5.0, 60.0, now=0.0) == pytest.approx(12.0)  # one token per 12 s
    assert buckets.take("a", 5.0, 60.0, now=12.0) == 0.0
    assert buckets.take("b", 5.0, 60.0, now=0.0) == 0.0
    assert buckets.take("a", 100.0, 1.0, now=0.0) == 0.0  # a new version's limit starts full


def test_only_the_sha256_of_a_key_is_kept():
    key = new_api_key()
    entry = key_entry("ci", key, "2026-01-01T00:00:00")
    assert entry["sha256"] == hashlib.sha256(key.encode()).hexdigest() == hash_api_key(key)
    assert key not in str(entry) and entry["prefix"] == key[:8]
    assert new_api_key() != key and len(key) > 40


def test_key_table_unions_every_version():
    table = key_table([{"api_keys": [{"name": "a", "sha256": "1"}]}, None, {}, {"api_keys": [{"name": "b", "sha256": "2"}]}])
    assert table == {"1": "a", "2": "b"}


def test_histogram_percentiles_are_within_a_bucket_of_numpy():
    rng = np.random.default_rng(0)
    latencies = rng.lognormal(mean=3.0, sigma=0.8, size=5000)  # ~20 ms typical, long tail
    histogram = LatencyHistogram()
    for value in latencies:
        histogram.add(float(value))
    for q in (50, 95, 99):
        assert histogram.percentile(q) == pytest.approx(np.percentile(latencies, q), rel=0.13)
    assert histogram.percentile(100) <= histogram.max_ms == pytest.approx(latencies.max())


def test_histogram_edge_cases():
    empty = LatencyHistogram()
    assert empty.percentile(50) is None
    one = LatencyHistogram()
    one.add(7.0)
    assert one.percentile(50) <= 7.0 and one.percentile(99) <= 7.0
    huge = LatencyHistogram()
    huge.add(10_000_000.0)  # beyond the last bound: the overflow bucket
    assert bucket_index(10_000_000.0) == len(huge.counts) - 1 and huge.percentile(99) <= 10_000_000.0


def test_stats_merge_and_survive_a_json_round_trip():
    a, b = DeploymentStats(), DeploymentStats()
    for i in range(10):
        a.add("alice", 200, 10.0 + i, 1)
    b.add("alice", 429, 1.0, 0)
    b.add(None, 401, 0.5, 0)
    a.merge(DeploymentStats.from_json(b.to_json()))
    summary = a.summary()
    assert summary["requests"] == 12 and summary["errors"] == 2 and summary["images"] == 10
    assert summary["by_status"] == {"200": 10, "401": 1, "429": 1}
    assert summary["keys"]["alice"]["requests"] == 11 and summary["keys"]["(none)"]["by_status"] == {"401": 1}
    assert RequestStats.from_json(None).requests == 0


def test_prometheus_text_has_counts_and_a_histogram():
    stats = DeploymentStats()
    stats.add("alice", 200, 12.0, 1)
    stats.add("alice", 200, 15.0, 1)
    text = prometheus_text({("det", "1.0.0"): stats}).decode()
    assert 'mleval_requests_total{api_key="alice",deployment="det",status="200",version="1.0.0"} 2.0' in text
    assert 'mleval_images_total{api_key="alice",deployment="det",version="1.0.0"} 2.0' in text
    assert 'mleval_request_latency_ms_count{api_key="alice",deployment="det",version="1.0.0"} 2.0' in text
    assert "mleval_request_latency_ms_bucket" in text


@pytest.mark.parametrize("change, rule", [
    ({"version": "1.0"}, "deployment.version_semver"), ({"replicas": 0}, "deployment.replicas_positive"),
    ({"name": "a/b"}, "deployment.name_format"), ({"rate_limit": "lots"}, "deployment.rate_limit_format"),
    ({"max_batch_size": 0}, "deployment.max_batch_size_range"), ({"conf": 1.5}, "deployment.conf_range"),
    ({"autoscaling": {"min_replicas": 3, "max_replicas": 2}}, "deployment.autoscaling_range"),
    ({"port": 0}, "deployment.port_range"),
])
def test_deploy_options_are_validated_before_anything_starts(change, rule):
    options = dict(name="det", version="1.0.0", replicas=1, max_batch_size=8, batch_wait_timeout_s=0.01,
                   autoscaling=None, rate_limit="20/s", port=8000, imgsz=640, conf=0.25, max_upload_bytes=1,
                   host="127.0.0.1")
    _validate(**options)
    with pytest.raises(ValidationError) as error:
        _validate(**{**options, **change})
    assert error.value.rule == rule


def _request(body: bytes, content_type: str | None):
    from starlette.requests import Request

    headers = [(b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode()))

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({"type": "http", "method": "POST", "path": "/predict", "headers": headers, "query_string": b""},
                   receive)


def _multipart(files: dict, data: dict | None = None):
    import requests

    prepared = requests.Request("POST", "http://127.0.0.1/", files=files, data=data).prepare()
    return _request(prepared.body, prepared.headers["Content-Type"])


def _status_of(request, limit: int = 10_000) -> int | tuple:
    import asyncio

    from mleval_serve.uploads import ApiError, read_upload

    try:
        data, conf = asyncio.run(read_upload(request, limit))
    except ApiError as error:
        return error.status
    return len(data), conf


def test_uploads_are_read_from_multipart_json_or_raw_bytes():
    import base64

    from tests.unit.conftest import image_bytes

    png = image_bytes()
    assert _status_of(_multipart({"file": ("a.png", png, "image/png")}, {"conf": "0.5"})) == (len(png), 0.5)
    body = ('{"image_base64": "data:image/png;base64,' + base64.b64encode(png).decode() + '"}').encode()
    assert _status_of(_request(body, "application/json")) == (len(png), None)
    assert _status_of(_request(png, "image/png")) == (len(png), None)


@pytest.mark.parametrize("make, status", [
    (lambda: _request(b"", "application/json"), 400),
    (lambda: _request(b"{oops", "application/json"), 400),
    (lambda: _request(b'{"image_base64": "***"}', "application/json"), 400),
    (lambda: _request(b"abc", "text/plain"), 415),
    (lambda: _request(b"abc", None), 415),
    (lambda: _request(b"x" * 20_000, "image/png"), 413),
    (lambda: _multipart({"other": ("a.png", b"abc", "image/png")}), 400),
    (lambda: _multipart({"file": ("a.png", b"", "image/png")}), 400),
    (lambda: _multipart({"file": ("a.png", b"x" * 20_000, "image/png")}), 413),
    (lambda: _multipart({"file": ("a.png", b"abc", "image/png")}, {"conf": "high"}), 400),
    (lambda: _request(b"--x\r\nbroken", "multipart/form-data; boundary=x"), 400),
])
def test_bad_uploads_map_to_their_4xx(make, status):
    assert _status_of(make()) == status


def test_images_are_checked_before_decoding():
    from mleval_serve.uploads import ApiError, decode_upload
    from tests.unit.conftest import image_bytes

    assert decode_upload(image_bytes(size=(20, 10)), 5000).shape == (10, 20, 3)
    for data, status in ((b"not an image", 422), (image_bytes()[:100], 422), (image_bytes(size=(100, 100)), 413)):
        with pytest.raises(ApiError) as error:
            decode_upload(data, 5000)
        assert error.value.status == status


def test_the_model_call_uses_the_replicas_cpu_count_not_ultralytics_own(ws):
    import os
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from mleval_serve.model_thread import predict_images

    predictor = ws.models.load("yolo11n", imgsz=64).predictor
    image = np.zeros((64, 64, 3), np.uint8)
    threads = os.cpu_count() + 1  # never ultralytics' choice (the CPU count minus one, at most 8)

    def two_calls() -> tuple[int, int]:
        predict_images(predictor, [image], 0.5, threads)  # sets the model up: ultralytics sets its own count
        after_setup = torch.get_num_threads()
        predict_images(predictor, [image], 0.5, threads)
        return after_setup, torch.get_num_threads()

    with ThreadPoolExecutor(1) as pool:  # the count is per thread: a pool thread, as in the replica
        after_setup, after_call = pool.submit(two_calls).result()
    assert after_setup != threads and after_call == threads


@pytest.fixture
def ingress_environment(monkeypatch):
    """No ingress settings in the environment (monkeypatch restores them afterwards)."""
    for name in ("RAY_SERVE_ENABLE_HA_PROXY", "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S",
                 "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD", "RAY_SERVE_HAPROXY_STATS_PORT",
                 "RAY_SERVE_HAPROXY_METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_local_ray_gets_haproxy_in_front_where_it_is_at_hand(ingress_environment):
    ingress_environment.setattr(cluster, "_haproxy_available", lambda: True)
    cluster.prepare_local_ray_environment()
    assert cluster.http_ingress() == "haproxy"
    assert os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "2"
    assert os.environ["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"] == "0"
    ports = [os.environ[f"RAY_SERVE_HAPROXY_{name}_PORT"] for name in ("STATS", "METRICS")]
    cluster.prepare_local_ray_environment()  # the next local Ray (a kernel's, say) gets ports of its own
    assert [os.environ[f"RAY_SERVE_HAPROXY_{name}_PORT"] for name in ("STATS", "METRICS")] != ports


@pytest.mark.parametrize("switch, available", [("0", True), (None, False)])
def test_serves_own_proxy_when_asked_for_or_without_haproxy(ingress_environment, switch, available):
    if switch is not None:
        ingress_environment.setenv("RAY_SERVE_ENABLE_HA_PROXY", switch)
    ingress_environment.setattr(cluster, "_haproxy_available", lambda: available)
    cluster.prepare_local_ray_environment()
    assert cluster.http_ingress() == "serve proxy"
    assert "RAY_SERVE_HAPROXY_STATS_PORT" not in os.environ


def test_ray_serve_ships_haproxy_on_linux():
    if sys.platform != "linux":
        pytest.skip("ray[serve] ships HAProxy for Linux only")
    assert cluster._haproxy_available()
