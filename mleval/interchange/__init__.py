"""Datasets in and out of a workspace: COCO / YOLO / Pascal VOC <-> images and ground truth.

``import_dataset`` reads a dataset with :func:`mleval.formats.read`, uploads its images into
their splits and into a named dataset, and stores each image's objects as one user
annotation, all in one Arrow batch. ``export_dataset`` builds a ``LabelledDataset`` from the
catalog's ground truth and writes it with :func:`mleval.formats.write`; image files are
copied (or, with ``link_images=True``, hard-linked) straight from the blob store.

Re-importing: an image already in the workspace (same bytes) keeps its split, joins the
dataset, and gets the file's objects only if it holds no ground-truth annotation with the
import's ``user_tag`` yet. Importing the same files twice therefore stores their annotations
once; to replace them, delete the old annotations or import under another ``user_tag``.

Class ids on export are the order in which labels first appear in the workspace's ground
truth: by annotation ``created_at``, then by the class order of the file the annotation was
imported from, then by name. Every export of a workspace numbers classes the same way, and
a dataset imported into an empty workspace keeps its class ids.
"""

from mleval.interchange.exporting import ExportReport, export_dataset
from mleval.interchange.importing import ImportReport, import_dataset

__all__ = ["ExportReport", "ImportReport", "export_dataset", "import_dataset"]
