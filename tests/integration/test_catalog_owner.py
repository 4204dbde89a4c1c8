"""The catalog owner actor: one writer, many concurrent clients, nothing lost."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

import mleval
from mleval.catalog.catalog import Catalog
from mleval.core.errors import CatalogBusyError, ValidationError
from tests.unit.conftest import image_bytes


def _write_batches(workspace_path: str, image_ids: list[str], writer: int, batches: int, rows: int) -> int:
    """Runs in a Ray task: opens the workspace (through the owner) and writes Arrow batches."""
    ws = mleval.Workspace.open(workspace_path)
    assert ws.uses_catalog_owner
    boxes = pa.array([[[1.0, 1.0, 5.0, 5.0]]] * rows, pa.list_(pa.list_(pa.float64(), 4)))
    for batch in range(batches):
        ws.annotations.add_batch(pa.table({
            "image_id": [image_ids[(writer + i) % len(image_ids)] for i in range(rows)],
            "class_labels": [[f"w{writer}"]] * rows,
            "bounding_boxes": boxes,
            "user_tag": [f"writer{writer}-batch{batch}"] * rows,
        }))
    return batches * rows


def test_concurrent_writers_through_the_owner_lose_nothing(ray_session, ray_workspace):
    ws = ray_workspace
    assert ws.uses_catalog_owner and ws.catalog.owner_pid() != os.getpid()
    images = ws.images.upload([(f"{i}.png", image_bytes(seed=i)) for i in range(5)]).succeeded
    ids = [r.id for r in images]
    task = ray_session.remote(num_cpus=0)(_write_batches)
    written = ray_session.get([task.remote(str(ws.root), ids, w, 5, 2000) for w in range(6)])
    assert sum(written) == 60_000
    per_writer = ws.sql(
        "SELECT class_labels[1] AS w, count(*) AS n, count(DISTINCT user_tag) AS b FROM annotations GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    assert per_writer == [{"w": f"w{i}", "n": 10_000, "b": 5} for i in range(6)]


def test_the_owner_holds_the_file_and_errors_keep_their_type(ray_workspace):
    ws = ray_workspace
    with pytest.raises(CatalogBusyError, match="ray_address"):
        Catalog(ws.catalog_path)
    with pytest.raises(ValidationError) as raised:
        ws.annotations.add("00000000-0000-0000-0000-000000000000", labels=["x"], boxes_xyxy=[[0, 0, 1, 1]])
    assert raised.value.rule == "annotation.image_exists"


def test_a_direct_workspace_hands_its_catalog_to_the_owner(ray_session, tmp_path):
    from mleval.catalog.owner import stop_owner

    from mleval.storage.blobs import BlobStore

    (tmp_path / "w").mkdir()
    direct = mleval.Workspace(tmp_path / "w", Catalog(tmp_path / "w" / "catalog.duckdb"), BlobStore(tmp_path / "b"))
    assert not direct.uses_catalog_owner
    direct.attach_ray()
    try:
        assert direct.uses_catalog_owner
        assert direct.catalog.schema_version() >= 1
    finally:
        stop_owner(str(direct.catalog_path))


def test_writes_survive_the_owner_dying_neither_lost_nor_doubled(ray_session, ray_workspace):
    """The owner is killed while a writer sends batches (Ray restarts it), then killed for good: every
    batch lands once, and the workspace goes on with a new owner."""
    import time

    from mleval.catalog.owner import NAMESPACE, owner_key, owner_name

    ws = ray_workspace
    images = ws.images.upload([(f"{i}.png", image_bytes(seed=i)) for i in range(3)], progress=False).succeeded
    ids = [r.id for r in images]
    writer = ray_session.remote(num_cpus=0)(_write_batches).remote(str(ws.root), ids, 0, 40, 500)
    owner = ray_session.get_actor(owner_name(owner_key(ws.location)), namespace=NAMESPACE)
    time.sleep(3)  # the writer is under way
    ray_session.kill(owner, no_restart=False)
    assert ray_session.get(writer, timeout=300) == 20_000
    counted = ws.sql("SELECT count(*) AS n, count(DISTINCT user_tag) AS b FROM annotations").to_pylist()[0]
    assert counted == {"n": 20_000, "b": 40}

    ray_session.kill(ray_session.get_actor(owner_name(owner_key(ws.location)), namespace=NAMESPACE),
                     no_restart=True)
    time.sleep(1)
    ws.annotations.add(ids[0], labels=["after"], boxes_xyxy=[[1, 1, 5, 5]])  # a new owner, started here
    assert ws.sql("SELECT count(*) AS n FROM annotations").column("n")[0].as_py() == 20_001
