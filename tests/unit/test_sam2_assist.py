"""SAM 2 (random weights, built offline) as a promptable segmenter, and model-assisted annotation.

An image embedding costs seconds on a CPU, so the module shares one workspace, one sam2.1_t
and one embedded image; each test asserts only what holds whatever ran before it.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import pytest
from PIL import Image

from mleval.assist import Proposal, assist, prelabel
from mleval.core.errors import MlevalError, ValidationError
from mleval.models.sam2_predictor import Sam2Predictor, image_key, sam2_hydra
from tests.unit.conftest import image_bytes

WIDTH, HEIGHT = 100, 80


@pytest.fixture(scope="module")
def sam_ws(tmp_path_factory):
    import mleval

    workspace = mleval.Workspace.open(tmp_path_factory.mktemp("sam2") / "ws")
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def images(sam_ws):
    report = sam_ws.images.upload(
        [(f"img{i}.png", image_bytes(size=(WIDTH, HEIGHT), seed=i)) for i in range(2)], split="train"
    )
    return report.succeeded


@pytest.fixture(scope="module")
def rgb():
    return np.asarray(Image.open(io.BytesIO(image_bytes(size=(WIDTH, HEIGHT), seed=0))).convert("RGB"))


@pytest.fixture(scope="module")
def sam(sam_ws) -> Sam2Predictor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights; torch.jit.script deprecation inside sam2
        return sam_ws.models.load("sam2.1_t").predictor


@pytest.fixture(scope="module")
def first_prompt(sam, rgb):
    """The module's one embedding: the first prompt on ``rgb``."""
    return sam.segment(rgb, points=[(50, 40, 1)])


def _inside(box, width=WIDTH, height=HEIGHT) -> bool:
    x1, y1, x2, y2 = box
    return 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height


@pytest.fixture
def count_embeddings(monkeypatch):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    calls = []
    original = SAM2ImagePredictor.set_image
    monkeypatch.setattr(SAM2ImagePredictor, "set_image", lambda self, image: (calls.append(1), original(self, image)))
    return calls


def test_point_prompt_embeds_the_image_and_gives_a_mask_of_its_size(sam, first_prompt):
    assert isinstance(sam, Sam2Predictor) and sam.class_names == ()
    assert first_prompt.embedding_ms > 0
    assert first_prompt.mask.shape == (HEIGHT, WIDTH) and first_prompt.mask.dtype == bool
    assert first_prompt.rle["size"] == [HEIGHT, WIDTH]
    assert _inside(first_prompt.box_xyxy)
    assert 0.0 <= first_prompt.score <= 1.0
    assert all(0 <= v <= max(WIDTH, HEIGHT) for polygon in first_prompt.polygons for v in polygon)


def test_further_prompts_on_the_same_image_reuse_its_embedding(sam, rgb, first_prompt, count_embeddings):
    box = sam.segment(rgb, box=[10, 10, 60, 50])
    both = sam.segment(rgb.copy(), points=[(30, 30, 1), (5, 5, 0)], box=[10, 10, 60, 50], multimask=True)
    by_key = sam.segment(image_key(rgb), points=[(30, 30)])
    assert count_embeddings == []
    for result in (box, both, by_key):
        assert result.embedding_ms == 0.0 and result.embedding_cached
        assert result.mask.shape == (HEIGHT, WIDTH) and _inside(result.box_xyxy)
    assert box.prompt_ms < first_prompt.embedding_ms


def test_unknown_key_says_to_pass_the_image(sam):
    with pytest.raises(MlevalError, match="no embedding cached under key 'nope'"):
        sam.segment("nope", points=[(1, 1, 1)])


def test_cache_keeps_the_most_recent_images(sam, monkeypatch):
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    monkeypatch.setattr(SAM2ImagePredictor, "set_image", lambda self, image: None)  # embeddings are not the point
    small = Sam2Predictor(sam.model, name="sam2.1_t", cache_size=2)
    a, b, c = (np.full((4, 4, 3), v, np.uint8) for v in (1, 2, 3))
    assert small.set_image(a) > 0 and small.set_image(b) > 0
    assert small.set_image(a) == 0.0  # a is now the most recent
    small.set_image(c)  # evicts b
    assert small.is_cached(image_key(a)) and small.is_cached(image_key(c)) and not small.is_cached(image_key(b))


def test_predict_gives_one_mask_per_prompt_box(sam, rgb, first_prompt):
    prediction, empty = sam.predict([rgb, rgb], boxes=[[[10, 10, 60, 50], [0, 0, WIDTH, HEIGHT]], []],
                                    labels=[["cat", "dog"], []])
    d = prediction.detections
    assert d.class_names == ("cat", "dog") and len(d.masks_rle) == 2
    assert all(rle["size"] == [HEIGHT, WIDTH] for rle in d.masks_rle)
    assert all(_inside(box) for box in d.xyxy)
    assert prediction.extra["embedding_ms"] == 0.0
    assert len(empty.detections) == 0 and empty.detections.masks_rle == ()
    assert sam.predict([rgb], boxes=[np.array([[10, 10, 60, 50]])])[0].detections.class_names == ("object",)


def test_without_prompts_sam2_says_it_needs_them(sam, sam_ws, images, rgb):
    with pytest.raises(MlevalError, match="SAM 2 needs point or box prompts"):
        sam.predict([rgb])
    with pytest.raises(MlevalError, match="SAM 2 needs point or box prompts"):
        sam_ws.predict("sam2.1_t", images[0])
    with pytest.raises(ValidationError, match="cannot pre-label"):
        prelabel(sam_ws, images, "sam2.1_t")


@pytest.mark.parametrize(("prompts", "message"), [
    ({}, "SAM 2 needs a prompt"),
    ({"points": [(120, 40, 1)]}, r"point 0 \(x=120, y=40\) lies outside the image of width 100"),
    ({"points": [(10, 10, 1), (10, -1, 1)]}, r"point 1 \(x=10, y=-1\) lies outside"),
    ({"points": [(10, 10, 2)]}, "point 0 has label 2; use 1 for the object, 0 for background"),
    ({"points": [(10,)]}, r"point 0 is \(10,\); give \(x, y, label\)"),
    ({"box": [10, 10, 60, 90]}, r"box \[10, 10, 60, 90\] is not inside the image of width 100 and height 80"),
    ({"box": [60, 10, 10, 50]}, r"box \[60, 10, 10, 50\] is not inside"),
    ({"box": [10, 10, 60]}, r"box is \[10, 10, 60\]; give \[x1, y1, x2, y2\]"),
])
def test_bad_prompts_name_the_value_and_store_nothing(sam, sam_ws, images, prompts, message):
    before = len(sam_ws.annotations.list())
    with pytest.raises(ValidationError, match=message):
        assist(sam_ws, images[0], **prompts)
    assert len(sam_ws.annotations.list()) == before


def test_assist_stores_a_generated_mask_that_counts_once_accepted(sam, sam_ws, images, first_prompt):
    proposal = assist(sam_ws, images[0], points=[(50, 40, 1)], label="blob", user_tag="ann")
    assert isinstance(proposal, Proposal) and proposal.mask.shape == (HEIGHT, WIDTH)
    assert proposal.embedding_ms == 0.0  # the stored PNG decodes to the pixels embedded before
    record = sam_ws.annotations.get(proposal.annotation_id)
    assert record.review_state == "generated" and record.creation_method == "model"
    assert record.model_id == sam_ws.models.get("sam2.1_t").id
    assert record.class_labels == ["blob"]
    assert record.segments[0]["rle"] == proposal.rle and record.segments[0]["rle"]["size"] == [HEIGHT, WIDTH]
    assert record.bounding_boxes == [list(proposal.box_xyxy)] and _inside(record.bounding_boxes[0])
    assert record.confidence_scores == [pytest.approx(proposal.score)]
    assert record.metadata["prompt"] == {"points": [[50.0, 40.0, 1]], "box_xyxy": None}
    assert proposal.annotation_id not in {a.id for a in sam_ws.annotations.list(ground_truth=True)}

    assert proposal.accept(user_tag="reviewer").review_state == "accepted"
    assert proposal.annotation_id in {a.id for a in sam_ws.annotations.list(ground_truth=True)}


def test_a_rejected_proposal_is_not_ground_truth(sam, sam_ws, images, first_prompt):
    proposal = assist(sam_ws, images[0], box=[10, 10, 60, 50])
    assert sam_ws.annotations.get(proposal.annotation_id).metadata["prompt"]["box_xyxy"] == [10.0, 10.0, 60.0, 50.0]
    assert proposal.reject().review_state == "rejected"
    assert proposal.annotation_id not in {a.id for a in sam_ws.annotations.list(ground_truth=True)}


def test_an_empty_mask_is_not_stored(sam, sam_ws, images, monkeypatch):
    from mleval.models.sam2_predictor import SegmentResult

    empty = np.zeros((HEIGHT, WIDTH), bool)
    monkeypatch.setattr(sam, "segment", lambda *a, **k: SegmentResult(empty, {}, (0, 0, 0, 0), 0.1, 1.0, 0.0))
    before = len(sam_ws.annotations.list())
    with pytest.raises(ValidationError, match="found no object at the prompt"):
        assist(sam_ws, images[0], points=np.array([[5, 5, 1]]))
    assert len(sam_ws.annotations.list()) == before


def test_assist_needs_a_promptable_model(sam_ws, images):
    with pytest.raises(ValidationError, match="yolo11n is not a promptable segmenter"):
        assist(sam_ws, images[0], model="yolo11n", points=[(1, 1, 1)])


@pytest.mark.filterwarnings("ignore::mleval.models.weights.RandomWeightsWarning")
def test_prelabel_stores_one_generated_annotation_per_image(sam_ws, images):
    results = prelabel(sam_ws, images, "yolo11n", conf=0.0, imgsz=64)
    assert [r.image_id for r in results] == [i.id for i in images]
    for result in results:
        assert len(result.detections) > 0  # random weights at conf 0 still propose boxes
        record = sam_ws.annotations.get(result.annotation_id)
        assert record.review_state == "generated" and record.image_id == result.image_id
        assert len(record.class_labels) == len(result.detections)
    assert sam_ws.annotations.review(results[0].annotation_id, "accept").review_state == "accepted"


def test_sam2_hydra_lends_the_global_state_and_gives_it_back(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    config = "configs/sam2.1/sam2.1_hiera_t.yaml"
    original = GlobalHydra.instance().hydra
    (tmp_path / "app.yaml").write_text("who: another app\n")
    try:
        GlobalHydra.instance().clear()
        with sam2_hydra(config):
            assert "model" in compose(config_name=config)
        assert not GlobalHydra.instance().is_initialized()

        with initialize_config_dir(str(tmp_path), version_base="1.2"):
            with sam2_hydra(config):
                assert "model" in compose(config_name=config)
            assert compose(config_name="app").who == "another app"
    finally:
        GlobalHydra.instance().hydra = original
    with sam2_hydra(config):  # and sam2's own state is used as it is
        assert GlobalHydra.instance().hydra is original


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MLEVAL_SLOW") != "1", reason="builds all four SAM 2.1 variants; MLEVAL_SLOW=1")
@pytest.mark.parametrize("name", ["sam2.1_t", "sam2.1_s", "sam2.1_b+", "sam2.1_l"])
def test_every_sam2_variant_builds_offline_and_segments(name, rgb):
    from mleval.models.sam2_predictor import build_sam2_predictor
    from mleval.models.weights import ResolvedWeights
    from mleval.models.zoo import zoo_entry

    entry = zoo_entry(name)
    predictor = build_sam2_predictor(entry, ResolvedWeights("architecture", entry.config, False), name=name)
    result = predictor.segment(rgb, box=[10, 10, 60, 50])
    assert result.mask.shape == (HEIGHT, WIDTH) and result.embedding_ms > 0
