"""A model's own settings (input size, classes, task), as every consumer defaults to them.

Ultralytics keeps the arguments a model was trained with (``train_args``: imgsz, data names) in
its checkpoints and uses them at predict and val time; mleval does the same, from the catalog:
a model evaluated at another size than it was trained at can score 0 where it scores 0.99 at
its own (measured: yolo11n trained at 128, mAP50 0.991 at 128, 0.000 at 640).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mleval.core.errors import ValidationError

if TYPE_CHECKING:
    from mleval.core.records import ModelRecord

ASSUMED_IMGSZ = 640  # what ultralytics itself assumes when a checkpoint names no size


@dataclass(frozen=True)
class ModelSettings:
    """``imgsz`` (pixels), ``classes`` (names in index order, None for a promptable model),
    ``task`` (detect | segment | promptable) and ``source``: zoo | training | checkpoint | assumed."""

    imgsz: int
    classes: list[str] | None
    task: str
    source: str

    def columns(self) -> dict[str, Any]:
        """The model row's columns that hold these settings."""
        return {"imgsz": self.imgsz, "classes": self.classes, "task": self.task, "settings_source": self.source}


def checkpoint_settings(path: str, *, default_task: str) -> ModelSettings:
    """Read the settings an ultralytics checkpoint was trained with: ``train_args['imgsz']`` and
    the model's names; a file without training arguments gets 640 (``source == "assumed"``)."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ValidationError("model.weights_readable",
                              f"{path} is not a readable PyTorch checkpoint ({type(error).__name__}: {error}); "
                              "give an ultralytics .pt file (e.g. a best.pt of a training run).") from None
    if not isinstance(checkpoint, dict):
        return ModelSettings(ASSUMED_IMGSZ, None, default_task, "assumed")
    args = checkpoint.get("train_args") or {}
    model = checkpoint.get("ema") or checkpoint.get("model")
    names = getattr(model, "names", None) or (args.get("names") if isinstance(args, dict) else None)
    classes = [str(names[k]) for k in sorted(names)] if isinstance(names, dict) else (
        [str(n) for n in names] if isinstance(names, (list, tuple)) else None)
    task = getattr(model, "task", None) or (args.get("task") if isinstance(args, dict) else None) or default_task
    imgsz = args.get("imgsz") if isinstance(args, dict) else None
    if isinstance(imgsz, (list, tuple)):  # ultralytics accepts [h, w]; the long side is what it resizes to
        imgsz = max(imgsz)
    if isinstance(imgsz, int) and not isinstance(imgsz, bool) and imgsz > 0:
        return ModelSettings(int(imgsz), classes, str(task), "checkpoint")
    return ModelSettings(ASSUMED_IMGSZ, classes, str(task), "assumed")


def imgsz_for(record: ModelRecord, imgsz: int | None) -> int:
    """The input size to use: ``imgsz`` when given, else the model's own (640 when it has none)."""
    if imgsz is None:
        return int(record.imgsz or ASSUMED_IMGSZ)
    if not isinstance(imgsz, int) or isinstance(imgsz, bool) or not 32 <= imgsz <= 8192:
        raise ValidationError("model.imgsz_range", f"imgsz must be an integer from 32 to 8192 pixels, or None for the "
                                                   f"model's own ({record.imgsz}); got {imgsz!r}.")
    return imgsz


def check_classes(record: ModelRecord, dataset_classes: list[str], dataset_name: str,
                  class_map: dict[str, str | None] | None) -> dict[str, str | None] | None:
    """The class map to apply to ``record``'s predictions before scoring them on a dataset.

    With ``class_map`` given it is used as it is (model class -> dataset class, None drops the
    class). Without one, every class of the dataset must be one the model knows; otherwise the
    scores would be silently 0 for them, so the error lists both sides and what to do.
    """
    if class_map is not None:
        if not isinstance(class_map, dict):
            raise ValidationError("evaluation.class_map", f"class_map must be a dict of model class -> dataset "
                                                          f"class (or None to drop it); got {class_map!r}.")
        return class_map
    known = set(record.classes or ())
    if record.classes is None:
        return None  # a model that predicts the prompts' objects has no classes of its own
    missing = [c for c in dataset_classes if c not in known]
    if missing:
        shown = ", ".join(record.classes[:20]) + (f", ... ({len(record.classes)} in all)"
                                                  if len(record.classes) > 20 else "")
        raise ValidationError(
            "evaluation.classes_match",
            f"model {record.name!r} does not predict the class(es) {missing} of dataset {dataset_name!r}. "
            f"The model's classes: [{shown}]; the dataset's: {dataset_classes}. Fine-tune it on the dataset "
            f"(ws.train), or pass class_map={{model_class: dataset_class, ...}} (None drops a class) to say "
            f"which model class stands for which; class_map={{}} scores the classes as named.")
    return None
