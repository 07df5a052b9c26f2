"""A real Nova with Cinder 29 (`novastress-realnova up --with-cinder`): the volume actions run
instead of being skipped, the storm attaches and detaches volumes, nothing is left, and a shape
without Cinder takes it away again (the modules after this one expect a cloud without it)."""
from __future__ import annotations

import re

from novastress_locust.realnova import Shape

from realnova_stack import VOLUME, realnova_command, tools_own_failures

SHAPE = Shape(flavors=1, compute_hosts=1, cinder=True)
CINDER_DAEMONS = ("cinder-api", "cinder-scheduler", "cinder-volume")


def status_rows() -> dict[str, str]:
    """novastress-realnova status: daemon -> state."""
    completed = realnova_command("status", timeout=60)
    return {fields[0]: " ".join(fields[1:-2]) for fields in
            (line.split() for line in completed.stdout.splitlines()) if fields}


def test_cinder_runs_and_is_in_the_catalog(realnova):
    rows = status_rows()
    assert all(rows.get(name) == "running" for name in CINDER_DAEMONS), rows
    volumes = realnova.session().get("/volumes", endpoint_filter=VOLUME)
    assert volumes.status_code == 200 and volumes.json()["volumes"] == []
    for name in CINDER_DAEMONS:
        assert (realnova.log_dir / f"{name}.log").exists(), name


def test_volume_create_delete_scenario_runs_and_leaves_nothing(realnova):
    run = realnova.locust("locustfiles/scenario.py", "--scenario=locustfiles/etc/volume-create-delete-test.json",
                          *realnova.admin_options(), "-t", "15s")
    assert "skipping" not in run.output, run.output[-4000:]
    assert "Traceback" not in run.output, run.output[-4000:]
    assert tools_own_failures(run) == [], run.output[-4000:]
    assert "LEAKED" not in run.output, run.output[-4000:]
    runs, failed = run.totals()
    assert runs > 0 and failed == 0, run.output[-4000:]
    assert run.stats_row("POST", "volume POST /volumes") is not None, run.output[-4000:]
    assert realnova.leftovers(run.run_id) == {}


def test_storm_attaches_volumes_and_every_failure_is_the_clouds(realnova):
    run = realnova.locust("locustfiles/storm.py", *realnova.admin_options(), "-t", "30s", "-u", "3",
                          "--storm-actions", "attach_volume,soft_reboot", "--quota-step", "0",
                          "--snapshot-timeout", "5", "--log-local",
                          "--target-logfiles", f"{realnova.log_dir}/*.log", "--log-discovery", "none",
                          timeout=420)
    assert not re.search(r"skipping storm actions? [^\n]*\battach_volume\b", run.output), run.output[-4000:]
    assert not re.search(r"^Traceback \(most recent call last\)", run.output, re.M), run.output[-6000:]
    assert tools_own_failures(run) == [], run.output[-4000:]
    assert "NOT CHECKED" not in run.output, run.output[-4000:]
    assert run.stats_row("POST", "compute POST /servers/{id}/os-volume_attachments (storm)") is not None, \
        run.output[-4000:]
    # a server Nova itself would not delete (a real race) is the cloud's finding; only such may be LEAKED
    undeletable = set(re.findall(r"INVARIANT server-not-deleted: InvariantViolation\('([0-9a-f-]{36})", run.output))
    leaked = set(re.findall(r"^LEAKED server \S+ \(([0-9a-f-]{36})\)", run.stdout, re.M))
    assert leaked <= undeletable and "LEAKED" not in re.sub(r"^LEAKED server .*$", "", run.stdout, flags=re.M), \
        run.output[-4000:]
    realnova.force_delete_servers(run.run_id)
    assert realnova.leftovers(run.run_id) == {}
    assert realnova.project_usage("demo") == {}


def test_a_shape_without_cinder_stops_it_and_takes_it_out_of_the_catalog(stacks, realnova):
    """Last of the module: the stack goes back to the default shape, the one without Cinder."""
    realnova = stacks.up(Shape(flavors=1, compute_hosts=1))
    rows = status_rows()
    assert not any(name in rows for name in CINDER_DAEMONS), rows
    assert rows and all(state == "running" for state in rows.values()), rows
    services = realnova.session(admin=True).get("/services", endpoint_filter={"service_type": "identity"}).json()
    assert not {s["type"] for s in services["services"]} & {"block-storage", "volumev3", "volume"}, services
    # the shape is remembered: an up that names no Cinder flag keeps it out
    completed = realnova_command("up", "--flavors", "1", "--compute-hosts", "1")
    assert completed.returncode == 0 and "no Cinder" in completed.stdout, completed.stdout + completed.stderr
    assert not any(name in status_rows() for name in CINDER_DAEMONS)
