"""`novastress-fakecloud`: the command an operator runs to get a local cloud."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "novastress-fakecloud"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def read_banner(process: subprocess.Popen, lines: int = 5) -> list[str]:
    return [process.stdout.readline().rstrip() for _ in range(lines)]


def test_cli_writes_clouds_yaml_that_openstack_cli_uses_and_exits_0_on_sigint(tmp_path):
    clouds = tmp_path / "clouds.yaml"
    process = start(["--clouds-yaml", str(clouds), "--log-dir", str(tmp_path / "logs"),
                     "--delay-scale", "0.1", "--faults", "none"])
    try:
        banner = read_banner(process)
        assert banner[0].startswith("Embedded cloud listening: auth URL http://127.0.0.1:")
        assert oct(clouds.stat().st_mode & 0o777) == "0o600"
        document = yaml.safe_load(clouds.read_text())
        assert set(document["clouds"]) == {"embedded", "embedded-admin"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD="embedded")
        listed = subprocess.run([str(BIN / "openstack"), "server", "list", "-f", "json"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.strip() == "[]"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    assert (tmp_path / "logs" / "nova-api.log").exists()


def test_cli_exits_0_on_sigterm(tmp_path):
    process = start(["--log-dir", str(tmp_path / "logs")])
    read_banner(process, 1)
    process.terminate()
    assert process.wait(timeout=20) == 0


def test_port_in_use_is_one_clear_line_and_exit_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = start(["--port", str(port), "--log-dir", str(tmp_path / "logs")])
        out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert err.strip().startswith("novastress-fakecloud: cannot start:")
    assert len(err.strip().splitlines()) == 1


def test_unknown_fault_is_rejected_with_the_known_ids(tmp_path):
    process = start(["--faults", "no-such-fault", "--log-dir", str(tmp_path / "logs")])
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "unknown fault id(s) no-such-fault" in err
    assert "delete-during-build" in err


def test_bad_delay_is_an_argument_error(tmp_path):
    process = start(["--delay", "build=fast", "--log-dir", str(tmp_path / "logs")])
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "use KIND=LOW:HIGH" in err


def test_unknown_service_is_an_argument_error(tmp_path):
    process = start(["--services", "compute,cinder", "--log-dir", str(tmp_path / "logs")])
    _, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert "unknown service cinder" in err and "compute, image, volume, network, placement" in err


def test_shape_flags_one_flavor_no_external_network(cloud_factory):
    # what EmbeddedCloud(flavors=1, external_network=False) passes on: --flavors 1 --no-external-network
    cloud = cloud_factory(flavors=1, external_network=False, compute_hosts=1, faults="none")
    admin = cloud.session(admin=True)
    flavors = admin.get(f"{cloud.base_url}/compute/v2.1/flavors").json()["flavors"]
    assert [flavor["name"] for flavor in flavors] == ["m1.nano"]
    networks = admin.get(f"{cloud.base_url}/networking/v2.0/networks").json()["networks"]
    assert [(n["name"], n["router:external"]) for n in networks] == [("private", False)]
    assert admin.get(f"{cloud.base_url}/networking/v2.0/routers").json()["routers"] == []
    services = admin.get(f"{cloud.base_url}/compute/v2.1/os-services", params={"binary": "nova-compute"})
    assert [service["host"] for service in services.json()["services"]] == ["compute-1"]
    more = cloud_factory(flavors=9, faults="none")
    flavors = more.session().get(f"{more.base_url}/compute/v2.1/flavors/detail").json()["flavors"]
    assert len(flavors) == 9 and len({flavor["name"] for flavor in flavors}) == 9
