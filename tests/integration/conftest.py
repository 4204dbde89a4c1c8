"""Integration tests: one real local Ray for the whole session, real DuckDB files in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    # Workers import test helpers by module path, as the driver does.
    pythonpath = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    options = dict(num_cpus=2, include_dashboard=False, namespace="mleval", log_to_driver=False,
                   runtime_env={"env_vars": {"PYTHONPATH": pythonpath, "YOLO_OFFLINE": "1"}})
    try:
        ray.init(**options)
    except Exception:  # a raylet that timed out starting on a busy machine (ray-project/ray#65983): once more
        ray.shutdown()
        ray.init(**options)
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_workspace(ray_session, tmp_path):
    """A workspace whose catalog is owned by a Ray actor; the actor is stopped afterwards."""
    import mleval
    from mleval.catalog.owner import stop_owner

    ws = mleval.Workspace.open(tmp_path / "ws")
    yield ws
    stop_owner(str(ws.catalog_path))
