"""Pascal VOC: ``Annotations/*.xml`` + ``JPEGImages/`` + ``ImageSets/Main/{train,val,test}.txt``,
optionally ``SegmentationObject/*.png`` masks and a CVAT-style ``labelmap.txt`` class list.

Pixel convention: VOC numbers pixels from 1 and its boxes are inclusive (``xmin=1, xmax=W``
spans the whole width). mleval boxes are 0-based pixel edges, so reading maps
``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` (as detectron2 does) and writing maps
back exactly: ``xmin = x1 + 1, ymin = y1 + 1, xmax = x2, ymax = y2``. Integral values are
written as integers, others as the shortest exact decimal.

Masks: in ``SegmentationObject/<id>.png`` pixel value ``k`` belongs to the k-th ``<object>``
of the XML (1-based), 0 is background and 255 VOC's "void" border, which belongs to no object.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from mleval.core import masks
from mleval.core.errors import ValidationError
from mleval.formats import _files
from mleval.formats._files import FormatError, Node
from mleval.formats.records import ItemError, LabelledDataset, LabelledImage, LabelledObject, WriteSummary

__all__ = ["read_voc", "write_voc"]

_SPLIT_FILE = {"train": "train", "validation": "val", "test": "test"}
_FLAGS = ("truncated", "difficult", "occluded")
_VOID = 255


def read_voc(path: str | Path) -> LabelledDataset:
    """Read a VOC folder (or ``.zip``, or a VOCdevkit holding one VOC20xx folder).

    Categories: ``labelmap.txt`` order when present, then other names found, sorted.
    Splits come from ``ImageSets/Main/{train,val,test}.txt``; unlisted images get None.
    ``pose``/``truncated``/``difficult``/``occluded`` are kept in ``LabelledObject.attributes``.
    """
    root = _files.open_root(path)
    has_annotations = lambda n: _files.child(n, "Annotations").is_dir()  # noqa: E731
    root = _files.single_subfolder(root, has_annotations)
    if not has_annotations(root):
        raise FormatError(
            "voc.layout",
            f"{path}: no Annotations/ folder; pass the VOC folder that holds Annotations/ and JPEGImages/.",
        )
    dataset = LabelledDataset(categories=[])
    ordered = _labelmap(root)
    splits = _image_sets(root, dataset.errors)
    found: set[str] = set()
    xml_ids = set()
    annotations = _files.child(root, "Annotations")
    for xml_node in _files.walk_files(annotations):
        if xml_node.suffix.lower() != ".xml":
            continue
        voc_id = _files.relative(xml_node, annotations)[: -len(".xml")]
        xml_ids.add(voc_id)
        image = _read_annotation(root, xml_node, voc_id, splits.get(voc_id), dataset.errors)
        if image is not None:
            dataset.images.append(image)
            found.update(obj.label for obj in image.objects)
    for voc_id, split in splits.items():
        if voc_id not in xml_ids:
            dataset.errors.append(
                ItemError(
                    f"ImageSets/Main/{_SPLIT_FILE[split]}.txt: {voc_id}", f"no Annotations/{voc_id}.xml; not read"
                )
            )
    dataset.categories.extend(ordered + sorted(found - set(ordered)))
    return dataset


def _labelmap(root: Node) -> list[str]:
    node = _files.child(root, "labelmap.txt")
    if not node.is_file():
        return []
    names = []
    for line in node.read_bytes().decode("utf-8-sig").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name = line.rsplit(":", 3)[0] if line.count(":") >= 3 else line
            if name and name != "background" and name not in names:
                names.append(name)
    return names


def _image_sets(root: Node, errors: list[ItemError]) -> dict[str, str]:
    splits: dict[str, str] = {}
    for split, stem in _SPLIT_FILE.items():
        node = _files.child(root, f"ImageSets/Main/{stem}.txt")
        if not node.is_file():
            continue
        for lineno, line in enumerate(node.read_bytes().decode("utf-8-sig").splitlines(), 1):
            voc_id = line.split()[0] if line.split() else ""
            if not voc_id:
                continue
            if voc_id in splits and splits[voc_id] != split:
                errors.append(
                    ItemError(
                        f"ImageSets/Main/{stem}.txt:{lineno}",
                        f"{voc_id} is already in split {splits[voc_id]!r}; kept that",
                    )
                )
                continue
            splits[voc_id] = split
    return splits


def _read_annotation(
    root: Node, xml_node: Node, voc_id: str, split: str | None, errors: list[ItemError]
) -> LabelledImage | None:
    item = f"Annotations/{voc_id}.xml"
    try:
        doc = ET.fromstring(xml_node.read_bytes())
    except ET.ParseError as exc:
        errors.append(ItemError(item, f"not valid XML ({exc}); image left out"))
        return None
    except (ValueError, LookupError) as exc:  # expat cannot read the encoding named in <?xml ... encoding=?>
        errors.append(
            ItemError(item, f"not readable XML (line 1: the declared encoding is not supported: {exc}); "
                            "save it as UTF-8; image left out")
        )
        return None
    folder = voc_id.rpartition("/")[0]
    base_name = (doc.findtext("filename") or "").strip() or f"{voc_id.rpartition('/')[2]}.jpg"
    file_name = f"{folder}/{base_name}" if folder else base_name
    try:  # a <filename> that is absolute or climbs out with '..' would read a file outside the dataset
        image_node = _files.child(root, f"JPEGImages/{_files.safe_relative(file_name)}")
    except ValidationError as exc:
        errors.append(ItemError(item, f"{exc.detail} The image is left out."))
        return None
    if not _files.is_file(image_node):
        errors.append(ItemError(item, f"image JPEGImages/{file_name} not found; left out"))
        return None
    try:
        width = _whole(doc.findtext("size/width") or "0", "width")
        height = _whole(doc.findtext("size/height") or "0", "height")
        if width <= 0 or height <= 0:
            width, height = _files.image_size(image_node)  # size missing or 0 in the XML
        image = LabelledImage(
            file_name, width, height, split, [], _files.local_path(image_node), _files.opener(image_node)
        )
    except (ValueError, OSError, ValidationError) as exc:
        errors.append(ItemError(item, f"no usable size ({exc}); left out"))
        return None
    object_masks = _object_masks(root, voc_id, width, height, item, errors)
    for k, obj in enumerate(doc.findall("object"), 1):
        name = (obj.findtext("name") or "").strip()
        try:
            coords = [obj.findtext(f"bndbox/{tag}") for tag in ("xmin", "ymin", "xmax", "ymax")]
            if any(c is None for c in coords):
                raise ValueError("bndbox needs xmin, ymin, xmax and ymax")
            xmin, ymin, xmax, ymax = (float(c) for c in coords)  # type: ignore[arg-type]
            attributes: dict[str, Any] = {}
            if obj.findtext("pose") is not None:
                attributes["pose"] = obj.findtext("pose").strip()  # type: ignore[union-attr]
            for flag in _FLAGS:
                if obj.findtext(flag) is not None:
                    attributes[flag] = _whole(obj.findtext(flag), flag)  # type: ignore[arg-type]
            rle = object_masks.get(k)
            image.objects.append(LabelledObject(name, (xmin - 1, ymin - 1, xmax, ymax), rle=rle, attributes=attributes))
        except (ValueError, ValidationError) as exc:
            errors.append(ItemError(f"{item}: object {k} ({name or 'no name'})", str(exc)))
    return image


def _whole(text: str, tag: str) -> int:
    """``<tag>``'s text as an int (``"3"``, ``"3.0"``); ValueError naming the tag otherwise (also for inf and nan)."""
    try:
        return int(float(text))
    except (ValueError, OverflowError):
        raise ValueError(f"<{tag}> must be a whole number, got {text.strip()[:40]!r}") from None


def _object_masks(
    root: Node, voc_id: str, width: int, height: int, item: str, errors: list[ItemError]
) -> dict[int, dict]:
    """Object index (1-based) -> RLE from ``SegmentationObject/<id>.png``, when that file exists."""
    node = _files.child(root, f"SegmentationObject/{voc_id}.png")
    if not node.is_file():
        return {}
    import numpy as np
    from PIL import Image

    try:
        with Image.open(io.BytesIO(node.read_bytes())) as im:
            if im.mode not in ("P", "L"):
                raise ValueError(f"mode {im.mode}: needs a palette or greyscale PNG of object indices")
            indices = np.asarray(im)
    except (OSError, ValueError) as exc:
        errors.append(ItemError(f"SegmentationObject/{voc_id}.png", f"masks not read ({exc})"))
        return {}
    if indices.shape != (height, width):
        errors.append(
            ItemError(
                f"SegmentationObject/{voc_id}.png",
                f"size {indices.shape[::-1]} differs from {item}'s {width}x{height}; masks not read",
            )
        )
        return {}
    return {int(k): masks.mask_to_rle(indices == k) for k in np.unique(indices) if 0 < k < _VOID}


def write_voc(dataset: LabelledDataset, folder: str | Path, *, link_images: bool = False,
              on_image: Callable[[int], None] | None = None) -> WriteSummary:
    """Write VOC to a new (or empty) folder or a ``.zip``; see the module docstring for the layout.

    An image ``a/b.jpg`` gets id ``a/b``: ``Annotations/a/b.xml``, ``JPEGImages/a/b.jpg``. Crowd
    regions are written with ``difficult=1``; scores are not written (VOC has no field for them).
    Masks go to ``SegmentationObject`` and ``SegmentationClass`` PNGs (index = 1-based object /
    class number), up to 254 per image.
    """
    dataset.check_labels()
    class_index = {name: i + 1 for i, name in enumerate(dataset.categories)}
    summary = WriteSummary(path=Path(folder), images=0, objects=0)
    main: dict[str, list[str]] = {}
    segmentation: dict[str, list[str]] = {}
    ids: set[str] = set()
    with _files.Output(folder, on_image=on_image) as out:
        for image in dataset.images:
            try:
                name = _files.safe_relative(image.file_name)
            except ValidationError as exc:
                summary.issues.append(ItemError(image.file_name, f"{exc}; not written"))
                continue
            base_name = name.rpartition("/")[2]
            voc_id = name.rpartition(".")[0] if "." in base_name else name
            if voc_id in ids:
                summary.issues.append(
                    ItemError(image.file_name, f"VOC id {voc_id!r} is already used by another image; not written")
                )
                continue
            ids.add(voc_id)
            has_masks = any(obj.has_mask for obj in image.objects)
            out.write_text(f"Annotations/{voc_id}.xml", _xml(image, base_name, Path(folder).stem, has_masks, summary))
            if has_masks:
                _write_masks(out, image, voc_id, class_index, summary)
            reason = out.put_image(f"JPEGImages/{name}", image, link=link_images)
            if reason:
                summary.issues.append(ItemError(image.file_name, reason))
            summary.images += 1
            if image.split:
                main.setdefault(_SPLIT_FILE[image.split], []).append(voc_id)
                if has_masks:
                    segmentation.setdefault(_SPLIT_FILE[image.split], []).append(voc_id)
        if "train" in main or "val" in main:
            main["trainval"] = main.get("train", []) + main.get("val", [])
        for sets, folder_name in ((main, "Main"), (segmentation, "Segmentation")):
            for stem, members in sets.items():
                out.write_text(f"ImageSets/{folder_name}/{stem}.txt", "".join(f"{m}\n" for m in members))
        out.write_text("labelmap.txt", _labelmap_text(dataset.categories))
    if any(obj.score is not None for image in dataset.images for obj in image.objects):
        summary.issues.append(ItemError("(dataset)", "scores were not written: VOC annotations have no score field"))
    return summary


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _xml(image: LabelledImage, file_name: str, folder: str, has_masks: bool, summary: WriteSummary) -> str:
    parts = [
        "<annotation>",
        f"\t<folder>{escape(folder)}</folder>",
        f"\t<filename>{escape(file_name)}</filename>",
        "\t<source>\n\t\t<database>mleval</database>\n\t</source>",
        f"\t<size>\n\t\t<width>{image.width}</width>\n\t\t<height>{image.height}</height>\n\t\t<depth>3</depth>\n\t</size>",
        f"\t<segmented>{int(has_masks)}</segmented>",
    ]
    for obj in image.objects:
        x1, y1, x2, y2 = obj.bbox_xyxy
        attrs = obj.attributes
        difficult = int(attrs.get("difficult", 0))
        if obj.iscrowd and not difficult:
            difficult = 1
            summary.issues.append(ItemError(f"{image.file_name}: {obj.label}", "crowd region written as difficult=1"))
        flags = "".join(
            f"\n\t\t<{flag}>{value}</{flag}>"
            for flag, value in (("truncated", int(attrs.get("truncated", 0))), ("difficult", difficult))
        ) + (f"\n\t\t<occluded>{int(attrs['occluded'])}</occluded>" if "occluded" in attrs else "")
        pose = escape(str(attrs.get("pose", "Unspecified")))
        parts.append(
            f"\t<object>\n\t\t<name>{escape(obj.label)}</name>\n\t\t<pose>{pose}</pose>"
            f"{flags}\n\t\t<bndbox>\n\t\t\t<xmin>{_num(x1 + 1)}</xmin>\n\t\t\t<ymin>{_num(y1 + 1)}</ymin>"
            f"\n\t\t\t<xmax>{_num(x2)}</xmax>\n\t\t\t<ymax>{_num(y2)}</ymax>\n\t\t</bndbox>\n\t</object>"
        )
        summary.objects += 1
    parts.append("</annotation>\n")
    return "\n".join(parts)


def _write_masks(
    out: _files.Output, image: LabelledImage, voc_id: str, class_index: dict[str, int], summary: WriteSummary
) -> None:
    import numpy as np

    objects = np.zeros((image.height, image.width), dtype=np.uint8)
    classes = np.zeros_like(objects)
    for k, obj in enumerate(image.objects, 1):
        if not obj.has_mask:
            continue
        item = f"{image.file_name}: object {k} ({obj.label})"
        if k >= _VOID or class_index[obj.label] >= _VOID:
            summary.issues.append(
                ItemError(item, "VOC mask PNGs hold at most 254 objects and classes; mask not written")
            )
            continue
        rle = (
            obj.rle
            if obj.rle is not None
            else masks.polygons_to_rle(obj.polygons or [], height=image.height, width=image.width)
        )
        mask = masks.rle_to_mask(rle).astype(bool)
        if (objects[mask] != 0).any():
            summary.issues.append(ItemError(item, "mask overlaps an earlier object's; the PNG keeps the later one"))
        objects[mask] = k
        classes[mask] = class_index[obj.label]
    out.write_bytes(f"SegmentationObject/{voc_id}.png", _palette_png(objects), compress=False)
    out.write_bytes(f"SegmentationClass/{voc_id}.png", _palette_png(classes), compress=False)


def _palette_png(indices: Any) -> bytes:
    from PIL import Image

    height, width = indices.shape
    im = Image.frombytes("P", (width, height), indices.tobytes())
    im.putpalette([c for i in range(256) for c in _voc_color(i)])
    buffer = io.BytesIO()
    im.save(buffer, format="PNG")
    return buffer.getvalue()


def _voc_color(index: int) -> tuple[int, int, int]:
    """Colour ``index`` of the VOC colour map (1 -> (128, 0, 0), ...)."""
    r = g = b = 0
    c = index
    for shift in range(7, -1, -1):
        r |= ((c >> 0) & 1) << shift
        g |= ((c >> 1) & 1) << shift
        b |= ((c >> 2) & 1) << shift
        c >>= 3
    return r, g, b


def _labelmap_text(categories: list[str]) -> str:
    lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
    lines += [f"{name}:{','.join(map(str, _voc_color(i + 1)))}::" for i, name in enumerate(categories)]
    return "\n".join(lines) + "\n"
