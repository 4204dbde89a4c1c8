"""One Predictor protocol for every framework: a batch of RGB images in, detections out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from mleval.core.detections import Detections, ImagePrediction


@runtime_checkable
class Predictor(Protocol):
    name: str
    class_names: tuple[str, ...]

    def predict(self, images: Sequence[np.ndarray], *, conf: float = 0.25) -> list[ImagePrediction]:
        """``images``: (H, W, 3) uint8 RGB arrays. Boxes come back in each image's own pixels."""
        ...


class UltralyticsPredictor:
    """YOLO11, YOLO12, RT-DETR and YOLO11-seg through ultralytics' ``predict``."""

    def __init__(self, model, *, name: str, imgsz: int = 640, device: str = "cpu"):
        self.model = model
        self.name = name
        self.imgsz = imgsz
        self.device = device
        self.segments = getattr(model, "task", "detect") == "segment"
        self.class_names = tuple(str(model.names[i]) for i in sorted(model.names))

    def predict(self, images: Sequence[np.ndarray], *, conf: float = 0.25, iou: float = 0.7,
                max_det: int = 300) -> list[ImagePrediction]:
        if not images:
            return []
        # ultralytics reads numpy arrays as BGR (OpenCV's order).
        bgr = [np.ascontiguousarray(image[..., ::-1]) for image in images]
        results = self.model.predict(
            bgr, imgsz=self.imgsz, conf=conf, iou=iou, max_det=max_det, device=self.device, verbose=False,
            retina_masks=self.segments,
        )
        return [self._convert(result) for result in results]

    def embed(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One vector per image: the backbone's pooled features (ultralytics' ``embed``, the
        second-to-last layer), for comparing images with each other."""
        if not images:
            return []
        bgr = [np.ascontiguousarray(image[..., ::-1]) for image in images]
        vectors = self.model.embed(bgr, imgsz=self.imgsz, device=self.device, verbose=False)
        return [np.asarray(v.detach().cpu().numpy(), dtype=np.float32).reshape(-1) for v in vectors]

    def _convert(self, result) -> ImagePrediction:
        boxes = result.boxes
        classes = boxes.cls.cpu().numpy().astype(int)
        masks = None
        if self.segments and result.masks is not None:
            from mleval.core.masks import mask_to_rle

            masks = tuple(mask_to_rle(m > 0.5) for m in result.masks.data.cpu().numpy())
        elif self.segments:
            masks = ()
        detections = Detections(
            boxes.xyxy.cpu().numpy(), tuple(self.class_names[c] for c in classes), boxes.conf.cpu().numpy(), masks,
            class_ids=classes,
        )
        speed = result.speed
        return ImagePrediction(detections, speed.get("preprocess") or 0.0, speed.get("inference") or 0.0,
                               speed.get("postprocess") or 0.0)
