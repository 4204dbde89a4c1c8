"""The Ray Serve application of a deployed detector (YOLO, RT-DETR) or instance segmenter
(YOLO ``-seg``): a FastAPI ingress with ``POST /predict``, ``GET /health``, ``GET /metrics``
and ``/docs``, API keys, a per-key rate limit and dynamic batching of the model call.

Everything that may change between versions of a deployment (the model, thresholds, the
rate limit, batch sizes) travels as the deployment's ``user_config``: a new version or a
rollback reconfigures the running replicas, which load the new model beside the old one and
swap, so no request is refused while it happens. ``mleval.deploy.deploy`` builds this app;
``serve run serve_apps/detector.yaml`` builds it through :func:`app_builder`.

A replica reads and decodes requests (``serve_apps/uploads.py``) on its event loop and worker
threads; the model itself runs on one model thread, which merges the predictions waiting for
it into one batch (``serve_apps/model_thread.py``, the endpoint's only batcher).
"""


import asyncio
import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from ray import serve

from mleval.catalog.repositories import DeploymentRepository
from mleval.cluster import http_ingress
from mleval.context import WorkspaceAddress
from mleval.deploy.keys import hash_api_key, key_table
from mleval.deploy.limits import RateLimit, parse_rate_limit, retry_after_header
from mleval.deploy.monitor import get_collector
from mleval.deploy.shared_limits import get_shared_limiter
from mleval.deploy.schemas import ErrorResponse, HealthResponse, PredictJSONRequest, PredictResponse, Timings
from .model_thread import ModelThread, predict_images
from .uploads import ApiError, decode_upload, read_upload

logger = logging.getLogger("mleval.serve")

FLUSH_EVERY_S = 1.0
KEYS_REFRESH_EVERY_S = 10.0
MAX_BUFFERED_EVENTS = 100_000
REQUESTS_PER_BATCH_SLOT = 8  # a replica takes this many batches' worth of requests at once

api = FastAPI(
    title="mleval model endpoint",
    description="Object detection and instance segmentation served by mleval on Ray Serve. "
                "Send `Authorization: Bearer <key>` or `X-API-Key: <key>` with every request but /health.",
    version="1",
)


@api.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    # The same {error, detail} body as every other refusal, not FastAPI's own 422 shape.
    return JSONResponse({"error": "invalid_request", "detail": str(error.errors())}, status_code=400)


_bearer = HTTPBearer(auto_error=False, description="An API key made with dep.create_api_key(name).")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key, as a header.")

_ERRORS = {status: {"model": ErrorResponse, "description": text} for status, text in (
    (400, "Empty or malformed body, or bad base64."),
    (401, "Missing or unknown API key."),
    (413, "Upload larger than the deployment's max_upload_bytes, or too many pixels."),
    (415, "Content type is not multipart/form-data, application/json or image/*."),
    (422, "The bytes are not a readable image (not an image, truncated, unsupported)."),
    (429, "Rate limit of this key exceeded; see the Retry-After header."),
    (503, "The deployment is not ready."),
)}
_PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "The image file."},
        "conf": {"type": "number", "minimum": 0, "maximum": 1, "description": "Score threshold (optional)."}}}},
    "application/json": {"schema": PredictJSONRequest.model_json_schema()},
    "image/*": {"schema": {"type": "string", "format": "binary"}},
}}}


@dataclass(frozen=True)
class _Serving:
    """What one version serves; replaced as a whole on reconfigure so a request sees one version."""

    config: dict[str, Any]
    predictor: Any
    rate_limit: RateLimit | None  # per API key, across every replica (the deployment's bucket actor)

    @property
    def row_id(self) -> str:
        return self.config["row_id"]

    @property
    def version(self) -> str:
        return self.config["version"]


@serve.deployment(name="Model", max_ongoing_requests=32, graceful_shutdown_timeout_s=30)
@serve.ingress(api)
class ModelServer:
    def __init__(self, workspace: WorkspaceAddress, deployment_name: str):
        self._ws = workspace.open()
        self._name = deployment_name
        self._serving: _Serving | None = None
        self._keys: dict[str, str] = {}
        self._keys_loaded_at = 0.0
        self._keys_lock = asyncio.Lock()
        self._events: list[tuple] = []
        self._collector = get_collector(workspace, deployment_name)
        self._buckets = get_shared_limiter(workspace.location, deployment_name)
        self._background: asyncio.Task | None = None
        # Every torch call runs on the model thread, on as many torch threads as the replica has CPUs.
        self._model = ModelThread(int(ray.get_runtime_context().get_assigned_resources().get("CPU", 0)))

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """A new version (or the first): load its model beside the one serving, then swap."""
        loaded = await self._model.call(functools.partial(self._ws.models.load, config["model_id"],
                                                          imgsz=int(config["imgsz"])))
        # The first forward pass is slow (allocation, kernel selection): pay it before serving.
        warmup = np.zeros((int(config["imgsz"]), int(config["imgsz"]), 3), dtype=np.uint8)
        await self._model.call(predict_images, loaded.predictor, [warmup], 1.0, self._model.threads)
        self._model.configure(max_batch_size=int(config["max_batch_size"]),
                              batch_wait_timeout_s=float(config["batch_wait_timeout_s"]))
        await self._refresh_keys()
        self._serving = _Serving(config, loaded.predictor, parse_rate_limit(config.get("rate_limit")))
        await asyncio.to_thread(self._mark_active, config["row_id"])
        if self._background is None:
            self._background = asyncio.get_running_loop().create_task(self._background_loop())

    def _mark_active(self, row_id: str) -> None:
        # A replica that loaded its model makes the version active (as `serve run` of the YAML needs);
        # deploy() does the same once every replica is up.
        try:
            if self._ws.catalog.get("deployments", row_id)["status"] == "deploying":
                self._ws.catalog.update("deployments", row_id, {"status": "active"})
        except Exception as error:
            logger.warning("could not mark deployment %s active: %s", row_id, error)

    # -- keys, limits, metrics -------------------------------------------------------------
    async def _refresh_keys(self) -> None:
        metadata = await asyncio.to_thread(DeploymentRepository(self._ws.catalog).key_metadata, self._name)
        self._keys = key_table(json.loads(m) if isinstance(m, str) else m for m in metadata)
        self._keys_loaded_at = time.monotonic()

    async def _authorize(self, bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str:
        key = (api_key or "").strip() or (bearer.credentials.strip() if bearer else "")
        if not key:
            raise ApiError(401, "unauthorized", "no API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
                           {"WWW-Authenticate": "Bearer"})
        arrived = time.monotonic()
        digest = hash_api_key(key)
        name = self._keys.get(digest)
        if name is None:
            # A key made since the last load works at once. Unknown keys arriving together share
            # one reload, so a flood of wrong keys costs at most one catalog query at a time.
            async with self._keys_lock:
                if self._keys_loaded_at < arrived:
                    await self._refresh_keys()
            name = self._keys.get(digest)
        if name is None:
            raise ApiError(401, "unauthorized", "unknown or revoked API key; make one with dep.create_api_key(name).",
                           {"WWW-Authenticate": "Bearer"})
        return name

    def _record(self, serving: _Serving | None, key_name: str | None, status: int, started: float, images: int):
        # Bounded: while the collector is unreachable, figures past this many are dropped.
        if serving is not None and len(self._events) < MAX_BUFFERED_EVENTS:
            self._events.append((serving.row_id, serving.version, key_name, status,
                                 (time.perf_counter() - started) * 1000.0, images))

    async def _flush(self) -> None:
        events, self._events = self._events, []
        by_row: dict[tuple[str, str], list] = {}
        for row_id, version, *event in events:
            by_row.setdefault((row_id, version), []).append(tuple(event))
        for (row_id, version), batch in by_row.items():
            await self._collector.record.remote(row_id, version, batch)

    async def _background_loop(self) -> None:
        last_keys = time.monotonic()
        while True:
            await asyncio.sleep(FLUSH_EVERY_S)
            try:
                await self._flush()
                if time.monotonic() - last_keys > KEYS_REFRESH_EVERY_S:
                    await self._refresh_keys()
                    last_keys = time.monotonic()
            except Exception as error:  # the collector restarts; keep serving meanwhile
                logger.warning("metrics flush failed: %s", error)

    # -- routes ------------------------------------------------------------------------------
    @api.get("/health", response_model=HealthResponse, responses={503: _ERRORS[503]})
    async def health(self):
        serving = self._serving
        if serving is None:
            return ApiError(503, "not_ready", "the model is still loading.").response()
        return HealthResponse(status="ok", deployment=self._name, version=serving.version,
                              model=serving.config["model_name"], ingress=http_ingress())

    @api.post("/predict", response_model=PredictResponse, openapi_extra=_PREDICT_BODY,
              responses={s: _ERRORS[s] for s in (400, 401, 413, 415, 422, 429, 503)})
    async def predict(self, request: Request,
                      bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
                      api_key: str | None = Security(_api_key_header)):
        """Detect objects in one image: multipart field ``file``, JSON ``image_base64``, or raw image bytes."""
        started = time.perf_counter()
        serving = self._serving
        key_name, status, images = None, 500, 0
        try:
            if serving is None:
                raise ApiError(503, "not_ready", "the model is still loading; retry in a few seconds.")
            key_name = await self._authorize(bearer, api_key)
            limit = serving.rate_limit
            wait_s = 0.0 if limit is None else await self._buckets.take.remote(key_name, limit.requests,
                                                                             limit.period_s)
            if wait_s > 0:
                raise ApiError(429, "rate_limited", f"key {key_name!r} is over this deployment's rate limit "
                               f"({serving.config.get('rate_limit')}); retry after {wait_s:.2f} s.",
                               {"Retry-After": retry_after_header(wait_s)})
            data, conf = await read_upload(request, int(serving.config["max_upload_bytes"]))
            decode_started = time.perf_counter()
            image = await asyncio.to_thread(decode_upload, data, int(serving.config["max_pixels"]))
            decode_ms = (time.perf_counter() - decode_started) * 1000.0
            conf = float(serving.config["conf"]) if conf is None else conf
            prediction, batch_size = await self._model.predict(serving.predictor, image, conf)
            detections = prediction.detections.filter(prediction.detections.scores >= conf)
            body = PredictResponse(
                model=serving.config["model_name"], model_version=serving.version, deployment=self._name,
                image_width=int(image.shape[1]), image_height=int(image.shape[0]), **detections.to_dict(),
                timings=Timings(preprocess_ms=prediction.preprocess_ms, inference_ms=prediction.inference_ms,
                                postprocess_ms=prediction.postprocess_ms, decode_ms=round(decode_ms, 3),
                                batch_size=batch_size, total_ms=round((time.perf_counter() - started) * 1000, 3)))
            status, images = 200, 1
            return JSONResponse(body.model_dump(exclude_none=True))
        except ApiError as error:
            status = error.status
            return error.response()
        except Exception as error:  # a bug or a model failure: answer, log, and keep the replica serving
            logger.exception("predict failed")
            return JSONResponse({"error": "internal", "detail": f"{type(error).__name__}: {error}"}, status_code=500)
        finally:
            self._record(serving, key_name, status, started, images)

    @api.get("/metrics", responses={401: _ERRORS[401]}, response_class=Response)
    async def metrics(self, bearer: HTTPAuthorizationCredentials | None = Security(_bearer),
                      api_key: str | None = Security(_api_key_header)):
        """Prometheus text: requests by status, images, latency histogram; per version and API key."""
        from prometheus_client import CONTENT_TYPE_LATEST

        from mleval.deploy.stats import DeploymentStats, prometheus_text

        try:
            await self._authorize(bearer, api_key)
        except ApiError as error:
            return error.response()
        await self._flush()
        snapshot = await self._collector.snapshot.remote()
        text = prometheus_text({(self._name, entry["version"]): DeploymentStats.from_json(entry["stats"])
                                for entry in snapshot.values()})
        return Response(text, media_type=CONTENT_TYPE_LATEST)


def build_app(*, workspace: WorkspaceAddress, deployment_name: str, config: dict[str, Any],
              replicas: int = 1, autoscaling: dict | None = None, gpu: bool = False, cpus_per_replica: float = 1.0):
    """The Serve application of one version. The deployment's ``version`` stays the same across
    model versions, so Serve updates running replicas in place through ``reconfigure``."""
    from mleval import __version__

    resources = {"num_cpus": cpus_per_replica, "num_gpus": 1 if gpu else 0}
    identity = hashlib.sha1(repr((__version__, str(workspace.location), deployment_name, sorted(resources.items())))
                            .encode()).hexdigest()[:12]
    options: dict[str, Any] = {
        "user_config": config, "ray_actor_options": resources,
        "max_ongoing_requests": max(32, REQUESTS_PER_BATCH_SLOT * int(config["max_batch_size"])),
    }
    if autoscaling:
        options["autoscaling_config"] = autoscaling
    else:
        options["num_replicas"] = replicas
    deployment = ModelServer.options(**options)
    # Serve 2.60 dropped `version=` from options() but still keeps a deployment's `_version`
    # (ray/serve/_private/client.py); without a stable one every serve.run restarts the replicas
    # instead of calling reconfigure() on them.
    deployment._version = identity
    return deployment.bind(workspace, deployment_name)


def app_builder(args: dict[str, Any]):
    """For ``serve run serve_apps/detector.yaml``: ``args`` are ``workspace`` and ``model``, and
    optionally any keyword of :func:`mleval.deploy.deploy` (``name``, ``version``, ``rate_limit``...)."""
    from mleval.deploy.deployments import prepare_version
    from mleval.workspace import Workspace

    args = dict(args)
    try:
        workspace, model = args.pop("workspace"), args.pop("model")
    except KeyError as missing:
        raise ValueError(f"app_builder needs the argument {missing}: the workspace (folder or URI) and the model "
                         "name.") from None
    ws = Workspace.open(workspace)
    prepared = prepare_version(ws.context, model, **args)
    return build_app(workspace=ws.address, deployment_name=prepared.name, config=prepared.config,
                     **prepared.serve_options)
