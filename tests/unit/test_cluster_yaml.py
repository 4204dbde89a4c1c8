"""cluster.yaml: valid for Ray's cluster launcher (its own schema and checks, offline) and in step
with the project (Ray and Python of the image, torch pins, the installed checkout)."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def _prepared(config: dict) -> dict:
    """What `ray up` checks before it talks to the cloud: defaults merged, then Ray's JSON schema and rules."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_ray_accepts_the_config(config):
    prepared = _prepared(config)
    assert prepared["provider"]["type"] == "aws"
    assert prepared["available_node_types"][prepared["head_node_type"]]["max_workers"] == 0


def test_ray_would_refuse_a_broken_copy(config):
    import jsonschema

    fractional_gpu = copy.deepcopy(config)
    fractional_gpu["available_node_types"]["gpu"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError, match="0.5 is not of type 'integer'"):
        _prepared(fractional_gpu)
    unknown_head = {**copy.deepcopy(config), "head_node_type": "missing"}
    with pytest.raises(ValueError, match="head_node_type"):
        _prepared(unknown_head)


def test_the_head_has_no_gpu_and_the_workers_autoscale_from_zero(config):
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert "GPU" not in head["resources"] and head["resources"]["CPU"] >= 1
    assert workers and all(w["resources"]["GPU"] >= 1 and w["min_workers"] == 0 for w in workers)
    assert max(w["max_workers"] for w in workers) <= config["max_workers"]


def test_the_images_carry_this_ray_and_python(config):
    import ray

    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    for key in ("head_image", "worker_image"):
        image = config["docker"][key]
        assert re.fullmatch(rf"rayproject/ray:{re.escape(ray.__version__)}-{python}-(cpu|gpu)", image), (
            f"docker.{key} is {image!r}, but this project runs Ray {ray.__version__} on {python}: the cluster "
            "and the machine running `ray up` need the same Ray and Python; update the image tag.")


def test_the_nodes_install_the_pinned_torch_and_the_mounted_checkout(config):
    pins = re.search(r"^TORCH_PINS := (.+)$", (REPO / "Makefile").read_text(), re.M).group(1).split()
    commands = " ; ".join(config["setup_commands"])
    assert all(pin in commands for pin in pins), f"setup_commands should install {pins} (the Makefile's pins)"
    [(remote, local)] = config["file_mounts"].items()
    assert local == "." and f"pip install -q {remote}" in commands
