"""COCO / YOLO / Pascal VOC import and export through one neutral form, ``LabelledDataset``.

``read(path, format=...)`` returns a LabelledDataset whose ``errors`` list the items that
could not be read; ``write(dataset, path, format=...)`` returns a WriteSummary whose
``issues`` list what the format could not hold. A wholly unreadable input raises
``FormatError`` (a ``ValidationError``). No database, no Ray, no torch here.
"""

from mleval.formats._files import FormatError
from mleval.formats.coco import read_coco, write_coco
from mleval.formats.coco_results import read_coco_results, write_coco_results
from mleval.formats.dispatch import FORMATS, read, write
from mleval.formats.records import ItemError, LabelledDataset, LabelledImage, LabelledObject, WriteSummary
from mleval.formats.voc import read_voc, write_voc
from mleval.formats.yolo import read_yolo, write_yolo

__all__ = [
    "FORMATS",
    "FormatError",
    "ItemError",
    "LabelledDataset",
    "LabelledImage",
    "LabelledObject",
    "WriteSummary",
    "read",
    "read_coco",
    "read_coco_results",
    "read_voc",
    "read_yolo",
    "write",
    "write_coco",
    "write_coco_results",
    "write_voc",
    "write_yolo",
]
