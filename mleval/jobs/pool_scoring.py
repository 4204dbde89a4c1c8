"""Scoring an unlabelled pool on Ray Data: each image's detection scores and backbone embedding.

Batch inference's pipeline (``inference.py``: its image blocks, actor pool size and image
reading): image ids and blob paths flow through ``map_batches`` into a pool of actors that
read and decode the images themselves; nothing is stored: the
caller (``Workspace.select_for_labeling``) ranks the rows with ``mleval.selection``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from mleval.jobs.inference import image_blocks, pool_size, read_images

if TYPE_CHECKING:
    from mleval.context import WorkspaceAddress, WorkspaceContext

SCORE_CONF = 0.01  # detections under it say nothing about uncertainty


class PoolScorer:
    """Ray Data callable class: loads the model once; per batch, each image's uncertainty and embedding."""

    def __init__(self, workspace: WorkspaceAddress, model_id: str, imgsz: int, embed: bool):
        self._ws = workspace.open()
        self._predictor = self._ws.models.load(model_id, imgsz=imgsz).predictor
        self._embed = embed

    def __call__(self, batch: pa.Table) -> pa.Table:
        from mleval.selection import image_uncertainty

        read = read_images(self._ws.blobs, batch.column("file_path").to_pylist())
        kept = [i for i, r in zip(batch.column("image_id").to_pylist(), read) if not isinstance(r, str)]
        images = [r for r in read if not isinstance(r, str)]  # an unreadable image leaves the pool, not the batch
        predictions = self._predictor.predict(images, conf=SCORE_CONF) if images else []
        columns = {"image_id": pa.array(kept, pa.string()),
                   "uncertainty": pa.array([image_uncertainty(p.detections.scores.tolist()) for p in predictions],
                                           pa.float64())}
        if self._embed:
            vectors = self._predictor.embed(images) if images else []
            columns["embedding"] = pa.array([v.tolist() for v in vectors], pa.list_(pa.float32()))
        return pa.table(columns)


def score_pool(ws: WorkspaceContext, model_id: str, image_ids: list[str], *, imgsz: int, embed: bool,
               batch_size: int = 16, concurrency: int | None = None,
               progress: Callable[[int, int], None] | None = None) -> pa.Table:
    """One row per readable image of ``image_ids``: ``image_id``, ``uncertainty`` and, with
    ``embed``, ``embedding``. Runs on the workspace's Ray (one CPU per actor)."""
    import ray

    pool = pool_size(concurrency, False, len(image_ids), batch_size)
    scored = image_blocks(ws, image_ids, batch_size).map_batches(
        PoolScorer, fn_constructor_kwargs={"workspace": ws.address, "model_id": model_id, "imgsz": imgsz,
                                           "embed": embed},
        batch_size=batch_size, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=pool), num_cpus=1)
    parts, done = [], 0
    for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
        parts.append(batch)
        done += batch_size
        if progress is not None:
            progress(min(done, len(image_ids)), len(image_ids))
    return pa.concat_tables(parts) if parts else pa.table({"image_id": pa.array([], pa.string())})


def select_for_labeling(ws: WorkspaceContext, model, images, n: int, *, strategy: str = "hybrid", seed: int = 0,
                        batch_size: int = 16, progress=True) -> pa.Table:
    """The ``n`` images of the pool to label next (see ``mleval.selection``): ``images`` is a
    dataset (its images without ground truth are the pool; those with it are what is already
    known) or a list of images (all of them the pool). Returns ``image_id``, ``score``, ``rank``."""
    import numpy as np

    from mleval.catalog.repositories import AnnotationRepository
    from mleval.core.errors import ValidationError
    from mleval.core.progress import Progress
    from mleval.models.settings import imgsz_for
    from mleval.selection import select

    record = ws.models.get(model)
    if isinstance(images, (list, tuple)):
        pool, known = [ws.images.get(i).id for i in images], []
    else:
        members = [i.id for i in ws.images.list(dataset=images)]
        labelled = AnnotationRepository(ws.catalog).labelled(members) if members else set()
        pool, known = [i for i in members if i not in labelled], [i for i in members if i in labelled]
    if not pool:
        raise ValidationError("selection.pool", "the pool is empty: every image given already has ground truth.")
    if record.is_promptable:
        raise ValidationError("selection.model", f"{record.name} is a promptable segmenter: it finds nothing "
                              "without prompts, so it cannot score a pool; use a detector.")
    embed = strategy in ("diversity", "hybrid")
    targets = pool + (known if embed else [])
    with Progress(progress, total=len(targets), desc=f"score pool with {record.name}", unit="img") as bar:
        scored = score_pool(ws, record.id, targets, imgsz=imgsz_for(record, None), embed=embed,
                            batch_size=batch_size, progress=lambda done, total: bar.update_to(done))
    rows = {r["image_id"]: r for r in scored.to_pylist()}
    pool = [i for i in pool if i in rows]  # unreadable images are left out
    uncertainty = np.asarray([rows[i]["uncertainty"] for i in pool])
    vectors = np.asarray([rows[i]["embedding"] for i in pool]) if embed else None
    seen = [rows[i]["embedding"] for i in known if i in rows] if embed else []
    picks, scores = select(uncertainty, vectors, n, strategy=strategy, seed=seed,
                           labelled=np.asarray(seen) if seen else None)
    return pa.table({"image_id": pa.array([pool[k] for k in picks], pa.string()),
                     "score": pa.array(scores, pa.float64()), "rank": pa.array(range(1, len(picks) + 1), pa.int64())})
