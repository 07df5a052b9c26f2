"""A worker killed with SIGKILL while its users hold one resource of every kind: the master's
end-of-run sweep removes them all, not only the servers."""
from __future__ import annotations

import json
import re
import secrets
import signal
from pathlib import Path

import pytest
import requests
from cluster import Cluster, cli_credentials, free_port
from waiting import wait_until

from cleanup_helpers import Api, leftovers  # noqa: E402  (lists through the APIs, not cleanup.py)

HOLD_RESOURCES = str(Path(__file__).resolve().parent / "locustfiles" / "hold_resources.py")
KINDS = ("keypair", "secgroup", "volume", "floating-ip", "server")


@pytest.fixture
def cluster(tmp_path):
    started = Cluster(tmp_path, free_port(), locustfile=HOLD_RESOURCES)
    yield started
    started.kill_all()


def freeze(cloud, name: str) -> None:
    """Hold every server whose name matches in BUILD (the embedded cloud's chaos API)."""
    admin = cloud.session(admin=True)
    response = requests.post(f"{cloud.base_url}/fakecloud/chaos", timeout=10,
                             json={"rule": {"service": "compute", "kind": "freeze", "name": name}},
                             headers={"X-Auth-Token": admin.get_token()})
    assert response.status_code == 201, response.text


def held_by_tag(cloud, run_id: str) -> dict[str, set[str]]:
    """Process tag -> names of the run's volumes and floating IPs and servers (the member's view)."""
    member = Api(cloud, cloud.session())
    names = [v["name"] for v in member.get(f"{member.volume}/volumes")["volumes"]]
    names += [f["description"] for f in member.get(f"{member.network}/floatingips")["floatingips"]]
    names += [s["name"] for s in member.get(f"{member.compute}/servers")["servers"]]
    held: dict[str, set[str]] = {}
    for name in names:
        found = re.match(rf"ns-{run_id}-([0-9a-f]{{4}})\d+-\d+-", name or "")
        if found:
            held.setdefault(found.group(1), set()).add(name)
    return held


def test_killed_worker_leaves_nothing_of_any_kind(cluster, cloud_factory, tmp_path):
    cloud = cloud_factory(faults="none", delay_scale=0.1, seed=5)
    run_id = secrets.token_hex(3)
    freeze(cloud, f"^ns-{run_id}-")
    summary_json = tmp_path / "summary.json"
    cluster.start_master(["--expect-workers", "2", "-u", "4", "-t", "20s", "--run-id", run_id,
                          "--summary-json", str(summary_json), *cli_credentials(cloud)])
    cluster.start_workers(2)

    def both_workers_holding() -> dict[str, set[str]]:
        # a server exists only after the user's volume and floating IP: it holds both
        held = held_by_tag(cloud, run_id)
        holding = {tag: names for tag, names in held.items()
                   if any(name.endswith("-server") for name in names)}
        return holding if len(holding) == 2 else {}

    holding = wait_until(both_workers_holding, "users of both workers holding resources", timeout=60,
                         interval=0.2)
    cluster.workers[0].send_signal(signal.SIGKILL)
    cluster.workers[0].wait(timeout=10)
    run = cluster.wait()
    assert "failed to send heartbeat" in run.output, run.output[-3000:]   # the master saw it die

    # nothing of any kind with the run's names, in any project (listed through the APIs)
    assert leftovers(cloud, f"ns-{run_id}-") == {}
    document = json.loads(summary_json.read_text())
    assert document["leaks"] == [] and "LEAKED" not in run.stdout, run.output[-3000:]
    swept = set(document["swept"])
    swept_tags = {re.match(rf"ns-{run_id}-([0-9a-f]{{4}})", name).group(1) for name in swept}
    # the live worker deleted its own; the sweep got the killed worker's, every kind of them
    assert len(swept_tags) == 1 and swept_tags <= set(holding), document["swept"]
    killed = swept_tags.pop()
    assert holding[killed] <= swept, (holding[killed], swept)
    assert {kind for kind in KINDS if any(name.endswith(f"-{kind}") for name in swept)} == set(KINDS), swept
    assert f"Swept {len(swept)} resources named ns-{run_id}-*" in run.stdout
