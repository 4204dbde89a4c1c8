"""Connecting to Ray: a local instance started on demand, or a cluster by address."""

from __future__ import annotations

import os
import sys

NAMESPACE = "mleval"


def ray_is_running() -> bool:
    """True when this process is connected to Ray (without importing Ray if it never was)."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def ensure_ray(address: str | None = None, *, num_cpus: int | None = None) -> None:
    """Connect to Ray at ``address`` ("auto", "ray://host:10001", ...) or start a local one.

    Nothing happens when this process is already connected.
    """
    import ray

    if ray.is_initialized():
        return
    # Workers' output stays in Ray's log files: jobs report progress, metrics and failures to
    # the catalog (job.logs), and Ray Train's per-report lines would flood a notebook.
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    options = {"namespace": NAMESPACE, "ignore_reinit_error": True,
               "log_to_driver": os.environ.get("MLEVAL_RAY_WORKER_LOGS") == "1"}
    if address is None or address == "local":
        options.update(include_dashboard=False, num_cpus=num_cpus)
    else:
        options["address"] = address
    ray.init(**options)
