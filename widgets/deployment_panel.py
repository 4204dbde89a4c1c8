"""``DeploymentPanel(ws)``: deploy a model version, make an API key, call the endpoint over HTTP
with a test image, read its usage figures and roll it back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from html import escape
from typing import TYPE_CHECKING, Any

import ipywidgets as w
from PIL import Image

from mleval.catalog.rules import check_version
from mleval.core.detections import Detections
from mleval.core.errors import MlevalError, ValidationError
from ._render import Palette, boxes_png

if TYPE_CHECKING:
    from mleval.deploy import DeploymentHandle
    from mleval.workspace import Workspace

RESULT_MIN_PX = 320  # small test images are enlarged so their boxes can be seen
IMAGE_CHOICES = 200  # workspace images offered as test images
ERROR_STYLE = "color:#d62728"


class DeploymentPanel(w.VBox):
    """Deploy, call and watch one deployment of ``ws`` from the notebook.

    *Deploy* serves the chosen model as the given semantic version (``ws.deploy(model, name=,
    version=, **deploy_options)``, e.g. ``port=``, ``imgsz=``, ``conf=``, ``rate_limit=``); a new
    version of a running name replaces it in place. *Create API key* shows the key once (only its
    hash is stored) and keeps it in the panel's key field for test requests. *Send test image*
    posts a workspace image, or the uploaded file, to ``POST {url}/predict`` over HTTP and draws
    the detections it returns. *Refresh usage* shows ``dep.metrics()``; *Roll back* serves the
    previous version again.

    Deploying, rolling back and test requests run in a background thread, so the kernel stays
    free; the status line says what is running, and the buttons wait until it ends. ``wait()``
    blocks until then (for scripts); each of those actions also returns a ``Future``.
    """

    def __init__(self, ws: Workspace, *, model: Any = None, deployment: DeploymentHandle | str | None = None,
                 timeout_s: float = 60.0, **deploy_options: Any):
        self._ws = ws
        self.deploy_options = dict(deploy_options)
        self.timeout_s = float(timeout_s)
        self.deployment: DeploymentHandle | None = None
        self.last_response: dict[str, Any] | None = None  # the JSON of the last successful test request
        self.usage_summary: dict[str, Any] | None = None
        self._task: Future | None = None
        self._task_name = ""
        self._quiet = False
        self._palette = Palette()

        self.model = w.Dropdown(description="Model", options=[])
        self.name = w.Text(description="Name", placeholder="default: the model's name")
        self.version = w.Text(value="1.0.0", description="Version", placeholder="MAJOR.MINOR.PATCH")
        self.deploy_button = w.Button(description="Deploy", button_style="primary", icon="rocket")
        self.deployments = w.Dropdown(description="Deployment", options=[])
        self.refresh_button = w.Button(description="Refresh lists", icon="refresh")
        self.info = w.HTML()
        self.key_name = w.Text(value="notebook", description="Key name")
        self.key_button = w.Button(description="Create API key", icon="key")
        self.new_key = w.HTML()
        self.api_key = w.Password(description="API key", placeholder="create one above, or paste a key")
        self.image = w.Dropdown(description="Image", options=[])
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Or upload")
        self.send_button = w.Button(description="Send test image", icon="paper-plane")
        self.result = w.HTML()
        self.result_image = w.Image(format="png", layout=w.Layout(display="none", max_width="480px"))
        self.usage_button = w.Button(description="Refresh usage", icon="bar-chart")
        self.usage = w.HTML()
        self.rollback_button = w.Button(description="Roll back", button_style="warning", icon="undo",
                                        tooltip="serve the version that served before this one")
        self.status = w.HTML()
        self._actions = (self.deploy_button, self.send_button, self.rollback_button)

        self.deploy_button.on_click(lambda _: self.deploy())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.key_button.on_click(lambda _: self.create_api_key())
        self.send_button.on_click(lambda _: self.send_test_image())
        self.usage_button.on_click(lambda _: self.refresh_usage())
        self.rollback_button.on_click(lambda _: self.rollback())
        self.deployments.observe(self._on_deployment_chosen, names="value")
        super().__init__([
            w.HTML("<b>Deploy</b>"),
            w.HBox([self.model, self.name, self.version, self.deploy_button]),
            w.HBox([self.deployments, self.refresh_button]),
            self.status,
            self.info,
            w.HTML("<b>API key</b>"),
            w.HBox([self.key_name, self.key_button, self.api_key]),
            self.new_key,
            w.HTML("<b>Try it</b>"),
            w.HBox([self.image, self.upload, self.send_button]),
            self.result,
            self.result_image,
            w.HTML("<b>Usage</b>"),
            w.HBox([self.usage_button, self.rollback_button]),
            self.usage,
        ])
        self.refresh()
        if model is not None:
            name = ws.models.get(model).name
            if name not in self.model.options:
                raise ValidationError("deployment.model_servable", f"{name} is a promptable segmenter and cannot be "
                                      "served; pass a detector or a YOLO -seg model (see ws.models.list()).")
            self.model.value = name
        if deployment is not None:
            self.show(deployment)
        else:
            self._show_info()

    # -- lists and the shown deployment ----------------------------------------------------
    def refresh(self) -> None:
        """Reload the models, deployments and images offered (e.g. after training a model)."""
        models = [m.name for m in self._ws.models.list() if not m.is_promptable]
        deployments = list(dict.fromkeys(r.name for r in self._ws.deployments.list()))
        images = [(f"{r.filename} ({r.dataset_split})", r.id) for r in self._ws.images.list(limit=IMAGE_CHOICES)]
        self._quiet = True  # new options select their first item on the way: not a user's choice
        try:
            _set_options(self.model, models, fallback="yolo11n" if "yolo11n" in models else None)
            _set_options(self.deployments, deployments)
            _set_options(self.image, images, fallback=images[0][1] if images else None)
        finally:
            self._quiet = False

    def show(self, deployment: DeploymentHandle | str) -> None:
        """Show ``deployment`` (a handle, or a name: its active version) and act on it."""
        handle = self._ws.deployments.get(deployment) if isinstance(deployment, str) else deployment
        if self.deployment is None or self.deployment.name != handle.name:
            self.api_key.value, self.new_key.value = "", ""  # keys belong to one deployment name
        self.deployment = handle
        self._quiet = True
        try:
            if handle.name not in self.deployments.options:
                self.deployments.options = [*self.deployments.options, handle.name]
            self.deployments.value = handle.name
        finally:
            self._quiet = False
        self.usage_summary = None
        self.usage.value = ""
        self._show_info()

    def _on_deployment_chosen(self, change: dict) -> None:
        name = change["new"]
        if self._quiet or name is None:
            return
        if self.deployment is None or self.deployment.name != name:
            self.show(name)

    def _show_info(self) -> None:
        if self.deployment is None:
            self.info.value = "No deployment yet: deploy a model above, or pick a deployment."
            return
        record = self.deployment.record
        versions = [(r.version, r.status) for r in reversed(self._ws.deployments.list()) if r.name == record.name]
        listed = ", ".join(f"{escape(v)} ({escape(s)})" for v, s in versions)  # in the order they were made
        url = escape(record.endpoint_url)
        self.info.value = (
            f"<b>{escape(record.name)}</b> version <b>{escape(record.version)}</b>: <b>{escape(record.status)}</b>"
            f" &middot; model {escape((record.metadata or {}).get('model_name', record.model_id))}<br>"
            f"<code>POST {url}/predict</code> &middot; <a href='{url}/docs' target='_blank'>API docs</a><br>"
            f"versions: {listed}")

    # -- actions -----------------------------------------------------------------------------
    def deploy(self) -> Future | None:
        """Deploy the chosen model as the typed version (in the background)."""
        if self.busy:
            return self._refuse_busy()
        model, version = self.model.value, self.version.value.strip()
        if model is None:
            return self._refuse("Choose a model to deploy first.")
        try:
            check_version(version)
        except ValidationError:
            return self._refuse(f"Version {escape(version)!r} is not semantic: type MAJOR.MINOR.PATCH, e.g. 1.0.0 "
                                "(a higher one for a new version of a running deployment).")
        name = self.name.value.strip() or None
        options = {**self.deploy_options, "name": name, "version": version}
        label = f"deploying {model} as {name or model} {version} (each replica loads the model first)"
        return self._start(label, lambda: self._ws.deploy(model, **options), self._deployed)

    def _deployed(self, handle: DeploymentHandle) -> str:
        self.refresh()
        self.show(handle)
        return f"{handle.name} {handle.version} serves at {handle.url}"

    def create_api_key(self) -> str | None:
        """A new key for the shown deployment: shown once, and put in the key field for test requests."""
        if self.deployment is None:
            self._say("Deploy a model or pick a deployment before making a key.", error=True)
            return None
        try:
            key = self.deployment.create_api_key(self.key_name.value.strip())
        except MlevalError as error:
            self._say(f"No key made: {escape(str(error))}", error=True)
            return None
        self.api_key.value = key
        self.new_key.value = (f"New key <b>{escape(self.key_name.value.strip())}</b>: <code>{escape(key)}</code><br>"
                              "Copy it now: it is shown only this once (only its hash is stored). "
                              "Send it as <code>Authorization: Bearer &lt;key&gt;</code>.")
        self._say(f"API key {escape(self.key_name.value.strip())!r} made for {escape(self.deployment.name)}.")
        return key

    def send_test_image(self) -> Future | None:
        """POST the uploaded file, else the chosen workspace image, to ``{url}/predict`` (in the background)."""
        if self.busy:
            return self._refuse_busy()
        if self.deployment is None:
            return self._refuse("Deploy a model or pick a deployment before sending an image.")
        key = self.api_key.value.strip()
        if not key:
            return self._refuse("The endpoint needs an API key: press Create API key, or paste one.")
        if self.upload.value:
            upload = self.upload.value[0]
            filename, data = upload["name"], bytes(upload["content"])
        elif self.image.value is not None:
            record = self._ws.images.get(self.image.value)
            filename, data = record.filename, self._ws.images.read_bytes(record)
        else:
            return self._refuse("Choose a workspace image or upload one first.")
        url = self.deployment.url + "/predict"
        return self._start(f"sending {filename} to {url}", lambda: self._post(url, key, filename, data),
                           lambda body: self._show_detections(filename, data, body))

    def _post(self, url: str, key: str, filename: str, data: bytes) -> dict[str, Any]:
        import requests

        try:
            response = requests.post(url, headers={"Authorization": f"Bearer {key}"},
                                     files={"file": (filename, data)}, timeout=self.timeout_s)
        except requests.RequestException as error:
            raise MlevalError(f"no answer from {url} ({type(error).__name__}: {error}); check that the deployment "
                              "is active (Refresh lists) and that this kernel can reach its host and port.") from None
        if response.status_code != 200:
            try:
                body = response.json()
                reason = f"{body.get('error')}: {body.get('detail')}"
            except ValueError:
                reason = response.text[:300]
            raise MlevalError(f"HTTP {response.status_code} from {url}: {reason}")
        return response.json()

    def _show_detections(self, filename: str, data: bytes, body: dict[str, Any]) -> str:
        self.last_response = body
        self.result_image.value = detections_png(data, body, self._palette.colour(body["model"]))
        self.result_image.layout.display = None
        timings = body.get("timings", {})
        self.result.value = (f"{len(body['scores'])} detections by {escape(body['model'])} "
                             f"(version {escape(body['model_version'])}) on {escape(filename)}, "
                             f"{body['image_width']}x{body['image_height']} px; "
                             f"{timings.get('total_ms', 0):.0f} ms in the replica.")
        return f"HTTP 200: {len(body['scores'])} detections"

    def refresh_usage(self) -> dict[str, Any] | None:
        """Show the shown version's usage figures (``dep.metrics()``); replicas report every second."""
        if self.deployment is None:
            self._say("Deploy a model or pick a deployment to see its usage.", error=True)
            return None
        try:
            summary = self.deployment.metrics()
        except MlevalError as error:
            self._say(f"No usage figures: {escape(str(error))}", error=True)
            return None
        self.usage_summary = summary
        self.usage.value = usage_html(summary, title=f"{self.deployment.name} {self.deployment.version}")
        return summary

    def rollback(self) -> Future | None:
        """Serve the version that served before the shown one (in the background)."""
        if self.busy:
            return self._refuse_busy()
        if self.deployment is None:
            return self._refuse("Deploy a model or pick a deployment before rolling back.")
        current = self.deployment
        return self._start(f"rolling {current.name} back from {current.version}", current.rollback,
                           self._rolled_back)

    def _rolled_back(self, handle: DeploymentHandle) -> str:
        self.show(handle)
        return f"{handle.name} serves version {handle.version} again"

    # -- background work ---------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    def wait(self, timeout_s: float | None = None) -> Any:
        """Block until the running action ends; returns its result, or raises its error."""
        if self._task is None:
            return None
        return self._task.result(timeout=timeout_s)

    def _start(self, label: str, work: Callable[[], Any], done: Callable[[Any], str]) -> Future:
        future: Future = Future()
        self._task, self._task_name = future, label
        for button in self._actions:
            button.disabled = True
        started = time.monotonic()
        self._say(f"&#8987; {escape(label)}&hellip;")

        def run() -> None:
            result, failure = None, None
            try:
                result = work()
                message = done(result)
            except Exception as error:  # noqa: BLE001 - a background thread must report, not die silently
                failure = error
                text = str(error) if isinstance(error, MlevalError) else f"{type(error).__name__}: {error}"
                self._say(f"Failed {escape(label)}: {escape(text)}", error=True)
            else:
                self._say(f"{escape(message)} ({time.monotonic() - started:.1f} s)")
            for button in self._actions:
                button.disabled = False
            # last, so whoever waits sees the panel as it ends
            if failure is None:
                future.set_result(result)
            else:
                future.set_exception(failure)

        threading.Thread(target=run, name=f"DeploymentPanel: {label}", daemon=True).start()
        return future

    def _refuse_busy(self) -> None:
        self._refuse(f"Busy {escape(self._task_name)}: wait until it ends.")

    def _refuse(self, text: str) -> None:
        self._say(text, error=True)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.value = f"<span style='{ERROR_STYLE}'>{text}</span>" if error else text


def detections_png(data: bytes, body: dict[str, Any], colour: str) -> bytes:
    """The image ``data`` with the boxes of a ``/predict`` response drawn (enlarged when small), as PNG."""
    from mleval.images.decode import decode_rgb

    picture = Image.fromarray(decode_rgb(data))  # upright, the frame of the response's boxes
    found = Detections.from_dict(body)
    boxes = [(box, f"{name} {score:.2f}", colour)
             for box, name, score in zip(found.xyxy.tolist(), found.class_names, found.scores.tolist())]
    return boxes_png(picture, boxes, min_side_px=RESULT_MIN_PX)


def usage_html(summary: dict[str, Any], *, title: str) -> str:
    """``dep.metrics()`` as a table: requests, errors, images and latency p50/p95/p99 (ms), total and per key."""
    def ms(value: Any) -> str:
        return "-" if value is None else f"{value:.1f}"

    def row(label: str, s: dict[str, Any]) -> str:
        cells = [label, s.get("requests", 0), s.get("errors", 0), s.get("images", 0),
                 ms(s.get("latency_p50_ms")), ms(s.get("latency_p95_ms")), ms(s.get("latency_p99_ms"))]
        return "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>"

    if not summary or not summary.get("requests"):
        return f"<i>{escape(title)}: no requests counted yet (replicas report about every second).</i>"
    header = "".join(f"<th>{h}</th>" for h in ("", "requests", "errors", "images", "p50 ms", "p95 ms", "p99 ms"))
    rows = [row("total", summary)] + [row(f"key {name}", s) for name, s in (summary.get("keys") or {}).items()]
    by_status = ", ".join(f"{escape(k)}: {v}" for k, v in (summary.get("by_status") or {}).items())
    return (f"<b>{escape(title)}</b><table><tr>{header}</tr>{''.join(rows)}</table>"
            f"<small>by HTTP status: {by_status}</small>")



def _set_options(dropdown: w.Dropdown, options: list, *, fallback: Any = None) -> None:
    """New options, keeping the chosen value when it is still offered (else ``fallback``)."""
    current = dropdown.value
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    if list(dropdown.options) != options:
        dropdown.options = options
    dropdown.value = current if current in values else fallback
