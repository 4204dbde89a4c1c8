"""A labelled shapes dataset on disk, split into train/validation/test, with a COCO export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mleval.core.errors import ValidationError
from mleval.synthetic.render import (
    DEFAULT_BACKGROUNDS,
    DEFAULT_CLASSES,
    SyntheticObject,
    check_options,
    check_size,
    render_shapes_image,
)

SPLITS: tuple[str, ...] = ("train", "validation", "test")

# format name -> (file extension, PIL format, save options); options keep files small and bytes stable
IMAGE_FORMATS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "png": ("png", "PNG", {"compress_level": 6}),
    "jpeg": ("jpg", "JPEG", {"quality": 92}),
    "bmp": ("bmp", "BMP", {}),
    "tiff": ("tif", "TIFF", {}),
    "webp": ("webp", "WEBP", {"quality": 90}),
    "gif": ("gif", "GIF", {}),
}


@dataclass(frozen=True)
class SyntheticImage:
    """One generated image file and the shapes drawn on it (pixel coordinates of the file)."""

    path: Path
    split: str
    width: int
    height: int
    objects: tuple[SyntheticObject, ...]


@dataclass(frozen=True)
class SyntheticDataset:
    """The images written by :func:`generate_shapes`, in split order, and the class names."""

    folder: Path
    classes: tuple[str, ...]
    images: tuple[SyntheticImage, ...]

    def to_coco(self, split: str | None = None) -> dict[str, Any]:
        """A COCO ground-truth dict (``images``, ``annotations``, ``categories``) for one split or all.

        Image and annotation ids count from 1 over the whole dataset, so they do not change with
        ``split``; ``file_name`` is relative to ``folder``; category ids are 1..N in ``classes`` order;
        ``bbox`` is ``[x, y, w, h]``; ``segmentation`` holds the shape's polygon.
        """
        if split is not None and split not in SPLITS:
            raise ValidationError("synthetic.split", f"split must be one of {SPLITS} or None; got {split!r}.")
        category_ids = {name: index for index, name in enumerate(self.classes, start=1)}
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        annotation_id = 0
        for image_id, image in enumerate(self.images, start=1):
            selected = split is None or image.split == split
            if selected:
                images.append(
                    {
                        "id": image_id,
                        "file_name": image.path.relative_to(self.folder).as_posix(),
                        "width": image.width,
                        "height": image.height,
                    }
                )
            for obj in image.objects:
                annotation_id += 1
                if not selected:
                    continue
                x1, y1, x2, y2 = obj.bbox_xyxy
                annotations.append(
                    {
                        "id": annotation_id,
                        "image_id": image_id,
                        "category_id": category_ids[obj.label],
                        "bbox": [x1, y1, round(x2 - x1, 3), round(y2 - y1, 3)],
                        "area": obj.area,
                        "segmentation": [list(obj.polygon)],
                        "iscrowd": 0,
                    }
                )
        categories = [{"id": i, "name": name, "supercategory": "shape"} for name, i in category_ids.items()]
        return {"images": images, "annotations": annotations, "categories": categories}


def generate_shapes(
    folder: str | Path,
    *,
    train: int = 256,
    validation: int = 64,
    test: int = 64,
    image_size: int | tuple[int, int] = 128,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    max_objects: int = 4,
    backgrounds: tuple[str, ...] = DEFAULT_BACKGROUNDS,
    object_size: tuple[float, float] = (0.2, 0.45),
    max_rotation_deg: float = 0.0,
    min_contrast: float = 90.0,
    seed: int = 0,
    image_format: str = "png",
) -> SyntheticDataset:
    """Write ``folder/{train,validation,test}/NNNNNN.<ext>`` images of shapes and return their labels.

    Each image is drawn from its own generator seeded by ``(seed, split, index)``, so one image
    does not depend on how many others are made. ``image_size`` is an int or ``(width, height)``;
    see :func:`render_shapes_image` for the drawing options. Existing files of the same names are
    overwritten.

    With the defaults a from-scratch yolo11n reaches a validation mAP50 of about 0.91 (mAP50-95
    0.73) after 30 epochs at imgsz 128; ``backgrounds`` with ``"stripes"`` and ``"noise"`` plus
    ``max_rotation_deg=20`` make it harder (about 0.83 / 0.63).
    """
    counts = {"train": train, "validation": validation, "test": test}
    for name, count in counts.items():
        if count < 0:
            raise ValidationError("synthetic.count", f"{name} must be 0 or more images; got {count}.")
    if image_format not in IMAGE_FORMATS:
        raise ValidationError(
            "synthetic.image_format", f"image_format must be one of {tuple(IMAGE_FORMATS)}; got {image_format!r}."
        )
    classes, backgrounds = tuple(classes), tuple(backgrounds)
    check_size(image_size)
    check_options(classes, max_objects, backgrounds, object_size, max_rotation_deg)
    extension, pil_format, save_options = IMAGE_FORMATS[image_format]
    root = Path(folder)
    images: list[SyntheticImage] = []
    for split_index, split in enumerate(SPLITS):
        split_folder = root / split
        split_folder.mkdir(parents=True, exist_ok=True)
        for index in range(counts[split]):
            rng = np.random.default_rng([seed, split_index, index])
            picture, objects = render_shapes_image(
                rng,
                image_size=image_size,
                classes=classes,
                max_objects=max_objects,
                backgrounds=backgrounds,
                object_size=object_size,
                max_rotation_deg=max_rotation_deg,
                min_contrast=min_contrast,
            )
            path = split_folder / f"{index:06d}.{extension}"
            picture.save(path, format=pil_format, **save_options)
            images.append(SyntheticImage(path, split, picture.width, picture.height, tuple(objects)))
    return SyntheticDataset(folder=root, classes=classes, images=tuple(images))
