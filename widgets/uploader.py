"""``Uploader(ws)``: pick files or a folder, a split and a dataset, upload, read the report."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from mleval.core.enums import DatasetSplit
from mleval.core.errors import MlevalError

if TYPE_CHECKING:
    from mleval.images.ingest import UploadReport
    from mleval.workspace import Workspace


class Uploader(w.VBox):
    """Files (browser upload) and/or a folder path on the kernel's machine -> ``ws.images.upload``.

    ``last_report`` holds the latest :class:`UploadReport`; ``on_uploaded(callback)`` is called
    with it after each upload (e.g. to refresh a Gallery).
    """

    def __init__(self, ws: Workspace, *, split: str = "train", dataset: str = ""):
        self._ws = ws
        self._callbacks: list[Any] = []
        self.last_report: UploadReport | None = None
        self.files = w.FileUpload(accept="image/*", multiple=True, description="Files")
        self.folder = w.Text(placeholder="/path/to/images (on the kernel's machine)", description="Folder")
        self.split = w.Dropdown(options=[s.value for s in DatasetSplit], value=split, description="Split")
        self.dataset = w.Text(value=dataset, placeholder="optional: created if missing", description="Dataset")
        self.upload_button = w.Button(description="Upload", button_style="primary", icon="upload")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="0 / 0")
        self.report = w.HTML()
        self.upload_button.on_click(lambda _: self.upload())
        super().__init__([w.HBox([self.files, self.folder]), w.HBox([self.split, self.dataset]),
                          w.HBox([self.upload_button, self.progress]), self.report])

    def on_uploaded(self, callback: Any) -> Any:
        self._callbacks.append(callback)
        return callback

    def _sources(self) -> list[Any]:
        # FileUpload (ipywidgets 8) gives dicts with "name" and "content" (a memoryview)
        sources: list[Any] = [(f["name"], bytes(f["content"])) for f in self.files.value]
        if self.folder.value.strip():
            sources.append(self.folder.value.strip())
        return sources

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.max = max(total, 1)
        self.progress.value = done
        self.progress.description = f"{done} / {total}"

    def upload(self) -> UploadReport | None:
        """Upload what is selected; the report (or the error) is shown in the widget."""
        sources = self._sources()
        if not sources:
            self.report.value = "<span style='color:#d62728'>Choose files or give a folder path first.</span>"
            return None
        self.upload_button.disabled = True
        self.report.value = "uploading..."
        try:
            dataset = self.dataset.value.strip() or None
            if dataset is not None:
                self._ws.datasets.get_or_create(dataset)
            report = self._ws.images.upload(sources, split=self.split.value, dataset=dataset,
                                            progress=self._on_progress)
        except MlevalError as error:
            self.report.value = f"<span style='color:#d62728'>Upload failed: {escape(str(error))}</span>"
            return None
        finally:
            self.upload_button.disabled = False
        self.last_report = report
        self.report.value = report_html(report)
        self.files.value = ()
        for callback in self._callbacks:
            callback(report)
        return report


def report_html(report: UploadReport) -> str:
    """The report as HTML: counts, then each failure with its reason and each duplicate's image id."""
    counts = (f"<b>{len(report.succeeded)} succeeded</b>, {len(report.duplicates)} duplicates, "
              f"<span style='color:{'#d62728' if report.failed else 'inherit'}'>{len(report.failed)} failed</span>")
    failed = "".join(f"<li><code>{escape(f.source)}</code>: {escape(f.reason)}</li>" for f in report.failed)
    duplicates = "".join(f"<li><code>{escape(d.source)}</code> is already image <code>{escape(d.image_id)}</code>"
                         "</li>" for d in report.duplicates)
    return (counts + (f"<p>Failed:</p><ul>{failed}</ul>" if failed else "")
            + (f"<details><summary>Duplicates</summary><ul>{duplicates}</ul></details>" if duplicates else ""))
