"""mleval on a two-node Ray cluster (two raylets on this machine, ``multinode_scenario.py`` in its
own process): training, batch inference and serving spread over both nodes, their results the
same as on one node, and one process alone holding the catalog file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.conftest import REPO
from tests.integration.multinode_scenario import RESULT_PREFIX, SERVE_CONF

pytestmark = pytest.mark.slow
SCENARIO_TIMEOUT_S = 480


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("multinode")
    script = REPO / "tests" / "integration" / "multinode_scenario.py"
    process = subprocess.Popen([sys.executable, str(script), str(workdir)], cwd=REPO, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = process.communicate(timeout=SCENARIO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.terminate()  # it stops its two nodes on SIGTERM
        stdout, stderr = process.communicate(timeout=120)
        stderr = f"(stopped after {SCENARIO_TIMEOUT_S} s)\n{stderr}"
    results = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if process.returncode != 0 or not results:
        pytest.fail(f"the multi-node scenario exited with {process.returncode} and no result; its stderr ends:\n"
                    f"{stderr[-8000:]}")
    result = json.loads(results[-1][len(RESULT_PREFIX):])
    print(f"\nmulti-node scenario: {result['wall_s']} s; phases (s): {result['phases_s']}")
    return result


def _short(node_ids) -> list[str]:
    return sorted(n[:8] if n else repr(n) for n in node_ids)


def test_the_cluster_has_two_nodes_and_the_driver_is_on_the_head(scenario):
    nodes = scenario["nodes"]
    assert sorted(nodes.values()) == [["node_a"], ["node_b"]], nodes
    assert nodes[scenario["driver_node"]] == ["node_a"]


def test_two_training_workers_run_one_per_node_and_register_a_model(scenario):
    train = scenario["train"]
    assert train["status"] == "completed", train["logs"]
    assert "placement SPREAD" in train["logs"]
    rank_nodes = train["rank_nodes"]
    assert set(rank_nodes) == {"0", "1"}, train["logs"]
    assert set(rank_nodes.values()) == set(scenario["nodes"]), f"ranks on {_short(rank_nodes.values())}"
    assert train["epochs"] == [1]
    model = train["model"]
    assert model["training_status"] == "trained" and model["name"] == "shapes-multinode"
    assert model["model_path"].startswith("sha256/") and model["blob_exists"]


def test_batch_inference_uses_a_predictor_on_each_node_and_matches_a_one_node_run(scenario):
    spread, single = scenario["infer_spread"], scenario["infer_single"]
    assert spread["status"] == single["status"] == "completed", (spread["logs"], single["logs"])
    assert sorted(spread["actor_nodes"]) == sorted(scenario["nodes"]), _short(spread["actor_nodes"])
    assert len(single["actor_nodes"]) == 1
    assert len(spread["predictions"]) == len(single["predictions"]) == scenario["images"] == 40
    # The comparison can tell images apart: their rows differ, so a row given to the wrong image would show.
    distinct = {json.dumps([p["scores"], p["boxes_xyxy"]]) for p in single["predictions"].values()}
    assert len(distinct) >= 10 and all(p["scores"] for p in single["predictions"].values())
    differing = [image_id for image_id, row in single["predictions"].items()
                 if spread["predictions"].get(image_id) != row]
    assert differing == [], f"{len(differing)} images predicted differently across two nodes, e.g. {differing[0]}"


def _same_detections(served: dict, row: dict) -> bool:
    """The endpoint's answer (scores rounded to 5 digits, boxes to 3) against a batch row at conf >= SERVE_CONF,
    matched box by box in any order (near-tied scores may swap places between batchings)."""
    expected = [(c, s, b) for c, s, b in zip(row["class_names"], row["scores"], row["boxes_xyxy"]) if s >= SERVE_CONF]
    if len(expected) != len(served["scores"]):
        return False
    for name, score, box in zip(served["class_names"], served["scores"], served["boxes_xyxy"]):
        match = next((e for e in expected if e[0] == name and abs(e[1] - score) <= 2e-5
                      and max(abs(x - y) for x, y in zip(e[2], box)) <= 2e-3), None)
        if match is None:
            return False
        expected.remove(match)
    return True


def test_two_replicas_one_per_node_answer_http_like_batch_inference(scenario):
    serve = scenario["serve"]
    assert serve["app_status"] == "RUNNING"
    assert sorted(serve["replica_nodes"]) == sorted(scenario["nodes"]), _short(serve["replica_nodes"])
    answers = serve["answers"]
    assert [a["status"] for a in answers] == [200] * 32, [a["status"] for a in answers]
    assert {a["node_id"] for a in answers} == set(scenario["nodes"]), \
        f"answers came from nodes {_short({a['node_id'] for a in answers})}"
    assert {a["model"] for a in answers} == {"shapes-multinode"}
    rows = scenario["infer_single"]["predictions"]
    wrong = [(a["image_id"], a["node_id"][:8]) for a in answers if not _same_detections(a, rows[a["image_id"]])]
    assert wrong == [] and all(a["scores"] for a in answers), f"answers unlike batch inference: {wrong}"


def test_one_catalog_owner_alone_holds_the_catalog_file(scenario):
    catalog = scenario["catalog"]
    owners = catalog["owners"]
    assert len(owners) == 1, owners
    assert owners[0]["pid"] == catalog["owner_pid"] == scenario["owner_pid_at_start"]  # never restarted
    assert catalog["open_by_pids"] == [catalog["owner_pid"]]
    assert catalog["direct_open"].startswith("refused: "), catalog["direct_open"]  # CatalogBusyError


def test_catalog_owners_start_on_the_node_of_the_process_that_opened_the_catalog(scenario):
    catalog = scenario["catalog"]
    nodes = [catalog["owners"][0]["node_id"], *catalog["more_owner_nodes"]]
    assert len(nodes) == 6
    elsewhere = [str(n)[:8] for n in nodes if n != scenario["driver_node"]]
    assert elsewhere == [], f"{len(elsewhere)} of 6 catalog owners started away from the driver's node " \
                            f"{scenario['driver_node'][:8]}, whose disk holds the file"
