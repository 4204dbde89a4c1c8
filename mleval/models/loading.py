"""Turning a Model record into a ready Predictor, with its weights resolved."""

from __future__ import annotations

import os
from dataclasses import dataclass

from mleval.core.errors import MlevalError
from mleval.core.records import ModelRecord
from mleval.models.weights import ResolvedWeights, resolve_weights
from mleval.models.zoo import ZooEntry, zoo_entry


@dataclass(frozen=True)
class LoadedModel:
    predictor: object
    weights: ResolvedWeights


def prepare_ultralytics() -> None:
    """Quiet ultralytics and forbid its pip installs at run time (mleval declares what it needs);
    read by ultralytics when it is first imported, so called before that."""
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")


def default_device() -> str:
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _entry_for(record: ModelRecord) -> ZooEntry:
    metadata = record.metadata or {}
    base = metadata.get("zoo_entry") or (record.model_path[4:] if record.model_path.startswith("zoo:") else None)
    entry = zoo_entry(base) if base else None
    if entry is None:
        raise MlevalError(
            f"model {record.name!r} names no known architecture (model_path {record.model_path!r}); "
            "register it with ws.models.register(name, weights_path, framework=..., variant=...)."
        )
    return entry


def load_model(
    record: ModelRecord,
    *,
    blob_path: str | None = None,
    imgsz: int | None = None,
    device: str | None = None,
    require_pretrained: bool = False,
) -> LoadedModel:
    """Build the predictor for ``record``. ``blob_path`` is the local file of a registered or
    trained model's weights (its ``model_path`` blob); ``imgsz`` None is the model's own."""
    from mleval.models.settings import imgsz_for

    prepare_ultralytics()
    imgsz = imgsz_for(record, imgsz)
    device = device or default_device()
    entry = _entry_for(record)
    weights = resolve_weights(entry, registered_path=blob_path, require_pretrained=require_pretrained)
    if entry.task == "promptable":
        from mleval.models.sam2_predictor import build_sam2_predictor

        return LoadedModel(build_sam2_predictor(entry, weights, name=record.name, device=device), weights)
    from mleval.models.predictor import UltralyticsPredictor

    if entry.framework.value == "RT-DETR":
        from ultralytics import RTDETR as model_class
    else:
        from ultralytics import YOLO as model_class
    model = model_class(weights.location)
    if weights.source == "architecture" and record.classes and len(record.classes) == len(model.names):
        model.model.names = dict(enumerate(record.classes))  # random weights, the classes the record names
    return LoadedModel(UltralyticsPredictor(model, name=record.name, imgsz=imgsz, device=device), weights)
