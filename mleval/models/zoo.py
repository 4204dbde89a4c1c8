"""The model zoo: every variant mleval knows, how to build it offline, its weights' name, and
the settings its published weights were trained with (input size, classes)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from mleval.core.enums import Framework, ModelType

_YOLO_SCALES = {"n": "nano", "s": "small", "m": "medium", "l": "large", "x": "xl"}


@dataclass(frozen=True)
class ZooEntry:
    name: str  # the catalog name, e.g. "yolo11n"
    framework: Framework
    type: ModelType
    variant: str  # nano, small, ..., or the architecture's own name (resnet50, base_plus)
    config: str  # architecture config that builds the model offline with random weights
    weights: str  # the framework's pretrained weights file name
    task: str  # detect | segment | promptable
    large: bool = False  # slow to build and run on a CPU: skipped by default in tests
    imgsz: int = 640  # the input size its published weights were trained at

    @property
    def model_path(self) -> str:
        return f"zoo:{self.name}"

    @property
    def classes(self) -> list[str] | None:
        """The class names of its published weights, in index order (COCO's 80 for the detectors and
        YOLO -seg); None for a promptable segmenter, which has no classes."""
        return None if self.task == "promptable" else coco_class_names()


@lru_cache(maxsize=1)
def coco_class_names() -> list[str]:
    """COCO's 80 class names in ultralytics' index order, read from ultralytics' own dataset file
    (found without importing ultralytics, which loads torch)."""
    import importlib.util
    from pathlib import Path

    import yaml

    spec = importlib.util.find_spec("ultralytics")
    folder = Path(next(iter(spec.submodule_search_locations)))
    names = yaml.safe_load((folder / "cfg" / "datasets" / "coco.yaml").read_text())["names"]
    return [str(names[i]) for i in sorted(names)]


def _yolo(prefix: str, framework: Framework, suffix: str = "", *, task: str = "detect") -> list[ZooEntry]:
    model_type = ModelType.SEGMENTATION if task == "segment" else ModelType.DETECTION
    return [
        ZooEntry(f"{prefix}{scale}{suffix}", framework, model_type, variant, f"{prefix}{scale}{suffix}.yaml",
                 f"{prefix}{scale}{suffix}.pt", task, large=scale in "lx")
        for scale, variant in _YOLO_SCALES.items()
    ]


ZOO: tuple[ZooEntry, ...] = tuple(
    _yolo("yolo11", Framework.YOLO11)
    + _yolo("yolo12", Framework.YOLO12)
    + _yolo("yolo11", Framework.YOLO11, "-seg", task="segment")
    + [
        ZooEntry("rtdetr-l", Framework.RT_DETR, ModelType.DETECTION, "large", "rtdetr-l.yaml", "rtdetr-l.pt",
                 "detect", large=True),
        ZooEntry("rtdetr-x", Framework.RT_DETR, ModelType.DETECTION, "xl", "rtdetr-x.yaml", "rtdetr-x.pt",
                 "detect", large=True),
        ZooEntry("rtdetr-resnet50", Framework.RT_DETR, ModelType.DETECTION, "resnet50", "rtdetr-resnet50.yaml",
                 "rtdetr-resnet50.pt", "detect", large=True),
        ZooEntry("rtdetr-resnet101", Framework.RT_DETR, ModelType.DETECTION, "resnet101", "rtdetr-resnet101.yaml",
                 "rtdetr-resnet101.pt", "detect", large=True),
    ]
    + [
        ZooEntry(f"sam2.1_{short}", Framework.SAM2, ModelType.SEGMENTATION, variant,
                 f"configs/sam2.1/sam2.1_hiera_{short}.yaml", f"sam2.1_hiera_{checkpoint}.pt",
                 "promptable", large=short in ("b+", "l"), imgsz=1024)
        for short, variant, checkpoint in (
            ("t", "tiny", "tiny"), ("s", "small", "small"), ("b+", "base_plus", "base_plus"), ("l", "large", "large"),
        )
    ]
)

ZOO_BY_NAME = {entry.name: entry for entry in ZOO}


def zoo_entry(name: str) -> ZooEntry | None:
    return ZOO_BY_NAME.get(name)
