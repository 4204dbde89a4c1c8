"""Choosing what to label next: uncertainty, k-center diversity and their hybrid, deterministic per seed."""

from __future__ import annotations

import numpy as np
import pytest

from mleval.core.errors import ValidationError
from mleval.selection import image_uncertainty, k_center_greedy, select


def test_an_image_is_as_uncertain_as_its_boxes_nearest_one_half():
    assert image_uncertainty([]) == 0.0 and image_uncertainty([0.01, 0.02]) == 0.0
    assert image_uncertainty([0.5]) == pytest.approx(1.0)
    assert image_uncertainty([0.99, 0.98]) < image_uncertainty([0.6, 0.99]) < image_uncertainty([0.5, 0.55])


def _clusters(rng, sizes=(30, 30, 30)):
    """Embeddings in three tight clusters along different axes, uncertainty highest in the first."""
    blocks = []
    for axis, size in enumerate(sizes):
        centre = np.eye(8)[axis]
        blocks.append(centre + rng.normal(0, 0.01, (size, 8)))
    embeddings = np.concatenate(blocks)
    uncertainty = np.concatenate([rng.uniform(0.7, 0.9, sizes[0]), rng.uniform(0.4, 0.6, sizes[1]),
                                  rng.uniform(0.0, 0.2, sizes[2])])
    return embeddings, uncertainty


def test_each_strategy_returns_n_distinct_images_the_same_for_the_same_seed():
    embeddings, uncertainty = _clusters(np.random.default_rng(0))
    for strategy in ("uncertainty", "diversity", "hybrid", "random"):
        picks, scores = select(uncertainty, embeddings, 9, strategy=strategy, seed=3)
        assert len(set(picks)) == len(picks) == len(scores) == 9
        assert select(uncertainty, embeddings, 9, strategy=strategy, seed=3)[0] == picks
    assert select(uncertainty, embeddings, 500, strategy="hybrid")[0].__len__() == 90  # at most the pool


def test_diversity_covers_every_cluster_and_hybrid_stays_among_the_uncertain():
    embeddings, uncertainty = _clusters(np.random.default_rng(1))
    diverse, _ = select(uncertainty, embeddings, 3, strategy="diversity", seed=0)
    assert sorted(k // 30 for k in diverse) == [0, 1, 2]
    unsure, _ = select(uncertainty, embeddings, 6, strategy="uncertainty")
    assert all(k < 30 for k in unsure)  # all from the most uncertain cluster, alike
    hybrid, _ = select(uncertainty, embeddings, 12, strategy="hybrid")
    assert {k // 30 for k in hybrid} == {0, 1}  # the 36 most uncertain span two clusters: both used
    assert {k // 30 for k in hybrid[:2]} == {0, 1}  # and the second pick is already the other one
    # images like those already labelled come last
    labelled = embeddings[:1]
    first, _ = k_center_greedy(embeddings, 2, labelled=labelled, rng=np.random.default_rng(0))
    assert all(k >= 30 for k in first)


def test_bad_requests_name_the_rule():
    with pytest.raises(ValidationError, match="selection.strategy"):
        select(np.zeros(3), None, 1, strategy="smart")
    with pytest.raises(ValidationError, match="selection.n"):
        select(np.zeros(3), None, 0)
    with pytest.raises(ValidationError, match="selection.embeddings"):
        select(np.zeros(3), None, 1, strategy="hybrid")
