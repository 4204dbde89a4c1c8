"""Integration tests: one real local Ray for the whole session, real DuckDB files in tmp_path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mleval.cluster import free_port  # noqa: F401  (tests import it from here)

REPO = Path(__file__).resolve().parents[2]


def import_shapes(ws, folder: Path, *, train: int = 16, validation: int = 8):
    """Synthetic shapes (64x64 images, ``mleval.synthetic``) imported as dataset ``shapes`` through COCO."""
    from mleval.synthetic import generate_shapes

    shapes = folder / "shapes"
    synthetic = generate_shapes(shapes, train=train, validation=validation, test=0, image_size=64)
    (shapes / "annotations").mkdir()
    for split, stem in (("train", "train"), ("validation", "val")):
        (shapes / "annotations" / f"instances_{stem}.json").write_text(json.dumps(synthetic.to_coco(split)))
    report = ws.import_dataset(shapes, format="coco", name="shapes")
    assert report.errors == []
    return synthetic


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from mleval.cluster import prepare_local_ray_environment

    prepare_local_ray_environment()
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
