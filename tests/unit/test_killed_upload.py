"""An upload killed with SIGKILL at any point leaves a workspace that checks whole (after ws.gc() for the
blobs it stored but never recorded), and uploading the same files again completes it."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mleval
from tests.unit.conftest import png_file

REPO = Path(__file__).resolve().parents[2]


def _no_process_left(script: str, timeout_s: float = 10.0) -> None:
    """The killed upload's worker processes end with it (they would wait for tasks forever)."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while True:
        left = [p for p in psutil.process_iter(["cmdline"]) if script in " ".join(p.info["cmdline"] or [])]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, f"{len(left)} worker process(es) outlived the killed upload"


def test_an_upload_killed_at_random_points_leaves_the_workspace_whole(tmp_path):
    folder = tmp_path / "files"
    total = 2600  # three catalog chunks (CHUNK_FILES = 1024): kills land between them and inside them
    for i in range(total):
        png_file(folder / f"{i:04d}.png", 16, 12, seed=i)
    workspace = tmp_path / "ws"
    script = textwrap.dedent(f"""
        import mleval
        ws = mleval.Workspace.open({str(workspace)!r})
        print("open", flush=True)
        ws.images.upload({str(folder)!r}, split="train", progress=lambda done, total: print(done, flush=True))
        print("done", flush=True)
    """)
    rng = random.Random(7)
    counts = []
    for attempt in range(3):
        process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "open"
        if attempt:  # the first is killed before any chunk is recorded, the others after one
            assert int(process.stdout.readline()) >= 1024
        time.sleep(rng.uniform(0.0, 0.05))
        process.kill()
        process.wait(timeout=60)
        _no_process_left(script)
        ws = mleval.Workspace.open(workspace)
        try:
            counts.append(ws.images.count())
            report = ws.check(hash_sample=20)
            broken = [f for f in report.findings if f.kind not in ("blobs no row refers to",
                                                                   "temporaries left by writes that never finished")]
            assert not broken, str(report)  # at most blobs stored but not yet recorded
        finally:
            ws.close()
    assert any(0 < n < total for n in counts), counts  # at least one kill landed in the middle of the upload
    ws = mleval.Workspace.open(workspace)
    try:
        before = ws.images.count()
        again = ws.images.upload(folder, split="train", progress=False)
        assert not again.failed and len(again.duplicates) == before and len(again.succeeded) == total - before
        assert ws.images.count() == total
        assert [f.kind for f in ws.check(hash_sample=20).findings] == []  # re-recorded: no stray blob left
    finally:
        ws.close()
