"""A YOLO export is a dataset ultralytics trains on as is (no Ray needed)."""

from __future__ import annotations

import json

import pytest

import mleval
from mleval.synthetic import generate_shapes


# ultralytics' Ray Tune callback asks Ray for a trial id at each epoch end; it starts nothing.
@pytest.mark.filterwarnings("ignore:`get_trial_id` is meant:UserWarning")
def test_ultralytics_trains_one_epoch_on_the_yolo_export(tmp_path):
    pytest.importorskip("ultralytics")
    from ultralytics import YOLO

    shapes = tmp_path / "shapes"
    synthetic = generate_shapes(shapes, train=8, validation=4, test=0, image_size=64)
    (shapes / "annotations").mkdir()
    for split, stem in (("train", "train"), ("validation", "val")):
        (shapes / "annotations" / f"instances_{stem}.json").write_text(json.dumps(synthetic.to_coco(split)))
    with mleval.Workspace.open(tmp_path / "ws") as ws:
        imported = ws.import_dataset(shapes, format="coco", name="shapes")
        assert imported.errors == [] and imported.images == 12
        exported = ws.export(dataset="shapes", format="yolo", path=tmp_path / "yolo")
        assert exported.issues == [] and exported.categories == list(synthetic.classes)

    model = YOLO("yolo11n.yaml")
    model.train(data=str(tmp_path / "yolo" / "data.yaml"), epochs=1, imgsz=64, batch=4, device="cpu", workers=0,
                plots=False, val=False, project=str(tmp_path / "runs"), name="train", exist_ok=True, verbose=False)
    trainer = model.trainer
    assert trainer.data["names"] == dict(enumerate(synthetic.classes))
    assert len(trainer.train_loader.dataset) == 8  # every exported training image was used
    assert sum(len(label["cls"]) for label in trainer.train_loader.dataset.labels) == sum(
        len(image.objects) for image in synthetic.images if image.split == "train"
    )
    assert (tmp_path / "runs" / "train" / "weights" / "last.pt").is_file()
