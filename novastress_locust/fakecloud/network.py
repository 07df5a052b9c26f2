"""Neutron v2.0: networks, subnets, ports, security groups, floating IPs, routers.

At start: a shared network "private" (fake addresses, nothing is ever sent there)
and an external network "public" whose floating IPs are 127.X.y.z loopback
addresses, joined by a router as devstack does (`external_network=False`: no "public", no
router, no floating IPs, as in many real clouds; `tenant_network=False`: no "private", as in
the real minimal stack, so servers boot without addresses). Floating IP association completes
asynchronously (DOWN -> ACTIVE) like the L3 agent; `release_ports` holds the
planted fault `floating-ip-delete-race`.
"""
from __future__ import annotations

import ipaddress
import itertools
import random
import time
import uuid
from collections import deque

from .http import Response
from .logs import LogContext, fake_traceback
from .service import ApiError, Call, Service, now_iso

PRIVATE_CIDR = "10.0.0.0/16"
PUBLIC_RANGE = range(100, 200)   # second octet of a cloud's floating-IP /16 inside 127.0.0.0/8
# query parameters that are paging/sorting/field selection, never attribute filters
NON_FILTERS = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}
KEYSTONE_401 = "The request you have made requires authentication."
FAULT = "floating-ip-delete-race"


def pick_public_cidr() -> str:
    """A loopback /16 for floating IPs, random per cloud (not from the seeded generator: the
    cloud's fault decisions stay the same for a seed)."""
    return f"127.{random.SystemRandom().choice(PUBLIC_RANGE)}.0.0/16"


class AddressPool:
    """Free addresses of one subnet: released ones are reused before new ones are taken."""

    def __init__(self, cidr: str, first_offset: int = 2) -> None:
        network = ipaddress.ip_network(cidr)
        self.network = network
        self.gateway = str(network.network_address + 1)
        self._next = int(network.network_address) + first_offset
        self._last = int(network.broadcast_address) - 1
        self._free: deque[str] = deque()
        self._used: set[str] = set()

    @property
    def start(self) -> str:
        return str(ipaddress.ip_address(self._next))

    @property
    def end(self) -> str:
        return str(ipaddress.ip_address(self._last))

    def take(self) -> str | None:
        while self._free:
            address = self._free.popleft()
            if address not in self._used:
                self._used.add(address)
                return address
        while self._next <= self._last:
            address = str(ipaddress.ip_address(self._next))
            self._next += 1
            if address not in self._used:
                self._used.add(address)
                return address
        return None

    def give_back(self, address: str) -> None:
        if address in self._used:
            self._used.discard(address)
            self._free.append(address)


def neutron_error(status: int, kind: str, message: str) -> ApiError:
    return ApiError(status, message, kind)


class Network(Service):
    name = "network"
    prefix = "/networking"
    log_name = "neutron-server"

    def setup(self) -> None:
        self.networks: dict[str, dict] = {}
        self.subnets: dict[str, dict] = {}
        self.ports: dict[str, dict] = {}
        self.security_groups: dict[str, dict] = {}
        self.rules: dict[str, dict] = {}
        self.floating_ips: dict[str, dict] = {}
        self.routers: dict[str, dict] = {}
        self.pools: dict[str, AddressPool] = {}  # subnet id -> its free addresses
        # indexes so that a lookup stays a dict get with thousands of records
        self.ports_by_device: dict[str, set[str]] = {}
        self.ports_by_network: dict[str, set[str]] = {}
        self.fips_by_port: dict[str, set[str]] = {}
        self.fip_by_address: dict[str, str] = {}
        self.default_group: dict[str, str] = {}  # project id -> its "default" security group
        # floating ip id -> request ids of the association still in flight
        self.pending_association: dict[str, list[str]] = {}
        self._standard_attr = itertools.count(1)
        self.public_cidr = self.cloud.config.public_cidr or pick_public_cidr()
        self._bootstrap()
        r = self.router
        r.add("GET", "", self.versions, auth=False)
        r.add("GET", "/v2.0", self.resources)
        r.add("GET", "/v2.0/extensions", self.extensions)
        r.add("GET", "/v2.0/quotas/{project_id}", self.show_quota)
        r.add("GET", "/v2.0/quotas/{project_id}/details", self.show_quota_details)
        for collection, singular in (("networks", "network"), ("subnets", "subnet"),
                                     ("ports", "port"), ("security-groups", "security_group"),
                                     ("security-group-rules", "security_group_rule"),
                                     ("floatingips", "floatingip"), ("routers", "router")):
            r.add("GET", f"/v2.0/{collection}", getattr(self, f"list_{singular}s"))
            r.add("POST", f"/v2.0/{collection}", getattr(self, f"create_{singular}"))
            r.add("GET", f"/v2.0/{collection}/{{resource_id}}", getattr(self, f"show_{singular}"))
            r.add("DELETE", f"/v2.0/{collection}/{{resource_id}}", getattr(self, f"delete_{singular}"))
        r.add("PUT", "/v2.0/floatingips/{resource_id}", self.update_floatingip)
        r.add("PUT", "/v2.0/ports/{resource_id}", self.update_port)
        r.add("PUT", "/v2.0/routers/{resource_id}/add_router_interface", self.add_router_interface)
        r.add("PUT", "/v2.0/routers/{resource_id}/remove_router_interface",
              self.remove_router_interface)

    # -- start-up ------------------------------------------------------------
    def _stamp(self, record: dict, revision: int = 0) -> dict:
        stamp = now_iso()
        record.update(tags=[], created_at=stamp, updated_at=stamp, revision_number=revision)
        return record

    def _bootstrap(self) -> None:
        # owned by the admin project once Keystone exists; set in on_project_created
        self.private = self.private_subnet = self.public = self.public_subnet = self.default_router = None
        self.bootstrapped = []
        if self.cloud.config.tenant_network:
            self.private = self._add_network("private", None, shared=True, external=False)
            self.private_subnet = self._add_subnet(self.private, "private-subnet", PRIVATE_CIDR, None)
            self.bootstrapped += [self.private, self.private_subnet]
        if not self.cloud.config.external_network:
            return   # no floating IPs in this cloud: nothing to route to
        self.public = self._add_network("public", None, shared=False, external=True)
        self.public_subnet = self._add_subnet(self.public, "public-subnet", self.public_cidr, None)
        self.default_router = self._add_router("router1", None, self.public["id"])
        if self.private_subnet:
            self.default_router["interfaces"].append(self.private_subnet["id"])
        self.bootstrapped += [self.public, self.public_subnet, self.default_router]

    def _add_network(self, name: str, project_id: str | None, shared: bool, external: bool,
                     description: str = "") -> dict:
        network_id = str(uuid.uuid4())
        network = self._stamp({
            "id": network_id, "name": name, "tenant_id": project_id, "project_id": project_id,
            "admin_state_up": True, "mtu": 1442, "status": "ACTIVE", "subnets": [], "shared": shared,
            "availability_zone_hints": [], "availability_zones": ["nova"],
            "ipv4_address_scope": None, "ipv6_address_scope": None, "router:external": external,
            "description": description, "port_security_enabled": True, "qos_policy_id": None,
            "l2_adjacency": True, "dns_domain": "", "is_default": external,
            "provider:network_type": "flat" if external else "geneve",
            "provider:physical_network": "public" if external else None,
            "provider:segmentation_id": None if external else 1000 + len(self.networks)}, 1)
        self.networks[network_id] = network
        self.ports_by_network[network_id] = set()
        return network

    def _add_subnet(self, network: dict, name: str, cidr: str, project_id: str | None) -> dict:
        pool = AddressPool(cidr)
        subnet_id = str(uuid.uuid4())
        subnet = self._stamp({
            "id": subnet_id, "name": name, "tenant_id": project_id, "project_id": project_id,
            "network_id": network["id"], "ip_version": 4, "subnetpool_id": None, "enable_dhcp": True,
            "ipv6_ra_mode": None, "ipv6_address_mode": None, "gateway_ip": pool.gateway,
            "cidr": str(pool.network), "allocation_pools": [{"start": pool.start, "end": pool.end}],
            "host_routes": [], "dns_nameservers": [], "description": "", "service_types": [],
            "dns_publish_fixed_ip": False, "router:external": network["router:external"]})
        self.subnets[subnet_id] = subnet
        self.pools[subnet_id] = pool
        network["subnets"].append(subnet_id)
        return subnet

    def _add_router(self, name: str, project_id: str | None, gateway_network_id: str | None) -> dict:
        router_id = str(uuid.uuid4())
        gateway = None
        if gateway_network_id:
            public_pool = self.pools[self.networks[gateway_network_id]["subnets"][0]]
            gateway = {"network_id": gateway_network_id, "enable_snat": True,
                       "external_fixed_ips": [{"subnet_id": self.networks[gateway_network_id]["subnets"][0],
                                               "ip_address": public_pool.take()}]}
        router = self._stamp({
            "id": router_id, "name": name, "tenant_id": project_id, "project_id": project_id,
            "admin_state_up": True, "status": "ACTIVE", "external_gateway_info": gateway,
            "description": "", "availability_zones": ["nova"], "availability_zone_hints": [],
            "routes": [], "flavor_id": None, "distributed": False, "ha": False,
            "interfaces": []}, 1)
        self.routers[router_id] = router
        return router

    def on_project_created(self, project) -> None:
        if project.name == "admin":
            for record in self.bootstrapped:
                if record["project_id"] is None:
                    record["project_id"] = record["tenant_id"] = project.id

    def before(self, call: Call) -> None:
        if call.token is not None and call.token.project_id:
            self.ensure_default_group(call.token.project_id)

    def ensure_default_group(self, project_id: str) -> str:
        """The project's "default" security group, made as Neutron makes it: on the project's first
        call to the network API (its own, or Nova's for its server's port), not when Keystone makes
        the project (one never used leaves no group behind when it is deleted)."""
        if project_id not in self.default_group:
            group = self._add_security_group(project_id, "default", "Default security group")
            self.default_group[project_id] = group["id"]
            for ethertype in ("IPv4", "IPv6"):
                self._add_rule(group, "egress", ethertype, None)
                self._add_rule(group, "ingress", ethertype, group["id"])
        return self.default_group[project_id]

    def _add_security_group(self, project_id: str, name: str, description: str) -> dict:
        group_id = str(uuid.uuid4())
        group = self._stamp({"id": group_id, "name": name, "stateful": True, "tenant_id": project_id,
                             "project_id": project_id, "description": description, "shared": False,
                             "rule_ids": []}, 1)
        self.security_groups[group_id] = group
        return group

    def _add_rule(self, group: dict, direction: str, ethertype: str, remote_group_id: str | None,
                  protocol: str | None = None, port_min: int | None = None,
                  port_max: int | None = None, remote_ip_prefix: str | None = None,
                  description: str | None = None) -> dict:
        rule_id = str(uuid.uuid4())
        rule = self._stamp({
            "id": rule_id, "project_id": group["project_id"], "security_group_id": group["id"],
            "ethertype": ethertype, "direction": direction, "protocol": protocol,
            "port_range_min": port_min, "port_range_max": port_max,
            "remote_ip_prefix": remote_ip_prefix, "remote_address_group_id": None,
            "normalized_cidr": remote_ip_prefix, "remote_group_id": remote_group_id,
            "standard_attr_id": next(self._standard_attr), "belongs_to_default_sg": None,
            "description": description})
        rule["tenant_id"] = group["project_id"]
        self.rules[rule_id] = rule
        group["rule_ids"].append(rule_id)
        return rule

    # -- interface for compute ---------------------------------------------------
    def networks_for(self, project_id: str) -> list[dict]:
        """Networks the project may boot on: its own and shared ones (not external)."""
        return [n for n in self.networks.values()
                if not n["router:external"] and (n["shared"] or n["project_id"] == project_id)]

    def allocate_port(self, project_id: str, network_id: str, device_id: str,
                      ids: list[str]) -> dict:
        """A bound compute port on the network; KeyError when the network is unknown."""
        network = self.networks[network_id]
        port = self._new_port(network, project_id, device_id, "compute:nova", name="")
        port["status"] = "ACTIVE"
        port["binding:vif_type"] = "ovs"
        self._write(ids, "INFO", "neutron.plugins.ml2.plugin",
                    f"Port {port['id']} created for device {device_id} on network {network_id}",
                    project_id=project_id)
        return port

    def ports_of(self, device_id: str) -> list[dict]:
        return [self.ports[p] for p in self.ports_by_device.get(device_id, ()) if p in self.ports]

    def release_ports(self, device_id: str, ids: list[str]) -> None:
        """Delete the device's ports; their floating IPs are disassociated (or, with the
        planted fault, an association still in flight keeps pointing at the deleted port)."""
        for port in self.ports_of(device_id):
            for fip_id in list(self.fips_by_port.get(port["id"], ())):
                fip = self.floating_ips.get(fip_id)
                if fip is None:
                    continue
                in_flight = self.pending_association.get(fip_id)
                if in_flight is not None and self.cloud.faults.roll(FAULT):
                    self._fire_delete_race(fip, port, in_flight, ids)
                else:
                    self._disassociate(fip)
            self._remove_port(port)
            self._write(ids, "INFO", "neutron.plugins.ml2.plugin",
                        f"Port {port['id']} of device {device_id} deleted",
                        project_id=port["project_id"])

    def floating_ips_of(self, device_id: str) -> list[dict]:
        found = []
        for port_id in self.ports_by_device.get(device_id, ()):
            found.extend(self.floating_ips[f] for f in self.fips_by_port.get(port_id, ())
                         if f in self.floating_ips)
        return found

    def has_security_group(self, project_id: str, name_or_id: str) -> bool:
        """Whether the project has a security group of that name or id (Nova's validate_name)."""
        return self.find_security_group(project_id, name_or_id) is not None

    def find_security_group(self, project_id: str, name_or_id: str) -> dict | None:
        """The project's security group of that id, else of that name."""
        self.ensure_default_group(project_id)
        owned = [group for group in self.security_groups.values() if group["project_id"] == project_id]
        return next((group for group in owned if group["id"] == name_or_id), None) or \
            next((group for group in owned if group["name"] == name_or_id), None)

    def security_group_names(self, project_id: str) -> list[str]:
        group_id = self.ensure_default_group(project_id)
        return [self.security_groups[group_id]["name"]] if group_id in self.security_groups else []

    # -- the planted fault -----------------------------------------------------
    def _fire_delete_race(self, fip: dict, port: dict, association_ids: list[str],
                          delete_ids: list[str]) -> None:
        self.pending_association.pop(fip["id"], None)
        fip["status"] = "ERROR"
        fip["updated_at"] = now_iso()
        local_id = f"req-{uuid.uuid4()}"
        delete_ids = [i for i in delete_ids if i]
        context = LogContext(local_id, delete_ids[0] if delete_ids else None)
        detail = (f"Floating IP {fip['id']} ({fip['floating_ip_address']}) association to port "
                  f"{port['id']} (request {association_ids[-1] if association_ids else '-'}) was "
                  f"still in flight when the port was deleted; the floating IP points at a port "
                  f"that no longer exists")
        trace = fake_traceback([
            ("/opt/stack/neutron/neutron/db/l3_db.py", 1502, "_update_fip_assoc",
             "port = self._core_plugin.get_port(context.elevated(), fip['port_id'])"),
            ("/opt/stack/neutron/neutron/plugins/ml2/plugin.py", 2251, "get_port",
             "port_db = self._get_port(context, id)"),
            ("/opt/stack/neutron/neutron/db/db_base_plugin_common.py", 290, "_get_port",
             "raise exceptions.PortNotFound(port_id=id)")],
            "neutron_lib.exceptions.PortNotFound", f"Port {port['id']} could not be found.")
        self.cloud.logs.network.write(
            "ERROR", "neutron.db.l3_db",
            f"Failed to complete floating IP {fip['id']} association (request "
            f"{' '.join(association_ids) or '-'}) after port {port['id']} was deleted by request "
            f"{' '.join(delete_ids) or '-'}: PortNotFound: Port {port['id']} could not be found.",
            context, traceback=trace)
        self.cloud.faults.fired(FAULT, [*association_ids, *delete_ids, local_id], fip["id"], detail,
                                log="neutron-server.log")

    # -- helpers -------------------------------------------------------------------
    def _write(self, ids: list[str], level: str, logger: str, message: str,
               project_id: str | None = None) -> None:
        """A neutron-server line for an internal call: the caller's global id, our own local id."""
        ids = [i for i in ids if i]
        context = LogContext(f"req-{uuid.uuid4()}", ids[0] if ids else None, None, project_id)
        self.cloud.logs.network.write(level, logger, message, context)

    def _new_port(self, network: dict, project_id: str, device_id: str, device_owner: str,
                  name: str = "", fixed_ips: list[dict] | None = None,
                  security_groups: list[str] | None = None) -> dict:
        addresses = []
        for subnet_id in network["subnets"][:1] if fixed_ips is None else []:
            address = self.pools[subnet_id].take()
            if address is None:
                raise neutron_error(409, "IpAddressGenerationFailure",
                                    f"No more IP addresses available on network {network['id']}.")
            addresses.append({"subnet_id": subnet_id, "ip_address": address})
        for wanted in fixed_ips or ():
            subnet_id = wanted.get("subnet_id") or (network["subnets"] or [None])[0]
            if subnet_id not in self.pools:
                raise neutron_error(404, "SubnetNotFound", f"Subnet {subnet_id} could not be found.")
            address = self.pools[subnet_id].take()
            if address is None:
                raise neutron_error(409, "IpAddressGenerationFailure",
                                    f"No more IP addresses available on network {network['id']}.")
            addresses.append({"subnet_id": subnet_id, "ip_address": address})
        if security_groups is None:
            security_groups = [self.ensure_default_group(project_id)]
        port_id = str(uuid.uuid4())
        mac = "fa:16:3e:" + ":".join(f"{self.cloud.rng.randrange(256):02x}" for _ in range(3))
        port = self._stamp({
            "id": port_id, "name": name, "network_id": network["id"], "tenant_id": project_id,
            "project_id": project_id, "mac_address": mac, "admin_state_up": True, "status": "DOWN",
            "device_id": device_id, "device_owner": device_owner, "fixed_ips": addresses,
            "allowed_address_pairs": [], "extra_dhcp_opts": [], "security_groups": security_groups,
            "description": "", "binding:vnic_type": "normal", "binding:host_id": "",
            "binding:profile": {}, "binding:vif_type": "unbound", "binding:vif_details": {},
            "port_security_enabled": True, "dns_name": "", "qos_policy_id": None,
            "qos_network_policy_id": None, "propagate_uplink_status": False,
            "ip_allocation": "immediate"}, 1)
        self.ports[port_id] = port
        self.ports_by_network.setdefault(network["id"], set()).add(port_id)
        if device_id:
            self.ports_by_device.setdefault(device_id, set()).add(port_id)
        return port

    def _remove_port(self, port: dict) -> None:
        self.ports.pop(port["id"], None)
        for fixed in port["fixed_ips"]:
            pool = self.pools.get(fixed["subnet_id"])
            if pool:
                pool.give_back(fixed["ip_address"])
        for index, key in ((self.ports_by_device, port["device_id"]),
                           (self.ports_by_network, port["network_id"])):
            members = index.get(key)
            if members is not None:
                members.discard(port["id"])
                if not members and index is self.ports_by_device:
                    del index[key]

    def _disassociate(self, fip: dict) -> None:
        self.pending_association.pop(fip["id"], None)
        port_id = fip["port_id"]
        if port_id:
            members = self.fips_by_port.get(port_id)
            if members is not None:
                members.discard(fip["id"])
                if not members:
                    del self.fips_by_port[port_id]
        fip.update(port_id=None, fixed_ip_address=None, router_id=None, status="DOWN",
                   port_details=None, updated_at=now_iso())
        fip["revision_number"] += 1
        self._guest_sync(port_id)

    def _guest_sync(self, port_id: str | None) -> None:
        """The guest behind the port answers SSH exactly on its ACTIVE floating IPs."""
        guests = getattr(self.cloud, "guests", None)
        port = self.ports.get(port_id or "")
        if guests is not None and port is not None and port["device_id"]:
            guests.sync(port["device_id"])

    def _visible(self, call: Call, record: dict) -> bool:
        token = call.token
        return (token.is_admin or record.get("project_id") == token.project_id
                or record.get("shared") is True or record.get("router:external") is True)

    def _get(self, call: Call, records: dict[str, dict], resource_id: str, kind: str,
             message: str) -> dict:
        record = records.get(resource_id)
        if record is None or not self._visible(call, record):
            raise neutron_error(404, kind, message.format(resource_id))
        return record

    def _owned(self, call: Call, record: dict, action: str) -> None:
        if not (call.token.is_admin or record.get("project_id") == call.token.project_id):
            raise neutron_error(403, "PolicyNotAuthorized",
                                f"({action}) is disallowed by policy")

    def _body(self, call: Call, key: str) -> dict:
        body = call.body()
        spec = body.get(key) if isinstance(body, dict) else None
        if not isinstance(spec, dict):
            raise neutron_error(400, "HTTPBadRequest", f"Resource body required: '{key}' missing")
        return spec

    def _owner(self, call: Call, spec: dict) -> str:
        owner = spec.get("project_id") or spec.get("tenant_id") or call.token.project_id
        if owner != call.token.project_id and not call.token.is_admin:
            raise neutron_error(403, "HTTPForbidden",
                                "Specifying 'project_id' or 'tenant_id' other than the "
                                "authenticated project in request requires admin privileges")
        return owner

    def _listing(self, call: Call, records, view, visible=None) -> list[dict]:
        """Neutron's generic list: every attribute is a filter (repeat a key for OR),
        `fields` selects keys, limit/marker page."""
        query = call.request.query
        filters = {key: set(values) for key, values in query.items() if key not in NON_FILTERS}
        if "tenant_id" in filters:
            filters.setdefault("project_id", set()).update(filters.pop("tenant_id"))
        visible = visible or self._visible
        found = []
        for record in records:
            if not visible(call, record):
                continue
            shown = view(call, record)
            if all(_matches(shown[key], wanted) for key, wanted in filters.items() if key in shown):
                found.append(shown)
        marker = call.request.arg("marker")
        if marker:
            ids = [item["id"] for item in found]
            found = found[ids.index(marker) + 1:] if marker in ids else found
        limit = call.request.arg("limit")
        if limit and limit.isdigit() and int(limit) > 0:
            found = found[:int(limit)]
        fields = query.get("fields")
        if fields:
            found = [{key: item[key] for key in fields if key in item} for item in found]
        return found

    def _candidates(self, call: Call, records: dict[str, dict],
                    indexes: dict[str, dict[str, set[str]]]) -> list[dict]:
        """Records to filter: an indexed filter or an id narrows the scan to a dict get."""
        request = call.request
        ids = request.query.get("id")
        if ids:
            return [records[i] for i in ids if i in records]
        for key, index in indexes.items():
            values = request.query.get(key)
            if values:
                return [records[i] for value in values for i in index.get(value, ()) if i in records]
        return list(records.values())

    # -- discovery ---------------------------------------------------------------
    def versions(self, call: Call) -> Response:
        return Response.json(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
            {"href": f"{self.url}/v2.0/", "rel": "self"}]}]})

    def resources(self, call: Call) -> Response:
        names = (("subnet", "subnets"), ("network", "networks"), ("port", "ports"),
                 ("security_group", "security-groups"), ("floatingip", "floatingips"),
                 ("router", "routers"))
        return Response.json(200, {"resources": [
            {"name": singular, "collection": collection,
             "links": [{"href": f"{self.url}/v2.0/{collection}", "rel": "self"}]}
            for singular, collection in names]})

    def extensions(self, call: Call) -> Response:
        aliases = ("external-net", "router", "security-group", "quotas", "standard-attr-description",
                   "standard-attr-tag", "standard-attr-timestamp", "standard-attr-revisions",
                   "binding", "port-security", "project-id", "fip-port-details", "extraroute",
                   "agent", "availability_zone", "network_availability_zone", "net-mtu",
                   "ext-gw-mode", "dns-integration", "stateful-security-group")
        return Response.json(200, {"extensions": [
            {"name": alias, "alias": alias, "description": f"{alias} extension",
             "updated": "2013-01-01T10:00:00-00:00", "links": []} for alias in aliases]})

    def _quota(self) -> dict:
        return {"network": 100, "subnet": 100, "subnetpool": -1, "port": 500, "router": 10,
                "floatingip": self.cloud.config.quota_floating_ips, "security_group": 10,
                "security_group_rule": 100, "rbac_policy": 10}

    def show_quota(self, call: Call, project_id: str) -> Response:
        return Response.json(200, {"quota": self._quota()})

    def show_quota_details(self, call: Call, project_id: str) -> Response:
        used = {"floatingip": sum(1 for f in self.floating_ips.values()
                                  if f["project_id"] == project_id),
                "port": sum(1 for p in self.ports.values() if p["project_id"] == project_id),
                "security_group": sum(1 for g in self.security_groups.values()
                                      if g["project_id"] == project_id)}
        return Response.json(200, {"quota": {key: {"limit": limit, "used": used.get(key, 0),
                                                   "reserved": 0}
                                             for key, limit in self._quota().items()}})

    # -- networks ------------------------------------------------------------------
    def _network_view(self, call: Call, network: dict) -> dict:
        if call.token.is_admin:
            return network
        return {k: v for k, v in network.items() if not k.startswith("provider:")}

    def list_networks(self, call: Call) -> Response:
        found = self._listing(call, self._candidates(call, self.networks, {}), self._network_view)
        return Response.json(200, {"networks": found})

    def show_network(self, call: Call, resource_id: str) -> Response:
        network = self._get(call, self.networks, resource_id, "NetworkNotFound",
                            "Network {} could not be found.")
        return Response.json(200, {"network": self._network_view(call, network)})

    def create_network(self, call: Call) -> Response:
        spec = self._body(call, "network")
        owner = self._owner(call, spec)
        shared = bool(spec.get("shared", False))
        external = bool(spec.get("router:external", False))
        if (shared or external) and not call.token.is_admin:
            rule = "create_network:shared" if shared else "create_network:router:external"
            raise neutron_error(403, "PolicyNotAuthorized", f"(rule:{rule}) is disallowed by policy")
        network = self._add_network(spec.get("name", ""), owner, shared, external,
                                    spec.get("description", ""))
        return Response.json(201, {"network": self._network_view(call, network)})

    def delete_network(self, call: Call, resource_id: str) -> Response:
        network = self._get(call, self.networks, resource_id, "NetworkNotFound",
                            "Network {} could not be found.")
        self._owned(call, network, "rule:delete_network")
        busy = [p for p in self.ports_by_network.get(resource_id, ())
                if self.ports[p]["device_owner"] != "network:dhcp"]
        if busy or any(f["floating_network_id"] == resource_id for f in self.floating_ips.values()):
            raise neutron_error(409, "NetworkInUse",
                                f"Unable to complete operation on network {resource_id}. There are "
                                "one or more ports still in use on the network.")
        for port_id in list(self.ports_by_network.get(resource_id, ())):
            self._remove_port(self.ports[port_id])
        for subnet_id in network["subnets"]:
            self.subnets.pop(subnet_id, None)
            self.pools.pop(subnet_id, None)
        del self.networks[resource_id]
        self.ports_by_network.pop(resource_id, None)
        return Response(204, b"", content_type=None)

    # -- subnets ---------------------------------------------------------------------
    def _plain_view(self, call: Call, record: dict) -> dict:
        return record

    def list_subnets(self, call: Call) -> Response:
        found = self._listing(call, self._candidates(call, self.subnets, {}), self._plain_view,
                              self._subnet_visible)
        return Response.json(200, {"subnets": found})

    def _subnet_visible(self, call: Call, subnet: dict) -> bool:
        network = self.networks.get(subnet["network_id"])
        return self._visible(call, subnet) or (network is not None and self._visible(call, network))

    def show_subnet(self, call: Call, resource_id: str) -> Response:
        subnet = self.subnets.get(resource_id)
        if subnet is None or not self._subnet_visible(call, subnet):
            raise neutron_error(404, "SubnetNotFound", f"Subnet {resource_id} could not be found.")
        return Response.json(200, {"subnet": subnet})

    def create_subnet(self, call: Call) -> Response:
        spec = self._body(call, "subnet")
        network = self._get(call, self.networks, spec.get("network_id", ""), "NetworkNotFound",
                            "Network {} could not be found.")
        self._owned(call, network, "rule:create_subnet")
        try:
            cidr = str(ipaddress.ip_network(spec.get("cidr", ""), strict=False))
        except ValueError:
            raise neutron_error(400, "HTTPBadRequest",
                                f"Invalid input for cidr. Reason: '{spec.get('cidr')}' is not a "
                                "valid IP subnet.") from None
        subnet = self._add_subnet(network, spec.get("name", ""), cidr, self._owner(call, spec))
        return Response.json(201, {"subnet": subnet})

    def delete_subnet(self, call: Call, resource_id: str) -> Response:
        subnet = self.subnets.get(resource_id)
        if subnet is None or not self._subnet_visible(call, subnet):
            raise neutron_error(404, "SubnetNotFound", f"Subnet {resource_id} could not be found.")
        self._owned(call, subnet, "rule:delete_subnet")
        network = self.networks[subnet["network_id"]]
        if any(fixed["subnet_id"] == resource_id for p in self.ports_by_network[network["id"]]
               for fixed in self.ports[p]["fixed_ips"]):
            raise neutron_error(409, "SubnetInUse",
                                f"Unable to complete operation on subnet {resource_id}: One or more "
                                "ports have an IP allocation from this subnet.")
        del self.subnets[resource_id]
        self.pools.pop(resource_id, None)
        network["subnets"].remove(resource_id)
        return Response(204, b"", content_type=None)

    # -- ports -------------------------------------------------------------------------
    def _port_view(self, call: Call, port: dict) -> dict:
        if call.token.is_admin:
            return port
        return {k: v for k, v in port.items()
                if k not in ("binding:host_id", "binding:profile", "binding:vif_type",
                             "binding:vif_details")}

    def list_ports(self, call: Call) -> Response:
        candidates = self._candidates(call, self.ports, {"device_id": self.ports_by_device,
                                                         "network_id": self.ports_by_network})
        return Response.json(200, {"ports": self._listing(call, candidates, self._port_view)})

    def show_port(self, call: Call, resource_id: str) -> Response:
        port = self._get(call, self.ports, resource_id, "PortNotFound", "Port {} could not be found.")
        return Response.json(200, {"port": self._port_view(call, port)})

    def create_port(self, call: Call) -> Response:
        spec = self._body(call, "port")
        network = self._get(call, self.networks, spec.get("network_id", ""), "NetworkNotFound",
                            "Network {} could not be found.")
        owner = self._owner(call, spec)
        if network["router:external"] and not call.token.is_admin:
            raise neutron_error(403, "PolicyNotAuthorized",
                                "(rule:create_port and rule:create_port:fixed_ips) is disallowed "
                                "by policy")
        groups = spec.get("security_groups")
        for group_id in groups or ():
            self._get(call, self.security_groups, group_id, "SecurityGroupNotFound",
                      "Security group {} does not exist")
        port = self._new_port(network, owner, spec.get("device_id", ""), spec.get("device_owner", ""),
                              spec.get("name", ""), spec.get("fixed_ips"), groups)
        return Response.json(201, {"port": self._port_view(call, port)})

    def update_port(self, call: Call, resource_id: str) -> Response:
        port = self._get(call, self.ports, resource_id, "PortNotFound", "Port {} could not be found.")
        self._owned(call, port, "rule:update_port")
        spec = self._body(call, "port")
        for key in ("name", "description", "admin_state_up"):
            if key in spec:
                port[key] = spec[key]
        if "device_id" in spec and spec["device_id"] != port["device_id"]:
            members = self.ports_by_device.get(port["device_id"])
            if members is not None:
                members.discard(resource_id)
            port["device_id"] = spec["device_id"]
            if port["device_id"]:
                self.ports_by_device.setdefault(port["device_id"], set()).add(resource_id)
        port["updated_at"] = now_iso()
        port["revision_number"] += 1
        return Response.json(200, {"port": self._port_view(call, port)})

    def delete_port(self, call: Call, resource_id: str) -> Response:
        port = self._get(call, self.ports, resource_id, "PortNotFound", "Port {} could not be found.")
        self._owned(call, port, "rule:delete_port")
        for fip_id in list(self.fips_by_port.get(resource_id, ())):
            self._disassociate(self.floating_ips[fip_id])
        self._remove_port(port)
        return Response(204, b"", content_type=None)

    # -- security groups ------------------------------------------------------------------
    def _group_view(self, call: Call, group: dict) -> dict:
        view = {k: v for k, v in group.items() if k != "rule_ids"}
        view["security_group_rules"] = [self.rules[r] for r in group["rule_ids"] if r in self.rules]
        return view

    def list_security_groups(self, call: Call) -> Response:
        candidates = self._candidates(call, self.security_groups, {})
        return Response.json(200, {"security_groups": self._listing(call, candidates,
                                                                    self._group_view)})

    def show_security_group(self, call: Call, resource_id: str) -> Response:
        group = self._get(call, self.security_groups, resource_id, "SecurityGroupNotFound",
                          "Security group {} does not exist")
        return Response.json(200, {"security_group": self._group_view(call, group)})

    def create_security_group(self, call: Call) -> Response:
        spec = self._body(call, "security_group")
        owner = self._owner(call, spec)
        if spec.get("name") == "default":
            raise neutron_error(409, "SecurityGroupDefaultAlreadyExists",
                                "Default security group already exists.")
        group = self._add_security_group(owner, spec.get("name", ""), spec.get("description", ""))
        for ethertype in ("IPv4", "IPv6"):
            self._add_rule(group, "egress", ethertype, None)
        return Response.json(201, {"security_group": self._group_view(call, group)})

    def delete_security_group(self, call: Call, resource_id: str) -> Response:
        group = self._get(call, self.security_groups, resource_id, "SecurityGroupNotFound",
                          "Security group {} does not exist")
        self._owned(call, group, "rule:delete_security_group")
        if group["name"] == "default" and not call.token.is_admin:
            raise neutron_error(409, "SecurityGroupCannotRemoveDefault",
                                "Insufficient rights for removing default security group.")
        if any(resource_id in p["security_groups"] for p in self.ports.values()):
            raise neutron_error(409, "SecurityGroupInUse", f"Security Group {resource_id} in use.")
        for rule_id in group["rule_ids"]:
            self.rules.pop(rule_id, None)
        del self.security_groups[resource_id]
        if self.default_group.get(group["project_id"]) == resource_id:
            del self.default_group[group["project_id"]]
        return Response(204, b"", content_type=None)

    def list_security_group_rules(self, call: Call) -> Response:
        candidates = self._candidates(call, self.rules, {})
        return Response.json(200, {"security_group_rules": self._listing(call, candidates,
                                                                         self._plain_view)})

    def show_security_group_rule(self, call: Call, resource_id: str) -> Response:
        rule = self._get(call, self.rules, resource_id, "SecurityGroupRuleNotFound",
                         "Security group rule {} does not exist")
        return Response.json(200, {"security_group_rule": rule})

    def create_security_group_rule(self, call: Call) -> Response:
        spec = self._body(call, "security_group_rule")
        group = self._get(call, self.security_groups, spec.get("security_group_id", ""),
                          "SecurityGroupNotFound", "Security group {} does not exist")
        self._owned(call, group, "rule:create_security_group_rule")
        direction = spec.get("direction")
        if direction not in ("ingress", "egress"):
            raise neutron_error(400, "HTTPBadRequest",
                                f"Invalid input for direction. Reason: {direction} is not in "
                                "valid_values.")
        ethertype = spec.get("ethertype", "IPv4")
        if ethertype not in ("IPv4", "IPv6"):
            raise neutron_error(400, "SecurityGroupRuleInvalidEtherType",
                                f"Security group rule for ethertype '{ethertype}' not supported. "
                                "Allowed values are ['IPv4', 'IPv6'].")
        protocol = spec.get("protocol")
        port_min, port_max = spec.get("port_range_min"), spec.get("port_range_max")
        if port_min is not None and port_max is not None and int(port_min) > int(port_max):
            raise neutron_error(400, "SecurityGroupInvalidPortRange",
                                "For TCP/UDP protocols, port_range_min must be <= port_range_max")
        signature = (direction, ethertype, protocol, port_min, port_max, spec.get("remote_ip_prefix"),
                     spec.get("remote_group_id"))
        for rule_id in group["rule_ids"]:
            rule = self.rules[rule_id]
            if signature == (rule["direction"], rule["ethertype"], rule["protocol"],
                             rule["port_range_min"], rule["port_range_max"],
                             rule["remote_ip_prefix"], rule["remote_group_id"]):
                raise neutron_error(409, "SecurityGroupRuleExists",
                                    f"Security group rule already exists. Rule id is {rule_id}.")
        rule = self._add_rule(group, direction, ethertype, spec.get("remote_group_id"), protocol,
                              port_min, port_max, spec.get("remote_ip_prefix"),
                              spec.get("description"))
        group["revision_number"] += 1
        # Neutron answers a create before its standard attributes are loaded: no id of theirs, no tags
        created = {key: value for key, value in rule.items() if key not in ("standard_attr_id", "tags")}
        return Response.json(201, {"security_group_rule": created})

    def delete_security_group_rule(self, call: Call, resource_id: str) -> Response:
        rule = self._get(call, self.rules, resource_id, "SecurityGroupRuleNotFound",
                         "Security group rule {} does not exist")
        self._owned(call, rule, "rule:delete_security_group_rule")
        del self.rules[resource_id]
        group = self.security_groups.get(rule["security_group_id"])
        if group:
            group["rule_ids"].remove(resource_id)
        return Response(204, b"", content_type=None)

    # -- floating IPs --------------------------------------------------------------------
    def list_floatingips(self, call: Call) -> Response:
        request = call.request
        address = request.arg("floating_ip_address")
        if address is not None:
            fip_id = self.fip_by_address.get(address)
            candidates = [self.floating_ips[fip_id]] if fip_id in self.floating_ips else []
        else:
            candidates = self._candidates(call, self.floating_ips, {"port_id": self.fips_by_port})
        return Response.json(200, {"floatingips": self._listing(call, candidates, self._plain_view)})

    def show_floatingip(self, call: Call, resource_id: str) -> Response:
        fip = self._get_fip(call, resource_id)
        return Response.json(200, {"floatingip": fip})

    def _get_fip(self, call: Call, fip_id: str) -> dict:
        fip = self.floating_ips.get(fip_id)
        if fip is None or not (call.token.is_admin or fip["project_id"] == call.token.project_id):
            raise neutron_error(404, "FloatingIPNotFound", f"Floating IP {fip_id} could not be found")
        return fip

    def create_floatingip(self, call: Call) -> Response:
        spec = self._body(call, "floatingip")
        network_id = spec.get("floating_network_id")
        network = self.networks.get(network_id or "")
        if network is None or not self._visible(call, network):
            raise neutron_error(404, "NetworkNotFound", f"Network {network_id} could not be found.")
        if not network["router:external"]:
            raise neutron_error(400, "BadRequest",
                                f"Bad floatingip request: Network {network_id} is not a valid "
                                "external network.")
        owner = self._owner(call, spec)
        allowed = self.cloud.config.quota_floating_ips
        if sum(1 for f in self.floating_ips.values() if f["project_id"] == owner) >= allowed:
            raise neutron_error(409, "OverQuota", "Quota exceeded for resources: ['floatingip'].")
        subnet_id = next((s for s in network["subnets"] if s in self.pools), None)
        address = self.pools[subnet_id].take() if subnet_id else None
        if address is None:
            raise neutron_error(409, "IpAddressGenerationFailure",
                                f"No more IP addresses available on network {network_id}.")
        fip_id = str(uuid.uuid4())
        fip = self._stamp({
            "id": fip_id, "tenant_id": owner, "project_id": owner, "floating_ip_address": address,
            "floating_network_id": network_id, "router_id": None, "port_id": None,
            "fixed_ip_address": None, "status": "DOWN", "description": spec.get("description", ""),
            "qos_policy_id": None, "port_details": None, "dns_domain": "", "dns_name": "",
            "port_forwardings": [], "subnet_id": subnet_id})
        self.floating_ips[fip_id] = fip
        self.fip_by_address[address] = fip_id
        self._log_request_detail(call, f"Floating IP {fip_id} ({address}) allocated")
        if spec.get("port_id"):
            self._associate(call, fip, spec["port_id"], spec.get("fixed_ip_address"))
        fip.pop("subnet_id", None)
        return Response.json(201, {"floatingip": fip})

    def update_floatingip(self, call: Call, resource_id: str) -> Response:
        fip = self._get_fip(call, resource_id)
        spec = self._body(call, "floatingip")
        if "port_id" not in spec:
            if "description" in spec:
                fip["description"] = spec["description"]
            return Response.json(200, {"floatingip": fip})
        if spec["port_id"]:
            self._associate(call, fip, spec["port_id"], spec.get("fixed_ip_address"))
        else:
            self._disassociate(fip)
            self._log_request_detail(call, f"Floating IP {resource_id} disassociated")
        return Response.json(200, {"floatingip": fip})

    def _associate(self, call: Call, fip: dict, port_id: str, fixed_ip: str | None) -> None:
        port = self.ports.get(port_id)
        if port is None or not (call.token.is_admin or port["project_id"] == call.token.project_id):
            raise neutron_error(404, "PortNotFound", f"Port {port_id} could not be found.")
        if not port["fixed_ips"]:
            raise neutron_error(400, "BadRequest", f"Bad floatingip request: Port {port_id} does "
                                                   "not have any IP addresses")
        chosen = next((f for f in port["fixed_ips"] if fixed_ip in (None, f["ip_address"])), None)
        if chosen is None:
            raise neutron_error(400, "BadRequest", f"Bad floatingip request: Port {port_id} does not "
                                                   f"have fixed ip {fixed_ip}.")
        for other_id in self.fips_by_port.get(port_id, ()):
            other = self.floating_ips.get(other_id)
            if other_id != fip["id"] and other and other["fixed_ip_address"] == chosen["ip_address"]:
                raise neutron_error(409, "FloatingIPPortAlreadyAssociated",
                                    f"Cannot associate floating IP {fip['floating_ip_address']} "
                                    f"({fip['id']}) with port {port_id} using fixed IP "
                                    f"{chosen['ip_address']}, as that fixed IP already has a "
                                    f"floating IP on external network {other['floating_network_id']}.")
        if fip["port_id"] and fip["port_id"] != port_id:
            self._disassociate(fip)
        router = next((r for r in self.routers.values() if chosen["subnet_id"] in r["interfaces"]),
                      None)
        fip.update(port_id=port_id, fixed_ip_address=chosen["ip_address"],
                   router_id=router["id"] if router else None, status="DOWN", updated_at=now_iso(),
                   port_details={"name": port["name"], "network_id": port["network_id"],
                                 "mac_address": port["mac_address"],
                                 "admin_state_up": port["admin_state_up"], "status": port["status"],
                                 "device_id": port["device_id"],
                                 "device_owner": port["device_owner"]})
        fip["revision_number"] += 1
        self.fips_by_port.setdefault(port_id, set()).add(fip["id"])
        # the L3 agent configures the address later: until then the association is in flight
        ids = call.ids  # one list object: identifies this association when it completes
        self.pending_association[fip["id"]] = ids
        self._log_request_detail(call, f"Floating IP {fip['id']} associating with port {port_id}")
        self.cloud.later(self.cloud.delay("network"), self._association_done, fip["id"], port_id,
                         ids)

    def _association_done(self, fip_id: str, port_id: str, ids: list[str]) -> None:
        fip = self.floating_ips.get(fip_id)
        if fip is None or self.pending_association.get(fip_id) is not ids:
            return  # deleted, disassociated, re-associated or left broken meanwhile
        del self.pending_association[fip_id]
        if fip["port_id"] == port_id and port_id in self.ports:
            fip["status"] = "ACTIVE"
            fip["updated_at"] = now_iso()
            self._guest_sync(port_id)

    def delete_floatingip(self, call: Call, resource_id: str) -> Response:
        fip = self._get_fip(call, resource_id)
        self._disassociate(fip)
        del self.floating_ips[resource_id]
        self.fip_by_address.pop(fip["floating_ip_address"], None)
        pool = self.pools.get(self.networks[fip["floating_network_id"]]["subnets"][0]) \
            if fip["floating_network_id"] in self.networks else None
        if pool:
            pool.give_back(fip["floating_ip_address"])
        self._log_request_detail(call, f"Floating IP {resource_id} deleted")
        return Response(204, b"", content_type=None)

    # -- routers -------------------------------------------------------------------------
    def _router_view(self, call: Call, router: dict) -> dict:
        return {k: v for k, v in router.items() if k != "interfaces"}

    def list_routers(self, call: Call) -> Response:
        candidates = self._candidates(call, self.routers, {})
        return Response.json(200, {"routers": self._listing(call, candidates, self._router_view)})

    def show_router(self, call: Call, resource_id: str) -> Response:
        router = self._get(call, self.routers, resource_id, "RouterNotFound",
                           "Router {} could not be found")
        return Response.json(200, {"router": self._router_view(call, router)})

    def create_router(self, call: Call) -> Response:
        spec = self._body(call, "router")
        owner = self._owner(call, spec)
        gateway = (spec.get("external_gateway_info") or {}).get("network_id")
        if gateway:
            network = self.networks.get(gateway)
            if network is None or not network["router:external"]:
                raise neutron_error(404, "NetworkNotFound", f"Network {gateway} could not be found.")
        router = self._add_router(spec.get("name", ""), owner, gateway)
        return Response.json(201, {"router": self._router_view(call, router)})

    def delete_router(self, call: Call, resource_id: str) -> Response:
        router = self._get(call, self.routers, resource_id, "RouterNotFound",
                           "Router {} could not be found")
        self._owned(call, router, "rule:delete_router")
        if router["interfaces"]:
            raise neutron_error(409, "RouterInUse",
                                f"Router {resource_id} still has ports")
        gateway = router["external_gateway_info"]
        if gateway:
            for fixed in gateway["external_fixed_ips"]:
                pool = self.pools.get(fixed["subnet_id"])
                if pool:
                    pool.give_back(fixed["ip_address"])
        del self.routers[resource_id]
        return Response(204, b"", content_type=None)

    def add_router_interface(self, call: Call, resource_id: str) -> Response:
        router = self._get(call, self.routers, resource_id, "RouterNotFound",
                           "Router {} could not be found")
        self._owned(call, router, "rule:add_router_interface")
        subnet_id = (call.body() or {}).get("subnet_id", "")
        subnet = self.subnets.get(subnet_id)
        if subnet is None or not self._subnet_visible(call, subnet):
            raise neutron_error(404, "SubnetNotFound", f"Subnet {subnet_id} could not be found.")
        if subnet_id not in router["interfaces"]:
            router["interfaces"].append(subnet_id)
        return Response.json(200, {"id": resource_id, "subnet_id": subnet_id,
                                   "subnet_ids": [subnet_id], "network_id": subnet["network_id"],
                                   "port_id": None, "tenant_id": router["project_id"],
                                   "project_id": router["project_id"]})

    def remove_router_interface(self, call: Call, resource_id: str) -> Response:
        router = self._get(call, self.routers, resource_id, "RouterNotFound",
                           "Router {} could not be found")
        self._owned(call, router, "rule:remove_router_interface")
        subnet_id = (call.body() or {}).get("subnet_id", "")
        if subnet_id not in router["interfaces"]:
            raise neutron_error(404, "RouterInterfaceNotFoundForSubnet",
                                f"Router {resource_id} has no interface on subnet {subnet_id}")
        router["interfaces"].remove(subnet_id)
        return Response.json(200, {"id": resource_id, "subnet_id": subnet_id,
                                   "subnet_ids": [subnet_id], "port_id": None,
                                   "tenant_id": router["project_id"],
                                   "project_id": router["project_id"]})

    # -- errors and logs ---------------------------------------------------------------------
    def _log_request_detail(self, call: Call, message: str) -> None:
        self.log(call, "INFO", "neutron.db.l3_db", message)

    def error(self, call: Call, error: ApiError) -> Response:
        if error.status == 401:
            return Response.json(401, {"error": {"code": 401, "title": "Unauthorized",
                                                 "message": KEYSTONE_401}}, error.headers)
        kind = error.kind or "HTTPError"
        if kind[0].islower():  # errors raised by the shared request flow
            kind = {404: "HTTPNotFound", 405: "HTTPMethodNotAllowed", 400: "HTTPBadRequest",
                    403: "HTTPForbidden"}.get(error.status, "HTTPError")
        return Response.json(error.status, {"NeutronError": {"type": kind, "message": error.message,
                                                             "detail": ""}}, error.headers)

    def finished(self, call: Call, response: Response) -> None:
        request = call.request
        elapsed = time.monotonic() - call.started
        self.log(call, "INFO", "neutron.wsgi",
                 f'{request.remote_addr} "{request.method} {request.target}" status: '
                 f"{response.status}  len: {len(response.body)} time: {elapsed:.7f}")


def _matches(value, wanted: set[str]) -> bool:
    """Whether a record value equals one of a filter's query strings (booleans case-blind)."""
    if isinstance(value, bool):
        return ("true" if value else "false") in {w.lower() for w in wanted}
    if isinstance(value, list):  # e.g. security_groups: any member matches
        return any(str(item) in wanted for item in value)
    return ("" if value is None else str(value)) in wanted
