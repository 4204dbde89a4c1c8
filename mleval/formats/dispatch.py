"""``read`` / ``write`` by format name: the one entry the workspace calls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mleval.core.errors import ValidationError
from mleval.formats.coco import read_coco, write_coco
from mleval.formats.records import LabelledDataset, WriteSummary
from mleval.formats.voc import read_voc, write_voc
from mleval.formats.yolo import read_yolo, write_yolo

__all__ = ["FORMATS", "read", "write"]

_READERS: dict[str, Callable[..., LabelledDataset]] = {"coco": read_coco, "yolo": read_yolo, "voc": read_voc}
_WRITERS: dict[str, Callable[..., WriteSummary]] = {"coco": write_coco, "yolo": write_yolo, "voc": write_voc}
FORMATS = tuple(_READERS)


def _format(format: str) -> str:
    name = format.strip().lower() if isinstance(format, str) else format
    if name not in _READERS:
        raise ValidationError("formats.format_name", f"unknown format {format!r}; use one of: {', '.join(FORMATS)}.")
    return name


def read(path: str | Path, *, format: str, **options: Any) -> LabelledDataset:
    """Read a dataset in ``format`` ("coco", "yolo" or "voc"); ``options`` go to that reader."""
    return _READERS[_format(format)](path, **options)


def write(dataset: LabelledDataset, path: str | Path, *, format: str, **options: Any) -> WriteSummary:
    """Write ``dataset`` in ``format`` ("coco", "yolo" or "voc"); ``options`` go to that writer."""
    return _WRITERS[_format(format)](dataset, path, **options)
