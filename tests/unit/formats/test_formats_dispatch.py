"""mleval.formats.read / write by format name, and the neutral records' own checks."""

from __future__ import annotations

import shutil
import sys

import pytest

from mleval.core.errors import MlevalError, ValidationError
from mleval.formats import FORMATS, LabelledDataset, LabelledImage, LabelledObject, read, write


def test_bad_format_name_lists_the_allowed_ones(sample_dataset, tmp_path):
    with pytest.raises(ValidationError, match="unknown format 'kitti'; use one of: coco, yolo, voc"):
        read(tmp_path, format="kitti")
    with pytest.raises(MlevalError, match="coco, yolo, voc"):
        write(sample_dataset, tmp_path / "x", format="csv")
    assert FORMATS == ("coco", "yolo", "voc")


def test_format_names_are_case_insensitive_and_options_pass_through(sample_dataset, tmp_path):
    write(sample_dataset, tmp_path / "a.json", format="COCO", include_scores=True)
    ds = read(tmp_path / "a.json", format="Coco", check_images=False)
    assert len(ds.images) == 4


def test_coco_zip_with_one_top_folder(sample_dataset, same, tmp_path):
    write(sample_dataset, tmp_path / "pack" / "coco", format="coco")
    archive = shutil.make_archive(str(tmp_path / "coco"), "zip", tmp_path / "pack", "coco")
    same(sample_dataset, read(archive, format="coco"))


def test_importing_the_package_loads_no_heavy_modules():
    import subprocess

    heavy = ("numpy", "PIL", "pycocotools", "yaml", "torch", "ray", "cv2")
    code = f"import sys, mleval.formats; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=".")
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda: LabelledObject("", (0, 0, 1, 1)), "annotation.class_label"),
        (lambda: LabelledObject("a", (0, 0, 1)), "annotation.bbox"),
        (lambda: LabelledObject("a", (5, 0, 1, 1)), "annotation.bbox"),
        (lambda: LabelledObject("a", (0, 0, float("nan"), 1)), "annotation.bbox"),
        (lambda: LabelledObject("a", (0, 0, 1, 1), polygons=[[0, 0, 1]]), "annotation.segment"),
        (lambda: LabelledImage("x.png", 0, 5), "image.width_positive"),
        (lambda: LabelledImage("x.png", 5, 5, split="holdout"), "image.dataset_split"),
        (lambda: LabelledDataset(["a", "a"]), "dataset.category_unique"),
    ],
)
def test_records_reject_bad_values_with_the_rule_name(make, rule):
    with pytest.raises(ValidationError) as info:
        make()
    assert info.value.rule == rule


def test_val_is_validation():
    assert LabelledImage("x.png", 5, 5, split="val").split == "validation"


def test_a_failed_export_leaves_nothing_behind(sample_dataset, tmp_path):
    def broken() -> bytes:
        raise RuntimeError("store went away")

    sample_dataset.images[-1].source_path = None
    sample_dataset.images[-1].open_bytes = broken
    for fmt, target in (("yolo", tmp_path / "y"), ("voc", tmp_path / "v.zip")):
        with pytest.raises(RuntimeError, match="store went away"):
            write(sample_dataset, target, format=fmt)
    assert list(tmp_path.iterdir()) == [tmp_path / "src"]


def test_link_images_hard_links_instead_of_copying(sample_dataset, tmp_path):
    write(sample_dataset, tmp_path / "out", format="yolo", link_images=True)
    exported = tmp_path / "out" / "images" / "train" / "a.jpg"
    assert exported.stat().st_ino == sample_dataset.images[0].source_path.stat().st_ino
