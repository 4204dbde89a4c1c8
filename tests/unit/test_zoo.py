"""Every zoo entry builds offline and runs one forward pass; weights resolution is recorded."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from mleval.core.errors import MlevalError
from mleval.models.weights import RandomWeightsWarning, resolve_weights
from mleval.models.zoo import ZOO, zoo_entry

SLOW = os.environ.get("MLEVAL_SLOW") == "1"


@pytest.mark.parametrize("entry", ZOO, ids=[e.name for e in ZOO])
def test_zoo_entry_builds_offline_and_predicts(ws, entry):
    if entry.large and not SLOW:
        pytest.skip("large variant: run with MLEVAL_SLOW=1")
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        loaded = ws.models.load(entry.name, imgsz=64, device="cpu")
    assert loaded.weights.source == "architecture" and not loaded.weights.pretrained
    if entry.task == "promptable":
        result = loaded.predictor.predict([image], boxes=[[[5, 5, 40, 30]]])[0]
        assert len(result.detections) == 1 and result.detections.masks_rle[0]["size"] == [48, 64]
    else:
        result = loaded.predictor.predict([image], conf=0.0)[0]
        assert result.inference_ms > 0 and result.detections.xyxy.shape[1] == 4
        assert (result.detections.xyxy[:, 2] <= 64.001).all() and (result.detections.xyxy[:, 3] <= 48.001).all()
        if entry.task == "segment":
            assert result.detections.masks_rle is not None
    record = ws.models.get(entry.name)
    assert record.metadata["weights_source"] == "architecture" and record.metadata["pretrained"] is False


def test_zoo_is_seeded_once_with_every_variant(ws):
    models = ws.models.list()
    assert len(models) == len(ZOO)
    assert {m.framework for m in models} == {"YOLO11", "YOLO12", "RT-DETR", "SAM2"}
    assert len(ws.models.list(framework="YOLO12")) == 5 and len(ws.models.list(type="segmentation")) == 9
    ws.models._seeded = False
    assert len(ws.models.list()) == len(ZOO)


def test_require_pretrained_says_where_to_put_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("MLEVAL_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(MlevalError, match="yolo11n.pt"):
        resolve_weights(zoo_entry("yolo11n"), require_pretrained=True)
    (tmp_path / "yolo11n.pt").write_bytes(b"weights")
    resolved = resolve_weights(zoo_entry("yolo11n"), require_pretrained=True)
    assert resolved.source == "cache" and resolved.location == str(tmp_path / "yolo11n.pt")


def test_registered_weights_are_stored_and_loaded(ws, tmp_path):
    from ultralytics import YOLO

    path = tmp_path / "mine.pt"
    model = YOLO("yolo11n.yaml")
    model.save(str(path))
    record = ws.models.register("my-detector", path, framework="YOLO11", variant="nano")
    assert record.model_path.startswith("sha256/") and record.training_status == "pre-trained"
    loaded = ws.models.load("my-detector", imgsz=64, device="cpu")
    assert loaded.weights.source == "registered"
    assert len(loaded.predictor.predict([np.zeros((32, 32, 3), np.uint8)], conf=0.0)) == 1
    with pytest.raises(MlevalError, match="does not exist"):
        ws.models.register("x", tmp_path / "missing.pt", framework="YOLO11", variant="nano")
