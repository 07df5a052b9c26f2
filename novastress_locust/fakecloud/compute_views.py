"""How the embedded cloud's Nova shows its resources: the JSON view of a server, flavor,
volume attachment, instance action, server group and hypervisor at each microversion.

`ComputeViews` is a mixin of `Compute` (compute.py); its views read the records of
compute_model.py and never change them.
"""
from __future__ import annotations

import uuid

from .compute_model import Flavor, InstanceAction, Server, ServerGroup, _db_time

# attributes GET shows that PUT /servers/{id} and rebuild answer without before 2.75
SHOW_ONLY_PREFIXES = ("OS-EXT-AZ:", "OS-EXT-STS:", "OS-SRV-USG:", "os-extended-volumes:")
PROGRESS_STATUSES = {"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"}


class ComputeViews:
    """The views, by microversion."""

    # -- servers ------------------------------------------------------------
    def _addresses(self, server: Server) -> dict:
        if not server.ports:
            return {}
        names = {}
        network = self.cloud.network
        networks_for = getattr(network, "networks_for", None)
        if networks_for:
            names = {n["id"]: n.get("name", n["id"]) for n in networks_for(server.project_id)}
        addresses: dict[str, list] = {}
        by_port: dict[str, str] = {}
        for port in server.ports:
            label = names.get(port.get("network_id"), port.get("network_id", "private"))
            by_port[port.get("id")] = label
            entries = addresses.setdefault(label, [])
            for fixed in port.get("fixed_ips", ()):
                address = fixed.get("ip_address", "")
                entries.append({"version": 6 if ":" in address else 4, "addr": address,
                                "OS-EXT-IPS:type": "fixed",
                                "OS-EXT-IPS-MAC:mac_addr": port.get("mac_address", "")})
        floating_of = getattr(network, "floating_ips_of", None)
        if floating_of:
            for floating in floating_of(server.id) or ():
                label = by_port.get(floating.get("port_id"), next(iter(addresses), "private"))
                mac = next((p.get("mac_address", "") for p in server.ports
                            if p.get("id") == floating.get("port_id")), "")
                addresses.setdefault(label, []).append(
                    {"version": 4, "addr": floating.get("floating_ip_address", ""),
                     "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": mac})
        return addresses

    def _changed_view(self, server: Server, minor: int, admin: bool, key_name: bool = False) -> dict:
        """The server as PUT /servers/{id} and rebuild answer: before 2.75 without the extended
        attributes a GET shows (rebuild has key_name from 2.54)."""
        if minor >= 75:
            return self._server_view(server, minor, admin)
        view = self._server_view(server, minor, admin=False)
        for key in [key for key in view if key.startswith(SHOW_ONLY_PREFIXES)]:
            del view[key]
        # Nova's extend_address=False: each address only its version and addr
        view["addresses"] = {network: [{"version": address["version"], "addr": address["addr"]}
                                       for address in addresses]
                             for network, addresses in view.get("addresses", {}).items()}
        for key in ("config_drive", "security_groups", *(() if key_name else ("key_name",))):
            view.pop(key, None)
        return view

    def _server_view(self, server: Server, minor: int, admin: bool, show: bool = True) -> dict:
        base = self._base
        flavor = server.flavor
        status = server.status
        if minor >= 47:
            flavor_view = {"vcpus": flavor.vcpus, "ram": flavor.ram, "disk": flavor.disk,
                           "ephemeral": flavor.ephemeral, "swap": flavor.swap,
                           "original_name": flavor.name, "extra_specs": dict(flavor.extra_specs)}
        else:
            flavor_view = {"id": flavor.id,
                           "links": [{"rel": "bookmark", "href": f"{base}/flavors/{flavor.id}"}]}
        if server.image_id:
            image_view = {"id": server.image_id,
                          "links": [{"rel": "bookmark", "href": f"{base}/images/{server.image_id}"}]}
            if minor >= 98:
                image_view["properties"] = {}
        else:
            image_view = ""
        view = {
            "accessIPv4": server.access_ipv4, "accessIPv6": server.access_ipv6,
            "addresses": self._addresses(server),
            "created": server.created_iso, "flavor": flavor_view, "hostId": server.host_id,
            "id": server.id, "image": image_view,
            "links": [{"rel": "self", "href": f"{base}/v2.1/servers/{server.id}"},
                      {"rel": "bookmark", "href": f"{base}/servers/{server.id}"}],
            "metadata": dict(server.metadata), "name": server.name, "status": status,
            "tenant_id": server.project_id, "user_id": server.user_id, "updated": server.updated_iso,
            "OS-DCF:diskConfig": server.disk_config}
        if server.fault and status in ("ERROR", "DELETED"):
            fault = {"code": server.fault["code"], "created": server.fault["created"],
                     "message": server.fault["message"]}
            if admin or server.fault["code"] != 500:
                fault["details"] = server.fault.get("details", "")
            view["fault"] = fault
        if status in PROGRESS_STATUSES:
            view["progress"] = 0
        view["OS-EXT-AZ:availability_zone"] = (server.availability_zone or "nova") if server.host else ""
        view["config_drive"] = server.config_drive
        view["key_name"] = server.key_name
        # DATETIME columns of a MariaDB-backed Nova: whole seconds (what real Nova 34 shows)
        view["OS-SRV-USG:launched_at"] = _db_time(server.launched_at) if server.launched_at else None
        view["OS-SRV-USG:terminated_at"] = _db_time(server.terminated_at) if server.terminated_at else None
        if server.ports:
            view["security_groups"] = [{"name": name} for name in server.security_groups]
        if admin:
            view["OS-EXT-SRV-ATTR:host"] = server.host
            view["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{server.internal_id:08x}"
            view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = server.host
            if minor >= 3:
                view["OS-EXT-SRV-ATTR:reservation_id"] = server.reservation_id
                view["OS-EXT-SRV-ATTR:launch_index"] = 0
                view["OS-EXT-SRV-ATTR:hostname"] = server.hostname or server.name
                view["OS-EXT-SRV-ATTR:kernel_id"] = ""
                view["OS-EXT-SRV-ATTR:ramdisk_id"] = ""
                view["OS-EXT-SRV-ATTR:root_device_name"] = "/dev/sda"
                view["OS-EXT-SRV-ATTR:user_data"] = server.user_data
        view["OS-EXT-STS:task_state"] = server.task_state
        view["OS-EXT-STS:vm_state"] = server.vm_state
        view["OS-EXT-STS:power_state"] = server.power_state
        if minor >= 3:
            view["os-extended-volumes:volumes_attached"] = [
                {"id": volume_id, "delete_on_termination": False} for volume_id in server.volumes]
        else:
            view["os-extended-volumes:volumes_attached"] = [{"id": volume_id} for volume_id in server.volumes]
        if minor >= 9:
            view["locked"] = server.locked
        if minor >= 16 and admin:
            view["host_status"] = "UP" if server.host else ""
        if minor >= 19:
            view["description"] = server.description
        if minor >= 26:
            view["tags"] = list(server.tags)
        if minor >= 63:
            view["trusted_image_certificates"] = None
        if minor >= 71 and show:
            view["server_groups"] = list(server.server_groups)
        if minor >= 73:
            view["locked_reason"] = server.locked_reason
        if minor >= 90:
            view["OS-EXT-SRV-ATTR:hostname"] = server.hostname or server.name
        if minor >= 96:
            view["pinned_availability_zone"] = server.availability_zone
        if minor >= 100:
            view["scheduler_hints"] = dict(server.scheduler_hints)
        return view

    def _brief_view(self, server: Server) -> dict:
        return {"id": server.id, "name": server.name, "links": self._links("servers", server.id)}

    # -- the other resources ------------------------------------------------
    def _flavor_view(self, flavor: Flavor, minor: int, detail: bool) -> dict:
        view = {"id": flavor.id, "name": flavor.name}
        if detail:
            view.update({"ram": flavor.ram, "disk": flavor.disk,
                         "swap": flavor.swap if minor >= 75 else (flavor.swap or ""),
                         "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral})
            if minor < 102:
                view["OS-FLV-DISABLED:disabled"] = False
            view["vcpus"] = flavor.vcpus
            view["os-flavor-access:is_public"] = flavor.is_public
            if minor < 102:
                view["rxtx_factor"] = 1.0
        view["links"] = self._links("flavors", flavor.id)
        if minor >= 55:
            view["description"] = flavor.description
        if detail and minor >= 61:
            view["extra_specs"] = dict(flavor.extra_specs)
        return view

    def _attachment_view(self, attachment: dict, minor: int) -> dict:
        view = {"device": attachment["device"], "serverId": attachment["serverId"],
                "volumeId": attachment["volumeId"]}
        if minor < 89:
            view["id"] = attachment["volumeId"]
        if minor >= 70:
            view["tag"] = attachment.get("tag")
        if minor >= 79:
            view["delete_on_termination"] = attachment.get("delete_on_termination", False)
        if minor >= 89:
            view["attachment_id"] = attachment["attachment_id"]
            view["bdm_uuid"] = attachment["bdm_uuid"]
        return view

    def _action_view(self, record: InstanceAction, server: Server, minor: int) -> dict:
        view = {"action": record.action, "instance_uuid": server.id, "request_id": record.request_id,
                "user_id": record.user_id, "project_id": record.project_id,
                "start_time": _db_time(record.start_time), "message": record.message}
        if minor >= 58:
            view["updated_at"] = _db_time(record.updated_at)
        return view

    def _group_view(self, group: ServerGroup, minor: int) -> dict:
        view = {"id": group.id, "name": group.name}
        if minor >= 64:
            view.update({"policy": group.policy, "rules": dict(group.rules)})
        else:
            view.update({"policies": [group.policy], "metadata": {}})
        view["members"] = list(group.members)
        if minor >= 13:
            view.update({"project_id": group.project_id, "user_id": group.user_id})
        return view

    def _hypervisor_view(self, number: int, host: str, minor: int, detail: bool) -> dict:
        view = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"hypervisor:{host}")) if minor >= 53 else number,
                "hypervisor_hostname": host, "state": "up", "status": "enabled"}
        if not detail:
            return view
        used = self.host_usage.get(host, {})
        config = self.cloud.config
        view.update({"hypervisor_type": "fake", "hypervisor_version": 1000, "host_ip": "127.0.0.1",
                     "service": {"id": self._service_uuid("nova-compute", host) if minor >= 53 else number + 2,
                                 "host": host, "disabled_reason": None}})
        if minor >= 88:
            view["uptime"] = None
            return view
        ram_used = used.get("MEMORY_MB", 0) + 512
        disk_used = used.get("DISK_GB", 0)
        view.update({"vcpus": config.host_capacity_vcpus, "memory_mb": config.host_capacity_ram_mb,
                     "local_gb": 100000, "vcpus_used": used.get("VCPU", 0), "memory_mb_used": ram_used,
                     "local_gb_used": disk_used, "free_ram_mb": config.host_capacity_ram_mb - ram_used,
                     "free_disk_gb": 100000 - disk_used, "current_workload": 0,
                     "running_vms": used.get("instances", 0), "disk_available_least": 0,
                     "cpu_info": {"arch": "x86_64", "model": "Nehalem", "vendor": "Intel",
                                  "features": ["pge", "clflush"],
                                  "topology": {"cores": 1, "threads": 1, "sockets": 4}}})
        return view
