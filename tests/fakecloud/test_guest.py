"""Simulated guests: SSH on the floating IP of an ACTIVE server, disks following its volumes.

Everything over real HTTP (keystoneauth) and the real SSH protocol (paramiko client).
"""
from __future__ import annotations

import errno
import io
import ipaddress
import socket
import time
import uuid

import paramiko
import pytest
import requests

from novastress_locust.fakecloud.guest import resolve_port
from waiting import wait_until  # tests/ is on sys.path

COMPUTE = {"service_type": "compute"}
NETWORK = {"service_type": "network"}
VOLUME = {"service_type": "block-storage"}
IMAGE = {"service_type": "image"}
PASSWORD = "gocubsgo"


# -- helpers ------------------------------------------------------------------------------


def guest_port(cloud) -> int:
    info = requests.get(f"{cloud.base_url}/fakecloud", timeout=10).json()["fakecloud"]
    return info["guest_ssh_port"]


def server_status(session, server_id: str) -> dict | None:
    response = session.get(f"/servers/{server_id}", endpoint_filter=COMPUTE, raise_exc=False)
    return None if response.status_code == 404 else response.json()["server"]


def wait_server(session, server_id: str, status: str) -> dict:
    def check():
        server = server_status(session, server_id)
        return server if server and server["status"] == status and \
            server["OS-EXT-STS:task_state"] is None else None
    return wait_until(check, f"server {server_id} {status}")


def new_keypair(session) -> tuple[str, paramiko.PKey]:
    """A keypair Nova generates (as Tempest's actions create them): name and private key."""
    name = f"ns-guest-{uuid.uuid4().hex[:8]}"
    response = session.post("/os-keypairs", json={"keypair": {"name": name}}, endpoint_filter=COMPUTE,
                            microversion="2.2")
    private = response.json()["keypair"]["private_key"]
    return name, paramiko.RSAKey.from_private_key(io.StringIO(private))


def boot(session, name: str, key_name: str | None) -> dict:
    images = session.get("/v2/images", endpoint_filter=IMAGE).json()["images"]
    image = next(i["id"] for i in images if i["name"] == "cirros-0.6.2-x86_64-disk")
    spec = {"name": name, "imageRef": image, "flavorRef": "42", "networks": "auto"}
    if key_name:
        spec["key_name"] = key_name
    response = session.post("/servers", json={"server": spec}, endpoint_filter=COMPUTE,
                            microversion="2.37")
    server = response.json()["server"]
    return wait_server(session, server["id"], "ACTIVE")


def floating_ip_for(session, server_id: str) -> dict:
    """Allocate a floating IP, associate it to the server's port and wait until it is ACTIVE."""
    public = session.get("/v2.0/networks?name=public", endpoint_filter=NETWORK).json()["networks"][0]
    port = session.get(f"/v2.0/ports?device_id={server_id}", endpoint_filter=NETWORK).json()["ports"][0]
    fip = session.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": public["id"], "port_id": port["id"]}},
        endpoint_filter=NETWORK).json()["floatingip"]
    return wait_fip(session, fip["id"], "ACTIVE")


def wait_fip(session, fip_id: str, status: str) -> dict:
    def check():
        fip = session.get(f"/v2.0/floatingips/{fip_id}", endpoint_filter=NETWORK).json()["floatingip"]
        return fip if fip["status"] == status else None
    return wait_until(check, f"floating IP {fip_id} {status}")


def refused(address: str, port: int) -> bool:
    """True when nothing listens there (the connection is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        return probe.connect_ex((address, port)) == errno.ECONNREFUSED


def ssh(address: str, port: int, pkey: paramiko.PKey | None = None, password: str | None = None,
        username: str = "cirros") -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(address, port=port, username=username, pkey=pkey, password=password, timeout=10,
                   banner_timeout=10, auth_timeout=10, look_for_keys=False, allow_agent=False)
    return client


def run(client: paramiko.SSHClient, command: str) -> tuple[str, str, int]:
    _, stdout, stderr = client.exec_command(command, timeout=10)
    status = stdout.channel.recv_exit_status()
    return stdout.read().decode(), stderr.read().decode(), status


def disks(client: paramiko.SSHClient) -> dict[str, int]:
    """/proc/partitions of the guest: disk name -> 1K blocks."""
    out, _, status = run(client, "cat /proc/partitions")
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == ["major", "minor", "#blocks", "name"] and lines[1] == ""
    return {fields[3]: int(fields[2]) for fields in (line.split() for line in lines[2:])}


def nova_action(session, server_id: str, body: dict) -> None:
    response = session.post(f"/servers/{server_id}/action", json=body, endpoint_filter=COMPUTE)
    assert response.status_code == 202


# -- the life of a guest ---------------------------------------------------------------------
def test_guest_follows_server_floating_ip_and_volumes(cloud, member):
    port = guest_port(cloud)
    key_name, key = new_keypair(member)
    name = f"ns-guest-{uuid.uuid4().hex[:6]}"
    server = boot(member, name, key_name)
    sid = server["id"]
    fip = floating_ip_for(member, sid)
    address = fip["floating_ip_address"]
    cidr = requests.get(f"{cloud.base_url}/fakecloud", timeout=10).json()["fakecloud"]["floating_ip_cidr"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(cidr)

    client = ssh(address, port, pkey=key)
    assert disks(client) == {"vda": 1024 * 1024}  # flavor 42: 1 GB root disk
    assert run(client, "hostname") == (f"{name}\n", "", 0)
    out, _, status = run(client, "uname -a")
    assert status == 0 and out.startswith(f"Linux {name} ") and "x86_64" in out
    assert run(client, "true") == ("", "", 0)
    assert run(client, "echo hello guest") == ("hello guest\n", "", 0)
    assert run(client, "ls /dev/vd*") == ("/dev/vda\n", "", 0)
    assert run(client, "frobnicate --now") == ("", "sh: frobnicate: not found\n", 127)

    # attach: a vdb of the volume's size appears; detach: it is gone
    volume = member.post("/volumes", json={"volume": {"size": 2, "name": "ns-guest-vol"}},
                         endpoint_filter=VOLUME).json()["volume"]
    volume_path = f"/volumes/{volume['id']}"

    def volume_status(wanted: str):
        record = member.get(volume_path, endpoint_filter=VOLUME).json()["volume"]
        return record if record["status"] == wanted else None
    wait_until(lambda: volume_status("available"), "volume available")
    member.post(f"/servers/{sid}/os-volume_attachments", json={"volumeAttachment": {
        "volumeId": volume["id"]}}, endpoint_filter=COMPUTE)
    wait_until(lambda: volume_status("in-use"), "volume in-use")
    assert disks(client) == {"vda": 1024 * 1024, "vdb": 2 * 1024 * 1024}
    assert run(client, "ls /dev/vd*") == ("/dev/vda\n/dev/vdb\n", "", 0)
    member.delete(f"/servers/{sid}/os-volume_attachments/{volume['id']}", endpoint_filter=COMPUTE)
    wait_until(lambda: volume_status("available"), "volume available again")
    assert disks(client) == {"vda": 1024 * 1024}

    # stop: the open session drops and nothing answers; start: the guest is back
    nova_action(member, sid, {"os-stop": None})
    wait_server(member, sid, "SHUTOFF")
    assert refused(address, port)
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        run(client, "true")
    client.close()
    nova_action(member, sid, {"os-start": None})
    wait_server(member, sid, "ACTIVE")
    with ssh(address, port, pkey=key) as client:
        assert run(client, "hostname")[0] == f"{name}\n"

    # disassociate: refused; associate again: back
    fip_path = f"/v2.0/floatingips/{fip['id']}"
    member.put(fip_path, json={"floatingip": {"port_id": None}}, endpoint_filter=NETWORK)
    assert refused(address, port)
    member.put(fip_path, json={"floatingip": {"port_id": fip["port_id"]}}, endpoint_filter=NETWORK)
    wait_fip(member, fip["id"], "ACTIVE")
    with ssh(address, port, password=PASSWORD) as client:
        assert run(client, "hostname")[0] == f"{name}\n"

    # delete the server: refused; the floating IP is left unassociated
    member.delete(f"/servers/{sid}", endpoint_filter=COMPUTE)
    wait_until(lambda: server_status(member, sid) is None, "server deleted")
    assert refused(address, port)
    assert member.get(fip_path, endpoint_filter=NETWORK).json()["floatingip"]["port_id"] is None
    member.delete(fip_path, endpoint_filter=NETWORK)
    member.delete(volume_path, endpoint_filter=VOLUME)


def test_only_the_keypair_or_the_cirros_password_log_in(cloud, member):
    port = guest_port(cloud)
    key_name, key = new_keypair(member)
    server = boot(member, f"ns-guest-auth-{uuid.uuid4().hex[:6]}", key_name)
    address = floating_ip_for(member, server["id"])["floating_ip_address"]
    stranger = paramiko.ECDSAKey.generate()
    with pytest.raises(paramiko.AuthenticationException):
        ssh(address, port, pkey=stranger)
    with pytest.raises(paramiko.AuthenticationException):
        ssh(address, port, password="not-the-password")
    with pytest.raises(paramiko.AuthenticationException):
        ssh(address, port, password=PASSWORD, username="root")
    with pytest.raises(paramiko.AuthenticationException):
        ssh(address, port, pkey=key, username="root")
    with ssh(address, port, pkey=key) as client:
        assert run(client, "true")[2] == 0
    # a server booted without a keypair takes the password only
    keyless = boot(member, f"ns-guest-nokey-{uuid.uuid4().hex[:6]}", None)
    keyless_address = floating_ip_for(member, keyless["id"])["floating_ip_address"]
    with pytest.raises(paramiko.AuthenticationException):
        ssh(keyless_address, port, pkey=key)
    with ssh(keyless_address, port, password=PASSWORD) as client:
        assert run(client, "hostname")[0] == f"{keyless['name']}\n"
    for sid in (server["id"], keyless["id"]):
        member.delete(f"/servers/{sid}", endpoint_filter=COMPUTE)
    wait_until(lambda: server_status(member, keyless["id"]) is None, "server deleted")
    assert refused(keyless_address, port)


def test_interactive_shell(cloud, member):
    port = guest_port(cloud)
    server = boot(member, f"ns-guest-shell-{uuid.uuid4().hex[:6]}", None)
    address = floating_ip_for(member, server["id"])["floating_ip_address"]
    with ssh(address, port, password=PASSWORD) as client:
        channel = client.invoke_shell()
        channel.settimeout(10)
        channel.sendall(b"hostname\nexit\n")
        received = b""
        deadline = time.monotonic() + 10
        while not channel.exit_status_ready() and time.monotonic() < deadline:
            chunk = channel.recv(4096)
            if not chunk:
                break
            received += chunk
        assert server["name"].encode() in received
        assert channel.recv_exit_status() == 0
    member.delete(f"/servers/{server['id']}", endpoint_filter=COMPUTE)


# -- where the guests listen -------------------------------------------------------------
CIDR = "127.150.0.0/16"
PROBE_ADDRESS = "127.150.0.1"   # that subnet's gateway, where resolve_port probes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((PROBE_ADDRESS, 0))
        return probe.getsockname()[1]


def test_guest_ssh_port_option(cloud_factory):
    """A cloud that may not (or should not) take port 22 listens where --guest-ssh-port says."""
    chosen = free_port()
    embedded = cloud_factory(faults="none", delay_scale=0.1, extra_args=["--guest-ssh-port", str(chosen)])
    assert embedded.info["guest_ssh_port"] == chosen
    assert guest_port(embedded) == chosen
    session = embedded.session()
    key_name, key = new_keypair(session)
    name = f"ns-guest-port-{uuid.uuid4().hex[:6]}"
    server = boot(session, name, key_name)
    address = floating_ip_for(session, server["id"])["floating_ip_address"]
    with ssh(address, chosen, pkey=key) as client:
        assert run(client, "hostname")[0] == f"{name}\n"
        assert disks(client) == {"vda": 1024 * 1024}


def test_unusable_guest_ssh_port_is_one_clear_line(cloud_factory):
    from novastress_locust.fakecloud import EmbeddedCloudError
    with pytest.raises(EmbeddedCloudError, match=r"--guest-ssh-port 70000: use a port in 1-65535"):
        cloud_factory(faults="none", extra_args=["--guest-ssh-port", "70000"])


def test_port_22_fallback_when_it_cannot_be_bound():
    """Not root (or the port is taken): a free port and a note; asked for explicitly: an error."""
    with socket.socket() as holder:
        holder.bind((PROBE_ADDRESS, 0))
        holder.listen(1)
        busy = holder.getsockname()[1]
        port, note = resolve_port(None, CIDR, preferred=busy)
        assert port != busy and 0 < port < 65536
        assert f"port {busy} cannot be bound" in note and f"port {port}" in note
        with pytest.raises(ValueError, match=f"guest SSH port {busy} cannot be bound"):
            resolve_port(busy, CIDR)
    free = free_port()
    assert resolve_port(None, CIDR, preferred=free) == (free, "")
