"""``JobMonitor(handle)``: a job's progress, status, last log lines and cancel button, kept current."""

from __future__ import annotations

import threading
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from mleval.core.errors import MlevalError
from mleval.jobs.handle import TERMINAL
from ._render import figure_png

if TYPE_CHECKING:
    import pyarrow as pa

    from mleval.jobs.handle import JobHandle

STATUS_STYLE = {"completed": "success", "failed": "danger", "cancelled": "warning", "running": "info", "queued": ""}


class JobMonitor(w.VBox):
    """Shows a :class:`JobHandle`'s row. ``refresh()`` reads it once; ``start()`` (called at once
    unless ``auto_start=False``) refreshes every ``poll_s`` seconds in a daemon thread until the job
    ends or ``stop()``, so the kernel stays free. For training jobs with per-epoch metrics
    (``handle.metrics``) it plots losses and mAP."""

    def __init__(self, handle: JobHandle, *, log_lines: int = 10, poll_s: float = 1.0, auto_start: bool = True):
        self.handle = handle
        self.log_lines = int(log_lines)
        self.poll_s = float(poll_s)
        self.record: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._plotted_epochs = -1
        self.title = w.HTML(f"<b>{escape(handle.table[:-1].replace('_', ' '))}</b> <code>{escape(handle.id)}</code>")
        self.progress = w.FloatProgress(value=0.0, min=0.0, max=100.0, description="0%")
        self.status = w.HTML()
        self.logs = w.Textarea(disabled=True, layout=w.Layout(width="100%", height="160px"))
        self.cancel_button = w.Button(description="Cancel", button_style="danger", icon="stop")
        self.message = w.HTML()
        self.plot = w.Image(format="png", layout=w.Layout(display="none", max_width="640px"))
        self.cancel_button.on_click(lambda _: self.cancel())
        super().__init__([self.title, w.HBox([self.progress, self.status, self.cancel_button]), self.logs,
                          self.message, self.plot])
        self.refresh()
        if auto_start and not self.finished:
            self.start()

    @property
    def finished(self) -> bool:
        return self.record is not None and self.record["status"] in TERMINAL

    def refresh(self) -> dict[str, Any]:
        """Read the job's row and show it; returns the row."""
        record = self.handle.record
        self.record = record
        percent = float(record["progress_percentage"])
        self.progress.value = percent
        self.progress.description = f"{percent:.0f}%"
        status = record["status"]
        self.progress.bar_style = STATUS_STYLE.get(status, "")
        self.status.value = f"<b>{escape(status)}</b>"
        lines = (record.get("execution_logs") or "").splitlines()
        self.logs.value = "\n".join(lines[-self.log_lines:])
        self.cancel_button.disabled = status in TERMINAL
        self._refresh_plot()
        return record

    def cancel(self) -> None:
        try:
            self.handle.cancel()
        except MlevalError as error:
            self.message.value = f"<span style='color:#d62728'>{escape(str(error))}</span>"
        self.refresh()

    # -- background updates --------------------------------------------------------------------
    def start(self) -> None:
        """Refresh in a daemon thread until the job ends or :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name=f"JobMonitor-{self.handle.id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5 * self.poll_s)

    def close(self) -> None:
        """Stop updating and close the widget."""
        self.stop()
        super().close()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception as error:  # noqa: BLE001 - a background thread must not die silently
                self.message.value = f"<span style='color:#d62728'>stopped updating: {escape(str(error))}</span>"
                return
            if self.finished:
                return

    # -- training metrics ----------------------------------------------------------------------
    def metrics(self) -> pa.Table | None:
        """The job's per-epoch metrics table, where the handle has one (training jobs)."""
        if getattr(self.handle, "table", "training_jobs") != "training_jobs":
            return None  # inference jobs have no per-epoch metrics
        metrics = getattr(self.handle, "metrics", None)
        if callable(metrics):
            metrics = metrics()
        return metrics

    def _refresh_plot(self) -> None:
        table = self.metrics()
        if table is None or table.num_rows == 0 or table.num_rows == self._plotted_epochs:
            return
        self._plotted_epochs = table.num_rows
        self.plot.value = metrics_png(table)
        self.plot.layout.display = None


def metrics_png(table: pa.Table) -> bytes:
    """Losses (left) and mAP (right) against epoch, as PNG bytes."""
    from matplotlib.figure import Figure

    epochs = table.column("epoch").to_pylist() if "epoch" in table.column_names else list(range(1, table.num_rows + 1))
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    losses, maps = fig.subplots(1, 2)
    for name in table.column_names:
        if "loss" in name:
            losses.plot(epochs, table.column(name).to_pylist(), label=name)
        elif name.startswith("mAP"):
            maps.plot(epochs, table.column(name).to_pylist(), marker="o", label=name)
    losses.set(xlabel="epoch", title="loss")
    maps.set(xlabel="epoch", title="mAP", ylim=(0, 1))
    for ax in (losses, maps):
        if ax.lines:
            ax.legend(fontsize="small")
    return figure_png(fig)
