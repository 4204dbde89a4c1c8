"""Scoring an unlabelled pool on Ray Data: each image's detection scores and backbone embedding.

Like batch inference (``inference.py``), image ids and blob paths flow through ``map_batches``
into a pool of actors that read and decode the images themselves; nothing is stored: the
caller (``Workspace.select_for_labeling``) ranks the rows with ``mleval.selection``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa

from mleval.catalog.repositories import ImageRepository

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
        from mleval.images.decode import decode_rgb
        from mleval.selection import image_uncertainty

        image_ids, images, kept = batch.column("image_id").to_pylist(), [], []
        for image_id, key in zip(image_ids, batch.column("file_path").to_pylist()):
            try:
                images.append(decode_rgb(self._ws.blobs.read_bytes(key)))
                kept.append(image_id)
            except Exception:  # noqa: BLE001 - an unreadable image is left out of the pool, not the batch
                continue
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

    ray.data.DataContext.get_current().enable_progress_bars = False
    paths = ImageRepository(ws.catalog).file_paths(image_ids)
    items = pa.table({"image_id": image_ids, "file_path": [paths[i] for i in image_ids]})
    available = int(ray.available_resources().get("CPU", 1)) or 1
    pool = max(1, min(concurrency or available, -(-len(image_ids) // batch_size)))
    dataset = ray.data.from_arrow([items.slice(s, batch_size) for s in range(0, items.num_rows, batch_size)])
    scored = dataset.map_batches(
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
    embed = strategy in ("diversity", "hybrid")
    if embed and not callable(getattr(ws.models.load(record).predictor, "embed", None)):
        raise ValidationError("selection.embeddings", f"{record.name} gives no image embeddings; use "
                              "strategy='uncertainty'.")
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
