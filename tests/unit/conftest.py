"""Unit tests: no Ray, no network, tiny synthetic data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mleval.cluster import ray_is_running


@pytest.fixture(autouse=True)
def _no_ray():
    already = ray_is_running()  # the integration session's Ray, when both suites run in one process
    yield
    assert already or not ray_is_running(), "a unit test started Ray: move it to tests/integration"


@pytest.fixture
def ws(tmp_path):
    import mleval

    workspace = mleval.Workspace.open(tmp_path / "ws")
    yield workspace
    workspace.close()


def image_bytes(fmt: str = "PNG", *, mode: str = "RGB", size: tuple[int, int] = (64, 48), seed: int = 0,
                **save_options) -> bytes:
    """A small random image encoded as ``fmt``."""
    rng = np.random.default_rng(seed)
    width, height = size
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65535, (height, width), dtype=np.uint16))
    else:
        channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
        array = rng.integers(0, 255, (height, width, channels), dtype=np.uint8)
        image = Image.fromarray(array[..., 0] if channels == 1 else array, mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_options)
    return buffer.getvalue()


def png_file(path, width: int, height: int, seed: int):
    """A random RGB PNG of ``width`` x ``height`` written at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def disk_rle(width: int, height: int, cx: float, cy: float, r: float) -> dict:
    """The COCO RLE of a filled disk."""
    from mleval.core import masks

    yy, xx = np.mgrid[:height, :width]
    return masks.mask_to_rle(((xx - cx) ** 2 + (yy - cy) ** 2) < r**2)


@pytest.fixture
def make_image():
    return image_bytes


@pytest.fixture
def uploaded(ws):
    """Four uploaded PNG images (100x80), train split."""
    report = ws.images.upload(
        [(f"img{i}.png", image_bytes(size=(100, 80), seed=i)) for i in range(4)], split="train"
    )
    return report.succeeded


def detectors_of(ws, classes, *models):
    """Zoo records made stand-ins for detectors trained on ``classes`` (their class list says so), for
    tests that store those models' predictions by hand instead of running them."""
    for name in models:
        ws.catalog.update("models", ws.models.get(name).id, {"classes": list(classes)})
