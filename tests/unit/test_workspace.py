"""Workspace lifecycle, blob store, datasets, splits, annotations and conflicts."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest

import mleval
from mleval.catalog.schema import LATEST_VERSION
from mleval.core.errors import (
    CatalogBusyError,
    ConflictError,
    MlevalError,
    NotFoundError,
    TransitionError,
    ValidationError,
)
from mleval.storage.blobs import BlobStore
from tests.unit.conftest import image_bytes


def test_reopen_round_trip(tmp_path):
    ws = mleval.Workspace.open(tmp_path / "w")
    report = ws.images.upload([(f"{i}.png", image_bytes(seed=i)) for i in range(3)])
    ws.datasets.create("d", images=report.succeeded)
    ws.annotations.add(report.succeeded[0], labels=["a"], boxes_xyxy=[[1, 1, 5, 5]])
    ws.close()
    ws = mleval.Workspace.open(f"file://{tmp_path / 'w'}")
    assert ws.images.count() == 3
    assert ws.datasets.get("d").train_count == 3
    assert len(ws.annotations.list()) == 1
    assert ws.catalog.schema_version() == LATEST_VERSION
    assert ws.sql("SELECT count(*) AS n FROM schema_migrations").column("n")[0].as_py() == LATEST_VERSION
    ws.close()


def test_a_catalog_of_an_older_schema_is_migrated_keeping_its_rows(tmp_path, monkeypatch):
    import uuid

    import pyarrow as pa

    import mleval.catalog.catalog as catalog_module
    from mleval.catalog.schema import MIGRATIONS

    # The catalog as mleval wrote it before migration 3 (annotation ids random, UUID v4).
    monkeypatch.setattr(catalog_module, "MIGRATIONS", MIGRATIONS[:2])
    monkeypatch.setattr(catalog_module, "LATEST_VERSION", 2)
    ws = mleval.Workspace.open(tmp_path / "w")
    image = ws.images.upload([("a.png", image_bytes(seed=1))]).succeeded[0]
    old = ws.annotations.add_batch(pa.table({"image_id": [image.id], "class_labels": [["a"]],
                                             "bounding_boxes": [[[1.0, 1.0, 5.0, 5.0]]]}))
    assert old == 1 and ws.catalog.schema_version() == 2
    ws.close()
    monkeypatch.undo()

    ws = mleval.Workspace.open(tmp_path / "w")
    assert ws.catalog.schema_version() == LATEST_VERSION >= 3
    ws.annotations.add_batch(pa.table({"image_id": [image.id] * 2, "class_labels": [["b"], ["c"]],
                                       "bounding_boxes": [[[2.0, 2.0, 6.0, 6.0]]] * 2}))
    versions = {record.class_labels[0]: uuid.UUID(str(record.id)).version for record in ws.annotations.list()}
    assert versions == {"a": 4, "b": 7, "c": 7}
    ws.close()


def test_a_catalog_from_a_newer_mleval_is_refused_untouched(tmp_path):
    ws = mleval.Workspace.open(tmp_path / "w")
    ws.catalog._con.execute("INSERT INTO schema_migrations VALUES (999, 'future', now())")
    ws.close()
    with pytest.raises(MlevalError, match="newer than this mleval"):
        mleval.Workspace.open(tmp_path / "w")


def test_a_file_is_not_a_workspace(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(MlevalError, match="is a file"):
        mleval.Workspace.open(tmp_path / "f")


def test_second_writer_process_gets_a_clear_error(tmp_path, ws):
    script = textwrap.dedent(f"""
        import mleval
        try:
            mleval.Workspace.open({str(ws.root)!r})
        except mleval.CatalogBusyError as error:
            print("BUSY", error)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "BUSY" in result.stdout and "ray_address" in result.stdout, result.stderr
    assert issubclass(CatalogBusyError, MlevalError)


def test_sql_is_read_only(ws, uploaded):
    assert ws.sql("SELECT count(*) AS n FROM images").column("n")[0].as_py() == 4
    for statement in ("DELETE FROM images", "DROP TABLE images", "UPDATE images SET width = 1",
                      "SELECT 1; DELETE FROM images", "CREATE TABLE x (a INT)"):
        with pytest.raises(ValidationError, match="read-only"):
            ws.sql(statement)
    assert ws.images.count() == 4


# --- blob store --------------------------------------------------------------------------

def test_blob_store_addresses_content_and_stores_it_once(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    first = store.put_bytes(b"hello")
    second = store.put_stream(io.BytesIO(b"hello"), chunk_bytes=2)
    assert first.key == second.key == (
        "sha256/2c/f24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    assert (first.already_stored, second.already_stored) == (False, True)
    assert store.read_bytes(first.key) == b"hello"
    assert [p for p in (tmp_path / "blobs" / "tmp").rglob("*") if p.is_file()] == []  # no temporary left


def test_blob_store_leaves_nothing_when_a_stream_fails(tmp_path):
    class Broken(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def read(self, n=-1):
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk vanished")
            return b"x" * 10

    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(OSError):
        store.put_stream(Broken())
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


def test_blob_store_accepts_a_file_uri(tmp_path):
    store = BlobStore(f"file://{tmp_path / 'b'}")
    key = store.put_bytes(b"abc").key
    assert store.exists(key) and store.read_bytes(key) == b"abc"
    with pytest.raises(NotFoundError):
        store.open("sha256/00/" + "0" * 62)


# --- datasets and splits ---------------------------------------------------------------

def test_split_counts_follow_every_change(ws, uploaded):
    ids = [r.id for r in uploaded]
    ds = ws.datasets.create("pets", description="four pets", images=ids[:3])
    assert (ds.train_count, ds.validation_count, ds.test_count) == (3, 0, 0)
    ws.images.assign(ids[:2], "test")
    ws.images.assign(ids[2:3], "validation")
    assert (ws.datasets.get("pets").train_count, ws.datasets.get("pets").test_count) == (0, 2)
    ds = ws.datasets.add_images("pets", ids[3:])
    assert (ds.train_count, ds.validation_count, ds.test_count) == (1, 1, 2)
    ds = ws.datasets.remove_images(ds, ids[:1])
    assert (ds.train_count, ds.validation_count, ds.test_count) == (1, 1, 1)
    ws.images.delete(ids[3:])
    ds = ws.datasets.get(ds.id)
    assert (ds.train_count, ds.validation_count, ds.test_count) == (0, 1, 1)
    actual = ws.sql(
        "SELECT i.dataset_split, count(*) AS n FROM dataset_images l JOIN images i ON i.id = l.image_id "
        "GROUP BY 1 ORDER BY 1").to_pylist()
    assert actual == [{"dataset_split": "test", "n": 1}, {"dataset_split": "validation", "n": 1}]
    assert [r.id for r in ws.images.list(split="test", dataset="pets")] == ids[1:2]


def test_dataset_names_are_unique_and_lookups_explain(ws):
    ws.datasets.create("a")
    with pytest.raises(ValidationError, match="dataset.name_unique"):
        ws.datasets.create("a")
    with pytest.raises(NotFoundError, match="existing datasets"):
        ws.datasets.get("b")
    with pytest.raises(ValidationError, match="dataset.split_count_positive"):
        ws.datasets.require_images("a")


def test_assign_to_unknown_split_or_image(ws, uploaded):
    with pytest.raises(ValidationError, match="split must be one of"):
        ws.images.assign(uploaded[:1], "holdout")
    with pytest.raises(NotFoundError, match="not in this workspace"):
        ws.images.assign(["00000000-0000-0000-0000-000000000000"], "test")


def test_images_list_pages(ws, uploaded):
    page = ws.images.list(limit=2, offset=1)
    assert [r.id for r in page] == [r.id for r in ws.images.list()][1:3]
    assert page.to_arrow().num_rows == 2 and "<table>" in page._repr_html_()


# --- annotations ----------------------------------------------------------------------

def test_user_annotation_round_trip_and_box_errors(ws, uploaded):
    image = uploaded[0]  # 100 x 80
    ann = ws.annotations.add(image, labels=["cat", "dog"], boxes_xyxy=[[1, 2, 30, 40], [50, 10, 99.5, 79]],
                             user_tag="ana")
    assert ann.review_state == "draft" and ann.revision == 1 and ann.user_tag == "ana"
    assert ann.boxes_xyxy == [[1, 2, 30, 40], [50, 10, 99.5, 79]]
    with pytest.raises(ValidationError, match=r"box #1 = \[10.0, 10.0, 101.0, 20.0\] on an image of 100x80"):
        ws.annotations.add(image, labels=["a", "b"], boxes_xyxy=[[0, 0, 5, 5], [10, 10, 101, 20]])
    with pytest.raises(ValidationError, match="box_inside_image"):
        ws.annotations.add(image, labels=["a"], boxes_xyxy=[[10, 10, 10, 20]])


def test_polygons_give_boxes_and_masks_are_stored_as_rle(ws, uploaded):
    import numpy as np

    ann = ws.annotations.add(uploaded[0], labels=["tri"], polygons=[[[10, 10, 40, 10, 25, 30]]])
    assert ann.boxes_xyxy == [[10, 10, 40, 30]] and ann.segments[0]["polygons"][0][:2] == [10, 10]
    mask = np.zeros((80, 100), bool)
    mask[5:15, 20:40] = True
    ann = ws.annotations.add(uploaded[0], labels=["blob"], masks=[mask])
    assert set(ann.segments[0]["rle"]) >= {"size", "counts"} and ann.boxes_xyxy == [[20, 5, 40, 15]]


def test_model_annotation_needs_a_model_and_counts_only_once_accepted(ws, uploaded):
    from mleval.catalog.catalog import new_id, utc_now

    with pytest.raises(ValidationError, match="model_id_required"):
        ws.annotations.add(uploaded[0], labels=["cat"], boxes_xyxy=[[0, 0, 5, 5]], creation_method="model")
    model_id = new_id()
    ws.catalog.insert("models", [{"id": model_id, "name": "m", "type": "detection", "variant": "nano",
                                  "version": "1", "framework": "YOLO11", "model_path": "zoo:yolo11n",
                                  "training_status": "pre-trained", "created_at": utc_now(),
                                  "updated_at": utc_now()}])
    user = ws.annotations.add(uploaded[0], labels=["cat"], boxes_xyxy=[[0, 0, 5, 5]])
    proposal = ws.annotations.add(uploaded[0], labels=["dog"], boxes_xyxy=[[1, 1, 6, 6]], scores=[0.9],
                                  creation_method="model", model_id=model_id)
    assert proposal.review_state == "generated"
    assert [a.id for a in ws.annotations.list(ground_truth=True)] == [user.id]
    accepted = ws.annotations.review(proposal.id, "accept", user_tag="bob")
    assert accepted.review_state == "accepted" and accepted.revision == 3
    assert {a.id for a in ws.annotations.list(ground_truth=True)} == {user.id, proposal.id}
    with pytest.raises(TransitionError, match="'accepted' to 'rejected'"):
        ws.annotations.review(proposal.id, "reject")
    with pytest.raises(TransitionError):
        ws.annotations.review(user.id, "accept")
    assert ws.annotations.review(user.id, "finalize").review_state == "finalized"


def test_concurrent_edits_conflict_and_lose_nothing(ws, uploaded):
    ann = ws.annotations.add(uploaded[0], labels=["cat"], boxes_xyxy=[[0, 0, 10, 10]], user_tag="ana")
    saved = ws.annotations.update(ann.id, revision=ann.revision, labels=["lion"], user_tag="ana")
    with pytest.raises(ConflictError) as raised:
        ws.annotations.update(ann.id, revision=ann.revision, boxes_xyxy=[[2, 2, 9, 9]], user_tag="bob")
    conflict = raised.value
    assert conflict.changed_by == "ana" and "ana" in str(conflict)
    assert conflict.rejected["bounding_boxes"] == [[2, 2, 9, 9]]
    assert conflict.current["revision"] == saved.revision == 2
    assert ws.annotations.get(ann.id).class_labels == ["lion"]


def test_bulk_annotations_from_arrow(ws, uploaded):
    import pyarrow as pa

    n = 1000
    boxes = pa.array([[[1.0, 1.0, 9.0, 9.0]]] * n, pa.list_(pa.list_(pa.float64(), 4)))
    table = pa.table({"image_id": [uploaded[i % 4].id for i in range(n)], "class_labels": [["a"]] * n,
                      "bounding_boxes": boxes})
    assert ws.annotations.add_batch(table) == n
    assert len(ws.annotations.list(image=uploaded[1])) == n // 4
    bad = table.set_column(0, "image_id", pa.array(["00000000-0000-0000-0000-000000000000"] * n))
    with pytest.raises(ValidationError, match="image_exists"):
        ws.annotations.add_batch(bad)
    assert ws.sql("SELECT count(*) AS n FROM annotations").column("n")[0].as_py() == n


def test_bulk_annotations_start_in_their_methods_first_state(ws, uploaded):
    import pyarrow as pa

    model_id = ws.models.get("yolo11n").id
    methods = ["user", "model", "model", "user"]
    table = pa.table({
        "image_id": [image.id for image in uploaded[:4]], "class_labels": [["a"]] * 4,
        "bounding_boxes": pa.array([[[1.0, 1.0, 9.0, 9.0]]] * 4, pa.list_(pa.list_(pa.float64(), 4))),
        "creation_method": methods, "model_id": [None if m == "user" else model_id for m in methods],
    })
    assert ws.annotations.add_batch(table) == 4
    states = {str(a.image_id): (a.creation_method, a.review_state) for a in ws.annotations.list()}
    assert [states[image.id] for image in uploaded[:4]] == [
        ("user", "draft"), ("model", "generated"), ("model", "generated"), ("user", "draft")]
