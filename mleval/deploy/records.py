"""A deployment version as the catalog keeps it, and as its replicas are given it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mleval.core.records import _Record

# What a replica is configured with (its Serve user_config), taken from a version's configuration.
SERVING_KEYS = ("imgsz", "conf", "rate_limit", "max_batch_size", "batch_wait_timeout_s", "max_upload_bytes",
                "max_pixels")


@dataclass(frozen=True)
class DeploymentRecord(_Record):
    _json_fields = ("configuration", "performance_monitoring", "metadata")
    lineage_kind = "deployment"  # what ws.lineage traces it as
    id: str
    name: str
    model_id: str
    endpoint_url: str
    version: str
    status: str
    configuration: dict = field(default_factory=dict)
    performance_monitoring: dict | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    metadata: dict | None = None
    imgsz: int | None = None  # the input size the endpoint runs the model at


@dataclass(frozen=True)
class PreparedVersion:
    row_id: str
    name: str
    config: dict[str, Any]  # the replicas' user_config
    serve_options: dict[str, Any]  # replicas / autoscaling / gpu / cpus_per_replica for build_app


def deployment_record(row: dict[str, Any]) -> DeploymentRecord:
    return DeploymentRecord.from_row(row)


def prepared_version(record: DeploymentRecord) -> PreparedVersion:
    configuration = record.configuration
    autoscaling = configuration.get("autoscaling")
    replicas = int(configuration["replicas"])
    config = {key: configuration[key] for key in SERVING_KEYS}
    config.update(row_id=record.id, version=record.version, model_id=record.model_id,
                  model_name=(record.metadata or {}).get("model_name", record.model_id))
    return PreparedVersion(record.id, record.name, config, {
        "replicas": replicas, "autoscaling": autoscaling, "gpu": bool(configuration.get("gpu")),
        "cpus_per_replica": float(configuration.get("cpus_per_replica", 1.0))})
