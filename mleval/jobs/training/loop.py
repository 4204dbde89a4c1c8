"""The Ray Train worker loop: ultralytics' model, loss and augmentation, driven by Ray Train.

Every worker builds the model and a sharded dataloader of the YOLO export; gradients are
averaged by Ray Train's DDP (gloo on CPU). The schedule mirrors ultralytics' trainer
(nominal batch 64 with gradient accumulation, warmup, linear LR decay, EMA, gradient
clipping) so the two reach the same accuracy. Rank 0 validates the EMA weights with
``mleval.evaluation.coco_evaluate``, writes progress, metrics and log lines to the catalog,
keeps the best weights as an ultralytics checkpoint, and decides early stopping and
cancellation for every rank. A checkpoint is reported after the first epoch and then every
``CHECKPOINT_INTERVAL_S``, so a replaced worker group resumes from the last checkpointed epoch.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
import warnings
from contextlib import contextmanager
from copy import deepcopy
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mleval.context import WorkspaceAddress

CANCEL_CHECK_BATCHES = 4  # multi-worker runs agree on cancellation every few batches (one collective)
CANCEL_CHECK_S = 1.0
# Ray Train's resume state (model, EMA, optimizer: ~40 MB for yolo11n) is written after the first
# epoch, then at most every this many seconds: a replaced worker group redoes at most that much
# work, and a run of short epochs does not spend 10% of its time writing checkpoints (measured:
# 0.4 s an epoch of about 4 s, yolo11n at 128 on 2 CPUs).
CHECKPOINT_INTERVAL_S = 30.0
NOMINAL_BATCH = 64  # ultralytics' nbs: gradients accumulate up to this many images per step
STATE_FILE = "state.pt"


def ultralytics_args(hyperparameters: dict[str, Any]):
    """ultralytics' full configuration namespace with the job's hyperparameters applied."""
    from ultralytics.cfg import get_cfg
    from ultralytics.utils import DEFAULT_CFG

    hp = hyperparameters
    overrides = {
        "epochs": hp["epochs"], "batch": hp["batch_size"], "lr0": hp["learning_rate"], "imgsz": hp["imgsz"],
        "optimizer": hp["optimizer"], "weight_decay": hp["weight_decay"], "warmup_epochs": hp["warmup_epochs"],
        "warmup_bias_lr": hp["warmup_bias_lr"], "mosaic": hp["mosaic"], "fliplr": hp["fliplr"], "seed": hp["seed"],
        "patience": hp["patience"], "close_mosaic": hp["close_mosaic"], "task": "detect", "mode": "train",
        "device": "cpu", "plots": False, "val": False, "verbose": False, "amp": False,
    }
    return get_cfg(DEFAULT_CFG, overrides)


def build_model(weights_location: str, names: dict[int, str], args):
    """A DetectionModel of the base architecture with ``len(names)`` classes; matching base weights are loaded."""
    from ultralytics.nn.tasks import DetectionModel, load_checkpoint

    weights = None
    cfg = weights_location
    if weights_location.endswith(".pt"):
        weights, _ = load_checkpoint(weights_location)
        cfg = weights.yaml
    model = DetectionModel(cfg, nc=len(names), verbose=False)
    if weights is not None:
        model.load(weights, verbose=False)
    model.nc, model.names, model.args = len(names), dict(names), args
    for name, parameter in model.named_parameters():
        parameter.requires_grad = ".dfl" not in name  # ultralytics keeps the DFL projection fixed
    return model


def save_ultralytics_checkpoint(model, path: str, args, metrics: dict[str, Any]) -> None:
    """Write ``model`` the way ultralytics' trainer writes best.pt, so ``YOLO(path)`` loads it."""
    import torch
    from ultralytics import __version__

    snapshot = deepcopy(model).half()
    snapshot.criterion = None
    for value in snapshot.state_dict().values():
        if value.is_floating_point():
            torch.nan_to_num_(value)
    temporary = f"{path}.{os.getpid()}.tmp"
    torch.save({"epoch": -1, "best_fitness": metrics.get("fitness"), "model": snapshot, "ema": None,
                "updates": None, "optimizer": None, "train_args": vars(args), "train_metrics": metrics,
                "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "version": __version__}, temporary)
    os.replace(temporary, path)


def validation_gt(dataset) -> dict[str, Any]:
    """COCO ground truth (xywh pixels of the original images) from the val dataset's labels."""
    from PIL import Image
    from ultralytics.data.utils import exif_size

    images, annotations = [], []
    for index, label in enumerate(dataset.labels):
        with Image.open(label["im_file"]) as image:  # rect batching dropped the labels' "shape"
            width, height = exif_size(image)
        images.append({"id": index, "width": int(width), "height": int(height)})
        for cls, (cx, cy, w, h) in zip(label["cls"].reshape(-1), label["bboxes"].reshape(-1, 4)):
            box = [float((cx - w / 2) * width), float((cy - h / 2) * height), float(w * width), float(h * height)]
            annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": int(cls),
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
    categories = [{"id": int(i), "name": str(n)} for i, n in dataset.data["names"].items()]
    return {"images": images, "annotations": annotations, "categories": categories}


def validate(model, loader, gt: dict[str, Any], index_of: dict[str, int], device: Any = "cpu") -> dict[str, float]:
    """mAP50 and mAP50-95 of ``model`` (eval mode) on the val loader, by ``mleval.evaluation``."""
    import torch
    from ultralytics.utils import nms, ops

    from mleval.evaluation import coco_evaluate

    model.eval()
    results = []
    with torch.inference_mode():
        for batch in loader:
            images = batch["img"].to(device).float() / 255
            outputs = nms.non_max_suppression(model(images), 0.001, 0.7, multi_label=True, max_det=300)
            for k, detections in enumerate(outputs):
                detections = detections.cpu()
                boxes = ops.scale_boxes(images.shape[2:], detections[:, :4].clone(), batch["ori_shape"][k],
                                        ratio_pad=batch["ratio_pad"][k])
                image_id = index_of[batch["im_file"][k]]
                for (x1, y1, x2, y2), score, cls in zip(boxes.tolist(), detections[:, 4].tolist(),
                                                        detections[:, 5].tolist()):
                    results.append({"image_id": image_id, "category_id": int(cls), "score": float(score),
                                    "bbox": [x1, y1, x2 - x1, y2 - y1]})
    if not results or not gt["annotations"]:
        return {"mAP50": 0.0, "mAP50_95": 0.0}
    stats = coco_evaluate(gt, results).stats
    return {"mAP50": max(float(stats[1]), 0.0), "mAP50_95": max(float(stats[0]), 0.0)}


class _Reporter:
    """Rank 0's link to the catalog: progress, the per-epoch metrics list, metric rows, log lines."""

    def __init__(self, workspace: WorkspaceAddress, job_id: str, result_model_id: str, dataset_id: str):
        self.ws = workspace.open()
        self.job_id, self.model_id, self.dataset_id = job_id, result_model_id, dataset_id
        self._last_check = 0.0
        self._cancelled = False

    def log(self, line: str) -> None:
        self.ws.catalog.append_log("training_jobs", self.job_id, line)

    def cancelled(self, *, force: bool = False) -> bool:
        now = time.monotonic()
        if not self._cancelled and (force or now - self._last_check >= CANCEL_CHECK_S):
            self._last_check = now
            self._cancelled = self.ws.catalog.get("training_jobs", self.job_id)["status"] != "running"
        return self._cancelled

    def metadata(self) -> dict[str, Any]:
        value = self.ws.catalog.get("training_jobs", self.job_id)["metadata"]
        return (json.loads(value) if isinstance(value, str) else value) or {}

    def note_resume(self, epoch: int) -> None:
        metadata = self.metadata()
        metadata["resumed_from_epochs"] = [*metadata.get("resumed_from_epochs", []), epoch]
        self.ws.catalog.update("training_jobs", self.job_id, {"metadata": metadata})
        self.log(f"resumed from the checkpoint of epoch {epoch} after a worker failure" if epoch else
                 "restarted from the first epoch after a worker failure (no checkpoint was registered yet)")

    def save_timings(self, totals: dict[str, float]) -> None:
        metadata = self.metadata()
        metadata["worker_timings"] = {k: round(v, 3) for k, v in totals.items()}
        self.ws.catalog.update("training_jobs", self.job_id, {"metadata": metadata})

    def epoch_done(self, row: dict[str, Any], epochs: int) -> None:
        from mleval.catalog.catalog import utc_now

        metadata = self.metadata()
        kept = [r for r in metadata.get("epochs", []) if r["epoch"] < row["epoch"]]  # a resumed run redoes epochs
        metadata["epochs"] = [*kept, row]
        progress = round(100.0 * row["epoch"] / epochs, 2)
        self.ws.catalog.update("training_jobs", self.job_id, {"metadata": metadata, "progress_percentage": progress})
        now = utc_now()
        extra = json.dumps({"training_job_id": self.job_id, "epoch": row["epoch"], "split": "validation"})
        self.ws.catalog.append_rows("performance_metrics", [
            {"model_id": self.model_id, "dataset_id": self.dataset_id, "metric_type": metric,
             "metric_value": row[key], "threshold": threshold, "evaluation_timestamp": now, "metadata": extra}
            for metric, key, threshold in (("mAP50", "mAP50", 0.5), ("mAP50_95", "mAP50_95", None))
        ])
        losses = " ".join(f"{k}={row[k]:.4f}" for k in row if k.startswith("train/"))
        self.log(f"epoch {row['epoch']}/{epochs}: mAP50={row['mAP50']:.4f} mAP50-95={row['mAP50_95']:.4f} "
                 f"{losses} lr={row['lr']:.6f} ({row['epoch_s']:.1f} s)")


class _Stopwatch:
    """Seconds spent per phase of rank 0's loop (``with watch("validation"): ...``), kept in the job's
    metadata as ``worker_timings`` so a run shows where its time went."""

    def __init__(self):
        self.totals: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.totals[phase] = self.totals.get(phase, 0.0) + time.perf_counter() - started


def _agree(flag: bool, world: int) -> bool:
    """Rank 0's decision, shared with every rank (a collective: all ranks must call it together)."""
    if world == 1:
        return flag
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([1 if flag else 0])
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def _gather(value: Any, world: int) -> list[Any]:
    if world == 1:
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * world
    dist.all_gather_object(values, value)
    return values


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function (see the module docstring)."""
    from mleval.models.loading import prepare_ultralytics

    prepare_ultralytics()
    import ray.train
    import torch
    from ray.train.torch import prepare_model
    from ultralytics.data.build import build_dataloader, build_yolo_dataset
    from ultralytics.engine.trainer import BaseTrainer
    from ultralytics.utils.torch_utils import ModelEMA, init_seeds, unwrap_model

    entered = time.time()
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    watch = _Stopwatch()
    # From the driver's trainer.fit() to this worker running: Ray Train's worker group and process group.
    watch.totals["worker_start"] = max(entered - config.get("fit_started_unix", entered), 0.0)
    setup_started = time.perf_counter()
    torch.set_num_threads(config["threads"])
    hp = config["hyperparameters"]
    args = ultralytics_args(hp)
    names = {int(k): v for k, v in config["names"].items()}
    data = {"names": names, "nc": len(names), "channels": 3, "train": config["train_path"], "val": config["val_path"]}
    init_seeds(hp["seed"] + 1 + rank, deterministic=True)
    reporter = _Reporter(config["workspace"], config["job_id"], config["result_model_id"],
                         config["dataset_id"]) if rank == 0 else None

    model = build_model(config["weights_location"], names, args)
    stride = max(int(model.stride.max()), 32)
    batch_per_worker = max(hp["batch_size"] // world, 1)
    dataset = build_yolo_dataset(args, config["train_path"], batch_per_worker, data, mode="train", stride=stride)
    loader = build_dataloader(dataset, batch_per_worker, config["loader_workers"], shuffle=True,
                              rank=rank if world > 1 else -1, pin_memory=False, device="cpu")
    ema = ModelEMA(model)
    epochs, batches = hp["epochs"], len(loader)
    accumulate = max(round(NOMINAL_BATCH / hp["batch_size"]), 1)
    weight_decay = hp["weight_decay"] * hp["batch_size"] * accumulate / NOMINAL_BATCH
    accumulate = min(accumulate, batches * epochs)
    optimizer = BaseTrainer.build_optimizer(SimpleNamespace(args=args, data=data), model, name=hp["optimizer"],
                                            lr=hp["learning_rate"], momentum=args.momentum, decay=weight_decay)

    def lr_factor(epoch: float) -> float:
        return max(1 - epoch / epochs, 0) * (1.0 - args.lrf) + args.lrf

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lr_factor)
    start_epoch, best_fitness, best_epoch = 0, -1.0, 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        ema.ema.load_state_dict(state["ema"])
        ema.updates = state["updates"]
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, best_fitness, best_epoch = state["epoch"], state["best_fitness"], state["best_epoch"]
        if reporter:
            reporter.note_resume(start_epoch)
    elif reporter and reporter.metadata().get("epochs"):
        reporter.note_resume(0)  # a replaced worker group, but no checkpoint was registered before the failure
    scheduler.last_epoch = start_epoch - 1
    device = ray.train.torch.get_device()
    train_model = prepare_model(model) if world > 1 else model.to(device)
    ema.ema.to(device)

    workers = _gather((rank, os.getpid(), socket.gethostname()), world)
    val_loader = gt = index_of = None
    if rank == 0:
        val_set = build_yolo_dataset(args, config["val_path"], batch_per_worker * 2, data, mode="val", rect=True,
                                     stride=stride)
        val_loader = build_dataloader(val_set, batch_per_worker * 2, 0, shuffle=False, pin_memory=False,
                                      device="cpu")
        gt = validation_gt(val_set)
        index_of = {label["im_file"]: i for i, label in enumerate(val_set.labels)}
        reporter.log("workers: " + ", ".join(f"rank {r} pid {pid} on {host}" for r, pid, host in workers))
        reporter.log(f"rank 0 of {world}: {len(dataset)} training images ({batch_per_worker} per worker batch), "
                     f"{len(val_set)} validation images, {batches} batches per epoch, accumulate {accumulate}")

    watch.totals["setup"] = time.perf_counter() - setup_started
    warmup = round(min(hp["warmup_epochs"], max(epochs - 1, 0)) * batches) if hp["warmup_epochs"] > 0 else 0
    last_step = start_epoch * batches - 1 if start_epoch else -1
    mosaic_closed = hp["mosaic"] == 0 or hp["close_mosaic"] == 0
    last_checkpoint: float | None = None
    try:
        for epoch in range(start_epoch, epochs):
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": ultralytics' order
                scheduler.step()
            train_model.train()
            if world > 1:
                loader.sampler.set_epoch(epoch)
            if not mosaic_closed and epoch >= epochs - hp["close_mosaic"]:  # ultralytics' close_mosaic
                mosaic_closed = True
                dataset.close_mosaic(hyp=args)
                loader.reset()
            totals: dict[str, float] = {}
            stop = False
            for i, batch in enumerate(loader):
                step = i + batches * epoch
                if warmup and step <= warmup:
                    accumulate_now = max(1, round(_interp(step, warmup, 1, accumulate)))
                    for group in optimizer.param_groups:
                        start_lr = args.warmup_bias_lr if group.get("param_group") == "bias" else 0.0
                        group["lr"] = _interp(step, warmup, start_lr, group["initial_lr"] * lr_factor(epoch))
                        if "momentum" in group:
                            group["momentum"] = _interp(step, warmup, args.warmup_momentum, args.momentum)
                else:
                    accumulate_now = accumulate
                batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
                batch["img"] = batch["img"].float() / 255
                loss, items = train_model(batch)
                loss = loss.sum() * world  # DDP averages gradients; ultralytics' losses are per-rank sums
                loss.backward()
                items = items if isinstance(items, dict) else dict(zip(("box", "cls", "dfl"), items))
                for key, value in items.items():
                    totals[key] = (totals.get(key, 0.0) * i + float(value)) / (i + 1)
                if step - last_step >= accumulate_now:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
                    optimizer.step()
                    optimizer.zero_grad()
                    ema.update(unwrap_model(train_model))
                    last_step = step
                if (world == 1 or i % CANCEL_CHECK_BATCHES == 0) and _agree(bool(reporter and reporter.cancelled()), world):
                    stop = True
                    break
            if stop:
                if reporter:
                    reporter.log(f"stopped in epoch {epoch + 1}: the job was cancelled")
                return
            lr = optimizer.param_groups[0]["lr"]
            metrics: dict[str, Any] = {"epoch": epoch + 1, "lr": lr,
                                       **{f"train/{k.removesuffix('_loss')}_loss": v for k, v in totals.items()}}
            improved = False
            if rank == 0:
                watch.totals["train"] = watch.totals.get("train", 0.0) + time.perf_counter() - started
                with watch("validation"):
                    metrics.update(validate(ema.ema, val_loader, gt, index_of, device))
                metrics["epoch_s"] = round(time.perf_counter() - started, 3)
                improved = metrics["mAP50_95"] > best_fitness
                if improved:
                    best_fitness, best_epoch = metrics["mAP50_95"], epoch + 1
                    with watch("best_weights"):
                        save_ultralytics_checkpoint(ema.ema, config["best_path"], args,
                                                    {**metrics, "fitness": best_fitness})
                with watch("catalog_reports"):
                    reporter.epoch_done(metrics, epochs)
            patience_over = epoch + 1 - best_epoch >= hp["patience"] if rank == 0 else False
            with watch("catalog_reports"):
                cancelled = bool(reporter and reporter.cancelled(force=True))
            due = last_checkpoint is None or time.monotonic() - last_checkpoint >= CHECKPOINT_INTERVAL_S
            with watch("ray_checkpoints"), tempfile.TemporaryDirectory() as folder:
                if rank == 0 and due:
                    last_checkpoint = time.monotonic()
                    torch.save({"epoch": epoch + 1, "model": unwrap_model(train_model).state_dict(),
                                "ema": ema.ema.state_dict(), "updates": ema.updates, "optimizer": optimizer.state_dict(),
                                "best_fitness": best_fitness, "best_epoch": best_epoch}, os.path.join(folder, STATE_FILE))
                saved = ray.train.Checkpoint.from_directory(folder) if rank == 0 and due else None
                ray.train.report({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, checkpoint=saved)
            if _agree(cancelled, world):
                if reporter:
                    reporter.log(f"stopped after epoch {epoch + 1}: the job was cancelled")
                return
            if _agree(patience_over, world):
                if reporter:
                    reporter.log(f"early stop after epoch {epoch + 1}: no mAP50-95 improvement for {hp['patience']} "
                                 f"epochs (best {best_fitness:.4f} at epoch {best_epoch})")
                return
    finally:
        if reporter:
            reporter.save_timings(watch.totals)


def _interp(x: float, end: float, start_value: float, end_value: float) -> float:
    """Linear interpolation from ``start_value`` at 0 to ``end_value`` at ``end`` (np.interp on [0, end])."""
    if end <= 0:
        return end_value
    t = min(max(x / end, 0.0), 1.0)
    return float(start_value + (end_value - start_value) * t)

