"""Shared test settings: no network look-ups by ultralytics, settings kept out of $HOME."""

import os
import tempfile

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(tempfile.gettempdir(), "mleval-tests-ultralytics"))

pytest_plugins = ["tests.s3_server"]
