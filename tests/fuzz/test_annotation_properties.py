"""Every annotation input is either stored and exportable as COCO, YOLO and VOC, or refused with a
ValidationError naming a rule: never a raw library exception, never a stored row that breaks an export."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mleval.core.errors import ValidationError
from tests.unit.conftest import image_bytes

W, H = 64, 48
_counter = itertools.count()

numbers = st.one_of(st.floats(min_value=-10, max_value=80), st.sampled_from([float("nan"), float("inf"), -1.0, 0.0]),
                    st.integers(min_value=-5, max_value=70))
labels = st.lists(st.sampled_from(["cat", "dog", "", "  ", "a b", "😀"]), min_size=0, max_size=3)
boxes = st.lists(st.lists(numbers, min_size=3, max_size=5), min_size=0, max_size=3)
polygons = st.lists(st.one_of(st.none(), st.lists(st.lists(numbers, min_size=0, max_size=9), min_size=0, max_size=2)),
                    min_size=0, max_size=3)
scores = st.one_of(st.none(), st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                                 st.floats(min_value=0, max_value=1)), min_size=0, max_size=3))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    import mleval

    ws = mleval.Workspace.open(tmp_path_factory.mktemp("fuzz") / "ws")
    report = ws.images.upload([(f"{i}.png", image_bytes(size=(W, H), seed=i)) for i in range(2)], split="train",
                              progress=False)
    ws.datasets.create("fuzz", images=report.succeeded)
    yield ws, report.succeeded
    ws.close()


@given(labels=labels, boxes=st.one_of(st.none(), boxes), polygons=st.one_of(st.none(), polygons), scores=scores,
       image=st.sampled_from([0, 1, "not-an-id"]), model=st.booleans())
def test_annotations_are_stored_and_exportable_or_refused_by_a_rule(workspace, tmp_path_factory, labels, boxes,
                                                                    polygons, scores, image, model):
    ws, images = workspace
    options = {"creation_method": "model", "model_id": ws.models.get("yolo11n").id} if model else {}
    try:
        ws.annotations.add(images[image] if isinstance(image, int) else image, labels=labels, boxes_xyxy=boxes,
                           polygons=polygons, scores=scores, **options)
    except ValidationError as error:
        assert error.rule and "." in error.rule
        return
    folder = tmp_path_factory.mktemp("export")
    for fmt in ("coco", "yolo", "voc"):
        ws.export(dataset="fuzz", format=fmt, path=folder / f"{fmt}-{next(_counter)}", progress=False)
