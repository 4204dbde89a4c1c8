"""ws.check() finds what is broken and says how to repair it; ws.gc() removes what no row refers to."""

from __future__ import annotations

import os
import time

from mleval.cli import main
from tests.unit.conftest import image_bytes


def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_whole_workspace_checks_clean(ws, uploaded):
    ws.annotations.add(uploaded[0], labels=["cat"], boxes_xyxy=[[1, 1, 20, 20]])
    report = ws.check()
    assert report.ok, str(report)
    assert report.looked_at["blobs"] == 4 and report.looked_at["images rows"] == 4


def test_check_finds_missing_and_damaged_blobs_broken_rows_and_leftovers(ws, uploaded):
    os.remove(ws.blobs.local_path(uploaded[0].file_path))
    with open(ws.blobs.local_path(uploaded[1].file_path), "r+b") as blob:
        blob.write(b"damaged")
    stray = ws.blobs.put_bytes(image_bytes(seed=99))  # stored, never recorded (an upload that died)
    leftover = ws.blobs.root_uri + "/tmp/0123abcd"
    with open(leftover, "wb") as half_written:
        half_written.write(b"half")
    _age(leftover, 7200)
    # a row written around the catalog's rules (as before the rule existed)
    ws.catalog._con.execute(
        "INSERT INTO annotations (image_id, class_labels, bounding_boxes, confidence_scores, creation_method, model_id, "
        "review_state, created_at, updated_at) SELECT id, ['cat'], [[1.0, 1.0, 5.0, 5.0]], [7.5], 'model', "
        f"'{ws.models.get('yolo11n').id}', 'generated', now(), now() FROM images WHERE id = '{uploaded[2].id}'")

    report = ws.check()
    kinds = {f.kind: f for f in report.findings}
    assert kinds["images whose blob is missing"].examples == (uploaded[0].file_path,)
    assert kinds["blobs whose bytes no longer match their hash"].examples == (uploaded[1].file_path,)
    assert kinds["annotations rows breaking [annotation.confidence_scores_range]"].count == 1
    assert kinds["temporaries left by writes that never finished"].count == 1
    assert kinds["blobs no row refers to"].examples == (stray.key,)
    assert "ws.gc() removes them" in str(report) and not report.ok

    first = ws.gc()  # the stray blob is new: it may belong to an upload under way; the old temporary goes
    assert first.stray_blobs == () and first.temporaries == (leftover,) and not os.path.exists(leftover)
    _age(ws.blobs.local_path(stray.key), 7200)
    removed = ws.gc()
    assert removed.stray_blobs == (stray.key,) and removed.freed_bytes > 0 and not ws.blobs.exists(stray.key)
    assert ws.blobs.exists(uploaded[3].file_path)  # what rows refer to stays


def test_mleval_check_prints_the_report_and_exits_1_when_broken(ws, uploaded, capsys):
    path = str(ws.location)
    ws.close()
    main(["check", path])
    assert "whole" in capsys.readouterr().out
    os.remove(ws.blobs.local_path(uploaded[0].file_path))
    try:
        main(["check", path])
    except SystemExit as exit_:
        assert exit_.code == 1
    else:
        raise AssertionError("mleval check exited 0 on a broken workspace")
    out = capsys.readouterr().out
    assert "images whose blob is missing: 1" in out and "repair:" in out


def test_opening_a_workspace_removes_the_temporaries_of_writes_that_never_finished(tmp_path):
    import mleval

    ws = mleval.Workspace.open(tmp_path / "ws")
    ws.images.upload([("a.png", image_bytes(seed=1))])
    blobs = ws.blobs
    ws.close()
    tmp = blobs.root_uri + "/tmp"
    os.makedirs(f"{tmp}/ab", exist_ok=True)
    stale, fresh = f"{tmp}/ab/0123abcd", f"{tmp}/4567ef01"  # left by a killed upload; an upload under way
    for path, age in ((stale, 7200), (fresh, 60)):
        with open(path, "wb") as half_written:
            half_written.write(b"half")
        _age(path, age)

    reopened = mleval.Workspace.open(tmp_path / "ws")
    try:
        assert not os.path.exists(stale) and os.path.exists(fresh)
        assert reopened.check().ok, str(reopened.check())  # a young temporary is not a finding
    finally:
        reopened.close()


def test_a_write_in_memory_goes_through_a_temporary_under_tmp(ws, monkeypatch):
    # Every temporary is under tmp/, so opening finds them without listing the blobs.
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda source, destination: (seen.append(source), real_replace(source, destination)))
    stored = ws.blobs.put_bytes(image_bytes(seed=5))
    assert seen and seen[0].startswith(ws.blobs.root_uri + "/tmp/" + stored.sha256[:2] + "/")
