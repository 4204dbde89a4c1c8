"""Execution-time summary of a detector run: milliseconds per image per stage and images per second."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from mleval.core.errors import ValidationError


@dataclass(frozen=True)
class LatencySummary:
    """Mean milliseconds per image for each stage, their sum, and the throughput that sum implies."""

    num_images: int
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    total_ms: float
    images_per_s: float


def summarize_latency(
    *, preprocess_ms: ArrayLike, inference_ms: ArrayLike, postprocess_ms: ArrayLike
) -> LatencySummary:
    """Summarize per-image stage times, each (N,) in milliseconds (ultralytics ``Results.speed`` values).

    ``images_per_s`` is ``1000 / total_ms``: the throughput of one image at a time, without overlap
    between stages. Returns NaN figures for N == 0.
    """
    stages = {
        "preprocess_ms": np.asarray(preprocess_ms, dtype=np.float64).reshape(-1),
        "inference_ms": np.asarray(inference_ms, dtype=np.float64).reshape(-1),
        "postprocess_ms": np.asarray(postprocess_ms, dtype=np.float64).reshape(-1),
    }
    sizes = {name: values.size for name, values in stages.items()}
    if len(set(sizes.values())) != 1:
        raise ValidationError(
            "timing.shape", f"each stage needs one time per image, got counts {sizes}; pass aligned arrays."
        )
    for name, values in stages.items():
        if values.size and (not np.all(np.isfinite(values)) or values.min() < 0):
            raise ValidationError(
                "timing.value", f"{name} must hold finite, non-negative milliseconds, got min {values.min()!r}."
            )
    n = sizes["inference_ms"]
    if n == 0:
        nan = float("nan")
        return LatencySummary(0, nan, nan, nan, nan, nan)
    means = {name: float(values.mean()) for name, values in stages.items()}
    total = sum(means.values())
    return LatencySummary(
        num_images=n,
        total_ms=total,
        images_per_s=1000.0 / total if total > 0 else float("inf"),
        **means,
    )
