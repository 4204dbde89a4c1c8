"""One rate limit per API key across every replica of a deployment, whatever their number.

The token buckets live in one small detached Ray actor per deployment name (no CPU reserved);
each replica asks it before serving a request (one actor call, well under a millisecond next
to a model call). Its clock is the only one, so replicas added by autoscaling share the same
buckets instead of each getting a slice. If the actor dies, Ray restarts it with full buckets:
the worst case is one extra burst per key right after a restart."""

from __future__ import annotations

import hashlib
import time

from mleval.cluster import NAMESPACE
from mleval.deploy.limits import KeyRateLimiter, RateLimit
from mleval.storage.location import StorageLocation


class SharedKeyBuckets:
    """The buckets of every key under every limit a version of the deployment set (a new
    version's limit starts full buckets; going back to an old limit finds its buckets)."""

    def __init__(self) -> None:
        self._limiters: dict[tuple[float, float], KeyRateLimiter] = {}

    def take(self, key_name: str, requests: float, period_s: float, now: float | None = None) -> float:
        """0.0 when ``key_name`` may make one more request, else the seconds to wait."""
        limiter = self._limiters.get((requests, period_s))
        if limiter is None:
            limiter = self._limiters[(requests, period_s)] = KeyRateLimiter(RateLimit(requests, period_s))
        return limiter.check(key_name, time.monotonic() if now is None else now)


def limiter_name(location: StorageLocation | str, deployment_name: str) -> str:
    digest = hashlib.sha1(f"{location}\0{deployment_name}".encode()).hexdigest()[:12]
    return f"mleval-deploy-limits-{digest}"


def get_shared_limiter(location: StorageLocation | str, deployment_name: str):
    """The deployment's bucket actor, started if needed (needs Ray connected)."""
    import ray

    return ray.remote(SharedKeyBuckets).options(
        name=limiter_name(location, deployment_name), namespace=NAMESPACE, lifetime="detached",
        get_if_exists=True, num_cpus=0, max_restarts=-1,
    ).remote()


def kill_shared_limiter(location: StorageLocation | str, deployment_name: str) -> None:
    import ray

    try:
        ray.kill(ray.get_actor(limiter_name(location, deployment_name), namespace=NAMESPACE))
    except ValueError:
        pass  # never started
