"""Instance segmenters (YOLO ``-seg``) are served by the detector application: the same
routes, with ``masks_rle`` (COCO RLE, one per box) in each prediction. This module keeps the
import path ``mleval_serve.segmenter:app_builder`` for configs that name it."""

from .detector import app_builder, build_app

__all__ = ["app_builder", "build_app"]
