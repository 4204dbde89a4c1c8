"""The `mleval` command."""

from __future__ import annotations

import argparse
from pathlib import Path


def _demo(args: argparse.Namespace) -> None:
    from mleval.demo import DemoSettings, run_demo

    run_demo(DemoSettings(workspace=Path(args.workspace), train=args.train, validation=args.validation,
                          test=args.test, image_size=args.imgsz, seed=args.seed, port=args.port,
                          keep_serving=args.keep_serving, epochs=args.epochs, workers=args.workers))


def _check(args: argparse.Namespace) -> int:
    import mleval

    ws = mleval.Workspace.open(args.workspace)
    try:
        report = ws.check(hash_sample=args.hash_sample)
        print(report)
        if args.gc:
            print(ws.gc())
    finally:
        ws.close()
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mleval", description="Computer-vision model evaluation on Ray.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run the user's journey on synthetic data in a local workspace",
        description="Generate a synthetic dataset, upload it into splits with its ground truth, let SAM 2 "
                    "propose masks, batch-infer with Ray Data, evaluate, deploy on Ray Serve and call it over "
                    "HTTP, roll back and forward, export COCO, and write report.md. A second run on the same "
                    "workspace reuses what exists.",
    )
    demo.add_argument("--workspace", default="workspaces/demo", help="workspace folder (default: %(default)s)")
    demo.add_argument("--train", type=int, default=256, help="training images (default: %(default)s)")
    demo.add_argument("--validation", type=int, default=64, help="validation images (default: %(default)s)")
    demo.add_argument("--test", type=int, default=64, help="test images (default: %(default)s)")
    demo.add_argument("--imgsz", type=int, default=128, help="image size in pixels (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs (default: %(default)s)")
    demo.add_argument("--workers", type=int, default=1, help="Ray Train workers (default: %(default)s)")
    demo.add_argument("--port", type=int, default=8000, help="HTTP port of the deployed endpoint (default: %(default)s)")
    demo.add_argument("--keep-serving", action="store_true",
                      help="keep the deployed endpoint running after the report, until Ctrl-C")
    demo.set_defaults(handler=_demo)
    check = commands.add_parser(
        "check", help="verify a workspace's invariants and say how to repair what is broken",
        description="Rows against blobs, a sample of blob hashes, rules broken by stored rows, temporaries left "
                    "by writes that never finished, blobs no row refers to. Exits 1 when something is wrong.")
    check.add_argument("workspace", help="the workspace folder or URI")
    check.add_argument("--hash-sample", type=int, default=100, help="blobs to re-hash (default: %(default)s)")
    check.add_argument("--gc", action="store_true", help="then remove stray blobs and stale temporaries (ws.gc())")
    check.set_defaults(handler=_check)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    code = args.handler(args)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
