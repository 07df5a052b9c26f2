"""Neutron v2.0 of the embedded cloud: discovery, resources, floating IPs and the
`floating-ip-delete-race` fault."""
from __future__ import annotations

import ipaddress

import gevent
import openstack
import pytest
import requests
from waiting import wait_until

NETWORK = {"service_type": "network"}
FAULT = "floating-ip-delete-race"


def find_network(session, name: str) -> dict:
    (network,) = session.get(f"/v2.0/networks?name={name}", endpoint_filter=NETWORK).json()["networks"]
    return network


def public_cidr(session) -> ipaddress.IPv4Network:
    """The external network's subnet, as the API lists it; always inside 127.0.0.0/8."""
    public = find_network(session, "public")
    (subnet,) = session.get(f"/v2.0/subnets?network_id={public['id']}", endpoint_filter=NETWORK).json()["subnets"]
    cidr = ipaddress.ip_network(subnet["cidr"])
    assert cidr.subnet_of(ipaddress.ip_network("127.0.0.0/8"))
    return cidr


def wait_for_fip(session, fip_id: str, status: str, timeout: float = 10.0) -> dict:
    def check():
        fip = session.get(f"/v2.0/floatingips/{fip_id}", endpoint_filter=NETWORK).json()["floatingip"]
        return fip if fip["status"] == status else None
    return wait_until(check, f"floating IP {fip_id} {status}", timeout)


def test_versions_document(cloud):
    response = requests.get(f"{cloud.base_url}/networking", timeout=10)
    assert response.status_code == 200
    assert response.json() == {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
        {"href": f"{cloud.base_url}/networking/v2.0/", "rel": "self"}]}]}


def test_start_networks_and_filters(member):
    networks = member.get("/v2.0/networks", endpoint_filter=NETWORK).json()["networks"]
    by_name = {n["name"]: n for n in networks}
    assert by_name["private"]["shared"] is True and by_name["private"]["router:external"] is False
    assert by_name["public"]["router:external"] is True
    external = member.get("/v2.0/networks?router:external=true",
                          endpoint_filter=NETWORK).json()["networks"]
    assert [n["name"] for n in external] == ["public"]
    shared = member.get("/v2.0/networks?shared=True", endpoint_filter=NETWORK).json()["networks"]
    assert [n["name"] for n in shared] == ["private"]
    by_id = member.get(f"/v2.0/networks?id={by_name['public']['id']}",
                       endpoint_filter=NETWORK).json()["networks"]
    assert [n["name"] for n in by_id] == ["public"]
    assert "provider:network_type" not in by_name["private"]
    subnets = member.get("/v2.0/subnets", endpoint_filter=NETWORK).json()["subnets"]
    assert by_name["private"]["subnets"][0] in [s["id"] for s in subnets]
    fields = member.get("/v2.0/networks?fields=id&fields=name", endpoint_filter=NETWORK).json()
    assert all(set(n) == {"id", "name"} for n in fields["networks"])


def test_default_security_group_as_recorded(member):
    groups = member.get("/v2.0/security-groups", endpoint_filter=NETWORK).json()["security_groups"]
    (group,) = [g for g in groups if g["name"] == "default"]
    assert {"id", "name", "stateful", "tenant_id", "project_id", "description", "shared",
            "security_group_rules", "tags", "created_at", "updated_at",
            "revision_number"} == set(group)
    assert group["project_id"] == member.get_project_id()
    assert group["description"] == "Default security group"
    rules = group["security_group_rules"]
    assert len(rules) == 4
    assert {(r["direction"], r["ethertype"], r["remote_group_id"]) for r in rules} == {
        ("egress", "IPv4", None), ("egress", "IPv6", None),
        ("ingress", "IPv4", group["id"]), ("ingress", "IPv6", group["id"])}
    assert {"normalized_cidr", "remote_address_group_id", "standard_attr_id",
            "belongs_to_default_sg", "revision_number"} <= set(rules[0])


def test_security_group_and_rule_crud(member):
    group = member.post("/v2.0/security-groups", json={"security_group": {"name": "ns-sg"}},
                        endpoint_filter=NETWORK).json()["security_group"]
    rule = member.post("/v2.0/security-group-rules", json={"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "protocol": "tcp",
        "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}},
        endpoint_filter=NETWORK)
    assert rule.status_code == 201
    rule = rule.json()["security_group_rule"]
    duplicate = member.post("/v2.0/security-group-rules", json={"security_group_rule": {
        "security_group_id": group["id"], "direction": "ingress", "protocol": "tcp",
        "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}},
        endpoint_filter=NETWORK, raise_exc=False)
    assert duplicate.status_code == 409
    assert duplicate.json()["NeutronError"]["type"] == "SecurityGroupRuleExists"
    listed = member.get(f"/v2.0/security-group-rules?security_group_id={group['id']}",
                        endpoint_filter=NETWORK).json()["security_group_rules"]
    assert rule["id"] in [r["id"] for r in listed] and len(listed) == 3
    assert member.delete(f"/v2.0/security-group-rules/{rule['id']}",
                         endpoint_filter=NETWORK).status_code == 204
    assert member.delete(f"/v2.0/security-groups/{group['id']}",
                         endpoint_filter=NETWORK).status_code == 204
    default = member.get("/v2.0/security-groups?name=default", endpoint_filter=NETWORK).json()
    refused = member.delete(f"/v2.0/security-groups/{default['security_groups'][0]['id']}",
                            endpoint_filter=NETWORK, raise_exc=False)
    assert refused.status_code == 409
    assert refused.json()["NeutronError"]["type"] == "SecurityGroupCannotRemoveDefault"


def test_network_subnet_port_crud(member):
    network = member.post("/v2.0/networks", json={"network": {"name": "ns-net"}},
                          endpoint_filter=NETWORK).json()["network"]
    assert network["project_id"] == member.get_project_id() and network["shared"] is False
    subnet = member.post("/v2.0/subnets", json={"subnet": {
        "network_id": network["id"], "cidr": "192.168.77.0/24", "ip_version": 4}},
        endpoint_filter=NETWORK).json()["subnet"]
    port = member.post("/v2.0/ports", json={"port": {"network_id": network["id"],
                                                     "device_id": "ns-device"}},
                       endpoint_filter=NETWORK).json()["port"]
    assert port["fixed_ips"][0]["subnet_id"] == subnet["id"]
    assert port["mac_address"].startswith("fa:16:3e:")
    by_device = member.get("/v2.0/ports?device_id=ns-device", endpoint_filter=NETWORK).json()
    assert [p["id"] for p in by_device["ports"]] == [port["id"]]
    by_network = member.get(f"/v2.0/ports?network_id={network['id']}",
                            endpoint_filter=NETWORK).json()
    assert [p["id"] for p in by_network["ports"]] == [port["id"]]
    in_use = member.delete(f"/v2.0/networks/{network['id']}", endpoint_filter=NETWORK,
                           raise_exc=False)
    assert in_use.status_code == 409 and in_use.json()["NeutronError"]["type"] == "NetworkInUse"
    assert member.delete(f"/v2.0/ports/{port['id']}", endpoint_filter=NETWORK).status_code == 204
    assert member.delete(f"/v2.0/networks/{network['id']}", endpoint_filter=NETWORK).status_code == 204
    gone = member.get(f"/v2.0/networks/{network['id']}", endpoint_filter=NETWORK, raise_exc=False)
    assert gone.status_code == 404
    assert gone.json() == {"NeutronError": {"type": "NetworkNotFound", "message":
                           f"Network {network['id']} could not be found.", "detail": ""}}


def test_member_cannot_create_shared_network(member):
    response = member.post("/v2.0/networks", json={"network": {"name": "x", "shared": True}},
                           endpoint_filter=NETWORK, raise_exc=False)
    assert response.status_code == 403
    assert response.json()["NeutronError"]["type"] == "PolicyNotAuthorized"


def test_floating_ip_errors(member, cloud):
    unknown = member.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": "6b7b5e3c-0000-4000-8000-000000000001"}}, endpoint_filter=NETWORK,
        raise_exc=False)
    assert unknown.status_code == 404
    assert unknown.json() == {"NeutronError": {"type": "NetworkNotFound", "message": "Network "
                              "6b7b5e3c-0000-4000-8000-000000000001 could not be found.", "detail": ""}}
    private = find_network(member, "private")
    internal = member.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": private["id"]}}, endpoint_filter=NETWORK, raise_exc=False)
    assert internal.status_code == 400
    no_token = requests.get(f"{cloud.base_url}/networking/v2.0/networks", timeout=10)
    assert no_token.status_code == 401 and no_token.json()["error"]["code"] == 401
    assert no_token.headers["x-openstack-request-id"].startswith("req-")


def test_floating_ip_associate_disassociate(member):
    public = find_network(member, "public")
    private = find_network(member, "private")
    port = member.post("/v2.0/ports", json={"port": {"network_id": private["id"],
                                                     "device_id": "ns-fip-device"}},
                       endpoint_filter=NETWORK).json()["port"]
    created = member.post("/v2.0/floatingips", json={"floatingip": {
        "floating_network_id": public["id"]}}, endpoint_filter=NETWORK)
    assert created.status_code == 201
    fip = created.json()["floatingip"]
    assert ipaddress.ip_address(fip["floating_ip_address"]) in public_cidr(member)
    assert (fip["status"], fip["port_id"]) == ("DOWN", None)
    associated = member.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {
        "port_id": port["id"]}}, endpoint_filter=NETWORK).json()["floatingip"]
    assert associated["port_id"] == port["id"]
    assert associated["fixed_ip_address"] == port["fixed_ips"][0]["ip_address"]
    active = wait_for_fip(member, fip["id"], "ACTIVE")
    assert active["router_id"]
    for query in (f"port_id={port['id']}", f"floating_ip_address={fip['floating_ip_address']}",
                  f"project_id={member.get_project_id()}"):
        listed = member.get(f"/v2.0/floatingips?{query}", endpoint_filter=NETWORK).json()
        assert fip["id"] in [f["id"] for f in listed["floatingips"]], query
    other = member.get("/v2.0/floatingips?port_id=00000000-0000-0000-0000-000000000000",
                       endpoint_filter=NETWORK).json()
    assert other["floatingips"] == []
    released = member.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": None}},
                          endpoint_filter=NETWORK).json()["floatingip"]
    assert (released["port_id"], released["status"]) == (None, "DOWN")
    # deleting the port disassociates its floating IP (no fault in this cloud)
    member.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": port["id"]}},
               endpoint_filter=NETWORK)
    wait_for_fip(member, fip["id"], "ACTIVE")
    member.delete(f"/v2.0/ports/{port['id']}", endpoint_filter=NETWORK)
    after = member.get(f"/v2.0/floatingips/{fip['id']}", endpoint_filter=NETWORK).json()["floatingip"]
    assert after["port_id"] is None
    assert member.delete(f"/v2.0/floatingips/{fip['id']}", endpoint_filter=NETWORK).status_code == 204
    gone = member.get(f"/v2.0/floatingips/{fip['id']}", endpoint_filter=NETWORK, raise_exc=False)
    assert gone.status_code == 404 and gone.json()["NeutronError"]["type"] == "FloatingIPNotFound"


def test_routers_list_create_delete(member):
    public = find_network(member, "public")
    router = member.post("/v2.0/routers", json={"router": {
        "name": "ns-router", "external_gateway_info": {"network_id": public["id"]}}},
        endpoint_filter=NETWORK).json()["router"]
    assert router["external_gateway_info"]["network_id"] == public["id"]
    listed = member.get("/v2.0/routers", endpoint_filter=NETWORK).json()["routers"]
    assert router["id"] in [r["id"] for r in listed]
    assert member.delete(f"/v2.0/routers/{router['id']}", endpoint_filter=NETWORK).status_code == 204


def test_compute_interface_ports(local_cloud):
    local = local_cloud()
    network = local.cloud.network
    project = local.cloud.demo_project.id
    (private,) = [n for n in network.networks_for(project) if n["name"] == "private"]
    assert "public" not in [n["name"] for n in network.networks_for(project)]
    port = network.allocate_port(project, private["id"], "server-a", ["req-x"])
    assert port["device_owner"] == "compute:nova" and port["fixed_ips"][0]["ip_address"]
    listed = local.call("GET", "/networking/v2.0/ports?device_id=server-a").payload["ports"]
    assert [p["id"] for p in listed] == [port["id"]]
    assert network.ports_of("server-a") == [port]
    assert network.security_group_names(project) == ["default"]
    try:
        network.allocate_port(project, "no-such-network", "server-a", [])
    except KeyError:
        pass
    else:
        raise AssertionError("an unknown network must raise KeyError")
    network.release_ports("server-a", ["req-y"])
    assert local.call("GET", "/networking/v2.0/ports?device_id=server-a").payload["ports"] == []


def _associated_port(local, device_id: str) -> tuple[dict, dict, str]:
    """A server port with a floating IP whose association is still in flight."""
    network = local.cloud.network
    project = local.cloud.demo_project.id
    port = network.allocate_port(project, network.private["id"], device_id, [])
    fip = local.call("POST", "/networking/v2.0/floatingips", {"floatingip": {
        "floating_network_id": network.public["id"]}}).payload["floatingip"]
    response = local.call("PUT", f"/networking/v2.0/floatingips/{fip['id']}",
                          {"floatingip": {"port_id": port["id"]}})
    association_id = dict(response.headers)["x-openstack-request-id"]
    assert network.floating_ips_of(device_id)[0]["id"] == fip["id"]
    return port, fip, association_id


def test_floating_ip_delete_race_fires(local_cloud):
    local = local_cloud(faults=[FAULT], fault_probability={FAULT: 1.0})
    port, fip, association_id = _associated_port(local, "server-race")
    delete_ids = ["req-5ca1ab1e-0000-4000-8000-00000000d001"]
    # no gevent.sleep yet: the association has not completed when the server's ports go
    local.cloud.network.release_ports("server-race", delete_ids)
    gevent.sleep(0.01)  # the late association completion must not repair the record
    shown = local.call("GET", f"/networking/v2.0/floatingips/{fip['id']}").payload["floatingip"]
    assert (shown["port_id"], shown["status"]) == (port["id"], "ERROR")
    missing = local.call("GET", f"/networking/v2.0/ports/{port['id']}")
    assert missing.status == 404
    (fired,) = local.cloud.faults.fired_faults
    assert (fired.fault, fired.resource_id, fired.log) == (FAULT, fip["id"], "neutron-server.log")
    assert association_id in fired.request_ids and delete_ids[0] in fired.request_ids
    log = (local.cloud.logs.directory / "neutron-server.log").read_text().splitlines()
    (error,) = [line for line in log if " ERROR neutron.db.l3_db [" in line]
    assert association_id in error and delete_ids[0] in error and fip["id"] in error
    assert any("Traceback (most recent call last):" in line for line in log)
    assert any(f"PortNotFound: Port {port['id']} could not be found." in line
               and " ERROR neutron.db.l3_db " in line for line in log)


def test_floating_ip_delete_race_needs_association_in_flight(local_cloud):
    local = local_cloud(faults=[FAULT], fault_probability={FAULT: 1.0})
    port, fip, _ = _associated_port(local, "server-settled")
    gevent.sleep(0.01)  # the association completes first
    assert local.call("GET", f"/networking/v2.0/floatingips/{fip['id']}").payload[
        "floatingip"]["status"] == "ACTIVE"
    local.cloud.network.release_ports("server-settled", ["req-z"])
    shown = local.call("GET", f"/networking/v2.0/floatingips/{fip['id']}").payload["floatingip"]
    assert (shown["port_id"], shown["status"]) == (None, "DOWN")
    assert local.cloud.faults.fired_faults == []


def test_release_without_fault_disassociates_in_flight(local_cloud):
    local = local_cloud()
    port, fip, _ = _associated_port(local, "server-clean")
    local.cloud.network.release_ports("server-clean", ["req-z"])
    gevent.sleep(0.01)
    shown = local.call("GET", f"/networking/v2.0/floatingips/{fip['id']}").payload["floatingip"]
    assert (shown["port_id"], shown["status"]) == (None, "DOWN")
    assert local.cloud.faults.fired_faults == []
    assert " ERROR " not in (local.cloud.logs.directory / "neutron-server.log").read_text()


def test_lookups_stay_fast_with_many_records(local_cloud):
    local = local_cloud()
    network = local.cloud.network
    project = local.cloud.demo_project.id
    ports = [network.allocate_port(project, network.private["id"], f"server-{n}", [])
             for n in range(10000)]
    assert len({p["fixed_ips"][0]["ip_address"] for p in ports}) == 10000
    # indexed lookups touch one record, not ten thousand
    assert network.ports_of("server-9999") == [ports[-1]]
    listed = local.call("GET", "/networking/v2.0/ports?device_id=server-5000").payload["ports"]
    assert [p["id"] for p in listed] == [ports[5000]["id"]]


def test_openstacksdk_networks_and_floating_ip(cloud):
    conn = openstack.connection.Connection(auth=cloud.credentials(), region_name="RegionOne")
    assert {"private", "public"} <= {n.name for n in conn.network.networks()}
    public = conn.network.find_network("public")
    ip = conn.network.create_ip(floating_network_id=public.id)
    assert ipaddress.ip_address(ip.floating_ip_address) in public_cidr(cloud.session())
    assert ip.id in [i.id for i in conn.network.ips(floating_ip_address=ip.floating_ip_address)]
    conn.network.delete_ip(ip)
    assert conn.network.find_ip(ip.id) is None


def test_floating_ip_delete_race_over_http(cloud_factory):
    """Server delete while the floating IP association is in flight (network delay 5 s)."""
    embedded = cloud_factory(faults=FAULT, delay_scale=0.1, seed=3, extra_args=[
        "--fault-probability", f"{FAULT}=1", "--delay", "network=5:5"])
    member, admin = embedded.session(), embedded.session(admin=True)
    compute = {"service_type": "compute"}
    private, public = find_network(member, "private"), find_network(member, "public")
    image = member.get("/v2/images?name=cirros-0.6.2-x86_64-disk",
                       endpoint_filter={"service_type": "image"}).json()["images"][0]
    flavor = member.get("/flavors", endpoint_filter=compute).json()["flavors"][0]
    server = member.post("/servers", json={"server": {
        "name": "ns-race", "imageRef": image["id"], "flavorRef": flavor["id"],
        "networks": [{"uuid": private["id"]}]}}, endpoint_filter=compute).json()["server"]
    def built():
        status = member.get(f"/servers/{server['id']}", endpoint_filter=compute).json()["server"]["status"]
        return status if status != "BUILD" else None
    status = wait_until(built, "the server built", 15, interval=0.05)
    assert status == "ACTIVE"
    (port,) = member.get(f"/v2.0/ports?device_id={server['id']}", endpoint_filter=NETWORK).json()["ports"]
    fip = member.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": public["id"]}},
                      endpoint_filter=NETWORK).json()["floatingip"]
    associate = member.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": port["id"]}},
                           endpoint_filter=NETWORK)
    delete = member.delete(f"/servers/{server['id']}", endpoint_filter=compute)
    wait_until(lambda: member.get(f"/servers/{server['id']}", endpoint_filter=compute,
                                  raise_exc=False).status_code == 404, "the server deleted", 15, interval=0.05)
    shown = member.get(f"/v2.0/floatingips/{fip['id']}", endpoint_filter=NETWORK).json()["floatingip"]
    assert (shown["port_id"], shown["status"]) == (port["id"], "ERROR")
    fired = admin.get(f"{embedded.base_url}/fakecloud/faults").json()["fired"]
    (record,) = [f for f in fired if f["fault"] == FAULT]
    assert record["resource_id"] == fip["id"] and record["log"] == "neutron-server.log"
    assert associate.headers["x-openstack-request-id"] in record["request_ids"]
    assert delete.headers["x-openstack-request-id"] in record["request_ids"]


def test_each_cloud_has_its_own_floating_ip_range(cloud, cloud_factory):
    """Two clouds on one machine hand out floating IPs (where guests listen) from different
    loopback ranges; --public-cidr picks one, and only inside 127.0.0.0/8."""
    from novastress_locust.fakecloud import EmbeddedCloudError
    chosen = cloud_factory(faults="none", extra_args=["--public-cidr", "127.201.0.0/16"])
    assert public_cidr(chosen.session()) == ipaddress.ip_network("127.201.0.0/16")
    assert public_cidr(chosen.session()) != public_cidr(cloud.session())
    with pytest.raises(EmbeddedCloudError, match=r"'10.0.0.0/8': use a loopback subnet"):
        cloud_factory(faults="none", extra_args=["--public-cidr", "10.0.0.0/8"])
