"""Workspaces on an object store (a local S3 server) and on file:// URIs: what is written lands
on the store, and a machine without the local catalog finds all of it again."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
import textwrap
import uuid

import duckdb
import pyarrow.fs as pafs
import pytest

import mleval
from mleval.core.errors import CatalogBusyError, MlevalError
from mleval.storage.location import StorageLocation
from tests.unit.conftest import detectors_of, image_bytes
from tests.unit.test_evaluate_runs import (
    GROUND_TRUTH,
    H,
    W,
    _perfect,
    _store_predictions,
)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """This machine's cache folder (where an object-store workspace keeps its catalog)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("MLEVAL_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(params=["s3", "file"])
def store(request, tmp_path):
    """(workspace URI, storage options, filesystem and path of the workspace inside it)."""
    if request.param == "file":
        return f"file://{tmp_path / 'shared' / 'ws'}", None, pafs.LocalFileSystem(), str(tmp_path / "shared" / "ws")
    bucket, options = request.getfixturevalue("s3_bucket"), request.getfixturevalue("s3_options")
    return f"s3://{bucket}/team/ws", options, pafs.S3FileSystem(**options), f"{bucket}/team/ws"


def _files(filesystem, folder):
    selector = pafs.FileSelector(folder, recursive=True, allow_not_found=True)
    return sorted(i.path[len(folder) + 1:] for i in filesystem.get_file_info(selector) if i.type == pafs.FileType.File)


def test_a_workspace_comes_back_whole_from_its_store(store, cache):
    uri, options, filesystem, folder = store
    ws = mleval.Workspace.open(uri, storage_options=options)
    pictures = [(f"{i}.png", image_bytes(size=(W, H), seed=i)) for i in GROUND_TRUTH]
    report = ws.images.upload(pictures + [("again.png", pictures[0][1])], split="test")
    assert (len(report.succeeded), len(report.duplicates)) == (len(GROUND_TRUTH), 1)
    images = sorted(report.succeeded, key=lambda r: r.filename)
    ws.datasets.create("shapes", images=images)
    for i, objects in GROUND_TRUTH.items():
        if objects:
            ws.annotations.add(images[i], labels=[o[0] for o in objects], boxes_xyxy=[o[1] for o in objects])
    detections = {i: _perfect(objects, i) for i, objects in GROUND_TRUTH.items()}
    detectors_of(ws, ["circle", "square", "dog"], "yolo11n")
    job_id = _store_predictions(ws, ws.models.get("yolo11n"), images, detections, failed=set())
    run = ws.evaluate("yolo11n", "shapes", key="perfect")
    assert run.summary["mAP50"] == pytest.approx(1.0)

    stored = _files(filesystem, folder)
    assert "workspace.json" in stored
    # the images, and the evaluation's dataset snapshot (members and annotations, one Parquet blob each)
    assert sum(path.startswith("blobs/sha256/") for path in stored) == len(GROUND_TRUTH) + 2
    assert any(path.startswith(f"tables/predictions/job={job_id}/") for path in stored)
    assert any(path.startswith("tables/performance_metrics/month=") for path in stored)
    ws.close()

    if options is None:  # file:// is a local folder: its catalog lives in it, nothing is cached
        assert "catalog.duckdb" in _files(filesystem, folder) and not cache.exists()
    else:
        stored = _files(filesystem, folder)
        assert "catalog/checkpoint.json" in stored and "catalog/lease.json" not in stored
        assert [p for p in stored if p.startswith("catalog/checkpoints/")] != []
        assert [p.name for p in cache.glob("workspaces/*/catalog.duckdb")] == ["catalog.duckdb"]
        shutil.rmtree(cache)  # a fresh machine

    ws = mleval.Workspace.open(uri, storage_options=options)
    try:
        assert ws.images.count(split="test") == len(GROUND_TRUTH)
        assert ws.datasets.get("shapes").test_count == len(GROUND_TRUTH)
        assert len(ws.annotations.list()) == sum(1 for objects in GROUND_TRUTH.values() if objects)
        assert ws.images.read_bytes(images[3].id) == pictures[3][1]
        again = ws.evaluations.load("perfect")
        assert again.summary == run.summary and again.metrics.equals(run.metrics)
        predicted = ws.sql(f"SELECT count(*) AS n FROM predictions WHERE inference_job_id = '{job_id}'")
        assert predicted.column("n")[0].as_py() == len(GROUND_TRUTH)
    finally:
        ws.close()


def test_checkpoints_follow_changes_and_a_stale_local_copy_gives_way(s3_bucket, s3_options, tmp_path, cache):
    uri = f"s3://{s3_bucket}/ws"
    first, second = tmp_path / "machine-a", tmp_path / "machine-b"
    ws = mleval.Workspace.open(uri, storage_options=s3_options, catalog_dir=first)
    ws.images.upload([("a.png", image_bytes(seed=1))])
    assert ws.checkpoint() is True
    assert ws.checkpoint() is False  # nothing changed since
    with pytest.raises(CatalogBusyError, match="another Workspace of this process"):
        mleval.Workspace.open(uri, storage_options=s3_options, catalog_dir=second)
    ws.close()

    ws = mleval.Workspace.open(uri, storage_options=s3_options, catalog_dir=second)  # restores the checkpoint
    assert ws.catalog_path == second / "catalog.duckdb"
    ws.images.upload([("b.png", image_bytes(seed=2))])
    ws.close()

    ws = mleval.Workspace.open(uri, storage_options=s3_options, catalog_dir=first)  # older copy: replaced
    assert sorted(r.filename for r in ws.images.list()) == ["a.png", "b.png"]
    ws.close()

    # machine A writes without ever checkpointing (a crash), then machine B checkpoints newer work
    with duckdb.connect(str(first / "catalog.duckdb")) as con:
        con.execute("UPDATE images SET filename = 'renamed-on-a.png' WHERE filename = 'a.png'")
    ws = mleval.Workspace.open(uri, storage_options=s3_options, catalog_dir=second)
    ws.images.upload([("c.png", image_bytes(seed=3))])
    ws.close()
    with pytest.raises(MlevalError, match="never checkpointed") as refused:
        mleval.Workspace.open(uri, storage_options=s3_options, catalog_dir=first)
    assert str(first) in str(refused.value)
    shutil.rmtree(first)  # what the message says to do: take the store's checkpoint
    ws = mleval.Workspace.open(uri, storage_options=s3_options, catalog_dir=first)
    assert sorted(r.filename for r in ws.images.list()) == ["a.png", "b.png", "c.png"]
    ws.close()


def test_a_second_process_is_refused_while_the_first_holds_the_catalog(s3_bucket, s3_options, tmp_path, cache):
    uri = f"s3://{s3_bucket}/ws"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import json, sys
        import mleval
        ws = mleval.Workspace.open({uri!r}, storage_options=json.loads({json.dumps(s3_options)!r}),
                                   catalog_dir={str(tmp_path / "other")!r})
        print("OPEN", flush=True)
        sys.stdin.readline()
        ws.close()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "OPEN"
        with pytest.raises(CatalogBusyError, match=f"held by process {holder.pid} on"):
            mleval.Workspace.open(uri, storage_options=s3_options)
    finally:
        holder.communicate("close\n", timeout=60)
    ws = mleval.Workspace.open(uri, storage_options=s3_options)  # released on close
    ws.close()


def test_a_location_pickles_without_its_filesystem_and_hides_its_options(s3_bucket, s3_options):
    location = StorageLocation.parse(f"s3://{s3_bucket}/ws/", s3_options)
    location.join("blobs").filesystem.create_dir(f"{s3_bucket}/ws/blobs")
    copy = pickle.loads(pickle.dumps(location))
    assert copy == location and copy._filesystem is None
    assert copy.join("blobs").exists()
    assert str(copy) == f"s3://{s3_bucket}/ws" and "testing" not in repr(copy)
    assert StorageLocation.parse(f"s3://{s3_bucket}/ws?endpoint_override={s3_options['endpoint_override']}"
                                 "&scheme=http").identity == f"s3://{s3_bucket}/ws"


def test_unreachable_or_misused_locations_say_what_to_do(tmp_path, s3_options):
    with pytest.raises(MlevalError, match="bucket exists"):
        mleval.Workspace.open("s3://no-such-bucket/ws", storage_options=s3_options)
    with pytest.raises(MlevalError, match="object-store URIs"):
        mleval.Workspace.open(tmp_path / "w", storage_options=s3_options)
    with pytest.raises(MlevalError, match="no filesystem for"):
        mleval.Workspace.open("nosuchprotocol://bucket/ws")


def test_a_protocol_only_fsspec_knows_works_the_same(cache):
    import fsspec

    uri = f"memory://mleval-tests/{uuid.uuid4().hex}"  # fsspec's in-process memory filesystem
    try:
        ws = mleval.Workspace.open(uri)
        image = ws.images.upload([("a.png", image_bytes(seed=5))]).succeeded[0]
        ws.catalog.append_rows("predictions", [{"inference_job_id": "job-1", "model_id": "m", "image_id": image.id}])
        ws.close()
        shutil.rmtree(cache)
        ws = mleval.Workspace.open(uri)
        assert ws.images.read_bytes(image.id) == image_bytes(seed=5)
        assert ws.sql("SELECT image_id FROM predictions").column("image_id").to_pylist() == [image.id]
        ws.close()
    finally:
        fsspec.filesystem("memory").rm(uri.removeprefix("memory://"), recursive=True)


@pytest.fixture
def stoppable_s3():
    """A local S3 of this test's own, which the test may stop and start again on the same port
    (its buckets and objects live in this process, so they outlast a stop)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    servers = [ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)]
    servers[0].start()
    host, port = servers[0].get_host_and_port()

    class Store:
        options = {"endpoint_override": f"{host}:{port}", "scheme": "http", "region": "us-east-1",
                   "access_key": "testing", "secret_key": "testing", "connect_timeout": 1, "request_timeout": 5}

        @staticmethod
        def stop():
            servers[-1].stop()

        @staticmethod
        def start():
            servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False))
            servers[-1].start()

    bucket = f"mleval-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(**Store.options, allow_bucket_creation=True).create_dir(bucket)
    Store.uri = f"s3://{bucket}/ws"
    yield Store
    servers[-1].stop()


def test_a_store_that_goes_away_mid_upload_stops_it_with_a_clear_error_and_a_retry_completes_it(
        stoppable_s3, cache, monkeypatch):
    from mleval.core.errors import StoreUnavailableError
    from mleval.images import ingest

    monkeypatch.setattr(ingest, "CHUNK_FILES", 16)  # small chunks: the store goes away after the first
    monkeypatch.setattr(ingest, "TASK_FILES", 4)
    files = [(f"img{i}.png", image_bytes(size=(24, 24), seed=i)) for i in range(100)]
    ws = mleval.Workspace.open(stoppable_s3.uri, storage_options=stoppable_s3.options)
    try:
        def stop_after_the_first_chunk(done, total):
            if done == 16:
                stoppable_s3.stop()

        with pytest.raises(StoreUnavailableError) as raised:
            ws.images.upload(files, progress=stop_after_the_first_chunk)
        message = str(raised.value)
        assert f"blob store {ws.blobs.root_uri} cannot be written" in message, message
        assert "upload the same files again" in message and "images and 0 duplicates recorded before stay" in message
        recorded = ws.sql("SELECT count(*) AS n FROM images").to_pylist()[0]["n"]
        assert 16 <= recorded < 100, recorded  # the first chunk, and nothing half-recorded

        stoppable_s3.start()
        retry = ws.images.upload(files, progress=False)
        assert (len(retry.duplicates), len(retry.succeeded), len(retry.failed)) == (recorded, 100 - recorded, 0)
        report = ws.check()
        assert report.ok and report.looked_at["images rows"] == 100, str(report)
    finally:
        ws.close()
