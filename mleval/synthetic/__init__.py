"""Labelled synthetic images for tests, benchmarks and the demo.

- :func:`generate_shapes` writes a train/validation/test dataset of coloured shapes on textured
  backgrounds and returns its labels (:class:`SyntheticDataset`, with a COCO export).
- :func:`render_shapes_image` draws one such image in memory.
- :func:`generate_image_files` writes files of mixed formats, sizes and pixel modes.
"""

from mleval.synthetic.dataset import IMAGE_FORMATS, SPLITS, SyntheticDataset, SyntheticImage, generate_shapes
from mleval.synthetic.files import IMAGE_FILE_MODES, generate_image_files
from mleval.synthetic.render import BACKGROUNDS, SHAPES, SyntheticObject, render_shapes_image

__all__ = [
    "BACKGROUNDS",
    "IMAGE_FILE_MODES",
    "IMAGE_FORMATS",
    "SHAPES",
    "SPLITS",
    "SyntheticDataset",
    "SyntheticImage",
    "SyntheticObject",
    "generate_image_files",
    "generate_shapes",
    "render_shapes_image",
]
