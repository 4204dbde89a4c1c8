"""SAM 2 as a promptable segmenter: one image embedding, then cheap masks per point or box prompt.

The embedding (the image encoder, seconds on a CPU) is computed once per image and kept in a
small LRU keyed by the image's pixels, so every further prompt on that image only runs the
prompt encoder and mask decoder. Boxes are ``[x1, y1, x2, y2]`` and points ``(x, y, label)``
in pixels of the original image; label 1 marks the object, 0 the background.
"""

from __future__ import annotations

import hashlib
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from mleval.core.detections import Detections, ImagePrediction
from mleval.core.errors import MlevalError, ValidationError

if TYPE_CHECKING:
    from mleval.models.weights import ResolvedWeights
    from mleval.models.zoo import ZooEntry

DEFAULT_CACHE_SIZE = 2  # embeddings kept: ~16 MB each, one per image being annotated
_BOX_CHUNK = 16  # boxes decoded together in predict(): bounds memory to 16 full-size masks
_HYDRA_LOCK = threading.Lock()  # Hydra's state is process-global: one build at a time

Point = tuple[float, float, int]


@dataclass(frozen=True)
class SegmentResult:
    """The best mask for one prompt: ``mask`` (H, W) bool in original-image pixels, its COCO
    RLE, its tight box ``box_xyxy`` ((0, 0, 0, 0) when empty), the model's predicted IoU
    ``score``, and the time of the prompt and of the embedding (0 when it was cached)."""

    mask: np.ndarray
    rle: dict
    box_xyxy: tuple[float, float, float, float]
    score: float
    prompt_ms: float
    embedding_ms: float

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def embedding_cached(self) -> bool:
        return self.embedding_ms == 0.0

    def to_detections(self, class_name: str = "object") -> Detections:
        """This mask as one object of mleval's detections type (no object when the mask is empty)."""
        if not self.area:
            return Detections.empty()
        return Detections([self.box_xyxy], (class_name,), [self.score], (self.rle,), polygons=(self.polygons,))

    @cached_property
    def polygons(self) -> list[list[float]]:
        """Outer contours, flat ``[x1, y1, ...]`` lists (computed on first use: it costs more
        than the prompt on a ragged mask)."""
        from mleval.core.masks import mask_to_polygons

        return mask_to_polygons(self.mask)

    def __repr__(self) -> str:
        return (f"SegmentResult(area={self.area}, box_xyxy={self.box_xyxy}, score={self.score:.3f}, "
                f"prompt_ms={self.prompt_ms:.1f}, embedding_ms={self.embedding_ms:.1f})")


def check_prompts(
    points: Sequence[Sequence[float]] | None,
    box: Sequence[float] | None,
    *,
    height: int,
    width: int,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Validate prompts against an image of ``height x width`` pixels and return
    ``(point_xy (N, 2), point_labels (N,), box (4,))`` arrays (None where absent).

    A point is ``(x, y, label)`` with label 1 (object) or 0 (background); ``(x, y)`` means 1.
    """
    has_points = points is not None and len(points) > 0
    if not has_points and box is None:
        raise ValidationError(
            "sam2.prompt_required",
            "SAM 2 needs a prompt: pass points=[(x, y, 1)] (1 = object, 0 = background) and/or "
            "box=[x1, y1, x2, y2], in pixels of the image.",
        )
    point_xy = point_labels = box_xyxy = None
    if has_points:
        xy, labels = [], []
        for i, point in enumerate(points):
            values = list(point) if isinstance(point, (list, tuple, np.ndarray)) else []
            try:
                x, y = float(values[0]), float(values[1])
            except (IndexError, TypeError, ValueError):
                x = y = float("nan")
            if len(values) not in (2, 3) or not np.isfinite([x, y]).all():
                raise ValidationError("sam2.point_format",
                                      f"point {i} is {point!r}; give (x, y, label) or (x, y) in pixels.")
            label = values[2] if len(values) == 3 else 1
            if label not in (0, 1):
                raise ValidationError("sam2.point_label",
                                      f"point {i} has label {label!r}; use 1 for the object, 0 for background.")
            if not (0 <= x <= width and 0 <= y <= height):
                raise ValidationError(
                    "sam2.point_inside_image",
                    f"point {i} (x={x:g}, y={y:g}) lies outside the image of width {width} and height {height}; "
                    f"give pixel coordinates with 0 <= x <= {width} and 0 <= y <= {height}.",
                )
            xy.append((x, y))
            labels.append(int(label))
        point_xy, point_labels = np.asarray(xy, dtype=np.float32), np.asarray(labels, dtype=np.int32)
    if box is not None:
        box_xyxy = check_box(box, height=height, width=width)
    return point_xy, point_labels, box_xyxy


def check_box(box: Sequence[float], *, height: int, width: int, index: int | None = None) -> np.ndarray:
    """A box prompt ``[x1, y1, x2, y2]`` checked to lie inside the image, as a (4,) array."""
    which = "box" if index is None else f"box {index}"
    try:
        values = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        values = np.zeros(0)
    if values.shape != (4,) or not np.isfinite(values).all():
        shown = np.asarray(box).tolist() if isinstance(box, (list, tuple, np.ndarray)) else box
        raise ValidationError("sam2.box_format", f"{which} is {shown!r}; give [x1, y1, x2, y2] in pixels.")
    x1, y1, x2, y2 = values.tolist()
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise ValidationError(
            "sam2.box_inside_image",
            f"{which} [{x1:g}, {y1:g}, {x2:g}, {y2:g}] is not inside the image of width {width} and height "
            f"{height}; give 0 <= x1 < x2 <= {width} and 0 <= y1 < y2 <= {height}.",
        )
    return values.astype(np.float32)


@dataclass(frozen=True)
class _Embedding:
    predictor: Any  # a SAM2ImagePredictor with this image set
    size: tuple[int, int]  # (height, width)


def image_key(rgb: np.ndarray) -> str:
    """A digest of an image's pixels: the embedding cache's key (about 1 ms for 640x480)."""
    digest = hashlib.blake2b(np.ascontiguousarray(rgb).data, digest_size=16)
    digest.update(repr(rgb.shape).encode())
    return digest.hexdigest()


class Sam2Predictor:
    """SAM 2 behind mleval's Predictor protocol, plus ``set_image`` / ``segment`` for prompts.

    Thread-safe: one lock serializes embedding and decoding (they share the model).
    """

    class_names: tuple[str, ...] = ()

    def __init__(self, model: Any, *, name: str, device: str = "cpu", cache_size: int = DEFAULT_CACHE_SIZE):
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        if cache_size < 1:
            raise ValidationError("sam2.cache_size", f"cache_size must be >= 1, got {cache_size}.")
        self.model = model
        self.name = name
        self.device = device
        # One SAM2ImagePredictor per cache slot, each holding one image's embedding; built once
        # (their transforms are TorchScript-compiled) and reused as slots are recycled.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning)
            self._free = [SAM2ImagePredictor(model) for _ in range(cache_size)]
        self._cached: OrderedDict[str, _Embedding] = OrderedDict()
        self._lock = threading.RLock()

    # -- embeddings -------------------------------------------------------------------------

    def is_cached(self, key: str) -> bool:
        with self._lock:
            return key in self._cached

    def set_image(self, rgb: np.ndarray, *, key: str | None = None) -> float:
        """Compute and cache the embedding of ``rgb`` ((H, W, 3) uint8 RGB) under ``key``
        (default: a digest of the pixels). Returns the embedding time in ms, 0.0 when cached."""
        rgb = _check_rgb(rgb)
        key = key or image_key(rgb)
        with self._lock:
            if key in self._cached:
                self._cached.move_to_end(key)
                return 0.0
            slot = self._free.pop() if self._free else self._cached.popitem(last=False)[1].predictor
            start = time.perf_counter()
            try:
                # torchvision warns on read-only arrays (decoded images are); a copy is ~1 ms
                slot.set_image(rgb if rgb.flags.writeable else rgb.copy())
            except BaseException:
                slot.reset_predictor()
                self._free.append(slot)
                raise
            self._cached[key] = _Embedding(slot, rgb.shape[:2])
            return (time.perf_counter() - start) * 1000.0

    def _size(self, image: np.ndarray | str) -> tuple[int, int]:
        """(height, width) of an image array, or of the image cached under a key."""
        if not isinstance(image, str):
            return _check_rgb(image).shape[:2]
        if image not in self._cached:
            raise MlevalError(f"no embedding cached under key {image!r}; pass the image array instead "
                              "(or call set_image(rgb, key=...) first).")
        return self._cached[image].size

    def _embedded(self, image: np.ndarray | str, key: str | None) -> tuple[Any, float]:
        """The SAM2ImagePredictor holding ``image``'s embedding, and the ms spent computing it."""
        if isinstance(image, str):
            self._size(image)  # raises for an unknown key
            self._cached.move_to_end(image)
            return self._cached[image].predictor, 0.0
        key = key or image_key(image)
        embedding_ms = self.set_image(image, key=key)
        return self._cached[key].predictor, embedding_ms

    # -- prompts ----------------------------------------------------------------------------

    def segment(
        self,
        image: np.ndarray | str,
        *,
        points: Sequence[Sequence[float]] | None = None,
        box: Sequence[float] | None = None,
        multimask: bool = False,
        key: str | None = None,
    ) -> SegmentResult:
        """The best mask for ``points`` [(x, y, label), ...] and/or ``box`` [x1, y1, x2, y2].

        ``image`` is an (H, W, 3) uint8 RGB array, or the key of an embedding already cached.
        ``multimask=True`` asks for three candidate masks and keeps the highest-scoring one
        (better for a single ambiguous click).
        """
        with self._lock:
            height, width = self._size(image)
            point_xy, point_labels, box_xyxy = check_prompts(points, box, height=height, width=width)
            slot, embedding_ms = self._embedded(image, key)
            start = time.perf_counter()
            masks, scores, _ = slot.predict(point_coords=point_xy, point_labels=point_labels, box=box_xyxy,
                                            multimask_output=multimask)
            best = int(np.argmax(scores))
            mask = masks[best] > 0.5
            prompt_ms = (time.perf_counter() - start) * 1000.0
        return _result(mask, float(scores[best]), prompt_ms, embedding_ms)

    def predict(
        self,
        images: Sequence[np.ndarray],
        *,
        conf: float = 0.25,
        boxes: Sequence[Sequence[Sequence[float]] | np.ndarray] | None = None,
        labels: Sequence[Sequence[str]] | None = None,
    ) -> list[ImagePrediction]:
        """One mask per prompt box: ``boxes[i]`` (N_i, 4) xyxy prompts for ``images[i]``, named
        ``labels[i]`` (default "object"). Detection ``j`` of image ``i`` answers ``boxes[i][j]``:
        its box is the mask's, its score the predicted IoU. ``conf`` drops nothing, so results
        stay aligned with the prompts (filter on ``scores`` afterwards if needed)."""
        if boxes is None:
            raise ValidationError(
                "sam2.prompts_required",
                f"{self.name} is a promptable segmenter: SAM 2 needs point or box prompts and cannot find "
                "objects on its own (ws.predict / ws.infer). Pass boxes=[boxes_xyxy per image] to "
                "predict(), or use ws.assist(image, points=[(x, y, 1)], box=[x1, y1, x2, y2]).",
            )
        if len(boxes) != len(images) or (labels is not None and len(labels) != len(images)):
            raise ValidationError(
                "sam2.prompts_per_image",
                f"got {len(images)} images, {len(boxes)} box lists and "
                f"{'no' if labels is None else len(labels)} label lists; give one list per image.",
            )
        return [self._predict_one(image, image_boxes, None if labels is None else labels[i])
                for i, (image, image_boxes) in enumerate(zip(images, boxes))]

    def _predict_one(self, image: np.ndarray, boxes: Any, labels: Sequence[str] | None) -> ImagePrediction:
        from mleval.core.masks import mask_to_rle, rle_bbox_xyxy

        prompts = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
        names = ("object",) * len(prompts) if labels is None else tuple(labels)
        if len(names) != len(prompts):
            raise ValidationError("sam2.prompts_per_image",
                                  f"{len(prompts)} boxes but {len(names)} labels for one image.")
        with self._lock:
            height, width = self._size(image)
            checked = [check_box(b, height=height, width=width, index=j) for j, b in enumerate(prompts)]
            slot, embedding_ms = self._embedded(image, None)
            start = time.perf_counter()
            masks, scores = [], []
            for first in range(0, len(checked), _BOX_CHUNK):
                chunk = np.stack(checked[first:first + _BOX_CHUNK])
                chunk_masks, chunk_scores, _ = slot.predict(box=chunk, multimask_output=False)
                # one box gives (1, H, W) and (1,); several give (N, 1, H, W) and (N, 1)
                masks.extend(chunk_masks.reshape(len(chunk), *chunk_masks.shape[-2:]) > 0.5)
                scores.extend(np.asarray(chunk_scores).reshape(len(chunk)).tolist())
            prompt_ms = (time.perf_counter() - start) * 1000.0
        start = time.perf_counter()
        rles = tuple(mask_to_rle(m) for m in masks)
        xyxy = np.asarray([rle_bbox_xyxy(r) for r in rles], dtype=np.float64).reshape(-1, 4)
        encode_ms = (time.perf_counter() - start) * 1000.0
        return ImagePrediction(
            Detections(xyxy, names, np.asarray(scores), rles), 0.0, embedding_ms + prompt_ms, encode_ms,
            {"embedding_ms": embedding_ms, "prompt_ms": prompt_ms},
        )

    def __repr__(self) -> str:
        return f"Sam2Predictor({self.name!r}, device={self.device!r}, cached_images={len(self._cached)})"


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape[:2]:
        raise ValidationError("sam2.image_format",
                              f"expected an (H, W, 3) uint8 RGB array, got shape {array.shape} of {array.dtype}.")
    return array


def _result(mask: np.ndarray, score: float, prompt_ms: float, embedding_ms: float) -> SegmentResult:
    from mleval.core.masks import mask_to_rle, rle_bbox_xyxy

    rle = mask_to_rle(mask)
    return SegmentResult(mask, rle, rle_bbox_xyxy(rle), score, prompt_ms, embedding_ms)


# -- building --------------------------------------------------------------------------------

@contextmanager
def sam2_hydra(config: str) -> Iterator[None]:
    """Hydra's process-global state set up so that sam2 finds ``config`` while inside.

    ``import sam2`` points Hydra at sam2's configs, but only when nothing else did first; if
    another Hydra application holds the state (or it was cleared) it is lent to sam2 for
    the build and given back afterwards.
    """
    import sam2  # noqa: F401  (initializes Hydra on sam2's configs when nothing else has)
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    with _HYDRA_LOCK:
        if _finds(GlobalHydra.instance(), config):
            yield
            return
        saved = GlobalHydra.instance().hydra
        GlobalHydra.instance().clear()
        try:
            with initialize_config_module("sam2", version_base="1.2"):
                yield
        finally:
            GlobalHydra.instance().hydra = saved


def _finds(global_hydra: Any, config: str) -> bool:
    if not global_hydra.is_initialized():
        return False
    repository = getattr(global_hydra.config_loader(), "repository", None)
    return repository is not None and repository.config_exists(config)


def build_sam2_predictor(entry: ZooEntry, weights: ResolvedWeights, *, name: str, device: str = "cpu",
                         cache_size: int = DEFAULT_CACHE_SIZE) -> Sam2Predictor:
    """A :class:`Sam2Predictor` for a SAM 2 zoo entry: its architecture from ``entry.config``,
    with the checkpoint at ``weights.location`` or, for ``source == "architecture"``, random
    weights (seeded, so that every build of a variant gives the same model)."""
    import torch
    from sam2.build_sam import build_sam2

    checkpoint = None if weights.source == "architecture" else weights.location
    with sam2_hydra(entry.config), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            model = build_sam2(entry.config, ckpt_path=checkpoint, device=device)
        except (RuntimeError, KeyError) as error:
            if checkpoint is None:
                raise
            raise MlevalError(
                f"{checkpoint} does not load into {entry.name} ({entry.config}): {error!r}. Give a SAM 2 "
                f"checkpoint of this variant (a dict with a 'model' state dict, like {entry.weights})."
            ) from error
    return Sam2Predictor(model, name=name, device=device, cache_size=cache_size)
