"""`novastress-realnova` without a stack: bad input is one line and exit 2, an empty state
directory is a stack that is stopped (the running stack is tests/realcloud's)."""
from __future__ import annotations

import json
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


def test_cinder_is_rendered_and_started_only_when_the_shape_has_it(tmp_path):
    secrets = {name: "pw-" + name for name in ("database", "nova", "placement", "glance", "neutron", "cinder")}
    without = configs.render(tmp_path, Ports(), secrets, ["compute-1"])
    assert not any(name.startswith("etc/cinder/") for name in without)
    files = configs.render(tmp_path, Ports(), secrets, ["compute-1"], with_cinder=True)
    cinder = files["etc/cinder/cinder.conf"]
    assert "volume_driver = cinder.volume.drivers.novastress_noop.NoopVolumeDriver" in cinder
    assert f"resource_query_filters_file = {tmp_path}/etc/cinder/resource_filters.json" in cinder
    assert f"connection = mysql+pymysql://os:pw-database@127.0.0.1:{Ports().mariadb}/cinder" in cinder
    assert "username = cinder" in cinder and "password = pw-cinder" in cinder
    assert files["etc/cinder/cinder-api.conf"] == f"[DEFAULT]\nlog_file = {tmp_path}/logs/cinder-api.log\n"
    # nova's [cinder] is the same either way: adding Cinder restarts nothing of Nova's
    for name in ("etc/nova/nova.conf", "etc/nova/nova-compute-compute-1.conf"):
        assert files[name] == without[name]
        assert "[cinder]" in files[name] and "os_region_name = RegionOne" in files[name]
    names = [daemon.name for daemon in Stack(tmp_path).daemons(Shape(cinder=True))]
    assert names[-3:] == ["cinder-api", "cinder-scheduler", "cinder-volume"]
    api = Stack(tmp_path).daemons(Shape(cinder=True))[-3]
    assert api.port == Ports().cinder and f"{tmp_path}/etc/cinder/cinder-api.conf" in api.command
    assert not any(name.startswith("cinder-") for name in
                   (daemon.name for daemon in Stack(tmp_path).daemons(Shape())))


def test_cinder_flags_exclude_each_other_and_the_recorded_shape_keeps_cinder(tmp_path):
    completed = realnova("--dir", str(tmp_path), "up", "--with-cinder", "--without-cinder")
    assert completed.returncode == 2 and "--without-cinder" in completed.stderr
    assert Stack(tmp_path).recorded_shape() == Shape()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "shape.json").write_text('{"flavors": 2, "compute_hosts": 1, "cinder": true}')
    assert Stack(tmp_path).recorded_shape() == Shape(flavors=2, cinder=True)
    # a stack made before Cinder was offered: its shape has no such key
    (tmp_path / "run" / "shape.json").write_text('{"flavors": 1, "compute_hosts": 3}')
    assert Stack(tmp_path).recorded_shape() == Shape(compute_hosts=3)
    completed = realnova("--dir", str(tmp_path), "status")
    assert "cinder-api" not in completed.stdout


def test_a_service_user_added_later_gets_a_password_and_the_others_are_kept(tmp_path):
    (tmp_path / "run").mkdir()
    kept = {"admin": "a", "demo": "d", "database": "db", "nova": "n", "placement": "p", "glance": "g", "neutron": "q"}
    (tmp_path / "run" / "secrets.json").write_text(json.dumps(kept))
    secrets = Stack(tmp_path).secrets()
    assert {name: secrets[name] for name in kept} == kept and secrets["cinder"]
    assert Stack(tmp_path).secrets() == secrets
    assert (tmp_path / "run" / "secrets.json").stat().st_mode & 0o777 == 0o600


def test_fresh_forgets_what_runs_left_and_keeps_the_installation(tmp_path):
    stack = Stack(tmp_path, say=lambda line: None)
    kept = ["venv-nova/bin/python", "run/secrets.json", "run/shape.json", "etc/nova/nova.conf", "clouds.yaml"]
    forgotten = ["data/mariadb/ibdata1", "data/.done-nova-db", "data/nova-compute-1/instances/x",
                 "logs/nova-api.log", "logs/other/setup.log", "etc/keystone/fernet-keys/0",
                 "etc/keystone/credential-keys/0"]
    for relative in kept + forgotten:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("x")
    stack._forget_runs()
    assert [relative for relative in kept if not (tmp_path / relative).exists()] == []
    assert [relative for relative in forgotten if (tmp_path / relative).exists()] == []
    assert "--fresh" in realnova("up", "--help").stdout
