"""`novastress-realnova` without a stack: bad input is one line and exit 2, an empty state
directory is a stack that is stopped (the running stack is tests/realcloud's)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from novastress_locust.realnova import Ports, Shape, Stack
from novastress_locust.realnova import configs

REALNOVA = str(Path(sys.executable).with_name("novastress-realnova"))


def realnova(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([REALNOVA, *args], capture_output=True, text=True, timeout=60)


def test_a_shape_out_of_range_is_one_line_and_exit_2(tmp_path):
    for flag, value in (("--flavors", "0"), ("--compute-hosts", "9"), ("--flavors", "two")):
        completed = realnova("--dir", str(tmp_path), "up", flag, value)
        assert completed.returncode == 2, completed
        assert flag in completed.stderr and "Traceback" not in completed.stderr
    assert not (tmp_path / "venv-nova").exists()      # nothing was installed


def test_status_of_an_empty_state_directory_is_stopped_and_exit_1(tmp_path):
    completed = realnova("--dir", str(tmp_path), "status")
    assert completed.returncode == 1
    rows = [line.split() for line in completed.stdout.splitlines()]
    assert [row[0] for row in rows][:3] == ["mariadb", "rabbitmq", "keystone"]
    assert all(row[1] == "stopped" for row in rows)


def test_down_with_nothing_running_says_so(tmp_path):
    completed = realnova("--dir", str(tmp_path), "down")
    assert completed.returncode == 0 and "nothing was running" in completed.stdout


def test_logs_of_an_unknown_service_names_the_known_ones(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "nova-api.log").write_text("one\ntwo\nthree\n")
    completed = realnova("--dir", str(tmp_path), "logs", "nova-apu")
    assert completed.returncode == 2 and "nova-api" in completed.stderr
    completed = realnova("--dir", str(tmp_path), "logs", "nova-api", "-n", "2")
    assert completed.stdout.splitlines() == ["two", "three"]


def test_every_host_gets_its_own_compute_config_and_state(tmp_path):
    secrets = {name: "pw-" + name for name in ("database", "nova", "placement", "glance", "neutron")}
    files = configs.render(tmp_path, Ports(), secrets, Shape(compute_hosts=3).hosts())
    computes = sorted(name for name in files if "nova-compute-" in name)
    assert computes == [f"etc/nova/nova-compute-compute-{n}.conf" for n in (1, 2, 3)]
    second = files["etc/nova/nova-compute-compute-2.conf"]
    assert "host = compute-2" in second and f"state_path = {tmp_path}/data/nova-compute-2" in second
    assert "[database]" not in second          # nova-compute logs traces when given a database
    assert "[database]" in files["etc/nova/nova.conf"]
    # each daemon of the shape, in start order, nova-api last
    names = [daemon.name for daemon in Stack(tmp_path).daemons(Shape(compute_hosts=3))]
    assert names[-1] == "nova-api" and names.count("nova-compute-compute-3") == 1
