"""A handle on a long-running job, readable from any process attached to the workspace."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mleval.core.enums import JobStatus
from mleval.core.errors import MlevalError

if TYPE_CHECKING:
    from mleval.workspace import Workspace

TERMINAL = (JobStatus.COMPLETED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)


class JobFailedError(MlevalError):
    """The job ended as failed; the message carries the end of its logs."""


class JobHandle:
    """``.status``, ``.progress`` (0-100), ``.logs``, ``.wait()``, ``.cancel()`` of a catalog job row."""

    def __init__(self, ws: Workspace, table: str, job_id: str, runner: Any = None):
        self._ws = ws
        self.table = table
        self.id = str(job_id)
        self._runner = runner  # the Ray ObjectRef of the driver task, when started here

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

    def wait(self, timeout: float | None = None, *, poll_s: float = 0.5) -> JobHandle:
        """Block until the job ends. Raises :class:`JobFailedError` if it failed, TimeoutError on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (record := self.record)["status"] not in TERMINAL:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} still {record['status']} at "
                                   f"{record['progress_percentage']:.0f}% after {timeout} s.")
            self._raise_if_runner_died()
            time.sleep(poll_s)
        if record["status"] == JobStatus.FAILED.value:
            tail = "\n".join((record["execution_logs"] or "").splitlines()[-8:])
            raise JobFailedError(f"job {self.id} failed. Last log lines:\n{tail}")
        return self

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
