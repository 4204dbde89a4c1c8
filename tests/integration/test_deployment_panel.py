"""The DeploymentPanel against a real Ray Serve: its buttons deploy two versions, make a key, send
test images over real HTTP, read the usage figures and roll back. One flow, since each Serve
deploy costs seconds."""

from __future__ import annotations

import io
import time

import requests

from mleval.catalog.catalog import utc_now
from tests.integration.conftest import free_port
from tests.unit.conftest import image_bytes

DEPLOY_TIMEOUT_S = 300


def _usage_counting(panel, requests_expected: int, timeout_s: float = 60) -> dict:
    """Refresh the panel's usage until it counts the requests (replicas report about every second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        summary = panel.refresh_usage()
        if summary and summary.get("requests", 0) >= requests_expected:
            return summary
        assert time.monotonic() < deadline, f"usage never counted {requests_expected} requests: {summary}"
        time.sleep(0.5)


def test_the_panel_deploys_calls_counts_and_rolls_back(ray_workspace):
    from PIL import Image
    from ray import serve

    from mleval_widgets import DeploymentPanel

    ws = ray_workspace
    serve.shutdown()  # Serve left by another module keeps its HTTP port; this test serves on its own
    [record] = ws.images.upload([("shapes.png", image_bytes(size=(96, 64), seed=3))], split="test").succeeded
    panel = DeploymentPanel(ws, port=free_port(), imgsz=64, conf=0.0, rate_limit="50/s")
    panel.name.value = "panel"
    try:
        panel.deploy_button.click()
        first = panel.wait(timeout_s=DEPLOY_TIMEOUT_S)
        assert first.status == "active" and first.url in panel.info.value
        panel.version.value = "1.1.0"
        panel.deploy_button.click()
        second = panel.wait(timeout_s=DEPLOY_TIMEOUT_S)
        assert (second.version, second.status, first.status) == ("1.1.0", "active", "inactive")
        assert "1.0.0 (inactive), 1.1.0 (active)" in panel.info.value
        assert requests.get(second.url + "/health", timeout=30).json()["version"] == "1.1.0"

        panel.key_button.click()
        assert panel.api_key.value.startswith("mlv_")
        assert panel.image.value == record.id
        panel.send_button.click()
        body = panel.wait(timeout_s=120)
        assert body["model_version"] == "1.1.0" and (body["image_width"], body["image_height"]) == (96, 64)
        assert len(body["boxes_xyxy"]) == len(body["scores"]) > 0  # conf 0: a random-weight model finds boxes
        assert f"{len(body['scores'])} detections" in panel.result.value and panel.last_response == body
        drawn = Image.open(io.BytesIO(bytes(panel.result_image.value)))
        assert drawn.size == (320, 213) and panel.result_image.layout.display is None

        usage = _usage_counting(panel, 1)
        assert usage["keys"]["notebook"]["requests"] == 1 and usage["errors"] == 0
        assert usage["latency_p50_ms"] > 0 and "key notebook" in panel.usage.value

        panel.rollback_button.click()
        back = panel.wait(timeout_s=DEPLOY_TIMEOUT_S)
        assert back.id == first.id and panel.deployment.version == "1.0.0" and second.status == "inactive"
        assert "serves version 1.0.0 again" in panel.status.value
        panel.upload.value = ({"name": "upload.png", "type": "image/png", "size": 1, "last_modified": utc_now(),
                               "content": memoryview(image_bytes(size=(80, 80), seed=4))},)
        panel.send_button.click()
        again = panel.wait(timeout_s=120)
        assert again["model_version"] == "1.0.0" and (again["image_width"], again["image_height"]) == (80, 80)
        assert _usage_counting(panel, 1)["requests"] == 1  # the figures are those of the version shown
    finally:
        if panel.deployment is not None:
            panel.deployment.delete()
        serve.shutdown()
