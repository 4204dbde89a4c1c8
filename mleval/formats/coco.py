"""COCO instances JSON: read and write ground truth (results lists: ``coco_results.py``).
(Over 400 lines: the reader's checks of a foreign file, each with its own message, and the writer.)

Layouts read by :func:`read_coco`:

- one ``.json`` file; image files are looked up beside it, in ``images/``, or in ``image_root``;
- a folder or ``.zip`` holding ``annotations/*.json`` (or ``*.json`` at its root, or one
  level down as in ``train/_annotations.coco.json``), images in ``images/<split>/``,
  ``images/``, ``<split-token>/`` (``train2017``) or beside the JSON.

A file's split is, first found: the ``split`` argument, the image's ``"split"`` key (written
by :func:`write_coco` in single-file mode; not standard COCO), a ``train``/``val``/``test``
token in the JSON's name or folder (``instances_val2017.json`` -> validation), else None.

Ids: :func:`write_coco` numbers categories ``1..N`` in ``dataset.categories`` order and
images ``1..M`` in ``dataset.images`` order, so a results list written by
``coco_results.write_coco_results`` with the same dataset as ``reference`` matches the export.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mleval.core import masks
from mleval.core.errors import ValidationError
from mleval.formats import _files
from mleval.formats._files import FormatError, Node
from mleval.formats.records import (
    ItemError,
    LabelledDataset,
    LabelledImage,
    LabelledObject,
    WriteSummary,
    normalize_split,
)

__all__ = ["read_coco", "write_coco"]

_SPLIT_DIR = {"train": "train", "validation": "val", "test": "test"}


def read_coco(
    path: str | Path, *, split: str | None = None, image_root: str | Path | None = None, check_images: bool = True
) -> LabelledDataset:
    """Read COCO instances (boxes, polygons, RLE, iscrowd, optional ``score``) into a LabelledDataset.

    With ``check_images`` (default), an image whose file is missing becomes an ItemError and is
    left out with its annotations; with ``check_images=False`` files are not looked at and
    ``source_path`` is where the file is expected. Broken entries become ItemErrors; a file that
    is not COCO JSON at all raises FormatError.
    """
    root = _files.open_root(path)
    if not root.is_file():
        root = _files.single_subfolder(root, _has_json)
    json_nodes = _annotation_files(root)
    categories: list[str] = []
    dataset = LabelledDataset(categories=categories)
    base = root.parent if root.is_file() else root
    for node in json_nodes:
        rel = _files.relative(node, base)
        doc = _load_json(node, rel)
        if isinstance(doc, list):
            raise FormatError(
                "coco.instances_file",
                f"{path}: {rel} is a JSON list, i.e. a COCO results file; read it with "
                "read_coco_results(results_path, annotations=<instances json>).",
            )
        if not isinstance(doc, dict):
            raise FormatError(
                "coco.instances_file",
                f"{path}: {rel} holds a JSON {type(doc).__name__}, not an object with 'images', 'annotations' "
                "and 'categories'; is this a COCO instances file?",
            )
        names = _read_categories(doc, rel, categories, dataset.errors)
        file_split = normalize_split(split) if split is not None else _split_from_name(node, nested=str(node.parent) != str(base))
        folder = _image_folder(root, node, doc, file_split, image_root)
        _read_instances(doc, rel, names, folder, base, file_split, split is not None, check_images, dataset)
    return dataset


def _has_json(folder: Node) -> bool:
    """JSON at the folder's top, in annotations/, or one level down (``train/_annotations.coco.json``)."""
    subfolders = [c for c in folder.iterdir() if c.is_dir()]
    return any(c.suffix.lower() == ".json" for f in [folder, *subfolders] for c in f.iterdir() if c.is_file())


def _annotation_files(root: Node) -> list[Node]:
    if root.is_file():
        return [root]
    for folder in (_files.child(root, "annotations"), root):
        if folder.is_dir():
            found = sorted(
                (c for c in folder.iterdir() if c.is_file() and c.suffix.lower() == ".json"), key=lambda n: n.name
            )
            if found:
                return found
    nested = sorted(
        (f for d in root.iterdir() if d.is_dir() for f in d.iterdir() if f.is_file() and f.suffix.lower() == ".json"),
        key=lambda n: str(n),
    )
    if nested:
        return nested
    raise FormatError(
        "coco.instances_file",
        f"{root}: no COCO JSON found (looked for annotations/*.json, *.json, */*.json); pass the JSON file.",
    )


def _load_json(node: Node, rel: str) -> Any:
    try:
        data = node.read_bytes()
    except OSError as exc:
        raise FormatError("coco.json_valid", f"{rel}: cannot be read ({exc}).") from None
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise FormatError(
            "coco.json_valid",
            f"{rel}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); fix or re-export it.",
        ) from None
    except UnicodeDecodeError as exc:
        raise FormatError(
            "coco.json_valid", f"{_files.undecodable(rel, exc)}; save it as UTF-8 or re-export it."
        ) from None


_SPLIT_TOKEN = re.compile(r"^(train|val|valid|validation|test)\d*$")


def _split_from_name(node: Node, *, nested: bool) -> str | None:
    """``instances_val2017.json`` -> validation; ``train/_annotations.coco.json`` -> train (``nested``)."""
    texts = [node.name.rsplit(".", 1)[0]] + ([node.parent.name] if nested else [])
    for text in texts:
        for token in re.split(r"[^a-z0-9]+", text.lower()):
            match = _SPLIT_TOKEN.match(token)
            if match:
                return normalize_split(match.group(1))
    return None


def _read_categories(doc: dict, rel: str, categories: list[str], errors: list[ItemError]) -> dict[Any, str]:
    """COCO category id -> name; new names are appended to ``categories`` in ascending id order."""
    entries = doc.get("categories") or []
    valid: list[tuple[Any, str]] = []
    for i, cat in enumerate(entries if isinstance(entries, list) else []):
        name = cat.get("name") if isinstance(cat, dict) else None
        if not isinstance(name, str) or not name.strip() or "id" not in cat or not _is_id(cat["id"]):
            errors.append(
                ItemError(f"{rel}: categories[{i}]", f"needs an 'id' (a number) and a non-empty 'name', got {cat!r}")
            )
            continue
        valid.append((cat["id"], name))
    if all(isinstance(cid, int) for cid, _ in valid):
        valid.sort(key=lambda pair: pair[0])
    names: dict[Any, str] = {}
    for cid, name in valid:
        if cid in names:
            errors.append(
                ItemError(f"{rel}: category id {cid}", f"appears twice ({names[cid]!r}, {name!r}); kept {names[cid]!r}")
            )
            continue
        if name in names.values():
            errors.append(ItemError(f"{rel}: category id {cid}", f"name {name!r} is used by another id too; merged"))
        names[cid] = name
        if name not in categories:
            categories.append(name)
    return names


def _image_folder(root: Node, node: Node, doc: dict, split: str | None, image_root: str | Path | None) -> Node:
    """The folder the JSON's ``file_name``s are relative to: the first candidate holding its first images."""
    if image_root is not None:
        return Path(image_root)
    json_dir = node.parent
    token = node.name.rsplit(".", 1)[0].split("_")[-1]
    candidates = [json_dir]
    if not root.is_file():
        names = [f"images/{token}", f"images/{_SPLIT_DIR.get(split or '', token)}", token, "images", ""]
        candidates = [_files.child(root, n) for n in names] + [json_dir]
    else:
        candidates.append(json_dir / "images")
    images = doc.get("images")
    probe = [
        img["file_name"]
        for img in (images[:3] if isinstance(images, list) else [])
        if isinstance(img, dict) and isinstance(img.get("file_name"), str) and _files.is_relative_inside(img["file_name"])
    ]
    for folder in candidates:
        try:
            if probe and any(_files.child(folder, name).exists() for name in probe):
                return folder
        except (OSError, ValueError):
            continue
    return json_dir


def _read_instances(
    doc: dict,
    rel: str,
    names: dict[Any, str],
    folder: Node,
    root: Node,
    file_split: str | None,
    split_forced: bool,
    check_images: bool,
    dataset: LabelledDataset,
) -> dict[Any, LabelledImage | None]:
    """Append the JSON's images and annotations to ``dataset``; returns COCO image id -> image."""
    errors = dataset.errors
    by_id: dict[Any, LabelledImage | None] = {}  # None: left out, its annotations are dropped
    dropped: dict[Any, ItemError] = {}
    images = doc.get("images")
    if not isinstance(images, list):
        raise FormatError("coco.instances_file", f"{rel}: no 'images' list; is this a COCO instances file?")
    for i, entry in enumerate(images):
        item = f"{rel}: images[{i}]"
        if not isinstance(entry, dict) or "id" not in entry or not _is_id(entry["id"]) or not isinstance(
                entry.get("file_name"), str):
            errors.append(ItemError(item, "needs an 'id' (a number) and a 'file_name' (a string)"))
            continue
        image_id, file_name = entry["id"], entry["file_name"]
        item = f"{rel}: image id {image_id} ({file_name})"
        if image_id in by_id:
            errors.append(ItemError(item, "image id appears twice; the second entry was left out"))
            continue
        try:  # a name that is absolute or climbs out with '..' would read a file outside the dataset
            node = _files.child(folder, _files.safe_relative(file_name))
        except ValidationError as exc:
            by_id[image_id] = None
            dropped[image_id] = ItemError(item, f"{exc.detail} It is left out with its annotations.")
            errors.append(dropped[image_id])
            continue
        if check_images and not _files.is_file(node):
            by_id[image_id] = None
            dropped[image_id] = ItemError(
                item, f"image file {_files.relative(node, root)} not found; left out with its annotations"
            )
            errors.append(dropped[image_id])
            continue
        split = file_split
        if not split_forced and entry.get("split") is not None:
            try:
                split = normalize_split(entry["split"])
            except ValidationError as exc:
                errors.append(ItemError(item, str(exc)))
        width, height = (int(v) if isinstance(v, float) and v.is_integer() else v for v in (entry.get("width"), entry.get("height")))
        try:
            if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
                width, height = _files.image_size(node)  # missing in the JSON: take the file's header
            image = LabelledImage(
                file_name=file_name,
                width=width,
                height=height,
                split=split,
                source_path=_files.local_path(node),
                open_bytes=_files.opener(node),
            )
        except (ValidationError, OSError) as exc:
            by_id[image_id] = None
            errors.append(ItemError(item, f"no usable width/height ({exc}); left out with its annotations"))
            continue
        by_id[image_id] = image
        dataset.images.append(image)

    annotations = doc.get("annotations") or []
    for i, ann in enumerate(annotations if isinstance(annotations, list) else []):
        if not isinstance(ann, dict):
            errors.append(ItemError(_where(rel, i, ann), "is not an object"))
            continue
        image_id = ann.get("image_id")
        if not _is_id(image_id) or image_id not in by_id:
            errors.append(ItemError(_where(rel, i, ann), f"image_id {image_id!r} is not in images"))
            continue
        image = by_id[image_id]
        if image is None:
            continue  # reported once with its image
        label = names.get(ann.get("category_id")) if _is_id(ann.get("category_id")) else None
        if label is None:
            errors.append(
                ItemError(_where(rel, i, ann), f"category_id {ann.get('category_id')!r} is not in categories")
            )
            continue
        try:
            image.objects.append(_object(ann, label, image))
        except ValidationError as exc:
            errors.append(ItemError(_where(rel, i, ann), str(exc)))
        except (ValueError, TypeError, OverflowError) as exc:  # float() of a string, a list, an int beyond floats
            errors.append(ItemError(_where(rel, i, ann), f"bbox, segmentation and score must hold numbers ({exc})"))
    return by_id


def _is_id(value: Any) -> bool:
    """A JSON value usable as an id (COCO's are ints): not a list or an object, which cannot be looked up."""
    return not isinstance(value, (list, dict))


def _where(rel: str, index: int, ann: Any) -> str:
    return f"{rel}: annotations[{index}]" + (f" (id {ann['id']})" if isinstance(ann, dict) and "id" in ann else "")


def _object(ann: dict, label: str, image: LabelledImage) -> LabelledObject:
    polygons, rle = None, None
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg:
        if not all(isinstance(p, list) for p in seg):
            raise ValidationError(
                "coco.segmentation", "segmentation must be a list of polygons (lists of numbers) or an RLE dict"
            )
        polygons = [[float(v) for v in p] for p in seg]
    elif isinstance(seg, dict):
        rle = masks.compress_rle(seg)
        if list(rle["size"]) != [image.height, image.width]:
            raise ValidationError(
                "coco.segmentation",
                f"RLE size {rle['size']} does not match the image's [height, width] {[image.height, image.width]}",
            )
    elif seg not in (None, []):
        raise ValidationError(
            "coco.segmentation", f"segmentation must be polygons or an RLE dict, got {type(seg).__name__}"
        )
    bbox = ann.get("bbox")
    if bbox:
        if not (isinstance(bbox, list) and len(bbox) == 4):
            raise ValidationError("coco.bbox", f"bbox must be [x, y, width, height], got {bbox!r}")
        x, y, w, h = float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])
        if not (w >= 0 and h >= 0):
            raise ValidationError("coco.bbox", f"bbox width and height must be >= 0, got {bbox!r}")
        box = (x, y, x + w, y + h)
    elif rle is not None:
        box = masks.rle_bbox_xyxy(rle)
    elif polygons:
        box = masks.polygons_bbox_xyxy(polygons)
    else:
        raise ValidationError("coco.bbox", "has neither a bbox nor a segmentation")
    return LabelledObject(label, box, polygons, rle, bool(ann.get("iscrowd", 0)), ann.get("score"))


def write_coco(
    dataset: LabelledDataset, path: str | Path, *, include_scores: bool = False, link_images: bool = False,
    on_image: Callable[[int], None] | None = None,
) -> WriteSummary:
    """Write COCO instances. ``path`` ending in ``.json``: one file, annotations only. Else a folder
    (new or empty) or ``.zip`` with ``annotations/instances_{train,val,test}.json`` (``instances.json``
    for images without a split) and the image files under ``images/{train,val,test}/``.

    ``include_scores`` adds each object's ``score`` to its annotation. ``link_images`` hard-links
    instead of copying (do not edit the exported files in place then: they share the source's bytes).
    """
    dataset.check_labels()
    target = Path(path)
    ids = {name: i + 1 for i, name in enumerate(dataset.categories)}
    cats = [{"id": i + 1, "name": name, "supercategory": ""} for i, name in enumerate(dataset.categories)]
    summary = WriteSummary(path=target, images=len(dataset.images), objects=0)
    if target.suffix.lower() == ".json":
        doc = _instances(dataset, list(enumerate(dataset.images)), ids, cats, include_scores, summary, with_split=True)
        _files.atomic_write_text(target, json.dumps(doc, separators=(",", ":")))
        return summary
    groups: dict[str | None, list[tuple[int, LabelledImage]]] = {}
    for index, image in enumerate(dataset.images):
        groups.setdefault(image.split, []).append((index, image))
    with _files.Output(target, on_image=on_image) as out:
        for split, members in groups.items():
            sub = _SPLIT_DIR[split] if split else ""
            doc = _instances(dataset, members, ids, cats, include_scores, summary, with_split=False)
            out.write_text(
                f"annotations/instances_{sub}.json" if sub else "annotations/instances.json",
                json.dumps(doc, separators=(",", ":")),
            )
            for _, image in members:
                try:
                    rel = "/".join(p for p in ("images", sub, _files.safe_relative(image.file_name)) if p)
                except ValidationError as exc:
                    summary.issues.append(ItemError(image.file_name, f"{exc}; image file not written"))
                    continue
                reason = out.put_image(rel, image, link=link_images)
                if reason:
                    summary.issues.append(ItemError(image.file_name, reason))
    return summary


def _instances(
    dataset: LabelledDataset,
    members: list[tuple[int, LabelledImage]],
    ids: dict[str, int],
    cats: list[dict],
    include_scores: bool,
    summary: WriteSummary,
    *,
    with_split: bool,
) -> dict:
    images, annotations = [], []
    next_id = summary.objects + 1
    for index, image in members:
        entry: dict[str, Any] = {
            "id": index + 1,
            "file_name": image.file_name,
            "width": image.width,
            "height": image.height,
        }
        if with_split and image.split:
            entry["split"] = image.split
        images.append(entry)
        for obj in image.objects:
            x1, y1, x2, y2 = obj.bbox_xyxy
            ann: dict[str, Any] = {
                "id": next_id,
                "image_id": index + 1,
                "category_id": ids[obj.label],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": _area(obj, image),
                "iscrowd": int(obj.iscrowd),
                "segmentation": obj.rle if obj.rle is not None else (obj.polygons or []),
            }
            if include_scores and obj.score is not None:
                ann["score"] = obj.score
            annotations.append(ann)
            next_id += 1
    summary.objects = next_id - 1
    return {
        "info": {"description": "exported by mleval"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": cats,
    }


def _area(obj: LabelledObject, image: LabelledImage) -> float:
    """COCO's ``area``: mask pixels for masks, box area otherwise."""
    if obj.rle is not None:
        return float(masks.rle_area(obj.rle))
    if obj.polygons:
        return float(masks.rle_area(masks.polygons_to_rle(obj.polygons, height=image.height, width=image.width)))
    x1, y1, x2, y2 = obj.bbox_xyxy
    return (x2 - x1) * (y2 - y1)
