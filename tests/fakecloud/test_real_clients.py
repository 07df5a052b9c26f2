"""Unmodified real clients (openstacksdk, the `openstack` CLI) drive the embedded cloud."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openstack
import pytest

OPENSTACK_CLI = str(Path(sys.executable).with_name("openstack"))


@pytest.fixture
def sdk(cloud):
    connection = openstack.connection.Connection(auth=cloud.credentials(), region_name="RegionOne",
                                                 identity_api_version="3")
    yield connection
    connection.close()


def test_openstacksdk_server_volume_floating_ip_lifecycle(sdk, cloud, admin):
    image = next(sdk.image.images(name="cirros-0.6.2-x86_64-disk"))
    flavor = sdk.compute.find_flavor("m1.nano")
    network = sdk.network.find_network("private")
    server = sdk.compute.create_server(name="sdk-e2e-server", image_id=image.id, flavor_id=flavor.id,
                                       networks=[{"uuid": network.id}])
    server = sdk.compute.wait_for_server(server, status="ACTIVE", wait=60, interval=0.2)
    assert server.status == "ACTIVE"

    volume = sdk.block_storage.create_volume(size=1, name="sdk-e2e-volume")
    volume = sdk.block_storage.wait_for_status(volume, status="available", wait=60, interval=0.2)
    sdk.compute.create_volume_attachment(server, volume_id=volume.id)
    volume = sdk.block_storage.wait_for_status(volume, status="in-use", wait=60, interval=0.2)
    assert volume.attachments[0]["server_id"] == server.id

    public = sdk.network.find_network("public")
    port = next(sdk.network.ports(device_id=server.id))
    floating_ip = sdk.network.create_ip(floating_network_id=public.id)
    assert floating_ip.floating_ip_address.startswith("127.")
    sdk.network.update_ip(floating_ip, port_id=port.id)
    floating_ip = sdk.network.get_ip(floating_ip.id)
    assert floating_ip.port_id == port.id

    sdk.network.update_ip(floating_ip, port_id=None)
    sdk.network.delete_ip(floating_ip)
    sdk.compute.delete_volume_attachment(server, volume.id)
    sdk.block_storage.wait_for_status(volume, status="available", wait=60, interval=0.2)
    sdk.block_storage.delete_volume(volume)
    sdk.block_storage.wait_for_delete(volume, interval=0.2, wait=60)
    sdk.compute.delete_server(server)
    sdk.compute.wait_for_delete(server, interval=0.2, wait=60)

    assert sdk.compute.find_server("sdk-e2e-server") is None
    assert sdk.block_storage.find_volume("sdk-e2e-volume") is None
    assert not [ip for ip in sdk.network.ips() if ip.id == floating_ip.id]


def test_openstack_cli_against_embedded_cloud(cloud, tmp_path):
    clouds_yaml = cloud.clouds_yaml(tmp_path / "clouds.yaml")
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(clouds_yaml), OS_CLOUD="embedded")
    for key in [k for k in env if k.startswith("OS_") and k not in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD")]:
        del env[key]

    def cli(*args: str, cloud_name: str = "embedded") -> subprocess.CompletedProcess:
        return subprocess.run([OPENSTACK_CLI, "--os-cloud", cloud_name, *args], env=env,
                              capture_output=True, text=True, timeout=120)

    created = cli("server", "create", "--flavor", "m1.nano", "--image", "cirros-0.6.2-x86_64-disk",
                  "--network", "private", "--wait", "-f", "json", "cli-e2e-server")
    assert created.returncode == 0, created.stderr
    server = json.loads(created.stdout)
    assert server["status"] == "ACTIVE"

    listed = cli("server", "list", "-f", "json")
    assert listed.returncode == 0, listed.stderr
    assert "cli-e2e-server" in {row["Name"] for row in json.loads(listed.stdout)}

    services = cli("compute", "service", "list", "-f", "json", cloud_name="embedded-admin")
    assert services.returncode == 0, services.stderr
    binaries = {row["Binary"] for row in json.loads(services.stdout)}
    assert {"nova-scheduler", "nova-conductor", "nova-compute"} <= binaries

    deleted = cli("server", "delete", "--wait", server["id"])
    assert deleted.returncode == 0, deleted.stderr
    assert "cli-e2e-server" not in cli("server", "list", "-f", "value", "-c", "Name").stdout
