"""A process killed with SIGKILL leaves a catalog the next process opens whole."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import mleval

REPO = Path(__file__).resolve().parents[2]


def test_a_workspace_created_and_written_by_a_killed_process_reopens_with_its_rows(tmp_path):
    """Found while killing the catalog owner: DuckDB could not replay the first open's migrations from the
    write-ahead log of a process that died (it tried to download its own core functions)."""
    script = textwrap.dedent(f"""
        import os, signal
        import mleval
        from tests.unit.conftest import image_bytes
        ws = mleval.Workspace.open({str(tmp_path / "ws")!r})
        image = ws.images.upload([("a.png", image_bytes(seed=1))], progress=False).succeeded[0]
        ws.annotations.add(image, labels=["cat"], boxes_xyxy=[[1, 1, 5, 5]])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    assert (tmp_path / "ws" / "catalog.duckdb.wal").exists()  # it died with writes in the log
    ws = mleval.Workspace.open(tmp_path / "ws")
    try:
        assert ws.sql("SELECT count(*) AS n FROM annotations").column("n")[0].as_py() == 1
        assert ws.catalog.schema_version() >= 4
    finally:
        ws.close()
