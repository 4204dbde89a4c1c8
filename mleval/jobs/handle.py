"""A handle on a long-running job, readable from any process attached to the workspace."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mleval.core.enums import JobStatus
from mleval.core.errors import MlevalError
from mleval.core.progress import Progress, ProgressOption, check_progress

if TYPE_CHECKING:
    from mleval.context import WorkspaceContext

TERMINAL = (JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)


_CAUSE_PREFIXES = ("failed: ", "runner died: ")


class JobFailedError(MlevalError):
    """The job ended as failed. ``cause`` is the error it recorded, ``log_tail`` its last log lines;
    the message carries both."""

    def __init__(self, message: str, *, job_id: str = "", cause: str | None = None, log_tail: str = ""):
        self.job_id, self.cause, self.log_tail = job_id, cause, log_tail
        super().__init__(message)

    def __reduce__(self):
        return (_rebuild_failed, (self.args[0], self.job_id, self.cause, self.log_tail))


class JobCancelledError(MlevalError):
    """The job was cancelled, so it has no result; what it stored before stopping is kept."""


def _rebuild_failed(message: str, job_id: str, cause: str | None, log_tail: str) -> JobFailedError:
    return JobFailedError(message, job_id=job_id, cause=cause, log_tail=log_tail)


def _failure(job_id: str, logs: str) -> JobFailedError:
    lines = logs.splitlines()
    tail = "\n".join(lines[-8:])
    causes = [line.split(" ", 1)[-1] for line in lines if line.split(" ", 1)[-1].startswith(_CAUSE_PREFIXES)]
    cause = causes[-1].split(": ", 1)[1] if causes else None
    head = f"job {job_id} failed: {cause}" if cause else f"job {job_id} failed"
    return JobFailedError(f"{head}. Last log lines:\n{tail}", job_id=job_id, cause=cause, log_tail=tail)


class JobHandle:
    """``.status``, ``.progress`` (0-100), ``.logs``, ``.wait()``, ``.result()``, ``.cancel()`` of a
    catalog job row."""

    def __init__(self, ws: WorkspaceContext, table: str, job_id: str, runner: Any = None,
                 on_runner_died: Callable[[], None] | None = None):
        self._ws = ws
        self.table = table
        self.id = str(job_id)
        self._runner = runner  # the Ray ObjectRef of the driver task, when started here
        # what else a driver that died without a word leaves to settle (a training job's result model)
        self._on_runner_died = on_runner_died

    @property
    def record(self) -> dict[str, Any]:
        return self._ws.catalog.get(self.table, self.id)

    @property
    def status(self) -> str:
        return self.record["status"]

    @property
    def progress(self) -> float:
        return float(self.record["progress_percentage"])

    @property
    def metrics(self):
        """Per-epoch metrics of a training job (a pyarrow Table, one row per finished epoch)."""
        if self.table != "training_jobs":
            raise MlevalError(f"job {self.id} is an inference job: per-epoch metrics belong to training jobs.")
        from mleval.jobs.training import training_metrics

        return training_metrics(self._ws, self.id)

    @property
    def logs(self) -> str:
        return self.record["execution_logs"] or ""

    @property
    def kind(self) -> str:
        return "training" if self.table == "training_jobs" else "inference"

    @property
    def lineage_kind(self) -> str:
        """What ws.lineage traces it as."""
        return f"{self.kind}_job"

    def wait(self, timeout: float | None = None, *, poll_s: float = 0.5, progress: ProgressOption = True) -> JobHandle:
        """Block until the job ends, with a progress bar (percent; for training also the epoch and the
        latest validation mAP; ``progress=False`` for none, a callable for ``progress(done, 100)``).
        Raises :class:`JobFailedError` if it failed, TimeoutError on timeout; a cancelled job returns."""
        check_progress(progress)
        deadline = None if timeout is None else time.monotonic() + timeout
        with Progress(progress, total=100, desc=f"{self.kind} job {self.id[:8]}", unit="%") as bar:
            while True:
                record = self.record
                bar.update_to(round(float(record["progress_percentage"]), 1))
                note = _progress_note(record, self.table)
                if note:
                    bar.note(note)
                if record["status"] in TERMINAL:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {self.id} still {record['status']} at "
                                       f"{record['progress_percentage']:.0f}% after {timeout} s.")
                self._raise_if_runner_died()
                time.sleep(poll_s)
        if record["status"] == JobStatus.FAILED.value:
            raise _failure(self.id, record["execution_logs"] or "")
        return self

    def result(self, timeout: float | None = None, *, progress: ProgressOption = True) -> Any:
        """Wait for the job (see :meth:`wait`) and return its natural result: the trained
        :class:`~mleval.core.records.ModelRecord` of a training job; for an inference job its
        predictions as a pyarrow Table, one row per object (``image_id``, ``object_index``,
        ``class_name``, ``score``, ``box_xyxy`` in original-image pixels). Raises
        :class:`JobFailedError` (with the job's cause and last log lines) for a failed job and
        :class:`JobCancelledError` for a cancelled one."""
        record = self.wait(timeout, progress=progress).record
        if record["status"] == JobStatus.CANCELLED.value:
            raise JobCancelledError(f"job {self.id} was cancelled, so it has no result; what it stored before "
                                    "stopping is kept (see job.logs). Start it again for a result.")
        if self.table == "training_jobs":
            return self._ws.models.get(str(record["result_model_id"]))
        from mleval.jobs.predictions import job_predictions

        return job_predictions(self._ws, self.id)

    def _raise_if_runner_died(self) -> None:
        if self._runner is None:
            return
        import ray

        ready, _ = ray.wait([self._runner], timeout=0)
        if ready:
            try:
                ray.get(ready[0])
            except Exception as error:  # the runner died without recording why: record it now
                self._ws.catalog.append_log(self.table, self.id, f"runner died: {error}")
                if self.record["status"] not in TERMINAL:
                    self._ws.catalog.update(self.table, self.id, {"status": JobStatus.FAILED.value})
                if self._on_runner_died is not None:
                    self._on_runner_died()
            self._runner = None

    def cancel(self) -> None:
        """Ask the job to stop; it ends as ``cancelled`` (work already stored is kept)."""
        status = self.status
        if status in TERMINAL:
            raise MlevalError(f"job {self.id} already ended as {status}; nothing to cancel.")
        self._ws.catalog.update(self.table, self.id, {"status": JobStatus.CANCELLED.value})
        self._ws.catalog.append_log(self.table, self.id, "cancelled by the user")

    def __repr__(self) -> str:
        record = self.record
        return f"<{self.table[:-1]} {self.id}: {record['status']} {record['progress_percentage']:.0f}%>"

    def _repr_html_(self) -> str:
        from html import escape

        record = self.record
        percent = float(record["progress_percentage"])
        lines = (record["execution_logs"] or "").splitlines()[-5:]
        note = _progress_note(record, self.table)
        details = [("status", record["status"]), ("progress", f"{percent:.0f}%" + (f" ({note})" if note else "")),
                   ("imgsz", record.get("imgsz")), ("started", record.get("start_time")),
                   ("ended", record.get("end_time"))]
        body = "".join(f"<tr><th style='text-align:left'>{escape(k)}</th><td>{escape(str(v))}</td></tr>"
                       for k, v in details if v is not None)
        bar = (f"<progress value='{percent:.1f}' max='100' style='width:16em'></progress>")
        logs = escape("\n".join(lines)) or "(no log lines yet)"
        return (f"<b>{self.kind} job {escape(self.id)}</b> {bar}<table>{body}</table>"
                f"<details><summary>last log lines (job.logs has all)</summary><pre>{logs}</pre></details>")


def _progress_note(record: dict[str, Any], table: str) -> str:
    """The epoch and latest validation mAP of a training job (empty before the first epoch)."""
    if table != "training_jobs":
        return ""
    metadata = record.get("metadata")
    metadata = (json.loads(metadata) if isinstance(metadata, str) else metadata) or {}
    epochs = metadata.get("epochs") or []
    if not epochs:
        return ""
    last = epochs[-1]
    total = (json.loads(record["hyperparameters"]) if isinstance(record["hyperparameters"], str)
             else record["hyperparameters"] or {}).get("epochs", "?")
    return f"epoch {last['epoch']}/{total} mAP50={last.get('mAP50', 0):.3f} mAP50-95={last.get('mAP50_95', 0):.3f}"
