"""Ray Data on a three-node cluster on this machine (``ray.cluster_utils.Cluster``), one node lost mid-run.

A head and two worker nodes of one CPU each, one Redis budget of 1,200 requests/minute, 3,000 rows;
3 s in, the worker node holding most actors is removed. Every row must come back exactly once with
the vector a single process gets, and the budget must hold on the endpoint's own clock. The cluster
runs in a child process: this session's other Ray tests use a local ``ray.init``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray.data", reason="the ray extra is not installed")

from ..conftest import RedisServer
from ..fake_endpoint import expected_vector, fake_endpoint, max_in_window

ROWS = 3_000
RPM = 1_200
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, threading, time
import numpy as np
import ray, ray.data
from ray.cluster_utils import Cluster
from ray._private.state import available_resources_per_node  # the state API needs a dashboard
from hf_infer_core import InferenceEndpoint
from hf_infer_core.ray import embed_dataset

url, redis_url, rows, rpm, out_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
# The head holds no CPU, so every actor runs on a worker node that can be lost.
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
ray.data.DataContext.get_current().enable_progress_bars = False

removed = {}

def remove_busiest_worker():
    time.sleep(3.0)
    # Actors hold 0.5 CPU each: the node with the least CPU free holds the most of them.
    free = {node_id: res.get("CPU", 0.0) for node_id, res in available_resources_per_node().items()}
    victim = min(workers, key=lambda node: free.get(node.node_id, 1.0))
    removed["actors"] = round((1.0 - free.get(victim.node_id, 1.0)) / 0.5)
    cluster.remove_node(victim)
    removed["at"] = time.monotonic()

ds = ray.data.from_items([{"id": i, "text": f"row {i}: a text of the cluster test"} for i in range(rows)], override_num_blocks=30)
endpoint = InferenceEndpoint.from_url(url, "k", requests_per_minute=rpm)
out = embed_dataset(ds, endpoint, concurrency=2, rate_limit_backend=redis_url, batch_size=8, max_concurrency=2)
killer = threading.Thread(target=remove_busiest_worker, daemon=True)
killer.start()
table = out.to_pandas()
killer.join()
np.save(out_path + ".npy", np.stack(table.sort_values("id")["embedding"].to_numpy()))
with open(out_path + ".json", "w") as report:  # not stdout: Ray's own processes print there too
    json.dump({"ids": sorted(int(i) for i in table["id"]), "removed": removed}, report)
ray.shutdown()
cluster.shutdown()
"""


@pytest.mark.slow
def test_a_three_node_cluster_that_loses_a_node_embeds_every_row_once_within_the_budget(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    out = tmp_path / "result"
    with fake_endpoint() as server:
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT, server.embed_url, redis_server.url, str(ROWS), str(RPM), str(out)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
            check=False,
        )
        log = server.log
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(Path(f"{out}.json").read_text())
    assert report["removed"]["actors"] >= 1, "the removed node held an actor"
    assert report["ids"] == list(range(ROWS))  # every row exactly once
    expected = np.array([expected_vector(f"row {i}: a text of the cluster test") for i in range(ROWS)], np.float32)
    assert np.array_equal(np.load(f"{out}.npy"), expected)  # the single-process vectors
    times = sorted(entry.at for entry in log)
    # 1,200/min is one request per 50 ms: 201 in any closed 10 s (a burst of one), and 100 ms of
    # slack for the delay between a slot and the request's arrival under a cluster's load.
    assert max_in_window(times, 10.0) <= math.floor((10.0 + 0.1) / 0.05) + 1
    print(f"cluster: {len(log)} requests, {max_in_window(times, 10.0)} in the busiest 10 s, {report['removed']}")
