"""Serving statistics that merge across replicas and survive restarts: counts by status,
latency as a fixed-bucket histogram (so percentiles merge and persist as a few numbers),
images processed; per API key and for the whole deployment version."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Upper bounds in ms, 1.25x apart from 0.5 ms to ~2 min: a percentile is off by at most 12.5%.
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(round(0.5 * 1.25 ** i, 4) for i in range(56))


def bucket_index(latency_ms: float) -> int:
    """Index of the first bucket whose upper bound holds ``latency_ms`` (the last one catches all)."""
    low, high = 0, len(LATENCY_BOUNDS_MS)
    while low < high:
        middle = (low + high) // 2
        if LATENCY_BOUNDS_MS[middle] >= latency_ms:
            high = middle
        else:
            low = middle + 1
    return low  # == len(bounds) for the overflow bucket


@dataclass
class LatencyHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    total: int = 0
    sum_ms: float = 0.0
    max_ms: float = 0.0

    def add(self, latency_ms: float) -> None:
        self.counts[bucket_index(latency_ms)] += 1
        self.total += 1
        self.sum_ms += latency_ms
        self.max_ms = max(self.max_ms, latency_ms)

    def merge(self, other: LatencyHistogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts)]
        self.total += other.total
        self.sum_ms += other.sum_ms
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) in ms, interpolated inside its bucket; None when empty."""
        if self.total == 0:
            return None
        rank = q / 100.0 * self.total
        seen = 0
        for index, count in enumerate(self.counts):
            if count and seen + count >= rank:
                low = LATENCY_BOUNDS_MS[index - 1] if index > 0 else 0.0
                high = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else self.max_ms
                value = low + (high - low) * max(0.0, rank - seen) / count
                return round(min(value, self.max_ms), 3)
            seen += count
        return round(self.max_ms, 3)

    def to_json(self) -> dict[str, Any]:
        return {"counts": self.counts, "total": self.total, "sum_ms": self.sum_ms, "max_ms": self.max_ms}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> LatencyHistogram:
        histogram = cls()
        if data and len(data.get("counts", ())) == len(histogram.counts):
            histogram.counts = [int(c) for c in data["counts"]]
            histogram.total = int(data.get("total", sum(histogram.counts)))
            histogram.sum_ms = float(data.get("sum_ms", 0.0))
            histogram.max_ms = float(data.get("max_ms", 0.0))
        return histogram


@dataclass
class RequestStats:
    """Counts of one scope (a key, or the whole deployment version)."""

    requests: int = 0
    images: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    def add(self, status: int, latency_ms: float, images: int) -> None:
        self.requests += 1
        self.images += images
        self.by_status[str(status)] = self.by_status.get(str(status), 0) + 1
        self.latency.add(latency_ms)

    def merge(self, other: RequestStats) -> None:
        self.requests += other.requests
        self.images += other.images
        for status, count in other.by_status.items():
            self.by_status[status] = self.by_status.get(status, 0) + count
        self.latency.merge(other.latency)

    @property
    def errors(self) -> int:
        return sum(count for status, count in self.by_status.items() if int(status) >= 400)

    def summary(self) -> dict[str, Any]:
        """What a person reads: counts and p50/p95/p99 latency in ms."""
        return {
            "requests": self.requests, "errors": self.errors, "images": self.images,
            "by_status": dict(sorted(self.by_status.items())),
            "latency_p50_ms": self.latency.percentile(50), "latency_p95_ms": self.latency.percentile(95),
            "latency_p99_ms": self.latency.percentile(99),
            "latency_mean_ms": round(self.latency.sum_ms / self.latency.total, 3) if self.latency.total else None,
        }

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "images": self.images, "by_status": self.by_status,
                "latency": self.latency.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RequestStats:
        data = data or {}
        return cls(int(data.get("requests", 0)), int(data.get("images", 0)),
                   {str(k): int(v) for k, v in (data.get("by_status") or {}).items()},
                   LatencyHistogram.from_json(data.get("latency")))


@dataclass
class DeploymentStats:
    """Everything one deployment version served: the total and one RequestStats per key name."""

    total: RequestStats = field(default_factory=RequestStats)
    keys: dict[str, RequestStats] = field(default_factory=dict)

    def add(self, key_name: str | None, status: int, latency_ms: float, images: int) -> None:
        self.total.add(status, latency_ms, images)
        self.keys.setdefault(key_name or "(none)", RequestStats()).add(status, latency_ms, images)

    def merge(self, other: DeploymentStats) -> None:
        self.total.merge(other.total)
        for name, stats in other.keys.items():
            self.keys.setdefault(name, RequestStats()).merge(stats)

    def summary(self) -> dict[str, Any]:
        return {**self.total.summary(), "keys": {name: s.summary() for name, s in sorted(self.keys.items())}}

    def to_json(self) -> dict[str, Any]:
        return {"total": self.total.to_json(), "keys": {k: v.to_json() for k, v in self.keys.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> DeploymentStats:
        data = data or {}
        return cls(RequestStats.from_json(data.get("total")),
                   {k: RequestStats.from_json(v) for k, v in (data.get("keys") or {}).items()})


def prometheus_text(deployments: dict[tuple[str, str], DeploymentStats]) -> bytes:
    """Prometheus exposition text for ``{(deployment name, version): stats}``."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    class _Collector:
        def collect(self):
            labels = ["deployment", "version", "api_key"]
            requests = CounterMetricFamily("mleval_requests", "HTTP requests by status code.",
                                           labels=[*labels, "status"])
            images = CounterMetricFamily("mleval_images", "Images run through the model.", labels=labels)
            latency = HistogramMetricFamily("mleval_request_latency_ms", "Request latency in milliseconds.",
                                            labels=labels)
            for (name, version), stats in sorted(deployments.items()):
                for key_name, key_stats in sorted(stats.keys.items()):
                    values = [name, version, key_name]
                    for status, count in sorted(key_stats.by_status.items()):
                        requests.add_metric([*values, status], count)
                    images.add_metric(values, key_stats.images)
                    cumulative, buckets = 0, []
                    for bound, count in zip(LATENCY_BOUNDS_MS, key_stats.latency.counts):
                        cumulative += count
                        buckets.append((repr(bound), cumulative))
                    buckets.append(("+Inf", key_stats.latency.total))
                    latency.add_metric(values, buckets, key_stats.latency.sum_ms)
            yield from (requests, images, latency)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry)
