"""Where a model's weights come from, in order: a registered file, the framework's cache,
the framework's download when a network is reachable, else the architecture with random
weights. The choice is returned (and recorded by the caller) and the user is told."""

from __future__ import annotations

import os
import socket
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mleval.core.errors import MlevalError
from mleval.models.zoo import ZooEntry

DOWNLOAD_HOST = ("github.com", 443)


class RandomWeightsWarning(UserWarning):
    """A model runs with random weights because no pretrained file was found or downloadable."""


@dataclass(frozen=True)
class ResolvedWeights:
    source: str  # registered | cache | download | architecture
    location: str  # a file path, or the architecture config
    pretrained: bool

    def describe(self) -> str:
        return {
            "registered": f"registered weights file {self.location}",
            "cache": f"pretrained weights from the local cache ({self.location})",
            "download": f"pretrained weights downloaded to {self.location}",
            "architecture": f"architecture {self.location} with RANDOM weights (no pretrained file available)",
        }[self.source]


def cache_dirs() -> list[Path]:
    """Folders searched for pretrained weight files, first match wins."""
    folders = []
    if os.environ.get("MLEVAL_WEIGHTS_DIR"):
        folders.append(Path(os.environ["MLEVAL_WEIGHTS_DIR"]))
    folders.append(Path.home() / ".cache" / "mleval" / "weights")
    try:
        from ultralytics.utils import WEIGHTS_DIR

        folders.append(Path(WEIGHTS_DIR))
    except ImportError:  # pragma: no cover - ultralytics is a dependency
        pass
    folders.append(Path.home() / ".cache" / "torch" / "hub" / "checkpoints")
    folders.append(Path.cwd())
    return folders


@lru_cache(maxsize=1)
def network_reachable(timeout_s: float = 1.5) -> bool:
    """Whether the framework's download host answers (asked once per process, never hangs)."""
    if os.environ.get("YOLO_OFFLINE") or os.environ.get("MLEVAL_OFFLINE"):
        return False
    try:
        with socket.create_connection(DOWNLOAD_HOST, timeout=timeout_s):
            return True
    except OSError:
        return False


def resolve_weights(
    entry: ZooEntry,
    *,
    registered_path: str | None = None,
    require_pretrained: bool = False,
    allow_download: bool = True,
) -> ResolvedWeights:
    """Pick the weights for a zoo entry (or a registered file) following the module's order."""
    if registered_path is not None:
        if not os.path.exists(registered_path):
            raise MlevalError(f"the registered weights file {registered_path} is missing; register it again.")
        return ResolvedWeights("registered", registered_path, True)
    for folder in cache_dirs():
        candidate = folder / entry.weights
        if candidate.is_file():
            return ResolvedWeights("cache", str(candidate), True)
    if allow_download and network_reachable():
        path = _download(entry)
        if path is not None:
            return ResolvedWeights("download", path, True)
    if require_pretrained:
        raise MlevalError(
            f"no pretrained weights for {entry.name}: no network to download {entry.weights}, and no copy in "
            f"{', '.join(str(f) for f in cache_dirs()[:2])}. Download {entry.weights} on a machine with internet "
            f"and put it in one of those folders (or set MLEVAL_WEIGHTS_DIR), or register it with "
            f"ws.models.register(name, path, framework=..., variant=...)."
        )
    resolved = ResolvedWeights("architecture", entry.config, False)
    warnings.warn(
        f"{entry.name}: using the {resolved.describe()}. Its predictions are meaningless until it is "
        f"fine-tuned; put {entry.weights} in {cache_dirs()[1]} for the pretrained model.",
        RandomWeightsWarning,
        stacklevel=3,
    )
    return resolved


def _download(entry: ZooEntry) -> str | None:
    try:
        if entry.framework.value == "SAM2":
            return None  # sam2 publishes checkpoints on its own host; bring them with register()
        from ultralytics.utils.downloads import attempt_download_asset

        path = attempt_download_asset(entry.weights)
        return str(path) if path and os.path.exists(path) else None
    except Exception as error:  # a failed download falls back to the architecture, with a warning
        warnings.warn(f"download of {entry.weights} failed ({error}); continuing without it.", RandomWeightsWarning,
                      stacklevel=3)
        return None
