"""What to label next: a pool's images ranked by how much labelling them should teach the model.

Pure functions over what the pool scoring (``mleval.jobs.pool_scoring``, on Ray Data) measured
per image: the model's detection scores and an embedding of the image from its backbone.

- ``uncertainty``: images whose detections sit nearest the decision boundary first (per box
  ``1 - |2p - 1|``, 1 at p = 0.5; an image scores the mean of its 3 least certain boxes with
  p >= 0.05; an image with none scores 0);
- ``diversity``: k-center greedy on the embeddings (cosine distance): each pick is the image
  farthest from everything picked or already labelled, so the picks cover the pool;
- ``hybrid`` (default): the ``HYBRID_SHORTLIST`` x n most uncertain, then k-center greedy among
  them: uncertain images that are not all alike.

Ties and the first diversity pick (when nothing is labelled yet) are broken by ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mleval.core.errors import ValidationError

STRATEGIES = ("uncertainty", "diversity", "hybrid", "random")
HYBRID_SHORTLIST = 3
MIN_SCORE = 0.05


def image_uncertainty(scores: Sequence[float]) -> float:
    """How unsure the model is about one image, from its detection scores (see module docstring)."""
    p = np.asarray([s for s in scores if s >= MIN_SCORE], dtype=np.float64)
    if not p.size:
        return 0.0
    per_box = 1.0 - np.abs(2.0 * p - 1.0)
    return float(np.sort(per_box)[::-1][:3].mean())


def k_center_greedy(embeddings: np.ndarray, n: int, *, labelled: np.ndarray | None = None,
                    rng: np.random.Generator) -> tuple[list[int], list[float]]:
    """``n`` row indices of ``embeddings`` picked farthest-first (cosine distance) from the rows
    of ``labelled`` and the picks so far, with each pick's distance at the time it was picked."""
    x = _unit(embeddings)
    distance = np.full(len(x), np.inf)
    if labelled is not None and len(labelled):
        distance = (1.0 - x @ _unit(labelled).T).min(axis=1)
    picks, gaps = [], []
    for _ in range(min(n, len(x))):
        if np.isinf(distance).all():
            k = int(rng.integers(len(x)))
        else:
            best = distance.max()
            ties = np.flatnonzero(distance >= best - 1e-12)
            k = int(rng.choice(ties))
        picks.append(k)
        gaps.append(float(min(distance[k], 2.0)))
        distance = np.minimum(distance, 1.0 - x @ x[k])
        distance[picks] = -np.inf
    return picks, gaps


def select(uncertainty: np.ndarray, embeddings: np.ndarray | None, n: int, *, strategy: str = "hybrid",
           labelled: np.ndarray | None = None, seed: int = 0) -> tuple[list[int], list[float]]:
    """Indices of the ``n`` pool images to label next by ``strategy``, and each one's score
    (uncertainty, or for "diversity" its distance to the nearest picked or labelled image)."""
    if strategy not in STRATEGIES:
        raise ValidationError("selection.strategy", f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}.")
    if int(n) != n or n < 1:
        raise ValidationError("selection.n", f"n must be a positive whole number of images; got {n!r}.")
    rng = np.random.default_rng(seed)
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    n = min(int(n), len(uncertainty))
    if strategy == "random":
        picks = rng.choice(len(uncertainty), size=n, replace=False).tolist()
        return picks, [float(uncertainty[k]) for k in picks]
    # a random tie-break order, then most uncertain first (stable sort keeps the shuffle among equals)
    shuffled = rng.permutation(len(uncertainty))
    ranked = shuffled[np.argsort(-uncertainty[shuffled], kind="stable")]
    if strategy == "uncertainty":
        picks = ranked[:n].tolist()
        return picks, [float(uncertainty[k]) for k in picks]
    if embeddings is None:
        raise ValidationError("selection.embeddings", f"strategy {strategy!r} needs image embeddings; this model "
                              "gives none (use strategy='uncertainty').")
    candidates = ranked if strategy == "diversity" else ranked[:HYBRID_SHORTLIST * n]
    chosen, gaps = k_center_greedy(np.asarray(embeddings)[candidates], n, labelled=labelled, rng=rng)
    picks = [int(candidates[k]) for k in chosen]
    return picks, (gaps if strategy == "diversity" else [float(uncertainty[k]) for k in picks])


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
