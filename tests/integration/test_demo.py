"""The main job at its present extent: generate, upload with ground truth, SAM 2, Ray Data, export."""

from mleval.cli import build_parser
from mleval.demo import DemoSettings, run_demo


def test_demo_runs_and_a_second_run_reuses_the_workspace(ray_session, tmp_path):
    from ray import serve

    from mleval.catalog.owner import stop_owner
    from tests.integration.conftest import free_port

    settings = DemoSettings(workspace=tmp_path / "demo", train=6, validation=3, test=3, image_size=64,
                            assist_images=1, port=free_port(), epochs=2)
    first = run_demo(settings)
    assert "12 uploaded, 0 already there" in first.summary["images"]
    second = run_demo(settings)
    assert "0 uploaded, 12 already there" in second.summary["images"]
    assert second.summary["annotations"] == first.summary["annotations"]  # ground truth not doubled
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "train 6, validation 3, test 3" in report and "| **total** |" in report
    assert "1 box prompts (architecture weights)" in report
    assert "3 images, 0 failed" in first.summary["batch inference"]
    assert (tmp_path / "demo" / "exports" / "shapes-coco.zip").is_file()
    assert "2 epochs with 1 Ray Train worker(s)" in report and "evaluation: fine-tuned" in report
    assert "rolled back to v1.0.0" in report and "forward to v1.1.0" in report and "HTTP 401" in report
    serve.shutdown()  # the next test module starts Serve on its own port
    stop_owner(str(tmp_path / "demo" / "catalog.duckdb"))


def test_demo_help_lists_its_options():
    help_text = build_parser()._subparsers._group_actions[0].choices["demo"].format_help()
    for option in ("--workspace", "--train", "--imgsz", "--seed", "--port", "--keep-serving", "--epochs"):
        assert option in help_text
