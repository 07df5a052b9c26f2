"""A real Nova with several flavors and compute hosts: resize runs, anti-affinity bursts race, and
the stack goes back to fewer hosts without a trace of the ones it dropped."""
from __future__ import annotations

from novastress_locust.realnova import Shape

from realnova_stack import COMPUTE, tools_own_failures

SHAPE = Shape(flavors=3, compute_hosts=2)


def _compute_hosts(realnova) -> set[str]:
    services = realnova.session(admin=True).get("/os-services", endpoint_filter=COMPUTE,
                                                params={"binary": "nova-compute"}).json()["services"]
    return {s["host"] for s in services if s["state"] == "up"}


def test_the_stack_takes_the_shape(realnova):
    assert _compute_hosts(realnova) == {"compute-1", "compute-2"}
    flavors = realnova.session().get("/flavors", endpoint_filter=COMPUTE).json()["flavors"]
    assert len(flavors) == 3


def test_bounce_resizes_and_every_failure_is_the_clouds(realnova):
    run = realnova.locust("locustfiles/bounce.py", "-u", "2", "-t", "40s")
    assert "skipping" not in run.output, run.output[-4000:]
    assert "Traceback" not in run.output
    assert tools_own_failures(run) == [], run.output[-4000:]
    assert run.stats_row("POST", "compute POST /servers/{id}/action resize") is not None, run.output[-4000:]
    assert realnova.leftovers(run.run_id) == {}


def _spawned(realnova) -> list[int]:
    """Servers each simulated host has spawned so far (nova-compute logs each one)."""
    return [(realnova.log_dir / f"nova-compute-compute-{n}.log").read_text().count("to spawn the instance")
            for n in (1, 2)]


def test_servers_land_on_both_hosts(realnova):
    before = _spawned(realnova)
    run = realnova.locust("locustfiles/create_destroy.py", "-u", "6", "-t", "20s")
    assert run.returncode == 0, run.output[-4000:]
    after = _spawned(realnova)
    assert all(now > then for now, then in zip(after, before)), (before, after)
    assert realnova.leftovers(run.run_id) == {}


def test_back_to_one_host_retires_the_other(stacks, realnova):
    """Last of the tier: the stack is left in the default shape, the one `up` starts with."""
    realnova = stacks.up(Shape())
    assert "compute-2" not in _compute_hosts(realnova)
    assert (realnova.log_dir / "nova-compute-compute-2.log").exists()
    assert _compute_hosts(realnova) == {"compute-1"}
    flavors = realnova.session().get("/flavors", endpoint_filter=COMPUTE).json()["flavors"]
    assert len(flavors) == 1
