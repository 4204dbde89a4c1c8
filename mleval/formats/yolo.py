"""YOLO (ultralytics) datasets: ``data.yaml`` + ``images/<split>/`` + ``labels/<split>/*.txt``.

Label lines are ``cls cx cy w h`` (detection) or ``cls x1 y1 x2 y2 ...`` (one polygon),
normalized to 0..1 by the image size; a trailing odd number is a confidence score
(ultralytics ``save_conf``). Sizes come from the image headers in the EXIF-upright frame,
as ultralytics sees the images. A label file is found as ultralytics finds it: the last
``/images/`` of the image path becomes ``/labels/`` and the suffix ``.txt``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mleval.core import masks
from mleval.core.errors import DependencyError, ValidationError
from mleval.formats import _files
from mleval.formats._files import FormatError, Node
from mleval.formats.records import ItemError, LabelledDataset, LabelledImage, LabelledObject, WriteSummary

__all__ = ["read_yolo", "write_yolo"]

_SPLIT_KEYS = (("train", "train"), ("val", "validation"), ("validation", "validation"), ("test", "test"))
_SPLIT_DIR = {"train": "train", "validation": "val", "test": "test"}
_TOLERANCE = 0.01  # ultralytics accepts coordinates up to 1% outside 0..1


def _yaml():
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML comes with ultralytics
        raise DependencyError("reading and writing YOLO data.yaml needs PyYAML: pip install pyyaml") from None
    return yaml


@functools.cache
def _loader() -> type:
    """``yaml.SafeLoader`` whose bad dates (``2020-13-01``) are YAML errors with a line, not a bare ValueError."""
    yaml = _yaml()

    class Loader(yaml.SafeLoader):
        def construct_yaml_timestamp(self, node):
            try:
                return super().construct_yaml_timestamp(node)
            except ValueError as exc:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{node.value!r} is not a valid date ({exc}); quote it to keep it as text",
                    node.start_mark,
                ) from None

    Loader.add_constructor("tag:yaml.org,2002:timestamp", Loader.construct_yaml_timestamp)
    return Loader


def _load_yaml(node: Node, path: str | Path, yaml_rel: str) -> Any:
    """data.yaml's content; FormatError saying the line and column where it is not UTF-8 or not YAML."""
    yaml = _yaml()
    try:
        text = node.read_bytes().decode("utf-8-sig")  # ultralytics reads data.yaml as UTF-8
        return yaml.load(text, Loader=_loader())
    except UnicodeDecodeError as exc:
        raise FormatError("yolo.data_yaml", f"{path}: {_files.undecodable(yaml_rel, exc)}; save it as UTF-8.") from None
    except yaml.reader.ReaderError as exc:  # a control character: no mark, only an offset into the text
        line, column = _files.line_column(text, exc.position)
        raise FormatError(
            "yolo.data_yaml",
            f"{path}: {yaml_rel} is not valid YAML (line {line}, column {column}: character #x{exc.character:04x}, "
            f"{exc.reason}); remove it.",
        ) from None
    except yaml.YAMLError as exc:
        raise FormatError("yolo.data_yaml", f"{path}: {yaml_rel} is not valid YAML ({exc}); fix it.") from None


def read_yolo(path: str | Path) -> LabelledDataset:
    """Read a YOLO dataset from its ``data.yaml``, the folder holding it, or a ``.zip`` of that folder.

    ``val`` images get split ``validation``. An image listed under two splits is read once, under
    the first (train, val, test). Missing images, unreadable images, labels with unknown class
    ids, malformed lines and label files without an image become ItemErrors.
    """
    yaml_node, yaml_rel = _find_yaml(path)
    config = _load_yaml(yaml_node, path, yaml_rel)
    if not isinstance(config, dict):
        raise FormatError(
            "yolo.data_yaml", f"{path}: {yaml_rel} must be a mapping with 'names' and 'train'/'val' keys."
        )
    names = _names(config, yaml_rel)
    categories: list[str] = []
    id_to_label: dict[int, str] = {}
    dataset = LabelledDataset(categories=categories)
    for class_id, name in sorted(names.items()):
        if name in categories:
            dataset.errors.append(
                ItemError(f"{yaml_rel}: names[{class_id}]", f"name {name!r} is used twice; both ids read as {name!r}")
            )
        else:
            categories.append(name)
        id_to_label[class_id] = name

    base = yaml_node.parent
    root = _dataset_root(base, config.get("path"))
    seen: set[str] = set()
    label_keys: set[str] = set()
    for key, split in _SPLIT_KEYS:
        entries = config.get(key)
        if not entries or (key == "validation" and config.get("val")):
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            for image_node, folder in _split_images(root, str(entry), f"{yaml_rel}: {key}", dataset.errors):
                ident = str(image_node.at if hasattr(image_node, "at") else image_node)
                if ident in seen:
                    continue
                seen.add(ident)
                label_keys.add(_read_image(image_node, folder, root, base, split, id_to_label, dataset))
    _report_orphan_labels(root, label_keys, dataset.errors)
    return dataset


def _find_yaml(path: str | Path) -> tuple[Node, str]:
    p = Path(path).absolute()  # label paths are found by their '/images/' component
    if p.is_file() and p.suffix.lower() in (".yaml", ".yml"):
        return p, p.name
    root = _files.open_root(p)
    root = _files.single_subfolder(root, lambda n: _yaml_in(n) is not None)
    found = _yaml_in(root)
    if found is None:
        raise FormatError(
            "yolo.data_yaml",
            f"{path}: no data.yaml found; pass the dataset's data.yaml or the folder (or .zip) holding it.",
        )
    return found, found.name


def _yaml_in(folder: Node) -> Node | None:
    if not folder.is_dir():
        return None
    data = _files.child(folder, "data.yaml")
    if data.is_file():
        return data
    yamls = [c for c in folder.iterdir() if c.is_file() and c.suffix.lower() in (".yaml", ".yml")]
    return yamls[0] if len(yamls) == 1 else None


def _names(config: dict, yaml_rel: str) -> dict[int, str]:
    names = config.get("names")
    if names is None and isinstance(config.get("nc"), int):
        return {i: f"class_{i}" for i in range(config["nc"])}
    if isinstance(names, list):
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict):
        try:
            return {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError, OverflowError):  # OverflowError: an id of .inf
            pass
    raise FormatError(
        "yolo.data_yaml", f"{yaml_rel}: 'names' must be a list of class names or a mapping id -> name, got {names!r}."
    )


def _dataset_root(base: Node, configured: Any) -> Node:
    """``path:`` from data.yaml, relative to the yaml's folder; the yaml's folder when absent or not found."""
    if not configured:
        return base
    if isinstance(base, Path):
        candidate = base / str(configured)
        return candidate if candidate.is_dir() else base
    candidate = _files.child(base, str(configured))
    return candidate if candidate.is_dir() else base


def _split_images(root: Node, entry: str, item: str, errors: list[ItemError]) -> list[tuple[Node, Node]]:
    """(image, folder its file_name is relative to) for one train/val/test entry: a folder, a .txt list or an image."""
    node = _files.child(root, entry)
    if not node.exists() and entry.startswith("../"):
        node = _files.child(root, entry[3:])  # as ultralytics does
    if node.is_dir():
        return [(f, node) for f in _files.walk_files(node) if f.suffix.lower() in _files.IMAGE_SUFFIXES]
    if node.is_file() and node.suffix.lower() == ".txt":
        listed = []
        lines = node.read_bytes().decode("utf-8-sig", errors="replace").splitlines()  # bad bytes: "not found" lines
        for lineno, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                continue
            image = _files.child(node.parent, line[2:]) if line.startswith("./") else _files.child(root, line)
            if not _files.is_file(image):
                errors.append(ItemError(f"{_files.relative(node, root)}:{lineno}", f"image {line} not found"))
                continue
            if image.suffix.lower() in _files.IMAGE_SUFFIXES:
                listed.append((image, _listing_folder(image, root)))
        return listed
    if node.is_file() and node.suffix.lower() in _files.IMAGE_SUFFIXES:
        return [(node, node.parent)]
    errors.append(ItemError(item, f"{entry!r} is not a folder, a .txt list or an image under {root}"))
    return []


def _listing_folder(image: Node, root: Node) -> Node:
    """``root/images/<split>`` for ``images/<split>/...`` entries (the name a folder listing gives), else ``root``."""
    parts = _files.relative(image, root).split("/")
    return _files.child(root, f"images/{parts[1]}") if len(parts) > 2 and parts[0] == "images" else root


def _label_node(image: Node, base: Node) -> Node:
    """ultralytics' img2label_paths: last '/images/' -> '/labels/', suffix -> '.txt'."""
    text = str(image) if isinstance(image, Path) else "/" + image.at
    parts = text.rsplit("/images/", 1)
    text = "/labels/".join(parts).rsplit(".", 1)[0] + ".txt"
    if isinstance(image, Path):
        return Path(text)
    return _files.child(_zip_root(base), text.lstrip("/"))


def _zip_root(node: Node) -> Node:
    while node.at:  # type: ignore[union-attr]
        node = node.parent
    return node


def _read_image(
    node: Node, folder: Node, root: Node, base: Node, split: str, id_to_label: dict[int, str], dataset: LabelledDataset
) -> str:
    """Append the image and its objects to ``dataset``; returns its label file's key (path or zip member)."""
    label = _label_node(node, base)
    key = str(label) if isinstance(label, Path) else label.at
    file_name = _files.relative(node, folder)
    if file_name.startswith("/") or file_name.startswith("../"):
        file_name = node.name  # listed from outside the dataset folder
    try:
        width, height = _files.image_size(node)
        image = LabelledImage(file_name, width, height, split, [], _files.local_path(node), _files.opener(node))
    except (OSError, ValidationError) as exc:
        dataset.errors.append(ItemError(_files.relative(node, root), f"not a readable image ({exc}); left out"))
        return key
    dataset.images.append(image)
    if not label.is_file():
        return key  # an image without a label file is a background image
    label_rel = _files.relative(label, root)
    text = label.read_bytes().decode("utf-8-sig", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                image.objects.append(_parse_line(line, width, height, id_to_label))
            except (ValidationError, ValueError) as exc:
                dataset.errors.append(ItemError(f"{label_rel}:{lineno}", str(exc)))
    return key


def _parse_line(line: str, width: int, height: int, id_to_label: dict[int, str]) -> LabelledObject:
    tokens = line.split()
    try:
        values = [float(t) for t in tokens]
    except ValueError:
        raise ValueError(f"not a list of numbers: {line.strip()[:80]!r}") from None
    class_id, coords = values[0], values[1:]
    if not class_id.is_integer() or int(class_id) not in id_to_label:  # is_integer: False for nan and inf too
        raise ValueError(f"class id {tokens[0]} is not in data.yaml names (ids 0..{len(id_to_label) - 1})")
    n = len(coords)
    if n not in (4, 5) and n < 6:
        raise ValueError(f"expected 4 numbers (cx cy w h) or >= 6 (polygon x y pairs) after the class id, got {n}")
    score = coords.pop() if n in (5,) or (n > 6 and n % 2) else None
    if not all(math.isfinite(v) and -_TOLERANCE <= v <= 1 + _TOLERANCE for v in coords):
        raise ValueError("coordinates must be normalized to 0..1 (divide pixels by the image width/height)")
    label = id_to_label[int(class_id)]
    if len(coords) == 4:
        cx, cy, w, h = coords
        if w < 0 or h < 0:
            raise ValueError(f"box width and height must be >= 0, got {w}, {h}")
        box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        return LabelledObject(label, box, score=score)
    polygon = [v * (width if i % 2 == 0 else height) for i, v in enumerate(coords)]
    return LabelledObject(label, masks.polygons_bbox_xyxy([polygon]), polygons=[polygon], score=score)


def _report_orphan_labels(root: Node, label_keys: set[str], errors: list[ItemError]) -> None:
    """Label files under ``labels/`` that no image uses: most often an image deleted or renamed."""
    labels_dir = _files.child(root, "labels")
    if not labels_dir.is_dir():
        return
    for label in _files.walk_files(labels_dir):
        key = str(label) if isinstance(label, Path) else label.at
        if label.suffix.lower() == ".txt" and key not in label_keys:
            errors.append(ItemError(_files.relative(label, root), "label file has no image (under images/); ignored"))


def write_yolo(
    dataset: LabelledDataset, folder: str | Path, *, include_scores: bool = False, link_images: bool = False,
    on_image: Callable[[int], None] | None = None,
) -> WriteSummary:
    """Write an ultralytics dataset to a new (or empty) folder or a ``.zip``.

    Layout: ``data.yaml`` (``names`` as id -> name in ``dataset.categories`` order, no ``path``
    key so it resolves from its own folder), ``images/{train,val,test}/`` (images without a
    split go to train), ``labels/...``. Objects with a mask become polygon lines (parts of a
    multi-part mask joined by zero-width bridges); in an image with any polygon, box-only
    objects become rectangles, since ultralytics rejects files mixing both. Crowd regions are
    skipped (as ultralytics' COCO converter does); coordinates are clipped to the image.
    Numbers carry 12 significant digits (< 1e-6 px error for images up to 10^5 px).
    """
    dataset.check_labels()
    ids = dataset.class_ids()
    summary = WriteSummary(path=Path(folder), images=len(dataset.images), objects=0)
    used: set[str] = set()
    with _files.Output(folder, on_image=on_image) as out:
        for image in dataset.images:
            sub = _SPLIT_DIR[image.split or "train"]
            try:
                name = _files.safe_relative(image.file_name)
            except ValidationError as exc:
                summary.issues.append(ItemError(image.file_name, f"{exc}; image and labels not written"))
                continue
            used.add(sub)
            lines = _label_lines(image, ids, include_scores, summary.issues)
            summary.objects += len(lines)
            stem = name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name
            out.write_text(f"labels/{sub}/{stem}.txt", "".join(line + "\n" for line in lines))
            reason = out.put_image(f"images/{sub}/{name}", image, link=link_images)
            if reason:
                summary.issues.append(ItemError(image.file_name, reason))
        out.write_text("data.yaml", _data_yaml(dataset.categories, used))
    return summary


def _label_lines(image: LabelledImage, ids: dict[str, int], include_scores: bool, issues: list[ItemError]) -> list[str]:
    w, h = image.width, image.height
    shapes: list[tuple[LabelledObject, list[float] | None]] = []
    for k, obj in enumerate(image.objects):
        item = f"{image.file_name}: object {k} ({obj.label})"
        if obj.iscrowd:
            issues.append(ItemError(item, "crowd region: YOLO has no crowd flag; skipped"))
            continue
        polygon = None
        if obj.polygons:
            polygon = masks.merge_polygons(obj.polygons)
        elif obj.rle is not None:
            polygon = masks.merge_polygons(masks.rle_to_polygons(obj.rle))
            issues.append(ItemError(item, "RLE mask written as its outer-boundary polygon (holes filled)"))
        shapes.append((obj, polygon or None))
    any_polygon = any(p for _, p in shapes)
    lines = []
    for obj, polygon in shapes:
        x1, y1, x2, y2 = obj.bbox_xyxy
        cx1, cy1, cx2, cy2 = min(max(x1, 0.0), w), min(max(y1, 0.0), h), min(max(x2, 0.0), w), min(max(y2, 0.0), h)
        if any_polygon and polygon is None:
            polygon = [cx1, cy1, cx2, cy1, cx2, cy2, cx1, cy2]
        if polygon is not None:
            clipped = [min(max(v, 0.0), w if i % 2 == 0 else h) for i, v in enumerate(polygon)]
            if clipped != polygon:
                issues.append(ItemError(f"{image.file_name}: {obj.label}", "polygon extends beyond the image; clipped"))
            values = [v / (w if i % 2 == 0 else h) for i, v in enumerate(clipped)]
        else:
            if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
                issues.append(ItemError(f"{image.file_name}: {obj.label}", "box extends beyond the image; clipped"))
            values = [(cx1 + cx2) / 2 / w, (cy1 + cy2) / 2 / h, (cx2 - cx1) / w, (cy2 - cy1) / h]
        if include_scores and obj.score is not None:
            values.append(obj.score)
        lines.append(f"{ids[obj.label]} " + " ".join([f"{v:.12g}" for v in values]))
    return lines


def _data_yaml(categories: list[str], used: set[str]) -> str:
    present = [s for s in ("train", "val", "test") if s in used] or ["train"]
    keys: dict[str, Any] = {}
    comments = ["# Written by mleval. Class ids are the order of `names`; paths are relative to this file's folder."]
    for key in ("train", "val", "test"):
        if key in used:
            keys[key] = f"images/{key}"
        elif key != "test":
            keys[key] = f"images/{present[0]}"
            comments.append(
                f"# No {key} images: '{key}' reuses images/{present[0]} because ultralytics requires the key."
            )
    keys["names"] = dict(enumerate(categories))
    body = _yaml().safe_dump(keys, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return "\n".join(comments) + "\n" + body
