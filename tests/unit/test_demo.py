"""The main job at its present extent: generate, upload into splits with ground truth, report."""

from mleval.cli import build_parser
from mleval.demo import DemoSettings, run_demo


def test_demo_runs_and_a_second_run_reuses_the_workspace(tmp_path, capsys):
    settings = DemoSettings(workspace=tmp_path / "demo", train=6, validation=3, test=3, image_size=64)
    first = run_demo(settings)
    assert "12 uploaded, 0 already there" in first.summary["images"]
    second = run_demo(settings)
    assert "0 uploaded, 12 already there" in second.summary["images"]
    assert second.summary["annotations"] == first.summary["annotations"]  # ground truth not doubled
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "train 6, validation 3, test 3" in report and "| **total** |" in report


def test_demo_help_lists_its_options():
    help_text = build_parser()._subparsers._group_actions[0].choices["demo"].format_help()
    for option in ("--workspace", "--train", "--imgsz", "--seed"):
        assert option in help_text
